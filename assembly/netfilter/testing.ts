// netfilter/testing.ts — the iptables engine's internals for unit tests (build/testing-netfilter.wasm):
// the whole control surface (api.ts), node and conntrack set-up, and a helper that parses a packet
// placed in the scratch buffer and runs it through iptProcess with a test descriptor.
import { flow, FRAG_FIRST, FRAG_LATER } from "../flow";
import { fragKey, fragRemember, fragFollow } from "../frags";
import { R_NONE, R_FRAGMENT, VERDICT_DROP, VERDICT_FORWARD, VERDICT_PASS } from "../verdict";
import { D_VERDICT, D_REASON, D_LEN, DESC_BYTES } from "../io";
import { parse } from "../wire/parse";
import { randSeed } from "../rand";
import { nodeAddLocal, nodeSetMasq, nodeReset } from "../node";
import { ctInit, ctCount, ctStat } from "../conntrack/table";
import { iptProcess } from "./hooks";
import { Chain } from "./chain";
import { liveChain } from "./registry";
import { rejectReply } from "../reply/reject";
import { coreNow } from "../clock";

export { scratch, scratchBytes } from "../scratch";
export * from "./api";
export { ctCount, ctStat, ctOrig, ctReply, ctMark, ctStatus, ctNextUsed } from "../conntrack/table";
export { recentExists } from "./recent";
export { IPT_STACK_DEPTH } from "./walk";

const desc: usize = heap.alloc(<usize>DESC_BYTES);
memory.fill(desc, 0, <usize>DESC_BYTES);

export function setup(ctLog2: u32, seedLo: u32, seedHi: u32): i32 {
  randSeed(seedLo, seedHi);
  return ctInit(ctLog2, ctLog2 > 2 ? ctLog2 - 2 : ctLog2, seedLo, seedHi) ? 0 : -1;
}

export function nodeLocal(family: u32, a0: u32, a1: u32, a2: u32, a3: u32): void {
  nodeAddLocal(<u8>family, a0, a1, a2, a3);
}
export function nodeMasq(family: u32, a0: u32, a1: u32, a2: u32, a3: u32): void {
  nodeSetMasq(<u8>family, a0, a1, a2, a3);
}
export function nodeClear(): void { nodeReset(); }

export function descPtr(): usize { return desc; }

// Parses `len` bytes at `pkt` (room `cap`) and runs them through the tables. Returns the verdict;
// the descriptor (descPtr) holds the rest, D_LEN the bytes now at `pkt`.
export function run(pkt: usize, len: u32, cap: u32, meta: u32, nowMs: f64): u32 {
  const now = coreNow(nowMs);
  const f = flow;
  f.csumPartial = (meta & 2) != 0;
  const r = parse(f, pkt, len, cap);
  if (r != R_NONE) {
    store<u8>(desc, VERDICT_DROP, D_VERDICT);
    store<u16>(desc, r, D_REASON);
    store<u32>(desc, len, D_LEN);
    return VERDICT_DROP;
  }
  // As processOne (pipeline.ts): a later fragment follows its first (frags.ts).
  if (f.frag == FRAG_LATER) {
    const v = fragFollow(f, now);
    store<u8>(desc, v < 0 ? VERDICT_DROP : <u8>v, D_VERDICT);
    store<u16>(desc, v < 0 ? R_FRAGMENT : R_NONE, D_REASON);
    store<u32>(desc, len, D_LEN);
    return load<u8>(desc, D_VERDICT);
  }
  if (f.frag == FRAG_FIRST) fragKey(f);
  iptProcess(desc, f, now, meta);
  const v = load<u8>(desc, D_VERDICT);
  if (f.frag == FRAG_FIRST && (v == VERDICT_FORWARD || v == VERDICT_PASS)) fragRemember(f, v, now, 0);
  return v;
}

// The REJECT reply builder on its own: parses the packet and replaces it with the reply for
// `code`. Returns the reply length (0: none may be sent; -1: the packet did not parse).
export function reject(pkt: usize, len: u32, cap: u32, code: u32): i32 {
  if (parse(flow, pkt, len, cap) != R_NONE) return -1;
  return <i32>rejectReply(flow, code);
}

export function ctReady(): u32 { return ctCount(); }

// Live chain `id` as the walk reads it (0 when there is none), for comparing two ways of building
// it: its op words' count, its rule records (16 bytes each: offsets and dispatch segment), its ops.
export function chainOpWords(id: u32): u32 { const c = liveChain(id); return c == 0 ? 0 : changetype<Chain>(c).opWords; }
export function chainRules(id: u32): usize { const c = liveChain(id); return c == 0 ? 0 : changetype<Chain>(c).rules; }
export function chainOps(id: u32): usize { const c = liveChain(id); return c == 0 ? 0 : changetype<Chain>(c).ops; }
export function ctStatOf(id: u32): u64 { return ctStat(id); }
