// icmpv6.ts — the ICMPv6 header (RFC 4443): type, code, the identifier, and which types are
// errors that quote an earlier packet. Never looks past the 8-byte header (parse.ts hands the quoted
// packet to ipv6.ts); never interprets neighbour discovery. Never allocates.

import { Flow } from "../flow";
import { R_NONE, R_TRUNCATED, R_BAD_HEADER } from "../verdict";

export const ICMPV6_HEADER: u32 = 8;
export const ICMPV6_TYPE: u32 = 0;
export const ICMPV6_CODE: u32 = 1;
export const ICMPV6_CSUM: u32 = 2;
export const ICMPV6_ID: u32 = 4;   // echo messages (and conntrack's identifier of any query)
export const ICMPV6_SEQ: u32 = 6;
export const ICMPV6_MTU: u32 = 4;  // packet too big

export const ICMPV6_DEST_UNREACH: u8 = 1;
export const ICMPV6_PKT_TOOBIG: u8 = 2;
export const ICMPV6_TIME_EXCEED: u8 = 3;
export const ICMPV6_PARAMPROB: u8 = 4;
export const ICMPV6_ECHO_REQUEST: u8 = 128;
export const ICMPV6_ECHO_REPLY: u8 = 129;

// RFC 4443 §2.1: the four error messages defined, all quoting the invoking packet.
@inline export function icmpv6IsError(type: u8): bool {
  return type >= ICMPV6_DEST_UNREACH && type <= ICMPV6_PARAMPROB;
}

// Echo request/reply carry an identifier (RFC 4443 §4.1) that NAT rewrites like a port
// (nf_nat_proto.c icmpv6_manip_pkt(): echo only).
@inline export function icmpv6HasId(type: u8): bool {
  return type == ICMPV6_ECHO_REQUEST || type == ICMPV6_ECHO_REPLY;
}

function fill(f: Flow, l4: usize): void {
  const type = load<u8>(l4 + ICMPV6_TYPE);
  f.icmpType = type;
  f.icmpCode = load<u8>(l4 + ICMPV6_CODE);
  // Conntrack's tuple takes bytes 4–5 as the identifier of every message, not only echo's
  // (icmpv6_pkt_to_tuple()): node information queries (139/140) are told apart by them too.
  if (!icmpv6IsError(type)) {
    const id = bswap<u16>(load<u16>(l4 + ICMPV6_ID));
    f.sport = id;
    f.dport = id;
  }
}

// A message with `n` bytes from the ICMPv6 header to the end of the IP payload. Sets isIcmpError and
// innerOff for error types; parse.ts then parses the quoted header.
export function icmpv6Parse(f: Flow, l4: usize, n: u32): u16 {
  if (n < ICMPV6_HEADER) return R_TRUNCATED;
  fill(f, l4);
  if (icmpv6IsError(f.icmpType)) {
    f.isIcmpError = true;
    f.innerOff = f.l3len + ICMPV6_HEADER;
  }
  return R_NONE;
}

// The ICMPv6 header quoted in an ICMPv6 error. RFC 4443 §2.4(e.1): no error is sent about an error,
// so one is malformed.
export function icmpv6ParseQuoted(f: Flow, l4: usize, n: u32): u16 {
  if (n < ICMPV6_HEADER) return R_BAD_HEADER;
  if (icmpv6IsError(load<u8>(l4 + ICMPV6_TYPE))) return R_BAD_HEADER;
  fill(f, l4);
  return R_NONE;
}
