// chain-memo.ts and the core's iptStagePatch: a large chain recompiled after edits (inserts,
// deletes, replacements at the start, middle and end) is sent as a patch, and the core's chain
// then equals, word for word, the chain a fresh core builds from the whole text; rejected compiles
// and deleted chains leave no stale memory behind; the core refuses patches it cannot apply.
import { describe, it, expect } from 'vitest';
import { parseRestore } from '../../../host-node/netfilter/restore';
import { loadRestore, type CompiledRestore } from '../../../host-node/netfilter/compile';
import type { Ruleset } from '../../../host-node/netfilter/ruleset';
import { ChainMemo, MEMO_MIN_RULES } from '../../../host-node/netfilter/chain-memo';
import { Bench, tcp, V } from '../../assembly/netfilter/harness';

function parse(text: string, base?: Ruleset, noflush = false) {
  const r = parseRestore(text, { base, noflush });
  if (!r.ok) throw new Error(r.error.message);
  return r;
}

const TARGETS = 8;

function ruleLine(k: number): string {
  return `-A KUBE-SERVICES -m comment --comment "svc${k}" -m tcp -p tcp -d 172.30.${k >> 8}.${k & 255} --dport ${80 + (k % 7)} -j T${k % TARGETS}`;
}

/** KUBE-SERVICES with `rules`, hooked from PREROUTING; T<k> marks the packet with k + 1 and accepts. */
function table(rules: number[], extra = ''): string {
  const decl = [':PREROUTING ACCEPT [0:0]', ':KUBE-SERVICES - [0:0]', extra];
  for (let t = 0; t < TARGETS; t++) decl.push(`:T${t} - [0:0]`, `-A T${t} -j MARK --set-xmark ${t + 1}/0xffffffff`);
  return ['*nat', ...decl.filter(Boolean), '-A PREROUTING -j KUBE-SERVICES', ...rules.map(ruleLine), 'COMMIT', ''].join('\n');
}

/** Parses, compiles and loads `text` into `b`; returns the compiled restore (accepted). */
function load(b: Bench, text: string, noflush = false): CompiledRestore {
  const r = parse(text, b.rulesets[4], noflush);
  const out = b.compiler.compile(r.ruleset, r.touched);
  loadRestore(b.ipt, b.compiler, out, b.buffer);
  b.rulesets[4] = r.ruleset;
  return out;
}

/** The core's live chain as the walk reads it: rule records (with dispatch segments) and ops. */
function shape(b: Bench, name: string): { rules: number; recs: Buffer; ops: Buffer } {
  const id = b.compiler.chainId(4, 'nat', name)!;
  const n = b.x.iptRuleCount!(id);
  const words = b.x.chainOpWords!(id);
  const mem = Buffer.from(b.core.memory.buffer);
  const recs = b.x.chainRules!(id) >>> 0, ops = b.x.chainOps!(id) >>> 0;
  return { rules: n, recs: Buffer.from(mem.subarray(recs, recs + 16 * n)), ops: Buffer.from(mem.subarray(ops, ops + 4 * words)) };
}

const staged = (out: CompiledRestore, name: string) => out.stage.find((s) => s.info.name === name);

/** The mark a SYN to svc k's address and port gets (its T chain's), or 0. */
function markOf(b: Bench, k: number): number {
  const s = b.send(tcp('198.18.0.1', `172.30.${k >> 8}.${k & 255}`, 40000, 80 + (k % 7)));
  expect(s.verdict).toBe(V.PASS);
  return s.mark;
}

describe('chain memo: incremental recompiles of a large chain are patches', () => {
  it('equals a fresh load after every kind of edit, and packets find their rules', () => {
    const b = new Bench();
    let rules = Array.from({ length: 300 }, (_, k) => k);
    load(b, table(rules));
    let next = 1000;
    const edits: ((a: number[]) => number[])[] = [
      (a) => [next++, ...a],                                // insert at the start
      (a) => [...a, next++],                                // append
      (a) => [...a.slice(0, 150), next++, ...a.slice(150)], // insert in the middle
      (a) => a.slice(1),                                    // delete the first
      (a) => a.slice(0, -1),                                // delete the last
      (a) => [...a.slice(0, 40), ...a.slice(41)],           // delete in the middle
      (a) => [...a.slice(0, 99), next++, ...a.slice(100)],  // replace one
      (a) => [...a.slice(0, 10), ...a.slice(200, 210), ...a.slice(10, 200), ...a.slice(210)], // move a block
      (a) => a,                                             // unchanged rewrite
    ];
    for (const edit of edits) {
      const before = rules;
      rules = edit(rules);
      // A full rewrite of the table, as kube-proxy does with KUBE-SERVICES.
      const out = load(b, table(rules));
      const s = staged(out, 'KUBE-SERVICES');
      if (rules === before) {
        expect(s).toBeUndefined(); // the unchanged rewrite touches nothing
        continue;
      }
      expect(s!.head, 'sent as a patch').toBeGreaterThanOrEqual(0);
      expect(s!.head + s!.tail).toBeGreaterThan(0);
      const fresh = new Bench();
      load(fresh, table(rules));
      const got = shape(b, 'KUBE-SERVICES'), want = shape(fresh, 'KUBE-SERVICES');
      expect(got.rules).toBe(rules.length);
      expect(got.recs.equals(want.recs)).toBe(true);
      expect(got.ops.equals(want.ops)).toBe(true);
    }
    for (const k of [rules[0]!, rules[150]!, rules.at(-1)!, 1002]) expect(markOf(b, k)).toBe((k % TARGETS) + 1);
  });

  it('keeps the state of kept nth and limit rules in slots of their own, as a fresh load does', () => {
    const stateful = (rules: number[]) => table(rules).split('\n').map((l, i) => (
      !l.startsWith('-A KUBE-SERVICES') || i % 9 !== 0 ? l
        : i % 2 === 0 ? `-A KUBE-SERVICES -m statistic --mode nth --every 3 --packet ${i % 3} -j T${i % TARGETS}`
          : `-A KUBE-SERVICES -m limit --limit 2/sec --limit-burst 1 -j T${i % TARGETS}`)).join('\n');
    const b = new Bench();
    let rules = Array.from({ length: 120 }, (_, k) => k);
    load(b, stateful(rules));
    rules = [...rules.slice(0, 60), 5000, ...rules.slice(62)];   // one in, two out, in the middle
    const out = load(b, stateful(rules));
    expect(staged(out, 'KUBE-SERVICES')!.head).toBeGreaterThan(0);
    const fresh = new Bench();
    load(fresh, stateful(rules));
    const got = shape(b, 'KUBE-SERVICES'), want = shape(fresh, 'KUBE-SERVICES');
    expect(got.recs.equals(want.recs) && got.ops.equals(want.ops)).toBe(true);
    // Counters of the nth rules and the limit's bucket start afresh in both: the same packets get the same marks.
    for (let k = 0; k < 7; k++) expect(markOf(b, rules[k * 15]!), `packet ${k}`).toBe(markOf(fresh, rules[k * 15]!));
  });

  it('forgets a rejected compile and a deleted chain', () => {
    const b = new Bench();
    const base = Array.from({ length: 100 }, (_, k) => k);
    load(b, table(base));
    // A compile never loaded: the next patch must start from the accepted version.
    const rejected = parse(table([...base.slice(0, 50), 5000, ...base.slice(50)]), b.rulesets[4]);
    b.compiler.compile(rejected.ruleset, rejected.touched).reject();
    const rules = [...base.slice(0, 60), 6000, ...base.slice(60)];
    const out = load(b, table(rules));
    expect(staged(out, 'KUBE-SERVICES')).toMatchObject({ head: 60, tail: 40 });
    const fresh = new Bench();
    load(fresh, table(rules));
    expect(shape(b, 'KUBE-SERVICES').ops.equals(shape(fresh, 'KUBE-SERVICES').ops)).toBe(true);

    // Delete the chain and the chains it jumps to, create the targets again (they get other ids),
    // then the chain with the very same rules: it must be sent whole, jumping to the new ids.
    const drop = ['-D PREROUTING -j KUBE-SERVICES', '-F KUBE-SERVICES', '-X KUBE-SERVICES'];
    for (let t = 0; t < TARGETS; t++) drop.push(`-F T${t}`, `-X T${t}`);
    load(b, ['*nat', ...drop, 'COMMIT', ''].join('\n'), true);
    load(b, '*nat\n:FILLER - [0:0]\nCOMMIT\n', true); // takes a freed id
    const back = load(b, table(rules, ':FILLER - [0:0]'), true);
    expect(staged(back, 'KUBE-SERVICES')!.head).toBe(-1);
    for (const k of [0, 6000, 99]) expect(markOf(b, k)).toBe((k % TARGETS) + 1);
  });

  it('keeps entries only once accepted, and forgets dropped chains', () => {
    const parsed = parse(table(Array.from({ length: MEMO_MIN_RULES + 10 }, (_, k) => k)));
    const rules = parsed.ruleset.table('nat')!.chain('KUBE-SERVICES')!.rules;
    const m = new ChainMemo();
    m.keep(7, rules, true);
    expect(m.reuse(7, rules)).toBeNull(); // not accepted yet
    m.accept();
    expect(m.reuse(7, rules)).toMatchObject({ prefix: rules.length, suffix: 0 });
    m.keep(7, rules.slice(1), true);
    m.reject();
    expect(m.reuse(7, rules)).toMatchObject({ prefix: rules.length }); // the rejected version is gone
    m.drop(7);
    m.accept();
    expect(m.reuse(7, rules)).toBeNull();
    m.keep(8, rules, false); // names recent lists: never kept
    m.keep(9, rules.slice(0, MEMO_MIN_RULES - 1), true); // too small
    m.accept();
    expect(m.reuse(8, rules)).toBeNull();
    expect(m.reuse(9, rules.slice(0, MEMO_MIN_RULES - 1))).toBeNull();
  });
});

describe('iptStagePatch refuses what it cannot apply, changing nothing', () => {
  /** A one-rule blob (`-j ACCEPT`, or an op the core does not know) for a nat chain. */
  function blob(bad = false): Uint8Array {
    const b = new Uint8Array(32 + 12 + 4);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, 0x43545049, true);
    dv.setUint16(4, 1, true);
    b[6] = 4;
    b[7] = 2;
    dv.setUint32(12, 1, true);
    dv.setUint32(16, 1, true);
    dv.setUint32(32, 0, true);
    dv.setUint32(36, 0, true);
    dv.setUint32(40, 1, true);
    dv.setUint32(44, (bad ? 63 : 64) | (1 << 16), true); // ACCEPT, or kind 63 (none)
    return b;
  }

  it('names the rule at fault from the chain start, and refuses missing chains, bad ends and double stages', () => {
    const b = new Bench();
    const rules = Array.from({ length: 100 }, (_, k) => k);
    load(b, table(rules));
    const id = b.compiler.chainId(4, 'nat', 'KUBE-SERVICES')!;
    const before = shape(b, 'KUBE-SERVICES');
    const put = (bytes: Uint8Array) => { const p = b.buffer(bytes.length); new Uint8Array(b.core.memory.buffer).set(bytes, p); return p; };
    const patch = (chain: number, bytes: Uint8Array, head: number, tail: number) => b.x.iptStagePatch!(chain, put(bytes), bytes.length, head, tail);
    const decode = (code: number) => ({ kind: -code & 63, rule: (-code >>> 12) - 1 });

    const bad = patch(id, blob(true), 30, 60);
    expect(bad).toBeLessThan(0);
    expect(decode(bad).rule).toBe(30);      // the blob's first rule is the chain's 31st
    expect(patch(id, blob(), 60, 41)).toBeLessThan(0);        // head + tail > rules
    expect(patch(id + 500, blob(), 0, 0)).toBeLessThan(0);    // no such chain
    expect(patch(id, blob(), 50, 50)).toBe(0);
    expect(patch(id, blob(), 50, 50)).toBeLessThan(0);        // staged already
    b.x.iptAbort!();
    const after = shape(b, 'KUBE-SERVICES');
    expect(after.ops.equals(before.ops) && after.recs.equals(before.recs)).toBe(true);

    // Applied: 50 + 1 + 50 rules, the new one in the middle accepts before any jump.
    expect(patch(id, blob(), 50, 50)).toBe(0);
    expect(b.x.iptCommit!()).toBe(0);
    expect(b.x.iptRuleCount!(id)).toBe(101);
    expect(markOf(b, 10)).toBe((10 % TARGETS) + 1); // rule 11: before the new one
    expect(markOf(b, 70)).toBe(0);                  // after it: ACCEPTed by rule 51 first
  });
});
