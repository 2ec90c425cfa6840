// ext-l4.ts — the matches on layer-4 headers: tcp, udp, sctp, icmp, icmp6 (the ones `-p`
// loads on demand) and multiport. Options, checks and messages follow iptables' libxt_tcp.c,
// libxt_udp.c, libxt_sctp.c, libipt_icmp.c, libip6t_icmp6.c, libxt_icmp.h and libxt_multiport.c;
// the two printed forms are their save and (numeric) print functions. Never evaluates a packet.

import { parseUint, scanUint } from './addr.js';
import {
  FULL_RANGE, RuleError, colonRange, isFullRange, parseColonRangeStrict, parsePortNumber, parsePortRc, type ExtDef,
} from './ext.js';
import type { IcmpMatch, Match, MultiportMatch, PortRange, SctpMatch, TcpMatch, UdpMatch } from './model.js';

type Mut<T> = { -readonly [K in keyof T]: T[K] };
type MatchDef = ExtDef<unknown, Match>;

// ---- tcp (libxt_tcp.c, old API) ------------------------------------------------------------------

const TCP_FLAGS: readonly (readonly [string, number])[] = [
  ['FIN', 0x01], ['SYN', 0x02], ['RST', 0x04], ['PSH', 0x08], ['ACK', 0x10], ['URG', 0x20],
  ['ALL', 0x3f], ['NONE', 0],
];

function parseTcpFlagList(list: string): number {
  let v = 0;
  for (const part of list.split(',')) {
    if (part === '') continue; // strtok skips empty fields
    const f = TCP_FLAGS.find(([n]) => n === part.toUpperCase());
    if (!f) throw new RuleError(list, `Unknown TCP flag \`${part}'`);
    v |= f[1];
  }
  return v;
}

/** Flag names in bit order, as print_tcpf() lists them; NONE for zero. */
function tcpFlagNames(flags: number): string {
  const names: string[] = [];
  for (const [n, bit] of TCP_FLAGS.slice(0, 6)) if (flags & bit) names.push(n);
  return names.length ? names.join(',') : 'NONE';
}

const tcp: ExtDef<Mut<TcpMatch>, Match> = {
  name: 'tcp',
  proto: 6,
  legacy: true,
  opts: [
    { name: 'source-port', id: 0, args: 1, invert: true, twice: "Only one `--source-port' allowed" },
    { name: 'sport', id: 0, args: 1, invert: true, twice: "Only one `--source-port' allowed" },
    { name: 'destination-port', id: 1, args: 1, invert: true, twice: "Only one `--destination-port' allowed" },
    { name: 'dport', id: 1, args: 1, invert: true, twice: "Only one `--destination-port' allowed" },
    { name: 'syn', id: 2, args: 0, invert: true, twice: "Only one of `--syn' or `--tcp-flags'  allowed" },
    { name: 'tcp-flags', id: 2, args: 2, invert: true, twice: "Only one of `--syn' or `--tcp-flags'  allowed" },
    { name: 'tcp-option', id: 3, args: 1, invert: true, twice: "Only one `--tcp-option' allowed" },
  ],
  init: () => ({ kind: 'tcp', sport: FULL_RANGE, sportInvert: false, dport: FULL_RANGE, dportInvert: false, flags: null, option: null }),
  parse(s, opt, args, invert) {
    switch (opt.id) {
      case 0: s.sport = parseColonRangeStrict(args[0], 6); s.sportInvert = invert; break;
      case 1: s.dport = parseColonRangeStrict(args[0], 6); s.dportInvert = invert; break;
      case 2:
        if (opt.name === 'syn') s.flags = { mask: 0x17, comp: 0x02, invert }; // SYN,RST,ACK,FIN / SYN
        else s.flags = { mask: parseTcpFlagList(args[0]), comp: parseTcpFlagList(args[1]), invert };
        break;
      case 3: {
        const n = parseUint(args[0], 1, 255);
        if (n === null) throw new RuleError(args[0], `Bad TCP option "${args[0]}"`);
        s.option = { kind: n, invert };
        break;
      }
    }
  },
  build: (s) => s,
};

function saveSrcDst(sport: PortRange, sinv: boolean, dport: PortRange, dinv: boolean): string {
  let out = '';
  if (!isFullRange(sport)) out += (sinv ? ' !' : '') + ' --sport ' + colonRange(sport);
  if (!isFullRange(dport)) out += (dinv ? ' !' : '') + ' --dport ' + colonRange(dport);
  return out;
}

/** print_ports() of libxt_tcp/udp/sctp in numeric form: ` dpt:80`, ` spts:!1:2`. */
function printPorts(name: string, r: PortRange, invert: boolean): string {
  if (isFullRange(r) && !invert) return '';
  const inv = invert ? '!' : '';
  return r.lo === r.hi ? ` ${name}:${inv}${r.lo}` : ` ${name}s:${inv}${r.lo}:${r.hi}`;
}

function hex2(n: number): string {
  return '0x' + n.toString(16).toUpperCase().padStart(2, '0');
}

// ---- udp (libxt_udp.c, XTTYPE_PORTRC) ------------------------------------------------------------

const udp: ExtDef<Mut<UdpMatch>, Match> = {
  name: 'udp',
  proto: 17,
  opts: [
    { name: 'source-port', id: 0, args: 1, invert: true },
    { name: 'sport', id: 0, args: 1, invert: true },
    { name: 'destination-port', id: 1, args: 1, invert: true },
    { name: 'dport', id: 1, args: 1, invert: true },
  ],
  init: () => ({ kind: 'udp', sport: FULL_RANGE, sportInvert: false, dport: FULL_RANGE, dportInvert: false }),
  parse(s, opt, args, invert) {
    const r = parsePortRc('udp', opt.name, args[0]);
    if (opt.id === 0) { s.sport = r; s.sportInvert = invert; } else { s.dport = r; s.dportInvert = invert; }
  },
  build: (s) => s,
};

// ---- sctp (libxt_sctp.c, old API; --chunk-types is not modelled) ----------------------------------

const sctp: ExtDef<Mut<SctpMatch>, Match> = {
  name: 'sctp',
  proto: 132,
  legacy: true,
  opts: [
    { name: 'source-port', id: 0, args: 1, invert: true, twice: "Only one `--source-port' allowed" },
    { name: 'sport', id: 0, args: 1, invert: true, twice: "Only one `--source-port' allowed" },
    { name: 'destination-port', id: 1, args: 1, invert: true, twice: "Only one `--destination-port' allowed" },
    { name: 'dport', id: 1, args: 1, invert: true, twice: "Only one `--destination-port' allowed" },
    { name: 'chunk-types', id: 2, args: 2, invert: true },
  ],
  init: () => ({ kind: 'sctp', sport: null, dport: null }),
  parse(s, opt, args, invert) {
    if (opt.id === 2) throw new RuleError('--chunk-types', 'sctp: --chunk-types is not supported by svcplane');
    const v = { range: parseColonRangeStrict(args[0], 132), invert };
    if (opt.id === 0) s.sport = v; else s.dport = v;
  },
  build: (s) => s,
};

// ---- icmp / icmp6 (libipt_icmp.c, libip6t_icmp6.c, libxt_icmp.h) -----------------------------------

type IcmpName = readonly [string, number, number, number]; // name, type, code min, code max
const ICMP_CODES: readonly IcmpName[] = [
  ['any', 0xff, 0, 0xff], ['echo-reply', 0, 0, 0xff], ['pong', 0, 0, 0xff],
  ['destination-unreachable', 3, 0, 0xff], ['network-unreachable', 3, 0, 0], ['host-unreachable', 3, 1, 1],
  ['protocol-unreachable', 3, 2, 2], ['port-unreachable', 3, 3, 3], ['fragmentation-needed', 3, 4, 4],
  ['source-route-failed', 3, 5, 5], ['network-unknown', 3, 6, 6], ['host-unknown', 3, 7, 7],
  ['network-prohibited', 3, 9, 9], ['host-prohibited', 3, 10, 10], ['TOS-network-unreachable', 3, 11, 11],
  ['TOS-host-unreachable', 3, 12, 12], ['communication-prohibited', 3, 13, 13],
  ['host-precedence-violation', 3, 14, 14], ['precedence-cutoff', 3, 15, 15], ['source-quench', 4, 0, 0xff],
  ['redirect', 5, 0, 0xff], ['network-redirect', 5, 0, 0], ['host-redirect', 5, 1, 1],
  ['TOS-network-redirect', 5, 2, 2], ['TOS-host-redirect', 5, 3, 3], ['echo-request', 8, 0, 0xff],
  ['ping', 8, 0, 0xff], ['router-advertisement', 9, 0, 0xff], ['router-solicitation', 10, 0, 0xff],
  ['time-exceeded', 11, 0, 0xff], ['ttl-exceeded', 11, 0, 0xff], ['ttl-zero-during-transit', 11, 0, 0],
  ['ttl-zero-during-reassembly', 11, 1, 1], ['parameter-problem', 12, 0, 0xff], ['ip-header-bad', 12, 0, 0],
  ['required-option-missing', 12, 1, 1], ['timestamp-request', 13, 0, 0xff], ['timestamp-reply', 14, 0, 0xff],
  ['address-mask-request', 17, 0, 0xff], ['address-mask-reply', 18, 0, 0xff],
];
const ICMPV6_CODES: readonly IcmpName[] = [
  ['destination-unreachable', 1, 0, 0xff], ['no-route', 1, 0, 0], ['communication-prohibited', 1, 1, 1],
  ['beyond-scope', 1, 2, 2], ['address-unreachable', 1, 3, 3], ['port-unreachable', 1, 4, 4],
  ['failed-policy', 1, 5, 5], ['reject-route', 1, 6, 6], ['packet-too-big', 2, 0, 0xff],
  ['time-exceeded', 3, 0, 0xff], ['ttl-exceeded', 3, 0, 0xff], ['ttl-zero-during-transit', 3, 0, 0],
  ['ttl-zero-during-reassembly', 3, 1, 1], ['parameter-problem', 4, 0, 0xff], ['bad-header', 4, 0, 0],
  ['unknown-header-type', 4, 1, 1], ['unknown-option', 4, 2, 2], ['echo-request', 128, 0, 0xff],
  ['ping', 128, 0, 0xff], ['echo-reply', 129, 0, 0xff], ['pong', 129, 0, 0xff],
  ['mld-listener-query', 130, 0, 0xff], ['mld-listener-report', 131, 0, 0xff],
  ['mld-listener-done', 132, 0, 0xff], ['mld-listener-reduction', 132, 0, 0xff],
  ['router-solicitation', 133, 0, 0xff], ['router-advertisement', 134, 0, 0xff],
  ['neighbour-solicitation', 135, 0, 0xff], ['neighbor-solicitation', 135, 0, 0xff],
  ['neighbour-advertisement', 136, 0, 0xff], ['neighbor-advertisement', 136, 0, 0xff], ['redirect', 137, 0, 0xff],
];

/** __parse_icmp(): a unique name prefix, or `type[/code[:code]]` in base 0. */
function parseIcmpType(codes: readonly IcmpName[], what: string, arg: string): [number, number, number] {
  const lower = arg.toLowerCase();
  let hit: IcmpName | null = null;
  for (const c of codes) {
    if (!c[0].toLowerCase().startsWith(lower)) continue;
    if (hit) throw new RuleError(arg, `Ambiguous ${what} type \`${arg}': \`${hit[0]}' or \`${c[0]}'?`);
    hit = c;
  }
  if (hit) return [hit[1], hit[2], hit[3]];
  const range = (pos: number): { lo: number; hi: number; end: number } | null => {
    const a = scanUint(arg, pos);
    if (!a || a.value > 255) return null;
    if (arg[a.end] !== ':') return { lo: a.value, hi: a.value, end: a.end };
    const b = scanUint(arg, a.end + 1);
    if (!b || b.value > 255) return null;
    return { lo: a.value, hi: b.value, end: b.end };
  };
  const t = range(0);
  if (!t) throw new RuleError(arg, `Unknown ${what} type \`${arg}'`);
  if (t.lo !== t.hi) throw new RuleError(arg, `${what} type range not supported`);
  if (t.end === arg.length) return [t.lo, 0, 0xff];
  if (arg[t.end] !== '/') throw new RuleError(arg, `unknown character ${arg[t.end]}`);
  const c = range(t.end + 1);
  if (!c) throw new RuleError(arg, `Unknown ${what} code \`${arg}'`);
  if (c.end !== arg.length) throw new RuleError(arg, `unknown character ${arg[c.end]}`);
  return [t.lo, c.lo, c.hi];
}

const icmp: ExtDef<Mut<IcmpMatch>, Match> = {
  name: 'icmp',
  family: 4,
  proto: 1,
  opts: [{ name: 'icmp-type', id: 0, args: 1, invert: true, mand: true }],
  init: () => ({ kind: 'icmp', type: 0xff, codeMin: 0, codeMax: 0xff, invert: false }),
  parse(s, _o, args, invert) {
    [s.type, s.codeMin, s.codeMax] = parseIcmpType(ICMP_CODES, 'ICMP', args[0]);
    s.invert = invert;
  },
  build: (s) => s,
};

const icmp6: ExtDef<Mut<IcmpMatch>, Match> = {
  name: 'icmp6',
  family: 6,
  proto: 58,
  opts: [{ name: 'icmpv6-type', id: 0, args: 1, invert: true, mand: true }],
  init: () => ({ kind: 'icmp6', type: 0, codeMin: 0, codeMax: 0xff, invert: false }),
  parse(s, _o, args, invert) {
    [s.type, s.codeMin, s.codeMax] = parseIcmpType(ICMPV6_CODES, 'ICMPv6', args[0]);
    s.invert = invert;
  },
  build: (s) => s,
};

// ---- multiport (libxt_multiport.c revision 1) -------------------------------------------------------

const MULTIPORT_PROTOS = new Set([6, 17, 136, 132, 33]); // tcp udp udplite sctp dccp

const multiport: ExtDef<Mut<MultiportMatch>, Match> = {
  name: 'multiport',
  opts: [
    { name: 'source-ports', id: 0, args: 1, invert: true, excl: 7 },
    { name: 'sports', id: 0, args: 1, invert: true, excl: 7 },
    { name: 'destination-ports', id: 1, args: 1, invert: true, excl: 7 },
    { name: 'dports', id: 1, args: 1, invert: true, excl: 7 },
    { name: 'ports', id: 2, args: 1, invert: true, excl: 7 },
  ],
  init: () => ({ kind: 'multiport', dir: 'dst', ports: [], invert: false }),
  parse(s, opt, args, invert, env) {
    const all = 'multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP';
    if (env.protoInvert) throw new RuleError('--' + opt.name, all);
    if (env.proto === 0) {
      throw new RuleError('--' + opt.name, "multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp'");
    }
    if (!MULTIPORT_PROTOS.has(env.proto)) throw new RuleError('--' + opt.name, all);
    const ports: PortRange[] = [];
    let slots = 0;
    for (const item of args[0].split(',')) {
      if (slots >= 15) throw new RuleError(args[0], 'too many ports specified');
      const colon = item.indexOf(':');
      const one = (p: string): number => {
        const n = parsePortNumber(p, env.proto);
        if (n === null) throw new RuleError(args[0], `invalid port/service \`${p}' specified`);
        return n;
      };
      if (colon < 0) {
        const p = one(item);
        ports.push({ lo: p, hi: p });
        slots++;
        continue;
      }
      if (slots === 14) throw new RuleError(args[0], 'too many ports specified');
      const lo = one(item.slice(0, colon));
      const hi = one(item.slice(colon + 1));
      if (lo >= hi) throw new RuleError(args[0], 'invalid portrange specified');
      ports.push({ lo, hi });
      slots += 2;
    }
    s.dir = opt.id === 0 ? 'src' : opt.id === 1 ? 'dst' : 'either';
    s.ports = ports;
    s.invert = invert;
  },
  check(_s, xflags) {
    if (xflags === 0) throw new RuleError('multiport', 'no ports specified');
  },
  build: (s) => s,
};

// A range always has lo < hi (parse refuses lo >= hi), so lo === hi is a single port.
function multiportList(m: MultiportMatch): string {
  return m.ports.map(colonRange).join(',');
}

/** The layer-4 match extensions by the name `-m` (or `-p`) takes. */
export const L4_MATCH_DEFS: ReadonlyMap<string, MatchDef> = new Map<string, MatchDef>([
  ['tcp', tcp], ['udp', udp], ['sctp', sctp], ['icmp', icmp], ['icmp6', icmp6], ['multiport', multiport],
]);

// ---- rendering ----------------------------------------------------------------------------------

type L4 = TcpMatch | UdpMatch | SctpMatch | IcmpMatch | MultiportMatch;

/** What follows `-m NAME` in iptables-save output. */
export function saveL4(m: L4): string {
  switch (m.kind) {
    case 'tcp': {
      let out = saveSrcDst(m.sport, m.sportInvert, m.dport, m.dportInvert);
      if (m.option) out += (m.option.invert ? ' !' : '') + ' --tcp-option ' + m.option.kind;
      if (m.flags && (m.flags.mask || m.flags.invert)) {
        out += (m.flags.invert ? ' !' : '') + ` --tcp-flags ${tcpFlagNames(m.flags.mask)} ${tcpFlagNames(m.flags.comp)}`;
      }
      return out;
    }
    case 'udp':
      return saveSrcDst(m.sport, m.sportInvert, m.dport, m.dportInvert);
    case 'sctp': {
      let out = '';
      if (m.sport) out += (m.sport.invert ? ' !' : '') + ' --sport ' + colonRange(m.sport.range);
      if (m.dport) out += (m.dport.invert ? ' !' : '') + ' --dport ' + colonRange(m.dport.range);
      return out;
    }
    case 'icmp': {
      const inv = m.invert ? ' !' : '';
      if (m.type === 0xff && m.codeMin === 0 && m.codeMax === 0xff) return inv + ' --icmp-type any';
      return inv + ' --icmp-type ' + m.type + (m.codeMin !== 0 || m.codeMax !== 0xff ? '/' + m.codeMin : '');
    }
    case 'icmp6':
      return (m.invert ? ' !' : '') + ' --icmpv6-type ' + m.type + (m.codeMin !== 0 || m.codeMax !== 0xff ? '/' + m.codeMin : '');
    case 'multiport':
      return (m.invert ? ' !' : '') + ` --${m.dir === 'src' ? 'sports' : m.dir === 'dst' ? 'dports' : 'ports'} ` + multiportList(m);
  }
}

/** The match column text of `iptables -L -n`. */
export function printL4(m: L4): string {
  switch (m.kind) {
    case 'tcp': {
      let out = ' tcp' + printPorts('spt', m.sport, m.sportInvert) + printPorts('dpt', m.dport, m.dportInvert);
      if (m.option) out += ` option=${m.option.invert ? '!' : ''}${m.option.kind}`;
      if (m.flags && (m.flags.mask || m.flags.invert)) {
        out += ` flags:${m.flags.invert ? '!' : ''}${hex2(m.flags.mask)}/${hex2(m.flags.comp)}`;
      }
      return out;
    }
    case 'udp':
      return ' udp' + printPorts('spt', m.sport, m.sportInvert) + printPorts('dpt', m.dport, m.dportInvert);
    case 'sctp':
      return ' sctp' + (m.sport ? printPorts('spt', m.sport.range, m.sport.invert) : '') +
        (m.dport ? printPorts('dpt', m.dport.range, m.dport.invert) : '');
    case 'icmp':
    case 'icmp6': {
      // print_icmptype() in numeric mode; the missing space before "type" is iptables' own.
      let out = (m.kind === 'icmp' ? ' icmp' : ' ipv6-icmp') + (m.invert ? ' !' : '') + 'type ' + m.type;
      if (m.codeMin === m.codeMax) out += ' code ' + m.codeMin;
      else if (m.codeMin !== 0 || m.codeMax !== 0xff) out += ` codes ${m.codeMin}-${m.codeMax}`;
      return out;
    }
    case 'multiport':
      return ` multiport ${m.dir === 'src' ? 'sports' : m.dir === 'dst' ? 'dports' : 'ports'} ` + (m.invert ? ' !' : '') + multiportList(m);
  }
}
