// ipvs/est.ts — per-service, per-destination and total traffic counters (ip_vs_core.c
// ip_vs_in_stats / ip_vs_out_stats / ip_vs_conn_stats) and the rate estimator (ip_vs_est.c).
//
// Counters: conns, inpkts, outpkts, inbytes, outbytes (u64). Packets count only while the
// destination is available, to the destination, its service and the totals, as the kernel does.
// Estimator: every 2 s of `now` (ipvsTick drives it) each block's rates move a quarter of the way to
// the last interval's rate, in fixed point — rate = (count − last) << 9 for conns and packets
// (per-second ×2^10 over a 2 s tick), << 4 for bytes (×2^5); r += (rate − r) >> 2. Read back as
// (r + 0x1FF) >> 10 per second, bytes (r + 0xF) >> 5 (ip_vs_read_estimator). After a gap longer than
// a few ticks the estimator runs at most EST_CATCH_UP ticks and then re-arms from `now`.
// Never allocates after estInit.
import { STAT_CONNS, STAT_INPKTS, STAT_OUTPKTS, STAT_INBYTES, STAT_OUTBYTES, STAT_LAST, STAT_RATE, destStat, destMax, destIsUsed, destAvailable, destSvc } from "./dest";
import { svcStat, svcMax, svcIsLive } from "./service";

export const EST_INTERVAL: u32 = 2000;
const EST_CATCH_UP: u32 = 8;

let estArmed = false;
let estNext: u32 = 0;

// @ts-ignore: decorator
@inline function bump(p: usize, n: u64): void { store<u64>(p, load<u64>(p) + n); }

/** The totals block (/proc/net/ip_vs_stats): the service pool's extra row. */
// @ts-ignore: decorator
@inline export function totStat(i: u32): usize { return svcStat(svcMax, i); }

/** ip_vs_in_stats(): a packet towards the real server. */
export function inStats(d: u32, len: u32): void {
  if (!destAvailable(d)) return;
  const s = destSvc(d);
  bump(destStat(d, STAT_INPKTS), 1); bump(destStat(d, STAT_INBYTES), len);
  bump(svcStat(s, STAT_INPKTS), 1); bump(svcStat(s, STAT_INBYTES), len);
  bump(totStat(STAT_INPKTS), 1); bump(totStat(STAT_INBYTES), len);
}

/** ip_vs_out_stats(): a reply from the real server. */
export function outStats(d: u32, len: u32): void {
  if (!destAvailable(d)) return;
  const s = destSvc(d);
  bump(destStat(d, STAT_OUTPKTS), 1); bump(destStat(d, STAT_OUTBYTES), len);
  bump(svcStat(s, STAT_OUTPKTS), 1); bump(svcStat(s, STAT_OUTBYTES), len);
  bump(totStat(STAT_OUTPKTS), 1); bump(totStat(STAT_OUTBYTES), len);
}

/** ip_vs_conn_stats(): a new connection, counted to its destination and the scheduling service. */
export function connStats(d: u32, s: u32): void {
  bump(destStat(d, STAT_CONNS), 1);
  bump(svcStat(s, STAT_CONNS), 1);
  bump(totStat(STAT_CONNS), 1);
}

// ip_vs_est.c estimation_timer() for one counter block at `base`.
function estimateBlock(base: usize): void {
  for (let k: u32 = 0; k < 5; k++) {
    const n = load<u64>(base + (<usize>k << 3));
    const lastP = base + (<usize>(STAT_LAST + k) << 3);
    const rateP = base + (<usize>(STAT_RATE + k) << 3);
    const shift: u64 = k < 3 ? 9 : 4;
    const rate = <i64>((n - load<u64>(lastP)) << shift);
    store<u64>(lastP, n);
    const r = load<i64>(rateP);
    store<i64>(rateP, r + ((rate - r) >> 2));
  }
}

function estimateAll(): void {
  for (let s: u32 = 0; s < svcMax; s++) if (svcIsLive(s)) estimateBlock(svcStat(s, 0));
  estimateBlock(totStat(0));
  for (let d: u32 = 0; d < destMax; d++) if (destIsUsed(d)) estimateBlock(destStat(d, 0));
}

/** Runs the estimator ticks due at `now`. Returns how many ran. */
export function estTick(now: u32): u32 {
  if (!estArmed) {
    estArmed = true;
    estNext = now + EST_INTERVAL;
    return 0;
  }
  let n: u32 = 0;
  while (<i32>(now - estNext) >= 0) {
    estimateAll();
    estNext += EST_INTERVAL;
    if (++n >= EST_CATCH_UP) { estNext = now + EST_INTERVAL; break; }
  }
  return n;
}

/** ip_vs_read_estimator(): rate `k` (0 cps, 1 inpps, 2 outpps, 3 inbps, 4 outbps) of a block. */
export function estRead(base: usize, k: u32): u64 {
  const r = load<i64>(base + (<usize>(STAT_RATE + k) << 3));
  if (r <= 0) return 0;
  return k < 3 ? <u64>(r + 0x1FF) >> 10 : <u64>(r + 0xF) >> 5;
}

