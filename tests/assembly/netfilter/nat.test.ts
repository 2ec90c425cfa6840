// NAT in iptables mode: kube-proxy's DNAT + KUBE-MARK-MASQ + MASQUERADE chains, the reply path,
// what filter FORWARD sees between the two NAT halves, confirm-on-accept, nat only for NEW, SNAT
// port ranges, DNAT address ranges, REDIRECT, ICMP errors about NATed connections, IPv6.
// Bytes are decoded and every checksum verified.
import { describe, it, expect } from 'vitest';
import { checksumsValid } from '../../../host-node/core/packet';
import { Bench, tcp, udp, V, CT, R } from './harness';

const VIP = '198.19.0.10';
const POD = '198.18.2.5';
const NODE = '198.19.255.1';

function kubeNat(extraFilter = ''): string {
  return `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SVC-A - [0:0]
:KUBE-SEP-1 - [0:0]
-A PREROUTING -j KUBE-SERVICES
-A OUTPUT -j KUBE-SERVICES
-A POSTROUTING -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -j MASQUERADE --random-fully
-A KUBE-SERVICES -m comment --comment "ns/a:http cluster IP" -d ${VIP}/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-A
-A KUBE-SVC-A ! -s 198.18.0.0/16 -d ${VIP}/32 -p tcp -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-A -j KUBE-SEP-1
-A KUBE-SEP-1 -s ${POD}/32 -j KUBE-MARK-MASQ
-A KUBE-SEP-1 -p tcp -m tcp -j DNAT --to-destination ${POD}:8080
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:SEEN - [0:0]
-A FORWARD -j SEEN
-A SEEN -s 198.19.100.1/32 -d ${POD}/32 -p tcp --dport 8080 -j RETURN
-A SEEN -s ${POD}/32 -d 198.19.100.1/32 -p tcp --sport 8080 -j RETURN
${extraFilter}
COMMIT
`;
}

function bench(extra = ''): Bench {
  const b = new Bench();
  b.local(NODE);
  b.masq(NODE);
  b.restore(kubeNat(extra));
  return b;
}

describe('kube-proxy service NAT', () => {
  it('DNATs a pod client to the endpoint without masquerade', () => {
    const b = bench();
    const r = b.send(tcp('198.18.1.1', VIP, 40000, 80));
    expect(r.verdict).toBe(V.FORWARD);
    expect(r.ctstate).toBe(CT.NEW);
    expect(r.pkt.src).toBe('198.18.1.1');
    expect(r.pkt.sport).toBe(40000);
    expect(r.pkt.dst).toBe(POD);
    expect(r.pkt.dport).toBe(8080);
    expect(checksumsValid(r.bytes)).toBe(true);
    expect(r.mark).toBe(0);
    expect(b.ctCount()).toBe(1);
  });

  it('masquerades an outside client, and the reply comes back as the service', () => {
    const b = bench();
    const r = b.send(tcp('198.19.100.1', VIP, 40001, 80));
    expect(r.verdict).toBe(V.FORWARD);
    expect(r.pkt.src).toBe(NODE);
    expect(r.pkt.dst).toBe(POD);
    expect(r.pkt.dport).toBe(8080);
    expect(checksumsValid(r.bytes)).toBe(true);
    // KUBE-POSTROUTING cleared the masquerade bit again.
    expect(r.mark).toBe(0);
    const mport = r.pkt.sport;
    const back = b.send(tcp(POD, NODE, 8080, mport, 'SA'));
    expect(back.verdict).toBe(V.FORWARD);
    expect(back.ctstate).toBe(CT.ESTABLISHED);
    expect(back.pkt.src).toBe(VIP);
    expect(back.pkt.sport).toBe(80);
    expect(back.pkt.dst).toBe('198.19.100.1');
    expect(back.pkt.dport).toBe(40001);
    expect(checksumsValid(back.bytes)).toBe(true);
    const next = b.send(tcp('198.19.100.1', VIP, 40001, 80, 'A'));
    expect(next.pkt.src).toBe(NODE);
    expect(next.pkt.sport).toBe(mport);
    expect(next.pkt.dst).toBe(POD);
    expect(b.ctCount()).toBe(1);
  });

  it('filter FORWARD sees the destination translated and the source not yet (both directions)', () => {
    const b = bench();
    const r = b.send(tcp('198.19.100.1', VIP, 40002, 80));
    b.send(tcp(POD, NODE, 8080, r.pkt.sport, 'SA'));
    const c = b.counters(4, 'filter', 'SEEN');
    expect(c[0]![0]).toBe(1n);   // original direction: src client, dst endpoint
    expect(c[1]![0]).toBe(1n);   // reply: src endpoint, dst client (masquerade undone at PREROUTING)
  });

  it('traverses nat only for the first packet of a connection', () => {
    const b = bench();
    b.send(tcp('198.18.1.1', VIP, 40003, 80));
    b.send(tcp('198.18.1.1', VIP, 40003, 80, 'A'));
    b.send(tcp('198.18.1.1', VIP, 40003, 80, 'A'));
    expect(b.counters(4, 'nat', 'KUBE-SERVICES')[0]![0]).toBe(1n);
    expect(b.counters(4, 'filter', 'FORWARD')[0]![0]).toBe(3n);
  });

  it('a first packet dropped by filter leaves no connection behind', () => {
    const b = bench(`-A SEEN -p tcp --dport 8080 -j DROP`);
    const r = b.send(tcp('198.18.1.1', VIP, 40004, 80));
    expect(r.verdict).toBe(V.DROP);
    expect(r.reason).toBe(R.POLICY);
    expect(b.ctCount()).toBe(0);
  });

  it('hairpin: an endpoint reaching itself through the service is masqueraded', () => {
    const b = bench();
    const r = b.send(tcp(POD, VIP, 40005, 80));
    expect(r.pkt.src).toBe(NODE);
    expect(r.pkt.dst).toBe(POD);
  });

  it('locally generated traffic is DNATed in OUTPUT and masqueraded in POSTROUTING', () => {
    const b = bench();
    const r = b.send(tcp(NODE, VIP, 40006, 80), { local: true });
    expect(r.verdict).toBe(V.FORWARD);
    expect(r.pkt.dst).toBe(POD);
    expect(r.pkt.dport).toBe(8080);
    expect(checksumsValid(r.bytes)).toBe(true);
  });
});

describe('NAT targets', () => {
  function natBench(rules: string, family: 4 | 6 = 4): Bench {
    const b = new Bench();
    b.local(family === 4 ? NODE : 'fd00::ff');
    b.masq(family === 4 ? NODE : 'fd00::ff');
    b.restore(`*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n${rules}\nCOMMIT\n`, { family });
    return b;
  }

  it('SNAT to a port range keeps a port already in range and unused, else picks one in range', () => {
    const b = natBench('-A POSTROUTING -p udp -j SNAT --to-source 198.19.9.9:2000-2010');
    const a = b.send(udp('198.18.0.1', '198.19.1.1', 2005, 53));
    expect(a.pkt.src).toBe('198.19.9.9');
    expect(a.pkt.sport).toBe(2005);
    const c = b.send(udp('198.18.0.2', '198.19.1.1', 2005, 53));
    expect(c.pkt.src).toBe('198.19.9.9');
    expect(c.pkt.sport).toBeGreaterThanOrEqual(2000);
    expect(c.pkt.sport).toBeLessThanOrEqual(2010);
    expect(c.pkt.sport).not.toBe(2005);
    const d = b.send(udp('198.18.0.3', '198.19.1.1', 9999, 53));
    expect(d.pkt.sport).toBeGreaterThanOrEqual(2000);
    expect(d.pkt.sport).toBeLessThanOrEqual(2010);
    expect(checksumsValid(d.bytes)).toBe(true);
  });

  it('SNAT runs out of ports: the packet is dropped with nat_ports', () => {
    const b = natBench('-A POSTROUTING -p udp -j SNAT --to-source 198.19.9.9:3000');
    expect(b.send(udp('198.18.0.1', '198.19.1.1', 5, 53)).pkt.sport).toBe(3000);
    const r = b.send(udp('198.18.0.2', '198.19.1.1', 5, 53));
    // A single-port range is taken as is (the kernel then fails at confirm): the clash is refused.
    expect(r.verdict).toBe(V.DROP);
    expect(b.ctCount()).toBe(1);
  });

  it('DNAT to one port keeps it even when that reply is taken, and MASQUERADE then makes the connection unique', () => {
    // nf_nat_l4proto_unique_tuple(): a one-port range is set and returned whether or not it is free.
    const b = natBench('-A PREROUTING -d 198.19.0.1 -p tcp -j DNAT --to-destination 198.18.50.1:8080\n-A POSTROUTING -j MASQUERADE');
    // The backend itself opens 198.18.50.1:8080 → 198.19.7.2:1001: exactly the reply the DNAT below
    // would give a connection from 198.19.7.2:1001.
    expect(b.send(tcp('198.18.50.1', '198.19.7.2', 8080, 1001)).verdict).toBe(V.FORWARD);
    const r = b.send(tcp('198.19.7.2', '198.19.0.1', 1001, 80));
    expect(r.verdict).toBe(V.FORWARD);
    expect(r.pkt.dst).toBe('198.18.50.1');
    expect(r.pkt.dport).toBe(8080);
    expect(r.pkt.src).toBe(NODE);
    expect(b.ctCount()).toBe(2);
  });

  it('MASQUERADE without --to-ports keeps the client port when free', () => {
    const b = natBench('-A POSTROUTING -j MASQUERADE');
    const r = b.send(tcp('198.18.0.1', '198.19.1.1', 33333, 443));
    expect(r.pkt.src).toBe(NODE);
    expect(r.pkt.sport).toBe(33333);
    const again = b.send(tcp('198.18.0.2', '198.19.1.1', 33333, 443));
    expect(again.pkt.src).toBe(NODE);
    expect(again.pkt.sport).not.toBe(33333);
    expect(again.pkt.sport).toBeGreaterThanOrEqual(1024);
  });

  it('DNAT to an address range hashes the client: stable per client, spread over the range', () => {
    const b = natBench('-A PREROUTING -p tcp -j DNAT --to-destination 198.18.50.1-198.18.50.8:80');
    const seen = new Set<string>();
    for (let i = 1; i <= 64; i++) seen.add(b.send(tcp(`198.19.7.${i}`, '198.19.0.1', 1000, 80)).pkt.dst);
    expect(seen.size).toBeGreaterThan(3);
    for (const d of seen) expect(d.startsWith('198.18.50.')).toBe(true);
    const first = b.send(tcp('198.19.7.1', '198.19.0.1', 1001, 80)).pkt.dst;
    expect(b.send(tcp('198.19.7.1', '198.19.0.1', 1002, 80)).pkt.dst).toBe(first);
  });

  it('an address range written backwards is loaded as the kernel loads it, and its choice wraps around', () => {
    // iptables and xt_nat accept max < min; find_best_ips_proto()'s max - min + 1 then wraps, so
    // a client is hashed over nearly the whole address space (stable per client, as ever).
    const b = natBench('-A POSTROUTING -p tcp -j SNAT --to-source 198.19.9.9-198.19.9.4');
    const r = b.send(tcp('198.18.0.1', '198.19.1.1', 1000, 80));
    expect(r.verdict).toBe(V.FORWARD);
    expect(r.pkt.src).not.toBe('198.18.0.1');
    expect(b.send(tcp('198.18.0.1', '198.19.1.1', 1001, 80)).pkt.src).toBe(r.pkt.src);
    expect(checksumsValid(r.bytes)).toBe(true);
    const b6 = natBench('-A POSTROUTING -p tcp -j SNAT --to-source fd00::9-fd00::4', 6);
    const r6 = b6.send(tcp('fd00:1::1', 'fd00:96::10', 5000, 80));
    expect(r6.verdict).toBe(V.FORWARD);
    expect(r6.pkt.src).not.toBe('fd00:1::1');
  });

  it('SNAT keeps an IPv6 source inside its range as one number, though not inside it word by word', () => {
    // nf_nat_inet_in_range(): ipv6_addr_cmp against both ends. fd00::8000:0:0 lies between
    // fd00::ff and fd00:0:0:1:: though its third word is above both ends' third words.
    const b = natBench('-A POSTROUTING -p tcp -j SNAT --to-source fd00::ff-fd00:0:0:1::', 6);
    expect(b.send(tcp('fd00::8000:0:0', 'fd00:96::10', 5000, 80)).pkt.src).toBe('fd00::8000:0:0');
    expect(b.send(tcp('fd00:0:0:2::1', 'fd00:96::10', 5000, 80)).pkt.src).not.toBe('fd00:0:0:2::1');
  });

  it('DNAT to a port range searches from its first port for a destination', () => {
    const b = natBench('-A PREROUTING -p udp -j DNAT --to-destination 198.18.50.1:7000-7009');
    expect(b.send(udp('198.19.7.1', '198.19.0.1', 1000, 53)).pkt.dport).toBe(7000);
    expect(b.send(udp('198.19.7.1', '198.19.0.1', 1000, 7005)).pkt.dport).toBe(7005);
  });

  it('REDIRECT sends to the node address (and loopback for local traffic)', () => {
    const b = natBench('-A PREROUTING -p tcp --dport 8080 -j REDIRECT --to-ports 80\n-A OUTPUT -p tcp --dport 8080 -j REDIRECT --to-ports 81');
    const r = b.send(tcp('198.18.0.1', '198.19.3.3', 1000, 8080));
    expect(r.pkt.dst).toBe(NODE);
    expect(r.pkt.dport).toBe(80);
    const l = b.send(tcp(NODE, '198.19.3.3', 1000, 8080), { local: true });
    expect(l.pkt.dst).toBe('127.0.0.1');
    expect(l.pkt.dport).toBe(81);
  });

  it('MASQUERADE with no node address drops and counts', () => {
    const b = new Bench();
    b.restore('*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n');
    const r = b.send(tcp('198.18.0.1', '198.19.1.1', 1, 2));
    expect(r.verdict).toBe(V.DROP);
    expect(b.stat(4)).toBe(1n);
  });

  it('IPv6 DNAT and masquerade, reply restored', () => {
    const b = natBench('-A PREROUTING -d fd00:96::10 -p tcp --dport 80 -j DNAT --to-destination [fd00:244::5]:8080\n-A POSTROUTING -d fd00:244::5 -j MASQUERADE', 6);
    const r = b.send(tcp('fd00:1::1', 'fd00:96::10', 5000, 80));
    expect(r.pkt.dst).toBe('fd00:244::5');
    expect(r.pkt.dport).toBe(8080);
    expect(r.pkt.src).toBe('fd00::ff');
    expect(checksumsValid(r.bytes)).toBe(true);
    const back = b.send(tcp('fd00:244::5', 'fd00::ff', 8080, r.pkt.sport, 'SA'));
    expect(back.pkt.src).toBe('fd00:96::10');
    expect(back.pkt.sport).toBe(80);
    expect(back.pkt.dst).toBe('fd00:1::1');
    expect(back.pkt.dport).toBe(5000);
    expect(checksumsValid(back.bytes)).toBe(true);
  });

  it('ICMP echo is DNATed by address and its reply restored', () => {
    const b = natBench('-A PREROUTING -d 198.19.0.1 -p icmp -j DNAT --to-destination 198.18.9.1');
    const r = b.send({ src: '198.18.0.1', dst: '198.19.0.1', proto: 'icmp', icmp: { type: 8, id: 77, seq: 1 } });
    expect(r.pkt.dst).toBe('198.18.9.1');
    expect(checksumsValid(r.bytes)).toBe(true);
    const back = b.send({ src: '198.18.9.1', dst: '198.18.0.1', proto: 'icmp', icmp: { type: 0, id: 77, seq: 1 } });
    expect(back.verdict).toBe(V.FORWARD);
    expect(back.pkt.src).toBe('198.19.0.1');
    expect(checksumsValid(back.bytes)).toBe(true);
  });

  it('an ICMP error about a NATed connection is translated inside and out', () => {
    const b = bench();
    const r = b.send(tcp('198.19.100.1', VIP, 40010, 80));
    const mport = r.pkt.sport;
    // The endpoint's reply (POD:8080 → NODE:mport) fails somewhere; the router 198.19.200.1 tells
    // the endpoint... here the client side: an error quoting what the client got.
    const quoted = r.bytes; // client→endpoint as the endpoint sees it: NODE:mport → POD:8080
    const err = b.send({ src: POD, dst: NODE, proto: 'icmp', icmp: { type: 3, code: 3, quote: quoted.slice(0, 28) } });
    expect(err.verdict).toBe(V.FORWARD);
    expect(err.ctstate).toBe(CT.RELATED);
    expect(err.pkt.dst).toBe('198.19.100.1');
    expect(err.pkt.src).toBe(VIP);
    const inner = err.pkt.icmp!.inner!;
    expect(inner.src).toBe('198.19.100.1');
    expect(inner.sport).toBe(40010);
    expect(inner.dst).toBe(VIP);
    expect(inner.dport).toBe(80);
    expect(checksumsValid(err.bytes)).toBe(true);
    void mport;
  });
});

describe('hook order', () => {
  const tables = (rules: Record<string, string>) =>
    `*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n${rules.raw ?? ''}\nCOMMIT\n` +
    `*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n${rules.mangle ?? ''}\nCOMMIT\n` +
    `*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n${rules.nat ?? ''}\nCOMMIT\n` +
    `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n${rules.filter ?? ''}\nCOMMIT\n`;

  it('forwarded: raw → mangle → nat PREROUTING → mangle/filter FORWARD → mangle → nat POSTROUTING', () => {
    const b = new Bench();
    b.local(NODE);
    b.masq(NODE);
    b.restore(tables({
      raw: '-A PREROUTING -j MARK --or-mark 0x1',
      mangle: '-A PREROUTING -m mark --mark 0x1/0x1 -j MARK --or-mark 0x2\n-A FORWARD -m mark --mark 0x3 -j MARK --or-mark 0x8\n' +
        '-A POSTROUTING -m mark --mark 0x1b/0x1b -j MARK --or-mark 0x20',
      nat: '-A PREROUTING -m mark --mark 0x3/0x3 -p udp -j DNAT --to-destination 198.18.9.9:99\n' +
        '-A POSTROUTING -m mark --mark 0x3b/0x3b -j MASQUERADE',
      filter: `-A FORWARD -m mark --mark 0xb -d 198.18.9.9 -p udp --dport 99 -s 198.19.1.1 -j MARK --or-mark 0x10`,
    }));
    const r = b.send(udp('198.19.1.1', '198.18.7.7', 1000, 53));
    expect(r.verdict).toBe(V.FORWARD);
    expect(r.mark).toBe(0x3b);
    expect(r.pkt.dst).toBe('198.18.9.9');
    expect(r.pkt.src).toBe(NODE);
  });

  it('to the node: nat PREROUTING, then mangle INPUT → filter INPUT → nat INPUT (source NAT there)', () => {
    const b = new Bench();
    b.local(NODE);
    b.restore(tables({
      mangle: '-A INPUT -j MARK --or-mark 0x1\n-A FORWARD -j MARK --or-mark 0x80',
      filter: '-A INPUT -m mark --mark 0x1 -j MARK --or-mark 0x2',
      nat: `-A PREROUTING -p tcp --dport 8080 -j DNAT --to-destination ${NODE}:80\n-A INPUT -m mark --mark 0x3 -j SNAT --to-source 198.19.255.2`,
    }));
    const r = b.send(tcp('198.19.1.1', '198.19.3.3', 1000, 8080));
    expect(r.verdict).toBe(V.FORWARD);
    expect(r.mark).toBe(0x3);
    expect(r.pkt.dst).toBe(NODE);
    expect(r.pkt.dport).toBe(80);
    expect(r.pkt.src).toBe('198.19.255.2');
    expect(checksumsValid(r.bytes)).toBe(true);
  });

  it('from the node: raw → mangle → nat → filter OUTPUT → mangle → nat POSTROUTING', () => {
    const b = new Bench();
    b.local(NODE);
    b.masq(NODE);
    b.restore(tables({
      raw: '-A OUTPUT -j MARK --or-mark 0x1',
      mangle: '-A OUTPUT -m mark --mark 0x1 -j MARK --or-mark 0x2\n-A POSTROUTING -m mark --mark 0x7 -j MARK --or-mark 0x8',
      nat: '-A OUTPUT -m mark --mark 0x3 -p tcp -j DNAT --to-destination 198.18.9.9\n-A POSTROUTING -m mark --mark 0xf -j SNAT --to-source 198.19.255.7',
      filter: '-A OUTPUT -m mark --mark 0x3 -d 198.18.9.9 -j MARK --or-mark 0x4',
    }));
    const r = b.send(tcp(NODE, '198.19.3.3', 1000, 443), { local: true });
    expect(r.mark).toBe(0xf);
    expect(r.pkt.dst).toBe('198.18.9.9');
    expect(r.pkt.src).toBe('198.19.255.7');
  });
});
