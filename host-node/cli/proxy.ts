// proxy.ts — `svcplane proxy`: the node proxy kube-proxy's place. Parses flags and the config file
// (io/proxy-config.ts), sets its oom_score_adj as kube-proxy does, starts the proxy
// (io/node-proxy.ts) in the current network namespace (or, with --mode userspace, as socket
// listeners that need no root), and on SIGINT or SIGTERM saves the flows and removes everything it
// set up but the service CIDRs' unreachable fallbacks (as it does, then exiting 1, when its TUN
// device is deleted under it or, as kube-proxy, when its --config file's content changes).
// `--cleanup` (kube-proxy's) only removes what earlier runs left behind (a killed run's rules, any
// run's fallbacks) and what a kube-proxy that ran on the node left, and exits; `--write-config-to
// FILE` (kube-proxy's) writes the settings as a config file and exits. Errors become messages and
// exit codes: 2 for bad settings, 1 when the proxy could not start, lost its device, saw its config
// change or could not clean up.
import { readFileSync, writeFileSync } from 'node:fs';
import { ConfigError, ignoredSettings, parseProxyArgs, ROUTE_TABLE } from '../io/proxy-config.js';
import { NodeProxy } from '../io/node-proxy.js';
import { configFile } from '../io/proxy-configz.js';
import { removeLeftovers } from '../io/node-routes.js';
import { removeKubeProxyLeftovers } from '../io/kube-proxy-leftovers.js';

/** The flags, as io/proxy-config.ts reads them. */
export const PROXY_HELP = `usage: svcplane proxy (--manifests DIR | --kubeconfig FILE | --master URL) [options]
       svcplane proxy --cleanup
  --config FILE                  YAML (KubeProxyConfiguration field names; flags override it); when its
                                 content changes, the proxy stops and exits 1 (as kube-proxy)
  --cleanup                      remove the policy rules and fallback routes earlier runs left behind, and
                                 kube-proxy's iptables chains, kube-ipvs0, KUBE-* ipsets and nftables tables, and exit
  --write-config-to FILE         write the settings (flags and --config together) as a config file, and exit
  --mode iptables|ipvs|direct|userspace  how Services are programmed into the core (default
                                 iptables; kube-proxy's --proxy-mode too); userspace: socket proxy, see below
  --manifests DIR                Services/EndpointSlices/Nodes from files (watched)
  --kubeconfig FILE              watch the API server
  --master URL                   the API server's address, over the kubeconfig's (or alone: no credentials)
  --hostname-override NAME       this node's name (default: the host name)
  --node-ip IP                   the node's address (repeatable; default: its global addresses)
  --bind-address IP[,IP]         kube-proxy's node IP override: the node's addresses when --node-ip is not given
  --cluster-cidr CIDR            the pod network (repeatable or comma-separated)
  --detect-local-mode MODE       ClusterCIDR (default: sources in --cluster-cidr are pods) or NodeCIDR
                                 (this node's Node spec.podCIDRs; nothing syncs before it has them)
  --service-cidr CIDR            the Service range routed into the TUN (repeatable; default 10.96.0.0/12)
  --nodeport-addresses CIDRS     node addresses NodePorts answer on (comma-separated; "primary")
  --service-node-port-range A-B  default 30000-32767
  --masquerade-all               SNAT every Service connection
  --iptables-masquerade-bit N    the fwmark bit the rules mark masqueraded packets with (0-31, default 14)
  --masquerade-address IP        masquerade source per family, routed into the TUN (default: last address of the service CIDR)
  --tun NAME                     device name (default svc0)
  --no-tun-offload               no checksum/TCP segmentation offload on the TUN (one MTU-sized packet per read)
  --metrics-bind-address A:P     default 127.0.0.1:10249 ("" off)
  --healthz-bind-address A:P     default 0.0.0.0:10256 ("" off)
  --conntrack-state FILE         flows saved on exit, restored on start
  --conntrack-checkpoint-period DURATION
                                 the flows also saved this often while it runs, so a killed or crashed
                                 proxy comes back with its last checkpoint's (default 10s; 0: on exit only)
  --conntrack-max N              flows the conntrack table holds (default: from the two below when
                                 either is given, else 262144)
  --conntrack-max-per-core N     kube-proxy's: the table holds max(N × CPUs, --conntrack-min) flows
  --conntrack-min N              (unset: 32768 and 131072 when the other is given; N = 0: 262144)
  --conntrack-tcp-timeout-established DURATION  idle established TCP flows kept (default 24h; 0: Linux's 5 days)
  --conntrack-tcp-timeout-close-wait DURATION   TCP flows in CLOSE_WAIT kept (default 1h; 0: Linux's 60s)
  --conntrack-tcp-be-liberal     no rule dropping conntrack-INVALID packets (kube-proxy's tcpBeLiberal)
  --conntrack-udp-timeout DURATION         unreplied UDP flows kept (default 0: Linux's 30s)
  --conntrack-udp-timeout-stream DURATION  UDP streams kept (default 0: Linux's 120s)
  --min-sync-period DURATION     least time between syncs; changes in between go together (default 1s; 0: at once)
  --iptables-min-sync-period D, --ipvs-min-sync-period D, --iptables-sync-period D, --ipvs-sync-period D
                                 kube-proxy's per-mode forms of these two (the running mode's apply; the
                                 plain ones win)
  --sync-period DURATION         how often its routes and rules are checked and what was removed put back;
                                 /healthz turns 503 when a change waits twice this (default 30s)
  --oom-score-adj N              the process's oom_score_adj, -1000..1000 (default -999, as kube-proxy)
  --ipvs-scheduler NAME          the ipvs mode's scheduler: rr (default), wrr, lc, wlc, sh, dh, mh, sed, nq, …
  --ipvs-tcp-timeout DURATION    the ipvs mode's idle TCP connection timeout (default 0: IPVS's 900s)
  --ipvs-tcpfin-timeout DURATION   … after a FIN (default 0: 120s)
  --ipvs-udp-timeout DURATION    … of UDP (default 0: 300s)
  kube-proxy's --v, --feature-gates, --profiling, --config-sync-period, --ipvs-strict-arp, --ipvs-exclude-cidrs,
  --iptables-localhost-nodeports and logging flags are taken and change nothing (the start-up log lists them)
userspace mode (--mode userspace: no root, no TUN; a socket proxy per service port):
  --userspace-bind IP            local address the listeners bind (repeatable; default 127.0.0.1)
  --userspace-ports service|range  the Service's own port when it can be bound, else the range (default service)
  --userspace-core iptables|ipvs|direct  how the core chooses endpoints (default iptables)
  --proxy-port-range A-B         listening ports taken from here (default: any free port)
  --udp-timeout DURATION         idle UDP client session lifetime, e.g. 250ms, 2s (default 250ms)
`;

export async function runProxy(argv: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    out(PROXY_HELP);
    return 0;
  }
  if (argv.includes('--cleanup')) return cleanup(out, err);
  let cfg;
  let writeTo: string | undefined;
  try {
    ({ argv, writeTo } = takeWriteConfigTo(argv));
    cfg = parseProxyArgs(argv);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    err(`svcplane proxy: ${e.message}\n${PROXY_HELP}`);
    return 2;
  }
  if (writeTo !== undefined) {
    try {
      writeFileSync(writeTo, configFile(cfg));
    } catch (e) {
      err(`svcplane proxy: --write-config-to ${writeTo}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`);
      return 1;
    }
    out(`proxy: settings written to ${writeTo}\n`);
    return 0;
  }
  const log = (line: string): void => err(`${line}\n`);
  // Signals that arrive while starting still stop the proxy once it is up.
  let signalled: NodeJS.Signals | null = null;
  let wake: (() => void) | null = null;
  const onSignal = (s: NodeJS.Signals): void => { signalled = s; wake?.(); };
  // The proxy stopped serving on its own (its device deleted), or its config file changed: it
  // stops as on a signal, then exits 1 so a supervisor starts it again (the saved flows carry its
  // connections over).
  let failure: string | null = null;
  const onFailure = (why: string): void => { failure ??= why; wake?.(); };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const configPath = flagValue(argv, 'config');
  const watch = configPath ? watchConfigFile(configPath, () => onFailure(`its config file ${configPath} changed`)) : null;
  const ignored = ignoredSettings(cfg);
  if (ignored.length > 0) log(`proxy: kube-proxy settings with no effect here: ${ignored.join(', ')}`);
  applyOomScoreAdj(cfg.oomScoreAdj, log);
  try {
    const proxy = await NodeProxy.start(cfg, { log, onFailure });
    const where = cfg.mode === 'userspace' ? `${cfg.userspaceBind.join(' ')} (mode userspace, core ${cfg.userspaceCore}` : `${cfg.tun} (mode ${cfg.mode}`;
    out(`proxy: serving on ${where}, node ${cfg.nodeName}, addresses ${proxy.nodeAddrs.join(' ')})\n`);
    if (!signalled && !failure) await new Promise<void>((resolve) => { wake = resolve; });
    if (failure) err(`svcplane proxy: ${failure}; stopping so it can be started again\n`);
    const failed = await proxy.stop();
    for (const f of failed) err(`svcplane proxy: cleanup: ${f}\n`);
    out(`proxy: stopped (${signalled ?? 'so it can be started again'})\n`);
    return failed.length > 0 || failure ? 1 : 0;
  } finally {
    watch?.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** The value of `--NAME VALUE` or `--NAME=VALUE` in `argv` (the last one). */
function flagValue(argv: string[], name: string): string | undefined {
  let v: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === `--${name}` && i + 1 < argv.length) v = argv[++i];
    else if (argv[i]!.startsWith(`--${name}=`)) v = argv[i]!.slice(name.length + 3);
  }
  return v;
}

/**
 * kube-proxy exits when its config file's content changes, for its supervisor to start it with the
 * new one (cmd/kube-proxy/app/server.go: "content of the proxy server's configuration file was
 * updated"): a ConfigMap edit takes effect that way. Read once a second (a ConfigMap's files are
 * swapped through symlinks, which a watch on the path misses); a moment without the file (that
 * swap) is no change.
 */
export function watchConfigFile(path: string, changed: () => void, everyMs = 1000): { stop: () => void } {
  const read = (): string | null => { try { return readFileSync(path, 'utf8'); } catch { return null; } };
  const first = read();
  const timer = setInterval(() => {
    const now = read();
    if (now !== null && now !== first) {
      clearInterval(timer);
      changed();
    }
  }, everyMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

/**
 * kube-proxy's --cleanup: the policy rules a proxy killed or crashed before its own cleanup left
 * behind (its device went with its process) and the fallback routes every run leaves, removed; and
 * what a kube-proxy that ran on this node left (io/kube-proxy-leftovers.ts).
 * Stop a running proxy first: it would put them back at its next --sync-period.
 */
async function cleanup(out: (s: string) => void, err: (s: string) => void): Promise<number> {
  let failed = false;
  for (const f of [4, 6] as const) {
    try {
      const n = removeLeftovers(f, ROUTE_TABLE);
      out(`proxy: cleanup: IPv${f}: removed ${n.rules} rules and ${n.routes} routes\n`);
    } catch (e) {
      const msg = (e as Error).message;
      // A host without IPv6 has no IPv6 rules to leave behind.
      if (/not supported/i.test(msg)) {
        out(`proxy: cleanup: IPv${f}: not in use here\n`);
        continue;
      }
      err(`svcplane proxy: cleanup: IPv${f}: ${msg}\n`);
      failed = true;
    }
  }
  // And what a kube-proxy that ran here left, as `kube-proxy --cleanup` removes it.
  const kp = await removeKubeProxyLeftovers();
  for (const f of kp.found) out(`proxy: cleanup: kube-proxy's ${f.where}: removed ${f.what.join(', ')}\n`);
  if (kp.found.length === 0) out('proxy: cleanup: nothing of kube-proxy\'s found\n');
  if (kp.unseen.length > 0) out(`proxy: cleanup: not looked at (not installed or not readable): ${kp.unseen.join(', ')}\n`);
  for (const e of kp.errors) err(`svcplane proxy: cleanup: kube-proxy's ${e}\n`);
  return failed || kp.errors.length > 0 ? 1 : 0;
}

/**
 * kube-proxy's ApplyOOMScoreAdj(0, oomScoreAdj): the value written to `file` (this process's
 * oom_score_adj). Lowering it needs CAP_SYS_RESOURCE; without it (userspace mode's unprivileged
 * runs) the proxy says so and goes on, as kube-proxy does.
 */
export function applyOomScoreAdj(value: number, log: (line: string) => void, file = '/proc/self/oom_score_adj'): boolean {
  try {
    writeFileSync(file, `${value}`);
    return true;
  } catch (e) {
    log(`proxy: oom_score_adj left as it is, ${value} refused (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    return false;
  }
}

/** kube-proxy's --write-config-to FILE (or =FILE), taken out of `argv`: the settings are written there and nothing starts. */
function takeWriteConfigTo(argv: string[]): { argv: string[]; writeTo?: string } {
  const rest: string[] = [];
  let writeTo: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--write-config-to') {
      if (i + 1 >= argv.length || argv[i + 1]!.startsWith('--')) throw new ConfigError('--write-config-to: a file is needed');
      writeTo = argv[++i];
    } else if (a.startsWith('--write-config-to=')) writeTo = a.slice('--write-config-to='.length);
    else rest.push(a);
  }
  return { argv: rest, ...(writeTo !== undefined ? { writeTo } : {}) };
}
