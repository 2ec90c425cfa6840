// The iptables and direct modes agree on random clusters, not only on the hand-written flow tables:
// for every frontend of every service port (cluster IP, external and load-balancer IPs, node ports
// on the node address and on loopback) and clients in the pod network, outside it, on the node and
// on loopback, the two traces give the same outcomes (verdict, endpoint, masquerade), under node
// settings that vary (no pod CIDR, --masquerade-all, --nodeport-addresses), in IPv4 and IPv6.
// The iptables mode runs kube-proxy's own rules, so it is the reference. For the node's own
// packets masquerade is not compared: their source already is the address masquerade would give
// (dp.trace in iptables mode reports the mark, the direct table the decision). The ipvs mode differs
// from both where kube-proxy's modes do (differences.test.ts) and is left out.
import { describe, it, expect } from 'vitest';
import { Dataplane, type TraceQuery } from '../../../../host-node/dataplane.js';
import type { ProtoName } from '../../../../host-node/core/packet.js';
import { randomCluster, NODE_IP, NODE_IP6, NODE_NAME, POD_CIDR, POD_CIDR6 } from '../../../support/kube-gen.js';

const FAMILIES = [
  { family: 4 as const, node: NODE_IP, podCIDR: POD_CIDR, loopback: '127.0.0.1', pod: '198.19.250.7', outside: '198.18.100.9', nodePortNet: '198.18.200.0/24', seeds: 12 },
  { family: 6 as const, node: NODE_IP6, podCIDR: POD_CIDR6, loopback: '::1', pod: 'fd00:198:19::fa07', outside: 'fd00:198:18:100::9', nodePortNet: 'fd00:198:18:200::/64', seeds: 12 },
];

type Trace = ReturnType<Dataplane['trace']>;
const outcomes = (t: Trace, fromNode: boolean): string =>
  [...new Set(t.outcomes.map((o) => `${o.verdict}${o.to ? ` ${o.to}` : ''}${o.masq && !fromNode ? ' masq' : ''}`))].sort().join(', ');

describe('iptables and direct modes on random clusters', () => {
  for (const fam of FAMILIES) {
    it(`IPv${fam.family}: the same outcomes for every frontend and client`, async () => {
      const settings = [
        { podCIDR: fam.podCIDR, iptables: {} },
        { podCIDR: undefined, iptables: {} },
        { podCIDR: fam.podCIDR, iptables: { masqueradeAll: true } },
        { podCIDR: fam.podCIDR, iptables: { nodePortAddresses: [fam.family === 4 ? '127.0.0.0/8' : '::1/128'] } },
        { podCIDR: fam.podCIDR, iptables: { nodePortAddresses: [fam.nodePortNet], localhostNodePorts: false } },
      ];
      const clients = [
        { src: fam.pod, from: 'external' as const }, { src: fam.outside, from: 'external' as const },
        { src: fam.node, from: 'local' as const }, { src: fam.loopback, from: 'local' as const },
      ];
      let compared = 0;
      const verdicts = new Set<string>();
      for (let seed = 1; seed <= fam.seeds; seed++) {
        const c = randomCluster(seed, { family: fam.family });
        const set = settings[seed % settings.length]!;
        const dp = async (mode: 'iptables' | 'direct') => {
          const d = await Dataplane.create({ nodeIPs: [fam.node], ...(set.podCIDR ? { podCIDR: set.podCIDR } : {}), seed });
          expect(d.apply({ services: c.services, endpointSlices: c.slices, nodes: [] }, { mode, nodeName: NODE_NAME, iptables: set.iptables }).issues).toEqual([]);
          return d;
        };
        const ipt = await dp('iptables'), direct = await dp('direct');
        let sport = 20000;
        for (const svc of c.services) {
          for (const port of svc.spec.ports) {
            const addrs = [svc.spec.clusterIP, ...svc.spec.externalIPs, ...svc.status.loadBalancer.ingress.map((i) => i.ip ?? '')].filter((a) => a !== '');
            const frontends = [
              ...addrs.map((dst) => ({ dst, dport: port.port })),
              ...(port.nodePort ? [{ dst: fam.node, dport: port.nodePort }, { dst: fam.loopback, dport: port.nodePort }] : []),
            ];
            for (const f of frontends) {
              for (const client of clients) {
                // Loopback only talks to loopback.
                if ((client.src === fam.loopback) !== (f.dst === fam.loopback)) continue;
                const q: TraceQuery = { src: client.src, dst: f.dst, dport: f.dport, sport: ++sport, proto: port.protocol.toLowerCase() as ProtoName, from: client.from };
                const fromNode = client.from === 'local';
                const want = outcomes(ipt.trace(q), fromNode);
                expect(outcomes(direct.trace(q), fromNode), `seed ${seed} ${svc.metadata.name} ${JSON.stringify(q)}`).toBe(want);
                for (const v of want.split(', ')) verdicts.add(v.split(' ')[0]!);
                compared++;
              }
            }
          }
        }
      }
      // The clusters reach every kind of outcome.
      expect(compared).toBeGreaterThan(fam.seeds * 40);
      expect([...verdicts].sort()).toEqual(['DROP', 'FORWARD', 'PASS', 'REPLY']);
    }, 120_000);
  }
});
