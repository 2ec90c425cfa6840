// ipvs/ipvsadm.ts — `ipvsadm` (1.31) over an IpvsProgram: the same commands, options, output,
// messages and exit codes (ipvsadm.c process_options / restore_table, libipvs.c ipvs_strerror),
// with the kernel's refusals (ip_vs_ctl.c) mapped from the core's error codes. `-R` reads `-S`
// text from a string. Parsing lives in ipvsadm-options.ts, printing in ipvsadm-format.ts.
// Differences, on purpose: names are never resolved (output is always numeric, as with -n; host
// and service names on input are refused like names that do not resolve); the sync daemon,
// persistence engines and GUE/GRE tunnels are not implemented and are refused; `-R` skips lines
// starting with `#`. Never touches files, sockets or the clock (`nowMs` is passed in).
import { IpvsError, isScheduler, type IpvsProgram, type VirtualService, type Protocol, type Scheduler, type SchedFlag, type ServiceInfo, type ConnInfo } from './program.js';
import { parseCommand, tryHelp, IpvsadmExit, fail, FWD, F_PERSISTENT, F_ONEPACKET, PROG, type CommandEntry } from './ipvsadm-options.js';
import { title, serviceEntry, sortServices, connections, timeoutLine, type Format, type ServiceRow } from './ipvsadm-format.js';
import { formatIP, parseIP } from '../core/packet.js';

export interface IpvsadmResult { code: number; stdout: string; stderr: string }
export interface IpvsadmOptions {
  /** The connection hash table size the header shows (the kernel's default, 2^12). */
  tableSize?: number;
}

/** The version ipvsadm reports for the kernel side (ip_vs.h IP_VS_VERSION_CODE 0x010201). */
const IPVS_VERSION = '1.2.1';
const VERSION_LINE = `${PROG} v1.31 2019/12/24 (compiled with popt and IPVS v${IPVS_VERSION})\n`;

// libipvs.c ipvs_strerror(): the message for an errno, some per operation.
const EINVAL = 'Invalid operation.  Possibly wrong module version, address not unicast, ...';
const ENOMEM = 'Memory allocation problem';
const EAFNOSUPPORT = 'Operation not supported with specified address family';
const ERANGE = 'Numerical result out of range';   // strerror(ERANGE)
const NO_SCHED = 'Scheduler or persistence engine not found';
const PROTO_NAME: Record<number, Protocol> = { 6: 'tcp', 17: 'udp', 132: 'sctp' };

/** A kernel refusal: ipvsadm prints ipvs_strerror() and returns -1 (exit status 255). */
class Refused extends Error {}

type Op = 'add-service' | 'edit-service' | 'delete-service' | 'zero' | 'add-server' | 'edit-server' | 'delete-server' | 'other';
function refusal(op: Op, e: unknown): Refused {
  if (e instanceof Refused) return e;
  if (!(e instanceof IpvsError)) return new Refused(op === 'add-service' || op === 'edit-service' ? NO_SCHED : EINVAL);
  switch (e.code) {
    case -2: return new Refused(op === 'add-server' ? 'Destination already exists' : op === 'add-service' ? 'Service already exists' : EINVAL);
    case -3: return new Refused(op.endsWith('server') ? 'No such destination' : 'No such service');
    case -4: return new Refused(ENOMEM);
    case -6: return new Refused(EAFNOSUPPORT);
    default: return new Refused(EINVAL);
  }
}

export class Ipvsadm {
  private readonly tableSize: number;
  constructor(readonly ipvs: IpvsProgram, opts: IpvsadmOptions = {}) {
    this.tableSize = opts.tableSize ?? 4096;
  }

  /**
   * Runs one ipvsadm command line (an argv, with or without the leading "ipvsadm", or a line split
   * on whitespace). `nowMs` is the clock for `-L -c` expiry; `stdin` is what `-R` reads.
   */
  run(argvOrLine: string | string[], nowMs = 0, stdin = ''): IpvsadmResult {
    // From JavaScript anything may come: words that are not text are a usage error, as a shell never passes one.
    const words = typeof argvOrLine === 'string' || (Array.isArray(argvOrLine) && argvOrLine.every((w) => typeof w === 'string'));
    if (!words || typeof stdin !== 'string') return { code: 2, stdout: '', stderr: `${PROG}: the command line and its input are text\n` };
    const argv = typeof argvOrLine === 'string' ? argvOrLine.split(/\s+/).filter((t) => t !== '') : [...argvOrLine];
    if (argv[0] === PROG) argv.shift();
    const out = { stdout: '', stderr: '' };
    try {
      // main(): no arguments lists the table.
      if (argv.length === 0) { out.stdout = this.listAll({}); return { code: 0, ...out }; }
      const code = this.process(argv, nowMs, stdin, false, out);
      return { code, ...out };
    } catch (e) {
      if (e instanceof IpvsadmExit) return { code: e.code, stdout: out.stdout + e.stdout, stderr: out.stderr + e.stderr };
      return { code: 255, stdout: out.stdout, stderr: `${out.stderr}${PROG}: ${(e as Error).message}\n` };
    }
  }

  /** `ipvsadm -R < text`. */
  restore(text: string, nowMs = 0): IpvsadmResult { return this.run(['-R'], nowMs, text); }
  /** `ipvsadm -S -n`. */
  save(): string { return this.listAll({ rule: true }); }

  /** process_options(): returns the command's result (0, or 255 for a refusal); throws IpvsadmExit for exit(). */
  private process(argv: string[], nowMs: number, stdin: string, readingStdin: boolean, out: { stdout: string; stderr: string }): number {
    let ce: CommandEntry | 'help' | 'version';
    try {
      ce = parseCommand(argv);
    } catch (e) {
      // A popt error returns -1 from parse_options (restore goes on); fail() exits.
      if (e instanceof IpvsadmExit && e.code === 255 && !e.stderr.startsWith('Try')) { out.stderr += e.stderr; return 255; }
      throw e;
    }
    if (ce === 'help') throw new IpvsadmExit(0, '', VERSION_LINE + usage());
    if (ce === 'version') throw new IpvsadmExit(0, '', VERSION_LINE);
    try {
      return this.execute(ce, nowMs, stdin, readingStdin, out);
    } catch (e) {
      if (e instanceof IpvsadmExit) throw e;
      const r = refusal('other', e);
      out.stderr += `${r.message}\n`;
      return 255;
    }
  }

  private execute(ce: CommandEntry, nowMs: number, stdin: string, readingStdin: boolean, out: { stdout: string; stderr: string }): number {
    const svc = ce.svc, dest = ce.dest, has = (o: Parameters<typeof ce.options.has>[0]) => ce.options.has(o);
    if (ce.cmd === 'add-service' || ce.cmd === 'edit-service') {
      if (!svc.fwmark && !svc.port && !(svc.flags & F_PERSISTENT)) throw fail('Zero port specified for non-persistent service');
      if (svc.flags & F_ONEPACKET && !svc.fwmark && svc.protocol !== 17) throw fail('One-Packet Scheduling is only for UDP virtual services');
      if (!svc.sched) svc.sched = 'wlc';
    }
    if (ce.cmd === 'add-server' || ce.cmd === 'edit-server') {
      // Direct routing and tunnelling keep the virtual port.
      if (!svc.fwmark && (dest.fwd === FWD.tunnel || dest.fwd === FWD.droute)) dest.port = svc.port;
      if (dest.af !== svc.af && dest.fwd !== FWD.tunnel) throw fail('Different address family is allowed only for tunneling servers');
      const tunOpts = (['tun-type', 'tun-port', 'tun-nocsum', 'tun-csum', 'tun-remcsum'] as const).filter(has);
      if (tunOpts.length && dest.fwd !== FWD.tunnel) throw fail('Tunnel options conflict with forward method');
      tunnelOptCheck(dest.tunType, tunOpts);
    }
    const fmt = formatOf(ce);
    switch (ce.cmd) {
      case 'list': {
        if ((has('connection') || has('timeout') || has('daemon')) && (ce.stats || ce.rate || ce.thresholds) ||
            ((has('timeout') || has('daemon')) && ce.persistentConn)) throw fail('options conflicts in the list command');
        if (has('connection')) out.stdout += this.listConnections(nowMs, fmt);
        else if (has('service-address')) {
          const id = this.find(ce);
          if (id === undefined) throw new IpvsadmExit(1, 'No such service\n', out.stdout);
          out.stdout += title(fmt) + serviceEntry(this.row(this.ipvs.service(id), fmt), fmt);
        } else if (has('timeout')) out.stdout += timeoutLine(this.ipvs.timeouts());
        else if (has('daemon')) { /* no sync daemon runs: list_daemon prints nothing */ }
        else out.stdout += this.listAll(fmt);
        return 0;
      }
      case 'restore': return this.restoreLines(stdin, nowMs, readingStdin, out);
      case 'save': out.stdout += this.listAll({ rule: true, nosort: ce.nosort }); return 0;
      case 'start-daemon': case 'stop-daemon':
        throw new Refused(ce.cmd === 'start-daemon' ? 'Connection sync daemon not supported' : 'No daemon is running');
      default: return this.change(ce);
    }
  }

  /** The commands that change IPVS; a kernel refusal prints its message and returns 255. */
  private change(ce: CommandEntry): number {
    const dest = ce.dest;
    const op = ce.cmd as Op;
    try {
      switch (ce.cmd) {
        case 'flush': this.ipvs.flush(); return 0;
        case 'set': this.ipvs.setTimeouts(ce.timeouts); return 0;
        case 'add-service':
          // The kernel looks the service up before it reads the scheduler (ip_vs_genl_set_cmd).
          if (this.find(ce) !== undefined) throw new Refused('Service already exists');
          this.ipvs.addService(this.virtualService(ce));
          return 0;
        case 'edit-service': this.ipvs.editService(this.need(ce, 'No such service'), this.virtualService(ce)); return 0;
        case 'delete-service': this.ipvs.deleteService(this.need(ce, 'No such service')); return 0;
        case 'zero': this.ipvs.zero(ce.options.has('service-address') ? this.need(ce, 'No such service') : undefined); return 0;
        case 'add-server': case 'edit-server': {
          const id = this.need(ce, 'Service not defined');
          // ip_vs_ctl.c ip_vs_add_dest / ip_vs_edit_dest: -ERANGE when l_threshold > u_threshold.
          if (dest.l > dest.u) throw new Refused(ERANGE);
          const d = {
            forwarding: (['masq', 'local', 'tunnel', 'droute'] as const)[dest.fwd]!, weight: dest.weight,
            upperThreshold: dest.u, lowerThreshold: dest.l,
            ...(dest.fwd === FWD.tunnel ? { tunnel: {
              type: (['ipip', 'gue', 'gre'] as const)[dest.tunType]!, port: dest.tunPort,
              checksum: (['nocsum', 'csum', 'remcsum'] as const)[dest.tunFlags] ?? 'nocsum',
            } } : {}),
          };
          if (ce.cmd === 'add-server') this.ipvs.addDest(id, { address: dest.addr, port: dest.port, ...d });
          else this.ipvs.editDest(id, this.needDest(id, ce), d);
          return 0;
        }
        case 'delete-server': {
          const id = this.need(ce, 'Service not defined');
          this.ipvs.deleteDest(id, this.needDest(id, ce));
          return 0;
        }
        default: return 0;
      }
    } catch (e) {
      throw refusal(op, e);
    }
  }

  private restoreLines(stdin: string, nowMs: number, readingStdin: boolean, out: { stdout: string; stderr: string }): number {
    if (readingStdin) throw tryHelp();   // "avoid infinite loop"
    let result = 0;
    for (const line of stdin.split('\n')) {
      // config_stream_read(): whitespace-separated tokens, the word "ipvsadm" dropped.
      const argv = line.split(/[ \t\r]+/).filter((t) => t !== '' && t !== PROG);
      if (argv.length === 0 || argv[0]!.startsWith('#')) continue;
      result = this.process(argv, nowMs, '', true, out);
    }
    return result;
  }

  private virtualService(ce: CommandEntry): VirtualService {
    const s = ce.svc;
    if (!isScheduler(s.sched) || s.pe) throw new Refused(NO_SCHED);
    const flagNames: SchedFlag[] = [];
    if (s.flags & 0x8) flagNames.push('flag-1');
    if (s.flags & 0x10) flagNames.push('flag-2');
    if (s.flags & 0x20) flagNames.push('flag-3');
    const vs: VirtualService = {
      ...this.key(ce), scheduler: s.sched as Scheduler, onePacket: (s.flags & F_ONEPACKET) !== 0, schedFlags: flagNames,
      netmask: s.af === 6 ? s.netmask : formatIP(new Uint8Array([s.netmask >>> 24, (s.netmask >>> 16) & 255, (s.netmask >>> 8) & 255, s.netmask & 255])),
    };
    if (s.flags & F_PERSISTENT) vs.persistent = s.timeout;
    return vs;
  }

  private key(ce: CommandEntry): Pick<VirtualService, 'protocol' | 'address' | 'port' | 'fwmark' | 'family'> {
    const s = ce.svc;
    return s.fwmark ? { fwmark: s.fwmark, family: s.af } : { protocol: PROTO_NAME[s.protocol]!, address: s.addr, port: s.port };
  }
  private find(ce: CommandEntry): number | undefined { return this.ipvs.findService(this.key(ce)); }
  private need(ce: CommandEntry, message: string): number {
    const id = this.find(ce);
    if (id === undefined) throw new Refused(message);
    return id;
  }
  private needDest(svc: number, ce: CommandEntry): number {
    const id = this.ipvs.findDest(svc, ce.dest.addr, ce.dest.port);
    if (id === undefined) throw new Refused('No such destination');
    return id;
  }

  private row(info: ServiceInfo, f: Format): ServiceRow {
    if (!f.stats && !f.rate) return { info };
    return { info, stats: this.ipvs.stats(info.id), destStats: new Map(info.destinations.map((d) => [d.id, this.ipvs.destStats(d.id)])) };
  }

  /** list_all(): header (not for -S), title, every service sorted unless --nosort. */
  private listAll(f: Format): string {
    return [...this.listAllPieces(f)].join('');
  }

  /** listAll() in pieces: the header and title, then each service's entry, read when it is pulled. */
  private *listAllPieces(f: Format): Generator<string> {
    yield (f.rule ? '' : `IP Virtual Server version ${IPVS_VERSION} (size=${this.tableSize})\n`) + title(f);
    const heads = this.ipvs.serviceHeads();
    for (const h of f.nosort ? heads : sortServices(heads)) yield serviceEntry(this.row(this.ipvs.service(h.id), f), f);
  }

  /**
   * `ipvsadm -L` or `-S` of the whole table (`argv` as run() reads it, without a service, -c,
   * --timeout or --daemon) in pieces, each service's made when it is pulled: a host lists 20,000
   * virtual servers a slice at a time. Null for any other command line (run() answers it).
   */
  listing(argv: readonly string[]): Iterable<string> | null {
    let ce: ReturnType<typeof parseCommand>;
    try {
      ce = parseCommand([...argv]);
    } catch {
      return null;
    }
    if (ce === 'help' || ce === 'version') return null;
    if (ce.cmd === 'save') return this.listAllPieces({ rule: true, nosort: ce.nosort });
    const plain = !(['connection', 'service-address', 'timeout', 'daemon'] as const).some((o) => ce.options.has(o));
    return ce.cmd === 'list' && plain ? this.listAllPieces(formatOf(ce)) : null;
  }

  private listConnections(nowMs: number, f: Format): string {
    const fam = (a: string): 4 | 6 => (parseIP(a).length === 16 ? 6 : 4);
    return connections(this.ipvs.connections(nowMs), (c: ConnInfo) => ({ client: fam(c.client), dest: fam(c.destination) }), f);
  }
}

/** What a listing command's options say about its output. */
function formatOf(ce: CommandEntry): Format {
  return {
    stats: ce.stats, rate: ce.rate, thresholds: ce.thresholds, persistentConn: ce.persistentConn, nosort: ce.nosort,
    exact: ce.exact, tunInfo: ce.tunInfo,
  };
}

/** The command synopsis `-h` prints after the version (the options themselves: ipvsadm(8)). */
function usage(): string {
  const p = PROG;
  return 'Usage:\n' + [
    '-A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]',
    '-D virtual-service', '-C', '-R', '-S [-n]', '-a|e virtual-service -r server-address [options]',
    '-d virtual-service -r server-address', '-L|l [virtual-service] [options]', '-Z [virtual-service]',
    '--set tcp tcpfin udp', '--start-daemon {master|backup} [daemon-options]', '--stop-daemon {master|backup}', '-h',
  ].map((l) => `  ${p} ${l}\n`).join('') + '\n';
}

// ipvsadm.c tunnel_opt_check() with tunnel_types_v_options[]: for each tunnel type, which of
// --tun-port, --tun-nocsum, --tun-csum, --tun-remcsum is required ('+'), illegal ('x') or one of a
// mutually exclusive group ('1').
const TUN_NAMES = ['ipip', 'gue', 'gre'] as const;
const TUN_OPTS = ['tun-port', 'tun-nocsum', 'tun-csum', 'tun-remcsum'] as const;
const TUN_TABLE: readonly string[] = ['xxxx', '+111', 'x11x'];

function tunnelOptCheck(type: number, given: readonly string[]): void {
  let last = '';
  for (let j = 0; j < TUN_OPTS.length; j++) {
    const opt = TUN_OPTS[j]!, rule = TUN_TABLE[type]![j]!;
    if (!given.includes(opt)) {
      if (rule === '+') throw fail(`You need to supply the '${opt}' option for the '${TUN_NAMES[type]}' tunnel type`);
      continue;
    }
    if (rule === 'x') throw fail(`Illegal '${opt}' option with the '${TUN_NAMES[type]}' tunnel type`);
    if (rule === '1') {
      if (last) throw fail(`The option '${opt}' conflicts with the '${last}' option in the '${TUN_NAMES[type]}' tunnel type`);
      last = opt;
    }
  }
}
