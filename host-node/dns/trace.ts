// dns/trace.ts — explains a cluster DNS query: the question, what the core's record table holds for
// it (the answer and authority records), the answer message and which way it went (answered, handed
// to the upstream, dropped); and resolves a name the way a pod would through the core (A/AAAA, or
// SRV then the targets' addresses) into the endpoints a traced packet can then be sent to.
// Leaves the core as it found it: the DNS counters moved by the query are put back. Platform-
// neutral; never sends a packet (host-node/dataplane.ts chains the packet trace) nor reads a clock.
import { buildQuery, decodeMessage, readQuestion, type DnsRR, type DnsMessage } from './message.js';

/** The DNS exports this needs (the core, or build/testing-dns.wasm). */
export interface DnsTraceCore {
  memory: WebAssembly.Memory;
  dnsQueryPtr(): number;
  dnsAnswerPtr(): number;
  dnsIoBytes(): number;
  dnsAnswer(q: number, len: number, out: number, cap: number, maxUdp: number, tcp: number): number;
  dnsCountersPtr(): number;
  dnsCountersCount(): number;
}

export interface DnsQueryTrace {
  question: { name: string; type: string };
  transport: 'udp' | 'tcp';
  /**
   * answered: the core wrote `answer`; upstream: not the zone's, handed to the host's forwarder
   * (dnsForward on); dropped: no answer is sent (`drop` says why).
   */
  outcome: 'answered' | 'upstream' | 'dropped';
  drop?: 'short' | 'response' | 'noroom';
  /** NOERROR, NXDOMAIN, REFUSED, … (answered only). */
  rcode?: string;
  /** Authoritative, truncated (answered only). */
  aa?: boolean;
  tc?: boolean;
  /** The records found for the question (the answer section). */
  records: DnsRR[];
  /** The authority section (the zone's SOA for NXDOMAIN/NODATA). */
  authority: DnsRR[];
  /** The answer message, decoded. */
  answer?: DnsMessage;
  /** Its bytes. */
  bytes?: Uint8Array;
}

// The packet path's UDP limit (assembly/dns/serve.ts MAX_UDP).
const PACKET_PATH_UDP = 1232;
const DROPS: Record<number, DnsQueryTrace['drop']> = { [-1]: 'short', [-2]: 'response', [-3]: 'noroom' };

/** A query given as a question or as message bytes → the bytes. */
export function queryBytes(q: { name: string; type?: string | number } | Uint8Array): Uint8Array {
  if (q instanceof Uint8Array) return q;
  if (q === null || typeof q !== 'object' || typeof q.name !== 'string') throw new Error('bad query: a DNS query is { name, type? } or the bytes of one');
  return buildQuery(q.name, q.type ?? 'A', { id: 0 });
}

/** Answers `query` as the packet path would (UDP, 1232 B) or as over TCP, and explains it. */
export function traceDnsQuery(core: DnsTraceCore, query: Uint8Array, transport: 'udp' | 'tcp' = 'udp'): DnsQueryTrace {
  let question = { name: '', type: '' };
  try {
    const q = readQuestion(query);
    question = { name: q.name, type: q.type };
  } catch {
    // A malformed query still gets traced: the core answers it FORMERR or drops it.
  }
  const io = core.dnsIoBytes();
  if (query.length > io) return { question, transport, outcome: 'dropped', drop: 'noroom', records: [], authority: [] };
  const counters = new Uint32Array(core.memory.buffer, core.dnsCountersPtr(), core.dnsCountersCount()).slice();
  const qp = core.dnsQueryPtr();
  const ap = core.dnsAnswerPtr();
  new Uint8Array(core.memory.buffer).set(query, qp);
  const n = core.dnsAnswer(qp, query.length, ap, io, PACKET_PATH_UDP, transport === 'tcp' ? 1 : 0);
  const bytes = n > 0 ? new Uint8Array(core.memory.buffer, ap, n).slice() : undefined;
  // A trace changes nothing: the counters go back to what they were.
  new Uint32Array(core.memory.buffer, core.dnsCountersPtr(), counters.length).set(counters);
  if (n === -4) return { question, transport, outcome: 'upstream', records: [], authority: [] };
  if (!bytes) return { question, transport, outcome: 'dropped', drop: DROPS[n] ?? 'short', records: [], authority: [] };
  const answer = decodeMessage(bytes);
  return {
    question, transport, outcome: 'answered', rcode: answer.rcode, aa: answer.header.aa, tc: answer.header.tc,
    records: answer.answer, authority: answer.authority, answer, bytes,
  };
}

export interface ResolvedTarget {
  /** An address the name resolved to. */
  address: string;
  /** The port an SRV record named (SRV names only). */
  port?: number;
  /** The SRV target the address came from. */
  via?: string;
}

export interface NameResolution {
  /** The queries asked, in order (the SRV query, then one per target; or the one A/AAAA query). */
  queries: DnsQueryTrace[];
  targets: ResolvedTarget[];
}

/**
 * Resolves `name` through the core's records as a pod's resolver would: a `_port._proto.` name by
 * SRV and then each target's addresses (with the SRV port), anything else by `type` (A or AAAA).
 * A CNAME (ExternalName) to a name in the cluster is followed by the core's answer itself; one to
 * a name outside ends the resolution without targets (only an upstream knows its addresses).
 */
export function resolveName(core: DnsTraceCore, name: string, type: 'A' | 'AAAA' = 'A'): NameResolution {
  const queries: DnsQueryTrace[] = [];
  const targets: ResolvedTarget[] = [];
  const addresses = (n: string): string[] => {
    const t = traceDnsQuery(core, buildQuery(n, type), 'tcp');
    queries.push(t);
    return t.records.filter((r) => r.type === type).map((r) => r.data);
  };
  if (/^_[^.]+\._[^.]+\./.test(name)) {
    const srv = traceDnsQuery(core, buildQuery(name, 'SRV'), 'tcp');
    queries.push(srv);
    for (const r of srv.records.filter((x) => x.type === 'SRV')) {
      const [, , port, target] = r.data.split(' ');
      for (const address of addresses(target!)) targets.push({ address, port: Number(port), via: target! });
    }
  } else {
    for (const address of addresses(name)) targets.push({ address });
  }
  return { queries, targets };
}

/** A name resolved through the core, then one packet traced to each address it gave. */
export interface NameTrace<T> {
  name: string;
  resolution: NameResolution;
  traces: Array<{ to: string; dport: number; result: T }>;
}

/**
 * Resolves `name` (resolveName) and traces a packet to every target with `tracePacket`: the SRV
 * port when the name gave one, else `dport`.
 */
export function traceName<T>(core: DnsTraceCore, name: string, type: 'A' | 'AAAA', dport: number, tracePacket: (dst: string, dport: number) => T): NameTrace<T> {
  const resolution = resolveName(core, name, type);
  const traces = resolution.targets.map((t) => ({ to: t.address, dport: t.port ?? dport, result: tracePacket(t.address, t.port ?? dport) }));
  return { name, resolution, traces };
}
