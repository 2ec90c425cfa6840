// packet.ts — builds and decodes IPv4/IPv6 packets (TCP, UDP, SCTP, ICMP, ICMPv6, IPv4 options, IPv6
// extension headers, fragments, ICMP errors quoting a packet) with correct checksums, for tests, the
// demo CLI and the browser playground. Platform-neutral: no `node:` imports, no I/O. An independent
// implementation of the wire formats (RFC 791, 8200, 9293, 768, 9260, 792, 4443), deliberately not
// sharing code with the WebAssembly core it is used to check. Never used on the packet path.

import { foldSum, get16, get32, onesSum, pseudoSum, put16, put32, sctpChecksum } from './checksum.js';

export type ProtoName = 'tcp' | 'udp' | 'sctp' | 'icmp' | 'icmpv6';

export const PROTO: Record<ProtoName, number> = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58, sctp: 132 };

/** One IPv6 extension header. `raw` is used as is (byte 0, the next header, is filled in). */
export interface ExtHeaderSpec {
  type: number;            // 0 hop-by-hop, 43 routing, 44 fragment, 51 AH, 60 destination options, or any
  data?: Uint8Array;       // options (0, 60, unknown types), routing data after byte 4 (43), ICV (51)
  raw?: Uint8Array;
  routingType?: number;
  segmentsLeft?: number;
  offset?: number;         // fragment: byte offset (multiple of 8)
  more?: boolean;
  id?: number;
  spi?: number;            // AH
  seq?: number;
}

export interface FragSpec {
  offset: number;          // bytes, multiple of 8
  more: boolean;
  id?: number;
}

export interface IcmpSpec {
  type?: number;           // default echo request (8 / 128)
  code?: number;
  id?: number;
  seq?: number;
  mtu?: number;            // fragmentation needed / packet too big
  pointer?: number;        // parameter problem
  quote?: Uint8Array;      // for errors: the offending packet (as much of it as the error carries)
}

export interface PacketSpec {
  family?: 4 | 6;          // inferred from the addresses
  src: string;
  dst: string;
  proto: ProtoName | number;
  sport?: number;
  dport?: number;
  flags?: string | number; // TCP: letters F S R P A U E C, e.g. 'S', 'SA', 'FA'; default 'S'
  seq?: number;
  ack?: number;
  window?: number;
  urgent?: number;
  tcpOptions?: Uint8Array; // zero-padded to 4 bytes
  vtag?: number;           // SCTP verification tag
  payload?: Uint8Array | string; // SCTP: the chunks (default: one minimal INIT chunk)
  ttl?: number;            // TTL / hop limit, default 64
  tos?: number;            // TOS / traffic class
  flowLabel?: number;
  id?: number;             // IPv4 identification
  df?: boolean;
  ipOptions?: Uint8Array;  // IPv4 options, zero-padded (EOL) to 4 bytes, ≤ 40
  ext?: ExtHeaderSpec[];   // IPv6 extension headers, in order
  frag?: FragSpec;         // the packet is one fragment; with offset > 0 it carries `payload` only
  icmp?: IcmpSpec;
  udpZeroChecksum?: boolean;
}

export interface DecodedPacket {
  family: 4 | 6;
  proto: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  ttl: number;
  length: number;          // IP total length (for a quoted packet: as its header claims)
  headerLength: number;    // IP header with options / extension headers
  frag?: { offset: number; more: boolean; id: number };
  flags?: string;
  seq?: number;
  ack?: number;
  vtag?: number;
  icmp?: { type: number; code: number; id?: number; seq?: number; inner?: DecodedPacket };
  payload: Uint8Array;     // after the transport header (after the IP header if none is parsed)
  checksumsOk: boolean;
}

const TCP_FLAG_LETTERS = 'FSRPAUEC';
const EXT_MAX = 8;

// ---- addresses ----

/** Parses dotted-quad IPv4 or RFC 4291 IPv6 text (with `::` and a trailing dotted quad). Throws. */
export function parseIP(text: string): Uint8Array {
  if (typeof text !== 'string') throw new Error(`bad IP address ${String(text)}: an address is text (a.b.c.d or IPv6)`);
  return text.includes(':') ? parseV6(text) : parseV4(text);
}

function parseV4(text: string): Uint8Array {
  const out = parseDottedQuad(text);
  if (out === null) throw new Error(`bad IPv4 address: ${text}`);
  return out;
}

/**
 * a.b.c.d in decimal, each part 0–255 without leading zeros (some parsers read those as octal), or
 * null. One pass over the characters: control-plane paths (IPVS keys, ipset members) read tens of
 * thousands of these.
 */
export function parseDottedQuad(text: string): Uint8Array | null {
  const out = new Uint8Array(4);
  let part = 0, digits = 0, value = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || part > 3) return null;
      out[part++] = value;
      digits = value = 0;
    } else {
      if (c < 48 || c > 57 || (digits === 1 && value === 0)) return null;
      value = value * 10 + (c - 48);
      if (++digits > 3 || value > 255) return null;
    }
  }
  return part === 4 ? out : null;
}

function parseV6(text: string): Uint8Array {
  const bad = () => new Error(`bad IPv6 address: ${text}`);
  const halves = text.split('::');
  if (halves.length > 2) throw bad();
  const groups = (s: string): number[] => {
    if (s === '') return [];
    const out: number[] = [];
    const parts = s.split(':');
    parts.forEach((p, i) => {
      if (i === parts.length - 1 && p.includes('.')) {
        const v4 = parseV4(p);
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) {
        out.push(parseInt(p, 16));
      } else {
        throw bad();
      }
    });
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (halves.length === 2 && head.length + tail.length > 7) throw bad();
  if (halves.length === 1 && head.length !== 8) throw bad();
  if (halves.length === 2 && halves[0]!.includes('.')) throw bad();
  const all = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  const out = new Uint8Array(16);
  all.forEach((g, i) => { out[2 * i] = g >> 8; out[2 * i + 1] = g & 0xff; });
  return out;
}

/** Formats 4 or 16 bytes as text: dotted quad, or IPv6 as glibc inet_ntop() prints it — RFC 5952
 *  (the first longest run of two or more zero groups as `::`), IPv4-mapped (::ffff:a.b.c.d) and
 *  IPv4-compatible (::a.b.c.d) addresses with a dotted tail. */
export function formatIP(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) throw new Error(`an address has 4 or 16 bytes, not ${bytes.length}`);
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((bytes[2 * i]! << 8) | bytes[2 * i + 1]!);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const dotted = () => Array.from(bytes.subarray(12)).join('.');
  if (best === 0 && (bestLen === 6 || (bestLen === 5 && g[5] === 0xffff))) {
    return bestLen === 6 ? `::${dotted()}` : `::ffff:${dotted()}`;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

// ---- building ----

function protoNumber(p: ProtoName | number): number {
  if (typeof p === 'number') {
    if (!Number.isInteger(p) || p < 0 || p > 255) throw new Error(`bad protocol number ${p}`);
    return p;
  }
  if (!Object.hasOwn(PROTO, p)) throw new Error(`unknown protocol ${String(p)}`);
  return PROTO[p];
}

function bytesOf(p: Uint8Array | string | undefined): Uint8Array {
  if (p === undefined) return new Uint8Array(0);
  return typeof p === 'string' ? new TextEncoder().encode(p) : p;
}

const concat = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(parts.flatMap((p) => Array.from(p)));

function tcpFlagBits(f: string | number | undefined): number {
  if (f === undefined) return 0x02;
  if (typeof f === 'number') return f & 0xff;
  let bits = 0;
  for (const ch of f) {
    const i = TCP_FLAG_LETTERS.indexOf(ch.toUpperCase());
    if (i < 0) throw new Error(`unknown TCP flag '${ch}'`);
    bits |= 1 << i;
  }
  return bits;
}

/** TCP flag bits as letters in the order F S R P A U E C ('SA' for SYN+ACK). */
export function tcpFlagString(bits: number): string {
  let s = '';
  for (let i = 0; i < 8; i++) if (bits & (1 << i)) s += TCP_FLAG_LETTERS[i];
  return s;
}

// Types with an identifier/sequence word (echo and ICMPv4's other query pairs).
const icmpHasId = (v6: boolean, t: number) => (v6 ? t === 128 || t === 129 : t === 0 || t === 8 || (t >= 13 && t <= 18));
const icmpIsError = (v6: boolean, t: number) => (v6 ? t >= 1 && t <= 4 : t === 3 || t === 4 || t === 5 || t === 11 || t === 12);

// Default SCTP payload: one INIT chunk (RFC 9260 §3.3.2) with no parameters.
function sctpInitChunk(): Uint8Array {
  const c = new Uint8Array(20);
  c[0] = 1;
  put16(c, 2, 20);
  put32(c, 4, 0x5c7b0001);                  // initiate tag
  put32(c, 8, 65535);                       // a_rwnd
  put16(c, 12, 10); put16(c, 14, 10);       // outbound / inbound streams
  put32(c, 16, 1);                          // initial TSN
  return c;
}

function buildL4(s: PacketSpec, proto: number, src: Uint8Array, dst: Uint8Array): Uint8Array {
  const v6 = src.length === 16;
  const payload = bytesOf(s.payload);
  if (proto === PROTO.tcp) {
    const opts = s.tcpOptions ?? new Uint8Array(0);
    const olen = (opts.length + 3) & ~3;
    if (olen > 40) throw new Error('TCP options exceed 40 bytes');
    const seg = new Uint8Array(20 + olen + payload.length);
    put16(seg, 0, s.sport ?? 12345);
    put16(seg, 2, s.dport ?? 80);
    put32(seg, 4, s.seq ?? 0);
    put32(seg, 8, s.ack ?? 0);
    seg[12] = ((20 + olen) / 4) << 4;
    seg[13] = tcpFlagBits(s.flags);
    put16(seg, 14, s.window ?? 65535);
    put16(seg, 18, s.urgent ?? 0);
    seg.set(opts, 20);
    seg.set(payload, 20 + olen);
    put16(seg, 16, 0xffff ^ foldSum(pseudoSum(src, dst, proto, seg.length) + onesSum(seg)));
    return seg;
  }
  if (proto === PROTO.udp) {
    const seg = new Uint8Array(8 + payload.length);
    put16(seg, 0, s.sport ?? 12345);
    put16(seg, 2, s.dport ?? 53);
    put16(seg, 4, seg.length);
    seg.set(payload, 8);
    if (!s.udpZeroChecksum) {
      const c = 0xffff ^ foldSum(pseudoSum(src, dst, proto, seg.length) + onesSum(seg));
      put16(seg, 6, c === 0 ? 0xffff : c);   // RFC 768: a computed 0 is sent as all ones
    }
    return seg;
  }
  if (proto === PROTO.sctp) {
    const chunks = s.payload === undefined ? sctpInitChunk() : payload;
    const seg = new Uint8Array(12 + chunks.length);
    put16(seg, 0, s.sport ?? 12345);
    put16(seg, 2, s.dport ?? 80);
    put32(seg, 4, s.vtag ?? 0);
    seg.set(chunks, 12);
    // The CRC goes on the wire least significant byte first (what Linux's __le32 field holds).
    new DataView(seg.buffer).setUint32(8, sctpChecksum(seg), true);
    return seg;
  }
  if ((proto === PROTO.icmp && !v6) || (proto === PROTO.icmpv6 && v6)) {
    const ic = s.icmp ?? {};
    const type = ic.type ?? (v6 ? 128 : 8);
    const body = ic.quote ?? payload;
    const msg = new Uint8Array(8 + body.length);
    msg[0] = type;
    msg[1] = ic.code ?? 0;
    if (ic.id !== undefined || ic.seq !== undefined || icmpHasId(v6, type)) {
      put16(msg, 4, ic.id ?? 0);
      put16(msg, 6, ic.seq ?? 0);
    } else if (ic.mtu !== undefined) {
      put32(msg, 4, ic.mtu);
    } else if (ic.pointer !== undefined) {
      if (v6) put32(msg, 4, ic.pointer);
      else msg[4] = ic.pointer;
    }
    msg.set(body, 8);
    const acc = onesSum(msg) + (v6 ? pseudoSum(src, dst, proto, msg.length) : 0);
    put16(msg, 2, 0xffff ^ foldSum(acc));
    return msg;
  }
  return payload;
}

function padOptions(data: Uint8Array, lead: number): Uint8Array {
  // Pad1 / PadN (RFC 8200 §4.2) so that lead + options is a multiple of 8.
  const total = (lead + data.length + 7) & ~7;
  const pad = total - lead - data.length;
  const out = new Uint8Array(total - lead);
  out.set(data);
  if (pad === 1) out[data.length] = 0;
  else if (pad >= 2) { out[data.length] = 1; out[data.length + 1] = pad - 2; }
  return out;
}

function buildExt(e: ExtHeaderSpec, next: number): Uint8Array {
  let h: Uint8Array;
  if (e.raw) {
    h = e.raw.slice();
  } else if (e.type === 44) {
    h = new Uint8Array(8);
    const off = e.offset ?? 0;
    if (off % 8 !== 0 || off < 0 || off > 0xfff8) throw new Error(`bad fragment offset ${off}`);
    put16(h, 2, off | (e.more ? 1 : 0));
    put32(h, 4, e.id ?? 0);
  } else if (e.type === 51) {
    const icv = e.data ?? new Uint8Array(4);
    const len = (12 + icv.length + 7) & ~7;
    h = new Uint8Array(len);
    h[1] = len / 4 - 2;
    put32(h, 4, e.spi ?? 0x100);
    put32(h, 8, e.seq ?? 1);
    h.set(icv, 12);
  } else if (e.type === 43) {
    const data = e.data ?? new Uint8Array(4);
    const len = (4 + data.length + 7) & ~7;
    h = new Uint8Array(len);
    h[1] = len / 8 - 1;
    h[2] = e.routingType ?? 0;
    h[3] = e.segmentsLeft ?? 0;
    h.set(data, 4);
  } else {
    const opts = padOptions(e.data ?? new Uint8Array(0), 2);
    h = new Uint8Array(2 + opts.length);
    h[1] = h.length / 8 - 1;
    h.set(opts, 2);
  }
  h[0] = next;
  return h;
}

/** Throws for a port that is not an integer 0–65535 (cut to 16 bits, it would name another packet). */
export function checkPorts(p: { sport?: number; dport?: number }): void {
  for (const [name, v] of [['sport', p.sport], ['dport', p.dport]] as const) {
    if (v !== undefined && !(Number.isInteger(v) && v >= 0 && v <= 0xffff)) throw new Error(`bad ${name} ${said(v)}: a port is an integer from 0 to 65535`);
  }
}

/** A value a caller passed, for an error message: its JSON text, else what it is (a BigInt or a
 *  Symbol has none, nor an object holding one). */
export function said(v: unknown): string {
  if (typeof v === 'bigint' || typeof v === 'number' || v === undefined) return String(v);
  if (typeof v === 'symbol' || typeof v === 'function') return `a ${typeof v}`;
  try {
    return JSON.stringify(v);
  } catch {
    return 'an object';
  }
}

/** Builds one IP packet from `spec`, every checksum correct. Throws on an impossible spec. */
export function buildPacket(spec: PacketSpec): Uint8Array {
  checkPorts(spec);
  const src = parseIP(spec.src);
  const dst = parseIP(spec.dst);
  if (src.length !== dst.length) throw new Error('source and destination are of different families');
  const family = src.length === 4 ? 4 : 6;
  if (spec.family !== undefined && spec.family !== family) throw new Error(`addresses are not IPv${spec.family}`);
  const proto = protoNumber(spec.proto);
  const frag = spec.frag;
  if (frag && (frag.offset % 8 !== 0 || frag.offset < 0 || frag.offset > 0xfff8)) {
    throw new Error(`bad fragment offset ${frag.offset}`);
  }
  const l4 = frag && frag.offset > 0 ? bytesOf(spec.payload) : buildL4(spec, proto, src, dst);
  const ttl = spec.ttl ?? 64;

  if (family === 4) {
    const opts = spec.ipOptions ?? new Uint8Array(0);
    const olen = (opts.length + 3) & ~3;
    if (olen > 40) throw new Error('IPv4 options exceed 40 bytes');
    const hlen = 20 + olen;
    const total = hlen + l4.length;
    if (total > 0xffff) throw new Error('packet exceeds 65535 bytes');
    const p = new Uint8Array(total);
    p[0] = 0x40 | (hlen / 4);
    p[1] = spec.tos ?? 0;
    put16(p, 2, total);
    put16(p, 4, frag?.id ?? spec.id ?? 0);
    put16(p, 6, (spec.df ? 0x4000 : 0) | (frag?.more ? 0x2000 : 0) | ((frag?.offset ?? 0) / 8));
    p[8] = ttl;
    p[9] = proto;
    p.set(src, 12);
    p.set(dst, 16);
    p.set(opts, 20);
    put16(p, 10, 0xffff ^ foldSum(onesSum(p, 0, hlen)));
    p.set(l4, hlen);
    return p;
  }

  const exts = [...(spec.ext ?? [])];
  if (frag) exts.push({ type: 44, offset: frag.offset, more: frag.more, id: frag.id ?? spec.id ?? 0 });
  const built = exts.map((e, i) => buildExt(e, i + 1 < exts.length ? exts[i + 1]!.type : proto));
  const body = concat(...built, l4);
  if (body.length > 0xffff) throw new Error('payload exceeds 65535 bytes');
  const h = new Uint8Array(40);
  const tc = spec.tos ?? 0;
  put32(h, 0, ((6 << 28) | (tc << 20) | ((spec.flowLabel ?? 0) & 0xfffff)) >>> 0);
  put16(h, 4, body.length);
  h[6] = exts.length ? exts[0]!.type : proto;
  h[7] = ttl;
  h.set(src, 8);
  h.set(dst, 24);
  return concat(h, body);
}

// ---- decoding ----

interface L3 {
  family: 4 | 6;
  proto: number;
  src: Uint8Array;
  dst: Uint8Array;
  ttl: number;
  hlen: number;
  end: number;        // end of the IP payload within the bytes at hand
  length: number;     // total length the header claims
  frag?: { offset: number; more: boolean; id: number };
  headerOk: boolean;
}

// Parses the IP layer. `quoted`: the header of a packet inside an ICMP error, which may be cut short.
function decodeL3(b: Uint8Array, quoted: boolean): L3 {
  if (b.length < 1) throw new Error('empty packet');
  const v = b[0]! >> 4;
  if (v === 4) {
    if (b.length < 20) throw new Error('truncated IPv4 header');
    const hlen = (b[0]! & 15) * 4;
    if (hlen < 20 || hlen > b.length) throw new Error('bad IPv4 header length');
    const total = get16(b, 2);
    if (!quoted && (total < hlen || total > b.length)) throw new Error('bad IPv4 total length');
    const fo = get16(b, 6);
    const frag = (fo & 0x3fff) !== 0 ? { offset: (fo & 0x1fff) * 8, more: (fo & 0x2000) !== 0, id: get16(b, 4) } : undefined;
    return {
      family: 4, proto: b[9]!, src: b.slice(12, 16), dst: b.slice(16, 20), ttl: b[8]!, hlen,
      end: quoted ? (total >= hlen && total < b.length ? total : b.length) : total, length: total, frag,
      headerOk: foldSum(onesSum(b, 0, hlen)) === 0xffff,
    };
  }
  if (v === 6) {
    if (b.length < 40) throw new Error('truncated IPv6 header');
    const plen = get16(b, 4);
    // 0 is a jumbogram's only before a hop-by-hop header; before anything else an empty payload.
    if (!quoted && ((plen === 0 && b[6] === 0) || 40 + plen > b.length)) throw new Error('bad IPv6 payload length');
    const end = quoted ? (plen !== 0 && 40 + plen < b.length ? 40 + plen : b.length) : 40 + plen;
    let nh = b[6]!;
    let off = 40;
    let frag: L3['frag'];
    for (let n = 0; [0, 43, 44, 51, 60].includes(nh); n++) {
      if (n >= EXT_MAX) throw new Error('too many IPv6 extension headers');
      if (off + 8 > end) throw new Error('truncated IPv6 extension header');
      const next = b[off]!;
      if (nh === 44) {
        const fo = get16(b, off + 2);
        frag = { offset: fo & 0xfff8, more: (fo & 1) !== 0, id: get32(b, off + 4) };
        off += 8;
        if (frag.offset > 0) { nh = next; break; }
      } else {
        const hl = nh === 51 ? (b[off + 1]! + 2) * 4 : (b[off + 1]! + 1) * 8;
        if (off + hl > end) throw new Error('truncated IPv6 extension header');
        off += hl;
      }
      nh = next;
    }
    if (frag && frag.offset === 0 && !frag.more) frag = undefined;   // atomic fragment
    return {
      family: 6, proto: nh, src: b.slice(8, 24), dst: b.slice(24, 40), ttl: b[7]!, hlen: off, end,
      length: 40 + plen, frag, headerOk: true,
    };
  }
  throw new Error(`IP version ${v}`);
}

function decodeAt(b: Uint8Array, quoted: boolean): DecodedPacket {
  const l3 = decodeL3(b, quoted);
  const v6 = l3.family === 6;
  const out: DecodedPacket = {
    family: l3.family, proto: l3.proto, src: formatIP(l3.src), dst: formatIP(l3.dst), sport: 0, dport: 0,
    ttl: l3.ttl, length: l3.length, headerLength: l3.hlen, payload: b.slice(l3.hlen, l3.end), checksumsOk: false,
  };
  if (l3.frag) out.frag = l3.frag;
  const seg = b.subarray(l3.hlen, l3.end);
  const later = l3.frag !== undefined && l3.frag.offset > 0;
  if (!later) {
    const need = quoted ? 8 : 0;
    if (l3.proto === PROTO.tcp && seg.length >= Math.max(need, 4)) {
      out.sport = get16(seg, 0);
      out.dport = get16(seg, 2);
      if (seg.length >= 20) {
        const doff = (seg[12]! >> 4) * 4;
        out.seq = get32(seg, 4);
        out.ack = get32(seg, 8);
        out.flags = tcpFlagString(seg[13]!);
        if (!quoted && (doff < 20 || doff > seg.length)) throw new Error('bad TCP data offset');
        out.payload = seg.slice(Math.min(doff, seg.length));
      } else if (!quoted) throw new Error('truncated TCP header');
    } else if ((l3.proto === PROTO.udp || l3.proto === PROTO.sctp) && seg.length >= 8) {
      out.sport = get16(seg, 0);
      out.dport = get16(seg, 2);
      if (l3.proto === PROTO.sctp) {
        if (seg.length < 12 && !quoted) throw new Error('truncated SCTP header');
        out.vtag = get32(seg, 4);
        out.payload = seg.slice(Math.min(12, seg.length));
      } else {
        out.payload = seg.slice(8);
      }
    } else if ((l3.proto === PROTO.icmp && !v6) || (l3.proto === PROTO.icmpv6 && v6)) {
      if (seg.length < 8) throw new Error('truncated ICMP header');
      const type = seg[0]!;
      const icmp: NonNullable<DecodedPacket['icmp']> = { type, code: seg[1]! };
      if (icmpHasId(v6, type)) {
        icmp.id = out.sport = out.dport = get16(seg, 4);
        icmp.seq = get16(seg, 6);
      }
      out.payload = seg.slice(8);
      if (icmpIsError(v6, type) && !quoted) {
        try {
          const inner = decodeAt(seg.subarray(8), true);
          if (inner.family === l3.family) icmp.inner = inner;
        } catch { /* a quote we cannot read: no inner */ }
      }
      out.icmp = icmp;
    } else if ([PROTO.tcp, PROTO.udp, PROTO.sctp].includes(l3.proto) && !quoted) {
      throw new Error('truncated transport header');
    }
  }
  out.checksumsOk = quoted ? l3.headerOk : checksumsOk(b, l3);
  return out;
}

/** Decodes one IP packet (throws on one it cannot read); ICMP errors get their quoted packet. */
export function decodePacket(bytes: Uint8Array): DecodedPacket {
  return decodeAt(bytes, false);
}

function checksumsOk(b: Uint8Array, l3: L3): boolean {
  if (!l3.headerOk) return false;
  // A fragment's transport checksum covers the whole datagram, which no single fragment holds.
  if (l3.frag) return true;
  const seg = b.subarray(l3.hlen, l3.end);
  const v6 = l3.family === 6;
  const pseudo = (len: number) => pseudoSum(l3.src, l3.dst, l3.proto, len);
  switch (l3.proto) {
    case PROTO.tcp:
      return seg.length >= 20 && foldSum(pseudo(seg.length) + onesSum(seg)) === 0xffff;
    case PROTO.udp: {
      if (seg.length < 8) return false;
      const ulen = get16(seg, 4);
      if (ulen < 8 || ulen > seg.length) return false;
      if (get16(seg, 6) === 0) return !v6;   // RFC 768: no checksum (IPv4 only, RFC 8200 §8.1)
      return foldSum(pseudo(ulen) + onesSum(seg, 0, ulen)) === 0xffff;
    }
    case PROTO.sctp:
      return seg.length >= 12 && new DataView(seg.buffer, seg.byteOffset).getUint32(8, true) === sctpChecksum(seg);
    case PROTO.icmp:
    case PROTO.icmpv6: {
      if (v6 !== (l3.proto === PROTO.icmpv6)) return true;   // not this family's ICMP: unknown protocol
      if (seg.length < 8) return false;
      if (foldSum(onesSum(seg) + (v6 ? pseudo(seg.length) : 0)) !== 0xffff) return false;
      // The quoted IPv4 header's own checksum (when the whole header is quoted).
      if (!v6 && icmpIsError(false, seg[0]!) && seg.length >= 28) {
        const q = seg.subarray(8);
        const qh = (q[0]! & 15) * 4;
        if (q[0]! >> 4 === 4 && qh >= 20 && qh <= q.length) return foldSum(onesSum(q, 0, qh)) === 0xffff;
      }
      return true;
    }
    default:
      return true;
  }
}

/** True when every checksum in the packet verifies: IPv4 header, TCP/UDP/ICMP/ICMPv6, SCTP CRC32c,
 *  and an ICMP error's quoted IPv4 header. False for bytes that are not a readable packet. */
export function checksumsValid(bytes: Uint8Array): boolean {
  try {
    return checksumsOk(bytes, decodeL3(bytes, false));
  } catch {
    return false;
  }
}
