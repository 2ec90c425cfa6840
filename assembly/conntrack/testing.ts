// conntrack/testing.ts — conntrack internals exported for unit tests (build/testing-conntrack.wasm):
// the whole public surface plus a few helpers that build tuples and flows in reserved memory.
import { Tuple, Flow } from "../flow";
import { hashTuple } from "./hash";
import { tcpNextState, tcpValidFlags } from "./tcp";
import { entries, capacity, ENTRY_SIZE } from "./entry";

export { scratch, scratchBytes } from "../scratch";
export * from "./table";
export * from "./state";
export { hashTuple, tcpNextState, tcpValidFlags };

// Three tuples and one flow the tests fill and pass by address.
const tuples: usize = heap.alloc(3 * offsetof<Tuple>());
const testFlow: usize = heap.alloc(offsetof<Flow>());
memory.fill(testFlow, 0, offsetof<Flow>());

export function tupleAt(i: u32): usize {
  return tuples + <usize>(i % 3) * offsetof<Tuple>();
}

export function tupleSize(): usize {
  return offsetof<Tuple>();
}

export function setTuple(
  p: usize, family: u8, proto: u8, sport: u16, dport: u16, type: u8,
  s0: u32, s1: u32, s2: u32, s3: u32, d0: u32, d1: u32, d2: u32, d3: u32,
): void {
  const t = changetype<Tuple>(p);
  t.family = family; t.proto = proto; t.sport = sport; t.dport = dport; t.icmpType = type; t.pad = 0;
  t.s0 = s0; t.s1 = s1; t.s2 = s2; t.s3 = s3;
  t.d0 = d0; t.d1 = d1; t.d2 = d2; t.d3 = d3;
}

/** Field `i` of a tuple: 0 family, 1 proto, 2 sport, 3 dport, 4 icmpType, 5–8 s0..s3, 9–12 d0..d3. */
export function tupleField(p: usize, i: u32): u32 {
  const t = changetype<Tuple>(p);
  switch (i) {
    case 0: return t.family;
    case 1: return t.proto;
    case 2: return t.sport;
    case 3: return t.dport;
    case 4: return t.icmpType;
    case 5: return t.s0;
    case 6: return t.s1;
    case 7: return t.s2;
    case 8: return t.s3;
    case 9: return t.d0;
    case 10: return t.d1;
    case 11: return t.d2;
    case 12: return t.d3;
  }
  return 0;
}

export function flowPtr(): usize {
  return testFlow;
}

export function setFlow(tcpFlags: u8, frag: u8): void {
  const f = changetype<Flow>(testFlow);
  f.tcpFlags = tcpFlags;
  f.frag = frag;
}

/** True when every byte of the connection table is zero (a table just made). */
export function entriesAllZero(): bool {
  const end = entries + <usize>capacity * ENTRY_SIZE;
  for (let p = entries; p < end; p += 8) if (load<u64>(p) != 0) return false;
  return true;
}

/** Leaves `bytes` of 0xAB behind in freed memory, for the next allocations to reuse. */
export function dirtyFree(bytes: u32): void {
  const p = heap.alloc(bytes);
  memory.fill(p, 0xAB, bytes);
  heap.free(p);
}
