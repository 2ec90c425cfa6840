// svc/table.ts — the direct service table: one record per service port (a "slot") with its own
// block of frontends, destinations and source ranges, and one open-addressed index from each
// frontend key (family, protocol, address or node port, port) to its slot. The control plane
// changes one service at a time (svcPut / svcDelete), in time proportional to that service:
// no rule text, no whole-table rebuild. Never chooses a destination (decide.ts does) and never
// touches packets.
//
// Atomicity: control calls and packets never interleave (the core runs one call at a time), and a
// put is validated whole and has every allocation made before its first write to the live index,
// so a packet sees a service's old entries or its new ones, never a mix; a refused put changes
// nothing.
//
// Service blob (little-endian; host-node/core/svc-config.ts writes it):
//   header 40 B: 0 magic u32 = SVD_MAGIC  4 u8 family (4|6)  5 u8 proto (6|17|132|1|58)  6 u16 pad
//                8 u32 flags (SVD_F_*)  12 u32 affinity timeout ms  16 u32 host id (echoed in aux)
//                20 u32 frontends F  24 u32 cluster destinations C  28 u32 local destinations L
//                32 u32 source ranges R  36 u32 pad
//   frontend 24 B × F: 0 u8 kind (FE_*)  1 u8 pad  2 u16 port  4 u32 pad  8 u32[4] address words
//                      (node ports: zero — they match the node-port addresses, see decide.ts)
//   dest     20 B × (C + L): 0 u32[4] address words  16 u16 port  18 u16 pad
//   range    20 B × R: 0 u32[4] network words  16 u32 prefix length
import { FAMILY_V4, FAMILY_V6, PROTO_TCP, PROTO_UDP, PROTO_SCTP, PROTO_ICMP, PROTO_ICMPV6 } from "../flow";
import { affinityClear, affinityReserve } from "./affinity";
import { allocFits } from "../alloc";

export const SVD_MAGIC: u32 = 0x31445653; // "SVD1"
export const SVD_HEADER: u32 = 40;
export const FE_BYTES: u32 = 24;
export const DEST_BYTES: u32 = 20;
export const RANGE_BYTES: u32 = 20;

// Service flags: how kube-proxy's rules for the port would treat a new connection.
export const SVD_F_AFFINITY: u32 = 1;    // sessionAffinity ClientIP
export const SVD_F_MASQ_ALL: u32 = 2;    // --masquerade-all (cluster IP traffic)
export const SVD_F_ITP_LOCAL: u32 = 4;   // internalTrafficPolicy Local
export const SVD_F_ETP_LOCAL: u32 = 8;   // externalTrafficPolicy Local
export const SVD_F_HAS_EP: u32 = 16;     // some usable endpoint exists (else REJECT)
export const SVD_F_FIREWALL: u32 = 32;   // loadBalancerSourceRanges apply to LB frontends
const SVD_F_KNOWN: u32 = 63;
const SLOT_LIVE: u32 = 0x80000000;

// Frontend kinds: which of kube-proxy's entry rules the address stands for.
export const FE_CLUSTER: u8 = 1;
export const FE_EXTERNAL: u8 = 2;
export const FE_LB: u8 = 3;
export const FE_NODEPORT: u8 = 4;

// Index key kinds: a service address, or a node port (address words zero); and a cluster IP with
// protocol and port zero, one per service port holding it (kube-proxy's nftables cluster-ips set:
// an address that is a cluster IP, whatever port or protocol a packet asks for).
export const KEY_ADDR: u8 = 0;
export const KEY_NODEPORT: u8 = 1;
export const KEY_VIP: u8 = 2;

// Control errors.
export const E_SVC_MAGIC: i32 = -1;
export const E_SVC_VERSION: i32 = -2;
export const E_SVC_LENGTH: i32 = -3;
export const E_SVC_FAMILY: i32 = -4;
export const E_SVC_DEST_RANGE: i32 = -5;
export const E_SVC_DUPLICATE: i32 = -6;
export const E_SVC_NOMEM: i32 = -7;
export const E_SVC_SLOT: i32 = -8;
export const E_SVC_FIELD: i32 = -9;

const MAX_FRONTENDS: u32 = 4096;
const MAX_DESTS: u32 = 1 << 20;
const MAX_RANGES: u32 = 4096;

// Index entry (32 B): 0 u8 family  1 u8 proto  2 u8 key kind  3 u8 used  4 u16 port  6 u8 FE kind
// 7 pad  8 u32[4] address  24 u32 slot  28 u32 hash.
export const IX_BYTES: u32 = 32;
let ixBase: usize = 0;
let ixMask: u32 = 0;
let ixCount: u32 = 0;
let vipCount: u32 = 0;   // KEY_VIP entries among ixCount

// Slot record (48 B): 0 u32 flags|LIVE  4 u32 block  8 u32 F  12 u32 C  16 u32 L  20 u32 R
// 24 u32 affinity ms  28 u32 host id  32 u32 generation  36 u8 family  37 u8 proto  40 u32 next free
export const SLOT_BYTES: u32 = 48;
let slotBase: usize = 0;
let slotCap: u32 = 0;
let slotsUsed: u32 = 0;   // high-water mark
let slotsLive: u32 = 0;
let freeHead: u32 = 0xFFFFFFFF;
let hashSeed: u32 = 0x6b43a9b5;

export function svcSetSeed(seed: u32): void { hashSeed = seed | 1; }

@inline function mix(h: u32, w: u32): u32 {
  h ^= w * 0xcc9e2d51;
  return rotl<u32>(h, 15) * 0x1b873593;
}

@inline function keyHash(family: u8, proto: u8, kind: u8, port: u16, a0: u32, a1: u32, a2: u32, a3: u32): u32 {
  let h = hashSeed;
  h = mix(h, (<u32>family << 24) | (<u32>proto << 16) | (<u32>kind << 20) | <u32>port);
  h = mix(h, a0); h = mix(h, a1); h = mix(h, a2); h = mix(h, a3);
  h ^= h >> 16; h *= 0x85ebca6b; h ^= h >> 13;
  return h;
}

@inline function ixEntry(i: u32): usize { return ixBase + <usize>i * IX_BYTES; }

@inline function ixMatches(e: usize, family: u8, proto: u8, kind: u8, port: u16, a0: u32, a1: u32, a2: u32, a3: u32): bool {
  return load<u8>(e, 3) != 0 && load<u8>(e) == family && load<u8>(e, 1) == proto && load<u8>(e, 2) == kind &&
    load<u16>(e, 4) == port && load<u32>(e, 8) == a0 && load<u32>(e, 12) == a1 && load<u32>(e, 16) == a2 && load<u32>(e, 20) == a3;
}

// The index entry for a key, or 0. Packet path.
export function feFind(family: u8, proto: u8, kind: u8, port: u16, a0: u32, a1: u32, a2: u32, a3: u32): usize {
  if (ixCount == 0) return 0;
  const mask = ixMask;
  let i = keyHash(family, proto, kind, port, a0, a1, a2, a3) & mask;
  while (true) {
    const e = ixEntry(i);
    if (load<u8>(e, 3) == 0) return 0;
    if (ixMatches(e, family, proto, kind, port, a0, a1, a2, a3)) return e;
    i = (i + 1) & mask;
  }
}

@inline export function feKind(e: usize): u8 { return load<u8>(e, 6); }
@inline export function feSlot(e: usize): u32 { return load<u32>(e, 24); }

@inline export function slotRecord(s: u32): usize { return slotBase + <usize>s * SLOT_BYTES; }
@inline export function slotFlags(s: u32): u32 { return load<u32>(slotRecord(s)); }
@inline export function slotBlock(s: u32): usize { return <usize>load<u32>(slotRecord(s), 4); }
@inline export function slotFrontends(s: u32): u32 { return load<u32>(slotRecord(s), 8); }
@inline export function slotClusterCount(s: u32): u32 { return load<u32>(slotRecord(s), 12); }
@inline export function slotLocalCount(s: u32): u32 { return load<u32>(slotRecord(s), 16); }
@inline export function slotRangeCount(s: u32): u32 { return load<u32>(slotRecord(s), 20); }
@inline export function slotAffinityMs(s: u32): u32 { return load<u32>(slotRecord(s), 24); }
@inline export function slotHostId(s: u32): u32 { return load<u32>(slotRecord(s), 28); }
@inline export function slotGeneration(s: u32): u32 { return load<u32>(slotRecord(s), 32); }
// Destination d of slot s (cluster destinations first, then local ones).
@inline export function slotDest(s: u32, d: u32): usize {
  return slotBlock(s) + <usize>slotFrontends(s) * FE_BYTES + <usize>d * DEST_BYTES;
}
// Source range r of slot s: network words in host order (node.ts wordsInPrefix), then prefix.
@inline export function slotRange(s: u32, r: u32): usize {
  return slotBlock(s) + <usize>slotFrontends(s) * FE_BYTES +
    <usize>(slotClusterCount(s) + slotLocalCount(s)) * DEST_BYTES + <usize>r * RANGE_BYTES;
}

export function svcLiveCount(): u32 { return slotsLive; }
export function svcFrontendCount(): u32 { return ixCount - vipCount; }

// Whether the address is a cluster IP of some service, whatever the port or protocol. Packet path.
export function svcClusterIP(family: u8, a0: u32, a1: u32, a2: u32, a3: u32): bool {
  return feFind(family, 0, KEY_VIP, 0, a0, a1, a2, a3) != 0;
}
export function svcIndexSlots(): u32 { return ixBase == 0 ? 0 : ixMask + 1; }
export function svcSlotCapacity(): u32 { return slotCap; }

// ---- index maintenance (control path only)

function ixInsertRaw(base: usize, mask: u32, src: usize): void {
  let i = load<u32>(src, 28) & mask;
  while (load<u8>(base + <usize>i * IX_BYTES, 3) != 0) i = (i + 1) & mask;
  memory.copy(base + <usize>i * IX_BYTES, src, IX_BYTES);
}

// Makes room for `extra` more entries at load factor ≤ 1/2; rehashes into a new array if needed.
function ixReserve(extra: u32): bool {
  const need = <u64>ixCount + <u64>extra;
  let slots: u32 = ixBase == 0 ? 1024 : ixMask + 1;
  if (ixBase != 0 && need * 2 <= <u64>slots) return true;
  while (<u64>slots < need * 2) slots <<= 1;
  if (!allocFits(<u64>slots * IX_BYTES)) return false;   // the allocator traps rather than refuse
  const base = heap.alloc(<usize>slots * IX_BYTES);
  memory.fill(base, 0, <usize>slots * IX_BYTES);
  const mask = slots - 1;
  if (ixBase != 0) {
    for (let i: u32 = 0; i <= ixMask; i++) {
      const e = ixEntry(i);
      if (load<u8>(e, 3) != 0) ixInsertRaw(base, mask, e);
    }
    heap.free(ixBase);
  }
  ixBase = base;
  ixMask = mask;
  return true;
}

function ixInsert(family: u8, proto: u8, fe: usize, slot: u32): void {
  const kind = load<u8>(fe) == FE_NODEPORT ? KEY_NODEPORT : KEY_ADDR;
  ixInsertKey(family, proto, kind, load<u16>(fe, 2), load<u8>(fe), load<u32>(fe, 8), load<u32>(fe, 12), load<u32>(fe, 16), load<u32>(fe, 20), slot);
}

function ixInsertKey(family: u8, proto: u8, kind: u8, port: u16, feKind: u8, a0: u32, a1: u32, a2: u32, a3: u32, slot: u32): void {
  const h = keyHash(family, proto, kind, port, a0, a1, a2, a3);
  let i = h & ixMask;
  while (load<u8>(ixEntry(i), 3) != 0) i = (i + 1) & ixMask;
  const e = ixEntry(i);
  store<u8>(e, family); store<u8>(e, proto, 1); store<u8>(e, kind, 2); store<u8>(e, 1, 3);
  store<u16>(e, port, 4); store<u8>(e, feKind, 6); store<u8>(e, 0, 7);
  store<u32>(e, a0, 8); store<u32>(e, a1, 12); store<u32>(e, a2, 16); store<u32>(e, a3, 20);
  store<u32>(e, slot, 24); store<u32>(e, h, 28);
  ixCount++;
  if (kind == KEY_VIP) vipCount++;
}

// The KEY_VIP entry slot `s` holds for the cluster frontend `fe` (others may hold the same key), or 0.
function vipEntry(family: u8, fe: usize, s: u32): usize {
  const a0 = load<u32>(fe, 8), a1 = load<u32>(fe, 12), a2 = load<u32>(fe, 16), a3 = load<u32>(fe, 20);
  let i = keyHash(family, 0, KEY_VIP, 0, a0, a1, a2, a3) & ixMask;
  while (true) {
    const e = ixEntry(i);
    if (load<u8>(e, 3) == 0) return 0;
    if (ixMatches(e, family, 0, KEY_VIP, 0, a0, a1, a2, a3) && load<u32>(e, 24) == s) return e;
    i = (i + 1) & ixMask;
  }
}

// Linear-probing delete with backward shift (Knuth 6.4 Algorithm R): no tombstones, so lookups
// stay as short as the live load factor allows.
function ixRemove(e: usize): void {
  let i = <u32>((e - ixBase) / IX_BYTES);
  let j = i;
  while (true) {
    j = (j + 1) & ixMask;
    const ej = ixEntry(j);
    if (load<u8>(ej, 3) == 0) break;
    const home = load<u32>(ej, 28) & ixMask;
    // Move ej into the hole at i unless its home lies cyclically in (i, j].
    const between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!between) {
      memory.copy(ixEntry(i), ej, IX_BYTES);
      i = j;
    }
  }
  memory.fill(ixEntry(i), 0, IX_BYTES);
  ixCount--;
}

// Removes index entry `e` (read before the backward shift moves others into its place).
function ixDelete(e: usize): void {
  if (load<u8>(e, 2) == KEY_VIP) vipCount--;
  ixRemove(e);
}

@inline function feKeyKind(fe: usize): u8 { return load<u8>(fe) == FE_NODEPORT ? KEY_NODEPORT : KEY_ADDR; }

function feLookup(family: u8, proto: u8, fe: usize): usize {
  return feFind(family, proto, feKeyKind(fe), load<u16>(fe, 2), load<u32>(fe, 8), load<u32>(fe, 12), load<u32>(fe, 16), load<u32>(fe, 20));
}

function sameKey(a: usize, b: usize): bool {
  return feKeyKind(a) == feKeyKind(b) && load<u16>(a, 2) == load<u16>(b, 2) && load<u32>(a, 8) == load<u32>(b, 8) &&
    load<u32>(a, 12) == load<u32>(b, 12) && load<u32>(a, 16) == load<u32>(b, 16) && load<u32>(a, 20) == load<u32>(b, 20);
}

// ---- slots

function slotsReserve(): bool {
  if (freeHead != 0xFFFFFFFF || slotsUsed < slotCap) return true;
  return slotsGrow(slotCap == 0 ? 256 : slotCap * 2);
}

// Moves the slot records to a zeroed array of `cap` (> slotCap) records.
function slotsGrow(cap: u32): bool {
  if (!allocFits(<u64>cap * SLOT_BYTES)) return false;
  const base = heap.alloc(<usize>cap * SLOT_BYTES);
  memory.fill(base, 0, <usize>cap * SLOT_BYTES);
  if (slotBase != 0) {
    memory.copy(base, slotBase, <usize>slotCap * SLOT_BYTES);
    heap.free(slotBase);
  }
  slotBase = base;
  slotCap = cap;
  return true;
}

function slotTake(): u32 {
  if (freeHead != 0xFFFFFFFF) {
    const s = freeHead;
    freeHead = load<u32>(slotRecord(s), 40);
    return s;
  }
  return slotsUsed++;
}

@inline export function slotLive(s: u32): bool { return s < slotsUsed && (slotFlags(s) & SLOT_LIVE) != 0; }

// Room for `services` slots and `frontends` index keys in all, made at once: a host about to put a
// whole list saves the table doubling (and copying) its way there. Only ever grows; 0, E_SVC_FIELD
// past MAX_RESERVE, or E_SVC_NOMEM.
const MAX_RESERVE: u32 = 1 << 21;
export function svcReserve(services: u32, frontends: u32): i32 {
  if (services > MAX_RESERVE || frontends > MAX_RESERVE) return E_SVC_FIELD;
  // A service port's cluster IP takes one more key (KEY_VIP).
  const keys = frontends + services;
  if (keys > ixCount && !ixReserve(keys - ixCount)) return E_SVC_NOMEM;
  if (<u64>services > <u64>slotCap) {
    let cap: u64 = slotCap == 0 ? 256 : <u64>slotCap;
    while (cap < <u64>services) cap <<= 1;
    if (!slotsGrow(<u32>cap)) return E_SVC_NOMEM;
  }
  return 0;
}

// ---- validation

// Service protocols; ICMP services (the demo's, keyed by echo identifier) come from SVC1 blobs.
export function svcProtoOk(proto: u8): bool {
  return proto == PROTO_TCP || proto == PROTO_UDP || proto == PROTO_SCTP || proto == PROTO_ICMP || proto == PROTO_ICMPV6;
}

@inline function v4Clean(p: usize): bool { return (load<u32>(p, 4) | load<u32>(p, 8) | load<u32>(p, 12)) == 0; }

function validate(blob: usize, len: u32): i32 {
  if (len < SVD_HEADER) return E_SVC_LENGTH;
  if (load<u32>(blob) != SVD_MAGIC) return E_SVC_MAGIC;
  const family = load<u8>(blob, 4), proto = load<u8>(blob, 5);
  if (family != FAMILY_V4 && family != FAMILY_V6) return E_SVC_FAMILY;
  if (!svcProtoOk(proto)) return E_SVC_FIELD;
  if ((load<u32>(blob, 8) & ~SVD_F_KNOWN) != 0) return E_SVC_FIELD;
  const nf = load<u32>(blob, 20), nc = load<u32>(blob, 24), nl = load<u32>(blob, 28), nr = load<u32>(blob, 32);
  if (nf == 0 || nf > MAX_FRONTENDS || nc > MAX_DESTS || nl > MAX_DESTS || nr > MAX_RANGES) return E_SVC_LENGTH;
  const need = <u64>SVD_HEADER + <u64>nf * FE_BYTES + <u64>(nc + nl) * DEST_BYTES + <u64>nr * RANGE_BYTES;
  if (need != <u64>len) return E_SVC_LENGTH;
  const fes = blob + SVD_HEADER;
  for (let i: u32 = 0; i < nf; i++) {
    const fe = fes + <usize>i * FE_BYTES;
    const kind = load<u8>(fe);
    if (kind < FE_CLUSTER || kind > FE_NODEPORT || load<u16>(fe, 2) == 0) return E_SVC_FIELD;
    if (kind == FE_NODEPORT) {
      if ((load<u32>(fe, 8) | load<u32>(fe, 12) | load<u32>(fe, 16) | load<u32>(fe, 20)) != 0) return E_SVC_FIELD;
    } else if (family == FAMILY_V4 && !v4Clean(fe + 8)) return E_SVC_FAMILY;
    for (let j: u32 = 0; j < i; j++) if (sameKey(fe, fes + <usize>j * FE_BYTES)) return E_SVC_DUPLICATE;
  }
  const dests = fes + <usize>nf * FE_BYTES;
  for (let i: u32 = 0; i < nc + nl; i++) {
    const d = dests + <usize>i * DEST_BYTES;
    if (load<u16>(d, 16) == 0) return E_SVC_FIELD;
    if (family == FAMILY_V4 && !v4Clean(d)) return E_SVC_FAMILY;
  }
  const ranges = dests + <usize>(nc + nl) * DEST_BYTES;
  for (let i: u32 = 0; i < nr; i++) {
    const r = ranges + <usize>i * RANGE_BYTES;
    if (load<u32>(r, 16) > (family == FAMILY_V4 ? <u32>32 : <u32>128)) return E_SVC_FIELD;
    if (family == FAMILY_V4 && !v4Clean(r)) return E_SVC_FAMILY;
  }
  return 0;
}

// ---- control

// Inserts (slot -1) or replaces (slot ≥ 0, live) one service from the blob at `blob`. Returns the
// slot, or a negative E_SVC_* code with nothing changed.
export function svcPut(slot: i32, blob: usize, len: u32): i32 {
  const rc = validate(blob, len);
  if (rc < 0) return rc;
  if (slot >= 0 && !slotLive(<u32>slot)) return E_SVC_SLOT;
  if (slot < -1) return E_SVC_SLOT;
  const family = load<u8>(blob, 4), proto = load<u8>(blob, 5);
  const nf = load<u32>(blob, 20);
  const fes = blob + SVD_HEADER;
  // A key another service holds is refused (kube-proxy would let the first rule win; the API
  // server forbids most such overlaps).
  for (let i: u32 = 0; i < nf; i++) {
    const e = feLookup(family, proto, fes + <usize>i * FE_BYTES);
    if (e != 0 && (slot < 0 || feSlot(e) != <u32>slot)) return E_SVC_DUPLICATE;
  }
  // Every allocation before the first live write.
  // Room for the frontends and their cluster IPs' KEY_VIP keys, beyond those the old entry gives back.
  const keys = indexKeys(fes, nf), oldKeys: u32 = slot >= 0 ? indexKeys(slotBlock(<u32>slot), slotFrontends(<u32>slot)) : 0;
  if (!ixReserve(keys > oldKeys ? keys - oldKeys : 0)) return E_SVC_NOMEM;
  if (slot < 0 && !slotsReserve()) return E_SVC_NOMEM;
  if ((load<u32>(blob, 8) & SVD_F_AFFINITY) != 0 && !affinityReserve()) return E_SVC_NOMEM;
  const bodyLen = <usize>(len - SVD_HEADER);
  if (!allocFits(<u64>bodyLen)) return E_SVC_NOMEM;
  const block = heap.alloc(bodyLen);
  memory.copy(block, fes, bodyLen);
  const nc = load<u32>(blob, 24), nl = load<u32>(blob, 28), nr = load<u32>(blob, 32);
  const ranges = block + <usize>nf * FE_BYTES + <usize>(nc + nl) * DEST_BYTES;
  for (let i: u32 = 0; i < nr; i++) {
    const r = ranges + <usize>i * RANGE_BYTES;
    for (let k: usize = 0; k < 16; k += 4) store<u32>(r + k, bswap<u32>(load<u32>(r + k)));
  }
  // Live from here on.
  let s: u32;
  if (slot >= 0) {
    s = <u32>slot;
    removeFrontends(s);
    heap.free(slotBlock(s));
  } else {
    s = slotTake();
    store<u32>(slotRecord(s), load<u32>(slotRecord(s), 32) + 1, 32);   // new generation
    slotsLive++;
  }
  const rec = slotRecord(s);
  store<u32>(rec, load<u32>(blob, 8) | SLOT_LIVE);
  store<u32>(rec, <u32>block, 4);
  store<u32>(rec, nf, 8); store<u32>(rec, nc, 12); store<u32>(rec, nl, 16); store<u32>(rec, nr, 20);
  store<u32>(rec, load<u32>(blob, 12), 24);
  store<u32>(rec, load<u32>(blob, 16), 28);
  store<u8>(rec, family, 36); store<u8>(rec, proto, 37);
  for (let i: u32 = 0; i < nf; i++) {
    const fe = block + <usize>i * FE_BYTES;
    ixInsert(family, proto, fe, s);
    if (load<u8>(fe) == FE_CLUSTER) ixInsertKey(family, 0, KEY_VIP, 0, FE_CLUSTER, load<u32>(fe, 8), load<u32>(fe, 12), load<u32>(fe, 16), load<u32>(fe, 20), s);
  }
  return <i32>s;
}

// Index keys `n` frontends at `fes` take: one each, and one more for a cluster IP (KEY_VIP).
function indexKeys(fes: usize, n: u32): u32 {
  let keys = n;
  for (let i: u32 = 0; i < n; i++) if (load<u8>(fes + <usize>i * FE_BYTES) == FE_CLUSTER) keys++;
  return keys;
}

function removeFrontends(s: u32): void {
  const rec = slotRecord(s);
  const family = load<u8>(rec, 36), proto = load<u8>(rec, 37);
  const block = slotBlock(s);
  for (let i: u32 = 0; i < slotFrontends(s); i++) {
    const fe = block + <usize>i * FE_BYTES;
    const e = feLookup(family, proto, fe);
    if (e != 0 && feSlot(e) == s) ixDelete(e);
    if (load<u8>(fe) == FE_CLUSTER) {
      const v = vipEntry(family, fe, s);
      if (v != 0) ixDelete(v);
    }
  }
}

// Removes one live service. 0, or E_SVC_SLOT.
export function svcDelete(slot: u32): i32 {
  if (!slotLive(slot)) return E_SVC_SLOT;
  removeFrontends(slot);
  heap.free(slotBlock(slot));
  const rec = slotRecord(slot);
  store<u32>(rec, 0);
  store<u32>(rec, 0, 4);
  store<u32>(rec, 0, 8);
  store<u32>(rec, freeHead, 40);
  freeHead = slot;
  slotsLive--;
  return 0;
}

// Removes every service (and the affinity entries that pointed at them).
export function svcClear(): void {
  for (let s: u32 = 0; s < slotsUsed; s++) if (slotLive(s)) heap.free(slotBlock(s));
  if (slotBase != 0) heap.free(slotBase);
  if (ixBase != 0) heap.free(ixBase);
  slotBase = 0; slotCap = 0; slotsUsed = 0; slotsLive = 0; freeHead = 0xFFFFFFFF;
  ixBase = 0; ixMask = 0; ixCount = 0; vipCount = 0;
  affinityClear();
}

// Operations for svcApply, framed as: 0 u32 op  4 i32 slot (result written back here)  8 u32 len
// 12 blob (len bytes, then padding to 4).
export const OP_PUT: u32 = 1;
export const OP_DELETE: u32 = 2;
export const OP_CLEAR: u32 = 3;

// Runs a sequence of operations, each atomic on its own. Each op's result (slot, 0 or a negative
// code) replaces its slot field. Returns the op count, or E_SVC_LENGTH (nothing run) when the
// framing does not add up to `len`.
export function svcApply(buf: usize, len: u32): i32 {
  let off: u32 = 0, n: i32 = 0;
  while (off < len) {
    if (len - off < 12) return E_SVC_LENGTH;
    const op = load<u32>(buf + off), l = load<u32>(buf + off, 8);
    if (op < OP_PUT || op > OP_CLEAR || <u64>l + 12 > <u64>(len - off)) return E_SVC_LENGTH;
    off += 12 + ((l + 3) & ~3);
    n++;
  }
  if (off != len) return E_SVC_LENGTH;
  off = 0;
  while (off < len) {
    const p = buf + off;
    const op = load<u32>(p), l = load<u32>(p, 8);
    let r: i32 = 0;
    if (op == OP_PUT) r = svcPut(load<i32>(p, 4), p + 12, l);
    else if (op == OP_DELETE) r = svcDelete(load<u32>(p, 4));
    else svcClear();
    store<i32>(p, r, 4);
    off += 12 + ((l + 3) & ~3);
  }
  return n;
}
