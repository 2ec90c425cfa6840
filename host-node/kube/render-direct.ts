// render-direct.ts — the direct mode's renderer: one service port of the shared model becomes one
// entry of the core's direct service table (host-node/core/svc-config.ts DirectService), carrying
// exactly what kube-proxy's iptables rules decide for it (render-iptables.ts is the reference):
// the addresses that reach it (cluster IP, externalIPs, VIP-mode load-balancer IPs, the node port),
// the Cluster and Local endpoint lists from categorizeEndpoints, whether any endpoint exists
// (REJECT otherwise), the traffic policies, --masquerade-all, loadBalancerSourceRanges (with the
// node's own-VIP sources kube-proxy adds) and ClientIP affinity. Also where node ports are
// reached (--nodeport-addresses). Pure: no text, no core, no clock.
import { categorizeEndpoints } from './categorize.js';
import { canonicalIP, cidrContains, parseCIDR, parseIP, type Family } from './ip.js';
import type { EndpointInfo, ServicePortInfo } from './model.js';
import { nodePortAddresses, nodePortHostAddresses, type IptablesOptions } from './render-iptables.js';
import { putFrameBound, type DirectService, type NodePortReach } from '../core/svc-config.js';

/** The kube-proxy settings the direct mode honours (the same fields as the iptables renderer's). */
export type DirectRenderOptions = Pick<IptablesOptions,
  'nodeName' | 'topologyLabels' | 'nodeIPs' | 'hostAddresses' | 'masqueradeAll' | 'nodePortAddresses' |
  'localhostNodePorts' | 'preferSameTrafficDistribution'>;

const NO_ENDPOINTS: EndpointInfo[] = Object.freeze([]) as unknown as EndpointInfo[];
const NO_RANGES: string[] = Object.freeze([]) as unknown as string[];
const NO_LABELS: Record<string, string> = {};

/** One service port of one family as the direct table holds it. */
export function renderDirectService(sp: ServicePortInfo, endpoints: readonly EndpointInfo[], opts: DirectRenderOptions, hostId: number): DirectService {
  const cat = categorizeEndpoints(endpoints, sp, opts.nodeName ?? '', opts.topologyLabels ?? NO_LABELS, opts);
  const hasEndpoints = cat.hasAnyEndpoints;
  // KUBE-FW exists only with endpoints, VIPs and source ranges (else no LB filtering at all).
  const firewall = hasEndpoints && sp.loadBalancerVIPs.length > 0 && sp.loadBalancerSourceRanges.length > 0;
  const sourceRanges: string[] = firewall ? [] : NO_RANGES;
  if (firewall) {
    const nodeIPText = (opts.nodeIPs ?? []).find((s) => parseIP(s)?.family === sp.family);
    const nodeIP = nodeIPText ? parseIP(nodeIPText) : null;
    let allowFromNode = false;
    for (const src of sp.loadBalancerSourceRanges) {
      sourceRanges.push(src);
      const c = parseCIDR(src);
      if (c && nodeIP && cidrContains(c, nodeIP)) allowFromNode = true;
    }
    // A node talking to a VIP it hosts loops back with the VIP as source (proxier.go).
    if (allowFromNode) sourceRanges.push(...sp.loadBalancerVIPs);
  }
  // kube-proxy's KUBE-SERVICES order: cluster IP, external IPs, LB IPs; an address listed twice
  // matches its first rule.
  const frontends: DirectService['frontends'] = [{ kind: 'cluster', ip: sp.clusterIP, port: sp.port }];
  if (sp.externalIPs.length > 0 || sp.loadBalancerVIPs.length > 0) {
    const seen = new Set<string>([sp.clusterIP]);
    const add = (kind: 'external' | 'loadBalancer', text: string) => {
      const key = canonicalIP(text) ?? text;
      if (seen.has(key)) return;
      seen.add(key);
      frontends.push({ kind, ip: text, port: sp.port });
    };
    for (const ip of sp.externalIPs) add('external', ip);
    for (const ip of sp.loadBalancerVIPs) add('loadBalancer', ip);
  }
  if (sp.nodePort !== 0) frontends.push({ kind: 'nodePort', port: sp.nodePort });
  return {
    name: sp.name,
    family: sp.family,
    protocol: sp.protocol as DirectService['protocol'],
    hostId,
    frontends,
    // Endpoint infos are { ip, port } and more: the lists categorize made, as they are.
    cluster: cat.clusterEndpoints ?? NO_ENDPOINTS,
    local: cat.localEndpoints ?? NO_ENDPOINTS,
    sourceRanges,
    hasEndpoints,
    masqueradeAll: opts.masqueradeAll ?? false,
    internalLocal: sp.internalPolicyLocal,
    externalLocal: sp.externalPolicyLocal,
    firewall,
    affinityMs: sp.sessionAffinity === 'ClientIP' ? sp.stickyMaxAgeSeconds * 1000 : 0,
  };
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
