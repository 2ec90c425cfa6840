// kube-proxy's ipvs mode end to end: Service/EndpointSlice objects → dp.apply({ mode: 'ipvs' })
// (ipsets, IPVS virtual servers, the constant iptables rules) → packets through dp.process, with
// IPVS inside the netfilter hooks as the kernel orders them. Synthetic packets only (no network).
// The flow table has the shape of the iptables/direct agreement table so the two can be folded.
import { describe, it, expect } from 'vitest';
import { Dataplane } from '../../../host-node/dataplane.js';
import { buildPacket, decodePacket, type ProtoName } from '../../../host-node/core/packet.js';

const NODE = '192.168.49.2';
const POD_CIDR = '10.244.0.0/16';

interface SvcSpec {
  name: string;
  clusterIP: string;
  port: number;
  protocol?: 'TCP' | 'UDP';
  type?: 'ClusterIP' | 'NodePort' | 'LoadBalancer';
  nodePort?: number;
  externalIPs?: string[];
  lbIP?: string;
  sourceRanges?: string[];
  etpLocal?: boolean;
  affinitySeconds?: number;
}

function service(s: SvcSpec): string {
  const proto = s.protocol ?? 'TCP';
  const lines = [
    'apiVersion: v1', 'kind: Service', `metadata: { name: ${s.name}, namespace: default }`, 'spec:',
    `  type: ${s.type ?? 'ClusterIP'}`, `  clusterIP: ${s.clusterIP}`,
    `  ports: [{ name: p, port: ${s.port}, protocol: ${proto}, targetPort: 8080${s.nodePort ? `, nodePort: ${s.nodePort}` : ''} }]`,
  ];
  if (s.externalIPs) lines.push(`  externalIPs: [${s.externalIPs.join(', ')}]`);
  if (s.sourceRanges) lines.push(`  loadBalancerSourceRanges: [${s.sourceRanges.join(', ')}]`);
  if (s.etpLocal) lines.push('  externalTrafficPolicy: Local');
  if (s.affinitySeconds) lines.push('  sessionAffinity: ClientIP', `  sessionAffinityConfig: { clientIP: { timeoutSeconds: ${s.affinitySeconds} } }`);
  if (s.lbIP) lines.push('status:', `  loadBalancer: { ingress: [{ ip: ${s.lbIP} }] }`);
  return lines.join('\n');
}

function slice(svc: string, eps: Array<{ ip: string; node?: string }>, protocol = 'TCP'): string {
  return [
    'apiVersion: discovery.k8s.io/v1', 'kind: EndpointSlice',
    `metadata: { name: ${svc}-1, namespace: default, labels: { kubernetes.io/service-name: ${svc} } }`,
    'addressType: IPv4', `ports: [{ name: p, port: 8080, protocol: ${protocol} }]`,
    eps.length ? 'endpoints:' : 'endpoints: []',
    ...eps.map((e) => `  - addresses: [${e.ip}]\n    conditions: { ready: true }${e.node ? `\n    nodeName: ${e.node}` : ''}`),
  ].join('\n');
}

const docs = (...d: string[]) => d.join('\n---\n');

async function node(objects: string) {
  const dp = await Dataplane.create({ nodeIPs: [NODE], podCIDR: POD_CIDR, seed: 7 });
  const r = dp.apply(objects, { mode: 'ipvs', nodeName: 'node-a' });
  expect(r.issues).toEqual([]);
  return dp;
}

interface Flow {
  src: string; dst: string; dport: number; proto?: ProtoName; sport?: number; local?: boolean; flags?: string;
}
function send(dp: Dataplane, f: Flow, now = 1000) {
  const proto = f.proto ?? 'tcp';
  const bytes = buildPacket({ src: f.src, dst: f.dst, proto, sport: f.sport ?? 40000, dport: f.dport, ...(proto === 'tcp' ? { flags: f.flags ?? 'S' } : {}) });
  const r = dp.process(f.local ? { bytes, local: true } : bytes, now);
  return { verdict: r.verdict, reason: r.reason, out: r.packet ? decodePacket(r.packet) : undefined };
}

const WEB = { name: 'web', clusterIP: '10.96.0.80', port: 80 };
const EPS = [{ ip: '10.244.1.11', node: 'node-b' }, { ip: '10.244.2.12', node: 'node-a' }];
const EP_ADDRS = EPS.map((e) => e.ip);

// One row: objects, a first packet, and what leaves the core. `to` lists the destinations any of
// which is right; `srcAfter` the source expected after POSTROUTING (masquerade or not).
const FLOWS: Array<{
  name: string; objects: string; packet: Flow;
  verdict: 'FORWARD' | 'DROP' | 'REPLY' | 'PASS'; to?: string[]; dport?: number; srcAfter?: string;
}> = [
  { name: 'ClusterIP from a pod: no masquerade', objects: docs(service(WEB), slice('web', EPS)),
    packet: { src: '10.244.3.3', dst: '10.96.0.80', dport: 80 }, verdict: 'FORWARD', to: EP_ADDRS, dport: 8080, srcAfter: '10.244.3.3' },
  { name: 'ClusterIP from off the cluster: masqueraded (KUBE-CLUSTER-IP ! -s podCIDR)', objects: docs(service(WEB), slice('web', EPS)),
    packet: { src: '192.168.49.7', dst: '10.96.0.80', dport: 80 }, verdict: 'FORWARD', to: EP_ADDRS, dport: 8080, srcAfter: NODE },
  { name: 'ClusterIP from the node itself (OUTPUT → IPVS at LOCAL_OUT)', objects: docs(service(WEB), slice('web', EPS)),
    packet: { src: NODE, dst: '10.96.0.80', dport: 80, local: true }, verdict: 'FORWARD', to: EP_ADDRS, dport: 8080, srcAfter: NODE },
  { name: 'ClusterIP UDP', objects: docs(service({ ...WEB, protocol: 'UDP' }), slice('web', EPS, 'UDP')),
    packet: { src: '10.244.3.3', dst: '10.96.0.80', dport: 80, proto: 'udp' }, verdict: 'FORWARD', to: EP_ADDRS, dport: 8080, srcAfter: '10.244.3.3' },
  { name: 'NodePort: masqueraded (KUBE-NODE-PORT-TCP)', objects: docs(service({ ...WEB, type: 'NodePort', nodePort: 30080 }), slice('web', EPS)),
    packet: { src: '192.168.49.7', dst: NODE, dport: 30080 }, verdict: 'FORWARD', to: EP_ADDRS, dport: 8080, srcAfter: NODE },
  { name: 'externalIPs: masqueraded (KUBE-EXTERNAL-IP, -m physdev)', objects: docs(service({ ...WEB, externalIPs: ['198.18.0.10'] }), slice('web', EPS)),
    packet: { src: '192.168.49.7', dst: '198.18.0.10', dport: 80 }, verdict: 'FORWARD', to: EP_ADDRS, dport: 8080, srcAfter: NODE },
  { name: 'LoadBalancer source range: allowed source', objects: docs(service({ ...WEB, type: 'LoadBalancer', nodePort: 30081, lbIP: '198.18.1.1', sourceRanges: ['198.19.0.0/16'] }), slice('web', EPS)),
    packet: { src: '198.19.5.5', dst: '198.18.1.1', dport: 80 }, verdict: 'FORWARD', to: EP_ADDRS, dport: 8080, srcAfter: NODE },
  { name: 'LoadBalancer source range: other sources dropped (KUBE-SOURCE-RANGES-FIREWALL)', objects: docs(service({ ...WEB, type: 'LoadBalancer', nodePort: 30081, lbIP: '198.18.1.1', sourceRanges: ['198.19.0.0/16'] }), slice('web', EPS)),
    packet: { src: '192.168.49.7', dst: '198.18.1.1', dport: 80 }, verdict: 'DROP' },
  // ipset refuses a /0 net ("The value of the CIDR parameter ... is invalid"); such a range lets everyone in, as in iptables mode.
  { name: 'LoadBalancer source range 0.0.0.0/0: every source allowed, the sync not refused', objects: docs(service({ ...WEB, type: 'LoadBalancer', nodePort: 30081, lbIP: '198.18.1.1', sourceRanges: ['0.0.0.0/0'] }), slice('web', EPS)),
    packet: { src: '192.168.49.7', dst: '198.18.1.1', dport: 80 }, verdict: 'FORWARD', to: EP_ADDRS, dport: 8080, srcAfter: NODE },
  { name: 'LoadBalancer source ranges with 0.0.0.0/0 among others: every source allowed', objects: docs(service({ ...WEB, type: 'LoadBalancer', nodePort: 30081, lbIP: '198.18.1.1', sourceRanges: ['198.19.0.0/16', '0.0.0.0/0'] }), slice('web', EPS)),
    packet: { src: '192.168.49.7', dst: '198.18.1.1', dport: 80 }, verdict: 'FORWARD', to: EP_ADDRS, dport: 8080, srcAfter: NODE },
  { name: 'externalTrafficPolicy=Local NodePort: the local endpoint, client source kept', objects: docs(service({ ...WEB, type: 'NodePort', nodePort: 30082, etpLocal: true }), slice('web', EPS)),
    packet: { src: '192.168.49.7', dst: NODE, dport: 30082 }, verdict: 'FORWARD', to: ['10.244.2.12'], dport: 8080, srcAfter: '192.168.49.7' },
  { name: 'no endpoints: ICMP port unreachable (ip_vs_leave)', objects: docs(service(WEB), slice('web', [])),
    packet: { src: '10.244.3.3', dst: '10.96.0.80', dport: 80 }, verdict: 'REPLY' },
  { name: 'kubernetes#72236: a VIP port no Service defines is rejected (KUBE-IPVS-FILTER)', objects: docs(service(WEB), slice('web', EPS)),
    packet: { src: '10.244.3.3', dst: '10.96.0.80', dport: 22 }, verdict: 'REPLY' },
];

describe('kube-proxy ipvs mode: flow table', () => {
  for (const row of FLOWS) {
    it(row.name, async () => {
      const dp = await node(row.objects);
      const r = send(dp, row.packet);
      expect(r.verdict).toBe(row.verdict);
      if (row.verdict === 'FORWARD') {
        expect(row.to).toContain(r.out!.dst);
        expect(r.out!.dport).toBe(row.dport);
        expect(r.out!.src).toBe(row.srcAfter);
      }
      if (row.verdict === 'REPLY') {
        // ICMP destination unreachable / port unreachable back to the client.
        expect(r.out!.proto).toBe(1);
        expect(r.out!.dst).toBe(row.packet.src);
      }
    });
  }
});

describe('kube-proxy ipvs mode: kernel order and state', () => {
  it('the reply from the real server is un-masqueraded by conntrack, then gets the VIP back from IPVS (FORWARD hook)', async () => {
    const dp = await node(docs(service(WEB), slice('web', EPS)));
    const syn = send(dp, { src: '192.168.49.7', dst: '10.96.0.80', dport: 80, sport: 41000 });
    expect(syn.out!.src).toBe(NODE);
    const back = dp.process(buildPacket({ src: syn.out!.dst, dst: NODE, proto: 'tcp', sport: 8080, dport: syn.out!.sport, flags: 'SA' }), 1001);
    expect(back.verdict).toBe('FORWARD');
    const o = decodePacket(back.packet!);
    expect([o.src, o.sport, o.dst, o.dport]).toEqual(['10.96.0.80', 80, '192.168.49.7', 41000]);
    // The connection is IPVS's (SYN_RECV → ESTABLISHED after the handshake's ACK) and conntrack's.
    send(dp, { src: '192.168.49.7', dst: '10.96.0.80', dport: 80, sport: 41000, flags: 'A' }, 1002);
    expect(dp.ipvsadm('-Lnc').stdout).toMatch(/TCP \d\d:\d\d\s+ESTABLISHED\s+192\.168\.49\.7:41000\s+10\.96\.0\.80:80/);
  });

  it('a pod-to-VIP reply (no masquerade) is rewritten by IPVS at FORWARD only', async () => {
    const dp = await node(docs(service(WEB), slice('web', EPS)));
    const syn = send(dp, { src: '10.244.3.3', dst: '10.96.0.80', dport: 80, sport: 41001 });
    const back = dp.process(buildPacket({ src: syn.out!.dst, dst: '10.244.3.3', proto: 'tcp', sport: 8080, dport: 41001, flags: 'SA' }), 1001);
    const o = decodePacket(back.packet!);
    expect([back.verdict, o.src, o.sport, o.dst]).toEqual(['FORWARD', '10.96.0.80', 80, '10.244.3.3']);
  });

  it('VIPs are local addresses (addrtype LOCAL): KUBE-SERVICES sends them to KUBE-NODE-PORT, unknown VIP ports reach INPUT', async () => {
    const dp = await node(docs(service(WEB), slice('web', EPS)));
    const t = dp.trace({ src: '10.244.3.3', dst: '10.96.0.80', dport: 22 });
    const hit = t.steps.filter((s) => s.matched).map((s) => `${s.table}/${s.chain}:${s.target}`);
    expect(hit).toContain('nat/KUBE-SERVICES:jump KUBE-NODE-PORT');
    expect(hit).toContain('filter/KUBE-IPVS-FILTER:REJECT');
  });

  it('an unknown scheduler is refused before anything changes, naming the setting', async () => {
    const dp = await node(docs(service(WEB), slice('web', EPS)));
    const before = [dp.ipvsadm(['-Ln']).stdout, dp.iptablesSave()];
    expect(() => dp.apply(docs(service(WEB), slice('web', EPS.slice(0, 1))), { mode: 'ipvs', nodeName: 'node-a', ipvs: { scheduler: 'fastest' } }))
      .toThrow(/ipvs\.scheduler: unknown scheduler "fastest"/);
    expect([dp.ipvsadm(['-Ln']).stdout, dp.iptablesSave()]).toEqual(before);
    // The next good sync applies the change the refused one carried.
    dp.apply(docs(service(WEB), slice('web', EPS.slice(0, 1))), { mode: 'ipvs', nodeName: 'node-a', ipvs: { scheduler: 'sh' } });
    expect(dp.ipvsadm(['-Ln']).stdout).toMatch(/TCP {2}10\.96\.0\.80:80 sh/);
    expect(dp.ipvsadm(['-Ln']).stdout).not.toContain('10.244.2.12');
  });

  it('rr spreads new connections over the endpoints, connections stay on theirs', async () => {
    const dp = await node(docs(service(WEB), slice('web', EPS)));
    const seen: string[] = [];
    for (let i = 0; i < 4; i++) seen.push(send(dp, { src: '10.244.3.3', dst: '10.96.0.80', dport: 80, sport: 42000 + i }).out!.dst);
    expect(new Set(seen)).toEqual(new Set(EP_ADDRS));
    expect(seen[0]).toBe(seen[2]);
    expect(seen[1]).toBe(seen[3]);
    expect(send(dp, { src: '10.244.3.3', dst: '10.96.0.80', dport: 80, sport: 42001, flags: 'A' }, 1003).out!.dst).toBe(seen[1]);
  });

  it('affinity (persistence) keeps a client on one endpoint within its timeout', async () => {
    const dp = await node(docs(service({ ...WEB, affinitySeconds: 60 }), slice('web', EPS)));
    expect(dp.ipvsadm('-Ln').stdout).toMatch(/TCP  10\.96\.0\.80:80 rr persistent 60/);
    const first = send(dp, { src: '10.244.3.3', dst: '10.96.0.80', dport: 80, sport: 43000 }, 1000).out!.dst;
    for (let i = 1; i < 4; i++) expect(send(dp, { src: '10.244.3.3', dst: '10.96.0.80', dport: 80, sport: 43000 + i }, 1000 + i * 10_000).out!.dst).toBe(first);
  });

  it('kubernetes#89358: affinity ends at its timeout although a closed connection still holds the template (TIME_WAIT)', async () => {
    const objects = docs(service({ ...WEB, affinitySeconds: 10 }), slice('web', EPS));
    const run = async (strict: boolean) => {
      const dp = await node(objects);
      if (!strict) dp.ipvs().setSysctl('persist_strict', 0);
      const c = { src: '10.244.3.3', dst: '10.96.0.80', dport: 80, sport: 44000 };
      const a = send(dp, c, 1000).out!;
      // Handshake and close: the entry sits in TIME_WAIT (2 min) controlled by the template.
      dp.process(buildPacket({ src: a.dst, dst: c.src, proto: 'tcp', sport: 8080, dport: c.sport, flags: 'SA' }), 1001);
      send(dp, { ...c, flags: 'A' }, 1002);
      send(dp, { ...c, flags: 'FA' }, 1003);
      dp.process(buildPacket({ src: a.dst, dst: c.src, proto: 'tcp', sport: 8080, dport: c.sport, flags: 'FA' }), 1004);
      send(dp, { ...c, flags: 'A' }, 1005);
      const second = send(dp, { ...c, sport: 44001 }, 1000 + 12_000).out!.dst;   // 12 s later
      return { first: a.dst, second };
    };
    const ours = await run(true);
    expect(ours.second).not.toBe(ours.first);          // rr's next pick: affinity over after 10 s
    const kernel = await run(false);
    expect(kernel.second).toBe(kernel.first);          // the kernel's behaviour the issue reports
  });

  it('graceful termination: a leaving TCP endpoint drains at weight 0, then goes', async () => {
    const dp = await node(docs(service(WEB), slice('web', EPS)));
    const c = { src: '10.244.3.3', dst: '10.96.0.80', dport: 80, sport: 45000 };
    const a = send(dp, c, 1000).out!.dst;
    const stay = EP_ADDRS.find((x) => x !== a)!;
    const r = dp.apply(docs(service(WEB), slice('web', EPS.filter((e) => e.ip !== a))), { mode: 'ipvs', nodeName: 'node-a' });
    expect(r.families.find((f) => f.family === 4)!.ipvs!.terminating).toBe(1);
    expect(dp.ipvsadm('-Ln').stdout).toMatch(new RegExp(`-> ${a.replace(/\./g, '\\.')}:8080\\s+Masq\\s+0\\s`));
    // Its connection keeps going to it; new ones go to the endpoint that stays.
    expect(send(dp, { ...c, flags: 'A' }, 1001).out!.dst).toBe(a);
    expect(send(dp, { ...c, sport: 45001 }, 1002).out!.dst).toBe(stay);
    // Once its entries are gone the next sync deletes it.
    dp.ipvs().expire(1000 + 20 * 60_000);
    const r2 = dp.apply(docs(service(WEB), slice('web', EPS.filter((e) => e.ip !== a)), '# resync'), { mode: 'ipvs', nodeName: 'node-a' });
    expect(r2.families.find((f) => f.family === 4)!.ipvs!.terminating).toBe(0);
    expect(dp.ipvsadm('-Ln').stdout).not.toContain(`${a}:8080`);
  });

  it('a leaving UDP endpoint goes at once and its conntrack flows are flushed (stale UDP cleanup)', async () => {
    const udp = { ...WEB, protocol: 'UDP' as const };
    const dp = await node(docs(service(udp), slice('web', EPS, 'UDP')));
    const a = send(dp, { src: '10.244.3.3', dst: '10.96.0.80', dport: 80, proto: 'udp' }).out!.dst;
    const r = dp.apply(docs(service(udp), slice('web', EPS.filter((e) => e.ip !== a), 'UDP')), { mode: 'ipvs', nodeName: 'node-a' });
    expect(r.flushed).toBe(1);
    expect(r.families.find((f) => f.family === 4)!.ipvs!.terminating).toBe(0);
    expect(dp.ipvsadm('-Ln').stdout).not.toContain(`${a}:8080`);
    // The flow's next datagram has no conntrack entry (flushed): IPVS expires its entry and
    // schedules it at once to an endpoint left (expire_nodest_conn), no datagram lost.
    const next = send(dp, { src: '10.244.3.3', dst: '10.96.0.80', dport: 80, proto: 'udp' });
    expect([next.verdict, next.out?.dst]).toEqual(['FORWARD', EP_ADDRS.find((e) => e !== a)]);
  });

  it('a removed real server: a packet of a connection conntrack has confirmed is dropped, not moved (old conntrack)', async () => {
    const dp = await node(docs(service(WEB), slice('web', EPS)));
    const c = { src: '10.244.3.3', dst: '10.96.0.80', dport: 80, sport: 45100 };
    const a = send(dp, c, 1000).out!.dst;
    expect(send(dp, { src: a, dst: c.src, sport: 8080, dport: c.sport, flags: 'SA' }, 1001).verdict).toBe('FORWARD');
    expect(send(dp, { ...c, flags: 'A' }, 1001).verdict).toBe('FORWARD');
    // Deleted behind kube-proxy's back (ipvsadm -d): the connection's conntrack entry is confirmed
    // (ESTABLISHED). An ACK with no tracked connection would instead pass on (nothing to schedule).
    expect(dp.ipvsadm(`-d -t 10.96.0.80:80 -r ${a}:8080`).code).toBe(0);
    const r = send(dp, { ...c, flags: 'A' }, 1002);
    expect([r.verdict, r.reason]).toEqual(['DROP', 'no_endpoints']);
  });

  it('a real server the kernel refuses (not unicast) is reported and the sync goes on without it', async () => {
    const dp = await Dataplane.create({ nodeIPs: [NODE], podCIDR: POD_CIDR, seed: 7 });
    // 239.1.1.1 passes the API server (only link-local multicast is refused there); ip_vs_new_dest does not take it.
    const r = dp.apply(docs(service(WEB), slice('web', [...EPS, { ip: '239.1.1.1' }])), { mode: 'ipvs', nodeName: 'node-a' });
    expect(r.issues).toEqual([expect.objectContaining({ severity: 'error', object: 'IPVS tcp 10.96.0.80:80', path: '239.1.1.1:8080' })]);
    expect(r.issues[0]!.message).toMatch(/real server 239\.1\.1\.1:8080 refused: .*invalid argument/);
    const listed = dp.ipvsadm('-Ln').stdout;
    for (const ep of EP_ADDRS) expect(listed).toContain(`-> ${ep}:8080`);
    expect(listed).not.toContain('239.1.1.1');
    expect(send(dp, { src: '10.244.3.3', dst: WEB.clusterIP, dport: 80, flags: 'S' }).verdict).toBe('FORWARD');
  });

  it('syncs by difference: an unchanged apply changes nothing, an endpoint change touches one real server and one set member', async () => {
    const dp = await node(docs(service(WEB), slice('web', EPS)));
    const same = dp.apply(docs(service(WEB), slice('web', EPS)), { mode: 'ipvs', nodeName: 'node-a' });
    expect(same.families.find((f) => f.family === 4)!.ipvs).toMatchObject({ added: 0, edited: 0, deleted: 0, setAdds: 0, setDels: 0, iptables: false });
    const more = [...EPS, { ip: '10.244.2.13', node: 'node-a' }];
    const r = dp.apply(docs(service(WEB), slice('web', more)), { mode: 'ipvs', nodeName: 'node-a' });
    // One real server added; KUBE-LOOP-BACK gains the new local endpoint.
    expect(r.families.find((f) => f.family === 4)!.ipvs).toMatchObject({ added: 1, edited: 0, deleted: 0, setAdds: 1, setDels: 0, iptables: false });
  });

  it('dp.trace shows the IPVS step and follows its destination through POSTROUTING (masquerade)', async () => {
    const dp = await node(docs(service(WEB), slice('web', EPS)));
    const t = dp.trace({ src: '192.168.49.7', dst: '10.96.0.80', dport: 80 });
    expect(t.ipvs).toMatchObject({ kind: 'scheduler', service: 'TCP  10.96.0.80:80', scheduler: 'rr' });
    expect(t.ipvs!.choices).toHaveLength(1);
    const to = t.ipvs!.choices[0]!.to;
    expect(EP_ADDRS.map((e) => `${e}:8080`)).toContain(to);
    expect(t.outcomes).toHaveLength(1);
    expect(t.outcomes[0]).toMatchObject({ verdict: 'FORWARD', to, masq: true });
    expect(t.steps.some((s) => s.chain === 'KUBE-POSTROUTING' && s.target === 'MASQUERADE' && s.matched)).toBe(true);
    // The trace changed nothing: the first real packet goes where the trace said.
    expect(`${send(dp, { src: '192.168.49.7', dst: '10.96.0.80', dport: 80 }).out!.dst}:8080`).toBe(to);
  });
});

describe('kube-proxy ipvs mode: size', () => {
  it('starts a cluster with more virtual servers than the default pool holds (4,096)', async () => {
    const objs: string[] = [];
    for (let i = 0; i < 4200; i++) {
      const name = `s${i}`;
      objs.push(service({ name, clusterIP: `10.96.${i >> 8}.${i & 255}`, port: 80 }), slice(name, [{ ip: `10.244.${i >> 8}.${i & 255}` }]));
    }
    const dp = await node(docs(...objs));
    expect(dp.ipvs().services()).toHaveLength(4200);
    const r = dp.process(buildPacket({ src: '10.244.200.1', dst: '10.96.16.103', proto: 'tcp', sport: 5000, dport: 80, flags: 'S' }), 10);
    expect(decodePacket(r.packet!).dst).toBe('10.244.16.103');
  }, 60_000);

  it('keeps syncing a cluster that grows well past its first sync (the pools grow; flows stay)', async () => {
    // The first sync holds 2 Services: the pools start at room for 4,096 virtual and 65,536 real
    // servers. The cluster then grows to 5,000 Services of 20 endpoints (100,000 real servers).
    const objs = (n: number, per: number) => {
      const out: string[] = [];
      for (let i = 0; i < n; i++) {
        const name = `s${i}`;
        out.push(service({ name, clusterIP: `10.96.${i >> 8}.${i & 255}`, port: 80 }),
          slice(name, Array.from({ length: per }, (_, e) => ({ ip: `10.${100 + e}.${i >> 8}.${i & 255}` }))));
      }
      return docs(...out);
    };
    const dp = await node(objs(2, 2));
    const before = send(dp, { src: '10.244.200.1', dst: '10.96.0.1', dport: 80 });
    expect(before.verdict).toBe('FORWARD');
    const r = dp.apply(objs(5000, 20), { mode: 'ipvs', nodeName: 'node-a' });
    expect(r.issues).toEqual([]);
    const listed = dp.ipvs().services();
    expect(listed).toHaveLength(5000);
    expect(listed.reduce((n, s) => n + s.destinations.length, 0)).toBe(100_000);
    // The flow from before keeps its real server; a new one to the last Service reaches one of its own.
    expect(send(dp, { src: '10.244.200.1', dst: '10.96.0.1', dport: 80, flags: 'A' }, 1100).out!.dst).toBe(before.out!.dst);
    const last = send(dp, { src: '10.244.200.1', dst: '10.96.19.135', dport: 80 }, 1200);
    expect(last.verdict).toBe('FORWARD');
    expect(last.out!.dst).toMatch(/^10\.1[01][0-9]\.19\.135$/);
  }, 120_000);
});

const node6 = () => Dataplane.create({ nodeIPs: [NODE, 'fd00:49::2'], podCIDR: [POD_CIDR, 'fd00:244::/64'], seed: 7 });

describe('kube-proxy ipvs mode: IPv6', () => {
  it('an IPv6 ClusterIP is scheduled and masqueraded like IPv4 (KUBE-6- sets, ip6tables rules)', async () => {
    const dp = await node6();
    const objects = docs([
      'apiVersion: v1', 'kind: Service', 'metadata: { name: web6, namespace: default }', 'spec:',
      '  clusterIP: fd00:96::80', '  ipFamilies: [IPv6]', '  ports: [{ name: p, port: 80, protocol: TCP, targetPort: 8080 }]',
    ].join('\n'), [
      'apiVersion: discovery.k8s.io/v1', 'kind: EndpointSlice',
      'metadata: { name: web6-1, namespace: default, labels: { kubernetes.io/service-name: web6 } }',
      'addressType: IPv6', 'ports: [{ name: p, port: 8080, protocol: TCP }]',
      'endpoints:', '  - addresses: ["fd00:244::11"]', '    conditions: { ready: true }',
    ].join('\n'));
    expect(dp.apply(objects, { mode: 'ipvs', nodeName: 'node-a' }).issues).toEqual([]);
    expect(dp.ipvsadm('-Ln').stdout).toContain('TCP  [fd00:96::80]:80 rr');
    const pod = send(dp, { src: 'fd00:244::33', dst: 'fd00:96::80', dport: 80 });
    expect([pod.verdict, pod.out!.dst, pod.out!.dport, pod.out!.src]).toEqual(['FORWARD', 'fd00:244::11', 8080, 'fd00:244::33']);
    const outside = send(dp, { src: 'fd00:49::7', dst: 'fd00:96::80', dport: 80 });
    expect([outside.verdict, outside.out!.dst, outside.out!.src]).toEqual(['FORWARD', 'fd00:244::11', 'fd00:49::2']);
    // A port no Service defines on the VIP: KUBE-6-IPVS-IPS → REJECT (ICMPv6).
    const other = send(dp, { src: 'fd00:244::33', dst: 'fd00:96::80', dport: 22 });
    expect([other.verdict, other.out!.proto]).toEqual(['REPLY', 58]);
    // Leaving ipvs mode, both connections stay on their real server (the flows' IPv6 addresses
    // live in conntrack's side table).
    dp.process(buildPacket({ src: 'fd00:244::11', dst: 'fd00:244::33', proto: 'tcp', sport: 8080, dport: 40000, flags: 'SA' }), 1010);
    dp.process(buildPacket({ src: 'fd00:244::11', dst: 'fd00:49::2', proto: 'tcp', sport: 8080, dport: outside.out!.sport, flags: 'SA' }), 1010);
    expect(dp.apply(objects, { mode: 'iptables', nodeName: 'node-a' }).issues).toEqual([]);
    for (const [src, from] of [['fd00:244::33', 'fd00:244::33'], ['fd00:49::7', 'fd00:49::2']] as const) {
      const next = send(dp, { src, dst: 'fd00:96::80', dport: 80, flags: 'A' }, 1020);
      expect([next.verdict, next.out?.dst, next.out?.dport, next.out?.src], src).toEqual(['FORWARD', 'fd00:244::11', 8080, from]);
    }
  });
});

describe('kube-proxy ipvs mode: leaving it', () => {
  // Connections IPVS made keep their real server when the node leaves ipvs mode — at once, or by
  // restarting in another mode with a conntrack snapshot taken before or after the first sync:
  // their flows become conntrack DNAT flows (ABI.md conntrackAdoptIpvsNat).
  const rows = FLOWS.filter((r) => r.verdict === 'FORWARD' && !r.packet.local);
  const ways = ['iptables', 'direct'].flatMap((to) => [
    { name: `switched to ${to}`, to, restart: null },
    { name: `restarted in ${to}, snapshot loaded before the first sync`, to, restart: 'before' },
    { name: `restarted in ${to}, snapshot loaded after the first sync`, to, restart: 'after' },
  ] as const);
  for (const way of ways) {
    it(`${way.name}: every flow goes on to its real server, and its replies come from the Service address`, async () => {
      for (const row of rows) {
        const dp = await node(row.objects);
        const proto = row.packet.proto ?? 'tcp';
        const first = send(dp, row.packet);
        expect(first.verdict, row.name).toBe('FORWARD');
        const sent = first.out!;
        const answer = (d: Dataplane, now: number) => send(d, { src: sent.dst, dst: sent.src, sport: sent.dport, dport: sent.sport, proto, flags: 'SA' }, now);
        expect(answer(dp, 1010).out!.src, row.name).toBe(row.packet.dst);
        let next = dp;
        if (way.restart === null) {
          expect(dp.apply(row.objects, { mode: way.to, nodeName: 'node-a' }).issues).toEqual([]);
          // IPVS handed them over: its table is empty, conntrack translates them.
          expect(dp.ipvs().connections(1020)).toEqual([]);
          expect(dp.conntrack().map((e) => e.nat.dnat), row.name).toEqual([true]);
        } else {
          const snap = dp.snapshot(1020);
          next = await Dataplane.create({ nodeIPs: [NODE], podCIDR: POD_CIDR, seed: 8 });
          if (way.restart === 'before') next.restore(snap);
          expect(next.apply(row.objects, { mode: way.to, nodeName: 'node-a' }).issues).toEqual([]);
          if (way.restart === 'after') next.restore(snap);
        }
        const again = send(next, { ...row.packet, flags: 'A' }, 1030);
        expect([again.verdict, again.out?.dst, again.out?.dport, again.out?.src, again.out?.sport], `${row.name}: ${way.name}`)
          .toEqual(['FORWARD', sent.dst, sent.dport, sent.src, sent.sport]);
        const back = answer(next, 1040);
        expect([back.out?.src, back.out?.sport, back.out?.dst], `${row.name}: ${way.name}`).toEqual([row.packet.dst, row.packet.dport, row.packet.src]);
      }
    });
  }
});

describe('kube-proxy ipvs mode: two snapshots restored before the first sync', () => {
  it("each snapshot's IPVS connections are loaded at the first sync: the first one's are not dropped by the second", async () => {
    const objects = docs(service(WEB), slice('web', EPS));
    // Two proxies, each with one established connection (SYN, SYN-ACK, ACK).
    const made = await Promise.all(['10.244.3.9', '10.244.3.10'].map(async (client, i) => {
      const dp = await node(objects);
      const sport = 40000 + i;
      const pod = send(dp, { src: client, dst: WEB.clusterIP, dport: 80, sport }).out!.dst;
      dp.process(buildPacket({ src: pod, dst: client, proto: 'tcp', sport: 8080, dport: sport, flags: 'SA' }), 1001);
      send(dp, { src: client, dst: WEB.clusterIP, dport: 80, sport, flags: 'A' }, 1002);
      return { client, sport, pod, snap: dp.snapshot(1100) };
    }));
    const dp = await Dataplane.create({ nodeIPs: [NODE], podCIDR: POD_CIDR, seed: 99 });
    for (const m of made) dp.restore(m.snap);
    expect(dp.apply(objects, { mode: 'ipvs', nodeName: 'node-a' }).issues).toEqual([]);
    expect(dp.ipvs().connections(1200).map((c) => c.client).sort()).toEqual(made.map((m) => m.client).sort());
    for (const m of made) {
      const next = send(dp, { src: m.client, dst: WEB.clusterIP, dport: 80, sport: m.sport, flags: 'A' }, 1200);
      expect([next.verdict, next.out!.dst, next.out!.dport], m.client).toEqual(['FORWARD', m.pod, 8080]);
    }
  });
});

describe('an ipset that refuses a member (full at its maxelem)', () => {
  it('is reported and the sync goes on: every virtual server is programmed, and the next sync adds the member', async () => {
    const dp = await Dataplane.create({ nodeIPs: [NODE], podCIDR: POD_CIDR, seed: 7 });
    const objects = (n: number) => docs(...Array.from({ length: n }, (_, i) => [
      service({ name: `s${i}`, clusterIP: `10.96.0.${10 + i}`, port: 80 }), slice(`s${i}`, [{ ip: `10.244.1.${10 + i}`, node: 'node-b' }]),
    ]).flat());
    // KUBE-CLUSTER-IP full: its set takes no member for s2, as `ipset add` answers a full hash.
    const table = dp.ipset;
    const full = (text: string) => /add KUBE-CLUSTER-IP 10\.96\.0\.12,/.test(text);
    const restore = table.restore.bind(table), command = table.command.bind(table);
    table.restore = (text, o) => { if (full(text)) throw new Error('Hash is full, cannot add more elements'); return restore(text, o); };
    table.command = (args) => { if (full(Array.isArray(args) ? args.join(' ') : String(args))) throw new Error('Hash is full, cannot add more elements'); return command(args); };
    const r = dp.apply(objects(3), { mode: 'ipvs', nodeName: 'node-a' });
    expect(r.issues.map((i) => i.object)).toEqual(['ipset KUBE-CLUSTER-IP']);
    expect(r.issues[0]!.message).toMatch(/10\.96\.0\.12,tcp:80: Hash is full/);
    expect(dp.ipvsadm('-Ln').stdout!.split('\n').filter((l) => l.startsWith('TCP'))).toHaveLength(3);
    expect(send(dp, { src: '10.244.9.9', dst: '10.96.0.10', dport: 80 }).out?.dst).toBe('10.244.1.10');
    expect(table.list('KUBE-CLUSTER-IP')).not.toMatch(/10\.96\.0\.12,/);
    // Room again: a later sync (another Service changing) adds what was left out.
    table.restore = restore;
    table.command = command;
    expect(dp.apply(objects(4), { mode: 'ipvs', nodeName: 'node-a' }).issues).toEqual([]);
    expect(table.list('KUBE-CLUSTER-IP')).toMatch(/10\.96\.0\.12,tcp:80/);
  });
});
