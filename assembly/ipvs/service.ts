// ipvs/service.ts — virtual services and their destination lists (ip_vs_ctl.c): a pool of service
// records sized at ipvsInit that doubles when full (ids stay; up to SVC_LIMIT), two hash tables —
// <family, protocol, address, port> and
// <family, fwmark> — and the control operations add / edit / delete of services and destinations
// with the kernel's side effects: destinations join the list at its head (list_add_rcu), the
// scheduler's hooks run on every change, a removed destination goes to the trash while entries
// still use it and is revived by an equal add, a deleted service stays (unhashed) while trashed
// destinations refer to it. svcFind is the packet-path lookup (ip_vs_service_find: fwmark first,
// then the exact address:port, then the port-zero catch-all). Allocates only on the control path
// (scheduler state blocks, the pool growing).
//
// Record layout (80 bytes): 0 u32×4 address, 16 u16 port, 18 u8 family, 19 u8 protocol,
// 20 u32 fwmark, 24 u32 flags (SVC_F_*), 28 u32 persistence timeout (ms), 32 u32 netmask (IPv4: the
// mask as a Tuple word; IPv6: prefix length), 36 u8 scheduler, 37 u8 state (0 free, 1 live,
// 2 deleted but referenced), 40 u32 first destination, 44 u32 number of destinations, 48 u32
// scheduler state block, 52 u32 scheduler parameter (mh table size), 56 u32 hash-chain next,
// 60 u32 references from destination records, 64 u32 free link, 68 u32 generation.
// Counter block (128 bytes, parallel array, one extra row for the totals): as dest.ts STAT_*.
import { PROTO_TCP, PROTO_UDP, PROTO_SCTP } from "../flow";
import {
  NIL, SCHED_COUNT, SVC_F_HASHED, SVC_F_USER, FWD_MASQ, FWD_LOCAL, FWD_TUNNEL, FWD_DROUTE,
  E_OK, E_INVAL, E_EXIST, E_NOENT, E_NOMEM, E_AFNOSUPPORT,
} from "./defs";
import {
  destAlloc, destSet, destUpdate, destSetFwd, destSameAddr, destRetire, destRevive, destTrashFirst,
  destTrashNext, destNext, destPrev, setDestNext, setDestPrev, destSvc, setDestSvc, destZeroStats,
  destIsUsed, destFlags, destAf, D_TRASH,
} from "./dest";
import {
  schedStateBytes, schedInit, schedDestAdded, schedDestUpdated, schedDestRemoved,
} from "./sched/index";
import { vipInit, vipGrow, vipAdd, vipRemove } from "./vip";
import { allocZeroed, memoryFits, regrow } from "../alloc";

export const SVC_BYTES: usize = 80;
/** The most service records the pool holds (ipvsInit's bound on its first size too). */
export const SVC_LIMIT: u32 = 1 << 20;
export const SSTAT_BYTES: usize = 128;

const O_PORT: usize = 16;
const O_AF: usize = 18;
const O_PROTO: usize = 19;
const O_FWMARK: usize = 20;
const O_FLAGS: usize = 24;
const O_TIMEOUT: usize = 28;
const O_NETMASK: usize = 32;
const O_SCHED: usize = 36;
const O_STATE: usize = 37;
const O_FIRST: usize = 40;
const O_NUM: usize = 44;
const O_SSTATE: usize = 48;
const O_SPARAM: usize = 52;
const O_HNEXT: usize = 56;
const O_REF: usize = 60;
const O_LINK: usize = 64;
const O_GEN: usize = 68;

const ST_FREE: u8 = 0;
const ST_LIVE: u8 = 1;
const ST_DELETED: u8 = 2;

export let svcPool: usize = 0;
export let svcStats: usize = 0;
export let svcMax: u32 = 0;
export let svcLive: u32 = 0;
let freeHead: u32 = NIL;
let addrTab: usize = 0;
let fwmTab: usize = 0;
let tabMask: u32 = 0;
let seed: u32 = 0;
let fwmCount: u32 = 0;   // ipvs->fwm_services counting: the fwmark table is searched only if non-empty
let nullCount: u32 = 0;  // ipvs->nullsvc_counter: port-zero services

export function svcPoolInit(max: u32, hashSeed: u32): void {
  svcMax = 0;
  svcPool = allocZeroed(<usize>max * SVC_BYTES);
  vipInit(max);
  // One more counter row than services: the totals (est.ts totStat).
  svcStats = allocZeroed(<usize>(max + 1) * SSTAT_BYTES);
  addrTab = 0;
  fwmTab = 0;
  freeHead = NIL;
  seed = hashSeed;
  svcLive = 0;
  fwmCount = 0;
  nullCount = 0;
  poolSized(max);
}

/**
 * Doubles the pool (to SVC_LIMIT at most) when every record is taken: ids stay, the counters'
 * totals row moves to the end, the tables are rehashed. False when it is at its limit.
 */
function svcPoolGrow(): bool {
  if (svcMax >= SVC_LIMIT) return false;
  const max = min(svcMax << 1, SVC_LIMIT);
  if (!memoryFits(<u64>max * (SVC_BYTES + SSTAT_BYTES + 64))) return false;
  svcPool = regrow(svcPool, <usize>svcMax * SVC_BYTES, <usize>max * SVC_BYTES);
  const stats = allocZeroed(<usize>(max + 1) * SSTAT_BYTES);
  memory.copy(stats, svcStats, <usize>svcMax * SSTAT_BYTES);
  memory.copy(stats + <usize>max * SSTAT_BYTES, svcStats + <usize>svcMax * SSTAT_BYTES, SSTAT_BYTES);
  heap.free(svcStats);
  svcStats = stats;
  vipGrow(max);
  poolSized(max);
  return true;
}

/** The pool now holds `max` records (zero past the old size): frees the new ones, (re)builds both tables. */
function poolSized(max: u32): void {
  for (let i = max; i > svcMax; i--) {
    store<u32>(svcAt(i - 1), freeHead, O_LINK);
    freeHead = i - 1;
  }
  svcMax = max;
  let n: u32 = 16;
  while (n < max) n <<= 1;
  const oldAddr = addrTab, oldFwm = fwmTab, oldCount: u32 = addrTab == 0 ? 0 : tabMask + 1;
  addrTab = heap.alloc(<usize>n << 2);
  fwmTab = heap.alloc(<usize>n << 2);
  memory.fill(addrTab, 0xFF, <usize>n << 2);   // every bucket NIL
  memory.fill(fwmTab, 0xFF, <usize>n << 2);
  tabMask = n - 1;
  for (let b: u32 = 0; b < oldCount; b++) {
    rehashChain(load<u32>(oldAddr + (<usize>b << 2)));
    rehashChain(load<u32>(oldFwm + (<usize>b << 2)));
  }
  if (oldAddr != 0) {
    heap.free(oldAddr);
    heap.free(oldFwm);
  }
}

/** Links each service of an old table's chain into the bucket the current tables give it. */
function rehashChain(s: u32): void {
  while (s != NIL) {
    const p = svcAt(s);
    const next = load<u32>(p, O_HNEXT);
    const bp = bucketOf(p);
    store<u32>(p, load<u32>(bp), O_HNEXT);
    store<u32>(bp, s);
    s = next;
  }
}

// @ts-ignore: decorator
@inline export function svcAt(s: u32): usize { return svcPool + <usize>s * SVC_BYTES; }
// @ts-ignore: decorator
@inline export function svcStat(s: u32, i: u32): usize { return svcStats + <usize>s * SSTAT_BYTES + (<usize>i << 3); }
// @ts-ignore: decorator
@inline export function svcPort(s: u32): u16 { return load<u16>(svcAt(s), O_PORT); }
// @ts-ignore: decorator
@inline export function svcAf(s: u32): u8 { return load<u8>(svcAt(s), O_AF); }
// @ts-ignore: decorator
@inline export function svcProto(s: u32): u8 { return load<u8>(svcAt(s), O_PROTO); }
// @ts-ignore: decorator
@inline export function svcFwmark(s: u32): u32 { return load<u32>(svcAt(s), O_FWMARK); }
// @ts-ignore: decorator
@inline export function svcFlags(s: u32): u32 { return load<u32>(svcAt(s), O_FLAGS); }
// @ts-ignore: decorator
@inline export function svcTimeout(s: u32): u32 { return load<u32>(svcAt(s), O_TIMEOUT); }
// @ts-ignore: decorator
@inline export function svcNetmask(s: u32): u32 { return load<u32>(svcAt(s), O_NETMASK); }
// @ts-ignore: decorator
@inline export function svcSched(s: u32): u8 { return load<u8>(svcAt(s), O_SCHED); }
// @ts-ignore: decorator
@inline export function svcFirst(s: u32): u32 { return load<u32>(svcAt(s), O_FIRST); }
// @ts-ignore: decorator
@inline export function svcNumDests(s: u32): u32 { return load<u32>(svcAt(s), O_NUM); }
// @ts-ignore: decorator
@inline export function svcSchedState(s: u32): usize { return <usize>load<u32>(svcAt(s), O_SSTATE); }
// @ts-ignore: decorator
@inline export function svcSchedParam(s: u32): u32 { return load<u32>(svcAt(s), O_SPARAM); }
// @ts-ignore: decorator
@inline export function svcGen(s: u32): u32 { return load<u32>(svcAt(s), O_GEN); }
export function svcIsLive(s: u32): bool { return s < svcMax && load<u8>(svcAt(s), O_STATE) == ST_LIVE; }

// A seeded 32-bit mixer (lowbias32 finaliser) over the key words.
// @ts-ignore: decorator
@inline function mix(h: u32, v: u32): u32 {
  h ^= v;
  h ^= h >>> 16; h *= 0x7FEB352D;
  h ^= h >>> 15; h *= 0x846CA68B;
  return h ^ (h >>> 16);
}
// @ts-ignore: decorator
@inline function addrBucket(af: u8, proto: u8, a0: u32, a1: u32, a2: u32, a3: u32, port: u16): usize {
  let h = mix(seed, (<u32>af << 24) | (<u32>proto << 16) | <u32>port);
  h = mix(h, a0);
  if (af != 4) { h = mix(h, a1); h = mix(h, a2); h = mix(h, a3); }
  return addrTab + (<usize>(h & tabMask) << 2);
}
// @ts-ignore: decorator
@inline function fwmBucket(af: u8, mark: u32): usize {
  return fwmTab + (<usize>(mix(seed ^ <u32>af, mark) & tabMask) << 2);
}

// ip_vs_ctl.c __ip_vs_service_find().
export function svcLookupAddr(af: u8, proto: u8, a0: u32, a1: u32, a2: u32, a3: u32, port: u16): u32 {
  let s = load<u32>(addrBucket(af, proto, a0, a1, a2, a3, port));
  while (s != NIL) {
    const p = svcAt(s);
    if (load<u16>(p, O_PORT) == port && load<u8>(p, O_AF) == af && load<u8>(p, O_PROTO) == proto &&
        load<u32>(p, O_FWMARK) == 0 && load<u32>(p) == a0 && load<u32>(p, 4) == a1 &&
        load<u32>(p, 8) == a2 && load<u32>(p, 12) == a3) return s;
    s = load<u32>(p, O_HNEXT);
  }
  return NIL;
}

// ip_vs_ctl.c __ip_vs_svc_fwm_find().
export function svcLookupFwmark(af: u8, mark: u32): u32 {
  let s = load<u32>(fwmBucket(af, mark));
  while (s != NIL) {
    const p = svcAt(s);
    if (load<u32>(p, O_FWMARK) == mark && load<u8>(p, O_AF) == af) return s;
    s = load<u32>(p, O_HNEXT);
  }
  return NIL;
}

/** ip_vs_ctl.c ip_vs_service_find(): fwmark, then <proto, addr, port>, then the port-zero service. */
export function svcFind(af: u8, mark: u32, proto: u8, a0: u32, a1: u32, a2: u32, a3: u32, port: u16): u32 {
  if (mark != 0 && fwmCount != 0) {
    const s = svcLookupFwmark(af, mark);
    if (s != NIL) return s;
  }
  const s = svcLookupAddr(af, proto, a0, a1, a2, a3, port);
  if (s != NIL || nullCount == 0 || port == 0) return s;
  return svcLookupAddr(af, proto, a0, a1, a2, a3, 0);
}

/** The bucket of service `s`'s table (fwmark or address) that holds it. */
function bucketOf(p: usize): usize {
  const mark = load<u32>(p, O_FWMARK);
  return mark != 0 ? fwmBucket(load<u8>(p, O_AF), mark)
    : addrBucket(load<u8>(p, O_AF), load<u8>(p, O_PROTO), load<u32>(p), load<u32>(p, 4), load<u32>(p, 8), load<u32>(p, 12), load<u16>(p, O_PORT));
}

function hashIn(s: u32): void {
  const p = svcAt(s);
  const mark = load<u32>(p, O_FWMARK);
  const bp = bucketOf(p);
  store<u32>(p, load<u32>(bp), O_HNEXT);
  store<u32>(bp, s);
  store<u32>(p, load<u32>(p, O_FLAGS) | SVC_F_HASHED, O_FLAGS);
  if (mark != 0) fwmCount++;
  else {
    vipAdd(load<u8>(p, O_AF), load<u32>(p), load<u32>(p, 4), load<u32>(p, 8), load<u32>(p, 12));
    if (load<u16>(p, O_PORT) == 0) nullCount++;
  }
}

function hashOut(s: u32): void {
  const p = svcAt(s);
  const mark = load<u32>(p, O_FWMARK);
  const bp = bucketOf(p);
  let prev = NIL, cur = load<u32>(bp);
  while (cur != NIL) {
    const next = load<u32>(svcAt(cur), O_HNEXT);
    if (cur == s) {
      if (prev == NIL) store<u32>(bp, next); else store<u32>(svcAt(prev), next, O_HNEXT);
      break;
    }
    prev = cur;
    cur = next;
  }
  store<u32>(p, load<u32>(p, O_FLAGS) & ~SVC_F_HASHED, O_FLAGS);
  if (mark != 0) fwmCount--;
  else {
    vipRemove(load<u8>(p, O_AF), load<u32>(p), load<u32>(p, 4), load<u32>(p, 8), load<u32>(p, 12));
    if (load<u16>(p, O_PORT) == 0) nullCount--;
  }
}

function schedAttach(s: u32, sched: u8, param: u32): i32 {
  const bytes = schedStateBytes(sched, param);
  if (bytes == 0) return E_INVAL;
  const state = heap.alloc(bytes);
  memory.fill(state, 0, bytes);
  const p = svcAt(s);
  store<u8>(p, sched, O_SCHED);
  store<u32>(p, param, O_SPARAM);
  store<u32>(p, <u32>state, O_SSTATE);
  schedInit(sched, state, load<u32>(p, O_FIRST), load<u32>(p, O_NUM), param);
  return E_OK;
}

function schedDetach(s: u32): void {
  const p = svcAt(s);
  const state = <usize>load<u32>(p, O_SSTATE);
  if (state != 0) heap.free(state);
  store<u32>(p, 0, O_SSTATE);
}

function validProto(proto: u8): bool { return proto == PROTO_TCP || proto == PROTO_UDP || proto == PROTO_SCTP; }

/**
 * Adds a virtual service (ip_vs_ctl.c ip_vs_add_service). `mark` ≠ 0 makes a fwmark service
 * (address and port must then be zero). `netmask`: IPv4 mask as a Tuple word, IPv6 prefix 1..128.
 * Returns the service id, or E_EXIST / E_INVAL / E_NOMEM.
 */
export function svcAdd(af: u8, proto: u8, a0: u32, a1: u32, a2: u32, a3: u32, port: u16, mark: u32,
    sched: u8, flags: u32, timeoutMs: u32, netmask: u32, param: u32): i32 {
  if (af != 4 && af != 6) return E_INVAL;
  if (af == 4 && (a1 | a2 | a3) != 0) return E_INVAL;
  if (mark == 0 && !validProto(proto)) return E_INVAL;
  if (mark != 0 && (a0 | a1 | a2 | a3 | <u32>port) != 0) return E_INVAL;
  if (sched >= SCHED_COUNT || (flags & ~SVC_F_USER) != 0) return E_INVAL;
  if (af == 6 && (netmask < 1 || netmask > 128)) return E_INVAL;  // ip_vs_add_service: -EINVAL
  if (timeoutMs > 0x7FFFFFFF) return E_INVAL;
  if (schedStateBytes(sched, param) == 0) return E_INVAL;
  const dup = mark != 0 ? svcLookupFwmark(af, mark) : svcLookupAddr(af, proto, a0, a1, a2, a3, port);
  if (dup != NIL) return E_EXIST;
  if (freeHead == NIL && !svcPoolGrow()) return E_NOMEM;
  const s = freeHead;
  const p = svcAt(s);
  freeHead = load<u32>(p, O_LINK);
  const gen = load<u32>(p, O_GEN) + 1;
  memory.fill(p, 0, SVC_BYTES);
  memory.fill(svcStats + <usize>s * SSTAT_BYTES, 0, SSTAT_BYTES);
  store<u32>(p, a0); store<u32>(p, a1, 4); store<u32>(p, a2, 8); store<u32>(p, a3, 12);
  store<u16>(p, port, O_PORT);
  store<u8>(p, af, O_AF);
  store<u8>(p, mark != 0 ? 0 : proto, O_PROTO);
  store<u32>(p, mark, O_FWMARK);
  store<u32>(p, flags, O_FLAGS);
  store<u32>(p, timeoutMs, O_TIMEOUT);
  store<u32>(p, netmask, O_NETMASK);
  store<u8>(p, ST_LIVE, O_STATE);
  store<u32>(p, NIL, O_FIRST);
  store<u32>(p, NIL, O_HNEXT);
  store<u32>(p, NIL, O_LINK);
  store<u32>(p, gen, O_GEN);
  const r = schedAttach(s, sched, param);
  if (r != E_OK) {
    store<u8>(p, ST_FREE, O_STATE);
    store<u32>(p, freeHead, O_LINK);
    freeHead = s;
    return r;
  }
  hashIn(s);
  svcLive++;
  return <i32>s;
}

/** ip_vs_ctl.c ip_vs_edit_service(): flags, timeout, netmask; a new scheduler (or mh size) re-inits. */
export function svcEdit(s: u32, sched: u8, flags: u32, timeoutMs: u32, netmask: u32, param: u32): i32 {
  if (!svcIsLive(s)) return E_NOENT;
  if (sched >= SCHED_COUNT || (flags & ~SVC_F_USER) != 0 || timeoutMs > 0x7FFFFFFF) return E_INVAL;
  if (svcAf(s) == 6 && (netmask < 1 || netmask > 128)) return E_INVAL;
  if (schedStateBytes(sched, param) == 0) return E_INVAL;
  const p = svcAt(s);
  if (sched != load<u8>(p, O_SCHED) || param != load<u32>(p, O_SPARAM)) {
    schedDetach(s);
    const r = schedAttach(s, sched, param);
    if (r != E_OK) return r;
  }
  store<u32>(p, flags | SVC_F_HASHED, O_FLAGS);
  store<u32>(p, timeoutMs, O_TIMEOUT);
  store<u32>(p, netmask, O_NETMASK);
  return E_OK;
}

function svcFree(s: u32): void {
  const p = svcAt(s);
  store<u8>(p, ST_FREE, O_STATE);
  store<u32>(p, freeHead, O_LINK);
  freeHead = s;
}

/** A destination record stopped referring to service `s` (it was freed or moved). */
export function svcUnref(s: u32): void {
  const p = svcAt(s);
  const ref = load<u32>(p, O_REF) - 1;
  store<u32>(p, ref, O_REF);
  if (ref == 0 && load<u8>(p, O_STATE) == ST_DELETED) svcFree(s);
}

// __ip_vs_unlink_dest() + __ip_vs_del_dest(): off the list (scheduler told when `notify`), then to
// the trash or freed.
function unlinkDest(s: u32, d: u32, notify: bool): void {
  const p = svcAt(s);
  const prev = destPrev(d), next = destNext(d);
  if (prev == NIL) store<u32>(p, next, O_FIRST); else setDestNext(prev, next);
  if (next != NIL) setDestPrev(next, prev);
  store<u32>(p, load<u32>(p, O_NUM) - 1, O_NUM);
  if (notify) {
    schedDestRemoved(load<u8>(p, O_SCHED), svcSchedState(s), load<u32>(p, O_FIRST), load<u32>(p, O_NUM), d, prev);
  }
  if (!destRetire(d)) svcUnref(s);
}

/** ip_vs_ctl.c ip_vs_del_service(): the scheduler goes first, then every destination, unnotified. */
export function svcDelete(s: u32): i32 {
  if (!svcIsLive(s)) return E_NOENT;
  const p = svcAt(s);
  hashOut(s);
  schedDetach(s);
  store<u8>(p, ST_DELETED, O_STATE);
  svcLive--;
  while (load<u32>(p, O_FIRST) != NIL) unlinkDest(s, load<u32>(p, O_FIRST), false);
  // The last destination released may already have freed it (svcUnref); free it only once.
  if (load<u32>(p, O_REF) == 0 && load<u8>(p, O_STATE) == ST_DELETED) svcFree(s);
  return E_OK;
}

/** ip_vs_ctl.c ip_vs_flush(). */
export function svcFlush(): void {
  for (let s: u32 = 0; s < svcMax; s++) if (svcIsLive(s)) svcDelete(s);
}

/** The destination of service `s` at address:port, or NIL (ip_vs_lookup_dest). */
export function svcDestLookup(s: u32, af: u8, a0: u32, a1: u32, a2: u32, a3: u32, port: u16): u32 {
  for (let d = svcFirst(s); d != NIL; d = destNext(d)) {
    if (destSameAddr(d, af, a0, a1, a2, a3, port)) return d;
  }
  return NIL;
}

// The same virtual service by value (ip_vs_trash_get_dest compares vaddr, vport, fwmark, protocol).
function sameKey(s: u32, t: u32): bool {
  const a = svcAt(s), b = svcAt(t);
  return load<u8>(a, O_AF) == load<u8>(b, O_AF) && load<u8>(a, O_PROTO) == load<u8>(b, O_PROTO) &&
    load<u16>(a, O_PORT) == load<u16>(b, O_PORT) && load<u32>(a, O_FWMARK) == load<u32>(b, O_FWMARK) &&
    load<u32>(a) == load<u32>(b) && load<u32>(a, 4) == load<u32>(b, 4) &&
    load<u32>(a, 8) == load<u32>(b, 8) && load<u32>(a, 12) == load<u32>(b, 12);
}

function validFwd(af: u8, svcAfv: u8, fwd: u8): i32 {
  if (fwd != FWD_MASQ && fwd != FWD_LOCAL && fwd != FWD_TUNNEL && fwd != FWD_DROUTE) return E_INVAL;
  // ip_vs_ctl.c: a destination of the other family only behind a tunnel.
  if (af != svcAfv && fwd != FWD_TUNNEL) return E_AFNOSUPPORT;
  return E_OK;
}

/**
 * ip_vs_ctl.c ip_vs_add_dest(): weight 0..65535 (ipvsadm's range), lower ≤ upper threshold unless
 * the upper is 0. Revives an equal trashed destination. Returns the destination id or an error.
 */
/**
 * ip_vs_ctl.c ip_vs_new_dest(): a new real server must be a unicast (or local) address — IPv4 not
 * in 0.0.0.0/8, not 255.255.255.255, not multicast (inet_addr_type RTN_BROADCAST / RTN_MULTICAST);
 * IPv6 not ::, not an IPv4-mapped address, not multicast, not link-local (ipv6_addr_type). Words
 * are raw (network order in memory, as Tuple keeps them). A local subnet's broadcast address,
 * which the kernel's FIB also calls RTN_BROADCAST, is not known here and passes.
 */
function unicastDest(af: u8, a0: u32, a1: u32, a2: u32, a3: u32): bool {
  if (af == 4) {
    const a = bswap<u32>(a0);
    return (a >>> 24) != 0 && a != 0xFFFFFFFF && (a >>> 28) != 0xE;
  }
  const w0 = bswap<u32>(a0);
  if ((w0 >>> 24) == 0xFF || (w0 >>> 22) == (0xFE80 >>> 6)) return false;
  if (a0 == 0 && a1 == 0 && (a2 == 0 ? a3 == 0 : bswap<u32>(a2) == 0xFFFF)) return false;
  return true;
}

export function svcDestAdd(s: u32, af: u8, a0: u32, a1: u32, a2: u32, a3: u32, port: u16, fwd: u8,
    weight: i32, uth: u32, lth: u32, tun: u32): i32 {
  if (!svcIsLive(s)) return E_NOENT;
  if (af != 4 && af != 6) return E_INVAL;
  if (af == 4 && (a1 | a2 | a3) != 0) return E_INVAL;
  if (weight < 0 || weight > 65535) return E_INVAL;
  if (lth > uth) return E_INVAL;   // -ERANGE in the kernel, with no upper threshold too
  const fr = validFwd(af, svcAf(s), fwd);
  if (fr != E_OK) return fr;
  if (svcDestLookup(s, af, a0, a1, a2, a3, port) != NIL) return E_EXIST;
  let d = NIL;
  for (let t = destTrashFirst(); t != NIL; t = destTrashNext(t)) {
    if (destSameAddr(t, af, a0, a1, a2, a3, port) && sameKey(destSvc(t), s)) { d = t; break; }
  }
  const p = svcAt(s);
  if (d != NIL) {
    destRevive(d);
    const old = destSvc(d);
    if (old != s) {
      destZeroStats(d);
      setDestSvc(d, s);
      store<u32>(p, load<u32>(p, O_REF) + 1, O_REF);
      svcUnref(old);
    }
    destSetFwd(d, fwd, tun);
  } else {
    if (!unicastDest(af, a0, a1, a2, a3)) return E_INVAL;
    d = destAlloc();
    if (d == NIL) return E_NOMEM;
    destSet(d, af, a0, a1, a2, a3, port, fwd, tun);
    setDestSvc(d, s);
    store<u32>(p, load<u32>(p, O_REF) + 1, O_REF);
  }
  destUpdate(d, weight, uth, lth, true);
  // list_add_rcu(&dest->n_list, &svc->destinations): at the head.
  const first = load<u32>(p, O_FIRST);
  setDestNext(d, first);
  setDestPrev(d, NIL);
  if (first != NIL) setDestPrev(first, d);
  store<u32>(p, d, O_FIRST);
  store<u32>(p, load<u32>(p, O_NUM) + 1, O_NUM);
  schedDestAdded(load<u8>(p, O_SCHED), svcSchedState(s), load<u32>(p, O_FIRST), load<u32>(p, O_NUM));
  return <i32>d;
}

/** ip_vs_ctl.c ip_vs_edit_dest(). */
export function svcDestEdit(s: u32, d: u32, fwd: u8, weight: i32, uth: u32, lth: u32, tun: u32): i32 {
  if (!svcIsLive(s)) return E_NOENT;
  if (!destIsUsed(d) || destSvc(d) != s || (destFlags(d) & D_TRASH) != 0) return E_NOENT;
  if (weight < 0 || weight > 65535) return E_INVAL;
  if (lth > uth) return E_INVAL;
  const fr = validFwd(destAf(d), svcAf(s), fwd);
  if (fr != E_OK) return fr;
  destSetFwd(d, fwd, tun);
  destUpdate(d, weight, uth, lth, false);
  schedDestUpdated(svcSched(s), svcSchedState(s), svcFirst(s), svcNumDests(s));
  return E_OK;
}

/** ip_vs_ctl.c ip_vs_del_dest(). */
export function svcDestDelete(s: u32, d: u32): i32 {
  if (!svcIsLive(s)) return E_NOENT;
  if (!destIsUsed(d) || destSvc(d) != s || (destFlags(d) & D_TRASH) != 0) return E_NOENT;
  unlinkDest(s, d, true);
  return E_OK;
}

/** Next live service id ≥ `from`, or NIL (listing order). */
export function svcNextLive(from: u32): u32 {
  for (let s = from; s < svcMax; s++) if (load<u8>(svcAt(s), O_STATE) == ST_LIVE) return s;
  return NIL;
}

export function svcZeroStats(s: u32): void {
  memory.fill(svcStats + <usize>s * SSTAT_BYTES, 0, SSTAT_BYTES);
}
