// conntrack/reap.ts — walking the table: the bounded expiry sweep (a cursor that visits a budget
// of slots per call and wraps, like the kernel's gc_worker visiting buckets a slice at a time),
// iteration over used slots, and the control plane's flushes (kube-proxy's stale-UDP cleanup
// deletes by endpoint or by Service IP). The sweep never does more than `budget` slots of work;
// the flushes walk the whole table and are for the control plane, never the packet path.

import { Tuple, FAMILY_V6 } from "../flow";
import {
  E_FAMILY, E_PROTO, E_OSRC, E_ODPORT, E_RSPORT, NIL, entryAt, capacity, usedBound, readTuple,
} from "./entry";
import {
  removeEntry, isExpired, statAdd, CT_STAT_EXPIRED, CT_STAT_DELETES, CT_STAT_BAD_ARG,
} from "./hash";

let cursor: u32 = 0;
const scratch: Tuple = changetype<Tuple>(heap.alloc(offsetof<Tuple>()));

/**
 * Visits the next `budget` slots (wrapping at the capacity) and removes the connections among
 * them whose time is up. Returns how many it removed.
 */
export function ctReap(now: u32, budget: u32): u32 {
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

/** Deletes every connection whose direction `dir` has the given source (dir 1) or destination (dir 0). */
function flush(dir: u32, family: u32, proto: u32, a0: u32, a1: u32, a2: u32, a3: u32, port: u32): u32 {
  if ((family != 4 && family != 6) || proto > 255 || port > 0xFFFF ||
      (family == 4 && (a1 | a2 | a3) != 0)) {
    statAdd(CT_STAT_BAD_ARG);
    return 0;
  }
  let removed: u32 = 0;
  const end = usedBound();
  for (let i: u32 = 0; i < end; i++) {
    const e = entryAt(i);
    if (<u32>load<u8>(e + E_FAMILY) != family) continue;
    if (proto != 0 && <u32>load<u8>(e + E_PROTO) != proto) continue;
    let hit: bool;
    if (dir == 1) {
      // Reply source: address E_RSRC, port E_RSPORT.
      if (port != 0 && <u32>load<u16>(e + E_RSPORT) != port) continue;
      if (family == FAMILY_V6) {
        readTuple(e, 1, scratch);
        hit = ((scratch.s0 ^ a0) | (scratch.s1 ^ a1) | (scratch.s2 ^ a2) | (scratch.s3 ^ a3)) == 0;
      } else {
        hit = load<u32>(e + E_OSRC + 8) == a0;
      }
    } else {
      // Original destination: address E_ODST, port E_ODPORT.
      if (port != 0 && <u32>load<u16>(e + E_ODPORT) != port) continue;
      if (family == FAMILY_V6) {
        readTuple(e, 0, scratch);
        hit = ((scratch.d0 ^ a0) | (scratch.d1 ^ a1) | (scratch.d2 ^ a2) | (scratch.d3 ^ a3)) == 0;
      } else {
        hit = load<u32>(e + E_OSRC + 4) == a0;
      }
    }
    if (hit) {
      removeEntry(i);
      statAdd(CT_STAT_DELETES);
      removed++;
    }
  }
  return removed;
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
