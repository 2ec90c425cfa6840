// conntrack/export.ts — reading connections out: per-entry accessors (tuples, TCP state, status,
// expiry, connmark) and fixed-size snapshot records (record.ts) that save a table and restore it
// elsewhere. Import validates every field before it touches the table. Never allocates after
// start-up.
//
// Record (CT_RECORD_SIZE = 88 bytes, little-endian):
//    0 u8  version (CT_RECORD_VERSION)
//    1 u8  family (4 or 6)
//    2 u8  protocol
//    3 u8  TCP state (tcp.ts TCP_*; 0 for other protocols)
//    4 u8  original ICMP type (0 unless ICMP/ICMPv6)
//    5 u8  reply ICMP type
//    6 u8  status (CT_SEEN_REPLY | CT_ASSURED | CT_CONFIRMED | CT_SNAT | CT_DNAT, kernel IPS_* bits)
//    7 u8  TCP tracker flags (bit 0/1 FIN first sent by original/reply side, bit 2 simultaneous
//          open, bit 3 challenge ACK expected, bit 4 last direction, bits 5–7 last flag index ≤ 5);
//          0 for other protocols
//    8 u32 connmark
//   12 i32 remaining lifetime in ms (> 0)
//   16 original tuple: src address (16 bytes), dst address (16), sport u16, dport u16
//   52 reply tuple:    src address (16 bytes), dst address (16), sport u16, dport u16
// Addresses are the four Tuple words, so they read in network byte order; IPv4 fills the first
// four bytes and leaves the other twelve zero. Ports are numbers (not network order).

import { Tuple, FAMILY_V4, PROTO_TCP, PROTO_UDP, PROTO_SCTP } from "../flow";
import {
  E_EXPIRY, E_MARK, E_PROTO, E_STATUS, E_FAMILY, E_OSRC, E_ODST, E_OSPORT, E_ODPORT, E_TCPSTATE, E_TCPFLAGS, E_STREAM_AT, CT_STATUS_PUBLIC,
  CT_SNAT, CT_DNAT, CT_CONFIRMED, CT_STREAM_TIME, entryAt, isUsed, isIcmp, readTuple, natStatus,
  validPair,
} from "./entry";
import { ctInsert, isExpired, statAdd, CT_NONE, CT_STAT_BAD_ARG } from "./hash";
import { CT_RECORD_SIZE, CT_RECORD_VERSION, R_ORIG, R_REPLY, writeRecord } from "./record";
export { CT_RECORD_SIZE, CT_RECORD_VERSION } from "./record";
import { TCP_STATE_COUNT, TCP_NONE_SET } from "./tcp";
import { icmpValidNew, icmpInverse } from "./track";


const recOrig: Tuple = changetype<Tuple>(heap.alloc(offsetof<Tuple>()));
const recReply: Tuple = changetype<Tuple>(heap.alloc(offsetof<Tuple>()));

/** Writes the original tuple of connection `index` into `out`; false for a free index. */
export function ctOrig(index: u32, out: Tuple): bool {
  if (!isUsed(index)) return false;
  readTuple(entryAt(index), 0, out);
  return true;
}

/** Writes the reply tuple of connection `index` into `out`; false for a free index. */
export function ctReply(index: u32, out: Tuple): bool {
  if (!isUsed(index)) return false;
  readTuple(entryAt(index), 1, out);
  return true;
}

// Narrow reads for the packet path, on a handle ctLookup has just returned (so the entry is live
// and no bounds or use check is repeated): the entry's address, its NAT status bits, and one
// direction's IPv4 addresses and ports straight from the entry instead of a copied Tuple.
// @ts-ignore: decorator
@inline export function ctEntry(index: u32): usize { return entryAt(index); }
// @ts-ignore: decorator
@inline export function ctEntryNat(e: usize): u8 { return load<u8>(e + E_STATUS) & (CT_SNAT | CT_DNAT); }
// @ts-ignore: decorator
@inline export function ctEntryIsV4(e: usize): bool { return load<u8>(e + E_FAMILY) == FAMILY_V4; }
// @ts-ignore: decorator
@inline export function ctEntrySrc4(e: usize, dir: u32): u32 { return load<u32>(e + (<usize>dir << 3) + E_OSRC); }
// @ts-ignore: decorator
@inline export function ctEntryDst4(e: usize, dir: u32): u32 { return load<u32>(e + (<usize>dir << 3) + E_ODST); }
// @ts-ignore: decorator
@inline export function ctEntrySport(e: usize, dir: u32): u16 { return load<u16>(e + (<usize>dir << 2) + E_OSPORT); }
// @ts-ignore: decorator
@inline export function ctEntryDport(e: usize, dir: u32): u16 { return load<u16>(e + (<usize>dir << 2) + E_ODPORT); }

/** TCP state (tcp.ts TCP_*), 0 for other protocols or a free index. */
export function ctTcpState(index: u32): u8 {
  if (!isUsed(index)) return 0;
  const e = entryAt(index);
  return load<u8>(e + E_PROTO) == PROTO_TCP ? load<u8>(e + E_TCPSTATE) : 0;
}

/** Status bits (CT_SEEN_REPLY, CT_ASSURED, CT_CONFIRMED, CT_SNAT, CT_DNAT), 0 for a free index. */
export function ctStatus(index: u32): u32 {
  if (!isUsed(index)) return 0;
  return load<u8>(entryAt(index) + E_STATUS) & CT_STATUS_PUBLIC;
}

/** Expiry time (wrapping ms), 0 for a free index. */
export function ctExpiry(index: u32): u32 {
  if (!isUsed(index)) return 0;
  return load<u32>(entryAt(index) + E_EXPIRY);
}

/** The connmark, 0 for a free index. */
export function ctMark(index: u32): u32 {
  if (!isUsed(index)) return 0;
  return load<u32>(entryAt(index) + E_MARK);
}

/** Sets the connmark; false (counted BAD_ARG) for a free index. */
export function ctSetMark(index: u32, mark: u32): bool {
  if (!isUsed(index)) {
    statAdd(CT_STAT_BAD_ARG);
    return false;
  }
  store<u32>(entryAt(index) + E_MARK, mark);
  return true;
}

function getTuple(p: usize, family: u8, proto: u8, type: u8, t: Tuple): void {
  t.family = family; t.proto = proto; t.icmpType = type; t.pad = 0;
  t.s0 = load<u32>(p); t.s1 = load<u32>(p, 4); t.s2 = load<u32>(p, 8); t.s3 = load<u32>(p, 12);
  t.d0 = load<u32>(p, 16); t.d1 = load<u32>(p, 20); t.d2 = load<u32>(p, 24); t.d3 = load<u32>(p, 28);
  t.sport = load<u16>(p, 32);
  t.dport = load<u16>(p, 34);
}

/**
 * Writes connection `index` as a record at `out` (CT_RECORD_SIZE bytes) and returns the size,
 * or 0 (nothing written) when the index is free or the connection's time is up.
 */
export function ctExportRecord(index: u32, out: usize, now: u32): u32 {
  if (!isUsed(index)) return 0;
  const e = entryAt(index);
  if (isExpired(e, now)) return 0;
  writeRecord(e, out, now, recOrig, recReply);
  return CT_RECORD_SIZE;
}

/**
 * Inserts the connection a record describes, expiring `remaining` ms after `now`. Every field is
 * checked first; a bad record (unknown version, family, protocol/family mix, TCP state or flags,
 * ICMP types that do not pair, unknown status bits, NAT bits that contradict the tuples (a reply source altered without DNAT is IPVS's, and kept),
 * non-positive lifetime, IPv4 padding not zero) returns CT_NONE with nothing changed and is
 * counted as BAD_ARG. A good record can still fail as ctInsert does (clash, full).
 */
export function ctImportRecord(ptr: usize, now: u32): u32 {
  if (!validRecord(ptr)) {
    statAdd(CT_STAT_BAD_ARG);
    return CT_NONE;
  }
  const index = ctInsert(recOrig, recReply, now);
  if (index == CT_NONE) return CT_NONE;
  const e = entryAt(index);
  const proto = recOrig.proto;
  let status = load<u8>(ptr, 6);
  if (proto == PROTO_TCP) {
    store<u8>(e + E_TCPSTATE, load<u8>(ptr, 3));
    store<u8>(e + E_TCPFLAGS, load<u8>(ptr, 7));
  } else if ((proto == PROTO_UDP || proto == PROTO_SCTP) && (status & CT_CONFIRMED)) {
    // A restored flow is older than the stream delay.
    status |= CT_STREAM_TIME;
    store<u32>(e + E_STREAM_AT, now);
  }
  store<u8>(e + E_STATUS, status);
  store<u32>(e + E_MARK, load<u32>(ptr, 8));
  store<u32>(e + E_EXPIRY, now + <u32>load<i32>(ptr, 12));
  return index;
}

/** Whether the record at `ptr` would pass ctImportRecord's checks (a snapshot is checked whole first). */
export function ctRecordValid(ptr: usize): bool { return validRecord(ptr); }

/** Checks a record and leaves its tuples in recOrig / recReply. */
function validRecord(ptr: usize): bool {
  if (load<u8>(ptr) != CT_RECORD_VERSION) return false;
  const family = load<u8>(ptr, 1);
  const proto = load<u8>(ptr, 2);
  const state = load<u8>(ptr, 3);
  const otype = load<u8>(ptr, 4);
  const rtype = load<u8>(ptr, 5);
  const status = load<u8>(ptr, 6);
  const flags = load<u8>(ptr, 7);
  if (load<i32>(ptr, 12) <= 0) return false;
  if (proto == PROTO_TCP) {
    if (state >= TCP_STATE_COUNT || <u32>(flags >> 5) > TCP_NONE_SET) return false;
  } else if ((state | flags) != 0) {
    return false;
  }
  if (isIcmp(proto) && (!icmpValidNew(proto, otype) || icmpInverse(proto, otype) != <i32>rtype)) return false;
  if ((status & ~CT_STATUS_PUBLIC) != 0) return false;
  getTuple(ptr + R_ORIG, family, proto, otype, recOrig);
  getTuple(ptr + R_REPLY, family, proto, rtype, recReply);
  if (!validPair(recOrig, recReply)) return false; // family, IPv4 padding, ICMP/family mix, types
  // The NAT bits say how the tuples differ, except that IPVS alters the reply's source without
  // setting DNAT (ip_vs_nfct.c ip_vs_update_conntrack → nf_conntrack_alter_reply).
  const nat = natStatus(recOrig, recReply);
  return (status & CT_SNAT) == (nat & CT_SNAT) && (status & CT_DNAT & ~nat) == 0;
}
