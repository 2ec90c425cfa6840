// netfilter/trace.ts — the record of one traced packet: every rule visited (consecutive rules of a
// chain that did not match folded into one range, so a dispatch-indexed walk and a linear walk
// write the same record), how each chain ended, and every statistic-random decision met, with the
// probability the core used and the outcome taken — forced by the host or, when not forced,
// "taken". host-node/netfilter/trace.ts enumerates all outcomes by forcing decisions depth first.
// Buffers are reserved at start-up; recording writes into them and never allocates. Nothing is
// recorded unless a trace is running (traceMode, counters.ts).
//
// Step record (16 bytes): u32 chain id, u32 first rule, u32 end rule (exclusive), u8 matched,
// u8 target (format.ts T_*, the T_POLICY_* / T_END_RETURN / T_DEPTH_DROP pseudo targets, or 0),
// u8 hook, u8 0. A chain's end (policy, or falling off a user chain) is a step whose rule is the
// chain's rule count.
// Decision record (16 bytes): u32 chain id, u32 rule, u32 probability (31-bit threshold),
// u8 outcome (1 taken), u8 forced, u16 0.
// Forced vector: one byte per decision in order met: 0 not taken, 1 taken, anything else free.
import { traceMode, iptCount, IS_TRACE_OVERFLOW } from "./counters";
import { pk } from "./ctx";

export const TRACE_MAX_STEPS: u32 = 1 << 14;
export const TRACE_MAX_DECISIONS: u32 = 256;
const STEP: usize = 16;
const DECISION: usize = 16;

export const traceSteps: usize = heap.alloc(<usize>TRACE_MAX_STEPS * STEP);
export const traceDecisions: usize = heap.alloc(<usize>TRACE_MAX_DECISIONS * DECISION);
export const traceForced: usize = heap.alloc(<usize>TRACE_MAX_DECISIONS);
memory.fill(traceForced, 0xFF, <usize>TRACE_MAX_DECISIONS);

export let nSteps: u32 = 0;
export let nDecisions: u32 = 0;
export let stepsLost: u32 = 0;
export let decisionsLost: u32 = 0;

export function traceReset(): void {
  nSteps = 0;
  nDecisions = 0;
  stepsLost = 0;
  decisionsLost = 0;
}

function append(chain: u32, from: u32, to: u32, matched: bool, target: u32): void {
  if (nSteps >= TRACE_MAX_STEPS) {
    stepsLost++;
    iptCount(IS_TRACE_OVERFLOW);
    return;
  }
  const s = traceSteps + <usize>nSteps * STEP;
  store<u32>(s, chain);
  store<u32>(s, from, 4);
  store<u32>(s, to, 8);
  store<u8>(s, matched ? 1 : 0, 12);
  store<u8>(s, <u8>target, 13);
  store<u8>(s, <u8>pk.hook, 14);
  store<u8>(s, 0, 15);
  nSteps++;
}

// Rules [from, to) of `chain` were passed without matching. The check is inlined into the walk so
// that an untraced packet pays no call.
@inline export function traceMiss(chain: u32, from: u32, to: u32): void {
  if (traceMode) missStep(chain, from, to);
}

function missStep(chain: u32, from: u32, to: u32): void {
  if (from >= to) return;
  if (nSteps > 0) {
    const s = traceSteps + <usize>(nSteps - 1) * STEP;
    if (load<u32>(s) == chain && load<u32>(s, 8) == from && load<u8>(s, 12) == 0 &&
        load<u8>(s, 13) == 0 && <u32>load<u8>(s, 14) == pk.hook) {
      store<u32>(s, to, 8);
      return;
    }
  }
  append(chain, from, to, false, 0);
}

// Rule `rule` of `chain` matched and `target` (0: none) was taken; or, with rule = the chain's
// rule count, the chain ended that way.
@inline export function traceHit(chain: u32, rule: u32, target: u32): void {
  if (traceMode) hitStep(chain, rule, target);
}

function hitStep(chain: u32, rule: u32, target: u32): void {
  append(chain, rule, rule + 1, true, target);
}

// A statistic-random decision with threshold `prob`: the forced outcome, or taken.
export function traceDecide(prob: u32): bool {
  const n = nDecisions;
  if (n >= TRACE_MAX_DECISIONS) {
    decisionsLost++;
    return true;
  }
  const f = load<u8>(traceForced + n);
  const forced = f == 0 || f == 1;
  const taken = forced ? f == 1 : true;
  const d = traceDecisions + <usize>n * DECISION;
  store<u32>(d, pk.curChain);
  store<u32>(d, pk.curRule, 4);
  store<u32>(d, prob, 8);
  store<u8>(d, taken ? 1 : 0, 12);
  store<u8>(d, forced ? 1 : 0, 13);
  store<u16>(d, 0, 14);
  nDecisions = n + 1;
  return taken;
}
