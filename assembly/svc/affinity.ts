// svc/affinity.ts — ClientIP session affinity for the direct service table: which destination a
// client last got from a service, and when. kube-proxy's iptables mode keeps this in xt_recent
// lists, one per endpoint chain: `--set` stamps the client when a new connection is DNATed to the
// endpoint, and the service chain's `--rcheck --seconds T --reap` sends a new connection to an
// endpoint whose stamp is at most T seconds old (xt_recent.c recent_mt: a stamp older than
// now - T is skipped). Here one entry per (service, client) holds the destination address and port
// and the stamp, so an endpoint that survives an update keeps its clients. Fixed size, allocated
// on first use; 4-way buckets, a full bucket gives up its oldest entry. Stamps are kept within
// wrapping range by clock.ts (affinityUpkeep). Never allocates on the packet path, never reads a clock.
//
// Entry (48 B): 0 u32 slot+1 (0 = empty)  4 u32 generation  8 u32[4] client  24 u32[4] destination
// 40 u16 port  42 u16 pad  44 u32 stamp (ms).
import { allocFits } from "../alloc";

const WAYS: u32 = 4;
const ENTRY: u32 = 48;
const BUCKETS_LOG2: u32 = 14;
const BUCKETS: u32 = 1 << BUCKETS_LOG2;

let base: usize = 0;

function reserve(): bool {
  if (base != 0) return true;
  const bytes = <usize>BUCKETS * WAYS * ENTRY;
  if (!allocFits(<u64>bytes)) return false;   // the allocator traps rather than refuse
  base = heap.alloc(bytes);
  memory.fill(base, 0, bytes);
  return true;
}

// Reserves the table (control path: a service with affinity is being installed).
export function affinityReserve(): bool { return reserve(); }

export function affinityClear(): void {
  if (base != 0) memory.fill(base, 0, <usize>BUCKETS * WAYS * ENTRY);
}

@inline function bucket(slot: u32, a0: u32, a1: u32, a2: u32, a3: u32): usize {
  let h = (slot ^ 0x9E3779B9) * 0x85EBCA6B;
  h = ((h ^ (h >>> 15)) ^ a0) * 0xC2B2AE35;
  h = ((h ^ (h >>> 13)) ^ a1) * 0x85EBCA6B;
  h = ((h ^ (h >>> 16)) ^ a2) * 0xC2B2AE35;
  h = ((h ^ (h >>> 13)) ^ a3) * 0x85EBCA6B;
  h ^= h >>> 16;
  return base + <usize>(h & (BUCKETS - 1)) * WAYS * ENTRY;
}

@inline function isClient(e: usize, slot: u32, gen: u32, a0: u32, a1: u32, a2: u32, a3: u32): bool {
  return load<u32>(e) == slot + 1 && load<u32>(e, 4) == gen && load<u32>(e, 8) == a0 &&
    load<u32>(e, 12) == a1 && load<u32>(e, 16) == a2 && load<u32>(e, 20) == a3;
}

// The client's entry when its stamp is no older than `timeoutMs`, else 0. Destination words at
// +24, port at +40.
export function affinityGet(slot: u32, gen: u32, a0: u32, a1: u32, a2: u32, a3: u32, now: u32, timeoutMs: u32): usize {
  if (base == 0) return 0;
  const b = bucket(slot, a0, a1, a2, a3);
  for (let w: u32 = 0; w < WAYS; w++) {
    const e = b + <usize>w * ENTRY;
    if (!isClient(e, slot, gen, a0, a1, a2, a3)) continue;
    // xt_recent: skip when time_after(now - T, stamp).
    return <i32>(load<u32>(e, 44) - (now - timeoutMs)) < 0 ? 0 : e;
  }
  return 0;
}

// Stamps the client with destination `dest` (address words, then u16 port at +16).
export function affinitySet(slot: u32, gen: u32, a0: u32, a1: u32, a2: u32, a3: u32, dest: usize, now: u32): void {
  if (base == 0) return;
  const b = bucket(slot, a0, a1, a2, a3);
  let victim: usize = 0;
  for (let w: u32 = 0; w < WAYS; w++) {
    const e = b + <usize>w * ENTRY;
    if (isClient(e, slot, gen, a0, a1, a2, a3)) { victim = e; break; }
  }
  let oldest: i32 = 0;
  for (let w: u32 = 0; victim == 0 && w < WAYS; w++) {
    const e = b + <usize>w * ENTRY;
    if (load<u32>(e) == 0) { victim = e; break; }
    const age = <i32>(now - load<u32>(e, 44));
    if (age >= oldest) { oldest = age; }
  }
  for (let w: u32 = 0; victim == 0 && w < WAYS; w++) {
    const e = b + <usize>w * ENTRY;
    if (<i32>(now - load<u32>(e, 44)) == oldest) victim = e;
  }
  store<u32>(victim, slot + 1); store<u32>(victim, gen, 4);
  store<u32>(victim, a0, 8); store<u32>(victim, a1, 12); store<u32>(victim, a2, 16); store<u32>(victim, a3, 20);
  memory.copy(victim + 24, dest, 16);
  store<u16>(victim, load<u16>(dest, 16), 40);
  store<u32>(victim, now, 44);
}

// Moves every stamp older than `cap` ms (every one with `all`) to exactly that age (clock.ts).
export function affinityUpkeep(now: u32, cap: u32, all: bool): void {
  if (base == 0) return;
  for (let i: u32 = 0; i < BUCKETS * WAYS; i++) {
    const e = base + <usize>i * ENTRY;
    if (load<u32>(e) != 0 && (all || now - load<u32>(e, 44) > cap)) store<u32>(e, now - cap, 44);
  }
}

// A saved stamp (a conntrack snapshot's direct affinity, decide.ts svcAffinitySaveAll): slot u32,
// client 4 × u32, destination 4 × u32, port u16, pad u16, the stamp's age in ms at the time of saving.
export const AFFINITY_SAVED_BYTES: u32 = 44;
export const AFFINITY_ENTRIES: u32 = BUCKETS * WAYS;

// Entry `i` of the table when it holds a stamp, else 0 (for saving them all).
export function affinityEntry(i: u32): usize {
  if (base == 0 || i >= AFFINITY_ENTRIES) return 0;
  const e = base + <usize>i * ENTRY;
  return load<u32>(e) == 0 ? 0 : e;
}
@inline export function affinityEntrySlot(e: usize): u32 { return load<u32>(e) - 1; }
@inline export function affinityEntryGen(e: usize): u32 { return load<u32>(e, 4); }
@inline export function affinityEntryStamp(e: usize): u32 { return load<u32>(e, 44); }

// Writes entry `e` as a saved stamp at `r`, aged `age` ms.
export function affinityWrite(e: usize, r: usize, age: u32): void {
  store<u32>(r, load<u32>(e) - 1);
  memory.copy(r + 4, e + 8, 32);
  store<u16>(r, load<u16>(e, 40), 36);
  store<u16>(r, 0, 38);
  store<u32>(r, age, 40);
}

const scratchDest: usize = heap.alloc(20);

// Stamps the saved client at `r` into slot `slot` (generation `gen`), `age` ms before `now`.
export function affinityLoad(slot: u32, gen: u32, r: usize, now: u32): void {
  memory.copy(scratchDest, r + 20, 16);
  store<u16>(scratchDest, load<u16>(r, 36), 16);
  affinitySet(slot, gen, load<u32>(r, 4), load<u32>(r, 8), load<u32>(r, 12), load<u32>(r, 16), scratchDest, now - load<u32>(r, 40));
}
