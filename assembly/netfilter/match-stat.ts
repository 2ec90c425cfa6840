// netfilter/match-stat.ts — matches that keep or consume state rather than read headers:
// -m mark, statistic --mode random / nth, limit, nfacct, and set (the lookup is ipset/lookup.ts). Random draws come from rand.ts only; in a trace each draw is a decision point the host
// may force (trace.ts) and nothing — nth counters, limit buckets, nfacct counters, the random
// stream — changes. Never allocates.
import { Flow } from "../flow";
import { randNext } from "../rand";
import { OPF_INVERT, OPF_SET_RETURN_NOMATCH, opFlags } from "./format";
import { Chain, stateAt } from "./chain";
import { pk } from "./ctx";
import { traceMode, iptCount, IS_SET_NO_TABLE, nfacctAdd } from "./counters";
import { traceDecide } from "./trace";
import { ipsetMatchFlow, MATCH_NO_SET } from "../ipset/lookup";

@inline function inverted(p: usize): bool {
  return (opFlags(load<u32>(p)) & OPF_INVERT) != 0;
}

// MARK: value, mask — xt_mark.c mark_mt(): (mark & mask) == value.
export function markMatch(p: usize): bool {
  return ((pk.mark & load<u32>(p, 8)) == load<u32>(p, 4)) != inverted(p);
}

// RANDOM: probability — xt_statistic.c: (get_random_u32() & 0x7FFFFFFF) < probability, where
// libxt_statistic stored lround(0x80000000 × p). The draw is 31 random bits; a trace asks trace.ts.
export function randomMatch(p: usize): bool {
  const prob = load<u32>(p, 4);
  let hit: bool;
  if (traceMode) hit = traceDecide(prob);
  else hit = (<u32>(randNext() >> 33)) < prob;
  return hit != inverted(p);
}

// NTH: every-1, initial count, slot — statistic_mt() XT_STATISTIC_MODE_NTH for one packet:
// count + 1 > every matches and restarts the count at 0.
export function nthMatch(c: Chain, p: usize): bool {
  const every = load<u32>(p, 4);
  const st = stateAt(c, load<u32>(p, 12));
  const next = load<u32>(st) + 1;
  const hit = next > every;
  if (!traceMode) store<u32>(st, hit ? 0 : next);
  return hit != inverted(p);
}

// LIMIT: avg, burst, slot — xt_limit.c limit_mt(), in units of 0.1 ms instead of jiffies: credit
// grows by 10 per ms up to avg × burst, a packet costs avg. The bucket starts full on first use
// (the kernel fills it when the rule is loaded; a full bucket cannot grow, so waiting adds nothing).
// State: u64 credit, u32 last time, u32 primed.
export function limitMatch(c: Chain, p: usize, now: u32): bool {
  const cost = <u64>load<u32>(p, 4);
  const cap = cost * <u64>load<u32>(p, 8);
  const st = stateAt(c, load<u32>(p, 12));
  let credit: u64;
  if (load<u32>(st, 12) == 0) {
    credit = cap;
  } else {
    const elapsed = now - load<u32>(st, 8);
    // A clock that went backwards (wrapped difference above 2^31) adds nothing.
    credit = load<u64>(st) + (<i32>elapsed > 0 ? <u64>elapsed * 10 : 0);
    if (credit > cap) credit = cap;
  }
  const hit = credit >= cost;
  if (!traceMode) {
    store<u64>(st, hit ? credit - cost : credit);
    store<u32>(st, now, 8);
    store<u32>(st, 1, 12);
  }
  return hit;
}

// NFACCT: counter id — counts the packet and matches (no quota support).
export function nfacctMatch(p: usize, f: Flow): bool {
  nfacctAdd(load<u32>(p, 4), f.len);
  return true;
}

// SET: set id, dims, count — xt_set.c match_set(): the set's answer, flipped by `!`. A set id no
// set holds answers as an empty set and is counted (IS_SET_NO_TABLE). The set's element counters
// count the packet (pk.len) unless a trace runs.
export function setMatch(p: usize, f: Flow): bool {
  const returnNomatch = (opFlags(load<u32>(p)) & OPF_SET_RETURN_NOMATCH) != 0;
  const r = ipsetMatchFlow(load<u32>(p, 4), load<u32>(p, 8), load<u32>(p, 12), f, pk.now, pk.len, traceMode, returnNomatch);
  if (r == MATCH_NO_SET) iptCount(IS_SET_NO_TABLE);
  return (r > 0) != inverted(p);
}
