// kube-proxy's health answers (proxy_health.go, service_health.go) on a manual clock, the
// per-Service health check servers over real sockets on loopback, and the metric names.
import { describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { ProxyHealth, ServiceHealthServers, goTime, nodeEligible, serveProxyHealth, closeServer } from '../../../host-node/io/health.js';
import { parseManifests, type Node } from '../../../host-node/kube/index.js';
import { ProxyMetrics, RouteReply } from '../../../host-node/io/metrics.js';

function get(port: number, path: string): Promise<{ status: number; body: string; type: string; weight?: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      const weight = res.headers['x-load-balancing-endpoint-weight'];
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type']), ...(typeof weight === 'string' ? { weight } : {}) }));
    }).on('error', reject).end();
  });
}

describe('proxy health', () => {
  it('formats times as Go\'s encoding/json writes a time.Time', () => {
    expect(goTime(Date.UTC(2026, 0, 2, 3, 4, 5, 60))).toBe('2026-01-02T03:04:05.06Z');
    expect(goTime(Date.UTC(2026, 11, 31, 23, 59, 59, 0))).toBe('2026-12-31T23:59:59Z');
    expect(goTime(0)).toBe('0001-01-01T00:00:00Z');
  });

  it('is healthy until a synced family\'s queued update waits longer than the timeout, and again once synced', () => {
    let now = 1_000_000;
    const h = new ProxyHealth(60_000, () => now);
    expect(h.answer('/healthz').status).toBe(200);       // starting up
    // A family that never synced is starting up, however long its first update waits.
    h.queuedUpdate(4);
    now += 120_000;
    expect(h.answer('/healthz').status).toBe(200);
    h.updated(4);
    h.queuedUpdate(4);
    now += 59_999;
    expect(h.answer('/healthz').status).toBe(200);
    now += 1;
    const stale = h.answer('/healthz');
    expect(stale.status).toBe(503);
    expect(JSON.parse(stale.body)).toEqual({
      lastUpdated: goTime(now - 60_000), currentTime: goTime(now), nodeEligible: true, healthy: false,
      status: { IPv4: { lastUpdated: goTime(now - 60_000), healthy: false } },
    });
    expect(h.answer('/livez').status).toBe(503);
    h.updated(4);
    const ok = h.answer('/healthz');
    expect(ok.status).toBe(200);
    expect(ok.body).toBe(`{"lastUpdated":"${goTime(now)}","currentTime":"${goTime(now)}","nodeEligible":true,"healthy":true,"status":{"IPv4":{"lastUpdated":"${goTime(now)}","healthy":true}}}`);
    expect(h.served).toEqual({ healthz: { '200': 4, '503': 1 }, livez: { '200': 0, '503': 1 } });
  });

  it('fails /healthz but not /livez while the node is not eligible, read at each request', () => {
    let eligible = false;
    const h = new ProxyHealth(1000, () => 5, () => eligible);
    const a = h.answer('/healthz');
    expect(a.status).toBe(503);
    // Never synced: Go's zero time, no per-family status; proxy health itself is fine.
    expect(a.body).toBe(`{"lastUpdated":"0001-01-01T00:00:00Z","currentTime":"${goTime(5)}","nodeEligible":false,"healthy":true}`);
    expect(h.answer('/livez').body).toBe(`{"lastUpdated":"${goTime(5)}","currentTime":"${goTime(5)}","healthy":true}`);
    eligible = true;
    expect(h.answer('/healthz').status).toBe(200);
  });

  it('takes a Node out of load balancing when deleted, being deleted or tainted for deletion', () => {
    const node = (meta: string, spec = '{}'): Node => {
      const set = parseManifests(`kind: Node\nmetadata: ${meta}\nspec: ${spec}`);
      expect(set.issues).toEqual([]);
      return set.nodes[0]!;
    };
    expect(nodeEligible(null, false)).toBe(true);   // no Node object given (manifests)
    expect(nodeEligible(null, true)).toBe(false);   // seen, then deleted
    expect(nodeEligible(node('{name: n}'), false)).toBe(true);
    expect(nodeEligible(node('{name: n}', '{taints: [{key: other, effect: NoSchedule}]}'), false)).toBe(true);
    expect(nodeEligible(node('{name: n}', '{taints: [{key: ToBeDeletedByClusterAutoscaler, value: "1700000000", effect: NoSchedule}]}'), false)).toBe(false);
    expect(nodeEligible(node('{name: n, deletionTimestamp: "2026-01-01T00:00:00Z"}'), false)).toBe(false);
  });

  it('serves /healthz and /livez over HTTP with kube-proxy\'s headers', async () => {
    const h = new ProxyHealth(1000);
    const s = await serveProxyHealth(h, '127.0.0.1', 0);
    const port = (s.address() as { port: number }).port;
    try {
      const r = await get(port, '/healthz');
      expect(r.status).toBe(200);
      expect(r.type).toBe('application/json');
      expect(Object.keys(JSON.parse(r.body))).toEqual(['lastUpdated', 'currentTime', 'nodeEligible', 'healthy']);
      expect((await get(port, '/livez')).status).toBe(200);
      expect((await get(port, '/other')).status).toBe(404);
    } finally {
      await closeServer(s);
    }
  });

  it('answers a health check node port with the local endpoint count, also as the node\'s load-balancing weight (503 without one)', async () => {
    const h = new ProxyHealth(1000);
    const hc = new ServiceHealthServers(h, ['127.0.0.1']);
    const free = await serveProxyHealth(h, '127.0.0.1', 0);
    const port = (free.address() as { port: number }).port;
    await closeServer(free);
    try {
      await hc.sync(new Map([['ns1/web', port]]));
      hc.setEndpoints(new Map([['ns1/web', 2]]));
      const r = await get(port, '/');
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body)).toEqual({ service: { namespace: 'ns1', name: 'web' }, localEndpoints: 2, serviceProxyHealthy: true });
      expect(r.weight).toBe('2');
      hc.setEndpoints(new Map());
      const none = await get(port, '/');
      expect(none.status).toBe(503);
      expect(JSON.parse(none.body).localEndpoints).toBe(0);
      expect(none.weight).toBe('0');
      await hc.sync(new Map());
      expect(hc.ports().size).toBe(0);
      await expect(get(port, '/')).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      await hc.close();
    }
  });
});

describe('proxy metrics', () => {
  it('exposes kube-proxy\'s metric names and the core\'s counters', async () => {
    const health = new ProxyHealth(1000);
    health.answer('/healthz');
    const m = new ProxyMetrics({
      coreStats: () => ({ verdict_forward: 7, verdict_drop: 2, drop_no_endpoints: 2, conntrack_entries: 3, conntrack_capacity: 16 }),
      tunStats: () => ({ packetsIn: 9, bytesIn: 900, packetsOut: 7, bytesOut: 700, batches: 4, readErrors: 0, writeErrors: 1, dropped: 2, wakeups: 3 }),
      health,
      nfacct: () => [{ name: 'ct_state_invalid_dropped_pkts', packets: 4 }, { name: 'localhost_nps_accepted_pkts', packets: 5 }],
      checkpoints: () => ({ written: 6, failed: 1, lastWrittenMs: 1_700_000_123_500 }),
    });
    m.syncDuration.observe({ ip_family: 'IPv4' }, 0.004);
    m.lastSync.set({ ip_family: 'IPv6' }, 1700000000);
    m.networkProgramming.observe({ ip_family: 'IPv4' }, 0.3);
    m.rules.set({ ip_family: 'IPv4', table: 'nat' }, 55);
    m.noLocalEndpoints.set({ ip_family: 'IPv4', traffic_policy: 'external' }, 1);
    m.restoreFailures.inc({ ip_family: 'IPv6' });
    m.partialRestoreFailures.inc({ ip_family: 'IPv6' });
    m.conntrackDeleted.inc({ ip_family: 'IPv4' }, 3);
    m.conntrackDeleted.inc({ ip_family: 'IPv6' }, 0);
    m.conntrackReconcile.observe({ ip_family: 'IPv4' }, 0.003);
    const text = await m.text();
    for (const name of [
      // kube-proxy's labels (metrics.go): ip_family on the per-proxier figures.
      'kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="0.004",ip_family="IPv4"} 1', 'kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv6"} 1700000000',
      'kubeproxy_network_programming_duration_seconds_count{ip_family="IPv4"} 1', 'kubeproxy_sync_proxy_rules_endpoint_changes_total',
      // Its buckets as metrics.go merges them: a leading 0, 1 s steps to 59 s, 5 s to 115 s, 30 s to 300 s.
      'kubeproxy_network_programming_duration_seconds_bucket{le="0",ip_family="IPv4"} 0',
      'kubeproxy_network_programming_duration_seconds_bucket{le="0.5",ip_family="IPv4"} 1',
      'kubeproxy_network_programming_duration_seconds_bucket{le="37",ip_family="IPv4"} 1',
      'kubeproxy_network_programming_duration_seconds_bucket{le="115",ip_family="IPv4"} 1',
      'kubeproxy_network_programming_duration_seconds_bucket{le="150",ip_family="IPv4"} 1',
      'kubeproxy_sync_proxy_rules_iptables_total{ip_family="IPv4",table="nat"} 55',
      'kubeproxy_sync_proxy_rules_no_local_endpoints_total{ip_family="IPv4",traffic_policy="external"} 1',
      'kubeproxy_sync_proxy_rules_iptables_restore_failures_total{ip_family="IPv6"} 1',
      'kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total{ip_family="IPv6"} 1',
      'kubeproxy_sync_proxy_rules_service_changes_total', 'kubeproxy_proxy_healthz_total{code="200"} 1',
      'kubeproxy_conntrack_reconciler_deleted_entries_total{ip_family="IPv4"} 3',
      // A reconcile that deleted nothing still shows its family, as kube-proxy's Add(0) does.
      'kubeproxy_conntrack_reconciler_deleted_entries_total{ip_family="IPv6"} 0',
      'kubeproxy_conntrack_reconciler_sync_duration_seconds_bucket{le="0.004",ip_family="IPv4"} 1',
      'kubeproxy_conntrack_reconciler_sync_duration_seconds_bucket{le="0.002",ip_family="IPv4"} 0',
      'kubeproxy_iptables_ct_state_invalid_dropped_packets_total 4', 'kubeproxy_iptables_localhost_nodeports_accepted_packets_total 5',
      'svcplane_verdicts_total{verdict="FORWARD"} 7', 'svcplane_drops_total{reason="no_endpoints"} 2',
      'svcplane_conntrack_entries 3', 'svcplane_tun_packets_total{direction="in"} 9', 'svcplane_tun_errors_total{op="write"} 1',
      'svcplane_conntrack_checkpoints_total{result="written"} 6', 'svcplane_conntrack_checkpoints_total{result="failed"} 1',
      'svcplane_conntrack_checkpoint_timestamp_seconds 1700000123.5',
    ]) expect(text, name).toContain(name);
    // 81 boundaries and +Inf, none of them 0.75.
    expect(text.match(/^kubeproxy_network_programming_duration_seconds_bucket\{le="[^"]+",ip_family="IPv4"\}/gm)).toHaveLength(82);
    expect(text).not.toContain('network_programming_duration_seconds_bucket{le="0.75"');
    // Scrapes read live values (not accumulated between scrapes).
    expect(await m.text()).toContain('svcplane_verdicts_total{verdict="FORWARD"} 7');
    // The process collector's figures, as kube-proxy's /metrics has them.
    const value = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    expect(value('process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(value('process_resident_memory_bytes')).toBeGreaterThan(10 * 2 ** 20);
    expect(value('process_virtual_memory_bytes')).toBeGreaterThan(value('process_resident_memory_bytes'));
    expect(Math.abs(value('process_start_time_seconds') - (Date.now() / 1000 - process.uptime()))).toBeLessThan(2);
    expect(value('process_open_fds')).toBeGreaterThanOrEqual(3);
    expect(value('process_max_fds')).toBeGreaterThanOrEqual(value('process_open_fds'));
    expect(text).toContain('# TYPE process_cpu_seconds_total counter');
  });

  it('serves its routes: text, JSON, a reply with its own status, a stream; a route that throws is a 500, and the server serves on', async () => {
    const m = new ProxyMetrics({
      coreStats: () => ({}), tunStats: () => ({ packetsIn: 0, bytesIn: 0, packetsOut: 0, bytesOut: 0, batches: 0, readErrors: 0, writeErrors: 0, dropped: 0, wakeups: 0 }),
      health: new ProxyHealth(1000), nfacct: () => [], checkpoints: () => null,
    });
    const server = await m.serve('127.0.0.1', 0, {
      '/text': () => 'plain',
      '/json': (q) => ({ a: q.get('a') }),
      '/reply': () => new RouteReply(418, 'text/plain', 'teapot\n'),
      '/stream': () => (async function* () { yield 'one\n'; await new Promise((r) => setImmediate(r)); yield 'two\n'; })(),
      '/throws': () => { throw new Error('route fault'); },
      '/big': () => (async function* () { for (let i = 0; i < 400; i++) yield 'x'.repeat(65536); })(),
    });
    try {
      const port = (server.address() as { port: number }).port;
      expect(await get(port, '/text')).toMatchObject({ status: 200, body: 'plain' });
      expect(JSON.parse((await get(port, '/json?a=b%20c')).body)).toEqual({ a: 'b c' });
      expect(await get(port, '/reply')).toMatchObject({ status: 418, body: 'teapot\n' });
      expect(await get(port, '/stream')).toMatchObject({ status: 200, body: 'one\ntwo\n' });
      expect(await get(port, '/throws')).toMatchObject({ status: 500, body: 'route fault\n' });
      // A long stream to a slow reader waits for it many times, and leaves no listener behind each time.
      const warnings: string[] = [];
      const onWarning = (w: Error): void => { warnings.push(`${w.name}: ${w.message}`); };
      process.on('warning', onWarning);
      try {
        const got = await new Promise<number>((resolve, reject) => {
          let n = 0;
          request({ host: '127.0.0.1', port, path: '/big' }, (res) => {
            res.on('data', (d: Buffer) => { n += d.length; res.pause(); setTimeout(() => res.resume(), 1); });
            res.on('end', () => resolve(n));
          }).on('error', reject).end();
        });
        expect(got).toBe(400 * 65536);
        await new Promise((r) => setTimeout(r, 20));
        expect(warnings).toEqual([]);
      } finally {
        process.off('warning', onWarning);
      }
      expect(await get(port, '/text')).toMatchObject({ status: 200, body: 'plain' });
      expect((await get(port, '/nothing')).status).toBe(404);
    } finally {
      await closeServer(server);
    }
  });
});
