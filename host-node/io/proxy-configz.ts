// proxy-configz.ts — the proxy's settings written out: /configz's JSON (kube-proxy's debug view of
// the settings in effect) and the config file `svcplane proxy --write-config-to` writes (kube-proxy's
// flag of that name), which `--config` reads back to the same settings. Durations as Go prints
// them. Never reads flags or files (proxy-config.ts does).
import YAML from 'yaml';
import { coreMode, type ProxyConfig } from './proxy-config.js';

/** Go's time.Duration.String() of `ms` milliseconds: "24h0m0s", "1m30s", "1.5s", "250ms", "0s". */
export function goDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 1000) return `${ms}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = `${(ms % 60_000) / 1000}s`;
  return h > 0 ? `${h}h${m}m${s}` : m > 0 ? `${m}m${s}` : s;
}

// KubeProxyConfiguration's fields where kube-proxy has the setting (bind addresses, the API
// source and the sync periods are the callers': the two views write them differently).
function kubeProxyFields(c: ProxyConfig) {
  const d = goDuration;
  return {
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1', kind: 'KubeProxyConfiguration', mode: c.mode,
    hostnameOverride: c.nodeName, clusterCIDR: c.clusterCIDRs.join(','), detectLocalMode: c.detectLocalMode,
    nodePortAddresses: c.nodePortAddresses, oomScoreAdj: c.oomScoreAdj,
    conntrack: {
      maxPerCore: c.conntrackMaxPerCore, min: c.conntrackMin, tcpEstablishedTimeout: d(c.conntrackTCPEstablishedMs),
      tcpCloseWaitTimeout: d(c.conntrackTCPCloseWaitMs), tcpBeLiberal: c.conntrackTCPBeLiberal,
      udpTimeout: d(c.conntrackUDPMs), udpStreamTimeout: d(c.conntrackUDPStreamMs),
    },
    iptables: { masqueradeAll: c.masqueradeAll, masqueradeBit: c.masqueradeBit },
    ipvs: { scheduler: c.ipvsScheduler, tcpTimeout: d(c.ipvsTCPTimeoutMs), tcpFinTimeout: d(c.ipvsTCPFinTimeoutMs), udpTimeout: d(c.ipvsUDPTimeoutMs) },
    portRange: c.proxyPortRange[0] === 0 ? '' : `${c.proxyPortRange[0]}-${c.proxyPortRange[1]}`,
    udpIdleTimeout: d(c.udpIdleTimeoutMs),
  };
}

// svcplane's own fields, as the config file names them (unset ones left out).
function ownFields(c: ProxyConfig) {
  return {
    ...(c.manifests ? { manifests: c.manifests } : {}), ...(c.master ? { master: c.master } : {}), serviceCIDR: c.serviceCIDRs,
    ...(c.nodeIPs.length > 0 ? { nodeIP: c.nodeIPs } : {}), masqueradeAddress: c.masqueradeAddresses,
    serviceNodePortRange: `${c.nodePortRange[0]}-${c.nodePortRange[1]}`, tun: c.tun, tunOffload: c.tunOffload,
    ...(c.conntrackState ? { conntrackState: c.conntrackState } : {}), conntrackCheckpointPeriod: goDuration(c.conntrackCheckpointMs),
    minSyncPeriod: goDuration(c.minSyncPeriodMs), syncPeriod: goDuration(c.syncPeriodMs),
    userspaceBind: c.userspaceBind, userspacePorts: c.userspacePorts, userspaceCore: c.userspaceCore,
  };
}

/**
 * The settings in effect, as kube-proxy's /configz shows its own ({"kubeproxy.config.k8s.io": …}):
 * KubeProxyConfiguration's field names where kube-proxy has the setting (the sync periods in the
 * running mode's section, where its v1alpha1 file keeps them), then svcplane's own; `tableSize` is
 * the conntrack table the core holds.
 */
export function configz(c: ProxyConfig, tableSize: number): Record<string, unknown> {
  const sync = { minSyncPeriod: goDuration(c.minSyncPeriodMs), syncPeriod: goDuration(c.syncPeriodMs) };
  const ipvsMode = coreMode(c) === 'ipvs';
  const kp = kubeProxyFields(c);
  return {
    'kubeproxy.config.k8s.io': {
      ...kp, healthzBindAddress: c.healthzBindAddress, metricsBindAddress: c.metricsBindAddress, clientConnection: { kubeconfig: c.kubeconfig ?? '' },
      iptables: { ...kp.iptables, ...(ipvsMode ? {} : sync) }, ipvs: { ...kp.ipvs, ...(ipvsMode ? sync : {}) },
    },
    svcplane: { ...ownFields(c), conntrackMax: tableSize },
  };
}

/**
 * The settings as a config file that `--config` reads back to exactly them: KubeProxyConfiguration's
 * fields where kube-proxy has the setting, then svcplane's own (the sync periods among those, so
 * they hold in every mode). Addresses found at start (nodeIP unset) stay unset.
 */
export function configFile(c: ProxyConfig): string {
  return YAML.stringify({
    ...kubeProxyFields(c),
    // An empty address is kube-proxy's default in a file: a server turned off says so apart.
    ...(c.healthzBindAddress ? { healthzBindAddress: c.healthzBindAddress } : { healthzServer: false }),
    ...(c.metricsBindAddress ? { metricsBindAddress: c.metricsBindAddress } : { metricsServer: false }),
    ...(c.kubeconfig ? { clientConnection: { kubeconfig: c.kubeconfig } } : {}),
    ...ownFields(c), ...(c.conntrackMax > 0 ? { conntrackMax: c.conntrackMax } : {}),
  });
}
