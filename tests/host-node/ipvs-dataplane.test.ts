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
