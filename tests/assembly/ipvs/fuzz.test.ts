// Bad input never traps: mutated and random packets through every scheduler and forwarding method,
// and control calls with ids and values out of range.
import { describe, it, expect } from 'vitest';
import { Lab, tcp, udp } from './harness';
import { buildPacket } from '../../../host-node/core/packet';
import { SCHEDULERS } from '../../../host-node/ipvs/program';

describe('fuzz', () => {
  it('packets: mutated and random bytes, small slots', () => {
    const lab = new Lab({ connLog2: 8 });
    lab.p.setTunnelSource('198.18.0.1');
    const fwds = ['masq', 'droute', 'tunnel', 'local'] as const;
    SCHEDULERS.forEach((scheduler, k) => {
      lab.service({ protocol: k % 2 ? 'udp' : 'tcp', address: '198.18.0.100', port: 80 + k, scheduler, persistent: k % 3 ? undefined : 30, onePacket: k % 4 === 1 },
        [1, 2, 3].map((i) => ({ address: `198.18.1.${i}`, port: 0, forwarding: fwds[(k + i) % 4], weight: i - 1, upperThreshold: 2 })));
    });
    let seed = 4242;
    const rnd = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) % n;
    const bases = [
      buildPacket(tcp('198.18.7.1', 1000, '198.18.0.100', 80, 'S', 10)),
      buildPacket(udp('198.18.7.1', 1000, '198.18.0.100', 81, 10)),
      buildPacket({ src: '198.18.1.1', dst: '198.18.7.1', proto: 'icmp', icmp: { type: 3, code: 3, quote: buildPacket(udp('198.18.7.1', 1000, '198.18.1.1', 81)) } }),
    ];
    let handled = 0;
    for (let i = 0; i < 4000; i++) {
      let p: Uint8Array;
      if (i % 3 === 0) {
        p = new Uint8Array(1 + rnd(120));
        for (let j = 0; j < p.length; j++) p[j] = rnd(256);
        p[0] = (i & 4 ? 0x45 : 0x60) | (p[0]! & 15);
      } else {
        p = bases[i % bases.length]!.slice();
        for (let m = 0; m < 1 + rnd(3); m++) p[rnd(p.length)] = rnd(256);
        if (i % 7 === 0) p[9] = [6, 17, 132, 1][rnd(4)]!;
      }
      const s = lab.send(p, { now: i * 37, cap: p.length + rnd(48), mark: rnd(3) });
      if (s.verdict !== 255) handled++;
      if (i % 500 === 0) { lab.p.expire(i * 37); lab.p.tick(i * 37); }
    }
    expect(handled).toBeGreaterThan(100);
  });

  it('control calls with ids and values out of range return codes', () => {
    const lab = new Lab({ services: 4, destinations: 4 });
    const x = lab.x;
    const big = [0xffffffff, 0x7fffffff, 1 << 20, 12345];
    for (const v of big) {
      expect(x.ipvsDeleteService!(v)).toBeLessThan(0);
      expect(x.ipvsEditService!(v, 0, 0, 0, 0, 0)).toBeLessThan(0);
      expect(x.ipvsAddDest!(v, 4, 1, 0, 0, 0, 80, 0, 1, 0, 0)).toBeLessThan(0);
      expect(x.ipvsEditDest!(0, v, 0, 1, 0, 0)).toBeLessThan(0);
      expect(x.ipvsDeleteDest!(0, v)).toBeLessThan(0);
      expect(x.ipvsDestInfo!(v)).toBe(0);
      expect(x.ipvsServiceInfo!(v)).toBe(0);
      expect(x.ipvsConnInfo!(v, 0)).toBe(0);
      expect(x.ipvsDestStats!(v)).toBe(0);
      expect(x.ipvsSetSysctl!(v, 1)).toBeLessThan(0);
      expect(x.ipvsAddService!(4, 6, 1, 0, 0, 0, 80, 0, v, 0, 0, 0, 0)).toBeLessThan(0);
      expect(x.ipvsAddService!(v, 6, 1, 0, 0, 0, 80, 0, 0, 0, 0, 0, 0)).toBeLessThan(0);
    }
    expect(x.ipvsAddService!(4, 1, 1, 0, 0, 0, 80, 0, 0, 0, 0, 0, 0)).toBe(-1);     // ICMP is not a service protocol
    expect(x.ipvsAddService!(4, 6, 1, 2, 0, 0, 80, 0, 0, 0, 0, 0, 0)).toBe(-1);     // IPv4 with IPv6 words
    expect(x.ipvsSetSysctl!(4, 0x80000000)).toBe(-1);
    expect(x.ipvsTrace!(5, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)).toBe(-1);
  });
});
