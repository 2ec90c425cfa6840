// The connection-counting schedulers: lc, wlc, sed, nq, fo, ovf — the kernel's overhead formulas and
// tie-breaking (the first destination in list order keeps a tie; the list is newest first).
import { describe, it, expect } from 'vitest';
import { Lab } from './harness';

const VIP = { protocol: 'tcp' as const, address: '198.18.0.100', port: 80 };
const d = (last: number, weight = 1) => ({ address: `198.18.1.${last}`, port: 8080, weight });

/** A service whose list is, in order, the destinations given (added in reverse). */
function listed(lab: Lab, scheduler: 'lc' | 'wlc' | 'sed' | 'nq' | 'fo' | 'ovf', weights: number[]): { svc: number; ids: number[] } {
  const dests = weights.map((w, i) => d(i + 1, w)).reverse();
  const { svc, ids } = lab.service({ ...VIP, scheduler }, dests);
  return { svc, ids: ids.reverse() };
}

describe('lc (ip_vs_lc.c): least (activeconns << 8) + inactconns, weights ignored but 0', () => {
  it('picks the smallest overhead; one active connection outweighs 255 inactive ones', () => {
    const lab = new Lab();
    const { svc, ids: [A, B, C] } = listed(lab, 'lc', [1, 1, 1]);
    lab.setCounts(A!, 1, 0);     // 256
    lab.setCounts(B!, 0, 255);   // 255
    lab.setCounts(C!, 0, 300);   // 300
    expect(lab.pick(svc, '198.18.9.9')).toBe(B);
    lab.setCounts(B!, 0, 257);   // now A (256) is least
    expect(lab.pick(svc, '198.18.9.9')).toBe(A);
  });

  it('ties go to the first in list order; weight-0 and overloaded destinations never', () => {
    const lab = new Lab();
    const { svc, ids: [A, B, C] } = listed(lab, 'lc', [0, 5, 1]);
    lab.setCounts(A!, 0, 0);
    lab.setCounts(B!, 0, 7);
    lab.setCounts(C!, 0, 7);
    expect(lab.pick(svc, '198.18.9.9')).toBe(B);   // A is quiescent; B and C tie → B (earlier)
  });
});

describe('wlc (ip_vs_wlc.c): overhead / weight by cross-multiplication', () => {
  it('chooses the lowest overhead per weight', () => {
    const lab = new Lab();
    const { svc, ids: [A, B, C] } = listed(lab, 'wlc', [1, 3, 2]);
    lab.setCounts(A!, 1, 0);    // 256 / 1
    lab.setCounts(B!, 2, 100);  // 612 / 3 = 204
    lab.setCounts(C!, 1, 200);  // 456 / 2 = 228
    expect(lab.pick(svc, '198.18.9.9')).toBe(B);
  });

  it('an exact tie (loh·dw == doh·lw) keeps the earlier destination', () => {
    const lab = new Lab();
    const { svc, ids: [A, B] } = listed(lab, 'wlc', [1, 2]);
    lab.setCounts(A!, 1, 0);   // 256 · 2 = 512
    lab.setCounts(B!, 2, 0);   // 512 · 1 = 512
    expect(lab.pick(svc, '198.18.9.9')).toBe(A);
    const lab2 = new Lab();
    const r = listed(lab2, 'wlc', [2, 1]);
    lab2.setCounts(r.ids[0]!, 2, 0);
    lab2.setCounts(r.ids[1]!, 1, 0);
    expect(lab2.pick(r.svc, '198.18.9.9')).toBe(r.ids[0]);
  });

  it('a quiescent destination with no connections is still never chosen', () => {
    const lab = new Lab();
    const { svc, ids: [A, B] } = listed(lab, 'wlc', [1, 0]);
    lab.setCounts(A!, 50, 0);
    lab.setCounts(B!, 0, 0);
    expect(lab.pick(svc, '198.18.9.9')).toBe(A);
  });
});

describe('sed (ip_vs_sed.c): (activeconns + 1) / weight, inactive ignored', () => {
  it('counts only active connections plus the incoming one', () => {
    const lab = new Lab();
    const { svc, ids: [A, B, C] } = listed(lab, 'sed', [1, 3, 2]);
    lab.setCounts(A!, 0, 0);      // 1/1
    lab.setCounts(B!, 2, 0);      // 3/3 = 1 (tie with A, A earlier)
    lab.setCounts(C!, 0, 1000);   // 1/2: inactive connections do not count
    expect(lab.pick(svc, '198.18.9.9')).toBe(C);
    lab.setCounts(C!, 1, 0);      // 2/2 = 1: now A, B, C all 1 → A
    expect(lab.pick(svc, '198.18.9.9')).toBe(A);
  });
});

describe('nq (ip_vs_nq.c): an idle server first, else shortest expected delay', () => {
  it('takes the first idle destination even when a heavier one is less loaded per weight', () => {
    const lab = new Lab();
    const { svc, ids: [A, B, C] } = listed(lab, 'nq', [100, 1, 1]);
    lab.setCounts(A!, 1, 0);   // (1+1)/100: the best expected delay
    lab.setCounts(B!, 0, 40);  // idle (only inactive connections)
    lab.setCounts(C!, 0, 0);   // idle too, but B comes first
    expect(lab.pick(svc, '198.18.9.9')).toBe(B);
    lab.setCounts(B!, 3, 0);
    lab.setCounts(C!, 1, 0);
    expect(lab.pick(svc, '198.18.9.9')).toBe(A);   // none idle: 2/100 < 4/1, 2/1
  });
});

describe('fo and ovf', () => {
  it('fo: the highest weight, ties to the first in the list; overload fails over', () => {
    const lab = new Lab();
    const { svc, ids: [A, B, C] } = listed(lab, 'fo', [5, 9, 9]);
    expect(lab.pick(svc, '198.18.9.9')).toBe(B);
    lab.p.editDest(svc, B!, { weight: 4 });
    expect(lab.pick(svc, '198.18.9.9')).toBe(C);
    lab.p.editDest(svc, C!, { weight: 0 });
    expect(lab.pick(svc, '198.18.9.9')).toBe(A);
  });

  it('ovf: the highest weight until its active connections exceed its weight', () => {
    const lab = new Lab();
    const { svc, ids: [A, B] } = listed(lab, 'ovf', [2, 3]);
    lab.setCounts(B!, 3, 0);                        // 3 ≤ 3: still B
    expect(lab.pick(svc, '198.18.9.9')).toBe(B);
    lab.setCounts(B!, 4, 0);                        // 4 > 3: overflow to A
    expect(lab.pick(svc, '198.18.9.9')).toBe(A);
    lab.setCounts(A!, 3, 50);                       // A over too: none
    expect(lab.pick(svc, '198.18.9.9')).toBe(0xffffffff);
  });
});
