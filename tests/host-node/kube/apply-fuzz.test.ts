// dp.apply fed what a careless manifest or a skewed API server could hand it: Services and
// EndpointSlices whose fields mix families, protocols, policies and odd values (ports 0 and
// 70000, the unspecified address, /0 source ranges, headless and ExternalName Services with
// ports, slices of FQDN type, hints for other nodes, names the API server would refuse), Nodes
// changing zone, and every mode and kube-proxy setting, in random sequences. Whatever the input, a sync is never refused and never
// throws: bad objects come back as issues and the rest applies. And a dataplane that followed the
// sequence serves the same rules as a fresh one given the last set. Synthetic packets only.
// SVCPLANE_APPLY_SEED and SVCPLANE_APPLY_ROUNDS run other sequences (default one seed, 12 rounds).
import { describe, it, expect } from 'vitest';
import { Dataplane, type ApplyOptions } from '../../../host-node/dataplane.js';
import { Rng } from '../../support/kube-gen.js';

const NODE_IPS = ['198.18.200.1', 'fd00::200:1'];
const MODES = ['iptables', 'ipvs', 'direct'] as const;

function generator(seed: number) {
  const rng = new Rng(seed);
  const pick = <T>(xs: readonly T[]): T => rng.pick(xs);
  const maybe = <T>(p: number, v: () => T): T | undefined => (rng.chance(p) ? v() : undefined);
  const v4 = () => `198.18.${rng.int(0, 3)}.${rng.int(1, 6)}`;
  const v6 = () => `fd00::${rng.int(1, 6).toString(16)}`;
  const odd = () => pick(['', 'x', '1.2.3', '::', '0.0.0.0', '255.255.255.255', '198.18.0.0/24', 'fd00::1%eth0']);
  const ip = () => pick([v4, v4, v6, odd])();
  // Now and then a name the API server would refuse: one that text carries (capitals), or one that
  // would break rule text or svcplane's keys (quote, newline, ':', '/', space).
  const named = (ok: string) => (rng.chance(0.06) ? pick(['Web', 'fd00::1', 'a"b', 'n\nl', 'x/y', 'a b', 'x'.repeat(64)]) : ok);

  const service = (i: number) => {
    const clusterIP = pick([v4, v6, () => 'None', () => '', ip])();
    const ports = Array.from({ length: rng.int(0, 2) }, () => ({
      name: maybe(0.7, () => named(pick(['http', 'dns', 'http', '']))), port: pick([80, 53, 80, 0, 65535, 70000, -1, '80']),
      protocol: pick(['TCP', 'UDP', 'SCTP', undefined, 'tcp']), targetPort: pick([8080, 'http', undefined, 0]),
      nodePort: maybe(0.5, () => pick([30000, 30001, 30000, 0, 29999, 32768])),
    }));
    return {
      apiVersion: 'v1', kind: 'Service',
      metadata: { name: named(`s${i}`), namespace: named(pick(['default', 'ns'])), labels: maybe(0.2, () => ({ 'service.kubernetes.io/headless': '' })) },
      spec: {
        type: pick(['ClusterIP', 'ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName', 'Bogus', undefined]),
        clusterIP, clusterIPs: maybe(0.5, () => [clusterIP, ip()]),
        ipFamilies: pick([['IPv4'], ['IPv6'], ['IPv4', 'IPv6'], ['IPv6', 'IPv4'], undefined, ['IPv5']]),
        ports, externalIPs: maybe(0.3, () => [ip(), ip()]), externalName: maybe(0.1, () => 'x.example.com'),
        sessionAffinity: pick(['None', 'ClientIP', undefined]),
        sessionAffinityConfig: maybe(0.4, () => ({ clientIP: { timeoutSeconds: pick([0, 1, 10800, 86400, 86401, -5]) } })),
        externalTrafficPolicy: pick(['Cluster', 'Local', undefined]), internalTrafficPolicy: pick(['Cluster', 'Local', undefined]),
        healthCheckNodePort: maybe(0.3, () => pick([30100, 0, 30000])),
        loadBalancerSourceRanges: maybe(0.3, () => [pick(['198.18.0.0/16', 'fd00::/8', 'bad', '0.0.0.0/0', '::/0', '198.18.1.1'])]),
        trafficDistribution: maybe(0.3, () => pick(['PreferClose', 'PreferSameZone', 'PreferSameNode', 'Other'])),
      },
      status: maybe(0.4, () => ({ loadBalancer: { ingress: [{ ip: maybe(0.8, ip), hostname: maybe(0.2, () => 'lb.x'), ipMode: maybe(0.5, () => pick(['VIP', 'Proxy', 'X'])) }] } })),
    };
  };

  const endpointSlice = (i: number) => {
    const addressType = pick(['IPv4', 'IPv6', 'IPv4', 'FQDN']);
    return {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType,
      metadata: { name: `s${i}-${rng.int(0, 1)}`, namespace: pick(['default', 'ns']), labels: { 'kubernetes.io/service-name': `s${i}` } },
      endpoints: Array.from({ length: rng.int(0, 3) }, () => ({
        addresses: [addressType === 'IPv6' ? v6() : addressType === 'FQDN' ? 'a.b' : pick([v4, v4, ip])()],
        conditions: { ready: pick([true, false, undefined, null]), serving: pick([true, false, undefined]), terminating: pick([true, false, undefined]) },
        nodeName: named(pick(['node', 'other', undefined]) as string), zone: pick(['z1', 'z2', undefined]),
        hints: maybe(0.3, () => ({ forZones: [{ name: pick(['z1', 'z2']) }], forNodes: maybe(0.5, () => [{ name: pick(['node', 'other']) }]) })),
      })),
      ports: pick([null, undefined, [{ name: pick(['http', 'dns', '']), port: pick([8080, 53, 0, 70000]), protocol: pick(['TCP', 'UDP', 'SCTP']) }],
        [{ port: 8080 }, { name: 'dns', port: 53, protocol: 'UDP' }]]),
    };
  };

  const options = (): ApplyOptions => ({
    nodeName: 'node',
    iptables: {
      era: pick(['v1.28', 'current'] as const), masqueradeAll: rng.chance(0.3), localhostNodePorts: rng.chance(0.7), randomFully: rng.chance(0.5),
      nfacct: rng.chance(0.5), snatNodeInternalIP: rng.chance(0.2), largeClusterEndpointsThreshold: pick([1000, 2]),
      preferSameTrafficDistribution: rng.chance(0.5),
      ...(rng.chance(0.4) ? { nodePortAddresses: pick([['198.18.200.0/24'], ['primary'], ['127.0.0.0/8', 'fd00::/8'], ['0.0.0.0/0'], ['198.18.0.0/16', '::/0']]) } : {}),
    },
    ipvs: { scheduler: pick(['rr', 'wrr', 'lc', 'sh', 'mh', 'dh', '']), masqueradeAll: rng.chance(0.3) },
  });

  return { rng, pick, service, endpointSlice, options, v4, v6 };
}

/** iptables-save with what depends on history rather than content set aside: the order of tables and of chains. */
function rulesByChain(text: string): string {
  const chains = new Map<string, string[]>();
  let table = '';
  for (const line of text.split('\n')) {
    if (line === '' || line === 'COMMIT' || line.startsWith('#')) continue;
    if (line.startsWith('*')) { table = line; continue; }
    const key = `${table} ${line.startsWith(':') ? ':' : /^-A (\S+)/.exec(line)?.[1] ?? line}`;
    if (!chains.has(key)) chains.set(key, []);
    chains.get(key)!.push(line);
  }
  return [...chains].map(([k, lines]) => `${k} ${(k.endsWith(':') ? lines.sort() : lines).join(' | ')}`).sort().join('\n');
}

const view = (dp: Dataplane, mode: string) =>
  [rulesByChain(dp.iptablesSave()), rulesByChain(dp.iptablesSave({ family: 6 })), mode === 'ipvs' ? dp.ipvsadm(['-Ln']).stdout : ''].join('\n');

const rounds = Number(process.env.SVCPLANE_APPLY_ROUNDS ?? 12);

describe('dp.apply under odd objects and settings', () => {
  it('never refuses a sync or throws, and ends where a fresh dataplane given the last set ends', async () => {
    const g = generator(Number(process.env.SVCPLANE_APPLY_SEED ?? 20261202));
    let issues = 0, compared = 0;
    for (let round = 0; round < rounds; round++) {
      const dp = await Dataplane.create({ nodeIPs: NODE_IPS, podCIDR: '198.19.0.0/16', seed: 3 });
      const opts = g.options();
      const objects: unknown[] = [];
      for (let step = 0; step < 20; step++) {
        for (let m = 0; m < 3; m++) {
          const r = g.rng.next();
          if (r < 0.5 || objects.length === 0) {
            const i = g.rng.int(0, 7);
            objects.push(g.service(i), g.endpointSlice(i));
          } else if (r < 0.85) objects.splice(g.rng.int(0, objects.length - 1), 1);
          else objects.push({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node', labels: { 'topology.kubernetes.io/zone': g.pick(['z1', 'z2']) } } });
        }
        const mode = g.pick(MODES);
        const where = `round ${round} step ${step} (${mode})`;
        let result;
        try {
          result = dp.apply(objects, { ...opts, mode });
        } catch (e) {
          throw new Error(`${where}: ${String(e)}\n${JSON.stringify(objects)}`);
        }
        issues += result.issues.length;
        for (let t = 0; t < 3; t++) {
          const six = g.rng.chance(0.3);
          expect(() => dp.trace({
            src: six ? 'fd00::9' : g.pick(['198.19.0.5', '198.18.9.9']), dst: (six ? g.v6 : g.v4)(),
            dport: g.pick([80, 53, 30000]), proto: g.pick(['tcp', 'udp', 'sctp'] as const), from: g.pick(['external', 'local'] as const),
          }), where).not.toThrow();
        }
        if (mode !== 'direct' && g.rng.chance(0.3)) {
          const fresh = await Dataplane.create({ nodeIPs: NODE_IPS, podCIDR: '198.19.0.0/16', seed: 3 });
          fresh.apply(objects, { ...opts, mode });
          expect(view(dp, mode), where).toBe(view(fresh, mode));
          compared++;
        }
      }
    }
    // The generator does reach both sides: objects refused, and syncs compared.
    expect(issues).toBeGreaterThan(50);
    expect(compared).toBeGreaterThan(10);
  }, 120_000 * Math.max(1, rounds / 12));
});
