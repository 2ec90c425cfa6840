// LayeredMap (ruleset.ts): a shared base plus a small delta. with() and withOwned() must give the
// same entries whatever the sizes (small changes stay in the delta, large ones fold), deletions
// included; withOwned() may reorder them and takes over the map it is given.
import { describe, expect, it } from 'vitest';
import { LayeredMap } from '../../../host-node/netfilter/index.js';

function model(base: Map<string, number>, changes: Map<string, number | null>): Map<string, number> {
  const m = new Map(base);
  for (const [k, v] of changes) {
    if (v === null) m.delete(k);
    else m.set(k, v);
  }
  return m;
}

function sorted(m: LayeredMap<number>): [string, number][] {
  return [...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
}

describe('LayeredMap', () => {
  // Seeded LCG: the same cases every run.
  let seed = 12345;
  const rand = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;

  it('with() and withOwned() agree with a plain map over small and large changes, deletions included', () => {
    for (const [baseSize, steps, perStep] of [[10, 20, 5], [1000, 10, 40], [100, 4, 5000], [20000, 3, 300]] as const) {
      let a = LayeredMap.of<number>();
      let b = LayeredMap.of<number>();
      let want = new Map<string, number>();
      const first = new Map<string, number | null>();
      for (let i = 0; i < baseSize; i++) first.set(`c${i}`, i);
      const steps0 = [first];
      for (let s = 0; s < steps; s++) {
        const ch = new Map<string, number | null>();
        for (let k = 0; k < perStep; k++) {
          const key = `c${rand(baseSize * 2)}`;
          ch.set(key, rand(4) === 0 ? null : rand(1000));
        }
        steps0.push(ch);
      }
      for (const ch of steps0) {
        want = model(want, ch);
        a = a.with(ch);
        b = b.withOwned(new Map(ch));
        expect(a.size).toBe(want.size);
        expect(b.size).toBe(want.size);
        for (const k of ['c0', 'c1', `c${baseSize}`, `c${2 * baseSize - 1}`, 'nope']) {
          expect(a.get(k)).toBe(want.get(k));
          expect(b.get(k)).toBe(want.get(k));
          expect(b.has(k)).toBe(want.has(k));
        }
        const w = [...want].sort((x, y) => (x[0] < y[0] ? -1 : 1));
        expect(sorted(a)).toEqual(w);
        expect(sorted(b)).toEqual(w);
        for (const m of [a, b]) {
          const seen: number[] = [];
          m.forEachValue((v) => seen.push(v));
          expect(seen).toEqual([...m.values()]);
        }
      }
    }
  });

  it('withOwned() leaves the map it was derived from as it was', () => {
    const base = LayeredMap.of<number>([['a', 1], ['b', 2]]);
    const big = new Map<string, number | null>([['a', null]]);
    for (let i = 0; i < 1000; i++) big.set(`x${i}`, i);
    const next = base.withOwned(big);
    expect(next.get('a')).toBeUndefined();
    expect(next.get('b')).toBe(2);
    expect(next.size).toBe(1001);
    expect(base.get('a')).toBe(1);
    expect(base.size).toBe(2);
    expect([...base.entries()]).toEqual([['a', 1], ['b', 2]]);
  });
});
