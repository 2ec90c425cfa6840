// ipvs/testing.ts — IPVS internals for unit tests (build/testing-ipvs.wasm): the whole ABI (api.ts)
// plus helpers that run a packet placed in the scratch buffer through ipvsProcess with a test
// descriptor, ask a service's scheduler directly, and set a destination's connection counts.
import { flow, Flow } from "../flow";
import { R_NONE, VERDICT_DROP } from "../verdict";
import { D_VERDICT, D_REASON, D_LEN, D_MARK, D_AUX, DESC_BYTES } from "../io";
import { parse } from "../wire/parse";
import { randSeed } from "../rand";
import { nodeSetMasq } from "../node";
import { ipvsProcess } from "./core";
import { NIL } from "./defs";
import { destAt } from "./dest";
import { svcSched, svcSchedState, svcFirst, svcFlags, svcIsLive } from "./service";
import { schedule } from "./sched/index";
import { mhSlot, mhSize, hsiphash32 } from "./sched/mh";
import { results, resultClear } from "./xmit";

export { scratch, scratchBytes } from "../scratch";
export * from "./api";
export { hsiphash32 };

const desc: usize = heap.alloc(<usize>DESC_BYTES);
memory.fill(desc, 0, <usize>DESC_BYTES);
const pf: Flow = changetype<Flow>(heap.alloc(offsetof<Flow>()));

export function seed(lo: u32, hi: u32): void { randSeed(lo, hi); }
export function nodeMasq(family: u32, a0: u32, a1: u32, a2: u32, a3: u32): void {
  nodeSetMasq(<u8>family, a0, a1, a2, a3);
}
export function descPtr(): usize { return desc; }
export function resultPtr(): usize { return results; }

/**
 * Parses `len` bytes at `pkt` (room `cap`) and runs them through ipvsProcess with fwmark `mark`.
 * Returns the verdict, or 255 when IPVS did not take the packet. D_LEN holds the bytes now at `pkt`.
 */
export function run(pkt: usize, len: u32, cap: u32, mark: u32, now: u32): u32 {
  const f = flow;
  f.csumPartial = false;
  store<u32>(desc, mark, D_MARK);
  store<u32>(desc, len, D_LEN);
  store<u32>(desc, NIL, D_AUX);
  resultClear(results);
  const r = parse(f, pkt, len, cap);
  if (r != R_NONE) {
    store<u8>(desc, VERDICT_DROP, D_VERDICT);
    store<u16>(desc, r, D_REASON);
    return VERDICT_DROP;
  }
  if (!ipvsProcess(desc, f, now, 0)) return 255;
  return load<u8>(desc, D_VERDICT);
}

/** The service's scheduler's choice for a client (a real decision: state moves). NIL: none. */
export function pick(svc: u32, family: u32, proto: u32, s0: u32, s1: u32, s2: u32, s3: u32, sport: u32,
    d0: u32, d1: u32, d2: u32, d3: u32, dport: u32, now: u32): u32 {
  if (!svcIsLive(svc)) return NIL;
  const f = pf;
  memory.fill(changetype<usize>(f), 0, offsetof<Flow>());
  f.family = <u8>family; f.proto = <u8>proto; f.sport = <u16>sport; f.dport = <u16>dport;
  f.s0 = s0; f.s1 = s1; f.s2 = s2; f.s3 = s3; f.d0 = d0; f.d1 = d1; f.d2 = d2; f.d3 = d3;
  return schedule(svcSched(svc), svcSchedState(svc), svcFirst(svc), f, svcFlags(svc), now);
}

/** `n` decisions for clients 10.0.x.y (IPv4 words from `base` up): for timing loops. Returns the last. */
export function pickLoop(svc: u32, n: u32, base: u32, now: u32): u32 {
  const f = pf;
  memory.fill(changetype<usize>(f), 0, offsetof<Flow>());
  f.family = 4; f.proto = 6; f.dport = 80; f.d0 = 0x0100600A;
  const sched = svcSched(svc), state = svcSchedState(svc), first = svcFirst(svc), flags = svcFlags(svc);
  let last = NIL;
  for (let i: u32 = 0; i < n; i++) {
    f.s0 = bswap<u32>(base + i);
    f.sport = <u16>(1024 + (i & 0x7FFF));
    last = schedule(sched, state, first, f, flags, now);
  }
  return last;
}

/** Overrides a destination's counts (scheduler tests that need given loads). */
export function setDestCounts(dest: u32, active: u32, inact: u32): void {
  store<u32>(destAt(dest), active, 40);
  store<u32>(destAt(dest), inact, 44);
}

export function mhSlotOf(svc: u32, i: u32): u32 { return mhSlot(svcSchedState(svc), i); }
export function mhSizeOf(svc: u32): u32 { return mhSize(svcSchedState(svc)); }
