// Where the modes differ on purpose, each difference asserted so it cannot drift unnoticed.
//
// 1. An address in the service CIDR that no Service holds: the direct mode DROPs a new flow to it
//    (`no_service`, as kube-proxy's nftables mode does with its "no service" rule), so it is never
//    routed back out of a TUN; iptables mode has no such rule and passes it on.
//    A cluster IP's port or protocol no Service has: the direct mode REJECTs it (as kube-proxy's
//    nftables mode, cluster-ips-check, and its ipvs mode, KUBE-IPVS-FILTER); iptables mode passes
//    it on (the feature tables' `differs` columns).
// 2. Session affinity memory: kube-proxy's iptables mode remembers at most 200 clients per endpoint
//    (xt_recent ip_list_tot) and keeps one stamp per (client, endpoint); the direct mode keeps one
//    entry per (service, client) — the endpoint last chosen — in a node-wide table of 65,536
//    entries (4-way buckets, the oldest of a full bucket replaced). They differ only beyond those
//    sizes, or when a client's stamps for two endpoints are both fresh (after a policy switch).
// 3. Connections the node's own loopback addresses receive from elsewhere (kubelet's KUBE-FIREWALL
//    drop of 127.0.0.0/8 from non-loopback sources) are not modelled by the direct mode; only the
//    node-port rules for 127.0.0.0/8 are.
// 4. kube-proxy's ipvs mode differs from its iptables mode where kube-proxy itself does; the
//    feature tables give those cases an `ipvs` column with the reason (KUBE-IPVS-FILTER rejecting
//    unknown ports of a VIP, kubernetes#72236; no localhost node ports; ETP=Local falling back to
//    cluster endpoints, kubernetes PR 97081; ip_vs_leave's ICMP for a virtual server without
//    real servers). Below: IPVS schedules a TCP connection only on a SYN (ip_vs_proto_tcp.c
//    tcp_conn_schedule, sloppy_tcp off), so a RST, FIN or stray ACK to a VIP goes on to the node's
//    own stack (the VIP is bound to kube-ipvs0); and a persistence template ends when its timer
//    fires at exactly the timeout, where xt_recent still accepts a stamp exactly --seconds old.
// Everything else the feature tables (features.test.ts) cover agrees in all modes, including
// packets that cannot open a connection (below).
import { describe, it, expect } from 'vitest';
import { buildPacket } from '../../../../host-node/core/packet.js';
import { dataplaneFor, applyIn, outcomeOf, service, slice, docs, MODES, type ModeName } from './harness.js';

const http = [{ name: 'http', port: 80, targetPort: 8080 }];
const objs = docs(service('a', { clusterIP: '198.18.0.1', ports: http }), slice('a', [{ ip: '198.19.1.1' }], http), service('e', { clusterIP: '198.18.0.2', ports: http }));

async function send(mode: ModeName, dst: string, flags: string, sport: number): Promise<string> {
  const dp = await dataplaneFor({ dataplane: { serviceCIDR: '198.18.0.0/20' } });
  applyIn(dp, mode, objs);
  return outcomeOf(dp, { src: '198.19.3.3', sport }, dp.process(buildPacket({ src: '198.19.3.3', dst, proto: 'tcp', sport, dport: 80, flags }), 1));
}

describe('differences between the modes', () => {
  it('an unallocated service-CIDR address: direct DROPs, iptables passes', async () => {
    expect(await send('direct', '198.18.0.3', 'S', 40000)).toBe('DROP');
    expect(await send('iptables', '198.18.0.3', 'S', 40000)).toBe('PASS');
  });
});

describe.each(MODES.filter((m) => m !== 'ipvs'))('packets that open no connection (%s mode)', (mode) => {
  it('a RST to a service without endpoints is dropped, not rejected; a SYN is rejected', async () => {
    expect(await send(mode, '198.18.0.2', 'R', 40001)).toBe('DROP');
    expect(await send(mode, '198.18.0.2', 'S', 40002)).toBe('REJECT');
  });
  it('a FIN to a service with endpoints is dropped; a mid-stream ACK is picked up', async () => {
    expect(await send(mode, '198.18.0.1', 'F', 40003)).toBe('DROP');
    expect(await send(mode, '198.18.0.1', 'A', 40004)).toBe('198.19.1.1:8080');
  });
});

describe('packets that open no connection (ipvs mode)', () => {
  it('only a SYN is scheduled: RST, FIN and a stray ACK go to the node, a SYN without endpoints is rejected', async () => {
    expect(await send('ipvs', '198.18.0.2', 'R', 40001)).toBe('PASS');
    expect(await send('ipvs', '198.18.0.2', 'S', 40002)).toBe('REJECT');
    expect(await send('ipvs', '198.18.0.1', 'F', 40003)).toBe('PASS');
    expect(await send('ipvs', '198.18.0.1', 'A', 40004)).toBe('PASS');
    expect(await send('ipvs', '198.18.0.1', 'S', 40005)).toBe('198.19.1.1:8080');
  });
});
