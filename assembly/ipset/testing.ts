// ipset/testing.ts — the ipset core for unit tests (build/testing-ipset.wasm): the ipset ABI
// (api.ts), a direct packet lookup that parses a packet from memory and asks lookup.ts, and the
// whole iptables test surface (netfilter/testing.ts), so `-m set` rules run against real sets.
import { flow } from "../flow";
import { R_NONE } from "../verdict";
import { parse } from "../wire/parse";
import { ipsetMatchFlow } from "./lookup";
import { setOf } from "./registry";

export * from "./api";
export * from "../netfilter/testing";

// Parses `len` bytes at `pkt` and asks whether they match set `id` in directions `dims` (bit i:
// dimension i+1 is the destination) with `count` directions. 1 / 0 / -1 (no set); -2: no parse.
// `readOnly` 1: counters stay (a trace).
export function lookupPacket(id: u32, dims: u32, count: u32, pkt: usize, len: u32, now: u32, readOnly: u32): i32 {
  if (parse(flow, pkt, len, len) != R_NONE) return -2;
  return ipsetMatchFlow(id, dims, count, flow, now, len, readOnly != 0);
}

// Storage facts for tests: slots of a hash set (or ports of a bitmap), elements held incl. expired.
export function setCap(id: u32): i32 { const s = setOf(id); return s == null ? -1 : <i32>s.cap; }
export function setHeld(id: u32): i32 { const s = setOf(id); return s == null ? -1 : <i32>s.count; }
export function setPrefixes(id: u32): i32 { const s = setOf(id); return s == null ? -1 : <i32>s.nNets; }
