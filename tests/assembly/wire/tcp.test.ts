// TCP (RFC 9293 §3.1): parse, emit, round-trip, truncation; data offset and flags.
import { describe, expect, it } from 'vitest';
import { loadWire, rng, hex, toHex, R, randomSpec, expectParsed, expectCuts } from './support';
import { buildPacket, decodePacket } from '../../../host-node/core/packet';
import { V4_TCP, V6_TCP } from './fixtures';

const w = loadWire();

describe('TCP parse', () => {
  it('reads ports and flags of captured segments over both families', () => {
    expect(w.parse(V4_TCP)).toBe(R.NONE);
    expect(w.flow()).toMatchObject({ proto: 6, sport: 1173, dport: 6000, tcpFlags: 0x10, l4len: 32 });
    expect(w.parse(V6_TCP)).toBe(R.NONE);
    expect(w.flow()).toMatchObject({ proto: 6, sport: 52682, dport: 22, tcpFlags: 0x02, l4len: 40 });
  });

  it('keeps all eight flag bits', () => {
    const b = V4_TCP.slice();
    for (let flags = 0; flags < 256; flags++) {
      b[20 + 13] = flags;
      expect(w.parse(b)).toBe(R.NONE);
      expect(w.flow().tcpFlags).toBe(flags);
    }
  });

  it('refuses a data offset below 5 and one beyond the segment', () => {
    const b = V4_TCP.slice();   // 32-byte segment, data offset 8
    for (let doff = 0; doff < 16; doff++) {
      b[20 + 12] = doff << 4;
      const want = doff < 5 ? R.BAD_HEADER : doff * 4 > 32 ? R.TRUNCATED : R.NONE;
      expect(w.parse(b), `data offset ${doff}`).toBe(want);
    }
  });
});

describe('TCP emit', () => {
  it('flag letters map to the flag byte', () => {
    const cases: Array<[string, number]> = [['S', 0x02], ['SA', 0x12], ['A', 0x10], ['FA', 0x11], ['R', 0x04], ['PA', 0x18], ['RA', 0x14], ['', 0], ['FSRPAUEC', 0xff]];
    for (const [flags, bits] of cases) {
      const b = buildPacket({ src: '198.18.0.1', dst: '198.18.0.2', proto: 'tcp', flags });
      expect(b[33], flags).toBe(bits);
      expect(decodePacket(b).flags).toBe(flags);
    }
  });

  it('the builder reproduces captured segments (with options and payload offsets)', () => {
    const v4 = buildPacket({
      src: '131.151.32.129', dst: '131.151.32.21', proto: 'tcp', sport: 1173, dport: 6000, seq: 0x51d4ee9c,
      ack: 0x51a55b36, flags: 'A', window: 0x7c70, id: 0x3b64, df: true, tcpOptions: hex('0101 080a 0004 f0d4 0199 a3fd'),
    });
    expect(toHex(v4.subarray(20))).toBe(toHex(V4_TCP.subarray(20)));
    const v6 = buildPacket({
      src: 'fe80::211:24ff:fe8c:11de', dst: 'fe80::2b0:d0ff:fee1:8072', proto: 'tcp', sport: 52682, dport: 22,
      seq: 0x048446d5, flags: 'S', tcpOptions: hex('0204 05a0 0103 0300 0101 080a 7d18 353f 0000 0000'),
    });
    expect(toHex(v6.subarray(40))).toBe(toHex(V6_TCP.subarray(40)));
    // Options are zero-padded to a multiple of 4 bytes and the data offset follows.
    const odd = buildPacket({ src: '198.18.0.1', dst: '198.18.0.2', proto: 'tcp', tcpOptions: hex('0204 05b4 01'), payload: 'x' });
    expect(toHex(odd.subarray(20 + 12, 20 + 13))).toBe('70');
    expect(toHex(odd.subarray(40, 49))).toBe('020405b401000000' + '78');
  });
});

describe('TCP round trip', () => {
  it('build → parse for 2000 random segments over both families', () => {
    const r = rng(70);
    for (let i = 0; i < 2000; i++) {
      const spec = randomSpec(r, { proto: 'tcp', opts: true });
      expectParsed(w, spec, buildPacket(spec));
    }
  });
});

describe('TCP truncated', () => {
  it('a segment cut anywhere before the end of its header is truncated', () => {
    const r = rng(71);
    for (let i = 0; i < 60; i++) {
      const spec = randomSpec(r, { proto: 'tcp', opts: true });
      const b = buildPacket(spec);
      const d = decodePacket(b);
      const doff = (b[d.headerLength + 12]! >> 4) * 4;
      expectCuts(w, b, d.headerLength, (n) => (n - d.headerLength < doff ? R.TRUNCATED : R.NONE));
    }
  });
});
