// netns.ts — throwaway network namespaces for tests and benchmarks that need the real kernel:
// create namespaces named `svp-<pid>-<tag>-<n>-<name>` and veth pairs between them (this kernel
// has no dummy driver), run commands in them (`ip netns exec`), and keep long-running helper
// processes there that answer one JSON line per request. Everything a scope made is removed by destroy(), and — should
// the caller forget or crash — by an exit hook and by SIGINT/SIGTERM/SIGHUP handlers. Never
// touches the root namespace's interfaces, routes or rules (links are created inside a namespace
// with `ip -n`), never removes a namespace it did not create, and kills only processes it spawned,
// by pid.
import { execFileSync, spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface Support {
  ok: boolean;
  /** Why the kernel side cannot run here (empty when ok). */
  reason: string;
}

let cachedSupport: Support | null = null;

/**
 * Whether network namespaces can be used here: root, the `ip` tool with netns support, and a
 * namespace that can really be created (containers may forbid it). Probes once per process.
 */
export function netnsSupport(): Support {
  if (cachedSupport) return cachedSupport;
  const no = (reason: string): Support => (cachedSupport = { ok: false, reason });
  if (process.platform !== 'linux') return no(`kernel tests need Linux (this is ${process.platform})`);
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return no('kernel tests need root (network namespaces, iptables)');
  const ip = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  if (ip.error || ip.status !== 0) return no(`"ip netns" is unavailable: ${ip.error?.message ?? ip.stderr.trim()} (apt-get install iproute2)`);
  const probe = `svp-${process.pid}-probe-${Date.now() % 100000}`;
  const add = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (add.status !== 0) return no(`cannot create a network namespace: ${add.stderr.trim()}`);
  spawnSync('ip', ['netns', 'del', probe]);
  return (cachedSupport = { ok: true, reason: '' });
}

/** Missing tools among `names` (looked up on PATH). */
export function missingTools(names: string[]): string[] {
  const dirs = (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':');
  return names.filter((n) => !dirs.some((d) => existsSync(`${d}/${n}`)));
}

/**
 * Why a kernel test file must skip ('' when it can run): no network namespaces (not root, no
 * iproute2) or `tools` missing from PATH (`hint` names the packages that bring them). Says so
 * once, naming the file, so a skipped run is never silent.
 */
export function kernelSkip(file: string, tools: string[], hint = ''): string {
  const support = netnsSupport();
  const missing = support.ok ? missingTools(tools) : [];
  const why = !support.ok ? support.reason : missing.length ? `missing tools: ${missing.join(', ')}${hint ? ` (${hint})` : ''}` : '';
  if (why) console.warn(`${file}: SKIPPED — ${why}`);
  return why;
}

export interface Netns {
  /** The full namespace name (`svp-<pid>-…`). */
  readonly name: string;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

const live = new Set<NetnsScope>();
let hooked = false;

function cleanupAll(): void {
  for (const s of [...live]) s.destroy();
}

function installHooks(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', cleanupAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      cleanupAll();
      // Restore the default action and re-raise, so the process still dies of the signal —
      // unless somebody else is also listening and decides otherwise.
      process.removeListener(sig, onSignal);
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

let scopeCounter = 0;

/** A set of namespaces (and the processes running in them) that live and die together. */
export class NetnsScope {
  readonly prefix: string;
  private readonly namespaces: string[] = [];
  private readonly agents = new Set<{ kill(): void }>();
  private dead = false;

  constructor(tag: string) {
    if (!/^[a-z0-9]{1,8}$/.test(tag)) throw new Error(`netns tag must be 1-8 lower-case letters or digits: ${tag}`);
    this.prefix = `svp-${process.pid}-${tag}-${scopeCounter++}`;
    installHooks();
    live.add(this);
  }

  /** Creates namespace `<prefix>-<name>` with its loopback up. */
  create(name: string): Netns {
    if (this.dead) throw new Error('netns scope already destroyed');
    if (!/^[a-z0-9]{1,12}$/.test(name)) throw new Error(`namespace name must be 1-12 lower-case letters or digits: ${name}`);
    const full = `${this.prefix}-${name}`;
    execFileSync('ip', ['netns', 'add', full], { stdio: 'pipe' });
    this.namespaces.push(full);
    this.ip({ name: full }, ['link', 'set', 'lo', 'up']);
    return { name: full };
  }

  /** `ip -n NS args…` (runs inside the namespace; throws with stderr on failure). */
  ip(ns: Netns, args: string[]): string {
    this.own(ns);
    try {
      return execFileSync('ip', ['-n', ns.name, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`ip -n ${ns.name} ${args.join(' ')}: ${err.stderr?.trim() || err.message}`);
    }
  }

  /** A veth pair created inside `a` with its peer moved straight into `b`; both ends up. */
  veth(a: Netns, aName: string, b: Netns, bName: string, macs: { a?: string; b?: string } = {}): void {
    this.own(b);
    const args = ['link', 'add', aName];
    if (macs.a) args.push('address', macs.a);
    args.push('type', 'veth', 'peer', 'name', bName);
    if (macs.b) args.push('address', macs.b);
    args.push('netns', b.name);
    this.ip(a, args);
    this.ip(a, ['link', 'set', aName, 'up']);
    this.ip(b, ['link', 'set', bName, 'up']);
  }

  /** Runs a command inside the namespace and waits for it. */
  exec(ns: Netns, argv: string[], opts: { input?: string; timeoutMs?: number } = {}): ExecResult {
    this.own(ns);
    const r = spawnSync('ip', ['netns', 'exec', ns.name, ...argv], {
      input: opts.input, encoding: 'utf8', timeout: opts.timeoutMs ?? 60_000, maxBuffer: 256 << 20,
    });
    return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
  }

  /** Like exec, but throws unless the command succeeds. */
  must(ns: Netns, argv: string[], opts: { input?: string; timeoutMs?: number } = {}): string {
    const r = this.exec(ns, argv, opts);
    if (r.code !== 0) throw new Error(`${argv.join(' ')} in ${ns.name} failed (${r.code}): ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** Starts a long-running line-protocol helper inside the namespace (see LineAgent). */
  agent(ns: Netns, argv: string[]): LineAgent {
    this.own(ns);
    const child = spawn('ip', ['netns', 'exec', ns.name, ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
    const a = new LineAgent(child, `${argv[0]} in ${ns.name}`);
    this.agents.add(a);
    return a;
  }

  /** Starts a command inside the namespace whose output is only collected (`conntrack -E`), stopped with the scope. */
  watch(ns: Netns, argv: string[]): Watcher {
    this.own(ns);
    const child = spawn('ip', ['netns', 'exec', ns.name, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    const w = new Watcher(child);
    this.agents.add(w);
    return w;
  }

  /** Stops this scope's helpers and deletes its namespaces. Idempotent; never throws. */
  destroy(): void {
    if (this.dead) return;
    this.dead = true;
    live.delete(this);
    for (const a of this.agents) a.kill();
    this.agents.clear();
    for (const name of this.namespaces.reverse()) {
      // Deleting the name drops the namespace once no process is left inside; the helpers were
      // killed above, and devices inside (veth ends, dummies) go with it.
      spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
    }
    this.namespaces.length = 0;
  }

  private own(ns: Netns): void {
    if (this.dead) throw new Error('netns scope already destroyed');
    if (!this.namespaces.includes(ns.name)) throw new Error(`namespace ${ns.name} does not belong to this scope`);
  }
}

/** A process whose standard output is collected until it is killed (NetnsScope.watch). */
export class Watcher {
  /** Its output so far, and what it said on stderr. */
  out = '';
  err = '';
  private done: Promise<void>;

  constructor(private readonly child: ReturnType<typeof spawn>) {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => { this.out += chunk; });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => { this.err += chunk; });
    this.done = new Promise((resolve) => { child.on('exit', () => resolve()); child.on('error', () => resolve()); });
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.pid !== undefined) {
      try { process.kill(this.child.pid, 'SIGKILL'); } catch { /* already gone */ }
    }
  }

  /**
   * Interrupts it (SIGINT: a tool writing to a pipe flushes what it buffered as it exits), kills
   * it if it is still there a second later, and resolves once it has exited, its output read.
   */
  async stop(): Promise<string> {
    if (this.child.exitCode === null && this.child.pid !== undefined) {
      try { process.kill(this.child.pid, 'SIGINT'); } catch { /* already gone */ }
    }
    const late = setTimeout(() => this.kill(), 1000);
    await this.done;
    clearTimeout(late);
    return this.out;
  }
}

/**
 * A helper process that reads one JSON request per line on stdin and writes one JSON reply per
 * line on stdout, in order. Replies carrying `error` reject the call.
 */
export class LineAgent {
  private buf = '';
  private readonly waiting: Array<{ resolve: (v: unknown) => void; reject: (e: Error) => void }> = [];
  private stderr = '';
  private exited: string | null = null;

  constructor(private readonly child: ChildProcessWithoutNullStreams, private readonly label: string) {
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => this.onData(chunk));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => { this.stderr = (this.stderr + chunk).slice(-4000); });
    child.on('exit', (code, signal) => this.fail(`${this.label} exited (${signal ?? code}): ${this.stderr.trim()}`));
    child.on('error', (e) => this.fail(`${this.label}: ${e.message}`));
    child.stdin.on('error', () => { /* reported through 'exit' */ });
  }

  get pid(): number | undefined { return this.child.pid; }

  call<T = Record<string, unknown>>(request: Record<string, unknown>): Promise<T> {
    if (this.exited) return Promise.reject(new Error(this.exited));
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ resolve: resolve as (v: unknown) => void, reject });
      this.child.stdin.write(JSON.stringify(request) + '\n');
    });
  }

  kill(): void {
    if (this.exited === null && this.child.pid !== undefined) {
      try { process.kill(this.child.pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    this.fail(`${this.label} stopped`);
  }

  private onData(chunk: string): void {
    this.buf += chunk;
    for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      const w = this.waiting.shift();
      if (!w) continue;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        w.reject(new Error(`${this.label}: unreadable reply ${line.slice(0, 200)}`));
        continue;
      }
      if (typeof msg.error === 'string') w.reject(new Error(`${this.label}: ${msg.error}`));
      else w.resolve(msg);
    }
  }

  private fail(why: string): void {
    if (this.exited === null) this.exited = why;
    for (const w of this.waiting.splice(0)) w.reject(new Error(why));
  }
}
