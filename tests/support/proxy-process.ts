// proxy-process.ts — a real `svcplane proxy` process for tests: spawned (optionally through a
// prefix such as `ip netns exec NS`), its stdout and stderr gathered, waited for until it says it
// is serving, and stopped with SIGTERM. Kills only the process it spawned.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

export const CLI = join(import.meta.dirname, '..', '..', 'bin', 'svcplane.js');

export interface RunningProxy {
  child: ChildProcess;
  /** Everything it wrote so far. */
  out: () => string;
  /** SIGTERM, and its exit. */
  stop: () => Promise<void>;
}

/** Starts `svcplane proxy ARGS` (after `prefix`) and resolves once it serves (within `ms`), or throws with its output. */
export async function startProxyProcess(args: string[], opts: { prefix?: string[]; ms?: number } = {}): Promise<RunningProxy> {
  const argv = [...(opts.prefix ?? []), process.execPath, CLI, 'proxy', ...args];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout!.on('data', (d) => { text += d; });
  child.stderr!.on('data', (d) => { text += d; });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const p: RunningProxy = {
    child, out: () => text,
    stop: async () => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM'); await exited; },
  };
  const end = Date.now() + (opts.ms ?? 20_000);
  while (!text.includes('proxy: serving')) {
    if (Date.now() > end || child.exitCode !== null) {
      await p.stop();
      throw new Error(`proxy did not start: ${text}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return p;
}
