// ipvs/conn.ts — IPVS's own connection table (net/netfilter/ipvs/ip_vs_conn.c), separate from
// conntrack: fixed capacity set at ipvsInit, one 64-byte entry per connection or persistence
// template, chained in a seeded hash of <protocol, client address, client port> — the kernel's
// ip_vs_conn_hashkey() key — so that a client's packets (in), a real server's replies (out, keyed by
// the same client end) and templates (<protocol, client net, 0>) all share one chain. Entries expire
// by `now` (ms, wrapping): a packet refreshes expiry to now + timeout (ip_vs_conn_put), expired
// entries die when a look-up meets them or the bounded reaper passes, and a template controlling
// live connections is kept alive (ip_vs_conn_expire: n_control → expire_later). Creating and
// expiring entries does the destination accounting (dest.ts bind/unbind). Never allocates after
// connInit.
//
// Entry layout (64 bytes, little-endian):
//    0 u32×4 client address        16 u32×4 virtual address (fwmark template: word 0 = fwmark)
//   32 u32 chain next   36 u32 expiry (ms)   40 u32 timeout (ms)   44 u32 destination id
//   48 u32 connection: its template (NIL if none) / template: number of connections it controls
//   52 u16 client port   54 u16 virtual port   56 u16 destination port (host order)
//   58 u8 family (0 = free slot)   59 u8 protocol (0 for fwmark templates)   60 u8 state
//   61 u8 unused   62 u16 flags (CF_* and the forwarding method in bits 0–2)
// The destination address is the destination record's. Buckets: 4 bytes per two entries.
import {
  NIL, FWD_MASQ, FWD_MASK, CF_NOOUTPUT, CF_INACTIVE, CF_TEMPLATE, count, IC_CONN_EXPIRED,
  sysctl, SYS_PERSIST_STRICT,
} from "./defs";
import { destAt, destBind, destUnbind, destSvc, destFwd } from "./dest";
import { svcUnref } from "./service";
import { NEW_CONN_TIMEOUT } from "./proto";

export const CONN_BYTES: usize = 64;
export const CONN_LOG2_MIN: u32 = 4;
// 2^23 entries are 512 MiB; 2^24 would be one block over the allocator's 1 GiB limit.
export const CONN_LOG2_MAX: u32 = 23;

export const C_VADDR: usize = 16;
const C_NEXT: usize = 32;
const C_EXPIRES: usize = 36;
const C_TIMEOUT: usize = 40;
const C_DEST: usize = 44;
const C_CONTROL: usize = 48;
const C_CPORT: usize = 52;
const C_VPORT: usize = 54;
const C_DPORT: usize = 56;
const C_FAMILY: usize = 58;
const C_PROTO: usize = 59;
const C_STATE: usize = 60;
const C_FLAGS: usize = 62;

let table: usize = 0;
let buckets: usize = 0;
let bucketMask: u32 = 0;
export let connCapacity: u32 = 0;
export let connUsed: u32 = 0;
let freeHead: u32 = NIL;
let highWater: u32 = 0;
let reapCursor: u32 = 0;
let seed: u32 = 0;

export function connInit(log2: u32, hashSeed: u32): void {
  connCapacity = 1 << log2;
  table = heap.alloc(<usize>connCapacity * CONN_BYTES);
  memory.fill(table, 0, <usize>connCapacity * CONN_BYTES);
  const nb: u32 = 1 << (log2 - 1);
  buckets = heap.alloc(<usize>nb << 2);
  for (let b: u32 = 0; b < nb; b++) store<u32>(buckets + (<usize>b << 2), NIL);
  bucketMask = nb - 1;
  connUsed = 0;
  freeHead = NIL;
  highWater = 0;
  reapCursor = 0;
  seed = hashSeed;
}

// @ts-ignore: decorator
@inline export function connAt(i: u32): usize { return table + <usize>i * CONN_BYTES; }
// @ts-ignore: decorator
@inline export function connFamily(i: u32): u8 { return load<u8>(connAt(i), C_FAMILY); }
// @ts-ignore: decorator
@inline export function connProto(i: u32): u8 { return load<u8>(connAt(i), C_PROTO); }
// @ts-ignore: decorator
@inline export function connState(i: u32): u8 { return load<u8>(connAt(i), C_STATE); }
// @ts-ignore: decorator
@inline export function connFlags(i: u32): u16 { return load<u16>(connAt(i), C_FLAGS); }
// @ts-ignore: decorator
@inline export function connDest(i: u32): u32 { return load<u32>(connAt(i), C_DEST); }
// @ts-ignore: decorator
@inline export function connControl(i: u32): u32 { return load<u32>(connAt(i), C_CONTROL); }
// @ts-ignore: decorator
@inline export function connCport(i: u32): u16 { return load<u16>(connAt(i), C_CPORT); }
// @ts-ignore: decorator
@inline export function connVport(i: u32): u16 { return load<u16>(connAt(i), C_VPORT); }
// @ts-ignore: decorator
@inline export function connDport(i: u32): u16 { return load<u16>(connAt(i), C_DPORT); }
// @ts-ignore: decorator
@inline export function connExpires(i: u32): u32 { return load<u32>(connAt(i), C_EXPIRES); }
// @ts-ignore: decorator
@inline export function connTimeout(i: u32): u32 { return load<u32>(connAt(i), C_TIMEOUT); }
// @ts-ignore: decorator
@inline export function setConnState(i: u32, s: u8): void { store<u8>(connAt(i), s, C_STATE); }
// @ts-ignore: decorator
@inline export function setConnFlags(i: u32, f: u16): void { store<u16>(connAt(i), f, C_FLAGS); }
// @ts-ignore: decorator
@inline export function setConnTimeout(i: u32, t: u32): void { store<u32>(connAt(i), t, C_TIMEOUT); }
// @ts-ignore: decorator
@inline export function connIsUsed(i: u32): bool { return i < connCapacity && load<u8>(connAt(i), C_FAMILY) != 0; }

/** ip_vs_conn_put(): the timer restarts — the entry now lives `timeout` ms from `now`. */
// @ts-ignore: decorator
@inline export function connTouch(i: u32, now: u32): void {
  const p = connAt(i);
  store<u32>(p, now + load<u32>(p, C_TIMEOUT), C_EXPIRES);
}

// @ts-ignore: decorator
@inline function expired(p: usize, now: u32): bool { return <i32>(now - load<u32>(p, C_EXPIRES)) >= 0; }

// @ts-ignore: decorator
@inline function mix(h: u32, v: u32): u32 {
  h ^= v;
  h ^= h >>> 16; h *= 0x7FEB352D;
  h ^= h >>> 15; h *= 0x846CA68B;
  return h ^ (h >>> 16);
}

// ip_vs_conn.c ip_vs_conn_hashkey(): protocol, client address and port, with a secret seed.
// @ts-ignore: decorator
@inline function bucketOf(family: u8, proto: u8, a0: u32, a1: u32, a2: u32, a3: u32, port: u16): usize {
  let h = mix(seed, (<u32>proto << 16) | <u32>port);
  h = mix(h, a0);
  if (family != 4) { h = mix(h, a1); h = mix(h, a2); h = mix(h, a3); }
  return buckets + (<usize>(h & bucketMask) << 2);
}

// @ts-ignore: decorator
@inline function addrIs(p: usize, a0: u32, a1: u32, a2: u32, a3: u32): bool {
  return load<u32>(p) == a0 && ((load<u32>(p, 4) ^ a1) | (load<u32>(p, 8) ^ a2) | (load<u32>(p, 12) ^ a3)) == 0;
}

function unhash(i: u32): void {
  const p = connAt(i);
  const bp = bucketOf(load<u8>(p, C_FAMILY), load<u8>(p, C_PROTO), load<u32>(p), load<u32>(p, 4),
    load<u32>(p, 8), load<u32>(p, 12), load<u16>(p, C_CPORT));
  let prev = NIL, cur = load<u32>(bp);
  while (cur != NIL) {
    const next = load<u32>(connAt(cur), C_NEXT);
    if (cur == i) {
      if (prev == NIL) store<u32>(bp, next); else store<u32>(connAt(prev), next, C_NEXT);
      return;
    }
    prev = cur;
    cur = next;
  }
}

/**
 * ip_vs_conn.c ip_vs_conn_expire(): a template still controlling connections lives on (timer
 * restarted); otherwise the entry leaves the table, its template loses a controlled connection, and
 * its destination is unbound. Returns true when the entry is gone.
 */
export function connExpire(i: u32, now: u32): bool {
  const p = connAt(i);
  const flags = load<u16>(p, C_FLAGS);
  if ((flags & CF_TEMPLATE) != 0 && load<u32>(p, C_CONTROL) != 0) {
    connTouch(i, now);
    return false;
  }
  unhash(i);
  if ((flags & CF_TEMPLATE) == 0) {
    const ct = load<u32>(p, C_CONTROL);
    if (ct != NIL) store<u32>(connAt(ct), load<u32>(connAt(ct), C_CONTROL) - 1, C_CONTROL);
  }
  const d = load<u32>(p, C_DEST);
  const s = destSvc(d);
  if (destUnbind(d, flags)) svcUnref(s);
  store<u8>(p, 0, C_FAMILY);
  store<u32>(p, freeHead, C_NEXT);
  freeHead = i;
  connUsed--;
  count(IC_CONN_EXPIRED);
  return true;
}

/**
 * ip_vs_conn.c ip_vs_conn_in_get(): the connection a client → virtual service packet belongs to.
 * `dry` (the trace) leaves an expired entry for the reaper.
 */
export function connInGet(family: u8, proto: u8, s0: u32, s1: u32, s2: u32, s3: u32, sport: u16,
    d0: u32, d1: u32, d2: u32, d3: u32, dport: u16, now: u32, dry: bool): u32 {
  let i = load<u32>(bucketOf(family, proto, s0, s1, s2, s3, sport));
  while (i != NIL) {
    const p = connAt(i);
    const next = load<u32>(p, C_NEXT);
    if (load<u16>(p, C_CPORT) == sport && load<u16>(p, C_VPORT) == dport && load<u8>(p, C_PROTO) == proto &&
        load<u8>(p, C_FAMILY) == family && (load<u16>(p, C_FLAGS) & CF_TEMPLATE) == 0 &&
        addrIs(p, s0, s1, s2, s3) && addrIs(p + C_VADDR, d0, d1, d2, d3)) {
      if (expired(p, now)) {
        if (!dry) connExpire(i, now);
        return NIL;
      }
      return i;
    }
    i = next;
  }
  return NIL;
}

/**
 * ip_vs_conn.c ip_vs_conn_out_get(): the connection a real server's reply belongs to — source is the
 * destination address:port, destination the client. Only masqueraded connections have replies
 * through the director (ip_vs_out ignores the others).
 */
export function connOutGet(family: u8, proto: u8, s0: u32, s1: u32, s2: u32, s3: u32, sport: u16,
    d0: u32, d1: u32, d2: u32, d3: u32, dport: u16, now: u32, anyFwd: bool = false): u32 {
  let i = load<u32>(bucketOf(family, proto, d0, d1, d2, d3, dport));
  while (i != NIL) {
    const p = connAt(i);
    const next = load<u32>(p, C_NEXT);
    const flags = load<u16>(p, C_FLAGS);
    if (load<u16>(p, C_CPORT) == dport && load<u16>(p, C_DPORT) == sport && load<u8>(p, C_PROTO) == proto &&
        load<u8>(p, C_FAMILY) == family && (flags & CF_TEMPLATE) == 0 && (anyFwd || (flags & FWD_MASK) == <u16>FWD_MASQ) &&
        addrIs(p, d0, d1, d2, d3) && addrIs(destAt(load<u32>(p, C_DEST)), s0, s1, s2, s3)) {
      if (expired(p, now)) { connExpire(i, now); return NIL; }
      return i;
    }
    i = next;
  }
  return NIL;
}

/**
 * ip_vs_conn.c ip_vs_ct_in_get(): the persistence template <proto, client net, 0, vaddr, vport>
 * (fwmark services: proto 0, vaddr word 0 = fwmark). An expired template controlling live
 * connections is still valid (its timer is restarted); an expired idle one dies here. `dry` (the
 * trace) changes nothing.
 */
export function connTemplateGet(family: u8, proto: u8, c0: u32, c1: u32, c2: u32, c3: u32,
    v0: u32, v1: u32, v2: u32, v3: u32, vport: u16, now: u32, dry: bool): u32 {
  let i = load<u32>(bucketOf(family, proto, c0, c1, c2, c3, 0));
  while (i != NIL) {
    const p = connAt(i);
    const next = load<u32>(p, C_NEXT);
    if (load<u16>(p, C_CPORT) == 0 && load<u16>(p, C_VPORT) == vport && load<u8>(p, C_PROTO) == proto &&
        load<u8>(p, C_FAMILY) == family && (load<u16>(p, C_FLAGS) & CF_TEMPLATE) != 0 &&
        addrIs(p, c0, c1, c2, c3) && addrIs(p + C_VADDR, v0, v1, v2, v3)) {
      if (expired(p, now)) {
        if (sysctl(SYS_PERSIST_STRICT) != 0) {
          // Kept for the connections it controls, but no longer found (defs.ts SYS_PERSIST_STRICT).
          if (!dry && !connExpire(i, now)) connInvalidateTemplate(i);
          return NIL;
        }
        if (dry) return load<u32>(p, C_CONTROL) != 0 ? i : NIL;
        if (connExpire(i, now)) return NIL;
      }
      return i;
    }
    i = next;
  }
  return NIL;
}

// A free slot: the free list, then never-used slots, then an expired entry of the new entry's own
// chain (a full table makes room from what is already dead).
function takeSlot(bp: usize, now: u32): u32 {
  if (freeHead != NIL) {
    const i = freeHead;
    freeHead = load<u32>(connAt(i), C_NEXT);
    return i;
  }
  if (highWater < connCapacity) return highWater++;
  let i = load<u32>(bp);
  while (i != NIL) {
    const next = load<u32>(connAt(i), C_NEXT);
    if (expired(connAt(i), now) && connExpire(i, now)) return takeSlot(bp, now);
    i = next;
  }
  return NIL;
}

/**
 * ip_vs_conn.c ip_vs_conn_new() + ip_vs_bind_dest(): a new entry bound to destination `d`, taking
 * the destination's connection flags (its forwarding method, INACTIVE, and NOOUTPUT unless
 * masquerading), state 0 and the initial 3 s timeout. `flags` may add CF_TEMPLATE. Returns the
 * entry, or NIL when the table is full.
 */
export function connNew(family: u8, proto: u8, c0: u32, c1: u32, c2: u32, c3: u32, cport: u16,
    v0: u32, v1: u32, v2: u32, v3: u32, vport: u16, d: u32, dport: u16, flags: u16, now: u32): u32 {
  const fwd = <u16>destFwd(d);
  flags |= fwd | CF_INACTIVE;
  if (fwd != <u16>FWD_MASQ) flags |= CF_NOOUTPUT;
  return connPlace(family, proto, c0, c1, c2, c3, cport, v0, v1, v2, v3, vport, d, dport, flags, 0,
    NEW_CONN_TIMEOUT, now + NEW_CONN_TIMEOUT, now);
}

/**
 * Stores an entry with every field given (connNew's, and a restored snapshot's) and binds it to
 * its destination. Returns the entry, or NIL when the table is full.
 */
export function connPlace(family: u8, proto: u8, c0: u32, c1: u32, c2: u32, c3: u32, cport: u16,
    v0: u32, v1: u32, v2: u32, v3: u32, vport: u16, d: u32, dport: u16, flags: u16, state: u8,
    timeout: u32, expires: u32, now: u32): u32 {
  const bp = bucketOf(family, proto, c0, c1, c2, c3, cport);
  const i = takeSlot(bp, now);
  if (i == NIL) return NIL;
  const p = connAt(i);
  store<u32>(p, c0); store<u32>(p, c1, 4); store<u32>(p, c2, 8); store<u32>(p, c3, 12);
  store<u32>(p, v0, C_VADDR); store<u32>(p, v1, C_VADDR + 4); store<u32>(p, v2, C_VADDR + 8); store<u32>(p, v3, C_VADDR + 12);
  store<u32>(p, timeout, C_TIMEOUT);
  store<u32>(p, expires, C_EXPIRES);
  store<u32>(p, d, C_DEST);
  store<u32>(p, (flags & CF_TEMPLATE) != 0 ? 0 : NIL, C_CONTROL);
  store<u16>(p, cport, C_CPORT);
  store<u16>(p, vport, C_VPORT);
  store<u16>(p, dport, C_DPORT);
  store<u8>(p, family, C_FAMILY);
  store<u8>(p, proto, C_PROTO);
  store<u8>(p, state, C_STATE);
  store<u8>(p, 0, 61);
  store<u16>(p, flags, C_FLAGS);
  store<u32>(p, load<u32>(bp), C_NEXT);
  store<u32>(bp, i);
  connUsed++;
  destBind(d, flags);
  return i;
}

/** ip_vs_conn.c ip_vs_control_add(): connection `i` is controlled by template `ct`. */
export function connControlAdd(i: u32, ct: u32): void {
  store<u32>(connAt(i), ct, C_CONTROL);
  store<u32>(connAt(ct), load<u32>(connAt(ct), C_CONTROL) + 1, C_CONTROL);
}

/**
 * ip_vs_conn.c ip_vs_check_template() failing: the template can no longer match (vport and dport
 * become 0xffff) and stays until it expires; its timer is not restarted.
 */
export function connInvalidateTemplate(i: u32): void {
  const p = connAt(i);
  store<u16>(p, 0xFFFF, C_VPORT);
  store<u16>(p, 0xFFFF, C_DPORT);
}

/**
 * Removes every entry, as their expiry would: the connections first, then the templates that
 * controlled them. For a host whose IPVS hands its connections to conntrack (leaving ipvs mode).
 * Returns how many entries went.
 */
export function connDropAll(now: u32): u32 {
  let removed: u32 = 0;
  for (let pass = 0; pass < 2; pass++) {
    for (let i: u32 = 0; i < highWater; i++) {
      const p = connAt(i);
      if (load<u8>(p, C_FAMILY) == 0 || ((load<u16>(p, C_FLAGS) & CF_TEMPLATE) != 0) != (pass == 1)) continue;
      if (connExpire(i, now)) removed++;
    }
  }
  return removed;
}

/** Expires entries whose time is up, scanning at most `budget` slots from a rotating cursor. */
export function connReap(now: u32, budget: u32): u32 {
  if (highWater == 0) return 0;
  let removed: u32 = 0;
  if (budget > highWater) budget = highWater;
  for (let k: u32 = 0; k < budget; k++) {
    if (reapCursor >= highWater) reapCursor = 0;
    const i = reapCursor++;
    const p = connAt(i);
    if (load<u8>(p, C_FAMILY) != 0 && expired(p, now) && connExpire(i, now)) removed++;
  }
  return removed;
}

/** The next used entry index ≥ `from`, or NIL (for listing). */
export function connNextUsed(from: u32): u32 {
  for (let i = from; i < highWater; i++) if (load<u8>(connAt(i), C_FAMILY) != 0) return i;
  return NIL;
}

/** Ms until entry `i` expires (0 when already due). */
export function connRemaining(i: u32, now: u32): u32 {
  const left = <i32>(connExpires(i) - now);
  return left > 0 ? <u32>left : 0;
}
