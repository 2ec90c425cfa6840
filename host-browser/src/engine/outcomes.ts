// outcomes.ts — what the playground says about packets, in one shape for every mode: an outcome
// key ("FORWARD → 10.244.1.11:8080", "REPLY (reject)"), expected outcomes with probabilities,
// measured distributions from real packets, and the packets themselves (a fresh source port per
// connection). Shared by the iptables and IPVS runners. Pure: never holds a Dataplane.
import { buildPacket, decodePacket, type DecodedPacket } from '../../../host-node/core/packet.js';
import type { ProcessResult, PacketIn } from '../../../host-node/core/dataplane.js';
import { joinHostPort } from '../../../host-node/kube/ip.js';
import type { Proto } from '../presets.js';

/** A concrete packet for the core: the builder's choices resolved to addresses. */
export interface WirePacket {
  src: string;
  dst: string;
  proto: Proto;
  sport: number;
  dport: number;
  /** Sent by the node itself (OUTPUT) rather than arriving (PREROUTING). */
  local: boolean;
  /**
   * A DNS name to send to instead of `dst` (names.ts): resolved through the cluster's records with
   * the search path in `search` (a pod's resolv.conf; empty: the name as written).
   */
  name?: string;
  search?: string[];
}

export interface Outcome {
  key: string;
  verdict: string;
  reason: string;
  /** Destination after DNAT / IPVS ("ip:port"), when it changed. */
  to?: string;
  masq: boolean;
  probability: number;
  /** The rules that made it (iptables mode: its NAT rules and what stopped it), label and rule text. */
  by?: { label: string; text?: string }[];
}

/** One packet's journey through the core, for display. */
export interface Delivered {
  verdict: string;
  reason?: string;
  ctstate?: string;
  /** Headers as they leave the core (absent on DROP). */
  out?: { src: string; dst: string; sport: number; dport: number; flags?: string; icmp?: string };
}

export interface Distribution {
  sent: number;
  /** key → packets, keys in first-seen order. */
  counts: Array<{ key: string; count: number }>;
}

/**
 * "FORWARD → 10.244.1.11:8080", "… (masquerade)" when the source was rewritten, "REPLY (reject)".
 * Every REPLY is the client being refused (kube-proxy's REJECT, IPVS's and the direct table's ICMP
 * port unreachable): one key, whatever reason each mode counts it under, so modes compare.
 */
export function outcomeKey(verdict: string, reason: string, to?: string, masq = false): string {
  const m = masq ? ' (masquerade)' : '';
  if (verdict === 'REPLY') return 'REPLY (reject)';
  if (to) return `${verdict} → ${to}${m}`;
  return reason && reason !== 'none' ? `${verdict} (${reason})${m}` : `${verdict}${m}`;
}

/** Formats "ip:port", bracketing IPv6 as the trace does. */
export const hostPort = joinHostPort;

export function toBytes(p: WirePacket, sport = p.sport): PacketIn {
  const bytes = buildPacket({
    src: p.src, dst: p.dst, proto: p.proto, sport, dport: p.dport,
    ...(p.proto === 'tcp' ? { flags: 'S' } : {}),
  });
  return { bytes, local: p.local };
}

/** The outcome a processed packet had, keyed like the expected outcomes. */
export function measuredKey(p: WirePacket, r: ProcessResult): string {
  if (r.verdict === 'DROP' || !r.packet) return outcomeKey(r.verdict, r.reason ?? 'none');
  const d = decodePacket(r.packet);
  if (r.verdict === 'REPLY') return outcomeKey(r.verdict, r.reason ?? replyKind(d));
  const to = d.dst !== p.dst || d.dport !== p.dport ? hostPort(d.dst, d.dport) : undefined;
  return outcomeKey(r.verdict, r.reason ?? 'none', to, d.src !== p.src);
}

function replyKind(d: DecodedPacket): string {
  if (d.icmp) return 'reject';
  if (d.flags?.includes('R')) return 'reset';
  return 'none';
}

export function delivered(r: ProcessResult): Delivered {
  const out: Delivered = { verdict: r.verdict };
  if (r.reason) out.reason = r.reason;
  if (r.ctstate) out.ctstate = r.ctstate;
  if (r.packet) {
    const d = decodePacket(r.packet);
    out.out = { src: d.src, dst: d.dst, sport: d.sport, dport: d.dport };
    if (d.flags) out.out.flags = d.flags;
    if (d.icmp) out.out.icmp = `type ${d.icmp.type} code ${d.icmp.code}`;
  }
  return out;
}

/**
 * Source ports for `count` new connections, continuing after `next` and never reusing the
 * traced packet's own port: 1024–65535 wrap around (a fresh port each time a connection is new).
 */
export function freshPorts(count: number, next: number, avoid: number): { ports: number[]; next: number } {
  const ports: number[] = [];
  let p = next;
  while (ports.length < count) {
    p = p >= 65535 || p < 1024 ? 1024 : p + 1;
    if (p !== avoid) ports.push(p);
  }
  return { ports, next: p };
}

/** Counts outcomes in first-seen order. */
export function tally(keys: Iterable<string>): Distribution {
  const m = new Map<string, number>();
  let sent = 0;
  for (const k of keys) {
    m.set(k, (m.get(k) ?? 0) + 1);
    sent++;
  }
  return { sent, counts: [...m].map(([key, count]) => ({ key, count })) };
}

/** Merges outcomes with the same key, summing probabilities, most likely first (stable). */
export function mergeOutcomes(list: Outcome[]): Outcome[] {
  const m = new Map<string, Outcome>();
  for (const o of list) {
    const prev = m.get(o.key);
    if (prev) prev.probability += o.probability;
    else m.set(o.key, { ...o });
  }
  return [...m.values()].sort((a, b) => b.probability - a.probability);
}
