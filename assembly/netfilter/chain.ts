// netfilter/chain.ts — one chain as the core keeps it, and how it gets there: a chain blob
// (format.ts) from untrusted memory is checked whole — every rule and op — before anything is
// allocated, so a bad blob costs nothing and changes nothing; then the core's copy is built: the
// rule records and op stream, per-rule counters, the state slots of stateful matches (statistic
// nth, limit), the list of chains it jumps to and of recent tables it names (reference counts at
// commit, registry.ts), and the dispatch index (dispatch.ts). Control time only: the packet path
// reads these fields and never allocates. Never looks at other chains (jump targets are checked at
// commit) and never traps on any bytes.
//
// Internal rule record (RULE_REC bytes): u32 matchOff, u32 targetOff, u32 endOff (word offsets into
// `ops`, as in the blob) and u32 seg — 0 for a rule walked linearly, s + 1 for a rule inside
// dispatch segment s.
import {
  IPT_MAGIC, IPT_VERSION, HDR_BYTES, RULE_BYTES, BLOB_F_INDEX, TABLE_COUNT, TABLE_RAW, TABLE_NAT,
  TABLE_FILTER, IPT_MAX_RULES, IPT_MAX_CHAINS, IPT_MAX_OPS_PER_RULE, BUILTIN_IDS, OPF_INVERT, OPF_SET_RETURN_NOMATCH,
  OPF_CT_NOCT_PASS, opKind, opFlags, opWords, errCode,
  M_SRC, M_DST, M_PROTO, M_SPORT, M_DPORT, M_IIF, M_OIF, M_ADDRTYPE, M_CTSTATE, M_CT_ADDR, M_CT_PORT,
  M_CT_STATUS, M_CT_PROTO, M_CT_DIR, M_MARK, M_CONNMARK, M_RANDOM, M_NTH, M_LIMIT, M_RECENT,
  M_MULTIPORT, M_SET, M_NFACCT, M_ICMP, M_TCPFLAGS, M_FRAG, M_IPVS, M_PHYSDEV,
  T_FIRST, T_ACCEPT, T_DROP, T_RETURN, T_JUMP, T_GOTO, T_REJECT, T_DNAT, T_SNAT, T_MASQUERADE,
  T_MARK, T_CONNMARK, T_LOG, T_NFLOG, T_NOTRACK, T_REDIRECT,
  AT_LIMIT_IN, AT_LIMIT_OUT, RECENT_CHECK, RECENT_SET, RECENT_UPDATE, RECENT_REMOVE, RECENT_TTL,
  RECENT_REAP, RECENT_DEST, MP_MAX_PORTS, NAT_FLAGS_ALL, NAT_MAP_IPS, NAT_PROTO_SPECIFIED,
  REJECT_TCP_RESET,
  E_MAGIC, E_VERSION, E_LENGTH, E_FAMILY, E_TABLE, E_RULES, E_OP_LENGTH, E_OP_KIND, E_OP_ARG,
  E_INVERT, E_TARGET_TABLE, E_JUMP_BUILTIN, E_TOO_MANY_OPS, E_NO_MEMORY,
} from "./format";
import { RECENT_MAX_TABLES, RECENT_PKT_LIST } from "./recent";
import { NFACCT_MAX, nfacctEnsure } from "./counters";
import { dispatchBuild } from "./dispatch";
import { allocFits, inMemory, memoryFits } from "../alloc";

export const RULE_REC: u32 = 16;
export const COUNTER_REC: u32 = 16;   // u64 packets, u64 bytes
export const STATE_REC: u32 = 16;
export const SEG_REC: u32 = 8;        // u32 start, u32 end (exclusive)

@unmanaged
export class Chain {
  family: u8;
  table: u8;
  flags: u8;
  pad: u8;
  nRules: u32;
  opWords: u32;
  rules: usize;
  ops: usize;
  // (nRules + 1) records: one per rule, then the policy (built-in) or fall-off-the-end counter.
  counters: usize;
  state: usize;
  nState: u32;
  jumps: usize;      // per JUMP/GOTO: u32 chain id, u32 rule | op index << 20
  nJumps: u32;
  recents: usize;    // u32 word offsets of the RECENT ops
  nRecent: u32;
  segs: usize;
  nSegs: u32;
  index: usize;      // dispatch hash slots (dispatch.ts), cache-line aligned inside indexMem
  indexMem: usize;
  indexMask: u32;
  indexNoDst: u32;   // keys without a destination address (0: one probe per packet)
  lists: usize;      // u32 rule indices the slots point into
}

@inline export function ruleAt(c: Chain, i: u32): usize {
  return c.rules + <usize>i * RULE_REC;
}

@inline export function opAt(c: Chain, word: u32): usize {
  return c.ops + (<usize>word << 2);
}

@inline export function counterAt(c: Chain, i: u32): usize {
  return c.counters + <usize>i * COUNTER_REC;
}

@inline export function stateAt(c: Chain, slot: u32): usize {
  return c.state + <usize>slot * STATE_REC;
}

@inline function align16(n: usize): usize {
  return (n + 15) & ~(<usize>15);
}

// A chain with room for everything its validated blob needs; rules and ops still to be copied.
// The header and every array live in one zeroed block, in the order a walk reads them (header,
// rule records, ops, counters): the tens of thousands of small per-service chains a packet visits
// then cost a few adjacent cache lines each instead of six scattered allocations.
export function chainAlloc(family: u8, table: u8, nRules: u32, opWords: u32, nState: u32, nJumps: u32, nRecent: u32): Chain {
  const head = align16(offsetof<Chain>());
  const rulesAt = head;
  const opsAt = rulesAt + align16(<usize>nRules * RULE_REC);
  const countersAt = opsAt + align16(<usize>opWords << 2);
  const stateAt = countersAt + align16(<usize>(nRules + 1) * COUNTER_REC);
  const jumpsAt = stateAt + align16(<usize>nState * STATE_REC);
  const recentsAt = jumpsAt + align16(<usize>nJumps << 3);
  const total = recentsAt + align16(<usize>nRecent << 2);
  const p = heap.alloc(total);
  memory.fill(p, 0, total);
  const c = changetype<Chain>(p);
  c.family = family;
  c.table = table;
  c.nRules = nRules;
  c.opWords = opWords;
  c.rules = p + rulesAt;
  c.ops = p + opsAt;
  c.counters = p + countersAt;
  c.state = p + stateAt;
  c.nState = nState;
  c.jumps = p + jumpsAt;
  c.nJumps = nJumps;
  c.recents = p + recentsAt;
  c.nRecent = nRecent;
  return c;
}

// An empty chain (a built-in chain nobody has staged yet).
export function chainEmpty(family: u8, table: u8): Chain {
  return chainAlloc(family, table, 0, 0, 0, 0, 0);
}

export function chainFree(c: Chain): void {
  if (c.segs != 0) heap.free(c.segs);
  if (c.indexMem != 0) heap.free(c.indexMem);
  if (c.lists != 0) heap.free(c.lists);
  heap.free(changetype<usize>(c));
}



// Results of the last successful validation, read by registry.ts.
export let built: usize = 0;
export let builtFamily: u8 = 0;
export let builtTable: u8 = 0;
// The rule and op of the last error (for iptLastError).
export let errRule: i32 = -1;
export let errOp: u32 = 0;

// Counts gathered by the check pass.
let nState: u32 = 0;
let nJumps: u32 = 0;
let nRecent: u32 = 0;

function fail(kind: u32, rule: i32, op: u32): i32 {
  errRule = rule;
  errOp = op;
  return errCode(kind, rule, op);
}

// Whether the memory can still hold a chain of these counts (chainAlloc's block, generously) and,
// when the blob asks for one, its dispatch index (dispatch.ts: up to four 64-byte slots, a list
// word and build scratch per rule). Checked before anything is allocated: the allocator cannot
// refuse, it traps.
function chainFits(nRules: u32, opWords: u32, nState: u32, nJumps: u32, nRecent: u32, flags: u32): bool {
  const block = <u64>offsetof<Chain>() + 96 + <u64>nRules * RULE_REC + (<u64>opWords << 2) +
    <u64>(nRules + 1) * COUNTER_REC + <u64>nState * STATE_REC + (<u64>nJumps << 3) + (<u64>nRecent << 2);
  const index: u64 = (flags & BLOB_F_INDEX) != 0 ? <u64>nRules * 384 + 4096 : 0;
  return allocFits(block) && memoryFits(block + index);
}

// Arguments of op at `p` (a pointer to its header word): word i.
@inline function arg(p: usize, i: u32): u32 { return load<u32>(p + (<usize>i << 2)); }

// IPv4 addresses keep words 1–3 zero.
@inline function v4Clean(p: usize, first: u32): bool {
  return (arg(p, first + 1) | arg(p, first + 2) | arg(p, first + 3)) == 0;
}

// addr & mask == addr over four words starting at `first`.
@inline function normalized(p: usize, first: u32): bool {
  for (let i: u32 = 0; i < 4; i++) {
    if ((arg(p, first + i) & ~arg(p, first + 4 + i)) != 0) return false;
  }
  return true;
}

@inline function rangeOk(w: u32): bool { return (w & 0xFFFF) <= (w >>> 16); }

// The words an op of `kind` must have (0: variable, checked by the caller).
function wordsOf(kind: u32): u32 {
  switch (kind) {
    case M_SRC: case M_DST: case M_IIF: case M_OIF: case M_RECENT: return 9;
    case M_CT_ADDR: return 10;
    case M_PROTO: case M_SPORT: case M_DPORT: case M_CTSTATE: case M_CT_STATUS: case M_CT_PROTO:
    case M_CT_DIR: case M_RANDOM: case M_NFACCT: case M_TCPFLAGS: return 2;
    case M_ADDRTYPE: case M_CT_PORT: case M_MARK: case M_CONNMARK: case M_ICMP: return 3;
    case M_NTH: case M_LIMIT: case M_SET: return 4;
    case M_FRAG: return 1;
    case M_IPVS: return 11;
    case M_PHYSDEV: return 2;
    case M_MULTIPORT: return 0;
    case T_ACCEPT: case T_DROP: case T_RETURN: case T_LOG: case T_NOTRACK: return 1;
    case T_JUMP: case T_GOTO: case T_REJECT: case T_NFLOG: return 2;
    case T_DNAT: case T_SNAT: return 11;
    case T_MASQUERADE: case T_REDIRECT: case T_MARK: return 3;
    case T_CONNMARK: return 5;
  }
  return 0xFFFFFFFF;
}

function invertible(kind: u32): bool {
  return kind != M_ADDRTYPE && kind != M_LIMIT && kind != M_NFACCT && kind != M_IPVS && kind != M_PHYSDEV && kind < T_FIRST;
}

// Checks the arguments of one match op. Returns 0 or an error kind.
function checkMatch(p: usize, kind: u32, family: u8): u32 {
  const v4 = family == 4;
  switch (kind) {
    case M_SRC: case M_DST:
      if (v4 && (!v4Clean(p, 1) || !v4Clean(p, 5))) return E_OP_ARG;
      return normalized(p, 1) ? 0 : E_OP_ARG;
    case M_CT_ADDR:
      if (arg(p, 1) > 3) return E_OP_ARG;
      if (v4 && (!v4Clean(p, 2) || !v4Clean(p, 6))) return E_OP_ARG;
      return normalized(p, 2) ? 0 : E_OP_ARG;
    case M_PROTO: case M_CT_PROTO:
      return arg(p, 1) <= 255 ? 0 : E_OP_ARG;
    // A reversed range (lo > hi) is kept: the kernel takes `-m udp --sport 500:100` and
    // `--ctorigsrcport 500:100` (no range check in libxt_udp / libxt_conntrack) and never matches.
    case M_SPORT: case M_DPORT:
      return 0;
    case M_CT_PORT:
      return arg(p, 1) <= 3 ? 0 : E_OP_ARG;
    case M_ADDRTYPE: {
      const m = arg(p, 1), f = arg(p, 2);
      if ((m & 0xF000F000) != 0 || f > 15) return E_OP_ARG;
      return (f & AT_LIMIT_IN) != 0 && (f & AT_LIMIT_OUT) != 0 ? E_OP_ARG : 0;
    }
    case M_CTSTATE: return arg(p, 1) <= 127 ? 0 : E_OP_ARG;
    case M_CT_DIR: return arg(p, 1) <= 1 ? 0 : E_OP_ARG;
    case M_RANDOM: return arg(p, 1) <= 0x80000000 ? 0 : E_OP_ARG;
    case M_NTH:
      nState++;
      return arg(p, 2) <= arg(p, 1) && arg(p, 3) == 0 ? 0 : E_OP_ARG;
    case M_LIMIT: {
      // xt_limit limit_mt_check(): burst ≥ 1 and avg × burst must not overflow.
      const avg = arg(p, 1), burst = arg(p, 2);
      if (avg == 0 || burst == 0 || arg(p, 3) != 0) return E_OP_ARG;
      if (<u64>avg * <u64>burst > 0xFFFFFFFF) return E_OP_ARG;
      nState++;
      return 0;
    }
    case M_RECENT: {
      // xt_recent.c recent_mt_check(): exactly one of set/remove/rcheck/update; set and remove take
      // no modifiers; reap needs seconds; hitcount within the per-address list.
      const table = arg(p, 1), f = arg(p, 2), secs = arg(p, 3), hits = arg(p, 4);
      if (table >= RECENT_MAX_TABLES) return E_OP_ARG;
      if ((f & ~(RECENT_CHECK | RECENT_SET | RECENT_UPDATE | RECENT_REMOVE | RECENT_TTL | RECENT_REAP | RECENT_DEST)) != 0) return E_OP_ARG;
      if (popcnt<u32>(f & (RECENT_CHECK | RECENT_SET | RECENT_UPDATE | RECENT_REMOVE)) != 1) return E_OP_ARG;
      if ((f & (RECENT_SET | RECENT_REMOVE)) != 0 && (secs != 0 || hits != 0 || (f & (RECENT_TTL | RECENT_REAP)) != 0)) return E_OP_ARG;
      if ((f & RECENT_REAP) != 0 && secs == 0) return E_OP_ARG;
      if (hits > RECENT_PKT_LIST || secs > 0x7FFFFFFF / 1000) return E_OP_ARG;
      if (v4 && !v4Clean(p, 5)) return E_OP_ARG;
      nRecent++;
      return 0;
    }
    case M_SET: return arg(p, 3) >= 1 && arg(p, 3) <= 6 ? 0 : E_OP_ARG;
    case M_NFACCT: return arg(p, 1) < NFACCT_MAX ? 0 : E_OP_ARG;
    case M_ICMP: {
      const w = arg(p, 1), proto = arg(p, 2);
      if (proto != (v4 ? 1 : 58) || (w >>> 25) != 0) return E_OP_ARG;
      return ((w >> 8) & 0xFF) <= ((w >> 16) & 0xFF) ? 0 : E_OP_ARG;
    }
    case M_TCPFLAGS: return arg(p, 1) <= 0xFFFF ? 0 : E_OP_ARG;
    case M_IPVS: {
      // xt_ipvs.h: bits and inversions within XT_IPVS_MASK; a forwarding method of IP_VS_CONN_F_*.
      const w = arg(p, 1);
      if ((w & 0x80) != 0 || ((w >> 8) & 0xFF & ~(w & 0x7F)) != 0 || (w >>> 24) > 7) return E_OP_ARG;
      return v4 && !v4Clean(p, 3) ? E_OP_ARG : (v4 && !v4Clean(p, 7) ? E_OP_ARG : 0);
    }
    case M_PHYSDEV: return arg(p, 1) <= 1 ? 0 : E_OP_ARG;
    case M_IIF: case M_OIF: case M_MARK: case M_CONNMARK: case M_CT_STATUS: case M_FRAG:
      return 0;
  }
  return E_OP_KIND;
}

// Checks one target op. Returns 0 or an error kind.
function checkTarget(p: usize, kind: u32, family: u8, table: u8): u32 {
  switch (kind) {
    case T_ACCEPT: case T_DROP: case T_RETURN: case T_LOG: case T_NFLOG: case T_MARK: return 0;
    case T_NOTRACK: return table == TABLE_RAW ? 0 : E_TARGET_TABLE;
    case T_JUMP: case T_GOTO: {
      const to = arg(p, 1);
      if (to < BUILTIN_IDS) return E_JUMP_BUILTIN;
      if (to >= IPT_MAX_CHAINS) return E_OP_ARG;
      nJumps++;
      return 0;
    }
    // ipt_REJECT / ip6t_REJECT register for the filter table only.
    case T_REJECT: {
      if (table != TABLE_FILTER) return E_TARGET_TABLE;
      const code = arg(p, 1);
      return code <= 255 || code == REJECT_TCP_RESET ? 0 : E_OP_ARG;
    }
    case T_DNAT: case T_SNAT: {
      if (table != TABLE_NAT) return E_TARGET_TABLE;
      const f = arg(p, 1);
      if ((f & ~NAT_FLAGS_ALL) != 0) return E_OP_ARG;
      if (family == 4 && (!v4Clean(p, 2) || !v4Clean(p, 6))) return E_OP_ARG;
      // An address range may run backwards: neither the tools nor xt_nat's checkentry order it,
      // and nf_nat's address choice wraps around (nat.ts chooseAddr).
      if ((f & NAT_PROTO_SPECIFIED) != 0 && !rangeOk(arg(p, 10))) return E_OP_ARG;
      return 0;
    }
    case T_MASQUERADE: case T_REDIRECT: {
      if (table != TABLE_NAT) return E_TARGET_TABLE;
      const f = arg(p, 1);
      if ((f & ~NAT_FLAGS_ALL) != 0 || (f & NAT_MAP_IPS) != 0) return E_OP_ARG;
      return (f & NAT_PROTO_SPECIFIED) == 0 || rangeOk(arg(p, 2)) ? 0 : E_OP_ARG;
    }
    case T_CONNMARK: {
      // xt_connmark.c connmark_tg_check_v2(): shift direction 0/1, fewer than 32 bits.
      const m = arg(p, 1);
      return (m & 0xFF) <= 2 && ((m >> 8) & 0xFF) <= 1 && (m >>> 16) < 32 ? 0 : E_OP_ARG;
    }
  }
  return E_OP_KIND;
}

// First pass: every rule and op checked, state slots, jumps and recent ops counted.
function check(blob: usize, family: u8, table: u8, n: u32, w: u32): i32 {
  nState = 0; nJumps = 0; nRecent = 0;
  const recs = blob + HDR_BYTES;
  const ops = recs + <usize>n * RULE_BYTES;
  let expect: u32 = 0;
  for (let r: u32 = 0; r < n; r++) {
    const rec = recs + <usize>r * RULE_BYTES;
    const mo = load<u32>(rec), to = load<u32>(rec, 4), eo = load<u32>(rec, 8);
    if (mo != expect || to < mo || eo < to || eo > w) return fail(E_RULES, <i32>r, 0);
    expect = eo;
    let at = mo;
    let i: u32 = 0;
    while (at < eo) {
      if (i >= IPT_MAX_OPS_PER_RULE) return fail(E_TOO_MANY_OPS, <i32>r, 0);
      const p = ops + (<usize>at << 2);
      const h = load<u32>(p);
      const kind = opKind(h), flags = opFlags(h), len = opWords(h);
      const inTarget = at >= to;
      if (len == 0 || at + len > (inTarget ? eo : to)) return fail(E_OP_LENGTH, <i32>r, i);
      if (inTarget ? kind < T_FIRST : kind >= T_FIRST) return fail(E_OP_KIND, <i32>r, i);
      const want = wordsOf(kind);
      if (want == 0xFFFFFFFF) return fail(E_OP_KIND, <i32>r, i);
      if (kind == M_MULTIPORT) {
        if (len < 3) return fail(E_OP_LENGTH, <i32>r, i);
        const mode = arg(p, 1), cnt = arg(p, 2);
        if (mode < 1 || mode > 3 || cnt < 1 || cnt > MP_MAX_PORTS) return fail(E_OP_ARG, <i32>r, i);
        if (len != 3 + cnt) return fail(E_OP_LENGTH, <i32>r, i);
        for (let k: u32 = 0; k < cnt; k++) if (!rangeOk(arg(p, 3 + k))) return fail(E_OP_ARG, <i32>r, i);
      } else if (len != want) {
        return fail(E_OP_LENGTH, <i32>r, i);
      }
      const allowed = OPF_INVERT | (kind >= M_CT_ADDR && kind <= M_CT_DIR ? OPF_CT_NOCT_PASS : 0) | (kind == M_SET ? OPF_SET_RETURN_NOMATCH : 0);
      if ((flags & ~allowed) != 0) return fail(E_OP_ARG, <i32>r, i);
      if ((flags & OPF_INVERT) != 0 && !invertible(kind)) return fail(E_INVERT, <i32>r, i);
      const e = inTarget ? checkTarget(p, kind, family, table) : kind == M_MULTIPORT ? 0 : checkMatch(p, kind, family);
      if (e != 0) return fail(e, <i32>r, i);
      at += len;
      i++;
      // One target at most: it must end the rule.
      if (inTarget && at != eo) return fail(E_OP_LENGTH, <i32>r, i);
    }
  }
  if (expect != w) return fail(E_RULES, n == 0 ? -1 : <i32>(n - 1), 0);
  return 0;
}

// Second pass over the copied ops: state slots handed out and initialised, jump targets and
// recent ops listed.
function wire(c: Chain): void {
  let slot: u32 = 0, j: u32 = 0, rc: u32 = 0;
  for (let r: u32 = 0; r < c.nRules; r++) {
    const rec = ruleAt(c, r);
    let at = load<u32>(rec);
    const eo = load<u32>(rec, 8);
    let i: u32 = 0;
    while (at < eo) {
      const p = opAt(c, at);
      const kind = opKind(load<u32>(p));
      if (kind == M_NTH) {
        // libxt_statistic: the counter starts at every - packet (already folded by the host).
        store<u32>(stateAt(c, slot), arg(p, 2));
        store<u32>(p + 12, slot);
        slot++;
      } else if (kind == M_LIMIT) {
        store<u32>(p + 12, slot);   // state zeroed: primed on first use (match-stat.ts)
        slot++;
      } else if (kind == T_JUMP || kind == T_GOTO) {
        store<u32>(c.jumps + (<usize>j << 3), arg(p, 1));
        store<u32>(c.jumps + (<usize>j << 3), r | (i << 20), 4);
        j++;
      } else if (kind == M_RECENT) {
        store<u32>(c.recents + (<usize>rc << 2), at);
        rc++;
      } else if (kind == M_NFACCT) {
        nfacctEnsure(arg(p, 1));
      }
      at += opWords(load<u32>(p));
      i++;
    }
  }
}

// The header of the last blob read by header(): family, table, flags, rules and op words.
let hFamily: u8 = 0, hTable: u8 = 0;
let hFlags: u32 = 0, hRules: u32 = 0, hWords: u32 = 0;

// Checks a blob's header and that its length is what the header says; 0 or an error code.
function header(blob: usize, len: u32): i32 {
  if (!inMemory(blob, len) || len < HDR_BYTES) return fail(E_LENGTH, -1, 0);
  if (load<u32>(blob) != IPT_MAGIC) return fail(E_MAGIC, -1, 0);
  if (load<u16>(blob, 4) != IPT_VERSION) return fail(E_VERSION, -1, 0);
  hFamily = load<u8>(blob, 6);
  hTable = load<u8>(blob, 7);
  if (hFamily != 4 && hFamily != 6) return fail(E_FAMILY, -1, 0);
  if (<u32>hTable >= TABLE_COUNT) return fail(E_TABLE, -1, 0);
  hFlags = load<u32>(blob, 8);
  hRules = load<u32>(blob, 12);
  hWords = load<u32>(blob, 16);
  if ((hFlags & ~BLOB_F_INDEX) != 0 || (load<u32>(blob, 20) | load<u32>(blob, 24) | load<u32>(blob, 28)) != 0) return fail(E_VERSION, -1, 0);
  if (hRules > IPT_MAX_RULES) return fail(E_RULES, -1, 0);
  if (<u64>HDR_BYTES + <u64>hRules * RULE_BYTES + (<u64>hWords << 2) != <u64>len) return fail(E_LENGTH, -1, 0);
  return 0;
}

// Copies `n` blob rule records from `src` to rules [at, at + n) of `c`, each offset moved by `shift` words.
function copyRecs(c: Chain, at: u32, src: usize, n: u32, stride: usize, shift: u32): void {
  for (let r: u32 = 0; r < n; r++) {
    const from = src + <usize>r * stride;
    const dst = ruleAt(c, at + r);
    store<u32>(dst, load<u32>(from) + shift);
    store<u32>(dst, load<u32>(from, 4) + shift, 4);
    store<u32>(dst, load<u32>(from, 8) + shift, 8);
    store<u32>(dst, 0, 12);
  }
}

// Finishes a chain whose rules and ops are in place: state slots, jumps, recent ops, the index.
function finish(c: Chain, flags: u32): void {
  wire(c);
  if ((flags & BLOB_F_INDEX) != 0) dispatchBuild(c);
  built = changetype<usize>(c);
  builtFamily = c.family;
  builtTable = c.table;
}

// Validates the blob of `len` bytes at `blob` for chain `self` and builds its core copy (left in
// `built`). Returns 0, or a negative error code with nothing allocated.
export function chainFromBlob(blob: usize, len: u32): i32 {
  built = 0;
  errRule = -1;
  errOp = 0;
  let e = header(blob, len);
  if (e != 0) return e;
  const n = hRules, w = hWords;
  e = check(blob, hFamily, hTable, n, w);
  if (e != 0) return e;
  if (!chainFits(n, w, nState, nJumps, nRecent, hFlags)) return fail(E_NO_MEMORY, -1, 0);
  const c = chainAlloc(hFamily, hTable, n, w, nState, nJumps, nRecent);
  const recs = blob + HDR_BYTES;
  copyRecs(c, 0, recs, n, RULE_BYTES, 0);
  memory.copy(c.ops, recs + <usize>n * RULE_BYTES, <usize>w << 2);
  finish(c, hFlags);
  return 0;
}

// Takes the state slots, jumps and recent ops of rules [from, to) of `c` off the check pass's counts.
function countDropped(c: Chain, from: u32, to: u32): void {
  for (let r = from; r < to; r++) {
    const rec = ruleAt(c, r);
    const eo = load<u32>(rec, 8);
    for (let at = load<u32>(rec); at < eo;) {
      const h = load<u32>(opAt(c, at));
      const kind = opKind(h);
      if (kind == M_NTH || kind == M_LIMIT) nState--;
      else if (kind == T_JUMP || kind == T_GOTO) nJumps--;
      else if (kind == M_RECENT) nRecent--;
      at += opWords(h);
    }
  }
}

// A changed version of live chain `base`: its first `head` and last `tail` rules, unchanged (checked
// when they were loaded), around the rules of the blob at `blob`, which is validated like a whole
// chain's. The result is the chain a blob of all three parts would build — counters zero, state
// slots fresh, the index rebuilt — without the host sending or the core checking the kept rules
// again: a 20 000-rule KUBE-SERVICES that gains one service costs one rule's check and a copy.
// Returns 0 (the chain in `built`) or a negative error code (rule numbers count from the chain's
// first rule) with nothing allocated.
export function chainPatch(base: Chain, head: u32, tail: u32, blob: usize, len: u32): i32 {
  built = 0;
  errRule = -1;
  errOp = 0;
  let e = header(blob, len);
  if (e != 0) return e;
  if (hFamily != base.family || hTable != base.table) return fail(E_FAMILY, -1, 0);
  const m = base.nRules;
  if (<u64>head + <u64>tail > <u64>m || <u64>head + <u64>tail + <u64>hRules > <u64>IPT_MAX_RULES) return fail(E_RULES, -1, 0);
  e = check(blob, hFamily, hTable, hRules, hWords);
  if (e != 0) return errRule < 0 ? e : fail(-e & 63, errRule + <i32>head, errOp);
  // The kept rules' counts: the base's totals less its replaced middle (read what changed, not the chain).
  nState += base.nState;
  nJumps += base.nJumps;
  nRecent += base.nRecent;
  countDropped(base, head, m - tail);
  const headWords = head == 0 ? 0 : load<u32>(ruleAt(base, head - 1), 8);
  const tailFrom = tail == 0 ? base.opWords : load<u32>(ruleAt(base, m - tail));
  const tailWords = base.opWords - tailFrom;
  const n = head + hRules + tail, w = headWords + hWords + tailWords;
  if (!chainFits(n, w, nState, nJumps, nRecent, hFlags)) return fail(E_NO_MEMORY, -1, 0);
  const c = chainAlloc(hFamily, hTable, n, w, nState, nJumps, nRecent);
  copyRecs(c, 0, base.rules, head, RULE_REC, 0);
  copyRecs(c, head, blob + HDR_BYTES, hRules, RULE_BYTES, headWords);
  copyRecs(c, head + hRules, ruleAt(base, m - tail), tail, RULE_REC, headWords + hWords - tailFrom);
  memory.copy(c.ops, base.ops, <usize>headWords << 2);
  memory.copy(opAt(c, headWords), blob + HDR_BYTES + <usize>hRules * RULE_BYTES, <usize>hWords << 2);
  memory.copy(opAt(c, headWords + hWords), opAt(base, tailFrom), <usize>tailWords << 2);
  finish(c, hFlags);
  return 0;
}
