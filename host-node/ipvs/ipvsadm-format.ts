// ipvs/ipvsadm-format.ts — ipvsadm 1.31's output, byte for byte: the `-L` table and its --stats /
// --rate / --thresholds / --persistent-conn / --tun-info variants (ipvsadm.c print_title,
// print_service_entry, print_largenum, print_sched_flags), the `-S` rules (the same function with
// FMT_RULE), `-L -c` (list_conn / print_conn over /proc/net/ip_vs_conn) and `--timeout`, with
// libipvs's sort order (ipvs_cmp_services / ipvs_cmp_dests under glibc's merge-sort qsort).
// Addresses and ports are always printed numerically: ipvsadm without -n asks the resolver, we
// never do. Never changes IPVS state.
import { parseIP } from '../core/packet.js';
import type { ServiceInfo, ServiceHead, DestInfo, Stats, ConnInfo, Forwarding } from './program.js';

export interface Format {
  rule?: boolean; stats?: boolean; rate?: boolean; thresholds?: boolean; persistentConn?: boolean;
  tunInfo?: boolean; nosort?: boolean; exact?: boolean;
}
export interface ServiceRow { info: ServiceInfo; stats?: Stats; destStats?: Map<number, Stats> }

const PROTO_FLAG: Record<string, string> = { tcp: '-t', udp: '-u', sctp: '--sctp-service' };
const FWD_NAME: Record<Forwarding, string> = { masq: 'Masq', local: 'Local', tunnel: 'Tunnel', droute: 'Route' };
// fwd_switch(): a local-node destination is saved as -g (the kernel picks Local by itself).
const FWD_SWITCH: Record<Forwarding, string> = { masq: '-m', local: '-g', tunnel: '-i', droute: '-g' };
const AF: Record<4 | 6, number> = { 4: 2, 6: 10 };   // AF_INET, AF_INET6: the sort compares these
const PROTO_NUM: Record<string, number> = { tcp: 6, udp: 17, sctp: 132 };

const padEnd = (s: string, n: number) => s.padEnd(n);
const padStart = (s: string, n: number) => s.padStart(n);

/** addrport_to_anyname() with FMT_NUMERIC: IPv6 in brackets. */
export function addrPort(family: 4 | 6, address: string, port: number): string {
  return family === 4 ? `${address}:${port}` : `[${address}]:${port}`;
}

/** print_largenum(): 9 columns, or K/M/G/T past 100 million; --exact widens instead. */
export function largenum(i: bigint, exact: boolean): string {
  if (exact) {
    const s = i.toString();
    return padStart(s, s.length <= 8 ? 9 : s.length + 1);
  }
  if (i < 100000000n) return padStart(i.toString(), 9);
  if (i < 1000000000n) return `${padStart((i / 1000n).toString(), 8)}K`;
  if (i < 100000000000n) return `${padStart((i / 1000000n).toString(), 8)}M`;
  if (i < 100000000000000n) return `${padStart((i / 1000000000n).toString(), 8)}G`;
  return `${padStart((i / 1000000000000n).toString(), 8)}T`;
}

/** print_sched_flags(): named for sh and mh (their third flag has no name: flag-3), flag-N for the others. */
function schedFlags(s: ServiceInfo): string {
  const out: string[] = [];
  if (s.scheduler === 'sh' || s.scheduler === 'mh') {
    if (s.flags & 0x8) out.push(`${s.scheduler}-fallback`);
    if (s.flags & 0x10) out.push(`${s.scheduler}-port`);
    // Taken by -b with these schedulers too: written, so that -S output restores whole.
    if (s.flags & 0x20) out.push('flag-3');
  } else {
    if (s.flags & 0x8) out.push('flag-1');
    if (s.flags & 0x10) out.push('flag-2');
    if (s.flags & 0x20) out.push('flag-3');
  }
  return out.join(',');
}

export function title(f: Format): string {
  const h = padEnd('Prot LocalAddress:Port', 33);
  const sub = '  -> RemoteAddress:Port\n';
  if (f.stats) return `${h} ${['Conns', 'InPkts', 'OutPkts', 'InBytes', 'OutBytes'].map((x) => padStart(x, 8)).join(' ')}\n${sub}`;
  if (f.rate) return `${h} ${['CPS', 'InPPS', 'OutPPS', 'InBPS', 'OutBPS'].map((x) => padStart(x, 8)).join(' ')}\n${sub}`;
  if (f.thresholds) return `${h} ${['Uthreshold', 'Lthreshold', 'ActiveConn', 'InActConn'].map((x) => padEnd(x, 10)).join(' ')}\n${sub}`;
  if (f.persistentConn) {
    return `${h} ${padEnd('Weight', 9)} ${padEnd('PersistConn', 11)} ${padEnd('ActiveConn', 10)} ${padEnd('InActConn', 10)}\n${sub}`;
  }
  if (f.tunInfo) {
    return 'Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n';
  }
  if (f.rule) return '';
  return 'Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n';
}

function ipv4Mask(mask: string | number): string | undefined {
  return typeof mask === 'string' && mask !== '255.255.255.255' ? mask : undefined;
}

/** print_service_entry(): the service line, then its destinations (sorted unless --nosort). */
export function serviceEntry(row: ServiceRow, f: Format): string {
  const s = row.info;
  let name: string;
  if (s.fwmark) {
    name = f.rule ? `-f ${s.fwmark}${s.family === 6 ? ' -6' : ''}` : `FWM  ${s.fwmark}${s.family === 6 ? ' IPv6' : ''}`;
  } else {
    const v = addrPort(s.family, s.address!, s.port);
    if (f.rule) name = `${PROTO_FLAG[s.protocol!] ?? '--xxx-service'} ${v}`;
    else {
      name = `${padEnd(s.protocol ? s.protocol.toUpperCase() : '?', 4)} ${v}`;
      if (s.family !== 6) name = name.slice(0, 33);
    }
  }
  let out = '';
  const sf = schedFlags(s);
  if (f.rule) {
    out += `-A ${name} -s ${s.scheduler}`;
    if (s.persistent !== undefined) {
      out += ` -p ${s.persistent}`;
      const m = s.family === 4 ? ipv4Mask(s.netmask) : s.netmask !== 128 ? String(s.netmask) : undefined;
      if (m) out += ` -M ${m}`;
    }
    if (s.onePacket) out += ' -o';
    if (s.flags & 0x38) out += ` -b ${sf}`;
  } else if (f.stats || f.rate) {
    const st = row.stats!;
    const cols = f.stats ? [st.conns, st.inpkts, st.outpkts, st.inbytes, st.outbytes] : [st.cps, st.inpps, st.outpps, st.inbps, st.outbps];
    out += padEnd(name, 33) + cols.map((c) => largenum(c, !!f.exact)).join('');
  } else {
    out += `${name} ${s.scheduler}`;
    if (s.flags & 0x38) out += ` (${sf})`;
    if (s.persistent !== undefined) {
      out += ` persistent ${s.persistent}`;
      const m = s.family === 4 ? ipv4Mask(s.netmask) : s.netmask !== 128 ? String(s.netmask) : undefined;
      if (m) out += ` mask ${m}`;
    }
    if (s.onePacket) out += ' ops';
  }
  out += '\n';
  const dests = f.nosort ? s.destinations : mergeSort(s.destinations, cmpDests);
  for (const d of dests) out += destLine(name, d, row.destStats?.get(d.id), f);
  return out;
}

function destLine(svcName: string, d: DestInfo, st: Stats | undefined, f: Format): string {
  let dname = addrPort(d.family, d.address, d.port);
  if (!f.rule && d.family !== 6) dname = dname.slice(0, 28);
  if (f.rule) {
    // print_tunnel_rule(): a tunnel destination names its type, GUE its port, GUE/GRE the checksum.
    let tun = '';
    if (d.forwarding === 'tunnel') {
      const t = d.tunnel;
      tun = ` --tun-type ${t.type}` + (t.type === 'gue' ? ` --tun-port ${t.port}` : '') + (t.type !== 'ipip' ? ` --tun-${t.checksum}` : '');
    }
    return `-a ${svcName} -r ${dname} ${FWD_SWITCH[d.forwarding]} -w ${d.weight}${tun}\n`;
  }
  const dn = `  -> ${padEnd(dname, 28)}`;
  if (f.stats) {
    return dn + [st!.conns, st!.inpkts, st!.outpkts, st!.inbytes, st!.outbytes].map((c) => largenum(c, !!f.exact)).join('') + '\n';
  }
  if (f.rate) {
    return `${dn} ${padStart(String(st!.cps), 8)} ${padStart(String(st!.inpps), 8)} ${padStart(String(st!.outpps), 8)}` +
      `${largenum(st!.inbps, !!f.exact)}${largenum(st!.outbps, !!f.exact)}\n`;
  }
  const u = (n: number) => padEnd(String(n >>> 0), 10);
  if (f.thresholds) return `${dn} ${u(d.upperThreshold)} ${u(d.lowerThreshold)} ${u(d.activeConns)} ${u(d.inactConns)}\n`;
  if (f.persistentConn) {
    return `${dn} ${padEnd(String(d.weight), 9)} ${padEnd(String(d.persistConns), 11)} ${u(d.activeConns)} ${u(d.inactConns)}\n`;
  }
  if (f.tunInfo) {
    // fwd_tun_info(): "ipip", "gue:PORT:FLAGS", "gre:FLAGS" with tunflags[] -c / +c / r+c.
    const t = d.tunnel, cs = { nocsum: '-c', csum: '+c', remcsum: 'r+c' }[t.checksum];
    const ti = d.forwarding !== 'tunnel' ? 'n/a' : t.type === 'gue' ? `gue:${t.port}:${cs}` : t.type === 'gre' ? `gre:${cs}` : 'ipip';
    return `${dn} ${padEnd(FWD_NAME[d.forwarding], 7)} ${padEnd(ti, 13)} ${padEnd(String(d.weight), 6)} ${u(d.activeConns)} ${u(d.inactConns)}\n`;
  }
  return `${dn} ${padEnd(FWD_NAME[d.forwarding], 7)} ${padEnd(String(d.weight), 6)} ${u(d.activeConns)} ${u(d.inactConns)}\n`;
}

// ---- sorting (libipvs.c ipvs_cmp_services / ipvs_cmp_dests)

/** An address as four host-order words (IPv4: one). */
function addrWords(address: string): number[] {
  const b = parseIP(address), w: number[] = [];
  for (let i = 0; i < b.length; i += 4) w.push(((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0);
  return w;
}
// The C comparators subtract unsigned words and read the result as an int: addresses more than
// 2^31 apart compare "backwards". That is what ipvsadm prints, so it is what we print.
const diff = (a: number, b: number) => (a - b) | 0;
function cmpWords(af: 4 | 6, x: readonly number[], y: readonly number[]): number {
  if (af === 6) {
    for (let i = 0; i < 4; i++) { const r = diff(x[i] ?? 0, y[i] ?? 0); if (r) return r; }
    return 0;
  }
  return diff(x[0]!, y[0]!);
}
function cmpAddr(af: 4 | 6, a: string, b: string): number {
  return cmpWords(af, addrWords(a), addrWords(b));
}

/**
 * `heads` in list_all()'s order (ipvsadm.c's service comparator, by glibc's merge sort), each
 * address read into words once rather than at every comparison.
 */
export function sortServices<K extends ServiceHead>(heads: readonly K[]): K[] {
  const rows = heads.map((k) => ({ k, w: k.address === undefined ? [] : addrWords(k.address) }));
  return mergeSort(rows, ({ k: a, w: x }, { k: b, w: y }) => diff(a.fwmark, b.fwmark) || AF[a.family] - AF[b.family] ||
    (PROTO_NUM[a.protocol ?? 'tcp'] ?? 0) - (PROTO_NUM[b.protocol ?? 'tcp'] ?? 0) ||
    (a.fwmark ? 0 : cmpWords(a.family, x, y)) || a.port - b.port).map((r) => r.k);
}
function cmpDests(a: DestInfo, b: DestInfo): number {
  return cmpAddr(a.family, a.address, b.address) || a.port - b.port;
}

/**
 * glibc's qsort for arrays that fit in memory (msort.c): a top-down merge sort, halves of n/2
 * and the rest, left first on ties — the same steps, so the same order even where the
 * comparators' wrapping subtraction makes them inconsistent. One scratch array, no copies per level.
 */
export function mergeSort<T>(xs: readonly T[], cmp: (a: T, b: T) => number): T[] {
  const a = xs.slice(), tmp = new Array<T>(a.length);
  const sort = (lo: number, n: number): void => {
    if (n <= 1) return;
    const n1 = n >> 1, mid = lo + n1, end = lo + n;
    sort(lo, n1);
    sort(mid, n - n1);
    let i = lo, j = mid, k = 0;
    while (i < mid && j < end) tmp[k++] = cmp(a[i]!, a[j]!) <= 0 ? a[i++]! : a[j++]!;
    while (i < mid) tmp[k++] = a[i++]!;
    // What is left of the right half is in place already.
    for (let m = 0; m < k; m++) a[lo + m] = tmp[m]!;
  };
  sort(0, a.length);
  return a;
}

// ---- -L -c

const CONN_PROTO: Record<string, string> = { tcp: 'TCP', udp: 'UDP', sctp: 'SCTP', ip: 'IP' };

/** list_conn(): /proc/net/ip_vs_conn reread by print_conn (expiry as mm:ss). */
export function connections(conns: ConnInfo[], families: (c: ConnInfo) => { client: 4 | 6; dest: 4 | 6 }, f: Format): string {
  let out = 'IPVS connection entries\n';
  out += f.persistentConn
    ? `pro expire ${padEnd('state', 11)} ${padEnd('source', 18)} ${padEnd('virtual', 18)} ${padEnd('destination', 18)} ${padEnd('pe name', 16)} pe_data\n`
    : `pro expire ${padEnd('state', 11)} ${padEnd('source', 18)} ${padEnd('virtual', 18)} destination\n`;
  for (const c of conns) {
    const fam = families(c);
    // ip_vs_conn.c: jiffies_to_msecs(expires - jiffies) / 1000 seconds.
    const secs = Math.floor(c.expireMs / 1000);
    const expire = `${String(Math.floor(secs / 60)).padStart(2, '0')}:${String(secs % 60).padStart(2, '0')}`;
    out += `${padEnd(CONN_PROTO[c.protocol] ?? 'IP', 3)} ${padEnd(expire, 6)} ${padEnd(c.state, 11)} ` +
      `${padEnd(addrPort(fam.client, c.client, c.clientPort), 18)} ${padEnd(addrPort(fam.client, c.virtual, c.virtualPort), 18)} ` +
      `${addrPort(fam.dest, c.destination, c.destinationPort)}\n`;
  }
  return out;
}

/** list_timeout(). */
export function timeoutLine(t: { tcp: number; tcpfin: number; udp: number }): string {
  return `Timeout (tcp tcpfin udp): ${Math.floor(t.tcp)} ${Math.floor(t.tcpfin)} ${Math.floor(t.udp)}\n`;
}
