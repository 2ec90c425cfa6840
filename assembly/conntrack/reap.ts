// conntrack/reap.ts — walking the table: the bounded expiry sweep (a cursor that visits a budget
// of slots per call and wraps, like the kernel's gc_worker visiting buckets a slice at a time),
// iteration over used slots, and the control plane's flushes (kube-proxy's stale-UDP cleanup
// deletes by endpoint or by Service IP): any number of them in one walk, against a hash of their
// keys; and handing IPVS's translations to conntrack's NAT when IPVS goes. The sweep never does
// more than `budget` slots of work; a flush or hand-over walks the whole table and is for the
// control plane, never the packet path.

import { ctEventsClock } from "./events";
import { Tuple, FAMILY_V6 } from "../flow";
import {
  E_FAMILY, E_PROTO, E_ODST, E_RSRC, E_ODPORT, E_RSPORT, E_STATUS, NIL, CT_DNAT, entryAt, capacity, usedBound,
  readTuple, natStatus,
} from "./entry";
import {
  removeEntry, isExpired, statAdd, CT_STAT_EXPIRED, CT_STAT_DELETES, CT_STAT_BAD_ARG,
} from "./hash";

let cursor: u32 = 0;
const scratch: Tuple = changetype<Tuple>(heap.alloc(offsetof<Tuple>()));
const scratchReply: Tuple = changetype<Tuple>(heap.alloc(offsetof<Tuple>()));

/**
 * Visits the next `budget` slots (wrapping at the capacity) and removes the connections among
 * them whose time is up. Returns how many it removed.
 */
export function ctReap(now: u32, budget: u32): u32 {
  ctEventsClock(now);
  const cap = capacity;
  if (cap == 0) return 0;
  let removed: u32 = 0;
  let i = cursor & (cap - 1); // the capacity may have changed since
  let left = min(budget, cap);
  // Slots at or above usedBound() were never handed out (removing entries never lowers it): they
  // are stepped over without being read, so the cursor moves exactly as a slot-by-slot visit.
  const bound = usedBound();
  while (left != 0) {
    if (i >= bound) {
      const skip = min(left, cap - i);
      left -= skip;
      i = (i + skip) & (cap - 1);
      continue;
    }
    const run = min(left, bound - i);
    for (let n: u32 = 0; n < run; n++) {
      const e = entryAt(i + n);
      if (load<u8>(e + E_FAMILY) != 0 && isExpired(e, now)) {
        removeEntry(i + n);
        statAdd(CT_STAT_EXPIRED);
        removed++;
      }
    }
    left -= run;
    i = (i + run) & (cap - 1);
  }
  cursor = i;
  return removed;
}

/** Where the next ctReap starts. */
export function ctReapCursor(): u32 {
  return cursor;
}

/**
 * The first used slot at or after `from`, or CT_NONE. Includes entries whose time is up but that
 * have not been reaped yet (ctExportRecord skips those).
 */
export function ctNextUsed(from: u32): u32 {
  const end = usedBound();
  for (let i = from; i < end; i++) {
    if (load<u8>(entryAt(i) + E_FAMILY) != 0) return i;
  }
  return NIL;
}

// A flush key as the host writes it (FLUSH_KEY bytes): u8 dir (0: the original destination, a
// Service IP; 1: the reply source, an endpoint), u8 family (4 or 6), u8 protocol (0: any), u8 0,
// u16 port (0: any), u16 0, then four u32 address words (Tuple word order; IPv4 uses the first).
export const FLUSH_KEY: usize = 24;
const K_DIR: usize = 0;
const K_FAMILY: usize = 1;
const K_PROTO: usize = 2;
const K_PAD: usize = 3;
const K_PORT: usize = 4;
const K_PAD2: usize = 6;
const K_ADDR: usize = 8;

/** The key the single-address flushes below fill in. */
const oneKey: usize = heap.alloc(FLUSH_KEY);

function keyValid(k: usize): bool {
  const family = <u32>load<u8>(k + K_FAMILY);
  if (load<u8>(k + K_DIR) > 1 || load<u8>(k + K_PAD) != 0 || load<u16>(k + K_PAD2) != 0) return false;
  if (family == 4) return (load<u32>(k + K_ADDR + 4) | load<u32>(k + K_ADDR + 8) | load<u32>(k + K_ADDR + 12)) == 0;
  return family == 6;
}

/** `h` mixed with four address words: the hash of the control plane's flush and reconcile keys. */
export function mixWords(h: u32, a0: u32, a1: u32, a2: u32, a3: u32): u32 {
  h = (h ^ a0) * 0x85EBCA77; h ^= h >>> 15;
  h = (h ^ a1) * 0xC2B2AE3D; h ^= h >>> 13;
  h = (h ^ a2) * 0x85EBCA77; h ^= h >>> 16;
  h = (h ^ a3) * 0xC2B2AE3D;
  return h ^ (h >>> 15);
}

function keyHash(dir: u32, family: u32, proto: u32, port: u32, a0: u32, a1: u32, a2: u32, a3: u32): u32 {
  return mixWords((dir | (family << 1) | (proto << 8) | (port << 16)) * 0x9E3779B1, a0, a1, a2, a3);
}

// The keys of one flush, hashed: slots hold a key's index + 1 (0: free), probed linearly.
let keys: usize = 0;
let slots: usize = 0;
let slotMask: u32 = 0;

function hasKey(dir: u32, family: u32, proto: u32, port: u32, a0: u32, a1: u32, a2: u32, a3: u32): bool {
  let i = keyHash(dir, family, proto, port, a0, a1, a2, a3) & slotMask;
  while (true) {
    const v = load<u32>(slots + (<usize>i << 2));
    if (v == 0) return false;
    const k = keys + <usize>(v - 1) * FLUSH_KEY;
    if (<u32>load<u8>(k + K_DIR) == dir && <u32>load<u8>(k + K_FAMILY) == family && <u32>load<u8>(k + K_PROTO) == proto &&
        <u32>load<u16>(k + K_PORT) == port && load<u32>(k + K_ADDR) == a0 && load<u32>(k + K_ADDR + 4) == a1 &&
        load<u32>(k + K_ADDR + 8) == a2 && load<u32>(k + K_ADDR + 12) == a3) return true;
    i = (i + 1) & slotMask;
  }
}

/**
 * Deletes, in one walk of the table, every connection that any of the `n` keys at `at` names: its
 * original destination (dir 0) or reply source (dir 1) is the key's address, with the key's
 * protocol and port unless those are 0 — what `n` single flushes would delete, at the cost of one
 * (kube-proxy's stale-UDP cleanup after a sync in which thousands of endpoints left). A key that
 * is not valid is counted as a bad argument and left out. Returns how many connections went.
 */
export function ctFlushMany(at: usize, n: u32): u32 {
  let size: u32 = 16;
  while (size < n * 2) size <<= 1;
  slots = heap.alloc(<usize>size << 2);
  memory.fill(slots, 0, <usize>size << 2);
  slotMask = size - 1;
  keys = at;
  // Per direction: whether it has keys at all, and keys with any port or any protocol.
  let dirs: u32 = 0, anyPort: u32 = 0, anyProto: u32 = 0;
  for (let j: u32 = 0; j < n; j++) {
    const k = at + <usize>j * FLUSH_KEY;
    if (!keyValid(k)) {
      statAdd(CT_STAT_BAD_ARG);
      continue;
    }
    const dir = <u32>load<u8>(k + K_DIR), proto = <u32>load<u8>(k + K_PROTO), port = <u32>load<u16>(k + K_PORT);
    const family = <u32>load<u8>(k + K_FAMILY);
    const a0 = load<u32>(k + K_ADDR), a1 = load<u32>(k + K_ADDR + 4), a2 = load<u32>(k + K_ADDR + 8), a3 = load<u32>(k + K_ADDR + 12);
    if (hasKey(dir, family, proto, port, a0, a1, a2, a3)) continue;
    let i = keyHash(dir, family, proto, port, a0, a1, a2, a3) & slotMask;
    while (load<u32>(slots + (<usize>i << 2)) != 0) i = (i + 1) & slotMask;
    store<u32>(slots + (<usize>i << 2), j + 1);
    dirs |= 1 << dir;
    if (port == 0) anyPort |= 1 << dir;
    if (proto == 0) anyProto |= 1 << dir;
  }
  let removed: u32 = 0;
  const end: u32 = dirs == 0 ? 0 : usedBound();
  for (let i: u32 = 0; i < end; i++) {
    const e = entryAt(i);
    const family = <u32>load<u8>(e + E_FAMILY);
    if (family == 0) continue;
    const proto = <u32>load<u8>(e + E_PROTO);
    let hit = false;
    for (let dir: u32 = 0; dir < 2 && !hit; dir++) {
      if ((dirs & (1 << dir)) == 0) continue;
      let a0: u32, a1: u32 = 0, a2: u32 = 0, a3: u32 = 0, port: u32;
      if (family == FAMILY_V6) {
        readTuple(e, dir, scratch);
        if (dir == 0) { a0 = scratch.d0; a1 = scratch.d1; a2 = scratch.d2; a3 = scratch.d3; port = scratch.dport; }
        else { a0 = scratch.s0; a1 = scratch.s1; a2 = scratch.s2; a3 = scratch.s3; port = scratch.sport; }
      } else if (dir == 0) {
        a0 = load<u32>(e + E_ODST); port = load<u16>(e + E_ODPORT);
      } else {
        a0 = load<u32>(e + E_RSRC); port = load<u16>(e + E_RSPORT);
      }
      hit = hasKey(dir, family, proto, port, a0, a1, a2, a3) ||
        ((anyPort & (1 << dir)) != 0 && hasKey(dir, family, proto, 0, a0, a1, a2, a3)) ||
        ((anyProto & (1 << dir)) != 0 && (hasKey(dir, family, 0, port, a0, a1, a2, a3) ||
          ((anyPort & (1 << dir)) != 0 && hasKey(dir, family, 0, 0, a0, a1, a2, a3))));
    }
    if (hit) {
      removeEntry(i);
      statAdd(CT_STAT_DELETES);
      removed++;
    }
  }
  heap.free(slots);
  slots = 0;
  return removed;
}

/** Deletes every connection whose direction `dir` has the given source (dir 1) or destination (dir 0). */
function flush(dir: u32, family: u32, proto: u32, a0: u32, a1: u32, a2: u32, a3: u32, port: u32): u32 {
  if ((family != 4 && family != 6) || proto > 255 || port > 0xFFFF) {
    statAdd(CT_STAT_BAD_ARG);
    return 0;
  }
  store<u8>(oneKey + K_DIR, <u8>dir);
  store<u8>(oneKey + K_FAMILY, <u8>family);
  store<u8>(oneKey + K_PROTO, <u8>proto);
  store<u8>(oneKey + K_PAD, 0);
  store<u16>(oneKey + K_PORT, <u16>port);
  store<u16>(oneKey + K_PAD2, 0);
  store<u32>(oneKey + K_ADDR, a0);
  store<u32>(oneKey + K_ADDR + 4, a1);
  store<u32>(oneKey + K_ADDR + 8, a2);
  store<u32>(oneKey + K_ADDR + 12, a3);
  return ctFlushMany(oneKey, 1);
}

/**
 * Deletes the connections whose reply source — the endpoint that was chosen — is address
 * a0..a3 (Tuple word order; IPv4 uses a0) and, unless `port` is 0, that port. `proto` 0 matches
 * any protocol. Returns how many went (conntrack -D --reply-src, as kube-proxy does for UDP).
 */
export function ctFlushReplySrc(family: u32, proto: u32, a0: u32, a1: u32, a2: u32, a3: u32, port: u32): u32 {
  return flush(1, family, proto, a0, a1, a2, a3, port);
}

/** Deletes the connections whose original destination (a Service IP) matches; as above. */
export function ctFlushOrigDst(family: u32, proto: u32, a0: u32, a1: u32, a2: u32, a3: u32, port: u32): u32 {
  return flush(0, family, proto, a0, a1, a2, a3, port);
}

/**
 * Makes the connections IPVS translated DNAT connections of conntrack's own. IPVS points a
 * connection's reply at the real server without the DNAT bit and rewrites the packets itself
 * (ip_vs_nfct.c ip_vs_update_conntrack); once IPVS is gone, such a connection would reach the
 * Service address untranslated. With the bit, conntrack's NAT keeps sending it to the same real
 * server and its replies back from the Service address, as for a connection kube-proxy's iptables
 * DNAT made. Returns how many it changed.
 */
export function ctAdoptIpvsNat(): u32 {
  let changed: u32 = 0;
  const end = usedBound();
  for (let i: u32 = 0; i < end; i++) {
    const e = entryAt(i);
    if (load<u8>(e + E_FAMILY) == 0) continue;
    const status = load<u8>(e + E_STATUS);
    if ((status & CT_DNAT) != 0) continue;
    readTuple(e, 0, scratch);
    readTuple(e, 1, scratchReply);
    if ((natStatus(scratch, scratchReply) & CT_DNAT) == 0) continue;
    store<u8>(e + E_STATUS, status | CT_DNAT);
    changed++;
  }
  return changed;
}
