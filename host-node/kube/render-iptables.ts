// render-iptables.ts — the iptables-restore payload kube-proxy's iptables mode writes for one IP
// family's model, following pkg/proxy/iptables/proxier.go syncProxyRules rule for rule: the filter
// and nat tables, KUBE-SERVICES / KUBE-EXTERNAL-SERVICES / KUBE-NODEPORTS / KUBE-FORWARD /
// KUBE-PROXY-FIREWALL / KUBE-POSTROUTING / KUBE-MARK-MASQ (+ KUBE-FIREWALL with localhost
// NodePorts), and per service port KUBE-SVC/SVL/EXT/FW/SEP chains. A partial sync rewrites only
// the chains of changed Services (load it with --noflush, as kube-proxy does) and deletes stale
// chains with -X. Two eras: 'v1.28' and 'current' (nfacct counters, canonical IP text, SNAT to
// node IP, tcp_be_liberal). Pure: returns text, never runs iptables. kube-proxy's canary chain
// (KUBE-PROXY-CANARY) is created by its monitor outside this payload, so it is not here either.
import { categorizeEndpoints } from './categorize.js';
import { endpointChainName, isServiceChainName, portChainNames } from './chain-names.js';
import { canonicalIP, cidrContains, formatCIDR, formatIP, isLoopback, parseCIDR, parseIP } from './ip.js';
import { allowsAnySource, detectorFor, masqueradeMark, nodePortAddresses, nodePortHostAddresses, probability, type LocalDetector } from './render-settings.js';

export { detectorFor, formatFixed, masqueradeMark, nodeIPs, nodePortAddresses, nodePortHostAddresses, probability } from './render-settings.js';

const NO_RANGES: readonly string[] = [];
export type { LocalDetector, NodePortAddresses } from './render-settings.js';
import { externallyAccessible, usesClusterEndpoints, usesLocalEndpoints, type EndpointInfo, type ProxyModel, type ServicePortInfo } from './model.js';

export type Era = 'v1.28' | 'current';


export interface IptablesOptions {
  /** Rule text of that kube-proxy era; default 'current'. */
  era?: Era;
  /** This node's name (topology node hints). */
  nodeName?: string;
  /** This node's labels (topology zone). */
  topologyLabels?: Record<string, string>;
  /** This node's IPs; the first of the model's family is "the node IP" (LB source-range self rule, SNAT). */
  nodeIPs?: string[];
  /** Addresses on the host's interfaces, for nodePortAddresses; default nodeIPs + 127.0.0.1 + ::1. */
  hostAddresses?: string[];
  /** Explicit local-traffic detector; otherwise built from clusterCIDR, then podCIDR, else none. */
  localDetector?: LocalDetector;
  clusterCIDR?: string;
  podCIDR?: string;
  masqueradeAll?: boolean;
  /** Default 14 → mark "0x00004000" (fmt "%#08x"); a value outside 0-31 falls back to 14. */
  masqueradeBit?: number;
  /** Overrides the mark text (kube-proxy's unit tests use "0x4000"). */
  masqueradeMark?: string;
  /** --nodeport-addresses CIDRs (other family ignored; "primary" = the node IP). Empty = all. */
  nodePortAddresses?: string[];
  /** --iptables-localhost-nodeports (default true; IPv4 only, and only when 127.0.0.1 is a nodeport address). */
  localhostNodePorts?: boolean;
  /** iptables supports --random-fully on MASQUERADE. */
  randomFully?: boolean;
  /** current era: nfacct counters exist (default true). */
  nfacct?: boolean;
  /** current era: nf_conntrack_tcp_be_liberal is set, so no INVALID drop rule. */
  conntrackTCPLiberal?: boolean;
  /** current era: SNAT to the node IP instead of MASQUERADE. */
  snatNodeInternalIP?: boolean;
  /** Endpoint count above which comments are dropped (largeClusterEndpointsThreshold = 1000). */
  largeClusterEndpointsThreshold?: number;
  preferSameTrafficDistribution?: boolean;
}

export interface SyncRequest {
  /** Services ("ns/name") changed since the last sync; null/absent = full sync. */
  changedServices?: ReadonlySet<string> | null;
  /** Chains present in the nat table now (iptables-save); stale service chains among them get -X. */
  existingNatChains?: Iterable<string>;
  /** In large-cluster mode kube-proxy deletes stale chains only once per sync period; set this then. */
  cleanupStaleChains?: boolean;
  /** The `shared` of the render now live: a partial sync's `liveText` leaves out a table's shared
   *  chains when their rules equal these. */
  previous?: SharedChains;
}

/** The rules of the chains every Service writes into (KUBE-SERVICES, KUBE-NODEPORTS, the filter
 *  table's chains, and the constant KUBE-POSTROUTING / KUBE-MARK-MASQ), in text order, and what
 *  the next partial sync compares with: the service ports rendered (the model's sorted list), the
 *  lines and context no Service writes, the endpoint total. */
export interface SharedChains {
  readonly filterChains: readonly string[];
  readonly filterRules: readonly string[];
  readonly nat: readonly string[];
  readonly services: readonly ServicePortInfo[];
  readonly frame: string;
  readonly totalEndpoints: number;
  readonly largeClusterMode: boolean;
  /** The nat rules the ruleset holds after this sync (natRules of its render). */
  readonly natTotal: number;
}

export interface IptablesRender {
  /** kube-proxy's payload (joined when first read). */
  readonly text: string;
  /**
   * What a ruleset that holds `previous` needs for the same result with --noflush: `text` less
   * each table whose shared chains are unchanged, down to the changed Services' own chains and
   * the -X of stale ones. At 20,000 Services a one-Service sync rewrites KUBE-SERVICES whole in
   * `text` (megabytes); this leaves it alone. `text` itself on full syncs or without `previous`.
   */
  readonly liveText: string;
  readonly shared: SharedChains;
  full: boolean;
  /** Every service chain the rules use (including ones a partial sync did not rewrite). */
  activeNatChains: Set<string>;
  deletedChains: string[];
  largeClusterMode: boolean;
  /** Rules in the filter table (rewritten whole every sync). */
  filterRules: number;
  /**
   * Rules in the nat table after this sync, the chains a partial sync left as they were included
   * (kube-proxy's iptables_total); natRulesWritten: those the sync wrote (its iptables_last).
   */
  natRules: number;
  natRulesWritten: number;
}

/** The nat chains every sync's payload declares (so flushes), whatever changed. */
export const SHARED_NAT_CHAINS: readonly string[] = ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ'];
/**
 * V8 keeps a template literal's result as a tree of its pieces until something reads it; reading
 * a character flattens it. Done while the lines are young, a full sync at 20,000 Services keeps
 * its ~230k lines as plain strings: about half the garbage collector's work and memory of the trees.
 */
function flatten(lines: string[], from: number): number {
  let x = 0;
  for (let i = from; i < lines.length; i++) x |= lines[i]!.charCodeAt(0);
  return x;
}
/** Element-wise equal (lines kept from the last render are the same strings: a pointer compare). */
const sameLines = (a: readonly string[], b: readonly string[]): boolean => {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
};
const MUST_BE_LAST = '"kubernetes service nodeports; NOTE: this must be the last rule in this chain"';
const chainLine = (c: string): string => `:${c} - [0:0]`;

// What an unchanged service port writes into the shared chains (KUBE-SERVICES, KUBE-NODEPORTS,
// KUBE-EXTERNAL-SERVICES, KUBE-PROXY-FIREWALL), which of its chains are active and how many rules
// its own chains hold: a partial sync writes those lines again for every Service, so they are kept
// per model object — valid while the service port and its endpoint list are the same objects and
// the render context is the same.
interface SharedLines { eps: EndpointInfo[] | undefined; ctx: string; nat: string[]; filter: string[]; active: string[]; own: number }
const sharedCache = new WeakMap<ServicePortInfo, SharedLines>();

/**
 * The service ports of Service `nn` ("ns/name") in the model's sorted list: their ids all start
 * with `ns/name:`, so they sit together and a binary search finds them (a partial sync looks up a
 * few Services; a map of all 20,000 would cost more than the sync).
 */
function portsOf(services: readonly ServicePortInfo[], nn: string): ServicePortInfo[] {
  const key = `${nn}:`;
  let lo = 0, hi = services.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (services[mid]!.id < key) lo = mid + 1;
    else hi = mid;
  }
  const out: ServicePortInfo[] = [];
  for (let i = lo; i < services.length && services[i]!.id.startsWith(key); i++) out.push(services[i]!);
  return out;
}

/** Renders one sync of one family. */
export function renderIptables(model: ProxyModel, opts: IptablesOptions = {}, req: SyncRequest = {}): IptablesRender {
  const era: Era = opts.era ?? 'current';
  const current = era === 'current';
  const family = model.family;
  const isIPv6 = family === 6;
  const full = req.changedServices === undefined || req.changedServices === null;
  const mark = masqueradeMark(opts);
  const nodeIPText = (opts.nodeIPs ?? []).find((s) => parseIP(s)?.family === family);
  const nodeIP = nodeIPText ? parseIP(nodeIPText) : null;
  const detector = detectorFor(opts, family);
  const npa = nodePortAddresses(opts.nodePortAddresses ?? [], family, nodeIP);
  // NewProxier / NewDualStackProxier: localhost NodePorts only for IPv4 and a loopback nodeport address.
  const localhostNodePorts = (opts.localhostNodePorts ?? true) && family === 4 && npa.containsIPv4Loopback;
  const nfacct = current && (opts.nfacct ?? true);
  // Era text of addresses: v1.28 wrote the strings as given, current prints parsed net.IP values.
  const ipText = (s: string): string => (current ? canonicalIP(s) ?? s : s);
  const cidrText = (s: string): string => {
    const c = parseCIDR(s);
    return current && c ? formatCIDR(c) : s;
  };

  const filterChains: string[] = [];
  const filterRules: string[] = [];
  const natChains: string[] = [];
  const natRules: string[] = [];
  for (const c of ['KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES', 'KUBE-FORWARD', 'KUBE-NODEPORTS', 'KUBE-PROXY-FIREWALL']) filterChains.push(chainLine(c));
  for (const c of SHARED_NAT_CHAINS) natChains.push(chainLine(c));

  natRules.push(`-A KUBE-POSTROUTING -m mark ! --mark ${mark}/${mark} -j RETURN`);
  // Clear the mark so a packet re-traversing the stack is not masqueraded twice.
  natRules.push(`-A KUBE-POSTROUTING -j MARK --xor-mark ${mark}`);
  let masq = '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT"';
  masq += current && opts.snatNodeInternalIP && nodeIP && !isLoopback(nodeIP) ? ` -j SNAT --to-source ${formatIP(nodeIP)}` : ' -j MASQUERADE';
  if (opts.randomFully) masq += ' --random-fully';
  natRules.push(masq);
  natRules.push(`-A KUBE-MARK-MASQ -j MARK --or-mark ${mark}`);
  // Lines of the shared nat chains, and [start, end) runs of natRules holding everything else.
  // A Service's own chains take one entry of natRules, their lines joined (see renderServicePort);
  // `joinedLines` counts the lines beyond one such entries hold.
  const natShared = natRules.slice();
  const ownRuns: number[] = [];
  let joinedLines = 0;
  // Rules of the own chains a partial sync leaves as they are (counted in natRules, not written).
  let skippedOwn = 0;

  if (!isIPv6 && localhostNodePorts) {
    // route_localnet opens a hole (issue 90259); this rule closes it for non-local sources.
    filterChains.push(chainLine('KUBE-FIREWALL'));
    filterRules.push('-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP');
  }

  // Per service port, the chains it uses; joined into a set only when asked (stale-chain
  // deletion, or the caller), not on every partial sync.
  const activeLists: string[][] = [];
  let activeSet: Set<string> | null = null;
  const activeChains = (): Set<string> => {
    if (activeSet === null) {
      activeSet = new Set();
      for (const list of activeLists) for (const a of list) activeSet.add(a);
    }
    return activeSet;
  };
  // Lines no Service writes that close the shared chains, after every Service's.
  const natTail: string[] = [];
  // The jump to KUBE-NODEPORTS must stay the last rule of KUBE-SERVICES.
  if (npa.matchAll) {
    let dest = '-m addrtype --dst-type LOCAL';
    // Localhost NodePorts never work on IPv6 and need route_localnet on IPv4.
    if (isIPv6) dest += ' ! -d ::1/128';
    else if (!localhostNodePorts) dest += ' ! -d 127.0.0.0/8';
    natTail.push(`-A KUBE-SERVICES -m comment --comment ${MUST_BE_LAST} ${dest} -j KUBE-NODEPORTS`);
  } else {
    for (const text of nodePortHostAddresses(npa, opts, family, localhostNodePorts)) {
      natTail.push(`-A KUBE-SERVICES -m comment --comment ${MUST_BE_LAST} -d ${text} -j KUBE-NODEPORTS`);
    }
  }
  const filterTail: string[] = [];
  // INVALID packets can reset connections (issue 74839) unless tcp_be_liberal is set.
  if (!(current && opts.conntrackTCPLiberal)) {
    filterTail.push(`-A KUBE-FORWARD -m conntrack --ctstate INVALID${nfacct ? ' -m nfacct --nfacct-name ct_state_invalid_dropped_pkts' : ''} -j DROP`);
  }
  // Forward marked traffic even when the FORWARD policy is not ACCEPT, and its replies.
  filterTail.push(`-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark ${mark}/${mark} -j ACCEPT`);
  filterTail.push('-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT');

  // Everything the shared lines depend on besides the service port and its endpoints, and with
  // it every line no Service writes.
  const ctx = JSON.stringify([era, localhostNodePorts, nfacct, opts.nodeName ?? '', opts.topologyLabels ?? {}, opts.preferSameTrafficDistribution ?? false]);
  const frame = [ctx, ...natRules, ...filterChains, ...filterRules, ...natTail, ...filterTail].join('\n');
  const services = model.sortedServices();
  const threshold = opts.largeClusterEndpointsThreshold ?? 1000;
  const prev = full ? undefined : req.previous;
  let totalEndpoints = 0;
  let largeClusterMode = false;
  const comment = (text: string): string => (largeClusterMode ? '' : ` -m comment --comment ${text}`);

  // A partial sync in large-cluster mode (no stale-chain pass) over the same service ports as
  // the last one: only the changed Services are rendered, when their shared-chain lines stay.
  if (prev !== undefined && prev.services === services && prev.frame === frame && prev.largeClusterMode && !req.cleanupStaleChains) {
    const quick = changedOnly(prev);
    if (quick !== null) return quick;
  }
  totalEndpoints = 0;
  for (const sp of services) totalEndpoints += model.endpoints.get(sp.id)?.length ?? 0;
  largeClusterMode = totalEndpoints > threshold;
  for (const sp of services) {
    renderServicePort(sp);
  }

  /** The changed Services' own chains, every shared line as `prev` has it; null when that would not hold. */
  function changedOnly(prev: SharedChains): IptablesRender | null {
    const changed: ServicePortInfo[] = [];
    for (const nn of req.changedServices!) for (const sp of portsOf(services, nn)) changed.push(sp);
    const before: SharedLines[] = [];
    let total = prev.totalEndpoints;
    for (const sp of changed) {
      const c = sharedCache.get(sp);
      if (c === undefined || c.ctx !== ctx) return null;
      before.push(c);
      total += (model.endpoints.get(sp.id)?.length ?? 0) - (c.eps?.length ?? 0);
    }
    if (total <= threshold) return null;
    totalEndpoints = total;
    largeClusterMode = true;
    const marks = [natRules.length, filterRules.length, natChains.length, natShared.length, ownRuns.length, activeLists.length, joinedLines];
    for (let i = 0; i < changed.length; i++) {
      renderServicePort(changed[i]!);
      const now = sharedCache.get(changed[i]!)!;
      if (!sameLines(before[i]!.nat, now.nat) || !sameLines(before[i]!.filter, now.filter)) {
        [natRules.length, filterRules.length, natChains.length, natShared.length, ownRuns.length, activeLists.length, joinedLines] = marks;
        return null;
      }
    }
    let own = joinedLines;
    for (let i = 0; i < ownRuns.length; i += 2) own += ownRuns[i + 1]! - ownRuns[i]!;
    let natTotal = prev.natTotal;
    for (let i = 0; i < changed.length; i++) natTotal += sharedCache.get(changed[i]!)!.own - before[i]!.own;
    return finish(prev.filterRules, prev.nat, [], prev.nat.length + own, natTotal, true);
  }

  function renderServicePort(sp: ServicePortInfo): void {
    const eps = model.endpoints.get(sp.id);
    const unchanged = !full && !req.changedServices!.has(sp.namespacedName);
    const c = unchanged ? sharedCache.get(sp) : undefined;
    if (c !== undefined && c.eps === eps && c.ctx === ctx) {
      skippedOwn += c.own;
      for (const l of c.nat) {
        natRules.push(l);
        natShared.push(l);
      }
      for (const l of c.filter) filterRules.push(l);
      activeLists.push(c.active);
      return;
    }
    const nat0 = natRules.length, filter0 = filterRules.length;
    const mine: string[] = [];
    const names = portChainNames(sp);
    const protocol = names.protocol;
    const name = sp.name;
    const cat = categorizeEndpoints(eps ?? [], sp, opts.nodeName ?? '', opts.topologyLabels ?? {}, {
      preferSameTrafficDistribution: opts.preferSameTrafficDistribution,
    });
    const clusterEndpoints = cat.clusterEndpoints ?? [];
    const localEndpoints = cat.localEndpoints ?? [];
    const reachable = cat.allReachableEndpoints ?? [];
    const hasEndpoints = cat.hasAnyEndpoints;
    for (const ep of reachable) mine.push(endpointChainName(name, protocol, ep));

    const clusterPolicyChain = names.svc;
    const usesClusterPolicyChain = clusterEndpoints.length > 0 && usesClusterEndpoints(sp);
    if (usesClusterPolicyChain) mine.push(clusterPolicyChain);
    const localPolicyChain = names.svl;
    const usesLocalPolicyChain = localEndpoints.length > 0 && usesLocalEndpoints(sp);
    if (usesLocalPolicyChain) mine.push(localPolicyChain);

    let internalTrafficChain = clusterPolicyChain;
    let hasInternalEndpoints = hasEndpoints;
    if (sp.internalPolicyLocal) {
      internalTrafficChain = localPolicyChain;
      if (localEndpoints.length === 0) hasInternalEndpoints = false;
    }
    let externalPolicyChain = clusterPolicyChain;
    let hasExternalEndpoints = hasEndpoints;
    if (sp.externalPolicyLocal) {
      externalPolicyChain = localPolicyChain;
      if (localEndpoints.length === 0) hasExternalEndpoints = false;
    }
    const externalTrafficChain = names.ext;
    // Built even without externally usable endpoints, for the local short-circuit rules.
    const usesExternalTrafficChain = hasEndpoints && externallyAccessible(sp);
    if (usesExternalTrafficChain) mine.push(externalTrafficChain);
    const fwChain = names.fw;
    // Since v1.34 a zero-prefix range stands for no ranges at all: no firewall chain.
    const sourceRanges = current && allowsAnySource(sp.loadBalancerSourceRanges) ? NO_RANGES : sp.loadBalancerSourceRanges;
    const usesFWChain = hasEndpoints && sp.loadBalancerVIPs.length > 0 && sourceRanges.length > 0;
    if (usesFWChain) mine.push(fwChain);
    const loadBalancerTrafficChain = usesFWChain ? fwChain : externalTrafficChain;

    let internalTarget = '';
    let internalComment = '';
    let externalTarget = '';
    let externalComment = '';
    if (!hasEndpoints) {
      internalTarget = externalTarget = 'REJECT';
      internalComment = externalComment = `"${name} has no endpoints"`;
    } else {
      if (!hasInternalEndpoints) {
        internalTarget = 'DROP';
        internalComment = `"${name} has no local endpoints"`;
      }
      if (!hasExternalEndpoints) {
        externalTarget = 'DROP';
        externalComment = `"${name} has no local endpoints"`;
      }
    }
    const pm = `-m ${protocol} -p ${protocol}`;
    const clusterIPMatch = `${pm} -d ${sp.clusterIP} --dport ${sp.port}`;

    if (hasInternalEndpoints) {
      natRules.push(`-A KUBE-SERVICES -m comment --comment "${name} cluster IP" ${clusterIPMatch} -j ${internalTrafficChain}`);
    } else {
      filterRules.push(`-A KUBE-SERVICES -m comment --comment ${internalComment} ${clusterIPMatch} -j ${internalTarget}`);
    }
    for (const raw of sp.externalIPs) {
      const ip = ipText(raw);
      if (hasEndpoints) natRules.push(`-A KUBE-SERVICES -m comment --comment "${name} external IP" ${pm} -d ${ip} --dport ${sp.port} -j ${externalTrafficChain}`);
      if (!hasExternalEndpoints) filterRules.push(`-A KUBE-EXTERNAL-SERVICES -m comment --comment ${externalComment} ${pm} -d ${ip} --dport ${sp.port} -j ${externalTarget}`);
    }
    for (const raw of sp.loadBalancerVIPs) {
      const ip = ipText(raw);
      if (hasEndpoints) natRules.push(`-A KUBE-SERVICES -m comment --comment "${name} loadbalancer IP" ${pm} -d ${ip} --dport ${sp.port} -j ${loadBalancerTrafficChain}`);
      if (usesFWChain) filterRules.push(`-A KUBE-PROXY-FIREWALL -m comment --comment "${name} traffic not accepted by ${fwChain}" ${pm} -d ${ip} --dport ${sp.port} -j DROP`);
    }
    if (!hasExternalEndpoints) {
      for (const raw of sp.loadBalancerVIPs) {
        filterRules.push(`-A KUBE-EXTERNAL-SERVICES -m comment --comment ${externalComment} ${pm} -d ${ipText(raw)} --dport ${sp.port} -j ${externalTarget}`);
      }
    }
    if (sp.nodePort !== 0) {
      if (hasEndpoints) {
        // NodePorts are not subject to loadBalancerSourceRanges (and can't be made so).
        if (current && localhostNodePorts && nfacct) {
          natRules.push(`-A KUBE-NODEPORTS -m comment --comment ${name} ${pm} -d 127.0.0.0/8 --dport ${sp.nodePort} -m nfacct --nfacct-name localhost_nps_accepted_pkts -j ${externalTrafficChain}`);
        }
        natRules.push(`-A KUBE-NODEPORTS -m comment --comment ${name} ${pm} --dport ${sp.nodePort} -j ${externalTrafficChain}`);
      }
      if (!hasExternalEndpoints) {
        filterRules.push(`-A KUBE-EXTERNAL-SERVICES -m comment --comment ${externalComment} -m addrtype --dst-type LOCAL ${pm} --dport ${sp.nodePort} -j ${externalTarget}`);
      }
    }
    if (sp.healthCheckNodePort !== 0) {
      // Accepted whether or not this node has local endpoints: the LB must be able to ask.
      filterRules.push(`-A KUBE-NODEPORTS -m comment --comment "${name} health check node port" -m tcp -p tcp --dport ${sp.healthCheckNodePort} -j ACCEPT`);
    }

    activeLists.push(mine);
    const shared = natRules.slice(nat0);
    for (const l of shared) natShared.push(l);
    // An unchanged port's own chains stay as the last render left them, with as many rules.
    const entry: SharedLines = { eps, ctx, nat: shared, filter: filterRules.slice(filter0), active: mine, own: c?.own ?? 0 };
    sharedCache.set(sp, entry);
    // Partial sync: unchanged Services keep their SVC/SVL/EXT/FW/SEP chains as they are.
    if (unchanged) {
      skippedOwn += entry.own;
      flatten(natRules, nat0);
      flatten(filterRules, filter0);
      return;
    }
    const own0 = natRules.length, chains0 = natChains.length;

    if (hasInternalEndpoints) {
      const args = `-m comment --comment "${name} cluster IP" ${clusterIPMatch}`;
      if (opts.masqueradeAll) natRules.push(`-A ${internalTrafficChain} ${args} -j KUBE-MARK-MASQ`);
      // Off-cluster traffic to a service VIP may bounce off-node: masquerade it.
      else if (detector) natRules.push(`-A ${internalTrafficChain} ${args} ${detector.ifNotLocal.join(' ')} -j KUBE-MARK-MASQ`);
    }

    if (usesExternalTrafficChain) {
      natChains.push(chainLine(externalTrafficChain));
      if (!sp.externalPolicyLocal) {
        natRules.push(`-A ${externalTrafficChain} -m comment --comment "masquerade traffic for ${name} external destinations" -j KUBE-MARK-MASQ`);
      } else {
        // Pod → external destination traffic skips both traffic policies, as if it went out to
        // the load balancer and came back.
        if (detector) {
          natRules.push(`-A ${externalTrafficChain} -m comment --comment "pod traffic for ${name} external destinations" ${detector.ifLocal.join(' ')} -j ${clusterPolicyChain}`);
        }
        // Host traffic keeps the LB IP (a local address) as source, so it needs masquerading.
        natRules.push(`-A ${externalTrafficChain} -m comment --comment "masquerade LOCAL traffic for ${name} external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ`);
        natRules.push(`-A ${externalTrafficChain} -m comment --comment "route LOCAL traffic for ${name} external destinations" -m addrtype --src-type LOCAL -j ${clusterPolicyChain}`);
      }
      if (hasExternalEndpoints) natRules.push(`-A ${externalTrafficChain} -j ${externalPolicyChain}`);
    }

    if (usesFWChain) {
      natChains.push(chainLine(fwChain));
      const head = `-A ${fwChain} -m comment --comment "${name} loadbalancer IP"`;
      let allowFromNode = false;
      for (const src of sourceRanges) {
        natRules.push(`${head} -s ${cidrText(src)} -j ${externalTrafficChain}`);
        const c = parseCIDR(src);
        if (c && nodeIP && cidrContains(c, nodeIP)) allowFromNode = true;
      }
      // A node talking to a VIP it hosts loops back with the VIP as source; let that in too.
      if (allowFromNode) for (const raw of sp.loadBalancerVIPs) natRules.push(`${head} -s ${ipText(raw)} -j ${externalTrafficChain}`);
      // Anything left falls through un-DNATed and meets the KUBE-PROXY-FIREWALL DROP.
      natRules.push(`-A ${fwChain} -m comment --comment "other traffic to ${name} will be dropped by KUBE-PROXY-FIREWALL"`);
    }

    if (usesClusterPolicyChain) {
      natChains.push(chainLine(clusterPolicyChain));
      writeServiceToEndpointRules(sp, protocol, clusterPolicyChain, clusterEndpoints);
    }
    if (usesLocalPolicyChain) {
      natChains.push(chainLine(localPolicyChain));
      writeServiceToEndpointRules(sp, protocol, localPolicyChain, localEndpoints);
    }
    for (const ep of reachable) {
      const chain = endpointChainName(name, protocol, ep);
      natChains.push(chainLine(chain));
      const head = `-A ${chain}${comment(name)}`;
      // Hairpin: an endpoint reaching itself through the service must be SNATed.
      natRules.push(`${head} -s ${ep.ip} -j KUBE-MARK-MASQ`);
      const affinity = sp.sessionAffinity === 'ClientIP' ? ` -m recent --name ${chain} --set` : '';
      natRules.push(`${head}${affinity} ${pm} -j DNAT --to-destination ${ep.endpoint}`);
    }
    // The own chains' lines, and their declarations, as one string each: each line dies young, and
    // one string per Service, not ten, lives on until the text is joined (at 20,000 Services the
    // garbage collector then moves 40,000 strings instead of 260,000).
    const lines = natRules.length - own0;
    entry.own = lines;
    if (lines > 1) {
      const chunk = natRules.slice(own0).join('\n');
      natRules.length = own0;
      natRules.push(chunk);
      joinedLines += lines - 1;
    }
    if (natChains.length - chains0 > 1) {
      const chunk = natChains.slice(chains0).join('\n');
      natChains.length = chains0;
      natChains.push(chunk);
    }
    ownRuns.push(own0, natRules.length);
    flatten(natRules, nat0);
    flatten(filterRules, filter0);
  }

  function writeServiceToEndpointRules(sp: ServicePortInfo, protocol: string, svcChain: string, endpoints: EndpointInfo[]): void {
    if (sp.sessionAffinity === 'ClientIP') {
      for (const ep of endpoints) {
        const chain = endpointChainName(sp.name, protocol, ep);
        natRules.push(`-A ${svcChain}${comment(`"${sp.name} -> ${ep.endpoint}"`)} -m recent --name ${chain} --rcheck --seconds ${sp.stickyMaxAgeSeconds} --reap -j ${chain}`);
      }
    }
    const n = endpoints.length;
    endpoints.forEach((ep, i) => {
      const chain = endpointChainName(sp.name, protocol, ep);
      // Rule i matches 1/(n-i) of what reaches it, so every endpoint gets 1/n; the last always matches.
      const stat = i < n - 1 ? ` -m statistic --mode random --probability ${probability(n - i)}` : '';
      natRules.push(`-A ${svcChain}${comment(`"${sp.name} -> ${ep.endpoint}"`)}${stat} -j ${chain}`);
    });
  }

  const deletedChains: string[] = [];
  const stale0 = natRules.length;
  if (req.existingNatChains && (!largeClusterMode || req.cleanupStaleChains)) {
    for (const chain of [...new Set(req.existingNatChains)].sort()) {
      if (activeChains().has(chain) || !isServiceChainName(chain)) continue;
      // A chain line flushes it; then it can be deleted.
      natChains.push(chainLine(chain));
      natRules.push(`-X ${chain}`);
      deletedChains.push(chain);
    }
  }

  ownRuns.push(stale0, natRules.length);
  for (const l of natTail) {
    natRules.push(l);
    natShared.push(l);
  }
  for (const l of filterTail) filterRules.push(l);
  const written = natRules.length + joinedLines - deletedChains.length;
  return finish(filterRules, natShared, deletedChains, written, written + skippedOwn, false);

  /**
   * The result. `quick`: changedOnly()'s, whose natRules hold only the changed Services' lines —
   * kube-proxy's text (and the set of active chains) is then rendered whole when first read.
   */
  function finish(filter: readonly string[], nat: readonly string[], deleted: string[], natWritten: number, natTotal: number, quick: boolean): IptablesRender {
    let whole: IptablesRender | undefined;
    const kubeProxy = (): IptablesRender => (whole ??= renderIptables(model, opts, { ...req, previous: undefined }));
    let text: string | undefined;
    const joined = (): string => {
      // One join, its trailing newline from the empty last line (no copy of the whole text to add it).
      text ??= quick ? kubeProxy().text : ['*filter'].concat(filterChains, filter, ['COMMIT', '*nat'], natChains, natRules, ['COMMIT', '']).join('\n');
      return text;
    };
    const shared: SharedChains = { filterChains, filterRules: filter, nat, services, frame, totalEndpoints, largeClusterMode, natTotal };
    const sameFilter = quick || (prev !== undefined && sameLines(prev.filterChains, filterChains) && sameLines(prev.filterRules, filter));
    const sameNat = quick || (prev !== undefined && sameLines(prev.nat, nat));
    let liveText: string | undefined;
    return {
      get text() { return joined(); },
      get liveText() {
        if (liveText !== undefined) return liveText;
        if (!sameFilter && !sameNat) return (liveText = joined());
        let lines = sameFilter ? [] : ['*filter'].concat(filterChains, filter, ['COMMIT']);
        if (!sameNat) lines = lines.concat(['*nat'], natChains, natRules, ['COMMIT']);
        else if (natChains.length > SHARED_NAT_CHAINS.length || ownRuns.some((v, i) => i % 2 === 1 && v > ownRuns[i - 1]!)) {
          // The shared nat chains are declared first; every other declaration is an own chain's.
          lines = lines.concat(['*nat'], natChains.slice(SHARED_NAT_CHAINS.length));
          for (let i = 0; i < ownRuns.length; i += 2) for (let k = ownRuns[i]!; k < ownRuns[i + 1]!; k++) lines.push(natRules[k]!);
          lines.push('COMMIT');
        }
        lines.push('');
        return (liveText = lines.join('\n'));
      },
      shared,
      full,
      get activeNatChains() { return quick ? kubeProxy().activeNatChains : activeChains(); },
      deletedChains: deleted,
      largeClusterMode,
      filterRules: filter.length,
      natRules: natTotal,
      natRulesWritten: natWritten,
    };
  }
}
