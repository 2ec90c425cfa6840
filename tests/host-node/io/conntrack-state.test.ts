// The proxy's conntrack state file: checkpoints written while flows come and go (slice by slice,
// the loop served in between), read back with the clock continuing, never replacing the file once
// the proxy stopped, and failures said once with the last checkpoint kept.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Dataplane } from '../../../host-node/dataplane.js';
import { buildPacket } from '../../../host-node/core/packet.js';
import { concatBytes, decodeSnapshot } from '../../../host-node/core/snapshot.js';
import { ConntrackCheckpoints, readConntrackState, writeFileAtomic } from '../../../host-node/io/conntrack-state.js';

const DNS = { name: 'kube-system/dns', vip: '198.18.96.10', port: 53, protocol: 'UDP' as const, endpoints: ['198.19.1.21:53'] };

async function withFlows(n: number, t = 1000): Promise<Dataplane> {
  const dp = await Dataplane.create({ nodeIPs: ['198.18.0.1'], podCIDR: '198.19.0.0/16', seed: 5, conntrackCapacity: 1 << 16 });
  dp.setServices([DNS]);
  for (let i = 0; i < n; i++) {
    dp.process(buildPacket({ src: `198.19.${100 + (i >> 8)}.${i & 255}`, dst: DNS.vip, proto: 'udp', sport: 7000, dport: 53 }), t);
  }
  return dp;
}

describe('conntrack state file', () => {
  let dir = '';
  let logs: string[] = [];
  const log = (l: string): void => { logs.push(l); };
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'svp-ctstate-')); logs = []; });
  afterEach(() => { rmSync(dir, { recursive: true, force: true }); });

  it('writes a checkpoint a new proxy reads back: the same flows, the clock going on from the checkpoint', async () => {
    const dp = await withFlows(300);
    const file = join(dir, 'ct.state');
    let clock = 5000;
    const cp = new ConntrackCheckpoints(dp, file, 0, () => clock, log);
    const before = Date.now();
    await cp.checkpoint();
    expect(cp.written).toBe(1);
    expect(cp.lastWrittenMs).toBeGreaterThanOrEqual(before);
    expect(Math.abs(statSync(file).mtimeMs - cp.lastWrittenMs)).toBeLessThan(1);
    expect(logs).toEqual([]);
    const snap = decodeSnapshot(readFileSync(file));
    expect(snap.savedAtMs).toBe(5000);
    expect(snap.records).toHaveLength(300);
    // The file's time is the checkpoint's, so a start 0.x s later continues the clock from 5000 + that.
    const state = readConntrackState(file, () => 0, log);
    expect(state.clockOffset).toBeGreaterThanOrEqual(5000);
    expect(state.clockOffset).toBeLessThan(5000 + 5000);
    const fresh = await withFlows(0);
    expect(fresh.restore(state.snapshot!)).toBe(300);
    const key = (e: { original: unknown }) => JSON.stringify(e.original);
    expect(fresh.conntrack().map(key).sort()).toEqual(dp.conntrack().map(key).sort());
    // And again later: the file is replaced by the newer checkpoint.
    clock = 9000;
    dp.process(buildPacket({ src: '198.19.200.1', dst: DNS.vip, proto: 'udp', sport: 7000, dport: 53 }), 9000);
    await cp.checkpoint();
    expect(decodeSnapshot(readFileSync(file)).records).toHaveLength(301);
    expect(readdirSync(dir)).toEqual(['ct.state']);
  });

  it('reads a large table a slice at a time: timers and I/O run while a checkpoint is taken', async () => {
    const dp = await withFlows(20_000);
    const file = join(dir, 'ct.state');
    const cp = new ConntrackCheckpoints(dp, file, 0, () => 2000, log);
    let turns = 0;
    let done = false;
    const spin = (): void => { if (!done) { turns++; setImmediate(spin); } };
    setImmediate(spin);
    await cp.checkpoint();
    done = true;
    // 20,000 flows in slices of 2,048: the loop had its turn between every two slices.
    expect(turns).toBeGreaterThanOrEqual(9);
    expect(decodeSnapshot(readFileSync(file)).records).toHaveLength(20_000);
  });

  it('once stopped, a checkpoint under way never replaces the file (the exit save comes last)', async () => {
    const dp = await withFlows(10_000);
    const file = join(dir, 'ct.state');
    writeFileAtomic(file, new Uint8Array([1, 2, 3]));
    const cp = new ConntrackCheckpoints(dp, file, 0, () => 2000, log);
    const under = cp.checkpoint();
    await new Promise((r) => setImmediate(r));
    await cp.stop();
    await under;
    expect([...readFileSync(file)]).toEqual([1, 2, 3]);
    expect(cp.written).toBe(0);
    expect(readdirSync(dir)).toEqual(['ct.state']);
    // And none after: start() and checkpoint() do nothing once stopped.
    cp.start();
    await cp.checkpoint();
    expect([...readFileSync(file)]).toEqual([1, 2, 3]);
  });

  it('says a failing checkpoint once, keeps the last one written, and says when it writes again', async () => {
    const dp = await withFlows(50);
    const sub = join(dir, 'state');
    const file = join(sub, 'ct.state');
    const cp = new ConntrackCheckpoints(dp, file, 0, () => 2000, log);
    await cp.checkpoint();
    await cp.checkpoint();
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatch(/^proxy: conntrack checkpoint to .*ct\.state failed \(the last one written stays\): ENOENT/);
    expect([cp.written, cp.failed, cp.lastWrittenMs]).toEqual([0, 2, 0]);
    mkdirSync(sub);
    await cp.checkpoint();
    expect(logs[1]).toBe(`proxy: conntrack checkpoint to ${file} written again`);
    expect(cp.written).toBe(1);
    expect(decodeSnapshot(readFileSync(file)).records).toHaveLength(50);
  });

  it('checkpoints every period once started, until stopped', async () => {
    const dp = await withFlows(10);
    const file = join(dir, 'ct.state');
    const cp = new ConntrackCheckpoints(dp, file, 40, () => 2000, log);
    cp.start();
    const deadline = Date.now() + 5000;
    while (cp.written < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await cp.stop();
    expect(cp.written).toBeGreaterThanOrEqual(3);
    const n = cp.written;
    const mtime = statSync(file).mtimeMs;
    await new Promise((r) => setTimeout(r, 150));
    expect(cp.written).toBe(n);
    expect(statSync(file).mtimeMs).toBe(mtime);
  });

  it('at start, removes the temporary files of runs killed while writing, and only those', async () => {
    const dp = await withFlows(20);
    const file = join(dir, 'ct.state');
    writeFileAtomic(file, concatBytes(dp.snapshotSteps(2000).finish()));
    const left = ['.ct.state.4242.checkpoint.tmp', '.ct.state.77.exit.tmp'];
    const kept = ['.ct.state.notes', '.other.state.4242.checkpoint.tmp', '.ct.state.x.checkpoint.tmp'];
    for (const n of [...left, ...kept]) writeFileSync(join(dir, n), 'partial');
    const state = readConntrackState(file, () => 0, log);
    expect(state.snapshot).not.toBeNull();
    expect(readdirSync(dir).sort()).toEqual(['ct.state', ...kept].sort());
    expect(logs.sort()).toEqual(left.map((n) => `proxy: removed ${join(dir, n)}, left by a run killed while writing its conntrack state`).sort());
    // With no state file yet (the first run after a kill during its very first write) too.
    rmSync(file);
    writeFileSync(join(dir, left[0]!), 'partial');
    expect(readConntrackState(file, () => 3, log)).toEqual({ snapshot: null, clockOffset: -3 });
    expect(existsSync(join(dir, left[0]!))).toBe(false);
  });

  it('a period of 0 writes nothing; a state file that cannot be used costs the flows, said in the log', async () => {
    const dp = await withFlows(10);
    const file = join(dir, 'ct.state');
    const cp = new ConntrackCheckpoints(dp, file, 0, () => 2000, log);
    cp.start();
    await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(file)).toBe(false);
    expect(readConntrackState(file, () => 7, log)).toEqual({ snapshot: null, clockOffset: -7 });
    writeFileSync(file, 'not a snapshot');
    expect(readConntrackState(file, () => 7, log)).toEqual({ snapshot: null, clockOffset: -7 });
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatch(/^proxy: conntrack state .*ct\.state ignored: conntrack snapshot is corrupt/);
  });
});
