// Connection matches: --ctstate / --state (NEW, ESTABLISHED, RELATED, INVALID, UNTRACKED, DNAT,
// SNAT), original/reply addresses and ports, --ctstatus, --ctdir, --ctproto, xt_conntrack's
// "no connection" rule, and CONNMARK set/save/restore across packets.
import { describe, it, expect } from 'vitest';
import { buildPacket } from '../../../host-node/core/packet';
import { Bench, tcp, udp, V, CT } from './harness';

const VIP = '198.19.0.10', POD = '198.18.2.5';

// nat: VIP:80 → POD:8080; filter FORWARD: the rules under test, each DROPping what it matches.
function bench(filterRules: string, raw = ''): Bench {
  const b = new Bench();
  b.local('198.19.255.1');
  b.restore(`*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n${raw}\nCOMMIT\n` +
    `*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n` +
    `-A PREROUTING -d ${VIP}/32 -p tcp --dport 80 -j DNAT --to-destination ${POD}:8080\nCOMMIT\n` +
    `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n${filterRules}\nCOMMIT\n`);
  return b;
}

describe('ctstate', () => {
  it('NEW, then ESTABLISHED once the reply was seen (and NEW again for a retransmitted SYN before it)', () => {
    const b = bench('-A FORWARD -m conntrack --ctstate ESTABLISHED -j DROP');
    const a = b.send(tcp('198.18.1.1', '198.18.1.2', 1000, 22));
    expect([a.verdict, a.ctstate]).toEqual([V.PASS, CT.NEW]);
    const again = b.send(tcp('198.18.1.1', '198.18.1.2', 1000, 22));
    expect([again.verdict, again.ctstate]).toEqual([V.PASS, CT.NEW]);
    const back = b.send(tcp('198.18.1.2', '198.18.1.1', 22, 1000, 'SA'));
    expect([back.verdict, back.ctstate]).toEqual([V.DROP, CT.ESTABLISHED]);
  });

  it('INVALID: a flag combination no connection can start with; no connection is made', () => {
    const b = bench('-A FORWARD -m conntrack --ctstate INVALID -j DROP');
    const r = b.send(tcp('198.18.1.1', '198.18.1.2', 1, 2, 'SF'));
    expect([r.verdict, r.ctstate]).toEqual([V.DROP, CT.INVALID]);
    expect(b.ctCount()).toBe(0);
    expect(b.send(udp('198.18.1.1', '198.18.1.2', 1, 2)).verdict).toBe(V.PASS);
  });

  it('RELATED: an ICMP error about a tracked connection', () => {
    const b = bench('-A FORWARD -m state --state RELATED -j DROP');
    const first = buildPacket(udp('198.18.1.1', '198.18.1.2', 1000, 53));
    b.send(first);
    const err = b.send({ src: '198.18.9.9', dst: '198.18.1.1', proto: 'icmp', icmp: { type: 3, code: 1, quote: first.slice(0, 28) } });
    expect([err.verdict, err.ctstate]).toEqual([V.DROP, CT.RELATED]);
    const stray = b.send({ src: '198.18.9.9', dst: '198.18.1.1', proto: 'icmp', icmp: { type: 3, code: 1, quote: buildPacket(udp('198.18.1.1', '198.18.7.7', 1, 2)).slice(0, 28) } });
    expect(stray.ctstate).toBe(CT.INVALID);
  });

  it('in the raw table, before conntrack, every packet is INVALID and has no connection (as the kernel counts it)', () => {
    const b = bench('', '-A PREROUTING -p udp --dport 7 -m state --state INVALID -j DROP\n' +
      '-A PREROUTING -p udp -m conntrack --ctstate NEW,ESTABLISHED -j DROP\n-A PREROUTING -p udp -m conntrack --ctorigdstport 9 -j DROP');
    expect(b.send(udp('198.18.1.1', '198.18.1.2', 1000, 7)).verdict).toBe(V.DROP);
    expect(b.send(udp('198.18.1.1', '198.18.1.2', 1000, 9)).verdict).toBe(V.PASS);
    expect(b.send(udp('198.18.1.2', '198.18.1.1', 9, 1000)).verdict).toBe(V.PASS);
  });

  it('UNTRACKED after NOTRACK in raw; the nat table never sees it', () => {
    const b = bench('-A FORWARD -m conntrack --ctstate UNTRACKED -j DROP', '-A PREROUTING -p udp --dport 53 -j CT --notrack');
    const r = b.send(udp('198.18.1.1', '198.18.1.2', 1, 53));
    expect([r.verdict, r.ctstate]).toEqual([V.DROP, CT.UNTRACKED]);
    expect(b.ctCount()).toBe(0);
    expect(b.send(udp('198.18.1.1', '198.18.1.2', 1, 54)).verdict).toBe(V.PASS);
  });

  it('DNAT / SNAT state bits from the connection (pending or stored)', () => {
    const b = bench('-A FORWARD -m conntrack --ctstate DNAT -j DROP\n-A FORWARD -m conntrack ! --ctstate SNAT -j ACCEPT');
    expect(b.send(tcp('198.18.1.1', VIP, 1000, 80)).verdict).toBe(V.DROP);
    expect(b.send(tcp('198.18.1.1', '198.19.0.11', 1000, 80)).verdict).toBe(V.PASS);
    expect(b.counters(4, 'filter', 'FORWARD')[1]![0]).toBe(1n);
  });
});

describe('connection tuples, status, direction', () => {
  it('--ctorigdst / --ctorigdstport see the service, --ctreplsrc the endpoint', () => {
    const b = bench(`-A FORWARD -m conntrack --ctorigdst ${VIP} --ctorigdstport 80 --ctreplsrc ${POD} --ctreplsrcport 8080 -j DROP`);
    expect(b.send(tcp('198.18.1.1', VIP, 1000, 80)).verdict).toBe(V.DROP);
    expect(b.send(tcp('198.18.1.1', POD, 1000, 8080)).verdict).toBe(V.PASS);
  });

  it('an address written with host bits under a shorter mask compares under the mask (iptables keeps it as written)', () => {
    const b = bench('-A FORWARD -m conntrack --ctorigdst 198.19.0.77/24 --ctorigdstport 80 -j DROP');
    expect(b.send(tcp('198.18.1.1', VIP, 1000, 80)).verdict).toBe(V.DROP);
    expect(b.send(tcp('198.18.1.1', '198.19.1.10', 1000, 80)).verdict).toBe(V.PASS);
  });

  it('an ICMP echo connection\'s port criteria: the identifier, and type << 8 | code (echo-reply in the reply tuple)', () => {
    const b = bench('-A FORWARD -p icmp -m conntrack --ctorigsrcport 77 --ctorigdstport 2048 --ctrepldstport 0 --ctreplsrcport 77 -j DROP');
    const echo = (id: number) => ({ src: '198.18.1.1', dst: '198.18.1.2', proto: 'icmp' as const, icmp: { type: 8, code: 0, id, seq: 1 } });
    expect(b.send(echo(77)).verdict).toBe(V.DROP);
    expect(b.send(echo(78)).verdict).toBe(V.PASS);
  });

  it('inverted tuple criteria, --ctproto and --ctdir', () => {
    const b = bench(`-A FORWARD -m conntrack ! --ctorigsrc 198.18.1.1 --ctproto 6 -j DROP\n-A FORWARD -m conntrack --ctdir REPLY -j DROP`);
    expect(b.send(tcp('198.18.1.1', '198.18.1.2', 1000, 22)).verdict).toBe(V.PASS);
    expect(b.send(tcp('198.18.1.3', '198.18.1.2', 1000, 22)).verdict).toBe(V.DROP);
    expect(b.send(udp('198.18.1.3', '198.18.1.2', 1000, 22)).verdict).toBe(V.PASS);
    expect(b.send(tcp('198.18.1.2', '198.18.1.1', 22, 1000, 'SA')).verdict).toBe(V.DROP);
  });

  it('--ctstatus SEEN_REPLY only after the reply', () => {
    const b = bench('-A FORWARD -m conntrack --ctstatus SEEN_REPLY -j DROP');
    expect(b.send(udp('198.18.1.1', '198.18.1.2', 1000, 53)).verdict).toBe(V.PASS);
    expect(b.send(udp('198.18.1.1', '198.18.1.2', 1000, 53)).verdict).toBe(V.PASS);
    b.send(udp('198.18.1.2', '198.18.1.1', 53, 1000));
    expect(b.send(udp('198.18.1.1', '198.18.1.2', 1000, 53)).verdict).toBe(V.DROP);
  });

  it('without a connection, the other criteria pass exactly when the same match tested the state', () => {
    const b = bench('-A FORWARD -m conntrack --ctstate INVALID --ctorigdst 198.19.99.99 -j DROP\n' +
      '-A FORWARD -m conntrack ! --ctorigdst 198.19.99.99 -j ACCEPT');
    const r = b.send(tcp('198.18.1.1', '198.18.1.2', 1, 2, 'SF'));
    expect(r.verdict).toBe(V.DROP);
    const b2 = bench('-A FORWARD -m conntrack ! --ctorigdst 198.19.99.99 -j DROP');
    expect(b2.send(tcp('198.18.1.1', '198.18.1.2', 1, 2, 'SF')).verdict).toBe(V.PASS);
    expect(b2.send(tcp('198.18.1.1', '198.18.1.2', 1, 2)).verdict).toBe(V.DROP);
  });
});

describe('CONNMARK', () => {
  function marks(): Bench {
    const b = new Bench();
    b.restore('*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n' +
      '-A PREROUTING -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff\n' +
      '-A PREROUTING -m mark --mark 0 -p udp --dport 53 -j MARK --set-xmark 0x7/0xff\n' +
      '-A PREROUTING -j CONNMARK --save-mark --nfmask 0xff --ctmask 0xff\nCOMMIT\n');
    return b;
  }
  it('save-mark stores the mark with the new connection; restore-mark gives it to later packets', () => {
    const b = marks();
    expect(b.send(udp('198.18.1.1', '198.18.1.2', 1000, 53)).mark).toBe(7);
    // The reply has no rule setting a mark: it gets the connection's.
    expect(b.send(udp('198.18.1.2', '198.18.1.1', 53, 1000)).mark).toBe(7);
    expect(b.send(udp('198.18.1.3', '198.18.1.2', 1000, 54)).mark).toBe(0);
  });
  it('a connection whose first packet was dropped keeps no mark', () => {
    const b = new Bench();
    b.restore('*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j CONNMARK --set-xmark 0x5/0xff\nCOMMIT\n' +
      '*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -m mark --mark 0 -p udp --dport 9 -j DROP\nCOMMIT\n');
    expect(b.send(udp('198.18.1.1', '198.18.1.2', 1000, 9)).verdict).toBe(V.DROP);
    expect(b.ctCount()).toBe(0);
  });
});
