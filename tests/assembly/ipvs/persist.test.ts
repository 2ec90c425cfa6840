// Persistence (ip_vs_sched_persist): templates keyed by the client masked with the netmask, port-zero
// and fwmark services, the template's life, invalidation, expire_quiescent_template; and one-packet
// scheduling (-o), which keeps no entry.
import { describe, it, expect } from 'vitest';
import { Lab, V, tcp, udp } from './harness';

const VIP = '198.18.0.100';
const dests = [1, 2, 3].map((i) => ({ address: `198.18.1.${i}`, port: 8080 }));

describe('persistent services', () => {
  it('clients of one /24 share a destination through one template; others are scheduled', () => {
    const lab = new Lab();
    const { ids: [A, B, C] } = lab.service({ protocol: 'tcp', address: VIP, port: 80, scheduler: 'rr', persistent: 300, netmask: '255.255.255.0' }, dests);
    const a = lab.send(tcp('198.18.5.1', 1000, VIP, 80, 'S'));
    expect(a.dest).toBe(C);
    expect(a.result.flags & 2).toBe(2);                      // via a template
    expect(lab.send(tcp('198.18.5.77', 2000, VIP, 80, 'S')).dest).toBe(C);
    expect(lab.send(tcp('198.18.5.1', 1001, VIP, 80, 'S')).dest).toBe(C);
    expect(lab.send(tcp('198.18.6.1', 1000, VIP, 80, 'S')).dest).toBe(B);
    const templates = lab.p.connections(0).filter((c) => c.template);
    expect(templates.map((t) => [t.client, t.clientPort, t.virtualPort, t.destination, t.destinationPort, t.timeoutMs])).toEqual(
      expect.arrayContaining([['198.18.5.0', 0, 80, '198.18.1.3', 8080, 300_000], ['198.18.6.0', 0, 80, '198.18.1.2', 8080, 300_000]]));
    expect(templates.length).toBe(2);
    expect(lab.dest(C!)).toMatchObject({ persistConns: 1, activeConns: 3 });
    expect(A).toBeDefined();
  });

  it('the template outlives its timeout while it controls connections, then expires', () => {
    const lab = new Lab();
    const { ids: [, , C] } = lab.service({ protocol: 'tcp', address: VIP, port: 80, scheduler: 'rr', persistent: 100 }, dests);
    lab.send(tcp('198.18.5.1', 1000, VIP, 80, 'S'), { now: 0 });
    lab.send(tcp('198.18.5.1', 1000, VIP, 80, 'A'), { now: 0 });      // ESTABLISHED: 900 s
    lab.p.expire(150_000);                                             // template due at 100 s, but controls one
    const t = lab.p.connections(150_000).find((c) => c.template)!;
    expect(t).toMatchObject({ control: 1, expireMs: 100_000 });
    lab.send(tcp('198.18.5.1', 1000, VIP, 80, 'R'), { now: 200_000 });   // CLOSE: 10 s
    lab.p.expire(210_000);                                             // the connection goes
    expect(lab.p.connections(210_000).map((c) => c.template)).toEqual([true]);
    lab.p.expire(250_000);                                             // template, restarted at 150 s, due at 250 s
    expect(lab.p.connections(250_000)).toEqual([]);
    expect(lab.dest(C!)).toMatchObject({ persistConns: 0, activeConns: 0, inactConns: 0 });
  });

  it('each new connection restarts the template\'s timer', () => {
    const lab = new Lab();
    lab.service({ protocol: 'udp', address: VIP, port: 53, scheduler: 'rr', persistent: 100 }, dests);
    const first = lab.send(udp('198.18.5.1', 1, VIP, 53), { now: 0 }).dest;
    lab.send(udp('198.18.5.1', 2, VIP, 53), { now: 90_000 });
    lab.p.expire(350_000);        // UDP entries (300 s) from t=0 gone; the one from t=90 s is due at 390 s
    expect(lab.send(udp('198.18.5.1', 3, VIP, 53), { now: 380_000 }).dest).toBe(first);
  });

  it('port-zero services persist across ports; the packet keeps its port', () => {
    const lab = new Lab();
    lab.service({ protocol: 'tcp', address: VIP, port: 0, scheduler: 'rr', persistent: 60 }, dests.map((d) => ({ ...d, port: 0 })));
    const a = lab.send(tcp('198.18.5.1', 1000, VIP, 80, 'S'));
    const b = lab.send(tcp('198.18.5.1', 1001, VIP, 443, 'S'));
    expect(b.dest).toBe(a.dest);
    expect([a.pkt?.dport, b.pkt?.dport]).toEqual([80, 443]);
    const t = lab.p.connections(0).filter((c) => c.template);
    expect(t.map((x) => [x.virtualPort, x.destinationPort])).toEqual([[0, 0]]);
    // Port zero without persistence: "port zero only supported in persistent services" → refused.
    const lab2 = new Lab();
    lab2.service({ protocol: 'tcp', address: VIP, port: 0 }, dests);
    expect(lab2.send(tcp('198.18.5.1', 1000, VIP, 80, 'S')).verdict).toBe(V.REPLY);
  });

  it('fwmark services key templates on the mark: any address and port of the mark share', () => {
    const lab = new Lab();
    lab.service({ fwmark: 9, scheduler: 'rr', persistent: 60 }, dests.map((d) => ({ ...d, port: 0 })));
    const a = lab.send(tcp('198.18.5.1', 1000, VIP, 80, 'S'), { mark: 9 });
    const b = lab.send(udp('198.18.5.1', 1000, '198.18.0.200', 5353), { mark: 9 });
    expect(a.dest).not.toBe(0xffffffff);
    expect(b.dest).toBe(a.dest);
    const t = lab.p.connections(0).filter((c) => c.template);
    expect(t.map((x) => [x.protocol, x.virtual, x.virtualPort])).toEqual([['ip', '0.0.0.9', 0]]);
    expect(lab.send(tcp('198.18.5.1', 1009, VIP, 80, 'S'), { mark: 8 }).verdict).toBe(V.NOT_IPVS);
  });

  it('IPv6: a /64 prefix groups clients', () => {
    const lab = new Lab();
    lab.service({ protocol: 'tcp', address: 'fd00::100', port: 80, scheduler: 'rr', persistent: 60, netmask: 64 },
      [1, 2, 3].map((i) => ({ address: `fd00::1:${i}`, port: 80 })));
    const a = lab.send(tcp('fd00:0:0:5::1', 1000, 'fd00::100', 80, 'S')).dest;
    expect(lab.send(tcp('fd00:0:0:5:ffff::9', 1000, 'fd00::100', 80, 'S')).dest).toBe(a);
    expect(lab.send(tcp('fd00:0:0:6::1', 1000, 'fd00::100', 80, 'S')).dest).not.toBe(a);
  });

  it('a template whose destination left is invalidated (vport 65535) and the client rescheduled', () => {
    const lab = new Lab();
    const { svc } = lab.service({ protocol: 'tcp', address: VIP, port: 80, scheduler: 'rr', persistent: 60 }, dests);
    const first = lab.send(tcp('198.18.5.1', 1000, VIP, 80, 'S')).dest;
    lab.p.deleteDest(svc, first);
    const again = lab.send(tcp('198.18.5.1', 1001, VIP, 80, 'S')).dest;
    expect(again).not.toBe(first);
    const t = lab.p.connections(0).filter((c) => c.template).map((c) => [c.destId, c.virtualPort]);
    expect(t).toEqual(expect.arrayContaining([[first, 65535], [again, 80]]));
    expect(lab.p.counters().template_invalid).toBe(1n);
  });

  it('a quiescent destination keeps its persistent clients unless expire_quiescent_template', () => {
    const lab = new Lab();
    const { svc } = lab.service({ protocol: 'tcp', address: VIP, port: 80, scheduler: 'rr', persistent: 60 }, dests);
    const first = lab.send(tcp('198.18.5.1', 1000, VIP, 80, 'S')).dest;
    lab.p.editDest(svc, first, { weight: 0 });
    expect(lab.send(tcp('198.18.5.1', 1001, VIP, 80, 'S')).dest).toBe(first);
    lab.p.setSysctl('expire_quiescent_template', 1);
    expect(lab.send(tcp('198.18.5.1', 1002, VIP, 80, 'S')).dest).not.toBe(first);
  });
});

describe('one-packet scheduling (-o)', () => {
  it('UDP datagrams are scheduled one by one and leave no entry', () => {
    const lab = new Lab();
    const { ids: [A, B] } = lab.service({ protocol: 'udp', address: VIP, port: 53, scheduler: 'rr', onePacket: true },
      [{ address: '198.18.1.1', port: 53 }, { address: '198.18.1.2', port: 53 }]);
    const got = [0, 1, 2, 3].map(() => lab.send(udp('198.18.5.1', 5000, VIP, 53)));
    expect(got.map((s) => s.dest)).toEqual([B, A, B, A]);
    expect(got.every((s) => s.verdict === V.FORWARD && (s.result.flags & 4) === 4)).toBe(true);
    expect(lab.p.connections(0)).toEqual([]);
    expect(lab.dest(A!)).toMatchObject({ activeConns: 0, inactConns: 0 });
    expect(lab.p.destStats(A!).conns).toBe(2n);
    expect(lab.p.counters().one_packet).toBe(4n);
  });

  it('-o does not apply to TCP', () => {
    const lab = new Lab();
    lab.service({ protocol: 'tcp', address: VIP, port: 80, onePacket: true }, [{ address: '198.18.1.1', port: 80 }]);
    lab.send(tcp('198.18.5.1', 5000, VIP, 80, 'S'));
    expect(lab.p.connections(0).length).toBe(1);
  });
});
