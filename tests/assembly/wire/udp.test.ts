// UDP (RFC 768): parse, emit, round-trip, truncation; length field, zero checksum by family.
import { describe, expect, it } from 'vitest';
import { loadWire, rng, toHex, R, FRAG, randomSpec, expectParsed, expectCuts } from './support';
import { buildPacket, checksumsValid, decodePacket } from '../../../host-node/core/packet';
import { V4_UDP, V6_UDP } from './fixtures';

const w = loadWire();

describe('UDP parse', () => {
  it('reads the known datagrams over both families', () => {
    expect(checksumsValid(V4_UDP)).toBe(true);
    expect(w.parse(V4_UDP)).toBe(R.NONE);
    expect(w.flow()).toMatchObject({ family: 4, proto: 17, src: '1.2.3.4', dst: '1.2.3.4', sport: 111, dport: 222, l4len: 14 });
    expect(checksumsValid(V6_UDP)).toBe(true);
    expect(w.parse(V6_UDP)).toBe(R.NONE);
    expect(w.flow()).toMatchObject({ family: 6, proto: 17, src: 'fe80::1', dst: 'ff02::1', sport: 1, dport: 2, l4len: 12 });
  });

  it('checks the length field against the header and the payload', () => {
    const b = V4_UDP.slice();   // UDP length 14, IP payload 14
    const setLen = (n: number) => { b[24] = n >> 8; b[25] = n & 0xff; };
    for (let n = 0; n < 8; n++) { setLen(n); expect(w.parse(b), `length ${n}`).toBe(R.BAD_HEADER); }
    setLen(15);
    expect(w.parse(b)).toBe(R.TRUNCATED);
    setLen(8);   // shorter than the IP payload: the rest is not UDP's, but the packet is fine
    expect(w.parse(b)).toBe(R.NONE);
    expect(w.flow().l4len).toBe(14);
  });

  it('a zero checksum is "none" over IPv4 and invalid over IPv6 (RFC 8200 §8.1)', () => {
    const v4 = buildPacket({ src: '198.18.0.1', dst: '198.18.0.2', proto: 'udp', udpZeroChecksum: true, payload: 'hi' });
    expect(v4[26] | v4[27]!).toBe(0);
    expect(checksumsValid(v4)).toBe(true);
    expect(w.parse(v4)).toBe(R.NONE);
    const v6 = buildPacket({ src: 'fd00::1', dst: 'fd00::2', proto: 'udp', udpZeroChecksum: true, payload: 'hi' });
    expect(checksumsValid(v6)).toBe(false);
    expect(w.parse(v6)).toBe(R.BAD_HEADER);
    // Also in a first fragment, but a later fragment carries no UDP header at all.
    const first = buildPacket({ src: 'fd00::1', dst: 'fd00::2', proto: 'udp', udpZeroChecksum: true, frag: { offset: 0, more: true } });
    expect(w.parse(first)).toBe(R.BAD_HEADER);
    const later = buildPacket({ src: 'fd00::1', dst: 'fd00::2', proto: 'udp', payload: new Uint8Array(8), frag: { offset: 8, more: false } });
    expect(w.parse(later)).toBe(R.NONE);
    expect(w.flow().frag).toBe(FRAG.LATER);
  });
});

describe('UDP emit', () => {
  it('the builder reproduces the known datagrams byte for byte', () => {
    expect(toHex(buildPacket({ src: '1.2.3.4', dst: '1.2.3.4', proto: 'udp', sport: 111, dport: 222, ttl: 64, payload: 'foobar' })))
      .toBe(toHex(V4_UDP));
    expect(toHex(buildPacket({ src: 'fe80::1', dst: 'ff02::1', proto: 'udp', sport: 1, dport: 2, payload: new Uint8Array([255, 255, 255, 255]) })))
      .toBe(toHex(V6_UDP));
  });

  it('a checksum that computes to 0 is sent as 0xffff', () => {
    // Find a source port that makes the sum come out as zero, then check the builder's encoding.
    const base = { src: '198.18.0.1', dst: '198.18.0.2', proto: 'udp' as const, dport: 53, payload: 'zero' };
    const b0 = buildPacket({ ...base, sport: 0, udpZeroChecksum: true });
    let acc = 0;
    for (let i = 12; i < 20; i += 2) acc += (b0[i]! << 8) | b0[i + 1]!;
    acc += 17 + (b0.length - 20);
    for (let i = 20; i < b0.length; i += 2) acc += (b0[i]! << 8) | (b0[i + 1] ?? 0);
    while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
    const sport = 0xffff - acc;   // sum becomes 0xffff: the complement is 0
    const b = buildPacket({ ...base, sport });
    expect(toHex(b.subarray(26, 28))).toBe('ffff');
    expect(checksumsValid(b)).toBe(true);
  });
});

describe('UDP round trip', () => {
  it('build → parse for 2000 random datagrams over both families', () => {
    const r = rng(80);
    for (let i = 0; i < 2000; i++) {
      const spec = randomSpec(r, { proto: 'udp', opts: true, frag: true });
      expectParsed(w, spec, buildPacket(spec));
    }
  });
});

describe('UDP truncated', () => {
  it('a datagram cut short of its header or its length field is truncated', () => {
    const r = rng(81);
    for (let i = 0; i < 60; i++) {
      const spec = randomSpec(r, { proto: 'udp', opts: true });
      const b = buildPacket(spec);
      const l3 = decodePacket(b).headerLength;
      expectCuts(w, b, l3, (n) => (n - l3 < b.length - l3 ? R.TRUNCATED : R.NONE));
    }
  });
});
