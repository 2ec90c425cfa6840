// graph.ts — finishing a restore block at COMMIT: every jump must name an existing user chain,
// the jump graph must stay free of loops, targets and matches limited to some hooks (DNAT only
// from PREROUTING/OUTPUT, MASQUERADE only from POSTROUTING, …) must not be reachable from
// others, and the draft is frozen into the next immutable Table plus the set of chains whose
// content changed. Work is proportional to what the block changed: only new jumps are checked,
// loops are searched from new jumps only, and hook reachability is kept per table as an upper
// bound that new jumps extend; the exact whole-table walk runs only when that bound reports a
// violation. Mirrors the kernel's mark_source_chains()/xt_check_target() outcome, not its code.

import { basicHookMessage } from './ext-match.js';
import { targetHooks, targetSaveName } from './ext-target.js';
import { ruleHooks } from './rule.js';
import { sameRule } from './save.js';
import { ChainDraft, commonEnds, copyEnds, jumpOf, type ChainView, type TableDraft } from './draft.js';
import type { AddrMatch, Hook, Rule } from './model.js';
import { isAnyMask } from './addr.js';
import { BUILTIN_CHAINS, HOOK_BIT, LayeredMap, SOURCE_MIN_RULES, Table, type Chain, type ChainSource } from './ruleset.js';
import { CommitError, refuseHookLoops, reachesLoop } from './loops.js';

export { CommitError } from './loops.js';

const HOOK_NAMES: readonly Hook[] = ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'];

/** textify_hooks() of x_tables.c: hook names joined with '/'. */
function hookList(mask: number): string {
  return HOOK_NAMES.filter((h) => mask & HOOK_BIT[h]).join('/');
}

// Per immutable chain, facts every later commit can reuse. Only lists of MEMO_RULES rules or more
// are remembered: a first restore makes tens of thousands of two-rule chains, whose facts cost
// less to recompute than a weak-map entry costs the garbage collector.
const MEMO_RULES = 16;
const jumpMemo = new WeakMap<readonly Rule[], string[]>();
const allowMemo = new WeakMap<readonly Rule[], number>();
const walkMemo = new WeakMap<readonly Rule[], number>();
const NO_RULES: readonly Rule[] = [];

/** The distinct chains a rule list jumps or goes to. */
function jumpsOf(rules: readonly Rule[]): string[] {
  let j = rules.length >= MEMO_RULES ? jumpMemo.get(rules) : undefined;
  if (j === undefined) {
    const set = new Set<string>();
    for (const r of rules) {
      const t = jumpOf(r);
      if (t !== null) set.add(t);
    }
    j = [...set];
    if (rules.length >= MEMO_RULES) jumpMemo.set(rules, j);
  }
  return j;
}

/**
 * How far the kernel's walk from the built-in chains (ip_tables.c mark_source_chains()) reads a
 * rule list: through the first unconditional ACCEPT, DROP or RETURN — no address, interface,
 * protocol or fragment test and no match (unconditional()). The kernel never checks the jumps
 * and targets after it for loops or hooks, so neither does COMMIT.
 */
function walkEnd(rules: readonly Rule[]): number {
  let end = rules.length >= MEMO_RULES ? walkMemo.get(rules) : undefined;
  if (end === undefined) {
    end = rules.length;
    for (let k = 0; k < rules.length; k++) {
      const r = rules[k]!;
      const t = r.target;
      if (t === null || (t.kind !== 'ACCEPT' && t.kind !== 'DROP' && t.kind !== 'RETURN')) continue;
      if (r.matches.length === 0 && r.proto === 0 && !r.protoInvert && r.fragment === null && r.inIface === null &&
        r.outIface === null && anyAddr(r.src) && anyAddr(r.dst)) {
        end = k + 1;
        break;
      }
    }
    if (rules.length >= MEMO_RULES) walkMemo.set(rules, end);
  }
  return end;
}

const anyAddr = (a: AddrMatch | null): boolean => a === null || (!a.invert && isAnyMask(a));

/** The distinct chains the walked part of a rule list (walkEnd()) jumps or goes to. */
function walkedJumpsOf(rules: readonly Rule[]): string[] {
  const end = walkEnd(rules);
  return end === rules.length ? jumpsOf(rules) : jumpsOf(rules.slice(0, end));
}

/** The hooks every rule of a list allows (AND of ruleHooks). */
function allowedOf(rules: readonly Rule[]): number {
  const memo = rules.length >= MEMO_RULES;
  let a = memo ? allowMemo.get(rules) : undefined;
  if (a === undefined) {
    a = 0x1f;
    for (let k = 0; k < rules.length; k++) a &= ruleHooks(rules[k]!);
    if (memo) allowMemo.set(rules, a);
  }
  return a;
}

/**
 * The rules of a block that may hold new jumps: per edited chain, the rules between its common
 * ends with the chain it replaces. The new jumps are read from these rules where needed rather
 * than listed (a first restore has a hundred thousand).
 */
export class Middles {
  readonly drafts: ChainDraft[] = [];
  readonly from: number[] = [];
  readonly to: number[] = [];
  /**
   * The chains the rules of wholly new drafts jump to, resolved once by step 1: rule k of such a
   * draft at `views[d.viewBase + k]` (undefined for a rule that does not jump). The loop walk and
   * the hook bounds read them instead of looking each name up again.
   */
  readonly views: (ChainView | undefined)[] = [];

  constructor(private readonly td: TableDraft) {}

  /** The chain rule k of `v` jumps to, named `name`. */
  targetOf(v: ChainView, k: number, name: string): ChainView | undefined {
    if (v instanceof ChainDraft && v.viewBase >= 0) return this.views[v.viewBase + k];
    return this.td.get(name);
  }

  /**
   * Calls `each` for the chain every new jump leads to (after step 1, every one exists), draft by
   * draft in order; a wholly new draft's from its resolved targets, without reading its rules.
   */
  forEachTarget(each: (d: ChainDraft, v: ChainView) => void): void {
    const views = this.views;
    for (let i = 0; i < this.drafts.length; i++) {
      const d = this.drafts[i]!;
      const rules = d.rules;
      const base = d.viewBase;
      if (base >= 0) {
        for (let k = base, end = base + rules.length; k < end; k++) {
          const v = views[k];
          if (v !== undefined) each(d, v);
        }
        continue;
      }
      // Runs of jumps to one chain look it up once, as step 1 does.
      let lastName = '';
      let last: ChainView | undefined;
      for (let k = this.from[i]!, end = this.to[i]!; k < end; k++) {
        const t = rules[k]!.target;
        if (t === null || t.kind !== 'jump') continue;
        if (t.chain !== lastName) {
          lastName = t.chain;
          last = this.td.get(lastName);
        }
        if (last !== undefined) each(d, last);
      }
    }
  }

  /** Calls `each` for every new jump `from → to` (rule k of draft d). */
  forEachJump(each: (from: string, to: string, d: ChainDraft, k: number) => void): void {
    for (let i = 0; i < this.drafts.length; i++) {
      const d = this.drafts[i]!;
      const rules = d.rules;
      for (let k = this.from[i]!, end = this.to[i]!; k < end; k++) {
        const t = rules[k]!.target;
        if (t !== null && t.kind === 'jump') each(d.name, t.chain, d, k);
      }
    }
  }
}

export interface Committed {
  readonly table: Table;
  /** Names of the table's chains whose content changed, each once. */
  readonly touched: readonly string[];
  /** The table's chain of each of those names (null: deleted), so no one looks them up again. */
  readonly touchedChains: readonly (Chain | null)[];
}

/**
 * Validates a finished block and freezes it. `commitLine` is the line of COMMIT, used for
 * problems that no single line of the block caused.
 */
export function commit(td: TableDraft, commitLine: number): Committed {
  const final = (name: string): ChainView | undefined => td.get(name);
  const lineOf = (d: ChainView, k: number): number => (d instanceof ChainDraft && d.lines ? d.lines[k] || commitLine : commitLine);

  // 1. New jumps: each must name an existing user chain.
  const middles = new Middles(td);
  let jumps = 0;
  // An edited chain that had rules past an unconditional verdict: they may be walked now.
  let wokeRules = false;
  let lastTo = '';
  let lastTarget: ChainView | undefined;
  // forEach, not for-of: no entry array per chain (a first restore has 60,000).
  td.changes.forEach((d) => {
    if (d === null) return;
    const rules = d.rules;
    const before = d.origin?.rules ?? NO_RULES;
    let p = 0, s = 0;
    if (before.length !== 0) {
      [p, s] = commonEnds(before, rules);
      if (!wokeRules && walkEnd(before) < before.length) wokeRules = true;
    }
    const end = rules.length - s;
    middles.drafts.push(d);
    middles.from.push(p);
    middles.to.push(end);
    const whole = p === 0 && end === rules.length;
    const views = middles.views;
    if (whole) d.viewBase = views.length;
    for (let k = p; k < end; k++) {
      const r = rules[k]!;
      const t = r.target;
      if (t === null || t.kind !== 'jump') {
        if (whole) views.push(undefined);
        continue;
      }
      const to = t.chain;
      // Runs of jumps to one chain (every KUBE-SEP chain names KUBE-MARK-MASQ) look it up once.
      let target: ChainView | undefined;
      if (to === lastTo && lastTarget !== undefined) target = lastTarget;
      else {
        target = final(to);
        if (!target) throw new CommitError(lineOf(d, k), to, t.goto ? `goto '${to}' is not a chain` : `Couldn't load target \`${to}':No such file or directory`);
        if (target.builtin) throw new CommitError(lineOf(d, k), to, `Target problem: cannot jump to built-in chain \`${to}'`);
        lastTo = to;
        lastTarget = target;
      }
      if (whole) views.push(target);
      jumps++;
    }
  });

  // 2. A deleted chain must not be named by any rule left (a rule re-added after the -X, or in
  // a replacing block a chain of the old table that the block did not declare again).
  const refDelta = td.refDeltas();
  const gone = new Map(td.deletedAt);
  if (td.replaced) for (const c of td.graphBase.chains()) if (!final(c.name)) gone.set(c.name, commitLine);
  for (const [name, at] of gone) {
    if (final(name)) continue;
    if (td.graphBase.references(name) + (refDelta.get(name) ?? 0) > 0) {
      throw new CommitError(findReference(td, name, lineOf) ?? at, name, `Couldn't load target \`${name}':No such file or directory`);
    }
  }

  // 3. No loop a built-in chain reaches: one has to be reached through a new jump. One colouring
  // walk from the new jumps' targets tells whether they reach any loop; only then the walk from
  // the built-in chains and the search per jump find the one to report.
  const adjacency = (name: string): readonly string[] => {
    const c = final(name);
    return c ? jumpsOf(c.rules) : [];
  };
  const walked = (name: string): readonly string[] => {
    const c = final(name);
    return c ? walkedJumpsOf(c.rules) : [];
  };
  if ((jumps !== 0 && reachesLoop(td, middles)) || wokeRules) {
    const list: { from: string; to: string; line: number }[] = [];
    middles.forEachJump((from, to, d, k) => list.push({ from, to, line: lineOf(d, k) }));
    // Latest lines first: a loop is reported at the jump that closed it.
    list.sort((a, b) => b.line - a.line);
    refuseHookLoops(list, walked, td, lineOf);
  }

  // 4. Hooks: grow the per-chain upper bound along new jumps, then check restricted rules.
  // A bound read early may grow later; the walk carries every growth on, so the fixpoint is the
  // same whatever order the jumps are taken in.
  const bounds = new HookBounds(td, middles);
  let lastFrom: ChainDraft | null = null, lastBits = 0;
  let lastView: ChainView | undefined;
  middles.forEachTarget((d, v) => {
    if (d !== lastFrom) {
      lastFrom = d;
      lastBits = bounds.of(d);
      lastView = undefined;
    }
    if (v === lastView) return;
    lastView = v;
    bounds.grow(v, lastBits);
  });
  bounds.spread();
  // A chain whose bound grew must allow it with every rule; an edited chain whose bound did not
  // grow only has its new rules to check (the others were valid under the same bound before).
  let suspect = false;
  for (const v of bounds.grown) {
    if ((bounds.of(v) & ~allowedOf(v.rules)) !== 0) {
      suspect = true;
      break;
    }
  }
  for (let i = 0; i < middles.drafts.length && !suspect; i++) {
    const d = middles.drafts[i]!;
    if (d.hookGrown) continue;
    const m = bounds.of(d);
    const rules = d.rules;
    for (let k = middles.from[i]!, to = middles.to[i]!; k < to && !suspect; k++) suspect = (m & ~ruleHooks(rules[k]!)) !== 0;
  }
  let exact: Map<string, number> | null = null;
  if (suspect || wokeRules) {
    // Kept for the next commit: reachability through every rule (an upper bound of the walk's).
    exact = exactHooks(td, adjacency);
    checkHooks(td, exactHooks(td, walked), lineOf, commitLine);
  }

  // 5. Freeze.
  return freeze(td, exact ?? bounds.map(), exact !== null);
}

/**
 * Per chain, the hooks it may be reached from (an upper bound), as this commit grows it along new
 * jumps. A draft keeps its bound in its own fields, so a jump costs one name lookup rather than
 * several map operations; chains the block did not edit keep theirs in a map.
 */
class HookBounds {
  private readonly base: LayeredMap<number>;
  private readonly old = new Map<string, number>();
  private readonly work: ChainView[] = [];
  /** Every chain whose bound grew, once each. */
  readonly grown: ChainView[] = [];

  constructor(td: TableDraft, private readonly middles: Middles) {
    this.base = td.graphBase.hookMap;
  }

  of(v: ChainView): number {
    if (v instanceof ChainDraft) {
      if (v.hookBits < 0) v.hookBits = this.base.get(v.name) ?? 0;
      return v.hookBits;
    }
    const h = this.old.get(v.name);
    return h !== undefined ? h : this.base.get(v.name) ?? 0;
  }

  grow(v: ChainView, bits: number): void {
    const cur = this.of(v);
    if ((bits & ~cur) === 0) return;
    if (v instanceof ChainDraft) {
      if (!v.hookGrown) {
        v.hookGrown = true;
        this.grown.push(v);
      }
      v.hookBits = cur | bits;
    } else {
      if (!this.old.has(v.name)) this.grown.push(v);
      this.old.set(v.name, cur | bits);
    }
    this.work.push(v);
  }

  /** Carries every growth on along the chains' jumps until nothing grows. */
  spread(): void {
    const work = this.work;
    while (work.length !== 0) {
      const v = work.pop()!;
      const bits = this.of(v);
      const rules = v.rules;
      const base = v instanceof ChainDraft ? v.viewBase : -1;
      if (base >= 0) {
        // A wholly new draft's targets, as COMMIT's first step resolved them.
        const views = this.middles.views;
        let last: ChainView | undefined;
        for (let k = base, end = base + rules.length; k < end; k++) {
          const t = views[k];
          if (t !== undefined && t !== last) {
            last = t;
            this.grow(t, bits);
          }
        }
        continue;
      }
      let lastName = '';
      let lastView: ChainView | undefined;
      for (let k = 0; k < rules.length; k++) {
        const t = rules[k]!.target;
        if (t === null || t.kind !== 'jump') continue;
        if (t.chain !== lastName) {
          lastName = t.chain;
          lastView = this.middles.targetOf(v, k, lastName);
        }
        if (lastView !== undefined) this.grow(lastView, bits);
      }
    }
  }

  /** The grown bounds by chain name (what the next table's hook map changes). */
  map(): Map<string, number> {
    const m = new Map<string, number>();
    for (const v of this.grown) m.set(v.name, this.of(v));
    return m;
  }
}

function findReference(td: TableDraft, name: string, lineOf: (d: ChainView, k: number) => number): number | null {
  for (const d of td.changes.values()) {
    if (!d) continue;
    const k = d.rules.findIndex((r) => jumpOf(r) === name);
    if (k >= 0) return lineOf(d, k);
  }
  return null;
}

/** Exact hook reachability of every chain, walking from the built-in chains. */
function exactHooks(td: TableDraft, adjacency: (n: string) => readonly string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const h of BUILTIN_CHAINS[td.name]) {
    const bit = HOOK_BIT[h];
    const stack = [h as string];
    m.set(h, (m.get(h) ?? 0) | bit);
    while (stack.length) {
      const v = stack.pop()!;
      for (const t of adjacency(v)) {
        const cur = m.get(t) ?? 0;
        if (cur & bit) continue;
        m.set(t, cur | bit);
        stack.push(t);
      }
    }
  }
  return m;
}

function checkHooks(td: TableDraft, exact: Map<string, number>, lineOf: (d: ChainView, k: number) => number, commitLine: number): void {
  for (const [name, used] of exact) {
    const c = td.get(name);
    if (!c || (used & ~allowedOf(c.rules)) === 0) continue;
    for (let k = 0, end = walkEnd(c.rules); k < end; k++) {
      const r = c.rules[k];
      if ((used & ~ruleHooks(r)) === 0) continue;
      const line = lineOf(c, k) || commitLine;
      const prefix = td.origin.family === 4 ? 'ip' : 'ip6';
      if (r.target && (used & ~targetHooks(r.target)) !== 0) {
        const t = targetSaveName(r.target);
        throw new CommitError(line, t,
          `${prefix}_tables: ${t} target: used from hooks ${hookList(used)}, but only usable from ${hookList(targetHooks(r.target))}`);
      }
      const msg = basicHookMessage(r, used);
      throw new CommitError(line, msg.word, msg.message);
    }
  }
}

function sameChain(a: Chain, d: ChainView): boolean {
  if (a.policy !== d.policy || a.counters.packets !== d.counters.packets || a.counters.bytes !== d.counters.bytes) return false;
  if (a.rules === d.rules) return true;
  if (a.rules.length !== d.rules.length) return false;
  const [p, s] = commonEnds(a.rules, d.rules);
  if (p + s >= a.rules.length) return true;
  for (let k = p; k < a.rules.length - s; k++) if (!sameRule(a.rules[k], d.rules[k])) return false;
  return true;
}

function freezeChain(d: ChainDraft): Chain {
  let source: ChainSource | null = null;
  const n = d.rules.length; // first: builds a logged chain's list and places
  const parts = d.parts;
  if (parts !== null && parts.n === 2 * n) {
    if (n >= SOURCE_MIN_RULES) source = { text: d.partText, at: parts.words(), zero: d.partsZero };
  } else if (!d.owned) {
    source = d.source;
  }
  return {
    source,
    name: d.name, builtin: d.builtin, hook: d.builtin ? (d.name as Hook) : null, policy: d.policy,
    // An edited chain's array grew by push (with room to spare); the frozen chain keeps a copy
    // sized exactly, since tens of thousands of small chains live as long as the ruleset.
    counters: d.counters, rules: d.owned && !d.settledList && !d.exactList ? frozenCopy(d.rules) : d.rules, declared: d.declared, seq: d.seq,
  };
}

function frozenCopy(rules: readonly Rule[]): readonly Rule[] {
  const copy = rules.slice();
  copyEnds(rules, copy);
  return copy;
}

function freeze(td: TableDraft, hookChanges: Map<string, number>, exact: boolean): Committed {
  const touched: string[] = [];
  const touchedChains: (Chain | null)[] = [];
  const chainChanges = new Map<string, Chain | null>();
  const prev = td.prev;
  const mark = (n: string, c: Chain | null) => {
    touched.push(n);
    touchedChains.push(c);
  };

  td.changes.forEach((d, name) => {
    const old = prev?.chain(name);
    if (d === null) {
      chainChanges.set(name, null);
      if (old) mark(name, null);
      return;
    }
    if (old && sameChain(old, d)) {
      // Unchanged content keeps the previous object (so consumers can compare by identity);
      // only how it was declared may differ.
      chainChanges.set(name, old.declared === d.declared ? old : { ...old, declared: d.declared });
    } else {
      const frozen = freezeChain(d);
      chainChanges.set(name, frozen);
      mark(name, frozen);
    }
  });
  if (td.replaced && prev) {
    // Chains of the old table that the block did not recreate are gone; built-ins it did not
    // mention were flushed.
    for (const old of prev.chains()) {
      if (td.changes.has(old.name)) continue;
      const now = td.origin.chain(old.name);
      if (!now) {
        mark(old.name, null);
        continue;
      }
      if (sameChain(old, now)) chainChanges.set(old.name, old);
      else mark(old.name, now);
    }
  }

  if (!prev) {
    // A table new in this restore: its untouched built-in chains are new too.
    for (const c of td.origin.chains()) if (!td.changes.has(c.name)) mark(c.name, c);
  }

  // The draft's own delta map, turned into the new counts in place (a first restore has one
  // entry per chain).
  const refChanges: Map<string, number | null> = td.takeRefDeltas();
  refChanges.forEach((delta, name) => {
    if (delta === 0) {
      refChanges.delete(name);
      return;
    }
    const v = td.graphBase.references(name) + delta!;
    refChanges.set(name, v > 0 ? v : null);
  });

  const chainMap = td.origin.chainMap.with(chainChanges);
  let hookMap: LayeredMap<number>;
  if (exact) {
    hookMap = LayeredMap.of([...chainMap.entries()].map(([n]) => [n, hookChanges.get(n) ?? 0] as const));
  } else {
    // The commit's own map, no longer read: extended in place rather than copied.
    const hc = hookChanges as Map<string, number | null>;
    td.changes.forEach((d, name) => { if (d === null && !hc.has(name)) hc.set(name, null); });
    if (td.replaced) for (const c of td.graphBase.chains()) if (!chainMap.has(c.name)) hc.set(c.name, null);
    hookMap = td.graphBase.hookMap.withOwned(hc);
  }
  // Both maps are read by key only, and both change maps are this commit's own.
  const table = new Table(td.name, td.origin.family, chainMap, td.graphBase.refMap.withOwned(refChanges), hookMap);
  return { table, touched, touchedChains };
}
