// abi.ts — the host's mirror of the core's numeric ABI: verdicts, reasons, counters, descriptor
// layout. Names live here; the core deals in numbers only. A test checks these lists against the
// counts the .wasm exports, so the two cannot drift apart silently.

export const ABI_VERSION = 1;

export const VERDICTS = ['PASS', 'FORWARD', 'DROP', 'REPLY'] as const;
export type Verdict = (typeof VERDICTS)[number];

/** Index = reason code (assembly/verdict.ts). */
export const REASONS = [
  'none',
  'truncated',
  'bad_version',
  'bad_header',
  'fragment',
  'ext_limit',
  'conntrack_full',
  'conntrack_invalid',
  'no_endpoints',
  'policy',
  'nat_ports_exhausted',
  'too_big',
  'bad_slot',
  'ttl_exceeded',
  'no_service',
  'dns_upstream',
] as const;
export type Reason = (typeof REASONS)[number];

/** ctstate bits as xt_conntrack tests them (assembly/conntrack/state.ts). */
export const CT_STATE_BITS = { INVALID: 1, ESTABLISHED: 2, RELATED: 4, NEW: 8, UNTRACKED: 16 } as const;
export type CtState = keyof typeof CT_STATE_BITS;
export function ctStateName(bits: number): CtState | undefined {
  for (const [k, v] of Object.entries(CT_STATE_BITS)) if (bits === v) return k as CtState;
  return undefined;
}

/** Counter block layout (assembly/stats.ts), after the verdict and reason counters. */
export const COUNTERS_AFTER_REASONS = [
  'packets',
  'bytes',
  'conntrack_new',
  'conntrack_hit',
  'conntrack_related',
  'dnat',
  'snat',
  'conntrack_reaped',
  'batches',
] as const;

/** Batch descriptor layout (assembly/io.ts). */
export const DESC = {
  bytes: 32,
  off: 0,
  len: 4,
  cap: 8,
  meta: 12,
  verdict: 16,
  ctstate: 17,
  reason: 18,
  mark: 20,
  ct: 24,
  aux: 28,
} as const;

export const META_LOCAL = 1;
export const META_CSUM_PARTIAL = 2;
/** Steered here only for un-NAT: untouched unless it belongs to a tracked connection (assembly/io.ts). */
export const META_TRACKED_ONLY = 4;
/** The transport checksum is known good (TUN: VIRTIO_NET_HDR_F_DATA_VALID): conntrack does not verify it. */
export const META_CSUM_VALID = 8;
export const CT_NONE = 0xffffffff;

/** Raw exports of the core module (assembly/index.ts). */
export interface CoreExports {
  memory: WebAssembly.Memory;
  abiVersion(): number;
  init(ctLog2: number, ct6Log2: number, seedLo: number, seedHi: number): number;
  ioDescPtr(): number;
  ioDataPtr(): number;
  ioDataBytes(): number;
  ioMaxBatch(): number;
  ioDescBytes(): number;
  processBatch(count: number, nowMs: number): number;
  expire(nowMs: number, budget: number): number;
  statsPtr(): number;
  statsCount(): number;
  verdictCount(): number;
  reasonCount(): number;
  resetStats(): void;
  cfgBuffer(size: number): number;
  loadServices(len: number): number;
  serviceCount(): number;
  nodeClear(): void;
  nodeLocal(family: number, a0: number, a1: number, a2: number, a3: number): number;
  nodePodCIDR(family: number, a0: number, a1: number, a2: number, a3: number, prefix: number): void;
  nodeMasquerade(family: number, a0: number, a1: number, a2: number, a3: number): void;
  nodeServiceCIDR(family: number, a0: number, a1: number, a2: number, a3: number, prefix: number): void;
  conntrackCount(): number;
  conntrackCapacity(): number;
  conntrackBytes(): number;
  conntrackWarm(maxBytes: number): number;
  conntrackNext(cursor: number): number;
  conntrackExport(index: number, out: number, nowMs: number): number;
  conntrackImport(ptr: number, nowMs: number): number;
  conntrackCheck(ptr: number): number;
  ipvsConnCheck(ptr: number): number;
  conntrackDelete(index: number): number;
  conntrackEvents(slots: number): number;
  conntrackEventsRead(max: number): number;
  conntrackEventsLost(): number;
  conntrackTimeout(kind: number, ms: number): number;
  conntrackFlushReplySrc(family: number, proto: number, a0: number, a1: number, a2: number, a3: number, port: number): number;
  conntrackFlushOrigDst(family: number, proto: number, a0: number, a1: number, a2: number, a3: number, port: number): number;
  conntrackFlushMany(n: number): number;
  conntrackReconcileUdp(n: number): number;
  conntrackAdoptIpvsNat(): number;
}

/** Service-load error codes (assembly/svc/table.ts). */
export const SVC_ERRORS: Record<number, string> = {
  [-1]: 'bad magic',
  [-2]: 'unsupported version',
  [-3]: 'length mismatch',
  [-4]: 'bad address family',
  [-5]: 'destination range outside the table',
  [-6]: 'duplicate service (same VIP, port and protocol)',
  [-7]: 'out of memory',
  [-9]: 'port 0 or unsupported protocol',
};
