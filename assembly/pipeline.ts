// pipeline.ts — one packet through the core: parse once; in iptables mode hand it to the rule
// engine (netfilter/hooks.ts), which runs IPVS at the kernel's hook points when IPVS is set up;
// without iptables rules, IPVS virtual services and connections alone (ipvs/core.ts);
// otherwise (direct mode) follow an existing flow (NAT both ways,
// ICMP errors translated inside and out), or classify a new one (svc/decide.ts: kube-proxy's
// outcome for it → destination and masquerade decision → conntrack insert → rewrite). A later
// fragment follows its datagram's first fragment (frags.ts). Writes the verdict into the packet's
// descriptor and counts it. Never allocates, never reads a clock, never traps on packet bytes.
import { ctEventsOn, ctEventAt, CT_EVENT_NEW } from "./conntrack/events";
import { Tuple, Flow, flow, inner, FRAG_LATER, FRAG_FIRST, FAMILY_V4, PROTO_TCP, PROTO_UDP, PROTO_ICMP, PROTO_ICMPV6 } from "./flow";
import {
  VERDICT_PASS, VERDICT_FORWARD, VERDICT_DROP, VERDICT_REPLY,
  R_NONE, R_TRUNCATED, R_BAD_HEADER, R_FRAGMENT, R_CT_FULL, R_CT_INVALID, R_NO_ENDPOINTS, R_NAT_PORTS, R_BAD_SLOT, R_NO_SERVICE, R_POLICY, R_TOO_BIG,
} from "./verdict";
import { D_OFF, D_LEN, D_CAP, D_META, D_VERDICT, D_CTSTATE, D_REASON, D_MARK, D_CT, D_AUX, META_CSUM_PARTIAL, META_CSUM_VALID, META_TRACKED_ONLY, META_LOCAL, ioData, IO_DATA_BYTES } from "./io";
import { bump, S_VERDICT, S_REASON, S_CT_NEW, S_CT_HIT, S_CT_RELATED, S_DNAT, S_SNAT } from "./stats";
import { parse } from "./wire/parse";
import { ipv4OptionsValid, IPV4_HEADER } from "./wire/ipv4";
import { l4ChecksumOk, ipv4HeaderValid } from "./wire/checksum";
import { setSrc, setDst, setSrcInline, setDstInline, setInnerSrc, setInnerDst, innerNatable } from "./nat/rewrite";
import {
  ctLookup, ctInsert, ctPacket, ctPacketFound, ctOrig, ctReply, ctLookupRelated, icmpInverse, CT_NONE,
  ctEntry, ctEntryNat, ctEntryIsV4, ctEntrySrc4, ctEntryDst4, ctEntrySport, ctEntryDport,
} from "./conntrack/table";
import { CT_INVALID, CT_RELATED, CT_REPEAT } from "./conntrack/state";
import { svcDecide, decidedDest, decidedMasq, decidedHostId, SD_NONE, SD_DNAT, SD_REJECT, SD_DROP_LOCAL, SD_DROP_SOURCE } from "./svc/decide";
import { svcClusterIP } from "./svc/table";
import { ctOpens } from "./conntrack/track";
import { rejectReply } from "./reply/reject";
import { iptProcess, iptMode } from "./netfilter/hooks";
import { ipvsProcess, ipvsReady, ipvsIsReply } from "./ipvs/core";
import { masqChoosePort } from "./nat/masq";
import { masqAddr, haveMasq, toServiceCIDR, isLocal } from "./node";
import { dnsProcess } from "./dns/serve";
import { fragKey, fragRemember, fragFollow, fragSide } from "./frags";
import { followFragment, resultFor, FOLLOW_KEPT, FOLLOW_TOO_BIG, FOLLOW_NO_SOURCE } from "./ipvs/xmit";

// Scratch tuples, reserved once.
const tOrig: Tuple = changetype<Tuple>(heap.alloc(offsetof<Tuple>()));
const tReply: Tuple = changetype<Tuple>(heap.alloc(offsetof<Tuple>()));

@inline function finish(d: usize, verdict: u8, reason: u16): void {
  store<u8>(d, verdict, D_VERDICT);
  store<u16>(d, reason, D_REASON);
  bump(S_VERDICT + verdict);
  if (verdict == VERDICT_DROP) bump(S_REASON + reason);
}

// Destination-unreachable codes: port unreachable (RFC 792) / ICMPv6 port unreachable (RFC 4443).
const ICMP_PORT_UNREACH: u32 = 3;
const ICMP6_PORT_UNREACH: u32 = 4;

@inline function isIcmp(proto: u8): bool { return proto == PROTO_ICMP || proto == PROTO_ICMPV6; }

// Rewrites a packet of connection `idx` travelling in `dir` to what the other side expects:
// its source becomes the other direction's destination, its destination the other's source.
// An entry without SNAT/DNAT status has a reply tuple that is the exact inverse of the original
// (entry.ts natStatus), so a packet matching either direction already carries what the other side
// expects: nothing to rewrite. IPv4 reads the other direction straight from the entry.
function translate(f: Flow, idx: u32, dir: u32): bool {
  const e = ctEntry(idx);
  if (ctEntryNat(e) == 0) return false;
  if (ctEntryIsV4(e)) {
    const o = dir ^ 1;
    const os = ctEntrySrc4(e, o), od = ctEntryDst4(e, o);
    const osport = ctEntrySport(e, o), odport = ctEntryDport(e, o);
    let changed = false;
    if (f.s0 != od || (!isIcmp(f.proto) && f.sport != odport)) {
      setSrcInline(f, od, 0, 0, 0, odport);
      changed = true;
    }
    if (f.d0 != os || f.dport != osport) {
      setDstInline(f, os, 0, 0, 0, osport);
      changed = true;
    }
    return changed;
  }
  const other = tReply;
  if (dir == 0) ctReply(idx, other); else ctOrig(idx, other);
  let changed = false;
  const icmp = isIcmp(f.proto);
  if (f.s0 != other.d0 || f.s1 != other.d1 || f.s2 != other.d2 || f.s3 != other.d3 || (!icmp && f.sport != other.dport)) {
    setSrc(f, other.d0, other.d1, other.d2, other.d3, other.dport);
    changed = true;
  }
  if (f.d0 != other.s0 || f.d1 != other.s1 || f.d2 != other.s2 || f.d3 != other.s3 || f.dport != other.sport) {
    setDst(f, other.s0, other.s1, other.s2, other.s3, other.sport);
    changed = true;
  }
  return changed;
}

// An ICMP error about one of our connections (nf_conntrack_inet_error + nf_nat_icmp_reply_translation):
// the quoted packet, inverted, names the connection and the error's direction. The quoted header
// is put back to how its sender wrote it; the outer addresses get the error direction's NAT.
function related(d: usize, f: Flow, now: u32): void {
  const h = ctLookupRelated(inner, f, now);
  if (h == CT_NONE) { finish(d, VERDICT_PASS, R_NONE); return; }
  const idx = h >> 1, dir = h & 1;
  store<u32>(d, idx, D_CT);
  store<u8>(d, CT_RELATED, D_CTSTATE);
  bump(S_CT_RELATED);
  if (ctEntryNat(ctEntry(idx)) != 0 && !innerNatable(inner)) { finish(d, VERDICT_DROP, R_TRUNCATED); return; }
  const self = tOrig, other = tReply;
  if (dir == 0) { ctOrig(idx, self); ctReply(idx, other); } else { ctReply(idx, self); ctOrig(idx, other); }
  // Quoted packet travelled in the other direction; restore its pre-NAT form (other's tuple).
  setInnerSrc(f, inner, other.s0, other.s1, other.s2, other.s3, other.sport);
  setInnerDst(f, inner, other.d0, other.d1, other.d2, other.d3, other.dport);
  // Outer header: the address NAT a packet of this direction gets (no ports on an ICMP header).
  const srcNat = self.s0 != other.d0 || self.s1 != other.d1 || self.s2 != other.d2 || self.s3 != other.d3;
  const dstNat = self.d0 != other.s0 || self.d1 != other.s1 || self.d2 != other.s2 || self.d3 != other.s3;
  if (srcNat) setSrc(f, other.d0, other.d1, other.d2, other.d3, f.sport);
  if (dstNat) setDst(f, other.s0, other.s1, other.s2, other.s3, f.dport);
  finish(d, VERDICT_FORWARD, R_NONE);
}


// kube-proxy's `-j REJECT` (icmp-port-unreachable / icmp6-port-unreachable) in the filter table,
// reached from FORWARD for a packet passing through the node (a VIP is no local address). Its rules
// see only NEW connections: a packet that cannot open one is INVALID and dropped instead.
function rejectNew(d: usize, f: Flow, reason: u16): void {
  if (!ctOpens(f)) { finish(d, VERDICT_DROP, R_CT_INVALID); return; }
  const forwarded = (load<u32>(d, D_META) & META_LOCAL) == 0 && !isLocal(f.family, f.d0, f.d1, f.d2, f.d3);
  const len = rejectReply(f, f.family == FAMILY_V4 ? ICMP_PORT_UNREACH : ICMP6_PORT_UNREACH, forwarded);
  if (len != 0) { store<u32>(d, len, D_LEN); finish(d, VERDICT_REPLY, reason); return; }
  finish(d, VERDICT_DROP, reason);
}

function newFlow(d: usize, f: Flow, now: u32): void {
  const sd = svcDecide(f, now, (load<u32>(d, D_META) & META_LOCAL) != 0);
  if (sd == SD_NONE) {
    // A cluster IP asked for a port or protocol none of its Services has: rejected, as kube-proxy's
    // nftables mode rejects traffic to invalid ports of ClusterIPs (cluster-ips-check).
    if (svcClusterIP(f.family, f.d0, f.d1, f.d2, f.d3)) { rejectNew(d, f, R_NO_SERVICE); return; }
    // A service-CIDR address no Service holds: dropped, never routed on (through a TUN it would
    // come straight back), as kube-proxy's nftables mode drops traffic to unallocated ClusterIPs.
    if (toServiceCIDR(f)) finish(d, VERDICT_DROP, R_NO_SERVICE);
    else finish(d, VERDICT_PASS, R_NONE);
    return;
  }
  store<u32>(d, decidedHostId, D_AUX);
  if (sd == SD_REJECT) { rejectNew(d, f, R_NO_ENDPOINTS); return; }
  // kube-proxy's DROP rules, too, see only NEW connections (`-m conntrack --ctstate NEW`); a
  // packet that cannot open one is INVALID and KUBE-FORWARD drops it.
  if (sd != SD_DNAT && !ctOpens(f)) { finish(d, VERDICT_DROP, R_CT_INVALID); return; }
  // DROP for a Local traffic policy without local endpoints, or outside loadBalancerSourceRanges.
  if (sd == SD_DROP_LOCAL) { finish(d, VERDICT_DROP, R_NO_ENDPOINTS); return; }
  if (sd == SD_DROP_SOURCE) { finish(d, VERDICT_DROP, R_POLICY); return; }
  const dest = decidedDest;
  const b0 = load<u32>(dest), b1 = load<u32>(dest, 4), b2 = load<u32>(dest, 8), b3 = load<u32>(dest, 12);
  const bport = load<u16>(dest, 16);
  const icmp = isIcmp(f.proto);

  const reply = tReply;
  reply.family = f.family; reply.proto = f.proto; reply.pad = 0;
  reply.icmpType = icmp ? <u8>icmpInverse(f.proto, f.icmpType) : 0;
  reply.s0 = b0; reply.s1 = b1; reply.s2 = b2; reply.s3 = b3;
  reply.sport = icmp ? f.sport : bport;
  // Masquerade as kube-proxy's KUBE-MARK-MASQ rules decide it (svc/decide.ts).
  if (decidedMasq && haveMasq(f.family)) {
    const m = masqAddr(f.family);
    reply.d0 = load<u32>(m); reply.d1 = load<u32>(m, 4); reply.d2 = load<u32>(m, 8); reply.d3 = load<u32>(m, 12);
  } else {
    reply.d0 = f.s0; reply.d1 = f.s1; reply.d2 = f.s2; reply.d3 = f.s3;
  }
  // Even without masquerade the reply tuple must be unique (two Services, one backend, one client
  // port): the kernel's NAT then remaps the source port too (nf_nat_setup_info → get_unique_tuple).
  if (!masqChoosePort(reply, f.sport, now)) { finish(d, VERDICT_DROP, R_NAT_PORTS); return; }
  const idx = ctInsert(f, reply, now);
  if (idx == CT_NONE) { finish(d, VERDICT_DROP, R_CT_FULL); return; }
  store<u32>(d, idx, D_CT);
  const st = ctPacket(idx, 0, f, now);
  store<u8>(d, st, D_CTSTATE);
  // A first packet that cannot open a connection (SYN/ACK, FIN, RST, echo reply …): the tracker
  // has already killed the entry.
  if (st == CT_INVALID) { finish(d, VERDICT_DROP, R_CT_INVALID); return; }
  bump(S_CT_NEW);
  if (ctEventsOn) ctEventAt(CT_EVENT_NEW, idx, now);
  setDst(f, b0, b1, b2, b3, icmp ? reply.dport : bport);
  bump(S_DNAT);
  if (reply.d0 != f.s0 || reply.d1 != f.s1 || reply.d2 != f.s2 || reply.d3 != f.s3 || reply.dport != f.sport) {
    setSrc(f, reply.d0, reply.d1, reply.d2, reply.d3, reply.dport);
    bump(S_SNAT);
  }
  finish(d, VERDICT_FORWARD, R_NONE);
}

// io.ts META_TRACKED_ONLY: the packet belongs to a connection conntrack or IPVS holds, or is an
// ICMP error about one. Looks only; creates nothing.
function tracked(f: Flow, now: u32): bool {
  if (f.isIcmpError) return ctLookupRelated(inner, f, now) != CT_NONE;
  return ctLookup(f, now) != CT_NONE || ipvsIsReply(f, now);
}

// Returns the bytes the packet adds to S_BYTES (0 for a bad slot); the caller counts S_PACKETS and
// S_BYTES once per batch.
export function processOne(d: usize, now: u32): u32 {
  const off = load<u32>(d, D_OFF), len = load<u32>(d, D_LEN), cap = load<u32>(d, D_CAP);
  const meta = load<u32>(d, D_META);
  store<u8>(d, 0, D_CTSTATE);
  store<u32>(d, 0, D_MARK);
  store<u64>(d, 0xFFFFFFFFFFFFFFFF, D_CT); // ct and aux: none
  if (<u64>off + <u64>cap > <u64>IO_DATA_BYTES || len > cap) { finish(d, VERDICT_DROP, R_BAD_SLOT); return 0; }
  const f = flow;
  const r = parse(f, ioData + off, len, cap);
  if (r != R_NONE) { finish(d, VERDICT_DROP, r); return len; }
  // ip_rcv_core(): an incoming IPv4 header whose checksum fails is dropped before any hook.
  if (f.family == FAMILY_V4 && (meta & META_LOCAL) == 0 && !ipv4HeaderValid(f.pkt, f.l3len)) { finish(d, VERDICT_DROP, R_BAD_HEADER); return len; }
  // ip_rcv_core() / ip6_rcv_core(): bytes past the IP length (link-layer padding) are trimmed off.
  if (f.len < len) store<u32>(d, f.len, D_LEN);
  f.csumPartial = (meta & META_CSUM_PARTIAL) != 0;
  if (f.frag == FRAG_LATER) {
    // A later fragment goes where its datagram's first fragment went (frags.ts), in every mode.
    const v = fragFollow(f, now);
    if (v < 0) { finish(d, VERDICT_DROP, R_FRAGMENT); return len; }
    const side = fragSide();
    const n = side != 0 ? followFragment(d, f, side) : FOLLOW_KEPT;
    if (n == FOLLOW_TOO_BIG || n == FOLLOW_NO_SOURCE) { finish(d, VERDICT_DROP, n == FOLLOW_TOO_BIG ? R_TOO_BIG : R_POLICY); return len; }
    if (n != FOLLOW_KEPT) store<u32>(d, n, D_LEN);
    finish(d, <u8>v, R_NONE);
    return len;
  }
  const first = f.frag == FRAG_FIRST;
  if (first) fragKey(f);
  route(d, f, now, meta);
  if (first) {
    const v = load<u8>(d, D_VERDICT);
    if (v == VERDICT_FORWARD || v == VERDICT_PASS) fragRemember(f, v, now, load<u32>(d, D_AUX) != 0xFFFFFFFF ? resultFor(d) : 0);
  }
  return len;
}

// nf_conntrack_checksum: an incoming packet whose checksum fails is INVALID to conntrack, and
// KUBE-FORWARD drops it; it opens, moves and un-NATs no connection. Not for a packet of this node
// or one the host verified (io.ts META_CSUM_VALID).
@inline function checksumFails(f: Flow, meta: u32): bool {
  return (meta & (META_LOCAL | META_CSUM_VALID)) == 0 && !l4ChecksumOk(f);
}

// One whole packet or first fragment, parsed into `f`, through the mode in use.
function route(d: usize, f: Flow, now: u32, meta: u32): void {
  if ((meta & META_TRACKED_ONLY) != 0 && !tracked(f, now)) { finish(d, VERDICT_PASS, R_NONE); return; }
  if (iptMode) { iptProcess(d, f, now, meta); return; }
  // ip_rcv_options(): malformed IPv4 options drop a received packet before IPVS or the Service
  // rules see it (iptables mode checks past its PREROUTING chains, as the kernel does).
  if (f.family == FAMILY_V4 && (meta & META_LOCAL) == 0 && f.l3len > IPV4_HEADER && !ipv4OptionsValid(f.pkt, f.l3len)) {
    finish(d, VERDICT_DROP, R_BAD_HEADER);
    return;
  }
  if (ipvsReady && ipvsProcess(d, f, now, meta)) {
    // IPVS wrote the verdict and keeps its own counters; the core counts the verdict too.
    const v = load<u8>(d, D_VERDICT);
    bump(S_VERDICT + v);
    if (v == VERDICT_DROP) bump(S_REASON + load<u16>(d, D_REASON));
    return;
  }
  if (f.isIcmpError) {
    if (checksumFails(f, meta)) { finish(d, VERDICT_DROP, R_CT_INVALID); return; }
    related(d, f, now);
    store<u32>(d, f.len, D_LEN);
    return;
  }
  // Cluster DNS (dns/serve.ts): a UDP query to the node's cluster DNS address is answered in the
  // slot (VERDICT_REPLY) before conntrack and the service lookup (it checks the datagram's
  // checksum itself, as the node's UDP socket would); TCP to it goes on (counted).
  if ((f.proto == PROTO_UDP || f.proto == PROTO_TCP) && dnsProcess(d, f)) return;
  if (checksumFails(f, meta)) { finish(d, VERDICT_DROP, R_CT_INVALID); return; }
  const h = ctLookup(f, now);
  if (h != CT_NONE) {
    const idx = h >> 1, dir = h & 1;
    store<u32>(d, idx, D_CT);
    const st = ctPacketFound(h, f, now);
    if (st == CT_REPEAT) { newFlow(d, f, now); return; }
    store<u8>(d, st, D_CTSTATE);
    if (st == CT_INVALID) { finish(d, VERDICT_DROP, R_CT_INVALID); return; }
    bump(S_CT_HIT);
    finish(d, translate(f, idx, dir) ? VERDICT_FORWARD : VERDICT_PASS, R_NONE);
    return;
  }
  newFlow(d, f, now);
  return;
}
