// draft.ts — the copy-on-write builder one restore block (`*table` … `COMMIT`) edits: chains
// that change get a mutable ChainDraft (chain-draft.ts), every other chain stays the shared
// immutable Chain of the table the block started from. It also answers "how many rules name this
// chain" for -X, counting only what changed. Checks of the finished block and freezing it into a
// Table are graph.ts. Never parses text.

import { detach } from './lexer.js';
import { AppendLog, Places } from './places.js';
import type { Rule, TableName } from './model.js';
import { ZERO_COUNTERS } from './model.js';
import { BUILTIN_CHAINS, LayeredMap, Table, builtinHook, type Chain, HOOK_BIT } from './ruleset.js';
import { ChainDraft, commonEnds, pendingTail, jumpOf, type ChainView } from './chain-draft.js';

const NO_RULES: readonly Rule[] = [];

export { ChainDraft, commonEnds, copyEnds, jumpOf, rememberEnds, type ChainView } from './chain-draft.js';

export class TableDraft {
  /** Chains created, edited or deleted (null) in this block, relative to `origin`. */
  readonly changes = new Map<string, ChainDraft | null>();
  /** Reference-count changes relative to `graphBase`, kept once -X needed them (else null). */
  private refDelta: Map<string, number> | null = null;
  /** Chains deleted in this block, with the line of the -X. */
  readonly deletedAt = new Map<string, number>();
  /** New chains keep their names as given (views into the restore text) instead of copies. */
  views = false;
  /** The appends to chains created in this block (made on the first). */
  private appendLog: AppendLog | null = null;

  constructor(
    readonly name: TableName,
    /** The table this block starts from: the current one with --noflush, else a reset copy. */
    readonly origin: Table,
    /** The table as it was before this block (what "touched" is measured against). */
    readonly prev: Table | undefined,
    /** Added to line numbers to order rule blocks across restores. */
    readonly seqBase: number,
    /** The block replaced the table (no --noflush). */
    readonly replaced: boolean,
  ) {
    this.graphBase = replaced && prev ? prev : origin;
  }

  /**
   * What jumps, reference counts and hook reachability are checked against: the table as it was
   * before the block. For a replacing block that is the previous table, not the reset copy the
   * block edits, so rewriting a table with mostly the same rules costs only what changed.
   */
  readonly graphBase: Table;

  get(name: string): ChainView | undefined {
    const d = this.changes.get(name);
    if (d !== undefined) return d ?? undefined;
    return this.origin.chain(name);
  }

  exists(name: string): boolean {
    return this.get(name) !== undefined;
  }

  /** The draft of an existing chain, creating it on first edit. */
  edit(name: string): ChainDraft | undefined {
    const d = this.changes.get(name);
    if (d !== undefined) return d ?? undefined;
    const c = this.origin.chain(name);
    if (!c) return undefined;
    const draft = new ChainDraft(c.name, c.builtin, this.graphBase.chain(name), c.policy, c.counters, c.declared, c.seq, c.rules);
    draft.source = c.source ?? null;
    this.hintFromPrev(draft);
    this.changes.set(name, draft);
    return draft;
  }

  // A replacing block usually rewrites the table it replaces line for line: let appends compare
  // with the previous table's rules of the same chain.
  private hintFromPrev(d: ChainDraft): void {
    if (!this.replaced) return;
    const old = this.prev?.chain(d.name);
    if (old && old.rules.length) {
      d.hint = old.rules;
      d.hintSrc = old.source ?? null;
      d.hintPos = 0;
    }
  }

  /** A new empty user chain (the name must not exist now; it may have existed at the start of
   *  the block and been deleted since, then the new chain replaces that one). */
  create(text: string): ChainDraft {
    // The name outlives the restore text it was cut from: copy it, or the chain keeps the text
    // (unless the restore decided its text may stay: restore.ts `views`).
    const name = this.views ? text : detach(text);
    const draft = new ChainDraft(name, false, this.graphBase.chain(name), null, ZERO_COUNTERS, '-', 0, []);
    draft.lines = [];
    this.hintFromPrev(draft);
    // A chain with a hint may replay it (ChainDraft.replay()); any other logs its appends.
    if (draft.hint === null) draft.startLog(this.appendLog ??= new AppendLog());
    else draft.parts = new Places();
    this.changes.set(name, draft);
    return draft;
  }

  // ---- rule edits (keep the reference counts right when they are being tracked) ----

  /** Appends hint[k] to `d` by replay (ChainDraft.replay()); false when that does not apply. */
  replayHint(d: ChainDraft, k: number, line: number, text: string, from: number, to: number): boolean {
    const first = !d.replaying && d.rules.length === 0;
    if (!d.replay(k, null, line, text, from, to, true)) return false;
    if (first) d.seq = this.seqBase + line;
    this.countJump(d.hint![k]!, 1);
    return true;
  }

  /** Appends hint rules k0 … k1 by replay (ChainDraft.replayStretch()); false when that does not apply. */
  replayStretch(d: ChainDraft, k0: number, k1: number, line0: number, text: string, at: Uint32Array, starts: Uint32Array): boolean {
    if (!d.replayStretch(k0, k1, line0, text, at, starts)) return false;
    if (this.refDelta !== null) for (let j = k0; j <= k1; j++) this.countJump(d.hint![j]!, 1);
    return true;
  }

  /** Appends `rule`. `text.slice(from, to)` is where the restore text wrote it (equal to
   *  `rule.text`) and `zero` whether its counters are zero, when the caller knows them. */
  append(d: ChainDraft, rule: Rule, line: number, text: string | null = null, from = 0, to = 0, zero = false): void {
    // A chain being replayed logs the rule too.
    if (text !== null && d.replaying && d.replay(-1, rule, line, text, from, to, zero)) {
      this.countJump(rule, 1);
      return;
    }
    if (d.logging) {
      if (d.loggedCount === 0) d.seq = this.seqBase + line;
      d.logAppend(rule, line, text, from, to, zero);
      this.countJump(rule, 1);
      return;
    }
    const rules = d.own();
    if (rules.length === 0) d.seq = this.seqBase + line;
    rules.push(rule);
    d.lines!.push(line);
    const parts = d.parts;
    if (parts !== null) {
      if (text === null || (parts.n > 0 && text !== d.partText)) d.parts = null;
      else {
        d.partText = text;
        parts.push(from, to);
        if (!zero) d.partsZero = false;
      }
    }
    this.countJump(rule, 1);
  }

  insert(d: ChainDraft, index: number, rule: Rule, line: number): void {
    const rules = d.own();
    d.parts = null;
    if (rules.length === 0) d.seq = this.seqBase + line;
    rules.splice(index, 0, rule);
    d.lines!.splice(index, 0, line);
    this.countJump(rule, 1);
  }

  replace(d: ChainDraft, index: number, rule: Rule, line: number): void {
    const rules = d.own();
    d.parts = null;
    this.countJump(rules[index], -1);
    rules[index] = rule;
    d.lines![index] = line;
    this.countJump(rule, 1);
  }

  removeAt(d: ChainDraft, index: number): void {
    const rules = d.own();
    d.parts = null;
    this.countJump(rules[index], -1);
    rules.splice(index, 1);
    d.lines!.splice(index, 1);
  }

  flush(d: ChainDraft): void {
    if (this.refDelta) for (const r of d.rules) this.countJump(r, -1);
    if (d.rules.length) {
      d.hint = d.rules;
      d.hintSrc = d.owned ? null : d.source;
      d.hintPos = 0;
    }
    d.rules = [];
    d.lines = [];
    d.source = null;
    d.parts = new Places();
    d.partsZero = true;
  }

  delete(name: string, line: number): void {
    const d = this.get(name);
    if (d && this.refDelta) for (const r of d.rules) this.countJump(r, -1);
    if (this.origin.chain(name)) this.changes.set(name, null);
    else this.changes.delete(name);
    this.deletedAt.set(name, line);
  }

  private countJump(rule: Rule, by: number): void {
    if (!this.refDelta) return;
    const j = jumpOf(rule);
    if (j !== null) this.refDelta.set(j, (this.refDelta.get(j) ?? 0) + by);
  }

  /** Rules in the table that jump or go to `name`, as of now. */
  references(name: string): number {
    return this.graphBase.references(name) + (this.refDeltas().get(name) ?? 0);
  }

  /** refDeltas() handed over to be changed by the caller; the draft recomputes them if asked again. */
  takeRefDeltas(): Map<string, number> {
    const d = this.refDeltas() as Map<string, number>;
    this.refDelta = null;
    return d;
  }

  /** Reference-count changes relative to `graphBase` (computed on first use, then kept current). */
  refDeltas(): ReadonlyMap<string, number> {
    if (this.refDelta) return this.refDelta;
    const delta = new Map<string, number>();
    const add = (r: Rule, by: number) => {
      const j = jumpOf(r);
      if (j !== null) delta.set(j, (delta.get(j) ?? 0) + by);
    };
    // forEach, not for-of: no entry array per chain (a first restore has 60,000).
    this.changes.forEach((d, name) => {
      if (d === null) {
        for (const r of this.graphBase.chain(name)?.rules ?? []) add(r, -1);
        return;
      }
      const before = d.origin?.rules ?? NO_RULES;
      const rules = d.rules;
      if (before.length === 0) {
        for (let k = 0; k < rules.length; k++) add(rules[k]!, 1);
        return;
      }
      const [p, s] = commonEnds(before, rules);
      // A chain still being rewritten when -X asks (kube-proxy writes its -X lines before the
      // last KUBE-SERVICES rule) has no common suffix with its old rules yet: its last rule is one
      // of the old ones a few before their end. Aligned there, only the rules around the change
      // are counted instead of every rule after it.
      const [cut, tail] = s === 0 ? pendingTail(before, rules, p) : [0, 0];
      for (let k = p; k < before.length - (s || tail) - cut; k++) add(before[k], -1);
      for (let k = before.length - cut; k < before.length; k++) add(before[k], -1);
      for (let k = p; k < rules.length - (s || tail); k++) add(rules[k], 1);
    });
    if (this.replaced) {
      // Chains of the previous table the block has not (re)made: gone or reset, rules dropped.
      for (const c of this.graphBase.chains()) if (!this.changes.has(c.name)) for (const r of c.rules) add(r, -1);
    }
    this.refDelta = delta;
    return delta;
  }
}

/**
 * The table a replacing block (no --noflush) starts from: iptables-restore flushes every chain
 * and deletes the user chains, but built-in policies and their counters stay.
 */
export function resetTable(prev: Table | undefined, name: TableName, family: Table['family']): Table {
  const builtins = BUILTIN_CHAINS[name].map((h) => {
    const old = prev?.chain(h);
    const c: Chain = {
      name: h, builtin: true, hook: builtinHook(name, h), policy: old?.policy ?? 'ACCEPT',
      counters: old?.counters ?? ZERO_COUNTERS, rules: [], declared: null, seq: 0,
    };
    return [h, c] as const;
  });
  return new Table(
    name, family, LayeredMap.of(builtins), LayeredMap.of(),
    LayeredMap.of(BUILTIN_CHAINS[name].map((h) => [h, HOOK_BIT[h]] as const)),
  );
}
