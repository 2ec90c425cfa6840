// rules-view.ts — turns rule text (iptables-save, ipvsadm -Ln, ipset save) into what the page
// shows: the lines, which of them a traced packet touched, and for large rule sets a digest
// (the chains the packet visited and the fixed chains, with "… n lines" markers) so 200,000 lines
// never cross to the page. Pure text work: never holds a Dataplane and never touches the DOM.

import type { RuleLines } from '../../../host-node/netfilter/index.js';
import type { DiffSample } from './line-diff.js';
import { TraceMarks, seenCount, type ChainMarks, type Mark } from './trace-marks.js';

export interface RuleLine {
  text: string;
  /** 'hit' a rule the packet matched, 'seen' visited but not matched, 'gap' an omission marker. */
  mark?: Mark | 'gap';
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
/** Rules kept at the head of a long chain that is not per-service (KUBE-SERVICES, KUBE-NODEPORTS). */
const HEAD = 20;

/** The chain's declaration line: as read, or a user chain's (`:NAME - [0:0]`). */
function declOf(c: ChainRules): string {
  return c.decl ?? `:${c.name} - [0:0]`;
}

/** A chain's entry (a built-in one with its policy). */
function chainRules(name: string, rules: RuleLines, policy: string | null): ChainRules {
  return { name, decl: policy === null ? undefined : `:${name} ${policy} [0:0]`, rules, builtin: policy !== null, perService: PER_SERVICE.test(name) };
}

/** Appends a rule line read from text (a chain read from text holds its lines in an array). */
function pushRule(c: ChainRules, line: string): void {
  (c.rules as string[]).push(line);
}

export function chainOf(line: string): string | undefined {
  if (!line.startsWith('-A ')) return undefined;
  const end = line.indexOf(' ', 3);
  return end < 0 ? line.slice(3) : line.slice(3, end);
}

/** Chains a sync names at most; past that it gives their count alone (a first load of 20,000 Services adds 60,000, and the page shows a count). */
export const CHAINS_LISTED = 1000;

/** The chains a sync changed: how many, and their names in sort order when there are at most CHAINS_LISTED (else none). */
export interface ChainList {
  names: string[];
  count: number;
}

export function listChains(chains: ReadonlySet<string>, limit = CHAINS_LISTED): ChainList {
  return { names: chains.size <= limit ? [...chains].sort() : [], count: chains.size };
}


interface ChainRules {
  name: string;
  /** The chain's declaration line as read (`:PREROUTING ACCEPT [0:0]`); a user chain's by default (see declOf). */
  decl?: string;
  /** Its `-A` lines: read from text, or printed on demand from the live chain (Dataplane.iptablesChains). */
  rules: RuleLines;
  builtin: boolean;
  perService: boolean;
}

/** What a digest needs of a table's chains (see TableRules.laidOut). */
interface Layout {
  /** rulesBefore[i]: the rules of order[0..i), for i up to the chain count (the array may be longer). */
  rulesBefore: Float64Array;
  /** The chains that are not per-service, in order. */
  fixed: ChainRules[];
}

/** A rulesBefore array for `n` chains with room for the chains later syncs add. */
const roomyRulesBefore = (n: number): Float64Array => new Float64Array(n + 1 + (n >> 3) + 16);

function layOut(order: ChainRules[]): Layout {
  const n = order.length;
  const rulesBefore = roomyRulesBefore(n);
  const fixed: ChainRules[] = [];
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const c = order[i]!;
    sum += c.rules.length;
    rulesBefore[i + 1] = sum;
    if (!c.perService) fixed.push(c);
  }
  return { rulesBefore, fixed };
}

/** One table: its chains in text order, and by name. */
class TableRules {
  readonly order: ChainRules[] = [];
  /**
   * The chains by name, made on the first lookup that needs it. A table read from the live rules
   * (SaveIndex.fromChains) is in the kernel's order — built-in chains, then user chains sorted by
   * name — and is searched in that order instead, so its 60,000 chains are never put in a map.
   */
  private byName: Map<string, ChainRules> | undefined;
  private sorted = false;
  private layout: Layout | undefined;

  constructor(readonly name: string) {}

  /** The chain of that name. */
  find(name: string): ChainRules | undefined {
    if (!this.sorted) return (this.byName ??= new Map(this.order.map((c) => [c.name, c]))).get(name);
    const order = this.order;
    let lo = 0;
    for (; lo < order.length && order[lo]!.builtin; lo++) if (order[lo]!.name === name) return order[lo];
    let hi = order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (order[mid]!.name < name) lo = mid + 1;
      else hi = mid;
    }
    return order[lo]?.name === name ? order[lo] : undefined;
  }

  /** Chains in the kernel's order (see byName), appended by fromChains. */
  static inKernelOrder(name: string, chains: ReadonlyArray<{ name: string; policy: string | null; rules: RuleLines }>): TableRules {
    const t = new TableRules(name);
    for (const { name: n, policy, rules } of chains) t.order.push(chainRules(n, rules, policy));
    t.sorted = true;
    return t;
  }

  /** Puts `c` at position `p` of the order (where slot() or the built-ins' end says). */
  place(p: number, c: ChainRules): void {
    this.order.splice(p, 0, c);
    this.byName?.set(c.name, c);
    this.inserted(p, c);
  }

  /** Takes chain `c` out. */
  drop(c: ChainRules): void {
    const p = this.order.indexOf(c);
    this.order.splice(p, 1);
    this.byName?.delete(c.name);
    this.inserted(p, c, true);
  }

  /**
   * The rules before each position and the chains that are not per-service: what a digest needs
   * to count the lines it leaves out without walking them. Built once, then kept up to date by
   * resized/inserted/removed as a sync replaces chains: rebuilding it means reading every one of
   * 60,000 chain objects, which costs an edit more than the rest of its view.
   */
  laidOut(): Layout {
    return (this.layout ??= layOut(this.order));
  }

  /** The chain at position `p` went from `was` rules to `now`. */
  resized(p: number, was: number, now: number): void {
    const rb = this.layout?.rulesBefore;
    if (rb === undefined || was === now) return;
    for (let i = p + 1, n = this.order.length; i <= n; i++) rb[i] += now - was;
  }

  /** Chain `c` was put at position `p` (`removed`: taken from there); `order` has changed already. */
  inserted(p: number, c: ChainRules, removed = false): void {
    const l = this.layout;
    if (l === undefined) return;
    if (!c.perService) {
      this.layout = undefined;   // the fixed list changes: rare (a new KUBE-* chain of kube-proxy's own)
      return;
    }
    // rulesBefore has room to spare, so an edit moves its tail in place instead of copying it.
    const n = this.order.length, len = removed ? -c.rules.length : c.rules.length;
    let rb = l.rulesBefore;
    if (removed) {
      rb.copyWithin(p + 1, p + 2, n + 2);
    } else {
      if (rb.length < n + 1) {
        const grown = roomyRulesBefore(n);
        grown.set(rb);
        l.rulesBefore = rb = grown;
      }
      rb.copyWithin(p + 1, p, n);
    }
    for (let i = p + 1; i <= n; i++) rb[i] += len;
  }

  /** The named chain, appended (as a user chain) when new. */
  chain(name: string): ChainRules {
    const have = this.find(name);
    if (have) return have;
    const c = chainRules(name, [], null);
    this.sorted = false;
    this.byName?.set(name, c);
    this.order.push(c);
    return c;
  }

  /** Reads `iptables -S` lines into this table's chains. */
  read(text: string): void {
    for (const line of text.split('\n')) {
      if (line.startsWith('-P ')) {
        const [, name, policy] = line.split(' ');
        const c = this.chain(name!);
        c.decl = `:${name} ${policy} [0:0]`;
        c.builtin = true;
      } else if (line.startsWith('-N ')) {
        this.chain(line.slice(3));
      } else if (line.startsWith('-A ')) {
        pushRule(this.chain(chainOf(line)!), line);
      }
    }
  }

  /** Where a new user chain goes: after the built-in chains, in name order (binary search). */
  slot(name: string): number {
    let lo = 0;
    while (lo < this.order.length && this.order[lo]!.builtin) lo++;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.order[mid]!.name < name) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** The rule indexes of a long chain a digest shows: the first HEAD, and CONTEXT around each hit, as sorted [from, to) windows. */
function shownWindows(length: number, hits: Iterable<number>): Array<[number, number]> {
  const w: Array<[number, number]> = [[0, Math.min(HEAD, length)]];
  for (const h of hits) w.push([Math.max(0, h - CONTEXT), Math.min(length, h + CONTEXT + 1)]);
  w.sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  for (const [from, to] of w) {
    const last = out.at(-1);
    if (last && last[1] >= from) last[1] = Math.max(last[1], to);
    else if (to > from) out.push([from, to]);
  }
  return out;
}

/**
 * The iptables rules a view shows, held per table and chain (iptables-save's shape: per table
 * its declarations, then each chain's rules), so that marking a trace's rules and cutting the
 * digest cost lookups, never a parse of 200,000 lines per packet, and a partial sync replaces
 * only the chains it rewrote (setChain, from `iptables -S CHAIN` text). Rules are addressed by
 * table, chain and index as the trace reports them.
 */
export class SaveIndex {
  private readonly tables: TableRules[] = [];
  /** `total`, counted on first use and kept up to date by setChain. */
  private lineCount: number | undefined;

  /** Indexes iptables-save text. */
  constructor(text = '') {
    let table: TableRules | undefined;
    for (const line of text.split('\n')) {
      if (line.startsWith('*')) {
        this.tables.push((table = new TableRules(line.slice(1))));
      } else if (!table || line === 'COMMIT' || line.startsWith('#')) {
        continue;
      } else if (line.startsWith(':')) {
        const name = line.slice(1).split(' ')[0]!;
        const c = table.chain(name);
        c.decl = line;
        c.builtin = !line.startsWith(`:${name} - `);
      } else {
        const name = chainOf(line);
        if (name !== undefined) pushRule(table.chain(name), line);
      }
    }
  }

  /** Indexes `iptables -S` text, one table each (what the kernel's iptables-save prints, per table). */
  static fromRules(tables: Array<{ table: string; rules: string }>): SaveIndex {
    const ix = new SaveIndex();
    for (const { table, rules } of tables) {
      const t = new TableRules(table);
      t.read(rules);
      ix.tables.push(t);
    }
    return ix;
  }

  /** Indexes tables given chain by chain (Dataplane.iptablesChains): the same as fromRules of their `-S` text. */
  static fromChains(tables: Array<{ table: string; chains: Array<{ name: string; policy: string | null; rules: RuleLines }> }>): SaveIndex {
    const ix = new SaveIndex();
    for (const { table, chains } of tables) ix.tables.push(TableRules.inKernelOrder(table, chains));
    return ix;
  }

  private table(name: string): TableRules | undefined {
    return this.tables.find((t) => t.name === name);
  }

  /**
   * Replaces one chain with its `iptables -S CHAIN` text, or deletes it (`rules` null). A new user
   * chain takes its place in name order after the built-in ones, as the kernel's iptables-save
   * prints them (iptables-save.c: libiptc's sorted chain list).
   */
  setChain(table: string, chain: string, rules: string | null): void {
    let t = this.table(table);
    if (!t) {
      if (rules === null) return;
      this.tables.push((t = new TableRules(table)));
      if (this.lineCount !== undefined) this.lineCount += 2;   // *table, COMMIT
    }
    const old = t.find(chain);
    const lines = (c: ChainRules | undefined) => (c ? 1 + c.rules.length : 0);
    const was = lines(old);
    let now: ChainRules | undefined;
    if (rules === null) {
      if (!old) return;
      t.drop(old);
    } else if (old) {
      const n = old.rules.length;
      old.rules = [];
      t.read(rules);
      now = old;
      t.resized(t.order.indexOf(old), n, old.rules.length);
    } else {
      const fresh = new TableRules(table);
      fresh.read(rules);
      now = fresh.find(chain);
      if (!now) return;
      t.place(now.builtin ? t.order.findIndex((x) => !x.builtin) >>> 0 : t.slot(chain), now);
    }
    if (this.lineCount !== undefined) this.lineCount += lines(now) - was;
  }

  /** Lines of the whole text. */
  get total(): number {
    if (this.lineCount === undefined) {
      let n = 0;
      for (const t of this.tables) {
        n += 2 + t.order.length;
        for (const c of t.order) n += c.rules.length;
      }
      this.lineCount = n;
    }
    return this.lineCount;
  }

  /** The whole text's lines, in order. */
  text(): string[] {
    const out: string[] = [];
    for (const t of this.tables) {
      out.push(`*${t.name}`);
      for (const c of t.order) out.push(declOf(c));
      for (const c of t.order) for (let i = 0; i < c.rules.length; i++) out.push(c.rules.at(i)!);
      out.push('COMMIT');
    }
    return out;
  }

  /**
   * The diff from nothing to this text, as sampleDiff(diffLines('', text, isIptablesRule)) and
   * chainsIn() of it give it, without listing every line (a first load of 20,000 Services).
   */
  addedAll(limit = 400, listed = CHAINS_LISTED): { diff: DiffSample; chains: ChainList } {
    const added: string[] = [];
    let total = 0;
    for (const t of this.tables) {
      for (const c of t.order) {
        if (c.builtin) continue;   // isIptablesRule: built-in chains' declarations are not rules
        total++;
        if (added.length < limit) added.push(declOf(c));
      }
      for (const c of t.order) {
        const n = c.rules.length;
        if (n === 0) continue;
        total += n;
        for (let i = 0; i < n && added.length < limit; i++) added.push(c.rules.at(i)!);
      }
    }
    return { diff: { added, removed: [], addedTotal: total, removedTotal: 0 }, chains: this.chainsAdded(listed) };
  }

  // The chains a diff from nothing names (user chains and chains with rules, each name once across
  // tables: KUBE-SERVICES is in nat and filter), counted without a set of 45,000 names.
  private chainsAdded(listed: number): ChainList {
    const named = (c: ChainRules | undefined): boolean => c !== undefined && (!c.builtin || c.rules.length > 0);
    let count = 0;
    for (let k = 0; k < this.tables.length; k++) {
      for (const c of this.tables[k]!.order) {
        if (!named(c)) continue;
        let before = false;
        for (let j = 0; j < k && !before; j++) before = named(this.tables[j]!.find(c.name));
        if (!before) count++;
      }
    }
    if (count > listed) return { names: [], count };
    const names = new Set<string>();
    for (const t of this.tables) for (const c of t.order) if (named(c)) names.add(c.name);
    return listChains(names, listed);
  }

  /** A chain's declaration and rules as printed (empty when the table has no such chain). */
  chainLines(table: string, chain: string): string[] {
    const c = this.table(table)?.find(chain);
    if (!c) return [];
    const out = [declOf(c)];
    for (let i = 0; i < c.rules.length; i++) out.push(c.rules.at(i)!);
    return out;
  }

  /** The rules a trace visited: 'hit' where a rule matched, else 'seen'. */
  marks(refs: Iterable<RuleRef>): TraceMarks {
    const out = new TraceMarks();
    // A trace lists rules in walk order: look the chain up only when it changes.
    let table: string | undefined, chain: string | undefined, c: ChainRules | undefined, key = '';
    for (const r of refs) {
      if (r.chain !== chain || r.table !== table) {
        table = r.table;
        chain = r.chain;
        c = this.table(table)?.find(chain);
        key = `${table}/${chain}`;
      }
      if (c && r.rule >= 0 && r.rule < c.rules.length) out.add(key, r.rule, r.matched);
    }
    return out;
  }

  /**
   * The lines to show. Texts up to `limit` lines come whole. Larger ones are digested: table
   * headers, COMMIT, every rule of a chain that is not per-service (the first 20 of a long one and
   * those around a matched rule), per-service chains (KUBE-SVC-…, KUBE-SEP-…) only when the packet
   * visited them, and "… n lines" markers where lines were left out, saying how many of them the
   * packet checked without a match (a first-match walk of KUBE-SERVICES may check thousands).
   * The cost follows the chains and the lines shown, never the rules left out.
   */
  view(marks: TraceMarks = new TraceMarks(), limit = FULL_VIEW_LINES): RuleLine[] {
    const whole = this.total <= limit;
    const out: RuleLine[] = [];
    let gap = 0, gapSeen = 0;
    const flush = () => {
      if (gap) out.push({ text: `… ${gap.toLocaleString('en-US')} lines${gapSeen ? ` (${gapSeen.toLocaleString('en-US')} checked by the packet, none matched)` : ''}`, mark: 'gap' });
      gap = gapSeen = 0;
    };
    const push = (l: RuleLine) => {
      flush();
      out.push(l);
    };
    // The marked chains, and per table the per-service ones among them (shown in a digest).
    const marked = new Map<ChainRules, ChainMarks>();
    const visited = new Map<TableRules, ChainRules[]>();
    marks.forEach((key, m) => {
      const slash = key.indexOf('/');
      const t = this.table(key.slice(0, slash));
      const c = t?.find(key.slice(slash + 1));
      if (!t || !c) return;
      marked.set(c, m);
      if (!c.perService) return;
      const list = visited.get(t);
      if (list) list.push(c);
      else visited.set(t, [c]);
    });
    const marksOf = (c: ChainRules) => (marked.size ? marked.get(c) : undefined);
    const lines = (c: ChainRules, m: ChainMarks | undefined, from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const mark = m === undefined ? undefined : m.hits.has(i) ? 'hit' : seenCount(m, i, i + 1) ? 'seen' : undefined;
        const text = c.rules.at(i)!;
        push(mark ? { text, mark } : { text });
      }
    };
    /** A chain that is not per-service: its head and the rules around each hit. */
    const windows = (c: ChainRules, m: ChainMarks | undefined) => {
      let at = 0;
      for (const [from, to] of shownWindows(c.rules.length, m?.hits ?? [])) {
        gap += from - at;
        if (m) gapSeen += seenCount(m, at, from);
        lines(c, m, from, to);
        at = to;
      }
      gap += c.rules.length - at;
      if (m) gapSeen += seenCount(m, at, c.rules.length);
    };
    for (const t of this.tables) {
      push({ text: `*${t.name}` });
      if (whole) {
        for (const c of t.order) push({ text: declOf(c) });
        for (const c of t.order) lines(c, marksOf(c), 0, c.rules.length);
        push({ text: 'COMMIT' });
        continue;
      }
      // Digest: the chains shown are the fixed ones and the visited per-service ones; those
      // between two shown chains are left out, counted from the layout.
      const { rulesBefore, fixed } = t.laidOut();
      const extra = visited.get(t);
      // Positions of the few chains shown: a search of the order array reads no chain object.
      const shown = (extra ? [...fixed, ...extra] : fixed).map((c) => ({ c, pos: t.order.indexOf(c) })).sort((a, b) => a.pos - b.pos);
      let next = 0;
      for (const { c, pos } of shown) {
        gap += pos - next;
        push({ text: declOf(c) });
        next = pos + 1;
      }
      gap += t.order.length - next;
      next = 0;
      for (const { c, pos } of shown) {
        gap += rulesBefore[pos]! - rulesBefore[next]!;
        if (c.perService) lines(c, marksOf(c), 0, c.rules.length);
        else windows(c, marksOf(c));
        next = pos + 1;
      }
      gap += rulesBefore[t.order.length]! - rulesBefore[next]!;
      push({ text: 'COMMIT' });
    }
    flush();
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
