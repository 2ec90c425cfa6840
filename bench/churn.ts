// bench/churn.ts — memory of a long-running sync loop: a cluster whose pods keep moving (one
// EndpointSlice's endpoints get new addresses at every sync, as rolling updates and rescheduled
// pods do) synced through dp.apply in each mode, the heap after a full GC and the core's memory
// measured after a warm-up and again after CHURN_SYNCS more syncs. A proxy's memory must follow
// the cluster's size, not the number of syncs it has made: the row's value is the heap growth per
// sync (0 when flat, within the noise of one GC's leftovers). Stale chains are cleaned as the proxy
// does. SVP_BENCH_CHURN_SYNCS changes the sync count, SVP_BENCH_CHURN_MODES=iptables,… the modes.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Dataplane, type ApplyOptions } from '../host-node/dataplane.js';
import type { BenchRow } from './core.js';

const SERVICES = 300;
const WARM_SYNCS = 1000;
const CHURN_SYNCS = Number(process.env.SVP_BENCH_CHURN_SYNCS ?? 10_000);
const ONLY = process.env.SVP_BENCH_CHURN_MODES?.split(',') ?? null;
const MODES = (['iptables', 'ipvs', 'direct'] as const).filter((m) => !ONLY || ONLY.includes(m));

const hr = (): number => Number(process.hrtime.bigint()) / 1e6;
const ip4 = (k: number): string => `198.19.${(k >> 8) & 255}.${k & 255}`;

function service(i: number): object {
  return {
    apiVersion: 'v1', kind: 'Service', metadata: { name: `svc-${i}`, namespace: 'churn' },
    spec: { clusterIP: `198.18.${i >> 8}.${i & 255}`, ports: [{ name: 'http', port: 80, protocol: i % 2 ? 'UDP' : 'TCP', targetPort: 8080 }] },
  };
}

/** Service i's slice in generation g: its two endpoints at addresses no earlier generation used for it. */
function slice(i: number, g: number): object {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name: `svc-${i}-a`, namespace: 'churn', labels: { 'kubernetes.io/service-name': `svc-${i}` } },
    addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: i % 2 ? 'UDP' : 'TCP' }],
    endpoints: [0, 1].map((e) => ({ addresses: [ip4((2 * i + e + 2 * SERVICES * g) % 65_000)], nodeName: 'node-a', conditions: { ready: true } })),
  };
}

/** A full GC (settled: weak references and finalizers run between two). */
async function collect(gc: () => void): Promise<number> {
  gc();
  await new Promise((r) => setImmediate(r));
  gc();
  return process.memoryUsage().heapUsed;
}

async function one(mode: (typeof MODES)[number], gc: () => void): Promise<BenchRow> {
  const dp = await Dataplane.create({ nodeIPs: ['198.18.200.1'], podCIDR: '198.19.0.0/16', conntrackCapacity: 1 << 12, seed: 1 });
  const opts: ApplyOptions = { mode, nodeName: 'node-a', cleanupStaleChains: true };
  const base: object[] = [];
  for (let i = 0; i < SERVICES; i++) base.push(service(i), slice(i, 0));
  dp.apply(base, opts);
  let n = 0;
  const sync = async (): Promise<void> => {
    const i = n % SERVICES;
    const r = dp.apply([slice(i, 1 + Math.floor(n / SERVICES))], { ...opts, delta: {} });
    if (r.issues.length) throw new Error(`bench churn ${mode}: ${JSON.stringify(r.issues[0])}`);
    n++;
    // As a proxy's event loop would: timers and finalizers get their turn between syncs.
    if (n % 100 === 0) await new Promise((res) => setImmediate(res));
  };
  for (let k = 0; k < WARM_SYNCS; k++) await sync();
  const heap0 = await collect(gc);
  const core0 = dp.core.memory.buffer.byteLength;
  const t = hr();
  for (let k = 0; k < CHURN_SYNCS; k++) await sync();
  const ms = hr() - t;
  const heap1 = await collect(gc);
  const core1 = dp.core.memory.buffer.byteLength;
  const perSync = (heap1 - heap0) / CHURN_SYNCS;
  const mb = (x: number): string => (x / 1e6).toFixed(1);
  return {
    name: `churn ${mode} ${SERVICES} svc: heap growth per sync`, value: Math.round(perSync), unit: 'B/sync',
    note: `${CHURN_SYNCS} syncs each moving one EndpointSlice's endpoints to new addresses, after ${WARM_SYNCS}: heap ${mb(heap0)} → ${mb(heap1)} MB, core memory ${mb(core0)} → ${mb(core1)} MB; ${(ms / CHURN_SYNCS).toFixed(2)} ms per sync`,
  };
}

export async function benchChurn(): Promise<BenchRow[]> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const rows: BenchRow[] = [];
  for (const mode of MODES) rows.push(await one(mode, gc));
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchChurn()) console.log(`${r.name.padEnd(44)} ${String(r.value).padStart(8)} ${r.unit}  ${r.note}`);
}
