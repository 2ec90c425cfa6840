// ipvs/core.ts — one parsed packet through IPVS (net/netfilter/ipvs/ip_vs_core.c ip_vs_in /
// ip_vs_out, ip_vs_schedule, ip_vs_leave; the protocols' conn_schedule and state_transition):
//   1. a connection entry for client → virtual service (in): state machine, counters, forward to
//      its destination — unless the destination was removed (drop; expire_nodest_conn expires the
//      entry) or a SYN finds the entry in TIME_WAIT/CLOSE (conn_reuse_mode: expire it, reschedule);
//   2. a masqueraded connection's reply from its real server (out): source back to the virtual
//      address:port, OUTPUT direction of the state machine;
//   3. an ICMP error quoting a packet of an entry: relayed (icmp.ts);
//   4. a virtual service (fwmark from the descriptor's mark, then address:port, then port zero):
//      TCP is scheduled only on a SYN without RST (or any non-RST with sloppy_tcp) — other segments
//      pass on untouched; then persistence or the scheduler picks a destination, an entry is made
//      (none for one-packet UDP), and the packet is forwarded; no destination → ICMP port
//      unreachable back to the client (ip_vs_leave), a full table → drop.
// ipvsProcess returns false when IPVS has nothing to do with the packet (the caller carries on);
// otherwise it has written the descriptor's verdict, reason, length and aux (= destination id, or
// 0xFFFFFFFF) and the side record (xmit.ts). It does not bump the core's verdict/reason counters
// (the caller's finish does); IPVS's own counters are in defs.ts. Never allocates, never reads a
// clock, never traps on packet bytes.
import { Flow, FRAG_LATER, FAMILY_V4, PROTO_TCP, PROTO_UDP, PROTO_SCTP } from "../flow";
import { VERDICT_PASS, VERDICT_FORWARD, VERDICT_DROP, VERDICT_REPLY, R_NONE, R_NO_ENDPOINTS, R_CT_FULL, R_POLICY, R_TOO_BIG } from "../verdict";
import { D_VERDICT, D_REASON, D_LEN, D_AUX, D_MARK } from "../io";
import { rejectReply } from "../reply/reject";
import {
  NIL, FWD_MASQ, FWD_LOCAL, FWD_TUNNEL, FWD_MASK, CF_NOOUTPUT, CF_INACTIVE, CF_ONE_PACKET,
  SVC_F_PERSISTENT, SVC_F_ONEPACKET, DIR_INPUT, DIR_OUTPUT, DIR_INPUT_ONLY, TCP_S_TIME_WAIT,
  TCP_S_CLOSE, TCP_S_FIN_WAIT, UDP_S_NORMAL, sysctl, SYS_CONN_REUSE_MODE, SYS_EXPIRE_NODEST_CONN,
  SYS_SLOPPY_TCP, count, IC_PACKETS, IC_CONN_NEW, IC_ONE_PACKET, IC_NO_DEST, IC_TABLE_FULL,
  IC_DEST_UNAVAILABLE, IC_NOT_SCHEDULED, IC_TOO_BIG, IC_REUSED, IC_OUT_PACKETS, IC_NO_TUNNEL_SOURCE,
} from "./defs";
import { destAvailable, destWeight, destPort, destFwd, destBind, destUnbind, destMoveActive, destSvc } from "./dest";
import { svcFind, svcFlags, svcPort, svcFwmark, svcSched, svcSchedState, svcFirst, svcUnref } from "./service";
import {
  connInGet, connOutGet, connNew, connExpire, connTouch, connDest, connFlags, setConnFlags, connState,
  setConnState, setConnTimeout, connControl, connControlAdd, connDport, connAt, connVport, C_VADDR,
} from "./conn";
import { tcpNextState, tcpStateActive, stateTimeout } from "./proto";
import { schedule } from "./sched/index";
import { persistPick, psTemplate, psDest, psDport, PS_OK, PS_NO_DEST } from "./persist";
import { inStats, outStats, connStats } from "./est";
import { ipvsIcmp } from "./icmp";
import { masqIn, masqOut, tunnel, resultFor, resultClear, resultSet, RF_NEW, RF_TEMPLATE, RF_ONE_PACKET, RF_REPLY } from "./xmit";

export let ipvsReady = false;
export function setIpvsReady(on: bool): void { ipvsReady = on; }

const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
// ICMP destination unreachable / port unreachable (RFC 792 code 3) and ICMPv6 port unreachable (4).
const ICMP_PORT_UNREACH: u32 = 3;
const ICMP6_PORT_UNREACH: u32 = 4;

export function finish(d: usize, verdict: u8, reason: u16, len: u32, dest: u32): void {
  store<u8>(d, verdict, D_VERDICT);
  store<u16>(d, reason, D_REASON);
  store<u32>(d, len, D_LEN);
  store<u32>(d, dest, D_AUX);
}

/**
 * ip_vs_proto_tcp.c set_tcp_state() / udp_state_transition(): the entry's next state and timeout;
 * a TCP connection entering or leaving an active state moves between the destination's active and
 * inactive counts.
 */
function setState(c: u32, dir: u32, f: Flow): void {
  const proto = f.proto;
  if (proto != PROTO_TCP) {
    setConnState(c, UDP_S_NORMAL);
    setConnTimeout(c, stateTimeout(proto, UDP_S_NORMAL));
    return;
  }
  let flags = connFlags(c);
  let sdir = dir;
  if ((flags & CF_NOOUTPUT) != 0) {
    if (dir == DIR_OUTPUT) flags &= ~CF_NOOUTPUT;
    else sdir = DIR_INPUT_ONLY;
  }
  const old = connState(c);
  const next = tcpNextState(old, sdir, f.tcpFlags);
  if (next != old) {
    const d = connDest(c);
    const active = tcpStateActive(next);
    if ((flags & CF_INACTIVE) == 0 && !active) {
      destMoveActive(d, false);
      flags |= CF_INACTIVE;
    } else if ((flags & CF_INACTIVE) != 0 && active) {
      destMoveActive(d, true);
      flags &= ~CF_INACTIVE;
    }
  }
  setConnFlags(c, flags);
  setConnState(c, next);
  setConnTimeout(c, stateTimeout(PROTO_TCP, next));
}

// cp->packet_xmit towards the real server. Returns false when the packet was dropped (finished).
export function transmit(d: usize, f: Flow, dest: u32, dport: u16, fwd: u8): bool {
  if (fwd == FWD_MASQ) {
    masqIn(f, dest, dport);
    finish(d, VERDICT_FORWARD, R_NONE, f.len, dest);
  } else if (fwd == FWD_TUNNEL) {
    const n = tunnel(f, dest);
    if (n <= 1) {
      count(n == 0 ? IC_TOO_BIG : IC_NO_TUNNEL_SOURCE);
      finish(d, VERDICT_DROP, n == 0 ? R_TOO_BIG : R_POLICY, f.len, dest);
      return false;
    }
    f.len = n;
    finish(d, VERDICT_FORWARD, R_NONE, n, dest);
  } else if (fwd == FWD_LOCAL) {
    finish(d, VERDICT_PASS, R_NONE, f.len, dest);
  } else {
    finish(d, VERDICT_FORWARD, R_NONE, f.len, dest);
  }
  return true;
}

// ip_vs_in() for a packet of an existing entry. `mark` is the packet's fwmark; `oldCt` whether it
// belongs to a confirmed netfilter connection (ip_vs_conn_uses_old_conntrack).
function inPacket(d: usize, f: Flow, c: u32, now: u32, mark: u32, oldCt: bool): void {
  const dest = connDest(c);
  const r = resultFor(d);
  if (!destAvailable(dest)) {
    // The destination server is not available. Without expire_nodest_conn the packet is dropped.
    // With it the entry expires, and a packet with no confirmed connection of its own (a UDP flow
    // whose conntrack entry went with its endpoint, as kube-proxy flushes them) is scheduled anew
    // at once, as the flow's first; one with a confirmed connection is still dropped.
    const expire = sysctl(SYS_EXPIRE_NODEST_CONN) != 0;
    if (expire) connExpire(c, now);
    count(IC_DEST_UNAVAILABLE);
    if (expire && !oldCt) {
      const s = svcFind(f.family, mark, f.proto, f.d0, f.d1, f.d2, f.d3, f.dport);
      if (s != NIL) { newPacket(d, f, s, now); return; }
      // No virtual service any more: the packet goes on untouched (ip_vs_try_to_schedule).
      notScheduled(d, f);
      return;
    }
    resultClear(r);
    finish(d, VERDICT_DROP, R_NO_ENDPOINTS, f.len, dest);
    return;
  }
  inStats(dest, f.len);
  setState(c, DIR_INPUT, f);
  const fwd = <u8>(connFlags(c) & FWD_MASK);
  resultSet(r, fwd, 0, connState(c), c, dest, destSvc(dest));
  transmit(d, f, dest, connDport(c), fwd);
  connTouch(c, now);
}

// ip_vs_out() → handle_response() for a masqueraded connection's reply.
function outPacket(d: usize, f: Flow, c: u32, now: u32): void {
  const dest = connDest(c);
  count(IC_OUT_PACKETS);
  outStats(dest, f.len);
  setState(c, DIR_OUTPUT, f);
  const p = connAt(c);
  masqOut(f, load<u32>(p, C_VADDR), load<u32>(p, C_VADDR + 4), load<u32>(p, C_VADDR + 8), load<u32>(p, C_VADDR + 12), connVport(c));
  const r = resultFor(d);
  resultSet(r, FWD_MASQ, RF_REPLY, connState(c), c, dest, destSvc(dest));
  // The reply goes back to the client: no next hop of IPVS's choosing.
  store<u8>(r, 0, 1);
  finish(d, VERDICT_FORWARD, R_NONE, f.len, dest);
  connTouch(c, now);
}

// ip_vs_leave(): no destination — ICMP port unreachable to the client (for TCP too), then drop.
function leave(d: usize, f: Flow): void {
  count(IC_NO_DEST);
  resultClear(resultFor(d));
  const len = rejectReply(f, f.family == FAMILY_V4 ? ICMP_PORT_UNREACH : ICMP6_PORT_UNREACH);
  if (len != 0) finish(d, VERDICT_REPLY, R_NO_ENDPOINTS, len, NIL);
  else finish(d, VERDICT_DROP, R_NO_ENDPOINTS, f.len, NIL);
}

// ip_vs_in.c is_new_conn_expected(): a SYN may reuse a closed, uncontrolled TCP entry.
export function newConnExpected(c: u32): bool {
  if (connControl(c) != NIL) return false;
  const st = connState(c);
  return st == TCP_S_TIME_WAIT || st == TCP_S_CLOSE ||
    ((sysctl(SYS_CONN_REUSE_MODE) & 2) != 0 && st == TCP_S_FIN_WAIT && (connFlags(c) & CF_NOOUTPUT) != 0);
}

// NF_ACCEPT without an entry: the packet continues as normal, IPVS keeps out of it.
function notScheduled(d: usize, f: Flow): void {
  count(IC_NOT_SCHEDULED);
  resultClear(resultFor(d));
  finish(d, VERDICT_PASS, R_NONE, f.len, NIL);
}

// ip_vs.h FTPDATA: the FTP data port.
const FTPDATA: u16 = 20;

// tcp/udp/sctp_conn_schedule() + ip_vs_schedule() + the rest of ip_vs_in() for the first packet.
function newPacket(d: usize, f: Flow, s: u32, now: u32): void {
  const proto = f.proto;
  const r = resultFor(d);
  if (proto == PROTO_TCP) {
    const fl = f.tcpFlags;
    if ((fl & TCP_RST) != 0 || !(sysctl(SYS_SLOPPY_TCP) != 0 || (fl & TCP_SYN) != 0)) {
      notScheduled(d, f);
      return;
    }
  }
  // ip_vs_schedule(): a connection from port 20 (active FTP data, made by the real server itself
  // when it is local) is never scheduled, persistent services included: NF_ACCEPT.
  if (f.sport == FTPDATA) {
    notScheduled(d, f);
    return;
  }
  const flags = svcFlags(s);
  const onePacket = (flags & SVC_F_ONEPACKET) != 0 && proto == PROTO_UDP;
  let dest: u32, dport: u16, ct = NIL;
  if ((flags & SVC_F_PERSISTENT) != 0) {
    const ps = persistPick(s, f, now);
    if (ps != PS_OK) {
      if (ps == PS_NO_DEST) { leave(d, f); return; }
      count(IC_TABLE_FULL);
      resultClear(r);
      finish(d, VERDICT_DROP, R_CT_FULL, f.len, NIL);
      return;
    }
    dest = psDest; dport = psDport; ct = psTemplate;
  } else {
    // Port zero is only supported in persistent services.
    if (svcFwmark(s) == 0 && f.dport != svcPort(s)) { leave(d, f); return; }
    dest = schedule(svcSched(s), svcSchedState(s), svcFirst(s), f, flags, now);
    if (dest == NIL) { leave(d, f); return; }
    dport = destPort(dest) != 0 ? destPort(dest) : f.dport;
  }
  const fwd = destFwd(dest);
  if (onePacket) {
    // ip_vs_conn_new(IP_VS_CONN_F_ONE_PACKET): bound, never hashed, expired at once after the packet.
    const cf: u16 = CF_ONE_PACKET | CF_INACTIVE;
    destBind(dest, cf);
    connStats(dest, s);
    inStats(dest, f.len);
    count(IC_ONE_PACKET);
    resultSet(r, fwd, RF_NEW | RF_ONE_PACKET | (ct != NIL ? RF_TEMPLATE : 0), UDP_S_NORMAL, NIL, dest, s);
    transmit(d, f, dest, dport, fwd);
    if (ct != NIL) connTouch(ct, now);
    const sv = destSvc(dest);
    if (destUnbind(dest, cf)) svcUnref(sv);
    return;
  }
  const c = connNew(f.family, proto, f.s0, f.s1, f.s2, f.s3, f.sport, f.d0, f.d1, f.d2, f.d3, f.dport, dest, dport, 0, now);
  if (c == NIL) {
    if (ct != NIL) connTouch(ct, now);
    count(IC_TABLE_FULL);
    resultClear(r);
    finish(d, VERDICT_DROP, R_CT_FULL, f.len, NIL);
    return;
  }
  if (ct != NIL) {
    connControlAdd(c, ct);
    connTouch(ct, now);
  }
  count(IC_CONN_NEW);
  connStats(dest, s);
  inStats(dest, f.len);
  setState(c, DIR_INPUT, f);
  resultSet(r, fwd, RF_NEW | (ct != NIL ? RF_TEMPLATE : 0), connState(c), c, dest, s);
  transmit(d, f, dest, dport, fwd);
  connTouch(c, now);
}

// ip_vs_in() for a packet that may belong to an entry: the entry, after the conn_reuse_mode check
// a SYN makes (a new connection on an old entry is rescheduled when the old one is done with).
function inConn(f: Flow, now: u32): u32 {
  const proto = f.proto;
  let c = connInGet(f.family, proto, f.s0, f.s1, f.s2, f.s3, f.sport, f.d0, f.d1, f.d2, f.d3, f.dport, now, false);
  if (c != NIL && proto == PROTO_TCP && (f.tcpFlags & TCP_SYN) != 0) {
    // A quiescent destination's entry is rescheduled with expire_nodest_conn whatever
    // conn_reuse_mode says; a finished connection's only when conn_reuse_mode is on.
    const dest = connDest(c);
    const resched = (sysctl(SYS_EXPIRE_NODEST_CONN) != 0 && destWeight(dest) == 0) ||
      (sysctl(SYS_CONN_REUSE_MODE) != 0 && newConnExpected(c));
    if (resched && connExpire(c, now)) {
      count(IC_REUSED);
      c = NIL;
    }
  }
  return c;
}

@inline function ported(f: Flow): bool {
  return f.proto == PROTO_TCP || f.proto == PROTO_UDP || f.proto == PROTO_SCTP;
}

/**
 * Runs parsed packet `f` (descriptor `d`) through IPVS. Returns false when no IPVS connection and no
 * virtual service matches (the descriptor is untouched); true when IPVS decided the packet.
 * `meta` is the descriptor's (unused by IPVS today: local and forwarded clients are treated alike).
 */
export function ipvsProcess(d: usize, f: Flow, now: u32, meta: u32): bool {
  if (!ipvsReady || f.frag == FRAG_LATER) return false;
  if (f.isIcmpError) return ipvsIcmp(d, f, now);
  if (!ported(f)) return false;
  let c = inConn(f, now);
  if (c != NIL) {
    count(IC_PACKETS);
    // IPVS alone: no netfilter connection tracking, so never an old connection.
    inPacket(d, f, c, now, load<u32>(d, D_MARK), false);
    return true;
  }
  c = connOutGet(f.family, f.proto, f.s0, f.s1, f.s2, f.s3, f.sport, f.d0, f.d1, f.d2, f.d3, f.dport, now);
  if (c != NIL) {
    count(IC_PACKETS);
    outPacket(d, f, c, now);
    return true;
  }
  const s = svcFind(f.family, load<u32>(d, D_MARK), f.proto, f.d0, f.d1, f.d2, f.d3, f.dport);
  if (s == NIL) return false;
  count(IC_PACKETS);
  newPacket(d, f, s, now);
  return true;
}

// ---- IPVS inside the netfilter hooks (netfilter/hooks.ts) ----------------------------------------
// What an IPVS hook function tells the hook traversal (ip_vs_core.c return values).
export const IH_NONE: u32 = 0;    // not IPVS's packet: NF_ACCEPT, nothing changed
export const IH_ACCEPT: u32 = 1;  // NF_ACCEPT after IPVS handled it (maybe rewritten): the traversal goes on
export const IH_STOLEN: u32 = 2;  // NF_STOLEN: forwarded, re-injected at LOCAL_OUT (ip_vs_send_or_cont)
export const IH_DONE: u32 = 3;    // dropped, or answered in the slot (ip_vs_leave): the verdict is final

// The descriptor's IPVS verdict as a hook result.
function hookResult(d: usize): u32 {
  const v = load<u8>(d, D_VERDICT);
  if (v == VERDICT_DROP || v == VERDICT_REPLY) return IH_DONE;
  if (v == VERDICT_PASS) return IH_ACCEPT;
  const fwd = load<u8>(resultFor(d));
  return fwd == FWD_LOCAL ? IH_ACCEPT : IH_STOLEN;
}

/**
 * ip_vs_out_hook(): a reply of a masqueraded entry from its real server (source back to the virtual
 * address:port), or an ICMP error about an entry. IH_NONE or IH_ACCEPT; writes the descriptor's
 * verdict, length and aux when it handled the packet.
 */
export function ipvsOutHook(d: usize, f: Flow, now: u32): u32 {
  if (!ipvsReady || f.frag == FRAG_LATER) return IH_NONE;
  if (f.isIcmpError) return ipvsIcmp(d, f, now) ? IH_ACCEPT : IH_NONE;
  if (!ported(f)) return IH_NONE;
  const c = connOutGet(f.family, f.proto, f.s0, f.s1, f.s2, f.s3, f.sport, f.d0, f.d1, f.d2, f.d3, f.dport, now);
  if (c == NIL) return IH_NONE;
  count(IC_PACKETS);
  outPacket(d, f, c, now);
  return IH_ACCEPT;
}

/**
 * ip_vs_remote_request4/6 (LOCAL_IN) and ip_vs_local_request4/6 (LOCAL_OUT) → ip_vs_in(): a packet
 * of an entry, or the first packet to a virtual service (`mark` is the packet's fwmark). Returns
 * IH_NONE (not IPVS's), IH_ACCEPT (not scheduled, or the local-node method), IH_STOLEN (forwarded:
 * the side record (xmit.ts) names method, entry and destination) or IH_DONE.
 */
export function ipvsInHook(d: usize, f: Flow, now: u32, mark: u32, oldCt: bool): u32 {
  if (!ipvsReady || f.frag == FRAG_LATER || f.isIcmpError || !ported(f)) return IH_NONE;
  const c = inConn(f, now);
  if (c != NIL) {
    count(IC_PACKETS);
    inPacket(d, f, c, now, mark, oldCt);
    return hookResult(d);
  }
  const s = svcFind(f.family, mark, f.proto, f.d0, f.d1, f.d2, f.d3, f.dport);
  if (s == NIL) return IH_NONE;
  count(IC_PACKETS);
  newPacket(d, f, s, now);
  return hookResult(d);
}

/**
 * xt_ipvs.c ipvs_mt(): the entry of a packet IPVS already handled, looked up with the packet's
 * addresses inverted (ip_vs_fill_iph_skb(…, inverse = true) → conn_out_get), so it finds the entry
 * of a request on its way to the real server (client → real server) — NIL otherwise.
 */
export function ipvsMatchConn(f: Flow, now: u32): u32 {
  if (!ipvsReady || !ported(f)) return NIL;
  return connOutGet(f.family, f.proto, f.d0, f.d1, f.d2, f.d3, f.dport, f.s0, f.s1, f.s2, f.s3, f.sport, now, true);
}

/** A real server's reply to a masqueraded IPVS connection (ip_vs_out's look-up, changing nothing). */
export function ipvsIsReply(f: Flow, now: u32): bool {
  if (!ipvsReady || !ported(f)) return false;
  return connOutGet(f.family, f.proto, f.s0, f.s1, f.s2, f.s3, f.sport, f.d0, f.d1, f.d2, f.d3, f.dport, now) != NIL;
}
