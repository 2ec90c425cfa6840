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
// A silence (no call) of 12.4 days or more would, in the same way, let an entry that expired
// before it read as live (a conntrack flow, an IPVS connection, a timed ipset element): before
// anything else the first call after one sweeps those tables as of two times in between, so every
// expiry is compared with a time less than 2^31 ms away.
//
// Hosts should pass unwrapped milliseconds; a host clock that wraps at 2^32 is followed too, short
// of a silence of more than 24.8 days across its wrap.
import { affinityUpkeep } from "./svc/affinity";
import { recentUpkeep } from "./netfilter/recent";
import { ctReap } from "./conntrack/table";
import { ipvsReapConns } from "./ipvs/api";
import { regReap } from "./ipset/registry";
import { add, S_REAPED } from "./stats";

// 2^31 − 2^27 ms (23.3 days): below 2^31 by more than the longest time between two upkeeps, so a
// stamp's age, clamped at the last upkeep and grown since, still orders by sign.
export const STAMP_AGE_CAP: u32 = 0x78000000;
// 2^26 ms (18.6 hours).
const UPKEEP_EVERY: f64 = 67108864;
// 2^30 ms (12.4 days).
const CATCH_UP_AFTER: f64 = 1073741824;

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
  const last = <u32><i64>lastMs;
  const elapsed = nowMs >= lastMs ? nowMs - lastMs : lastMs - nowMs > 2147483648 ? <f64>(now - last) : 0;
  lastMs = nowMs;
  if (elapsed >= CATCH_UP_AFTER) catchUp(last, elapsed);
  sinceUpkeep += elapsed;
  if (sinceUpkeep >= UPKEEP_EVERY) {
    // After a silence of the cap or longer every stamp held is at least that old.
    upkeep(now, elapsed >= <f64>STAMP_AGE_CAP);
    sinceUpkeep = 0;
  }
  return now;
}

// Every expiry is below last + 2^31 (each timeout is under 2^31 ms and was set at or before
// `last`): swept as of last + 2^30, then as of last + min(elapsed, 2^31 − 1), no expiry is compared
// with a time 2^31 ms or more away, and none left is due before the call's own time.
function catchUp(last: u32, elapsed: f64): void {
  sweepExpiring(last + (1 << 30));
  sweepExpiring(last + <u32>min(elapsed, 2147483647));
}

function sweepExpiring(at: u32): void {
  add(S_REAPED, ctReap(at, 0xFFFFFFFF));
  ipvsReapConns(at, 0xFFFFFFFF);
  regReap(at, 0xFFFFFFFF);
}

function upkeep(now: u32, all: bool): void {
  affinityUpkeep(now, STAMP_AGE_CAP, all);
  recentUpkeep(now, STAMP_AGE_CAP, all);
}

// A `recent --seconds` window in ms, held to the cap.
export function windowMs(seconds: u32): u32 {
  return <u64>seconds * 1000 >= <u64>STAMP_AGE_CAP ? STAMP_AGE_CAP : seconds * 1000;
}
