// rule.ts — reads one iptables command line (as iptables-restore hands it to do_command) into a
// command and, for -A/-I/-D/-R/-C, a typed Rule (save.ts prints one back). The option handling mirrors iptables/xshared.c do_parse(): base options, `!`
// before the option it negates, `-m` loading a match whose options become available, the match
// named by `-p` loaded on demand for an option nobody else knows, target options after `-j`.
// Never looks at tables or chains (restore.ts checks those), never reads the clock or the host.

import { parseHostMask } from './addr.js';
import { L4_MATCH_DEFS } from './ext-l4.js';
import { MATCH_DEFS, basicHooks } from './ext-match.js';
import { STATE_MATCH_DEFS } from './ext-state.js';
import { IPVS_MATCH_DEFS } from './ext-ipvs.js';
import { TARGET_DEFS, VERDICTS, targetHooks } from './ext-target.js';
import {
  RuleError, abbreviated, checkFinal, checkOption, findOption, parseProtocol, protocolName, type ExtDef, type OptDef, type ParseEnv,
} from './ext.js';
import { splitWords } from './lexer.js';
import { ZERO_COUNTERS, type AddrMatch, type Counters, type Family, type IfaceMatch, type Match, type Rule, type Target } from './model.js';

/** The commands iptables-restore passes to do_command (the letters iptables uses). */
export type Cmd = 'A' | 'I' | 'D' | 'R' | 'C' | 'N' | 'X' | 'F' | 'Z' | 'P' | 'E';

export interface Command {
  readonly cmd: Cmd;
  readonly chain: string | null;
  /** 1-based rule number for -I/-R/-D/-Z, 0 when none was given. */
  readonly rulenum: number;
  readonly policy: string | null;
  readonly newName: string | null;
  /** The rule of -A/-I/-D (by spec)/-R/-C. */
  readonly rule: Rule | null;
  /** -c on -P. */
  readonly counters: Counters | null;
  /** Index (in the word list) of the first word after the command's own arguments, -1 if the
   *  command was not the first word (then the rule has no source text of its own). */
  readonly specFrom: number;
}

export const MAX_NAME = 28; // XT_EXTENSION_MAXNAMELEN - 1

const MATCH_ALIASES: Record<string, string> = { icmpv6: 'icmp6', 'ipv6-icmp': 'icmp6' };

function findMatchDef(name: string, family: Family): ExtDef<unknown, Match> | null {
  const key = MATCH_ALIASES[name] ?? name;
  const def = L4_MATCH_DEFS.get(key) ?? MATCH_DEFS.get(key) ?? STATE_MATCH_DEFS.get(key) ?? IPVS_MATCH_DEFS.get(key);
  if (!def || (def.family !== undefined && def.family !== family)) return null;
  return def;
}

interface Instance<R> {
  readonly def: ExtDef<unknown, R>;
  readonly state: unknown;
  xflags: number;
  completed: boolean;
}

// Base options: long name -> short letter (iptables.c original_opts[]).
const LONG: Record<string, string> = {
  append: 'A', delete: 'D', check: 'C', insert: 'I', replace: 'R', list: 'L', 'list-rules': 'S', flush: 'F',
  zero: 'Z', 'new-chain': 'N', 'delete-chain': 'X', 'rename-chain': 'E', policy: 'P', source: 's',
  destination: 'd', src: 's', dst: 'd', protocol: 'p', 'in-interface': 'i', jump: 'j', table: 't', match: 'm',
  numeric: 'n', 'out-interface': 'o', verbose: 'v', wait: 'w', 'wait-interval': 'W', exact: 'x', fragments: 'f',
  version: 'V', help: 'h', 'line-numbers': '0', modprobe: 'M', 'set-counters': 'c', goto: 'g', ipv4: '4', ipv6: '6',
};
const LONG_NAMES = Object.keys(LONG);
// Long options that take no argument (original_opts has_arg 0): `--name=value` is unknown to getopt.
const NO_ARG = new Set(['n', 'v', 'x', 'f', 'V', '0', '4', '6']);
// Options whose value iptables 1.8.9 reads from argv[optind-1], the whole word, when it is joined
// to the option (`-jACCEPT` names a target "-jACCEPT", `--src=1.2.3.4` a host "--src=1.2.3.4"),
// where the others read optarg (`-mtcp` loads tcp).
const WHOLE_WORD = 'sdpjio';
// Short options that take one argument (IPT_OPTSTRING).
const WITH_ARG = new Set(['A', 'C', 'D', 'E', 'I', 'N', 'P', 'R', 'c', 'd', 'i', 'j', 'o', 'p', 's', 't', 'g', 'm', 'M']);
// Rule options that may be given once each (xshared.c set_option()), in iptables' order.
const OPTION_LETTERS = 'sdpjiofc';

/** Parses the words of a whole command line (`-A CHAIN …`, `-X CHAIN`, …); `quoted` tells
 *  which words had a quoted part (splitWords()). */
export function parseCommand(words: readonly string[], family: Family, lenientComments = true, quoted?: readonly boolean[]): Command {
  return new Parser(words, family, null, lenientComments, '', quoted).run();
}

/** Parses the rule spec of a line already known to be `-A CHAIN <text>`. */
export function parseRuleText(text: string, family: Family, lenientComments = true): Rule {
  const quoted: boolean[] = [];
  const c = new Parser(splitWords(text, 0, undefined, quoted), family, 'A', lenientComments, text, quoted).run();
  if (c.rule === null) throw new RuleError('', 'no command specified');
  return c.rule;
}

class Parser {
  private i = 0;
  private invert = false;
  private cmd: Cmd | null;
  private chain: string | null = null;
  private rulenum = 0;
  private policy: string | null = null;
  private newName: string | null = null;
  private specFrom = -1;
  private options = 0; // bit per option letter given (set_option())
  private src: AddrMatch | null = null;
  private dst: AddrMatch | null = null;
  private inIface: IfaceMatch | null = null;
  private outIface: IfaceMatch | null = null;
  private proto = 0;
  private protoInvert = false;
  private protoUsed = false;
  private fragment: { invert: boolean } | null = null;
  private readonly instances: Instance<Match>[] = [];
  private target: Instance<Target> | null = null;
  /** The extensions whose options joined the option table, in the order they joined. */
  private readonly merged: ExtDef<unknown, Match | Target>[] = [];
  private jumpTo = '';
  private isGoto = false;
  private counters: Counters | null = null;
  // The comment state whose bare value may absorb following non-option words (see run()).
  private openComment: { text: string } | null = null;
  // One environment object per rule, kept current as -p is read.
  private readonly envObj: { family: Family; proto: number; protoInvert: boolean };

  constructor(
    private readonly words: readonly string[],
    private readonly family: Family,
    preset: Cmd | null,
    private readonly lenientComments: boolean,
    private readonly text = '',
    private readonly quoted: readonly boolean[] = [],
  ) {
    this.cmd = preset;
    if (preset) this.specFrom = 0;
    this.envObj = { family, proto: 0, protoInvert: false };
  }

  private env(): ParseEnv {
    return this.envObj;
  }

  run(): Command {
    const w = this.words;
    while (this.i < w.length) {
      const word = w[this.i++];
      if (word === '!') {
        if (this.invert) throw new RuleError(word, 'multiple consecutive ! not allowed');
        this.invert = true;
        continue;
      }
      if (word === '--' && !this.quoted[this.i - 1]) {
        // getopt's end of options: iptables takes no words after it.
        if (this.i < w.length) throw new RuleError(w[this.i]!, 'unknown arguments found on commandline');
        break;
      }
      if (word.length > 1 && word[0] === '-') {
        this.option(word);
        continue;
      }
      // kube-proxy's own test fixtures write some comments unquoted (`--comment a b c -j X`);
      // iptables would refuse the second word. Outside strict mode, unquoted words after an
      // unquoted comment continue it, as long as an option follows them.
      if (this.openComment && this.lenientComments && !this.invert && this.continuesComment(this.i - 1)) {
        this.openComment.text = (this.openComment.text + ' ' + word).slice(0, 255);
        continue;
      }
      throw new RuleError(word, `Bad argument \`${word}'`);
    }
    return this.finish();
  }

  private continuesComment(at: number): boolean {
    const w = this.words;
    let j = at;
    while (j < w.length && !this.quoted[j] && w[j] !== '!' && !(w[j].length > 1 && w[j][0] === '-')) j++;
    if (this.quoted[at] || j >= w.length || this.quoted[j]) return false;
    return w[j] === '!' || w[j][0] === '-';
  }

  private arg(opt: string): string {
    if (this.i >= this.words.length) throw new RuleError(opt, `option "${opt}" requires an argument`);
    return this.words[this.i++];
  }

  /** xs_has_arg(): the next word exists and is not an option or `!`. */
  private hasArg(): boolean {
    const n = this.words[this.i];
    return n !== undefined && n[0] !== '-' && n[0] !== '!';
  }

  private option(word: string): void {
    let letter: string | undefined;
    let inline: string | undefined;
    if (word[1] === '-') {
      let name = word.slice(2);
      const eq = name.indexOf('=');
      if (eq >= 0) {
        inline = name.slice(eq + 1);
        name = name.slice(0, eq);
      }
      const hit = this.longOption(name);
      if (hit === null || typeof hit !== 'string') {
        this.extOption(word, name, inline, hit);
        return;
      }
      letter = hit;
      if (inline !== undefined) {
        if (NO_ARG.has(letter)) throw new RuleError(word, `unknown option "${word}"`);
        if (WHOLE_WORD.includes(letter)) inline = word;
      }
    } else {
      letter = word[1];
      if (word.length > 2) {
        if (!WITH_ARG.has(letter)) throw new RuleError(word, `unknown option "${word}"`);
        inline = WHOLE_WORD.includes(letter) ? word : word.slice(2);
      }
    }
    this.openComment = null;
    const take = (): string => (inline !== undefined ? inline : this.arg(word));
    const inv = this.invert;
    this.invert = false;
    switch (letter) {
      case 'A': case 'C': case 'N': this.command(letter, inv); this.chain = take(); break;
      case 'D':
        this.command('D', inv);
        this.chain = take();
        if (this.hasArg()) this.rulenum = ruleNumber(this.words[this.i++], true);
        break;
      case 'R':
        this.command('R', inv);
        this.chain = take();
        if (!this.hasArg()) throw new RuleError(word, '-R requires a rule number');
        this.rulenum = ruleNumber(this.words[this.i++], false);
        break;
      case 'I':
        this.command('I', inv);
        this.chain = take();
        if (this.hasArg()) this.rulenum = ruleNumber(this.words[this.i++], false);
        break;
      case 'F': case 'X': case 'Z':
        this.command(letter, inv);
        if (inline !== undefined) this.chain = inline;
        else if (this.hasArg()) this.chain = this.words[this.i++];
        if (letter === 'Z' && this.hasArg()) this.rulenum = ruleNumber(this.words[this.i++], false);
        break;
      case 'E':
        this.command('E', inv);
        this.chain = take();
        if (!this.hasArg()) throw new RuleError(word, '-E requires old-chain-name and new-chain-name');
        this.newName = this.words[this.i++];
        break;
      case 'P':
        this.command('P', inv);
        this.chain = take();
        if (!this.hasArg()) throw new RuleError(word, '-P requires a chain and a policy');
        this.policy = this.words[this.i++];
        break;
      case 'L': case 'S':
        throw new RuleError(word, 'listing commands are not supported in restore input');
      case 'p': {
        this.setOption('p', inv);
        const text = take().toLowerCase();
        const p = parseProtocol(text);
        if (p === null) throw new RuleError(text, `unknown protocol "${text}" specified`);
        if (p === 0 && inv) throw new RuleError(text, 'rule would never match protocol');
        this.proto = p;
        this.protoInvert = inv;
        this.envObj.proto = p;
        this.envObj.protoInvert = inv;
        break;
      }
      case 's': case 'd': {
        this.setOption(letter, inv);
        const text = take();
        if (text.includes(',')) throw new RuleError(text, 'several addresses in one rule are not supported by svcplane');
        let a;
        try {
          a = parseHostMask(text, this.family);
        } catch (msg) {
          throw new RuleError(text, String(msg));
        }
        // A literal, not a spread: V8 gives every spread copy of these a hidden class of its own.
        const m: AddrMatch = { family: a.family, addr: a.addr, mask: a.mask, prefix: a.prefix, invert: inv };
        if (letter === 's') this.src = m;
        else this.dst = m;
        break;
      }
      case 'i': case 'o': {
        const text = take();
        if (text === '') throw new RuleError(word, 'Empty interface is likely to be undesired');
        this.setOption(letter, inv);
        if (text.length >= 16) throw new RuleError(text, `interface name \`${text}' must be shorter than IFNAMSIZ (15)`);
        const wildcard = text.endsWith('+');
        const iface = { name: wildcard ? text.slice(0, -1) : text, wildcard, invert: inv };
        if (letter === 'i') this.inIface = iface;
        else this.outIface = iface;
        break;
      }
      case 'f':
        if (this.family === 6) throw new RuleError(word, "`-f' is not supported in IPv6, use -m frag instead");
        this.setOption('f', inv);
        this.fragment = { invert: inv };
        break;
      case 'j': case 'g': {
        this.setOption('j', inv);
        const name = targetName(take());
        if (letter === 'g') {
          if (VERDICTS.has(name) || TARGET_DEFS.has(name)) throw new RuleError(name, `goto '${name}' is not a chain`);
          this.isGoto = true;
          this.jumpTo = name;
        } else if (name !== 'CONTINUE') {
          this.jumpTo = name;
          const def = TARGET_DEFS.get(name);
          if (def) {
            this.target = { def, state: def.init(this.env()), xflags: 0, completed: false };
            this.merged.push(def);
          }
        }
        break;
      }
      case 'm': {
        if (inv) throw new RuleError(word, 'unexpected ! flag before --match');
        const name = take();
        if (name.length > MAX_NAME) throw new RuleError(name, `Invalid match name "${name}" (${MAX_NAME} chars max)`);
        const def = findMatchDef(name, this.family);
        if (!def) throw new RuleError(name, `Couldn't load match \`${name}':No such file or directory`);
        this.load(def);
        break;
      }
      case 'c': {
        this.setOption('c', inv);
        const pc = take();
        let bc: string | undefined;
        const comma = pc.indexOf(',', 1);
        const pcText = comma >= 0 ? pc.slice(0, comma) : pc;
        if (comma >= 0) bc = pc.slice(comma + 1);
        else if (this.hasArg()) bc = this.words[this.i++];
        if (bc === undefined) throw new RuleError(word, '-c requires packet and byte counter');
        const packets = counterValue(pcText);
        if (packets === null) throw new RuleError(pcText, '-c packet counter not numeric');
        const bytes = counterValue(bc);
        if (bytes === null) throw new RuleError(bc, '-c byte counter not numeric');
        this.counters = { packets, bytes };
        break;
      }
      case 't':
        throw new RuleError(word, 'The -t option cannot be used in iptables-restore.');
      case 'w': case 'W':
        throw new RuleError(word, `You cannot use \`-${letter}' from iptables-restore`);
      case 'v':
        break; // verbosity does not change the rule
      case '4': case '6':
        if ((letter === '4') !== (this.family === 4)) throw new SkipLine();
        break;
      case 'n': case 'x': case '0':
        throw new RuleError(word, `Illegal option \`${word}' with this command`);
      default:
        throw new RuleError(word, `unknown option "${word}"`);
    }
  }

  private command(c: Cmd, inv: boolean): void {
    if (inv) throw new RuleError('-' + c, "unexpected '!' flag");
    if (this.cmd) throw new RuleError('-' + c, `Cannot use -${c} with -${this.cmd}`);
    this.cmd = c;
    if (this.i === 1) this.specFrom = -2; // resolved after the command's arguments are read
  }

  private setOption(letter: string, inv: boolean): void {
    const bit = 1 << OPTION_LETTERS.indexOf(letter);
    if (this.options & bit) throw new RuleError('-' + letter, `multiple -${letter} flags not allowed`);
    this.options |= bit;
    if (inv && (letter === 'j' || letter === 'c')) throw new RuleError('-' + letter, `cannot have ! before -${letter}`);
  }

  private load(def: ExtDef<unknown, Match>): Instance<Match> {
    for (const inst of this.instances) if (inst.def === def) inst.completed = true;
    const inst: Instance<Match> = { def, state: def.init(this.env()), xflags: 0, completed: false };
    this.instances.push(inst);
    if (!this.merged.includes(def)) this.merged.push(def);
    return inst;
  }

  /**
   * A long option as getopt_long() finds it in iptables' option table (xtables_merge_options():
   * the base options, then the newest extension's, then older ones; a match loaded again is a
   * clone whose options are not merged twice): the name given in full first, else the one option
   * it abbreviates (`--to` for DNAT's `--to-destination`, `--dport` for multiport's `--dports`),
   * its other spellings counting as the same option. A base option's letter; an extension's
   * option, for the live (last loaded) instance of that extension (command_default()); or null:
   * none, or several it could abbreviate.
   */
  private longOption(name: string): string | [Instance<Match> | Instance<Target>, OptDef] | null {
    const exact = LONG[name];
    if (exact !== undefined) return exact;
    const order = this.merged;
    for (let k = order.length - 1; k >= 0; k--) {
      const opt = findOption(order[k]!, name);
      if (opt) return [this.live(order[k]!), opt];
    }
    let letter: string | null = null;
    for (const long of LONG_NAMES) {
      if (!long.startsWith(name)) continue;
      if (letter === null) letter = LONG[long]!;
      else if (letter !== LONG[long]) return null;
    }
    let hit: [ExtDef<unknown, Match | Target>, OptDef] | null = null;
    for (let k = order.length - 1; k >= 0; k--) {
      const opt = abbreviated(order[k]!, name);
      if (opt === undefined) continue;
      if (opt === null || letter !== null || hit !== null) return null;
      hit = [order[k]!, opt];
    }
    return hit !== null ? [this.live(hit[0]), hit[1]] : letter;
  }

  /** The instance options of `def` go to: the target, or the match's last (not completed) one. */
  private live(def: ExtDef<unknown, Match | Target>): Instance<Match> | Instance<Target> {
    if (this.target?.def === def) return this.target;
    for (let k = this.instances.length - 1; ; k--) if (this.instances[k]!.def === def) return this.instances[k]!;
  }

  /** An option that is not a base option: the loaded extension's option getopt found (`hit`),
   *  else, with the match `-p` names loaded now (once), the option getopt finds then, else
   *  unknown (xshared.c command_default()). */
  private extOption(word: string, name: string, inline: string | undefined, found: [Instance<Match> | Instance<Target>, OptDef] | null): void {
    let hit = found;
    if (!hit && this.proto !== 0 && !this.protoUsed) {
      this.protoUsed = true;
      const pname = protocolName(this.proto);
      const def = pname ? findMatchDef(pname, this.family) : null;
      if (def) {
        this.load(def);
        const again = this.longOption(name);
        hit = typeof again === 'string' ? null : again;   // the base options are as they were
      }
    }
    // getopt refuses `--name=value` for an option without an argument: an unknown option then.
    if (!hit || (inline !== undefined && hit[1].args === 0)) throw new RuleError(word, `unknown option "${word}"`);
    const [inst, opt] = hit;
    const inv = this.invert;
    this.invert = false;
    checkOption(inst.def, opt, inst.xflags, inv);
    const args: string[] = [];
    if (opt.args >= 1) args.push(inline !== undefined ? inline : this.arg(word));
    if (opt.args === 2) {
      if (!this.hasArg()) throw new RuleError(word, `--${opt.name} requires two args.`);
      args.push(this.words[this.i++]);
    }
    inst.def.parse(inst.state, opt, args, inv, this.env());
    inst.xflags |= 1 << opt.id;
    const bare = inline === undefined && opt.args === 1 && !this.quoted[this.i - 1];
    this.openComment = inst.def.name === 'comment' && bare ? (inst.state as { text: string }) : null;
  }

  private finish(): Command {
    if (this.invert) throw new RuleError('!', 'nothing appropriate following !');
    if (!this.cmd) throw new RuleError('', 'no command specified');
    const cmd = this.cmd;
    const env = this.env();
    const withRule = cmd === 'A' || cmd === 'I' || cmd === 'R' || cmd === 'C' || (cmd === 'D' && this.rulenum === 0);
    if (!withRule) {
      // generic_opt_check(): rule options only go with the rule commands; -c also with -P.
      for (let k = 0; k < OPTION_LETTERS.length; k++) {
        const o = OPTION_LETTERS[k];
        if (!(this.options & (1 << k)) || (o === 'c' && cmd === 'P')) continue;
        throw new RuleError('-' + o, `Illegal option \`-${o}' with this command`);
      }
      if (this.instances.length || this.target) throw new RuleError('-m', 'Illegal option `-m\' with this command');
    }
    if (this.chain !== null && this.chain.length > MAX_NAME) {
      throw new RuleError(this.chain, `chain name \`${this.chain}' too long (must be under ${MAX_NAME + 1} chars)`);
    }
    if (cmd === 'N' || cmd === 'E') assertValidChainName(cmd === 'N' ? this.chain! : this.newName!);
    let rule: Rule | null = null;
    if (withRule) {
      // Sized exactly: a pushed-to array keeps room for 17 and rules live long.
      const matches: Match[] = new Array<Match>(this.instances.length);
      for (let k = 0; k < this.instances.length; k++) {
        const inst = this.instances[k];
        const proto = inst.def.proto;
        if (proto !== undefined && (this.proto !== proto || this.protoInvert)) {
          throw new RuleError(inst.def.name, `${inst.def.name} match: only valid for protocol ${proto}`);
        }
        inst.def.check?.(inst.state, inst.xflags, env);
        checkFinal(inst.def, inst.xflags);
        matches[k] = inst.def.build(inst.state, env);
      }
      let target: Target | null = null;
      if (this.target) {
        this.target.def.check?.(this.target.state, this.target.xflags, env);
        checkFinal(this.target.def, this.target.xflags);
        target = this.target.def.build(this.target.state, env);
      } else if (this.jumpTo !== '') {
        target = VERDICTS.has(this.jumpTo)
          ? ({ kind: this.jumpTo } as Target)
          : { kind: 'jump', chain: this.jumpTo, goto: this.isGoto };
      }
      rule = {
        family: this.family, text: this.text, src: this.src, dst: this.dst, inIface: this.inIface, outIface: this.outIface,
        proto: this.proto, protoInvert: this.protoInvert, fragment: this.fragment, matches, target,
        counters: this.counters ?? ZERO_COUNTERS,
      };
    }
    return {
      cmd, chain: this.chain, rulenum: this.rulenum, policy: this.policy, newName: this.newName, rule,
      counters: cmd === 'P' ? this.counters : null, specFrom: this.specFrom === -2 ? this.commandEnd() : this.specFrom,
    };
  }

  // With the command first, its arguments are the next 1–3 words; the rule spec starts after.
  private commandEnd(): number {
    const c = this.cmd;
    if (c === 'A' || c === 'C') return 2;
    if (c === 'R') return 3;
    if (c === 'I' || c === 'D') return this.rulenum > 0 ? 3 : 2;
    return -1;
  }
}

/** Thrown for a line do_parse() ignores (`-6` in iptables-restore, `-4` in ip6tables-restore). */
export class SkipLine extends Error {}

function targetName(name: string): string {
  if (name.length < 1) throw new RuleError(name, 'Invalid target name (too short)');
  if (name.length > MAX_NAME) throw new RuleError(name, `Invalid target name \`${name}' (${MAX_NAME} chars max)`);
  if (/\s/.test(name)) throw new RuleError(name, `Invalid target name \`${name}'`);
  return name;
}

/** assert_valid_chain_name() for -N and -E. */
export function assertValidChainName(name: string): void {
  if (name.length > MAX_NAME) throw new RuleError(name, `chain name \`${name}' too long (must be under ${MAX_NAME + 1} chars)`);
  if (name[0] === '-' || name[0] === '!') throw new RuleError(name, `chain name not allowed to start with \`${name[0]}'`);
  if (VERDICTS.has(name) || TARGET_DEFS.has(name)) throw new RuleError(name, 'chain name may not clash with target name');
  if (/\s/.test(name)) throw new RuleError(name, `Invalid chain name \`${name}'`);
}

function ruleNumber(text: string, forDelete: boolean): number {
  if (forDelete && text.includes(':')) throw new RuleError(text, 'Rule ranges are not supported');
  const n = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= 0x7fffffff)) throw new RuleError(text, `Invalid rule number \`${text}'`);
  return n;
}

function counterValue(s: string): bigint | null {
  return /^[0-9]{1,20}$/.test(s) && BigInt(s) <= 0xffffffffffffffffn ? BigInt(s) : null;
}

/** Hooks the rule's matches and target allow (one bit per Hook, 0x1f = every hook). */
export function ruleHooks(rule: Rule): number {
  let ok = rule.target ? targetHooks(rule.target) : 0x1f;
  for (const m of rule.matches) ok &= basicHooks(m);
  return ok;
}

/** `[pkts:bytes]` (parse_counters(): sscanf "[%llu:%llu]"). */
export function bracketCounters(s: string): Counters | null {
  const m = /^\[([0-9]+):([0-9]+)\]/.exec(s);
  return m ? plainCounters(m[1], m[2]) : null;
}

export function plainCounters(p: string, b: string): Counters | null {
  if (!/^[0-9]{1,20}$/.test(p) || !/^[0-9]{1,20}$/.test(b)) return null;
  const packets = BigInt(p);
  const bytes = BigInt(b);
  if (packets > 0xffffffffffffffffn || bytes > 0xffffffffffffffffn) return null;
  return packets === 0n && bytes === 0n ? ZERO_COUNTERS : { packets, bytes };
}
