// userspace-support.ts — what the userspace-mode end-to-end tests run around the proxy, all on
// loopback and free ephemeral ports: backend servers on 127.0.0.x (a line-echo TCP server that
// names itself and the peer it sees, answering a half-close with a last line; a UDP echo that does
// the same; "reset" makes the TCP one abort), TCP/UDP clients that can bind a chosen loopback source, the unprivileged spawn of
// `svcplane proxy --mode userspace`, and the manifests it serves. Creates nothing outside loopback.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { join } from 'node:path';

export const REPO = join(import.meta.dirname, '..', '..');
export const NOBODY = 65534;

/** How the proxy is run without root: as `nobody` through setpriv when we are root, as ourselves otherwise. */
export function unprivileged(): { prefix: string[]; why: string } {
  if (process.getuid?.() !== 0) return { prefix: [], why: '' };
  const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
  if (!setpriv) return { prefix: [], why: 'running as root and setpriv (util-linux) is missing: cannot drop privileges' };
  try {
    execFileSync(setpriv, [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, '-e', 'process.exit(process.getuid() === 65534 ? 0 : 1)']);
  } catch {
    return { prefix: [], why: 'setpriv could not run node as uid 65534' };
  }
  return { prefix: [setpriv, `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'], why: '' };
}

export interface Backend {
  name: string;
  ip: string;
  tcpPort: number;
  udpPort: number;
  close(): Promise<void>;
}

/** A TCP line-echo and a UDP echo server on `ip`, ports chosen by the kernel. */
export async function startBackend(name: string, ip: string): Promise<Backend> {
  const conns = new Set<Socket>();
  const tcp: Server = createServer({ allowHalfOpen: true }, (s) => {
    conns.add(s);
    s.on('close', () => conns.delete(s));
    s.on('error', () => {});
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        // "reset": the endpoint aborts the connection (a RST the proxy must pass on).
        if (line === 'reset') s.resetAndDestroy();
        else s.write(`${name} ${s.remoteAddress}\n`);
      }
    });
    s.on('end', () => s.end(`${name} end\n`));
  });
  await new Promise<void>((resolve) => tcp.listen(0, ip, resolve));
  const udp: UdpSocket = createSocket('udp4');
  udp.on('message', (m, r) => udp.send(`${name} ${r.address} ${m.toString()}`, r.port, r.address));
  await new Promise<void>((resolve) => udp.bind(0, ip, resolve));
  return {
    name, ip, tcpPort: (tcp.address() as { port: number }).port, udpPort: udp.address().port,
    close: async () => {
      for (const c of conns) c.destroy();
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
      udp.close();
    },
  };
}

/** One TCP exchange: connect (from `from`), send a line, read one line; or the error that ended it. */
export function tcpAsk(port: number, opts: { host?: string; from?: string; timeoutMs?: number } = {}): Promise<{ line?: string; error?: string }> {
  return new Promise((resolve) => {
    const s = connect({ host: opts.host ?? '127.0.0.1', port, ...(opts.from ? { localAddress: opts.from } : {}) });
    let buf = '';
    const done = (r: { line?: string; error?: string }): void => { clearTimeout(t); s.destroy(); resolve(r); };
    const t = setTimeout(() => done({ error: 'timeout' }), opts.timeoutMs ?? 3000);
    s.on('connect', () => s.write('hello\n'));
    s.on('data', (d) => {
      buf += d.toString();
      const i = buf.indexOf('\n');
      if (i >= 0) done({ line: buf.slice(0, i) });
    });
    s.on('error', (e: NodeJS.ErrnoException) => done({ error: e.code ?? e.message }));
    s.on('end', () => done({ error: 'closed' }));
  });
}

/** A connection kept open: send a line and read the reply, as often as wanted. */
export class LongConnection {
  private buf = '';
  private waiters: Array<(line: string) => void> = [];
  ended = false;
  error = '';
  private constructor(readonly socket: Socket) {
    socket.on('data', (d) => {
      this.buf += d.toString();
      this.drain();
    });
    socket.on('end', () => { this.ended = true; });
    socket.on('error', (e: NodeJS.ErrnoException) => { this.error = e.code ?? e.message; });
  }

  static open(port: number, from?: string): Promise<LongConnection> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true, ...(from ? { localAddress: from } : {}) });
      s.once('connect', () => resolve(new LongConnection(s)));
      s.once('error', reject);
    });
  }

  /** The next line received (within 3 s). */
  next(): Promise<string> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no reply within 3 s')), 3000);
      this.waiters.push((l) => { clearTimeout(t); resolve(l); });
      this.drain();
    });
  }

  private drain(): void {
    for (let i = this.buf.indexOf('\n'); i >= 0 && this.waiters.length > 0; i = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 1);
      this.waiters.shift()!(line);
    }
  }

  ask(): Promise<string> {
    const p = this.next();
    this.socket.write('again\n');
    return p;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A UDP client socket kept open: each ask() sends from the same address/port and waits for a reply. */
export class UdpClient {
  private readonly s = createSocket('udp4');
  ask(port: number, text: string, timeoutMs = 1000): Promise<string> {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.s.off('message', on); resolve('timeout'); }, timeoutMs);
      const on = (m: Buffer): void => { clearTimeout(t); this.s.off('message', on); resolve(m.toString()); };
      this.s.on('message', on);
      this.s.send(text, port, '127.0.0.1');
    });
  }

  close(): void {
    this.s.close();
  }
}

/** One UDP exchange from a fresh client socket: the reply's text, or "timeout". */
export function udpAsk(port: number, text = 'ping', timeoutMs = 2000): Promise<string> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    const t = setTimeout(() => { s.close(); resolve('timeout'); }, timeoutMs);
    s.on('message', (m) => { clearTimeout(t); s.close(); resolve(m.toString()); });
    s.send(text, port, '127.0.0.1');
  });
}

/** A port nothing listens on now (the kernel's pick, released). */
export async function freePort(ip = '127.0.0.1'): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, ip, resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** The proxy process with its output collected. */
export interface ProxyProcess {
  child: ChildProcess;
  out: () => string;
  exit: Promise<number | null>;
}

export function spawnProxy(prefix: string[], args: string[]): ProxyProcess {
  const argv = [...prefix, process.execPath, join(REPO, 'bin', 'svcplane.js'), 'proxy', '--mode', 'userspace', ...args];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' });
  let text = '';
  child.stdout!.on('data', (d) => { text += d.toString(); });
  child.stderr!.on('data', (d) => { text += d.toString(); });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, out: () => text, exit };
}

type Spec = Record<string, unknown>;

export function service(name: string, spec: Spec): string {
  return `---\napiVersion: v1\nkind: Service\nmetadata: {name: ${name}, namespace: default}\nspec: ${JSON.stringify(spec)}\n`;
}

/** One EndpointSlice per backend (each has its own port). */
export function slices(svc: string, protocol: 'TCP' | 'UDP', backends: Backend[], opts: { nodeName?: string } = {}): string {
  return backends.map((b) => `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${svc}-${b.name}-${protocol.toLowerCase()}, namespace: default, labels: {kubernetes.io/service-name: ${svc}}}
addressType: IPv4
ports: [{name: p, port: ${protocol === 'TCP' ? b.tcpPort : b.udpPort}, protocol: ${protocol}}]
endpoints:
  - addresses: ["${b.ip}"]
    conditions: {ready: true, serving: true, terminating: false}
    nodeName: ${opts.nodeName ?? 'n1'}
`).join('');
}

export async function eventually<T>(fn: () => Promise<T> | T, ok: (v: T) => boolean, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (ok(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}
