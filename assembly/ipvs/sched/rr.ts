// ipvs/sched/rr.ts — round-robin (net/netfilter/ipvs/ip_vs_rr.c).
//
// The state is one cursor: the destination chosen last, or the list head before the first choice.
// A choice walks the service's destination list circularly from the entry after the cursor and
// takes the first destination that is neither overloaded nor quiescent (weight > 0); the entry at
// the cursor itself is looked at last. Nothing found: no destination. The list is in the kernel's
// order (newest destination first), so the first choice after start-up is the most recently added
// destination. When the destination under the cursor is removed the cursor steps back to the entry
// before it (ip_vs_rr_del_dest), so the order of the others is kept.
//
// Never allocates after rrInit; reads destinations only through dest.ts.
import { NIL } from "../defs";
import { destNext, destWeight, destOverloaded } from "../dest";

export const RR_STATE_BYTES: usize = 4;

export function rrInit(state: usize): void {
  store<u32>(state, NIL); // svc->sched_data = &svc->destinations
}

// ip_vs_rr.c ip_vs_rr_del_dest(): `dest` was unlinked; `prev` preceded it (NIL: it was first).
export function rrDelDest(state: usize, dest: u32, prev: u32): void {
  if (load<u32>(state) == dest) store<u32>(state, prev);
}

// ip_vs_rr.c ip_vs_rr_schedule().
export function rrSchedule(state: usize, first: u32): u32 {
  const p = load<u32>(state);
  const last = p;
  let pos = p;
  let pass = 0;
  do {
    let d = pos == NIL ? first : destNext(pos);
    while (d != NIL) {
      if (!destOverloaded(d) && destWeight(d) > 0) {
        store<u32>(state, d);
        return d;
      }
      if (d == last) return NIL;
      d = destNext(d);
    }
    pos = NIL; // back at the head
    pass++;
    // Starting at the head, one pass saw every destination.
  } while (pass < 2 && p != NIL);
  return NIL;
}
