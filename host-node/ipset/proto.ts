// ipset/proto.ts — the names the ipset tool reads and prints for the proto:port part of elements:
// protocol names (netbase's /etc/protocols, which ipset reads through getprotobyname), the ICMP and
// ICMPv6 code names of ipset's lib/icmp.c and lib/icmpv6.c (as `ipset help hash:ip,port` lists
// them; the first name of a type/code is the one printed), and a table of well-known service names
// (/etc/services, TCP and UDP) for ports given by name. Data and lookups only; no file access.

/** /etc/protocols (Debian netbase): number → first name. */
const PROTOCOLS: ReadonlyArray<[number, string]> = [
  [0, 'ip'], [1, 'icmp'], [2, 'igmp'], [3, 'ggp'], [4, 'ipencap'], [5, 'st'], [6, 'tcp'], [8, 'egp'],
  [9, 'igp'], [12, 'pup'], [17, 'udp'], [20, 'hmp'], [22, 'xns-idp'], [27, 'rdp'], [29, 'iso-tp4'],
  [33, 'dccp'], [36, 'xtp'], [37, 'ddp'], [38, 'idpr-cmtp'], [41, 'ipv6'], [43, 'ipv6-route'],
  [44, 'ipv6-frag'], [45, 'idrp'], [46, 'rsvp'], [47, 'gre'], [50, 'esp'], [51, 'ah'], [57, 'skip'],
  [58, 'ipv6-icmp'], [59, 'ipv6-nonxt'], [60, 'ipv6-opts'], [73, 'rspf'], [81, 'vmtp'], [88, 'eigrp'],
  [89, 'ospf'], [93, 'ax.25'], [94, 'ipip'], [97, 'etherip'], [98, 'encap'], [103, 'pim'],
  [108, 'ipcomp'], [112, 'vrrp'], [115, 'l2tp'], [124, 'isis'], [132, 'sctp'], [133, 'fc'],
  [135, 'mobility-header'], [136, 'udplite'], [137, 'mpls-in-ip'], [138, 'manet'], [139, 'hip'],
  [140, 'shim6'], [141, 'wesp'], [142, 'rohc'], [143, 'ethernet'],
];
// Aliases /etc/protocols also lists (second column upper-case names, and `hopopt`).
const PROTO_ALIASES: ReadonlyArray<[string, number]> = [
  ['hopopt', 0], ['IP', 0], ['HOPOPT', 0], ['ICMP', 1], ['IGMP', 2], ['TCP', 6], ['UDP', 17], ['GRE', 47],
  ['ESP', 50], ['AH', 51], ['IPv6-ICMP', 58], ['icmpv6', 58], ['SCTP', 132], ['UDPLite', 136], ['VRRP', 112],
];

const protoByNum = new Map<number, string>(PROTOCOLS);
const protoByName = new Map<string, number>([...PROTOCOLS.map(([n, s]) => [s, n] as [string, number]), ...PROTO_ALIASES]);

export const P_ICMP = 1;
export const P_TCP = 6;
export const P_UDP = 17;
export const P_ICMPV6 = 58;
export const P_SCTP = 132;
export const P_UDPLITE = 136;

/** ip_set_getport.h ip_set_proto_with_ports(). */
export function protoWithPorts(p: number): boolean {
  return p === P_TCP || p === P_UDP || p === P_SCTP || p === P_UDPLITE;
}

/** The name ipset prints for protocol `p` (getprotobynumber), else its number. */
export function protoName(p: number): string {
  return protoByNum.get(p) ?? String(p);
}

/** A protocol by name or number (0..255), or null. */
export function protoByNameOrNumber(s: string): number | null {
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    return n <= 255 ? n : null;
  }
  return protoByName.get(s) ?? null;
}

// lib/icmp.c: name, type, code. The first name of each type/code is the printed one.
const ICMP: ReadonlyArray<[string, number, number]> = [
  ['echo-reply', 0, 0], ['pong', 0, 0], ['network-unreachable', 3, 0], ['host-unreachable', 3, 1],
  ['protocol-unreachable', 3, 2], ['port-unreachable', 3, 3], ['fragmentation-needed', 3, 4],
  ['source-route-failed', 3, 5], ['network-unknown', 3, 6], ['host-unknown', 3, 7],
  ['network-prohibited', 3, 9], ['host-prohibited', 3, 10], ['TOS-network-unreachable', 3, 11],
  ['TOS-host-unreachable', 3, 12], ['communication-prohibited', 3, 13],
  ['host-precedence-violation', 3, 14], ['precedence-cutoff', 3, 15], ['source-quench', 4, 0],
  ['network-redirect', 5, 0], ['host-redirect', 5, 1], ['TOS-network-redirect', 5, 2],
  ['TOS-host-redirect', 5, 3], ['echo-request', 8, 0], ['ping', 8, 0], ['router-advertisement', 9, 0],
  ['router-solicitation', 10, 0], ['ttl-zero-during-transit', 11, 0], ['ttl-zero-during-reassembly', 11, 1],
  ['ip-header-bad', 12, 0], ['required-option-missing', 12, 1], ['timestamp-request', 13, 0],
  ['timestamp-reply', 14, 0], ['address-mask-request', 17, 0], ['address-mask-reply', 18, 0],
];

// lib/icmpv6.c.
const ICMPV6: ReadonlyArray<[string, number, number]> = [
  ['no-route', 1, 0], ['communication-prohibited', 1, 1], ['address-unreachable', 1, 3],
  ['port-unreachable', 1, 4], ['packet-too-big', 2, 0], ['ttl-zero-during-transit', 3, 0],
  ['ttl-zero-during-reassembly', 3, 1], ['bad-header', 4, 0], ['unknown-header-type', 4, 1],
  ['unknown-option', 4, 2], ['echo-request', 128, 0], ['ping', 128, 0], ['echo-reply', 129, 0],
  ['pong', 129, 0], ['router-solicitation', 133, 0], ['router-advertisement', 134, 0],
  ['neighbour-solicitation', 135, 0], ['neigbour-solicitation', 135, 0],
  ['neighbour-advertisement', 136, 0], ['neigbour-advertisement', 136, 0], ['redirect', 137, 0],
];

function table(rows: ReadonlyArray<[string, number, number]>) {
  const byName = new Map<string, number>();
  const byCode = new Map<number, string>();
  for (const [n, t, c] of rows) {
    byName.set(n, (t << 8) | c);
    if (!byCode.has((t << 8) | c)) byCode.set((t << 8) | c, n);
  }
  return { byName, byCode };
}
const icmp4 = table(ICMP);
const icmp6 = table(ICMPV6);

/** An ICMP (v6: ICMPv6) code name → type << 8 | code, or null. */
export function icmpByName(name: string, v6: boolean): number | null {
  return (v6 ? icmp6 : icmp4).byName.get(name) ?? null;
}

/** The printed form of an ICMP type << 8 | code: its first name, else `type/code`. */
export function icmpText(port: number, v6: boolean): string {
  return (v6 ? icmp6 : icmp4).byCode.get(port) ?? `${port >> 8}/${port & 0xff}`;
}

// /etc/services (Debian netbase), the well-known TCP/UDP names. ipset resolves a name with
// getservbyname(name, proto); names with a dash must be written in [brackets].
const SERVICES: ReadonlyArray<[string, number]> = [
  ['echo', 7], ['discard', 9], ['daytime', 13], ['ftp-data', 20], ['ftp', 21], ['ssh', 22],
  ['telnet', 23], ['smtp', 25], ['time', 37], ['whois', 43], ['tacacs', 49], ['domain', 53],
  ['gopher', 70], ['finger', 79], ['http', 80], ['kerberos', 88], ['pop3', 110], ['sunrpc', 111],
  ['auth', 113], ['nntp', 119], ['ntp', 123], ['epmap', 135], ['netbios-ns', 137], ['netbios-dgm', 138],
  ['netbios-ssn', 139], ['imap2', 143], ['snmp', 161], ['snmp-trap', 162], ['bgp', 179], ['irc', 194],
  ['ldap', 389], ['https', 443], ['microsoft-ds', 445], ['kpasswd', 464], ['submissions', 465],
  ['syslog', 514], ['printer', 515], ['submission', 587], ['ldaps', 636], ['rsync', 873], ['ftps', 990],
  ['imaps', 993], ['pop3s', 995], ['socks', 1080], ['openvpn', 1194], ['ms-sql-s', 1433],
  ['l2f', 1701], ['radius', 1812], ['nfs', 2049], ['mysql', 3306], ['postgresql', 5432],
  ['x11', 6000], ['http-alt', 8080],
];
const serviceByName = new Map<string, number>(SERVICES);

export function serviceByNameOrNull(name: string): number | null {
  return serviceByName.get(name) ?? null;
}
