// COMMIT's checks on restores that create many chains at once (graph.ts): the one colouring walk
// that decides whether new jumps close a loop, the hook bounds grown over new chains, and the
// first restore that keeps rule texts as views into its text (restore.ts `views`). Also the
// compiler's chain ids, given out at compile time and taken back when the core refuses a restore.
import { describe, expect, it } from 'vitest';
import { parseRestore, renderSave, type Ruleset } from '../../../host-node/netfilter/index.js';
import { IptCompiler } from '../../../host-node/netfilter/compile.js';
import { ruleSpec } from '../../../host-node/netfilter/save.js';
import { Dataplane } from '../../../host-node/dataplane.js';

function ok(text: string, base?: Ruleset, noflush = false): { ruleset: Ruleset; touched: Set<string> } {
  const r = parseRestore(text, { base, noflush });
  if (!r.ok) throw new Error(r.error.message);
  return r;
}

/** kube-proxy-shaped nat text: `n` services, each KUBE-SVC-i → KUBE-SEP-i-{0,1} → KUBE-MARK-MASQ. */
function services(n: number, extra = ''): string {
  const decl: string[] = ['*nat', ':KUBE-SERVICES - [0:0]', ':KUBE-MARK-MASQ - [0:0]'];
  const rules: string[] = ['-A PREROUTING -j KUBE-SERVICES', '-A OUTPUT -j KUBE-SERVICES', '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000'];
  for (let i = 0; i < n; i++) {
    decl.push(`:KUBE-SVC-${i} - [0:0]`, `:KUBE-SEP-${i}-0 - [0:0]`, `:KUBE-SEP-${i}-1 - [0:0]`);
    const ip = `198.18.${i >> 8}.${i & 255}`;
    rules.push(`-A KUBE-SERVICES -d ${ip}/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-${i}`);
    rules.push(`-A KUBE-SVC-${i} -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-${i}-0`);
    rules.push(`-A KUBE-SVC-${i} -j KUBE-SEP-${i}-1`);
    for (const e of [0, 1]) {
      rules.push(`-A KUBE-SEP-${i}-${e} -s 198.19.${i >> 7}.${((i & 127) << 1) | e} -j KUBE-MARK-MASQ`);
      rules.push(`-A KUBE-SEP-${i}-${e} -p tcp -m tcp -j DNAT --to-destination 198.19.${i >> 7}.${((i & 127) << 1) | e}:8080`);
    }
  }
  return [...decl, ...rules, extra, 'COMMIT', ''].filter((l, k, a) => l !== '' || k === a.length - 1).join('\n');
}

function lineOf(text: string, line: string): number {
  return text.split('\n').indexOf(line) + 1;
}

describe('COMMIT of a restore that creates thousands of chains', () => {
  it('accepts a loop-free first restore and renders it back byte for byte', () => {
    const text = services(3000);
    expect(text.length).toBeGreaterThan(1 << 16); // large enough for rule texts kept as views
    const r = ok(text);
    expect(r.touched.size).toBe(3 * 3000 + 2 + 4);
    // iptables-save prints the chains it declared and each rule's text as written.
    const saved = renderSave(r.ruleset);
    const lines = new Set(saved.split('\n'));
    const missing = text.split('\n').filter((x) => (x.startsWith('-A ') || x.startsWith(':KUBE')) && !lines.has(x));
    expect(missing).toEqual([]);
    const again = ok(saved, r.ruleset);
    expect(renderSave(again.ruleset)).toBe(saved);
  });

  it('finds a loop that a first restore closes deep inside its new chains, at the closing jump', () => {
    const extra = '-A KUBE-SEP-2999-1 -j KUBE-SVC-2999';
    const text = services(3000, extra);
    const r = parseRestore(text);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.line).toBe(lineOf(text, extra));
    expect(r.error.word).toBe('KUBE-SVC-2999');
    expect(r.error.reason).toBe('Loop found in table (KUBE-SEP-2999-1 -> KUBE-SVC-2999 -> KUBE-SEP-2999-1)');
  });

  it('finds a loop an incremental restore closes through chains only the base has, and leaves the base as it was', () => {
    const base = ok(services(2000)).ruleset;
    const before = renderSave(base);
    // KUBE-MARK-MASQ is old; every KUBE-SEP chain of the base jumps to it. A new jump from it back
    // into one service closes KUBE-MARK-MASQ → KUBE-SVC-7 → KUBE-SEP-7-0 → KUBE-MARK-MASQ.
    const text = '*nat\n-A KUBE-MARK-MASQ -j KUBE-SVC-7\nCOMMIT\n';
    const r = parseRestore(text, { base, noflush: true });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.line).toBe(2);
    expect(r.error.word).toBe('KUBE-SVC-7');
    expect(r.error.reason).toMatch(/^Loop found in table \(KUBE-MARK-MASQ -> KUBE-SVC-7 -> KUBE-SEP-7-[01] -> KUBE-MARK-MASQ\)$/);
    expect(renderSave(base)).toBe(before);
    // The same jump into a chain that does not lead back is fine.
    const fine = ok('*nat\n:KUBE-LEAF - [0:0]\n-A KUBE-MARK-MASQ -j KUBE-LEAF\nCOMMIT\n', base, true);
    expect([...fine.touched].sort()).toEqual(['nat/KUBE-LEAF', 'nat/KUBE-MARK-MASQ']);
  });

  it('finds a self jump among thousands of new chains', () => {
    const extra = '-A KUBE-SVC-1500 -j KUBE-SVC-1500';
    const text = services(2000, extra);
    const r = parseRestore(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect([r.error.line, r.error.word, r.error.reason]).toEqual([lineOf(text, extra), 'KUBE-SVC-1500', 'Loop found in table (KUBE-SVC-1500 -> KUBE-SVC-1500)']);
  });

  it('refuses DNAT made reachable from POSTROUTING through a path of new chains', () => {
    const extra = '-A POSTROUTING -j KUBE-SVC-1999';
    const text = services(2000, extra);
    const r = parseRestore(text);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.word).toBe('DNAT');
    expect(r.error.reason).toBe('ip_tables: DNAT target: used from hooks PREROUTING/OUTPUT/POSTROUTING, but only usable from PREROUTING/OUTPUT');
    expect(r.error.line).toBe(lineOf(text, '-A KUBE-SEP-1999-0 -p tcp -m tcp -j DNAT --to-destination 198.19.15.158:8080'));
  });

  it('keeps reference counts of jumps into new chains (-X refuses a chain still named)', () => {
    const base = ok(services(500)).ruleset;
    const r = parseRestore('*nat\n-X KUBE-SEP-3-1\nCOMMIT\n', { base, noflush: true });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.reason).toBe("Can't delete chain with references left");
    const gone = ok('*nat\n-D KUBE-SVC-3 -j KUBE-SEP-3-1\n-F KUBE-SEP-3-1\n-X KUBE-SEP-3-1\nCOMMIT\n', base, true);
    expect(gone.ruleset.table('nat')!.chain('KUBE-SEP-3-1')).toBeUndefined();
  });

  it('counts references right when -X comes while a large chain is still being rewritten (kube-proxy writes its last KUBE-SERVICES rule after the -X lines)', () => {
    const base = ok(services(500, '-A KUBE-SERVICES -j KUBE-MARK-MASQ')).ruleset;
    const old = base.table('nat')!.chain('KUBE-SERVICES')!.rules.map((r) => `-A KUBE-SERVICES ${ruleSpec(r)}`);
    // KUBE-SERVICES rewritten without service 300, its last rule not yet written when the -X come.
    const rewrite = (extraX: string[], last: string[]) => ['*nat', ':KUBE-SERVICES - [0:0]', ...old.slice(0, 300), ...old.slice(301, -1),
      '-F KUBE-SVC-300', '-F KUBE-SEP-300-0', '-F KUBE-SEP-300-1', '-X KUBE-SVC-300', '-X KUBE-SEP-300-0', '-X KUBE-SEP-300-1', ...extraX, ...last, 'COMMIT', ''].join('\n');
    const r = ok(rewrite([], [old.at(-1)!]), base, true);
    const nat = r.ruleset.table('nat')!;
    expect(nat.chain('KUBE-SVC-300')).toBeUndefined();
    expect(nat.chain('KUBE-SERVICES')!.rules).toHaveLength(500);
    // Still named by the rewrite (service 299's rule, just before the change) or by another chain: refused.
    for (const x of ['-X KUBE-SVC-299', '-X KUBE-SVC-499', '-X KUBE-SEP-7-0']) {
      const bad = parseRestore(rewrite([x], [old.at(-1)!]), { base, noflush: true });
      expect(bad.ok, x).toBe(false);
      if (!bad.ok) expect(bad.error.reason).toBe("Can't delete chain with references left");
    }
    // The whole chain rewritten with one rule inserted, then -X: chains named by the rules after the
    // insert (the common suffix) are still referenced.
    const whole = ['*nat', ':KUBE-SERVICES - [0:0]', ':KUBE-NEW - [0:0]', ...old.slice(0, 300), '-A KUBE-SERVICES -d 198.18.9.9/32 -p tcp -m tcp --dport 81 -j KUBE-NEW', ...old.slice(300)];
    const referenced = (r: ReturnType<typeof parseRestore>) => !r.ok && r.error.reason === "Can't delete chain with references left";
    for (const c of ['KUBE-SVC-301', 'KUBE-SVC-450', 'KUBE-SVC-0', 'KUBE-NEW']) {
      expect(referenced(parseRestore([...whole, `-F ${c}`, `-X ${c}`, 'COMMIT', ''].join('\n'), { base, noflush: true })), c).toBe(true);
    }
    // …and so after that restore, which leaves every count as it found it.
    let after = ok([...whole, 'COMMIT', ''].join('\n'), base, true).ruleset;
    for (const c of ['KUBE-SVC-301', 'KUBE-SVC-450', 'KUBE-NEW']) {
      expect(referenced(parseRestore(`*nat\n-F ${c}\n-X ${c}\nCOMMIT\n`, { base: after, noflush: true })), c).toBe(true);
    }
    after = ok('*nat\n-D KUBE-SERVICES -d 198.18.9.9/32 -p tcp -m tcp --dport 81 -j KUBE-NEW\n-X KUBE-NEW\nCOMMIT\n', after, true).ruleset;
    expect(after.table('nat')!.chain('KUBE-NEW')).toBeUndefined();
    // Service 300's rule replaced by one naming a new chain: that chain cannot go.
    const replaced = rewrite(['-X KUBE-NEW'], [old.at(-1)!]).replace(':KUBE-SERVICES - [0:0]', ':KUBE-SERVICES - [0:0]\n:KUBE-NEW - [0:0]')
      .replace(old[301]!, `-A KUBE-SERVICES -d 198.18.9.9/32 -p tcp -m tcp --dport 81 -j KUBE-NEW\n${old[301]!}`);
    const refused = parseRestore(replaced, { base, noflush: true });
    expect(refused.ok).toBe(false);
    if (!refused.ok) expect(refused.error.reason).toBe("Can't delete chain with references left");
    // The old last rule is not written again yet when -X comes: KUBE-MARK-MASQ is then named only by
    // the KUBE-SEP chains, so it stays; a chain only that old last rule named could go.
    const bad = parseRestore(rewrite(['-X KUBE-MARK-MASQ'], []), { base, noflush: true });
    expect(bad.ok).toBe(false);
    const base2 = ok(services(500, ':KUBE-LAST - [0:0]\n-A KUBE-SERVICES -j KUBE-LAST')).ruleset;
    const old2 = base2.table('nat')!.chain('KUBE-SERVICES')!.rules.map((r) => `-A KUBE-SERVICES ${ruleSpec(r)}`);
    const text2 = ['*nat', ':KUBE-SERVICES - [0:0]', ...old2.slice(0, 300), ...old2.slice(301, -1), '-X KUBE-LAST', 'COMMIT', ''].join('\n');
    const done = ok(text2, base2, true);
    expect(done.ruleset.table('nat')!.chain('KUBE-LAST')).toBeUndefined();
    const late = parseRestore(text2.replace('COMMIT', `${old2.at(-1)}\nCOMMIT`), { base: base2, noflush: true });
    expect(late.ok).toBe(false);   // the rule written after the -X names a chain that is gone

    // kube-proxy's order: the -X lines (which read the chain mid-rewrite), then the last rule, which
    // the rewrite goes on replaying — its jump counted, the chain as the text says, lines right.
    const kp = ['*nat', ':KUBE-SERVICES - [0:0]', ...old2.slice(0, 300), ...old2.slice(301, -1),
      '-F KUBE-SVC-300', '-F KUBE-SEP-300-0', '-F KUBE-SEP-300-1', '-X KUBE-SVC-300', '-X KUBE-SEP-300-0', '-X KUBE-SEP-300-1', old2.at(-1)!];
    const kpDone = ok([...kp, 'COMMIT', ''].join('\n'), base2, true);
    const ks = kpDone.ruleset.table('nat')!.chain('KUBE-SERVICES')!.rules.map((x) => `-A KUBE-SERVICES ${ruleSpec(x)}`);
    expect(ks).toEqual([...old2.slice(0, 300), ...old2.slice(301)]);
    const stillNamed = parseRestore([...kp, '-X KUBE-LAST', 'COMMIT', ''].join('\n'), { base: base2, noflush: true });
    expect(referenced(stillNamed)).toBe(true);
    const badAfter = parseRestore([...kp, '-A KUBE-SERVICES -j NO-SUCH-CHAIN', 'COMMIT', ''].join('\n'), { base: base2, noflush: true });
    expect(badAfter.ok).toBe(false);
    if (!badAfter.ok) expect(badAfter.error.line).toBe(kp.length + 1);
  });
});

describe('compiler chain ids of a refused restore', () => {
  it('are taken back by reject() and given out again by the next compile', () => {
    const c = new IptCompiler();
    const first = ok(services(50));
    const out = c.compile(first.ruleset, first.touched);
    const id = c.chainId(4, 'nat', 'KUBE-SVC-10');
    expect(id).toBeGreaterThanOrEqual(40);
    out.reject();
    expect(c.chainId(4, 'nat', 'KUBE-SVC-10')).toBeUndefined();
    expect(c.chainId(4, 'nat', 'KUBE-SERVICES')).toBeUndefined();
    const again = c.compile(first.ruleset, first.touched);
    again.accept();
    const ids = new Set<number>();
    for (const name of first.ruleset.table('nat')!.chains()) {
      if (name.builtin) continue;
      const v = c.chainId(4, 'nat', name.name);
      expect(v).toBeDefined();
      ids.add(v!);
    }
    expect(ids.size).toBe(3 * 50 + 2); // every user chain its own id, none lost to the refused compile
    expect(Math.max(...ids)).toBe(40 + 3 * 50 + 2 - 1);
  });
});

describe('chains created by a block, their appends logged (places.ts AppendLog)', () => {
  it('keep each chain’s rules in order when their lines interleave, with edits after the appends', () => {
    const text = [
      '*filter', ':A - [0:0]', ':B - [0:0]', ':C - [0:0]',
      '-A A -s 198.18.0.1 -j ACCEPT', '-A B -s 198.18.0.2 -j ACCEPT', '-A A -s 198.18.0.3 -j DROP',
      '-A C -j B', '-A B -s 198.18.0.4 -j DROP', '-A A -j C',
      '-I A 2 -s 198.18.0.9 -j ACCEPT', '-D B 1', '-A B -s 198.18.0.5 -j ACCEPT', '-E C D',
      'COMMIT', '',
    ].join('\n');
    const r = ok(text);
    // A rule -E rewrote has no text of its own (it prints by its spec).
    const rules = (n: string) => r.ruleset.table('filter')!.chain(n)!.rules.map((x) => x.text || ruleSpec(x));
    expect(rules('A')).toEqual(['-s 198.18.0.1 -j ACCEPT', '-s 198.18.0.9 -j ACCEPT', '-s 198.18.0.3 -j DROP', '-j D']);
    expect(rules('B')).toEqual(['-s 198.18.0.4 -j DROP', '-s 198.18.0.5 -j ACCEPT']);
    expect(rules('D')).toEqual(['-j B']);
    expect(r.ruleset.table('filter')!.chain('C')).toBeUndefined();
  });

  it('name the line of a bad jump in a chain whose lines are spread over the block', () => {
    const text = '*filter\n:A - [0:0]\n:B - [0:0]\n-A A -j ACCEPT\n-A B -j ACCEPT\n-A A -j NOSUCH\n-A B -j A\nCOMMIT\n';
    const r = parseRestore(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect([r.error.line, r.error.word]).toEqual([6, 'NOSUCH']);
  });

  it('keep the text places of a large created chain (a later rewrite of it replays the old texts)', () => {
    const lines = Array.from({ length: 200 }, (_, i) => `-A BIG -s 198.18.${i >> 8}.${i & 255} -j ACCEPT`);
    const text = ['*filter', ':BIG - [0:0]', ...lines, 'COMMIT', ''].join('\n');
    const first = ok(text);
    const big = first.ruleset.table('filter')!.chain('BIG')!;
    expect(big.source).toBeTruthy();
    for (let k = 0; k < 200; k++) expect(big.source!.text.slice(big.source!.at[2 * k], big.source!.at[2 * k + 1])).toBe(big.rules[k]!.text);
    // The same text again: nothing changed, the chain object is kept.
    const again = ok(text, first.ruleset);
    expect(again.ruleset.table('filter')!.chain('BIG')).toBe(big);
    expect(again.touched.size).toBe(0);
  });
});

describe('a chain whose encoding outgrows the first megabyte of the compiler\'s arena', () => {
  // Chains are encoded into 1 MB arena chunks; a bigger one (about 17,000 rules like these; kube-
  // proxy's KUBE-SERVICES past about 11,600 Services) gets a chunk of its own, a quarter larger,
  // which must stay a whole number of words: some sizes threw a RangeError (KUBE-SERVICES at every
  // odd number of rules: a first restore of 15,001 Services failed).
  it('loads at every size, and its rules run', async () => {
    let dp!: Dataplane;
    for (const n of [20_000, 20_001, 20_002, 20_003]) {
      // A new dataplane each time: its arena's big chunk is made once, by the first big chain.
      dp = await Dataplane.create({ nodeIPs: ['198.18.200.1'], conntrackCapacity: 1 << 12, seed: 1 });
      const x = 'X';
      const rules = Array.from({ length: n }, (_, i) => `-A ${x} -s 198.19.${i >> 8 & 255}.${i & 255}/32 -m statistic --mode random --probability 0.5 -j ACCEPT`);
      dp.iptablesRestore(['*filter', ':INPUT ACCEPT [0:0]', `:${x} - [0:0]`, `-A INPUT -j ${x}`, ...rules, `-A ${x} -j DROP`, 'COMMIT', ''].join('\n'));
      expect(dp.iptablesRules('filter', x).split('\n').filter((l) => l.startsWith(`-A ${x}`)).length).toBe(n + 1);
    }
    // Nothing from the sources of the rules above: every rule misses, the last drops.
    const t = dp.trace({ src: '198.18.50.1', dst: '198.18.200.1', proto: 'tcp', dport: 80, from: 'external' });
    expect(t.outcomes.map((o) => o.verdict)).toEqual(['DROP']);
  });
});
