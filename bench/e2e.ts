// bench/e2e.ts — `npm run bench:e2e`: the real `svcplane proxy` in a node namespace (the same
// namespaces as tests/e2e) with SVP_BENCH_SERVICES Services loaded (default 10,000, 2 endpoints
// each, the client's target Services among them), against the kernel's iptables-legacy doing the
// same Services' DNAT with kube-proxy's own rules in a twin set of namespaces (bench/e2e-kernel.ts),
// measured from a client outside the node in one run, each side in turn: new connections/s
// (connect, one request line, close), keep-alive requests/s, and single-stream throughput (one TCP
// connection writing 64 KiB chunks); also the backends reached directly (no Service on the path).
// Bounded: a few seconds per row, about a minute in all. Root only; otherwise prints why it skipped.
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import type { BenchRow } from './core.js';
import { netnsSupport, missingTools, type LineAgent } from '../tests/support/netns.js';
import { E2ECluster, BACKENDS } from '../tests/e2e/cluster.js';
import { scaleManifests, BULK, FILL_CIDR, VIP } from '../tests/e2e/manifests.js';
import { startKernelTwin, TWIN_TOOLS, type KernelTwin } from './e2e-kernel.js';

const SECONDS = Number(process.env.SVP_BENCH_SECONDS ?? 3);
const SERVICES = Number(process.env.SVP_BENCH_SERVICES ?? 10_000);
const CONCURRENCY = 16;

interface LoadResult { ok: number; errors: Record<string, number>; ms: number; p50: number; p99: number }
interface ReqResult { ok: number; ms: number; p50: number; p99: number }
interface StreamResult { bytes: number; ms: number }
const r2 = (x: number): number => +x.toFixed(x >= 100 ? 0 : 2);

/** CPU time (user + system, ms) a process has used: /proc/<pid>/stat fields 14 and 15, in clock ticks (100/s). */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

/** Packets the proxy read from its device, from its /metrics. */
function tunPackets(c: E2ECluster): number {
  const m = /^svcplane_tun_packets_total\{direction="in"\} (\d+)/m.exec(c.nodeExec(['curl', '-sf', 'http://127.0.0.1:10249/metrics']));
  return m ? Number(m[1]) : NaN;
}

const size = (n: number): string => (n >= 1000 ? `${n / 1000}k` : String(n));
const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' ');
const cps = (r: { ok: number; ms: number }): number => (r.ok * 1000) / r.ms;
const gbps = (r: StreamResult): number => (r.bytes * 8) / (r.ms * 1e6);
const errs = (r: LoadResult): string => Object.entries(r.errors).map(([k, v]) => `${k} ${v}`).join(', ') || 'no errors';

async function stream(a: LineAgent, host: string, port: number, ms: number): Promise<StreamResult> {
  const r = await a.call<StreamResult & { failed?: string }>({ op: 'stream', host, port, ms, chunk: 65536 });
  if (r.failed || !(r.bytes > 0)) throw new Error(`single stream to ${host}:${port} failed: ${r.failed ?? 'no bytes counted'}`);
  return r;
}

export async function benchE2E(): Promise<BenchRow[]> {
  const s = netnsSupport();
  const missing = s.ok ? missingTools(TWIN_TOOLS) : [];
  if (!s.ok || missing.length) {
    console.log(`bench:e2e skipped: ${s.ok ? `missing tools: ${missing.join(', ')}` : s.reason}`);
    return [];
  }
  const started = performance.now();
  const load0 = load();
  const yaml = scaleManifests(SERVICES);
  const n = size(SERVICES);
  const c = new E2ECluster('bench');
  let k: KernelTwin | null = null;
  const rows: BenchRow[] = [];
  try {
    await c.build();
    c.writeManifests(yaml);
    let t = performance.now();
    await c.startProxy(['--service-cidr', FILL_CIDR], { startMs: 60_000 });
    const proxyStartMs = performance.now() - t;
    k = await startKernelTwin(yaml);
    const kc = k.cluster;
    const pid = c.proxy!.child.pid!;
    const direct = BACKENDS[0].ip;
    const ms = SECONDS * 1000;
    // Warm-up: JIT, conntrack, ARP, on both sides.
    for (const a of [c.clientAgent, kc.clientAgent]) {
      await a.call({ op: 'load', host: VIP.web, port: 80, ms: 500, concurrency: 4 });
      await a.call({ op: 'requests', host: VIP.stream, port: 81, ms: 300, concurrency: 4 });
    }
    await c.clientAgent.call({ op: 'load', host: direct, port: 8082, ms: 500, concurrency: 4 });

    // 1. New connections: svcplane, kernel, direct.
    const cpu0 = cpuMs(pid);
    const pkts0 = tunPackets(c);
    const viaProxy = await c.clientAgent.call<LoadResult>({ op: 'load', host: VIP.web, port: 80, ms, concurrency: CONCURRENCY });
    const cpu = cpuMs(pid) - cpu0;
    const pkts = tunPackets(c) - pkts0;
    const viaKernel = await kc.clientAgent.call<LoadResult>({ op: 'load', host: VIP.web, port: 80, ms, concurrency: CONCURRENCY });
    const toPod = await c.clientAgent.call<LoadResult>({ op: 'load', host: direct, port: 8082, ms, concurrency: CONCURRENCY });
    const connRatio = cps(viaProxy) / cps(viaKernel);
    rows.push({
      name: `e2e new connections/s via ClusterIP, ${n} services`, value: r2(cps(viaProxy)), unit: 'conn/s', target: '≥ 1.5× kernel iptables-legacy',
      note: `kernel iptables-legacy ${r2(cps(viaKernel))} conn/s · svcplane/kernel ${r2(connRatio)} · direct to pod ${r2(cps(toPod))} · svcplane ${errs(viaProxy)}, kernel ${errs(viaKernel)}`,
    });
    rows.push({
      name: 'e2e proxy CPU per packet (connection churn)', value: r2((cpu * 1000) / Math.max(1, pkts)), unit: 'µs',
      note: `${pkts} packets, ${cpu} ms CPU in ${ms} ms (user+system, the TUN write runs the kernel's forwarding path)`,
    });
    rows.push({
      name: 'e2e connection latency p50 via ClusterIP', value: r2(viaProxy.p50), unit: 'ms',
      note: `p99 ${r2(viaProxy.p99)} ms · kernel p50 ${r2(viaKernel.p50)}, p99 ${r2(viaKernel.p99)} ms · direct p50 ${r2(toPod.p50)}, p99 ${r2(toPod.p99)} ms`,
    });

    // 2. Keep-alive requests.
    const reqProxy = await c.clientAgent.call<ReqResult>({ op: 'requests', host: VIP.stream, port: 81, ms, concurrency: CONCURRENCY });
    const reqKernel = await kc.clientAgent.call<ReqResult>({ op: 'requests', host: VIP.stream, port: 81, ms, concurrency: CONCURRENCY });
    const reqPod = await c.clientAgent.call<ReqResult>({ op: 'requests', host: direct, port: 8083, ms, concurrency: CONCURRENCY });
    rows.push({
      name: `e2e keep-alive requests/s via ClusterIP, ${n} services`, value: r2(cps(reqProxy)), unit: 'req/s', target: '≥ 0.5× kernel iptables-legacy',
      note: `kernel iptables-legacy ${r2(cps(reqKernel))} req/s · svcplane/kernel ${r2(cps(reqProxy) / cps(reqKernel))} · direct to pod ${r2(cps(reqPod))}`,
    });
    rows.push({
      name: 'e2e request latency p50 via ClusterIP', value: r2(reqProxy.p50), unit: 'ms',
      note: `p99 ${r2(reqProxy.p99)} ms · kernel p50 ${r2(reqKernel.p50)}, p99 ${r2(reqKernel.p99)} ms · direct p50 ${r2(reqPod.p50)}, p99 ${r2(reqPod.p99)} ms`,
    });

    // 3. One TCP stream of 64 KiB writes.
    const cpuS0 = cpuMs(pid);
    const bulkProxy = await stream(c.clientAgent, BULK.vip, BULK.port, ms);
    const cpuS = cpuMs(pid) - cpuS0;
    const bulkKernel = await stream(kc.clientAgent, BULK.vip, BULK.port, ms);
    const bulkPod = await stream(c.clientAgent, direct, 8085, ms);
    rows.push({
      name: `e2e single-stream throughput via ClusterIP, ${n} services`, value: r2(gbps(bulkProxy)), unit: 'Gbit/s', target: '≥ 5 Gbit/s',
      note: `kernel iptables-legacy ${r2(gbps(bulkKernel))} Gbit/s · svcplane/kernel ${r2(gbps(bulkProxy) / gbps(bulkKernel))} · direct to pod ${r2(gbps(bulkPod))} · proxy CPU ${r2((100 * cpuS) / bulkProxy.ms)}% of one core`,
    });
    rows.push({
      name: 'e2e whole run (setup + all rows)', value: r2((performance.now() - started) / 1000), unit: 's',
      note: `proxy serving after ${r2(proxyStartMs / 1000)} s · kernel rules: render ${r2(k.renderMs / 1000)} s, iptables-legacy-restore ${r2(k.restoreMs / 1000)} s of ${k.lines} lines · load average ${load0} → ${load()}`,
    });
    const code = await c.stopProxy();
    if (code !== 0) console.log(`bench:e2e: proxy exited with ${code}: ${c.lastOutput()}`);
  } finally {
    try {
      await c.destroy();
    } finally {
      if (k) await k.cluster.destroy();
    }
  }
  return rows;
}

if (process.argv[1] && /bench[\\/]e2e\.[jt]s$/.test(process.argv[1])) {
  const rows = await benchE2E();
  const w = Math.max(10, ...rows.map((r) => r.name.length));
  const tw = Math.max(6, ...rows.map((r) => (r.target ?? '').length));
  for (const r of rows) console.log(`${r.name.padEnd(w)}  ${String(r.value).padStart(9)}  ${r.unit.padEnd(7)}  ${(r.target ?? '').padEnd(tw)}  ${r.note ?? ''}`);
  console.log(JSON.stringify({ date: new Date().toISOString(), node: process.version, loadavg: loadavg(), rows }, null, 2));
}
