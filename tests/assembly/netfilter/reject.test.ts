// REJECT replies (assembly/reply/): ICMP and ICMPv6 destination-unreachable of each
// --reject-with code and TCP resets, checked byte by byte against what nf_reject_ipv4/ipv6 and
// icmp_send()/icmpv6_send() produce, checksums included; and the cases where nothing is sent.
import { describe, it, expect } from 'vitest';
import { buildPacket, checksumsValid, decodePacket } from '../../../host-node/core/packet';
import { Bench, filterWith, tcp, udp, V, IS } from './harness';

function rejectWith(withOpt: string, family: 4 | 6 = 4): Bench {
  const b = new Bench();
  b.local(family === 4 ? '198.18.0.2' : 'fd00::2');
  b.masq(family === 4 ? '198.18.255.1' : 'fd00::ff');
  const proto = withOpt === 'tcp-reset' ? '-p tcp ' : '';
  b.restore(filterWith(`-A TEST ${proto}-j REJECT --reject-with ${withOpt}`), { family });
  return b;
}

describe('ICMP unreachable', () => {
  const codes: [string, number][] = [
    ['icmp-net-unreachable', 0], ['icmp-host-unreachable', 1], ['icmp-proto-unreachable', 2],
    ['icmp-port-unreachable', 3], ['icmp-net-prohibited', 9], ['icmp-host-prohibited', 10],
    ['icmp-admin-prohibited', 13],
  ];
  for (const [name, code] of codes) {
    it(`${name} → type 3 code ${code}`, () => {
      const b = rejectWith(name);
      const orig = buildPacket(udp('198.18.0.1', '198.18.0.2', 5353, 53, { tos: 0x10, payload: 'hello' }));
      const r = b.send(orig);
      expect(r.verdict).toBe(V.REPLY);
      expect(r.pkt.src).toBe('198.18.0.2');      // the rejected packet's destination (local)
      expect(r.pkt.dst).toBe('198.18.0.1');
      expect(r.pkt.ttl).toBe(64);
      expect(r.bytes[1]).toBe(0xc0 | (0x10 & 0x1e));
      expect(r.pkt.icmp!.type).toBe(3);
      expect(r.pkt.icmp!.code).toBe(code);
      // The whole original is quoted (it is far below 576 bytes).
      expect(r.bytes.length).toBe(28 + orig.length);
      expect(Array.from(r.bytes.slice(28))).toEqual(Array.from(orig));
      expect(checksumsValid(r.bytes)).toBe(true);
      expect(b.stat(IS.REJECT_REPLIES)).toBe(1n);
    });
  }

  it('quotes at most 548 bytes, and comes from the node when the destination is not local', () => {
    const b = rejectWith('icmp-port-unreachable');
    const big = buildPacket(udp('198.18.0.1', '198.18.7.7', 1, 2, { payload: new Uint8Array(1000) }));
    const r = b.send(big, { cap: 2048 });
    expect(r.bytes.length).toBe(576);
    expect(r.pkt.src).toBe('198.18.255.1');
    // Rejected in FORWARD: quoted as ip_forward() left it, one hop lower (header checksum updated).
    const seen = buildPacket(udp('198.18.0.1', '198.18.7.7', 1, 2, { payload: new Uint8Array(1000), ttl: 63 }));
    expect(Array.from(r.bytes.slice(28))).toEqual(Array.from(seen.slice(0, 548)));
    expect(checksumsValid(r.bytes)).toBe(true);
  });

  it('quotes a packet to the node as it came (INPUT), and one passing through one hop lower (FORWARD), IPv4 and IPv6', () => {
    for (const [family, node, far] of [[4, '198.18.0.2', '198.18.7.7'], [6, 'fd00::2', 'fd00::7:7']] as const) {
      const b = rejectWith(family === 6 ? 'icmp6-port-unreachable' : 'icmp-port-unreachable', family);
      const client = family === 6 ? 'fd00::1' : '198.18.0.1';
      for (const [dst, hops] of [[node, 64], [far, 63]] as const) {
        const r = b.send(buildPacket(udp(client, dst, 1, 2, { payload: 'x' })));
        expect(r.verdict, `${dst}`).toBe(V.REPLY);
        const quoted = r.bytes.slice(family === 6 ? 48 : 28);
        expect(Array.from(quoted), `${dst}`).toEqual(Array.from(buildPacket(udp(client, dst, 1, 2, { payload: 'x', ttl: hops }))));
        expect(checksumsValid(r.bytes)).toBe(true);
      }
    }
  });

  it('sends nothing about an ICMP error, to a broadcast, or for a bad UDP checksum', () => {
    const b = rejectWith('icmp-port-unreachable');
    const quote = buildPacket(udp('198.18.0.2', '198.18.0.1', 1, 2)).slice(0, 28);
    const err = b.send({ src: '198.18.0.1', dst: '198.18.0.2', proto: 'icmp', icmp: { type: 3, code: 3, quote } });
    expect(err.verdict).toBe(V.DROP);
    expect(b.send(udp('198.18.0.1', '255.255.255.255', 1, 2)).verdict).toBe(V.DROP);
    const bad = buildPacket(udp('198.18.0.1', '198.18.0.2', 1, 2, { payload: 'x' }));
    bad[bad.length - 1] ^= 0xff;
    expect(b.send(bad).verdict).toBe(V.DROP);
    expect(b.stat(IS.REJECT_SILENT)).toBe(3n);
    expect(b.stat(IS.REJECT_REPLIES)).toBe(0n);
  });

  it('fits the reply into a small slot by quoting less', () => {
    const b = rejectWith('icmp-port-unreachable');
    const p = buildPacket(udp('198.18.0.1', '198.18.0.2', 1, 2, { payload: new Uint8Array(100) }));
    const r = b.send(p, { cap: 100 });
    expect(r.verdict).toBe(V.REPLY);
    expect(r.bytes.length).toBe(100);
    expect(checksumsValid(r.bytes)).toBe(true);
  });
});

describe('ICMPv6 unreachable', () => {
  const codes: [string, number][] = [
    ['icmp6-no-route', 0], ['icmp6-adm-prohibited', 1], ['icmp6-addr-unreachable', 3],
    ['icmp6-port-unreachable', 4], ['icmp6-policy-fail', 5], ['icmp6-reject-route', 6],
  ];
  for (const [name, code] of codes) {
    it(`${name} → type 1 code ${code}`, () => {
      const b = rejectWith(name, 6);
      const orig = buildPacket(udp('fd00::1', 'fd00::2', 5353, 53, { payload: 'v6' }));
      const r = b.send(orig);
      expect(r.verdict).toBe(V.REPLY);
      expect(r.pkt.family).toBe(6);
      expect(r.pkt.src).toBe('fd00::2');
      expect(r.pkt.dst).toBe('fd00::1');
      expect(r.pkt.ttl).toBe(64);
      expect(r.pkt.icmp!.type).toBe(1);
      expect(r.pkt.icmp!.code).toBe(code);
      expect(Array.from(r.bytes.slice(48))).toEqual(Array.from(orig));
      expect(checksumsValid(r.bytes)).toBe(true);
    });
  }

  it('quotes at most 1232 bytes; never answers an ICMPv6 error or a multicast destination', () => {
    const b = rejectWith('icmp6-port-unreachable', 6);
    const big = buildPacket(udp('fd00::1', 'fd00::2', 1, 2, { payload: new Uint8Array(2000) }));
    const r = b.send(big, { cap: 4096 });
    expect(r.bytes.length).toBe(1280);
    expect(checksumsValid(r.bytes)).toBe(true);
    const quote = buildPacket(udp('fd00::2', 'fd00::1', 1, 2)).slice(0, 48);
    expect(b.send({ src: 'fd00::1', dst: 'fd00::2', proto: 'icmpv6', icmp: { type: 1, code: 4, quote } }).verdict).toBe(V.DROP);
    expect(b.send(udp('fd00::1', 'ff02::1', 1, 2)).verdict).toBe(V.DROP);
  });
});

describe('TCP reset', () => {
  it('answers a SYN with RST|ACK acknowledging seq + 1', () => {
    const b = rejectWith('tcp-reset');
    const r = b.send(tcp('198.18.0.1', '198.18.0.2', 40000, 80, 'S', { seq: 1000 }));
    expect(r.verdict).toBe(V.REPLY);
    expect(r.bytes.length).toBe(40);
    expect(r.pkt.src).toBe('198.18.0.2');
    expect(r.pkt.dst).toBe('198.18.0.1');
    expect(r.pkt.sport).toBe(80);
    expect(r.pkt.dport).toBe(40000);
    expect(r.pkt.flags).toBe('RA');
    expect(r.pkt.seq).toBe(0);
    expect(r.pkt.ack).toBe(1001);
    expect(r.bytes[6]! & 0x40).toBe(0x40);     // DF
    expect(checksumsValid(r.bytes)).toBe(true);
  });

  it('answers a segment with ACK by a bare RST at its ack number; counts payload and FIN', () => {
    const b = rejectWith('tcp-reset');
    const a = b.send(tcp('198.18.0.1', '198.18.0.2', 40001, 80, 'A', { seq: 5, ack: 777 }));
    expect(a.pkt.flags).toBe('R');
    expect(a.pkt.seq).toBe(777);
    expect(a.pkt.ack).toBe(0);
    const p = b.send(tcp('198.18.0.1', '198.18.0.2', 40002, 80, 'FP', { seq: 10, payload: 'abcd' }));
    expect(p.pkt.flags).toBe('RA');
    expect(p.pkt.ack).toBe(10 + 4 + 1);
  });

  it('never answers a RST, nor a segment with a bad checksum, nor anything but TCP', () => {
    const b = rejectWith('tcp-reset');
    expect(b.send(tcp('198.18.0.1', '198.18.0.2', 1, 80, 'R')).verdict).toBe(V.DROP);
    const bad = buildPacket(tcp('198.18.0.1', '198.18.0.2', 1, 80, 'S'));
    bad[bad.length - 3] ^= 1;
    expect(b.send(bad).verdict).toBe(V.DROP);
    expect(b.stat(IS.REJECT_SILENT)).toBe(2n);
    const u = buildPacket(udp('198.18.0.1', '198.18.0.2', 1, 2));
    b.core.put(u, b.core.scratch);
    expect(b.x.reject!(b.core.scratch, u.length, 256, 0xffff)).toBe(0);
  });

  it('IPv6 reset', () => {
    const b = rejectWith('tcp-reset', 6);
    const r = b.send(tcp('fd00::1', 'fd00::2', 40000, 443, 'S', { seq: 41 }));
    expect(r.bytes.length).toBe(60);
    const d = decodePacket(r.bytes);
    expect(d.src).toBe('fd00::2');
    expect(d.flags).toBe('RA');
    expect(d.ack).toBe(42);
    expect(d.ttl).toBe(64);
    expect(checksumsValid(r.bytes)).toBe(true);
  });
});

describe('reply builder on its own (direct mode use)', () => {
  it('returns 0 and leaves the slot alone when no reply may be sent', () => {
    const b = new Bench();
    const p = buildPacket(tcp('198.18.0.1', '198.18.0.2', 1, 80, 'R'));
    const at = b.core.scratch;
    b.core.put(p, at);
    expect(b.x.reject!(at, p.length, 256, 0xffff)).toBe(0);
    expect(Array.from(b.core.get(at, p.length))).toEqual(Array.from(p));
  });
});
