// ipvs/sched/twos.ts — power of two choices (net/netfilter/ipvs/ip_vs_twos.c; Mitzenmacher, "The
// Power of Two Random Choices").
//
// Over the available destinations (not overloaded, weight > 0) with total weight T, draw two
// numbers r1, r2 uniformly in [0, T] (T + 1 values: the kernel takes prandom % (T + 1)). Walking the
// list, subtract each weight from both; the destination at which r1 first becomes ≤ 0 is choice 1,
// likewise choice 2. So the first available destination is chosen for r in [0, w1] (w1 + 1 values)
// and each later one i for w_i values. Choice 2 wins when w2 * oh1 > w1 * oh2 (oh = (active << 8) +
// inactive): the less loaded per unit of weight, ties to choice 1. Randomness comes from rand.ts
// (seeded; multiply-shift instead of the kernel's modulo), so runs are reproducible.
//
// twosOdds computes, without drawing, the exact probability of each destination for the trace:
// O(n²) over the pairs of choices, which is a control-path cost.
import { NIL } from "../defs";
import { destNext, destWeight, destOverloaded, destOverhead } from "../dest";
import { randBelow } from "../../rand";

// @ts-ignore: decorator
@inline function usable(d: u32): bool { return !destOverloaded(d) && destWeight(d) > 0; }

export function twosSchedule(first: u32): u32 {
  let total: i64 = 0;
  let any = NIL;
  for (let d = first; d != NIL; d = destNext(d)) {
    if (usable(d)) { total += destWeight(d); any = d; }
  }
  if (any == NIL) return NIL;
  total += 1;
  // The sum of 65535-weights over the pool fits 32 bits for up to 65537 destinations.
  const n = <u32>min<i64>(total, 0xFFFFFFFF);
  let r1 = <i64>randBelow(n), r2 = <i64>randBelow(n);
  let c1 = any, c2 = NIL;
  let w1: i64 = -1, w2: i64 = -1, oh1: i64 = 0, oh2: i64 = 0;
  for (let d = first; d != NIL; d = destNext(d)) {
    if (!usable(d)) continue;
    const w = <i64>destWeight(d);
    r1 -= w;
    r2 -= w;
    if (r1 <= 0 && w1 == -1) { c1 = d; w1 = w; oh1 = destOverhead(d); }
    if (r2 <= 0 && w2 == -1) { c2 = d; w2 = w; oh2 = destOverhead(d); }
    if (w1 != -1 && w2 != -1) break;
  }
  if (c2 != NIL && secondWins(<i32>w1, <i32>oh1, <i32>w2, <i32>oh2)) c1 = c2;
  return c1;
}

// ip_vs_twos.c: (weight2 * overhead1) > (weight1 * overhead2) on the kernel's ints, which wrap
// (the kernel builds with -fno-strict-overflow): with weights in the thousands and overheads in
// the hundreds of thousands a product passes 2^31 and the comparison turns as the kernel's does.
// @ts-ignore: decorator
@inline function secondWins(w1: i32, oh1: i32, w2: i32, oh2: i32): bool { return w2 * oh1 > w1 * oh2; }

/**
 * Writes, for the `n` destinations of the list in order, the probability that twosSchedule picks
 * each (f64 at out + 8 * k). Returns the number of destinations written.
 */
export function twosOdds(first: u32, out: usize, max: u32): u32 {
  let total: f64 = 0;
  let n: u32 = 0;
  for (let d = first; d != NIL && n < max; d = destNext(d)) {
    if (usable(d)) total += <f64>destWeight(d);
    store<f64>(out + (<usize>n << 3), 0);
    n++;
  }
  if (total == 0) return n;
  const span = total + 1;
  // Probability of being choice 1 (= choice 2): r ∈ [0, w] for the first usable, w values after.
  let i: u32 = 0, firstSeen = false;
  for (let a = first; a != NIL && i < n; a = destNext(a), i++) {
    if (!usable(a)) continue;
    const pa = (<f64>destWeight(a) + (firstSeen ? 0 : 1)) / span;
    firstSeen = true;
    const wa = destWeight(a), oha = destOverhead(a);
    let j: u32 = 0, firstSeenB = false;
    for (let b = first; b != NIL && j < n; b = destNext(b), j++) {
      if (!usable(b)) continue;
      const pb = (<f64>destWeight(b) + (firstSeenB ? 0 : 1)) / span;
      firstSeenB = true;
      const k = secondWins(wa, oha, destWeight(b), destOverhead(b)) ? j : i;
      const p = out + (<usize>k << 3);
      store<f64>(p, load<f64>(p) + pa * pb);
    }
  }
  return n;
}
