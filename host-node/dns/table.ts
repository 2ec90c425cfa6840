// dns/table.ts — encodes cluster DNS records (host-node/kube/dns-records.ts) into the core's record
// blob and loads it through the DNS exports (dnsBuffer, dnsLoad), atomically: on error the core
// keeps its previous table. Also names the core's DNS counters. Platform-neutral; never answers
// queries (the core does) and never forwards.
//
// Blob format (integers little-endian; names in uncompressed DNS wire form, e.g.
// "\x07cluster\x05local\x00"; the core lowercases owner names and indexes them):
//   u32 magic 0x31534e44 ("DNS1")
//   u32 record count
//   u8  zone name length, zone name
//   per record, consecutive for one owner name:
//     u16 type (1 A, 2 NS, 5 CNAME, 6 SOA, 12 PTR, 16 TXT, 28 AAAA, 33 SRV)
//     u16 rdata length   u32 ttl   u8 owner length   owner name   rdata (wire form, big-endian)
// Owners lie in the zone or under in-addr.arpa / ip6.arpa; the zone apex holds exactly one SOA.
// Load errors are negative codes, named in DNS_LOAD_ERRORS.
import type { DnsRecord } from '../kube/dns-records.js';
import { groupByName } from '../kube/dns-records.js';
import { parseIP } from '../kube/ip.js';

export const DNS_BLOB_MAGIC = 0x31534e44;

const TYPE_CODE: Record<DnsRecord['type'], number> = {
  A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, TXT: 16, AAAA: 28, SRV: 33,
};

export const DNS_LOAD_ERRORS: Record<number, string> = {
  [-1]: 'blob ends inside a field',
  [-2]: 'bad magic',
  [-3]: 'bad zone or owner name',
  [-4]: 'rdata does not fit its type',
  [-5]: 'owner outside the zone and the reverse trees',
  [-6]: "an owner's records are not consecutive",
  [-7]: 'the zone apex has no SOA, or more than one',
  [-8]: 'unsupported record type',
  [-9]: 'bytes after the last record',
  [-10]: 'blob larger than the staging buffer',
};

/** Counter names, in the core's order (assembly/dns/answer.ts C_*). */
export const DNS_COUNTER_NAMES = [
  'queries', 'noerror', 'nodata', 'nxdomain', 'refused', 'formerr', 'notimp', 'badvers',
  'truncated', 'drop_short', 'drop_response', 'drop_noroom', 'servfail', 'upstream', 'tcp_passed', 'partial',
] as const;

export class DnsEncodeError extends Error {}

const utf8 = new TextEncoder();

/** A name (dots, no trailing dot needed) in DNS wire form. */
export function wireName(name: string): Uint8Array {
  const n = name.replace(/\.$/, '');
  // Every label gains a length octet in place of its dot, plus the root's zero: one more octet.
  const text = utf8.encode(n);
  const out = new Uint8Array(text.length + (n === '' ? 1 : 2));
  let at = 0;
  let start = 0;
  for (let i = 0; i <= text.length; i++) {
    if (n === '') break;
    if (i < text.length && text[i] !== 0x2e) continue;
    const len = i - start;
    if (len === 0 || len > 63) throw new DnsEncodeError(`label ${JSON.stringify(new TextDecoder().decode(text.subarray(start, i)))} in ${name} must be 1-63 octets`);
    out[at] = len;
    out.set(text.subarray(start, i), at + 1);
    at += 1 + len;
    start = i + 1;
  }
  out[at] = 0;
  if (out.length > 255) throw new DnsEncodeError(`name ${name} is longer than 255 octets`);
  return out;
}

function u16(n: number): number[] { return [(n >> 8) & 0xff, n & 0xff]; }
function u32(n: number): number[] { return [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]; }

function rdata(r: DnsRecord): Uint8Array {
  switch (r.type) {
    case 'A':
    case 'AAAA': {
      const ip = parseIP(r.address);
      if (!ip || (ip.family === 4) !== (r.type === 'A')) throw new DnsEncodeError(`${r.name}: bad ${r.type} address ${r.address}`);
      return ip.bytes;
    }
    case 'CNAME':
    case 'PTR':
    case 'NS':
      return wireName(r.target);
    case 'SRV':
      return Uint8Array.from([...u16(r.priority), ...u16(r.weight), ...u16(r.port), ...wireName(r.target)]);
    case 'TXT': {
      const out: number[] = [];
      for (const t of r.texts) {
        const enc = new TextEncoder().encode(t);
        if (enc.length > 255) throw new DnsEncodeError(`${r.name}: TXT string over 255 octets`);
        out.push(enc.length, ...enc);
      }
      if (out.length === 0) out.push(0);
      return Uint8Array.from(out);
    }
    case 'SOA':
      return Uint8Array.from([
        ...wireName(r.mname), ...wireName(r.rname),
        ...u32(r.serial), ...u32(r.refresh), ...u32(r.retry), ...u32(r.expire), ...u32(r.minimum),
      ]);
  }
}

/** One record in blob form: type, rdata length, TTL, owner length, owner, rdata. */
export function encodeRecord(r: DnsRecord): Uint8Array {
  const owner = wireName(r.name);
  const rd = rdata(r);
  if (rd.length > 0xffff) throw new DnsEncodeError(`${r.name}: rdata too long`);
  const out = new Uint8Array(9 + owner.length + rd.length);
  const hv = new DataView(out.buffer);
  hv.setUint16(0, TYPE_CODE[r.type], true);
  hv.setUint16(2, rd.length, true);
  hv.setUint32(4, r.ttl >>> 0, true);
  out[8] = owner.length;
  out.set(owner, 9);
  out.set(rd, 9 + owner.length);
  return out;
}

/** The blob header: magic, record count, zone. */
export function blobHeader(zone: string, count: number): Uint8Array {
  const z = wireName(zone);
  const head = new Uint8Array(9 + z.length);
  const dv = new DataView(head.buffer);
  dv.setUint32(0, DNS_BLOB_MAGIC, true);
  dv.setUint32(4, count, true);
  head[8] = z.length;
  head.set(z, 9);
  return head;
}

/** The blob for `zone` and `records` (grouped by owner here, so any order will do). */
export function encodeDnsTable(zone: string, records: DnsRecord[]): Uint8Array {
  const grouped = groupByName(records);
  const parts = [blobHeader(zone, grouped.length), ...grouped.map(encodeRecord)];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** The DNS exports of the core (the ABI or build/testing-dns.wasm). */
export interface DnsCore {
  memory: WebAssembly.Memory;
  dnsBuffer(size: number): number;
  dnsLoad(len: number): number;
  dnsCountersPtr(): number;
  dnsCountersCount(): number;
}

export class DnsLoadError extends Error {
  constructor(readonly code: number) {
    super(`DNS table rejected by the core: ${DNS_LOAD_ERRORS[code] ?? `error ${code}`}`);
  }
}

/** Copies `blob` into the core and swaps it in; throws DnsLoadError (the old table stays). */
export function loadDnsBlob(core: DnsCore, blob: Uint8Array): void {
  const ptr = core.dnsBuffer(blob.length);
  new Uint8Array(core.memory.buffer).set(blob, ptr);   // a fresh view: dnsBuffer may grow memory
  const rc = core.dnsLoad(blob.length);
  if (rc < 0) throw new DnsLoadError(rc);
}

/** Encodes and loads records for `zone`. */
export function loadDnsTable(core: DnsCore, zone: string, records: DnsRecord[]): void {
  loadDnsBlob(core, encodeDnsTable(zone, records));
}

/** The core's DNS counters by name. */
export function readDnsCounters(core: DnsCore): Record<(typeof DNS_COUNTER_NAMES)[number], number> {
  const n = core.dnsCountersCount();
  const view = new Uint32Array(core.memory.buffer, core.dnsCountersPtr(), n);
  const out = {} as Record<(typeof DNS_COUNTER_NAMES)[number], number>;
  DNS_COUNTER_NAMES.forEach((name, i) => { out[name] = i < n ? view[i]! : 0; });
  return out;
}
