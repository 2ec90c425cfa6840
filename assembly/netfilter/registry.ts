// netfilter/registry.ts — every chain by id, live and staged: staging a chain (chain.ts builds
// its copy aside), staging a deletion or a built-in chain's policy, and the commit that swaps all
// staged changes in at once — or, when any jump would dangle, any deleted chain is still jumped
// to, or a family/table does not agree, changes nothing and discards the stage. Reference counts
// (how many live JUMP/GOTO ops name each chain; how many live RECENT ops name each recent table)
// are adjusted by the staged chains' own lists, so a commit costs what changed, not the table size.
//
// Jump loops are not searched for at commit (that walk would be proportional to everything
// reachable; the host refuses loops a built-in chain reaches, as the kernel does, and accepts the
// rest, never walked); a loop met anyway ends at the walker's depth cap, counted. Memory for chains is taken and given back here, at control time only; the packet
// path reads `liveChain` and nothing else.
import {
  BUILTIN_IDS, IPT_MAX_CHAINS, POLICY_ACCEPT, POLICY_DROP, isBuiltin, builtinFamily, builtinTable,
  errCode, E_CHAIN_ID, E_JUMP_MISSING, E_JUMP_MISMATCH, E_IN_USE, E_BUILTIN_DELETE,
  E_POLICY, E_NO_MEMORY,
} from "./format";
import {
  Chain, chainEmpty, chainFree, opAt, chainFromBlob, chainPatch, built, builtFamily, builtTable, errRule, errOp,
} from "./chain";
import { recentRef, recentUnref, recentExists, recentRoomFor } from "./recent";

// Slot (16 bytes per id): usize live, usize staged, u32 refs, u8 op, u8 policy, u8 staged policy.
const SLOT: usize = 16;
const S_LIVE: usize = 0;
const S_STAGED: usize = 4;
const S_REFS: usize = 8;
const S_OP: usize = 12;
const S_POLICY: usize = 13;
const S_NEWPOLICY: usize = 14;
const S_LISTED: usize = 15;
const OP_NONE: u8 = 0;
const OP_REPLACE: u8 = 1;
const OP_DELETE: u8 = 2;
const NO_POLICY: u8 = 0xFF;

let slots: usize = 0;
let cap: u32 = 0;
// The live chain of each id again, 4 bytes an id apart from the 16-byte slots: the packet path
// reads only this dense array, which stays in cache at tens of thousands of chains.
let lives: usize = 0;
// Ids touched by the stage in progress.
let stagedIds: usize = 0;
let stagedCap: u32 = 0;
let nStaged: u32 = 0;
// The last error, for iptLastError(): i32 code, u32 chain, i32 rule, u32 op, u32 detail (the
// missing or mismatched jump target; the reference count of a chain still in use).
export const lastError: usize = heap.alloc(20);
memory.fill(lastError, 0, 20);

function setError(code: i32, chain: u32, rule: i32, op: u32, detail: u32 = 0): i32 {
  store<i32>(lastError, code);
  store<u32>(lastError, chain, 4);
  store<i32>(lastError, rule, 8);
  store<u32>(lastError, op, 12);
  store<u32>(lastError, detail, 16);
  return code;
}

@inline function slotAt(id: u32): usize {
  return slots + <usize>id * SLOT;
}

// The live chain with id `id`, or null-ish 0 (packet path: one bounds check, one load).
@inline export function liveChain(id: u32): usize {
  return id < cap ? load<usize>(lives + (<usize>id << alignof<usize>())) : 0;
}

function setLive(id: u32, c: usize): void {
  store<usize>(slotAt(id) + S_LIVE, c);
  store<usize>(lives + (<usize>id << alignof<usize>()), c);
}

@inline export function policyOf(id: u32): u32 {
  return <u32>load<u8>(slotAt(id) + S_POLICY);
}

// Grows the slot array to hold `id` (control time).
function ensure(id: u32): void {
  if (id < cap) return;
  let n: u32 = cap == 0 ? 256 : cap;
  while (n <= id) n <<= 1;
  const p = heap.alloc(<usize>n * SLOT);
  memory.fill(p, 0, <usize>n * SLOT);
  const l = heap.alloc(<usize>n << alignof<usize>());
  memory.fill(l, 0, <usize>n << alignof<usize>());
  if (slots != 0) {
    memory.copy(p, slots, <usize>cap * SLOT);
    memory.copy(l, lives, <usize>cap << alignof<usize>());
    heap.free(slots);
    heap.free(lives);
  }
  for (let i = cap; i < n; i++) store<u8>(p + <usize>i * SLOT + S_NEWPOLICY, NO_POLICY);
  slots = p;
  lives = l;
  cap = n;
}

// Built-in chains exist from the start: empty, policy ACCEPT.
export function registryInit(): void {
  if (slots != 0) return;
  ensure(BUILTIN_IDS);
  for (let id: u32 = 0; id < BUILTIN_IDS; id++) {
    if (!isBuiltin(id)) continue;
    const c = chainEmpty(builtinFamily(id), <u8>builtinTable(id));
    setLive(id, changetype<usize>(c));
    store<u8>(slotAt(id) + S_POLICY, <u8>POLICY_ACCEPT);
  }
}

function list(id: u32): void {
  const s = slotAt(id);
  if (load<u8>(s + S_LISTED) != 0) return;
  if (nStaged >= stagedCap) {
    const n: u32 = stagedCap == 0 ? 64 : stagedCap << 1;
    const p = heap.alloc(<usize>n << 2);
    if (stagedIds != 0) {
      memory.copy(p, stagedIds, <usize>stagedCap << 2);
      heap.free(stagedIds);
    }
    stagedIds = p;
    stagedCap = n;
  }
  store<u32>(stagedIds + (<usize>nStaged << 2), id);
  nStaged++;
  store<u8>(s + S_LISTED, 1);
}

function dropStaged(id: u32): void {
  const s = slotAt(id);
  const st = load<usize>(s + S_STAGED);
  if (st != 0) chainFree(changetype<Chain>(st));
  store<usize>(s + S_STAGED, 0);
  store<u8>(s + S_OP, OP_NONE);
}

// Stages the chain blob at `ptr` for id `id`, replacing any earlier stage of the same id.
export function stageChain(id: u32, ptr: usize, len: u32): i32 {
  registryInit();
  if (id >= IPT_MAX_CHAINS || (id < BUILTIN_IDS && !isBuiltin(id))) return setError(errCode(E_CHAIN_ID, -1, 0), id, -1, 0);
  const e = chainFromBlob(ptr, len);
  if (e != 0) return setError(e, id, errRule, errOp);
  const c = changetype<Chain>(built);
  ensure(id);
  const live = liveChain(id);
  // A built-in id fixes family and table; a user chain keeps the ones it was created with.
  const wrongBuiltin = id < BUILTIN_IDS && (builtFamily != builtinFamily(id) || <u32>builtTable != builtinTable(id));
  const changed = live != 0 && (changetype<Chain>(live).family != builtFamily || changetype<Chain>(live).table != builtTable);
  if (wrongBuiltin || changed) {
    chainFree(c);
    return setError(errCode(E_CHAIN_ID, -1, 0), id, -1, 0);
  }
  dropStaged(id);
  store<usize>(slotAt(id) + S_STAGED, changetype<usize>(c));
  store<u8>(slotAt(id) + S_OP, OP_REPLACE);
  list(id);
  return 0;
}

// Stages live chain `id` changed in its middle: its first `head` and last `tail` rules kept around
// the rules of the blob at `ptr` (chain.ts chainPatch). The chain must be live and not yet staged
// in this transaction.
export function stagePatch(id: u32, ptr: usize, len: u32, head: u32, tail: u32): i32 {
  registryInit();
  if (id >= IPT_MAX_CHAINS || (id < BUILTIN_IDS && !isBuiltin(id))) return setError(errCode(E_CHAIN_ID, -1, 0), id, -1, 0);
  ensure(id);
  const live = liveChain(id);
  if (live == 0 || load<u8>(slotAt(id) + S_OP) != OP_NONE) return setError(errCode(E_CHAIN_ID, -1, 0), id, -1, 0);
  const e = chainPatch(changetype<Chain>(live), head, tail, ptr, len);
  if (e != 0) return setError(e, id, errRule, errOp);
  store<usize>(slotAt(id) + S_STAGED, built);
  store<u8>(slotAt(id) + S_OP, OP_REPLACE);
  list(id);
  return 0;
}

// Stages the deletion of chain `id` (a chain staged and deleted in one transaction never exists).
export function stageDelete(id: u32): i32 {
  registryInit();
  if (id < BUILTIN_IDS) return setError(errCode(E_BUILTIN_DELETE, -1, 0), id, -1, 0);
  if (id >= IPT_MAX_CHAINS) return setError(errCode(E_CHAIN_ID, -1, 0), id, -1, 0);
  ensure(id);
  dropStaged(id);
  store<u8>(slotAt(id) + S_OP, OP_DELETE);
  list(id);
  return 0;
}

// Stages a built-in chain's policy (POLICY_ACCEPT or POLICY_DROP).
export function stagePolicy(id: u32, policy: u32): i32 {
  registryInit();
  if (!isBuiltin(id) || policy > POLICY_DROP) return setError(errCode(E_POLICY, -1, 0), id, -1, 0);
  store<u8>(slotAt(id) + S_NEWPOLICY, <u8>policy);
  list(id);
  return 0;
}

// Forgets everything staged.
export function abortStage(): void {
  for (let i: u32 = 0; i < nStaged; i++) {
    const id = load<u32>(stagedIds + (<usize>i << 2));
    dropStaged(id);
    store<u8>(slotAt(id) + S_NEWPOLICY, NO_POLICY);
    store<u8>(slotAt(id) + S_LISTED, 0);
  }
  nStaged = 0;
}

// The chain `id` will be after the commit (0: none).
function after(id: u32): usize {
  if (id >= cap) return 0;
  const s = slotAt(id);
  const op = load<u8>(s + S_OP);
  if (op == OP_REPLACE) return load<usize>(s + S_STAGED);
  if (op == OP_DELETE) return 0;
  return load<usize>(s + S_LIVE);
}

function addRefs(c: Chain, delta: i32): void {
  for (let j: u32 = 0; j < c.nJumps; j++) {
    const to = load<u32>(c.jumps + (<usize>j << 3));
    const s = slotAt(to);
    store<u32>(s + S_REFS, <u32>(<i32>load<u32>(s + S_REFS) + delta));
  }
}

// Applies (+1) or takes back (-1) the reference changes of the whole stage.
function stageRefs(sign: i32): void {
  for (let i: u32 = 0; i < nStaged; i++) {
    const s = slotAt(load<u32>(stagedIds + (<usize>i << 2)));
    const op = load<u8>(s + S_OP);
    if (op == OP_NONE) continue;
    const st = load<usize>(s + S_STAGED), live = load<usize>(s + S_LIVE);
    if (op == OP_REPLACE) addRefs(changetype<Chain>(st), sign);
    if (live != 0) addRefs(changetype<Chain>(live), -sign);
  }
}

// Checks the stage against what the tables will be after it. 0 or an error code.
function checkStage(): i32 {
  for (let i: u32 = 0; i < nStaged; i++) {
    const id = load<u32>(stagedIds + (<usize>i << 2));
    const st = load<usize>(slotAt(id) + S_STAGED);
    if (load<u8>(slotAt(id) + S_OP) != OP_REPLACE) continue;
    const c = changetype<Chain>(st);
    for (let j: u32 = 0; j < c.nJumps; j++) {
      const to = load<u32>(c.jumps + (<usize>j << 3));
      const where = load<u32>(c.jumps + (<usize>j << 3), 4);
      const rule = <i32>(where & 0xFFFFF), op = where >>> 20;
      const t = after(to);
      if (t == 0) return setError(errCode(E_JUMP_MISSING, rule, op), id, rule, op, to);
      if (changetype<Chain>(t).family != c.family || changetype<Chain>(t).table != c.table) {
        return setError(errCode(E_JUMP_MISMATCH, rule, op), id, rule, op, to);
      }
    }
  }
  // The recent tables the swap will create (a table named twice counted twice): the memory must
  // hold them now, as nothing after this check may fail.
  let newTables: u32 = 0, last: u32 = 0;
  for (let i: u32 = 0; i < nStaged; i++) {
    const id = load<u32>(stagedIds + (<usize>i << 2));
    if (load<u8>(slotAt(id) + S_OP) != OP_REPLACE) continue;
    const c = changetype<Chain>(load<usize>(slotAt(id) + S_STAGED));
    for (let k: u32 = 0; k < c.nRecent; k++) {
      if (!recentExists(load<u32>(opAt(c, load<u32>(c.recents + (<usize>k << 2))), 4))) { newTables++; last = id; }
    }
  }
  if (!recentRoomFor(newTables)) return setError(errCode(E_NO_MEMORY, -1, 0), last, -1, 0);
  return 0;
}

// Recent-table references of a chain: +1 or -1 per RECENT op.
function recentRefs(c: Chain, add: bool): void {
  for (let k: u32 = 0; k < c.nRecent; k++) {
    const p = opAt(c, load<u32>(c.recents + (<usize>k << 2)));
    if (add) recentRef(load<u32>(p, 4), p + 20);
    else recentUnref(load<u32>(p, 4));
  }
}

// Swaps every staged change in. Returns 0, or an error code with the live tables untouched and the
// stage discarded.
export function commitStage(): i32 {
  registryInit();
  let e = checkStage();
  if (e == 0) {
    stageRefs(1);
    for (let i: u32 = 0; i < nStaged && e == 0; i++) {
      const id = load<u32>(stagedIds + (<usize>i << 2));
      const s = slotAt(id);
      if (load<u8>(s + S_OP) == OP_DELETE && load<usize>(s + S_LIVE) != 0 && load<u32>(s + S_REFS) != 0) {
        e = setError(errCode(E_IN_USE, -1, 0), id, -1, 0, load<u32>(s + S_REFS));
      }
    }
    if (e != 0) stageRefs(-1);
  }
  if (e != 0) {
    abortStage();
    return e;
  }
  // Nothing can fail from here on. New recent references first, so a table named by both the old
  // and the new version of a chain survives the swap.
  for (let i: u32 = 0; i < nStaged; i++) {
    const s = slotAt(load<u32>(stagedIds + (<usize>i << 2)));
    if (load<u8>(s + S_OP) == OP_REPLACE) recentRefs(changetype<Chain>(load<usize>(s + S_STAGED)), true);
  }
  for (let i: u32 = 0; i < nStaged; i++) {
    const s = slotAt(load<u32>(stagedIds + (<usize>i << 2)));
    const op = load<u8>(s + S_OP);
    const live = load<usize>(s + S_LIVE);
    if (op != OP_NONE) {
      if (live != 0) {
        recentRefs(changetype<Chain>(live), false);
        chainFree(changetype<Chain>(live));
      }
      setLive(load<u32>(stagedIds + (<usize>i << 2)), op == OP_REPLACE ? load<usize>(s + S_STAGED) : 0);
      store<usize>(s + S_STAGED, 0);
      store<u8>(s + S_OP, OP_NONE);
    }
    const np = load<u8>(s + S_NEWPOLICY);
    if (np != NO_POLICY) store<u8>(s + S_POLICY, np);
    store<u8>(s + S_NEWPOLICY, NO_POLICY);
    store<u8>(s + S_LISTED, 0);
  }
  nStaged = 0;
  setError(0, 0, -1, 0);
  return 0;
}

// Live jump references to chain `id` (-1 when it does not exist).
export function refCount(id: u32): i32 {
  if (liveChain(id) == 0) return -1;
  return <i32>load<u32>(slotAt(id) + S_REFS);
}

export function stagedCount(): u32 {
  return nStaged;
}
