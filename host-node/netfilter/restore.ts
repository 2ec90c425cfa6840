// restore.ts — the iptables-restore state machine (iptables/iptables-restore.c): `*table` opens a
// block, `:CHAIN POLICY [p:b]` declares a chain, command lines (-A -I -D -R -C -N -X -F -Z -P -E)
// edit it, COMMIT validates and applies it; `#` lines and empty lines are skipped. Without
// --noflush every table named is replaced whole; with it, tables are edited and a declared user
// chain is flushed. The whole text is applied to a copy: any error returns the first problem
// (line, word, message) and the base ruleset is left exactly as it was.
// Hot path: a `-A CHAIN rule` line that restates the rule it replaces (kube-proxy rewriting a
// flushed chain) costs two slices and a string compare, and a stretch of such lines is matched
// against the old text in one go (extendRun()); a rule text seen before anywhere costs one
// map lookup; only new text is parsed, kube-proxy's shapes by fast.ts in one scan, the rest by
// rule.ts. The other command lines are commands.ts. A block written exactly as the one that made
// the current table is passed over whole (sameBlock()). No regex runs per word. Never reads the
// clock, the host or the kernel.

import { fastRule } from './fast.js';
import { declFields, detach, isSeparator, splitFields, splitWords } from './lexer.js';
import { RuleError } from './ext.js';
import { VERDICTS } from './ext-target.js';
import { TableDraft, resetTable, type ChainDraft } from './draft.js';
import { CommitError, commit } from './graph.js';
import { BlockEditor, policyReset, type CounterReset } from './commands.js';
import type { Counters, Family, Rule, TableName } from './model.js';
import { ZERO_COUNTERS } from './model.js';
import { MAX_NAME, SkipLine, bracketCounters, parseRuleText } from './rule.js';
import { BUILTIN_CHAINS, Ruleset, Table, builtinHook, emptyTable, hasFewChains, isTableName, type Chain, type ChainSource } from './ruleset.js';

export interface RestoreOptions {
  /** 4 (iptables-restore) or 6 (ip6tables-restore); default the base's family, else 4. */
  family?: Family;
  /** --noflush: edit the tables named instead of replacing them. */
  noflush?: boolean;
  /** The ruleset the text applies to (never modified); default an empty one. */
  base?: Ruleset;
  /** --counters: keep `[pkts:bytes]` of rules and policies (ignored, as by iptables, otherwise). */
  counters?: boolean;
  /** --table: restore only this table, skip the others. */
  table?: TableName;
  /** Refuse unquoted multi-word comments as iptables does (by default the extra words join the
   *  comment: kube-proxy's own test fixtures write them). */
  strict?: boolean;
}

export interface RestoreError {
  /** 1-based line of the restore text at fault. */
  readonly line: number;
  /** The word at fault (an option, a value, a chain or target name). */
  readonly word: string;
  /** `iptables-restore: line 12 failed: unknown option "--dprot"`. */
  readonly message: string;
  /** The message without the `iptables-restore: line N failed: ` part. */
  readonly reason: string;
}

/**
 * On success, the new ruleset and `touched`: `table/chain` for every chain whose rules, policy or
 * policy counters differ from the base, created and deleted chains included. A chain not in
 * `touched` has the same content as in the base: the same Chain object, or (when only the way the
 * text declared it changed) a copy sharing the same rules array. On failure, the first error; the
 * base is unchanged either way.
 */
export type RestoreResult =
  | { readonly ok: true; readonly ruleset: Ruleset; readonly touched: Set<string>; readonly changed: Touched; readonly resets: readonly CounterReset[] }
  | { readonly ok: false; readonly error: RestoreError };

/**
 * `touched` as the compiler takes it (compile.ts): chain k is `chains[k]` of table `tables[k]`,
 * each once, in the order of `touched`. Made without a `table/chain` string per chain (a full
 * restore touches 60 000 chains); `touched` is built from it when first read.
 */
export interface Touched {
  readonly tables: readonly TableName[];
  readonly chains: readonly string[];
  /** Chain k as the restore left it (null: deleted), when known: the compiler then looks none up. */
  readonly chainObjs?: readonly (Chain | null)[];
}

/** Parses and applies iptables-restore text; see RestoreOptions. */
export function parseRestore(text: string, opts: RestoreOptions = {}): RestoreResult {
  const family: Family = opts.family ?? opts.base?.family ?? 4;
  const prog = family === 4 ? 'iptables-restore' : 'ip6tables-restore';
  const base = opts.base ?? Ruleset.empty(family);
  if (base.family !== family) {
    return fail(prog, 0, '', `the base ruleset is IPv${base.family}, the text is read as IPv${family}`);
  }
  base.cache.restoring();
  const r = new Restorer(text, family, base, opts);
  try {
    r.run();
  } catch (e) {
    if (e instanceof CommitError) return fail(prog, e.line || r.lineNo, e.word, e.message);
    if (e instanceof RuleError) return fail(prog, r.lineNo, e.word, e.message);
    if (e instanceof EndError) {
      return { ok: false, error: { line: e.line, word: 'COMMIT', reason: 'COMMIT expected', message: `${prog}: COMMIT expected at line ${e.line}` } };
    }
    throw e;
  }
  const changed: Touched = { tables: r.changedTables, chains: r.changedChains, ...(r.changedObjs ? { chainObjs: r.changedObjs } : {}) };
  let touched: Set<string> | null = null;
  return {
    ok: true, ruleset: new Ruleset(family, r.tables, base.seq + r.lineNo + 1, base.cache), changed, resets: r.resets,
    get touched() {
      return (touched ??= new Set(changed.chains.map((c, k) => `${changed.tables[k]}/${c}`)));
    },
  };
}

function fail(prog: string, line: number, word: string, reason: string): RestoreResult {
  return { ok: false, error: { line, word, reason, message: `${prog}: line ${line} failed: ${reason}` } };
}

class EndError extends Error {
  constructor(readonly line: number) {
    super('COMMIT expected');
  }
}

class Restorer extends BlockEditor {
  readonly tables: Map<TableName, Table>;
  /** The Touched lists: table and chain of each chain changed so far. */
  readonly changedTables: TableName[] = [];
  readonly changedChains: string[] = [];
  /** The chains themselves, while each table had one block (a second block may change them again). */
  changedObjs: (Chain | null)[] | null = [];
  /** Tables committed so far (a table's second block may touch a chain its first did). */
  private readonly committed = new Set<TableName>();
  private skipping = false;
  private lastChain = '';
  /** Set by extendRun(): where run() goes on after a replayed stretch (0: the next line). */
  private skipTo = 0;
  /** Where the open block's `*table` line starts, its line number, and its first counter reset. */
  private blockStart = 0;
  private blockLine = 0;
  private blockResets = 0;
  /** extendRun()'s scratch: where each matched hint rule's text starts in the new text. */
  private starts = new Uint32Array(0);
  /**
   * New rules and chains keep their texts and names as views into the restore text instead of
   * copies. Only when the base is (nearly) empty: then nearly all of the text becomes rules, a view
   * costs a fraction of a copy, and the text they keep alive is at most the one that filled the
   * ruleset. Later restores copy what they keep, so a small change never pins a large text.
   */
  private readonly views: boolean;

  constructor(
    private readonly text: string,
    family: Family,
    private readonly base: Ruleset,
    opts: RestoreOptions,
  ) {
    super(family, opts);
    this.tables = new Map(base.tables);
    this.views = text.length >= VIEW_MIN_TEXT && hasFewChains(base, 64);
  }

  run(): void {
    const text = this.text;
    const n = text.length;
    let pos = 0;
    while (pos < n) {
      let end = text.indexOf('\n', pos);
      if (end < 0) end = n;
      const start = pos;
      pos = end + 1;
      this.lineNo++;
      if (end > start && text.charCodeAt(end - 1) === 13) end--;
      if (end === start) continue;
      const c0 = text.charCodeAt(start);
      if (c0 === 35) continue; // '#'
      if (c0 === 42 && !this.td) {
        const after = this.sameBlock(start, end);
        if (after >= 0) {
          pos = after;
          continue;
        }
        this.blockStart = start;
        this.blockLine = this.lineNo;
        this.openTable(text.slice(start + 1, end));
        continue;
      }
      if (this.skipping) continue;
      if (this.td && c0 === 67 && end - start === 6 && text.startsWith('COMMIT', start)) {
        this.commitTable(end);
        continue;
      }
      if (!this.td) {
        const first = splitWords(text.slice(start, end))[0] ?? '';
        throw new RuleError(first, first === 'COMMIT' ? 'COMMIT without a table' : 'no table selected (a `*table` line must come first)');
      }
      this.blockEdited = true;
      if (c0 === 58) {
        this.declareChain(text.slice(start + 1, end));
        continue;
      }
      if (c0 === 45 && text.charCodeAt(start + 1) === 65 && isSeparator(text.charCodeAt(start + 2)) && this.fastAppend(start, end)) {
        if (this.skipTo !== 0) {
          pos = this.skipTo;
          this.skipTo = 0;
        }
        continue;
      }
      this.commandLine(text.slice(start, end));
    }
    if (this.td && !this.skipping) throw new EndError(this.lineNo + 1);
  }

  // ---- table blocks ----

  private openTable(rest: string): void {
    const name = splitFields(rest)[0];
    if (name === undefined) throw new RuleError('*', `line ${this.lineNo} table name invalid`);
    if (this.opts.table && name !== this.opts.table) {
      this.skipping = true;
      return;
    }
    this.skipping = false;
    if (!isTableName(name)) throw new RuleError(name, `unable to initialize table '${name}'`);
    const prev = this.tables.get(name);
    const origin = this.opts.noflush ? prev ?? emptyTable(name, this.family) : resetTable(prev, name, this.family);
    this.td = new TableDraft(name, origin, prev, this.base.seq, !this.opts.noflush);
    this.td.views = this.views;
    this.lastDraft = null;
    this.pure = true;
    this.blockResets = this.resets.length;
    if (!this.opts.noflush) this.resets.push({ table: name, chain: null, rule: -1 });
    this.blockPolicies.clear();
    this.blockEdited = !this.opts.noflush;
  }

  /**
   * A block written exactly as the one that made the current table (its BlockMemo), read with the
   * same options: applying it again gives that table back, so it is passed over whole and the
   * table stays as it is (kube-proxy writing the same full sync again). Returns where run() goes
   * on, or -1 when the block has to be read.
   */
  private sameBlock(start: number, lineEnd: number): number {
    const text = this.text;
    const name = splitFields(text.slice(start + 1, lineEnd))[0];
    if (name === undefined || !isTableName(name) || (this.opts.table && name !== this.opts.table)) return -1;
    const memo = this.tables.get(name)?.block;
    const opts = this.opts;
    if (!memo || memo.noflush !== !!opts.noflush || memo.counters !== !!opts.counters || memo.strict !== !!opts.strict) return -1;
    const stop = start + memo.text.length;
    if (stop > text.length) return -1;
    let next = stop;
    if (stop < text.length) {
      const c = text.charCodeAt(stop);
      if (c === 13 && text.charCodeAt(stop + 1) === 10) next = stop + 2;
      else if (c === 10) next = stop + 1;
      else return -1;
    }
    if (text.slice(start, stop) !== memo.text) return -1;
    for (const r of memo.resets) this.resets.push(r);
    this.skipping = false;
    this.lineNo += memo.lines - 1;
    return next;
  }

  private commitTable(end: number): void {
    const td = this.td!;
    const done = commit(td, this.lineNo);
    const opts = this.opts;
    if (this.blockEdited) {
      for (const hook of BUILTIN_CHAINS[td.name]) this.resets.push(policyReset(td.name, hook, this.blockPolicies.get(hook) ?? null));
    }
    if (end - this.blockStart >= VIEW_MIN_TEXT && (!opts.noflush || this.pure)) {
      done.table.block = {
        text: this.text.slice(this.blockStart, end), lines: this.lineNo - this.blockLine + 1,
        noflush: !!opts.noflush, counters: !!opts.counters, strict: !!opts.strict,
        resets: this.resets.slice(this.blockResets),
      };
    }
    this.tables.set(td.name, done.table);
    const tables = this.changedTables, chains = this.changedChains;
    if (!this.committed.has(td.name)) {
      this.committed.add(td.name);
      for (const n of done.touched) {
        tables.push(td.name);
        chains.push(n);
      }
      const objs = this.changedObjs;
      if (objs !== null) for (const c of done.touchedChains) objs.push(c);
    } else {
      this.changedObjs = null;
      const seen = new Set<string>();
      for (let k = 0; k < chains.length; k++) if (tables[k] === td.name) seen.add(chains[k]!);
      for (const n of done.touched) {
        if (seen.has(n)) continue;
        tables.push(td.name);
        chains.push(n);
      }
    }
    this.td = null;
    this.lastDraft = null;
  }

  // ---- `:CHAIN POLICY [p:b]` ----

  private declareChain(rest: string): void {
    const td = this.td!;
    this.lastDraft = null;
    const [sliced, policy, ctrs] = declFields(rest);
    const name = sliced === undefined ? undefined : flatCopy(sliced);
    if (name === undefined) throw new RuleError(':', `line ${this.lineNo} chain name invalid`);
    if (name.length > MAX_NAME) throw new RuleError(name, `Invalid chain name \`${name}' (${MAX_NAME} chars max)`);
    const builtin = builtinHook(td.name, name) !== null;
    let d: ChainDraft | undefined;
    if (!builtin) {
      const have = td.exists(name);
      if (this.opts.noflush && have) {
        d = td.edit(name)!;
        td.flush(d);
        this.resets.push({ table: td.name, chain: name, rule: -1 });
      } else {
        // Only libiptc's checks (iptc_create_chain(): a chain or verdict of that name exists):
        // iptables-restore creates `:!X`, `:-X` or `:LOG` where `-N` would refuse the name.
        if (have || VERDICTS.has(name)) throw new RuleError(name, `error creating chain '${name}':File exists`);
        d = td.create(name);
      }
      d.refilled = true;
    }
    if (policy === undefined) throw new RuleError(name, `line ${this.lineNo} policy invalid`);
    d ??= td.edit(name)!;
    if (policy === '-') {
      if (d.declared === null) d.declared = '-';
      return;
    }
    // iptables-restore 1.8.9 reads the counters field only with --counters.
    let counters: Counters | null = null;
    if (this.opts.counters && (ctrs === undefined || (counters = bracketCounters(ctrs)) === null)) {
      throw new RuleError(ctrs ?? name, `invalid policy counters for chain '${name}'`);
    }
    const cant = `Can't set policy \`${policy}' on \`${name}' line ${this.lineNo}: `;
    if (!builtin) throw new RuleError(name, cant + 'Bad built-in chain name');
    if (policy !== 'ACCEPT' && policy !== 'DROP') throw new RuleError(policy, cant + 'Bad policy name');
    d.policy = policy;
    d.declared = 'policy';
    d.counters = counters ?? ZERO_COUNTERS;
    this.blockPolicies.set(name, d.counters);
  }

  // ---- `-A CHAIN rule` without quotes in CHAIN: the common case, parsed rules reused ----

  /**
   * A jump target's name as the block's chain of that name spells it (fast.ts nameOf). Only while
   * rules keep views of this text: the chain's name is then a view of the same text, never of an
   * older one a rule would keep alive.
   */
  private readonly chainName = (name: string): string => this.td?.get(name)?.name ?? name;

  private fastAppend(start: number, end: number): boolean {
    const text = this.text;
    let i = start + 3;
    while (i < end && isSeparator(text.charCodeAt(i))) i++;
    const chainStart = i;
    while (i < end && !isSeparator(text.charCodeAt(i))) i++;
    if (i === chainStart) return false;
    const chainEnd = i;
    while (i < end && isSeparator(text.charCodeAt(i))) i++;
    // Slicing and comparing with === beats String.prototype.startsWith in V8 here.
    let chain = text.slice(chainStart, chainEnd);
    let d: ChainDraft;
    if (this.lastDraft !== null && chain === this.lastChain) {
      d = this.lastDraft;
      chain = this.lastChain;
    } else {
      if (chain.indexOf('"') >= 0) return false;
      d = this.draftOf(chain);
    }
    if (!d.refilled) this.pure = false;
    const rest = text.slice(i, end);
    let rule: Rule | undefined;
    const strict = !!this.opts.strict;
    const hint = d.hint;
    if (hint !== null && !strict && rest !== '') {
      // Compare with the rule this line most likely rewrites (a few ahead, for rules that went
      // away); a match costs no hash and no parse. With the chain's source string the compare
      // reads no rule object at all, and the rule, already checked in this chain of this table,
      // is not checked again.
      const p = d.hintPos;
      const src = d.hintSrc;
      if (src !== null && src.zero) {
        const at = src.at;
        const n = end - i;
        for (let k = p; k < hint.length && k < p + 4; k++) {
          const from = at[2 * k]!, to = at[2 * k + 1]!;
          if (to - from === n && src.text.slice(from, to) === rest) {
            d.hintPos = k + 1;
            const td = this.td!;
            if (!td.replayHint(d, k, this.lineNo, text, i, end)) td.append(d, hint[k]!, this.lineNo, text, i, end, true);
            this.extendRun(d, src, k, start, i, end);
            return true;
          }
        }
      } else {
        for (let k = p; k < hint.length && k < p + 4; k++) {
          const h = hint[k];
          if (h.text === rest && h.counters === ZERO_COUNTERS) {
            rule = h;
            d.hintPos = k + 1;
            break;
          }
        }
      }
    }
    if (rule === undefined) {
      // The text-keyed cache serves rules that reappear in a chain that had rules before; a
      // chain new to this block (a new service) brings new text, and caching every line of a
      // first full restore would cost a hash and a map entry per rule for nothing.
      const cache = this.base.cache;
      const cached = !strict && hint !== null;
      rule = cached ? cache.get(rest) : undefined;
      if (rule === undefined) {
        const own = this.views ? rest : detach(rest);
        try {
          rule = (this.views ? fastRule(own, this.family, this.chainName, text, i) : fastRule(own, this.family)) ?? parseRuleText(own, this.family, !strict);
        } catch (e) {
          if (e instanceof SkipLine) return true; // `-6` in iptables-restore input: line ignored
          throw e;
        }
        if (cached) cache.set(own, rule);
      }
    }
    this.checkRule(chain, rule);
    this.td!.append(d, rule, this.lineNo, text, i, end, rule.counters === ZERO_COUNTERS);
    return true;
  }

  /**
   * After line `lineStart..end` (rest from `restStart`) replayed hint rule k: the lines that follow
   * usually restate the next hint rules with the same `-A CHAIN ` prefix. Where the old text held
   * those rules as consecutive lines, the stretch is compared in doubling spans of the two texts in
   * one go; where it held them apart (a full restore writes each service's own chains in between),
   * each line is compared with its rule's old text in one tight loop. Matched rules are logged at
   * once, `skipTo` tells run() where to go on; each means what the line-by-line path would make of
   * it (an append of the next hint rule, already checked in this chain of this table). */
  private extendRun(d: ChainDraft, src: ChainSource, k: number, lineStart: number, restStart: number, end: number): void {
    const text = this.text;
    const hint = d.hint!;
    const prefix = restStart - lineStart;
    // Only the plain `-A CHAIN ` prefix (one separator each side) and LF line ends qualify: then
    // an old gap of exactly 1 + prefix characters can only be `\n` and that prefix.
    if (prefix !== 4 + d.name.length || text.charCodeAt(end) !== 10) return;
    const gap = prefix + 1;
    const old = src.text;
    const at = src.at;
    const head = text.slice(lineStart, restStart);
    const limit = hint.length - 1;
    let starts = this.starts;
    if (starts.length < hint.length) starts = this.starts = new Uint32Array(hint.length + (hint.length >> 2));
    let good = k;        // hint rules up to `good` matched; the last ends at `cur` in `text`
    let cur = end;
    let step = 1;
    while (good < limit) {
      if (at[2 * good + 2]! - at[2 * good + 1]! === gap) {
        // Consecutive in the old text: extend the span as far as they stay consecutive.
        let to = good + 1;
        const want = Math.min(limit, good + step);
        while (to < want && at[2 * to + 2]! - at[2 * to + 1]! === gap) to++;
        const a = at[2 * good + 1]!, b = at[2 * to + 1]!;
        const nb = cur + (b - a);
        if (nb <= text.length && text.slice(cur, nb) === old.slice(a, b) && lineEnds(text, nb)) {
          for (let j = good + 1; j <= to; j++) starts[j] = at[2 * j]! - a + cur;
          good = to;
          cur = nb;
          step *= 2;
          continue;
        }
        if (to === good + 1) break;
        step = 1;        // the difference lies inside the span: gallop again from `good`
        continue;
      }
      // Apart in the old text: this line against that rule's text.
      const j = good + 1;
      const from = at[2 * j]!, len = at[2 * j + 1]! - from;
      const rs = cur + gap, re = rs + len;
      if (re > text.length || !lineEnds(text, re) || text.slice(cur + 1, rs) !== head || text.slice(rs, re) !== old.slice(from, from + len)) break;
      starts[j] = rs;
      good = j;
      cur = re;
    }
    if (good === k) return;
    const td = this.td!;
    if (!td.replayStretch(d, k + 1, good, this.lineNo + 1, text, at, starts)) {
      for (let j = k + 1, line = this.lineNo + 1; j <= good; j++, line++) {
        td.append(d, hint[j]!, line, text, starts[j]!, starts[j]! + at[2 * j + 1]! - at[2 * j]!, true);
      }
    }
    d.hintPos = good + 1;
    this.lineNo += good - k;
    this.skipTo = cur + 1;
  }

  private draftOf(chain: string): ChainDraft {
    const d = this.td!.edit(chain);
    if (!d) throw new RuleError(chain, 'No chain/target/match by that name.');
    this.lastChain = chain;
    this.lastDraft = d;
    return d;
  }

}

/** Restore texts shorter than this copy what they keep (the views would save little). */
const VIEW_MIN_TEXT = 1 << 16;

/** `text` has a line feed, or its end, at `at` (a CR there would make the next line empty). */
function lineEnds(text: string, at: number): boolean {
  return at === text.length || text.charCodeAt(at) === 10;
}

/**
 * `s` as a compact string of its own. A name read from a restore text is a view into the whole
 * text (17.6 million characters at 20,000 Services); a chain's name is compared and sorted for the table's life
 * (kernel order sorts 60,000 of them with the engine's string compare, which then reads each from
 * wherever in that text it lies). A first character joined to the rest is a new string, made one
 * piece by the first character read.
 */
function flatCopy(s: string): string {
  if (s.length < 2) return s;
  const c = s[0]! + s.slice(1);
  c.charCodeAt(0);
  return c;
}

/**
 * The line of restore `text` that wrote a rule spelled `ruleText` into `chain` of `table` (`-A`,
 * `-I` or `-R`; the last such line), 0 when none did: for a refusal that comes after the text
 * parsed (the core's compiler cannot run a rule), so it names a line as the parser's errors do.
 */
export function ruleLine(text: string, table: string, chain: string, ruleText: string): number {
  let current = '', found = 0, line = 0;
  for (let pos = 0; pos < text.length; line++) {
    let end = text.indexOf('\n', pos);
    if (end < 0) end = text.length;
    const l = text.slice(pos, end).trimEnd();
    pos = end + 1;
    if (l.startsWith('*')) current = splitFields(l.slice(1))[0] ?? '';
    else if (current === table && l.startsWith('-') && l.endsWith(ruleText)) {
      const [cmd, name] = splitWords(l);
      if (name === chain && APPENDS.has(cmd!)) found = line + 1;
    }
  }
  return found;
}
const APPENDS = new Set(['-A', '--append', '-I', '--insert', '-R', '--replace']);
