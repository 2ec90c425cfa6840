// The nftables renderer against kube-proxy's own expected table (TestOverallNFTablesRules, whose
// Services and EndpointSlices were reconstructed from the Go test), compared as kube-proxy's test
// compares (helpers_test.go sortNFTablesTransaction), and on the paths that test does not take:
// IPv6, NodePorts on every address, masqueradeAll, internalTrafficPolicy Local without local
// endpoints, a source range holding the node, multi-port Services, names past 240 characters, and
// an order `nft -f` can load (every chain, set and map declared before a rule or element uses it).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseManifests, renderNftables, type NftablesOptions } from '../../../host-node/kube/index.js';
import { modelOf } from './fixture.js';

const NFT_CORPUS = new URL(process.env.SVCPLANE_CONFORMANCE_NFT ?? '../../../../shared/conformance/kube-proxy-nftables/', import.meta.url);
const FIXTURE = new URL('./fixtures/nftables/TestOverallNFTablesRules.nftables-tracer-v1.yaml', import.meta.url);

/** kube-proxy's sortNFTablesTransaction: blank and # lines dropped; by object kind (table, chain,
 *  rule, set, map, element), then object name; a chain's rules keep their order, other lines of
 *  one object sort as text. */
export function sortNft(text: string): string {
  const order: Record<string, number> = { table: 10, chain: 9, rule: 8, set: 7, map: 6, element: 5 };
  const lines = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
  const less = (a: string, b: string): number => {
    const wa = a.split(' '), wb = b.split(' ');
    if (wa.length < 5 || wb.length < 5) return 0;
    const oa = order[wa[1]!] ?? 0, ob = order[wb[1]!] ?? 0;
    if (oa !== ob) return ob - oa;
    if (wa[4] !== wb[4]) return wa[4]! < wb[4]! ? -1 : 1;
    if (wa[1] === 'rule') return 0;
    return a < b ? -1 : a > b ? 1 : 0;
  };
  return lines.sort(less).join('\n');
}

function render(yaml: string, opts: NftablesOptions, family: 4 | 6 = 4): string {
  return renderNftables(modelOf(parseManifests(yaml, 'test.yaml'), opts.nodeName ?? 'node-a', family), opts);
}

const svc = (name: string, spec: string, status = ''): string =>
  `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}, namespace: ns}\nspec:\n${spec}\n${status}`;
const slice = (name: string, eps: string[], opts: { type?: string; ports?: string; node?: string } = {}): string =>
  `apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: ${name}-1, namespace: ns, labels: {kubernetes.io/service-name: ${name}}}\n`
  + `addressType: ${opts.type ?? 'IPv4'}\nendpoints:\n${eps.map((a) => `- addresses: [${a}]${opts.node ? `\n  nodeName: ${opts.node}` : ''}`).join('\n')}\n`
  + `ports:\n${opts.ports ?? '- {name: http, port: 8080, protocol: TCP}'}`;
const web = (extra = ''): string => svc('web', `  clusterIP: 198.18.0.10\n  ports:\n  - {name: http, port: 80, protocol: TCP, targetPort: 8080}\n${extra}`);
const base: NftablesOptions = { nodeName: 'node-a', nodeIPs: ['198.18.200.1'], podCIDR: '198.19.0.0/16' };

describe('nftables renderer', () => {
  it('TestOverallNFTablesRules: the table kube-proxy expects, line for line', () => {
    const corpus = JSON.parse(readFileSync(new URL('TestOverallNFTablesRules.nftables-tracer-v1.json', NFT_CORPUS), 'utf8')) as { ruleset: string };
    const text = readFileSync(FIXTURE, 'utf8');
    const opts = JSON.parse(/^# options: (.*)$/m.exec(text)![1]!) as NftablesOptions;
    expect(sortNft(render(text, opts))).toBe(sortNft(corpus.ruleset));
  });

  it('declares every chain, set and map before a rule or element uses it', () => {
    const text = render([web(), slice('web', ['198.19.0.5', '198.19.0.6']),
      svc('aff', '  clusterIP: 198.18.0.11\n  sessionAffinity: ClientIP\n  type: LoadBalancer\n  ports:\n  - {name: http, port: 80, protocol: TCP, nodePort: 30080}',
        'status: {loadBalancer: {ingress: [{ip: 198.18.14.1}]}}'), slice('aff', ['198.19.0.7'])].join('\n---\n'), base);
    const lines = text.trimEnd().split('\n');
    const firstUse = lines.findIndex((l) => / (rule|element) /.test(l.slice(0, 12)));
    const declared = new Set<string>();
    lines.forEach((l, i) => {
      const m = /^add (chain|set|map) ip kube-proxy (\S+)/.exec(l);
      if (m) {
        expect(i, l).toBeLessThan(firstUse);
        declared.add(m[2]!);
      }
    });
    const used = lines.slice(firstUse).flatMap((l) => [...l.matchAll(/(?:jump|goto) (\S+)|@(\S+)/g)].map((m) => (m[1] ?? m[2])!));
    expect(used.length).toBeGreaterThan(20);
    for (const u of used) expect(declared.has(u), u).toBe(true);
    expect(text).toContain('add set ip kube-proxy affinity-');
  });

  it('IPv6: ip6 matches, ipv6_addr keys, dotted endpoint names, bracketed DNAT targets', () => {
    const text = render([svc('web', '  clusterIP: fd00:198:18::10\n  ipFamilies: [IPv6]\n  ports:\n  - {name: http, port: 80, protocol: TCP}'),
      slice('web', ['fd00:198:19::5'], { type: 'IPv6' })].join('\n---\n'), { nodeName: 'node-a', nodeIPs: ['fd00:198:18:200::1'], podCIDR: 'fd00:198:19::/48' }, 6);
    expect(text).toContain('add set ip6 kube-proxy cluster-ips { type ipv6_addr ; comment "Active ClusterIPs" ; }');
    expect(text).toMatch(/add chain ip6 kube-proxy endpoint-[A-Z2-7]{8}-ns\/web\/tcp\/http__fd00.198.19..5\/8080\n/);
    expect(text).toMatch(/endpoint-\S+ meta l4proto tcp dnat to \[fd00:198:19::5\]:8080\n/);
    expect(text).toContain('ip6 daddr fd00:198:18::10 tcp dport 80 ip6 saddr != fd00:198:19::/48 jump mark-for-masquerade');
    // No --nodeport-addresses: NodePorts on every local address but ::1.
    expect(text).toContain('add rule ip6 kube-proxy services fib daddr type local ip6 daddr != ::1 meta l4proto . th dport vmap @service-nodeports');
    expect(text).not.toContain('nodeport-ips');
  });

  it('NodePorts on listed addresses only: the nodeport-ips set holds the host addresses inside them, loopback left out', () => {
    const text = render([web('  type: NodePort\n'), slice('web', ['198.19.0.5'])].join('\n---\n').replace('targetPort: 8080}', 'targetPort: 8080, nodePort: 30080}'),
      { ...base, nodePortAddresses: ['198.18.200.0/24', '127.0.0.0/8'], hostAddresses: ['198.18.200.1', '198.18.200.2', '198.18.201.1', '127.0.0.1'] });
    expect(text.match(/add element ip kube-proxy nodeport-ips .*/g)).toEqual(['add element ip kube-proxy nodeport-ips { 198.18.200.1 }', 'add element ip kube-proxy nodeport-ips { 198.18.200.2 }']);
    expect(text).toContain('add rule ip kube-proxy services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports');
    expect(text).toMatch(/add element ip kube-proxy service-nodeports \{ tcp \. 30080 : goto external-\S+ \}/);
  });

  it('masqueradeAll masquerades every ClusterIP packet; without a detector or it, none', () => {
    const objs = [web(), slice('web', ['198.19.0.5'])].join('\n---\n');
    expect(render(objs, { ...base, masqueradeAll: true })).toMatch(/service-\S+ ip daddr 198\.18\.0\.10 tcp dport 80 jump mark-for-masquerade\n/);
    expect(render(objs, { nodeName: 'node-a', nodeIPs: ['198.18.200.1'] })).not.toMatch(/service-\S+ ip daddr 198\.18\.0\.10/);
  });

  it('internalTrafficPolicy Local without local endpoints drops ClusterIP traffic; no endpoints at all rejects it', () => {
    const text = render([web('  internalTrafficPolicy: Local'), slice('web', ['198.19.0.5'], { node: 'node-b' }),
      svc('none', '  clusterIP: 198.18.0.12\n  ports:\n  - {name: http, port: 80, protocol: TCP}')].join('\n---\n'), base);
    expect(text).toContain('add element ip kube-proxy no-endpoint-services { 198.18.0.10 . tcp . 80 comment "ns/web:http" : drop }');
    expect(text).toContain('add element ip kube-proxy no-endpoint-services { 198.18.0.12 . tcp . 80 comment "ns/none:http" : goto reject-chain }');
    expect(text).not.toMatch(/service-ips \{ 198\.18\.0\.1[02] /);
  });

  it('externalTrafficPolicy Local with a local endpoint: pods and the node short-circuit to the cluster chain, the rest to the local one', () => {
    const text = render([
      svc('web', '  type: LoadBalancer\n  externalTrafficPolicy: Local\n  clusterIP: 198.18.0.10\n  ports:\n  - {name: http, port: 80, protocol: TCP, nodePort: 30080}',
        'status: {loadBalancer: {ingress: [{ip: 198.18.14.1}]}}'),
      slice('web', ['198.19.0.5', '198.19.0.6']).replace('- addresses: [198.19.0.5]', '- addresses: [198.19.0.5]\n  nodeName: node-a')].join('\n---\n'), base);
    const ext = /add chain ip kube-proxy (external-\S+)/.exec(text)![1]!;
    const svcChain = ext.replace('external-', 'service-'), local = ext.replace('external-', 'local-');
    expect(text.split('\n').filter((l) => l.startsWith(`add rule ip kube-proxy ${ext} `)).map((l) => l.slice(`add rule ip kube-proxy ${ext} `.length))).toEqual([
      `ip saddr 198.19.0.0/16 goto ${svcChain} comment "short-circuit pod traffic"`,
      'fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"',
      `fib saddr type local goto ${svcChain} comment "short-circuit local traffic"`,
      `goto ${local}`,
    ]);
    expect(text).toMatch(new RegExp(`add rule ip kube-proxy ${local.replace(/[/.]/g, '\\$&')} numgen random mod 1 vmap \\{ 0 : goto endpoint-\\S+__198\\.19\\.0\\.5/8080 \\}`));
    expect(text).toMatch(new RegExp(`add rule ip kube-proxy ${svcChain.replace(/[/.]/g, '\\$&')} numgen random mod 2 vmap`));
  });

  it('a source range holding the node IP lets the load balancer IPs in as sources too', () => {
    const lb = (ranges: string) => render([
      svc('web', `  type: LoadBalancer\n  clusterIP: 198.18.0.10\n  loadBalancerSourceRanges: [${ranges}]\n  ports:\n  - {name: http, port: 80, protocol: TCP, nodePort: 30080}`,
        'status: {loadBalancer: {ingress: [{ip: 198.18.14.1}, {ip: 198.18.14.2}]}}'),
      slice('web', ['198.19.0.5'])].join('\n---\n'), base);
    expect(lb('198.18.100.0/24')).toMatch(/firewall-\S+ ip saddr != \{ 198\.18\.100\.0\/24 \} drop\n/);
    expect(lb('198.18.100.0/24, 198.18.200.0/24')).toMatch(/firewall-\S+ ip saddr != \{ 198\.18\.100\.0\/24 , 198\.18\.200\.0\/24 , 198\.18\.14\.1 , 198\.18\.14\.2 \} drop\n/);
    expect(lb('198.18.100.0/24')).toMatch(/add element ip kube-proxy firewall-ips \{ 198\.18\.14\.2 \. tcp \. 80 : goto firewall-\S+ \}/);
  });

  it('a multi-port Service puts its cluster IP in cluster-ips once, each port in service-ips', () => {
    const text = render([svc('multi', '  clusterIP: 198.18.0.13\n  ports:\n  - {name: a, port: 80, protocol: TCP}\n  - {name: b, port: 53, protocol: UDP}'),
      slice('multi', ['198.19.0.5'], { ports: '- {name: a, port: 8080, protocol: TCP}\n- {name: b, port: 5353, protocol: UDP}' })].join('\n---\n'), base);
    expect(text.match(/add element ip kube-proxy cluster-ips .*/g)).toEqual(['add element ip kube-proxy cluster-ips { 198.18.0.13 }']);
    expect(text).toMatch(/service-ips \{ 198\.18\.0\.13 \. tcp \. 80 : goto service-\S+-ns\/multi\/tcp\/a \}/);
    expect(text).toMatch(/service-ips \{ 198\.18\.0\.13 \. udp \. 53 : goto service-\S+-ns\/multi\/udp\/b \}/);
  });

  it('cuts a name longer than 240 characters to 237 and "..."', () => {
    // Port names as long as a label (the API server allows 15; a hand-written manifest may hold more).
    const long = 'x'.repeat(63), port = 'p'.repeat(63);
    const text = render(`apiVersion: v1\nkind: Service\nmetadata: {name: ${'s'.repeat(63)}, namespace: ${long}}\nspec:\n  clusterIP: fd00:198:18::10\n  ipFamilies: [IPv6]\n  ports:\n  - {name: ${port}, port: 80, protocol: TCP}\n---\n`
      + `apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e-1, namespace: ${long}, labels: {kubernetes.io/service-name: ${'s'.repeat(63)}}}\naddressType: IPv6\n`
      + `endpoints:\n- addresses: ['fd00:1111:2222:3333:4444:5555:6666:7777']\nports:\n- {name: ${port}, port: 65535, protocol: TCP}`, { nodeName: 'node-a' }, 6);
    const ep = /add chain ip6 kube-proxy endpoint-(\S+)\n/.exec(text)![1]!;
    expect(ep).toHaveLength(240);
    expect(ep.endsWith('...')).toBe(true);
    // The service chain's base (8 + 1 + 63 + 1 + 63 + 1 + 3 + 1 + 63) is not cut.
    expect(text).toMatch(new RegExp(`add chain ip6 kube-proxy service-[A-Z2-7]{8}-${long}/${'s'.repeat(63)}/tcp/${port}\\n`));
  });
});
