// IPVS through the Dataplane's ordinary packet path: a virtual service scheduled round-robin,
// masquerading rewrites with the reply un-NATed, and connections kept per client.
import { describe, it, expect } from 'vitest';
import { Dataplane } from '../../host-node/dataplane.js';
import { buildPacket, decodePacket, checksumsValid } from '../../host-node/core/packet.js';

describe('IPVS on the Dataplane', () => {
  it('schedules rr over three real servers, keeps each connection, and un-NATs replies', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['198.18.0.254'], seed: 2 });
    dp.ipvs().apply([{ protocol: 'tcp', address: '198.18.0.100', port: 80, scheduler: 'rr', destinations: [
      { address: '198.18.1.1', port: 8080, forwarding: 'masq' },
      { address: '198.18.1.2', port: 8080, forwarding: 'masq' },
      { address: '198.18.1.3', port: 8080, forwarding: 'masq' },
    ] }]);
    const picks: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = dp.process(buildPacket({ src: '198.18.2.1', dst: '198.18.0.100', proto: 'tcp', sport: 5000 + i, dport: 80, flags: 'S' }), 10 + i);
      expect(r.verdict).toBe('FORWARD');
      expect(checksumsValid(r.packet!)).toBe(true);
      const p = decodePacket(r.packet!);
      expect(p.dport).toBe(8080);
      picks.push(p.dst);
    }
    // Round robin: each server in turn, the same order twice.
    expect(new Set(picks.slice(0, 3)).size).toBe(3);
    expect(picks.slice(3)).toEqual(picks.slice(0, 3));

    // The first connection's next packet goes to the same server; its reply comes back from the VIP.
    const again = decodePacket(dp.process(buildPacket({ src: '198.18.2.1', dst: '198.18.0.100', proto: 'tcp', sport: 5000, dport: 80, flags: 'A' }), 20).packet!);
    expect(again.dst).toBe(picks[0]);
    const reply = dp.process(buildPacket({ src: picks[0]!, dst: '198.18.2.1', proto: 'tcp', sport: 8080, dport: 5000, flags: 'SA' }), 21);
    const back = decodePacket(reply.packet!);
    expect([back.src, back.sport, back.dst, back.dport]).toEqual(['198.18.0.100', 80, '198.18.2.1', 5000]);
    expect(dp.ipvs().connections(22).length).toBe(6);
  });
});

describe('IPVS service slots', () => {
  it('are reusable after deleting services that had destinations (no double free)', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['198.18.0.254'], seed: 3 });
    const p = dp.ipvs({ services: 64, destinations: 256 });
    const fill = () => {
      const ids: number[] = [];
      for (let i = 0; i < 64; i++) {
        const s = p.addService({ protocol: 'tcp', address: `198.18.3.${i}`, port: 80, scheduler: 'rr' });
        p.addDest(s, { address: '198.18.1.1', port: 8080, forwarding: 'masq' });
        ids.push(s);
      }
      return ids;
    };
    fill();
    p.flush();
    // Every one of the 64 slots comes back (the pool, 64 at first, had no need to grow).
    expect(fill().sort((a, b) => a - b)).toEqual(Array.from({ length: 64 }, (_, i) => i));
    expect(p.services()).toHaveLength(64);
  });
});

describe('IPVS and a fragmented datagram', () => {
  // The kernel reassembles before IPVS, so every fragment of a datagram takes its forwarding: the
  // later fragments go into the same tunnel, or to the same real server, as the first.
  async function node() {
    const dp = await Dataplane.create({ nodeIPs: ['198.18.0.2'], seed: 5 });
    for (const line of [
      '-A -u 198.18.96.1:53 -s rr', '-a -u 198.18.96.1:53 -r 198.19.1.10:53 -i',
      '-A -u 198.18.96.2:53 -s rr', '-a -u 198.18.96.2:53 -r 198.19.1.11:53 -i --tun-type gue --tun-port 6080',
      '-A -u 198.18.96.3:53 -s rr', '-a -u 198.18.96.3:53 -r 198.19.1.12:53 -g',
      '-A -u 198.18.96.4:53 -s rr', '-a -u 198.18.96.4:53 -r 198.19.1.13:5353 -m',
    ]) expect(dp.ipvsadm(line).code).toBe(0);
    return dp;
  }
  const fragments = (vip: string, id: number) => [
    buildPacket({ src: '198.19.0.9', dst: vip, proto: 'udp', sport: 40000, dport: 53, payload: new Uint8Array(32).fill(7), frag: { offset: 0, more: true, id } }),
    buildPacket({ src: '198.19.0.9', dst: vip, proto: 'udp', payload: new Uint8Array(24).fill(8), frag: { offset: 40, more: false, id } }),
  ];
  /** Each result's side record: forwarding method and next hop (ipvs/xmit.ts). */
  const sides = (dp: Dataplane, n: number) => {
    const base = dp.core.ipvsResultPtr(), u8 = new Uint8Array(dp.core.memory.buffer);
    return Array.from({ length: n }, (_, k) => [u8[base + 32 * k], [...u8.subarray(base + 32 * k + 16, base + 32 * k + 20)].join('.')]);
  };

  it('IPIP and GUE tunnels: the later fragment is encapsulated to the real server as the first is', async () => {
    const dp = await node();
    for (const [vip, server, outer] of [['198.18.96.1', '198.19.1.10', 4], ['198.18.96.2', '198.19.1.11', 17]] as const) {
      const out = dp.processBatch(fragments(vip, 700), 1000);
      for (const r of out) {
        expect(r.verdict).toBe('FORWARD');
        const p = decodePacket(r.packet!);
        expect([p.proto, p.src, p.dst]).toEqual([outer, '198.18.0.2', server]);
        expect(p.checksumsOk).toBe(true);
      }
      expect(sides(dp, 2).map((s) => s[1])).toEqual([server, server]);
    }
  });

  it('direct routing: the later fragment has the first one\'s next hop; masquerading: its address', async () => {
    const dp = await node();
    const dr = dp.processBatch(fragments('198.18.96.3', 701), 1000);
    expect(dr.map((r) => [r.verdict, decodePacket(r.packet!).dst])).toEqual([['FORWARD', '198.18.96.3'], ['FORWARD', '198.18.96.3']]);
    expect(sides(dp, 2)).toEqual([[3, '198.19.1.12'], [3, '198.19.1.12']]);
    const masq = dp.processBatch(fragments('198.18.96.4', 702), 1000);
    expect(masq.map((r) => [r.verdict, decodePacket(r.packet!).dst])).toEqual([['FORWARD', '198.19.1.13'], ['FORWARD', '198.19.1.13']]);
  });
});
