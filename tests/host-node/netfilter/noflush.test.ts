// --noflush partial restores (kube-proxy's partial sync): declared chains are flushed and
// rewritten, -X deletes, plain -A appends, everything else is kept — and shared. Also the
// replace semantics without --noflush and the changed-chain sets both report.
import { describe, expect, it } from 'vitest';
import { parseRestore, renderRules, renderSave, type Ruleset } from '../../../host-node/netfilter/index.js';

function ok(text: string, opts: Parameters<typeof parseRestore>[1] = {}): { ruleset: Ruleset; touched: Set<string> } {
  const r = parseRestore(text, opts);
  if (!r.ok) throw new Error(r.error.message);
  return r;
}

const FULL = `*filter
:KUBE-SERVICES - [0:0]
-A KUBE-SERVICES -m comment --comment "ns/gone:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.9 --dport 80 -j REJECT
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SVC-AAAA - [0:0]
:KUBE-SEP-A1 - [0:0]
:KUBE-SVC-BBBB - [0:0]
:KUBE-SEP-B1 - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-SERVICES -m comment --comment "ns/a:p80 cluster IP" -m tcp -p tcp -d 172.30.0.1 --dport 80 -j KUBE-SVC-AAAA
-A KUBE-SERVICES -m comment --comment "ns/b:p80 cluster IP" -m tcp -p tcp -d 172.30.0.2 --dport 80 -j KUBE-SVC-BBBB
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-SVC-AAAA -m comment --comment "ns/a:p80 -> 10.0.1.1:80" -j KUBE-SEP-A1
-A KUBE-SEP-A1 -s 10.0.1.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-A1 -m tcp -p tcp -j DNAT --to-destination 10.0.1.1:80
-A KUBE-SVC-BBBB -m comment --comment "ns/b:p80 -> 10.0.2.1:80" -j KUBE-SEP-B1
-A KUBE-SEP-B1 -s 10.0.2.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-B1 -m tcp -p tcp -j DNAT --to-destination 10.0.2.1:80
COMMIT
`;

// Service b is deleted, service c is added, KUBE-SERVICES is rewritten, a rule is appended to
// KUBE-MARK-MASQ without declaring it; the filter table only has its REJECT removed.
const PARTIAL = `*filter
:KUBE-SERVICES - [0:0]
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-SVC-CCCC - [0:0]
:KUBE-SEP-C1 - [0:0]
:KUBE-SVC-BBBB - [0:0]
:KUBE-SEP-B1 - [0:0]
-A KUBE-SERVICES -m comment --comment "ns/a:p80 cluster IP" -m tcp -p tcp -d 172.30.0.1 --dport 80 -j KUBE-SVC-AAAA
-A KUBE-SERVICES -m comment --comment "ns/c:p80 cluster IP" -m tcp -p tcp -d 172.30.0.3 --dport 80 -j KUBE-SVC-CCCC
-A KUBE-MARK-MASQ -m comment --comment appended
-A KUBE-SVC-CCCC -m comment --comment "ns/c:p80 -> 10.0.3.1:80" -j KUBE-SEP-C1
-A KUBE-SEP-C1 -s 10.0.3.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-C1 -m tcp -p tcp -j DNAT --to-destination 10.0.3.1:80
-X KUBE-SVC-BBBB
-X KUBE-SEP-B1
COMMIT
`;

describe('--noflush partial restore', () => {
  const first = ok(FULL);
  const second = ok(PARTIAL, { base: first.ruleset, noflush: true });
  const nat = second.ruleset.table('nat')!;

  it('gives the expected ruleset', () => {
    expect(renderRules(second.ruleset, 'nat')).toBe(`-P PREROUTING ACCEPT
-P INPUT ACCEPT
-P OUTPUT ACCEPT
-P POSTROUTING ACCEPT
-N KUBE-MARK-MASQ
-N KUBE-SEP-A1
-N KUBE-SEP-C1
-N KUBE-SERVICES
-N KUBE-SVC-AAAA
-N KUBE-SVC-CCCC
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-MARK-MASQ -m comment --comment appended
-A KUBE-SEP-A1 -s 10.0.1.1/32 -j KUBE-MARK-MASQ
-A KUBE-SEP-A1 -p tcp -m tcp -j DNAT --to-destination 10.0.1.1:80
-A KUBE-SEP-C1 -s 10.0.3.1/32 -j KUBE-MARK-MASQ
-A KUBE-SEP-C1 -p tcp -m tcp -j DNAT --to-destination 10.0.3.1:80
-A KUBE-SERVICES -d 172.30.0.1/32 -p tcp -m comment --comment "ns/a:p80 cluster IP" -m tcp --dport 80 -j KUBE-SVC-AAAA
-A KUBE-SERVICES -d 172.30.0.3/32 -p tcp -m comment --comment "ns/c:p80 cluster IP" -m tcp --dport 80 -j KUBE-SVC-CCCC
-A KUBE-SVC-AAAA -m comment --comment "ns/a:p80 -> 10.0.1.1:80" -j KUBE-SEP-A1
-A KUBE-SVC-CCCC -m comment --comment "ns/c:p80 -> 10.0.3.1:80" -j KUBE-SEP-C1
`);
    expect(renderRules(second.ruleset, 'filter', 'KUBE-SERVICES')).toBe('-N KUBE-SERVICES\n');
  });

  it('reports exactly the chains it changed', () => {
    expect([...second.touched].sort()).toEqual([
      'filter/KUBE-SERVICES', 'nat/KUBE-MARK-MASQ', 'nat/KUBE-SEP-B1', 'nat/KUBE-SEP-C1', 'nat/KUBE-SERVICES',
      'nat/KUBE-SVC-BBBB', 'nat/KUBE-SVC-CCCC',
    ]);
  });

  it('shares every chain it did not change with the base, and leaves the base as it was', () => {
    const before = first.ruleset.table('nat')!;
    for (const name of ['PREROUTING', 'KUBE-SVC-AAAA', 'KUBE-SEP-A1']) expect(nat.chain(name)).toBe(before.chain(name));
    expect(before.chain('KUBE-SVC-BBBB')).toBeDefined();
    expect(renderSave(first.ruleset)).toBe(FULL);
  });

  it('reuses the parsed rule objects of unchanged lines', () => {
    const before = first.ruleset.table('nat')!.chain('KUBE-SERVICES')!.rules[0];
    expect(nat.chain('KUBE-SERVICES')!.rules[0]).toBe(before);
  });

  it('keeps reference counts current (deleted chains, new jumps)', () => {
    expect(nat.references('KUBE-SVC-CCCC')).toBe(1);
    expect(nat.references('KUBE-SVC-BBBB')).toBe(0);
    expect(nat.references('KUBE-MARK-MASQ')).toBe(2);
    expect(nat.references('KUBE-SERVICES')).toBe(1);
  });

  it('an identical partial restore changes nothing and keeps the table shared', () => {
    const third = ok(PARTIAL.replace(/-X .*\n/g, '').replace(':KUBE-SVC-BBBB - [0:0]\n:KUBE-SEP-B1 - [0:0]\n', '')
      .replace('-A KUBE-MARK-MASQ -m comment --comment appended\n', ''), { base: second.ruleset, noflush: true });
    expect([...third.touched]).toEqual([]);
    for (const c of nat.chains()) expect(third.ruleset.table('nat')!.chain(c.name)).toBe(c);
  });

  it('does not flush a built-in chain it declares (iptables-restore --noflush)', () => {
    const r = ok('*nat\n:PREROUTING - [0:0]\nCOMMIT\n', { base: second.ruleset, noflush: true });
    expect(r.ruleset.table('nat')!.chain('PREROUTING')!.rules.length).toBe(1);
    expect([...r.touched]).toEqual([]);
  });

  it('inserts, replaces and deletes by number and by spec', () => {
    const r = ok(
      '*nat\n-I KUBE-SVC-AAAA 1 -j KUBE-MARK-MASQ\n-R KUBE-SVC-AAAA 2 -m comment --comment new -j KUBE-SEP-A1\n' +
        '-A KUBE-SVC-AAAA -j RETURN\n-D KUBE-SVC-AAAA -j RETURN\n-D KUBE-SVC-AAAA 1\nCOMMIT\n',
      { base: second.ruleset, noflush: true },
    );
    expect(renderRules(r.ruleset, 'nat', 'KUBE-SVC-AAAA')).toBe('-N KUBE-SVC-AAAA\n-A KUBE-SVC-AAAA -m comment --comment new -j KUBE-SEP-A1\n');
    expect([...r.touched]).toEqual(['nat/KUBE-SVC-AAAA']);
  });

  it('renames a chain with -E and the jumps follow it', () => {
    const r = ok('*nat\n-E KUBE-SVC-AAAA KUBE-SVC-RENAMED\nCOMMIT\n', { base: second.ruleset, noflush: true });
    const t = r.ruleset.table('nat')!;
    expect(t.chain('KUBE-SVC-AAAA')).toBeUndefined();
    expect(t.chain('KUBE-SVC-RENAMED')!.rules.length).toBe(1);
    expect(t.chain('KUBE-SERVICES')!.rules[0].target).toEqual({ kind: 'jump', chain: 'KUBE-SVC-RENAMED', goto: false });
    expect(t.references('KUBE-SVC-RENAMED')).toBe(1);
    expect(t.references('KUBE-SVC-AAAA')).toBe(0);
  });

  it('-F and -X without a chain work on the whole table', () => {
    const r = ok('*nat\n-F\n-X\nCOMMIT\n', { base: second.ruleset, noflush: true });
    const t = r.ruleset.table('nat')!;
    expect([...t.chains()].map((c) => c.name)).toEqual(['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING']);
    expect([...t.chains()].every((c) => c.rules.length === 0)).toBe(true);
  });
});

describe('restore without --noflush', () => {
  const first = ok(FULL);

  it('replaces each table named, keeping built-in policies', () => {
    const withPolicy = ok('*filter\n:FORWARD DROP [0:0]\nCOMMIT\n', { base: first.ruleset, noflush: true });
    const r = ok('*filter\n:OTHER - [0:0]\n-A INPUT -j OTHER\nCOMMIT\n', { base: withPolicy.ruleset });
    expect(renderRules(r.ruleset, 'filter')).toBe('-P INPUT ACCEPT\n-P FORWARD DROP\n-P OUTPUT ACCEPT\n-N OTHER\n-A INPUT -j OTHER\n');
    // nat was not named, so it is the very same table.
    expect(r.ruleset.table('nat')).toBe(first.ruleset.table('nat'));
    expect([...r.touched].sort()).toEqual(['filter/INPUT', 'filter/KUBE-SERVICES', 'filter/OTHER']);
  });

  it('reports nothing for the same text again, and shares every chain', () => {
    const r = ok(FULL, { base: first.ruleset });
    expect([...r.touched]).toEqual([]);
    for (const c of first.ruleset.table('nat')!.chains()) expect(r.ruleset.table('nat')!.chain(c.name)).toBe(c);
  });

  it('keeps a rule inserted into a chain the block just created when more are appended after it', () => {
    for (const [text, rules] of [
      ['*filter\n:B - [0:0]\n-I B -s 198.18.0.80 -j ACCEPT\n-A B -j DROP\nCOMMIT\n', '-N B\n-A B -s 198.18.0.80/32 -j ACCEPT\n-A B -j DROP\n'],
      ['*filter\n:B - [0:0]\n-I B 1 -j ACCEPT\n-A B -j DROP\n-A B -j RETURN\nCOMMIT\n', '-N B\n-A B -j ACCEPT\n-A B -j DROP\n-A B -j RETURN\n'],
      ['*filter\n-N B\n-I B -j ACCEPT\n-A B -j DROP\nCOMMIT\n', '-N B\n-A B -j ACCEPT\n-A B -j DROP\n'],
    ] as const) {
      expect(renderRules(ok(text, { base: first.ruleset }).ruleset, 'filter', 'B')).toBe(rules);
      expect(renderRules(ok(text, { base: first.ruleset, noflush: true }).ruleset, 'filter', 'B')).toBe(rules);
    }
  });

  it('reports every chain of a table it creates', () => {
    const r = ok('*raw\n-A PREROUTING -j CT --notrack\nCOMMIT\n', { base: first.ruleset });
    expect([...r.touched].sort()).toEqual(['raw/OUTPUT', 'raw/PREROUTING']);
  });

  it('--table restores only that table', () => {
    const r = ok('*filter\n:X - [0:0]\nCOMMIT\n*nat\n:Y - [0:0]\nCOMMIT\n', { table: 'nat' });
    expect(r.ruleset.table('filter')).toBeUndefined();
    expect(r.ruleset.table('nat')!.chain('Y')).toBeDefined();
  });

  it('counters are kept only with --counters', () => {
    const text = '*filter\n:INPUT ACCEPT [10:2000]\n[3:180] -A INPUT -j ACCEPT\nCOMMIT\n';
    const plain = ok(text).ruleset.table('filter')!.chain('INPUT')!;
    expect(plain.counters).toEqual({ packets: 0n, bytes: 0n });
    expect(plain.rules[0].counters).toEqual({ packets: 0n, bytes: 0n });
    const kept = ok(text, { counters: true }).ruleset.table('filter')!.chain('INPUT')!;
    expect(kept.counters).toEqual({ packets: 10n, bytes: 2000n });
    expect(kept.rules[0].counters).toEqual({ packets: 3n, bytes: 180n });
  });
});
