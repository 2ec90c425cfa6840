// Fuzz: 120,000 random and mutated messages through dnsAnswer. Nothing may trap; every call either
// drops with a named code or returns a well-formed response within the size limit that echoes the ID.
import { describe, expect, it } from 'vitest';
import { decode, dnsHarness, query } from './msg.js';

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 0x100000000;
  };
}

const SEEDS: Uint8Array[] = [
  query('kubernetes.default.svc.cluster.local', 'A'),
  query('KUBERNETES.default.svc.cluster.local', 'AAAA', { edns: 4096 }),
  query('_https._tcp.headless.default.svc.cluster.local', 'SRV', { edns: 1232 }),
  query('headless.default.svc.cluster.local', 'A'),
  query('100.0.3.10.in-addr.arpa', 'PTR'),
  query('foo.default.svc.cluster.local', 'A', { edns: 512 }),
  query('dns-version.cluster.local', 'TXT'),
  query('nope.default.svc.cluster.local', 'A', { edns: 65535 }),
  query('cluster.local', 'ANY'),
  query('www.example.com', 'A'),
];

function mutate(r: () => number, base: Uint8Array): Uint8Array {
  const b = Array.from(base);
  const n = 1 + Math.floor(r() * 4);
  for (let i = 0; i < n; i++) {
    const op = Math.floor(r() * 6);
    const at = Math.floor(r() * (b.length + 1));
    if (op === 0 && b.length > 0) b[at % b.length] = Math.floor(r() * 256);                 // flip a byte
    else if (op === 1) b.length = at;                                                          // truncate
    else if (op === 2) b.splice(at, 0, 0xc0 | Math.floor(r() * 4), Math.floor(r() * 256));    // inject a pointer
    else if (op === 3) { const k = 4 + 2 * Math.floor(r() * 4); b[k] = Math.floor(r() * 3); b[k + 1] = Math.floor(r() * 4); } // header counts
    else if (op === 4) b.push(...Array.from({ length: Math.floor(r() * 40) }, () => Math.floor(r() * 256))); // trailing junk
    else if (b.length > 12) b.splice(12 + Math.floor(r() * (b.length - 12)), 1);              // drop a byte
  }
  b[2] = (b[2] ?? 0) & 0x7f;   // keep most of them queries (QR=0) so they reach the parser
  return Uint8Array.from(b);
}

describe('dnsAnswer fuzz', () => {
  it('120k random and mutated messages never trap and always yield a drop code or a sound answer', () => {
    const h = dnsHarness();
    const r = rng(0x5eed);
    const N = 120_000;
    const drops: Record<number, number> = {};
    let answered = 0;
    const rcodes = new Set<number>();
    for (let i = 0; i < N; i++) {
      let q: Uint8Array;
      if (i % 4 === 0) q = Uint8Array.from({ length: Math.floor(r() * 300) }, () => Math.floor(r() * 256));
      else q = mutate(r, SEEDS[i % SEEDS.length]!);
      const tcp = i % 7 === 0;
      const cap = i % 11 === 0 ? Math.floor(r() * 200) : 0x10000;
      const maxUdp = i % 3 === 0 ? 512 : 1232;
      const out = h.ask(q, { tcp, cap, maxUdp });
      if (typeof out === 'number') {
        expect([-1, -2, -3]).toContain(out);
        drops[out] = (drops[out] ?? 0) + 1;
        continue;
      }
      answered++;
      expect(out.length).toBeGreaterThanOrEqual(12);
      expect(out.length).toBeLessThanOrEqual(tcp ? cap : Math.min(cap, maxUdp));
      expect(out[0]! * 256 + out[1]!).toBe(q[0]! * 256 + q[1]!);
      // Decoding our own output must succeed: no pointer loops, no trailing bytes.
      const m = decode(out);
      expect(m.qr).toBe(true);
      rcodes.add(m.rcode);
    }
    // The mix really exercised every path.
    expect(answered).toBeGreaterThan(N / 2);
    expect(drops[-1]).toBeGreaterThan(0);
    expect(drops[-2]).toBeGreaterThan(0);
    expect(drops[-3]).toBeGreaterThan(0);
    for (const rc of [0, 1, 3, 4, 5]) expect(rcodes.has(rc)).toBe(true);
    expect(h.counters().queries).toBe(N);
  });
});
