// IPv4 (RFC 791): parse, emit, round-trip and truncation, options, fragments, bad headers.
import { describe, expect, it } from 'vitest';
import { loadWire, rng, hex, toHex, R, FRAG, randomSpec, expectParsed, expectPrefixesTruncated, relabel } from './support';
import { buildPacket, checksumsValid } from '../../../host-node/core/packet';
import { V4_TCP, V4_PING } from './fixtures';

const w = loadWire();


describe('IPv4 parse', () => {
  it('reads every field of a captured TCP packet', () => {
    expect(checksumsValid(V4_TCP)).toBe(true);
    expect(w.parse(V4_TCP, 2048)).toBe(R.NONE);
    const f = w.flow();
    expect(f).toMatchObject({
      family: 4, proto: 6, src: '131.151.32.129', dst: '131.151.32.21', sport: 1173, dport: 6000,
      ttl: 64, l3len: 20, l4len: 32, len: 52, cap: 2048, frag: FRAG.NONE, tcpFlags: 0x10, isIcmpError: false,
    });
    expect(f.pkt).toBe(w.endPtr(V4_TCP.length));
    // The Tuple words are raw loads: 131.151.32.129 is 0x81209783 on a little-endian machine.
    expect(f.words.slice(0, 4)).toEqual([0x81209783, 0, 0, 0]);
  });

  it('uses the total length, not trailing link-layer padding', () => {
    const padded = new Uint8Array(V4_PING.length + 6);
    padded.set(V4_PING);
    expect(w.parse(padded)).toBe(R.NONE);
    expect(w.flow()).toMatchObject({ len: 84, l4len: 64, proto: 1, icmpType: 8, sport: 0x01ff, dport: 0x01ff });
  });

  it('skips options of every length (IHL 5..15)', () => {
    for (let olen = 0; olen <= 40; olen += 4) {
      const spec = { src: '198.18.0.1', dst: '198.18.0.2', proto: 'udp' as const, sport: 1000 + olen, dport: 53,
        ipOptions: Uint8Array.from({ length: olen }, (_, i) => (i === 0 ? 0x94 : i === 1 ? 4 : 1)) };
      const b = buildPacket(spec);
      expect(b[0]).toBe(0x40 | (5 + olen / 4));
      const f = expectParsed(w, spec, b);
      expect(f.l3len).toBe(20 + olen);
    }
  });

  it('rejects what is not IPv4 or v6, IHL < 5 and a total length below the header', () => {
    const b = V4_TCP.slice();
    for (const v of [0, 1, 2, 3, 5, 7, 15]) { b[0] = (v << 4) | 5; expect(w.parse(b), `version ${v}`).toBe(R.BAD_VERSION); }
    for (const ihl of [0, 1, 4]) { b[0] = 0x40 | ihl; expect(w.parse(b), `ihl ${ihl}`).toBe(R.BAD_HEADER); }
    b[0] = 0x45;
    for (const tl of [0, 1, 19]) { b[2] = 0; b[3] = tl; expect(w.parse(b), `total ${tl}`).toBe(R.BAD_HEADER); }
    b[3] = 53;   // one more than present
    expect(w.parse(b)).toBe(R.TRUNCATED);
    b[0] = 0x4f; b[3] = 52;   // IHL 15 = 60 bytes > 52 present
    expect(w.parse(b)).toBe(R.TRUNCATED);
    b[0] = 0x48; b[3] = 30;   // IHL 8 = 32 bytes > total 30
    expect(w.parse(b)).toBe(R.BAD_HEADER);
  });
});

describe('IPv4 fragments', () => {
  it('a first fragment carries the ports, a later one parses with ports 0 and no L4 checks', () => {
    const base = { src: '198.18.1.1', dst: '198.18.2.2', proto: 'udp' as const, sport: 4000, dport: 53, id: 77 };
    const first = buildPacket({ ...base, payload: new Uint8Array(64), frag: { offset: 0, more: true } });
    expect(w.parse(first)).toBe(R.NONE);
    expect(w.flow()).toMatchObject({ frag: FRAG.FIRST, sport: 4000, dport: 53 });
    // The UDP length covers the whole datagram, more than this fragment holds: still fine.
    const longer = first.slice();
    longer[20 + 4] = 0x05; longer[20 + 5] = 0xdc;
    expect(w.parse(longer)).toBe(R.NONE);
    const later = buildPacket({ ...base, payload: hex('deadbeef 0000'), frag: { offset: 1480, more: false } });
    expect(w.parse(later)).toBe(R.NONE);
    expect(w.flow()).toMatchObject({ frag: FRAG.LATER, sport: 0, dport: 0, proto: 17, l4len: 6 });
    // Even a later fragment too short for any transport header parses.
    const tiny = buildPacket({ ...base, payload: new Uint8Array(0), frag: { offset: 8, more: true } });
    expect(w.parse(tiny)).toBe(R.NONE);
    expect(w.flow()).toMatchObject({ frag: FRAG.LATER, l4len: 0 });
  });

  it('a first fragment too short for its TCP header is truncated (RFC 1858)', () => {
    const b = buildPacket({ src: '198.18.1.1', dst: '198.18.2.2', proto: 'tcp', frag: { offset: 0, more: true } });
    expect(w.parse(b)).toBe(R.NONE);
    expect(w.parse(relabel(b, 20 + 8))).toBe(R.TRUNCATED);
  });

  it('DF alone is not a fragment; the reserved bit is ignored', () => {
    const b = buildPacket({ src: '198.18.1.1', dst: '198.18.2.2', proto: 'tcp', df: true });
    expect(w.parse(b)).toBe(R.NONE);
    expect(w.flow().frag).toBe(FRAG.NONE);
    b[6]! |= 0x80;
    expect(w.parse(b)).toBe(R.NONE);
    expect(w.flow().frag).toBe(FRAG.NONE);
  });
});

describe('IPv4 emit', () => {
  it('the builder reproduces the captured TCP packet byte for byte', () => {
    const b = buildPacket({
      src: '131.151.32.129', dst: '131.151.32.21', proto: 'tcp', sport: 1173, dport: 6000,
      seq: 0x51d4ee9c, ack: 0x51a55b36, flags: 'A', window: 0x7c70, id: 0x3b64, df: true, ttl: 64,
      tcpOptions: hex('0101 080a 0004 f0d4 0199 a3fd'),
    });
    expect(toHex(b)).toBe(toHex(V4_TCP));
  });

  it('the builder reproduces the captured ping byte for byte', () => {
    const b = buildPacket({
      src: '10.0.0.143', dst: '10.0.0.142', proto: 'icmp', icmp: { type: 8, id: 0x01ff, seq: 0x2373 },
      df: true, payload: V4_PING.slice(28),
    });
    expect(toHex(b)).toBe(toHex(V4_PING));
  });
});

describe('IPv4 round trip', () => {
  it('build → parse gives the spec back for 3000 random packets (options, fragments, all protocols)', () => {
    const r = rng(40);
    for (let i = 0; i < 3000; i++) {
      const spec = randomSpec(r, { family: 4, opts: true, frag: true });
      expectParsed(w, spec, buildPacket(spec));
    }
  });
});

describe('IPv4 truncated', () => {
  it('every prefix of valid packets is truncated', () => {
    expectPrefixesTruncated(w, V4_TCP);
    expectPrefixesTruncated(w, V4_PING);
    const r = rng(41);
    for (let i = 0; i < 40; i++) expectPrefixesTruncated(w, buildPacket(randomSpec(r, { family: 4, opts: true, frag: true })));
  });
});
