// The typed model built from hand-written rules: one block per match/target family, checked
// field by field (the compiler to the core reads exactly these objects).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  BUILTIN_CHAINS, parseRestore, type Match, type Rule, type Ruleset, type Target, type TableName,
} from '../../../host-node/netfilter/index.js';

const inputs = join(new URL('.', import.meta.url).pathname, 'fixtures/inputs');

function load(file: string, family: 4 | 6 = 4): Ruleset {
  const r = parseRestore(readFileSync(join(inputs, file), 'utf8'), { family });
  if (!r.ok) throw new Error(r.error.message);
  return r.ruleset;
}

/** The only rule of a one-line restore (`-A INPUT <spec>` in `table`). */
function rule(spec: string, table: TableName = 'filter', family: 4 | 6 = 4, chain = 'INPUT'): Rule {
  const r = parseRestore(`*${table}\n-A ${chain} ${spec}\nCOMMIT\n`, { family });
  if (!r.ok) throw new Error(r.error.message);
  return r.ruleset.table(table)!.chain(chain)!.rules[0];
}
const match = (spec: string, family: 4 | 6 = 4): Match => rule(spec, 'filter', family).matches[0];
const target = (spec: string, table: TableName = 'filter', family: 4 | 6 = 4, chain = 'INPUT'): Target | null =>
  rule(spec, table, family, chain).target;

const full = { lo: 0, hi: 65535 };

describe('tables and chains', () => {
  it('each table has the built-in chains Linux gives it, in hook order, policy ACCEPT', () => {
    const r = parseRestore('*raw\nCOMMIT\n*mangle\nCOMMIT\n*nat\nCOMMIT\n*filter\nCOMMIT\n*security\nCOMMIT\n');
    if (!r.ok) throw new Error(r.error.message);
    expect(BUILTIN_CHAINS.nat).toEqual(['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING']);
    for (const [name, hooks] of Object.entries(BUILTIN_CHAINS)) {
      const chains = [...r.ruleset.table(name as TableName)!.chains()];
      expect(chains.map((c) => c.name)).toEqual(hooks);
      for (const c of chains) {
        expect(c).toMatchObject({ builtin: true, hook: c.name, policy: 'ACCEPT', rules: [], declared: null });
      }
    }
    expect([...r.ruleset.tables.keys()]).toEqual(['raw', 'mangle', 'nat', 'filter', 'security']);
  });

  it('keeps policies, user chains in creation order, and how chains were declared', () => {
    const rs = load('v4-matches.rules');
    const f = rs.table('filter')!;
    expect([...f.chains()].map((c) => c.name)).toEqual(['INPUT', 'FORWARD', 'OUTPUT', 'ADDR', 'PORTS', 'STATE', 'MISC']);
    expect(f.chain('INPUT')).toMatchObject({ policy: 'DROP', declared: 'policy' });
    expect(f.chain('ADDR')).toMatchObject({ builtin: false, hook: null, policy: null, declared: '-' });
    expect(f.references('MISC')).toBe(1);
    expect(f.chain('INPUT')!.rules[3].target).toEqual({ kind: 'jump', chain: 'MISC', goto: true });
  });
});

describe('addresses, interfaces, protocol', () => {
  it('-s/-d with prefix, dotted mask, short forms and !', () => {
    const r = rule('-s 10.1.2.3/8 ! -d 10.0.0.0/255.255.0.0 -j ACCEPT');
    expect(r.src).toEqual({ family: 4, addr: [0x0a000000, 0, 0, 0], mask: [0xff000000, 0, 0, 0], prefix: 8, invert: false });
    expect(r.dst).toEqual({ family: 4, addr: [0x0a000000, 0, 0, 0], mask: [0xffff0000, 0, 0, 0], prefix: 16, invert: true });
    expect(rule('-s 10/8 -j ACCEPT').src).toMatchObject({ addr: [0x0a000000, 0, 0, 0], prefix: 8 });
    expect(rule('-d 0x0a.0.0.1 -j ACCEPT').dst).toMatchObject({ addr: [0x0a000001, 0, 0, 0], prefix: 32 });
    expect(rule('-s 10.0.0.0/255.0.255.0 -j ACCEPT').src).toMatchObject({ prefix: -1, mask: [0xff00ff00, 0, 0, 0] });
    expect(rule('-s 1.2.3.4/0 -j ACCEPT').src).toMatchObject({ addr: [0, 0, 0, 0], prefix: 0 });
  });

  it('IPv6 addresses as four big-endian words', () => {
    const r = rule('! -s fd00:0:0:0::10/64 -d fd00:1::1 -j ACCEPT', 'filter', 6);
    expect(r.src).toEqual({ family: 6, addr: [0xfd000000, 0, 0, 0], mask: [0xffffffff, 0xffffffff, 0, 0], prefix: 64, invert: true });
    expect(r.dst).toMatchObject({ addr: [0xfd000001, 0, 0, 1], prefix: 128, invert: false });
  });

  it('-i/-o with + wildcard and !, -p by name and number, -f', () => {
    const r = rule('! -i veth+ -o eth0 -p udp -f -j ACCEPT', 'filter', 4, 'FORWARD');
    expect(r.inIface).toEqual({ name: 'veth', wildcard: true, invert: true });
    expect(r.outIface).toEqual({ name: 'eth0', wildcard: false, invert: false });
    expect(r).toMatchObject({ proto: 17, protoInvert: false, fragment: { invert: false } });
    expect(rule('! -p TCP -j ACCEPT')).toMatchObject({ proto: 6, protoInvert: true });
    expect(rule('-p 47 -j ACCEPT').proto).toBe(47);
    expect(rule('-p all -j ACCEPT').proto).toBe(0);
    expect(rule('-p icmpv6 -j ACCEPT', 'filter', 6).proto).toBe(58);
    expect(rule('-j ACCEPT')).toMatchObject({ src: null, dst: null, inIface: null, proto: 0, fragment: null, matches: [] });
  });
});

describe('matches', () => {
  it('tcp: implied by -p, ports and ranges, flags, --syn', () => {
    expect(match('-p tcp --dport 80 -j ACCEPT')).toEqual({
      kind: 'tcp', sport: full, sportInvert: false, dport: { lo: 80, hi: 80 }, dportInvert: false, flags: null, option: null,
    });
    expect(match('-p tcp -m tcp --sport 1024: ! --dport :1023 --tcp-flags SYN,ACK SYN -j ACCEPT')).toMatchObject({
      sport: { lo: 1024, hi: 65535 }, dport: { lo: 0, hi: 1023 }, dportInvert: true, flags: { mask: 0x12, comp: 0x02, invert: false },
    });
    expect(match('-p tcp ! --syn -j DROP')).toMatchObject({ flags: { mask: 0x17, comp: 0x02, invert: true } });
    expect(match('-p tcp --dport https -j ACCEPT')).toMatchObject({ dport: { lo: 443, hi: 443 } });
  });

  it('udp and sctp', () => {
    expect(match('-p udp --sport 53 -j ACCEPT')).toEqual({ kind: 'udp', sport: { lo: 53, hi: 53 }, sportInvert: false, dport: full, dportInvert: false });
    expect(match('-p sctp ! --dport 100:200 -j ACCEPT')).toEqual({ kind: 'sctp', sport: null, dport: { range: { lo: 100, hi: 200 }, invert: true } });
  });

  it('icmp / icmp6 types by name and number', () => {
    expect(match('-p icmp --icmp-type echo-request -j ACCEPT')).toEqual({ kind: 'icmp', type: 8, codeMin: 0, codeMax: 255, invert: false });
    expect(match('-p icmp ! --icmp-type 3/4 -j ACCEPT')).toEqual({ kind: 'icmp', type: 3, codeMin: 4, codeMax: 4, invert: true });
    expect(match('-p icmp --icmp-type port-unreachable -j ACCEPT')).toMatchObject({ type: 3, codeMin: 3, codeMax: 3 });
    expect(match('-p ipv6-icmp -m icmp6 --icmpv6-type neighbor-solicitation -j ACCEPT', 6)).toEqual({
      kind: 'icmp6', type: 135, codeMin: 0, codeMax: 255, invert: false,
    });
  });

  it('multiport lists and ranges', () => {
    expect(match('-p tcp -m multiport --dports 80,443,8000:8080 -j ACCEPT')).toEqual({
      kind: 'multiport', dir: 'dst', ports: [{ lo: 80, hi: 80 }, { lo: 443, hi: 443 }, { lo: 8000, hi: 8080 }], invert: false,
    });
    expect(match('-p udp -m multiport ! --ports 53 -j ACCEPT')).toMatchObject({ dir: 'either', invert: true });
  });

  it('comment, with quotes, escapes, and kube-proxy test fixtures\' unquoted words', () => {
    expect(match('-m comment --comment "a \\"b\\" c" -j ACCEPT')).toEqual({ kind: 'comment', text: 'a "b" c' });
    expect(match('-m comment --comment kubernetes service portals -j ACCEPT')).toEqual({ kind: 'comment', text: 'kubernetes service portals' });
    expect((match(`-m comment --comment ${'x'.repeat(300)} -j ACCEPT`) as { text: string }).text.length).toBe(255);
  });

  it('addrtype', () => {
    expect(match('-m addrtype ! --src-type local --dst-type UNICAST,BROADCAST --limit-iface-in -j ACCEPT')).toEqual({
      kind: 'addrtype', srcTypes: ['LOCAL'], srcInvert: true, dstTypes: ['UNICAST', 'BROADCAST'], dstInvert: false,
      limitIfaceIn: true, limitIfaceOut: false,
    });
  });

  it('conntrack and state', () => {
    expect(match('-m conntrack ! --ctstate ESTABLISHED,related,DNAT --ctorigdst 10.96.0.0/12 --ctorigdstport 443 --ctstatus ASSURED --ctdir reply -j ACCEPT')).toEqual({
      kind: 'conntrack', state: { states: ['RELATED', 'ESTABLISHED', 'DNAT'], invert: true }, proto: null,
      origSrc: null, origDst: { family: 4, addr: [0x0a600000, 0, 0, 0], mask: [0xfff00000, 0, 0, 0], prefix: 12, invert: false },
      replSrc: null, replDst: null, origSrcPort: null, origDstPort: { range: { lo: 443, hi: 443 }, invert: false },
      replSrcPort: null, replDstPort: null, status: { statuses: ['ASSURED'], invert: false }, expire: null, dir: 'REPLY',
    });
    expect(match('-m state --state NEW,ESTABLISHED -j ACCEPT')).toEqual({ kind: 'state', states: ['NEW', 'ESTABLISHED'], invert: false });
  });

  it('mark, statistic, recent', () => {
    expect(match('-m mark ! --mark 0x4000/0x4000 -j RETURN')).toEqual({ kind: 'mark', value: 0x4000, mask: 0x4000, invert: true });
    expect(match('-m statistic --mode random --probability 0.5000000000 -j ACCEPT')).toEqual({
      kind: 'statistic', mode: 'random', probabilityRaw: 0x40000000, probability: 0.5, invert: false,
    });
    expect(match('-m statistic --mode nth --every 3 --packet 1 -j ACCEPT')).toEqual({ kind: 'statistic', mode: 'nth', every: 3, packet: 1, invert: false });
    expect(match('-m recent --name KUBE-SEP-X --rcheck --seconds 10800 --reap -j ACCEPT')).toEqual({
      kind: 'recent', op: 'rcheck', invert: false, name: 'KUBE-SEP-X', seconds: 10800, reap: true, hitcount: 0, rttl: false,
      side: 'source', mask: [0xffffffff, 0, 0, 0],
    });
    expect(match('-m recent --set --rdest --mask ffff:ffff:: -j ACCEPT', 6)).toMatchObject({
      op: 'set', name: 'DEFAULT', side: 'dest', mask: [0xffffffff, 0, 0, 0],
    });
  });

  it('statistic --probability reads what strtod() reads (iptables-legacy 1.8.9 alike), and a long run of digits is refused as any bad value', () => {
    const p = (v: string) => (match(`-m statistic --mode random --probability ${v} -j ACCEPT`) as { probability: number }).probability;
    for (const [v, want] of [['1', 1], ['0.', 0], ['.25', 0.25], ['+0.5', 0.5], ['5e-1', 0.5], ['0.125E0', 0.125], ['00.5', 0.5],
      ['0x1p-1', 0.5], ['0x.8', 0.5], ['0X1.8P-1', 0.75], ['0x1P+0', 1], ['-0', 0], ['nan', 0], ['NaN(x_1)', 0], ['-nan', 0]] as const) expect(p(v), v).toBe(want);
    for (const v of ['.', '1.5', '-0.1', '0.5x', 'e1', '0.5e', '0x', '0x1p', '-0x1p-1', 'inf', 'Infinity', '1e400', 'nan(a-b)', '0,5']) {
      expect(() => rule(`-m statistic --mode random --probability ${v} -j ACCEPT`), v).toThrow(/bad value for option "--probability"/);
    }
    // 150,000 digits and a stray letter: the check reads them once (the pattern it replaced
    // backtracked over every split of the digits, about 80 s here).
    const long = '1'.repeat(150_000) + 'x';
    const r = parseRestore(`*filter\n-A INPUT -m statistic --mode random --probability ${long} -j ACCEPT\nCOMMIT\n`, { family: 4 });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error.message).toMatch(/^iptables-restore: line 2 failed: statistic: bad value for option "--probability"/);
  });

  it('set, nfacct, limit, physdev', () => {
    expect(match('-m set ! --match-set KUBE-LB src,dst -j ACCEPT')).toEqual({ kind: 'set', name: 'KUBE-LB', dirs: ['src', 'dst'], invert: true, returnNomatch: false });
    expect(match('-m nfacct --nfacct-name localhost_nps_accepted_pkts -j ACCEPT')).toEqual({ kind: 'nfacct', name: 'localhost_nps_accepted_pkts' });
    expect(match('-m limit --limit 5/min --limit-burst 10 -j ACCEPT')).toEqual({ kind: 'limit', avg: 120000, burst: 10 });
    expect(match('-m limit -j ACCEPT')).toEqual({ kind: 'limit', avg: 12000000, burst: 5 });
    expect(match('-m physdev --physdev-in veth+ ! --physdev-is-bridged -j ACCEPT')).toEqual({
      kind: 'physdev', physIn: { name: 'veth', wildcard: true, invert: false }, physOut: null, isIn: null, isOut: null,
      isBridged: { invert: true },
    });
  });

  it('keeps the order matches were loaded in (explicit and implied)', () => {
    const kinds = rule('-p tcp --dport 80 -m comment --comment c -m tcp --sport 1 -m conntrack --ctstate NEW -j ACCEPT').matches.map((m) => m.kind);
    expect(kinds).toEqual(['tcp', 'comment', 'tcp', 'conntrack']);
  });
});

describe('long options as getopt_long reads them', () => {
  const refused = (spec: string, table: TableName = 'filter'): string => {
    const r = parseRestore(`*${table}\n-A INPUT ${spec}\nCOMMIT\n`, { family: 4 });
    return r.ok ? 'accepted' : r.error.reason;
  };
  /** The rule without the words it was written with. */
  const read = (spec: string): Omit<Rule, 'text'> => ({ ...rule(spec), text: undefined });

  it('an abbreviation stands for the one option it can only mean, base or extension', () => {
    expect(read('--proto tcp --dpo 80 -j ACCEPT')).toEqual(read('-p tcp --dport 80 -j ACCEPT'));
    expect(read('--desti 198.18.0.1 --sr 198.19.0.1 -j ACCEPT')).toEqual(read('-d 198.18.0.1 -s 198.19.0.1 -j ACCEPT'));
    expect(target('-p tcp -j DNAT --to 198.18.0.1:80', 'nat', 4, 'PREROUTING')).toEqual(target('-p tcp -j DNAT --to-destination 198.18.0.1:80', 'nat', 4, 'PREROUTING'));
    expect(match('-m comment --comm hello -j ACCEPT')).toEqual({ kind: 'comment', text: 'hello' });
  });

  it('an option a loaded match abbreviates is that match\'s, not the one -p would load later', () => {
    // `--dport` abbreviates multiport's `--dports`: the list is multiport's, tcp is never loaded.
    const r = rule('-p tcp -m multiport --dport 80,443 -j ACCEPT');
    expect(r.matches.map((m) => m.kind)).toEqual(['multiport']);
    expect(r.matches[0]).toEqual(match('-p tcp -m multiport --dports 80,443 -j ACCEPT'));
    // With tcp loaded first, `--dport` is tcp's own (a full name beats an abbreviation).
    const both = rule('-p tcp -m tcp -m multiport --dport 80 --dports 443 -j ACCEPT');
    expect(both.matches.map((m) => m.kind)).toEqual(['tcp', 'multiport']);
    expect(both.matches[0]).toMatchObject({ dport: { lo: 80, hi: 80 } });
    // …so here `--sport` is multiport's `--sports` a second time; libxtables names it by its first spelling.
    expect(refused('-p udp -m multiport --sports 80 --sport 1:80 -j ACCEPT')).toBe('multiport: option "--source-ports" can only be used once.');
    // A match loaded again shares its first load's options (a clone): they go to the last one.
    const twice = rule('-p tcp -m tcp --dport 1 -m tcp --dpo 2 -j ACCEPT').matches;
    expect(twice.map((m) => [m.kind, (m as { dport?: unknown }).dport])).toEqual([['tcp', { lo: 1, hi: 1 }], ['tcp', { lo: 2, hi: 2 }]]);
  });

  it('reads `--name=value`, a value joined to its option and `--` as iptables 1.8.9 does', () => {
    expect(match('-p tcp --dport=80 -j ACCEPT')).toMatchObject({ kind: 'tcp', dport: { lo: 80, hi: 80 } });
    // -s -d -p -j -i -o take the whole word (argv[optind-1]); the others the value.
    expect(refused('--src=198.18.0.1 -j ACCEPT')).toBe("host/network `--src=198.18.0.1' not found");
    expect(refused('--protocol=tcp -j ACCEPT')).toBe('unknown protocol "--protocol=tcp" specified');
    expect(rule('-ieth0 -j ACCEPT').inIface).toEqual({ name: '-ieth0', wildcard: false, invert: false });
    expect(rule('-mcomment --comment x -j ACCEPT').matches).toEqual([{ kind: 'comment', text: 'x' }]);
    // An option without an argument given one is unknown to getopt.
    expect(refused('--fragments=1 -j ACCEPT')).toBe('unknown option "--fragments=1"');
    expect(refused('-p tcp --syn=1 -j ACCEPT')).toBe('unknown option "--syn=1"');
    // `--` ends the options; a word after it is refused.
    expect(read('-j ACCEPT --')).toEqual(read('-j ACCEPT'));
    expect(refused('-j ACCEPT -- x')).toBe('unknown arguments found on commandline');
  });

  it('refuses a name that abbreviates several options', () => {
    expect(refused('--d 198.18.0.1 -j ACCEPT')).toBe('unknown option "--d"');     // --delete, --destination, --dst
    expect(refused('-j MARK --set 1', 'mangle')).toBe('unknown option "--set"');   // --set-mark, --set-xmark
  });
});

describe('targets', () => {
  it('verdicts, jumps, gotos, no target', () => {
    for (const v of ['ACCEPT', 'DROP', 'RETURN', 'QUEUE'] as const) expect(target(`-j ${v}`)).toEqual({ kind: v });
    expect(rule('-m comment --comment only-counts').target).toBeNull();
    expect(rule('-j CONTINUE').target).toBeNull();
  });

  it('REJECT with every type, IPv4 and IPv6 defaults', () => {
    expect(target('-j REJECT')).toEqual({ kind: 'REJECT', with: 'icmp-port-unreachable' });
    expect(target('-j REJECT', 'filter', 6)).toEqual({ kind: 'REJECT', with: 'icmp6-port-unreachable' });
    for (const w of ['icmp-net-unreachable', 'icmp-host-unreachable', 'icmp-proto-unreachable', 'icmp-net-prohibited', 'icmp-host-prohibited', 'icmp-admin-prohibited']) {
      expect(target(`-j REJECT --reject-with ${w}`)).toEqual({ kind: 'REJECT', with: w });
    }
    expect(target('-j REJECT --reject-with host-prohib')).toEqual({ kind: 'REJECT', with: 'icmp-host-prohibited' });
    for (const w of ['icmp6-no-route', 'icmp6-adm-prohibited', 'icmp6-addr-unreachable', 'icmp6-port-unreachable']) {
      expect(target(`-j REJECT --reject-with ${w}`, 'filter', 6)).toEqual({ kind: 'REJECT', with: w });
    }
    expect(target('-p tcp -j REJECT --reject-with tcp-reset', 'filter', 6)).toEqual({ kind: 'REJECT', with: 'tcp-reset' });
  });

  it('DNAT / SNAT / MASQUERADE / REDIRECT', () => {
    expect(target('-p tcp -j DNAT --to-destination 10.180.0.1:80', 'nat', 4, 'PREROUTING')).toEqual({
      kind: 'DNAT', to: { addrMin: [0x0ab40001, 0, 0, 0], addrMax: [0x0ab40001, 0, 0, 0], ports: { lo: 80, hi: 80 } }, random: false, persistent: false,
    });
    expect(target('-p udp -j DNAT --to-destination 10.0.0.1-10.0.0.5:53-54 --random --persistent', 'nat', 4, 'OUTPUT')).toMatchObject({
      to: { addrMin: [0x0a000001, 0, 0, 0], addrMax: [0x0a000005, 0, 0, 0], ports: { lo: 53, hi: 54 } }, random: true, persistent: true,
    });
    expect(target('-p tcp -j DNAT --to-destination [fd00::5]:8443', 'nat', 6, 'PREROUTING')).toMatchObject({
      to: { addrMin: [0xfd000000, 0, 0, 5], ports: { lo: 8443, hi: 8443 } },
    });
    expect(target('-j DNAT --to-destination fd00::6', 'nat', 6, 'PREROUTING')).toMatchObject({ to: { addrMin: [0xfd000000, 0, 0, 6], ports: null } });
    expect(target('-j SNAT --to-source 198.18.0.1 --random-fully', 'nat', 4, 'POSTROUTING')).toEqual({
      kind: 'SNAT', to: { addrMin: [0xc6120001, 0, 0, 0], addrMax: [0xc6120001, 0, 0, 0], ports: null }, random: false, randomFully: true, persistent: false,
    });
    expect(target('-p tcp -j MASQUERADE --to-ports 30000-40000 --random', 'nat', 4, 'POSTROUTING')).toEqual({
      kind: 'MASQUERADE', ports: { lo: 30000, hi: 40000 }, random: true, randomFully: false,
    });
    expect(target('-p tcp -j REDIRECT --to-ports 8080', 'nat', 4, 'PREROUTING')).toEqual({ kind: 'REDIRECT', ports: { lo: 8080, hi: 8080 }, random: false });
  });

  it('MARK and CONNMARK normalized to value/mask', () => {
    expect(target('-j MARK --or-mark 0x4000', 'nat', 4, 'PREROUTING')).toEqual({ kind: 'MARK', value: 0x4000, mask: 0x4000 });
    expect(target('-j MARK --xor-mark 0x4000', 'nat', 4, 'PREROUTING')).toEqual({ kind: 'MARK', value: 0x4000, mask: 0 });
    expect(target('-j MARK --and-mark 0xffff', 'mangle')).toEqual({ kind: 'MARK', value: 0, mask: 0xffff0000 });
    expect(target('-j MARK --set-mark 0x20', 'mangle')).toEqual({ kind: 'MARK', value: 0x20, mask: 0xffffffff });
    expect(target('-j MARK --set-xmark 0x10/0xff', 'mangle')).toEqual({ kind: 'MARK', value: 0x10, mask: 0xff });
    expect(target('-j CONNMARK --save-mark', 'mangle')).toEqual({ kind: 'CONNMARK', mode: 'save', nfmask: 0xffffffff, ctmask: 0xffffffff });
    expect(target('-j CONNMARK --restore-mark --mask 0xff', 'mangle')).toEqual({ kind: 'CONNMARK', mode: 'restore', nfmask: 0xff, ctmask: 0xff });
    expect(target('-j CONNMARK --set-xmark 0x1/0xf', 'mangle')).toEqual({ kind: 'CONNMARK', mode: 'set', value: 1, mask: 0xf });
  });

  it('LOG, NFLOG, CT/NOTRACK', () => {
    expect(target('-j LOG --log-prefix "in: " --log-level info --log-uid')).toEqual({ kind: 'LOG', level: 6, prefix: 'in: ', flags: 8 });
    expect(target('-j NFLOG --nflog-group 5 --nflog-prefix x --nflog-size 128')).toEqual({ kind: 'NFLOG', group: 5, prefix: 'x', size: 128, range: 0, threshold: 0 });
    expect(target('-j CT --notrack', 'raw', 4, 'PREROUTING')).toEqual({ kind: 'CT', notrack: true, alias: false });
    expect(target('-j NOTRACK', 'raw', 4, 'OUTPUT')).toEqual({ kind: 'CT', notrack: true, alias: true });
  });
});

describe('source text', () => {
  it('each rule keeps the words after `-A CHAIN` exactly as written', () => {
    const r = rule('-m comment --comment "x  y"   -j   ACCEPT');
    expect(r.text).toBe('-m comment --comment "x  y"   -j   ACCEPT');
  });
});
