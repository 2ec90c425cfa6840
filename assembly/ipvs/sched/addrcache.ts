// ipvs/sched/addrcache.ts — the destination-address cache lblc and lblcr keep per service: a hash
// table of 2^10 buckets (CONFIG_IP_VS_LBLC_TAB_BITS / _LBLCR_TAB_BITS default 10) of entries keyed
// by a destination IP address, each with its last-use time and a scheduler payload, and the
// kernel's garbage collection (ip_vs_lblc.c ip_vs_lblc_check_expire / ip_vs_lblc_full_check, the
// same in ip_vs_lblcr.c): every 60 s, if the table holds more than max_size entries, drop entries
// unused for 6 minutes, up to (entries − max_size) × 4/3 of them (at most max_size / 2), resuming
// at a rover bucket; every 30th run instead drops everything unused for the *_expiration sysctl
// (24 h by default). Time is the caller's `now` (ms, wrapping).
//
// Differences from the kernel, forced by fixed memory: entries come from a pool of CACHE_CAPACITY
// per service allocated with the scheduler state (the kernel kmallocs per entry); when the pool is
// empty no entry is made and the scheduled destination is used uncached — the kernel's behaviour
// on a failed allocation. max_size is 3/4 of the pool (the kernel's 16 × 1024 would exceed it).
//
// Layout: header (32 bytes), buckets (4 bytes each), entries (`esize` bytes each: 0 address words,
// 16 u32 next, 20 u32 last use, 24… payload). Never allocates.
import { NIL, addrFoldHost, hash32 } from "../defs";

export const CACHE_TAB_BITS: u32 = 10;
export const CACHE_TAB_SIZE: u32 = 1 << CACHE_TAB_BITS;
export const CACHE_CAPACITY: u32 = 4096;
const MAX_SIZE: u32 = CACHE_CAPACITY * 3 / 4;
export const CHECK_EXPIRE_INTERVAL: u32 = 60 * 1000;   // 60*HZ
export const ENTRY_TIMEOUT: u32 = 6 * 60 * 1000;       // 6*60*HZ
export const DEFAULT_EXPIRATION: u32 = 24 * 60 * 60 * 1000;
const COUNT_FOR_FULL_EXPIRATION: u32 = 30;

const H_ENTRIES: usize = 0;
const H_FREE: usize = 4;
const H_ROVER: usize = 8;
const H_COUNTER: usize = 12;
const H_NEXT_CHECK: usize = 16;
const H_STARTED: usize = 20;
const H_ESIZE: usize = 24;
const HEADER: usize = 32;
const BUCKETS: usize = HEADER;
const POOL: usize = HEADER + (<usize>CACHE_TAB_SIZE << 2);

export const E_NEXT: usize = 16;
export const E_LASTUSE: usize = 20;
export const E_PAYLOAD: usize = 24;

export function cacheBytes(esize: usize): usize { return POOL + <usize>CACHE_CAPACITY * esize; }

// @ts-ignore: decorator
@inline export function cacheEntry(c: usize, i: u32): usize { return c + POOL + <usize>i * <usize>load<u32>(c, H_ESIZE); }

export function cacheInit(c: usize, esize: usize): void {
  memory.fill(c, 0, HEADER);
  store<u32>(c, <u32>esize, H_ESIZE);
  store<u32>(c, 1, H_COUNTER);
  for (let b: u32 = 0; b < CACHE_TAB_SIZE; b++) store<u32>(c + BUCKETS + (<usize>b << 2), NIL);
  let head = NIL;
  for (let i = CACHE_CAPACITY; i > 0; i--) {
    store<u32>(cacheEntry(c, i - 1), head, E_NEXT);
    head = i - 1;
  }
  store<u32>(c, head, H_FREE);
}

export function cacheCount(c: usize): u32 { return load<u32>(c, H_ENTRIES); }

// ip_vs_lblc_hashkey().
// @ts-ignore: decorator
@inline function bucketOf(family: u8, a0: u32, a1: u32, a2: u32, a3: u32): u32 {
  return hash32(addrFoldHost(family, a0, a1, a2, a3), CACHE_TAB_BITS);
}

// ip_vs_lblc_get(): the entry for an address, or NIL.
export function cacheGet(c: usize, family: u8, a0: u32, a1: u32, a2: u32, a3: u32): u32 {
  let i = load<u32>(c + BUCKETS + (<usize>bucketOf(family, a0, a1, a2, a3) << 2));
  while (i != NIL) {
    const e = cacheEntry(c, i);
    if (load<u32>(e) == a0 && load<u32>(e, 4) == a1 && load<u32>(e, 8) == a2 && load<u32>(e, 12) == a3) return i;
    i = load<u32>(e, E_NEXT);
  }
  return NIL;
}

/** A new entry at the head of its bucket (hlist_add_head_rcu), last used `now`. NIL when the pool is empty. */
export function cacheNew(c: usize, family: u8, a0: u32, a1: u32, a2: u32, a3: u32, now: u32): u32 {
  const i = load<u32>(c, H_FREE);
  if (i == NIL) return NIL;
  const e = cacheEntry(c, i);
  store<u32>(c, load<u32>(e, E_NEXT), H_FREE);
  memory.fill(e, 0, <usize>load<u32>(c, H_ESIZE));
  store<u32>(e, a0); store<u32>(e, a1, 4); store<u32>(e, a2, 8); store<u32>(e, a3, 12);
  store<u32>(e, now, E_LASTUSE);
  const bp = c + BUCKETS + (<usize>bucketOf(family, a0, a1, a2, a3) << 2);
  store<u32>(e, load<u32>(bp), E_NEXT);
  store<u32>(bp, i);
  store<u32>(c, load<u32>(c, H_ENTRIES) + 1, H_ENTRIES);
  return i;
}

// Drops every entry of bucket `b` for which now ≥ lastuse + age (the kernel's time_before test
// failing). Returns how many went.
function sweepBucket(c: usize, b: u32, now: u32, age: u32): i32 {
  const bp = c + BUCKETS + (<usize>b << 2);
  let prev = NIL, i = load<u32>(bp);
  let n = 0;
  while (i != NIL) {
    const e = cacheEntry(c, i);
    const next = load<u32>(e, E_NEXT);
    if (<i32>(now - (load<u32>(e, E_LASTUSE) + age)) >= 0) {
      if (prev == NIL) store<u32>(bp, next); else store<u32>(cacheEntry(c, prev), next, E_NEXT);
      store<u32>(e, load<u32>(c, H_FREE), E_NEXT);
      store<u32>(c, i, H_FREE);
      store<u32>(c, load<u32>(c, H_ENTRIES) - 1, H_ENTRIES);
      n++;
    } else {
      prev = i;
    }
    i = next;
  }
  return n;
}

/**
 * The periodic timer (ip_vs_lblc_check_expire): runs when `now` has reached the next check time
 * (the first call only arms it). Returns entries removed.
 */
export function cacheCheckExpire(c: usize, now: u32, expiration: u32): u32 {
  if (load<u32>(c, H_STARTED) == 0) {
    store<u32>(c, 1, H_STARTED);
    store<u32>(c, now + CHECK_EXPIRE_INTERVAL, H_NEXT_CHECK);
    return 0;
  }
  if (<i32>(now - load<u32>(c, H_NEXT_CHECK)) < 0) return 0;
  store<u32>(c, now + CHECK_EXPIRE_INTERVAL, H_NEXT_CHECK);
  const counter = load<u32>(c, H_COUNTER);
  let removed: i32 = 0;
  let j = load<u32>(c, H_ROVER);
  if (counter % COUNT_FOR_FULL_EXPIRATION == 0) {
    // ip_vs_lblc_full_check(): every bucket, entries older than the expiration sysctl.
    for (let i: u32 = 0; i < CACHE_TAB_SIZE; i++) {
      j = (j + 1) & (CACHE_TAB_SIZE - 1);
      removed += sweepBucket(c, j, now, expiration);
    }
    store<u32>(c, j, H_ROVER);
    store<u32>(c, 1, H_COUNTER);
    return <u32>removed;
  }
  const entries = load<u32>(c, H_ENTRIES);
  if (entries <= MAX_SIZE) {
    store<u32>(c, counter + 1, H_COUNTER);
    return 0;
  }
  let goal = <i32>((entries - MAX_SIZE) * 4 / 3);
  if (goal > <i32>(MAX_SIZE / 2)) goal = <i32>(MAX_SIZE / 2);
  for (let i: u32 = 0; i < CACHE_TAB_SIZE; i++) {
    j = (j + 1) & (CACHE_TAB_SIZE - 1);
    const n = sweepBucket(c, j, now, ENTRY_TIMEOUT);
    removed += n;
    goal -= n;
    if (goal <= 0) break;
  }
  store<u32>(c, j, H_ROVER);
  return <u32>removed;
}

/** The first entry of bucket `b` (NIL if empty), for the schedulers' walks on the control path. */
export function cacheBucketHead(c: usize, b: u32): u32 { return load<u32>(c + BUCKETS + (<usize>b << 2)); }
