// health.ts — kube-proxy's health endpoints: the proxy's /healthz and /livez (pkg/proxy/healthcheck/
// proxy_health.go: healthy unless a queued update has waited longer than the health timeout;
// /healthz is also 503 while the Node is being deleted or tainted ToBeDeletedByClusterAutoscaler)
// and one HTTP server per Service healthCheckNodePort answering with the Service's local endpoint
// count (service_health.go: 200 when there is one and the proxy is healthy, else 503). Same JSON
// shapes and status codes. Never decides which endpoints are local (the caller counts them).
import { createServer, type Server, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Node } from '../kube/objects.js';

/** ToBeDeletedTaint: set by the cluster autoscaler before it deletes a node. */
const TO_BE_DELETED_TAINT = 'ToBeDeletedByClusterAutoscaler';

/** Go's time.Time.String() without the monotonic reading: "2006-01-02 15:04:05.999999999 +0000 UTC". */
export function goTime(ms: number): string {
  // Never set: Go's zero time.Time.
  if (ms === 0) return '0001-01-01 00:00:00 +0000 UTC';
  const d = new Date(ms);
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  let frac = p(d.getUTCMilliseconds(), 3).replace(/0+$/, '');
  frac = frac ? `.${frac}` : '';
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}${frac} +0000 UTC`;
}

export type HealthCode = '200' | '503';

/** The proxier's health state (ProxyHealthServer), per IP family. */
export class ProxyHealth {
  private readonly lastUpdated = new Map<number, number>();
  private readonly oldestQueued = new Map<number, number>();
  nodeEligible = true;
  /** Requests answered, by endpoint and status code (kubeproxy_proxy_healthz_total / _livez_total). */
  readonly served = { healthz: { '200': 0, '503': 0 }, livez: { '200': 0, '503': 0 } };

  constructor(private readonly timeoutMs: number, private readonly now: () => number = Date.now) {}

  /** A change reached the proxy and awaits a sync. */
  queuedUpdate(family: number): void {
    if (!this.oldestQueued.has(family)) this.oldestQueued.set(family, this.now());
  }

  /** A sync of this family completed. */
  updated(family: number): void {
    this.oldestQueued.delete(family);
    this.lastUpdated.set(family, this.now());
  }

  /** kube-proxy's SyncNode: ineligible once deleted or marked for deletion. */
  syncNode(node: Node | null, deleting = false): void {
    const taints = (node as unknown as { spec?: { taints?: Array<{ key?: string }> } } | null)?.spec?.taints ?? [];
    this.nodeEligible = !deleting && !taints.some((t) => t.key === TO_BE_DELETED_TAINT);
  }

  /** [healthy, lastUpdated ms]. */
  state(): [boolean, number] {
    const now = this.now();
    let last = 0;
    for (const [family, updated] of this.lastUpdated) {
      if (updated > last) last = updated;
      const queued = this.oldestQueued.get(family);
      if (queued !== undefined && now - queued >= this.timeoutMs) return [false, updated];
    }
    // A family queued but never synced yet: unhealthy once late as well.
    for (const [family, queued] of this.oldestQueued) {
      if (!this.lastUpdated.has(family) && now - queued >= this.timeoutMs) return [false, last];
    }
    return [true, last];
  }

  get healthy(): boolean {
    return this.state()[0];
  }

  /** The /healthz or /livez answer: status and body exactly as kube-proxy writes them. */
  answer(path: '/healthz' | '/livez'): { status: number; body: string } {
    const now = this.now();
    let [healthy, last] = this.state();
    if (path === '/healthz') healthy = healthy && this.nodeEligible;
    // proxy_health.go: a healthy server reports lastUpdated = now (compatibility with old releases).
    if (healthy) last = now;
    this.served[path === '/healthz' ? 'healthz' : 'livez'][healthy ? '200' : '503']++;
    const body = path === '/healthz'
      ? `{"lastUpdated": ${JSON.stringify(goTime(last))},"currentTime": ${JSON.stringify(goTime(now))}, "nodeEligible": ${this.nodeEligible}}`
      : `{"lastUpdated": ${JSON.stringify(goTime(last))},"currentTime": ${JSON.stringify(goTime(now))}}`;
    return { status: healthy ? 200 : 503, body };
  }
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff', ...headers });
  res.end(body);
}

/** Listens on host:port; resolves once bound (rejects on EADDRINUSE and the like). */
export function listen(handler: (req: IncomingMessage, res: ServerResponse) => void, host: string, port: number): Promise<Server> {
  const server = createServer(handler);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(server); });
  });
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

  constructor(private readonly health: ProxyHealth, private readonly addresses: string[], private readonly log: (l: string) => void = () => {}) {}

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
        for (const addr of this.addresses) inst.servers.push(await listen((_req, res) => this.answer(nsn, res), addr, port));
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
