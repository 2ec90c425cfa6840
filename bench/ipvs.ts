// bench/ipvs.ts — IPVS numbers: ns per scheduling decision for every scheduler at 2, 100 and 1,000
// destinations (a loop inside the IPVS test build, so no JS boundary per decision), Maglev table
// rebuild at 1,000 destinations, connection entry bytes, and the cost of a new connection (service
// lookup + schedule + entry + masquerade) and of an established packet with 10,000 virtual services
// through the shipped core's ipvsProcessBatch.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { instantiateCore } from '../host-node/core/loader.js';
import { IpvsProgram, SCHEDULERS, type IpvsCore, type Scheduler } from '../host-node/ipvs/program.js';
import { buildPacket } from '../host-node/core/packet.js';
import type { BenchRow } from './core.js';

type Exports = Record<string, (...a: number[]) => number> & { memory: WebAssembly.Memory };
const hr = () => Number(process.hrtime.bigint()) / 1e6;

function testingCore(): Exports {
  // dist/bench/ipvs.js → build/; bench/ipvs.ts (run directly) → build/ as well.
  for (const rel of ['../../build/testing-ipvs.wasm', '../build/testing-ipvs.wasm']) {
    try {
      const bytes = readFileSync(fileURLToPath(new URL(rel, import.meta.url)));
      const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
        env: { abort: () => { throw new Error('ipvs test core aborted'); }, seed: () => 1 },
      });
      return inst.exports as unknown as Exports;
    } catch { /* try the next location */ }
  }
  throw new Error('build/testing-ipvs.wasm not found: run node scripts/build.mjs');
}

// Many short in-core loops rather than one long one: V8 tiers wasm functions up between calls (there
// is no on-stack replacement), so the first calls run baseline code. Best of five timed rounds.
function timeLoop(x: Exports, svc: number, n: number): number {
  const per = n >= 1000 ? 200 : 1000;
  for (let w = 0; w < 40; w++) x.pickLoop!(svc, per, 0x0a000001 + w * per, 0);
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const calls = Math.max(4, Math.floor(2e6 / (per * (n + 8))));
    const t = hr();
    for (let c = 0; c < calls; c++) x.pickLoop!(svc, per, 0x0a100000 + c * per, 0);
    best = Math.min(best, ((hr() - t) * 1e6) / (calls * per));
  }
  return best;
}

function decisions(x: Exports, p: IpvsProgram): BenchRow[] {
  const rows: BenchRow[] = [];
  const fast: Scheduler[] = ['rr', 'wrr', 'sh', 'mh'];
  let port = 1;
  for (const sched of SCHEDULERS) {
    for (const n of [2, 100, 1000]) {
      const svc = p.addService({ protocol: 'tcp', address: '10.96.0.1', port: port++, scheduler: sched });
      for (let i = 0; i < n; i++) {
        p.addDest(svc, { address: `10.244.${i >> 8}.${i & 255}`, port: 8080, weight: 1 + (i % 3), forwarding: 'masq' });
      }
      const ns = timeLoop(x, svc, n);
      rows.push({ name: `ipvs ${sched} decision, ${n} dests`, value: +ns.toFixed(1), unit: 'ns/decision',
        target: fast.includes(sched) ? '≤ 50' : undefined });
    }
  }
  return rows;
}

function mhRebuild(p: IpvsProgram): BenchRow {
  const svc = p.addService({ protocol: 'tcp', address: '10.96.0.2', port: 80, scheduler: 'mh' });
  const ids: number[] = [];
  for (let i = 0; i < 1000; i++) ids.push(p.addDest(svc, { address: `10.245.${i >> 8}.${i & 255}`, port: 8080, weight: 1 }));
  const rounds = 40;
  const t = hr();
  for (let r = 0; r < rounds; r++) p.editDest(svc, ids[r % ids.length]!, { weight: 1 + ((r >> 1) & 1) + 1 });
  const ms = (hr() - t) / rounds;
  return { name: 'ipvs mh table rebuild, 1000 dests, M=4093', value: +ms.toFixed(3), unit: 'ms/rebuild', target: '≤ 2',
    note: 'one weight edit = one rebuild (ip_vs_mh_dest_changed)' };
}

/** Lays packets out in the I/O arena (256-byte slots); returns a refill function. */
function stager(x: Exports, pkts: Uint8Array[]): () => void {
  const slot = 256;
  const data = new Uint8Array(pkts.length * slot);
  pkts.forEach((p, i) => data.set(p, i * slot));
  return () => {
    const u8 = new Uint8Array(x.memory.buffer), dv = new DataView(x.memory.buffer);
    u8.set(data, x.ioDataPtr!());
    const desc = x.ioDescPtr!();
    for (let i = 0; i < pkts.length; i++) {
      const d = desc + 32 * i;
      dv.setUint32(d, i * slot, true); dv.setUint32(d + 4, pkts[i]!.length, true);
      dv.setUint32(d + 8, slot, true); dv.setUint32(d + 12, 0, true); dv.setUint32(d + 20, 0, true);
    }
  };
}

async function loaded(services: number, connLog2: number): Promise<{ x: Exports; p: IpvsProgram }> {
  const x = (await instantiateCore()) as unknown as Exports;
  if (x.init!(10, 8, 5, 6) !== 0) throw new Error('core init failed');
  const p = new IpvsProgram(x as unknown as IpvsCore);
  p.init({ connLog2, services: services + 240, destinations: 2 * services + 480, seed: 3 });
  for (let s = 0; s < services; s++) {
    const id = p.addService({ protocol: 'tcp', address: vip(s), port: 80, scheduler: 'rr' });
    p.addDest(id, { address: `10.244.${s >> 7}.${(s & 127) * 2}`, port: 8080, forwarding: 'masq' });
    p.addDest(id, { address: `10.244.${s >> 7}.${(s & 127) * 2 + 1}`, port: 8080, forwarding: 'masq' });
  }
  return { x, p };
}
const vip = (s: number) => `10.96.${s >> 8}.${s & 255}`;

async function tenThousand(): Promise<BenchRow[]> {
  // Warm-up on a throw-away instance: V8 tiers the shared module's code up between calls.
  {
    const w = await loaded(100, 14);
    const pkts = Array.from({ length: 8192 }, (_, i) => buildPacket({ src: `10.2.${i >> 8}.${i & 255}`, dst: vip(i % 100), proto: 'tcp', sport: 1000, dport: 80, flags: 'S' }));
    for (let i = 0; i < pkts.length; i += 256) { stager(w.x, pkts.slice(i, i + 256))(); w.x.ipvsProcessBatch!(256, 1); }
  }
  const { x, p } = await loaded(10_000, 18);
  const BATCH = 256, n = 100_352;
  const syn: Uint8Array[] = [], ack: Uint8Array[] = [];
  let seed = 99;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  for (let i = 0; i < n; i++) {
    const spec = { src: `10.1.${(i >> 8) & 255}.${i & 255}`, dst: vip(rnd() % 10_000), proto: 'tcp' as const, sport: 1024 + (i >> 16), dport: 80 };
    syn.push(buildPacket({ ...spec, flags: 'S' }));
    if (i < BATCH) ack.push(buildPacket({ ...spec, flags: 'A' }));
  }
  // Time only the core calls: each batch is staged first, outside the clock.
  let newMs = 0;
  for (let i = 0; i < n; i += BATCH) {
    stager(x, syn.slice(i, i + BATCH))();
    const t0 = hr();
    x.ipvsProcessBatch!(BATCH, 10);
    newMs += hr() - t0;
  }
  const made = Number(p.counters().conn_new);
  if (made !== n) throw new Error(`ipvs bench: ${made} of ${n} connections made`);
  // Established packets: the first batch's ACKs, again and again.
  const refill = stager(x, ack);
  const rounds = 2000;
  let estMs = 0;
  for (let r = 0; r < rounds; r++) {
    refill();
    const t0 = hr();
    x.ipvsProcessBatch!(BATCH, 20);
    estMs += hr() - t0;
  }
  return [
    { name: 'ipvs new connection, 10k services (lookup+rr+entry+masq)', value: +((newMs * 1e6) / n).toFixed(1), unit: 'ns/conn',
      note: `${n} SYNs, batch ${BATCH}, time inside ipvsProcessBatch only` },
    { name: 'ipvs established packet, 10k services (masq)', value: +((estMs * 1e6) / (rounds * BATCH)).toFixed(1), unit: 'ns/packet',
      note: `batch ${BATCH}, time inside ipvsProcessBatch only` },
    { name: 'ipvs connection entry', value: x.ipvsConnEntryBytes!(), unit: 'B/entry', target: '≤ 64',
      note: `${x.ipvsConnBytesPerEntry!()} B with its share of hash buckets; IPv4 and IPv6 alike` },
  ];
}

export async function benchIpvs(): Promise<BenchRow[]> {
  const x = testingCore();
  const p = new IpvsProgram({ ...x } as unknown as IpvsCore);
  p.init({ connLog2: 12, services: 128, destinations: 20_000, seed: 1 });
  const rows = decisions(x, p);
  for (const r of rows) r.note = 'in-core loop, IPVS test build (-O2)';
  rows.push(mhRebuild(p));
  rows.push(...(await tenThousand()));
  return rows;
}
