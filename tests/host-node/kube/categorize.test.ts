// categorizeEndpoints, table-driven like kube-proxy's TestCategorizeEndpoints (pkg/proxy/
// topology_test.go). Adapted to current kube-proxy: terminating-endpoint fallback is always on
// (ProxyTerminatingEndpoints is GA), hints are followed whenever every ready endpoint has one (the
// service annotation is no longer read), and node hints (PreferSameNode) come first.
// `null` = "the service never uses this kind of endpoints"; a list = the expected endpoints.
import { describe, expect, it } from 'vitest';
import { categorizeEndpoints, type EndpointInfo } from '../../../host-node/kube/index.js';

interface EpSpec { ready?: boolean; serving?: boolean; terminating?: boolean; isLocal?: boolean; zones?: string[]; nodes?: string[] }

function ep(endpoint: string, s: EpSpec = {}): EndpointInfo {
  const ready = s.ready ?? true;
  return {
    ip: endpoint.slice(0, endpoint.lastIndexOf(':')),
    port: Number(endpoint.slice(endpoint.lastIndexOf(':') + 1)),
    endpoint,
    isLocal: s.isLocal ?? false,
    ready,
    serving: s.serving ?? ready,
    terminating: s.terminating ?? false,
    nodeName: null,
    zone: null,
    zoneHints: s.zones ?? null,
    nodeHints: s.nodes ?? null,
  };
}

interface Svc { internalPolicyLocal?: boolean; externalPolicyLocal?: boolean; nodePort?: number }
const svc = (s: Svc = {}) => ({
  internalPolicyLocal: s.internalPolicyLocal ?? false,
  externalPolicyLocal: s.externalPolicyLocal ?? false,
  nodePort: s.nodePort ?? 0,
  loadBalancerVIPs: [] as string[],
  externalIPs: [] as string[],
});

interface Case {
  name: string;
  zone?: string;
  nodeName?: string;
  preferSame?: boolean;
  svc: ReturnType<typeof svc>;
  endpoints: EndpointInfo[];
  cluster: string[] | null;
  local: string[] | null;
  /** Defaults to whichever of cluster/local is non-null when only one is. */
  all?: string[];
  /** hasAnyEndpoints although nothing is reachable from this node. */
  onlyRemote?: boolean;
}

const zoned = (z3: string, z4: string, z5: string | null, z6: string, ready6 = true): EndpointInfo[] => [
  ep('10.1.2.3:80', { zones: [z3] }),
  ep('10.1.2.4:80', { zones: [z4] }),
  ep('10.1.2.5:80', z5 === null ? {} : { zones: [z5] }),
  ep('10.1.2.6:80', { zones: [z6], ready: ready6 }),
];

const cases: Case[] = [
  { name: 'hints for every endpoint: only this zone', zone: 'zone-a', svc: svc(), endpoints: zoned('zone-a', 'zone-b', 'zone-c', 'zone-a'),
    cluster: ['10.1.2.3:80', '10.1.2.6:80'], local: null },
  { name: 'one endpoint without hints: hints ignored', zone: 'zone-a', svc: svc(), endpoints: zoned('zone-a', 'zone-b', null, 'zone-a'),
    cluster: ['10.1.2.3:80', '10.1.2.4:80', '10.1.2.5:80', '10.1.2.6:80'], local: null },
  { name: 'externalTrafficPolicy: Local, topology ignored for Local endpoints', zone: 'zone-a', svc: svc({ externalPolicyLocal: true, nodePort: 8080 }),
    endpoints: [ep('10.1.2.3:80', { zones: ['zone-a'], isLocal: true }), ep('10.1.2.4:80', { zones: ['zone-b'], isLocal: true }), ep('10.1.2.5:80', { zones: ['zone-c'] }), ep('10.1.2.6:80', { zones: ['zone-a'] })],
    cluster: ['10.1.2.3:80', '10.1.2.6:80'], local: ['10.1.2.3:80', '10.1.2.4:80'], all: ['10.1.2.3:80', '10.1.2.4:80', '10.1.2.6:80'] },
  { name: 'internalTrafficPolicy: Local, topology ignored for Local endpoints', zone: 'zone-a', svc: svc({ internalPolicyLocal: true, nodePort: 8080 }),
    endpoints: [ep('10.1.2.3:80', { zones: ['zone-a'], isLocal: true }), ep('10.1.2.4:80', { zones: ['zone-b'], isLocal: true }), ep('10.1.2.5:80', { zones: ['zone-c'] }), ep('10.1.2.6:80', { zones: ['zone-a'] })],
    cluster: ['10.1.2.3:80', '10.1.2.6:80'], local: ['10.1.2.3:80', '10.1.2.4:80'], all: ['10.1.2.3:80', '10.1.2.4:80', '10.1.2.6:80'] },
  { name: 'no zone label: no filtering', svc: svc(), endpoints: [ep('10.1.2.3:80', { zones: ['zone-a'] })], cluster: ['10.1.2.3:80'], local: null },
  { name: 'empty zone label: no filtering', zone: '', svc: svc(), endpoints: [ep('10.1.2.3:80', { zones: ['zone-a'] })], cluster: ['10.1.2.3:80'], local: null },
  { name: 'node in a zone no endpoint is hinted for: no filtering', zone: 'zone-b', svc: svc(), endpoints: [ep('10.1.2.3:80', { zones: ['zone-a'] })], cluster: ['10.1.2.3:80'], local: null },
  { name: 'unready endpoint is left out', zone: 'zone-a', svc: svc(), endpoints: zoned('zone-a', 'zone-b', 'zone-c', 'zone-a', false), cluster: ['10.1.2.3:80'], local: null },
  { name: 'only unready endpoints in this zone: no filtering', zone: 'zone-a', svc: svc(),
    endpoints: [ep('10.1.2.3:80', { zones: ['zone-a'], ready: false }), ep('10.1.2.4:80', { zones: ['zone-b'] }), ep('10.1.2.5:80', { zones: ['zone-c'] }), ep('10.1.2.6:80', { zones: ['zone-a'], ready: false })],
    cluster: ['10.1.2.4:80', '10.1.2.5:80'], local: null },
  { name: 'multiple hints per endpoint: any one naming the zone counts', zone: 'zone-c', svc: svc(),
    endpoints: [ep('10.1.2.3:80', { zones: ['zone-a', 'zone-b', 'zone-c'] }), ep('10.1.2.4:80', { zones: ['zone-b', 'zone-c'] }), ep('10.1.2.5:80', { zones: ['zone-b', 'zone-d'] }), ep('10.1.2.6:80', { zones: ['zone-c'] })],
    cluster: ['10.1.2.3:80', '10.1.2.4:80', '10.1.2.6:80'], local: null },
  { name: 'conflicting topology and localness require merging allEndpoints', zone: 'zone-a', svc: svc({ externalPolicyLocal: true, nodePort: 8080 }),
    endpoints: [ep('10.0.0.0:80', { zones: ['zone-a'], isLocal: true }), ep('10.0.0.1:80', { zones: ['zone-b'], isLocal: true }), ep('10.0.0.2:80', { zones: ['zone-a'] }), ep('10.0.0.3:80', { zones: ['zone-b'] })],
    cluster: ['10.0.0.0:80', '10.0.0.2:80'], local: ['10.0.0.0:80', '10.0.0.1:80'], all: ['10.0.0.0:80', '10.0.0.1:80', '10.0.0.2:80'] },
  { name: 'internalTrafficPolicy: Local, with empty endpoints', svc: svc({ internalPolicyLocal: true }), endpoints: [], cluster: null, local: null, all: [] },
  { name: 'internalTrafficPolicy: Local, but all endpoints are remote', svc: svc({ internalPolicyLocal: true }),
    endpoints: [ep('10.0.0.0:80'), ep('10.0.0.1:80')], cluster: null, local: [], onlyRemote: true },
  { name: 'internalTrafficPolicy: Local, all endpoints are local', svc: svc({ internalPolicyLocal: true }),
    endpoints: [ep('10.0.0.0:80', { isLocal: true }), ep('10.0.0.1:80', { isLocal: true })], cluster: null, local: ['10.0.0.0:80', '10.0.0.1:80'] },
  { name: 'internalTrafficPolicy: Local, some endpoints are local', svc: svc({ internalPolicyLocal: true }),
    endpoints: [ep('10.0.0.0:80', { isLocal: true }), ep('10.0.0.1:80')], cluster: null, local: ['10.0.0.0:80'] },
  { name: 'Cluster traffic policy, endpoints not Ready', svc: svc(), endpoints: [ep('10.0.0.0:80', { ready: false }), ep('10.0.0.1:80', { ready: false })], cluster: [], local: null },
  { name: 'Cluster traffic policy, some endpoints are Ready', svc: svc(), endpoints: [ep('10.0.0.0:80', { ready: false }), ep('10.0.0.1:80')], cluster: ['10.0.0.1:80'], local: null },
  { name: 'Cluster traffic policy, all endpoints are terminating: serving ones are used', svc: svc(),
    endpoints: [ep('10.0.0.0:80', { ready: false, serving: true, terminating: true, isLocal: true }), ep('10.0.0.1:80', { ready: false, serving: true, terminating: true })],
    cluster: ['10.0.0.0:80', '10.0.0.1:80'], local: null },
  { name: 'terminating but not serving endpoints are never used', svc: svc(),
    endpoints: [ep('10.0.0.0:80', { ready: false, serving: false, terminating: true })], cluster: [], local: null },
  { name: 'iTP: Local, eTP: Cluster, some endpoints local', svc: svc({ internalPolicyLocal: true, nodePort: 8080 }),
    endpoints: [ep('10.0.0.0:80', { isLocal: true }), ep('10.0.0.1:80')], cluster: ['10.0.0.0:80', '10.0.0.1:80'], local: ['10.0.0.0:80'], all: ['10.0.0.0:80', '10.0.0.1:80'] },
  { name: 'iTP: Cluster, eTP: Local, some endpoints local', svc: svc({ externalPolicyLocal: true, nodePort: 8080 }),
    endpoints: [ep('10.0.0.0:80', { isLocal: true }), ep('10.0.0.1:80')], cluster: ['10.0.0.0:80', '10.0.0.1:80'], local: ['10.0.0.0:80'], all: ['10.0.0.0:80', '10.0.0.1:80'] },
  { name: 'iTP: Local, eTP: Local, all endpoints remote', svc: svc({ internalPolicyLocal: true, externalPolicyLocal: true, nodePort: 8080 }),
    endpoints: [ep('10.0.0.0:80'), ep('10.0.0.1:80')], cluster: ['10.0.0.0:80', '10.0.0.1:80'], local: [], all: ['10.0.0.0:80', '10.0.0.1:80'] },
  { name: 'iTP: Local, eTP: Local, all endpoints remote and terminating', svc: svc({ internalPolicyLocal: true, externalPolicyLocal: true, nodePort: 8080 }),
    endpoints: [ep('10.0.0.0:80', { ready: false, serving: true, terminating: true }), ep('10.0.0.1:80', { ready: false, serving: true, terminating: true })],
    cluster: ['10.0.0.0:80', '10.0.0.1:80'], local: [], all: ['10.0.0.0:80', '10.0.0.1:80'], onlyRemote: true },
  { name: 'iTP: Cluster, eTP: Local, with terminating endpoints', svc: svc({ externalPolicyLocal: true, nodePort: 8080 }),
    endpoints: [ep('10.0.0.0:80'), ep('10.0.0.1:80', { ready: false, serving: false, isLocal: true }), ep('10.0.0.2:80', { ready: false, serving: true, terminating: true, isLocal: true }), ep('10.0.0.3:80', { ready: false, serving: true, terminating: true })],
    cluster: ['10.0.0.0:80'], local: ['10.0.0.2:80'], all: ['10.0.0.0:80', '10.0.0.2:80'] },
  { name: 'externalTrafficPolicy ignored if not externally accessible', svc: svc({ externalPolicyLocal: true }),
    endpoints: [ep('10.0.0.0:80'), ep('10.0.0.1:80', { isLocal: true })], cluster: ['10.0.0.0:80', '10.0.0.1:80'], local: null },
  { name: 'no cluster endpoints for iTP:Local internal-only service', svc: svc({ internalPolicyLocal: true }),
    endpoints: [ep('10.0.0.0:80'), ep('10.0.0.1:80', { isLocal: true })], cluster: null, local: ['10.0.0.1:80'] },
  // Node hints (PreferSameNode), current kube-proxy.
  { name: 'node hints for every endpoint, one names this node: only that endpoint', zone: 'zone-a', nodeName: 'node-1', svc: svc(),
    endpoints: [ep('10.0.0.1:80', { nodes: ['node-1'], zones: ['zone-a'] }), ep('10.0.0.2:80', { nodes: ['node-2'], zones: ['zone-a'] }), ep('10.0.0.3:80', { nodes: ['node-3'], zones: ['zone-b'] })],
    cluster: ['10.0.0.1:80'], local: null },
  { name: 'node hints name other nodes only: zone hints apply', zone: 'zone-a', nodeName: 'node-9', svc: svc(),
    endpoints: [ep('10.0.0.1:80', { nodes: ['node-1'], zones: ['zone-a'] }), ep('10.0.0.2:80', { nodes: ['node-2'], zones: ['zone-a'] }), ep('10.0.0.3:80', { nodes: ['node-3'], zones: ['zone-b'] })],
    cluster: ['10.0.0.1:80', '10.0.0.2:80'], local: null },
  { name: 'PreferSameTrafficDistribution gate off: node hints ignored', zone: 'zone-a', nodeName: 'node-1', preferSame: false, svc: svc(),
    endpoints: [ep('10.0.0.1:80', { nodes: ['node-1'], zones: ['zone-a'] }), ep('10.0.0.2:80', { nodes: ['node-2'], zones: ['zone-a'] }), ep('10.0.0.3:80', { nodes: ['node-3'], zones: ['zone-b'] })],
    cluster: ['10.0.0.1:80', '10.0.0.2:80'], local: null },
  { name: 'an endpoint without node hints: zone hints apply', zone: 'zone-b', nodeName: 'node-1', svc: svc(),
    endpoints: [ep('10.0.0.1:80', { nodes: ['node-1'], zones: ['zone-a'] }), ep('10.0.0.3:80', { zones: ['zone-b'] })],
    cluster: ['10.0.0.3:80'], local: null },
  { name: 'topology plus local serving-terminating endpoints: merged', zone: 'zone-a', svc: svc({ externalPolicyLocal: true, nodePort: 30000 }),
    endpoints: [ep('10.0.0.1:80', { zones: ['zone-a'] }), ep('10.0.0.2:80', { zones: ['zone-b'] }), ep('10.0.0.9:80', { ready: false, serving: true, terminating: true, isLocal: true, zones: ['zone-b'] })],
    cluster: ['10.0.0.1:80'], local: ['10.0.0.9:80'], all: ['10.0.0.1:80', '10.0.0.9:80'] },
];

const names = (eps: EndpointInfo[] | null): string[] | null => (eps === null ? null : eps.map((e) => e.endpoint).sort());

describe('categorizeEndpoints (topology_test.go TestCategorizeEndpoints, current semantics)', () => {
  for (const tc of cases) {
    it(tc.name, () => {
      const labels: Record<string, string> = tc.zone === undefined ? {} : { 'topology.kubernetes.io/zone': tc.zone };
      const r = categorizeEndpoints(tc.endpoints, tc.svc, tc.nodeName ?? 'this-node', labels, { preferSameTrafficDistribution: tc.preferSame ?? true });
      if (tc.endpoints.length === 0) {
        expect(r).toEqual({ clusterEndpoints: null, localEndpoints: null, allReachableEndpoints: null, hasAnyEndpoints: false });
        return;
      }
      expect(names(r.clusterEndpoints)).toEqual(tc.cluster === null ? null : [...tc.cluster].sort());
      expect(names(r.localEndpoints)).toEqual(tc.local === null ? null : [...tc.local].sort());
      const all = tc.all ?? (tc.local === null ? tc.cluster : tc.cluster === null ? tc.local : null);
      expect(all, 'case must say allEndpoints').not.toBeNull();
      const got = names(r.allReachableEndpoints) ?? [];
      expect(got).toEqual([...all!].sort());
      expect(new Set(got).size).toBe(got.length);
      expect(r.hasAnyEndpoints).toBe(all!.length > 0 || tc.onlyRemote === true);
    });
  }

  it('is pure: the input list is not reordered or changed', () => {
    const input = [ep('10.0.0.2:80', { isLocal: true }), ep('10.0.0.1:80')];
    const copy = structuredClone(input);
    categorizeEndpoints(input, svc({ externalPolicyLocal: true, nodePort: 1 }), 'n');
    expect(input).toEqual(copy);
  });
});
