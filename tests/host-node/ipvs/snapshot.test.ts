// IPVS connections in the conntrack snapshot: an ipvs-mode proxy restarted from its snapshot keeps
// established connections on their real servers and clients on their persistence templates, as the
// kernel's ip_vs_conn table outlives a kube-proxy restart. Records whose virtual service is gone
// are dropped, malformed ones refused, and version-1 files (no IPVS part) still load.
import { describe, it, expect } from 'vitest';
import { Packr } from 'msgpackr';
import { Dataplane } from '../../../host-node/dataplane.js';
import { buildPacket, decodePacket } from '../../../host-node/core/packet.js';
import { concatBytes, decodeSnapshot, crc32, SNAPSHOT_FORMAT } from '../../../host-node/core/snapshot.js';
import { RECORD_BYTES } from '../../../host-node/core/conntrack-record.js';
import { webManifests } from '../../support/kube-gen.js';

const VIP = '198.19.0.10';
const CLIENT = '198.18.4.9';

const manifests = (opts: { affinity?: boolean; port?: number } = {}): string =>
  webManifests({ vip: VIP, endpoints: ['198.18.5.1', '198.18.5.2', '198.18.5.3'], ...opts });

async function proxy(yaml: string, seed: number, apply = true): Promise<Dataplane> {
  const dp = await Dataplane.create({ nodeIPs: ['198.18.0.1'], seed });
  if (apply) dp.apply(yaml, { mode: 'ipvs', iptables: { clusterCIDR: '198.18.4.0/22' } });
  return dp;
}

const toVip = (sport: number, flags: string) => buildPacket({ src: CLIENT, dst: VIP, proto: 'tcp', sport, dport: 80, flags });
const fromPod = (pod: string, sport: number, flags: string) =>
  buildPacket({ src: pod, dst: CLIENT, proto: 'tcp', sport: 8080, dport: sport, flags });

/** A completed handshake from CLIENT:sport; returns the pod it went to. */
function connect(dp: Dataplane, sport: number, now: number): string {
  const syn = dp.process(toVip(sport, 'S'), now);
  expect(syn.verdict).toBe('FORWARD');
  const pod = decodePacket(syn.packet!).dst;
  expect(dp.process(fromPod(pod, sport, 'SA'), now + 1).verdict).toBe('FORWARD');
  expect(dp.process(toVip(sport, 'A'), now + 2).verdict).toBe('FORWARD');
  return pod;
}

describe('IPVS connections in the snapshot', () => {
  it('keep established connections on their real servers after a restart', async () => {
    const yaml = manifests();
    const before = await proxy(yaml, 1);
    const pods = [40001, 40002, 40003].map((p, i) => connect(before, p, 10 + 10 * i));
    expect(new Set(pods).size).toBe(3); // rr spread them over the three servers
    const snap = before.snapshot(100);
    expect(decodeSnapshot(snap).ipvs).toHaveLength(3);

    // Another seed: a fresh scheduler would start elsewhere; the restored entries decide.
    const after = await proxy(yaml, 7);
    expect(after.restore(snap)).toBe(6); // 3 conntrack entries + 3 IPVS connections
    [40001, 40002, 40003].forEach((sport, i) => {
      const data = after.process(toVip(sport, 'A'), 200);
      expect(data.verdict).toBe('FORWARD');
      expect(decodePacket(data.packet!).dst).toBe(pods[i]);
      const reply = decodePacket(after.process(fromPod(pods[i]!, sport, 'A'), 201).packet!);
      expect([reply.src, reply.sport]).toEqual([VIP, 80]);
    });
    const conns = after.ipvs().connections(202);
    expect(conns.map((c) => [c.clientPort, c.destination, c.state]).sort()).toEqual(
      [[40001, pods[0], 'ESTABLISHED'], [40002, pods[1], 'ESTABLISHED'], [40003, pods[2], 'ESTABLISHED']]);
    // The destinations count them as active again.
    const dests = after.ipvs().services().flatMap((s) => s.destinations);
    expect(dests.reduce((n, d) => n + d.activeConns, 0)).toBe(3);
  });

  it('wait for the first ipvs-mode apply when restored before it', async () => {
    const yaml = manifests();
    const before = await proxy(yaml, 1);
    const pod = connect(before, 41000, 10);
    const after = await proxy(yaml, 9, false);
    expect(after.restore(before.snapshot(50))).toBe(1); // conntrack now, IPVS after the apply
    after.apply(yaml, { mode: 'ipvs', iptables: { clusterCIDR: '198.18.4.0/22' } });
    expect(after.ipvs().connections(60).map((c) => c.destination)).toEqual([pod]);
    expect(decodePacket(after.process(toVip(41000, 'A'), 61).packet!).dst).toBe(pod);
  });

  it('keep a client on its persistence template, linked to its connection', async () => {
    const yaml = manifests({ affinity: true });
    const before = await proxy(yaml, 3);
    const pod = connect(before, 42000, 10);
    const after = await proxy(yaml, 11);
    expect(after.restore(before.snapshot(40))).toBe(3); // conntrack + connection + template
    const conns = after.ipvs().connections(50);
    const template = conns.find((c) => c.template)!;
    const conn = conns.find((c) => !c.template)!;
    expect(template.destination).toBe(pod);
    expect(conn.control).toBe(template.index);
    expect(template.control).toBe(1); // a template counts the connections it controls
    // New connections from the client go where the template says, whatever rr would pick.
    for (let p = 42001; p < 42007; p++) {
      expect(decodePacket(after.process(toVip(p, 'S'), 60 + p - 42000).packet!).dst).toBe(pod);
    }
  });

  it('taken a slice at a time, keep templates first and each connection linked to its template', async () => {
    const yaml = manifests({ affinity: true });
    const before = await proxy(yaml, 3);
    // 40 clients, each with a template and two connections: 40 templates among 80 connections.
    const client = (k: number) => `198.18.6.${k}`;
    const pods = new Map<string, string>();
    for (let k = 1; k <= 40; k++) {
      for (const sport of [50000 + k, 51000 + k]) {
        const syn = before.process(buildPacket({ src: client(k), dst: VIP, proto: 'tcp', sport, dport: 80, flags: 'S' }), 10);
        pods.set(client(k), decodePacket(syn.packet!).dst);
      }
    }
    const steps = before.snapshotSteps(40);
    let slices = 0;
    while (!steps.step(7)) slices++;
    // Conntrack's 80 flows, then two walks of IPVS's 120 entries, seven a slice.
    expect(slices).toBeGreaterThanOrEqual(Math.floor((80 + 2 * 120) / 7));
    const stepped = concatBytes(steps.finish());
    expect(Buffer.from(stepped).equals(Buffer.from(before.snapshot(40)))).toBe(true);
    const records = decodeSnapshot(stepped).ipvs;
    const template = (r: Uint8Array) => ((r[4]! | (r[5]! << 8)) & 0x1000) !== 0;
    expect(records.map(template)).toEqual([...Array(40).fill(true), ...Array(80).fill(false)]);

    const after = await proxy(yaml, 11);
    expect(after.restore(stepped)).toBe(80 + 120);
    const conns = after.ipvs().connections(50);
    const templates = new Map(conns.filter((c) => c.template).map((t) => [t.index, t]));
    expect(templates.size).toBe(40);
    for (const c of conns.filter((x) => !x.template)) {
      expect(templates.get(c.control)?.client).toBe(c.client);
      expect(c.destination).toBe(pods.get(c.client));
    }
  });

  it('drop connections whose virtual service is gone, and refuse malformed records', async () => {
    const before = await proxy(manifests(), 1);
    connect(before, 43000, 10);
    const snap = before.snapshot(40);
    const other = await proxy(manifests({ port: 81 }), 1); // VIP:81 now, no VIP:80 virtual server
    expect(other.restore(snap)).toBe(1); // the conntrack entry only
    expect(other.ipvs().connections(50)).toHaveLength(0);

    const good = decodeSnapshot(snap).ipvs[0]!;
    const same = await proxy(manifests(), 1);
    const bad: Array<[string, (r: Uint8Array) => void]> = [
      ['version', (r) => { r[0] = 9; }],
      ['family', (r) => { r[1] = 5; }],
      ['protocol', (r) => { r[2] = 47; }],
      ['TCP state', (r) => { r[3] = 11; }],
      ['unknown flag', (r) => { r[5]! |= 0x40; }],
      ['lifetime', (r) => new DataView(r.buffer, r.byteOffset).setInt32(12, 0, true)],
      ['IPv4 padding', (r) => { r[20] = 1; }],
    ];
    for (const [what, spoil] of bad) {
      const r = new Uint8Array(good); // a copy (msgpackr decodes to Buffers, whose slice() is a view)
      spoil(r);
      const out = same.ipvs().loadConnections([r], 50);
      expect({ what, ...out }).toEqual({ what, loaded: 0, missing: [] });
    }
    expect(same.ipvs().connections(50)).toHaveLength(0);
    // The intact record loads, once.
    expect(same.ipvs().loadConnections([good, good], 50).loaded).toBe(1);
  });

  it('still load version-1 files, which have no IPVS part', async () => {
    const yaml = manifests();
    const before = await proxy(yaml, 1);
    connect(before, 44000, 10);
    const v2 = decodeSnapshot(before.snapshot(40));
    const all = new Uint8Array(v2.records.length * RECORD_BYTES);
    v2.records.forEach((r, i) => all.set(r, i * RECORD_BYTES));
    const v1 = new Packr({ useRecords: false }).pack({
      format: SNAPSHOT_FORMAT, version: 1, recordBytes: RECORD_BYTES, savedAtMs: 40, count: v2.records.length, records: all, crc: crc32([all]),
    });
    const after = await proxy(yaml, 1);
    expect(after.restore(v1)).toBe(1);
    // A corrupted IPVS block fails the checksum before anything loads.
    const spoilt = new Packr({ useRecords: false }).unpack(before.snapshot(40)) as Record<string, unknown>;
    (spoilt.ipvs as Uint8Array)[30]! ^= 1;
    const fresh = await proxy(yaml, 1);
    expect(() => fresh.restore(new Packr({ useRecords: false }).pack(spoilt))).toThrow(/checksum/);
    expect(fresh.ipvs().connections(50)).toHaveLength(0);
  });
});
