// bench/e2e.ts — `npm run bench:e2e`: the real `svcplane proxy` in a node namespace (the same
// namespaces as tests/e2e), measured from a client outside the node in one run: new connections/s
// (connect, one request line, close) and keep-alive request latency through a ClusterIP, against
// the same backends reached directly (ports behind no Service, so the proxy is not on the path).
// Bounded: a few seconds per row. Root only; otherwise prints why it skipped.
import { readFileSync } from 'node:fs';
import type { BenchRow } from './core.js';
import { netnsSupport } from '../tests/support/netns.js';
import { E2ECluster, BACKENDS } from '../tests/e2e/cluster.js';
import { clusterManifests, VIP } from '../tests/e2e/manifests.js';

const SECONDS = Number(process.env.SVP_BENCH_SECONDS ?? 3);
const CONCURRENCY = 16;

interface LoadResult { ok: number; errors: Record<string, number>; ms: number; p50: number; p99: number }
interface ReqResult { ok: number; ms: number; p50: number; p99: number }

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

export async function benchE2E(): Promise<BenchRow[]> {
  const s = netnsSupport();
  if (!s.ok) {
    console.log(`bench:e2e skipped: ${s.reason}`);
    return [];
  }
  const c = new E2ECluster('bench');
  const rows: BenchRow[] = [];
  try {
    await c.up(clusterManifests(), []);
    const pid = c.proxy!.child.pid!;
    const direct = BACKENDS[0].ip;
    const ms = SECONDS * 1000;
    // Warm-up: JIT, conntrack, ARP.
    await c.clientAgent.call({ op: 'load', host: VIP.web, port: 80, ms: 500, concurrency: 4 });
    await c.clientAgent.call({ op: 'load', host: direct, port: 8082, ms: 500, concurrency: 4 });

    const cpu0 = cpuMs(pid);
    const pkts0 = tunPackets(c);
    const viaProxy = await c.clientAgent.call<LoadResult>({ op: 'load', host: VIP.web, port: 80, ms, concurrency: CONCURRENCY });
    const cpu = cpuMs(pid) - cpu0;
    const pkts = tunPackets(c) - pkts0;
    const toPod = await c.clientAgent.call<LoadResult>({ op: 'load', host: direct, port: 8082, ms, concurrency: CONCURRENCY });
    const cps = (r: LoadResult): number => (r.ok * 1000) / r.ms;
    const errs = (r: LoadResult): string => Object.entries(r.errors).map(([k, v]) => `${k} ${v}`).join(', ') || 'no errors';
    rows.push({
      name: 'e2e new connections/s via ClusterIP', value: r2(cps(viaProxy)), unit: 'conn/s',
      note: `direct to pod ${r2(cps(toPod))} conn/s · proxy/direct ${r2(cps(viaProxy) / cps(toPod))} · ${errs(viaProxy)}`,
    });
    rows.push({
      name: 'e2e proxy CPU per packet (connection churn)', value: r2((cpu * 1000) / Math.max(1, pkts)), unit: 'µs',
      note: `${pkts} packets, ${cpu} ms CPU (user+system, the TUN write runs the kernel's forwarding path)`,
    });
    rows.push({
      name: 'e2e connection latency p50 via ClusterIP', value: r2(viaProxy.p50), unit: 'ms',
      note: `p99 ${r2(viaProxy.p99)} ms · direct p50 ${r2(toPod.p50)} ms, p99 ${r2(toPod.p99)} ms`,
    });

    const reqProxy = await c.clientAgent.call<ReqResult>({ op: 'requests', host: VIP.stream, port: 81, ms, concurrency: CONCURRENCY });
    const reqPod = await c.clientAgent.call<ReqResult>({ op: 'requests', host: direct, port: 8083, ms, concurrency: CONCURRENCY });
    const rps = (r: ReqResult): number => (r.ok * 1000) / r.ms;
    rows.push({
      name: 'e2e keep-alive requests/s via ClusterIP', value: r2(rps(reqProxy)), unit: 'req/s',
      note: `direct to pod ${r2(rps(reqPod))} req/s · proxy/direct ${r2(rps(reqProxy) / rps(reqPod))}`,
    });
    rows.push({
      name: 'e2e request latency p50 via ClusterIP', value: r2(reqProxy.p50), unit: 'ms',
      note: `p99 ${r2(reqProxy.p99)} ms · direct p50 ${r2(reqPod.p50)} ms, p99 ${r2(reqPod.p99)} ms`,
    });
    const code = await c.stopProxy();
    if (code !== 0) console.log(`bench:e2e: proxy exited with ${code}: ${c.lastOutput()}`);
  } finally {
    await c.destroy();
  }
  return rows;
}

if (process.argv[1] && /bench[\\/]e2e\.[jt]s$/.test(process.argv[1])) {
  const rows = await benchE2E();
  const w = Math.max(10, ...rows.map((r) => r.name.length));
  for (const r of rows) console.log(`${r.name.padEnd(w)}  ${String(r.value).padStart(9)}  ${r.unit.padEnd(7)}  ${r.note ?? ''}`);
  console.log(JSON.stringify({ date: new Date().toISOString(), node: process.version, rows }, null, 2));
}
