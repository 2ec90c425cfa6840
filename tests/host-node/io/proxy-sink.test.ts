// What the node proxy derives from its Services and EndpointSlices: the objects handed to
// Dataplane.apply come back field for field (all of them first, then only what changed), and the
// host view lists the addresses to route, the reply paths to steer, health check ports and local
// endpoint counts, kept up to date Service by Service.
import { describe, expect, it } from 'vitest';
import { parseManifests, loadObjects, type ManifestSet } from '../../../host-node/kube/index.js';
import { ProxyObjects, type HostView } from '../../../host-node/io/proxy-sink.js';
import { nodeEligible } from '../../../host-node/io/health.js';
import type { AddrPort } from '../../../host-node/io/node-routes.js';
import { Dataplane } from '../../../host-node/dataplane.js';
import { buildPacket, decodePacket } from '../../../host-node/core/packet.js';

const YAML = `
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop, annotations: {a: b}, labels: {app: web}}
spec:
  type: LoadBalancer
  clusterIP: 198.18.96.10
  externalIPs: [198.18.120.10]
  externalTrafficPolicy: Local
  healthCheckNodePort: 32001
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 77}}
  loadBalancerSourceRanges: [198.18.0.0/16]
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080, protocol: TCP}]
status: {loadBalancer: {ingress: [{ip: 198.18.121.10}, {ip: 198.18.121.11, ipMode: Proxy}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: shop
  labels: {kubernetes.io/service-name: web}
  annotations: {endpoints.kubernetes.io/last-change-trigger-time: "2026-01-01T00:00:00Z"}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [198.18.100.2]
  conditions: {ready: true}
  nodeName: n1
  zone: z1
  hints: {forZones: [{name: z1}]}
- addresses: [198.18.101.2]
  conditions: {ready: true, serving: true, terminating: false}
  nodeName: n2
- addresses: [198.18.102.2]
  conditions: {ready: false, serving: false, terminating: true}
  nodeName: n1
---
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {topology.kubernetes.io/zone: z1}}
spec: {podCIDRs: [198.18.100.0/24]}
`;

/** A sink for node n1, started before the YAML's trigger times, that has had every object of `set` as the initial lists. */
function sinkOf(set: ManifestSet): ProxyObjects {
  expect(set.issues.filter((i) => i.severity === 'error')).toEqual([]);
  const o = new ProxyObjects('n1', Date.parse('2025-12-31T00:00:00Z'));
  for (const s of set.services) o.onService(null, s);
  for (const e of set.endpointSlices) o.onEndpointSlice(e);
  for (const n of set.nodes) o.onNode(n);
  o.markServicesSynced();
  o.markEndpointSlicesSynced();
  return o;
}

const fed = (): ProxyObjects => sinkOf(parseManifests(YAML));

/** One sync as the node proxy runs it: the changes to the Dataplane, then the host view. */
function sync(o: ProxyObjects, dp: Dataplane, mode: 'iptables' | 'ipvs' | 'direct' = 'iptables'): HostView {
  const { result, view } = o.sync(dp, { mode, nodeName: 'n1' });
  expect(result.issues).toEqual([]);
  return view;
}

const newDataplane = () => Dataplane.create({ nodeIPs: ['198.18.200.1'], podCIDR: '198.18.64.0/18', seed: 5 });
const strip = (x: unknown): unknown => JSON.parse(JSON.stringify(x, (k, v) => (k === 'origin' ? undefined : v)));
/** A reply path or address as one comparable text. */
const addr = (a: { ip: string; protocol: string; port: number }): string => `${a.ip}|${a.protocol}|${a.port}`;

describe('proxy objects', () => {
  it('derives routes, reply paths, health check ports and local endpoint counts', async () => {
    const o = fed();
    const v = sync(o, await newDataplane());
    // externalIPs and VIP-mode LoadBalancer IPs (not the Proxy-mode one).
    expect(v.vips.map((a) => `${a.ip}:${a.port}/${a.protocol}`).sort()).toEqual(['198.18.120.10:80/TCP', '198.18.121.10:80/TCP']);
    // Ready or serving endpoints anywhere (their replies may come through this node); not the terminated one.
    expect((v.replies as AddrPort[]).map((a) => `${a.ip}:${a.port}`).sort()).toEqual(['198.18.100.2:8080', '198.18.101.2:8080']);
    expect([...v.healthCheckPorts]).toEqual([['shop/web', 32001]]);
    expect([...v.localEndpoints]).toEqual([['shop/web', 1]]);
    expect(v.noLocalEndpoints).toEqual({ IPv4: { internal: 0, external: 0 }, IPv6: { internal: 0, external: 0 } });
    const changes = o.takeChanges();
    expect(changes).toEqual({ services: 1, endpoints: 1, triggers: [{ at: Date.parse('2026-01-01T00:00:00Z'), family: 'IPv4', service: 'shop/web' }] });
    expect(o.takeChanges()).toEqual({ services: 0, endpoints: 0, triggers: [] });
  });

  it('a full sync keeps the view of Services whose model entries stayed and redoes the ones that changed', async () => {
    const many = (ready: (i: number) => boolean, extra: string) => Array.from({ length: 6 }, (_, i) => `
apiVersion: v1
kind: Service
metadata: {name: s${i}, namespace: ns}
spec: {clusterIP: 198.18.10.${i + 1}, ${i === 2 ? `externalIPs: [${extra}], ` : ''}ports: [{name: http, port: 80, protocol: TCP}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: s${i}-a, namespace: ns, labels: {kubernetes.io/service-name: s${i}}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints: [{addresses: [198.18.64.${i + 1}], nodeName: n1, conditions: {ready: ${ready(i)}, serving: ${ready(i)}}}]
`).join('---\n');
    const node = (zone: string) => parseManifests(`apiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {topology.kubernetes.io/zone: ${zone}}}\n`).nodes[0]!;
    const o = sinkOf(parseManifests(many(() => true, '198.18.20.1')));
    const dp = await newDataplane();
    const first = sync(o, dp, 'direct');
    expect((first.replies as AddrPort[]).length).toBe(6);
    // One sync that is full (the zone changed) and also changes s4's endpoint and s2's externalIP.
    const now = parseManifests(many((i) => i !== 4, '198.18.20.2'));
    o.onNode(node('z2'));
    o.onService(null, now.services[2]!);
    o.onEndpointSlice(now.endpointSlices[4]!);
    const v = sync(o, dp, 'direct');
    const want = sync(sinkOf(now), await newDataplane(), 'direct');
    const text = (l: AddrPort[]) => l.map(addr).sort();
    const delta = v.replies as { added: AddrPort[]; removed: AddrPort[] };
    expect(text(delta.removed)).toEqual(['198.18.64.5|TCP|8080']);
    expect(delta.added).toEqual([]);
    expect(text(v.vips)).toEqual(text(want.vips));
    expect(text(v.vips)).toEqual(['198.18.20.2|TCP|80']);
    expect([...v.localEndpoints].sort()).toEqual([...want.localEndpoints].sort());
    expect(v.localEndpoints.get('ns/s4')).toBe(0);
    expect(v.localEndpoints.get('ns/s3')).toBe(1);
  });

  it('counts changes as kube-proxy does: every event in the totals, only net changes as pending', () => {
    const o = fed();
    o.takeChanges();
    const set = parseManifests(YAML);
    const svc = set.services[0]!;
    const slice = set.endpointSlices[0]!;
    const other = { ...svc, metadata: { ...svc.metadata, name: 'other' } };
    o.onService(null, other);
    expect(o.pending.services).toBe(1);
    o.onService(other, null);            // added then deleted before a sync: nothing to do
    expect(o.pending.services).toBe(0);
    o.onService(svc, { ...svc });        // the same object again
    expect(o.pending.services).toBe(0);
    o.onEndpointSlice({ ...slice });     // an update that changes nothing
    expect(o.pending.endpoints).toBe(0);
    o.onEndpointSlice({ ...slice, endpoints: slice.endpoints.slice(1) });
    expect(o.pending).toEqual({ services: 0, endpoints: 1 });
    expect(o.takeChanges()).toMatchObject({ services: 3, endpoints: 2 });
    expect(o.pending).toEqual({ services: 0, endpoints: 0 });
  });

  it('counts a Local Service with no local endpoint, and a Node that disappears', async () => {
    const o = fed();
    const dp = await newDataplane();
    sync(o, dp);
    const slice = parseManifests(YAML).endpointSlices[0]!;
    o.onEndpointSlice({ ...slice, endpoints: slice.endpoints.filter((e) => e.nodeName !== 'n1') });
    const v = sync(o, dp);
    expect(v.localEndpoints.get('shop/web')).toBe(0);
    expect(v.noLocalEndpoints.IPv4.external).toBe(1);
    // The reply path of the endpoint that left is the one change handed on.
    const plain = (l: AddrPort[]) => l.map(({ ip, protocol, port }) => ({ ip, protocol, port }));
    const d = v.replies as { added: AddrPort[]; removed: AddrPort[] };
    expect({ added: plain(d.added), removed: plain(d.removed) }).toEqual({ added: [], removed: [{ ip: '198.18.100.2', protocol: 'TCP', port: 8080 }] });
    expect(o.nodeDeleting).toBe(false);
    // The Node as /healthz reads it at each request: tainted for deletion by the autoscaler, then
    // untainted, then gone.
    const node = (spec: string) => parseManifests(`kind: Node\nmetadata: {name: n1}\nspec: ${spec}`).nodes[0]!;
    o.onNode(node('{taints: [{key: ToBeDeletedByClusterAutoscaler, effect: NoSchedule}]}'));
    expect(nodeEligible(o.node, o.nodeDeleting)).toBe(false);
    o.onNode(node('{}'));
    expect(nodeEligible(o.node, o.nodeDeleting)).toBe(true);
    o.onNode(null);
    expect(o.nodeDeleting).toBe(true);
    expect(nodeEligible(o.node, o.nodeDeleting)).toBe(false);
  });

  it('counts a dual-stack Service\'s reply paths of both families, and hands on the one that leaves', async () => {
    const set = parseManifests(`
apiVersion: v1
kind: Service
metadata: {name: ds, namespace: shop}
spec: {clusterIP: 198.18.96.20, clusterIPs: [198.18.96.20, "fd00:96::20"], ipFamilies: [IPv4, IPv6], ipFamilyPolicy: RequireDualStack, ports: [{name: http, port: 80, protocol: TCP}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ds-4, namespace: shop, labels: {kubernetes.io/service-name: ds}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints: [{addresses: [198.18.100.7], nodeName: n1}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ds-6, namespace: shop, labels: {kubernetes.io/service-name: ds}}
addressType: IPv6
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints: [{addresses: ["fd00:44::7"], nodeName: n1}]
`);
    const o = sinkOf(set);
    const dp = await newDataplane();
    const v = sync(o, dp);
    expect((v.replies as AddrPort[]).map((a) => `${a.ip} ${a.port}`).sort()).toEqual(['198.18.100.7 8080', 'fd00:44::7 8080']);
    // One pod with an address of each family: one local endpoint, as each of kube-proxy's
    // single-family proxiers counts it.
    expect(v.localEndpoints.get('shop/ds')).toBe(1);
    o.onEndpointSlice(set.endpointSlices[1]!, true);
    const d = sync(o, dp).replies as { added: AddrPort[]; removed: AddrPort[] };
    expect(d.added).toEqual([]);
    expect(d.removed.map((a) => a.ip)).toEqual(['fd00:44::7']);
  });

  it('a slice that changes family takes its old reply paths away (a manifests edit; the API keeps addressType)', async () => {
    const o = fed();
    const dp = await newDataplane();
    sync(o, dp);
    const slice = parseManifests(YAML).endpointSlices[0]!;
    o.onEndpointSlice({ ...slice, addressType: 'IPv6', endpoints: [{ ...slice.endpoints[0]!, addresses: ['fd00:100::2'] }] });
    const d = sync(o, dp).replies as { added: AddrPort[]; removed: AddrPort[] };
    expect(d.removed.map((a) => a.ip).sort()).toEqual(['198.18.100.2', '198.18.101.2']);
    expect(d.added).toEqual([]);   // the Service is IPv4-only: its IPv6 slice serves nothing
  });

  it('asks for a sync only once both lists are in, and for a Node only when its zone changes', () => {
    const o = new ProxyObjects('n1');
    const set = parseManifests(YAML);
    expect(o.onService(null, set.services[0]!)).toBe(false);
    o.markServicesSynced();
    expect(o.onEndpointSlice(set.endpointSlices[0]!)).toBe(false);
    o.markEndpointSlicesSynced();
    expect(o.initialized).toBe(true);
    expect(o.onEndpointSlice(set.endpointSlices[0]!)).toBe(true);
    const node = set.nodes[0]!;
    expect(o.onNode(node)).toBe(true);
    expect(o.onNode({ ...node, metadata: { ...node.metadata, annotations: { x: 'y' } } })).toBe(false);
    expect(o.onNode({ ...node, metadata: { ...node.metadata, labels: { 'topology.kubernetes.io/zone': 'z2' } } })).toBe(true);
    expect(o.onNode({ ...node, metadata: { ...node.metadata, name: 'other' } })).toBe(false);
  });
});

describe('proxy objects: syncs by change', () => {
  it('hands apply() everything first, then only the objects changed or removed since the last applied sync', () => {
    const o = fed();
    const all = o.applyInput();
    expect(all.delta).toBeUndefined();
    expect(all.objects.services).toHaveLength(1);
    expect(all.objects.endpointSlices).toHaveLength(1);
    expect(all.objects.nodes).toHaveLength(1);
    o.applied(true);
    expect(o.applyInput()).toEqual({ objects: { services: [], endpointSlices: [], nodes: [] }, delta: { removed: [] } });

    const set = parseManifests(YAML);
    const slice = set.endpointSlices[0]!;
    o.onEndpointSlice({ ...slice, endpoints: slice.endpoints.slice(1) });
    const extra = { ...set.services[0]!, metadata: { ...set.services[0]!.metadata, name: 'extra' } };
    o.onService(null, extra);
    o.onService(extra, null);   // added and gone again before the sync: named as removed
    let d = o.applyInput();
    expect(d.delta).toEqual({ removed: ['Service shop/extra'] });
    expect(d.objects.services).toEqual([]);
    expect(strip(d.objects.endpointSlices)).toEqual(strip([{ ...slice, endpoints: slice.endpoints.slice(1) }]));
    o.applied(true);

    // A refused sync hands everything next time; so does a Node that went away.
    o.onService(set.services[0]!, set.services[0]!);
    o.applied(false);
    expect(o.applyInput().delta).toBeUndefined();
    o.applied(true);
    o.onNode(null);
    expect(o.applyInput().delta).toBeUndefined();
    o.applied(true);
    o.onNode(set.nodes[0]!);
    d = o.applyInput();
    expect(d.delta).toEqual({ removed: [] });
    expect(d.objects.nodes.map((n) => n.metadata.name)).toEqual(['n1']);
  });

  /** A small cluster changed at random, one event at a time; `seed` picks the events. */
  function* events(seed: number, steps: number): Generator<(o: ProxyObjects, now: Map<string, object>) => void> {
    let x = seed;
    const rnd = (n: number): number => { x = (x * 1103515245 + 12345) >>> 0; return (x >>> 8) % n; };
    const service = (i: number, v: number): object => ({
      apiVersion: 'v1', kind: 'Service', metadata: { name: `s${i}`, namespace: 'ns' },
      spec: {
        type: v % 3 === 0 ? 'LoadBalancer' : 'ClusterIP', clusterIP: `198.18.10.${i + 1}`,
        ...(v % 3 === 0 ? { externalTrafficPolicy: 'Local', healthCheckNodePort: 32000 + i } : {}),
        ...(v % 4 === 1 ? { externalIPs: [`198.18.20.${i + 1}`] } : {}),
        ...(v % 5 === 2 ? { internalTrafficPolicy: 'Local' } : {}),
        ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP', ...(v % 3 === 0 ? { nodePort: 30100 + i } : {}) }],
      },
      ...(v % 3 === 0 ? { status: { loadBalancer: { ingress: [{ ip: `198.18.21.${i + 1}` }] } } } : {}),
    });
    const slice = (i: number, v: number): object => ({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: `s${i}-a`, namespace: 'ns', labels: { 'kubernetes.io/service-name': `s${i}` } },
      addressType: 'IPv4', ports: [{ name: 'http', port: 8080 + (v % 2), protocol: 'TCP' }],
      // One endpoint at most, so every new flow has one possible destination in both dataplanes.
      endpoints: v % 4 === 3 ? [] : [{
        addresses: [v % 7 === 5 ? `198.18.30.${(i * 7 + v) % 250}` : `198.18.64.${(i * 7 + v) % 250}`],
        nodeName: v % 2 === 0 ? 'n1' : 'n2', conditions: { ready: v % 5 !== 4, serving: true, terminating: v % 5 === 4 },
      }],
    });
    const node = (zone: number): object => ({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1', labels: { 'topology.kubernetes.io/zone': `z${zone}` } } });
    for (let s = 0; s < steps; s++) {
      const i = rnd(12), v = rnd(1000), what = rnd(10);
      yield (o, now) => {
        const decode = (raw: object) => {
          const set = loadObjects([raw]);
          expect(set.issues.filter((e) => e.severity === 'error')).toEqual([]);
          return set;
        };
        if (what < 3) {
          const key = `Service ns/s${i}`;
          const prev = now.has(key) ? decode(now.get(key)!).services[0]! : null;
          if (what === 0 && prev) {
            o.onService(prev, null);
            now.delete(key);
          } else {
            const raw = service(i, v);
            o.onService(prev, decode(raw).services[0]!);
            now.set(key, raw);
          }
        } else if (what < 9) {
          const key = `EndpointSlice ns/s${i}-a`;
          if (what === 3 && now.has(key)) {
            o.onEndpointSlice(decode(now.get(key)!).endpointSlices[0]!, true);
            now.delete(key);
          } else {
            const raw = slice(i, v);
            o.onEndpointSlice(decode(raw).endpointSlices[0]!);
            now.set(key, raw);
          }
        } else {
          // The node's zone changes (a full resync) or it goes and comes back.
          if (v % 2 === 0) o.onNode(null);
          const raw = node(v % 3);
          o.onNode(decode(raw).nodes[0]!);
          now.set('Node n1', raw);
        }
      };
    }
  }

  /** The host view of `now` worked out from nothing (the model, so the view, is the same in every mode). */
  async function fresh(now: Map<string, object>): Promise<HostView> {
    return sync(sinkOf(loadObjects([...now.values()])), await newDataplane(), 'direct');
  }

  for (const mode of ['iptables', 'ipvs', 'direct'] as const) {
    it(`${mode} mode: a dataplane fed the changes ends each sync where one fed everything does, and so does the host view`, async () => {
      const byChange = await newDataplane();
      const byWhole = await newDataplane();
      const o = new ProxyObjects('n1');
      o.markServicesSynced();
      o.markEndpointSlicesSynced();
      const now = new Map<string, object>();
      const replies = new Set<string>();
      let sport = 1000, deltas = 0;
      for (const step of events(mode === 'iptables' ? 7 : mode === 'ipvs' ? 9 : 11, 120)) {
        step(o, now);
        if (o.applyInput().delta) deltas++;
        const v = sync(o, byChange, mode);
        byWhole.apply(loadObjects([...now.values()]), { mode, nodeName: 'n1' });
        if (mode !== 'direct') {
          expect(byChange.iptablesSave({ family: 4 })).toBe(byWhole.iptablesSave({ family: 4 }));
          if (mode === 'ipvs') {
            expect(byChange.ipvsadm('-Ln').stdout).toBe(byWhole.ipvsadm('-Ln').stdout);
            expect(byChange.ipset.save()).toBe(byWhole.ipset.save());
          }
        } else {
          for (let i = 0; i < 12; i++) {
            const packet = buildPacket({ src: '198.19.9.9', dst: `198.18.10.${i + 1}`, proto: 'tcp', sport: ++sport, dport: 80, flags: 'S' });
            const a = byChange.process(packet, 1), b = byWhole.process(packet, 1);
            expect(a.verdict).toBe(b.verdict);
            expect(a.packet && decodePacket(a.packet).dst).toBe(b.packet && decodePacket(b.packet).dst);
          }
        }
        if (Array.isArray(v.replies)) {
          replies.clear();
          for (const r of v.replies) replies.add(addr(r));
        } else {
          for (const r of v.replies.removed) expect(replies.delete(addr(r))).toBe(true);
          for (const r of v.replies.added) {
            expect(replies.has(addr(r))).toBe(false);
            replies.add(addr(r));
          }
        }
        const want = await fresh(now);
        expect([...replies].sort()).toEqual((want.replies as Array<{ ip: string; protocol: string; port: number }>).map(addr).sort());
        expect(v.vips.map(addr).sort()).toEqual(want.vips.map(addr).sort());
        expect([...v.healthCheckPorts].sort()).toEqual([...want.healthCheckPorts].sort());
        expect([...v.localEndpoints].sort()).toEqual([...want.localEndpoints].sort());
        expect(v.noLocalEndpoints).toEqual(want.noLocalEndpoints);
      }
      // Most syncs were deltas (a Node that went away takes a whole one).
      expect(deltas).toBeGreaterThan(100);
    });
  }
});
