// ext-match.ts — the matches on packet metadata: comment, addrtype, mark, limit, physdev,
// nfacct, set. For each: its options (as libxtables declares them in extensions/libxt_*.c),
// parsing with the same checks and messages, and the two printed forms (iptables-save and
// `iptables -L -n`), plus the hooks the kernel lets them run in. Layer-4 matches are ext-l4.ts,
// connection-state matches ext-state.ts. Never evaluates a packet.

import {
  RuleError, fitString, hex, parseIntOpt, parseMarkMask, type ExtDef,
} from './ext.js';
import { saveString } from './lexer.js';
import type {
  AddrType, AddrtypeMatch, CommentMatch, ConnmarkMatch, IfaceMatch, LimitMatch, MarkMatch, Match, NfacctMatch, PhysdevMatch, SetMatch,
} from './model.js';

type Mut<T> = { -readonly [K in keyof T]: T[K] };
type MatchDef = ExtDef<unknown, Match>;

// ---- comment (libxt_comment.c) --------------------------------------------------------------------

const comment: ExtDef<Mut<CommentMatch>, Match> = {
  name: 'comment',
  opts: [{ name: 'comment', id: 0, args: 1, mand: true }],
  init: () => ({ kind: 'comment', text: '' }),
  parse(s, _o, args) {
    s.text = fitString(args[0], 256); // struct xt_comment_info: char comment[256]
  },
  build: (s) => s,
};

// ---- addrtype (libxt_addrtype.c revision 1; kernel checks from xt_addrtype.c) ------------------------

const RTN_NAMES: readonly AddrType[] = [
  'UNSPEC', 'UNICAST', 'LOCAL', 'BROADCAST', 'ANYCAST', 'MULTICAST', 'BLACKHOLE', 'UNREACHABLE',
  'PROHIBIT', 'THROW', 'NAT', 'XRESOLVE',
];

function parseAddrTypes(arg: string): AddrType[] {
  const found = new Set<AddrType>();
  const parts = arg.split(',');
  parts.forEach((p, i) => {
    const last = i === parts.length - 1;
    const t = p === '' ? undefined : RTN_NAMES.find((n) => n.startsWith(p.toUpperCase()));
    if (!t) {
      const rest = parts.slice(i).join(',');
      throw new RuleError(arg, last ? `addrtype: bad type "${rest}"` : `addrtype: bad type \`${rest}'`);
    }
    found.add(t);
  });
  return RTN_NAMES.filter((n) => found.has(n));
}

const addrtype: ExtDef<Mut<AddrtypeMatch>, Match> = {
  name: 'addrtype',
  opts: [
    { name: 'src-type', id: 0, args: 1, invert: true },
    { name: 'dst-type', id: 1, args: 1, invert: true },
    { name: 'limit-iface-in', id: 2, args: 0, excl: 1 << 3 },
    { name: 'limit-iface-out', id: 3, args: 0, excl: 1 << 2 },
  ],
  init: () => ({ kind: 'addrtype', srcTypes: [], srcInvert: false, dstTypes: [], dstInvert: false, limitIfaceIn: false, limitIfaceOut: false }),
  parse(s, opt, args, invert) {
    if (opt.id === 0) { s.srcTypes = parseAddrTypes(args[0]); s.srcInvert = invert; }
    else if (opt.id === 1) { s.dstTypes = parseAddrTypes(args[0]); s.dstInvert = invert; }
    else if (opt.id === 2) s.limitIfaceIn = true;
    else s.limitIfaceOut = true;
  },
  check(s, xflags, env) {
    if (!(xflags & 3)) throw new RuleError('addrtype', 'addrtype: you must specify --src-type or --dst-type');
    if (env.family === 6) {
      // xt_addrtype.c addrtype_mt_checkentry_v1(): types IPv6 routing does not have.
      const all = new Set([...s.srcTypes, ...s.dstTypes]);
      if (all.has('BLACKHOLE')) throw new RuleError('addrtype', 'ipv6 BLACKHOLE matching not supported');
      if (all.has('PROHIBIT')) throw new RuleError('addrtype', 'ipv6 PROHIBIT (THROW, NAT ..) matching not supported');
      if (all.has('BROADCAST')) throw new RuleError('addrtype', 'ipv6 does not support BROADCAST matching');
    }
  },
  build: (s) => s,
};

// ---- mark and connmark (libxt_mark.c, libxt_connmark.c revision 1) -------------------------------------

/** `--mark value[/mask]` of the packet (`-m mark`) or of its conntrack entry (`-m connmark`). */
function markDef(name: 'mark' | 'connmark'): ExtDef<Mut<MarkMatch | ConnmarkMatch>, Match> {
  return {
    name,
    opts: [{ name: 'mark', id: 0, args: 1, invert: true, mand: true }],
    init: () => ({ kind: name, value: 0, mask: 0xffffffff, invert: false }),
    parse(s, _o, args, invert) {
      const v = parseMarkMask(name, 'mark', args[0]);
      s.value = v.value;
      s.mask = v.mask;
      s.invert = invert;
    },
    build: (s) => s,
  };
}
const mark = markDef('mark');
const connmark = markDef('connmark');

/** xtables_print_mark_mask(): ` 0xV` or ` 0xV/0xM`. */
export function markMask(value: number, mask: number): string {
  return mask === 0xffffffff ? ' ' + hex(value) : ` ${hex(value)}/${hex(mask)}`;
}

// ---- limit (libxt_limit.c) --------------------------------------------------------------------------

const LIMIT_SCALE = 10000; // XT_LIMIT_SCALE
const RATES: readonly (readonly [string, number])[] = [
  ['day', LIMIT_SCALE * 24 * 60 * 60], ['hour', LIMIT_SCALE * 60 * 60], ['min', LIMIT_SCALE * 60], ['sec', LIMIT_SCALE],
];

/** parse_rate(): `N[/second|minute|hour|day]` (any prefix of the unit) to kernel units. */
function parseRate(rate: string): number | null {
  let mult = 1;
  const slash = rate.indexOf('/');
  if (slash >= 0) {
    const unit = rate.slice(slash + 1).toLowerCase();
    if (unit === '') return null;
    const units: readonly (readonly [string, number])[] = [['second', 1], ['minute', 60], ['hour', 3600], ['day', 86400]];
    const u = units.find(([n]) => n.startsWith(unit));
    if (!u) return null;
    mult = u[1];
  }
  const r = parseInt(rate, 10); // atoi()
  if (!(r > 0)) return null;
  const val = Math.floor((LIMIT_SCALE * mult) / r);
  if (val === 0) throw new RuleError(rate, `Rate too fast "${rate}"`);
  return val;
}

/** print_rate(): the largest unit that still shows the rate as a whole number. */
function printRate(period: number): string {
  if (period === 0) return ' inf';
  let i = 1;
  for (; i < RATES.length; i++) {
    const m = RATES[i][1];
    if (period > m || Math.floor(m / period) < m % period) break;
  }
  return ` ${Math.floor(RATES[i - 1][1] / period)}/${RATES[i - 1][0]}`;
}

const limit: ExtDef<Mut<LimitMatch>, Match> = {
  name: 'limit',
  opts: [
    { name: 'limit', id: 0, args: 1 },
    { name: 'limit-burst', id: 1, args: 1 },
  ],
  init: () => ({ kind: 'limit', avg: Math.floor((LIMIT_SCALE * 3600) / 3), burst: 5 }), // default 3/hour
  parse(s, opt, args) {
    if (opt.id === 0) {
      const v = parseRate(args[0]);
      if (v === null) throw new RuleError(args[0], `bad rate "${args[0]}"'`);
      s.avg = v;
    } else {
      s.burst = parseIntOpt('limit', 'limit-burst', args[0], 0, 10000);
    }
  },
  // xt_limit.c limit_mt_check(): a zero burst, or a bucket (rate × burst, in 32 bits) that
  // overflows the kernel's credit units, refuses the table.
  check(s) {
    if (s.burst === 0 || userToCredits((s.avg * s.burst) % 2 ** 32) < userToCredits(s.avg)) {
      throw new RuleError('--limit', `limit: Overflow, try lower: ${s.avg}/${s.burst}`);
    }
  },
  build: (s) => s,
};

/**
 * xt_limit.c user2credits() with HZ × CREDITS_PER_JIFFY = 32000 (CONFIG_HZ 250 or 1000; this
 * machine's kernel has 250), in the kernel's 32-bit arithmetic.
 */
function userToCredits(user: number): number {
  if (user > Math.floor(0xffffffff / 32000)) return (Math.floor(user / LIMIT_SCALE) * 32000) % 2 ** 32;
  return Math.floor((user * 32000) / LIMIT_SCALE);
}

// ---- physdev (libxt_physdev.c; kernel check from xt_physdev.c) --------------------------------------

function parseIface(arg: string): Omit<IfaceMatch, 'invert'> {
  if (arg.length >= 16) throw new RuleError(arg, `interface name \`${arg}' must be shorter than IFNAMSIZ (15)`);
  const wildcard = arg.endsWith('+');
  return { name: wildcard ? arg.slice(0, -1) : arg, wildcard };
}

const physdev: ExtDef<Mut<PhysdevMatch>, Match> = {
  name: 'physdev',
  opts: [
    { name: 'physdev-in', id: 0, args: 1, invert: true },
    { name: 'physdev-out', id: 1, args: 1, invert: true },
    { name: 'physdev-is-in', id: 2, args: 0, invert: true },
    { name: 'physdev-is-out', id: 3, args: 0, invert: true },
    { name: 'physdev-is-bridged', id: 4, args: 0, invert: true },
  ],
  init: () => ({ kind: 'physdev', physIn: null, physOut: null, isIn: null, isOut: null, isBridged: null }),
  parse(s, opt, args, invert) {
    if (opt.id === 0) s.physIn = { ...parseIface(args[0]), invert };
    else if (opt.id === 1) s.physOut = { ...parseIface(args[0]), invert };
    else if (opt.id === 2) s.isIn = { invert };
    else if (opt.id === 3) s.isOut = { invert };
    else s.isBridged = { invert };
  },
  check(_s, xflags) {
    if (xflags === 0) throw new RuleError('physdev', 'PHYSDEV: no physdev option specified');
  },
  build: (s) => s,
};

function ifaceText(i: IfaceMatch): string {
  return i.wildcard ? i.name + '+' : i.name;
}

// ---- nfacct (libxt_nfacct.c) ------------------------------------------------------------------------

const nfacct: ExtDef<Mut<NfacctMatch>, Match> = {
  name: 'nfacct',
  opts: [{ name: 'nfacct-name', id: 0, args: 1, mand: true }],
  init: () => ({ kind: 'nfacct', name: '' }),
  parse(s, _o, args) {
    if (args[0].length < 1) throw new RuleError(args[0], 'Argument must have a minimum length of 1 characters');
    if (args[0].includes('\n')) throw new RuleError(args[0], 'Newlines not allowed in --nfacct-name');
    s.name = fitString(args[0], 32); // NFACCT_NAME_MAX
  },
  build: (s) => s,
};

// ---- set (libxt_set.c revision 4; packet/byte counter conditions are not modelled) ------------------

const set: ExtDef<Mut<SetMatch>, Match> = {
  name: 'set',
  legacy: true,
  opts: [
    { name: 'match-set', id: 0, args: 2, invert: true, twice: '--match-set can be specified only once' },
    { name: 'set', id: 0, args: 2, invert: true, twice: '--match-set can be specified only once' },
    { name: 'return-nomatch', id: 1, args: 0 },
    { name: 'update-counters', id: 2, args: 0, invert: true },
    { name: 'update-subcounters', id: 3, args: 0, invert: true },
    { name: 'packets-eq', id: 4, args: 1, invert: true },
    { name: 'packets-lt', id: 4, args: 1 },
    { name: 'packets-gt', id: 4, args: 1 },
    { name: 'bytes-eq', id: 5, args: 1, invert: true },
    { name: 'bytes-lt', id: 5, args: 1 },
    { name: 'bytes-gt', id: 5, args: 1 },
  ],
  init: () => ({ kind: 'set', name: '', dirs: [], invert: false, returnNomatch: false }),
  parse(s, opt, args, invert) {
    if (opt.id === 1) {
      if (invert) throw new RuleError('--return-nomatch', '--return-nomatch flag cannot be inverted');
      s.returnNomatch = true;
      return;
    }
    if (opt.id !== 0) {
      if (opt.id === 2 || opt.id === 3) {
        if (!invert) return; // without `!` these only restate the default
      }
      throw new RuleError('--' + opt.name, `set: --${opt.name} is not supported by svcplane`);
    }
    if (args[0].length > 31) throw new RuleError(args[0], `setname \`${args[0]}' too long, max 31 characters.`);
    const dirs: ('src' | 'dst')[] = [];
    for (const d of args[1].split(',')) {
      if (dirs.length === 6) throw new RuleError(args[1], "Can't be more src/dst options than 6.");
      if (d.startsWith('src')) dirs.push('src');
      else if (d.startsWith('dst')) dirs.push('dst');
      else throw new RuleError(args[1], "You must specify (the comma separated list of) 'src' or 'dst'.");
    }
    s.name = args[0];
    s.dirs = dirs;
    s.invert = invert;
  },
  check(_s, xflags) {
    if (!(xflags & 1)) throw new RuleError('set', "You must specify `--match-set' with proper arguments");
  },
  build: (s) => s,
};

/** The metadata match extensions by the name `-m` takes. */
export const MATCH_DEFS: ReadonlyMap<string, MatchDef> = new Map<string, MatchDef>([
  ['comment', comment], ['addrtype', addrtype], ['mark', mark], ['connmark', connmark], ['limit', limit], ['physdev', physdev],
  ['nfacct', nfacct], ['set', set],
]);

// ---- rendering --------------------------------------------------------------------------------------

type Basic = CommentMatch | AddrtypeMatch | MarkMatch | ConnmarkMatch | LimitMatch | PhysdevMatch | NfacctMatch | SetMatch;

/** What follows `-m NAME` in iptables-save output for one of this file's matches. */
export function saveBasic(m: Basic): string {
  switch (m.kind) {
    case 'comment':
      return ' --comment' + saveString(m.text);
    case 'addrtype': {
      let out = '';
      if (m.srcTypes.length) out += (m.srcInvert ? ' !' : '') + ' --src-type ' + m.srcTypes.join(',');
      if (m.dstTypes.length) out += (m.dstInvert ? ' !' : '') + ' --dst-type ' + m.dstTypes.join(',');
      if (m.limitIfaceIn) out += ' --limit-iface-in';
      if (m.limitIfaceOut) out += ' --limit-iface-out';
      return out;
    }
    case 'mark':
    case 'connmark':
      return (m.invert ? ' !' : '') + ' --mark' + markMask(m.value, m.mask);
    case 'limit':
      return ' --limit' + printRate(m.avg) + (m.burst !== 5 ? ' --limit-burst ' + m.burst : '');
    case 'physdev':
      return physdevText(m);
    case 'nfacct':
      return ' --nfacct-name ' + saveString(m.name);
    case 'set':
      return (m.invert ? ' !' : '') + ` --match-set ${m.name} ${m.dirs.join(',')}` + (m.returnNomatch ? ' --return-nomatch' : '');
  }
}

function physdevText(m: PhysdevMatch): string {
  let out = '';
  const inv = (x: { invert: boolean }) => (x.invert ? ' !' : '');
  if (m.isIn) out += inv(m.isIn) + ' --physdev-is-in';
  if (m.physIn) out += inv(m.physIn) + ' --physdev-in ' + ifaceText(m.physIn);
  if (m.isOut) out += inv(m.isOut) + ' --physdev-is-out';
  if (m.physOut) out += inv(m.physOut) + ' --physdev-out ' + ifaceText(m.physOut);
  if (m.isBridged) out += inv(m.isBridged) + ' --physdev-is-bridged';
  return out;
}

/** The match column text `iptables -L -n` prints for one of this file's matches. */
/** The match column text `iptables -L -n` prints for one of this file's matches. */
export function printBasic(m: Basic): string {
  switch (m.kind) {
    case 'comment':
      return ` /* ${m.text} */`;
    case 'addrtype': {
      let out = ' ADDRTYPE match';
      if (m.srcTypes.length) out += ' src-type ' + (m.srcInvert ? '!' : '') + m.srcTypes.join(',');
      if (m.dstTypes.length) out += ' dst-type ' + (m.dstInvert ? '!' : '') + m.dstTypes.join(',');
      if (m.limitIfaceIn) out += ' limit-in';
      if (m.limitIfaceOut) out += ' limit-out';
      return out;
    }
    case 'mark':
      return ' mark match' + (m.invert ? ' !' : '') + markMask(m.value, m.mask);
    case 'connmark':
      // connmark_mt_print(): "connmark match ", then "!" and the mark with its own leading space.
      return ' connmark match ' + (m.invert ? '!' : '') + markMask(m.value, m.mask);
    case 'limit':
      return ' limit: avg' + printRate(m.avg) + ' burst ' + m.burst;
    case 'physdev':
      return ' PHYSDEV match' + physdevText(m);
    case 'nfacct':
      return ' nfacct-name ' + saveString(m.name);
    case 'set':
      return (m.invert ? ' !' : '') + ` match-set ${m.name} ${m.dirs.join(',')}` + (m.returnNomatch ? ' return-nomatch' : '');
  }
}

/** Hooks a match may be used from (bit per Hook, 0x1f = all), per the kernel's checkentry. */
export function basicHooks(m: Match): number {
  if (m.kind === 'addrtype') {
    // xt_addrtype.c: --limit-iface-out not in PREROUTING/INPUT, --limit-iface-in not in POSTROUTING/OUTPUT.
    let ok = 0x1f;
    if (m.limitIfaceOut) ok &= ~0b00011;
    if (m.limitIfaceIn) ok &= ~0b11000;
    return ok;
  }
  if (m.kind === 'physdev' && (m.physOut || m.isOut) && (!m.isBridged || m.isBridged.invert)) {
    // xt_physdev.c: output-device matching needs --physdev-is-bridged outside PREROUTING/INPUT.
    return 0b00011;
  }
  return 0x1f;
}

/** The kernel's complaint (xt_addrtype.c / xt_physdev.c checkentry) for the first match of
 *  `rule` that may not be reached from the hooks in `used`. */
export function basicHookMessage(rule: { readonly matches: readonly Match[] }, used: number): { word: string; message: string } {
  for (const m of rule.matches) {
    if ((used & ~basicHooks(m)) === 0) continue;
    if (m.kind === 'addrtype') {
      return m.limitIfaceOut && used & 0b00011
        ? { word: '--limit-iface-out', message: 'xt_addrtype: output interface limitation not valid in PREROUTING and INPUT' }
        : { word: '--limit-iface-in', message: 'xt_addrtype: input interface limitation not valid in POSTROUTING and OUTPUT' };
    }
    if (m.kind === 'physdev') {
      return {
        word: '--physdev-out',
        message: 'xt_physdev: --physdev-out and --physdev-is-out only supported in the FORWARD and POSTROUTING chains with bridged traffic',
      };
    }
  }
  return { word: '', message: 'rule used from a hook it does not support' };
}
