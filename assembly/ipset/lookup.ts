// ipset/lookup.ts — the packet path: does the parsed packet match set `id` in the given directions
// (`-m set --match-set NAME src,dst[,dst]`)? Builds the element key from the Flow in a scratch
// record reserved at start-up, then looks it up (exact, or by stored prefix for the net types) and
// counts the packet on the element that answered. Never allocates, never changes a set's
// membership.
//
// Semantics (net/netfilter/ipset/ip_set_core.c ip_set_test(), xt_set.c, ip_set_getport.c):
//  - fewer directions than the set's dimension, or a set of the other family: no match
//    (bitmap:port has no family and serves both);
//  - the ip,port types take (proto, port) from the packet: TCP, UDP, SCTP, UDP-Lite ports; ICMP and
//    ICMPv6 as type << 8 | code; any other protocol as port 0. A later IPv4 fragment of a port
//    protocol or of ICMP, and any later IPv6 fragment, has no port part: no match. IPv4 protocol 0
//    never matches;
//  - bitmap:port matches TCP and UDP packets only (ip_set_get_ip_port());
//  - a `nomatch` element answers "no" and ends the prefix search; with --return-nomatch, for the
//    types that have `nomatch` (hash:net, hash:ip,port,net), the answers swap: a nomatch element
//    answers "yes" and a plain one "no";
//  - expired elements do not answer; matched elements of sets with counters count the packet
//    (ip_set_match_extensions()), except in a trace (`readOnly`).
import { Flow, FRAG_LATER, FAMILY_V4, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP } from "../flow";
import {
  T_HASH_IP, T_HASH_IP_PORT_IP, T_HASH_IP_PORT_NET, T_HASH_NET, T_BITMAP_PORT,
  CF_COUNTERS, REC_BYTES, O_A, O_B, O_PORT, O_PROTO, TEST_PRESENT, TEST_NOMATCH, dimensionOf, protoWithPorts,
} from "./format";
import { setOf } from "./registry";
import { hashMatch, netSearch, bitmapMatch } from "./store";

export const MATCH_NO_SET: i32 = -1;

const key: usize = heap.alloc(REC_BYTES);
const addr: usize = heap.alloc(16);
let gotProto: u32 = 0;
let gotPort: u32 = 0;

@inline function addrOf(f: Flow, dst: bool): usize {
  return changetype<usize>(f) + (dst ? offsetof<Flow>("d0") : offsetof<Flow>("s0"));
}

// ip_set_get_ip4_port() / ip_set_get_ip6_port(): the packet's (proto, port) into gotProto/gotPort.
function portOf(f: Flow, src: bool): bool {
  const proto = <u32>f.proto;
  if (f.frag == FRAG_LATER) {
    if (f.family != FAMILY_V4) return false;
    if (protoWithPorts(proto) || proto == 1) return false;
    gotProto = proto;
    gotPort = 0;
    return true;
  }
  if (f.family == FAMILY_V4 && proto == 0) return false;
  gotProto = proto;
  if (protoWithPorts(proto)) gotPort = src ? <u32>f.sport : <u32>f.dport;
  else if ((proto == PROTO_ICMP && f.family == FAMILY_V4) || (proto == PROTO_ICMPV6 && f.family != FAMILY_V4)) {
    gotPort = (<u32>f.icmpType << 8) | <u32>f.icmpCode;
  } else gotPort = 0;
  return true;
}

// A net type's answer as the match sees it (--return-nomatch swaps plain and nomatch elements).
@inline function netAnswer(r: i32, returnNomatch: bool): i32 {
  return r == (returnNomatch ? TEST_NOMATCH : TEST_PRESENT) ? 1 : 0;
}

// 1: the packet matches set `id`; 0: it does not; MATCH_NO_SET: no set has that id. `dims` bit i
// set: dimension i+1 reads the destination. `bytes` is the packet length for the set's counters.
export function ipsetMatchFlow(id: u32, dims: u32, count: u32, f: Flow, now: u32, bytes: u32, readOnly: bool, returnNomatch: bool = false): i32 {
  const s = setOf(id);
  if (s == null) return MATCH_NO_SET;
  const type = s.type;
  if (count < dimensionOf(type)) return 0;
  if (s.family != 0 && s.family != f.family) return 0;
  const upd: i64 = readOnly ? -1 : <i64>bytes;
  const counters = (s.flags & CF_COUNTERS) != 0;
  if (type == T_BITMAP_PORT) {
    if (!portOf(f, (dims & 1) == 0)) return 0;
    if (gotProto != PROTO_TCP && gotProto != PROTO_UDP) return 0;
    if (gotPort < s.first || gotPort - s.first >= s.cap) return 0;
    return bitmapMatch(s.recs, s.ext, counters ? s.ctr : 0, gotPort - s.first, now, upd) == TEST_PRESENT ? 1 : 0;
  }
  memory.fill(key, 0, 36);
  if (type == T_HASH_NET) {
    memory.copy(addr, addrOf(f, (dims & 1) != 0), 16);
    return netAnswer(netSearch(s.recs, s.cap, s.seed, s.nets, s.nNets, key, O_A, addr, now, counters, upd), returnNomatch);
  }
  memory.copy(key + O_A, addrOf(f, (dims & 1) != 0), 16);
  if (type != T_HASH_IP) {
    if (!portOf(f, (dims & 2) == 0)) return 0;
    store<u8>(key, <u8>gotProto, O_PROTO);
    store<u16>(key, <u16>gotPort, O_PORT);
  }
  if (type == T_HASH_IP_PORT_NET) {
    memory.copy(addr, addrOf(f, (dims & 4) != 0), 16);
    return netAnswer(netSearch(s.recs, s.cap, s.seed, s.nets, s.nNets, key, O_B, addr, now, counters, upd), returnNomatch);
  }
  if (type == T_HASH_IP_PORT_IP) memory.copy(key + O_B, addrOf(f, (dims & 4) != 0), 16);
  return hashMatch(s.recs, s.cap, s.seed, key, now, counters, upd) == TEST_PRESENT ? 1 : 0;
}

