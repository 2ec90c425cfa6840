// Stateful and counting matches: statistic random (the draw against the 31-bit threshold) and nth,
// limit's token bucket on the caller's clock, nfacct counters, and -m set until ipsets exist.
import { describe, it, expect } from 'vitest';
import { Bench, filterWith, udp, V, IS } from './harness';

const u = (port = 1) => udp('198.18.0.1', '198.18.0.2', 9, port);

describe('statistic', () => {
  it('random: about p of the packets match, reproducibly for a seed', () => {
    const draws = (seed: number) => {
      const b = new Bench({ seed });
      b.restore(filterWith('-A TEST -m statistic --mode random --probability 0.25 -j DROP'));
      let s = '';
      for (let i = 0; i < 4000; i++) s += b.send(u(i & 1023)).verdict === V.DROP ? '1' : '0';
      return s;
    };
    const a = draws(1);
    const hits = a.split('').filter((c) => c === '1').length;
    expect(hits).toBeGreaterThan(880);
    expect(hits).toBeLessThan(1120);
    expect(draws(1)).toBe(a);
    expect(draws(2)).not.toBe(a);
  });

  it('random with ! and the extremes 0 and 1', () => {
    const b = new Bench();
    b.restore(filterWith('-A TEST -p udp --dport 1 -m statistic --mode random --probability 0 -j DROP\n' +
      '-A TEST -p udp --dport 2 -m statistic --mode random --probability 1 -j DROP\n' +
      '-A TEST -p udp --dport 3 -m statistic --mode random ! --probability 1 -j DROP'));
    for (let i = 0; i < 50; i++) {
      expect(b.send(u(1)).verdict).toBe(V.PASS);
      expect(b.send(u(2)).verdict).toBe(V.DROP);
      expect(b.send(u(3)).verdict).toBe(V.PASS);
    }
  });

  it('nth: --every 3 --packet 1 matches packets 1, 4, 7 …; each rule keeps its own count', () => {
    const b = new Bench();
    b.restore(filterWith('-A TEST -p udp --dport 1 -m statistic --mode nth --every 3 --packet 1 -j DROP\n' +
      '-A TEST -p udp --dport 2 -m statistic --mode nth --every 2 --packet 0 -j DROP'));
    const seq1 = Array.from({ length: 9 }, () => b.send(u(1)).verdict === V.DROP);
    expect(seq1).toEqual([false, true, false, false, true, false, false, true, false]);
    const seq2 = Array.from({ length: 4 }, () => b.send(u(2)).verdict === V.DROP);
    expect(seq2).toEqual([true, false, true, false]);
  });

  it('nth counters are only advanced by packets that reach the match', () => {
    const b = new Bench();
    b.restore(filterWith('-A TEST -p udp --dport 1 -m statistic --mode nth --every 2 --packet 0 -j DROP'));
    expect(b.send(u(1)).verdict).toBe(V.DROP);
    b.send(u(5));
    b.send(u(5));
    expect(b.send(u(1)).verdict).toBe(V.PASS);
    expect(b.send(u(1)).verdict).toBe(V.DROP);
  });
});

describe('limit', () => {
  it('lets a burst through, then one packet per interval on the given clock', () => {
    const b = new Bench();
    b.restore(filterWith('-A TEST -m limit --limit 10/second --limit-burst 3 -j ACCEPT\n-A TEST -j DROP'));
    const at = (now: number) => b.send(u(), { now }).verdict === V.PASS;
    expect([at(1000), at(1000), at(1000), at(1000)]).toEqual([true, true, true, false]);
    expect(at(1050)).toBe(false);
    expect(at(1100)).toBe(true);
    expect(at(1100)).toBe(false);
    // A long pause refills only up to the burst.
    expect([at(9000), at(9000), at(9000), at(9000)]).toEqual([true, true, true, false]);
  });
});

describe('nfacct and set', () => {
  it('nfacct counts every packet reaching it and always matches', () => {
    const b = new Bench();
    b.restore(filterWith('-A TEST -p udp --dport 7 -m nfacct --nfacct-name seen -j DROP'));
    b.send(u(7));
    b.send(u(7));
    b.send(u(8));
    const id = b.compiler.nfacctId('seen');
    const dv = b.core.dv();
    const p = (b.x.iptNfacctPtr!() >>> 0) + id * 16;
    expect(dv.getBigUint64(p, true)).toBe(2n);
    expect(dv.getBigUint64(p + 8, true)).toBe(2n * 28n);
  });

  it('-m set matches nothing until ipsets exist (so ! matches everything), counted', () => {
    const b = new Bench();
    b.restore(filterWith('-A TEST -p udp --dport 1 -m set --match-set kube-a dst -j DROP\n' +
      '-A TEST -p udp --dport 2 -m set ! --match-set kube-a src,dst -j DROP'));
    expect(b.send(u(1)).verdict).toBe(V.PASS);
    expect(b.send(u(2)).verdict).toBe(V.DROP);
    expect(b.stat(IS.SET_NO_TABLE)).toBe(2n);
  });
});
