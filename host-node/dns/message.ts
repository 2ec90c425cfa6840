// dns/message.ts — the host's view of a DNS message (RFC 1035 §4.1): build a query, read the header
// and question, decode every section into readable records (for traces and the CLI), the client's
// EDNS0 UDP size (RFC 6891 §6.2.3), a message with another ID, and a SERVFAIL reply to a query
// (what the forwarder sends when no upstream answered). Platform-neutral and pure; never answers
// from records (the core does) and never touches a socket. Bad bytes throw DnsMessageError.
import { wireName } from './table.js';
import { formatIP } from '../kube/ip.js';

/** Type codes by name (RFC 1035 §3.2.2, RFC 3596, RFC 2782, RFC 6891). */
export const DNS_TYPES = {
  A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, AXFR: 252, ANY: 255,
} as const;
export type DnsTypeName = keyof typeof DNS_TYPES;
const TYPE_NAMES = new Map<number, string>(Object.entries(DNS_TYPES).map(([k, v]) => [v, k]));

export const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'] as const;

/** The name of a type code ("TYPE65" for the unknown, as RFC 3597 §5 writes them). */
export function typeName(code: number): string {
  return TYPE_NAMES.get(code) ?? `TYPE${code}`;
}

/** A type name or number as its code; throws on an unknown name. */
export function typeCode(type: string | number): number {
  if (typeof type === 'number' && Number.isInteger(type) && type >= 0 && type <= 0xffff) return type;
  if (typeof type !== 'string') throw new DnsMessageError(`record type ${typeof type === 'number' ? type : 'of the wrong kind'}: a name (A, AAAA, SRV, …) or a number 0-65535`);
  const up = type.toUpperCase();
  const known = (DNS_TYPES as Record<string, number>)[up];
  if (known !== undefined) return known;
  const m = /^TYPE(\d{1,5})$/.exec(up);
  if (m && Number(m[1]) <= 0xffff) return Number(m[1]);
  throw new DnsMessageError(`unknown record type ${JSON.stringify(type)}`);
}

export class DnsMessageError extends Error {}

export interface DnsHeader {
  id: number;
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  rcode: number;
  qdcount: number;
  ancount: number;
  nscount: number;
  arcount: number;
}

export interface DnsQuestion { name: string; type: string; class: number }

/** One record in presentation form: data as a zone file writes it. */
export interface DnsRR { name: string; type: string; ttl: number; data: string }

export interface DnsMessage {
  header: DnsHeader;
  /** NOERROR, NXDOMAIN, … (extended rcodes from the OPT included). */
  rcode: string;
  question: DnsQuestion[];
  answer: DnsRR[];
  authority: DnsRR[];
  /** Additional records other than the OPT. */
  additional: DnsRR[];
  /** The OPT's UDP size when the message carries one. */
  ednsUdp?: number;
}

export interface QueryOptions {
  id?: number;
  /** Recursion desired (default true, as stub resolvers send). */
  rd?: boolean;
  /** Adds an OPT record with this UDP payload size. */
  edns?: number;
}

/** A standard query for `name` and `type`. */
export function buildQuery(name: string, type: string | number, o: QueryOptions = {}): Uint8Array {
  const qname = wireName(name);
  const opt = o.edns !== undefined ? 11 : 0;
  const b = new Uint8Array(12 + qname.length + 4 + opt);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, (o.id ?? 0) & 0xffff);
  dv.setUint16(2, o.rd === false ? 0 : 0x0100);
  dv.setUint16(4, 1);
  dv.setUint16(10, opt ? 1 : 0);
  b.set(qname, 12);
  let at = 12 + qname.length;
  dv.setUint16(at, typeCode(type));
  dv.setUint16(at + 2, 1);
  at += 4;
  if (opt) {
    // Root owner, type OPT, class = UDP size, TTL 0 (version 0, no DO), rdlength 0.
    dv.setUint16(at + 1, DNS_TYPES.OPT);
    dv.setUint16(at + 3, o.edns! & 0xffff);
  }
  return b;
}

export function readHeader(b: Uint8Array): DnsHeader {
  if (b.length < 12) throw new DnsMessageError(`message of ${b.length} bytes has no header`);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const f = dv.getUint16(2);
  return {
    id: dv.getUint16(0), qr: (f & 0x8000) !== 0, opcode: (f >> 11) & 0xf, aa: (f & 0x0400) !== 0,
    tc: (f & 0x0200) !== 0, rd: (f & 0x0100) !== 0, ra: (f & 0x0080) !== 0, rcode: f & 0xf,
    qdcount: dv.getUint16(4), ancount: dv.getUint16(6), nscount: dv.getUint16(8), arcount: dv.getUint16(10),
  };
}

/**
 * The (possibly compressed) name at `at` in wire form with every pointer followed, and the offset
 * after it where it starts.
 */
export function readWireName(b: Uint8Array, at: number): [Uint8Array, number] {
  const out: number[] = [];
  let pos = at;
  let end = -1;
  // Every pointer must go backwards (RFC 1035 §4.1.4 prior occurrence), so no loop can form.
  let limit = at;
  for (;;) {
    if (pos >= b.length) throw new DnsMessageError(`name at ${at} runs past the end`);
    const len = b[pos]!;
    if ((len & 0xc0) === 0xc0) {
      if (pos + 1 >= b.length) throw new DnsMessageError(`pointer at ${pos} runs past the end`);
      const to = ((len & 0x3f) << 8) | b[pos + 1]!;
      if (to >= limit) throw new DnsMessageError(`pointer at ${pos} does not point backwards`);
      if (end < 0) end = pos + 2;
      limit = pos = to;
      continue;
    }
    if ((len & 0xc0) !== 0) throw new DnsMessageError(`bad label type at ${pos}`);
    if (pos + 1 + len > b.length) throw new DnsMessageError(`label at ${pos} runs past the end`);
    for (let i = 0; i <= len; i++) out.push(b[pos + i]!);
    if (len === 0) break;
    pos += 1 + len;
  }
  return [Uint8Array.from(out), end < 0 ? pos + 1 : end];
}

/** A wire-form name as text, labels joined by dots ("" for the root), no trailing dot. */
export function wireNameText(n: Uint8Array): string {
  const labels: string[] = [];
  for (let i = 0; n[i]! !== 0; i += 1 + n[i]!) labels.push(String.fromCharCode(...n.subarray(i + 1, i + 1 + n[i]!)));
  return labels.join('.');
}

/** Reads the (possibly compressed) name at `at`: [name with trailing dot, offset after it]. */
export function readName(b: Uint8Array, at: number): [string, number] {
  const [wire, end] = readWireName(b, at);
  return [`${wireNameText(wire)}.`, end];
}

/** The first question and the offset after it. */
export function readQuestion(b: Uint8Array): DnsQuestion & { end: number } {
  const h = readHeader(b);
  if (h.qdcount < 1) throw new DnsMessageError('message has no question');
  const [name, at] = readName(b, 12);
  if (at + 4 > b.length) throw new DnsMessageError('question runs past the end');
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return { name, type: typeName(dv.getUint16(at)), class: dv.getUint16(at + 2), end: at + 4 };
}

function rdataText(b: Uint8Array, type: number, at: number, len: number): string {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const end = at + len;
  switch (type) {
    case DNS_TYPES.A:
    case DNS_TYPES.AAAA:
      if (len !== (type === DNS_TYPES.A ? 4 : 16)) break;
      return formatIP({ family: len === 4 ? 4 : 6, bytes: b.slice(at, end) });
    case DNS_TYPES.CNAME:
    case DNS_TYPES.PTR:
    case DNS_TYPES.NS:
      return readName(b, at)[0];
    case DNS_TYPES.SRV:
      if (len < 7) break;
      return `${dv.getUint16(at)} ${dv.getUint16(at + 2)} ${dv.getUint16(at + 4)} ${readName(b, at + 6)[0]}`;
    case DNS_TYPES.SOA: {
      const [mname, r] = readName(b, at);
      const [rname, n] = readName(b, r);
      if (n + 20 > end) break;
      const nums = [0, 4, 8, 12, 16].map((k) => dv.getUint32(n + k));
      return `${mname} ${rname} ${nums.join(' ')}`;
    }
    case DNS_TYPES.TXT: {
      const parts: string[] = [];
      for (let p = at; p < end; p += 1 + b[p]!) parts.push(JSON.stringify(String.fromCharCode(...b.subarray(p + 1, Math.min(end, p + 1 + b[p]!)))));
      return parts.join(' ');
    }
  }
  // RFC 3597 §5: unknown (or malformed) rdata as \# length hex.
  return `\\# ${len} ${[...b.subarray(at, end)].map((x) => x.toString(16).padStart(2, '0')).join('')}`.trimEnd();
}

/** Decodes a whole message; throws DnsMessageError on malformed bytes. */
export function decodeMessage(b: Uint8Array): DnsMessage {
  const header = readHeader(b);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let at = 12;
  const question: DnsQuestion[] = [];
  for (let i = 0; i < header.qdcount; i++) {
    const [name, e] = readName(b, at);
    if (e + 4 > b.length) throw new DnsMessageError('question runs past the end');
    question.push({ name, type: typeName(dv.getUint16(e)), class: dv.getUint16(e + 2) });
    at = e + 4;
  }
  const sections: DnsRR[][] = [[], [], []];
  let ednsUdp: number | undefined;
  let extRcode = 0;
  const counts = [header.ancount, header.nscount, header.arcount];
  for (let s = 0; s < 3; s++) {
    for (let i = 0; i < counts[s]!; i++) {
      const [name, e] = readName(b, at);
      if (e + 10 > b.length) throw new DnsMessageError(`record at ${at} runs past the end`);
      const type = dv.getUint16(e);
      const rdlen = dv.getUint16(e + 8);
      if (e + 10 + rdlen > b.length) throw new DnsMessageError(`rdata at ${e + 10} runs past the end`);
      if (type === DNS_TYPES.OPT) {
        ednsUdp = dv.getUint16(e + 2);
        extRcode = dv.getUint8(e + 4);
      } else {
        sections[s]!.push({ name, type: typeName(type), ttl: dv.getUint32(e + 4), data: rdataText(b, type, e + 10, rdlen) });
      }
      at = e + 10 + rdlen;
    }
  }
  const code = (extRcode << 4) | header.rcode;
  return {
    header, rcode: code === 16 ? 'BADVERS' : RCODE_NAMES[code] ?? `RCODE${code}`, question,
    answer: sections[0]!, authority: sections[1]!, additional: sections[2]!,
    ...(ednsUdp !== undefined ? { ednsUdp } : {}),
  };
}

/** The largest UDP answer the sender of `query` accepts: its EDNS0 size (at least 512), else 512. */
export function clientUdpSize(query: Uint8Array): number {
  try {
    const size = decodeMessage(query).ednsUdp;
    return size === undefined ? 512 : Math.max(512, size);
  } catch {
    return 512;
  }
}

/** A copy of `msg` with the ID replaced. */
export function withId(msg: Uint8Array, id: number): Uint8Array {
  const out = msg.slice();
  out[0] = (id >> 8) & 0xff;
  out[1] = id & 0xff;
  return out;
}

/**
 * SERVFAIL for `query` (RFC 1035 §4.1.1 "server failure"): its ID, opcode and RD, QR and RA set,
 * the question echoed, nothing else. A query without a readable question gets the bare header.
 */
export function servfail(query: Uint8Array): Uint8Array {
  const h = readHeader(query);
  let qEnd = 12;
  try { qEnd = readQuestion(query).end; } catch { qEnd = 12; }
  const out = query.slice(0, qEnd);
  const dv = new DataView(out.buffer);
  dv.setUint16(2, 0x8000 | (h.opcode << 11) | (h.rd ? 0x0100 : 0) | 0x0080 | 2);
  dv.setUint16(4, qEnd > 12 ? 1 : 0);
  dv.setUint16(6, 0);
  dv.setUint16(8, 0);
  dv.setUint16(10, 0);
  return out;
}

/** Whether `answer` answers `query`: QR set, same ID, and the same question (names case-insensitive). */
export function answers(query: Uint8Array, answer: Uint8Array): boolean {
  try {
    const q = readQuestion(query);
    const a = readQuestion(answer);
    const qh = readHeader(query);
    const ah = readHeader(answer);
    return ah.qr && ah.id === qh.id && a.type === q.type && a.class === q.class && a.name.toLowerCase() === q.name.toLowerCase();
  } catch {
    return false;
  }
}
