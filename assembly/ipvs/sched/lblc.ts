// ipvs/sched/lblc.ts — locality-based least-connection (net/netfilter/ipvs/ip_vs_lblc.c).
//
// For cache clusters: requests for the same destination IP address go to the same server. The
// service keeps a cache (addrcache.ts) from the packet's destination address to a server:
//   if cache[dst] is empty, or its server is gone, quiescent (weight 0), or overloaded in lblc's
//   sense — more active connections than its weight while some server has fewer than half its
//   weight (is_overloaded) — the weighted least-connection server (wlc's choice, ip_vs_lblc.c
//   __ip_vs_lblc_schedule) is picked and cached; otherwise the cached server is used.
// Every look-up refreshes the entry's last-use time; the periodic collection in addrcache.ts drops
// stale entries. A removed destination is cleared from the entries that name it, so they reschedule
// (the kernel sees its trashed dest lacking IP_VS_DEST_F_AVAILABLE).
//
// `dry` (the trace) reads without touching the cache.
import { Flow } from "../../flow";
import { NIL } from "../defs";
import { destNext, destWeight, destActive, destAvailable } from "../dest";
import { wlcSchedule } from "./wlc";
import { cacheBytes, cacheInit, cacheGet, cacheNew, cacheEntry, cacheBucketHead, E_PAYLOAD, E_LASTUSE, E_NEXT, CACHE_TAB_SIZE } from "./addrcache";

const ENTRY_BYTES: usize = 32;
const E_DEST: usize = E_PAYLOAD;

export function lblcStateBytes(): usize { return cacheBytes(ENTRY_BYTES); }
export function lblcInit(state: usize): void { cacheInit(state, ENTRY_BYTES); }

// ip_vs_lblc.c / ip_vs_lblcr.c is_overloaded(): busier than its weight while another server is
// under half of its own.
export function localityOverloaded(d: u32, first: u32): bool {
  if (<i64>destActive(d) > <i64>destWeight(d)) {
    for (let x = first; x != NIL; x = destNext(x)) {
      if (<i64>destActive(x) * 2 < <i64>destWeight(x)) return true;
    }
  }
  return false;
}

// ip_vs_lblc.c ip_vs_lblc_schedule().
export function lblcSchedule(state: usize, first: u32, f: Flow, now: u32, dry: bool): u32 {
  const en = cacheGet(state, f.family, f.d0, f.d1, f.d2, f.d3);
  if (en != NIL) {
    const e = cacheEntry(state, en);
    if (!dry) store<u32>(e, now, E_LASTUSE);
    const d = load<u32>(e, E_DEST);
    if (d != NIL && destAvailable(d) && destWeight(d) > 0 && !localityOverloaded(d, first)) return d;
  }
  // No cache entry or it is invalid: time to schedule.
  const d = wlcSchedule(first);
  if (d == NIL || dry) return d;
  // ip_vs_lblc_new(): update the entry, or make one (none if the pool is empty).
  if (en != NIL) {
    store<u32>(cacheEntry(state, en), d, E_DEST);
  } else {
    const n = cacheNew(state, f.family, f.d0, f.d1, f.d2, f.d3, now);
    if (n != NIL) store<u32>(cacheEntry(state, n), d, E_DEST);
  }
  return d;
}

/** The destination `d` left the service: entries naming it will reschedule. */
export function lblcPurgeDest(state: usize, d: u32): void {
  for (let b: u32 = 0; b < CACHE_TAB_SIZE; b++) {
    for (let i = cacheBucketHead(state, b); i != NIL;) {
      const e = cacheEntry(state, i);
      if (load<u32>(e, E_DEST) == d) store<u32>(e, NIL, E_DEST);
      i = load<u32>(e, E_NEXT);
    }
  }
}
