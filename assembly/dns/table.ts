// dns/table.ts — the cluster DNS record table: a blob the host builds (host-node/dns/table.ts) is
// validated, copied into core memory and indexed by owner name (lowercase wire form) in an
// open-addressed hash, with every ancestor of an owner up to the zone (or reverse tree) entered as
// an empty non-terminal so NODATA and NXDOMAIN differ (RFC 8020). A new table is built aside and
// swapped in whole; lookups never allocate. Never parses queries (answer.ts does).
//
// Blob (integers little-endian; names uncompressed DNS wire form):
//   u32 magic 0x31534e44 ("DNS1")   u32 record count
//   u8  zone name length, zone name (e.g. \7cluster\5local\0)
//   per record: u16 type, u16 rdata length, u32 ttl, u8 owner length, owner name, rdata
// rdata is the record's wire rdata with names uncompressed (A 4, AAAA 16, CNAME/PTR/NS one name,
// SRV priority weight port + name, SOA two names + 5×u32, TXT character-strings). Records of one
// owner must be consecutive. Owners lie in the zone or under in-addr.arpa./ip6.arpa.; the zone
// apex must hold one SOA record.
import { checkFlatName, isWithin, lower, be16 } from "./name";

export const T_A: u32 = 1;
export const T_NS: u32 = 2;
export const T_CNAME: u32 = 5;
export const T_SOA: u32 = 6;
export const T_PTR: u32 = 12;
export const T_TXT: u32 = 16;
export const T_AAAA: u32 = 28;
export const T_SRV: u32 = 33;
export const T_OPT: u32 = 41;
export const T_ANY: u32 = 255;

// Load errors (negative returns of dnsTableLoad).
export const E_SHORT: i32 = -1;      // blob ends inside a field
export const E_MAGIC: i32 = -2;
export const E_NAME: i32 = -3;       // a bad zone or owner name
export const E_RDATA: i32 = -4;      // rdata that does not fit its type
export const E_ZONE: i32 = -5;       // owner outside the zone and the reverse trees
export const E_GROUP: i32 = -6;      // an owner's records are not consecutive
export const E_NO_SOA: i32 = -7;     // the zone apex has no SOA, or more than one
export const E_TYPE: i32 = -8;       // a record type this table does not serve
export const E_TRAILING: i32 = -9;   // bytes after the last record

// A record: offset of its header in the store. Header: type u16, rdlen u16, ttl u32, ownerLen u8.
const REC_HDR: u32 = 9;
// A group (one owner name): name pointer, name length, first record, record count, hash.
const G_BYTES: u32 = 20;

class Table {
  store: usize = 0;
  recs: usize = 0;
  nrecs: u32 = 0;
  groups: usize = 0;
  ngroups: u32 = 0;
  slots: usize = 0;
  mask: u32 = 0;
  zone: usize = 0;
  zoneLen: u32 = 0;
  soa: u32 = 0;     // record index of the apex SOA
  bytes: u32 = 0;   // allocated for this table: store, record index, groups, hash slots
}

let cur: Table | null = null;

// in-addr.arpa. and ip6.arpa. in wire form.
const ARPA4: usize = memory.data<u8>([7, 0x69, 0x6e, 0x2d, 0x61, 0x64, 0x64, 0x72, 4, 0x61, 0x72, 0x70, 0x61, 0]);
const ARPA6: usize = memory.data<u8>([3, 0x69, 0x70, 0x36, 4, 0x61, 0x72, 0x70, 0x61, 0]);

@inline function le16(p: usize): u32 { return <u32>load<u16>(p); }

// FNV-1a over the lowercase wire name.
@inline function hashName(p: usize, len: u32): u32 {
  let h: u32 = 0x811c9dc5;
  for (let i: u32 = 0; i < len; i++) h = (h ^ <u32>load<u8>(p + i)) * 0x01000193;
  return h;
}

function findIn(t: Table, p: usize, len: u32): i32 {
  const h = hashName(p, len);
  let s = h & t.mask;
  while (true) {
    const g = load<u32>(t.slots + (<usize>s << 2));
    if (g == 0) return -1;
    const gp = t.groups + <usize>(g - 1) * G_BYTES;
    if (load<u32>(gp + 16) == h && load<u32>(gp + 4) == len && memory.compare(<usize>load<u32>(gp), p, len) == 0) return <i32>(g - 1);
    s = (s + 1) & t.mask;
  }
}

function insert(t: Table, p: usize, len: u32, first: u32, count: u32): void {
  const h = hashName(p, len);
  const gi = t.ngroups++;
  const gp = t.groups + <usize>gi * G_BYTES;
  store<u32>(gp, <u32>p);
  store<u32>(gp + 4, len);
  store<u32>(gp + 8, first);
  store<u32>(gp + 12, count);
  store<u32>(gp + 16, h);
  let s = h & t.mask;
  while (load<u32>(t.slots + (<usize>s << 2)) != 0) s = (s + 1) & t.mask;
  store<u32>(t.slots + (<usize>s << 2), gi + 1);
}

function rdataOk(type: u32, rd: usize, rdlen: u32): bool {
  if (type == T_A) return rdlen == 4;
  if (type == T_AAAA) return rdlen == 16;
  if (type == T_CNAME || type == T_PTR || type == T_NS) return checkFlatName(rd, rdlen) >= 0;
  if (type == T_SRV) return rdlen > 6 && checkFlatName(rd + 6, rdlen - 6) >= 0;
  if (type == T_SOA) {
    if (rdlen < 22) return false;
    const a = firstNameLen(rd, rdlen - 20);
    if (a <= 0) return false;
    return firstNameLen(rd + a, rdlen - 20 - <u32>a) == <i32>(rdlen - 20 - <u32>a);
  }
  if (type == T_TXT) {
    if (rdlen == 0) return false;
    let p: u32 = 0;
    while (p < rdlen) p += 1 + <u32>load<u8>(rd + p);
    return p == rdlen;
  }
  return false;
}

// Length of a valid flat name at the start of [p, p+max), or -1.
function firstNameLen(p: usize, max: u32): i32 {
  let pos: u32 = 0;
  while (pos < max) {
    const b = <u32>load<u8>(p + pos);
    if (b == 0) return pos + 1 <= 255 ? <i32>(pos + 1) : -1;
    if (b > 63) return -1;
    pos += 1 + b;
  }
  return -1;
}

// Validates and indexes blob[0, len) (host memory, e.g. the config buffer). 0 or a negative E_*.
// On error the table in use is left as it was.
export function dnsTableLoad(blob: usize, len: u32): i32 {
  if (len < 9) return E_SHORT;
  if (load<u32>(blob) != 0x31534e44) return E_MAGIC;
  const n = load<u32>(blob + 4);
  const zl = <u32>load<u8>(blob + 8);
  if (<u32>9 + zl > len) return E_SHORT;
  if (checkFlatName(blob + 9, zl) < 0) return E_NAME;
  // Pass 1: validate, count names (an upper bound on groups: each owner and its ancestors; an
  // owner's records are consecutive, so only a record whose owner differs from the last counts).
  let pos: u32 = <u32>9 + zl;
  let nameBound: u32 = 1;
  let prevOwner: usize = 0;
  let prevLen: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    if (pos + REC_HDR > len) return E_SHORT;
    const type = le16(blob + pos);
    const rdlen = le16(blob + pos + 2);
    const ol = <u32>load<u8>(blob + pos + 8);
    if (pos + REC_HDR + ol + rdlen > len) return E_SHORT;
    const owner = blob + pos + REC_HDR;
    const labels = checkFlatName(owner, ol);
    if (labels < 0) return E_NAME;
    if (type != T_A && type != T_AAAA && type != T_CNAME && type != T_PTR && type != T_NS &&
        type != T_SRV && type != T_SOA && type != T_TXT) return E_TYPE;
    if (!rdataOk(type, owner + ol, rdlen)) return E_RDATA;
    // Case may differ within a group; an exact compare only over-counts, never under-counts.
    if (ol != prevLen || memory.compare(owner, prevOwner, ol) != 0) nameBound += <u32>labels + 1;
    prevOwner = owner;
    prevLen = ol;
    pos += REC_HDR + ol + rdlen;
  }
  if (pos != len) return E_TRAILING;

  const t = new Table();
  t.store = heap.alloc(<usize>len);
  memory.copy(t.store, blob, len);
  t.zone = t.store + 9;
  t.zoneLen = zl;
  for (let i: u32 = 0; i < zl; i++) store<u8>(t.zone + i, <u8>lower(<u32>load<u8>(t.zone + i)));
  t.recs = heap.alloc(<usize>max<u32>(n, 1) << 2);
  t.nrecs = n;
  t.groups = heap.alloc(<usize>nameBound * G_BYTES);
  let cap: u32 = 16;
  while (cap < nameBound * 2) cap <<= 1;
  t.mask = cap - 1;
  t.slots = heap.alloc(<usize>cap << 2);
  memory.fill(t.slots, 0, <usize>cap << 2);
  const err = build(t, n);
  if (err < 0) { freeTable(t); return err; }
  compact(t);
  t.bytes = len + (max<u32>(n, 1) << 2) + t.ngroups * G_BYTES + ((t.mask + 1) << 2);
  if (cur != null) freeTable(cur!);
  cur = t;
  return 0;
}

// Pass 2 over the copied store: lowercase owners, group them, enter ancestors.
function build(t: Table, n: u32): i32 {
  let pos: u32 = <u32>9 + t.zoneLen;
  let gFirst: u32 = 0;
  let gOwner: usize = 0;
  let gLen: u32 = 0;
  let soa: i32 = -1;
  for (let i: u32 = 0; i <= n; i++) {
    let owner: usize = 0;
    let ol: u32 = 0;
    if (i < n) {
      const rp = t.store + pos;
      store<u32>(t.recs + (<usize>i << 2), pos);
      ol = <u32>load<u8>(rp + 8);
      owner = rp + REC_HDR;
      for (let k: u32 = 0; k < ol; k++) store<u8>(owner + k, <u8>lower(<u32>load<u8>(owner + k)));
      const inZone = isWithin(owner, ol, t.zone, t.zoneLen);
      if (!inZone && !isWithin(owner, ol, ARPA4, 14) && !isWithin(owner, ol, ARPA6, 10)) return E_ZONE;
      if (le16(rp) == T_SOA && ol == t.zoneLen && memory.compare(owner, t.zone, ol) == 0) {
        if (soa >= 0) return E_NO_SOA;
        soa = <i32>i;
      }
      pos += REC_HDR + ol + le16(rp + 2);
      if (gLen == ol && memory.compare(owner, gOwner, ol) == 0) continue;
    }
    if (gLen != 0) {
      const have = findIn(t, gOwner, gLen);
      if (have >= 0) {
        const gp = t.groups + <usize>have * G_BYTES;
        if (load<u32>(gp + 12) != 0) return E_GROUP;
        store<u32>(gp + 8, gFirst);       // an empty non-terminal that turned out to hold records
        store<u32>(gp + 12, i - gFirst);
      } else {
        insert(t, gOwner, gLen, gFirst, i - gFirst);
      }
      enterAncestors(t, gOwner, gLen);
    }
    gFirst = i;
    gOwner = owner;
    gLen = ol;
  }
  if (soa < 0) return E_NO_SOA;
  t.soa = <u32>soa;
  return 0;
}

// The bound pass 1 sized the name index by counts every ancestor once per owner (about seven
// names per record in a cluster zone); re-index into arrays sized for the names actually found.
function compact(t: Table): void {
  const n = t.ngroups;
  let cap: u32 = 16;
  while (cap < n * 2) cap <<= 1;
  const groups = heap.alloc(<usize>max<u32>(n, 1) * G_BYTES);
  memory.copy(groups, t.groups, <usize>n * G_BYTES);
  const slots = heap.alloc(<usize>cap << 2);
  memory.fill(slots, 0, <usize>cap << 2);
  const mask = cap - 1;
  for (let gi: u32 = 0; gi < n; gi++) {
    let s = load<u32>(groups + <usize>gi * G_BYTES + 16) & mask;
    while (load<u32>(slots + (<usize>s << 2)) != 0) s = (s + 1) & mask;
    store<u32>(slots + (<usize>s << 2), gi + 1);
  }
  heap.free(t.groups);
  heap.free(t.slots);
  t.groups = groups;
  t.slots = slots;
  t.mask = mask;
}

// Enters every proper ancestor of `name` down to its zone (or reverse tree) as an empty group.
function enterAncestors(t: Table, name: usize, len: u32): void {
  let p = name;
  let l = len;
  while (l > 1) {
    const b = <u32>load<u8>(p);
    p += 1 + b;
    l -= 1 + b;
    const within = isWithin(p, l, t.zone, t.zoneLen) || isWithin(p, l, ARPA4, 14) || isWithin(p, l, ARPA6, 10);
    if (!within) return;
    if (findIn(t, p, l) < 0) insert(t, p, l, 0, 0);
  }
}

function freeTable(t: Table): void {
  heap.free(t.store);
  heap.free(t.recs);
  heap.free(t.groups);
  heap.free(t.slots);
}

// ---- queries (no allocation)

export function tableReady(): bool { return cur != null; }
export function zonePtr(): usize { return cur == null ? 0 : cur!.zone; }
export function zoneLen(): u32 { return cur == null ? 0 : cur!.zoneLen; }
export function recordCount(): u32 { return cur == null ? 0 : cur!.nrecs; }
export function groupCount(): u32 { return cur == null ? 0 : cur!.ngroups; }
export function tableBytes(): u32 { return cur == null ? 0 : cur!.bytes; }

// Group index of lowercase flat name p, or -1.
export function lookup(p: usize, len: u32): i32 {
  if (cur == null) return -1;
  return findIn(cur!, p, len);
}
export function groupFirst(g: u32): u32 { return load<u32>(cur!.groups + <usize>g * G_BYTES + 8); }
export function groupCountOf(g: u32): u32 { return load<u32>(cur!.groups + <usize>g * G_BYTES + 12); }
export function soaRecord(): u32 { return cur!.soa; }

// Record accessors: r is a record index.
@inline function rec(r: u32): usize { return cur!.store + <usize>load<u32>(cur!.recs + (<usize>r << 2)); }
export function recType(r: u32): u32 { return le16(rec(r)); }
export function recTtl(r: u32): u32 { return load<u32>(rec(r) + 4); }
export function recOwner(r: u32): usize { return rec(r) + REC_HDR; }
export function recRdata(r: u32): usize { const p = rec(r); return p + REC_HDR + <usize>load<u8>(p + 8); }
export function recRdlen(r: u32): u32 { return le16(rec(r) + 2); }

// RFC 2308 §3: a negative answer's SOA TTL is the lesser of the SOA's TTL and its MINIMUM.
export function soaNegativeTtl(): u32 {
  const r = cur!.soa;
  const rd = recRdata(r);
  const min = (be16(rd + recRdlen(r) - 4) << 16) | be16(rd + recRdlen(r) - 2);
  const ttl = recTtl(r);
  return min < ttl ? min : ttl;
}

