// netfilter/match-addr.ts — matches on the packet's own headers and interfaces: -s/-d prefixes,
// -p, --sport / --dport, multiport, -f, icmp/icmp6 --icmp-type, tcp --tcp-flags, addrtype, and
// -i / -o. Each reads the parsed Flow and the op's arguments, applies the op's `!` as the kernel
// module does, and returns the result; none allocates or writes anything.
//
// Interfaces: the host tells the core the name of each interface index it puts in descriptors
// (meta bits 8–15 ingress, 16–23 egress); -i / -o compare the 16-byte, NUL-padded name under the
// mask iptables built from the rule text (a trailing `+` matches any suffix), as ip_tables.c
// ifname_compare_aligned() does. Index 0, or a hook without that interface, is the empty name.
//
// addrtype classifies with what the core knows instead of a FIB lookup: the node's addresses
// (node.ts isLocal) and loopback are LOCAL; 0.0.0.0/8 and 255.255.255.255 BROADCAST; 224/4 and
// ff00::/8 MULTICAST; everything else UNICAST (fib's answer for any address with a route). Subnet
// broadcast addresses, blackhole/unreachable/prohibit routes and per-interface limits
// (--limit-iface-in/out) are not modelled: the node's addresses count on every interface.
import { Flow, FAMILY_V4, PROTO_TCP, PROTO_UDP, PROTO_SCTP, FRAG_LATER } from "../flow";
import { isLocal } from "../node";
import { pk } from "./ctx";
import { inMemory } from "../alloc";
import {
  HOOK_PREROUTING, HOOK_INPUT, HOOK_FORWARD, HOOK_OUTPUT, HOOK_POSTROUTING, OPF_INVERT, opFlags, AT_UNSPEC, AT_UNICAST, AT_LOCAL, AT_BROADCAST, AT_MULTICAST, AT_ANYCAST,
  AT_UNREACHABLE, AT_INV_SRC, AT_INV_DST, MP_SOURCE, MP_DEST,
} from "./format";

@inline function inverted(p: usize): bool {
  return (opFlags(load<u32>(p)) & OPF_INVERT) != 0;
}

// SRC / DST: addr[4] mask[4] — ip_packet_match(): (ip & mask) != addr, under `!`.
export function prefixMatch(p: usize, f: Flow, dst: bool): bool {
  let diff: u32;
  if (dst) {
    diff = ((f.d0 & load<u32>(p, 20)) ^ load<u32>(p, 4)) | ((f.d1 & load<u32>(p, 24)) ^ load<u32>(p, 8)) |
      ((f.d2 & load<u32>(p, 28)) ^ load<u32>(p, 12)) | ((f.d3 & load<u32>(p, 32)) ^ load<u32>(p, 16));
  } else {
    diff = ((f.s0 & load<u32>(p, 20)) ^ load<u32>(p, 4)) | ((f.s1 & load<u32>(p, 24)) ^ load<u32>(p, 8)) |
      ((f.s2 & load<u32>(p, 28)) ^ load<u32>(p, 12)) | ((f.s3 & load<u32>(p, 32)) ^ load<u32>(p, 16));
  }
  return (diff == 0) != inverted(p);
}

export function protoMatch(p: usize, f: Flow): bool {
  return (<u32>f.proto == load<u32>(p, 4)) != inverted(p);
}

@inline function hasPorts(f: Flow): bool {
  const pr = f.proto;
  return f.frag != FRAG_LATER && (pr == PROTO_TCP || pr == PROTO_UDP || pr == PROTO_SCTP);
}

// SPORT / DPORT: xt_tcpudp.c — a packet without ports (a later fragment) never matches, `!` or not.
export function portMatch(p: usize, f: Flow, dst: bool): bool {
  if (!hasPorts(f)) return false;
  const w = load<u32>(p, 4);
  const port = <u32>(dst ? f.dport : f.sport);
  return (port >= (w & 0xFFFF) && port <= (w >>> 16)) != inverted(p);
}

// MULTIPORT: mode, count, ranges — xt_multiport.c ports_match_v1().
export function multiportMatch(p: usize, f: Flow): bool {
  if (!hasPorts(f)) return false;
  const inv = inverted(p);
  const mode = load<u32>(p, 4), n = load<u32>(p, 8);
  const s = <u32>f.sport, d = <u32>f.dport;
  for (let i: u32 = 0; i < n; i++) {
    const w = load<u32>(p + 12 + (<usize>i << 2));
    const lo = w & 0xFFFF, hi = w >>> 16;
    const sIn = s >= lo && s <= hi, dIn = d >= lo && d <= hi;
    const hit = mode == MP_SOURCE ? sIn : mode == MP_DEST ? dIn : sIn || dIn;
    if (hit) return !inv;
  }
  return inv;
}

// FRAG (-f): a fragment other than the first.
export function fragMatch(p: usize, f: Flow): bool {
  return (f.frag == FRAG_LATER) != inverted(p);
}

// ICMP: type | minCode << 8 | maxCode << 16 | any << 24, proto — xt_icmp / ip6t_icmp6
// icmp_type_code_match(); a packet of another protocol, or a later fragment, never matches.
export function icmpMatch(p: usize, f: Flow): bool {
  if (<u32>f.proto != load<u32>(p, 8) || f.frag == FRAG_LATER) return false;
  const w = load<u32>(p, 4);
  const type = <u32>f.icmpType, code = <u32>f.icmpCode;
  const hit = (w >>> 24) != 0 ||
    (type == (w & 0xFF) && code >= ((w >> 8) & 0xFF) && code <= ((w >> 16) & 0xFF));
  return hit != inverted(p);
}

// TCPFLAGS: mask | cmp << 8 — xt_tcpudp.c tcp_mt(): (flags & mask) == cmp, TCP only.
export function tcpFlagsMatch(p: usize, f: Flow): bool {
  if (f.proto != PROTO_TCP || f.frag == FRAG_LATER) return false;
  const w = load<u32>(p, 4);
  return ((<u32>f.tcpFlags & (w & 0xFF)) == ((w >> 8) & 0xFF)) != inverted(p);
}

// inet_dev_addr_type() of an IPv4 address (raw word), as the AT_* bit of its route type.
function typeV4(a0: u32): u32 {
  const b0 = a0 & 0xFF;
  if (b0 == 0 || a0 == 0xFFFFFFFF) return AT_BROADCAST;
  if ((b0 & 0xF0) == 0xE0) return AT_MULTICAST;
  if (b0 == 127 || isLocal(FAMILY_V4, a0, 0, 0, 0)) return AT_LOCAL;
  return AT_UNICAST;
}

// xt_addrtype.c match_type6(): every type named in `mask` is tested on its own.
function matchV6(a0: u32, a1: u32, a2: u32, a3: u32, mask: u32): bool {
  const any = (a0 | a1 | a2 | a3) == 0;
  const multicast = (a0 & 0xFF) == 0xFF;
  const mapped = (a0 | a1) == 0 && a2 == 0xFFFF0000;
  if ((mask & AT_MULTICAST) != 0 && !multicast) return false;
  if ((mask & AT_UNICAST) != 0 && (any || multicast || mapped)) return false;
  if ((mask & AT_UNSPEC) != 0 && !any) return false;
  if ((mask & (AT_LOCAL | AT_ANYCAST | AT_UNREACHABLE)) != 0) {
    const loopback = (a0 | a1 | a2) == 0 && a3 == 0x01000000;
    const local = loopback || isLocal(6, a0, a1, a2, a3);
    return (mask & (local ? AT_LOCAL : 0)) != 0;
  }
  return true;
}

// ADDRTYPE: srcMask | dstMask << 16, flags — addrtype_mt_v1().
export function addrtypeMatch(p: usize, f: Flow): bool {
  const w = load<u32>(p, 4), flags = load<u32>(p, 8);
  const src = w & 0xFFFF, dst = w >>> 16;
  const v4 = f.family == FAMILY_V4;
  if (src != 0) {
    const hit = v4 ? (typeV4(f.s0) & src) != 0 : matchV6(f.s0, f.s1, f.s2, f.s3, src);
    if (hit == ((flags & AT_INV_SRC) != 0)) return false;
  }
  if (dst != 0) {
    const hit = v4 ? (typeV4(f.d0) & dst) != 0 : matchV6(f.d0, f.d1, f.d2, f.d3, dst);
    if (hit == ((flags & AT_INV_DST) != 0)) return false;
  }
  return true;
}

// ---- interfaces

export const IF_MAX: u32 = 256;
export const IFNAMSIZ: u32 = 16;

const names: usize = heap.alloc(<usize>IF_MAX * IFNAMSIZ);
memory.fill(names, 0, <usize>IF_MAX * IFNAMSIZ);

// Sets the name of interface `index` (1..255) from `len` bytes at `ptr` (at most 15; longer or an
// index out of range is refused). A zero length clears it. Returns 0 or -1.
export function ifSetName(index: u32, ptr: usize, len: u32): i32 {
  if (index == 0 || index >= IF_MAX || len >= IFNAMSIZ) return -1;
  if (!inMemory(ptr, len)) return -1;
  const p = names + <usize>index * IFNAMSIZ;
  memory.fill(p, 0, IFNAMSIZ);
  memory.copy(p, ptr, len);
  return 0;
}

// Interface index seen by the hook in hand: the input device exists at PREROUTING, INPUT and
// FORWARD (for packets that came in), the output device at FORWARD, OUTPUT and POSTROUTING.
@inline function inIndex(): u32 {
  const h = pk.hook;
  return !pk.local && (h == HOOK_PREROUTING || h == HOOK_INPUT || h == HOOK_FORWARD) ? pk.inIf : 0;
}

@inline function outIndex(): u32 {
  const h = pk.hook;
  return h == HOOK_FORWARD || h == HOOK_OUTPUT || h == HOOK_POSTROUTING ? pk.outIf : 0;
}

// IIF / OIF op at `p`: name[4] mask[4].
export function ifMatch(p: usize, out: bool): bool {
  const index = out ? outIndex() : inIndex();
  const i: u32 = index < IF_MAX ? index : 0;
  const n = names + <usize>i * <usize>IFNAMSIZ;
  let diff: u32 = 0;
  for (let i: usize = 0; i < 4; i++) {
    diff |= (load<u32>(n + (i << 2)) ^ load<u32>(p + 4 + (i << 2))) & load<u32>(p + 20 + (i << 2));
  }
  return (diff == 0) != ((opFlags(load<u32>(p)) & OPF_INVERT) != 0);
}
