// ipvs/defs.ts — the numbers IPVS is built from: scheduler ids, service / destination / connection
// flags (valued as include/uapi/linux/ip_vs.h and include/net/ip_vs.h define them), forwarding
// methods, IPVS's own TCP states, sysctl ids and values, control error codes and IPVS's own
// counters, plus the two hash helpers every scheduler shares. No allocation after start-up.

export const NIL: u32 = 0xFFFFFFFF;

// Schedulers (one file each under sched/). The host names them (host-node/ipvs/program.ts SCHEDULERS).
export const SCHED_RR: u8 = 0;
export const SCHED_WRR: u8 = 1;
export const SCHED_LC: u8 = 2;
export const SCHED_WLC: u8 = 3;
export const SCHED_SED: u8 = 4;
export const SCHED_NQ: u8 = 5;
export const SCHED_FO: u8 = 6;
export const SCHED_OVF: u8 = 7;
export const SCHED_LBLC: u8 = 8;
export const SCHED_LBLCR: u8 = 9;
export const SCHED_DH: u8 = 10;
export const SCHED_SH: u8 = 11;
export const SCHED_MH: u8 = 12;
export const SCHED_TWOS: u8 = 13;
export const SCHED_COUNT: u8 = 14;

// Service flags (uapi ip_vs.h IP_VS_SVC_F_*).
export const SVC_F_PERSISTENT: u32 = 0x0001;
export const SVC_F_HASHED: u32 = 0x0002;
export const SVC_F_ONEPACKET: u32 = 0x0004;
export const SVC_F_SCHED1: u32 = 0x0008;
export const SVC_F_SCHED2: u32 = 0x0010;
export const SVC_F_SCHED3: u32 = 0x0020;
// ip_vs.h: IP_VS_SVC_F_SCHED_SH_FALLBACK / _SH_PORT, and ip_vs_mh.c's MH equivalents.
export const SVC_F_SCHED_FALLBACK: u32 = SVC_F_SCHED1;
export const SVC_F_SCHED_PORT: u32 = SVC_F_SCHED2;
// Flags the host may set (HASHED is ours to manage).
export const SVC_F_USER: u32 = SVC_F_PERSISTENT | SVC_F_ONEPACKET | SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3;

// Forwarding methods (ip_vs.h IP_VS_CONN_F_MASQ … IP_VS_CONN_F_DROUTE; FWD_MASK = 7).
export const FWD_MASQ: u8 = 0;
export const FWD_LOCAL: u8 = 1;
export const FWD_TUNNEL: u8 = 2;
export const FWD_DROUTE: u8 = 3;
export const FWD_MASK: u16 = 0x0007;

// Tunnel types and encapsulation flags of a tunnel destination (uapi ip_vs.h
// IP_VS_CONN_F_TUNNEL_TYPE_*, IP_VS_TUNNEL_ENCAP_FLAG_*). A destination keeps them in one word:
// type | flags << 8 | port << 16 (dest.ts destTun).
export const TUN_IPIP: u32 = 0;
export const TUN_GUE: u32 = 1;
export const TUN_GRE: u32 = 2;
export const TUNF_CSUM: u32 = 1;
export const TUNF_REMCSUM: u32 = 2;

// Connection flags (ip_vs.h IP_VS_CONN_F_*), the ones this dataplane uses.
export const CF_NOOUTPUT: u16 = 0x0080;   // no output packets are seen: state machine uses INPUT_ONLY
export const CF_INACTIVE: u16 = 0x0100;   // counted in the dest's inactconns
export const CF_TEMPLATE: u16 = 0x1000;   // persistence template
export const CF_ONE_PACKET: u16 = 0x2000; // UDP one-packet scheduling: never hashed

// Destination flags (ip_vs.h IP_VS_DEST_F_*).
export const DEST_F_AVAILABLE: u32 = 0x0001;
export const DEST_F_OVERLOAD: u32 = 0x0002;

// IPVS's own TCP states (ip_vs.h enum IP_VS_TCP_S_*), not conntrack's.
export const TCP_S_NONE: u8 = 0;
export const TCP_S_ESTABLISHED: u8 = 1;
export const TCP_S_SYN_SENT: u8 = 2;
export const TCP_S_SYN_RECV: u8 = 3;
export const TCP_S_FIN_WAIT: u8 = 4;
export const TCP_S_TIME_WAIT: u8 = 5;
export const TCP_S_CLOSE: u8 = 6;
export const TCP_S_CLOSE_WAIT: u8 = 7;
export const TCP_S_LAST_ACK: u8 = 8;
export const TCP_S_LISTEN: u8 = 9;
export const TCP_S_SYNACK: u8 = 10;
export const TCP_S_LAST: u8 = 11;
// UDP has one state (ip_vs_proto_udp.c IP_VS_UDP_S_NORMAL); SCTP conns here use the same slot.
export const UDP_S_NORMAL: u8 = 0;

// Packet directions of the IPVS state machines (ip_vs.h IP_VS_DIR_*).
export const DIR_INPUT: u32 = 0;
export const DIR_OUTPUT: u32 = 1;
export const DIR_INPUT_ONLY: u32 = 2;

// Sysctls (net.ipv4.vs.*) the dataplane models. Set with ipvsSetSysctl(id, value).
export const SYS_CONN_REUSE_MODE: u32 = 0;        // default 1
export const SYS_EXPIRE_NODEST_CONN: u32 = 1;     // default 0
export const SYS_EXPIRE_QUIESCENT_TEMPLATE: u32 = 2; // default 0
export const SYS_SLOPPY_TCP: u32 = 3;             // default 0
export const SYS_LBLC_EXPIRATION: u32 = 4;        // ms, default 24 h
export const SYS_LBLCR_EXPIRATION: u32 = 5;       // ms, default 24 h
// net.ipv4.vs.conntrack (default 0): IPVS connections keep their netfilter conntrack entry
// (IP_VS_CONN_F_NFCT) so iptables rules after IPVS (nat POSTROUTING MASQUERADE) apply to them;
// kube-proxy's ipvs mode sets it to 1. Without it IPVS untracks the packets it forwards.
export const SYS_CONNTRACK: u32 = 6;
// svcplane's own (no kernel sysctl; default 0 = the kernel's behaviour): a persistence template
// whose timeout has run out since the last new connection is not reused, even while connections
// it controls live on (the kernel keeps it valid for them, so affinity outlasts its timeout by up
// to the TIME_WAIT of the last connection — kubernetes#89358). kube-proxy's ipvs mode here sets it.
export const SYS_PERSIST_STRICT: u32 = 7;
export const SYS_COUNT: u32 = 8;

const sysctls: StaticArray<u32> = [1, 0, 0, 0, 24 * 60 * 60 * 1000, 24 * 60 * 60 * 1000, 0, 0];
// @ts-ignore: decorator
@inline export function sysctl(id: u32): u32 { return unchecked(sysctls[id]); }
export function setSysctl(id: u32, v: u32): bool {
  if (id >= SYS_COUNT) return false;
  // Times are compared as wrapping ms: at most 2^31 − 1.
  if ((id == SYS_LBLC_EXPIRATION || id == SYS_LBLCR_EXPIRATION) && v > 0x7FFFFFFF) return false;
  unchecked(sysctls[id] = v);
  return true;
}

// Control error codes (negative returns). The host names them (program.ts ERRORS).
export const E_OK: i32 = 0;
export const E_INVAL: i32 = -1;      // an argument out of range
export const E_EXIST: i32 = -2;      // service or destination already there
export const E_NOENT: i32 = -3;      // no such service / destination
export const E_NOMEM: i32 = -4;      // a pool is full at its bound (SVC_LIMIT, DEST_LIMIT), or memory cannot hold it
export const E_NOTREADY: i32 = -5;   // ipvsInit not called (or called twice)
export const E_AFNOSUPPORT: i32 = -6; // family mismatch (masq/droute need the service's family)

// IPVS's own counters (u64 each): ipvsCounters() + id * 8.
export const IC_PACKETS: u32 = 0;          // packets ipvsProcess handled
export const IC_CONN_NEW: u32 = 1;         // connection entries created (not templates)
export const IC_TEMPLATE_NEW: u32 = 2;     // persistence templates created
export const IC_CONN_EXPIRED: u32 = 3;     // entries removed by expiry
export const IC_ONE_PACKET: u32 = 4;       // one-packet (-o) UDP datagrams scheduled without an entry
export const IC_NO_DEST: u32 = 5;          // scheduler found no destination (ip_vs_leave)
export const IC_TABLE_FULL: u32 = 6;       // connection table full: packet dropped
export const IC_DEST_UNAVAILABLE: u32 = 7; // packet of a connection whose dest was removed: dropped
export const IC_NOT_SCHEDULED: u32 = 8;    // TCP non-SYN / RST to a service without entry: passed on
export const IC_TOO_BIG: u32 = 9;          // tunnel header would not fit the slot
export const IC_REUSED: u32 = 10;          // SYN on a TIME_WAIT/CLOSE entry: expired and rescheduled
export const IC_OUT_PACKETS: u32 = 11;     // reply packets of masqueraded connections
export const IC_TEMPLATE_INVALID: u32 = 12; // templates invalidated (dest gone or quiescent)
export const IC_NO_TUNNEL_SOURCE: u32 = 13; // tunnel destination but no outer source address: dropped
export const IC_COUNT: u32 = 14;

export const counters: usize = heap.alloc(<usize>IC_COUNT << 3);
memory.fill(counters, 0, <usize>IC_COUNT << 3);

// @ts-ignore: decorator
@inline export function count(id: u32): void {
  const p = counters + (<usize>id << 3);
  store<u64>(p, load<u64>(p) + 1);
}

// Addresses are kept as Tuple words (flow.ts): four raw little-endian loads of the network bytes.
// The kernel's hashes work on ntohl() of the (folded) address; this gives that value.
// @ts-ignore: decorator
@inline export function addrFoldHost(family: u8, a0: u32, a1: u32, a2: u32, a3: u32): u32 {
  return bswap<u32>(family == 4 ? a0 : a0 ^ a1 ^ a2 ^ a3);
}

// include/linux/hash.h hash_32(): multiply by GOLDEN_RATIO_32, keep the top `bits` bits.
// @ts-ignore: decorator
@inline export function hash32(val: u32, bits: u32): u32 {
  return (val * 0x61C88647) >>> (32 - bits);
}
