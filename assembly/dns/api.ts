// dns/api.ts — the cluster DNS control and query surface the ABI exports (index.ts, DNS section):
// a staging buffer for the record blob (format in table.ts), the atomic table load, fixed query and
// answer buffers, dnsAnswer itself and its counters. Never parses the blob itself (table.ts) nor
// answers (answer.ts); the only allocations are on control calls.
import { dnsTableLoad, recordCount, groupCount, tableReady } from "./table";
import { counters, countersReset, C_COUNT } from "./answer";

export { dnsAnswer } from "./answer";

// Room for one message each way: DNS over TCP carries at most 65535 bytes (RFC 1035 §4.2.2).
const IO_BYTES: u32 = 65536;
const ioQuery: usize = heap.alloc(IO_BYTES);
const ioAnswer: usize = heap.alloc(IO_BYTES);

let stage: usize = 0;
let stageCap: u32 = 0;

// A buffer of at least `size` bytes for the record blob; valid until the next dnsBuffer call.
export function dnsBuffer(size: u32): usize {
  if (size > stageCap) {
    if (stage != 0) heap.free(stage);
    stage = heap.alloc(<usize>max<u32>(size, 1));
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

export function dnsQueryPtr(): usize { return ioQuery; }
export function dnsAnswerPtr(): usize { return ioAnswer; }
export function dnsIoBytes(): u32 { return IO_BYTES; }

// u32 counters, indexed by answer.ts C_* (host-node/dns/table.ts names them).
export function dnsCountersPtr(): usize { return counters; }
export function dnsCountersCount(): u32 { return C_COUNT; }
export function dnsCountersReset(): void { countersReset(); }
