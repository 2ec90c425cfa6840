// harness.ts — table-driven packet-flow tests run through every mode of dp.apply: a feature table
// is manifests (Service YAML + EndpointSlices) plus flow cases (source, destination, port,
// protocol → the expected SET of outcomes). Each case is sent as several new connections that
// differ in source port (so random endpoint choice shows every possible outcome) through the
// public API (Dataplane.create → apply({ mode }) → processBatch), and the outcomes are reduced to
// short strings: "10.1.2.3:8080" (DNAT, client source kept), "10.1.2.3:8080 masq" (and
// masqueraded to the node), "REJECT" (ICMP port unreachable back to the client), "DROP", "PASS".
// Another mode joins by adding its name to MODES and a branch to `applyIn`.
import { Dataplane } from '../../../../host-node/dataplane.js';
import { buildPacket, decodePacket, type ProtoName } from '../../../../host-node/core/packet.js';
import type { DataplaneOptions } from '../../../../host-node/core/dataplane.js';
import type { ApplyOptions } from '../../../../host-node/dataplane.js';

export type ModeName = 'iptables' | 'direct' | 'ipvs';
export const MODES: ModeName[] = ['iptables', 'direct', 'ipvs'];

export const NODE = 'node-a';
export const NODE_IP = '198.18.200.1';
export const NODE_IP6 = 'fd00:200::1';
export const POD_CIDR = '198.19.0.0/16';
export const POD_CIDR6 = 'fd00:19::/64';
/** The masquerade source (an address routed to the dataplane, not the node IP: so masquerading the node's own traffic shows). */
export const MASQ_IP = '198.18.250.1';
export const MASQ_IP6 = 'fd00:250::1';
/** A client outside the cluster (and outside the pod CIDR). */
export const OUTSIDE = '203.0.113.9';
export const OUTSIDE6 = 'fd00:abcd::9';

export interface FlowCase {
  name: string;
  src: string;
  dst: string;
  dport: number;
  proto?: ProtoName;
  /** Sent by the node itself (OUTPUT path). */
  local?: boolean;
  /** New connections to send (consecutive source ports); default 24. */
  flows?: number;
  expect: string[];
  /** Where kube-proxy's modes really differ: the outcomes in that mode (the case's name says why). */
  differs?: Partial<Record<ModeName, string[]>>;
}

export interface FeatureTable {
  name: string;
  manifests: string;
  dataplane?: Partial<DataplaneOptions>;
  apply?: Omit<ApplyOptions, 'mode'>;
  cases: FlowCase[];
}

export async function dataplaneFor(table: Pick<FeatureTable, 'dataplane'>, seed = 7): Promise<Dataplane> {
  return Dataplane.create({
    nodeIPs: [NODE_IP, NODE_IP6], podCIDR: [POD_CIDR, POD_CIDR6], masqueradeIPs: [MASQ_IP, MASQ_IP6], seed, ...table.dataplane,
  });
}

export function applyIn(dp: Dataplane, mode: ModeName, manifests: string, opts: Omit<ApplyOptions, 'mode'> = {}) {
  return dp.apply(manifests, { nodeName: NODE, ...opts, mode });
}

/** The outcome of one processed packet, as a short string. */
export function outcomeOf(dp: Dataplane, sent: { src: string; sport: number }, r: ReturnType<Dataplane['process']>): string {
  if (r.verdict === 'DROP') return 'DROP';
  if (r.verdict === 'PASS') return 'PASS';
  const p = decodePacket(r.packet!);
  if (r.verdict === 'REPLY') {
    const unreach = p.icmp && ((p.family === 4 && p.icmp.type === 3 && p.icmp.code === 3) || (p.family === 6 && p.icmp.type === 1 && p.icmp.code === 4));
    return unreach && p.dst === sent.src ? 'REJECT' : `REPLY ${p.proto}`;
  }
  const to = p.family === 6 ? `[${p.dst}]:${p.dport}` : `${p.dst}:${p.dport}`;
  if (p.src === sent.src) return to;
  const masq = p.src === MASQ_IP || p.src === MASQ_IP6 ? 'masq' : `snat ${p.src}`;
  return `${to} ${masq}`;
}

/**
 * Sends `c.flows` new connections from source ports `firstPort`, `firstPort + 1`, … and returns the
 * distinct outcomes, sorted. Cases of one table use disjoint ports, so no two connections ever
 * need the same translated tuple.
 */
export function runCase(dp: Dataplane, c: FlowCase, firstPort = 40000, nowMs = 1000): string[] {
  const proto = c.proto ?? 'tcp';
  const n = c.flows ?? 24;
  const out = new Set<string>();
  for (let i = 0; i < n; i++) {
    const sport = firstPort + i;
    const bytes = buildPacket({ src: c.src, dst: c.dst, proto, sport, dport: c.dport, ...(proto === 'tcp' ? { flags: 'S' } : {}) });
    const r = dp.process({ bytes, local: c.local ?? false }, nowMs);
    out.add(outcomeOf(dp, { src: c.src, sport }, r));
  }
  return [...out].sort();
}

/** Every case of a table in one mode: case name → outcome set. */
export async function runTable(table: FeatureTable, mode: ModeName): Promise<Map<string, string[]>> {
  const dp = await dataplaneFor(table);
  const r = applyIn(dp, mode, table.manifests, table.apply);
  if (r.issues.length > 0) throw new Error(`${table.name} (${mode}): ${JSON.stringify(r.issues)}`);
  const out = new Map<string, string[]>();
  table.cases.forEach((c, i) => out.set(c.name, runCase(dp, c, 20000 + 100 * i)));
  return out;
}

// ---- manifests

export interface PortSpec { name?: string; port: number; protocol?: 'TCP' | 'UDP' | 'SCTP'; nodePort?: number; targetPort?: number }

export function service(name: string, spec: Record<string, unknown>, status?: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec, ...(status ? { status } : {}) });
}

export interface EndpointSpec { ip: string; node?: string; ready?: boolean; serving?: boolean; terminating?: boolean; zones?: string[] }

export function slice(svcName: string, eps: EndpointSpec[], ports: PortSpec[], opts: { family?: 4 | 6; suffix?: string } = {}): string {
  return JSON.stringify({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name: `${svcName}-${opts.suffix ?? (opts.family === 6 ? 'v6' : 'v4')}`, namespace: 'default', labels: { 'kubernetes.io/service-name': svcName } },
    addressType: opts.family === 6 ? 'IPv6' : 'IPv4',
    ports: ports.map((p) => ({ name: p.name ?? '', port: p.targetPort ?? 8080, protocol: p.protocol ?? 'TCP' })),
    endpoints: eps.map((e) => ({
      addresses: [e.ip], nodeName: e.node ?? NODE,
      conditions: { ready: e.ready ?? true, serving: e.serving ?? e.ready ?? true, terminating: e.terminating ?? false },
      ...(e.zones ? { hints: { forZones: e.zones.map((name) => ({ name })) } } : {}),
    })),
  });
}

export function node(name: string, zone: string): string {
  return JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'topology.kubernetes.io/zone': zone } } });
}

export const docs = (...parts: string[]): string => parts.join('\n---\n');
