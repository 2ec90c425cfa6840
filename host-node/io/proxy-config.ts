// proxy-config.ts — the settings of `svcplane proxy`: command-line flags in kube-proxy's spirit and a
// YAML config file using KubeProxyConfiguration's field names where kube-proxy has the setting
// (mode, clusterCIDR, nodePortAddresses, healthzBindAddress, metricsBindAddress, hostnameOverride,
// iptables.masqueradeAll, clientConnection.kubeconfig) plus svcplane's own (serviceCIDR, nodeIP,
// manifests, tun, conntrackState, masqueradeAddresses). Flags override the file. Every problem names
// the file, line and field (or the flag). Never touches the network, devices or the core.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { LineCounter, parseDocument, isMap, type Node as YamlNode } from 'yaml';
import { parseCIDR, parseIP, formatIP, type CIDR } from '../kube/ip.js';

export type ProxyMode = 'iptables' | 'ipvs' | 'direct';
export const PROXY_MODES: readonly ProxyMode[] = ['iptables', 'ipvs', 'direct'];

export interface ProxyConfig {
  mode: ProxyMode;
  /** Exactly one of manifests / kubeconfig. */
  manifests?: string;
  kubeconfig?: string;
  /** This node's name (endpoint locality, topology); kube-proxy's --hostname-override. */
  nodeName: string;
  /** The node's own addresses; empty = every global address of the current namespace. */
  nodeIPs: string[];
  /** Pod network(s): traffic from outside is masqueraded on its way to a ClusterIP. */
  clusterCIDRs: string[];
  /** Routed into the TUN device in full. */
  serviceCIDRs: string[];
  /** CIDRs of node addresses NodePorts answer on ("primary" = the node IP); empty = all. */
  nodePortAddresses: string[];
  /** The range NodePorts are allocated from (--service-node-port-range of the API server). */
  nodePortRange: [number, number];
  masqueradeAll: boolean;
  /** Source addresses masqueraded traffic gets, one per family (routed into the TUN, assigned to no interface). */
  masqueradeAddresses: string[];
  tun: string;
  /** Checksum and TCP segmentation offload on the TUN (IFF_VNET_HDR + TUNSETOFFLOAD; io/tun.ts). */
  tunOffload: boolean;
  /** host:port; "" disables. */
  metricsBindAddress: string;
  healthzBindAddress: string;
  conntrackState?: string;
  /** Flows the core's conntrack table holds (rounded up to a power of two). */
  conntrackMax: number;
  /** Routing table holding the TUN's default route (policy routing). */
  routeTable: number;
  /** Seconds a queued change may wait before /healthz reports 503 (kube-proxy: 2 × syncPeriod). */
  healthTimeoutSeconds: number;
}

export class ConfigError extends Error {}

export const PROXY_HELP = `usage: svcplane proxy (--manifests DIR | --kubeconfig FILE) [options]
  --config FILE                  YAML (KubeProxyConfiguration field names; flags override it)
  --mode iptables|ipvs|direct    how Services are programmed into the core (default iptables)
  --manifests DIR                Services/EndpointSlices/Nodes from files (watched)
  --kubeconfig FILE              watch the API server
  --hostname-override NAME       this node's name (default: the host name)
  --node-ip IP                   the node's address (repeatable; default: its global addresses)
  --cluster-cidr CIDR            the pod network (repeatable or comma-separated)
  --service-cidr CIDR            the Service range routed into the TUN (repeatable; default 10.96.0.0/12)
  --nodeport-addresses CIDRS     node addresses NodePorts answer on (comma-separated; "primary")
  --service-node-port-range A-B  default 30000-32767
  --masquerade-all               SNAT every Service connection
  --masquerade-address IP        masquerade source per family, routed into the TUN (default: last address of the service CIDR)
  --tun NAME                     device name (default svc0)
  --no-tun-offload               no checksum/TCP segmentation offload on the TUN (one MTU-sized packet per read)
  --metrics-bind-address A:P     default 127.0.0.1:10249 ("" off)
  --healthz-bind-address A:P     default 0.0.0.0:10256 ("" off)
  --conntrack-state FILE         flows saved on exit, restored on start
  --conntrack-max N              flows the conntrack table holds (default 262144)
`;

const DEFAULTS: ProxyConfig = {
  mode: 'iptables', nodeName: '', nodeIPs: [], clusterCIDRs: [], masqueradeAddresses: [], serviceCIDRs: ['10.96.0.0/12'], nodePortAddresses: [],
  nodePortRange: [30000, 32767], masqueradeAll: false, tun: 'svc0', tunOffload: true, metricsBindAddress: '127.0.0.1:10249',
  healthzBindAddress: '0.0.0.0:10256', routeTable: 2325, healthTimeoutSeconds: 60, conntrackMax: 262144,
};

/** "a,b" and repeated flags, flattened; blanks dropped. */
const list = (v: string | string[] | undefined): string[] =>
  (v === undefined ? [] : Array.isArray(v) ? v : [v]).flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '');

/** Parses flags (and the --config file they name) into a validated config. */
export function parseProxyArgs(argv: string[]): ProxyConfig {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      options: {
        config: { type: 'string' }, mode: { type: 'string' }, manifests: { type: 'string' }, kubeconfig: { type: 'string' },
        'hostname-override': { type: 'string' }, 'node-ip': { type: 'string', multiple: true },
        'cluster-cidr': { type: 'string', multiple: true }, 'service-cidr': { type: 'string', multiple: true },
        'nodeport-addresses': { type: 'string', multiple: true }, 'service-node-port-range': { type: 'string' },
        'masquerade-all': { type: 'boolean' }, 'masquerade-address': { type: 'string', multiple: true }, tun: { type: 'string' },
        'no-tun-offload': { type: 'boolean' }, 'metrics-bind-address': { type: 'string' }, 'healthz-bind-address': { type: 'string' },
        'conntrack-state': { type: 'string' }, 'conntrack-max': { type: 'string' },
      },
    });
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  const v = parsed.values;
  const c: ProxyConfig = v.config ? readConfigFile(v.config) : { ...DEFAULTS };
  const set = <K extends keyof ProxyConfig>(k: K, val: ProxyConfig[K] | undefined): void => { if (val !== undefined) c[k] = val; };
  set('mode', v.mode as ProxyMode | undefined);
  set('manifests', v.manifests);
  set('kubeconfig', v.kubeconfig);
  set('nodeName', v['hostname-override']);
  if (v['node-ip']) c.nodeIPs = list(v['node-ip']);
  if (v['cluster-cidr']) c.clusterCIDRs = list(v['cluster-cidr']);
  if (v['service-cidr']) c.serviceCIDRs = list(v['service-cidr']);
  if (v['nodeport-addresses']) c.nodePortAddresses = list(v['nodeport-addresses']);
  if (v['service-node-port-range'] !== undefined) c.nodePortRange = portRange(v['service-node-port-range'], '--service-node-port-range');
  set('masqueradeAll', v['masquerade-all']);
  if (v['masquerade-address']) c.masqueradeAddresses = list(v['masquerade-address']);
  set('tun', v.tun);
  if (v['no-tun-offload']) c.tunOffload = false;
  set('metricsBindAddress', v['metrics-bind-address']);
  set('healthzBindAddress', v['healthz-bind-address']);
  set('conntrackState', v['conntrack-state']);
  if (v['conntrack-max'] !== undefined) c.conntrackMax = Number(v['conntrack-max']);
  return validate(c, (field) => (v.config && !flagged(v, field) ? `${v.config}: ${field}` : `--${FLAG_OF[field] ?? field}`));
}

const FLAG_OF: Record<string, string> = {
  mode: 'mode', tun: 'tun', nodeIPs: 'node-ip', clusterCIDRs: 'cluster-cidr', serviceCIDRs: 'service-cidr',
  nodePortAddresses: 'nodeport-addresses', masqueradeAddresses: 'masquerade-address', conntrackMax: 'conntrack-max', metricsBindAddress: 'metrics-bind-address',
  healthzBindAddress: 'healthz-bind-address', manifests: 'manifests', kubeconfig: 'kubeconfig', nodePortRange: 'service-node-port-range',
};
const flagged = (v: Record<string, unknown>, field: string): boolean => v[FLAG_OF[field] ?? field] !== undefined;

/** Checks every field; `where(field)` names the flag or file field in messages. */
export function validate(c: ProxyConfig, where: (field: string) => string = (f) => f): ProxyConfig {
  const fail = (field: string, msg: string): never => { throw new ConfigError(`${where(field)}: ${msg}`); };
  if (!PROXY_MODES.includes(c.mode)) fail('mode', `expected one of ${PROXY_MODES.join(', ')}, got ${JSON.stringify(c.mode)}`);
  if (!!c.manifests === !!c.kubeconfig) fail('manifests', 'exactly one of --manifests and --kubeconfig is required');
  if (c.nodeName === '') c.nodeName = hostname();
  c.nodeIPs = c.nodeIPs.map((ip) => canonical(ip) ?? fail('nodeIPs', `not an IP address: ${JSON.stringify(ip)}`));
  for (const k of ['clusterCIDRs', 'serviceCIDRs'] as const) {
    for (const t of c[k]) if (!parseCIDR(t)) fail(k, `not a CIDR: ${JSON.stringify(t)}`);
  }
  if (c.serviceCIDRs.length === 0) fail('serviceCIDRs', 'at least one service CIDR is needed');
  for (const t of c.nodePortAddresses) if (t !== 'primary' && !parseCIDR(t)) fail('nodePortAddresses', `not a CIDR: ${JSON.stringify(t)}`);
  const [lo, hi] = c.nodePortRange;
  if (!(Number.isInteger(lo) && Number.isInteger(hi) && lo >= 1 && lo <= hi && hi <= 65535)) fail('nodePortRange', `bad range ${lo}-${hi}`);
  c.masqueradeAddresses = c.masqueradeAddresses.map((a) => canonical(a) ?? fail('masqueradeAddresses', `not an IP address: ${JSON.stringify(a)}`));
  // One per family of the service CIDRs; a family without one takes its service CIDR's last address.
  for (const fam of [4, 6]) {
    const given = c.masqueradeAddresses.filter((a) => a.includes(':') === (fam === 6));
    if (given.length > 1) fail('masqueradeAddresses', `one address per family, got ${given.join(', ')}`);
    const cidr = c.serviceCIDRs.find((s) => s.includes(':') === (fam === 6));
    if (given.length === 0 && cidr) c.masqueradeAddresses.push(lastAddress(parseCIDR(cidr)!));
  }
  if (!Number.isInteger(c.conntrackMax) || c.conntrackMax < 16 || c.conntrackMax > 1 << 24) fail('conntrackMax', `expected 16 to ${1 << 24} flows, got ${c.conntrackMax}`);
  if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(c.tun)) fail('tun', `device names are 1-15 letters, digits, "_", "." or "-": ${JSON.stringify(c.tun)}`);
  for (const k of ['metricsBindAddress', 'healthzBindAddress'] as const) if (c[k] !== '') hostPort(c[k], where(k));
  return c;
}

function canonical(s: string): string | null {
  const ip = parseIP(s);
  return ip ? formatIP(ip) : null;
}

/** The highest address below the broadcast (IPv4) or the last one (IPv6) of a range. */
function lastAddress(c: CIDR): string {
  const bytes = Uint8Array.from(c.bytes);
  for (let bit = c.prefix; bit < bytes.length * 8; bit++) bytes[bit >> 3]! |= 0x80 >> (bit & 7);
  if (c.family === 4) bytes[3]! -= 1;
  return formatIP({ family: c.family, bytes });
}

/** "host:port" / "[v6]:port" → parts; throws naming `what`. */
export function hostPort(text: string, what: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]*):(\d+)$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 0 && port <= 65535) || (m[1] !== '' && !parseIP(m[1]!))) {
    throw new ConfigError(`${what}: expected ADDRESS:PORT, got ${JSON.stringify(text)}`);
  }
  return { host: m[1] === '' ? '0.0.0.0' : m[1]!, port };
}

function portRange(text: string, what: string): [number, number] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(text.trim());
  if (!m) throw new ConfigError(`${what}: expected FIRST-LAST, got ${JSON.stringify(text)}`);
  return [Number(m[1]), Number(m[2] ?? m[1])];
}

type FieldReader = (cfg: ProxyConfig, value: unknown, fail: (msg: string) => never) => void;

const str = (v: unknown, fail: (m: string) => never): string => (typeof v === 'string' ? v : fail('expected a string'));
const strList = (v: unknown, fail: (m: string) => never): string[] =>
  Array.isArray(v) ? v.map((x) => str(x, fail)) : typeof v === 'string' ? list(v) : fail('expected a list of strings');
const bool = (v: unknown, fail: (m: string) => never): boolean => (typeof v === 'boolean' ? v : fail('expected true or false'));

// KubeProxyConfiguration (k8s.io/kube-proxy/config/v1alpha1) fields this proxy honours, then svcplane's.
const FIELDS: Record<string, FieldReader> = {
  apiVersion: () => {},
  kind: (_c, v, fail) => { if (v !== 'KubeProxyConfiguration') fail('expected KubeProxyConfiguration'); },
  mode: (c, v, fail) => { c.mode = str(v, fail) as ProxyMode; },
  clusterCIDR: (c, v, fail) => { c.clusterCIDRs = list(str(v, fail)); },
  hostnameOverride: (c, v, fail) => { c.nodeName = str(v, fail); },
  nodePortAddresses: (c, v, fail) => { c.nodePortAddresses = strList(v, fail); },
  healthzBindAddress: (c, v, fail) => { c.healthzBindAddress = str(v, fail); },
  metricsBindAddress: (c, v, fail) => { c.metricsBindAddress = str(v, fail); },
  'clientConnection.kubeconfig': (c, v, fail) => { const s = str(v, fail); if (s) c.kubeconfig = s; },
  'iptables.masqueradeAll': (c, v, fail) => { c.masqueradeAll = bool(v, fail); },
  serviceCIDR: (c, v, fail) => { c.serviceCIDRs = strList(v, fail); },
  nodeIP: (c, v, fail) => { c.nodeIPs = strList(v, fail); },
  serviceNodePortRange: (c, v, fail) => { c.nodePortRange = portRange(str(v, fail), 'serviceNodePortRange'); },
  manifests: (c, v, fail) => { c.manifests = str(v, fail); },
  tun: (c, v, fail) => { c.tun = str(v, fail); },
  tunOffload: (c, v, fail) => { c.tunOffload = bool(v, fail); },
  conntrackState: (c, v, fail) => { c.conntrackState = str(v, fail); },
  conntrackMax: (c, v, fail) => { c.conntrackMax = typeof v === 'number' ? v : fail('expected a number'); },
  masqueradeAddress: (c, v, fail) => { c.masqueradeAddresses = strList(v, fail); },
};
// Sections whose other fields are accepted and ignored (kube-proxy tuning this proxy has no use for).
const IGNORED_SECTIONS = new Set(['clientConnection', 'iptables', 'ipvs', 'conntrack', 'nftables', 'winkernel', 'detectLocal', 'logging', 'featureGates']);
const IGNORED_FIELDS = new Set(['bindAddress', 'bindAddressHardFail', 'configSyncPeriod', 'enableProfiling', 'oomScoreAdj', 'portRange', 'showHiddenMetricsForVersion', 'detectLocalMode', 'syncPeriod', 'minSyncPeriod']);

/** Reads a YAML config file; unknown fields are errors naming file:line and the field path. */
export function readConfigFile(file: string, text = readFileSync(file, 'utf8')): ProxyConfig {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc });
  const lineOf = (n: YamlNode | null | undefined): string => (n?.range ? `:${lc.linePos(n.range[0]).line}` : '');
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    throw new ConfigError(`${file}:${e.linePos?.[0].line ?? '?'}: ${e.message.split('\n')[0]}`);
  }
  const c: ProxyConfig = { ...DEFAULTS };
  if (!isMap(doc.contents)) throw new ConfigError(`${file}: expected a mapping of fields`);
  const visit = (map: YamlNode, prefix: string): void => {
    if (!isMap(map)) return;
    for (const pair of map.items) {
      const key = String((pair.key as { value?: unknown })?.value ?? pair.key);
      const path = prefix ? `${prefix}.${key}` : key;
      const node = pair.value as YamlNode | null;
      const fail = (msg: string): never => { throw new ConfigError(`${file}${lineOf(node ?? (pair.key as YamlNode))}: ${path}: ${msg}`); };
      const reader = FIELDS[path];
      if (reader) reader(c, node && 'toJSON' in node ? (node as { toJSON(): unknown }).toJSON() : null, fail);
      else if (!prefix && IGNORED_SECTIONS.has(key)) visit(node as YamlNode, key);
      else if (!(prefix ? IGNORED_SECTIONS.has(prefix) : IGNORED_FIELDS.has(key))) fail('unknown field');
    }
  };
  visit(doc.contents, '');
  return c;
}
