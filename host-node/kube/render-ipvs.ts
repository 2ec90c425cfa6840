// render-ipvs.ts — what kube-proxy's IPVS mode installs for one IP family's model, following
// pkg/proxy/ipvs/proxier.go (syncProxyRules, syncEndpoint, writeIptablesRules, acceptIPVSTraffic),
// ipset.go (set names, types, comments) and pkg/proxy/ipvs/ipset (create / entry text), as three
// texts: the virtual and real servers as `ipvsadm -S -n` rules (load with `ipvsadm -R`), every
// ipset as `ipset restore` lines, and the small fixed iptables rule set as iptables-restore text.
// Pure: returns text, never runs a tool, never binds addresses (the KUBE-IPVS-IPS set lists the
// addresses kube-proxy would bind to kube-ipvs0) and never diffs against what is installed: each
// render is the whole desired state (sets are created with -exist and flushed before refilling).
// A render is the union of every service port's share (ipvsPortShare), which the ipvs apply also
// keeps per port so a sync can redo only the ports that changed.
import { categorizeEndpoints } from './categorize.js';
import { cidrContains, formatCIDR, formatIP, isLoopback, parseCIDR, parseIP, type Family, type IP } from './ip.js';
import { allowsAnySource, detectorFor, masqueradeMark, type LocalDetector } from './render-settings.js';
import type { EndpointInfo, ProxyModel, ServicePortInfo } from './model.js';

export interface IpvsRenderOptions {
  /** This node's name (local endpoints, topology node hints). */
  nodeName?: string;
  /** This node's labels (topology zone). */
  topologyLabels?: Record<string, string>;
  /** This node's IPs; the first of the model's family is "the node IP" (source-range self check). */
  nodeIPs?: string[];
  /**
   * Addresses on the host's interfaces other than kube-ipvs0 (netlink GetAllLocalAddressesExcept);
   * default nodeIPs. NodePort virtual servers are made on these (minus loopback, and IPv6
   * link-local), and an external/LB IP among them is not bound to the dummy device.
   */
  hostAddresses?: string[];
  /** --nodeport-addresses CIDRs of this family; empty = every host address. */
  nodePortAddresses?: string[];
  /** --ipvs-scheduler; default 'rr' (proxier.go defaultScheduler). */
  scheduler?: string;
  masqueradeAll?: boolean;
  /** Default 14 → "0x00004000" (fmt "%#08x"). */
  masqueradeBit?: number;
  /** Overrides the mark text. */
  masqueradeMark?: string;
  localDetector?: LocalDetector;
  clusterCIDR?: string;
  podCIDR?: string;
  /** iptables supports --random-fully on MASQUERADE. */
  randomFully?: boolean;
  /**
   * Also write the jumps kube-proxy installs with EnsureRule (PREROUTING/OUTPUT → KUBE-SERVICES,
   * INPUT → KUBE-IPVS-FILTER …) as rules of the built-in chains, in the order repeated prepends
   * leave them. Default true; such text must be loaded flushing (not --noflush). False gives
   * exactly kube-proxy's iptables-restore payload.
   */
  jumps?: boolean;
  preferSameTrafficDistribution?: boolean;
}

export interface IpvsRender {
  /** `ipvsadm -S -n` rules: `-A` per virtual server, then its `-a` real servers. */
  ipvsadm: string;
  /** `ipset restore` lines for all 17 sets. */
  ipset: string;
  /** iptables-restore text: *nat then *filter, as kube-proxy writes them. */
  iptables: string;
  virtualServers: number;
  realServers: number;
  /** The same virtual servers as data, in `ipvsadm` order: real servers as "ip:port" / "[ip6]:port". */
  servers: IpvsServer[];
  /** Entries of KUBE-IPVS-IPS: the addresses kube-proxy binds to kube-ipvs0. */
  boundAddresses: string[];
}

type SetType = 'hash:ip' | 'hash:ip,port' | 'hash:ip,port,ip' | 'hash:ip,port,net' | 'bitmap:port';

// ipset.go constants and proxier.go ipsetInfo[]: name, type, comment, in kube-proxy's order.
const SET_INFO: ReadonlyArray<readonly [string, SetType, string]> = [
  ['KUBE-LOOP-BACK', 'hash:ip,port,ip', 'Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose'],
  ['KUBE-CLUSTER-IP', 'hash:ip,port', 'Kubernetes service cluster ip + port for masquerade purpose'],
  ['KUBE-EXTERNAL-IP', 'hash:ip,port', 'Kubernetes service external ip + port for masquerade and filter purpose'],
  ['KUBE-EXTERNAL-IP-LOCAL', 'hash:ip,port', 'Kubernetes service external ip + port with externalTrafficPolicy=local'],
  ['KUBE-LOAD-BALANCER', 'hash:ip,port', 'Kubernetes service lb portal'],
  ['KUBE-LOAD-BALANCER-FW', 'hash:ip,port', 'Kubernetes service load balancer ip + port for load balancer with sourceRange'],
  ['KUBE-LOAD-BALANCER-LOCAL', 'hash:ip,port', 'Kubernetes service load balancer ip + port with externalTrafficPolicy=local'],
  ['KUBE-LOAD-BALANCER-SOURCE-IP', 'hash:ip,port,ip', 'Kubernetes service load balancer ip + port + source IP for packet filter purpose'],
  ['KUBE-LOAD-BALANCER-SOURCE-CIDR', 'hash:ip,port,net', 'Kubernetes service load balancer ip + port + source cidr for packet filter purpose'],
  ['KUBE-NODE-PORT-TCP', 'bitmap:port', 'Kubernetes nodeport TCP port for masquerade purpose'],
  ['KUBE-NODE-PORT-LOCAL-TCP', 'bitmap:port', 'Kubernetes nodeport TCP port with externalTrafficPolicy=local'],
  ['KUBE-NODE-PORT-UDP', 'bitmap:port', 'Kubernetes nodeport UDP port for masquerade purpose'],
  ['KUBE-NODE-PORT-LOCAL-UDP', 'bitmap:port', 'Kubernetes nodeport UDP port with externalTrafficPolicy=local'],
  ['KUBE-NODE-PORT-SCTP-HASH', 'hash:ip,port', "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'"],
  ['KUBE-NODE-PORT-LOCAL-SCTP-HASH', 'hash:ip,port', "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'"],
  ['KUBE-HEALTH-CHECK-NODE-PORT', 'bitmap:port', 'Kubernetes health check node port'],
  ['KUBE-IPVS-IPS', 'hash:ip', 'Addresses on the ipvs interface'],
];

// proxier.go ipsetWithIptablesChain[]: set → rule "-A from [-p proto] … --match-set set match -j to".
// The Local sets come before their catch-all siblings so RETURN wins.
const SET_CHAINS: ReadonlyArray<{ set: string; filter: boolean; from: string; to: string; match: string; proto: string }> = [
  { set: 'KUBE-LOOP-BACK', filter: false, from: 'KUBE-POSTROUTING', to: 'MASQUERADE', match: 'dst,dst,src', proto: '' },
  { set: 'KUBE-LOAD-BALANCER', filter: false, from: 'KUBE-SERVICES', to: 'KUBE-LOAD-BALANCER', match: 'dst,dst', proto: '' },
  { set: 'KUBE-LOAD-BALANCER-LOCAL', filter: false, from: 'KUBE-LOAD-BALANCER', to: 'RETURN', match: 'dst,dst', proto: '' },
  { set: 'KUBE-NODE-PORT-LOCAL-TCP', filter: false, from: 'KUBE-NODE-PORT', to: 'RETURN', match: 'dst', proto: 'tcp' },
  { set: 'KUBE-NODE-PORT-TCP', filter: false, from: 'KUBE-NODE-PORT', to: 'KUBE-MARK-MASQ', match: 'dst', proto: 'tcp' },
  { set: 'KUBE-NODE-PORT-LOCAL-UDP', filter: false, from: 'KUBE-NODE-PORT', to: 'RETURN', match: 'dst', proto: 'udp' },
  { set: 'KUBE-NODE-PORT-UDP', filter: false, from: 'KUBE-NODE-PORT', to: 'KUBE-MARK-MASQ', match: 'dst', proto: 'udp' },
  { set: 'KUBE-NODE-PORT-LOCAL-SCTP-HASH', filter: false, from: 'KUBE-NODE-PORT', to: 'RETURN', match: 'dst,dst', proto: 'sctp' },
  { set: 'KUBE-NODE-PORT-SCTP-HASH', filter: false, from: 'KUBE-NODE-PORT', to: 'KUBE-MARK-MASQ', match: 'dst,dst', proto: 'sctp' },
  { set: 'KUBE-LOAD-BALANCER-FW', filter: true, from: 'KUBE-PROXY-FIREWALL', to: 'KUBE-SOURCE-RANGES-FIREWALL', match: 'dst,dst', proto: '' },
  { set: 'KUBE-LOAD-BALANCER-SOURCE-CIDR', filter: true, from: 'KUBE-SOURCE-RANGES-FIREWALL', to: 'RETURN', match: 'dst,dst,src', proto: '' },
  { set: 'KUBE-LOAD-BALANCER-SOURCE-IP', filter: true, from: 'KUBE-SOURCE-RANGES-FIREWALL', to: 'RETURN', match: 'dst,dst,src', proto: '' },
];

// proxier.go iptablesChains[].
const NAT_CHAINS = ['KUBE-SERVICES', 'KUBE-POSTROUTING', 'KUBE-NODE-PORT', 'KUBE-LOAD-BALANCER', 'KUBE-MARK-MASQ'];
const FILTER_CHAINS = ['KUBE-FORWARD', 'KUBE-NODE-PORT', 'KUBE-PROXY-FIREWALL', 'KUBE-SOURCE-RANGES-FIREWALL', 'KUBE-IPVS-FILTER', 'KUBE-IPVS-OUT-FILTER'];

// proxier.go iptablesJumpChain[], each installed with EnsureRule(Prepend): a later entry for the
// same built-in chain ends up above an earlier one.
const JUMPS: ReadonlyArray<readonly [filter: boolean, from: string, to: string, comment: string]> = [
  [false, 'OUTPUT', 'KUBE-SERVICES', 'kubernetes service portals'],
  [false, 'PREROUTING', 'KUBE-SERVICES', 'kubernetes service portals'],
  [false, 'POSTROUTING', 'KUBE-POSTROUTING', 'kubernetes postrouting rules'],
  [true, 'FORWARD', 'KUBE-FORWARD', 'kubernetes forwarding rules'],
  [true, 'INPUT', 'KUBE-NODE-PORT', 'kubernetes health check rules'],
  [true, 'INPUT', 'KUBE-PROXY-FIREWALL', 'kube-proxy firewall rules'],
  [true, 'FORWARD', 'KUBE-PROXY-FIREWALL', 'kube-proxy firewall rules'],
  [true, 'INPUT', 'KUBE-IPVS-FILTER', 'kubernetes ipvs access filter'],
  [true, 'OUTPUT', 'KUBE-IPVS-OUT-FILTER', 'kubernetes ipvs access filter'],
];

// pkg/proxy/ipvs/ipset: DefaultHashSize, DefaultMaxElem, DefaultPortRange.
const HASH_SIZE = 1024;
const MAX_ELEM = 65536;
const PORT_RANGE = '0-65535';

export interface IpvsServer {
  protocol: 'tcp' | 'udp' | 'sctp';
  address: string;
  port: number;
  scheduler: string;
  /** Persistence timeout in seconds (session affinity ClientIP), or null. */
  persistence: number | null;
  /** Scheduler flags ipvsadm names (-b). */
  schedFlags: string[];
  /** Real servers, sorted; weight 1, masquerading. */
  dests: string[];
}

interface VirtualServer {
  protocol: 'tcp' | 'udp' | 'sctp';
  address: string;
  port: number;
  persistence: number | null;
  dests: Set<string>;
}

/** NewIPSet: IPv6 sets are renamed KUBE- → KUBE-6- and cut to ipset's 31 characters. */
export function ipvsSetName(name: string, family: Family): string {
  return family === 6 && name.startsWith('KUBE-') ? `KUBE-6-${name.slice(5)}`.slice(0, 31) : name;
}

/** NodePort virtual server addresses (syncProxyRules: nodeIPs). */
function nodePortIPs(opts: IpvsRenderOptions, family: Family): IP[] {
  const seen = new Set<string>();
  const out: IP[] = [];
  const cidrs = (opts.nodePortAddresses ?? []).map(parseCIDR).filter((c) => c !== null && c.family === family);
  const matchAll = cidrs.length === 0 || cidrs.some((c) => c!.prefix === 0);
  for (const a of opts.hostAddresses ?? opts.nodeIPs ?? []) {
    const ip = parseIP(a);
    if (!ip || ip.family !== family || isLoopback(ip)) continue;
    // netlink isValidForSet: IPv6 link-local addresses are never listed.
    if (family === 6 && ip.bytes[0] === 0xfe && (ip.bytes[1]! & 0xc0) === 0x80) continue;
    if (!matchAll && !cidrs.some((c) => cidrContains(c!, ip))) continue;
    const text = formatIP(ip);
    if (!seen.has(text)) out.push(ip), seen.add(text);
  }
  return out;
}

/** What a render of one family needs besides the service ports, worked out once per render. */
export interface IpvsContext {
  opts: IpvsRenderOptions;
  nodeName: string;
  nodeIP: IP | null;
  /** Host addresses of this family (an external/LB IP among them is not bound to kube-ipvs0). */
  hostSet: Set<string>;
  /** NodePort virtual server addresses, worked out when a NodePort first asks. */
  nodePortIPs(): IP[];
}

export function ipvsContext(family: Family, opts: IpvsRenderOptions = {}): IpvsContext {
  const nodeIPText = (opts.nodeIPs ?? []).find((s) => parseIP(s)?.family === family);
  let np: IP[] | null = null;
  return {
    opts, nodeName: opts.nodeName ?? '',
    nodeIP: nodeIPText ? parseIP(nodeIPText) : null,
    hostSet: new Set((opts.hostAddresses ?? opts.nodeIPs ?? []).map((s) => parseIP(s)).filter((ip) => ip?.family === family).map((ip) => formatIP(ip!))),
    nodePortIPs: () => (np ??= nodePortIPs(opts, family)),
  };
}

/** A virtual server as one service port wants it: its real servers as "ip:port" (unsorted, unique). */
export interface PortServer {
  key: string;
  protocol: 'tcp' | 'udp' | 'sctp';
  address: string;
  port: number;
  persistence: number | null;
  dests: string[];
}

/**
 * What one service port puts into kube-proxy's ipvs state: set members (set, entry pairs, the
 * addresses bound to kube-ipvs0 as KUBE-IPVS-IPS members), virtual servers, and the LB VIPs the
 * node must not reach. Many ports' shares merge by union; a virtual server two ports share takes
 * the persistence of the later port in id order (the order renders walk them).
 */
export interface PortShare {
  /** [set, entry, set, entry, …]. */
  entries: string[];
  servers: PortServer[];
  noNodeAccess: { ip: string; protocol: string; port: number }[];
}

/** syncProxyRules' work for one service port (sp with its endpoints `eps`). */
export function ipvsPortShare(ctx: IpvsContext, sp: ServicePortInfo, eps: readonly EndpointInfo[]): PortShare {
  const { opts, nodeIP, hostSet } = ctx;
  const share: PortShare = { entries: [], servers: [], noNodeAccess: [] };
  const add = (set: string, entry: string): void => { share.entries.push(set, entry); };
  const protocol = sp.protocol.toLowerCase() as PortServer['protocol'];
  const cat = categorizeEndpoints(eps as EndpointInfo[], sp, ctx.nodeName, opts.topologyLabels ?? {}, { preferSameTrafficDistribution: opts.preferSameTrafficDistribution });
  // syncEndpoint(): Local policy uses local endpoints, or falls back to the cluster ones so
  // local pods still reach the service (kubernetes PR 97081).
  const dests = (onlyLocal: boolean): EndpointInfo[] => {
    const local = cat.localEndpoints ?? [];
    return onlyLocal && local.length > 0 ? local : cat.clusterEndpoints ?? [];
  };
  // Session affinity is IPVS persistence with the sticky timeout (FlagPersistent, Timeout).
  const persistence = sp.sessionAffinity === 'ClientIP' ? sp.stickyMaxAgeSeconds : null;
  const seen = new Map<string, Set<string>>();
  const virtualServer = (address: string, port: number, onlyLocal: boolean): void => {
    const key = `${protocol} ${address} ${port}`;
    let have = seen.get(key);
    if (!have) {
      seen.set(key, (have = new Set()));
      share.servers.push({ key, protocol, address, port, persistence, dests: [] });
    }
    for (const ep of dests(onlyLocal)) have.add(ep.endpoint);
  };
  const bind = (ip: string): void => add('KUBE-IPVS-IPS', ip);
  const done = (): PortShare => {
    for (const vs of share.servers) vs.dests = [...seen.get(vs.key)!];
    return share;
  };

  // Hairpin: a local endpoint reaching itself through the service is masqueraded.
  for (const ep of eps) if (ep.isLocal) add('KUBE-LOOP-BACK', `${ep.ip},${protocol}:${ep.port},${ep.ip}`);

  add('KUBE-CLUSTER-IP', `${sp.clusterIP},${protocol}:${sp.port}`);
  virtualServer(sp.clusterIP, sp.port, sp.internalPolicyLocal);
  bind(sp.clusterIP);

  for (const raw of sp.externalIPs) {
    const parsed = parseIP(raw);
    if (!parsed) continue;
    const ip = formatIP(parsed);
    add(sp.externalPolicyLocal ? 'KUBE-EXTERNAL-IP-LOCAL' : 'KUBE-EXTERNAL-IP', `${ip},${protocol}:${sp.port}`);
    virtualServer(ip, sp.port, sp.externalPolicyLocal);
    // An address already on another interface is not bound to the dummy device.
    if (!hostSet.has(ip)) bind(ip);
  }

  for (const raw of sp.loadBalancerVIPs) {
    const parsed = parseIP(raw);
    if (!parsed) continue;
    const ip = formatIP(parsed);
    const entry = `${ip},${protocol}:${sp.port}`;
    add('KUBE-LOAD-BALANCER', entry);
    if (sp.externalPolicyLocal) add('KUBE-LOAD-BALANCER-LOCAL', entry);
    // A /0 range lets every source in (and hash:net sets refuse a zero prefix: "The value of the
    // CIDR parameter of the IP address is invalid"): such a Service needs no source firewall.
    const ranges = sp.loadBalancerSourceRanges.map(parseCIDR);
    if (ranges.length > 0 && !allowsAnySource(sp.loadBalancerSourceRanges)) {
      add('KUBE-LOAD-BALANCER-FW', entry);
      let allowFromNode = false;
      for (const c of ranges) {
        if (!c) continue;
        add('KUBE-LOAD-BALANCER-SOURCE-CIDR', `${entry},${formatCIDR(c)}`);
        if (nodeIP && cidrContains(c, nodeIP)) allowFromNode = true;
      }
      // A node reaching a VIP it hosts loops back with the VIP as source: let that in too;
      // otherwise block the node from the VIP outright (issue 119656).
      if (allowFromNode) add('KUBE-LOAD-BALANCER-SOURCE-IP', `${entry},${ip}`);
      else share.noNodeAccess.push({ ip, protocol, port: sp.port });
    }
    virtualServer(ip, sp.port, sp.externalPolicyLocal);
    if (!hostSet.has(ip)) bind(ip);
  }

  if (sp.nodePort !== 0) {
    // kube-proxy skips the rest of this service port (health check included) without node IPs.
    const npIPs = ctx.nodePortIPs();
    if (npIPs.length === 0) return done();
    const local = sp.externalPolicyLocal;
    if (protocol === 'sctp') {
      // bitmap:port cannot tell SCTP apart, so SCTP NodePorts are hash:ip,port per node IP.
      for (const ip of npIPs) {
        const e = `${formatIP(ip)},sctp:${sp.nodePort}`;
        add('KUBE-NODE-PORT-SCTP-HASH', e);
        if (local) add('KUBE-NODE-PORT-LOCAL-SCTP-HASH', e);
      }
    } else {
      const up = protocol.toUpperCase();
      add(`KUBE-NODE-PORT-${up}`, String(sp.nodePort));
      if (local) add(`KUBE-NODE-PORT-LOCAL-${up}`, String(sp.nodePort));
    }
    for (const ip of npIPs) virtualServer(formatIP(ip), sp.nodePort, local);
  }

  if (sp.healthCheckNodePort !== 0) add('KUBE-HEALTH-CHECK-NODE-PORT', String(sp.healthCheckNodePort));
  return done();
}

/** Every set's members, keyed by the set's IPv4 name (SET_INFO order), all empty. */
function emptyIpvsSets(): Map<string, Set<string>> {
  return new Map(SET_INFO.map(([n]) => [n, new Set<string>()]));
}

/** The whole render of a family's model: the union of its service ports' shares, each handed to `each` too. */
export function renderIpvs(model: ProxyModel, opts: IpvsRenderOptions = {}, each?: (sp: ServicePortInfo, share: PortShare) => void): IpvsRender {
  const family = model.family;
  const ctx = ipvsContext(family, opts);
  const entries = emptyIpvsSets();
  const servers = new Map<string, VirtualServer>();
  const noNodeAccess: { ip: string; protocol: string; port: number }[] = [];
  for (const sp of model.sortedServices()) {
    const share = ipvsPortShare(ctx, sp, model.endpoints.get(sp.id) ?? []);
    each?.(sp, share);
    for (let i = 0; i < share.entries.length; i += 2) entries.get(share.entries[i]!)!.add(share.entries[i + 1]!);
    for (const ps of share.servers) {
      let vs = servers.get(ps.key);
      if (!vs) servers.set(ps.key, (vs = { protocol: ps.protocol, address: ps.address, port: ps.port, persistence: null, dests: new Set() }));
      vs.persistence = ps.persistence;
      for (const d of ps.dests) vs.dests.add(d);
    }
    noNodeAccess.push(...share.noNodeAccess);
  }
  return ipvsTexts(family, opts, entries, servers, noNodeAccess);
}

/** The three texts (and the servers as data) of a whole state: set members, virtual servers, LB VIPs the node must not reach. */
function ipvsTexts(family: Family, opts: IpvsRenderOptions, entries: ReadonlyMap<string, ReadonlySet<string>>, servers: ReadonlyMap<string, VirtualServer>, noNodeAccess: readonly { ip: string; protocol: string; port: number }[]): IpvsRender {
  const scheduler = opts.scheduler || 'rr';

  // ---- ipvsadm -S -n ----
  const ipvsLines: string[] = [];
  let realServers = 0;
  const svcArg = (vs: VirtualServer): string => {
    const flag = vs.protocol === 'tcp' ? '-t' : vs.protocol === 'udp' ? '-u' : '--sctp-service';
    return `${flag} ${family === 6 ? `[${vs.address}]` : vs.address}:${vs.port}`;
  };
  for (const vs of servers.values()) {
    const s = svcArg(vs);
    // FlagSourceHash for mh is its SCHED2 flag, which ipvsadm names mh-port.
    ipvsLines.push(`-A ${s} -s ${scheduler}${vs.persistence !== null ? ` -p ${vs.persistence}` : ''}${scheduler === 'mh' ? ' -b mh-port' : ''}`);
    // RealServer{Weight: 1}, forwarding left at the default: masquerading.
    for (const d of [...vs.dests].sort()) ipvsLines.push(`-a ${s} -r ${d} -m -w 1`), realServers++;
  }

  // ---- ipset restore ----
  const setLines: string[] = [];
  const inet = family === 6 ? 'inet6' : 'inet';
  for (const [base, type, comment] of SET_INFO) {
    const name = ipvsSetName(base, family);
    setLines.push(`# ${comment}`);
    // createSet(): family/hashsize/maxelem for the ip,port types, a range for bitmap:port. kube-
    // proxy gives hash:ip none (so inet); we give IPv6 its family so its addresses fit.
    let create = `create ${name} ${type}`;
    if (type === 'bitmap:port') create += ` range ${PORT_RANGE}`;
    else if (type !== 'hash:ip') create += ` family ${inet} hashsize ${HASH_SIZE} maxelem ${MAX_ELEM}`;
    else if (family === 6) create += ' family inet6';
    setLines.push(`${create} -exist`, `flush ${name}`);
    for (const e of [...entries.get(base)!].sort()) setLines.push(`add ${name} ${e}`);
  }

  return {
    ipvsadm: ipvsLines.length ? ipvsLines.join('\n') + '\n' : '',
    ipset: setLines.join('\n') + '\n',
    iptables: ipvsIptables(family, opts, (set) => entries.get(set)!.size > 0, noNodeAccess),
    virtualServers: servers.size,
    realServers,
    servers: [...servers.values()].map((vs) => ({
      protocol: vs.protocol, address: vs.address, port: vs.port, scheduler, persistence: vs.persistence,
      schedFlags: scheduler === 'mh' ? ['mh-port'] : [], dests: [...vs.dests].sort(),
    })),
    boundAddresses: [...entries.get('KUBE-IPVS-IPS')!].sort(),
  };
}

/**
 * kube-proxy's iptables rules for the ipvs mode (writeIptablesRules): fixed but for the sets that
 * have members (`nonEmpty`, by IPv4 set name) and the LB VIPs the node must not reach.
 */
export function ipvsIptables(family: Family, opts: IpvsRenderOptions, nonEmpty: (set: string) => boolean, noNodeAccess: readonly { ip: string; protocol: string; port: number }[]): string {
  const mark = masqueradeMark(opts);
  const n = (s: string): string => ipvsSetName(s, family);
  const comment = (s: string): string => `-m comment --comment "${SET_INFO.find(([x]) => x === s)![2]}"`;
  const nat: string[] = [];
  const filter: string[] = [];

  nat.push(`-A KUBE-SERVICES -s ${family === 6 ? '::1/128' : '127.0.0.0/8'} -j RETURN`);
  for (const c of SET_CHAINS) {
    if (!nonEmpty(c.set)) continue;
    const line = `-A ${c.from}${c.proto ? ` -p ${c.proto}` : ''} ${comment(c.set)} -m set --match-set ${n(c.set)} ${c.match} -j ${c.to}`;
    (c.filter ? filter : nat).push(line);
  }
  if (nonEmpty('KUBE-CLUSTER-IP')) {
    const head = `-A KUBE-SERVICES ${comment('KUBE-CLUSTER-IP')} -m set --match-set ${n('KUBE-CLUSTER-IP')}`;
    const notLocal = detectorFor(opts, family)?.ifNotLocal.join(' ') ?? null;
    if (opts.masqueradeAll) nat.push(`${head} dst,dst -j KUBE-MARK-MASQ`);
    // Off-cluster traffic to a VIP may bounce off-node: masquerade it.
    else if (notLocal) nat.push(`${head} dst,dst ${notLocal} -j KUBE-MARK-MASQ`);
    // Without a detector: node traffic gets a VIP of kube-ipvs0 as source; masquerade that.
    else nat.push(`${head} src,dst -j KUBE-MARK-MASQ`);
  }
  const externalIPRules = (head: string): void => {
    // Off-machine traffic (not bridged, not local) and traffic to local addresses is let in.
    nat.push(`${head} -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT`);
    nat.push(`${head} -m addrtype --dst-type LOCAL -j ACCEPT`);
  };
  if (nonEmpty('KUBE-EXTERNAL-IP')) {
    const head = `-A KUBE-SERVICES ${comment('KUBE-EXTERNAL-IP')} -m set --match-set ${n('KUBE-EXTERNAL-IP')} dst,dst`;
    nat.push(`${head} -j KUBE-MARK-MASQ`);
    externalIPRules(head);
  }
  if (nonEmpty('KUBE-EXTERNAL-IP-LOCAL')) {
    externalIPRules(`-A KUBE-SERVICES ${comment('KUBE-EXTERNAL-IP-LOCAL')} -m set --match-set ${n('KUBE-EXTERNAL-IP-LOCAL')} dst,dst`);
  }
  nat.push('-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT');
  nat.push('-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ');
  filter.push('-A KUBE-SOURCE-RANGES-FIREWALL -j DROP');
  // Needs the xt_ipvs match: for IPVS both source and destination are the LB IP.
  for (const e of noNodeAccess) filter.push(`-A KUBE-IPVS-OUT-FILTER -s ${e.ip} -m ipvs --vaddr ${e.ip} --vproto ${e.protocol} --vport ${e.port} -j DROP`);
  // acceptIPVSTraffic(): must stay at the end of KUBE-SERVICES.
  for (const s of ['KUBE-CLUSTER-IP', 'KUBE-LOAD-BALANCER']) if (nonEmpty(s)) nat.push(`-A KUBE-SERVICES -m set --match-set ${n(s)} dst,dst -j ACCEPT`);
  filter.push(`-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark ${mark}/${mark} -j ACCEPT`);
  filter.push('-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT');
  filter.push(`-A KUBE-NODE-PORT ${comment('KUBE-HEALTH-CHECK-NODE-PORT')} -m set --match-set ${n('KUBE-HEALTH-CHECK-NODE-PORT')} dst -j ACCEPT`);
  // KUBE-IPVS-FILTER: a VIP bound to kube-ipvs0 must not expose the host's other ports (issue 72236).
  for (const s of ['KUBE-LOAD-BALANCER', 'KUBE-CLUSTER-IP', 'KUBE-EXTERNAL-IP', 'KUBE-EXTERNAL-IP-LOCAL']) {
    filter.push(`-A KUBE-IPVS-FILTER -m set --match-set ${n(s)} dst,dst -j RETURN`);
  }
  filter.push(`-A KUBE-IPVS-FILTER -m set --match-set ${n('KUBE-HEALTH-CHECK-NODE-PORT')} dst -j RETURN`);
  filter.push(`-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set ${n('KUBE-IPVS-IPS')} dst -j REJECT`);
  nat.push(`-A KUBE-POSTROUTING -m mark ! --mark ${mark}/${mark} -j RETURN`);
  // Clear the mark so a packet re-traversing the stack is not masqueraded twice.
  nat.push(`-A KUBE-POSTROUTING -j MARK --xor-mark ${mark}`);
  nat.push(`-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE${opts.randomFully ? ' --random-fully' : ''}`);
  nat.push(`-A KUBE-MARK-MASQ -j MARK --or-mark ${mark}`);

  const jumps = (isFilter: boolean): string[] =>
    opts.jumps === false ? [] : JUMPS.filter((j) => j[0] === isFilter).reverse().map(([, from, to, c]) => `-A ${from} -m comment --comment "${c}" -j ${to}`);
  const chainLine = (c: string): string => `:${c} - [0:0]`;
  const ipt = [
    '*nat', ...NAT_CHAINS.map(chainLine), ...jumps(false), ...nat, 'COMMIT',
    '*filter', ...FILTER_CHAINS.map(chainLine), ...jumps(true), ...filter, 'COMMIT',
  ];
  return ipt.join('\n') + '\n';
}
