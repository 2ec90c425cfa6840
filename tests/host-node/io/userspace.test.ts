// Userspace mode's pieces in process: the listening-port choice (kube-proxy's port allocator plus
// "the Service's own port first"), the core consultation a connection's packets go through
// (endpoint choice, REJECT, affinity, conntrack states, UDP flush), and the listener set following
// the Services (families, SCTP, headless). Sockets on loopback only.
import { describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { Dataplane } from '../../../host-node/dataplane.js';

import { CoreFlows, socketAddress, type CoreFlow } from '../../../host-node/io/userspace-flows.js';
import { UserspaceProxy, PortAllocator, NoPortError, MAX_BIND_ATTEMPTS } from '../../../host-node/io/userspace.js';
import type { ServicePortInfo } from '../../../host-node/kube/index.js';

describe('PortAllocator', () => {
  it('tries the Service\'s port, then the range from a random start, wrapping', () => {
    const a = new PortAllocator([31000, 31004], 'service', () => 0.5);
    expect([...a.candidates('127.0.0.1', 'TCP', 8080)]).toEqual([8080, 31002, 31003, 31004, 31000, 31001]);
    // A Service port inside the range is not offered twice.
    expect([...a.candidates('127.0.0.1', 'TCP', 31003)]).toEqual([31003, 31002, 31004, 31000, 31001]);
  });

  it('in range choice never prefers the Service\'s port; an unset range means any free port', () => {
    expect([...new PortAllocator([31000, 31002], 'range', () => 0).candidates('127.0.0.1', 'TCP', 31001)]).toEqual([31000, 31001, 31002]);
    expect([...new PortAllocator([0, 0], 'service').candidates('127.0.0.1', 'UDP', 53)]).toEqual([53, 0]);
    expect([...new PortAllocator([0, 0], 'range').candidates('127.0.0.1', 'UDP', 53)]).toEqual([0]);
  });

  it('skips ports it holds, per address and protocol, until released', async () => {
    const a = new PortAllocator([31000, 31001], 'service', () => 0);
    const ok = async (p: number) => ({ port: p, handle: p });
    expect((await a.allocate('127.0.0.1', 'TCP', 8080, ok)).port).toBe(8080);
    expect((await a.allocate('127.0.0.1', 'TCP', 8080, ok)).port).toBe(31000);
    // Another protocol or address has its own ports.
    expect((await a.allocate('127.0.0.1', 'UDP', 8080, ok)).port).toBe(8080);
    expect((await a.allocate('::1', 'TCP', 8080, ok)).port).toBe(8080);
    expect(a.held('127.0.0.1', 'TCP')).toEqual([8080, 31000]);
    a.release('127.0.0.1', 'TCP', 8080);
    expect((await a.allocate('127.0.0.1', 'TCP', 8080, ok)).port).toBe(8080);
    expect((await a.allocate('127.0.0.1', 'TCP', 8080, ok)).port).toBe(31001);
    await expect(a.allocate('127.0.0.1', 'TCP', 8080, ok)).rejects.toThrow(/every port of the range is held/);
  });

  it('moves past ports that fail to bind and names the failures when all do', async () => {
    const a = new PortAllocator([31000, 31009], 'service', () => 0);
    const tried: number[] = [];
    const r = await a.allocate('127.0.0.1', 'TCP', 80, async (p) => {
      tried.push(p);
      if (p < 31002) throw Object.assign(new Error('denied'), { code: p === 80 ? 'EACCES' : 'EADDRINUSE' });
      return { port: p, handle: null };
    });
    expect(r.port).toBe(31002);
    expect(tried).toEqual([80, 31000, 31001, 31002]);
    const err = await new PortAllocator([1, 65535], 'range').allocate('127.0.0.1', 'TCP', 80, async () => { throw Object.assign(new Error('x'), { code: 'EADDRINUSE' }); }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(NoPortError);
    expect((err as Error).message).toMatch(new RegExp(`EADDRINUSE; .*… ${MAX_BIND_ATTEMPTS - 4} more`));
  });
});

const manifests = (eps: string[], extra = '') => `
apiVersion: v1
kind: Service
metadata: { name: web, namespace: default }
spec: { clusterIP: 10.96.0.80, ports: [{ name: p, port: 80, protocol: TCP }, { name: u, port: 53, protocol: UDP }] ${extra} }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-1, namespace: default, labels: { kubernetes.io/service-name: web } }
addressType: IPv4
ports: [{ name: p, port: 8080, protocol: TCP }, { name: u, port: 5353, protocol: UDP }]
endpoints:
${eps.map((ip) => `  - addresses: [${ip}]\n    conditions: { ready: true }`).join('\n')}
`;

async function core(eps: string[], mode: 'iptables' | 'ipvs' | 'direct' = 'iptables', extra = '') {
  const dp = await Dataplane.create({ nodeIPs: ['127.0.0.1'], serviceCIDR: '10.96.0.0/16', seed: 7 });
  expect(dp.apply(manifests(eps, extra), { mode, nodeName: 'n1' }).issues).toEqual([]);
  let now = 1000;
  return { dp, flows: new CoreFlows(dp, () => now), tick: (ms: number) => { now += ms; } };
}

const stateOf = (dp: Dataplane, f: CoreFlow) => dp.conntrack().find((c) => c.original.sport === f.clientPort && c.original.src === f.client)?.state;

describe('CoreFlows', () => {
  for (const mode of ['iptables', 'ipvs', 'direct'] as const) {
    it(`lets the core (${mode} mode) choose every endpoint`, async () => {
      const { flows } = await core(['127.0.0.2', '127.0.0.3', '127.0.0.4'], mode);
      const seen = new Set<string>();
      for (let i = 0; i < 60; i++) {
        const f = flows.open('tcp', '127.0.0.1', 40000 + i, '10.96.0.80', 80, true);
        if ('refused' in f) throw new Error(f.refused);
        expect(f.endpointPort).toBe(8080);
        seen.add(f.endpoint);
      }
      expect([...seen].sort()).toEqual(['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    });
  }

  it('refuses what the core rejects or never matched', async () => {
    const { flows } = await core([]);
    expect(flows.open('tcp', '127.0.0.1', 40000, '10.96.0.80', 80, true)).toEqual({ refused: 'reject' });
    expect(flows.open('udp', '127.0.0.1', 40000, '10.96.0.80', 53, true)).toEqual({ refused: 'reject' });
    expect(flows.open('tcp', '127.0.0.1', 40001, '10.96.0.80', 81, true)).toEqual({ refused: 'no_service' });
    expect(flows.open('tcp', '::1', 40002, '10.96.0.80', 80, true)).toEqual({ refused: 'family' });
    // An address no packet can carry (a zone-scoped peer, say) is refused, never thrown.
    expect(flows.open('tcp', 'fe80::1%eth0', 40003, 'fd00::1', 80, true)).toEqual({ refused: 'bad_address' });
  });

  it('follows the socket\'s life in conntrack: established, closed, reset, refused', async () => {
    const { dp, flows } = await core(['127.0.0.2']);
    const open = (port: number): CoreFlow => {
      const f = flows.open('tcp', '127.0.0.1', port, '10.96.0.80', 80, true);
      if ('refused' in f) throw new Error(f.refused);
      return f;
    };
    const a = open(41000);
    expect(stateOf(dp, a)).toBe('SYN_SENT');
    flows.established(a);
    expect(stateOf(dp, a)).toBe('ESTABLISHED');
    flows.closed(a, 'graceful');
    expect(stateOf(dp, a)).toBe('TIME_WAIT');
    const b = open(41001);
    flows.established(b);
    flows.closed(b, 'client-reset');
    expect(stateOf(dp, b)).toBe('CLOSE');
    const c = open(41002);
    expect(stateOf(dp, c)).toBe('SYN_SENT');
    flows.failed(c);
    // A RST as the only reply removes the flow at once (nf_conntrack_proto_tcp.c).
    expect(stateOf(dp, c)).toBeUndefined();
  });

  it('gives IPVS the connections the proxy holds: active while open, inactive once closed', async () => {
    const { dp, flows } = await core(['127.0.0.2'], 'ipvs');
    const counts = (): string => /127\.0\.0\.2:8080\s+Masq\s+\d+\s+(\d+\s+\d+)/.exec(dp.ipvsadm(['-Ln']).stdout)?.[1]?.replace(/\s+/, ' ') ?? '?';
    const a = flows.open('tcp', '127.0.0.1', 44000, '10.96.0.80', 80, true) as CoreFlow;
    const b = flows.open('tcp', '127.0.0.1', 44001, '10.96.0.80', 80, true) as CoreFlow;
    flows.established(a);
    flows.established(b);
    expect(counts()).toBe('2 0');
    flows.closed(a, 'graceful');
    expect(counts()).toBe('1 1');
  });

  it('keeps a client address on one endpoint with ClientIP affinity', async () => {
    const { flows } = await core(['127.0.0.2', '127.0.0.3', '127.0.0.4'], 'iptables', ', sessionAffinity: ClientIP');
    for (const client of ['127.0.0.7', '127.0.0.8', '127.0.0.9']) {
      const eps = new Set<string>();
      for (let i = 0; i < 10; i++) {
        const f = flows.open('tcp', client, 42000 + i, '10.96.0.80', 80, true);
        if (!('refused' in f)) eps.add(f.endpoint);
      }
      expect(eps.size).toBe(1);
    }
  });

  it('keeps a UDP flow on its endpoint until the endpoint leaves, then schedules it afresh', async () => {
    const { dp, flows } = await core(['127.0.0.2', '127.0.0.3']);
    const first = flows.open('udp', '127.0.0.1', 43000, '10.96.0.80', 53, true) as CoreFlow;
    flows.udpReply(first);
    for (let i = 0; i < 5; i++) expect((flows.open('udp', '127.0.0.1', 43000, '10.96.0.80', 53, true) as CoreFlow).endpoint).toBe(first.endpoint);
    const other = first.endpoint === '127.0.0.2' ? '127.0.0.3' : '127.0.0.2';
    expect(dp.apply(manifests([other]), { nodeName: 'n1' }).flushed).toBeGreaterThan(0);
    expect((flows.open('udp', '127.0.0.1', 43000, '10.96.0.80', 53, true) as CoreFlow).endpoint).toBe(other);
  });

  it('reads IPv4-mapped socket addresses as IPv4', () => {
    expect(socketAddress('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(socketAddress('::1')).toBe('::1');
    expect(socketAddress('127.0.0.5')).toBe('127.0.0.5');
  });
});

const info = (name: string, family: 4 | 6, clusterIP: string, protocol: 'TCP' | 'UDP' | 'SCTP', port: number): ServicePortInfo => ({
  id: `default/${name}:p/${protocol}`, namespacedName: `default/${name}`, portName: 'p', name: `default/${name}:p`, family, protocol, clusterIP, port,
  nodePort: 0, externalIPs: [], loadBalancerIngress: [], loadBalancerVIPs: [], loadBalancerSourceRanges: [], healthCheckNodePort: 0,
  sessionAffinity: 'None', stickyMaxAgeSeconds: 0, externalPolicyLocal: false, internalPolicyLocal: false, trafficDistribution: null,
});

describe('UserspaceProxy listeners', () => {
  it('serves each family on its own bind addresses, lists SCTP as not served, skips headless', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['127.0.0.1'], seed: 1 });
    const log: string[] = [];
    const us = new UserspaceProxy({ dp, clock: () => 1, bind: ['127.0.0.1', '::1'], ports: 'range', portRange: [0, 0], udpIdleTimeoutMs: 250, nodeAddresses: [], log: (l) => log.push(l) });
    try {
      await us.sync([info('a', 4, '10.96.0.1', 'TCP', 80), info('a', 6, 'fd00:96::1', 'TCP', 80), info('b', 4, '10.96.0.2', 'SCTP', 9), info('h', 4, '', 'TCP', 80)]);
      const m = us.mapping();
      expect(m.map((x) => [x.service, x.protocol, x.bind, x.clusterIP, !!x.listenPort])).toEqual([
        ['default/a:p', 'TCP', '127.0.0.1', '10.96.0.1', true],
        ['default/a:p', 'TCP', '::1', 'fd00:96::1', true],
        ['default/b:p', 'SCTP', '127.0.0.1', '10.96.0.2', false],
      ]);
      expect(m[2]!.error).toMatch(/SCTP is not served/);
      expect(m[1]!.listen).toBe(`[::1]:${m[1]!.listenPort}`);
      // No endpoints in the core: the client is reset as soon as it is accepted.
      const err = await new Promise<string>((resolve) => {
        const s = connect({ host: '::1', port: m[1]!.listenPort! });
        s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? ''));
        s.on('end', () => resolve('end'));
      });
      expect(err).toBe('ECONNRESET');
      expect(us.counters.refused).toEqual({ no_service: 1 });
      // Removing a service port closes its listener (and frees its port).
      await us.sync([info('a', 4, '10.96.0.1', 'TCP', 80)]);
      expect(us.mapping().map((x) => x.bind)).toEqual(['127.0.0.1']);
      expect(log.some((l) => l.includes('default/a:p TCP closed [::1]:'))).toBe(true);
    } finally {
      us.close();
    }
  });
});
