// msg.ts — a small, independent DNS message builder and decoder for the DNS tests (RFC 1035 §4),
// plus a harness that loads build/testing-dns.wasm with a record table and asks it queries.
import { loadTestingCore, type TestingCore } from '../../support/testing-core.js';
import { parseManifests } from '../../../host-node/kube/objects.js';
import { buildDnsRecords, type DnsRecord } from '../../../host-node/kube/dns-records.js';
import { loadDnsTable, type DnsCore } from '../../../host-node/dns/table.js';
import { formatIP } from '../../../host-node/kube/ip.js';

export const TYPES: Record<string, number> = {
  A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, AXFR: 252, ANY: 255,
};
const TYPE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(TYPES).map(([k, v]) => [v, k]));
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

export function encodeName(name: string): number[] {
  const out: number[] = [];
  for (const l of name.replace(/\.$/, '').split('.').filter((x) => x !== '')) out.push(l.length, ...Buffer.from(l, 'latin1'));
  out.push(0);
  return out;
}

export interface QueryOpts {
  id?: number;
  rd?: boolean;
  /** EDNS0 UDP size: adds an OPT record. */
  edns?: number;
  ednsVersion?: number;
  qclass?: number;
  opcode?: number;
}

export function query(name: string, type: string | number, o: QueryOpts = {}): Uint8Array {
  const t = typeof type === 'number' ? type : TYPES[type]!;
  const flags = ((o.opcode ?? 0) << 11) | (o.rd === false ? 0 : 0x0100);
  const ar = o.edns !== undefined ? 1 : 0;
  const b = [
    ...be16(o.id ?? 0x1234), ...be16(flags), 0, 1, 0, 0, 0, 0, ...be16(ar),
    ...encodeName(name), ...be16(t), ...be16(o.qclass ?? 1),
  ];
  if (o.edns !== undefined) b.push(0, ...be16(41), ...be16(o.edns), 0, o.ednsVersion ?? 0, 0, 0, 0, 0);
  return Uint8Array.from(b);
}

function be16(n: number): number[] { return [(n >> 8) & 0xff, n & 0xff]; }

export interface RR { name: string; type: string; cls: number; ttl: number; data: string }
export interface Msg {
  id: number; qr: boolean; opcode: number; aa: boolean; tc: boolean; rd: boolean; rcode: number;
  question: { name: string; type: number; cls: number }[];
  answer: RR[]; authority: RR[]; additional: RR[];
  /** Pointers found while decoding (offsets they point to). */
  pointers: number;
}

/** Decodes a name, following pointers (with a hop cap: a loop in our own output is a test failure). */
export function readName(b: Uint8Array, off: number, ptrs: { n: number }): [string, number] {
  const labels: string[] = [];
  let pos = off;
  let end = -1;
  for (let hops = 0; hops < 128; ) {
    const len = b[pos]!;
    if (len === undefined) throw new Error('name runs past the end');
    if ((len & 0xc0) === 0xc0) {
      if (end < 0) end = pos + 2;
      pos = ((len & 0x3f) << 8) | b[pos + 1]!;
      ptrs.n++;
      hops++;
      continue;
    }
    if (len === 0) return [labels.join('.') + '.', end < 0 ? pos + 1 : end];
    labels.push(Buffer.from(b.slice(pos + 1, pos + 1 + len)).toString('latin1'));
    pos += 1 + len;
  }
  throw new Error('pointer loop in answer');
}

export function decode(b: Uint8Array): Msg {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const f = dv.getUint16(2);
  const ptrs = { n: 0 };
  const m: Msg = {
    id: dv.getUint16(0), qr: (f & 0x8000) !== 0, opcode: (f >> 11) & 0xf, aa: (f & 0x400) !== 0,
    tc: (f & 0x200) !== 0, rd: (f & 0x100) !== 0, rcode: f & 0xf,
    question: [], answer: [], authority: [], additional: [], pointers: 0,
  };
  let pos = 12;
  for (let i = 0; i < dv.getUint16(4); i++) {
    const [name, e] = readName(b, pos, ptrs);
    m.question.push({ name, type: dv.getUint16(e), cls: dv.getUint16(e + 2) });
    pos = e + 4;
  }
  const sections: RR[][] = [m.answer, m.authority, m.additional];
  for (let s = 0; s < 3; s++) {
    for (let i = 0; i < dv.getUint16(6 + s * 2); i++) {
      const [name, e] = readName(b, pos, ptrs);
      const type = dv.getUint16(e);
      const cls = dv.getUint16(e + 2);
      const ttl = dv.getUint32(e + 4);
      const rdlen = dv.getUint16(e + 8);
      const rd = e + 10;
      if (rd + rdlen > b.length) throw new Error('rdata runs past the end');
      sections[s]!.push({ name, type: TYPE_NAMES[type] ?? String(type), cls, ttl, data: rdataText(b, type, rd, rdlen, ptrs) });
      pos = rd + rdlen;
    }
  }
  if (pos !== b.length) throw new Error(`${b.length - pos} trailing bytes`);
  m.pointers = ptrs.n;
  return m;
}

function rdataText(b: Uint8Array, type: number, at: number, len: number, ptrs: { n: number }): string {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  switch (type) {
    case 1: case 28: return formatIP({ family: type === 1 ? 4 : 6, bytes: b.slice(at, at + len) });
    case 2: case 5: case 12: return readName(b, at, ptrs)[0];
    case 33: {
      const before = ptrs.n;
      const t = readName(b, at + 6, ptrs)[0];
      if (ptrs.n !== before) throw new Error('SRV target was compressed (RFC 2782 forbids it)');
      return `${dv.getUint16(at)} ${dv.getUint16(at + 2)} ${dv.getUint16(at + 4)} ${t}`;
    }
    case 16: {
      const parts: string[] = [];
      for (let p = at; p < at + len; p += 1 + b[p]!) parts.push(JSON.stringify(Buffer.from(b.slice(p + 1, p + 1 + b[p]!)).toString('latin1')));
      return parts.join(' ');
    }
    case 6: {
      const [mname, e1] = readName(b, at, ptrs);
      const [rname, e2] = readName(b, e1, ptrs);
      return [mname, rname, ...[0, 1, 2, 3, 4].map((i) => dv.getUint32(e2 + i * 4))].join(' ');
    }
    default: return `len=${len}`;
  }
}

// ---- harness

export const FIXTURE = `
apiVersion: v1
kind: Service
metadata: { name: kubernetes, namespace: default }
spec:
  clusterIP: 10.3.0.1
  ports: [{ name: https, port: 443, protocol: TCP }]
---
apiVersion: v1
kind: Service
metadata: { name: headless, namespace: default }
spec:
  clusterIP: None
  ports: [{ name: https, port: 443, protocol: TCP }, { port: 9999, protocol: TCP }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: headless-1, namespace: default, labels: { kubernetes.io/service-name: headless } }
addressType: IPv4
ports: [{ name: https, port: 8443, protocol: TCP }]
endpoints:
  - { addresses: [10.3.0.100], conditions: { ready: true }, hostname: my-pet }
  - { addresses: [10.3.0.101], conditions: { ready: true }, hostname: my-pet-2 }
  - { addresses: [10.3.0.102], conditions: { ready: true } }
  - { addresses: [10.3.0.103], conditions: { ready: false } }
---
apiVersion: v1
kind: Service
metadata: { name: foo, namespace: default }
spec: { type: ExternalName, externalName: www.example.com }
---
apiVersion: v1
kind: Service
metadata: { name: dual, namespace: prod }
spec:
  clusterIP: 10.3.0.20
  clusterIPs: [10.3.0.20, "fd00::20"]
  ipFamilies: [IPv4, IPv6]
  ports: [{ name: dns, port: 53, protocol: UDP }]
---
apiVersion: v1
kind: Service
metadata: { name: empty, namespace: default }
spec: { clusterIP: None }
`;

/** YAML for a headless Service default/many with `n` ready IPv4 endpoints (10.4.x.y) serving port 80. */
export function manyEndpoints(n: number): string {
  const eps = Array.from({ length: n }, (_, i) => `  - { addresses: [10.4.${i >> 8}.${i & 255}], conditions: { ready: true } }`).join('\n');
  return `---
apiVersion: v1
kind: Service
metadata: { name: many, namespace: default }
spec: { clusterIP: None, ports: [{ port: 80 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: many-1, namespace: default, labels: { kubernetes.io/service-name: many } }
addressType: IPv4
ports: [{ port: 80, protocol: TCP }]
endpoints:
${eps}
`;
}

/** Records for FIXTURE plus `extra` YAML (two headless endpoints carry hostnames, as a StatefulSet's do). */
export function fixtureRecords(extra = '', zone?: string): { zone: string; records: DnsRecord[] } {
  const set = parseManifests(FIXTURE + extra);
  if (set.issues.some((i) => i.severity === 'error')) throw new Error(JSON.stringify(set.issues));
  const built = buildDnsRecords(set.services, set.endpointSlices, zone ? { zone } : {});
  return { zone: built.zone, records: built.records };
}

export interface DnsHarness {
  core: TestingCore;
  /** The answer, or the negative drop code. */
  ask(q: Uint8Array, o?: { maxUdp?: number; tcp?: boolean; cap?: number }): Uint8Array | number;
  /** ask() and decode; throws if the query was dropped. */
  answer(q: Uint8Array, o?: { maxUdp?: number; tcp?: boolean; cap?: number }): Msg;
  counters(): Record<string, number>;
}

export function dnsHarness(records: { zone: string; records: DnsRecord[] } | null = fixtureRecords()): DnsHarness {
  const core = loadTestingCore('dns');
  const dnsCore = { ...(core.x as unknown as DnsCore), memory: core.memory };
  if (records) loadDnsTable(dnsCore, records.zone, records.records);
  const qAt = core.scratch;
  const outAt = core.scratch + 0x20000;
  const h: DnsHarness = {
    core,
    ask(q, o = {}) {
      core.put(q, qAt);
      const n = core.x.dnsAnswer!(qAt, q.length, outAt, o.cap ?? 0x10000, o.maxUdp ?? 1232, o.tcp ? 1 : 0);
      return n < 0 ? n : core.get(outAt, n);
    },
    answer(q, o) {
      const r = h.ask(q, o);
      if (typeof r === 'number') throw new Error(`dropped: ${r}`);
      return decode(r);
    },
    counters() {
      const names = ['queries', 'noerror', 'nodata', 'nxdomain', 'refused', 'formerr', 'notimp', 'badvers',
        'truncated', 'drop_short', 'drop_response', 'drop_noroom', 'servfail', 'upstream', 'tcp_passed', 'partial'];
      const dv = core.dv();
      const p = core.x.dnsCountersPtr!();
      return Object.fromEntries(names.map((n, i) => [n, dv.getUint32(p + i * 4, true)]));
    },
  };
  return h;
}
