// `svcplane compile`: each input kind (iptables-restore text, manifests in iptables / ipvs / direct
// mode, ipvsadm rules with ipsets) gives a .svp that Dataplane.load serves the Service from, and the
// replay tool reports the IPVS step for an ipvs config; bad input is refused with exit 1 or 2 and a
// message naming the line or option, writing nothing.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCompile } from '../../host-node/cli/compile.js';
import { runReplayWasm } from '../../host-node/cli/replay.js';
import { Dataplane } from '../../host-node/dataplane.js';
import { buildPacket, decodePacket } from '../../host-node/core/packet.js';
import { decodeSvp } from '../../host-node/embed/svp.js';
import { writePcap } from '../../host-node/replay/pcap.js';
import { parseReplayLines } from '../../host-node/replay/compare.js';

const FIXTURE = join(import.meta.dirname, 'fixtures/web.yaml');
const ENDPOINTS = ['10.244.1.11', '10.244.2.12', '10.244.3.13'];
let dir: string;
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'svp-compile-')); });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function compile(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const code = await runCompile(args, (s) => { out += s; }, (s) => { err += s; });
  return { code, out, err };
}

/** New connections from pods to the web VIP: where the loaded config sends them. */
async function destinations(file: string): Promise<Set<string>> {
  const dp = await Dataplane.load(readFileSync(file));
  const seen = new Set<string>();
  for (let i = 0; i < 30; i++) {
    const r = dp.process(buildPacket({ src: `10.244.7.${i + 1}`, dst: '10.96.0.80', proto: 'tcp', sport: 30000 + i, dport: 80, flags: 'S' }), 100 + i);
    expect(r.verdict).toBe('FORWARD');
    const o = decodePacket(r.packet!);
    seen.add(`${o.dst}:${o.dport}`);
  }
  return seen;
}

describe('svcplane compile', () => {
  it.each(['iptables', 'ipvs', 'direct'])('--manifests --mode %s: the loaded config serves the Service from its endpoints', async (mode) => {
    const file = join(dir, `${mode}.svp`);
    const r = await compile(['--manifests', FIXTURE, '--mode', mode, '--node-ip', '192.168.49.2', '--pod-cidr', '10.244.0.0/16', '-o', file]);
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toMatch(new RegExp(`^${file.replace(/[.]/g, '\\.')}: \\d+ bytes, \\d+ core calls\\n$`));
    expect(decodeSvp(readFileSync(file)).meta).toMatchObject({ compiledBy: 'svcplane compile', source: { mode } });
    const seen = await destinations(file);
    expect([...seen].every((d) => ENDPOINTS.some((e) => d === `${e}:8080`))).toBe(true);
    expect(seen.size).toBeGreaterThan(1);
  });

  it('--rules: iptables-restore text', async () => {
    const rules = join(dir, 'rules.txt');
    writeFileSync(rules, [
      '*nat', ':PREROUTING ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]', ':SVC - [0:0]',
      '-A PREROUTING -d 10.96.0.80/32 -p tcp --dport 80 -j SVC',
      '-A SVC -p tcp -j DNAT --to-destination 10.244.2.12:8080', 'COMMIT', '',
    ].join('\n'));
    const file = join(dir, 'rules.svp');
    expect((await compile(['--rules', rules, '-o', file])).code).toBe(0);
    expect([...(await destinations(file))]).toEqual(['10.244.2.12:8080']);
  });

  it('--ipvsadm with --ipset, and the replay tool names the IPVS service, destination and connection', async () => {
    const ipvs = join(dir, 'ipvs.rules'), sets = join(dir, 'sets.txt');
    writeFileSync(ipvs, '-A -t 10.96.0.80:80 -s rr\n-a -t 10.96.0.80:80 -r 10.244.1.11:8080 -m\n-a -t 10.96.0.80:80 -r 10.244.3.13:8080 -m\n');
    writeFileSync(sets, 'create KUBE-CLUSTER-IP hash:ip,port family inet\nadd KUBE-CLUSTER-IP 10.96.0.80,tcp:80\n');
    const file = join(dir, 'ipvsadm.svp');
    expect((await compile(['--ipvsadm', ipvs, '--ipset', sets, '-o', file])).code).toBe(0);
    expect([...(await destinations(file))].sort()).toEqual(['10.244.1.11:8080', '10.244.3.13:8080']);

    const cap = join(dir, 'ipvs.pcap'), json = join(dir, 'ipvs.jsonl');
    writeFileSync(cap, writePcap([0, 1, 2].map((i) => ({ ms: 5000 + i, ip: buildPacket({ src: `10.244.7.${i + 1}`, dst: '10.96.0.80', proto: 'tcp', sport: 1000 + i, dport: 80, flags: 'S' }) }))));
    await runReplayWasm({ config: file, capture: cap, jsonOut: json });
    const lines = parseReplayLines(readFileSync(json, 'utf8'));
    expect(lines.map((l) => l.ipvs?.method)).toEqual(['masq', 'masq', 'masq']);
    expect(lines.map((l) => l.ipvs?.new)).toEqual([true, true, true]);
    expect(lines[0]!.ipvs!.dest).not.toBe(lines[1]!.ipvs!.dest);   // round robin
    expect(lines[0]!.ipvs!.dest).toBe(lines[2]!.ipvs!.dest);
  });

  it('refuses bad input with a message and writes nothing', async () => {
    const out = join(dir, 'never.svp');
    const both = await compile(['--rules', FIXTURE, '--manifests', FIXTURE, '-o', out]);
    expect(both.code).toBe(2);
    expect(both.err).toMatch(/give exactly one of --rules, --manifests, --ipvsadm/);
    expect((await compile(['--manifests', FIXTURE, '--mode', 'nft', '-o', out])).err).toMatch(/--mode: iptables, ipvs or direct, not "nft"/);
    expect((await compile(['--manifests', FIXTURE])).err).toMatch(/-o FILE is required/);
    const rules = join(dir, 'bad.txt');
    writeFileSync(rules, '*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j NOSUCHTHING --frobnicate\nCOMMIT\n');
    const bad = await compile(['--rules', rules, '-o', out]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/^svcplane compile: \S*bad\.txt: iptables-restore: line 3 failed/);
    const ipvs = join(dir, 'bad.ipvs');
    writeFileSync(ipvs, '-A -t 10.96.0.80:80 -s nosuchsched\n');
    const badIpvs = await compile(['--ipvsadm', ipvs, '-o', out]);
    expect(badIpvs.code).toBe(1);
    expect(badIpvs.err).toMatch(/^svcplane compile: \S*bad\.ipvs: ipvsadm -R: \S/);
    // Node options the core refuses are usage errors naming the option.
    const huge = await compile(['--manifests', FIXTURE, '-o', out, '--conntrack-capacity', '16777217']);
    expect(huge.code).toBe(2);
    expect(huge.err).toMatch(/^svcplane compile: conntrackCapacity 16777217: a whole number of flows from 1 to 16777216\n/);
    const addr = await compile(['--manifests', FIXTURE, '-o', out, '--node-ip', '198.18.0.300']);
    expect(addr.code).toBe(2);
    expect(addr.err).toMatch(/^svcplane compile: nodeIPs: not an IP address: "198\.18\.0\.300"/);
    expect(existsSync(out)).toBe(false);
  });
});
