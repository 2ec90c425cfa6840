// tcp.ts — the TCP header (RFC 9293 §3.1): ports, data offset, flags. Checks the data offset once;
// never reads options, sequence numbers or payload (conntrack reads what it needs from the packet
// after this check). Never allocates.

import { Flow } from "../flow";
import { R_NONE, R_TRUNCATED, R_BAD_HEADER } from "../verdict";

export const TCP_HEADER: u32 = 20;  // without options
export const TCP_SPORT: u32 = 0;
export const TCP_DPORT: u32 = 2;
export const TCP_SEQ: u32 = 4;
export const TCP_ACK: u32 = 8;
export const TCP_OFFSET: u32 = 12;  // data offset in the high nibble, 32-bit words
export const TCP_FLAGS: u32 = 13;
export const TCP_WINDOW: u32 = 14;
export const TCP_CSUM: u32 = 16;
export const TCP_URGENT: u32 = 18;

// Flag bits of byte 13 (RFC 9293 §3.1, RFC 3168 for ECE/CWR).
export const TCP_FIN: u8 = 0x01;
export const TCP_SYN: u8 = 0x02;
export const TCP_RST: u8 = 0x04;
export const TCP_PSH: u8 = 0x08;
export const TCP_ACKF: u8 = 0x10;
export const TCP_URG: u8 = 0x20;
export const TCP_ECE: u8 = 0x40;
export const TCP_CWR: u8 = 0x80;

// Header length in bytes from the data offset field.
@inline export function tcpHeaderLen(l4: usize): u32 {
  return (<u32>load<u8>(l4 + TCP_OFFSET) >> 4) << 2;
}

// A segment with `n` bytes from the TCP header to the end of the IP payload. In a first fragment
// the whole header must still be present (RFC 1858: tiny fragments are refused, not guessed).
// @ts-ignore: decorator
@inline export function tcpParse(f: Flow, l4: usize, n: u32): u16 {
  if (n < TCP_HEADER) return R_TRUNCATED;
  const hlen = tcpHeaderLen(l4);
  if (hlen < TCP_HEADER) return R_BAD_HEADER;   // data offset < 5
  if (hlen > n) return R_TRUNCATED;
  f.sport = bswap<u16>(load<u16>(l4 + TCP_SPORT));
  f.dport = bswap<u16>(load<u16>(l4 + TCP_DPORT));
  f.tcpFlags = load<u8>(l4 + TCP_FLAGS);
  return R_NONE;
}
