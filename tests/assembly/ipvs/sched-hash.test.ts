// The hashing schedulers sh, dh and mh against independent re-statements of the kernel's tables
// (reference.ts): the same key always maps to the same server, the kernel's fallbacks and port flags,
// and Maglev's deterministic population and minimal disruption.
import { describe, it, expect } from 'vitest';
import { Lab, NIL } from './harness';
import { hash32, foldHost, hsiphash, siphash, shTable, dhTable, mhTable, type RefDest } from './reference';

const VIP = { protocol: 'tcp' as const, address: '198.18.0.100', port: 80 };

function build(lab: Lab, vs: object, weights: number[]): { svc: number; list: RefDest[] } {
  const specs = weights.map((w, i) => ({ address: `198.18.1.${i + 1}`, port: 8080 + i, weight: w }));
  const { svc } = lab.service({ ...VIP, ...vs }, specs);
  const list = lab.p.service(svc).destinations.map((x) => ({ id: x.id, address: x.address, port: x.port, weight: x.weight, lastWeight: x.lastWeight }));
  return { svc, list };
}
const client = (i: number) => `198.18.${(i >> 8) & 255}.${i & 255}`;

describe('sh (ip_vs_sh.c)', () => {
  it('maps hash_32(source) into the weighted 256-bucket table, the same client always to the same server', () => {
    const lab = new Lab();
    const { svc, list } = build(lab, { scheduler: 'sh' }, [1, 3, 2, 5]);
    const table = shTable(list);
    for (let i = 0; i < 300; i++) {
      const want = table[hash32(foldHost(client(i)), 8)];
      expect(lab.pick(svc, client(i), { sport: 1000 + i })).toBe(want);
      expect(lab.pick(svc, client(i), { sport: 2000 + i })).toBe(want);   // port ignored without sh-port
    }
  });

  it('sh-port hashes source port + address', () => {
    const lab = new Lab();
    const { svc, list } = build(lab, { scheduler: 'sh', schedFlags: ['sh-port'] }, [1, 1, 1, 1]);
    const table = shTable(list);
    let differs = 0;
    for (let port = 1000; port < 1100; port++) {
      const want = table[hash32((port + foldHost('198.18.7.7')) >>> 0, 8)];
      const got = lab.pick(svc, '198.18.7.7', { sport: port });
      expect(got).toBe(want);
      if (got !== lab.pick(svc, '198.18.7.7', { sport: 1000 })) differs++;
    }
    expect(differs).toBeGreaterThan(20);
  });

  it('an unavailable bucket gives nothing, or with sh-fallback the kernel\'s deterministic probe', () => {
    for (const fallback of [false, true]) {
      const lab = new Lab();
      const { svc, list } = build(lab, { scheduler: 'sh', schedFlags: fallback ? ['sh-fallback'] : [] }, [1, 1, 1]);
      const quiet = list[1]!;
      lab.p.editDest(svc, quiet.id, { weight: 0 });
      const now = lab.p.service(svc).destinations.map((x) => ({ id: x.id, address: x.address, port: x.port, weight: x.weight }));
      const table = shTable(now);   // weight 0 still owns one bucket in a row
      let sawFallback = 0;
      for (let i = 0; i < 400; i++) {
        const key = foldHost(client(i));
        const ihash = hash32(key, 8);
        let want = table[ihash]!;
        if (want === quiet.id) {
          if (!fallback) want = NIL;
          else {
            want = NIL;
            for (let off = 0; off < 256; off++) {
              const r = (off + ihash) % 256;
              const cand = table[(r + hash32(key, 8)) & 255]!;
              if (cand !== quiet.id) { want = cand; break; }
            }
            sawFallback++;
          }
        }
        expect(lab.pick(svc, client(i))).toBe(want);
      }
      if (fallback) expect(sawFallback).toBeGreaterThan(0);
    }
  });
});

describe('dh (ip_vs_dh.c)', () => {
  it('hashes the destination address over the unweighted table', () => {
    const lab = new Lab();
    const { svc } = lab.service({ fwmark: 7, scheduler: 'dh' }, [1, 2, 3].map((i) => ({ address: `198.18.1.${i}`, port: 0, weight: i })));
    const list = lab.p.service(svc).destinations.map((x) => ({ id: x.id, address: x.address, port: x.port, weight: x.weight }));
    const table = dhTable(list);
    for (let i = 0; i < 200; i++) {
      const dst = `198.19.${i >> 8}.${i & 255}`;
      const want = table[hash32(foldHost(dst), 8)];
      expect(lab.pick(svc, '198.18.5.5', { dst, sport: 1 })).toBe(want);
      expect(lab.pick(svc, '198.18.6.6', { dst, sport: 2 })).toBe(want);   // source does not matter
    }
  });
});

describe('mh (ip_vs_mh.c)', () => {
  it('hsiphash is SipHash-1-3 with the kernel\'s fixed keys', () => {
    // The reference's round function against the SipHash paper's SipHash-2-4 vector (key 00..0f, "").
    const k0 = 0x0706050403020100n, k1 = 0x0f0e0d0c0b0a0908n;
    expect(siphash(2, 4, k0, k1, new Uint8Array(0))).toBe(0x726fdb47dd0e0e31n);
    const lab = new Lab();
    const h = lab.x.hsiphash32 as unknown as (v: number, a: bigint, b: bigint) => number;
    for (const v of [0, 1, 0x7f000001, 0xdeadbeef, 123456789]) {
      expect(h(v, 2654435761n, 2654435761n) >>> 0).toBe(hsiphash(v, 2654435761));
      expect(h(v, 2654446892n, 2654446892n) >>> 0).toBe(hsiphash(v, 2654446892));
    }
  });

  it('populates the 4093-slot table exactly as the kernel, and looks clients up in it', () => {
    const lab = new Lab();
    const { svc, list } = build(lab, { scheduler: 'mh' }, [1, 2, 3, 1, 1]);
    expect(lab.x.mhSizeOf!(svc)).toBe(4093);
    const want = mhTable(list);
    const got = Array.from({ length: 4093 }, (_, i) => lab.x.mhSlotOf!(svc, i) >>> 0);
    expect(got).toEqual(want);
    // Weighted: slot shares follow the weights 1:2:3:1:1 closely.
    const share = list.map((d) => got.filter((x) => x === d.id).length / 4093);
    list.forEach((d, k) => expect(Math.abs(share[k]! - d.weight / 8)).toBeLessThan(0.02));
    for (let i = 0; i < 200; i++) {
      const slot = hsiphash(foldHost(client(i)), 2654435761) % 4093;
      expect(lab.pick(svc, client(i), { sport: 3000 + i })).toBe(want[slot]);
    }
  });

  it('another prime size (251) and the same dests build the same way', () => {
    const lab = new Lab();
    const { svc, list } = build(lab, { scheduler: 'mh', mhTableSize: 251 }, [1, 1, 1]);
    expect(Array.from({ length: 251 }, (_, i) => lab.x.mhSlotOf!(svc, i) >>> 0)).toEqual(mhTable(list, 251, 4));
    expect(() => lab.p.addService({ ...VIP, port: 81, scheduler: 'mh', mhTableSize: 1000 })).toThrow(/invalid/);
  });

  it('removing one of 10 destinations moves its slots and few others (minimal disruption)', () => {
    const lab = new Lab();
    const { svc, list } = build(lab, { scheduler: 'mh' }, Array(10).fill(1));
    const before = Array.from({ length: 4093 }, (_, i) => lab.x.mhSlotOf!(svc, i) >>> 0);
    const gone = list[4]!;
    lab.p.deleteDest(svc, gone.id);
    const after = Array.from({ length: 4093 }, (_, i) => lab.x.mhSlotOf!(svc, i) >>> 0);
    expect(after).toEqual(mhTable(list.filter((d) => d.id !== gone.id)));
    const owned = before.filter((x) => x === gone.id).length;
    const moved = before.filter((x, i) => x !== gone.id && x !== after[i]).length;
    expect(after.includes(gone.id)).toBe(false);
    expect(owned).toBeGreaterThan(350);
    // Maglev's guarantee is approximate: only a small fraction of the other slots change.
    expect(moved / 4093).toBeLessThan(0.05);
  });

  it('a quiescent destination keeps its slots (last_weight); mh-fallback then probes the table', () => {
    const lab = new Lab();
    const { svc, list } = build(lab, { scheduler: 'mh' }, [1, 1, 1]);
    const before = Array.from({ length: 4093 }, (_, i) => lab.x.mhSlotOf!(svc, i) >>> 0);
    const quiet = list[0]!;
    lab.p.editDest(svc, quiet.id, { weight: 0 });
    expect(Array.from({ length: 4093 }, (_, i) => lab.x.mhSlotOf!(svc, i) >>> 0)).toEqual(before);
    lab.p.editService(svc, { ...VIP, scheduler: 'mh', schedFlags: ['mh-fallback'] });
    let probed = 0;
    for (let i = 0; i < 200; i++) {
      const key = foldHost(client(i));
      const ihash = hsiphash(key, 2654435761) % 4093;
      let want = before[ihash]!;
      if (want === quiet.id) {
        probed++;
        for (let off = 0; off < 4093; off++) {
          const cand = before[hsiphash((key + (off + ihash) % 4093) >>> 0, 2654435761) % 4093]!;
          if (cand !== quiet.id) { want = cand; break; }
        }
      }
      expect(lab.pick(svc, client(i))).toBe(want);
    }
    expect(probed).toBeGreaterThan(20);
  });

  it('without mh-fallback a quiescent slot gives nothing; mh-port hashes the port too', () => {
    const lab = new Lab();
    const { svc, list } = build(lab, { scheduler: 'mh', schedFlags: ['mh-port'] }, [1, 1]);
    const table = mhTable(list);
    for (let port = 100; port < 160; port++) {
      expect(lab.pick(svc, '198.18.3.3', { sport: port })).toBe(table[hsiphash((port + foldHost('198.18.3.3')) >>> 0, 2654435761) % 4093]);
    }
    lab.p.editDest(svc, list[0]!.id, { weight: 0 });
    const hits = Array.from({ length: 60 }, (_, k) => lab.pick(svc, '198.18.3.3', { sport: 100 + k }));
    expect(hits.filter((x) => x === NIL).length).toBeGreaterThan(10);
    expect(hits.every((x) => x === NIL || x === list[1]!.id)).toBe(true);
  });
});
