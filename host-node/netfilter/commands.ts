// commands.ts — the iptables-restore command lines other than a plain `-A CHAIN rule` (iptables.c
// do_command4(): -A with a quoted chain or `[p:b]` counters, -I -D -R -C -N -X -F -Z -P -E),
// applied to the open block's TableDraft with iptables' error messages, and the table and chain
// checks every added rule passes (do_parse() and the kernel's table check). The base of
// restore.ts's Restorer, which reads the text and keeps the blocks. Never reads the clock, the
// host or the kernel.

import { detach, isSeparator, splitWords } from './lexer.js';
import { RuleError } from './ext.js';
import { targetSaveName, targetTable } from './ext-target.js';
import { ChainDraft, type TableDraft } from './draft.js';
import type { Counters, Family, Rule, TableName } from './model.js';
import { ZERO_COUNTERS } from './model.js';
import { SkipLine, parseCommand, plainCounters, type Command } from './rule.js';
import { findRule } from './save.js';
import type { RestoreOptions } from './restore.js';

export const NAT_DROP = 'The "nat" table is not intended for filtering, the use of DROP is therefore inhibited.';

/**
 * Counters a restore sets anew in the live rules: the kernel's rules added after a flush start
 * from their `-c` counters or zero even when they equal the rules before (libiptc's commit keeps
 * counters only of rules it did not flush), and -Z zeroes. `chain` null: every chain of the table
 * (a block without --noflush); `rule` -1: every rule of the chain, -2: none of them.
 * `policy`: a built-in chain's policy counters set as well. iptables-legacy's commit of a block
 * that changes anything sets every built-in chain's: to what the block gave it (`:CHAIN POLICY
 * [p:b]` or -P with -c), else zero — checked on this machine's iptables-legacy 1.8; a block that
 * changes nothing is not committed and keeps them.
 */
export interface CounterReset {
  readonly table: TableName;
  readonly chain: string | null;
  readonly rule: number;
  readonly policy?: Counters;
}

/** The reset of a built-in chain's policy counters alone. */
export const policyReset = (table: TableName, chain: string, counters: Counters | null): CounterReset =>
  ({ table, chain, rule: -2, policy: counters ?? ZERO_COUNTERS });

/** The open block and the command lines that edit it. */
export abstract class BlockEditor {
  /** The counter resets of the blocks read so far, in order. */
  readonly resets: CounterReset[] = [];
  /** Policy counters the open block gave built-in chains (`:CHAIN POLICY`, -P). */
  protected readonly blockPolicies = new Map<string, Counters>();
  /** The open block holds a line that changes the table (or replaces it whole). */
  protected blockEdited = false;
  /** 1-based number of the line being read. */
  lineNo = 0;
  protected td: TableDraft | null = null;
  /** The draft the last `-A` line appended to (restore.ts fastAppend()); null after any other line. */
  protected lastDraft: ChainDraft | null = null;
  /** The open --noflush block so far only declared chains and appended to user chains it
   *  declared before: applying it twice gives what applying it once gives. */
  protected pure = false;

  constructor(
    protected readonly family: Family,
    protected readonly opts: RestoreOptions,
  ) {}

  /** Checks that depend on the table or chain (do_parse() and the kernel's table check). */
  protected checkRule(chain: string, rule: Rule): void {
    const table = this.td!.name;
    const t = rule.target;
    if (t) {
      const only = targetTable(t);
      if (only && only !== table) {
        const name = targetSaveName(t);
        throw new RuleError(name, `${this.family === 4 ? 'ip' : 'ip6'}_tables: ${name} target: only valid in ${only} table, not ${table}`);
      }
      if (t.kind === 'DROP' && table === 'nat') throw new RuleError('DROP', NAT_DROP);
      if (t.kind === 'jump') {
        // iptables-restore resolves a jump when it reads the line (libiptc), not at COMMIT: the
        // chain must exist by then, and not be a built-in one.
        const to = this.td!.get(t.chain);
        if (!to) throw new RuleError(t.chain, t.goto ? `goto '${t.chain}' is not a chain` : `Couldn't load target \`${t.chain}':No such file or directory`);
        if (to.builtin) throw new RuleError(t.chain, `Target problem: cannot jump to built-in chain \`${t.chain}'`);
      }
    }
    if (rule.outIface && (chain === 'PREROUTING' || chain === 'INPUT')) throw new RuleError('-o', `Can't use -o with ${chain}`);
    if (rule.inIface && (chain === 'POSTROUTING' || chain === 'OUTPUT')) throw new RuleError('-i', `Can't use -i with ${chain}`);
  }

  // ---- every other command line ----

  protected commandLine(line: string): void {
    this.lastDraft = null;
    this.pure = false;
    let from = 0;
    let prefix: Counters | null = null;
    if (line[0] === '[') {
      // tokenize_rule_counters(): `[pkts:bytes] ` before the command.
      const close = line.indexOf(']');
      if (close < 0) throw new RuleError(line.split(/\s/)[0], `Bad line ${this.lineNo}: need ]`);
      const colon = line.indexOf(':');
      if (colon < 0 || colon > close) throw new RuleError(line.slice(0, close + 1), `Bad line ${this.lineNo}: need :`);
      prefix = plainCounters(line.slice(1, colon), line.slice(colon + 1, close));
      if (prefix === null) throw new RuleError(line.slice(0, close + 1), `Bad line ${this.lineNo}: counters not numeric`);
      from = close + 1;
    }
    const ends: number[] = [];
    const quoted: boolean[] = [];
    const words = splitWords(line, from, ends, quoted);
    let cmd: Command;
    try {
      cmd = parseCommand(words, this.family, !this.opts.strict, quoted);
    } catch (e) {
      if (e instanceof SkipLine) return;
      throw e;
    }
    let rule = cmd.rule;
    if (rule) {
      let text = '';
      if (cmd.specFrom >= 0) {
        let s = cmd.specFrom === 0 ? from : ends[cmd.specFrom - 1];
        while (s < line.length && isSeparator(line.charCodeAt(s))) s++;
        text = detach(line.slice(s).replace(/\r$/, ''));
      }
      rule = { ...rule, text };
      if (prefix && this.opts.counters) {
        if (rule.counters !== ZERO_COUNTERS) throw new RuleError('-c', 'multiple -c flags not allowed');
        rule = { ...rule, counters: prefix };
      }
    }
    this.run1(cmd, rule);
  }

  private run1(cmd: Command, rule: Rule | null): void {
    const td = this.td!;
    const chain = cmd.chain;
    const need = (name: string | null): ChainDraft => {
      const d = name === null ? undefined : td.edit(name);
      if (!d) throw new RuleError(name ?? '', 'No chain/target/match by that name.');
      return d;
    };
    switch (cmd.cmd) {
      case 'A': {
        const d = need(chain);
        this.checkRule(chain!, rule!);
        td.append(d, rule!, this.lineNo);
        return;
      }
      case 'I': {
        const d = need(chain);
        const at = (cmd.rulenum || 1) - 1;
        if (at > d.rules.length) throw new RuleError(String(cmd.rulenum), 'Index of insertion too big.');
        this.checkRule(chain!, rule!);
        td.insert(d, at, rule!, this.lineNo);
        return;
      }
      case 'R': {
        const d = need(chain);
        if (cmd.rulenum > d.rules.length) throw new RuleError(String(cmd.rulenum), 'Index of replacement too big.');
        this.checkRule(chain!, rule!);
        td.replace(d, cmd.rulenum - 1, rule!, this.lineNo);
        return;
      }
      case 'D': {
        const d = need(chain);
        if (rule === null) {
          if (cmd.rulenum > d.rules.length) throw new RuleError(String(cmd.rulenum), 'Index of deletion too big.');
          td.removeAt(d, cmd.rulenum - 1);
          return;
        }
        const k = findRule(d.rules, rule);
        if (k < 0) throw new RuleError(chain!, 'Bad rule (does a matching rule exist in that chain?).');
        td.removeAt(d, k);
        return;
      }
      case 'C': {
        const d = td.get(chain!);
        if (!d) throw new RuleError(chain!, 'No chain/target/match by that name.');
        if (findRule(d.rules, rule!) < 0) throw new RuleError(chain!, 'Bad rule (does a matching rule exist in that chain?).');
        return;
      }
      case 'N':
        if (td.exists(chain!)) throw new RuleError(chain!, 'Chain already exists.');
        td.create(chain!);
        return;
      case 'X':
        for (const name of chain !== null ? [chain] : this.userChains()) this.deleteChain(name);
        return;
      case 'F':
        for (const name of chain !== null ? [chain] : this.allChains()) {
          td.flush(need(name));
          this.resets.push({ table: td.name, chain: name, rule: -1 });
        }
        return;
      case 'Z':
        for (const name of chain !== null ? [chain] : this.allChains()) {
          this.zero(need(name), cmd.rulenum);
          this.resets.push({ table: td.name, chain: name, rule: cmd.rulenum - 1 });
        }
        return;
      case 'P': {
        const d = chain === null ? undefined : td.get(chain);
        const cant = `Can't set policy \`${cmd.policy}' on \`${chain}': `;
        if (!d || !d.builtin) throw new RuleError(chain ?? '', cant + 'Bad built-in chain name');
        if (cmd.policy !== 'ACCEPT' && cmd.policy !== 'DROP') throw new RuleError(cmd.policy ?? '', cant + 'Bad policy name');
        if (cmd.policy === 'DROP' && td.name === 'nat') throw new RuleError('DROP', NAT_DROP);
        const e = need(chain);
        e.policy = cmd.policy;
        e.declared = 'policy';
        e.counters = cmd.counters ?? ZERO_COUNTERS;
        this.blockPolicies.set(e.name, e.counters);
        return;
      }
      case 'E':
        this.rename(chain!, cmd.newName!);
        return;
    }
  }

  private userChains(): string[] {
    return this.allChains().filter((n) => !this.td!.get(n)!.builtin).sort(byteOrder);
  }

  private allChains(): string[] {
    const td = this.td!;
    const names: string[] = [];
    for (const c of td.origin.chains()) if (td.exists(c.name)) names.push(c.name);
    for (const [n, d] of td.changes) if (d && !td.origin.chain(n)) names.push(n);
    return names;
  }

  private deleteChain(name: string): void {
    const td = this.td!;
    const c = td.get(name);
    if (!c) throw new RuleError(name, 'No chain/target/match by that name.');
    if (c.builtin) throw new RuleError(name, "Can't delete built-in chain");
    if (td.references(name) > 0) throw new RuleError(name, "Can't delete chain with references left");
    if (c.rules.length) throw new RuleError(name, 'Chain is not empty');
    td.delete(name, this.lineNo);
  }

  private zero(d: ChainDraft, rulenum: number): void {
    if (rulenum > d.rules.length) throw new RuleError(String(rulenum), 'Index of counter too big.');
    if (rulenum === 0) d.counters = ZERO_COUNTERS;
    d.rules.forEach((r, k) => {
      if ((rulenum === 0 || k === rulenum - 1) && r.counters !== ZERO_COUNTERS && (r.counters.packets || r.counters.bytes)) {
        this.td!.replace(d, k, { ...r, counters: ZERO_COUNTERS }, d.lines?.[k] ?? 0);
      }
    });
  }

  /** -E: the chain gets the new name and every rule that named it follows (libiptc renames the
   *  chain in place; jumps point at it, not at its name). */
  private rename(oldName: string, newName: string): void {
    const td = this.td!;
    const c = td.get(oldName);
    if (!c || c.builtin) throw new RuleError(oldName, 'No chain/target/match by that name.');
    if (td.exists(newName)) throw new RuleError(newName, 'File exists.');
    td.refDeltas(); // track counts from here on, the rules below change their targets
    const moved = td.create(newName);
    for (const r of c.rules) td.append(moved, r, 0);
    moved.lines = c instanceof ChainDraft && c.lines ? c.lines.slice() : new Array(c.rules.length).fill(0);
    moved.seq = c.seq;
    const old = td.edit(oldName)!;
    td.flush(old);
    for (const name of this.allChains()) {
      const d = td.get(name)!;
      d.rules.forEach((r, k) => {
        if (r.target?.kind === 'jump' && r.target.chain === oldName) {
          const e = td.edit(name)!;
          td.replace(e, k, { ...r, text: '', target: { ...r.target, chain: newName } }, e.lines?.[k] ?? 0);
        }
      });
    }
    td.delete(oldName, this.lineNo);
  }
}

function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
