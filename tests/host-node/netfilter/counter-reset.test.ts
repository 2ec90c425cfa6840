// Counters after a restore rewrites rules: iptables-restore keeps the counters only of rules it did
// not flush (libiptc's commit), so a chain rewritten with the very same rules starts again from its
// `-c` counters or zero, and -Z zeroes. Checked on svcplane's live counters (packets it counted),
// and step by step against iptables-legacy in a network namespace (counters put in with -c).
import { afterAll, describe, expect, it } from 'vitest';
import { Dataplane } from '../../../host-node/dataplane.js';
import { buildPacket } from '../../../host-node/core/packet.js';
import { missingTools, netnsSupport, NetnsScope } from '../../support/netns.js';

const NODE = '198.18.0.1';
const BASE = '*filter\n:KUBE-X - [0:0]\n:KUBE-Y - [0:0]\n-A INPUT -j KUBE-X\n-A KUBE-X -j KUBE-Y\n-A KUBE-Y -j RETURN\nCOMMIT\n';

/** One packet into INPUT: every rule of BASE counts it. */
function send(dp: Dataplane, sport: number): void {
  dp.process(buildPacket({ src: '198.18.5.5', dst: NODE, proto: 'tcp', sport, dport: 22, flags: 'S' }), 1);
}

/** Packet counts of a chain's rules, from `iptables -L CHAIN -v -x -n`. */
function packets(list: string): number[] {
  return list.trim().split('\n').slice(2).map((l) => Number(l.trim().split(/\s+/)[0]));
}

/** From `iptables-save -c` text: per chain, its policy counters (built-in chains) and its rules' counters in order. */
function saved(text: string): { policies: Record<string, string>; rules: Record<string, string[]> } {
  const policies: Record<string, string> = {};
  const rules: Record<string, string[]> = {};
  for (const line of text.split('\n')) {
    const decl = /^:(\S+) (ACCEPT|DROP) (\[\d+:\d+\])$/.exec(line);
    if (decl) policies[decl[1]!] = decl[3]!;
    const rule = /^(\[\d+:\d+\]) -A (\S+) /.exec(line);
    if (rule) (rules[rule[2]!] ??= []).push(rule[1]!);
  }
  return { policies, rules };
}

async function counted(): Promise<Dataplane> {
  const dp = await Dataplane.create({ nodeIPs: [NODE], seed: 1 });
  dp.iptablesRestore(BASE);
  send(dp, 1000);
  send(dp, 1001);
  return dp;
}

const count = (dp: Dataplane, chain: string) => packets(dp.iptablesList('filter', chain, { exact: true }));

describe('counters of rules a restore rewrites', () => {
  it('a whole-table restore of the same rules starts every rule from zero', async () => {
    const dp = await counted();
    expect(count(dp, 'INPUT')).toEqual([2]);
    dp.iptablesRestore(BASE);
    expect([count(dp, 'INPUT'), count(dp, 'KUBE-X'), count(dp, 'KUBE-Y')]).toEqual([[0], [0], [0]]);
    send(dp, 1002);
    expect(count(dp, 'KUBE-Y')).toEqual([1]);
  });

  it('--noflush zeroes only the chains the block declares or flushes; appended-to chains keep theirs', async () => {
    const dp = await counted();
    dp.iptablesRestore('*filter\n:KUBE-X - [0:0]\n-A KUBE-X -j KUBE-Y\nCOMMIT\n', { noflush: true });
    expect([count(dp, 'INPUT'), count(dp, 'KUBE-X'), count(dp, 'KUBE-Y')]).toEqual([[2], [0], [2]]);
    dp.iptablesRestore('*filter\n-A KUBE-Y -j RETURN\nCOMMIT\n', { noflush: true });
    expect(count(dp, 'KUBE-Y')).toEqual([2, 0]);
    dp.iptablesRestore('*filter\n-F KUBE-Y\n-A KUBE-Y -j RETURN\nCOMMIT\n', { noflush: true });
    expect(count(dp, 'KUBE-Y')).toEqual([0]);
  });

  it('-Z zeroes a chain, or one rule of it', async () => {
    const dp = await counted();
    dp.iptablesRestore('*filter\n-A KUBE-Y -j RETURN\nCOMMIT\n', { noflush: true });
    send(dp, 1003);
    expect(count(dp, 'KUBE-Y')).toEqual([3, 0]);
    dp.iptablesRestore('*filter\n-Z KUBE-Y 1\nCOMMIT\n', { noflush: true });
    expect(count(dp, 'KUBE-Y')).toEqual([0, 0]);
    expect(count(dp, 'INPUT')).toEqual([3]);
    dp.iptablesRestore('*filter\n-Z INPUT\nCOMMIT\n', { noflush: true });
    expect(count(dp, 'INPUT')).toEqual([0]);
    expect(count(dp, 'KUBE-X')).toEqual([3]);
  });

  it('the same large block again (passed over whole) still starts its rules from zero', async () => {
    let big = '*filter\n:KUBE-X - [0:0]\n:KUBE-Y - [0:0]\n-A INPUT -j KUBE-X\n';
    for (let i = 0; i < 2000; i++) big += `-A KUBE-X -d 198.19.${i >> 8}.${i & 255}/32 -p tcp -m tcp --dport 80 -j ACCEPT\n`;
    big += '-A KUBE-X -j KUBE-Y\n-A KUBE-Y -j RETURN\nCOMMIT\n';
    expect(big.length).toBeGreaterThan(65536);
    for (const noflush of [false, true]) {
      const dp = await Dataplane.create({ nodeIPs: [NODE], seed: 1 });
      if (noflush) dp.iptablesRestore('*filter\n:KUBE-X - [0:0]\n:KUBE-Y - [0:0]\n-A INPUT -j KUBE-X\nCOMMIT\n');
      const text = noflush ? big.replace('-A INPUT -j KUBE-X\n', '') : big;
      dp.iptablesRestore(text, { noflush });
      send(dp, 1000);
      expect(count(dp, 'KUBE-Y')).toEqual([1]);
      dp.iptablesRestore(text, { noflush });
      expect(count(dp, 'KUBE-Y')).toEqual([0]);
      expect(count(dp, 'INPUT')).toEqual(noflush ? [1] : [0]);
    }
  });

  it('iptables-save shows the live counters: policies always, rules with -c; a block that edits the table restarts its policies', async () => {
    const dp = await counted();
    const policy = (chain: string) => new RegExp(`^:${chain} ACCEPT (\\[\\d+:\\d+\\])$`, 'm').exec(dp.iptablesSave())?.[1];
    dp.iptablesRestore('*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n', { noflush: true });
    send(dp, 1004);
    send(dp, 1005);
    expect(policy('INPUT')).toBe('[2:80]');
    expect(dp.iptablesList('filter', 'INPUT', { exact: true })).toMatch(/policy ACCEPT 2 packets, 80 bytes/);
    expect(dp.iptablesSave({ counters: true })).toMatch(/^\[4:160\] -A KUBE-Y -j RETURN$/m);
    dp.iptablesRestore('*filter\nCOMMIT\n', { noflush: true });
    expect(policy('INPUT')).toBe('[2:80]');
    dp.iptablesRestore('*filter\n-A KUBE-Y -j RETURN\nCOMMIT\n', { noflush: true });
    expect(policy('INPUT')).toBe('[0:0]');
    expect(dp.iptablesSave({ counters: true })).toMatch(/^\[4:160\] -A KUBE-Y -j RETURN\n\[0:0\] -A KUBE-Y -j RETURN$/m);
  });

  it('a restore with -c sets the counters the text gives, also for unchanged rules', async () => {
    const dp = await counted();
    dp.iptablesRestore(BASE.replace('-A KUBE-Y -j RETURN', '[7:700] -A KUBE-Y -j RETURN'), { counters: true });
    expect([count(dp, 'INPUT'), count(dp, 'KUBE-Y')]).toEqual([[0], [7]]);
  });
});

// The same steps on the kernel, counters put in with -c (no traffic needed), compared rule by rule.
const support = netnsSupport();
const missing = support.ok ? missingTools(['iptables-legacy-restore', 'iptables-legacy']) : [];
const skipWhy = !support.ok ? support.reason : missing.length ? `missing tools: ${missing.join(', ')}` : '';
if (skipWhy) console.warn(`counter-reset kernel comparison: SKIPPED — ${skipWhy}`);

describe.skipIf(skipWhy !== '')('counters after restores, svcplane vs iptables-legacy', () => {
  const scope = skipWhy ? undefined : new NetnsScope('ctr');
  afterAll(() => scope?.destroy());

  it('gives the kernel\'s counters after each step', async () => {
    const ns = scope!.create('node');
    const dp = await Dataplane.create({ nodeIPs: [NODE], seed: 1 });
    const counts = `*filter\n:INPUT ACCEPT [4:400]\n:KUBE-X - [0:0]\n:KUBE-Y - [0:0]\n[5:300] -A INPUT -j KUBE-X\n[7:700] -A KUBE-X -j KUBE-Y\n[9:900] -A KUBE-Y -j RETURN\nCOMMIT\n`;
    const setPolicy = '*filter\n:INPUT ACCEPT [6:60]\nCOMMIT\n';
    const steps: Array<{ text: string; noflush?: boolean; counters?: boolean }> = [
      { text: counts, counters: true },
      { text: '*filter\n-A INPUT -s 198.18.9.0/24 -j ACCEPT\nCOMMIT\n', noflush: true },
      { text: '*filter\n:KUBE-X - [0:0]\n-A KUBE-X -j KUBE-Y\nCOMMIT\n', noflush: true },
      { text: '*filter\n-A KUBE-Y -j RETURN\nCOMMIT\n', noflush: true },
      { text: '*filter\n-Z KUBE-Y 1\nCOMMIT\n', noflush: true },
      { text: '*filter\n-F INPUT\nCOMMIT\n', noflush: true },
      { text: counts, counters: true },
      { text: setPolicy, noflush: true, counters: true },
      { text: '*filter\n-Z INPUT\nCOMMIT\n', noflush: true },
      { text: '*filter\n-I KUBE-Y 1 -s 198.18.7.0/24 -j RETURN\n-A KUBE-Y -j ACCEPT\nCOMMIT\n', noflush: true },
      { text: '*filter\n-D KUBE-Y 1\n[3:30] -A KUBE-X -j ACCEPT\nCOMMIT\n', noflush: true, counters: true },
      { text: setPolicy, noflush: true, counters: true },
      { text: '*filter\n-P INPUT ACCEPT\nCOMMIT\n', noflush: true },
      { text: setPolicy, noflush: true, counters: true },
      { text: '*filter\n-F KUBE-Y\n-A KUBE-Y -j RETURN\nCOMMIT\n', noflush: true },
      { text: counts },
      { text: counts.replace(/\[\d+:\d+\] /g, '') },
    ];
    for (const [i, s] of steps.entries()) {
      const argv = ['iptables-legacy-restore', ...(s.noflush ? ['--noflush'] : []), ...(s.counters ? ['-c'] : [])];
      scope!.must(ns, argv, { input: s.text });
      dp.iptablesRestore(s.text, { noflush: s.noflush ?? false, counters: s.counters ?? false });
      for (const chain of ['INPUT', 'KUBE-X', 'KUBE-Y']) {
        const kernel = packets(scope!.must(ns, ['iptables-legacy', '-L', chain, '-v', '-x', '-n']));
        expect({ step: i, chain, packets: count(dp, chain) }).toEqual({ step: i, chain, packets: kernel });
      }
      // iptables-save -c: the built-in chains' policy counters and every rule's, chain by chain.
      // (svcplane prints only the built-in chains its texts declared, as its own form does.)
      const ours = saved(dp.iptablesSave({ counters: true }));
      const kernel = saved(scope!.must(ns, ['iptables-legacy-save', '-c', '-t', 'filter']));
      expect(ours.policies.INPUT).toBeDefined();
      for (const name of Object.keys(kernel.policies)) if (!(name in ours.policies)) delete kernel.policies[name];
      expect({ step: i, ...ours }).toEqual({ step: i, ...kernel });
    }
  });
});
