// chain-memo.ts — the compiler's memory of the rules of each large chain it loaded, so a restore
// that changes a few rules of a 20 000-rule chain (kube-proxy rewriting KUBE-SERVICES to add one
// service) encodes only the rules between the unchanged prefix and suffix and hands the core a
// patch (iptStagePatch: the core keeps the ends of its live copy, ABI.md). Entries are kept only
// once the core accepted the restore — they then describe the core's live chain exactly — and
// dropped when the chain is deleted. Never encodes a rule itself (compile.ts does) and never talks
// to the core.
//
// Why keeping the core's words is safe: the words of an unchanged rule depend only on the rule
// (shared, immutable) and the ids of the chains it jumps to. A chain named by a rule cannot be
// deleted while that rule exists (graph.ts refuses it), so every jump target of a rule present in
// both versions kept its id. Chains whose rules name recent lists are never memoized (list ids can
// be reassigned).

import { commonEnds } from './draft.js';
import type { Rule } from './model.js';

/** Chains with fewer rules are sent whole (cheap, and the memo would cost memory). */
export const MEMO_MIN_RULES = 64;

/** What reuse() found: the core keeps the chain's first `prefix` and last `suffix` rules. */
export interface Reuse {
  readonly prefix: number;
  readonly suffix: number;
}

export class ChainMemo {
  /** Per chain id, the rules the core's live copy holds. */
  private readonly live = new Map<number, readonly Rule[]>();
  private pending: Map<number, readonly Rule[] | null> | null = null;

  /** The unchanged ends of chain `id` against its live version, or null (nothing to keep). */
  reuse(id: number, rules: readonly Rule[]): Reuse | null {
    if (rules.length < MEMO_MIN_RULES) return null;
    const from = this.live.get(id);
    if (!from) return null;
    const [prefix, suffix] = commonEnds(from, rules);
    return prefix + suffix === 0 ? null : { prefix, suffix };
  }

  /** Chain `id` was remembered when last loaded. */
  has(id: number): boolean {
    return this.live.has(id);
  }

  /** Remembers the rules compile sent for chain `id` (kept once accept() is called). */
  keep(id: number, rules: readonly Rule[], memoizable: boolean): void {
    const ok = memoizable && rules.length >= MEMO_MIN_RULES;
    if (!ok && !this.live.has(id)) return; // the common case: a small chain, nothing to forget
    this.pending ??= new Map();
    this.pending.set(id, ok ? rules : null);
  }

  /** Chain `id` is being deleted. */
  drop(id: number): void {
    if (!this.live.has(id)) return;
    this.pending ??= new Map();
    this.pending.set(id, null);
  }

  accept(): void {
    if (this.pending) {
      for (const [id, rules] of this.pending) {
        if (rules) this.live.set(id, rules);
        else this.live.delete(id);
      }
    }
    this.pending = null;
  }

  reject(): void {
    this.pending = null;
  }
}
