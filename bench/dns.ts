// bench/dns.ts — cluster DNS numbers: answers/s for A, SRV, PTR and NXDOMAIN queries through the
// core, batched on the packet path (UDP queries to the clusterDNS address in processBatch, answered
// in their slots) and one dnsAnswer call per query; the record table's memory per record; 1M random
// and mutated messages through dnsAnswer (none may trap); and `svcplane dns` over loopback UDP.
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSocket } from 'node:dgram';
import { Dataplane } from '../host-node/core/dataplane.js';
import { buildPacket } from '../host-node/core/packet.js';
import { buildQuery, decodeMessage } from '../host-node/dns/message.js';
import { loadDnsFrom } from '../host-node/dns/records-from.js';
import { readDnsCounters, loadDnsTable, type DnsCore } from '../host-node/dns/table.js';
import { IncrementalDnsTable } from '../host-node/dns/incremental.js';
import { reverseName, buildDnsRecords } from '../host-node/kube/dns-records.js';
import { loadObjects, type Service } from '../host-node/kube/objects.js';
import { startDnsServer } from '../host-node/cli/dns.js';
import { stage, type BenchRow } from './core.js';

const BATCH = 256;
const SLOT = 512;
const SERVICES = 5000;
const HEADLESS = 500;
const NAMESPACES = 50;
const DNS_VIP = '10.96.0.10';

type DnsBenchCore = DnsCore & {
  dnsQueryPtr(): number; dnsAnswerPtr(): number; dnsIoBytes(): number;
  dnsAnswer(q: number, len: number, out: number, cap: number, maxUdp: number, tcp: number): number;
  dnsRecordCount(): number; dnsNameCount(): number; dnsTableBytes(): number; dnsCountersReset(): void;
  dnsLoad(len: number): number;
};

function hr(): number { return Number(process.hrtime.bigint()) / 1e6; }

const clusterIP = (i: number) => `10.97.${i >> 8}.${i & 255}`;

/** SERVICES ClusterIP Services with a named port and HEADLESS headless ones with 4 endpoints each. */
function clusterObjects(): unknown[] {
  const out: unknown[] = [];
  for (let i = 0; i < SERVICES; i++) {
    out.push({
      apiVersion: 'v1', kind: 'Service', metadata: { name: `svc-${i}`, namespace: `ns-${i % NAMESPACES}` },
      spec: { clusterIP: clusterIP(i), ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
    });
  }
  for (let h = 0; h < HEADLESS; h++) {
    out.push({
      apiVersion: 'v1', kind: 'Service', metadata: { name: `hl-${h}`, namespace: `ns-${h % NAMESPACES}` },
      spec: { clusterIP: 'None', ports: [{ name: 'peer', port: 7000, protocol: 'TCP' }] },
    });
    out.push({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: `hl-${h}-1`, namespace: `ns-${h % NAMESPACES}`, labels: { 'kubernetes.io/service-name': `hl-${h}` } },
      addressType: 'IPv4', ports: [{ name: 'peer', port: 7000, protocol: 'TCP' }],
      endpoints: [0, 1, 2, 3].map((k) => ({ addresses: [`10.245.${h >> 6}.${((h & 63) << 2) | k}`], conditions: { ready: true }, hostname: `m-${k}` })),
    });
  }
  return out;
}

/** BATCH distinct queries of one kind. */
function queries(kind: 'A' | 'SRV' | 'PTR' | 'NXDOMAIN'): Uint8Array[] {
  return Array.from({ length: BATCH }, (_, k) => {
    const i = (k * 19) % SERVICES;
    const svc = `svc-${i}.ns-${i % NAMESPACES}.svc.cluster.local`;
    const id = k + 1;
    if (kind === 'A') return buildQuery(svc, 'A', { id });
    if (kind === 'SRV') return buildQuery(`_http._tcp.${svc}`, 'SRV', { id });
    if (kind === 'PTR') return buildQuery(reverseName(clusterIP(i))!, 'PTR', { id });
    return buildQuery(`nope-${i}.ns-${i % NAMESPACES}.svc.cluster.local`, 'A', { id });
  });
}

const EXPECT: Record<string, string> = { A: 'noerror', SRV: 'noerror', PTR: 'noerror', NXDOMAIN: 'nxdomain' };

/** One dnsAnswer call per query, copying each query in: answers/s. */
function single(core: DnsBenchCore, qs: Uint8Array[], kind: string): number {
  const qp = core.dnsQueryPtr();
  const ap = core.dnsAnswerPtr();
  const io = core.dnsIoBytes();
  let u8 = new Uint8Array(core.memory.buffer);
  const rounds = 2000;
  for (let r = 0; r < 100; r++) for (const q of qs) { u8.set(q, qp); core.dnsAnswer(qp, q.length, ap, io, 1232, 0); }
  core.dnsCountersReset();
  u8 = new Uint8Array(core.memory.buffer);
  const t = hr();
  for (let r = 0; r < rounds; r++) {
    for (const q of qs) { u8.set(q, qp); core.dnsAnswer(qp, q.length, ap, io, 1232, 0); }
  }
  const ms = hr() - t;
  const n = rounds * qs.length;
  const got = readDnsCounters(core)[EXPECT[kind] as 'noerror'];
  if (got !== n) throw new Error(`dns bench ${kind}: ${got} of ${n} answers were ${EXPECT[kind]}`);
  return n / (ms / 1000);
}

/** The packet path: BATCH UDP query packets answered in their slots per processBatch. */
function batched(dp: Dataplane, qs: Uint8Array[], kind: string): { perSec: number; withRefill: number } {
  const core = dp.core;
  const pkts = qs.map((q, i) => buildPacket({ src: `10.244.${i >> 8}.${i & 255}`, dst: DNS_VIP, proto: 'udp', sport: 30000 + i, dport: 53, payload: q }));
  const { refill } = stage(dp, pkts, SLOT);
  const rounds = 2000;
  for (let r = 0; r < 100; r++) { refill(); core.processBatch(BATCH, 1); }
  const before = dp.stats().verdict_reply!;
  let t = hr();
  for (let r = 0; r < rounds; r++) refill();
  const refillMs = hr() - t;
  t = hr();
  for (let r = 0; r < rounds; r++) { refill(); core.processBatch(BATCH, 2); }
  const ms = hr() - t;
  const replies = dp.stats().verdict_reply! - before;
  if (replies !== rounds * BATCH) throw new Error(`dns bench ${kind} batched: ${replies} of ${rounds * BATCH} answered`);
  const n = rounds * BATCH;
  return { perSec: n / ((ms - refillMs) / 1000), withRefill: n / (ms / 1000) };
}

/** ≥ 1M random and mutated messages through dnsAnswer; a trap would throw here. */
function fuzz(core: DnsBenchCore, seeds: Uint8Array[]): BenchRow {
  let s = 0x9e3779b9;
  const rnd = () => ((s ^= s << 13), (s ^= s >>> 17), (s ^= s << 5), (s >>> 0));
  const qp = core.dnsQueryPtr();
  const ap = core.dnsAnswerPtr();
  const io = core.dnsIoBytes();
  const u8 = new Uint8Array(core.memory.buffer);
  const n = 1_000_000;
  core.dnsCountersReset();
  const msg = new Uint8Array(300);
  let dropped = 0;
  const t = hr();
  for (let i = 0; i < n; i++) {
    let len: number;
    if (i & 1) {
      len = rnd() % 300;
      for (let k = 0; k < len; k++) msg[k] = rnd();
      if (len > 2) msg[2]! &= 0x7f;   // mostly queries, so they get past the QR check
    } else {
      const q = seeds[rnd() % seeds.length]!;
      len = q.length;
      msg.set(q);
      for (let m = 1 + (rnd() % 4); m > 0; m--) msg[rnd() % len] = rnd();
    }
    u8.set(msg.subarray(0, len), qp);
    if (core.dnsAnswer(qp, len, ap, io, 1232, i % 3 === 0 ? 1 : 0) < 0) dropped++;
  }
  const ms = hr() - t;
  const c = readDnsCounters(core);
  if (c.queries !== n) throw new Error(`dns fuzz: ${c.queries} of ${n} counted`);
  return {
    name: 'DNS fuzz (random + mutated messages, dnsAnswer)', value: Math.round(n / (ms / 1000)), unit: 'messages/s',
    note: `${n} messages, no trap: formerr ${c.formerr}, dropped ${dropped} (short ${c.drop_short}, response ${c.drop_response}), answered ${n - dropped - c.formerr}`,
  };
}

/** Whole-table rebuild vs one Service changed (IncrementalDnsTable), on decoded objects. */
function updates(core: DnsBenchCore, objects: unknown[]): BenchRow[] {
  const set = loadObjects(objects);
  let t = hr();
  const built = buildDnsRecords(set.services, set.endpointSlices);
  loadDnsTable(core, built.zone, built.records);
  const fullMs = hr() - t;
  const table = new IncrementalDnsTable(core);
  t = hr();
  table.sync(set.services, set.endpointSlices);
  const firstMs = hr() - t;
  const rounds = 10;
  let bytes = 0;
  const services = set.services.slice();
  t = hr();
  for (let r = 0; r < rounds; r++) {
    // One Service gets a new ClusterIP; every other object is the same (as a watch delivers it).
    const old = services[r]!;
    services[r] = { ...old, spec: { ...old.spec, clusterIP: `10.98.0.${r}`, clusterIPs: [`10.98.0.${r}`] } } as Service;
    const res = table.sync(services, set.endpointSlices);
    if (res.changed.length !== 1) throw new Error(`dns bench: ${res.changed.length} Services re-derived for one change`);
    bytes = res.bytes;
  }
  const oneMs = (hr() - t) / rounds;
  t = hr();
  for (let r = 0; r < rounds; r++) if (core.dnsLoad(bytes) !== 0) throw new Error('dns bench: reload refused');
  const coreMs = (hr() - t) / rounds;
  const n = core.dnsRecordCount();
  return [
    { name: 'DNS table: whole rebuild (derive + encode + load)', value: +fullMs.toFixed(1), unit: 'ms', note: `${n} records; first per-Service sync ${firstMs.toFixed(0)} ms` },
    { name: 'DNS table: one Service changed (incremental)', value: +oneMs.toFixed(1), unit: 'ms', note: `of which the core's validate + index of the whole table ${coreMs.toFixed(1)} ms` },
  ];
}

/** `svcplane dns` over loopback UDP: 64 queries in flight for about a second. */
async function overUdp(objects: unknown[]): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'svp-dns-bench-'));
  writeFileSync(join(dir, 'cluster.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }));
  const server = await startDnsServer({ listen: '127.0.0.1:0', manifests: dir, watch: false });
  const sock = createSocket('udp4');
  try {
    const qs = queries('A');
    let answered = 0;
    let sent = 0;
    const end = hr() + 1000;
    const t = hr();
    await new Promise<void>((resolve) => {
      const send = () => { sock.send(qs[sent++ % qs.length]!, server.address.port, '127.0.0.1'); };
      sock.on('message', () => {
        answered++;
        if (hr() < end) send();
        else if (answered === sent) resolve();
      });
      for (let k = 0; k < 64; k++) send();
      setTimeout(resolve, 3000).unref();
    });
    return answered / ((hr() - t) / 1000);
  } finally {
    sock.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `rows`: the rows measured so far (the core's NAT figure gives the ratio). */
export async function benchDns(rows: BenchRow[] = []): Promise<BenchRow[]> {
  const out: BenchRow[] = [];
  const objects = clusterObjects();
  const dp = await Dataplane.create({ nodeIPs: ['192.168.49.2'], podCIDR: '10.244.0.0/16', clusterDNS: DNS_VIP, seed: 9 });
  const core = dp.core as unknown as DnsBenchCore;
  const tl = hr();
  const loaded = loadDnsFrom(core, objects);
  const loadMs = hr() - tl;
  if (loaded.issues.length) throw new Error(`dns bench: ${loaded.issues[0]}`);
  const nat = rows.find((r) => r.name === 'established-flow NAT, batched (core)')?.value;

  const kinds = ['A', 'SRV', 'PTR', 'NXDOMAIN'] as const;
  for (const kind of kinds) {
    const qs = queries(kind);
    // Make sure the table answers what we think it does before timing it.
    const probe = decodeMessage(dp.process(buildPacket({ src: '10.244.0.1', dst: DNS_VIP, proto: 'udp', sport: 1, dport: 53, payload: qs[0]! }), 0).packet!.subarray(28));
    if (probe.rcode !== (kind === 'NXDOMAIN' ? 'NXDOMAIN' : 'NOERROR') || (kind !== 'NXDOMAIN' && probe.answer.length !== 1)) {
      throw new Error(`dns bench ${kind}: unexpected answer ${JSON.stringify(probe)}`);
    }
    const b = batched(dp, qs, kind);
    const nsPer = 1e9 / b.perSec;
    out.push({
      name: `DNS ${kind} answers, batched (core packet path)`, value: Math.round(b.perSec), unit: 'answers/s', target: '≥ 1M',
      note: `${nsPer.toFixed(0)} ns/answer${nat ? ` = ${(nsPer / nat).toFixed(1)}× the established NAT packet` : ''}; incl. arena refill ${Math.round(b.withRefill)}/s`,
    });
    out.push({ name: `DNS ${kind} answers, one dnsAnswer call each`, value: Math.round(single(core, qs, kind)), unit: 'answers/s', note: 'query copied in per call' });
  }
  out.push({
    name: 'DNS record table memory', value: +(core.dnsTableBytes() / core.dnsRecordCount()).toFixed(1), unit: 'B/record',
    note: `${core.dnsRecordCount()} records, ${core.dnsNameCount()} names, ${(core.dnsTableBytes() / 2 ** 20).toFixed(2)} MiB; build + load ${loadMs.toFixed(0)} ms`,
  });
  out.push(...updates(core, objects));
  out.push(fuzz(core, [...queries('A').slice(0, 16), ...queries('SRV').slice(0, 16), buildQuery('x.cluster.local', 'A', { edns: 4096 })]));
  out.push({ name: 'svcplane dns over loopback UDP (A, 64 in flight)', value: Math.round(await overUdp(objects)), unit: 'answers/s', note: 'Node dgram bound' });
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchDns()) console.log(`${r.name.padEnd(52)} ${String(r.value).padStart(10)} ${r.unit.padEnd(11)} ${r.note ?? ''}`);
}
