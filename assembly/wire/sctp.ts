// sctp.ts — the SCTP common header (RFC 9260 §3.1: source port, destination port, verification tag,
// checksum) and its CRC32c checksum (RFC 9260 appendix A, RFC 3309: Castagnoli polynomial, reflected).
// Chunks are never parsed: NAT only needs the ports, conntrack's SCTP state machine reads chunk
// types itself. The CRC tables are built once when the module starts; per packet nothing allocates.

import { Flow } from "../flow";
import { R_NONE, R_TRUNCATED, R_BAD_HEADER } from "../verdict";

export const SCTP_HEADER: u32 = 12;
export const SCTP_SPORT: u32 = 0;
export const SCTP_DPORT: u32 = 2;
export const SCTP_VTAG: u32 = 4;
export const SCTP_CSUM: u32 = 8;

// CRC32c, reflected polynomial 0x82F63B78 (RFC 3309 §5). Slicing-by-8: table k maps a byte that is
// k positions further from the end of an 8-byte block; 8 × 256 words, built once.
const CRC32C_POLY: u32 = 0x82F63B78;
const crcTables: usize = buildCrcTables();

function buildCrcTables(): usize {
  const t = heap.alloc(8 * 256 * 4);
  for (let i: u32 = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = (c & 1) ? (c >>> 1) ^ CRC32C_POLY : c >>> 1;
    store<u32>(t + (<usize>i << 2), c);
  }
  for (let k: usize = 1; k < 8; k++) {
    for (let i: usize = 0; i < 256; i++) {
      const prev = load<u32>(t + ((k - 1) << 10) + (i << 2));
      store<u32>(t + (k << 10) + (i << 2), (prev >>> 8) ^ load<u32>(t + (<usize>(prev & 0xFF) << 2)));
    }
  }
  return t;
}

@inline function tab(k: usize, b: u32): u32 {
  return load<u32>(crcTables + (k << 10) + (<usize>(b & 0xFF) << 2));
}

// Continues a CRC32c over [ptr, ptr+len). `crc` is the running register (start with 0xFFFFFFFF);
// the caller complements the result at the end.
export function crc32cUpdate(crc: u32, ptr: usize, len: u32): u32 {
  let p = ptr;
  let n = len;
  while (n >= 8) {
    // Little-endian loads put the first byte in the low bits, which is what a reflected CRC eats first.
    const lo = load<u32>(p) ^ crc;
    const hi = load<u32>(p, 4);
    crc = tab(7, lo) ^ tab(6, lo >>> 8) ^ tab(5, lo >>> 16) ^ tab(4, lo >>> 24) ^
          tab(3, hi) ^ tab(2, hi >>> 8) ^ tab(1, hi >>> 16) ^ tab(0, hi >>> 24);
    p += 8;
    n -= 8;
  }
  while (n != 0) {
    crc = tab(0, crc ^ <u32>load<u8>(p)) ^ (crc >>> 8);
    p++;
    n--;
  }
  return crc;
}

// CRC32c of [ptr, ptr+len) as RFC 3720 B.4 lists it (32 zero bytes → 0x8A9136AA).
export function crc32c(ptr: usize, len: u32): u32 {
  return ~crc32cUpdate(0xFFFFFFFF, ptr, len);
}

// The SCTP checksum of the `len`-byte packet at `l4`, with the checksum field taken as zero.
// Store it with store<u32> on this little-endian machine: Linux sctp_compute_cksum() returns the
// value as __le32 and the RFC's byte order (appendix A) amounts to the same bytes on the wire.
export function sctpChecksum(l4: usize, len: u32): u32 {
  let crc = crc32cUpdate(0xFFFFFFFF, l4, SCTP_CSUM);
  // The checksum field's four bytes count as zero.
  for (let i = 0; i < 4; i++) crc = tab(0, crc) ^ (crc >>> 8);
  crc = crc32cUpdate(crc, l4 + SCTP_HEADER, len - SCTP_HEADER);
  return ~crc;
}

// Recomputes and stores the checksum of the `len`-byte SCTP packet at `l4` (len ≥ 12).
export function sctpFill(l4: usize, len: u32): void {
  store<u32>(l4 + SCTP_CSUM, sctpChecksum(l4, len));
}

export function sctpValid(l4: usize, len: u32): bool {
  return len >= SCTP_HEADER && load<u32>(l4 + SCTP_CSUM) == sctpChecksum(l4, len);
}

// The common header of a packet: `n` bytes from the SCTP header to the end of the IP payload.
export function sctpParse(f: Flow, l4: usize, n: u32): u16 {
  if (n < SCTP_HEADER) return R_TRUNCATED;
  f.sport = bswap<u16>(load<u16>(l4 + SCTP_SPORT));
  f.dport = bswap<u16>(load<u16>(l4 + SCTP_DPORT));
  return R_NONE;
}
