// icmp.ts — the ICMPv4 header (RFC 792): type, code, the identifier of query messages, and which
// types are errors that quote an earlier packet. Never looks past the 8-byte header (parse.ts hands
// the quoted packet to ipv4.ts). Never allocates.

import { Flow } from "../flow";
import { R_NONE, R_TRUNCATED, R_BAD_HEADER } from "../verdict";

export const ICMP_HEADER: u32 = 8;
export const ICMP_TYPE: u32 = 0;
export const ICMP_CODE: u32 = 1;
export const ICMP_CSUM: u32 = 2;
export const ICMP_ID: u32 = 4;   // query messages
export const ICMP_SEQ: u32 = 6;

export const ICMP_ECHOREPLY: u8 = 0;
export const ICMP_DEST_UNREACH: u8 = 3;
export const ICMP_SOURCE_QUENCH: u8 = 4;
export const ICMP_REDIRECT: u8 = 5;
export const ICMP_ECHO: u8 = 8;
export const ICMP_TIME_EXCEEDED: u8 = 11;
export const ICMP_PARAMETERPROB: u8 = 12;
export const ICMP_TIMESTAMP: u8 = 13;
export const ICMP_TIMESTAMPREPLY: u8 = 14;
export const ICMP_INFO_REQUEST: u8 = 15;
export const ICMP_INFO_REPLY: u8 = 16;
export const ICMP_ADDRESS: u8 = 17;
export const ICMP_ADDRESSREPLY: u8 = 18;

// include/linux/icmp.h icmp_is_err(): the types that carry the offending packet's header.
@inline export function icmpIsError(type: u8): bool {
  return type == ICMP_DEST_UNREACH || type == ICMP_SOURCE_QUENCH || type == ICMP_REDIRECT ||
    type == ICMP_TIME_EXCEEDED || type == ICMP_PARAMETERPROB;
}

// Request/reply pairs with an identifier at bytes 4–5: the ones nf_conntrack_proto_icmp.c's invmap[]
// can track (echo, timestamp, information, address mask). Their tuple uses the identifier as both
// ports; NAT rewrites it like a port.
@inline export function icmpHasId(type: u8): bool {
  return type == ICMP_ECHO || type == ICMP_ECHOREPLY ||
    (type >= ICMP_TIMESTAMP && type <= ICMP_ADDRESSREPLY);
}

function fill(f: Flow, l4: usize): void {
  const type = load<u8>(l4 + ICMP_TYPE);
  f.icmpType = type;
  f.icmpCode = load<u8>(l4 + ICMP_CODE);
  if (icmpHasId(type)) {
    const id = bswap<u16>(load<u16>(l4 + ICMP_ID));
    f.sport = id;
    f.dport = id;
  }
}

// A message with `n` bytes from the ICMP header to the end of the IP payload. Sets isIcmpError and
// innerOff for error types; parse.ts then parses the quoted header.
export function icmpParse(f: Flow, l4: usize, n: u32): u16 {
  if (n < ICMP_HEADER) return R_TRUNCATED;
  fill(f, l4);
  if (icmpIsError(f.icmpType)) {
    f.isIcmpError = true;
    f.innerOff = f.l3len + ICMP_HEADER;
  }
  return R_NONE;
}

// The ICMP header quoted in an ICMP error. An error about an error is never sent (RFC 1122
// §3.2.2), so one is malformed.
export function icmpParseQuoted(f: Flow, l4: usize, n: u32): u16 {
  if (n < ICMP_HEADER) return R_BAD_HEADER;
  if (icmpIsError(load<u8>(l4 + ICMP_TYPE))) return R_BAD_HEADER;
  fill(f, l4);
  return R_NONE;
}
