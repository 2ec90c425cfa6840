// Random and mutated packets through the whole core (parse, conntrack, service lookup, NAT, ICMP
// error translation): never a trap or an exception, every drop counted under a reason, memory
// never grows on the packet path.
import { describe, it, expect } from 'vitest';
import { Dataplane, type PacketIn } from '../../../host-node/core/dataplane.js';
import { buildPacket } from '../../../host-node/core/packet.js';

function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) & 0xff;
}

describe('core fuzz', () => {
  it('survives 200k random and mutated packets with every drop counted', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['192.168.49.2', 'fd00:49::2'], podCIDR: '10.244.0.0/16', seed: 11, conntrackCapacity: 1 << 12 });
    dp.setServices([
      { vip: '10.96.0.80', port: 80, protocol: 'TCP', endpoints: ['10.244.1.11:8080'] },
      { vip: '10.96.0.10', port: 53, protocol: 'UDP', endpoints: ['10.244.1.21:53'] },
      { vip: 'fd00:96::80', port: 80, protocol: 'TCP', endpoints: ['[fd00:244::11]:8080'] },
      { vip: '10.96.0.7', port: 7, protocol: 'SCTP', endpoints: ['10.244.1.7:7'] },
    ]);
    const r = rng(7);
    const seeds = [
      buildPacket({ src: '10.244.1.5', dst: '10.96.0.80', proto: 'tcp', sport: 4000, dport: 80, flags: 'S' }),
      buildPacket({ src: '10.244.1.11', dst: '10.244.1.5', proto: 'tcp', sport: 8080, dport: 4000, flags: 'SA' }),
      buildPacket({ src: '203.0.113.1', dst: '10.96.0.10', proto: 'udp', sport: 5353, dport: 53, payload: 'q' }),
      buildPacket({ src: 'fd00:244::5', dst: 'fd00:96::80', proto: 'tcp', sport: 4000, dport: 80, flags: 'S' }),
      buildPacket({ src: '10.244.1.5', dst: '10.96.0.7', proto: 'sctp', sport: 7, dport: 7 }),
      buildPacket({ src: '10.244.1.5', dst: '10.96.0.80', proto: 'icmp', icmp: { type: 8, code: 0, id: 9, seq: 1 } }),
      buildPacket({
        src: '10.244.1.11', dst: '10.244.1.5', proto: 'icmp',
        icmp: { type: 3, code: 3, quote: buildPacket({ src: '10.244.1.5', dst: '10.244.1.11', proto: 'udp', sport: 5353, dport: 53 }) },
      }),
    ];
    const memBefore = dp.core.memory.buffer.byteLength;
    let total = 0;
    for (let round = 0; round < 800; round++) {
      const batch: Array<Uint8Array | PacketIn> = [];
      for (let i = 0; i < 250; i++) {
        const kind = r() % 4;
        let p: Uint8Array;
        if (kind === 0) {
          p = new Uint8Array(r() % 120);
          for (let k = 0; k < p.length; k++) p[k] = r();
          if (p.length) p[0] = ((r() & 1 ? 4 : 6) << 4) | (p[0]! & 15);
        } else {
          p = seeds[r() % seeds.length]!.slice(0, kind === 1 ? undefined : r() % 80);
          for (let m = r() % 6; m > 0; m--) if (p.length) p[r() % p.length] = r();
        }
        // Half of them as the node's own: past the checksum checks, garbage reaches NAT and the
        // ICMP error translation as before those checks existed.
        batch.push(r() & 1 ? { bytes: p, local: true } : p);
      }
      const results = dp.processBatch(batch, round * 50);
      expect(results).toHaveLength(batch.length);
      for (const res of results) {
        if (res.verdict === 'DROP') expect(res.reason).toBeTruthy();
      }
      total += batch.length;
    }
    const s = dp.stats();
    expect(s.packets).toBe(total);
    expect(s.verdict_pass + s.verdict_forward + s.verdict_drop + s.verdict_reply).toBe(total);
    const reasons = Object.entries(s).filter(([k]) => k.startsWith('drop_')).reduce((n, [, v]) => n + v, 0);
    expect(reasons).toBe(s.verdict_drop);
    expect(s.verdict_drop).toBeGreaterThan(total / 4);
    expect(s.verdict_forward).toBeGreaterThan(100);
    // The rest meet the checksum checks of a packet coming in.
    expect(s.drop_conntrack_invalid).toBeGreaterThan(100);
    expect(s.drop_bad_header).toBeGreaterThan(100);
    expect(dp.core.memory.buffer.byteLength).toBe(memBefore);
  });
});
