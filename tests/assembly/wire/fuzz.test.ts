// Fuzz: 200k random and mutated packets through parse (and through a rewrite when parse succeeds).
// Every packet ends exactly at the end of memory, so a read or write past it traps and fails the
// test; every reason must be one parse can give, and successful parses must be self-consistent.
import { describe, expect, it } from 'vitest';
import { loadWire, rng, randomSpec, randomQuote, errorPacket, R, type Rng } from './support';
import { buildPacket } from '../../../host-node/core/packet';

const ITERATIONS = 200_000;

function pool(r: Rng): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < 300; i++) out.push(buildPacket(randomSpec(r, { opts: true, frag: true })));
  for (let i = 0; i < 150; i++) {
    const family = r.pick([4, 6] as const);
    const { spec, quote } = randomQuote(r, family);
    out.push(errorPacket(r, family, quote, spec.src));
  }
  return out;
}

describe('fuzz', () => {
  it(`${ITERATIONS} random and mutated packets never trap and parse consistently`, () => {
    const w = loadWire();
    const x = w.x;
    const r = rng(0xf022);
    const base = pool(r);
    const mem = new Uint8Array(w.core.memory.buffer);
    const end = mem.length;
    const seen = new Map<number, number>();
    let rewrites = 0, innerRewrites = 0, inconsistent = 0;
    for (let i = 0; i < ITERATIONS; i++) {
      const kind = r.int(10);
      let len: number;
      let at: number;
      if (kind === 0) {
        // Pure noise, with a plausible version nibble most of the time.
        len = r.int(120);
        at = end - len;
        for (let k = 0; k < len; k++) mem[at + k] = r.int(256);
        if (len > 0 && r.bool(0.8)) mem[at] = (r.pick([4, 6]) << 4) | (mem[at]! & 15);
      } else {
        const p = base[r.int(base.length)]!;
        len = kind === 1 ? r.int(p.length + 1) : p.length;   // truncated copies
        at = end - len;
        mem.set(p.subarray(0, len), at);
        const flips = kind === 1 ? 0 : r.range(1, 4);
        for (let k = 0; k < flips && len > 0; k++) {
          // Mostly header bytes: that is where the decisions are.
          const pos = r.bool(0.8) ? r.int(Math.min(len, 72)) : r.int(len);
          mem[at + pos] = r.pick([0, 0xff, r.int(256), mem[at + pos]! ^ (1 << r.int(8))]);
        }
      }
      const cap = len + r.int(64);
      x.setCsumPartial!(0, r.bool(0.1) ? 1 : 0);
      const reason = x.parsePkt!(at, len, cap);
      seen.set(reason, (seen.get(reason) ?? 0) + 1);
      if (reason !== R.NONE) continue;
      if ((i & 15) === 0) {
        const l3 = x.getL3len!(0), l4 = x.getL4len!(0) >>> 0, flen = x.getLen!(0) >>> 0;
        if (l3 + l4 !== flen || flen > len || l3 < 20 || x.getPkt!(0) >>> 0 !== at) inconsistent++;
        if (x.getIsIcmpError!(0) === 1) {
          const off = x.getInnerOff!(0) >>> 0;
          const il3 = x.getL3len!(1), il4 = x.getL4len!(1) >>> 0, ilen = x.getLen!(1) >>> 0;
          if (off !== l3 + 8 || x.getPkt!(1) >>> 0 !== at + off || ilen !== flen - off || il3 + il4 > ilen) inconsistent++;
        }
      }
      const words = [r.int(2 ** 32), r.int(2 ** 32), r.int(2 ** 32), r.int(2 ** 32)];
      (r.bool() ? x.rwSrc! : x.rwDst!)(words[0]!, words[1]!, words[2]!, words[3]!, r.int(0x10000));
      rewrites++;
      if (x.getIsIcmpError!(0) === 1) {
        (r.bool() ? x.rwInnerSrc! : x.rwInnerDst!)(words[3]!, words[2]!, words[1]!, words[0]!, r.int(0x10000));
        innerRewrites++;
      }
    }
    const reasons = [...seen.keys()].sort((a, b) => a - b);
    expect(reasons.every((k) => [R.NONE, R.TRUNCATED, R.BAD_VERSION, R.BAD_HEADER, R.EXT_LIMIT].includes(k as 0))).toBe(true);
    expect(inconsistent).toBe(0);
    // The mutations must leave enough packets parseable for the rewrites to be exercised.
    expect(rewrites).toBeGreaterThan(ITERATIONS / 4);
    expect(innerRewrites).toBeGreaterThan(ITERATIONS / 50);
    for (const k of [R.TRUNCATED, R.BAD_VERSION, R.BAD_HEADER, R.EXT_LIMIT]) expect(seen.get(k) ?? 0, `reason ${k}`).toBeGreaterThan(50);
  });
});
