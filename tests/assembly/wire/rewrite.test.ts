// nat/rewrite.ts: every rewrite checked against a packet built from scratch with the new values
// (a full recompute of every checksum), over thousands of random packets: src/dst × TCP/UDP/SCTP/
// ICMP echo/ICMPv6 echo/unknown × IPv4/IPv6, fragments, ICMP error quotes, checksum offload mode.
import { describe, expect, it } from 'vitest';
import {
  loadWire, rng, toHex, R, FRAG, randomSpec, randomV4, randomV6, bytesToWords, sameModuloZero,
  errorSpec, randomQuote, type Rng,
} from './support';
import { buildPacket, checksumsValid, decodePacket, parseIP, type PacketSpec, type ProtoName } from '../../../host-node/core/packet';

const w = loadWire();
const x = w.x;

const ID_TYPES = (v6: boolean) => (v6 ? [128, 129] : [0, 8, 13, 14, 15, 16, 17, 18]);
const hasPorts = (p: PacketSpec['proto']) => p === 'tcp' || p === 'udp' || p === 'sctp';

function newEnd(r: Rng, v6: boolean) {
  const addr = v6 ? randomV6(r) : randomV4(r);
  return { addr, words: bytesToWords(parseIP(addr)), port: r.bool(0.05) ? r.pick([0, 65535]) : r.int(0x10000) };
}

/** `spec` with one end replaced, as the rewrite should leave the packet. */
function withEnd(spec: PacketSpec, isDst: boolean, addr: string, port: number): PacketSpec {
  const out: PacketSpec = { ...spec, [isDst ? 'dst' : 'src']: addr };
  if ((spec.frag?.offset ?? 0) > 0) return out;
  if (hasPorts(spec.proto)) out[isDst ? 'dport' : 'sport'] = port;
  const v6 = spec.src.includes(':');
  if (spec.icmp && ID_TYPES(v6).includes(spec.icmp.type!)) out.icmp = { ...spec.icmp, id: port };
  return out;
}

function rewrite(inner: boolean, isDst: boolean, e: { words: number[]; port: number }) {
  const [a0, a1, a2, a3] = e.words;
  const fn = inner ? (isDst ? x.rwInnerDst : x.rwInnerSrc) : isDst ? x.rwDst : x.rwSrc;
  fn!(a0!, a1!, a2!, a3!, e.port);
}

function expectSame(got: Uint8Array, want: Uint8Array, what: string) {
  if (!sameModuloZero(got, want)) expect(toHex(got), what).toBe(toHex(want));
}

// The SCTP CRC of a first fragment cannot be recomputed from one fragment: it stays.
function keepSctpCrc(want: Uint8Array, orig: Uint8Array, l3: number, upTo = orig.length) {
  for (let i = l3 + 8; i < Math.min(l3 + 12, upTo); i++) want[i] = orig[i]!;
}

describe('rewrite vs full recompute', () => {
  const protos = (v6: boolean): Array<ProtoName | number> => ['tcp', 'udp', 'sctp', v6 ? 'icmpv6' : 'icmp', 47];
  for (const family of [4, 6] as const) {
    for (const proto of protos(family === 6)) {
      for (const isDst of [false, true]) {
        it(`${isDst ? 'dst' : 'src'} of ${proto} over IPv${family}, 600 random packets incl. fragments`, () => {
          const r = rng(family * 1000 + (typeof proto === 'number' ? proto : proto.length) * 10 + (isDst ? 1 : 0));
          for (let i = 0; i < 600; i++) {
            const spec = randomSpec(r, { family, proto, opts: true, frag: true });
            const orig = buildPacket(spec);
            expect(w.parse(orig)).toBe(R.NONE);
            const before = w.flow();
            const e = newEnd(r, family === 6);
            rewrite(false, isDst, e);
            const got = w.bytes();
            const want = buildPacket(withEnd(spec, isDst, e.addr, e.port));
            if (proto === 'sctp' && before.frag === FRAG.FIRST) keepSctpCrc(want, orig, before.l3len);
            expectSame(got, want, `case ${i}`);
            expect(checksumsValid(got)).toBe(true);
            // The Flow follows the packet.
            const f = w.flow();
            expect(isDst ? f.dst : f.src).toBe(decodePacket(want)[isDst ? 'dst' : 'src']);
            expect(isDst ? f.src : f.dst).toBe(isDst ? before.src : before.dst);
            const d = decodePacket(want);
            // An ICMPv6 message's bytes 4–5 are conntrack's identifier whatever its type; NAT
            // rewrites them for echo only.
            const id6 = proto === 'icmpv6' && d.icmp && !(d.icmp.type >= 1 && d.icmp.type <= 4) ? (want[d.headerLength + 4]! << 8) | want[d.headerLength + 5]! : undefined;
            expect([f.sport, f.dport]).toEqual(before.frag === FRAG.LATER || proto === 47 ? [0, 0] : id6 !== undefined ? [id6, id6] : [d.sport, d.dport]);
          }
        });
      }
    }
  }

  it('a zero UDP checksum over IPv4 stays zero', () => {
    const r = rng(7);
    for (let i = 0; i < 200; i++) {
      const spec: PacketSpec = { ...randomSpec(r, { family: 4, proto: 'udp' }), udpZeroChecksum: true };
      expect(w.parse(buildPacket(spec))).toBe(R.NONE);
      const e = newEnd(r, false);
      const isDst = r.bool();
      rewrite(false, isDst, e);
      const got = w.bytes();
      expect(toHex(got.subarray(26, 28))).toBe('0000');
      expectSame(got, buildPacket(withEnd(spec, isDst, e.addr, e.port)), `case ${i}`);
    }
  });

  it('a UDP checksum that becomes 0 is written as 0xffff', () => {
    for (const [src, dst] of [['198.18.0.1', '198.18.0.2'], ['fd00::1', 'fd00::2']] as const) {
      const base: PacketSpec = { src, dst, proto: 'udp', sport: 1000, dport: 53, payload: 'zero' };
      // The sum with source port 0 and the checksum field 0; the port that completes it to 0xffff.
      const z = buildPacket({ ...base, sport: 0, udpZeroChecksum: true });
      const l3 = decodePacket(z).headerLength;
      let acc = 17 + (z.length - l3);
      const addrs = src.includes(':') ? z.subarray(8, 40) : z.subarray(12, 20);
      for (let i = 0; i < addrs.length; i += 2) acc += (addrs[i]! << 8) | addrs[i + 1]!;
      for (let i = l3; i < z.length; i += 2) acc += (z[i]! << 8) | (z[i + 1] ?? 0);
      while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
      const port = 0xffff - acc;
      expect(w.parse(buildPacket(base))).toBe(R.NONE);
      rewrite(false, false, { words: bytesToWords(parseIP(src)), port });
      const got = w.bytes();
      expect(toHex(got.subarray(l3 + 6, l3 + 8))).toBe('ffff');
      expect(checksumsValid(got)).toBe(true);
    }
  });
});

describe('checksum offload (csumPartial)', () => {
  // The field as a TUN device hands it over: the folded, uncomplemented pseudo-header sum.
  function partialField(b: Uint8Array): number {
    const d = decodePacket(b);
    const v6 = d.family === 6;
    const addrs = v6 ? b.subarray(8, 40) : b.subarray(12, 20);
    let acc = d.proto + (b.length - d.headerLength);
    for (let i = 0; i < addrs.length; i += 2) acc += (addrs[i]! << 8) | addrs[i + 1]!;
    while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
    return acc;
  }
  const FIELD: Record<string, number> = { tcp: 16, udp: 6, icmp: 2, icmpv6: 2 };

  it('parse keeps the host-set flag; the quoted header never has it', () => {
    x.setCsumPartial!(0, 1);
    x.setCsumPartial!(1, 1);
    const inner = buildPacket({ src: '198.18.0.1', dst: '198.18.0.2', proto: 'tcp' });
    expect(w.parse(buildPacket({ src: '198.18.0.9', dst: '198.18.0.1', proto: 'icmp', icmp: { type: 3, quote: inner } }))).toBe(R.NONE);
    expect(w.flow(0).csumPartial).toBe(true);
    expect(w.flow(1).csumPartial).toBe(false);
    x.setCsumPartial!(0, 0);
    expect(w.parse(inner)).toBe(R.NONE);
    expect(w.flow(0).csumPartial).toBe(false);
  });

  for (const proto of ['tcp', 'udp', 'icmpv6', 'icmp', 'sctp'] as const) {
    it(`${proto}: only the address deltas go into the field, uncomplemented`, () => {
      const r = rng(300 + proto.length);
      const fams = proto === 'icmpv6' ? [6] as const : proto === 'icmp' ? [4] as const : [4, 6] as const;
      for (let i = 0; i < 600; i++) {
        const family = r.pick(fams);
        const spec: PacketSpec = { ...randomSpec(r, { family, proto, opts: true }), udpZeroChecksum: false };
        const orig = buildPacket(spec);
        const l3 = decodePacket(orig).headerLength;
        const off = FIELD[proto];
        const partial = (b: Uint8Array) => {
          if (proto === 'tcp' || proto === 'udp' || proto === 'icmpv6') { b[l3 + off!] = partialField(b) >> 8; b[l3 + off! + 1] = partialField(b) & 0xff; }
          return b;
        };
        partial(orig);
        x.setCsumPartial!(0, 1);
        expect(w.parse(orig)).toBe(R.NONE);
        const e = newEnd(r, family === 6);
        const isDst = r.bool();
        rewrite(false, isDst, e);
        x.setCsumPartial!(0, 0);
        const want = buildPacket(withEnd(spec, isDst, e.addr, e.port));
        if (proto === 'tcp' || proto === 'udp' || proto === 'icmpv6') partial(want);
        else if (proto === 'icmp') { want[l3 + 2] = orig[l3 + 2]!; want[l3 + 3] = orig[l3 + 3]!; }   // no pseudo-header: untouched
        else keepSctpCrc(want, orig, l3);   // the device computes the CRC
        expectSame(w.bytes(), want, `case ${i}`);
      }
    });
  }
});

describe('ICMP error rewrites (RELATED traffic)', () => {
  for (const family of [4, 6] as const) {
    for (const proto of ['tcp', 'udp', 'sctp', family === 6 ? 'icmpv6' : 'icmp', 47] as const) {
      it(`quoted ${proto} over IPv${family}: src and dst, whole and cut quotes, 500 cases`, () => {
        const r = rng(500 + family * 10 + String(proto).length);
        for (let i = 0; i < 500; i++) {
          const { spec, full, quote, l3 } = randomQuote(r, family, { proto });
          const outer = errorSpec(r, family, quote, spec.src);
          expect(w.parse(buildPacket(outer))).toBe(R.NONE);
          const e = newEnd(r, family === 6);
          const isDst = r.bool();
          rewrite(true, isDst, e);
          const fullWant = buildPacket(withEnd(spec, isDst, e.addr, e.port));
          const quoteWant = fullWant.slice(0, quote.length);
          // A cut SCTP quote cannot have its CRC recomputed; a TCP quote has its checksum updated
          // only when its whole 20-byte header is there (nf_nat_proto.c tcp_manip_pkt).
          if (proto === 'sctp' && quote.length < full.length) keepSctpCrc(quoteWant, quote, l3, quote.length);
          if (proto === 'tcp' && quote.length < l3 + 20) for (let k = l3 + 16; k < quote.length; k++) quoteWant[k] = quote[k]!;
          const want = buildPacket({ ...outer, icmp: { ...outer.icmp, quote: quoteWant } });
          expectSame(w.bytes(), want, `case ${i} (quote ${quote.length}/${full.length})`);
          expect(checksumsValid(w.bytes())).toBe(true);
          const q = w.flow(1);
          expect(isDst ? q.dst : q.src).toBe(decodePacket(fullWant)[isDst ? 'dst' : 'src']);
        }
      });
    }
  }

  it('a quote of 4 to 7 transport bytes: addresses and ports, nothing past the quote', () => {
    const r = rng(602);
    for (let i = 0; i < 200; i++) {
      const family = r.pick([4, 6] as const);
      const proto = r.pick(['tcp', 'udp', 'sctp'] as const);
      const { spec, full, l3 } = randomQuote(r, family, { proto, frag: undefined });
      const quote = full.slice(0, l3 + r.range(4, 7));
      const outer = errorSpec(r, family, quote, spec.src);
      const b = buildPacket(outer);
      expect(w.parse(b, b.length + 64)).toBe(R.NONE);
      const e = newEnd(r, family === 6);
      const isDst = r.bool();
      rewrite(true, isDst, e);
      const moved = buildPacket(withEnd(spec, isDst, e.addr, e.port)).slice(0, quote.length);
      // The IPv4 header checksum follows its address; past the ports nothing changes.
      for (let k = l3 + 4; k < quote.length; k++) moved[k] = quote[k]!;
      const want = buildPacket({ ...outer, icmp: { ...outer.icmp, quote: moved } });
      expectSame(w.bytes(), want, `case ${i} (${proto}, quote ${quote.length - l3} transport bytes)`);
      expect(checksumsValid(w.bytes())).toBe(true);
    }
  });

  it('the outer header of an error: addresses only, ICMPv6 through its pseudo-header', () => {
    const r = rng(600);
    for (let i = 0; i < 1000; i++) {
      const family = r.pick([4, 6] as const);
      const { spec, quote } = randomQuote(r, family);
      const outer = errorSpec(r, family, quote, spec.src);
      expect(w.parse(buildPacket(outer))).toBe(R.NONE);
      const e = newEnd(r, family === 6);
      const isDst = r.bool();
      rewrite(false, isDst, e);
      expectSame(w.bytes(), buildPacket({ ...outer, [isDst ? 'dst' : 'src']: e.addr }), `case ${i}`);
      expect(w.flow(0)).toMatchObject({ sport: 0, dport: 0, isIcmpError: true });
    }
  });

  it('with checksum offload the outer ICMP checksum is left alone', () => {
    const r = rng(601);
    const { spec, quote } = randomQuote(r, 4, { proto: 'udp' });
    const outer = errorSpec(r, 4, quote, spec.src);
    const b = buildPacket(outer);
    x.setCsumPartial!(0, 1);
    expect(w.parse(b)).toBe(R.NONE);
    rewrite(true, false, newEnd(r, false));
    x.setCsumPartial!(0, 0);
    expect(toHex(w.bytes().subarray(22, 24))).toBe(toHex(b.subarray(22, 24)));
  });

  it('inner rewrites do nothing on a packet that is not an ICMP error', () => {
    const b = buildPacket({ src: '198.18.0.1', dst: '198.18.0.2', proto: 'tcp' });
    expect(w.parse(b)).toBe(R.NONE);
    rewrite(true, false, newEnd(rng(9), false));
    expect(toHex(w.bytes())).toBe(toHex(b));
  });
});
