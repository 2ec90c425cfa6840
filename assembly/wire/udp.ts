// udp.ts — the UDP header (RFC 768): ports, length, the checksum's presence. Checks the length field
// once. Never verifies the checksum value and never trims the packet to the UDP length (the IP
// length stays authoritative for forwarding). Never allocates.

import { Flow } from "../flow";
import { R_NONE, R_TRUNCATED, R_BAD_HEADER } from "../verdict";

export const UDP_HEADER: u32 = 8;
export const UDP_SPORT: u32 = 0;
export const UDP_DPORT: u32 = 2;
export const UDP_LEN: u32 = 4;
export const UDP_CSUM: u32 = 6;

// A checksum that computes to 0 is sent as 0xFFFF: 0 means "no checksum" over IPv4 (RFC 768).
export const UDP_CSUM_MANGLED_0: u16 = 0xFFFF;

@inline export function udpLength(l4: usize): u32 {
  return <u32>bswap<u16>(load<u16>(l4 + UDP_LEN));
}

// A datagram with `n` bytes from the UDP header to the end of the IP payload. In a first fragment the
// length field covers fragments not present, so it is only checked against the header size.
export function udpParse(f: Flow, l4: usize, n: u32, v6: bool, firstFragment: bool): u16 {
  if (n < UDP_HEADER) return R_TRUNCATED;
  const ulen = udpLength(l4);
  if (ulen < UDP_HEADER) return R_BAD_HEADER;
  if (!firstFragment && ulen > n) return R_TRUNCATED;
  // RFC 8200 §8.1: over IPv6 a zero UDP checksum is invalid (Linux udp6 drops it unless a tunnel
  // opted into RFC 6936's exception, which a Service never is).
  if (v6 && load<u16>(l4 + UDP_CSUM) == 0) return R_BAD_HEADER;
  f.sport = bswap<u16>(load<u16>(l4 + UDP_SPORT));
  f.dport = bswap<u16>(load<u16>(l4 + UDP_DPORT));
  return R_NONE;
}
