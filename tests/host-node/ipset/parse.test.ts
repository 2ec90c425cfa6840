// The text pieces on their own: addresses (inet_aton forms, inet_ntop printing), IPv4 ranges split
// into CIDR blocks, entries of each type with their expansions, proto:port forms and names, the
// line tokenizer and the command word (prefixes, aliases, global options anywhere).
import { describe, it, expect } from 'vitest';
import { parseV4, parseV6, formatAddr, v4RangeToCidrs, v4ToNum } from '../../../host-node/ipset/addr';
import { parseEntry, formatElement } from '../../../host-node/ipset/element';
import { tokenize, parseCommand } from '../../../host-node/ipset/command';
import { TYPES, type TypeName } from '../../../host-node/ipset/types';
import { IpsetError } from '../../../host-node/ipset/errors';

const def = (n: TypeName) => TYPES.get(n)!;
const texts = (n: TypeName, family: 4 | 6, entry: string, cmd: 'add' | 'del' | 'test' = 'add') =>
  [...parseEntry(def(n), family, entry, cmd).elements()].map((e) => formatElement(def(n), e));
const fails = (f: () => unknown): string => {
  try { f(); } catch (e) { if (e instanceof IpsetError) return e.detail; throw e; }
  return 'no error';
};

describe('addresses', () => {
  it('reads inet_aton forms: a.b.c.d, a.b.c, a.b, a, leading-zero octal; refuses hex and junk', () => {
    const v4 = (s: string) => { const a = parseV4(s); return a ? formatAddr(a) : null; };
    expect(v4('10.1.2.3')).toBe('10.1.2.3');
    expect(v4('1.2.3')).toBe('1.2.0.3');
    expect(v4('10.1')).toBe('10.0.0.1');
    expect(v4('1.16777215')).toBe('1.255.255.255');
    expect(v4('4294967295')).toBe('255.255.255.255');
    expect(v4('010.0.0.1')).toBe('8.0.0.1');
    expect(v4('1.2.3.04')).toBe('1.2.3.4');
    for (const bad of ['09.1.1.1', '0x0a.0.0.1', '1.256.3.4', '1.2.3.4.5', '1..2.3', '.1.2.3', '1.2.3.4.', '', '4294967296', '1.2.65536']) {
      expect(v4(bad)).toBeNull();
    }
  });

  it('prints IPv6 as glibc inet_ntop: first longest zero run, dotted tails for ::a.b.c.d and ::ffff:a.b.c.d', () => {
    const v6 = (s: string) => formatAddr(parseV6(s)!);
    expect(v6('FD00::A')).toBe('fd00::a');
    expect(v6('fd00:0:0:0:0:0:0:1')).toBe('fd00::1');
    expect(v6('1:0:0:0:1:0:0:1')).toBe('1::1:0:0:1');
    expect(v6('0:0:1:0:0:0:0:1')).toBe('0:0:1::1');
    expect(v6('::1.2.3.4')).toBe('::1.2.3.4');
    expect(v6('::ffff:1.2.3.4')).toBe('::ffff:1.2.3.4');
    expect(v6('fd00::1.2.3.4')).toBe('fd00::102:304');
    expect(v6('::2')).toBe('::2');
    expect(v6('::')).toBe('::');
    expect(v6('1:2:3:4:5:6:0:8')).toBe('1:2:3:4:5:6:0:8');
    for (const bad of ['1:2:3:4:5:6:7:8:9', 'fd00::g', '1::2::3', ':::', '12345::']) expect(parseV6(bad)).toBeNull();
  });

  it('splits an IPv4 range into the fewest aligned blocks (ip_set_range_to_cidr)', () => {
    const blocks = (a: string, b: string) => [...v4RangeToCidrs(v4ToNum(parseV4(a)!), v4ToNum(parseV4(b)!))].map(([x, c]) => `${formatAddr(x)}/${c}`);
    expect(blocks('10.0.0.1', '10.0.0.6')).toEqual(['10.0.0.1/32', '10.0.0.2/31', '10.0.0.4/31', '10.0.0.6/32']);
    expect(blocks('10.0.0.0', '10.0.255.255')).toEqual(['10.0.0.0/16']);
    expect(blocks('0.0.0.0', '255.255.255.255')).toEqual(['0.0.0.0/1', '128.0.0.0/1']);
  });
});

describe('entries', () => {
  it('hash:ip expands IPv4 CIDRs and ranges to hosts; IPv6 takes plain addresses (or /128)', () => {
    expect(texts('hash:ip', 4, '10.0.0.4/30')).toEqual(['10.0.0.4', '10.0.0.5', '10.0.0.6', '10.0.0.7']);
    expect(texts('hash:ip', 4, '10.0.0.9-10.0.0.7')).toEqual(['10.0.0.7', '10.0.0.8', '10.0.0.9']);
    expect(texts('hash:ip', 6, 'fd00::1/128')).toEqual(['fd00::1']);
    expect(fails(() => texts('hash:ip', 6, 'fd00::/120'))).toBe('Syntax error: plain IP address must be supplied: fd00::/120');
    expect(parseEntry(def('hash:ip'), 4, '10.0.0.0/8', 'add').count).toBe(2 ** 24);
  });

  it('hash:ip,port: default tcp, protocol names and numbers, service names, ranges, ICMP code names', () => {
    expect(texts('hash:ip,port', 4, '10.0.0.1,80')).toEqual(['10.0.0.1,tcp:80']);
    expect(texts('hash:ip,port', 4, '10.0.0.1,udp:53-54')).toEqual(['10.0.0.1,udp:53', '10.0.0.1,udp:54']);
    expect(texts('hash:ip,port', 4, '10.0.0.1,sctp:[ssh]')).toEqual(['10.0.0.1,sctp:22']);
    expect(texts('hash:ip,port', 4, '10.0.0.1,https')).toEqual(['10.0.0.1,tcp:443']);
    expect(texts('hash:ip,port', 4, '10.0.0.1,47:0')).toEqual(['10.0.0.1,gre:0']);
    expect(texts('hash:ip,port', 4, '10.0.0.1,icmp:ping')).toEqual(['10.0.0.1,icmp:echo-request']);
    expect(texts('hash:ip,port', 4, '10.0.0.1,icmp:3/4')).toEqual(['10.0.0.1,icmp:fragmentation-needed']);
    expect(texts('hash:ip,port', 6, 'fd00::1,icmpv6:neigbour-solicitation')).toEqual(['fd00::1,ipv6-icmp:neighbour-solicitation']);
    expect(texts('hash:ip,port', 6, 'fd00::1,icmpv6:1/9')).toEqual(['fd00::1,ipv6-icmp:1/9']);
    expect(fails(() => texts('hash:ip,port', 4, '10.0.0.1,vrrp:1'))).toBe('Syntax error: Protocol vrrp can be used with pseudo port value 0 only.');
    expect(parseEntry(def('hash:ip,port'), 4, '10.0.0.0/24,tcp:1-100', 'add').count).toBe(25600);
  });

  it('hash:net and hash:ip,port,net: masked networks, host length omitted in print, IPv4 ranges as blocks', () => {
    expect(texts('hash:net', 4, '10.1.2.3/16')).toEqual(['10.1.0.0/16']);
    expect(texts('hash:net', 4, '10.1.2.3')).toEqual(['10.1.2.3']);
    expect(texts('hash:net', 6, 'fd00:1:2:3::9/48')).toEqual(['fd00:1:2::/48']);
    expect(texts('hash:ip,port,net', 4, '10.96.0.1,80,10.0.0.0-10.0.0.2')).toEqual(['10.96.0.1,tcp:80,10.0.0.0/31', '10.96.0.1,tcp:80,10.0.0.2']);
    expect(fails(() => texts('hash:net', 4, '10.0.0.0/0'))).toBe('The value of the CIDR parameter of the IP address is invalid');
  });

  it('bitmap:port: [tcp|udp:]port[-port], reversed ranges ordered, other protocols refused', () => {
    expect(texts('bitmap:port', 4, 'udp:82-80')).toEqual(['80', '81', '82']);
    expect(texts('bitmap:port', 4, 'ssh')).toEqual(['22']);
    expect(fails(() => texts('bitmap:port', 4, 'sctp:1'))).toBe('Syntax error: Only protocols TCP and UDP are valid');
    expect(fails(() => texts('bitmap:port', 4, '1-2', 'test'))).toContain('FROM-TO port range is not allowed');
  });
});

describe('command line', () => {
  it('tokenizes on whitespace, with "double quoted" words', () => {
    expect(tokenize('  add  s 1.2.3.4 comment "a b  c"  ')).toEqual(['add', 's', '1.2.3.4', 'comment', 'a b  c']);
    expect(tokenize('add s x comment ""')).toEqual(['add', 's', 'x', 'comment', '']);
  });

  it('reads command prefixes in ipset\'s order, aliases, and global options anywhere', () => {
    const cmd = (l: string) => parseCommand(tokenize(l));
    expect(cmd('a s 1.2.3.4').command.cmd).toBe('add');
    expect(cmd('d s 1.2.3.4').command.cmd).toBe('del');
    expect(cmd('des s').command.cmd).toBe('destroy');
    expect(cmd('n s hash:ip').command.cmd).toBe('create');
    expect(cmd('w a b').command.cmd).toBe('swap');
    expect(cmd('-A s 1.2.3.4').command.cmd).toBe('add');
    const p = cmd('add s 1.2.3.4 -exist');
    expect(p.global.exist).toBe(true);
    expect(p.command).toMatchObject({ cmd: 'add', name: 's', entry: '1.2.3.4', rest: [] });
    expect(cmd('-! -o save list').global).toMatchObject({ exist: true, output: 'save' });
    const c = cmd('create s hash:ip,port family inet6 hashsize 4096 maxelem 0x100 timeout 0 counters comment');
    expect(c.command).toMatchObject({ cmd: 'create', opts: { family: 6, hashsize: 4096, maxelem: 256, timeout: 0, counters: true, comment: true } });
    expect(cmd('create p bitmap:port range 200-100').command).toMatchObject({ opts: { range: [100, 200] } });
  });
});
