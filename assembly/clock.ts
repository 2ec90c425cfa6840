// clock.ts — the core's time. Hosts pass milliseconds (any epoch) as an f64 to every call that
// needs the time; tables stamp and compare the u32 that wraps every 49.7 days, ordering two
// times by the sign of their difference (the kernel's time_after on jiffies). Never reads a clock.
//
// That ordering holds only while the times compared are less than 2^31 ms (24.8 days) apart.
// Tables whose entries expire (conntrack, IPVS connections, ipset timeouts) are swept by their
// reapers long before. The stamps that never expire — the direct table's ClientIP affinity and the
// `recent` lists, where the kernel keeps 64-bit jiffies — would wrap: a client back after 25 days
// of silence looked freshly stamped and was sent to its old endpoint for another 24.8 days. So
// every call's time passes through coreNow(), which every UPKEEP_EVERY of host time (and at once
// after a longer silence) moves every stamp older than STAMP_AGE_CAP up to exactly that age. Any
// window up to the cap (kube-proxy's affinity: at most a day) then decides as with 64-bit time;
// a `recent --seconds` window wider than the cap (the core takes up to 2^31 ms) counts every stamp
// still held as inside it.
//
// Hosts should pass unwrapped milliseconds; a host clock that wraps at 2^32 is followed too, short
// of a silence of more than 24.8 days across its wrap.
import { affinityUpkeep } from "./svc/affinity";
import { recentUpkeep } from "./netfilter/recent";

// 2^31 − 2^27 ms (23.3 days): below 2^31 by more than the longest time between two upkeeps, so a
// stamp's age, clamped at the last upkeep and grown since, still orders by sign.
export const STAMP_AGE_CAP: u32 = 0x78000000;
// 2^26 ms (18.6 hours).
const UPKEEP_EVERY: f64 = 67108864;

let started = false;
let lastMs: f64 = 0;
let sinceUpkeep: f64 = 0;

// The host's time `nowMs` as the core's wrapping u32, after the upkeep it is due.
export function coreNow(nowMs: f64): u32 {
  const now = <u32><i64>nowMs;
  if (!started) {
    started = true;
    lastMs = nowMs;
    return now;
  }
  // Back by more than 2^31: a host clock that wrapped at 2^32. Back by less: no time passed.
  const elapsed = nowMs >= lastMs ? nowMs - lastMs : lastMs - nowMs > 2147483648 ? <f64>(now - <u32><i64>lastMs) : 0;
  lastMs = nowMs;
  sinceUpkeep += elapsed;
  if (sinceUpkeep >= UPKEEP_EVERY) {
    // After a silence of the cap or longer every stamp held is at least that old.
    upkeep(now, elapsed >= <f64>STAMP_AGE_CAP);
    sinceUpkeep = 0;
  }
  return now;
}

function upkeep(now: u32, all: bool): void {
  affinityUpkeep(now, STAMP_AGE_CAP, all);
  recentUpkeep(now, STAMP_AGE_CAP, all);
}

// A `recent --seconds` window in ms, held to the cap.
export function windowMs(seconds: u32): u32 {
  return <u64>seconds * 1000 >= <u64>STAMP_AGE_CAP ? STAMP_AGE_CAP : seconds * 1000;
}
