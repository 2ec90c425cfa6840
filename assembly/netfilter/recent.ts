// netfilter/recent.ts — the `recent` match's address lists, with net/netfilter/xt_recent.c's
// semantics: per named table (the host numbers the names) at most RECENT_LIST_TOT addresses, the
// least recently updated evicted when a new one arrives; per address the last RECENT_PKT_LIST
// timestamps in a ring; --set / --rcheck / --update / --remove, --seconds, --hitcount, --reap,
// --rttl, --rsource / --rdest; the table's address mask fixed by the rule that created it; a table
// lives while rules name it (reference counted at commit, registry.ts) and is emptied when the last
// goes. Time is the caller's `now` in ms where the kernel uses jiffies; stamps are kept within
// wrapping range by clock.ts (recentUpkeep).
//
// Table memory is taken when a table is first referenced (control time); the packet path never
// allocates. In trace mode (`readOnly`) a match computes its result from the lists as they are and
// changes nothing.
//
// Sizes: xt_recent's module defaults ip_list_tot = 100 and ip_pkt_list_tot = 20. (Kernels since
// 4.16 default ip_pkt_list_tot to 0 and size each entry's ring by the largest --hitcount, at least
// 32; the older fixed 20 is what we keep, and --hitcount above it is refused as those kernels did.)
import { Flow } from "../flow";
import { windowMs, STAMP_AGE_CAP } from "../clock";
import { memoryFits } from "../alloc";
import {
  RECENT_SET, RECENT_UPDATE, RECENT_REMOVE, RECENT_TTL, RECENT_REAP, RECENT_DEST,
  OPF_INVERT, opFlags,
} from "./format";

export const RECENT_LIST_TOT: u32 = 100;
export const RECENT_PKT_LIST: u32 = 20;
export const RECENT_MAX_TABLES: u32 = 1 << 16;
// xt_recent.c recent_mt_init(): ip_list_hash_size = 1 << fls(ip_list_tot) when not given.
const BUCKETS: u32 = 128;
const NIL: u32 = 0xFFFF;

// Table: header, bucket heads (u16), entries.
const T_COUNT: usize = 0;      // u32 entries in use
const T_LRU_HEAD: usize = 4;   // u16 oldest
const T_LRU_TAIL: usize = 6;   // u16 newest
const T_FREE: usize = 8;       // u16 free list
const T_REFS: usize = 12;      // u32 rules naming the table
const T_MASK: usize = 16;      // 4 × u32
const T_BUCKETS: usize = 32;
const T_ENTRIES: usize = T_BUCKETS + (<usize>BUCKETS << 1);
// Entry.
const E_ADDR: usize = 0;       // 4 × u32, masked
const E_FAMILY: usize = 16;
const E_TTL: usize = 17;
const E_INDEX: usize = 18;     // next stamp slot (1..RECENT_PKT_LIST after the first stamp)
const E_NSTAMPS: usize = 19;
const E_HNEXT: usize = 20;     // u16 bucket chain
const E_LPREV: usize = 22;     // u16 LRU list
const E_LNEXT: usize = 24;
const E_STAMPS: usize = 28;    // RECENT_PKT_LIST × u32
const ENTRY: usize = 112;
const TABLE_BYTES: usize = T_ENTRIES + <usize>RECENT_LIST_TOT * ENTRY;

// Table directory, taken on first use.
let dir: usize = 0;

@inline function tableAt(id: u32): usize {
  return dir == 0 ? 0 : load<usize>(dir + (<usize>id << alignof<usize>()));
}

@inline function entryAt(t: usize, i: u32): usize {
  return t + T_ENTRIES + <usize>i * ENTRY;
}

@inline function bucketOf(t: usize, a0: u32, a1: u32, a2: u32, a3: u32): usize {
  let h = (a0 ^ 0x9E3779B9) * 0x85EBCA6B;
  h = ((h ^ (h >>> 15)) ^ a1) * 0xC2B2AE35;
  h = ((h ^ (h >>> 13)) ^ a2) * 0x85EBCA6B;
  h = ((h ^ (h >>> 16)) ^ a3) * 0xC2B2AE35;
  return t + T_BUCKETS + (<usize>((h ^ (h >>> 16)) & (BUCKETS - 1)) << 1);
}

function tableInit(t: usize, m0: u32, m1: u32, m2: u32, m3: u32): void {
  memory.fill(t, 0, TABLE_BYTES);
  store<u16>(t + T_LRU_HEAD, <u16>NIL);
  store<u16>(t + T_LRU_TAIL, <u16>NIL);
  memory.fill(t + T_BUCKETS, 0xFF, <usize>BUCKETS << 1);
  for (let i: u32 = 0; i < RECENT_LIST_TOT; i++) {
    store<u16>(entryAt(t, i) + E_HNEXT, <u16>(i + 1 < RECENT_LIST_TOT ? i + 1 : NIL));
  }
  store<u16>(t + T_FREE, 0);
  store<u32>(t + T_MASK, m0); store<u32>(t + T_MASK + 4, m1);
  store<u32>(t + T_MASK + 8, m2); store<u32>(t + T_MASK + 12, m3);
}

// Whether the memory can still take `tables` new tables (and the directory, before the first): a
// commit checks this before it swaps anything in, as recentRef cannot fail.
export function recentRoomFor(tables: u32): bool {
  if (tables == 0) return true;
  const dirBytes: u64 = dir == 0 ? <u64>RECENT_MAX_TABLES << alignof<usize>() : 0;
  return memoryFits(<u64>tables * (<u64>TABLE_BYTES + 16) + dirBytes);
}

// A rule naming table `id` was committed; `mask` (4 words) is its --mask, used if this creates the
// table (recent_mt_check: the first rule's mask stays).
export function recentRef(id: u32, mask: usize): void {
  if (dir == 0) {
    const bytes = <usize>RECENT_MAX_TABLES << alignof<usize>();
    dir = heap.alloc(bytes);
    memory.fill(dir, 0, bytes);
  }
  let t = tableAt(id);
  if (t == 0) {
    t = heap.alloc(TABLE_BYTES);
    tableInit(t, load<u32>(mask), load<u32>(mask, 4), load<u32>(mask, 8), load<u32>(mask, 12));
    store<usize>(dir + (<usize>id << alignof<usize>()), t);
  }
  store<u32>(t + T_REFS, load<u32>(t + T_REFS) + 1);
}

// A rule naming table `id` went away; the last one takes the table and its addresses with it.
export function recentUnref(id: u32): void {
  const t = tableAt(id);
  if (t == 0) return;
  const refs = load<u32>(t + T_REFS) - 1;
  store<u32>(t + T_REFS, refs);
  if (refs == 0) {
    heap.free(t);
    store<usize>(dir + (<usize>id << alignof<usize>()), 0);
  }
}

function lruUnlink(t: usize, i: u32): void {
  const e = entryAt(t, i);
  const p = <u32>load<u16>(e + E_LPREV), n = <u32>load<u16>(e + E_LNEXT);
  if (p == NIL) store<u16>(t + T_LRU_HEAD, <u16>n); else store<u16>(entryAt(t, p) + E_LNEXT, <u16>n);
  if (n == NIL) store<u16>(t + T_LRU_TAIL, <u16>p); else store<u16>(entryAt(t, n) + E_LPREV, <u16>p);
}

function lruAppend(t: usize, i: u32): void {
  const e = entryAt(t, i);
  const tail = <u32>load<u16>(t + T_LRU_TAIL);
  store<u16>(e + E_LPREV, <u16>tail);
  store<u16>(e + E_LNEXT, <u16>NIL);
  if (tail == NIL) store<u16>(t + T_LRU_HEAD, <u16>i); else store<u16>(entryAt(t, tail) + E_LNEXT, <u16>i);
  store<u16>(t + T_LRU_TAIL, <u16>i);
}

// recent_entry_remove().
function removeEntry(t: usize, i: u32): void {
  const e = entryAt(t, i);
  let p = bucketOf(t, load<u32>(e), load<u32>(e, 4), load<u32>(e, 8), load<u32>(e, 12));
  while (<u32>load<u16>(p) != NIL) {
    const j = <u32>load<u16>(p);
    if (j == i) { store<u16>(p, load<u16>(e + E_HNEXT)); break; }
    p = entryAt(t, j) + E_HNEXT;
  }
  lruUnlink(t, i);
  store<u16>(e + E_HNEXT, load<u16>(t + T_FREE));
  store<u16>(t + T_FREE, <u16>i);
  store<u32>(t + T_COUNT, load<u32>(t + T_COUNT) - 1);
}

// recent_entry_lookup(): first entry of the family and address whose TTL agrees (ttl 0 = any).
function lookup(t: usize, family: u8, a0: u32, a1: u32, a2: u32, a3: u32, ttl: u8): u32 {
  let i = <u32>load<u16>(bucketOf(t, a0, a1, a2, a3));
  while (i != NIL) {
    const e = entryAt(t, i);
    if (load<u8>(e + E_FAMILY) == family && load<u32>(e) == a0 && load<u32>(e, 4) == a1 &&
        load<u32>(e, 8) == a2 && load<u32>(e, 12) == a3) {
      const et = load<u8>(e + E_TTL);
      if (ttl == et || ttl == 0 || et == 0) return i;
    }
    i = <u32>load<u16>(e + E_HNEXT);
  }
  return NIL;
}

// recent_entry_init(): evicts the least recently updated entry when the table is full.
function add(t: usize, family: u8, a0: u32, a1: u32, a2: u32, a3: u32, ttl: u8, now: u32): void {
  if (load<u32>(t + T_COUNT) >= RECENT_LIST_TOT) removeEntry(t, <u32>load<u16>(t + T_LRU_HEAD));
  const i = <u32>load<u16>(t + T_FREE);
  const e = entryAt(t, i);
  store<u16>(t + T_FREE, load<u16>(e + E_HNEXT));
  store<u32>(e, a0); store<u32>(e, a1, 4); store<u32>(e, a2, 8); store<u32>(e, a3, 12);
  store<u8>(e + E_FAMILY, family);
  store<u8>(e + E_TTL, ttl);
  store<u32>(e + E_STAMPS, now);
  store<u8>(e + E_NSTAMPS, 1);
  store<u8>(e + E_INDEX, 1);
  // list_add_tail on the hash chain: lookups meet older entries first.
  store<u16>(e + E_HNEXT, <u16>NIL);
  let p = bucketOf(t, a0, a1, a2, a3);
  while (<u32>load<u16>(p) != NIL) p = entryAt(t, <u32>load<u16>(p)) + E_HNEXT;
  store<u16>(p, <u16>i);
  lruAppend(t, i);
  store<u32>(t + T_COUNT, load<u32>(t + T_COUNT) + 1);
}

// recent_entry_update().
function update(t: usize, i: u32, now: u32): void {
  const e = entryAt(t, i);
  const idx = <u32>load<u8>(e + E_INDEX) % RECENT_PKT_LIST;
  store<u32>(e + E_STAMPS + (<usize>idx << 2), now);
  store<u8>(e + E_INDEX, <u8>(idx + 1));
  if (idx + 1 > <u32>load<u8>(e + E_NSTAMPS)) store<u8>(e + E_NSTAMPS, <u8>(idx + 1));
  lruUnlink(t, i);
  lruAppend(t, i);
}

// time_after(a, b): a is later than b, on wrapping ms.
@inline function after(a: u32, b: u32): bool { return <i32>(b - a) < 0; }

// recent_entry_reap(): the oldest entry goes if its newest stamp is older than `time`, unless it
// is the one about to be updated.
function reap(t: usize, time: u32, working: u32, updating: bool): void {
  const i = <u32>load<u16>(t + T_LRU_HEAD);
  if (i == NIL || (i == working && updating)) return;
  const e = entryAt(t, i);
  const last = <u32>load<u8>(e + E_INDEX) - 1;
  if (after(time, load<u32>(e + E_STAMPS + (<usize>last << 2)))) removeEntry(t, i);
}

// recent_mt(): the op at `p` (args: table, flags, seconds, hitcount, mask[4] — the rule's own mask
// is ignored in favour of the table's) for packet `f`. With readOnly nothing changes.
export function recentMatch(p: usize, f: Flow, now: u32, readOnly: bool): bool {
  let ret = (opFlags(load<u32>(p)) & OPF_INVERT) != 0;
  const t = tableAt(load<u32>(p, 4));
  if (t == 0) return ret;   // cannot happen for a committed rule
  const flags = load<u32>(p, 8);
  const dest = (flags & RECENT_DEST) != 0;
  const a0 = (dest ? f.d0 : f.s0) & load<u32>(t + T_MASK);
  const a1 = (dest ? f.d1 : f.s1) & load<u32>(t + T_MASK + 4);
  const a2 = (dest ? f.d2 : f.s2) & load<u32>(t + T_MASK + 8);
  const a3 = (dest ? f.d3 : f.s3) & load<u32>(t + T_MASK + 12);
  // "use TTL as seen before forwarding": the kernel adds back the forwarding decrement; this
  // dataplane never decrements, so the packet's TTL is that value already.
  const ttl = f.ttl;
  const i = lookup(t, f.family, a0, a1, a2, a3, (flags & RECENT_TTL) != 0 ? ttl : 0);
  if (i == NIL) {
    if ((flags & RECENT_SET) == 0) return ret;
    if (!readOnly) add(t, f.family, a0, a1, a2, a3, ttl, now);
    return !ret;
  }
  if ((flags & RECENT_SET) != 0) {
    ret = !ret;
  } else if ((flags & RECENT_REMOVE) != 0) {
    if (!readOnly) removeEntry(t, i);
    return !ret;
  } else {
    const seconds = load<u32>(p, 12), hitcount = load<u32>(p, 16);
    const time = now - windowMs(seconds);
    const e = entryAt(t, i);
    const n = <u32>load<u8>(e + E_NSTAMPS);
    let hits: u32 = 0;
    for (let k: u32 = 0; k < n; k++) {
      if (seconds != 0 && after(time, load<u32>(e + E_STAMPS + (<usize>k << 2)))) continue;
      if (hitcount == 0 || ++hits >= hitcount) { ret = !ret; break; }
    }
    if ((flags & RECENT_REAP) != 0 && !readOnly) reap(t, time, i, (flags & RECENT_UPDATE) != 0 && ret);
  }
  if (!readOnly && ((flags & RECENT_SET) != 0 || ((flags & RECENT_UPDATE) != 0 && ret))) {
    update(t, i, now);
    store<u8>(entryAt(t, i) + E_TTL, ttl);
  }
  return ret;
}

// Entries in table `id` (0 when it does not exist).
export function recentCount(id: u32): u32 {
  const t = id < RECENT_MAX_TABLES ? tableAt(id) : 0;
  return t == 0 ? 0 : load<u32>(t + T_COUNT);
}

// Does table `id` exist (is some committed rule naming it)?
export function recentExists(id: u32): bool {
  return id < RECENT_MAX_TABLES && tableAt(id) != 0;
}

// Empties table `id` (xt_recent's "/" write to /proc/net/xt_recent/NAME).
export function recentFlush(id: u32): void {
  const t = id < RECENT_MAX_TABLES ? tableAt(id) : 0;
  if (t == 0) return;
  while (<u32>load<u16>(t + T_LRU_HEAD) != NIL) removeEntry(t, <u32>load<u16>(t + T_LRU_HEAD));
}

// Moves every stamp older than `cap` ms (every one with `all`) to exactly that age (clock.ts).
export function recentUpkeep(now: u32, cap: u32, all: bool): void {
  if (dir == 0) return;
  for (let id: u32 = 0; id < RECENT_MAX_TABLES; id++) {
    const t = tableAt(id);
    if (t == 0) continue;
    for (let i = <u32>load<u16>(t + T_LRU_HEAD); i != NIL; ) {
      const e = entryAt(t, i);
      const held = <u32>load<u8>(e + E_NSTAMPS);
      for (let k: u32 = 0; k < held; k++) {
        const at = e + E_STAMPS + (<usize>k << 2);
        if (all || now - load<u32>(at) > cap) store<u32>(at, now - cap);
      }
      i = <u32>load<u16>(e + E_LNEXT);
    }
  }
}

// A saved entry (recentSave / recentLoad, a conntrack snapshot's recent lists): family u8, ttl u8,
// stamps held u8, next stamp slot u8 (1..RECENT_PKT_LIST), address 4 × u32 (masked), then
// RECENT_PKT_LIST × u32 stamps as their age in ms at the time of saving.
export const RECENT_SAVED_BYTES: u32 = 20 + (RECENT_PKT_LIST << 2);

// Writes up to `max` entries of table `id`, oldest first, as 32-byte records at `out`: family u8,
// ttl u8, nstamps u8, pad u8, last-seen u32 (ms), address 4 × u32, 8 bytes zero. Returns how many.
export function recentDump(id: u32, out: usize, max: u32): u32 {
  return writeEntries(id, out, max, 0, false);
}

// Writes up to `max` entries of table `id`, oldest first, as saved entries at `out`, their stamps
// as ages at `now`. Returns how many.
export function recentSave(id: u32, out: usize, max: u32, now: u32): u32 {
  return writeEntries(id, out, max, now, true);
}

function writeEntries(id: u32, out: usize, max: u32, now: u32, saved: bool): u32 {
  const t = id < RECENT_MAX_TABLES ? tableAt(id) : 0;
  if (t == 0) return 0;
  let n: u32 = 0;
  let i = <u32>load<u16>(t + T_LRU_HEAD);
  while (i != NIL && n < max) {
    const e = entryAt(t, i);
    const held = <u32>load<u8>(e + E_NSTAMPS);
    store<u8>(out, load<u8>(e + E_FAMILY));
    store<u8>(out, load<u8>(e + E_TTL), 1);
    store<u8>(out, <u8>held, 2);
    if (saved) {
      store<u8>(out, load<u8>(e + E_INDEX), 3);
      memory.copy(out + 4, e + E_ADDR, 16);
      for (let k: u32 = 0; k < RECENT_PKT_LIST; k++) {
        const at = <usize>k << 2;
        store<u32>(out + 20 + at, k < held ? now - load<u32>(e + E_STAMPS + at) : 0);
      }
      out += RECENT_SAVED_BYTES;
    } else {
      store<u8>(out, 0, 3);
      const last = <u32>load<u8>(e + E_INDEX) - 1;
      store<u32>(out, load<u32>(e + E_STAMPS + (<usize>last << 2)), 4);
      memory.copy(out + 8, e + E_ADDR, 16);
      memory.fill(out + 24, 0, 8);
      out += 32;
    }
    n++;
    i = <u32>load<u16>(e + E_LNEXT);
  }
  return n;
}

// Adds a saved entry to table `id` as its most recently updated one, its stamps set back from
// their ages at `now`; an entry of the same address and TTL gives way to it. False, with nothing
// changed, for a table that does not exist or an entry out of range.
export function recentLoad(id: u32, r: usize, now: u32): bool {
  const t = id < RECENT_MAX_TABLES ? tableAt(id) : 0;
  if (t == 0) return false;
  const family = load<u8>(r), ttl = load<u8>(r, 1);
  const held = <u32>load<u8>(r, 2), next = <u32>load<u8>(r, 3);
  if (family != 4 && family != 6) return false;
  // Before the ring wraps the next slot follows the last stamp; after, any slot can be next.
  if (held == 0 || held > RECENT_PKT_LIST || next == 0 || next > RECENT_PKT_LIST || (held < RECENT_PKT_LIST && next != held)) return false;
  const a0 = load<u32>(r, 4) & load<u32>(t + T_MASK), a1 = load<u32>(r, 8) & load<u32>(t + T_MASK + 4);
  const a2 = load<u32>(r, 12) & load<u32>(t + T_MASK + 8), a3 = load<u32>(r, 16) & load<u32>(t + T_MASK + 12);
  if (family == 4 && (a1 | a2 | a3) != 0) return false;
  const have = lookup(t, family, a0, a1, a2, a3, ttl);
  if (have != NIL && load<u8>(entryAt(t, have) + E_TTL) == ttl) removeEntry(t, have);
  add(t, family, a0, a1, a2, a3, ttl, now);
  const e = entryAt(t, <u32>load<u16>(t + T_LRU_TAIL));
  // An age past the cap (a stamp from before any window) is held at the cap, never read as a
  // stamp in the future.
  for (let k: u32 = 0; k < held; k++) {
    const at = <usize>k << 2;
    store<u32>(e + E_STAMPS + at, now - min(load<u32>(r + 20 + at), STAMP_AGE_CAP));
  }
  store<u8>(e + E_NSTAMPS, <u8>held);
  store<u8>(e + E_INDEX, <u8>next);
  return true;
}
