// netfilter/lookahead.ts — batch look-ahead for the rule engine. At tens of thousands of Services
// a new connection's cost is cache misses, one after another: its conntrack bucket, the
// KUBE-SERVICES dispatch slot, the KUBE-SVC-* chain the slot jumps to, the KUBE-SEP-* chains that
// one jumps to. Each depends on the one before, so one packet can have only one of them in flight.
// So the batch is taken in groups of GROUP packets, and before group g runs, one step of that
// chain is taken for each packet of five groups ahead, a step further for each group nearer:
//   g+6: parse its IPv4 header; load its conntrack bucket;
//   g+5: load the connection entry that bucket names;
//   g+4: unless that entry is the packet's own connection (its rule walk then dispatches
//        nothing), load its home slot in the dispatch index of the chain the last packet's walk
//        dispatched in first (the hint);
//   g+3: load the counter of the slot's rule and the head of the chain that rule jumps to;
//   g+2: load the rest of that chain and the heads of the chains it jumps to.
// None of those loads depends on another, so the CPU has dozens of misses in flight at once and
// waits for memory about once per group instead of five times per packet; a packet then finds
// its lines in cache. The loaded words are summed in locals and stored once per round: a store
// per load (a chain of store → load forwarding through memory) took CPU window slots that more
// loads can have. The last step runs two groups ahead, not one, so its lines have a whole
// group's walk to arrive in (together, a new connection costs 2–10% less in runs interleaved
// with the previous build, the most at 30,000 Services).
//
// It only reads: no rule, counter, random draw, conntrack entry or verdict changes, and a wrong
// guess (a changed ruleset, a packet of another kind) costs a wasted load, never a different
// result. The hint is a chain id and segment, checked against the live chain before each use, so
// a commit can never leave it pointing at freed memory; a batch reads only what it wrote itself.
// Every address is derived from live tables or checked against the memory size. IPv4 only.
// Never allocates, never traps.
import { ioDesc, ioData, DESC_BYTES, D_OFF, D_LEN, D_CAP, IO_DATA_BYTES } from "../io";
import { Tuple, FAMILY_V4, PROTO_TCP, PROTO_UDP, PROTO_SCTP } from "../flow";
import { ctBucketOf, ctNodeEntry, ctNodeMatches } from "../conntrack/hash";
import { ENTRY_SIZE, NIL } from "../conntrack/entry";
import { Chain, COUNTER_REC, counterAt } from "./chain";
import { liveChain } from "./registry";
import { dispatchHome, dispatchJumpOf, dispatchFirstOf, DISPATCH_NONE } from "./dispatch";

const LINE: usize = 64;
// A chain's head loaded before its size is known: the header and the first lines of its rules,
// ops and counters (a kube-proxy service or endpoint chain holds ~300–400 bytes).
const HEAD_LINES: u32 = 6;
// Lines of one chain loaded once its size is known, at most.
const MAX_LINES: u32 = 16;
// Jump targets of a chain whose heads are loaded, at most (KUBE-MARK-MASQ and the endpoints).
const MAX_JUMPS: u32 = 4;

// The chain a packet's walk dispatched in first, and the segment (0-based). NONE: no hint.
const NONE: u32 = 0xFFFFFFFF;
let hintId: u32 = NONE;
let hintSeg: u32 = 0;
let noted = false;

// Packets per group, and per packet of the look-ahead window (index & (RING - 1)): bucket
// address, dispatch slot, first node of the bucket, chain, then the packet's tuple.
const GROUP: u32 = 8;
const RING: u32 = 64;   // ≥ 7 groups
const R_BUCKET: usize = 0;   // u64 with R_SLOT: cleared together
const R_SLOT: usize = 4;
const R_NODE: usize = 8;     // u64 with R_CHAIN: set together
const R_CHAIN: usize = 12;
const R_TUPLE: usize = 16;
const R_BYTES: usize = 64;
const ring: usize = heap.alloc(<usize>RING * R_BYTES);
// Loaded values are added here, so the loads are kept (a store is never optimized away).
const sink: usize = heap.alloc(8);
store<u32>(sink, 0);

// Loads the lines of [p, end), at most `lines` of them, within memory; returns their first words'
// sum (the caller adds it to what it keeps, so the loads stay).
@inline function touchRange(p: usize, end: usize, lines: u32): u32 {
  const top = <usize>memory.size() << 16;
  if (end > top) end = top;
  const stop = p + <usize>lines * LINE;
  if (end > stop) end = stop;
  let acc: u32 = 0;
  for (let q = p & ~(LINE - 1); q < end; q += LINE) acc += load<u32>(q);
  return acc;
}

@inline function slotOf(j: u32): usize {
  return ring + <usize>(j & (RING - 1)) * R_BYTES;
}

/** The walk's first dispatch of the current packet (walk.ts): chain `id`, segment `seg`. */
// @ts-ignore: decorator
@inline export function lookaheadNote(id: u32, seg: u32): void {
  if (noted) return;
  noted = true;
  hintId = id;
  hintSeg = seg;
}

// The hint's chain when it is live and still has that segment (0: none).
function hintChain(): Chain | null {
  if (hintId == NONE) return null;
  const p = liveChain(hintId);
  if (p == 0) return null;
  const c = changetype<Chain>(p);
  return c.index != 0 && hintSeg < c.nSegs ? c : null;
}

// Step 1 for packet j: its tuple from the IPv4 header (TCP, UDP or SCTP, first fragment or
// none) and its conntrack bucket.
function stepParse(j: u32): u32 {
  const r = slotOf(j);
  store<u64>(r + R_BUCKET, 0);
  store<u64>(r + R_NODE, <u64>NIL);
  const d = ioDesc + <usize>j * DESC_BYTES;
  const off = load<u32>(d, D_OFF), len = load<u32>(d, D_LEN), cap = load<u32>(d, D_CAP);
  if (<u64>off + <u64>cap > <u64>IO_DATA_BYTES || len > cap || len < 24) return 0;
  const ip = ioData + off;
  const vihl = load<u8>(ip);
  if ((vihl >> 4) != 4) return 0;
  const ihl = (<u32>vihl & 15) << 2;
  const proto = load<u8>(ip, 9);
  if (ihl < 20 || ihl + 4 > len || (load<u16>(ip, 6) & 0xFF1F) != 0) return 0;   // fragment offset
  if (proto != PROTO_TCP && proto != PROTO_UDP && proto != PROTO_SCTP) return 0;
  const t = changetype<Tuple>(r + R_TUPLE);
  t.family = FAMILY_V4; t.proto = proto; t.icmpType = 0; t.pad = 0;
  t.sport = bswap<u16>(load<u16>(ip + ihl));
  t.dport = bswap<u16>(load<u16>(ip + ihl, 2));
  t.s0 = load<u32>(ip, 12); t.d0 = load<u32>(ip, 16);
  t.s1 = 0; t.s2 = 0; t.s3 = 0; t.d1 = 0; t.d2 = 0; t.d3 = 0;
  const b = ctBucketOf(t);
  if (b == 0) return 0;
  store<u32>(r + R_BUCKET, b);
  return load<u32>(b);
}

// Step 2 for packet j: the entry its bucket names first.
function stepEntry(j: u32): u32 {
  const r = slotOf(j);
  const b = load<u32>(r + R_BUCKET);
  if (b == 0) return 0;
  const n = load<u32>(b);
  store<u32>(r + R_NODE, n);
  const e = ctNodeEntry(n);
  return e != 0 ? load<u32>(e) + load<u32>(e + ENTRY_SIZE - 4) : 0;
}

// Step 3 for packet j: its dispatch slot, unless the packet belongs to the connection its
// bucket names first.
function stepSlot(j: u32, c: Chain | null): u32 {
  const r = slotOf(j);
  if (c == null || load<u32>(r + R_BUCKET) == 0) return 0;
  const t = changetype<Tuple>(r + R_TUPLE);
  if (ctNodeMatches(load<u32>(r + R_NODE), t)) return 0;
  const s = dispatchHome(c, hintSeg, t.proto, t.dport, t.d0, 0, 0, 0);
  store<u32>(r + R_SLOT, s);
  return load<u32>(s);
}

// Step 4 for packet j: the counter of its slot's rule (in the dispatching chain `c`), and the
// head of the chain that rule jumps to.
function stepHead(j: u32, c: Chain | null): u32 {
  const r = slotOf(j);
  const s = load<u32>(r + R_SLOT);
  if (s == 0 || c == null) return 0;
  const id = dispatchJumpOf(s, hintSeg);
  if (id == DISPATCH_NONE) return 0;
  const first = dispatchFirstOf(s);
  let acc: u32 = first < c.nRules ? load<u32>(counterAt(c, first)) : 0;
  const p = liveChain(id);
  if (p == 0) return acc;
  store<u32>(r + R_CHAIN, p);
  return acc + touchRange(p, p + <usize>HEAD_LINES * LINE, HEAD_LINES);
}

// Step 5 for packet j: the whole chain, and the heads of the chains it jumps to.
function stepChain(j: u32): u32 {
  const p = load<u32>(slotOf(j) + R_CHAIN);
  if (p == 0) return 0;
  const c = changetype<Chain>(p);
  let acc = touchRange(p, c.counters + <usize>(c.nRules + 1) * COUNTER_REC, MAX_LINES);
  const n = c.nJumps < MAX_JUMPS ? c.nJumps : MAX_JUMPS;
  acc += touchRange(c.jumps, c.jumps + (<usize>n << 3), 1);
  for (let k: u32 = 0; k < n; k++) {
    const q = liveChain(load<u32>(c.jumps + (<usize>k << 3)));
    if (q != 0) acc += touchRange(q, q + <usize>HEAD_LINES * LINE, HEAD_LINES);
  }
  return acc;
}

// The packets [from, from + GROUP) that lie in the batch, as a range [lo, hi).
@inline function lo(from: i32): u32 { return from < 0 ? 0 : <u32>from; }
@inline function hi(from: i32, count: u32): u32 {
  const e = from + <i32>GROUP;
  return e < 0 ? 0 : (<u32>e < count ? <u32>e : count);
}

// One round, before the group starting at packet `i` (any of the groups may lie outside the batch).
function round(i: i32, count: u32, c: Chain | null): void {
  const g = <i32>GROUP;
  let acc: u32 = 0;
  for (let j = lo(i + 6 * g), e = hi(i + 6 * g, count); j < e; j++) acc += stepParse(j);
  for (let j = lo(i + 5 * g), e = hi(i + 5 * g, count); j < e; j++) acc += stepEntry(j);
  for (let j = lo(i + 4 * g), e = hi(i + 4 * g, count); j < e; j++) acc += stepSlot(j, c);
  for (let j = lo(i + 3 * g), e = hi(i + 3 * g, count); j < e; j++) acc += stepHead(j, c);
  for (let j = lo(i + 2 * g), e = hi(i + 2 * g, count); j < e; j++) acc += stepChain(j);
  store<u32>(sink, load<u32>(sink) + acc);
}

/**
 * Before packet `i` of a batch of `count` runs: at the start of each group, loads ahead for the
 * second to sixth groups after it (at i = 0, for the first groups too). Then forgets the walk's first
 * dispatch of the packet before.
 */
export function lookahead(i: u32, count: u32): void {
  if (i % GROUP == 0) {
    const c = hintChain();
    if (i == 0) for (let k: i32 = -6; k < 0; k++) round(k * <i32>GROUP, count, c);
    round(<i32>i, count, c);
  }
  noted = false;
}
