// parse.ts — parses one packet into a Flow: IP header (v4 or v6), then the transport header, then,
// for ICMP/ICMPv6 errors, the quoted packet into the global `inner`. Each layer checks its lengths
// once and only then reads; nothing here traps or allocates whatever the bytes are. It never judges
// checksums, never drops (it returns a reason; the pipeline decides the verdict) and never looks at
// payload.
//
// The Flow is meaningful only when parse returns R_NONE. A non-first fragment (FRAG_LATER) parses
// fine with ports 0: whether it may pass is the pipeline's decision.

import {
  Flow, inner, FAMILY_V4, FAMILY_V6, FRAG_FIRST, FRAG_LATER,
  PROTO_TCP, PROTO_UDP, PROTO_SCTP, PROTO_ICMP, PROTO_ICMPV6,
} from "../flow";
import { R_NONE, R_TRUNCATED, R_BAD_VERSION, R_BAD_HEADER } from "../verdict";
import { ipv4Parse, ipv4ParseQuoted } from "./ipv4";
import { ipv6Parse, ipv6ParseQuoted } from "./ipv6";
import { tcpParse } from "./tcp";
import { udpParse } from "./udp";
import { sctpParse } from "./sctp";
import { icmpParse, icmpParseQuoted } from "./icmp";
import { icmpv6Parse, icmpv6ParseQuoted } from "./icmpv6";

// Clears every field of `f` except csumPartial, which the host sets from the device's offload
// metadata and parse never learns from the bytes.
// Plain 64-bit stores: cheaper than a bulk memory.fill call for 72 bytes.
@inline function reset(f: Flow): void {
  const partial = f.csumPartial;
  const p = changetype<usize>(f);
  store<u64>(p, 0, 0); store<u64>(p, 0, 8); store<u64>(p, 0, 16); store<u64>(p, 0, 24);
  store<u64>(p, 0, 32); store<u64>(p, 0, 40); store<u64>(p, 0, 48); store<u64>(p, 0, 56);
  store<u64>(p, 0, 64); store<u64>(p, 0, 72);
  f.csumPartial = partial;
}
// The stores above cover exactly the struct (checked in builds with asserts, i.e. the testing core).
assert(offsetof<Flow>() == 80);

// Parses `len` bytes at `pkt` (a slot that can hold `cap` bytes) into `f`. Returns R_NONE or the
// reason the packet cannot be handled: R_TRUNCATED (a header claims more than is present),
// R_BAD_VERSION, R_BAD_HEADER (a field out of range, UDP over IPv6 without
// checksum, an IPv6 jumbogram), R_EXT_LIMIT (IPv6 extension-header chain too long or malformed).
export function parse(f: Flow, pkt: usize, len: u32, cap: u32): u16 {
  reset(f);
  f.pkt = pkt;
  f.len = len;
  f.cap = cap;
  if (len == 0) return R_TRUNCATED;
  const version = load<u8>(pkt) >> 4;
  let r: u16;
  if (version == 4) r = ipv4Parse(f, pkt, len);
  else if (version == 6) r = ipv6Parse(f, pkt, len);
  else return R_BAD_VERSION;
  if (r != R_NONE || f.frag == FRAG_LATER) return r;

  const l4 = pkt + f.l3len;
  const n = f.l4len;
  const proto = f.proto;
  if (proto == PROTO_TCP) return tcpParse(f, l4, n);
  if (proto == PROTO_UDP) return udpParse(f, l4, n, f.family == FAMILY_V6, f.frag == FRAG_FIRST);
  if (proto == PROTO_SCTP) return sctpParse(f, l4, n);
  // ICMP over IPv6 and ICMPv6 over IPv4 are nobody's protocol: treated as unknown, like Linux.
  if (proto == PROTO_ICMP && f.family == FAMILY_V4) r = icmpParse(f, l4, n);
  else if (proto == PROTO_ICMPV6 && f.family == FAMILY_V6) r = icmpv6Parse(f, l4, n);
  else return R_NONE;   // unknown protocol: addresses only
  if (r == R_NONE && f.isIcmpError) parseQuoted(f);
  return r;
}

// The packet quoted by the ICMP error `f` (innerOff already set), parsed leniently into `inner` the
// way nf_conntrack_core.c's icmp error handling builds the tuple of the connection the error is about
// (nf_ct_get_tuplepr): the quoted IP header, then the ports (4 bytes: nf_ct_get_tuple_ports) or the
// ICMP header (8 bytes). The quoted packet must be of the outer family and must not itself be an
// ICMP error. A quote that yields no tuple (cut short, a later fragment, anything else refused
// here) leaves `inner` without a family: the kernel then tracks the error as INVALID and hands it
// to the rules (nf_conntrack_inet_error returns -NF_ACCEPT), so it is no parse failure.
function parseQuoted(f: Flow): void {
  const off = f.innerOff;
  const q = f.pkt + off;
  const avail = f.len - off;   // off ≤ f.len: the 8-byte ICMP header was checked
  quoteAt(f, q, avail);
  let r = f.family == FAMILY_V4 ? ipv4ParseQuoted(inner, q, avail) : ipv6ParseQuoted(inner, q, avail);
  if (r == R_NONE && inner.frag != FRAG_LATER) {
    const l4 = q + inner.l3len;
    const n = avail - inner.l3len;   // bytes of the quoted transport header present
    const proto = inner.proto;
    if (proto == PROTO_TCP || proto == PROTO_UDP || proto == PROTO_SCTP) r = portsQuoted(inner, l4, n);
    else if (proto == PROTO_ICMP && inner.family == FAMILY_V4) r = icmpParseQuoted(inner, l4, n);
    else if (proto == PROTO_ICMPV6 && inner.family == FAMILY_V6) r = icmpv6ParseQuoted(inner, l4, n);
    if (r == R_NONE) return;
  }
  quoteAt(f, q, avail);   // no family
}

// `inner` cleared to the quote's bytes alone: where it starts, how much is present, the room.
function quoteAt(f: Flow, q: usize, avail: u32): void {
  reset(inner);
  inner.csumPartial = false;
  inner.pkt = q;
  inner.len = avail;
  inner.cap = f.cap > f.innerOff ? f.cap - f.innerOff : 0;
}

// The ports of a quoted TCP, UDP or SCTP header (the first 4 bytes of each), all the tuple takes:
// nothing else of a header that may be cut short is read.
function portsQuoted(f: Flow, l4: usize, n: u32): u16 {
  if (n < 4) return R_BAD_HEADER;
  f.sport = bswap<u16>(load<u16>(l4));
  f.dport = bswap<u16>(load<u16>(l4, 2));
  return R_NONE;
}
