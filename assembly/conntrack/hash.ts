// conntrack/hash.ts — the hashed connection table: sizing at init, the seeded tuple hash, the bucket
// array, and insert / lookup / delete with Linux's early drop when full. Both tuples of every
// connection are hashed into one bucket array; a bucket holds a node id `(index << 1) | dir` and
// each entry stores the next node of each of its two chains. Per-protocol state lives in tcp.ts
// and track.ts; this file never interprets packets and never allocates after ctInit.
//
// Sizing: 2^capacityLog2 entries of 48 bytes and twice as many 4-byte buckets (one per node, so
// chains average one node when full): 56 bytes per IPv4 flow, plus 64 bytes per IPv6 flow in the
// side table sized by capacity6Log2.
//
// Expiry: an entry whose expiry has passed is gone. Lookup removes it when it meets it, insert's
// early drop removes it, and reap.ts sweeps the rest a bounded slice at a time.

import { Tuple, FAMILY_V6, PROTO_TCP } from "../flow";
import {
  ENTRY_SIZE, SIDE_SIZE, NIL, E_NEXT, E_EXPIRY, E_STATUS, E_TCPSTATE, E_TCPFLAGS, CT_ASSURED, CT_CONFIRMED, CT_DYING,
  entryAt, isUsed, storageBytes, storageInit, hasFreeEntry, hasFreeSide, takeEntry, takeSide,
  releaseEntry, writeTuples, matches, readTuple, natStatus, validPair, capacity, used, capacity6,
} from "./entry";
import { timeoutOf, newTimeoutKind, timeoutBytes } from "./timeouts";
import { TCP_NONE, TCP_FLAGS_NEW } from "./tcp";
import { ctEventsOn, ctEventsClock, ctEventDestroy } from "./events";

/** "No entry": returned by lookup and insert. */
export const CT_NONE: u32 = NIL;

// nf_conntrack_core.c: NF_CT_EVICTION_RANGE — early_drop() looks at this many buckets, starting
// at the new tuple's bucket.
export const CT_EVICTION_RANGE: u32 = 8;

export const CT_CAPACITY_LOG2_MAX: u32 = 24;
export const CT_CAPACITY6_LOG2_MAX: u32 = 22;

// Counters (u64 each) in one block: ctStats() + id * 8.
export const CT_STAT_INSERTS: u32 = 0;       // entries created (insert and import)
export const CT_STAT_DELETES: u32 = 1;       // removed by ctDelete or a flush
export const CT_STAT_EXPIRED: u32 = 2;       // removed because their time was up (reap, lookup, early drop)
export const CT_STAT_EARLY_DROPS: u32 = 3;   // non-assured entries dropped to make room
export const CT_STAT_INSERT_FAILED: u32 = 4; // table full and nothing could be dropped
export const CT_STAT_INVALID: u32 = 5;       // packets the tracker judged INVALID
export const CT_STAT_CLASH: u32 = 6;         // insert refused: one of its tuples is already tracked
export const CT_STAT_BAD_ARG: u32 = 7;       // bad index, tuple, timeout kind or record
export const CT_STAT_COUNT: u32 = 8;

const stats: usize = heap.alloc(<usize>CT_STAT_COUNT << 3);
memory.fill(stats, 0, <usize>CT_STAT_COUNT << 3);

// @ts-ignore: decorator
@inline export function statAdd(id: u32): void {
  const p = stats + (<usize>id << 3);
  store<u64>(p, load<u64>(p) + 1);
}

let buckets: usize = 0;
let bucketMask: u32 = 0;
let seed: u64 = 0;
// Scratch tuple for re-hashing a stored direction.
const scratch: Tuple = changetype<Tuple>(heap.alloc(offsetof<Tuple>()));

/**
 * Sizes and allocates the table: 2^capacityLog2 connections (1..2^24), of which up to
 * 2^capacity6Log2 (≤ capacityLog2, ≤ 2^22) may be IPv6. The 64-bit hash seed comes from the host
 * as two halves. Any previous table is discarded. False, with nothing allocated, when the sizes
 * are out of range or the memory cannot hold them.
 */
export function ctInit(capacityLog2: u32, capacity6Log2: u32, seedLo: u32, seedHi: u32): bool {
  if (capacityLog2 < 1 || capacityLog2 > CT_CAPACITY_LOG2_MAX) return false;
  if (capacity6Log2 > capacityLog2 || capacity6Log2 > CT_CAPACITY6_LOG2_MAX) return false;
  const need = storageBytes(capacityLog2, capacity6Log2) + (<u64>8 << capacityLog2);
  const held = <u64>ctBytes();
  // Page budget of a wasm32 memory; three pages of slack for allocator headers.
  const pages = (need - min(need, held) + 0xFFFF) >> 16;
  if (<u64>memory.size() + pages + 3 > 65536) return false;

  if (buckets != 0) heap.free(buckets);
  storageInit(capacityLog2, capacity6Log2);
  const nb = <usize>2 << capacityLog2;
  buckets = heap.alloc(nb << 2);
  memory.fill(buckets, 0xFF, nb << 2);
  bucketMask = <u32>nb - 1;
  // Mixed with a constant so a zero seed still spreads.
  seed = ((<u64>seedHi << 32) | <u64>seedLo) ^ 0x243F6A8885A308D3;
  memory.fill(stats, 0, <usize>CT_STAT_COUNT << 3);
  return true;
}

// @ts-ignore: decorator
@inline function mix(h: u64, w: u64): u64 {
  h = (h ^ w) * 0x9E3779B97F4A7C15;
  return h ^ (h >> 29);
}

/**
 * Seeded hash of a tuple (multiply–xorshift over 64-bit words; not SipHash: it spreads an
 * attacker's tuples as long as the seed stays secret, nothing more).
 */
export function hashTuple(t: Tuple): u32 {
  return hashOf(t);
}

// hashTuple's body, inlined into the lookup every packet makes.
// @ts-ignore: decorator
@inline function hashOf(t: Tuple): u32 {
  let h = mix(seed, <u64>t.sport | (<u64>t.dport << 16) | (<u64>t.proto << 32) |
    (<u64>t.icmpType << 40) | (<u64>t.family << 48));
  h = mix(h, <u64>t.s0 | (<u64>t.d0 << 32));
  if (t.family == FAMILY_V6) {
    h = mix(h, <u64>t.s1 | (<u64>t.s2 << 32));
    h = mix(h, <u64>t.s3 | (<u64>t.d1 << 32));
    h = mix(h, <u64>t.d2 | (<u64>t.d3 << 32));
  }
  h = (h ^ (h >> 32)) * 0xD6E8FEB86659FD93;
  return <u32>(h ^ (h >> 32));
}

// @ts-ignore: decorator
@inline function bucketAt(b: u32): usize {
  return buckets + (<usize>b << 2);
}

// @ts-ignore: decorator
@inline function nextOf(node: u32): usize {
  return entryAt(node >> 1) + E_NEXT + (<usize>(node & 1) << 2);
}

/** Has the entry's time run out? (`now` and expiry are wrapping u32 milliseconds.) */
// @ts-ignore: decorator
@inline export function isExpired(e: usize, now: u32): bool {
  return <i32>(load<u32>(e + E_EXPIRY) - now) <= 0;
}

function link(index: u32, dir: u32, hash: u32): void {
  const p = bucketAt(hash & bucketMask);
  const node = (index << 1) | dir;
  store<u32>(nextOf(node), load<u32>(p));
  store<u32>(p, node);
}

function unlink(index: u32, dir: u32): void {
  readTuple(entryAt(index), dir, scratch);
  const node = (index << 1) | dir;
  let p = bucketAt(hashTuple(scratch) & bucketMask);
  let n = load<u32>(p);
  while (n != NIL) {
    if (n == node) {
      store<u32>(p, load<u32>(nextOf(node)));
      return;
    }
    p = nextOf(n);
    n = load<u32>(p);
  }
}

/** Unlinks and frees an entry (no counter: callers count why it went). */
export function removeEntry(index: u32): void {
  // A listener hears of connections that were stored (the kernel's confirmed ones) going, once.
  if (ctEventsOn && (load<u8>(entryAt(index) + E_STATUS) & (CT_CONFIRMED | CT_DYING)) == CT_CONFIRMED) ctEventDestroy(index);
  unlink(index, 0);
  unlink(index, 1);
  releaseEntry(index);
}

/** The live node carrying `t`, or NIL; an expired match is removed and counted on the way. */
function findNode(t: Tuple, now: u32): u32 {
  let n = load<u32>(bucketAt(hashOf(t) & bucketMask));
  while (n != NIL) {
    const e = entryAt(n >> 1);
    if (matches(e, n & 1, t)) {
      if (isExpired(e, now)) {
        removeEntry(n >> 1);
        statAdd(CT_STAT_EXPIRED);
        return NIL;
      }
      return n;
    }
    n = load<u32>(e + E_NEXT + (<usize>(n & 1) << 2));
  }
  return NIL;
}

/**
 * Where a lookup of `t` starts: its bucket word's address (0 before ctInit). Reads nothing; for
 * the batch look-ahead (netfilter/lookahead.ts), which loads it ahead of the packet.
 */
export function ctBucketOf(t: Tuple): usize {
  return buckets == 0 ? 0 : bucketAt(hashOf(t) & bucketMask);
}

/** The entry of node `n` (a bucket word or chain link; 0 for NIL). */
export function ctNodeEntry(n: u32): usize {
  return n == NIL ? 0 : entryAt(n >> 1);
}

/** Does node `n` carry tuple `t`? (Expiry not considered; false for NIL.) */
export function ctNodeMatches(n: u32, t: Tuple): bool {
  return n != NIL && matches(entryAt(n >> 1), n & 1, t);
}

/**
 * Finds the connection a packet with tuple `t` belongs to: `(index << 1) | dir` (dir 0 when `t`
 * is the original tuple, 1 when it is the reply tuple), or CT_NONE.
 */
export function ctLookup(t: Tuple, now: u32): u32 {
  if (buckets == 0) return CT_NONE;
  return findNode(t, now);
}

/**
 * early_drop(): walks up to CT_EVICTION_RANGE buckets from `bucket`; in the first one holding
 * anything that can go, removes every expired and every non-assured entry. True when room was
 * made. Unlike the kernel, removing only expired entries counts as room (they are gone anyway).
 */
function earlyDrop(bucket: u32, now: u32): bool {
  let b = bucket;
  for (let i: u32 = 0; i < CT_EVICTION_RANGE; i++) {
    let freed = 0;
    let n = load<u32>(bucketAt(b));
    while (n != NIL) {
      const e = entryAt(n >> 1);
      if (isExpired(e, now)) {
        removeEntry(n >> 1);
        statAdd(CT_STAT_EXPIRED);
      } else if (!(load<u8>(e + E_STATUS) & CT_ASSURED)) {
        removeEntry(n >> 1);
        statAdd(CT_STAT_EARLY_DROPS);
      } else {
        n = load<u32>(e + E_NEXT + (<usize>(n & 1) << 2));
        continue;
      }
      // The chain changed under us (possibly both nodes of the entry): start the bucket again.
      freed++;
      n = load<u32>(bucketAt(b));
    }
    if (freed != 0) return true;
    b = (b + 1) & bucketMask;
  }
  return false;
}

/**
 * Creates a connection from its original tuple and its reply tuple (differing from the inverted
 * original where NAT applies; SNAT/DNAT status follows from that). The entry starts in the
 * protocol's NEW-state timeout; the caller then passes the first packet to ctPacket. Returns the
 * index, or CT_NONE when the tuples are malformed (counted BAD_ARG), either tuple is already
 * tracked (CLASH), or the table is full and early drop found nothing to drop (INSERT_FAILED).
 */
export function ctInsert(orig: Tuple, reply: Tuple, now: u32): u32 {
  if (buckets == 0 || !validPair(orig, reply)) {
    statAdd(CT_STAT_BAD_ARG);
    return CT_NONE;
  }
  if (findNode(orig, now) != NIL || findNode(reply, now) != NIL) {
    statAdd(CT_STAT_CLASH);
    return CT_NONE;
  }
  const v6 = orig.family == FAMILY_V6;
  const origHash = hashTuple(orig);
  if (!hasFreeEntry() || (v6 && !hasFreeSide())) {
    earlyDrop(origHash & bucketMask, now);
    if (!hasFreeEntry() || (v6 && !hasFreeSide())) {
      statAdd(CT_STAT_INSERT_FAILED);
      return CT_NONE;
    }
  }
  ctEventsClock(now);
  const index = takeEntry();
  const slot = v6 ? takeSide() : 0;
  writeTuples(index, slot, orig, reply, natStatus(orig, reply));
  const e = entryAt(index);
  if (orig.proto == PROTO_TCP) {
    store<u8>(e + E_TCPSTATE, TCP_NONE);
    store<u8>(e + E_TCPFLAGS, TCP_FLAGS_NEW);
  }
  store<u32>(e + E_EXPIRY, now + timeoutOf(newTimeoutKind(orig.proto)));
  link(index, 0, origHash);
  link(index, 1, hashTuple(reply));
  statAdd(CT_STAT_INSERTS);
  return index;
}

/** Removes a connection; false for a free or out-of-range index (counted as BAD_ARG, ignored). */
export function ctDelete(index: u32): bool {
  if (!isUsed(index)) {
    statAdd(CT_STAT_BAD_ARG);
    return false;
  }
  removeEntry(index);
  statAdd(CT_STAT_DELETES);
  return true;
}

/** Connections in the table (including expired ones not yet reaped). */
export function ctCount(): u32 {
  return used;
}

export function ctCapacity(): u32 {
  return capacity;
}

/** Total bytes this table holds: entries, buckets, IPv6 side table, counters and timeouts. */
export function ctBytes(): usize {
  if (buckets == 0) return 0;
  return <usize>capacity * ENTRY_SIZE + ((<usize>bucketMask + 1) << 2) +
    <usize>capacity6 * SIDE_SIZE + (<usize>CT_STAT_COUNT << 3) + timeoutBytes();
}

/** The counter block: CT_STAT_COUNT little-endian u64s, indexed by CT_STAT_*. */
export function ctStats(): usize {
  return stats;
}

/** One counter (0 for an unknown id). */
export function ctStat(id: u32): u64 {
  return id < CT_STAT_COUNT ? load<u64>(stats + (<usize>id << 3)) : 0;
}
