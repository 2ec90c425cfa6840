// render-nftables.ts — the `kube-proxy` table kube-proxy's nftables mode writes for one IP family's
// model, following pkg/proxy/nftables/proxier.go (setupNFTables and syncProxyRules, the release
// with cluster-ips-check and filter-output-post-dnat, before kubernetes#132456 renamed and
// re-prioritised the filter chains in v1.34) object for object: base chains hooked before
// and after DNAT, the service-ips / service-nodeports verdict maps, the no-endpoint and firewall
// maps, and per service port its service- / local- / external- / firewall- chains, endpoint- chains
// and ClientIP affinity- sets. The text is the table's state written as knftables writes objects
// ("add chain ip kube-proxy …"), in an order `nft -f` loads into an empty table: the table, every
// chain, set and map, then the rules, then the elements. Pure: returns text, never runs nft.
import { categorizeEndpoints } from './categorize.js';
import { nftNameBase } from './chain-names.js';
import { canonicalIP, cidrContains, formatCIDR, isLoopback, parseCIDR, parseIP } from './ip.js';
import { externallyAccessible, usesClusterEndpoints, usesLocalEndpoints, type EndpointInfo, type ProxyModel } from './model.js';
import type { IptablesOptions } from './render-iptables.js';
import { localDetectorOf, masqueradeMark, nodeIPs, nodePortAddresses } from './render-settings.js';

export type NftablesOptions = Pick<IptablesOptions,
  'nodeName' | 'topologyLabels' | 'nodeIPs' | 'hostAddresses' | 'localDetector' | 'clusterCIDR' | 'podCIDR'
  | 'masqueradeAll' | 'masqueradeBit' | 'masqueradeMark' | 'nodePortAddresses' | 'preferSameTrafficDistribution'> & {
  /** The Service CIDRs (ServiceCIDR objects / --service-cluster-ip-range); this family's get the
   *  "Drop traffic to unallocated ClusterIPs" rule. None: no such rule. */
  serviceCIDRs?: string[];
};

const NFT_TABLE = 'kube-proxy';

// Base chains: [name, type, hook, priority] — filtering runs on the pre-DNAT address (dstnat - 10),
// and once more after DNAT on output (dstnat + 10); knftables writes priorities as numbers.
const BASE_CHAINS: ReadonlyArray<readonly [string, string, string, number]> = [
  ['filter-prerouting', 'filter', 'prerouting', -110],
  ['filter-input', 'filter', 'input', -110],
  ['filter-forward', 'filter', 'forward', -110],
  ['filter-output', 'filter', 'output', -110],
  ['filter-output-post-dnat', 'filter', 'output', -90],
  ['nat-prerouting', 'nat', 'prerouting', -100],
  ['nat-output', 'nat', 'output', -100],
  ['nat-postrouting', 'nat', 'postrouting', 100],
];

// nftablesJumpChains: [target, from, condition].
const JUMP_CHAINS: ReadonlyArray<readonly [string, string, string]> = [
  ['nodeport-endpoints-check', 'filter-input', 'ct state new'],
  ['service-endpoints-check', 'filter-input', 'ct state new'],
  ['service-endpoints-check', 'filter-forward', 'ct state new'],
  ['service-endpoints-check', 'filter-output', 'ct state new'],
  ['firewall-check', 'filter-prerouting', 'ct state new'],
  ['firewall-check', 'filter-output', 'ct state new'],
  ['services', 'nat-output', ''],
  ['services', 'nat-prerouting', ''],
  ['masquerading', 'nat-postrouting', ''],
  ['cluster-ips-check', 'filter-forward', 'ct state new'],
  ['cluster-ips-check', 'filter-output-post-dnat', 'ct state new'],
];

/** Go's %q for the comments kube-proxy writes (ASCII text: JSON quoting is the same). */
const quoted = (s: string): string => JSON.stringify(s);

/** One table's objects as knftables' fake keeps them: rules in order per chain, elements by key. */
class NftTable {
  private readonly chains = new Map<string, { decl: string; rules: string[] }>();
  private readonly sets = new Map<string, { decl: string; elements: Map<string, string> }>();
  private readonly head: string;

  constructor(family: 'ip' | 'ip6') {
    this.head = `${family} ${NFT_TABLE}`;
  }

  /** add chain, once (a second add of a chain leaves the first as it is). */
  chain(name: string, props = ''): void {
    if (!this.chains.has(name)) this.chains.set(name, { decl: `add chain ${this.head} ${name}${props ? ` { ${props} }` : ''}`, rules: [] });
  }

  rule(chain: string, rule: string, comment?: string): void {
    const c = this.chains.get(chain);
    // kube-proxy's transaction fails on a rule for a chain it did not add; never the case for its own rules.
    if (!c) throw new Error(`nftables render: rule for chain ${chain}, which is not in the table`);
    c.rules.push(`add rule ${this.head} ${chain} ${rule}${comment === undefined ? '' : ` comment ${quoted(comment)}`}`);
  }

  /** add set / add map (`kind`), once. */
  set(kind: 'set' | 'map', name: string, props: string): void {
    if (!this.sets.has(name)) this.sets.set(name, { decl: `add ${kind} ${this.head} ${name} { ${props} }`, elements: new Map() });
  }

  /** add element: an element of the same key replaces the earlier one in its place. */
  element(set: string, key: string[], value?: string, comment?: string): void {
    const s = this.sets.get(set);
    if (!s) throw new Error(`nftables render: element for ${set}, which is not in the table`);
    const k = key.join(' . ');
    s.elements.set(k, `add element ${this.head} ${set} { ${k}${comment === undefined ? '' : ` comment ${quoted(comment)}`}${value === undefined ? '' : ` : ${value}`} }`);
  }

  /** delete set (an add then a delete leaves no set). */
  deleteSet(name: string): void {
    this.sets.delete(name);
  }

  /** The table as `nft -f` input: declarations first (chains, sets and maps by name), then rules, then elements. */
  text(): string {
    const byName = <V>(m: Map<string, V>): [string, V][] => [...m].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const chains = byName(this.chains), sets = byName(this.sets);
    const lines = [`add table ${this.head} { comment ${quoted('rules for kube-proxy')} ; }`];
    for (const [, c] of chains) lines.push(c.decl);
    for (const [, s] of sets) lines.push(s.decl);
    for (const [, c] of chains) lines.push(...c.rules);
    for (const [, s] of sets) lines.push(...s.elements.values());
    return `${lines.join('\n')}\n`;
  }
}

/** The local-traffic detector's nft words for one family (localdetector.go IfLocalNFT / IfNotLocalNFT). */
function nftDetector(opts: NftablesOptions, ipX: string, family: 4 | 6): { ifLocal: string; ifNotLocal: string } | null {
  const d = localDetectorOf(opts, family);
  if (d === null) return null;
  switch (d.mode) {
    case 'cidr': return { ifLocal: `${ipX} saddr ${d.cidr}`, ifNotLocal: `${ipX} saddr != ${d.cidr}` };
    // Interface names as iifname (a name need not exist when the rule loads; iif resolves an index).
    case 'bridge': return { ifLocal: `iifname ${d.interface}`, ifNotLocal: `iifname != ${d.interface}` };
    case 'interfacePrefix': return { ifLocal: `iifname ${d.prefix}*`, ifNotLocal: `iifname != ${d.prefix}*` };
  }
}

/**
 * The endpoint- / affinity- name base of endpoint `ip`:`port` under the service port `portName` of
 * Service `namespacedName` ("ns/name"), protocol in lower case (servicePortEndpointChainNameBase).
 */
export function nftEndpointBase(namespacedName: string, portName: string, protocol: string, ip: string, port: number): string {
  // Colons are not allowed in a chain name: an IPv6 address is written with dots.
  return nftNameBase(`${namespacedName}/${protocol}/${portName}__${ip.replaceAll(':', '.')}/${port}`);
}

/** Renders one full sync of one family: the kube-proxy table as a fresh `nft -f` file. */
export function renderNftables(model: ProxyModel, opts: NftablesOptions = {}): string {
  const family = model.family;
  const ipX = family === 6 ? 'ip6' : 'ip';
  const addrType = family === 6 ? 'ipv6_addr' : 'ipv4_addr';
  const noLocalhost = family === 6 ? 'ip6 daddr != ::1' : 'ip daddr != 127.0.0.0/8';
  const mark = masqueradeMark(opts);
  const nodeIPText = (opts.nodeIPs ?? []).find((s) => parseIP(s)?.family === family);
  const nodeIP = nodeIPText ? parseIP(nodeIPText) : null;
  const npa = nodePortAddresses(opts.nodePortAddresses ?? [], family, nodeIP);
  const detector = nftDetector(opts, ipX, family);
  const serviceCIDRs = (opts.serviceCIDRs ?? []).filter((c) => parseCIDR(c)?.family === family).join(',');
  const t = new NftTable(ipX);

  // setupNFTables
  for (const [name, type, hook, priority] of BASE_CHAINS) t.chain(name, `type ${type} hook ${hook} priority ${priority} ;`);
  for (const [to, from, cond] of JUMP_CHAINS) {
    t.chain(to);
    t.rule(from, `${cond ? `${cond} ` : ''}jump ${to}`);
  }
  for (const c of ['services', 'cluster-ips-check', 'masquerading', 'mark-for-masquerade']) t.chain(c);
  t.rule('mark-for-masquerade', `mark set mark or ${mark}`);
  t.rule('masquerading', `mark and ${mark} == 0 return`);
  t.rule('masquerading', `mark set mark xor ${mark}`);
  t.rule('masquerading', 'masquerade fully-random');
  t.set('set', 'cluster-ips', `type ${addrType} ; comment ${quoted('Active ClusterIPs')} ;`);
  t.rule('cluster-ips-check', `${ipX} daddr @cluster-ips reject`, 'Reject traffic to invalid ports of ClusterIPs');
  if (serviceCIDRs) t.rule('cluster-ips-check', `${ipX} daddr { ${serviceCIDRs} } drop`, 'Drop traffic to unallocated ClusterIPs');
  t.set('set', 'nodeport-ips', `type ${addrType} ; comment ${quoted('IPs that accept NodePort traffic')} ;`);
  if (npa.matchAll) t.deleteSet('nodeport-ips');
  else {
    const host = opts.hostAddresses ?? [...(opts.nodeIPs ?? []), '127.0.0.1', '::1'];
    // Loopback NodePorts are not supported in nftables mode: such an address is left out.
    for (const ip of nodeIPs(npa, host)) if (!isLoopback(parseIP(ip)!)) t.element('nodeport-ips', [ip]);
  }
  t.set('map', 'no-endpoint-services', `type ${addrType} . inet_proto . inet_service : verdict ; comment ${quoted('vmap to drop or reject packets to services with no endpoints')} ;`);
  t.set('map', 'no-endpoint-nodeports', `type inet_proto . inet_service : verdict ; comment ${quoted('vmap to drop or reject packets to service nodeports with no endpoints')} ;`);
  t.chain('reject-chain', `comment ${quoted('helper for @no-endpoint-services / @no-endpoint-nodeports')} ;`);
  t.rule('reject-chain', 'reject');
  t.rule('service-endpoints-check', `${ipX} daddr . meta l4proto . th dport vmap @no-endpoint-services`);
  t.rule('nodeport-endpoints-check', `${npa.matchAll ? noLocalhost : `${ipX} daddr @nodeport-ips`} meta l4proto . th dport vmap @no-endpoint-nodeports`);
  t.set('map', 'firewall-ips', `type ${addrType} . inet_proto . inet_service : verdict ; comment ${quoted('destinations that are subject to LoadBalancerSourceRanges')} ;`);
  t.chain('firewall-check');
  t.rule('firewall-check', `${ipX} daddr . meta l4proto . th dport vmap @firewall-ips`);
  t.set('map', 'service-ips', `type ${addrType} . inet_proto . inet_service : verdict ; comment ${quoted('ClusterIP, ExternalIP and LoadBalancer IP traffic')} ;`);
  t.set('map', 'service-nodeports', `type inet_proto . inet_service : verdict ; comment ${quoted('NodePort traffic')} ;`);
  t.rule('services', `${ipX} daddr . meta l4proto . th dport vmap @service-ips`);
  t.rule('services', `${npa.matchAll ? `fib daddr type local ${noLocalhost}` : `${ipX} daddr @nodeport-ips`} meta l4proto . th dport vmap @service-nodeports`);

  // syncProxyRules, service port by service port
  for (const sp of model.sortedServices()) {
    const protocol = sp.protocol.toLowerCase();
    const port = String(sp.port);
    const base = nftNameBase(`${sp.namespacedName}/${protocol}/${sp.portName}`);
    const clusterPolicyChain = `service-${base}`, localPolicyChain = `local-${base}`;
    const externalTrafficChain = `external-${base}`, fwChain = `firewall-${base}`;
    const cat = categorizeEndpoints(model.endpoints.get(sp.id) ?? [], sp, opts.nodeName ?? '', opts.topologyLabels ?? {}, {
      preferSameTrafficDistribution: opts.preferSameTrafficDistribution,
    });
    const clusterEndpoints = cat.clusterEndpoints ?? [], localEndpoints = cat.localEndpoints ?? [];
    const reachable = cat.allReachableEndpoints ?? [];
    const hasEndpoints = cat.hasAnyEndpoints;
    const names = new Map<EndpointInfo, string>();
    for (const ep of reachable) {
      names.set(ep, nftEndpointBase(sp.namespacedName, sp.portName, protocol, ep.ip, ep.port));
      t.chain(`endpoint-${names.get(ep)!}`);
    }
    const usesClusterPolicyChain = clusterEndpoints.length > 0 && usesClusterEndpoints(sp);
    if (usesClusterPolicyChain) t.chain(clusterPolicyChain);
    const usesLocalPolicyChain = localEndpoints.length > 0 && usesLocalEndpoints(sp);
    if (usesLocalPolicyChain) t.chain(localPolicyChain);
    const internalTrafficChain = sp.internalPolicyLocal ? localPolicyChain : clusterPolicyChain;
    const hasInternalEndpoints = hasEndpoints && !(sp.internalPolicyLocal && localEndpoints.length === 0);
    const externalPolicyChain = sp.externalPolicyLocal ? localPolicyChain : clusterPolicyChain;
    const hasExternalEndpoints = hasEndpoints && !(sp.externalPolicyLocal && localEndpoints.length === 0);
    // Built even without external endpoints: its short-circuit rules serve pods and the node.
    const usesExternalTrafficChain = hasEndpoints && externallyAccessible(sp);
    if (usesExternalTrafficChain) t.chain(externalTrafficChain);
    // No endpoints at all: reject; none for this kind of traffic under a Local policy: drop.
    const noEndpoints = hasEndpoints ? 'drop' : 'goto reject-chain';

    const clusterIP = canonicalIP(sp.clusterIP) ?? sp.clusterIP;
    t.element('cluster-ips', [clusterIP]);
    if (hasInternalEndpoints) t.element('service-ips', [clusterIP, protocol, port], `goto ${internalTrafficChain}`);
    else t.element('no-endpoint-services', [clusterIP, protocol, port], noEndpoints, sp.name);

    for (const text of sp.externalIPs) {
      const ip = canonicalIP(text) ?? text;
      if (hasEndpoints) t.element('service-ips', [ip, protocol, port], `goto ${externalTrafficChain}`);
      if (!hasExternalEndpoints) t.element('no-endpoint-services', [ip, protocol, port], noEndpoints, sp.name);
    }

    const vips = sp.loadBalancerVIPs.map((s) => canonicalIP(s) ?? s);
    const usesFWChain = vips.length > 0 && sp.loadBalancerSourceRanges.length > 0;
    if (usesFWChain) {
      t.chain(fwChain);
      const sources: string[] = [];
      let allowFromNode = false;
      for (const text of sp.loadBalancerSourceRanges) {
        const c = parseCIDR(text);
        if (!c) continue;
        sources.push(formatCIDR(c));
        if (nodeIP && cidrContains(c, nodeIP)) allowFromNode = true;
      }
      // A VIP often loops back to the node with itself as the source: let that through too.
      if (allowFromNode) sources.push(...vips);
      t.rule(fwChain, `${ipX} saddr != { ${sources.join(' , ')} } drop`);
    }
    for (const ip of vips) {
      if (hasEndpoints) t.element('service-ips', [ip, protocol, port], `goto ${externalTrafficChain}`);
      if (usesFWChain) t.element('firewall-ips', [ip, protocol, port], `goto ${fwChain}`);
    }
    if (!hasExternalEndpoints) for (const ip of vips) t.element('no-endpoint-services', [ip, protocol, port], noEndpoints, sp.name);

    if (sp.nodePort !== 0) {
      // NodePorts are not subject to loadBalancerSourceRanges.
      if (hasEndpoints) t.element('service-nodeports', [protocol, String(sp.nodePort)], `goto ${externalTrafficChain}`);
      if (!hasExternalEndpoints) t.element('no-endpoint-nodeports', [protocol, String(sp.nodePort)], noEndpoints, sp.name);
    }

    if (hasInternalEndpoints) {
      const matchVIP = `${ipX} daddr ${clusterIP} ${protocol} dport ${port}`;
      if (opts.masqueradeAll) t.rule(internalTrafficChain, `${matchVIP} jump mark-for-masquerade`);
      // Off-cluster traffic to a ClusterIP may bounce off-node: masquerade it.
      else if (detector) t.rule(internalTrafficChain, `${matchVIP} ${detector.ifNotLocal} jump mark-for-masquerade`);
    }

    if (usesExternalTrafficChain) {
      if (!sp.externalPolicyLocal) t.rule(externalTrafficChain, 'jump mark-for-masquerade');
      else {
        if (detector) t.rule(externalTrafficChain, `${detector.ifLocal} goto ${clusterPolicyChain}`, 'short-circuit pod traffic');
        t.rule(externalTrafficChain, 'fib saddr type local jump mark-for-masquerade', 'masquerade local traffic');
        t.rule(externalTrafficChain, `fib saddr type local goto ${clusterPolicyChain}`, 'short-circuit local traffic');
      }
      if (hasExternalEndpoints) t.rule(externalTrafficChain, `goto ${externalPolicyChain}`);
    }

    const affinity = sp.sessionAffinity === 'ClientIP';
    if (affinity) {
      for (const ep of reachable) t.set('set', `affinity-${names.get(ep)!}`, `type ${addrType} ; flags dynamic,timeout ; timeout ${sp.stickyMaxAgeSeconds}s ;`);
    }
    const toEndpoints = (chain: string, eps: readonly EndpointInfo[]): void => {
      if (affinity) for (const ep of eps) t.rule(chain, `${ipX} saddr @affinity-${names.get(ep)!} goto endpoint-${names.get(ep)!}`);
      const vmap = eps.map((ep, i) => `${i} : goto endpoint-${names.get(ep)!}`).join(' , ');
      t.rule(chain, `numgen random mod ${eps.length} vmap { ${vmap} }`);
    };
    if (usesClusterPolicyChain) toEndpoints(clusterPolicyChain, clusterEndpoints);
    if (usesLocalPolicyChain) toEndpoints(localPolicyChain, localEndpoints);

    for (const ep of reachable) {
      const chain = `endpoint-${names.get(ep)!}`;
      // Hairpin: a pod reaching itself through the Service is masqueraded.
      t.rule(chain, `${ipX} saddr ${ep.ip} jump mark-for-masquerade`);
      if (affinity) t.rule(chain, `update @affinity-${names.get(ep)!} { ${ipX} saddr }`);
      t.rule(chain, `meta l4proto ${protocol} dnat to ${ep.endpoint}`);
    }
  }
  return t.text();
}

