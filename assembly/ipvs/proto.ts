// ipvs/proto.ts — IPVS's own per-protocol state machines and timeouts (not conntrack's):
// ip_vs_proto_tcp.c tcp_states[] / tcp_timeouts[] / tcp_state_active_table[], ip_vs_proto_udp.c
// udp_timeouts[], and ipvsadm --set (ip_vs_ctl.c ip_vs_set_timeout: tcp → ESTABLISHED, tcpfin →
// FIN_WAIT, udp → UDP NORMAL). Pure tables and look-ups; the connection table applies them.
//
// SCTP connections here have one state with the kernel's SCTP ESTABLISHED timeout (15 min): the
// kernel's ip_vs_proto_sctp.c chunk-driven state machine is not modelled (see the report).
import { PROTO_TCP, PROTO_SCTP } from "../flow";
import {
  TCP_S_NONE, TCP_S_ESTABLISHED, TCP_S_SYN_SENT, TCP_S_SYN_RECV, TCP_S_FIN_WAIT, TCP_S_TIME_WAIT,
  TCP_S_CLOSE, TCP_S_CLOSE_WAIT, TCP_S_LAST_ACK, TCP_S_LISTEN, TCP_S_SYNACK, TCP_S_LAST,
  DIR_OUTPUT, DIR_INPUT_ONLY,
} from "./defs";

const sNO = TCP_S_NONE, sES = TCP_S_ESTABLISHED, sSS = TCP_S_SYN_SENT, sSR = TCP_S_SYN_RECV;
const sFW = TCP_S_FIN_WAIT, sTW = TCP_S_TIME_WAIT, sCL = TCP_S_CLOSE, sCW = TCP_S_CLOSE_WAIT;
const sLA = TCP_S_LAST_ACK, sLI = TCP_S_LISTEN, sSA = TCP_S_SYNACK;

// ip_vs_proto_tcp.c tcp_states[]: rows INPUT syn/fin/ack/rst, OUTPUT …, INPUT-ONLY …; columns are
// the current state sNO … sSA.
const STATES: StaticArray<u8> = [
  /*        sNO, sES, sSS, sSR, sFW, sTW, sCL, sCW, sLA, sLI, sSA */
  /*  INPUT */
  /*syn*/   sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR,
  /*fin*/   sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sTW,
  /*ack*/   sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES,
  /*rst*/   sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sSR,
  /*  OUTPUT */
  /*syn*/   sSS, sES, sSS, sSR, sSS, sSS, sSS, sSS, sSS, sLI, sSR,
  /*fin*/   sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW,
  /*ack*/   sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES,
  /*rst*/   sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL,
  /*  INPUT-ONLY */
  /*syn*/   sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR,
  /*fin*/   sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW,
  /*ack*/   sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES,
  /*rst*/   sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL,
];

// ip_vs_proto_tcp.c tcp_state_active_table[] (since Linux 4.8, "count pre-established TCP states as
// active"): SYN_SENT, SYN_RECV, SYNACK and ESTABLISHED count in activeconns.
const ACTIVE: StaticArray<bool> = [false, true, true, true, false, false, false, false, false, false, true];

// ip_vs_proto_tcp.c tcp_timeouts[] in ms (index TCP_S_*; the last is IP_VS_TCP_S_LAST).
const TCP_TIMEOUTS_DEFAULT: StaticArray<u32> = [
  2 * 1000,          // NONE
  15 * 60 * 1000,    // ESTABLISHED
  2 * 60 * 1000,     // SYN_SENT
  1 * 60 * 1000,     // SYN_RECV
  2 * 60 * 1000,     // FIN_WAIT
  2 * 60 * 1000,     // TIME_WAIT
  10 * 1000,         // CLOSE
  60 * 1000,         // CLOSE_WAIT
  30 * 1000,         // LAST_ACK
  2 * 60 * 1000,     // LISTEN
  120 * 1000,        // SYNACK
  2 * 1000,          // LAST
];
const tcpTimeouts: StaticArray<u32> = new StaticArray<u32>(12);
// ip_vs_proto_udp.c udp_timeouts[IP_VS_UDP_S_NORMAL] = 5*60*HZ.
export const UDP_TIMEOUT_DEFAULT: u32 = 5 * 60 * 1000;
let udpTimeout: u32 = UDP_TIMEOUT_DEFAULT;
// ip_vs_proto_sctp.c sctp_timeouts[IP_VS_SCTP_S_ESTABLISHED] = 15*60*HZ.
const SCTP_TIMEOUT: u32 = 15 * 60 * 1000;
// ip_vs_conn.c ip_vs_conn_new(): cp->timeout = 3*HZ until the first state transition.
export const NEW_CONN_TIMEOUT: u32 = 3 * 1000;

export function protoReset(): void {
  for (let i = 0; i < 12; i++) unchecked(tcpTimeouts[i] = TCP_TIMEOUTS_DEFAULT[i]);
  udpTimeout = UDP_TIMEOUT_DEFAULT;
}
protoReset();

// ip_vs_proto_tcp.c tcp_state_idx(): RST first, then SYN, FIN, ACK; -1 for none of them.
// @ts-ignore: decorator
@inline export function tcpStateIdx(flags: u8): i32 {
  if ((flags & 0x04) != 0) return 3;
  if ((flags & 0x02) != 0) return 0;
  if ((flags & 0x01) != 0) return 1;
  if ((flags & 0x10) != 0) return 2;
  return -1;
}

/**
 * ip_vs_proto_tcp.c set_tcp_state(): the next state for a segment with `flags` seen in `dir`
 * (DIR_INPUT, DIR_OUTPUT or DIR_INPUT_ONLY). A segment with none of RST/SYN/FIN/ACK → CLOSE.
 */
export function tcpNextState(state: u8, dir: u32, flags: u8): u8 {
  const idx = tcpStateIdx(flags);
  if (idx < 0 || state >= TCP_S_LAST) return TCP_S_CLOSE;
  const off: u32 = dir == DIR_OUTPUT ? 4 : dir == DIR_INPUT_ONLY ? 8 : 0;
  return unchecked(STATES[(off + <u32>idx) * 11 + <u32>state]);
}

// @ts-ignore: decorator
@inline export function tcpStateActive(state: u8): bool {
  return state < TCP_S_LAST && unchecked(ACTIVE[state]);
}

/** The timeout (ms) of a connection of `proto` in `state`. */
export function stateTimeout(proto: u8, state: u8): u32 {
  if (proto == PROTO_TCP) return unchecked(tcpTimeouts[state < TCP_S_LAST ? state : TCP_S_LAST]);
  if (proto == PROTO_SCTP) return SCTP_TIMEOUT;
  return udpTimeout;
}

/** ipvsadm --set tcp tcpfin udp (seconds; 0 leaves a value unchanged). False for an out-of-range value. */
export function setTimeouts(tcpSec: u32, tcpfinSec: u32, udpSec: u32): bool {
  const limit: u32 = 0x7FFFFFFF / 1000;
  if (tcpSec > limit || tcpfinSec > limit || udpSec > limit) return false;
  if (tcpSec != 0) unchecked(tcpTimeouts[TCP_S_ESTABLISHED] = tcpSec * 1000);
  if (tcpfinSec != 0) unchecked(tcpTimeouts[TCP_S_FIN_WAIT] = tcpfinSec * 1000);
  if (udpSec != 0) udpTimeout = udpSec * 1000;
  return true;
}

/** ipvsadm -L --timeout: 0 tcp, 1 tcpfin, 2 udp (ms). */
export function getTimeout(which: u32): u32 {
  if (which == 0) return unchecked(tcpTimeouts[TCP_S_ESTABLISHED]);
  if (which == 1) return unchecked(tcpTimeouts[TCP_S_FIN_WAIT]);
  return udpTimeout;
}
