// trace-marks.ts — which rules of each chain a traced packet visited: the ones that matched, and
// the ones checked without a match kept as runs, so the rules view can mark a 20,000-rule walk
// through KUBE-SERVICES at the cost of one run. Knows nothing of rule text or of the page.

/** How a trace marked a rule: matched it, or checked it and went on. */
export type Mark = 'hit' | 'seen';

/** The rules of one chain a trace visited. */
export interface ChainMarks {
  /** Rules that matched. */
  hits: Set<number>;
  /** Rules visited without a match, as flat [from, to) pairs (a first-match walk is one run). */
  seen: number[];
  /** `seen` is sorted and its runs disjoint (false after an out-of-order visit until chain() merges them). */
  settled: boolean;
}

/**
 * The rules a trace visited, per chain ("table/chain"): the matched ones, and the ones checked
 * without a match as runs, so a walk of 20,000 KUBE-SERVICES rules costs one run, not 20,000
 * entries. A rule both checked and matched (two visits) counts as matched.
 */
export class TraceMarks {
  private readonly chains = new Map<string, ChainMarks>();

  /** Records one visit of rule `rule` of the chain `key`. */
  add(key: string, rule: number, matched: boolean): void {
    let c = this.chains.get(key);
    if (!c) this.chains.set(key, (c = { hits: new Set(), seen: [], settled: true }));
    if (matched) {
      c.hits.add(rule);
      return;
    }
    const n = c.seen.length;
    if (n && c.seen[n - 1] === rule) {
      c.seen[n - 1] = rule + 1;
      return;
    }
    if (n && c.seen[n - 1]! > rule) c.settled = false;
    c.seen.push(rule, rule + 1);
  }

  /** The chain's visits (runs sorted and merged), or undefined when the trace never entered it. */
  chain(key: string): ChainMarks | undefined {
    const c = this.chains.get(key);
    if (c && !c.settled) {
      const runs: Array<[number, number]> = [];
      for (let i = 0; i < c.seen.length; i += 2) runs.push([c.seen[i]!, c.seen[i + 1]!]);
      runs.sort((a, b) => a[0] - b[0]);
      const merged: number[] = [];
      for (const [from, to] of runs) {
        const n = merged.length;
        if (n && merged[n - 1]! >= from) merged[n - 1] = Math.max(merged[n - 1]!, to);
        else merged.push(from, to);
      }
      c.seen = merged;
      c.settled = true;
    }
    return c;
  }

  /** How the trace marked rule `rule` of chain `key`. */
  get(key: string, rule: number): Mark | undefined {
    const c = this.chain(key);
    if (!c) return undefined;
    return c.hits.has(rule) ? 'hit' : seenCount(c, rule, rule + 1) ? 'seen' : undefined;
  }

  /** Calls `fn` with each chain the trace entered ("table/chain") and its visits. */
  forEach(fn: (key: string, marks: ChainMarks) => void): void {
    for (const key of this.chains.keys()) fn(key, this.chain(key)!);
  }

  /** Chains the trace entered. */
  get size(): number {
    return this.chains.size;
  }
}

/** Rules in [from, to) the chain's runs cover (checked without a match). */
export function seenCount(c: ChainMarks, from: number, to: number): number {
  let n = 0;
  for (let i = 0; i < c.seen.length; i += 2) {
    const a = Math.max(from, c.seen[i]!), b = Math.min(to, c.seen[i + 1]!);
    if (b > a) n += b - a;
  }
  return n;
}
