// netfilter/api.ts — the iptables engine's control surface, re-exported by index.ts: staging and
// commit of chains, policies, counters, interface names, recent tables, the engine's own counters,
// the mode switch, and the one-packet trace. Integers and pointers only. The trace runs a packet
// the host put in the trace area through iptProcess with everything stateful frozen (counters,
// recent tables, nth/limit state, conntrack, the random stream) and leaves the record in the trace
// buffers (trace.ts); a conntrack lookup may still drop an entry whose time is up, as every
// lookup does. Control time only: nothing here is on the batch path.
import { flow } from "../flow";
import { R_NONE } from "../verdict";
import { D_VERDICT, D_CTSTATE, D_REASON, D_MARK, D_CT, D_LEN, DESC_BYTES } from "../io";
import { parse } from "../wire/parse";
import { randState, randRestore } from "../rand";
import { ctStatus, CT_NONE, CT_SNAT, CT_DNAT } from "../conntrack/table";
import { natStatus } from "../conntrack/entry";
import { Chain, counterAt } from "./chain";
import {
  registryInit, stageChain, stagePatch, stageDelete, stagePolicy, commitStage, abortStage, lastError, liveChain,
  policyOf, refCount,
} from "./registry";
import { ifSetName } from "./match-addr";
import { iptStats, IS_COUNT, iptStatsReset, nfacctPtr, nfacctCount, setTraceMode } from "./counters";
import { recentCount, recentFlush, recentDump, recentSave, recentLoad, RECENT_SAVED_BYTES } from "./recent";
import { iptProcess, iptSetMode, iptMode } from "./hooks";
import { pk, pendOrig, pendReply } from "./ctx";
import {
  traceReset, traceSteps, traceDecisions, traceForced, nSteps, nDecisions, stepsLost, decisionsLost,
  TRACE_MAX_STEPS, TRACE_MAX_DECISIONS,
} from "./trace";
import { coreNow } from "../clock";
import { inMemory } from "../alloc";

// ---- chains
export function iptStageChain(chainId: u32, ptr: usize, len: u32): i32 { return stageChain(chainId, ptr, len); }
// Live chain `chainId` with its first `head` and last `tail` rules kept around the blob's rules.
export function iptStagePatch(chainId: u32, ptr: usize, len: u32, head: u32, tail: u32): i32 { return stagePatch(chainId, ptr, len, head, tail); }
export function iptStageDelete(chainId: u32): i32 { return stageDelete(chainId); }
export function iptSetPolicy(chainId: u32, policy: u32): i32 { return stagePolicy(chainId, policy); }
export function iptCommit(): i32 { return commitStage(); }
export function iptAbort(): void { registryInit(); abortStage(); }
export function iptLastError(): usize { return lastError; }

// Rules in live chain `chainId`, or -1 when it does not exist.
export function iptRuleCount(chainId: u32): i32 {
  registryInit();
  const c = liveChain(chainId);
  return c == 0 ? -1 : <i32>changetype<Chain>(c).nRules;
}

// The live chain's counters: (rules + 1) records of u64 packets, u64 bytes — the last is the
// policy (built-in) or fall-through (user chain) counter. 0 when the chain does not exist. Valid
// until the next commit.
export function iptCounters(chainId: u32): usize {
  registryInit();
  const c = liveChain(chainId);
  return c == 0 ? 0 : counterAt(changetype<Chain>(c), 0);
}

export function iptPolicy(chainId: u32): i32 {
  registryInit();
  return liveChain(chainId) == 0 || chainId >= 40 ? -1 : <i32>policyOf(chainId);
}

export function iptRefCount(chainId: u32): i32 { registryInit(); return refCount(chainId); }

// ---- interfaces, recent, counters, mode
export function iptSetIfName(index: u32, ptr: usize, len: u32): i32 { return ifSetName(index, ptr, len); }
export function iptRecentCount(tableId: u32): u32 { return recentCount(tableId); }
export function iptRecentFlush(tableId: u32): void { recentFlush(tableId); }
export function iptRecentDump(tableId: u32, out: usize, max: u32): u32 {
  if (!inMemory(out, <u64>max << 5)) return 0;
  return recentDump(tableId, out, max);
}
// A table's entries with every stamp, as a conntrack snapshot keeps them (recent.ts recentSave).
export function iptRecentSave(tableId: u32, out: usize, max: u32, nowMs: f64): u32 {
  if (!inMemory(out, <u64>max * <u64>RECENT_SAVED_BYTES)) return 0;
  return recentSave(tableId, out, max, coreNow(nowMs));
}
export function iptRecentLoad(tableId: u32, ptr: usize, nowMs: f64): i32 {
  if (!inMemory(ptr, RECENT_SAVED_BYTES)) return -1;
  return recentLoad(tableId, ptr, coreNow(nowMs)) ? 0 : -1;
}
export function iptRecentSavedBytes(): u32 { return RECENT_SAVED_BYTES; }
export function iptStatsPtr(): usize { return iptStats; }
export function iptStatsCount(): u32 { return IS_COUNT; }
export function iptStatsClear(): void { iptStatsReset(); }
export function iptNfacctPtr(): usize { return nfacctPtr(); }
export function iptNfacctCount(): u32 { return nfacctCount(); }
export function iptModeSet(on: u32): void { iptSetMode(on != 0); }
export function iptModeGet(): u32 { return iptMode ? 1 : 0; }

// ---- trace
export const TRACE_PKT_BYTES: u32 = 65536 + 256;
const tracePkt: usize = heap.alloc(<usize>TRACE_PKT_BYTES);
const traceDesc: usize = heap.alloc(<usize>DESC_BYTES);
// Result (64 bytes): u8 verdict, u8 ctstate, u16 reason, u32 mark, u32 length now in the trace
// area, u32 flags (TR_*), u32 steps, u32 decisions, u32 ct index, then the packet's final tuple:
// src 4 × u32, dst 4 × u32, u16 sport, u16 dport.
const traceResult: usize = heap.alloc(64);
export const TR_REWRITTEN: u32 = 1;
export const TR_DNAT: u32 = 2;
export const TR_SNAT: u32 = 4;
export const TR_STEPS_LOST: u32 = 8;
export const TR_DECISIONS_LOST: u32 = 16;
export const TR_PARSE_FAILED: u32 = 32;

export function iptTracePacket(): usize { return tracePkt; }
export function iptTracePacketBytes(): u32 { return TRACE_PKT_BYTES; }
export function iptTraceForced(): usize { return traceForced; }
export function iptTraceMaxDecisions(): u32 { return TRACE_MAX_DECISIONS; }
export function iptTraceMaxSteps(): u32 { return TRACE_MAX_STEPS; }
export function iptTraceSteps(): usize { return traceSteps; }
export function iptTraceDecisions(): usize { return traceDecisions; }
export function iptTraceResult(): usize { return traceResult; }

// Traces the `len`-byte packet in the trace area (slot room `cap`) as if it arrived with `meta`
// at `nowMs`, with the forced decisions in iptTraceForced(). Returns the number of steps, or -1
// when len/cap do not fit the area. Changes no state but the trace buffers and the trace area.
export function iptTrace(len: u32, cap: u32, meta: u32, nowMs: f64): i32 {
  if (len > cap || cap > TRACE_PKT_BYTES) return -1;
  registryInit();
  traceReset();
  memory.fill(traceResult, 0, 64);
  const f = flow;
  f.csumPartial = (meta & 2) != 0;
  const r = parse(f, tracePkt, len, cap);
  if (r != R_NONE) {
    store<u8>(traceResult, 2);                 // VERDICT_DROP
    store<u16>(traceResult, r, 2);
    store<u32>(traceResult, len, 8);
    store<u32>(traceResult, TR_PARSE_FAILED, 12);
    return 0;
  }
  const rand = randState();
  setTraceMode(true);
  iptProcess(traceDesc, f, coreNow(nowMs), meta);
  setTraceMode(false);
  randRestore(rand);

  const d = traceDesc;
  store<u8>(traceResult, load<u8>(d, D_VERDICT));
  store<u8>(traceResult, load<u8>(d, D_CTSTATE), 1);
  store<u16>(traceResult, load<u16>(d, D_REASON), 2);
  store<u32>(traceResult, load<u32>(d, D_MARK), 4);
  store<u32>(traceResult, load<u32>(d, D_LEN), 8);
  let flags: u32 = pk.rewritten ? TR_REWRITTEN : 0;
  let nat: u32 = 0;
  if (pk.pending) nat = natStatus(pendOrig, pendReply);
  else if (pk.ctIdx != CT_NONE) nat = ctStatus(pk.ctIdx);
  if ((nat & CT_DNAT) != 0) flags |= TR_DNAT;
  if ((nat & CT_SNAT) != 0) flags |= TR_SNAT;
  if (stepsLost != 0) flags |= TR_STEPS_LOST;
  if (decisionsLost != 0) flags |= TR_DECISIONS_LOST;
  store<u32>(traceResult, flags, 12);
  store<u32>(traceResult, nSteps, 16);
  store<u32>(traceResult, nDecisions, 20);
  store<u32>(traceResult, load<u32>(d, D_CT), 24);
  store<u32>(traceResult, f.s0, 28); store<u32>(traceResult, f.s1, 32);
  store<u32>(traceResult, f.s2, 36); store<u32>(traceResult, f.s3, 40);
  store<u32>(traceResult, f.d0, 44); store<u32>(traceResult, f.d1, 48);
  store<u32>(traceResult, f.d2, 52); store<u32>(traceResult, f.d3, 56);
  store<u16>(traceResult, f.sport, 60);
  store<u16>(traceResult, f.dport, 62);
  return <i32>nSteps;
}
