// bench/replay.ts — replay speed of svcplane-replay.wasm: a 1M-packet pcap of established-flow
// traffic (1,000 client connections to one Service with 4 endpoints, each opened with a full
// handshake, then data segments 1,000 per millisecond) replayed through a .svp under Node's and
// Bun's WASI, writing the translated pcap. Reported end to end (process start, reading the capture,
// writing the output, wall clock) and net of a one-packet run's fixed cost, in wall-clock time and in
// the process's CPU time (user + system), which other load on a shared machine does not inflate.
// Bounded: one run per runtime and size.
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Dataplane } from '../host-node/dataplane.js';
import { buildPacket, decodePacket } from '../host-node/core/packet.js';
import { writePcap, type CapturedPacket } from '../host-node/replay/pcap.js';
import type { BenchRow } from './core.js';

const PACKETS = 1_000_000;
const FLOWS = 1000;
const T0 = 1_764_000_000_000;
const hr = () => Number(process.hrtime.bigint()) / 1e6;

/** The config and a capture: handshakes answered as the chosen endpoints would, then data packets. */
async function workload(): Promise<{ svp: Uint8Array; capture: Uint8Array; small: Uint8Array }> {
  const rec = await Dataplane.create({ nodeIPs: ['192.168.49.2'], podCIDR: '10.244.0.0/16', seed: 5n, conntrackCapacity: 1 << 14, record: true });
  rec.setServices([{ vip: '10.96.0.80', port: 80, protocol: 'TCP', endpoints: ['10.244.1.11:8080', '10.244.2.12:8080', '10.244.3.13:8080', '10.244.4.14:8080'] }]);
  const svp = rec.compiled();
  const dp = await Dataplane.load(svp);
  const packets: CapturedPacket[] = [];
  let ms = T0;
  const data: Uint8Array[] = [];
  for (let i = 0; i < FLOWS; i++) {
    const src = `10.244.${10 + (i >> 8)}.${i & 255}`;
    const sport = 20000 + i;
    const syn = buildPacket({ src, dst: '10.96.0.80', proto: 'tcp', sport, dport: 80, flags: 'S', seq: 1 });
    packets.push({ ms: (ms += 0.001), ip: syn });
    const o = decodePacket(dp.process(syn, ms).packet!);
    const synAck = buildPacket({ src: o.dst, dst: o.src, proto: 'tcp', sport: o.dport, dport: o.sport, flags: 'SA', seq: 9, ack: 2 });
    packets.push({ ms: (ms += 0.001), ip: synAck });
    dp.process(synAck, ms);
    const ack = buildPacket({ src, dst: '10.96.0.80', proto: 'tcp', sport, dport: 80, flags: 'A', seq: 2, ack: 10 });
    packets.push({ ms: (ms += 0.001), ip: ack });
    data.push(buildPacket({ src, dst: '10.96.0.80', proto: 'tcp', sport, dport: 80, flags: 'PA', seq: 2, ack: 10, payload: 'GET / HTTP/1.1\r\n\r\n' }));
  }
  const start = Math.ceil(ms) + 1;
  for (let k = 0; packets.length < PACKETS; k++) packets.push({ ms: start + Math.floor(k / 1000) + (k % 1000) / 1000, ip: data[k % FLOWS]! });
  return { svp, capture: writePcap(packets), small: writePcap(packets.slice(0, 1)) };
}

function bunPath(): string | undefined {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const oven = join(root, 'node_modules/@oven');
  const candidates = [join(root, 'node_modules/.bin/bun'), ...(existsSync(oven) ? readdirSync(oven).map((p) => join(oven, p, 'bin/bun')) : [])];
  return candidates.find((p) => {
    try { execFileSync(p, ['--version'], { stdio: 'ignore', timeout: 20_000 }); return true; } catch { return false; }
  });
}

export async function benchReplay(): Promise<BenchRow[]> {
  const runner = fileURLToPath(new URL('../host-node/cli/replay-wasi.js', import.meta.url));
  if (!existsSync(runner)) return [{ name: 'replay: WASI', value: 0, unit: 'skipped', note: 'run from dist/ (npm run bench)' }];
  const dir = mkdtempSync(join(tmpdir(), 'svcplane-bench-replay-'));
  const rows: BenchRow[] = [];
  try {
    const w = await workload();
    writeFileSync(join(dir, 'a.svp'), w.svp);
    writeFileSync(join(dir, 'big.pcap'), w.capture);
    writeFileSync(join(dir, 'one.pcap'), w.small);
    const runtimes: Array<[string, string | undefined]> = [['node', process.execPath], ['bun', bunPath()]];
    for (const [name, exe] of runtimes) {
      if (!exe) { rows.push({ name: `replay 1M established (${name})`, value: 0, unit: 'skipped', note: `${name} not installed` }); continue; }
      const time = (capture: string) => {
        const t = hr();
        const r = spawnSync(exe, [...(name === 'node' ? ['--no-warnings'] : []), runner, '--config', join(dir, 'a.svp'), '-o', join(dir, 'out.pcap'), join(dir, capture)], {
          encoding: 'utf8', timeout: 300_000, env: { ...process.env, SVCPLANE_REPLAY_CPU: '1' },
        });
        const wall = hr() - t;
        const m = /svcplane-replay-cpu (\{.*\})/.exec(r.stderr ?? '');
        if (r.status !== 0 || !m) throw new Error(`replay under ${name} failed: ${r.stderr}`);
        const cpu = JSON.parse(m[1]!) as { userMs: number; systemMs: number };
        return { wall, cpu: cpu.userMs + cpu.systemMs };
      };
      const fixed = time('one.pcap');
      const full = time('big.pcap');
      const outMB = statSync(join(dir, 'out.pcap')).size / 2 ** 20;
      const pps = (ms: number) => Math.round(PACKETS / (ms / 1000));
      rows.push({ name: `replay 1M established, end to end, wall (${name})`, value: pps(full.wall), unit: 'packets/s', note: `${full.wall.toFixed(0)} ms, pcap in ${(w.capture.length / 2 ** 20).toFixed(0)} MiB, out ${outMB.toFixed(0)} MiB` });
      rows.push({ name: `replay 1M established, net, wall (${name})`, value: pps(full.wall - fixed.wall), unit: 'packets/s', note: `start-up ${fixed.wall.toFixed(0)} ms wall` });
      rows.push({ name: `replay 1M established, net, CPU time (${name})`, value: pps(full.cpu - fixed.cpu), unit: 'packets/s', target: name === 'node' ? '≥ 2M' : '', note: `${full.cpu.toFixed(0)} ms CPU, start-up ${fixed.cpu.toFixed(0)} ms CPU` });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const r of await benchReplay()) console.log(`${r.name.padEnd(48)} ${String(r.value).padStart(10)} ${r.unit}  ${r.target ?? ''}  ${r.note ?? ''}`);
}
