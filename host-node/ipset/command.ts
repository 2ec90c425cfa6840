// ipset/command.ts — the ipset command line: tokenizing a line (ipset's own splitter: whitespace,
// "double quoted" words), the global options (-exist / -!, -quiet, -sorted, -output, -name,
// -terse, -resolve), the command word (full names, the shortest unambiguous prefix in the order
// ipset documents, and the one-letter aliases) and each command's arguments, with ipset 7.x's usage
// and syntax messages. Create options are parsed here (the type is on the line); add/del/test
// options depend on the set, so they are returned raw for the model. Pure; throws IpsetError.
import { usage, syntax, syntaxLines, kernel, MSG } from './errors.js';
import { typeDef, type TypeDef, MAX_SETNAME, MAX_TIMEOUT } from './types.js';

export type CommandName = 'create' | 'add' | 'del' | 'test' | 'destroy' | 'list' | 'save' | 'restore' |
  'flush' | 'rename' | 'swap' | 'help' | 'version';

// ipset.8: "The ipset parser follows the order here when looking for the shortest match".
const ORDER: readonly CommandName[] = ['create', 'add', 'del', 'test', 'destroy', 'list', 'save', 'restore', 'flush', 'rename', 'swap', 'help', 'version'];
const ALIASES: ReadonlyMap<string, CommandName> = new Map<string, CommandName>([
  ['n', 'create'], ['x', 'destroy'], ['e', 'rename'], ['w', 'swap'],
  ['-N', 'create'], ['-A', 'add'], ['-D', 'del'], ['-T', 'test'], ['-X', 'destroy'], ['-L', 'list'],
  ['-S', 'save'], ['-R', 'restore'], ['-F', 'flush'], ['-E', 'rename'], ['-W', 'swap'], ['-H', 'help'],
  ['-V', 'version'], ['-v', 'version'],
]);

export interface CreateOpts {
  family: 4 | 6;
  hashsize: number | null;
  maxelem: number | null;
  timeout: number | null;
  counters: boolean;
  comment: boolean;
  bucketsize: number | null;
  initval: number | null;
  range: [number, number] | null;
}

export interface GlobalOpts {
  exist: boolean;
  sorted: boolean;
  output: 'plain' | 'save' | 'xml' | null;
  names: boolean;
  terse: boolean;
  quiet: boolean;
}

export type Command =
  | { cmd: 'create'; name: string; def: TypeDef; opts: CreateOpts }
  | { cmd: 'add' | 'del' | 'test'; name: string; entry: string; rest: string[] }
  | { cmd: 'destroy' | 'flush' | 'list' | 'save'; name: string | null }
  | { cmd: 'rename' | 'swap'; from: string; to: string }
  | { cmd: 'restore' | 'help' | 'version' };

export interface Parsed { command: Command; global: GlobalOpts }

/** Splits a line as ipset does: on whitespace; "a quoted string" is one word (quotes dropped). */
export function tokenize(line: string): string[] {
  if (!line.includes('"')) return line.split(/\s+/).filter((w) => w !== '');
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && /\s/.test(line[i]!)) i++;
    if (i >= line.length) break;
    let w = '';
    let quoted = false;
    while (i < line.length && (quoted || !/\s/.test(line[i]!))) {
      if (line[i] === '"') quoted = !quoted;
      else w += line[i];
      i++;
    }
    out.push(w);
  }
  return out;
}

function commandOf(word: string): CommandName | null {
  const a = ALIASES.get(word);
  if (a) return a;
  if (word === '') return null;
  return ORDER.find((c) => c.startsWith(word)) ?? null;
}

/** An unsigned number as ipset's string_to_number() reads it (decimal, 0x hex, leading-0 octal). */
export function parseNumber(s: string, min: number, max: number): number {
  let n: number;
  if (/^0x[0-9a-fA-F]+$/.test(s)) n = parseInt(s, 16);
  else if (/^0[0-7]+$/.test(s)) n = parseInt(s, 8);
  else if (/^-?\d+$/.test(s)) n = Number(s);
  else throw syntax(`'${s}' is invalid as number`, s);
  if (n < min || n > max) throw syntax(`'${s}' is out of range ${min}-${max}`, s);
  return n;
}

function portNumber(tok: string): number {
  const s = tok.startsWith('[') && tok.endsWith(']') ? tok.slice(1, -1) : tok;
  const fail = (first: string) => syntaxLines([`Syntax error: ${first}`, "Syntax error: 'tcp' is invalid as number", `cannot parse '${s}' as a tcp port`], tok);
  if (/^\d+$/.test(s)) {
    if (Number(s) > 65535) throw fail(`'${s}' is out of range 0-65535`);
    return Number(s);
  }
  throw fail(`'${s}' is invalid as number`);
}

function createOpts(def: TypeDef, args: string[]): CreateOpts {
  const o: CreateOpts = {
    family: 4, hashsize: null, maxelem: null, timeout: null, counters: false, comment: false,
    bucketsize: null, initval: null, range: null,
  };
  const value = (i: number, opt: string): string => {
    if (i >= args.length) throw usage(`Missing mandatory argument of option \`${opt}'`, opt);
    return args[i]!;
  };
  const hashOnly = new Set(['family', 'hashsize', 'maxelem', 'bucketsize', 'initval', '-4', '-6', 'inet', 'inet6']);
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!def.hash && hashOnly.has(a)) throw usage(`Unknown argument: \`${a}'`, a);
    switch (a) {
      case 'family': {
        const f = value(++i, a);
        if (f === 'inet' || f === 'ipv4') o.family = 4;
        else if (f === 'inet6' || f === 'ipv6') o.family = 6;
        else throw syntax(`unknown inet family ${f}`, f);
        break;
      }
      case '-4': o.family = 4; break;
      case '-6': o.family = 6; break;
      case 'hashsize': o.hashsize = parseNumber(value(++i, a), 0, 0xffffffff); break;
      case 'maxelem': o.maxelem = parseNumber(value(++i, a), 0, 0xffffffff); break;
      case 'timeout': o.timeout = parseNumber(value(++i, a), 0, MAX_TIMEOUT); break;
      case 'bucketsize': o.bucketsize = parseNumber(value(++i, a), 0, 255); break;
      case 'initval': o.initval = parseNumber(value(++i, a), 0, 0xffffffff); break;
      case 'counters': o.counters = true; break;
      case 'comment': o.comment = true; break;
      case 'range': {
        if (def.hash) throw usage(`Unknown argument: \`${a}'`, a);
        const r = value(++i, a);
        const dash = r.indexOf('-', r.startsWith('[') ? r.indexOf(']') : 0);
        if (dash < 0) throw usage("Mandatory option `to' is missing", r);
        const strip = (s: string) => (s.includes(':') ? s.slice(s.indexOf(':') + 1) : s);
        const lo = portNumber(strip(r.slice(0, dash))), hi = portNumber(r.slice(dash + 1));
        // bitmap_port_create(): a reversed range is swapped.
        o.range = lo <= hi ? [lo, hi] : [hi, lo];
        break;
      }
      case 'forceadd': case 'skbinfo': case 'netmask': case 'bitmask': case 'markmask':
        throw syntax(`create option \`${a}' is not supported by svcplane`, a);
      default:
        throw usage(`Unknown argument: \`${a}'`, a);
    }
  }
  if (!def.hash && !o.range) throw usage("Mandatory option `range' is missing", 'range');
  return o;
}

function setName(n: string): string {
  if (n.length > MAX_SETNAME) throw syntax(`setname '${n}' is longer than ${MAX_SETNAME} characters`, n);
  return n;
}

/**
 * Parses one command's words (argv without the program name, or a restore line's words). Global
 * options may stand anywhere. Throws IpsetError.
 */
export function parseCommand(words: readonly string[]): Parsed {
  const global: GlobalOpts = { exist: false, sorted: false, output: null, names: false, terse: false, quiet: false };
  const args: string[] = [];
  let cmd: CommandName | null = null;
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (cmd === null || w.startsWith('-')) {
      switch (w) {
        case '-exist': case '-!': global.exist = true; continue;
        case '-sorted': case '-s': global.sorted = true; continue;
        case '-name': case '-n': global.names = true; continue;
        case '-terse': case '-t': global.terse = true; continue;
        case '-quiet': case '-q': global.quiet = true; continue;
        case '-resolve': case '-r': continue;
        case '-output': case '-o': {
          const f = words[++i];
          if (f === undefined) throw usage("Missing mandatory argument of option `output'", w);
          if (f !== 'plain' && f !== 'save' && f !== 'xml') throw syntax(`Syntax error: unknown output mode '${f}'`, f);
          global.output = f;
          continue;
        }
        case '-file': case '-f':
          throw usage('-file is not supported by svcplane: pass the text itself', w);
      }
      if (cmd === null) {
        cmd = commandOf(w);
        if (cmd === null) throw usage(`No command specified: unknown argument ${w}`, w);
        continue;
      }
    }
    args.push(w);
  }
  if (cmd === null) throw usage('No command specified.', '');
  const need = (n: number) => {
    if (args.length < 1 && n >= 1) throw usage(`Missing mandatory argument to command ${cmd}`, cmd!);
    if (args.length < 2 && n >= 2) throw usage(`Missing second mandatory argument to command ${cmd}`, cmd!);
  };
  const extra = (from: number) => {
    if (args.length > from) throw usage(`Unknown argument ${args[from]}`, args[from]!);
  };
  switch (cmd) {
    case 'create': {
      need(2);
      const def = typeDef(args[1]!);
      const name = setName(args[0]!);
      if (!def) {
        // A type ipset knows but svcplane does not implement reads as a kernel without its module.
        if (KNOWN_UNSUPPORTED.has(args[1]!)) throw kernel(MSG.typeUnsupported, args[1]!);
        throw syntax(`typename '${args[1]}' is unknown`, args[1]!);
      }
      return { global, command: { cmd, name, def, opts: createOpts(def, args.slice(2)) } };
    }
    case 'add': case 'del': case 'test':
      need(2);
      return { global, command: { cmd, name: setName(args[0]!), entry: args[1]!, rest: args.slice(2) } };
    case 'destroy': case 'flush': case 'list': case 'save':
      extra(1);
      return { global, command: { cmd, name: args.length > 0 ? setName(args[0]!) : null } };
    case 'rename': case 'swap':
      need(2);
      extra(2);
      return { global, command: { cmd, from: setName(args[0]!), to: setName(args[1]!) } };
    default:
      return { global, command: { cmd } };
  }
}

// Set types ipset knows that svcplane does not implement.
const KNOWN_UNSUPPORTED = new Set([
  'bitmap:ip', 'bitmap:ip,mac', 'hash:mac', 'hash:ip,mac', 'hash:net,net', 'hash:net,port',
  'hash:net,port,net', 'hash:net,iface', 'hash:ip,mark', 'list:set',
]);
