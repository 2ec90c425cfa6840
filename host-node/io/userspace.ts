// userspace.ts — `svcplane proxy --mode userspace`: Services for a machine without root or a TUN
// device, the way kube-proxy's original userspace mode served them (pkg/proxy/userspace/proxier.go:
// one listening socket per service port, splicing to endpoints) minus the iptables redirects, which
// need root. Each service port gets a listener (userspace-listeners) on every configured local
// address of its family, on the Service's own port or one from --proxy-port-range (PortAllocator
// below); the core still chooses every endpoint (userspace-flows). sync() follows the Services
// live: new service ports open, removed ones close (TCP connections already spliced continue),
// changed cluster IPs apply in place. The mapping (where to connect for which service port) is logged and served as JSON.
// Never programs the core (NodeProxy applies the Services), never touches routes or devices.
import type { Registry } from 'prom-client';
import { Counter, Gauge } from 'prom-client';
import type { Dataplane } from '../core/dataplane.js';
import { joinHostPort, type ServicePortInfo } from '../kube/index.js';
import type { UserspacePorts } from './proxy-config.js';
import { CoreFlows, newCounters, type UserspaceCounters } from './userspace-flows.js';
import { TcpServicePort, UdpServicePort, type ListenerContext, type ListenerTarget } from './userspace-listeners.js';

// Which local port a listener gets. kube-proxy's userspace proxier opened one "proxy port" per
// service port (pkg/proxy/userspace/port_allocator.go: a random port of --proxy-port-range, then a
// sequential scan from there, wrapping; any free port when no range is set) and made iptables
// redirect the cluster IP to it. Without root there are no redirects, so the port is where users
// connect: in "service" choice the Service's own port is tried first (free and allowed for this
// user), then the range. Ports are tracked per bind address and protocol (TCP and UDP ports are
// separate); binding is the caller's attempt, and a port it fails on is skipped.

/** Binds attempted per listener before giving up (a scan never walks a whole large range). */
export const MAX_BIND_ATTEMPTS = 64;

export interface PortChoice<T> {
  /** The port bound (the kernel's choice when the range is unset and 0 was asked for). */
  port: number;
  handle: T;
}

/** Why every candidate failed, e.g. "8080: EADDRINUSE; 31000: EACCES". */
export class NoPortError extends Error {}

export class PortAllocator {
  /** "bind|protocol" → ports this proxy holds there. */
  private readonly used = new Map<string, Set<number>>();

  constructor(
    private readonly range: [number, number],
    private readonly choice: UserspacePorts,
    private readonly random: () => number = Math.random,
  ) {}

  /**
   * The ports to try for a listener of `servicePort` on `bind`/`protocol`, best first: the
   * service port (in "service" choice), then range ports from a random start, skipping ports held.
   * An unset range ([0, 0]) ends with 0: any free port.
   */
  *candidates(bind: string, protocol: string, servicePort: number): Generator<number> {
    const held = this.used.get(`${bind}|${protocol}`);
    const free = (p: number): boolean => !held?.has(p);
    if (this.choice === 'service' && free(servicePort)) yield servicePort;
    const [lo, hi] = this.range;
    if (lo === 0) {
      yield 0;
      return;
    }
    const size = hi - lo + 1;
    const start = Math.floor(this.random() * size);
    for (let i = 0; i < size; i++) {
      const p = lo + ((start + i) % size);
      if (p !== servicePort || this.choice === 'range') if (free(p)) yield p;
    }
  }

  /**
   * Tries candidates until `bind` succeeds (at most MAX_BIND_ATTEMPTS), marks the port held and
   * returns it; throws NoPortError naming each failure.
   */
  async allocate<T>(bind: string, protocol: string, servicePort: number, attempt: (port: number) => Promise<{ port: number; handle: T }>): Promise<PortChoice<T>> {
    const errors: string[] = [];
    for (const p of this.candidates(bind, protocol, servicePort)) {
      if (errors.length >= MAX_BIND_ATTEMPTS) break;
      try {
        const r = await attempt(p);
        this.hold(bind, protocol, r.port);
        return r;
      } catch (e) {
        errors.push(`${p}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    }
    const shown = errors.length > 4 ? [...errors.slice(0, 4), `… ${errors.length - 4} more`] : errors;
    throw new NoPortError(errors.length === 0 ? 'every port of the range is held' : `no port could be bound (${shown.join('; ')})`);
  }

  /** Gives a port back (its listener closed). */
  release(bind: string, protocol: string, port: number): void {
    this.used.get(`${bind}|${protocol}`)?.delete(port);
  }

  /** Ports held on one bind address and protocol. */
  held(bind: string, protocol: string): number[] {
    return [...(this.used.get(`${bind}|${protocol}`) ?? [])].sort((a, b) => a - b);
  }

  private hold(bind: string, protocol: string, port: number): void {
    const k = `${bind}|${protocol}`;
    let s = this.used.get(k);
    if (!s) this.used.set(k, (s = new Set()));
    s.add(port);
  }
}

export interface UserspaceOptions {
  dp: Dataplane;
  /** Monotonic milliseconds, the core's clock. */
  clock: () => number;
  /** Local addresses the listeners bind. */
  bind: string[];
  ports: UserspacePorts;
  /** --proxy-port-range; [0, 0] = any free port. */
  portRange: [number, number];
  udpIdleTimeoutMs: number;
  /** The node's addresses: clients from these (or loopback) are local, their packets take the OUTPUT path. */
  nodeAddresses: string[];
  log?: (line: string) => void;
  /** How often expired flows are reaped, default 1000 ms; slots scanned per reap, default 4096. */
  expireEveryMs?: number;
  expireBudget?: number;
  random?: () => number;
}

/** Where one service port is served: GET /services answers a list of these. */
export interface ServicePortMapping {
  /** kube-proxy's ServicePortName: "namespace/name:port" ("namespace/name" for an unnamed port). */
  service: string;
  protocol: string;
  clusterIP: string;
  port: number;
  bind: string;
  /** "address:port" to connect to; absent while the port could not be opened (see error). */
  listen?: string;
  listenPort?: number;
  error?: string;
}

interface Entry {
  key: string;
  bind: string;
  info: ServicePortInfo;
  target: ListenerTarget;
  listener: TcpServicePort | UdpServicePort | null;
  error?: string;
}

const isLoopback = (a: string): boolean => a === '::1' || a.startsWith('127.');
const familyOf = (a: string): 4 | 6 => (a.includes(':') ? 6 : 4);

export class UserspaceProxy {
  readonly counters: UserspaceCounters = newCounters();
  private readonly entries = new Map<string, Entry>();
  private readonly alloc: PortAllocator;
  private readonly ctx: ListenerContext;
  private readonly log: (line: string) => void;
  private reaper: ReturnType<typeof setInterval> | null;
  private closed = false;
  reaped = 0;

  constructor(private readonly o: UserspaceOptions) {
    this.log = o.log ?? (() => {});
    this.alloc = new PortAllocator(o.portRange, o.ports, o.random);
    const node = new Set(o.nodeAddresses);
    this.ctx = { flows: new CoreFlows(o.dp, o.clock), counters: this.counters, isLocal: (a) => isLoopback(a) || node.has(a) };
    // Without the packet loop, flows are reaped here (the TUN modes' ProxyLoop does it there).
    this.reaper = setInterval(() => {
      this.reaped += o.dp.expire(Math.floor(o.clock()), o.expireBudget ?? 4096);
    }, o.expireEveryMs ?? 1000);
    this.reaper.unref();
  }

  /**
   * Serves exactly these service ports (the Services' current model, both families): opens what is
   * new, closes what is gone, retries what could not be opened before. Headless Services (no
   * cluster IP) have nothing to serve; SCTP is listed with an error (Node has no SCTP sockets).
   */
  async sync(ports: Iterable<ServicePortInfo>): Promise<void> {
    if (this.closed) return;
    const want = new Map<string, { bind: string; info: ServicePortInfo }>();
    // Sorted, so that of two service ports wanting one port number the first by name gets it.
    for (const info of [...ports].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
      if (!info.clusterIP) continue;
      for (const bind of this.o.bind) {
        if (familyOf(bind) !== info.family) continue;
        want.set(`${bind}|${info.id}|${info.port}`, { bind, info });
      }
    }
    for (const [key, e] of this.entries) {
      if (want.has(key)) continue;
      this.entries.delete(key);
      if (e.listener) {
        e.listener.close();
        this.alloc.release(e.bind, e.info.protocol, e.listener.port);
        this.log(`proxy: userspace ${e.info.name} ${e.info.protocol} closed ${joinHostPort(e.bind, e.listener.port)}`);
      }
    }
    for (const [key, { bind, info }] of want) {
      const e = this.entries.get(key);
      if (e) {
        e.info = info;
        e.target.vip = info.clusterIP;
        if (e.listener) continue;
      }
      await this.open(e ?? { key, bind, info, target: { vip: info.clusterIP, port: info.port }, listener: null });
    }
  }

  private async open(e: Entry): Promise<void> {
    this.entries.set(e.key, e);
    const { bind, info } = e;
    if (info.protocol === 'SCTP') {
      e.error = 'SCTP is not served in userspace mode (no SCTP sockets)';
      return;
    }
    try {
      const r = await this.alloc.allocate<TcpServicePort | UdpServicePort>(bind, info.protocol, info.port, (port) => (info.protocol === 'TCP'
        ? TcpServicePort.listen(bind, port, e.target, this.ctx)
        : UdpServicePort.listen(bind, port, e.target, this.ctx, this.o.udpIdleTimeoutMs)));
      if (this.closed || this.entries.get(e.key) !== e) {
        r.handle.close();
        this.alloc.release(bind, info.protocol, r.port);
        return;
      }
      e.listener = r.handle;
      delete e.error;
      this.log(`proxy: userspace ${info.name} ${info.protocol} ${joinHostPort(info.clusterIP, info.port)} → listening on ${joinHostPort(bind, r.port)}`);
    } catch (err) {
      const msg = (err as Error).message;
      if (e.error !== msg) this.log(`proxy: userspace ${info.name} ${info.protocol} on ${bind}: ${msg}`);
      e.error = msg;
    }
  }

  /** Every service port served (or failing to be), sorted by service, protocol and bind address. */
  mapping(): ServicePortMapping[] {
    const out: ServicePortMapping[] = [];
    for (const e of this.entries.values()) {
      const m: ServicePortMapping = { service: e.info.name, protocol: e.info.protocol, clusterIP: e.info.clusterIP, port: e.info.port, bind: e.bind };
      if (e.listener) {
        m.listen = joinHostPort(e.bind, e.listener.port);
        m.listenPort = e.listener.port;
      }
      if (e.error) m.error = e.error;
      out.push(m);
    }
    const k = (m: ServicePortMapping): string => `${m.service}|${m.protocol}|${m.port}|${m.bind}`;
    return out.sort((a, b) => (k(a) < k(b) ? -1 : k(a) > k(b) ? 1 : 0));
  }

  /** Connections (TCP) and sessions (UDP) open now. */
  active(): { tcp: number; udp: number } {
    const a = { tcp: 0, udp: 0 };
    for (const e of this.entries.values()) {
      if (e.listener instanceof TcpServicePort) a.tcp += e.listener.active;
      else if (e.listener) a.udp += e.listener.active;
    }
    return a;
  }

  /** The userspace proxy's own metrics on the proxy's registry (read at scrape time). */
  registerMetrics(registry: Registry): void {
    const r = [registry];
    const self = this;
    new Counter({
      name: 'svcplane_userspace_connections_total', help: 'Userspace mode: TCP connections and UDP sessions by outcome', labelNames: ['protocol', 'result'], registers: r,
      collect() {
        this.reset();
        const c = self.counters;
        this.inc({ protocol: 'tcp', result: 'proxied' }, c.proxied.tcp);
        this.inc({ protocol: 'udp', result: 'proxied' }, c.proxied.udp);
        this.inc({ protocol: 'tcp', result: 'connect_failed' }, c.connectFailed);
      },
    });
    new Counter({
      name: 'svcplane_userspace_refused_total', help: 'Userspace mode: connections and datagrams the core gave no endpoint, by reason', labelNames: ['reason'], registers: r,
      collect() { this.reset(); for (const [reason, n] of Object.entries(self.counters.refused)) this.inc({ reason }, n); },
    });
    new Counter({
      name: 'svcplane_userspace_bytes_total', help: 'Userspace mode: payload bytes spliced', labelNames: ['direction'], registers: r,
      collect() {
        this.reset();
        this.inc({ direction: 'to_endpoint' }, self.counters.bytesToEndpoint);
        this.inc({ direction: 'to_client' }, self.counters.bytesToClient);
      },
    });
    new Gauge({
      name: 'svcplane_userspace_active', help: 'Userspace mode: TCP connections and UDP sessions open', labelNames: ['protocol'], registers: r,
      collect() { const a = self.active(); this.set({ protocol: 'tcp' }, a.tcp); this.set({ protocol: 'udp' }, a.udp); },
    });
    new Gauge({
      name: 'svcplane_userspace_listeners', help: 'Userspace mode: service ports being listened on', registers: r,
      collect() { this.set([...self.entries.values()].filter((e) => e.listener).length); },
    });
  }

  /** Closes every listener and, with `dropConnections`, the connections still spliced. */
  close(dropConnections = true): void {
    if (this.closed) return;
    this.closed = true;
    if (this.reaper) clearInterval(this.reaper);
    this.reaper = null;
    for (const e of this.entries.values()) {
      if (e.listener instanceof TcpServicePort) e.listener.close(dropConnections);
      else e.listener?.close();
    }
    this.entries.clear();
  }
}

/** The service ports of every family in a ProxyState's model (what sync() takes). */
export function modelServicePorts(families: Iterable<{ model: { services: Map<string, ServicePortInfo> } }>): ServicePortInfo[] {
  const out: ServicePortInfo[] = [];
  for (const fs of families) for (const sp of fs.model.services.values()) out.push(sp);
  return out;
}
