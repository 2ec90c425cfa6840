// dp.trace explains what the core really does, in every mode: for random clusters, every frontend
// of every service port (cluster IP, external and load-balancer IPs, node ports on the node
// address) and clients in the pod network, outside it and on the node itself, the first packet the
// core really processes ends as one of the outcomes the trace gave (same verdict, same destination,
// same masquerade), and the outcomes' exact probabilities add up to one. In direct mode the shares
// are the core's own draws (randBelow).
import { describe, it, expect } from 'vitest';
import { Dataplane, type TraceQuery } from '../../host-node/dataplane.js';
import { buildPacket, decodePacket, type ProtoName } from '../../host-node/core/packet.js';
import { choiceShare } from '../../host-node/kube/direct-explain.js';
import { randomCluster, NODE_IP, NODE_NAME, POD_CIDR } from '../support/kube-gen.js';

const CLIENTS: Array<{ src: string; from: 'external' | 'local' }> = [
  { src: '198.19.250.7', from: 'external' },   // a pod that is no endpoint
  { src: '198.18.100.9', from: 'external' },   // outside the pod network
  { src: NODE_IP, from: 'local' },
];

describe('dp.trace agrees with the core', () => {
  it.each(['iptables', 'ipvs', 'direct'] as const)('%s mode: the core\'s own verdict for a first packet is always one of the traced outcomes', async (mode) => {
    let sport = 20000, compared = 0, forwarded = 0;
    // The node's settings vary: a pod CIDR (the local-traffic detector) or none, --masquerade-all,
    // --nodeport-addresses leaving the node address out.
    const settings = [
      { podCIDR: POD_CIDR, iptables: {} },
      { podCIDR: undefined, iptables: {} },
      { podCIDR: POD_CIDR, iptables: { masqueradeAll: true } },
      { podCIDR: POD_CIDR, iptables: { nodePortAddresses: ['127.0.0.0/8'] } },
    ];
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const c = randomCluster(seed);
      const set = settings[seed % settings.length]!;
      const dp = await Dataplane.create({ nodeIPs: [NODE_IP], ...(set.podCIDR ? { podCIDR: set.podCIDR } : {}), seed });
      expect(dp.apply({ services: c.services, endpointSlices: c.slices, nodes: [] }, { mode, nodeName: NODE_NAME, iptables: set.iptables }).issues).toEqual([]);
      for (const svc of c.services) {
        for (const port of svc.spec.ports) {
          const proto = port.protocol.toLowerCase() as ProtoName;
          const frontends = [
            ...[svc.spec.clusterIP, ...svc.spec.externalIPs, ...svc.status.loadBalancer.ingress.map((i) => i.ip!)].map((dst) => ({ dst, dport: port.port })),
            ...(port.nodePort ? [{ dst: NODE_IP, dport: port.nodePort }] : []),
          ];
          for (const f of frontends) {
            for (const client of CLIENTS) {
              const q: TraceQuery = { src: client.src, dst: f.dst, dport: f.dport, sport: ++sport, proto, from: client.from };
              const t = dp.trace(q);
              const k = Math.max(...t.outcomes.map((o) => o.exact.denominatorLog2));
              const total = t.outcomes.reduce((n, o) => n + (o.exact.numerator << BigInt(k - o.exact.denominatorLog2)), 0n);
              if (mode !== 'ipvs') expect(total, JSON.stringify(q)).toBe(1n << BigInt(k));
              const bytes = buildPacket({ src: q.src, dst: q.dst, proto, sport: q.sport!, dport: q.dport!, ...(proto === 'tcp' ? { flags: 'S' } : {}) });
              const r = dp.process(client.from === 'local' ? { bytes, local: true } : bytes, 1000 + sport);
              const where = `${JSON.stringify(q)} → ${r.verdict} ${r.reason}`;
              if (r.verdict === 'FORWARD' && r.packet) {
                const out = decodePacket(r.packet);
                const rewritten = out.dst !== f.dst || out.dport !== f.dport;
                const o = t.outcomes.find((x) => x.verdict === 'FORWARD' && (rewritten ? x.to === `${out.dst}:${out.dport}` : x.to === undefined));
                expect(o, where).toBeDefined();
                // Masquerade shows as a new source, except for the node itself: its address is the masquerade source.
                if (q.src !== NODE_IP) expect(o!.masq, where).toBe(out.src !== q.src);
                if (rewritten) forwarded++;
              } else {
                expect(t.outcomes.map((x) => x.verdict), where).toEqual([r.verdict]);
              }
              compared++;
            }
          }
        }
      }
    }
    expect(compared).toBeGreaterThan(200);
    expect(forwarded).toBeGreaterThan(100);
  });

  it('direct mode gives each of n endpoints its exact share of the core\'s draws (randBelow: top 32 bits × n)', () => {
    for (const n of [1, 2, 3, 7, 10, 1000]) {
      const shares = Array.from({ length: n }, (_, i) => choiceShare(i, n));
      expect(shares.reduce((a, b) => a + b, 0n)).toBe(1n << 32n);
      // Each share is the count of 32-bit draws r with floor(r·n / 2^32) = i: within one of 2^32/n.
      for (const s of shares) expect(Math.abs(Number(s) - 2 ** 32 / n)).toBeLessThanOrEqual(1);
    }
    // The first draw that picks endpoint 1 of 3 is ceil(2^32 / 3).
    expect(choiceShare(0, 3)).toBe(BigInt(Math.ceil(2 ** 32 / 3)));
  });
});
