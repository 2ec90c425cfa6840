// What the node proxy derives from its Services and EndpointSlices: the objects handed to
// Dataplane.apply come back field for field, and the host view lists the addresses to route, the
// reply paths to steer, health check ports and local endpoint counts.
import { describe, expect, it } from 'vitest';
import { parseManifests, loadObjects } from '../../../host-node/kube/index.js';
import { ProxyObjects } from '../../../host-node/io/proxy-sink.js';

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

function fed(): ProxyObjects {
  const set = parseManifests(YAML);
  expect(set.issues.filter((i) => i.severity === 'error')).toEqual([]);
  const o = new ProxyObjects('n1');
  for (const s of set.services) o.onService(null, s);
  for (const e of set.endpointSlices) o.onEndpointSlice(e);
  o.onNode(set.nodes[0]!);
  o.markServicesSynced();
  o.markEndpointSlicesSynced();
  return o;
}

const strip = (x: unknown): unknown => JSON.parse(JSON.stringify(x, (k, v) => (k === 'origin' ? undefined : v)));

describe('proxy objects', () => {
  it('hands apply() objects that decode to the very same Services, EndpointSlices and Node', () => {
    const o = fed();
    const again = loadObjects(o.rawObjects());
    expect(again.issues.filter((i) => i.severity === 'error')).toEqual([]);
    const orig = parseManifests(YAML);
    expect(strip(again.services)).toEqual(strip(orig.services));
    expect(again.services[0]!.spec.sessionAffinityTimeoutSeconds).toBe(77);
    expect(strip(again.endpointSlices)).toEqual(strip(orig.endpointSlices));
    expect(strip(again.nodes)).toEqual(strip(orig.nodes));
  });

  it('derives routes, reply paths, health check ports and local endpoint counts', () => {
    const o = fed();
    const v = o.view();
    // externalIPs and VIP-mode LoadBalancer IPs (not the Proxy-mode one).
    expect(v.vips.map((a) => `${a.ip}:${a.port}/${a.protocol}`).sort()).toEqual(['198.18.120.10:80/TCP', '198.18.121.10:80/TCP']);
    // Ready or serving endpoints anywhere (their replies may come through this node); not the terminated one.
    expect(v.replies.map((a) => `${a.ip}:${a.port}`).sort()).toEqual(['198.18.100.2:8080', '198.18.101.2:8080']);
    expect([...v.healthCheckPorts]).toEqual([['shop/web', 32001]]);
    expect([...v.localEndpoints]).toEqual([['shop/web', 1]]);
    expect(v.noLocalEndpoints).toEqual({ internal: 0, external: 0 });
    const changes = o.takeChanges();
    expect(changes).toEqual({ services: 1, endpoints: 1, triggers: [Date.parse('2026-01-01T00:00:00Z')] });
    expect(o.takeChanges()).toEqual({ services: 0, endpoints: 0, triggers: [] });
  });

  it('counts a Local Service with no local endpoint, and a Node that disappears', () => {
    const o = fed();
    const slice = parseManifests(YAML).endpointSlices[0]!;
    o.onEndpointSlice({ ...slice, endpoints: slice.endpoints.filter((e) => e.nodeName !== 'n1') });
    const v = o.view();
    expect(v.localEndpoints.get('shop/web')).toBe(0);
    expect(v.noLocalEndpoints.external).toBe(1);
    expect(o.nodeDeleting).toBe(false);
    o.onNode(null);
    expect(o.nodeDeleting).toBe(true);
  });
});
