// `svcplane render`: kube-proxy's rules for a manifests directory, and errors naming file and field.
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runRender } from '../../../host-node/cli/render.js';
import { parseRestore } from '../../../host-node/netfilter/index.js';

const SVC = `apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  clusterIP: 10.96.0.80
  ports: [{ name: http, port: 80, protocol: TCP }]
`;
const SLICE = `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-abc, namespace: shop, labels: { kubernetes.io/service-name: web } }
addressType: IPv4
ports: [{ name: http, port: 8080, protocol: TCP }]
endpoints:
  - addresses: [10.244.1.11]
    conditions: { ready: true }
  - addresses: [10.244.2.12]
    conditions: { ready: true }
  - addresses: [10.244.3.13]
    conditions: { ready: true }
`;

// Every directory a test made (some render twice), removed after it.
const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

async function render(files: Record<string, string>, args: string[] = []) {
  const dir = mkdtempSync(join(tmpdir(), 'svp-render-'));
  dirs.push(dir);
  for (const [n, t] of Object.entries(files)) writeFileSync(join(dir, n), t);
  let out = '', err = '';
  const code = await runRender(['--manifests', dir, '--family', '4', ...args], (s) => (out += s), (s) => (err += s));
  return { code, out, err };
}

describe('svcplane render', () => {
  it('prints loadable iptables-restore text with kube-proxy probabilities', async () => {
    const { code, out } = await render({ 'svc.yaml': SVC, 'slice.yaml': SLICE }, ['--cluster-cidr', '10.244.0.0/16']);
    expect(code).toBe(0);
    expect(out).toMatch(/^\*filter\n/);
    expect(out).toMatch(/-A KUBE-SERVICES -m comment --comment "shop\/web:http cluster IP" -m tcp -p tcp -d 10\.96\.0\.80 --dport 80 -j KUBE-SVC-[A-Z0-9]{16}/);
    expect(out).toMatch(/--probability 0\.3333333333 -j KUBE-SEP-/);
    expect(out).toMatch(/--probability 0\.5000000000 -j KUBE-SEP-/);
    expect(out).toMatch(/! -s 10\.244\.0\.0\/16 -j KUBE-MARK-MASQ/);
    expect(parseRestore(out, { noflush: true }).ok).toBe(true);
  });

  it('adds the base-chain jumps without flushing the chains it declared', async () => {
    const { code, out } = await render({ 'svc.yaml': SVC, 'slice.yaml': SLICE }, ['--with-jumps']);
    expect(code).toBe(0);
    expect(out).toMatch(/-I PREROUTING 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES/);
    expect(out.match(/^:KUBE-SERVICES /gm)).toHaveLength(2); // once per table, never re-declared
    const r = parseRestore(out, { noflush: true });
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.ruleset.table('nat')!.chain('KUBE-SERVICES')!.rules.length).toBeGreaterThan(0);
  });

  it('prints kube-proxy\'s ipvs mode: virtual servers, ipsets and loadable iptables-restore text', async () => {
    const { code, out } = await render({ 'svc.yaml': SVC, 'slice.yaml': SLICE }, ['--mode', 'ipvs', '--ipvs-scheduler', 'wlc', '--node-ip', '198.18.0.2']);
    expect(code).toBe(0);
    const [ipvs, rest] = out.split('# IPv4 ipset restore\n') as [string, string];
    const [ipset, iptables] = rest.split('# IPv4 (iptables-restore --noflush)\n') as [string, string];
    expect(ipvs.split('\n').filter((l) => l.startsWith('-'))).toEqual([
      '-A -t 10.96.0.80:80 -s wlc',
      ...['10.244.1.11', '10.244.2.12', '10.244.3.13'].map((ip) => `-a -t 10.96.0.80:80 -r ${ip}:8080 -m -w 1`),
    ]);
    expect(ipset).toContain('create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536 -exist\nflush KUBE-CLUSTER-IP\nadd KUBE-CLUSTER-IP 10.96.0.80,tcp:80\n');
    expect(iptables).toMatch(/-m set --match-set KUBE-CLUSTER-IP dst,dst/);
    expect(parseRestore(iptables, { noflush: true }).ok).toBe(true);
    const bad = await render({ 'svc.yaml': SVC }, ['--mode', 'nft']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/unknown mode "nft" \(iptables, ipvs, nftables\)/);
  });

  it('prints kube-proxy\'s nftables mode: the kube-proxy table as nft -f input, with the service CIDR and NodePort addresses given', async () => {
    const { code, out } = await render({ 'svc.yaml': SVC.replace('clusterIP:', 'type: NodePort\n  clusterIP:').replace('protocol: TCP }', 'protocol: TCP, nodePort: 30080 }'), 'slice.yaml': SLICE },
      ['--mode', 'nftables', '--node-ip', '198.18.0.2', '--cluster-cidr', '10.244.0.0/16', '--service-cidr', '10.96.0.0/12', '--nodeport-addresses', 'primary']);
    expect(code).toBe(0);
    expect(out.split('\n')[1]).toBe('add table ip kube-proxy { comment "rules for kube-proxy" ; }');
    expect(out).toContain('add rule ip kube-proxy cluster-ips-check ip daddr { 10.96.0.0/12 } drop comment "Drop traffic to unallocated ClusterIPs"');
    expect(out).toContain('add element ip kube-proxy nodeport-ips { 198.18.0.2 }');
    expect(out).toMatch(/add rule ip kube-proxy service-[A-Z2-7]{8}-shop\/web\/tcp\/http ip daddr 10\.96\.0\.80 tcp dport 80 ip saddr != 10\.244\.0\.0\/16 jump mark-for-masquerade/);
    expect(out).toMatch(/numgen random mod 3 vmap \{ 0 : goto endpoint-\S+__10\.244\.1\.11\/8080 , 1 : goto endpoint-\S+__10\.244\.2\.12\/8080 , 2 : goto endpoint-\S+__10\.244\.3\.13\/8080 \}/);
    expect(out).toMatch(/add element ip kube-proxy service-nodeports \{ tcp \. 30080 : goto external-\S+ \}/);
  });

  it('names the file, line and field of a bad object and still renders the rest', async () => {
    const { code, out, err } = await render({ 'svc.yaml': SVC, 'slice.yaml': SLICE, 'bad.yaml': SVC.replace('web', 'bad').replace('port: 80', 'port: 70000') });
    expect(code).toBe(1);
    expect(err).toMatch(/bad\.yaml:\d+/);
    expect(err).toMatch(/ports\[0\]\.port/);
    expect(out).toMatch(/shop\/web:http cluster IP/);
    expect(out).not.toMatch(/shop\/bad/);
  });

  it('refuses an address option that is no address or CIDR with exit code 2, naming it, and prints no rules', async () => {
    const cases: [string[], string][] = [
      [['--cluster-cidr', 'garbage'], '--cluster-cidr: not a CIDR: "garbage"'],
      [['--node-ip', '999.1.1.1', '--mode', 'ipvs'], '--node-ip: not an IP address: "999.1.1.1"'],
      [['--service-cidr', '198.18.0.0/16,80'], '--service-cidr: not a CIDR: "80"'],
      [['--nodeport-addresses', 'primary,garbage'], '--nodeport-addresses: not a CIDR: "garbage"'],
    ];
    for (const [args, why] of cases) {
      const { code, out, err } = await render({ 'svc.yaml': SVC, 'slice.yaml': SLICE }, args);
      expect([code, err.split('\n')[0], out]).toEqual([2, `svcplane render: ${why}`, '']);
    }
    expect((await render({ 'svc.yaml': SVC, 'slice.yaml': SLICE }, ['--nodeport-addresses', 'primary,198.18.0.0/16', '--cluster-cidr', '198.19.0.0/16'])).code).toBe(0);
  });
});
