// `-m connmark --mark value[/mask]` (libxt_connmark / xt_connmark): read, printed as iptables-save,
// -S and -L print it (checked against iptables-legacy 1.8.9 by hand and by the kernel
// differentials), and matched by the core against the connection's mark, which CONNMARK sets;
// a packet without a conntrack entry never matches, inverted or not. Synthetic packets only.
import { describe, it, expect } from 'vitest';
import { Dataplane } from '../../../host-node/dataplane.js';
import { buildPacket } from '../../../host-node/core/packet.js';
import { parseRestore } from '../../../host-node/netfilter/index.js';

const RULES = [
  '*raw', ':PREROUTING ACCEPT [0:0]', '-A PREROUTING -p udp --dport 7 -j CT --notrack', 'COMMIT',
  '*mangle', ':PREROUTING ACCEPT [0:0]', '-A PREROUTING -p tcp --dport 80 -j CONNMARK --set-xmark 0x5/0xff',
  '-A PREROUTING -p tcp --dport 443 -j CONNMARK --set-xmark 0x7/0xff', 'COMMIT',
  '*filter', ':FORWARD ACCEPT [0:0]',
  '-A FORWARD -m connmark --mark 0x5/0xff -j DROP',
  '-A FORWARD -m connmark ! --mark 0 -j REJECT',
  'COMMIT', '',
].join('\n');

describe('-m connmark', () => {
  it('reads and prints as iptables 1.8.9 does, and refuses what it refuses', () => {
    const r = parseRestore('*mangle\n:TEST - [0:0]\n-A TEST -m connmark --mark 1\n-A TEST -m connmark ! --mark 0x10/0xff\n-A TEST -m connmark --mark 5/0xffffffff -j ACCEPT\nCOMMIT\n');
    if (!r.ok) throw new Error(r.error.message);
    expect(r.ruleset.table('mangle')!.chain('TEST')!.rules.map((x) => x.matches[0])).toEqual([
      { kind: 'connmark', value: 1, mask: 0xffffffff, invert: false },
      { kind: 'connmark', value: 0x10, mask: 0xff, invert: true },
      { kind: 'connmark', value: 5, mask: 0xffffffff, invert: false },
    ]);
    for (const [spec, reason] of [
      ['-m connmark', 'connmark: option "--mark" must be specified'],
      ['-m connmark --mark 0x100000000', 'connmark: bad integer value for option "--mark", or out of range.'],
    ]) {
      const bad = parseRestore(`*mangle\n:TEST - [0:0]\n-A TEST ${spec}\nCOMMIT\n`);
      expect(bad.ok ? 'accepted' : bad.error.reason, spec).toBe(reason);
    }
  });

  it('matches the mark CONNMARK gave the connection, and never an untracked packet', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['198.18.0.254'], seed: 1 });
    dp.iptablesRestore(RULES);
    expect(dp.iptablesRules('filter', 'FORWARD')).toContain('-A FORWARD -m connmark --mark 0x5/0xff -j DROP\n-A FORWARD -m connmark ! --mark 0x0 -j REJECT');
    expect(dp.iptablesList('filter', 'FORWARD')).toContain('connmark match  0x5/0xff');
    const send = (dport: number, proto: 'tcp' | 'udp' = 'tcp') =>
      dp.process(buildPacket({ src: '198.19.0.7', dst: '198.18.5.5', proto, sport: 40000 + dport, dport, ...(proto === 'tcp' ? { flags: 'S' } : {}) }), 1000).verdict;
    expect(send(80)).toBe('DROP');          // marked 0x5 in mangle: the first rule drops it
    expect(send(443)).toBe('REPLY');        // marked 0x7: not the first rule, the inverted second (REJECT)
    expect(send(81)).toBe('PASS');          // mark 0: neither rule (passed on unchanged)
    expect(send(7, 'udp')).toBe('PASS');    // untracked: no mark to compare, even with `!` (no REJECT reply)
  });
});
