// chain-memo.ts: a large chain recompiled after edits (inserts, deletes, replacements at the
// start, middle and end) must produce exactly the blob a fresh compiler produces for the same
// ruleset; rejected compiles and deleted chains must not leave a stale memory behind.
import { describe, it, expect } from 'vitest';
import { parseRestore } from '../../../host-node/netfilter/restore';
import { IptCompiler, type CompiledRestore } from '../../../host-node/netfilter/compile';
import type { Ruleset } from '../../../host-node/netfilter/ruleset';
import { ChainMemo, MEMO_MIN_RULES } from '../../../host-node/netfilter/chain-memo';

function parse(text: string, base?: Ruleset, noflush = false) {
  const r = parseRestore(text, { base, noflush });
  if (!r.ok) throw new Error(r.error.message);
  return r;
}

const TARGETS = 8;

function ruleLine(k: number): string {
  return `-A KUBE-SERVICES -m comment --comment "svc${k}" -m tcp -p tcp -d 172.30.${k >> 8}.${k & 255} --dport ${80 + (k % 7)} -j T${k % TARGETS}`;
}

function table(rules: number[]): string {
  const decl = [':KUBE-SERVICES - [0:0]'];
  for (let t = 0; t < TARGETS; t++) decl.push(`:T${t} - [0:0]`, `-A T${t} -j RETURN`);
  return ['*nat', ...decl, ...rules.map(ruleLine), 'COMMIT', ''].join('\n');
}

function blobOf(out: CompiledRestore, name: string): Uint8Array {
  const s = out.stage.find((x) => x.info.name === name);
  expect(s, name).toBeDefined();
  return s!.blob.slice();
}

describe('chain memo: incremental recompiles of a large chain', () => {
  it('equals a fresh compile after every kind of edit', () => {
    const c = new IptCompiler();
    let rules = Array.from({ length: 300 }, (_, k) => k);
    let r = parse(table(rules));
    const first = c.compile(r.ruleset, r.touched);
    first.accept();
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
      rules = edit(rules);
      // A full rewrite of the table, as kube-proxy does with KUBE-SERVICES.
      r = parse(table(rules), r.ruleset);
      const inc = c.compile(r.ruleset, r.touched);
      const got = r.touched.has('nat/KUBE-SERVICES') ? blobOf(inc, 'KUBE-SERVICES') : null;
      inc.accept();
      const fresh = new IptCompiler().compile(r.ruleset, null);
      if (got) expect(Buffer.from(got).equals(Buffer.from(blobOf(fresh, 'KUBE-SERVICES')))).toBe(true);
      else expect(edit(rules)).toEqual(rules); // only the unchanged rewrite touches nothing
    }
  });

  it('forgets a rejected compile and a deleted chain', () => {
    const c = new IptCompiler();
    const base = Array.from({ length: 100 }, (_, k) => k);
    let r = parse(table(base));
    c.compile(r.ruleset, r.touched).accept();
    // A compile the core refused: the memory must still be of the accepted version.
    const rejected = parse(table([...base.slice(0, 50), 5000, ...base.slice(50)]), r.ruleset);
    c.compile(rejected.ruleset, rejected.touched).reject();
    const again = parse(table([...base.slice(0, 60), 6000, ...base.slice(60)]), r.ruleset);
    const out = c.compile(again.ruleset, again.touched);
    const got = blobOf(out, 'KUBE-SERVICES');
    out.accept();
    expect(Buffer.from(got).equals(Buffer.from(blobOf(new IptCompiler().compile(again.ruleset, null), 'KUBE-SERVICES')))).toBe(true);
    // Delete the chain and the chains it jumps to, create the targets again (they get other ids),
    // then the chain with the very same rules: every jump must carry the targets' new ids.
    r = again;
    const drop = ['-F KUBE-SERVICES', '-X KUBE-SERVICES'];
    for (let t = 0; t < TARGETS; t++) drop.push(`-F T${t}`, `-X T${t}`);
    const gone = parse(['*nat', ...drop, 'COMMIT', ''].join('\n'), r.ruleset, true);
    c.compile(gone.ruleset, gone.touched).accept();
    const filler = parse('*nat\n:FILLER - [0:0]\nCOMMIT\n', gone.ruleset, true); // takes a freed id
    c.compile(filler.ruleset, filler.touched).accept();
    const back = parse(table([...base.slice(0, 60), 6000, ...base.slice(60)]).replace(':KUBE-SERVICES - [0:0]', ':FILLER - [0:0]\n:KUBE-SERVICES - [0:0]'), filler.ruleset, true);
    const out2 = c.compile(back.ruleset, back.touched);
    const blob = blobOf(out2, 'KUBE-SERVICES');
    out2.accept();
    const dv = new DataView(blob.buffer, blob.byteOffset, blob.length);
    const n = dv.getUint32(12, true);
    const rules = back.ruleset.table('nat')!.chain('KUBE-SERVICES')!.rules;
    expect(n).toBe(rules.length);
    for (let k = 0; k < n; k++) {
      const target = dv.getUint32(36 + 12 * k, true);
      const id = dv.getUint32(32 + 12 * n + 4 * (target + 1), true);
      const t = rules[k].target;
      expect(t?.kind).toBe('jump');
      expect(id).toBe(c.chainId(4, 'nat', (t as { chain: string }).chain));
    }
    out2.accept();
  });

  it('keeps entries only once accepted, and forgets dropped chains', () => {
    const parsed = parse(table(Array.from({ length: MEMO_MIN_RULES + 10 }, (_, k) => k)));
    const rules = parsed.ruleset.table('nat')!.chain('KUBE-SERVICES')!.rules;
    const m = new ChainMemo();
    const words = new Uint32Array(rules.length * 2);
    const recs = new Uint32Array(rules.length * 3).map((_, k) => Math.floor(k / 3) * 2 + (k % 3 === 2 ? 2 : 0));
    m.keep(7, rules, words, words.length, recs, true);
    expect(m.reuse(7, rules)).toBeNull(); // not accepted yet
    m.accept();
    expect(m.reuse(7, rules)).toMatchObject({ prefix: rules.length, suffix: 0 });
    m.keep(7, rules.slice(1), words, words.length, recs, true);
    m.reject();
    expect(m.reuse(7, rules)).toMatchObject({ prefix: rules.length }); // the rejected version is gone
    m.drop(7);
    m.accept();
    expect(m.reuse(7, rules)).toBeNull();
    m.keep(8, rules, words, words.length, recs, false); // names recent lists: never kept
    m.keep(9, rules.slice(0, MEMO_MIN_RULES - 1), words, words.length, recs, true); // too small
    m.accept();
    expect(m.reuse(8, rules)).toBeNull();
    expect(m.reuse(9, rules.slice(0, MEMO_MIN_RULES - 1))).toBeNull();
  });
});
