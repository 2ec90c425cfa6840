// kube-gen.ts — kube-proxy-shaped Service / EndpointSlice sets for kernel comparisons and
// benchmarks: random clusters from a seed (ClusterIP, a NodePort every 10th service, the odd
// LoadBalancer and externalIP, session affinity, externalTrafficPolicy / internalTrafficPolicy
// Local, terminating and not-ready endpoints, Services without endpoints, TCP / UDP / SCTP), and
// large regular clusters for benchmarks. Every address lies in 198.18.0.0/15 (RFC 2544 benchmark
// space): Services in 198.18.0.0/20 (LB / external IPs in 198.18.14-15.x), pods in
// 198.19.0.0-198.19.249.255, this node 198.18.200.1. Benchmark clusters beyond 4,096 Services
// spill over into 198.18.16.0-198.18.127.255. IPv6 random clusters use the same numbers as groups
// of fd00::/8 (Services fd00:198:18:0-f::, pods fd00:198:19:0-f9::, this node
// fd00:198:18:200::1). Also runs the objects through kube-proxy's trackers and renders them.
// Pure: never touches the kernel, files or the clock.
import {
  ProxyState, renderIptables, LABEL_SERVICE_NAME,
  type EndpointSlice, type ProxyModel, type IptablesOptions, type IptablesRender, type Protocol, type Service, type ServicePort,
} from '../../host-node/kube/index.js';
import { canonicalIP } from '../../host-node/kube/ip.js';

export const NODE_NAME = 'node-a';
export const OTHER_NODE = 'node-b';
export const NODE_IP = '198.18.200.1';
export const POD_CIDR = '198.19.0.0/16';
export const NODE_IP6 = 'fd00:198:18:200::1';
export const POD_CIDR6 = 'fd00:198:19::/48';

/** The renderer options every kernel comparison uses (era current, this node, the pod CIDR as local detector). */
export function renderOptions(extra: Partial<IptablesOptions> = {}, family: 4 | 6 = 4): IptablesOptions {
  return { era: 'current', nodeName: NODE_NAME, nodeIPs: [family === 6 ? NODE_IP6 : NODE_IP], podCIDR: family === 6 ? POD_CIDR6 : POD_CIDR, ...extra };
}

/** Seeded 32-bit PRNG (mulberry32): the same seed gives the same cluster everywhere. */
export class Rng {
  private s: number;
  constructor(seed: number) { this.s = seed >>> 0; }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number { return lo + Math.floor(this.next() * (hi - lo + 1)); }
  chance(p: number): boolean { return this.next() < p; }
  pick<T>(xs: readonly T[]): T { return xs[Math.floor(this.next() * xs.length)]!; }
}

export interface Cluster {
  seed: number;
  /** The family of every address (default 4). */
  family?: 4 | 6;
  namespace: string;
  services: Service[];
  slices: EndpointSlice[];
}

const ipOf = (a: number, b: number, c: number, d: number): string => `${a}.${b}.${c}.${d}`;
/** 198.b.c.d in a family's plan: for IPv6 fd00:198:b:c::d (c and d as hex groups), in canonical form. */
export const addrOf = (family: 4 | 6, b: number, c: number, d: number): string =>
  family === 6 ? canonicalIP(`fd00:198:${b}:${c.toString(16)}::${d.toString(16)}`)! : ipOf(198, b, c, d);

export function service(namespace: string, name: string, spec: Partial<Service['spec']> & { clusterIP: string; ports: ServicePort[] }, lbIPs: string[] = []): Service {
  return {
    kind: 'Service',
    metadata: { name, namespace, labels: {}, annotations: {} },
    spec: {
      type: 'ClusterIP', clusterIPs: [spec.clusterIP], ipFamilies: [spec.clusterIP.includes(':') ? 'IPv6' : 'IPv4'], externalIPs: [], externalName: '',
      loadBalancerSourceRanges: [], externalTrafficPolicy: 'Cluster', internalTrafficPolicy: 'Cluster', healthCheckNodePort: 0,
      sessionAffinity: 'None', sessionAffinityTimeoutSeconds: 10800, trafficDistribution: null,
      ...spec,
    },
    status: { loadBalancer: { ingress: lbIPs.map((ip) => ({ ip, hostname: null, ipMode: null })) } },
  };
}

export interface EndpointSpec {
  ip: string;
  node: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
}

export function slice(namespace: string, svcName: string, sliceName: string, eps: EndpointSpec[], ports: { name: string; port: number; protocol: Protocol }[], family: 4 | 6 = 4): EndpointSlice {
  return {
    kind: 'EndpointSlice',
    metadata: { name: sliceName, namespace, labels: { [LABEL_SERVICE_NAME]: svcName }, annotations: {} },
    addressType: family === 6 ? 'IPv6' : 'IPv4',
    endpoints: eps.map((e) => ({
      addresses: [e.ip],
      conditions: { ready: e.ready ?? true, serving: e.serving ?? e.ready ?? true, terminating: e.terminating ?? false },
      nodeName: e.node, zone: null, hints: null, hostname: null,
    })),
    ports: ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol })),
  };
}

export interface RandomClusterOptions {
  /** Services in the cluster; default 8–16 at random. */
  services?: number;
  /** Address family (default 4); the same seed gives the same cluster in either. */
  family?: 4 | 6;
}

/**
 * A random cluster. The namespace carries the seed, so chain names (and with them xt_recent list
 * names) never repeat between two clusters of different seeds.
 */
export function randomCluster(seed: number, opts: RandomClusterOptions = {}): Cluster {
  const rng = new Rng(seed * 2654435761 + 1);
  const family = opts.family ?? 4;
  const namespace = `r${seed}`;
  const n = opts.services ?? rng.int(8, 16);
  const usedVIP = new Set<string>();
  const usedPod = new Set<string>();
  const usedNodePort = new Set<number>();
  const uniqueVIP = (third: () => number): string => {
    for (;;) {
      const ip = addrOf(family, 18, third(), rng.int(1, 254));
      if (!usedVIP.has(ip)) { usedVIP.add(ip); return ip; }
    }
  };
  const uniquePod = (): string => {
    for (;;) {
      const ip = addrOf(family, 19, rng.int(0, 249), rng.int(1, 254));
      if (!usedPod.has(ip)) { usedPod.add(ip); return ip; }
    }
  };
  const services: Service[] = [];
  const slices: EndpointSlice[] = [];
  for (let i = 0; i < n; i++) {
    const name = `s${i}`;
    const nodePortSvc = i % 10 === 0;
    const lbSvc = !nodePortSvc && rng.chance(0.06);
    const extIPs = !lbSvc && rng.chance(0.06) ? [uniqueVIP(() => 15)] : [];
    const nPorts = rng.chance(0.7) ? 1 : rng.int(2, 3);
    const ports: ServicePort[] = [];
    const usedPort = new Set<string>();
    for (let k = 0; k < nPorts; k++) {
      const protocol: Protocol = rng.chance(0.5) ? 'TCP' : rng.chance(0.6) ? 'UDP' : 'SCTP';
      let port = 0;
      do port = rng.chance(0.3) ? rng.pick([53, 80, 443, 8080, 9090]) : rng.int(1, 65535);
      while (usedPort.has(`${protocol}/${port}`));
      usedPort.add(`${protocol}/${port}`);
      let nodePort = 0;
      if (nodePortSvc || lbSvc) {
        do nodePort = rng.int(30000, 32767); while (usedNodePort.has(nodePort));
        usedNodePort.add(nodePort);
      }
      ports.push({ name: nPorts === 1 ? '' : `p${k}`, protocol, port, nodePort, targetPort: rng.int(1024, 65535) });
    }
    const external = nodePortSvc || lbSvc || extIPs.length > 0;
    const affinity = rng.chance(0.25);
    const lbIPs = lbSvc ? [uniqueVIP(() => 14)] : [];
    services.push(service(namespace, name, {
      type: nodePortSvc ? 'NodePort' : lbSvc ? 'LoadBalancer' : 'ClusterIP',
      clusterIP: uniqueVIP(() => rng.int(0, 13)),
      ports,
      externalIPs: extIPs,
      externalTrafficPolicy: external && rng.chance(0.4) ? 'Local' : 'Cluster',
      internalTrafficPolicy: rng.chance(0.1) ? 'Local' : 'Cluster',
      sessionAffinity: affinity ? 'ClientIP' : 'None',
      sessionAffinityTimeoutSeconds: affinity ? rng.int(60, 10800) : 10800,
      loadBalancerSourceRanges: lbSvc && rng.chance(0.5) ? [family === 6 ? 'fd00:198:18:100::/64' : '198.18.100.0/24'] : [],
      healthCheckNodePort: 0,
    }, lbIPs));

    // Endpoints: none at all, an empty slice, or 1–4 pods split over one or two slices.
    const shape = rng.next();
    if (shape < 0.12) continue;
    const eps: EndpointSpec[] = [];
    const count = shape < 0.17 ? 0 : rng.int(1, 4);
    for (let e = 0; e < count; e++) {
      const terminating = rng.chance(0.1);
      eps.push({
        ip: uniquePod(),
        node: rng.chance(0.5) ? NODE_NAME : OTHER_NODE,
        ready: !terminating && !rng.chance(0.05),
        serving: terminating ? rng.chance(0.7) : undefined,
        terminating,
      });
    }
    const sp = ports.map((p) => ({ name: p.name, port: p.targetPort as number, protocol: p.protocol }));
    const cut = eps.length > 1 && rng.chance(0.2) ? rng.int(1, eps.length - 1) : eps.length;
    slices.push(slice(namespace, name, `${name}-a`, eps.slice(0, cut), sp, family));
    if (cut < eps.length) slices.push(slice(namespace, name, `${name}-b`, eps.slice(cut), sp, family));
  }
  return { seed, family, namespace, services, slices };
}

/** Address of regular benchmark object `i` (services from 198.18.0.1, pods from 198.19.0.1). */
function seq(base: [number, number], i: number): string {
  const v = i + 1;
  return ipOf(base[0], base[1] + (v >> 16), (v >> 8) & 255, v & 255);
}

export interface BenchClusterOptions {
  endpoints?: number;
  nodePortEvery?: number;
  namespace?: string;
  /** Index of the first service (so a later added service gets fresh addresses). */
  first?: number;
}

/**
 * `n` TCP Services on port 80 with `endpoints` pods each (default 2); every 10th a NodePort (while
 * the NodePort range lasts). Service `i` has cluster IP 198.18.0.0 + i + 1.
 */
export function benchCluster(n: number, opts: BenchClusterOptions = {}): Cluster {
  const namespace = opts.namespace ?? 'bench';
  const per = opts.endpoints ?? 2;
  const every = opts.nodePortEvery ?? 10;
  const first = opts.first ?? 0;
  if ((first + n) * per >= 65000 || first + n > 32000) throw new Error(`benchCluster: ${first + n} services do not fit the address plan`);
  const services: Service[] = [];
  const slices: EndpointSlice[] = [];
  for (let i = first; i < first + n; i++) {
    const name = `svc-${i}`;
    // The default NodePort range (30000-32767) holds 2,768 ports; later services stay ClusterIP.
    const nodePort = i % every === 0 && i / every < 2768 ? 30000 + i / every : 0;
    services.push(service(namespace, name, {
      type: nodePort ? 'NodePort' : 'ClusterIP',
      clusterIP: seq([198, 18], i),
      ports: [{ name: 'http', protocol: 'TCP', port: 80, nodePort, targetPort: 8080 }],
    }));
    const eps: EndpointSpec[] = [];
    for (let e = 0; e < per; e++) eps.push({ ip: seq([198, 19], i * per + e), node: e % 2 === 0 ? NODE_NAME : OTHER_NODE });
    slices.push(slice(namespace, name, `${name}-a`, eps, [{ name: 'http', port: 8080, protocol: 'TCP' }]));
  }
  return { seed: 0, namespace, services, slices };
}

/** kube-proxy's state for one cluster: objects fed through the trackers, both initial lists seen. */
export function proxyStateFor(c: Cluster): ProxyState {
  const state = new ProxyState({ nodeName: NODE_NAME, families: [c.family ?? 4] });
  for (const s of c.services) state.onService(null, s);
  for (const s of c.slices) state.onEndpointSlice(s);
  state.markServicesSynced();
  state.markEndpointSlicesSynced();
  return state;
}

export interface Sync {
  render: IptablesRender;
  model: ProxyModel;
}

/**
 * Applies the pending changes of `state` and renders that sync (full the first time, partial
 * after), as kube-proxy would: `existingNatChains` stands for the nat chains iptables-save shows now.
 * In large-cluster mode (over 1,000 endpoints) stale chains are deleted only when
 * `cleanupStaleChains` says this is the sync that may (kube-proxy: once per sync period).
 */
export function renderSync(state: ProxyState, existingNatChains: Iterable<string> = [], extra: Partial<IptablesOptions> = {}, cleanupStaleChains = false): Sync {
  const [plan] = state.sync();
  if (!plan) throw new Error('renderSync: proxy state not initialized');
  const req = { changedServices: plan.changedServices, existingNatChains, cleanupStaleChains };
  return { render: renderIptables(plan.model, renderOptions(extra, plan.model.family), req), model: plan.model };
}

/** Full render of a cluster. */
export function renderCluster(c: Cluster, extra: Partial<IptablesOptions> = {}): Sync {
  return renderSync(proxyStateFor(c), [], extra);
}

/** The nat chains that exist after `text` was restored with --noflush over `before`. */
export function natChainsAfter(before: Iterable<string>, text: string): Set<string> {
  const out = new Set(before);
  const nat = text.slice(text.indexOf('*nat'));
  for (const m of nat.matchAll(/^:(\S+) /gm)) out.add(m[1]!);
  for (const m of nat.matchAll(/^-X (\S+)$/gm)) out.delete(m[1]!);
  return out;
}

/**
 * Manifests of one Service `default/web` (port `port`, default 80, to targetPort 8080/TCP) at `vip`
 * and its EndpointSlice of ready `endpoints`; `affinity` adds ClientIP affinity for 600 s.
 */
export function webManifests(opts: { vip: string; endpoints: string[]; port?: number; affinity?: boolean }): string {
  return `
apiVersion: v1
kind: Service
metadata: { name: web, namespace: default }
spec:
  clusterIP: ${opts.vip}
  ports: [{ name: http, port: ${opts.port ?? 80}, targetPort: 8080, protocol: TCP }]
${opts.affinity ? '  sessionAffinity: ClientIP\n  sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } }' : ''}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-1, namespace: default, labels: { kubernetes.io/service-name: web } }
addressType: IPv4
ports: [{ name: http, port: 8080, protocol: TCP }]
endpoints:
${opts.endpoints.map((a) => `  - { addresses: [${a}], conditions: { ready: true } }`).join('\n')}
`;
}
