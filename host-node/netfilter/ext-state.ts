// ext-state.ts — the matches that consult state kept across packets: conntrack (and its `state`
// alias), recent (kube-proxy session affinity) and statistic (kube-proxy endpoint spreading).
// Options, checks and messages follow extensions/libxt_conntrack.c, libxt_recent.c and
// libxt_statistic.c (iptables 1.8.x, the revisions current kernels load); the printed forms are
// their save/print functions in numeric mode. Never evaluates a packet.

import { addrMask, formatAddr, listAddrMask, maskPrefix, parseHostAddr, parseUint, prefixMask } from './addr.js';
import { RuleError, parseIntOpt, parsePortRc, parseProtocol, fitString, strtodWhole, type ExtDef } from './ext.js';
import type {
  AddrMatch, ConntrackMatch, CtState, CtStatus, Family, InvPortRange, Match, RecentMatch,
  StateMatch, StatisticMatch, Words,
} from './model.js';

type Mut<T> = { -readonly [K in keyof T]: T[K] };
type MatchDef = ExtDef<unknown, Match>;

// ---- conntrack (revision 3) ---------------------------------------------------------------------------

// Parse order of conntrack_ps_state(); print order of print_state() differs.
const CT_STATE_PARSE: readonly CtState[] = ['INVALID', 'NEW', 'ESTABLISHED', 'RELATED', 'UNTRACKED', 'SNAT', 'DNAT'];
const CT_STATE_PRINT: readonly CtState[] = ['INVALID', 'NEW', 'RELATED', 'ESTABLISHED', 'UNTRACKED', 'SNAT', 'DNAT'];
const CT_STATUS_PARSE: readonly (CtStatus | 'NONE')[] = ['NONE', 'EXPECTED', 'SEEN_REPLY', 'ASSURED', 'CONFIRMED'];
const CT_STATUS_PRINT: readonly CtStatus[] = ['EXPECTED', 'SEEN_REPLY', 'ASSURED', 'CONFIRMED'];

/** A comma list where each item is a case-insensitive prefix of a name (strncasecmp(item, NAME, len)). */
function parseNameList<T extends string>(arg: string, names: readonly T[], bad: (rest: string) => string): Set<T> {
  const out = new Set<T>();
  const items = arg.split(',');
  items.forEach((item, i) => {
    const up = item.toUpperCase();
    const hit = item === '' ? undefined : names.find((n) => n.startsWith(up));
    if (hit === undefined) throw new RuleError(arg, bad(items.slice(i).join(',')));
    out.add(hit);
  });
  return out;
}

/** XTTYPE_HOSTMASK: `addr[/prefix|/mask]`; the address is kept as written (the kernel compares
 *  under the mask), so iptables prints it back unmasked. */
function parseHostMaskOpt(arg: string, family: Family): AddrMatch & { invert: false } {
  const slash = arg.indexOf('/');
  const host = slash < 0 ? arg : arg.slice(0, slash);
  const addr = parseHostAddr(host, family);
  if (addr === null) throw new RuleError(arg, `host/network \`${host}' not found`);
  let mask = prefixMask(family, family === 4 ? 32 : 128);
  if (slash >= 0) {
    const m = arg.slice(slash + 1);
    const max = family === 4 ? 32 : 128;
    // xtopt_parse_plen(): a prefix length, else a mask read as an address; a mask whose bits are
    // not contiguous gives no prefix length and libxtables then leaves the full mask.
    const bits = parseUint(m, 0, max);
    const asAddr = bits === null ? parseHostAddr(m, family) : null;
    if (bits !== null) mask = prefixMask(family, bits);
    else if (asAddr === null) {
      throw new RuleError(arg, `conntrack: bad value for option, neither a valid network mask nor valid CIDR (0-${max}).`);
    } else {
      const plen = maskPrefix(family, asAddr);
      mask = prefixMask(family, plen < 0 ? max : plen);
    }
  }
  const a = addrMask(family, addr, mask);
  return { ...a, addr, invert: false };
}

const conntrack: ExtDef<Mut<ConntrackMatch>, Match> = {
  name: 'conntrack',
  opts: [
    { name: 'ctstate', id: 0, args: 1, invert: true },
    { name: 'ctproto', id: 1, args: 1, invert: true },
    { name: 'ctorigsrc', id: 2, args: 1, invert: true },
    { name: 'ctorigdst', id: 3, args: 1, invert: true },
    { name: 'ctreplsrc', id: 4, args: 1, invert: true },
    { name: 'ctrepldst', id: 5, args: 1, invert: true },
    { name: 'ctorigsrcport', id: 6, args: 1, invert: true },
    { name: 'ctorigdstport', id: 7, args: 1, invert: true },
    { name: 'ctreplsrcport', id: 8, args: 1, invert: true },
    { name: 'ctrepldstport', id: 9, args: 1, invert: true },
    { name: 'ctstatus', id: 10, args: 1, invert: true },
    { name: 'ctexpire', id: 11, args: 1, invert: true },
    { name: 'ctdir', id: 12, args: 1 },
  ],
  init: () => ({
    kind: 'conntrack', state: null, proto: null, origSrc: null, origDst: null, replSrc: null, replDst: null,
    origSrcPort: null, origDstPort: null, replSrcPort: null, replDstPort: null, status: null, expire: null, dir: null,
  }),
  parse(s, opt, args, invert, env) {
    const arg = args[0];
    const port = (): InvPortRange => ({ range: parsePortRc('conntrack', opt.name, arg), invert });
    const host = (): AddrMatch => ({ ...parseHostMaskOpt(arg, env.family), invert });
    switch (opt.id) {
      case 0: {
        const set = parseNameList(arg, CT_STATE_PARSE, (r) => `Bad ctstate "${r}"`);
        s.state = { states: CT_STATE_PRINT.filter((x) => set.has(x)), invert };
        break;
      }
      case 1: {
        const p = parseProtocol(arg.toLowerCase());
        if (p === null) throw new RuleError(arg, `unknown protocol "${arg}" specified`);
        // 0 ("all") is taken as iptables 1.8.9 takes it: no connection has protocol 0.
        s.proto = { proto: p, invert };
        break;
      }
      case 2: s.origSrc = host(); break;
      case 3: s.origDst = host(); break;
      case 4: s.replSrc = host(); break;
      case 5: s.replDst = host(); break;
      case 6: s.origSrcPort = port(); break;
      case 7: s.origDstPort = port(); break;
      case 8: s.replSrcPort = port(); break;
      case 9: s.replDstPort = port(); break;
      case 10: {
        const set = parseNameList(arg, CT_STATUS_PARSE, (r) => `Bad ctstatus "${r}"`);
        s.status = { statuses: CT_STATUS_PRINT.filter((x) => set.has(x)), invert };
        break;
      }
      case 11: {
        const parts = arg.split(':');
        const bad = () => new RuleError(arg, `conntrack: bad value for option "--ctexpire", or out of range (0-4294967295).`);
        if (parts.length > 2) throw bad();
        const min = parseUint(parts[0], 0, 0xffffffff);
        const max = parts.length === 2 ? parseUint(parts[1], 0, 0xffffffff) : min;
        if (min === null || max === null) throw bad();
        s.expire = { min, max, invert };
        break;
      }
      case 12: {
        const d = arg.toUpperCase();
        if (d !== 'ORIGINAL' && d !== 'REPLY') throw new RuleError(arg, `conntrack: Bad value for "--ctdir" option: "${arg}"`);
        s.dir = d;
        break;
      }
    }
  },
  check(_s, xflags) {
    if (xflags === 0) throw new RuleError('conntrack', 'conntrack: At least one option is required');
  },
  build: (s) => s,
};

// ---- state (the conntrack alias, `-m state --state`) -------------------------------------------------

const STATE_PARSE: readonly CtState[] = ['INVALID', 'NEW', 'ESTABLISHED', 'RELATED', 'UNTRACKED'];

const state: ExtDef<Mut<StateMatch>, Match> = {
  name: 'state',
  opts: [{ name: 'state', id: 0, args: 1, invert: true, mand: true }],
  init: () => ({ kind: 'state', states: [], invert: false }),
  parse(s, _o, args, invert) {
    const arg = args[0];
    if (arg.endsWith(',') || arg === '') {
      throw new RuleError(arg, '"--state" requires a list of states with no spaces, e.g. ESTABLISHED,RELATED');
    }
    const set = parseNameList(arg, STATE_PARSE, (r) => `Bad state "${r}"`);
    s.states = CT_STATE_PRINT.filter((x) => set.has(x));
    s.invert = invert;
  },
  build: (s) => s,
};

// ---- recent (revision 1) ---------------------------------------------------------------------------

const RECENT_OPS = ['set', 'rcheck', 'update', 'remove'] as const;

const recent: ExtDef<Mut<RecentMatch>, Match> = {
  name: 'recent',
  opts: [
    { name: 'set', id: 0, args: 0, invert: true, excl: 0b1111 },
    { name: 'rcheck', id: 1, args: 0, invert: true, excl: 0b1111 },
    { name: 'update', id: 2, args: 0, invert: true, excl: 0b1111 },
    { name: 'remove', id: 3, args: 0, invert: true, excl: 0b1111 },
    { name: 'seconds', id: 4, args: 1 },
    { name: 'reap', id: 5, args: 0, also: 1 << 4 },
    { name: 'hitcount', id: 6, args: 1 },
    { name: 'rttl', id: 7, args: 0, excl: 0b1001 },
    { name: 'name', id: 8, args: 1 },
    { name: 'rsource', id: 9, args: 0 },
    { name: 'rdest', id: 10, args: 0 },
    { name: 'mask', id: 11, args: 1 },
  ],
  init: () => ({
    kind: 'recent', op: 'set', invert: false, name: 'DEFAULT', seconds: 0, reap: false, hitcount: 0, rttl: false,
    side: 'source', mask: [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
  }),
  parse(s, opt, args, invert, env) {
    if (opt.id <= 3) {
      s.op = RECENT_OPS[opt.id];
      if (invert) s.invert = true;
      return;
    }
    switch (opt.id) {
      case 4: s.seconds = parseIntOpt('recent', 'seconds', args[0], 1, 0xffffffff); break;
      case 5: s.reap = true; break;
      case 6:
        // The core remembers RECENT_PKT_LIST (20) stamps per address, as xt_recent did before
        // Linux 4.16 (its message): a larger --hitcount could never match there, so it is refused
        // (newer kernels size the ring by the largest --hitcount, up to 65535).
        s.hitcount = parseIntOpt('recent', 'hitcount', args[0], 0, 0xffffffff);
        if (s.hitcount > 20) throw new RuleError(args[0], `hitcount (${s.hitcount}) is larger than packets to be remembered (20)`);
        break;
      case 7: s.rttl = true; break;
      case 8:
        if (args[0] === '') throw new RuleError(args[0], 'recent: the list name must not be empty');
        s.name = fitString(args[0], 200); // XT_RECENT_NAME_LEN
        break;
      case 9: s.side = 'source'; break;
      case 10: s.side = 'dest'; break;
      case 11: {
        const a = parseHostAddr(args[0], env.family);
        if (a === null) throw new RuleError(args[0], `recent: bad value for option "--mask": ${args[0]}`);
        s.mask = a;
        break;
      }
    }
  },
  check(s, xflags) {
    if (!(xflags & 0b1111)) {
      throw new RuleError('recent', "recent: you must specify one of `--set', `--rcheck' `--update' or `--remove'");
    }
    // xt_recent.c recent_mt_check() refuses the table: these only modify --rcheck and --update.
    if ((s.op === 'set' || s.op === 'remove') && (s.seconds !== 0 || s.hitcount !== 0 || s.reap || s.rttl)) {
      throw new RuleError('--' + s.op, `recent: --seconds, --hitcount, --reap and --rttl go only with --rcheck or --update, not --${s.op}`);
    }
  },
  build: (s, env) => (env.family === 4 ? { ...s, mask: [s.mask[0], 0, 0, 0] as Words } : s),
};

// ---- statistic -------------------------------------------------------------------------------------

interface StatisticState {
  mode: 'random' | 'nth';
  raw: number;
  every: number;
  packet: number;
  invert: boolean;
}

const statistic: ExtDef<StatisticState, Match> = {
  name: 'statistic',
  opts: [
    { name: 'mode', id: 0, args: 1, mand: true },
    { name: 'probability', id: 1, args: 1, invert: true, excl: (1 << 2) | (1 << 3) },
    { name: 'every', id: 2, args: 1, invert: true, excl: 1 << 1, also: 1 << 3 },
    { name: 'packet', id: 3, args: 1, excl: 1 << 1, also: 1 << 2 },
  ],
  init: () => ({ mode: 'random', raw: 0, every: 0, packet: 0, invert: false }),
  parse(s, opt, args, invert) {
    if (invert) s.invert = true;
    const arg = args[0];
    switch (opt.id) {
      case 0:
        if (arg !== 'random' && arg !== 'nth') throw new RuleError(arg, `Bad mode "${arg}"`);
        s.mode = arg;
        break;
      case 1: {
        // xtopt_parse_double(): strtod() over the whole word, then the bounds 0–1, which NaN
        // passes as C compares; libxt_statistic then stores lround(2^31 · p): for NaN LONG_MIN,
        // 0 in the 32-bit field (iptables-legacy 1.8.9 takes `nan` and prints 0.00000000000).
        const p = strtodWhole(arg);
        if (p === null || p < 0 || p > 1) {
          throw new RuleError(arg, 'statistic: bad value for option "--probability", or out of range (0-1).');
        }
        s.raw = Number.isNaN(p) ? 0 : Math.round(0x80000000 * p) + 0; // lround(): p >= 0, so half-up equals half-away-from-zero; + 0: no -0
        break;
      }
      case 2: s.every = parseIntOpt('statistic', 'every', arg, 1, 0xffffffff); break;
      case 3: s.packet = parseIntOpt('statistic', 'packet', arg, 0, 0xffffffff); break;
    }
  },
  check(s, xflags) {
    if (s.mode === 'random' && !(xflags & (1 << 1))) {
      throw new RuleError('statistic', '--probability must be specified when using random mode');
    }
    if (s.mode === 'nth' && !(xflags & ((1 << 2) | (1 << 3)))) {
      throw new RuleError('statistic', '--every and --packet must be specified when using nth mode');
    }
    if (s.packet > Math.max(0, s.every - 1)) throw new RuleError('--packet', 'the --packet p must be 0 <= p <= n-1');
  },
  build(s): StatisticMatch {
    if (s.mode === 'random') {
      return { kind: 'statistic', mode: 'random', probabilityRaw: s.raw, probability: s.raw / 0x80000000, invert: s.invert };
    }
    return { kind: 'statistic', mode: 'nth', every: s.every, packet: s.packet, invert: s.invert };
  },
};

export const STATE_MATCH_DEFS: ReadonlyMap<string, MatchDef> = new Map<string, MatchDef>([
  ['conntrack', conntrack], ['state', state], ['recent', recent], ['statistic', statistic],
]);

// ---- rendering ---------------------------------------------------------------------------------------

type StateKinds = ConntrackMatch | StateMatch | RecentMatch | StatisticMatch;

function ctAddr(a: AddrMatch): string {
  return ' ' + listAddrMask(a);
}

function ctPorts(prefix: string, name: string, p: InvPortRange): string {
  const r = p.range;
  return (p.invert ? ' !' : '') + ` ${prefix}${name} ` + (r.hi === 0 || r.lo === r.hi ? String(r.lo) : `${r.lo}:${r.hi}`);
}

/** conntrack_dump(): shared by save (prefix "--") and -L (prefix ""). */
function conntrackText(m: ConntrackMatch, p: string): string {
  const inv = (x: { invert: boolean }) => (x.invert ? ' !' : '');
  let out = '';
  if (m.state) out += inv(m.state) + ` ${p}ctstate ` + m.state.states.join(',');
  if (m.proto) out += inv(m.proto) + ` ${p}ctproto ${m.proto.proto}`;
  if (m.origSrc) out += inv(m.origSrc) + ` ${p}ctorigsrc` + ctAddr(m.origSrc);
  if (m.origDst) out += inv(m.origDst) + ` ${p}ctorigdst` + ctAddr(m.origDst);
  if (m.replSrc) out += inv(m.replSrc) + ` ${p}ctreplsrc` + ctAddr(m.replSrc);
  if (m.replDst) out += inv(m.replDst) + ` ${p}ctrepldst` + ctAddr(m.replDst);
  if (m.origSrcPort) out += ctPorts(p, 'ctorigsrcport', m.origSrcPort);
  if (m.origDstPort) out += ctPorts(p, 'ctorigdstport', m.origDstPort);
  if (m.replSrcPort) out += ctPorts(p, 'ctreplsrcport', m.replSrcPort);
  if (m.replDstPort) out += ctPorts(p, 'ctrepldstport', m.replDstPort);
  if (m.status) out += inv(m.status) + ` ${p}ctstatus ` + (m.status.statuses.length ? m.status.statuses.join(',') : 'NONE');
  if (m.expire) out += inv(m.expire) + ` ${p}ctexpire ` + (m.expire.min === m.expire.max ? m.expire.min : `${m.expire.min}:${m.expire.max}`);
  if (m.dir) out += ` ${p}ctdir ${m.dir}`;
  return out;
}

function recentText(m: RecentMatch, family: Family, save: boolean): string {
  const maskText = formatAddr(family, m.mask);
  if (save) {
    let out = (m.invert ? ' !' : '') + ' --' + m.op;
    if (m.seconds) out += ' --seconds ' + m.seconds;
    if (m.reap) out += ' --reap';
    if (m.hitcount) out += ' --hitcount ' + m.hitcount;
    if (m.rttl) out += ' --rttl';
    return out + ` --name ${m.name} --mask ${maskText} ` + (m.side === 'source' ? '--rsource' : '--rdest');
  }
  const opName = { set: 'SET', rcheck: 'CHECK', update: 'UPDATE', remove: 'REMOVE' }[m.op];
  let out = (m.invert ? ' !' : '') + ' recent: ' + opName;
  if (m.seconds) out += ' seconds: ' + m.seconds;
  if (m.reap) out += ' reap';
  if (m.hitcount) out += ' hit_count: ' + m.hitcount;
  if (m.rttl) out += ' TTL-Match';
  return out + ` name: ${m.name} side: ${m.side} mask: ${maskText}`;
}

function statisticText(m: StatisticMatch, p: string): string {
  const inv = m.invert ? ' !' : '';
  if (m.mode === 'random') return ` ${p}mode random${inv} ${p}probability ${m.probability.toFixed(11)}`;
  let out = ` ${p}mode nth${inv} ${p}every ${m.every}`;
  if (m.packet || p) out += ` ${p}packet ${m.packet}`;
  return out;
}

/** What follows `-m NAME` in iptables-save output. */
export function saveState(m: StateKinds, family: Family): string {
  switch (m.kind) {
    case 'conntrack': return conntrackText(m, '--');
    case 'state': return (m.invert ? ' !' : '') + ' --state ' + m.states.join(',');
    case 'recent': return recentText(m, family, true);
    case 'statistic': return statisticText(m, '--');
  }
}

/** The match column text of `iptables -L -n`. */
export function printState(m: StateKinds, family: Family): string {
  switch (m.kind) {
    case 'conntrack': return conntrackText(m, '');
    case 'state': return (m.invert ? ' !' : '') + ' state ' + m.states.join(',');
    case 'recent': return recentText(m, family, false);
    case 'statistic': return ' statistic' + statisticText(m, '');
  }
}
