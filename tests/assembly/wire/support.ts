// Shared helpers for the wire tests: a wire core whose packets sit at the very end of memory (so any
// read past the packet traps), and the parsed Flow read back as plain values.
import { loadTestingCore, type TestingCore } from '../../support/testing-core';
import { formatIP, type PacketSpec, type ProtoName, type ExtHeaderSpec } from '../../../host-node/core/packet';

// Reasons (assembly/verdict.ts).
export const R = { NONE: 0, TRUNCATED: 1, BAD_VERSION: 2, BAD_HEADER: 3, EXT_LIMIT: 5 } as const;
export const FRAG = { NONE: 0, FIRST: 1, LATER: 2 } as const;

export interface FlowView {
  family: number; proto: number; sport: number; dport: number; icmpType: number;
  src: string; dst: string; words: number[];
  pkt: number; len: number; cap: number; l3len: number; l4len: number; frag: number;
  tcpFlags: number; icmpCode: number; ttl: number; isIcmpError: boolean; innerOff: number;
  csumPartial: boolean; pads: number;
}

export interface Wire {
  core: TestingCore;
  x: TestingCore['x'];
  /** Address of a packet of `len` bytes placed so that it ends exactly at the end of memory. */
  endPtr(len: number): number;
  /** Parses `bytes` placed at the end of memory; returns the reason. */
  parse(bytes: Uint8Array, cap?: number): number;
  /** The packet bytes as they are now (after a rewrite). */
  bytes(): Uint8Array;
  flow(w?: 0 | 1): FlowView;
}

// Tuple words are raw little-endian loads of the address bytes.
export function wordsToBytes(words: number[], family: number): Uint8Array {
  const n = family === 4 ? 1 : 4;
  const out = new Uint8Array(n * 4);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < n; i++) dv.setUint32(i * 4, words[i]! >>> 0, true);
  return out;
}

export function bytesToWords(b: Uint8Array): [number, number, number, number] {
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  const w = (i: number) => (i * 4 < b.length ? dv.getUint32(i * 4, true) : 0);
  return [w(0), w(1), w(2), w(3)];
}

export function loadWire(): Wire {
  const core = loadTestingCore('wire');
  // One page beyond what the core's allocator owns: packets live at its very end.
  core.memory.grow(1);
  const x = core.x;
  let last = { ptr: 0, len: 0 };
  const wire: Wire = {
    core,
    x,
    endPtr: (len) => core.memory.buffer.byteLength - len,
    parse(bytes, cap = bytes.length) {
      const ptr = wire.endPtr(bytes.length);
      core.put(bytes, ptr);
      last = { ptr, len: bytes.length };
      return x.parsePkt!(ptr, bytes.length, cap) >>> 0;
    },
    bytes: () => core.get(last.ptr, last.len),
    flow(w = 0) {
      const family = x.getFamily!(w);
      const words = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => x.getAddr!(w, i) >>> 0);
      const addr = (ws: number[]) => (family === 4 || family === 6 ? formatIP(wordsToBytes(ws, family)) : '');
      return {
        family, proto: x.getProto!(w), sport: x.getSport!(w), dport: x.getDport!(w), icmpType: x.getIcmpType!(w),
        src: addr(words.slice(0, 4)), dst: addr(words.slice(4)), words,
        pkt: x.getPkt!(w) >>> 0, len: x.getLen!(w) >>> 0, cap: x.getCap!(w) >>> 0, l3len: x.getL3len!(w),
        l4len: x.getL4len!(w) >>> 0, frag: x.getFrag!(w), tcpFlags: x.getTcpFlags!(w), icmpCode: x.getIcmpCode!(w),
        ttl: x.getTtl!(w), isIcmpError: x.getIsIcmpError!(w) === 1, innerOff: x.getInnerOff!(w) >>> 0,
        csumPartial: x.getCsumPartial!(w) === 1, pads: x.getPads!(w),
      };
    },
  };
  return wire;
}

/** A small seeded PRNG (mulberry32) so failures reproduce. */
export function rng(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    range: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    bool: (p = 0.5) => next() < p,
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!,
    bytes: (n: number) => Uint8Array.from({ length: n }, () => Math.floor(next() * 256)),
  };
}
export type Rng = ReturnType<typeof rng>;

export const hex = (s: string) => Uint8Array.from((s.replace(/[^0-9a-f]/gi, '').match(/../g) ?? []).map((h) => parseInt(h, 16)));
export const toHex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

export function randomV4(r: Rng): string {
  return [r.int(256), r.int(256), r.int(256), r.int(256)].join('.');
}
export function randomV6(r: Rng): string {
  // Mix in zero groups so `::` compression paths are exercised.
  const g = Array.from({ length: 8 }, () => (r.bool(0.3) ? 0 : r.int(0x10000)));
  return formatIP(Uint8Array.from(g.flatMap((x) => [x >> 8, x & 0xff])));
}

// ---- random packets ----

export interface SpecOptions {
  family?: 4 | 6;
  proto?: ProtoName | number;
  frag?: boolean;        // sometimes make the packet a fragment
  opts?: boolean;        // sometimes add IPv4 options / IPv6 extension headers
  icmpTypes?: number[];  // ICMP types to draw from (default: id-bearing and other non-error types)
}

export function randomSpec(r: Rng, o: SpecOptions = {}): PacketSpec {
  const family = o.family ?? r.pick([4, 6] as const);
  const v6 = family === 6;
  const proto = o.proto ?? r.pick<ProtoName | number>(['tcp', 'udp', 'sctp', v6 ? 'icmpv6' : 'icmp', 47]);
  const s: PacketSpec = {
    src: v6 ? randomV6(r) : randomV4(r),
    dst: v6 ? randomV6(r) : randomV4(r),
    proto,
    ttl: r.int(256),
    tos: r.int(256),
    payload: r.bytes(r.bool(0.3) ? 0 : r.int(120)),
  };
  if (!v6) { s.id = r.int(0x10000); s.df = r.bool(); }
  else s.flowLabel = r.int(0x100000);
  // IPv6 payload length 0 would read as a jumbogram: give a bare unknown protocol a body.
  if (v6 && typeof proto === 'number') s.payload = r.bytes(r.range(1, 120));
  if (proto === 'tcp' || proto === 'udp' || proto === 'sctp') {
    s.sport = r.int(0x10000);
    s.dport = r.int(0x10000);
  }
  if (proto === 'tcp') {
    s.flags = r.int(256);
    s.seq = Math.floor(r.next() * 2 ** 32);
    s.ack = Math.floor(r.next() * 2 ** 32);
    s.window = r.int(0x10000);
    if (r.bool(0.4)) s.tcpOptions = r.bytes(r.int(41));
  }
  if (proto === 'udp' && !v6 && r.bool(0.15)) s.udpZeroChecksum = true;
  if (proto === 'sctp') {
    s.vtag = Math.floor(r.next() * 2 ** 32);
    if (r.bool(0.3)) delete s.payload;   // the default INIT chunk
  }
  if (proto === 'icmp' || proto === 'icmpv6') {
    const types = o.icmpTypes ?? (v6 ? [128, 129, 128, 129, 133, 135] : [8, 0, 8, 0, 13, 14, 9]);
    const type = r.pick(types);
    s.icmp = { type, code: r.int(3), id: r.int(0x10000), seq: r.int(0x10000) };
  }
  if (o.opts && r.bool(0.5)) {
    if (!v6) s.ipOptions = r.bytes(r.int(41));
    else s.ext = randomExtChain(r, r.range(1, 4));
  }
  if (o.frag && r.bool(0.3)) {
    const later = r.bool();
    s.frag = { offset: later ? 8 * r.range(1, 8000) : 0, more: later ? r.bool() : true, id: r.int(0x10000) };
  }
  return s;
}

export function randomExtChain(r: Rng, n: number): ExtHeaderSpec[] {
  const out: ExtHeaderSpec[] = [];
  for (let i = 0; i < n; i++) {
    const type = i === 0 && r.bool() ? 0 : r.pick([60, 43, 51]);
    const e: ExtHeaderSpec = { type };
    if (type === 0 || type === 60) e.data = optionBytes(r);
    if (type === 43) { e.data = r.bytes(4 + 16 * r.int(3)); e.segmentsLeft = 0; e.routingType = r.pick([0, 4, 253]); }
    if (type === 51) e.data = r.bytes(4 + 8 * r.int(3));
    out.push(e);
  }
  return out;
}

// A run of well-formed TLV options (RFC 8200 §4.2) of an experimental type.
function optionBytes(r: Rng): Uint8Array {
  const out: number[] = [];
  const n = r.int(3);
  for (let i = 0; i < n; i++) {
    const len = r.int(10);
    out.push(0x1e, len, ...r.bytes(len));
  }
  return Uint8Array.from(out);
}

/** Equal bytes, except that a 16-bit checksum may be 0x0000 in one and 0xffff in the other
 *  (the two ones-complement zeros; incremental and full computation may pick different ones). */
export function sameModuloZero(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue;
    const at = i & ~1;
    const va = ((a[at]! << 8) | a[at + 1]!), vb = ((b[at]! << 8) | b[at + 1]!);
    if (!((va === 0 && vb === 0xffff) || (va === 0xffff && vb === 0))) return false;
    i = at + 1;
  }
  return true;
}

// ---- shared assertions ----
import { expect } from 'vitest';
import { buildPacket, decodePacket, parseIP, PROTO } from '../../../host-node/core/packet';

const ID_TYPES_V4 = [0, 8, 13, 14, 15, 16, 17, 18];

/**
 * The identifier the core reads from a message built from `icmp`: IPv4's query types carry one;
 * in IPv6 conntrack takes bytes 4–5 of every message but the errors (1–4) as one, which the
 * builder fills with the id (or, given neither id nor seq, the high half of an MTU or pointer).
 */
function icmpIdOf(v6: boolean, type: number, icmp: PacketSpec['icmp']): number {
  if (!v6) return ID_TYPES_V4.includes(type) ? icmp?.id ?? 0 : 0;
  if (type >= 1 && type <= 4) return 0;
  if (icmp?.id !== undefined || icmp?.seq !== undefined || type === 128 || type === 129) return icmp?.id ?? 0;
  return ((icmp?.mtu ?? icmp?.pointer ?? 0) >>> 16) & 0xffff;
}

/** Parses `bytes` (built from `spec`) and checks every Flow field against the spec and the
 *  independent JS decoder. */
export function expectParsed(w: Wire, spec: PacketSpec, bytes: Uint8Array): FlowView {
  const reason = w.parse(bytes);
  if (reason !== R.NONE) {
    expect(reason, `reason for ${JSON.stringify(spec, (_k, v) => (v instanceof Uint8Array ? `<${v.length}>` : v))}`).toBe(R.NONE);
  }
  const f = w.flow(0);
  const v6 = spec.src.includes(':');
  const proto = typeof spec.proto === 'number' ? spec.proto : PROTO[spec.proto];
  const later = (spec.frag?.offset ?? 0) > 0;
  const d = decodePacket(bytes);
  let sport = 0, dport = 0, icmpType = 0, icmpCode = 0, tcpFlags = 0;
  if (!later) {
    if (proto === 6 || proto === 17 || proto === 132) { sport = spec.sport ?? 12345; dport = spec.dport ?? (proto === 17 ? 53 : 80); }
    if (proto === 6) tcpFlags = typeof spec.flags === 'number' ? spec.flags : d.flags ? flagBits(d.flags) : 0;
    if ((proto === 1 && !v6) || (proto === 58 && v6)) {
      icmpType = spec.icmp?.type ?? (v6 ? 128 : 8);
      icmpCode = spec.icmp?.code ?? 0;
      sport = dport = icmpIdOf(v6, icmpType, spec.icmp);
    }
  }
  // One comparison of everything (fast enough for thousands of packets).
  const got = {
    family: f.family, proto: f.proto, src: f.src, dst: f.dst, ttl: f.ttl, frag: f.frag, len: f.len,
    l3len: f.l3len, l4len: f.l4len, isIcmpError: f.isIcmpError, innerOff: f.innerOff, pads: f.pads,
    srcBytes: Array.from(wordsToBytes(f.words.slice(0, 4), f.family)), dstBytes: Array.from(wordsToBytes(f.words.slice(4), f.family)),
    unusedWords: v6 ? [] : f.words.slice(1, 4).concat(f.words.slice(5)),
    sport: f.sport, dport: f.dport, icmpType: f.icmpType, icmpCode: f.icmpCode, tcpFlags: f.tcpFlags,
  };
  const want = {
    family: v6 ? 6 : 4, proto, src: d.src, dst: d.dst, ttl: spec.ttl ?? 64,
    frag: later ? FRAG.LATER : spec.frag?.more ? FRAG.FIRST : FRAG.NONE, len: bytes.length,
    l3len: d.headerLength, l4len: bytes.length - d.headerLength, isIcmpError: false, innerOff: 0, pads: 0,
    srcBytes: Array.from(parseIP(spec.src)), dstBytes: Array.from(parseIP(spec.dst)),
    unusedWords: v6 ? [] : [0, 0, 0, 0, 0, 0],
    sport, dport, icmpType, icmpCode, tcpFlags,
  };
  expect(got).toEqual(want);
  return f;
}

function flagBits(s: string): number {
  let b = 0;
  for (const ch of s) b |= 1 << 'FSRPAUEC'.indexOf(ch);
  return b;
}

/** Every strict prefix of a valid packet is R_TRUNCATED (its IP length claims more), never a trap. */
export function expectPrefixesTruncated(w: Wire, bytes: Uint8Array): void {
  for (let n = 0; n < bytes.length; n++) {
    expect(w.parse(bytes.subarray(0, n)), `prefix ${n}/${bytes.length}`).toBe(R.TRUNCATED);
  }
}

/** The packet cut at `n` bytes with its IP length field(s) relabelled to match, so the IP layer is
 *  consistent and the layers above must notice what is missing. */
export function relabel(bytes: Uint8Array, n: number): Uint8Array {
  const b = bytes.slice(0, n);
  const dv = new DataView(b.buffer);
  if (b[0]! >> 4 === 4) dv.setUint16(2, n);
  else dv.setUint16(4, n - 40);
  return b;
}

/** For every cut point from `from` to the full length: the relabelled packet parses to
 *  `expected(n)`, and when that is R_NONE the ports and protocol match the full packet's. */
export function expectCuts(w: Wire, bytes: Uint8Array, from: number, expected: (n: number) => number): void {
  expect(w.parse(bytes)).toBe(R.NONE);
  const full = w.flow(0);
  for (let n = from; n <= bytes.length; n++) {
    const reason = w.parse(relabel(bytes, n));
    // An IPv6 payload length of 0 before a hop-by-hop header reads as a jumbogram, refused as such.
    const want = bytes[0]! >> 4 === 6 && n === 40 && bytes[6] === 0 ? R.BAD_HEADER : expected(n);
    expect(reason, `cut at ${n}/${bytes.length}`).toBe(want);
    if (reason === R.NONE) {
      const f = w.flow(0);
      expect([f.proto, f.sport, f.dport, f.l4len]).toEqual([full.proto, full.sport, full.dport, n - full.l3len]);
    }
  }
}

// ---- ICMP errors ----

export const ERROR_TYPES_V4 = [3, 4, 5, 11, 12];
export const ERROR_TYPES_V6 = [1, 2, 3, 4];

/** The spec of an ICMP/ICMPv6 error from a router to the quoted packet's source, quoting `quote`. */
export function errorSpec(r: Rng, family: 4 | 6, quote: Uint8Array, src: string): PacketSpec {
  const v6 = family === 6;
  const type = r.pick(v6 ? ERROR_TYPES_V6 : ERROR_TYPES_V4);
  return {
    src: v6 ? 'fd00::ff' : '198.18.255.1', dst: src, proto: v6 ? 'icmpv6' : 'icmp',
    icmp: { type, code: r.int(4), mtu: type === (v6 ? 2 : 3) ? 1280 : undefined, quote },
  };
}

export function errorPacket(r: Rng, family: 4 | 6, quote: Uint8Array, src: string): Uint8Array {
  return buildPacket(errorSpec(r, family, quote, src));
}

/** A random packet to be quoted, and a quote of it: whole, or cut at least 8 bytes into its
 *  transport header (never at 17: half a TCP checksum). */
export function randomQuote(r: Rng, family: 4 | 6, o: SpecOptions = {}): { spec: PacketSpec; full: Uint8Array; quote: Uint8Array; l3: number } {
  const spec = randomSpec(r, { family, opts: true, icmpTypes: family === 6 ? [128, 129] : [8, 0, 13], ...o });
  const full = buildPacket(spec);
  const l3 = decodePacket(full).headerLength;
  let len = full.length;
  if (r.bool(0.6) && full.length > l3 + 8) {
    len = r.range(Math.min(l3 + 8, full.length), full.length);
    if (len === l3 + 17) len = l3 + 16;
  }
  return { spec, full, quote: full.slice(0, len), l3 };
}

/** The error parsed: outer fields, and `inner` matching the quoted packet's spec. */
export function expectQuoted(w: Wire, bytes: Uint8Array, spec: PacketSpec, quote: Uint8Array, full: Uint8Array): FlowView {
  expect(w.parse(bytes, bytes.length + 100)).toBe(R.NONE);
  const f = w.flow(0);
  const v6 = f.family === 6;
  expect(f.isIcmpError).toBe(true);
  expect([f.sport, f.dport]).toEqual([0, 0]);
  expect(f.innerOff).toBe(f.l3len + 8);
  const q = w.flow(1);
  const d = decodePacket(full);
  const later = (spec.frag?.offset ?? 0) > 0;
  const proto = typeof spec.proto === 'number' ? spec.proto : PROTO[spec.proto];
  expect(q).toMatchObject({
    family: v6 ? 6 : 4, proto, src: d.src, dst: d.dst, ttl: spec.ttl ?? 64, pkt: f.pkt + f.innerOff,
    len: quote.length, cap: bytes.length + 100 - f.innerOff, l3len: d.headerLength, l4len: quote.length - d.headerLength,
    isIcmpError: false, tcpFlags: 0, pads: 0, csumPartial: false,
  });
  let sport = 0, dport = 0, icmpType = 0;
  if (!later) {
    if (proto === 6 || proto === 17 || proto === 132) { sport = spec.sport!; dport = spec.dport!; }
    if (proto === (v6 ? 58 : 1)) {
      icmpType = spec.icmp!.type!;
      sport = dport = icmpIdOf(v6, icmpType, spec.icmp);
    }
  }
  expect([q.sport, q.dport, q.icmpType]).toEqual([sport, dport, icmpType]);
  return f;
}
