// `svcplane trace`: a kube-proxy-shaped ruleset with three endpoints (statistic 1/3, 1/2, rest)
// explained rule by rule with three outcomes of 1/3 each (to 2^-31, summing to exactly 1); JSON
// output; a restore error reported as FILE:LINE; the note on chains no rule jumps to; --noflush;
// usage errors.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runTrace, exactFraction, percent } from '../../../host-node/cli/trace.js';

const VIP = '198.19.0.10';
const EPS = ['198.18.1.1', '198.18.1.2', '198.18.1.3'];
const NODE = '198.19.255.1';

const RULES = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SVC-WEB - [0:0]
:KUBE-SEP-A - [0:0]
:KUBE-SEP-B - [0:0]
:KUBE-SEP-C - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
-A KUBE-SERVICES -m comment --comment "default/web:http cluster IP" -m tcp -p tcp -d ${VIP} --dport 80 -j KUBE-SVC-WEB
-A KUBE-SVC-WEB -m comment --comment "default/web:http cluster IP" -m tcp -p tcp -d ${VIP} --dport 80 ! -s 198.18.0.0/16 -j KUBE-MARK-MASQ
-A KUBE-SVC-WEB -m comment --comment "default/web:http -> ${EPS[0]}:8080" -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-A
-A KUBE-SVC-WEB -m comment --comment "default/web:http -> ${EPS[1]}:8080" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-B
-A KUBE-SVC-WEB -m comment --comment "default/web:http -> ${EPS[2]}:8080" -j KUBE-SEP-C
-A KUBE-SEP-A -m comment --comment default/web:http -s ${EPS[0]} -j KUBE-MARK-MASQ
-A KUBE-SEP-A -m comment --comment default/web:http -m tcp -p tcp -j DNAT --to-destination ${EPS[0]}:8080
-A KUBE-SEP-B -m comment --comment default/web:http -s ${EPS[1]} -j KUBE-MARK-MASQ
-A KUBE-SEP-B -m comment --comment default/web:http -m tcp -p tcp -j DNAT --to-destination ${EPS[1]}:8080
-A KUBE-SEP-C -m comment --comment default/web:http -s ${EPS[2]} -j KUBE-MARK-MASQ
-A KUBE-SEP-C -m comment --comment default/web:http -m tcp -p tcp -j DNAT --to-destination ${EPS[2]}:8080
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-SERVICES -m comment --comment "default/none:http has no endpoints" -m tcp -p tcp -d 198.19.0.11 --dport 80 -j REJECT
COMMIT
`;

let dir: string;
let rulesFile: string;

function capture(): { out: string[]; err: string[]; io: { out(l: string): void; err(l: string): void } } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (l) => out.push(l), err: (l) => err.push(l) } };
}

const base = () => ['--rules', rulesFile, '--node-ip', NODE, '--dport', '80'];

/** The Service behind RULES (VIP:80 → the three endpoints :8080) as a manifests file. */
function webManifests(): string {
  const file = path.join(dir, 'web.yaml');
  fs.writeFileSync(file, [
    `apiVersion: v1\nkind: Service\nmetadata: { name: web, namespace: default }\nspec:\n  clusterIP: ${VIP}\n  ports: [{ name: http, port: 80, protocol: TCP }]`,
    'apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: { name: web-1, namespace: default, labels: { kubernetes.io/service-name: web } }\n' +
    `addressType: IPv4\nports: [{ name: http, port: 8080, protocol: TCP }]\nendpoints:\n${EPS.map((e) => `  - addresses: [${e}]\n    conditions: { ready: true }`).join('\n')}`,
  ].join('\n---\n'));
  return file;
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'svp-trace-'));
  rulesFile = path.join(dir, 'kube.rules');
  fs.writeFileSync(rulesFile, RULES);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('svcplane trace', () => {
  it('explains a 3-endpoint Service: every rule visited and three outcomes of 1/3 each', async () => {
    const c = capture();
    expect(await runTrace([...base(), '--src', '198.18.5.5', '--dst', VIP], c.io)).toBe(0);
    expect(c.err).toEqual([]);
    const text = c.out.join('\n');
    expect(text).toContain(`TCP 198.18.5.5:40000 → ${VIP}:80, a new connection from outside`);
    // The jump into the Service chain, matched, with its rule number and text.
    expect(text).toMatch(/nat\/KUBE-SERVICES\s+#1\s+match\s+-A KUBE-SERVICES .*-d 198\.19\.0\.10 --dport 80 -j KUBE-SVC-WEB {2}→ jump KUBE-SVC-WEB/);
    // A pod source: the masquerade rule is visited and does not match.
    expect(text).toMatch(/nat\/KUBE-SVC-WEB\s+#1\s+-\s+-A KUBE-SVC-WEB .*-j KUBE-MARK-MASQ$/m);
    expect(text).toMatch(/nat\/KUBE-SEP-A\s+#2\s+match\s+.*→ DNAT/);
    expect(text).toMatch(/filter\/FORWARD\s+end\s+policy ACCEPT/);
    expect(text).toContain('outcomes (3):');
    const tos = [...text.matchAll(/destination NAT: (\S+)/g)].map((m) => m[1]);
    expect(tos).toEqual(EPS.map((e) => `${e}:8080`));
    const probs = [...text.matchAll(/probability (\S+) = (\S+)/g)].map((m) => [m[1], m[2]]);
    // libxt_statistic: lround(0.3333333333 × 2^31) = 715827883; the rest is split 1/2 (2^30/2^31).
    expect(probs).toEqual([
      ['33.333333%', '715827883/2^31'],
      ['33.333333%', '1431655765/2^32'],
      ['33.333333%', '1431655765/2^32'],
    ]);
    expect(text).toMatch(/random decisions: nat\/KUBE-SVC-WEB #2 not taken \(p 0\.333333\), nat\/KUBE-SVC-WEB #3 taken \(p 0\.5\d*\)/);
    expect(text.match(/masquerade: no/g)).toHaveLength(3);
    // Each outcome names the DNAT rule of its own endpoint chain (the rules above show the first path only).
    const decided = [...text.matchAll(/decided by:\n\s+(.*)/g)].map((m) => m[1]);
    expect(decided).toEqual(['A', 'B', 'C'].map((k, i) =>
      `nat/KUBE-SEP-${k} #2 DNAT  -A KUBE-SEP-${k} -m comment --comment default/web:http -m tcp -p tcp -j DNAT --to-destination ${EPS[i]}:8080`));
  });

  it('shows the masquerade for an outside client, and the REJECT of a Service with no endpoints', async () => {
    const c = capture();
    expect(await runTrace([...base(), '--src', '203.0.113.9', '--dst', VIP], c.io)).toBe(0);
    expect(c.out.join('\n').match(/masquerade: yes/g)).toHaveLength(3);
    const r = capture();
    expect(await runTrace([...base(), '--src', '198.18.5.5', '--dst', '198.19.0.11'], r.io)).toBe(0);
    const text = r.out.join('\n');
    expect(text).toMatch(/filter\/KUBE-SERVICES\s+#1\s+match\s+.*→ REJECT/);
    expect(text).toContain('outcomes (1):');
    expect(text).toContain('REPLY (rejected');
    expect(text).toContain('decided by:\n       filter/KUBE-SERVICES #1 REJECT  -A KUBE-SERVICES -m comment --comment "default/none:http has no endpoints"');
    expect(text).toContain('probability 100% = 1');
  });

  it('--from local starts at nat OUTPUT', async () => {
    const c = capture();
    expect(await runTrace([...base(), '--src', NODE, '--dst', VIP, '--from', 'local'], c.io)).toBe(0);
    const text = c.out.join('\n');
    expect(text).toMatch(/^ {2}OUTPUT$/m);
    expect(text).not.toMatch(/^ {2}PREROUTING$/m);
    expect(text).toMatch(/nat\/OUTPUT\s+#1\s+match/);
  });

  it('--json prints the trace result, exact numerators as strings', async () => {
    const c = capture();
    expect(await runTrace([...base(), '--src', '198.18.5.5', '--dst', VIP, '--json'], c.io)).toBe(0);
    const r = JSON.parse(c.out.join('\n'));
    expect(r.truncated).toBe(false);
    expect(r.outcomes.map((o: { to: string }) => o.to)).toEqual(EPS.map((e) => `${e}:8080`));
    expect(r.outcomes[0].exact).toEqual({ numerator: '715827883', denominatorLog2: 31 });
    // Σ numerator / 2^k is exactly 1.
    const sum = r.outcomes.reduce((a: bigint, o: { exact: { numerator: string; denominatorLog2: number } }) =>
      a + (BigInt(o.exact.numerator) << BigInt(62 - o.exact.denominatorLog2)), 0n);
    expect(sum).toBe(1n << 62n);
    expect(r.steps.some((s: { chain: string; matched: boolean; target?: string }) => s.chain === 'KUBE-SEP-A' && s.matched && s.target === 'DNAT')).toBe(true);
  });

  it('reports a bad rules file as FILE:LINE: message, exit code 1', async () => {
    const bad = path.join(dir, 'bad.rules');
    fs.writeFileSync(bad, '*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n-A PREROUTING -j KUBE-SERVICES\n' +
      '-A KUBE-SERVICES -p tcp --dport 80 -j DNAT --to-destination 198.18.1.1:8080\n-A KUBE-SERVICES -p tcp --dport 99999 -j ACCEPT\nCOMMIT\n');
    const c = capture();
    expect(await runTrace(['--rules', bad, '--node-ip', NODE, '--src', '198.18.5.5', '--dst', VIP, '--dport', '80'], c.io)).toBe(1);
    expect(c.out).toEqual([]);
    expect(c.err).toHaveLength(1);
    expect(c.err[0]).toMatch(new RegExp(`^${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:6: .*99999`));
    const missing = capture();
    expect(await runTrace(['--rules', path.join(dir, 'nope.rules'), '--node-ip', NODE, '--src', '198.18.5.5', '--dst', VIP, '--dport', '80'], missing.io)).toBe(1);
    expect(missing.err[0]).toMatch(/nope\.rules: no such file/);
  });

  it('notes the user chains no rule jumps to: kube-proxy\'s text without its base jumps reaches no Service', async () => {
    const full = capture();
    expect(await runTrace([...base(), '--src', '198.18.5.5', '--dst', VIP], full.io)).toBe(0);
    expect(full.out.some((l) => l.startsWith('note:'))).toBe(false);
    // The same rules without the jumps from the built-in chains, as kube-proxy's restore text alone.
    const bare = path.join(dir, 'bare.rules');
    fs.writeFileSync(bare, RULES.split('\n').filter((l) => !/^-A (PREROUTING|OUTPUT|POSTROUTING|FORWARD) /.test(l)).join('\n'));
    const c = capture();
    expect(await runTrace(['--rules', bare, '--node-ip', NODE, '--dport', '80', '--src', '198.18.5.5', '--dst', VIP], c.io)).toBe(0);
    expect(c.out[2]).toBe('note: no rule jumps to nat/KUBE-POSTROUTING, nat/KUBE-SERVICES, filter/KUBE-SERVICES, so no packet reaches their rules');
    expect(c.out.slice(3, 5).join(' ')).toMatch(/kube-proxy adds its jumps .*`svcplane render --with-jumps` prints them too: trace that with --noflush/);
    expect(c.out).toContain('  1. PASS (accepted unchanged)');
    // Chains named by some rule are not listed, whether or not a built-in chain reaches them.
    expect(c.out[2]).not.toMatch(/KUBE-SVC-WEB|KUBE-SEP-|KUBE-MARK-MASQ/);
  });

  it('--noflush reads the rules file as iptables-restore --noflush does: a table\'s second block edits the first\'s', async () => {
    // kube-proxy's chains declared in one *filter block, its jumps inserted by a second one.
    const text = `*filter\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -m comment --comment "default/none:http has no endpoints" -m tcp -p tcp -d 198.19.0.11 --dport 80 -j REJECT\nCOMMIT\n` +
      `*filter\n-I FORWARD 1 -m conntrack --ctstate NEW -j KUBE-SERVICES\nCOMMIT\n`;
    const file = path.join(dir, 'jumps.rules');
    fs.writeFileSync(file, text);
    const argv = ['--rules', file, '--node-ip', NODE, '--dport', '80', '--src', '198.18.5.5', '--dst', '198.19.0.11'];
    // Without it the second block replaces the table: KUBE-SERVICES is gone, the jump refused at COMMIT.
    const flushed = capture();
    expect(await runTrace(argv, flushed.io)).toBe(1);
    expect(flushed.err[0]).toMatch(/jumps\.rules:6: .*KUBE-SERVICES/);
    const c = capture();
    expect(await runTrace([...argv, '--noflush'], c.io), c.err.join('\n')).toBe(0);
    expect(c.out.join('\n')).toMatch(/filter\/KUBE-SERVICES\s+#1\s+match\s+.*→ REJECT/);
    expect(c.out.some((l) => l.startsWith('note:'))).toBe(false);
  });

  it('refuses bad arguments with exit code 2 and the usage', async () => {
    const cases: [string[], RegExp][] = [
      [['--src', '198.18.5.5', '--dst', VIP, '--dport', '80', '--node-ip', NODE], /--rules is required/],
      [[...base(), '--src', '198.18.5.5', '--dst', 'not-an-ip'], /--dst: not an IP address/],
      [[...base(), '--src', '198.18.5.5', '--dst', 'fd00::1'], /different IP families/],
      [[...base(), '--src', '198.18.5.5', '--dst', VIP, '--proto', 'gre'], /--proto/],
      [[...base(), '--src', '198.18.5.5', '--dst', VIP, '--from', 'moon'], /--from/],
      [[...base(), '--src', '198.18.5.5', '--dst', VIP, '--family', '6'], /--family 6 but the addresses are IPv4/],
      [['--rules', 'x', '--node-ip', NODE, '--src', '198.18.5.5', '--dst', VIP, '--dport', '65536'], /not a port number/],
      [[...base(), '--src', '198.18.5.5', '--dst', VIP, '--bogus'], /unknown option "--bogus"/],
      [[...base(), '--src'], /--src needs a value/],
      // `--sport --json` takes "--json" as the port; a later --sport must not hide that.
      [[...base(), '--src', '198.18.5.5', '--dst', VIP, '--sport', '--json', '--sport', '40000'], /--sport given twice/],
      [[...base(), '--src', '198.18.5.5', '--dst', VIP, '--mode', 'ipvs'], /--mode needs --manifests/],
      [['--manifests', 'x', '--node-ip', NODE, '--src', '198.18.5.5', '--dst', VIP, '--dport', '80', '--noflush'], /--noflush needs --rules/],
      [['--manifests', 'x', '--node-ip', NODE, '--src', '198.18.5.5', '--dst', VIP, '--dport', '80', '--mode', 'nft'], /--mode: iptables, ipvs or direct/],
      [['--manifests', 'x', '--node-ip', NODE, '--src', '198.18.5.5', '--dst', VIP, '--dport', '80', '--ipvs-scheduler', 'sh'], /--ipvs-scheduler needs --mode ipvs/],
      [['--manifests', 'x', '--node-ip', NODE, '--src', '198.18.5.5', '--dst', VIP, '--dport', '80', '--mode', 'ipvs', '--ipvs-scheduler', 'fast'], /--ipvs-scheduler: one of rr/],
    ];
    for (const [argv, msg] of cases) {
      const c = capture();
      expect(await runTrace(argv, c.io), argv.join(' ')).toBe(2);
      expect(c.err[0]).toMatch(msg);
      expect(c.err.join('\n')).toContain('usage: svcplane trace');
    }
  });

  it('--mode ipvs traces kube-proxy\'s ipvs mode for manifests: the IPVS step between INPUT and OUTPUT, its pick is the outcome', async () => {
    const manifests = webManifests();
    for (const sched of ['rr', 'sh']) {
      const c = capture();
      const argv = ['--manifests', manifests, '--mode', 'ipvs', '--ipvs-scheduler', sched, '--node-ip', NODE, '--src', '198.18.5.5', '--dst', VIP, '--dport', '80'];
      expect(await runTrace(argv, c.io), c.err.join('\n')).toBe(0);
      expect(c.out[1]).toContain(`kube-proxy's ipvs mode (${sched})`);
      const at = c.out.findIndex((l) => l.startsWith('  IPVS '));
      expect(c.out[at]).toBe(`  IPVS TCP  ${VIP}:80: scheduler ${sched} picks`);
      const hooks = c.out.filter((l) => /^ {2}[A-Z]+$/.test(l) || l.startsWith('  IPVS '));
      expect(hooks.map((l) => l.trim().split(' ')[0])).toEqual(['PREROUTING', 'INPUT', 'IPVS', 'OUTPUT', 'POSTROUTING']);
      const to = /→ (\S+) {2}\(p 1\.000000\)/.exec(c.out[at + 1]!)![1]!;
      expect(EPS.map((e) => `${e}:8080`)).toContain(to);
      expect(c.out).toContain(`     destination NAT: ${to}`);
    }
  });

  it('--mode direct traces the core\'s direct service table: its steps, and each endpoint with its exact share', async () => {
    const manifests = webManifests();
    const c = capture();
    expect(await runTrace(['--manifests', manifests, '--mode', 'direct', '--node-ip', NODE, '--src', '198.18.5.5', '--dst', VIP, '--dport', '80'], c.io), c.err.join('\n')).toBe(0);
    expect(c.out[1]).toContain('the direct service table for');
    expect(c.out.some((l) => l.includes('direct/direct lookup') && l.includes(`TCP ${VIP}:80 → default/web:http (cluster frontend)`))).toBe(true);
    expect(c.out.filter((l) => l.startsWith('     destination NAT: ')).map((l) => l.replace('     destination NAT: ', '')).sort()).toEqual(EPS.map((e) => `${e}:8080`).sort());
    // Three endpoints share the 2^32 draws: 1431655766 (= 715827883/2^31), 1431655765 and 1431655765.
    expect(c.out.filter((l) => l.includes('probability 33.33')).map((l) => l.split(' = ')[1]).sort()).toEqual(['1431655765/2^32', '1431655765/2^32', '715827883/2^31']);
    // Each outcome: decided by the frontend lookup, the endpoint list and the uniform choice.
    const decided = c.out.flatMap((l, i) => (l === '     decided by:' ? [c.out.slice(i + 1, i + 4).map((x) => x.trim().split('  ')[0])] : []));
    expect(decided).toHaveLength(3);
    for (const d of decided) expect(d).toEqual(['direct/direct lookup #1 default/web:http', 'direct/direct entry #2 Cluster endpoints', 'direct/direct choose #3 DNAT']);
  });

  it('--mode direct ends an unserved packet as the core does: a cluster IP\'s other port rejected, an empty address of --service-cidr dropped', async () => {
    const manifests = webManifests();
    const run = async (dst: string, dport: number, extra: string[] = []) => {
      const c = capture();
      const code = await runTrace(['--manifests', manifests, '--mode', 'direct', ...extra, '--node-ip', NODE, '--src', '198.18.5.5', '--dst', dst, '--dport', String(dport)], c.io);
      return { code, out: c.out, err: c.err };
    };
    const other = await run(VIP, 81);
    expect(other.code, other.err.join('\n')).toBe(0);
    expect(other.out).toContain('  1. REPLY (rejected: a reply goes back to the sender) reason no_service');
    expect(other.out.some((l) => l.includes(`${VIP} is a cluster IP, and no Service has TCP port 81 on it`))).toBe(true);
    const cidr = VIP.replace(/\.\d+$/, '.0/24'), empty = VIP.replace(/\.\d+$/, '.250');
    expect((await run(empty, 80)).out).toContain('  1. PASS (accepted unchanged)');
    const dropped = await run(empty, 80, ['--service-cidr', cidr]);
    expect(dropped.out).toContain('  1. DROP reason no_service');
    expect(dropped.out.some((l) => l.includes(`${empty} is in the service CIDR ${cidr}, and no Service holds it`))).toBe(true);
    const c = capture();
    expect(await runTrace(['--manifests', manifests, '--service-cidr', cidr, '--node-ip', NODE, '--src', '198.18.5.5', '--dst', VIP, '--dport', '80'], c.io)).toBe(2);
    expect(c.err[0]).toMatch(/--service-cidr needs --mode direct/);
    expect(await runTrace(['--manifests', manifests, '--mode', 'direct', '--service-cidr', '198.18.0.0/33', '--node-ip', NODE, '--src', '198.18.5.5', '--dst', VIP, '--dport', '80'], capture().io)).toBe(2);
  });

  it('formats exact fractions and percentages', () => {
    expect(exactFraction({ numerator: 1n << 31n, denominatorLog2: 31 })).toBe('1');
    expect(exactFraction({ numerator: 3n << 29n, denominatorLog2: 31 })).toBe('3/2^2');
    expect(exactFraction({ numerator: 0n, denominatorLog2: 31 })).toBe('0/2^31');
    expect(percent(1 / 3)).toBe('33.333333%');
    expect(percent(0.5)).toBe('50%');
  });
});
