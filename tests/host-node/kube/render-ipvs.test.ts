// IPVS-mode renderer: expectations transcribed from kube-proxy's pkg/proxy/ipvs/proxier_test.go
// (TestOnlyLocalNodePorts, TestLoadBalancerSourceRanges, TestOnlyLocalLoadBalancing), our own
// cases (ClusterIP with two endpoints, ClientIP affinity, no endpoints, IPv6 set names), and a
// load of all three texts into one Dataplane.
import { describe, expect, it } from 'vitest';
import { Dataplane } from '../../../host-node/dataplane.js';
import { buildPacket, decodePacket } from '../../../host-node/core/packet.js';
import { ipvsSetName, parseManifests, renderIpvs, type IpvsRender, type IpvsRenderOptions } from '../../../host-node/kube/index.js';
import { modelOf } from './fixture.js';

function render(yaml: string, opts: IpvsRenderOptions, family: 4 | 6 = 4): IpvsRender {
  return renderIpvs(modelOf(parseManifests(yaml), opts.nodeName ?? '', family), opts);
}

const lines = (text: string): string[] => text.split('\n').filter((l) => l !== '');
/** Entries of one set in the ipset text. */
const setEntries = (r: IpvsRender, name: string): string[] =>
  lines(r.ipset).filter((l) => l.startsWith(`add ${name} `)).map((l) => l.slice(`add ${name} `.length));
/** Rules of one chain of one table, in order, as "target matchset" pairs like proxier_test's ExpectedIptablesChain. */
function chain(r: IpvsRender, table: 'nat' | 'filter', name: string): string[] {
  const text = r.iptables.split(`*${table}\n`)[1]!.split('COMMIT')[0]!;
  return lines(text)
    .filter((l) => l.startsWith(`-A ${name} `))
    .map((l) => `${/-j (\S+)/.exec(l)![1]} ${/--match-set (\S+)/.exec(l)?.[1] ?? (/ -s (\S+)/.exec(l)?.[1] ?? '')}`.trim());
}
const vsLines = (r: IpvsRender, vs: string): string[] => lines(r.ipvsadm).filter((l) => l.includes(` ${vs}`));

// proxier_test.go TestOnlyLocalNodePorts: NodePort 3001, eTP Local, one local and one remote endpoint.
const ONLY_LOCAL_NODEPORTS = `kind: Service
metadata: {name: svc1, namespace: ns1}
spec: {type: NodePort, clusterIP: 10.20.30.41, externalTrafficPolicy: Local, ports: [{name: p80, port: 80, protocol: TCP, nodePort: 3001}]}
---
kind: EndpointSlice
metadata: {name: svc1-1, namespace: ns1, labels: {kubernetes.io/service-name: svc1}}
addressType: IPv4
endpoints: [{addresses: [10.180.0.1], nodeName: test-node}, {addresses: [10.180.1.1], nodeName: other-node}]
ports: [{name: p80, port: 80, protocol: TCP}]`;

// proxier_test.go TestLoadBalancerSourceRanges: LB 1.2.3.4 restricted to 10.0.0.0/8.
const LB_SOURCE_RANGES = `kind: Service
metadata: {name: svc1, namespace: ns1}
spec: {type: LoadBalancer, clusterIP: 10.20.30.41, loadBalancerSourceRanges: [10.0.0.0/8], ports: [{name: p80, port: 80, protocol: TCP}]}
status: {loadBalancer: {ingress: [{ip: 1.2.3.4}]}}
---
kind: EndpointSlice
metadata: {name: svc1-1, namespace: ns1, labels: {kubernetes.io/service-name: svc1}}
addressType: IPv4
endpoints: [{addresses: [10.180.0.1]}]
ports: [{name: p80, port: 80, protocol: TCP}]`;

// proxier_test.go TestOnlyLocalLoadBalancing: LB 1.2.3.4, eTP Local, nodePort 3001.
const ONLY_LOCAL_LB = `kind: Service
metadata: {name: svc1, namespace: ns1}
spec: {type: LoadBalancer, clusterIP: 10.20.30.41, externalTrafficPolicy: Local, healthCheckNodePort: 30000, ports: [{name: p80, port: 80, protocol: TCP, nodePort: 3001}]}
status: {loadBalancer: {ingress: [{ip: 1.2.3.4}]}}
---
kind: EndpointSlice
metadata: {name: svc1-1, namespace: ns1, labels: {kubernetes.io/service-name: svc1}}
addressType: IPv4
endpoints: [{addresses: [10.180.0.1], nodeName: test-node}, {addresses: [10.180.1.1], nodeName: other-node}]
ports: [{name: p80, port: 80, protocol: TCP}]`;

// Our own small cluster: ClusterIP with two endpoints, ClientIP affinity, a Service without endpoints.
const MIXED = `kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 198.18.100.10, ports: [{name: http, port: 80, protocol: TCP}]}
---
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [198.18.1.2], nodeName: node-a}, {addresses: [198.18.1.1], nodeName: node-b}]
ports: [{name: http, port: 8080, protocol: TCP}]
---
kind: Service
metadata: {name: sticky, namespace: default}
spec: {clusterIP: 198.18.100.11, sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}, ports: [{name: dns, port: 53, protocol: UDP}]}
---
kind: EndpointSlice
metadata: {name: sticky-1, namespace: default, labels: {kubernetes.io/service-name: sticky}}
addressType: IPv4
endpoints: [{addresses: [198.18.1.3]}]
ports: [{name: dns, port: 5353, protocol: UDP}]
---
kind: Service
metadata: {name: empty, namespace: default}
spec: {type: NodePort, clusterIP: 198.18.100.12, ports: [{name: p, port: 81, protocol: TCP, nodePort: 30081}]}`;

// ClusterIP with an externalIP and eTP Local: KUBE-EXTERNAL-IP-LOCAL and its physdev/addrtype rules.
const EXTERNAL = `kind: Service
metadata: {name: ext, namespace: ns3}
spec: {clusterIP: 198.18.100.20, externalIPs: [198.18.50.1], externalTrafficPolicy: Local, ports: [{name: p, port: 443, protocol: TCP}]}`;

const KP: IpvsRenderOptions = {
  nodeName: 'test-node',
  nodeIPs: ['100.101.102.103'],
  hostAddresses: ['100.101.102.103', '2001:db8::'],
  nodePortAddresses: ['100.101.102.0/24'],
  clusterCIDR: '10.0.0.0/24',
};

describe('kube-proxy proxier_test.go expectations', () => {
  it('TestOnlyLocalNodePorts: 2 virtual servers, NodePort one only to the local endpoint', () => {
    const r = render(ONLY_LOCAL_NODEPORTS, KP);
    expect(r.virtualServers).toBe(2);
    expect(vsLines(r, '100.101.102.103:3001')).toEqual([
      '-A -t 100.101.102.103:3001 -s rr',
      '-a -t 100.101.102.103:3001 -r 10.180.0.1:80 -m -w 1',
    ]);
    // Internal policy is Cluster: the ClusterIP still reaches both endpoints.
    expect(vsLines(r, '10.20.30.41:80')).toHaveLength(3);
    expect(setEntries(r, 'KUBE-NODE-PORT-TCP')).toEqual(['3001']);
    expect(setEntries(r, 'KUBE-NODE-PORT-LOCAL-TCP')).toEqual(['3001']);
    expect(chain(r, 'nat', 'KUBE-SERVICES')).toEqual([
      'RETURN 127.0.0.0/8', 'KUBE-MARK-MASQ KUBE-CLUSTER-IP', 'KUBE-NODE-PORT', 'ACCEPT KUBE-CLUSTER-IP',
    ]);
    expect(chain(r, 'nat', 'KUBE-NODE-PORT')).toEqual(['RETURN KUBE-NODE-PORT-LOCAL-TCP', 'KUBE-MARK-MASQ KUBE-NODE-PORT-TCP']);
    expect(chain(r, 'filter', 'KUBE-NODE-PORT')).toEqual(['ACCEPT KUBE-HEALTH-CHECK-NODE-PORT']);
    // The cluster-IP masquerade rule uses the detector (buildFakeProxier has one).
    expect(r.iptables).toContain('-m set --match-set KUBE-CLUSTER-IP dst,dst ! -s 10.0.0.0/24 -j KUBE-MARK-MASQ');
    // Only the local endpoint is in the hairpin set.
    expect(setEntries(r, 'KUBE-LOOP-BACK')).toEqual(['10.180.0.1,tcp:80,10.180.0.1']);
  });

  it('TestLoadBalancerSourceRanges: FW and source-CIDR sets, firewall chains', () => {
    const r = render(LB_SOURCE_RANGES, KP);
    expect(r.virtualServers).toBe(2);
    expect(vsLines(r, '1.2.3.4:80')).toEqual(['-A -t 1.2.3.4:80 -s rr', '-a -t 1.2.3.4:80 -r 10.180.0.1:80 -m -w 1']);
    expect(setEntries(r, 'KUBE-LOAD-BALANCER')).toEqual(['1.2.3.4,tcp:80']);
    expect(setEntries(r, 'KUBE-LOAD-BALANCER-FW')).toEqual(['1.2.3.4,tcp:80']);
    expect(setEntries(r, 'KUBE-LOAD-BALANCER-SOURCE-CIDR')).toEqual(['1.2.3.4,tcp:80,10.0.0.0/8']);
    expect(chain(r, 'nat', 'KUBE-SERVICES')).toEqual([
      'RETURN 127.0.0.0/8', 'KUBE-LOAD-BALANCER KUBE-LOAD-BALANCER', 'KUBE-MARK-MASQ KUBE-CLUSTER-IP', 'KUBE-NODE-PORT',
      'ACCEPT KUBE-CLUSTER-IP', 'ACCEPT KUBE-LOAD-BALANCER',
    ]);
    expect(chain(r, 'filter', 'KUBE-PROXY-FIREWALL')).toEqual(['KUBE-SOURCE-RANGES-FIREWALL KUBE-LOAD-BALANCER-FW']);
    expect(chain(r, 'filter', 'KUBE-SOURCE-RANGES-FIREWALL')).toEqual(['RETURN KUBE-LOAD-BALANCER-SOURCE-CIDR', 'DROP']);
    // The node (100.101.102.103) is outside 10.0.0.0/8: it is blocked from the VIP (issue 119656).
    expect(r.iptables).toContain('-A KUBE-IPVS-OUT-FILTER -s 1.2.3.4 -m ipvs --vaddr 1.2.3.4 --vproto tcp --vport 80 -j DROP');
    expect(setEntries(r, 'KUBE-LOAD-BALANCER-SOURCE-IP')).toEqual([]);
    // Inside the range instead: the VIP-as-source entry, and no OUTPUT block.
    const inside = render(LB_SOURCE_RANGES, { ...KP, nodeIPs: ['10.1.1.1'] });
    expect(setEntries(inside, 'KUBE-LOAD-BALANCER-SOURCE-IP')).toEqual(['1.2.3.4,tcp:80,1.2.3.4']);
    expect(inside.iptables).not.toContain('KUBE-IPVS-OUT-FILTER -s');
  });

  it('TestOnlyLocalLoadBalancing: LB-LOCAL set returns before masquerading; health check port', () => {
    const r = render(ONLY_LOCAL_LB, KP);
    expect(vsLines(r, '1.2.3.4:80')).toEqual(['-A -t 1.2.3.4:80 -s rr', '-a -t 1.2.3.4:80 -r 10.180.0.1:80 -m -w 1']);
    expect(setEntries(r, 'KUBE-LOAD-BALANCER')).toEqual(['1.2.3.4,tcp:80']);
    expect(setEntries(r, 'KUBE-LOAD-BALANCER-LOCAL')).toEqual(['1.2.3.4,tcp:80']);
    expect(chain(r, 'nat', 'KUBE-LOAD-BALANCER')).toEqual(['RETURN KUBE-LOAD-BALANCER-LOCAL', 'KUBE-MARK-MASQ']);
    // TestHealthCheckNodePort: the port of an eTP=Local LoadBalancer is in the set.
    expect(setEntries(r, 'KUBE-HEALTH-CHECK-NODE-PORT')).toEqual(['30000']);
    // LB IP not on a host interface: bound to kube-ipvs0 with the cluster IP.
    expect(r.boundAddresses).toEqual(['1.2.3.4', '10.20.30.41']);
  });
});

describe('renderIpvs', () => {
  const OPTS: IpvsRenderOptions = { nodeName: 'node-a', nodeIPs: ['198.18.0.254'], clusterCIDR: '198.18.1.0/24' };

  it('writes virtual servers: rr, masquerading weight 1, persistence for ClientIP, none without endpoints', () => {
    const r = render(MIXED, OPTS);
    expect(lines(r.ipvsadm).sort()).toEqual([
      '-A -t 198.18.0.254:30081 -s rr',
      '-A -t 198.18.100.10:80 -s rr',
      '-A -t 198.18.100.12:81 -s rr',
      '-A -u 198.18.100.11:53 -s rr -p 600',
      '-a -t 198.18.100.10:80 -r 198.18.1.1:8080 -m -w 1',
      '-a -t 198.18.100.10:80 -r 198.18.1.2:8080 -m -w 1',
      '-a -u 198.18.100.11:53 -r 198.18.1.3:5353 -m -w 1',
    ]);
    expect(r.realServers).toBe(3);
    expect(setEntries(r, 'KUBE-CLUSTER-IP')).toEqual(['198.18.100.10,tcp:80', '198.18.100.11,udp:53', '198.18.100.12,tcp:81']);
    expect(setEntries(r, 'KUBE-NODE-PORT-TCP')).toEqual(['30081']);
    expect(setEntries(r, 'KUBE-NODE-PORT-LOCAL-TCP')).toEqual([]);
    expect(setEntries(r, 'KUBE-LOOP-BACK')).toEqual(['198.18.1.2,tcp:8080,198.18.1.2']);
    // Empty sets add no ipset-driven rules.
    expect(r.iptables).not.toContain('KUBE-LOAD-BALANCER dst,dst -j KUBE-LOAD-BALANCER');
  });

  it('honours scheduler, masqueradeAll, no detector, mark bit and --random-fully', () => {
    const r = render(MIXED, { ...OPTS, scheduler: 'mh', masqueradeAll: true, masqueradeBit: 3, randomFully: true });
    expect(lines(r.ipvsadm)[0]).toMatch(/ -s mh -b mh-port$/);
    expect(r.iptables).toContain('--match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ');
    expect(r.iptables).toContain('-A KUBE-MARK-MASQ -j MARK --or-mark 0x00000008');
    expect(r.iptables).toContain('-j MASQUERADE --random-fully');
    const none = render(MIXED, { nodeName: 'node-a', nodeIPs: ['198.18.0.254'] });
    expect(none.iptables).toContain('--match-set KUBE-CLUSTER-IP src,dst -j KUBE-MARK-MASQ');
    expect(none.iptables).toContain('--mark 0x00004000/0x00004000');
  });

  it('externalIPs with eTP Local: the LOCAL set, accept rules, no masquerade; host addresses stay unbound', () => {
    const r = render(EXTERNAL, { ...OPTS, hostAddresses: ['198.18.0.254'] });
    expect(setEntries(r, 'KUBE-EXTERNAL-IP-LOCAL')).toEqual(['198.18.50.1,tcp:443']);
    expect(setEntries(r, 'KUBE-EXTERNAL-IP')).toEqual([]);
    const head = '-A KUBE-SERVICES -m comment --comment "Kubernetes service external ip + port with externalTrafficPolicy=local" -m set --match-set KUBE-EXTERNAL-IP-LOCAL dst,dst';
    expect(lines(r.iptables).filter((l) => l.includes('KUBE-EXTERNAL-IP-LOCAL dst,dst') && l.startsWith('-A KUBE-SERVICES'))).toEqual([
      `${head} -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT`,
      `${head} -m addrtype --dst-type LOCAL -j ACCEPT`,
    ]);
    expect(r.boundAddresses).toEqual(['198.18.100.20', '198.18.50.1']);
    const onHost = render(EXTERNAL, { ...OPTS, hostAddresses: ['198.18.0.254', '198.18.50.1'] });
    expect(onHost.boundAddresses).toEqual(['198.18.100.20']);
  });

  it('jumps: false gives only kube-proxy chains', () => {
    const r = render(MIXED, { ...OPTS, jumps: false });
    expect(r.iptables).not.toMatch(/^-A (PREROUTING|OUTPUT|INPUT|FORWARD|POSTROUTING) /m);
    const j = render(MIXED, OPTS);
    // Prepended one after another: the last jump kube-proxy ensures in INPUT is first.
    expect(lines(j.iptables).filter((l) => l.startsWith('-A INPUT '))).toEqual([
      '-A INPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER',
      '-A INPUT -m comment --comment "kube-proxy firewall rules" -j KUBE-PROXY-FIREWALL',
      '-A INPUT -m comment --comment "kubernetes health check rules" -j KUBE-NODE-PORT',
    ]);
  });

  it('IPv6: KUBE-6- set names cut to 31 characters, bracketed addresses', () => {
    expect(ipvsSetName('KUBE-LOAD-BALANCER-SOURCE-CIDR', 6)).toBe('KUBE-6-LOAD-BALANCER-SOURCE-CID');
    expect(ipvsSetName('KUBE-CLUSTER-IP', 4)).toBe('KUBE-CLUSTER-IP');
    const r = render(`kind: Service
metadata: {name: v6, namespace: ns}
spec: {clusterIP: "fd00::10", ipFamilies: [IPv6], clusterIPs: ["fd00::10"], ports: [{name: p, port: 80, protocol: TCP}]}
---
kind: EndpointSlice
metadata: {name: v6-1, namespace: ns, labels: {kubernetes.io/service-name: v6}}
addressType: IPv6
endpoints: [{addresses: ["fd00::1:2"]}]
ports: [{name: p, port: 8080, protocol: TCP}]`, { nodeName: 'n' }, 6);
    expect(lines(r.ipvsadm)).toEqual(['-A -t [fd00::10]:80 -s rr', '-a -t [fd00::10]:80 -r [fd00::1:2]:8080 -m -w 1']);
    expect(r.ipset).toContain('create KUBE-6-CLUSTER-IP hash:ip,port family inet6 hashsize 1024 maxelem 65536 -exist');
    expect(r.iptables).toContain('-A KUBE-SERVICES -s ::1/128 -j RETURN');
  });
});

describe('loading into a Dataplane', () => {
  it('accepts all three parts; ipvsadm -S lists what was rendered', async () => {
    const r = render(MIXED + '\n---\n' + ONLY_LOCAL_LB.replace(/ns1/g, 'ns2'), { nodeName: 'node-a', nodeIPs: ['198.18.0.254'], clusterCIDR: '198.18.1.0/24' });
    const dp = await Dataplane.create({ nodeIPs: ['198.18.0.254'], seed: 7 });
    dp.ipset.restore(r.ipset);
    expect(dp.ipset.names()).toHaveLength(17);
    const res = dp.ipvsadm(['-R'], r.ipvsadm);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const saved = dp.ipvsadm(['-S', '-n']);
    expect(lines(saved.stdout).sort()).toEqual(lines(r.ipvsadm).sort());
    // A connection to the ClusterIP is scheduled by IPVS to one of its two endpoints. (Checked
    // before the iptables load: the core does not consult IPVS once in iptables mode, pipeline.ts.)
    const picks = new Set<string>();
    for (let i = 0; i < 2; i++) {
      const out = dp.process(buildPacket({ src: '198.18.2.1', dst: '198.18.100.10', proto: 'tcp', sport: 4000 + i, dport: 80, flags: 'S' }), 10 + i);
      expect(out.verdict).toBe('FORWARD');
      const p = decodePacket(out.packet!);
      expect(p.dport).toBe(8080);
      picks.add(p.dst);
    }
    expect([...picks].sort()).toEqual(['198.18.1.1', '198.18.1.2']);
    const applied = dp.iptablesRestore(r.iptables);
    expect(applied.touched).toEqual(expect.arrayContaining(['nat/KUBE-SERVICES', 'nat/PREROUTING', 'filter/KUBE-IPVS-FILTER', 'filter/INPUT']));
    expect(dp.ipset.command(['test', 'KUBE-CLUSTER-IP', '198.18.100.11,udp:53']).status).toBe(0);
    expect(dp.ipset.command(['test', 'KUBE-NODE-PORT-TCP', '30081']).status).toBe(0);
    expect(dp.ipset.command(['test', 'KUBE-IPVS-IPS', '1.2.3.4']).status).toBe(0);
    // Reloading is a replacement (create -exist, flush, refill): a port that went away is gone.
    const smaller = render(MIXED.slice(0, MIXED.indexOf('---\nkind: Service\nmetadata: {name: empty')), { nodeName: 'node-a', nodeIPs: ['198.18.0.254'] });
    dp.ipset.restore(smaller.ipset);
    expect(dp.ipset.command(['test', 'KUBE-NODE-PORT-TCP', '30081']).status).toBe(1);
    expect(dp.ipset.command(['test', 'KUBE-CLUSTER-IP', '198.18.100.11,udp:53']).status).toBe(0);
  });

  it('loads the eTP=Local NodePort and source-range cases (node inside the range)', async () => {
    for (const [yaml, opts] of [[ONLY_LOCAL_NODEPORTS, KP], [LB_SOURCE_RANGES, { ...KP, nodeIPs: ['10.1.1.1'], hostAddresses: ['10.1.1.1'] }]] as const) {
      const r = render(yaml, opts);
      const dp = await Dataplane.create({ nodeIPs: ['198.18.0.254'], seed: 1 });
      dp.ipset.restore(r.ipset);
      expect(dp.ipvsadm(['-R'], r.ipvsadm).code).toBe(0);
      expect(() => dp.iptablesRestore(r.iptables)).not.toThrow();
    }
  });
});
