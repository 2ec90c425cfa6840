// ipv4.ts — the IPv4 header (RFC 791): length checks, options skipped, fragment kind, addresses,
// and the kernel's check of a received packet's options. Checks each length once; after a
// successful parse the header's fields may be read unchecked. Never validates the header checksum
// (pipeline.ts does, for packets coming in), never writes options, never reassembles fragments.

import { Flow, FAMILY_V4, FRAG_NONE, FRAG_FIRST, FRAG_LATER } from "../flow";
import { R_NONE, R_TRUNCATED, R_BAD_HEADER } from "../verdict";

export const IPV4_HEADER: u32 = 20;   // without options
export const IPV4_TOTLEN: u32 = 2;
export const IPV4_ID: u32 = 4;
export const IPV4_FRAG: u32 = 6;      // flags (3 bits) and fragment offset (13 bits, 8-byte units)
export const IPV4_TTL: u32 = 8;
export const IPV4_PROTO: u32 = 9;
export const IPV4_CSUM: u32 = 10;
export const IPV4_SRC: u32 = 12;
export const IPV4_DST: u32 = 16;

export const IPV4_DF: u16 = 0x4000;
export const IPV4_MF: u16 = 0x2000;
export const IPV4_OFFSET_MASK: u16 = 0x1FFF;

@inline export function ipv4HeaderLen(pkt: usize): u32 {
  return (<u32>load<u8>(pkt) & 15) << 2;
}

@inline export function ipv4TotalLen(pkt: usize): u32 {
  return <u32>bswap<u16>(load<u16>(pkt + IPV4_TOTLEN));
}

// Fills the IPv4 part of `f` for a header of `hlen` bytes whose packet ends at `end`.
// @ts-ignore: decorator
@inline function fill(f: Flow, pkt: usize, hlen: u32, end: u32): void {
  f.family = FAMILY_V4;
  f.proto = load<u8>(pkt + IPV4_PROTO);
  f.ttl = load<u8>(pkt + IPV4_TTL);
  f.s0 = load<u32>(pkt + IPV4_SRC);
  f.d0 = load<u32>(pkt + IPV4_DST);
  f.s1 = 0; f.s2 = 0; f.s3 = 0;
  f.d1 = 0; f.d2 = 0; f.d3 = 0;
  f.l3len = hlen;
  f.l4len = end - hlen;
  // RFC 791 §3.2 fragmentation: a non-zero offset means no transport header in this packet;
  // offset zero with MF set is the first fragment and carries the ports.
  const fo = bswap<u16>(load<u16>(pkt + IPV4_FRAG));
  if ((fo & IPV4_OFFSET_MASK) != 0) f.frag = FRAG_LATER;
  else if ((fo & IPV4_MF) != 0) f.frag = FRAG_FIRST;
  else f.frag = FRAG_NONE;
  f.fragId = f.frag == FRAG_NONE ? 0 : <u32>load<u16>(pkt + IPV4_ID);
}

// A received packet of `len` bytes at `pkt` whose version nibble is 4. On success `f.len` becomes the
// header's total length: link-layer padding after it is not part of the packet.
export function ipv4Parse(f: Flow, pkt: usize, len: u32): u16 {
  if (len < IPV4_HEADER) return R_TRUNCATED;
  const hlen = ipv4HeaderLen(pkt);
  if (hlen < IPV4_HEADER) return R_BAD_HEADER;        // IHL < 5
  if (hlen > len) return R_TRUNCATED;
  const total = ipv4TotalLen(pkt);
  if (total < hlen) return R_BAD_HEADER;
  if (total > len) return R_TRUNCATED;
  fill(f, pkt, hlen, total);
  f.len = total;
  return R_NONE;
}

// The header quoted in an ICMP error, `avail` bytes present. Lenient as Linux's icmp_error_message()
// is: the quoted total length may exceed what the router chose to include (RFC 792 requires only the
// header and 8 bytes, RFC 1812 §4.3.2.3 as much as fits in 576), so it only bounds the payload when it
// is smaller than what is present. Any failure here is the caller's R_BAD_HEADER.
export function ipv4ParseQuoted(f: Flow, pkt: usize, avail: u32): u16 {
  if (avail < IPV4_HEADER) return R_BAD_HEADER;
  if ((load<u8>(pkt) >> 4) != 4) return R_BAD_HEADER;
  const hlen = ipv4HeaderLen(pkt);
  if (hlen < IPV4_HEADER || hlen > avail) return R_BAD_HEADER;
  const total = ipv4TotalLen(pkt);
  const end = total >= hlen && total < avail ? total : avail;
  fill(f, pkt, hlen, end);
  f.len = avail;
  return R_NONE;
}

// IP option types (RFC 791, include/uapi/linux/ip.h).
const IPOPT_END: u8 = 0;
const IPOPT_NOOP: u8 = 1;
const IPOPT_RR: u8 = 7;
const IPOPT_TIMESTAMP: u8 = 68;
const IPOPT_LSRR: u8 = 131;
const IPOPT_CIPSO: u8 = 134;
const IPOPT_SSRR: u8 = 137;
const IPOPT_RA: u8 = 148;

// ip_options_compile() (net/ipv4/ip_options.c) on a received packet's `hlen`-byte header: false
// for the options the kernel drops it for (ip_rcv_finish_core → ip_rcv_options, after PREROUTING;
// the kernel also answers ICMP parameter problem, which this core does not). An option's length
// past the rest, a route or timestamp pointer before its first slot or a slot cut short, a second
// route / record-route / timestamp option, an overflowed timestamp count, a short router alert,
// and CIPSO (no DOI is configured on a node, so cipso_v4_validate() refuses it). And any source
// route (LSRR, SSRR), well formed or not: ip_rcv_options() drops it unless accept_source_route is
// on for both "all" and the device, and "all" is off by default (ipv4_devconf: only the "default"
// entry turns it on).
export function ipv4OptionsValid(pkt: usize, hlen: u32): bool {
  let p = pkt + IPV4_HEADER;
  let l = <i32>hlen - <i32>IPV4_HEADER;
  let rr = false, ts = false;
  while (l > 0) {
    const type = load<u8>(p);
    if (type == IPOPT_END) return true;
    if (type == IPOPT_NOOP) { p++; l--; continue; }
    if (l < 2) return false;
    const optlen = <i32>load<u8>(p, 1);
    if (optlen < 2 || optlen > l) return false;
    const ptr = optlen >= 3 ? <i32>load<u8>(p, 2) : 0;
    if (type == IPOPT_LSRR || type == IPOPT_SSRR) {
      return false;
    } else if (type == IPOPT_RR) {
      if (rr || optlen < 3 || ptr < 4 || (ptr <= optlen && ptr + 3 > optlen)) return false;
      rr = true;
    } else if (type == IPOPT_TIMESTAMP) {
      if (ts || optlen < 4 || ptr < 5) return false;
      const flags = load<u8>(p, 3);
      if (ptr <= optlen) {
        const kind = flags & 0xF;   // 1: timestamp and address, 3: prespecified addresses
        if (ptr + 3 > optlen || ((kind == 1 || kind == 3) && ptr + 7 > optlen)) return false;
      } else if ((flags >> 4) == 15) {
        return false;
      }
      ts = true;
    } else if (type == IPOPT_RA) {
      if (optlen < 4) return false;
    } else if (type == IPOPT_CIPSO) {
      return false;
    }
    p += optlen;
    l -= optlen;
  }
  return true;
}
