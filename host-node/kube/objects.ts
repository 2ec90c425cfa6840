// objects.ts — the Kubernetes objects kube-proxy reads (Service, discovery.k8s.io/v1 EndpointSlice,
// Node), reduced to the fields it uses, and a loader for multi-document YAML / JSON manifests,
// `kind: List` and `kubectl get -o yaml` lists included. Every problem becomes an issue naming the
// object (`Kind namespace/name`), the field path and, when known, the line; an object with an
// error is left out, valid objects still load. Never decides what gets proxied (see model.ts).
import { LineCounter, parseAllDocuments, type Document } from 'yaml';
import { parseCIDR, parseIP } from './ip.js';

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
  metadata: ObjectMeta;
  spec: { podCIDRs: string[] };
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

type Seg = string | number;
const pathText = (p: Seg[]): string =>
  p.reduce<string>((acc, s) => (typeof s === 'number' ? `${acc}[${s}]` : acc === '' ? s : `${acc}.${s}`), '');

/** Reads one raw object; collects issues with paths relative to the object. */
class Reader {
  readonly issues: { severity: 'error' | 'warning'; path: Seg[]; message: string }[] = [];
  error(path: Seg[], message: string): void { this.issues.push({ severity: 'error', path, message }); }
  warn(path: Seg[], message: string): void { this.issues.push({ severity: 'warning', path, message }); }
  get failed(): boolean { return this.issues.some((i) => i.severity === 'error'); }

  obj(v: unknown, path: Seg[]): Record<string, unknown> {
    if (v === undefined || v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v)) { this.error(path, 'must be a mapping'); return {}; }
    return v as Record<string, unknown>;
  }
  list(v: unknown, path: Seg[]): unknown[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) { this.error(path, 'must be a list'); return []; }
    return v;
  }
  str(v: unknown, path: Seg[], dflt = ''): string {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'string') { this.error(path, `must be a string, got ${JSON.stringify(v)}`); return dflt; }
    return v;
  }
  optStr(v: unknown, path: Seg[]): string | null {
    return v === undefined || v === null ? null : this.str(v, path);
  }
  bool(v: unknown, path: Seg[]): boolean | null {
    if (v === undefined || v === null) return null;
    if (typeof v !== 'boolean') { this.error(path, `must be true or false, got ${JSON.stringify(v)}`); return null; }
    return v;
  }
  int(v: unknown, path: Seg[], min: number, max: number, dflt: number): number {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v)) { this.error(path, `must be an integer, got ${JSON.stringify(v)}`); return dflt; }
    if (v < min || v > max) { this.error(path, `${v} is out of range ${min}-${max}`); return dflt; }
    return v;
  }
  oneOf<T extends string>(v: unknown, path: Seg[], allowed: readonly T[], dflt: T): T {
    const s = this.str(v, path, dflt);
    if (!(allowed as readonly string[]).includes(s)) { this.error(path, `unknown value ${JSON.stringify(s)} (expected ${allowed.join(', ')})`); return dflt; }
    return s as T;
  }
  ip(v: unknown, path: Seg[]): string {
    const s = this.str(v, path);
    if (parseIP(s) === null) this.error(path, `invalid IP address ${JSON.stringify(s)}`);
    return s;
  }
  strMap(v: unknown, path: Seg[]): Record<string, string> {
    const o = this.obj(v, path);
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(o)) out[k] = this.str(val, [...path, k]);
    return out;
  }
  protocol(v: unknown, path: Seg[]): Protocol {
    return this.oneOf(v, path, ['TCP', 'UDP', 'SCTP'] as const, 'TCP');
  }
}

function readMeta(r: Reader, raw: Record<string, unknown>, namespaced: boolean): ObjectMeta {
  const m = r.obj(raw.metadata, ['metadata']);
  const name = r.str(m.name, ['metadata', 'name']);
  if (name === '') r.error(['metadata', 'name'], 'missing name');
  return {
    name,
    namespace: namespaced ? r.str(m.namespace, ['metadata', 'namespace'], 'default') || 'default' : '',
    labels: r.strMap(m.labels, ['metadata', 'labels']),
    annotations: r.strMap(m.annotations, ['metadata', 'annotations']),
  };
}

function readService(r: Reader, raw: Record<string, unknown>): Service {
  const metadata = readMeta(r, raw, true);
  const s = r.obj(raw.spec, ['spec']);
  const P = (...p: Seg[]): Seg[] => ['spec', ...p];
  const type = r.oneOf(s.type, P('type'), ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'] as const, 'ClusterIP');
  const clusterIPText = (v: unknown, path: Seg[]): string => {
    const t = r.str(v, path);
    if (t !== '' && t !== 'None' && parseIP(t) === null) r.error(path, `invalid IP address ${JSON.stringify(t)}`);
    return t;
  };
  let clusterIP = clusterIPText(s.clusterIP, P('clusterIP'));
  let clusterIPs = r.list(s.clusterIPs, P('clusterIPs')).map((v, i) => clusterIPText(v, P('clusterIPs', i)));
  // The API server keeps clusterIP == clusterIPs[0]; fill whichever a hand-written manifest left out.
  if (clusterIPs.length === 0 && clusterIP !== '') clusterIPs = [clusterIP];
  if (clusterIP === '' && clusterIPs.length > 0) clusterIP = clusterIPs[0]!;
  const ipFamilies = r.list(s.ipFamilies, P('ipFamilies')).map((v, i) => r.oneOf(v, P('ipFamilies', i), ['IPv4', 'IPv6'] as const, 'IPv4'));
  const seen = new Set<string>();
  const ports = r.list(s.ports, P('ports')).map((pv, i): ServicePort => {
    const p = r.obj(pv, P('ports', i));
    const port: ServicePort = {
      name: r.str(p.name, P('ports', i, 'name')),
      protocol: r.protocol(p.protocol, P('ports', i, 'protocol')),
      port: r.int(p.port, P('ports', i, 'port'), 1, 65535, 0),
      nodePort: r.int(p.nodePort, P('ports', i, 'nodePort'), 0, 65535, 0),
      targetPort: typeof p.targetPort === 'string' || typeof p.targetPort === 'number' ? p.targetPort : null,
    };
    if (p.port === undefined || p.port === null) r.error(P('ports', i, 'port'), 'missing port');
    const key = `${port.name}/${port.protocol}`;
    if (seen.has(key)) r.error(P('ports', i, 'name'), `duplicate port name ${JSON.stringify(port.name)} for ${port.protocol}`);
    seen.add(key);
    return port;
  });
  const ranges = r.list(s.loadBalancerSourceRanges, P('loadBalancerSourceRanges')).map((v, i) => {
    const t = r.str(v, P('loadBalancerSourceRanges', i));
    if (parseCIDR(t.trim()) === null) r.error(P('loadBalancerSourceRanges', i), `invalid CIDR ${JSON.stringify(t)}`);
    return t;
  });
  const sac = r.obj(r.obj(s.sessionAffinityConfig, P('sessionAffinityConfig')).clientIP, P('sessionAffinityConfig', 'clientIP'));
  const st = r.obj(raw.status, ['status']);
  const lb = r.obj(st.loadBalancer, ['status', 'loadBalancer']);
  const ingress = r.list(lb.ingress, ['status', 'loadBalancer', 'ingress']).map((iv, i): LoadBalancerIngress => {
    const base: Seg[] = ['status', 'loadBalancer', 'ingress', i];
    const ing = r.obj(iv, base);
    const ip = ing.ip === undefined || ing.ip === null || ing.ip === '' ? null : r.ip(ing.ip, [...base, 'ip']);
    const mode = ing.ipMode === undefined || ing.ipMode === null ? null : r.oneOf(ing.ipMode, [...base, 'ipMode'], ['VIP', 'Proxy'] as const, 'VIP');
    return { ip, hostname: r.optStr(ing.hostname, [...base, 'hostname']), ipMode: mode };
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
      externalIPs: r.list(s.externalIPs, P('externalIPs')).map((v, i) => r.ip(v, P('externalIPs', i))),
      externalName: r.str(s.externalName, P('externalName')),
      loadBalancerSourceRanges: ranges,
      externalTrafficPolicy: r.oneOf(s.externalTrafficPolicy, P('externalTrafficPolicy'), ['Cluster', 'Local'] as const, 'Cluster'),
      internalTrafficPolicy: r.oneOf(s.internalTrafficPolicy, P('internalTrafficPolicy'), ['Cluster', 'Local'] as const, 'Cluster'),
      healthCheckNodePort: r.int(s.healthCheckNodePort, P('healthCheckNodePort'), 0, 65535, 0),
      sessionAffinity: r.oneOf(s.sessionAffinity, P('sessionAffinity'), ['None', 'ClientIP'] as const, 'None'),
      sessionAffinityTimeoutSeconds: r.int(sac.timeoutSeconds, P('sessionAffinityConfig', 'clientIP', 'timeoutSeconds'), 1, 86400, 10800),
      trafficDistribution: r.optStr(s.trafficDistribution, P('trafficDistribution')),
    },
    status: { loadBalancer: { ingress } },
  };
}

function readEndpointSlice(r: Reader, raw: Record<string, unknown>): EndpointSlice {
  const metadata = readMeta(r, raw, true);
  if (!metadata.labels[LABEL_SERVICE_NAME]) {
    r.error(['metadata', 'labels'], `missing ${LABEL_SERVICE_NAME} label (kube-proxy cannot tell which Service this slice belongs to)`);
  }
  const addressType = r.oneOf(raw.addressType, ['addressType'], ['IPv4', 'IPv6', 'FQDN'] as const, 'IPv4');
  if (raw.addressType === undefined) r.error(['addressType'], 'missing addressType');
  const ports = r.list(raw.ports, ['ports']).map((pv, i): EndpointPort => {
    const p = r.obj(pv, ['ports', i]);
    const name = r.optStr(p.name, ['ports', i, 'name']);
    if (name === null) r.warn(['ports', i, 'name'], 'port has no name; kube-proxy ignores it');
    const port = p.port === undefined || p.port === null ? null : r.int(p.port, ['ports', i, 'port'], 1, 65535, 0);
    return { name, port, protocol: r.protocol(p.protocol, ['ports', i, 'protocol']) };
  });
  const endpoints = r.list(raw.endpoints, ['endpoints']).map((ev, i): Endpoint => {
    const base: Seg[] = ['endpoints', i];
    const e = r.obj(ev, base);
    const addresses = r.list(e.addresses, [...base, 'addresses']).map((v, j) => {
      const path = [...base, 'addresses', j];
      if (addressType === 'FQDN') return r.str(v, path);
      const a = r.ip(v, path);
      const ip = parseIP(a);
      if (ip && `IPv${ip.family}` !== addressType) r.error(path, `${a} is not an ${addressType} address`);
      return a;
    });
    if (addresses.length === 0) r.error([...base, 'addresses'], 'endpoint has no addresses');
    const c = r.obj(e.conditions, [...base, 'conditions']);
    const h = e.hints === undefined || e.hints === null ? null : r.obj(e.hints, [...base, 'hints']);
    const names = (v: unknown, path: Seg[]): string[] =>
      r.list(v, path).map((x, k) => r.str(r.obj(x, [...path, k]).name, [...path, k, 'name']));
    return {
      addresses,
      conditions: {
        ready: r.bool(c.ready, [...base, 'conditions', 'ready']),
        serving: r.bool(c.serving, [...base, 'conditions', 'serving']),
        terminating: r.bool(c.terminating, [...base, 'conditions', 'terminating']),
      },
      nodeName: r.optStr(e.nodeName, [...base, 'nodeName']),
      zone: r.optStr(e.zone, [...base, 'zone']),
      hints: h === null ? null : { forZones: names(h.forZones, [...base, 'hints', 'forZones']), forNodes: names(h.forNodes, [...base, 'hints', 'forNodes']) },
      hostname: r.optStr(e.hostname, [...base, 'hostname']),
    };
  });
  return { kind: 'EndpointSlice', metadata, addressType, endpoints, ports };
}

function readNode(r: Reader, raw: Record<string, unknown>): Node {
  const metadata = readMeta(r, raw, false);
  const s = r.obj(raw.spec, ['spec']);
  let podCIDRs = r.list(s.podCIDRs, ['spec', 'podCIDRs']).map((v, i) => r.str(v, ['spec', 'podCIDRs', i]));
  const single = r.str(s.podCIDR, ['spec', 'podCIDR']);
  if (podCIDRs.length === 0 && single !== '') podCIDRs = [single];
  podCIDRs.forEach((c, i) => { if (parseCIDR(c) === null) r.error(['spec', 'podCIDRs', i], `invalid CIDR ${JSON.stringify(c)}`); });
  const st = r.obj(raw.status, ['status']);
  const addresses = r.list(st.addresses, ['status', 'addresses']).map((v, i) => {
    const a = r.obj(v, ['status', 'addresses', i]);
    return { type: r.str(a.type, ['status', 'addresses', i, 'type']), address: r.str(a.address, ['status', 'addresses', i, 'address']) };
  });
  return { kind: 'Node', metadata, spec: { podCIDRs }, status: { addresses } };
}

const READERS: Record<string, (r: Reader, raw: Record<string, unknown>) => KubeObject> = {
  Service: readService,
  EndpointSlice: readEndpointSlice,
  Node: readNode,
};

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
  const read = READERS[kind];
  if (!read) {
    if (kind === '') out.issues.push({ severity: 'error', source, line: lineOf(base), path: pathText([...base, 'kind']), message: 'missing kind' });
    else out.skipped++;
    return;
  }
  const r = new Reader();
  const obj = read(r, o);
  const m = obj.metadata;
  const label = `${kind} ${m.namespace ? `${m.namespace}/` : ''}${m.name || '<unnamed>'}`;
  for (const i of r.issues) {
    const full = [...base, ...i.path];
    out.issues.push({ severity: i.severity, source, line: lineOf(full), object: label, path: pathText(i.path), message: i.message });
  }
  if (r.failed) return;
  obj.origin = { source, line: lineOf(base) };
  if (obj.kind === 'Service') out.services.push(obj);
  else if (obj.kind === 'EndpointSlice') out.endpointSlices.push(obj);
  else out.nodes.push(obj);
}

function emptySet(): ManifestSet {
  return { services: [], endpointSlices: [], nodes: [], issues: [], skipped: 0 };
}

/**
 * Loads every Service, EndpointSlice and Node from multi-document YAML or JSON text (JSON is
 * read as YAML 1.2, which contains it). Never throws on bad input.
 */
export function parseManifests(text: string, source?: string): ManifestSet {
  const out = emptySet();
  const lc = new LineCounter();
  let docs: Document.Parsed[];
  try {
    docs = parseAllDocuments(text, { lineCounter: lc, prettyErrors: false }) as Document.Parsed[];
    if (!Array.isArray(docs)) docs = [];
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
  return out;
}

/** Loads already-decoded objects (e.g. from an API watch); the same rules, without lines. */
export function loadObjects(values: unknown[], source?: string): ManifestSet {
  const out = emptySet();
  values.forEach((v, i) => collect(v, values.length > 1 ? [i] : [], () => undefined, source, out));
  return out;
}

/** "namespace/name" of an object. */
export function namespacedName(m: ObjectMeta): string {
  return `${m.namespace}/${m.name}`;
}
