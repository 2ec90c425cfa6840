// svc/blob.ts — the whole-table service blob ("SVC1", host-node/core/svc-config.ts
// encodeServices): a list of VIP:port services with their destinations, validated whole and then
// installed into the direct table (table.ts) in place of everything there. Each SVC1 service
// becomes one cluster-IP frontend. Never touches packets.
//
// Blob format (little-endian):
//   header  16 B: magic u32 = SVC_MAGIC, version u32 = 1, svcCount u32, destCount u32
//   svc     SVC_BYTES each:
//     0 u8 family (4|6)  1 u8 proto  2 u16 flags (SVC_F_*)  4 u16 port  6 u16 pad
//     8 u32[4] VIP words (raw, as Tuple)  24 u32 destStart  28 u32 destCount
//    32 u32 affinity timeout ms (ignored)  36 u32 service id (host's index, echoed in aux)  40..47 pad
//   dest    SVC1_DEST_BYTES each:
//     0 u32[4] address words  16 u16 port  18 u16 weight (ignored)  20 u32 flags (ignored)
import { FAMILY_V4, FAMILY_V6 } from "../flow";
import {
  svcPut, svcClear, SVD_MAGIC, SVD_HEADER, FE_BYTES, DEST_BYTES, FE_CLUSTER,
  SVD_F_MASQ_ALL, SVD_F_HAS_EP, SVD_F_ITP_LOCAL,
  E_SVC_MAGIC, E_SVC_VERSION, E_SVC_LENGTH, E_SVC_FAMILY, E_SVC_DEST_RANGE, E_SVC_DUPLICATE, E_SVC_NOMEM, E_SVC_FIELD, svcLiveCount, svcProtoOk,
  SLOT_BYTES, IX_BYTES,
} from "./table";
import { allocFits, memoryFits } from "../alloc";

export const SVC_MAGIC: u32 = 0x31435653; // "SVC1"
export const SVC_VERSION: u32 = 1;
export const SVC_HEADER: u32 = 16;
export const SVC_BYTES: u32 = 48;
export const SVC1_DEST_BYTES: u32 = 24;

export const SVC_F_MASQ_ALL: u16 = 1;      // masquerade every new flow (kube-proxy --masquerade-all)
export const SVC_F_REJECT_EMPTY: u16 = 2;  // no destinations: answer with REJECT, else drop

@inline function svcKeyHash(rec: usize): u32 {
  let h: u32 = (<u32>load<u8>(rec) << 24) ^ (<u32>load<u8>(rec, 1) << 16) ^ <u32>load<u16>(rec, 4);
  for (let k: usize = 8; k < 24; k += 4) h = (h ^ load<u32>(rec + k)) * 0x9E3779B1;
  return h ^ (h >> 15);
}

@inline function svcSameKey(a: usize, b: usize): bool {
  return load<u8>(a) == load<u8>(b) && load<u8>(a, 1) == load<u8>(b, 1) && load<u16>(a, 4) == load<u16>(b, 4) &&
    load<u32>(a, 8) == load<u32>(b, 8) && load<u32>(a, 12) == load<u32>(b, 12) &&
    load<u32>(a, 16) == load<u32>(b, 16) && load<u32>(a, 20) == load<u32>(b, 20);
}

// Validates a blob and installs it in place of the whole direct table. Returns the service count,
// or a negative E_SVC_* code with the live table untouched.
export function svcLoad(blob: usize, len: u32): i32 {
  if (len < SVC_HEADER) return E_SVC_LENGTH;
  if (load<u32>(blob) != SVC_MAGIC) return E_SVC_MAGIC;
  if (load<u32>(blob, 4) != SVC_VERSION) return E_SVC_VERSION;
  const nSvc = load<u32>(blob, 8);
  const nDest = load<u32>(blob, 12);
  if (nSvc > 0x100000 || nDest > 0x1000000) return E_SVC_LENGTH;
  const need = <u64>SVC_HEADER + <u64>nSvc * SVC_BYTES + <u64>nDest * SVC1_DEST_BYTES;
  if (need != <u64>len) return E_SVC_LENGTH;
  const svcs = blob + SVC_HEADER;
  const dests = svcs + <usize>nSvc * SVC_BYTES;
  let maxDests: u32 = 0;
  for (let s: u32 = 0; s < nSvc; s++) {
    const rec = svcs + <usize>s * SVC_BYTES;
    const fam = load<u8>(rec);
    if (fam != FAMILY_V4 && fam != FAMILY_V6) return E_SVC_FAMILY;
    if (fam == FAMILY_V4 && (load<u32>(rec, 12) | load<u32>(rec, 16) | load<u32>(rec, 20)) != 0) return E_SVC_FAMILY;
    const ds = load<u32>(rec, 24), dc = load<u32>(rec, 28);
    if (<u64>ds + <u64>dc > <u64>nDest) return E_SVC_DEST_RANGE;
    if (dc > maxDests) maxDests = dc;
    if (load<u16>(rec, 4) == 0 || !svcProtoOk(load<u8>(rec, 1))) return E_SVC_FIELD;
    for (let d: u32 = 0; d < dc; d++) {
      const dp = dests + <usize>(ds + d) * SVC1_DEST_BYTES;
      if (load<u16>(dp, 16) == 0) return E_SVC_FIELD;
      if (fam == FAMILY_V4 && (load<u32>(dp, 4) | load<u32>(dp, 8) | load<u32>(dp, 12)) != 0) return E_SVC_FAMILY;
    }
  }
  // Duplicates, found through a throw-away index of service numbers.
  let slots: u32 = 16;
  while (slots < nSvc * 2) slots <<= 1;
  if (!allocFits(<u64>slots * 4)) return E_SVC_NOMEM;   // the allocator traps rather than refuse
  const ix = heap.alloc(<usize>slots * 4);
  memory.fill(ix, 0xFF, <usize>slots * 4);
  for (let s: u32 = 0; s < nSvc; s++) {
    const rec = svcs + <usize>s * SVC_BYTES;
    let i = svcKeyHash(rec) & (slots - 1);
    while (true) {
      const cur = load<u32>(ix + (<usize>i << 2));
      if (cur == 0xFFFFFFFF) { store<u32>(ix + (<usize>i << 2), s); break; }
      if (svcSameKey(svcs + <usize>cur * SVC_BYTES, rec)) { heap.free(ix); return E_SVC_DUPLICATE; }
      i = (i + 1) & (slots - 1);
    }
  }
  heap.free(ix);
  // The rebuilt table, generously (each service's block, its slot and index entries, the affinity
  // table): the memory must hold it before the old one is cleared, or the load would stop halfway.
  if (!memoryFits(<u64>len * 2 + <u64>nSvc * (<u64>SLOT_BYTES * 2 + <u64>IX_BYTES * 8) + (4 << 20))) return E_SVC_NOMEM;
  // Every service is now known to go in: rebuild the table from them.
  if (!allocFits(<u64>SVD_HEADER + FE_BYTES + <u64>maxDests * DEST_BYTES)) return E_SVC_NOMEM;
  const one = heap.alloc(<usize>SVD_HEADER + FE_BYTES + <usize>maxDests * DEST_BYTES);
  svcClear();
  for (let s: u32 = 0; s < nSvc; s++) {
    const rec = svcs + <usize>s * SVC_BYTES;
    const flags = load<u16>(rec, 2);
    const ds = load<u32>(rec, 24), dc = load<u32>(rec, 28);
    let f: u32 = (flags & SVC_F_MASQ_ALL) != 0 ? SVD_F_MASQ_ALL : 0;
    // No destinations: REJECT, or DROP as for a Local policy without local endpoints.
    if (dc > 0) f |= SVD_F_HAS_EP;
    else if ((flags & SVC_F_REJECT_EMPTY) == 0) f |= SVD_F_HAS_EP | SVD_F_ITP_LOCAL;
    memory.fill(one, 0, <usize>SVD_HEADER + FE_BYTES);
    store<u32>(one, SVD_MAGIC);
    store<u8>(one, load<u8>(rec), 4);
    store<u8>(one, load<u8>(rec, 1), 5);
    store<u32>(one, f, 8);
    store<u32>(one, load<u32>(rec, 36), 16);
    store<u32>(one, 1, 20);
    store<u32>(one, dc, 24);
    const fe = one + SVD_HEADER;
    store<u8>(fe, FE_CLUSTER);
    store<u16>(fe, load<u16>(rec, 4), 2);
    memory.copy(fe + 8, rec + 8, 16);
    for (let d: u32 = 0; d < dc; d++) {
      const src = dests + <usize>(ds + d) * SVC1_DEST_BYTES;
      const dst = fe + FE_BYTES + <usize>d * DEST_BYTES;
      memory.copy(dst, src, 16);
      store<u16>(dst, load<u16>(src, 16), 16);
      store<u16>(dst, 0, 18);
    }
    svcPut(-1, one, SVD_HEADER + FE_BYTES + dc * DEST_BYTES);
  }
  heap.free(one);
  return <i32>svcLiveCount();
}
