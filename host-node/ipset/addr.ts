// ipset/addr.ts — addresses as the ipset tool reads and prints them: IPv4 in inet_aton's numeric
// forms (a, a.b, a.b.c, a.b.c.d; decimal or leading-zero octal; hex refused, as ipset 7.17 does),
// IPv6 as inet_pton reads it and glibc's inet_ntop prints it (RFC 5952 zero compression, plus the
// dotted tail for ::a.b.c.d and ::ffff:a.b.c.d), prefix masks, ordering, and splitting an IPv4
// from-to range into the fewest CIDR blocks (ip_set_range_to_cidr()). Pure functions on byte
// arrays; never resolves host names.
import { formatIP, parseDottedQuad } from '../core/packet.js';

/** 4 (IPv4) or 16 (IPv6) address bytes, network order. */
export type Addr = Uint8Array;

function part(s: string): number | null {
  if (/^[1-9][0-9]*$/.test(s) || s === '0') return Number(s);
  if (/^0[0-7]+$/.test(s)) return parseInt(s, 8);
  return null;
}

/** inet_aton's numeric forms (without hex). Null when not an IPv4 address. */
export function parseV4(text: string): Addr | null {
  // The plain dotted quad kube-proxy writes in one pass; inet_aton's other forms the long way.
  return parseDottedQuad(text) ?? anyV4(text);
}

function anyV4(text: string): Addr | null {
  const parts = text.split('.');
  if (parts.length < 1 || parts.length > 4) return null;
  const nums: number[] = [];
  for (const p of parts) {
    const n = part(p);
    if (n === null) return null;
    nums.push(n);
  }
  // The last part fills the bytes the earlier ones leave.
  const lastBytes = 5 - nums.length;
  for (let i = 0; i < nums.length - 1; i++) if (nums[i]! > 255) return null;
  const last = nums[nums.length - 1]!;
  if (last >= 2 ** (8 * lastBytes)) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < nums.length - 1; i++) out[i] = nums[i]!;
  for (let k = 0; k < lastBytes; k++) out[3 - k] = Math.floor(last / 2 ** (8 * k)) & 0xff;
  return out;
}

/** inet_pton(AF_INET6). Null when not an IPv6 address. */
export function parseV6(text: string): Addr | null {
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groups = (s: string, last: boolean): number[] | null => {
    if (s === '') return [];
    const out: number[] = [];
    const parts = s.split(':');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (last && i === parts.length - 1 && p.includes('.')) {
        if (!/^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(p)) return null;
        const q = p.split('.').map(Number);
        if (q.some((x) => x > 255)) return null;
        out.push((q[0]! << 8) | q[1]!, (q[2]! << 8) | q[3]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) {
        out.push(parseInt(p, 16));
      } else {
        return null;
      }
    }
    return out;
  };
  const head = groups(halves[0]!, halves.length === 1);
  const tail = halves.length === 2 ? groups(halves[1]!, true) : [];
  if (head === null || tail === null) return null;
  if (halves.length === 2 ? head.length + tail.length > 7 : head.length !== 8) return null;
  const all = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  const out = new Uint8Array(16);
  all.forEach((g, i) => { out[2 * i] = g >> 8; out[2 * i + 1] = g & 0xff; });
  return out;
}

export function parseAddr(text: string, family: 4 | 6): Addr | null {
  return family === 4 ? parseV4(text) : parseV6(text);
}

/** glibc inet_ntop(): dotted quad; IPv6 with the first longest run (≥ 2) of zero groups as `::`. */
export function formatAddr(a: Addr): string {
  return formatIP(a);
}

/** `a` with every bit past the first `cidr` cleared (a copy). */
export function masked(a: Addr, cidr: number): Addr {
  const out = new Uint8Array(a);
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, cidr - 8 * i));
    out[i]! &= keep === 0 ? 0 : (0xff << (8 - keep)) & 0xff;
  }
  return out;
}

export function isZero(a: Addr): boolean {
  return a.every((b) => b === 0);
}

export function compareAddr(a: Addr, b: Addr): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

export function v4ToNum(a: Addr): number {
  return ((a[0]! << 24) | (a[1]! << 16) | (a[2]! << 8) | a[3]!) >>> 0;
}

export function numToV4(n: number): Addr {
  return new Uint8Array([(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
}

/** The addresses of an IPv4 range, one by one (inclusive). */
export function* v4Hosts(from: number, to: number): Generator<Addr> {
  for (let n = from; n <= to; n++) yield numToV4(n);
}

/**
 * ip_set_range_to_cidr(): the fewest CIDR blocks covering [from, to] (IPv4, inclusive), lowest
 * first: at each step the largest aligned block starting at `from` that stays inside the range.
 */
export function* v4RangeToCidrs(from: number, to: number): Generator<[Addr, number]> {
  let n = from;
  while (n <= to) {
    let cidr = 32;
    while (cidr > 1) {
      const size = 2 ** (32 - (cidr - 1));
      if (n % size !== 0 || n + size - 1 > to) break;
      cidr--;
    }
    yield [numToV4(n), cidr];
    n += 2 ** (32 - cidr);
  }
}

/** Number of CIDR blocks v4RangeToCidrs would give (without building them). */
export function v4RangeCidrCount(from: number, to: number): number {
  let k = 0;
  for (const _ of v4RangeToCidrs(from, to)) k++;
  return k;
}
