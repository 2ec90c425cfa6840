// Prefix search of the net types (longest stored prefix first; a nomatch element answers "no" and
// stops the search; an expired one does not answer) and element timeouts on a fake clock: expiry
// strictly after now + timeout, per-element and default timeouts, 0 = permanent, -exist renewing,
// expired elements replaced by add and "not added" for del, u32 wrap-around, reaping, counters.
import { describe, it, expect } from 'vitest';
import { SetCore, T, CF, EF, E, TEST, R, P } from './harness';

describe('prefix search (ip_set_hash_gen.h mtype_test_cidrs)', () => {
  it('tries the longest stored prefix first; nomatch excludes a hole from a wider network', () => {
    const c = new SetCore();
    c.create(0, T.NET, 4);
    c.add(0, { a: '10.0.0.0', cidr: 8 });
    c.add(0, { a: '10.1.0.0', cidr: 16, flags: EF.NOMATCH });
    c.add(0, { a: '10.1.2.0', cidr: 24 });
    const t = (ip: string) => c.test(0, { a: ip, cidr: 32 });
    expect(t('10.1.2.3')).toBe(TEST.PRESENT);   // /24 answers before the /16 hole
    expect(t('10.1.3.3')).toBe(TEST.NOMATCH);   // the /16 nomatch answers before the /8
    expect(t('10.2.0.1')).toBe(TEST.PRESENT);   // only the /8
    expect(t('11.0.0.1')).toBe(TEST.ABSENT);
    expect(c.packet(0, 'dst', { src: '198.18.0.1', dst: '10.1.2.3', proto: 'udp', sport: 1, dport: 2 })).toBe(1);
    expect(c.packet(0, 'dst', { src: '198.18.0.1', dst: '10.1.3.3', proto: 'udp', sport: 1, dport: 2 })).toBe(0);
    expect(c.packet(0, 'dst', { src: '198.18.0.1', dst: '10.2.0.1', proto: 'udp', sport: 1, dport: 2 })).toBe(1);
    // Deleting the hole lets the /8 answer.
    c.del(0, { a: '10.1.0.0', cidr: 16 });
    expect(t('10.1.3.3')).toBe(TEST.PRESENT);
    expect(c.x.setPrefixes!(0)).toBe(2);
  });

  it('an exact test of a network does not search; a host-length test does', () => {
    const c = new SetCore();
    c.create(0, T.NET, 6);
    c.add(0, { a: 'fd00::', cidr: 16 });
    expect(c.test(0, { a: 'fd00:1::', cidr: 32 })).toBe(TEST.ABSENT);
    expect(c.test(0, { a: 'fd00:1::1', cidr: 128 })).toBe(TEST.PRESENT);
    expect(c.packet(0, 'src', { src: 'fd00:abcd::1', dst: 'fd01::1', proto: 'tcp', sport: 1, dport: 2 })).toBe(1);
    expect(c.packet(0, 'dst', { src: 'fd00:abcd::1', dst: 'fd01::1', proto: 'tcp', sport: 1, dport: 2 })).toBe(0);
  });

  it('an expired longer prefix does not answer: the search goes on to shorter ones', () => {
    const c = new SetCore();
    c.create(0, T.NET, 4, { flags: CF.TIMEOUT, timeout: 0 });
    c.add(0, { a: '10.0.0.0', cidr: 8 }, { now: 0 });
    c.add(0, { a: '10.1.0.0', cidr: 16, flags: EF.NOMATCH | EF.TIMEOUT, timeout: 10 }, { now: 0 });
    expect(c.test(0, { a: '10.1.0.1', cidr: 32 }, 5000)).toBe(TEST.NOMATCH);
    expect(c.test(0, { a: '10.1.0.1', cidr: 32 }, 10001)).toBe(TEST.PRESENT);
  });

  it('hash:ip,port,net searches the net part only, after an exact ip and proto:port', () => {
    const c = new SetCore();
    c.create(0, T.IP_PORT_NET, 4);
    c.add(0, { a: '10.96.0.1', proto: P.TCP, port: 80, b: '10.244.0.0', cidr: 16 });
    c.add(0, { a: '10.96.0.1', proto: P.TCP, port: 80, b: '10.244.1.0', cidr: 24, flags: EF.NOMATCH });
    const pk = (src: string, dport: number, proto: 'tcp' | 'udp' = 'tcp') =>
      c.packet(0, 'dst,dst,src', { src, dst: '10.96.0.1', proto, sport: 4000, dport });
    expect(pk('10.244.7.7', 80)).toBe(1);
    expect(pk('10.244.1.7', 80)).toBe(0);       // the /24 nomatch
    expect(pk('10.245.0.1', 80)).toBe(0);
    expect(pk('10.244.7.7', 81)).toBe(0);
    expect(pk('10.244.7.7', 80, 'udp')).toBe(0);
    expect(c.test(0, { a: '10.96.0.1', proto: P.TCP, port: 80, b: '10.244.9.9', cidr: 32 })).toBe(TEST.PRESENT);
  });
});

describe('timeouts (fake clock)', () => {
  it('an element lives until strictly after now + timeout; 0 is permanent; the set default applies', () => {
    const c = new SetCore();
    c.create(0, T.IP, 4, { flags: CF.TIMEOUT, timeout: 10 });
    c.add(0, { a: '10.0.0.1' }, { now: 1000 });
    c.add(0, { a: '10.0.0.2', flags: EF.TIMEOUT, timeout: 3 }, { now: 1000 });
    c.add(0, { a: '10.0.0.3', flags: EF.TIMEOUT, timeout: 0 }, { now: 1000 });
    expect(c.test(0, { a: '10.0.0.2' }, 4000)).toBe(TEST.PRESENT);
    expect(c.test(0, { a: '10.0.0.2' }, 4001)).toBe(TEST.ABSENT);
    expect(c.x.ipsetCount!(0, 4001)).toBe(2);
    const u = { src: '198.18.0.1', dst: '10.0.0.2', proto: 'udp' as const, sport: 1, dport: 2 };
    expect(c.packet(0, 'dst', u, 3999)).toBe(1);
    expect(c.packet(0, 'dst', u, 4001)).toBe(0);
    expect(c.test(0, { a: '10.0.0.1' }, 11000)).toBe(TEST.PRESENT);
    expect(c.test(0, { a: '10.0.0.1' }, 11001)).toBe(TEST.ABSENT);
    // Weeks later (the clock runs forward only): the permanent element is still there.
    expect(c.test(0, { a: '10.0.0.3' }, 2_000_000_000)).toBe(TEST.PRESENT);
    expect(c.get(0, { a: '10.0.0.3' })!.flags & R.EXPIRES).toBe(0);
    expect(c.x.ipsetCount!(0, 2_000_000_000)).toBe(1);
  });

  it('-exist re-add renews the timeout; an expired element is replaced by a plain add, and del calls it absent', () => {
    const c = new SetCore();
    c.create(0, T.IP, 4, { flags: CF.TIMEOUT, timeout: 5 });
    c.add(0, { a: '10.0.0.1' }, { now: 0 });
    expect(c.add(0, { a: '10.0.0.1' }, { now: 4000 })).toBe(E.EXIST);
    expect(c.add(0, { a: '10.0.0.1' }, { now: 4000, exist: true })).toBe(0);
    expect(c.test(0, { a: '10.0.0.1' }, 8000)).toBe(TEST.PRESENT);
    expect(c.test(0, { a: '10.0.0.1' }, 9001)).toBe(TEST.ABSENT);
    expect(c.del(0, { a: '10.0.0.1' }, { now: 9001 })).toBe(E.NOT_EXIST);
    c.add(0, { a: '10.0.0.2' }, { now: 0 });
    expect(c.add(0, { a: '10.0.0.2' }, { now: 6000 })).toBe(0);
    expect(c.test(0, { a: '10.0.0.2' }, 10000)).toBe(TEST.PRESENT);
  });

  it('orders times across the u32 wrap', () => {
    const c = new SetCore();
    c.create(0, T.IP, 4, { flags: CF.TIMEOUT, timeout: 10 });
    const near = 2 ** 32 - 2000;
    c.add(0, { a: '10.0.0.1' }, { now: near });
    expect(c.test(0, { a: '10.0.0.1' }, 2 ** 32 + 7000)).toBe(TEST.PRESENT);
    expect(c.test(0, { a: '10.0.0.1' }, 2 ** 32 + 8001)).toBe(TEST.ABSENT);
  });

  it('reap removes expired elements (hash and bitmap) and a full set reaps before refusing', () => {
    const c = new SetCore();
    c.create(0, T.IP, 4, { flags: CF.TIMEOUT, timeout: 1, maxelem: 40 });
    c.create(1, T.BITMAP_PORT, 0, { flags: CF.TIMEOUT, timeout: 1, first: 0, last: 1023 });
    for (let i = 1; i <= 40; i++) c.add(0, { a: `10.0.0.${i}`, ...(i % 2 ? {} : { flags: EF.TIMEOUT, timeout: 0 }) }, { now: 0 });
    for (let p = 0; p < 10; p++) c.add(1, { port: p }, { now: 0 });
    expect(c.add(0, { a: '10.0.1.1' }, { now: 500 })).toBe(E.FULL);
    expect(c.add(0, { a: '10.0.1.1' }, { now: 5000 })).toBe(0);   // the 20 expired ones went first
    expect(c.x.setHeld!(0)).toBe(21);
    expect(c.x.setHeld!(1)).toBe(10);
    expect(c.x.ipsetReap!(5000, 1 << 16)).toBe(10);
    expect(c.x.setHeld!(1)).toBe(0);
    for (let i = 2; i <= 40; i += 2) expect(c.test(0, { a: `10.0.0.${i}` }, 5000)).toBe(TEST.PRESENT);
  });
});

describe('counters', () => {
  it('start at the given values, count matched packets with their length, and stay in a trace', () => {
    const c = new SetCore();
    c.create(0, T.IP_PORT, 4, { flags: CF.COUNTERS });
    c.add(0, { a: '10.96.0.10', proto: P.UDP, port: 53, flags: EF.PACKETS | EF.BYTES, packets: 5n, bytes: 100n });
    c.add(0, { a: '10.96.0.11', proto: P.UDP, port: 53 });
    const q = { src: '10.244.0.5', dst: '10.96.0.10', proto: 'udp' as const, sport: 3333, dport: 53, payload: 'x'.repeat(12) };
    expect(c.packet(0, 'dst,dst', q)).toBe(1);
    expect(c.packet(0, 'dst,dst', q)).toBe(1);
    expect(c.packet(0, 'dst,dst', q, 1000, true)).toBe(1);
    expect(c.get(0, { a: '10.96.0.10', proto: P.UDP, port: 53 })).toMatchObject({ packets: 7n, bytes: 100n + 2n * 40n });
    expect(c.get(0, { a: '10.96.0.11', proto: P.UDP, port: 53 })).toMatchObject({ packets: 0n, bytes: 0n });
    // -exist without values keeps the counters (ip_set_init_counter); with values sets them.
    c.add(0, { a: '10.96.0.10', proto: P.UDP, port: 53 }, { exist: true });
    expect(c.get(0, { a: '10.96.0.10', proto: P.UDP, port: 53 })!.packets).toBe(7n);
    c.add(0, { a: '10.96.0.10', proto: P.UDP, port: 53, flags: EF.PACKETS, packets: 1n }, { exist: true });
    expect(c.get(0, { a: '10.96.0.10', proto: P.UDP, port: 53 })!.packets).toBe(1n);
  });
});
