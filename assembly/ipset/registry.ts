// ipset/registry.ts — sets by id, and staged replacement. The live table maps each id to its set;
// packets read only that (setOf). Between txnBegin() and txnCommit() every operation works on a
// staged view: the first change to a set makes a private copy, create/destroy/swap/rename move
// pointers in the staged table, and nothing a packet can see changes until commit installs the whole
// staged table at once and frees what no id holds any more; abort frees the copies instead. Outside
// a transaction operations apply to the live sets directly, one at a time.
//
// Swap follows ip_set_core.c ip_set_swap(): the two ids exchange their sets (so rules naming an id
// now see the other set's contents); only sets of the same type and family swap. Rename moves the set
// to the new id (the host keeps the name → id map; rules follow the name). Reference checks (a set
// in use cannot be destroyed or renamed) are the host's, which knows the rules.
//
// Memory: id tables grow (to a power of two above the highest id) on control calls only.
import { IPSET_MAX_SETS, E_NO_SET, E_SET_EXISTS, E_TYPE_MISMATCH, E_ARG, E_ID, E_TXN } from "./format";
import { IpSet, setNew, setFree, setClone, setFlush, setAdd, setDel, setTest, setGet, setReap } from "./set";

let cap: u32 = 0;
let live: usize = 0;       // usize per id
let staged: usize = 0;     // usize per id, meaningful where touched
let touched: usize = 0;    // u8 per id
let touchList: usize = 0;  // u32 ids touched in the open transaction
let nTouched: u32 = 0;
let priv: usize = 0;       // sets made by the open transaction (copies and creates)
let privCap: u32 = 0;
let nPriv: u32 = 0;
let txn = false;
let serial: u32 = 0;
let reapCursor: u32 = 0;

@inline function slot(tab: usize, id: u32): usize { return tab + (<usize>id << alignof<usize>()); }

function grown(old: usize, oldBytes: usize, bytes: usize): usize {
  const p = heap.alloc(bytes);
  memory.fill(p, 0, bytes);
  if (old != 0) {
    memory.copy(p, old, oldBytes);
    heap.free(old);
  }
  return p;
}

// Makes the id tables cover `id`. False when it is out of range.
function cover(id: u32): bool {
  if (id >= IPSET_MAX_SETS) return false;
  if (id < cap) return true;
  let n: u32 = cap == 0 ? 64 : cap;
  while (n <= id) n <<= 1;
  const w = <usize>sizeof<usize>();
  live = grown(live, <usize>cap * w, <usize>n * w);
  staged = grown(staged, <usize>cap * w, <usize>n * w);
  touched = grown(touched, <usize>cap, <usize>n);
  touchList = grown(touchList, <usize>cap << 2, <usize>n << 2);
  cap = n;
  return true;
}

// The live set of `id` (the packet path), or null.
@inline export function setOf(id: u32): IpSet | null {
  return id < cap ? changetype<IpSet | null>(load<usize>(slot(live, id))) : null;
}

function isTouched(id: u32): bool { return load<u8>(touched + id) != 0; }

// What operations see: the staged set in a transaction, else the live one.
function view(id: u32): IpSet | null {
  if (id >= cap) return null;
  return changetype<IpSet | null>(load<usize>(slot(txn && isTouched(id) ? staged : live, id)));
}

function touch(id: u32): void {
  if (isTouched(id)) return;
  store<u8>(touched + id, 1);
  store<usize>(slot(staged, id), load<usize>(slot(live, id)));
  store<u32>(touchList + (<usize>nTouched << 2), id);
  nTouched++;
}

function privPush(s: IpSet): void {
  if (nPriv == privCap) {
    const n = privCap == 0 ? 16 : privCap << 1;
    const w = <usize>sizeof<usize>();
    priv = grown(priv, <usize>privCap * w, <usize>n * w);
    privCap = n;
  }
  store<usize>(slot(priv, nPriv), changetype<usize>(s));
  nPriv++;
}

function install(id: u32, s: IpSet | null): void {
  if (txn) {
    touch(id);
    store<usize>(slot(staged, id), changetype<usize>(s));
  } else {
    store<usize>(slot(live, id), changetype<usize>(s));
  }
}

// The set of `id` as something this operation may change: in a transaction, a private copy.
function mutable(id: u32): IpSet | null {
  const s = view(id);
  if (s == null || !txn || s.gen == serial) return s;
  const c = setClone(s);
  c.gen = serial;
  privPush(c);
  install(id, c);
  return c;
}

export function regCreate(id: u32, type: u8, family: u8, flags: u32, maxelem: u32, timeout: u32, seed: u32, first: u32, last: u32): i32 {
  if (!cover(id)) return -E_ID;
  if (view(id) != null) return -E_SET_EXISTS;
  const s = setNew(type, family, flags, maxelem, timeout, seed, first, last);
  if (s == null) return -E_ARG;
  if (txn) {
    s.gen = serial;
    privPush(s);
  }
  install(id, s);
  return 0;
}

export function regDestroy(id: u32): i32 {
  const s = view(id);
  if (s == null) return -E_NO_SET;
  install(id, null);
  if (!txn) setFree(s);
  return 0;
}

export function regFlush(id: u32): i32 {
  const s = mutable(id);
  if (s == null) return -E_NO_SET;
  setFlush(s);
  return 0;
}

export function regAdd(id: u32, e: usize, exist: bool, now: u32): i32 {
  const s = mutable(id);
  return s == null ? -E_NO_SET : setAdd(s, e, exist, now);
}

export function regDel(id: u32, e: usize, exist: bool, now: u32): i32 {
  const s = mutable(id);
  return s == null ? -E_NO_SET : setDel(s, e, exist, now);
}

export function regTest(id: u32, e: usize, now: u32): i32 {
  const s = view(id);
  return s == null ? -E_NO_SET : setTest(s, e, now);
}

export function regGet(id: u32, e: usize, now: u32): i32 {
  const s = view(id);
  return s == null ? -E_NO_SET : setGet(s, e, now);
}

export function regSwap(a: u32, b: u32): i32 {
  const sa = view(a), sb = view(b);
  if (sa == null || sb == null) return -E_NO_SET;
  if (sa.type != sb.type || sa.family != sb.family) return -E_TYPE_MISMATCH;
  install(a, sb);
  install(b, sa);
  return 0;
}

export function regRename(from: u32, to: u32): i32 {
  if (!cover(to)) return -E_ID;
  const s = view(from);
  if (s == null) return -E_NO_SET;
  if (view(to) != null) return -E_SET_EXISTS;
  install(to, s);
  install(from, null);
  return 0;
}

export function txnBegin(): i32 {
  if (txn) return -E_TXN;
  txn = true;
  serial++;
  nTouched = 0;
  nPriv = 0;
  return 0;
}

function txnEnd(): void {
  for (let i: u32 = 0; i < nTouched; i++) store<u8>(touched + load<u32>(touchList + (<usize>i << 2)), 0);
  nTouched = 0;
  nPriv = 0;
  txn = false;
}

// Installs every staged change at once; frees the sets no id holds any more.
export function txnCommit(): i32 {
  if (!txn) return -E_TXN;
  for (let i: u32 = 0; i < nTouched; i++) {
    const s = changetype<IpSet | null>(load<usize>(slot(staged, load<u32>(touchList + (<usize>i << 2)))));
    if (s != null) s.mark = serial;
  }
  for (let i: u32 = 0; i < nTouched; i++) {
    const id = load<u32>(touchList + (<usize>i << 2));
    const old = changetype<IpSet | null>(load<usize>(slot(live, id)));
    if (old != null && old.mark != serial && old.gen != serial) {
      old.mark = serial;
      setFree(old);
    }
    store<usize>(slot(live, id), load<usize>(slot(staged, id)));
  }
  for (let i: u32 = 0; i < nPriv; i++) {
    const p = changetype<IpSet>(load<usize>(slot(priv, i)));
    if (p.mark != serial) setFree(p);
  }
  txnEnd();
  return 0;
}

// Drops every staged change; the live sets are as they were before txnBegin().
export function txnAbort(): i32 {
  if (!txn) return -E_TXN;
  for (let i: u32 = 0; i < nPriv; i++) setFree(changetype<IpSet>(load<usize>(slot(priv, i))));
  txnEnd();
  return 0;
}

export function txnOpen(): bool { return txn; }

// Reaps expired elements from up to `budget` live sets, round robin. Nothing while a transaction
// is open. Returns the elements removed.
export function regReap(now: u32, budget: u32): u32 {
  if (txn || cap == 0) return 0;
  let n: u32 = 0;
  for (let k: u32 = 0; k < budget && k < cap; k++) {
    reapCursor = (reapCursor + 1) & (cap - 1);
    const s = setOf(reapCursor);
    if (s != null) n += setReap(s, now);
  }
  return n;
}
