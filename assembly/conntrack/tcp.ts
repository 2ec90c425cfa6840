// conntrack/tcp.ts — Linux's TCP connection tracker (nf_conntrack_proto_tcp.c), driven by the flag
// byte of each packet: the tcp_conntracks[2][6][10] transition table, the checks around it in
// nf_conntrack_tcp_packet() (TIME_WAIT reopen, ignored packets, simultaneous open, RFC 5961
// challenge ACK, RST on an unreplied connection) and the timeout it then chooses.
//
// What it never does: sequence-number or window tracking (tcp_in_window). Every packet that the
// table and the flag checks accept is taken as in-window, so an RST always closes, a SYN/ACK that
// answers an ignored SYN is recognised by the flags alone (the kernel also compares ack_seq), and
// the RETRANS / unacknowledged-data / zero-window timeout shortcuts, which need window state, are
// not taken. It never allocates and never reads a clock.

import {
  E_EXPIRY, E_STATUS, E_TCPSTATE, E_TCPFLAGS, CT_SEEN_REPLY, CT_ASSURED, CT_CONFIRMED, CT_DYING,
} from "./entry";
import { timeoutOf, CT_TO_TCP_CLOSE, CT_TO_TCP_UNACK } from "./timeouts";
import { ctEventsOn, ctEventOf, CT_EVENT_DESTROY } from "./events";

// enum tcp_conntrack (include/uapi/linux/netfilter/nf_conntrack_tcp.h).
export const TCP_NONE: u8 = 0;
export const TCP_SYN_SENT: u8 = 1;
export const TCP_SYN_RECV: u8 = 2;
export const TCP_ESTABLISHED: u8 = 3;
export const TCP_FIN_WAIT: u8 = 4;
export const TCP_CLOSE_WAIT: u8 = 5;
export const TCP_LAST_ACK: u8 = 6;
export const TCP_TIME_WAIT: u8 = 7;
export const TCP_CLOSE: u8 = 8;
export const TCP_SYN_SENT2: u8 = 9;
export const TCP_STATE_COUNT: u8 = 10;

// enum tcp_bit_set: which of RST/SYN/FIN/ACK the packet carries (get_conntrack_index).
export const TCP_SYN_SET: u32 = 0;
export const TCP_SYNACK_SET: u32 = 1;
export const TCP_FIN_SET: u32 = 2;
export const TCP_ACK_SET: u32 = 3;
export const TCP_RST_SET: u32 = 4;
export const TCP_NONE_SET: u32 = 5;

// TCP header flag bits.
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;
const URG: u8 = 0x20;
const ECE: u8 = 0x40;
const CWR: u8 = 0x80;

// Tracker flags kept in the entry's E_TCPFLAGS byte: the parts of struct ip_ct_tcp the state
// machine reads once window tracking is left out.
const F_CLOSE_INIT: u8 = 0x01;   // << dir: that side sent the first FIN (IP_CT_TCP_FLAG_CLOSE_INIT)
const F_CLOSE_INIT_ANY: u8 = 0x03;
const F_SIMULTANEOUS: u8 = 0x04; // IP_CT_TCP_SIMULTANEOUS_OPEN
const F_CHALLENGE: u8 = 0x08;    // IP_CT_EXP_CHALLENGE_ACK
const LAST_DIR_SHIFT: u8 = 4;    // last_dir
const LAST_INDEX_SHIFT: u8 = 5;  // last_index (3 bits)
const F_KEEP: u8 = 0x0F;         // everything but last_dir/last_index

/** Tracker flags of an entry that has seen no packet (tcp_new: last_index = TCP_NONE_SET). */
export const TCP_FLAGS_NEW: u8 = <u8>(TCP_NONE_SET << LAST_INDEX_SHIFT);

// Outcomes of tcpPacket.
export const TCP_ACCEPT: u32 = 0;  // packet belongs to the connection
export const TCP_INVALID: u32 = 1; // -NF_ACCEPT: invalid, nothing changed
export const TCP_REPEAT: u32 = 2;  // -NF_REPEAT: the entry was killed; look the packet up again
// Accepted after the tracker resynchronised (a SYN/ACK answering an ignored SYN): the kernel then
// treats the state as changed from SYN_SENT, whatever it was, and reports it (IPCT_PROTOINFO).
export const TCP_RESYNC: u32 = 3;

// tcp_conntracks[dir][index][state]; rows syn, synack, fin, ack, rst, none;
// columns sNO, sSS, sSR, sES, sFW, sCW, sLA, sTW, sCL, sS2.
// IV is TCP_CONNTRACK_MAX (invalid), IG is TCP_CONNTRACK_IGNORE.
const SS: u8 = 1, SR: u8 = 2, ES: u8 = 3, FW: u8 = 4, CW: u8 = 5, LA: u8 = 6, TW: u8 = 7, CL: u8 = 8, S2: u8 = 9;
const IV: u8 = 10, IG: u8 = 11;
const transitions: usize = memory.data<u8>([
  // ORIGINAL
  SS, SS, IG, IG, IG, IG, IG, SS, SS, S2, // syn: sTW/sCL -> sSS reopen (RFC 1122)
  IV, IV, SR, IV, IV, IV, IV, IV, IV, SR, // synack: sSR -> sSR late retransmit in simultaneous open
  IV, IV, FW, FW, LA, LA, LA, TW, CL, IV, // fin
  ES, IV, ES, ES, CW, CW, TW, TW, CL, IV, // ack: sNO -> sES picks up a running connection
  IV, CL, CL, CL, CL, CL, CL, CL, CL, CL, // rst
  IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, // none
  // REPLY
  IV, S2, IV, IV, IV, IV, IV, SS, IV, S2, // syn: sSS -> sS2 simultaneous open; sTW -> sSS roles switched
  IV, SR, IG, IG, IG, IG, IG, IG, IG, SR, // synack
  IV, IV, FW, FW, LA, LA, LA, TW, CL, IV, // fin
  IV, IG, SR, ES, CW, CW, TW, TW, CL, IG, // ack: sSS -> IG may be a half-open connection
  IV, CL, CL, CL, CL, CL, CL, CL, CL, CL, // rst
  IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, // none
]);

/** tcp_conntracks[dir][index][state]. */
// @ts-ignore: decorator
@inline export function tcpNextState(dir: u32, index: u32, state: u8): u8 {
  return load<u8>(transitions + dir * 60 + index * 10 + <u32>state);
}

/** get_conntrack_index(): RST wins, then SYN (with or without ACK), FIN, ACK. */
// @ts-ignore: decorator
@inline export function tcpIndex(flags: u8): u32 {
  if (flags & RST) return TCP_RST_SET;
  if (flags & SYN) return (flags & ACK) ? TCP_SYNACK_SET : TCP_SYN_SET;
  if (flags & FIN) return TCP_FIN_SET;
  if (flags & ACK) return TCP_ACK_SET;
  return TCP_NONE_SET;
}

// tcp_valid_flags[] as a bit set over (flags & ~(ECE|CWR|PSH)): SYN, SYN|URG, SYN|ACK, RST,
// RST|ACK, FIN|ACK, FIN|ACK|URG, ACK, ACK|URG. Anything else (no flags, FIN without ACK,
// SYN|FIN, SYN|RST, …) is an invalid combination.
const VALID_FLAGS: u64 = (<u64>1 << SYN) | (<u64>1 << (SYN | URG)) | (<u64>1 << (SYN | ACK)) |
  (<u64>1 << RST) | (<u64>1 << (RST | ACK)) | (<u64>1 << (FIN | ACK)) |
  (<u64>1 << (FIN | ACK | URG)) | (<u64>1 << ACK) | (<u64>1 << (ACK | URG));

/** tcp_error(): is this flag combination one a TCP stack may send? */
// @ts-ignore: decorator
@inline export function tcpValidFlags(flags: u8): bool {
  const f = flags & ~(ECE | CWR | PSH);
  return ((VALID_FLAGS >> <u64>f) & 1) != 0;
}

/** tcp_can_early_drop(): closing states. */
// @ts-ignore: decorator
@inline export function tcpClosing(state: u8): bool {
  return state >= TCP_FIN_WAIT && state <= TCP_CLOSE;
}

/**
 * One packet of a TCP connection in direction `dir` (0 original, 1 reply). Updates the state,
 * tracker flags, ASSURED and expiry of entry `e` as nf_conntrack_tcp_packet() does, and returns
 * TCP_ACCEPT, TCP_RESYNC (accepted as a change from SYN_SENT), TCP_INVALID (nothing changed) or
 * TCP_REPEAT (entry killed: the packet tries to reopen a closed connection and must be looked up
 * again as new). SEEN_REPLY and CONFIRMED are the caller's to set afterwards, as
 * nf_conntrack_in() does.
 */
// @ts-ignore: decorator (one caller, track.ts, on every TCP packet)
@inline export function tcpPacket(e: usize, dir: u32, flags: u8, now: u32): u32 {
  if (!tcpValidFlags(flags)) return TCP_INVALID;
  let status = load<u8>(e + E_STATUS);
  let tf = load<u8>(e + E_TCPFLAGS);
  const index = tcpIndex(flags);
  if (!(status & CT_CONFIRMED)) {
    // tcp_new(): only a packet that could open a connection from NONE creates one.
    if (tcpNextState(0, index, TCP_NONE) >= IV) return TCP_INVALID;
    store<u8>(e + E_TCPSTATE, TCP_NONE);
    tf = TCP_FLAGS_NEW;
  }
  let old = load<u8>(e + E_TCPSTATE);
  let next = tcpNextState(dir, index, old);
  let resynced = false;
  const lastIndex = <u32>(tf >> LAST_INDEX_SHIFT);
  const lastDir = <u32>((tf >> LAST_DIR_SHIFT) & 1);

  if (next == TCP_SYN_SENT && old >= TCP_TIME_WAIT) {
    // RFC 1122 reopen from TIME_WAIT/CLOSE: if either side started the close, or this side reset
    // it, the old entry goes and the SYN starts a new connection.
    if ((tf & F_CLOSE_INIT_ANY) != 0 || (lastDir == dir && lastIndex == TCP_RST_SET)) {
      store<u32>(e + E_EXPIRY, now);
      return TCP_REPEAT;
    }
    next = IG;
  }
  if (next == IG) {
    if (index == TCP_SYNACK_SET && lastIndex == TCP_SYN_SET && lastDir != dir) {
      // A SYN/ACK answering the SYN we ignored: both ends are in sync, we were not. Restart from
      // SYN_SENT; the per-side flags are reset as the kernel re-seeds its window state.
      old = TCP_SYN_SENT;
      next = TCP_SYN_RECV;
      tf &= ~(F_CHALLENGE | F_CLOSE_INIT_ANY);
      resynced = true;
    } else {
      tf = (tf & F_KEEP) | <u8>(dir << LAST_DIR_SHIFT) | <u8>(index << LAST_INDEX_SHIFT);
      if (index == TCP_SYN_SET && dir == 0) {
        // last_flags is rebuilt from this SYN: an earlier simultaneous-open mark goes, and a SYN
        // seen in LAST_ACK may draw an RFC 5961 challenge ACK that must not close the entry.
        tf &= ~(F_SIMULTANEOUS | F_CHALLENGE);
        if (old == TCP_LAST_ACK) tf |= F_CHALLENGE;
      }
      store<u8>(e + E_TCPFLAGS, tf);
      return TCP_ACCEPT; // ignored: no state or timeout change
    }
  } else if (next == IV) {
    return TCP_INVALID;
  } else if (next == TCP_TIME_WAIT) {
    if (old == TCP_LAST_ACK && index == TCP_ACK_SET && lastDir != dir &&
        lastIndex == TCP_SYN_SET && (tf & F_CHALLENGE) != 0) {
      // The challenge ACK answering that SYN: not the last ACK of the close.
      store<u8>(e + E_TCPFLAGS, tf & ~F_CHALLENGE);
      return TCP_ACCEPT;
    }
  } else if (next == TCP_SYN_SENT2) {
    tf |= F_SIMULTANEOUS;
  } else if (next == TCP_SYN_RECV) {
    if (dir == 1 && index == TCP_ACK_SET && (tf & F_SIMULTANEOUS) != 0) next = TCP_ESTABLISHED;
  }
  // (TCP_CLOSE on RST: every kernel path that keeps the RST depends on sequence numbers; without
  // them the RST is taken as in-window.)

  tf = (tf & F_KEEP) | <u8>(dir << LAST_DIR_SHIFT) | <u8>(index << LAST_INDEX_SHIFT);
  if (old != next && next == TCP_FIN_WAIT) tf |= <u8>(F_CLOSE_INIT << <u8>dir);
  store<u8>(e + E_TCPSTATE, next);
  store<u8>(e + E_TCPFLAGS, tf);

  let timeout = index == TCP_RST_SET ? timeoutOf(CT_TO_TCP_CLOSE) : timeoutOf(<u32>next);
  if (!(status & CT_SEEN_REPLY)) {
    // Only a RST came back: not a connection at all, delete it now (nf_ct_kill: its DESTROY
    // event goes at once, not when the entry is next met).
    if (index == TCP_RST_SET) {
      store<u32>(e + E_EXPIRY, now);
      if (ctEventsOn && (status & CT_CONFIRMED) != 0) {
        ctEventOf(CT_EVENT_DESTROY, e, now);
        store<u8>(e + E_STATUS, status | CT_DYING);
      }
      return TCP_ACCEPT;
    }
    // A retransmitted SYN does not renew the timeout, or port reuse could keep it alive forever.
    if (index == TCP_SYN_SET && old == TCP_SYN_SENT) return TCP_ACCEPT;
    // Picked up mid-stream and unanswered: no long ESTABLISHED timeout yet.
    const unack = timeoutOf(CT_TO_TCP_UNACK);
    if (next == TCP_ESTABLISHED && timeout > unack) timeout = unack;
  } else if (!(status & CT_ASSURED) && (old == TCP_SYN_RECV || old == TCP_ESTABLISHED) &&
             next == TCP_ESTABLISHED) {
    status |= CT_ASSURED;
    store<u8>(e + E_STATUS, status);
  }
  store<u32>(e + E_EXPIRY, now + timeout);
  return resynced ? TCP_RESYNC : TCP_ACCEPT;
}
