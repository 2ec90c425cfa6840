// metrics.ts — the proxy's Prometheus metrics (prom-client): kube-proxy's own names and labels
// where the concept is the same (pkg/proxy/metrics/metrics.go: sync durations and timestamps,
// network programming latency, rule counts, no-local-endpoint service ports and the conntrack
// reconcile's duration and deletions per ip_family; pending and total Service/endpoint changes,
// healthz/livez answers) plus svcplane's core counters read at scrape time (verdicts, drop
// reasons, conntrack entries and events, TUN packets/bytes/batches/errors) and the process
// collector's process_* figures. Serves /metrics.
// Never changes what it reads; one registry per proxy (no global default registry).
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Server, ServerResponse } from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import { REASONS, VERDICTS } from '../core/abi.js';
import type { ProxyHealth } from './health.js';
import { listen } from './health.js';
import { isLoopback as isLoopbackIP, parseIP } from '../kube/ip.js';

/** What the scrape reads live. */
export interface MetricSources {
  coreStats(): Record<string, number>;
  tunStats(): {
    packetsIn: number; bytesIn: number; packetsOut: number; bytesOut: number; batches: number; readErrors: number; writeErrors: number; dropped: number; wakeups: number;
    /** With TUN offloads (io/tun.ts TunCounters). */
    gsoPackets?: number; csumPartial?: number; offloadDropped?: number;
  };
  health: ProxyHealth;
  /** nfacct counters by name (the core's iptables mode). */
  nfacct?(): ReadonlyArray<{ name: string; packets: number }>;
  /** The conntrack state file's checkpoints (io/conntrack-state.ts), with --conntrack-state. */
  checkpoints?(): { written: number; failed: number; lastWrittenMs: number };
}

// metrics.go: exponential buckets from 1 ms doubling 15 times.
const SYNC_BUCKETS = Array.from({ length: 15 }, (_, i) => 0.001 * 2 ** i);
// metrics.go NetworkProgrammingLatency: MergeBuckets of 0.25 and 0.5 s, 1 s steps from 1 to 59 s,
// 5 s steps from 60 to 115 s and 30 s steps from 120 to 300 s; MergeBuckets (component-base)
// starts its list with a 0, so 0 is a bucket too.
const range = (from: number, step: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + step * i);
const NETPROG_BUCKETS = [0, ...range(0.25, 0.25, 2), ...range(1, 1, 59), ...range(60, 5, 12), ...range(120, 30, 7)];

/** What a route knows of its request besides the query. */
export interface RouteRequest {
  method: string;
  /** The peer is the node itself (a loopback address): what a route that changes the core asks. */
  loopback: boolean;
  /** The request carries a body (Content-Length above 0, or Transfer-Encoding): no route reads one. */
  body: boolean;
}

/**
 * A metrics-port route: the request's query parameters in, its answer out — text, a RouteReply,
 * text chunks to stream (AsyncIterable<string>), a Promise of one of those (an answer made over
 * several turns of the event loop), or anything else as JSON.
 */
export type Route = (query: URLSearchParams, request: RouteRequest) => unknown;

/** A peer address that is the node itself: 127.0.0.0/8 or ::1, IPv4 ones also as an IPv6 socket reports them. */
export function isLoopback(address: string | undefined): boolean {
  const ip = address === undefined ? null : parseIP(address);
  return ip !== null && isLoopbackIP(ip);
}

const isStream = (v: unknown): v is AsyncIterable<string> => typeof v === 'object' && v !== null && Symbol.asyncIterator in v;

/** Resolves when `res` can take more, or is gone; leaves no listener behind (a long stream waits often). */
function drainOrClose(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/**
 * Writes `chunks` as they come, waiting whenever the client reads slower; stops if it goes away,
 * and then tells the chunks' source at once (return()), even while it waits for its next chunk.
 */
async function stream(res: ServerResponse, chunks: AsyncIterable<string>): Promise<void> {
  const it = chunks[Symbol.asyncIterator]();
  res.on('close', () => { if (!res.writableEnded) void it.return?.(); });
  try {
    for (;;) {
      const r = await it.next();
      if (r.done) break;
      if (res.destroyed) return;
      if (!res.write(r.value)) await drainOrClose(res);
    }
    res.end();
  } catch (e) {
    res.destroy(e as Error);
  }
}

/** Writes a route's answer (see Route). */
function answer(res: ServerResponse, body: unknown): void {
  if (body instanceof RouteReply) {
    res.writeHead(body.status, { 'Content-Type': body.type, 'X-Content-Type-Options': 'nosniff' });
    res.end(body.body);
    return;
  }
  if (isStream(body)) {
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
    // At once: a stream may have nothing to say for a while (events), and the client waits for them.
    res.flushHeaders();
    void stream(res, body);
    return;
  }
  if (typeof body === 'string') {
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
    res.end(body);
    return;
  }
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(`${JSON.stringify(body, null, 2)}\n`);
}

/** A route's answer with its own status and content type (text or JSON the route wrote). */
export class RouteReply {
  constructor(readonly status: number, readonly type: string, readonly body: string) {}
}

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly syncDuration: Histogram<'ip_family'>;
  readonly syncFull: Histogram<'ip_family'>;
  readonly syncPartial: Histogram<'ip_family'>;
  readonly networkProgramming: Histogram<'ip_family'>;
  readonly lastSync: Gauge<'ip_family'>;
  readonly lastQueued: Gauge<'ip_family'>;
  readonly serviceChanges: Counter;
  readonly endpointChanges: Counter;
  readonly servicePending: Gauge;
  readonly endpointPending: Gauge;
  readonly rules: Gauge<'ip_family' | 'table'>;
  readonly rulesLast: Gauge<'ip_family' | 'table'>;
  readonly noLocalEndpoints: Gauge<'ip_family' | 'traffic_policy'>;
  readonly syncErrors: Counter;
  readonly restoreFailures: Counter<'ip_family'>;
  readonly partialRestoreFailures: Counter<'ip_family'>;
  readonly conntrackDeleted: Counter<'ip_family'>;
  readonly conntrackReconcile: Histogram<'ip_family'>;

  constructor(src: MetricSources) {
    const r = [this.registry];
    this.syncDuration = new Histogram({ name: 'kubeproxy_sync_proxy_rules_duration_seconds', help: 'SyncProxyRules latency in seconds', labelNames: ['ip_family'], buckets: SYNC_BUCKETS, registers: r });
    this.syncFull = new Histogram({ name: 'kubeproxy_sync_full_proxy_rules_duration_seconds', help: 'SyncProxyRules latency in seconds for full resyncs', labelNames: ['ip_family'], buckets: SYNC_BUCKETS, registers: r });
    this.syncPartial = new Histogram({ name: 'kubeproxy_sync_partial_proxy_rules_duration_seconds', help: 'SyncProxyRules latency in seconds for partial resyncs', labelNames: ['ip_family'], buckets: SYNC_BUCKETS, registers: r });
    this.networkProgramming = new Histogram({ name: 'kubeproxy_network_programming_duration_seconds', help: 'In Cluster Network Programming Latency in seconds', labelNames: ['ip_family'], buckets: NETPROG_BUCKETS, registers: r });
    this.lastSync = new Gauge({ name: 'kubeproxy_sync_proxy_rules_last_timestamp_seconds', help: 'The last time proxy rules were successfully synced', labelNames: ['ip_family'], registers: r });
    this.lastQueued = new Gauge({ name: 'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds', help: 'The last time a sync of proxy rules was queued', labelNames: ['ip_family'], registers: r });
    this.serviceChanges = new Counter({ name: 'kubeproxy_sync_proxy_rules_service_changes_total', help: 'Cumulative proxy rules Service changes', registers: r });
    this.endpointChanges = new Counter({ name: 'kubeproxy_sync_proxy_rules_endpoint_changes_total', help: 'Cumulative proxy rules Endpoint changes', registers: r });
    this.servicePending = new Gauge({ name: 'kubeproxy_sync_proxy_rules_service_changes_pending', help: 'Pending proxy rules Service changes', registers: r });
    this.endpointPending = new Gauge({ name: 'kubeproxy_sync_proxy_rules_endpoint_changes_pending', help: 'Pending proxy rules Endpoint changes', registers: r });
    this.rules = new Gauge({ name: 'kubeproxy_sync_proxy_rules_iptables_total', help: 'Total number of iptables rules owned by kube-proxy (in the svcplane core)', labelNames: ['ip_family', 'table'], registers: r });
    this.rulesLast = new Gauge({ name: 'kubeproxy_sync_proxy_rules_iptables_last', help: 'Number of iptables rules written by kube-proxy in last sync (into the svcplane core)', labelNames: ['ip_family', 'table'], registers: r });
    this.noLocalEndpoints = new Gauge({ name: 'kubeproxy_sync_proxy_rules_no_local_endpoints_total', help: 'Number of services with a Local traffic policy and no endpoints', labelNames: ['ip_family', 'traffic_policy'], registers: r });
    this.restoreFailures = new Counter({ name: 'kubeproxy_sync_proxy_rules_iptables_restore_failures_total', help: 'Cumulative proxy iptables restore failures', labelNames: ['ip_family'], registers: r });
    this.partialRestoreFailures = new Counter({ name: 'kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total', help: 'Cumulative proxy iptables partial restore failures', labelNames: ['ip_family'], registers: r });
    this.syncErrors = new Counter({ name: 'svcplane_sync_errors_total', help: 'Syncs the core refused (the previous rules stayed live)', registers: r });
    // pkg/proxy/metrics: ReconcileConntrackFlowsDeletedEntriesTotal.
    this.conntrackDeleted = new Counter({ name: 'kubeproxy_conntrack_reconciler_deleted_entries_total', help: 'Cumulative conntrack flows deleted by conntrack reconciler', labelNames: ['ip_family'], registers: r });
    // metrics.go ReconcileConntrackFlowsLatency: the sync histograms' buckets.
    this.conntrackReconcile = new Histogram({ name: 'kubeproxy_conntrack_reconciler_sync_duration_seconds', help: 'ReconcileConntrackFlowsLatency latency in seconds', labelNames: ['ip_family'], buckets: SYNC_BUCKETS, registers: r });

    // pkg/proxy/metrics: the iptables mode's nfacct counters, read at each scrape.
    const nfacct = (name: string): number => src.nfacct?.().find((c) => c.name === name)?.packets ?? 0;
    new Counter({
      name: 'kubeproxy_iptables_ct_state_invalid_dropped_packets_total', help: 'packets dropped by iptables to work around conntrack problems', registers: r,
      collect() { this.reset(); this.inc(nfacct('ct_state_invalid_dropped_pkts')); },
    });
    new Counter({
      name: 'kubeproxy_iptables_localhost_nodeports_accepted_packets_total', help: 'Number of packets accepted on nodeports of loopback interface', registers: r,
      collect() { this.reset(); this.inc(nfacct('localhost_nps_accepted_pkts')); },
    });
    new Counter({
      name: 'kubeproxy_proxy_healthz_total', help: 'Cumulative proxy healthz HTTP status', labelNames: ['code'], registers: r,
      collect() { this.reset(); for (const [code, n] of Object.entries(src.health.served.healthz)) this.inc({ code }, n); },
    });
    new Counter({
      name: 'kubeproxy_proxy_livez_total', help: 'Cumulative proxy livez HTTP status', labelNames: ['code'], registers: r,
      collect() { this.reset(); for (const [code, n] of Object.entries(src.health.served.livez)) this.inc({ code }, n); },
    });
    // The core's counters are cumulative already: gauges-as-counters are reset and set per scrape.
    new Counter({
      name: 'svcplane_verdicts_total', help: 'Packets by the verdict the core gave them', labelNames: ['verdict'], registers: r,
      collect() { this.reset(); const s = src.coreStats(); for (const v of VERDICTS) this.inc({ verdict: v }, s[`verdict_${v.toLowerCase()}`] ?? 0); },
    });
    new Counter({
      name: 'svcplane_drops_total', help: 'Packets dropped by the core, by reason', labelNames: ['reason'], registers: r,
      collect() { this.reset(); const s = src.coreStats(); for (const re of REASONS.slice(1)) this.inc({ reason: re }, s[`drop_${re}`] ?? 0); },
    });
    new Counter({
      name: 'svcplane_conntrack_events_total', help: 'Conntrack and NAT events in the core', labelNames: ['event'], registers: r,
      collect() {
        this.reset();
        const s = src.coreStats();
        for (const e of ['conntrack_new', 'conntrack_hit', 'conntrack_related', 'conntrack_reaped', 'dnat', 'snat']) this.inc({ event: e }, s[e] ?? 0);
      },
    });
    new Gauge({ name: 'svcplane_conntrack_entries', help: 'Flows in the core conntrack table', registers: r, collect() { this.set(src.coreStats().conntrack_entries ?? 0); } });
    new Gauge({ name: 'svcplane_conntrack_capacity', help: 'Conntrack table capacity', registers: r, collect() { this.set(src.coreStats().conntrack_capacity ?? 0); } });
    new Counter({
      name: 'svcplane_tun_packets_total', help: 'Packets read from / written to the TUN device', labelNames: ['direction'], registers: r,
      collect() { this.reset(); const t = src.tunStats(); this.inc({ direction: 'in' }, t.packetsIn); this.inc({ direction: 'out' }, t.packetsOut); },
    });
    new Counter({
      name: 'svcplane_tun_bytes_total', help: 'Bytes read from / written to the TUN device', labelNames: ['direction'], registers: r,
      collect() { this.reset(); const t = src.tunStats(); this.inc({ direction: 'in' }, t.bytesIn); this.inc({ direction: 'out' }, t.bytesOut); },
    });
    new Counter({
      name: 'svcplane_tun_batches_total', help: 'Batches run through the core', registers: r,
      collect() { this.reset(); this.inc(src.tunStats().batches); },
    });
    new Counter({
      name: 'svcplane_tun_offload_packets_total',
      help: 'With TUN offloads: super-packets (gso) and partial checksums (csum_partial) read, packets an offload header could not describe (dropped)',
      labelNames: ['kind'], registers: r,
      collect() {
        this.reset();
        const t = src.tunStats();
        this.inc({ kind: 'gso' }, t.gsoPackets ?? 0);
        this.inc({ kind: 'csum_partial' }, t.csumPartial ?? 0);
        this.inc({ kind: 'dropped' }, t.offloadDropped ?? 0);
      },
    });
    if (src.checkpoints) {
      const cp = src.checkpoints;
      new Counter({
        name: 'svcplane_conntrack_checkpoints_total', help: 'Checkpoints of the flows into the conntrack state file, by result', labelNames: ['result'], registers: r,
        collect() { this.reset(); const c = cp(); this.inc({ result: 'written' }, c.written); this.inc({ result: 'failed' }, c.failed); },
      });
      new Gauge({
        name: 'svcplane_conntrack_checkpoint_timestamp_seconds', help: 'When the last checkpoint written was taken (0: none yet); a restart after a kill keeps the flows older than it',
        registers: r, collect() { this.set(cp().lastWrittenMs / 1000); },
      });
    }
    new Counter({
      name: 'svcplane_tun_errors_total', help: 'TUN read/write errors', labelNames: ['op'], registers: r,
      collect() { this.reset(); const t = src.tunStats(); this.inc({ op: 'read' }, t.readErrors); this.inc({ op: 'write' }, t.writeErrors); },
    });
    processMetrics(r);
  }

  /** Prometheus text exposition. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }

  /**
   * GET /metrics on host:port, and GET `path` answering `routes[path](query)`: a string as
   * text/plain (as kube-proxy's /proxyMode and /healthz there), a RouteReply as it says, anything
   * else as JSON.
   */
  async serve(host: string, port: number, routes: Record<string, Route> = {}): Promise<Server> {
    return listen((req, res) => {
      const url = req.url ?? '';
      const q = url.indexOf('?');
      const path = q < 0 ? url : url.slice(0, q);
      const route = Object.hasOwn(routes, path) ? routes[path] : undefined;
      if (route) {
        let body: unknown;
        try {
          body = route(new URLSearchParams(q < 0 ? '' : url.slice(q + 1)), {
            method: req.method ?? 'GET', loopback: isLoopback(req.socket.remoteAddress),
            body: req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) !== 0,
          });
        } catch (e) {
          // A route's own fault: answered, never thrown out of the request handler (which would end the proxy).
          res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
          res.end(`${(e as Error).message}\n`);
          return;
        }
        if (body instanceof Promise) {
          body.then((b: unknown) => answer(res, b), (e: Error) => {
            if (res.headersSent) return void res.destroy(e);
            res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
            res.end(`${e.message}\n`);
          });
          return;
        }
        answer(res, body);
        return;
      }
      if (path !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      this.registry.metrics().then(
        (body) => { res.writeHead(200, { 'Content-Type': this.registry.contentType }); res.end(body); },
        (e: Error) => { res.writeHead(500); res.end(e.message); },
      );
    }, host, port);
  }
}

/**
 * The Prometheus process collector's metrics kube-proxy's /metrics carries too (client_golang
 * process_collector: CPU, memory, file descriptors, start time), read at each scrape from this
 * process and /proc, so restarts and growth show on the same dashboards. A figure /proc cannot
 * give (not Linux) is left out of that scrape.
 */
function processMetrics(r: Registry[]): void {
  const startSeconds = Math.round(Date.now() / 1000 - process.uptime());
  new Counter({
    name: 'process_cpu_seconds_total', help: 'Total user and system CPU time spent in seconds.', registers: r,
    collect() { const u = process.cpuUsage(); this.reset(); this.inc((u.user + u.system) / 1e6); },
  });
  new Gauge({ name: 'process_resident_memory_bytes', help: 'Resident memory size in bytes.', registers: r, collect() { this.set(process.memoryUsage.rss()); } });
  new Gauge({ name: 'process_start_time_seconds', help: 'Start time of the process since unix epoch in seconds.', registers: r, collect() { this.set(startSeconds); } });
  const fromProc = (read: () => number) => function (this: Gauge): void {
    this.reset();
    try { this.set(read()); } catch { /* not this platform's /proc */ }
  };
  new Gauge({ name: 'process_open_fds', help: 'Number of open file descriptors.', registers: r, collect: fromProc(() => readdirSync('/proc/self/fd').length - 1) });
  new Gauge({
    name: 'process_max_fds', help: 'Maximum number of open file descriptors.', registers: r,
    collect: fromProc(() => Number(/^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))![1])),
  });
  new Gauge({
    name: 'process_virtual_memory_bytes', help: 'Virtual memory size in bytes.', registers: r,
    collect: fromProc(() => Number(/^VmSize:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024),
  });
}
