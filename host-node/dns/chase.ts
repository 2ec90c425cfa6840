// dns/chase.ts — completes the answer to a cluster-zone name whose CNAME chain leaves the zone (an
// ExternalName Service naming a host outside the cluster): the core's part (the chain, from
// dnsAnswerLocal) with the upstream's answer for the chain's last target appended, as a recursive
// resolver answers (RFC 1034 §4.3.2; CoreDNS's kubernetes plugin looks the target up through its
// upstream). Pods' stub resolvers (glibc, musl) never follow a CNAME themselves: an answer of the
// CNAME alone resolves to no address. Any other query the core hands upstream is forwarded as it
// is. Never answers from records, never caches, never reads a clock.
import { buildQuery, decodeMessage, readHeader, readQuestion, readWireName, wireNameText, clientUdpSize, servfail, DnsMessageError } from './message.js';
import type { DnsForwarder } from './forward.js';
import { concatBytes } from '../core/snapshot.js';

/** The core's answer to `query` with forwarding off (dnsAnswerLocal), or null when it gives none. */
export type LocalAnswer = (query: Uint8Array, via: 'udp' | 'tcp') => Uint8Array | null;

/** The DNS exports coreLocalAnswer uses (the ABI's, or build/testing-dns.wasm's). */
export interface LocalCore {
  memory: WebAssembly.Memory;
  dnsQueryPtr(): number;
  dnsAnswerPtr(): number;
  dnsIoBytes(): number;
  dnsAnswerLocal(q: number, len: number, out: number, cap: number, maxUdp: number, tcp: number): number;
}

/** The core's dnsAnswerLocal, through its fixed query and answer buffers. */
export function coreLocalAnswer(core: LocalCore): LocalAnswer {
  return (query, via) => {
    const io = core.dnsIoBytes();
    if (query.length > io) return null;
    const q = core.dnsQueryPtr(), a = core.dnsAnswerPtr();
    new Uint8Array(core.memory.buffer).set(query, q);
    const n = core.dnsAnswerLocal(q, query.length, a, io, MAX_UDP, via === 'tcp' ? 1 : 0);
    return n > 0 ? new Uint8Array(core.memory.buffer).slice(a, a + n) : null;
  };
}

/** A record with its names written out whole (no compression pointers into the message it came from). */
interface RR { owner: Uint8Array; type: number; cls: number; ttl: number; rdata: Uint8Array }

const T_CNAME = 5;
const T_OPT = 41;
/** Our largest UDP answer, as the core's (dns/serve.ts MAX_UDP): DNS Flag Day 2020's 1232 bytes. */
const MAX_UDP = 1232;
const RC_NOERROR = 0;
const RC_SERVFAIL = 2;
const RC_NXDOMAIN = 3;

/** The rdata at [at, at + len) with the names RFC 1035's types may compress written out whole. */
function rdataAt(b: Uint8Array, type: number, at: number, len: number): Uint8Array {
  const raw = b.subarray(at, at + len);
  // Fixed octets before the name(s), and the names that follow: NS, CNAME, PTR, DNAME one name;
  // MX a preference then a name; SRV priority, weight, port then a name; SOA two names then 20 octets.
  const shape: Record<number, [number, number]> = { 2: [0, 1], 5: [0, 1], 12: [0, 1], 39: [0, 1], 15: [2, 1], 33: [6, 1], 6: [0, 2] };
  const s = shape[type];
  if (!s) return raw.slice();
  const parts: Uint8Array[] = [raw.subarray(0, s[0])];
  let pos = at + s[0];
  for (let k = 0; k < s[1]; k++) {
    const [name, next] = readWireName(b, pos);
    parts.push(name);
    pos = next;
  }
  parts.push(b.subarray(pos, at + len));
  if (pos > at + len) throw new DnsMessageError(`rdata at ${at} runs past its length`);
  return concatBytes(parts);
}

/** `count` records from `at`: [records, offset after them]. */
function recordsAt(b: Uint8Array, at: number, count: number): [RR[], number] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: RR[] = [];
  let pos = at;
  for (let i = 0; i < count; i++) {
    const [owner, p] = readWireName(b, pos);
    if (p + 10 > b.length) throw new DnsMessageError(`record at ${pos} runs past the end`);
    const type = dv.getUint16(p), rdlen = dv.getUint16(p + 8);
    if (p + 10 + rdlen > b.length) throw new DnsMessageError(`record at ${pos} runs past the end`);
    out.push({ owner, type, cls: dv.getUint16(p + 2), ttl: dv.getUint32(p + 4), rdata: rdataAt(b, type, p + 10, rdlen) });
    pos = p + 10 + rdlen;
  }
  return [out, pos];
}

const lower = (n: Uint8Array): string => Array.from(n, (c) => (c >= 0x41 && c <= 0x5a ? c | 0x20 : c)).join(',');

/**
 * Where the CNAME chain of a local answer to `query` leaves it: the last CNAME's target, when the
 * answer holds a chain from the question's name and nothing at its end. Null for any other answer.
 */
export function chaseTarget(query: Uint8Array, local: Uint8Array): { target: Uint8Array; chain: RR[] } | null {
  try {
    const h = readHeader(local);
    if (h.rcode !== RC_NOERROR || h.ancount === 0 || readQuestion(query).type === 'CNAME') return null;
    const [records] = recordsAt(local, readQuestion(local).end, h.ancount);
    let at = lower(readWireName(query, 12)[0]);
    let target: Uint8Array | null = null;
    for (let link = 0; link < records.length; link++) {
      const cname = records.find((r) => r.type === T_CNAME && lower(r.owner) === at);
      if (!cname) break;
      target = cname.rdata;
      at = lower(target);
    }
    if (target === null || records.some((r) => lower(r.owner) === at)) return null;
    return { target, chain: records };
  } catch {
    return null;
  }
}

/** The header, the question of `query`, then the sections, as one message. */
function message(query: Uint8Array, flags: number, sections: [RR[], RR[]], opt: boolean): Uint8Array {
  const qEnd = readQuestion(query).end;
  const parts: Uint8Array[] = [new Uint8Array(12), query.subarray(12, qEnd)];
  for (const list of sections) {
    for (const r of list) {
      const fixed = new Uint8Array(10);
      const dv = new DataView(fixed.buffer);
      dv.setUint16(0, r.type);
      dv.setUint16(2, r.cls);
      dv.setUint32(4, r.ttl);
      dv.setUint16(8, r.rdata.length);
      parts.push(r.owner, fixed, r.rdata);
    }
  }
  // OPT: root owner, our UDP size as its class, no extended rcode or flags.
  if (opt) parts.push(Uint8Array.from([0, 0, T_OPT, MAX_UDP >> 8, MAX_UDP & 0xff, 0, 0, 0, 0, 0, 0]));
  const out = concatBytes(parts);
  const dv = new DataView(out.buffer);
  dv.setUint16(0, readHeader(query).id);
  dv.setUint16(2, flags);
  dv.setUint16(4, 1);
  dv.setUint16(6, sections[0].length);
  dv.setUint16(8, sections[1].length);
  dv.setUint16(10, opt ? 1 : 0);
  return out;
}

/**
 * The answer to `query`, which the core handed upstream: when its CNAME chain leaves the zone, the
 * chain (`local`) and the upstream's records for the chain's last target, the rcode the
 * upstream's (RFC 6604: the last name's; SERVFAIL when the upstream gave none of NOERROR and
 * NXDOMAIN), its SOA in authority for a negative answer (RFC 2308); else the query forwarded as
 * it is. Over UDP an answer larger than the client takes keeps the records that fit, with TC set.
 */
export async function resolveUpstream(forwarder: DnsForwarder, query: Uint8Array, via: 'udp' | 'tcp', local?: LocalAnswer): Promise<Uint8Array> {
  const mine = local?.(query, via) ?? null;
  const chase = mine && chaseTarget(query, mine);
  if (!chase) return forwarder.forward(query, via);
  const q = readQuestion(query);
  const up = await forwarder.forward(buildQuery(wireNameText(chase.target), q.type, { edns: MAX_UDP }), via);
  try {
    const u = readHeader(up);
    const [answer, at] = recordsAt(up, readQuestion(up).end, u.ancount);
    const [authority] = recordsAt(up, at, u.nscount);
    const rcode = u.rcode === RC_NOERROR || u.rcode === RC_NXDOMAIN ? u.rcode : RC_SERVFAIL;
    const h = readHeader(query);
    // QR, the query's opcode and RD, AA as the zone's own answer gave it (it owns the first name,
    // RFC 1035 §4.1.1), RA: this answer was recursed for.
    const flags = 0x8000 | (h.opcode << 11) | (h.rd ? 0x0100 : 0) | (readHeader(mine!).aa ? 0x0400 : 0) | 0x0080 | rcode;
    const records = [...chase.chain, ...answer.filter((r) => r.type !== T_OPT)];
    const negative = answer.length === 0 ? authority.filter((r) => r.type !== T_OPT) : [];
    const opt = hasEdns(query);
    const limit = via === 'udp' ? Math.min(clientUdpSize(query), MAX_UDP) : 65535;
    const out = message(query, flags, [records, negative], opt);
    if (out.length <= limit) return out;
    // Too large: the records that fit, TC set (RFC 2181 §9).
    let room = limit - (readQuestion(query).end + (opt ? 11 : 0));
    let keep = 0;
    for (; keep < records.length; keep++) {
      const r = records[keep]!, size = r.owner.length + 10 + r.rdata.length;
      if (size > room) break;
      room -= size;
    }
    return message(query, flags | 0x0200, [records.slice(0, keep), []], opt);
  } catch {
    return servfail(query);
  }
}

/** Whether `query` carries an EDNS0 OPT record (its answer then carries one too, RFC 6891 §7). */
function hasEdns(query: Uint8Array): boolean {
  try {
    return decodeMessage(query).ednsUdp !== undefined;
  } catch {
    return false;
  }
}
