// Random and mutated packets through a full kube-proxy-like ruleset (NAT, REJECT, recent, statistic,
// conntrack matches) and through the trace: the core never traps, every verdict is one of the four,
// and every drop names a reason.
import { describe, it, expect } from 'vitest';
import { buildPacket } from '../../../host-node/core/packet';
import { Bench, tcp, udp } from './harness';

const RULES = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:SVC - [0:0]
:SEP - [0:0]
-A PREROUTING -d 198.19.0.10/32 -p tcp --dport 80 -j SVC
-A PREROUTING -d 198.19.0.10/32 -p udp --dport 53 -j SVC
-A SVC -m recent --name SEP --rcheck --seconds 100 --reap -j SEP
-A SVC -m statistic --mode random --probability 0.5 -j SEP
-A SVC -p tcp -j DNAT --to-destination 198.18.0.9:8080
-A SVC -p udp -j DNAT --to-destination 198.18.0.9:5353
-A SEP -m recent --name SEP --set -p tcp -j DNAT --to-destination 198.18.0.8:8080
-A SEP -p udp -j DNAT --to-destination 198.18.0.8:5353
-A POSTROUTING ! -s 198.18.0.0/16 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -d 198.19.0.11/32 -p tcp -j REJECT --reject-with tcp-reset
-A FORWARD -d 198.19.0.11/32 -j REJECT
-A INPUT -p icmp -j REJECT --reject-with icmp-host-prohibited
COMMIT
`;

describe('fuzz', () => {
  it('random and mutated packets never trap, verdicts and reasons stay in range', () => {
    const b = new Bench();
    b.local('198.19.255.1');
    b.masq('198.19.255.1');
    b.restore(RULES);
    let seed = 99;
    const rnd = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) % n;
    const seeds = [
      buildPacket(tcp('198.19.7.1', '198.19.0.10', 1000, 80)),
      buildPacket(udp('198.19.7.1', '198.19.0.10', 1000, 53, { payload: 'q' })),
      buildPacket(tcp('198.19.7.1', '198.19.0.11', 1000, 22)),
      buildPacket({ src: '198.19.7.1', dst: '198.19.255.1', proto: 'icmp', icmp: { type: 8, id: 1 } }),
      buildPacket(tcp('fd00::1', 'fd00::2', 1, 2)),
    ];
    for (let i = 0; i < 3000; i++) {
      let p: Uint8Array;
      if (i % 3 === 0) {
        p = new Uint8Array(rnd(120));
        for (let k = 0; k < p.length; k++) p[k] = rnd(256);
        if (p.length > 0 && rnd(2) === 0) p[0] = rnd(2) ? 0x45 : 0x60;
      } else {
        p = seeds[rnd(seeds.length)]!.slice();
        for (let k = rnd(4); k >= 0; k--) p[rnd(p.length)] = rnd(256);
      }
      // Half of them as checksum-verified: garbage then reaches conntrack and NAT, not only INVALID.
      const r = b.send(p, { now: 1000 + i, cap: p.length + rnd(200), checksumVerified: rnd(2) === 0 });
      expect(r.verdict).toBeLessThanOrEqual(3);
      if (r.verdict === 2) expect(r.reason).toBeGreaterThan(0);
      if (i % 50 === 0) expect(() => b.trace(tcp('198.19.7.1', '198.19.0.10', 1000 + i, 80))).not.toThrow();
    }
  });
});
