// Tracing cluster DNS: dp.trace of a DNS query shows the question, the records found and the answer
// (without moving any counter); dp.traceName resolves a name through the core's records — A, SRV
// with its port, headless endpoints, ExternalName — and traces a connection to every address; and
// `svcplane trace --name … --manifests …` prints the same.
import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Dataplane } from '../../../host-node/dataplane.js';
import { readDnsCounters, type DnsCore } from '../../../host-node/dns/table.js';
import { buildQuery } from '../../../host-node/dns/message.js';
import { runTrace } from '../../../host-node/cli/trace.js';

const NODE = '198.18.0.1';
const POD = '10.244.3.3';
const DNS4 = '10.96.0.10';

const MANIFESTS = `
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  clusterIP: 10.96.0.80
  ports: [{ name: http, port: 80, targetPort: 8080, protocol: TCP }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-1, namespace: shop, labels: { kubernetes.io/service-name: web } }
addressType: IPv4
ports: [{ name: http, port: 8080, protocol: TCP }]
endpoints:
  - { addresses: [10.244.1.11], conditions: { ready: true } }
  - { addresses: [10.244.2.12], conditions: { ready: true } }
---
apiVersion: v1
kind: Service
metadata: { name: db, namespace: shop }
spec: { clusterIP: None, ports: [{ name: pg, port: 5432, protocol: TCP }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: db-1, namespace: shop, labels: { kubernetes.io/service-name: db } }
addressType: IPv4
ports: [{ name: pg, port: 5432, protocol: TCP }]
endpoints:
  - { addresses: [10.244.1.21], conditions: { ready: true }, hostname: db-0 }
  - { addresses: [10.244.2.22], conditions: { ready: true }, hostname: db-1 }
---
apiVersion: v1
kind: Service
metadata: { name: ext, namespace: shop }
spec: { type: ExternalName, externalName: api.example.com }
---
apiVersion: v1
kind: Service
metadata: { name: web-alias, namespace: shop }
spec: { type: ExternalName, externalName: web.shop.svc.cluster.local }
`;

let dp: Dataplane;
const counters = () => readDnsCounters({ ...(dp.core as unknown as DnsCore), memory: dp.core.memory });

beforeAll(async () => {
  dp = await Dataplane.create({ nodeIPs: [NODE], clusterDNS: DNS4, conntrackCapacity: 256 });
  expect(dp.apply(MANIFESTS).issues).toEqual([]);
  expect(dp.dns(MANIFESTS).issues).toEqual([]);
});

describe('dp.trace of a DNS query', () => {
  it('shows the question, the records found and the answer, and changes no counter', () => {
    const before = counters();
    const r = dp.trace({ src: POD, dst: DNS4, proto: 'udp', dport: 53, query: { name: 'WEB.shop.svc.cluster.local', type: 'A' } });
    expect(r.dns).toMatchObject({
      question: { name: 'WEB.shop.svc.cluster.local.', type: 'A' }, transport: 'udp', outcome: 'answered',
      rcode: 'NOERROR', aa: true, tc: false,
      records: [{ name: 'WEB.shop.svc.cluster.local.', type: 'A', ttl: 5, data: '10.96.0.80' }], authority: [],
    });
    expect(r.dns!.answer!.question).toEqual([{ name: 'WEB.shop.svc.cluster.local.', type: 'A', class: 1 }]);
    expect(r.dns!.bytes!.length).toBeGreaterThan(12);
    expect(r.outcomes.length).toBeGreaterThan(0);   // the rules' trace of the same packet is still there
    expect(counters()).toEqual(before);
  });

  it('NXDOMAIN with the SOA, SRV records, and a query given as bytes', () => {
    const nx = dp.trace({ src: POD, dst: DNS4, proto: 'udp', dport: 53, query: { name: 'nope.shop.svc.cluster.local' } }).dns!;
    expect([nx.rcode, nx.records, nx.authority.map((a) => a.type)]).toEqual(['NXDOMAIN', [], ['SOA']]);
    const srv = dp.trace({ src: POD, dst: DNS4, proto: 'udp', dport: 53, query: buildQuery('_pg._tcp.db.shop.svc.cluster.local', 'SRV', { id: 5 }) }).dns!;
    expect(srv.records.map((x) => x.data).sort()).toEqual(['0 100 5432 db-0.db.shop.svc.cluster.local.', '0 100 5432 db-1.db.shop.svc.cluster.local.']);
    const out = dp.trace({ src: POD, dst: DNS4, proto: 'udp', dport: 53, query: { name: 'example.org' } }).dns!;
    expect(out.rcode).toBe('REFUSED');
    expect(dp.trace({ src: POD, dst: DNS4, proto: 'udp', dport: 53, query: Uint8Array.of(1, 2, 3) }).dns).toMatchObject({ outcome: 'dropped', drop: 'short' });
  });

  it('refuses a record type that is no name and no number 0-65535, saying so', () => {
    const q = (type: unknown) => () => dp.trace({ src: POD, dst: DNS4, proto: 'udp', dport: 53, query: { name: 'web.shop.svc.cluster.local', type: type as string } });
    expect(q({})).toThrow('record type of the wrong kind: a name (A, AAAA, SRV, …) or a number 0-65535');
    expect(q(65536)).toThrow('record type 65536: a name');
    expect(q(-1)).toThrow('record type -1: a name');
    expect(() => dp.traceName('web.shop.svc.cluster.local', { src: POD, type: [] as never })).toThrow('record type of the wrong kind');
    expect(dp.trace({ src: POD, dst: DNS4, proto: 'udp', dport: 53, query: { name: 'web.shop.svc.cluster.local', type: 28 } }).dns!.rcode).toBe('NOERROR');
  });
});

describe('dp.traceName', () => {
  it('resolves a ClusterIP Service and traces the connection to its endpoints', () => {
    const t = dp.traceName('web.shop.svc.cluster.local', { src: POD, proto: 'tcp', dport: 80 });
    expect(t.resolution.targets).toEqual([{ address: '10.96.0.80' }]);
    expect(t.traces.map((x) => [x.to, x.dport])).toEqual([['10.96.0.80', 80]]);
    const outs = t.traces[0]!.result.outcomes;
    expect(outs.map((o) => [o.verdict, o.to, o.probability]).sort()).toEqual([
      ['FORWARD', '10.244.1.11:8080', 0.5], ['FORWARD', '10.244.2.12:8080', 0.5],
    ]);
  });

  it('an SRV name gives each target with its port; a headless name every ready endpoint', () => {
    const srv = dp.traceName('_pg._tcp.db.shop.svc.cluster.local', { src: POD, proto: 'tcp' });
    expect(srv.resolution.queries.map((q) => q.question.type)).toEqual(['SRV', 'A', 'A']);
    expect(srv.resolution.targets.sort((a, b) => a.address.localeCompare(b.address))).toEqual([
      { address: '10.244.1.21', port: 5432, via: 'db-0.db.shop.svc.cluster.local.' },
      { address: '10.244.2.22', port: 5432, via: 'db-1.db.shop.svc.cluster.local.' },
    ]);
    expect(srv.traces.map((x) => x.dport)).toEqual([5432, 5432]);
    const headless = dp.traceName('db.shop.svc.cluster.local', { src: POD, proto: 'tcp', dport: 5432 });
    expect(headless.traces.map((x) => x.to).sort()).toEqual(['10.244.1.21', '10.244.2.22']);
  });

  it('an ExternalName naming a Service resolves to that Service, and the trace goes on to its endpoints', () => {
    const t = dp.traceName('web-alias.shop.svc.cluster.local', { src: POD, proto: 'tcp', dport: 80 });
    expect(t.resolution.queries[0]!.records.map((r) => [r.type, r.data])).toEqual([['CNAME', 'web.shop.svc.cluster.local.'], ['A', '10.96.0.80']]);
    expect(t.traces.map((x) => x.to)).toEqual(['10.96.0.80']);
    expect(t.traces[0]!.result.outcomes.map((o) => o.to).sort()).toEqual(['10.244.1.11:8080', '10.244.2.12:8080']);
  });

  it('an ExternalName naming an outside host and unknown names give no address to send to', () => {
    const ext = dp.traceName('ext.shop.svc.cluster.local', { src: POD, proto: 'tcp', dport: 443 });
    expect(ext.resolution.queries[0]!.records.map((r) => [r.type, r.data])).toEqual([['CNAME', 'api.example.com.']]);
    expect(ext.traces).toEqual([]);
    expect(dp.traceName('nope.shop.svc.cluster.local', { src: POD, proto: 'tcp', dport: 1 }).traces).toEqual([]);
  });
});

describe('svcplane trace --name', () => {
  it('prints the resolution and the trace to each address; --json gives the same object', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'svp-trace-'));
    try {
      const file = join(dir, 'shop.yaml');
      writeFileSync(file, MANIFESTS);
      const args = ['--manifests', dir, '--node-ip', NODE, '--src', POD, '--name', 'web.shop.svc.cluster.local', '--dport', '80'];
      const out: string[] = [];
      const err: string[] = [];
      expect(await runTrace(args, { out: (l) => out.push(l), err: (l) => err.push(l) })).toBe(0);
      const text = out.join('\n');
      expect(err).toEqual([]);
      expect(text).toMatch(/^resolve web\.shop\.svc\.cluster\.local through the cluster DNS records of /);
      expect(text).toMatch(/A web\.shop\.svc\.cluster\.local\. → NOERROR \(aa\), 1 record found/);
      expect(text).toMatch(/→ 1 address: 10\.96\.0\.80/);
      expect(text).toMatch(/TCP 10\.244\.3\.3:40000 → 10\.96\.0\.80:80/);
      expect(text).toMatch(/destination NAT: 10\.244\.1\.11:8080/);
      const json: string[] = [];
      expect(await runTrace([...args, '--json'], { out: (l) => json.push(l), err: () => {} })).toBe(0);
      const parsed = JSON.parse(json.join('\n'));
      expect(parsed.traces[0].to).toBe('10.96.0.80');
      expect(parsed.resolution.queries[0].records[0].data).toBe('10.96.0.80');

      // A name with no address: exit 1 and says so.
      const none: string[] = [];
      expect(await runTrace([...args.slice(0, 6), '--name', 'nope.shop.svc.cluster.local', '--dport', '80'], { out: (l) => none.push(l), err: () => {} })).toBe(1);
      expect(none.join('\n')).toMatch(/NXDOMAIN[\s\S]*no address: nothing to send to/);
      const usage: string[] = [];
      expect(await runTrace(['--rules', file, '--manifests', dir, '--node-ip', NODE, '--src', POD, '--dst', DNS4, '--dport', '1'], { out: () => {}, err: (l) => usage.push(l) })).toBe(2);
      expect(usage[0]).toMatch(/give one of them/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
