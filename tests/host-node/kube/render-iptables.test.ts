// iptables renderer beyond the corpus: kube-proxy's literal dumps that have no packet flows
// (localhost NodePorts on/off, IPv6, --random-fully), large-cluster mode, era differences, the
// options, dual-stack, and the chain-name / probability helpers.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  parseManifests,
  portProtoHash,
  probability,
  formatFixed,
  ProxyState,
  renderIptables,
  sha256,
  type IptablesOptions,
  type ManifestSet,
} from '../../../host-node/kube/index.js';
import { FIXTURES, modelOf, readFixture, renderFixture } from './fixture.js';
import { sortRestoreText } from './sort-rules.js';

const V1: IptablesOptions = {
  era: 'v1.28',
  nodeName: 'test-hostname',
  nodeIPs: ['192.168.0.2'],
  hostAddresses: ['127.0.0.1', '::1', '192.168.0.2', '2001:db8::1'],
  localDetector: { mode: 'cidr', cidr: '10.0.0.0/8' },
  masqueradeMark: '0x4000',
};

function render(set: ManifestSet, opts: IptablesOptions, family: 4 | 6 = 4): string {
  return renderIptables(modelOf(set, opts.nodeName ?? '', family), opts).text;
}

function localhostNodePortObjects(family: 4 | 6): ManifestSet {
  const [cip, ep1, ep2] = family === 4 ? ['10.69.0.10', '10.244.0.1', '10.244.2.1'] : ['fd00:ab34::20', 'ff06::c1', 'ff06::c2'];
  return parseManifests(`kind: Service
metadata: {name: svc1, namespace: ns1}
spec: {type: NodePort, clusterIP: "${cip}", externalTrafficPolicy: Local, ports: [{name: p80, port: 80, protocol: TCP, nodePort: 30001}]}
---
kind: EndpointSlice
metadata: {name: svc1-1, namespace: ns1, labels: {kubernetes.io/service-name: svc1}}
addressType: IPv${family}
endpoints: [{addresses: ["${ep1}"]}, {addresses: ["${ep2}"], nodeName: test-hostname}]
ports: [{name: p80, port: 80, protocol: TCP}]`);
}


/** A LoadBalancer Service at 1.2.3.4 with `ranges` (YAML list items) as its source ranges, one endpoint. */
const lbWithRanges = (ranges: string) => parseManifests(`kind: Service
metadata: {name: lb, namespace: ns}
spec: {type: LoadBalancer, clusterIP: 172.30.0.9, loadBalancerSourceRanges: [${ranges}], ports: [{name: p, port: 80, nodePort: 30080}]}
status: {loadBalancer: {ingress: [{ip: 1.2.3.4}]}}
---
kind: EndpointSlice
metadata: {name: lb-1, namespace: ns, labels: {kubernetes.io/service-name: lb}}
addressType: IPv4
endpoints: [{addresses: [10.1.1.1]}]
ports: [{name: p, port: 80}]`);

describe('kube-proxy literal dumps without flows (v1.28)', () => {
  const expected = new Map(
    readFileSync(new URL('extra/localhost-nodeports.txt', FIXTURES), 'utf8')
      .split(/^### /m)
      .slice(1)
      .map((s) => [s.slice(0, s.indexOf('\n')), s.slice(s.indexOf('\n') + 1)] as const),
  );
  const noop: IptablesOptions = { ...V1, localDetector: { mode: 'none' } };
  const cases: [string, IptablesOptions, 4 | 6][] = [
    ['TestEnableLocalhostNodePortsIPv4', { ...noop, localhostNodePorts: true }, 4],
    ['TestDisableLocalhostNodePortsIPv4', { ...noop, localhostNodePorts: false }, 4],
    ['TestDisableLocalhostNodePortsIPv4WithNodeAddress', { ...noop, localhostNodePorts: false, nodePortAddresses: ['127.0.0.0/8'] }, 4],
    ['TestEnableLocalhostNodePortsIPv6', { ...noop, localhostNodePorts: true }, 6],
    ['TestDisableLocalhostNodePortsIPv6', { ...noop, localhostNodePorts: false }, 6],
  ];
  for (const [name, opts, family] of cases) {
    it(`${name} renders byte-identically`, () => {
      expect(expected.has(name)).toBe(true);
      expect(sortRestoreText(render(localhostNodePortObjects(family), opts, family))).toBe(expected.get(name));
    });
  }

  it('TestMasqueradeRule: --random-fully is appended to MASQUERADE only when supported', () => {
    const empty = parseManifests('');
    expect(render(empty, { ...V1, randomFully: true })).toContain(
      '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully\n');
    expect(render(empty, V1)).toContain('"kubernetes service traffic requiring SNAT" -j MASQUERADE\n');
  });
});

describe('large-cluster mode (TestSyncProxyRulesLargeClusterMode)', () => {
  function bigSet(n: number): ManifestSet {
    const eps = Array.from({ length: n }, (_, i) => `{addresses: [10.0.${i % 256}.${Math.floor(i / 256)}]}`).join(', ');
    return parseManifests(`kind: Service
metadata: {name: svc1, namespace: ns1}
spec: {clusterIP: 172.30.0.41, ports: [{name: p80, port: 80, protocol: TCP}]}
---
kind: EndpointSlice
metadata: {name: svc1-1, namespace: ns1, labels: {kubernetes.io/service-name: svc1}}
addressType: IPv4
endpoints: [${eps}]
ports: [{name: p80, port: 80, protocol: TCP}]`);
  }
  it('keeps endpoint comments at the threshold and drops them above it', () => {
    const small = render(bigSet(1000), { ...V1, masqueradeAll: true });
    expect(small).toContain('-A KUBE-SEP-DKGQUZGBKLTPAR56 -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.0.0.0:80\n');
    const big = render(bigSet(1001), { ...V1, masqueradeAll: true });
    expect(big).toContain('-A KUBE-SEP-DKGQUZGBKLTPAR56 -m tcp -p tcp -j DNAT --to-destination 10.0.0.0:80\n');
    expect(big).not.toMatch(/^-A KUBE-SEP-.*--comment/m);
    // The cluster-IP masquerade rule keeps its comment.
    expect(big).toContain('-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-MARK-MASQ\n');
  });
});

describe('eras and options', () => {
  const overall = readFixture('TestOverallIPTablesRules.iptables-tracer-v2.yaml');

  it('current era without nfacct counters drops both nfacct matches', () => {
    const text = renderFixture({ ...overall, options: { ...overall.options, nfacct: false } });
    expect(text).not.toContain('nfacct');
    expect(text).toContain('-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n');
  });

  it('v1.28 era never writes nfacct, tcp_be_liberal or SNAT rules', () => {
    const text = renderFixture({ ...overall, options: { ...overall.options, era: 'v1.28', conntrackTCPLiberal: true, snatNodeInternalIP: true } });
    expect(text).not.toContain('nfacct');
    expect(text).toContain('--ctstate INVALID -j DROP');
    expect(text).toContain('-j MASQUERADE');
  });

  it('current era: tcp_be_liberal drops the INVALID rule, snatNodeInternalIP SNATs to the node IP', () => {
    const text = renderFixture({ ...overall, options: { ...overall.options, conntrackTCPLiberal: true, snatNodeInternalIP: true } });
    expect(text).not.toContain('INVALID');
    expect(text).toContain('-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j SNAT --to-source 192.168.0.2\n');
  });

  it('the default mark is bit 14 printed like Go "%#08x"', () => {
    const text = render(parseManifests(''), { nodeName: 'n' });
    expect(text).toContain('-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000\n');
    expect(text).toContain('-m mark ! --mark 0x00004000/0x00004000 -j RETURN');
    expect(render(parseManifests(''), { nodeName: 'n', masqueradeBit: 5 })).toContain('--or-mark 0x00000020\n');
    expect(render(parseManifests(''), { nodeName: 'n', masqueradeBit: 40 })).toContain('--or-mark 0x00004000\n');
  });

  it('source ranges: v1.28 writes them as given, current prints the parsed network', () => {
    const set = lbWithRanges('"192.168.0.7/24"');
    expect(render(set, V1)).toContain('"ns/lb:p loadbalancer IP" -s 192.168.0.7/24 -j');
    const cur = render(set, { ...V1, era: 'current' });
    expect(cur).toContain('"ns/lb:p loadbalancer IP" -s 192.168.0.0/24 -j');
    // 192.168.0.2 (the node) is inside the range, so traffic from the LB IP itself is allowed too.
    expect(cur).toContain('"ns/lb:p loadbalancer IP" -s 1.2.3.4 -j KUBE-EXT-');
  });

  it('a zero-prefix source range stands for none since v1.34: no firewall chain; v1.28 still writes one', () => {
    const lb = lbWithRanges;
    for (const ranges of ['"0.0.0.0/0"', '"203.0.113.0/24", "10.0.0.0/0"']) {
      const cur = render(lb(ranges), { ...V1, era: 'current' });
      expect(cur).not.toMatch(/KUBE-FW-|KUBE-PROXY-FIREWALL -m comment/);
      expect(cur).toMatch(/"ns\/lb:p loadbalancer IP" -m tcp -p tcp -d 1\.2\.3\.4 --dport 80 -j KUBE-EXT-/);
    }
    expect(render(lb('"0.0.0.0/0"'), V1)).toContain('"ns/lb:p loadbalancer IP" -s 0.0.0.0/0 -j KUBE-EXT-');
    // Any other range keeps its firewall.
    expect(render(lb('"203.0.113.0/24"'), { ...V1, era: 'current' })).toMatch(/-A KUBE-PROXY-FIREWALL .* -d 1\.2\.3\.4 --dport 80 -j DROP/);
  });

  it('ipMode Proxy ingress IPs get no rules; VIP and unset do', () => {
    const set = parseManifests(`kind: Service
metadata: {name: lb, namespace: ns}
spec: {type: LoadBalancer, clusterIP: 172.30.0.9, ports: [{name: p, port: 80, nodePort: 30080}]}
status: {loadBalancer: {ingress: [{ip: 1.1.1.1, ipMode: Proxy}, {ip: 2.2.2.2, ipMode: VIP}, {ip: 3.3.3.3}]}}`);
    const text = render(set, V1);
    expect(text).not.toContain('1.1.1.1');
    expect(text).toContain('-d 2.2.2.2 --dport 80 -j REJECT');
    expect(text).toContain('-d 3.3.3.3 --dport 80 -j REJECT');
  });

  it('bridge and interface-prefix local detectors', () => {
    const set = readFixture('TestOnlyLocalNodePorts.iptables-tracer-v1.yaml');
    const br = renderFixture({ ...set, options: { ...set.options, localDetector: { mode: 'bridge', interface: 'cbr0' } } });
    expect(br).toContain('"pod traffic for ns1/svc1:p80 external destinations" -i cbr0 -j KUBE-SVC-');
    expect(br).toContain('--dport 80 ! -i cbr0 -j KUBE-MARK-MASQ');
    const pre = renderFixture({ ...set, options: { ...set.options, localDetector: { mode: 'interfacePrefix', prefix: 'veth' } } });
    expect(pre).toContain('! -i veth+ -j KUBE-MARK-MASQ');
  });

  it('clusterCIDR picks the CIDR of the rendered family', () => {
    const set = readFixture('TestNodePort.iptables-tracer-v1.yaml');
    const { localDetector: _, ...rest } = set.options;
    const text = renderFixture({ ...set, options: { ...rest, clusterCIDR: 'fd00:10::/56,10.244.0.0/16' } });
    expect(text).toContain('! -s 10.244.0.0/16 -j KUBE-MARK-MASQ');
  });

  it('masqueradeAll masquerades every cluster-IP packet', () => {
    const set = readFixture('TestNodePort.iptables-tracer-v1.yaml');
    const text = renderFixture({ ...set, options: { ...set.options, masqueradeAll: true } });
    expect(text).toContain('-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-MARK-MASQ\n');
  });
});

describe('dual-stack', () => {
  it('one model per family: each gets its own cluster IP, external IPs and endpoints', () => {
    const set = parseManifests(`kind: Service
metadata: {name: web, namespace: default}
spec:
  type: NodePort
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10, "fd00:96::a"]
  ipFamilies: [IPv4, IPv6]
  externalIPs: [198.18.0.5, "fd00:18::5"]
  ports: [{name: http, port: 80, nodePort: 30080}]
---
kind: EndpointSlice
metadata: {name: web-v4, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [10.244.1.5]}]
ports: [{name: http, port: 8080}]
---
kind: EndpointSlice
metadata: {name: web-v6, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv6
endpoints: [{addresses: ["fd00:244::5"]}]
ports: [{name: http, port: 8080}]`);
    const state = new ProxyState({ nodeName: 'n1' });
    for (const s of set.services) state.onService(null, s);
    for (const s of set.endpointSlices) state.onEndpointSlice(s);
    state.markServicesSynced();
    state.markEndpointSlicesSynced();
    const [v4, v6] = state.sync();
    const t4 = renderIptables(v4!.model, { nodeName: 'n1' }).text;
    const t6 = renderIptables(v6!.model, { nodeName: 'n1' }).text;
    expect(t4).toContain('-d 10.96.0.10 --dport 80');
    expect(t4).toContain('-d 198.18.0.5 --dport 80');
    expect(t4).toContain('--to-destination 10.244.1.5:8080');
    expect(t4).not.toContain('fd00');
    expect(t6).toContain('-d fd00:96::a --dport 80');
    expect(t6).toContain('-d fd00:18::5 --dport 80');
    expect(t6).toContain('--to-destination [fd00:244::5]:8080');
    expect(t6).toContain('-m addrtype --dst-type LOCAL ! -d ::1/128 -j KUBE-NODEPORTS');
    expect(t6).not.toContain('KUBE-FIREWALL');
    expect(t6).not.toContain('10.96.0.10');
  });
});

describe('chain names and probabilities', () => {
  it('sha256 and the names\' base32 match their standards', () => {
    const hex = (b: Uint8Array): string => [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
    expect(hex(sha256(new TextEncoder().encode('')))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(hex(sha256(new TextEncoder().encode('a'.repeat(1000))))).toBe('41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3');
    // RFC 4648 base32 (Go's StdEncoding) of the digest, first 16 characters; names of one and
    // two SHA-256 blocks, non-ASCII included.
    const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
    const base32 = (b: Uint8Array): string => {
      let bits = '';
      for (const x of b) bits += x.toString(2).padStart(8, '0');
      let out = '';
      for (let i = 0; i + 5 <= bits.length; i += 5) out += B32[parseInt(bits.slice(i, i + 5), 2)];
      return out;
    };
    for (const name of ['', 'ns1/svc1:p80', 'kube-system/kube-dns:dns-tcp', `ns/${'x'.repeat(60)}:http`, 'ns/ü-svc:p']) {
      expect(portProtoHash(name, 'udp')).toBe(base32(createHash('sha256').update(name + 'udp').digest()).slice(0, 16));
    }
  });

  it('portProtoHash reproduces kube-proxy chain names', () => {
    expect(portProtoHash('ns1/svc1:p80', 'tcp')).toBe('XPGD46QRK7WJZT7O');
    expect(portProtoHash('ns1/svc1:p80', 'sctp')).toBe('GFCIFIA5VTFSTMSM');
    expect(portProtoHash('ns1/svc1', 'tcp')).toBe('AQI2S6QIMU7PVVRP');
  });

  it('probability is Go "%0.10f" of 1/n, ties rounded to even', () => {
    // TestComputeProbability's table.
    const table: Record<number, string> = {
      1: '1.0000000000', 2: '0.5000000000', 10: '0.1000000000', 100: '0.0100000000', 1000: '0.0010000000',
      10000: '0.0001000000', 100000: '0.0000100000', 100001: '0.0000099999',
    };
    for (const [n, s] of Object.entries(table)) expect(probability(Number(n))).toBe(s);
    expect(probability(3)).toBe('0.3333333333');
    // 1/2048 = 0.00048828125 exactly: a tie at the 10th decimal; Go rounds to even.
    expect(probability(2048)).toBe('0.0004882812');
    expect((1 / 2048).toFixed(10)).toBe('0.0004882813');
    expect(formatFixed(2.5, 0)).toBe('2');
    expect(formatFixed(0.125, 2)).toBe('0.12');
    let prev = 0;
    for (let n = 20000; n > 1; n--) {
      const p = Number(probability(n));
      expect(p > prev).toBe(true);
      prev = p;
    }
  });
});
