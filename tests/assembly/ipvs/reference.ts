// Independent re-statements of the kernel's hashing schedulers, written from ip_vs_sh.c,
// ip_vs_dh.c, ip_vs_mh.c and lib/siphash.c for the tests to compare the core against.
import { parseIP } from '../../../host-node/core/packet';

/** include/linux/hash.h hash_32(). */
export function hash32(val: number, bits: number): number {
  return Math.imul(val >>> 0, 0x61c88647) >>> (32 - bits);
}

/** ntohl() of the address, IPv6 folded by XOR of its four words. */
export function foldHost(ip: string): number {
  const b = parseIP(ip);
  let v = 0;
  for (let i = 0; i < b.length; i += 4) v ^= ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
  return v >>> 0;
}

const M64 = (1n << 64n) - 1n;
const rotl = (x: bigint, b: bigint) => ((x << b) | (x >> (64n - b))) & M64;

/** SipHash-c-d (Aumasson & Bernstein) of `msg` under the 128-bit key (k0, k1). */
export function siphash(c: number, d: number, k0: bigint, k1: bigint, msg: Uint8Array): bigint {
  let v0 = 0x736f6d6570736575n ^ k0, v1 = 0x646f72616e646f6dn ^ k1, v2 = 0x6c7967656e657261n ^ k0, v3 = 0x7465646279746573n ^ k1;
  const round = () => {
    v0 = (v0 + v1) & M64; v1 = rotl(v1, 13n); v1 ^= v0; v0 = rotl(v0, 32n);
    v2 = (v2 + v3) & M64; v3 = rotl(v3, 16n); v3 ^= v2;
    v0 = (v0 + v3) & M64; v3 = rotl(v3, 21n); v3 ^= v0;
    v2 = (v2 + v1) & M64; v1 = rotl(v1, 17n); v1 ^= v2; v2 = rotl(v2, 32n);
  };
  const word = (at: number, n: number) => {
    let w = 0n;
    for (let i = n - 1; i >= 0; i--) w = (w << 8n) | BigInt(msg[at + i]!);
    return w;
  };
  const full = msg.length - (msg.length % 8);
  for (let at = 0; at < full; at += 8) {
    const m = word(at, 8);
    v3 ^= m; for (let r = 0; r < c; r++) round(); v0 ^= m;
  }
  const b = (BigInt(msg.length & 255) << 56n) | word(full, msg.length - full);
  v3 ^= b; for (let r = 0; r < c; r++) round(); v0 ^= b;
  v2 ^= 0xffn; for (let r = 0; r < d; r++) round();
  return (v0 ^ v1 ^ v2 ^ v3) & M64;
}

/** The kernel's hsiphash on 64-bit (SipHash-1-3, key words both `key`) of a u32, low 32 bits. */
export function hsiphash(v: number, key: number): number {
  const msg = new Uint8Array(4);
  new DataView(msg.buffer).setUint32(0, v >>> 0, true);
  return Number(siphash(1, 3, BigInt(key), BigInt(key), msg) & 0xffffffffn);
}

export interface RefDest { id: number; address: string; port: number; weight: number; lastWeight?: number }

/** ip_vs_sh_reassign(): 256 buckets, each destination (list order) `weight` of them, at least one. */
export function shTable(list: RefDest[]): number[] {
  const t: number[] = [];
  let p = 0, count = 0;
  for (let i = 0; i < 256; i++) {
    if (list.length === 0) { t.push(-1); continue; }
    t.push(list[p]!.id);
    if (++count >= list[p]!.weight) { p = (p + 1) % list.length; count = 0; }
  }
  return t;
}

/** ip_vs_dh_reassign(): bucket i → the i-th destination, circularly. */
export function dhTable(list: RefDest[]): number[] {
  return Array.from({ length: 256 }, (_, i) => (list.length ? list[i % list.length]!.id : -1));
}

/** ip_vs_mh_permutate() + ip_vs_mh_populate(). */
export function mhTable(list: RefDest[], m = 4093, bits = 6): number[] {
  const lw = (d: RefDest) => d.lastWeight ?? d.weight;
  let g = 0, max = 0;
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  for (const d of list) { if (lw(d) > 0) g = g > 0 ? gcd(lw(d), g) : lw(d); max = Math.max(max, lw(d)); }
  const table = new Array<number>(m).fill(-1);
  if (g < 1) return table;
  const fls = (x: number) => (x === 0 ? 0 : 32 - Math.clz32(x));
  const shift = Math.max(0, fls(Math.floor(max / g)) - bits);
  const setup = list.map((d) => {
    const key = (d.port + foldHost(d.address)) >>> 0;
    const offset = hsiphash(key, 2654435761) % m;
    const skip = (hsiphash(key, 2654446892) % (m - 1)) + 1;
    const turns = (Math.floor(lw(d) / g) >> shift) || (lw(d) !== 0 ? 1 : 0);
    return { offset, skip, perm: offset, turns };
  });
  const taken = new Uint8Array(m);
  let n = 0, count = 0;
  for (;;) {
    for (let k = 0; k < list.length;) {
      const s = setup[k]!;
      if (s.turns < 1) { k++; continue; }
      let c = s.perm;
      while (taken[c]) { s.perm += s.skip; if (s.perm >= m) s.perm -= m; c = s.perm; }
      taken[c] = 1;
      table[c] = list[k]!.id;
      if (++n === m) return table;
      if (++count >= s.turns) { count = 0; k++; }
    }
  }
}
