// wire/testing.ts — wire internals (and nat/rewrite.ts) exported for unit tests
// (build/testing-wire.wasm). Plain numbers in and out; `w` selects the parse target: 0 = flow,
// 1 = inner (the header quoted in an ICMP error). Never part of the shipped ABI.
export { scratch, scratchBytes } from "../scratch";

import { Flow, flow, inner } from "../flow";
import { parse } from "./parse";
import {
  sumBytes, fold, ipv4HeaderChecksum, ipv4HeaderValid, l4Checksum, applyDelta, applyDeltaPartial,
  delta16, delta32,
} from "./checksum";
import { crc32c as crc, sctpChecksum, sctpValid } from "./sctp";
import { setSrc, setDst, setInnerSrc, setInnerDst } from "../nat/rewrite";

@inline function pick(w: u32): Flow { return w != 0 ? inner : flow; }

export function parsePkt(ptr: usize, len: u32, cap: u32): u32 { return parse(flow, ptr, len, cap); }
export function flowSize(): u32 { return offsetof<Flow>(); }

// Flow / inner fields.
export function getFamily(w: u32): u32 { return pick(w).family; }
export function getProto(w: u32): u32 { return pick(w).proto; }
export function getSport(w: u32): u32 { return pick(w).sport; }
export function getDport(w: u32): u32 { return pick(w).dport; }
export function getIcmpType(w: u32): u32 { return pick(w).icmpType; }
// which: 0–3 source words, 4–7 destination words (raw loads, as stored in the Tuple).
export function getAddr(w: u32, which: u32): u32 {
  const f = pick(w);
  switch (which) {
    case 0: return f.s0; case 1: return f.s1; case 2: return f.s2; case 3: return f.s3;
    case 4: return f.d0; case 5: return f.d1; case 6: return f.d2; default: return f.d3;
  }
}
export function getPkt(w: u32): u32 { return <u32>pick(w).pkt; }
export function getLen(w: u32): u32 { return pick(w).len; }
export function getCap(w: u32): u32 { return pick(w).cap; }
export function getL3len(w: u32): u32 { return pick(w).l3len; }
export function getL4len(w: u32): u32 { return pick(w).l4len; }
export function getFrag(w: u32): u32 { return pick(w).frag; }
export function getTcpFlags(w: u32): u32 { return pick(w).tcpFlags; }
export function getIcmpCode(w: u32): u32 { return pick(w).icmpCode; }
export function getTtl(w: u32): u32 { return pick(w).ttl; }
export function getIsIcmpError(w: u32): u32 { return pick(w).isIcmpError ? 1 : 0; }
export function getCsumPartial(w: u32): u32 { return pick(w).csumPartial ? 1 : 0; }
export function getInnerOff(w: u32): u32 { return pick(w).innerOff; }
export function setCsumPartial(w: u32, v: u32): void { pick(w).csumPartial = v != 0; }
// The pad fields must stay 0 (Tuple equality and hashing rely on it).
export function getPads(w: u32): u32 { const f = pick(w); return <u32>f.pad | (<u32>f.pad2 << 8); }

// Rewrites (on flow, and on inner for the quoted header of an ICMP error in flow).
export function rwSrc(a0: u32, a1: u32, a2: u32, a3: u32, port: u32): void { setSrc(flow, a0, a1, a2, a3, <u16>port); }
export function rwDst(a0: u32, a1: u32, a2: u32, a3: u32, port: u32): void { setDst(flow, a0, a1, a2, a3, <u16>port); }
export function rwInnerSrc(a0: u32, a1: u32, a2: u32, a3: u32, port: u32): void { setInnerSrc(flow, inner, a0, a1, a2, a3, <u16>port); }
export function rwInnerDst(a0: u32, a1: u32, a2: u32, a3: u32, port: u32): void { setInnerDst(flow, inner, a0, a1, a2, a3, <u16>port); }

// Checksums. Values are in load order (the 16-bit word as load<u16> reads it), like the fields.
export function csumSum(ptr: usize, len: u32): u32 { return fold(sumBytes(ptr, len, 0)); }
export function csumIpv4(ptr: usize, hlen: u32): u32 { return ipv4HeaderChecksum(ptr, hlen); }
export function csumIpv4Valid(ptr: usize, hlen: u32): u32 { return ipv4HeaderValid(ptr, hlen) ? 1 : 0; }
// The full L4 checksum of the parsed flow's transport segment (field at fieldOff taken as zero).
export function csumL4(w: u32, fieldOff: u32): u32 { return l4Checksum(pick(w), fieldOff); }
export function csumUpdate16(field: usize, old: u32, neu: u32): u32 { return applyDelta(field, delta16(<u16>old, <u16>neu)); }
export function csumUpdate32(field: usize, old: u32, neu: u32): u32 { return applyDelta(field, delta32(old, neu)); }
export function csumUpdate32Partial(field: usize, old: u32, neu: u32): u32 { return applyDeltaPartial(field, delta32(old, neu)); }
export function crc32c(ptr: usize, len: u32): u32 { return crc(ptr, len); }
export function sctpCsum(ptr: usize, len: u32): u32 { return sctpChecksum(ptr, len); }
export function sctpOk(ptr: usize, len: u32): u32 { return sctpValid(ptr, len) ? 1 : 0; }
