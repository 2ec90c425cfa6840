// lblc, lblcr (locality caches keyed by the destination address, with the kernel's overload rule and
// garbage collection driven by `now`) and twos (power of two choices, seeded; exact odds in the trace).
import { describe, it, expect } from 'vitest';
import { Lab, NIL } from './harness';

const VIP = { protocol: 'tcp' as const, address: '198.18.0.100', port: 80 };
const d = (last: number, weight = 1) => ({ address: `198.18.1.${last}`, port: 8080, weight });

describe('lblc (ip_vs_lblc.c)', () => {
  it('keeps a destination address on its server while that server is not overloaded', () => {
    const lab = new Lab();
    const { svc, ids: [A, B] } = lab.service({ fwmark: 3, scheduler: 'lblc' }, [d(1, 10), d(2, 10)]);
    lab.setCounts(A!, 0, 0);
    lab.setCounts(B!, 1, 0);
    const first = lab.pick(svc, '198.18.5.1', { dst: '198.19.0.1' });
    expect(first).toBe(A);                       // wlc's choice, now cached for 198.19.0.1
    lab.setCounts(A!, 5, 0);                     // busier than B, but 5 ≤ weight 10: not overloaded
    expect(lab.pick(svc, '198.18.5.2', { dst: '198.19.0.1' })).toBe(A);
    expect(lab.pick(svc, '198.18.5.3', { dst: '198.19.0.2' })).toBe(B);   // another address: wlc
  });

  it('reschedules when the cached server has more active connections than its weight and another is under half', () => {
    const lab = new Lab();
    const { svc, ids: [A, B] } = lab.service({ fwmark: 3, scheduler: 'lblc' }, [d(1, 4), d(2, 4)]);
    lab.setCounts(B!, 1, 0);
    expect(lab.pick(svc, '198.18.5.1', { dst: '198.19.0.1' })).toBe(A);
    lab.setCounts(A!, 5, 0);                      // 5 > 4, and B has 1·2 < 4
    expect(lab.pick(svc, '198.18.5.1', { dst: '198.19.0.1' })).toBe(B);
    lab.setCounts(A!, 0, 0);                      // A idle again: the cache now says B
    expect(lab.pick(svc, '198.18.5.1', { dst: '198.19.0.1' })).toBe(B);
    lab.p.editDest(svc, B!, { weight: 0 });        // quiescent: reschedule
    expect(lab.pick(svc, '198.18.5.1', { dst: '198.19.0.1' })).toBe(A);
  });

  it('drops entries unused for lblc_expiration at the 30th periodic check', () => {
    const lab = new Lab();
    const { svc, ids: [A, B] } = lab.service({ fwmark: 3, scheduler: 'lblc' }, [d(1, 4), d(2, 4)]);
    lab.p.setSysctl('lblc_expiration', 10 * 60 * 1000);
    lab.p.tick(0);                                 // arms the 60 s timer
    lab.setCounts(B!, 1, 0);
    expect(lab.pick(svc, '198.18.5.1', { dst: '198.19.0.1', now: 1000 })).toBe(A);
    lab.setCounts(A!, 2, 0);                       // wlc would now pick B; the cache still says A
    let t = 0;
    for (let k = 1; k <= 29; k++) lab.p.tick(t = k * 60_000);
    expect(lab.pick(svc, '198.18.5.9', { dst: '198.19.0.1', now: t })).toBe(A);   // refreshes last use
    lab.p.tick(t = 30 * 60_000);                   // the full check: last use 29 min ago > 10 min
    expect(lab.pick(svc, '198.18.5.9', { dst: '198.19.0.1', now: t })).toBe(A);   // 1 min ago: kept
    for (let k = 31; k <= 59; k++) lab.p.tick(t = k * 60_000);
    lab.p.tick(t = 60 * 60_000);                   // next full check: unused for 30 min → dropped
    expect(lab.pick(svc, '198.18.5.9', { dst: '198.19.0.1', now: t })).toBe(B);
  });
});

describe('lblcr (ip_vs_lblcr.c)', () => {
  it('grows the set on overload, serves its least-loaded member, sheds the busiest after the expiration', () => {
    const lab = new Lab();
    const { svc, ids: [A, B, C] } = lab.service({ fwmark: 3, scheduler: 'lblcr' }, [d(1, 4), d(2, 4), d(3, 4)]);
    lab.p.setSysctl('lblcr_expiration', 60_000);
    lab.setCounts(B!, 1, 0); lab.setCounts(C!, 1, 0);
    expect(lab.pick(svc, '198.18.5.1', { dst: '198.19.0.1', now: 0 })).toBe(A);          // set {A}
    lab.setCounts(A!, 5, 0);                                                            // overloaded (5 > 4, B under half)
    lab.setCounts(C!, 0, 0);
    expect(lab.pick(svc, '198.18.5.1', { dst: '198.19.0.1', now: 1000 })).toBe(C);       // wlc → C, set {C, A}
    lab.setCounts(A!, 0, 0); lab.setCounts(C!, 3, 0);
    expect(lab.pick(svc, '198.18.5.1', { dst: '198.19.0.1', now: 2000 })).toBe(A);       // least loaded member: A
    lab.setCounts(A!, 4, 0); lab.setCounts(C!, 1, 0);
    expect(lab.pick(svc, '198.18.5.1', { dst: '198.19.0.1', now: 3000 })).toBe(C);
    // More than 60 s after the last change (t = 1000) the busiest member leaves the set.
    lab.setCounts(A!, 0, 0); lab.setCounts(C!, 2, 0);
    expect(lab.pick(svc, '198.18.5.1', { dst: '198.19.0.1', now: 61_000 })).toBe(A);     // exactly 60 s: kept
    lab.setCounts(A!, 3, 0); lab.setCounts(C!, 1, 0);
    expect(lab.pick(svc, '198.18.5.1', { dst: '198.19.0.1', now: 61_001 })).toBe(C);     // A (busiest) shed
    lab.setCounts(A!, 0, 0); lab.setCounts(C!, 2, 0);
    expect(lab.pick(svc, '198.18.5.1', { dst: '198.19.0.1', now: 62_000 })).toBe(C);     // set is {C}: idle A unseen
  });
});

describe('twos (ip_vs_twos.c)', () => {
  it('the trace gives the exact odds: first available gets w+1 of total+1, the less loaded of two wins', () => {
    const lab = new Lab();
    const { svc, ids: [B, A] } = lab.service({ ...VIP, scheduler: 'twos' }, [d(2, 3), d(1, 1)]);   // list A(1) B(3)
    const odds = () => lab.p.trace({ protocol: 'tcp', src: '198.18.5.5', sport: 1, dst: VIP.address, dport: 80 }, 0);
    let t = odds();
    expect(t.kind).toBe('odds');
    expect(t.choices.map((c) => c.destId)).toEqual([A, B]);
    expect(t.choices[0]!.probability).toBeCloseTo(2 / 5, 12);    // r ∈ {0, 1} of {0 … 4}
    expect(t.choices[1]!.probability).toBeCloseTo(3 / 5, 12);
    lab.setCounts(B!, 1, 0);                                      // B loaded: B only when both draws are B
    t = odds();
    expect(t.choices[0]!.probability).toBeCloseTo(1 - 0.36, 12);
    expect(t.choices[1]!.probability).toBeCloseTo(0.36, 12);
  });

  it('compares weight × overhead on 32-bit ints as the kernel does: past 2^31 the product wraps', () => {
    const lab = new Lab();
    const { ids: [B, A] } = lab.service({ ...VIP, scheduler: 'twos' }, [d(2, 10000), d(1, 10000)]);   // list A B
    lab.setCounts(A!, 1000, 0);   // overhead 257,000: 10,000 × 257,000 wraps to -1,724,967,296
    lab.setCounts(B!, 778, 0);    // overhead 199,946: 10,000 × 199,946 fits
    const t = lab.p.trace({ protocol: 'tcp', src: '198.18.5.5', sport: 1, dst: VIP.address, dport: 80 }, 0);
    const pB = 10000 / 20001;
    // The busier A wins every pair it is in: B only when both draws are B.
    expect(t.choices.map((c) => c.destId)).toEqual([A, B]);
    expect(t.choices[1]!.probability).toBeCloseTo(pB * pB, 12);
    expect(t.choices[0]!.probability).toBeCloseTo(1 - pB * pB, 12);
  });

  it('picks follow the odds, and the same seed gives the same picks', () => {
    const run = (seed: number) => {
      const lab = new Lab({ seed });
      const { svc, ids } = lab.service({ ...VIP, scheduler: 'twos' }, [d(1, 1), d(2, 2), d(3, 5)]);
      const want = lab.p.trace({ protocol: 'tcp', src: '198.18.5.5', sport: 1, dst: VIP.address, dport: 80 }, 0).choices;
      const picks = Array.from({ length: 20000 }, () => lab.pick(svc, '198.18.5.5'));
      return { ids, want, picks };
    };
    const a = run(11), b = run(11), c = run(12);
    expect(a.picks).toEqual(b.picks);
    expect(a.picks).not.toEqual(c.picks);
    for (const w of a.want) {
      const f = a.picks.filter((x) => x === w.destId).length / a.picks.length;
      expect(Math.abs(f - w.probability)).toBeLessThan(0.02);
    }
    expect(a.picks.includes(NIL)).toBe(false);
  });
});
