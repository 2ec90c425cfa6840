// reply/reject.ts — REJECT's answer to a packet, built in the packet's own slot, as the kernel's
// nf_reject_ipv4.c / nf_reject_ipv6.c and icmp_send() / icmpv6_send() build it; the direct mode
// uses the same for Services without endpoints. Never allocates; never writes past f.cap; never
// answers what the kernel would not (the caller then just drops).
//
// ICMP / ICMPv6 destination unreachable: a new IP header to the sender, the error header with the
// code, then as much of the rejected packet as fits in 576 bytes (IPv4, RFC 1812 §4.3.2.3) or the
// IPv6 minimum MTU of 1280 (RFC 4443 §2.4 (c)) — and no more than the slot holds. No error about an
// ICMP error (or an unknown ICMP type), to or about a multicast or broadcast address, or for a
// packet whose TCP/UDP checksum is wrong (nf_send_unreach() verifies it first, unless offloaded).
// IPv4: id 0, no DF, TTL 64, TOS (tos & 0x1E) | 0xC0 (IPTOS_PREC_INTERNETCONTROL); the kernel's id
// counter and ICMP rate limit are not modelled.
//
// TCP reset (nf_send_reset): addresses and ports swapped; if the segment carried an ACK the reset
// takes its sequence number from that ACK, otherwise it is a RST|ACK acknowledging seq + SYN + FIN
// + payload; window 0, no options. IPv4: id 0, DF, TTL 64, TOS 0; IPv6: traffic class and flow
// label 0, hop limit 64. No reset answers a reset, a segment with a wrong checksum, or one to or
// from a multicast/broadcast address.
import { Tuple, Flow, FAMILY_V4, FRAG_FIRST, FRAG_LATER, PROTO_TCP, PROTO_UDP, PROTO_SCTP, PROTO_ICMP, PROTO_ICMPV6 } from "../flow";
import { isLocal, haveMasq, masqAddr } from "../node";
import { ipv4HeaderChecksum, pseudoSum, checksumOver, checksumValid, l4ChecksumOk } from "../wire/checksum";
import { TCP_SEQ, TCP_ACK, TCP_FLAGS, TCP_RST, TCP_SYN, TCP_FIN, TCP_ACKF, tcpHeaderLen } from "../wire/tcp";

// REJECT --reject-with tcp-reset (any other value is an ICMP/ICMPv6 destination-unreachable code).
export const REPLY_TCP_RESET: u32 = 0xFFFF;

// sysctl net.ipv4.ip_default_ttl and net.ipv6.conf.*.hop_limit defaults.
export const REPLY_TTL: u8 = 64;

// Replaces the packet `f` describes with the reply for `code`. Returns the reply's length in
// bytes (the packet then starts at f.pkt), or 0 when no reply may be sent — the slot is then
// unchanged. `f` must come from a successful parse of the slot's bytes. `forwarded`: the packet
// is rejected on its way through the node (the FORWARD hook), where the kernel has already
// lowered its TTL or hop limit (ip_forward(), ip6_forward()) — so the quote carries the lower one.
export function rejectReply(f: Flow, code: u32, forwarded: bool = false): u32 {
  if (f.frag == FRAG_LATER) return 0;
  if (code == REPLY_TCP_RESET) return resetReply(f);
  if (code > 255) return 0;
  return unreachReply(f, <u8>code, forwarded);
}

// Is this destination one an error must never be sent about, or a source one must never be sent
// to? Multicast and the IPv4 limited broadcast and "this network" addresses, the IPv6 unspecified
// address (icmp_send()'s RTCF_BROADCAST|RTCF_MULTICAST test; RFC 4443 §2.4 (e)).
function notUnicast(family: u8, a0: u32, a1: u32, a2: u32, a3: u32): bool {
  if (family == FAMILY_V4) {
    const b0 = a0 & 0xFF;
    return b0 == 0 || (b0 & 0xF0) == 0xE0 || a0 == 0xFFFFFFFF;
  }
  return (a0 & 0xFF) == 0xFF || (a0 | a1 | a2 | a3) == 0;
}

// The source of an ICMP error about `f`: its destination when that is one of the node's addresses
// (icmp_send() keeps iph->daddr for RTCF_LOCAL), else the node's own address, as the route back to
// the sender would choose (the masquerade address stands for it; without one, the destination).
function errorSource(f: Flow, out: usize): void {
  if (!isLocal(f.family, f.d0, f.d1, f.d2, f.d3) && haveMasq(f.family)) {
    memory.copy(out, masqAddr(f.family), 16);
    return;
  }
  store<u32>(out, f.d0); store<u32>(out, f.d1, 4); store<u32>(out, f.d2, 8); store<u32>(out, f.d3, 12);
}

// An IPv4 header (20 bytes, no options) at `p`: addresses as raw words, checksum filled in.
function putIpv4(p: usize, tos: u8, total: u32, df: bool, proto: u8, src: u32, dst: u32): void {
  store<u8>(p, 0x45);
  store<u8>(p, tos, 1);
  store<u16>(p, bswap<u16>(<u16>total), 2);
  store<u16>(p, 0, 4);                          // id 0: nf_reject_iphdr_put()
  store<u16>(p, df ? bswap<u16>(0x4000) : 0, 6);
  store<u8>(p, REPLY_TTL, 8);
  store<u8>(p, proto, 9);
  store<u16>(p, 0, 10);
  store<u32>(p, src, 12);
  store<u32>(p, dst, 16);
  store<u16>(p, ipv4HeaderChecksum(p, 20), 10);
}

// An IPv6 header (40 bytes) at `p`: traffic class and flow label 0 (ip6_flow_hdr(ip6h, 0, 0)).
function putIpv6(p: usize, payload: u32, next: u8, src: usize, dst: usize): void {
  store<u32>(p, bswap<u32>(0x60000000));
  store<u16>(p, bswap<u16>(<u16>payload), 4);
  store<u8>(p, next, 6);
  store<u8>(p, REPLY_TTL, 7);
  memory.copy(p + 8, src, 16);
  memory.copy(p + 24, dst, 16);
}

// ---- destination unreachable

const V4_ROOM: u32 = 576 - 20 - 8;
const V6_ROOM: u32 = 1280 - 40 - 8;
const NR_ICMP_TYPES: u8 = 18;

const srcBuf: usize = heap.alloc(16);
const dstBuf: usize = heap.alloc(16);
const pseudo: Tuple = changetype<Tuple>(heap.alloc(offsetof<Tuple>()));

// Does the original's checksum verify, as nf_send_unreach()/nf_send_reset() check it
// (nf_reject_verify_csum, then nf_ip_checksum / nf_ip6_checksum)? Protocols with no 16-bit sum of
// the whole payload are not checked (SCTP, GRE, ESP, AH, UDP-Lite, DCCP). TCP, UDP and the
// family's ICMP are checked as conntrack checks them (wire/checksum.ts l4ChecksumOk: a UDP datagram
// sent without a checksum, a checksum the device finishes or a first fragment's pass); any other
// protocol's payload is summed, with the pseudo-header over IPv6 only.
function rejectChecksumOk(f: Flow): bool {
  const p = f.proto, v4 = f.family == FAMILY_V4;
  if (p == PROTO_SCTP || p == PROTO_GRE || p == PROTO_ESP || p == PROTO_AH || p == PROTO_UDPLITE || p == PROTO_DCCP) return true;
  if (p == PROTO_TCP || p == PROTO_UDP || p == (v4 ? PROTO_ICMP : PROTO_ICMPV6)) return l4ChecksumOk(f);
  if (f.csumPartial || f.frag == FRAG_FIRST) return true;
  const l4 = f.pkt + f.l3len, n = f.l4len;
  return checksumValid(l4, n, v4 ? 0 : pseudoSum(f, p, n));
}

// IP protocol numbers nf_reject_verify_csum() leaves alone (IANA).
const PROTO_DCCP: u8 = 33;
const PROTO_GRE: u8 = 47;
const PROTO_ESP: u8 = 50;
const PROTO_AH: u8 = 51;
const PROTO_UDPLITE: u8 = 136;

// The quoted header at `q` as ip_forward() leaves it: TTL one lower, its checksum updated the way
// ip_decrease_ttl() does (incrementally, so the bytes are the kernel's); IPv6: hop limit one lower.
// A TTL of 0 (which ip_forward() never lets reach the FORWARD hook) is quoted as it came, not
// wrapped to 255 under a checksum that no longer adds up.
function forwardedQuote(q: usize, v4: bool): void {
  if (!v4) {
    if (load<u8>(q, 7) != 0) store<u8>(q, load<u8>(q, 7) - 1, 7);
    return;
  }
  if (load<u8>(q, 8) == 0) return;
  store<u8>(q, load<u8>(q, 8) - 1, 8);
  let check = <u32>load<u16>(q, 10) + 0x0001; // htons(0x0100) in the header's byte order
  check += check >= 0xFFFF ? 1 : 0;
  store<u16>(q, <u16>check, 10);
}

function unreachReply(f: Flow, code: u8, forwarded: bool): u32 {
  const v4 = f.family == FAMILY_V4;
  if (v4 && f.proto == PROTO_ICMP && (f.isIcmpError || f.icmpType > NR_ICMP_TYPES)) return 0;
  if (!v4 && f.proto == PROTO_ICMPV6 && f.icmpType < 128) return 0;   // is_ineligible()
  if (notUnicast(f.family, f.d0, f.d1, f.d2, f.d3) || notUnicast(f.family, f.s0, f.s1, f.s2, f.s3)) return 0;
  if (!rejectChecksumOk(f)) return 0;
  const hdr: u32 = v4 ? 28 : 48;
  const room: u32 = v4 ? V4_ROOM : V6_ROOM;
  let quote = f.len < room ? f.len : room;
  if (hdr + quote > f.cap) {
    // The slot is smaller than the kernel's reply: quote what fits, as long as that is at least
    // the IP header and the 8 bytes RFC 792 asks for.
    if (f.cap < hdr + f.l3len + 8) return 0;
    quote = f.cap - hdr;
  }
  const p = f.pkt;
  errorSource(f, srcBuf);
  store<u32>(dstBuf, f.s0); store<u32>(dstBuf, f.s1, 4); store<u32>(dstBuf, f.s2, 8); store<u32>(dstBuf, f.s3, 12);
  const tos = load<u8>(p, 1);
  memory.copy(p + hdr, p, quote);
  if (forwarded) forwardedQuote(p + hdr, v4);
  const icmp = p + (v4 ? 20 : 40);
  store<u8>(icmp, v4 ? 3 : 1);          // ICMP_DEST_UNREACH / ICMPV6_DEST_UNREACH
  store<u8>(icmp, code, 1);
  store<u16>(icmp, 0, 2);
  store<u32>(icmp, 0, 4);
  if (v4) {
    putIpv4(p, (tos & 0x1E) | 0xC0, hdr + quote, false, PROTO_ICMP, load<u32>(srcBuf), f.s0);
    store<u16>(icmp, checksumOver(icmp, 8 + quote, 2, 0), 2);
  } else {
    putIpv6(p, 8 + quote, PROTO_ICMPV6, srcBuf, dstBuf);
    pseudo.family = f.family;
    pseudo.s0 = load<u32>(srcBuf); pseudo.s1 = load<u32>(srcBuf, 4);
    pseudo.s2 = load<u32>(srcBuf, 8); pseudo.s3 = load<u32>(srcBuf, 12);
    pseudo.d0 = f.s0; pseudo.d1 = f.s1; pseudo.d2 = f.s2; pseudo.d3 = f.s3;
    store<u16>(icmp, checksumOver(icmp, 8 + quote, 2, pseudoSum(pseudo, PROTO_ICMPV6, 8 + quote)), 2);
  }
  return hdr + quote;
}

// ---- TCP reset


function resetReply(f: Flow): u32 {
  if (f.proto != PROTO_TCP) return 0;
  const l4 = f.pkt + f.l3len;
  const flags = load<u8>(l4 + TCP_FLAGS);
  if ((flags & TCP_RST) != 0) return 0;
  if (notUnicast(f.family, f.d0, f.d1, f.d2, f.d3) || notUnicast(f.family, f.s0, f.s1, f.s2, f.s3)) return 0;
  if (!rejectChecksumOk(f)) return 0;
  const v4 = f.family == FAMILY_V4;
  const ip: u32 = v4 ? 20 : 40;
  if (f.cap < ip + 20) return 0;
  // Everything the reset needs from the original, before the slot is overwritten.
  const sport = load<u16>(l4), dport = load<u16>(l4, 2);
  const seq = bswap<u32>(load<u32>(l4 + TCP_SEQ));
  const ackSeq = load<u32>(l4 + TCP_ACK);
  const payload = f.l4len - tcpHeaderLen(l4);
  store<u32>(srcBuf, f.d0); store<u32>(srcBuf, f.d1, 4); store<u32>(srcBuf, f.d2, 8); store<u32>(srcBuf, f.d3, 12);
  store<u32>(dstBuf, f.s0); store<u32>(dstBuf, f.s1, 4); store<u32>(dstBuf, f.s2, 8); store<u32>(dstBuf, f.s3, 12);

  const p = f.pkt;
  const t = p + ip;
  memory.fill(t, 0, 20);
  store<u16>(t, dport);
  store<u16>(t, sport, 2);
  if ((flags & TCP_ACKF) != 0) {
    store<u32>(t + TCP_SEQ, ackSeq);
    store<u8>(t + TCP_FLAGS, TCP_RST);
  } else {
    const syn: u32 = (flags & TCP_SYN) != 0 ? 1 : 0, fin: u32 = (flags & TCP_FIN) != 0 ? 1 : 0;
    store<u32>(t + TCP_ACK, bswap<u32>(seq + syn + fin + payload));
    store<u8>(t + TCP_FLAGS, TCP_RST | TCP_ACKF);
  }
  store<u8>(t, 5 << 4, 12);   // data offset: 20 bytes
  if (v4) putIpv4(p, 0, 40, true, PROTO_TCP, load<u32>(srcBuf), load<u32>(dstBuf));
  else putIpv6(p, 20, PROTO_TCP, srcBuf, dstBuf);
  pseudo.family = f.family;
  pseudo.s0 = load<u32>(srcBuf); pseudo.s1 = load<u32>(srcBuf, 4); pseudo.s2 = load<u32>(srcBuf, 8); pseudo.s3 = load<u32>(srcBuf, 12);
  pseudo.d0 = load<u32>(dstBuf); pseudo.d1 = load<u32>(dstBuf, 4); pseudo.d2 = load<u32>(dstBuf, 8); pseudo.d3 = load<u32>(dstBuf, 12);
  store<u16>(t, checksumOver(t, 20, 16, pseudoSum(pseudo, PROTO_TCP, 20)), 16);
  return ip + 20;
}
