// The batch look-ahead (assembly/netfilter/lookahead.ts) only loads memory ahead of the walk: a
// batch must give exactly what the same packets give one at a time — verdicts, rewritten bytes,
// conntrack states, statistic draws, rule counters, core counters — on kube-proxy's own rules,
// also across restores that reshape or remove the chain the look-ahead's hint names, and with
// packets it does not understand (IPv6, fragments, truncated and random bytes) mixed in.
import { describe, it, expect } from 'vitest';
import { Dataplane } from '../../../host-node/dataplane.js';
import { buildPacket, type PacketIn } from '../../../host-node/core/packet.js';
import { DESC, REASONS, VERDICTS } from '../../../host-node/core/abi.js';
import { KUBE_BASE_RULES, NODE_ADDRS } from '../../support/kernel-node.js';
import { benchCluster, proxyStateFor, renderSync, Rng, POD_CIDR, type Cluster } from '../../support/kube-gen.js';

async function twin(): Promise<Dataplane> {
  const dp = await Dataplane.create({ nodeIPs: NODE_ADDRS, podCIDR: POD_CIDR, seed: 7, conntrackCapacity: 1 << 14 });
  dp.iptablesRestore(KUBE_BASE_RULES);
  return dp;
}

function rules(c: Cluster): string {
  return renderSync(proxyStateFor(c)).render.text;
}

// New SYNs to the cluster's Services, resends of earlier ones, locally sent ones, traffic to no
// Service, UDP, a later fragment, IPv6, and bytes that are no packet at all.
function traffic(c: Cluster, rng: Rng, n: number, base: number): Array<Uint8Array | PacketIn> {
  const out: Array<Uint8Array | PacketIn> = [];
  const sent: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const svc = c.services[rng.int(0, c.services.length - 1)]!;
    const src = `198.18.${100 + rng.int(0, 3)}.${1 + rng.int(0, 200)}`;
    const sport = base + i;
    const kind = rng.int(0, 11);
    let p: Uint8Array;
    if (kind <= 4) {
      p = buildPacket({ src, dst: svc.spec.clusterIP!, proto: 'tcp', sport, dport: 80, flags: 'S' });
      sent.push(p);
    } else if (kind === 5 && sent.length > 0) {
      p = sent[rng.int(0, sent.length - 1)]!;
    } else if (kind === 6) {
      out.push({ bytes: buildPacket({ src: NODE_ADDRS[0]!, dst: svc.spec.clusterIP!, proto: 'tcp', sport, dport: 80, flags: 'S' }), local: true });
      continue;
    } else if (kind === 7) {
      p = buildPacket({ src, dst: svc.spec.clusterIP!, proto: 'udp', sport, dport: 80, payload: 'x' });
    } else if (kind === 8) {
      p = buildPacket({ src, dst: '198.19.250.9', proto: 'tcp', sport, dport: 80, flags: 'S' });
    } else if (kind === 9) {
      p = buildPacket({ src, dst: svc.spec.clusterIP!, proto: 'tcp', sport, dport: 80, flags: 'S' });
      p[6] = 0x00; p[7] = 0x10;   // fragment offset 128 bytes: a later fragment
    } else if (kind === 10) {
      p = buildPacket({ src: 'fd00:18::5', dst: 'fd00:96::1', proto: 'tcp', sport, dport: 80, flags: 'S' });
    } else {
      p = new Uint8Array(1 + rng.int(0, 60));
      for (let k = 0; k < p.length; k++) p[k] = rng.int(0, 255);
      if (p.length > 0 && rng.int(0, 1) === 0) p[0] = 0x45;
    }
    out.push(p);
  }
  return out;
}

describe('batch look-ahead', () => {
  it('a batch gives exactly what its packets give one at a time, across restores that reshape the dispatch', async () => {
    const batched = await twin();
    const single = await twin();
    const rng = new Rng(21);
    // 40 Services: KUBE-SERVICES is indexed (the hint); 3: too few rules for an index; 60: a new
    // index, chains replaced; then the 40 again with --noflush over those.
    const steps = [benchCluster(40), benchCluster(3), benchCluster(60, { first: 100 }), benchCluster(40)];
    let now = 1000;
    let dnat = 0;
    for (const [k, cluster] of steps.entries()) {
      const text = rules(cluster);
      batched.iptablesRestore(text, { noflush: true });
      single.iptablesRestore(text, { noflush: true });
      for (let round = 0; round < 3; round++) {
        const pkts = traffic(cluster, rng, 700, 2000 + k * 5000 + round * 1000);
        const a = batched.processBatch(pkts, now);
        const b = pkts.map((p) => single.process(p, now));
        expect(a.length).toBe(b.length);
        for (let i = 0; i < a.length; i++) expect(a[i], `step ${k} round ${round} packet ${i}`).toEqual(b[i]);
        now += 50;
      }
      expect(batched.iptablesSave({ counters: true })).toBe(single.iptablesSave({ counters: true }));
      const sa = batched.stats(), sb = single.stats();
      // The one-at-a-time twin made more calls; everything else must agree.
      delete sa.batches; delete sb.batches; delete sa.reaped; delete sb.reaped;
      expect(sa).toEqual(sb);
      dnat = sa.dnat!;
    }
    // The traffic did reach the services (the comparison above is not between two idle cores).
    expect(dnat).toBeGreaterThan(3000);
    expect(batched.conntrack(now).length).toBe(single.conntrack(now).length);
  });

  it('descriptors a host got wrong (outside the arena, longer than their room) are dropped as bad slots, never read ahead', async () => {
    const dp = await twin();
    const cluster = benchCluster(40);
    dp.iptablesRestore(rules(cluster), { noflush: true });
    const core = dp.core;
    const u8 = new Uint8Array(core.memory.buffer), dv = new DataView(core.memory.buffer);
    const base = core.ioDataPtr(), desc = core.ioDescPtr(), arena = core.ioDataBytes();
    const n = 64;
    const bad = (i: number): boolean => i % 3 === 1;
    for (let i = 0; i < n; i++) {
      const p = buildPacket({ src: `198.18.100.${1 + i}`, dst: cluster.services[i % 40]!.spec.clusterIP!, proto: 'tcp', sport: 3000 + i, dport: 80, flags: 'S' });
      const d = desc + i * DESC.bytes;
      u8.set(p, base + i * 128);
      // Bad ones: an offset past the arena, a slot running over its end, or more bytes than room.
      const kind = i % 9;
      dv.setUint32(d + DESC.off, !bad(i) ? i * 128 : kind === 1 ? arena + 64 : kind === 4 ? arena - 40 : i * 128, true);
      dv.setUint32(d + DESC.len, !bad(i) || kind !== 7 ? p.length : 200, true);
      dv.setUint32(d + DESC.cap, !bad(i) ? 128 : kind === 7 ? 100 : 128, true);
      dv.setUint32(d + DESC.meta, 0, true);
    }
    expect(core.processBatch(n, 5000)).toBe(n);
    for (let i = 0; i < n; i++) {
      const d = desc + i * DESC.bytes;
      const verdict = VERDICTS[dv.getUint8(d + DESC.verdict)], reason = REASONS[dv.getUint16(d + DESC.reason, true)];
      if (bad(i)) expect([verdict, reason], `packet ${i}`).toEqual(['DROP', 'bad_slot']);
      else expect(verdict, `packet ${i}`).toBe('FORWARD');
    }
  });
});
