// host-node/core/packet.ts: address text, the builder's options and errors, the decoder, and the
// checksum verifier (which must catch every single-bit error a checksum covers).
import { describe, expect, it } from 'vitest';
import {
  buildPacket, decodePacket, checksumsValid, parseIP, formatIP, tcpFlagString, type PacketSpec,
} from '../../../host-node/core/packet';
import { crc32c } from '../../../host-node/core/checksum';
import { V4_TCP, V4_PING, V4_UDP, V4_ICMP_ERR, V6_TCP, V6_UDP, SCTP_INIT_SEG } from '../../assembly/wire/fixtures';
import { rng, toHex } from '../../assembly/wire/support';

const bytes = (s: string) => Array.from(parseIP(s));

describe('parseIP / formatIP', () => {
  it('reads and writes IPv4 dotted quads, refusing anything else', () => {
    expect(bytes('198.18.0.1')).toEqual([198, 18, 0, 1]);
    expect(formatIP(Uint8Array.of(10, 0, 0, 255))).toBe('10.0.0.255');
    expect(bytes('0.0.0.0')).toEqual([0, 0, 0, 0]);
    expect(bytes('255.255.255.255')).toEqual([255, 255, 255, 255]);
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.0.0.1', '01.2.3.4', 'a.b.c.d', '1.2.3.-1', '1.2.3.4 ', '1..2.3',
      '1.2.3.4.', '.1.2.3', '1000.0.0.1', '1.2.3.00', '1.2.3.0255', '1.2.3.4/32', '１.2.3.4']) {
      expect(() => parseIP(bad), bad).toThrow();
    }
    const r = rng(2);
    for (let i = 0; i < 500; i++) {
      const b = Uint8Array.from({ length: 4 }, () => r.int(256));
      expect(Array.from(parseIP(formatIP(b)))).toEqual(Array.from(b));
    }
  });

  it('formats IPv6 canonically (RFC 5952)', () => {
    const cases: Array<[string, string]> = [
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],          // first of two equal runs
      ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],       // a single zero group stays
      ['2001:db8:0:0:1:0:0:0', '2001:db8:0:0:1::'],           // the longer run wins
      ['::', '::'], ['::1', '::1'], ['1::', '1::'], ['FE80::A', 'fe80::a'],
      ['::ffff:192.0.2.1', '::ffff:192.0.2.1'], ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
      ['fd00:0:0:0:0:0:0:0', 'fd00::'],
    ];
    for (const [text, canon] of cases) expect(formatIP(parseIP(text)), text).toBe(canon);
  });

  it('refuses malformed IPv6', () => {
    for (const bad of ['1:2:3:4:5:6:7', '1::2::3', ':::', '1:2:3:4:5:6:7:8:9', '12345::', 'g::', '1:2:3:4::5:6:7:8', '::1.2.3', 'fe80::1%eth0', '1.2.3.4::', ':1::']) {
      expect(() => parseIP(bad), bad).toThrow();
    }
  });

  it('text round-trips for random addresses', () => {
    const r = rng(1);
    for (let i = 0; i < 2000; i++) {
      const b = Uint8Array.from({ length: 16 }, () => (r.bool(0.4) ? 0 : r.int(256)));
      expect(Array.from(parseIP(formatIP(b)))).toEqual(Array.from(b));
    }
  });
});

describe('buildPacket', () => {
  const base: PacketSpec = { src: '198.18.0.1', dst: '198.18.0.2', proto: 'tcp' };

  it('refuses impossible specs', () => {
    expect(() => buildPacket({ ...base, dst: 'fd00::1' })).toThrow(/famil/);
    expect(() => buildPacket({ ...base, family: 6 })).toThrow();
    expect(() => buildPacket({ ...base, proto: 300 })).toThrow();
    expect(() => buildPacket({ ...base, frag: { offset: 7, more: true } })).toThrow();
    expect(() => buildPacket({ ...base, ipOptions: new Uint8Array(41) })).toThrow();
    expect(() => buildPacket({ ...base, tcpOptions: new Uint8Array(41) })).toThrow();
    expect(() => buildPacket({ ...base, flags: 'SX' })).toThrow(/flag/);
    expect(() => buildPacket({ ...base, payload: new Uint8Array(65535) })).toThrow();
    // A port out of range is refused, never cut to 16 bits (70000 would become 4464).
    for (const bad of [70000, -1, 80.5, NaN]) {
      expect(() => buildPacket({ ...base, dport: bad }), String(bad)).toThrow(`bad dport ${bad}: a port is an integer from 0 to 65535`);
      expect(() => buildPacket({ ...base, proto: 'udp', sport: bad }), String(bad)).toThrow(/bad sport/);
    }
    expect(decodePacket(buildPacket({ ...base, sport: 0, dport: 65535 }))).toMatchObject({ sport: 0, dport: 65535 });
  });

  it('defaults: TTL 64, SYN, ports 12345 → 80 (53 for UDP), echo request', () => {
    const d = decodePacket(buildPacket(base));
    expect(d).toMatchObject({ family: 4, ttl: 64, flags: 'S', sport: 12345, dport: 80, checksumsOk: true });
    expect(decodePacket(buildPacket({ ...base, proto: 'udp' })).dport).toBe(53);
    expect(decodePacket(buildPacket({ ...base, proto: 'icmp' })).icmp).toMatchObject({ type: 8, code: 0, id: 0 });
    expect(decodePacket(buildPacket({ src: 'fd00::1', dst: 'fd00::2', proto: 'icmpv6' })).icmp).toMatchObject({ type: 128 });
  });

  it('IPv6 extension headers have their RFC sizes and chain their next headers', () => {
    const b = buildPacket({
      src: 'fd00::1', dst: 'fd00::2', proto: 'udp',
      ext: [{ type: 0 }, { type: 43 }, { type: 51 }, { type: 60, data: new Uint8Array(7) }], frag: { offset: 0, more: true, id: 5 },
    });
    // 8 (hop-by-hop) + 8 (routing) + 16 (AH with a 4-byte ICV) + 16 (2 + 7 options, padded) + 8 (fragment)
    expect(decodePacket(b)).toMatchObject({ headerLength: 40 + 8 + 8 + 16 + 16 + 8, proto: 17, frag: { offset: 0, more: true, id: 5 } });
    expect([b[6], b[40], b[48], b[56], b[72], b[88]]).toEqual([0, 43, 51, 60, 44, 17]);
    expect([b[49], b[57], b[73]]).toEqual([0, 2, 1]);   // Hdr Ext Len (8-byte units − 1), AH Payload Len (4-byte units − 2)
  });

  it('a later fragment carries the payload only', () => {
    const b = buildPacket({ ...base, payload: 'abcdefgh', frag: { offset: 1480, more: false, id: 9 } });
    expect(b.length).toBe(28);
    expect(decodePacket(b)).toMatchObject({ frag: { offset: 1480, more: false, id: 9 }, sport: 0, checksumsOk: true });
  });
});

describe('decodePacket', () => {
  it('reads the known packets', () => {
    expect(decodePacket(V4_TCP)).toMatchObject({
      family: 4, proto: 6, src: '131.151.32.129', dst: '131.151.32.21', sport: 1173, dport: 6000, ttl: 64,
      length: 52, headerLength: 20, flags: 'A', seq: 0x51d4ee9c, ack: 0x51a55b36, checksumsOk: true,
    });
    expect(decodePacket(V4_TCP).payload.length).toBe(0);
    expect(decodePacket(V6_TCP)).toMatchObject({ family: 6, flags: 'S', sport: 52682, dport: 22, checksumsOk: true });
    expect(decodePacket(V6_UDP)).toMatchObject({ dst: 'ff02::1', sport: 1, dport: 2, checksumsOk: true });
    expect(new TextDecoder().decode(decodePacket(V4_UDP).payload)).toBe('foobar');
    expect(decodePacket(V4_PING).icmp).toMatchObject({ type: 8, id: 0x01ff, seq: 0x2373 });
    expect(decodePacket(V4_ICMP_ERR).icmp?.inner).toMatchObject({ proto: 6, sport: 43985, dport: 80, length: 40 });
  });

  it('throws on what is not a readable packet', () => {
    expect(() => decodePacket(new Uint8Array(0))).toThrow();
    expect(() => decodePacket(Uint8Array.of(0x50, 0, 0, 0))).toThrow(/version/);
    for (let n = 0; n < V4_TCP.length; n++) expect(() => decodePacket(V4_TCP.subarray(0, n)), `prefix ${n}`).toThrow();
  });
});

describe('checksumsValid', () => {
  // Bytes no checksum covers: the IPv6 version/traffic class/flow label word and the hop limit, and
  // the next header (which, changed, names a protocol without a checksum to verify). And the third
  // bit of an IPv4 version nibble, whose flip reads as IPv6: a header whose payload length (the
  // IPv4 identification, 0 here) may make it an empty IPv6 packet of a protocol with no checksum.
  const uncovered = (b: Uint8Array, i: number, bit: number) =>
    b[0]! >> 4 === 6 ? i < 4 || i === 6 || i === 7 : i === 0 && bit === 5;

  it('accepts the known packets and catches every single-bit error a checksum covers', () => {
    const sctp = buildPacket({ src: '198.18.0.1', dst: '198.18.0.2', proto: 'sctp', sport: 32836, dport: 80, payload: SCTP_INIT_SEG.slice(12) });
    for (const p of [V4_TCP, V4_PING, V4_UDP, V4_ICMP_ERR, V6_TCP, V6_UDP, sctp]) {
      expect(checksumsValid(p), toHex(p)).toBe(true);
      for (let i = 0; i < p.length; i++) {
        for (let bit = 0; bit < 8; bit++) {
          if (uncovered(p, i, bit)) continue;
          const q = p.slice();
          q[i]! ^= 1 << bit;
          expect(checksumsValid(q), `byte ${i} bit ${bit} of ${toHex(p).slice(0, 16)}`).toBe(false);
        }
      }
    }
  });

  it('knows UDP zero checksums per family and SCTP CRC32c per RFC 3720', () => {
    expect(checksumsValid(buildPacket({ src: '198.18.0.1', dst: '198.18.0.2', proto: 'udp', udpZeroChecksum: true }))).toBe(true);
    expect(checksumsValid(buildPacket({ src: 'fd00::1', dst: 'fd00::2', proto: 'udp', udpZeroChecksum: true }))).toBe(false);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(tcpFlagString(0x12)).toBe('SA');
  });

  it('every random packet the builder makes verifies', () => {
    const r = rng(2);
    for (let i = 0; i < 500; i++) {
      const v6 = r.bool();
      const spec: PacketSpec = {
        src: v6 ? 'fd00::1' : '198.18.0.1', dst: v6 ? 'fd00::2' : '198.18.0.2',
        proto: r.pick(['tcp', 'udp', 'sctp', v6 ? 'icmpv6' : 'icmp'] as const), sport: r.int(65536), dport: r.int(65536),
        payload: r.bytes(r.int(200)), ttl: r.int(256),
      };
      expect(checksumsValid(buildPacket(spec))).toBe(true);
    }
  });
});
