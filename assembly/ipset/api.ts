// ipset/api.ts — the ipset part of the core's ABI (re-exported by index.ts): numbers in, numbers
// out, elements through one fixed 64-byte buffer (format.ts layout) the host fills before each
// element call. Control calls only; the packet path is lookup.ts, reached from the iptables `-m set`
// match. Time is the caller's `nowMs` (ms, any epoch, wrapping at 2^32). Never allocates here;
// set storage grows inside registry.ts / set.ts on these calls.
import {
  regCreate, regDestroy, regFlush, regAdd, regDel, regTest, regGet, regSwap, regRename, txnBegin,
  txnCommit, txnAbort, txnOpen, regReap, setOf,
} from "./registry";
import { setLive, setBytes } from "./set";
import { REC_BYTES, E_NO_SET, E_ARG } from "./format";
import { coreNow } from "../clock";

const elem: usize = heap.alloc(REC_BYTES);
memory.fill(elem, 0, REC_BYTES);

// The element buffer.
export function ipsetElem(): usize { return elem; }

// Creates set `id`: type T_*, family 4/6 (0 for bitmap:port), flags CF_*, maxelem, default timeout
// (seconds; needs CF_TIMEOUT), hash seed, bitmap range first..last (ordered). 0 or -E_*.
export function ipsetCreate(id: u32, type: u32, family: u32, flags: u32, maxelem: u32, timeout: u32, seed: u32, first: u32, last: u32): i32 {
  if (type > 255 || family > 255) return -E_ARG;
  return regCreate(id, <u8>type, <u8>family, flags, maxelem, timeout, seed, first, last);
}
export function ipsetDestroy(id: u32): i32 { return regDestroy(id); }
export function ipsetFlush(id: u32): i32 { return regFlush(id); }
export function ipsetSwap(a: u32, b: u32): i32 { return regSwap(a, b); }
export function ipsetRename(from: u32, to: u32): i32 { return regRename(from, to); }

// Element calls read the element buffer. `exist` is ipset's -exist.
export function ipsetAdd(id: u32, exist: u32, nowMs: f64): i32 { return regAdd(id, elem, exist != 0, coreNow(nowMs)); }
export function ipsetDel(id: u32, exist: u32, nowMs: f64): i32 { return regDel(id, elem, exist != 0, coreNow(nowMs)); }
// TEST_ABSENT 0, TEST_PRESENT 1, TEST_NOMATCH 2, or -E_*.
export function ipsetTest(id: u32, nowMs: f64): i32 { return regTest(id, elem, coreNow(nowMs)); }
// Exact lookup that writes the element's flags, expiry and counters back into the buffer.
export function ipsetGet(id: u32, nowMs: f64): i32 { return regGet(id, elem, coreNow(nowMs)); }

// Staged replacement: everything between begin and commit becomes visible at once, or not at all.
export function ipsetBegin(): i32 { return txnBegin(); }
export function ipsetCommit(): i32 { return txnCommit(); }
export function ipsetAbort(): i32 { return txnAbort(); }
export function ipsetInTxn(): u32 { return txnOpen() ? 1 : 0; }

// Live sets only (what packets see).
export function ipsetExists(id: u32): u32 { return setOf(id) != null ? 1 : 0; }
export function ipsetCount(id: u32, nowMs: f64): i32 {
  const s = setOf(id);
  return s == null ? -E_NO_SET : <i32>setLive(s, coreNow(nowMs));
}
export function ipsetBytes(id: u32): i32 {
  const s = setOf(id);
  return s == null ? -E_NO_SET : <i32>setBytes(s);
}
// Removes expired elements from up to `budget` sets; returns how many elements went.
export function ipsetReap(nowMs: f64, budget: u32): u32 { return regReap(coreNow(nowMs), budget); }
