// Destinations: upper/lower thresholds and IP_VS_DEST_F_OVERLOAD (ip_vs_bind_dest / ip_vs_unbind_dest
// / __ip_vs_update_dest), quiescent weight 0, removal to the trash, revival, expire_nodest_conn.
import { describe, it, expect } from 'vitest';
import { Lab, V, R, tcp, udp } from './harness';

const VIP = '198.18.0.100';
const CL = (i: number) => `198.18.7.${i}`;

function foLab(upper: number, lower: number) {
  const lab = new Lab();
  // fo: everything to the highest weight (A) until it is overloaded, then to B.
  const { svc, ids: [B, A] } = lab.service({ protocol: 'tcp', address: VIP, port: 80, scheduler: 'fo' },
    [{ address: '198.18.1.2', port: 80, weight: 1 }, { address: '198.18.1.1', port: 80, weight: 5, upperThreshold: upper, lowerThreshold: lower }]);
  return { lab, svc, A: A!, B: B! };
}

describe('thresholds', () => {
  it('overload at the upper threshold; with no lower one it clears below 3/4 of the upper', () => {
    const { lab, A, B } = foLab(3, 0);
    expect(lab.send(tcp(CL(1), 1000, VIP, 80, 'S'), { now: 0 }).dest).toBe(A);
    expect(lab.send(tcp(CL(2), 1000, VIP, 80, 'S'), { now: 1000 }).dest).toBe(A);
    expect(lab.dest(A).overloaded).toBe(false);
    expect(lab.send(tcp(CL(3), 1000, VIP, 80, 'S'), { now: 1000 }).dest).toBe(A);   // 3 ≥ 3: overloaded
    expect(lab.dest(A)).toMatchObject({ overloaded: true, activeConns: 3 });
    expect(lab.send(tcp(CL(4), 1000, VIP, 80, 'S'), { now: 1000 }).dest).toBe(B);
    // SYN_RECV entries live 60 s: the first goes at 60 s → A has 2: 2·4 = 8 < 3·3 = 9 → clear.
    lab.p.expire(60_000);
    expect(lab.dest(A)).toMatchObject({ overloaded: false, activeConns: 2 });
    expect(lab.send(tcp(CL(5), 1000, VIP, 80, 'S'), { now: 60_000 }).dest).toBe(A);
  });

  it('with upper 4 and no lower, 3 connections are not enough to clear (3·4 = 12 ≥ 12)', () => {
    const { lab, A } = foLab(4, 0);
    for (let i = 1; i <= 4; i++) lab.send(tcp(CL(i), 1000, VIP, 80, 'S'), { now: i === 1 ? 0 : 1000 });
    expect(lab.dest(A).overloaded).toBe(true);
    lab.p.expire(60_000);
    expect(lab.dest(A)).toMatchObject({ overloaded: true, activeConns: 3 });
    lab.p.expire(61_000);
    expect(lab.dest(A)).toMatchObject({ overloaded: false, activeConns: 0 });
  });

  it('a lower threshold holds the overload until the count is below it', () => {
    const { lab, A, B } = foLab(3, 2);
    lab.send(tcp(CL(1), 1000, VIP, 80, 'S'), { now: 0 });
    lab.send(tcp(CL(2), 1000, VIP, 80, 'S'), { now: 1000 });
    lab.send(tcp(CL(3), 1000, VIP, 80, 'S'), { now: 1000 });
    lab.p.expire(60_000);                              // 2 left: not < 2
    expect(lab.dest(A).overloaded).toBe(true);
    expect(lab.send(tcp(CL(4), 1000, VIP, 80, 'S'), { now: 60_000 }).dest).toBe(B);
    lab.p.expire(61_000);
    expect(lab.dest(A).overloaded).toBe(false);
  });

  it('raising the upper threshold (or setting it to 0) clears the overload at once', () => {
    const { lab, svc, A } = foLab(1, 0);
    lab.send(tcp(CL(1), 1000, VIP, 80, 'S'), { now: 0 });
    expect(lab.dest(A).overloaded).toBe(true);
    lab.p.editDest(svc, A, { weight: 5, upperThreshold: 1 });    // same: stays
    expect(lab.dest(A).overloaded).toBe(true);
    lab.p.editDest(svc, A, { weight: 5, upperThreshold: 2 });
    expect(lab.dest(A).overloaded).toBe(false);
  });

  it('an edit of the thresholds works the overload out again from the connections at once', () => {
    // Raised from 4 to 5 at 4 connections: 4 is not below the new lower threshold (5 - 5>>2 = 4), so A stays overloaded.
    const { lab, svc, A, B } = foLab(4, 0);
    for (let i = 1; i <= 4; i++) lab.send(tcp(CL(i), 1000, VIP, 80, 'S'), { now: 0 });
    expect(lab.dest(A).overloaded).toBe(true);
    lab.p.editDest(svc, A, { weight: 5, upperThreshold: 5 });
    expect(lab.dest(A).overloaded).toBe(true);
    expect(lab.send(tcp(CL(5), 1000, VIP, 80, 'S'), { now: 0 }).dest).toBe(B);
    // Lowered to 3 under 2 connections of another destination: it is overloaded before its next one.
    const low = foLab(0, 0);
    low.lab.send(tcp(CL(1), 1000, VIP, 80, 'S'), { now: 0 });
    low.lab.send(tcp(CL(2), 1000, VIP, 80, 'S'), { now: 0 });
    expect(low.lab.dest(low.A)).toMatchObject({ overloaded: false, activeConns: 2 });
    low.lab.p.editDest(low.svc, low.A, { weight: 5, upperThreshold: 2 });
    expect(low.lab.dest(low.A).overloaded).toBe(true);
    expect(low.lab.send(tcp(CL(3), 1000, VIP, 80, 'S'), { now: 0 }).dest).toBe(low.B);
  });

  it('a lower threshold above the upper one is refused, with no upper threshold too (-ERANGE)', () => {
    const { lab, svc, A } = foLab(0, 0);
    expect(() => lab.p.editDest(svc, A, { weight: 5, upperThreshold: 0, lowerThreshold: 2 })).toThrow();
    expect(() => lab.p.editDest(svc, A, { weight: 5, upperThreshold: 3, lowerThreshold: 4 })).toThrow();
    lab.p.editDest(svc, A, { weight: 5, upperThreshold: 3, lowerThreshold: 3 });
  });

  it('persistence templates do not count towards the threshold', () => {
    const lab = new Lab();
    const { ids: [A] } = lab.service({ protocol: 'tcp', address: VIP, port: 80, persistent: 60 },
      [{ address: '198.18.1.1', port: 80, upperThreshold: 2 }]);
    lab.send(tcp(CL(1), 1000, VIP, 80, 'S'));
    expect(lab.dest(A!)).toMatchObject({ activeConns: 1, persistConns: 1, overloaded: false });
  });
});

describe('quiescent destinations and removal', () => {
  it('weight 0 keeps existing connections flowing but takes no new ones', () => {
    const lab = new Lab();
    const { svc, ids: [A, B] } = lab.service({ protocol: 'tcp', address: VIP, port: 80, scheduler: 'rr' },
      [{ address: '198.18.1.1', port: 80 }, { address: '198.18.1.2', port: 80 }]);
    expect(lab.send(tcp(CL(1), 1000, VIP, 80, 'S')).dest).toBe(B);
    lab.p.editDest(svc, B!, { weight: 0 });
    const s = lab.send(tcp(CL(1), 1000, VIP, 80, 'A'));
    expect([s.verdict, s.dest]).toEqual([V.FORWARD, B]);
    for (let i = 2; i < 6; i++) expect(lab.send(tcp(CL(i), 1000, VIP, 80, 'S')).dest).toBe(A);
  });

  it('with expire_nodest_conn a SYN on an entry to a quiescent destination reschedules', () => {
    const lab = new Lab();
    const { svc, ids: [A, B] } = lab.service({ protocol: 'tcp', address: VIP, port: 80, scheduler: 'rr' },
      [{ address: '198.18.1.1', port: 80 }, { address: '198.18.1.2', port: 80 }]);
    lab.send(tcp(CL(1), 1000, VIP, 80, 'S'));
    lab.p.editDest(svc, B!, { weight: 0 });
    expect(lab.send(tcp(CL(1), 1000, VIP, 80, 'S')).dest).toBe(B);
    lab.p.setSysctl('expire_nodest_conn', 1);
    expect(lab.send(tcp(CL(1), 1000, VIP, 80, 'S')).dest).toBe(A);
  });

  it('expire_nodest_conn reschedules a SYN on a quiescent destination with conn_reuse_mode 0 too', () => {
    const lab = new Lab();
    const { svc, ids: [A, B] } = lab.service({ protocol: 'tcp', address: VIP, port: 80, scheduler: 'rr' },
      [{ address: '198.18.1.1', port: 80 }, { address: '198.18.1.2', port: 80 }]);
    lab.p.setSysctl('conn_reuse_mode', 0);
    lab.p.setSysctl('expire_nodest_conn', 1);
    expect(lab.send(tcp(CL(1), 1000, VIP, 80, 'S')).dest).toBe(B);
    lab.p.editDest(svc, B!, { weight: 0 });
    expect(lab.send(tcp(CL(1), 1000, VIP, 80, 'S')).dest).toBe(A);
  });

  it('a removed destination: its connections are dropped; re-adding it revives them (trash)', () => {
    const lab = new Lab();
    const { svc, ids: [A] } = lab.service({ protocol: 'tcp', address: VIP, port: 80 }, [{ address: '198.18.1.1', port: 80 }, { address: '198.18.1.2', port: 80 }]);
    const first = lab.send(tcp(CL(1), 1000, VIP, 80, 'S')).dest;
    lab.p.deleteDest(svc, first);
    expect(lab.dest(first)).toMatchObject({ trashed: true, available: false, activeConns: 1 });
    const s = lab.send(tcp(CL(1), 1000, VIP, 80, 'A'));
    expect([s.verdict, s.reason]).toEqual([V.DROP, R.NO_ENDPOINTS]);
    expect(lab.p.counters().dest_unavailable).toBe(1n);
    const again = lab.p.addDest(svc, { address: lab.dest(first).address, port: 80 });
    expect(again).toBe(first);
    expect(lab.send(tcp(CL(1), 1000, VIP, 80, 'A')).verdict).toBe(V.FORWARD);
    expect(lab.dest(first)).toMatchObject({ trashed: false, available: true, activeConns: 1 });
    expect(A).not.toBe(undefined);
  });

  it('a trashed destination with no entries left is freed; expire_nodest_conn drops its entries', () => {
    const lab = new Lab();
    const { svc } = lab.service({ protocol: 'tcp', address: VIP, port: 80 }, [{ address: '198.18.1.1', port: 80 }]);
    const d = lab.send(tcp(CL(1), 1000, VIP, 80, 'S')).dest;
    lab.p.deleteDest(svc, d);
    lab.p.setSysctl('expire_nodest_conn', 1);
    lab.send(tcp(CL(1), 1000, VIP, 80, 'A'));
    expect(lab.p.connections(0)).toEqual([]);
    expect(() => lab.dest(d)).toThrow(/no such/);
  });

  it('expire_nodest_conn: a packet with no netfilter connection of its own is scheduled anew at once, not dropped', () => {
    // IPVS alone tracks nothing in netfilter (ip_vs_conn_uses_old_conntrack: false): the entry
    // expires and the packet is the first of a new one (ip_vs_in → ip_vs_try_to_schedule).
    const lab = new Lab();
    const { svc, ids: [A, B] } = lab.service({ protocol: 'udp', address: VIP, port: 53, scheduler: 'rr' },
      [{ address: '198.18.1.1', port: 53 }, { address: '198.18.1.2', port: 53 }]);
    lab.p.setSysctl('expire_nodest_conn', 1);
    const first = lab.send(udp(CL(1), 5000, VIP, 53)).dest;
    lab.p.deleteDest(svc, first);
    const s = lab.send(udp(CL(1), 5000, VIP, 53));
    expect([s.verdict, s.dest]).toEqual([V.FORWARD, first === A ? B : A]);
    expect(lab.p.counters().dest_unavailable).toBe(1n);
    // A TCP segment that is no SYN is then not scheduled: it goes on untouched.
    const t = lab.service({ protocol: 'tcp', address: VIP, port: 80 }, [{ address: '198.18.1.3', port: 80 }, { address: '198.18.1.4', port: 80 }]);
    const d = lab.send(tcp(CL(2), 1000, VIP, 80, 'S')).dest;
    lab.p.deleteDest(t.svc, d);
    expect(lab.send(tcp(CL(2), 1000, VIP, 80, 'A')).verdict).toBe(V.PASS);
  });

  it('deleting a service keeps entries until they expire, then frees it', () => {
    const lab = new Lab({ services: 2 });
    const { svc } = lab.service({ protocol: 'tcp', address: VIP, port: 80 }, [{ address: '198.18.1.1', port: 80 }]);
    lab.send(tcp(CL(1), 1000, VIP, 80, 'S'));
    lab.p.deleteService(svc);
    expect(lab.p.services()).toEqual([]);
    // The deleted record is still held by its trashed destination: new services take others.
    const b = lab.p.addService({ protocol: 'tcp', address: VIP, port: 81 });
    const c = lab.p.addService({ protocol: 'tcp', address: VIP, port: 82 });
    expect([b, c]).not.toContain(svc);
    lab.p.expire(60_000);
    // Freed once the entry expired: the next service takes its record.
    expect(lab.p.addService({ protocol: 'tcp', address: VIP, port: 83 })).toBe(svc);
    expect(lab.p.services().length).toBe(3);
  });
});
