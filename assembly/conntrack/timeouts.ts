// conntrack/timeouts.ts — how long a connection lives after its last packet, per protocol and TCP
// state. Defaults are Linux's (named constants below, in milliseconds); the host may change any of
// them at run time with ctSetTimeout (kube-proxy, for instance, sets ESTABLISHED to 24 h and
// CLOSE_WAIT to 1 h). Never reads a clock: callers add a timeout to the `now` they were given.
//
// Time is u32 milliseconds that wrap; an entry's expiry is `now + timeout` and it is expired when
// `<i32>(expiry - now) <= 0`. That comparison is only sound while every timeout is below 2^31 ms
// (24.8 days), so ctSetTimeout refuses anything larger.

import { PROTO_TCP, PROTO_UDP, PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP } from "../flow";

// Timeout kinds. TCP kinds share their numbers with the TCP states (tcp.ts), so the state indexes
// the table directly.
export const CT_TO_TCP_SYN_SENT: u32 = 1;
export const CT_TO_TCP_SYN_RECV: u32 = 2;
export const CT_TO_TCP_ESTABLISHED: u32 = 3;
export const CT_TO_TCP_FIN_WAIT: u32 = 4;
export const CT_TO_TCP_CLOSE_WAIT: u32 = 5;
export const CT_TO_TCP_LAST_ACK: u32 = 6;
export const CT_TO_TCP_TIME_WAIT: u32 = 7;
export const CT_TO_TCP_CLOSE: u32 = 8;
export const CT_TO_TCP_SYN_SENT2: u32 = 9;
// Cap for an ESTABLISHED entry picked up mid-stream that has not seen a reply yet.
export const CT_TO_TCP_UNACK: u32 = 10;
export const CT_TO_UDP_UNREPLIED: u32 = 11;
export const CT_TO_UDP_STREAM: u32 = 12;
export const CT_TO_ICMP: u32 = 13;
export const CT_TO_ICMPV6: u32 = 14;
export const CT_TO_GENERIC: u32 = 15;
export const CT_TO_SCTP_UNREPLIED: u32 = 16;
export const CT_TO_SCTP_STREAM: u32 = 17;
export const CT_TO_COUNT: u32 = 18;

const SEC: u32 = 1000;
const MIN: u32 = 60 * SEC;
const HOUR: u32 = 60 * MIN;
const DAY: u32 = 24 * HOUR;

// nf_conntrack_proto_tcp.c: tcp_timeouts[]
export const TCP_SYN_SENT_MS: u32 = 2 * MIN;
export const TCP_SYN_RECV_MS: u32 = 60 * SEC;
export const TCP_ESTABLISHED_MS: u32 = 5 * DAY;
export const TCP_FIN_WAIT_MS: u32 = 2 * MIN;
export const TCP_CLOSE_WAIT_MS: u32 = 60 * SEC;
export const TCP_LAST_ACK_MS: u32 = 30 * SEC;
export const TCP_TIME_WAIT_MS: u32 = 2 * MIN;
export const TCP_CLOSE_MS: u32 = 10 * SEC;
export const TCP_SYN_SENT2_MS: u32 = 2 * MIN;
// tcp_timeouts[TCP_CONNTRACK_UNACK]. The kernel's RETRANS timeout (also 5 min) needs sequence
// tracking, which this table does not do, so it is not offered.
export const TCP_UNACK_MS: u32 = 5 * MIN;
// nf_conntrack_proto_udp.c: udp_timeouts[UDP_CT_UNREPLIED], [UDP_CT_REPLIED]
export const UDP_UNREPLIED_MS: u32 = 30 * SEC;
export const UDP_STREAM_MS: u32 = 120 * SEC;
// nf_conntrack_proto_icmp.c: nf_ct_icmp_timeout; nf_conntrack_proto_icmpv6.c: nf_ct_icmpv6_timeout
export const ICMP_MS: u32 = 30 * SEC;
export const ICMPV6_MS: u32 = 30 * SEC;
// nf_conntrack_proto_generic.c: nf_ct_generic_timeout
export const GENERIC_MS: u32 = 600 * SEC;
// SCTP has no chunk state machine here: an association is tracked like a UDP stream. Unreplied it
// keeps 30 s (the kernel's HEARTBEAT_SENT; its COOKIE_WAIT is 3 s, shorter than the RFC 4960
// initial RTO, and without chunk parsing we cannot tell an INIT from data); once seen both ways
// it keeps the kernel's sctp_timeouts[SCTP_CONNTRACK_ESTABLISHED] = 210 s.
export const SCTP_UNREPLIED_MS: u32 = 30 * SEC;
export const SCTP_STREAM_MS: u32 = 210 * SEC;

/** The kind a new entry of `proto` starts with (before its first packet is seen). */
export function newTimeoutKind(proto: u8): u32 {
  if (proto == PROTO_TCP) return CT_TO_TCP_SYN_SENT;
  if (proto == PROTO_UDP) return CT_TO_UDP_UNREPLIED;
  if (proto == PROTO_ICMP) return CT_TO_ICMP;
  if (proto == PROTO_ICMPV6) return CT_TO_ICMPV6;
  if (proto == PROTO_SCTP) return CT_TO_SCTP_UNREPLIED;
  return CT_TO_GENERIC;
}

// nf_conntrack_proto_udp.c: stream_ts = 2 * HZ after the first packet. A two-way UDP (or, here,
// SCTP) flow still active after this delay is a stream: longer timeout and ASSURED. Fixed.
export const STREAM_DELAY_MS: u32 = 2 * SEC;

// The largest timeout the wrap-safe expiry comparison allows.
export const CT_TIMEOUT_MAX_MS: u32 = 0x7FFFFFFF;

// The live values, indexed by kind (slot 0 unused).
const table: usize = heap.alloc(<usize>CT_TO_COUNT << 2);

function defaultOf(kind: u32): u32 {
  switch (kind) {
    case CT_TO_TCP_SYN_SENT: return TCP_SYN_SENT_MS;
    case CT_TO_TCP_SYN_RECV: return TCP_SYN_RECV_MS;
    case CT_TO_TCP_ESTABLISHED: return TCP_ESTABLISHED_MS;
    case CT_TO_TCP_FIN_WAIT: return TCP_FIN_WAIT_MS;
    case CT_TO_TCP_CLOSE_WAIT: return TCP_CLOSE_WAIT_MS;
    case CT_TO_TCP_LAST_ACK: return TCP_LAST_ACK_MS;
    case CT_TO_TCP_TIME_WAIT: return TCP_TIME_WAIT_MS;
    case CT_TO_TCP_CLOSE: return TCP_CLOSE_MS;
    case CT_TO_TCP_SYN_SENT2: return TCP_SYN_SENT2_MS;
    case CT_TO_TCP_UNACK: return TCP_UNACK_MS;
    case CT_TO_UDP_UNREPLIED: return UDP_UNREPLIED_MS;
    case CT_TO_UDP_STREAM: return UDP_STREAM_MS;
    case CT_TO_ICMP: return ICMP_MS;
    case CT_TO_ICMPV6: return ICMPV6_MS;
    case CT_TO_GENERIC: return GENERIC_MS;
    case CT_TO_SCTP_UNREPLIED: return SCTP_UNREPLIED_MS;
    case CT_TO_SCTP_STREAM: return SCTP_STREAM_MS;
  }
  return 0;
}

/** Puts every timeout back to the kernel default. */
export function ctResetTimeouts(): void {
  store<u32>(table, 0);
  for (let k: u32 = 1; k < CT_TO_COUNT; k++) store<u32>(table + (<usize>k << 2), defaultOf(k));
}
ctResetTimeouts();

/** Sets one timeout. False (and nothing changes) for an unknown kind or ms outside 1..2^31-1. */
export function ctSetTimeout(kind: u32, ms: u32): bool {
  if (kind == 0 || kind >= CT_TO_COUNT || ms == 0 || ms > CT_TIMEOUT_MAX_MS) return false;
  store<u32>(table + (<usize>kind << 2), ms);
  return true;
}

/** The current timeout of a kind in ms, 0 for an unknown kind. */
export function ctGetTimeout(kind: u32): u32 {
  if (kind == 0 || kind >= CT_TO_COUNT) return 0;
  return load<u32>(table + (<usize>kind << 2));
}

/** Unchecked read for the packet path; `kind` comes from the constants above. */
// @ts-ignore: decorator
@inline export function timeoutOf(kind: u32): u32 {
  return load<u32>(table + (<usize>kind << 2));
}

/** Bytes this module holds (for ctBytes). */
export function timeoutBytes(): usize {
  return <usize>CT_TO_COUNT << 2;
}
