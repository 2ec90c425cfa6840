// Round-robin and weighted round-robin: sequences derived by hand from ip_vs_rr.c / ip_vs_wrr.c.
import { describe, it, expect } from 'vitest';
import { Lab } from './harness';

const VIP = { protocol: 'tcp' as const, address: '198.18.0.100', port: 80 };
const d = (last: number, weight = 1) => ({ address: `198.18.1.${last}`, port: 8080, weight });

describe('wrr (ip_vs_wrr.c)', () => {
  it('weights 4, 3, 2 in list order: A B C, then A A B A B C A B C over and over', () => {
    const lab = new Lab();
    // The kernel lists destinations newest first: add C, B, A to have the list A(4) B(3) C(2).
    const { svc, ids } = lab.service({ ...VIP, scheduler: 'wrr' }, [d(3, 2), d(2, 3), d(1, 4)]);
    const [C, B, A] = ids;
    expect(lab.p.service(svc).destinations.map((x) => x.id)).toEqual([A, B, C]);
    // By hand from ip_vs_wrr.c. The service starts empty: init_svc gives mw = 0, cw = 0.
    //   add C(2): di = 2, mw = 2 - 1 = 1; cw == 0 → cw = mw = 1.
    //   add B(3): di = gcd(3, 2) = 1, mw = 3; cw = 1 stays (not > mw, di = 1).
    //   add A(4): di = 1, mw = 4; cw = 1 stays.
    // So the first pass runs at cw = 1: A B C. Passing the head drops cw to 0 → cw = mw = 4: A;
    // cw = 3: A B; cw = 2: A B C; cw = 1: A B C; and again.
    const cycle = [A, A, B, A, B, C, A, B, C];
    const got = Array.from({ length: 21 }, () => lab.pick(svc, '198.18.9.9'));
    expect(got).toEqual([A, B, C, ...cycle, ...cycle]);
  });

  it('the same weights added A, B, C (list C B A): C B A, then A B A C B A C B A', () => {
    const lab = new Lab();
    const { svc, ids } = lab.service({ ...VIP, scheduler: 'wrr' }, [d(1, 4), d(2, 3), d(3, 2)]);
    const [A, B, C] = ids;
    // add A(4): di = 4, mw = 1, cw = 1; add B(3), C(2): di = 1, mw = 4, cw stays 1.
    // cw = 1: C B A. cw = 4: A. cw = 3: B A. cw = 2: C B A. cw = 1: C B A.
    const cycle = [A, B, A, C, B, A, C, B, A];
    expect(Array.from({ length: 12 }, () => lab.pick(svc, '198.18.9.9'))).toEqual([C, B, A, ...cycle]);
  });

  it('steps by the gcd: weights 4 and 2 go A A B per cycle', () => {
    const lab = new Lab();
    const { svc, ids } = lab.service({ ...VIP, scheduler: 'wrr' }, [d(2, 2), d(1, 4)]);
    const [B, A] = ids;
    // add B(2): di = 2, mw = 1, cw = 1. add A(4): di = 2, mw = 4 - 1 = 3; cw = 1: di > 1 → cw =
    // (1 / 2) * 2 + 1 = 1. cw = 1: A B. Head: cw = -1 → 3: A. cw = 1: A B. cw → 3: A …
    expect(Array.from({ length: 8 }, () => lab.pick(svc, '198.18.9.9'))).toEqual([A, B, A, A, B, A, A, B]);
  });

  it('skips overloaded and weight-0 destinations; all zero → none', () => {
    const lab = new Lab();
    const { svc, ids } = lab.service({ ...VIP, scheduler: 'wrr' }, [d(2, 1), d(1, 1)]);
    const [B, A] = ids;
    lab.p.editDest(svc, A, { weight: 0 });
    expect([lab.pick(svc, '198.18.9.9'), lab.pick(svc, '198.18.9.9')]).toEqual([B, B]);
    lab.p.editDest(svc, B, { weight: 0 });
    expect(lab.pick(svc, '198.18.9.9')).toBe(0xffffffff);
  });
});

describe('rr (ip_vs_rr.c)', () => {
  it('goes round the list from its head (newest destination first)', () => {
    const lab = new Lab();
    const { svc, ids } = lab.service({ ...VIP, scheduler: 'rr' }, [d(1), d(2), d(3)]);
    const [A, B, C] = ids;
    expect(Array.from({ length: 7 }, () => lab.pick(svc, '198.18.9.9'))).toEqual([C, B, A, C, B, A, C]);
  });

  it('skips quiescent (weight 0) and overloaded destinations, and resumes after them', () => {
    const lab = new Lab();
    const { svc, ids } = lab.service({ ...VIP, scheduler: 'rr' }, [d(1), d(2), d(3)]);
    const [A, B, C] = ids;
    lab.p.editDest(svc, B, { weight: 0 });
    expect(Array.from({ length: 4 }, () => lab.pick(svc, '198.18.9.9'))).toEqual([C, A, C, A]);
    // Overload C with an upper threshold of 1 and one connection: rr then only finds A.
    lab.p.editDest(svc, C, { weight: 1, upperThreshold: 1 });
    lab.send({ src: '198.18.5.1', dst: VIP.address, proto: 'tcp', sport: 1000, dport: 80, flags: 'S' });
    expect(lab.dest(C).overloaded || lab.dest(A).overloaded).toBe(true);
    const free = lab.dest(C).overloaded ? A : C;
    expect([lab.pick(svc, '198.18.9.9'), lab.pick(svc, '198.18.9.9')]).toEqual([free, free]);
  });

  it('removing the destination under the cursor keeps the order of the others (ip_vs_rr_del_dest)', () => {
    const lab = new Lab();
    const { svc, ids } = lab.service({ ...VIP, scheduler: 'rr' }, [d(1), d(2), d(3), d(4)]);
    const [A, B, C, D] = ids;   // list D C B A
    expect([lab.pick(svc, '198.18.9.9'), lab.pick(svc, '198.18.9.9')]).toEqual([D, C]);
    lab.p.deleteDest(svc, C);    // the cursor steps back to D: B comes next
    expect([lab.pick(svc, '198.18.9.9'), lab.pick(svc, '198.18.9.9'), lab.pick(svc, '198.18.9.9')]).toEqual([B, A, D]);
  });

  it('no usable destination: none', () => {
    const lab = new Lab();
    const { svc } = lab.service({ ...VIP, scheduler: 'rr' }, [d(1, 0)]);
    expect(lab.pick(svc, '198.18.9.9')).toBe(0xffffffff);
  });
});
