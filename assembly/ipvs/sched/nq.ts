// ipvs/sched/nq.ts — never queue (net/netfilter/ipvs/ip_vs_nq.c).
//
// Two speeds: an idle destination (no active connections) gets the job at once — the first idle
// one in list order — otherwise the shortest expected delay (activeconns + 1) / weight wins, with
// sed's 64-bit cross-multiplication and ties kept by the earlier destination. Overloaded and
// quiescent (weight 0) destinations are skipped. Stateless.
import { NIL } from "../defs";
import { destNext, destWeight, destOverloaded, destActive } from "../dest";

export function nqSchedule(first: u32): u32 {
  let least = NIL;
  let loh: i64 = 0, lw: i64 = 0;
  for (let d = first; d != NIL; d = destNext(d)) {
    const w = destWeight(d);
    if (destOverloaded(d) || w == 0) continue;
    const active = destActive(d);
    const doh = <i64>active + 1;
    // Return the server directly if it is idle.
    if (active == 0) return d;
    if (least == NIL || loh * <i64>w > doh * lw) {
      least = d;
      loh = doh;
      lw = <i64>w;
    }
  }
  return least;
}
