// svcplane-replay.wasm: a capture built from real packets (clients, the endpoints' answers, off-pod
// clients that get masqueraded, UDP, IPv6, pass-through and dropped traffic) is replayed through a
// .svp under node:wasi; the pcap it writes must hold exactly the bytes Dataplane.load(svp) produced
// for the same packets at the same times, tshark must read the rewritten addresses and ports back
// and judge every IP/TCP/UDP checksum good, the JSON lines must carry the same verdicts, pcapng and
// other link types must replay alike, Bun's WASI must write identical files, and damaged input must
// end with a message naming the fault.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Dataplane } from '../../host-node/dataplane.js';
import type { ProcessResult } from '../../host-node/core/dataplane.js';
import { buildPacket, decodePacket } from '../../host-node/core/packet.js';
import { runReplayWasm } from '../../host-node/cli/replay.js';
import { readPcap, writePcap, writePcapng, type CapturedPacket } from '../../host-node/replay/pcap.js';
import { parseReplayLines } from '../../host-node/replay/compare.js';

const ROOT = resolve(import.meta.dirname, '../..');
const run = promisify(execFile);
const T0 = 1_764_000_000_000;
const NODE = { nodeIPs: ['192.168.49.2', 'fd00:49::2'], podCIDR: ['10.244.0.0/16', 'fd00:244::/64'], serviceCIDR: ['10.96.0.0/12', 'fd00:96::/108'], seed: 9n };

let dir: string;
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'svp-replay-')); });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function directSvp(endpoints = ['10.244.1.11:8080', '10.244.2.12:8080', '10.244.3.13:8080']): Promise<Uint8Array> {
  const dp = await Dataplane.create({ ...NODE, record: true });
  dp.setServices([
    { name: 'web', vip: '10.96.0.80', port: 80, protocol: 'TCP', endpoints },
    { name: 'dns', vip: '10.96.0.53', port: 53, protocol: 'UDP', endpoints: ['10.244.1.21:53', '10.244.2.22:53'] },
    { name: 'web6', vip: 'fd00:96::80', port: 80, protocol: 'TCP', endpoints: ['[fd00:244::11]:8080', '[fd00:244::12]:8080'] },
  ]);
  return dp.compiled();
}

/**
 * Plays a conversation against a dataplane loaded from `svp`: each answer is addressed to what the
 * client's packet became, as the endpoint would see it. Returns the capture and the core's results.
 */
async function conversation(svp: Uint8Array): Promise<{ capture: CapturedPacket[]; results: ProcessResult[] }> {
  const dp = await Dataplane.load(svp);
  const capture: CapturedPacket[] = [];
  const results: ProcessResult[] = [];
  let ms = T0;
  const send = (ip: Uint8Array) => {
    ms += 1.25;
    capture.push({ ms, ip });
    const r = dp.process(ip, ms);
    results.push(r);
    return r;
  };
  const answer = (r: ProcessResult, proto: 'tcp' | 'udp', extra: Record<string, unknown>) => {
    if (r.verdict !== 'FORWARD') return;
    const o = decodePacket(r.packet!);
    send(buildPacket({ src: o.dst, dst: o.src, proto, sport: o.dport, dport: o.sport, ...extra }));
  };
  for (let i = 0; i < 16; i++) {
    const src = i < 12 ? `10.244.${1 + (i % 4)}.${20 + i}` : `203.0.113.${i}`;
    const syn = send(buildPacket({ src, dst: '10.96.0.80', proto: 'tcp', sport: 41000 + i, dport: 80, flags: 'S', seq: 100 }));
    answer(syn, 'tcp', { flags: 'SA', seq: 900, ack: 101 });
    send(buildPacket({ src, dst: '10.96.0.80', proto: 'tcp', sport: 41000 + i, dport: 80, flags: 'A', seq: 101, ack: 901 }));
  }
  for (let i = 0; i < 6; i++) {
    const q = send(buildPacket({ src: `10.244.7.${i + 1}`, dst: '10.96.0.53', proto: 'udp', sport: 5300 + i, dport: 53, payload: `q${i}` }));
    answer(q, 'udp', { payload: `a${i}` });
  }
  for (let i = 0; i < 3; i++) {
    const s = send(buildPacket({ src: `fd00:244::1:${i + 1}`, dst: 'fd00:96::80', proto: 'tcp', sport: 42000 + i, dport: 80, flags: 'S' }));
    answer(s, 'tcp', { flags: 'SA', ack: 1 });
  }
  send(buildPacket({ src: '10.244.1.5', dst: '10.244.2.6', proto: 'icmp', icmp: { id: 7, seq: 1 } }));
  send(buildPacket({ src: '10.244.1.5', dst: '10.96.0.55', proto: 'tcp', sport: 43000, dport: 80, flags: 'S' }));
  send(buildPacket({ src: '10.244.1.5', dst: '10.96.0.80', proto: 'tcp', sport: 43001, dport: 80, flags: 'S' }).slice(0, 30));
  return { capture, results };
}

function tshark(file: string, fields: string[]): string[][] {
  if (!existsSync('/usr/bin/tshark')) throw new Error('tshark is not installed (Debian package tshark; CI installs it)');
  const out = execFileSync('/usr/bin/tshark', [
    '-r', file, '-T', 'fields', '-E', 'separator=|',
    '-o', 'tcp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE',
    ...fields.flatMap((f) => ['-e', f]),
  ], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'ignore'] });
  return out.trimEnd().split('\n').map((l) => l.split('|'));
}

async function replayFiles(name: string, svp: Uint8Array, capture: Uint8Array) {
  const config = join(dir, `${name}.svp`), cap = join(dir, `${name}.cap`), pcap = join(dir, `${name}.out.pcap`), json = join(dir, `${name}.jsonl`);
  writeFileSync(config, svp);
  writeFileSync(cap, capture);
  const r = await runReplayWasm({ config, capture: cap, pcapOut: pcap, jsonOut: json });
  return { ...r, config, cap, pcap, json, lines: parseReplayLines(readFileSync(json, 'utf8')), frames: readPcap(readFileSync(pcap)).packets };
}

describe('svcplane-replay.wasm under node:wasi', () => {
  it('writes exactly the packets Dataplane.load(svp) produces, and tshark reads them back with good checksums', async () => {
    const svp = await directSvp();
    const { capture, results } = await conversation(svp);
    expect(results.filter((r) => r.verdict === 'FORWARD').length).toBeGreaterThan(50);
    const r = await replayFiles('direct', svp, writePcap(capture));

    const leaving = results.filter((x) => x.verdict !== 'DROP');
    expect(r.summary).toEqual({
      packets: capture.length, skipped: 0, frames: leaving.length,
      pass: results.filter((x) => x.verdict === 'PASS').length, forward: results.filter((x) => x.verdict === 'FORWARD').length,
      drop: results.filter((x) => x.verdict === 'DROP').length, reply: results.filter((x) => x.verdict === 'REPLY').length,
    });
    expect(r.frames.map((f) => Buffer.from(f.data).toString('hex'))).toEqual(leaving.map((x) => Buffer.from(x.packet!).toString('hex')));
    expect(r.lines.map((l) => [l.verdict, l.reason ?? null])).toEqual(results.map((x) => [x.verdict, x.reason ?? null]));

    const rows = tshark(r.pcap, ['ip.src', 'ip.dst', 'ipv6.src', 'ipv6.dst', 'tcp.srcport', 'tcp.dstport', 'udp.srcport', 'udp.dstport',
      'ip.checksum.status', 'tcp.checksum.status', 'udp.checksum.status']);
    expect(rows.length).toBe(leaving.length);
    rows.forEach((row, k) => {
      const p = decodePacket(leaving[k]!.packet!);
      const [ip4s, ip4d, ip6s, ip6d, ts, td, us, ud, ipck, tcpck, udpck] = row;
      expect(p.family === 4 ? [ip4s, ip4d] : [ip6s, ip6d]).toEqual([p.src, p.dst]);
      if (p.proto === 6) expect([ts, td, tcpck]).toEqual([String(p.sport), String(p.dport), '1']);
      if (p.proto === 17) expect([us, ud, udpck]).toEqual([String(p.sport), String(p.dport), '1']);
      if (p.family === 4) expect(ipck).toBe('1');
    });
    // the rewrites tshark saw: DNAT to the endpoints, and masquerade for the off-pod clients
    const dsts = new Set(rows.map((x) => `${x[1]}:${x[5]}`));
    expect(dsts).toContain('10.244.1.11:8080');
    expect(rows.some((x) => x[0] === '192.168.49.2' && x[5] === '8080')).toBe(true);
    expect(rows.some((x) => x[3] === 'fd00:244::11' || x[3] === 'fd00:244::12')).toBe(true);

    // JSON lines: tuples in and out, conntrack state, the service the core chose
    const first = r.lines[0]!;
    expect(first.in).toEqual({ proto: 6, src: '10.244.1.20', dst: '10.96.0.80', sport: 41000, dport: 80 });
    expect(first.ct).toBe('NEW');
    expect(first.tcp).toBe('SYN_SENT');
    expect(first.service).toBe(0);
    expect(first.out!.dport).toBe(8080);
    expect(r.lines[2]!.tcp).toBe('ESTABLISHED');
    expect(r.lines.at(-2)!.reason).toBe('no_service');
    expect(r.lines.at(-1)!.reason).toBe('truncated');
    expect(r.lines.map((l) => l.t)).toEqual(capture.map((c) => Math.floor(c.ms * 1000) / 1000));
  });

  it('reads pcapng, nanosecond pcap, Ethernet and Linux cooked captures alike, and skips frames that are not IP', async () => {
    const svp = await directSvp();
    const { capture } = await conversation(svp);
    const base = await replayFiles('raw', svp, writePcap(capture));
    const same = (x: Awaited<ReturnType<typeof replayFiles>>) => {
      expect(x.lines).toEqual(base.lines);
      expect(x.frames).toEqual(base.frames);
    };
    same(await replayFiles('ng-sll', svp, writePcapng(capture, { link: 'sll' })));
    same(await replayFiles('ng-eth', svp, writePcapng(capture, { link: 'ethernet' })));
    same(await replayFiles('ns-eth', svp, writePcap(capture, { link: 'ethernet', nanoseconds: true })));

    // an ARP frame in an Ethernet capture: a SKIP line, no frame, the rest unchanged
    const eth = writePcap(capture.slice(0, 2), { link: 'ethernet' });
    const arp = new Uint8Array(16 + 42);
    const dv = new DataView(arp.buffer);
    dv.setUint32(0, Math.floor(T0 / 1000) + 1, true); dv.setUint32(8, 42, true); dv.setUint32(12, 42, true);
    arp[16 + 12] = 0x08; arp[16 + 13] = 0x06;
    const withArp = await replayFiles('arp', svp, new Uint8Array([...eth, ...arp]));
    expect(withArp.lines.map((l) => l.verdict)).toEqual([base.lines[0]!.verdict, base.lines[1]!.verdict, 'SKIP']);
    expect(withArp.lines[2]!.reason).toBe('not_ip');
    expect(withArp.summary.skipped).toBe(1);
  });

  it('replays an iptables-mode config (kube-proxy rules from manifests) like the Dataplane that compiled it', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['192.168.49.2'], podCIDR: '10.244.0.0/16', seed: 3n, record: true });
    dp.apply(readFileSync(join(import.meta.dirname, 'fixtures/web.yaml'), 'utf8'));
    const svp = dp.compiled();
    const { capture, results } = await conversation(svp);
    const r = await replayFiles('ipt', svp, writePcap(capture));
    expect(results.filter((x) => x.verdict === 'FORWARD').length).toBeGreaterThan(30);
    expect(r.frames.map((f) => Buffer.from(f.data).toString('hex')))
      .toEqual(results.filter((x) => x.verdict !== 'DROP').map((x) => Buffer.from(x.packet!).toString('hex')));
    // kube-proxy's rules masquerade the off-pod clients (KUBE-MARK-MASQ, then KUBE-POSTROUTING)
    expect(r.lines.filter((l) => l.in?.src.startsWith('203.0.113.') && l.out?.src === '192.168.49.2').length).toBeGreaterThan(3);
  });

  it('takes a captured checksum as the capturing host had it: pod traffic captured on a node carries partial ones', async () => {
    const svp = await directSvp();
    const syn = buildPacket({ src: '10.244.9.9', dst: '10.96.0.80', proto: 'tcp', sport: 43210, dport: 80, flags: 'S' });
    syn[20 + 16] ^= 0xff;   // the TCP checksum as the sender's NIC was still to finish it
    const r = await replayFiles('partial', svp, writePcap([{ ms: T0, ip: syn }]));
    expect(r.lines[0]).toMatchObject({ verdict: 'FORWARD' });
    // The same bytes handed to a Dataplane as arriving from the network fail conntrack's check.
    const dp = await Dataplane.load(svp);
    expect(dp.process(syn, T0)).toMatchObject({ verdict: 'DROP', reason: 'conntrack_invalid' });
  });

  it('ends with a message naming the fault: damaged config, damaged capture, not a capture', async () => {
    const svp = await directSvp();
    const { capture } = await conversation(svp);
    const pcap = writePcap(capture);
    const broken = svp.slice(); broken[broken.length - 3]! ^= 1;
    await expect(replayFiles('bad-svp', broken, pcap)).rejects.toThrow(/\.svp: config\.svp rejected: checksum mismatch/);
    const v2 = svp.slice(); v2[4] = 2;
    await expect(replayFiles('v2-svp', v2, pcap)).rejects.toThrow(/unsupported format version/);
    await expect(replayFiles('short-cap', svp, pcap.slice(0, pcap.length - 10))).rejects.toThrow(/capture damaged after \d+ packets: truncated packet record/);
    await expect(replayFiles('not-cap', svp, new TextEncoder().encode('this is not a capture at all'))).rejects.toThrow(/not a pcap or pcapng capture/);
    // A file in a directory that does not exist: named, where node:wasi would throw its own error.
    const config = join(dir, 'direct.svp'), capture2 = join(dir, 'direct.cap');
    await expect(runReplayWasm({ config, capture: capture2, pcapOut: join(dir, 'no-such-dir', 'out.pcap') })).rejects.toThrow(/^[^\n]*no-such-dir\/out\.pcap: no such directory$/);
  });
});

describe('svcplane replay on Bun', () => {
  it('writes byte-identical pcap and JSON lines through Bun\'s WASI', async () => {
    const bun = [join(ROOT, 'node_modules/.bin/bun'), ...readdirSync(join(ROOT, 'node_modules/@oven')).map((p) => join(ROOT, 'node_modules/@oven', p, 'bin/bun'))]
      .find((p) => existsSync(p));
    if (!bun) throw new Error('bun is not installed: run `npm ci` (the exact-pinned devDependency "bun")');
    if (!existsSync(join(ROOT, 'dist/host-node/cli/main.js'))) throw new Error('dist/ is not built: run `node scripts/build.mjs`');
    const svp = await directSvp();
    const { capture } = await conversation(svp);
    const node = await replayFiles('node', svp, writePcap(capture));
    const pcap = join(dir, 'bun.out.pcap'), json = join(dir, 'bun.jsonl');
    const { stdout } = await run(bun, [join(ROOT, 'bin/svcplane.js'), 'replay', '--config', node.config, node.cap, '-o', pcap, '--json', json], { cwd: ROOT, timeout: 60_000 });
    expect(JSON.parse(stdout)).toEqual(node.summary);
    expect(readFileSync(pcap).equals(readFileSync(node.pcap))).toBe(true);
    expect(readFileSync(json, 'utf8')).toBe(readFileSync(node.json, 'utf8'));
  });
});

describe('damaged captures never trap the tool', () => {
  it('mutated pcap and pcapng files end cleanly or with the tool\'s own message', async () => {
    const svp = await directSvp();
    const { capture } = await conversation(svp);
    const sources = [writePcap(capture.slice(0, 12)), writePcapng(capture.slice(0, 12), { link: 'ethernet' })];
    let x = 0x2545f491;
    const rand = () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
    const outcomes: string[] = [];
    for (let k = 0; k < 12; k++) {
      const b = sources[k % 2]!.slice();
      for (let m = 0; m < 1 + (k % 4); m++) b[rand() % b.length] = rand() & 0xff;   // a few random bytes
      if (k % 3 === 2) b[rand() % 64]! ^= 0xff;                                       // often in a header
      try {
        const r = await replayFiles(`fuzz-${k}`, svp, b);
        expect(r.summary.packets + r.summary.skipped).toBeLessThanOrEqual(12);
        outcomes.push('ok');
      } catch (e) {
        // the tool's own words (a trap or a crash of the runner would read "svcplane-replay exited with …")
        expect((e as Error).message).toMatch(/\.cap: (capture damaged after \d+ packets: |not a pcap or pcapng capture)/);
        outcomes.push('refused');
      }
    }
    expect(outcomes.length).toBe(12);
  }, 120_000);
});
