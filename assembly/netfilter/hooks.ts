// netfilter/hooks.ts — one packet through the iptables tables in Linux's hook order, with
// conntrack where the kernel has it:
//   from outside:  raw PREROUTING → conntrack → mangle PREROUTING → nat PREROUTING (NEW only) →
//                  routing: to a node address → mangle INPUT → filter INPUT → nat INPUT (NEW only)
//                           otherwise        → mangle FORWARD → filter FORWARD →
//                                              mangle POSTROUTING → nat POSTROUTING (NEW only)
//                  → confirm
//   from the node: raw OUTPUT → conntrack → mangle OUTPUT → nat OUTPUT (NEW only) → filter OUTPUT →
//                  mangle POSTROUTING → nat POSTROUTING (NEW only) → confirm; then, when addressed
//                  to the node itself (after NAT), looped back: raw PREROUTING → mangle PREROUTING →
//                  mangle INPUT → filter INPUT
// With IPVS configured, IPVS runs at its own hook points and priorities (ip_vs_core.c ip_vs_ops4 /
// ip_vs_ops6): in LOCAL_IN after filter INPUT and before nat INPUT (ip_vs_out_hook at
// NF_IP_PRI_NAT_SRC - 2, ip_vs_remote_request at NF_IP_PRI_NAT_SRC - 1); in LOCAL_OUT after nat
// OUTPUT and before filter OUTPUT (NF_IP_PRI_NAT_DST + 1 and + 2); in FORWARD after filter FORWARD
// (ip_vs_forward_icmp at 99, ip_vs_out_hook at 100). A packet IPVS forwards is stolen and sent again
// through LOCAL_OUT (ip_vs_xmit.c ip_vs_send_or_cont / ip_vs_nat_send_or_cont): raw, mangle, nat and
// filter OUTPUT, then POSTROUTING — where kube-proxy's MASQUERADE applies — carrying
// ipvs_property, so IPVS ignores it there. With net.ipv4.vs.conntrack=1 its unconfirmed
// connection's reply tuple is pointed at the real server (ip_vs_nf_conntrack.c
// ip_vs_update_conntrack → nf_conntrack_alter_reply, which sets no DNAT status); without it the
// packet goes on untracked (ip_vs_notrack).
// At each NAT hook the packet gets its connection's binding for that hook (nat.ts); a NEW
// connection's nat chain runs first and makes that binding. Confirm stores a NEW connection only
// when its packet was accepted, so a dropped first packet leaves nothing behind. Writes the
// descriptor as pipeline.ts processOne does (verdict, reason, ctstate, mark, ct, len).
// Never allocates; never reads a clock (`now` is passed in).
import { ctEventsOn, ctEventAt, CT_EVENT_NEW } from "../conntrack/events";
import { Flow, inner, PROTO_TCP, PROTO_UDP, PROTO_SCTP, PROTO_ICMP, PROTO_ICMPV6, FAMILY_V4 } from "../flow";
import {
  VERDICT_PASS, VERDICT_FORWARD, VERDICT_DROP, VERDICT_REPLY, R_NONE, R_TRUNCATED, R_CT_FULL, R_POLICY, R_NO_ENDPOINTS, R_BAD_HEADER,
} from "../verdict";
import { ipv4OptionsValid, IPV4_HEADER } from "../wire/ipv4";
import { D_VERDICT, D_CTSTATE, D_REASON, D_MARK, D_CT, D_AUX, D_LEN, META_LOCAL, META_CSUM_VALID } from "../io";
import { l4ChecksumOk } from "../wire/checksum";
import { bump, S_VERDICT, S_REASON, S_CT_NEW, S_CT_HIT, S_CT_RELATED, S_DNAT, S_SNAT } from "../stats";
import { isLocal } from "../node";
import {
  ctLookup, ctInsert, ctPacket, ctStatus, ctInvertTuple, ctLookupRelated, ctOpens,
  CT_NONE, CT_SEEN_REPLY, CT_SNAT, CT_DNAT,
} from "../conntrack/table";
import { CT_INVALID, CT_REPEAT } from "../conntrack/state";
import { natStatus } from "../conntrack/entry";
import { rejectReply } from "../reply/reject";
import {
  TABLE_RAW, TABLE_MANGLE, TABLE_NAT, TABLE_FILTER, HOOK_PREROUTING, HOOK_INPUT, HOOK_FORWARD,
  HOOK_OUTPUT, HOOK_POSTROUTING, CTS_INVALID, CTS_ESTABLISHED, CTS_RELATED, CTS_NEW, CTS_UNTRACKED,
  builtinId,
} from "./format";
import { pk, pendOrig, pendReply, pktReset, ctmLoad, ctmStore, hasCt } from "./ctx";
import { registryInit } from "./registry";
import { walk, V_ACCEPT, V_DROP, rejectCode } from "./walk";
import { natPacket, natNullSource, MANIP_SRC, MANIP_DST } from "./nat";
import { traceMode, iptCount, IS_PACKETS, IS_INVALID, IS_REJECT_REPLIES, IS_REJECT_SILENT, IS_CONFIRM_FAILED } from "./counters";
import { ipvsReady, ipvsInHook, ipvsOutHook, IH_NONE, IH_ACCEPT, IH_STOLEN, IH_DONE } from "../ipvs/core";
import { resultFor, masqIn, RF_ONE_PACKET } from "../ipvs/xmit";
import { sysctl, SYS_CONNTRACK, FWD_MASQ, FWD_TUNNEL, FWD_LOCAL } from "../ipvs/defs";
import { traceFollow, followPort, FOLLOW_LEAVE } from "../ipvs/trace";
import { destFwd } from "../ipvs/dest";
import { entryAt, E_STATUS } from "../conntrack/entry";

// Whether processBatch runs packets through iptProcess (iptables mode) or the direct pipeline.
export let iptMode = false;
export function iptSetMode(on: bool): void {
  if (on) registryInit();
  iptMode = on;
}

function finish(f: Flow, verdict: u8, reason: u16, len: u32): void {
  const d = pk.d;
  store<u8>(d, verdict, D_VERDICT);
  store<u16>(d, reason, D_REASON);
  store<u8>(d, <u8>pk.ctState, D_CTSTATE);
  store<u32>(d, pk.mark, D_MARK);
  store<u32>(d, pk.pending ? CT_NONE : pk.ctIdx, D_CT);
  store<u32>(d, pk.ipvs ? pk.ipvsDest : 0xFFFFFFFF, D_AUX);
  store<u32>(d, len, D_LEN);
  if (traceMode) return;
  bump(S_VERDICT + verdict);
  if (reason != R_NONE) bump(S_REASON + reason);
}

// nf_conntrack_icmpv6.c noct_valid_new[]: MLD and neighbour discovery are never tracked.
@inline function icmpv6Untracked(type: u8): bool {
  return (type >= 130 && type <= 136) || type == 143;
}

// nf_conntrack_in(): the packet's connection and state. In a trace the stored connection is only
// read: its state comes from its status instead of the TCP state machine. `verify`: an incoming
// packet whose checksum nobody has verified yet; with nf_conntrack_checksum on (the default, which
// kube-proxy leaves) one that fails is INVALID, never tracked (tcp_error, udp_error, icmp_error,
// icmpv6_error and sctp_error at PRE_ROUTING).
function conntrackIn(f: Flow, verify: bool): void {
  if (pk.untracked) {
    pk.ctState = CTS_UNTRACKED;
    return;
  }
  if (verify && !l4ChecksumOk(f)) {
    pk.ctState = CTS_INVALID;
    iptCount(IS_INVALID);
    return;
  }
  if (f.proto == PROTO_ICMPV6 && !f.isIcmpError && icmpv6Untracked(f.icmpType)) {
    pk.untracked = true;
    pk.ctState = CTS_UNTRACKED;
    return;
  }
  const now = pk.now;
  if (f.isIcmpError) {
    const h = ctLookupRelated(inner, f, now);
    if (h == CT_NONE) {
      pk.ctState = CTS_INVALID;
      iptCount(IS_INVALID);
      return;
    }
    pk.ctIdx = h >> 1;
    pk.ctDir = h & 1;
    pk.related = true;
    pk.ctState = CTS_RELATED;
    ctmLoad();
    if (!traceMode) bump(S_CT_RELATED);
    return;
  }
  let h = ctLookup(f, now);
  if (h != CT_NONE) {
    const idx = h >> 1, dir = h & 1;
    let st: u32;
    if (traceMode) {
      st = dir == 1 || (ctStatus(idx) & CT_SEEN_REPLY) != 0 ? CTS_ESTABLISHED : CTS_NEW;
    } else {
      st = ctPacket(idx, dir, f, now);
      // A SYN reopening a closed connection killed the old entry (expired now, so a lookup would
      // miss): the packet starts a new one.
      if (st == CT_REPEAT) h = CT_NONE;
    }
    if (h != CT_NONE) {
      if (st == CT_INVALID) {
        pk.ctState = CTS_INVALID;
        iptCount(IS_INVALID);
        return;
      }
      pk.ctIdx = idx;
      pk.ctDir = dir;
      pk.ctState = st;
      ctmLoad();
      if (!traceMode) bump(S_CT_HIT);
      return;
    }
  }
  if (!ctOpens(f)) {
    pk.ctState = CTS_INVALID;
    iptCount(IS_INVALID);
    return;
  }
  pk.pending = true;
  pendOrig.copyFrom(f);
  ctInvertTuple(pendReply, pendOrig);
  pk.ctState = CTS_NEW;
}

// One table at one hook. V_ACCEPT, V_DROP (pk.reason) or V_REJECT (walk.ts rejectCode).
@inline function table(t: u32, hook: u32, f: Flow): u32 {
  pk.hook = hook;
  return walk(builtinId(f.family, t, hook), f);
}

// A NAT hook: the nat chain for a connection without this hook's binding yet, then the binding.
function natHook(hook: u32, manip: u32, f: Flow): u32 {
  if (pk.pending && !pk.untracked && !(manip == MANIP_DST ? pk.dnatInit : pk.snatInit)) {
    const v = table(TABLE_NAT, hook, f);
    if (v != V_ACCEPT) return v;
    // No NAT target made this hook's binding: nf_nat_alloc_null_binding().
    if (manip == MANIP_DST) pk.dnatInit = true;
    else if (!pk.snatInit) {
      natNullSource();
      pk.snatInit = true;
    }
  }
  if (natPacket(f, manip)) return V_ACCEPT;
  pk.reason = R_TRUNCATED;
  return V_DROP;
}

// Stores an accepted NEW connection (__nf_conntrack_confirm). False when it could not be stored.
function confirm(f: Flow): bool {
  if (traceMode) return true;
  if (!pk.pending) {
    ctmStore(pk.ctIdx);
    return true;
  }
  if (pk.untracked) return true;
  const idx = ctInsert(pendOrig, pendReply, pk.now);
  if (idx == CT_NONE) {
    iptCount(IS_CONFIRM_FAILED);
    return false;
  }
  ctPacket(idx, 0, f, pk.now);
  pk.pending = false;
  pk.ctIdx = idx;
  ctmStore(idx);
  bump(S_CT_NEW);
  const nat = natStatus(pendOrig, pendReply) & ~pk.natHide;
  // The reply tuple IPVS altered is no NAT binding: no IPS_DST_NAT (see the header).
  if (pk.natHide != 0) {
    const e = entryAt(idx);
    store<u8>(e + E_STATUS, load<u8>(e + E_STATUS) & ~<u8>pk.natHide);
  }
  if ((nat & CT_DNAT) != 0) bump(S_DNAT);
  if ((nat & CT_SNAT) != 0) bump(S_SNAT);
  if (ctEventsOn) ctEventAt(CT_EVENT_NEW, idx, pk.now);
  return true;
}

// Does a packet the node sends stay on the node? Its own addresses, and loopback (the local
// routing table routes all of 127.0.0.0/8 and ::1 to lo).
function deliveredLocally(f: Flow): bool {
  if (f.family == FAMILY_V4) return (f.d0 & 0xFF) == 127 || isLocal(f.family, f.d0, 0, 0, 0);
  return ((f.d0 | f.d1 | f.d2) == 0 && f.d3 == 0x01000000) || isLocal(f.family, f.d0, f.d1, f.d2, f.d3);
}

// A packet that ends here without being accepted: a stored connection keeps any connmark change
// (the kernel writes it at once); a pending one is forgotten.
function refuse(f: Flow, v: u32): void {
  if (!traceMode && !pk.pending) ctmStore(pk.ctIdx);
  if (v == V_DROP) {
    finish(f, VERDICT_DROP, <u16>pk.reason, f.len);
    return;
  }
  // ipt_REJECT: send the reply if one may be sent; the packet itself is dropped either way.
  const n = rejectReply(f, rejectCode, pk.hook == HOOK_FORWARD);
  if (n == 0) {
    iptCount(IS_REJECT_SILENT);
    finish(f, VERDICT_DROP, R_POLICY, f.len);
    return;
  }
  iptCount(IS_REJECT_REPLIES);
  pk.pending = false;
  finish(f, VERDICT_REPLY, R_POLICY, n);
}

// ---- IPVS at its hook points --------------------------------------------------------------------
const NIL_DEST: u32 = 0xFFFFFFFF;
const AT_LOCAL_IN: u32 = 0;
const AT_LOCAL_OUT: u32 = 1;
const AT_FORWARD: u32 = 2;

// ip_vs_notrack(): the packet leaves its connection (a pending one is never stored).
function untrack(): void {
  pk.pending = false;
  pk.untracked = true;
  pk.ctIdx = CT_NONE;
  pk.ctState = CTS_UNTRACKED;
}

/**
 * The IPVS hook functions registered at `at`, in priority order: ip_vs_out_hook, then (LOCAL_IN,
 * LOCAL_OUT) the request hook. Returns IH_NONE, IH_ACCEPT (the traversal goes on), IH_STOLEN
 * (forwarded: continue with stolen()) or IH_DONE (finished here). A trace takes
 * ipvsTraceAt() instead, which changes no IPVS state.
 */
function ipvsAt(at: u32, f: Flow): u32 {
  if (!ipvsReady || pk.ipvs) return IH_NONE;
  if (traceMode) return ipvsTraceAt(at, f);
  const d = pk.d;
  let r = ipvsOutHook(d, f, pk.now);
  // A stored (confirmed) connection is an old one to IPVS; a pending one is this packet's own.
  if (r == IH_NONE && at != AT_FORWARD) r = ipvsInHook(d, f, pk.now, pk.mark, !pk.pending && pk.ctIdx != CT_NONE);
  // A TCP segment that may not start a connection is let through untouched (no ipvs_property).
  if (r == IH_NONE || (r == IH_ACCEPT && load<u32>(d, D_AUX) == 0xFFFFFFFF)) return IH_NONE;
  pk.ipvs = true;
  pk.ipvsDest = load<u32>(d, D_AUX);
  if (r == IH_DONE) {
    // Dropped, or answered (ICMP port unreachable) in the slot: the connection is not kept.
    if (!pk.pending) ctmStore(pk.ctIdx);
    pk.pending = false;
    finish(f, load<u8>(d, D_VERDICT), load<u16>(d, D_REASON), load<u32>(d, D_LEN));
    return r;
  }
  if (load<u8>(d, D_VERDICT) != VERDICT_PASS) pk.rewritten = true;
  const res = resultFor(d);
  const fwd = load<u8>(res);
  if (sysctl(SYS_CONNTRACK) == 0) {
    if (!pk.untracked && hasCt()) untrack();
  } else if (r == IH_STOLEN && fwd == FWD_MASQ && (load<u8>(res, 2) & RF_ONE_PACKET) == 0) {
    alterReply(f);
  }
  pk.ipvsFwd = fwd;
  // ip_vs_nat_send_or_cont(): a real server on this node takes the packet on in this traversal.
  if (r == IH_STOLEN && fwd == FWD_MASQ && deliveredLocally(f)) return IH_ACCEPT;
  return r;
}

// ip_vs_update_conntrack(): an unconfirmed connection's reply will come from the real server (the
// packet's destination now).
function alterReply(f: Flow): void {
  if (!pk.pending) return;
  const before = natStatus(pendOrig, pendReply);
  pendReply.s0 = f.d0; pendReply.s1 = f.d1; pendReply.s2 = f.d2; pendReply.s3 = f.d3;
  pendReply.sport = f.dport;
  if ((before & CT_DNAT) == 0) pk.natHide |= CT_DNAT;
}

// The IPVS step of a trace: the destination ipvs/trace.ts says a new connection would get (no
// scheduler state, entry or counter changes), applied to the traced packet so the rules after
// IPVS (OUTPUT, POSTROUTING: kube-proxy's MASQUERADE) are traced too. Replies (ip_vs_out) are
// not followed.
function ipvsTraceAt(at: u32, f: Flow): u32 {
  if (at == AT_FORWARD || f.isIcmpError || !(f.proto == PROTO_TCP || f.proto == PROTO_UDP || f.proto == PROTO_SCTP)) return IH_NONE;
  const dest = traceFollow(f, pk.mark, pk.now);
  if (dest == NIL_DEST) return IH_NONE;
  pk.ipvs = true;
  if (dest == FOLLOW_LEAVE) {
    pk.ipvsDest = NIL_DEST;
    const n = rejectReply(f, f.family == FAMILY_V4 ? 3 : 4);
    if (n == 0) finish(f, VERDICT_DROP, R_NO_ENDPOINTS, f.len);
    else finish(f, VERDICT_REPLY, R_NO_ENDPOINTS, n);
    return IH_DONE;
  }
  pk.ipvsDest = dest;
  const fwd = destFwd(dest);
  pk.ipvsFwd = fwd;
  if (fwd == FWD_LOCAL) return IH_ACCEPT;
  pk.rewritten = true;
  if (fwd == FWD_MASQ) masqIn(f, dest, followPort);
  if (sysctl(SYS_CONNTRACK) == 0) {
    if (!pk.untracked && hasCt()) untrack();
  } else if (fwd == FWD_MASQ) {
    alterReply(f);
  }
  if (fwd == FWD_MASQ && deliveredLocally(f)) return IH_ACCEPT;
  return IH_STOLEN;
}

// NF_HOOK(NF_INET_LOCAL_OUT, …, dst_output) for a packet IPVS forwarded: the OUTPUT tables and
// POSTROUTING, then confirm. Its destination binding is set already, so nat OUTPUT runs no chain.
// An IPIP packet now starts with the outer header the Flow does not describe: it leaves without
// another walk (a documented simplification).
function stolen(f: Flow): void {
  let v = V_ACCEPT;
  if (pk.ipvsFwd != FWD_TUNNEL) {
    v = table(TABLE_RAW, HOOK_OUTPUT, f);
    if (v == V_ACCEPT) v = table(TABLE_MANGLE, HOOK_OUTPUT, f);
    if (v == V_ACCEPT) v = natHook(HOOK_OUTPUT, MANIP_DST, f);
    if (v == V_ACCEPT) v = table(TABLE_FILTER, HOOK_OUTPUT, f);
    if (v == V_ACCEPT) v = table(TABLE_MANGLE, HOOK_POSTROUTING, f);
    if (v == V_ACCEPT) v = natHook(HOOK_POSTROUTING, MANIP_SRC, f);
  }
  if (v != V_ACCEPT) { refuse(f, v); return; }
  if (!confirm(f)) { finish(f, VERDICT_DROP, R_CT_FULL, f.len); return; }
  finish(f, VERDICT_FORWARD, R_NONE, f.len);
}

// Runs one parsed packet (flow `f`, descriptor `d`) through the tables: a whole packet or a first
// fragment (Linux reassembles before conntrack; later fragments follow the first, frags.ts). `meta` is the
// descriptor's: bit 0 originated on this node, bits 8–15 ingress and 16–23 egress interface index.
export function iptProcess(d: usize, f: Flow, now: u32, meta: u32): void {
  pktReset(d, now, f.len);
  iptCount(IS_PACKETS);
  pk.local = (meta & META_LOCAL) != 0;
  pk.inIf = (meta >> 8) & 0xFF;
  pk.outIf = (meta >> 16) & 0xFF;
  let v: u32;
  if (!pk.local) {
    v = table(TABLE_RAW, HOOK_PREROUTING, f);
    if (v != V_ACCEPT) { refuse(f, v); return; }
    conntrackIn(f, (meta & META_CSUM_VALID) == 0);
    v = table(TABLE_MANGLE, HOOK_PREROUTING, f);
    if (v == V_ACCEPT) v = natHook(HOOK_PREROUTING, MANIP_DST, f);
    if (v != V_ACCEPT) { refuse(f, v); return; }
    // ip_rcv_finish_core() → ip_rcv_options(): past PREROUTING, malformed options drop the packet
    // (its connection never confirmed).
    if (f.family == FAMILY_V4 && f.l3len > IPV4_HEADER && !ipv4OptionsValid(f.pkt, f.l3len)) {
      pk.reason = R_BAD_HEADER;
      refuse(f, V_DROP);
      return;
    }
    if (isLocal(f.family, f.d0, f.d1, f.d2, f.d3)) {
      v = table(TABLE_MANGLE, HOOK_INPUT, f);
      if (v == V_ACCEPT) v = table(TABLE_FILTER, HOOK_INPUT, f);
      if (v == V_ACCEPT) {
        const r = ipvsAt(AT_LOCAL_IN, f);
        if (r == IH_DONE) return;
        if (r == IH_STOLEN) { stolen(f); return; }
      }
      if (v == V_ACCEPT) v = natHook(HOOK_INPUT, MANIP_SRC, f);
    } else {
      v = table(TABLE_MANGLE, HOOK_FORWARD, f);
      if (v == V_ACCEPT) v = table(TABLE_FILTER, HOOK_FORWARD, f);
      if (v == V_ACCEPT) {
        const r = ipvsAt(AT_FORWARD, f);
        if (r == IH_DONE) return;
        if (r == IH_STOLEN) { stolen(f); return; }
      }
      if (v == V_ACCEPT) v = table(TABLE_MANGLE, HOOK_POSTROUTING, f);
      if (v == V_ACCEPT) v = natHook(HOOK_POSTROUTING, MANIP_SRC, f);
    }
  } else {
    v = table(TABLE_RAW, HOOK_OUTPUT, f);
    if (v != V_ACCEPT) { refuse(f, v); return; }
    conntrackIn(f, false);
    v = table(TABLE_MANGLE, HOOK_OUTPUT, f);
    if (v == V_ACCEPT) v = natHook(HOOK_OUTPUT, MANIP_DST, f);
    if (v == V_ACCEPT) {
      const r = ipvsAt(AT_LOCAL_OUT, f);
      if (r == IH_DONE) return;
      if (r == IH_STOLEN) { stolen(f); return; }
    }
    if (v == V_ACCEPT) v = table(TABLE_FILTER, HOOK_OUTPUT, f);
    if (v == V_ACCEPT) v = table(TABLE_MANGLE, HOOK_POSTROUTING, f);
    if (v == V_ACCEPT) v = natHook(HOOK_POSTROUTING, MANIP_SRC, f);
    if (v == V_ACCEPT && deliveredLocally(f)) {
      // ip_output() → loopback_xmit() → ip_rcv() → ip_local_deliver(): the packet meets the
      // PREROUTING and INPUT hooks again. Its connection was confirmed in POSTROUTING
      // (ipv4_confirm) and keeps its ctinfo (nf_conntrack_in() skips an skb that has one), and
      // both NAT bindings are set, so no nat chain runs (nf_nat_inet_fn). The input interface
      // stays "none" here, not lo.
      if (!confirm(f)) { finish(f, VERDICT_DROP, R_CT_FULL, f.len); return; }
      v = table(TABLE_RAW, HOOK_PREROUTING, f);
      if (v == V_ACCEPT) v = table(TABLE_MANGLE, HOOK_PREROUTING, f);
      if (v == V_ACCEPT) v = table(TABLE_MANGLE, HOOK_INPUT, f);
      if (v == V_ACCEPT) v = table(TABLE_FILTER, HOOK_INPUT, f);
    }
  }
  if (v != V_ACCEPT) { refuse(f, v); return; }
  if (!confirm(f)) { finish(f, VERDICT_DROP, R_CT_FULL, f.len); return; }
  finish(f, pk.rewritten ? VERDICT_FORWARD : VERDICT_PASS, R_NONE, f.len);
}
