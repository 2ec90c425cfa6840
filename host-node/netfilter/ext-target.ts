// ext-target.ts — the target extensions: REJECT, DNAT, SNAT, MASQUERADE, REDIRECT, MARK, CONNMARK,
// LOG, NFLOG, CT/NOTRACK, and the standard verdicts. Options and messages follow iptables'
// extensions (libipt_REJECT.c, libip6t_REJECT.c, libxt_NAT.c, libxt_MARK.c, libxt_CONNMARK.c,
// libxt_LOG.c, libxt_NFLOG.c, libxt_CT.c); the table and hook each target is limited to follow
// the kernel's target registrations (ipt_REJECT.c `.table = "filter"`, xt_nat.c, xt_MASQUERADE.c,
// xt_REDIRECT.c, xt_CT.c). Never evaluates a packet.

import { formatAddr, parseIPv6, parseUint, scanUint, strictIPv4 } from './addr.js';
import { RuleError, fitString, hex, parseIntOpt, parseMarkMask, serviceToPort, type ExtDef, type ParseEnv } from './ext.js';
import { saveString } from './lexer.js';
import type {
  ConnmarkTarget, DnatTarget, Family, LogTarget, MarkTarget, MasqueradeTarget, NatRange, NflogTarget,
  PortRange, RedirectTarget, RejectTarget, RejectWith, SnatTarget, TableName, Target, Words,
} from './model.js';

type Mut<T> = { -readonly [K in keyof T]: T[K] };
type TargetDef = ExtDef<unknown, Target>;

/** Verdicts libxt_standard handles; `-j CONTINUE` means no target at all. */
export const VERDICTS: ReadonlySet<string> = new Set(['ACCEPT', 'DROP', 'RETURN', 'QUEUE']);

// ---- REJECT ----------------------------------------------------------------------------------------

// [name, alias] in the kernel's enum order (enum ipt_reject_with / ip6t_reject_with); null = unused.
const REJECT4: readonly (readonly [RejectWith, string] | null)[] = [
  ['icmp-net-unreachable', 'net-unreach'], ['icmp-host-unreachable', 'host-unreach'],
  ['icmp-proto-unreachable', 'proto-unreach'], ['icmp-port-unreachable', 'port-unreach'], null,
  ['icmp-net-prohibited', 'net-prohib'], ['icmp-host-prohibited', 'host-prohib'], ['tcp-reset', 'tcp-rst'],
  ['icmp-admin-prohibited', 'admin-prohib'],
];
const REJECT6: readonly (readonly [RejectWith, string] | null)[] = [
  ['icmp6-no-route', 'no-route'], ['icmp6-adm-prohibited', 'adm-prohibited'], null,
  ['icmp6-addr-unreachable', 'addr-unreach'], ['icmp6-port-unreachable', 'port-unreach'], null,
  ['tcp-reset', 'tcp-reset'], ['icmp6-policy-fail', 'policy-fail'], ['icmp6-reject-route', 'reject-route'],
];

const reject: ExtDef<Mut<RejectTarget>, Target> = {
  name: 'REJECT',
  opts: [{ name: 'reject-with', id: 0, args: 1 }],
  init: (env) => ({ kind: 'REJECT', with: env.family === 4 ? 'icmp-port-unreachable' : 'icmp6-port-unreachable' }),
  parse(s, _o, args, _inv, env) {
    const arg = args[0].toLowerCase();
    // The first entry whose name or alias starts with the argument wins (strncasecmp on its length).
    for (const e of env.family === 4 ? REJECT4 : REJECT6) {
      if (e && (e[0].startsWith(arg) || e[1].startsWith(arg))) {
        s.with = e[0];
        return;
      }
    }
    throw new RuleError(args[0], `unknown reject type "${args[0]}"`);
  },
  build(s, env) {
    // ipt_REJECT.c / ip6t_REJECT.c reject_tg_check(): a TCP reset needs `-p tcp`.
    if (s.with === 'tcp-reset' && (env.proto !== 6 || env.protoInvert)) {
      throw new RuleError('tcp-reset', env.family === 4 ? 'TCP_RESET invalid for non-tcp' : 'TCP_RESET illegal for non-tcp');
    }
    return s;
  },
};

// ---- NAT (libxt_NAT.c) -----------------------------------------------------------------------------

interface NatState {
  to: NatRange | null;
  ports: PortRange | null;
  random: boolean;
  randomFully: boolean;
  persistent: boolean;
}

const NAT_PORT_PROTOS = new Set([6, 17, 132, 33, 1]); // tcp udp sctp dccp icmp (__NAT_parse)

/** parse_ports(): `port[-port]`, base-0 numbers (a service name for a single port). */
function parseNatPorts(arg: string, env: ParseEnv): PortRange {
  if (!NAT_PORT_PROTOS.has(env.proto)) throw new RuleError(arg, 'Need TCP, UDP, SCTP or DCCP with port specification');
  let lo: number;
  let rest: string;
  const a = scanUint(arg, 0);
  if (a && a.value <= 65535) {
    lo = a.value;
    rest = arg.slice(a.end);
  } else {
    const svc = serviceToPort(arg);
    if (svc === null) throw new RuleError(arg, `Port \`${arg}' not valid`);
    lo = svc;
    rest = '';
  }
  if (rest === '') return { lo, hi: lo };
  if (rest[0] === ':') throw new RuleError(arg, 'Invalid port:port syntax - use dash');
  if (rest[0] !== '-') throw new RuleError(arg, `Garbage after port value: \`${rest}'`);
  const b = scanUint(rest, 1);
  if (!b || b.value > 65535) throw new RuleError(arg, `Port \`${rest.slice(1)}' not valid`);
  if (b.value < lo) throw new RuleError(arg, `Port range \`${rest.slice(1)}' funky`);
  const tail = rest.slice(b.end);
  if (tail.startsWith('/')) throw new RuleError(arg, 'Shifted portmap ranges are not supported by svcplane');
  if (tail !== '') throw new RuleError(arg, `Garbage after port range: \`${tail}'`);
  return { lo, hi: b.value };
}

function natAddr(text: string, family: Family): Words {
  const w: Words | null = family === 4 ? (() => {
    const v = strictIPv4(text);
    return v === null ? null : ([v, 0, 0, 0] as Words);
  })() : parseIPv6(text);
  if (w === null) throw new RuleError(text, `Bad IP address "${text}"`);
  return w;
}

/** parse_to(): `[addr[-addr]][:port[-port]]`, IPv6 with ports in brackets. */
function parseNatTo(orig: string, env: ParseEnv): NatRange {
  let start = 0;
  let end = orig.length;
  let colon = -1;
  const bracket = orig.indexOf('[');
  if (bracket < 0) {
    colon = orig.indexOf(':');
    if (colon >= 0 && orig.indexOf(':', colon + 1) >= 0) colon = -1; // an IPv6 address, no port
  } else {
    const close = orig.indexOf(']', bracket + 1);
    if (close < 0 || env.family === 4) throw new RuleError(orig, 'Invalid address format');
    start = bracket + 1;
    end = close;
    colon = orig.indexOf(':', close + 1);
  }
  let ports: PortRange | null = null;
  if (colon >= 0) {
    ports = parseNatPorts(orig.slice(colon + 1), env);
    if (colon === 0 || colon === 2) return { addrMin: null, addrMax: null, ports };
    if (bracket < 0) end = colon;
  }
  const addrText = orig.slice(start, end);
  const dash = addrText.indexOf('-');
  const min = natAddr(dash < 0 ? addrText : addrText.slice(0, dash), env.family);
  const max = dash < 0 ? min : natAddr(addrText.slice(dash + 1), env.family);
  return { addrMin: min, addrMax: max, ports };
}

function natDef(name: 'DNAT' | 'SNAT' | 'MASQUERADE' | 'REDIRECT'): ExtDef<NatState, Target> {
  const all = [
    { name: 'to-destination', id: 0, args: 1 as const, mand: true },
    { name: 'to-source', id: 1, args: 1 as const, mand: true },
    { name: 'to-ports', id: 2, args: 1 as const },
    { name: 'random', id: 3, args: 0 as const },
    { name: 'random-fully', id: 4, args: 0 as const },
    { name: 'persistent', id: 5, args: 0 as const },
  ];
  const ids = { DNAT: [0, 3, 5], SNAT: [1, 3, 4, 5], MASQUERADE: [2, 3, 4], REDIRECT: [2, 3] }[name];
  return {
    name,
    opts: all.filter((o) => ids.includes(o.id)),
    init: () => ({ to: null, ports: null, random: false, randomFully: false, persistent: false }),
    parse(s, opt, args, _inv, env) {
      if (opt.id <= 1) s.to = parseNatTo(args[0], env);
      else if (opt.id === 2) s.ports = parseNatPorts(args[0], env);
      else if (opt.id === 3) s.random = true;
      else if (opt.id === 4) s.randomFully = true;
      else s.persistent = true;
    },
    build(s): Target {
      const to = s.to ?? { addrMin: null, addrMax: null, ports: null };
      switch (name) {
        case 'DNAT': return { kind: 'DNAT', to, random: s.random, persistent: s.persistent } satisfies DnatTarget;
        case 'SNAT': return { kind: 'SNAT', to, random: s.random, randomFully: s.randomFully, persistent: s.persistent } satisfies SnatTarget;
        case 'MASQUERADE': return { kind: 'MASQUERADE', ports: s.ports, random: s.random, randomFully: s.randomFully } satisfies MasqueradeTarget;
        default: return { kind: 'REDIRECT', ports: s.ports, random: s.random } satisfies RedirectTarget;
      }
    },
  };
}

/** sprint_range(): `addr[-addr][:port[-port]]`, IPv6 in brackets when a port follows. */
function natRangeText(r: NatRange, family: Family): string {
  let out = '';
  const brackets = family === 6 && r.ports !== null;
  if (r.addrMin && r.addrMax) {
    out += (brackets ? '[' : '') + formatAddr(family, r.addrMin);
    if (!sameWords(r.addrMin, r.addrMax)) out += '-' + formatAddr(family, r.addrMax);
    if (brackets) out += ']';
  }
  if (r.ports) out += ':' + r.ports.lo + (r.ports.hi !== r.ports.lo ? '-' + r.ports.hi : '');
  return out;
}

function sameWords(a: Words, b: Words): boolean {
  return a[0] === b[0] && a[1] === b[1] && a[2] === b[2] && a[3] === b[3];
}

// ---- MARK (libxt_MARK.c revision 2) ---------------------------------------------------------------

const mark: ExtDef<Mut<MarkTarget>, Target> = {
  name: 'MARK',
  opts: [
    { name: 'set-xmark', id: 4, args: 1, excl: 0b11111 },
    { name: 'set-mark', id: 0, args: 1, excl: 0b11111 },
    { name: 'and-mark', id: 1, args: 1, excl: 0b11111 },
    { name: 'or-mark', id: 2, args: 1, excl: 0b11111 },
    { name: 'xor-mark', id: 3, args: 1, excl: 0b11111 },
  ],
  init: () => ({ kind: 'MARK', value: 0, mask: 0 }),
  parse(s, opt, args) {
    const u32 = () => parseIntOpt('MARK', opt.name, args[0], 0, 0xffffffff);
    switch (opt.id) {
      case 4: { const v = parseMarkMask('MARK', opt.name, args[0]); s.value = v.value; s.mask = v.mask; break; }
      case 0: { const v = parseMarkMask('MARK', opt.name, args[0]); s.value = v.value; s.mask = (v.value | v.mask) >>> 0; break; }
      case 1: { s.value = 0; s.mask = ~u32() >>> 0; break; }
      case 2: { const v = u32(); s.value = v; s.mask = v; break; }
      case 3: { s.value = u32(); s.mask = 0; break; }
    }
  },
  check(_s, xflags) {
    if (xflags === 0) throw new RuleError('MARK', 'MARK: One of the --set-xmark, --{and,or,xor,set}-mark options is required');
  },
  build: (s) => s,
};

/** mark_tg_print() / connmark_tg_print(): the shortest operation naming the (value, mask) pair. */
function markOp(value: number, mask: number): string {
  if (value === 0) return 'and ' + hex(~mask >>> 0);
  if (value === mask) return 'or ' + hex(value);
  if (mask === 0) return 'xor ' + hex(value);
  if (mask === 0xffffffff) return 'set ' + hex(value);
  return `xset ${hex(value)}/${hex(mask)}`;
}

// ---- CONNMARK (libxt_CONNMARK.c revision 2; shifts are not modelled) -------------------------------

interface ConnmarkState { mode: 'set' | 'save' | 'restore'; ctmark: number; ctmask: number; nfmask: number }
const F_OP_ANY = 0b100111111;

const connmark: ExtDef<ConnmarkState, Target> = {
  name: 'CONNMARK',
  opts: [
    { name: 'set-xmark', id: 8, args: 1, excl: F_OP_ANY },
    { name: 'set-mark', id: 0, args: 1, excl: F_OP_ANY },
    { name: 'and-mark', id: 3, args: 1, excl: F_OP_ANY },
    { name: 'or-mark', id: 4, args: 1, excl: F_OP_ANY },
    { name: 'xor-mark', id: 5, args: 1, excl: F_OP_ANY },
    { name: 'save-mark', id: 1, args: 0, excl: F_OP_ANY },
    { name: 'restore-mark', id: 2, args: 0, excl: F_OP_ANY },
    { name: 'left-shift-mark', id: 6, args: 1 },
    { name: 'right-shift-mark', id: 7, args: 1 },
    { name: 'ctmask', id: 9, args: 1, excl: 1 << 11 },
    { name: 'nfmask', id: 10, args: 1, excl: 1 << 11 },
    { name: 'mask', id: 11, args: 1, excl: (1 << 9) | (1 << 10) },
  ],
  init: () => ({ mode: 'set', ctmark: 0, ctmask: 0xffffffff, nfmask: 0xffffffff }),
  parse(s, opt, args) {
    const u32 = () => parseIntOpt('CONNMARK', opt.name, args[0], 0, 0xffffffff);
    switch (opt.id) {
      case 8: { const v = parseMarkMask('CONNMARK', opt.name, args[0]); s.mode = 'set'; s.ctmark = v.value; s.ctmask = v.mask; break; }
      case 0: { const v = parseMarkMask('CONNMARK', opt.name, args[0]); s.mode = 'set'; s.ctmark = v.value; s.ctmask = (v.value | v.mask) >>> 0; break; }
      case 3: s.mode = 'set'; s.ctmark = 0; s.ctmask = ~u32() >>> 0; break;
      case 4: { const v = u32(); s.mode = 'set'; s.ctmark = v; s.ctmask = v; break; }
      case 5: s.mode = 'set'; s.ctmark = u32(); s.ctmask = 0; break;
      case 1: s.mode = 'save'; break;
      case 2: s.mode = 'restore'; break;
      case 6: case 7:
        throw new RuleError('--' + opt.name, `CONNMARK: --${opt.name} is not supported by svcplane`);
      case 9: s.ctmask = u32(); break;
      case 10: s.nfmask = u32(); break;
      case 11: { const v = u32(); s.ctmask = v; s.nfmask = v; break; }
    }
  },
  check(_s, xflags) {
    if (!(xflags & F_OP_ANY)) throw new RuleError('CONNMARK', 'CONNMARK target: No operation specified');
  },
  build(s): ConnmarkTarget {
    if (s.mode === 'set') return { kind: 'CONNMARK', mode: 'set', value: s.ctmark, mask: s.ctmask };
    return { kind: 'CONNMARK', mode: s.mode, nfmask: s.nfmask, ctmask: s.ctmask };
  },
};

// ---- LOG / NFLOG -----------------------------------------------------------------------------------

const SYSLOG_LEVELS: Record<string, number> = {
  alert: 1, crit: 2, debug: 7, emerg: 0, error: 3, info: 6, notice: 5, panic: 0, warning: 4,
};

const log: ExtDef<Mut<LogTarget>, Target> = {
  name: 'LOG',
  opts: [
    { name: 'log-level', id: 6, args: 1 },
    { name: 'log-prefix', id: 7, args: 1 },
    { name: 'log-tcp-sequence', id: 0, args: 0 },
    { name: 'log-tcp-options', id: 1, args: 0 },
    { name: 'log-ip-options', id: 2, args: 0 },
    { name: 'log-uid', id: 3, args: 0 },
    { name: 'log-macdecode', id: 5, args: 0 },
  ],
  init: () => ({ kind: 'LOG', level: 4, prefix: '', flags: 0 }),
  parse(s, opt, args) {
    if (opt.id === 6) {
      const n = parseUint(args[0], 0, 7);
      const lvl = n ?? SYSLOG_LEVELS[args[0]];
      if (lvl === undefined) throw new RuleError(args[0], `log level "${args[0]}" unknown`);
      s.level = lvl;
    } else if (opt.id === 7) {
      if (args[0].length < 1) throw new RuleError(args[0], 'Argument must have a minimum length of 1 characters');
      if (args[0].includes('\n')) throw new RuleError(args[0], 'Newlines not allowed in --log-prefix');
      s.prefix = fitString(args[0], 30); // struct xt_log_info: char prefix[30]
    } else {
      s.flags |= 1 << opt.id;
    }
  },
  build: (s) => s,
};

const nflog: ExtDef<Mut<NflogTarget>, Target> = {
  name: 'NFLOG',
  opts: [
    { name: 'nflog-group', id: 0, args: 1 },
    { name: 'nflog-prefix', id: 1, args: 1 },
    { name: 'nflog-range', id: 2, args: 1, excl: 1 << 3 },
    { name: 'nflog-size', id: 3, args: 1, excl: 1 << 2 },
    { name: 'nflog-threshold', id: 4, args: 1 },
  ],
  init: () => ({ kind: 'NFLOG', group: 0, prefix: '', size: null, range: 0, threshold: 0 }),
  parse(s, opt, args) {
    switch (opt.id) {
      case 0: s.group = parseIntOpt('NFLOG', opt.name, args[0], 0, 65535); break;
      case 1:
        if (args[0].length < 1) throw new RuleError(args[0], 'Argument must have a minimum length of 1 characters');
        if (args[0].includes('\n')) throw new RuleError(args[0], 'Newlines not allowed in --log-prefix');
        s.prefix = fitString(args[0], 64);
        break;
      // iptables 1.8.9 warns ("--nflog-range has never worked …") and keeps the value.
      case 2: s.range = parseIntOpt('NFLOG', opt.name, args[0], 0, 0xffffffff); break;
      case 3: s.size = parseIntOpt('NFLOG', opt.name, args[0], 0, 0xffffffff); break;
      case 4: s.threshold = parseIntOpt('NFLOG', opt.name, args[0], 0, 65535); break;
    }
  },
  build: (s) => s,
};

// ---- CT / NOTRACK ----------------------------------------------------------------------------------

const ct: ExtDef<{ notrack: boolean }, Target> = {
  name: 'CT',
  opts: [
    { name: 'notrack', id: 0, args: 0 },
    { name: 'helper', id: 1, args: 1 },
    { name: 'timeout', id: 2, args: 1 },
    { name: 'ctevents', id: 3, args: 1 },
    { name: 'expevents', id: 4, args: 1 },
    { name: 'zone-orig', id: 5, args: 1 },
    { name: 'zone-reply', id: 6, args: 1 },
    { name: 'zone', id: 7, args: 1 },
  ],
  init: () => ({ notrack: false }),
  parse(s, opt) {
    if (opt.id !== 0) throw new RuleError('--' + opt.name, `CT: --${opt.name} is not supported by svcplane`);
    s.notrack = true;
  },
  build(s) {
    if (!s.notrack) throw new RuleError('CT', 'CT: only --notrack is supported by svcplane');
    return { kind: 'CT', notrack: true, alias: false };
  },
};

const notrack: ExtDef<null, Target> = {
  name: 'NOTRACK',
  opts: [],
  init: () => null,
  parse() {},
  build: () => ({ kind: 'CT', notrack: true, alias: true }),
};

/** Target extensions by the name `-j` takes. */
export const TARGET_DEFS: ReadonlyMap<string, TargetDef> = new Map<string, TargetDef>([
  ['REJECT', reject], ['DNAT', natDef('DNAT')], ['SNAT', natDef('SNAT')], ['MASQUERADE', natDef('MASQUERADE')],
  ['REDIRECT', natDef('REDIRECT')], ['MARK', mark], ['CONNMARK', connmark], ['LOG', log], ['NFLOG', nflog],
  ['CT', ct], ['NOTRACK', notrack],
]);

// ---- kernel restrictions ---------------------------------------------------------------------------

/** The only table a target may be used in (x_tables.c xt_check_target), or null for any. */
export function targetTable(t: Target): TableName | null {
  switch (t.kind) {
    case 'DNAT': case 'SNAT': case 'MASQUERADE': case 'REDIRECT': return 'nat';
    case 'REJECT': return 'filter';
    case 'CT': return 'raw';
    default: return null;
  }
}

/** Hooks a target may be reached from, one bit per Hook in kernel order (0x1f = any). */
export function targetHooks(t: Target): number {
  switch (t.kind) {
    case 'DNAT': case 'REDIRECT': return 0b01001; // PREROUTING, OUTPUT
    case 'SNAT': return 0b10010; // POSTROUTING, INPUT
    case 'MASQUERADE': return 0b10000; // POSTROUTING
    case 'REJECT': return 0b01110; // INPUT, FORWARD, OUTPUT
    case 'CT': return 0b01001; // PREROUTING, OUTPUT
    default: return 0x1f;
  }
}

// ---- rendering -------------------------------------------------------------------------------------

/** The word after `-j` in iptables-save output (the alias NOTRACK is printed as written). */
export function targetSaveName(t: Target): string {
  if (t.kind === 'jump') return t.chain;
  if (t.kind === 'CT') return t.alias ? 'NOTRACK' : 'CT';
  return t.kind;
}

/** The target column of `iptables -L` (the kernel's name: CT for NOTRACK). */
export function targetListName(t: Target): string {
  return t.kind === 'jump' ? t.chain : t.kind;
}

/** What follows `-j NAME` in iptables-save output. */
export function saveTarget(t: Target, family: Family): string {
  switch (t.kind) {
    case 'REJECT': return ' --reject-with ' + t.with;
    case 'DNAT': return natText(natRangeText(t.to, family), ' --to-destination ', t.random, false, t.persistent, '--');
    case 'SNAT': return natText(natRangeText(t.to, family), ' --to-source ', t.random, t.randomFully, t.persistent, '--');
    case 'MASQUERADE': return natText(portsText(t.ports), ' --to-ports ', t.random, t.randomFully, false, '--');
    case 'REDIRECT': return natText(portsText(t.ports), ' --to-ports ', t.random, false, false, '--');
    case 'MARK': return ` --set-xmark ${hex(t.value)}/${hex(t.mask)}`;
    case 'CONNMARK':
      if (t.mode === 'set') return ` --set-xmark ${hex(t.value)}/${hex(t.mask)}`;
      return ` --${t.mode}-mark --nfmask ${hex(t.nfmask)} --ctmask ${hex(t.ctmask)}`;
    case 'LOG': {
      let out = t.prefix ? ' --log-prefix' + saveString(t.prefix) : '';
      if (t.level !== 4) out += ' --log-level ' + t.level;
      const names = ['--log-tcp-sequence', '--log-tcp-options', '--log-ip-options', '--log-uid', '', '--log-macdecode'];
      names.forEach((n, i) => { if (n && t.flags & (1 << i)) out += ' ' + n; });
      return out;
    }
    case 'NFLOG': return nflogText(t, '--');
    case 'CT': return t.alias ? '' : ' --notrack';
    default: return '';
  }
}

/** The target part of an `iptables -L -n` line. */
export function printTarget(t: Target, family: Family): string {
  switch (t.kind) {
    case 'REJECT': return ' reject-with ' + t.with;
    case 'DNAT': return natText(natRangeText(t.to, family), ' to:', t.random, false, t.persistent, '');
    case 'SNAT': return natText(natRangeText(t.to, family), ' to:', t.random, t.randomFully, t.persistent, '');
    case 'MASQUERADE': return natText(portsText(t.ports), ' masq ports: ', t.random, t.randomFully, false, '');
    case 'REDIRECT': return natText(portsText(t.ports), ' redir ports ', t.random, false, false, '');
    case 'MARK': return ' MARK ' + markOp(t.value, t.mask);
    case 'CONNMARK':
      if (t.mode === 'set') return ' CONNMARK ' + markOp(t.value, t.mask);
      if (t.nfmask === 0xffffffff && t.ctmask === 0xffffffff) return ' CONNMARK ' + t.mode;
      if (t.nfmask === t.ctmask) return ` CONNMARK ${t.mode} mask ${hex(t.nfmask)}`;
      return t.mode === 'save'
        ? ` CONNMARK save nfmask ${hex(t.nfmask)} ctmask ~${hex(t.ctmask)}`
        : ` CONNMARK restore ctmask ${hex(t.ctmask)} nfmask ~${hex(t.nfmask)}`;
    case 'LOG': return ` LOG flags ${t.flags} level ${t.level}` + (t.prefix ? ` prefix "${t.prefix}"` : '');
    case 'NFLOG': return nflogText(t, '');
    case 'CT': return t.alias ? ' NOTRACK' : ' CT notrack';
    default: return '';
  }
}

function portsText(p: PortRange | null): string {
  return p ? p.lo + (p.hi !== p.lo ? '-' + p.hi : '') : '';
}

function natText(range: string, opt: string, random: boolean, fully: boolean, persistent: boolean, pfx: string): string {
  let out = range ? opt + range : '';
  if (random) out += ` ${pfx}random`;
  if (fully) out += ` ${pfx}random-fully`;
  if (persistent) out += ` ${pfx}persistent`;
  return out;
}

function nflogText(t: NflogTarget, p: string): string {
  let out = t.prefix ? ` ${p}nflog-prefix` + saveString(t.prefix) : '';
  if (t.group) out += ` ${p}nflog-group ${t.group}`;
  if (t.size !== null) out += ` ${p}nflog-size ${t.size}`;
  else if (t.range !== 0) out += ` ${p}nflog-range ${t.range}`;
  if (t.threshold !== 0) out += ` ${p}nflog-threshold ${t.threshold}`;
  return out;
}
