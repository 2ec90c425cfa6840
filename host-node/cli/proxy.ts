// proxy.ts — `svcplane proxy`: the node proxy kube-proxy's place. Parses flags and the config file
// (io/proxy-config.ts), sets its oom_score_adj as kube-proxy does, starts the proxy
// (io/node-proxy.ts) in the current network namespace (or,
// with --mode userspace, as socket listeners that need no root), and
// on SIGINT or SIGTERM saves the flows and removes everything it set up but the service CIDRs'
// unreachable fallbacks (as it does, then exiting 1, when its TUN device is deleted under it).
// `--cleanup` (kube-proxy's) only removes what earlier runs left behind (a killed run's rules, any
// run's fallbacks), and exits; `--write-config-to FILE` (kube-proxy's) writes the settings as a
// config file and exits. Errors become messages and exit codes: 2 for bad settings, 1 when
// the proxy could not start, lost its device or could not clean up.
import { writeFileSync } from 'node:fs';
import { ConfigError, ignoredSettings, parseProxyArgs, PROXY_HELP, ROUTE_TABLE } from '../io/proxy-config.js';
import { NodeProxy } from '../io/node-proxy.js';
import { configFile } from '../io/proxy-configz.js';
import { removeLeftovers } from '../io/node-routes.js';

export { PROXY_HELP };

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
  // The proxy stopped serving on its own (its device deleted): it stops as on a signal, then
  // exits 1 so a supervisor starts it again (the saved flows carry its connections over).
  let failure: string | null = null;
  const onFailure = (why: string): void => { failure = why; wake?.(); };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
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
    out(`proxy: stopped (${signalled ?? 'device failed'})\n`);
    return failed.length > 0 || failure ? 1 : 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/**
 * kube-proxy's --cleanup: the policy rules a proxy killed or crashed before its own cleanup left
 * behind (its device went with its process) and the fallback routes every run leaves, removed.
 * Stop a running proxy first: it would put them back at its next --sync-period.
 */
function cleanup(out: (s: string) => void, err: (s: string) => void): number {
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
  return failed ? 1 : 0;
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
