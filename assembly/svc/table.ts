// svc/table.ts — the direct service table: (family, protocol, VIP, port) → service record and its
// destinations. This is what the control plane's "direct" mode loads without any rule text, and
// what the demo runs on. Built aside from a binary blob, validated whole, then swapped in with one
// pointer store; packets only ever see a complete table. Never chooses a destination (the
// pipeline does) and never touches packets.
//
// Blob format (little-endian; host-node/core/svc-config.ts writes it):
//   header  16 B: magic u32 = SVC_MAGIC, version u32 = 1, svcCount u32, destCount u32
//   svc     SVC_BYTES each:
//     0 u8 family (4|6)  1 u8 proto  2 u16 flags (SVC_F_*)  4 u16 port  6 u16 pad
//     8 u32[4] VIP words (raw, as Tuple)  24 u32 destStart  28 u32 destCount
//    32 u32 affinity timeout ms  36 u32 service id (host's index, echoed in traces)  40..47 pad
//   dest    DEST_BYTES each:
//     0 u32[4] address words  16 u16 port  18 u16 weight  20 u32 flags (DEST_F_*)
import { Tuple, FAMILY_V4, FAMILY_V6 } from "../flow";

export const SVC_MAGIC: u32 = 0x31435653; // "SVC1"
export const SVC_VERSION: u32 = 1;
export const SVC_HEADER: u32 = 16;
export const SVC_BYTES: u32 = 48;
export const DEST_BYTES: u32 = 24;

export const SVC_F_MASQ_ALL: u16 = 1;      // masquerade every new flow (kube-proxy --masquerade-all)
export const SVC_F_REJECT_EMPTY: u16 = 2;  // no destinations: answer with REJECT
export const SVC_F_DROP_EMPTY: u16 = 4;    // no destinations: drop (ETP=Local with none local)
export const SVC_F_AFFINITY: u16 = 8;      // ClientIP session affinity

export const DEST_F_LOCAL: u32 = 1;

// Control errors (negative results of svcLoad).
export const E_SVC_MAGIC: i32 = -1;
export const E_SVC_VERSION: i32 = -2;
export const E_SVC_LENGTH: i32 = -3;
export const E_SVC_FAMILY: i32 = -4;
export const E_SVC_DEST_RANGE: i32 = -5;
export const E_SVC_DUPLICATE: i32 = -6;
export const E_SVC_NOMEM: i32 = -7;

const EMPTY: u32 = 0xFFFFFFFF;

// The live table. One allocation: [index slots u32 × mask+1][svc records][dest records].
let liveBase: usize = 0;
let liveMask: u32 = 0;
let liveSvcs: usize = 0;
let liveDests: usize = 0;
let liveSvcCount: u32 = 0;
let liveDestCount: u32 = 0;
let hashSeed: u32 = 0x6b43a9b5;

export function svcSetSeed(seed: u32): void { hashSeed = seed | 1; }

@inline function mix(h: u32, w: u32): u32 {
  h ^= w * 0xcc9e2d51;
  h = rotl<u32>(h, 15) * 0x1b873593;
  return h;
}

@inline function keyHash(family: u8, proto: u8, port: u16, a0: u32, a1: u32, a2: u32, a3: u32): u32 {
  let h = hashSeed;
  h = mix(h, (<u32>family << 24) | (<u32>proto << 16) | <u32>port);
  h = mix(h, a0); h = mix(h, a1); h = mix(h, a2); h = mix(h, a3);
  h ^= h >> 16; h *= 0x85ebca6b; h ^= h >> 13;
  return h;
}

@inline function svcMatches(rec: usize, family: u8, proto: u8, port: u16, a0: u32, a1: u32, a2: u32, a3: u32): bool {
  return load<u8>(rec) == family && load<u8>(rec, 1) == proto && load<u16>(rec, 4) == port &&
    load<u32>(rec, 8) == a0 && load<u32>(rec, 12) == a1 && load<u32>(rec, 16) == a2 && load<u32>(rec, 20) == a3;
}

// Index of the service for a packet's destination, or -1.
export function svcFind(t: Tuple): i32 {
  if (liveSvcCount == 0) return -1;
  const mask = liveMask;
  let i = keyHash(t.family, t.proto, t.dport, t.d0, t.d1, t.d2, t.d3) & mask;
  while (true) {
    const s = load<u32>(liveBase + (<usize>i << 2));
    if (s == EMPTY) return -1;
    const rec = liveSvcs + <usize>s * SVC_BYTES;
    if (svcMatches(rec, t.family, t.proto, t.dport, t.d0, t.d1, t.d2, t.d3)) return <i32>s;
    i = (i + 1) & mask;
  }
}

@inline export function svcRecord(s: u32): usize { return liveSvcs + <usize>s * SVC_BYTES; }
@inline export function svcFlags(s: u32): u16 { return load<u16>(svcRecord(s), 2); }
@inline export function svcDestStart(s: u32): u32 { return load<u32>(svcRecord(s), 24); }
@inline export function svcDestCount(s: u32): u32 { return load<u32>(svcRecord(s), 28); }
@inline export function svcAffinityMs(s: u32): u32 { return load<u32>(svcRecord(s), 32); }
@inline export function svcId(s: u32): u32 { return load<u32>(svcRecord(s), 36); }
@inline export function destRecord(d: u32): usize { return liveDests + <usize>d * DEST_BYTES; }
export function svcCount(): u32 { return liveSvcCount; }

// Validates a blob and swaps it in. Returns the service count, or a negative E_SVC_* code with the
// live table untouched.
export function svcLoad(blob: usize, len: u32): i32 {
  if (len < SVC_HEADER) return E_SVC_LENGTH;
  if (load<u32>(blob) != SVC_MAGIC) return E_SVC_MAGIC;
  if (load<u32>(blob, 4) != SVC_VERSION) return E_SVC_VERSION;
  const nSvc = load<u32>(blob, 8);
  const nDest = load<u32>(blob, 12);
  if (nSvc > 0x100000 || nDest > 0x1000000) return E_SVC_LENGTH;
  const need = <u64>SVC_HEADER + <u64>nSvc * SVC_BYTES + <u64>nDest * DEST_BYTES;
  if (need != <u64>len) return E_SVC_LENGTH;
  const svcs = blob + SVC_HEADER;
  const dests = svcs + <usize>nSvc * SVC_BYTES;
  for (let s: u32 = 0; s < nSvc; s++) {
    const rec = svcs + <usize>s * SVC_BYTES;
    const fam = load<u8>(rec);
    if (fam != FAMILY_V4 && fam != FAMILY_V6) return E_SVC_FAMILY;
    if (fam == FAMILY_V4 && (load<u32>(rec, 12) | load<u32>(rec, 16) | load<u32>(rec, 20)) != 0) return E_SVC_FAMILY;
    const ds = load<u32>(rec, 24), dc = load<u32>(rec, 28);
    if (<u64>ds + <u64>dc > <u64>nDest) return E_SVC_DEST_RANGE;
  }
  // Index with load factor ≤ 1/2.
  let slots: u32 = 16;
  while (slots < nSvc * 2) slots <<= 1;
  const bytes = <usize>slots * 4 + <usize>nSvc * SVC_BYTES + <usize>nDest * DEST_BYTES;
  const base = heap.alloc(bytes);
  if (base == 0) return E_SVC_NOMEM;
  memory.fill(base, 0xFF, <usize>slots * 4);
  const newSvcs = base + <usize>slots * 4;
  const newDests = newSvcs + <usize>nSvc * SVC_BYTES;
  memory.copy(newSvcs, svcs, <usize>nSvc * SVC_BYTES + <usize>nDest * DEST_BYTES);
  const mask = slots - 1;
  for (let s: u32 = 0; s < nSvc; s++) {
    const rec = newSvcs + <usize>s * SVC_BYTES;
    const fam = load<u8>(rec), proto = load<u8>(rec, 1), port = load<u16>(rec, 4);
    const a0 = load<u32>(rec, 8), a1 = load<u32>(rec, 12), a2 = load<u32>(rec, 16), a3 = load<u32>(rec, 20);
    let i = keyHash(fam, proto, port, a0, a1, a2, a3) & mask;
    while (true) {
      const cur = load<u32>(base + (<usize>i << 2));
      if (cur == EMPTY) { store<u32>(base + (<usize>i << 2), s); break; }
      if (svcMatches(newSvcs + <usize>cur * SVC_BYTES, fam, proto, port, a0, a1, a2, a3)) {
        heap.free(base);
        return E_SVC_DUPLICATE;
      }
      i = (i + 1) & mask;
    }
  }
  const old = liveBase;
  liveBase = base; liveMask = mask; liveSvcs = newSvcs; liveDests = newDests;
  liveSvcCount = nSvc; liveDestCount = nDest;
  if (old != 0) heap.free(old);
  return <i32>nSvc;
}
