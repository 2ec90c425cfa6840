// IPv6 (RFC 8200): parse, emit, round-trip and truncation, extension-header chains and their limit,
// fragments, jumbograms.
import { describe, expect, it } from 'vitest';
import { loadWire, rng, hex, toHex, R, FRAG, randomSpec, randomExtChain, expectParsed, expectPrefixesTruncated, expectCuts } from './support';
import { buildPacket, checksumsValid, decodePacket, type ExtHeaderSpec } from '../../../host-node/core/packet';
import { V6_TCP } from './fixtures';

const w = loadWire();


const A = 'fd00::1', B = 'fd00::2';
const dstopts = (n: number): ExtHeaderSpec[] => Array.from({ length: n }, () => ({ type: 60 }));

describe('IPv6 parse', () => {
  it('reads every field of a captured SYN', () => {
    expect(checksumsValid(V6_TCP)).toBe(true);
    expect(w.parse(V6_TCP)).toBe(R.NONE);
    expect(w.flow()).toMatchObject({
      family: 6, proto: 6, src: 'fe80::211:24ff:fe8c:11de', dst: 'fe80::2b0:d0ff:fee1:8072',
      sport: 0xcdca, dport: 22, ttl: 64, l3len: 40, l4len: 40, len: 80, frag: FRAG.NONE, tcpFlags: 0x02,
    });
    expect(w.flow().words.slice(0, 4)).toEqual([0x000080fe, 0, 0xff241102, 0xde118cfe]);
  });

  it('walks chains of every walked header type to the transport header', () => {
    const chains: ExtHeaderSpec[][] = [
      [{ type: 0 }],
      [{ type: 0 }, { type: 60 }, { type: 43, segmentsLeft: 0 }, { type: 51 }, { type: 60 }],
      [{ type: 43, data: new Uint8Array(36) }],
      [{ type: 51, data: new Uint8Array(12) }],
      [{ type: 60, data: new Uint8Array(200).fill(0) }],
      [{ type: 44, offset: 0, more: false, id: 9 }],   // atomic fragment (RFC 6946): a whole packet
    ];
    for (const ext of chains) {
      const spec = { src: A, dst: B, proto: 'udp' as const, sport: 5353, dport: 53, ext };
      const b = buildPacket(spec);
      const f = expectParsed(w, spec, b);
      expect(f.l3len).toBe(decodePacket(b).headerLength);
      expect(f.frag).toBe(FRAG.NONE);
    }
  });

  it('bounds the chain at 8 headers', () => {
    const ok = buildPacket({ src: A, dst: B, proto: 'tcp', ext: dstopts(8) });
    expect(w.parse(ok)).toBe(R.NONE);
    expect(w.flow()).toMatchObject({ proto: 6, l3len: 40 + 8 * 8 });
    expect(w.parse(buildPacket({ src: A, dst: B, proto: 'tcp', ext: dstopts(9) }))).toBe(R.EXT_LIMIT);
    expect(w.parse(buildPacket({ src: A, dst: B, proto: 'tcp', ext: dstopts(200) }))).toBe(R.EXT_LIMIT);
  });

  it('refuses malformed chains', () => {
    // Hop-by-hop anywhere but first (RFC 8200 §4.1).
    expect(w.parse(buildPacket({ src: A, dst: B, proto: 'tcp', ext: [{ type: 60 }, { type: 0 }] }))).toBe(R.EXT_LIMIT);
    // Two fragment headers.
    expect(w.parse(buildPacket({ src: A, dst: B, proto: 'tcp', ext: [{ type: 44 }, { type: 44 }] }))).toBe(R.EXT_LIMIT);
    // AH whose length is not a multiple of 8 bytes.
    const ah = buildPacket({ src: A, dst: B, proto: 'tcp', ext: [{ type: 51, raw: hex('0003 0000 0000 0001 0000 0001 0000 0000 0000 0000') }] });
    expect(w.parse(ah)).toBe(R.EXT_LIMIT);
    // A header claiming more than the payload holds.
    const long = buildPacket({ src: A, dst: B, proto: 59, ext: [{ type: 60, raw: hex('00ff 0000 0000 0000') }] });
    expect(w.parse(long)).toBe(R.TRUNCATED);
  });

  it('ends the walk at ESP and No Next Header', () => {
    expect(w.parse(buildPacket({ src: A, dst: B, proto: 50, payload: new Uint8Array(24) }))).toBe(R.NONE);
    expect(w.flow()).toMatchObject({ proto: 50, sport: 0, dport: 0, l3len: 40, l4len: 24 });
    expect(w.parse(buildPacket({ src: A, dst: B, proto: 59, ext: [{ type: 0 }] }))).toBe(R.NONE);
    expect(w.flow()).toMatchObject({ proto: 59, l3len: 48, l4len: 0 });
  });

  it('refuses jumbograms (payload length 0 before a hop-by-hop header); before anything else it is an empty payload', () => {
    const jumbo = buildPacket({ src: A, dst: B, proto: 'udp', sport: 1, dport: 2, ext: [{ type: 0 }] });
    jumbo[4] = 0; jumbo[5] = 0;
    expect(w.parse(jumbo)).toBe(R.BAD_HEADER);
    const empty = V6_TCP.slice(0, 40);
    empty[4] = 0; empty[5] = 0;
    expect(w.parse(empty)).toBe(R.TRUNCATED);   // a TCP packet without its header
    empty[6] = 59;
    expect(w.parse(empty)).toBe(R.NONE);        // No Next Header: nothing is missing
  });
});

describe('IPv6 fragments', () => {
  it('first fragment has ports; later fragments parse with ports 0 and the fragment header next header', () => {
    const base = { src: A, dst: B, proto: 'tcp' as const, sport: 8080, dport: 443, ext: [{ type: 0 }] };
    const first = buildPacket({ ...base, frag: { offset: 0, more: true, id: 0xabcdef01 } });
    expect(w.parse(first)).toBe(R.NONE);
    expect(w.flow()).toMatchObject({ frag: FRAG.FIRST, sport: 8080, dport: 443, proto: 6, l3len: 56 });
    const later = buildPacket({ ...base, payload: new Uint8Array(16), frag: { offset: 1232, more: true, id: 1 } });
    expect(w.parse(later)).toBe(R.NONE);
    expect(w.flow()).toMatchObject({ frag: FRAG.LATER, sport: 0, dport: 0, proto: 6, l3len: 56, l4len: 16 });
    const last = buildPacket({ ...base, payload: new Uint8Array(0), frag: { offset: 2464, more: false } });
    expect(w.parse(last)).toBe(R.NONE);
    expect(w.flow()).toMatchObject({ frag: FRAG.LATER, l4len: 0 });
  });
});

describe('IPv6 emit', () => {
  it('the builder reproduces the captured SYN byte for byte', () => {
    const b = buildPacket({
      src: 'fe80::211:24ff:fe8c:11de', dst: 'fe80::2b0:d0ff:fee1:8072', proto: 'tcp', sport: 0xcdca, dport: 22,
      seq: 0x048446d5, ack: 0, flags: 'S', window: 0xffff, ttl: 64,
      tcpOptions: hex('0204 05a0 0103 0300 0101 080a 7d18 353f 0000 0000'),
    });
    expect(toHex(b)).toBe(toHex(V6_TCP));
  });
});

describe('IPv6 round trip', () => {
  it('build → parse gives the spec back for 3000 random packets (extension headers, fragments)', () => {
    const r = rng(60);
    for (let i = 0; i < 3000; i++) {
      const spec = randomSpec(r, { family: 6, opts: true, frag: true });
      expectParsed(w, spec, buildPacket(spec));
    }
  });
});

describe('IPv6 truncated', () => {
  it('every prefix of valid packets is truncated', () => {
    expectPrefixesTruncated(w, V6_TCP);
    const r = rng(61);
    for (let i = 0; i < 40; i++) expectPrefixesTruncated(w, buildPacket(randomSpec(r, { family: 6, opts: true, frag: true })));
  });

  it('a payload length cutting into the extension headers is truncated', () => {
    const r = rng(62);
    for (let i = 0; i < 30; i++) {
      const b = buildPacket({ src: A, dst: B, proto: 59, ext: randomExtChain(r, r.range(1, 5)) });
      const l3 = decodePacket(b).headerLength;
      expectCuts(w, b, 41, (n) => (n < l3 ? R.TRUNCATED : R.NONE));
    }
  });
});
