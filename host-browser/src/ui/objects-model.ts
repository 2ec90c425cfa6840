// objects-model.ts — the form editor's view of the YAML: the Services in the text with their
// ports, traffic policies, session affinity and the endpoints of their EndpointSlices
// (readFormModel), and one edit at a time written back into the same text (applyFormEdit) through
// the yaml library's document API, so everything the form does not touch — other objects,
// comments, flow style — stays as the user wrote it. Conditions stay as the EndpointSlice
// controller writes them: a ready endpoint is serving and not terminating; a terminating or
// non-serving one is not ready (discovery.k8s.io/v1 EndpointConditions). Pure text work: never
// touches the DOM or the worker.
import { isMap, isSeq, type Document, type YAMLSeq } from 'yaml';
import { TOO_DEEP, yamlDocuments } from '../../../host-node/kube/yaml-depth.js';

export type Condition = 'ready' | 'serving' | 'terminating';

export interface FormPort {
  index: number;
  name: string;
  port: number;
  /** Number, or a named container port. */
  targetPort: number | string;
  protocol: string;
  /** 0 when none. */
  nodePort: number;
}

export interface FormEndpoint {
  /** Index of the EndpointSlice's document, and of the endpoint inside it. */
  slice: number;
  index: number;
  address: string;
  node: string;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
}

export interface FormService {
  /** "namespace/name". */
  key: string;
  doc: number;
  type: string;
  clusterIP: string;
  sessionAffinity: 'None' | 'ClientIP';
  /** ClientIP affinity timeout (Kubernetes default 10800 s). */
  affinitySeconds: number;
  internalTrafficPolicy: 'Cluster' | 'Local';
  externalTrafficPolicy: 'Cluster' | 'Local';
  ports: FormPort[];
  endpoints: FormEndpoint[];
}

export interface FormModel {
  services: FormService[];
  /** Set when the text does not parse as YAML: the form waits for the text to be fixed. */
  error?: string;
}

export type ServiceField = 'type' | 'sessionAffinity' | 'affinitySeconds' | 'internalTrafficPolicy' | 'externalTrafficPolicy';
export type PortField = 'name' | 'port' | 'targetPort' | 'protocol' | 'nodePort';

export type FormEdit =
  | { op: 'add-service' }
  | { op: 'remove-service'; service: string }
  | { op: 'set'; service: string; field: ServiceField; value: string | number }
  | { op: 'add-port'; service: string }
  | { op: 'port'; service: string; index: number; field: PortField; value: string | number }
  | { op: 'add-endpoint'; service: string }
  | { op: 'remove-endpoint'; service: string; slice: number; index: number }
  | { op: 'endpoint-node'; service: string; slice: number; index: number; value: string }
  | { op: 'condition'; service: string; slice: number; index: number; condition: Condition; value: boolean };

/** kube-apiserver's default ClientIP timeout (v1.DefaultClientIPServiceAffinitySeconds). */
export const DEFAULT_AFFINITY_SECONDS = 10800;
/** The nodes of the playground's cluster (an endpoint lives on one of them). */
export const NODES = ['node-a', 'node-b'] as const;
/** The default --service-node-port-range. */
const NODE_PORT_FIRST = 30000, NODE_PORT_LAST = 32767;

const SERVICE_SLICE_LABEL = 'kubernetes.io/service-name';

type Doc = Document.Parsed;

interface Parsed {
  docs: Doc[];
  /** Each document as plain data (toJS), in the same order. */
  js: unknown[];
  services: Array<{ doc: number; key: string; name: string; namespace: string }>;
  /** Service key → indexes of its EndpointSlice documents. */
  slices: Map<string, number[]>;
}

function str(v: unknown, dflt = ''): string {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : dflt;
}

function num(v: unknown): number {
  return typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : 0;
}

function parse(yaml: string): Parsed | { error: string } {
  const read = yamlDocuments(yaml);
  if ('deep' in read) return { error: `line ${read.deep}: ${TOO_DEEP}` };
  const docs = read.docs;
  for (const d of docs) {
    const e = d.errors[0];
    if (e) return { error: e.message.split('\n')[0]! };
  }
  const services: Parsed['services'] = [];
  const slices = new Map<string, number[]>();
  const js = docs.map((d) => d.toJS() as unknown);
  js.forEach((x, i) => {
    const o = x as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown; labels?: Record<string, unknown> } } | null;
    if (!o || typeof o !== 'object') return;
    const namespace = str(o.metadata?.namespace, 'default');
    if (o.kind === 'Service') {
      const name = str(o.metadata?.name);
      services.push({ doc: i, key: `${namespace}/${name}`, name, namespace });
    } else if (o.kind === 'EndpointSlice') {
      const owner = str(o.metadata?.labels?.[SERVICE_SLICE_LABEL]);
      if (!owner) return;
      const key = `${namespace}/${owner}`;
      slices.set(key, [...slices.get(key) ?? [], i]);
    }
  });
  return { docs, js, services, slices };
}

function conditionsOf(c: Record<string, unknown> | undefined): Pick<FormEndpoint, Condition> {
  // discovery.k8s.io/v1: a missing ready/serving is unknown and read as ready; terminating as false.
  const ready = c?.ready !== false;
  return { ready, serving: typeof c?.serving === 'boolean' ? c.serving : ready, terminating: c?.terminating === true };
}

export function readFormModel(yaml: string): FormModel {
  const p = parse(yaml);
  return 'error' in p ? { services: [], error: p.error } : modelOf(p);
}

function modelOf(p: Parsed): FormModel {
  const services = p.services.map((s): FormService => {
    const spec = (p.js[s.doc] as { spec?: Record<string, unknown> }).spec ?? {};
    const ports = (Array.isArray(spec.ports) ? spec.ports as Array<Record<string, unknown>> : []).map((pt, index) => ({
      index, name: str(pt?.name), port: num(pt?.port),
      targetPort: typeof pt?.targetPort === 'string' && !/^\d+$/.test(pt.targetPort) ? pt.targetPort : num(pt?.targetPort) || num(pt?.port),
      protocol: str(pt?.protocol, 'TCP'), nodePort: num(pt?.nodePort),
    }));
    const endpoints: FormEndpoint[] = [];
    for (const d of p.slices.get(s.key) ?? []) {
      const eps = (p.js[d] as { endpoints?: unknown }).endpoints;
      if (!Array.isArray(eps)) continue;
      eps.forEach((e: { addresses?: unknown[]; nodeName?: unknown; conditions?: Record<string, unknown> }, index) => {
        endpoints.push({ slice: d, index, address: str(e?.addresses?.[0]), node: str(e?.nodeName), ...conditionsOf(e?.conditions) });
      });
    }
    const affinity = spec.sessionAffinityConfig as { clientIP?: { timeoutSeconds?: unknown } } | undefined;
    return {
      key: s.key, doc: s.doc, type: str(spec.type, 'ClusterIP'), clusterIP: str(spec.clusterIP),
      sessionAffinity: spec.sessionAffinity === 'ClientIP' ? 'ClientIP' : 'None',
      affinitySeconds: num(affinity?.clientIP?.timeoutSeconds) || DEFAULT_AFFINITY_SECONDS,
      internalTrafficPolicy: spec.internalTrafficPolicy === 'Local' ? 'Local' : 'Cluster',
      externalTrafficPolicy: spec.externalTrafficPolicy === 'Local' ? 'Local' : 'Cluster',
      ports, endpoints,
    };
  });
  return { services };
}

/** The text with one edit applied (the input unchanged when the text does not parse or the edit names nothing). */
export function applyFormEdit(yaml: string, edit: FormEdit): string {
  return formEdit(yaml, edit).yaml;
}

/**
 * One edit applied: the new text and, when every document kept its place (KEEPS_DOCS), the form's
 * model and the documents' objects (editsFromText's) read from the edited documents, which spares
 * the page parsing the text it has just written.
 */
export interface FormEditResult {
  yaml: string;
  model?: FormModel;
  objects?: unknown[];
}

/** Edits that change documents in place: none is added, removed or moved. */
const KEEPS_DOCS: ReadonlySet<FormEdit['op']> = new Set(['set', 'port', 'condition', 'endpoint-node']);

export function formEdit(yaml: string, edit: FormEdit): FormEditResult {
  const p = parse(yaml);
  if ('error' in p) return { yaml };
  const next = editDocs(yaml, p, edit);
  if (next === yaml || !KEEPS_DOCS.has(edit.op)) return { yaml: next };
  p.js = p.docs.map((d) => d.toJS() as unknown);
  return { yaml: next, model: modelOf(p), objects: p.js.filter((o) => o !== null && o !== undefined) };
}

// Applies `edit` to the parsed documents of `yaml` (in place where it can) and gives the new text.
function editDocs(yaml: string, p: Parsed, edit: FormEdit): string {
  const model = modelOf(p);
  if (edit.op === 'add-service') return addService(yaml, model);
  const svc = model.services.find((s) => s.key === edit.service);
  if (!svc) return yaml;
  const doc = p.docs[svc.doc]!;
  const sliceDocs = p.slices.get(svc.key) ?? [];
  switch (edit.op) {
    case 'remove-service': {
      const drop = new Set([svc.doc, ...sliceDocs]);
      return join(p.docs.filter((_, i) => !drop.has(i)));
    }
    case 'set':
      setServiceField(doc, svc, edit.field, edit.value, model);
      break;
    case 'add-port': {
      const used = new Set(svc.ports.map((x) => x.port));
      let port = 80;
      while (used.has(port)) port++;
      const name = `p${port}`;
      const pt: Record<string, unknown> = { name, port, targetPort: 8000 + port, protocol: 'TCP' };
      if (svc.type !== 'ClusterIP') pt.nodePort = freeNodePort(model);
      // A single unnamed port may stay unnamed; with two, every port needs a name.
      svc.ports.forEach((x) => { if (!x.name) doc.setIn(['spec', 'ports', x.index, 'name'], `p${x.port}`); });
      appendFlow(doc, ['spec', 'ports'], pt);
      for (const d of sliceDocs) {
        svc.ports.forEach((x) => { if (!x.name) renameSlicePort(p.docs[d]!, '', `p${x.port}`); });
        appendFlow(p.docs[d]!, ['ports'], { name, port: 8000 + port, protocol: 'TCP' });
      }
      break;
    }
    case 'port': {
      const pt = svc.ports[edit.index];
      if (!pt) return yaml;
      const path = ['spec', 'ports', edit.index, edit.field];
      const value = edit.field === 'name' || edit.field === 'protocol' || (edit.field === 'targetPort' && !/^\d+$/.test(String(edit.value)))
        ? String(edit.value) : Number(edit.value);
      if (edit.field === 'nodePort' && !value) doc.deleteIn(path);
      else doc.setIn(path, value);
      // The EndpointSlice controller publishes the target port under the Service port's name.
      for (const d of sliceDocs) {
        const i = slicePortIndex(p.docs[d]!, pt.name);
        if (i < 0) continue;
        if (edit.field === 'name') p.docs[d]!.setIn(['ports', i, 'name'], value);
        if (edit.field === 'protocol') p.docs[d]!.setIn(['ports', i, 'protocol'], value);
        if (edit.field === 'targetPort' && typeof value === 'number') p.docs[d]!.setIn(['ports', i, 'port'], value);
      }
      break;
    }
    case 'add-endpoint': {
      const node = NODES[svc.endpoints.filter((e) => e.node === NODES[0]).length <= svc.endpoints.filter((e) => e.node === NODES[1]).length ? 0 : 1];
      const ep = { addresses: [freePodIP(yaml, node)], conditions: { ready: true }, nodeName: node };
      const d = sliceDocs[0];
      if (d === undefined) return join(p.docs) + sliceFor(svc, [ep]);
      const eps = p.docs[d]!.get('endpoints');
      if (!isSeq(eps) || eps.items.length === 0) p.docs[d]!.set('endpoints', p.docs[d]!.createNode([]));
      appendFlow(p.docs[d]!, ['endpoints'], ep, false);
      break;
    }
    case 'remove-endpoint': {
      const eps = p.docs[edit.slice]?.get('endpoints');
      if (!sliceDocs.includes(edit.slice) || !isSeq(eps)) return yaml;
      eps.delete(edit.index);
      if (eps.items.length === 0) eps.flow = true;
      break;
    }
    case 'endpoint-node':
      if (!sliceDocs.includes(edit.slice)) return yaml;
      p.docs[edit.slice]!.setIn(['endpoints', edit.index, 'nodeName'], edit.value);
      break;
    case 'condition': {
      const ep = svc.endpoints.find((e) => e.slice === edit.slice && e.index === edit.index);
      if (!ep) return yaml;
      const c = { ready: ep.ready, serving: ep.serving, terminating: ep.terminating, [edit.condition]: edit.value };
      if (edit.condition === 'ready' && edit.value) { c.serving = true; c.terminating = false; }
      if ((edit.condition === 'terminating' && edit.value) || (edit.condition === 'serving' && !edit.value)) c.ready = false;
      if (edit.condition === 'ready' && !edit.value && !c.terminating) c.serving = false;
      const node = p.docs[edit.slice]!.createNode(c);
      node.flow = true;
      p.docs[edit.slice]!.setIn(['endpoints', edit.index, 'conditions'], node);
      break;
    }
  }
  return join(p.docs);
}

function setServiceField(doc: Doc, svc: FormService, field: ServiceField, value: string | number, model: FormModel): void {
  if (field === 'affinitySeconds') {
    const clientIP = doc.createNode({ clientIP: { timeoutSeconds: Number(value) || DEFAULT_AFFINITY_SECONDS } });
    clientIP.flow = true;
    doc.setIn(['spec', 'sessionAffinityConfig'], clientIP);
    return;
  }
  if (field === 'sessionAffinity') {
    doc.setIn(['spec', 'sessionAffinity'], value);
    if (value !== 'ClientIP') doc.deleteIn(['spec', 'sessionAffinityConfig']);
    return;
  }
  if (field === 'type') {
    doc.setIn(['spec', 'type'], value);
    if (value === 'ClusterIP') {
      // Node ports and the external policy belong to NodePort / LoadBalancer Services only.
      svc.ports.forEach((pt) => doc.deleteIn(['spec', 'ports', pt.index, 'nodePort']));
      doc.deleteIn(['spec', 'externalTrafficPolicy']);
    } else {
      const taken = new Set<number>();
      svc.ports.forEach((pt) => {
        if (pt.nodePort) return;
        const np = freeNodePort(model, taken);
        taken.add(np);
        doc.setIn(['spec', 'ports', pt.index, 'nodePort'], np);
      });
    }
    return;
  }
  doc.setIn(['spec', field], value);
}

/** Appends a plain object to the sequence at `path`, written in flow style ({…}) when `flow`. */
function appendFlow(doc: Doc, path: Array<string | number>, value: Record<string, unknown>, flow = true): void {
  const seq = doc.getIn(path);
  const node = doc.createNode(value);
  if (flow) node.flow = true;
  else for (const pair of node.items) if (isMap(pair.value) || isSeq(pair.value)) pair.value.flow = true;
  if (isSeq(seq)) {
    if (!flow) seq.flow = false;
    seq.add(node);
  } else doc.setIn(path, doc.createNode([value]));
}

function slicePortIndex(doc: Doc, name: string): number {
  const ports = doc.get('ports') as YAMLSeq | undefined;
  if (!isSeq(ports)) return -1;
  return ports.items.findIndex((x) => str((isMap(x) ? x.toJSON() as Record<string, unknown> : {}).name) === name);
}

function renameSlicePort(doc: Doc, from: string, to: string): void {
  const i = slicePortIndex(doc, from);
  if (i >= 0) doc.setIn(['ports', i, 'name'], to);
}

function join(docs: Doc[]): string {
  return docs.map((d, i) => {
    const text = d.toString({ flowCollectionPadding: false, lineWidth: 0 });
    return i === 0 || text.startsWith('---') ? text : `---\n${text}`;
  }).join('');
}

function freeNodePort(model: FormModel, also: Set<number> = new Set()): number {
  const used = new Set(model.services.flatMap((s) => s.ports.map((p) => p.nodePort)));
  for (let p = 30080; p <= NODE_PORT_LAST; p++) if (!used.has(p) && !also.has(p)) return p;
  for (let p = NODE_PORT_FIRST; p < 30080; p++) if (!used.has(p) && !also.has(p)) return p;
  return 0;
}

/** An address in the node's pod range (node-a 10.244.1.0/24, node-b 10.244.2.0/24) that the text does not hold yet. */
function freePodIP(yaml: string, node: string): string {
  const third = node === NODES[1] ? 2 : 1;
  for (let i = 10; i < 255; i++) {
    const ip = `10.244.${third}.${i}`;
    if (!new RegExp(`\\b${ip.replace(/\./g, '\\.')}\\b`).test(yaml)) return ip;
  }
  return `10.244.${third}.254`;
}

function sliceFor(svc: Pick<FormService, 'key' | 'ports'>, endpoints: unknown[]): string {
  const [namespace, name] = svc.key.split('/') as [string, string];
  const ports = svc.ports.map((p) => `  - {${p.name ? `name: ${p.name}, ` : ''}port: ${typeof p.targetPort === 'number' ? p.targetPort : p.port}, protocol: ${p.protocol}}`);
  const eps = (endpoints as Array<{ addresses: string[]; conditions: { ready: boolean }; nodeName: string }>).map((e) =>
    `  - addresses: [${e.addresses.join(', ')}]\n    conditions: {ready: ${e.conditions.ready}}\n    nodeName: ${e.nodeName}`);
  return `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${name}-${Math.abs(hash(svc.key)).toString(36).slice(0, 5).padEnd(5, '0')}
  namespace: ${namespace}
  labels: {${SERVICE_SLICE_LABEL}: ${name}}
addressType: IPv4
endpoints:${eps.length ? `\n${eps.join('\n')}` : ' []'}
ports:${ports.length ? `\n${ports.join('\n')}` : ' []'}
`;
}

function hash(s: string): number {
  let h = 5381;
  for (let i = 0; i < s.length; i++) h = ((h << 5) + h + s.charCodeAt(i)) | 0;
  return h;
}

/** A new ClusterIP Service (next free name and address, port 80 → 8080) with two ready pods, one per node. */
function addService(yaml: string, model: FormModel): string {
  const names = new Set(model.services.map((s) => s.key));
  let n = 1;
  while (names.has(`default/app-${n}`)) n++;
  const ips = new Set(model.services.map((s) => s.clusterIP));
  let host = 140;
  while (ips.has(`10.96.0.${host}`) && host < 254) host++;
  const name = `app-${n}`;
  const a = freePodIP(yaml, NODES[0]);
  const b = freePodIP(yaml, NODES[1]);
  const service = `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: default
spec:
  type: ClusterIP
  clusterIP: 10.96.0.${host}
  ports:
    - {name: http, port: 80, targetPort: 8080, protocol: TCP}
`;
  const slice = sliceFor({ key: `default/${name}`, ports: [{ index: 0, name: 'http', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: 0 }] }, [
    { addresses: [a], conditions: { ready: true }, nodeName: NODES[0] },
    { addresses: [b], conditions: { ready: true }, nodeName: NODES[1] },
  ]);
  const base = yaml.trimEnd();
  return `${base === '' ? '' : `${base}\n---\n`}${service}${slice}`;
}
