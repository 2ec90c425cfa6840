// Forwarding methods on the bytes: masquerading (both directions, checksums — compared with packets
// built independently), direct routing (unchanged, next hop reported), local, IPIP tunnels (outer
// IPv4/IPv6 header: protocol 4/41, lengths, TTL, DS/ECN, DF, checksum) and ip_vs_leave's ICMP reply.
import { describe, it, expect } from 'vitest';
import { Lab, V, R, tcp, udp } from './harness';
import { buildPacket, decodePacket, checksumsValid, parseIP, type PacketSpec } from '../../../host-node/core/packet';

const VIP = '198.18.0.100';
const RS = '198.18.1.1';
const CL = '198.18.7.1';

function ipv4HeaderOk(b: Uint8Array): boolean {
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum === 0xffff;
}

describe('masquerading', () => {
  it('rewrites destination to the real server and the reply back to the virtual service, byte for byte', () => {
    const lab = new Lab();
    const { ids: [dest] } = lab.service({ protocol: 'tcp', address: VIP, port: 80 }, [{ address: RS, port: 8080, forwarding: 'masq' }]);
    const syn: PacketSpec = { ...tcp(CL, 40000, VIP, 80, 'S', 12), seq: 1234, id: 77 };
    const s = lab.send(syn);
    expect([s.verdict, s.dest, s.result.fwd, s.result.nextHop]).toEqual([V.FORWARD, dest, 0, RS]);
    expect(Array.from(s.bytes)).toEqual(Array.from(buildPacket({ ...syn, dst: RS, dport: 8080 })));
    const reply: PacketSpec = { ...tcp(RS, 8080, CL, 40000, 'SA', 7), seq: 999, ack: 1235, id: 5 };
    const r = lab.send(reply);
    expect([r.verdict, r.result.flags & 8]).toEqual([V.FORWARD, 8]);
    expect(Array.from(r.bytes)).toEqual(Array.from(buildPacket({ ...reply, src: VIP, sport: 80 })));
    expect(lab.p.stats(lab.p.services()[0]!.id)).toMatchObject({ conns: 1n, inpkts: 1n, outpkts: 1n, inbytes: BigInt(s.bytes.length), outbytes: BigInt(r.bytes.length) });
  });

  it('IPv6 and UDP keep valid checksums', () => {
    const lab = new Lab();
    lab.service({ protocol: 'udp', address: 'fd00::100', port: 53 }, [{ address: 'fd00::1:1', port: 5353, forwarding: 'masq' }]);
    const q = udp('fd00::7', 3333, 'fd00::100', 53, 30);
    const s = lab.send(q);
    expect(checksumsValid(s.bytes)).toBe(true);
    expect(Array.from(s.bytes)).toEqual(Array.from(buildPacket({ ...q, dst: 'fd00::1:1', dport: 5353 })));
    const r = lab.send(udp('fd00::1:1', 5353, 'fd00::7', 3333, 40));
    expect(decodePacket(r.bytes)).toMatchObject({ src: 'fd00::100', sport: 53, checksumsOk: true });
  });

  it('replies are not matched for direct-routing connections (they never pass the director)', () => {
    const lab = new Lab();
    lab.service({ protocol: 'tcp', address: VIP, port: 80 }, [{ address: RS, port: 80, forwarding: 'droute' }]);
    lab.send(tcp(CL, 40000, VIP, 80, 'S'));
    expect(lab.send(tcp(RS, 80, CL, 40000, 'SA')).verdict).toBe(V.NOT_IPVS);
  });
});

describe('direct routing and local', () => {
  it('direct routing leaves the bytes alone and names the real server as next hop', () => {
    const lab = new Lab();
    const { ids: [dest] } = lab.service({ protocol: 'tcp', address: VIP, port: 80 }, [{ address: RS, port: 80 }]);
    const p = buildPacket(tcp(CL, 40000, VIP, 80, 'S', 20));
    const s = lab.send(p);
    expect([s.verdict, s.dest, s.result.fwd, s.result.nhFamily, s.result.nextHop]).toEqual([V.FORWARD, dest, 3, 4, RS]);
    expect(Array.from(s.bytes)).toEqual(Array.from(p));
  });

  it('local delivery passes the packet unchanged with no next hop', () => {
    const lab = new Lab();
    lab.service({ protocol: 'tcp', address: VIP, port: 80 }, [{ address: VIP, port: 80, forwarding: 'local' }]);
    const s = lab.send(tcp(CL, 40000, VIP, 80, 'S'));
    expect([s.verdict, s.result.fwd, s.result.nextHop]).toEqual([V.PASS, 1, undefined]);
  });
});

describe('IPIP tunnelling', () => {
  function tunLab(svcAddr: string, destAddr: string) {
    const lab = new Lab();
    lab.p.setTunnelSource('198.18.0.1');
    lab.p.setTunnelSource('fd00::1');
    lab.service({ protocol: 'tcp', address: svcAddr, port: 80 }, [{ address: destAddr, port: 80, forwarding: 'tunnel' }]);
    return lab;
  }

  it('IPv4 in IPv4: protocol 4, +20 bytes, TTL and DF from the inner packet, id 0 with DF, ECN CE → ECT(0)', () => {
    const lab = tunLab(VIP, RS);
    const inner = buildPacket({ ...tcp(CL, 40000, VIP, 80, 'S', 10), ttl: 33, tos: 0xb8 | 3, df: true });
    const s = lab.send(inner, { cap: inner.length + 20 });
    expect([s.verdict, s.result.fwd, s.result.nextHop]).toEqual([V.FORWARD, 2, RS]);
    const o = s.bytes;
    expect(o.length).toBe(inner.length + 20);
    expect(o[0]).toBe(0x45);
    expect(o[1]).toBe(0xb8 | 2);                               // DSCP kept, CE encapsulated as ECT(0)
    expect((o[2]! << 8) | o[3]!).toBe(inner.length + 20);
    expect((o[4]! << 8) | o[5]!).toBe(0);                      // id 0: DF set
    expect((o[6]! << 8) | o[7]!).toBe(0x4000);
    expect([o[8], o[9]]).toEqual([33, 4]);
    expect(Array.from(o.subarray(12, 16))).toEqual(Array.from(parseIP('198.18.0.1')));
    expect(Array.from(o.subarray(16, 20))).toEqual(Array.from(parseIP(RS)));
    expect(ipv4HeaderOk(o)).toBe(true);
    expect(Array.from(o.subarray(20))).toEqual(Array.from(inner));
  });

  it('without DF the outer header takes a running id and no DF', () => {
    const lab = tunLab(VIP, RS);
    const inner = buildPacket({ ...tcp(CL, 40000, VIP, 80, 'S'), tos: 0x01 });
    const o = lab.send(inner).bytes;
    expect((o[6]! << 8) | o[7]!).toBe(0);
    expect((o[4]! << 8) | o[5]!).not.toBe(0);
    expect(o[1]).toBe(0x01);                                    // ECT(1) kept
    expect(ipv4HeaderOk(o)).toBe(true);
  });

  it('IPv6 in IPv6: next header 41, payload length = inner length, hop limit and traffic class', () => {
    const lab = tunLab('fd00::100', 'fd00::1:1');
    const inner = buildPacket({ ...tcp('fd00::7', 40000, 'fd00::100', 80, 'S', 4), ttl: 9, tos: 0x28 });
    const o = lab.send(inner).bytes;
    expect(o.length).toBe(inner.length + 40);
    expect(o[0]! >> 4).toBe(6);
    expect(((o[0]! & 15) << 4) | (o[1]! >> 4)).toBe(0x28);
    expect((o[4]! << 8) | o[5]!).toBe(inner.length);
    expect([o[6], o[7]]).toEqual([41, 9]);
    expect(Array.from(o.subarray(8, 24))).toEqual(Array.from(parseIP('fd00::1')));
    expect(Array.from(o.subarray(24, 40))).toEqual(Array.from(parseIP('fd00::1:1')));
    expect(Array.from(o.subarray(40))).toEqual(Array.from(inner));
  });

  it('an IPv4 service may tunnel to an IPv6 real server (next header 4)', () => {
    const lab = tunLab(VIP, 'fd00::1:1');
    const inner = buildPacket(tcp(CL, 40000, VIP, 80, 'S'));
    const o = lab.send(inner).bytes;
    expect([o[0]! >> 4, o[6], (o[4]! << 8) | o[5]!]).toEqual([6, 4, inner.length]);
  });

  it('a tunnel that would not fit the slot is dropped (too big); no source address is a policy drop', () => {
    const lab = tunLab(VIP, RS);
    const inner = buildPacket(tcp(CL, 40000, VIP, 80, 'S'));
    const s = lab.send(inner, { cap: inner.length + 19 });
    expect([s.verdict, s.reason]).toEqual([V.DROP, R.TOO_BIG]);
    const lab2 = new Lab();
    lab2.service({ protocol: 'tcp', address: VIP, port: 80 }, [{ address: RS, port: 80, forwarding: 'tunnel' }]);
    expect(lab2.send(inner).reason).toBe(R.POLICY);
    expect(lab2.p.counters().no_tunnel_source).toBe(1n);
  });
});

describe('no destination (ip_vs_leave)', () => {
  it('answers ICMP port unreachable, also for TCP, and IPv6 with ICMPv6', () => {
    const lab = new Lab();
    lab.service({ protocol: 'tcp', address: VIP, port: 80 });
    lab.service({ protocol: 'tcp', address: 'fd00::100', port: 80 });
    const s = lab.send(tcp(CL, 40000, VIP, 80, 'S'));
    expect([s.verdict, s.reason]).toEqual([V.REPLY, R.NO_ENDPOINTS]);
    expect(s.pkt).toMatchObject({ dst: CL, proto: 1, icmp: { type: 3, code: 3 } });
    const s6 = lab.send(tcp('fd00::7', 40000, 'fd00::100', 80, 'S'));
    expect(s6.pkt).toMatchObject({ dst: 'fd00::7', proto: 58, icmp: { type: 1, code: 4 } });
    expect(lab.p.counters().no_dest).toBe(2n);
  });
});

describe('ICMP errors about connections (ip_vs_out_icmp / ip_vs_in_icmp)', () => {
  function natLab() {
    const lab = new Lab();
    lab.service({ protocol: 'udp', address: VIP, port: 53 }, [{ address: RS, port: 5353, forwarding: 'masq' }]);
    const sent = lab.send(udp(CL, 5000, VIP, 53, 8));
    return { lab, sent };
  }

  it('from the real server, about the client\'s datagram: source and quoted destination become the VIP', () => {
    const { lab, sent } = natLab();
    const err = buildPacket({ src: RS, dst: CL, proto: 'icmp', icmp: { type: 3, code: 3, quote: sent.bytes } });
    const s = lab.send(err);
    expect([s.verdict, s.result.flags & 8]).toEqual([V.FORWARD, 8]);
    expect(s.pkt).toMatchObject({ src: VIP, dst: CL, checksumsOk: true, icmp: { type: 3, inner: { src: CL, dst: VIP, sport: 5000, dport: 53 } } });
    expect(lab.p.counters().out_packets).toBe(1n);
  });

  it('from the outside, about a reply: masquerading puts the real server back', () => {
    const { lab } = natLab();
    const reply = lab.send(udp(RS, 5353, CL, 5000, 8)).bytes;   // VIP:53 → client as the client saw it
    const err = buildPacket({ src: '198.18.9.9', dst: VIP, proto: 'icmp', icmp: { type: 11, code: 0, quote: reply } });
    const s = lab.send(err);
    expect(s.verdict).toBe(V.FORWARD);
    expect(s.pkt).toMatchObject({ src: '198.18.9.9', dst: RS, checksumsOk: true, icmp: { type: 11, inner: { src: RS, sport: 5353, dst: CL, dport: 5000 } } });
  });

  it('direct routing forwards the error unchanged to the real server; unrelated errors are not IPVS\'s', () => {
    const lab = new Lab();
    lab.service({ protocol: 'udp', address: VIP, port: 53 }, [{ address: RS, port: 53 }]);
    lab.send(udp(CL, 5000, VIP, 53));
    const quote = buildPacket(udp(VIP, 53, CL, 5000));
    const err = buildPacket({ src: '198.18.9.9', dst: VIP, proto: 'icmp', icmp: { type: 3, code: 1, quote } });
    const s = lab.send(err);
    expect([s.verdict, s.result.nextHop]).toEqual([V.FORWARD, RS]);
    expect(Array.from(s.bytes)).toEqual(Array.from(err));
    const other = buildPacket({ src: '198.18.9.9', dst: VIP, proto: 'icmp', icmp: { type: 3, code: 1, quote: buildPacket(udp(VIP, 53, CL, 5001)) } });
    expect(lab.send(other).verdict).toBe(V.NOT_IPVS);
    const redirect = buildPacket({ src: '198.18.9.9', dst: VIP, proto: 'icmp', icmp: { type: 5, code: 1, quote } });
    expect(lab.send(redirect).verdict).toBe(V.NOT_IPVS);
  });
});
