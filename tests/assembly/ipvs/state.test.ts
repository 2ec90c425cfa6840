// IPVS's own connection entries: the TCP state machine of ip_vs_proto_tcp.c (INPUT / OUTPUT /
// INPUT-ONLY tables), timeouts per state and ipvsadm --set, the active/inactive counting, UDP, expiry
// by a fake clock, and SYN reuse of closed entries (conn_reuse_mode).
import { describe, it, expect } from 'vitest';
import { Lab, V, tcp, udp } from './harness';

const VIP = '198.18.0.100';
const CL = '198.18.7.1';
const RS = '198.18.1.1';

function masqLab(fwd: 'masq' | 'droute' = 'masq') {
  const lab = new Lab();
  const { svc, ids: [dest] } = lab.service({ protocol: 'tcp', address: VIP, port: 80, scheduler: 'rr' },
    [{ address: RS, port: 8080, forwarding: fwd }]);
  const conn = (now: number) => lab.p.connections(now).find((c) => !c.template)!;
  return { lab, svc, dest: dest!, conn };
}

describe('TCP states and timeouts (masquerading: both directions seen)', () => {
  it('walks SYN_RECV → ESTABLISHED → CLOSE_WAIT → TIME_WAIT with the kernel\'s timeouts and counts', () => {
    const { lab, dest, conn } = masqLab();
    expect(lab.send(tcp(CL, 40000, VIP, 80, 'S'), { now: 0 }).verdict).toBe(V.FORWARD);
    expect(conn(0)).toMatchObject({ state: 'SYN_RECV', timeoutMs: 60_000, expireMs: 60_000 });
    // Linux ≥ 4.8 counts SYN_RECV (and SYN_SENT, SYNACK) as active.
    expect(lab.dest(dest)).toMatchObject({ activeConns: 1, inactConns: 0 });
    // The real server's SYN-ACK: OUTPUT syn from SYN_RECV stays SYN_RECV.
    expect(lab.send(tcp(RS, 8080, CL, 40000, 'SA'), { now: 100 }).verdict).toBe(V.FORWARD);
    expect(conn(100).state).toBe('SYN_RECV');
    lab.send(tcp(CL, 40000, VIP, 80, 'A'), { now: 200 });
    expect(conn(200)).toMatchObject({ state: 'ESTABLISHED', timeoutMs: 900_000, expireMs: 900_000 });
    lab.send(tcp(CL, 40000, VIP, 80, 'FA'), { now: 300 });
    expect(conn(300)).toMatchObject({ state: 'CLOSE_WAIT', timeoutMs: 60_000 });
    expect(lab.dest(dest)).toMatchObject({ activeConns: 0, inactConns: 1 });
    lab.send(tcp(RS, 8080, CL, 40000, 'FA'), { now: 400 });
    expect(conn(400)).toMatchObject({ state: 'TIME_WAIT', timeoutMs: 120_000, expireMs: 120_000 });
    lab.send(tcp(CL, 40000, VIP, 80, 'A'), { now: 500 });
    expect(conn(500).state).toBe('TIME_WAIT');
    // Expiry: nothing at 120 499 ms, gone at 120 500 ms.
    expect(lab.p.expire(120_499)).toBe(0);
    expect(lab.p.expire(120_500)).toBe(1);
    expect(lab.p.connections(120_500)).toEqual([]);
    expect(lab.dest(dest)).toMatchObject({ activeConns: 0, inactConns: 0 });
  });

  it('RST closes (CLOSE, 10 s); a segment with no SYN/FIN/ACK/RST also goes to CLOSE', () => {
    const { lab, conn } = masqLab();
    lab.send(tcp(CL, 40000, VIP, 80, 'S'), { now: 0 });
    lab.send(tcp(CL, 40000, VIP, 80, 'A'), { now: 1 });
    lab.send(tcp(CL, 40000, VIP, 80, 'R'), { now: 2 });
    expect(conn(2)).toMatchObject({ state: 'CLOSE', timeoutMs: 10_000 });
    const m = masqLab();
    m.lab.send(tcp(CL, 40001, VIP, 80, 'S'), { now: 0 });
    m.lab.send(tcp(CL, 40001, VIP, 80, 'P'), { now: 1 });
    expect(m.conn(1).state).toBe('CLOSE');
  });

  it('ipvsadm --set tcp / tcpfin change ESTABLISHED and FIN_WAIT timeouts', () => {
    const { lab, conn } = masqLab('droute');
    lab.p.setTimeouts({ tcp: 100, tcpfin: 7 });
    expect(lab.p.timeouts()).toEqual({ tcp: 100, tcpfin: 7, udp: 300 });
    lab.send(tcp(CL, 40000, VIP, 80, 'S'), { now: 0 });
    lab.send(tcp(CL, 40000, VIP, 80, 'A'), { now: 10 });
    expect(conn(10)).toMatchObject({ state: 'ESTABLISHED', timeoutMs: 100_000 });
    // Direct routing: no replies seen, so the INPUT-ONLY table: FIN from ESTABLISHED → FIN_WAIT.
    lab.send(tcp(CL, 40000, VIP, 80, 'FA'), { now: 20 });
    expect(conn(20)).toMatchObject({ state: 'FIN_WAIT', timeoutMs: 7_000 });
  });
});

describe('direct routing uses INPUT-ONLY', () => {
  it('SYN → SYN_RECV, ACK → ESTABLISHED, FIN → FIN_WAIT, ACK stays, RST → CLOSE', () => {
    const { lab, dest, conn } = masqLab('droute');
    const steps: [string, string][] = [['S', 'SYN_RECV'], ['A', 'ESTABLISHED'], ['FA', 'FIN_WAIT'], ['A', 'FIN_WAIT'], ['R', 'CLOSE']];
    steps.forEach(([flags, state], k) => {
      expect(lab.send(tcp(CL, 40000, VIP, 80, flags), { now: k }).verdict).toBe(V.FORWARD);
      expect(conn(k).state).toBe(state);
    });
    expect(lab.dest(dest)).toMatchObject({ activeConns: 0, inactConns: 1 });
  });
});

describe('UDP and scheduling rules', () => {
  it('UDP entries are inactive with the 300 s timeout; --set udp changes it on the next datagram', () => {
    const lab = new Lab();
    const { ids: [dest] } = lab.service({ protocol: 'udp', address: VIP, port: 53 }, [{ address: RS, port: 53 }]);
    lab.send(udp(CL, 5000, VIP, 53), { now: 0 });
    const c = () => lab.p.connections(0)[0]!;
    expect(c()).toMatchObject({ state: 'UDP', timeoutMs: 300_000, protocol: 'udp' });
    expect(lab.dest(dest!)).toMatchObject({ activeConns: 0, inactConns: 1 });
    lab.p.setTimeouts({ udp: 30 });
    lab.send(udp(CL, 5000, VIP, 53), { now: 1000 });
    expect(c()).toMatchObject({ timeoutMs: 30_000, expireMs: 30_000 - 0 + 1000 });
  });

  it('a connection from port 20 (active FTP data) is never scheduled: it passes untouched', () => {
    const { lab } = masqLab();
    expect(lab.send(tcp(CL, 20, VIP, 80, 'S')).verdict).toBe(V.PASS);
    expect(lab.p.connections(0)).toEqual([]);
    expect(lab.p.counters().not_scheduled).toBe(1n);
    expect(lab.send(tcp(CL, 21, VIP, 80, 'S')).verdict).toBe(V.FORWARD);
  });

  it('only a SYN (without RST) opens a TCP entry; other segments pass untouched (sloppy_tcp relaxes it)', () => {
    const { lab } = masqLab();
    for (const flags of ['A', 'SR', 'FA', 'P']) {
      const s = lab.send(tcp(CL, 40000, VIP, 80, flags));
      expect(s.verdict).toBe(V.PASS);
    }
    expect(lab.p.connections(0)).toEqual([]);
    expect(lab.p.counters().not_scheduled).toBe(4n);
    lab.p.setSysctl('sloppy_tcp', 1);
    expect(lab.send(tcp(CL, 40000, VIP, 80, 'A')).verdict).toBe(V.FORWARD);
    expect(lab.send(tcp(CL, 40001, VIP, 80, 'R')).verdict).toBe(V.PASS);
  });

  it('a packet to no service and no entry is not IPVS\'s', () => {
    const { lab } = masqLab();
    expect(lab.send(tcp(CL, 40000, VIP, 81, 'S')).verdict).toBe(V.NOT_IPVS);
    expect(lab.send(tcp(CL, 40000, '198.18.0.101', 80, 'S')).verdict).toBe(V.NOT_IPVS);
  });

  it('a SYN on a TIME_WAIT entry expires it and schedules anew (conn_reuse_mode 1)', () => {
    const lab = new Lab();
    const { ids: [A, B] } = lab.service({ protocol: 'tcp', address: VIP, port: 80, scheduler: 'rr' },
      [{ address: RS, port: 80 }, { address: '198.18.1.2', port: 80 }]);
    const first = lab.send(tcp(CL, 40000, VIP, 80, 'S'), { now: 0 }).dest;
    expect(first).toBe(B);                      // rr: the list head (newest) first
    lab.send(tcp(CL, 40000, VIP, 80, 'A'), { now: 1 });
    lab.send(tcp(CL, 40000, VIP, 80, 'FA'), { now: 2 });   // FIN_WAIT (direct routing)
    // Same 4-tuple SYN while FIN_WAIT: not expected to be new (mode & 2 is off): same entry, and the
    // INPUT-ONLY table takes it back to SYN_RECV.
    expect(lab.send(tcp(CL, 40000, VIP, 80, 'S'), { now: 3 }).dest).toBe(B);
    expect(lab.p.connections(3)[0]!.state).toBe('SYN_RECV');
    lab.send(tcp(CL, 40000, VIP, 80, 'A'), { now: 4 });
    lab.send(tcp(CL, 40000, VIP, 80, 'R'), { now: 4 });    // ESTABLISHED → CLOSE
    expect(lab.p.connections(4)[0]!.state).toBe('CLOSE');
    const again = lab.send(tcp(CL, 40000, VIP, 80, 'S'), { now: 5 });
    expect(again.dest).toBe(A);
    expect(lab.p.counters().reused).toBe(1n);
    expect(lab.p.connections(5).map((c) => c.destId)).toEqual([A]);
    lab.p.setSysctl('conn_reuse_mode', 0);
    lab.send(tcp(CL, 40000, VIP, 80, 'A'), { now: 6 });
    lab.send(tcp(CL, 40000, VIP, 80, 'R'), { now: 6 });
    expect(lab.p.connections(6)[0]!.state).toBe('CLOSE');
    expect(lab.send(tcp(CL, 40000, VIP, 80, 'S'), { now: 7 }).dest).toBe(A);   // kept (mode 1 would pick B)
    expect(lab.p.counters().reused).toBe(1n);
  });

  it('a full table drops new connections and counts them; expired entries make room', () => {
    const lab = new Lab({ connLog2: 4 });
    lab.service({ protocol: 'udp', address: VIP, port: 53 }, [{ address: RS, port: 53 }]);
    for (let i = 0; i < 16; i++) expect(lab.send(udp(CL, 1000 + i, VIP, 53), { now: 0 }).verdict).toBe(V.FORWARD);
    const s = lab.send(udp(CL, 2000, VIP, 53), { now: 0 });
    expect(s.verdict).toBe(V.DROP);
    expect(lab.p.counters().table_full).toBe(1n);
    lab.p.expire(300_000);
    expect(lab.send(udp(CL, 2000, VIP, 53), { now: 300_000 }).verdict).toBe(V.FORWARD);
  });
});
