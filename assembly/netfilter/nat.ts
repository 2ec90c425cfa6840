// netfilter/nat.ts — NAT in iptables mode, split the way net/netfilter/nf_nat_core.c splits it:
// the DNAT / SNAT / MASQUERADE / REDIRECT targets make the pending connection's binding (its reply
// tuple) the first time its packet crosses a nat chain, and at every NAT hook the packet gets the
// half of its connection's binding that hook owns — destination at PREROUTING and OUTPUT, source at
// POSTROUTING and INPUT (nf_nat_packet), ICMP errors about a connection included
// (nf_nat_icmp_reply_translation). The pipeline's translate()/related() apply both halves at once
// and finish the descriptor; iptables mode cannot use them, because filter FORWARD must see a
// packet with its destination translated and its source not yet. Rewrites go through
// nat/rewrite.ts; port search through nat/masq.ts where the kernel's defaults apply.
// Never allocates; never inserts connections (hooks.ts confirms).
import { Tuple, Flow, inner, FAMILY_V4, PROTO_TCP, PROTO_UDP, PROTO_SCTP, PROTO_ICMP, PROTO_ICMPV6 } from "../flow";
import { setSrc, setDst, setInnerSrc, setInnerDst, innerNatable } from "../nat/rewrite";
import { masqChoosePort } from "../nat/masq";
import { masqAddr, haveMasq } from "../node";
import { randNext } from "../rand";
import { ctLookup, ctOrig, ctReply, ctInvertTuple, CT_NONE, CT_SNAT, CT_DNAT } from "../conntrack/table";
import {
  NAT_MAP_IPS, NAT_PROTO_SPECIFIED, NAT_RANDOM, NAT_PERSISTENT, NAT_RANDOM_FULLY,
  T_DNAT, T_SNAT, T_MASQUERADE, T_REDIRECT, HOOK_PREROUTING, HOOK_OUTPUT, HOOK_POSTROUTING,
} from "./format";
import { pk, pendReply, hasCt, ctStatusBits } from "./ctx";
import { iptCount, IS_NAT_WRONG_HOOK, IS_NAT_NO_ADDR, IS_NAT_PORTS } from "./counters";

export const MANIP_SRC: u32 = 0;
export const MANIP_DST: u32 = 1;

// Results of a NAT target.
export const NAT_OK: u32 = 0;
export const NAT_DROP: u32 = 1;       // counted in counters.ts; the reason is R_POLICY
export const NAT_NO_PORT: u32 = 2;    // R_NAT_PORTS

// HOOK2MANIP: PREROUTING and OUTPUT change destinations, INPUT and POSTROUTING sources.
@inline export function hookManip(hook: u32): u32 {
  return hook == HOOK_PREROUTING || hook == HOOK_OUTPUT ? MANIP_DST : MANIP_SRC;
}

const nt: Tuple = changetype<Tuple>(heap.alloc(offsetof<Tuple>()));   // the new original-side tuple
const rt: Tuple = changetype<Tuple>(heap.alloc(offsetof<Tuple>()));   // its inverse
const other: Tuple = changetype<Tuple>(heap.alloc(offsetof<Tuple>()));
// Range of the rule in hand: min and max address (raw words), ports, flags.
const rmin: usize = heap.alloc(16);
const rmax: usize = heap.alloc(16);
let pmin: u32 = 0;
let pmax: u32 = 0;
let flags: u32 = 0;

// ---- jhash2 (Bob Jenkins' lookup3, as include/linux/jhash.h), used by find_best_ips_proto.
@inline function rol(x: u32, k: u32): u32 { return rotl<u32>(x, k); }

function jhash4(k0: u32, k1: u32, k2: u32, k3: u32, initval: u32): u32 {
  let a: u32 = 0xDEADBEEF + (4 << 2) + initval;
  let b = a, c = a;
  a += k0; b += k1; c += k2;
  // __jhash_mix
  a -= c; a ^= rol(c, 4); c += b;
  b -= a; b ^= rol(a, 6); a += c;
  c -= b; c ^= rol(b, 8); b += a;
  a -= c; a ^= rol(c, 16); c += b;
  b -= a; b ^= rol(a, 19); a += c;
  c -= b; c ^= rol(b, 4); b += a;
  a += k3;
  // __jhash_final
  c ^= b; c -= rol(b, 14);
  a ^= c; a -= rol(c, 11);
  b ^= a; b -= rol(a, 25);
  c ^= b; c -= rol(b, 16);
  a ^= c; a -= rol(c, 4);
  b ^= a; b -= rol(a, 14);
  c ^= b; c -= rol(b, 24);
  return c;
}

@inline function word(t: Tuple, dst: bool, i: u32): u32 {
  if (dst) return i == 0 ? t.d0 : i == 1 ? t.d1 : i == 2 ? t.d2 : t.d3;
  return i == 0 ? t.s0 : i == 1 ? t.s1 : i == 2 ? t.s2 : t.s3;
}

@inline function setWord(t: Tuple, dst: bool, i: u32, v: u32): void {
  if (dst) { if (i == 0) t.d0 = v; else if (i == 1) t.d1 = v; else if (i == 2) t.d2 = v; else t.d3 = v; }
  else { if (i == 0) t.s0 = v; else if (i == 1) t.s1 = v; else if (i == 2) t.s2 = v; else t.s3 = v; }
}

// find_best_ips_proto(): the address from the range, hashed from the source (and destination unless
// --persistent) so a client keeps its address across connections.
function chooseAddr(t: Tuple, dst: bool): void {
  if ((flags & NAT_MAP_IPS) == 0) return;
  const a0 = load<u32>(rmin), a1 = load<u32>(rmin, 4), a2 = load<u32>(rmin, 8), a3 = load<u32>(rmin, 12);
  if (((a0 ^ load<u32>(rmax)) | (a1 ^ load<u32>(rmax, 4)) | (a2 ^ load<u32>(rmax, 8)) | (a3 ^ load<u32>(rmax, 12))) == 0) {
    if (dst) { t.d0 = a0; t.d1 = a1; t.d2 = a2; t.d3 = a3; }
    else { t.s0 = a0; t.s1 = a1; t.s2 = a2; t.s3 = a3; }
    return;
  }
  const persistent = (flags & NAT_PERSISTENT) != 0;
  const last: u32 = t.family == FAMILY_V4 ? 0 : 3;
  let j = jhash4(t.s0, t.s1, t.s2, t.s3, persistent ? 0 : word(t, true, last));
  let full = false;
  for (let i: u32 = 0; i <= last; i++) {
    let minip: u32, dist: u32;
    if (!full) {
      minip = bswap<u32>(load<u32>(rmin + (i << 2)));
      dist = bswap<u32>(load<u32>(rmax + (i << 2))) - minip + 1;
    } else {
      minip = 0;
      dist = 0xFFFFFFFF;
    }
    // reciprocal_scale(j, dist)
    const v = bswap<u32>(minip + <u32>((<u64>j * <u64>dist) >> 32));
    setWord(t, dst, i, v);
    if (v != load<u32>(rmax + (i << 2))) full = true;
    if (!persistent) j ^= word(t, true, i);
  }
}

@inline function ported(proto: u8): bool {
  return proto == PROTO_TCP || proto == PROTO_UDP || proto == PROTO_SCTP;
}
@inline function isIcmp(proto: u8): bool {
  return proto == PROTO_ICMP || proto == PROTO_ICMPV6;
}

// nf_nat_used_tuple(): would the connection with original tuple `t` clash with a stored one?
function used(t: Tuple): bool {
  if (!ctInvertTuple(rt, t)) return false;
  return ctLookup(rt, pk.now) != CT_NONE;
}

// The port (ICMP: identifier) this manip changes.
@inline function keyOf(t: Tuple, dst: bool): u32 {
  return isIcmp(t.proto) ? <u32>t.sport : <u32>(dst ? t.dport : t.sport);
}
@inline function setKey(t: Tuple, dst: bool, v: u32): void {
  if (isIcmp(t.proto)) { t.sport = <u16>v; t.dport = <u16>v; }
  else if (dst) t.dport = <u16>v;
  else t.sport = <u16>v;
}

// get_unique_tuple() steps 2–3 and nf_nat_l4proto_unique_tuple(). False when the search of a range of
// more than one port found no free tuple.
function uniqueTuple(t: Tuple, dst: bool): bool {
  chooseAddr(t, dst);
  const randomAll = (flags & (NAT_RANDOM | NAT_RANDOM_FULLY)) != 0;
  const specified = (flags & NAT_PROTO_SPECIFIED) != 0;
  const key = keyOf(t, dst);
  if (!randomAll) {
    if (specified) {
      if (key >= pmin && key <= pmax && (pmin == pmax || !used(t))) return true;
    } else if (!used(t)) {
      return true;
    }
  }
  let min: u32, size: u32;
  if (isIcmp(t.proto)) {
    if (specified) { min = pmin; size = pmax - pmin + 1; } else { min = 0; size = 65536; }
  } else if (!ported(t.proto)) {
    return !used(t);
  } else if (!specified) {
    // A destination's port is never changed without a range.
    if (dst) return !used(t);
    if (key < 512) { min = 1; size = 511; }
    else if (key < 1024) { min = 600; size = 424; }
    else { min = 1024; size = 64512; }
  } else {
    min = pmin; size = pmax - pmin + 1;
  }
  // nf_nat_l4proto_unique_tuple(): a one-port range (every kube-proxy DNAT) is tried once and
  // kept whether or not it is free — the kernel returns the tuple either way and a clash fails at
  // confirm — so there is nothing to look up.
  if (size == 1) {
    setKey(t, dst, min);
    return true;
  }
  // A destination searches from the range's first port unless --random was given; a source from
  // a random offset.
  let off: u32 = randomAll || !dst ? <u32>(randNext() >> 48) : 0;
  let attempts: u32 = size < 128 ? size : 128;
  while (true) {
    for (let i: u32 = 0; i < attempts; i++, off++) {
      setKey(t, dst, min + off % size);
      if (!used(t)) return true;
    }
    if (attempts >= size || attempts < 16) return false;
    attempts >>= 1;
    off = <u32>(randNext() >> 48);
  }
  return false;
}

// __nf_nat_alloc_null_binding() for the source (POSTROUTING, INPUT), when no NAT target gave the
// pending connection its source binding: it keeps its source address — get_unique_tuple() over a
// range of that one address — unless its tuple as it stands is a stored connection's (a client
// port reaching the same endpoint through two Services, or a pod's own port reused across
// backends); then the port (ICMP: identifier) moves as the kernel's search moves it, and replies
// come back to the new one. The destination's null binding never changes a tuple (a destination
// port moves only within a range), so it has no counterpart here. Where no free tuple exists the
// tuple stays and confirm refuses the clash, as in the kernel.
export function natNullSource(): void {
  // nf_nat_used_tuple() of the tuple as it stands: is its reply, pendReply itself, stored?
  if (ctLookup(pendReply, pk.now) == CT_NONE) return;
  ctInvertTuple(nt, pendReply);
  flags = NAT_MAP_IPS;
  store<u32>(rmin, nt.s0); store<u32>(rmin, nt.s1, 4); store<u32>(rmin, nt.s2, 8); store<u32>(rmin, nt.s3, 12);
  copy16(rmax, rmin);
  pmin = 0; pmax = 0;
  if (uniqueTuple(nt, false)) ctInvertTuple(pendReply, nt);
}

// in_range(): the original tuple already inside the range (source manip step 1). The address is
// compared as one big-endian number, as nf_nat_inet_in_range() does (ipv6_addr_cmp for IPv6).
function inRange(t: Tuple): bool {
  if ((flags & NAT_MAP_IPS) != 0 && (srcCmp(t, rmin) < 0 || srcCmp(t, rmax) > 0)) return false;
  if ((flags & NAT_PROTO_SPECIFIED) != 0) {
    const k = keyOf(t, false);
    if (k < pmin || k > pmax) return false;
  }
  return true;
}

// The source address of `t` against the one at `a`, both as big-endian numbers: -1, 0 or 1.
function srcCmp(t: Tuple, a: usize): i32 {
  for (let i: u32 = 0; i < 4; i++) {
    const v = bswap<u32>(word(t, false, i)), w = bswap<u32>(load<u32>(a + (i << 2)));
    if (v != w) return v < w ? -1 : 1;
  }
  return 0;
}

// 16 bytes with two 64-bit moves (no bulk-memory runtime call on the packet path).
@inline function copy16(to: usize, from: usize): void {
  store<u64>(to, load<u64>(from));
  store<u64>(to, load<u64>(from, 8), 8);
}

function loadRange(p: usize, kind: u32, f: Flow): bool {
  if (kind == T_DNAT || kind == T_SNAT) {
    flags = load<u32>(p, 4);
    copy16(rmin, p + 8);
    copy16(rmax, p + 24);
    const w = load<u32>(p, 40);
    pmin = w & 0xFFFF; pmax = w >>> 16;
  } else {
    // MASQUERADE: the node's masquerade address. REDIRECT: loopback for locally generated packets,
    // else the node's address (the kernel takes the incoming interface's first address).
    flags = load<u32>(p, 4) | NAT_MAP_IPS;
    const w = load<u32>(p, 8);
    pmin = w & 0xFFFF; pmax = w >>> 16;
    if (kind == T_REDIRECT && pk.local) {
      store<u64>(rmin, 0);
      store<u64>(rmin, 0, 8);
      if (f.family == FAMILY_V4) store<u32>(rmin, 0x0100007F); else store<u32>(rmin + 12, 0x01000000);
    } else {
      if (!haveMasq(f.family)) return false;
      copy16(rmin, masqAddr(f.family));
    }
    copy16(rmax, rmin);
  }
  // Ports only mean something to ported protocols (libxt_DNAT refuses a port range otherwise).
  if (!ported(f.proto)) flags &= ~NAT_PROTO_SPECIFIED;
  return true;
}

// Runs a NAT target (op at `p`) for the pending connection of `f`. NAT_OK accepts the packet.
export function natTarget(p: usize, kind: u32, f: Flow): u32 {
  const dst = kind == T_DNAT || kind == T_REDIRECT;
  const manip = hookManip(pk.hook);
  if ((dst ? MANIP_DST : MANIP_SRC) != manip || (kind == T_MASQUERADE && pk.hook != HOOK_POSTROUTING)) {
    iptCount(IS_NAT_WRONG_HOOK);
    return NAT_DROP;
  }
  // nf_nat_setup_info(): only an unconfirmed connection gets a binding, once per manip.
  if (!pk.pending || (dst ? pk.dnatInit : pk.snatInit)) return NAT_OK;
  if (!loadRange(p, kind, f)) {
    iptCount(IS_NAT_NO_ADDR);
    return NAT_DROP;
  }
  // What the packet looks like now: the inverse of the reply tuple.
  ctInvertTuple(nt, pendReply);
  let ok = true;
  if (!dst && (flags & (NAT_RANDOM | NAT_RANDOM_FULLY)) == 0 && inRange(nt) && !used(nt)) {
    ok = true;   // get_unique_tuple() step 1: the packet's own source fits the range
  } else if (kind == T_MASQUERADE && ported(nt.proto) && (flags & (NAT_PROTO_SPECIFIED | NAT_RANDOM | NAT_RANDOM_FULLY)) == 0) {
    // The kernel's default source-port choice, shared with the direct mode (nat/masq.ts).
    chooseAddr(nt, false);
    if (!ctInvertTuple(rt, nt)) return NAT_DROP;
    ok = masqChoosePort(rt, nt.sport, pk.now);
    if (ok) setKey(nt, false, <u32>rt.dport);
  } else {
    ok = uniqueTuple(nt, dst);
  }
  if (!ok) {
    iptCount(IS_NAT_PORTS);
    return NAT_NO_PORT;
  }
  ctInvertTuple(pendReply, nt);
  if (dst) pk.dnatInit = true; else pk.snatInit = true;
  return NAT_OK;
}

// The packet's half of its connection's binding at a NAT hook (nf_nat_packet), or for an ICMP
// error about the connection, nf_nat_icmp_reply_translation(): the quoted header gets the other
// half back, the outer header this half. Marks the packet rewritten when anything changed. False
// when the packet is dropped: an error whose quote is too short to translate (innerNatable).
export function natPacket(f: Flow, manip: u32): bool {
  if (!hasCt() || pk.untracked) return true;
  const dir: u32 = pk.pending ? 0 : pk.ctDir;
  const status = ctStatusBits();
  const bit: u32 = (manip == MANIP_DST) == (dir == 0) ? CT_DNAT : CT_SNAT;
  if ((status & bit) == 0) return true;
  if (pk.related && !innerNatable(inner)) return false;
  if (pk.pending) other.copyFrom(pendReply);
  else if (dir == 0) ctReply(pk.ctIdx, other);
  else ctOrig(pk.ctIdx, other);
  if (pk.related) {
    if (manip == MANIP_DST) {
      setInnerSrc(f, inner, other.s0, other.s1, other.s2, other.s3, other.sport);
      setDst(f, other.s0, other.s1, other.s2, other.s3, f.dport);
    } else {
      setInnerDst(f, inner, other.d0, other.d1, other.d2, other.d3, other.dport);
      setSrc(f, other.d0, other.d1, other.d2, other.d3, f.sport);
    }
  } else if (manip == MANIP_DST) {
    setDst(f, other.s0, other.s1, other.s2, other.s3, other.sport);
  } else {
    setSrc(f, other.d0, other.d1, other.d2, other.d3, other.dport);
  }
  pk.rewritten = true;
  return true;
}
