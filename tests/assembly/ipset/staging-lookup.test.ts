// Staged replacement (begin / commit / abort: packets see the old sets until commit, abort leaves
// them untouched) and the packet path: directions, dimensions, families, the proto:port a packet
// gives (TCP, UDP, SCTP, ICMP, other protocols, later fragments), bitmap:port's TCP/UDP rule.
import { describe, it, expect } from 'vitest';
import { SetCore, T, E, TEST, P, tcp, udp, sctp } from './harness';

describe('staging', () => {
  it('changes made between begin and commit are invisible to packets until commit', () => {
    const c = new SetCore();
    c.create(0, T.IP, 4);
    c.add(0, { a: '10.0.0.1' });
    const hit = (ip: string) => c.packet(0, 'dst', udp('198.18.0.1', ip, 1, 2));
    expect(c.x.ipsetBegin!()).toBe(0);
    expect(c.x.ipsetBegin!()).toBe(E.TXN);
    c.add(0, { a: '10.0.0.2' });
    c.del(0, { a: '10.0.0.1' });
    expect(c.create(1, T.NET, 4)).toBe(0);
    c.add(1, { a: '10.9.0.0', cidr: 16 });
    // The staged view answers control calls; packets still see the live sets.
    expect(c.test(0, { a: '10.0.0.2' })).toBe(TEST.PRESENT);
    expect(hit('10.0.0.2')).toBe(0);
    expect(hit('10.0.0.1')).toBe(1);
    expect(c.packet(1, 'dst', udp('198.18.0.1', '10.9.1.1', 1, 2))).toBe(-1);
    expect(c.x.ipsetCommit!()).toBe(0);
    expect(hit('10.0.0.2')).toBe(1);
    expect(hit('10.0.0.1')).toBe(0);
    expect(c.packet(1, 'dst', udp('198.18.0.1', '10.9.1.1', 1, 2))).toBe(1);
    expect(c.x.ipsetCommit!()).toBe(E.TXN);
    expect(c.x.ipsetAbort!()).toBe(E.TXN);
  });

  it('abort drops every staged change: adds, creates, destroys, swaps, renames, flushes', () => {
    const c = new SetCore();
    c.create(0, T.IP, 4);
    c.create(1, T.IP, 4);
    c.add(0, { a: '10.0.0.1' });
    c.add(1, { a: '10.0.0.2' });
    c.x.ipsetBegin!();
    c.add(0, { a: '10.0.0.3' });
    expect(c.x.ipsetSwap!(0, 1)).toBe(0);
    expect(c.x.ipsetFlush!(1)).toBe(0);
    expect(c.x.ipsetRename!(0, 5)).toBe(0);
    expect(c.create(2, T.IP, 6)).toBe(0);
    expect(c.x.ipsetDestroy!(2)).toBe(0);
    expect(c.x.ipsetAbort!()).toBe(0);
    expect(c.x.ipsetExists!(5)).toBe(0);
    expect(c.x.ipsetExists!(2)).toBe(0);
    expect(c.test(0, { a: '10.0.0.1' })).toBe(TEST.PRESENT);
    expect(c.test(0, { a: '10.0.0.3' })).toBe(TEST.ABSENT);
    expect(c.test(1, { a: '10.0.0.2' })).toBe(TEST.PRESENT);
  });

  it('swap and rename in a transaction land together at commit; a copy is made once per set', () => {
    const c = new SetCore();
    c.create(0, T.IP_PORT, 4);
    c.create(1, T.IP_PORT, 4);
    c.add(0, { a: '10.0.0.1', proto: P.TCP, port: 80 });
    c.x.ipsetBegin!();
    // The kube-proxy style refresh: fill a temporary set, swap it in, destroy the old one.
    c.add(1, { a: '10.0.0.9', proto: P.TCP, port: 80 });
    c.add(1, { a: '10.0.0.8', proto: P.TCP, port: 80 });
    expect(c.x.ipsetSwap!(0, 1)).toBe(0);
    expect(c.x.ipsetDestroy!(1)).toBe(0);
    expect(c.x.ipsetRename!(0, 3)).toBe(0);
    expect(c.x.ipsetRename!(3, 0)).toBe(0);
    expect(c.packet(0, 'dst,dst', tcp('198.18.0.1', '10.0.0.1', 1, 80))).toBe(1);
    expect(c.x.ipsetCommit!()).toBe(0);
    expect(c.packet(0, 'dst,dst', tcp('198.18.0.1', '10.0.0.1', 1, 80))).toBe(0);
    expect(c.packet(0, 'dst,dst', tcp('198.18.0.1', '10.0.0.9', 1, 80))).toBe(1);
    expect(c.x.ipsetExists!(1)).toBe(0);
    expect(c.x.ipsetCount!(0, 1000)).toBe(2);
  });

  it('repeated staged rounds keep working (copies freed at commit and abort)', () => {
    const c = new SetCore();
    c.create(0, T.IP, 4);
    for (let round = 0; round < 200; round++) {
      c.x.ipsetBegin!();
      c.add(0, { a: `10.0.${round >> 8}.${round & 255}` }, { exist: true });
      if (round % 2) c.x.ipsetAbort!(); else c.x.ipsetCommit!();
    }
    expect(c.x.ipsetCount!(0, 1000)).toBe(100);
    const pages = c.core.memory.buffer.byteLength;
    for (let round = 0; round < 200; round++) {
      c.x.ipsetBegin!();
      c.add(0, { a: '10.9.9.9' }, { exist: true });
      c.x.ipsetAbort!();
    }
    expect(c.core.memory.buffer.byteLength).toBe(pages);
  });
});

describe('packet path', () => {
  it('directions: src / dst per dimension; fewer directions than the dimension never match', () => {
    const c = new SetCore();
    c.create(0, T.IP_PORT, 4);
    c.add(0, { a: '10.96.0.10', proto: P.TCP, port: 443 });
    const p = tcp('10.244.1.5', '10.96.0.10', 40000, 443);
    expect(c.packet(0, 'dst,dst', p)).toBe(1);
    expect(c.packet(0, 'src,dst', p)).toBe(0);
    expect(c.packet(0, 'dst,src', p)).toBe(0);
    expect(c.packet(0, 'dst', p)).toBe(0);
    expect(c.packet(0, 'dst,dst,src', p)).toBe(1);
    expect(c.packet(0, 'src,src', tcp('10.96.0.10', '10.244.1.5', 443, 40000))).toBe(1);
    expect(c.packet(7, 'dst,dst', p)).toBe(-1);
  });

  it('a set of the other family never matches; bitmap:port serves both', () => {
    const c = new SetCore();
    c.create(0, T.IP, 6);
    c.create(1, T.BITMAP_PORT, 0, { first: 0, last: 65535 });
    c.add(0, { a: '::ffff:10.0.0.1' });
    c.add(1, { port: 30080 });
    expect(c.packet(0, 'dst', udp('198.18.0.1', '10.0.0.1', 1, 2))).toBe(0);
    expect(c.packet(1, 'dst', tcp('198.18.0.1', '10.0.0.1', 1, 30080))).toBe(1);
    expect(c.packet(1, 'dst', tcp('fd00::1', 'fd00::2', 1, 30080))).toBe(1);
    expect(c.packet(1, 'src', tcp('fd00::1', 'fd00::2', 1, 30080))).toBe(0);
  });

  it('bitmap:port answers TCP and UDP only (ip_set_get_ip_port)', () => {
    const c = new SetCore();
    c.create(0, T.BITMAP_PORT, 0, { first: 30000, last: 32767 });
    c.add(0, { port: 30080 });
    expect(c.packet(0, 'dst', udp('198.18.0.1', '198.18.0.2', 1, 30080))).toBe(1);
    expect(c.packet(0, 'dst', sctp('198.18.0.1', '198.18.0.2', 1, 30080))).toBe(0);
    expect(c.packet(0, 'dst', tcp('198.18.0.1', '198.18.0.2', 1, 29999))).toBe(0);
  });

  it('proto:port from the packet: SCTP ports, ICMP type/code, other protocols as port 0', () => {
    const c = new SetCore();
    c.create(0, T.IP_PORT, 4);
    c.create(1, T.IP_PORT, 6);
    c.add(0, { a: '10.0.0.1', proto: P.SCTP, port: 3868 });
    c.add(0, { a: '10.0.0.2', proto: P.ICMP, port: 8 << 8 });
    c.add(0, { a: '10.0.0.3', proto: P.GRE, port: 0 });
    c.add(1, { a: 'fd00::1', proto: P.ICMPV6, port: 128 << 8 });
    expect(c.packet(0, 'dst,dst', sctp('198.18.0.1', '10.0.0.1', 5, 3868))).toBe(1);
    expect(c.packet(0, 'dst,dst', tcp('198.18.0.1', '10.0.0.1', 5, 3868))).toBe(0);
    const ping = (dst: string, type: number) => ({ src: '198.18.0.1', dst, proto: 'icmp' as const, icmp: { type, code: 0, id: 7, seq: 1 } });
    expect(c.packet(0, 'dst,dst', ping('10.0.0.2', 8))).toBe(1);
    expect(c.packet(0, 'dst,src', ping('10.0.0.2', 8))).toBe(1);   // ICMP: the same "port" either way
    expect(c.packet(0, 'dst,dst', ping('10.0.0.2', 0))).toBe(0);
    expect(c.packet(0, 'dst,dst', { src: '198.18.0.1', dst: '10.0.0.3', proto: 47, payload: 'gre!' })).toBe(1);
    expect(c.packet(1, 'dst,dst', { src: 'fd00::9', dst: 'fd00::1', proto: 'icmpv6', icmp: { type: 128, code: 0, id: 1, seq: 1 } })).toBe(1);
  });

  it('a later fragment has no port: ip,port types do not match it, other protocols still do', () => {
    const c = new SetCore();
    c.create(0, T.IP_PORT, 4);
    c.create(1, T.IP, 4);
    c.add(0, { a: '10.0.0.1', proto: P.UDP, port: 0 });
    c.add(0, { a: '10.0.0.3', proto: P.GRE, port: 0 });
    c.add(1, { a: '10.0.0.1' });
    const later = (dst: string, proto: 'udp' | number) => ({ src: '198.18.0.1', dst, proto, frag: { offset: 8, more: false }, payload: 'abcdefgh' });
    expect(c.packet(0, 'dst,dst', later('10.0.0.1', 'udp'))).toBe(0);
    expect(c.packet(0, 'dst,dst', later('10.0.0.3', 47))).toBe(1);
    expect(c.packet(1, 'dst', later('10.0.0.1', 'udp'))).toBe(1);
  });

  it('hash:ip,port,ip reads the third dimension (kube-proxy KUBE-LOOP-BACK dst,dst,src)', () => {
    const c = new SetCore();
    c.create(0, T.IP_PORT_IP, 4);
    c.add(0, { a: '10.244.1.5', proto: P.TCP, port: 8443, b: '10.244.1.5' });
    expect(c.packet(0, 'dst,dst,src', tcp('10.244.1.5', '10.244.1.5', 40000, 8443))).toBe(1);
    expect(c.packet(0, 'dst,dst,src', tcp('10.244.1.6', '10.244.1.5', 40000, 8443))).toBe(0);
  });
});
