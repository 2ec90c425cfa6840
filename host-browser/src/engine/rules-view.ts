// rules-view.ts — turns rule text (iptables-save, ipvsadm -Ln, ipset save) into what the page
// shows: the lines, which of them a traced packet touched, and for large rule sets a digest
// (the chains the packet visited and the fixed chains, with "… n lines" markers) so 200,000 lines
// never cross to the page. Also the line diff between two syncs. Pure text work: never holds a
// Dataplane and never touches the DOM.

export interface RuleLine {
  text: string;
  /** 'hit' a rule the packet matched, 'seen' visited but not matched, 'gap' an omission marker. */
  mark?: 'hit' | 'seen' | 'gap';
}

export interface RulesView {
  title: string;
  lines: RuleLine[];
  /** Lines of the full text (the view may show fewer). */
  total: number;
}

/** A rule the trace visited: table, chain and 0-based index among the chain's `-A` lines. */
export interface RuleRef {
  table: string;
  chain: string;
  rule: number;
  matched: boolean;
}

/** Texts up to this many lines are shown whole. */
export const FULL_VIEW_LINES = 4000;
/** Per-service chains a digest leaves out unless the packet visited them. */
const PER_SERVICE = /^KUBE-(SVC|SVL|SEP|EXT|FW)-/;
/** Rules kept around a visited rule of a long chain in a digest. */
const CONTEXT = 3;

function chainOf(line: string): string | undefined {
  if (!line.startsWith('-A ')) return undefined;
  const end = line.indexOf(' ', 3);
  return end < 0 ? line.slice(3) : line.slice(3, end);
}

/**
 * Marks the iptables-save lines a trace visited. Rules are addressed by table, chain and index as
 * the trace reports them; iptables-save prints each chain's rules in order, so the n-th `-A CHAIN`
 * line of a table is rule n.
 */
export function markSave(text: string, refs: RuleRef[]): RuleLine[] {
  const want = new Map<string, boolean>();
  for (const r of refs) {
    const k = `${r.table}/${r.chain}/${r.rule}`;
    want.set(k, (want.get(k) ?? false) || r.matched);
  }
  const seen = new Map<string, number>();
  let table = '';
  return text.split('\n').map((line) => {
    if (line.startsWith('*')) {
      table = line.slice(1);
      seen.clear();
    }
    const chain = chainOf(line);
    if (chain === undefined) return { text: line };
    const n = seen.get(chain) ?? 0;
    seen.set(chain, n + 1);
    const m = want.get(`${table}/${chain}/${n}`);
    return m === undefined ? { text: line } : { text: line, mark: m ? 'hit' : 'seen' };
  });
}

/**
 * The lines worth showing of a large iptables-save text: table headers, COMMIT, every rule of a
 * chain that is not per-service, per-service chains only when marked, and in long chains only the
 * first rules and those around a marked rule. Chain declarations of per-service chains are left
 * out. Short texts come back whole.
 */
export function digest(lines: RuleLine[], limit = FULL_VIEW_LINES): RuleLine[] {
  if (lines.length <= limit) return lines;
  const visited = new Set<string>();
  for (const l of lines) if (l.mark) visited.add(chainOf(l.text) ?? '');
  const keep = new Uint8Array(lines.length);
  const perChain = new Map<string, number>();
  lines.forEach((l, i) => {
    const chain = chainOf(l.text) ?? (l.text.startsWith(':') ? l.text.slice(1).split(' ')[0]! : undefined);
    if (chain === undefined) { keep[i] = 1; return; }
    if (PER_SERVICE.test(chain) && !visited.has(chain)) return;
    if (l.text.startsWith(':')) { keep[i] = 1; return; }
    const n = perChain.get(chain) ?? 0;
    perChain.set(chain, n + 1);
    if (n < 20 || visited.has(chain) && PER_SERVICE.test(chain)) keep[i] = 1;
    if (l.mark) {
      for (let k = Math.max(0, i - CONTEXT); k <= Math.min(lines.length - 1, i + CONTEXT); k++) {
        if (chainOf(lines[k]!.text) === chain) keep[k] = 1;
      }
    }
  });
  const out: RuleLine[] = [];
  let gap = 0;
  lines.forEach((l, i) => {
    if (!keep[i]) { gap++; return; }
    if (gap) out.push({ text: `… ${gap.toLocaleString('en-US')} lines`, mark: 'gap' });
    gap = 0;
    out.push(l);
  });
  if (gap) out.push({ text: `… ${gap.toLocaleString('en-US')} lines`, mark: 'gap' });
  return out;
}

/** Marks the lines containing any of `needles` (IPVS: the virtual service and the chosen server). */
export function markContaining(text: string, hits: string[], seen: string[] = []): RuleLine[] {
  return text.split('\n').map((line) => {
    if (hits.some((h) => line.includes(h))) return { text: line, mark: 'hit' as const };
    if (seen.some((h) => line.includes(h))) return { text: line, mark: 'seen' as const };
    return { text: line };
  });
}

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
export function chainsIn(diff: LineDiff): string[] {
  const s = new Set<string>();
  for (const l of [...diff.added, ...diff.removed]) {
    const c = chainOf(l) ?? (l.startsWith(':') ? l.slice(1).split(' ')[0] : undefined);
    if (c) s.add(c);
  }
  return [...s].sort();
}
