// bench/e2e.ts — `npm run bench:e2e`: the real `svcplane proxy` in a node namespace (the same
// namespaces as tests/e2e) with SVP_BENCH_SERVICES Services loaded (default 10,000, 2 endpoints
// each, the client's target Services among them), against the kernel's iptables-legacy doing the
// same Services' DNAT with kube-proxy's own rules in a twin set of namespaces (bench/e2e-kernel.ts),
// measured from a client outside the node in one run, each side in turn with the same load
// generators: new connections/s (wrk, `Connection: close`), keep-alive requests/s (wrk) and
// single-stream throughput (iperf3, 1 MiB writes); also the backends reached directly (no Service
// on the path), which shows what the generators and backends manage on their own.
// Bounded: a few seconds per row, about a minute in all. Root, wrk and iperf3 only; otherwise prints
// why it skipped. SVP_BENCH_OFFLOAD=0 runs the proxy with --no-tun-offload; SVP_BENCH_CONNS sets
// the connections per wrk process (default 16).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import type { BenchRow } from './core.js';
import { netnsSupport, missingTools, type Netns } from '../tests/support/netns.js';
import { E2ECluster, BACKENDS } from '../tests/e2e/cluster.js';
import { scaleManifests, FILL_CIDR, HTTP, IPERF } from '../tests/e2e/manifests.js';
import { startKernelTwin, TWIN_TOOLS, type KernelTwin } from './e2e-kernel.js';

const SECONDS = Number(process.env.SVP_BENCH_SECONDS ?? 3);
const SERVICES = Number(process.env.SVP_BENCH_SERVICES ?? 10_000);
const OFFLOAD = process.env.SVP_BENCH_OFFLOAD !== '0';
/** wrk processes per row (one thread each) and connections per process. */
const WRK_PROCS = 2;
const WRK_CONNS = Number(process.env.SVP_BENCH_CONNS ?? 16);
/** iperf3 servers in backend 1: behind the Service, and behind none (the direct baseline). */
const IPERF_DIRECT_PORT = 5202;
const TOOLS = ['wrk', 'iperf3'];

interface WrkResult { rps: number; requests: number; errors: number; p50: number; p99: number }
const r2 = (x: number): number => +x.toFixed(x >= 100 ? 0 : 2);

/** CPU time (ms) a process has used, user and system: /proc/<pid>/stat fields 14 and 15, in clock ticks (100/s). */
function cpuSplit(pid: number): { user: number; system: number } {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return { user: Number(f[11]) * 10, system: Number(f[12]) * 10 };
}
function cpuMs(pid: number): number {
  const c = cpuSplit(pid);
  return c.user + c.system;
}

/** Packets the proxy read from its device, from its /metrics. */
function tunPackets(c: E2ECluster): number {
  const m = /^svcplane_tun_packets_total\{direction="in"\} (\d+)/m.exec(c.nodeExec(['curl', '-sf', 'http://127.0.0.1:10249/metrics']));
  return m ? Number(m[1]) : NaN;
}

const size = (n: number): string => (n >= 1000 ? `${n / 1000}k` : String(n));
const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' ');

/** Runs `argv` in a namespace and resolves with its stdout (rejects on a non-zero exit). */
function run(ns: Netns, argv: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns.name, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(t);
      if (code === 0) resolve(out);
      else reject(new Error(`${argv.join(' ')} in ${ns.name} exited ${code}: ${err.trim() || out.trim()}`));
    });
  });
}

/** wrk's duration text ("812.00us", "1.23ms", "2.00s") in ms. */
function wrkMs(text: string | undefined): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text ?? '');
  if (!m) return NaN;
  return Number(m[1]) * ({ us: 0.001, ms: 1, s: 1000, m: 60_000 } as Record<string, number>)[m[2]!]!;
}

/**
 * WRK_PROCS wrk processes at once from namespace `ns`, one thread and WRK_CONNS connections each,
 * spread over `urls`; requests/s summed, latency percentiles the worst process's.
 */
async function wrk(ns: Netns, urls: string[], close: boolean): Promise<WrkResult> {
  const outs = await Promise.all(Array.from({ length: WRK_PROCS }, (_, i) => run(ns, [
    'wrk', '-t1', `-c${WRK_CONNS}`, `-d${SECONDS}s`, '--latency', '--timeout', '2s',
    ...(close ? ['-H', 'Connection: close'] : []), urls[i % urls.length]!,
  ], SECONDS * 1000 + 15_000)));
  const res: WrkResult = { rps: 0, requests: 0, errors: 0, p50: 0, p99: 0 };
  for (const o of outs) {
    res.rps += Number(/Requests\/sec:\s+([\d.]+)/.exec(o)?.[1] ?? NaN);
    res.requests += Number(/(\d+) requests in/.exec(o)?.[1] ?? NaN);
    const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(o);
    if (se) res.errors += Number(se[1]) + Number(se[2]) + Number(se[3]) + Number(se[4]);
    res.errors += Number(/Non-2xx or 3xx responses: (\d+)/.exec(o)?.[1] ?? 0);
    res.p50 = Math.max(res.p50, wrkMs(/^\s+50%\s+(\S+)/m.exec(o)?.[1]));
    res.p99 = Math.max(res.p99, wrkMs(/^\s+99%\s+(\S+)/m.exec(o)?.[1]));
  }
  return res;
}

/** One iperf3 TCP stream of 1 MiB writes for SECONDS; the receiver's Gbit/s. */
async function iperf(ns: Netns, host: string, port: number): Promise<number> {
  const out = await run(ns, ['iperf3', '-c', host, '-p', String(port), '-t', String(SECONDS), '-l', '1M', '-J'], SECONDS * 1000 + 15_000);
  const j = JSON.parse(out) as { end?: { sum_received?: { bits_per_second?: number } }; error?: string };
  const bps = j.end?.sum_received?.bits_per_second;
  if (!(bps! > 0)) throw new Error(`iperf3 to ${host}:${port}: ${j.error ?? 'no result'}`);
  return bps! / 1e9;
}

/** iperf3 servers in backend 1 of `c`: on the Service's target port and on the direct one. */
function startIperfServers(c: E2ECluster): ChildProcess[] {
  return [IPERF.port, IPERF_DIRECT_PORT].map((port) =>
    spawn('ip', ['netns', 'exec', c.backends[0]!.name, 'iperf3', '-s', '-p', String(port)], { stdio: 'ignore' }));
}

async function waitListening(c: E2ECluster, ports: number[]): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const ss = c.scope.must(c.backends[0]!, ['ss', '-ltnH']);
    if (ports.every((p) => ss.includes(`:${p} `))) return;
    if (Date.now() > deadline) throw new Error(`iperf3 servers not listening: ${ss}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function benchE2E(): Promise<BenchRow[]> {
  const s = netnsSupport();
  const missing = s.ok ? missingTools([...TWIN_TOOLS, ...TOOLS]) : [];
  if (!s.ok || missing.length) {
    console.log(`bench:e2e skipped: ${s.ok ? `missing tools: ${missing.join(', ')} (apt-get install wrk iperf3 iptables nfacct)` : s.reason}`);
    return [];
  }
  const started = performance.now();
  const load0 = load();
  const yaml = scaleManifests(SERVICES);
  const n = size(SERVICES);
  const c = new E2ECluster('bench');
  let k: KernelTwin | null = null;
  const servers: ChildProcess[] = [];
  const rows: BenchRow[] = [];
  try {
    await c.build();
    c.writeManifests(yaml);
    let t = performance.now();
    await c.startProxy(['--service-cidr', FILL_CIDR, ...(OFFLOAD ? [] : ['--no-tun-offload'])], { startMs: 180_000 });
    const proxyStartMs = performance.now() - t;
    k = await startKernelTwin(yaml);
    const kc = k.cluster;
    servers.push(...startIperfServers(c), ...startIperfServers(kc));
    await waitListening(c, [IPERF.port, IPERF_DIRECT_PORT]);
    await waitListening(kc, [IPERF.port, IPERF_DIRECT_PORT]);
    const pid = c.proxy!.child.pid!;
    const vip = `http://${HTTP.vip}:${HTTP.port}/`;
    // The direct baseline spreads over both backends as the Service does (port 8087: no Service).
    const pods = BACKENDS.map((b) => `http://${b.ip}:8087/`);
    // Warm-up: JIT, conntrack, ARP, on both sides.
    for (const cl of [c, kc]) {
      await run(cl.client, ['wrk', '-t1', '-c4', '-d1s', '-H', 'Connection: close', vip], 20_000);
      await run(cl.client, ['wrk', '-t1', '-c4', '-d1s', pods[0]!], 20_000);
    }

    // 1. New connections: svcplane, kernel, direct.
    const cpu0 = cpuSplit(pid);
    const pkts0 = tunPackets(c);
    const connProxy = await wrk(c.client, [vip], true);
    const cpu1 = cpuSplit(pid);
    const cpu = cpu1.user + cpu1.system - cpu0.user - cpu0.system;
    const sysShare = (cpu1.system - cpu0.system) / Math.max(1, cpu);
    const pkts = tunPackets(c) - pkts0;
    const connKernel = await wrk(kc.client, [vip], true);
    const connPod = await wrk(c.client, pods, true);
    const errs = (r: WrkResult): string => (r.errors ? `${r.errors} errors` : 'no errors');
    rows.push({
      name: `e2e new connections/s via ClusterIP, ${n} services`, value: r2(connProxy.rps), unit: 'conn/s', target: '≥ 1.5× kernel iptables-legacy',
      note: `kernel iptables-legacy ${r2(connKernel.rps)} conn/s · svcplane/kernel ${r2(connProxy.rps / connKernel.rps)} · direct to pods ${r2(connPod.rps)}, direct/kernel ${r2(connPod.rps / connKernel.rps)} (the ceiling: the load generators and backends on their own, no Service on the path) · svcplane ${errs(connProxy)}, kernel ${errs(connKernel)}`,
    });
    rows.push({
      name: 'e2e proxy CPU per packet (connection churn)', value: r2((cpu * 1000) / Math.max(1, pkts)), unit: 'µs',
      note: `${pkts} packets (${r2(pkts / Math.max(1, connProxy.requests))} per connection), ${cpu} ms CPU in ${SECONDS} s, ${r2(100 * sysShare)}% of it system time (the TUN write runs the kernel's forwarding path)`,
    });
    rows.push({
      name: 'e2e connection latency p50 via ClusterIP', value: r2(connProxy.p50), unit: 'ms',
      note: `p99 ${r2(connProxy.p99)} ms · kernel p50 ${r2(connKernel.p50)}, p99 ${r2(connKernel.p99)} ms · direct p50 ${r2(connPod.p50)}, p99 ${r2(connPod.p99)} ms`,
    });

    // 2. Keep-alive requests.
    const reqProxy = await wrk(c.client, [vip], false);
    const reqKernel = await wrk(kc.client, [vip], false);
    const reqPod = await wrk(c.client, pods, false);
    rows.push({
      name: `e2e keep-alive requests/s via ClusterIP, ${n} services`, value: r2(reqProxy.rps), unit: 'req/s', target: '≥ 0.5× kernel iptables-legacy',
      note: `kernel iptables-legacy ${r2(reqKernel.rps)} req/s · svcplane/kernel ${r2(reqProxy.rps / reqKernel.rps)} · direct to pods ${r2(reqPod.rps)} · svcplane ${errs(reqProxy)}, kernel ${errs(reqKernel)}`,
    });
    rows.push({
      name: 'e2e request latency p50 via ClusterIP', value: r2(reqProxy.p50), unit: 'ms',
      note: `p99 ${r2(reqProxy.p99)} ms · kernel p50 ${r2(reqKernel.p50)}, p99 ${r2(reqKernel.p99)} ms · direct p50 ${r2(reqPod.p50)}, p99 ${r2(reqPod.p99)} ms`,
    });

    // 3. One TCP stream (iperf3).
    const cpuS0 = cpuMs(pid);
    const bulkProxy = await iperf(c.client, IPERF.vip, IPERF.port);
    const cpuS = cpuMs(pid) - cpuS0;
    const bulkKernel = await iperf(kc.client, IPERF.vip, IPERF.port);
    const bulkPod = await iperf(c.client, BACKENDS[0].ip, IPERF_DIRECT_PORT);
    rows.push({
      name: `e2e single-stream throughput via ClusterIP, ${n} services`, value: r2(bulkProxy), unit: 'Gbit/s', target: '≥ 5 Gbit/s',
      note: `kernel iptables-legacy ${r2(bulkKernel)} Gbit/s · svcplane/kernel ${r2(bulkProxy / bulkKernel)} · direct to pod ${r2(bulkPod)} · proxy CPU ${r2((100 * cpuS) / (SECONDS * 1000))}% of one core · TUN offloads ${OFFLOAD ? 'on' : 'off'}`,
    });
    rows.push({
      name: 'e2e whole run (setup + all rows)', value: r2((performance.now() - started) / 1000), unit: 's',
      note: `proxy serving after ${r2(proxyStartMs / 1000)} s · kernel rules: render ${r2(k.renderMs / 1000)} s, iptables-legacy-restore ${r2(k.restoreMs / 1000)} s of ${k.lines} lines · load average ${load0} → ${load()}`,
    });
    const code = await c.stopProxy();
    if (code !== 0) console.log(`bench:e2e: proxy exited with ${code}: ${c.lastOutput()}`);
  } finally {
    for (const p of servers) p.kill('SIGKILL');
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
