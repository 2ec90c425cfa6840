// presets.ts — the playground's ready-made scenes: Kubernetes objects (as the YAML a user would
// write), the mode to show them in, and a packet that makes the point of the scene. The scale
// scene is generated as decoded objects (20,000 Services would be tens of megabytes of YAML).
// Pure data and generators: never talks to the core, the worker or the DOM.

export type Mode = 'iptables' | 'ipvs' | 'direct';
export type Proto = 'tcp' | 'udp' | 'sctp';

/** The IPVS schedulers (ip_vs_*.c) kube-proxy's --ipvs-scheduler passes through to ipvsadm. */
export const IPVS_SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'sed', 'nq', 'sh', 'dh', 'mh', 'lblc', 'lblcr', 'fo', 'ovf', 'twos'] as const;

/** This node, as every preset and packet sees it. */
export const NODE = { name: 'node-a', ip: '192.168.49.2', podCIDR: '10.244.0.0/16' } as const;

/** A packet as the user builds it: where it comes from and where it goes. */
export interface PacketSpec {
  /** A pod's packet arrives on the node (PREROUTING); the node's own goes through OUTPUT; outside arrives on the node's NIC. */
  from: 'pod' | 'node' | 'outside';
  src: string;
  /**
   * How the destination was picked (the form's choice); dst/dport hold the resolved address, or
   * with 'name' the DNS name the packet is sent to (resolved by the engine, names.ts).
   */
  to: 'service' | 'vip' | 'nodeport' | 'name';
  /** "namespace/name:port" when `to` is service. */
  service: string;
  dst: string;
  dport: number;
  proto: Proto;
  sport: number;
}

export interface Preset {
  id: string;
  title: string;
  /** One or two sentences: what to look at. */
  lesson: string;
  mode: Mode;
  scheduler: string;
  packet: PacketSpec;
  /** YAML shown in the editor, or a generator for scenes too large to edit as text. */
  yaml?: string;
  generate?: (progress: (done: number, total: number) => void) => unknown[];
  /** Services a generated scene holds (for the editor's summary). */
  size?: number;
  /** A generated scene's Service i as its objects (what the editor shows to edit one of them). */
  serviceObjects?: (i: number) => unknown[];
  /** The Service of a generated scene the editor shows first (the packet's). */
  shown?: number;
  /**
   * Where a generated scene holds the object with this key ("kind/namespace/name"), read off its
   * layout: the first edit of 20,000 Services need not index 40,000 objects (Scene.at checks the
   * object found). Undefined: not in the scene.
   */
  locate?: (key: string) => number | undefined;
}

const svc = (name: string, spec: string, extra = ''): string => `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: default
spec:
${spec}${extra}`;

interface Ep { ip: string; node: string; ready?: boolean; serving?: boolean; terminating?: boolean }

function slice(name: string, port: number, eps: Ep[], portName = 'http', proto = 'TCP'): string {
  const lines = eps.map((e) => {
    const cond = e.ready === undefined && e.serving === undefined && e.terminating === undefined
      ? '{ready: true}'
      : `{ready: ${e.ready ?? true}, serving: ${e.serving ?? e.ready ?? true}, terminating: ${e.terminating ?? false}}`;
    return `  - addresses: [${e.ip}]\n    conditions: ${cond}\n    nodeName: ${e.node}`;
  });
  return `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${name}-abc12
  namespace: default
  labels: {kubernetes.io/service-name: ${name}}
addressType: IPv4
endpoints:${eps.length === 0 ? ' []' : '\n' + lines.join('\n')}
ports:
  - {name: ${portName}, port: ${port}, protocol: ${proto}}
`;
}

const fromPod = (service: string, dst: string, dport: number, src = '10.244.1.5'): PacketSpec =>
  ({ from: 'pod', src, to: 'service', service, dst, dport, proto: 'tcp', sport: 40000 });

const THREE_PODS: Ep[] = [
  { ip: '10.244.1.11', node: 'node-a' }, { ip: '10.244.2.12', node: 'node-b' }, { ip: '10.244.1.13', node: 'node-a' },
];

export const PRESETS: Preset[] = [
  {
    id: 'clusterip',
    title: 'ClusterIP with 3 pods',
    lesson: 'kube-proxy spreads new connections with a chain of statistic rules: 1/3, then 1/2 of the rest, then the last pod.',
    mode: 'iptables', scheduler: 'rr',
    packet: fromPod('default/web:http', '10.96.0.80', 80),
    yaml: `${svc('web', '  type: ClusterIP\n  clusterIP: 10.96.0.80\n  ports:\n    - {name: http, port: 80, targetPort: 8080, protocol: TCP}\n')}---\n${slice('web', 8080, THREE_PODS)}`,
  },
  {
    id: 'nodeport-local',
    title: 'NodePort with externalTrafficPolicy: Local',
    lesson: 'From outside, a Local NodePort only uses pods on this node and keeps the client address (no masquerade).',
    mode: 'iptables', scheduler: 'rr',
    packet: { from: 'outside', src: '203.0.113.7', to: 'nodeport', service: 'default/shop:http', dst: NODE.ip, dport: 30080, proto: 'tcp', sport: 51000 },
    yaml: `${svc('shop', '  type: NodePort\n  clusterIP: 10.96.0.90\n  externalTrafficPolicy: Local\n  ports:\n    - {name: http, port: 80, targetPort: 8080, nodePort: 30080, protocol: TCP}\n')}---\n${slice('shop', 8080, [
      { ip: '10.244.1.21', node: 'node-a' }, { ip: '10.244.2.22', node: 'node-b' }, { ip: '10.244.2.23', node: 'node-b' },
    ])}`,
  },
  {
    id: 'affinity',
    title: 'Session affinity (ClientIP, 60 s)',
    lesson: 'After the first connection every packet from this client goes to the same pod (the recent match). Advance the clock past 60 s and it is spread again.',
    mode: 'iptables', scheduler: 'rr',
    packet: fromPod('default/cart:http', '10.96.0.100', 80),
    yaml: `${svc('cart', '  clusterIP: 10.96.0.100\n  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}\n  ports:\n    - {name: http, port: 80, targetPort: 8080, protocol: TCP}\n')}---\n${slice('cart', 8080, THREE_PODS)}`,
  },
  {
    id: 'hairpin',
    title: 'Hairpin: a pod reaching itself',
    lesson: 'When the pod picked is the sender, KUBE-SEP marks the packet for masquerade so the reply comes back through the node.',
    mode: 'iptables', scheduler: 'rr',
    packet: fromPod('default/api:http', '10.96.0.110', 80, '10.244.1.31'),
    yaml: `${svc('api', '  clusterIP: 10.96.0.110\n  ports:\n    - {name: http, port: 80, targetPort: 8080, protocol: TCP}\n')}---\n${slice('api', 8080, [
      { ip: '10.244.1.31', node: 'node-a' }, { ip: '10.244.2.32', node: 'node-b' },
    ])}`,
  },
  {
    id: 'no-endpoints',
    title: 'No endpoints → REJECT',
    lesson: 'A Service without ready endpoints gets a REJECT rule in filter KUBE-SERVICES: the client hears "connection refused" at once.',
    mode: 'iptables', scheduler: 'rr',
    packet: fromPod('default/ghost:http', '10.96.0.120', 80),
    yaml: `${svc('ghost', '  clusterIP: 10.96.0.120\n  ports:\n    - {name: http, port: 80, targetPort: 8080, protocol: TCP}\n')}---\n${slice('ghost', 8080, [
      { ip: '10.244.1.41', node: 'node-a', ready: false, serving: false },
    ])}`,
  },
  {
    id: 'terminating',
    title: 'Terminating fallback',
    lesson: 'With no ready pod left, kube-proxy falls back to pods that are terminating but still serving (KEP-1669); the one not serving is never used.',
    mode: 'iptables', scheduler: 'rr',
    packet: fromPod('default/drain:http', '10.96.0.130', 80),
    yaml: `${svc('drain', '  clusterIP: 10.96.0.130\n  ports:\n    - {name: http, port: 80, targetPort: 8080, protocol: TCP}\n')}---\n${slice('drain', 8080, [
      { ip: '10.244.1.51', node: 'node-a', ready: false, serving: true, terminating: true },
      { ip: '10.244.2.52', node: 'node-b', ready: false, serving: true, terminating: true },
      { ip: '10.244.2.53', node: 'node-b', ready: false, serving: false, terminating: true },
    ])}`,
  },
  {
    id: 'ipvs-schedulers',
    title: 'IPVS schedulers side by side',
    lesson: 'The same Service under IPVS: rr takes turns, sh hashes the client address (one client, one pod), mh hashes address and port (kube-proxy sets mh-port) onto a Maglev table. Try Compare.',
    mode: 'ipvs', scheduler: 'rr',
    packet: fromPod('default/web:http', '10.96.0.80', 80),
    yaml: `${svc('web', '  clusterIP: 10.96.0.80\n  ports:\n    - {name: http, port: 80, targetPort: 8080, protocol: TCP}\n')}---\n${slice('web', 8080, [
      ...THREE_PODS, { ip: '10.244.2.14', node: 'node-b' },
    ])}`,
  },
  {
    id: 'scale-20k',
    title: '20,000 Services',
    lesson: 'Twenty thousand ClusterIP Services with two pods each: watch the worker load them while the page stays responsive, then trace one.',
    mode: 'iptables', scheduler: 'rr',
    packet: fromPod('default/svc-12345:http', scaleVip(12345), 80),
    generate: (progress) => scaleObjects(20_000, progress),
    size: 20_000,
    serviceObjects: scaleService,
    locate: scaleLocate,
    shown: 12345,
  },
];

/** The ClusterIP of scale Service i: 10.96.0.0/12 counted up from 10.96.1.0. */
export function scaleVip(i: number): string {
  const n = 256 + i;
  return `10.${96 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
}

function scalePod(i: number, k: number): string {
  const n = 2 * i + k + 256;
  return `10.${244 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
}

/** n Services with two endpoints each (one per node), as decoded objects. */
export function scaleObjects(n: number, progress: (done: number, total: number) => void = () => {}): unknown[] {
  const out: unknown[] = [];
  for (let i = 0; i < n; i++) {
    out.push(...scaleService(i));
    if ((i + 1) % 2000 === 0) progress(i + 1, n);
  }
  return out;
}

/** Service i of the scale scene and its EndpointSlice. */
export function scaleService(i: number): unknown[] {
  const name = `svc-${i}`;
  return [
    {
      apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' },
      spec: { type: 'ClusterIP', clusterIP: scaleVip(i), ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] },
    },
    {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: `${name}-abc12`, namespace: 'default', labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      endpoints: [0, 1].map((k) => ({ addresses: [scalePod(i, k)], conditions: { ready: true }, nodeName: k === 0 ? 'node-a' : 'node-b' })),
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    },
  ];
}

const SCALE_KEY = /^(Service|EndpointSlice)\/default\/svc-(0|[1-9]\d*)(-abc12)?$/;

/** Where scaleObjects() put the object with this key: Service i at 2i, its EndpointSlice at 2i + 1. */
export function scaleLocate(key: string): number | undefined {
  const m = SCALE_KEY.exec(key);
  if (!m || (m[1] === 'EndpointSlice') !== (m[3] !== undefined)) return undefined;
  return 2 * Number(m[2]) + (m[3] ? 1 : 0);
}

export function presetById(id: string): Preset | undefined {
  return PRESETS.find((p) => p.id === id);
}
