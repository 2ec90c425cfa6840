// rewrite.ts — NAT's edits to a parsed packet: a new source or destination address and port, written
// into the packet and into the Flow, with every checksum that covers them kept right incrementally
// (RFC 1624 eqn. 3) — the IPv4 header checksum, the TCP/UDP/ICMPv6 checksum through the pseudo-header,
// the ICMP identifier — and SCTP's CRC32c recomputed (a CRC has no incremental form NAT can use).
// For ICMP errors about a NATed connection it also rewrites the quoted header and the outer ICMP
// checksum that covers it, as net/netfilter/nf_nat_proto.c nf_nat_icmp_reply_translation() does.
//
// Never decides what to rewrite (conntrack and the NAT targets do), never changes the packet's length
// and never allocates. The Flow must come from a successful wire/parse.ts parse of the same bytes.
//
// Addresses are given as Tuple words (raw 32-bit loads of the packet's bytes; IPv4 uses a0 only),
// ports in host order. For ICMP/ICMPv6 echo (and ICMPv4's other query pairs) `port` is the identifier,
// which the Tuple keeps in both sport and dport.

import {
  Flow, FAMILY_V4, FAMILY_V6, FRAG_FIRST, FRAG_LATER,
  PROTO_TCP, PROTO_UDP, PROTO_SCTP, PROTO_ICMP, PROTO_ICMPV6,
} from "../flow";
import { applyDelta, applyDeltaPartial, delta16, delta32 } from "../wire/checksum";
import { IPV4_SRC, IPV4_DST, IPV4_CSUM, ipv4TotalLen } from "../wire/ipv4";
import { IPV6_SRC, IPV6_DST, IPV6_HEADER, IPV6_PLEN } from "../wire/ipv6";
import { TCP_CSUM, TCP_HEADER } from "../wire/tcp";
import { UDP_CSUM, UDP_CSUM_MANGLED_0 } from "../wire/udp";
import { SCTP_CSUM, SCTP_HEADER, sctpChecksum } from "../wire/sctp";
import { ICMP_CSUM, ICMP_ID, icmpHasId } from "../wire/icmp";
import { icmpv6HasId } from "../wire/icmpv6";

// Port fields of TCP, UDP and SCTP share their offsets.
const L4_SPORT: u32 = 0;
const L4_DPORT: u32 = 2;

// Rewrites the source address and port of the packet `f` describes.
export function setSrc(f: Flow, a0: u32, a1: u32, a2: u32, a3: u32, port: u16): void {
  setSrcInline(f, a0, a1, a2, a3, port);
}

// Rewrites the destination address and port of the packet `f` describes.
export function setDst(f: Flow, a0: u32, a1: u32, a2: u32, a3: u32, port: u16): void {
  setDstInline(f, a0, a1, a2, a3, port);
}

// setSrc / setDst inlined into the caller, for the established-flow path (pipeline.ts translate).
// @ts-ignore: decorator
@inline export function setSrcInline(f: Flow, a0: u32, a1: u32, a2: u32, a3: u32, port: u16): void {
  if (plainV4(f)) manipV4(f, false, a0, port);
  else manip(f, false, a0, a1, a2, a3, port, false);
}
// @ts-ignore: decorator
@inline export function setDstInline(f: Flow, a0: u32, a1: u32, a2: u32, a3: u32, port: u16): void {
  if (plainV4(f)) manipV4(f, true, a0, port);
  else manip(f, true, a0, a1, a2, a3, port, false);
}

// The common case: an unfragmented or first-fragment IPv4 TCP/UDP packet with full checksums and
// its checksum field present. manipV4 then makes exactly manip's edits, minus its bookkeeping.
// @ts-ignore: decorator
@inline function plainV4(f: Flow): bool {
  const proto = f.proto;
  return f.family == FAMILY_V4 && !f.csumPartial && f.frag != FRAG_LATER &&
    ((proto == PROTO_TCP && f.l4len >= TCP_CSUM + 2) || proto == PROTO_UDP);
}

// manip() for a plainV4 packet, not quoted: the address with the header checksum (csum_replace4),
// the port, and the TCP/UDP checksum by both changes at once (an IPv4 UDP checksum of 0 stays 0;
// a result of 0 is sent as CSUM_MANGLED_0, as nf_nat_proto.c udp_manip_pkt()).
// @ts-ignore: decorator
@inline function manipV4(f: Flow, isDst: bool, a0: u32, port: u16): void {
  const pkt = f.pkt;
  const at = pkt + (isDst ? IPV4_DST : IPV4_SRC);
  const pseudo = delta32(load<u32>(at), a0);
  store<u32>(at, a0);
  applyDelta(pkt + IPV4_CSUM, pseudo);
  const l4 = pkt + f.l3len;
  const pat = l4 + (isDst ? L4_DPORT : L4_SPORT);
  const neu = bswap<u16>(port);
  const change = pseudo + delta16(load<u16>(pat), neu);
  store<u16>(pat, neu);
  if (isDst) { f.d0 = a0; f.dport = port; }
  else { f.s0 = a0; f.sport = port; }
  if (f.proto == PROTO_TCP) {
    applyDelta(l4 + TCP_CSUM, change);
  } else {
    const field = l4 + UDP_CSUM;
    if (load<u16>(field) != 0 && applyDelta(field, change) == 0) store<u16>(field, UDP_CSUM_MANGLED_0);
  }
}

// Rewrites the source of the packet quoted in the ICMP error `f` (parsed into `q`, normally the
// global `inner`), then the outer ICMP/ICMPv6 checksum by the same byte changes. The outer header
// itself is the caller's: setSrc/setDst on `f` (addresses only for an error). A quote that named no
// connection (no family) is left as it is.
export function setInnerSrc(f: Flow, q: Flow, a0: u32, a1: u32, a2: u32, a3: u32, port: u16): void {
  if (!f.isIcmpError || q.family == 0) return;
  const bytes = manip(q, false, a0, a1, a2, a3, port, true);
  patchOuter(f, bytes);
}

// Rewrites the destination of the packet quoted in the ICMP error `f`; see setInnerSrc.
export function setInnerDst(f: Flow, q: Flow, a0: u32, a1: u32, a2: u32, a3: u32, port: u16): void {
  if (!f.isIcmpError || q.family == 0) return;
  const bytes = manip(q, true, a0, a1, a2, a3, port, true);
  patchOuter(f, bytes);
}

// nf_nat_proto.c l4proto_manip_pkt(): a quoted TCP, UDP or SCTP header is translated only when
// its first 8 bytes are there; an ICMP error quoting fewer is dropped by the NAT that would
// translate it (a connection without NAT passes it as it is).
export function innerNatable(q: Flow): bool {
  const p = q.proto;
  return !(p == PROTO_TCP || p == PROTO_UDP || p == PROTO_SCTP) || q.len - q.l3len >= 8;
}

// The quoted bytes sit at even offsets of the ICMP message (innerOff = header + 8, IP headers are
// multiples of 4), so their 16-bit deltas apply to its checksum unchanged. With checksum offload the
// field holds only the pseudo-header sum, which quoted bytes are not part of.
function patchOuter(f: Flow, bytes: u64): void {
  if (f.csumPartial) return;
  applyDelta(f.pkt + f.l3len + ICMP_CSUM, bytes);   // ICMPv6's checksum is at the same offset
}

// Rewrites one end (`isDst`) of `f`'s packet. `quoted` marks a header inside an ICMP error, whose
// transport part may be cut short. Returns the ones-complement sum of all byte changes made
// (delta16/delta32 terms), for an enclosing checksum.
function manip(f: Flow, isDst: bool, a0: u32, a1: u32, a2: u32, a3: u32, port: u16, quoted: bool): u64 {
  const pkt = f.pkt;
  let pseudo: u64;   // the addresses' change: part of the IPv4 header and of every pseudo-header
  let bytes: u64;
  if (f.family == FAMILY_V4) {
    const at = pkt + (isDst ? IPV4_DST : IPV4_SRC);
    pseudo = delta32(load<u32>(at), a0);
    store<u32>(at, a0);
    // nf_nat_proto.c nf_nat_ipv4_manip_pkt(): csum_replace4 on the header checksum.
    const field = pkt + IPV4_CSUM;
    const old = load<u16>(field);
    bytes = pseudo + delta16(old, applyDelta(field, pseudo));
    if (isDst) f.d0 = a0;
    else f.s0 = a0;
  } else {
    const at = pkt + (isDst ? IPV6_DST : IPV6_SRC);
    pseudo = delta32(load<u32>(at), a0) + delta32(load<u32>(at, 4), a1) +
      delta32(load<u32>(at, 8), a2) + delta32(load<u32>(at, 12), a3);
    store<u32>(at, a0);
    store<u32>(at, a1, 4);
    store<u32>(at, a2, 8);
    store<u32>(at, a3, 12);
    bytes = pseudo;
    if (isDst) { f.d0 = a0; f.d1 = a1; f.d2 = a2; f.d3 = a3; }
    else { f.s0 = a0; f.s1 = a1; f.s2 = a2; f.s3 = a3; }
  }
  // A later fragment has no transport header: its checksum was fixed with the first fragment's.
  if (f.frag == FRAG_LATER) return bytes;

  // Parse guaranteed the transport header's fixed part; of a quoted one, only the ports (or the
  // ICMP header), and the fields past the bytes present are left alone, as nf_nat_proto.c does.
  const l4 = pkt + f.l3len;
  const n = quoted ? f.len - f.l3len : f.l4len;
  const proto = f.proto;
  if (proto == PROTO_TCP || proto == PROTO_UDP || proto == PROTO_SCTP) {
    const at = l4 + (isDst ? L4_DPORT : L4_SPORT);
    const old = load<u16>(at);
    const neu = bswap<u16>(port);
    store<u16>(at, neu);
    const portDelta = delta16(old, neu);
    bytes += portDelta;
    if (isDst) f.dport = port;
    else f.sport = port;
    if (proto == PROTO_TCP) {
      // nf_nat_proto.c tcp_manip_pkt(): the checksum only when the whole 20-byte header is
      // there (a quote may end before it: RFC 792 guarantees 8 bytes); else only the ports change.
      if (n >= TCP_HEADER) bytes += fixL4(f, l4 + TCP_CSUM, pseudo, portDelta, false);
    } else if (proto == PROTO_UDP) {
      // nf_nat_proto.c udp_manip_pkt(): an IPv4 datagram sent without a checksum stays without.
      const field = l4 + UDP_CSUM;
      if (n >= UDP_CSUM + 2 && (f.family == FAMILY_V6 || f.csumPartial || load<u16>(field) != 0)) {
        bytes += fixL4(f, field, pseudo, portDelta, true);
      }
    } else {
      bytes += fixSctp(f, l4, quoted);
    }
    return bytes;
  }

  const v4icmp = proto == PROTO_ICMP && f.family == FAMILY_V4;
  const v6icmp = proto == PROTO_ICMPV6 && f.family == FAMILY_V6;
  if (!v4icmp && !v6icmp) return bytes;   // unknown protocol: addresses only
  // ICMPv4's checksum has no pseudo-header (RFC 792); ICMPv6's has (RFC 4443 §2.3).
  let change: u64 = v6icmp ? pseudo : 0;
  const hasId = !f.isIcmpError && (v6icmp ? icmpv6HasId(f.icmpType) : icmpHasId(f.icmpType));
  let idDelta: u64 = 0;
  if (hasId) {
    // nf_nat_proto.c icmp_manip_pkt(): the identifier is NATed like a port.
    const at = l4 + ICMP_ID;
    const old = load<u16>(at);
    const neu = bswap<u16>(port);
    store<u16>(at, neu);
    idDelta = delta16(old, neu);
    bytes += idDelta;
    f.sport = port;
    f.dport = port;
  }
  const field = l4 + ICMP_CSUM;
  const old = load<u16>(field);
  let nc: u16;
  if (f.csumPartial) {
    if (!v6icmp) return bytes;
    nc = applyDeltaPartial(field, pseudo);
  } else {
    change += idDelta;
    nc = applyDelta(field, change);
  }
  return bytes + delta16(old, nc);
}

// Updates a TCP/UDP checksum field for an address (pseudo-header) and port change. With checksum
// offload the field holds the uncomplemented pseudo-header sum: only the addresses are part of it
// (nf_nat_proto.c passes ports with pseudohdr=false, which net/core/utils.c
// inet_proto_csum_replace2() skips under CHECKSUM_PARTIAL). Returns the field's own change.
function fixL4(f: Flow, field: usize, pseudo: u64, portDelta: u64, udp: bool): u64 {
  const old = load<u16>(field);
  let nc: u16;
  if (f.csumPartial) nc = applyDeltaPartial(field, pseudo);
  else nc = applyDelta(field, pseudo + portDelta);
  // nf_nat_proto.c udp_manip_pkt(): a result of 0 is sent as 0xFFFF (CSUM_MANGLED_0), since 0
  // would mean "no checksum".
  if (udp && nc == 0) {
    nc = UDP_CSUM_MANGLED_0;
    store<u16>(field, nc);
  }
  return delta16(old, nc);
}

// Recomputes the SCTP CRC32c after a port change, when it can be: not with checksum offload
// (nf_nat_proto.c sctp_manip_pkt() leaves CHECKSUM_PARTIAL to the device), not in a first fragment
// (the CRC covers fragments not present), and for a quoted header only when the whole quoted SCTP
// packet is present. Returns the field's change.
function fixSctp(f: Flow, l4: usize, quoted: bool): u64 {
  if (f.csumPartial || f.frag == FRAG_FIRST) return 0;
  let len = f.l4len;
  if (quoted) {
    const total = f.family == FAMILY_V4
      ? ipv4TotalLen(f.pkt)
      : IPV6_HEADER + <u32>bswap<u16>(load<u16>(f.pkt + IPV6_PLEN));
    if (total > f.len || total < f.l3len + SCTP_HEADER) return 0;
    len = total - f.l3len;
  }
  if (len < SCTP_HEADER) return 0;
  const field = l4 + SCTP_CSUM;
  const old = load<u32>(field);
  const neu = sctpChecksum(l4, len);
  store<u32>(field, neu);
  return delta32(old, neu);
}
