// ipvs/sched/wrr.ts — weighted round-robin (net/netfilter/ipvs/ip_vs_wrr.c).
//
// State: the cursor `cl` (last choice, or the list head), the current weight `cw`, the step `di`
// (greatest common divisor of the positive weights, 1 if none) and `mw`, the maximum weight
// reduced by di - 1 so that the last pass runs with cw = 1 and catches weights below di. A choice
// continues the list walk after the cursor and takes the first destination, not overloaded, whose
// weight is ≥ cw. Each time the walk passes the head, cw drops by di; when cw reaches 0 it starts
// again at mw. A destination of weight w is thus picked in ceil(w / di) … passes of every mw / di,
// e.g. weights 4, 3, 2 (in list order) give A A B A B C A B C. The walk gives up (no destination)
// after one full pass at cw ≤ di that found nothing; `stop` bounds that pass when it began
// mid-list. Every destination change recomputes di and mw (ip_vs_wrr_dest_changed) and keeps cw in
// step; nothing is computed per packet beyond the walk.
//
// Never allocates after wrrInit; reads destinations only through dest.ts.
import { NIL } from "../defs";
import { destNext, destWeight, destOverloaded } from "../dest";

export const WRR_STATE_BYTES: usize = 16;
const CL: usize = 0;
const CW: usize = 4;
const MW: usize = 8;
const DI: usize = 12;
const NO_STOP: u32 = 0xFFFFFFFE;

function gcd(a: i32, b: i32): i32 {
  while (b != 0) { const t = a % b; a = b; b = t; }
  return a;
}

// ip_vs_wrr_gcd_weight() and ip_vs_wrr_max_weight().
function recompute(state: usize, first: u32): void {
  let g = 0, max = 0;
  for (let d = first; d != NIL; d = destNext(d)) {
    const w = destWeight(d);
    if (w > 0) g = g > 0 ? gcd(w, g) : w;
    if (w > max) max = w;
  }
  const di = g != 0 ? g : 1;
  store<u32>(state, NIL, CL);
  store<i32>(state, di, DI);
  store<i32>(state, max - (di - 1), MW);
}

// ip_vs_wrr_init_svc().
export function wrrInit(state: usize, first: u32): void {
  recompute(state, first);
  store<i32>(state, load<i32>(state, MW), CW);
}

// ip_vs_wrr_dest_changed(): add, delete and edit of a destination.
export function wrrDestChanged(state: usize, first: u32): void {
  recompute(state, first);
  const mw = load<i32>(state, MW), di = load<i32>(state, DI);
  let cw = load<i32>(state, CW);
  if (cw > mw || cw == 0) cw = mw;
  else if (di > 1) cw = (cw / di) * di + 1;
  store<i32>(state, cw, CW);
}

// ip_vs_wrr_schedule().
export function wrrSchedule(state: usize, first: u32): u32 {
  let d = load<u32>(state, CL);
  const mw = load<i32>(state, MW), di = load<i32>(state, DI);
  if (mw == 0) return NIL; // err_noavail: the cursor stays
  let cw = load<i32>(state, CW);
  const last = d;
  let stop = NO_STOP;
  let lastPass = false, restarted = false;
  while (true) {
    d = d == NIL ? first : destNext(d);
    while (d != NIL) {
      if (!destOverloaded(d) && destWeight(d) >= cw) {
        store<u32>(state, d, CL);
        store<i32>(state, cw, CW);
        return d;
      }
      if (d == stop) {
        store<u32>(state, d, CL);
        store<i32>(state, cw, CW);
        return NIL;
      }
      d = destNext(d);
    }
    cw -= di;
    if (cw <= 0) {
      cw = mw;
      // Stop if the last pass began at the head, or a w ≥ 1 pass already ran.
      if (lastPass || last == NIL) {
        store<u32>(state, NIL, CL);
        store<i32>(state, cw, CW);
        return NIL;
      }
      restarted = true;
    }
    lastPass = cw <= di;
    // The first w ≥ 1 traversal covered only the entries after `last`: finish with those up to it.
    if (lastPass && restarted && last != NIL) stop = last;
  }
  return NIL;
}
