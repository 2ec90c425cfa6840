// netfilter/match-ct.ts — matches on the packet's connection, with xt_conntrack.c's semantics:
// --ctstate / --state (the packet's state plus SNAT / DNAT from the connection's status),
// --ctorigsrc/--ctorigdst/--ctreplsrc/--ctrepldst, the four port criteria, --ctstatus, --ctproto,
// --ctdir, and connmark's --mark. The connection may be a stored one, the master of a RELATED
// packet, or the pending one of a NEW packet (ctx.ts) — as in the kernel, where an unconfirmed
// conntrack is already attached to the skb. Reads only; never allocates.
import { Flow, Tuple, PROTO_ICMP, PROTO_ICMPV6 } from "../flow";
import { OPF_INVERT, OPF_CT_NOCT_PASS, opFlags, CTS_SNAT, CTS_DNAT } from "./format";
import { pk, hasCt, ctOrigInto, ctReplyInto, ctStatusBits, ctNatBits } from "./ctx";

const tOrig: Tuple = changetype<Tuple>(heap.alloc(offsetof<Tuple>()));
const tReply: Tuple = changetype<Tuple>(heap.alloc(offsetof<Tuple>()));

@inline function inverted(p: usize): bool {
  return (opFlags(load<u32>(p)) & OPF_INVERT) != 0;
}

// CTSTATE: mask — conntrack_mt(): statebit from ctinfo (or INVALID / UNTRACKED without a
// connection), the NAT bits added only when there is one.
export function ctstateMatch(p: usize): bool {
  let bits = pk.ctState;
  if (hasCt()) {
    const nat = ctNatBits();
    if ((nat & 1) != 0) bits |= CTS_SNAT;
    if ((nat & 2) != 0) bits |= CTS_DNAT;
  }
  return ((load<u32>(p, 4) & bits) != 0) != inverted(p);
}

// The remaining criteria need a connection: without one, xt_conntrack returns whether the same
// match tested the state (which then passed), recorded by the compiler as OPF_CT_NOCT_PASS.
@inline function noCt(p: usize): bool {
  return (opFlags(load<u32>(p)) & OPF_CT_NOCT_PASS) != 0;
}

// CT_ADDR: which, addr[4], mask[4].
export function ctAddrMatch(p: usize): bool {
  if (!hasCt()) return noCt(p);
  const which = load<u32>(p, 4);
  const t = which < 2 ? tOrig : tReply;
  if (which < 2) ctOrigInto(t); else ctReplyInto(t);
  let a0: u32, a1: u32, a2: u32, a3: u32;
  if ((which & 1) == 0) { a0 = t.s0; a1 = t.s1; a2 = t.s2; a3 = t.s3; }
  else { a0 = t.d0; a1 = t.d1; a2 = t.d2; a3 = t.d3; }
  const diff = ((a0 & load<u32>(p, 24)) ^ load<u32>(p, 8)) | ((a1 & load<u32>(p, 28)) ^ load<u32>(p, 12)) |
    ((a2 & load<u32>(p, 32)) ^ load<u32>(p, 16)) | ((a3 & load<u32>(p, 36)) ^ load<u32>(p, 20));
  return (diff == 0) != inverted(p);
}

// CT_PORT: which, range — ct_proto_port_check_v3(), the 16-bit port fields of the tuple: for an
// ICMP connection the source one is the identifier and the destination one is type << 8 | code
// (the reply tuple's type is the answer's, echo-reply for echo). The code is not kept with the
// connection: taken as 0, what echo and the other queries conntrack follows carry.
export function ctPortMatch(p: usize): bool {
  if (!hasCt()) return noCt(p);
  const which = load<u32>(p, 4);
  const t = which < 2 ? tOrig : tReply;
  if (which < 2) ctOrigInto(t); else ctReplyInto(t);
  const icmp = t.proto == PROTO_ICMP || t.proto == PROTO_ICMPV6;
  const port = (which & 1) == 0 ? <u32>t.sport : icmp ? <u32>t.icmpType << 8 : <u32>t.dport;
  const w = load<u32>(p, 8);
  return (port >= (w & 0xFFFF) && port <= (w >>> 16)) != inverted(p);
}

// CT_STATUS: mask — any of the bits.
export function ctStatusMatch(p: usize): bool {
  if (!hasCt()) return noCt(p);
  return ((load<u32>(p, 4) & ctStatusBits()) != 0) != inverted(p);
}

// CT_PROTO: proto.
export function ctProtoMatch(p: usize, f: Flow): bool {
  if (!hasCt()) return noCt(p);
  // A connection's protocol is its packets'; a RELATED ICMP error's is its master's.
  let proto = <u32>f.proto;
  if (pk.related) { ctOrigInto(tOrig); proto = <u32>tOrig.proto; }
  return (proto == load<u32>(p, 4)) != inverted(p);
}

// CT_DIR: 0 ORIGINAL, 1 REPLY.
export function ctDirMatch(p: usize): bool {
  if (!hasCt()) return noCt(p);
  const dir: u32 = pk.pending ? 0 : pk.ctDir;
  return (dir == load<u32>(p, 4)) != inverted(p);
}

// CONNMARK: value, mask — connmark_mt(): no connection, no match (`!` included).
export function connmarkMatch(p: usize): bool {
  if (!hasCt()) return false;
  return ((pk.ctm & load<u32>(p, 8)) == load<u32>(p, 4)) != inverted(p);
}
