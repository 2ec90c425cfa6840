// dns/api.ts — the cluster DNS control and query surface the ABI exports (index.ts, DNS section):
// a staging buffer for the record blob (format in table.ts), the atomic table load, fixed query and
// answer buffers, dnsAnswer itself (a host's pointers checked against the memory), its TCP framing
// (dnsAnswerTcp), the upstream-forwarding switch and the counters. Never parses the blob itself
// (table.ts) nor answers (answer.ts); the only allocations are on control calls.
import { dnsTableLoad, recordCount, groupCount, tableReady, tableBytes } from "./table";
import {
  dnsAnswer as answer, dnsAnswerLocal as answerLocal, counters, countersReset, countDns, forwardSet, C_COUNT, C_PARTIAL, C_QUERIES, C_DROP_SHORT, C_DROP_NOROOM,
  DROP_SHORT, DROP_NOROOM,
} from "./answer";
import { allocFits, inMemory, replaceBlock } from "../alloc";

// The query or the answer buffer reaching past the memory: counted and dropped as a short query
// (`queryIn` false) or one without room (a host's pointer is never followed out of bounds).
function outside(queryIn: bool): i32 {
  countDns(C_QUERIES);
  countDns(queryIn ? C_DROP_NOROOM : C_DROP_SHORT);
  return queryIn ? DROP_NOROOM : DROP_SHORT;
}

export function dnsAnswer(q: usize, len: u32, out: usize, cap: u32, maxUdp: u32, tcp: bool): i32 {
  if (!inMemory(q, len) || !inMemory(out, cap)) return outside(inMemory(q, len));
  return answer(q, len, out, cap, maxUdp, tcp);
}

// dnsAnswer with forwarding off and nothing counted: the table's part of an answer that went
// upstream (answer.ts dnsAnswerLocal). Out-of-memory pointers give the same drops, uncounted.
export function dnsAnswerLocal(q: usize, len: u32, out: usize, cap: u32, maxUdp: u32, tcp: bool): i32 {
  if (!inMemory(q, len)) return DROP_SHORT;
  if (!inMemory(out, cap)) return DROP_NOROOM;
  return answerLocal(q, len, out, cap, maxUdp, tcp);
}

// Room for one message each way: DNS over TCP carries at most 65535 bytes (RFC 1035 §4.2.2).
const IO_BYTES: u32 = 65536;
const ioQuery: usize = heap.alloc(IO_BYTES);
const ioAnswer: usize = heap.alloc(IO_BYTES);

let stage: usize = 0;
let stageCap: u32 = 0;

// A buffer of at least `size` bytes for the record blob; valid until the next dnsBuffer call.
export function dnsBuffer(size: u32): usize {
  if (size > stageCap) {
    if (!allocFits(<u64>size)) return 0;
    stage = replaceBlock(stage, <usize>max<u32>(size, 1));
    stageCap = size;
  }
  return stage;
}

// Validates the blob in the staging buffer and swaps it in as the table. 0, or a negative load
// error (table.ts E_*; -10: len larger than the buffer). On error the previous table stays.
export function dnsLoad(len: u32): i32 {
  if (len > stageCap) return -10;
  return dnsTableLoad(stage, len);
}

export function dnsReady(): bool { return tableReady(); }
export function dnsRecordCount(): u32 { return recordCount(); }
// Names indexed: owners plus their empty non-terminal ancestors.
export function dnsNameCount(): u32 { return groupCount(); }
// Bytes the loaded table holds in core memory (its copy of the blob, record index, names, hash).
export function dnsTableBytes(): u32 { return tableBytes(); }

export function dnsQueryPtr(): usize { return ioQuery; }
export function dnsAnswerPtr(): usize { return ioAnswer; }
export function dnsIoBytes(): u32 { return IO_BYTES; }

// u32 counters, indexed by answer.ts C_* (host-node/dns/table.ts names them).
export function dnsCountersPtr(): usize { return counters; }
export function dnsCountersCount(): u32 { return C_COUNT; }
export function dnsCountersReset(): void { countersReset(); }

// The frame is shorter than its length prefix says: the host reads more of the stream first.
export const DROP_PARTIAL: i32 = -5;
// The UDP size a TCP answer's OPT advertises: the same 1232 bytes the packet path answers with.
const ADVERTISED_UDP: u32 = 1232;

// DNS over TCP (RFC 1035 §4.2.2, RFC 7766 §8): `frame[0, len)` starts with a two-byte big-endian
// message length; the answer goes to out[0, cap) with its own prefix, never truncated for UDP (up
// to 65535 bytes; past that, or past cap, the records that fit and TC). Returns the framed answer's
// length, a dnsAnswer drop (nothing to send; the host skips the frame's 2 + length bytes), or
// DROP_PARTIAL when the frame is incomplete.
export function dnsAnswerTcp(frame: usize, len: u32, out: usize, cap: u32): i32 {
  if (!inMemory(frame, len) || !inMemory(out, cap)) return outside(inMemory(frame, len));
  if (len < 2) { countDns(C_PARTIAL); return DROP_PARTIAL; }
  const mlen = (<u32>load<u8>(frame) << 8) | <u32>load<u8>(frame, 1);
  if (mlen + 2 > len) { countDns(C_PARTIAL); return DROP_PARTIAL; }
  const room: u32 = cap < 2 ? 0 : cap - 2;
  const n = answer(frame + 2, mlen, out + 2, room, ADVERTISED_UDP, true);
  if (n < 0) return n;
  store<u8>(out, <u8>(n >> 8));
  store<u8>(out, <u8>n, 1);
  return n + 2;
}

// Turns upstream forwarding on (non-zero) or off: with it on, queries for names outside the zone
// are not answered REFUSED but returned as DROP_UPSTREAM (-4) for the host's forwarder, and on the
// packet path dropped with reason dns_upstream for the host to pick up from the slot.
export function dnsForward(on: u32): void { forwardSet(on != 0); }
