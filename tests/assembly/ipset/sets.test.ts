// The ipset core's set types through the raw ABI: add / test / del for every type in both families,
// the element checks (null, unmasked or out-of-range prefixes, protocols without ports, IPv4 words),
// -exist, maxelem, bitmap:port ranges, growth past the first table and deletion by backward shift.
import { describe, it, expect } from 'vitest';
import { SetCore, T, CF, EF, E, TEST, P } from './harness';

describe('hash:ip', () => {
  it('adds, tests and deletes IPv4 and IPv6 addresses', () => {
    const c = new SetCore();
    expect(c.create(0, T.IP, 4)).toBe(0);
    expect(c.create(1, T.IP, 6)).toBe(0);
    expect(c.add(0, { a: '10.0.0.1' })).toBe(0);
    expect(c.add(1, { a: 'fd00::1' })).toBe(0);
    expect(c.test(0, { a: '10.0.0.1' })).toBe(TEST.PRESENT);
    expect(c.test(0, { a: '10.0.0.2' })).toBe(TEST.ABSENT);
    expect(c.test(1, { a: 'fd00::1' })).toBe(TEST.PRESENT);
    expect(c.test(1, { a: 'fd00::2' })).toBe(TEST.ABSENT);
    expect(c.del(0, { a: '10.0.0.1' })).toBe(0);
    expect(c.test(0, { a: '10.0.0.1' })).toBe(TEST.ABSENT);
    expect(c.del(1, { a: 'fd00::1' })).toBe(0);
    expect(c.x.ipsetCount!(1, 1000)).toBe(0);
  });

  it('refuses duplicates unless -exist, deletions of absent elements unless -exist, and the zero address', () => {
    const c = new SetCore();
    c.create(0, T.IP, 4);
    expect(c.add(0, { a: '10.0.0.1' })).toBe(0);
    expect(c.add(0, { a: '10.0.0.1' })).toBe(E.EXIST);
    expect(c.add(0, { a: '10.0.0.1' }, { exist: true })).toBe(0);
    expect(c.x.ipsetCount!(0, 1000)).toBe(1);
    expect(c.del(0, { a: '10.0.0.9' })).toBe(E.NOT_EXIST);
    expect(c.del(0, { a: '10.0.0.9' }, { exist: true })).toBe(0);
    expect(c.add(0, { a: '0.0.0.0' })).toBe(E.NULL);
  });

  it('refuses an IPv4 element with the IPv6 words set, and fields the type does not have', () => {
    const c = new SetCore();
    c.create(0, T.IP, 4);
    expect(c.add(0, { a: 'fd00::1' })).toBe(E.ARG);
    expect(c.add(0, { a: '10.0.0.1', port: 80 })).toBe(E.ARG);
    expect(c.add(0, { a: '10.0.0.1', cidr: 32 })).toBe(E.ARG);
    expect(c.add(0, { a: '10.0.0.1', flags: EF.NOMATCH })).toBe(E.ARG);
    expect(c.add(0, { a: '10.0.0.1', flags: EF.TIMEOUT, timeout: 5 })).toBe(E.NO_TIMEOUT);
    expect(c.add(0, { a: '10.0.0.1', flags: EF.PACKETS, packets: 5n })).toBe(E.NO_COUNTERS);
    expect(c.x.ipsetCount!(0, 1000)).toBe(0);
  });

  it('grows past its first table and keeps every element findable through deletions', () => {
    const c = new SetCore();
    c.create(3, T.IP, 4);
    const ip = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    for (let i = 1; i <= 3000; i++) expect(c.add(3, { a: ip(i) })).toBe(0);
    expect(c.x.setCap!(3)).toBeGreaterThanOrEqual(4096);
    for (let i = 1; i <= 3000; i += 2) expect(c.del(3, { a: ip(i) })).toBe(0);
    for (let i = 1; i <= 3000; i++) expect(c.test(3, { a: ip(i) })).toBe(i % 2 === 0 ? TEST.PRESENT : TEST.ABSENT);
    expect(c.x.ipsetCount!(3, 1000)).toBe(1500);
  });

  it('stops at maxelem (IPSET_ERR_HASH_FULL) and accepts again after a deletion', () => {
    const c = new SetCore();
    c.create(0, T.IP, 4, { maxelem: 2 });
    expect(c.add(0, { a: '1.1.1.1' })).toBe(0);
    expect(c.add(0, { a: '1.1.1.2' })).toBe(0);
    expect(c.add(0, { a: '1.1.1.3' })).toBe(E.FULL);
    expect(c.add(0, { a: '1.1.1.2' }, { exist: true })).toBe(0);
    expect(c.del(0, { a: '1.1.1.1' })).toBe(0);
    expect(c.add(0, { a: '1.1.1.3' })).toBe(0);
  });
});

describe('hash:ip,port and hash:ip,port,ip', () => {
  it('keys on address, protocol and port (tcp:80 is not udp:80), both families', () => {
    const c = new SetCore();
    c.create(0, T.IP_PORT, 4);
    c.create(1, T.IP_PORT, 6);
    expect(c.add(0, { a: '10.96.0.10', proto: P.UDP, port: 53 })).toBe(0);
    expect(c.add(0, { a: '10.96.0.10', proto: P.TCP, port: 53 })).toBe(0);
    expect(c.add(0, { a: '10.96.0.11', proto: P.ICMP, port: (8 << 8) | 0 })).toBe(0);
    expect(c.add(0, { a: '10.96.0.12', proto: P.GRE })).toBe(0);
    expect(c.test(0, { a: '10.96.0.10', proto: P.UDP, port: 53 })).toBe(TEST.PRESENT);
    expect(c.test(0, { a: '10.96.0.10', proto: P.SCTP, port: 53 })).toBe(TEST.ABSENT);
    expect(c.test(0, { a: '10.96.0.10', proto: P.UDP, port: 54 })).toBe(TEST.ABSENT);
    expect(c.add(1, { a: 'fd00::10', proto: P.SCTP, port: 3868 })).toBe(0);
    expect(c.test(1, { a: 'fd00::10', proto: P.SCTP, port: 3868 })).toBe(TEST.PRESENT);
    expect(c.test(1, { a: 'fd00::11', proto: P.SCTP, port: 3868 })).toBe(TEST.ABSENT);
    expect(c.del(0, { a: '10.96.0.10', proto: P.TCP, port: 53 })).toBe(0);
    expect(c.test(0, { a: '10.96.0.10', proto: P.TCP, port: 53 })).toBe(TEST.ABSENT);
    expect(c.test(0, { a: '10.96.0.10', proto: P.UDP, port: 53 })).toBe(TEST.PRESENT);
  });

  it('refuses protocol 0 and a port on a protocol without ports', () => {
    const c = new SetCore();
    c.create(0, T.IP_PORT, 4);
    expect(c.add(0, { a: '10.0.0.1', proto: 0, port: 0 })).toBe(E.PROTO);
    expect(c.add(0, { a: '10.0.0.1', proto: P.GRE, port: 5 })).toBe(E.PROTO);
    expect(c.add(0, { a: '10.0.0.1', proto: P.TCP, port: 0 })).toBe(0);
  });

  it('hash:ip,port,ip keys on the second address too', () => {
    const c = new SetCore();
    c.create(0, T.IP_PORT_IP, 4);
    c.create(1, T.IP_PORT_IP, 6);
    expect(c.add(0, { a: '10.244.1.5', proto: P.TCP, port: 8443, b: '10.244.1.5' })).toBe(0);
    expect(c.test(0, { a: '10.244.1.5', proto: P.TCP, port: 8443, b: '10.244.1.5' })).toBe(TEST.PRESENT);
    expect(c.test(0, { a: '10.244.1.5', proto: P.TCP, port: 8443, b: '10.244.1.6' })).toBe(TEST.ABSENT);
    expect(c.add(1, { a: 'fd00::5', proto: P.UDP, port: 53, b: 'fd00::6' })).toBe(0);
    expect(c.test(1, { a: 'fd00::5', proto: P.UDP, port: 53, b: 'fd00::6' })).toBe(TEST.PRESENT);
    expect(c.add(0, { a: '10.0.0.1', proto: P.TCP, port: 1, b: 'fd00::1' })).toBe(E.ARG);
  });
});

describe('hash:net and hash:ip,port,net', () => {
  it('stores masked networks; refuses prefix 0, prefixes past the host mask and host bits', () => {
    const c = new SetCore();
    c.create(0, T.NET, 4);
    c.create(1, T.NET, 6);
    expect(c.add(0, { a: '10.0.0.0', cidr: 8 })).toBe(0);
    expect(c.add(0, { a: '10.0.0.1', cidr: 8 })).toBe(E.CIDR);
    expect(c.add(0, { a: '0.0.0.0', cidr: 0 })).toBe(E.CIDR);
    expect(c.add(0, { a: '10.0.0.0', cidr: 33 })).toBe(E.CIDR);
    expect(c.add(1, { a: 'fd00::', cidr: 64 })).toBe(0);
    expect(c.add(1, { a: 'fd00::1', cidr: 128 })).toBe(0);
    expect(c.add(1, { a: 'fd00::', cidr: 129 })).toBe(E.CIDR);
    expect(c.test(0, { a: '10.0.0.0', cidr: 8 })).toBe(TEST.PRESENT);
    expect(c.test(0, { a: '10.0.0.0', cidr: 16 })).toBe(TEST.ABSENT);
    expect(c.test(1, { a: 'fd00::', cidr: 64 })).toBe(TEST.PRESENT);
    expect(c.x.setPrefixes!(1)).toBe(2);
    expect(c.del(1, { a: 'fd00::1', cidr: 128 })).toBe(0);
    expect(c.x.setPrefixes!(1)).toBe(1);
  });

  it('hash:ip,port,net keys on the net part with its prefix', () => {
    const c = new SetCore();
    c.create(0, T.IP_PORT_NET, 4);
    expect(c.add(0, { a: '10.96.0.1', proto: P.TCP, port: 80, b: '10.244.0.0', cidr: 16 })).toBe(0);
    expect(c.test(0, { a: '10.96.0.1', proto: P.TCP, port: 80, b: '10.244.0.0', cidr: 16 })).toBe(TEST.PRESENT);
    expect(c.test(0, { a: '10.96.0.1', proto: P.TCP, port: 80, b: '10.244.0.0', cidr: 24 })).toBe(TEST.ABSENT);
    expect(c.add(0, { a: '10.96.0.1', proto: P.TCP, port: 80, b: '10.244.0.1', cidr: 16 })).toBe(E.CIDR);
  });
});

describe('bitmap:port', () => {
  it('holds ports of its range only; test outside the range is simply absent', () => {
    const c = new SetCore();
    expect(c.create(0, T.BITMAP_PORT, 0, { first: 100, last: 200 })).toBe(0);
    expect(c.add(0, { port: 100 })).toBe(0);
    expect(c.add(0, { port: 200 })).toBe(0);
    expect(c.add(0, { port: 99 })).toBe(E.RANGE);
    expect(c.add(0, { port: 201 })).toBe(E.RANGE);
    expect(c.del(0, { port: 300 })).toBe(E.RANGE);
    expect(c.test(0, { port: 300 })).toBe(TEST.ABSENT);
    expect(c.test(0, { port: 100 })).toBe(TEST.PRESENT);
    expect(c.test(0, { port: 150 })).toBe(TEST.ABSENT);
    expect(c.add(0, { port: 100 })).toBe(E.EXIST);
    expect(c.del(0, { port: 100 })).toBe(0);
    expect(c.del(0, { port: 100 })).toBe(E.NOT_EXIST);
    expect(c.x.ipsetCount!(0, 1000)).toBe(1);
  });

  it('needs an ordered range within 0..65535, no family, and no address', () => {
    const c = new SetCore();
    expect(c.create(0, T.BITMAP_PORT, 0, { first: 200, last: 100 })).toBe(E.ARG);
    expect(c.create(0, T.BITMAP_PORT, 0, { first: 0, last: 65536 })).toBe(E.ARG);
    expect(c.create(0, T.BITMAP_PORT, 4, { first: 0, last: 10 })).toBe(E.ARG);
    expect(c.create(0, T.BITMAP_PORT, 0, { first: 0, last: 65535 })).toBe(0);
    expect(c.add(0, { port: 65535 })).toBe(0);
    expect(c.add(0, { port: 5, a: '10.0.0.1' })).toBe(E.ARG);
  });
});

describe('create / destroy / flush', () => {
  it('refuses bad types, families, flags, ids and a second create on one id', () => {
    const c = new SetCore();
    expect(c.create(0, 0, 4)).toBe(E.ARG);
    expect(c.create(0, 7, 4)).toBe(E.ARG);
    expect(c.create(0, T.IP, 5)).toBe(E.ARG);
    expect(c.create(0, T.IP, 4, { flags: 8 })).toBe(E.ARG);
    expect(c.create(0, T.IP, 4, { timeout: 5 })).toBe(E.ARG);
    expect(c.create(0, T.IP, 4, { flags: CF.TIMEOUT, timeout: 2147484 })).toBe(E.ARG);
    expect(c.create(1 << 16, T.IP, 4)).toBe(E.ID);
    expect(c.create(70000, T.IP, 4)).toBe(E.ID);
    expect(c.create(5, T.IP, 4)).toBe(0);
    expect(c.create(5, T.IP, 4)).toBe(E.SET_EXISTS);
    expect(c.create(200, T.IP, 4)).toBe(0);
  });

  it('flush empties a set; destroy removes it; operations on a missing id say so', () => {
    const c = new SetCore();
    c.create(0, T.NET, 4);
    c.add(0, { a: '10.0.0.0', cidr: 8 });
    expect(c.x.ipsetFlush!(0)).toBe(0);
    expect(c.test(0, { a: '10.0.0.0', cidr: 8 })).toBe(TEST.ABSENT);
    expect(c.x.setPrefixes!(0)).toBe(0);
    expect(c.x.ipsetDestroy!(0)).toBe(0);
    expect(c.x.ipsetExists!(0)).toBe(0);
    expect(c.add(0, { a: '10.0.0.0', cidr: 8 })).toBe(E.NO_SET);
    expect(c.test(9, { a: '10.0.0.0' })).toBe(E.NO_SET);
    expect(c.x.ipsetDestroy!(0)).toBe(E.NO_SET);
    expect(c.x.ipsetFlush!(9)).toBe(E.NO_SET);
  });

  it('swap exchanges same-type sets between ids; rename moves a set to a free id', () => {
    const c = new SetCore();
    c.create(0, T.IP, 4);
    c.create(1, T.IP, 4);
    c.create(2, T.IP, 6);
    c.add(0, { a: '10.0.0.1' });
    c.add(1, { a: '10.0.0.2' });
    expect(c.x.ipsetSwap!(0, 1)).toBe(0);
    expect(c.test(0, { a: '10.0.0.2' })).toBe(TEST.PRESENT);
    expect(c.test(1, { a: '10.0.0.1' })).toBe(TEST.PRESENT);
    expect(c.x.ipsetSwap!(0, 2)).toBe(E.TYPE_MISMATCH);
    expect(c.x.ipsetSwap!(0, 7)).toBe(E.NO_SET);
    expect(c.x.ipsetRename!(0, 1)).toBe(E.SET_EXISTS);
    expect(c.x.ipsetRename!(0, 9)).toBe(0);
    expect(c.x.ipsetExists!(0)).toBe(0);
    expect(c.test(9, { a: '10.0.0.2' })).toBe(TEST.PRESENT);
  });
});
