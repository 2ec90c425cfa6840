// chain-memo.ts — the compiler's memory of the last encoding of each large chain it loaded, so a
// restore that changes a few rules of a 20 000-rule chain (kube-proxy rewriting KUBE-SERVICES to
// add one service) re-encodes only the rules between the unchanged prefix and suffix and copies
// the rest as words. Entries are kept only once the core accepted the restore, and dropped when
// the chain is deleted. Never encodes a rule itself (compile.ts does) and never talks to the core.
//
// Why copying is safe: the words of an unchanged rule depend only on the rule (shared, immutable)
// and the ids of the chains it jumps to. A chain named by a rule cannot be deleted while that rule
// exists (graph.ts refuses it), so every jump target of a rule present in both versions kept its
// id. Chains whose rules name recent lists are never memoized (list ids can be reassigned).

import { commonEnds } from './draft.js';
import type { Rule } from './model.js';

/** Chains with fewer rules are re-encoded whole (cheap, and the memo would cost memory). */
export const MEMO_MIN_RULES = 64;

/** One chain as last loaded: its rules, their words, and per rule [start, target, end] offsets. */
interface Entry {
  readonly rules: readonly Rule[];
  readonly words: Uint32Array;
  readonly recs: Uint32Array;
}

/** What reuse() found: copy rules [0, prefix) and [n - suffix, n) from `from`. */
export interface Reuse {
  readonly prefix: number;
  readonly suffix: number;
  readonly from: Entry;
}

export class ChainMemo {
  private readonly live = new Map<number, Entry>();
  private pending: Map<number, Entry | null> | null = null;
  // Per chain, the buffers of the entry before the live one: the next keep() of that chain writes
  // into them, so rewriting a large chain on every sync copies its words without allocating.
  private readonly spare = new Map<number, { words: Uint32Array; recs: Uint32Array }>();

  /** The unchanged ends of chain `id` against its last loaded version, or null (nothing to reuse). */
  reuse(id: number, rules: readonly Rule[]): Reuse | null {
    if (rules.length < MEMO_MIN_RULES) return null;
    const from = this.live.get(id);
    if (!from) return null;
    const [prefix, suffix] = commonEnds(from.rules, rules);
    return prefix + suffix === 0 ? null : { prefix, suffix, from };
  }

  /** Chain `id` was remembered when last loaded. */
  has(id: number): boolean {
    return this.live.has(id);
  }

  /** Remembers what compile produced for chain `id`: the first `wordCount` words and the rule
   *  records (copied; kept once accept() is called). */
  keep(id: number, rules: readonly Rule[], words: Uint32Array, wordCount: number, recs: Uint32Array, memoizable: boolean): void {
    const ok = memoizable && rules.length >= MEMO_MIN_RULES;
    if (!ok && !this.live.has(id)) return; // the common case: a small chain, nothing to forget
    this.pending ??= new Map();
    if (!ok) {
      this.pending.set(id, null);
      return;
    }
    const nRecs = rules.length * 3;
    const sp = this.spare.get(id);
    const w = sp !== undefined && sp.words.length >= wordCount ? sp.words : new Uint32Array(wordCount + (wordCount >> 3));
    const r = sp !== undefined && sp.recs.length >= nRecs ? sp.recs : new Uint32Array(nRecs + (nRecs >> 3));
    this.spare.delete(id);   // in use by the pending entry now
    w.set(words.subarray(0, wordCount));
    r.set(recs.subarray(0, nRecs));
    this.pending.set(id, { rules, words: w.subarray(0, wordCount), recs: r.subarray(0, nRecs) });
  }

  /** Chain `id` is being deleted. */
  drop(id: number): void {
    if (!this.live.has(id)) return;
    this.pending ??= new Map();
    this.pending.set(id, null);
  }

  accept(): void {
    if (this.pending) {
      for (const [id, e] of this.pending) {
        const old = this.live.get(id);
        if (e) {
          this.live.set(id, e);
          if (old) this.spare.set(id, { words: new Uint32Array(old.words.buffer), recs: new Uint32Array(old.recs.buffer) });
        } else {
          this.live.delete(id);
          this.spare.delete(id);
        }
      }
    }
    this.pending = null;
  }

  reject(): void {
    // Buffers a pending entry took stay unreferenced; the chain's next keep() allocates anew.
    this.pending = null;
  }
}

/**
 * Copies rules [0, prefix) of a reuse into `buf`/`recs` (which start empty); returns the number of
 * words written.
 */
export function copyPrefix(r: Reuse, buf: Uint32Array, recs: Uint32Array): number {
  const p = r.prefix;
  if (p === 0) return 0;
  const end = r.from.recs[(p - 1) * 3 + 2]!;
  buf.set(r.from.words.subarray(0, end), 0);
  recs.set(r.from.recs.subarray(0, p * 3), 0);
  return end;
}

/** Words the suffix of a reuse needs. */
export function suffixWords(r: Reuse): number {
  if (r.suffix === 0) return 0;
  const m = r.from.rules.length;
  return r.from.recs[(m - 1) * 3 + 2]! - r.from.recs[(m - r.suffix) * 3]!;
}

/**
 * Copies the last `suffix` rules of a reuse after `at` words of `buf`, rules from index `n - suffix`
 * of `recs`, shifting their offsets; returns the new word count.
 */
export function copySuffix(r: Reuse, buf: Uint32Array, at: number, recs: Uint32Array, n: number): number {
  const s = r.suffix;
  if (s === 0) return at;
  const m = r.from.rules.length;
  const start = r.from.recs[(m - s) * 3]!;
  const end = r.from.recs[(m - 1) * 3 + 2]!;
  buf.set(r.from.words.subarray(start, end), at);
  const delta = at - start;
  const src = r.from.recs;
  for (let k = 0, d = (n - s) * 3, f = (m - s) * 3; k < s * 3; k++) recs[d + k] = src[f + k]! + delta;
  return at + (end - start);
}
