// proxy-config.ts — the settings of `svcplane proxy`: command-line flags (kube-proxy's where it has
// the setting; cli/proxy.ts prints them) and a YAML config file with KubeProxyConfiguration's field
// names (mode, clusterCIDR, detectLocalMode, nodePortAddresses, the bind addresses,
// hostnameOverride, oomScoreAdj, clientConnection.kubeconfig, iptables.*, ipvs.*, conntrack.*; a
// ConfigMap as kubeadm writes it, with kube-proxy's defaulting) plus svcplane's own (serviceCIDR,
// nodeIP, manifests, tun, conntrackState, masqueradeAddresses, userspace*). Flags override the
// file; kube-proxy's flags and fields that change nothing here are taken and listed. Every problem
// names the file, line and field (or the flag). Never touches the network, devices or the core.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { LineCounter, isMap, type Node as YamlNode } from 'yaml';
import { TOO_DEEP, yamlDocuments } from '../kube/yaml-depth.js';
import { parseCIDR, parseIP, formatIP, joinHostPort, splitHostPort, type CIDR } from '../kube/ip.js';
import { SCHEDULERS, isScheduler } from '../ipvs/program.js';
import { SECONDS_FLAGS, validateTables } from './kernel-tables.js';
import { duration, int32Flag, takeBoolValues } from './flag-values.js';

export { CONNTRACK_TABLE_DEFAULT, conntrackTableSize } from './kernel-tables.js';

export type ProxyMode = 'iptables' | 'ipvs' | 'direct' | 'userspace';
export const PROXY_MODES: readonly ProxyMode[] = ['iptables', 'ipvs', 'direct', 'userspace'];
/** How Services are programmed into the core (in userspace mode: userspaceCore). */
export type CoreMode = Exclude<ProxyMode, 'userspace'>;
const CORE_MODES: readonly CoreMode[] = ['iptables', 'ipvs', 'direct'];
/** The mode the core is programmed in: --mode, or --userspace-core in userspace mode. */
export const coreMode = (c: ProxyConfig): CoreMode => (c.mode === 'userspace' ? c.userspaceCore : c.mode);
/**
 * kube-proxy's --detect-local-mode: what tells traffic from this cluster's pods (left alone) from
 * traffic from elsewhere (masqueraded): the cluster CIDR, or this node's pod CIDRs from its Node
 * object. BridgeInterface and InterfaceNamePrefix are refused: every packet reaches this proxy
 * through its TUN device (or a local socket), never through the pods' own interfaces.
 */
export type DetectLocalMode = 'ClusterCIDR' | 'NodeCIDR';
const DETECT_LOCAL_MODES: readonly string[] = ['ClusterCIDR', 'NodeCIDR'];

/** Userspace mode's listening port per service port: the Service's own when it can be bound, or always one from the range. */
export type UserspacePorts = 'service' | 'range';

export interface ProxyConfig {
  mode: ProxyMode;
  /** Exactly one of manifests / kubeconfig. */
  manifests?: string;
  kubeconfig?: string;
  /** kube-proxy's --master: the API server's address, over the kubeconfig's (or alone: no credentials). */
  master?: string;
  /** This node's name (endpoint locality, topology); kube-proxy's --hostname-override. */
  nodeName: string;
  /** The node's own addresses; empty = every global address of the current namespace. */
  nodeIPs: string[];
  /** Pod network(s): traffic from outside is masqueraded on its way to a ClusterIP. */
  clusterCIDRs: string[];
  detectLocalMode: DetectLocalMode;
  /** Routed into the TUN device in full. */
  serviceCIDRs: string[];
  /** CIDRs of node addresses NodePorts answer on ("primary" = the node IP); empty = all. */
  nodePortAddresses: string[];
  /** The range NodePorts are allocated from (--service-node-port-range of the API server). */
  nodePortRange: [number, number];
  masqueradeAll: boolean;
  /** kube-proxy's --iptables-masquerade-bit (iptables.masqueradeBit, default 14): the fwmark bit of KUBE-MARK-MASQ (iptables and ipvs modes). */
  masqueradeBit: number;
  /** Source addresses masqueraded traffic gets, one per family (routed into the TUN, assigned to no interface). */
  masqueradeAddresses: string[];
  tun: string;
  /** Checksum and TCP segmentation offload on the TUN (IFF_VNET_HDR + TUNSETOFFLOAD; io/tun.ts). */
  tunOffload: boolean;
  /** host:port; "" disables. */
  metricsBindAddress: string;
  healthzBindAddress: string;
  conntrackState?: string;
  /**
   * How often the flows are also written to conntrackState while the proxy runs (0: only on exit),
   * so a proxy that is killed or crashes comes back with the connections of its last checkpoint.
   */
  conntrackCheckpointMs: number;
  /**
   * Flows the core's conntrack table holds (rounded up to a power of two); 0: sized by
   * conntrackMaxPerCore / conntrackMin when either is set, else CONNTRACK_TABLE_DEFAULT
   * (conntrackTableSize).
   */
  conntrackMax: number;
  /**
   * kube-proxy's conntrack section (KubeProxyConntrackConfiguration), which it writes to the kernel's
   * nf_conntrack sysctls at start (cmd/kube-proxy/app/server_linux.go setupConntrack) and this proxy
   * applies to the core's table: maxPerCore / min (null: not set) size it, the timeouts (ms, whole
   * seconds; 0 leaves Linux's default) replace the table's, tcpBeLiberal drops the INVALID rule.
   */
  conntrackMaxPerCore: number | null;
  conntrackMin: number | null;
  conntrackTCPEstablishedMs: number;
  conntrackTCPCloseWaitMs: number;
  conntrackTCPBeLiberal: boolean;
  conntrackUDPMs: number;
  conntrackUDPStreamMs: number;
  /** Routing table holding the TUN's default route (policy routing). */
  routeTable: number;
  /** Userspace mode: local addresses the per-service-port listeners bind (one family each or both). */
  userspaceBind: string[];
  userspacePorts: UserspacePorts;
  /** Userspace mode: how the core is programmed to choose endpoints. */
  userspaceCore: CoreMode;
  /** kube-proxy's --proxy-port-range: listening ports come from here; [0, 0] = any free port. */
  proxyPortRange: [number, number];
  /** kube-proxy's --udp-timeout (udpIdleTimeout, default 250 ms): an idle UDP client session is closed. */
  udpIdleTimeoutMs: number;
  /**
   * kube-proxy's min sync period (default 1 s; its v1alpha1 file and flags keep one per mode:
   * iptables.minSyncPeriod / --iptables-min-sync-period, ipvs.minSyncPeriod / --ipvs-min-sync-period,
   * the running mode's taken; svcplane's --min-sync-period / minSyncPeriod win): the least time from the end of one
   * sync to the start of the next; changes in between are applied together. 0: every change at once.
   */
  minSyncPeriodMs: number;
  /**
   * kube-proxy's sync period (default 30 s; per mode as above: iptables.syncPeriod, ipvs.syncPeriod, …;
   * svcplane's --sync-period / syncPeriod win): how often it writes its rules again.
   * Here: how often the routes and policy rules the proxy set up are checked, and what something
   * else removed is put back (the core's rules are the proxy's alone). As in kube-proxy, a queued
   * change may wait twice this before /healthz reports 503.
   */
  syncPeriodMs: number;
  /**
   * kube-proxy's --oom-score-adj (oomScoreAdj, default -999 as kube-proxy's qos.KubeProxyOOMScoreAdj):
   * written to /proc/self/oom_score_adj at start, so the kernel's OOM killer takes the node's
   * Service traffic last.
   */
  oomScoreAdj: number;
  /** kube-proxy's --ipvs-scheduler (ipvs.scheduler): the ipvs mode's scheduler; "" = rr. */
  ipvsScheduler: string;
  /**
   * kube-proxy's --ipvs-tcp-timeout, --ipvs-tcpfin-timeout, --ipvs-udp-timeout (ipvs.tcpTimeout,
   * tcpFinTimeout, udpTimeout): the ipvs mode's connection timeouts (ms, whole seconds) as
   * `ipvsadm --set` takes them; 0 leaves IPVS's own (900 s, 120 s, 300 s).
   */
  ipvsTCPTimeoutMs: number;
  ipvsTCPFinTimeoutMs: number;
  ipvsUDPTimeoutMs: number;
}

export class ConfigError extends Error {}

/** The routing table the TUN's default route goes in (policy routing). */
export const ROUTE_TABLE = 2325;

const DEFAULTS: ProxyConfig = {
  mode: 'iptables', nodeName: '', nodeIPs: [], clusterCIDRs: [], detectLocalMode: 'ClusterCIDR', masqueradeAddresses: [], serviceCIDRs: ['10.96.0.0/12'], nodePortAddresses: [],
  nodePortRange: [30000, 32767], masqueradeAll: false, masqueradeBit: 14, tun: 'svc0', tunOffload: true, metricsBindAddress: '127.0.0.1:10249',
  healthzBindAddress: '0.0.0.0:10256', routeTable: ROUTE_TABLE, conntrackMax: 0, conntrackCheckpointMs: 10_000,
  conntrackMaxPerCore: null, conntrackMin: null, conntrackTCPEstablishedMs: 24 * 3_600_000, conntrackTCPCloseWaitMs: 3_600_000,
  conntrackTCPBeLiberal: false, conntrackUDPMs: 0, conntrackUDPStreamMs: 0,
  userspaceBind: ['127.0.0.1'], userspacePorts: 'service', userspaceCore: 'iptables', proxyPortRange: [0, 0], udpIdleTimeoutMs: 250,
  minSyncPeriodMs: 1000, syncPeriodMs: 30_000, oomScoreAdj: -999, ipvsScheduler: '', ipvsTCPTimeoutMs: 0, ipvsTCPFinTimeoutMs: 0, ipvsUDPTimeoutMs: 0,
};

/** "a,b" and repeated flags, flattened; blanks dropped. */
const list = (v: string | string[] | undefined): string[] =>
  (v === undefined ? [] : Array.isArray(v) ? v : [v]).flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '');

/** Every flag `svcplane proxy` takes (node:util parseArgs), besides the kube-proxy ones it ignores. */
export const PROXY_FLAGS = {
  config: { type: 'string' }, mode: { type: 'string' }, 'proxy-mode': { type: 'string' }, manifests: { type: 'string' }, kubeconfig: { type: 'string' },
  master: { type: 'string' },
  'hostname-override': { type: 'string' }, 'node-ip': { type: 'string', multiple: true }, 'bind-address': { type: 'string' },
  'cluster-cidr': { type: 'string', multiple: true }, 'detect-local-mode': { type: 'string' }, 'service-cidr': { type: 'string', multiple: true },
  'nodeport-addresses': { type: 'string', multiple: true }, 'service-node-port-range': { type: 'string' },
  'masquerade-all': { type: 'boolean' }, 'iptables-masquerade-bit': { type: 'string' }, 'masquerade-address': { type: 'string', multiple: true }, tun: { type: 'string' },
  'no-tun-offload': { type: 'boolean' }, 'metrics-bind-address': { type: 'string' }, 'healthz-bind-address': { type: 'string' },
  'conntrack-state': { type: 'string' }, 'conntrack-checkpoint-period': { type: 'string' }, 'conntrack-max': { type: 'string' },
  'conntrack-max-per-core': { type: 'string' }, 'conntrack-min': { type: 'string' }, 'conntrack-tcp-timeout-established': { type: 'string' },
  'conntrack-tcp-timeout-close-wait': { type: 'string' }, 'conntrack-tcp-be-liberal': { type: 'boolean' },
  'conntrack-udp-timeout': { type: 'string' }, 'conntrack-udp-timeout-stream': { type: 'string' },
  'userspace-bind': { type: 'string', multiple: true }, 'userspace-ports': { type: 'string' }, 'userspace-core': { type: 'string' },
  'proxy-port-range': { type: 'string' }, 'udp-timeout': { type: 'string' }, 'min-sync-period': { type: 'string' },
  'sync-period': { type: 'string' }, 'iptables-sync-period': { type: 'string' }, 'iptables-min-sync-period': { type: 'string' },
  'ipvs-sync-period': { type: 'string' }, 'ipvs-min-sync-period': { type: 'string' }, 'ipvs-scheduler': { type: 'string' }, 'oom-score-adj': { type: 'string' }, 'ipvs-tcp-timeout': { type: 'string' },
  'ipvs-tcpfin-timeout': { type: 'string' }, 'ipvs-udp-timeout': { type: 'string' },
} as const;

/** Parses flags (and the --config file they name) into a validated config. */
export function parseProxyArgs(argv: string[]): ProxyConfig {
  const { rest: args, ignored } = takeIgnoredFlags(argv);
  const isBool = (name: string) => Object.hasOwn(PROXY_FLAGS, name) && PROXY_FLAGS[name as keyof typeof PROXY_FLAGS].type === 'boolean';
  const { rest, given: bools } = takeBoolValues(args, isBool, (flag, msg) => flagFail(flag)(msg));
  let parsed;
  try {
    parsed = parseArgs({ args: rest, strict: true, options: PROXY_FLAGS });
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  const v = { ...parsed.values, ...bools };
  const c: ProxyConfig = v.config ? readConfigFile(v.config, readText(v.config)) : { ...DEFAULTS };
  const set = <K extends keyof ProxyConfig>(k: K, val: ProxyConfig[K] | undefined): void => { if (val !== undefined) c[k] = val; };
  if (v['proxy-mode'] !== undefined && v.mode !== undefined && v['proxy-mode'] !== v.mode) throw new ConfigError(`--proxy-mode ${v['proxy-mode']} and --mode ${v.mode} disagree`);
  // --proxy-mode is kube-proxy's name for it; "" is its default.
  const mode = v.mode ?? v['proxy-mode'];
  if (mode !== undefined) c.mode = (mode || DEFAULTS.mode) as ProxyMode;
  set('manifests', v.manifests);
  set('kubeconfig', v.kubeconfig);
  set('master', v.master);
  // A source named on the command line replaces the file's (a kube-proxy ConfigMap names its kubeconfig).
  if (v.manifests !== undefined && v.kubeconfig === undefined && v.master === undefined) delete c.kubeconfig;
  if ((v.kubeconfig !== undefined || v.master !== undefined) && v.manifests === undefined) delete c.manifests;
  set('nodeName', v['hostname-override']);
  if (v['node-ip']) c.nodeIPs = list(v['node-ip']);
  else if (v['bind-address'] !== undefined && !NOTES.get(c)?.lines.has('nodeIP')) {
    const ips = bindAddressIPs(v['bind-address'], flagFail('--bind-address'));
    if (ips.length > 0) c.nodeIPs = ips;
  }
  if (v['cluster-cidr']) c.clusterCIDRs = list(v['cluster-cidr']);
  set('detectLocalMode', v['detect-local-mode'] as DetectLocalMode | undefined);
  if (v['service-cidr']) c.serviceCIDRs = list(v['service-cidr']);
  if (v['nodeport-addresses']) c.nodePortAddresses = list(v['nodeport-addresses']);
  if (v['service-node-port-range'] !== undefined) c.nodePortRange = portRange(v['service-node-port-range'], flagFail('--service-node-port-range'));
  set('masqueradeAll', v['masquerade-all']);
  if (v['iptables-masquerade-bit'] !== undefined) c.masqueradeBit = int32Flag(v['iptables-masquerade-bit'], flagFail('--iptables-masquerade-bit'));
  if (v['masquerade-address']) c.masqueradeAddresses = list(v['masquerade-address']);
  set('tun', v.tun);
  if (v['no-tun-offload']) c.tunOffload = false;
  if (v['metrics-bind-address'] !== undefined) c.metricsBindAddress = withPort(v['metrics-bind-address'], METRICS_PORT);
  if (v['healthz-bind-address'] !== undefined) c.healthzBindAddress = withPort(v['healthz-bind-address'], HEALTHZ_PORT);
  set('conntrackState', v['conntrack-state']);
  if (v['conntrack-checkpoint-period'] !== undefined) c.conntrackCheckpointMs = duration(v['conntrack-checkpoint-period'], flagFail('--conntrack-checkpoint-period'));
  if (v['conntrack-max'] !== undefined) c.conntrackMax = int32Flag(v['conntrack-max'], flagFail('--conntrack-max'));
  if (v['conntrack-max-per-core'] !== undefined) c.conntrackMaxPerCore = int32Flag(v['conntrack-max-per-core'], flagFail('--conntrack-max-per-core'));
  if (v['conntrack-min'] !== undefined) c.conntrackMin = int32Flag(v['conntrack-min'], flagFail('--conntrack-min'));
  for (const [flag, field] of SECONDS_FLAGS) {
    const text = v[flag];
    if (typeof text === 'string') c[field] = duration(text, flagFail(`--${flag}`));
  }
  set('conntrackTCPBeLiberal', v['conntrack-tcp-be-liberal']);
  if (v['userspace-bind']) c.userspaceBind = list(v['userspace-bind']);
  set('userspacePorts', v['userspace-ports'] as UserspacePorts | undefined);
  set('userspaceCore', v['userspace-core'] as CoreMode | undefined);
  if (v['proxy-port-range'] !== undefined) c.proxyPortRange = portRange(v['proxy-port-range'], flagFail('--proxy-port-range'));
  if (v['udp-timeout'] !== undefined) c.udpIdleTimeoutMs = duration(v['udp-timeout'], flagFail('--udp-timeout'));
  if (v['min-sync-period'] !== undefined) c.minSyncPeriodMs = duration(v['min-sync-period'], flagFail('--min-sync-period'));
  if (v['sync-period'] !== undefined) c.syncPeriodMs = duration(v['sync-period'], flagFail('--sync-period'));
  const modeFlags: ModeSync = {};
  for (const mode of ['iptables', 'ipvs'] as const) {
    for (const key of ['syncPeriod', 'minSyncPeriod'] as const) {
      const flag = `${mode}-${key === 'syncPeriod' ? 'sync-period' : 'min-sync-period'}` as const;
      const text = v[flag];
      if (typeof text !== 'string') continue;
      const ms = duration(text, flagFail(`--${flag}`));
      if (key === 'syncPeriod' && ms === 0) flagFail(`--${flag}`)('must be greater than 0');
      modeFlags[`${mode}.${key}`] = ms;
    }
  }
  const given = new Set<string>([...(NOTES.get(c)?.lines.keys() ?? [])]);
  if (v['sync-period'] !== undefined) given.add('syncPeriod');
  if (v['min-sync-period'] !== undefined) given.add('minSyncPeriod');
  modeSyncPeriods(c, given, modeFlags);
  set('ipvsScheduler', v['ipvs-scheduler']);
  if (v['oom-score-adj'] !== undefined) c.oomScoreAdj = int32Flag(v['oom-score-adj'], flagFail('--oom-score-adj'));
  const lines = NOTES.get(c)?.lines;
  notesOf(c).ignored.unshift(...ignored);
  return validate(c, (field) => {
    if (!v.config || flagged(v, field)) return `--${FLAG_OF[field] ?? field}`;
    const name = FIELD_OF[field] ?? field;
    return `${v.config}${lines?.get(name) ?? ''}: ${name}`;
  });
}

// kube-proxy's v1alpha1 config keeps the sync periods per mode (iptables.*, ipvs.*), and its
// conversion (pkg/proxy/apis/config/v1alpha1/conversion.go) takes the running mode's: ipvs's in ipvs
// mode, iptables's in every other. svcplane's own top-level fields and plain flags win over them.
type ModeSync = Partial<Record<`${'iptables' | 'ipvs'}.${'syncPeriod' | 'minSyncPeriod'}`, number>>;

/** Sets the sync periods nothing in `given` (top-level file fields, plain flags) set: the mode's flag, else file field, else the default. */
function modeSyncPeriods(c: ProxyConfig, given: ReadonlySet<string>, flags: ModeSync): void {
  const mode = coreMode(c) === 'ipvs' ? 'ipvs' : 'iptables';
  const file = NOTES.get(c)?.sync ?? {};
  for (const [key, field] of [['syncPeriod', 'syncPeriodMs'], ['minSyncPeriod', 'minSyncPeriodMs']] as const) {
    if (given.has(key)) continue;
    c[field] = flags[`${mode}.${key}`] ?? file[`${mode}.${key}`] ?? DEFAULTS[field];
  }
}

// kube-proxy flags that change nothing here (logging, profiling, feature gates, the informers' resync,
// what only the kernel's IPVS or a bridge detector needs): taken, and listed by ignoredSettings().
export const IGNORED_VALUE_FLAGS: ReadonlySet<string> = new Set(['v', 'feature-gates', 'config-sync-period', 'ipvs-exclude-cidrs', 'log-flush-frequency', 'logging-format',
  'show-hidden-metrics-for-version', 'pod-bridge-interface', 'pod-interface-name-prefix', 'vmodule']);
export const IGNORED_BOOL_FLAGS: ReadonlySet<string> = new Set(['profiling', 'bind-address-hard-fail', 'ipvs-strict-arp', 'iptables-localhost-nodeports', 'alsologtostderr', 'logtostderr']);

/** `argv` without the ignored kube-proxy flags (Go's forms: -v=2, --v 2, --profiling, --profiling=false), and those. */
function takeIgnoredFlags(argv: string[]): { rest: string[]; ignored: string[] } {
  const rest: string[] = [];
  const ignored: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const m = /^--?([a-z][a-z0-9-]*)(=.*)?$/.exec(a);
    const name = m?.[1] ?? '';
    if (m && IGNORED_VALUE_FLAGS.has(name)) {
      if (m[2] === undefined && i + 1 < argv.length) ignored.push(`--${name}=${argv[++i]}`);
      else ignored.push(`--${name}${m[2] ?? ''}`);
    } else if (m && IGNORED_BOOL_FLAGS.has(name)) ignored.push(`--${name}${m[2] ?? ''}`);
    else rest.push(a);
  }
  return { rest, ignored };
}

/**
 * The kube-proxy flags and config-file fields (with a value other than empty, 0, false or null)
 * that were taken but change nothing here, for the proxy to say at start.
 */
export function ignoredSettings(c: ProxyConfig): string[] {
  return NOTES.get(c)?.ignored ?? [];
}

/** The config file's text; a file that cannot be read is a ConfigError naming it and why. */
function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`--config ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

const flagFail = (flag: string) => (msg: string): never => { throw new ConfigError(`${flag}: ${msg}`); };

const FLAG_OF: Record<string, string> = {
  mode: 'mode', tun: 'tun', nodeName: 'hostname-override', nodeIPs: 'node-ip', clusterCIDRs: 'cluster-cidr', detectLocalMode: 'detect-local-mode', serviceCIDRs: 'service-cidr',
  nodePortAddresses: 'nodeport-addresses', masqueradeAddresses: 'masquerade-address', conntrackMax: 'conntrack-max', metricsBindAddress: 'metrics-bind-address',
  healthzBindAddress: 'healthz-bind-address', manifests: 'manifests', kubeconfig: 'kubeconfig', master: 'master', nodePortRange: 'service-node-port-range', masqueradeBit: 'iptables-masquerade-bit',
  userspaceBind: 'userspace-bind', userspacePorts: 'userspace-ports', userspaceCore: 'userspace-core', proxyPortRange: 'proxy-port-range', udpIdleTimeoutMs: 'udp-timeout',
  minSyncPeriodMs: 'min-sync-period', syncPeriodMs: 'sync-period', ipvsScheduler: 'ipvs-scheduler', oomScoreAdj: 'oom-score-adj', conntrackCheckpointMs: 'conntrack-checkpoint-period',
  conntrackMaxPerCore: 'conntrack-max-per-core', conntrackMin: 'conntrack-min', conntrackTCPBeLiberal: 'conntrack-tcp-be-liberal',
  ...Object.fromEntries(SECONDS_FLAGS.map(([flag, field]) => [field, flag])),
};
// The config file's name of a field, where it differs from ours.
const FIELD_OF: Record<string, string> = {
  nodeName: 'hostnameOverride', nodeIPs: 'nodeIP', clusterCIDRs: 'clusterCIDR', serviceCIDRs: 'serviceCIDR', masqueradeAddresses: 'masqueradeAddress',
  nodePortRange: 'serviceNodePortRange', masqueradeBit: 'iptables.masqueradeBit', proxyPortRange: 'portRange', udpIdleTimeoutMs: 'udpIdleTimeout',
  minSyncPeriodMs: 'minSyncPeriod', syncPeriodMs: 'syncPeriod', ipvsScheduler: 'ipvs.scheduler', kubeconfig: 'clientConnection.kubeconfig',
  conntrackCheckpointMs: 'conntrackCheckpointPeriod', conntrackMaxPerCore: 'conntrack.maxPerCore', conntrackMin: 'conntrack.min',
  conntrackTCPEstablishedMs: 'conntrack.tcpEstablishedTimeout', conntrackTCPCloseWaitMs: 'conntrack.tcpCloseWaitTimeout',
  conntrackTCPBeLiberal: 'conntrack.tcpBeLiberal', conntrackUDPMs: 'conntrack.udpTimeout', conntrackUDPStreamMs: 'conntrack.udpStreamTimeout',
  ipvsTCPTimeoutMs: 'ipvs.tcpTimeout', ipvsTCPFinTimeoutMs: 'ipvs.tcpFinTimeout', ipvsUDPTimeoutMs: 'ipvs.udpTimeout',
};
const flagged = (v: Record<string, unknown>, field: string): boolean => v[FLAG_OF[field] ?? field] !== undefined;

/** Checks every field; `where(field)` names the flag or file field in messages. */
export function validate(c: ProxyConfig, where: (field: string) => string = (f) => f): ProxyConfig {
  const fail = (field: string, msg: string): never => { throw new ConfigError(`${where(field)}: ${msg}`); };
  if ((c.mode as string) === 'nftables') {
    fail('mode', 'nftables: kube-proxy\'s nftables ruleset is not run here (svcplane render --mode nftables prints it); use direct (Services served from the core\'s own tables as nftables mode serves them: unserved ports of cluster IPs rejected, service CIDR addresses no Service holds dropped) or iptables (kube-proxy\'s iptables rules)');
  }
  if (!PROXY_MODES.includes(c.mode)) fail('mode', `expected one of ${PROXY_MODES.join(', ')}, got ${JSON.stringify(c.mode)}`);
  if (!!c.manifests === !!(c.kubeconfig || c.master)) fail('manifests', 'exactly one of --manifests and --kubeconfig (or --master) is required');
  if (c.master !== undefined && !/^https?:\/\/[^\s/]+/.test(c.master)) fail('master', `expected the API server's URL (https://HOST[:PORT]), got ${JSON.stringify(c.master)}`);
  // kube-proxy's GetHostname (pkg/util/node): the override or the host name, trimmed, lowercased
  // (Node names are; an endpoint's nodeName would never match an uppercase one).
  c.nodeName = (c.nodeName || hostname()).trim().toLowerCase();
  if (c.nodeName === '') fail('nodeName', 'empty hostname is invalid');
  c.nodeIPs = c.nodeIPs.map((ip) => canonical(ip) ?? fail('nodeIPs', `not an IP address: ${JSON.stringify(ip)}`));
  for (const k of ['clusterCIDRs', 'serviceCIDRs'] as const) {
    for (const t of c[k]) if (!parseCIDR(t)) fail(k, `not a CIDR: ${JSON.stringify(t)}`);
  }
  if (c.serviceCIDRs.length === 0) fail('serviceCIDRs', 'at least one service CIDR is needed');
  // kube-proxy reads an empty mode as ClusterCIDR.
  if ((c.detectLocalMode as string) === '') c.detectLocalMode = 'ClusterCIDR';
  if (c.detectLocalMode === 'BridgeInterface' as string || c.detectLocalMode === 'InterfaceNamePrefix' as string) {
    fail('detectLocalMode', `${c.detectLocalMode} cannot tell pods here: every packet reaches this proxy through its TUN device (or a local socket), never through the pods' own interfaces; use ClusterCIDR or NodeCIDR`);
  }
  if (!DETECT_LOCAL_MODES.includes(c.detectLocalMode)) fail('detectLocalMode', `expected ClusterCIDR or NodeCIDR, got ${JSON.stringify(c.detectLocalMode)}`);
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
  if (!Number.isInteger(c.conntrackMax) || (c.conntrackMax !== 0 && (c.conntrackMax < 16 || c.conntrackMax > 1 << 24))) {
    fail('conntrackMax', `expected 16 to ${1 << 24} flows (0: sized by maxPerCore and min), got ${c.conntrackMax}`);
  }
  validateTables(c, fail);
  if (!(Number.isInteger(c.oomScoreAdj) && c.oomScoreAdj >= -1000 && c.oomScoreAdj <= 1000)) {
    fail('oomScoreAdj', `must be within the range [-1000, 1000], got ${c.oomScoreAdj}`);
  }
  if (!(Number.isInteger(c.masqueradeBit) && c.masqueradeBit >= 0 && c.masqueradeBit <= 31)) fail('masqueradeBit', `must be in the range [0, 31], got ${c.masqueradeBit}`);
  if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(c.tun)) fail('tun', `device names are 1-15 letters, digits, "_", "." or "-": ${JSON.stringify(c.tun)}`);
  for (const k of ['metricsBindAddress', 'healthzBindAddress'] as const) if (c[k] !== '') hostPort(c[k], where(k));
  c.userspaceBind = c.userspaceBind.map((a) => canonical(a) ?? fail('userspaceBind', `not an IP address: ${JSON.stringify(a)}`));
  if (c.userspaceBind.length === 0) fail('userspaceBind', 'at least one address is needed');
  if (c.userspacePorts !== 'service' && c.userspacePorts !== 'range') fail('userspacePorts', `expected service or range, got ${JSON.stringify(c.userspacePorts)}`);
  if (!CORE_MODES.includes(c.userspaceCore)) fail('userspaceCore', `expected one of ${CORE_MODES.join(', ')}, got ${JSON.stringify(c.userspaceCore)}`);
  const [plo, phi] = c.proxyPortRange;
  // kube-proxy's PortRange: 0-0 (unset) means any free port; otherwise 1 ≤ first ≤ last ≤ 65535.
  if (!(plo === 0 && phi === 0) && !(Number.isInteger(plo) && Number.isInteger(phi) && plo >= 1 && plo <= phi && phi <= 65535)) fail('proxyPortRange', `bad range ${plo}-${phi}`);
  if (!(Number.isFinite(c.udpIdleTimeoutMs) && c.udpIdleTimeoutMs > 0)) fail('udpIdleTimeoutMs', 'must be greater than 0');
  if (!(Number.isFinite(c.minSyncPeriodMs) && c.minSyncPeriodMs >= 0)) fail('minSyncPeriodMs', 'must not be negative');
  if (!(Number.isFinite(c.syncPeriodMs) && c.syncPeriodMs > 0)) fail('syncPeriodMs', 'must be greater than 0');
  if (!(Number.isFinite(c.conntrackCheckpointMs) && c.conntrackCheckpointMs >= 0)) fail('conntrackCheckpointMs', 'must not be negative');
  // Each is a timer's wait: Node runs any longer one after 1 ms (setTimeout's 2^31 − 1 ms limit).
  for (const k of ['udpIdleTimeoutMs', 'minSyncPeriodMs', 'syncPeriodMs', 'conntrackCheckpointMs'] as const) {
    if (c[k] > MAX_TIMER_MS) fail(k, `must be at most ${MAX_TIMER_TEXT} (the longest a timer waits), got ${Math.round(c[k] / 3_600_000)}h`);
  }
  if (c.ipvsScheduler !== '' && !isScheduler(c.ipvsScheduler)) {
    fail('ipvsScheduler', `expected one of ${SCHEDULERS.join(', ')}, got ${JSON.stringify(c.ipvsScheduler)}`);
  }
  return c;
}

const MAX_TIMER_MS = 0x7fffffff;
const MAX_TIMER_TEXT = '596h31m23.647s';

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
// kube-proxy's ports (pkg/cluster/ports): ProxyHealthzPort, ProxyStatusPort.
const HEALTHZ_PORT = 10256;
const METRICS_PORT = 10249;

/** kube-proxy's AppendPortIfNeeded: a bare address gets `port`; anything else stays as it is. */
function withPort(text: string, port: number): string {
  const ip = parseIP(text);
  return ip ? joinHostPort(formatIP(ip), port) : text;
}

export function hostPort(text: string, what: string): { host: string; port: number } {
  const hp = splitHostPort(text);
  if (!hp || (hp.host !== '' && !parseIP(hp.host))) throw new ConfigError(`${what}: expected ADDRESS:PORT, got ${JSON.stringify(text)}`);
  return { host: hp.host === '' ? '0.0.0.0' : hp.host, port: hp.port };
}

function portRange(text: string, fail: (msg: string) => never): [number, number] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(text.trim());
  return m ? [Number(m[1]), Number(m[2] ?? m[1])] : fail(`expected FIRST-LAST, got ${JSON.stringify(text)}`);
}

/** kube-proxy's --bind-address as node IPs: none for "", 0.0.0.0 or :: (detect them instead). */
function bindAddressIPs(text: string, fail: (msg: string) => never): string[] {
  const ips = list(text).map((a) => canonical(a) ?? fail(`not an IP address: ${JSON.stringify(a)}`));
  return ips.filter((a) => a !== '0.0.0.0' && a !== '::');
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
  // kube-proxy's defaulting (v1alpha1/defaults.go) reads the empty values a dumped ConfigMap holds
  // ("" mode and addresses, null lists, a 0s udpIdleTimeout) as the defaults.
  mode: (c, v, fail) => { c.mode = (str(v, fail) || DEFAULTS.mode) as ProxyMode; },
  clusterCIDR: (c, v, fail) => { c.clusterCIDRs = list(str(v, fail)); },
  detectLocalMode: (c, v, fail) => { c.detectLocalMode = (str(v, fail) || DEFAULTS.detectLocalMode) as DetectLocalMode; },
  hostnameOverride: (c, v, fail) => { c.nodeName = str(v, fail); },
  nodePortAddresses: (c, v, fail) => { c.nodePortAddresses = v === null ? [] : strList(v, fail); },
  healthzBindAddress: (c, v, fail) => { c.healthzBindAddress = withPort(str(v, fail) || DEFAULTS.healthzBindAddress, HEALTHZ_PORT); },
  metricsBindAddress: (c, v, fail) => { c.metricsBindAddress = withPort(str(v, fail) || DEFAULTS.metricsBindAddress, METRICS_PORT); },
  // svcplane's own: a file turns a server off with these (an empty address means the default).
  healthzServer: (c, v, fail) => { if (!bool(v, fail)) notesOf(c).off.add('healthzBindAddress'); },
  metricsServer: (c, v, fail) => { if (!bool(v, fail)) notesOf(c).off.add('metricsBindAddress'); },
  'clientConnection.kubeconfig': (c, v, fail) => { const s = str(v, fail); if (s) c.kubeconfig = s; },
  'iptables.masqueradeAll': (c, v, fail) => { c.masqueradeAll = bool(v, fail); },
  // null: a dumped config's unset pointer (kube-proxy's default, 14).
  'iptables.masqueradeBit': (c, v, fail) => { if (v !== null) c.masqueradeBit = typeof v === 'number' ? v : fail('expected a number'); },
  serviceCIDR: (c, v, fail) => { c.serviceCIDRs = strList(v, fail); },
  nodeIP: (c, v, fail) => { c.nodeIPs = strList(v, fail); },
  // kube-proxy's node IP override (v1alpha1 conversion: NodeIPOverride = split(bindAddress, ",")); nodeIP wins.
  bindAddress: (c, v, fail) => {
    const ips = bindAddressIPs(str(v, fail), fail);
    if (ips.length > 0 && !notesOf(c).lines.has('nodeIP')) c.nodeIPs = ips;
  },
  serviceNodePortRange: (c, v, fail) => { c.nodePortRange = portRange(str(v, fail), fail); },
  manifests: (c, v, fail) => { c.manifests = str(v, fail); },
  master: (c, v, fail) => { c.master = str(v, fail); },
  tun: (c, v, fail) => { c.tun = str(v, fail); },
  tunOffload: (c, v, fail) => { c.tunOffload = bool(v, fail); },
  conntrackState: (c, v, fail) => { c.conntrackState = str(v, fail); },
  conntrackCheckpointPeriod: (c, v, fail) => { c.conntrackCheckpointMs = duration(str(v, fail), fail); },
  conntrackMax: (c, v, fail) => { c.conntrackMax = typeof v === 'number' ? v : fail('expected a number'); },
  // The conntrack section: kube-proxy's own fields; null (a dumped config's unset pointer) keeps the default.
  'conntrack.maxPerCore': (c, v, fail) => { if (v !== null) c.conntrackMaxPerCore = typeof v === 'number' ? v : fail('expected a number'); },
  'conntrack.min': (c, v, fail) => { if (v !== null) c.conntrackMin = typeof v === 'number' ? v : fail('expected a number'); },
  'conntrack.tcpEstablishedTimeout': (c, v, fail) => { if (v !== null) c.conntrackTCPEstablishedMs = duration(str(v, fail), fail); },
  'conntrack.tcpCloseWaitTimeout': (c, v, fail) => { if (v !== null) c.conntrackTCPCloseWaitMs = duration(str(v, fail), fail); },
  'conntrack.tcpBeLiberal': (c, v, fail) => { c.conntrackTCPBeLiberal = bool(v, fail); },
  'conntrack.udpTimeout': (c, v, fail) => { if (v !== null) c.conntrackUDPMs = duration(str(v, fail), fail); },
  'conntrack.udpStreamTimeout': (c, v, fail) => { if (v !== null) c.conntrackUDPStreamMs = duration(str(v, fail), fail); },
  masqueradeAddress: (c, v, fail) => { c.masqueradeAddresses = strList(v, fail); },
  portRange: (c, v, fail) => { const s = str(v, fail); c.proxyPortRange = s === '' ? [0, 0] : portRange(s, fail); },
  udpIdleTimeout: (c, v, fail) => { c.udpIdleTimeoutMs = duration(str(v, fail), fail) || DEFAULTS.udpIdleTimeoutMs; },
  minSyncPeriod: (c, v, fail) => { c.minSyncPeriodMs = duration(str(v, fail), fail); },
  syncPeriod: (c, v, fail) => { c.syncPeriodMs = duration(str(v, fail), fail); },
  'ipvs.scheduler': (c, v, fail) => { c.ipvsScheduler = str(v, fail); },
  oomScoreAdj: (c, v, fail) => { if (v !== null) c.oomScoreAdj = typeof v === 'number' ? v : fail('expected a number'); },
  // kube-proxy's defaulting (v1alpha1/defaults.go) reads 0 as unset, except for ipvs.minSyncPeriod.
  'iptables.syncPeriod': (c, v, fail) => { modeSync(c, 'iptables.syncPeriod', duration(str(v, fail), fail), true); },
  'iptables.minSyncPeriod': (c, v, fail) => { modeSync(c, 'iptables.minSyncPeriod', duration(str(v, fail), fail), true); },
  'ipvs.syncPeriod': (c, v, fail) => { modeSync(c, 'ipvs.syncPeriod', duration(str(v, fail), fail), true); },
  'ipvs.minSyncPeriod': (c, v, fail) => { modeSync(c, 'ipvs.minSyncPeriod', duration(str(v, fail), fail), false); },
  'ipvs.tcpTimeout': (c, v, fail) => { c.ipvsTCPTimeoutMs = duration(str(v, fail), fail); },
  'ipvs.tcpFinTimeout': (c, v, fail) => { c.ipvsTCPFinTimeoutMs = duration(str(v, fail), fail); },
  'ipvs.udpTimeout': (c, v, fail) => { c.ipvsUDPTimeoutMs = duration(str(v, fail), fail); },
  userspaceBind: (c, v, fail) => { c.userspaceBind = strList(v, fail); },
  userspacePorts: (c, v, fail) => { c.userspacePorts = str(v, fail) as UserspacePorts; },
  userspaceCore: (c, v, fail) => { c.userspaceCore = str(v, fail) as CoreMode; },
};
function modeSync(c: ProxyConfig, key: keyof ModeSync, ms: number, zeroUnset: boolean): void {
  if (!(zeroUnset && ms === 0)) notesOf(c).sync[key] = ms;
}

// Sections whose other fields are accepted and ignored (kube-proxy tuning this proxy has no use for).
const IGNORED_SECTIONS = new Set(['clientConnection', 'iptables', 'ipvs', 'conntrack', 'nftables', 'winkernel', 'detectLocal', 'logging', 'featureGates']);
const IGNORED_FIELDS = new Set(['bindAddressHardFail', 'configSyncPeriod', 'enableProfiling', 'showHiddenMetricsForVersion']);

/** A value that says something: not null, "", 0, 0s, false or an empty collection. */
function meaningful(node: YamlNode | null): boolean {
  const v: unknown = node && 'toJSON' in node ? (node as { toJSON(): unknown }).toJSON() : null;
  if (v === null || v === '' || v === 0 || v === false || v === '0s' || v === '0') return false;
  if (typeof v === 'object') return Object.values(v as object).some((x) => x !== null && x !== '' && x !== 0 && x !== false && typeof x !== 'object');
  return true;
}

/** What reading the flags and config file learnt beside the settings. */
interface Notes {
  /** Where each field the file set stands (its path → ":line"), so later checks name it too. */
  lines: Map<string, string>;
  /** kube-proxy's per-mode sync periods the file gave (resolved once the mode is known). */
  sync: ModeSync;
  /** The servers the file turned off (healthzServer / metricsServer: false), whatever its order. */
  off: Set<'healthzBindAddress' | 'metricsBindAddress'>;
  /** kube-proxy flags and fields taken that change nothing here (ignoredSettings). */
  ignored: string[];
}
const NOTES = new WeakMap<ProxyConfig, Notes>();
const notesOf = (c: ProxyConfig): Notes => {
  let n = NOTES.get(c);
  if (!n) NOTES.set(c, (n = { lines: new Map(), sync: {}, off: new Set(), ignored: [] }));
  return n;
};

/** Reads a YAML config file; unknown fields are errors naming file:line and the field path. */
export function readConfigFile(file: string, text = readFileSync(file, 'utf8')): ProxyConfig {
  const lc = new LineCounter();
  const read = yamlDocuments(text, { lineCounter: lc });
  if ('deep' in read) throw new ConfigError(`${file}:${read.deep}: ${TOO_DEEP}`);
  const lineOf = (n: YamlNode | null | undefined): string => (n?.range ? `:${lc.linePos(n.range[0]).line}` : '');
  const [doc, second] = read.docs;
  const e = doc?.errors[0];
  if (e) throw new ConfigError(`${file}:${e.linePos?.[0].line ?? '?'}: ${e.message.split('\n')[0]}`);
  if (second) throw new ConfigError(`${file}:${lc.linePos(second.range[0]).line}: one YAML document expected, this is a second`);
  const c: ProxyConfig = { ...DEFAULTS };
  const { lines, off, ignored } = notesOf(c);
  if (!isMap(doc?.contents)) throw new ConfigError(`${file}: expected a mapping of fields`);
  const visit = (map: YamlNode, prefix: string): void => {
    if (!isMap(map)) return;
    for (const pair of map.items) {
      const key = String((pair.key as { value?: unknown })?.value ?? pair.key);
      const path = prefix ? `${prefix}.${key}` : key;
      const node = pair.value as YamlNode | null;
      const at = lineOf(node ?? (pair.key as YamlNode));
      lines.set(path, at);
      const fail = (msg: string): never => { throw new ConfigError(`${file}${at}: ${path}: ${msg}`); };
      // Own fields only: "constructor" or "__proto__" is an unknown field, not Object's.
      const reader = Object.hasOwn(FIELDS, path) ? FIELDS[path] : undefined;
      if (reader) reader(c, node && 'toJSON' in node ? (node as { toJSON(): unknown }).toJSON() : null, fail);
      else if (!prefix && IGNORED_SECTIONS.has(key)) visit(node as YamlNode, key);
      else if (!(prefix ? IGNORED_SECTIONS.has(prefix) : IGNORED_FIELDS.has(key))) fail('unknown field');
      else if (meaningful(node)) ignored.push(path);
    }
  };
  visit(doc.contents, '');
  for (const k of off) c[k] = '';
  modeSyncPeriods(c, new Set(lines.keys()), {});
  return c;
}
