// ipvs/sched/mh.ts — Maglev hashing (net/netfilter/ipvs/ip_vs_mh.c; Eisenbud et al., "Maglev",
// NSDI '16, §3.4).
//
// A lookup table of M slots (M prime, default 4093 = primes[CONFIG_IP_VS_MH_TAB_INDEX 12 - 8]) maps
// hsiphash(source address [+ source port]) % M to a destination. Each destination has a preference
// list of slots: it starts at offset = h1(addr, port) % M and steps by skip = h2(addr, port) % (M-1)
// + 1, both keyed hsiphash of the destination's own address and port. Population goes round the
// destination list; each destination in turn claims its next free preferred slot, `turns` times per
// round, where turns = (last_weight / gcd) >> rshift (rshift trims huge weights to the table's
// resolution: fls(max / gcd) − M's bit budget), at least 1 for a non-zero weight. Until all M slots
// are taken. A destination with weight 0 keeps its slots (last_weight remembers its latest non-zero
// weight) but is unavailable: lookup then yields nothing, or with mh-fallback the slots
// hash(key + offset) for offset = ihash, ihash + 1, … are tried until an available destination or an
// empty slot. Removing a destination disturbs only the slots it owned plus the few its preference
// collisions shift — the minimal-disruption property the tests count.
//
// The hash is the kernel's hsiphash on 64-bit builds: SipHash-1-3 (lib/siphash.c, HalfSipHash1-3
// "actually SipHash1-3") over the 4-byte value offset + port + address, keys (2654435761, 2654435761)
// and (2654446892, 2654446892) (generate_hash_secret). The table is rebuilt only when destinations
// change (add, edit, remove), never per packet; the rebuild uses a scratch area grown on the control
// path.
import { Flow } from "../../flow";
import { NIL, addrFoldHost } from "../defs";
import { destAt, destNext, destWeight, destOverloaded, destLastWeight, destPort, destAf } from "../dest";
import { hashPort } from "./sh";

// ip_vs_mh.c primes[]: the sizes CONFIG_IP_VS_MH_TAB_INDEX 8 … 17 select.
const PRIMES: StaticArray<u32> = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071];
export const MH_DEFAULT_SIZE: u32 = 4093;

const O_M: usize = 0;
const O_BITS: usize = 4;
const O_GCD: usize = 8;
const O_RSHIFT: usize = 12;
const O_TABLE: usize = 16;

/** IP_VS_MH_TAB_BITS for a table size: CONFIG_IP_VS_MH_TAB_INDEX / 2; 0 when `m` is not one of the primes. */
export function mhTabBits(m: u32): u32 {
  for (let i = 0; i < PRIMES.length; i++) if (unchecked(PRIMES[i]) == m) return (<u32>i + 8) / 2;
  return 0;
}

export function mhStateBytes(m: u32): usize { return O_TABLE + (<usize>m << 2); }

// lib/siphash.c __hsiphash_aligned() on 64-bit: SipHash-1-3 of a 4-byte message, truncated to 32 bits.
// @ts-ignore: decorator
@inline function rotl(x: u64, b: u64): u64 { return (x << b) | (x >> (64 - b)); }
export function hsiphash32(v: u32, k0: u64, k1: u64): u32 {
  let v0: u64 = 0x736f6d6570736575 ^ k0;
  let v1: u64 = 0x646f72616e646f6d ^ k1;
  let v2: u64 = 0x6c7967656e657261 ^ k0;
  let v3: u64 = 0x7465646279746573 ^ k1;
  const b: u64 = (<u64>4 << 56) | <u64>v;
  v3 ^= b;
  for (let round = 0; round < 4; round++) {
    if (round == 1) { v0 ^= b; v2 ^= 0xff; }
    v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);
    v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);
  }
  return <u32>((v0 ^ v1) ^ (v2 ^ v3));
}
const KEY1: u64 = 2654435761;
const KEY2: u64 = 2654446892;

// ip_vs_mh.c ip_vs_mh_hashkey(): hsiphash of (offset + port + host-order folded address).
// @ts-ignore: decorator
@inline function hashkey(key: u32, offset: u32, k: u64): u32 {
  return hsiphash32(offset + key, k, k);
}

// Rebuild scratch: the taken-slot bitmap and per-destination setup (offset, skip, perm, turns).
let scratch: usize = 0;
let scratchBytes: usize = 0;
function scratchFor(m: u32, n: u32): usize {
  const need = (<usize>((m + 31) >> 5) << 2) + (<usize>n << 4);
  if (need > scratchBytes) {
    if (scratch != 0) heap.free(scratch);
    scratch = heap.alloc(need);
    scratchBytes = need;
  }
  return scratch;
}

function gcd(a: i32, b: i32): i32 {
  while (b != 0) { const t = a % b; a = b; b = t; }
  return a;
}

// @ts-ignore: decorator
@inline function fls(x: u32): i32 { return 32 - <i32>clz<u32>(x); }

export function mhInit(state: usize, m: u32, first: u32, num: u32): void {
  store<u32>(state, m, O_M);
  store<u32>(state, mhTabBits(m), O_BITS);
  for (let i: u32 = 0; i < m; i++) store<u32>(state + O_TABLE + (<usize>i << 2), NIL);
  mhDestChanged(state, first, num);
}

// ip_vs_mh.c ip_vs_mh_dest_changed(): gcd and shift of the last weights, then ip_vs_mh_reassign().
export function mhDestChanged(state: usize, first: u32, num: u32): void {
  const m = load<u32>(state, O_M);
  let g = 0, maxw = 0;
  for (let d = first; d != NIL; d = destNext(d)) {
    const w = destLastWeight(d);
    if (w > 0) g = g > 0 ? gcd(w, g) : w;
    if (w > maxw) maxw = w;
  }
  let shift = 0;
  if (g >= 1) {
    // ip_vs_mh_shift_weight(): occupied bits of max/gcd beyond the table's bit budget.
    shift = fls(<u32>(maxw / g)) - <i32>load<u32>(state, O_BITS);
    if (shift < 0) shift = 0;
  }
  store<i32>(state, g, O_GCD);
  store<i32>(state, shift, O_RSHIFT);
  if (num > m) return; // ip_vs_mh_reassign(): -EINVAL, the table stays as it was
  const table = state + O_TABLE;
  if (g < 1) {
    // ip_vs_mh_populate(): no weighted destination: reset the lookup table.
    for (let i: u32 = 0; i < m; i++) store<u32>(table + (<usize>i << 2), NIL);
    return;
  }
  const words = (m + 31) >> 5;
  const bits = scratchFor(m, num);
  const setup = bits + (<usize>words << 2);
  memory.fill(bits, 0, <usize>words << 2);
  // ip_vs_mh_permutate().
  let k: usize = 0;
  for (let d = first; d != NIL; d = destNext(d), k += 16) {
    const p = destAt(d);
    const key = <u32>destPort(d) + addrFoldHost(destAf(d), load<u32>(p), load<u32>(p, 4), load<u32>(p, 8), load<u32>(p, 12));
    const offset = hashkey(key, 0, KEY1) % m;
    const skip = hashkey(key, 0, KEY2) % (m - 1) + 1;
    const lw = destLastWeight(d);
    let turns = (lw / g) >> shift;
    if (turns == 0) turns = lw != 0 ? 1 : 0;
    store<u32>(setup + k, offset);
    store<u32>(setup + k, skip, 4);
    store<u32>(setup + k, offset, 8);
    store<i32>(setup + k, turns, 12);
  }
  // ip_vs_mh_populate(): round after round, each destination claims `turns` next-preferred slots.
  let n: u32 = 0;
  let count = 0;
  while (n < m) {
    let ds = setup;
    for (let d = first; d != NIL;) {
      const turns = load<i32>(ds, 12);
      if (turns < 1) { d = destNext(d); ds += 16; continue; }
      let c = load<u32>(ds, 8);
      const skip = load<u32>(ds, 4);
      while ((load<u32>(bits + (<usize>(c >> 5) << 2)) & (1 << (c & 31))) != 0) {
        c += skip;
        if (c >= m) c -= m;
      }
      store<u32>(ds, c, 8);
      const w = bits + (<usize>(c >> 5) << 2);
      store<u32>(w, load<u32>(w) | (1 << (c & 31)));
      store<u32>(table + (<usize>c << 2), d);
      if (++n == m) return;
      if (++count >= turns) {
        count = 0;
        d = destNext(d);
        ds += 16;
      }
    }
  }
}

// ip_vs_mh.c is_unavailable().
// @ts-ignore: decorator
@inline function unavailable(d: u32): bool { return destWeight(d) <= 0 || destOverloaded(d); }

// ip_vs_mh.c ip_vs_mh_schedule() with ip_vs_mh_get() / ip_vs_mh_get_fallback().
export function mhSchedule(state: usize, f: Flow, svcFlags: u32, fallback: bool): u32 {
  const m = load<u32>(state, O_M);
  const table = state + O_TABLE;
  const key = hashPort(f, svcFlags) + addrFoldHost(f.family, f.s0, f.s1, f.s2, f.s3);
  const ihash = hashkey(key, 0, KEY1) % m;
  let d = load<u32>(table + (<usize>ihash << 2));
  if (d == NIL) return NIL;
  if (!unavailable(d)) return d;
  if (!fallback) return NIL;
  for (let offset: u32 = 0; offset < m; offset++) {
    const roffset = (offset + ihash) % m;
    d = load<u32>(table + (<usize>(hashkey(key, roffset, KEY1) % m) << 2));
    if (d == NIL) break;
    if (!unavailable(d)) return d;
  }
  return NIL;
}

/** Slot `i` of the lookup table (dest id or NIL), for tests and the trace. */
export function mhSlot(state: usize, i: u32): u32 {
  return i < load<u32>(state, O_M) ? load<u32>(state + O_TABLE + (<usize>i << 2)) : NIL;
}
export function mhSize(state: usize): u32 { return load<u32>(state, O_M); }
