// chain-draft.ts — one chain being edited by a restore block: its rules shared with the chain it
// started from until the first change, then a mutable list, with the lines and text places each rule
// came from (a rewrite of a large chain replays the old rules instead of building new ones). Also the
// common ends of two rule lists (by identity), which COMMIT, reference counts and the compiler's memo
// all ask for. Never parses text and never looks at other chains (draft.ts holds the table).

import { AppendLog, Places } from './places.js';
import { SOURCE_MIN_RULES } from './ruleset.js';
import type { Counters, Policy, Rule } from './model.js';
import type { Chain, ChainSource } from './ruleset.js';

export function jumpOf(rule: Rule): string | null {
  const t = rule.target;
  return t !== null && t.kind === 'jump' ? t.chain : null;
}

/** A chain being edited. Its rules stay shared with the chain it started from until the first
 *  change; `origin` is what it is compared with at COMMIT (the graph base's chain of that name). */
export class ChainDraft {
  private list: readonly Rule[];
  private lineList: number[] | null = null;
  /**
   * The rules the chain had when this block flushed it, and how far appends have matched them.
   * kube-proxy rewrites a flushed chain mostly line for line, so the next appended line is
   * compared with the rule it replaces before any hashing (restore.ts fastAppend()).
   */
  hint: readonly Rule[] | null = null;
  hintPos = 0;
  /** Where `hint`'s texts lie, when the chain had a ChainSource (compared instead of the rules). */
  hintSrc: ChainSource | null = null;
  /** The ChainSource of `rules` while they are still the origin's (not owned). */
  source: ChainSource | null = null;
  /**
   * Where in `partText` (the restore text) each rule since the chain was created or flushed was
   * read from, while every one came with its place (restore.ts fastAppend()): start and end
   * offsets interleaved; null once any other edit happened. The frozen chain's ChainSource.
   */
  parts: Places | null = null;
  partText = '';
  partsZero = true;
  /**
   * Replay: the first `replayed` rules of a flushed chain were appended as a log — each a hint
   * index (>= 0) or, for a rule that is not in the hint, -1 - its index in `replayNew` — and are
   * not in `list` yet; their lines and text places wait in typed arrays. Rewriting a 20 000-rule
   * chain with a few changes then costs one compare and four stores per line; the lists are built
   * on first look (any read of `rules` or `lines`).
   */
  private replayed = 0;
  private replayIdx: Int32Array | null = null;
  private replayLines: Int32Array | null = null;
  private replayParts: Uint32Array | null = null;
  private replayNew: Rule[] | null = null;
  /** settle() recorded the list's common ends with the hint (rememberEnds() below). */
  private endsKnown = false;
  /**
   * The rules settle() built from the replay log, whose arrays it kept, while nothing else has
   * changed the list since (0: none): a replay read in the middle (reference counts for an -X that
   * kube-proxy writes before a chain's last rule) goes on logging instead of copying the list.
   */
  private resumable = 0;
  /**
   * A chain created in this block, while it only had appends: its rules wait in the block's
   * AppendLog (places.ts) — `logged` of them from entry `logHead` — instead of in three arrays of
   * its own; the list is built, at its exact size, on first look at `rules`, the lines (kept
   * there until asked for, usually never) on first look at `lines`. `logPlaces`: every rule came
   * with its place in `partText`.
   */
  private log: AppendLog | null = null;
  private logged = 0;
  private logHead = -1;
  private logTail = -1;
  private linesLog: AppendLog | null = null;
  /** The lines of a settled replay, until first read (settleLines()). */
  private linesReplayed: Int32Array | null = null;
  private logPlaces = true;
  /** The list was built at its exact size from the log and not changed since. */
  private exact = false;
  /** COMMIT's hook bound for this chain (graph.ts HookBounds; -1 until read) and whether it grew. */
  hookBits = -1;
  hookGrown = false;
  /** A user chain this block declared (created, or flushed by --noflush) with a `:CHAIN` line. */
  refilled = false;
  /** COMMIT's loop walk state for this chain (graph.ts reachesLoop(): 1 on the path, 2 done). */
  walk = 0;
  /** Where COMMIT keeps the chains this draft's rules jump to (graph.ts Middles.views), or -1. */
  viewBase = -1;

  constructor(
    readonly name: string,
    readonly builtin: boolean,
    /** The chain of this name in the table the block is checked against (for diffs), if any. */
    readonly origin: Chain | undefined,
    public policy: Policy | null,
    public counters: Counters,
    public declared: '-' | 'policy' | null,
    public seq: number,
    rules: readonly Rule[],
  ) {
    this.list = rules;
  }

  get rules(): readonly Rule[] {
    if (this.replayed !== 0) this.settle();
    if (this.logged !== 0) this.settleLog();
    return this.list;
  }

  set rules(rules: readonly Rule[]) {
    this.replayed = 0;
    this.resumable = 0;
    this.endsKnown = false;
    this.endLog();
    this.list = rules;
  }

  /** Restore line of each rule added in this block, 0 for rules inherited; null while shared. */
  get lines(): number[] | null {
    if (this.replayed !== 0) this.settle();
    if (this.logged !== 0) this.settleLog();
    if (this.linesLog !== null || this.linesReplayed !== null) this.settleLines();
    return this.lineList;
  }

  set lines(lines: number[] | null) {
    if (this.replayed !== 0) this.settle();
    if (this.logged !== 0) this.settleLog();
    this.resumable = 0;
    this.linesLog = null;
    this.linesReplayed = null;
    this.lineList = lines;
  }

  /** The list was built from the block's log at its exact size (no copy needed to keep it). */
  get exactList(): boolean {
    if (this.logged !== 0) this.settleLog();
    return this.exact;
  }

  /** Appends go to `log` from now on (a chain just created, nothing appended yet). */
  startLog(log: AppendLog): void {
    this.log = log;
    this.parts = null;
  }

  /**
   * Logs `rule` as the next rule, read at `line` from `text.slice(from, to)` (text null: not from
   * the restore text), when the chain is logging; false otherwise (nothing logged). `zero`: its
   * counters are zero.
   */
  logAppend(rule: Rule, line: number, text: string | null, from: number, to: number, zero: boolean): boolean {
    const log = this.log;
    if (log === null) return false;
    if (text === null || (this.logged !== 0 && text !== this.partText)) this.logPlaces = false;
    else {
      this.partText = text;
      if (!zero) this.partsZero = false;
    }
    const i = log.add(rule, line, from, to, this.logTail);
    if (this.logged === 0) this.logHead = i;
    this.logTail = i;
    this.logged++;
    return true;
  }

  get logging(): boolean {
    return this.log !== null;
  }

  get loggedCount(): number {
    return this.logged;
  }

  /** Builds the list (and the places, for a chain large enough to keep them) from the log; the
   *  chain stops logging. */
  private settleLog(): void {
    const log = this.log!, n = this.logged;
    this.logged = 0;
    const list = new Array<Rule>(n);
    for (let k = 0, i = this.logHead; k < n; k++, i = log.next[i]!) list[k] = log.rules[i]!;
    this.list = list;
    this.exact = true;
    this.linesLog = log;
    this.parts = this.logPlaces && n >= SOURCE_MIN_RULES ? log.places(this.logHead, n) : null;
    this.log = null;
  }

  private settleLines(): void {
    this.resumable = 0;
    const replayed = this.linesReplayed;
    if (replayed !== null) {
      this.linesReplayed = null;
      this.lineList = Array.from(replayed);
      return;
    }
    const log = this.linesLog!;
    this.linesLog = null;
    this.lineList = log.lines(this.logHead, this.list.length);
  }

  private endLog(): void {
    this.logged = 0;
    this.linesLog = null;
    this.linesReplayed = null;
    this.log = null;
    this.exact = false;
  }

  get owned(): boolean {
    return this.lineList !== null || this.linesReplayed !== null;
  }

  /** The mutable rule list (copied from the origin on first use). */
  own(): Rule[] {
    if (this.replayed !== 0) this.settle();
    if (this.logged !== 0) this.settleLog();
    else this.log = null;   // a chain created empty: later appends go to the list, after its edits
    if (this.linesLog !== null || this.linesReplayed !== null) this.settleLines();
    this.exact = false;
    this.resumable = 0;
    if (this.endsKnown) {
      // The list is about to change in place: what settle() recorded about it no longer holds.
      this.endsKnown = false;
      forgetEnds(this.list);
    }
    if (this.lineList === null) {
      this.source = null;
      this.list = this.list.slice();
      this.lineList = new Array<number>(this.list.length).fill(0);
    }
    return this.list as Rule[];
  }

  /**
   * Logs hint[k] (k >= 0) or `rule` (k < 0) as the next rule, read from `text.slice(from, to)`, when
   * the chain was flushed in this block and every rule since came this way; false otherwise
   * (nothing logged). `zero`: the rule's counters are zero.
   */
  replay(k: number, rule: Rule | null, line: number, text: string, from: number, to: number, zero: boolean): boolean {
    const hint = this.hint;
    let n = this.replayed;
    if (hint === null || this.parts === null) return false;
    if (n === 0 && this.resumable !== 0 && this.resumable === this.list.length && this.endsKnown && text === this.partText) {
      n = this.resumable;   // settled in the middle, unchanged since: the log goes on
      this.resumable = 0;
    } else if (n === 0) {
      // Only from a fresh flush, and starting with a rule of the hint.
      if (k < 0 || this.list.length !== 0 || this.lineList === null || this.parts.n !== 0) return false;
      const cap = hint.length + 16;
      this.replayIdx = new Int32Array(cap);
      this.replayLines = new Int32Array(cap);
      this.replayParts = new Uint32Array(2 * cap);
      this.replayNew = [];
      this.partText = text;
    } else if (text !== this.partText) {
      return false;
    }
    if (n === this.replayIdx!.length) this.growReplay();
    if (k < 0) {
      this.replayIdx![n] = -1 - this.replayNew!.length;
      this.replayNew!.push(rule!);
    } else {
      this.replayIdx![n] = k;
    }
    this.replayLines![n] = line;
    this.replayParts![2 * n] = from;
    this.replayParts![2 * n + 1] = to;
    if (!zero) this.partsZero = false;
    this.replayed = n + 1;
    return true;
  }

  get replaying(): boolean {
    return this.replayed !== 0;
  }

  /** The rules are the list a replay built, at its final size and unchanged since. */
  get settledList(): boolean {
    if (this.replayed !== 0) this.settle();
    return this.endsKnown;
  }

  /**
   * Logs hint rules k0 … k1 as the next rules, already being replayed from `text` (replay() has
   * logged one): rule j read from line `line0 + j - k0`, its text starting at `starts[j]` (as long
   * as its old text, `at` the hint's places; zero counters). False when not replaying (nothing logged).
   */
  replayStretch(k0: number, k1: number, line0: number, text: string, at: Uint32Array, starts: Uint32Array): boolean {
    let n = this.replayed;
    if (n === 0 || text !== this.partText) return false;
    while (n + (k1 - k0 + 1) > this.replayIdx!.length) this.growReplay();
    const idx = this.replayIdx!, lines = this.replayLines!, parts = this.replayParts!;
    for (let j = k0, line = line0; j <= k1; j++, n++, line++) {
      const from = starts[j]!;
      idx[n] = j;
      lines[n] = line;
      parts[2 * n] = from;
      parts[2 * n + 1] = from + at[2 * j + 1]! - at[2 * j]!;
    }
    this.replayed = n;
    return true;
  }

  private growReplay(): void {
    const grow = <T extends Int32Array | Uint32Array>(a: T, make: (n: number) => T): T => {
      const b = make(a.length * 2);
      b.set(a);
      return b;
    };
    this.replayIdx = grow(this.replayIdx!, (n) => new Int32Array(n));
    this.replayLines = grow(this.replayLines!, (n) => new Int32Array(n));
    this.replayParts = grow(this.replayParts!, (n) => new Uint32Array(n));
  }

  private settle(): void {
    const n = this.replayed;
    this.replayed = 0;
    const hint = this.hint!, fresh = this.replayNew!;
    const idx = this.replayIdx!, rl = this.replayLines!, rp = this.replayParts!;
    // Sized up front: growing arrays of 20 000 by push reallocates them in large-object space.
    const list = new Array<Rule>(n);
    for (let k = 0; k < n; k++) {
      const i = idx[k]!;
      list[k] = i >= 0 ? hint[i]! : fresh[-1 - i]!;
    }
    this.list = list;
    // Line numbers are read only for an error or a later edit in this block: kept as logged.
    this.lineList = null;
    this.linesReplayed = rl.subarray(0, n);
    this.parts = new Places(rp, 2 * n);   // the places were empty when the replay began
    // The log says where the list still equals the hint: its common ends, without comparing.
    const h = hint.length, m = Math.min(h, n);
    let p = 0;
    while (p < m && list[p] === hint[p]) p++;
    let s = 0;
    while (s < m - p && (idx[n - 1 - s] === h - 1 - s || list[n - 1 - s] === hint[h - 1 - s])) s++;
    rememberEnds(hint, list, p, s);
    this.endsKnown = true;
    this.resumable = n;
  }

}

export type ChainView = Chain | ChainDraft;

// Common ends already known for a list (b → a and the lengths), so the several readers of one
// restore's large chain (graph checks, reference counts, the compile memo) do not each walk it.
// `a` is held weakly: b's entry holding a strongly would keep a, a's entry its own older list, and
// so on — every version of a chain rewritten each sync (KUBE-SERVICES) alive for good.
const knownEnds = new WeakMap<readonly Rule[], { readonly a: WeakRef<readonly Rule[]>; readonly p: number; readonly s: number }>();

/** Records commonEnds(a, b) = [p, s]. */
export function rememberEnds(a: readonly Rule[], b: readonly Rule[], p: number, s: number): void {
  knownEnds.set(b, { a: new WeakRef(a), p, s });
}

function forgetEnds(b: readonly Rule[]): void {
  knownEnds.delete(b);
}

/** `copy` (a copy of `b`) has the same common ends with whatever b was compared with. */
export function copyEnds(b: readonly Rule[], copy: readonly Rule[]): void {
  const k = knownEnds.get(b);
  if (k !== undefined) knownEnds.set(copy, k);
}

/** Old rules a rewrite may not have reached yet when its last rule is looked for among them. */
const PENDING_MAX = 8;

/**
 * For `b`, a rewrite of `a` in progress whose common prefix is `p`: [cut, s] when `b` ends like
 * `a` without its last `cut` rules (1 ≤ cut ≤ PENDING_MAX) for `s` rules, else [0, 0].
 */
export function pendingTail(a: readonly Rule[], b: readonly Rule[], p: number): [number, number] {
  const last = b[b.length - 1];
  if (last === undefined) return [0, 0];
  for (let cut = 1; cut <= PENDING_MAX && a.length - cut > p; cut++) {
    if (a[a.length - 1 - cut] !== last) continue;
    let s = 0;
    const n = Math.min(a.length - cut, b.length) - p;
    while (s < n && a[a.length - cut - 1 - s] === b[b.length - 1 - s]) s++;
    return [cut, s];
  }
  return [0, 0];
}

/** Common prefix and suffix lengths of two rule lists (by identity). */
export function commonEnds(a: readonly Rule[], b: readonly Rule[]): [number, number] {
  const k = knownEnds.get(b);
  if (k !== undefined && k.a.deref() === a) return [k.p, k.s];
  let p = 0;
  const n = Math.min(a.length, b.length);
  while (p < n && a[p] === b[p]) p++;
  let s = 0;
  while (s < n - p && a[a.length - 1 - s] === b[b.length - 1 - s]) s++;
  return [p, s];
}
