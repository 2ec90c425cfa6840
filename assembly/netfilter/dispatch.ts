// netfilter/dispatch.ts — the O(1) dispatch of KUBE-SERVICES-style chains. Inside a chain, a run of
// at least DISPATCH_MIN_RUN consecutive rules whose only matches are one exact protocol (TCP, UDP or
// SCTP), one exact destination port and at most one exact destination address (/32 or /128), none
// inverted, becomes a segment; every such rule is filed in one hash table under the key
// (segment, protocol, destination or none, port). A packet probes the two keys it can match —
// with its destination and without — and takes the lowest rule index at or after its position
// from the two sorted lists, which is exactly the rule the linear walk would stop at: every other
// rule of the segment has a key the packet cannot match. Rules outside segments stay linear.
// Built once per chain at stage time; the probe allocates nothing. Never evaluates other matches
// and never changes first-match order.
//
// Cost per packet at tens of thousands of services is cache misses, so a slot is one cache line
// holding what the walk needs next: the first rule of its list and that rule's target (a short op
// copied whole, a long one by its offset). A packet whose rule is the first of its key (every
// kube-proxy service rule) then touches one slot and goes straight to the target, without the
// list, the rule record or the op stream; a chain whose keys all name a destination is probed
// once.
import { Flow, PROTO_TCP, PROTO_UDP, PROTO_SCTP, FRAG_LATER } from "../flow";
import { Chain, ruleAt, opAt, SEG_REC } from "./chain";
import { opKind, opFlags, opWords, M_PROTO, M_DPORT, M_DST, T_JUMP, T_GOTO } from "./format";
import { replaceBlock } from "../alloc";

export const DISPATCH_MIN_RUN: u32 = 4;
export const DISPATCH_NONE: u32 = 0xFFFFFFFF;

// Hash slot (64 bytes, one cache line): u32 seg (EMPTY when free), u16 port, u8 proto, u8 hasDst,
// 4 × u32 dst, u32 list start, u32 list length, u32 first rule of the list, u32 how its target is
// held (TGT_*), then u32 × 2: the target op's words (TGT_COPY) or its word offset (TGT_OPS).
const SLOT: usize = 64;
const SLOT_LOG2: usize = 6;
const EMPTY: u32 = 0xFFFFFFFF;
const S_FIRST: usize = 32;
const S_TGT: usize = 36;
const S_OP: usize = 40;
const TGT_NONE: u32 = 0;   // the rule has no target
const TGT_COPY: u32 = 1;   // an op of at most two words, copied at S_OP
const TGT_OPS: u32 = 2;    // a longer op: its word offset in the chain's ops at S_OP

// The target op of the rule dispatchNext returned (0: the rule has none). Points into the slot or
// the chain's ops; valid until the next dispatchNext.
export let dispatchOp: usize = 0;

// The key of the rule last tested by indexable().
let kProto: u32 = 0;
let kPort: u32 = 0;
let kHasDst: u32 = 0;
let k0: u32 = 0, k1: u32 = 0, k2: u32 = 0, k3: u32 = 0;

// Can rule `r` be filed in the index? Leaves its key in k*.
function indexable(c: Chain, r: u32): bool {
  const rec = ruleAt(c, r);
  let at = load<u32>(rec);
  const to = load<u32>(rec, 4);
  let proto = false, port = false, dst = false;
  kHasDst = 0; k0 = 0; k1 = 0; k2 = 0; k3 = 0;
  while (at < to) {
    const p = opAt(c, at);
    const h = load<u32>(p);
    if (opFlags(h) != 0) return false;
    const kind = opKind(h);
    if (kind == M_PROTO && !proto) {
      kProto = load<u32>(p, 4);
      if (kProto != PROTO_TCP && kProto != PROTO_UDP && kProto != PROTO_SCTP) return false;
      proto = true;
    } else if (kind == M_DPORT && !port) {
      const w = load<u32>(p, 4);
      if ((w & 0xFFFF) != (w >>> 16)) return false;
      kPort = w & 0xFFFF;
      port = true;
    } else if (kind == M_DST && !dst) {
      const full = c.family == 4 ? load<u32>(p, 20) == 0xFFFFFFFF
        : (load<u32>(p, 20) & load<u32>(p, 24) & load<u32>(p, 28) & load<u32>(p, 32)) == 0xFFFFFFFF;
      if (!full) return false;
      kHasDst = 1;
      k0 = load<u32>(p, 4); k1 = load<u32>(p, 8); k2 = load<u32>(p, 12); k3 = load<u32>(p, 16);
      dst = true;
    } else {
      return false;
    }
    at += opWords(h);
  }
  return proto && port;
}

@inline function mix(h: u32, w: u32): u32 {
  h = (h ^ w) * 0x85EBCA6B;
  return h ^ (h >>> 13);
}

@inline function hashKey(seg: u32, proto: u32, port: u32, hasDst: u32, a0: u32, a1: u32, a2: u32, a3: u32): u32 {
  let h = mix(seg * 0x9E3779B1, proto | (port << 8) | (hasDst << 24));
  h = mix(mix(mix(mix(h, a0), a1), a2), a3);
  h ^= h >>> 16;
  h *= 0xC2B2AE35;
  return h ^ (h >>> 16);
}

@inline function slotMatches(s: usize, seg: u32, proto: u32, port: u32, hasDst: u32, a0: u32, a1: u32, a2: u32, a3: u32): bool {
  return load<u32>(s) == seg && <u32>load<u16>(s, 4) == port && <u32>load<u8>(s, 6) == proto &&
    <u32>load<u8>(s, 7) == hasDst && load<u32>(s, 8) == a0 && load<u32>(s, 12) == a1 &&
    load<u32>(s, 16) == a2 && load<u32>(s, 20) == a3;
}

// The slot holding the key, or the free slot where it belongs, probing from slot `i`.
function findFrom(c: Chain, i: u32, seg: u32, proto: u32, port: u32, hasDst: u32, a0: u32, a1: u32, a2: u32, a3: u32): usize {
  while (true) {
    const s = c.index + (<usize>i << SLOT_LOG2);
    if (load<u32>(s) == EMPTY || slotMatches(s, seg, proto, port, hasDst, a0, a1, a2, a3)) return s;
    i = (i + 1) & c.indexMask;
  }
  return 0;
}

@inline function find(c: Chain, seg: u32, proto: u32, port: u32, hasDst: u32, a0: u32, a1: u32, a2: u32, a3: u32): usize {
  return findFrom(c, hashKey(seg, proto, port, hasDst, a0, a1, a2, a3) & c.indexMask, seg, proto, port, hasDst, a0, a1, a2, a3);
}

// One indexed rule while the index is built: rule, segment, proto | port << 8 | hasDst << 24,
// the destination's four words, its home slot.
const REC_WORDS: u32 = 8;

// Build scratch kept from one build to the next (tens of thousands of small chains are built in a
// restore, most with nothing to index): the records, then the slot counts, then the filing order.
let work: usize = 0;
let workBytes: usize = 0;

function workFor(bytes: usize): usize {
  if (bytes > workBytes) {
    const size = bytes + (bytes >> 2);
    work = replaceBlock(work, size);   // the size only once the block is there
    workBytes = size;
  }
  return work;
}

// Finds the segments of `c` and builds its index. Chains without a segment get none.
//
// Every indexed rule's key is read once (pass 1) and the rules are filed in the order of their
// home slots (a stable counting sort), so filing 20,000 rules walks the 4 MB table front to back
// instead of missing the cache once per rule; a key's rules still arrive in rule order, so its
// first rule is filed first.
export function dispatchBuild(c: Chain): void {
  const n = c.nRules;
  // Pass 1: segments (runs of indexable rules) and the key of each rule in one.
  // Room for the records, the counts of at most max(8, 4n) slots (size < 4 × indexed rules) and the order.
  const recBytes = <usize>n * REC_WORDS << 2;
  const recs = workFor(recBytes + ((<usize>max<u32>(8, n << 2) + 1) << 2) + (<usize>n << 2));
  let nSegs: u32 = 0, nIndexed: u32 = 0, run: u32 = 0;
  for (let r: u32 = 0; r <= n; r++) {
    if (r < n && indexable(c, r)) {
      const p = recs + (<usize>(nIndexed + run) * REC_WORDS << 2);
      store<u32>(p, r);
      store<u32>(p, nSegs, 4);
      store<u32>(p, kProto | (kPort << 8) | (kHasDst << 24), 8);
      store<u32>(p, k0, 12); store<u32>(p, k1, 16); store<u32>(p, k2, 20); store<u32>(p, k3, 24);
      run++;
      continue;
    }
    if (run >= DISPATCH_MIN_RUN) { nSegs++; nIndexed += run; }
    run = 0;
  }
  if (nSegs == 0) return;
  c.segs = heap.alloc(<usize>nSegs * SEG_REC);
  c.nSegs = nSegs;
  let size: u32 = 8;
  while (size < nIndexed * 2) size <<= 1;
  c.indexMem = heap.alloc((<usize>size << SLOT_LOG2) + SLOT);
  c.index = (c.indexMem + SLOT - 1) & ~(SLOT - 1);
  memory.fill(c.index, 0xFF, <usize>size << SLOT_LOG2);
  c.indexMask = size - 1;
  c.indexNoDst = 0;
  c.lists = heap.alloc(<usize>nIndexed << 2);

  // Segment bounds, each rule's segment in its record, home slots and their counts.
  const counts = recs + recBytes;
  memory.fill(counts, 0, <usize>(size + 1) << 2);
  let seg: u32 = 0xFFFFFFFF;
  for (let i: u32 = 0; i < nIndexed; i++) {
    const p = recs + (<usize>i * REC_WORDS << 2);
    const r = load<u32>(p), s = load<u32>(p, 4), k = load<u32>(p, 8);
    if (s != seg) {
      seg = s;
      store<u32>(c.segs + <usize>s * SEG_REC, r);
    }
    store<u32>(c.segs + <usize>s * SEG_REC, r + 1, 4);
    store<u32>(ruleAt(c, r), s + 1, 12);
    const home = hashKey(s, k & 0xFF, (k >>> 8) & 0xFFFF, k >>> 24, load<u32>(p, 12), load<u32>(p, 16), load<u32>(p, 20), load<u32>(p, 24)) & c.indexMask;
    store<u32>(p, home, 28);
    const q = counts + (<usize>(home + 1) << 2);
    store<u32>(q, load<u32>(q) + 1);
  }
  for (let h: u32 = 1; h <= size; h++) {
    const q = counts + (<usize>h << 2);
    store<u32>(q, load<u32>(q) + load<u32>(q - 4));
  }
  const order = counts + (<usize>(size + 1) << 2);
  for (let i: u32 = 0; i < nIndexed; i++) {
    const q = counts + (<usize>load<u32>(recs + (<usize>i * REC_WORDS << 2), 28) << 2);
    const at = load<u32>(q);
    store<u32>(order + (<usize>at << 2), i);
    store<u32>(q, at + 1);
  }

  // Pass 2: file the rules by home slot; each rule's slot goes back into its record (slots never move).
  for (let j: u32 = 0; j < nIndexed; j++) {
    const i = load<u32>(order + (<usize>j << 2));
    const p = recs + (<usize>i * REC_WORDS << 2);
    const q = load<u32>(p), s = load<u32>(p, 4), k = load<u32>(p, 8);
    const proto = k & 0xFF, port = (k >>> 8) & 0xFFFF, hasDst = k >>> 24;
    const a0 = load<u32>(p, 12), a1 = load<u32>(p, 16), a2 = load<u32>(p, 20), a3 = load<u32>(p, 24);
    const slot = findFrom(c, load<u32>(p, 28), s, proto, port, hasDst, a0, a1, a2, a3);
    if (load<u32>(slot) == EMPTY) {
      store<u32>(slot, s);
      store<u16>(slot, <u16>port, 4);
      store<u8>(slot, <u8>proto, 6);
      store<u8>(slot, <u8>hasDst, 7);
      store<u32>(slot, a0, 8); store<u32>(slot, a1, 12); store<u32>(slot, a2, 16); store<u32>(slot, a3, 20);
      store<u32>(slot, 0, 28);
      holdTarget(c, slot, q);
      if (hasDst == 0) c.indexNoDst++;
    }
    store<u32>(slot, load<u32>(slot, 28) + 1, 28);
    store<u32>(p, <u32>(slot - c.index), 28);
  }
  // Pass 3: list starts by prefix sum, then the rule indices in rule order (so lists are sorted).
  let at: u32 = 0;
  for (let i: u32 = 0; i < size; i++) {
    const slot = c.index + (<usize>i << SLOT_LOG2);
    if (load<u32>(slot) == EMPTY) continue;
    store<u32>(slot, at, 24);
    at += load<u32>(slot, 28);
    store<u32>(slot, 0, 28);
  }
  for (let i: u32 = 0; i < nIndexed; i++) {
    const p = recs + (<usize>i * REC_WORDS << 2);
    const slot = c.index + <usize>load<u32>(p, 28);
    const len = load<u32>(slot, 28);
    store<u32>(c.lists + (<usize>(load<u32>(slot, 24) + len) << 2), load<u32>(p));
    store<u32>(slot, len + 1, 28);
  }
}

@inline export function segEnd(c: Chain, seg: u32): u32 {
  return load<u32>(c.segs + <usize>seg * SEG_REC, 4);
}

// Files rule `r` (the first of its key) in `slot`: its index and its target.
function holdTarget(c: Chain, slot: usize, r: u32): void {
  store<u32>(slot, r, S_FIRST);
  const rec = ruleAt(c, r);
  const to = load<u32>(rec, 4);
  if (to == load<u32>(rec, 8)) {
    store<u32>(slot, TGT_NONE, S_TGT);
    return;
  }
  const p = opAt(c, to);
  const words = opWords(load<u32>(p));
  if (words <= 2) {
    store<u32>(slot, TGT_COPY, S_TGT);
    store<u32>(slot + S_OP, load<u32>(p));
    store<u32>(slot + S_OP, words == 2 ? load<u32>(p, 4) : 0, 4);
  } else {
    store<u32>(slot, TGT_OPS, S_TGT);
    store<u32>(slot + S_OP, to);
  }
}

// The target op of rule `r`, found through the rule record (0: none).
function targetOf(c: Chain, r: u32): usize {
  const rec = ruleAt(c, r);
  const to = load<u32>(rec, 4);
  return to == load<u32>(rec, 8) ? 0 : opAt(c, to);
}

// The target op of the slot's first rule (0: none).
@inline function slotTarget(c: Chain, slot: usize): usize {
  const how = load<u32>(slot, S_TGT);
  if (how == TGT_COPY) return slot + S_OP;
  return how == TGT_NONE ? 0 : opAt(c, load<u32>(slot, S_OP));
}

// The slot a probe for (seg, proto, port, destination) looks at first (the batch look-ahead loads
// it ahead of the packet, lookahead.ts). Reads nothing.
export function dispatchHome(c: Chain, seg: u32, proto: u32, port: u32, a0: u32, a1: u32, a2: u32, a3: u32): usize {
  return c.index + (<usize>(hashKey(seg, proto, port, 1, a0, a1, a2, a3) & c.indexMask) << SLOT_LOG2);
}

// The chain a slot's first rule jumps or goes to, when the slot holds segment `seg` and that
// rule's target is a JUMP or GOTO; DISPATCH_NONE otherwise.
export function dispatchJumpOf(slot: usize, seg: u32): u32 {
  if (load<u32>(slot) != seg || load<u32>(slot, S_TGT) != TGT_COPY) return DISPATCH_NONE;
  const kind = opKind(load<u32>(slot, S_OP));
  return kind == T_JUMP || kind == T_GOTO ? load<u32>(slot, S_OP + 4) : DISPATCH_NONE;
}

// The first rule of the slot's list (the slot must hold a key).
export function dispatchFirstOf(slot: usize): u32 {
  return load<u32>(slot, S_FIRST);
}

// The first rule index ≥ pos in the slot's list, or DISPATCH_NONE.
function firstFrom(c: Chain, slot: usize, pos: u32): u32 {
  if (load<u32>(slot) == EMPTY) return DISPATCH_NONE;
  const first = load<u32>(slot, S_FIRST);
  if (first >= pos) return first;
  const base = c.lists + (<usize>load<u32>(slot, 24) << 2);
  let lo: u32 = 0, hi = load<u32>(slot, 28);
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (load<u32>(base + (<usize>mid << 2)) < pos) lo = mid + 1; else hi = mid;
  }
  return lo < load<u32>(slot, 28) ? load<u32>(base + (<usize>lo << 2)) : DISPATCH_NONE;
}

// The first rule at or after `pos` in segment `seg` that the packet matches, or the segment's
// end when none does. Every rule in [pos, result) is one the packet does not match.
// dispatchOp is set to that rule's target.
export function dispatchNext(c: Chain, seg: u32, pos: u32, f: Flow): u32 {
  const end = segEnd(c, seg);
  const proto = <u32>f.proto;
  if (f.frag == FRAG_LATER || (proto != PROTO_TCP && proto != PROTO_UDP && proto != PROTO_SCTP)) return end;
  const port = <u32>f.dport;
  const sa = find(c, seg, proto, port, 1, f.d0, f.d1, f.d2, f.d3);
  let m = firstFrom(c, sa, pos);
  let slot = sa;
  if (c.indexNoDst != 0) {
    const sb = find(c, seg, proto, port, 0, 0, 0, 0, 0);
    const b = firstFrom(c, sb, pos);
    if (b < m) { m = b; slot = sb; }
  }
  if (m >= end) return end;
  dispatchOp = m == load<u32>(slot, S_FIRST) ? slotTarget(c, slot) : targetOf(c, m);
  return m;
}
