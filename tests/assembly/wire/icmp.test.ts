// ICMPv4 (RFC 792): parse, emit, round-trip, truncation; query identifiers; errors and the packet
// they quote (parsed into `inner`), malformed and nested quotes.
import { describe, expect, it } from 'vitest';
import {
  loadWire, rng, toHex, hex, R, randomSpec, expectParsed, expectPrefixesTruncated, expectCuts,
  errorPacket, randomQuote, expectQuoted, relabel, ERROR_TYPES_V4,
} from './support';
import { buildPacket, checksumsValid, decodePacket } from '../../../host-node/core/packet';
import { V4_PING, V4_PING_CISCO, V4_ICMP_ERR, V4_ICMP_ERR_MSG } from './fixtures';

const w = loadWire();

describe('ICMP parse', () => {
  it('echo requests carry the identifier as both ports', () => {
    for (const [b, id] of [[V4_PING, 0x01ff], [V4_PING_CISCO, 0x0f65]] as const) {
      expect(checksumsValid(b)).toBe(true);
      expect(w.parse(b)).toBe(R.NONE);
      expect(w.flow()).toMatchObject({ proto: 1, icmpType: 8, icmpCode: 0, sport: id, dport: id, isIcmpError: false });
    }
  });

  it('query pairs have identifiers, other informational types have none', () => {
    for (let type = 0; type < 256; type++) {
      if (ERROR_TYPES_V4.includes(type)) continue;
      const b = buildPacket({ src: '198.18.0.1', dst: '198.18.0.2', proto: 'icmp', icmp: { type, code: 1, id: 0x4242, seq: 7 } });
      expect(w.parse(b)).toBe(R.NONE);
      const id = [0, 8, 13, 14, 15, 16, 17, 18].includes(type) ? 0x4242 : 0;
      expect(w.flow(), `type ${type}`).toMatchObject({ icmpType: type, icmpCode: 1, sport: id, dport: id, isIcmpError: false });
    }
  });

  it('reads a captured destination-unreachable and the TCP header it quotes', () => {
    expect(checksumsValid(V4_ICMP_ERR)).toBe(true);
    expect(w.parse(V4_ICMP_ERR)).toBe(R.NONE);
    expect(w.flow(0)).toMatchObject({
      proto: 1, icmpType: 3, icmpCode: 10, isIcmpError: true, innerOff: 28, sport: 0, dport: 0,
      src: '192.168.0.1', dst: '35.43.36.0',
    });
    expect(w.flow(1)).toMatchObject({
      family: 4, proto: 6, src: '35.43.36.0', dst: '222.142.132.66', sport: 43985, dport: 80, ttl: 0xe3,
      l3len: 20, l4len: 20, len: 40, pkt: w.flow(0).pkt + 28, isIcmpError: false,
    });
  });

  it('every error type quotes a packet of any protocol, whole or cut after 8 transport bytes', () => {
    const r = rng(100);
    for (let i = 0; i < 1500; i++) {
      const { spec, full, quote } = randomQuote(r, 4);
      expectQuoted(w, errorPacket(r, 4, quote, spec.src), spec, quote, full);
    }
  });

  it('is lenient about a quoted total length larger than what is quoted (RFC 792 quotes 64 bits)', () => {
    const inner = buildPacket({ src: '198.18.0.5', dst: '198.18.9.9', proto: 'udp', sport: 5000, dport: 53, payload: new Uint8Array(500) });
    const b = errorPacket(rng(1), 4, inner.slice(0, 28), '198.18.0.5');
    expect(w.parse(b)).toBe(R.NONE);
    expect(w.flow(1)).toMatchObject({ sport: 5000, dport: 53, l4len: 8, len: 28 });
  });

  it('the quoted total length bounds the quoted transport bytes when more follows (RFC 4884 extensions)', () => {
    const inner = buildPacket({ src: '198.18.0.5', dst: '198.18.9.9', proto: 'udp', sport: 5000, dport: 53, payload: 'abcd' });
    const b = errorPacket(rng(1), 4, Uint8Array.from([...inner, ...new Uint8Array(16).fill(0xee)]), '198.18.0.5');
    expect(w.parse(b)).toBe(R.NONE);
    expect(w.flow(1)).toMatchObject({ sport: 5000, dport: 53, l4len: 12, len: inner.length + 16 });
  });

  it('a quoted later fragment names no connection (ipv4_get_l4proto: no tuple)', () => {
    const inner = buildPacket({ src: '198.18.0.5', dst: '198.18.9.9', proto: 'tcp', payload: new Uint8Array(40), frag: { offset: 1480, more: true } });
    expect(w.parse(errorPacket(rng(2), 4, inner, '198.18.0.5'))).toBe(R.NONE);
    expect(w.flow(1)).toMatchObject({ family: 0, sport: 0, dport: 0, len: inner.length });
  });

  it('a quote that names no connection parses, its tuple without a family (conntrack: INVALID)', () => {
    const r = rng(3);
    const tcp = buildPacket({ src: '198.18.0.5', dst: '198.18.9.9', proto: 'tcp', sport: 1, dport: 2 });
    // nf_ct_get_tuplepr(): the quoted IP header, then 4 bytes of ports.
    const none = (quote: Uint8Array, why: string) => {
      expect(w.parse(errorPacket(r, 4, quote, '198.18.0.5')), why).toBe(R.NONE);
      expect(w.flow(1).family, why).toBe(0);
    };
    for (let n = 0; n < 24; n++) none(tcp.slice(0, n), `quote of ${n} bytes`);
    for (let n = 24; n <= 40; n++) {
      expect(w.parse(errorPacket(r, 4, tcp.slice(0, n), '198.18.0.5'))).toBe(R.NONE);
      expect(w.flow(1), `quote of ${n} bytes`).toMatchObject({ family: 4, proto: 6, sport: 1, dport: 2 });
    }
    const v6 = buildPacket({ src: 'fd00::1', dst: 'fd00::2', proto: 'tcp' });
    none(v6.slice(0, 48), 'IPv6 quoted in ICMPv4');
    const ihl = tcp.slice(); ihl[0] = 0x44; none(ihl, 'quoted IHL 4');
    const long = tcp.slice(0, 28); long[0] = 0x47; none(long, 'quoted options beyond the quote');
    const later = tcp.slice(); later[6] = 0x00; later[7] = 0x10; none(later, 'a later fragment quoted');
    none(errorPacket(r, 4, tcp, '198.18.0.5'), 'an error quoting an error');
    // An echo request quoted needs its whole 8-byte ICMP header.
    const echo = buildPacket({ src: '198.18.0.5', dst: '198.18.9.9', proto: 'icmp', icmp: { type: 8, id: 99 } });
    none(echo.slice(0, 27), 'an echo request cut short');
    expect(w.parse(errorPacket(r, 4, echo, '198.18.0.5'))).toBe(R.NONE);
    expect(w.flow(1)).toMatchObject({ family: 4, proto: 1, icmpType: 8, sport: 99, dport: 99 });
  });

  it('ICMP inside IPv6 is just an unknown protocol', () => {
    const b = buildPacket({ src: 'fd00::1', dst: 'fd00::2', proto: 1, payload: hex('0300 0000 0000 0000') });
    expect(w.parse(b)).toBe(R.NONE);
    expect(w.flow()).toMatchObject({ proto: 1, icmpType: 0, isIcmpError: false, sport: 0 });
  });
});

describe('ICMP emit', () => {
  it('the builder reproduces the captured echo and error byte for byte', () => {
    const ping = buildPacket({
      src: '10.31.0.1', dst: '10.34.0.1', proto: 'icmp', id: 0x0050, ttl: 255,
      icmp: { type: 8, id: 0x0f65, seq: 0x12a0 }, payload: V4_PING_CISCO.slice(28),
    });
    expect(toHex(ping)).toBe(toHex(V4_PING_CISCO));
    const err = buildPacket({
      src: '192.168.0.1', dst: '35.43.36.0', proto: 'icmp', icmp: { type: 3, code: 10, quote: V4_ICMP_ERR_MSG.slice(8) },
    });
    expect(toHex(err)).toBe(toHex(V4_ICMP_ERR));
  });

  it('the decoder reads the error and its quote', () => {
    const d = decodePacket(V4_ICMP_ERR);
    expect(d.icmp).toMatchObject({ type: 3, code: 10 });
    expect(d.icmp!.inner).toMatchObject({ family: 4, proto: 6, src: '35.43.36.0', dst: '222.142.132.66', sport: 43985, dport: 80, checksumsOk: true });
  });
});

describe('ICMP round trip', () => {
  it('build → parse for 2000 random messages', () => {
    const r = rng(101);
    for (let i = 0; i < 2000; i++) {
      const spec = randomSpec(r, { family: 4, proto: 'icmp', opts: true, frag: true });
      expectParsed(w, spec, buildPacket(spec));
    }
  });
});

describe('ICMP truncated', () => {
  it('every prefix is truncated; cuts inside the header are truncated, inside the quote taken', () => {
    expectPrefixesTruncated(w, V4_PING);
    expectPrefixesTruncated(w, V4_ICMP_ERR);
    expectCuts(w, V4_PING, 20, (n) => (n < 28 ? R.TRUNCATED : R.NONE));
    const r = rng(102);
    for (let i = 0; i < 40; i++) {
      const { spec, full } = randomQuote(r, 4, { proto: r.pick(['tcp', 'udp', 'sctp'] as const) });
      const b = errorPacket(r, 4, full, spec.src);
      const l3 = decodePacket(full).headerLength;
      // The outer IP length is relabelled; a quote cut anywhere still parses (without a tuple
      // short of its IP header and ports).
      expectCuts(w, b, 20, (n) => (n < 28 ? R.TRUNCATED : R.NONE));
      for (const [n, family] of [[28 + l3 + 3, 0], [28 + l3 + 4, 4]] as const) {
        expect(w.parse(relabel(b, n))).toBe(R.NONE);
        expect(w.flow(1).family, `cut at ${n}`).toBe(family);
      }
    }
  });
});
