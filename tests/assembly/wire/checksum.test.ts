// Internet checksum (RFC 1071), incremental update (RFC 1624 eqn. 3) and CRC32c (RFC 3720 B.4) in the
// core, against independent JS arithmetic and published vectors.
import { describe, expect, it } from 'vitest';
import { loadWire, rng, hex, randomSpec, R } from './support';
import { buildPacket, decodePacket } from '../../../host-node/core/packet';
import { crc32c as crcJs } from '../../../host-node/core/checksum';

const w = loadWire();
const x = w.x;
const S = w.core.scratch;

// Reference: big-endian 16-bit ones-complement sum, folded.
function refSum(b: Uint8Array): number {
  let acc = 0;
  for (let i = 0; i < b.length; i += 2) acc += (b[i]! << 8) | (i + 1 < b.length ? b[i + 1]! : 0);
  while (acc > 0xffff) acc = (acc & 0xffff) + Math.floor(acc / 65536);
  return acc;
}
const swap16 = (v: number) => ((v & 0xff) << 8) | (v >>> 8);
const le16 = (at: number) => w.core.dv().getUint16(at, true);

describe('ones-complement sum', () => {
  it('matches a byte-wise reference for every length 0..300 at odd and even addresses', () => {
    const r = rng(1);
    for (let len = 0; len <= 300; len++) {
      for (const off of [0, 1, 3]) {
        const b = r.bytes(len);
        w.core.put(b, S + off);
        // The core sums in load order (byte-swapped words); swapping back gives the network sum.
        expect(swap16(x.csumSum!(S + off, len)), `len ${len} off ${off}`).toBe(len === 0 ? 0 : refSum(b));
      }
    }
  });

  it('carries correctly over long runs of 0xff', () => {
    const b = new Uint8Array(65534).fill(0xff);
    w.core.put(b, S);
    expect(x.csumSum!(S, b.length)).toBe(0xffff);
    w.core.put(new Uint8Array([0xff]), S + 65534);
    expect(x.csumSum!(S, 65535)).toBe(0x00ff);   // odd tail: the high byte of a padded word
    b.fill(0x80);
    w.core.put(b, S);
    expect(swap16(x.csumSum!(S, b.length))).toBe(refSum(b));
  });
});

describe('IPv4 header checksum', () => {
  // The worked example used in many references (RFC 1071 style): checksum 0xb861.
  const hdr = hex('4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7');

  it('computes the known value with the field taken as zero', () => {
    w.core.put(hdr, S);
    expect(x.csumIpv4Valid!(S, 20)).toBe(1);
    expect(swap16(x.csumIpv4!(S, 20))).toBe(0xb861);
    const zeroed = hdr.slice();
    zeroed[10] = 0; zeroed[11] = 0;
    w.core.put(zeroed, S);
    expect(swap16(x.csumIpv4!(S, 20))).toBe(0xb861);
    expect(x.csumIpv4Valid!(S, 20)).toBe(0);
  });

  it('headers of 20 to 60 bytes (options too) verify exactly when their words sum to 0xffff', () => {
    const r = rng(11);
    for (let k = 0; k < 400; k++) {
      const hlen = 20 + 4 * (k % 11);
      const b = r.bytes(hlen);
      if (k % 2 === 0) {
        // Give it a correct checksum: the field is the complement of the sum over the rest.
        b[10] = 0; b[11] = 0;
        const c = ~refSum(b) & 0xffff;
        b[10] = c >> 8; b[11] = c & 0xff;
      }
      w.core.put(b, S);
      expect(x.csumIpv4Valid!(S, hlen), `header ${k} of ${hlen} bytes`).toBe(refSum(b) === 0xffff ? 1 : 0);
      if (k % 2 === 0) expect(x.csumIpv4Valid!(S, hlen)).toBe(1);
    }
  });

  it('detects any single changed byte', () => {
    for (let i = 0; i < 20; i++) {
      if (i === 10 || i === 11) continue;
      const b = hdr.slice();
      b[i] = b[i]! ^ 0x10;
      w.core.put(b, S);
      expect(x.csumIpv4Valid!(S, 20), `byte ${i}`).toBe(0);
    }
  });
});

describe('full transport checksum', () => {
  it('equals the builder\'s for TCP, UDP, ICMP and ICMPv6 over both families (pseudo-header or not)', () => {
    const r = rng(6);
    const field: Record<string, number> = { tcp: 16, udp: 6, icmp: 2, icmpv6: 2 };
    for (let i = 0; i < 2000; i++) {
      const family = r.pick([4, 6] as const);
      const proto = r.pick(['tcp', 'udp', family === 6 ? 'icmpv6' : 'icmp'] as const);
      const b = buildPacket({ ...randomSpec(r, { family, proto, opts: true }), udpZeroChecksum: false });
      expect(w.parse(b)).toBe(R.NONE);
      const at = decodePacket(b).headerLength + field[proto]!;
      const stored = (b[at]! << 8) | b[at + 1]!;
      let c = swap16(x.csumL4!(0, field[proto]!));
      if (proto === 'udp' && c === 0) c = 0xffff;
      expect(c === stored || (c === 0xffff && stored === 0) || (c === 0 && stored === 0xffff), `case ${i}`).toBe(true);
    }
  });
});

describe('incremental update (RFC 1624 eqn. 3)', () => {
  // A 64-byte block whose checksum field (offset 10) makes the whole block sum to 0xffff.
  function block(r: ReturnType<typeof rng>): Uint8Array {
    const b = r.bytes(64);
    if (r.bool(0.2)) b.fill(r.pick([0, 0xff]), 0, r.int(64));  // runs that push sums to ±0
    b[10] = 0; b[11] = 0;
    const c = 0xffff ^ refSum(b);
    b[10] = c >> 8; b[11] = c & 0xff;
    return b;
  }
  const sameSum = (a: number, b: number) => a === b || (a === 0 && b === 0xffff) || (a === 0xffff && b === 0);

  it('a changed 16-bit word keeps the block valid and equals a full recompute', () => {
    const r = rng(2);
    for (let i = 0; i < 5000; i++) {
      const b = block(r);
      w.core.put(b, S);
      let at = 2 * r.int(32);
      if (at === 10) at = 12;
      const old = le16(S + at);
      const neu = r.bool(0.1) ? r.pick([0, 0xffff, old]) : r.int(0x10000);
      w.core.dv().setUint16(S + at, neu, true);
      x.csumUpdate16!(S + 10, old, neu);
      const got = w.core.get(S, 64);
      expect(refSum(got)).toBe(0xffff);
      const full = got.slice(); full[10] = 0; full[11] = 0;
      expect(sameSum((got[10]! << 8) | got[11]!, 0xffff ^ refSum(full))).toBe(true);
    }
  });

  it('a changed 32-bit word (an IPv4 address) keeps the block valid', () => {
    const r = rng(3);
    for (let i = 0; i < 5000; i++) {
      const b = block(r);
      w.core.put(b, S);
      const at = 12 + 4 * r.int(13);
      const dv = w.core.dv();
      const old = dv.getUint32(S + at, true);
      const neu = r.bool(0.1) ? r.pick([0, 0xffffffff, old]) : Math.floor(r.next() * 2 ** 32);
      dv.setUint32(S + at, neu, true);
      x.csumUpdate32!(S + 10, old, neu);
      expect(refSum(w.core.get(S, 64))).toBe(0xffff);
    }
  });

  it('partial (offload) fields get the plain folded sum of the change', () => {
    const r = rng(4);
    for (let i = 0; i < 3000; i++) {
      const a = r.bytes(4), b = r.bytes(4);
      // A field holding the folded sum of some bytes `a`; replacing `a` by `b` must give fold(sum(b')).
      const rest = r.bytes(12);
      const sumOf = (addr: Uint8Array) => refSum(Uint8Array.from([...addr, ...rest]));
      const field = S + 100;
      w.core.dv().setUint16(field, swap16(sumOf(a)), true);
      x.csumUpdate32Partial!(field, new DataView(a.buffer).getUint32(0, true), new DataView(b.buffer).getUint32(0, true));
      expect(sameSum(swap16(le16(field)), sumOf(b))).toBe(true);
    }
  });
});

describe('CRC32c', () => {
  const crc = (b: Uint8Array) => { w.core.put(b, S); return x.crc32c!(S, b.length) >>> 0; };

  it('matches the RFC 3720 B.4 vectors and the standard check value', () => {
    expect(crc(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
    expect(crc(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))).toBe(0x113fdb5c);
    expect(crc(new TextEncoder().encode('123456789'))).toBe(0xe3069283);
    expect(crc(new Uint8Array(0))).toBe(0);
  });

  it('matches a bitwise implementation for every length 0..200 and unaligned starts', () => {
    const r = rng(5);
    for (let len = 0; len <= 200; len++) {
      const b = r.bytes(len);
      const off = r.int(8);
      w.core.put(b, S + off);
      expect(x.crc32c!(S + off, len) >>> 0, `len ${len}`).toBe(crcJs(b));
    }
  });

  it('verifies a captured SCTP INIT (sctp-www.cap) and recomputes its checksum', () => {
    // SCTP common header + INIT chunk from the Wireshark sample capture, as quoted by dpkt's tests.
    const init = hex(`8044 0050 0000 0000 30ba ef54 0100 003c 3bb9 9c46 0001 a000 000a ffff 2b2d 7eb2
      0005 0008 9be6 189b 0005 0008 9be6 189c 000c 0006 0005 0000 8000 0004 c000 0004 c006 0008 0000 0000`);
    w.core.put(init, S);
    expect(x.sctpOk!(S, init.length)).toBe(1);
    expect(x.sctpCsum!(S, init.length) >>> 0).toBe(0x54efba30);
    const bad = init.slice(); bad[20] ^= 1;
    w.core.put(bad, S);
    expect(x.sctpOk!(S, bad.length)).toBe(0);
  });
});
