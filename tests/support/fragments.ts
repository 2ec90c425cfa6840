// tests/support/fragments.ts — splits a whole IPv4 or IPv6 packet (built by buildPacket) into
// fragments as a sending host does (RFC 791 §3.2; RFC 8200 §4.5: a fragment header after the
// IPv6 header, the transport header in the first fragment only), and puts fragments back
// together to check what came out. The transport checksum stays the whole datagram's, as on the
// wire. For tests only: no extension headers before the fragment header, no overlaps.
import { foldSum, onesSum, put16 } from '../../host-node/core/checksum';

/** Fragments of `p`, each carrying at most `size` bytes of the payload (a multiple of 8). */
export function fragment(p: Uint8Array, size: number, id: number): Uint8Array[] {
  if (size % 8 !== 0) throw new Error('fragment size must be a multiple of 8');
  const v6 = p[0]! >> 4 === 6;
  const hl = v6 ? 40 : (p[0]! & 0x0f) * 4;
  const body = p.subarray(hl);
  const out: Uint8Array[] = [];
  for (let off = 0; off < body.length; off += size) {
    const part = body.subarray(off, off + size);
    const more = off + size < body.length;
    if (v6) {
      const f = new Uint8Array(48 + part.length);
      f.set(p.subarray(0, 40));
      f[4] = ((8 + part.length) >> 8) & 0xff;
      f[5] = (8 + part.length) & 0xff;
      f[6] = 44;                               // next header: fragment
      f[40] = p[6]!;                           // the original next header
      const fo = off | (more ? 1 : 0);
      f[42] = fo >> 8;
      f[43] = fo & 0xff;
      new DataView(f.buffer).setUint32(44, id);
      f.set(part, 48);
      out.push(f);
    } else {
      const f = new Uint8Array(hl + part.length);
      f.set(p.subarray(0, hl));
      f.set(part, hl);
      f[2] = (f.length >> 8) & 0xff;
      f[3] = f.length & 0xff;
      f[4] = (id >> 8) & 0xff;
      f[5] = id & 0xff;
      const fo = (more ? 0x2000 : 0) | (off / 8);
      f[6] = (p[6]! & 0x40) | (fo >> 8);
      f[7] = fo & 0xff;
      headerChecksum(f, hl);
      out.push(f);
    }
  }
  return out;
}

/** The whole packet the fragments (in order, of one datagram) carry; the first one's IP header. */
export function reassemble(frags: Uint8Array[]): Uint8Array {
  const first = frags[0]!;
  const v6 = first[0]! >> 4 === 6;
  const hl = v6 ? 48 : (first[0]! & 0x0f) * 4;
  const parts = frags.map((f) => f.subarray(v6 ? 48 : (f[0]! & 0x0f) * 4));
  const size = parts.reduce((n, x) => n + x.length, 0);
  const outHl = v6 ? 40 : hl;
  const p = new Uint8Array(outHl + size);
  p.set(first.subarray(0, outHl));
  let at = outHl;
  for (const x of parts) { p.set(x, at); at += x.length; }
  if (v6) {
    p[6] = first[40]!;
    p[4] = (size >> 8) & 0xff;
    p[5] = size & 0xff;
  } else {
    p[2] = (p.length >> 8) & 0xff;
    p[3] = p.length & 0xff;
    p[6] &= 0x40;
    p[7] = 0;
    headerChecksum(p, outHl);
  }
  return p;
}

/** Fills in the IPv4 header checksum of `p` (header length `hl`). */
function headerChecksum(p: Uint8Array, hl: number): void {
  put16(p, 10, 0);
  put16(p, 10, 0xffff ^ foldSum(onesSum(p, 0, hl)));
}
