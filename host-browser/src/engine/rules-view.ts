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

export type Mark = 'hit' | 'seen';

/**
 * One iptables-save text, indexed once per sync so that marking a trace's rules and cutting the
 * digest cost array reads, not a parse of 200,000 lines per packet. Rules are addressed by table,
 * chain and index as the trace reports them: iptables-save prints each chain's rules in order, so
 * the n-th `-A CHAIN` line of a table is rule n.
 */
export class SaveIndex {
  readonly lines: string[];
  /** Chain named by each line (`-A` rules and `:` declarations); '' for headers and COMMIT. */
  private readonly chain: string[];
  /** Each rule line's index within its chain; -1 for other lines. */
  private readonly ordinal: Int32Array;
  private readonly perService: Uint8Array;
  /** "table/chain" → line numbers of its rules. */
  private readonly rules = new Map<string, number[]>();
  /** "table/chain" → the line declaring it. */
  private readonly declarations = new Map<string, number>();

  constructor(text: string) {
    this.lines = text.split('\n');
    const n = this.lines.length;
    this.chain = new Array<string>(n);
    this.ordinal = new Int32Array(n).fill(-1);
    this.perService = new Uint8Array(n);
    let table = '';
    this.lines.forEach((line, i) => {
      if (line.startsWith('*')) table = line.slice(1);
      const rule = chainOf(line);
      const chain = rule ?? (line.startsWith(':') ? line.slice(1).split(' ')[0]! : '');
      this.chain[i] = chain;
      if (chain !== '' && PER_SERVICE.test(chain)) this.perService[i] = 1;
      if (rule === undefined) {
        if (chain !== '') this.declarations.set(`${table}/${chain}`, i);
        return;
      }
      const key = `${table}/${rule}`;
      let at = this.rules.get(key);
      if (!at) this.rules.set(key, (at = []));
      this.ordinal[i] = at.length;
      at.push(i);
    });
  }

  /** A chain's declaration and rules as printed (empty when the table has no such chain). */
  chainLines(table: string, chain: string): string[] {
    const rules = this.rules.get(`${table}/${chain}`) ?? [];
    const decl = this.declarations.get(`${table}/${chain}`);
    return [...(decl === undefined ? [] : [this.lines[decl]!]), ...rules.map((i) => this.lines[i]!)];
  }

  /** The lines of the rules a trace visited: 'hit' where a rule matched, else 'seen'. */
  marks(refs: RuleRef[]): Map<number, Mark> {
    const out = new Map<number, Mark>();
    for (const r of refs) {
      const line = this.rules.get(`${r.table}/${r.chain}`)?.[r.rule];
      if (line === undefined) continue;
      if (r.matched || !out.has(line)) out.set(line, r.matched ? 'hit' : out.get(line) ?? 'seen');
    }
    return out;
  }

  /**
   * The lines to show. Texts up to `limit` lines come whole. Larger ones are digested: table
   * headers, COMMIT, every rule of a chain that is not per-service (the first 20 of a long one and
   * those around a marked rule), per-service chains (KUBE-SVC-…, KUBE-SEP-…) only when the packet
   * visited them, and "… n lines" markers where lines were left out.
   */
  view(marks: Map<number, Mark> = new Map(), limit = FULL_VIEW_LINES): RuleLine[] {
    const lines = this.lines;
    const line = (i: number): RuleLine => {
      const m = marks.get(i);
      return m ? { text: lines[i]!, mark: m } : { text: lines[i]! };
    };
    if (lines.length <= limit) return lines.map((_, i) => line(i));
    const visited = new Set<string>();
    for (const i of marks.keys()) visited.add(this.chain[i]!);
    const keep = new Uint8Array(lines.length);
    for (let i = 0; i < lines.length; i++) {
      const chain = this.chain[i]!;
      if (chain === '') { keep[i] = 1; continue; }
      const per = this.perService[i] === 1;
      if (per && !visited.has(chain)) continue;
      const ord = this.ordinal[i]!;
      if (ord < 20 || per) keep[i] = 1;   // declarations have ordinal -1
    }
    for (const i of marks.keys()) {
      for (let k = Math.max(0, i - CONTEXT); k <= Math.min(lines.length - 1, i + CONTEXT); k++) {
        if (this.chain[k] === this.chain[i]) keep[k] = 1;
      }
    }
    const out: RuleLine[] = [];
    let gap = 0;
    for (let i = 0; i < lines.length; i++) {
      if (!keep[i]) { gap++; continue; }
      if (gap) out.push({ text: `… ${gap.toLocaleString('en-US')} lines`, mark: 'gap' });
      gap = 0;
      out.push(line(i));
    }
    if (gap) out.push({ text: `… ${gap.toLocaleString('en-US')} lines`, mark: 'gap' });
    return out;
  }
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
