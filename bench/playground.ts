// bench/playground.ts — the browser playground's engine (host-browser/src/engine, what runs in the
// Web Worker) under Node, in the page's order: the worker's warm-up (engine/warm.ts, which the
// page runs once its first scene is drawn; PLAYGROUND_BENCH_WARM=0 leaves it out), then loading
// the 20,000-Service preset in iptables mode (generate the objects, kube-proxy's sync into the
// core, the rules view, the builder's Service list, and the packet's trace, in one call as the
// page makes it), and single-Service edits in that scene, each explaining the edited Service's
// packet in the same call (its endpoints change; the rules view, the diff and the trace
// update), p50/p99. Also the same edit + trace in a small YAML scene. Each load builds a fresh
// engine; bounded to about a minute (PLAYGROUND_BENCH_LOADS loads, default 2). The edit row's
// note gives the p50 of each phase the engine times (apply = dp.apply, rules view, diff,
// builder, the rules digest, the core trace, trace steps and marks, conntrack; other = the rest
// of the wall time).
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { Playground } from '../host-browser/src/engine/playground.js';
import { Warmer } from '../host-browser/src/engine/warm.js';
import { presetById, scaleVip, type PacketSpec } from '../host-browser/src/presets.js';
import type { WirePacket } from '../host-browser/src/engine/outcomes.js';
import type { BenchRow } from './core.js';

const hr = (): number => Number(process.hrtime.bigint()) / 1e6;
const round = (x: number): number => (x >= 100 ? Math.round(x) : Math.round(x * 10) / 10);

function percentile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
}

const wire = (p: PacketSpec): WirePacket => ({ src: p.src, dst: p.dst, proto: p.proto, sport: p.sport, dport: p.dport, local: p.from === 'node' });

/** Service i's EndpointSlice of the scale scene with one endpoint moved to another address (generation g). */
function editedSlice(i: number, g: number): object {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name: `svc-${i}-abc12`, namespace: 'default', labels: { 'kubernetes.io/service-name': `svc-${i}` } },
    addressType: 'IPv4',
    endpoints: [
      { addresses: [`10.250.${(g >> 8) & 255}.${g & 255}`], conditions: { ready: true }, nodeName: 'node-a' },
      { addresses: [`10.251.${(i >> 8) & 255}.${i & 255}`], conditions: { ready: true }, nodeName: 'node-b' },
    ],
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  };
}

/** Short names of the engine's phases for the edit row's note (the load's, then the packet's). */
const EDIT_PARTS: Record<string, string> = {
  'starting the core': 'start',
  'kube-proxy sync: render rules, compile, swap': 'apply',
  'rules view': 'rules view',
  'diff': 'diff',
  'listing services': 'builder',
  'rules digest': 'digest',
  'core trace': 'trace (dp.trace)',
  'trace view': 'trace steps+marks',
  'conntrack lookup': 'conntrack',
  'conntrack': 'conntrack',
  'conntrack rows': 'conntrack',
};

export async function benchPlayground(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const preset = presetById('scale-20k')!;
  const loads = Math.max(1, Number(process.env.PLAYGROUND_BENCH_LOADS) || 2);
  const loadMs: number[] = [];
  let phases = '';
  let warmed = 'no warm-up';
  if (process.env.PLAYGROUND_BENCH_WARM !== '0') {
    const w = new Warmer();
    while (await w.step());
    warmed = `after the warm-up (${w.report.steps} scenes, ${w.report.ms} ms)`;
  }
  let pg = new Playground();
  for (let k = 0; k < loads; k++) {
    pg = new Playground();
    const t = hr();
    const r = await pg.load({ source: { preset: preset.id }, mode: 'iptables', scheduler: 'rr', fresh: true, explain: { packet: wire(preset.packet), nowMs: 0 } });
    loadMs.push(hr() - t);
    if (!r.packet) throw new Error(`bench playground: no trace (${r.packetError})`);
    if (r.serviceCount !== 20_000 || r.issues.length) throw new Error(`bench playground: ${r.serviceCount} services, ${r.issues.length} issues`);
    phases = r.phases.filter((p) => p.ms >= 5).map((p) => `${p.phase.replace(/:.*/, '')} ${p.ms}`).join(', ');
  }
  rows.push({
    name: 'playground load 20k services (iptables) p50', value: round(percentile(loadMs, 0.5)), unit: 'ms', target: '≤2000',
    note: `engine under Node ${warmed}, ${loads} fresh loads incl. first trace; p99 ${round(percentile(loadMs, 0.99))} ms; last: ${phases} ms`,
  });

  // Single-Service edits in the 20k scene: each moves one endpoint of another Service, then traces it.
  const editMs: number[] = [];
  const parts = new Map<string, number[]>();
  const part = (name: string, ms: number) => {
    const xs = parts.get(name) ?? [];
    if (!parts.has(name)) parts.set(name, xs);
    xs.push(ms);
  };
  const EDITS = 40;
  for (let k = 0; k < EDITS; k++) {
    const i = (k * 7919) % 20_000;
    const t = hr();
    const r = await pg.load({
      source: { preset: preset.id, edits: [editedSlice(i, k + 1)] }, mode: 'iptables', scheduler: 'rr', fresh: false,
      explain: { packet: { src: '10.244.1.5', dst: scaleVip(i), proto: 'tcp', sport: 40000, dport: 80, local: false }, nowMs: 0 },
    });
    const ms = hr() - t;
    editMs.push(ms);
    const pr = r.packet;
    if (!pr) throw new Error(`bench playground edit ${k}: no trace (${r.packetError})`);
    const tr = pr.trace;
    if (r.change.changedServices.length > 2 || !tr.outcomes.some((o) => o.to === `10.250.${((k + 1) >> 8) & 255}.${(k + 1) & 255}:8080`)) {
      throw new Error(`bench playground edit ${k}: ${JSON.stringify(r.change.changedServices)} ${JSON.stringify(tr.outcomes.map((o) => o.to))}`);
    }
    // The load's phases, its 'packet' phase as the packet's own parts.
    const sums = new Map<string, number>();
    for (const ph of [...r.phases.filter((p) => p.phase !== 'packet'), ...pr.phases]) {
      const name = EDIT_PARTS[ph.phase] ?? ph.phase;
      sums.set(name, (sums.get(name) ?? 0) + ph.ms);
    }
    sums.set('other', Math.max(0, ms - [...sums.values()].reduce((a, b) => a + b, 0)));
    for (const [name, x] of sums) part(name, x);
  }
  const breakdown = [...parts].map(([name, xs]) => `${name} ${round(percentile(xs, 0.5))}`).join(', ');
  rows.push({
    name: 'playground 20k: edit one Service + trace p50', value: round(percentile(editMs, 0.5)), unit: 'ms', target: '≤50',
    note: `${warmed}; p99 ${round(percentile(editMs, 0.99))} ms over ${EDITS} edits; p50 per phase (ms): ${breakdown}`,
  });

  // The same in a small YAML scene (what the editor and the form send).
  const small = presetById('clusterip')!;
  const spg = new Playground();
  await spg.load({ source: { yaml: small.yaml! }, mode: 'iptables', scheduler: 'rr', fresh: true });
  const smallMs: number[] = [];
  for (let k = 0; k < 60; k++) {
    const yaml = small.yaml!.replace('10.244.1.13', `10.244.3.${(k % 200) + 20}`);
    const t = hr();
    await spg.load({ source: { yaml }, mode: 'iptables', scheduler: 'rr', fresh: false, explain: { packet: wire(small.packet), nowMs: 0 } });
    smallMs.push(hr() - t);
  }
  rows.push({
    name: 'playground 3-pod YAML scene: edit + trace p50', value: round(percentile(smallMs, 0.5)), unit: 'ms', target: '≤50',
    note: `p99 ${round(percentile(smallMs, 0.99))} ms over 60 edits`,
  });
  return rows;
}

const WORKER_TAG = 'svcplane-bench-playground';

/**
 * benchPlayground() in a worker thread: a V8 heap of its own, as the page's Web Worker has, rather
 * than the heap of a process that has run every other bench (whose live caches then lengthen each
 * garbage collection during the edits).
 */
export function benchPlaygroundIsolated(): Promise<BenchRow[]> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL(import.meta.url), { workerData: WORKER_TAG });
    w.once('message', (rows: BenchRow[]) => resolve(rows));
    w.once('error', reject);
    w.once('exit', (code) => reject(new Error(`bench playground worker exited (${code}) without results`)));
  });
}

if (!isMainThread && workerData === WORKER_TAG) parentPort!.postMessage(await benchPlayground());

