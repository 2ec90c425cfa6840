// render-direct.ts — the direct mode's renderer: one service port of the shared model becomes one
// entry of the core's direct service table (host-node/core/svc-config.ts DirectService), carrying
// exactly what kube-proxy's iptables rules decide for it (render-iptables.ts is the reference):
// the addresses that reach it (cluster IP, externalIPs, VIP-mode load-balancer IPs, the node port),
// the Cluster and Local endpoint lists from categorizeEndpoints, whether any endpoint exists
// (REJECT otherwise), the traffic policies, --masquerade-all, loadBalancerSourceRanges (with the
// node's own-VIP sources kube-proxy adds) and ClientIP affinity. Also where node ports are
// reached (--nodeport-addresses). Pure: no text, no core, no clock.
import { categorizeEndpoints, type CategorizedEndpoints } from './categorize.js';
import { canonicalIP, cidrContains, formatCIDR, parseCIDR, parseIP, type Family } from './ip.js';
import type { EndpointInfo, ServicePortInfo } from './model.js';
import { nodePortAddresses, nodePortHostAddresses, type IptablesOptions } from './render-iptables.js';
import { putFrameBound, type DirectService, type FrontendKind, type NodePortReach } from '../core/svc-config.js';

/** The kube-proxy settings the direct mode honours (the same fields as the iptables renderer's). */
export type DirectRenderOptions = Pick<IptablesOptions,
  'nodeName' | 'topologyLabels' | 'nodeIPs' | 'hostAddresses' | 'masqueradeAll' | 'nodePortAddresses' |
  'localhostNodePorts' | 'preferSameTrafficDistribution'>;

const NO_ENDPOINTS: EndpointInfo[] = Object.freeze([]) as unknown as EndpointInfo[];
const NO_RANGES: string[] = Object.freeze([]) as unknown as string[];
const NO_LABELS: Record<string, string> = {};

/** A DirectService to fill: renderDirectService's `into`. */
export function blankDirectService(): DirectService {
  return {
    name: '', family: 4, protocol: 'TCP', hostId: 0, frontends: [], cluster: NO_ENDPOINTS, local: NO_ENDPOINTS, sourceRanges: NO_RANGES,
    hasEndpoints: false, masqueradeAll: false, internalLocal: false, externalLocal: false, firewall: false, affinityMs: 0,
  };
}

/** Sets frontend `at` of `frontends` (reusing the object there, if any); returns the count after it. */
function setFrontend(frontends: DirectService['frontends'], at: number, kind: FrontendKind, ip: string | undefined, port: number): number {
  const fe = frontends[at];
  if (fe === undefined) frontends.push(ip === undefined ? { kind, port } : { kind, ip, port });
  else { fe.kind = kind; fe.ip = ip; fe.port = port; }
  return at + 1;
}

/** Categorize's answer for `into` (filled anew by each renderDirectService call). */
const CATEGORIZED: CategorizedEndpoints = { clusterEndpoints: null, localEndpoints: null, allReachableEndpoints: null, hasAnyEndpoints: false };

/**
 * One service port of one family as the direct table holds it; filled into `into` when given (a
 * full sync renders 20,000 of them, each encoded before the next is rendered: no object per
 * service), else a new object.
 */
export function renderDirectService(sp: ServicePortInfo, endpoints: readonly EndpointInfo[], opts: DirectRenderOptions, hostId: number, into?: DirectService): DirectService {
  const cat = categorizeEndpoints(endpoints, sp, opts.nodeName ?? '', opts.topologyLabels ?? NO_LABELS, opts, into ? CATEGORIZED : undefined);
  const hasEndpoints = cat.hasAnyEndpoints;
  // KUBE-FW exists only with endpoints, VIPs and source ranges (else no LB filtering at all).
  const firewall = hasEndpoints && sp.loadBalancerVIPs.length > 0 && sp.loadBalancerSourceRanges.length > 0;
  const sourceRanges: string[] = firewall ? [] : NO_RANGES;
  if (firewall) {
    const nodeIPText = (opts.nodeIPs ?? []).find((s) => parseIP(s)?.family === sp.family);
    const nodeIP = nodeIPText ? parseIP(nodeIPText) : null;
    let allowFromNode = false;
    // Addresses as current kube-proxy writes them, parsed (a sloppy "010.1.0.0/16" is 10.1.0.0/16).
    for (const src of sp.loadBalancerSourceRanges) {
      const c = parseCIDR(src);
      sourceRanges.push(c ? formatCIDR(c) : src);
      if (c && nodeIP && cidrContains(c, nodeIP)) allowFromNode = true;
    }
    // A node talking to a VIP it hosts loops back with the VIP as source (proxier.go).
    if (allowFromNode) for (const vip of sp.loadBalancerVIPs) sourceRanges.push(canonicalIP(vip) ?? vip);
  }
  const svc = into ?? blankDirectService();
  // kube-proxy's KUBE-SERVICES order: cluster IP, external IPs, LB IPs; an address listed twice
  // matches its first rule.
  const frontends = svc.frontends;
  let count = setFrontend(frontends, 0, 'cluster', sp.clusterIP, sp.port);
  if (sp.externalIPs.length > 0 || sp.loadBalancerVIPs.length > 0) {
    const seen = new Set<string>([sp.clusterIP]);
    const add = (kind: 'external' | 'loadBalancer', text: string) => {
      const key = canonicalIP(text) ?? text;
      if (seen.has(key)) return;
      seen.add(key);
      count = setFrontend(frontends, count, kind, key, sp.port);
    };
    for (const ip of sp.externalIPs) add('external', ip);
    for (const ip of sp.loadBalancerVIPs) add('loadBalancer', ip);
  }
  if (sp.nodePort !== 0) count = setFrontend(frontends, count, 'nodePort', undefined, sp.nodePort);
  // A length store calls into the runtime even when the length stays (it nearly always does).
  if (frontends.length !== count) frontends.length = count;
  svc.name = sp.name;
  svc.family = sp.family;
  svc.protocol = sp.protocol as DirectService['protocol'];
  svc.hostId = hostId;
  // Endpoint infos are { ip, port } and more: the lists categorize made, as they are.
  svc.cluster = cat.clusterEndpoints ?? NO_ENDPOINTS;
  svc.local = cat.localEndpoints ?? NO_ENDPOINTS;
  svc.sourceRanges = sourceRanges;
  svc.hasEndpoints = hasEndpoints;
  svc.masqueradeAll = opts.masqueradeAll ?? false;
  svc.internalLocal = sp.internalPolicyLocal;
  svc.externalLocal = sp.externalPolicyLocal;
  svc.firewall = firewall;
  svc.affinityMs = sp.sessionAffinity === 'ClientIP' ? sp.stickyMaxAgeSeconds * 1000 : 0;
  return svc;
}

/**
 * The most frame bytes a put of `sp` with `endpoints` endpoints can take (renderDirectService
 * makes at most the cluster IP, each external and VIP address and a node port as frontends, each
 * endpoint once per policy list, and each source range and VIP as sources).
 */
export function directPutBound(sp: ServicePortInfo, endpoints: number): number {
  const vips = sp.loadBalancerVIPs.length;
  return putFrameBound(2 + sp.externalIPs.length + vips, 2 * endpoints, sp.loadBalancerSourceRanges.length + vips);
}

/**
 * Where this family's node ports are reached, as kube-proxy's KUBE-SERVICES → KUBE-NODEPORTS jump
 * decides it: every LOCAL address (--nodeport-addresses unset or 0.0.0.0/0; IPv4 loopback only
 * with localhost NodePorts, never ::1), or the host addresses inside the given CIDRs.
 */
export function nodePortReach(family: Family, opts: DirectRenderOptions): NodePortReach {
  const nodeIPText = (opts.nodeIPs ?? []).find((s) => parseIP(s)?.family === family);
  const npa = nodePortAddresses(opts.nodePortAddresses ?? [], family, nodeIPText ? parseIP(nodeIPText) : null);
  const localhost = (opts.localhostNodePorts ?? true) && family === 4 && npa.containsIPv4Loopback;
  if (npa.matchAll) return { family, all: true, loopback: localhost, addresses: [] };
  return { family, all: false, loopback: false, addresses: nodePortHostAddresses(npa, opts, family, localhost) };
}
