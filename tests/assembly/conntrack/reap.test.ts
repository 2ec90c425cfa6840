// Bounded reaping (budget respected, everything expired eventually removed, the cursor wraps),
// iteration over used slots, and the control plane's flushes by reply source and original destination,
// one at a time and many in one walk.
import { describe, it, expect } from 'vitest';
import { Ct, T, inv, UDP, TCP, NONE, SEC, addrWords } from './harness';

const T0 = 0xffff_fff0;
const at = (ms: number) => (T0 + ms) >>> 0;
const flow = (p: number, proto = UDP): T => ({ family: 4, proto, sport: 10000 + p, dport: 53, src: '198.18.0.5', dst: '198.18.0.53' });

describe('conntrack reaping', () => {
  it('removes at most `budget` slots worth per call, wraps, and eventually removes every expired entry', () => {
    const c = new Ct(8, 2); // 256 slots
    const cap = 256;
    const live: number[] = [];
    for (let p = 0; p < 200; p++) {
      const i = c.insert(flow(p), undefined, at(0));
      c.packet(i, 0, 0, at(0));
      if (p % 10 === 0) live.push(i);
    }
    // Keep every tenth alive past the 30 s timeout.
    for (const i of live) c.packet(i, 0, 0, at(20 * SEC));
    const now = at(30 * SEC);
    expect(c.x.ctReap(now, 0)).toBe(0);
    expect(c.x.ctReapCursor()).toBe(0);
    let removed = 0, calls = 0;
    while (calls * 16 < cap) {
      const before = c.x.ctReapCursor() >>> 0;
      const r = c.x.ctReap(now, 16) >>> 0;
      // The slots visited are exactly [before, before + 16): count the expired ones there.
      expect(r).toBeLessThanOrEqual(16);
      expect(c.x.ctReapCursor() >>> 0).toBe((before + 16) % cap);
      removed += r;
      calls++;
    }
    expect(removed).toBe(200 - live.length);
    expect(c.count()).toBe(live.length);
    expect(c.x.ctReapCursor()).toBe(0); // wrapped
    for (const i of live) expect(c.lookup(c.orig(i)!, now)).toBe(i << 1);
    expect(c.stat('EXPIRED')).toBe(removed);
    // A budget above the capacity visits each slot once.
    expect(c.x.ctReap(at(60 * SEC), 100000) >>> 0).toBe(live.length);
    expect(c.count()).toBe(0);
  });

  it('a slice of slots is all the work: entries beyond it wait for the next call', () => {
    const c = new Ct(6, 2); // 64 slots
    for (let p = 0; p < 64; p++) c.insert(flow(p), undefined, at(0));
    const now = at(31 * SEC);
    expect(c.x.ctReap(now, 5)).toBe(5);
    expect(c.count()).toBe(59);
    expect(c.x.ctReap(now, 64)).toBe(59);
    expect(c.x.ctReapCursor() >>> 0).toBe(5);
  });

  it('ctNextUsed walks the used slots in order', () => {
    const c = new Ct(6, 2);
    const ids = [];
    for (let p = 0; p < 10; p++) ids.push(c.insert(flow(p), undefined, at(0)));
    c.x.ctDelete(ids[3]);
    c.x.ctDelete(ids[7]);
    const seen: number[] = [];
    for (let i = c.x.ctNextUsed(0) >>> 0; i !== NONE; i = c.x.ctNextUsed(i + 1) >>> 0) seen.push(i);
    expect(seen).toEqual(ids.filter((_, k) => k !== 3 && k !== 7));
  });
});

describe('conntrack flushes', () => {
  function fill(c: Ct) {
    // Three clients to one VIP, DNATed to two endpoints; one TCP flow; one IPv6 flow.
    const vip = '198.18.100.1';
    const e1 = '198.18.5.1', e2 = '198.18.5.2';
    const add = (sport: number, proto: number, ep: string, eport: number) => {
      const o: T = { family: 4, proto, sport, dport: 53, src: '198.18.0.9', dst: vip };
      return c.insert(o, { ...inv(o), src: ep, sport: eport }, at(0));
    };
    return {
      a: add(1, UDP, e1, 5353), b: add(2, UDP, e1, 5354), d: add(3, UDP, e2, 5353), t: add(4, TCP, e1, 5353),
      v6: c.insert({ family: 6, proto: UDP, sport: 5, dport: 53, src: 'fd00::9', dst: 'fd00::100' },
        { family: 6, proto: UDP, sport: 5353, dport: 5, src: 'fd00::5:1', dst: 'fd00::9' }, at(0)),
    };
  }
  const w4 = (a: string) => addrWords(a, 4), w6 = (a: string) => addrWords(a, 6);

  it('by reply source (the endpoint), with and without a port, per protocol', () => {
    const c = new Ct(8, 4);
    const f = fill(c);
    expect(c.x.ctFlushReplySrc(4, UDP, ...w4('198.18.5.1'), 5354)).toBe(1);
    expect(c.lookup(c.orig(f.a)!, at(1))).toBe(f.a << 1);
    expect(c.x.ctStatus(f.b)).toBe(0); // gone
    expect(c.x.ctFlushReplySrc(4, UDP, ...w4('198.18.5.1'), 0)).toBe(1); // a; t is TCP
    expect(c.x.ctFlushReplySrc(4, 0, ...w4('198.18.5.1'), 0)).toBe(1); // t
    expect(c.x.ctFlushReplySrc(4, UDP, ...w4('198.18.5.9'), 0)).toBe(0);
    expect(c.x.ctFlushReplySrc(6, UDP, ...w6('fd00::5:1'), 5353)).toBe(1);
    expect(c.count()).toBe(1); // d remains
    expect(c.lookup(c.orig(f.d)!, at(1))).toBe(f.d << 1);
    expect(c.stat('DELETES')).toBe(4);
  });

  it('by original destination (a Service IP)', () => {
    const c = new Ct(8, 4);
    const f = fill(c);
    expect(c.x.ctFlushOrigDst(4, UDP, ...w4('198.18.100.1'), 53)).toBe(3);
    expect(c.count()).toBe(2);
    expect(c.x.ctFlushOrigDst(4, TCP, ...w4('198.18.100.1'), 80)).toBe(0);
    expect(c.x.ctFlushOrigDst(6, 0, ...w6('fd00::100'), 0)).toBe(1);
    expect(c.lookup(c.orig(f.t)!, at(1))).toBe(f.t << 1);
    // The IPv6 slot was freed: the side table (16 slots) takes new flows again.
    const v = c.insert({ family: 6, proto: UDP, sport: 6, dport: 53, src: 'fd00::9', dst: 'fd00::100' }, undefined, at(1));
    expect(v).not.toBe(NONE);
  });

  it('rejects malformed arguments without touching the table', () => {
    const c = new Ct(8, 4);
    fill(c);
    expect(c.x.ctFlushReplySrc(5, UDP, 1, 0, 0, 0, 0)).toBe(0);
    expect(c.x.ctFlushReplySrc(4, 300, 1, 0, 0, 0, 0)).toBe(0);
    expect(c.x.ctFlushReplySrc(4, UDP, 1, 2, 0, 0, 0)).toBe(0); // IPv4 with padding words
    expect(c.x.ctFlushOrigDst(4, UDP, 1, 0, 0, 0, 70000)).toBe(0);
    expect(c.count()).toBe(5);
    expect(c.stat('BAD_ARG')).toBe(4);
  });

  /** Flush keys as the core reads them (reap.ts FLUSH_KEY), written at the scratch buffer. */
  type Key = { dir: 0 | 1; family: 4 | 6; proto: number; port: number; addr: string };
  function putKeys(c: Ct, keys: Key[]): number {
    const bytes = new Uint8Array(keys.length * 24);
    const dv = new DataView(bytes.buffer);
    keys.forEach((k, i) => {
      const p = i * 24;
      bytes[p] = k.dir; bytes[p + 1] = k.family; bytes[p + 2] = k.proto;
      dv.setUint16(p + 4, k.port, true);
      addrWords(k.addr, k.family).forEach((w, j) => dv.setUint32(p + 8 + 4 * j, w, true));
    });
    return c.core.put(bytes);
  }

  it('many keys in one walk delete exactly the flows some key names, as the single flushes do', () => {
    // Random flows over a few VIPs and endpoints (IPv4 and IPv6, UDP and TCP), and random keys
    // naming endpoints and VIPs, some with any port or any protocol. The flows to go are worked
    // out here from the keys; the batch, and the single flushes on a twin table, leave the rest.
    let seed = 7;
    const rnd = (n: number) => { // mulberry32
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t ^= t + Math.imul(t ^ (t >>> 7), 61 | t);
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    const ep = (f: 4 | 6, k: number) => (f === 4 ? `198.18.5.${k}` : `fd00::5:${k}`);
    const vip = (f: 4 | 6, k: number) => (f === 4 ? `198.18.100.${k}` : `fd00::100:${k}`);
    const batch = new Ct(14, 12), single = new Ct(14, 12);
    const flows: Array<{ o: T; r: T }> = [];
    for (let i = 0; i < 1500; i++) {
      const f: 4 | 6 = rnd(4) === 0 ? 6 : 4;
      const proto = rnd(3) === 0 ? TCP : UDP;
      const o: T = { family: f, proto, sport: 1000 + i, dport: 53 + rnd(2), src: f === 4 ? '198.18.0.9' : 'fd00::9', dst: vip(f, rnd(6)) };
      const r: T = { ...inv(o), src: ep(f, rnd(20)), sport: 5353 + rnd(2) };
      const id = batch.insert(o, r, at(0));
      expect(id).not.toBe(NONE);
      expect(single.insert(o, r, at(0))).toBe(id);
      flows.push({ o, r });
    }
    const keys: Key[] = [];
    for (let k = 0; k < 60; k++) {
      const f: 4 | 6 = rnd(4) === 0 ? 6 : 4;
      const dir = rnd(2) as 0 | 1;
      keys.push({
        dir, family: f, proto: [0, UDP, TCP][rnd(3)]!,
        port: rnd(3) === 0 ? 0 : dir === 1 ? 5353 + rnd(2) : 53 + rnd(2),
        addr: dir === 1 ? ep(f, rnd(24)) : vip(f, rnd(8)),
      });
    }
    keys.push(keys[3]!); // a key given twice
    const names = ({ o, r }: { o: T; r: T }, k: Key) => k.family === o.family && (k.proto === 0 || k.proto === o.proto) &&
      (k.dir === 0 ? k.addr === o.dst && (k.port === 0 || k.port === o.dport) : k.addr === r.src && (k.port === 0 || k.port === r.sport));
    const stays = flows.filter((fl) => !keys.some((k) => names(fl, k)));
    let one = 0;
    for (const k of keys) {
      const w = addrWords(k.addr, k.family);
      one += (k.dir === 1 ? single.x.ctFlushReplySrc : single.x.ctFlushOrigDst)(k.family, k.proto, ...w, k.port) >>> 0;
    }
    const many = batch.x.ctFlushMany(putKeys(batch, keys), keys.length) >>> 0;
    expect(flows.length - stays.length).toBeGreaterThan(100);
    expect(stays.length).toBeGreaterThan(100);
    expect(flows.filter((f) => f.o.family === 6).length).toBeGreaterThan(200);
    expect(many).toBe(flows.length - stays.length);
    expect(one).toBe(many);
    for (const c of [batch, single]) {
      expect(c.count()).toBe(stays.length);
      for (const { o } of stays) expect(c.lookup(o, at(1))).not.toBe(NONE);
    }
    expect(batch.stat('DELETES')).toBe(many);
  });

  it('a bad key in a batch is counted and left out; the others still apply', () => {
    const c = new Ct(8, 4);
    fill(c);
    const bad: Key = { dir: 1, family: 4, proto: UDP, port: 0, addr: '198.18.5.1' };
    const at0 = putKeys(c, [bad, { dir: 0, family: 6, proto: 0, port: 0, addr: 'fd00::100' }, bad]);
    c.core.u8()[at0] = 2; // no such direction
    c.core.dv().setUint32(at0 + 48 + 12, 1, true); // IPv4 key with a padding word set
    expect(c.x.ctFlushMany(at0, 3)).toBe(1);
    expect(c.stat('BAD_ARG')).toBe(2);
    expect(c.count()).toBe(4);
    expect(c.x.ctFlushMany(at0, 0)).toBe(0);
  });
});
