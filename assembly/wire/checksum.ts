// checksum.ts — the Internet checksum (RFC 1071): ones-complement sums over byte ranges, the TCP/UDP/
// ICMPv6 pseudo-header, the IPv4 header checksum, and incremental updates (RFC 1624 eqn. 3) for NAT.
// Never allocates, never reads outside the range it is given, and never decides whether a packet is
// acceptable: it only computes.
//
// Byte order: sums are kept in "load order", i.e. as the 16-bit words load<u16> returns on this
// little-endian machine (each network word byte-swapped). Ones-complement addition commutes with byte
// swapping (RFC 1071 §2(B)), so a checksum summed in load order is stored back with store<u16> as is,
// and address words taken raw from the packet (Tuple.s0…d3) can be summed without swapping.
// Wide accumulators (u64) collect 32- or 64-bit loads; `fold` reduces them with end-around carry
// (65536 ≡ 1 mod 0xFFFF, so summing wider words equals summing their 16-bit halves).

import { FAMILY_V4, FAMILY_V6, FRAG_FIRST, PROTO_TCP, PROTO_UDP, PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, Flow, Tuple } from "../flow";
import { sctpValid } from "./sctp";
import { UDP_CSUM } from "./udp";

// Adds the bytes [ptr, ptr+len) to `acc` as 16-bit words in load order. An odd last byte is the high
// byte of a zero-padded network word (RFC 1071 §4.1), which in load order is the low byte. Inlined
// (as are pseudoSum, checksumValid and l4ChecksumOk): conntrack sums every incoming packet's
// checksums, and the calls cost as much as the sums of a 20-byte header.
// @ts-ignore: decorator
@inline export function sumBytes(ptr: usize, len: u32, acc: u64): u64 {
  let p = ptr;
  let n = len;
  if (n >= SIMD_FROM) {
    // A payload's words summed eight at a time: each 32-bit lane gains at most 4 × 0xFFFF per
    // 32 bytes, so the lanes are emptied into `acc` every SIMD_RUN rounds, long before they could
    // overflow.
    while (n >= 32) {
      let v = i32x4.splat(0);
      for (let k: u32 = 0; k < SIMD_RUN && n >= 32; k++) {
        v = i32x4.add(v, i32x4.extadd_pairwise_i16x8_u(v128.load(p)));
        v = i32x4.add(v, i32x4.extadd_pairwise_i16x8_u(v128.load(p, 16)));
        p += 32;
        n -= 32;
      }
      acc += <u64><u32>i32x4.extract_lane(v, 0) + <u64><u32>i32x4.extract_lane(v, 1) +
             <u64><u32>i32x4.extract_lane(v, 2) + <u64><u32>i32x4.extract_lane(v, 3);
    }
  }
  while (n >= 32) {
    const a = load<u64>(p);
    const b = load<u64>(p, 8);
    const c = load<u64>(p, 16);
    const d = load<u64>(p, 24);
    acc += (a & 0xFFFFFFFF) + (a >> 32) + (b & 0xFFFFFFFF) + (b >> 32) +
           (c & 0xFFFFFFFF) + (c >> 32) + (d & 0xFFFFFFFF) + (d >> 32);
    p += 32;
    n -= 32;
  }
  while (n >= 8) {
    const a = load<u64>(p);
    acc += (a & 0xFFFFFFFF) + (a >> 32);
    p += 8;
    n -= 8;
  }
  if (n >= 4) { acc += <u64>load<u32>(p); p += 4; n -= 4; }
  if (n >= 2) { acc += <u64>load<u16>(p); p += 2; n -= 2; }
  if (n != 0) acc += <u64>load<u8>(p);
  return acc;
}

// sumBytes: lengths from which the SIMD loop pays, and its rounds between emptying the lanes.
const SIMD_FROM: u32 = 128;
const SIMD_RUN: u32 = 4096;

// Reduces a wide sum to 16 bits with end-around carry. Never returns 0 for a non-zero sum.
@inline export function fold(acc: u64): u16 {
  let s = (acc & 0xFFFF) + ((acc >> 16) & 0xFFFF) + ((acc >> 32) & 0xFFFF) + (acc >> 48);
  s = (s & 0xFFFF) + (s >> 16);
  s = (s & 0xFFFF) + (s >> 16);
  return <u16>s;
}

// The checksum of a finished sum, ready to store with store<u16>.
@inline export function finish(acc: u64): u16 {
  return ~fold(acc);
}

// The ones-complement difference of replacing the 16-bit word `old` by `neu` (both load order),
// as an addend: ~m + m' of RFC 1624 eqn. 3.
@inline export function delta16(old: u16, neu: u16): u64 {
  return <u64>(~old & 0xFFFF) + <u64>neu;
}

// The same for a 32-bit word (two 16-bit words).
@inline export function delta32(old: u32, neu: u32): u64 {
  const o = ~old;
  return <u64>(o & 0xFFFF) + <u64>(o >>> 16) + <u64>(neu & 0xFFFF) + <u64>(neu >>> 16);
}

// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), applied to the checksum field at `field` for the summed
// changes `delta` (a sum of delta16/delta32 terms). Returns the new field value.
@inline export function applyDelta(field: usize, delta: u64): u16 {
  const hc = load<u16>(field);
  const nc = ~fold(<u64>(~hc & 0xFFFF) + delta);
  store<u16>(field, nc);
  return nc;
}

// The same for a field that holds a folded, uncomplemented partial sum (checksum offload: the
// device finishes it). net/core/utils.c inet_proto_csum_replace4(): with CHECKSUM_PARTIAL the field
// becomes ~csum_fold(field - from + to), i.e. the plain folded sum.
@inline export function applyDeltaPartial(field: usize, delta: u64): u16 {
  const nc = fold(<u64>load<u16>(field) + delta);
  store<u16>(field, nc);
  return nc;
}

// The IPv4 header checksum over `hlen` bytes at `ip`, with the checksum field (offset 10) taken as
// zero (RFC 791 §3.1). Returns the value to store in load order.
export function ipv4HeaderChecksum(ip: usize, hlen: u32): u16 {
  const acc = sumBytes(ip, hlen, 0) + <u64>(~load<u16>(ip, 10) & 0xFFFF);
  return finish(acc);
}

// True when the IPv4 header's checksum verifies (the sum over the header folds to 0xFFFF). Every
// incoming IPv4 packet asks (ip_rcv): a header without options is summed inline in three loads.
// @ts-ignore: decorator
@inline export function ipv4HeaderValid(ip: usize, hlen: u32): bool {
  if (hlen != 20) return ipv4OptionsHeaderValid(ip, hlen);
  const a = load<u64>(ip), b = load<u64>(ip, 8);
  return fold((a & 0xFFFFFFFF) + (a >> 32) + (b & 0xFFFFFFFF) + (b >> 32) + <u64>load<u32>(ip, 16)) == 0xFFFF;
}

function ipv4OptionsHeaderValid(ip: usize, hlen: u32): bool {
  return fold(sumBytes(ip, hlen, 0)) == 0xFFFF;
}

// The pseudo-header sum for TCP, UDP and ICMPv6 (RFC 793 §3.1 / RFC 768 for IPv4, RFC 8200 §8.1 for
// IPv6: 32-bit upper-layer length, next header in the last byte). `len` is the upper-layer length.
// @ts-ignore: decorator
@inline export function pseudoSum(t: Tuple, proto: u8, len: u32): u64 {
  let acc: u64 = <u64>t.s0 + <u64>t.d0;
  if (t.family != FAMILY_V4) {
    acc += <u64>t.s1 + <u64>t.s2 + <u64>t.s3 + <u64>t.d1 + <u64>t.d2 + <u64>t.d3;
  }
  // Network word 0x00PP is PP00 in load order; the length's two network words are byte-swapped.
  acc += <u64>(<u32>proto << 8);
  acc += <u64>bswap<u16>(<u16>(len & 0xFFFF)) + <u64>bswap<u16>(<u16>(len >>> 16));
  return acc;
}

// The checksum of `len` bytes at `ptr` whose checksum field sits at `ptr + fieldOff`, taken as zero,
// plus `acc` (a pseudo-header sum, or 0 for ICMPv4). Returns the value to store in load order.
// `fieldOff + 2` must be ≤ `len`.
export function checksumOver(ptr: usize, len: u32, fieldOff: u32, acc: u64): u16 {
  acc = sumBytes(ptr, len, acc) + <u64>(~load<u16>(ptr + fieldOff) & 0xFFFF);
  return finish(acc);
}

// True when `len` bytes at `ptr` plus `acc` verify (fold to 0xFFFF).
// @ts-ignore: decorator
@inline export function checksumValid(ptr: usize, len: u32, acc: u64): bool {
  return fold(sumBytes(ptr, len, acc)) == 0xFFFF;
}

// The full transport checksum of a parsed packet whose checksum field is at `fieldOff` of its
// transport header: TCP, UDP and ICMPv6 with the pseudo-header, ICMPv4 without (RFC 792). Covers the
// whole IP payload (for UDP that is the UDP length unless bytes trail it). Returns the value to store.
export function l4Checksum(f: Flow, fieldOff: u32): u16 {
  const acc: u64 = f.proto == PROTO_ICMP && f.family == FAMILY_V4 ? 0 : pseudoSum(f, f.proto, f.l4len);
  return checksumOver(f.pkt + f.l3len, f.l4len, fieldOff, acc);
}

// Does the transport checksum of a parsed packet verify? TCP, UDP, ICMP, ICMPv6 (RFC 1071 sums,
// with the pseudo-header where the protocol has one) and SCTP (CRC32c). True when there is nothing
// to verify: an IPv4 UDP datagram sent without a checksum, another protocol, a checksum the device
// finishes (csumPartial), or a first fragment, whose checksum covers the whole datagram.
// @ts-ignore: decorator
@inline export function l4ChecksumOk(f: Flow): bool {
  if (f.csumPartial || f.frag == FRAG_FIRST) return true;
  const l4 = f.pkt + f.l3len, n = f.l4len, p = f.proto;
  if (p == PROTO_TCP || (p == PROTO_UDP && load<u16>(l4 + UDP_CSUM) != 0) || (p == PROTO_ICMPV6 && f.family == FAMILY_V6)) {
    return checksumValid(l4, n, pseudoSum(f, p, n));
  }
  if (p == PROTO_ICMP && f.family == FAMILY_V4) return checksumValid(l4, n, 0);
  if (p == PROTO_SCTP) return sctpValid(l4, n);
  return true;
}
