// conntrack/track.ts — what one packet does to the connection it belongs to, and the ctstate it
// gets: NEW / ESTABLISHED / RELATED / INVALID as iptables' state match sees them. Dispatches to
// the TCP tracker (tcp.ts) and handles UDP, SCTP, ICMP/ICMPv6 and other protocols here, then sets
// SEEN_REPLY and CONFIRMED as nf_conntrack_in() does. Also inverts tuples the way the kernel's
// invert_tuple does (ICMP echo request ↔ reply) and finds the connection an ICMP error quotes
// (whose packets are RELATED).
// Never allocates, never reads a clock, never parses packet bytes (the Flow is already parsed).
//
// "Killing" an entry (an unreplied TCP connection answered by RST, a first packet that cannot
// open a connection, a SYN reopening a closed one) sets its expiry to `now`: the packet still sees
// the entry's data, and the next lookup, early drop or reap removes it.

import { ctEventsOn, ctEventOf, ctEventState, CT_EVENT_UPDATE, CT_EVENT_STATE } from "./events";
import { Tuple, Flow, PROTO_TCP, PROTO_UDP, PROTO_SCTP, PROTO_ICMP, PROTO_ICMPV6, FRAG_LATER, FAMILY_V6 } from "../flow";
import { NH_NONE } from "../wire/ipv6";
import {
  E_EXPIRY, E_PROTO, E_STATUS, E_OTYPE, E_STREAM_AT, CT_SEEN_REPLY, CT_ASSURED, CT_CONFIRMED,
  CT_STREAM_TIME, entryAt, isUsed, readTuple,
} from "./entry";
import {
  timeoutOf, STREAM_DELAY_MS, CT_TO_UDP_UNREPLIED, CT_TO_UDP_STREAM, CT_TO_SCTP_UNREPLIED,
  CT_TO_SCTP_STREAM, CT_TO_ICMP, CT_TO_ICMPV6, CT_TO_GENERIC,
} from "./timeouts";
import { tcpPacket, tcpValidFlags, tcpNextState, tcpIndex, TCP_INVALID, TCP_REPEAT, TCP_RESYNC, TCP_NONE, TCP_STATE_COUNT } from "./tcp";
import { ctLookup, statAdd, CT_NONE, CT_STAT_INVALID, CT_STAT_BAD_ARG } from "./hash";
import { CT_INVALID, CT_ESTABLISHED, CT_NEW, CT_REPEAT } from "./state";

const scratchA: Tuple = changetype<Tuple>(heap.alloc(offsetof<Tuple>()));
const scratchB: Tuple = changetype<Tuple>(heap.alloc(offsetof<Tuple>()));

/**
 * The inverse ICMP type (nf_conntrack_proto_icmp.c / _icmpv6.c invmap: echo 8↔0, timestamp
 * 13↔14, info 15↔16, address mask 17↔18; ICMPv6 echo 128↔129, node information 139↔140), or
 * -1 when the type has none (such packets start no connection).
 */
export function icmpInverse(proto: u8, type: u8): i32 {
  if (proto == PROTO_ICMP) {
    switch (type) {
      case 8: return 0;
      case 0: return 8;
      case 13: return 14;
      case 14: return 13;
      case 15: return 16;
      case 16: return 15;
      case 17: return 18;
      case 18: return 17;
    }
  } else if (proto == PROTO_ICMPV6) {
    switch (type) {
      case 128: return 129;
      case 129: return 128;
      case 139: return 140;
      case 140: return 139;
    }
  }
  return -1;
}

/** valid_new[]: the request types that may open an ICMP "connection". */
export function icmpValidNew(proto: u8, type: u8): bool {
  if (proto == PROTO_ICMP) return type == 8 || type == 13 || type == 15 || type == 17;
  if (proto == PROTO_ICMPV6) return type == 128 || type == 139;
  return false;
}

/**
 * Whether a packet no connection holds may open one: tcp_new() (a flag combination the state
 * machine takes from NONE), icmp_new() / icmpv6_new() (a request type). An IPv6 header chain that
 * ends in No Next Header has no layer 4 to track (nf_conntrack_in → get_l4proto: ipv6_skip_exthdr
 * gives up at NEXTHDR_NONE), so it opens nothing and is INVALID. Anything else may.
 */
export function ctOpens(f: Flow): bool {
  if (f.proto == PROTO_TCP) return tcpValidFlags(f.tcpFlags) && tcpNextState(0, tcpIndex(f.tcpFlags), TCP_NONE) < TCP_STATE_COUNT;
  if (f.proto == PROTO_ICMP || f.proto == PROTO_ICMPV6) return icmpValidNew(f.proto, f.icmpType);
  return !(f.family == FAMILY_V6 && f.proto == NH_NONE);
}

/**
 * The same connection seen from the other end, as nf_ct_invert_tuple(): addresses and ports
 * swapped, ICMP type replaced by its inverse (the identifier stays in both port fields). False,
 * with `out` untouched, for an ICMP type without an inverse. `out` may be `t`.
 */
export function ctInvertTuple(out: Tuple, t: Tuple): bool {
  let type = t.icmpType;
  if (t.proto == PROTO_ICMP || t.proto == PROTO_ICMPV6) {
    const inv = icmpInverse(t.proto, type);
    if (inv < 0) return false;
    type = <u8>inv;
  }
  if (changetype<usize>(out) == changetype<usize>(t)) {
    scratchA.copyFrom(t);
    out.invertFrom(scratchA);
  } else {
    out.invertFrom(t);
  }
  out.icmpType = type;
  return true;
}

/**
 * The connection an ICMP/ICMPv6 error is about (nf_conntrack_inet_error): `inner` is the tuple of
 * the quoted header, `outer` the error packet's own tuple. The quoted packet travelled the other
 * way, so its inverse is looked up; the error must be addressed to that direction's destination.
 * Returns the handle `(index << 1) | dir` — its packets are RELATED — or CT_NONE.
 */
export function ctLookupRelated(inner: Tuple, outer: Tuple, now: u32): u32 {
  // No family: the quote gave no tuple (wire/parse.ts parseQuoted); the error is INVALID.
  if (inner.family == 0 || !ctInvertTuple(scratchB, inner)) return CT_NONE;
  const h = ctLookup(scratchB, now);
  if (h == CT_NONE) return CT_NONE;
  readTuple(entryAt(h >> 1), h & 1, scratchB);
  if (((scratchB.d0 ^ outer.d0) | (scratchB.d1 ^ outer.d1) | (scratchB.d2 ^ outer.d2) |
       (scratchB.d3 ^ outer.d3)) != 0) return CT_NONE;
  return h;
}

/**
 * UDP (nf_conntrack_udp_packet) and SCTP without a chunk state machine: unreplied timeout until
 * a reply has been seen; after that, once the flow outlives STREAM_DELAY_MS from its first
 * packet, the stream timeout and ASSURED. (The packet that brings the first reply still gets the
 * unreplied timeout: SEEN_REPLY is set after the protocol handler, as in nf_conntrack_in.)
 */
function streamPacket(e: usize, status: u8, now: u32, unrepliedKind: u32, streamKind: u32): void {
  let s = status;
  if (!(s & CT_CONFIRMED)) store<u32>(e + E_STREAM_AT, now + STREAM_DELAY_MS);
  // Once passed, remember it: the stored time alone would wrap after 24.8 days.
  if (!(s & CT_STREAM_TIME) && <i32>(now - load<u32>(e + E_STREAM_AT)) > 0) s |= CT_STREAM_TIME;
  let timeout = timeoutOf(unrepliedKind);
  if ((s & CT_SEEN_REPLY) && (s & CT_STREAM_TIME)) {
    timeout = timeoutOf(streamKind);
    s |= CT_ASSURED;
  }
  store<u8>(e + E_STATUS, s);
  store<u32>(e + E_EXPIRY, now + timeout);
}

/**
 * Tracks one packet of connection `index` travelling in direction `dir` (from a ctLookup handle,
 * or 0 for the first packet after ctInsert). Returns its ctstate:
 *   NEW          original direction, no reply seen yet
 *   ESTABLISHED  reply direction, or original direction after a reply
 *   INVALID      the tracker rejected it; the entry's state and timeout are unchanged. If it was
 *                the entry's first packet (nothing can be opened by it) the entry is killed.
 *   REPEAT       see CT_REPEAT (state.ts).
 * A later fragment (no L4 header) gets its ctstate without touching the entry. A free index or a
 * dir above 1 is INVALID and counted as BAD_ARG.
 */
export function ctPacket(index: u32, dir: u32, f: Flow, now: u32): u8 {
  if (!isUsed(index) || dir > 1) {
    statAdd(CT_STAT_BAD_ARG);
    return CT_INVALID;
  }
  return track(entryAt(index), dir, f, now);
}

/** ctPacket for a handle `(index << 1) | dir` ctLookup has just returned: the entry is live. */
export function ctPacketFound(h: u32, f: Flow, now: u32): u8 {
  return track(entryAt(h >> 1), h & 1, f, now);
}

function track(e: usize, dir: u32, f: Flow, now: u32): u8 {
  const status = load<u8>(e + E_STATUS);
  const state = (dir == 1 || (status & CT_SEEN_REPLY) != 0) ? CT_ESTABLISHED : CT_NEW;
  if (f.frag == FRAG_LATER) return state;
  // A stored connection's change is an UPDATE event (its first packet's is the NEW one).
  const before = ctEventsOn && (status & CT_CONFIRMED) != 0 ? ctEventState(e) : NO_EVENT_STATE;

  const proto = load<u8>(e + E_PROTO);
  let valid = true;
  let resynced = false;
  if (proto == PROTO_TCP) {
    const r = tcpPacket(e, dir, f.tcpFlags, now);
    if (r == TCP_REPEAT) return CT_REPEAT;
    valid = r != TCP_INVALID;
    resynced = r == TCP_RESYNC;
  } else if (proto == PROTO_UDP) {
    streamPacket(e, status, now, CT_TO_UDP_UNREPLIED, CT_TO_UDP_STREAM);
  } else if (proto == PROTO_SCTP) {
    streamPacket(e, status, now, CT_TO_SCTP_UNREPLIED, CT_TO_SCTP_STREAM);
  } else if (proto == PROTO_ICMP || proto == PROTO_ICMPV6) {
    if (!icmpValidNew(proto, load<u8>(e + E_OTYPE))) {
      valid = false;
    } else {
      store<u32>(e + E_EXPIRY, now + timeoutOf(proto == PROTO_ICMP ? CT_TO_ICMP : CT_TO_ICMPV6));
    }
  } else {
    store<u32>(e + E_EXPIRY, now + timeoutOf(CT_TO_GENERIC));
  }

  if (!valid) {
    statAdd(CT_STAT_INVALID);
    if (!(status & CT_CONFIRMED)) store<u32>(e + E_EXPIRY, now);
    return CT_INVALID;
  }
  let s = load<u8>(e + E_STATUS) | CT_CONFIRMED;
  if (dir == 1) s |= CT_SEEN_REPLY;
  store<u8>(e + E_STATUS, s);
  // One the tracker has just killed (a RST to an unreplied connection) is no UPDATE: the kernel's
  // is dying then, and says nothing until its DESTROY.
  if (before != NO_EVENT_STATE && <i32>(load<u32>(e + E_EXPIRY) - now) > 0) {
    const after = ctEventState(e);
    if (after != before || resynced) ctEventOf(CT_EVENT_UPDATE, e, now, (after >> 8) != (before >> 8) || resynced ? CT_EVENT_STATE : 0);
  }
  return state;
}

// No state to compare: events off, or the connection's first packet.
const NO_EVENT_STATE: u32 = 0xFFFFFFFF;
