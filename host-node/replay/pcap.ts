// pcap.ts — builds and reads packet captures in memory for the replay tool's users and tests:
// classic pcap (microsecond or nanosecond timestamps) and pcapng (one section, one interface, enhanced
// packet blocks) around IP packets framed as raw IP, Ethernet or Linux cooked (SLL), and a reader for
// the classic pcap the replay tool writes. Formats: pcap-savefile(5) / the pcapng draft
// (draft-ietf-opsawg-pcapng). Pure: bytes in, bytes out; never touches files.

export type LinkFraming = 'raw' | 'ethernet' | 'sll';

export interface CapturedPacket {
  /** Capture time in milliseconds since the epoch (fractions kept to the microsecond). */
  ms: number;
  /** The IP packet (header first). */
  ip: Uint8Array;
}

// https://www.tcpdump.org/linktypes.html
export const LINKTYPE = { raw: 101, ethernet: 1, sll: 113 } as const;

/** The packet behind its link-layer header. */
export function frame(ip: Uint8Array, link: LinkFraming): Uint8Array {
  if (link === 'raw') return ip;
  const v6 = (ip[0]! >> 4) === 6;
  const hdr = new Uint8Array(link === 'ethernet' ? 14 : 16);
  if (link === 'ethernet') {
    hdr.set([0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01]);   // locally administered MACs
  } else {
    hdr.set([0, 0, 0, 1, 0, 6, 0x02, 0, 0, 0, 0, 0x01]);          // incoming, ARPHRD_ETHER, 6-byte address
  }
  hdr[hdr.length - 2] = v6 ? 0x86 : 0x08;
  hdr[hdr.length - 1] = v6 ? 0xdd : 0x00;
  const out = new Uint8Array(hdr.length + ip.length);
  out.set(hdr);
  out.set(ip, hdr.length);
  return out;
}

function split(ms: number): { sec: number; usec: number } {
  const us = Math.round(ms * 1000);
  return { sec: Math.floor(us / 1e6), usec: us % 1e6 };
}

/** A classic pcap file (little-endian). */
export function writePcap(packets: readonly CapturedPacket[], opts: { link?: LinkFraming; nanoseconds?: boolean } = {}): Uint8Array {
  const link = opts.link ?? 'raw';
  const frames = packets.map((p) => frame(p.ip, link));
  const out = new Uint8Array(24 + frames.reduce((n, f) => n + 16 + f.length, 0));
  const dv = new DataView(out.buffer);
  dv.setUint32(0, opts.nanoseconds ? 0xa1b23c4d : 0xa1b2c3d4, true);
  dv.setUint16(4, 2, true);
  dv.setUint16(6, 4, true);
  dv.setUint32(16, 262144, true);
  dv.setUint32(20, LINKTYPE[link], true);
  let at = 24;
  packets.forEach((p, k) => {
    const { sec, usec } = split(p.ms);
    const f = frames[k]!;
    dv.setUint32(at, sec, true);
    dv.setUint32(at + 4, opts.nanoseconds ? usec * 1000 : usec, true);
    dv.setUint32(at + 8, f.length, true);
    dv.setUint32(at + 12, f.length, true);
    out.set(f, at + 16);
    at += 16 + f.length;
  });
  return out;
}

/** A pcapng file: a section header, one interface (microsecond resolution), one enhanced packet block each. */
export function writePcapng(packets: readonly CapturedPacket[], opts: { link?: LinkFraming } = {}): Uint8Array {
  const link = opts.link ?? 'raw';
  const blocks: Uint8Array[] = [];
  const block = (type: number, body: Uint8Array) => {
    const len = 12 + ((body.length + 3) & ~3);
    const b = new Uint8Array(len);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, type, true);
    dv.setUint32(4, len, true);
    b.set(body, 8);
    dv.setUint32(len - 4, len, true);
    blocks.push(b);
  };
  const shb = new Uint8Array(16);
  const s = new DataView(shb.buffer);
  s.setUint32(0, 0x1a2b3c4d, true);
  s.setUint16(4, 1, true);
  s.setBigInt64(8, -1n, true);   // section length unknown
  block(0x0a0d0d0a, shb);
  const idb = new Uint8Array(8);
  new DataView(idb.buffer).setUint16(0, LINKTYPE[link], true);
  new DataView(idb.buffer).setUint32(4, 262144, true);
  block(1, idb);
  for (const p of packets) {
    const f = frame(p.ip, link);
    const body = new Uint8Array(20 + f.length);
    const dv = new DataView(body.buffer);
    const us = BigInt(Math.round(p.ms * 1000));
    dv.setUint32(0, 0, true);
    dv.setUint32(4, Number(us >> 32n), true);
    dv.setUint32(8, Number(us & 0xffffffffn), true);
    dv.setUint32(12, f.length, true);
    dv.setUint32(16, f.length, true);
    body.set(f, 20);
    block(6, body);
  }
  const out = new Uint8Array(blocks.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of blocks) { out.set(b, at); at += b.length; }
  return out;
}

/** Reads a little-endian classic pcap (what the replay tool writes): link type and frames. */
export function readPcap(bytes: Uint8Array): { linktype: number; packets: Array<{ sec: number; usec: number; data: Uint8Array }> } {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 24 || dv.getUint32(0, true) !== 0xa1b2c3d4) throw new Error('not a little-endian microsecond pcap');
  const packets: Array<{ sec: number; usec: number; data: Uint8Array }> = [];
  let at = 24;
  while (at < bytes.length) {
    if (at + 16 > bytes.length) throw new Error(`truncated record header at byte ${at}`);
    const len = dv.getUint32(at + 8, true);
    if (at + 16 + len > bytes.length) throw new Error(`truncated record at byte ${at}`);
    packets.push({ sec: dv.getUint32(at, true), usec: dv.getUint32(at + 4, true), data: bytes.slice(at + 16, at + 16 + len) });
    at += 16 + len;
  }
  return { linktype: dv.getUint32(20, true), packets };
}
