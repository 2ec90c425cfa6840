// blob-format.ts — the numbers of the core's chain blob format (assembly/netfilter/format.ts:
// header, rule records, op kinds and flags) and the word writer the compiler encodes ops with.
// Never encodes a rule (compile.ts does) and never talks to the core (load.ts).

import type { AddrType, CtState, Family, Hook, PortRange, TableName } from './model.js';

export const MAGIC = 0x43545049;
export const VERSION = 1;
export const HDR_BYTES = 32;
export const RULE_BYTES = 12;
export const BUILTIN_IDS = 40;
export const BLOB_F_INDEX = 1;
export const INV = 1;
export const NOCT_PASS = 2;
/** SET's op flag for --return-nomatch (assembly/netfilter/format.ts OPF_SET_RETURN_NOMATCH). */
export const SET_RETURN_NOMATCH = 2;

export const TABLE_INDEX: Readonly<Record<string, number>> = { raw: 0, mangle: 1, nat: 2, filter: 3 };
export const TABLE_BY_INDEX: readonly TableName[] = ['raw', 'mangle', 'nat', 'filter'];
export const HOOK_INDEX: Readonly<Record<Hook, number>> = { PREROUTING: 0, INPUT: 1, FORWARD: 2, OUTPUT: 3, POSTROUTING: 4 };
export const HOOK_BY_INDEX: readonly Hook[] = ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'];

export const M = {
  SRC: 1, DST: 2, PROTO: 3, SPORT: 4, DPORT: 5, IIF: 6, OIF: 7, ADDRTYPE: 8, CTSTATE: 9, CT_ADDR: 10,
  CT_PORT: 11, CT_STATUS: 12, CT_PROTO: 13, CT_DIR: 14, MARK: 15, CONNMARK: 16, RANDOM: 17, NTH: 18,
  LIMIT: 19, RECENT: 20, MULTIPORT: 21, SET: 22, NFACCT: 23, ICMP: 24, TCPFLAGS: 25, FRAG: 26,
  IPVS: 27, PHYSDEV: 28,
} as const;
export const T = {
  ACCEPT: 64, DROP: 65, RETURN: 66, JUMP: 67, GOTO: 68, REJECT: 69, DNAT: 70, SNAT: 71, MASQUERADE: 72,
  MARK: 73, CONNMARK: 74, LOG: 75, NFLOG: 76, NOTRACK: 77, REDIRECT: 78,
  POLICY_ACCEPT: 96, POLICY_DROP: 97, END_RETURN: 98, DEPTH_DROP: 99,
} as const;

export const CTS: Readonly<Record<CtState, number>> = { INVALID: 1, ESTABLISHED: 2, RELATED: 4, NEW: 8, UNTRACKED: 16, SNAT: 32, DNAT: 64 };
export const CT_STATUS_BIT = { EXPECTED: 1, SEEN_REPLY: 2, ASSURED: 4, CONFIRMED: 8 } as const;
export const ADDRTYPES: readonly AddrType[] = [
  'UNSPEC', 'UNICAST', 'LOCAL', 'BROADCAST', 'ANYCAST', 'MULTICAST', 'BLACKHOLE', 'UNREACHABLE', 'PROHIBIT', 'THROW', 'NAT', 'XRESOLVE',
];
export const RECENT_FLAG = { rcheck: 1, set: 2, update: 4, remove: 8 } as const;
export const RECENT_TTL = 16, RECENT_REAP = 32, RECENT_DEST = 64;
export const NAT_MAP_IPS = 1, NAT_PROTO_SPECIFIED = 2, NAT_RANDOM = 4, NAT_PERSISTENT = 8, NAT_RANDOM_FULLY = 16;
export const REJECT_CODE: Readonly<Record<string, number>> = {
  'icmp-net-unreachable': 0, 'icmp-host-unreachable': 1, 'icmp-proto-unreachable': 2,
  'icmp-port-unreachable': 3, 'icmp-net-prohibited': 9, 'icmp-host-prohibited': 10,
  'icmp-admin-prohibited': 13, 'tcp-reset': 0xffff,
  'icmp6-no-route': 0, 'icmp6-adm-prohibited': 1, 'icmp6-addr-unreachable': 3,
  'icmp6-port-unreachable': 4, 'icmp6-policy-fail': 5, 'icmp6-reject-route': 6,
};

/** The id of a built-in chain (format.ts: family 6 adds 20, then table × 5 + hook). */
export function builtinChainId(family: Family, table: TableName, hook: Hook): number {
  return (family === 6 ? 20 : 0) + TABLE_INDEX[table]! * 5 + HOOK_INDEX[hook];
}

/** dst[at, at + n) = src[0, n): a loop for the many tiny chains, set() for large ones. */
export function copyWords(dst: Uint32Array, at: number, src: Uint32Array, n: number): void {
  if (n < 64) for (let k = 0; k < n; k++) dst[at + k] = src[k]!;
  else dst.set(src.subarray(0, n), at);
}

// ---- an u32 word writer ---------------------------------------------------------------------
export class Words32 {
  buf = new Uint32Array(4096);
  n = 0;
  /** Room for `k` more words. */
  room(k: number): void {
    if (this.n + k <= this.buf.length) return;
    let len = this.buf.length * 2;
    while (len < this.n + k) len *= 2;
    const b = new Uint32Array(len);
    b.set(this.buf.subarray(0, this.n));
    this.buf = b;
  }
  /** An op with up to three arguments, the common case. */
  op(kind: number, flags: number, nargs: number, a = 0, b = 0, c = 0): void {
    this.room(4);
    const buf = this.buf;
    let n = this.n;
    buf[n++] = kind | (flags << 8) | ((nargs + 1) << 16);
    if (nargs > 0) buf[n++] = a;
    if (nargs > 1) buf[n++] = b;
    if (nargs > 2) buf[n++] = c;
    this.n = n;
  }
}

/** Big-endian model words → the core's raw words (little-endian loads of the address bytes). */
export const bswap = (w: number): number => (((w & 0xff) << 24) | ((w & 0xff00) << 8) | ((w >>> 8) & 0xff00) | (w >>> 24)) >>> 0;
export const range = (r: PortRange): number => (r.lo | (r.hi << 16)) >>> 0;
export const isFull = (r: PortRange): boolean => r.lo === 0 && r.hi === 65535;

