// offload.ts — the device's side of checksum offload, for tests: with CHECKSUM_PARTIAL (a TUN's
// VIRTIO_NET_HDR_F_NEEDS_CSUM) the TCP/UDP/ICMPv6 checksum field holds only the folded,
// uncomplemented pseudo-header sum, and the device finishes it on the way out by summing the
// transport bytes from csum_start and storing the complement (include/linux/skbuff.h,
// "CHECKSUM_PARTIAL"; net/core/dev.c skb_checksum_help). Built on the independent packet codec
// (host-node/core/packet.ts), never on the core it checks. Unfragmented packets only.
import { decodePacket, parseIP, PROTO } from '../../host-node/core/packet.js';

/** Offset of the checksum field within the transport header, per protocol. */
const FIELD: Record<number, number> = { [PROTO.tcp]: 16, [PROTO.udp]: 6, [PROTO.icmpv6]: 2 };

function onesSum(b: Uint8Array, start: number, end: number, acc = 0): number {
  for (let i = start; i < end; i += 2) acc += (b[i]! << 8) | (i + 1 < end ? b[i + 1]! : 0);
  return acc;
}
function fold(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + Math.floor(acc / 0x10000);
  return acc;
}

/** Where the transport header starts, its length, and the field's offset; null if none applies. */
function layout(b: Uint8Array): { l4: number; end: number; at: number; proto: number; src: Uint8Array; dst: Uint8Array } | null {
  const d = decodePacket(b);
  const off = FIELD[d.proto];
  if (off === undefined || d.frag) return null;
  const l4 = d.headerLength;
  const end = d.proto === PROTO.udp ? l4 + ((b[l4 + 4]! << 8) | b[l4 + 5]!) : (d.family === 4 ? d.length : b.length);
  return { l4, end, at: l4 + off, proto: d.proto, src: parseIP(d.src), dst: parseIP(d.dst) };
}

/** The value the checksum field holds under offload (the pseudo-header sum), or -1 if none applies. */
export function partialChecksum(bytes: Uint8Array): number {
  const l = layout(bytes);
  if (!l) return -1;
  const len = l.end - l.l4;
  return fold(onesSum(l.src, 0, l.src.length) + onesSum(l.dst, 0, l.dst.length) + l.proto + len);
}

/** A copy of the packet as a device with checksum offload hands it over: the field holds partialChecksum(). */
export function withPartialChecksum(bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  const l = layout(out);
  if (l) {
    const v = partialChecksum(out);
    out[l.at] = v >> 8;
    out[l.at + 1] = v & 0xff;
  }
  return out;
}

/** A copy with the partial checksum finished as the device does: the transport bytes summed, complemented. */
export function finishPartialChecksum(bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  const l = layout(out);
  if (l) {
    const v = 0xffff ^ fold(onesSum(out, l.l4, l.end));
    out[l.at] = v >> 8;
    out[l.at + 1] = v & 0xff;
  }
  return out;
}
