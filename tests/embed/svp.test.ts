// The compiled config artefact: a dataplane configured through each front end (direct services,
// kube-proxy iptables rules from manifests, ipvsadm with ipsets) is recorded, written as .svp, loaded
// into a fresh core with Dataplane.load, and must then give byte-identical answers for the same
// packets. Damaged, truncated, foreign and wrong-version files are refused with a named fault before
// anything reaches a core.
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Dataplane } from '../../host-node/dataplane.js';
import { buildPacket, decodePacket } from '../../host-node/core/packet.js';
import { instantiateCore } from '../../host-node/core/loader.js';
import { SVP_OPS, SvpError, decodeSvp, encodeSvp, SVP_HEADER_BYTES } from '../../host-node/embed/svp.js';
import { crc32 } from '../../host-node/core/snapshot.js';

const NODE = { nodeIPs: ['192.168.49.2'], podCIDR: '10.244.0.0/16', serviceCIDR: '10.96.0.0/12', seed: 77n, conntrackCapacity: 4096 };

const MANIFESTS = readFileSync(join(import.meta.dirname, 'fixtures/web.yaml'), 'utf8');

/** Clients opening flows to the Services, endpoint replies, then the clients' next segments. */
function traffic(dp: Dataplane, seedOffset = 0) {
  const out: Array<{ verdict: string; reason?: string; hex?: string }> = [];
  const rec = (r: ReturnType<Dataplane['process']>) => { out.push({ verdict: r.verdict, ...(r.reason ? { reason: r.reason } : {}), ...(r.packet ? { hex: Buffer.from(r.packet).toString('hex') } : {}) }); return r; };
  for (let i = 0; i < 40; i++) {
    const src = i % 3 === 0 ? `203.0.113.${i + 1}` : `10.244.${i % 5}.${i + 10}`;
    const dst = i % 4 === 0 ? '10.96.0.53' : '10.96.0.80';
    const proto = dst === '10.96.0.53' ? 'udp' : 'tcp';
    const dport = dst === '10.96.0.53' ? 53 : 80;
    const syn = rec(dp.process(buildPacket({ src, dst, proto, sport: 30000 + i + seedOffset, dport, ...(proto === 'tcp' ? { flags: 'S' } : { payload: 'q' }) }), 1000 + i));
    if (syn.verdict === 'FORWARD') {
      const o = decodePacket(syn.packet!);
      rec(dp.process(buildPacket({ src: o.dst, dst: o.src, proto, sport: o.dport, dport: o.sport, ...(proto === 'tcp' ? { flags: 'SA', ack: o.seq + 1 } : { payload: 'a' }) }), 1100 + i));
    }
  }
  rec(dp.process(buildPacket({ src: '10.244.1.1', dst: '10.96.0.81', proto: 'tcp', sport: 1, dport: 80, flags: 'S' }), 2000));
  return out;
}

async function roundTrip(configure: (dp: Dataplane) => void) {
  const a = await Dataplane.create({ ...NODE, record: true });
  configure(a);
  const svp = a.compiled({ source: 'test' });
  const b = await Dataplane.load(svp);
  return { a, b, svp };
}

describe('.svp round trip', () => {
  it('direct mode: a loaded copy answers every packet byte for byte like the original', async () => {
    const { a, b, svp } = await roundTrip((dp) => dp.setServices([
      { name: 'web', vip: '10.96.0.80', port: 80, protocol: 'TCP', endpoints: ['10.244.1.11:8080', '10.244.2.12:8080', '10.244.3.13:8080'] },
      { name: 'dns', vip: '10.96.0.53', port: 53, protocol: 'UDP', endpoints: ['10.244.1.21:53'] },
    ]));
    expect(decodeSvp(svp).meta.source).toBe('test');
    const ta = traffic(a);
    expect(ta.filter((p) => p.verdict === 'FORWARD').length).toBeGreaterThan(40);
    expect(traffic(b)).toEqual(ta);
    expect(b.stats()).toEqual(a.stats());
    expect(b.options.nodeIPs).toEqual(NODE.nodeIPs);
    expect(b.options.seed).toBe(77n);
  });

  it('iptables mode from manifests: the kube-proxy rules, loaded without parsing text', async () => {
    const { a, b, svp } = await roundTrip((dp) => { expect(dp.apply(MANIFESTS).issues).toEqual([]); });
    const names = decodeSvp(svp).ops.map((o) => SVP_OPS.find((s) => s.id === o.id)!.name);
    expect(names).toContain('iptStageChain');
    expect(names).toContain('iptCommit');
    expect(names.at(-1)).toBe('iptModeSet');
    const ta = traffic(a);
    expect(ta.filter((p) => p.verdict === 'FORWARD').length).toBeGreaterThan(40);
    expect(traffic(b)).toEqual(ta);
  });

  it('a chain patched in place (iptStagePatch: the rules around the change kept) records its own blob and replays alike', async () => {
    // 100 rules, then the same with rule 50 changed: the second restore stages only a patch.
    const rules = (changed: number) => '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:BIG - [0:0]\n-A FORWARD -j BIG\n' +
      Array.from({ length: 100 }, (_, i) => `-A BIG -d 10.96.${i}.${i === changed ? 9 : 1}/32 -p tcp --dport ${80 + i} -j DROP`).join('\n') + '\nCOMMIT\n';
    const { a, b, svp } = await roundTrip((dp) => { dp.iptablesRestore(rules(-1)); dp.iptablesRestore(rules(50)); });
    const patch = decodeSvp(svp).ops.find((o) => SVP_OPS.find((s) => s.id === o.id)!.name === 'iptStagePatch');
    expect(patch).toBeDefined();
    // iptStagePatch(id, ptr, len, head, tail): the blob is `len` bytes, not `tail`.
    expect(patch!.blob!.length).toBe(patch!.args[2]);
    expect(patch!.args[4]).not.toBe(patch!.args[2]);
    // Rule 50 as changed, as it was, and rules kept before and after it (the patch's head and tail).
    const probe = (dp: Dataplane) => [[50, 9], [50, 1], [10, 1], [90, 1]].map(([i, last]) =>
      dp.process(buildPacket({ src: '10.244.1.5', dst: `10.96.${i}.${last}`, proto: 'tcp', sport: 4000 + i! + last!, dport: 80 + i!, flags: 'S' }), 5000).verdict);
    expect(probe(a)).toEqual(['DROP', 'PASS', 'DROP', 'DROP']);
    expect(probe(b)).toEqual(probe(a));
  });

  for (const mode of ['direct', 'ipvs'] as const) {
    it(`${mode} mode from manifests: every control call of apply() is recorded and replays alike`, async () => {
      const { a, b, svp } = await roundTrip((dp) => { expect(dp.apply(MANIFESTS, { mode }).issues).toEqual([]); });
      const names = new Set(decodeSvp(svp).ops.map((o) => SVP_OPS.find((s) => s.id === o.id)!.name));
      expect(names.has(mode === 'direct' ? 'svcApply' : 'ipvsAddDest')).toBe(true);
      const ta = traffic(a);
      expect(ta.filter((p) => p.verdict === 'FORWARD').length).toBeGreaterThan(40);
      expect(traffic(b)).toEqual(ta);
    });
  }

  it('IPVS with an ipset: services, destinations and set members replay in order', async () => {
    const { a, b } = await roundTrip((dp) => {
      dp.ipvsadm('-A -t 10.96.0.80:80 -s rr');
      for (const d of ['10.244.1.11', '10.244.2.12']) dp.ipvsadm(`-a -t 10.96.0.80:80 -r ${d}:8080 -m`);
      dp.ipvsadm('-A -u 10.96.0.53:53 -s sh');
      dp.ipvsadm('-a -u 10.96.0.53:53 -r 10.244.1.21:53 -m');
      dp.ipset.restore('create KUBE-CLUSTER-IP hash:ip,port family inet\nadd KUBE-CLUSTER-IP 10.96.0.80,tcp:80\n');
    });
    const ta = traffic(a);
    expect(ta.filter((p) => p.verdict === 'FORWARD').length).toBeGreaterThan(40);
    expect(traffic(b)).toEqual(ta);
  });

  it('records control calls only: packets, reads and expiry leave the log alone', async () => {
    const dp = await Dataplane.create({ ...NODE, record: true });
    dp.setServices([{ vip: '10.96.0.80', port: 80, endpoints: ['10.244.1.11:8080'] }]);
    const before = dp.configLog!.ops.length;
    traffic(dp);
    dp.conntrack();
    dp.stats();
    dp.expire(10_000);
    expect(dp.configLog!.ops.length).toBe(before);
    const plain = await Dataplane.create(NODE);
    expect(plain.configLog).toBeUndefined();
    expect(() => plain.compiled()).toThrow(/record: true/);
  });
});

describe('.svp op table', () => {
  it('names exports of the core with their exact parameter counts', async () => {
    const core = (await instantiateCore()) as unknown as Record<string, (...a: number[]) => unknown>;
    for (const op of SVP_OPS) {
      expect(typeof core[op.name], op.name).toBe('function');
      expect(core[op.name]!.length, op.name).toBe(op.argc);
    }
    expect(new Set(SVP_OPS.map((o) => o.id)).size).toBe(SVP_OPS.length);
  });
});

describe('.svp rejection', () => {
  const good = async () => {
    const dp = await Dataplane.create({ ...NODE, record: true });
    dp.setServices([{ vip: '10.96.0.80', port: 80, endpoints: ['10.244.1.11:8080'] }]);
    return dp.compiled();
  };
  const reseal = (b: Uint8Array) => {
    new DataView(b.buffer, b.byteOffset).setUint32(16, crc32([b.subarray(SVP_HEADER_BYTES)]), true);
    return b;
  };
  const rejects = async (bytes: Uint8Array, pattern: RegExp) => {
    await expect(Dataplane.load(bytes)).rejects.toThrow(SvpError);
    await expect(Dataplane.load(bytes)).rejects.toThrow(pattern);
  };

  it('refuses a damaged, truncated, foreign or wrong-version file, naming the fault', async () => {
    const svp = await good();
    const flipped = svp.slice(); flipped[svp.length - 20]! ^= 0x40;
    await rejects(flipped, /checksum mismatch/);
    await rejects(svp.slice(0, svp.length - 8), /truncated/);
    await rejects(svp.slice(0, 10), /truncated: 10 bytes/);
    await rejects(new Uint8Array([...svp, 0, 0, 0, 0, 0, 0, 0, 0]), /trailing bytes/);
    const magic = svp.slice(); magic[0] = 0x7f;
    await rejects(magic, /not a svcplane config/);
    const v2 = svp.slice(); v2[4] = 2;
    await rejects(v2, /format version 2, this host reads version 1/);
    const abi = svp.slice(); abi[6] = 9;
    await rejects(abi, /core ABI version 9/);
  });

  it('refuses an unknown op, a wrong argument count and a blob on a blob-less call', async () => {
    const svp = await good();
    const metaLen = new DataView(svp.buffer).getUint32(20, true);
    const first = SVP_HEADER_BYTES + ((metaLen + 7) & ~7);
    const unknown = svp.slice(); unknown[first] = 250; unknown[first + 1] = 0;
    await rejects(reseal(unknown), /op #0 at byte \d+: unknown op id 250/);
    const argc = svp.slice(); argc[first + 2] = 3;
    await rejects(reseal(argc), /init takes 4 arguments, not 3/);
    const blob = svp.slice(); blob[first + 4] = 8;
    await rejects(reseal(blob), /init with a blob of 8 bytes/);
  });

  it('refuses a file whose calls would configure the core differently than recorded', async () => {
    const svp = decodeSvp(await good());
    const load = svp.ops.find((o) => SVP_OPS.find((s) => s.id === o.id)!.name === 'loadServices')!;
    load.result = 5;
    await rejects(encodeSvp(svp.ops), /loadServices returned 1, it returned 5 when the config was compiled/);
  });

  it('refuses meta that is no object or records an option of the wrong kind, before any call; keeps good options', async () => {
    const { ops, meta } = decodeSvp(await good());
    const options = meta.options as Record<string, unknown>;
    const withMeta = (m: unknown) => encodeSvp(ops, m as Record<string, unknown>);
    await rejects(withMeta(null), /meta block is not a JSON object/);
    await rejects(withMeta([1]), /meta block is not a JSON object/);
    await rejects(withMeta({ options: 'x' }), /meta\.options is not an object/);
    for (const seed of ['abc', '1.5', 1.5, 2 ** 60]) await rejects(withMeta({ options: { ...options, seed } }), /meta\.options\.seed is not an integer/);
    await rejects(withMeta({ options: { ...options, nodeIPs: '198.18.0.1' } }), /meta\.options\.nodeIPs is not of its kind/);
    await rejects(withMeta({ options: { ...options, podCIDR: 7 } }), /meta\.options\.podCIDR is not of its kind/);
    const dp = await Dataplane.load(withMeta({ options: { ...options, seed: '-12', extra: { any: 1 } } }));
    expect((dp as unknown as { options: Record<string, unknown> }).options).toMatchObject({ nodeIPs: options.nodeIPs, seed: -12n });
    expect((dp as unknown as { options: Record<string, unknown> }).options.extra).toBeUndefined();
  });
});
