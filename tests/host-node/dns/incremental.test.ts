// The per-Service DNS table (host-node/dns/incremental.ts): a sync answers exactly as the whole-table
// load does, re-derives only the Services (or their EndpointSlices) that changed, merges a record
// two Services share, bumps the SOA serial per load, and keeps the previous table and cache when
// the core refuses a load.
import { describe, it, expect } from 'vitest';
import { parseManifests, type Service, type EndpointSlice } from '../../../host-node/kube/objects.js';
import { IncrementalDnsTable } from '../../../host-node/dns/incremental.js';
import { loadDnsTable, type DnsCore } from '../../../host-node/dns/table.js';
import { buildDnsRecords } from '../../../host-node/kube/dns-records.js';
import { dnsHarness, FIXTURE, query, decode, type DnsHarness } from '../../assembly/dns/msg.js';

function objects(yaml: string): { services: Service[]; slices: EndpointSlice[] } {
  const set = parseManifests(yaml);
  expect(set.issues.filter((i) => i.severity === 'error')).toEqual([]);
  return { services: set.services, slices: set.endpointSlices };
}

function table(h: DnsHarness): IncrementalDnsTable {
  return new IncrementalDnsTable({ ...(h.core.x as unknown as DnsCore), memory: h.core.memory });
}

const NAMES: Array<[string, string]> = [
  ['kubernetes.default.svc.cluster.local', 'A'], ['headless.default.svc.cluster.local', 'A'],
  ['my-pet.headless.default.svc.cluster.local', 'A'], ['_https._tcp.headless.default.svc.cluster.local', 'SRV'],
  ['foo.default.svc.cluster.local', 'CNAME'], ['dual.prod.svc.cluster.local', 'AAAA'], ['1.0.3.10.in-addr.arpa', 'PTR'],
  ['empty.default.svc.cluster.local', 'A'], ['nope.default.svc.cluster.local', 'A'], ['dns-version.cluster.local', 'TXT'],
  ['svc.cluster.local', 'A'],
];

/** Every answer in NAMES, with the SOA's serial blanked (it counts loads). */
function answers(h: DnsHarness): unknown[] {
  return NAMES.map(([n, t]) => {
    const m = decode(h.ask(query(n, t)) as Uint8Array);
    const soa = (rs: typeof m.answer) => rs.map((r) => (r.type === 'SOA' ? { ...r, data: r.data.replace(/ \d+ (\d+ \d+ \d+ \d+)$/, ' S $1') } : r));
    return [m.rcode, m.aa, soa(m.answer), soa(m.authority)];
  });
}

const WEB = (ip: string, port = 80) => `
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec: { clusterIP: ${ip}, ports: [{ name: http, port: ${port} }] }
`;

describe('IncrementalDnsTable', () => {
  it('answers exactly as the whole-table load', () => {
    const whole = dnsHarness(null);
    const o = objects(FIXTURE);
    const built = buildDnsRecords(o.services, o.slices);
    loadDnsTable({ ...(whole.core.x as unknown as DnsCore), memory: whole.core.memory }, built.zone, built.records);
    const inc = dnsHarness(null);
    const r = table(inc).sync(o.services, o.slices);
    expect(r.records).toBe(built.records.length);
    expect(r.changed.length).toBe(o.services.length);
    expect(answers(inc)).toEqual(answers(whole));
  });

  it('re-derives only what changed: a Service, an EndpointSlice, a deletion', () => {
    const h = dnsHarness(null);
    const t = table(h);
    const a = (n: string, type = 'A') => decode(h.ask(query(n, type)) as Uint8Array).answer.map((x) => x.data);
    t.sync(objects(FIXTURE + '---' + WEB('10.3.9.9')).services, objects(FIXTURE).slices);
    expect(a('web.shop.svc.cluster.local')).toEqual(['10.3.9.9']);
    const serial1 = decode(h.ask(query('cluster.local', 'SOA')) as Uint8Array).answer[0]!.data.split(' ')[2];

    // Same objects parsed again: nothing to derive.
    let o = objects(FIXTURE + '---' + WEB('10.3.9.9'));
    expect(t.sync(o.services, o.slices).changed).toEqual([]);

    o = objects(FIXTURE + '---' + WEB('10.3.9.10'));
    const r = t.sync(o.services, o.slices);
    expect(r.changed).toEqual(['shop/web']);
    expect(a('web.shop.svc.cluster.local')).toEqual(['10.3.9.10']);
    expect(a('10.9.3.10.in-addr.arpa', 'PTR')).toEqual(['web.shop.svc.cluster.local.']);
    expect(decode(h.ask(query('9.9.3.10.in-addr.arpa', 'PTR')) as Uint8Array).rcode).not.toBe(0);
    expect(a('kubernetes.default.svc.cluster.local')).toEqual(['10.3.0.1']);
    const serial2 = decode(h.ask(query('cluster.local', 'SOA')) as Uint8Array).answer[0]!.data.split(' ')[2];
    expect(Number(serial2)).toBeGreaterThan(Number(serial1));

    // An endpoint turning ready changes only its headless Service.
    const ready = objects(FIXTURE.replace('{ addresses: [10.3.0.103], conditions: { ready: false } }', '{ addresses: [10.3.0.103], conditions: { ready: true } }') + '---' + WEB('10.3.9.10'));
    expect(t.sync(ready.services, ready.slices).changed).toEqual(['default/headless']);
    expect(a('headless.default.svc.cluster.local').sort()).toEqual(['10.3.0.100', '10.3.0.101', '10.3.0.102', '10.3.0.103']);

    // update(): one Service at a time, as a watch delivers them.
    expect(t.update('shop/web', null).removed).toEqual(['shop/web']);
    expect(decode(h.ask(query('web.shop.svc.cluster.local', 'A')) as Uint8Array).rcode).toBe(3);
    const back = t.update('shop/web', objects(WEB('10.3.9.11')).services[0]!);
    expect(back.changed).toEqual(['shop/web']);
    expect(a('web.shop.svc.cluster.local')).toEqual(['10.3.9.11']);
    expect(t.size).toBe(o.services.length);
  });

  it('merges a record two Services share (one pod behind two headless Services keeps one PTR per name)', () => {
    const h = dnsHarness(null);
    const twin = FIXTURE + '---\n' + FIXTURE.split('---').slice(1, 3).join('---').replace(/name: headless\b/, 'name: twin').replace('name: headless-1', 'name: twin-1').replace('kubernetes.io/service-name: headless', 'kubernetes.io/service-name: twin');
    const o = objects(twin);
    const r = table(h).sync(o.services, o.slices);
    const whole = buildDnsRecords(o.services, o.slices);
    expect(r.records).toBe(whole.records.length);
    const ptr = decode(h.ask(query('100.0.3.10.in-addr.arpa', 'PTR')) as Uint8Array).answer.map((x) => x.data).sort();
    expect(ptr).toEqual(['my-pet.headless.default.svc.cluster.local.', 'my-pet.twin.default.svc.cluster.local.']);
  });

  it('keeps the previous table and cache when the core refuses a load', () => {
    const h = dnsHarness(null);
    let refuse = false;
    const core = { ...(h.core.x as unknown as DnsCore), memory: h.core.memory };
    const real = core.dnsLoad;
    core.dnsLoad = (len: number) => (refuse ? -4 : real(len));
    const t = new IncrementalDnsTable(core);
    let o = objects(FIXTURE + '---' + WEB('10.3.9.9'));
    t.sync(o.services, o.slices);
    refuse = true;
    o = objects(FIXTURE + '---' + WEB('10.3.9.10'));
    expect(() => t.sync(o.services, o.slices)).toThrow(/rdata/);
    expect(decode(h.ask(query('web.shop.svc.cluster.local', 'A')) as Uint8Array).answer.map((x) => x.data)).toEqual(['10.3.9.9']);
    refuse = false;
    // The failed change is derived again on the next sync, not lost.
    expect(t.sync(o.services, o.slices).changed).toEqual(['shop/web']);
  });

  it('names a Service whose records are invalid and serves the rest', () => {
    const h = dnsHarness(null);
    const o = objects(FIXTURE + `---
apiVersion: v1
kind: Service
metadata: { name: bad, namespace: default }
spec: { type: ExternalName, externalName: "${'a'.repeat(70)}.example.com" }
`);
    const r = table(h).sync(o.services, o.slices);
    expect(r.issues.some((i) => i.includes('default/bad'))).toBe(true);
    expect(decode(h.ask(query('kubernetes.default.svc.cluster.local', 'A')) as Uint8Array).answer.length).toBe(1);
  });
});

describe('Dataplane.dns() loads per Service', () => {
  it('re-derives only the changed Service and serves it on the packet path', async () => {
    const { Dataplane } = await import('../../../host-node/dataplane.js');
    const { buildPacket, decodePacket } = await import('../../../host-node/core/packet.js');
    const dp = await Dataplane.create({ nodeIPs: ['198.18.0.1'], conntrackCapacity: 16, clusterDNS: '10.96.0.10' });
    expect(dp.dns(FIXTURE + '---' + WEB('10.3.9.9')).changed?.length).toBe(6);
    const r = dp.dns(FIXTURE + '---' + WEB('10.3.9.10'));
    expect(r.changed).toEqual(['shop/web']);
    expect(r.issues).toEqual([]);
    const ask = (name: string) => decode(decodePacket(dp.process(buildPacket({
      src: '10.244.0.5', dst: '10.96.0.10', proto: 'udp', sport: 4000, dport: 53, payload: query(name, 'A'),
    }), 0).packet!).payload).answer.map((a) => a.data);
    expect(ask('web.shop.svc.cluster.local')).toEqual(['10.3.9.10']);
    expect(ask('kubernetes.default.svc.cluster.local')).toEqual(['10.3.0.1']);
    // Another zone starts afresh.
    expect(dp.dns(FIXTURE, { zone: 'corp.example' }).changed?.length).toBe(5);
    expect(ask('kubernetes.default.svc.corp.example')).toEqual(['10.3.0.1']);
  });
});
