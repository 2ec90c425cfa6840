// ext.ts — what every match and target extension plugs into: the option table format, the
// generic option checks libxtables applies (once, invert, also/excl, mandatory), the error type
// carrying the word at fault, and the value parsers extensions share (ports, protocols, marks).
// Never knows any particular extension; never touches a ruleset.

import { parseUint, scanUint } from './addr.js';
import type { Family, PortRange } from './model.js';

/** A rule-level parse error: the word at fault and a message worded like iptables'. */
export class RuleError extends Error {
  constructor(
    readonly word: string,
    message: string,
  ) {
    super(message);
  }
}

/** One option of an extension (libxtables struct xt_option_entry, the parts we use). */
export interface OptDef {
  readonly name: string;
  /** Options sharing an id are spellings of one option (`--sport` / `--source-port`). */
  readonly id: number;
  /** Number of argument words the option takes. */
  readonly args: 0 | 1 | 2;
  /** `!` may precede the option. */
  readonly invert?: boolean;
  /** Must be given (XTOPT_MAND). */
  readonly mand?: boolean;
  /** Bit mask of option ids this one cannot be combined with (XTOPT excl). */
  readonly excl?: number;
  /** Bit mask of option ids this one requires (XTOPT also). */
  readonly also?: number;
  /** May be given more than once. */
  readonly multi?: boolean;
  /** Message when given twice, for extensions on the old libxtables API with their own wording. */
  readonly twice?: string;
}

/** What an extension may look at besides its own options: the rule's family and `-p` so far. */
export interface ParseEnv {
  readonly family: Family;
  readonly proto: number;
  readonly protoInvert: boolean;
}

/** An extension: its options, a mutable parse state, and the frozen model object it builds. */
export interface ExtDef<S, R> {
  readonly name: string;
  /** Only available in this family (icmp is IPv4 only, icmp6 IPv6 only). */
  readonly family?: Family;
  /**
   * The kernel match's protocol (struct xt_match .proto): the rule must say `-p` with exactly
   * this one, not inverted, or the kernel refuses the table (x_tables.c xt_check_match()).
   */
  readonly proto?: number;
  readonly opts: readonly OptDef[];
  /** Old-style extensions check repetition and `!` themselves (no generic "--x" checks). */
  readonly legacy?: boolean;
  init(env: ParseEnv): S;
  parse(state: S, opt: OptDef, args: readonly string[], invert: boolean, env: ParseEnv): void;
  /** Final check after all words were read (x6_fcheck), before the generic mand/also/excl ones. */
  check?(state: S, xflags: number, env: ParseEnv): void;
  build(state: S, env: ParseEnv): R;
}

/** The generic per-option checks of xtables_option_parse(): once, and `!` allowed. */
export function checkOption(ext: ExtDef<unknown, unknown>, opt: OptDef, xflags: number, invert: boolean): void {
  const bit = 1 << opt.id;
  if (xflags & bit && (!opt.multi || (opt.excl ?? 0) & bit)) {
    throw new RuleError('--' + opt.name, opt.twice ?? `${ext.name}: option "--${firstName(ext, opt)}" can only be used once.`);
  }
  if (invert && !opt.invert && !ext.legacy) {
    throw new RuleError('--' + opt.name, `${ext.name}: option "--${firstName(ext, opt)}" cannot be inverted.`);
  }
}

/** How libxtables names an option in its messages: by the first entry of its id (`--source-ports`
 *  for `--sports`). */
function firstName(ext: ExtDef<unknown, unknown>, opt: OptDef): string {
  return (extInfo(ext).byId[opt.id] ?? opt).name;
}

interface ExtInfo {
  readonly byName: ReadonlyMap<string, OptDef>;
  /** The first option of each id (the one libxtables names in messages), in table order. */
  readonly firsts: readonly OptDef[];
  readonly byId: readonly (OptDef | undefined)[];
}

const infoMemo = new WeakMap<object, ExtInfo>();

function extInfo(ext: ExtDef<unknown, unknown>): ExtInfo {
  let info = infoMemo.get(ext);
  if (!info) {
    const byName = new Map<string, OptDef>();
    const byId: (OptDef | undefined)[] = [];
    const firsts: OptDef[] = [];
    for (const o of ext.opts) {
      byName.set(o.name, o);
      if (!byId[o.id]) {
        byId[o.id] = o;
        firsts.push(o);
      }
    }
    info = { byName, firsts, byId };
    infoMemo.set(ext, info);
  }
  return info;
}

/** The option of `ext` called `name` (without the leading dashes). */
export function findOption(ext: ExtDef<unknown, unknown>, name: string): OptDef | undefined {
  return extInfo(ext).byName.get(name);
}

/** The options of `ext` whose name `prefix` abbreviates (getopt_long), one per id: undefined for
 *  none, null when two different options would fit. */
export function abbreviated(ext: ExtDef<unknown, unknown>, prefix: string): OptDef | null | undefined {
  let found: OptDef | undefined;
  for (const o of ext.opts) {
    if (!o.name.startsWith(prefix)) continue;
    if (found === undefined) found = o;
    else if (found.id !== o.id) return null;
  }
  return found;
}

/** The generic final checks of xtables_options_fcheck(): mandatory, also-requires, exclusions. */
export function checkFinal(ext: ExtDef<unknown, unknown>, xflags: number): void {
  const { firsts, byId } = extInfo(ext);
  for (const opt of firsts) {
    const bit = 1 << opt.id;
    if (opt.mand && !(xflags & bit)) {
      throw new RuleError(ext.name, `${ext.name}: option "--${opt.name}" must be specified`);
    }
    const related = (opt.also ?? 0) | (opt.excl ?? 0);
    if (!(xflags & bit) || related === 0) continue;
    for (let i = 0; i < 32; i++) {
      const ob = 1 << i;
      if (i === opt.id || !(related & ob)) continue;
      const other = byId[i];
      if (other === undefined) continue;
      if ((opt.also ?? 0) & ob && !(xflags & ob)) {
        throw new RuleError('--' + opt.name, `${ext.name}: option "--${opt.name}" also requires "--${other.name}".`);
      }
      if ((opt.excl ?? 0) & ob && xflags & ob) {
        throw new RuleError('--' + opt.name, `${ext.name}: option "--${opt.name}" cannot be used together with "--${other.name}".`);
      }
    }
  }
}

// ---- value parsers -----------------------------------------------------------------------------

/** An unsigned integer option (XTTYPE_UINT*): base 0, within [min, max]. */
export function parseIntOpt(ext: string, opt: string, arg: string, min: number, max: number): number {
  const v = parseUint(arg, min, max);
  if (v === null) {
    throw new RuleError(arg, `${ext}: bad value for option "--${opt}", or out of range (${min}-${max}).`);
  }
  return v;
}

/** `value[/mask]` (XTTYPE_MARKMASK32); the mask defaults to all ones. */
export function parseMarkMask(ext: string, opt: string, arg: string): { value: number; mask: number } {
  const bad = () => new RuleError(arg, `${ext}: bad integer value for option "--${opt}", or out of range.`);
  const v = scanUint(arg, 0);
  if (v === null || v.value > 0xffffffff) throw bad();
  if (v.end === arg.length) return { value: v.value, mask: 0xffffffff };
  if (arg[v.end] !== '/') {
    throw new RuleError(arg, `${ext}: trailing garbage after value for option "--${opt}".`);
  }
  const m = scanUint(arg, v.end + 1);
  if (m === null || m.value > 0xffffffff) throw bad();
  if (m.end !== arg.length) throw new RuleError(arg, `${ext}: trailing garbage after value for option "--${opt}".`);
  return { value: v.value, mask: m.value };
}

/** A string option copied into a fixed kernel buffer of `size` bytes: longer values are cut. */
export function fitString(value: string, size: number): string {
  return value.length >= size ? value.slice(0, size - 1) : value;
}

// Well-known service names, as Debian's netbase /etc/services lists them (the common subset: a
// name missing here is refused rather than guessed), with the protocols each is listed for.
const TCP = 1, UDP = 2, BOTH = 3;
const SERVICES: Record<string, readonly [number, number]> = {
  'ftp-data': [20, TCP], ftp: [21, TCP], ssh: [22, TCP], telnet: [23, TCP], smtp: [25, TCP],
  domain: [53, BOTH], bootps: [67, UDP], bootpc: [68, UDP], tftp: [69, UDP], http: [80, TCP],
  www: [80, TCP], kerberos: [88, BOTH], pop3: [110, TCP], sunrpc: [111, BOTH], ntp: [123, UDP],
  'netbios-ns': [137, UDP], 'netbios-dgm': [138, UDP], 'netbios-ssn': [139, TCP], imap2: [143, TCP],
  imap: [143, TCP], snmp: [161, BOTH], 'snmp-trap': [162, BOTH], bgp: [179, TCP], ldap: [389, BOTH],
  https: [443, BOTH], 'microsoft-ds': [445, TCP], submission: [587, TCP], ldaps: [636, BOTH],
  imaps: [993, TCP], pop3s: [995, TCP], 'ms-sql-s': [1433, TCP], nfs: [2049, BOTH], mysql: [3306, TCP],
  postgresql: [5432, TCP], 'http-alt': [8080, TCP],
};

/**
 * getservbyname(name, proto): `proto` 6 or 17 asks that protocol's entries, null any (getaddrinfo
 * without hints); other protocols have none (netbase lists no sctp, dccp or udplite names).
 */
export function serviceToPort(name: string, proto: number | null = null): number | null {
  if (!Object.prototype.hasOwnProperty.call(SERVICES, name)) return null;
  const [port, protos] = SERVICES[name];
  const want = proto === null ? BOTH : proto === 6 ? TCP : proto === 17 ? UDP : 0;
  return (protos & want) !== 0 ? port : null;
}

/** A port as xtables_parse_port(port, proto) reads it (base-0 number or service name), or null. */
export function parsePortNumber(s: string, proto: number): number | null {
  const n = parseUint(s, 0, 65535);
  return n !== null ? n : serviceToPort(s, proto);
}

const ULONG_MAX = (1n << 64n) - 1n;

/**
 * A port as xtables_getportbyname() reads it, for XTTYPE_PORT/PORTRC options: getaddrinfo()'s
 * service, which glibc reads with strtoul(…, 10) — leading blanks and a sign allowed, the value
 * cut to an int and then to 16 bits (65536 is port 0), a negative int meaning "not a number" —
 * or else a service name of any protocol. Null when it resolves to nothing.
 */
export function parsePortDecimal(s: string): number | null {
  const m = /^[ \t\n\v\f\r]*([+-]?)([0-9]+)$/.exec(s);
  if (m === null) return s === '' ? 0 : serviceToPort(s);
  let v = BigInt(m[2]);
  if (v > ULONG_MAX) v = ULONG_MAX;
  else if (m[1] === '-') v = (ULONG_MAX + 1n - v) & ULONG_MAX;
  const n = Number(BigInt.asIntN(32, v));
  return n < 0 ? null : n & 0xffff;
}

const SPACE = '[ \\t\\n\\v\\f\\r]*';
const DECIMAL = new RegExp(`^${SPACE}[+-]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][+-]?\\d+)?$`);
const HEXFLOAT = new RegExp(`^${SPACE}([+-]?)0[xX]([0-9a-fA-F]*)(?:\\.([0-9a-fA-F]*))?(?:[pP]([+-]?\\d+))?$`);
const INF_NAN = new RegExp(`^${SPACE}([+-]?)(?:(inf(?:inity)?)|nan(?:\\([0-9A-Za-z_]*\\))?)$`, 'i');

/**
 * The number glibc's strtod() reads when it reads all of `s` (xtopt_parse_double() refuses
 * anything left over): leading white space and a sign, then decimal digits with a point and an
 * exponent, hexadecimal ones with a binary exponent (0x1p-1), inf, infinity, nan or nan(…). Null
 * for anything else. Each pattern matches a text one way only: linear in its length.
 */
export function strtodWhole(s: string): number | null {
  if (DECIMAL.test(s)) return Number(s);
  const h = HEXFLOAT.exec(s);
  if (h !== null) {
    const int = h[2]!, frac = h[3] ?? '';
    if (int === '' && frac === '') return null;
    // The significant digits (14 hex digits hold more than a double's 53 bits) and the binary
    // exponent of the last one kept.
    let all = (int + frac).replace(/^0+/, '');
    let e = (h[4] === undefined ? 0 : Number(h[4])) - 4 * frac.length;
    if (all.length > 14) { e += 4 * (all.length - 14); all = all.slice(0, 14); }
    return (h[1] === '-' ? -1 : 1) * (all === '' ? 0 : parseInt(all, 16) * 2 ** e);
  }
  const n = INF_NAN.exec(s);
  if (n === null) return null;
  return n[2] !== undefined ? (n[1] === '-' ? -Infinity : Infinity) : NaN;
}

/** `a[:b]` of -m tcp/sctp (parse_tcp_ports): empty ends default to 0 and 65535. */
export function parseColonRangeStrict(arg: string, proto: number): PortRange {
  const colon = arg.indexOf(':');
  const one = (s: string): number => {
    const p = parsePortNumber(s, proto);
    if (p === null) throw new RuleError(arg, `invalid port/service \`${s}' specified`);
    return p;
  };
  if (colon < 0) {
    const p = one(arg);
    return { lo: p, hi: p };
  }
  const lo = colon > 0 ? one(arg.slice(0, colon)) : 0;
  const hi = colon < arg.length - 1 ? one(arg.slice(colon + 1)) : 65535;
  if (lo > hi) throw new RuleError(arg, 'invalid portrange (min > max)');
  return { lo, hi };
}

/** `a[:b]` of XTTYPE_PORTRC options (-m udp, conntrack ports): at most two components. */
export function parsePortRc(ext: string, opt: string, arg: string): PortRange {
  const parts = arg.split(':');
  if (parts.length > 2) {
    throw new RuleError(arg, `${ext}: Too many components for option "--${opt}" (max: 2)`);
  }
  const vals = [0, 65535];
  parts.forEach((p, i) => {
    if (p === '') return;
    const v = parsePortDecimal(p);
    if (v === null) throw new RuleError(arg, `Port "${p}" does not resolve to anything.`);
    vals[i] = v;
  });
  if (parts.length === 1) vals[1] = vals[0];
  return { lo: vals[0], hi: vals[1] };
}

// IP protocol keywords (/etc/protocols as shipped by netbase, IANA "Keyword" column).
const PROTO_NAMES: Record<number, string> = {
  0: 'ip', 1: 'icmp', 2: 'igmp', 3: 'ggp', 4: 'ipencap', 5: 'st', 6: 'tcp', 8: 'egp', 9: 'igp',
  12: 'pup', 17: 'udp', 20: 'hmp', 22: 'xns-idp', 27: 'rdp', 29: 'iso-tp4', 33: 'dccp', 36: 'xtp',
  37: 'ddp', 38: 'idpr-cmtp', 41: 'ipv6', 43: 'ipv6-route', 44: 'ipv6-frag', 45: 'idrp',
  46: 'rsvp', 47: 'gre', 50: 'esp', 51: 'ah', 57: 'skip', 58: 'ipv6-icmp', 59: 'ipv6-nonxt',
  60: 'ipv6-opts', 73: 'rspf', 81: 'vmtp', 88: 'eigrp', 89: 'ospf', 93: 'ax.25', 94: 'ipip',
  97: 'etherip', 98: 'encap', 103: 'pim', 108: 'ipcomp', 112: 'vrrp', 115: 'l2tp', 124: 'isis',
  132: 'sctp', 133: 'fc', 135: 'mobility-header', 136: 'udplite', 137: 'mpls-in-ip', 138: 'manet',
  139: 'hip', 140: 'shim6', 141: 'wesp', 142: 'rohc', 143: 'ethernet',
};

// libxtables xtables_chain_protos[]: looked up before /etc/protocols, both ways.
const CHAIN_PROTOS: readonly (readonly [string, number])[] = [
  ['tcp', 6], ['sctp', 132], ['udp', 17], ['udplite', 136], ['icmp', 1], ['ipv6-icmp', 58],
  ['icmpv6', 58], ['esp', 50], ['ah', 51], ['mobility-header', 135], ['ipv6-mh', 135], ['mh', 135],
  ['all', 0],
];

/** `-p` as xtables_parse_protocol() reads it (number 0–255 or name), lower-cased; null if unknown. */
export function parseProtocol(text: string): number | null {
  const n = parseUint(text, 0, 255);
  if (n !== null) return n;
  for (const [name, num] of CHAIN_PROTOS) if (name === text) return num;
  for (const k in PROTO_NAMES) if (PROTO_NAMES[k] === text) return Number(k);
  return null;
}

/** The name iptables-save prints for a protocol (proto_to_name()), or null for a bare number. */
export function protocolName(proto: number): string | null {
  for (const [name, num] of CHAIN_PROTOS) if (num === proto) return name;
  return PROTO_NAMES[proto] ?? null;
}

export function hex(n: number): string {
  return '0x' + (n >>> 0).toString(16);
}

/** Port range as -m tcp/udp/sctp save it: `lo` or `lo:hi`. */
export function colonRange(r: PortRange): string {
  return r.lo === r.hi ? String(r.lo) : `${r.lo}:${r.hi}`;
}

/** True for the full 0:65535 range (what an omitted --sport/--dport means). */
export function isFullRange(r: PortRange): boolean {
  return r.lo === 0 && r.hi === 65535;
}

export const FULL_RANGE: PortRange = Object.freeze({ lo: 0, hi: 65535 });
