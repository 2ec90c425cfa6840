// ipvs/program.ts — typed IPVS programming over the core's ABI (assembly/ipvs/api.ts): virtual
// services and destinations as objects (what ipvsadm -A/-E/-D/-a/-e/-d/-C/-Z/--set take), listing
// (-L, -L -c, --stats/--rate), sysctls, the trace, and `apply`, which brings the core to a desired
// set of services with the fewest add / edit / delete calls (partial sync), or `applyChanges`, the
// same for a named subset of services (reading back only those). Works with any module
// that has the ipvs* exports — the shipped core or the unit-test build. Records come back through
// the core's exchange buffer; the byte layouts are documented in api.ts and decoded here.
// Never touches packets, files or the network; throws IpvsError for a refused call.
import { ipWords, wordsIP } from '../core/words.js';
import { parseIP, formatIP, said } from '../core/packet.js';

export const SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'sed', 'nq', 'fo', 'ovf', 'lblc', 'lblcr', 'dh', 'sh', 'mh', 'twos'] as const;
export type Scheduler = (typeof SCHEDULERS)[number];
/** A scheduler this IPVS has (ipvsadm's names). */
export const isScheduler = (name: string): name is Scheduler => (SCHEDULERS as readonly string[]).includes(name);
/** Forwarding methods, valued as IP_VS_CONN_F_MASQ / LOCALNODE / TUNNEL / DROUTE. */
export const FORWARDING = { masq: 0, local: 1, tunnel: 2, droute: 3 } as const;
export type Forwarding = keyof typeof FORWARDING;
export type Protocol = 'tcp' | 'udp' | 'sctp';
const PROTO_NUM: Record<Protocol, number> = { tcp: 6, udp: 17, sctp: 132 };
/** IPVS's own TCP states (ip_vs.h IP_VS_TCP_S_*); UDP/SCTP entries show UDP / SCTP. */
export const TCP_STATES = ['NONE', 'ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT', 'TIME_WAIT', 'CLOSE',
  'CLOSE_WAIT', 'LAST_ACK', 'LISTEN', 'SYNACK'] as const;
/** Service flag bits (uapi ip_vs.h IP_VS_SVC_F_*). */
export const SVC_FLAGS = { persistent: 0x1, onePacket: 0x4, sched1: 0x8, sched2: 0x10, sched3: 0x20 } as const;
export type SchedFlag = 'sh-fallback' | 'sh-port' | 'mh-fallback' | 'mh-port' | 'flag-1' | 'flag-2' | 'flag-3';
const SCHED_FLAG_BITS: Record<SchedFlag, number> = {
  'sh-fallback': 0x8, 'sh-port': 0x10, 'mh-fallback': 0x8, 'mh-port': 0x10, 'flag-1': 0x8, 'flag-2': 0x10, 'flag-3': 0x20,
};
export const SYSCTLS = {
  conn_reuse_mode: 0, expire_nodest_conn: 1, expire_quiescent_template: 2, sloppy_tcp: 3,
  lblc_expiration: 4, lblcr_expiration: 5, conntrack: 6,
  /** svcplane's own: affinity ends at the persistence timeout (assembly/ipvs/defs.ts SYS_PERSIST_STRICT). */
  persist_strict: 7,
} as const;
export type Sysctl = keyof typeof SYSCTLS;
/** IPVS's own counters, in the order of assembly/ipvs/defs.ts IC_*. */
export const COUNTERS = ['packets', 'conn_new', 'template_new', 'conn_expired', 'one_packet', 'no_dest',
  'table_full', 'dest_unavailable', 'not_scheduled', 'too_big', 'reused', 'out_packets', 'template_invalid',
  'no_tunnel_source'] as const;
export const ERRORS: Record<number, string> = {
  [-1]: 'invalid argument', [-2]: 'already exists', [-3]: 'no such service or destination',
  [-4]: 'no room left (the pool is at its limit)', [-5]: 'IPVS not initialised', [-6]: 'address family not supported for this forwarding method',
};
export const TRACE_KINDS = ['none', 'connection', 'template', 'scheduler', 'odds', 'no-destination'] as const;
export type TraceKind = (typeof TRACE_KINDS)[number];
const NIL = 0xffffffff;

/** Told of each real server a sync's add refused (the sync goes on without it). */
export type RefusedDest = (service: DesiredService, dest: Destination, error: IpvsError) => void;
// ipvs/defs.ts E_INVAL.
const E_INVAL = -1;

export class IpvsError extends Error {
  constructor(readonly code: number, what: string) {
    super(`${what}: ${ERRORS[code] ?? `error ${code}`}`);
  }
}

type Fn = (...a: number[]) => number;
/** The raw exports this module needs (a subset of the core's ABI). */
/** A snapshot record of a persistence template (flags at byte 4, IP_VS_CONN_F_TEMPLATE). */
const isTemplateRecord = (rec: Uint8Array): boolean => ((rec[4]! | (rec[5]! << 8)) & 0x1000) !== 0;

export interface IpvsCore {
  memory: WebAssembly.Memory;
  [name: string]: Fn | WebAssembly.Memory;
}

export interface VirtualService {
  /** Address:port services: protocol, address, port (0 = all ports; needs persistence). */
  protocol?: Protocol;
  address?: string;
  port?: number;
  /** Firewall-mark services instead (family from `family`, default 4). */
  fwmark?: number;
  family?: 4 | 6;
  scheduler?: Scheduler;              // ipvsadm's default: wlc
  persistent?: number;                // -p seconds (ipvsadm's default when given without a value: 360, IPVS_SVC_PERSISTENT_TIMEOUT)
  netmask?: string | number;          // -M: IPv4 dotted mask, IPv6 prefix length
  onePacket?: boolean;                // -o
  schedFlags?: SchedFlag[];           // -b
  mhTableSize?: number;               // a prime from ip_vs_mh.c primes[] (default 4093)
}
/** A tunnel destination's encapsulation (ipvsadm --tun-type/--tun-port/--tun-*csum). */
export interface Tunnel {
  type: 'ipip' | 'gue' | 'gre';
  /** GUE: the UDP destination port (required). */
  port?: number;
  /** GUE/GRE checksum: none (default), computed, or remote checksum offload (GUE). */
  checksum?: 'nocsum' | 'csum' | 'remcsum';
}
const TUN_TYPES = ['ipip', 'gue', 'gre'] as const;
const TUN_CSUM = ['nocsum', 'csum', 'remcsum'] as const;

/** `table[key]`, or an Error naming `what` and the known keys (never a silent undefined, read as 0). */
function known<K extends string>(table: Record<K, number>, key: unknown, what: string): number {
  if (typeof key === 'string' && Object.hasOwn(table, key)) return table[key as K];
  throw new Error(`unknown ${what} ${said(key)} (${Object.keys(table).join(', ')})`);
}

/** ipvsSetDestTunnel's arguments for `t` (type, port, checksum); null when the destination needs no call. */
function tunnelArgs(t: Tunnel | undefined): [number, number, number] | null {
  if (!t || (t.type === 'ipip' && !t.port && (t.checksum ?? 'nocsum') === 'nocsum')) return null;
  const type = TUN_TYPES.indexOf(t.type), csum = TUN_CSUM.indexOf(t.checksum ?? 'nocsum');
  if (type < 0 || csum < 0) throw new Error(`unknown tunnel ${type < 0 ? `type ${String(t.type)}` : `checksum ${String(t.checksum)}`}`);
  return [type, t.port ?? 0, csum];
}

export interface Destination {
  address: string;
  port: number;
  forwarding?: Forwarding;            // ipvsadm's default: droute (-g)
  tunnel?: Tunnel;                    // with forwarding 'tunnel'; default IPIP
  weight?: number;                    // 0..65535, default 1
  upperThreshold?: number;            // -x, 0 = none
  lowerThreshold?: number;            // -y, 0 = none
}
export interface ServiceInfo extends Required<Pick<VirtualService, 'scheduler' | 'onePacket' | 'schedFlags'>> {
  id: number; family: 4 | 6; protocol: Protocol | undefined; address: string | undefined; port: number;
  fwmark: number; persistent: number | undefined; netmask: string | number; mhTableSize: number;
  flags: number; destinations: DestInfo[];
}
/** A service's id and what orders ipvsadm's listing of it (ServiceInfo without the rest). */
export type ServiceHead = Pick<ServiceInfo, 'id' | 'family' | 'protocol' | 'address' | 'port' | 'fwmark'>;
export interface DestInfo {
  id: number; service: number; family: 4 | 6; address: string; port: number; forwarding: Forwarding; weight: number;
  lastWeight: number; upperThreshold: number; lowerThreshold: number; activeConns: number; inactConns: number;
  persistConns: number; available: boolean; overloaded: boolean; trashed: boolean; tunnel: Required<Tunnel>;
}
export interface Stats {
  conns: bigint; inpkts: bigint; outpkts: bigint; inbytes: bigint; outbytes: bigint;
  cps: bigint; inpps: bigint; outpps: bigint; inbps: bigint; outbps: bigint;
}
export interface ConnInfo {
  index: number; protocol: Protocol | 'ip'; template: boolean; state: string; expireMs: number; timeoutMs: number;
  forwarding: Forwarding; flags: number; client: string; clientPort: number; virtual: string; virtualPort: number;
  destination: string; destinationPort: number; destId: number; control: number;
}
export interface TraceResult {
  kind: TraceKind; service: number | undefined; entry: number | undefined;
  choices: { destId: number; address: string; port: number; probability: number }[];
}
export interface DesiredService extends VirtualService { destinations: Destination[] }
/** What names a virtual service: protocol, address and port, or fwmark and family. */
export type ServiceKey = Pick<VirtualService, 'protocol' | 'address' | 'port' | 'fwmark' | 'family'>;

/** One string per virtual service, the same however its address is spelled. */
export function serviceKey(v: ServiceKey): string {
  return v.fwmark ? `fwm/${v.family ?? 4}/${v.fwmark}` : `${v.protocol}/${formatIP(parseIP(v.address ?? '0.0.0.0'))}/${v.port}`;
}
const liveKey = (s: ServiceInfo): ServiceKey => ({ ...s, address: s.address ?? undefined, protocol: s.protocol ?? undefined });

const PROTO_NAME: Record<number, Protocol> = { 6: 'tcp', 17: 'udp', 132: 'sctp' };
const FWD_NAME = Object.fromEntries(Object.entries(FORWARDING).map(([k, v]) => [v, k])) as Record<number, Forwarding>;

function words(text: string): { family: 4 | 6; w: [number, number, number, number] } {
  const b = parseIP(text);
  return { family: b.length === 4 ? 4 : 6, w: ipWords(b) };
}

export class IpvsProgram {
  constructor(readonly core: IpvsCore) {}

  private fn(name: string): Fn {
    const f = this.core[name];
    if (typeof f !== 'function') throw new Error(`core has no export ${name}`);
    return f as Fn;
  }
  private call(what: string, name: string, ...args: number[]): number {
    // The core's parameters are 32-bit integers (a trace's last, the clock, any finite number):
    // a JavaScript caller's NaN, fraction, BigInt or 2^32 + 1 would be wrapped without a word.
    for (let k = 0; k < args.length; k++) {
      const v = args[k];
      if (v === undefined) args[k] = 0;
      else if (typeof v !== 'number' || !(name === 'ipvsTrace' && k === args.length - 1 ? Number.isFinite(v) : Number.isInteger(v) && v >= -0x80000000 && v <= 0xffffffff)) {
        throw new Error(`${what}: ${typeof v === 'number' ? v : `a ${typeof v}`} where a 32-bit integer goes (argument ${k + 1})`);
      }
    }
    const r = this.fn(name)(...args);
    if (r < 0) throw new IpvsError(r, what);
    return r;
  }
  private dv(): DataView { return new DataView(this.core.memory.buffer); }
  private buf(): number { return this.fn('ipvsBufPtr')(); }

  /** Sizes the tables (connections = 2^connLog2). A core already initialised is left as it is. */
  init(opts: { connLog2?: number; services?: number; destinations?: number; seed?: number } = {}): void {
    if (this.fn('ipvsIsReady')()) return;
    this.call('init', 'ipvsInit', opts.connLog2 ?? 16, opts.services ?? 4096, opts.destinations ?? 65536, opts.seed ?? 0);
  }

  private serviceArgs(vs: VirtualService): { flags: number; timeout: number; netmask: number; sched: number; param: number } {
    const sched = SCHEDULERS.indexOf(vs.scheduler ?? 'wlc');
    if (sched < 0) throw new Error(`unknown scheduler ${String(vs.scheduler)}`);
    let flags = 0;
    if (vs.persistent !== undefined) flags |= SVC_FLAGS.persistent;
    if (vs.onePacket) flags |= SVC_FLAGS.onePacket;
    for (const f of vs.schedFlags ?? []) flags |= known(SCHED_FLAG_BITS, f, 'scheduler flag');
    const family = vs.fwmark ? (vs.family ?? 4) : words(vs.address ?? '0.0.0.0').family;
    let netmask: number;
    if (family === 6) netmask = typeof vs.netmask === 'number' ? vs.netmask : 128;
    else netmask = ipWords(parseIP(typeof vs.netmask === 'string' ? vs.netmask : '255.255.255.255'))[0];
    return { flags, timeout: vs.persistent ?? 0, netmask, sched, param: vs.mhTableSize ?? 0 };
  }

  /** ipvsadm -A. Returns the service id. */
  addService(vs: VirtualService): number {
    const a = this.serviceArgs(vs);
    if (vs.fwmark) {
      return this.call('add service', 'ipvsAddService', vs.family ?? 4, 0, 0, 0, 0, 0, 0, vs.fwmark, a.sched, a.flags, a.timeout, a.netmask, a.param);
    }
    if (!vs.protocol || vs.address === undefined || vs.port === undefined) throw new Error('a service needs protocol, address and port, or fwmark');
    const { family, w } = words(vs.address);
    return this.call('add service', 'ipvsAddService', family, known(PROTO_NUM, vs.protocol, 'protocol'), ...w, vs.port, 0, a.sched, a.flags, a.timeout, a.netmask, a.param);
  }
  /** ipvsadm -E: scheduler, flags, persistence and netmask of service `id`. */
  editService(id: number, vs: VirtualService): void {
    const a = this.serviceArgs(vs);
    this.call('edit service', 'ipvsEditService', id, a.sched, a.flags, a.timeout, a.netmask, a.param);
  }
  deleteService(id: number): void { this.call('delete service', 'ipvsDeleteService', id); }
  findService(key: Pick<VirtualService, 'protocol' | 'address' | 'port' | 'fwmark' | 'family'>): number | undefined {
    let r: number;
    if (key.fwmark) r = this.fn('ipvsFindService')(key.family ?? 4, 0, 0, 0, 0, 0, 0, key.fwmark);
    else {
      const { family, w } = words(key.address ?? '0.0.0.0');
      r = this.fn('ipvsFindService')(family, PROTO_NUM[key.protocol ?? 'tcp'], ...w, key.port ?? 0, 0);
    }
    return r < 0 ? undefined : r;
  }
  flush(): void { this.call('flush', 'ipvsFlush'); }
  /** Removes every connection and template (ABI.md ipvsConnDropAll). Returns how many. */
  dropConnections(nowMs: number): number { return this.fn('ipvsConnDropAll')(nowMs) >>> 0; }

  /** ipvsadm -a. Returns the destination id. */
  addDest(svc: number, d: Destination): number {
    const { family, w } = words(d.address);
    const tunnel = tunnelArgs(d.tunnel);   // checked before the destination is added
    const id = this.call('add destination', 'ipvsAddDest', svc, family, ...w, d.port, known(FORWARDING, d.forwarding ?? 'droute', 'forwarding'),
      d.weight ?? 1, d.upperThreshold ?? 0, d.lowerThreshold ?? 0);
    try {
      if (tunnel) this.call('set tunnel', 'ipvsSetDestTunnel', id, ...tunnel);
    } catch (e) {
      this.call('delete destination', 'ipvsDeleteDest', svc, id);   // refused whole, as ipvsadm -a
      throw e;
    }
    return id;
  }
  private setTunnel(dest: number, t: Tunnel | undefined): void {
    const tunnel = tunnelArgs(t);
    if (tunnel) this.call('set tunnel', 'ipvsSetDestTunnel', dest, ...tunnel);
  }
  /** ipvsadm -e. */
  editDest(svc: number, dest: number, d: Omit<Destination, 'address' | 'port'>): void {
    this.call('edit destination', 'ipvsEditDest', svc, dest, known(FORWARDING, d.forwarding ?? 'droute', 'forwarding'), d.weight ?? 1,
      d.upperThreshold ?? 0, d.lowerThreshold ?? 0);
    this.setTunnel(dest, d.tunnel);
  }
  deleteDest(svc: number, dest: number): void { this.call('delete destination', 'ipvsDeleteDest', svc, dest); }
  findDest(svc: number, address: string, port: number): number | undefined {
    const { family, w } = words(address);
    const r = this.fn('ipvsFindDest')(svc, family, ...w, port);
    return r < 0 ? undefined : r;
  }

  /** ipvsadm -Z: one service, or everything. */
  zero(svc?: number): void { this.call('zero', 'ipvsZero', svc ?? NIL); }
  /** ipvsadm --set tcp tcpfin udp (seconds; 0 or absent leaves one unchanged). */
  setTimeouts(t: { tcp?: number; tcpfin?: number; udp?: number }): void {
    this.call('set timeouts', 'ipvsSetTimeouts', t.tcp ?? 0, t.tcpfin ?? 0, t.udp ?? 0);
  }
  timeouts(): { tcp: number; tcpfin: number; udp: number } {
    const g = this.fn('ipvsGetTimeout');
    return { tcp: g(0) / 1000, tcpfin: g(1) / 1000, udp: g(2) / 1000 };
  }
  setSysctl(name: Sysctl, value: number): void { this.call(`sysctl ${name}`, 'ipvsSetSysctl', known(SYSCTLS, name, 'sysctl'), value); }
  /** The outer source address of IPIP packets for its family. */
  setTunnelSource(address: string): void {
    const { family, w } = words(address);
    this.call('tunnel source', 'ipvsSetTunnelSource', family, ...w);
  }

  private readAddr(at: number, family: number): string {
    const dv = this.dv();
    return formatIP(wordsIP(family, [0, 4, 8, 12].map((o) => dv.getUint32(at + o, true))));
  }

  dest(id: number): DestInfo {
    if (this.fn('ipvsDestInfo')(id) === 0) throw new IpvsError(-3, `destination ${id}`);
    const b = this.buf(), dv = this.dv();
    const family = dv.getUint8(b) as 4 | 6, flags = dv.getUint32(b + 32, true);
    return {
      id, service: dv.getUint32(b + 48, true), family, address: this.readAddr(b + 8, family), port: dv.getUint16(b + 2, true),
      forwarding: FWD_NAME[dv.getUint8(b + 1)]!, weight: dv.getInt32(b + 4, true), lastWeight: dv.getInt32(b + 56, true),
      upperThreshold: dv.getUint32(b + 24, true), lowerThreshold: dv.getUint32(b + 28, true),
      activeConns: dv.getUint32(b + 36, true), inactConns: dv.getUint32(b + 40, true), persistConns: dv.getUint32(b + 44, true),
      available: (flags & 1) !== 0, overloaded: (flags & 2) !== 0, trashed: (flags & 0x100) !== 0,
      tunnel: this.tunnelOf(dv.getUint32(b + 60, true)),
    };
  }

  private tunnelOf(word: number): Required<Tunnel> {
    return { type: TUN_TYPES[word & 0xff] ?? 'ipip', port: word >>> 16, checksum: TUN_CSUM[(word >>> 8) & 0xff] ?? 'nocsum' };
  }

  service(id: number): ServiceInfo {
    if (this.fn('ipvsServiceInfo')(id) === 0) throw new IpvsError(-3, `service ${id}`);
    const b = this.buf(), dv = this.dv();
    const family = dv.getUint8(b) as 4 | 6, proto = dv.getUint8(b + 1), fwmark = dv.getUint32(b + 4, true);
    // Without IP_VS_SVC_F_HASHED, which the core manages.
    const flags = dv.getUint32(b + 28, true) & ~0x2, sched = SCHEDULERS[dv.getUint8(b + 24)]!;
    const netmaskRaw = dv.getUint32(b + 36, true), first = dv.getUint32(b + 48, true);
    const schedFlags: SchedFlag[] = [];
    const prefix = sched === 'mh' ? 'mh' : 'sh';
    if (flags & 0x8) schedFlags.push(sched === 'sh' || sched === 'mh' ? `${prefix}-fallback` as SchedFlag : 'flag-1');
    if (flags & 0x10) schedFlags.push(sched === 'sh' || sched === 'mh' ? `${prefix}-port` as SchedFlag : 'flag-2');
    if (flags & 0x20) schedFlags.push('flag-3');
    const info: ServiceInfo = {
      id, family, protocol: fwmark ? undefined : PROTO_NAME[proto], address: fwmark ? undefined : this.readAddr(b + 8, family),
      port: dv.getUint16(b + 2, true), fwmark, scheduler: sched, flags,
      persistent: flags & SVC_FLAGS.persistent ? dv.getUint32(b + 32, true) / 1000 : undefined,
      netmask: family === 6 ? netmaskRaw : formatIP(wordsIP(4, [netmaskRaw])), onePacket: (flags & SVC_FLAGS.onePacket) !== 0,
      schedFlags, mhTableSize: dv.getUint32(b + 44, true), destinations: [],
    };
    for (let d = first; d !== NIL;) {
      const di = this.dest(d);
      info.destinations.push(di);
      d = this.dv().getUint32(this.buf() + 52, true);
    }
    return info;
  }

  /**
   * Every service's id (id order) with what ipvsadm sorts its listing by, its destinations not
   * read: a listing of 20,000 services then reads each one's whole only when it prints it.
   */
  serviceHeads(): ServiceHead[] {
    const out: ServiceHead[] = [];
    const next = this.fn('ipvsServiceNext'), info = this.fn('ipvsServiceInfo');
    for (let s = next(0) >>> 0; s !== NIL; s = next(s + 1) >>> 0) {
      if (info(s) === 0) continue;
      const b = this.buf(), dv = this.dv();
      const family = dv.getUint8(b) as 4 | 6, fwmark = dv.getUint32(b + 4, true);
      out.push({ id: s, family, protocol: fwmark ? undefined : PROTO_NAME[dv.getUint8(b + 1)], address: fwmark ? undefined : this.readAddr(b + 8, family), port: dv.getUint16(b + 2, true), fwmark });
    }
    return out;
  }

  /** ipvsadm -L: every service (id order) with its destinations in the kernel's list order; with
   *  `family`, only the services of that family. */
  services(family?: 4 | 6): ServiceInfo[] {
    const out: ServiceInfo[] = [];
    const next = (from: number) => this.fn('ipvsServiceNext')(from) >>> 0;
    const info = this.fn('ipvsServiceInfo');
    for (let s = next(0); s !== NIL; s = next(s + 1)) {
      if (family !== undefined && info(s) !== 0 && this.dv().getUint8(this.buf()) !== family) continue;
      out.push(this.service(s));
    }
    return out;
  }

  private readStats(n: number): Stats {
    if (n === 0) throw new IpvsError(-3, 'stats');
    const b = this.buf(), dv = this.dv();
    const u = (k: number) => dv.getBigUint64(b + 8 * k, true);
    return { conns: u(0), inpkts: u(1), outpkts: u(2), inbytes: u(3), outbytes: u(4), cps: u(5), inpps: u(6), outpps: u(7), inbps: u(8), outbps: u(9) };
  }
  /** --stats / --rate of a service, or the totals. */
  stats(svc: number | 'total'): Stats { return this.readStats(this.fn('ipvsServiceStats')(svc === 'total' ? NIL : svc)); }
  destStats(dest: number): Stats { return this.readStats(this.fn('ipvsDestStats')(dest)); }

  /** ipvsadm -L -c: every entry, templates included. */
  connections(nowMs: number): ConnInfo[] {
    const out: ConnInfo[] = [];
    const next = (from: number) => this.fn('ipvsConnNext')(from) >>> 0, info = this.fn('ipvsConnInfo');
    for (let i = next(0); i !== NIL; i = next(i + 1)) {
      if (info(i, nowMs) === 0) continue;
      const b = this.buf(), dv = this.dv();
      const family = dv.getUint8(b), proto = dv.getUint8(b + 1), stateNum = dv.getUint8(b + 2);
      const flags = dv.getUint16(b + 4, true), template = (flags & 0x1000) !== 0;
      const state = template ? 'NONE' : proto === 6 ? (TCP_STATES[stateNum] ?? 'ERR!') : proto === 132 ? 'SCTP' : 'UDP';
      out.push({
        index: i, protocol: PROTO_NAME[proto] ?? 'ip', template, state, expireMs: dv.getUint32(b + 12, true),
        timeoutMs: dv.getUint32(b + 72, true), forwarding: FWD_NAME[dv.getUint8(b + 3)]!, flags,
        client: this.readAddr(b + 16, family), clientPort: dv.getUint16(b + 6, true),
        virtual: this.readAddr(b + 32, family), virtualPort: dv.getUint16(b + 8, true),
        destination: this.readAddr(b + 48, dv.getUint8(b + 77) || family), destinationPort: dv.getUint16(b + 10, true),
        destId: dv.getUint32(b + 64, true), control: dv.getUint32(b + 68, true),
      });
    }
    return out;
  }

  /**
   * Every live connection and template as snapshot records (assembly/ipvs/snapshot.ts), templates
   * first, so that loading them elsewhere links each connection to its template; read a slice at a
   * time: each call of the step reads up to `max` entries, hands `out` each record (a view of core
   * memory: copy it before the next call) and says when all are read. Two walks of the table: the
   * templates, then the connections.
   */
  saveConnectionSteps(nowMs: number, out: (rec: Uint8Array) => void): (max: number) => boolean {
    const next = this.fn('ipvsConnNext'), save = this.fn('ipvsConnSave');
    let templates = true;
    let i = next(0) >>> 0;
    return (max) => {
      for (let k = 0; k < max; k++) {
        if (i === NIL) {
          if (!templates) return true;
          templates = false;
          i = next(0) >>> 0;
          if (i === NIL) return true;
        }
        const b = this.buf();
        const n = save(i, b, nowMs);
        if (n !== 0) {
          const rec = new Uint8Array(this.core.memory.buffer, b, n);
          if (isTemplateRecord(rec) === templates) out(rec);
        }
        i = next(i + 1) >>> 0;
      }
      return i === NIL && !templates;
    };
  }

  /**
   * Loads records saveConnectionSteps wrote (in its order) at the clock `nowMs`. A connection whose
   * template was loaded (now, or by an earlier call given the same `templates` map: saved template
   * id → entry id) is linked to it.
   * Returns how many were loaded and the records whose virtual service or destination is not here
   * (yet); records that are malformed, already here or do not fit are dropped.
   */
  loadConnections(records: Uint8Array[], nowMs: number, templates = new Map<number, number>()): { loaded: number; missing: Uint8Array[] } {
    const load = this.fn('ipvsConnLoad'), bytes = this.fn('ipvsConnRecordBytes')();
    const missing: Uint8Array[] = [];
    let loaded = 0;
    for (const rec of records) {
      if (rec.length !== bytes) continue;
      const dv = new DataView(rec.buffer, rec.byteOffset, rec.length);
      const savedTemplate = dv.getUint32(100, true);
      const template = isTemplateRecord(rec) ? NIL : (templates.get(savedTemplate) ?? NIL);
      new Uint8Array(this.core.memory.buffer).set(rec, this.buf());
      const r = load(this.buf(), nowMs, template);
      if (r >= 0) {
        loaded++;
        if (isTemplateRecord(rec)) templates.set(dv.getUint32(96, true), r >>> 0);
      } else if (r === -3) {
        missing.push(rec);
      }
    }
    return { loaded, missing };
  }

  /** Where a new connection from this client would go, and how likely, without changing anything. */
  trace(c: { protocol: Protocol; src: string; sport: number; dst: string; dport: number; fwmark?: number }, nowMs: number): TraceResult {
    const s = words(c.src), d = words(c.dst);
    const n = this.call('trace', 'ipvsTrace', s.family, known(PROTO_NUM, c.protocol, 'protocol'), ...s.w, c.sport, ...d.w, c.dport, c.fwmark ?? 0, nowMs);
    const b = this.fn('ipvsTraceBuf')();
    const kind = TRACE_KINDS[this.dv().getUint32(b, true)]!;
    const svc = this.dv().getUint32(b + 4, true), entry = this.dv().getUint32(b + 8, true);
    const choices: TraceResult['choices'] = [];
    for (let k = 0; k < n; k++) {
      const dv = this.dv();
      const destId = dv.getUint32(b + 16 + 16 * k, true), probability = dv.getFloat64(b + 24 + 16 * k, true);
      const di = this.dest(destId);
      choices.push({ destId, address: di.address, port: di.port, probability });
    }
    return { kind, service: svc === NIL ? undefined : svc, entry: entry === NIL ? undefined : entry, choices };
  }

  expire(nowMs: number, budget = 1 << 20): number { return this.fn('ipvsExpire')(nowMs, budget); }
  tick(nowMs: number): number { return this.fn('ipvsTick')(nowMs); }
  counters(): Record<(typeof COUNTERS)[number], bigint> {
    const p = this.fn('ipvsCountersPtr')(), dv = this.dv();
    return Object.fromEntries(COUNTERS.map((n, i) => [n, dv.getBigUint64(p + 8 * i, true)])) as Record<(typeof COUNTERS)[number], bigint>;
  }

  /**
   * Brings the core to exactly `desired`: services and destinations missing are added (destinations
   * in the given order, so the kernel's list holds them newest first), changed ones edited, extra
   * ones deleted; unchanged ones are not touched, so their connections, counters and scheduler state
   * survive. Returns the number of calls made of each kind. With `family`, `desired` is that
   * family's and services of the other family are neither read nor touched (kube-proxy's ipvs
   * proxier, one per family, passes over them: proxier.go cleanLegacyService, "Not our family").
   */
  apply(desired: DesiredService[], family?: 4 | 6, refused?: RefusedDest): { added: number; edited: number; deleted: number } {
    this.checkDesired(desired);
    const tally = { added: 0, edited: 0, deleted: 0 };
    const want = new Map(desired.map((d) => [serviceKey(d), d]));
    const have = new Map(this.services(family).map((s) => [serviceKey(liveKey(s)), s]));
    for (const [k, s] of have) if (!want.has(k)) { this.deleteService(s.id); tally.deleted++; }
    for (const [k, d] of want) this.applyService(d, have.get(k), tally, refused);
    return tally;
  }

  /**
   * What `apply` does for just these services, reading back only them: each of `removed` that
   * exists is deleted, then each of `upserts` is added or brought to its desired state (the same
   * add / edit / delete calls, in the same order, as `apply` makes for it). Every other service is
   * left as it is. Returns the number of calls made of each kind.
   */
  applyChanges(upserts: DesiredService[], removed: ServiceKey[], refused?: RefusedDest): { added: number; edited: number; deleted: number } {
    this.checkDesired(upserts);
    if (!Array.isArray(removed)) throw new Error('applyChanges: removed is a list of service keys');
    const tally = { added: 0, edited: 0, deleted: 0 };
    const want = new Map(upserts.map((d) => [serviceKey(d), d]));
    for (const key of removed) {
      if (want.has(serviceKey(key))) continue;
      const id = this.findService(key);
      if (id !== undefined) { this.deleteService(id); tally.deleted++; }
    }
    for (const d of want.values()) {
      const id = this.findService(d);
      this.applyService(d, id === undefined ? undefined : this.service(id), tally, refused);
    }
    return tally;
  }

  /**
   * Refuses, before the first call into the core, a desired state with a service or destination
   * the calls would refuse by what it says (an address, a name, a number of the wrong kind), so
   * that apply() does not stop part way for it. (The core may still refuse one for its own state,
   * a full table say.)
   */
  private checkDesired(desired: readonly DesiredService[]): void {
    if (!Array.isArray(desired)) throw new Error('the desired services are a list');
    const int = (v: unknown, what: string, max = 0xffffffff) => {
      if (v !== undefined && !(Number.isInteger(v) && (v as number) >= 0 && (v as number) <= max)) throw new Error(`${what} ${said(v)}: an integer 0-${max}`);
    };
    desired.forEach((d, i) => {
      if (d === null || typeof d !== 'object' || !Array.isArray(d.destinations)) throw new Error(`service #${i}: { …, destinations: [] }, not ${said(d)}`);
      this.serviceArgs(d);
      if (!d.fwmark) known(PROTO_NUM, d.protocol, 'protocol');
      int(d.port, 'port', 0xffff);
      int(d.fwmark, 'fwmark');
      for (const dest of d.destinations) {
        if (dest === null || typeof dest !== 'object') throw new Error(`service #${i}: a destination is { address, port, … }, not ${said(dest)}`);
        words(dest.address);
        int(dest.port, 'port', 0xffff);
        int(dest.weight, 'weight', 0xffff);
        known(FORWARDING, dest.forwarding ?? 'droute', 'forwarding');
        tunnelArgs(dest.tunnel);
      }
    });
  }

  /** One service of `apply`: added when `cur` is absent, else edited; its destinations by difference. */
  private applyService(d: DesiredService, cur: ServiceInfo | undefined, tally: { added: number; edited: number; deleted: number }, refused?: RefusedDest): void {
    // A service just added has no destinations: nothing to read back but its id.
    let id: number;
    let have: readonly DestInfo[] = [];
    if (!cur) { id = this.addService(d); tally.added++; }
    else {
      id = cur.id;
      have = cur.destinations;
      const a = this.serviceArgs(d);
      const curMask = typeof cur.netmask === 'number' ? cur.netmask : ipWords(parseIP(cur.netmask))[0];
      if (SCHEDULERS.indexOf(cur.scheduler) !== a.sched || cur.flags !== a.flags || (cur.persistent ?? 0) !== a.timeout ||
          curMask !== a.netmask || cur.mhTableSize !== a.param) { this.editService(cur.id, d); tally.edited++; }
    }
    const dkey = (x: { address: string; port: number }) => `${formatIP(parseIP(x.address))}:${x.port}`;
    const wantD = new Map(d.destinations.map((x) => [dkey(x), x]));
    const haveD = new Map(have.map((x) => [dkey(x), x]));
    for (const [dk, x] of haveD) if (!wantD.has(dk)) { this.deleteDest(id, x.id); tally.deleted++; }
    for (const [dk, x] of wantD) {
      const h = haveD.get(dk);
      if (!h) {
        // One real server the kernel refuses (ip_vs_new_dest: not unicast) fails that call alone:
        // kube-proxy logs it and goes on with the others.
        try { this.addDest(id, x); tally.added++; } catch (e) {
          if (!(e instanceof IpvsError && e.code === E_INVAL && refused)) throw e;
          refused(d, x, e);
        }
        continue;
      }
      const t = x.tunnel;
      if (h.forwarding !== (x.forwarding ?? 'droute') || h.weight !== (x.weight ?? 1) ||
          h.upperThreshold !== (x.upperThreshold ?? 0) || h.lowerThreshold !== (x.lowerThreshold ?? 0) ||
          h.tunnel.type !== (t?.type ?? 'ipip') || h.tunnel.port !== (t?.port ?? 0) || h.tunnel.checksum !== (t?.checksum ?? 'nocsum')) {
        this.editDest(id, h.id, x);
        tally.edited++;
      }
    }
  }
}
