// kernel-tables.ts — kube-proxy's settings for the kernel's flow tables (the nf_conntrack sysctls
// its setupConntrack writes, the IPVS timeouts its ipvs proxier sets), which `svcplane proxy`
// applies to the core's own tables instead: the conntrack table's size, the timeouts, their checks,
// and applying them to a started core. Never reads flags or files (proxy-config.ts does) and never
// touches the kernel's own sysctls.
import { cpus } from 'node:os';
import type { Dataplane } from '../dataplane.js';
import { TIMEOUTS } from '../core/conntrack-record.js';
import type { ProxyConfig } from './proxy-config.js';

/**
 * The conntrack table's flows when neither --conntrack-max nor kube-proxy's maxPerCore / min says:
 * the kernel's own nf_conntrack_max on a machine of 4 GB or more, which kube-proxy leaves in place
 * when maxPerCore is 0. The core reserves its table up front (the kernel allocates flow by flow),
 * so kube-proxy's per-CPU scaling applies only when asked for.
 */
export const CONNTRACK_TABLE_DEFAULT = 262144;
// KubeProxyConntrackConfiguration defaults (pkg/proxy/apis/config/v1alpha1/defaults.go).
const MAX_PER_CORE_DEFAULT = 32 * 1024;
const MIN_DEFAULT = 128 * 1024;
// The core keeps timeouts below 2^31 ms (assembly/conntrack/timeouts.ts CT_TIMEOUT_MAX_MS).
const CONNTRACK_TIMEOUT_MAX_S = Math.floor(0x7fffffff / 1000);

/**
 * The flows the conntrack table holds: --conntrack-max when given, else kube-proxy's
 * getConntrackMax (server_linux.go) when maxPerCore or min is set — max(maxPerCore × CPUs, min),
 * with CPUs counted as the machine's logical CPUs and maxPerCore 0 meaning "leave the limit" —
 * else CONNTRACK_TABLE_DEFAULT.
 */
export function conntrackTableSize(c: ProxyConfig, cpuCount = cpus().length): number {
  if (c.conntrackMax > 0) return c.conntrackMax;
  if (c.conntrackMaxPerCore === null && c.conntrackMin === null) return CONNTRACK_TABLE_DEFAULT;
  const perCore = c.conntrackMaxPerCore ?? MAX_PER_CORE_DEFAULT;
  if (perCore === 0) return CONNTRACK_TABLE_DEFAULT;
  return Math.max(perCore * Math.max(1, cpuCount), c.conntrackMin ?? MIN_DEFAULT);
}

// Timeouts the kernel counts in whole seconds (conntrack sysctls, IPVS_CMD_SET_CONFIG); 0 leaves its own.
export const SECONDS_FLAGS = [
  ['conntrack-tcp-timeout-established', 'conntrackTCPEstablishedMs'], ['conntrack-tcp-timeout-close-wait', 'conntrackTCPCloseWaitMs'],
  ['conntrack-udp-timeout', 'conntrackUDPMs'], ['conntrack-udp-timeout-stream', 'conntrackUDPStreamMs'],
  ['ipvs-tcp-timeout', 'ipvsTCPTimeoutMs'], ['ipvs-tcpfin-timeout', 'ipvsTCPFinTimeoutMs'], ['ipvs-udp-timeout', 'ipvsUDPTimeoutMs'],
] as const;

// kube-proxy's validateKubeProxyConntrackConfiguration and IPVS checks (never negative), and what
// the core's tables can take: a size of 16 to 2^24 flows, timeouts in whole seconds below 2^31 ms.
export function validateTables(c: ProxyConfig, fail: (field: string, msg: string) => never): void {
  for (const k of ['conntrackMaxPerCore', 'conntrackMin'] as const) {
    const n = c[k];
    if (n !== null && !(Number.isInteger(n) && n >= 0 && n <= 0x7fffffff)) fail(k, `expected a whole number from 0 to ${0x7fffffff}, got ${n}`);
  }
  if (c.conntrackMax === 0) {
    const n = conntrackTableSize(c);
    const by = c.conntrackMaxPerCore !== null && n !== c.conntrackMin ? 'conntrackMaxPerCore' : 'conntrackMin';
    if (n < 16 || n > 1 << 24) fail(by, `the conntrack table would hold ${n} flows (maxPerCore × ${cpus().length} CPUs, at least min); it holds 16 to ${1 << 24}`);
  }
  for (const [, k] of SECONDS_FLAGS) {
    const ms = c[k];
    if (!(Number.isFinite(ms) && ms >= 0)) fail(k, 'must not be negative');
    // kube-proxy hands the kernel whole seconds (int(d / time.Second)).
    c[k] = Math.floor(ms / 1000) * 1000;
    if (ms > 0 && c[k] === 0) fail(k, 'must be 0 or at least 1s (the kernel counts whole seconds)');
    if (c[k] / 1000 > CONNTRACK_TIMEOUT_MAX_S) fail(k, `must be at most ${CONNTRACK_TIMEOUT_MAX_S}s`);
  }
}

/**
 * kube-proxy's setupConntrack (cmd/kube-proxy/app/server_linux.go) on the core's table instead of the
 * kernel's sysctls: each timeout the config sets (0 leaves Linux's default) replaces the table's;
 * flows restored from a snapshot keep their expiry until their next packet, as sysctl changes
 * reach kernel flows. With `ipvs` (the core in ipvs mode) also the IPVS timeouts the ipvs proxier
 * sets with ConfigureTimeouts when any is given (0 leaves one as it is). Returns what was set, for the log.
 */
export function applyTableSettings(dp: Dataplane, cfg: ProxyConfig, ipvs: boolean): string[] {
  const said = [`${dp.stats().conntrack_capacity} flows`];
  const set: Array<[number, number, string]> = [
    [TIMEOUTS.tcpEstablished, cfg.conntrackTCPEstablishedMs, 'tcp established'],
    [TIMEOUTS.tcpCloseWait, cfg.conntrackTCPCloseWaitMs, 'tcp close-wait'],
    [TIMEOUTS.udpUnreplied, cfg.conntrackUDPMs, 'udp'],
    [TIMEOUTS.udpStream, cfg.conntrackUDPStreamMs, 'udp stream'],
  ];
  for (const [kind, ms, name] of set) {
    if (ms <= 0) continue;
    dp.setConntrackTimeout(kind, ms);
    said.push(`${name} ${ms / 1000}s`);
  }
  if (cfg.conntrackTCPBeLiberal) said.push('tcp be-liberal (no INVALID drop rule)');
  const lines = [`conntrack: ${said.join(', ')}`];
  const timeouts = { tcp: cfg.ipvsTCPTimeoutMs / 1000, tcpfin: cfg.ipvsTCPFinTimeoutMs / 1000, udp: cfg.ipvsUDPTimeoutMs / 1000 };
  if (ipvs && timeouts.tcp + timeouts.tcpfin + timeouts.udp > 0) {
    const program = dp.ipvs();
    program.setTimeouts(timeouts);
    const t = program.timeouts();
    lines.push(`ipvs timeouts: tcp ${t.tcp}s, tcpfin ${t.tcpfin}s, udp ${t.udp}s`);
  }
  return lines;
}
