// ICMPv6 (RFC 4443): parse, emit, round-trip, truncation; echo identifiers; errors and the packet
// they quote (with extension headers), malformed and nested quotes.
import { describe, expect, it } from 'vitest';
import {
  loadWire, rng, toHex, hex, R, randomSpec, expectParsed, expectPrefixesTruncated, expectCuts,
  errorPacket, randomQuote, expectQuoted, relabel, ERROR_TYPES_V6,
} from './support';
import { buildPacket, checksumsValid, decodePacket, parseIP } from '../../../host-node/core/packet';
import { V6_ECHO_MSG, V6_PTB_MSG, LL1, LL2, v6Header } from './fixtures';

const w = loadWire();
const ECHO = v6Header(parseIP(LL1), parseIP(LL2), 58, V6_ECHO_MSG);
const PTB = v6Header(parseIP(LL1), parseIP(LL2), 58, V6_PTB_MSG);

describe('ICMPv6 parse', () => {
  it('an echo request carries the identifier as both ports', () => {
    expect(checksumsValid(ECHO)).toBe(true);
    expect(w.parse(ECHO)).toBe(R.NONE);
    expect(w.flow()).toMatchObject({ family: 6, proto: 58, icmpType: 128, sport: 0x1234, dport: 0x1234, isIcmpError: false, l4len: 12 });
  });

  it('every message but the errors (types 1–4) has its bytes 4–5 read as the identifier, as conntrack\'s tuple does', () => {
    // icmpv6_pkt_to_tuple(): node information queries (139/140) are told apart by them too; NAT
    // rewrites the identifier of echo messages only (rewrite.test.ts).
    for (let type = 0; type < 256; type++) {
      if (ERROR_TYPES_V6.includes(type)) continue;
      const b = buildPacket({ src: 'fd00::1', dst: 'fd00::2', proto: 'icmpv6', icmp: { type, id: 0x4242, seq: 1 } });
      expect(w.parse(b)).toBe(R.NONE);
      expect(w.flow(), `type ${type}`).toMatchObject({ icmpType: type, sport: 0x4242, dport: 0x4242, isIcmpError: false });
    }
  });

  it('reads a packet-too-big and the UDP header it quotes', () => {
    expect(checksumsValid(PTB)).toBe(true);
    expect(w.parse(PTB)).toBe(R.NONE);
    expect(w.flow(0)).toMatchObject({ icmpType: 2, icmpCode: 0, isIcmpError: true, innerOff: 48 });
    expect(w.flow(1)).toMatchObject({
      family: 6, proto: 17, src: LL1, dst: LL2, sport: 0xbf00, dport: 53, l3len: 40, l4len: 12, len: 52, ttl: 64,
    });
  });

  it('every error type quotes packets with extension headers, whole or cut', () => {
    const r = rng(110);
    for (let i = 0; i < 1500; i++) {
      const { spec, full, quote } = randomQuote(r, 6);
      expectQuoted(w, errorPacket(r, 6, quote, spec.src), spec, quote, full);
    }
  });

  it('the quoted payload length bounds the quoted transport bytes when more follows', () => {
    const inner = buildPacket({ src: 'fd00::5', dst: 'fd00::9', proto: 'udp', sport: 5000, dport: 53, payload: 'abcd', ext: [{ type: 60 }] });
    const b = errorPacket(rng(1), 6, Uint8Array.from([...inner, ...new Uint8Array(16).fill(0xee)]), 'fd00::5');
    expect(w.parse(b)).toBe(R.NONE);
    expect(w.flow(1)).toMatchObject({ sport: 5000, dport: 53, l3len: 48, l4len: 12, len: inner.length + 16 });
  });

  it('a quote that names no connection parses, its tuple without a family (conntrack: INVALID)', () => {
    const r = rng(4);
    const tcp = buildPacket({ src: 'fd00::5', dst: 'fd00::9', proto: 'tcp', sport: 1, dport: 2, ext: [{ type: 0 }, { type: 60 }] });
    // nf_ct_get_tuplepr(): the quoted IPv6 header and its extension headers, then 4 bytes of ports.
    const none = (quote: Uint8Array, why: string) => {
      expect(w.parse(errorPacket(r, 6, quote, 'fd00::5')), why).toBe(R.NONE);
      expect(w.flow(1).family, why).toBe(0);
    };
    for (let n = 0; n < 40 + 16 + 4; n++) none(tcp.slice(0, n), `quote of ${n} bytes`);
    for (let n = 40 + 16 + 4; n <= 40 + 16 + 20; n++) {
      expect(w.parse(errorPacket(r, 6, tcp.slice(0, n), 'fd00::5'))).toBe(R.NONE);
      expect(w.flow(1), `quote of ${n} bytes`).toMatchObject({ family: 6, proto: 6, sport: 1, dport: 2 });
    }
    none(buildPacket({ src: '198.18.0.1', dst: '198.18.0.2', proto: 'udp' }), 'IPv4 quoted in ICMPv6');
    none(buildPacket({ src: 'fd00::5', dst: 'fd00::9', proto: 'tcp', ext: Array.from({ length: 9 }, () => ({ type: 60 })) }), 'chain too long');
    none(errorPacket(r, 6, tcp, 'fd00::5'), 'an error quoting an error');
    const echo = buildPacket({ src: 'fd00::5', dst: 'fd00::9', proto: 'icmpv6', icmp: { type: 128, id: 7 } });
    none(echo.slice(0, 47), 'an echo request cut short');
    expect(w.parse(errorPacket(r, 6, echo, 'fd00::5'))).toBe(R.NONE);
    expect(w.flow(1)).toMatchObject({ family: 6, proto: 58, icmpType: 128, sport: 7, dport: 7 });
  });

  it('ICMPv6 inside IPv4 is just an unknown protocol', () => {
    const b = buildPacket({ src: '198.18.0.1', dst: '198.18.0.2', proto: 58, payload: hex('0100 0000 0000 0000') });
    expect(w.parse(b)).toBe(R.NONE);
    expect(w.flow()).toMatchObject({ proto: 58, icmpType: 0, isIcmpError: false });
  });
});

describe('ICMPv6 emit', () => {
  it('the builder reproduces the known echo and packet-too-big messages (checksums included)', () => {
    const echo = buildPacket({ src: LL1, dst: LL2, proto: 'icmpv6', icmp: { type: 128, id: 0x1234, seq: 0xabcd }, payload: hex('aa00 00ff') });
    expect(toHex(echo)).toBe(toHex(ECHO));
    const ptb = buildPacket({ src: LL1, dst: LL2, proto: 'icmpv6', icmp: { type: 2, mtu: 1500, quote: V6_PTB_MSG.slice(8) } });
    expect(toHex(ptb)).toBe(toHex(PTB));
  });
});

describe('ICMPv6 round trip', () => {
  it('build → parse for 2000 random messages', () => {
    const r = rng(111);
    for (let i = 0; i < 2000; i++) {
      const spec = randomSpec(r, { family: 6, proto: 'icmpv6', opts: true, frag: true });
      expectParsed(w, spec, buildPacket(spec));
    }
  });
});

describe('ICMPv6 truncated', () => {
  it('every prefix is truncated; cuts inside the header are truncated, inside the quote taken', () => {
    expectPrefixesTruncated(w, ECHO);
    expectPrefixesTruncated(w, PTB);
    expectCuts(w, ECHO, 40, (n) => (n < 48 ? R.TRUNCATED : R.NONE));
    const r = rng(112);
    for (let i = 0; i < 40; i++) {
      const { spec, full } = randomQuote(r, 6, { proto: r.pick(['tcp', 'udp', 'sctp'] as const) });
      const b = errorPacket(r, 6, full, spec.src);
      const l3 = decodePacket(full).headerLength;
      // A quote cut anywhere still parses (without a tuple short of its IP headers and ports).
      expectCuts(w, b, 40, (n) => (n < 48 ? R.TRUNCATED : R.NONE));
      for (const [n, family] of [[48 + l3 + 3, 0], [48 + l3 + 4, 6]] as const) {
        expect(w.parse(relabel(b, n))).toBe(R.NONE);
        expect(w.flow(1).family, `cut at ${n}`).toBe(family);
      }
    }
  });
});
