// bench/first-packet.ts — the cost of a new connection's first packet in svcplane's core: batches
// of new SYNs to random ClusterIPs of kube-proxy's own ruleset (benchCluster + renderSync, restored
// over kube-proxy's base jumps) through processBatch, timed by the CPU time of the thread running
// the core (CPU_CLOCK), and the same SYNs again (conntrack hits). Used by bench/kernel-iptables.ts
// for its first-packet rows, and runnable alone without a kernel or root, so the core can be
// tuned in seconds:
//   node dist/bench/first-packet.js [SIZES=1,1000,20000,30000] [RUNS=1]   (each run: from outside, then from a pod)
// SVP_CORE_WASM=FILE runs another build of the core (e.g. one compiled with --debug, whose function
// names a --cpu-prof profile then shows).
// Never touches the network; never asserts a target (it reports numbers).
import koffi from 'koffi';
import { Dataplane } from '../host-node/dataplane.js';
import { buildPacket } from '../host-node/core/packet.js';
import { DESC } from '../host-node/core/abi.js';
import { KUBE_BASE_RULES, NODE_ADDRS } from '../tests/support/kernel-node.js';
import { benchCluster, proxyStateFor, renderSync, Rng, POD_CIDR, type Cluster } from '../tests/support/kube-gen.js';

export const BATCH = 256;
/** Batches measured (after WARM_BATCHES that are not); SVP_FP_BATCHES changes it when run alone. */
export const SV_BATCHES = Number(process.env.SVP_FP_BATCHES ?? 400);
const WARM_BATCHES = 10;
/** Batches per CPU-time sample: ~2k packets, so a sample is milliseconds long and the clock's
 *  reading cost and granularity vanish in it. */
export const CPU_GROUP = 8;

export const hr = (): number => Number(process.hrtime.bigint()) / 1e6;
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
export const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

/**
 * The CPU time, in ms, of the thread that runs the core: clock_gettime(CLOCK_THREAD_CPUTIME_ID)
 * through koffi, as Node 20 has no per-thread CPU clock. The process's CPU time (the fallback,
 * where libc or the clock is missing) also counts V8's own threads, which run on the other core
 * while a batch runs (concurrent marking of a 20k ruleset's heap, compilers): with it, the p99 of
 * 50 samples was whichever sample a GC burst fell into (20k pod SYNs: 2195 ns, against 939 ns on
 * this thread's clock in the same build). A reading costs ~1.7 µs (the koffi call); that cost as
 * the clock itself sees it is measured once and taken off each timed interval.
 */
function threadCpuClock(): (() => number) | null {
  if (process.platform !== 'linux') return null;
  try {
    const CLOCK_THREAD_CPUTIME_ID = 3; // <linux/time.h>
    const gettime = koffi.load('libc.so.6').func('int clock_gettime(int, void *)');
    const ts = new BigInt64Array(2);
    const read = (): number => {
      if (gettime(CLOCK_THREAD_CPUTIME_ID, ts) !== 0) throw new Error('clock_gettime failed');
      return Number(ts[0]) * 1e3 + Number(ts[1]) / 1e6;
    };
    read();
    return read;
  } catch {
    return null;
  }
}

const threadCpu = threadCpuClock();
/** Which CPU clock times the samples (for row notes). */
export const CPU_CLOCK = threadCpu ? "the core's thread's CPU time" : "this process's CPU time";
const cpuMs = threadCpu ?? ((): number => { const c = process.cpuUsage(); return (c.user + c.system) / 1000; });
/** One reading's own cost as the clock sees it (the median of back-to-back pairs). */
const READ_COST = ((): number => {
  const d: number[] = [];
  for (let i = 0; i < 501; i++) { const a = cpuMs(); d.push(cpuMs() - a); }
  return median(d);
})();

/**
 * Where new connections come from: 'outside' the cluster (198.18.100–103.x: kube-proxy marks them
 * for masquerade, so each also takes a SNAT port on the node address), or a 'pod' (198.19.250–253.x,
 * inside the pod CIDR and apart from every endpoint: DNAT only, the common pod → ClusterIP case).
 */
export type SynSource = 'outside' | 'pod';

/** SYNs from distinct sources to random Services' cluster IPs, port 80. */
export function syns(cluster: Cluster, count: number, rng: Rng, offset: number, from: SynSource = 'outside'): Uint8Array[] {
  const out: Uint8Array[] = [];
  const net = from === 'pod' ? '198.19' : '198.18';
  const third = from === 'pod' ? 250 : 100;
  for (let i = 0; i < count; i++) {
    const svc = cluster.services[rng.int(0, cluster.services.length - 1)]!;
    const c = offset + i;
    const host = c % 1016;
    out.push(buildPacket({
      src: `${net}.${third + Math.floor(host / 254)}.${(host % 254) + 1}`, dst: svc.spec.clusterIP,
      proto: 'tcp', sport: 1024 + (Math.floor(c / 1016) % 60000), dport: 80, flags: 'S',
    }));
  }
  return out;
}

/** ns/packet samples of svcplane's first packets. */
export interface FirstPacket {
  /** Wall time of each batch of new SYNs (the machine's scheduler included). */
  wall: number[];
  /** CPU time (CPU_CLOCK) over each CPU_GROUP batches (what other processes took is left out). */
  cpu: number[];
  /** The same, for the same SYNs sent again: conntrack hits, no rule walk and no insert. */
  hit: number[];
  /** Host staging (copying packets and descriptors into the core), per packet; not in the above. */
  staging: number[];
}

/** A dataplane as the node bench uses it: kube-proxy's base jumps restored, nothing else. */
export async function makeDataplane(wasm?: WebAssembly.Module): Promise<Dataplane> {
  const dp = await Dataplane.create({ nodeIPs: NODE_ADDRS, podCIDR: POD_CIDR, seed: 7, conntrackCapacity: 1 << 18, ...(wasm ? { wasm } : {}) });
  dp.iptablesRestore(KUBE_BASE_RULES);
  return dp;
}

const warmed = new WeakSet<object>();
const embedded = {};

/**
 * V8 runs a wasm function first as baseline code and recompiles it optimized once it is hot, on
 * background threads whose CPU time the process's clock counts: the first ~50 batches of a fresh
 * module measure that tier-up, not the core. So, once per module, new SYNs go through a scratch
 * dataplane (64 Services: the same rule walk and dispatch path) until the optimized code is in;
 * instances of one module share it. `wasm` is the module makeDataplane was given (none: the
 * embedded core, which every Dataplane.create shares).
 */
export async function warmCore(wasm?: WebAssembly.Module): Promise<void> {
  const key = wasm ?? embedded;
  if (warmed.has(key)) return;
  warmed.add(key);
  const { cluster, text } = clusterRules(64);
  const dp = await makeDataplane(wasm);
  dp.iptablesRestore(text, { noflush: true });
  const core = dp.core;
  const pkts = syns(cluster, BATCH * WARM_CORE_BATCHES, new Rng(3), 500_000);
  for (let b = 0; b < WARM_CORE_BATCHES; b++) {
    for (let pass = 0; pass < 2; pass++) {
      stageInto(core, pkts.slice(b * BATCH, (b + 1) * BATCH));
      core.processBatch(BATCH, 1000 + b);
    }
  }
}
/** Batches of new SYNs (each sent twice) that warm a module up: ~100 ms of packets. */
const WARM_CORE_BATCHES = 200;

/** Copies packets into the core's I/O arena, 128-byte slots, and describes them. */
function stageInto(core: Dataplane['core'], pkts: Uint8Array[]): void {
  const u8 = new Uint8Array(core.memory.buffer);
  const dv = new DataView(core.memory.buffer);
  const base = core.ioDataPtr();
  const desc = core.ioDescPtr();
  for (let i = 0; i < pkts.length; i++) {
    const p = pkts[i]!;
    u8.set(p, base + i * SLOT);
    const d = desc + i * DESC.bytes;
    dv.setUint32(d + DESC.off, i * SLOT, true);
    dv.setUint32(d + DESC.len, p.length, true);
    dv.setUint32(d + DESC.cap, SLOT, true);
    dv.setUint32(d + DESC.meta, 0, true);
  }
}
const SLOT = 128;

/**
 * svcplane: ns/packet of each batch of new SYNs through processBatch (packets staged outside the
 * timing), by wall clock and by CPU time (CPU_CLOCK), and of the same batch sent again.
 */
export function svcplaneFirstPacket(dp: Dataplane, cluster: Cluster, from: SynSource = 'outside'): FirstPacket {
  const core = dp.core;
  // As `svcplane proxy` does in its first half second (proxy-loop.ts): the conntrack table's
  // memory made resident, so what is timed is the core, not the system handing out its pages.
  while (dp.warmConntrack(1 << 22) > 0);
  const rng = new Rng(7);
  const out: FirstPacket = { wall: [], cpu: [], hit: [], staging: [] };
  const all = syns(cluster, BATCH * (SV_BATCHES + WARM_BATCHES), rng, 0, from);
  const stage = (pkts: Uint8Array[]): void => stageInto(core, pkts);
  let cpuFirst = 0, cpuHit = 0, grouped = 0;
  for (let b = 0; b < SV_BATCHES + WARM_BATCHES; b++) {
    const pkts = all.slice(b * BATCH, (b + 1) * BATCH);
    let t = hr();
    stage(pkts);
    const staging = hr() - t;
    let c = cpuMs();
    t = hr();
    core.processBatch(pkts.length, 1000 + b);
    const ms = hr() - t;
    const cms = cpuMs() - c - READ_COST;
    stage(pkts);
    c = cpuMs();
    core.processBatch(pkts.length, 1000 + b);
    const hms = cpuMs() - c - READ_COST;
    if (b < WARM_BATCHES) continue;
    out.wall.push((ms * 1e6) / pkts.length);
    out.staging.push((staging * 1e6) / pkts.length);
    cpuFirst += cms;
    cpuHit += hms;
    grouped += pkts.length;
    if ((b - WARM_BATCHES) % CPU_GROUP === CPU_GROUP - 1) {
      out.cpu.push((cpuFirst * 1e6) / grouped);
      out.hit.push((cpuHit * 1e6) / grouped);
      cpuFirst = cpuHit = grouped = 0;
    }
  }
  const s = dp.stats();
  if (s.dnat < BATCH * SV_BATCHES) throw new Error(`svcplane first-packet bench: only ${s.dnat} of ${BATCH * (SV_BATCHES + WARM_BATCHES)} SYNs were DNATed`);
  return out;
}

/** The ruleset of `n` Services as kube-proxy's first full sync writes it. */
export function clusterRules(n: number): { cluster: Cluster; text: string } {
  const cluster = benchCluster(n);
  return { cluster, text: renderSync(proxyStateFor(cluster)).render.text };
}

async function main(): Promise<void> {
  const sizes = (process.argv[2] ?? '1,1000,20000,30000').split(',').map(Number);
  const runs = Number(process.argv[3] ?? 1);
  const r0 = (x: number): number => Math.round(x);
  const file = process.env.SVP_CORE_WASM;
  const wasm = file ? await WebAssembly.compile(await (await import('node:fs/promises')).readFile(file)) : undefined;
  await warmCore(wasm);
  for (const n of sizes) {
    const { cluster, text } = clusterRules(n);
    for (let run = 0; run < runs * 2; run++) {
      const from: SynSource = run % 2 === 0 ? 'outside' : 'pod';
      const dp = await makeDataplane(wasm);
      dp.iptablesRestore(text, { noflush: true });
      const sv = svcplaneFirstPacket(dp, cluster, from);
      const first = sv.cpu.map((x, i) => x - sv.hit[i]!);
      console.log(`${String(n).padStart(6)} services, from ${from.padEnd(7)}: cpu p50 ${r0(median(sv.cpu))} p99 ${r0(pct(sv.cpu, 99))} · hit p50 ${r0(median(sv.hit))} p99 ${r0(pct(sv.hit, 99))} · first−hit p50 ${r0(median(first))} p99 ${r0(pct(first, 99))} · wall p50 ${r0(median(sv.wall))} p99 ${r0(pct(sv.wall, 99))} ns (${sv.cpu.length} samples)`);
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
