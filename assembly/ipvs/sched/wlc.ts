// ipvs/sched/wlc.ts — weighted least-connection (net/netfilter/ipvs/ip_vs_wlc.c).
//
// Load of a destination = overhead / weight, overhead = (activeconns << 8) + totalconns. The first
// destination (list order) that is not overloaded and has weight > 0 is the starting candidate;
// every later one that is not overloaded replaces it when loh * dw > doh * lw (the division done as
// a 64-bit cross-multiplication, no floats). So ties stay with the earlier destination, and a
// quiescent destination (weight 0) can never win: 0 on the right side is never exceeded by a
// non-negative left. Stateless.
import { NIL } from "../defs";
import { destNext, destWeight, destOverloaded, destOverhead } from "../dest";

export function wlcSchedule(first: u32): u32 {
  let d = first;
  while (d != NIL && (destOverloaded(d) || destWeight(d) <= 0)) d = destNext(d);
  if (d == NIL) return NIL;
  let least = d;
  let loh = <i64>destOverhead(d);
  let lw = <i64>destWeight(d);
  for (d = destNext(d); d != NIL; d = destNext(d)) {
    if (destOverloaded(d)) continue;
    const doh = <i64>destOverhead(d);
    const dw = <i64>destWeight(d);
    if (loh * dw > doh * lw) {
      least = d;
      loh = doh;
      lw = dw;
    }
  }
  return least;
}
