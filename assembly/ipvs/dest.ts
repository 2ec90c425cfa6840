// ipvs/dest.ts — real servers (destinations): a pool of records sized at ipvsInit, their
// counters, and the kernel's connection accounting on them — ip_vs_conn.c ip_vs_bind_dest() /
// ip_vs_unbind_dest() (activeconns, inactconns, persistconns and the IP_VS_DEST_F_OVERLOAD flag driven
// by the upper/lower thresholds) — plus the "trash": a destination removed from its service lives on
// while connections still point at it (ip_vs_ctl.c __ip_vs_del_dest → dest_trash) and is revived
// when the same address:port is added back (ip_vs_trash_get_dest). The pool doubles when every
// record is taken (ids stay; up to DEST_LIMIT), so a cluster may outgrow its first sync. Never
// schedules, never reads packets; allocates only in destPoolInit and when the pool grows (a
// control call adding a destination).
//
// Record layout (80 bytes):
//    0 u32×4 address (Tuple words)    16 u16 port (host order)   18 u8 family   19 u8 forwarding method
//   20 i32 weight   24 i32 last_weight (latest non-zero weight, for mh)
//   28 u32 upper threshold   32 u32 lower threshold   36 u32 flags (DEST_F_* | D_USED | D_TRASH)
//   40 u32 activeconns   44 u32 inactconns   48 u32 persistconns   52 u32 refcnt (entries bound)
//   56 u32 service id   60 u32 next   64 u32 prev (the service's list)   68 u32 free/trash link
//   72 u32 tunnel: type | flags << 8 | port << 16 (defs.ts TUN_*)   76 u32 generation (bumped on
//   every reuse of the slot)
// Counter block (128 bytes, parallel array): see STAT_* below.
import { NIL, DEST_F_AVAILABLE, DEST_F_OVERLOAD, CF_INACTIVE, CF_TEMPLATE } from "./defs";
import { memoryFits, regrow } from "../alloc";

export const DEST_BYTES: usize = 80;
/** The most destination records the pool holds (ipvsInit's bound on its first size too). */
export const DEST_LIMIT: u32 = 1 << 22;
export const DSTAT_BYTES: usize = 128;

const O_PORT: usize = 16;
const O_AF: usize = 18;
const O_FWD: usize = 19;
const O_WEIGHT: usize = 20;
const O_LASTW: usize = 24;
const O_UTH: usize = 28;
const O_LTH: usize = 32;
const O_FLAGS: usize = 36;
const O_ACTIVE: usize = 40;
const O_INACT: usize = 44;
const O_PERSIST: usize = 48;
const O_REF: usize = 52;
const O_SVC: usize = 56;
const O_NEXT: usize = 60;
const O_PREV: usize = 64;
const O_LINK: usize = 68;
const O_TUN: usize = 72;
const O_GEN: usize = 76;

// Internal flag bits beside DEST_F_*.
export const D_USED: u32 = 0x100;
export const D_TRASH: u32 = 0x200;

// Counter block: five totals (ip_vs_kstats) then the estimator's last values and smoothed rates.
export const STAT_CONNS: u32 = 0;
export const STAT_INPKTS: u32 = 1;
export const STAT_OUTPKTS: u32 = 2;
export const STAT_INBYTES: u32 = 3;
export const STAT_OUTBYTES: u32 = 4;
export const STAT_LAST: u32 = 5;   // + 0..4
export const STAT_RATE: u32 = 10;  // + 0..4 (cps, inpps, outpps scaled 2^10; inbps, outbps 2^5)

export let destPool: usize = 0;
export let destStats: usize = 0;
export let destMax: u32 = 0;
export let destUsed: u32 = 0;
let freeHead: u32 = NIL;
let trashHead: u32 = NIL;

export function destPoolInit(max: u32): void {
  destMax = max;
  destPool = heap.alloc(<usize>max * DEST_BYTES);
  destStats = heap.alloc(<usize>max * DSTAT_BYTES);
  memory.fill(destPool, 0, <usize>max * DEST_BYTES);
  memory.fill(destStats, 0, <usize>max * DSTAT_BYTES);
  freeHead = NIL;
  for (let i = max; i > 0; i--) {
    store<u32>(destPool + <usize>(i - 1) * DEST_BYTES, freeHead, O_LINK);
    freeHead = i - 1;
  }
  trashHead = NIL;
  destUsed = 0;
}

// @ts-ignore: decorator
@inline export function destAt(d: u32): usize { return destPool + <usize>d * DEST_BYTES; }
// @ts-ignore: decorator
@inline export function destStat(d: u32, i: u32): usize { return destStats + <usize>d * DSTAT_BYTES + (<usize>i << 3); }

// @ts-ignore: decorator
@inline export function destPort(d: u32): u16 { return load<u16>(destAt(d), O_PORT); }
// @ts-ignore: decorator
@inline export function destAf(d: u32): u8 { return load<u8>(destAt(d), O_AF); }
// @ts-ignore: decorator
@inline export function destFwd(d: u32): u8 { return load<u8>(destAt(d), O_FWD); }
// @ts-ignore: decorator
@inline export function destWeight(d: u32): i32 { return load<i32>(destAt(d), O_WEIGHT); }
// @ts-ignore: decorator
@inline export function destLastWeight(d: u32): i32 { return load<i32>(destAt(d), O_LASTW); }
// @ts-ignore: decorator
@inline export function destUpper(d: u32): u32 { return load<u32>(destAt(d), O_UTH); }
// @ts-ignore: decorator
@inline export function destLower(d: u32): u32 { return load<u32>(destAt(d), O_LTH); }
// @ts-ignore: decorator
@inline export function destFlags(d: u32): u32 { return load<u32>(destAt(d), O_FLAGS); }
// @ts-ignore: decorator
@inline export function destActive(d: u32): u32 { return load<u32>(destAt(d), O_ACTIVE); }
// @ts-ignore: decorator
@inline export function destInact(d: u32): u32 { return load<u32>(destAt(d), O_INACT); }
// @ts-ignore: decorator
@inline export function destPersist(d: u32): u32 { return load<u32>(destAt(d), O_PERSIST); }
// @ts-ignore: decorator
@inline export function destRef(d: u32): u32 { return load<u32>(destAt(d), O_REF); }
// @ts-ignore: decorator
@inline export function destSvc(d: u32): u32 { return load<u32>(destAt(d), O_SVC); }
// @ts-ignore: decorator
@inline export function destNext(d: u32): u32 { return load<u32>(destAt(d), O_NEXT); }
// @ts-ignore: decorator
@inline export function destPrev(d: u32): u32 { return load<u32>(destAt(d), O_PREV); }
// @ts-ignore: decorator
@inline export function destGen(d: u32): u32 { return load<u32>(destAt(d), O_GEN); }
// @ts-ignore: decorator
@inline export function destTun(d: u32): u32 { return load<u32>(destAt(d), O_TUN); }
// @ts-ignore: decorator
@inline export function destTunType(d: u32): u32 { return load<u32>(destAt(d), O_TUN) & 0xFF; }
/** ipvsadm --tun-type/--tun-port/--tun-*csum of a tunnel destination (control path). */
export function destSetTun(d: u32, tun: u32): void { store<u32>(destAt(d), tun, O_TUN); }

// @ts-ignore: decorator
@inline export function setDestNext(d: u32, v: u32): void { store<u32>(destAt(d), v, O_NEXT); }
// @ts-ignore: decorator
@inline export function setDestPrev(d: u32, v: u32): void { store<u32>(destAt(d), v, O_PREV); }
// @ts-ignore: decorator
@inline export function setDestFlags(d: u32, v: u32): void { store<u32>(destAt(d), v, O_FLAGS); }
// @ts-ignore: decorator
@inline export function setDestSvc(d: u32, v: u32): void { store<u32>(destAt(d), v, O_SVC); }

// ip_vs.h ip_vs_dest_conn_overhead(): (activeconns << 8) + totalconns, as the kernel's int —
// 257 per active connection, 1 per inactive one, since "ipvs: add totalconns for dest" (stable
// 6.12.104 and later kernels; before it, (activeconns << 8) + inactconns).
// @ts-ignore: decorator
@inline export function destOverhead(d: u32): i32 {
  const p = destAt(d);
  return <i32>((load<u32>(p, O_ACTIVE) << 8) + totalConns(p));
}

// Usable for new connections by the weight/overload test every scheduler applies.
// @ts-ignore: decorator
@inline export function destOverloaded(d: u32): bool { return (destFlags(d) & DEST_F_OVERLOAD) != 0; }
// @ts-ignore: decorator
@inline export function destAvailable(d: u32): bool { return (destFlags(d) & DEST_F_AVAILABLE) != 0; }

// ip_vs_conn.c ip_vs_dest_totalconns(): persistent templates do not count.
// @ts-ignore: decorator
@inline function totalConns(p: usize): u32 { return load<u32>(p, O_ACTIVE) + load<u32>(p, O_INACT); }

/** Doubles the pool (to DEST_LIMIT at most), the new records free; false when it is at its limit. */
function destPoolGrow(): bool {
  if (destMax >= DEST_LIMIT) return false;
  const max = min(destMax << 1, DEST_LIMIT);
  if (!memoryFits(<u64>max * (DEST_BYTES + DSTAT_BYTES))) return false;
  destPool = regrow(destPool, <usize>destMax * DEST_BYTES, <usize>max * DEST_BYTES);
  destStats = regrow(destStats, <usize>destMax * DSTAT_BYTES, <usize>max * DSTAT_BYTES);
  for (let i = max; i > destMax; i--) {
    store<u32>(destAt(i - 1), freeHead, O_LINK);
    freeHead = i - 1;
  }
  destMax = max;
  return true;
}

/** Takes a free record (zeroed but for its generation), growing the pool when it is full. NIL at DEST_LIMIT. */
export function destAlloc(): u32 {
  if (freeHead == NIL && !destPoolGrow()) return NIL;
  const d = freeHead;
  const p = destAt(d);
  freeHead = load<u32>(p, O_LINK);
  const gen = load<u32>(p, O_GEN) + 1;
  memory.fill(p, 0, DEST_BYTES);
  memory.fill(destStats + <usize>d * DSTAT_BYTES, 0, DSTAT_BYTES);
  store<u32>(p, gen, O_GEN);
  store<u32>(p, D_USED, O_FLAGS);
  store<u32>(p, NIL, O_NEXT);
  store<u32>(p, NIL, O_PREV);
  store<u32>(p, NIL, O_LINK);
  destUsed++;
  return d;
}

function destRelease(d: u32): void {
  const p = destAt(d);
  store<u32>(p, 0, O_FLAGS);
  store<u32>(p, freeHead, O_LINK);
  freeHead = d;
  destUsed--;
}

/** Writes the user-settable part: address, port, family, method, weight and thresholds. */
export function destSet(d: u32, af: u8, a0: u32, a1: u32, a2: u32, a3: u32, port: u16, fwd: u8, tun: u32): void {
  const p = destAt(d);
  store<u32>(p, a0); store<u32>(p, a1, 4); store<u32>(p, a2, 8); store<u32>(p, a3, 12);
  store<u16>(p, port, O_PORT);
  store<u8>(p, af, O_AF);
  store<u8>(p, fwd, O_FWD);
  store<u32>(p, tun, O_TUN);
}

export function destSameAddr(d: u32, af: u8, a0: u32, a1: u32, a2: u32, a3: u32, port: u16): bool {
  const p = destAt(d);
  return load<u8>(p, O_AF) == af && load<u16>(p, O_PORT) == port && load<u32>(p) == a0 &&
    load<u32>(p, 4) == a1 && load<u32>(p, 8) == a2 && load<u32>(p, 12) == a3;
}

/**
 * ip_vs_ctl.c __ip_vs_update_dest(): weight (last_weight keeps the latest non-zero one), AVAILABLE,
 * and thresholds. When they change, OVERLOAD is worked out again from the connections at once
 * (__ip_vs_dest_update_overload(dest, 0), "ipvs: properly update the overload flag on dest edit"):
 * set at or over the upper threshold, kept between the lower (default 3/4 of the upper, rounded
 * up: u - (u >> 2)) and the upper, cleared below the lower or with no upper threshold.
 */
export function destUpdate(d: u32, weight: i32, uth: u32, lth: u32, add: bool): void {
  const p = destAt(d);
  if (add || weight != 0) store<i32>(p, weight, O_LASTW);
  store<i32>(p, weight, O_WEIGHT);
  let flags = load<u32>(p, O_FLAGS) | DEST_F_AVAILABLE;
  if (uth != load<u32>(p, O_UTH) || lth != load<u32>(p, O_LTH)) {
    const total = totalConns(p);
    const low = lth != 0 ? lth : uth - (uth >> 2);
    if (uth != 0 && total >= uth) flags |= DEST_F_OVERLOAD;
    else if (uth == 0 || total < low) flags &= ~DEST_F_OVERLOAD;
  }
  store<u32>(p, flags, O_FLAGS);
  store<u32>(p, uth, O_UTH);
  store<u32>(p, lth, O_LTH);
}

export function destSetFwd(d: u32, fwd: u8, tun: u32): void {
  store<u8>(destAt(d), fwd, O_FWD);
  store<u32>(destAt(d), tun, O_TUN);
}

/**
 * ip_vs_conn.c ip_vs_bind_dest(): a new entry counts against its destination — templates in
 * persistconns, connections (born IP_VS_CONN_F_INACTIVE) in inactconns — and an upper threshold
 * reached sets OVERLOAD.
 */
export function destBind(d: u32, connFlags: u16): void {
  const p = destAt(d);
  if ((connFlags & CF_TEMPLATE) != 0) store<u32>(p, load<u32>(p, O_PERSIST) + 1, O_PERSIST);
  else if ((connFlags & CF_INACTIVE) != 0) store<u32>(p, load<u32>(p, O_INACT) + 1, O_INACT);
  else store<u32>(p, load<u32>(p, O_ACTIVE) + 1, O_ACTIVE);
  store<u32>(p, load<u32>(p, O_REF) + 1, O_REF);
  const u = load<u32>(p, O_UTH);
  if (u != 0 && totalConns(p) >= u) store<u32>(p, load<u32>(p, O_FLAGS) | DEST_F_OVERLOAD, O_FLAGS);
}

/**
 * ip_vs_conn.c ip_vs_unbind_dest(): the entry's count goes, then OVERLOAD clears below the lower
 * threshold — or, with no lower threshold, below 3/4 of the upper one (totalconns * 4 < u * 3) —
 * or at once when there is no upper threshold. A trashed destination nobody refers to is freed.
 * Returns true when the record was freed.
 */
export function destUnbind(d: u32, connFlags: u16): bool {
  const p = destAt(d);
  if ((connFlags & CF_TEMPLATE) != 0) store<u32>(p, load<u32>(p, O_PERSIST) - 1, O_PERSIST);
  else if ((connFlags & CF_INACTIVE) != 0) store<u32>(p, load<u32>(p, O_INACT) - 1, O_INACT);
  else store<u32>(p, load<u32>(p, O_ACTIVE) - 1, O_ACTIVE);
  let flags = load<u32>(p, O_FLAGS);
  const l = load<u32>(p, O_LTH), u = load<u32>(p, O_UTH);
  const total = totalConns(p);
  if (l != 0) {
    if (total < l) flags &= ~DEST_F_OVERLOAD;
  } else if (u != 0) {
    if (<u64>total * 4 < <u64>u * 3) flags &= ~DEST_F_OVERLOAD;
  } else {
    flags &= ~DEST_F_OVERLOAD;
  }
  store<u32>(p, flags, O_FLAGS);
  const ref = load<u32>(p, O_REF) - 1;
  store<u32>(p, ref, O_REF);
  if (ref == 0 && (flags & D_TRASH) != 0) {
    trashRemove(d);
    destRelease(d);
    return true;
  }
  return false;
}

// TCP state changes move a connection between the active and inactive counts
// (ip_vs_proto_tcp.c set_tcp_state()).
export function destMoveActive(d: u32, toActive: bool): void {
  const p = destAt(d);
  if (toActive) {
    store<u32>(p, load<u32>(p, O_ACTIVE) + 1, O_ACTIVE);
    store<u32>(p, load<u32>(p, O_INACT) - 1, O_INACT);
  } else {
    store<u32>(p, load<u32>(p, O_ACTIVE) - 1, O_ACTIVE);
    store<u32>(p, load<u32>(p, O_INACT) + 1, O_INACT);
  }
}

/**
 * The destination leaves its service (__ip_vs_unlink_dest clears AVAILABLE). With entries still
 * bound it goes to the trash; otherwise it is freed. Returns true when it went to the trash.
 */
export function destRetire(d: u32): bool {
  const p = destAt(d);
  const flags = load<u32>(p, O_FLAGS) & ~DEST_F_AVAILABLE;
  if (load<u32>(p, O_REF) == 0) {
    destRelease(d);
    return false;
  }
  store<u32>(p, flags | D_TRASH, O_FLAGS);
  store<u32>(p, NIL, O_NEXT);
  store<u32>(p, NIL, O_PREV);
  store<u32>(p, trashHead, O_LINK);
  trashHead = d;
  return true;
}

function trashRemove(d: u32): void {
  let prev = NIL, cur = trashHead;
  while (cur != NIL) {
    const next = load<u32>(destAt(cur), O_LINK);
    if (cur == d) {
      if (prev == NIL) trashHead = next; else store<u32>(destAt(prev), next, O_LINK);
      store<u32>(destAt(d), NIL, O_LINK);
      return;
    }
    prev = cur;
    cur = next;
  }
}

/** Takes a destination back out of the trash (ip_vs_trash_get_dest): AVAILABLE is set by destUpdate. */
export function destRevive(d: u32): void {
  trashRemove(d);
  store<u32>(destAt(d), load<u32>(destAt(d), O_FLAGS) & ~D_TRASH, O_FLAGS);
}

/** First trashed destination at, in order, or NIL. Walk with destTrashNext. */
export function destTrashFirst(): u32 { return trashHead; }
export function destTrashNext(d: u32): u32 { return load<u32>(destAt(d), O_LINK); }

export function destZeroStats(d: u32): void {
  // ip_vs_ctl.c ip_vs_zero_stats(): counters and rates from zero (the estimator's last values too).
  memory.fill(destStats + <usize>d * DSTAT_BYTES, 0, DSTAT_BYTES);
}

// @ts-ignore: decorator
@inline export function destIsUsed(d: u32): bool { return d < destMax && (destFlags(d) & D_USED) != 0; }
