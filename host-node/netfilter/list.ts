// list.ts — renders a table the way `iptables -S [chain]` and `iptables -L [chain] -n [-v] [-x]
// [--line-numbers]` print it (iptables.c list_rules()/list_entries(), xshared.c print_header()
// and print_rule_details(), each extension's print function), with packet/byte counters taken
// from a caller-supplied source (the core's counters; the model's own, zero, by default).
// Always numeric (-n): no name lookups. Never parses, never changes the ruleset.

import { printIpvs } from './ext-ipvs.js';
import { listAddrMask } from './addr.js';
import { printL4 } from './ext-l4.js';
import { printBasic } from './ext-match.js';
import { printState } from './ext-state.js';
import { printTarget, targetListName } from './ext-target.js';
import type { AddrMatch, Counters, Family, Match, Rule, TableName } from './model.js';
import { ZERO_COUNTERS } from './model.js';
import { appendLine, joinLines, ruleSpec } from './save.js';
import { type Chain, type Ruleset, type Table, emptyTable, isTableName } from './ruleset.js';
import { kernelOrder } from './save.js';
import { countersOf, type CounterSource } from './live-counters.js';

export type { CounterSource } from './live-counters.js';

export interface ListOptions {
  counters?: CounterSource;
  /** -x: exact numbers instead of K/M/G/T. */
  exact?: boolean;
  /** --line-numbers. */
  lineNumbers?: boolean;
  /** -v (default true): counters and interface columns. */
  verbose?: boolean;
}

export interface RulesOptions {
  /** -v: ` -c pkts bytes` on rules and policies. */
  counters?: CounterSource | boolean;
}

function tableOf(rs: Ruleset, table: TableName): Table {
  // Callers outside TypeScript can name any table: refused as iptables -t does.
  if (!isTableName(table)) {
    const prog = rs.family === 4 ? 'iptables' : 'ip6tables';
    throw new Error(`${prog}: can't initialize ${prog} table \`${String(table)}': Table does not exist (do you need to insmod?)`);
  }
  return rs.table(table) ?? emptyTable(table, rs.family);
}

function chainsOf(t: Table, chain: string | undefined): readonly Chain[] {
  if (chain === undefined) return kernelOrder(t);
  const c = t.chain(chain);
  if (!c) throw new Error(`${t.family === 4 ? 'iptables' : 'ip6tables'}: No chain/target/match by that name.`);
  return [c];
}


/** Rule lines read by index: an array of them, or a chain's rules printed on demand (ChainLines). */
export interface RuleLines {
  readonly length: number;
  at(index: number): string | undefined;
}

/**
 * One chain's rules as `iptables -S` prints them (`-A CHAIN spec`), each printed when first read
 * and kept: a view of a 200,000-rule table reads a few dozen of them, never all. The chain is
 * immutable (a restore builds new chains), so the lines never go stale.
 */
export class ChainLines implements RuleLines {
  // Made on the first line asked for: a 20,000-Service table has 60,000 chains, most never printed.
  private printed: Array<string | undefined> | null = null;

  constructor(private readonly chain: Chain) {}

  get length(): number {
    return this.chain.rules.length;
  }

  at(index: number): string | undefined {
    const rules = this.chain.rules;
    if (index < 0) index += rules.length;
    const rule = rules[index];
    if (rule === undefined) return undefined;
    return ((this.printed ??= [])[index] ??= appendLine(this.chain.name, ruleSpec(rule)));
  }
}

/** `iptables -S [chain]`: -P/-N lines, then every rule as `-A CHAIN …`. */
export function renderRules(rs: Ruleset, table: TableName, chain?: string, opts: RulesOptions = {}): string {
  return joinLines(rulesLines(rs, table, chain, opts));
}

/**
 * renderRules()'s lines (without newlines), made as they are pulled (see saveLines()); an
 * unknown table or chain throws here, before the first line.
 */
export function rulesLines(rs: Ruleset, table: TableName, chain?: string, opts: RulesOptions = {}): Iterable<string> {
  const chains = chainsOf(tableOf(rs, table), chain);
  const src = typeof opts.counters === 'function' ? opts.counters : undefined;
  return rulesOf(chains, table, src, opts.counters !== undefined && opts.counters !== false);
}

function* rulesOf(chains: readonly Chain[], table: TableName, src: CounterSource | undefined, withCounters: boolean): Generator<string> {
  for (const c of chains) {
    if (!c.builtin) {
      yield `-N ${c.name}`;
      continue;
    }
    let line = `-P ${c.name} ${c.policy}`;
    if (withCounters) {
      const k = countersOf(src, table, c.name, -1, c.counters);
      line += ` -c ${k.packets} ${k.bytes}`;
    }
    yield line;
  }
  for (const c of chains) {
    const rules = c.rules;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!;
      yield appendLine(c.name, withCounters ? ruleSpec(r, countersOf(src, table, c.name, i, r.counters)) : ruleSpec(r));
    }
  }
}

/** xtables_print_num() in a table column (`%5llu `, `%4lluK `, … or `%8llu ` with -x). */
function num(n: bigint, exact: boolean, table = true): string {
  const pad = (s: string, w: number) => (table ? s.padStart(w, ' ') : s) + ' ';
  if (exact) return pad(String(n), 8);
  if (n <= 99999n) return pad(String(n), 5);
  for (const unit of ['K', 'M', 'G']) {
    n = (n + 500n) / 1000n;
    if (n <= 9999n) return pad(String(n), 4).slice(0, -1) + unit + ' ';
  }
  n = (n + 500n) / 1000n;
  return pad(String(n), 4).slice(0, -1) + 'T ';
}

function printMatch(m: Match, family: Family): string {
  switch (m.kind) {
    case 'tcp': case 'udp': case 'sctp': case 'icmp': case 'icmp6': case 'multiport': return printL4(m);
    case 'conntrack': case 'state': case 'recent': case 'statistic': return printState(m, family);
    case 'ipvs': return printIpvs(m);
    default: return printBasic(m);
  }
}

function addrColumn(a: AddrMatch | null, family: Family): string {
  const any = family === 4 ? '0.0.0.0/0' : '::/0';
  return (a?.invert ? '!' : ' ') + (a ? listAddrMask(a) : any).padEnd(19, ' ') + ' ';
}

/** One rule line of `iptables -L -n` (print_firewall()). */
function ruleLine(r: Rule, n: number, k: Counters, o: Required<Omit<ListOptions, 'counters'>>): string {
  let s = o.lineNumbers ? String(n).padEnd(4, ' ') + ' ' : '';
  if (o.verbose) s += num(k.packets, o.exact) + num(k.bytes, o.exact);
  s += (r.target ? targetListName(r.target) : '').padEnd(9, ' ') + ' ';
  s += (r.protoInvert ? '!' : ' ') + String(r.proto).padEnd(4, ' ') + ' ';
  if (r.family === 4) s += (r.fragment?.invert ? '!' : '-') + (r.fragment ? 'f' : '-') + ' ';
  else s += '-- ';
  if (o.verbose) {
    const iface = (i: Rule['inIface']) => (i ? (i.invert ? '!' : '') + i.name + (i.wildcard ? '+' : '') : '*');
    s += ' ' + iface(r.inIface).padEnd(6, ' ') + ' ' + iface(r.outIface).padEnd(6, ' ') + ' ';
  }
  s += addrColumn(r.src, r.family) + addrColumn(r.dst, r.family);
  if (r.target?.kind === 'jump' && r.target.goto) s += '[goto] ';
  for (const m of r.matches) s += printMatch(m, r.family);
  if (r.target) s += printTarget(r.target, r.family);
  return s;
}

/** `iptables -L [chain] -n -v [-x] [--line-numbers]` (verbose: false drops -v). */
export function renderList(rs: Ruleset, table: TableName, chain?: string, opts: ListOptions = {}): string {
  return joinLines(listLines(rs, table, chain, opts));
}

/**
 * renderList()'s lines (without newlines; an empty one between chains), made as they are pulled
 * (see saveLines()); an unknown table or chain throws here, before the first line.
 */
export function listLines(rs: Ruleset, table: TableName, chain?: string, opts: ListOptions = {}): Iterable<string> {
  const t = tableOf(rs, table);
  return listOf(t, chainsOf(t, chain), table, opts);
}

function* listOf(t: Table, chains: readonly Chain[], table: TableName, opts: ListOptions): Generator<string> {
  const o = { exact: !!opts.exact, lineNumbers: !!opts.lineNumbers, verbose: opts.verbose ?? true };
  let first = true;
  for (const c of chains) {
    if (!first) yield '';
    first = false;
    let head = `Chain ${c.name}`;
    if (c.builtin) {
      head += ` (policy ${c.policy}`;
      if (o.verbose) {
        const k = countersOf(opts.counters, table, c.name, -1, c.counters ?? ZERO_COUNTERS);
        head += ` ${num(k.packets, o.exact, false)}packets, ${num(k.bytes, o.exact, false)}bytes`;
      }
      head += ')';
    } else {
      head += ` (${t.references(c.name)} references)`;
    }
    yield head;
    let cols = o.lineNumbers ? 'num  ' : '';
    if (o.verbose) cols += o.exact ? '    pkts      bytes ' : ' pkts bytes ';
    cols += 'target    ' + ' prot opt';
    if (o.verbose) cols += ' in     out    ';
    cols += ' source              ' + ' destination         ';
    yield cols;
    const rules = c.rules;
    for (let i = 0; i < rules.length; i++) yield ruleLine(rules[i]!, i + 1, countersOf(opts.counters, table, c.name, i, rules[i]!.counters), o);
  }
}
