// line-diff.ts — what a sync changed in rule text, for the playground's diff view: the lines
// added and removed between two texts (as multisets, so reordered chains are no change), a sample
// of them small enough for the page, and the chains they belong to. Pure text work; never reads
// a Dataplane.
import { chainOf, listChains, type ChainList } from './rules-view.js';

export interface LineDiff {
  added: string[];
  removed: string[];
}

/** A diff for the page: at most `limit` lines of each side, with the full counts. */
export interface DiffSample extends LineDiff {
  addedTotal: number;
  removedTotal: number;
}

export function sampleDiff(d: LineDiff, limit = 400): DiffSample {
  return { added: d.added.slice(0, limit), removed: d.removed.slice(0, limit), addedTotal: d.added.length, removedTotal: d.removed.length };
}

/**
 * The rule lines that differ between two texts, as multisets: a line printed once before and once
 * after is unchanged wherever it moved (chain order in iptables-save follows creation, not
 * meaning). Declarations and table markers are skipped; counters are not printed.
 */
export function diffLines(before: string, after: string, isRule = (l: string) => l !== '' && !l.startsWith('#')): LineDiff {
  const count = new Map<string, number>();
  for (const l of before.split('\n')) if (isRule(l)) count.set(l, (count.get(l) ?? 0) + 1);
  const added: string[] = [];
  for (const l of after.split('\n')) {
    if (!isRule(l)) continue;
    const n = count.get(l) ?? 0;
    if (n > 0) count.set(l, n - 1);
    else added.push(l);
  }
  const removed: string[] = [];
  for (const l of before.split('\n')) {
    if (!isRule(l)) continue;
    const n = count.get(l) ?? 0;
    if (n > 0) {
      removed.push(l);
      count.set(l, n - 1);
    }
  }
  return { added, removed };
}

export const isIptablesRule = (l: string): boolean => l.startsWith('-A ') || (l.startsWith(':') && !/^:(INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) /.test(l));

/** The chains whose rules differ, from a diff of iptables-save texts. */
export function chainsIn(diff: LineDiff, limit?: number): ChainList {
  const s = new Set<string>();
  for (const l of [...diff.added, ...diff.removed]) {
    const c = chainOf(l) ?? (l.startsWith(':') ? l.slice(1).split(' ')[0] : undefined);
    if (c) s.add(c);
  }
  return listChains(s, limit);
}
