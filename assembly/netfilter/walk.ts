// netfilter/walk.ts — one hook's traversal of one table, as ip_tables.c ipt_do_table() does it:
// rules in order from the built-in chain, first match wins; a matched rule's counter counts the
// packet; JUMP pushes the return point, GOTO does not, RETURN (or falling off a user chain) pops,
// and with nothing to pop the built-in chain's policy decides. Non-terminal targets (MARK,
// CONNMARK, LOG, NFLOG, NOTRACK, no target) continue with the next rule. Inside a dispatch
// segment the index (dispatch.ts) jumps straight to the next rule the packet can match.
//
// The jump stack holds IPT_STACK_DEPTH frames. Legacy ip_tables rejects loops at load time and
// sizes its stack by the chain count (translate_table), so any loop-free table walks to its end;
// iptables-nft refuses a table deeper than nf_tables' NFT_JUMP_STACK_SIZE (16) at load. 256 frames
// take every loop-free table a rule writer nests by hand (kube-proxy's go five deep); a jump
// beyond them drops the packet, counted, as ipt_do_table() does when its stack is exhausted. A
// GOTO pushes nothing, so a loop of GOTOs is bounded separately, by
// IPT_MAX_GOTOS per traversal. Never allocates; the stack is reserved at start-up.
import { Flow } from "../flow";
import { R_POLICY, R_NAT_PORTS } from "../verdict";
import {
  opKind, POLICY_DROP, T_ACCEPT, T_DROP, T_RETURN, T_JUMP, T_GOTO, T_REJECT, T_DNAT, T_SNAT,
  T_MASQUERADE, T_REDIRECT, T_MARK, T_CONNMARK, T_LOG, T_NFLOG, T_NOTRACK, T_POLICY_ACCEPT,
  T_POLICY_DROP, T_END_RETURN, T_DEPTH_DROP, CONNMARK_SET, CONNMARK_SAVE,
} from "./format";
import { Chain, ruleAt, opAt, counterAt } from "./chain";
import { liveChain, policyOf } from "./registry";
import { ruleMatches } from "./match";
import { dispatchNext, dispatchOp, segEnd } from "./dispatch";
import { pk, hasCt, ctmSet } from "./ctx";
import { traceMode, iptCount, IS_DEPTH_DROPS, IS_LOG, IS_UNTRACKED } from "./counters";
import { traceMiss, traceHit } from "./trace";
import { natTarget, NAT_OK, NAT_NO_PORT } from "./nat";
import { lookaheadNote } from "./lookahead";

export const IPT_STACK_DEPTH: u32 = 256;
export const IPT_MAX_GOTOS: u32 = 1024;

export const V_ACCEPT: u32 = 0;
export const V_DROP: u32 = 1;     // pk.reason says why
export const V_REJECT: u32 = 2;   // REJECT: rejectCode says with what

export let rejectCode: u32 = 0;

// Frames: u32 chain id, u32 rule to resume at.
const stack: usize = heap.alloc(<usize>IPT_STACK_DEPTH << 3);

@inline function count(c: Chain, i: u32): void {
  if (traceMode) return;
  const p = counterAt(c, i);
  store<u64>(p, load<u64>(p) + 1);
  store<u64>(p + 8, load<u64>(p + 8) + <u64>pk.len);
}

// The built-in chain's policy ends the walk (its counter is the record after the last rule).
function policy(base: u32): u32 {
  const c = changetype<Chain>(liveChain(base));
  count(c, c.nRules);
  const drop = policyOf(base) == POLICY_DROP;
  traceHit(base, c.nRules, drop ? T_POLICY_DROP : T_POLICY_ACCEPT);
  if (drop) {
    pk.reason = R_POLICY;
    return V_DROP;
  }
  return V_ACCEPT;
}

// xt_connmark.c connmark_tg_shift(): mode | dir << 8 | bits << 16, ctmark, ctmask, nfmask.
function connmarkTarget(p: usize): void {
  if (!hasCt()) return;
  const w = load<u32>(p, 4);
  const ctmark = load<u32>(p, 8), ctmask = load<u32>(p, 12), nfmask = load<u32>(p, 16);
  const mode = w & 0xFF, right = ((w >> 8) & 0xFF) == 1, bits = w >>> 16;
  if (mode == CONNMARK_SET) {
    const v = (pk.ctm & ~ctmask) ^ ctmark;
    ctmSet(right ? v >>> bits : v << bits);
  } else if (mode == CONNMARK_SAVE) {
    let t = pk.mark & nfmask;
    t = right ? t >>> bits : t << bits;
    ctmSet((pk.ctm & ~ctmask) ^ t);
  } else {
    let t = pk.ctm & ctmask;
    t = right ? t >>> bits : t << bits;
    pk.mark = (pk.mark & ~nfmask) ^ t;
  }
}

// Walks the table whose built-in chain for this hook is `base` (pk.hook already set).
export function walk(base: u32, f: Flow): u32 {
  let id = base;
  let c = changetype<Chain>(liveChain(id));
  let pos: u32 = 0;
  let depth: u32 = 0;
  let gotos: u32 = 0;
  while (true) {
    if (pos >= c.nRules) {
      // End of a chain: the built-in chain's policy, or an implicit RETURN.
      if (id == base) return policy(base);
      count(c, c.nRules);
      traceHit(id, c.nRules, T_END_RETURN);
      if (depth == 0) return policy(base);
      depth--;
      id = load<u32>(stack + (<usize>depth << 3));
      pos = load<u32>(stack + (<usize>depth << 3), 4);
      c = changetype<Chain>(liveChain(id));
      continue;
    }
    const rec = ruleAt(c, pos);
    const seg = load<u32>(rec, 12);
    let r = pos;
    // The matched rule's target op (0: none).
    let p: usize = 0;
    if (seg != 0) {
      lookaheadNote(id, seg - 1);
      r = dispatchNext(c, seg - 1, pos, f);
      traceMiss(id, pos, r);
      if (r == segEnd(c, seg - 1)) { pos = r; continue; }
      p = dispatchOp;
    } else {
      pk.curChain = id;
      pk.curRule = r;
      if (!ruleMatches(c, r, f)) {
        traceMiss(id, r, r + 1);
        pos = r + 1;
        continue;
      }
      const to = load<u32>(rec, 4);
      if (to != load<u32>(rec, 8)) p = opAt(c, to);
    }
    count(c, r);
    pos = r + 1;
    if (p == 0) { traceHit(id, r, 0); continue; }
    const kind = opKind(load<u32>(p));
    if ((kind == T_JUMP && depth >= IPT_STACK_DEPTH) || (kind == T_GOTO && ++gotos > IPT_MAX_GOTOS)) {
      traceHit(id, r, T_DEPTH_DROP);
      iptCount(IS_DEPTH_DROPS);
      pk.reason = R_POLICY;
      return V_DROP;
    }
    traceHit(id, r, kind);
    switch (kind) {
      case T_ACCEPT: return V_ACCEPT;
      case T_DROP: pk.reason = R_POLICY; return V_DROP;
      case T_RETURN: {
        if (depth == 0) return policy(base);
        depth--;
        id = load<u32>(stack + (<usize>depth << 3));
        pos = load<u32>(stack + (<usize>depth << 3), 4);
        c = changetype<Chain>(liveChain(id));
        break;
      }
      case T_JUMP: case T_GOTO: {
        const next = load<u32>(p, 4);
        const nc = liveChain(next);
        if (nc == 0) { pk.reason = R_POLICY; return V_DROP; }   // cannot happen after commit checks
        if (kind == T_JUMP) {
          store<u32>(stack + (<usize>depth << 3), id);
          store<u32>(stack + (<usize>depth << 3), pos, 4);
          depth++;
        }
        id = next;
        c = changetype<Chain>(nc);
        pos = 0;
        break;
      }
      case T_REJECT: rejectCode = load<u32>(p, 4); return V_REJECT;
      case T_DNAT: case T_SNAT: case T_MASQUERADE: case T_REDIRECT: {
        const v = natTarget(p, kind, f);
        if (v == NAT_OK) return V_ACCEPT;
        pk.reason = v == NAT_NO_PORT ? R_NAT_PORTS : R_POLICY;
        return V_DROP;
      }
      case T_MARK: pk.mark = (pk.mark & ~load<u32>(p, 8)) ^ load<u32>(p, 4); break;
      case T_CONNMARK: connmarkTarget(p); break;
      case T_LOG: case T_NFLOG: iptCount(IS_LOG); break;
      case T_NOTRACK: {
        if (!pk.untracked) iptCount(IS_UNTRACKED);
        pk.untracked = true;
        break;
      }
    }
  }
  return V_DROP;
}
