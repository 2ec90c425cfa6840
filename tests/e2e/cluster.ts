// cluster.ts — a node in throwaway namespaces for end-to-end tests of `svcplane proxy`: a client
// outside the node (its own link), a node namespace where the proxy runs as a real process
// (`ip netns exec … svcplane proxy`), and backend pods on their own links to the node, each running
// the backend agent. Only 198.18.0.0/15 addresses. The proxy is started and stopped by the test
// (SIGTERM, as an operator would); everything goes with destroy(), also when a test fails.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NetnsScope, type LineAgent, type Netns } from '../support/netns.js';
import { BACKEND_AGENT, CLIENT_AGENT } from './agents.js';

export const NODE_NAME = 'node1';
export const CLIENT_IP = '198.18.110.2';
/** The node's address on the client's link. */
export const NODE_IP = '198.18.110.1';
export const SERVICE_CIDR = '198.18.96.0/24';
/** --masquerade-address default: the last address of the service CIDR. */
export const MASQ_IP = '198.18.96.254';
export const CLUSTER_CIDR = '198.18.100.0/22';
export const BACKENDS = [
  { name: 'be1', ip: '198.18.100.2', gw: '198.18.100.1', ip6: 'fd00:100::2', gw6: 'fd00:100::1' },
  { name: 'be2', ip: '198.18.101.2', gw: '198.18.101.1', ip6: 'fd00:101::2', gw6: 'fd00:101::1' },
] as const;
/** IPv6 (dual-stack clusters): the same shape under fd00::/8. */
export const CLIENT_IP6 = 'fd00:110::2';
export const NODE_IP6 = 'fd00:110::1';
export const SERVICE_CIDR6 = 'fd00:96::/112';
export const MASQ_IP6 = 'fd00:96::ffff';
export const CLUSTER_CIDR6 = 'fd00:100::/31';
export const TUN = 'svc0';

/** The package root (this file also runs compiled, from dist/, for the benchmark). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, 'bin', 'svcplane.js'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package root not found');
    dir = up;
  }
  return dir;
}
const ROOT = packageRoot();
export const CLI = join(ROOT, 'bin', 'svcplane.js');

export interface ProxyProcess {
  child: ChildProcess;
  output(): string;
  /** Resolves with the exit code once the process has ended. */
  exited: Promise<number | null>;
}

export class E2ECluster {
  readonly scope: NetnsScope;
  client!: Netns;
  node!: Netns;
  backends: Netns[] = [];
  clientAgent!: LineAgent;
  /** A client inside backend 1 (a pod using a Service). */
  podAgent!: LineAgent;
  readonly dir: string;
  readonly manifests: string;
  proxy: ProxyProcess | null = null;
  /** Every proxy started, so destroy() ends any a failed test lost track of. */
  private readonly started: ProxyProcess[] = [];
  /** The output of the last proxy stopped (for messages). */
  lastOutput: () => string = () => '';

  constructor(tag: string) {
    this.scope = new NetnsScope(tag);
    this.dir = mkdtempSync(join(tmpdir(), 'svp-e2e-'));
    this.manifests = join(this.dir, 'manifests');
  }

  /** Builds the namespaces; with ipv6, every link gets an fd00::/8 address as well. */
  async build(opts: { ipv6?: boolean } = {}): Promise<void> {
    const s = this.scope;
    this.client = s.create('client');
    this.node = s.create('node');
    this.backends = BACKENDS.map((b) => s.create(b.name));
    s.veth(this.client, 'eth0', this.node, 'cli0');
    s.ip(this.client, ['addr', 'add', `${CLIENT_IP}/24`, 'dev', 'eth0']);
    s.ip(this.node, ['addr', 'add', `${NODE_IP}/24`, 'dev', 'cli0']);
    s.ip(this.client, ['route', 'add', 'default', 'via', NODE_IP]);
    if (opts.ipv6) {
      s.ip(this.client, ['-6', 'addr', 'add', `${CLIENT_IP6}/64`, 'dev', 'eth0', 'nodad']);
      s.ip(this.node, ['-6', 'addr', 'add', `${NODE_IP6}/64`, 'dev', 'cli0', 'nodad']);
      s.ip(this.client, ['-6', 'route', 'add', 'default', 'via', NODE_IP6]);
    }
    s.must(this.client, ['sysctl', '-q', '-w', 'net.ipv4.tcp_tw_reuse=1', 'net.ipv4.ip_local_port_range=20000 29999']);
    BACKENDS.forEach((b, i) => {
      const ns = this.backends[i]!;
      s.veth(ns, 'eth0', this.node, `${b.name}0`);
      s.ip(ns, ['addr', 'add', `${b.ip}/24`, 'dev', 'eth0']);
      s.ip(this.node, ['addr', 'add', `${b.gw}/24`, 'dev', `${b.name}0`]);
      s.ip(ns, ['route', 'add', 'default', 'via', b.gw]);
      if (opts.ipv6) {
        s.ip(ns, ['-6', 'addr', 'add', `${b.ip6}/64`, 'dev', 'eth0', 'nodad']);
        s.ip(this.node, ['-6', 'addr', 'add', `${b.gw6}/64`, 'dev', `${b.name}0`, 'nodad']);
        s.ip(ns, ['-6', 'route', 'add', 'default', 'via', b.gw6]);
      }
    });
    s.must(this.node, ['sysctl', '-q', '-w', 'net.ipv4.ip_local_port_range=20000 29999']);
    const agents = BACKENDS.map((b, i) => s.agent(this.backends[i]!, ['node', '-e', BACKEND_AGENT, b.name]));
    for (const a of agents) await a.call({ op: 'ready' });
    this.clientAgent = s.agent(this.client, ['node', '-e', CLIENT_AGENT]);
    this.podAgent = s.agent(this.backends[0]!, ['node', '-e', CLIENT_AGENT]);
  }

  /**
   * Builds the namespaces, writes the manifests and starts the proxy with `args`; on failure
   * everything made so far is removed before the error propagates.
   */
  async up(manifests: string, args: string[], opts: { ipv6?: boolean } = {}): Promise<this> {
    try {
      await this.build(opts);
      this.writeManifests(manifests);
      await this.startProxy(args);
      return this;
    } catch (e) {
      await this.destroy();
      throw e;
    }
  }

  writeManifests(yaml: string): void {
    // Written aside (a dotfile the source skips) and renamed, so the watcher never reads half a file.
    mkdirSync(this.manifests, { recursive: true });
    const tmp = join(this.manifests, '.cluster.yaml.tmp');
    writeFileSync(tmp, yaml);
    renameSync(tmp, join(this.manifests, 'cluster.yaml'));
  }

  /** Starts `svcplane proxy` in the node namespace; resolves once it reports serving (within startMs, default 20 s). */
  async startProxy(extra: string[] = [], opts: { manifests?: boolean; startMs?: number } = {}): Promise<ProxyProcess> {
    const args = [
      'netns', 'exec', this.node.name, process.execPath, CLI, 'proxy',
      ...(opts.manifests === false ? [] : ['--manifests', this.manifests]), '--hostname-override', NODE_NAME,
      '--service-cidr', SERVICE_CIDR, '--cluster-cidr', CLUSTER_CIDR, '--tun', TUN,
      '--healthz-bind-address', '0.0.0.0:10256', '--metrics-bind-address', '127.0.0.1:10249', ...extra,
    ];
    const child = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { out += d; });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const p: ProxyProcess = { child, output: () => out, exited };
    this.proxy = p;
    this.started.push(p);
    const deadline = Date.now() + (opts.startMs ?? 20_000);
    while (!/proxy: serving/.test(out)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`proxy did not start: ${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return p;
  }

  /** SIGTERM and wait (bounded); returns the exit code. */
  async stopProxy(): Promise<number | null> {
    const p = this.proxy;
    if (!p) return null;
    this.proxy = null;
    this.lastOutput = p.output;
    if (p.child.exitCode !== null) return p.child.exitCode;
    p.child.kill('SIGTERM');
    const code = await Promise.race([p.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 10_000))]);
    if (code === 'timeout') {
      p.child.kill('SIGKILL');
      throw new Error(`proxy did not stop on SIGTERM: ${p.output()}`);
    }
    return code;
  }

  /** Runs a command in the node namespace. */
  nodeExec(argv: string[]): string {
    return this.scope.must(this.node, argv);
  }

  async destroy(): Promise<void> {
    try {
      for (const p of this.started) {
        if (p.child.exitCode !== null || p.child.signalCode !== null) continue;
        p.child.kill('SIGKILL');
        await Promise.race([p.exited, new Promise((r) => setTimeout(r, 3000))]);
      }
    } finally {
      this.scope.destroy();
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

/** Polls `check` until it returns a value (not undefined) or the time runs out. */
export async function eventually<T>(check: () => Promise<T | undefined> | T | undefined, ms = 8000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
