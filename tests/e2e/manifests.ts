// manifests.ts — the Services and EndpointSlices the end-to-end tests serve, as YAML: ClusterIP TCP
// (also NodePort and externalIP), UDP, a Service without endpoints, a LoadBalancer with
// externalTrafficPolicy Local (health check node port), and a ClientIP-affinity Service. For the
// benchmark, the same cluster grown to N Services (bulk, HTTP and iperf3 Services and fillers, 2
// endpoints each but iperf3's one).
import { BACKENDS, CLUSTER_CIDR, NODE_NAME } from './cluster.js';

export const VIP6 = { web: 'fd00:96::10' };
export const VIP = { web: '198.18.96.10', echo: '198.18.96.11', empty: '198.18.96.12', local: '198.18.96.13', sticky: '198.18.96.14', stream: '198.18.96.15', ranged: '198.18.96.16' };
export const EXTERNAL_IP = '198.18.120.10';
export const LB_IP = '198.18.121.10';
/** A LoadBalancer IP open to the pod network only (loadBalancerSourceRanges). */
export const RANGED_LB_IP = '198.18.122.10';
export const NODE_PORT = { web: 30080, local: 30081 };
export const HEALTH_CHECK_PORT = 32001;
/** The bulk-transfer Service (backends' hashing byte sink, :8084). */
export const BULK = { vip: '198.18.96.17', port: 82 };
/** The benchmark's HTTP Service for wrk (backends' :8086). */
export const HTTP = { vip: '198.18.96.18', port: 80 };
/**
 * The benchmark's iperf3 Service: one endpoint (backend 1, :5201), since iperf3's control and data
 * connections must reach the same server.
 */
export const IPERF = { vip: '198.18.96.19', port: 5201 };
/** Filler Services' ClusterIPs (16,384 addresses, apart from every address the cluster uses). */
export const FILL_CIDR = '198.19.0.0/18';

type Backend = (typeof BACKENDS)[number];

function service(name: string, spec: Record<string, unknown>, status = ''): string {
  return `---
apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: default}
spec: ${JSON.stringify(spec)}
${status}`;
}

function slice(name: string, svc: string, port: number, protocol: string, backends: readonly Backend[], family: 4 | 6 = 4): string {
  const eps = backends.map((b) => `  - addresses: ["${family === 6 ? b.ip6 : b.ip}"]\n    conditions: {ready: true, serving: true, terminating: false}\n    nodeName: ${NODE_NAME}`).join('\n');
  return `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${name}
  namespace: default
  labels: {kubernetes.io/service-name: ${svc}}
addressType: IPv${family}
ports: [{name: p, port: ${port}, protocol: ${protocol}}]
endpoints:${backends.length === 0 ? ' []' : `\n${eps}`}
`;
}

export interface ClusterShape {
  web?: readonly Backend[];
  echo?: readonly Backend[];
  /** Add an IPv6 ClusterIP Service (web6). */
  ipv6?: boolean;
}

export function clusterManifests(shape: ClusterShape = {}): string {
  const web = shape.web ?? BACKENDS;
  const echo = shape.echo ?? BACKENDS;
  const tcp = (port: number, extra: Record<string, unknown> = {}) => ({ name: 'p', port, targetPort: 8080, protocol: 'TCP', ...extra });
  return [
    service('web', { type: 'NodePort', clusterIP: VIP.web, ports: [tcp(80, { nodePort: NODE_PORT.web })], externalIPs: [EXTERNAL_IP] }),
    slice('web-1', 'web', 8080, 'TCP', web),
    service('echo', { clusterIP: VIP.echo, ports: [{ name: 'p', port: 53, targetPort: 5353, protocol: 'UDP' }] }),
    slice('echo-1', 'echo', 5353, 'UDP', echo),
    service('empty', { clusterIP: VIP.empty, ports: [tcp(80)] }),
    slice('empty-1', 'empty', 8080, 'TCP', []),
    service('local', {
      type: 'LoadBalancer', clusterIP: VIP.local, ports: [tcp(80, { nodePort: NODE_PORT.local })],
      externalTrafficPolicy: 'Local', healthCheckNodePort: HEALTH_CHECK_PORT,
    }, `status: {loadBalancer: {ingress: [{ip: "${LB_IP}"}]}}\n`),
    slice('local-1', 'local', 8080, 'TCP', BACKENDS),
    service('ranged', {
      type: 'LoadBalancer', clusterIP: VIP.ranged, ports: [tcp(80, { nodePort: 30082 })], loadBalancerSourceRanges: [CLUSTER_CIDR],
    }, `status: {loadBalancer: {ingress: [{ip: "${RANGED_LB_IP}"}]}}\n`),
    slice('ranged-1', 'ranged', 8080, 'TCP', BACKENDS),
    service('sticky', { clusterIP: VIP.sticky, ports: [tcp(80)], sessionAffinity: 'ClientIP' }),
    slice('sticky-1', 'sticky', 8080, 'TCP', BACKENDS),
    service('stream', { clusterIP: VIP.stream, ports: [{ name: 'p', port: 81, targetPort: 8081, protocol: 'TCP' }] }),
    slice('stream-1', 'stream', 8081, 'TCP', BACKENDS),
    ...(shape.ipv6 ? [
      service('web6', { clusterIP: VIP6.web, ipFamilies: ['IPv6'], ports: [tcp(80)] }),
      slice('web6-1', 'web6', 8080, 'TCP', BACKENDS, 6),
    ] : []),
  ].join('');
}

/**
 * clusterManifests() plus the bulk Service plus fillers, `total` Services in all: each filler a
 * TCP ClusterIP (port 80 → 8080) on both backends, its address the i-th of FILL_CIDR.
 */
export function scaleManifests(total: number): string {
  const base = clusterManifests() + service('bulk', { clusterIP: BULK.vip, ports: [{ name: 'p', port: BULK.port, targetPort: 8084, protocol: 'TCP' }] })
    + slice('bulk-1', 'bulk', 8084, 'TCP', BACKENDS)
    + service('http', { clusterIP: HTTP.vip, ports: [{ name: 'p', port: HTTP.port, targetPort: 8086, protocol: 'TCP' }] })
    + slice('http-1', 'http', 8086, 'TCP', BACKENDS)
    + service('iperf', { clusterIP: IPERF.vip, ports: [{ name: 'p', port: IPERF.port, targetPort: 5201, protocol: 'TCP' }] })
    + slice('iperf-1', 'iperf', 5201, 'TCP', BACKENDS.slice(0, 1));
  const have = (base.match(/^kind: Service$/gm) ?? []).length;
  const fill = Math.max(0, total - have);
  if (fill > 16384) throw new Error(`scaleManifests: ${fill} fillers do not fit in ${FILL_CIDR}`);
  const out = [base];
  for (let i = 0; i < fill; i++) {
    const ip = `198.19.${i >> 8}.${i & 255}`;
    out.push(service(`fill-${i}`, { clusterIP: ip, ports: [{ name: 'p', port: 80, targetPort: 8080, protocol: 'TCP' }] }), slice(`fill-${i}-1`, `fill-${i}`, 8080, 'TCP', BACKENDS));
  }
  return out.join('');
}
