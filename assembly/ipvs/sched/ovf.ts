// ipvs/sched/ovf.ts — overflow-connection (net/netfilter/ipvs/ip_vs_ovf.c).
//
// Sends everything to the highest-weight destination until its active connections exceed its
// weight, then overflows to the next highest. Candidates: not overloaded, weight > 0 and
// activeconns ≤ weight; of those the highest weight, ties to the first in list order. Counts only
// active connections (so UDP, always inactive, never overflows). Stateless.
import { NIL } from "../defs";
import { destNext, destWeight, destOverloaded, destActive } from "../dest";

export function ovfSchedule(first: u32): u32 {
  let h = NIL;
  let hw: i32 = 0;
  for (let d = first; d != NIL; d = destNext(d)) {
    const w = destWeight(d);
    if (destOverloaded(d) || <i64>destActive(d) > <i64>w || w == 0) continue;
    if (h == NIL || w > hw) {
      h = d;
      hw = w;
    }
  }
  return h;
}
