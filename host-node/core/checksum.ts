// checksum.ts — the sums packets carry, computed over bytes in memory: the Internet checksum
// (RFC 1071 ones-complement, with the TCP/UDP pseudo-header) and SCTP's CRC32c, plus the
// big-endian 16/32-bit field access the packet builder and decoder share. Pure; never allocates
// beyond SCTP's zeroed copy, never throws.

/** Ones-complement sum of bytes [start, end) as big-endian 16-bit words, unfolded. */
export function onesSum(b: Uint8Array, start = 0, end = b.length, acc = 0): number {
  let i = start;
  for (; i + 1 < end; i += 2) acc += (b[i]! << 8) | b[i + 1]!;
  if (i < end) acc += b[i]! << 8;
  return acc;
}

export function foldSum(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + Math.floor(acc / 0x10000);
  return acc;
}

export function pseudoSum(src: Uint8Array, dst: Uint8Array, proto: number, len: number): number {
  return onesSum(src) + onesSum(dst) + proto + (len >>> 16) + (len & 0xffff);
}

/** CRC32c (Castagnoli, reflected 0x82F63B78) as SCTP uses it (RFC 9260 appendix A). */
export function crc32c(b: Uint8Array, start = 0, end = b.length): number {
  let crc = 0xffffffff;
  for (let i = start; i < end; i++) {
    crc ^= b[i]!;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

export function sctpChecksum(seg: Uint8Array): number {
  const copy = seg.slice();
  copy.fill(0, 8, 12);
  return crc32c(copy);
}

export const put16 = (b: Uint8Array, at: number, v: number) => { b[at] = (v >>> 8) & 0xff; b[at + 1] = v & 0xff; };
export const put32 = (b: Uint8Array, at: number, v: number) => { put16(b, at, v >>> 16); put16(b, at + 2, v & 0xffff); };
export const get16 = (b: Uint8Array, at: number) => (b[at]! << 8) | b[at + 1]!;
export const get32 = (b: Uint8Array, at: number) => ((get16(b, at) << 16) | get16(b, at + 2)) >>> 0;
