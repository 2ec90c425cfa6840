// ipvs/sched/lblcr.ts — locality-based least-connection with replication
// (net/netfilter/ipvs/ip_vs_lblcr.c).
//
// Like lblc, but each destination address maps to a *set* of servers (addrcache.ts entry payload):
//   no entry: pick the weighted least-connection server (wlc's choice), make an entry holding it;
//   entry:    n = the weighted least-loaded available member of the set (ip_vs_dest_set_min);
//             if the set has more than one member and was not modified for the lblcr_expiration
//             sysctl, the most loaded member (ip_vs_dest_set_max) is dropped from it;
//             if n is missing or overloaded in lblc's sense (is_overloaded), pick wlc's server and
//             add it to the set.
// Set order is the kernel's list_add_rcu order: newest member first, which decides ties. Any
// change to the set stamps its last-modified time.
//
// Difference from the kernel, forced by fixed memory: a set holds at most SET_MAX servers; adding to
// a full set does nothing (the kernel's behaviour on a failed kmalloc of a set element).
// `dry` (the trace) reads without touching the cache.
import { Flow } from "../../flow";
import { NIL } from "../defs";
import { destWeight, destOverloaded, destOverhead, destAvailable } from "../dest";
import { wlcSchedule } from "./wlc";
import { localityOverloaded } from "./lblc";
import { cacheBytes, cacheInit, cacheGet, cacheNew, cacheEntry, cacheBucketHead, E_PAYLOAD, E_LASTUSE, E_NEXT, CACHE_TAB_SIZE } from "./addrcache";

export const SET_MAX: u32 = 8;
const ENTRY_BYTES: usize = 64;
const E_LASTMOD: usize = E_PAYLOAD;      // 24
const E_SIZE: usize = E_PAYLOAD + 4;     // 28
const E_SET: usize = E_PAYLOAD + 8;      // 32 … 63: SET_MAX dest ids, newest first

export function lblcrStateBytes(): usize { return cacheBytes(ENTRY_BYTES); }
export function lblcrInit(state: usize): void { cacheInit(state, ENTRY_BYTES); }

// @ts-ignore: decorator
@inline function member(e: usize, k: u32): u32 { return load<u32>(e + E_SET + (<usize>k << 2)); }

// ip_vs_dest_set_insert(): at the head, unless present (when `check`) or the set is full.
function setInsert(e: usize, d: u32, check: bool, now: u32): void {
  const size = load<u32>(e, E_SIZE);
  if (check) for (let k: u32 = 0; k < size; k++) if (member(e, k) == d) return;
  if (size >= SET_MAX) return;
  for (let k = size; k > 0; k--) store<u32>(e + E_SET + (<usize>k << 2), member(e, k - 1));
  store<u32>(e + E_SET, d);
  store<u32>(e, size + 1, E_SIZE);
  store<u32>(e, now, E_LASTMOD);
}

// ip_vs_dest_set_erase().
function setErase(e: usize, d: u32, now: u32, stamp: bool): void {
  const size = load<u32>(e, E_SIZE);
  for (let k: u32 = 0; k < size; k++) {
    if (member(e, k) != d) continue;
    for (let j = k; j + 1 < size; j++) store<u32>(e + E_SET + (<usize>j << 2), member(e, j + 1));
    store<u32>(e, size - 1, E_SIZE);
    if (stamp) store<u32>(e, now, E_LASTMOD);
    return;
  }
}

// ip_vs_dest_set_min(): weighted least-connection among the available members.
function setMin(e: usize): u32 {
  const size = load<u32>(e, E_SIZE);
  let k: u32 = 0;
  let least = NIL;
  for (; k < size; k++) {
    const d = member(e, k);
    if (destOverloaded(d)) continue;
    if (destWeight(d) > 0 && destAvailable(d)) { least = d; break; }
  }
  if (least == NIL) return NIL;
  let loh = <i64>destOverhead(least), lw = <i64>destWeight(least);
  for (k++; k < size; k++) {
    const d = member(e, k);
    if (destOverloaded(d)) continue;
    const doh = <i64>destOverhead(d), dw = <i64>destWeight(d);
    if (loh * dw > doh * lw && destAvailable(d)) { least = d; loh = doh; lw = dw; }
  }
  return least;
}

// ip_vs_dest_set_max(): weighted most-connection member with weight > 0.
function setMax(e: usize): u32 {
  const size = load<u32>(e, E_SIZE);
  let k: u32 = 0;
  let most = NIL;
  for (; k < size; k++) {
    if (destWeight(member(e, k)) > 0) { most = member(e, k); break; }
  }
  if (most == NIL) return NIL;
  let moh = <i64>destOverhead(most), mw = <i64>destWeight(most);
  for (k++; k < size; k++) {
    const d = member(e, k);
    const doh = <i64>destOverhead(d), dw = <i64>destWeight(d);
    if (moh * dw < doh * mw && dw > 0) { most = d; moh = doh; mw = dw; }
  }
  return most;
}

// ip_vs_lblcr.c ip_vs_lblcr_schedule().
export function lblcrSchedule(state: usize, first: u32, f: Flow, now: u32, expiration: u32, dry: bool): u32 {
  const en = cacheGet(state, f.family, f.d0, f.d1, f.d2, f.d3);
  if (en != NIL) {
    const e = cacheEntry(state, en);
    if (!dry) store<u32>(e, now, E_LASTUSE);
    let d = setMin(e);
    // More than one member and nothing changed for the expiration time: shed the busiest.
    if (!dry && load<u32>(e, E_SIZE) > 1 && <i32>(now - (load<u32>(e, E_LASTMOD) + expiration)) > 0) {
      const m = setMax(e);
      if (m != NIL) setErase(e, m, now, true);
    }
    if (d != NIL && !localityOverloaded(d, first)) return d;
    d = wlcSchedule(first);
    if (d == NIL || dry) return d;
    setInsert(e, d, true, now);
    return d;
  }
  const d = wlcSchedule(first);
  if (d == NIL || dry) return d;
  const n = cacheNew(state, f.family, f.d0, f.d1, f.d2, f.d3, now);
  if (n != NIL) setInsert(cacheEntry(state, n), d, false, now);
  return d;
}

/** The destination `d` left the service: it leaves every set. */
export function lblcrPurgeDest(state: usize, d: u32): void {
  for (let b: u32 = 0; b < CACHE_TAB_SIZE; b++) {
    for (let i = cacheBucketHead(state, b); i != NIL;) {
      const e = cacheEntry(state, i);
      setErase(e, d, 0, false);
      i = load<u32>(e, E_NEXT);
    }
  }
}
