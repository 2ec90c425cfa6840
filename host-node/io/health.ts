// health.ts — kube-proxy's health endpoints: the proxy's /healthz and /livez (pkg/proxy/healthcheck/
// proxy_health.go: healthy unless a family's oldest queued update has waited the health timeout
// since that family last synced; /healthz is also 503 while the Node is deleted or tainted
// ToBeDeletedByClusterAutoscaler, read at each request) and one HTTP server per Service
// healthCheckNodePort answering with the Service's local endpoint count (service_health.go: 200
// when there is one and the proxy is healthy, else 503). Same JSON bodies, headers and status
// codes. Never decides which endpoints are local (the caller counts them).
import { createServer, type Server, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Node } from '../kube/objects.js';
import { familyName } from '../kube/model.js';
import type { Family } from '../kube/ip.js';

/** ToBeDeletedTaint: set by the cluster autoscaler before it deletes a node. */
const TO_BE_DELETED_TAINT = 'ToBeDeletedByClusterAutoscaler';

/**
 * A time.Time as Go's encoding/json writes it (RFC 3339, fraction without trailing zeros, UTC as
 * "Z"); 0 is Go's zero time (never set).
 */
export function goTime(ms: number): string {
  if (ms === 0) return '0001-01-01T00:00:00Z';
  return new Date(ms).toISOString().replace(/\.(\d*?)0*Z$/, (_m, f: string) => (f ? `.${f}Z` : 'Z'));
}

/**
 * kube-proxy's NodeEligible: a Node that is gone (`deleted`: seen, then deleted), has a deletion
 * timestamp, or carries the autoscaler's ToBeDeleted taint takes no new load-balancer traffic.
 * svcplane also runs with no Node object at all (manifests without one): then eligible.
 */
export function nodeEligible(node: Node | null, deleted: boolean): boolean {
  if (deleted) return false;
  if (!node) return true;
  return node.metadata.deletionTimestamp === null && !node.spec.taints.includes(TO_BE_DELETED_TAINT);
}

export type HealthCode = '200' | '503';

/** What Health() reports: overall and per family that has synced at least once (v1.IPFamily keys). */
export interface ProxyHealthState {
  healthy: boolean;
  /** The most recent sync of any family, ms (0: none yet). */
  lastUpdated: number;
  status: Map<number, { lastUpdated: number; healthy: boolean }>;
}

/** The proxier's health state (ProxyHealthServer), per IP family. */
export class ProxyHealth {
  private readonly lastUpdated = new Map<number, number>();
  private readonly oldestQueued = new Map<number, number>();
  /** Requests answered, by endpoint and status code (kubeproxy_proxy_healthz_total / _livez_total). */
  readonly served = { healthz: { '200': 0, '503': 0 }, livez: { '200': 0, '503': 0 } };

  /** `eligible`: the Node's eligibility as of now (see nodeEligible), read at every /healthz. */
  constructor(
    private readonly timeoutMs: number,
    private readonly now: () => number = Date.now,
    private readonly eligible: () => boolean = () => true,
  ) {}

  /** A change reached the proxy and awaits a sync. */
  queuedUpdate(family: number): void {
    if (!this.oldestQueued.has(family)) this.oldestQueued.set(family, this.now());
  }

  /** A sync of this family completed. */
  updated(family: number): void {
    this.oldestQueued.delete(family);
    this.lastUpdated.set(family, this.now());
  }

  /**
   * Health(): a family that has synced is late once its oldest queued update is `timeoutMs` old;
   * a family that never synced is starting up and counts as healthy (kube-proxy looks only at
   * families with a last update).
   */
  state(): ProxyHealthState {
    const now = this.now();
    const out: ProxyHealthState = { healthy: true, lastUpdated: 0, status: new Map() };
    for (const family of [...this.lastUpdated.keys()].sort()) {
      const updated = this.lastUpdated.get(family)!;
      if (updated > out.lastUpdated) out.lastUpdated = updated;
      const queued = this.oldestQueued.get(family);
      const healthy = queued === undefined || now - queued < this.timeoutMs;
      if (!healthy) out.healthy = false;
      out.status.set(family, { lastUpdated: updated, healthy });
    }
    return out;
  }

  get healthy(): boolean {
    return this.state().healthy;
  }

  /** The /healthz or /livez answer: status and body exactly as kube-proxy writes them. */
  answer(path: '/healthz' | '/livez'): { status: number; body: string } {
    const now = this.now();
    const h = this.state();
    const eligible = path === '/healthz' ? this.eligible() : undefined;
    const ok = h.healthy && eligible !== false;
    this.served[path === '/healthz' ? 'healthz' : 'livez'][ok ? '200' : '503']++;
    // proxy_health.go: a healthy answer reports lastUpdated = now (compatibility with old releases).
    const body: Record<string, unknown> = { lastUpdated: goTime(ok ? now : h.lastUpdated), currentTime: goTime(now) };
    if (eligible !== undefined) body.nodeEligible = eligible;
    body.healthy = h.healthy;
    if (h.status.size > 0) {
      body.status = Object.fromEntries([...h.status].map(([f, s]) => [familyName(f as Family), { lastUpdated: goTime(s.lastUpdated), healthy: s.healthy }]));
    }
    return { status: ok ? 200 : 503, body: JSON.stringify(body) };
  }
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff', ...headers });
  res.end(body);
}

/**
 * Listens on host:port; resolves once bound (rejects on EADDRINUSE and the like). A wildcard host
 * (0.0.0.0, empty or ::) listens on every address of both families, as Go's net.Listen("tcp", …)
 * does for kube-proxy (an IPv6 socket that also takes IPv4), or on IPv4 alone where the host has
 * no IPv6.
 */
export async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void, host: string, port: number): Promise<Server> {
  const bind = (h: string): Promise<Server> => {
    const server = createServer(handler);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host: h, ipv6Only: false }, () => { server.off('error', reject); resolve(server); });
    });
  };
  if (host !== '0.0.0.0' && host !== '' && host !== '::') return bind(host);
  try {
    return await bind('::');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL') throw e;
    return bind('0.0.0.0');
  }
}

export function closeServer(s: Server): Promise<void> {
  return new Promise((resolve) => { s.closeAllConnections(); s.close(() => resolve()); });
}

/** The /healthz + /livez server. */
export async function serveProxyHealth(health: ProxyHealth, host: string, port: number): Promise<Server> {
  return listen((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz' || path === '/livez') {
      const a = health.answer(path);
      send(res, a.status, a.body);
    } else {
      send(res, 404, '{"error": "not found"}');
    }
  }, host, port);
}

interface HcInstance {
  port: number;
  servers: Server[];
  localEndpoints: number;
}

/**
 * Per-Service health check servers (service_health.go). sync() opens and closes listeners to match
 * the Services' healthCheckNodePorts; setEndpoints() updates the local endpoint counts they report.
 */
export class ServiceHealthServers {
  private readonly services = new Map<string, HcInstance>();

  /** `open`: how a listener is opened (a real server by default; tests pass their own). */
  constructor(
    private readonly health: { readonly healthy: boolean },
    private readonly addresses: string[],
    private readonly log: (l: string) => void = () => {},
    private readonly open: typeof listen = listen,
  ) {}

  /** `ports`: "namespace/name" → healthCheckNodePort. Failures to listen are logged and retried next sync. */
  async sync(ports: Map<string, number>): Promise<void> {
    for (const [nsn, inst] of this.services) {
      if (ports.get(nsn) === inst.port) continue;
      this.services.delete(nsn);
      await Promise.all(inst.servers.map(closeServer));
    }
    for (const [nsn, port] of ports) {
      if (this.services.has(nsn)) continue;
      const inst: HcInstance = { port, servers: [], localEndpoints: 0 };
      try {
        for (const addr of this.addresses) inst.servers.push(await this.open((_req, res) => this.answer(nsn, res), addr, port));
        this.services.set(nsn, inst);
      } catch (e) {
        this.log(`proxy: health check port ${port} of ${nsn}: ${(e as Error).message}`);
        await Promise.all(inst.servers.map(closeServer));
      }
    }
  }

  /** Local endpoint counts per "namespace/name" (missing = 0). */
  setEndpoints(counts: Map<string, number>): void {
    for (const [nsn, inst] of this.services) inst.localEndpoints = counts.get(nsn) ?? 0;
  }

  ports(): Map<string, number> {
    return new Map([...this.services].map(([k, v]) => [k, v.port]));
  }

  private answer(nsn: string, res: ServerResponse): void {
    const inst = this.services.get(nsn);
    if (!inst) { res.destroy(); return; }
    const healthy = this.health.healthy;
    const [namespace, name] = nsn.split('/');
    const body = `{\n\t"service": {\n\t\t"namespace": ${JSON.stringify(namespace)},\n\t\t"name": ${JSON.stringify(name)}\n\t},\n\t"localEndpoints": ${inst.localEndpoints},\n\t"serviceProxyHealthy": ${healthy}\n}`;
    // service_health.go: the local endpoint count is also the node's weight for load balancers
    // that weigh nodes by it (e.g. Google Cloud's WEIGHTED_MAGLEV).
    send(res, inst.localEndpoints !== 0 && healthy ? 200 : 503, body, { 'X-Load-Balancing-Endpoint-Weight': String(inst.localEndpoints) });
  }

  async close(): Promise<void> {
    const all = [...this.services.values()].flatMap((i) => i.servers);
    this.services.clear();
    await Promise.all(all.map(closeServer));
  }
}
