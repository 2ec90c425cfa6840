// dns/name.ts — domain names on the wire (RFC 1035 §3.1, §4.1.4): reading a possibly compressed
// name out of an untrusted message into a flat buffer (original case and lowercase), skipping a
// name, comparing names case-insensitively, and writing names into a response with compression.
// Never allocates and never traps: every read is bounds-checked against the message length, and a
// fault is a negative return the caller turns into FORMERR.

// RFC 1035 §2.3.4: a label is at most 63 octets, a name at most 255 octets on the wire.
export const LABEL_MAX: u32 = 63;
export const NAME_MAX: u32 = 255;
// A bound on pointer hops. Pointers must also point strictly backwards (RFC 1035 §4.1.4: "a prior
// occurrence"), which alone rules out loops; the cap bounds the work on long backwards chains.
const MAX_HOPS: u32 = 64;

// The name last read by readName: wire form, uncompressed, ending with the root label.
export const nameOrig: usize = memory.data(256);
export const nameLow: usize = memory.data(256);
export let nameLen: u32 = 0;

@inline export function lower(c: u32): u32 { return c - 0x41 < 26 ? c | 0x20 : c; }
@inline export function be16(p: usize): u32 { return (<u32>load<u8>(p) << 8) | <u32>load<u8>(p + 1); }
@inline export function be32(p: usize): u32 { return (be16(p) << 16) | be16(p + 2); }
@inline export function put16(p: usize, v: u32): void { store<u8>(p, <u8>(v >> 8)); store<u8>(p + 1, <u8>v); }
@inline export function put32(p: usize, v: u32): void { put16(p, v >> 16); put16(p + 2, v & 0xffff); }

// Reads the name at `off` in msg[0, len) into nameOrig/nameLow. Returns the offset just past the
// name where it starts (after the first pointer, if any), or -1 for a truncated name, a forward or
// looping pointer, a reserved label type (0x40/0x80, RFC 6891 §5) or a name over 255 octets.
export function readName(msg: usize, len: u32, off: u32): i32 {
  let pos = off;
  let end: i32 = -1;
  let out: u32 = 0;
  let hops: u32 = 0;
  while (true) {
    if (pos >= len) return -1;
    const b = <u32>load<u8>(msg + pos);
    if (b == 0) {
      store<u8>(nameOrig + out, 0);
      store<u8>(nameLow + out, 0);
      out++;
      if (end < 0) end = <i32>(pos + 1);
      break;
    }
    const kind = b & 0xc0;
    if (kind == 0xc0) {
      if (pos + 1 >= len) return -1;
      const target = ((b & 0x3f) << 8) | <u32>load<u8>(msg + pos + 1);
      if (end < 0) end = <i32>(pos + 2);
      if (target >= pos || ++hops > MAX_HOPS) return -1;
      pos = target;
      continue;
    }
    if (kind != 0) return -1;
    if (pos + 1 + b > len || out + 1 + b + 1 > NAME_MAX) return -1;
    store<u8>(nameOrig + out, <u8>b);
    store<u8>(nameLow + out, <u8>b);
    for (let i: u32 = 1; i <= b; i++) {
      const c = <u32>load<u8>(msg + pos + i);
      store<u8>(nameOrig + out + i, <u8>c);
      store<u8>(nameLow + out + i, <u8>lower(c));
    }
    out += 1 + b;
    pos += 1 + b;
  }
  nameLen = out;
  return end;
}

// Steps over a name without following pointers (a pointer ends a name). -1 if it runs past `len`
// or uses a reserved label type.
export function skipName(msg: usize, len: u32, off: u32): i32 {
  let pos = off;
  let total: u32 = 0;
  while (true) {
    if (pos >= len) return -1;
    const b = <u32>load<u8>(msg + pos);
    if (b == 0) return <i32>(pos + 1);
    const kind = b & 0xc0;
    if (kind == 0xc0) return pos + 1 < len ? <i32>(pos + 2) : -1;
    if (kind != 0) return -1;
    total += 1 + b;
    if (total + 1 > NAME_MAX) return -1;
    pos += 1 + b;
  }
}

// Checks a flat wire name held in trusted memory: labels ≤ 63, total ≤ 255, ends at the root
// exactly at `len`. Returns the label count or -1.
export function checkFlatName(p: usize, len: u32): i32 {
  if (len == 0 || len > NAME_MAX) return -1;
  let pos: u32 = 0;
  let labels: i32 = 0;
  while (pos < len) {
    const b = <u32>load<u8>(p + pos);
    if (b == 0) return pos + 1 == len ? labels : -1;
    if (b > LABEL_MAX) return -1;
    pos += 1 + b;
    labels++;
  }
  return -1;
}

// Whether flat name `a` (len alen) equals, or lies below, flat name `zone` (len zlen): compares the
// last zlen octets, which must start on a label boundary of `a`. Both lowercase.
export function isWithin(a: usize, alen: u32, zone: usize, zlen: u32): bool {
  if (zlen > alen) return false;
  let pos: u32 = 0;
  const start = alen - zlen;
  while (pos < start) pos += 1 + <u32>load<u8>(a + pos);
  return pos == start && memory.compare(a + start, zone, zlen) == 0;
}

// ---- writing, with compression (RFC 1035 §4.1.4)

// Offsets of label starts already written into the response, as compression targets.
const DICT_MAX: u32 = 64;
const dict: usize = memory.data(DICT_MAX * 4);
export let dictCount: u32 = 0;
export function dictReset(): void { dictCount = 0; }
export function dictMark(): u32 { return dictCount; }
export function dictRestore(mark: u32): void { dictCount = mark; }

// Whether flat name n (lowercase) equals the name written at `off` in msg (which may be compressed
// and in any case).
function sameAt(n: usize, msg: usize, off: u32): bool {
  let p = off;
  let i: u32 = 0;
  let hops: u32 = 0;
  while (true) {
    let b = <u32>load<u8>(msg + p);
    while ((b & 0xc0) == 0xc0) {
      if (++hops > MAX_HOPS) return false;
      p = ((b & 0x3f) << 8) | <u32>load<u8>(msg + p + 1);
      b = <u32>load<u8>(msg + p);
    }
    if (b != <u32>load<u8>(n + i)) return false;
    if (b == 0) return true;
    for (let k: u32 = 1; k <= b; k++) {
      if (lower(<u32>load<u8>(msg + p + k)) != lower(<u32>load<u8>(n + i + k))) return false;
    }
    p += 1 + b;
    i += 1 + b;
  }
}

// Writes flat name n at msg+pos, no further than `limit`. With `compress`, the longest suffix
// already in the message becomes a pointer. Returns the new position or -1 when out of room.
// Only names written before this one are pointer targets: a label of this name is in the
// dictionary before the rest of it is written, and a pointer to it would read bytes not yet
// written (a stale reply's) and could make the name point at itself.
export function writeName(msg: usize, pos: u32, limit: u32, n: usize, compress: bool): i32 {
  const before = dictCount;
  let i: u32 = 0;
  while (true) {
    const b = <u32>load<u8>(n + i);
    if (b == 0) {
      if (pos + 1 > limit) return -1;
      store<u8>(msg + pos, 0);
      return <i32>(pos + 1);
    }
    if (compress) {
      for (let d: u32 = 0; d < before; d++) {
        const off = load<u32>(dict + (d << 2));
        if (sameAt(n + i, msg, off)) {
          if (pos + 2 > limit) return -1;
          put16(msg + pos, 0xc000 | off);
          return <i32>(pos + 2);
        }
      }
    }
    if (pos + 1 + b > limit) return -1;
    if (pos < 0x4000 && dictCount < DICT_MAX) {
      store<u32>(dict + (dictCount << 2), pos);
      dictCount++;
    }
    memory.copy(msg + pos, n + i, 1 + b);
    pos += 1 + b;
    i += 1 + b;
  }
}
