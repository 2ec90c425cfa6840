// ipset/set.ts — one set: its header and the control operations on it with the kernel's semantics
// (net/netfilter/ipset/ip_set_hash_gen.h mtype_add/mtype_del/mtype_test, ip_set_bitmap_port.c):
// create, add (-exist overwrites the extensions; an expired element is replaced as if absent), del,
// test (a host address against a net type tries every stored prefix), flush, clone (for staging),
// reap of expired elements, element counters read-back. Elements come in the 64-byte element buffer
// (format.ts) and are checked before anything changes. Allocates on these control calls only.
import {
  T_HASH_IP, T_HASH_IP_PORT_IP, T_HASH_IP_PORT_NET, T_BITMAP_PORT, T_LAST,
  CF_TIMEOUT, CF_COUNTERS, CF_ALL, EF_NOMATCH, EF_TIMEOUT, EF_PACKETS, EF_BYTES,
  R_USED, R_NOMATCH, R_EXPIRES, REC_BYTES, O_A, O_B, O_PORT, O_PROTO, O_CIDR, O_FLAGS, O_TIME,
  O_PACKETS, O_BYTES, MAX_TIMEOUT_S, TEST_ABSENT, TEST_PRESENT, E_EXIST, E_NOT_EXIST, E_FULL,
  E_RANGE, E_CIDR, E_ARG, E_NULL, E_NO_TIMEOUT, E_NO_COUNTERS, E_PROTO, MAX_SLOTS, MIN_SLOTS,
  hasNets, hasPort, netOffset, hostMask, protoWithPorts,
} from "./format";
import {
  isMasked, addrIsZero, v4Clean, expired, recAt, recUsed, tableAlloc, hashFind, hashSlot, hashRemove,
  hashRehash, hashMatch, netsAlloc, netsAdd, netsDel, netSearch, NETS_BYTES, bitsAlloc, extAlloc,
  bitsBytes, bitGet, bitSet, bitClear, extAt, ctrAt, bitmapMatch, bitmapStale,
} from "./store";
import { allocFits } from "../alloc";

@unmanaged
export class IpSet {
  type: u8;
  family: u8;      // 4 or 6; 0 for bitmap:port (matches either)
  flags: u8;       // CF_*
  pad: u8;
  timeout: u32;    // default element timeout, seconds (CF_TIMEOUT)
  maxelem: u32;
  seed: u32;       // the set's hash seed (its initval)
  count: u32;      // elements held, expired ones included until reaped or replaced
  cap: u32;        // hash: slots; bitmap: ports in the range
  first: u32;      // bitmap: first port of the range
  gen: u32;        // staging: the transaction that made this copy (registry.ts)
  mark: u32;       // staging: commit marking
  nNets: u32;      // net types: prefix lengths in use
  recs: usize;     // hash: records; bitmap: presence bits
  ext: usize;      // bitmap with CF_TIMEOUT: 8 bytes per port
  ctr: usize;      // bitmap with CF_COUNTERS: 16 bytes per port
  nets: usize;     // net types: prefix book-keeping (store.ts)
}

// Scratch for the net search of control tests (the packet path has its own, lookup.ts).
const testKey: usize = heap.alloc(REC_BYTES);
const testAddr: usize = heap.alloc(16);

// A new empty set, or 0 when an argument is out of range. Bitmap ranges must come ordered.
export function setNew(type: u8, family: u8, flags: u32, maxelem: u32, timeout: u32, seed: u32, first: u32, last: u32): IpSet | null {
  if (type < T_HASH_IP || type > T_LAST || (flags & ~CF_ALL) != 0 || timeout > MAX_TIMEOUT_S) return null;
  if ((flags & CF_TIMEOUT) == 0 && timeout != 0) return null;
  if (type == T_BITMAP_PORT) {
    if (family != 0 || first > last || last > 0xFFFF) return null;
  } else if (family != 4 && family != 6) {
    return null;
  }
  const s = changetype<IpSet>(heap.alloc(offsetof<IpSet>()));
  memory.fill(changetype<usize>(s), 0, offsetof<IpSet>());
  s.type = type;
  s.family = family;
  s.flags = <u8>flags;
  s.timeout = timeout;
  s.maxelem = maxelem;
  s.seed = seed;
  if (type == T_BITMAP_PORT) {
    s.first = first;
    s.cap = last - first + 1;
    s.maxelem = s.cap;
    s.recs = bitsAlloc(s.cap);
    if ((flags & CF_TIMEOUT) != 0) s.ext = extAlloc(s.cap, 8);
    if ((flags & CF_COUNTERS) != 0) s.ctr = extAlloc(s.cap, 16);
  } else {
    s.cap = MIN_SLOTS;
    s.recs = tableAlloc(MIN_SLOTS);
    if (hasNets(type)) s.nets = netsAlloc();
  }
  return s;
}

export function setFree(s: IpSet): void {
  heap.free(s.recs);
  if (s.ext != 0) heap.free(s.ext);
  if (s.ctr != 0) heap.free(s.ctr);
  if (s.nets != 0) heap.free(s.nets);
  heap.free(changetype<usize>(s));
}

function dup(p: usize, bytes: usize): usize {
  if (p == 0) return 0;
  const q = heap.alloc(bytes);
  memory.copy(q, p, bytes);
  return q;
}

// A private copy of `s` (staging works on copies; packets keep reading the original).
export function setClone(s: IpSet): IpSet {
  const c = changetype<IpSet>(dup(changetype<usize>(s), offsetof<IpSet>()));
  if (s.type == T_BITMAP_PORT) {
    c.recs = dup(s.recs, bitsBytes(s.cap));
    c.ext = dup(s.ext, <usize>s.cap << 3);
    c.ctr = dup(s.ctr, <usize>s.cap << 4);
  } else {
    c.recs = dup(s.recs, <usize>s.cap * REC_BYTES);
    c.nets = dup(s.nets, NETS_BYTES);
  }
  return c;
}

// Memory the set holds, in bytes.
export function setBytes(s: IpSet): usize {
  let b = offsetof<IpSet>();
  if (s.type == T_BITMAP_PORT) {
    b += bitsBytes(s.cap);
    if (s.ext != 0) b += <usize>s.cap << 3;
    if (s.ctr != 0) b += <usize>s.cap << 4;
  } else {
    b += <usize>s.cap * REC_BYTES;
    if (s.nets != 0) b += NETS_BYTES;
  }
  return b;
}

export function setFlush(s: IpSet): void {
  s.count = 0;
  if (s.type == T_BITMAP_PORT) {
    memory.fill(s.recs, 0, bitsBytes(s.cap));
    if (s.ext != 0) memory.fill(s.ext, 0, <usize>s.cap << 3);
    if (s.ctr != 0) memory.fill(s.ctr, 0, <usize>s.cap << 4);
    return;
  }
  heap.free(s.recs);
  s.cap = MIN_SLOTS;
  s.recs = tableAlloc(MIN_SLOTS);
  if (s.nets != 0) memory.fill(s.nets, 0, NETS_BYTES);
  s.nNets = 0;
}

// ---- element checks ---------------------------------------------------------------------------

@inline function zero(e: usize, off: usize): bool {
  return addrIsZero(e + off);
}

// Checks the key of element `e` for set `s`; `test` allows a host-length net part (the search).
// Returns 0 or an error kind.
function checkKey(s: IpSet, e: usize): i32 {
  const t = s.type;
  const port = <u32>load<u16>(e, O_PORT), proto = <u32>load<u8>(e, O_PROTO), cidr = <u32>load<u8>(e, O_CIDR);
  if (t == T_BITMAP_PORT) {
    if (!zero(e, O_A) || !zero(e, O_B) || proto != 0 || cidr != 0) return E_ARG;
    return 0;
  }
  const v4 = s.family == 4;
  if (v4 && !v4Clean(e + O_A)) return E_ARG;
  if (t == T_HASH_IP_PORT_IP || t == T_HASH_IP_PORT_NET) {
    if (v4 && !v4Clean(e + O_B)) return E_ARG;
  } else if (!zero(e, O_B)) {
    return E_ARG;
  }
  if (hasPort(t)) {
    // hash:ip,port uadt: protocol 0 is refused; only port protocols and ICMP carry a port.
    if (proto == 0) return E_PROTO;
    if (!protoWithPorts(proto) && proto != 1 && proto != 58 && port != 0) return E_PROTO;
  } else if (port != 0 || proto != 0) {
    return E_ARG;
  }
  if (hasNets(t)) {
    if (cidr == 0 || cidr > hostMask(s.family)) return E_CIDR;
    if (!isMasked(e + netOffset(t), cidr)) return E_CIDR;
  } else if (cidr != 0) {
    return E_ARG;
  }
  if (t == T_HASH_IP && addrIsZero(e + O_A)) return E_NULL;
  return 0;
}

// Checks the extension part of an add.
function checkExt(s: IpSet, e: usize): i32 {
  const f = load<u8>(e, O_FLAGS);
  if ((f & ~(EF_NOMATCH | EF_TIMEOUT | EF_PACKETS | EF_BYTES)) != 0) return E_ARG;
  if ((f & EF_NOMATCH) != 0 && !hasNets(s.type)) return E_ARG;
  if ((f & EF_TIMEOUT) != 0) {
    if ((s.flags & CF_TIMEOUT) == 0) return E_NO_TIMEOUT;
    if (load<u32>(e, O_TIME) > MAX_TIMEOUT_S) return E_ARG;
  }
  if ((f & (EF_PACKETS | EF_BYTES)) != 0 && (s.flags & CF_COUNTERS) == 0) return E_NO_COUNTERS;
  return 0;
}

// ip_set_timeout_set(): the element's timeout, or the set's default; 0 is permanent.
function timeoutOf(s: IpSet, e: usize): u32 {
  return (load<u8>(e, O_FLAGS) & EF_TIMEOUT) != 0 ? load<u32>(e, O_TIME) : s.timeout;
}

// Writes the extensions of `e` into record/port state: timeout, counters (given values, else zero
// for a new element and unchanged for an overwrite: ip_set_init_counter()).
function setExt(s: IpSet, e: usize, timeAt: usize, flagAt: usize, flagBase: u32, ctrAt_: usize, fresh: bool, now: u32): u32 {
  let fl = flagBase;
  if ((s.flags & CF_TIMEOUT) != 0) {
    const t = timeoutOf(s, e);
    if (t != 0) {
      fl |= R_EXPIRES;
      store<u32>(timeAt, now + t * 1000);
    } else {
      store<u32>(timeAt, 0);
    }
  }
  if (flagAt != 0) store<u32>(flagAt, fl);
  if (ctrAt_ != 0) {
    const ef = load<u8>(e, O_FLAGS);
    if (fresh || (ef & EF_PACKETS) != 0) store<u64>(ctrAt_, (ef & EF_PACKETS) != 0 ? load<u64>(e, O_PACKETS) : 0);
    if (fresh || (ef & EF_BYTES) != 0) store<u64>(ctrAt_, (ef & EF_BYTES) != 0 ? load<u64>(e, O_BYTES) : 0, 8);
  }
  return fl;
}

// ---- add / del / test -------------------------------------------------------------------------

function recStale(r: usize, now: u32): bool {
  return (load<u8>(r, O_FLAGS) & R_EXPIRES) != 0 && expired(load<u32>(r, O_TIME), now);
}

// Grows the table so one more record fits at load ≤ 3/4. False at the storage limit, or when the
// memory cannot hold the grown table (the allocator would trap, not refuse).
function roomForOne(s: IpSet): bool {
  if ((s.count + 1) * 4 <= s.cap * 3) return true;
  if (s.cap >= MAX_SLOTS) return false;
  const cap = s.cap << 1;
  if (!allocFits(<u64>cap * REC_BYTES)) return false;
  const recs = tableAlloc(cap);
  hashRehash(recs, cap, s.recs, s.cap, s.seed);
  heap.free(s.recs);
  s.recs = recs;
  s.cap = cap;
  return true;
}

export function setAdd(s: IpSet, e: usize, exist: bool, now: u32): i32 {
  let err = checkKey(s, e);
  if (err == 0) err = checkExt(s, e);
  if (err != 0) return -err;
  const nomatch: u32 = (load<u8>(e, O_FLAGS) & EF_NOMATCH) != 0 ? R_NOMATCH : 0;
  if (s.type == T_BITMAP_PORT) {
    const port = <u32>load<u16>(e, O_PORT);
    if (port < s.first || port - s.first >= s.cap) return -E_RANGE;
    const i = port - s.first;
    const ctr = s.ctr != 0 ? ctrAt(s.ctr, i) : 0;
    const ext = s.ext != 0 ? extAt(s.ext, i) : 0;
    if (bitGet(s.recs, i)) {
      const stale = bitmapStale(s.recs, s.ext, i, now);
      if (!exist && !stale) return -E_EXIST;
      setExt(s, e, ext, ext != 0 ? ext + 4 : 0, 0, ctr, stale, now);
      return 0;
    }
    bitSet(s.recs, i);
    s.count++;
    setExt(s, e, ext, ext != 0 ? ext + 4 : 0, 0, ctr, true, now);
    return 0;
  }
  let r = hashFind(s.recs, s.cap, s.seed, e);
  if (r != 0) {
    // mtype_add(): an existing element is overwritten with -exist or when it has expired.
    const stale = recStale(r, now);
    if (!exist && !stale) return -E_EXIST;
    const fl = setExt(s, e, r + O_TIME, 0, R_USED | nomatch, (s.flags & CF_COUNTERS) != 0 ? r + O_PACKETS : 0, false, now);
    store<u8>(r, <u8>fl, O_FLAGS);
    return 0;
  }
  if (s.count >= s.maxelem) {
    // A full set with timeouts first drops what has expired (mtype_add() runs the gc).
    if ((s.flags & CF_TIMEOUT) != 0) setReap(s, now);
    if (s.count >= s.maxelem) return -E_FULL;
  }
  if (!roomForOne(s)) return -E_FULL;
  r = hashSlot(s.recs, s.cap, s.seed, e);
  memory.fill(r, 0, REC_BYTES);
  memory.copy(r, e, 36);
  const fl = setExt(s, e, r + O_TIME, 0, R_USED | nomatch, (s.flags & CF_COUNTERS) != 0 ? r + O_PACKETS : 0, true, now);
  store<u8>(r, <u8>fl, O_FLAGS);
  s.count++;
  if (s.nets != 0) s.nNets = netsAdd(s.nets, s.nNets, <u32>load<u8>(e, O_CIDR));
  return 0;
}

function removeRec(s: IpSet, r: usize): void {
  if (s.nets != 0) s.nNets = netsDel(s.nets, s.nNets, <u32>load<u8>(r, O_CIDR));
  hashRemove(s.recs, s.cap, s.seed, r);
  s.count--;
}

// mtype_del(): an element that is absent or has expired is "not added" (-exist ignores that).
export function setDel(s: IpSet, e: usize, exist: bool, now: u32): i32 {
  const err = checkKey(s, e);
  if (err != 0) return -err;
  if (load<u8>(e, O_FLAGS) != 0) return -E_ARG;
  if (s.type == T_BITMAP_PORT) {
    const port = <u32>load<u16>(e, O_PORT);
    if (port < s.first || port - s.first >= s.cap) return -E_RANGE;
    const i = port - s.first;
    if (!bitGet(s.recs, i) || bitmapStale(s.recs, s.ext, i, now)) {
      if (bitGet(s.recs, i)) { bitClear(s.recs, i); s.count--; }
      return exist ? 0 : -E_NOT_EXIST;
    }
    bitClear(s.recs, i);
    s.count--;
    return 0;
  }
  const r = hashFind(s.recs, s.cap, s.seed, e);
  if (r == 0) return exist ? 0 : -E_NOT_EXIST;
  const stale = recStale(r, now);
  removeRec(s, r);
  return stale && !exist ? -E_NOT_EXIST : 0;
}

// `ipset test`: TEST_* (no counters move). A net type tested with a host-length net part searches
// every stored prefix (mtype_test()); bitmap:port outside its range is simply absent.
export function setTest(s: IpSet, e: usize, now: u32): i32 {
  const err = checkKey(s, e);
  if (err != 0) return -err;
  if (s.type == T_BITMAP_PORT) {
    const port = <u32>load<u16>(e, O_PORT);
    if (port < s.first || port - s.first >= s.cap) return TEST_ABSENT;
    return bitmapMatch(s.recs, s.ext, 0, port - s.first, now, -1);
  }
  if (hasNets(s.type) && <u32>load<u8>(e, O_CIDR) == hostMask(s.family)) {
    const off = netOffset(s.type);
    memory.copy(testKey, e, REC_BYTES);
    memory.copy(testAddr, e + off, 16);
    return netSearch(s.recs, s.cap, s.seed, s.nets, s.nNets, testKey, off, testAddr, now, false, -1);
  }
  return hashMatch(s.recs, s.cap, s.seed, e, now, false, -1);
}

// Exact lookup for read-back: writes the element's R_* flags at byte 36, its expiry at 40 and its
// counters at 48/56 into `e`. TEST_ABSENT when not held (or expired).
export function setGet(s: IpSet, e: usize, now: u32): i32 {
  const err = checkKey(s, e);
  if (err != 0) return -err;
  let fl: u32 = 0, exp: u32 = 0, pk: u64 = 0, by: u64 = 0;
  if (s.type == T_BITMAP_PORT) {
    const port = <u32>load<u16>(e, O_PORT);
    if (port < s.first || port - s.first >= s.cap) return TEST_ABSENT;
    const i = port - s.first;
    if (!bitGet(s.recs, i) || bitmapStale(s.recs, s.ext, i, now)) return TEST_ABSENT;
    fl = R_USED;
    if (s.ext != 0) { fl |= load<u32>(extAt(s.ext, i), 4); exp = load<u32>(extAt(s.ext, i)); }
    if (s.ctr != 0) { pk = load<u64>(ctrAt(s.ctr, i)); by = load<u64>(ctrAt(s.ctr, i), 8); }
  } else {
    const r = hashFind(s.recs, s.cap, s.seed, e);
    if (r == 0 || recStale(r, now)) return TEST_ABSENT;
    fl = load<u8>(r, O_FLAGS);
    exp = load<u32>(r, O_TIME);
    pk = load<u64>(r, O_PACKETS);
    by = load<u64>(r, O_BYTES);
  }
  store<u8>(e, <u8>fl, O_FLAGS);
  store<u32>(e, exp, O_TIME);
  store<u64>(e, pk, O_PACKETS);
  store<u64>(e, by, O_BYTES);
  return TEST_PRESENT;
}

// Removes every expired element (mtype_gc). Returns how many went.
export function setReap(s: IpSet, now: u32): u32 {
  if ((s.flags & CF_TIMEOUT) == 0) return 0;
  let n: u32 = 0;
  if (s.type == T_BITMAP_PORT) {
    for (let i: u32 = 0; i < s.cap; i++) {
      if (bitmapStale(s.recs, s.ext, i, now)) { bitClear(s.recs, i); s.count--; n++; }
    }
    return n;
  }
  let i: u32 = 0;
  while (i < s.cap) {
    const r = recAt(s.recs, i);
    // A removal shifts a later record into slot i: look at it again.
    if (recUsed(r) && recStale(r, now)) { removeRec(s, r); n++; } else i++;
  }
  return n;
}

// Elements present (not expired) at `now`.
export function setLive(s: IpSet, now: u32): u32 {
  if ((s.flags & CF_TIMEOUT) == 0) return s.count;
  let n: u32 = 0;
  if (s.type == T_BITMAP_PORT) {
    for (let i: u32 = 0; i < s.cap; i++) if (bitGet(s.recs, i) && !bitmapStale(s.recs, s.ext, i, now)) n++;
    return n;
  }
  for (let i: u32 = 0; i < s.cap; i++) {
    const r = recAt(s.recs, i);
    if (recUsed(r) && !recStale(r, now)) n++;
  }
  return n;
}
