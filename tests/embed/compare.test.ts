// The what-if: `svcplane replay --config A.svp --compare B.svp capture` must list exactly the flows
// the two configurations send differently — checked against each config's own Dataplane run over the
// same packets — as a table and as JSON; and the pure comparison groups both directions of a flow.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Dataplane } from '../../host-node/dataplane.js';
import { buildPacket, decodePacket } from '../../host-node/core/packet.js';
import { writePcap, type CapturedPacket } from '../../host-node/replay/pcap.js';
import { compareReplays, renderComparison, type ReplayLine } from '../../host-node/replay/compare.js';

const ROOT = resolve(import.meta.dirname, '../..');
const run = promisify(execFile);
let dir: string;
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'svp-compare-')); });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function svp(endpoints: string[]): Promise<Uint8Array> {
  const dp = await Dataplane.create({ nodeIPs: ['192.168.49.2'], podCIDR: '10.244.0.0/16', seed: 21n, record: true });
  dp.setServices([
    { name: 'web', vip: '10.96.0.80', port: 80, protocol: 'TCP', endpoints },
    { name: 'dns', vip: '10.96.0.53', port: 53, protocol: 'UDP', endpoints: ['10.244.1.21:53'] },
  ]);
  return dp.compiled();
}

describe('svcplane replay --compare', () => {
  it('lists exactly the flows an endpoint removal sends elsewhere', async () => {
    const a = await svp(['10.244.1.11:8080', '10.244.2.12:8080', '10.244.3.13:8080']);
    const b = await svp(['10.244.1.11:8080', '10.244.2.12:8080']);
    const capture: CapturedPacket[] = [];
    for (let i = 0; i < 40; i++) {
      const ms = 1_764_000_000_000 + i * 3;
      capture.push({ ms, ip: buildPacket({ src: `10.244.5.${i + 1}`, dst: '10.96.0.80', proto: 'tcp', sport: 33000 + i, dport: 80, flags: 'S' }) });
      if (i % 8 === 0) capture.push({ ms: ms + 1, ip: buildPacket({ src: `10.244.6.${i + 1}`, dst: '10.96.0.53', proto: 'udp', sport: 5000 + i, dport: 53, payload: 'q' }) });
    }
    // what each config does, from the Dataplane itself
    const fates = async (config: Uint8Array) => {
      const dp = await Dataplane.load(config);
      return capture.map((c) => {
        const r = dp.process(c.ip, c.ms);
        const o = r.packet ? decodePacket(r.packet) : undefined;
        return `${r.verdict} ${o ? `${o.dst}:${o.dport}` : r.reason}`;
      });
    };
    const fa = await fates(a), fb = await fates(b);
    const expected = capture.filter((_, k) => fa[k] !== fb[k]).map((c) => {
      const p = decodePacket(c.ip);
      return `${p.proto === 6 ? 'tcp' : 'udp'} ${p.src}:${p.sport} -> ${p.dst}:${p.dport}`;
    });
    expect(fa.filter((f) => f.endsWith('10.244.3.13:8080')).length).toBeGreaterThan(5);
    expect(expected.length).toBeGreaterThanOrEqual(fa.filter((f) => f.endsWith('10.244.3.13:8080')).length);

    writeFileSync(join(dir, 'a.svp'), a);
    writeFileSync(join(dir, 'b.svp'), b);
    writeFileSync(join(dir, 'cap.pcap'), writePcap(capture));
    const { stdout } = await run(process.execPath, [join(ROOT, 'bin/svcplane.js'), 'replay', '--config', join(dir, 'a.svp'), '--compare', join(dir, 'b.svp'),
      join(dir, 'cap.pcap'), '--json', join(dir, 'diff.json')], { timeout: 60_000 });
    const doc = JSON.parse(readFileSync(join(dir, 'diff.json'), 'utf8')) as ReturnType<typeof compareReplays>;
    expect(doc.diffs.map((d) => d.flow)).toEqual(expected);
    expect(doc.flows).toBe(capture.length);
    expect(doc.packetsDiffering).toBe(expected.length);
    // every flow A sent to the removed endpoint is among them, and B never sends anything there
    for (const d of doc.diffs) expect(d.b.first).not.toContain('10.244.3.13');
    expect(doc.diffs.filter((d) => d.a.first === 'FORWARD 10.244.3.13:8080').length).toBe(fa.filter((f) => f.endsWith('10.244.3.13:8080')).length);
    // the table: a header, one row per differing flow, the summary line
    const lines = stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^flow\s+packets\s+\S*a\.svp\s+\S*b\.svp$/);
    expect(lines.length).toBe(expected.length + 2);
    expect(lines.at(-1)).toBe(`${expected.length} of ${capture.length} flows (${expected.length} of ${capture.length} packets) are sent differently`);
    expect(lines[1]).toContain(expected[0]);
  });

  it('identical configs differ nowhere', async () => {
    const a = await svp(['10.244.1.11:8080']);
    writeFileSync(join(dir, 'same.svp'), a);
    writeFileSync(join(dir, 'same.pcap'), writePcap([{ ms: 1, ip: buildPacket({ src: '10.244.5.1', dst: '10.96.0.80', proto: 'tcp', sport: 1, dport: 80, flags: 'S' }) }]));
    const { stdout } = await run(process.execPath, [join(ROOT, 'bin/svcplane.js'), 'replay', '--config', join(dir, 'same.svp'), '--compare', join(dir, 'same.svp'), join(dir, 'same.pcap')], { timeout: 60_000 });
    expect(stdout).toBe('0 of 1 flows (0 of 1 packets) are sent differently\n');
  });
});

describe('compareReplays', () => {
  const line = (i: number, src: string, sport: number, dst: string, dport: number, verdict: ReplayLine['verdict'], out?: [string, number, string, number]): ReplayLine => ({
    i, t: i, in: { proto: 6, src, sport, dst, dport }, verdict,
    ...(out ? { out: { proto: 6, src: out[0], sport: out[1], dst: out[2], dport: out[3] } } : { reason: 'no_endpoints' }),
  });

  it('groups both directions of a tuple into one flow and names the outcomes', () => {
    const a = [
      line(0, '10.0.0.1', 1000, '10.96.0.80', 80, 'FORWARD', ['10.0.0.1', 1000, '10.244.1.1', 8080]),
      line(1, '10.244.1.1', 8080, '10.0.0.1', 1000, 'FORWARD', ['10.96.0.80', 80, '10.0.0.1', 1000]),
      line(2, '10.0.0.2', 1000, '10.96.0.80', 80, 'FORWARD', ['192.168.49.2', 5000, '10.244.1.1', 8080]),
      line(3, '10.96.0.80', 80, '10.0.0.1', 1000, 'PASS', ['10.96.0.80', 80, '10.0.0.1', 1000]),
    ];
    const b = [
      line(0, '10.0.0.1', 1000, '10.96.0.80', 80, 'FORWARD', ['10.0.0.1', 1000, '10.244.2.2', 8080]),
      line(1, '10.244.1.1', 8080, '10.0.0.1', 1000, 'PASS', ['10.244.1.1', 8080, '10.0.0.1', 1000]),
      line(2, '10.0.0.2', 1000, '10.96.0.80', 80, 'DROP'),
      line(3, '10.96.0.80', 80, '10.0.0.1', 1000, 'PASS', ['10.96.0.80', 80, '10.0.0.1', 1000]),
    ];
    const c = compareReplays(a, b);
    expect(c.flows).toBe(3);
    expect(c.flowsDiffering).toBe(3);
    expect(c.packetsDiffering).toBe(3);
    expect(c.diffs[0]).toEqual({
      flow: 'tcp 10.0.0.1:1000 -> 10.96.0.80:80', packets: 2, differing: 1, firstDifferingPacket: 0,
      a: { first: 'FORWARD 10.244.1.1:8080', outcomes: ['FORWARD 10.244.1.1:8080', 'PASS 10.0.0.1:1000'] },
      b: { first: 'FORWARD 10.244.2.2:8080', outcomes: ['FORWARD 10.244.2.2:8080', 'PASS 10.0.0.1:1000'] },
    });
    expect(c.diffs[1]!.a.first).toBe('FORWARD 10.0.0.1:1000 from 10.96.0.80:80');
    expect(c.diffs[1]!.b.first).toBe('PASS 10.0.0.1:1000');
    expect(c.diffs[2]!.a.first).toBe('FORWARD 10.244.1.1:8080 from 192.168.49.2:5000');
    expect(c.diffs[2]!.b.first).toBe('DROP no_endpoints');
    const table = renderComparison(c).split('\n');
    expect(table[0]).toMatch(/^flow {2,}packets {2}A {2,}B$/);
    expect(table[1]).toMatch(/^tcp 10\.0\.0\.1:1000 -> 10\.96\.0\.80:80 {2,}1\/2 {2,}FORWARD 10\.244\.1\.1:8080, PASS 10\.0\.0\.1:1000 {2,}FORWARD 10\.244\.2\.2:8080, PASS/);
    expect(() => compareReplays(a, b.slice(1))).toThrow(/different captures/);
  });
});
