// ipvs/sched/fo.ts — weighted failover (net/netfilter/ipvs/ip_vs_fo.c).
//
// Every new connection goes to the available (not overloaded) destination with the highest weight;
// of equal weights the first in list order. Weight 0 never qualifies (the running maximum starts at
// 0 and must be exceeded). Lowering the active server's weight or its overload fails traffic over
// to the next. Stateless.
import { NIL } from "../defs";
import { destNext, destWeight, destOverloaded } from "../dest";

export function foSchedule(first: u32): u32 {
  let best = NIL;
  let hw: i32 = 0;
  for (let d = first; d != NIL; d = destNext(d)) {
    const w = destWeight(d);
    if (!destOverloaded(d) && w > hw) {
      best = d;
      hw = w;
    }
  }
  return best;
}
