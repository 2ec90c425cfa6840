// addr.ts — IPv4/IPv6 addresses and masks as iptables reads and prints them: numeric parsing with
// the same leniencies (IPv4 octets in C `strtoul` base 0, short forms like `10/8`), masks as
// prefix lengths or dotted masks, and the printed forms of iptables-save and `iptables -L -n`.
// Never resolves host names (a name is an error, as for an unknown host) and never allocates per
// packet: this is control-plane code.
//
// Addresses are four 32-bit words, each the big-endian value of 4 address bytes (10.0.0.1 is
// word 0 = 0x0a000001). IPv4 uses word 0 and keeps words 1–3 zero, as assembly/flow.ts does.

import type { AddrMask, Family, Words } from './model.js';

export const ZERO_WORDS: Words = [0, 0, 0, 0];

/**
 * Parses an unsigned integer the way C `strtoumax(s, &end, 0)` does from `pos`: optional leading
 * white space and `+`, then `0x` hex, leading-`0` octal or decimal. Returns the value and the
 * index after the last digit, or null when no digit was read or a `-` sign was given (libxtables
 * xtables_strtoul_base() refuses negatives).
 */
export function scanUint(s: string, pos: number): { value: number; end: number } | null {
  let i = pos;
  while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === '\n')) i++;
  if (s[i] === '-') return null;
  if (s[i] === '+') i++;
  let base = 10;
  if (s[i] === '0' && (s[i + 1] === 'x' || s[i + 1] === 'X') && isDigit(s.charCodeAt(i + 2), 16)) {
    base = 16;
    i += 2;
  } else if (s[i] === '0') {
    base = 8;
  }
  const from = i;
  let value = 0;
  while (i < s.length && isDigit(s.charCodeAt(i), base)) {
    value = value * base + digitValue(s.charCodeAt(i));
    if (value > Number.MAX_SAFE_INTEGER) value = Number.MAX_SAFE_INTEGER; // saturates like ERANGE
    i++;
  }
  if (i === from) return null;
  return { value, end: i };
}

/** A whole string as an unsigned integer in [min, max] (xtables_strtoui with end == NULL), else null. */
export function parseUint(s: string, min: number, max: number): number | null {
  const r = scanUint(s, 0);
  if (r === null || r.end !== s.length || r.value < min || r.value > max) return null;
  return r.value;
}

function isDigit(c: number, base: number): boolean {
  if (base === 16) return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
  if (base === 8) return c >= 48 && c <= 55;
  return c >= 48 && c <= 57;
}

function digitValue(c: number): number {
  if (c <= 57) return c - 48;
  if (c <= 70) return c - 55;
  return c - 87;
}

/**
 * An IPv4 address in dotted form, as libxtables __numeric_to_ipaddr() reads it: up to four parts,
 * each 0–255 in base 0; fewer than four parts fill the rest with zeros ("10" is 10.0.0.0) unless
 * `isMask`, where all four are required. Returns the address as a u32 or null.
 */
export function parseIPv4(text: string, isMask = false): number | null {
  const fast = plainIPv4(text);
  if (fast >= 0) return fast;
  const parts = text.split('.');
  if (parts.length > 4 || (isMask && parts.length !== 4)) return null;
  let v = 0;
  for (let i = 0; i < 4; i++) {
    const p = i < parts.length ? parts[i] : '0';
    const n = parseUint(p, 0, 255);
    if (n === null) return null;
    v = v * 256 + n;
  }
  return v >>> 0;
}

/**
 * The common spelling of `text.slice(from, to)`, four decimal parts without leading zeros, read
 * without allocating; -1 sends anything else to the general (base 0, short form) reader. Where it
 * answers, parseIPv4(), parseAddr() and strictIPv4() give the same value.
 */
export function plainIPv4(text: string, from = 0, to = text.length): number {
  let v = 0;
  let part = 0;
  let digits = 0;
  let parts = 0;
  for (let i = from; i <= to; i++) {
    const c = i < to ? text.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || part > 255 || ++parts > 4) return -1;
      v = v * 256 + part;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && part === 0) return -1; // leading zero: octal in base 0
      part = part * 10 + (c - 48);
      if (++digits > 3) return -1;
    } else {
      return -1;
    }
  }
  return parts === 4 ? v >>> 0 : -1;
}

/** An IPv6 address as inet_pton(AF_INET6) reads it (with a trailing dotted IPv4 part allowed). */
export function parseIPv6(text: string): Words | null {
  if (text.length < 2 || text.length > 45) return null;
  const groups: number[] = [];
  let gap = -1; // index in groups where "::" sits
  let i = 0;
  if (text.startsWith('::')) {
    gap = 0;
    i = 2;
    if (i === text.length) return [0, 0, 0, 0];
  } else if (text[0] === ':') {
    return null;
  }
  while (i < text.length) {
    // A dotted IPv4 tail takes the last 32 bits.
    const rest = text.slice(i);
    if (rest.indexOf('.') >= 0 && rest.indexOf(':') < 0) {
      const v4 = strictIPv4(rest);
      if (v4 === null) return null;
      groups.push(v4 >>> 16, v4 & 0xffff);
      i = text.length;
      break;
    }
    let j = i;
    while (j < text.length && j - i < 5 && isDigit(text.charCodeAt(j), 16)) j++;
    if (j === i || j - i > 4) return null;
    groups.push(parseInt(text.slice(i, j), 16));
    if (j === text.length) break;
    if (text[j] !== ':') return null;
    if (text[j + 1] === ':') {
      if (gap >= 0) return null;
      gap = groups.length;
      i = j + 2;
      if (i === text.length) break;
    } else {
      i = j + 1;
      if (i === text.length) return null; // trailing single colon
    }
  }
  if (gap < 0 ? groups.length !== 8 : groups.length > 7) return null;
  const full = new Array<number>(8).fill(0);
  if (gap < 0) {
    for (let k = 0; k < 8; k++) full[k] = groups[k];
  } else {
    const tail = groups.length - gap;
    for (let k = 0; k < gap; k++) full[k] = groups[k];
    for (let k = 0; k < tail; k++) full[8 - tail + k] = groups[gap + k];
  }
  return [
    ((full[0] << 16) | full[1]) >>> 0,
    ((full[2] << 16) | full[3]) >>> 0,
    ((full[4] << 16) | full[5]) >>> 0,
    ((full[6] << 16) | full[7]) >>> 0,
  ];
}

/** Dotted quad with exactly four decimal parts, no leading zeros (inet_pton(AF_INET) rules). */
export function strictIPv4(text: string): number | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  let v = 0;
  for (const p of parts) {
    if (!/^[0-9]{1,3}$/.test(p) || (p.length > 1 && p[0] === '0')) return null;
    const n = Number(p);
    if (n > 255) return null;
    v = v * 256 + n;
  }
  return v >>> 0;
}

/**
 * inet_aton(): `a`, `a.b`, `a.b.c` or `a.b.c.d`, parts in base 0, the last part filling the
 * remaining bytes (so `8080` is 0.0.31.144). libxtables falls back to this (through
 * getaddrinfo()) for what its own reader refuses.
 */
export function parseInetAton(text: string): number | null {
  const parts = text.split('.');
  if (parts.length > 4) return null;
  const vals: number[] = [];
  for (const p of parts) {
    const v = parseUint(p, 0, 0xffffffff);
    if (v === null) return null;
    vals.push(v);
  }
  const last = vals[vals.length - 1];
  const lastBits = 8 * (5 - vals.length);
  if (lastBits < 32 && last >= 2 ** lastBits) return null;
  let v = 0;
  for (let i = 0; i < vals.length - 1; i++) {
    if (vals[i] > 255) return null;
    v = v * 256 + vals[i];
  }
  return (v * 2 ** lastBits + last) >>> 0;
}

/** An address in the family's numeric form (inet_pton semantics for IPv6, xtables for IPv4). */
export function parseAddr(text: string, family: Family): Words | null {
  if (family === 4) {
    const v = parseIPv4(text) ?? parseInetAton(text);
    return v === null ? null : [v, 0, 0, 0];
  }
  return parseIPv6(text);
}

/**
 * The address of an XTTYPE_HOST / XTTYPE_HOSTMASK option (conntrack's --ctorigsrc …, recent's
 * --mask): libxtables hands it straight to getaddrinfo(), which reads IPv4 as inet_aton() does
 * (`1.2.3` is 1.2.0.3), never in the short network form of -s/-d. Host names are not resolved.
 */
export function parseHostAddr(text: string, family: Family): Words | null {
  if (family === 6) return parseIPv6(text);
  const v = plainIPv4(text);
  const a = v >= 0 ? v : parseInetAton(text);
  return a === null ? null : [a, 0, 0, 0];
}

const maskCache: Words[][] = [[], [], [], [], [], [], []];

/** The mask of a prefix length (shared, frozen). */
export function prefixMask(family: Family, prefix: number): Words {
  let m = maskCache[family][prefix];
  if (m === undefined) maskCache[family][prefix] = m = Object.freeze(computeMask(family, prefix)) as Words;
  return m;
}

function computeMask(family: Family, prefix: number): Words {
  if (family === 4) return [prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0, 0, 0, 0];
  const w: number[] = [0, 0, 0, 0];
  for (let k = 0; k < 4; k++) {
    const bits = Math.max(0, Math.min(32, prefix - k * 32));
    w[k] = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  }
  return w as unknown as Words;
}

/** The prefix length of a mask, or -1 when its one bits are not contiguous from the top. */
export function maskPrefix(family: Family, mask: Words): number {
  const n = family === 4 ? 1 : 4;
  let bits = 0;
  let k = 0;
  for (; k < n && mask[k] === 0xffffffff; k++) bits += 32;
  if (k < n) {
    const w = mask[k];
    const ones = Math.clz32(~w >>> 0);
    if (((w << ones) >>> 0) !== 0 && ones < 32) return -1;
    bits += ones;
    for (k++; k < n; k++) if (mask[k] !== 0) return -1;
  }
  return bits;
}

export function andWords(a: Words, m: Words): Words {
  return [(a[0] & m[0]) >>> 0, (a[1] & m[1]) >>> 0, (a[2] & m[2]) >>> 0, (a[3] & m[3]) >>> 0];
}

export function wordsEqual(a: Words, b: Words): boolean {
  return a[0] === b[0] && a[1] === b[1] && a[2] === b[2] && a[3] === b[3];
}

/** An address with its mask, built from words (the address is masked, as iptables stores it). */
export function addrMask(family: Family, addr: Words, mask: Words): AddrMask {
  return { family, addr: andWords(addr, mask), mask, prefix: maskPrefix(family, mask) };
}

/**
 * `host[/mask]` for -s/-d and the conntrack address options (xtables_ipparse_any /
 * xtables_ip6parse_any): the mask is a prefix length (base 0) or a dotted/colon mask; a zero mask
 * makes the address irrelevant ("any/0"). Throws a message string on error.
 */
export function parseHostMask(text: string, family: Family): AddrMask {
  const slash = text.lastIndexOf('/');
  let host = text;
  let mask: Words = prefixMask(family, family === 4 ? 32 : 128);
  if (slash >= 0) {
    host = text.slice(0, slash);
    const m = text.slice(slash + 1);
    const max = family === 4 ? 32 : 128;
    const asAddr = family === 4 ? parseIPv4(m, true) : parseIPv6(m);
    if (asAddr !== null) {
      mask = typeof asAddr === 'number' ? [asAddr, 0, 0, 0] : asAddr;
    } else {
      const bits = parseUint(m, 0, max);
      if (bits === null) throw `invalid mask \`${m}' specified`;
      mask = prefixMask(family, bits);
    }
  }
  if (mask[0] === 0 && mask[1] === 0 && mask[2] === 0 && mask[3] === 0) {
    return addrMask(family, ZERO_WORDS, mask);
  }
  const addr = parseAddr(host, family);
  if (addr === null) throw `host/network \`${host}' not found`;
  return addrMask(family, addr, mask);
}

export function formatIPv4(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/** inet_ntop(AF_INET6) as glibc prints it: lower-case, the longest run (≥2) of zero groups as
 *  "::", and IPv4-mapped / IPv4-compatible addresses with a dotted tail. */
export function formatIPv6(w: Words): string {
  const g: number[] = [];
  for (let k = 0; k < 4; k++) g.push(w[k] >>> 16, w[k] & 0xffff);
  let bestBase = -1;
  let bestLen = 0;
  for (let k = 0; k < 8; ) {
    if (g[k] !== 0) {
      k++;
      continue;
    }
    let e = k;
    while (e < 8 && g[e] === 0) e++;
    if (e - k > bestLen) {
      bestBase = k;
      bestLen = e - k;
    }
    k = e;
  }
  if (bestLen < 2) bestBase = -1;
  let out = '';
  for (let k = 0; k < 8; k++) {
    if (bestBase >= 0 && k >= bestBase && k < bestBase + bestLen) {
      if (k === bestBase) out += ':';
      continue;
    }
    if (k !== 0) out += ':';
    if (k === 6 && bestBase === 0 && (bestLen === 6 || (bestLen === 5 && g[5] === 0xffff))) {
      out += formatIPv4(w[3]);
      break;
    }
    out += g[k].toString(16);
  }
  if (bestBase >= 0 && bestBase + bestLen === 8) out += ':';
  return out;
}

export function formatAddr(family: Family, w: Words): string {
  return family === 4 ? formatIPv4(w[0]) : formatIPv6(w);
}

/** `addr/len` as iptables-save prints -s/-d (save_ipv4_addr / save_ipv6_addr): always with a
 *  suffix, the prefix length or, for a non-contiguous mask, the mask itself. */
export function saveAddrMask(a: AddrMask): string {
  const suffix = a.prefix >= 0 ? String(a.prefix) : formatAddr(a.family, a.mask);
  return `${formatAddr(a.family, a.addr)}/${suffix}`;
}

/** `addr[/len]` as `iptables -L -n` prints it (xtables_ipmask_to_numeric): no suffix for a host
 *  mask, the prefix length, or the mask itself when not contiguous. */
export function listAddrMask(a: AddrMask): string {
  const full = a.family === 4 ? 32 : 128;
  if (a.prefix === full) return formatAddr(a.family, a.addr);
  const suffix = a.prefix >= 0 ? String(a.prefix) : formatAddr(a.family, a.mask);
  return `${formatAddr(a.family, a.addr)}/${suffix}`;
}

/** True when the mask is all zeros (the rule does not look at this address). */
export function isAnyMask(a: AddrMask): boolean {
  return a.mask[0] === 0 && a.mask[1] === 0 && a.mask[2] === 0 && a.mask[3] === 0;
}
