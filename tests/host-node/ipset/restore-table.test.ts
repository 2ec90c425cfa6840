// IpsetTable over the core: restore is all or nothing (text model and core alike), lines and words in
// errors, -exist, save → restore round trips, single commands (argv or line), multi-element adds all
// or nothing, timeouts on a fake clock, references protecting sets, swap / rename reaching the
// packet path, counters in listings, reaping.
import { describe, it, expect } from 'vitest';
import { makeTable } from './harness';
import { IpsetError } from '../../../host-node/ipset/errors';
import { buildPacket, type PacketSpec } from '../../../host-node/core/packet';
import type { TestingCore } from '../../support/testing-core';

function err(f: () => unknown): IpsetError {
  try { f(); } catch (e) { if (e instanceof IpsetError) return e; throw e; }
  throw new Error('expected an IpsetError');
}

function ids() {
  const m = new Map<string, number>();
  return { map: m, setId: (n: string) => { if (!m.has(n)) m.set(n, m.size); return m.get(n)!; } };
}

// 1 / 0 / -1: does the packet match set `id` in `dirs`?
function lookup(core: TestingCore, id: number, dirs: string, spec: PacketSpec, now = 1_000_000): number {
  const b = buildPacket(spec);
  const d = dirs.split(',');
  return core.x.lookupPacket!(id, d.reduce((m, x, i) => m | (x === 'dst' ? 1 << i : 0), 0), d.length, core.put(b), b.length, now, 0);
}

const BASE = 'create a hash:ip initval 0x1\nadd a 10.0.0.1\ncreate p hash:ip,port initval 0x2\nadd p 10.96.0.1,tcp:443\n';

describe('restore', () => {
  it('a failing restore changes nothing: not the text model, not what packets see', () => {
    const { table, core } = makeTable({ setId: ids().setId });
    table.restore(BASE);
    const before = table.save();
    const e = err(() => table.restore([
      'flush a',
      'add a 10.0.0.2',
      '# a comment line',
      '',
      'create b hash:ip',
      'add b 10.0.0.8',
      'swap a b',
      'destroy p',
      'add nosuch 10.0.0.3',
    ].join('\n')));
    expect(e.message).toBe('ipset v7.17: Error in line 9: The set with the given name does not exist');
    expect(e.line).toBe(9);
    expect(e.word).toBe('nosuch');
    expect(table.save()).toBe(before);
    expect(table.names()).toEqual(['a', 'p']);
    expect(lookup(core, 0, 'dst', { src: '198.18.0.1', dst: '10.0.0.1', proto: 'udp', sport: 1, dport: 2 })).toBe(1);
    expect(lookup(core, 0, 'dst', { src: '198.18.0.1', dst: '10.0.0.2', proto: 'udp', sport: 1, dport: 2 })).toBe(0);
    expect(core.x.ipsetExists!(2)).toBe(0);
    expect(lookup(core, 1, 'dst,dst', { src: '198.18.0.1', dst: '10.96.0.1', proto: 'tcp', sport: 1, dport: 443 })).toBe(1);
    // …and the next restore works normally.
    table.restore('add a 10.0.0.2\n');
    expect(lookup(core, 0, 'dst', { src: '198.18.0.1', dst: '10.0.0.2', proto: 'udp', sport: 1, dport: 2 })).toBe(1);
  });

  it('a successful restore lands whole; sets created earlier in it can be used', () => {
    const { table } = makeTable();
    table.restore(BASE + 'create n hash:net\nadd n 10.1.0.0/16\nadd n 10.1.2.0/24 nomatch\ntest n 10.1.1.1\n');
    expect(table.test('n', '10.1.9.9')).toBe(true);
    expect(table.test('n', '10.1.2.9')).toBe(false);
    expect(table.names()).toEqual(['a', 'p', 'n']);
  });

  it('-exist (per line or for the whole restore) ignores what exists already', () => {
    const { table } = makeTable();
    table.restore(BASE);
    expect(err(() => table.restore('create a hash:ip\n')).message).toContain('Error in line 1: Set cannot be created');
    table.restore('-exist create a hash:ip\nadd a 10.0.0.1 -exist\n');
    table.restore('create a hash:ip\nadd a 10.0.0.1\n', { exist: true });
    expect(err(() => table.restore('create a hash:ip maxelem 5\n', { exist: true })).line).toBe(1);
  });

  it('save output restores to the same sets', () => {
    const { table } = makeTable();
    table.restore(BASE + 'create t hash:net family inet6 timeout 600 counters comment initval 0x3\n' +
      'add t fd00::/64 comment "pod range"\nadd t fd00:1::/64 timeout 0 nomatch\n' +
      'create bp bitmap:port range 30000-32767\nadd bp 30080\n');
    const saved = table.save();
    const { table: other } = makeTable();
    other.restore(saved);
    expect(other.save()).toBe(saved);
  });

  it('an error keeps its word and kind; usage errors carry no line', () => {
    const { table } = makeTable();
    const e1 = err(() => table.restore('create a hash:ip\nadd a 10.0.0.256\n'));
    expect(e1.kind).toBe('syntax');
    expect(e1.word).toBe('10.0.0.256');
    expect(e1.line).toBe(2);
    const e2 = err(() => table.restore('create a hash:ip\nadd a 10.0.0.1 bogus\n'));
    expect(e2.kind).toBe('usage');
    expect(e2.message).toBe("ipset v7.17: Unknown argument: `bogus'\nTry `ipset help' for more information.");
    expect(table.names()).toEqual([]);
  });
});

describe('single commands', () => {
  it('take argv or a line; test answers with ipset\'s words and exit status', () => {
    const { table } = makeTable();
    table.command(['create', 'KUBE-CLUSTER-IP', 'hash:ip,port', 'comment']);
    table.command('add KUBE-CLUSTER-IP 10.96.0.1,tcp:443 comment "Kubernetes service cluster ip + port for masquerade purpose"');
    expect(table.command('test KUBE-CLUSTER-IP 10.96.0.1,443')).toEqual({ status: 0, output: 'Warning: 10.96.0.1,tcp:443 is in set KUBE-CLUSTER-IP.\n' });
    expect(table.command(['test', 'KUBE-CLUSTER-IP', '10.96.0.1,udp:443'])).toEqual({ status: 1, output: '10.96.0.1,udp:443 is NOT in set KUBE-CLUSTER-IP.\n' });
    expect(table.command('-n list').output).toBe('KUBE-CLUSTER-IP\n');
    expect(table.command('-o save list KUBE-CLUSTER-IP').output).toBe(table.save('KUBE-CLUSTER-IP'));
    expect(table.command('save').output).toContain('add KUBE-CLUSTER-IP 10.96.0.1,tcp:443 comment "Kubernetes service');
  });

  it('refuses a comment with a " (save quotes comments, so it would come back changed) or over 255 bytes, as ipset does', () => {
    const { table } = makeTable();
    table.command(['create', 'S', 'hash:ip', 'comment']);
    expect(() => table.command(['add', 'S', '198.18.0.1', 'comment', 'say "hi"'])).toThrow('" character is not permitted in comments');
    // 200 × "é": 200 characters, 400 bytes.
    expect(() => table.command(['add', 'S', '198.18.0.2', 'comment', 'é'.repeat(200)])).toThrow('Comment is longer than the maximum allowed 255 characters');
    table.command(['add', 'S', '198.18.0.3', 'comment', 'é'.repeat(127)]);
    expect(table.save('S')).toBe(`create S hash:ip family inet hashsize 1024 maxelem 65536 comment bucketsize 12 initval ${/initval (\S+)/.exec(table.save('S'))![1]}\nadd S 198.18.0.3 comment "${'é'.repeat(127)}"\n`);
    // What save wrote restores to the same save.
    const again = makeTable().table;
    again.restore(table.save('S'));
    expect(again.save('S')).toBe(table.save('S'));
  });

  it('an add that expands to several elements applies whole or not at all', () => {
    const { table } = makeTable();
    table.command('create a hash:ip');
    table.command('add a 10.0.0.2');
    expect(err(() => table.command('add a 10.0.0.0/30')).message).toBe("ipset v7.17: Element cannot be added to the set: it's already added");
    expect(table.test('a', '10.0.0.0')).toBe(false);
    table.command('-exist add a 10.0.0.0/30');
    for (const h of [0, 1, 2, 3]) expect(table.test('a', `10.0.0.${h}`)).toBe(true);
    table.command('create m hash:ip maxelem 3');
    expect(err(() => table.command('add m 10.1.0.0/30')).message).toBe('ipset v7.17: Hash is full, cannot add more elements');
    expect(table.list('m', { terse: true })).toContain('Number of entries: 0');
  });

  it('ranges are walked whole as Linux 6.18 walks them; the first element at fault speaks first; past 2^20 elements ERANGE', () => {
    const { table } = makeTable();
    table.command('create a hash:ip maxelem 4294967295');
    table.command('create p hash:ip,port');
    // 20,481 addresses (over the kernel's 2^14 step, which it resumes): all taken, as on 6.18.
    table.command('add a 198.18.0.0-198.18.80.0');
    expect(table.list('a', { terse: true })).toContain('Number of entries: 20481');
    table.command('add p 198.18.0.0-198.18.80.0,tcp:80');
    expect(table.list('p', { terse: true })).toContain('Number of entries: 20481');
    // Deleted whole, too; a range naming an element not there refuses at that element.
    table.command('del p 198.18.0.0-198.18.80.0,tcp:80');
    expect(table.list('p', { terse: true })).toContain('Number of entries: 0');
    expect(err(() => table.command('del a 198.18.0.0-198.18.80.1')).message).toBe("ipset v7.17: Element cannot be deleted from the set: it's not added");
    // The range's first element refused before any length check: hash:ip's null address, hash:ip,port's EINVAL.
    expect(err(() => table.command('-exist del a 0.0.0.0-255.255.255.255')).message).toBe('ipset v7.17: Null-valued element, cannot be stored in a hash type of set');
    expect(err(() => table.command('add p 0.0.0.0-198.18.2.2,udp:53')).message).toBe('ipset v7.17: Kernel error received: Invalid argument');
    // An element already there, early in a long range, without -exist.
    expect(err(() => table.command('add a 198.18.80.0-198.19.255.255')).message).toBe("ipset v7.17: Element cannot be added to the set: it's already added");
    // A walk past 2^20 elements is refused (kernels 5.15-6.1 did so), nothing changed.
    const erange = 'ipset v7.17: Kernel error received: Numerical result out of range';
    expect(err(() => table.command('-exist del a 1.0.0.0-255.255.255.255')).message).toBe(erange);
    expect(table.list('a', { terse: true })).toContain('Number of entries: 20481');
  });

  it('timeouts run on the given clock: listing counts down, expiry removes, re-add needs no -exist', () => {
    const { table, clock, core } = makeTable({ setId: ids().setId });
    table.command('create t hash:ip,port timeout 10');
    table.command('add t 10.0.0.1,udp:53');
    table.command('add t 10.0.0.2,udp:53 timeout 0');
    expect(table.list('t')).toContain('10.0.0.1,udp:53 timeout 10\n');
    clock.now += 6_000;
    expect(table.list('t')).toContain('10.0.0.1,udp:53 timeout 4\n');
    clock.now += 3_999;
    expect(table.list('t')).toContain('10.0.0.1,udp:53 timeout 1\n');   // never 0 while alive
    const q = { src: '198.18.0.1', dst: '10.0.0.1', proto: 'udp' as const, sport: 9, dport: 53 };
    expect(lookup(core, 0, 'dst,dst', q, clock.now)).toBe(1);
    clock.now += 2;
    expect(lookup(core, 0, 'dst,dst', q, clock.now)).toBe(0);
    const list = table.list('t');
    expect(list).toContain('Number of entries: 1\n');
    expect(list).toContain('10.0.0.2,udp:53 timeout 0\n');
    expect(list).not.toContain('10.0.0.1');
    expect(table.test('t', '10.0.0.1,udp:53')).toBe(false);
    expect(table.reap()).toBe(1);
    table.command('add t 10.0.0.1,udp:53 timeout 100');
    expect(lookup(core, 0, 'dst,dst', q, clock.now)).toBe(1);
    expect(table.list('t')).toContain('10.0.0.1,udp:53 timeout 100\n');
  });

  it('references (rules naming a set) stop destroy and rename, and show in the listing', () => {
    const refs = new Map([['KUBE-CLUSTER-IP', 2]]);
    const { table } = makeTable({ references: (n) => refs.get(n) ?? 0 });
    table.restore('create KUBE-CLUSTER-IP hash:ip,port\ncreate spare hash:ip,port\n');
    expect(table.list('KUBE-CLUSTER-IP', { terse: true })).toContain('References: 2\n');
    expect(err(() => table.command('destroy KUBE-CLUSTER-IP')).message).toBe('ipset v7.17: Set cannot be destroyed: it is in use by a kernel component');
    expect(err(() => table.command('destroy')).message).toBe('ipset v7.17: Set cannot be destroyed: it is in use by a kernel component');
    expect(table.names()).toEqual(['KUBE-CLUSTER-IP', 'spare']);
    expect(err(() => table.command('rename KUBE-CLUSTER-IP X')).message).toBe('ipset v7.17: Set cannot be renamed: it is in use by another system');
    table.command('swap KUBE-CLUSTER-IP spare');   // swapping is allowed while referenced
    refs.clear();
    table.command('destroy');
    expect(table.names()).toEqual([]);
  });

  it('swap and rename reach the packet path by set id; the kernel index order is kept', () => {
    const { map, setId } = ids();
    const { table, core } = makeTable({ setId });
    table.restore('create live hash:ip\nadd live 10.0.0.1\ncreate next hash:ip\nadd next 10.0.0.9\n');
    const hit = (name: string, ip: string) => lookup(core, setId(name), 'dst', { src: '198.18.0.1', dst: ip, proto: 'udp', sport: 1, dport: 2 });
    table.command('swap live next');
    expect(hit('live', '10.0.0.9')).toBe(1);
    expect(hit('live', '10.0.0.1')).toBe(0);
    expect(table.names()).toEqual(['live', 'next']);
    table.command('destroy next');
    table.command('rename live renamed');
    expect(hit('renamed', '10.0.0.9')).toBe(1);
    expect(hit('live', '10.0.0.9')).toBe(-1);
    table.command('create first hash:ip');
    expect(table.names()).toEqual(['renamed', 'first']);
    table.command('destroy renamed');
    table.command('create zeta hash:ip');
    expect(table.names()).toEqual(['zeta', 'first']);   // the lowest free index, as the kernel
    expect(map.get('renamed')).not.toBe(map.get('live'));
  });

  it('a create takes the lowest free index among thousands, and a refused restore frees none', () => {
    const { table } = makeTable({});
    const n = 3000;
    table.restore(Array.from({ length: n }, (_, i) => `create s${i} bitmap:port range 0-7`).join('\n') + '\n');
    for (const i of [2500, 7, 1200]) table.command(`destroy s${i}`);
    // The restore frees 0 and creates two sets, then fails: nothing of it stays.
    expect(() => table.restore('destroy s0\ncreate x1 bitmap:port range 0-7\ncreate x2 bitmap:port range 0-7\ncreate s1 bitmap:port range 0-7\n')).toThrow();
    for (const name of ['a', 'b', 'c', 'd']) table.command(`create ${name} bitmap:port range 0-7`);
    const names = table.names();
    expect(names.length).toBe(n + 1);
    // Listing is by index: the new sets sit where 7, 1200 and 2500 were, then after the last.
    expect([names[7], names[1200], names[2500], names[n]]).toEqual(['a', 'b', 'c', 'd']);
    expect(names[0]).toBe('s0');
  });

  it('lists the counters the core keeps for each element', () => {
    const { table, core } = makeTable({ setId: ids().setId });
    table.restore('create c hash:ip,port counters\nadd c 10.96.0.10,udp:53 packets 5 bytes 100\nadd c 10.96.0.11,udp:53\n');
    const q = { src: '10.244.0.5', dst: '10.96.0.10', proto: 'udp' as const, sport: 3333, dport: 53, payload: 'x'.repeat(12) };
    lookup(core, 0, 'dst,dst', q);
    lookup(core, 0, 'dst,dst', q);
    const list = table.list('c');
    expect(list).toContain('10.96.0.10,udp:53 packets 7 bytes 180\n');
    expect(list).toContain('10.96.0.11,udp:53 packets 0 bytes 0\n');
  });

  // Each case below is what ipset 7.17 on Linux 6.18 did with the same input
  // (tests/kernel/ipset-differential.test.ts compares random scripts the same way).
  it('-sorted orders a hash set as ipset does: numbers by value, protocols by name length, a host before a network', () => {
    const { table } = makeTable();
    table.restore('create n hash:net family inet6 initval 0x1\nadd n fd00:198:18::/120\nadd n fd00:198:18::28\n' +
      'create p hash:ip,port initval 0x2\nadd p 198.18.2.29,tcp:1\nadd p 198.18.2.11,tcp:80\nadd p 198.18.2.11,sctp:80\nadd p 198.18.2.2,udp:1\n' +
      'create q hash:ip,port,net initval 0x3\nadd q 198.18.1.0,udp:0,128.0.0.0/1 nomatch\nadd q 198.18.1.0,tcp:1,198.0.0.0/8\nadd q 198.18.1.0,tcp:1,198.18.0.0/16\n');
    const adds = (name: string) => table.command(['-sorted', 'save', name]).output.split('\n').filter((l) => l.startsWith('add')).map((l) => l.slice(6));
    expect(adds('n')).toEqual(['fd00:198:18::28', 'fd00:198:18::/120']);
    expect(adds('p')).toEqual(['198.18.2.2,udp:1', '198.18.2.11,tcp:80', '198.18.2.11,sctp:80', '198.18.2.29,tcp:1']);
    expect(adds('q')).toEqual(['198.18.1.0,tcp:1,198.0.0.0/8', '198.18.1.0,tcp:1,198.18.0.0/16', '198.18.1.0,udp:0,128.0.0.0/1 nomatch']);
  });

  it('reports the error ipset reports first: a line of the batch being read before the kernel\'s refusal of an earlier one', () => {
    const { table } = makeTable();
    // Line 3 repeats line 2's network (already added); line 4 names a set that does not exist and
    // is read before the batch of lines 2-3 goes to the kernel.
    expect(err(() => table.restore('create s hash:net\nadd s 198.18.0.1/16\nadd s 198.18.0.2/16\nadd t 198.18.0.1\n')).message)
      .toBe('ipset v7.17: Error in line 4: The set with the given name does not exist');
    // A new command sends the batch: its refusal comes first.
    expect(err(() => table.restore('create s hash:net\nadd s 198.18.0.1/16\nadd s 198.18.0.2/16\ncreate u hash:ip\nflush t\n')).message)
      .toBe("ipset v7.17: Error in line 3: Element cannot be added to the set: it's already added");
  });

  it('checks an element as the kernel does: zero addresses, extensions before prefix lengths, a bitmap port as written first', () => {
    const { table } = makeTable();
    table.restore('create p hash:ip,port\ncreate i hash:ip\ncreate n hash:net\ncreate b bitmap:port range 1000-1001\n');
    const line = (cmd: string) => err(() => table.restore(cmd + '\n')).message.replace(/^ipset v7\.17: Error in line 1: /, '');
    expect(line('add p 0.0.0.0,tcp:80')).toBe('Kernel error received: Invalid argument');
    expect(line('del p 0.0.0.0,tcp:80')).toBe('Kernel error received: Invalid argument');
    expect(line('del i 0.0.0.0')).toBe('Null-valued element, cannot be stored in a hash type of set');
    expect(line('add n 198.18.0.0/0 timeout 30')).toBe('Timeout cannot be used: set was created without timeout support');
    expect(line('add b 1002 comment "x"')).toBe('Element is out of the range of the set');
    expect(line('add b 1001-1003 timeout 30')).toBe('Timeout cannot be used: set was created without timeout support');
    expect(line('add b 1000-1003')).toBe('Element is out of the range of the set');
  });

  it('reads malformed words as ipset does in a restore', () => {
    const { table } = makeTable();
    table.restore('create p hash:ip,port\ncreate i hash:ip\ncreate c hash:ip comment\n');
    const msg = (line: string) => err(() => table.restore(line + '\n')).message;
    // strtoul() wraps a negative number around: out of range, not "invalid".
    expect(msg('add p 198.18.0.1,tcp:-1')).toBe("ipset v7.17: Syntax error: '-1' is out of range 0-65535\nSyntax error: 'tcp' is invalid as number\ncannot parse '-1' as a tcp port");
    // The prefix length is read before a range.
    expect(msg('add i 198.18.0.1/-1')).toBe("ipset v7.17: Error in line 1: Syntax error: '-1' is out of range 0-255");
    expect(msg('add c 198.18.0.1 comment ""')).toBe("ipset v7.17: Missing mandatory argument of option `comment'\nTry `ipset help' for more information.");
    // An ICMPv6 type in an IPv4 set: only the second line of the single command's message.
    expect(msg('add p 198.18.0.1,icmpv6:1/4')).toBe('ipset v7.17: Error in line 1: Invalid add command: missing setname');
  });

  it('`test` answers and echoes as ipset does', () => {
    const { table } = makeTable();
    table.restore('create i hash:ip\nadd i 198.18.3.27\ncreate p hash:ip,port\nadd p 198.18.2.39,tcp:80\n' +
      'create b bitmap:port range 0-1000\nadd b 80\ncreate n hash:net\nadd n 198.18.0.0/16\n');
    const test = (args: string): string => {
      try {
        const r = table.command(`test ${args}`);
        return `${r.status} ${r.output}`;
      } catch (e) {
        if (!(e instanceof IpsetError)) throw e;
        return `${e.exitCode} ${e.message}`;
      }
    };
    // A hash:ip range tests its first address as written, and is echoed as written.
    expect(test('i 198.18.3.27-198.18.0.30')).toBe('0 Warning: 198.18.3.27-198.18.0.30 is in set i.\n');
    expect(test('i 198.18.0.30-198.18.3.27')).toBe('1 198.18.0.30-198.18.3.27 is NOT in set i.\n');
    expect(test('i 0.0.0.0')).toBe('1 0.0.0.0 is NOT in set i.\n');
    // Any /cidr on hash:ip,port's address, and any written port range, are refused.
    expect(test('p 198.18.2.39/32,tcp:80')).toBe('1 ipset v7.17: IP/CIDR range is not allowed in command test with set type hash:ip,port and family inet');
    expect(test('b 80-80')).toBe('1 ipset v7.17: FROM-TO port range is not allowed in command test with set type bitmap:port and family unspec');
    // A network is echoed with the address as given; /0 is simply not there.
    expect(test('n 198.18.2.34/16')).toBe('0 Warning: 198.18.2.34/16 is in set n.\n');
    expect(test('n 198.18.2.34/0')).toBe('1 198.18.2.34/0 is NOT in set n.\n');
  });
});
