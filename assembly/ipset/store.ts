// ipset/store.ts — where set elements live. The element key (bytes 0..35 of a record, format.ts):
// prefix masks in the core's raw address words, the seeded key hash and key equality. The hash:*
// storage: an open-addressing table of 64-byte records, power-of-two slots, linear probing, at most
// 3/4 full, deletion by backward shift (no tombstones, so a miss ends at the first empty slot); the
// prefix book-keeping of the net types and their most-specific-first search. The bitmap:port
// storage (ip_set_bitmap_port.c): one bit per port of the range, plus per-port expiry and counter
// arrays when the set has those extensions. Tables are allocated, grown and rehashed on control
// calls only; the lookups (hashFind, hashMatch, netSearch, bitmapMatch — the packet path) never
// allocate and never know what a set is.
//
// Prefix order: ip_set_hash_gen.h keeps `nets[]` sorted by prefix length, longest first
// (mtype_add_cidr: "Add in increasing prefix order, so larger cidr first"), and mtype_test_cidrs()
// masks the address to each stored length in that order and stops at the first element that
// answers: a match, or a `nomatch` element (-ENOTEMPTY). Expired elements do not answer
// (ip_set_match_extensions() returns false), so the search goes on to shorter prefixes.
import {
  KEY_WORDS, REC_BYTES, O_FLAGS, O_TIME, O_PACKETS, O_BYTES, O_CIDR, R_USED, R_NOMATCH, R_EXPIRES,
  TEST_ABSENT, TEST_PRESENT, TEST_NOMATCH,
} from "./format";

// ---- keys ----------------------------------------------------------------------------------------
// masks[c] = the prefix-c mask as four raw words (network byte order in memory, like flow.ts).
const masks: usize = heap.alloc(129 << 4);
for (let c: u32 = 0; c <= 128; c++) {
  for (let i: u32 = 0; i < 4; i++) {
    const bits = c > i * 32 ? min<u32>(c - i * 32, 32) : 0;
    const be: u32 = bits == 0 ? 0 : <u32>(0xFFFFFFFF << (32 - bits));
    store<u32>(masks + (<usize>c << 4) + (<usize>i << 2), bswap<u32>(be));
  }
}

// Copies the address at `src` to `dst` masked to `cidr`.
@inline export function copyMasked(dst: usize, src: usize, cidr: u32): void {
  const m = masks + (<usize>cidr << 4);
  store<u32>(dst, load<u32>(src) & load<u32>(m));
  store<u32>(dst, load<u32>(src, 4) & load<u32>(m, 4), 4);
  store<u32>(dst, load<u32>(src, 8) & load<u32>(m, 8), 8);
  store<u32>(dst, load<u32>(src, 12) & load<u32>(m, 12), 12);
}

// Is the address at `p` already masked to `cidr` (no host bits set)?
export function isMasked(p: usize, cidr: u32): bool {
  const m = masks + (<usize>cidr << 4);
  return ((load<u32>(p) & ~load<u32>(m)) | (load<u32>(p, 4) & ~load<u32>(m, 4)) |
    (load<u32>(p, 8) & ~load<u32>(m, 8)) | (load<u32>(p, 12) & ~load<u32>(m, 12))) == 0;
}

@inline export function addrIsZero(p: usize): bool {
  return (load<u32>(p) | load<u32>(p, 4) | load<u32>(p, 8) | load<u32>(p, 12)) == 0;
}

// An IPv4 address keeps words 1–3 zero (flow.ts).
@inline export function v4Clean(p: usize): bool {
  return (load<u32>(p, 4) | load<u32>(p, 8) | load<u32>(p, 12)) == 0;
}

@inline function mixWord(h: u32, k: u32): u32 {
  k *= 0xCC9E2D51;
  k = rotl<u32>(k, 15) * 0x1B873593;
  h ^= k;
  return rotl<u32>(h, 13) * 5 + 0xE6546B64;
}

// MurmurHash3's word mixing over the nine key words, seeded by the set's initval (the kernel keys
// its jhash2 with a per-set random initval too: ip_set_hash_gen.h HKEY()).
@inline export function keyHash(k: usize, seed: u32): u32 {
  let h = seed;
  h = mixWord(h, load<u32>(k));
  h = mixWord(h, load<u32>(k, 4));
  h = mixWord(h, load<u32>(k, 8));
  h = mixWord(h, load<u32>(k, 12));
  h = mixWord(h, load<u32>(k, 16));
  h = mixWord(h, load<u32>(k, 20));
  h = mixWord(h, load<u32>(k, 24));
  h = mixWord(h, load<u32>(k, 28));
  h = mixWord(h, load<u32>(k, 32));
  h ^= KEY_WORDS << 2;
  h ^= h >>> 16; h *= 0x85EBCA6B;
  h ^= h >>> 13; h *= 0xC2B2AE35;
  return h ^ (h >>> 16);
}

@inline export function keyEquals(a: usize, b: usize): bool {
  return ((load<u32>(a) ^ load<u32>(b)) | (load<u32>(a, 4) ^ load<u32>(b, 4)) |
    (load<u32>(a, 8) ^ load<u32>(b, 8)) | (load<u32>(a, 12) ^ load<u32>(b, 12)) |
    (load<u32>(a, 16) ^ load<u32>(b, 16)) | (load<u32>(a, 20) ^ load<u32>(b, 20)) |
    (load<u32>(a, 24) ^ load<u32>(b, 24)) | (load<u32>(a, 28) ^ load<u32>(b, 28)) |
    (load<u32>(a, 32) ^ load<u32>(b, 32))) == 0;
}

// Has the element with expiry `exp` (ms) expired at `now`? ip_set_timeout.h
// ip_set_timeout_expired(): time_is_before_jiffies(exp), i.e. strictly after. Wrapping time
// (format.ts MAX_TIMEOUT_S keeps every expiry within 2^31 ms of the time it was set).
@inline export function expired(exp: u32, now: u32): bool {
  return <i32>(now - exp) > 0;
}

// ---- hash:* storage -------------------------------------------------------------------------

@inline export function recAt(recs: usize, i: u32): usize {
  return recs + <usize>i * REC_BYTES;
}

@inline export function recUsed(r: usize): bool {
  return (load<u8>(r, O_FLAGS) & R_USED) != 0;
}

// A zeroed table of `cap` slots.
export function tableAlloc(cap: u32): usize {
  const bytes = <usize>cap * REC_BYTES;
  const p = heap.alloc(bytes);
  memory.fill(p, 0, bytes);
  return p;
}

// The record holding `key`, or 0.
export function hashFind(recs: usize, cap: u32, seed: u32, key: usize): usize {
  const m = cap - 1;
  let i = keyHash(key, seed) & m;
  while (true) {
    const r = recAt(recs, i);
    if (!recUsed(r)) return 0;
    if (keyEquals(r, key)) return r;
    i = (i + 1) & m;
  }
}

// The record holding `key`, or the empty slot where it would go (control time; never full, as the
// caller keeps the load at most 3/4).
export function hashSlot(recs: usize, cap: u32, seed: u32, key: usize): usize {
  const m = cap - 1;
  let i = keyHash(key, seed) & m;
  while (true) {
    const r = recAt(recs, i);
    if (!recUsed(r) || keyEquals(r, key)) return r;
    i = (i + 1) & m;
  }
}

// Empties the slot of record `r` and shifts later members of its probe run back, so every record
// stays reachable from its home slot.
export function hashRemove(recs: usize, cap: u32, seed: u32, r: usize): void {
  const m = cap - 1;
  let hole = <u32>((r - recs) / REC_BYTES);
  let j = hole;
  while (true) {
    j = (j + 1) & m;
    const rj = recAt(recs, j);
    if (!recUsed(rj)) break;
    const home = keyHash(rj, seed) & m;
    // Move rj into the hole unless its home lies cyclically in (hole, j].
    const between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (!between) {
      memory.copy(recAt(recs, hole), rj, REC_BYTES);
      hole = j;
    }
  }
  memory.fill(recAt(recs, hole), 0, REC_BYTES);
}

// Moves every used record of `old` into the empty table `recs`.
export function hashRehash(recs: usize, cap: u32, old: usize, oldCap: u32, seed: u32): void {
  for (let i: u32 = 0; i < oldCap; i++) {
    const r = recAt(old, i);
    if (recUsed(r)) memory.copy(hashSlot(recs, cap, seed, r), r, REC_BYTES);
  }
}

// Does record `r` answer at `now`? Counts the packet on it when `bytes` >= 0 (the packet path,
// ip_set_match_extensions(): counters move for any element that answers, nomatch ones included).
@inline export function recAnswer(r: usize, now: u32, counters: bool, bytes: i64): i32 {
  const fl = load<u8>(r, O_FLAGS);
  if ((fl & R_EXPIRES) != 0 && expired(load<u32>(r, O_TIME), now)) return TEST_ABSENT;
  if (counters && bytes >= 0) {
    store<u64>(r, load<u64>(r, O_PACKETS) + 1, O_PACKETS);
    store<u64>(r, load<u64>(r, O_BYTES) + <u64>bytes, O_BYTES);
  }
  return (fl & R_NOMATCH) != 0 ? TEST_NOMATCH : TEST_PRESENT;
}

// Exact lookup of `key`: TEST_*.
export function hashMatch(recs: usize, cap: u32, seed: u32, key: usize, now: u32, counters: bool, bytes: i64): i32 {
  const r = hashFind(recs, cap, seed, key);
  return r == 0 ? TEST_ABSENT : recAnswer(r, now, counters, bytes);
}

// ---- prefixes of the net types ---------------------------------------------------------------
// nets: u32 count per prefix length 0..128, then the lengths in use as u8, longest first.
const NETS_LIST: usize = 129 << 2;
export const NETS_BYTES: usize = NETS_LIST + 132;

export function netsAlloc(): usize {
  const p = heap.alloc(NETS_BYTES);
  memory.fill(p, 0, NETS_BYTES);
  return p;
}

// One more element with prefix `c`; returns the number of lengths in use.
export function netsAdd(nets: usize, n: u32, c: u32): u32 {
  const cp = nets + (<usize>c << 2);
  const k = load<u32>(cp) + 1;
  store<u32>(cp, k);
  if (k > 1) return n;
  let i = n;
  while (i > 0 && <u32>load<u8>(nets + NETS_LIST + i - 1) < c) {
    store<u8>(nets + NETS_LIST + i, load<u8>(nets + NETS_LIST + i - 1));
    i--;
  }
  store<u8>(nets + NETS_LIST + i, <u8>c);
  return n + 1;
}

// One element with prefix `c` fewer; returns the number of lengths in use.
export function netsDel(nets: usize, n: u32, c: u32): u32 {
  const cp = nets + (<usize>c << 2);
  const k = load<u32>(cp);
  if (k == 0) return n;
  store<u32>(cp, k - 1);
  if (k > 1) return n;
  let i: u32 = 0;
  while (i < n && <u32>load<u8>(nets + NETS_LIST + i) != c) i++;
  for (; i + 1 < n; i++) store<u8>(nets + NETS_LIST + i, load<u8>(nets + NETS_LIST + i + 1));
  return n - 1;
}

@inline export function netsAt(nets: usize, i: u32): u32 {
  return <u32>load<u8>(nets + NETS_LIST + i);
}

// mtype_test_cidrs(): the net part of `key` (at `netOff`, full address in `addr`) is tried at every
// stored prefix length, longest first; the first element that answers decides. `key` is scratch:
// its net part and cidr are overwritten.
export function netSearch(
  recs: usize, cap: u32, seed: u32, nets: usize, nNets: u32, key: usize, netOff: usize, addr: usize,
  now: u32, counters: bool, bytes: i64,
): i32 {
  for (let i: u32 = 0; i < nNets; i++) {
    const c = netsAt(nets, i);
    copyMasked(key + netOff, addr, c);
    store<u8>(key, <u8>c, O_CIDR);
    const r = hashFind(recs, cap, seed, key);
    if (r == 0) continue;
    const a = recAnswer(r, now, counters, bytes);
    if (a != TEST_ABSENT) return a;
  }
  return TEST_ABSENT;
}

// ---- bitmap:port storage ---------------------------------------------------------------------

@inline function words(n: u32): usize { return <usize>((n + 31) >> 5) << 2; }

export function bitsAlloc(n: u32): usize {
  const b = words(n);
  const p = heap.alloc(b);
  memory.fill(p, 0, b);
  return p;
}

export function extAlloc(n: u32, per: usize): usize {
  const b = <usize>n * per;
  const p = heap.alloc(b == 0 ? 8 : b);
  memory.fill(p, 0, b == 0 ? 8 : b);
  return p;
}

@inline export function bitsBytes(n: u32): usize { return words(n); }

@inline export function bitGet(bits: usize, i: u32): bool {
  return (load<u32>(bits + (<usize>(i >> 5) << 2)) & (1 << (i & 31))) != 0;
}

@inline export function bitSet(bits: usize, i: u32): void {
  const p = bits + (<usize>(i >> 5) << 2);
  store<u32>(p, load<u32>(p) | (1 << (i & 31)));
}

@inline export function bitClear(bits: usize, i: u32): void {
  const p = bits + (<usize>(i >> 5) << 2);
  store<u32>(p, load<u32>(p) & ~(1 << (i & 31)));
}

// Per-port expiry state (8 bytes) and counters (16 bytes).
@inline export function extAt(ext: usize, i: u32): usize { return ext + (<usize>i << 3); }
@inline export function ctrAt(ctr: usize, i: u32): usize { return ctr + (<usize>i << 4); }

// Is port index `i` present (set and not expired) at `now`? Counts the packet when `bytes` >= 0.
export function bitmapMatch(bits: usize, ext: usize, ctr: usize, i: u32, now: u32, bytes: i64): i32 {
  if (!bitGet(bits, i)) return TEST_ABSENT;
  if (ext != 0) {
    const e = extAt(ext, i);
    if ((load<u32>(e, 4) & R_EXPIRES) != 0 && expired(load<u32>(e), now)) return TEST_ABSENT;
  }
  if (ctr != 0 && bytes >= 0) {
    const c = ctrAt(ctr, i);
    store<u64>(c, load<u64>(c) + 1);
    store<u64>(c, load<u64>(c, 8) + <u64>bytes, 8);
  }
  return TEST_PRESENT;
}

// Is port index `i` set but expired at `now` (reusable by add, invisible to test)?
export function bitmapStale(bits: usize, ext: usize, i: u32, now: u32): bool {
  if (!bitGet(bits, i) || ext == 0) return false;
  const e = extAt(ext, i);
  return (load<u32>(e, 4) & R_EXPIRES) != 0 && expired(load<u32>(e), now);
}
