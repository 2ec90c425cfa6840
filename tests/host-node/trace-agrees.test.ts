// dp.trace explains what the core really does, in every mode: for random clusters, every frontend
// of every service port (cluster IP, external and load-balancer IPs, node ports on the node
// address) and clients in the pod network, outside it and on the node itself, the first packet the
// core really processes ends as one of the outcomes the trace gave (same verdict, same destination,
// same masquerade), and the outcomes' exact probabilities add up to one. In direct mode the shares
// are the core's own draws (randBelow).
import { describe, it, expect } from 'vitest';
import { Dataplane, type TraceQuery } from '../../host-node/dataplane.js';
import type { TraceResult } from '../../host-node/netfilter/trace.js';
import { buildPacket, decodePacket, type ProtoName } from '../../host-node/core/packet.js';
import { choiceShare } from '../../host-node/kube/direct-explain.js';
import { randomCluster, Rng, NODE_IP, NODE_NAME, POD_CIDR } from '../support/kube-gen.js';

const CLIENTS: Array<{ src: string; from: 'external' | 'local' }> = [
  { src: '198.19.250.7', from: 'external' },   // a pod that is no endpoint
  { src: '198.18.100.9', from: 'external' },   // outside the pod network
  { src: NODE_IP, from: 'local' },
];

/**
 * Traces `q`, then sends its first packet through the core: the core's verdict, destination and
 * masquerade must be one of the traced outcomes. Returns the trace, and whether the core rewrote
 * the destination.
 */
function agree(dp: Dataplane, q: TraceQuery & { sport: number; dport: number; proto: ProtoName }): TraceResult & { rewritten: boolean } {
  const t = dp.trace(q);
  const bytes = buildPacket({ src: q.src, dst: q.dst, proto: q.proto, sport: q.sport, dport: q.dport, ...(q.proto === 'tcp' ? { flags: 'S' } : {}) });
  const r = dp.process(q.from === 'local' ? { bytes, local: true } : bytes, 1000 + q.sport);
  const where = `${JSON.stringify(q)} → ${r.verdict} ${r.reason}`;
  if (r.verdict !== 'FORWARD' || !r.packet) {
    expect(t.outcomes.map((x) => x.verdict), where).toEqual([r.verdict]);
    return { ...t, rewritten: false };
  }
  const out = decodePacket(r.packet);
  const rewritten = out.dst !== q.dst || out.dport !== q.dport;
  const o = t.outcomes.find((x) => x.verdict === 'FORWARD' && (rewritten ? x.to === `${out.dst}:${out.dport}` : x.to === undefined));
  expect(o, where).toBeDefined();
  // Masquerade shows as a new source, except for the node itself: its address is the masquerade source.
  if (q.src !== NODE_IP) expect(o!.masq, where).toBe(out.src !== q.src);
  return { ...t, rewritten };
}

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
              const t = agree(dp, { src: client.src, dst: f.dst, dport: f.dport, sport: ++sport, proto, from: client.from });
              if (mode !== 'ipvs') {
                const k = Math.max(...t.outcomes.map((o) => o.exact.denominatorLog2));
                expect(t.outcomes.reduce((n, o) => n + (o.exact.numerator << BigInt(k - o.exact.denominatorLog2)), 0n)).toBe(1n << BigInt(k));
              }
              if (t.rewritten) forwarded++;
              compared++;
            }
          }
        }
      }
    }
    expect(compared).toBeGreaterThan(200);
    expect(forwarded).toBeGreaterThan(100);
  });

  it.each(['iptables', 'ipvs', 'direct'] as const)('%s mode: so it does for odd but valid objects (an unnamed port, dual-stack, ipMode, /0 and node-IP source ranges, serving-only and terminating endpoints, hints, no pod CIDR, --nodeport-addresses)', async (mode) => {
    const rng = new Rng(mode.length * 7919);
    const maybe = <T>(p: number, v: () => T): T | undefined => (rng.chance(p) ? v() : undefined);
    let compared = 0;
    for (let round = 0; round < 6; round++) {
      const objects: object[] = [];
      for (let i = 0; i < 8; i++) {
        const ports = Array.from({ length: rng.int(1, 2) }, (_, k) => ({
          name: k === 0 ? rng.pick(['', 'http']) : 'dns', port: rng.pick([80, 53, 443]), protocol: rng.pick(['TCP', 'UDP', 'SCTP']),
          ...(rng.chance(0.5) ? { nodePort: 30000 + i * 10 + k } : {}),
        }));
        if (ports.length === 2 && ports[0]!.port === ports[1]!.port && ports[0]!.protocol === ports[1]!.protocol) ports.pop();
        const cip = `198.18.${8 + i}.${rng.int(1, 200)}`;
        objects.push({
          apiVersion: 'v1', kind: 'Service', metadata: { name: `s${i}`, namespace: 'ns' },
          spec: {
            type: rng.pick(['ClusterIP', 'NodePort', 'LoadBalancer']), clusterIP: cip,
            ...(rng.chance(0.3) ? { clusterIPs: [cip, `fd00::${(0x80 + i).toString(16)}`], ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'PreferDualStack' } : {}),
            ports, externalIPs: maybe(0.3, () => [`198.18.${20 + i}.1`]) ?? [],
            sessionAffinity: rng.pick(['None', 'ClientIP']), externalTrafficPolicy: rng.pick(['Cluster', 'Local']), internalTrafficPolicy: rng.pick(['Cluster', 'Local']),
            loadBalancerSourceRanges: maybe(0.4, () => [rng.pick(['198.18.0.0/16', '0.0.0.0/0', '198.19.250.0/24', `${NODE_IP}/32`])]) ?? [],
            trafficDistribution: maybe(0.3, () => rng.pick(['PreferClose', 'PreferSameNode'])),
          },
          status: { loadBalancer: { ingress: rng.chance(0.5) ? [{ ip: `198.18.${40 + i}.1`, ...(rng.chance(0.5) ? { ipMode: rng.pick(['VIP', 'Proxy']) } : {}) }] : [] } },
        });
        for (const [k, family] of (['IPv4', rng.pick(['IPv4', 'IPv6'])] as const).entries()) {
          objects.push({
            apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: family,
            metadata: { name: `s${i}-${k}`, namespace: 'ns', labels: { 'kubernetes.io/service-name': `s${i}` } },
            ports: ports.map((p) => ({ name: p.name, port: 8000 + p.port, protocol: p.protocol })),
            endpoints: Array.from({ length: rng.int(0, 3) }, () => ({
              addresses: [family === 'IPv6' ? `fd00::1:${rng.int(1, 60).toString(16)}` : `198.19.${i}.${rng.int(1, 60)}`],
              conditions: { ready: rng.pick([true, false, undefined]), serving: rng.pick([true, false, undefined]), terminating: rng.pick([true, false, undefined]) },
              nodeName: rng.pick([NODE_NAME, 'other']), zone: rng.pick(['z1', 'z2']),
              ...(rng.chance(0.3) ? { hints: { forZones: [{ name: rng.pick(['z1', 'z2']) }] } } : {}),
            })),
          });
        }
      }
      objects.push({ apiVersion: 'v1', kind: 'Node', metadata: { name: NODE_NAME, labels: { 'topology.kubernetes.io/zone': 'z1' } } });
      // Node settings vary by round: with or without a pod CIDR, --nodeport-addresses leaving the node address out.
      const dp = await Dataplane.create({ nodeIPs: [NODE_IP], ...(round % 2 === 0 ? { podCIDR: POD_CIDR } : {}), seed: round });
      const iptables = round % 3 === 2 ? { nodePortAddresses: ['127.0.0.0/8'] } : {};
      expect(dp.apply(objects, { mode, nodeName: NODE_NAME, iptables }).issues).toEqual([]);
      for (const { family, model } of dp.kubeModels()) {
        if (family !== 4) continue;
        for (const sp of model.services.values()) {
          const proto = sp.protocol.toLowerCase() as ProtoName;
          const frontends = [...[sp.clusterIP, ...sp.externalIPs, ...sp.loadBalancerVIPs].map((dst) => ({ dst, dport: sp.port })), ...(sp.nodePort ? [{ dst: NODE_IP, dport: sp.nodePort }] : [])];
          for (const f of frontends) {
            for (const client of CLIENTS) {
              agree(dp, { src: client.src, dst: f.dst, dport: f.dport, sport: 30000 + compared, proto, from: client.from });
              compared++;
            }
          }
        }
      }
    }
    expect(compared).toBeGreaterThan(150);
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
