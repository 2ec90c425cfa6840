// index.ts — the core's whole ABI: integers and fixed buffers only. Packets go in batches through
// the I/O arena (io.ts); time is an argument (`nowMs`, milliseconds, any epoch), never read;
// control calls return 0/positive on success and a negative code on error. ABI.md documents every
// export. Never allocates on the packet path; memory is reserved by init() and only grows on
// control calls (service, chain, ipset and IPVS loads, cfgBuffer), so hosts re-read
// `memory.buffer` after those.
import { ioInit, ioDesc, ioData, IO_MAX_BATCH, IO_DATA_BYTES, DESC_BYTES } from "./io";
import { processOne } from "./pipeline";
import { iptMode } from "./netfilter/hooks";
import { lookahead } from "./netfilter/lookahead";
import { statsBlock, STATS_COUNT, bump, add, S_BATCHES, S_REAPED, S_PACKETS, S_BYTES, statsReset } from "./stats";
import { VERDICT_COUNT, REASON_COUNT } from "./verdict";
import { randSeed } from "./rand";
import { ipvsReapConns } from "./ipvs/api";
import { svcSetSeed, svcLiveCount, svcFrontendCount, svcApply as svcApplyOps, svcReserve as svcReserveRoom } from "./svc/table";
import { svcLoad } from "./svc/blob";
import {
  svcNodePortMode, svcNodePortAddress, svcAffinityDest, svcAffinitySaveAll, svcAffinityLoadSlot, AFFINITY_SAVED_BYTES, AFFINITY_ENTRIES,
} from "./svc/decide";
import { nodeAddLocal, nodeSetPodCIDR, nodeSetServiceCIDR, nodeSetMasq, nodeReset } from "./node";
import { ctEventsEnable, ctEventsDisable, ctEventsRead, ctEventsLost, CT_EVENT_SLOT } from "./conntrack/events";
import {
  ctInit, ctReap, ctCount, ctCapacity, ctNextUsed, ctExportRecord, ctImportRecord, ctRecordValid, ctBytes,
  ctFlushReplySrc, ctFlushOrigDst, ctFlushMany, FLUSH_KEY, ctReconcileUdp, RECONCILE_REC, ctSetTimeout, CT_NONE, warmStorage,
  ctAdoptIpvsNat, ctDelete,
} from "./conntrack/table";
import { coreNow } from "./clock";
import { allocFits, inMemory, replaceBlock } from "./alloc";
import { CT_RECORD_SIZE } from "./conntrack/record";

export const ABI_VERSION: u32 = 1;

// Reaping per batch: a bounded slice of the table, so expiry keeps up without long pauses.
const REAP_PER_CALL: u32 = 64;
const REAP_PER_PACKET: u32 = 1;

let ready = false;
let cfgBuf: usize = 0;
let cfgCap: usize = 0;

export function abiVersion(): u32 { return ABI_VERSION; }

// Sets up every table. conntrack capacity = 2^ctLog2 (IPv4 and IPv6 flows), 2^ct6Log2 of them IPv6.
// Returns 0, or -1 if memory could not be had, -2 if called twice.
export function init(ctLog2: u32, ct6Log2: u32, seedLo: u32, seedHi: u32): i32 {
  if (ready) return -2;
  if (ctLog2 < 4 || ctLog2 > 24 || ct6Log2 > ctLog2) return -1;
  ioInit();
  randSeed(seedLo, seedHi);
  svcSetSeed(seedLo ^ 0xa5a5a5a5);
  if (!ctInit(ctLog2, ct6Log2, seedLo, seedHi)) return -1;
  ready = true;
  return 0;
}

// ---- I/O
export function ioDescPtr(): usize { return ioDesc; }
export function ioDataPtr(): usize { return ioData; }
export function ioDataBytes(): u32 { return IO_DATA_BYTES; }
export function ioMaxBatch(): u32 { return IO_MAX_BATCH; }
export function ioDescBytes(): u32 { return DESC_BYTES; }

// Runs descriptors [0, count) through the pipeline. Returns the number processed.
export function processBatch(count: u32, nowMs: f64): u32 {
  if (!ready) return 0;
  if (count > IO_MAX_BATCH) count = IO_MAX_BATCH;
  const now = coreNow(nowMs);
  let bytes: u64 = 0;
  const ahead = iptMode;
  for (let i: u32 = 0; i < count; i++) {
    if (ahead) lookahead(i, count);
    bytes += processOne(ioDesc + <usize>i * DESC_BYTES, now);
  }
  add(S_PACKETS, count);
  add(S_BYTES, bytes);
  bump(S_BATCHES);
  add(S_REAPED, ctReap(now, REAP_PER_CALL + count * REAP_PER_PACKET));
  ipvsReapConns(now, REAP_PER_CALL + count * REAP_PER_PACKET);
  return count;
}

// Expires flows without traffic: scans up to `budget` slots. Returns flows removed.
export function expire(nowMs: f64, budget: u32): u32 {
  if (!ready) return 0;
  const now = coreNow(nowMs);
  const n = ctReap(now, budget);
  add(S_REAPED, n);
  ipvsReapConns(now, budget);
  return n;
}

// ---- stats
export function statsPtr(): usize { return statsBlock; }
export function statsCount(): u32 { return STATS_COUNT; }
export function verdictCount(): u32 { return VERDICT_COUNT; }
export function reasonCount(): u32 { return REASON_COUNT; }
export function resetStats(): void { statsReset(); }

// ---- control: a staging buffer the host writes config blobs into.
// 0 when no block of `size` can be had (the buffer and its contents stay as they were).
export function cfgBuffer(size: u32): usize {
  if (<usize>size > cfgCap) {
    if (!allocFits(<u64>size)) return 0;
    cfgBuf = replaceBlock(cfgBuf, <usize>size);
    cfgCap = <usize>size;
  }
  return cfgBuf;
}
export function loadServices(len: u32): i32 {
  if (<usize>len > cfgCap) return -3;
  return svcLoad(cfgBuf, len);
}
export function serviceCount(): u32 { return svcLiveCount(); }

// Direct service table, one service at a time (svc/table.ts): `len` bytes of framed put / delete /
// clear operations in the config buffer; each op's result is written back into it.
export function svcApply(len: u32): i32 {
  if (<usize>len > cfgCap) return -3;
  return svcApplyOps(cfgBuf, len);
}
export function svcFrontends(): u32 { return svcFrontendCount(); }
export function svcReserve(services: u32, frontends: u32): i32 { return svcReserveRoom(services, frontends); }
export function svcNodePorts(family: u32, all: u32, loopback: u32): void {
  svcNodePortMode(<u8>family, all != 0, loopback != 0);
}
export function svcNodePortAddr(family: u32, a0: u32, a1: u32, a2: u32, a3: u32): i32 {
  return svcNodePortAddress(<u8>family, a0, a1, a2, a3) ? 0 : -1;
}
// Where service slot `slot` sends ClientIP-affinity client a0..a3 back to at `now`: the address of
// its destination (address words, u16 port at +16), or 0. Reads only (for explaining a packet).
export function svcAffinity(slot: u32, a0: u32, a1: u32, a2: u32, a3: u32, nowMs: f64): usize {
  return svcAffinityDest(slot, a0, a1, a2, a3, coreNow(nowMs));
}
// A conntrack snapshot's direct-table affinity (svc/affinity.ts saved stamps of
// svcAffinitySavedBytes()): every stamp in force, by slot, and one written back into a slot.
export function svcAffinitySave(out: usize, max: u32, nowMs: f64): u32 {
  if (!inMemory(out, <u64>max * <u64>AFFINITY_SAVED_BYTES)) return 0;
  return svcAffinitySaveAll(out, max, coreNow(nowMs));
}
export function svcAffinityLoad(slot: u32, ptr: usize, nowMs: f64): i32 {
  if (!inMemory(ptr, AFFINITY_SAVED_BYTES)) return -1;
  return svcAffinityLoadSlot(slot, ptr, coreNow(nowMs)) ? 0 : -1;
}
export function svcAffinitySavedBytes(): u32 { return AFFINITY_SAVED_BYTES; }
export function svcAffinityCapacity(): u32 { return AFFINITY_ENTRIES; }

export function nodeClear(): void { nodeReset(); }
export function nodeLocal(family: u32, a0: u32, a1: u32, a2: u32, a3: u32): i32 {
  return nodeAddLocal(<u8>family, a0, a1, a2, a3) ? 0 : -1;
}
export function nodePodCIDR(family: u32, a0: u32, a1: u32, a2: u32, a3: u32, prefix: i32): void {
  nodeSetPodCIDR(<u8>family, a0, a1, a2, a3, prefix);
}
export function nodeServiceCIDR(family: u32, a0: u32, a1: u32, a2: u32, a3: u32, prefix: i32): void {
  nodeSetServiceCIDR(<u8>family, a0, a1, a2, a3, prefix);
}
export function nodeMasquerade(family: u32, a0: u32, a1: u32, a2: u32, a3: u32): void {
  nodeSetMasq(<u8>family, a0, a1, a2, a3);
}

// ---- conntrack
export function conntrackCount(): u32 { return ctCount(); }
export function conntrackCapacity(): u32 { return ctCapacity(); }
export function conntrackBytes(): usize { return ctBytes(); }
// Makes up to maxBytes of never-used table storage resident; returns the bytes left (conntrack/entry.ts).
export function conntrackWarm(maxBytes: u32): u32 { return warmStorage(maxBytes); }
export function conntrackNext(cursor: u32): u32 { return ctNextUsed(cursor); }
// Writes entry `index` as a snapshot record at `out` (in the config buffer); returns its size.
export function conntrackExport(index: u32, out: usize, nowMs: f64): u32 {
  if (!inMemory(out, CT_RECORD_SIZE)) return 0;
  return ctExportRecord(index, out, coreNow(nowMs));
}
// Whether the record at `ptr` would pass conntrackImport's checks: 1 or 0.
export function conntrackCheck(ptr: usize): u32 { return inMemory(ptr, CT_RECORD_SIZE) && ctRecordValid(ptr) ? 1 : 0; }
export function conntrackImport(ptr: usize, nowMs: f64): i32 {
  if (!inMemory(ptr, CT_RECORD_SIZE)) return -1;
  return ctImportRecord(ptr, coreNow(nowMs)) == CT_NONE ? -1 : 0;
}
// Deletes flow `index` (a slot conntrackNext gave), as `conntrack -D` deletes one: 1, or 0 when
// the slot holds no flow (counted as a bad argument).
export function conntrackDelete(index: u32): u32 { return ctDelete(index) ? 1 : 0; }
// conntrack -E (conntrack/events.ts): record NEW and DESTROY events into a ring of `slots`
// (1 … 65536; 0 stops), read them out into the config buffer, count the ones the ring missed.
export function conntrackEvents(slots: u32): i32 {
  if (slots == 0) { ctEventsDisable(); return 0; }
  return ctEventsEnable(slots) ? 0 : -1;
}
// Copies up to `max` events (CT_EVENT_SLOT = 96 bytes each: u8 kind 1 NEW / 2 DESTROY, 7 bytes 0,
// then the flow's record) into the config buffer; returns how many, or -3 if they would overrun it.
export function conntrackEventsRead(max: u32): i32 {
  if (<u64>max * <u64>CT_EVENT_SLOT > <u64>cfgCap) return -3;
  return <i32>ctEventsRead(cfgBuf, max);
}
export function conntrackEventsLost(): u32 { return ctEventsLost(); }
export function conntrackTimeout(kind: u32, ms: u32): i32 { return ctSetTimeout(kind, ms) ? 0 : -1; }
export function conntrackFlushReplySrc(family: u32, proto: u32, a0: u32, a1: u32, a2: u32, a3: u32, port: u32): u32 {
  return ctFlushReplySrc(<u8>family, <u8>proto, a0, a1, a2, a3, <u16>port);
}
export function conntrackFlushOrigDst(family: u32, proto: u32, a0: u32, a1: u32, a2: u32, a3: u32, port: u32): u32 {
  return ctFlushOrigDst(<u8>family, <u8>proto, a0, a1, a2, a3, <u16>port);
}
// Deletes the flows that any of `n` flush keys (conntrack/reap.ts FLUSH_KEY) in the config buffer
// names, in one walk of the table; returns how many went, or -3 if the keys overrun the buffer.
export function conntrackFlushMany(n: u32): i32 {
  if (<u64>n * <u64>FLUSH_KEY > <u64>cfgCap) return -3;
  return <i32>ctFlushMany(cfgBuf, n);
}
// kube-proxy's UDP reconcile (conntrack/reconcile.ts): `n` records in the config buffer, each a
// Service address and port or a NodePort to guard, or an endpoint (address and port) the guard
// before it allows; deletes the UDP flows of a guarded address or port whose reply source that
// guard does not allow. Returns how many went, or -3 if the records overrun the buffer.
export function conntrackReconcileUdp(n: u32): i32 {
  if (<u64>n * <u64>RECONCILE_REC > <u64>cfgCap) return -3;
  return <i32>ctReconcileUdp(cfgBuf, n);
}
// When the host leaves ipvs mode: the flows IPVS translated keep their real server through
// conntrack's DNAT (conntrack/reap.ts). Returns how many flows it changed.
export function conntrackAdoptIpvsNat(): u32 { return ctAdoptIpvsNat(); }

// ---- iptables mode (assembly/netfilter/api.ts): chain staging and commit, policies, counters,
// interface names, recent lists, the engine's counters, the mode switch and the one-packet trace.
// iptProcess (netfilter/hooks.ts) runs a parsed packet when iptModeGet() is 1.
export {
  iptStageChain, iptStagePatch, iptStageDelete, iptSetPolicy, iptCommit, iptAbort, iptLastError, iptRuleCount,
  iptCounters, iptPolicy, iptRefCount, iptSetIfName, iptRecentCount, iptRecentFlush, iptRecentDump,
  iptRecentSave, iptRecentLoad, iptRecentSavedBytes,
  iptStatsPtr, iptStatsCount, iptStatsClear, iptNfacctPtr, iptNfacctCount, iptModeSet, iptModeGet,
  iptTrace, iptTracePacket, iptTracePacketBytes, iptTraceForced, iptTraceMaxDecisions,
  iptTraceMaxSteps, iptTraceSteps, iptTraceDecisions, iptTraceResult,
} from "./netfilter/api";

// ---- ipset (assembly/ipset/api.ts; helper-owned section): sets by host-assigned id, elements
// through the fixed buffer ipsetElem(), staged replacement (begin/commit/abort), reaping of expired
// elements. iptables `-m set` rules look sets up by the same ids (ipset/lookup.ts).
export {
  ipsetElem, ipsetCreate, ipsetDestroy, ipsetFlush, ipsetSwap, ipsetRename, ipsetAdd, ipsetDel,
  ipsetTest, ipsetGet, ipsetBegin, ipsetCommit, ipsetAbort, ipsetInTxn, ipsetExists, ipsetCount,
  ipsetBytes, ipsetReap,
} from "./ipset/api";

// ---- IPVS (assembly/ipvs/api.ts): set-up, virtual services and destinations, sysctls, listing,
// counters and rates, the trace, periodic work (ipvsExpire, ipvsTick) and an IPVS-only batch entry.
// The pipelines call ipvs/core.ts ipvsProcess(d, f, now, meta) for the packet path.
export {
  ipvsInit, ipvsIsReady, ipvsBufPtr, ipvsBufBytes, ipvsAddService, ipvsEditService, ipvsDeleteService,
  ipvsFindService, ipvsFlush, ipvsServiceCount, ipvsConnDropAll, ipvsAddDest, ipvsEditDest, ipvsDeleteDest, ipvsFindDest, ipvsSetDestTunnel,
  ipvsZero, ipvsSetTimeouts, ipvsGetTimeout, ipvsSetSysctl, ipvsSetTunnelSource, ipvsCountersPtr,
  ipvsCountersCount, ipvsServiceNext, ipvsServiceInfo, ipvsDestInfo, ipvsServiceStats, ipvsDestStats,
  ipvsConnNext, ipvsConnInfo, ipvsConnSave, ipvsConnLoad, ipvsConnCheck, ipvsConnRecordBytes, ipvsConnCount, ipvsConnCapacity, ipvsConnEntryBytes, ipvsConnBytesPerEntry,
  ipvsServiceRecordBytes, ipvsDestRecordBytes, ipvsTrace, ipvsTraceBuf, ipvsTraceBytes, ipvsExpire, ipvsTick,
  ipvsResultPtr, ipvsResultBytes, ipvsProcessBatch,
} from "./ipvs/api";

// ---- cluster DNS (assembly/dns/api.ts; helper-owned section): the record table is loaded from a
// blob (format: dns/table.ts) written into dnsBuffer(size), swapped in whole by dnsLoad(len);
// dnsAnswer(query, len, out, cap, maxUdp, tcp) answers one message (length, or -1 short / -2 a
// response / -3 no room / -4 for the upstream: dropped and counted); dnsAnswerTcp does the same for
// a length-prefixed TCP frame (-5: incomplete); dnsForward(on) turns upstream marking on;
// dnsAnswerLocal answers as with it off, uncounted (the table's part of an upstream answer);
// dnsQueryPtr/dnsAnswerPtr are 64 KiB buffers for it.
export {
  dnsBuffer, dnsLoad, dnsReady, dnsRecordCount, dnsNameCount, dnsTableBytes, dnsQueryPtr, dnsAnswerPtr, dnsIoBytes,
  dnsAnswer, dnsAnswerLocal, dnsAnswerTcp, dnsForward, dnsCountersPtr, dnsCountersCount, dnsCountersReset,
} from "./dns/api";

// ---- cluster DNS on the packet path (assembly/dns/serve.ts; helper-owned section): the node's
// cluster DNS address per family (4 or 6; IPv4 in a0) and port; port 0 unsets it. In direct mode a
// UDP query to it is answered by dnsAnswer in the packet's slot (VERDICT_REPLY), one for the upstream
// is dropped with reason dns_upstream, TCP to it is counted and goes on. 0, or -1 bad family.
import { dnsSetAddress } from "./dns/serve";
export function nodeDnsAddress(family: u32, a0: u32, a1: u32, a2: u32, a3: u32, port: u32): i32 {
  return dnsSetAddress(family, a0, a1, a2, a3, port);
}
