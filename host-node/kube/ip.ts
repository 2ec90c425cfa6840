// ip.ts — IP address and CIDR text for the control plane: parse (leniently, the way Go's
// netutils.ParseIPSloppy does), print exactly as Go's net.IP.String() / net.IPNet.String() do, and
// test containment. Pure functions over byte arrays; never touches the network.

export type Family = 4 | 6;

export interface IP {
  family: Family;
  /** 4 bytes for IPv4, 16 for IPv6. An IPv4-mapped IPv6 address is returned as IPv4 (Go's To4). */
  bytes: Uint8Array;
}

export interface CIDR {
  family: Family;
  /** Network address (host bits cleared). */
  bytes: Uint8Array;
  prefix: number;
}

/**
 * A dotted quad as an unsigned 32-bit value (first octet highest), or -1 when `s` is not one.
 * ParseIPSloppy accepts leading zeros and reads them as decimal (k8s.io/utils/net/ipv4.go): 1 to
 * 3 digits per part. Scans characters: no strings, arrays or regexes (full syncs parse every
 * endpoint address).
 */
function ipv4Value(s: string): number {
  let value = 0, part = 0, digits = 0, dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + part;
      dots++; part = 0; digits = 0;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      part = part * 10 + (c - 48);
      digits++;
      if (part > 255) return -1;
    } else return -1;
  }
  if (digits === 0 || dots !== 3) return -1;
  return value * 256 + part;
}

/**
 * True when `s` is a dotted quad written as Go prints it (no leading zeros): one scan, no
 * allocation (full syncs ask this of every endpoint address).
 */
function isCanonicalIPv4(s: string): boolean {
  let part = 0, digits = 0, dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return false;
      dots++; part = 0; digits = 0;
    } else if (c >= 48 && c <= 57 && !(digits === 1 && part === 0)) {
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return false;
    } else return false;
  }
  return digits > 0 && dots === 3;
}

function parseIPv4(s: string): Uint8Array | null {
  const v = ipv4Value(s);
  if (v < 0) return null;
  const out = new Uint8Array(4);
  out[0] = v >>> 24; out[1] = (v >>> 16) & 255; out[2] = (v >>> 8) & 255; out[3] = v & 255;
  return out;
}

function parseIPv6(s: string): Uint8Array | null {
  if (s.length < 2 || s.includes('%')) return null;
  let tail4: Uint8Array | null = null;
  let text = s;
  const lastColon = text.lastIndexOf(':');
  if (text.indexOf('.', lastColon) >= 0) {
    tail4 = parseIPv4(text.slice(lastColon + 1));
    if (!tail4) return null;
    text = text.slice(0, lastColon + 1) + '0:0';
  }
  const dbl = text.indexOf('::');
  if (dbl >= 0 && text.indexOf('::', dbl + 1) >= 0) return null;
  const groupsOf = (part: string): number[] | null => {
    if (part === '') return [];
    const gs = part.split(':');
    const out: number[] = [];
    for (const g of gs) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  let groups: number[];
  if (dbl >= 0) {
    const head = groupsOf(text.slice(0, dbl));
    const rest = groupsOf(text.slice(dbl + 2));
    if (!head || !rest || head.length + rest.length > 7) return null;
    groups = [...head, ...new Array<number>(8 - head.length - rest.length).fill(0), ...rest];
  } else {
    const all = groupsOf(text);
    if (!all || all.length !== 8) return null;
    groups = all;
  }
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = groups[i]! >> 8;
    out[2 * i + 1] = groups[i]! & 0xff;
  }
  if (tail4) out.set(tail4, 12);
  return out;
}

function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/** Parses an IPv4 or IPv6 address; null if it is not one. */
export function parseIP(s: string): IP | null {
  if (typeof s !== 'string') return null;
  if (s.includes(':')) {
    const b = parseIPv6(s);
    if (!b) return null;
    if (isV4Mapped(b)) return { family: 4, bytes: b.slice(12) };
    return { family: 6, bytes: b };
  }
  const b = parseIPv4(s);
  return b ? { family: 4, bytes: b } : null;
}

/** Go's net.IP.String(): dotted quad, or RFC 5952 text with the longest run (≥2) of zero groups as "::". */
export function formatIP(ip: IP): string {
  const b = ip.bytes;
  if (ip.family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[2 * i]! << 8) | b[2 * i + 1]!);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  // net/ip.go: a single zero group is never collapsed.
  if (bestLen < 2) bestStart = -1;
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      out += '::';
      i += bestLen - 1;
      continue;
    }
    if (out !== '' && !out.endsWith(':')) out += ':';
    out += g[i]!.toString(16);
  }
  return out;
}

/** The canonical text of an address, or null if it does not parse. */
export function canonicalIP(s: string): string | null {
  // The common case, a dotted quad already in Go's form, is its own canonical text.
  if (typeof s === 'string' && isCanonicalIPv4(s)) return s;
  const ip = parseIP(s);
  return ip ? formatIP(ip) : null;
}

/** Whether two addresses are one (any spelling: `fd00::1` and `fd00:0:0::1`); unparsable text compares as written. */
export const sameIP = (a: string, b: string): boolean => (canonicalIP(a) ?? a) === (canonicalIP(b) ?? b);

export function ipFamily(s: string): Family | null {
  if (typeof s === 'string' && ipv4Value(s) >= 0) return 4;
  const ip = parseIP(s);
  return ip ? ip.family : null;
}

/** Parses "addr/prefix" (Go's ParseCIDRSloppy); the address is masked to the network. */
export function parseCIDR(s: string): CIDR | null {
  if (typeof s !== 'string') return null;
  const slash = s.indexOf('/');
  if (slash < 0) return null;
  const ip = parseIP(s.slice(0, slash));
  const ptext = s.slice(slash + 1);
  if (!ip || !/^[0-9]{1,3}$/.test(ptext)) return null;
  let prefix = Number(ptext);
  // An IPv4-mapped IPv6 CIDR counts its prefix over 128 bits (net.ParseCIDR); fold it onto IPv4.
  const v6text = s.slice(0, slash).includes(':');
  if (ip.family === 4 && v6text) {
    if (prefix < 96 || prefix > 128) return null;
    prefix -= 96;
  }
  const bits = ip.family === 4 ? 32 : 128;
  if (prefix > bits) return null;
  const bytes = ip.bytes.slice();
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - 8 * i));
    bytes[i]! &= (0xff << (8 - keep)) & 0xff;
  }
  return { family: ip.family, bytes, prefix };
}

/** Go's net.IPNet.String(): "<network>/<prefix>". */
export function formatCIDR(c: CIDR): string {
  return `${formatIP({ family: c.family, bytes: c.bytes })}/${c.prefix}`;
}

export function cidrContains(c: CIDR, ip: IP): boolean {
  return c.family === ip.family && cidrHasBytes(c, ip.bytes, 0);
}

/** The address of c's family stored at `at` in `b` (a packet header, read in place) is inside c. */
export function cidrHasBytes(c: CIDR, b: Uint8Array, at: number): boolean {
  for (let i = 0; i < c.bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, c.prefix - 8 * i));
    const mask = (0xff << (8 - keep)) & 0xff;
    if ((b[at + i]! & mask) !== c.bytes[i]) return false;
  }
  return true;
}

/** True for 127.0.0.0/8 and ::1 (net.IP.IsLoopback). */
export function isLoopback(ip: IP): boolean {
  if (ip.family === 4) return ip.bytes[0] === 127;
  for (let i = 0; i < 15; i++) if (ip.bytes[i] !== 0) return false;
  return ip.bytes[15] === 1;
}

/** net.JoinHostPort: brackets around IPv6 hosts. */
export function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * "host:port" or "[v6 host]:port" split (net.SplitHostPort's forms): the host as written (empty
 * when absent; no ':' outside brackets) and a decimal port 0–65535; null for anything else.
 */
export function splitHostPort(text: string): { host: string; port: number } | null {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]]*):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  return m && port <= 65535 ? { host: m[1]!, port } : null;
}
