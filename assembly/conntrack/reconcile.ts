// conntrack/reconcile.ts — kube-proxy's conntrack reconcile for UDP Services
// (pkg/proxy/conntrack/cleanup.go CleanStaleEntries): in one walk of the table, every UDP
// connection whose original destination is a guarded Service address and port (ClusterIP,
// load-balancer or external IP), or whose original destination port is a guarded NodePort (on any
// address, as there), and whose reply source is none of that guard's serving endpoints (address
// and port), is deleted — a client whose flow was pinned to a pod that left (or to a port its pod
// no longer serves on), or that was never translated because it started before the Service had
// endpoints, gets a fresh choice on its next packet. The guards come from the control plane as
// records; this module never decides what a Service is and never runs on the packet path.

import { Tuple, FAMILY_V6, PROTO_UDP } from "../flow";
import { E_FAMILY, E_PROTO, E_ODST, E_RSRC, E_ODPORT, E_RSPORT, usedBound, entryAt, readTuple } from "./entry";
import { removeEntry, statAdd, CT_STAT_DELETES, CT_STAT_BAD_ARG } from "./hash";
import { mixWords, FLUSH_KEY } from "./reap";

// A record as the host writes it (RECONCILE_REC bytes, laid out as a flush key, reap.ts): u8
// kind, u8 family (4 or 6), u16 0, u16 port, u16 0, then four u32 address words (Tuple word
// order; IPv4 uses the first). Kinds: a Service address and port to guard (flows to the address
// on another port are not the Service's: kube-proxy's cleanup_test.go keeps them), a NodePort to
// guard (its port, no address), or an endpoint (address and port) the guard before it allows.
export const RECONCILE_REC: usize = FLUSH_KEY;
export const REC_GUARD_IP: u8 = 0;
export const REC_GUARD_PORT: u8 = 1;
export const REC_ALLOW: u8 = 2;
const R_KIND: usize = 0;
const R_FAMILY: usize = 1;
const R_PAD: usize = 2;
const R_PORT: usize = 4;
const R_PAD2: usize = 6;
const R_ADDR: usize = 8;

const NONE: u32 = 0xFFFFFFFF;
const scratch: Tuple = changetype<Tuple>(heap.alloc(offsetof<Tuple>()));

// Two open-addressed tables over the records, each slot a record index + 1 (0: free): the guards
// by (kind, family, port, address), and the allowed endpoints by (guard, family, port, address). A
// guard named twice is one guard: the endpoints of both are allowed.
let recs: usize = 0;
let guardSlots: usize = 0;
let allowSlots: usize = 0;
let allowGuard: usize = 0;   // per record: the guard an allow record belongs to
let mask: u32 = 0;

@inline function sameAddr(r: usize, a0: u32, a1: u32, a2: u32, a3: u32): bool {
  return load<u32>(r + R_ADDR) == a0 && load<u32>(r + R_ADDR + 4) == a1 && load<u32>(r + R_ADDR + 8) == a2 && load<u32>(r + R_ADDR + 12) == a3;
}

@inline function guardSlot(kind: u32, family: u32, port: u32, a0: u32, a1: u32, a2: u32, a3: u32): u32 {
  return mixWords((kind | (family << 8) | (port << 16)) * 0x9E3779B1, a0, a1, a2, a3) & mask;
}

@inline function allowSlot(g: u32, family: u32, port: u32, a0: u32, a1: u32, a2: u32, a3: u32): u32 {
  return mixWords((g ^ (family << 28) ^ (port << 12)) * 0x9E3779B1, a0, a1, a2, a3) & mask;
}

/** The guard record of (kind, family, port, address), or NONE. */
function findGuard(kind: u32, family: u32, port: u32, a0: u32, a1: u32, a2: u32, a3: u32): u32 {
  let i = guardSlot(kind, family, port, a0, a1, a2, a3);
  while (true) {
    const v = load<u32>(guardSlots + (<usize>i << 2));
    if (v == 0) return NONE;
    const r = recs + <usize>(v - 1) * RECONCILE_REC;
    if (<u32>load<u8>(r + R_KIND) == kind && <u32>load<u8>(r + R_FAMILY) == family && <u32>load<u16>(r + R_PORT) == port &&
        sameAddr(r, a0, a1, a2, a3)) return v - 1;
    i = (i + 1) & mask;
  }
}

function addGuard(j: u32, kind: u32, family: u32, port: u32, a0: u32, a1: u32, a2: u32, a3: u32): void {
  let i = guardSlot(kind, family, port, a0, a1, a2, a3);
  while (load<u32>(guardSlots + (<usize>i << 2)) != 0) i = (i + 1) & mask;
  store<u32>(guardSlots + (<usize>i << 2), j + 1);
}

/** Whether guard `g` allows the reply source a0..a3 port `port`. */
function allowed(g: u32, family: u32, port: u32, a0: u32, a1: u32, a2: u32, a3: u32): bool {
  let i = allowSlot(g, family, port, a0, a1, a2, a3);
  while (true) {
    const v = load<u32>(allowSlots + (<usize>i << 2));
    if (v == 0) return false;
    const r = recs + <usize>(v - 1) * RECONCILE_REC;
    if (load<u32>(allowGuard + (<usize>(v - 1) << 2)) == g && <u32>load<u8>(r + R_FAMILY) == family && <u32>load<u16>(r + R_PORT) == port &&
        sameAddr(r, a0, a1, a2, a3)) return true;
    i = (i + 1) & mask;
  }
}

function addAllow(j: u32, g: u32, family: u32, port: u32, a0: u32, a1: u32, a2: u32, a3: u32): void {
  if (allowed(g, family, port, a0, a1, a2, a3)) return;
  store<u32>(allowGuard + (<usize>j << 2), g);
  let i = allowSlot(g, family, port, a0, a1, a2, a3);
  while (load<u32>(allowSlots + (<usize>i << 2)) != 0) i = (i + 1) & mask;
  store<u32>(allowSlots + (<usize>i << 2), j + 1);
}

function recordValid(r: usize): bool {
  const kind = load<u8>(r + R_KIND), family = <u32>load<u8>(r + R_FAMILY);
  if (kind > REC_ALLOW || load<u16>(r + R_PAD) != 0 || load<u16>(r + R_PAD2) != 0) return false;
  if (family != 4 && family != 6) return false;
  if (family == 4 && (load<u32>(r + R_ADDR + 4) | load<u32>(r + R_ADDR + 8) | load<u32>(r + R_ADDR + 12)) != 0) return false;
  // Every record names a port; a NodePort guard names no address.
  if (load<u16>(r + R_PORT) == 0) return false;
  return kind != REC_GUARD_PORT || (load<u32>(r + R_ADDR) | load<u32>(r + R_ADDR + 4) | load<u32>(r + R_ADDR + 8) | load<u32>(r + R_ADDR + 12)) == 0;
}

/**
 * Deletes, in one walk, the UDP connections the `n` records at `at` make stale (see the header).
 * A record that is not valid, or an endpoint with no guard before it, is counted as a bad argument
 * and left out. Returns how many connections went.
 */
export function ctReconcileUdp(at: usize, n: u32): u32 {
  let size: u32 = 16;
  while (size < n * 2) size <<= 1;
  mask = size - 1;
  recs = at;
  guardSlots = heap.alloc(<usize>size << 2);
  allowSlots = heap.alloc(<usize>size << 2);
  allowGuard = heap.alloc(<usize>max<u32>(n, 1) << 2);
  memory.fill(guardSlots, 0, <usize>size << 2);
  memory.fill(allowSlots, 0, <usize>size << 2);
  let guards: u32 = 0;
  let g: u32 = NONE;
  for (let j: u32 = 0; j < n; j++) {
    const r = at + <usize>j * RECONCILE_REC;
    if (!recordValid(r)) {
      statAdd(CT_STAT_BAD_ARG);
      g = NONE;   // its endpoints are left out with it
      continue;
    }
    const kind = <u32>load<u8>(r + R_KIND), family = <u32>load<u8>(r + R_FAMILY), port = <u32>load<u16>(r + R_PORT);
    const a0 = load<u32>(r + R_ADDR), a1 = load<u32>(r + R_ADDR + 4), a2 = load<u32>(r + R_ADDR + 8), a3 = load<u32>(r + R_ADDR + 12);
    if (kind == REC_ALLOW) {
      if (g == NONE || <u32>load<u8>(recs + <usize>g * RECONCILE_REC + R_FAMILY) != family) statAdd(CT_STAT_BAD_ARG);
      else addAllow(j, g, family, port, a0, a1, a2, a3);
      continue;
    }
    g = findGuard(kind, family, port, a0, a1, a2, a3);
    if (g == NONE) {
      addGuard(j, kind, family, port, a0, a1, a2, a3);
      g = j;
      guards++;
    }
  }
  let removed: u32 = 0;
  const end: u32 = guards == 0 ? 0 : usedBound();
  for (let i: u32 = 0; i < end; i++) {
    const e = entryAt(i);
    const family = <u32>load<u8>(e + E_FAMILY);
    if (family == 0 || load<u8>(e + E_PROTO) != PROTO_UDP) continue;
    let d0: u32, d1: u32 = 0, d2: u32 = 0, d3: u32 = 0, dport: u32, s0: u32, s1: u32 = 0, s2: u32 = 0, s3: u32 = 0, sport: u32;
    if (family == FAMILY_V6) {
      readTuple(e, 0, scratch);
      d0 = scratch.d0; d1 = scratch.d1; d2 = scratch.d2; d3 = scratch.d3; dport = scratch.dport;
      readTuple(e, 1, scratch);
      s0 = scratch.s0; s1 = scratch.s1; s2 = scratch.s2; s3 = scratch.s3; sport = scratch.sport;
    } else {
      d0 = load<u32>(e + E_ODST); dport = load<u16>(e + E_ODPORT); s0 = load<u32>(e + E_RSRC); sport = load<u16>(e + E_RSPORT);
    }
    const byIP = findGuard(REC_GUARD_IP, family, dport, d0, d1, d2, d3);
    const byPort = findGuard(REC_GUARD_PORT, family, dport, 0, 0, 0, 0);
    if ((byIP != NONE && !allowed(byIP, family, sport, s0, s1, s2, s3)) || (byPort != NONE && !allowed(byPort, family, sport, s0, s1, s2, s3))) {
      removeEntry(i);
      statAdd(CT_STAT_DELETES);
      removed++;
    }
  }
  heap.free(guardSlots);
  heap.free(allowSlots);
  heap.free(allowGuard);
  guardSlots = allowSlots = allowGuard = 0;
  return removed;
}
