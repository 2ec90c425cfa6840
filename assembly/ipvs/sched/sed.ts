// ipvs/sched/sed.ts — shortest expected delay (net/netfilter/ipvs/ip_vs_sed.c).
//
// Expected delay of a new job on destination i = (Ci + 1) / Ui, with Ci its active connections and
// Ui its weight (Weinrib & Shenker, "Greed is not enough", INFOCOM '88). Unlike wlc the overhead
// counts only active connections and includes the incoming one (+1). Selection as wlc: the first
// non-overloaded destination with weight > 0 starts, a later non-overloaded one replaces it when
// loh * dw > doh * lw (64-bit), so ties stay with the earlier one and weight 0 never wins.
// Stateless.
import { NIL } from "../defs";
import { destNext, destWeight, destOverloaded, destActive } from "../dest";

// ip_vs_sed.c ip_vs_sed_dest_overhead().
// @ts-ignore: decorator
@inline function overhead(d: u32): i64 { return <i64>destActive(d) + 1; }

export function sedSchedule(first: u32): u32 {
  let d = first;
  while (d != NIL && (destOverloaded(d) || destWeight(d) <= 0)) d = destNext(d);
  if (d == NIL) return NIL;
  let least = d;
  let loh = overhead(d);
  let lw = <i64>destWeight(d);
  for (d = destNext(d); d != NIL; d = destNext(d)) {
    if (destOverloaded(d)) continue;
    const doh = overhead(d);
    const dw = <i64>destWeight(d);
    if (loh * dw > doh * lw) {
      least = d;
      loh = doh;
      lw = dw;
    }
  }
  return least;
}
