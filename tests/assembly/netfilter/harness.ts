// Test harness for the iptables engine: a netfilter test core with conntrack, rulesets loaded from
// iptables-restore text through the real parser and compiler, and packets built, run and decoded.
import { loadTestingCore, type TestingCore } from '../../support/testing-core';
import { buildPacket, decodePacket, parseIP, type PacketSpec, type DecodedPacket } from '../../../host-node/core/packet';
import { parseRestore } from '../../../host-node/netfilter/restore';
import { IptCompiler, loadRestore, type IptCore, type CompileOptions } from '../../../host-node/netfilter/compile';
import { tracePacket, type TraceCore, type TraceOptions, type TraceResult } from '../../../host-node/netfilter/trace';
import type { Ruleset } from '../../../host-node/netfilter/ruleset';
import type { Family } from '../../../host-node/netfilter/model';
import { META_LOCAL, META_CSUM_VALID } from '../../../host-node/core/abi';

export const V = { PASS: 0, FORWARD: 1, DROP: 2, REPLY: 3 } as const;
export const R = { NONE: 0, FRAGMENT: 4, CT_FULL: 6, POLICY: 9, NAT_PORTS: 10, TOO_BIG: 11 } as const;
export const CT = { INVALID: 1, ESTABLISHED: 2, RELATED: 4, NEW: 8, UNTRACKED: 16 } as const;
export { META_LOCAL, META_CSUM_VALID };
// counters.ts IS_* indices.
export const IS = {
  PACKETS: 0, DEPTH_DROPS: 1, SET_NO_TABLE: 2, NAT_WRONG_HOOK: 3, NAT_NO_ADDR: 4, REJECT_REPLIES: 5,
  REJECT_SILENT: 6, LOG: 7, UNTRACKED: 8, INVALID: 9, CONFIRM_FAILED: 10, TRACE_OVERFLOW: 11, NAT_PORTS: 12,
} as const;
export const CT_NONE = 0xffffffff;

const DESC = { verdict: 16, ctstate: 17, reason: 18, mark: 20, ct: 24, len: 4 };
const SLOT = 4096;

export interface Sent {
  verdict: number;
  reason: number;
  ctstate: number;
  mark: number;
  ct: number;
  bytes: Uint8Array;
  pkt: DecodedPacket;
}

export interface SendOptions {
  local?: boolean;
  /** The host verified its checksum (META_CSUM_VALID): conntrack does not sum it. */
  checksumVerified?: boolean;
  inIf?: number;
  outIf?: number;
  now?: number;
  cap?: number;
}

/** A raw word of an address (as the core keeps it: little-endian load of its bytes). */
export function addrWords(text: string): [number, number, number, number] {
  const b = parseIP(text);
  const dv = new DataView(b.buffer);
  const w = (i: number) => (i * 4 < b.length ? dv.getUint32(i * 4, true) : 0);
  return [w(0), w(1), w(2), w(3)];
}

export class Bench {
  readonly core: TestingCore;
  readonly x: TestingCore['x'];
  readonly compiler = new IptCompiler();
  rulesets: Record<Family, Ruleset | undefined> = { 4: undefined, 6: undefined };
  private spare = 0;
  private spareBytes = 0;

  constructor(opts: { ctLog2?: number; seed?: number } = {}) {
    this.core = loadTestingCore('netfilter');
    this.x = this.core.x;
    if (this.x.setup!(opts.ctLog2 ?? 12, opts.seed ?? 7, 0) !== 0) throw new Error('conntrack init failed');
  }

  get ipt(): IptCore & TraceCore {
    return { ...(this.x as unknown as IptCore & TraceCore), memory: this.core.memory };
  }

  /** Memory for a blob: the scratch buffer, or fresh pages for a big one. */
  buffer = (n: number): number => {
    if (n <= 1 << 19) return this.core.scratch + (1 << 19);
    if (n > this.spareBytes) {
      const pages = Math.ceil(n / 65536);
      this.spare = this.core.memory.grow(pages) * 65536;
      this.spareBytes = pages * 65536;
    }
    return this.spare;
  };

  /** iptables-restore text (family from the options), compiled and committed. Throws on refusal. */
  restore(text: string, opts: { family?: Family; noflush?: boolean; compile?: CompileOptions } = {}): void {
    const family = opts.family ?? 4;
    const r = parseRestore(text, { family, noflush: opts.noflush ?? false, base: this.rulesets[family] });
    if (!r.ok) throw new Error(r.error.message);
    const compiled = this.compiler.compile(r.ruleset, r.touched, opts.compile);
    loadRestore(this.ipt, this.compiler, compiled, this.buffer);
    this.rulesets[family] = r.ruleset;
  }

  local(addr: string): void {
    const w = addrWords(addr);
    this.x.nodeLocal!(addr.includes(':') ? 6 : 4, ...w);
  }

  masq(addr: string): void {
    const w = addrWords(addr);
    this.x.nodeMasq!(addr.includes(':') ? 6 : 4, ...w);
  }

  ifname(index: number, name: string): void {
    const b = new TextEncoder().encode(name);
    const p = this.core.put(b, this.core.scratch + 8192);
    if (this.x.iptSetIfName!(index, p, b.length) !== 0) throw new Error('ifname refused');
  }

  /** Builds, runs and decodes one packet. */
  send(spec: PacketSpec | Uint8Array, o: SendOptions = {}): Sent {
    const bytes = spec instanceof Uint8Array ? spec : buildPacket(spec);
    const ptr = this.core.scratch;
    const cap = o.cap ?? SLOT;
    this.core.put(bytes, ptr);
    const meta = (o.local ? META_LOCAL : 0) | (o.checksumVerified ? META_CSUM_VALID : 0) | ((o.inIf ?? 0) << 8) | ((o.outIf ?? 0) << 16);
    this.x.run!(ptr, bytes.length, cap, meta, o.now ?? 1000);
    const dv = this.core.dv();
    const d = this.x.descPtr!();
    const len = dv.getUint32(d + DESC.len, true);
    const out = this.core.get(ptr, len);
    let pkt: DecodedPacket;
    try { pkt = decodePacket(out); } catch { pkt = undefined as unknown as DecodedPacket; }
    return {
      verdict: dv.getUint8(d + DESC.verdict),
      reason: dv.getUint16(d + DESC.reason, true),
      ctstate: dv.getUint8(d + DESC.ctstate),
      mark: dv.getUint32(d + DESC.mark, true),
      ct: dv.getUint32(d + DESC.ct, true),
      bytes: out,
      pkt,
    };
  }

  trace(spec: PacketSpec, opts: TraceOptions = {}): TraceResult {
    return tracePacket(this.ipt, this.compiler, buildPacket(spec), opts);
  }

  /** Counters of a chain: [packets, bytes] per rule, then the policy/fall-through record. */
  counters(family: Family, table: string, chain: string): [bigint, bigint][] {
    const id = this.compiler.chainId(family, table as never, chain);
    if (id === undefined) throw new Error(`no chain ${table}/${chain}`);
    const n = this.x.iptRuleCount!(id);
    const p = this.x.iptCounters!(id) >>> 0;
    const dv = this.core.dv();
    const out: [bigint, bigint][] = [];
    for (let i = 0; i <= n; i++) out.push([dv.getBigUint64(p + i * 16, true), dv.getBigUint64(p + i * 16 + 8, true)]);
    return out;
  }

  stat(i: number): bigint {
    return this.core.dv().getBigUint64((this.x.iptStatsPtr!() >>> 0) + i * 8, true);
  }

  ctCount(): number {
    return this.x.ctCount!() >>> 0;
  }
}

/** A filter table whose INPUT and FORWARD chains both jump to TEST (so packets hit it either way). */
export function filterWith(rules: string, policy = 'ACCEPT', extraChains = ''): string {
  return `*filter\n:INPUT ${policy} [0:0]\n:FORWARD ${policy} [0:0]\n:OUTPUT ACCEPT [0:0]\n:TEST - [0:0]\n${extraChains}` +
    `-A INPUT -j TEST\n-A FORWARD -j TEST\n${rules}\nCOMMIT\n`;
}

export const tcp = (src: string, dst: string, sport: number, dport: number, flags = 'S', extra: Partial<PacketSpec> = {}): PacketSpec =>
  ({ src, dst, proto: 'tcp', sport, dport, flags, ...extra });
export const udp = (src: string, dst: string, sport: number, dport: number, extra: Partial<PacketSpec> = {}): PacketSpec =>
  ({ src, dst, proto: 'udp', sport, dport, ...extra });

// ---- hand-made blobs -------------------------------------------------------------------------
export type Op = [kind: number, flags: number, ...args: number[]];
export interface RuleSpec { m?: Op[]; t?: Op; t2?: Op }

export function blob(family: number, table: number, rules: RuleSpec[], flags = 0): Uint8Array {
  const ops: number[] = [];
  const recs: number[] = [];
  for (const r of rules) {
    const start = ops.length;
    for (const [k, f, ...a] of r.m ?? []) ops.push(k | (f << 8) | ((a.length + 1) << 16), ...a);
    const t = ops.length;
    for (const op of [r.t, r.t2]) {
      if (op) { const [k, f, ...a] = op; ops.push(k | (f << 8) | ((a.length + 1) << 16), ...a); }
    }
    recs.push(start, t, ops.length);
  }
  const out = new Uint8Array(32 + recs.length * 4 + ops.length * 4);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, 0x43545049, true);
  dv.setUint16(4, 1, true);
  out[6] = family;
  out[7] = table;
  dv.setUint32(8, flags, true);
  dv.setUint32(12, rules.length, true);
  dv.setUint32(16, ops.length, true);
  recs.forEach((w, i) => dv.setUint32(32 + i * 4, w >>> 0, true));
  ops.forEach((w, i) => dv.setUint32(32 + recs.length * 4 + i * 4, w >>> 0, true));
  return out;
}

export function stage(b: Bench, id: number, bytes: Uint8Array): number {
  const p = b.core.put(bytes, b.buffer(bytes.length));
  return b.x.iptStageChain!(id, p, bytes.length);
}

