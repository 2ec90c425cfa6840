// SCTP (RFC 9260 §3.1): parse, emit, round-trip, truncation of the common header; CRC32c by builder
// and core against a captured packet.
import { describe, expect, it } from 'vitest';
import { loadWire, rng, toHex, R, randomSpec, expectParsed, expectCuts } from './support';
import { buildPacket, checksumsValid, decodePacket, parseIP } from '../../../host-node/core/packet';
import { SCTP_INIT_SEG, v4Header } from './fixtures';

const w = loadWire();

// Any IPv4 header will do: SCTP's CRC has no pseudo-header.
const wrap = (seg: Uint8Array) => v4Header(parseIP('198.18.0.1'), parseIP('198.18.0.2'), 132, seg);

describe('SCTP parse', () => {
  it('reads the ports of a captured INIT', () => {
    const b = wrap(SCTP_INIT_SEG);
    expect(checksumsValid(b)).toBe(true);
    expect(w.parse(b)).toBe(R.NONE);
    expect(w.flow()).toMatchObject({ proto: 132, sport: 32836, dport: 80, l4len: SCTP_INIT_SEG.length });
    expect(w.x.sctpOk!(w.flow().pkt + 20, SCTP_INIT_SEG.length)).toBe(1);
  });

  it('over IPv6 too', () => {
    const spec = { src: 'fd00::a', dst: 'fd00::b', proto: 'sctp' as const, sport: 36412, dport: 36412, vtag: 7 };
    expectParsed(w, spec, buildPacket(spec));
  });
});

describe('SCTP emit', () => {
  it('the builder reproduces the captured INIT and its CRC32c', () => {
    const b = buildPacket({ src: '198.18.0.1', dst: '198.18.0.2', proto: 'sctp', sport: 32836, dport: 80, vtag: 0, payload: SCTP_INIT_SEG.slice(12) });
    expect(toHex(b.subarray(20))).toBe(toHex(SCTP_INIT_SEG));
  });

  it('the default payload is one INIT chunk with a valid CRC (core-verified)', () => {
    const b = buildPacket({ src: '198.18.0.1', dst: '198.18.0.2', proto: 'sctp', sport: 1, dport: 2 });
    expect(b.length).toBe(20 + 12 + 20);
    expect(b[32]).toBe(1);   // chunk type INIT
    w.core.put(b.subarray(20), w.core.scratch);
    expect(w.x.sctpOk!(w.core.scratch, 32)).toBe(1);
  });
});

describe('SCTP round trip', () => {
  it('build → parse for 2000 random packets over both families, CRC valid in the core', () => {
    const r = rng(90);
    for (let i = 0; i < 2000; i++) {
      const spec = randomSpec(r, { proto: 'sctp', opts: true });
      const b = buildPacket(spec);
      const f = expectParsed(w, spec, b);
      expect(w.x.sctpOk!(f.pkt + f.l3len, f.l4len)).toBe(1);
    }
  });
});

describe('SCTP truncated', () => {
  it('a packet cut inside the common header is truncated', () => {
    const r = rng(91);
    for (let i = 0; i < 60; i++) {
      const b = buildPacket(randomSpec(r, { proto: 'sctp', opts: true }));
      const l3 = decodePacket(b).headerLength;
      expectCuts(w, b, l3, (n) => (n - l3 < 12 ? R.TRUNCATED : R.NONE));
    }
  });
});
