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

describe('lc (ip_vs_lc.c): least (activeconns << 8) + totalconns, weights ignored but 0', () => {
  it('picks the smallest overhead; one active connection (257) outweighs 256 inactive ones', () => {
    const lab = new Lab();
    const { svc, ids: [A, B, C] } = listed(lab, 'lc', [1, 1, 1]);
    lab.setCounts(A!, 1, 0);     // 257
    lab.setCounts(B!, 0, 256);   // 256 (a tie with A before totalconns, kept by A)
    lab.setCounts(C!, 0, 300);   // 300
    expect(lab.pick(svc, '198.18.9.9')).toBe(B);
    lab.setCounts(B!, 0, 258);   // now A (257) is least
    expect(lab.pick(svc, '198.18.9.9')).toBe(A);
  });

  it('a busy service: 10 active against 9 active and 256 inactive goes to the latter (2570 > 2569)', () => {
    const lab = new Lab();
    const { svc, ids: [A, B] } = listed(lab, 'lc', [1, 1]);
    lab.setCounts(A!, 10, 0);
    lab.setCounts(B!, 9, 256);
    expect(lab.pick(svc, '198.18.9.9')).toBe(B);
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
    lab.setCounts(A!, 1, 0);    // 257 / 1
    lab.setCounts(B!, 2, 100);  // 614 / 3 = 204.7
    lab.setCounts(C!, 1, 200);  // 457 / 2 = 228.5
    expect(lab.pick(svc, '198.18.9.9')).toBe(B);
  });

  it('an exact tie (loh·dw == doh·lw) keeps the earlier destination', () => {
    const lab = new Lab();
    const { svc, ids: [A, B] } = listed(lab, 'wlc', [1, 2]);
    lab.setCounts(A!, 1, 0);   // 257 · 2 = 514
    lab.setCounts(B!, 2, 0);   // 514 · 1 = 514
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
