// The TCP tracker against nf_conntrack_proto_tcp.c: every state, every timeout, both close orders,
// simultaneous open, RST, TIME_WAIT reopen and the INVALID cells of tcp_conntracks[][][].
// A fake clock starts just below 2^32 so every scenario crosses the wrap.
import { describe, it, expect } from 'vitest';
import {
  Ct, T, inv, FIN, SYN, RST, PSH, ACK, URG, ECE, CWR, TCP, NONE, FRAG_LATER,
  S_INVALID, S_ESTABLISHED, S_NEW, S_REPEAT, SEEN_REPLY, ASSURED, CONFIRMED,
  NO, SS, SR, ES, FW, CW, LA, TW, CL, S2, SEC, MIN, HOUR, DAY,
} from './harness';

const T0 = 0xffff_f000;
const at = (ms: number) => (T0 + ms) >>> 0;
const A: T = { family: 4, proto: TCP, sport: 40000, dport: 80, src: '198.18.0.1', dst: '198.18.0.2' };
const B = inv(A);

function setup() {
  const c = new Ct(8, 4);
  const step = (i: number, dir: number, flags: number, now: number, ctstate: number, tcp: number, timeout?: number) => {
    expect(c.packet(i, dir, flags, now)).toBe(ctstate);
    expect(c.state(i)).toBe(tcp);
    if (timeout !== undefined) expect(c.left(i, now)).toBe(timeout);
  };
  const open = (now = at(0)) => {
    const i = c.insert(A, undefined, now);
    expect(i).not.toBe(NONE);
    step(i, 0, SYN, now, S_NEW, SS, 2 * MIN);
    step(i, 1, SYN | ACK, now, S_ESTABLISHED, SR, 60 * SEC);
    step(i, 0, ACK, now, S_ESTABLISHED, ES, 5 * DAY);
    return i;
  };
  return { c, step, open };
}

describe('conntrack TCP: opening', () => {
  it('SYN → SYN_SENT, SYN/ACK → SYN_RECV, ACK → ESTABLISHED with the kernel timeouts; ASSURED on the ACK', () => {
    const { c, step } = setup();
    const i = c.insert(A, undefined, at(0));
    expect(c.state(i)).toBe(NO);
    expect(c.left(i, at(0))).toBe(2 * MIN); // NEW-state timeout before the first packet
    step(i, 0, SYN, at(0), S_NEW, SS, 2 * MIN);
    expect(c.status(i) & (SEEN_REPLY | ASSURED)).toBe(0);
    expect(c.status(i) & CONFIRMED).toBe(CONFIRMED);
    expect(c.lookup(B, at(10))).toBe((i << 1) | 1);
    step(i, 1, SYN | ACK, at(10), S_ESTABLISHED, SR, 60 * SEC);
    expect(c.status(i) & SEEN_REPLY).toBe(SEEN_REPLY);
    expect(c.status(i) & ASSURED).toBe(0);
    step(i, 0, ACK, at(20), S_ESTABLISHED, ES, 5 * DAY);
    expect(c.status(i) & ASSURED).toBe(ASSURED);
    // PSH, ECE, CWR ride along on any valid combination.
    step(i, 1, PSH | ACK | ECE | CWR, at(30), S_ESTABLISHED, ES, 5 * DAY);
  });

  it('a retransmitted SYN keeps SYN_SENT but does not renew the timeout', () => {
    const { c, step } = setup();
    const i = c.insert(A, undefined, at(0));
    step(i, 0, SYN, at(0), S_NEW, SS, 2 * MIN);
    step(i, 0, SYN, at(3 * SEC), S_NEW, SS, 2 * MIN - 3 * SEC);
  });

  it('SYN_SENT expires after 120 s and SYN_RECV after 60 s', () => {
    const { c, step } = setup();
    const i = c.insert(A, undefined, at(0));
    step(i, 0, SYN, at(0), S_NEW, SS);
    expect(c.lookup(A, at(2 * MIN - 1))).toBe(i << 1);
    expect(c.lookup(A, at(2 * MIN))).toBe(NONE);
    expect(c.count()).toBe(0);
    const j = c.insert(A, undefined, at(0));
    step(j, 0, SYN, at(0), S_NEW, SS);
    step(j, 1, SYN | ACK, at(1), S_ESTABLISHED, SR);
    expect(c.lookup(B, at(1 + 60 * SEC - 1))).toBe((j << 1) | 1);
    expect(c.lookup(B, at(1 + 60 * SEC))).toBe(NONE);
  });

  it('simultaneous open goes through SYN_SENT2 (both orders of the SYN/ACK)', () => {
    const { c, step } = setup();
    // SYN both ways, SYN/ACK from the original side, ACK from the reply side.
    let i = c.insert(A, undefined, at(0));
    step(i, 0, SYN, at(0), S_NEW, SS, 2 * MIN);
    step(i, 1, SYN, at(1000), S_ESTABLISHED, S2, 2 * MIN - 1000); // an unreplied SYN does not renew
    step(i, 0, SYN, at(1500), S_ESTABLISHED, S2, 2 * MIN); // late retransmitted SYN: replied now, so refreshed
    step(i, 0, SYN | ACK, at(2000), S_ESTABLISHED, SR, 60 * SEC);
    step(i, 0, SYN | ACK, at(2100), S_ESTABLISHED, SR, 60 * SEC); // late retransmit in simultaneous open
    expect(c.status(i) & ASSURED).toBe(0);
    step(i, 1, ACK, at(3000), S_ESTABLISHED, ES, 5 * DAY); // SYN_RECV + reply ACK → ESTABLISHED (simultaneous)
    expect(c.status(i) & ASSURED).toBe(ASSURED);
    c.x.ctDelete(i);
    // SYN/ACK from the reply side instead.
    i = c.insert(A, undefined, at(0));
    step(i, 0, SYN, at(0), S_NEW, SS);
    step(i, 1, SYN, at(1), S_ESTABLISHED, S2);
    step(i, 1, SYN | ACK, at(2), S_ESTABLISHED, SR, 60 * SEC);
    step(i, 0, ACK, at(3), S_ESTABLISHED, ES, 5 * DAY);
    expect(c.status(i) & ASSURED).toBe(ASSURED);
  });

  it('an ACK as first packet picks up a running connection with the UNACK cap until both sides spoke', () => {
    const { c, step } = setup();
    const i = c.insert(A, undefined, at(0));
    step(i, 0, ACK, at(0), S_NEW, ES, 5 * MIN);
    step(i, 1, ACK, at(10), S_ESTABLISHED, ES, 5 * MIN); // reply: SEEN_REPLY only set after this packet
    expect(c.status(i) & ASSURED).toBe(0);
    step(i, 0, ACK, at(20), S_ESTABLISHED, ES, 5 * DAY);
    expect(c.status(i) & ASSURED).toBe(ASSURED);
  });
});

describe('conntrack TCP: closing', () => {
  it('client closes first: FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, then gone after 120 s', () => {
    const { c, step, open } = setup();
    const i = open();
    step(i, 0, FIN | ACK, at(100), S_ESTABLISHED, FW, 2 * MIN);
    step(i, 1, ACK, at(200), S_ESTABLISHED, CW, 60 * SEC);
    step(i, 1, ACK, at(250), S_ESTABLISHED, CW, 60 * SEC);
    step(i, 1, FIN | ACK, at(300), S_ESTABLISHED, LA, 30 * SEC);
    step(i, 1, FIN | ACK, at(310), S_ESTABLISHED, LA, 30 * SEC); // retransmitted FIN
    step(i, 0, ACK, at(400), S_ESTABLISHED, TW, 2 * MIN);
    step(i, 0, ACK, at(500), S_ESTABLISHED, TW, 2 * MIN); // retransmitted last ACK
    expect(c.lookup(A, at(500 + 2 * MIN - 1))).toBe(i << 1);
    expect(c.lookup(A, at(500 + 2 * MIN))).toBe(NONE);
    expect(c.stat('EXPIRED')).toBe(1);
  });

  it('server closes first: the same states from the other side', () => {
    const { c, step, open } = setup();
    const i = open();
    step(i, 1, FIN | ACK, at(100), S_ESTABLISHED, FW, 2 * MIN);
    step(i, 0, ACK, at(200), S_ESTABLISHED, CW, 60 * SEC);
    step(i, 0, FIN | ACK | PSH, at(300), S_ESTABLISHED, LA, 30 * SEC);
    step(i, 1, ACK, at(400), S_ESTABLISHED, TW, 2 * MIN);
  });

  it('simultaneous close: FIN both ways → LAST_ACK → TIME_WAIT', () => {
    const { c, step, open } = setup();
    const i = open();
    step(i, 0, FIN | ACK, at(100), S_ESTABLISHED, FW, 2 * MIN);
    step(i, 1, FIN | ACK, at(101), S_ESTABLISHED, LA, 30 * SEC);
    step(i, 1, ACK, at(102), S_ESTABLISHED, TW, 2 * MIN);
  });

  it('a close that starts in SYN_RECV goes to FIN_WAIT', () => {
    const { c, step } = setup();
    const i = c.insert(A, undefined, at(0));
    step(i, 0, SYN, at(0), S_NEW, SS);
    step(i, 1, SYN | ACK, at(1), S_ESTABLISHED, SR);
    step(i, 0, FIN | ACK, at(2), S_ESTABLISHED, FW, 2 * MIN);
  });

  it('RST closes with the CLOSE timeout (10 s) from any established state', () => {
    for (const dir of [0, 1]) {
      const { c, step, open } = setup();
      const i = open();
      step(i, dir, RST, at(100), S_ESTABLISHED, CL, 10 * SEC);
      step(i, 1 - dir, ACK, at(200), S_ESTABLISHED, CL, 10 * SEC); // CLOSE stays CLOSE
      expect(c.lookup(A, at(200 + 10 * SEC))).toBe(NONE);
    }
    const { c, step, open } = setup();
    const i = open();
    step(i, 0, FIN | ACK, at(1), S_ESTABLISHED, FW);
    step(i, 1, RST | ACK, at(2), S_ESTABLISHED, CL, 10 * SEC);
  });

  it('an RST as the only answer deletes the unreplied connection at once', () => {
    const { c, step } = setup();
    const i = c.insert(A, undefined, at(0));
    step(i, 0, SYN, at(0), S_NEW, SS);
    step(i, 1, RST | ACK, at(5), S_ESTABLISHED, CL);
    expect(c.lookup(A, at(5))).toBe(NONE);
    expect(c.count()).toBe(0);
  });
});

describe('conntrack TCP: reopening', () => {
  it('a new SYN in TIME_WAIT kills the entry (REPEAT) and the retried lookup misses', () => {
    const { c, step, open } = setup();
    const i = open();
    step(i, 0, FIN | ACK, at(1), S_ESTABLISHED, FW);
    step(i, 1, FIN | ACK, at(2), S_ESTABLISHED, LA);
    step(i, 0, ACK, at(3), S_ESTABLISHED, TW);
    expect(c.packet(i, 0, SYN, at(10))).toBe(S_REPEAT);
    expect(c.lookup(A, at(10))).toBe(NONE);
    const j = c.insert(A, undefined, at(10));
    expect(j).not.toBe(NONE);
    step(j, 0, SYN, at(10), S_NEW, SS, 2 * MIN);
  });

  it('a SYN from the server side in TIME_WAIT also reopens (roles switched)', () => {
    const { c, step, open } = setup();
    const i = open();
    step(i, 1, FIN | ACK, at(1), S_ESTABLISHED, FW);
    step(i, 0, FIN | ACK, at(2), S_ESTABLISHED, LA);
    step(i, 1, ACK, at(3), S_ESTABLISHED, TW);
    expect(c.packet(i, 1, SYN, at(4))).toBe(S_REPEAT);
    expect(c.lookup(B, at(4))).toBe(NONE);
  });

  it('after an RST from the same side, a SYN in CLOSE reopens', () => {
    const { c, step, open } = setup();
    const i = open();
    step(i, 0, RST, at(1), S_ESTABLISHED, CL);
    expect(c.packet(i, 0, SYN, at(2))).toBe(S_REPEAT);
    expect(c.lookup(A, at(2))).toBe(NONE);
  });

  it('after an RST from the server, the client SYN is ignored until the SYN/ACK resyncs the entry', () => {
    const { c, step, open } = setup();
    const i = open();
    step(i, 1, RST, at(1000), S_ESTABLISHED, CL, 10 * SEC);
    step(i, 0, SYN, at(2000), S_ESTABLISHED, CL, 9 * SEC); // ignored: no state or timeout change
    step(i, 1, SYN | ACK, at(2100), S_ESTABLISHED, SR, 60 * SEC);
    step(i, 0, ACK, at(2200), S_ESTABLISHED, ES, 5 * DAY);
  });

  it('a SYN on an established connection is ignored, not invalid', () => {
    const { c, step, open } = setup();
    const i = open();
    step(i, 0, SYN, at(1000), S_ESTABLISHED, ES, 5 * DAY - 1000);
    expect(c.stat('INVALID')).toBe(0);
    // The SYN/ACK answering it means both ends restarted: follow them.
    step(i, 1, SYN | ACK, at(1100), S_ESTABLISHED, SR, 60 * SEC);
  });

  it('an RFC 5961 challenge ACK to a SYN in LAST_ACK does not take the entry to TIME_WAIT', () => {
    const { c, step, open } = setup();
    const i = open();
    step(i, 0, FIN | ACK, at(1), S_ESTABLISHED, FW);
    step(i, 1, FIN | ACK, at(2), S_ESTABLISHED, LA, 30 * SEC);
    step(i, 0, SYN, at(3), S_ESTABLISHED, LA, 30 * SEC - 1); // ignored, challenge expected
    step(i, 1, ACK, at(4), S_ESTABLISHED, LA, 30 * SEC - 2); // the challenge ACK: unchanged
    step(i, 0, ACK, at(5), S_ESTABLISHED, TW, 2 * MIN); // the real last ACK
  });
});

describe('conntrack TCP: INVALID', () => {
  it('first packets that cannot open a connection are INVALID and the entry is killed', () => {
    for (const flags of [SYN | ACK, FIN | ACK, RST, RST | ACK]) {
      const { c } = setup();
      const i = c.insert(A, undefined, at(0));
      expect(c.packet(i, 0, flags, at(0))).toBe(S_INVALID);
      expect(c.lookup(A, at(0))).toBe(NONE);
      expect(c.stat('INVALID')).toBe(1);
    }
  });

  it('invalid flag combinations are INVALID in any state and change nothing (tcp_valid_flags)', () => {
    const bad = [0, FIN, SYN | FIN, SYN | RST, SYN | FIN | ACK, URG, PSH, FIN | URG, SYN | ACK | URG, SYN | RST | ACK];
    const { c, open } = setup();
    const i = open();
    const exp = c.expiry(i);
    for (const f of bad) {
      for (const dir of [0, 1]) {
        expect(c.packet(i, dir, f, at(500))).toBe(S_INVALID);
        expect(c.state(i)).toBe(ES);
        expect(c.expiry(i)).toBe(exp);
      }
    }
    expect(c.stat('INVALID')).toBe(bad.length * 2);
    // And on a new entry they kill it.
    const j = c.insert({ ...A, sport: 1 }, undefined, at(0));
    expect(c.packet(j, 0, SYN | FIN, at(0))).toBe(S_INVALID);
    expect(c.lookup({ ...A, sport: 1 }, at(0))).toBe(NONE);
  });

  it('the sIV cells of the table: no state or timeout change', () => {
    // [state reached by these steps, dir, flags]
    const cases: [string, number, number][] = [
      ['SS', 0, ACK], ['SS', 0, FIN | ACK], ['SS', 0, SYN | ACK], ['SS', 1, FIN | ACK],
      ['S2', 0, ACK], ['S2', 0, FIN | ACK], ['S2', 1, FIN | ACK],
      ['ES', 1, SYN], ['ES', 0, SYN | ACK], ['SR', 1, SYN], ['FW', 1, SYN], ['TW', 0, SYN | ACK],
      ['CL', 1, SYN], ['CW', 0, SYN | ACK], ['LA', 1, SYN],
    ];
    for (const [where, dir, flags] of cases) {
      const { c, step } = setup();
      const i = c.insert(A, undefined, at(0));
      step(i, 0, SYN, at(0), S_NEW, SS);
      if (where === 'S2') step(i, 1, SYN, at(1), S_ESTABLISHED, S2);
      if (where !== 'SS' && where !== 'S2') step(i, 1, SYN | ACK, at(1), S_ESTABLISHED, SR);
      if (['ES', 'FW', 'CW', 'LA', 'TW', 'CL'].includes(where)) step(i, 0, ACK, at(2), S_ESTABLISHED, ES);
      if (['FW', 'CW', 'LA', 'TW'].includes(where)) step(i, 0, FIN | ACK, at(3), S_ESTABLISHED, FW);
      if (['CW', 'LA', 'TW'].includes(where)) step(i, 1, ACK, at(4), S_ESTABLISHED, CW);
      if (['LA', 'TW'].includes(where)) step(i, 1, FIN | ACK, at(5), S_ESTABLISHED, LA);
      if (where === 'TW') step(i, 0, ACK, at(6), S_ESTABLISHED, TW);
      if (where === 'CL') step(i, 1, RST, at(7), S_ESTABLISHED, CL);
      const st = c.state(i), exp = c.expiry(i), status = c.status(i);
      expect(c.packet(i, dir, flags, at(100)), `${where} dir ${dir} flags ${flags}`).toBe(S_INVALID);
      expect(c.state(i)).toBe(st);
      expect(c.expiry(i)).toBe(exp);
      expect(c.status(i)).toBe(status);
      expect(c.lookup(A, at(100))).toBe(i << 1); // still there
    }
  });

  it('a later fragment gets its ctstate without touching the entry', () => {
    const { c, step } = setup();
    const i = c.insert(A, undefined, at(0));
    step(i, 0, SYN, at(0), S_NEW, SS);
    const exp = c.expiry(i);
    expect(c.packet(i, 1, 0, at(50), FRAG_LATER)).toBe(S_ESTABLISHED);
    expect(c.packet(i, 0, 0, at(50), FRAG_LATER)).toBe(S_NEW);
    expect(c.expiry(i)).toBe(exp);
    expect(c.state(i)).toBe(SS);
  });

  it('bad handles are INVALID and counted, never a trap', () => {
    const { c, open } = setup();
    const i = open();
    expect(c.packet(i, 2, ACK, at(1))).toBe(S_INVALID);
    expect(c.packet(9999, 0, ACK, at(1))).toBe(S_INVALID);
    expect(c.packet(i + 1, 0, ACK, at(1))).toBe(S_INVALID); // free slot
    expect(c.stat('BAD_ARG')).toBe(3);
  });
});

describe('conntrack TCP: configurable timeouts', () => {
  it('kube-proxy style ESTABLISHED 24 h and CLOSE_WAIT 1 h are used from the next packet on', () => {
    const { c, step } = setup();
    expect(c.x.ctSetTimeout(c.g('CT_TO_TCP_ESTABLISHED'), 24 * HOUR)).toBe(1);
    expect(c.x.ctSetTimeout(c.g('CT_TO_TCP_CLOSE_WAIT'), HOUR)).toBe(1);
    expect(c.x.ctGetTimeout(c.g('CT_TO_TCP_ESTABLISHED')) >>> 0).toBe(24 * HOUR);
    const i = c.insert(A, undefined, at(0));
    step(i, 0, SYN, at(0), S_NEW, SS, 2 * MIN);
    step(i, 1, SYN | ACK, at(0), S_ESTABLISHED, SR, 60 * SEC);
    step(i, 0, ACK, at(0), S_ESTABLISHED, ES, 24 * HOUR);
    step(i, 1, FIN | ACK, at(1), S_ESTABLISHED, FW, 2 * MIN);
    step(i, 0, ACK, at(2), S_ESTABLISHED, CW, HOUR);
  });

  it('every kind is settable, and bad kinds or values are refused', () => {
    const { c } = setup();
    const n = c.g('CT_TO_COUNT');
    for (let k = 1; k < n; k++) {
      expect(c.x.ctSetTimeout(k, 1234 + k)).toBe(1);
      expect(c.x.ctGetTimeout(k) >>> 0).toBe(1234 + k);
    }
    expect(c.x.ctSetTimeout(0, 1000)).toBe(0);
    expect(c.x.ctSetTimeout(n, 1000)).toBe(0);
    expect(c.x.ctSetTimeout(1, 0)).toBe(0);
    expect(c.x.ctSetTimeout(1, 0x8000_0000)).toBe(0); // ≥ 24.8 days would break the wrap compare
    expect(c.x.ctGetTimeout(1) >>> 0).toBe(1235);
    c.x.ctResetTimeouts();
    expect(c.x.ctGetTimeout(c.g('CT_TO_TCP_ESTABLISHED')) >>> 0).toBe(5 * DAY);
  });

  it('the defaults are the kernel\'s', () => {
    const { c } = setup();
    const want: Record<string, number> = {
      TCP_SYN_SENT: 2 * MIN, TCP_SYN_RECV: 60 * SEC, TCP_ESTABLISHED: 5 * DAY, TCP_FIN_WAIT: 2 * MIN,
      TCP_CLOSE_WAIT: 60 * SEC, TCP_LAST_ACK: 30 * SEC, TCP_TIME_WAIT: 2 * MIN, TCP_CLOSE: 10 * SEC,
      TCP_SYN_SENT2: 2 * MIN, TCP_UNACK: 5 * MIN, UDP_UNREPLIED: 30 * SEC, UDP_STREAM: 120 * SEC,
      ICMP: 30 * SEC, ICMPV6: 30 * SEC, GENERIC: 600 * SEC, SCTP_UNREPLIED: 30 * SEC, SCTP_STREAM: 210 * SEC,
    };
    for (const [k, v] of Object.entries(want)) expect(c.x.ctGetTimeout(c.g(`CT_TO_${k}`)) >>> 0, k).toBe(v);
  });
});
