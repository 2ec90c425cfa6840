// loops.ts — jump loops at COMMIT (graph.ts): whether the jumps a block added reach a loop, by
// one colouring walk from their targets that visits each chain once, and only then whether a
// built-in chain reaches it and which loop to report, at the jump that closed it (the per-jump
// search; the walk from the built-in chains when that search grows large). As the kernel's
// mark_source_chains() (ip_tables.c), a loop among chains no built-in chain reaches is accepted.
// Also CommitError, what every COMMIT check throws. Never changes a draft's rules.

import { ChainDraft, jumpOf, type ChainView, type TableDraft } from './draft.js';
import type { Middles } from './graph.js';
import { BUILTIN_CHAINS } from './ruleset.js';

/** A problem found at COMMIT, located at the restore line of the rule at fault when known. */
export class CommitError extends Error {
  constructor(
    readonly line: number,
    readonly word: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Whether a new jump's target reaches a loop in the jump graph as the block leaves it: one
 * depth-first colouring walk from the new jumps' targets, each chain visited once. A table has no
 * loop a built-in chain reaches, so only then can the block have made one.
 */
export function reachesLoop(td: TableDraft, middles: Middles): boolean {
  // Walk state: a draft's in its own field, other chains' in a map (1 on the path, 2 done).
  const old = new Map<string, number>();
  const stateOf = (v: ChainView): number => (v instanceof ChainDraft ? v.walk : old.get(v.name) ?? 0);
  const mark = (v: ChainView, s: number): void => {
    if (v instanceof ChainDraft) v.walk = s;
    else old.set(v.name, s);
  };
  const path: ChainView[] = [];
  const at: number[] = [];
  const views = middles.views;
  let found = false;
  let last: ChainView | undefined;
  middles.forEachTarget((d, root) => {
    if (found) return;
    if (root === d) {
      found = true;
      return;
    }
    if (root === last) return; // the same target as the jump before: walked already
    last = root;
    if (stateOf(root) !== 0) return;
    mark(root, 1);
    path.push(root);
    at.push(0);
    while (path.length !== 0) {
      const top = path.length - 1;
      const cur = path[top]!;
      const rules = cur.rules;
      let k = at[top]!;
      let next: ChainView | undefined;
      // A wholly new draft's targets were resolved by COMMIT's first step: read them, not its rules.
      const base = cur instanceof ChainDraft ? cur.viewBase : -1;
      while (k < rules.length) {
        let v: ChainView | undefined;
        if (base >= 0) v = views[base + k++];
        else {
          const t = rules[k++]!.target;
          if (t === null || t.kind !== 'jump') continue;
          v = middles.targetOf(cur, k - 1, t.chain);
        }
        if (v === undefined) continue;
        const s = stateOf(v);
        if (s === 1) {
          found = true;
          return;
        }
        if (s === 0) {
          next = v;
          break;
        }
      }
      if (next !== undefined) {
        at[top] = k;
        mark(next, 1);
        path.push(next);
        at.push(0);
        continue;
      }
      mark(path[top]!, 2);
      path.pop();
      at.pop();
    }
  });
  return found;
}

/**
 * After reachesLoop(): throws for a loop the table's built-in chains reach — at the new jump that
 * closed it when one did (`edges`, latest first), else (a new jump, or rules no longer cut off by
 * an unconditional verdict, led into an older loop) where the walk from the built-in chains meets
 * it. `adjacency` gives the jumps the kernel's walk follows.
 */
export function refuseHookLoops(
  edges: readonly { from: string; to: string; line: number }[],
  adjacency: (n: string) => readonly string[],
  td: TableDraft,
  lineOf: (d: ChainView, k: number) => number,
): void {
  const { loop, reached } = hookWalk(td, adjacency, lineOf);
  if (loop === null) return;
  findLoops(edges.filter((e) => reached.has(e.from) && adjacency(e.from).includes(e.to)), adjacency, td, lineOf);
  throw loop;
}

function findLoops(
  edges: readonly { from: string; to: string; line: number }[],
  adjacency: (n: string) => readonly string[],
  td: TableDraft,
  lineOf: (d: ChainView, k: number) => number,
): void {
  const seenFrom = new Map<string, Set<string>>(); // per source: chains known not to lead back to it
  let budget = 4 * td.graphBase.size + 4 * edges.length + 1024;
  const stack: string[] = [];
  for (const e of edges) {
    if (e.from === e.to) throw new CommitError(e.line, e.to, `Loop found in table (${e.from} -> ${e.to})`);
    const first = adjacency(e.to);
    if (first.length === 0) continue; // a chain that jumps nowhere closes no loop
    let seen = seenFrom.get(e.from);
    if (!seen) seenFrom.set(e.from, (seen = new Set()));
    if (seen.has(e.to)) continue;
    seen.add(e.to);
    stack.length = 0;
    stack.push(e.to);
    while (stack.length) {
      const v = stack.pop()!;
      if (--budget < 0) return hookLoopCheck(td, adjacency, lineOf);
      for (const t of adjacency(v)) {
        if (t === e.from) throw new CommitError(e.line, e.to, `Loop found in table (${loopPath(e.from, e.to, adjacency)})`);
        if (seen.has(t)) continue;
        seen.add(t);
        stack.push(t);
      }
    }
  }
}

/** `a -> b -> … -> a` for the loop through the jump a→b (breadth-first, so the shortest). */
function loopPath(from: string, to: string, adjacency: (n: string) => readonly string[]): string {
  const parent = new Map<string, string>([[to, from]]);
  const queue = [to];
  for (let q = 0; q < queue.length; q++) {
    const v = queue[q];
    for (const t of adjacency(v)) {
      if (t === from) {
        const path = [from];
        for (let x: string | undefined = v; x !== from && x !== undefined; x = parent.get(x)) path.push(x);
        return [from, ...path.slice(1).reverse(), from].join(' -> ');
      }
      if (!parent.has(t)) {
        parent.set(t, v);
        queue.push(t);
      }
    }
  }
  return `${from} -> ${to}`;
}

/** hookWalk(), throwing its loop. */
function hookLoopCheck(td: TableDraft, adjacency: (n: string) => readonly string[], lineOf: (d: ChainView, k: number) => number): void {
  const { loop } = hookWalk(td, adjacency, lineOf);
  if (loop !== null) throw loop;
}

/**
 * One colouring DFS from the built-in chains (the kernel's walk): every chain they reach (the
 * keys of `reached`), and the first loop met, located at the jump that closes it, or null.
 */
function hookWalk(
  td: TableDraft,
  adjacency: (n: string) => readonly string[],
  lineOf: (d: ChainView, k: number) => number,
): { loop: CommitError | null; reached: ReadonlyMap<string, 1 | 2> } {
  let loop: CommitError | null = null;
  const state = new Map<string, 1 | 2>(); // 1 on the stack, 2 done
  for (const root of BUILTIN_CHAINS[td.name]) {
    if (state.has(root)) continue;
    const stack: [string, number][] = [[root, 0]];
    state.set(root, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const adj = adjacency(top[0]);
      if (top[1] >= adj.length) {
        state.set(top[0], 2);
        stack.pop();
        continue;
      }
      const t = adj[top[1]++];
      const st = state.get(t);
      if (st === 1 && loop === null) {
        const d = td.get(top[0]);
        const k = d ? d.rules.findIndex((r) => jumpOf(r) === t) : -1;
        loop = new CommitError(d && k >= 0 ? lineOf(d, k) : 0, t, `Loop found in table (${top[0]} -> ${t})`);
      }
      if (st === undefined) {
        state.set(t, 1);
        stack.push([t, 0]);
      }
    }
  }
  return { loop, reached: state };
}
