// bench/sync.ts — control-plane sync: Services + EndpointSlices (decoded objects) → the live core
// tables through dp.apply, in direct, iptables and ipvs modes, at 1k / 10k / 20k services with 2 and 10
// endpoints each: the full first sync (the whole object list: decode, trackers, model, render,
// core), then one Service added, one Service's endpoints changed, one Service removed on top of
// that, handed in as a watch would (apply's `delta` input), a full resync of the model (a node
// zone change), and a relist in which every Service's endpoints moved (in direct mode also with
// 100,000 live UDP flows to 5,000 UDP Services, which the sync deletes). Each single change is the
// median of a few. The full sync's note gives the process CPU and the garbage collector's pauses
// in it. Bounded to well under two minutes: iptables mode runs fewer repetitions (each single
// change restores KUBE-SERVICES whole, as kube-proxy's partial sync does).
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Dataplane, type ApplyOptions } from '../host-node/dataplane.js';
import { ProxyObjects } from '../host-node/io/proxy-sink.js';
import { loadObjects } from '../host-node/kube/objects.js';
import { buildPacket } from '../host-node/core/packet.js';
import type { BenchRow } from './core.js';
import { GcPauses } from './gc-pauses.js';

const hr = (): number => Number(process.hrtime.bigint()) / 1e6;

const ip4 = (base: [number, number], k: number): string => `${base[0]}.${base[1] + (k >> 16)}.${(k >> 8) & 255}.${k & 255}`;

/** The bench cluster's Service i (bench/show.ts lists the same cluster). */
export function svcObject(i: number): object {
  return {
    apiVersion: 'v1', kind: 'Service',
    metadata: { name: `svc-${i}`, namespace: 'bench' },
    spec: {
      // Every 10th a NodePort while the default range lasts.
      type: i % 10 === 0 && i / 10 < 2768 ? 'NodePort' : 'ClusterIP',
      clusterIP: ip4([198, 18], i + 1),
      ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080, ...(i % 10 === 0 && i / 10 < 2768 ? { nodePort: 30000 + i / 10 } : {}) }],
    },
  };
}

/** Service i's EndpointSlice of `per` endpoints (`gen` moves them). */
export function sliceObject(i: number, per: number, gen = 0): object {
  const endpoints = [];
  for (let e = 0; e < per; e++) {
    // Pod addresses in 198.19.0.0/16, reused across services beyond 65,000 endpoints.
    const k = (i * per + e + gen * 7919) % 65000;
    endpoints.push({ addresses: [ip4([198, 19], k)], nodeName: e % 2 === 0 ? 'node-a' : 'node-b', conditions: { ready: true } });
  }
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name: `svc-${i}-a`, namespace: 'bench', labels: { 'kubernetes.io/service-name': `svc-${i}` } },
    addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }], endpoints,
  };
}

type Mode = 'direct' | 'iptables' | 'ipvs';
const MODES: readonly Mode[] = ['direct', 'iptables', 'ipvs'];

const gc = new GcPauses();

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number): number => (x >= 100 ? Math.round(x) : x >= 1 ? Math.round(x * 100) / 100 : Math.round(x * 1000) / 1000);

async function one(mode: Mode, n: number, per: number, reps: number): Promise<BenchRow[]> {
  const dp = await Dataplane.create({ nodeIPs: ['198.18.200.1'], podCIDR: '198.19.0.0/16', conntrackCapacity: 1 << 12, seed: 1 });
  // IPVS pools sized up front for every virtual server (node ports add one per node address) and
  // destination, so no sync in the timings grows them.
  if (mode === 'ipvs') dp.ipvs({ services: 2 * n + 1024, destinations: 2 * n * per + 4096 });
  const opts: ApplyOptions = { mode, nodeName: 'node-a' };
  const objs: object[] = [];
  for (let i = 0; i < n; i++) objs.push(svcObject(i), sliceObject(i, per));
  const cpu0 = process.cpuUsage();
  const at0 = performance.now();
  let t = hr();
  const r = dp.apply(objs, opts);
  const full = hr() - t;
  const cpu = process.cpuUsage(cpu0);
  const fullCpu = (cpu.user + cpu.system) / 1000;
  const fullGc = await gc.between(at0, performance.now());
  if (r.issues.length > 0) throw new Error(`bench sync: ${JSON.stringify(r.issues[0])}`);
  const check = (res: ReturnType<Dataplane['apply']>, what: string) => {
    const f = res.families.find((x) => x.family === 4);
    if (!f || f.changedServices.length !== 1) throw new Error(`bench sync ${mode} ${what}: expected one changed service, got ${JSON.stringify(f?.changedServices)}`);
  };
  const add: number[] = [];
  const update: number[] = [];
  const remove: number[] = [];
  for (let k = 0; k < reps; k++) {
    const extra = n + k;
    const added = [svcObject(extra), sliceObject(extra, per)];
    t = hr();
    check(dp.apply(added, { ...opts, delta: {} }), 'add');
    add.push(hr() - t);

    const victim = (k * 7919) % n;
    const changed = [sliceObject(victim, per, k + 1)];
    t = hr();
    check(dp.apply(changed, { ...opts, delta: {} }), 'update');
    update.push(hr() - t);

    const removed = [`Service bench/svc-${extra}`, `EndpointSlice bench/svc-${extra}-a`];
    t = hr();
    check(dp.apply([], { ...opts, delta: { removed } }), 'remove');
    remove.push(hr() - t);
  }
  // A full resync of everything already in the model (kube-proxy resyncs fully when the node's
  // zone label changes): render + core for every Service, without decoding objects.
  const resync: number[] = [];
  const node = (zone: string) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a', labels: { 'topology.kubernetes.io/zone': zone } } });
  const zones = ['a', 'b', 'c'].slice(0, mode === 'direct' ? 3 : 1);
  for (const zone of zones) {
    t = hr();
    const res = dp.apply([node(zone)], { ...opts, delta: {} });
    resync.push(hr() - t);
    if (!res.families.find((x) => x.family === 4)?.full) throw new Error(`bench sync ${mode}: a zone change did not resync fully`);
  }
  // A relist (after 410 Gone, or the proxy's restart) in which every Service's endpoints moved:
  // the whole list again, each Service a change of its own (a partial sync of all of them).
  const relisted: object[] = [node(zones.at(-1)!)];
  for (let i = 0; i < n; i++) relisted.push(svcObject(i), sliceObject(i, per, reps + 1));
  t = hr();
  const rel = dp.apply(relisted, opts);
  const relist = hr() - t;
  if (rel.families.find((x) => x.family === 4)?.changedServices.length !== n) throw new Error(`bench sync ${mode}: the relist did not change every Service`);
  const name = `sync ${mode} ${n / 1000}k svc x${per} ep`;
  const target = (ms: number) => (mode === 'direct' && n === 20000 ? `≤ ${ms} ms` : undefined);
  const note = `median of ${reps}; dp.apply of the change (delta)`;
  return [
    { name: `${name}: full`, value: round(full), unit: 'ms', ...(target(100) ? { target: target(100) } : {}), note: `first sync: decode objects, trackers, model, render, core; process CPU ${Math.round(fullCpu)} ms, GC pauses ${Math.round(fullGc)} ms (load avg ${loadavg()[0]!.toFixed(1)})` },
    { name: `${name}: resync`, value: round(median(resync)), unit: 'ms', note: 'full resync from the model (node zone change): render + core' },
    { name: `${name}: relist, all endpoints moved`, value: round(relist), unit: 'ms', note: 'the whole object list again (decode, trackers, model, core), every Service with new endpoints' },
    { name: `${name}: add one`, value: round(median(add)), unit: 'ms', ...(target(1) ? { target: target(1) } : {}), note },
    { name: `${name}: update one`, value: round(median(update)), unit: 'ms', ...(target(1) ? { target: target(1) } : {}), note },
    { name: `${name}: remove one`, value: round(median(remove)), unit: 'ms', ...(target(1) ? { target: target(1) } : {}), note },
  ];
}

/**
 * `svcplane proxy`'s own sync path at `n` Services: the objects as its Source hands them over
 * (ProxyObjects), the Dataplane given only what changed since the last sync (apply's delta), then
 * the host view (routes, reply paths, health check ports) worked out for the changed Services.
 * The first sync hands everything; then one EndpointSlice changes at a time.
 */
async function proxyOne(mode: Mode, n: number, per: number, reps: number): Promise<BenchRow[]> {
  const dp = await Dataplane.create({ nodeIPs: ['198.18.200.1'], podCIDR: '198.19.0.0/16', conntrackCapacity: 1 << 12, seed: 1 });
  if (mode === 'ipvs') dp.ipvs({ services: 2 * n + 1024, destinations: 2 * n * per + 4096 });
  const po = new ProxyObjects('node-a');
  const raw: object[] = [];
  for (let i = 0; i < n; i++) raw.push(svcObject(i), sliceObject(i, per));
  const set = loadObjects(raw);
  for (const s of set.services) po.onService(null, s);
  for (const e of set.endpointSlices) po.onEndpointSlice(e);
  po.markServicesSynced();
  po.markEndpointSlicesSynced();
  const sync = (): void => {
    const { result } = po.sync(dp, { mode, nodeName: 'node-a' });
    if (result.issues.length > 0) throw new Error(`bench proxy sync: ${JSON.stringify(result.issues[0])}`);
  };
  let t = hr();
  sync();
  const first = hr() - t;
  const one: number[] = [];
  for (let k = 0; k < reps; k++) {
    const changed = loadObjects([sliceObject((k * 7919) % n, per, k + 1)]).endpointSlices[0]!;
    t = hr();
    po.onEndpointSlice(changed);
    sync();
    one.push(hr() - t);
  }
  // The node's zone changes: a full sync of every Service, most of whose host view stays.
  const resync: number[] = [];
  for (const zone of ['a', 'b', 'c']) {
    po.onNode({ kind: 'Node', metadata: { name: 'node-a', namespace: '', labels: { 'topology.kubernetes.io/zone': zone }, annotations: {}, deletionTimestamp: null }, spec: { podCIDRs: [], taints: [] }, status: { addresses: [] } });
    t = hr();
    sync();
    resync.push(hr() - t);
  }
  const name = `proxy sync ${mode} ${n / 1000}k svc x${per} ep`;
  return [
    { name: `${name}: first`, value: round(first), unit: 'ms', note: 'svcplane proxy: every object to the core, then the host view (routes, reply paths, health ports)' },
    { name: `${name}: zone change`, value: round(median(resync)), unit: 'ms', note: 'median of 3; the node\'s zone label changes: every Service synced again, then the host view (unchanged Services keep theirs)' },
    {
      name: `${name}: one slice changed`, value: round(median(one)), unit: 'ms', ...(mode === 'direct' ? { target: '≤ 1 ms' } : {}),
      note: `median of ${reps}; the change alone to the core (apply delta), then the host view of that Service; max ${round(Math.max(...one))} ms`,
    },
  ];
}

/**
 * Stale UDP flows after a relist in which every endpoint of `n` UDP Services moved, with `flows`
 * live UDP flows through them: the direct-mode sync that deletes the flows to the endpoints that
 * left (one walk of the conntrack table for all of them), and, on a twin dataplane, the same
 * deletions made one endpoint at a time (a walk each, as a flush per endpoint does).
 */
async function udpRelist(n: number, flows: number): Promise<BenchRow[]> {
  const svc = (i: number) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: `u-${i}`, namespace: 'bench' }, spec: { clusterIP: ip4([198, 18], i + 1), ports: [{ name: 'dns', port: 53, protocol: 'UDP', targetPort: 5353 }] } });
  const slice = (i: number, gen: number) => ({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: `u-${i}-a`, namespace: 'bench', labels: { 'kubernetes.io/service-name': `u-${i}` } },
    addressType: 'IPv4', ports: [{ name: 'dns', port: 5353, protocol: 'UDP' }],
    endpoints: [0, 1].map((e) => ({ addresses: [ip4([198, 19], (2 * i + e + gen * 7919) % 65000)], nodeName: 'node-a', conditions: { ready: true } })),
  });
  const objects = (gen: number) => { const o: object[] = []; for (let i = 0; i < n; i++) o.push(svc(i), slice(i, gen)); return o; };
  const opts: ApplyOptions = { mode: 'direct', nodeName: 'node-a' };
  const made = await Promise.all([0, 1].map(async () => {
    const dp = await Dataplane.create({ nodeIPs: ['198.18.200.1'], podCIDR: '198.19.0.0/16', conntrackCapacity: 1 << 18, seed: 1 });
    dp.apply(objects(0), opts);
    for (let b = 0; b < flows; b += 256) {
      const batch: Uint8Array[] = [];
      for (let k = b; k < Math.min(flows, b + 256); k++) batch.push(buildPacket({ src: ip4([198, 20], k), dst: ip4([198, 18], (k % n) + 1), proto: 'udp', sport: 1024 + (k % 60000), dport: 53, payload: new Uint8Array(8) }));
      dp.processBatch(batch, 1000);
    }
    return dp;
  }));
  const [dp, twin] = made as [Dataplane, Dataplane];
  const next = objects(1);
  let t = hr();
  const r = dp.apply(next, opts);
  const sync = hr() - t;
  // The twin: the endpoints' flows deleted one endpoint at a time (what the sync deletes), timed alone.
  let one = 0;
  t = hr();
  for (let i = 0; i < n; i++) for (let e = 0; e < 2; e++) one += twin.flushEndpoint(ip4([198, 19], (2 * i + e) % 65000), 5353);
  const single = hr() - t;
  if (r.flushed !== flows || one !== flows) throw new Error(`bench sync udp: flushed ${r.flushed} and ${one} of ${flows} flows`);
  return [{
    name: `sync direct ${n / 1000}k UDP svc: relist, stale flows`, value: round(sync), unit: 'ms',
    note: `every endpoint moved, ${flows} flows to them deleted in one walk of the table (the whole sync); the same ${2 * n} endpoints' flows deleted a walk per endpoint: ${round(single)} ms`,
  }];
}

// iptables and ipvs modes at 10k × 10 and 20k services take long (rule text rendered, parsed and
// compiled for every sync); SVP_BENCH_SYNC_ALL=1 runs those too. SVP_BENCH_SYNC_SIZES=20000x2,1000x10
// runs only those sizes (services x endpoints), in every mode asked for.
const only = process.env.SVP_BENCH_SYNC_SIZES?.split(',').map((s) => s.split('x').map(Number) as [number, number]);
const SLOW: Array<[number, number]> = process.env.SVP_BENCH_SYNC_ALL === '1'
  ? [[1000, 2], [1000, 10], [10000, 2], [10000, 10], [20000, 2], [20000, 10]]
  : [[1000, 2], [1000, 10], [10000, 2]];
const SIZES: Record<Mode, Array<[number, number]>> = only ? { direct: only, iptables: only, ipvs: only } : {
  direct: [[1000, 2], [1000, 10], [10000, 2], [10000, 10], [20000, 2], [20000, 10]],
  iptables: SLOW,
  ipvs: SLOW,
};

export async function benchSync(modes: readonly Mode[] = MODES): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  gc.start();
  try {
    for (const mode of modes) {
      for (const [n, per] of SIZES[mode]) {
        const t = hr();
        rows.push(...(await one(mode, n, per, mode === 'iptables' ? 3 : 7)));
        process.stderr.write(`bench sync ${mode} ${n} x${per}: ${Math.round(hr() - t)} ms\n`);
      }
      // The node proxy's own path, at the largest size this mode ran.
      const [n, per] = SIZES[mode].reduce((a, b) => (b[0] > a[0] ? b : a));
      rows.push(...(await proxyOne(mode, n, per, mode === 'direct' ? 15 : 5)));
      if (mode === 'direct') rows.push(...(await udpRelist(5000, 100000)));
    }
  } finally {
    gc.stop();
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const modes = process.argv.slice(2).filter((m): m is Mode => (MODES as readonly string[]).includes(m));
  for (const r of await benchSync(modes.length > 0 ? modes : undefined)) console.log(r.name.padEnd(44), String(r.value).padStart(10), r.unit, r.target ?? '', r.note ?? '');
}
