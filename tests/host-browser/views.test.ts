// The playground's pure view logic: marking traced rules in iptables-save text, the digest of a
// large rule set, the multiset line diff, collapsing runs of skipped rules, fresh source ports,
// pairing expected and measured outcomes for the chart, and resolving the packet builder's target.
import { describe, it, expect } from 'vitest';
import { SaveIndex, markContaining } from '../../host-browser/src/engine/rules-view.js';
import { diffLines, chainsIn, isIptablesRule, sampleDiff } from '../../host-browser/src/engine/line-diff.js';
import { compactSteps, type TraceStepView } from '../../host-browser/src/engine/modes.js';
import { freshPorts, tally, mergeOutcomes, outcomeKey } from '../../host-browser/src/engine/outcomes.js';
import { chartRows, compareDiffs } from '../../host-browser/src/ui/views.js';
import { resolveTarget, toWire } from '../../host-browser/src/ui/inputs.js';
import { NODE, presetById } from '../../host-browser/src/presets.js';
import { Dataplane } from '../../host-node/dataplane.js';

const SAVE = `*filter
:KUBE-SERVICES - [0:0]
-A KUBE-SERVICES -d 10.96.0.1 -j REJECT
-A KUBE-SERVICES -d 10.96.0.2 -j REJECT
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-SVC-A - [0:0]
-A KUBE-SERVICES -d 10.96.0.80 -j KUBE-SVC-A
-A KUBE-SERVICES -d 10.96.0.81 -j KUBE-SVC-B
-A KUBE-SVC-A -j KUBE-SEP-A
COMMIT`;

describe('rule views', () => {
  it('marks the n-th rule of a chain in its own table, matched or only visited', () => {
    const index = new SaveIndex(SAVE);
    const lines = index.view(index.marks([
      { table: 'nat', chain: 'KUBE-SERVICES', rule: 0, matched: false },
      { table: 'nat', chain: 'KUBE-SERVICES', rule: 1, matched: true },
      { table: 'nat', chain: 'KUBE-SVC-A', rule: 0, matched: true },
      { table: 'nat', chain: 'KUBE-SVC-A', rule: 0, matched: false },   // a second visit keeps the hit
      { table: 'nat', chain: 'KUBE-GONE', rule: 0, matched: true },     // unknown: ignored
    ]));
    expect(lines.map((l) => l.text)).toEqual(SAVE.split('\n'));
    const marked = lines.filter((l) => l.mark).map((l) => [l.mark, l.text]);
    expect(marked).toEqual([
      ['seen', '-A KUBE-SERVICES -d 10.96.0.80 -j KUBE-SVC-A'],
      ['hit', '-A KUBE-SERVICES -d 10.96.0.81 -j KUBE-SVC-B'],
      ['hit', '-A KUBE-SVC-A -j KUBE-SEP-A'],
    ]);
    expect(lines.filter((l) => l.text.includes('10.96.0.1') || l.text.includes('10.96.0.2')).every((l) => !l.mark)).toBe(true);
  });

  it('digests a large rule set to the visited per-service chains, fixed chains and the rules around a hit', () => {
    const rules: string[] = ['*nat', ':KUBE-SERVICES - [0:0]'];
    for (let i = 0; i < 3000; i++) rules.push(`:KUBE-SVC-${i} - [0:0]`);
    for (let i = 0; i < 3000; i++) rules.push(`-A KUBE-SERVICES -d 10.96.${i >> 8}.${i & 255} -j KUBE-SVC-${i}`);
    for (let i = 0; i < 3000; i++) rules.push(`-A KUBE-SVC-${i} -j KUBE-SEP-${i}`);
    rules.push('COMMIT');
    const index = new SaveIndex(rules.join('\n'));
    const marks = index.marks([
      { table: 'nat', chain: 'KUBE-SERVICES', rule: 1500, matched: true },
      { table: 'nat', chain: 'KUBE-SVC-1500', rule: 0, matched: true },
    ]);
    const d = index.view(marks, 1000);
    expect(d.length).toBeLessThan(100);
    const texts = d.map((l) => l.text);
    expect(texts).toContain('-A KUBE-SERVICES -d 10.96.5.220 -j KUBE-SVC-1500');
    expect(texts).toContain('-A KUBE-SVC-1500 -j KUBE-SEP-1500');
    expect(texts).toContain(':KUBE-SVC-1500 - [0:0]');
    expect(texts).not.toContain('-A KUBE-SVC-1499 -j KUBE-SEP-1499');
    expect(texts).toContain('-A KUBE-SERVICES -d 10.96.0.0 -j KUBE-SVC-0');   // the chain's first rules stay
    expect(d.filter((l) => l.mark === 'gap').length).toBeGreaterThan(0);
    expect(texts[0]).toBe('*nat');
    expect(texts.at(-1)).toBe('COMMIT');
    expect(d.filter((l) => l.mark === 'hit').map((l) => l.text)).toEqual(['-A KUBE-SERVICES -d 10.96.5.220 -j KUBE-SVC-1500', '-A KUBE-SVC-1500 -j KUBE-SEP-1500']);
    expect(index.view(marks, 100_000)).toHaveLength(rules.length);   // under the limit: whole
    // A first-match walk: every KUBE-SERVICES rule before the hit was checked. The digest does not
    // grow with them; its gap says how many were checked.
    const walk = index.marks([
      ...Array.from({ length: 1500 }, (_, rule) => ({ table: 'nat', chain: 'KUBE-SERVICES', rule, matched: false })),
      { table: 'nat', chain: 'KUBE-SERVICES', rule: 1500, matched: true },
    ]);
    const w = index.view(walk, 1000);
    expect(w.length).toBeLessThan(100);
    expect(w.filter((l) => l.mark === 'seen')).toHaveLength(20 + 3);   // the first 20 and the three before the hit
    expect(w.map((l) => l.text)).toContain('… 1,477 lines (1,477 checked by the packet, none matched)');
    expect(w.filter((l) => l.mark === 'hit').map((l) => l.text)).toEqual(['-A KUBE-SERVICES -d 10.96.5.220 -j KUBE-SVC-1500']);
  });

  it('a digest accounts for every line and every rule checked, whatever the order of the visits', () => {
    const rules: string[] = ['*filter', ':KUBE-FIREWALL - [0:0]'];
    for (let i = 0; i < 500; i++) rules.push(`-A KUBE-FIREWALL -s 198.18.${i >> 8}.${i & 255} -j DROP`);
    rules.push('COMMIT', '*nat', ':KUBE-NODEPORTS - [0:0]', ':KUBE-SERVICES - [0:0]');
    for (let i = 0; i < 2000; i++) rules.push(`:KUBE-SVC-${i} - [0:0]`);
    for (let i = 0; i < 300; i++) rules.push(`-A KUBE-NODEPORTS -p tcp --dport ${30000 + i} -j KUBE-EXT-${i}`);
    for (let i = 0; i < 2000; i++) rules.push(`-A KUBE-SERVICES -d 10.96.${i >> 8}.${i & 255} -j KUBE-SVC-${i}`);
    for (let i = 0; i < 2000; i++) rules.push(`-A KUBE-SVC-${i} -j KUBE-SEP-${i}`, `-A KUBE-SVC-${i} -j KUBE-SEP-${i}b`);
    rules.push('COMMIT');
    const index = new SaveIndex(rules.join('\n'));
    const visit = (table: string, chain: string, from: number, to: number, hit?: number) => [
      ...Array.from({ length: to - from }, (_, k) => ({ table, chain, rule: from + k, matched: false })),
      ...(hit === undefined ? [] : [{ table, chain, rule: hit, matched: true }]),
    ];
    // Two walks of KUBE-SERVICES (the second overlaps the first and reaches further), a walk of
    // KUBE-NODEPORTS, a rule checked once and matched on a later visit, a per-service chain.
    const refs = [
      ...visit('nat', 'KUBE-SERVICES', 0, 700, 700), ...visit('nat', 'KUBE-SVC-700', 0, 1, 1),
      ...visit('nat', 'KUBE-NODEPORTS', 0, 250), ...visit('filter', 'KUBE-FIREWALL', 100, 140, 140),
      ...visit('nat', 'KUBE-SERVICES', 650, 1200, 1200), ...visit('nat', 'KUBE-SERVICES', 5, 6, 5),
    ];
    const expected = new Map<string, 'hit' | 'seen'>();
    for (const r of refs) {
      const k = `${r.chain} ${r.rule}`;
      if (r.matched || !expected.has(k)) expected.set(k, r.matched ? 'hit' : 'seen');
    }
    const checked = [...expected.values()].filter((m) => m === 'seen').length;
    for (const order of [refs, [...refs].reverse()]) {
      const d = index.view(index.marks(order), 1000);
      expect(d.length).toBeLessThan(200);
      let lines = 0, seenInGaps = 0;
      for (const l of d) {
        if (l.mark !== 'gap') continue;
        const m = /^… ([\d,]+) lines(?: \(([\d,]+) checked by the packet, none matched\))?$/.exec(l.text)!;
        lines += Number(m[1]!.replace(/,/g, ''));
        seenInGaps += Number((m[2] ?? '0').replace(/,/g, ''));
      }
      const shown = d.filter((l) => l.mark !== 'gap');
      expect(shown.length + lines).toBe(index.total);
      expect(shown.filter((l) => l.mark === 'seen').length + seenInGaps).toBe(checked);
      for (const l of shown.filter((x) => x.text.startsWith('-A '))) {
        const [, chain] = l.text.split(' ');
        const rule = index.chainLines(l.text.startsWith('-A KUBE-FIREWALL') ? 'filter' : 'nat', chain!).indexOf(l.text) - 1;
        expect([l.text, l.mark]).toEqual([l.text, expected.get(`${chain} ${rule}`)]);
      }
      expect(shown.filter((l) => l.mark === 'hit').map((l) => l.text)).toEqual([
        '-A KUBE-FIREWALL -s 198.18.0.140 -j DROP', '-A KUBE-SERVICES -d 10.96.0.5 -j KUBE-SVC-5',
        '-A KUBE-SERVICES -d 10.96.2.188 -j KUBE-SVC-700', '-A KUBE-SERVICES -d 10.96.4.176 -j KUBE-SVC-1200', '-A KUBE-SVC-700 -j KUBE-SEP-700b',
      ]);
      expect(shown.map((l) => l.text)).toContain(':KUBE-SVC-700 - [0:0]');
      expect(shown.map((l) => l.text)).not.toContain(':KUBE-SVC-701 - [0:0]');
    }
  });

  it.each(['text', 'live rules'] as const)('a digest after chains are replaced, added and deleted equals the digest of the same text indexed afresh (index of %s)', (from) => {
    const rules: string[] = ['*nat', ':PREROUTING ACCEPT [0:0]', ':KUBE-SERVICES - [0:0]'];
    for (let i = 0; i < 2000; i++) rules.push(`:KUBE-SVC-${1000 + i} - [0:0]`);
    rules.push('-A PREROUTING -j KUBE-SERVICES');
    for (let i = 0; i < 2000; i++) rules.push(`-A KUBE-SERVICES -d 10.96.${i >> 8}.${i & 255} -j KUBE-SVC-${1000 + i}`);
    for (let i = 0; i < 2000; i++) for (let k = 0; k <= i % 3; k++) rules.push(`-A KUBE-SVC-${1000 + i} -j KUBE-SEP-${i}-${k}`);
    rules.push('COMMIT');
    // The live rules come in the kernel's order (built-in chains, then user chains by name), as
    // the text above declares them; that index finds chains by searching that order.
    const index = from === 'text' ? new SaveIndex(rules.join('\n')) : SaveIndex.fromChains([{ table: 'nat', chains: chainsOf(rules) }]);
    const visits = [
      { table: 'nat', chain: 'PREROUTING', rule: 0, matched: true },
      { table: 'nat', chain: 'KUBE-SERVICES', rule: 1200, matched: true },
      { table: 'nat', chain: 'KUBE-SVC-2200', rule: 0, matched: false },
      { table: 'nat', chain: 'KUBE-SVC-2200', rule: 1, matched: true },
      { table: 'nat', chain: 'KUBE-SVC-1500', rule: 0, matched: true },
      { table: 'nat', chain: 'KUBE-SVC-0999', rule: 0, matched: true },
    ];
    const texts = (ix: SaveIndex) => ix.view(ix.marks(visits), 1000).map((l) => `${l.mark ?? ''} ${l.text}`);
    texts(index);   // lays the table out; the edits below keep that layout up to date
    const edits: Array<[string, string | null]> = [
      ['KUBE-SVC-2200', '-N KUBE-SVC-2200\n-A KUBE-SVC-2200 -j KUBE-SEP-a\n-A KUBE-SVC-2200 -j KUBE-SEP-b\n-A KUBE-SVC-2200 -j KUBE-SEP-c\n-A KUBE-SVC-2200 -j KUBE-SEP-d\n'],
      ['KUBE-SVC-0999', '-N KUBE-SVC-0999\n-A KUBE-SVC-0999 -j KUBE-SEP-x\n'],   // new, before every other service chain
      ['KUBE-SVC-1700', null],
      ['KUBE-SVC-9999', '-N KUBE-SVC-9999\n-A KUBE-SVC-9999 -j KUBE-SEP-y\n-A KUBE-SVC-9999 -j KUBE-SEP-z\n'],   // new, last
      ['KUBE-SVC-1000', null],
      ['KUBE-MARK-MASQ', '-N KUBE-MARK-MASQ\n-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n'],   // a fixed chain
      ['KUBE-SVC-1500', '-N KUBE-SVC-1500\n'],
    ];
    for (const [chain, text] of edits) {
      index.setChain('nat', chain, text);
      expect(texts(index), chain).toEqual(texts(new SaveIndex(index.text().join('\n'))));
    }
    expect(texts(index).some((l) => l.includes('-A KUBE-SVC-0999 -j KUBE-SEP-x'))).toBe(true);
    expect(index.chainLines('nat', 'KUBE-SVC-1700')).toEqual([]);
    expect(index.chainLines('nat', 'KUBE-SVC-9999')).toHaveLength(3);
    expect(index.chainLines('nat', 'PREROUTING')).toEqual([':PREROUTING ACCEPT [0:0]', '-A PREROUTING -j KUBE-SERVICES']);
  });

  it('replaces, adds and deletes single chains; a new user chain takes its place in name order', () => {
    const index = SaveIndex.fromRules([{ table: 'nat', rules: '-P PREROUTING ACCEPT\n-N KUBE-A\n-N KUBE-C\n-A PREROUTING -j KUBE-A\n-A KUBE-A -j KUBE-C\n-A KUBE-C -j DROP\n' }]);
    expect(index.view(new Map(), Infinity).map((l) => l.text)).toEqual(['*nat', ':PREROUTING ACCEPT [0:0]', ':KUBE-A - [0:0]', ':KUBE-C - [0:0]', '-A PREROUTING -j KUBE-A', '-A KUBE-A -j KUBE-C', '-A KUBE-C -j DROP', 'COMMIT']);
    expect(index.total).toBe(8);   // counted now, then kept up to date by each setChain
    index.setChain('nat', 'KUBE-B', '-N KUBE-B\n-A KUBE-B -j ACCEPT\n');
    index.setChain('nat', 'KUBE-A', '-N KUBE-A\n-A KUBE-A -j KUBE-B\n-A KUBE-A -j KUBE-C\n');
    index.setChain('nat', 'KUBE-C', null);
    expect(index.view(new Map(), Infinity).map((l) => l.text)).toEqual(['*nat', ':PREROUTING ACCEPT [0:0]', ':KUBE-A - [0:0]', ':KUBE-B - [0:0]', '-A PREROUTING -j KUBE-A', '-A KUBE-A -j KUBE-B', '-A KUBE-A -j KUBE-C', '-A KUBE-B -j ACCEPT', 'COMMIT']);
    expect(index.total).toBe(9);
    index.setChain('filter', 'KUBE-F', '-N KUBE-F\n-A KUBE-F -j DROP\n');   // a new table: *filter, the chain, its rule, COMMIT
    expect(index.total).toBe(13);
    expect(index.total).toBe(index.text().length);
    expect(index.chainLines('nat', 'KUBE-A')).toEqual([':KUBE-A - [0:0]', '-A KUBE-A -j KUBE-B', '-A KUBE-A -j KUBE-C']);
    expect(index.chainLines('nat', 'KUBE-C')).toEqual([]);
    const marks = index.marks([{ table: 'nat', chain: 'KUBE-A', rule: 1, matched: true }, { table: 'nat', chain: 'KUBE-A', rule: 9, matched: true }]);
    expect([0, 1, 2, 9].map((i) => marks.get('nat/KUBE-A', i))).toEqual([undefined, 'hit', undefined, undefined]);   // rule 9 does not exist
    expect(marks.size).toBe(1);
  });

  it('diffs rule lines as multisets and names the chains that changed', () => {
    const after = SAVE.replace('-A KUBE-SVC-A -j KUBE-SEP-A', '-A KUBE-SVC-A -j KUBE-SEP-C')
      .replace('-A KUBE-SERVICES -d 10.96.0.1 -j REJECT\n-A KUBE-SERVICES -d 10.96.0.2 -j REJECT', '-A KUBE-SERVICES -d 10.96.0.2 -j REJECT\n-A KUBE-SERVICES -d 10.96.0.1 -j REJECT');
    const d = diffLines(SAVE, after, isIptablesRule);
    expect(d).toEqual({ added: ['-A KUBE-SVC-A -j KUBE-SEP-C'], removed: ['-A KUBE-SVC-A -j KUBE-SEP-A'] });
    expect(chainsIn(d)).toEqual({ names: ['KUBE-SVC-A'], count: 1 });
    // Past the limit only the count is given.
    expect(chainsIn({ added: d.added, removed: [...d.removed, '-A KUBE-SEP-A -j DROP'] }, 1)).toEqual({ names: [], count: 2 });
    expect(diffLines('a\na\nb', 'a\nb\nb')).toEqual({ added: ['b'], removed: ['a'] });
    const big = diffLines('', Array.from({ length: 1000 }, (_, i) => `-A X ${i}`).join('\n'));
    expect(sampleDiff(big, 10)).toEqual({ added: big.added.slice(0, 10), removed: [], addedTotal: 1000, removedTotal: 0 });
  });

  it('indexes a dataplane\'s tables chain by chain exactly as from their iptables -S text', async () => {
    const dp = await Dataplane.create({ nodeIPs: [NODE.ip], seed: 1 });
    dp.apply(presetById('clusterip')!.yaml!, { nodeName: NODE.name });
    dp.iptablesRestore('*mangle\n:KUBE-EMPTY - [0:0]\nCOMMIT\n*raw\n-A PREROUTING -p udp --dport 53 -j NOTRACK\nCOMMIT\n', { noflush: true });
    const tables = ['raw', 'mangle', 'filter', 'nat'] as const;
    const byText = SaveIndex.fromRules(tables.map((table) => ({ table, rules: dp.iptablesRules(table) })));
    const byChain = SaveIndex.fromChains(tables.map((table) => ({ table, chains: dp.iptablesChains(table) })));
    expect(byChain.text()).toEqual(byText.text());
    expect(byChain.text().join('\n')).toContain(':KUBE-EMPTY - [0:0]');
    expect(byChain.text()).toContain('-A PREROUTING -p udp -m udp --dport 53 -j NOTRACK');
    expect(byChain.total).toBe(byText.total);
  });

  it('gives a first load\'s diff (everything added) without listing every line', () => {
    const index = SaveIndex.fromRules([
      { table: 'filter', rules: '-P INPUT ACCEPT\n-N KUBE-EMPTY\n-N KUBE-SERVICES\n-A INPUT -j KUBE-SERVICES\n-A KUBE-SERVICES -d 10.96.0.1/32 -j REJECT\n' },
      { table: 'nat', rules: '-P PREROUTING ACCEPT\n-N KUBE-SERVICES\n-N KUBE-SVC-A\n-A PREROUTING -j KUBE-SERVICES\n-A KUBE-SERVICES -d 10.96.0.80/32 -j KUBE-SVC-A\n-A KUBE-SVC-A -j KUBE-SEP-A\n' },
    ]);
    const naive = diffLines('', index.text().join('\n'), isIptablesRule);
    for (const limit of [400, 3]) {
      expect(index.addedAll(limit)).toEqual({ diff: sampleDiff(naive, limit), chains: chainsIn(naive) });
    }
    expect(index.addedAll().chains).toEqual({ names: ['INPUT', 'KUBE-EMPTY', 'KUBE-SERVICES', 'KUBE-SVC-A', 'PREROUTING'], count: 5 });
    expect(index.addedAll(400, 5).chains.names).toHaveLength(5);
    expect(index.addedAll(400, 4).chains).toEqual({ names: [], count: 5 });
    // Chains read from text in no particular order, one in both tables.
    const unsorted = SaveIndex.fromRules([
      { table: 'filter', rules: '-N KUBE-Z\n-N KUBE-B\n-P OUTPUT ACCEPT\n-A OUTPUT -j KUBE-Z\n' },
      { table: 'nat', rules: '-N KUBE-Z\n-N KUBE-A\n-P OUTPUT ACCEPT\n-A OUTPUT -j KUBE-A\n' },
    ]);
    const all = diffLines('', unsorted.text().join('\n'), isIptablesRule);
    expect(unsorted.addedAll()).toEqual({ diff: sampleDiff(all, 400), chains: chainsIn(all) });
    expect(unsorted.addedAll().chains.names).toEqual(['KUBE-A', 'KUBE-B', 'KUBE-Z', 'OUTPUT']);
  });

  it('marks IPVS lines by what they contain', () => {
    const m = markContaining('TCP  10.96.0.80:80 rr\n  -> 10.244.1.11:8080 Masq\n  -> 10.244.2.12:8080 Masq', ['10.96.0.80:80', '-> 10.244.2.12:8080']);
    expect(m.map((l) => l.mark ?? '')).toEqual(['hit', '', 'hit']);
  });
});

describe('trace steps', () => {
  const step = (chain: string, i: number, matched = false): TraceStepView => ({ where: `PREROUTING nat ${chain} #${i}`, text: `rule ${i}`, matched });
  const chainOf = (s: TraceStepView) => s.where.replace(/ #\d+$/, '');

  it('collapses a long run of skipped rules in one chain, keeping its ends and every match', () => {
    const steps = [step('PREROUTING', 0, true), ...Array.from({ length: 100 }, (_, i) => step('KUBE-SERVICES', i)), step('KUBE-SERVICES', 100, true), step('KUBE-SVC-A', 0)];
    const compact = (s: TraceStepView[]) => compactSteps(s, (a, b) => chainOf(a) === chainOf(b), (x) => x, chainOf);
    const c = compact(steps);
    expect(c.map((s) => s.text)).toEqual(['rule 0', 'rule 0', 'rule 1', '… 96 rules that do not match', 'rule 98', 'rule 99', 'rule 100', 'rule 0']);
    expect(c[3]!.where).toBe('PREROUTING nat KUBE-SERVICES');
    const short = [step('X', 0), step('X', 1), step('X', 2), step('Y', 0, true)];
    expect(compact(short)).toEqual(short);
  });
});

describe('packets and outcomes', () => {
  it('gives fresh source ports that continue across bursts, wrap within 1024–65535 and skip the traced port', () => {
    const a = freshPorts(3, 20000, 20002);
    expect(a.ports).toEqual([20001, 20003, 20004]);
    const b = freshPorts(3, a.next, 0);
    expect(b.ports).toEqual([20005, 20006, 20007]);
    expect(freshPorts(3, 65534, 0).ports).toEqual([65535, 1024, 1025]);
  });

  it('pairs expected and measured outcomes for the chart, unexpected ones last', () => {
    const exp = mergeOutcomes([
      { key: outcomeKey('FORWARD', 'none', '10.0.0.1:80'), verdict: 'FORWARD', reason: 'none', to: '10.0.0.1:80', masq: false, probability: 0.25 },
      { key: outcomeKey('FORWARD', 'none', '10.0.0.2:80'), verdict: 'FORWARD', reason: 'none', to: '10.0.0.2:80', masq: false, probability: 0.5 },
      { key: outcomeKey('FORWARD', 'none', '10.0.0.1:80'), verdict: 'FORWARD', reason: 'none', to: '10.0.0.1:80', masq: true, probability: 0.25 },
    ]);
    expect(exp.map((o) => [o.key, o.probability])).toEqual([['FORWARD → 10.0.0.1:80', 0.5], ['FORWARD → 10.0.0.2:80', 0.5]]);
    const measured = tally(['FORWARD → 10.0.0.2:80', 'DROP (no_route)', 'FORWARD → 10.0.0.2:80', 'FORWARD → 10.0.0.1:80']);
    expect(chartRows(exp, measured)).toEqual([
      { key: 'FORWARD → 10.0.0.1:80', expected: 0.5, measured: 0.25, count: 1 },
      { key: 'FORWARD → 10.0.0.2:80', expected: 0.5, measured: 0.5, count: 2 },
      { key: 'DROP (no_route)', expected: 0, measured: 0.25, count: 1 },
    ]);
  });

  it('resolves a Service target to its ClusterIP or, for NodePort, this node', () => {
    const entries = [{ id: 'default/shop:http', clusterIP: '10.96.0.90', port: 80, protocol: 'tcp', nodePort: 30080 }];
    const spec = presetById('nodeport-local')!.packet;
    expect(resolveTarget({ ...spec, to: 'service' }, entries)).toEqual({ dst: '10.96.0.90', dport: 80, proto: 'tcp' });
    expect(resolveTarget({ ...spec, to: 'nodeport' }, entries)).toEqual({ dst: NODE.ip, dport: 30080, proto: 'tcp' });
    expect(resolveTarget({ ...spec, to: 'vip' }, entries)).toBeNull();
    expect(resolveTarget({ ...spec, service: 'default/none:http' }, entries)).toBeNull();
    expect(toWire({ ...spec, from: 'node', src: ' 192.168.49.2 ' })).toMatchObject({ src: '192.168.49.2', local: true });
    expect(toWire(spec).local).toBe(false);
  });

  it('compare: marks the columns and cells that differ from the first mode', () => {
    const o = (key: string, probability: number) => ({ key, verdict: 'FORWARD', reason: 'none', masq: false, probability });
    const even = [o('A', 0.5), o('B', 0.5)];
    const cols = [
      { label: 'iptables', outcomes: even, measured: { sent: 100, counts: [{ key: 'A', count: 52 }, { key: 'B', count: 48 }] } },
      { label: 'direct', outcomes: even, measured: { sent: 100, counts: [{ key: 'A', count: 47 }, { key: 'B', count: 53 }] } },
      { label: 'ipvs sh', outcomes: [o('A', 1)], measured: { sent: 100, counts: [{ key: 'A', count: 100 }] } },
    ];
    const d = compareDiffs(cols);
    expect(d.keys).toEqual(['A', 'B']);
    expect(d.columns).toEqual(['ipvs sh']);
    expect([0, 1, 2].map((i) => d.cell(i, 'B').differs)).toEqual([false, false, true]);
    expect(d.cell(2, 'B')).toMatchObject({ e: 0, m: 0 });
    expect(d.row('A') && d.row('B')).toBe(true);
    expect(compareDiffs(cols.slice(0, 2)).row('A')).toBe(false);
    // Same expectation, measured 30 points apart: a difference too.
    const skew = [cols[0]!, { ...cols[1]!, measured: { sent: 100, counts: [{ key: 'A', count: 80 }, { key: 'B', count: 20 }] } }];
    expect(compareDiffs(skew).columns).toEqual(['direct']);
  });
});

/** The chains of iptables-save lines (one table), as the live rules hand them to SaveIndex.fromChains. */
function chainsOf(lines: string[]): Array<{ name: string; policy: string | null; rules: string[] }> {
  const out: Array<{ name: string; policy: string | null; rules: string[] }> = [];
  const byName = new Map<string, string[]>();
  for (const l of lines) {
    if (l.startsWith(':')) {
      const [name, policy] = l.slice(1).split(' ');
      const rules: string[] = [];
      byName.set(name!, rules);
      out.push({ name: name!, policy: policy === '-' ? null : policy!, rules });
    } else if (l.startsWith('-A ')) {
      byName.get(l.split(' ')[1]!)!.push(l);
    }
  }
  return out;
}
