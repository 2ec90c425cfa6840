// ipv6.ts — the IPv6 header (RFC 8200) and a bounded walk over its extension headers to the upper-
// layer protocol. Checks each length once, and a received packet's hop-by-hop options as the kernel
// does before any rule sees it. Never follows more than EXT_MAX extension headers, never interprets
// routing segments or destination options, never reassembles fragments, never accepts jumbograms.

import { Flow, FAMILY_V6, FRAG_NONE, FRAG_FIRST, FRAG_LATER } from "../flow";
import { R_NONE, R_TRUNCATED, R_BAD_HEADER, R_EXT_LIMIT } from "../verdict";

export const IPV6_HEADER: u32 = 40;
export const IPV6_PLEN: u32 = 4;
export const IPV6_NEXT: u32 = 6;
export const IPV6_HOPS: u32 = 7;
export const IPV6_SRC: u32 = 8;
export const IPV6_DST: u32 = 24;

// Extension headers walked (RFC 8200 §4, RFC 4302). ESP (50) and No Next Header (59) end the walk
// and are reported as the protocol, like any upper-layer protocol.
export const NH_HOPOPTS: u8 = 0;
export const NH_ROUTING: u8 = 43;
export const NH_FRAGMENT: u8 = 44;
export const NH_ESP: u8 = 50;
export const NH_AH: u8 = 51;
export const NH_NONE: u8 = 59;
export const NH_DSTOPTS: u8 = 60;

// More extension headers than this is treated as an attack, not a packet (RFC 8200 allows each at
// most once or twice; RFC 7045 lets middleboxes bound the walk).
export const EXT_MAX: u32 = 8;

const FRAG_HEADER: u32 = 8;
const FRAG_MORE: u16 = 1;

@inline export function isExtHeader(nh: u8): bool {
  return nh == NH_HOPOPTS || nh == NH_ROUTING || nh == NH_FRAGMENT || nh == NH_DSTOPTS || nh == NH_AH;
}

function fillAddrs(f: Flow, pkt: usize): void {
  f.family = FAMILY_V6;
  f.ttl = load<u8>(pkt + IPV6_HOPS);
  f.s0 = load<u32>(pkt + IPV6_SRC);
  f.s1 = load<u32>(pkt + IPV6_SRC + 4);
  f.s2 = load<u32>(pkt + IPV6_SRC + 8);
  f.s3 = load<u32>(pkt + IPV6_SRC + 12);
  f.d0 = load<u32>(pkt + IPV6_DST);
  f.d1 = load<u32>(pkt + IPV6_DST + 4);
  f.d2 = load<u32>(pkt + IPV6_DST + 8);
  f.d3 = load<u32>(pkt + IPV6_DST + 12);
}

// Walks the extension headers of the packet at `pkt` whose payload ends at `end`, and sets proto,
// l3len, l4len and frag. A header running past `end` is `short`.
function walk(f: Flow, pkt: usize, end: u32, short: u16): u16 {
  let nh = load<u8>(pkt + IPV6_NEXT);
  let off = IPV6_HEADER;
  let count: u32 = 0;
  let sawFrag = false;
  f.frag = FRAG_NONE;
  f.fragId = 0;
  while (isExtHeader(nh)) {
    if (++count > EXT_MAX) return R_EXT_LIMIT;
    // RFC 8200 §4.1: Hop-by-Hop Options only immediately after the IPv6 header.
    if (nh == NH_HOPOPTS && count != 1) return R_EXT_LIMIT;
    if (off + 8 > end) return short;   // every extension header is at least 8 bytes
    const h = pkt + off;
    const next = load<u8>(h);
    if (nh == NH_FRAGMENT) {
      // RFC 8200 §4.5: offset in 8-byte units in the top 13 bits, M flag in the lowest bit.
      if (sawFrag) return R_EXT_LIMIT;
      sawFrag = true;
      const fo = bswap<u16>(load<u16>(h + 2));
      f.fragId = load<u32>(h + 4);
      off += FRAG_HEADER;
      if ((fo >> 3) != 0) {
        // A later fragment: what follows is data, not headers (`next` names the first header of
        // the fragmentable part).
        f.frag = FRAG_LATER;
        f.proto = next;
        f.l3len = off;
        f.l4len = end - off;
        return R_NONE;
      }
      // Offset 0 without M is an atomic fragment (RFC 6946): a whole packet.
      if ((fo & FRAG_MORE) != 0) f.frag = FRAG_FIRST;
    } else {
      let hl: u32;
      if (nh == NH_AH) {
        // RFC 4302 §2.2: Payload Len in 4-byte units minus 2; IPv6 requires a multiple of 8 bytes.
        hl = (<u32>load<u8>(h + 1) + 2) << 2;
        if ((hl & 7) != 0) return R_EXT_LIMIT;
      } else {
        hl = (<u32>load<u8>(h + 1) + 1) << 3;  // Hdr Ext Len in 8-byte units, not counting the first
      }
      if (off + hl > end) return short;
      off += hl;
    }
    nh = next;
  }
  f.proto = nh;
  f.l3len = off;
  f.l4len = end - off;
  return R_NONE;
}

// Hop-by-hop option types (include/uapi/linux/in6.h) and net.ipv6.max_hbh_opts_number's default.
const OPT_PAD1: u8 = 0;
const OPT_PADN: u8 = 1;
const OPT_ROUTER_ALERT: u8 = 5;
const OPT_CALIPSO: u8 = 7;
const OPT_IOAM: u8 = 49;
const OPT_JUMBO: u8 = 0xC2;
const MAX_HBH_OPTS: u32 = 8;

// ip6_parse_tlv() (net/ipv6/exthdrs.c) over the hop-by-hop header at `pkt + 40`, `hl` bytes, as
// ip6_rcv_core() runs it on every received packet before PREROUTING: false drops the packet (the
// kernel also answers some with a parameter problem, which this core does not). More than 7 bytes
// of padding in a row, PadN with a byte that is not 0, an option past the header, more than
// MAX_HBH_OPTS options that are not padding, a router alert whose length is not 2
// (ipv6_hop_ra), any jumbo option (ipv6_hop_jumbo: only with payload length 0, refused above),
// CALIPSO (ipv6_hop_calipso: no DOI is configured on a node, so calipso_validate() refuses it,
// as cipso_v4_validate() does CIPSO for IPv4), IOAM not 4-aligned
// (ipv6_hop_ioam, ignored otherwise while ioam6_enabled is off), and an unknown option whose two
// high bits ask to discard (ip6_tlvopt_unknown: only 00 skips).
function hopOptionsValid(pkt: usize, hl: u32): bool {
  let off: u32 = IPV6_HEADER + 2;
  const end: u32 = IPV6_HEADER + hl;
  let pad: u32 = 0, count: u32 = 0;
  while (off < end) {
    const type = load<u8>(pkt + off);
    if (type == OPT_PAD1) {
      if (++pad > 7) return false;
      off++;
      continue;
    }
    if (off + 2 > end) return false;
    const optlen = <u32>load<u8>(pkt + off + 1) + 2;
    if (off + optlen > end) return false;
    if (type == OPT_PADN) {
      pad += optlen;
      if (pad > 7) return false;
      for (let i: u32 = 2; i < optlen; i++) if (load<u8>(pkt + off + i) != 0) return false;
    } else {
      if (++count > MAX_HBH_OPTS) return false;
      if (type == OPT_ROUTER_ALERT) {
        if (optlen != 4) return false;
      } else if (type == OPT_JUMBO) {
        return false;
      } else if (type == OPT_CALIPSO) {
        return false;
      } else if (type == OPT_IOAM) {
        if ((off & 3) != 0) return false;
      } else if ((type >> 6) != 0) {
        return false;
      }
      pad = 0;
    }
    off += optlen;
  }
  return true;
}

// A received packet of `len` bytes at `pkt` whose version nibble is 6. On success `f.len` becomes
// 40 + payload length: link-layer padding after it is not part of the packet.
export function ipv6Parse(f: Flow, pkt: usize, len: u32): u16 {
  if (len < IPV6_HEADER) return R_TRUNCATED;
  const plen = <u32>bswap<u16>(load<u16>(pkt + IPV6_PLEN));
  const nh = load<u8>(pkt + IPV6_NEXT);
  // Payload length 0 before a hop-by-hop header means a Jumbo Payload option (RFC 2675), which a
  // TUN device never carries; before anything else it is an empty payload (ip6_rcv_core()).
  if (plen == 0 && nh == NH_HOPOPTS) return R_BAD_HEADER;
  const total = IPV6_HEADER + plen;
  if (total > len) return R_TRUNCATED;
  if (nh == NH_HOPOPTS && total >= IPV6_HEADER + 8) {
    const hl = (<u32>load<u8>(pkt + IPV6_HEADER + 1) + 1) << 3;
    if (IPV6_HEADER + hl <= total && !hopOptionsValid(pkt, hl)) return R_BAD_HEADER;
  }
  fillAddrs(f, pkt);
  f.len = total;
  return walk(f, pkt, total, R_TRUNCATED);
}

// The header quoted in an ICMPv6 error, `avail` bytes present (RFC 4443 §2.4(c): as much of the
// invoking packet as fits in the minimum MTU). The payload length bounds the walk only when it is
// smaller than what is present. Any failure here is the caller's R_BAD_HEADER.
export function ipv6ParseQuoted(f: Flow, pkt: usize, avail: u32): u16 {
  if (avail < IPV6_HEADER) return R_BAD_HEADER;
  if ((load<u8>(pkt) >> 4) != 6) return R_BAD_HEADER;
  const plen = <u32>bswap<u16>(load<u16>(pkt + IPV6_PLEN));
  const total = IPV6_HEADER + plen;
  const end = plen != 0 && total < avail ? total : avail;
  fillAddrs(f, pkt);
  f.len = avail;
  return walk(f, pkt, end, R_BAD_HEADER);
}
