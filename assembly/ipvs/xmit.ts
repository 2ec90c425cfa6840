// ipvs/xmit.ts — the forwarding methods (net/netfilter/ipvs/ip_vs_xmit.c) applied to a packet in its
// I/O slot, and the per-descriptor side record that tells the host where the packet goes next:
//   masquerading  destination address:port rewritten (ip_vs_nat_xmit, *_dnat_handler); replies get
//                 the virtual address:port back as source (handle_response, *_snat_handler) —
//                 through nat/rewrite.ts, checksums kept right incrementally;
//   local         handed to the local stack unchanged (ip_vs_null_xmit: NF_ACCEPT);
//   direct route  unchanged; the next hop is the real server (ip_vs_dr_xmit);
//   IPIP tunnel   an outer IPv4 or IPv6 header (protocol 4 for an IPv4 packet, 41 for IPv6) is put in
//                 front, in the same slot (ip_vs_tunnel_xmit / _v6, ip_vs_prepare_tunneled_skb): the
//                 inner packet moves up by 20/40 bytes, the descriptor's offset stays, its length
//                 grows by 20/40. Outer fields: TOS/traffic class = the inner DS field with ECN
//                 encapsulated (INET_ECN_encapsulate: CE becomes ECT(0)), DF copied from an IPv4
//                 inner packet (0 for IPv6), TTL/hop limit = the inner one, IPv4 id 0 when DF is set
//                 (ip_select_ident for a socket-less DF packet) else a running counter from 1, source = the
//                 tunnel source address set for the family (default: the node's masquerade address).
//                 A GUE or GRE tunnel destination gets its UDP+GUE or GRE header between (encap.ts).
// Never allocates; never writes beyond the slot (a tunnel that would not fit reports failure).
//
// Side record per descriptor (32 bytes, ipvsResultPtr() + 32 × descriptor index):
//   0 u8 forwarding method (0xFF: IPVS did not forward)   1 u8 next-hop family (0: none)
//   2 u8 flags (1 new connection, 2 via persistence template, 4 one-packet, 8 reply direction)
//   3 u8 connection state after the packet   4 u32 connection entry (NIL: none)
//   8 u32 destination id   12 u32 service id   16 u32×4 next-hop address (Tuple words)
import { Flow, FAMILY_V4, PROTO_SCTP, FRAG_LATER } from "../flow";
import { setDst, setSrc } from "../nat/rewrite";
import { ipv4HeaderChecksum } from "../wire/checksum";
import { IPV4_DF } from "../wire/ipv4";
import { ioDesc, IO_MAX_BATCH, DESC_BYTES, D_AUX } from "../io";
import { haveMasq, masqAddr } from "../node";
import { NIL, FWD_LOCAL, FWD_TUNNEL } from "./defs";
import { destAt, destAf, destTun } from "./dest";
import { encapLen, encapWrite } from "./encap";

export const RESULT_BYTES: usize = 32;
export const results: usize = heap.alloc(<usize>IO_MAX_BATCH * RESULT_BYTES);
memory.fill(results, 0xFF, <usize>IO_MAX_BATCH * RESULT_BYTES);

export const RF_NEW: u8 = 1;
export const RF_TEMPLATE: u8 = 2;
export const RF_ONE_PACKET: u8 = 4;
export const RF_REPLY: u8 = 8;

const IPPROTO_IPIP: u8 = 4;
const IPPROTO_IPV6: u8 = 41;

const tunSrc: usize = heap.alloc(32);
let haveTun4 = false;
let haveTun6 = false;
let ipId: u16 = 0;

export function setTunnelSource(family: u8, a0: u32, a1: u32, a2: u32, a3: u32): void {
  const p = tunSrc + (family == FAMILY_V4 ? 0 : 16);
  store<u32>(p, a0); store<u32>(p, a1, 4); store<u32>(p, a2, 8); store<u32>(p, a3, 12);
  if (family == FAMILY_V4) haveTun4 = true; else haveTun6 = true;
}

// The source for outer headers of `family`, or 0 when there is none.
function tunnelSource(family: u8): usize {
  if (family == FAMILY_V4 ? haveTun4 : haveTun6) return tunSrc + (family == FAMILY_V4 ? 0 : 16);
  return haveMasq(family) ? masqAddr(family) : 0;
}

/** The side record for descriptor `d` (slot 0 when `d` is not in the I/O arena). */
export function resultFor(d: usize): usize {
  if (ioDesc != 0 && d >= ioDesc && d < ioDesc + <usize>IO_MAX_BATCH * DESC_BYTES) {
    return results + ((d - ioDesc) / DESC_BYTES) * RESULT_BYTES;
  }
  return results;
}

export function resultClear(r: usize): void {
  store<u32>(r, 0x000000FF);
  store<u32>(r, NIL, 4);
  store<u32>(r, NIL, 8);
  store<u32>(r, NIL, 12);
}

export function resultSet(r: usize, fwd: u8, flags: u8, state: u8, conn: u32, dest: u32, svc: u32): void {
  store<u8>(r, fwd);
  store<u8>(r, flags, 2);
  store<u8>(r, state, 3);
  store<u32>(r, conn, 4);
  store<u32>(r, dest, 8);
  store<u32>(r, svc, 12);
  if (fwd == FWD_LOCAL) {
    store<u8>(r, 0, 1);
    return;
  }
  const p = destAt(dest);
  store<u8>(r, destAf(dest), 1);
  store<u32>(r, load<u32>(p), 16); store<u32>(r, load<u32>(p, 4), 20);
  store<u32>(r, load<u32>(p, 8), 24); store<u32>(r, load<u32>(p, 12), 28);
}

// ip_vs_proto_sctp.c sctp_dnat_handler() / sctp_snat_handler() recompute the CRC32c only when the
// port changes (the addresses are not part of it): with the port kept, the CRC field of the packet
// `f` is where the one it came with goes back (a bad one stays bad for the receiver), else 0.
@inline function keptSctpCrc(f: Flow, samePort: bool): usize {
  return samePort && f.proto == PROTO_SCTP && f.frag != FRAG_LATER ? f.pkt + f.l3len + 8 : 0;
}

// ip_vs_nat_xmit() with tcp/udp/sctp_dnat_handler(): to the real server's address and port.
export function masqIn(f: Flow, dest: u32, dport: u16): void {
  const p = destAt(dest);
  const crc = keptSctpCrc(f, dport == f.dport);
  const came = crc != 0 ? load<u32>(crc) : 0;
  setDst(f, load<u32>(p), load<u32>(p, 4), load<u32>(p, 8), load<u32>(p, 12), dport);
  if (crc != 0) store<u32>(crc, came);
}

// handle_response() with tcp/udp/sctp_snat_handler(): the reply appears to come from the virtual service.
export function masqOut(f: Flow, v0: u32, v1: u32, v2: u32, v3: u32, vport: u16): void {
  const crc = keptSctpCrc(f, vport == f.sport);
  const came = crc != 0 ? load<u32>(crc) : 0;
  setSrc(f, v0, v1, v2, v3, vport);
  if (crc != 0) store<u32>(crc, came);
}

// INET_ECN_encapsulate(outer, inner) with outer = inner = the DS field.
// @ts-ignore: decorator
@inline function ecnEncap(ds: u8): u8 {
  const ecn = ds & 3;
  return (ds & 0xFC) | (ecn == 3 ? 2 : ecn);
}

// followFragment()'s answers besides a new length.
export const FOLLOW_KEPT: u32 = 0;        // forwarded as it is
export const FOLLOW_TOO_BIG: u32 = 1;     // the tunnel would not fit the slot: dropped
export const FOLLOW_NO_SOURCE: u32 = 2;   // no tunnel source address for the family: dropped

/**
 * A later fragment of a datagram whose first fragment IPVS forwarded (frags.ts kept that one's side
 * record at `side`): the kernel forwards the reassembled datagram, so this one gets the same side
 * record (as no new connection) and the same tunnel in front. Returns its new length, or one of
 * the FOLLOW_ answers.
 */
export function followFragment(d: usize, f: Flow, side: usize): u32 {
  const r = resultFor(d);
  memory.copy(r, side, RESULT_BYTES);
  store<u8>(r, 0, 2);
  store<u32>(d, load<u32>(side, 8), D_AUX);
  if (load<u8>(side) != FWD_TUNNEL) return FOLLOW_KEPT;
  const n = tunnel(f, load<u32>(side, 8));
  return n == 0 ? FOLLOW_TOO_BIG : n == 1 ? FOLLOW_NO_SOURCE : n;
}

/**
 * ip_vs_tunnel_xmit() / ip_vs_tunnel_xmit_v6(): puts the outer header in front of the packet.
 * Returns the new length, 0 when it would not fit the slot (or exceed 65535), or 1 when there is
 * no tunnel source address for the destination's family.
 */
export function tunnel(f: Flow, dest: u32): u32 {
  const outerAf = destAf(dest);
  const tun = destTun(dest);
  const type = tun & 0xFF, tflags = (tun >> 8) & 0xFF;
  const elen = encapLen(type, tflags);
  const hlen: u32 = (outerAf == FAMILY_V4 ? 20 : 40) + elen;
  const innerLen = f.l3len + f.l4len;
  const total = innerLen + hlen;
  if (total > f.cap || (outerAf == FAMILY_V4 ? total : innerLen + elen) > 0xFFFF) return 0;
  const src = tunnelSource(outerAf);
  if (src == 0) return 1;
  const pkt = f.pkt;
  // ip_vs_prepare_tunneled_skb(): DS field, TTL and DF of the inner header.
  let ds: u8, ttl: u8, df: u16, next: u8;
  if (f.family == FAMILY_V4) {
    ds = load<u8>(pkt, 1);
    ttl = load<u8>(pkt, 8);
    df = bswap<u16>(load<u16>(pkt, 6)) & IPV4_DF;
    next = IPPROTO_IPIP;
  } else {
    ds = <u8>(((load<u8>(pkt) & 0x0F) << 4) | (load<u8>(pkt, 1) >> 4));
    ttl = load<u8>(pkt, 7);
    df = 0;
    next = IPPROTO_IPV6;
  }
  ds = ecnEncap(ds);
  memory.copy(pkt + hlen, pkt, innerLen);
  const d = destAt(dest);
  // GUE / GRE between the outer header and the inner packet (encap.ts), written after the move.
  if (elen != 0) {
    const ipLen: u32 = outerAf == FAMILY_V4 ? 20 : 40;
    next = encapWrite(pkt + ipLen, type, tflags, <u16>(tun >>> 16), f, innerLen, outerAf, src, d);
  }
  if (outerAf == FAMILY_V4) {
    store<u8>(pkt, 0x45);
    store<u8>(pkt, ds, 1);
    store<u16>(pkt, bswap<u16>(<u16>total), 2);
    let id: u16 = 0;
    if (df == 0) {
      if (++ipId == 0) ipId = 1;
      id = ipId;
    }
    store<u16>(pkt, bswap<u16>(id), 4);
    store<u16>(pkt, bswap<u16>(df), 6);
    store<u8>(pkt, ttl, 8);
    store<u8>(pkt, next, 9);
    store<u16>(pkt, 0, 10);
    store<u32>(pkt, load<u32>(src), 12);
    store<u32>(pkt, load<u32>(d), 16);
    store<u16>(pkt, ipv4HeaderChecksum(pkt, 20), 10);
  } else {
    // Version 6, traffic class = ds, flow label 0.
    store<u8>(pkt, 0x60 | (ds >> 4));
    store<u8>(pkt, (ds & 0x0F) << 4, 1);
    store<u16>(pkt, 0, 2);
    store<u16>(pkt, bswap<u16>(<u16>(innerLen + elen)), 4);
    store<u8>(pkt, next, 6);
    store<u8>(pkt, ttl, 7);
    memory.copy(pkt + 8, src, 16);
    memory.copy(pkt + 24, d, 16);
  }
  return total;
}
