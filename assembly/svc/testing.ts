// svc/testing.ts — the direct service table for unit tests (build/testing-svc.wasm): puts, deletes
// and the framed apply on blobs placed in the scratch buffer, key lookups, and the new-flow decision
// on a packet parsed from memory. Never part of the ABI.
import { flow, FAMILY_V4 } from "../flow";
import { R_NONE } from "../verdict";
import { parse } from "../wire/parse";
import { nodeAddLocal, nodeSetPodCIDR } from "../node";
import {
  svcPut, svcDelete, svcClear, svcApply, svcLiveCount, svcFrontendCount, svcIndexSlots, svcSlotCapacity, svcReserve, feFind, feSlot,
  slotClusterCount, slotLocalCount, slotGeneration, slotDest, KEY_ADDR, KEY_NODEPORT, svcClusterIP,
} from "./table";
import { affinityGet, affinitySet } from "./affinity";
import { svcDecide, decidedDest, decidedMasq } from "./decide";

export { scratch, scratchBytes } from "../scratch";
export { svcPut, svcDelete, svcClear, svcApply, svcLiveCount, svcFrontendCount, svcIndexSlots, svcSlotCapacity, svcReserve };
export { svcNodePortMode, svcNodePortAddress } from "./decide";

// Slot holding an address key, or -1.
export function findAddr(family: u32, proto: u32, port: u32, a0: u32, a1: u32, a2: u32, a3: u32): i32 {
  const e = feFind(<u8>family, <u8>proto, KEY_ADDR, <u16>port, a0, a1, a2, a3);
  return e == 0 ? -1 : <i32>feSlot(e);
}
export function findNodePort(family: u32, proto: u32, port: u32): i32 {
  const e = feFind(<u8>family, <u8>proto, KEY_NODEPORT, <u16>port, 0, 0, 0, 0);
  return e == 0 ? -1 : <i32>feSlot(e);
}
export function isClusterIP4(a0: u32): u32 { return svcClusterIP(FAMILY_V4, a0, 0, 0, 0) ? 1 : 0; }
export function clusterCount(slot: u32): u32 { return slotClusterCount(slot); }
export function localCount(slot: u32): u32 { return slotLocalCount(slot); }

export function addLocal4(a0: u32): void { nodeAddLocal(FAMILY_V4, a0, 0, 0, 0); }
export function podCIDR4(a0: u32, prefix: i32): void { nodeSetPodCIDR(FAMILY_V4, a0, 0, 0, 0, prefix); }

// Decides the first packet of a connection (`len` bytes at `pkt`): SD_* outcome, or -1 when the
// packet does not parse; `local` as the node's own packet. decidedPort/decidedAddr/decidedMasquerade
// read the DNAT choice.
export function decide(pkt: usize, len: u32, now: u32, local: bool): i32 {
  if (parse(flow, pkt, len, len) != R_NONE) return -1;
  return <i32>svcDecide(flow, now, local);
}
export function decidedAddr(): u32 { return load<u32>(decidedDest); }
export function decidedPort(): u32 { return load<u16>(decidedDest, 16); }
export function decidedMasquerade(): u32 { return decidedMasq ? 1 : 0; }

// Affinity entries for IPv4 client `a0` of slot `slot` (generation as the slot holds it).
export function affinityStamp(slot: u32, a0: u32, destIndex: u32, now: u32): void {
  affinitySet(slot, slotGeneration(slot), a0, 0, 0, 0, slotDest(slot, destIndex), now);
}
// Stamps `n` clients a0 = first, first+1, … at now = t0, t0+1, …
export function affinityFill(slot: u32, first: u32, n: u32, t0: u32): void {
  for (let i: u32 = 0; i < n; i++) affinitySet(slot, slotGeneration(slot), first + i, 0, 0, 0, slotDest(slot, 0), t0 + i);
}
// The destination port of the client's fresh entry, or 0.
export function affinityPort(slot: u32, a0: u32, now: u32, timeoutMs: u32): u32 {
  const e = affinityGet(slot, slotGeneration(slot), a0, 0, 0, 0, now, timeoutMs);
  return e == 0 ? 0 : load<u16>(e, 40);
}
