// Rewriting large chains (kube-proxy's partial sync rewrites KUBE-SERVICES whole): lines equal to
// the chain's previous rules are compared with the text they came from and replayed without
// per-rule work (draft.ts ChainDraft.replay(), ruleset.ts ChainSource). These tests check that
// the result is exactly what the text says — rule lists, sharing, touched sets, line numbers in
// errors, atomicity — whatever mix of replayed, inserted, skipped and edited rules a restore has.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { parseRestore, renderRules, renderSave, type Ruleset } from '../../../host-node/netfilter/index.js';

function ok(text: string, opts: Parameters<typeof parseRestore>[1] = {}): { ruleset: Ruleset; touched: Set<string> } {
  const r = parseRestore(text, opts);
  if (!r.ok) throw new Error(r.error.message);
  return r;
}

const svcRule = (i: number): string =>
  `-m comment --comment "ns/svc-${i}:http cluster IP" -m tcp -p tcp -d 198.18.${i >> 8}.${i & 255} --dport 80 -j KUBE-SVC-${i % 3}`;
const npRule = (i: number): string => `-m comment --comment ns/svc-${i}:http -m tcp -p tcp --dport ${30000 + i} -j KUBE-SVC-${i % 3}`;

/** nat text with KUBE-SERVICES holding `svcs` and KUBE-NODEPORTS every 2nd of them, interleaved
 *  the way kube-proxy writes them; `extra` lines go before COMMIT. */
function natText(svcs: readonly number[], extra: readonly string[] = [], declareSvcChains = true): string {
  const lines = ['*nat', ':KUBE-SERVICES - [0:0]', ':KUBE-NODEPORTS - [0:0]'];
  if (declareSvcChains) for (let k = 0; k < 3; k++) lines.push(`:KUBE-SVC-${k} - [0:0]`);
  for (const i of svcs) {
    lines.push(`-A KUBE-SERVICES ${svcRule(i)}`);
    if (i % 2 === 0) lines.push(`-A KUBE-NODEPORTS ${npRule(i)}`);
  }
  lines.push(...extra, 'COMMIT', '');
  return lines.join('\n');
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, k) => from + k);
const SVCS = range(0, 300);

/** `iptables -S CHAIN` of a chain holding `rules`, parsed from nothing (no earlier chain to
 *  compare with, so nothing is replayed). */
function listing(chain: string, rules: readonly string[]): string {
  const lines = ['*nat', `:${chain} - [0:0]`, ':KUBE-SVC-0 - [0:0]', ':KUBE-SVC-1 - [0:0]', ':KUBE-SVC-2 - [0:0]'];
  for (const r of rules) lines.push(`-A ${chain} ${r}`);
  lines.push('COMMIT', '');
  return renderRules(ok(lines.join('\n')).ruleset, 'nat', chain);
}

function base(): Ruleset {
  return ok(natText(SVCS)).ruleset;
}

describe('rewriting large chains', () => {
  it('a chain rewritten by every restore does not keep its earlier versions alive', async () => {
    // Each rewrite remembers where its list still equals the one before (the common ends): the
    // record must not hold that earlier list, or KUBE-SERVICES, rewritten at every sync, keeps all
    // its versions for good (a proxy's memory grew with every sync).
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const svcs = Array.from({ length: 300 }, (_, i) => i);
    let rs = ok(natText(svcs)).ruleset;
    rs = ok(natText([...svcs, 1000]), { noflush: true, base: rs }).ruleset;
    const first = new WeakRef(rs.table('nat')!.chain('KUBE-SERVICES')!.rules);
    for (let k = 1; k <= 6; k++) rs = ok(natText([...svcs, 1000 + k]), { noflush: true, base: rs }).ruleset;
    expect(rs.table('nat')!.chain('KUBE-SERVICES')!.rules).toHaveLength(301);
    await new Promise((r) => setImmediate(r));   // weak references hold their targets until the job ends
    gc();
    expect(first.deref()).toBeUndefined();
  });

  it('an unchanged rewrite touches nothing and keeps the same chain objects', () => {
    const b = base();
    const r = ok(natText(SVCS, [], false), { noflush: true, base: b });
    expect([...r.touched]).toEqual([]);
    expect(r.ruleset.table('nat')!.chain('KUBE-SERVICES')).toBe(b.table('nat')!.chain('KUBE-SERVICES'));
    expect(r.ruleset.table('nat')!.chain('KUBE-NODEPORTS')).toBe(b.table('nat')!.chain('KUBE-NODEPORTS'));
    expect(renderSave(r.ruleset)).toBe(renderSave(b));
  });

  it('one service added in the middle and one removed: only those rules differ, the rest is shared', () => {
    const b = base();
    const svcs = [...range(0, 150), 1000, ...range(150, 200), ...range(201, 300)];
    const r = ok(natText(svcs, [], false), { noflush: true, base: b });
    expect([...r.touched].sort()).toEqual(['nat/KUBE-NODEPORTS', 'nat/KUBE-SERVICES']);
    const got = r.ruleset.table('nat')!.chain('KUBE-SERVICES')!.rules;
    const old = b.table('nat')!.chain('KUBE-SERVICES')!.rules;
    expect(got).toHaveLength(300);
    expect(got[149]).toBe(old[149]);
    expect(got[151]).toBe(old[150]);
    expect(got[299]).toBe(old[299]);
    expect(renderRules(r.ruleset, 'nat', 'KUBE-SERVICES')).toBe(listing('KUBE-SERVICES', svcs.map(svcRule)));
    expect(renderRules(r.ruleset, 'nat', 'KUBE-NODEPORTS')).toBe(listing('KUBE-NODEPORTS', svcs.filter((i) => i % 2 === 0).map(npRule)));
    // The same text parsed from nothing gives the same tables.
    expect(renderSave(r.ruleset)).toBe(renderSave(ok(natText(svcs)).ruleset));
  });

  it('successive partial restores build on each other (the source follows the newest text)', () => {
    let rs = base();
    let svcs = SVCS;
    for (let step = 0; step < 4; step++) {
      svcs = [...svcs.slice(0, 40 * step + 10), 2000 + step, ...svcs.slice(40 * step + 10)];
      rs = ok(natText(svcs, [], false), { noflush: true, base: rs }).ruleset;
      expect(renderRules(rs, 'nat', 'KUBE-SERVICES')).toBe(listing('KUBE-SERVICES', svcs.map(svcRule)));
    }
    const again = ok(natText(svcs, [], false), { noflush: true, base: rs });
    expect([...again.touched]).toEqual([]);
  });

  it('commands after a replayed run edit the chain as written', () => {
    const b = base();
    const extra = [
      `-I KUBE-SERVICES 5 ${svcRule(5000)}`,
      `-D KUBE-SERVICES ${svcRule(10)}`,
      `-R KUBE-SERVICES 100 ${svcRule(6000)}`,
      '-D KUBE-SERVICES 1',
      `-A KUBE-SERVICES ${svcRule(7000)}`,
    ];
    const r = ok(natText(SVCS, extra, false), { noflush: true, base: b });
    const want = SVCS.map(svcRule);
    want.splice(4, 0, svcRule(5000));
    want.splice(want.indexOf(svcRule(10)), 1);
    want[99] = svcRule(6000);
    want.shift();
    want.push(svcRule(7000));
    expect(renderRules(r.ruleset, 'nat', 'KUBE-SERVICES')).toBe(listing('KUBE-SERVICES', want));
    expect(r.touched.has('nat/KUBE-SERVICES')).toBe(true);
    // And the next rewrite to the plain list compares against the edited chain correctly.
    const back = ok(natText(SVCS, [], false), { noflush: true, base: r.ruleset });
    expect(renderRules(back.ruleset, 'nat', 'KUBE-SERVICES')).toBe(listing('KUBE-SERVICES', SVCS.map(svcRule)));
    expect(back.touched.has('nat/KUBE-SERVICES')).toBe(true);
  });

  it('a chain declared twice in one restore ends with its second list', () => {
    const b = base();
    const text = natText(SVCS, [':KUBE-SERVICES - [0:0]', ...range(0, 70).map((i) => `-A KUBE-SERVICES ${svcRule(i)}`)], false);
    const r = ok(text, { noflush: true, base: b });
    expect(renderRules(r.ruleset, 'nat', 'KUBE-SERVICES')).toBe(listing('KUBE-SERVICES', range(0, 70).map(svcRule)));
  });

  it('an error after a replayed run names its own line and word, and nothing is applied', () => {
    const b = base();
    const good = natText(SVCS, [], false).split('\n');
    // Line 200 (1-based) jumps to a chain that does not exist.
    const at = 199;
    good.splice(at, 0, '-A KUBE-SERVICES -m tcp -p tcp -d 198.18.9.9 --dport 80 -j KUBE-SVC-MISSING');
    const r = parseRestore(good.join('\n'), { noflush: true, base: b });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.line).toBe(at + 1);
    expect(r.error.word).toBe('KUBE-SVC-MISSING');
    const bad = natText(SVCS, [], false).split('\n');
    bad.splice(at, 0, '-A KUBE-SERVICES -m tcp -p tcp --dprot 80 -j KUBE-SVC-1');
    const r2 = parseRestore(bad.join('\n'), { noflush: true, base: b });
    expect(r2.ok).toBe(false);
    if (!r2.ok) {
      expect(r2.error.line).toBe(at + 1);
      expect(r2.error.word).toBe('--dprot');
    }
    expect(renderSave(b)).toBe(renderSave(base()));
  });

  describe('stretches written in one block (each chain\'s lines together)', () => {
    // KUBE-SERVICES' lines in one block, then KUBE-NODEPORTS': a rewrite repeats long stretches of
    // the old text byte for byte, which are matched in doubling spans (restore.ts extendRun()).
    const grouped = (svcLines: readonly string[], extraDecl: readonly string[] = []): string => [
      '*nat', ':KUBE-SERVICES - [0:0]', ':KUBE-NODEPORTS - [0:0]', ...extraDecl,
      ...svcLines.map((l) => `-A KUBE-SERVICES ${l}`),
      ...SVCS.filter((i) => i % 2 === 0).map((i) => `-A KUBE-NODEPORTS ${npRule(i)}`),
      'COMMIT', '',
    ].join('\n');
    const declared = [':KUBE-SVC-0 - [0:0]', ':KUBE-SVC-1 - [0:0]', ':KUBE-SVC-2 - [0:0]'];
    const groupedBase = (): Ruleset => ok(grouped(SVCS.map(svcRule), declared)).ruleset;

    it('inserts, removals, a longer line, odd spacing and CRLF inside stretches give what the text says', () => {
      const b = groupedBase();
      const lines = SVCS.map(svcRule);
      lines.splice(137, 0, svcRule(3000));                  // a new rule inside a stretch
      lines.splice(251, 1);                                  // a rule gone
      lines[88] = `${lines[88]}2`;                           // `-j KUBE-SVC-1` now `-j KUBE-SVC-12`: the old text is its prefix
      expect(lines[88].endsWith('-j KUBE-SVC-12')).toBe(true);
      let text = grouped(lines, [':KUBE-SVC-12 - [0:0]']);
      text = text.replace(`-A KUBE-SERVICES ${svcRule(60)}\n`, `-A  KUBE-SERVICES  ${svcRule(60)}\n`);
      text = text.replace(`-A KUBE-SERVICES ${svcRule(200)}\n`, `-A KUBE-SERVICES ${svcRule(200)}\r\n`);
      const r = ok(text, { noflush: true, base: b });
      const fresh = ok(grouped(lines, [...declared, ':KUBE-SVC-12 - [0:0]'])).ruleset;
      expect(renderRules(r.ruleset, 'nat', 'KUBE-SERVICES')).toBe(renderRules(fresh, 'nat', 'KUBE-SERVICES'));
      expect(renderRules(r.ruleset, 'nat', 'KUBE-SERVICES').split('\n')).toHaveLength(1 + 300 + 1);
      for (const c of ['KUBE-NODEPORTS', 'KUBE-SVC-12']) expect(renderRules(r.ruleset, 'nat', c)).toBe(renderRules(fresh, 'nat', c));
      expect([...r.touched].sort()).toEqual(['nat/KUBE-SERVICES', 'nat/KUBE-SVC-12']);
      const got = r.ruleset.table('nat')!.chain('KUBE-SERVICES')!.rules;
      const old = b.table('nat')!.chain('KUBE-SERVICES')!.rules;
      expect(got[10]).toBe(old[10]);
      expect(got[300 - 1]).toBe(old[299]);
      // The next rewrite compares against this text's places.
      const back = ok(grouped(SVCS.map(svcRule)), { noflush: true, base: r.ruleset });
      expect(renderRules(back.ruleset, 'nat', 'KUBE-SERVICES')).toBe(listing('KUBE-SERVICES', SVCS.map(svcRule)));
    });

    it('a chain first written scattered (a full restore) and then rewritten in one block', () => {
      // Every KUBE-SERVICES line followed by that service's own rule, as a full sync writes it.
      const scattered = ['*nat', ':KUBE-SERVICES - [0:0]', ':KUBE-NODEPORTS - [0:0]', ...declared];
      for (const i of SVCS) scattered.push(`-A KUBE-SERVICES ${svcRule(i)}`, `-A KUBE-SVC-${i % 3} -m comment --comment svc-${i} -j RETURN`);
      scattered.push('COMMIT', '');
      const b = ok(scattered.join('\n')).ruleset;
      const lines = SVCS.map(svcRule);
      lines.splice(211, 0, svcRule(4000));
      lines.splice(20, 2);
      const r = ok(grouped(lines), { noflush: true, base: b });
      const fresh = ok(grouped(lines, declared)).ruleset;
      expect(renderRules(r.ruleset, 'nat', 'KUBE-SERVICES')).toBe(renderRules(fresh, 'nat', 'KUBE-SERVICES'));
      const got = r.ruleset.table('nat')!.chain('KUBE-SERVICES')!.rules;
      const old = b.table('nat')!.chain('KUBE-SERVICES')!.rules;
      expect(got[5]).toBe(old[5]);
      expect(got[150]).toBe(old[152]);
      expect(got[298]).toBe(old[299]);
      expect(renderRules(r.ruleset, 'nat', 'KUBE-SVC-1')).toBe(renderRules(b, 'nat', 'KUBE-SVC-1'));
    });

    it('an error after a long stretch names its own line', () => {
      const b = groupedBase();
      const lines = SVCS.map(svcRule);
      lines[270] = '-m tcp -p tcp --dprot 80 -j KUBE-SVC-1';
      const r = parseRestore(grouped(lines), { noflush: true, base: b });
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.error.line).toBe(3 + 270 + 1);
        expect(r.error.word).toBe('--dprot');
      }
      const lines2 = SVCS.map(svcRule);
      lines2.splice(290, 0, '-m tcp -p tcp -d 198.18.9.9 --dport 80 -j KUBE-SVC-MISSING');
      const r2 = parseRestore(grouped(lines2), { noflush: true, base: b });
      expect(r2.ok).toBe(false);
      if (!r2.ok) expect([r2.error.line, r2.error.word]).toEqual([3 + 290 + 1, 'KUBE-SVC-MISSING']);
    });
  });

  it('-X of a chain still named by a replayed rule is refused', () => {
    const b = base();
    const r = parseRestore(natText(SVCS, ['-X KUBE-SVC-1'], false), { noflush: true, base: b });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.word).toBe('KUBE-SVC-1');
  });

  it('counters given with --counters are kept and compared, not replayed over', () => {
    const withCounters = natText(SVCS).replace(`-A KUBE-SERVICES ${svcRule(50)}`, `[7:700] -A KUBE-SERVICES ${svcRule(50)}`);
    const b = ok(withCounters, { counters: true }).ruleset;
    expect(renderSave(b, { counters: true })).toContain(`[7:700] -A KUBE-SERVICES ${svcRule(50)}`);
    const r = ok(natText(SVCS, [], false), { noflush: true, base: b, counters: true });
    expect(r.touched.has('nat/KUBE-SERVICES')).toBe(true);
    expect(renderSave(r.ruleset, { counters: true })).toContain(`[0:0] -A KUBE-SERVICES ${svcRule(50)}`);
    expect(renderRules(r.ruleset, 'nat', 'KUBE-SERVICES')).toBe(listing('KUBE-SERVICES', SVCS.map(svcRule)));
  });
});
