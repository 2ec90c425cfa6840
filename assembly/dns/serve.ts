// dns/serve.ts — cluster DNS on the packet path: the node's cluster DNS address per family (the
// kube-dns Service IP a kubelet writes into pods' resolv.conf) and, in direct mode, the turning of
// a UDP query to that address:port into the answer packet in the same slot. The answer itself comes
// from dnsAnswer (answer.ts); this file only checks the UDP datagram, swaps the endpoints and writes
// fresh IP and UDP headers with their checksums. A query dnsAnswer marks for the upstream (forwarding
// on, name outside the zone) is dropped with reason dns_upstream, untouched, for the host's
// forwarder to pick up from the slot. TCP to the address:port is counted and left to the rest of the
// pipeline: DNS over TCP needs a stream, so the host programs the address:port/TCP as a Service whose
// endpoint is its own listener (conntrack and NAT carry the stream there). Never allocates, never
// forwards a query itself and never reads a clock.
import { Flow, FAMILY_V4, PROTO_UDP, PROTO_TCP, FRAG_NONE } from "../flow";
import { VERDICT_REPLY, VERDICT_DROP, R_NONE, R_BAD_HEADER, R_TOO_BIG, R_DNS_UPSTREAM } from "../verdict";
import { D_LEN, D_VERDICT, D_REASON } from "../io";
import { bump, S_VERDICT, S_REASON } from "../stats";
import { sumBytes, fold, pseudoSum, checksumOver, ipv4HeaderChecksum } from "../wire/checksum";
import { UDP_HEADER, UDP_LEN, UDP_CSUM, UDP_CSUM_MANGLED_0, udpLength } from "../wire/udp";
import { IPV4_HEADER, IPV4_TOTLEN, IPV4_FRAG, IPV4_TTL, IPV4_PROTO, IPV4_CSUM, IPV4_SRC, IPV4_DST } from "../wire/ipv4";
import { IPV6_HEADER, IPV6_PLEN, IPV6_NEXT, IPV6_HOPS, IPV6_SRC, IPV6_DST } from "../wire/ipv6";
import { dnsAnswer, countDns, DROP_NOROOM, DROP_UPSTREAM, C_TCP_PASSED } from "./answer";
import { dnsAnswerPtr, dnsIoBytes } from "./api";

// The served address per family: four raw words (as Flow keeps them), then the port (host order);
// port 0 means "not set".
const addrs: usize = heap.alloc(48);
let port4: u32 = 0;
let port6: u32 = 0;

// Our largest UDP answer: DNS Flag Day 2020's recommended EDNS buffer size (1232 bytes keeps an
// IPv6 answer within the 1280-byte minimum MTU without fragmenting).
const MAX_UDP: u32 = 1232;
// Linux's default ip_default_ttl / hop_limit (Documentation/networking/ip-sysctl.rst).
const REPLY_TTL: u8 = 64;

// Outcomes of dnsServe.
export const SERVE_NOT_OURS: i32 = 0;  // not a UDP query to the cluster DNS address: carry on
export const SERVE_REPLIED: i32 = 1;   // the slot holds the answer packet (VERDICT_REPLY)
export const SERVE_DROPPED: i32 = 2;   // malformed, unanswerable or for the upstream: dropped (reason set, DNS counter bumped)

// Sets the cluster DNS address of `family` (4 or 6); port 0 unsets it. Returns 0, or -1 for a bad family.
export function dnsSetAddress(family: u32, a0: u32, a1: u32, a2: u32, a3: u32, port: u32): i32 {
  if (family != 4 && family != 6) return -1;
  if (family == 4) { a1 = 0; a2 = 0; a3 = 0; }
  const p = addrs + (family == 4 ? 0 : 16);
  store<u32>(p, a0); store<u32>(p, a1, 4); store<u32>(p, a2, 8); store<u32>(p, a3, 12);
  if (family == 4) port4 = port & 0xffff; else port6 = port & 0xffff;
  return 0;
}

// Is this packet addressed to the cluster DNS address:port (UDP, or TCP: counted only)?
@inline function isOurs(f: Flow): bool {
  if (f.proto != PROTO_UDP && f.proto != PROTO_TCP) return false;
  const v4 = f.family == FAMILY_V4;
  const port = v4 ? port4 : port6;
  if (port == 0 || <u32>f.dport != port) return false;
  const p = addrs + (v4 ? 0 : 16);
  return f.d0 == load<u32>(p) && f.d1 == load<u32>(p, 4) && f.d2 == load<u32>(p, 8) && f.d3 == load<u32>(p, 12);
}

// Answers a parsed packet if it is a query to the cluster DNS address. On SERVE_REPLIED the
// reply's length is in `replyLen`; on SERVE_DROPPED the verdict reason is in `dropReason`.
export let replyLen: u32 = 0;
export let dropReason: u16 = R_NONE;

export function dnsServe(f: Flow): i32 {
  if (!isOurs(f)) return SERVE_NOT_OURS;
  if (f.proto == PROTO_TCP) { countDns(C_TCP_PASSED); return SERVE_NOT_OURS; }
  // A fragment cannot be answered from its first piece; leave it to the normal path.
  if (f.frag != FRAG_NONE) return SERVE_NOT_OURS;
  const l4 = f.pkt + f.l3len;
  const ulen = udpLength(l4);
  // udp.ts has checked ulen ≥ 8 and ulen ≤ the IP payload for unfragmented datagrams.
  if (ulen < UDP_HEADER || ulen > f.l4len) { dropReason = R_BAD_HEADER; return SERVE_DROPPED; }
  // RFC 768 / RFC 1122 §4.1.3.4: a datagram whose checksum does not verify is discarded (a zero
  // checksum over IPv4 means none was sent; with offload the field holds only the pseudo sum).
  const csum = load<u16>(l4 + UDP_CSUM);
  if (!f.csumPartial && (csum != 0 || f.family != FAMILY_V4)) {
    if (fold(sumBytes(l4, ulen, pseudoSum(f, PROTO_UDP, ulen))) != 0xFFFF) { dropReason = R_BAD_HEADER; return SERVE_DROPPED; }
  }

  // The reply is written as a plain IP header (no options or extension headers) + UDP + answer.
  const v4 = f.family == FAMILY_V4;
  const hl: u32 = v4 ? IPV4_HEADER : IPV6_HEADER;
  let room: u32 = f.cap > hl + UDP_HEADER ? f.cap - hl - UDP_HEADER : 0;
  // IPv4 total length and the UDP length field are 16 bits.
  const maxPayload: u32 = 65535 - UDP_HEADER - (v4 ? hl : 0);
  if (room > maxPayload) room = maxPayload;
  const out = dnsAnswerPtr();
  const outCap = dnsIoBytes();
  if (room > outCap) room = outCap;
  const n = dnsAnswer(l4 + UDP_HEADER, ulen - UDP_HEADER, out, room, MAX_UDP, false);
  if (n < 0) {
    dropReason = n == DROP_UPSTREAM ? R_DNS_UPSTREAM : n == DROP_NOROOM ? R_TOO_BIG : R_BAD_HEADER;
    return SERVE_DROPPED;
  }

  const pkt = f.pkt;
  const rl4 = pkt + hl;
  const rulen: u32 = UDP_HEADER + <u32>n;
  memory.copy(rl4 + UDP_HEADER, out, <usize>n);
  // Endpoints swapped: the answer comes from the address and port the query went to.
  store<u16>(rl4, bswap<u16>(f.dport));
  store<u16>(rl4, bswap<u16>(f.sport), 2);
  store<u16>(rl4 + UDP_LEN, bswap<u16>(<u16>rulen));
  if (v4) {
    // Byte 1 (DSCP/ECN) and the identification are kept from the query; no options, no fragment bits.
    store<u8>(pkt, 0x45);
    store<u16>(pkt + IPV4_TOTLEN, bswap<u16>(<u16>(hl + rulen)));
    store<u16>(pkt + IPV4_FRAG, 0);
    store<u8>(pkt + IPV4_TTL, REPLY_TTL);
    store<u8>(pkt + IPV4_PROTO, <u8>PROTO_UDP);
    store<u32>(pkt + IPV4_SRC, f.d0);
    store<u32>(pkt + IPV4_DST, f.s0);
    store<u16>(pkt + IPV4_CSUM, 0);
    store<u16>(pkt + IPV4_CSUM, ipv4HeaderChecksum(pkt, hl));
  } else {
    // Version 6, traffic class and flow label 0.
    store<u32>(pkt, bswap<u32>(0x60000000));
    store<u16>(pkt + IPV6_PLEN, bswap<u16>(<u16>rulen));
    store<u8>(pkt + IPV6_NEXT, <u8>PROTO_UDP);
    store<u8>(pkt + IPV6_HOPS, REPLY_TTL);
    const s = pkt + IPV6_SRC, d = pkt + IPV6_DST;
    store<u32>(s, f.d0); store<u32>(s, f.d1, 4); store<u32>(s, f.d2, 8); store<u32>(s, f.d3, 12);
    store<u32>(d, f.s0); store<u32>(d, f.s1, 4); store<u32>(d, f.s2, 8); store<u32>(d, f.s3, 12);
  }
  // The pseudo-header sum does not depend on which address is the source, so f's tuple serves.
  store<u16>(rl4 + UDP_CSUM, 0);
  let c = checksumOver(rl4, rulen, UDP_CSUM, pseudoSum(f, PROTO_UDP, rulen));
  if (c == 0) c = UDP_CSUM_MANGLED_0;
  store<u16>(rl4 + UDP_CSUM, c);
  replyLen = hl + rulen;
  return SERVE_REPLIED;
}

// The pipeline's hook (direct mode, before conntrack and the service lookup): serves the packet in
// descriptor `d` if it is a cluster DNS query, writing the verdict, reason and reply length and
// counting them as pipeline.ts finish() does. Returns false when the packet is not ours.
// @ts-ignore: decorator
@inline export function dnsProcess(d: usize, f: Flow): bool {
  return isOurs(f) && served(d, f);   // every TCP and UDP packet asks: no call for the others
}

function served(d: usize, f: Flow): bool {
  const r = dnsServe(f);
  if (r == SERVE_NOT_OURS) return false;
  if (r == SERVE_REPLIED) {
    store<u32>(d, replyLen, D_LEN);
    store<u8>(d, VERDICT_REPLY, D_VERDICT);
    store<u16>(d, R_NONE, D_REASON);
    bump(S_VERDICT + VERDICT_REPLY);
  } else {
    store<u8>(d, VERDICT_DROP, D_VERDICT);
    store<u16>(d, dropReason, D_REASON);
    bump(S_VERDICT + VERDICT_DROP);
    bump(S_REASON + dropReason);
  }
  return true;
}
