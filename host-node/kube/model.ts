// model.ts — the shared model kube-proxy builds before any mode renders rules: one ServicePortInfo
// per proxied service port and a sorted endpoint list per service port, for ONE IP family (kube-
// proxy runs one proxier per family; dual-stack is two models). Follows pkg/proxy/serviceport.go
// (newBaseServiceInfo), servicechangetracker.go (serviceToServiceMap), endpointslicecache.go and
// pkg/proxy/util (ShouldSkipService, GetClusterIPByFamily). Never renders rules or keeps history.
import type { Endpoint, EndpointSlice, KubeObject, ObjectMeta, Protocol, Service } from './objects.js';
import { LABEL_SERVICE_NAME } from './objects.js';
import { canonicalIP, ipFamily, joinHostPort, parseCIDR, type Family } from './ip.js';

const NO_STRINGS: string[] = Object.freeze([]) as unknown as string[];
const NO_INGRESS: ServicePortInfo['loadBalancerIngress'] = Object.freeze([]) as unknown as ServicePortInfo['loadBalancerIngress'];

/** Label selecting an alternative proxy (pkg/proxy/apis: LabelServiceProxyName). */
export const LABEL_SERVICE_PROXY_NAME = 'service.kubernetes.io/service-proxy-name';
/** Label marking headless services and their slices (v1.IsHeadlessService). */
export const LABEL_HEADLESS = 'service.kubernetes.io/headless';
/** Node label kube-proxy reads for topology (v1.LabelTopologyZone). */
export const LABEL_TOPOLOGY_ZONE = 'topology.kubernetes.io/zone';

export interface ModelOptions {
  /**
   * kube-proxy's informers drop every object carrying service-proxy-name (server.go label
   * selector). An alternative proxy serves exactly the objects that name it; set this to be one.
   */
  proxyName?: string;
}

export interface ServicePortInfo {
  /** Map key: "ns/name:port/PROTOCOL" (Go's ServicePortName struct, protocol included). */
  id: string;
  namespacedName: string;
  portName: string;
  /** ServicePortName.String(): "ns/name:port", or "ns/name" for an unnamed port. */
  name: string;
  family: Family;
  protocol: Protocol;
  /** Canonical text of this family's cluster IP. */
  clusterIP: string;
  port: number;
  nodePort: number;
  /** This family's externalIPs, as written (validated). */
  externalIPs: string[];
  /** This family's ingress entries with an IP. */
  loadBalancerIngress: { ip: string; ipMode: 'VIP' | 'Proxy' }[];
  /** The VIP-mode ingress IPs kube-proxy captures (util.IsVIPMode: unset counts as VIP). */
  loadBalancerVIPs: string[];
  /** This family's source ranges, whitespace trimmed. */
  loadBalancerSourceRanges: string[];
  healthCheckNodePort: number;
  sessionAffinity: 'None' | 'ClientIP';
  /** StickyMaxAgeSeconds; 0 unless ClientIP. */
  stickyMaxAgeSeconds: number;
  externalPolicyLocal: boolean;
  internalPolicyLocal: boolean;
  trafficDistribution: string | null;
}

export interface EndpointInfo {
  ip: string;
  port: number;
  /** net.JoinHostPort(ip, port), the string kube-proxy sorts, dedups and hashes by. */
  endpoint: string;
  isLocal: boolean;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  nodeName: string | null;
  zone: string | null;
  /** null when the endpoint carries no such hints. */
  zoneHints: string[] | null;
  nodeHints: string[] | null;
}

/** "namespace/name" of an object. */
export function namespacedName(m: ObjectMeta): string {
  return joined(m.namespace, '/', m.name);
}

/**
 * The parts as one flat string. V8 keeps `a + b` and template literals of 13 characters or more as
 * a tree of their parts (a 32-byte node per join beside the text); names kept as map keys and
 * model ids for as long as the objects live are built flat instead.
 */
export const flatText = (...parts: string[]): string => parts.join('');

/**
 * flatText of three or five parts, joined from a scratch list: the names and ids this module
 * builds, 100,000 of them in a full sync, leave no list of parts behind each.
 */
function joined(a: string, b: string, c: string, d?: string, e?: string): string {
  if (d === undefined) {
    THREE[0] = a; THREE[1] = b; THREE[2] = c;
    return THREE.join('');
  }
  FIVE[0] = a; FIVE[1] = b; FIVE[2] = c; FIVE[3] = d; FIVE[4] = e ?? '';
  return FIVE.join('');
}
const THREE = ['', '', ''];
const FIVE = ['', '', '', '', ''];

export const familyName = (f: Family): 'IPv4' | 'IPv6' => (f === 4 ? 'IPv4' : 'IPv6');

export function servicePortName(namespacedName: string, portName: string): string {
  return portName === '' ? namespacedName : joined(namespacedName, ':', portName);
}

export function servicePortId(namespacedName: string, portName: string, protocol: Protocol): string {
  return joined(namespacedName, ':', portName, '/', protocol);
}

// serviceport.go: the derived predicates every mode uses.
export function externallyAccessible(sp: ServicePortInfo): boolean {
  return sp.nodePort !== 0 || sp.loadBalancerVIPs.length !== 0 || sp.externalIPs.length !== 0;
}
export function usesClusterEndpoints(sp: ServicePortInfo): boolean {
  // Even with eTP Local, Cluster endpoints are needed to short-circuit pod/host traffic.
  return !sp.internalPolicyLocal || externallyAccessible(sp);
}
export function usesLocalEndpoints(sp: ServicePortInfo): boolean {
  return sp.internalPolicyLocal || (sp.externalPolicyLocal && externallyAccessible(sp));
}

/** True when labels put the object outside this proxy's scope (server.go informer selector). */
export function outOfScope(labels: Record<string, string>, opts: ModelOptions): boolean {
  if (LABEL_HEADLESS in labels) return true;
  const want = labels[LABEL_SERVICE_PROXY_NAME];
  // kube-proxy selects "service-proxy-name DoesNotExist"; a proxy with a name serves exactly the
  // Services that name it.
  return opts.proxyName ? want !== opts.proxyName : want !== undefined;
}

/** proxyutil.GetClusterIPByFamily. */
export function clusterIPForFamily(svc: Service, family: Family): string {
  const spec = svc.spec;
  if (spec.ipFamilies.length === 0) {
    if (spec.clusterIP === '' || spec.clusterIP === 'None') return '';
    return ipFamily(spec.clusterIP) === family ? spec.clusterIP : '';
  }
  const idx = spec.ipFamilies.indexOf(familyName(family));
  return idx >= 0 && idx < spec.clusterIPs.length ? spec.clusterIPs[idx]! : '';
}

/**
 * The canonical cluster IP of this family when the Service is proxied in it; null when it is not
 * (out of scope, proxyutil.ShouldSkipService: headless or ExternalName, or no cluster IP of this
 * family) — exactly when serviceToServicePorts gives null.
 */
export function proxiedClusterIP(svc: Service, family: Family, opts: ModelOptions = {}): string | null {
  if (outOfScope(svc.metadata.labels, opts)) return null;
  const spec = svc.spec;
  if (spec.clusterIP === '' || spec.clusterIP === 'None' || spec.type === 'ExternalName') return null;
  const cip = clusterIPForFamily(svc, family);
  return cip === '' ? null : canonicalIP(cip);
}

/**
 * serviceToServiceMap: the service ports this family proxies, keyed by id; null when the Service
 * is not proxied at all (headless, ExternalName, out of scope, or no cluster IP of this family).
 * `nn` is the Service's "namespace/name" when the caller has it already.
 */
export function serviceToServicePorts(svc: Service | null, family: Family, opts: ModelOptions = {}, nn?: string): Map<string, ServicePortInfo> | null {
  const out = new Map<string, ServicePortInfo>();
  return svc !== null && servicePortsInto(out, svc, family, opts, nn) ? out : null;
}

/**
 * serviceToServicePorts, each service port set into `out` by its id (the model's own map for a
 * Service added since the last sync: no map per Service); false when the Service is not proxied.
 */
function servicePortsInto(out: Map<string, ServicePortInfo>, svc: Service, family: Family, opts: ModelOptions, nn?: string): boolean {
  const clusterIP = proxiedClusterIP(svc, family, opts);
  if (clusterIP === null) return false;
  const spec = svc.spec;

  // pkg/api/v1/service: ExternallyAccessible / ExternalPolicyLocal / InternalPolicyLocal / NeedsHealthCheck.
  const extAccessible = spec.type === 'LoadBalancer' || spec.type === 'NodePort' || (spec.type === 'ClusterIP' && spec.externalIPs.length > 0);
  const externalPolicyLocal = extAccessible && spec.externalTrafficPolicy === 'Local';
  const internalPolicyLocal = spec.internalTrafficPolicy === 'Local';
  const needsHealthCheck = spec.type === 'LoadBalancer' && externalPolicyLocal;
  // Most Services have none of these lists: they share one frozen [] (never written to).
  let externalIPs = NO_STRINGS;
  // Indexed loops: decoded lists may be the shared frozen [], which for-of walks slowly, with an
  // iterator result per step.
  for (let k = 0; k < spec.externalIPs.length; k++) {
    const s = spec.externalIPs[k]!;
    if (ipFamily(s) === family) (externalIPs === NO_STRINGS ? (externalIPs = []) : externalIPs).push(s);
  }
  let sourceRanges = NO_STRINGS;
  for (let k = 0; k < spec.loadBalancerSourceRanges.length; k++) {
    const s = spec.loadBalancerSourceRanges[k]!.trim();
    if (parseCIDR(s)?.family === family) (sourceRanges === NO_STRINGS ? (sourceRanges = []) : sourceRanges).push(s);
  }
  let ingress = NO_INGRESS;
  let vips = NO_STRINGS;
  const ingressList = svc.status.loadBalancer.ingress;
  for (let k = 0; k < ingressList.length; k++) {
    const i = ingressList[k]!;
    if (i.ip === null || ipFamily(i.ip) !== family) continue;
    const mode = i.ipMode ?? 'VIP';
    (ingress === NO_INGRESS ? (ingress = []) : ingress).push({ ip: i.ip, ipMode: mode });
    if (mode === 'VIP') (vips === NO_STRINGS ? (vips = []) : vips).push(i.ip);
  }
  nn ??= namespacedName(svc.metadata);

  for (let k = 0; k < spec.ports.length; k++) {
    const p = spec.ports[k]!;
    const id = servicePortId(nn, p.name, p.protocol);
    out.set(id, {
      id,
      namespacedName: nn,
      portName: p.name,
      // servicePortName(nn, p.name), read off the id's start: no second text built per port.
      name: p.name === '' ? nn : id.slice(0, nn.length + 1 + p.name.length),
      family,
      protocol: p.protocol,
      clusterIP,
      port: p.port,
      nodePort: p.nodePort,
      externalIPs,
      loadBalancerIngress: ingress,
      loadBalancerVIPs: spec.ports.length === 1 || vips === NO_STRINGS ? vips : [...vips],
      loadBalancerSourceRanges: sourceRanges,
      healthCheckNodePort: needsHealthCheck ? spec.healthCheckNodePort : 0,
      sessionAffinity: spec.sessionAffinity,
      stickyMaxAgeSeconds: spec.sessionAffinity === 'ClientIP' ? spec.sessionAffinityTimeoutSeconds : 0,
      externalPolicyLocal,
      internalPolicyLocal,
      trafficDistribution: spec.trafficDistribution,
    });
  }
  return true;
}

/** The Service a slice belongs to ("ns/name"), or null when it is not usable (endpointSliceCacheKeys). */
export function sliceServiceName(slice: EndpointSlice): string | null {
  const svc = slice.metadata.labels[LABEL_SERVICE_NAME];
  if (!svc || slice.metadata.namespace === '' || slice.metadata.name === '') return null;
  return joined(slice.metadata.namespace, '/', svc);
}

/** Endpoint condition bits; HINTED: the endpoint has an entry in HINTS. */
const LOCAL = 1, READY = 2, SERVING = 4, TERMINATING = 8, HINTED = 16;

/** Deduplicated hint names of the endpoints that carry any (few do): no field for them on every endpoint. */
const HINTS = new WeakMap<SliceEndpoint, { zones: string[] | null; nodes: string[] | null }>();

/**
 * An endpoint as the model keeps it: its port, conditions and whether it has hints as one number,
 * its node and zone read from the decoded endpoint it came from (never written to), and its
 * "ip:port" text made when first read (the iptables and ipvs renderers read it; the direct mode
 * never does). A full sync of 20,000 Services with 10 endpoints each holds 200,000 of these: four
 * fields each.
 */
class SliceEndpoint implements EndpointInfo {
  private text: string | null = null;
  /** The port (1-65535) in the low 16 bits, the condition bits (LOCAL, READY, …) above. */
  private readonly bits: number;
  constructor(readonly ip: string, port: number, flags: number, private readonly from: Endpoint) {
    this.bits = port | (flags << 16);
  }
  get port(): number { return this.bits & 0xffff; }
  get endpoint(): string { return (this.text ??= joinHostPort(this.ip, this.port)); }
  get isLocal(): boolean { return (this.bits & (LOCAL << 16)) !== 0; }
  get ready(): boolean { return (this.bits & (READY << 16)) !== 0; }
  get serving(): boolean { return (this.bits & (SERVING << 16)) !== 0; }
  get terminating(): boolean { return (this.bits & (TERMINATING << 16)) !== 0; }
  get nodeName(): string | null { return this.from.nodeName; }
  get zone(): string | null { return this.from.zone; }
  // Told by a bit, not by the decoded endpoint: categorize asks every ready endpoint of every sync.
  get zoneHints(): string[] | null { return (this.bits & (HINTED << 16)) === 0 ? null : HINTS.get(this)!.zones; }
  get nodeHints(): string[] | null { return (this.bits & (HINTED << 16)) === 0 ? null : HINTS.get(this)!.nodes; }
}

/**
 * getEndpointsMap: the endpoints of one Service's slices (a single slice as itself), grouped by
 * service port id and sorted by endpoint string. Slices are read in name order so a duplicate
 * endpoint resolves the same way every time (Go leaves that order to its map).
 */
export function endpointsFromSlices(namespacedName: string, slices: EndpointSlice | Iterable<EndpointSlice>, nodeName: string): Map<string, EndpointInfo[]> {
  const out = new Map<string, EndpointInfo[]>();
  endpointsInto(out, null, namespacedName, slices, nodeName);
  return out;
}

/**
 * endpointsFromSlices into `out`, which holds no list of this Service yet (the model's own map for
 * a Service whose first slices arrived: no map per Service). A list is keyed by its service
 * port's own id text when `services` has it (one string for both maps).
 */
function endpointsInto(out: Map<string, EndpointInfo[]>, services: Map<string, ServicePortInfo> | null, namespacedName: string, slices: EndpointSlice | Iterable<EndpointSlice>, nodeName: string): void {
  let keys = 0;
  if (isSlice(slices)) {
    keys = addSliceEndpoints(out, services, keys, namespacedName, slices, nodeName);
  } else {
    const sorted: EndpointSlice[] = Array.isArray(slices) ? (slices as EndpointSlice[]).slice() : [...slices];
    if (sorted.length > 1) sortStable(sorted, (a, b) => a.metadata.name < b.metadata.name);
    for (let s = 0; s < sorted.length; s++) keys = addSliceEndpoints(out, services, keys, namespacedName, sorted[s]!, nodeName);
  }
  for (let k = 0; k < keys; k++) {
    const key = KEYS[k]!;
    const list = LISTS[k]!;
    // byEndpoint: plain string order of "ip:port" (a stable sort: duplicates stay in slice order).
    if (list.length > 1) sortStable(list, hostPortBefore);
    const kept = dedupEndpoints(list);
    // A list is kept exactly as long as it is (one pushed to reserves room for more).
    if (kept !== list || GROWN[k]) out.set(key, kept.slice());
  }
}

/**
 * Scratch of endpointsInto (never re-entered): the keys it added, in order, with the list set for
 * each and whether a later slice appended to it; and one port's endpoints of one slice, copied out
 * at their length. Entries past the current use are stale, never read (a Service has a few keys; a
 * slice at most 1,000 endpoints).
 */
const KEYS: string[] = [];
const LISTS: EndpointInfo[][] = [];
const GROWN: boolean[] = [];
const PORT_ENDPOINTS: EndpointInfo[] = [];

const isSlice = (s: EndpointSlice | Iterable<EndpointSlice>): s is EndpointSlice => (s as EndpointSlice).kind === 'EndpointSlice';

/**
 * Adds the endpoints of one slice to their service ports' lists in `out`, a new list at its
 * length; `keys` lists are in KEYS already. Returns the count of KEYS after it.
 */
function addSliceEndpoints(out: Map<string, EndpointInfo[]>, services: Map<string, ServicePortInfo> | null, keys: number, namespacedName: string, slice: EndpointSlice, nodeName: string): number {
  for (let q = 0; q < slice.ports.length; q++) {
    const port = slice.ports[q]!;
    // "Ignoring port with nil name" / "Ignoring invalid endpoint port"
    if (port.name === null || port.port === null || port.port === 0) continue;
    let n = 0;
    for (let e = 0; e < slice.endpoints.length; e++) {
      const ep = slice.endpoints[e]!;
      if (ep.addresses.length === 0) continue;
      const ip = canonicalIP(ep.addresses[0]!);
      if (ip === null) continue;
      const c = ep.conditions;
      const h = ep.hints;
      const zones = h && h.forZones.length > 0 ? [...new Set(h.forZones)] : null;
      const nodes = h && h.forNodes.length > 0 ? [...new Set(h.forNodes)] : null;
      const flags = (ep.nodeName !== null && nodeName !== '' && ep.nodeName === nodeName ? LOCAL : 0)
        | (c.ready === null || c.ready ? READY : 0) | (c.serving === null || c.serving ? SERVING : 0) | (c.terminating === true ? TERMINATING : 0)
        | (zones !== null || nodes !== null ? HINTED : 0);
      const info = new SliceEndpoint(ip, port.port, flags, ep);
      if (zones !== null || nodes !== null) HINTS.set(info, { zones, nodes });
      PORT_ENDPOINTS[n++] = info;
    }
    if (n === 0) continue;
    let id = servicePortId(namespacedName, port.name, port.protocol);
    if (services !== null) id = services.get(id)?.id ?? id;
    const list = out.get(id);
    if (list === undefined) {
      const added = PORT_ENDPOINTS.slice(0, n);
      out.set(id, added);
      KEYS[keys] = id;
      LISTS[keys] = added;
      GROWN[keys++] = false;
    } else {
      for (let k = 0; k < n; k++) list.push(PORT_ENDPOINTS[k]!);
      GROWN[KEYS.lastIndexOf(id, keys - 1)] = true;
    }
  }
  return keys;
}

/**
 * joinHostPort(a) < joinHostPort(b) in plain string order, without building either string: the
 * hosts decide unless one is a prefix of the other, where the shorter one continues with ':' (or
 * ']' for IPv6, whose common '[' never decides); equal hosts compare their ports' decimal text.
 */
export function hostPortBefore(a: { ip: string; port: number }, b: { ip: string; port: number }): boolean {
  const x = a.ip, y = b.ip;
  if (x === y) return a.port !== b.port && String(a.port) < String(b.port);
  const x6 = x.includes(':');
  if (x6 !== y.includes(':')) return !x6;   // '[' sorts after every digit
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    const cx = x.charCodeAt(i), cy = y.charCodeAt(i);
    if (cx !== cy) return cx < cy;
  }
  const end = x6 ? 0x5d : 0x3a;
  return x.length < y.length ? end < y.charCodeAt(n) : x.charCodeAt(n) < end;
}

const sameHostPort = (a: EndpointInfo, b: EndpointInfo): boolean => a.ip === b.ip && a.port === b.port;

/**
 * Sorts in place, stably, by `before`; short lists (a Service's endpoints, its slices) by
 * insertion, which allocates nothing (Array.prototype.sort sets up work arrays on every call).
 */
function sortStable<T>(list: T[], before: (a: T, b: T) => boolean): void {
  if (list.length > 32) {
    list.sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0));
    return;
  }
  for (let i = 1; i < list.length; i++) {
    const x = list[i]!;
    let j = i - 1;
    for (; j >= 0 && before(x, list[j]!); j--) list[j + 1] = list[j]!;
    list[j + 1] = x;
  }
}

/**
 * addEndpoints on a sorted list: of the endpoints sharing one IP:port (in slice order), the last
 * non-terminating one wins, else the first; as a map keyed by IP:port where a terminating endpoint
 * never replaces one already there. No copy when nothing repeats (the usual case). IPs are
 * canonical, so one IP:port text is one (ip, port) pair.
 */
function dedupEndpoints(sorted: EndpointInfo[]): EndpointInfo[] {
  let k = 1;
  while (k < sorted.length && !sameHostPort(sorted[k]!, sorted[k - 1]!)) k++;
  if (k >= sorted.length) return sorted;
  const out: EndpointInfo[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    let win = sorted[i]!;
    for (; j < sorted.length && sameHostPort(sorted[j]!, win); j++) if (j > i && !sorted[j]!.terminating) win = sorted[j]!;
    out.push(win);
    i = j;
  }
  return out;
}

/** One family's service ports and endpoints, as the proxier holds them between syncs. */
export class ProxyModel {
  readonly services = new Map<string, ServicePortInfo>();
  readonly endpoints = new Map<string, EndpointInfo[]>();
  constructor(readonly family: Family) {}

  /** ServicePortMap.Update: merge current, then remove previous ports that current no longer has. */
  applyServiceChange(previous: Map<string, ServicePortInfo> | null, current: Map<string, ServicePortInfo> | null): void {
    if ((current && current.size > 0) || (previous && previous.size > 0)) this.sorted = null;
    if (current) current.forEach((sp, id) => this.services.set(id, sp));
    if (previous) previous.forEach((_, id) => { if (!current || !current.has(id)) this.services.delete(id); });
  }

  /** applyServiceChange(null, serviceToServicePorts(svc, …)) for a Service new since the last sync. */
  addService(svc: Service, opts: ModelOptions, nn?: string): void {
    if (servicePortsInto(this.services, svc, this.family, opts, nn)) this.sorted = null;
  }

  /**
   * applyEndpointsChange(empty, endpointsFromSlices(…)) for a Service whose slices all arrived
   * since the last sync (so the model holds no endpoints of it).
   */
  addEndpoints(namespacedName: string, slices: EndpointSlice | Iterable<EndpointSlice>, nodeName: string): void {
    endpointsInto(this.endpoints, this.services, namespacedName, slices, nodeName);
  }

  /** EndpointsMap.Update: unmerge previous, then merge current. */
  applyEndpointsChange(previous: Map<string, EndpointInfo[]>, current: Map<string, EndpointInfo[]>): void {
    previous.forEach((_, id) => this.endpoints.delete(id));
    this.mergeEndpoints(current);
  }

  /**
   * applyEndpointsChange(endpointsFromSlices(nn, was, …), current) for the Service whose slices
   * were `was`, without building the lists it takes out: the id of every usable port of those
   * slices goes (the model holds exactly endpointsFromSlices of the slices last applied, so an id
   * with no endpoints there is not in it), then current is merged.
   */
  replaceEndpoints(nn: string, was: EndpointSlice | readonly EndpointSlice[], current: Map<string, EndpointInfo[]>): void {
    const slices = isSlice(was as EndpointSlice) ? [was as EndpointSlice] : was as readonly EndpointSlice[];
    for (const slice of slices) {
      for (const port of slice.ports) {
        if (port.name !== null && port.port !== null && port.port !== 0) this.endpoints.delete(servicePortId(nn, port.name, port.protocol));
      }
    }
    this.mergeEndpoints(current);
  }

  private mergeEndpoints(current: Map<string, EndpointInfo[]>): void {
    // Keyed by the service port's own id text where it has one (one string for both maps).
    current.forEach((eps, id) => this.endpoints.set(this.services.get(id)?.id ?? id, eps));
  }

  /** Service ports in a stable order (kube-proxy walks a Go map; we sort by id). */
  sortedServices(): readonly ServicePortInfo[] {
    return (this.sorted ??= [...this.services.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)));
  }
  /** sortedServices() until the next service change (endpoint-only syncs keep the order). */
  private sorted: readonly ServicePortInfo[] | null = null;
}

/**
 * deepEqual for two objects as objects.ts decodes them: Services and EndpointSlices read field by
 * field (a full list compares every unchanged object with its last version: 40,000 at 20,000
 * Services, where walking their keys generically cost ~90 ms), Nodes through deepEqual. `origin`
 * (where each came from) counts unless `ignoreOrigin`.
 */
export function sameObject(a: KubeObject, b: KubeObject, ignoreOrigin = false): boolean {
  if (a === b) return true;
  if (a.kind !== b.kind || !sameMeta(a.metadata, b.metadata)) return false;
  if (!ignoreOrigin && (a.origin !== b.origin && (a.origin?.source !== b.origin?.source || a.origin?.line !== b.origin?.line))) return false;
  if (a.kind === 'Service') return sameService(a, b as Service);
  if (a.kind === 'EndpointSlice') return sameSlice(a, b as EndpointSlice);
  return deepEqual({ ...a, origin: undefined }, { ...b, origin: undefined });
}

function sameMeta(a: ObjectMeta, b: ObjectMeta): boolean {
  return a === b || (a.name === b.name && a.namespace === b.namespace && sameRecord(a.labels, b.labels) && sameRecord(a.annotations, b.annotations));
}

function sameRecord(a: Record<string, string>, b: Record<string, string>): boolean {
  if (a === b) return true;
  let n = 0;
  for (const k in a) {
    if (!Object.hasOwn(a, k)) continue;
    if (!Object.hasOwn(b, k) || a[k] !== b[k]) return false;
    n++;
  }
  for (const k in b) if (Object.hasOwn(b, k)) n--;
  return n === 0;
}

function sameStrings(a: readonly (string | null)[], b: readonly (string | null)[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameService(a: Service, b: Service): boolean {
  const x = a.spec, y = b.spec;
  if (x !== y && (x.type !== y.type || x.clusterIP !== y.clusterIP || x.externalName !== y.externalName ||
    x.externalTrafficPolicy !== y.externalTrafficPolicy || x.internalTrafficPolicy !== y.internalTrafficPolicy ||
    x.healthCheckNodePort !== y.healthCheckNodePort || x.sessionAffinity !== y.sessionAffinity ||
    x.sessionAffinityTimeoutSeconds !== y.sessionAffinityTimeoutSeconds || x.trafficDistribution !== y.trafficDistribution ||
    !sameStrings(x.clusterIPs, y.clusterIPs) || !sameStrings(x.ipFamilies, y.ipFamilies) || !sameStrings(x.externalIPs, y.externalIPs) ||
    !sameStrings(x.loadBalancerSourceRanges, y.loadBalancerSourceRanges))) return false;
  if (x.ports !== y.ports) {
    if (x.ports.length !== y.ports.length) return false;
    for (let i = 0; i < x.ports.length; i++) {
      const p = x.ports[i]!, q = y.ports[i]!;
      if (p !== q && (p.name !== q.name || p.protocol !== q.protocol || p.port !== q.port || p.nodePort !== q.nodePort || p.targetPort !== q.targetPort)) return false;
    }
  }
  const u = a.status.loadBalancer.ingress, v = b.status.loadBalancer.ingress;
  if (u === v) return true;
  if (u.length !== v.length) return false;
  for (let i = 0; i < u.length; i++) {
    const p = u[i]!, q = v[i]!;
    if (p !== q && (p.ip !== q.ip || p.hostname !== q.hostname || p.ipMode !== q.ipMode)) return false;
  }
  return true;
}

function sameSlice(a: EndpointSlice, b: EndpointSlice): boolean {
  if (a.addressType !== b.addressType) return false;
  if (a.ports !== b.ports) {
    if (a.ports.length !== b.ports.length) return false;
    for (let i = 0; i < a.ports.length; i++) {
      const p = a.ports[i]!, q = b.ports[i]!;
      if (p !== q && (p.name !== q.name || p.port !== q.port || p.protocol !== q.protocol)) return false;
    }
  }
  const x = a.endpoints, y = b.endpoints;
  if (x === y) return true;
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) {
    const e = x[i]!, f = y[i]!;
    if (e === f) continue;
    if (e.nodeName !== f.nodeName || e.zone !== f.zone || e.hostname !== f.hostname || !sameStrings(e.addresses, f.addresses)) return false;
    const c = e.conditions, d = f.conditions;
    if (c !== d && (c.ready !== d.ready || c.serving !== d.serving || c.terminating !== d.terminating)) return false;
    const h = e.hints, k = f.hints;
    if (h !== k && (h === null || k === null || !sameStrings(h.forZones, k.forZones) || !sameStrings(h.forNodes, k.forNodes))) return false;
  }
  return true;
}

/** Structural equality for the plain data above (Maps, arrays, objects, scalars). */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (a instanceof Map || b instanceof Map) {
    if (!(a instanceof Map && b instanceof Map) || a.size !== b.size) return false;
    for (const [k, v] of a) if (!b.has(k) || !deepEqual(v, b.get(k))) return false;
    return true;
  }
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a as object);
  const kb = Object.keys(b as object);
  if (ka.length !== kb.length) return false;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k)) return false;
    if (!deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}
