// bench/kernel-iptables.ts — svcplane's iptables mode against the kernel's iptables-legacy on the
// same kube-proxy-shaped rulesets (1k–30k Services, 2 endpoints each, every 10th a NodePort,
// rendered by renderIptables): (a) a full sync loaded with --noflush over kube-proxy's base jumps,
// and the same text again; (b) one Service added and (c) one removed through kube-proxy's own
// partial-sync text (KUBE-SERVICES rewritten whole, the Service's chains, -X for stale ones),
// with the garbage collector's pauses inside svcplane's timed restores;
// (d) the cost of a new connection's first packet: svcplane's core on batches of new SYNs
// (processBatch, ns/packet, p50/p99 by wall clock over batches and by the core's thread's CPU time
// over groups of 8 batches, so that time other processes and V8's own threads took is visible
// apart, and the same SYNs resent as conntrack hits; once per process the core's code is warmed
// up first, bench/first-packet.ts warmCore) and the kernel's time per SYN sent through a node namespace (injection and
// forwarding included; the no-rules baseline is its own row). Each row carries svcplane's number
// as its value and the kernel's beside it with kernel / svcplane. SVP_BENCH_SIZES=1000,20000
// limits the sizes. Needs root (network namespaces); otherwise prints that it skipped and returns
// no rows.
import type { BenchRow } from './core.js';
import { GcPauses } from './gc-pauses.js';
import { netnsSupport, missingTools } from '../tests/support/netns.js';
import { KernelNode, KERNEL_TOOLS } from '../tests/support/kernel-node.js';
import {
  BATCH, CPU_CLOCK, CPU_GROUP, hr, median, pct, syns, makeDataplane, svcplaneFirstPacket, warmCore,
} from './first-packet.js';
import {
  benchCluster, proxyStateFor, renderSync, natChainsAfter, Rng, type Cluster,
} from '../tests/support/kube-gen.js';
import type { ProxyState } from '../host-node/kube/index.js';

export interface PairRow extends BenchRow {
  kernel: number;
  /** kernel / svcplane: above 1, svcplane is faster. */
  ratio: number;
}

const gc = new GcPauses();

const ONLY = process.env.SVP_BENCH_SIZES?.split(',').map(Number) ?? null;
const RESTORE_SIZES = [1000, 5000, 10000, 20000].filter((n) => !ONLY || ONLY.includes(n));
const PACKET_SIZES = [1, 1000, 5000, 10000, 20000, 30000].filter((n) => !ONLY || ONLY.includes(n));
const K_BATCH = 250;
/** Partial syncs measured, after PARTIAL_WARM ones reported apart (the first partial restores
 *  after a full one run cold: code not yet optimized for that path, the core's memory growing). */
const PARTIAL_REPS = 7;
const PARTIAL_WARM = 3;

const size = (n: number): string => (n >= 1000 ? `${n / 1000}k` : String(n));
const fmt = (x: number): number => +(x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

function pair(name: string, unit: string, svcplane: number, kernel: number, extra = ''): PairRow {
  const ratio = +(kernel / svcplane).toFixed(2);
  return {
    name, unit, value: fmt(svcplane), kernel: fmt(kernel), ratio,
    note: `kernel ${fmt(kernel)} ${unit} · kernel/svcplane ${ratio}${extra ? ` · ${extra}` : ''}`,
  };
}

/** Kernel: ns per SYN of each batch injected into the node (all must reach conntrack). */
async function kernelFirstPacket(k: KernelNode, cluster: Cluster | null, budgetMs: number): Promise<number[]> {
  await k.flushConntrack();
  const rng = new Rng(11);
  const perBatch: number[] = [];
  let sent = 0;
  let spent = 0;
  const target = cluster ?? benchCluster(1);
  while ((spent < budgetMs && sent < 40 * K_BATCH) || perBatch.length < 5) {
    const pkts = syns(target, K_BATCH, rng, 100_000 + sent);
    const ms = await k.blast(pkts);
    sent += pkts.length;
    spent += ms;
    perBatch.push((ms * 1e6) / pkts.length);
  }
  const n = await k.conntrackCount();
  if (n < sent) throw new Error(`kernel first-packet bench: ${n} of ${sent} SYNs reached conntrack (the node dropped some)`);
  await k.flushConntrack();
  return perBatch;
}

async function benchSize(k: KernelNode, n: number, rows: BenchRow[]): Promise<void> {
  const cluster = benchCluster(n);
  const state: ProxyState = proxyStateFor(cluster);
  const { render } = renderSync(state);
  const text = render.text;
  let natChains = natChainsAfter([], text);
  const restoring = RESTORE_SIZES.includes(n);

  // (a) First full sync into a node holding only kube-proxy's base jumps; then the same text again.
  const kFull: number[] = [];
  for (let rep = 0; rep < (restoring ? 3 : 1); rep++) {
    await k.resetRules();
    kFull.push(await k.restore(text, true));
  }
  const kAgain = await k.restore(text, true);
  // svcplane as the kernel: the median of 3 full syncs, each into a fresh dataplane, all three in
  // the note (the first runs colder: less of its code compiled by V8 yet, as in a proxy's first sync).
  const sFull: number[] = [];
  let dp = await makeDataplane();
  let t = 0;
  for (let rep = 0; rep < (restoring ? 3 : 1); rep++) {
    if (rep > 0) dp = await makeDataplane();
    t = hr();
    dp.iptablesRestore(text, { noflush: true });
    sFull.push(hr() - t);
  }
  if (restoring) {
    const lines = text.split('\n').length;
    rows.push(pair(`iptables full sync, ${size(n)} services`, 'ms', median(sFull), median(kFull),
      `${lines} lines, medians of 3 (svcplane ${sFull.map(fmt).join(', ')} ms in order)`));
    t = hr();
    dp.iptablesRestore(text, { noflush: true });
    rows.push(pair(`iptables full re-sync (same text), ${size(n)} services`, 'ms', hr() - t, kAgain));
  }

  // (d) First-packet cost on this ruleset.
  await warmCore();
  const sv = svcplaneFirstPacket(dp, cluster);
  const kp = await kernelFirstPacket(k, cluster, 800);
  const first = sv.cpu.map((x, i) => x - sv.hit[i]!);
  rows.push(pair(`first packet (new SYN), ${size(n)} services`, 'ns/packet', median(sv.wall), median(kp),
    `p99 svcplane ${fmt(pct(sv.wall, 99))} / kernel ${fmt(pct(kp, 99))} ns (wall); svcplane batches of ${BATCH}, kernel ${kp.length}×${K_BATCH} SYNs`));
  rows.push({
    name: `first packet in-core CPU time, ${size(n)} services`, value: fmt(median(sv.cpu)), unit: 'ns/packet', target: 'p99 ≤ 1000',
    note: `clients outside the cluster (masqueraded: a SNAT port each); p99 ${fmt(pct(sv.cpu, 99))} ns over ${sv.cpu.length} samples of ${CPU_GROUP * BATCH} SYNs (${CPU_CLOCK}); conntrack-hit resend p50 ${fmt(median(sv.hit))} ns; rule walk + insert + NAT setup (first − hit) p50 ${fmt(median(first))} / p99 ${fmt(pct(first, 99))} ns; host staging ${fmt(median(sv.staging))} ns/packet, not included`,
  });
  // The same from pods (DNAT only), on a fresh dataplane with the same rules.
  const podDp = await makeDataplane();
  podDp.iptablesRestore(text, { noflush: true });
  const pod = svcplaneFirstPacket(podDp, cluster, 'pod');
  const podFirst = pod.cpu.map((x, i) => x - pod.hit[i]!);
  rows.push({
    name: `first packet in-core CPU time, pod → ClusterIP, ${size(n)} services`, value: fmt(median(pod.cpu)), unit: 'ns/packet', target: 'p99 ≤ 1000',
    note: `p99 ${fmt(pct(pod.cpu, 99))} ns over ${pod.cpu.length} samples; conntrack-hit resend p50 ${fmt(median(pod.hit))} ns; first − hit p50 ${fmt(median(podFirst))} / p99 ${fmt(pct(podFirst, 99))} ns`,
  });
  if (!restoring) return;

  // (b) Services added one at a time, as kube-proxy's partial sync writes it; then (c) removed
  // likewise, their chains flushed and deleted with -X (in large-cluster mode kube-proxy does that
  // once per sync period; this is that sync). The kernel applies every text too (the next text
  // names the chains the previous one made). The first PARTIAL_WARM of each are reported apart:
  // they run cold, right after the full restore and the benchmark's own garbage.
  const adds: number[] = [], addCpu: number[] = [], kAdds: number[] = [], dels: number[] = [], kDels: number[] = [];
  // performance.now() windows of svcplane's timed restores, for the GC pauses inside them.
  const addAt: Array<[number, number]> = [], delAt: Array<[number, number]> = [];
  let addLines = 0, delLines = 0, delChains = 0;
  for (let rep = 0; rep < PARTIAL_WARM + PARTIAL_REPS; rep++) {
    const added = benchCluster(1, { first: n + rep });
    state.onService(null, added.services[0]!);
    state.onEndpointSlice(added.slices[0]!);
    const add = renderSync(state, natChains).render;
    if (add.full) throw new Error('expected a partial sync');
    natChains = natChainsAfter(natChains, add.text);
    kAdds.push(await k.restore(add.text, true));
    t = hr();
    const a0 = performance.now();
    const c0 = process.cpuUsage();
    dp.iptablesRestore(add.text, { noflush: true });
    adds.push(hr() - t);
    const c1 = process.cpuUsage(c0);
    addCpu.push((c1.user + c1.system) / 1000);
    addAt.push([a0, performance.now()]);
    addLines = add.text.split('\n').length;
  }
  for (let rep = 0; rep < PARTIAL_WARM + PARTIAL_REPS; rep++) {
    state.onService(cluster.services[1 + rep]!, null);
    state.onEndpointSlice(cluster.slices[1 + rep]!, true);
    const del = renderSync(state, natChains, {}, true).render;
    if (del.deletedChains.length === 0) throw new Error('expected the removed service\'s chains to be deleted');
    natChains = natChainsAfter(natChains, del.text);
    kDels.push(await k.restore(del.text, true));
    t = hr();
    const d0 = performance.now();
    dp.iptablesRestore(del.text, { noflush: true });
    dels.push(hr() - t);
    delAt.push([d0, performance.now()]);
    delLines = del.text.split('\n').length;
    delChains = del.deletedChains.length;
  }
  const cold = (xs: number[]): string => xs.slice(0, PARTIAL_WARM).map(fmt).join(', ');
  const warm = (xs: number[]): number => median(xs.slice(PARTIAL_WARM));
  const gcIn = async (at: Array<[number, number]>): Promise<string> => {
    const ms: number[] = [];
    for (const [from, to] of at.slice(PARTIAL_WARM)) ms.push(await gc.between(from, to));
    return `GC pauses inside them median ${fmt(median(ms))}, max ${fmt(Math.max(...ms))} ms`;
  };
  rows.push(pair(`iptables add 1 service (partial sync), ${size(n)} services`, 'ms', warm(adds), warm(kAdds),
    `${addLines} lines; medians of ${PARTIAL_REPS} adds after ${PARTIAL_WARM} cold ones (svcplane ${cold(adds)} ms; kernel ${cold(kAdds)} ms), svcplane max ${fmt(Math.max(...adds.slice(PARTIAL_WARM)))} ms, each add's wall/CPU ms ${adds.slice(PARTIAL_WARM).map((a, k) => `${fmt(a)}/${fmt(addCpu[PARTIAL_WARM + k]!)}`).join(' ')}; ${await gcIn(addAt)}`));
  rows.push(pair(`iptables remove 1 service (partial sync), ${size(n)} services`, 'ms', warm(dels), warm(kDels),
    `${delLines} lines, ${delChains} chains deleted; medians of ${PARTIAL_REPS} after ${PARTIAL_WARM} cold ones (svcplane ${cold(dels)} ms); ${await gcIn(delAt)}`));
}

export async function benchKernelIptables(): Promise<BenchRow[]> {
  const support = netnsSupport();
  const missing = support.ok ? missingTools(KERNEL_TOOLS) : [];
  if (!support.ok || missing.length) {
    console.log(`kernel-iptables bench skipped: ${support.ok ? `missing tools: ${missing.join(', ')}` : support.reason}`);
    return [];
  }
  const rows: BenchRow[] = [];
  const started = hr();
  const k = await KernelNode.start('kb');
  gc.start();
  try {
    // The kernel's own path for a new connection with no Service rules: injection, routing,
    // conntrack, forwarding (kernel only: svcplane has no such path to measure).
    await k.resetRules();
    const base = await kernelFirstPacket(k, null, 400);
    rows.push({ name: 'kernel new-SYN path, no service rules (baseline)', value: fmt(median(base)), unit: 'ns/packet',
      note: `p99 ${fmt(pct(base, 99))} ns; injection + routing + conntrack + forwarding, included in the kernel first-packet rows` });
    for (const n of PACKET_SIZES) await benchSize(k, n, rows);
  } finally {
    gc.stop();
    k.destroy();
  }
  console.log(`kernel-iptables bench: ${((hr() - started) / 1000).toFixed(1)} s`);
  return rows;
}
