// ipvs/sched/lc.ts — least-connection (net/netfilter/ipvs/ip_vs_lc.c).
//
// Picks the destination with the smallest overhead (activeconns << 8) + totalconns
// (ip_vs_dest_conn_overhead) among those neither overloaded nor quiescent (weight 0). Weights play
// no other part. Ties go to the destination met first in list order (a later one must be strictly
// less). Stateless.
import { NIL } from "../defs";
import { destNext, destWeight, destOverloaded, destOverhead } from "../dest";

// ip_vs_lc.c ip_vs_lc_schedule(); the overhead is compared as the kernel's unsigned int.
export function lcSchedule(first: u32): u32 {
  let least = NIL;
  let loh: u32 = 0;
  for (let d = first; d != NIL; d = destNext(d)) {
    if (destOverloaded(d) || destWeight(d) == 0) continue;
    const doh = <u32>destOverhead(d);
    if (least == NIL || doh < loh) {
      least = d;
      loh = doh;
    }
  }
  return least;
}
