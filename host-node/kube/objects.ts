// objects.ts — the Kubernetes objects kube-proxy reads (Service, discovery.k8s.io/v1 EndpointSlice,
// Node), reduced to the fields it uses, and a loader for multi-document YAML / JSON manifests,
// `kind: List` and `kubectl get -o yaml` lists included. Every problem becomes an issue naming the
// object (`Kind namespace/name`), the field path and, when known, the line; an object with an
// error is left out, valid objects still load. Never decides what gets proxied (see model.ts).
import { LineCounter, type Document } from 'yaml';
import { ipFamily, parseCIDR } from './ip.js';
import { quickDocuments } from './manifest-text.js';
import { TOO_DEEP, yamlDocuments, yamlTooDeep } from './yaml-depth.js';
import { absent, dense, EMPTY, isMapping, NONE, pathText, portsKey, Reader, sameEndpointPorts, sameServicePorts, type NameKind, type Seg } from './object-reader.js';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export type IPFamilyName = 'IPv4' | 'IPv6';
export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
export type TrafficPolicy = 'Cluster' | 'Local';

export interface ObjectMeta {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** Where an object came from, for messages. */
export interface SourceRef {
  source?: string;
  line?: number;
}

export interface ServicePort {
  name: string;
  protocol: Protocol;
  port: number;
  /** 0 when unset. */
  nodePort: number;
  targetPort: number | string | null;
}

export interface LoadBalancerIngress {
  ip: string | null;
  hostname: string | null;
  /** null = unset, which kube-proxy treats as VIP (pkg/proxy/util: IsVIPMode). */
  ipMode: 'VIP' | 'Proxy' | null;
}

export interface Service {
  kind: 'Service';
  metadata: ObjectMeta;
  spec: {
    type: ServiceType;
    clusterIP: string;
    clusterIPs: string[];
    ipFamilies: IPFamilyName[];
    ports: ServicePort[];
    externalIPs: string[];
    externalName: string;
    /** As written (kube-proxy trims the whitespace the API once let through). */
    loadBalancerSourceRanges: string[];
    externalTrafficPolicy: TrafficPolicy;
    internalTrafficPolicy: TrafficPolicy;
    healthCheckNodePort: number;
    sessionAffinity: 'None' | 'ClientIP';
    /** Only meaningful for ClientIP; defaults to 10800 (v1.DefaultClientIPServiceAffinitySeconds). */
    sessionAffinityTimeoutSeconds: number;
    trafficDistribution: string | null;
  };
  status: { loadBalancer: { ingress: LoadBalancerIngress[] } };
  origin?: SourceRef;
}

export interface EndpointPort {
  /** null when absent: kube-proxy ignores such a port (endpointslicecache.go). */
  name: string | null;
  port: number | null;
  protocol: Protocol;
}

export interface Endpoint {
  addresses: string[];
  conditions: { ready: boolean | null; serving: boolean | null; terminating: boolean | null };
  nodeName: string | null;
  zone: string | null;
  hints: { forZones: string[]; forNodes: string[] } | null;
  /** The endpoint's DNS hostname (headless Services: `<hostname>.<svc>.<ns>.svc.<zone>`). */
  hostname: string | null;
}

export interface EndpointSlice {
  kind: 'EndpointSlice';
  metadata: ObjectMeta;
  addressType: 'IPv4' | 'IPv6' | 'FQDN';
  endpoints: Endpoint[];
  ports: EndpointPort[];
  origin?: SourceRef;
}

export interface Node {
  kind: 'Node';
  /** deletionTimestamp: set once the Node is being deleted (null: not). */
  metadata: ObjectMeta & { deletionTimestamp: string | null };
  /** taints: the keys only (kube-proxy reads ToBeDeletedByClusterAutoscaler). */
  spec: { podCIDRs: string[]; taints: string[] };
  status: { addresses: { type: string; address: string }[] };
  origin?: SourceRef;
}

export type KubeObject = Service | EndpointSlice | Node;

export interface ManifestIssue {
  severity: 'error' | 'warning';
  source?: string;
  /** 1-based line in the source text, when known. */
  line?: number;
  /** "Kind namespace/name" (or "Kind name" for Nodes), when the object got that far. */
  object?: string;
  /** Field path inside the object, e.g. "spec.ports[0].port". */
  path: string;
  message: string;
}

export interface ManifestSet {
  services: Service[];
  endpointSlices: EndpointSlice[];
  nodes: Node[];
  issues: ManifestIssue[];
  /** Objects of other kinds that were passed over. */
  skipped: number;
}

export const LABEL_SERVICE_NAME = 'kubernetes.io/service-name';

export function formatIssue(i: ManifestIssue): string {
  const where = [i.source, i.line].filter((x) => x !== undefined).join(':');
  const head = [where, i.object, i.path].filter((x) => x !== undefined && x !== '').join(': ');
  return `${i.severity}: ${head}: ${i.message}`;
}

// Decoded objects share these for absent fields (a full list of 20,000 Services keeps no 20,000
// copies of {} and []); decoded objects are never written to.
const NO_INGRESS: Service['status'] = Object.freeze({ loadBalancer: Object.freeze({ ingress: NONE as LoadBalancerIngress[] }) });
const NO_ORIGIN: SourceRef = Object.freeze({ source: undefined, line: undefined });
/** Endpoint conditions as decoded (ready, serving, terminating each true, false or null): 27 shared objects. */
const CONDITIONS: Endpoint['conditions'][] = [];
for (const ready of [null, false, true]) for (const serving of [null, false, true]) for (const terminating of [null, false, true]) {
  CONDITIONS.push(Object.freeze({ ready, serving, terminating }));
}
const condIndex = (b: boolean | null): number => (b === null ? 0 : b ? 2 : 1);
const conditionsOf = (ready: boolean | null, serving: boolean | null, terminating: boolean | null): Endpoint['conditions'] =>
  CONDITIONS[condIndex(ready) * 9 + condIndex(serving) * 3 + condIndex(terminating)]!;
const SERVICE_TYPES = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'] as const;
const FAMILIES = ['IPv4', 'IPv6'] as const;
const POLICIES = ['Cluster', 'Local'] as const;
const AFFINITIES = ['None', 'ClientIP'] as const;
const ADDRESS_TYPES = ['IPv4', 'IPv6', 'FQDN'] as const;
// Paths of fixed fields, built once.
const ROOT: Seg[] = [];
const METADATA: Seg[] = ['metadata'];
const METADATA_LABELS: Seg[] = ['metadata', 'labels'];
const SPEC: Seg[] = ['spec'];
const STATUS: Seg[] = ['status'];
const STATUS_LB: Seg[] = ['status', 'loadBalancer'];
const ENDPOINTS: Seg[] = ['endpoints'];
const SPEC_AFFINITY: Seg[] = ['spec', 'sessionAffinityConfig'];
const SPEC_AFFINITY_CLIENT: Seg[] = ['spec', 'sessionAffinityConfig', 'clientIP'];
const SPEC_PORTS: Seg[] = ['spec', 'ports', 0];
const PORTS: Seg[] = ['ports', 0];
/** The path of port `i` under `base` (…, 0); built only past the first port (a Reader copies paths it keeps). */
const portPath = (base: Seg[], i: number): Seg[] => (i === 0 ? base : [...base.slice(0, -1), i]);

/** An object's metadata; `kind` is what its name must be (the API server's rule for that kind of object). */
function readMeta(r: Reader, raw: Record<string, unknown>, namespaced: boolean, kind: NameKind): ObjectMeta {
  const m = r.obj(raw.metadata, ROOT, 'metadata');
  const name = r.str(m.name, METADATA, 'name');
  if (name === '') r.error(METADATA, 'missing name', 'name');
  else r.name(name, kind, METADATA, 'name');
  const namespace = namespaced ? r.str(m.namespace, METADATA, 'namespace', 'default') || 'default' : '';
  if (namespaced) r.name(namespace, 'label', METADATA, 'namespace', 'namespace');
  return {
    name,
    namespace,
    labels: r.strMap(m.labels, METADATA, 'labels'),
    annotations: r.strMap(m.annotations, METADATA, 'annotations'),
  };
}

/** A cluster IP as written: "", "None" or an IP address. */
function clusterIPText(r: Reader, v: unknown, at: Seg[], key: Seg): string {
  const t = r.str(v, at, key);
  return t === '' || t === 'None' ? t : r.serviceIP(t, at, key);
}

/**
 * The API server's rules tying a Service's cluster IPs to its families (validation.go,
 * validateServiceClusterIPsRelatedFields): clusterIP is clusterIPs[0], at most one address per
 * family, and clusterIPs[i] of the family ipFamilies[i] names. A Service breaking them would put an
 * address of one family into the other family's rules; it is reported and left out instead.
 */
function checkClusterIPFamilies(r: Reader, clusterIP: string, clusterIPs: string[], ipFamilies: IPFamilyName[]): void {
  if (clusterIPs.length === 0) return;
  if (clusterIP !== clusterIPs[0]) r.error(['spec', 'clusterIPs'], `${JSON.stringify(clusterIPs[0])} must be the same as clusterIP ${JSON.stringify(clusterIP)}`, 0);
  if (clusterIPs.length > 2) r.error(SPEC, 'clusterIPs may hold at most 2 addresses', 'clusterIPs');
  if (clusterIPs.length === 2) {
    const f = ipFamily(clusterIPs[0]!);
    if (f !== null && f === ipFamily(clusterIPs[1]!)) r.error(SPEC, 'clusterIPs may hold no more than one address of each IP family', 'clusterIPs');
  }
  // Most Services name no families: their one cluster IP is not parsed again.
  for (let i = 0; i < clusterIPs.length && i < ipFamilies.length; i++) {
    const f = ipFamily(clusterIPs[i]!);
    if (f !== null && (f === 4 ? 'IPv4' : 'IPv6') !== ipFamilies[i]) {
      r.error(['spec', 'clusterIPs'], `${clusterIPs[i]}: expected an ${ipFamilies[i]} value as indicated by ipFamilies[${i}]`, i);
    }
  }
}

function readServicePorts(r: Reader, v: unknown): ServicePort[] {
  const last = r.lastServicePorts;
  if (last !== null && sameServicePorts(v, last)) return last;
  const ports = readServicePortList(r, v);
  // Node ports are one per Service: lists with one are never shared.
  for (let i = 0; i < ports.length; i++) if (ports[i]!.nodePort !== 0) return ports;
  if (ports.length === 0 || r.failed) return ports;
  return (r.lastServicePorts = r.sharedList(portsKey('S', ports), ports));
}

function readServicePortList(r: Reader, v: unknown): ServicePort[] {
  let seen: Set<string> | null = null;
  const many = Array.isArray(v) && v.length > 1;
  return r.mapList(v, SPEC, 'ports', (pv, i) => {
    const p = isMapping(pv) ? pv : r.obj(pv, ['spec', 'ports'], i);
    const at = portPath(SPEC_PORTS, i);
    const port: ServicePort = {
      name: r.str(p.name, at, 'name'),
      protocol: r.protocol(p.protocol, at, 'protocol'),
      port: r.int(p.port, at, 'port', 1, 65535, 0),
      nodePort: r.int(p.nodePort, at, 'nodePort', 0, 65535, 0),
      targetPort: typeof p.targetPort === 'string' || typeof p.targetPort === 'number' ? p.targetPort : null,
    };
    if (p.port === undefined || p.port === null) r.error(at, 'missing port', 'port');
    if (port.name !== '') r.name(port.name, 'label', at, 'name', 'port');
    // With more than one port: no name twice, and (as the API server has it) no port number twice
    // for one protocol, or two service ports would claim one address and port.
    if (many) {
      const key = `${port.name}/${port.protocol}`, number = `#${port.port}/${port.protocol}`;
      seen ??= new Set();
      if (seen.has(key)) r.error(at, `duplicate port name ${JSON.stringify(port.name)} for ${port.protocol}`, 'name');
      if (seen.has(number)) r.error(at, `duplicate port ${port.port}/${port.protocol}`, 'port');
      seen.add(key).add(number);
    }
    return port;
  });
}

function readService(r: Reader, raw: Record<string, unknown>): Service {
  const metadata = readMeta(r, raw, true, 'dns1035');
  const s = r.obj(raw.spec, ROOT, 'spec');
  const type = r.oneOf(s.type, SPEC, 'type', SERVICE_TYPES, 'ClusterIP');
  let clusterIP = clusterIPText(r, s.clusterIP, SPEC, 'clusterIP');
  let clusterIPs = absent(s.clusterIPs) ? (NONE as string[]) : r.mapList(s.clusterIPs, SPEC, 'clusterIPs', (v, i) => clusterIPText(r, v, ['spec', 'clusterIPs'], i));
  // The API server keeps clusterIP == clusterIPs[0]; fill whichever a hand-written manifest left out.
  if (clusterIPs.length === 0 && clusterIP !== '') clusterIPs = [clusterIP];
  if (clusterIP === '' && clusterIPs.length > 0) clusterIP = clusterIPs[0]!;
  const ipFamilies = absent(s.ipFamilies) ? (NONE as IPFamilyName[]) : r.mapList(s.ipFamilies, SPEC, 'ipFamilies', (v, i) => r.oneOf(v, ['spec', 'ipFamilies'], i, FAMILIES, 'IPv4'));
  if (clusterIP !== 'None') checkClusterIPFamilies(r, clusterIP, clusterIPs, ipFamilies);
  const ports = readServicePorts(r, s.ports);
  const ranges = absent(s.loadBalancerSourceRanges) ? (NONE as string[]) : r.mapList(s.loadBalancerSourceRanges, SPEC, 'loadBalancerSourceRanges', (v, i) => {
    const t = r.str(v, ['spec', 'loadBalancerSourceRanges'], i);
    if (parseCIDR(t.trim()) === null) r.error(['spec', 'loadBalancerSourceRanges'], `invalid CIDR ${JSON.stringify(t)}`, i);
    return t;
  });
  const sac = r.obj(r.obj(s.sessionAffinityConfig, SPEC, 'sessionAffinityConfig').clientIP, SPEC_AFFINITY, 'clientIP');
  const st = r.obj(raw.status, ROOT, 'status');
  const lb = r.obj(st.loadBalancer, STATUS, 'loadBalancer');
  const ingress = absent(lb.ingress) ? (NONE as LoadBalancerIngress[]) : r.mapList(lb.ingress, STATUS_LB, 'ingress', (iv, i): LoadBalancerIngress => {
    const base: Seg[] = ['status', 'loadBalancer', 'ingress', i];
    const ing = r.obj(iv, base);
    const ip = ing.ip === undefined || ing.ip === null || ing.ip === '' ? null : r.serviceIP(ing.ip, base, 'ip');
    const mode = ing.ipMode === undefined || ing.ipMode === null ? null : r.oneOf(ing.ipMode, base, 'ipMode', ['VIP', 'Proxy'] as const, 'VIP');
    return { ip, hostname: r.optStr(ing.hostname, base, 'hostname'), ipMode: mode };
  });
  return {
    kind: 'Service',
    metadata,
    spec: {
      type,
      clusterIP,
      clusterIPs,
      ipFamilies,
      ports,
      externalIPs: absent(s.externalIPs) ? (NONE as string[]) : r.mapList(s.externalIPs, SPEC, 'externalIPs', (v, i) => r.serviceIP(v, ['spec', 'externalIPs'], i)),
      externalName: r.str(s.externalName, SPEC, 'externalName'),
      loadBalancerSourceRanges: ranges,
      externalTrafficPolicy: r.oneOf(s.externalTrafficPolicy, SPEC, 'externalTrafficPolicy', POLICIES, 'Cluster'),
      internalTrafficPolicy: r.oneOf(s.internalTrafficPolicy, SPEC, 'internalTrafficPolicy', POLICIES, 'Cluster'),
      healthCheckNodePort: r.int(s.healthCheckNodePort, SPEC, 'healthCheckNodePort', 0, 65535, 0),
      sessionAffinity: r.oneOf(s.sessionAffinity, SPEC, 'sessionAffinity', AFFINITIES, 'None'),
      sessionAffinityTimeoutSeconds: r.int(sac.timeoutSeconds, SPEC_AFFINITY_CLIENT, 'timeoutSeconds', 1, 86400, 10800),
      trafficDistribution: r.optStr(s.trafficDistribution, SPEC, 'trafficDistribution'),
    },
    status: ingress.length === 0 ? NO_INGRESS : { loadBalancer: { ingress } },
    // Set by collect; named here so the object is built with room for it.
    origin: NO_ORIGIN,
  };
}

/** Hint names (`forZones` / `forNodes`: lists of `{name}`). */
function hintNames(r: Reader, v: unknown, at: Seg[]): string[] {
  const list = r.list(v, at);
  const out: string[] = [];
  for (let k = 0; k < list.length; k++) out.push(r.str(r.obj(list[k], at, k).name, [...at, k], 'name'));
  return out;
}

/** An endpoint condition: true, false or null (unset). */
function condition(r: Reader, v: unknown, i: number, key: string): boolean | null {
  if (v === undefined || v === null) return null;
  return typeof v === 'boolean' ? v : r.bool(v, ['endpoints', i, 'conditions'], key);
}

/** An optional string field of endpoint `i`. */
function endpointStr(r: Reader, v: unknown, i: number, key: string): string | null {
  if (v === undefined || v === null) return null;
  return typeof v === 'string' ? v : r.str(v, ['endpoints', i], key);
}

/** Address `j` of endpoint `i`: an IP of the slice's family (any text for FQDN). */
function endpointAddress(r: Reader, v: unknown, i: number, j: number, addressType: EndpointSlice['addressType']): string {
  if (addressType === 'FQDN') return r.str(v, ['endpoints', i, 'addresses'], j);
  const a = typeof v === 'string' ? v : r.str(v, ['endpoints', i, 'addresses'], j);
  const family = ipFamily(a);
  if (family === null) r.error(['endpoints', i, 'addresses'], `invalid IP address ${JSON.stringify(a)}`, j);
  else if ((family === 4 ? 'IPv4' : 'IPv6') !== addressType) r.error(['endpoints', i, 'addresses'], `${a} is not an ${addressType} address`, j);
  return a;
}


function readEndpoint(r: Reader, ev: unknown, i: number, addressType: EndpointSlice['addressType']): Endpoint {
  const e = isMapping(ev) ? ev : r.obj(ev, ENDPOINTS, i);
  // Paths are built only for a field at fault: a good endpoint needs none.
  const raw = e.addresses;
  const list = raw === undefined || raw === null ? NONE : Array.isArray(raw) ? dense(raw) : r.list(raw, ['endpoints', i], 'addresses');
  // Exactly as long as the list; one address, the usual case, without a callback.
  const addresses = list.length === 0 ? (NONE as string[])
    : list.length === 1 ? [endpointAddress(r, list[0], i, 0, addressType)]
    : list.map((v, j) => endpointAddress(r, v, i, j, addressType));
  if (addresses.length === 0) r.error(['endpoints', i], 'endpoint has no addresses', 'addresses');
  const c = e.conditions === undefined || e.conditions === null ? EMPTY : isMapping(e.conditions) ? e.conditions : r.obj(e.conditions, ['endpoints', i], 'conditions');
  const h = e.hints === undefined || e.hints === null ? null : r.obj(e.hints, ['endpoints', i], 'hints');
  const conditions = conditionsOf(condition(r, c.ready, i, 'ready'), condition(r, c.serving, i, 'serving'), condition(r, c.terminating, i, 'terminating'));
  const nodeName = endpointStr(r, e.nodeName, i, 'nodeName');
  if (typeof e.nodeName === 'string' && !r.validName(nodeName!, 'subdomain', 'node')) r.name(nodeName!, 'subdomain', ['endpoints', i], 'nodeName');
  const hostname = endpointStr(r, e.hostname, i, 'hostname');
  if (typeof e.hostname === 'string' && !r.validName(hostname!, 'label')) r.name(hostname!, 'label', ['endpoints', i], 'hostname');
  return {
    addresses,
    conditions,
    nodeName,
    zone: endpointStr(r, e.zone, i, 'zone'),
    hints: h === null ? null : {
      forZones: hintNames(r, h.forZones, ['endpoints', i, 'hints', 'forZones']),
      forNodes: hintNames(r, h.forNodes, ['endpoints', i, 'hints', 'forNodes']),
    },
    hostname,
  };
}

function readEndpointPorts(r: Reader, v: unknown): EndpointPort[] {
  const last = r.lastEndpointPorts;
  return last !== null && sameEndpointPorts(v, last) ? last : readEndpointPortList(r, v);
}

// Apart from readEndpointPorts: its callback's scope is made only when a list is decoded.
function readEndpointPortList(r: Reader, v: unknown): EndpointPort[] {
  let named = true;
  const ports = r.mapList(v, ROOT, 'ports', (pv, i): EndpointPort => {
    const at = portPath(PORTS, i);
    const p = isMapping(pv) ? pv : r.obj(pv, at);
    const name = r.optStr(p.name, at, 'name');
    if (name === null) {
      named = false;
      r.warn(at, 'port has no name; kube-proxy ignores it', 'name');
    } else if (name !== '') {
      r.name(name, 'label', at, 'name', 'port');
    }
    const port = p.port === undefined || p.port === null ? null : r.int(p.port, at, 'port', 1, 65535, 0);
    return { name, port, protocol: r.protocol(p.protocol, at, 'protocol') };
  });
  if (ports.length === 0 || r.failed) return ports;
  const shared = r.sharedList(portsKey('E', ports), ports);
  if (named) r.lastEndpointPorts = shared;
  return shared;
}

/** A slice's endpoints, as mapList reads a list but with no callback made per slice. */
function readEndpoints(r: Reader, v: unknown, addressType: EndpointSlice['addressType']): Endpoint[] {
  const list = r.list(v, ROOT, 'endpoints');
  if (list.length === 0) return NONE as Endpoint[];
  const out = new Array<Endpoint>(list.length);
  for (let i = 0; i < list.length; i++) if (i in list) out[i] = readEndpoint(r, list[i], i, addressType);
  return out;
}

function readEndpointSlice(r: Reader, raw: Record<string, unknown>): EndpointSlice {
  const metadata = readMeta(r, raw, true, 'subdomain');
  const owner = metadata.labels[LABEL_SERVICE_NAME];
  if (!owner) {
    r.error(METADATA, `missing ${LABEL_SERVICE_NAME} label (kube-proxy cannot tell which Service this slice belongs to)`, 'labels');
  } else {
    r.name(owner, 'labelValue', METADATA_LABELS, LABEL_SERVICE_NAME);
  }
  const addressType = r.oneOf(raw.addressType, ROOT, 'addressType', ADDRESS_TYPES, 'IPv4');
  if (raw.addressType === undefined) r.error(ROOT, 'missing addressType', 'addressType');
  const shared = readEndpointPorts(r, raw.ports);
  const endpoints = readEndpoints(r, raw.endpoints, addressType);
  return { kind: 'EndpointSlice', metadata, addressType, endpoints, ports: shared, origin: NO_ORIGIN };
}

function readNode(r: Reader, raw: Record<string, unknown>): Node {
  const metadata = readMeta(r, raw, false, 'subdomain');
  const s = r.obj(raw.spec, ROOT, 'spec');
  let podCIDRs = r.list(s.podCIDRs, SPEC, 'podCIDRs').map((v, i) => r.str(v, ['spec', 'podCIDRs'], i));
  const single = r.str(s.podCIDR, SPEC, 'podCIDR');
  if (podCIDRs.length === 0 && single !== '') podCIDRs = [single];
  podCIDRs.forEach((c, i) => { if (parseCIDR(c) === null) r.error(['spec', 'podCIDRs'], `invalid CIDR ${JSON.stringify(c)}`, i); });
  const st = r.obj(raw.status, ROOT, 'status');
  const addresses = r.list(st.addresses, STATUS, 'addresses').map((v, i) => {
    const at: Seg[] = ['status', 'addresses', i];
    const a = r.obj(v, at);
    return { type: r.str(a.type, at, 'type'), address: r.str(a.address, at, 'address') };
  });
  const deletion = r.str(r.obj(raw.metadata, ROOT, 'metadata').deletionTimestamp, METADATA, 'deletionTimestamp');
  const taints = r.list(s.taints, SPEC, 'taints').map((v, i) => r.str(r.obj(v, ['spec', 'taints', i]).key, ['spec', 'taints', i], 'key'));
  return { kind: 'Node', metadata: { ...metadata, deletionTimestamp: deletion === '' ? null : deletion }, spec: { podCIDRs, taints }, status: { addresses }, origin: NO_ORIGIN };
}

const READERS: Record<string, (r: Reader, raw: Record<string, unknown>) => KubeObject> = {
  Service: readService,
  EndpointSlice: readEndpointSlice,
  Node: readNode,
};

/** Reads every object, one at a time (collect never runs inside a read). */
const READER = new Reader();

/** Where in the text a path lives: the line of the deepest existing node on it. */
type LineOf = (path: Seg[]) => number | undefined;

function collect(raw: unknown, base: Seg[], lineOf: LineOf, source: string | undefined, out: ManifestSet): void {
  if (raw === null || raw === undefined) return;
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    out.issues.push({ severity: 'error', source, line: lineOf(base), path: pathText(base), message: 'document is not an object' });
    return;
  }
  const o = raw as Record<string, unknown>;
  const kind = typeof o.kind === 'string' ? o.kind : '';
  if (kind === 'List' || (kind.endsWith('List') && Array.isArray(o.items))) {
    if (!Array.isArray(o.items)) {
      out.issues.push({ severity: 'error', source, line: lineOf(base), path: pathText([...base, 'items']), message: 'List has no items' });
      return;
    }
    // Typed lists (ServiceList, ...) from the API leave kind off their items.
    const itemKind = kind === 'List' ? '' : kind.slice(0, -4);
    o.items.forEach((item, i) => {
      const it = item && typeof item === 'object' && !Array.isArray(item) && itemKind && !(item as Record<string, unknown>).kind
        ? { ...(item as Record<string, unknown>), kind: itemKind } : item;
      collect(it, [...base, 'items', i], lineOf, source, out);
    });
    return;
  }
  const read = Object.hasOwn(READERS, kind) ? READERS[kind] : undefined;
  if (!read) {
    if (kind === '') out.issues.push({ severity: 'error', source, line: lineOf(base), path: pathText([...base, 'kind']), message: 'missing kind' });
    else out.skipped++;
    return;
  }
  const r = READER.reset();
  const obj = read(r, o);
  const m = obj.metadata;
  const label = r.issues.length === 0 ? '' : `${kind} ${m.namespace ? `${m.namespace}/` : ''}${m.name || '<unnamed>'}`;
  // Indexed: a for-of would make an iterator for every object, issues or not.
  for (let k = 0; k < r.issues.length; k++) {
    const i = r.issues[k]!;
    const full = [...base, ...i.path];
    out.issues.push({ severity: i.severity, source, line: lineOf(full), object: label, path: pathText(i.path), message: i.message });
  }
  if (r.failed) return;
  const line = lineOf(base);
  obj.origin = source === undefined && line === undefined ? NO_ORIGIN : { source, line };
  if (obj.kind === 'Service') out.services.push(obj);
  else if (obj.kind === 'EndpointSlice') out.endpointSlices.push(obj);
  else out.nodes.push(obj);
}

function emptySet(): ManifestSet {
  return { services: [], endpointSlices: [], nodes: [], issues: [], skipped: 0 };
}

/**
 * Loads every Service, EndpointSlice and Node from multi-document YAML or JSON text (JSON is
 * read as YAML 1.2, which contains it). Never throws on bad input. Text that reads without a
 * problem takes the quick parser (manifest-text.ts); anything else, or `full`, the full one, which
 * says where in the text each problem is.
 */
export function parseManifests(text: string, source?: string, full = false): ManifestSet {
  const tooDeep = (line: number): ManifestSet => {
    const out = emptySet();
    out.issues.push({ severity: 'error', source, line, path: '', message: TOO_DEEP });
    return out;
  };
  const deep = yamlTooDeep(text);
  if (deep !== 0) return tooDeep(deep);
  const quick = full ? null : quickManifests(text, source);
  if (quick) return quick;
  const out = emptySet();
  const lc = new LineCounter();
  let docs: Document.Parsed[];
  try {
    const read = yamlDocuments(text, { lineCounter: lc });
    if ('deep' in read) return tooDeep(read.deep);
    docs = read.docs;
  } catch (e) {
    out.issues.push({ severity: 'error', source, path: '', message: `unreadable: ${(e as Error).message}` });
    return out;
  }
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        out.issues.push({ severity: 'error', source, line: lc.linePos(e.pos[0]).line, path: '', message: e.message.split('\n')[0]! });
      }
      continue;
    }
    const lineOf: LineOf = (path) => {
      for (let n = path.length; n >= 0; n--) {
        const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
        if (node && node.range) return lc.linePos(node.range[0]).line;
      }
      return undefined;
    };
    let raw: unknown;
    try {
      raw = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      out.issues.push({ severity: 'error', source, line: lineOf([]), path: '', message: (e as Error).message });
      continue;
    }
    collect(raw, [], lineOf, source, out);
  }
  READER.endCall();
  return out;
}

/** parseManifests by the quick parser; null when it cannot read the text or an object has a problem. */
function quickManifests(text: string, source: string | undefined): ManifestSet | null {
  const docs = quickDocuments(text);
  if (docs === null) return null;
  const out = emptySet();
  let unknown = false;
  for (const doc of docs) {
    // The lines the quick parser recorded: the document's and its items'; a problem anywhere
    // else is told by the full parser.
    const lineOf: LineOf = (path) => {
      if (path.length === 0) return doc.line;
      const at = path.length === 2 && path[0] === 'items' && typeof path[1] === 'number' ? doc.items?.[path[1]] : undefined;
      if (at === undefined) unknown = true;
      return at;
    };
    collect(doc.value, [], lineOf, source, out);
  }
  READER.endCall();
  return unknown || out.issues.length > 0 ? null : out;
}

/**
 * Objects decoded already, as loadObjects, parseManifests and the Sources hand them (three arrays,
 * issues optional), as a ManifestSet kept as given; null for anything else, such as one object in
 * API form (a `kind: List` has a kind).
 */
export function decodedSet(v: unknown): ManifestSet | null {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
  const o = v as Partial<ManifestSet> & { kind?: unknown };
  if (!Array.isArray(o.services) || !Array.isArray(o.endpointSlices) || !Array.isArray(o.nodes) || o.kind !== undefined) return null;
  return { services: o.services, endpointSlices: o.endpointSlices, nodes: o.nodes, issues: o.issues ?? [], skipped: o.skipped ?? 0 };
}

/** Loads already-decoded objects (e.g. from an API watch); the same rules, without lines. */
export function loadObjects(values: unknown[], source?: string): ManifestSet {
  const out = emptySet();
  const noLine: LineOf = () => undefined;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    // Without lines, the messages about a Service, slice or Node name fields inside it: only the
    // other values need their index as a path.
    const kind = v !== null && typeof v === 'object' ? (v as Record<string, unknown>).kind : undefined;
    const own = typeof kind === 'string' && Object.hasOwn(READERS, kind) && !Array.isArray(v);
    collect(v, own || values.length <= 1 ? ROOT : [i], noLine, source, out);
  }
  READER.endCall();
  return out;
}
