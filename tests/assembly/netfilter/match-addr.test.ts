// Header matches: -s/-d (with `!`), -p, --sport/--dport, multiport, icmp/icmp6 types, tcp flags,
// -i/-o with `+`, addrtype, -f — each with packets that must and must not match, both families.
import { describe, it, expect } from 'vitest';
import { Bench, filterWith, tcp, udp, V } from './harness';

// Rule under test accepts-marks: the chain DROPs what matched, policy ACCEPT passes the rest.
function verdicts(rules: string, packets: Parameters<Bench['send']>[0][], family: 4 | 6 = 4, setup?: (b: Bench) => void, o: Parameters<Bench['send']>[1] = {}): boolean[] {
  const b = new Bench();
  setup?.(b);
  b.restore(filterWith(rules), { family });
  return packets.map((p) => b.send(p, o).verdict === V.DROP);
}

describe('addresses', () => {
  it('-s / -d prefixes and their inversion (IPv4)', () => {
    expect(verdicts('-A TEST -s 198.18.1.0/24 -j DROP', [
      tcp('198.18.1.77', '198.18.9.9', 1, 80), tcp('198.18.2.77', '198.18.9.9', 1, 80),
    ])).toEqual([true, false]);
    expect(verdicts('-A TEST ! -d 198.18.9.9 -j DROP', [
      tcp('198.18.1.1', '198.18.9.9', 1, 80), tcp('198.18.1.1', '198.18.9.8', 1, 80),
    ])).toEqual([false, true]);
    expect(verdicts('-A TEST -s 198.18.0.0/255.255.0.255 -j DROP', [
      tcp('198.18.7.0', '198.18.9.9', 1, 80), tcp('198.18.7.1', '198.18.9.9', 1, 80),
    ])).toEqual([true, false]);
  });

  it('-s / -d prefixes (IPv6)', () => {
    expect(verdicts('-A TEST -s fd00:1::/32 ! -d fd00:9::1 -j DROP', [
      tcp('fd00:1:5::1', 'fd00:9::2', 1, 80), tcp('fd00:1:5::1', 'fd00:9::1', 1, 80), tcp('fd00:2::1', 'fd00:9::2', 1, 80),
    ], 6)).toEqual([true, false, false]);
    expect(verdicts('-A TEST -d fd00::1:2/128 -j DROP', [
      udp('fd00::5', 'fd00::1:2', 1, 53), udp('fd00::5', 'fd00::1:3', 1, 53),
    ], 6)).toEqual([true, false]);
  });
});

describe('protocols and ports', () => {
  it('-p by name, number and inverted', () => {
    expect(verdicts('-A TEST -p udp -j DROP', [udp('198.18.0.1', '198.18.0.2', 1, 2), tcp('198.18.0.1', '198.18.0.2', 1, 2)])).toEqual([true, false]);
    expect(verdicts('-A TEST ! -p tcp -j DROP', [udp('198.18.0.1', '198.18.0.2', 1, 2), tcp('198.18.0.1', '198.18.0.2', 1, 2)])).toEqual([true, false]);
    expect(verdicts('-A TEST -p 132 -j DROP', [
      { src: '198.18.0.1', dst: '198.18.0.2', proto: 'sctp', sport: 5, dport: 6 }, udp('198.18.0.1', '198.18.0.2', 1, 2),
    ])).toEqual([true, false]);
    expect(verdicts('-A TEST -p all -j DROP', [udp('198.18.0.1', '198.18.0.2', 1, 2)])).toEqual([true]);
  });

  it('--sport / --dport ranges with `!`, tcp udp sctp', () => {
    const p = (proto: 'tcp' | 'udp' | 'sctp', sport: number, dport: number) => ({ src: '198.18.0.1', dst: '198.18.0.2', proto, sport, dport, flags: 'S' });
    expect(verdicts('-A TEST -p tcp --sport 1024:2000 ! --dport 22 -j DROP', [
      p('tcp', 1500, 80), p('tcp', 1500, 22), p('tcp', 80, 80), p('udp', 1500, 80),
    ])).toEqual([true, false, false, false]);
    expect(verdicts('-A TEST -p udp --dport 5000: -j DROP', [p('udp', 1, 5000), p('udp', 1, 4999), p('udp', 1, 65535)])).toEqual([true, false, true]);
    expect(verdicts('-A TEST -p sctp --dport 3868 -j DROP', [p('sctp', 1, 3868), p('sctp', 1, 3869)])).toEqual([true, false]);
    expect(verdicts('-A TEST -p tcp --dport 80 -j DROP', [p('tcp', 1, 80), p('tcp', 1, 81)], 4)).toEqual([true, false]);
  });

  it('ports in IPv6', () => {
    expect(verdicts('-A TEST -p tcp --dport 443 -j DROP', [tcp('fd00::1', 'fd00::2', 9, 443), tcp('fd00::1', 'fd00::2', 9, 80)], 6)).toEqual([true, false]);
  });

  it('multiport --dports / ! --sports / --ports', () => {
    expect(verdicts('-A TEST -p tcp -m multiport --dports 80,443,8000:8080 -j DROP', [
      tcp('198.18.0.1', '198.18.0.2', 1, 443), tcp('198.18.0.1', '198.18.0.2', 1, 8040), tcp('198.18.0.1', '198.18.0.2', 1, 8081),
    ])).toEqual([true, true, false]);
    expect(verdicts('-A TEST -p udp -m multiport ! --sports 53,123 -j DROP', [
      udp('198.18.0.1', '198.18.0.2', 53, 9), udp('198.18.0.1', '198.18.0.2', 54, 9),
    ])).toEqual([false, true]);
    expect(verdicts('-A TEST -p tcp -m multiport --ports 22 -j DROP', [
      tcp('198.18.0.1', '198.18.0.2', 22, 9), tcp('198.18.0.1', '198.18.0.2', 9, 22), tcp('198.18.0.1', '198.18.0.2', 9, 9),
    ])).toEqual([true, true, false]);
  });

  it('tcp flags and --syn', () => {
    const f = (flags: string) => tcp('198.18.0.1', '198.18.0.2', 1, 2, flags);
    expect(verdicts('-A TEST -p tcp --syn -j DROP', [f('S'), f('SA'), f('A'), f('SR')])).toEqual([true, false, false, false]);
    expect(verdicts('-A TEST -p tcp ! --tcp-flags ALL NONE -j DROP', [f(''), f('A')])).toEqual([false, true]);
    expect(verdicts('-A TEST -p tcp --tcp-flags SYN,ACK SYN,ACK -j DROP', [f('SA'), f('S'), f('SAP')])).toEqual([true, false, true]);
  });

  it('icmp types and codes; icmp6 types', () => {
    const i4 = (type: number, code = 0) => ({ src: '198.18.0.1', dst: '198.18.0.2', proto: 'icmp' as const, icmp: { type, code, id: 7 } });
    expect(verdicts('-A TEST -p icmp --icmp-type echo-request -j DROP', [i4(8), i4(0)])).toEqual([true, false]);
    expect(verdicts('-A TEST -p icmp ! --icmp-type any -j DROP', [i4(8), i4(13)])).toEqual([false, false]);
    expect(verdicts('-A TEST -p icmp --icmp-type 13/0 -j DROP', [i4(13, 0), i4(13, 1), i4(14, 0)])).toEqual([true, false, false]);
    const i6 = (type: number) => ({ src: 'fd00::1', dst: 'fd00::2', proto: 'icmpv6' as const, icmp: { type, id: 3 } });
    expect(verdicts('-A TEST -p icmpv6 --icmpv6-type echo-request -j DROP', [i6(128), i6(129)], 6)).toEqual([true, false]);
  });
});

describe('interfaces', () => {
  const setup = (b: Bench) => { b.ifname(3, 'veth1a2b'); b.ifname(4, 'eth0'); };
  it('-i with and without `+`, inverted', () => {
    const p = tcp('198.18.0.1', '198.18.0.2', 1, 80);
    expect(verdicts('-A TEST -i veth+ -j DROP', [p], 4, setup, { inIf: 3 })).toEqual([true]);
    expect(verdicts('-A TEST -i veth+ -j DROP', [p], 4, setup, { inIf: 4 })).toEqual([false]);
    expect(verdicts('-A TEST -i eth0 -j DROP', [p], 4, setup, { inIf: 4 })).toEqual([true]);
    expect(verdicts('-A TEST -i eth -j DROP', [p], 4, setup, { inIf: 4 })).toEqual([false]);
    expect(verdicts('-A TEST ! -i veth+ -j DROP', [p], 4, setup, { inIf: 4 })).toEqual([true]);
    expect(verdicts('-A TEST -i eth0 -j DROP', [p], 4, setup, { inIf: 0 })).toEqual([false]);
  });
  it('-o sees the egress interface in FORWARD, and no input interface in OUTPUT', () => {
    const p = tcp('198.18.0.1', '198.18.0.2', 1, 80);
    expect(verdicts('-A TEST -o eth0 -j DROP', [p], 4, setup, { inIf: 3, outIf: 4 })).toEqual([true]);
    const b = new Bench();
    setup(b);
    b.restore('*filter\n:OUTPUT ACCEPT [0:0]\n:T - [0:0]\n-A OUTPUT -j T\n-A T -i veth+ -j DROP\n-A T -o veth+ -j REJECT\nCOMMIT\n');
    // Locally generated: -i never matches in OUTPUT; -o does.
    const r = b.send(tcp('198.18.0.1', '198.18.0.2', 1, 80), { local: true, inIf: 3, outIf: 3 });
    expect(r.verdict).toBe(V.REPLY);
  });
});

describe('addrtype', () => {
  const setup = (b: Bench) => { b.local('198.18.5.5'); b.local('fd00::5'); };
  it('LOCAL destinations are the node addresses and loopback', () => {
    expect(verdicts('-A TEST -m addrtype --dst-type LOCAL -j DROP', [
      tcp('198.18.0.1', '198.18.5.5', 1, 2), tcp('198.18.0.1', '198.18.5.6', 1, 2),
    ], 4, setup)).toEqual([true, false]);
    expect(verdicts('-A TEST -m addrtype ! --dst-type LOCAL -j DROP', [
      tcp('198.18.0.1', '198.18.5.5', 1, 2), tcp('198.18.0.1', '198.18.5.6', 1, 2),
    ], 4, setup)).toEqual([false, true]);
  });
  it('UNICAST, MULTICAST, BROADCAST and src-type', () => {
    expect(verdicts('-A TEST -m addrtype --dst-type MULTICAST -j DROP', [
      udp('198.18.0.1', '224.0.0.5', 1, 2), udp('198.18.0.1', '198.18.0.9', 1, 2),
    ], 4, setup)).toEqual([true, false]);
    expect(verdicts('-A TEST -m addrtype --dst-type BROADCAST -j DROP', [
      udp('198.18.0.1', '255.255.255.255', 1, 2), udp('198.18.0.1', '198.18.0.9', 1, 2),
    ], 4, setup)).toEqual([true, false]);
    expect(verdicts('-A TEST -m addrtype --src-type LOCAL --dst-type UNICAST -j DROP', [
      udp('198.18.5.5', '198.18.0.9', 1, 2), udp('198.18.5.5', '198.18.5.5', 1, 2), udp('198.18.0.7', '198.18.0.9', 1, 2),
    ], 4, setup)).toEqual([true, false, false]);
  });
  it('IPv6 types: LOCAL, MULTICAST, UNICAST', () => {
    expect(verdicts('-A TEST -m addrtype --dst-type LOCAL -j DROP', [
      udp('fd00::1', 'fd00::5', 1, 2), udp('fd00::1', 'fd00::6', 1, 2), udp('fd00::1', '::1', 1, 2),
    ], 6, setup)).toEqual([true, false, true]);
    expect(verdicts('-A TEST -m addrtype --dst-type MULTICAST -j DROP', [
      udp('fd00::1', 'ff02::1', 1, 2), udp('fd00::1', 'fd00::6', 1, 2),
    ], 6, setup)).toEqual([true, false]);
    expect(verdicts('-A TEST -m addrtype --dst-type UNICAST -j DROP', [
      udp('fd00::1', 'ff02::1', 1, 2), udp('fd00::1', 'fd00::6', 1, 2),
    ], 6, setup)).toEqual([false, true]);
  });
});

describe('fragments', () => {
  it('-f never sees a later fragment (it is dropped before the tables) and a whole packet is no fragment', () => {
    const b = new Bench();
    b.restore(filterWith('-A TEST -f -j ACCEPT\n-A TEST ! -f -j DROP'));
    expect(b.send(udp('198.18.0.1', '198.18.0.2', 1, 2)).verdict).toBe(V.DROP);
    const later = b.send({ src: '198.18.0.1', dst: '198.18.0.2', proto: 'udp', frag: { offset: 8, more: false }, payload: new Uint8Array(8) });
    expect(later.verdict).toBe(V.DROP);
    expect(later.reason).toBe(4);
  });
});
