// bench/e2e-kernel.ts — the kernel's twin of the end-to-end benchmark cluster: the same client,
// node and backend namespaces as tests/e2e (E2ECluster.build), but no svcplane proxy: the node's
// kernel does the Service DNAT with kube-proxy's own iptables rules for the same manifests, as
// `svcplane render --with-jumps` prints them, loaded with iptables-legacy-restore. Never touches
// anything outside its own namespaces (rules, nfacct counters and sysctls go with the namespace).
// The node has no route for Service addresses, so a connection to a ClusterIP that succeeds has
// been DNATed by those rules.
import { spawnSync } from 'node:child_process';
import { E2ECluster, CLI, CLUSTER_CIDR, NODE_IP, NODE_NAME, BACKENDS } from '../tests/e2e/cluster.js';
import { missingTools } from '../tests/support/netns.js';
import { VIP } from '../tests/e2e/manifests.js';

/** Tools the kernel twin needs beyond `ip`. */
export const TWIN_TOOLS = ['iptables-legacy-restore', 'nfacct'];

export interface KernelTwin {
  cluster: E2ECluster;
  /** Lines of iptables-restore text loaded. */
  lines: number;
  /** Time to render (ms) and to load the rules with iptables-legacy-restore (ms). */
  renderMs: number;
  restoreMs: number;
}

/** kube-proxy's rules for a manifests directory, jumps included (iptables-restore --noflush text). */
export function renderKubeRules(manifests: string): string {
  const args = [CLI, 'render', '--manifests', manifests, '--node-name', NODE_NAME, '--node-ip', NODE_IP,
    ...BACKENDS.map((b) => ['--node-ip', b.gw]).flat(), '--cluster-cidr', CLUSTER_CIDR, '--family', '4', '--with-jumps'];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 30, timeout: 60_000 });
  if (r.status !== 0) throw new Error(`svcplane render failed (${r.status ?? r.signal}): ${r.stderr.slice(-2000)}`);
  return r.stdout;
}

/**
 * Builds the twin with the manifests `yaml`; on failure everything made so far is removed before
 * the error propagates.
 */
export async function startKernelTwin(yaml: string): Promise<KernelTwin> {
  const missing = missingTools(TWIN_TOOLS);
  if (missing.length) throw new Error(`missing tools: ${missing.join(', ')} (apt-get install iptables nfacct)`);
  const c = new E2ECluster('benchk');
  try {
    await c.build();
    c.writeManifests(yaml);
    let t = performance.now();
    const text = renderKubeRules(c.manifests);
    const renderMs = performance.now() - t;
    if (!text.includes(`-d ${VIP.web} --dport 80 `)) throw new Error(`svcplane render printed no rule for ${VIP.web}`);
    c.nodeExec(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    // kube-proxy creates its nfacct counters before it writes rules that name them.
    for (const name of ['localhost_nps_accepted_pkts', 'ct_state_invalid_dropped_pkts']) c.nodeExec(['nfacct', 'add', name]);
    t = performance.now();
    c.scope.must(c.node, ['iptables-legacy-restore', '--noflush'], { input: text, timeoutMs: 60_000 });
    const restoreMs = performance.now() - t;
    return { cluster: c, lines: text.split('\n').length, renderMs, restoreMs };
  } catch (e) {
    await c.destroy();
    throw e;
  }
}
