// categorize.ts — which endpoints a service port may use from this node: one pure function shared by
// every mode, following kube-proxy's CategorizeEndpoints (pkg/proxy/topology.go) step by step.
// Never looks at packets, rules or the clock.
//
// - "Usable" means Ready; when none is, Serving+Terminating endpoints are used instead, decided
//   separately for Cluster and for Local policy.
// - Topology applies to Cluster endpoints only. Current kube-proxy does not read the Service's
//   trafficDistribution (PreferClose / PreferSameZone / PreferSameNode): the EndpointSlice
//   controller turns it into hints, and kube-proxy follows hints when EVERY ready endpoint carries
//   one and at least one names this node (forNodes, PreferSameTrafficDistribution gate) or this
//   node's zone (forZones). Otherwise all ready endpoints are used.
import type { EndpointInfo, ServicePortInfo } from './model.js';
import { usesClusterEndpoints, usesLocalEndpoints, LABEL_TOPOLOGY_ZONE } from './model.js';

export interface CategorizeOptions {
  /** features.PreferSameTrafficDistribution (on by default in current releases). */
  preferSameTrafficDistribution?: boolean;
}

export interface CategorizedEndpoints {
  /** Endpoints for Cluster traffic policy; null when the port never uses Cluster policy. */
  clusterEndpoints: EndpointInfo[] | null;
  /** Endpoints for Local traffic policy; null when the port never uses Local policy. */
  localEndpoints: EndpointInfo[] | null;
  /** Union of the two (each endpoint once): the endpoints this node may DNAT to. */
  allReachableEndpoints: EndpointInfo[] | null;
  /** Whether any usable endpoint exists anywhere in the cluster (may be true with none reachable). */
  hasAnyEndpoints: boolean;
}

export type TopologyMode = '' | 'PreferSameZone' | 'PreferSameNode';

/** topologyModeFromHints (topology.go). */
export function topologyModeFromHints(endpoints: EndpointInfo[], nodeName: string, zone: string, opts: CategorizeOptions = {}): TopologyMode {
  let hasReady = false;
  let hasForNode = false;
  let allNodeHints = true;
  let hasForZone = false;
  let allZoneHints = true;
  // Indexed: every sync runs this for every service port (a for-of may make an iterator each time).
  for (let i = 0; i < endpoints.length; i++) {
    const ep = endpoints[i]!;
    if (!ep.ready) continue;
    hasReady = true;
    if (!ep.nodeHints || ep.nodeHints.length === 0) allNodeHints = false;
    else if (ep.nodeHints.includes(nodeName)) hasForNode = true;
    if (!ep.zoneHints || ep.zoneHints.length === 0) allZoneHints = false;
    else if (ep.zoneHints.includes(zone)) hasForZone = true;
  }
  if (!hasReady) return '';
  if ((opts.preferSameTrafficDistribution ?? true) && allNodeHints && hasForNode) return 'PreferSameNode';
  if (allZoneHints && hasForZone) return 'PreferSameZone';
  return '';
}

/** availableForTopology: no fallback here; the fallback happened when the mode was chosen. */
function availableForTopology(ep: EndpointInfo, mode: TopologyMode, nodeName: string, zone: string): boolean {
  switch (mode) {
    case '': return true;
    case 'PreferSameNode': return ep.nodeHints !== null && ep.nodeHints.includes(nodeName);
    case 'PreferSameZone': return ep.zoneHints !== null && ep.zoneHints.includes(zone);
  }
}

const isReady = (ep: EndpointInfo): boolean => ep.ready;
const isServingTerminating = (ep: EndpointInfo): boolean => ep.serving && ep.terminating;
const isLocalReady = (ep: EndpointInfo): boolean => ep.isLocal && ep.ready;
const isLocalServingTerminating = (ep: EndpointInfo): boolean => ep.isLocal && ep.serving && ep.terminating;

/** The endpoints `keep` accepts: `eps` itself when that is all of them (the usual case), else a new list. */
function only(eps: EndpointInfo[], keep: (ep: EndpointInfo) => boolean): EndpointInfo[] {
  let i = 0;
  while (i < eps.length && keep(eps[i]!)) i++;
  if (i === eps.length) return eps;
  const out = eps.slice(0, i);
  for (i++; i < eps.length; i++) if (keep(eps[i]!)) out.push(eps[i]!);
  return out;
}

type PortPolicy = Pick<ServicePortInfo, 'internalPolicyLocal' | 'externalPolicyLocal' | 'nodePort' | 'loadBalancerVIPs' | 'externalIPs'>;

/**
 * CategorizeEndpoints. `topologyLabels` are this node's labels (only the zone label is read);
 * `nodeName` is this node's name, used for node hints. The answer is filled into `into` when
 * given (a caller that reads it before the next call), else a new object.
 */
export function categorizeEndpoints(
  endpoints: readonly EndpointInfo[],
  svc: PortPolicy,
  nodeName: string,
  topologyLabels: Record<string, string> = {},
  opts: CategorizeOptions = {},
  into?: CategorizedEndpoints,
): CategorizedEndpoints {
  const result: CategorizedEndpoints = into ?? { clusterEndpoints: null, localEndpoints: null, allReachableEndpoints: null, hasAnyEndpoints: false };
  if (into) {
    into.clusterEndpoints = into.localEndpoints = into.allReachableEndpoints = null;
    into.hasAnyEndpoints = false;
  }
  if (endpoints.length === 0) return result;
  const sp = svc as ServicePortInfo;
  // Only read; lists handed out may be `endpoints` itself (when every endpoint qualifies), and
  // are never written to.
  const eps = endpoints as EndpointInfo[];
  let mode: TopologyMode = '';
  let useServingTerminating = false;

  if (usesClusterEndpoints(sp)) {
    const zone = topologyLabels[LABEL_TOPOLOGY_ZONE] ?? '';
    mode = topologyModeFromHints(eps, nodeName, zone, opts);
    let cluster = mode === '' ? only(eps, isReady) : eps.filter((ep) => ep.ready && availableForTopology(ep, mode, nodeName, zone));
    // No ready endpoint for this topology means none anywhere (the mode would be "" otherwise),
    // so fall back to serving+terminating endpoints, topology ignored.
    if (cluster.length === 0) cluster = only(eps, isServingTerminating);
    result.clusterEndpoints = cluster;
    if (cluster.length > 0) result.hasAnyEndpoints = true;
  }

  if (!usesLocalEndpoints(sp)) {
    result.allReachableEndpoints = result.clusterEndpoints;
    return result;
  }

  let localReady = false;
  let localServingTerminating = false;
  for (let i = 0; i < eps.length; i++) {
    const ep = eps[i]!;
    if (ep.ready) {
      result.hasAnyEndpoints = true;
      if (ep.isLocal) localReady = true;
    } else if (ep.serving && ep.terminating) {
      result.hasAnyEndpoints = true;
      if (ep.isLocal) localServingTerminating = true;
    }
  }
  if (localReady) {
    result.localEndpoints = only(eps, isLocalReady);
  } else if (localServingTerminating) {
    useServingTerminating = true;
    result.localEndpoints = only(eps, isLocalServingTerminating);
  } else {
    // Go leaves this nil; callers only ever take its length, and [] says "uses Local, has none".
    result.localEndpoints = [];
  }

  if (!usesClusterEndpoints(sp)) {
    result.allReachableEndpoints = result.localEndpoints;
    return result;
  }
  if (mode === '' && !useServingTerminating) {
    // Local holds only ready endpoints and Cluster holds every ready one: Cluster covers Local.
    result.allReachableEndpoints = result.clusterEndpoints;
    return result;
  }
  // Cluster may hold remote endpoints Local lacks; Local may hold terminating or topologically
  // excluded local endpoints Cluster lacks. Merge, each endpoint string once (Go uses a map; we
  // keep first-seen order for determinism).
  const merged = new Map<string, EndpointInfo>();
  for (const ep of result.clusterEndpoints ?? []) merged.set(ep.endpoint, ep);
  for (const ep of result.localEndpoints) merged.set(ep.endpoint, ep);
  result.allReachableEndpoints = [...merged.values()];
  return result;
}
