// ipvs/ipvsadm-options.ts — ipvsadm 1.31's command line, read the way ipvsadm reads it: popt-style
// tokens (short clusters `-Ln`, `-srr`, `--long[=value]`, `-p` with an optional timeout, loose
// arguments collected for `--set`), the first option naming the command, then every later option
// filling one command entry, then the command/option legality check. Facts from ipvsadm.c
// (parse_options, parse_service, parse_netmask, parse_sched_flags, generic_opt_check) and
// libipvs.h (IPVS_SVC_PERSISTENT_TIMEOUT).
// Never resolves host or service names (numeric addresses and ports only), never touches IPVS:
// the result is a plain CommandEntry, or an IpvsadmExit carrying ipvsadm's message and exit code.
import { parseIP, formatIP } from '../core/packet.js';

/** How ipvsadm ended: its exit code, and what it printed. */
export class IpvsadmExit {
  constructor(readonly code: number, readonly stderr: string, readonly stdout = '') {}
}
/** fail(): ipvsadm.c prints the message and exits 2. */
export const fail = (msg: string): IpvsadmExit => new IpvsadmExit(2, `${msg}\n`);
export const PROG = 'ipvsadm';
/** tryhelp_exit(argv[0], -1): exit status 255. */
export const tryHelp = (): IpvsadmExit =>
  new IpvsadmExit(255, `Try \`${PROG} -h' or '${PROG} --help' for more information.\n`);

export type Cmd = 'add-service' | 'edit-service' | 'delete-service' | 'flush' | 'list' | 'add-server' | 'delete-server'
  | 'edit-server' | 'set' | 'start-daemon' | 'stop-daemon' | 'restore' | 'save' | 'zero';

/** ipvsadm.c optnames[], in bit order (the names its messages use). */
export const OPTNAMES = ['numeric', 'connection', 'service-address', 'scheduler', 'persistent', 'netmask', 'real-server',
  'forwarding-method', 'weight', 'u-threshold', 'l-threshold', 'mcast-interface', 'timeout', 'daemon', 'stats', 'rate',
  'thresholds', 'persistent-conn', 'nosort', 'syncid', 'exact', 'ops', 'pe', 'sched-flags', 'mcast-group', 'mcast-port',
  'mcast-ttl', 'sync-maxlen', 'tun-info', 'tun-type', 'tun-port', 'tun-nocsum', 'tun-csum', 'tun-remcsum'] as const;
export type OptName = (typeof OPTNAMES)[number];

// ipvsadm.c commands_v_options[]: per command, the options it requires (+), the ones that exclude
// each other (1) and the ones allowed (' '); everything else is illegal (x).
const LEGAL: Record<Cmd, { need?: OptName[]; one?: OptName[]; may?: OptName[] }> = {
  'add-service': { need: ['service-address'], may: ['scheduler', 'persistent', 'netmask', 'ops', 'pe', 'sched-flags'] },
  'edit-service': { need: ['service-address'], may: ['scheduler', 'persistent', 'netmask', 'ops', 'pe', 'sched-flags'] },
  'delete-service': { need: ['service-address'] },
  flush: {},
  list: {
    one: ['connection', 'service-address', 'timeout', 'daemon'],
    may: ['numeric', 'stats', 'rate', 'thresholds', 'persistent-conn', 'nosort', 'syncid', 'exact', 'tun-info'],
  },
  'add-server': { need: ['service-address', 'real-server'], may: ['forwarding-method', 'weight', 'u-threshold', 'l-threshold',
    'tun-type', 'tun-port', 'tun-nocsum', 'tun-csum', 'tun-remcsum'] },
  'delete-server': { need: ['service-address', 'real-server'] },
  'edit-server': { need: ['service-address', 'real-server'], may: ['forwarding-method', 'weight', 'u-threshold', 'l-threshold',
    'tun-type', 'tun-port', 'tun-nocsum', 'tun-csum', 'tun-remcsum'] },
  set: {},
  'start-daemon': { may: ['mcast-interface', 'syncid', 'mcast-group', 'mcast-port', 'mcast-ttl', 'sync-maxlen'] },
  'stop-daemon': { may: ['syncid'] },
  restore: {},
  save: { may: ['numeric'] },
  zero: { may: ['service-address'] },
};

/** Forwarding flags (IP_VS_CONN_F_*). */
export const FWD = { masq: 0, local: 1, tunnel: 2, droute: 3 } as const;
/** Service flags (IP_VS_SVC_F_*). */
export const F_PERSISTENT = 0x1, F_ONEPACKET = 0x4, F_SCHED1 = 0x8, F_SCHED2 = 0x10, F_SCHED3 = 0x20;
/** libipvs.h IPVS_SVC_PERSISTENT_TIMEOUT: `-p` without a value means 6 minutes. */
export const DEFAULT_PERSISTENT = 360;
const MAX_TIMEOUT = 86400 * 31;
const INT_MAX = 0x7fffffff;
export const PROTO = { tcp: 6, udp: 17, sctp: 132 } as const;

export interface CommandEntry {
  cmd: Cmd;
  options: Set<OptName>;
  numeric: boolean; stats: boolean; rate: boolean; thresholds: boolean; persistentConn: boolean;
  nosort: boolean; exact: boolean; tunInfo: boolean;
  svc: { af: 4 | 6; protocol: number; addr: string; port: number; fwmark: number; sched: string; flags: number;
    timeout: number; netmask: number; pe: string };
  dest: { af: 4 | 6; addr: string; port: number; fwd: number; weight: number; u: number; l: number; tunType: number; tunPort: number; tunFlags: number };
  timeouts: { tcp: number; tcpfin: number; udp: number };
}

// ---- popt-style tokens

interface Opt { long: string; short?: string; arg: 'none' | 'req' | 'opt' }
const TABLE: Opt[] = [
  ['add-service', 'A'], ['edit-service', 'E'], ['delete-service', 'D'], ['clear', 'C'], ['list', 'L'], ['list', 'l'],
  ['zero', 'Z'], ['add-server', 'a'], ['edit-server', 'e'], ['delete-server', 'd'], ['set'], ['help', 'h'], ['version', 'v'],
  ['restore', 'R'], ['save', 'S'], ['start-daemon', , 'req'], ['stop-daemon', , 'req'], ['tcp-service', 't', 'req'],
  ['udp-service', 'u', 'req'], ['sctp-service', , 'req'], ['fwmark-service', 'f', 'req'], ['scheduler', 's', 'req'],
  ['persistent', 'p', 'opt'], ['netmask', 'M', 'req'], ['real-server', 'r', 'req'], ['masquerading', 'm'], ['ipip', 'i'],
  ['gatewaying', 'g'], ['weight', 'w', 'req'], ['u-threshold', 'x', 'req'], ['l-threshold', 'y', 'req'], ['numeric', 'n'],
  ['connection', 'c'], ['mcast-interface', , 'req'], ['syncid', , 'req'], ['timeout'], ['daemon'], ['stats'], ['rate'],
  ['thresholds'], ['persistent-conn'], ['nosort'], ['sort'], ['exact', 'X'], ['ipv6', '6'], ['ops', 'o'], ['pe', , 'req'],
  ['sched-flags', 'b', 'req'], ['mcast-group', , 'req'], ['mcast-port', , 'req'], ['mcast-ttl', , 'req'],
  ['sync-maxlen', , 'req'], ['tun-info'], ['tun-type', , 'req'], ['tun-port', , 'req'], ['tun-nocsum'], ['tun-csum'],
  ['tun-remcsum'],
].map(([long, short, arg]) => ({ long: long!, ...(short ? { short } : {}), arg: (arg ?? 'none') as Opt['arg'] }));

type Token = { opt: Opt; arg: string | undefined; token: string } | { error: string; token: string };

/** Splits argv (without the program name) into option events, in order, and loose arguments. */
export function tokenize(argv: string[]): { events: Token[]; args: string[] } {
  const events: Token[] = [], args: string[] = [];
  let i = 0;
  const takeNext = (optional: boolean): string | undefined => {
    if (i >= argv.length) return undefined;
    if (optional && argv[i]!.startsWith('-')) return undefined;
    return argv[i++];
  };
  while (i < argv.length) {
    const tok = argv[i++]!;
    if (tok === '--') { args.push(...argv.slice(i)); break; }
    if (!tok.startsWith('-') || tok === '-') { args.push(tok); continue; }
    if (tok.startsWith('--')) {
      const eq = tok.indexOf('=');
      const name = tok.slice(2, eq < 0 ? undefined : eq);
      const opt = TABLE.find((o) => o.long === name);
      if (!opt) { events.push({ error: 'unknown option', token: tok }); return { events, args }; }
      let arg: string | undefined = eq < 0 ? undefined : tok.slice(eq + 1);
      if (opt.arg === 'none' && arg !== undefined) { events.push({ error: 'option does not take an argument', token: tok }); return { events, args }; }
      if (opt.arg !== 'none' && arg === undefined) arg = takeNext(opt.arg === 'opt');
      if (opt.arg === 'req' && arg === undefined) { events.push({ error: 'missing argument', token: tok }); return { events, args }; }
      events.push({ opt, arg, token: tok });
      continue;
    }
    for (let k = 1; k < tok.length; k++) {
      const opt = TABLE.find((o) => o.short === tok[k]);
      if (!opt) { events.push({ error: 'unknown option', token: tok }); return { events, args }; }
      if (opt.arg === 'none') { events.push({ opt, arg: undefined, token: tok }); continue; }
      let arg: string | undefined = k + 1 < tok.length ? tok.slice(k + 1) : takeNext(opt.arg === 'opt');
      if (arg === undefined && opt.arg === 'req') { events.push({ error: 'missing argument', token: tok }); return { events, args }; }
      if (arg?.startsWith('=') && k + 1 < tok.length) arg = arg.slice(1);
      events.push({ opt, arg, token: tok });
      break;
    }
  }
  return { events, args };
}

// ---- value parsers (ipvsadm.c)

/** string_to_number(): a whole decimal in [min, max], or -1. */
export function toNumber(s: string, min: number, max: number): number {
  if (!/^\s*[+-]?\d+$/.test(s)) return -1;
  const n = Number(s);
  return n >= min && n <= max ? n : -1;
}
function isAllDigits(s: string): boolean { return /^\d*$/.test(s); }
function ip4(s: string): boolean { try { return parseIP(s).length === 4 && !s.includes(':'); } catch { return false; } }
function ip6(s: string): boolean { try { return s.includes(':') && parseIP(s).length === 16; } catch { return false; } }

/**
 * parse_service(): `host[:port]`, `[v6]:port` or a bare IPv6 address. Host and service names are
 * not resolved (ipvsadm would ask the resolver); they fail like an unknown name does.
 */
export function parseService(buf: string): { af: 4 | 6; addr: string; port?: number } | undefined {
  if (isAllDigits(buf)) return undefined;
  let host = buf, portText: string | undefined;
  if (buf.startsWith('[')) {
    const close = buf.indexOf(']');
    if (close < 0 || buf[close + 1] !== ':') return undefined;
    host = buf.slice(1, close);
    portText = buf.slice(close + 2);
  }
  let out: { af: 4 | 6; addr: string };
  if (ip6(host)) out = { af: 6, addr: formatIP(parseIP(host)) };
  else {
    // As in ipvsadm, a bracketed non-IPv6 host loses its port here (strrchr finds no ':').
    const colon = host.lastIndexOf(':');
    portText = colon < 0 ? undefined : host.slice(colon + 1);
    if (colon >= 0) host = host.slice(0, colon);
    if (!ip4(host)) return undefined;
    out = { af: 4, addr: formatIP(parseIP(host)) };
  }
  if (portText === undefined) return out;
  const port = toNumber(portText, 0, 65535);
  return port < 0 ? undefined : { ...out, port };
}

function parseTimeout(buf: string | undefined, min: number, max: number): number {
  if (buf === undefined) return DEFAULT_PERSISTENT;
  const n = toNumber(buf, min, max);
  if (n < 0) throw fail(`invalid timeout value \`${buf}' specified`);
  return n;
}

/** parse_sched_flags(): the sh-/mh- flags only with their scheduler (default wlc). */
function parseSchedFlags(sched: string, arg: string): number {
  sched = sched || 'wlc';
  let flags = 0;
  for (const flag of arg.split(',').filter((f) => f !== '')) {
    const bit = { 'flag-1': F_SCHED1, 'flag-2': F_SCHED2, 'flag-3': F_SCHED3, 'sh-fallback': F_SCHED1, 'sh-port': F_SCHED2,
      'mh-fallback': F_SCHED1, 'mh-port': F_SCHED2 }[flag];
    if (bit === undefined) throw fail(`invalid scheduler flag \`${flag}'`);
    const owner = flag.startsWith('sh-') ? 'sh' : flag.startsWith('mh-') ? 'mh' : undefined;
    if (owner && sched !== owner) throw fail(`incompatible scheduler flag \`${flag}'`);
    flags |= bit;
  }
  return flags;
}

const COMMAND_OF: Record<string, Cmd | 'help' | 'version'> = {
  'add-service': 'add-service', 'edit-service': 'edit-service', 'delete-service': 'delete-service', clear: 'flush',
  list: 'list', zero: 'zero', 'add-server': 'add-server', 'edit-server': 'edit-server', 'delete-server': 'delete-server',
  set: 'set', restore: 'restore', save: 'save', 'start-daemon': 'start-daemon', 'stop-daemon': 'stop-daemon',
  help: 'help', version: 'version',
};

/** The command entry for argv (without the program name), or throws IpvsadmExit; 'help'/'version' are returned. */
export function parseCommand(argv: string[]): CommandEntry | 'help' | 'version' {
  const { events, args } = tokenize(argv);
  const first = events[0];
  if (!first || 'error' in first) throw tryHelp();
  const cmd = COMMAND_OF[first.opt.long];
  if (cmd === undefined) throw tryHelp();
  if (cmd === 'help' || cmd === 'version') return cmd;
  const ce: CommandEntry = {
    cmd, options: new Set(), numeric: false, stats: false, rate: false, thresholds: false, persistentConn: false,
    nosort: false, exact: false, tunInfo: false,
    svc: { af: 4, protocol: 0, addr: '0.0.0.0', port: 0, fwmark: 0, sched: '', flags: 0, timeout: 0, netmask: 0xffffffff, pe: '' },
    dest: { af: 4, addr: '0.0.0.0', port: 0, fwd: FWD.droute, weight: 1, u: 0, l: 0, tunType: 0, tunPort: 0, tunFlags: 0 },
    timeouts: { tcp: 0, tcpfin: 0, udp: 0 },
  };
  if (cmd === 'start-daemon' || cmd === 'stop-daemon') {
    if (first.arg !== 'master' && first.arg !== 'backup') {
      throw fail(cmd === 'start-daemon' ? 'illegal start-daemon parameter specified' : 'illegal start_daemon specified');
    }
  }
  const set = (o: OptName) => {
    if (ce.options.has(o)) throw fail(`multiple '${o}' options specified`);
    ce.options.add(o);
  };
  let schedFlagsArg = '';
  for (const ev of events.slice(1)) {
    // parse_options: a popt error is printed as "<option>: <reason>" and ipvsadm returns -1.
    if ('error' in ev) throw new IpvsadmExit(255, `${ev.token}: ${ev.error}\n`);
    const a = ev.arg ?? '';
    switch (ev.opt.long) {
      case 'tcp-service': case 'udp-service': case 'sctp-service': {
        set('service-address');
        ce.svc.protocol = ev.opt.long === 'tcp-service' ? PROTO.tcp : ev.opt.long === 'udp-service' ? PROTO.udp : PROTO.sctp;
        const p = parseService(a);
        if (!p) throw fail('illegal virtual server address[:port] specified');
        ce.svc.af = p.af; ce.svc.addr = p.addr;
        if (p.af === 6) ce.svc.netmask = 128;
        if (p.port !== undefined) ce.svc.port = p.port;
        break;
      }
      case 'fwmark-service': {
        set('service-address');
        ce.svc.af = 4; ce.svc.protocol = PROTO.tcp;
        const n = /^\d+$/.test(a) ? Number(a) : NaN;
        if (!(n > 0 && n <= 0xffffffff)) throw fail(`invalid fwmark value \`${a}' specified`);
        ce.svc.fwmark = n;
        break;
      }
      case 'scheduler': set('scheduler'); ce.svc.sched = a.slice(0, 15); break;
      case 'persistent':
        set('persistent');
        ce.svc.flags |= F_PERSISTENT;
        ce.svc.timeout = parseTimeout(ev.arg, 1, MAX_TIMEOUT);
        break;
      case 'netmask':
        set('netmask');
        if (ce.svc.af !== 6) {
          if (!ip4(a)) throw fail('illegal virtual server persistent mask specified');
          const b = parseIP(a);
          ce.svc.netmask = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
        } else {
          const n = parseInt(a, 10);   // atoi()
          if (!(n >= 1 && n <= 128)) throw fail('illegal ipv6 netmask specified');
          ce.svc.netmask = n;
        }
        break;
      case 'real-server': {
        set('real-server');
        const p = parseService(a);
        if (!p) throw fail('illegal real server address[:port] specified');
        ce.dest.af = p.af; ce.dest.addr = p.addr;
        ce.dest.port = p.port ?? ce.svc.port;   // "copy vport to dport if not specified"
        break;
      }
      case 'ipip': set('forwarding-method'); ce.dest.fwd = FWD.tunnel; break;
      case 'gatewaying': set('forwarding-method'); ce.dest.fwd = FWD.droute; break;
      case 'masquerading': set('forwarding-method'); ce.dest.fwd = FWD.masq; break;
      case 'weight':
        set('weight');
        if ((ce.dest.weight = toNumber(a, 0, 65535)) < 0) throw fail('illegal weight specified');
        break;
      case 'u-threshold':
        set('u-threshold');
        if ((ce.dest.u = toNumber(a, 0, INT_MAX)) < 0) throw fail('illegal u_threshold specified');
        break;
      case 'l-threshold':
        set('l-threshold');
        if ((ce.dest.l = toNumber(a, 0, INT_MAX)) < 0) throw fail('illegal l_threshold specified');
        break;
      case 'connection': set('connection'); break;
      case 'numeric': set('numeric'); ce.numeric = true; break;
      case 'mcast-interface': set('mcast-interface'); break;
      case 'syncid': set('syncid'); if (toNumber(a, 0, 255) < 0) throw fail('illegal syncid specified'); break;
      case 'timeout': set('timeout'); break;
      case 'daemon': set('daemon'); break;
      case 'stats': set('stats'); ce.stats = true; break;
      case 'rate': set('rate'); ce.rate = true; break;
      case 'thresholds': set('thresholds'); ce.thresholds = true; break;
      case 'persistent-conn': set('persistent-conn'); ce.persistentConn = true; break;
      case 'nosort': set('nosort'); ce.nosort = true; break;
      case 'sort': break;   // "Sort is the default, this is a no-op for compatibility"
      case 'exact': set('exact'); ce.exact = true; break;
      case 'ipv6':
        if (!ce.svc.fwmark) throw new IpvsadmExit(2, '-6 used before -f\n\n');
        ce.svc.af = 6; ce.svc.netmask = 128;
        break;
      case 'ops': set('ops'); ce.svc.flags |= F_ONEPACKET; break;
      case 'pe': set('pe'); ce.svc.pe = a; break;
      case 'sched-flags': set('sched-flags'); schedFlagsArg = a; break;
      case 'mcast-group': set('mcast-group'); break;
      case 'mcast-port': set('mcast-port'); if (toNumber(a, 1, 65535) < 0) throw fail('illegal mcast-port specified'); break;
      case 'mcast-ttl': set('mcast-ttl'); if (toNumber(a, 1, 255) < 0) throw fail('illegal mcast-ttl specified'); break;
      case 'sync-maxlen': set('sync-maxlen'); if (toNumber(a, 1, 65535 - 28) < 0) throw fail('illegal sync-maxlen specified'); break;
      case 'tun-info': set('tun-info'); ce.tunInfo = true; break;
      case 'tun-type': {
        set('tun-type');
        const t = ['ipip', 'gue', 'gre'].indexOf(a);
        if (t < 0) throw fail('illegal tunnel type specified');
        ce.dest.tunType = t;
        break;
      }
      case 'tun-port': {
        set('tun-port');
        const p = toNumber(a, 1, 65535);
        if (p < 0) throw fail('illegal tunnel port specified');
        ce.dest.tunPort = p;
        break;
      }
      // IP_VS_TUNNEL_ENCAP_FLAG_NOCSUM (0), _CSUM (1), _REMCSUM (2), or-ed in as ipvsadm does.
      case 'tun-nocsum': set('tun-nocsum'); break;
      case 'tun-csum': set('tun-csum'); ce.dest.tunFlags |= 1; break;
      case 'tun-remcsum': set('tun-remcsum'); ce.dest.tunFlags |= 2; break;
      default: throw fail(`invalid option \`${ev.token}'`);
    }
  }
  const loose = [...args];
  if (cmd === 'set') {
    if (loose.length < 3) throw fail('--set option requires 3 timeout values');
    const [t, f, u] = loose.splice(0, 3) as [string, string, string];
    ce.timeouts = { tcp: parseTimeout(t, 0, MAX_TIMEOUT), tcpfin: parseTimeout(f, 0, MAX_TIMEOUT), udp: parseTimeout(u, 0, MAX_TIMEOUT) };
  }
  if (loose.length) throw fail(`unexpected argument ${loose[0]}`);
  if (schedFlagsArg) ce.svc.flags = (ce.svc.flags & ~(F_SCHED1 | F_SCHED2 | F_SCHED3)) | parseSchedFlags(ce.svc.sched, schedFlagsArg);
  checkLegal(ce);
  return ce;
}

/** generic_opt_check(): options a command needs, refuses, or takes only one of. */
function checkLegal(ce: CommandEntry): void {
  const rule = LEGAL[ce.cmd];
  let firstOne: OptName | undefined;
  for (const o of OPTNAMES) {
    const kind = rule.need?.includes(o) ? '+' : rule.one?.includes(o) ? '1' : rule.may?.includes(o) ? ' ' : 'x';
    if (!ce.options.has(o)) {
      if (kind === '+') throw fail(`You need to supply the '${o}' option for the '${ce.cmd}' command`);
      continue;
    }
    if (kind === 'x') throw fail(`Illegal '${o}' option with the '${ce.cmd}' command`);
    if (kind === '1') {
      if (firstOne === undefined) { firstOne = o; continue; }
      throw fail(`The option '${o}' conflicts with the '${firstOne}' option in the '${ce.cmd}' command`);
    }
  }
}
