// kube-proxy's IPVS graceful termination test (pkg/proxy/ipvs/graceful_termination_test.go
// Test_GracefulDeleteRS, kubernetes/kubernetes @ 05c351a9, Apache-2.0; kube-proxy-ipvs-graceful/
// README.md) replayed through svcplane's ipvs mode: each case's virtual server is a Service's
// cluster IP and port, its real server the Service's endpoint; its active connections are that
// many completed TCP handshakes and its inactive ones that many closed ones (TIME_WAIT), made by
// real packets; the Go call GracefulDeleteRS is the
// endpoint leaving its EndpointSlice, and the state after the sync is read from `ipvsadm -Ln`.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Dataplane } from '../../host-node/dataplane.js';
import { buildPacket } from '../../host-node/core/packet.js';

interface Rs { address: string; port: number; weight: number; activeConn: number; inactiveConn: number }
interface Vs { address: string; port: number; protocol: 'TCP' | 'UDP'; realServers: Rs[] }
interface Case {
  name: string;
  initial: { virtualServers: Vs[] };
  steps: Array<{ op: 'gracefulDelete'; virtualServer: Omit<Vs, 'realServers'>; realServer: Rs; expect: { error: null; virtualServers: Vs[] } }>;
}
const cases = (JSON.parse(readFileSync(join(import.meta.dirname, 'kube-proxy-ipvs-graceful', 'Test_GracefulDeleteRS.json'), 'utf8')) as { cases: Case[] }).cases;

const OPTS = { mode: 'ipvs' as const, nodeName: 'node-a' };
const service = (vs: Omit<Vs, 'realServers'>) => ({
  apiVersion: 'v1', kind: 'Service', metadata: { name: 'svc', namespace: 'ns' },
  spec: { clusterIP: vs.address, ports: [{ name: 'p', port: vs.port, protocol: vs.protocol }] },
});
const slice = (protocol: string, rss: Array<{ address: string; port: number }>) => ({
  apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
  metadata: { name: 'svc-1', namespace: 'ns', labels: { 'kubernetes.io/service-name': 'svc' } },
  // One port per slice: the real servers of a case share theirs.
  ports: [{ name: 'p', port: rss[0]?.port ?? 80, protocol }],
  endpoints: rss.map((r) => ({ addresses: [r.address] })),
});

/** The real servers of `vs` as `ipvsadm -Ln` lists them. */
function realServers(dp: Dataplane, vs: Omit<Vs, 'realServers'>): Rs[] {
  const out: Rs[] = [];
  let inside = false;
  for (const line of dp.ipvsadm('-Ln').stdout.split('\n')) {
    if (/^(TCP|UDP|SCTP)\s/.test(line)) inside = line.startsWith(`${vs.protocol}  ${vs.address}:${vs.port} `);
    const m = inside ? /^\s+-> (\S+):(\d+)\s+\S+\s+(\d+)\s+(\d+)\s+(\d+)/.exec(line) : null;
    if (m) out.push({ address: m[1]!, port: Number(m[2]), weight: Number(m[3]), activeConn: Number(m[4]), inactiveConn: Number(m[5]) });
  }
  return out;
}

/**
 * kube-proxy gives every real server weight 1 (the Go fake's initial 100 stands for "serving"):
 * a weight compares as serving (≥ 1) or drained (0).
 */
const serving = (rss: Rs[]) => rss.map((r) => ({ ...r, weight: r.weight > 0 ? 1 : 0 }));

/**
 * Makes the connections a case starts with: `active` established, `inactive` established and then
 * closed (TIME_WAIT: the kernel counts SYN_RECV as active since Linux 4.x, TIME_WAIT as inactive);
 * UDP flows count as the kernel counts them.
 */
function connect(dp: Dataplane, vs: Vs, rs: Rs, now: number): void {
  let sport = 40000;
  const proto = vs.protocol === 'TCP' ? 'tcp' : 'udp';
  const open = (established: boolean) => {
    const client = `198.18.7.${(sport % 250) + 1}`;
    const c = { src: client, dst: vs.address, proto, sport: sport++, dport: vs.port } as const;
    const out = dp.process(buildPacket(proto === 'tcp' ? { ...c, flags: 'S' } : { ...c, payload: new Uint8Array(8) }), now);
    expect(out.verdict).toBe('FORWARD');
    if (proto !== 'tcp') return;
    const back = { src: rs.address, dst: client, proto, sport: rs.port, dport: c.sport } as const;
    dp.process(buildPacket({ ...back, flags: 'SA' }), now);
    dp.process(buildPacket({ ...c, flags: 'A' }), now);
    if (established) return;
    dp.process(buildPacket({ ...c, flags: 'FA' }), now);
    dp.process(buildPacket({ ...back, flags: 'FA' }), now);
    dp.process(buildPacket({ ...c, flags: 'A' }), now);
  };
  for (let i = 0; i < rs.activeConn; i++) open(true);
  for (let i = 0; i < rs.inactiveConn; i++) open(false);
}

describe('kube-proxy graceful_termination_test.go: Test_GracefulDeleteRS', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const vs = c.initial.virtualServers[0]!;
      const dp = await Dataplane.create({ nodeIPs: ['192.168.0.2'], seed: 3, conntrackCapacity: 1024 });
      expect(dp.apply([service(vs), slice(vs.protocol, vs.realServers)], OPTS).issues).toEqual([]);
      for (const rs of vs.realServers) connect(dp, vs, rs, 1000);
      if (vs.protocol === 'TCP') expect(serving(realServers(dp, vs)), 'the connections as the case starts').toEqual(serving(vs.realServers));
      for (const step of c.steps) {
        // GracefulDeleteRS(vs, rs): the endpoint rs leaves the Service (a real server that is not
        // there leaves nothing).
        const left = vs.realServers.filter((r) => !(r.address === step.realServer.address && r.port === step.realServer.port));
        const r = dp.apply([service(step.virtualServer), slice(vs.protocol, left.length === vs.realServers.length ? vs.realServers : left)], OPTS);
        expect(r.issues).toEqual([]);
        const want = step.expect.virtualServers.find((x) => x.address === vs.address && x.port === vs.port)!;
        const got = realServers(dp, vs);
        // Weight and whether it is there are the test's point; counts as the case made them (TCP).
        expect(serving(got).map((x) => ({ address: x.address, port: x.port, weight: x.weight })))
          .toEqual(serving(want.realServers).map((x) => ({ address: x.address, port: x.port, weight: x.weight })));
        if (vs.protocol === 'TCP') expect(serving(got)).toEqual(serving(want.realServers));
      }
    });
  }
});
