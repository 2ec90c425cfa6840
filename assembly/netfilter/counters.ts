// netfilter/counters.ts — the iptables engine's own counters (events that are neither a verdict nor
// a rule hit: jump-stack overflows, set matches naming no set, NAT targets in the wrong
// hook, replies REJECT could not send, …) and the nfacct named counters. The host reads both as
// blocks of little-endian u64 and names them (host-node/netfilter). Increments only; nfacct
// storage grows at control time (staging a chain that names a higher counter id), never on the
// packet path. Nothing here counts while a trace runs (traceMode).

export const IS_PACKETS: u32 = 0;          // packets through iptProcess
export const IS_DEPTH_DROPS: u32 = 1;      // jump stack full (walk.ts IPT_STACK_DEPTH): dropped
export const IS_SET_NO_TABLE: u32 = 2;     // -m set naming an id no ipset holds: as an empty set
export const IS_NAT_WRONG_HOOK: u32 = 3;   // DNAT in a source-NAT hook or the reverse: dropped
export const IS_NAT_NO_ADDR: u32 = 4;      // MASQUERADE/REDIRECT without a node address: dropped
export const IS_REJECT_REPLIES: u32 = 5;   // REJECT replies generated
export const IS_REJECT_SILENT: u32 = 6;    // REJECT that could send nothing (RST to RST, …): dropped
export const IS_LOG: u32 = 7;              // LOG / NFLOG targets hit
export const IS_UNTRACKED: u32 = 8;        // packets NOTRACKed in raw
export const IS_INVALID: u32 = 9;          // packets conntrack judged INVALID (rules decide)
export const IS_CONFIRM_FAILED: u32 = 10;  // accepted NEW packets whose connection could not be stored
export const IS_TRACE_OVERFLOW: u32 = 11;  // trace steps that did not fit the trace buffer
export const IS_NAT_PORTS: u32 = 12;       // no free port for SNAT/MASQUERADE: dropped
export const IS_COUNT: u32 = 13;

export const iptStats: usize = heap.alloc(<usize>IS_COUNT << 3);
memory.fill(iptStats, 0, <usize>IS_COUNT << 3);

// Set while a trace runs (trace.ts): counters, recent tables, nth counters, limit buckets, the
// random stream and conntrack all stay as they are.
export let traceMode = false;
export function setTraceMode(on: bool): void { traceMode = on; }

@inline export function iptCount(i: u32): void {
  if (traceMode) return;
  const p = iptStats + (<usize>i << 3);
  store<u64>(p, load<u64>(p) + 1);
}

export function iptStatsReset(): void {
  memory.fill(iptStats, 0, <usize>IS_COUNT << 3);
}

// ---- nfacct: (packets u64, bytes u64) per counter id.
export const NFACCT_MAX: u32 = 1 << 16;
let nfacct: usize = 0;
let nfacctCap: u32 = 0;

// Makes counter `id` exist (control time). False when `id` is out of range.
export function nfacctEnsure(id: u32): bool {
  if (id >= NFACCT_MAX) return false;
  if (id < nfacctCap) return true;
  let cap: u32 = nfacctCap == 0 ? 16 : nfacctCap;
  while (cap <= id) cap <<= 1;
  const p = heap.alloc(<usize>cap << 4);
  memory.fill(p, 0, <usize>cap << 4);
  if (nfacct != 0) {
    memory.copy(p, nfacct, <usize>nfacctCap << 4);
    heap.free(nfacct);
  }
  nfacct = p;
  nfacctCap = cap;
  return true;
}

// xt_nfacct: every packet that reaches the match is counted; it always matches (no quota).
@inline export function nfacctAdd(id: u32, bytes: u32): void {
  if (traceMode || id >= nfacctCap) return;
  const p = nfacct + (<usize>id << 4);
  store<u64>(p, load<u64>(p) + 1);
  store<u64>(p + 8, load<u64>(p + 8) + <u64>bytes);
}

export function nfacctPtr(): usize { return nfacct; }
export function nfacctCount(): u32 { return nfacctCap; }
