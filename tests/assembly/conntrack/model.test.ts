// Property test: hundreds of thousands of random inserts, deletes and lookups (IPv4 and IPv6, NATed
// and not, clashing on purpose) against a JS Map model of what the table must hold.
import { describe, it, expect } from 'vitest';
import { Ct, rng, NONE } from './harness';

// A tuple as the 13 numbers setTuple takes after the pointer:
// family, proto, sport, dport, type, s0..s3, d0..d3.
type W = number[];
const keyOf = (t: W) => t.join(',');
// Plain checks inside the hot loop (vitest's expect costs more than the operation under test).
function same(got: number, want: number, what: string): void {
  if (got !== want) throw new Error(`${what}: got ${got}, want ${want}`);
}
const invert = (t: W): W => {
  const type = t[1] === 1 ? (t[4] === 8 ? 0 : 8) : t[1] === 58 ? (t[4] === 128 ? 129 : 128) : 0;
  return [t[0], t[1], t[3], t[2], type, t[9], t[10], t[11], t[12], t[5], t[6], t[7], t[8]];
};

describe('conntrack model', () => {
  it('matches a Map model over 300k random operations', () => {
    const c = new Ct(17, 15, 0xdead, 0xbeef);
    const x = c.x;
    const r = rng(20240601);
    const pick = (n: number) => r() % n;
    const slot = [x.tupleAt(0), x.tupleAt(1), x.tupleAt(2)];
    const put = (t: W, i: number) => {
      x.setTuple(slot[i], ...t);
      return slot[i];
    };
    const addr = (family: number, base: number, spread: number): number[] =>
      family === 4 ? [(base + pick(spread)) >>> 0, 0, 0, 0] : [0xfd, pick(4), pick(spread), base + pick(spread)];
    const randomTuple = (): W => {
      const family = pick(5) === 0 ? 6 : 4;
      const protos = family === 4 ? [6, 17, 1, 47] : [6, 17, 58, 132];
      const proto = protos[pick(protos.length)];
      const icmp = proto === 1 || proto === 58;
      const port = icmp ? pick(64) : 1024 + pick(512);
      return [family, proto, port, icmp ? port : [53, 80, 443][pick(3)], proto === 1 ? 8 : proto === 58 ? 128 : 0,
        ...addr(family, 0x0a000000, 64), ...addr(family, 0x0b000000, 8)];
    };
    const natReply = (o: W): W => {
      const rep = invert(o);
      if (pick(2) === 0) return rep;
      // DNAT to an endpoint, sometimes SNAT to a masquerade address and port.
      const ep = addr(o[0], 0x0c000000, 32);
      rep.splice(5, 4, ...ep);
      if (o[1] !== 1 && o[1] !== 58) rep[2] = 8000 + pick(16);
      if (pick(3) === 0) {
        rep.splice(9, 4, ...addr(o[0], 0x0d000000, 2));
        rep[3] = 30000 + pick(20000);
      }
      return rep;
    };

    const byKey = new Map<string, number>(); // tuple → handle
    const entries = new Map<number, [W, W]>();
    const live: number[] = [];
    const livePos = new Map<number, number>();
    let v6 = 0;
    let inserts = 0, clashes = 0, deletes = 0, lookups = 0;
    const now = 5000;

    const removeLive = (idx: number) => {
      const p = livePos.get(idx)!;
      const last = live.pop()!;
      if (last !== idx) { live[p] = last; livePos.set(last, p); }
      livePos.delete(idx);
    };

    for (let op = 0; op < 300_000; op++) {
      const roll = pick(100);
      if (roll < 50 && live.length < 100_000) {
        const o = randomTuple();
        if (o[0] === 6 && v6 >= 32_000) continue;
        const rep = natReply(o);
        const idx = x.ctInsert(put(o, 0), put(rep, 1), now) >>> 0;
        if (byKey.has(keyOf(o)) || byKey.has(keyOf(rep))) {
          same(idx, NONE, `insert clash op ${op}`);
          clashes++;
          continue;
        }
        if (idx === NONE) throw new Error(`insert failed op ${op}`);
        if (entries.has(idx)) throw new Error(`index ${idx} handed out twice`);
        byKey.set(keyOf(o), idx << 1);
        byKey.set(keyOf(rep), (idx << 1) | 1);
        entries.set(idx, [o, rep]);
        livePos.set(idx, live.length);
        live.push(idx);
        if (o[0] === 6) v6++;
        inserts++;
      } else if (roll < 55 && live.length) {
        // Deliberate clash: reuse one side of a live entry as the new original.
        const [o, rep] = entries.get(live[pick(live.length)])!;
        const t = pick(2) ? o : rep;
        same(x.ctInsert(put(t, 0), put(natReply(t), 1), now) >>> 0, NONE, `forced clash op ${op}`);
        clashes++;
      } else if (roll < 80 && live.length) {
        const idx = live[pick(live.length)];
        const [o, rep] = entries.get(idx)!;
        x.ctDelete(idx);
        byKey.delete(keyOf(o));
        byKey.delete(keyOf(rep));
        entries.delete(idx);
        removeLive(idx);
        if (o[0] === 6) v6--;
        deletes++;
      } else if (live.length) {
        lookups++;
        if (pick(2)) {
          const idx = live[pick(live.length)];
          const [o, rep] = entries.get(idx)!;
          same(x.ctLookup(put(o, 2), now) >>> 0, idx << 1, `orig lookup op ${op}`);
          same(x.ctLookup(put(rep, 2), now) >>> 0, (idx << 1) | 1, `reply lookup op ${op}`);
        } else {
          const t = randomTuple();
          same(x.ctLookup(put(t, 2), now) >>> 0, byKey.get(keyOf(t)) ?? NONE, `random lookup op ${op}`);
        }
      }
      if (op % 50_000 === 0) same(x.ctCount() >>> 0, live.length, `count op ${op}`);
    }

    expect(x.ctCount() >>> 0).toBe(live.length);
    expect(inserts).toBeGreaterThan(100_000);
    expect(deletes).toBeGreaterThan(50_000);
    expect(clashes).toBeGreaterThan(10_000);
    expect(lookups).toBeGreaterThan(30_000);
    expect(c.stat('INSERTS')).toBe(inserts);
    expect(c.stat('DELETES')).toBe(deletes);
    expect(c.stat('CLASH')).toBe(clashes);
    // Every live entry holds exactly its tuples, and iteration sees exactly the live set.
    const seen: number[] = [];
    for (let i = x.ctNextUsed(0) >>> 0; i !== NONE; i = x.ctNextUsed(i + 1) >>> 0) seen.push(i);
    expect(seen).toEqual([...live].sort((a, b) => a - b));
    for (const idx of live.slice(0, 2000)) {
      const [o, rep] = entries.get(idx)!;
      x.ctOrig(idx, slot[2]);
      expect(Array.from({ length: 13 }, (_, f) => x.tupleField(slot[2], f) >>> 0)).toEqual(o.map((v) => v >>> 0));
      x.ctReply(idx, slot[2]);
      expect(Array.from({ length: 13 }, (_, f) => x.tupleField(slot[2], f) >>> 0)).toEqual(rep.map((v) => v >>> 0));
    }
  });
});
