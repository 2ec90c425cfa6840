// conntrack/entry.ts — the storage of connections: one fixed 48-byte entry per connection in a
// flat array, plus a side table holding full IPv6 addresses. Reads and writes entries and compares
// them with tuples; knows nothing of hashing, buckets or time (table.ts links entries into chains).
// Never allocates after ctInit.
//
// Entry layout (little-endian, 48 bytes):
//    0 u32 orig src address   (IPv4: the address word; IPv6: index of the side-table slot)
//    4 u32 orig dst address   (IPv6: fold of the address)
//    8 u32 reply src address  (IPv6: fold)
//   12 u32 reply dst address  (IPv6: fold)
//   16 u16 orig sport, 18 u16 orig dport, 20 u16 reply sport, 22 u16 reply dport (host order)
//   24 u32 chain link of the original-direction node, 28 u32 of the reply-direction node
//   32 u32 expiry (ms, wraps)
//   36 u32 connmark
//   40 u8 family (0 = slot free), 41 u8 proto, 42 u8 status bits, 43 u8 orig ICMP type
//   44..47 per protocol: ICMP — 44 u8 reply ICMP type; TCP — 44 u8 state, 45 u8 tracker flags;
//          UDP/SCTP — u32 time after which a two-way flow counts as a stream (see track.ts)
//
// IPv6 side-table slot (64 bytes): orig src, orig dst, reply src, reply dst, 16 bytes each, as the
// four raw words of Tuple. A lookup compares the folded words first and reads the side table only
// when they agree. An IPv6 flow costs 48 + 8 (buckets) + 64 = 120 bytes.

import { Tuple, FAMILY_V4, FAMILY_V6, PROTO_ICMP, PROTO_ICMPV6 } from "../flow";
import { allocZeroed } from "../alloc";

export const ENTRY_SIZE: usize = 48;
export const SIDE_SIZE: usize = 64;
export const NIL: u32 = 0xFFFFFFFF;

export const E_OSRC: usize = 0;
export const E_ODST: usize = 4;
export const E_RSRC: usize = 8;
export const E_RDST: usize = 12;
export const E_OSPORT: usize = 16;
export const E_ODPORT: usize = 18;
export const E_RSPORT: usize = 20;
export const E_RDPORT: usize = 22;
export const E_NEXT: usize = 24; // + dir * 4
export const E_EXPIRY: usize = 32;
export const E_MARK: usize = 36;
export const E_FAMILY: usize = 40;
export const E_PROTO: usize = 41;
export const E_STATUS: usize = 42;
export const E_OTYPE: usize = 43;
export const E_RTYPE: usize = 44;    // ICMP only
export const E_TCPSTATE: usize = 44; // TCP only
export const E_TCPFLAGS: usize = 45; // TCP only
export const E_STREAM_AT: usize = 44; // UDP/SCTP only

// Status bits, numbered as the kernel's IPS_* bits (include/uapi/linux/netfilter/nf_conntrack_common.h).
export const CT_SEEN_REPLY: u8 = 1 << 1;
export const CT_ASSURED: u8 = 1 << 2;
export const CT_CONFIRMED: u8 = 1 << 3; // has seen (accepted) its first packet
export const CT_SNAT: u8 = 1 << 4;
export const CT_DNAT: u8 = 1 << 5;
// Internal: its tracker killed it and a listener has had its DESTROY (events.ts); it goes when
// next met. Never shown to callers.
export const CT_DYING: u8 = 1 << 6;
// Internal: a UDP/SCTP entry whose stream delay has passed (track.ts). Never shown to callers.
export const CT_STREAM_TIME: u8 = 1 << 7;
export const CT_STATUS_PUBLIC: u8 = CT_SEEN_REPLY | CT_ASSURED | CT_CONFIRMED | CT_SNAT | CT_DNAT;

// Storage (set by storageInit).
export let entries: usize = 0;
export let capacity: u32 = 0;
export let used: u32 = 0;
let highWater: u32 = 0; // slots below this have been handed out at least once
let freeHead: u32 = NIL; // freed entries, linked through their E_NEXT word
export let side: usize = 0;
export let capacity6: u32 = 0;
export let used6: u32 = 0;
let high6: u32 = 0;
let free6: u32 = NIL;
// Bytes from the start of `entries` (then of `side`) that warmStorage has written.
let warmed: usize = 0;
let warmed6: usize = 0;

/** Sizes in bytes the storage needs for 2^log2 entries and 2^log6 IPv6 slots. */
export function storageBytes(log2: u32, log6: u32): u64 {
  return (<u64>ENTRY_SIZE << log2) + (<u64>SIDE_SIZE << log6);
}

/** Frees any previous storage and allocates anew. The caller has checked that it fits. */
export function storageInit(log2: u32, log6: u32): void {
  if (entries != 0) heap.free(entries);
  if (side != 0) heap.free(side);
  capacity = 1 << log2;
  capacity6 = 1 << log6;
  entries = allocZeroed(<usize>capacity * ENTRY_SIZE);
  side = heap.alloc(<usize>capacity6 * SIDE_SIZE);
  used = 0; highWater = 0; freeHead = NIL;
  used6 = 0; high6 = 0; free6 = NIL;
  warmed = 0; warmed6 = 0;
}

/**
 * Writes up to `maxBytes` of the storage no connection has used yet, so its pages are resident
 * before new connections need them; returns the bytes still to write (0: all of it is). The table
 * is carved out of fresh memory and left untouched at init (zeroed.ts): its pages then come from
 * the operating system one at a time, at the first connection in each, a page fault on the packet
 * path every 85 new connections (microseconds each in a VM). Entries never handed out are zero,
 * and zero is what is written; IPv6 slots never handed out are written before use. So no
 * connection, lookup or count changes. Control time only (a host calls it while idle).
 */
export function warmStorage(maxBytes: u32): u32 {
  let budget = <usize>maxBytes;
  const total = <usize>capacity * ENTRY_SIZE;
  const from = max(warmed, <usize>highWater * ENTRY_SIZE);
  let n = min(budget, total - min(from, total));
  if (n > 0) memory.fill(entries + from, 0, n);
  warmed = from + n;
  budget -= n;
  const total6 = <usize>capacity6 * SIDE_SIZE;
  const from6 = max(warmed6, <usize>high6 * SIDE_SIZE);
  n = min(budget, total6 - min(from6, total6));
  if (n > 0) memory.fill(side + from6, 0, n);
  warmed6 = from6 + n;
  return <u32>(total - min(warmed, total) + total6 - min(warmed6, total6));
}

// @ts-ignore: decorator
@inline export function entryAt(index: u32): usize {
  return entries + <usize>index * ENTRY_SIZE;
}

// @ts-ignore: decorator
@inline export function sideAt(slot: u32): usize {
  return side + <usize>slot * SIDE_SIZE;
}

/** True when `index` names a connection in use. */
// @ts-ignore: decorator
@inline export function isUsed(index: u32): bool {
  return index < capacity && load<u8>(entryAt(index) + E_FAMILY) != 0;
}

/** Slots below this index may be in use (iteration never needs to look further). */
export function usedBound(): u32 {
  return highWater;
}

export function hasFreeEntry(): bool {
  return freeHead != NIL || highWater < capacity;
}

export function hasFreeSide(): bool {
  return free6 != NIL || high6 < capacity6;
}

/** Takes a free entry; the caller checked hasFreeEntry. */
export function takeEntry(): u32 {
  let i = freeHead;
  if (i != NIL) freeHead = load<u32>(entryAt(i) + E_NEXT);
  else i = highWater++;
  used++;
  return i;
}

/** Takes a free IPv6 slot; the caller checked hasFreeSide. */
export function takeSide(): u32 {
  let s = free6;
  if (s != NIL) free6 = load<u32>(sideAt(s));
  else s = high6++;
  used6++;
  return s;
}

/** Returns an entry (and its IPv6 slot) to the free lists. The caller has unlinked it. */
export function releaseEntry(index: u32): void {
  const e = entryAt(index);
  if (load<u8>(e + E_FAMILY) == FAMILY_V6) {
    const s = load<u32>(e + E_OSRC);
    store<u32>(sideAt(s), free6);
    free6 = s;
    used6--;
  }
  for (let i: usize = 0; i < ENTRY_SIZE; i += 8) store<u64>(e + i, 0);
  store<u32>(e + E_NEXT, freeHead);
  freeHead = index;
  used--;
}

// @ts-ignore: decorator
@inline export function isIcmp(proto: u8): bool {
  return proto == PROTO_ICMP || proto == PROTO_ICMPV6;
}

// @ts-ignore: decorator
@inline function fold(a: u32, b: u32, c: u32, d: u32): u32 {
  return a ^ b ^ c ^ d;
}

// @ts-ignore: decorator
@inline function foldSrc(t: Tuple): u32 { return fold(t.s0, t.s1, t.s2, t.s3); }
// @ts-ignore: decorator
@inline function foldDst(t: Tuple): u32 { return fold(t.d0, t.d1, t.d2, t.d3); }

function storeAddr(p: usize, a: u32, b: u32, c: u32, d: u32): void {
  store<u32>(p, a); store<u32>(p, b, 4); store<u32>(p, c, 8); store<u32>(p, d, 12);
}

/**
 * Fills a freshly taken entry from its two tuples (validated by the caller). `slot` is the IPv6
 * side-table slot, ignored for IPv4. Links, expiry and the protocol bytes are set by the caller.
 */
export function writeTuples(index: u32, slot: u32, o: Tuple, r: Tuple, status: u8): void {
  const e = entryAt(index);
  if (o.family == FAMILY_V6) {
    const p = sideAt(slot);
    storeAddr(p, o.s0, o.s1, o.s2, o.s3);
    storeAddr(p + 16, o.d0, o.d1, o.d2, o.d3);
    storeAddr(p + 32, r.s0, r.s1, r.s2, r.s3);
    storeAddr(p + 48, r.d0, r.d1, r.d2, r.d3);
    store<u32>(e + E_OSRC, slot);
    store<u32>(e + E_ODST, foldDst(o));
    store<u32>(e + E_RSRC, foldSrc(r));
    store<u32>(e + E_RDST, foldDst(r));
  } else {
    store<u32>(e + E_OSRC, o.s0);
    store<u32>(e + E_ODST, o.d0);
    store<u32>(e + E_RSRC, r.s0);
    store<u32>(e + E_RDST, r.d0);
  }
  store<u16>(e + E_OSPORT, o.sport);
  store<u16>(e + E_ODPORT, o.dport);
  store<u16>(e + E_RSPORT, r.sport);
  store<u16>(e + E_RDPORT, r.dport);
  store<u32>(e + E_MARK, 0);
  store<u8>(e + E_FAMILY, o.family);
  store<u8>(e + E_PROTO, o.proto);
  store<u8>(e + E_STATUS, status);
  store<u8>(e + E_OTYPE, o.icmpType);
  store<u32>(e + E_STREAM_AT, 0);
  if (isIcmp(o.proto)) store<u8>(e + E_RTYPE, r.icmpType);
}

/** The ICMP type of direction `dir` of an entry (0 for other protocols). */
// @ts-ignore: decorator
@inline export function typeOf(e: usize, dir: u32): u8 {
  if (dir == 0) return load<u8>(e + E_OTYPE);
  return isIcmp(load<u8>(e + E_PROTO)) ? load<u8>(e + E_RTYPE) : 0;
}

/** Does direction `dir` of entry `e` carry exactly tuple `t`? */
export function matches(e: usize, dir: u32, t: Tuple): bool {
  // Family and protocol as one u16, the two ports as one u32: adjacent in both the entry and the
  // Tuple (family 0, proto 1, sport 2, dport 4).
  const tp = changetype<usize>(t);
  if (load<u16>(e + E_FAMILY) != load<u16>(tp)) return false;
  const family = load<u8>(e + E_FAMILY);
  const pd = e + (<usize>dir << 2); // ports of this direction
  if (load<u32>(pd + E_OSPORT) != load<u32>(tp, 2)) return false;
  if (typeOf(e, dir) != t.icmpType) return false;
  if (family == FAMILY_V4) {
    const ad = e + (<usize>dir << 3); // addresses of this direction
    return load<u32>(ad + E_OSRC) == t.s0 && load<u32>(ad + E_ODST) == t.d0;
  }
  if (dir == 0) {
    if (load<u32>(e + E_ODST) != foldDst(t)) return false;
  } else if (load<u32>(e + E_RSRC) != foldSrc(t) || load<u32>(e + E_RDST) != foldDst(t)) {
    return false;
  }
  const p = sideAt(load<u32>(e + E_OSRC)) + (<usize>dir << 5);
  return ((load<u32>(p) ^ t.s0) | (load<u32>(p, 4) ^ t.s1) | (load<u32>(p, 8) ^ t.s2) |
    (load<u32>(p, 12) ^ t.s3) | (load<u32>(p, 16) ^ t.d0) | (load<u32>(p, 20) ^ t.d1) |
    (load<u32>(p, 24) ^ t.d2) | (load<u32>(p, 28) ^ t.d3)) == 0;
}

/** Writes direction `dir` of entry `e` into `out`. */
export function readTuple(e: usize, dir: u32, out: Tuple): void {
  const family = load<u8>(e + E_FAMILY);
  out.family = family;
  out.proto = load<u8>(e + E_PROTO);
  const pd = e + (<usize>dir << 2);
  out.sport = load<u16>(pd + E_OSPORT);
  out.dport = load<u16>(pd + E_ODPORT);
  out.icmpType = typeOf(e, dir);
  out.pad = 0;
  if (family == FAMILY_V6) {
    const p = sideAt(load<u32>(e + E_OSRC)) + (<usize>dir << 5);
    out.s0 = load<u32>(p); out.s1 = load<u32>(p, 4); out.s2 = load<u32>(p, 8); out.s3 = load<u32>(p, 12);
    out.d0 = load<u32>(p, 16); out.d1 = load<u32>(p, 20); out.d2 = load<u32>(p, 24); out.d3 = load<u32>(p, 28);
  } else {
    const ad = e + (<usize>dir << 3);
    out.s0 = load<u32>(ad + E_OSRC); out.s1 = 0; out.s2 = 0; out.s3 = 0;
    out.d0 = load<u32>(ad + E_ODST); out.d1 = 0; out.d2 = 0; out.d3 = 0;
  }
}

/**
 * NAT status from the two tuples, as Linux derives it: the reply's source differs from the
 * original destination → DNAT; the reply's destination differs from the original source → SNAT
 * (address or port; nf_nat_core.c compares the whole tuple side).
 */
export function natStatus(o: Tuple, r: Tuple): u8 {
  let s: u8 = 0;
  if (r.sport != o.dport || ((r.s0 ^ o.d0) | (r.s1 ^ o.d1) | (r.s2 ^ o.d2) | (r.s3 ^ o.d3)) != 0) s |= CT_DNAT;
  if (r.dport != o.sport || ((r.d0 ^ o.s0) | (r.d1 ^ o.s1) | (r.d2 ^ o.s2) | (r.d3 ^ o.s3)) != 0) s |= CT_SNAT;
  return s;
}

/**
 * Checks a tuple pair the table may store: same family (4 or 6) and protocol, IPv4 words 1–3 zero,
 * ICMP only over IPv4 and ICMPv6 only over IPv6, and no ICMP type on other protocols.
 */
export function validPair(o: Tuple, r: Tuple): bool {
  if (o.family != r.family || o.proto != r.proto) return false;
  if (o.family == FAMILY_V4) {
    if ((o.s1 | o.s2 | o.s3 | o.d1 | o.d2 | o.d3 | r.s1 | r.s2 | r.s3 | r.d1 | r.d2 | r.d3) != 0) return false;
    if (o.proto == PROTO_ICMPV6) return false;
  } else if (o.family == FAMILY_V6) {
    if (o.proto == PROTO_ICMP) return false;
  } else {
    return false;
  }
  if (!isIcmp(o.proto) && (o.icmpType | r.icmpType) != 0) return false;
  return true;
}
