// Cluster DNS on the packet path (assembly/dns/serve.ts): a UDP query to the Dataplane's clusterDNS
// address comes back from dp.process as a REPLY packet — endpoints swapped, checksums valid, the
// payload the core's answer — while other traffic, TCP to port 53 and malformed datagrams are
// passed on or dropped with a named reason, and no flow is tracked for DNS.
import { describe, it, expect, beforeAll } from 'vitest';
import { Dataplane } from '../../../host-node/dataplane.js';
import { buildPacket, decodePacket, checksumsValid, type PacketSpec } from '../../../host-node/core/packet.js';
import { readDnsCounters, type DnsCore } from '../../../host-node/dns/table.js';
import { parseClusterDns } from '../../../host-node/core/cluster-dns.js';
import { loadObjects } from '../../../host-node/kube/objects.js';
import { FIXTURE, query, decode, RCODE } from '../../assembly/dns/msg.js';
import { decodeMessage } from '../../../host-node/dns/message.js';

const DNS4 = '10.96.0.10';
const DNS6 = 'fd00::a';
const POD4 = '10.244.1.5';
const POD6 = 'fd00:244::5';

function udp(src: string, dst: string, payload: Uint8Array, extra: Partial<PacketSpec> = {}): Uint8Array {
  return buildPacket({ src, dst, proto: 'udp', sport: 40000, dport: 53, payload, ...extra });
}

let dp: Dataplane;
const counters = () => readDnsCounters({ ...(dp.core as unknown as DnsCore), memory: dp.core.memory });

beforeAll(async () => {
  dp = await Dataplane.create({ nodeIPs: ['198.18.0.1', 'fd00:18::1'], clusterDNS: [DNS4, `[${DNS6}]:53`], seed: 7 });
  const r = dp.dns(FIXTURE);
  expect(r.issues).toEqual([]);
  expect(r.records).toBeGreaterThan(10);
});

describe('UDP queries to the cluster DNS address', () => {
  it('answers an A query in the slot with a valid reply packet', () => {
    const q = query('kubernetes.default.svc.cluster.local', 'A', { id: 0x4242 });
    const before = dp.stats();
    const r = dp.process(udp(POD4, DNS4, q), 1000);
    expect(r.verdict).toBe('REPLY');
    expect(r.reason).toBeUndefined();
    const p = decodePacket(r.packet!);
    expect(checksumsValid(r.packet!)).toBe(true);
    expect(p.checksumsOk).toBe(true);
    expect([p.src, p.sport, p.dst, p.dport]).toEqual([DNS4, 53, POD4, 40000]);
    expect(p.proto).toBe(17);
    expect(p.headerLength).toBe(20);
    expect(p.length).toBe(r.packet!.length);
    const m = decode(p.payload);
    expect(m.id).toBe(0x4242);
    expect(m.qr && m.aa).toBe(true);
    expect(m.rcode).toBe(RCODE.NOERROR);
    expect(m.answer.map((a) => [a.name, a.type, a.data])).toEqual([['kubernetes.default.svc.cluster.local.', 'A', '10.3.0.1']]);
    expect(dp.stats().verdict_reply).toBe(before.verdict_reply! + 1);
    // Answered before conntrack: nothing is tracked for the query.
    expect(dp.conntrack()).toEqual([]);
  });

  it('answers AAAA over IPv6 for a dual-stack Service', () => {
    const r = dp.process(udp(POD6, DNS6, query('dual.prod.svc.cluster.local', 'AAAA')), 1000);
    expect(r.verdict).toBe('REPLY');
    const p = decodePacket(r.packet!);
    expect(p.family).toBe(6);
    expect(checksumsValid(r.packet!)).toBe(true);
    expect([p.src, p.sport, p.dst, p.dport]).toEqual([DNS6, 53, POD6, 40000]);
    expect(decode(p.payload).answer.map((a) => a.data)).toEqual(['fd00::20']);
  });

  it('drops IPv4 options and keeps the IPv4 header checksum valid', () => {
    const opts = Uint8Array.from([1, 1, 1, 0]);   // NOP NOP NOP EOL
    const r = dp.process(udp(POD4, DNS4, query('dual.prod.svc.cluster.local', 'A'), { ipOptions: opts, tos: 0x10, id: 777 }), 1000);
    expect(r.verdict).toBe('REPLY');
    const p = decodePacket(r.packet!);
    expect(p.headerLength).toBe(20);
    expect(checksumsValid(r.packet!)).toBe(true);
    expect(r.packet![1]).toBe(0x10);
    expect(decode(p.payload).answer.map((a) => a.data)).toEqual(['10.3.0.20']);
  });

  it('answers NXDOMAIN with the SOA, SRV and PTR from the same table', () => {
    const nx = decode(decodePacket(dp.process(udp(POD4, DNS4, query('nope.default.svc.cluster.local', 'A')), 1000).packet!).payload);
    expect(nx.rcode).toBe(RCODE.NXDOMAIN);
    expect(nx.authority.map((a) => a.type)).toEqual(['SOA']);
    const srv = decode(decodePacket(dp.process(udp(POD4, DNS4, query('_dns._udp.dual.prod.svc.cluster.local', 'SRV')), 1000).packet!).payload);
    expect(srv.answer.map((a) => a.data)).toEqual(['0 100 53 dual.prod.svc.cluster.local.']);
    const ptr = decode(decodePacket(dp.process(udp(POD4, DNS4, query('1.0.3.10.in-addr.arpa', 'PTR')), 1000).packet!).payload);
    expect(ptr.answer.map((a) => a.data)).toEqual(['kubernetes.default.svc.cluster.local.']);
  });

  it('answers FORMERR to a malformed query and drops what has no header (counted)', () => {
    const bad = query('kubernetes.default.svc.cluster.local', 'A');
    bad[5] = 2;   // QDCOUNT 2
    const r = dp.process(udp(POD4, DNS4, bad), 1000);
    expect(r.verdict).toBe('REPLY');
    expect(checksumsValid(r.packet!)).toBe(true);
    expect(decode(decodePacket(r.packet!).payload).rcode).toBe(RCODE.FORMERR);

    const short = counters().drop_short;
    const drops = dp.stats().drop_bad_header!;
    const d = dp.process(udp(POD4, DNS4, Uint8Array.from([1, 2, 3])), 1000);
    expect(d.verdict).toBe('DROP');
    expect(d.reason).toBe('bad_header');
    expect(counters().drop_short).toBe(short + 1);
    expect(dp.stats().drop_bad_header).toBe(drops + 1);

    // A response (QR=1) is never answered: no reflection loops between two servers.
    const resp = query('kubernetes.default.svc.cluster.local', 'A');
    resp[2]! |= 0x80;
    expect(dp.process(udp(POD4, DNS4, resp), 1000).verdict).toBe('DROP');
  });

  it('drops a datagram whose UDP checksum does not verify', () => {
    const pkt = udp(POD4, DNS4, query('kubernetes.default.svc.cluster.local', 'A'));
    pkt[pkt.length - 1]! ^= 0x01;   // corrupt the QCLASS without fixing the checksum
    const r = dp.process(pkt, 1000);
    expect(r.verdict).toBe('DROP');
    expect(r.reason).toBe('bad_header');
    // A zero checksum over IPv4 means "none": answered.
    const none = udp(POD4, DNS4, query('kubernetes.default.svc.cluster.local', 'A'), { udpZeroChecksum: true });
    expect(dp.process(none, 1000).verdict).toBe('REPLY');
  });

  it('leaves other ports, other addresses and TCP to port 53 alone', () => {
    const q = query('kubernetes.default.svc.cluster.local', 'A');
    expect(dp.process(buildPacket({ src: POD4, dst: DNS4, proto: 'udp', sport: 40000, dport: 54, payload: q }), 1000).verdict).toBe('PASS');
    expect(dp.process(udp(POD4, '10.96.0.11', q), 1000).verdict).toBe('PASS');
    expect(dp.process(buildPacket({ src: POD4, dst: DNS4, proto: 'tcp', sport: 40000, dport: 53 }), 1000).verdict).toBe('PASS');
  });
});

describe('configuration', () => {
  it('serves nothing without clusterDNS, and honours a custom port', async () => {
    const off = await Dataplane.create({ nodeIPs: ['198.18.0.1'], conntrackCapacity: 16 });
    off.dns(FIXTURE);
    expect(off.process(udp(POD4, DNS4, query('kubernetes.default.svc.cluster.local', 'A')), 0).verdict).toBe('PASS');
    const custom = await Dataplane.create({ nodeIPs: ['198.18.0.1'], conntrackCapacity: 16, clusterDNS: `${DNS4}:5353` });
    custom.dns(FIXTURE);
    const q = query('kubernetes.default.svc.cluster.local', 'A');
    expect(custom.process(udp(POD4, DNS4, q), 0).verdict).toBe('PASS');
    const r = custom.process(udp(POD4, DNS4, q, { dport: 5353 }), 0);
    expect(r.verdict).toBe('REPLY');
    expect(decodePacket(r.packet!).sport).toBe(5353);
  });

  it('rejects malformed addresses and two of one family', async () => {
    expect(() => parseClusterDns('10.96.0.10:0')).toThrow(/clusterDNS/);
    expect(() => parseClusterDns('dns.local')).toThrow(/clusterDNS/);
    expect(parseClusterDns('[fd00::a]:5353')).toMatchObject({ family: 6, port: 5353 });
    await expect(Dataplane.create({ nodeIPs: ['198.18.0.1'], conntrackCapacity: 16, clusterDNS: ['10.0.0.1', '10.0.0.2'] }))
      .rejects.toThrow(/more than one IPv4/);
  });

  it('dns() takes decoded objects or a record set, and names manifest errors with their line', async () => {
    const d = await Dataplane.create({ nodeIPs: ['198.18.0.1'], conntrackCapacity: 16, clusterDNS: DNS4 });
    const objs = [{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'one', namespace: 'ns' }, spec: { clusterIP: '10.3.9.9', ports: [{ port: 80 }] } }];
    expect(d.dns(objs).records).toBeGreaterThan(0);
    // Objects decoded already, as a Source hands them (no issues list): kept as given.
    expect(d.dns({ services: loadObjects(objs).services, endpointSlices: [], nodes: [] } as never).records).toBeGreaterThan(0);
    const ask = () => decode(decodePacket(d.process(udp(POD4, DNS4, query('one.ns.svc.cluster.local', 'A')), 0).packet!).payload);
    expect(ask().answer.map((a) => a.data)).toEqual(['10.3.9.9']);
    d.dns({ zone: 'cluster.local', records: [
      { name: 'cluster.local', type: 'SOA', ttl: 5, mname: 'ns.dns.cluster.local', rname: 'h.cluster.local', serial: 2, refresh: 1, retry: 1, expire: 1, minimum: 5 },
      { name: 'one.ns.svc.cluster.local', type: 'A', ttl: 5, address: '10.3.9.10' },
    ] });
    expect(ask().answer.map((a) => a.data)).toEqual(['10.3.9.10']);
    const bad = d.dns('apiVersion: v1\nkind: Service\nmetadata: { name: x, namespace: ns }\nspec: { clusterIP: 999.1.1.1 }\n');
    expect(bad.issues.join('\n')).toMatch(/^error: 4: Service ns\/x: spec\.clusterIP/);
  });

  it('dns() refuses a record set with a record it cannot encode, naming record and field, and keeps the table it had', async () => {
    const d = await Dataplane.create({ nodeIPs: ['198.18.0.1'], conntrackCapacity: 16, clusterDNS: DNS4 });
    const soa = { name: 'cluster.local', type: 'SOA', ttl: 5, mname: 'ns.dns.cluster.local', rname: 'h.cluster.local', serial: 2, refresh: 1, retry: 1, expire: 1, minimum: 5 } as const;
    d.dns({ zone: 'cluster.local', records: [soa, { name: 'one.ns.svc.cluster.local', type: 'A', ttl: 5, address: '10.3.9.10' }] });
    const ask = () => decode(decodePacket(d.process(udp(POD4, DNS4, query('one.ns.svc.cluster.local', 'A')), 0).packet!).payload);
    const good = { name: 'one.ns.svc.cluster.local', type: 'A', ttl: 5, address: '10.3.9.11' };
    const cases: Array<[unknown, RegExp]> = [
      [null, /dns input: expected manifests text/],
      [42, /dns input: expected manifests text/],
      [{ zone: 'cluster.local', records: 3 }, /records: must be a list/],
      [{ zone: 'cluster.local', records: [soa, good, {}] }, /records\[2\]\.name: must be text/],
      [{ zone: 'cluster.local', records: [good, { name: 'a', type: 'MX', ttl: 5 }] }, /records\[1\]\.type: must be one of/],
      [{ zone: 'cluster.local', records: [{ ...good, ttl: -1 }] }, /records\[0\]\.ttl/],
      [{ zone: 'cluster.local', records: [{ name: 'a', type: 'SRV', ttl: 5, priority: 0, weight: 0, port: 70000, target: 'b' }] }, /records\[0\]\.port: must be a whole number up to 65535/],
      [{ zone: 'cluster.local', records: [{ name: 'a', type: 'TXT', ttl: 5, texts: [1] }] }, /records\[0\]\.texts: must be a list of texts/],
      // Lists built in JavaScript with holes: a hole is a missing record or text, not one skipped.
      [{ zone: 'cluster.local', records: [soa, , good] }, /records\[1\]: must be an object/],
      [{ zone: 'cluster.local', records: [soa, { name: 'a', type: 'TXT', ttl: 5, texts: [, 'x'] }] }, /records\[1\]\.texts: must be a list of texts/],
    ];
    for (const [input, message] of cases) expect(() => d.dns(input as never)).toThrow(message);
    expect(ask().answer.map((a) => a.data)).toEqual(['10.3.9.10']);
  });
});

describe('name compression across replies', () => {
  it('never points a name at itself through bytes an earlier reply left in the slot (RFC 1035 §4.1.4: only names already written)', async () => {
    const dns = await Dataplane.create({ nodeIPs: ['198.18.0.1'], clusterDNS: [DNS4], seed: 7 });
    const target = 'q.q.q.q.example.org';
    dns.dns({ zone: 'cluster.local', records: [
      { name: 'cluster.local', type: 'SOA', ttl: 5, mname: 'ns.cluster.local', rname: 'h.cluster.local', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 5 },
      { name: 'a.cluster.local', type: 'CNAME', ttl: 5, target },
      { name: 'aaa.cluster.local', type: 'CNAME', ttl: 5, target },
    ] });
    for (const name of ['a.cluster.local', 'aaa.cluster.local', 'a.cluster.local']) {
      const r = dns.process(udp(POD4, DNS4, query(name, 'CNAME')), 1000);
      expect(r.verdict).toBe('REPLY');
      // The product's own decoder takes pointers only backwards, as resolvers do.
      const m = decodeMessage(decodePacket(r.packet!).payload);
      expect(m.answer.map((a) => [a.name, a.type, a.data]), name).toEqual([[`${name}.`, 'CNAME', `${target}.`]]);
    }
  });
});

describe('owner names in other scripts', () => {
  it('owners that differ only in non-ASCII case are different names (RFC 4343: ASCII case only), grouped and served as such', async () => {
    const dns = await Dataplane.create({ nodeIPs: ['198.18.0.1'], clusterDNS: [DNS4], seed: 7 });
    const soa = { name: 'cluster.local', type: 'SOA' as const, ttl: 5, mname: 'ns.cluster.local', rname: 'h.cluster.local', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 5 };
    const a = (name: string, address: string) => ({ name, type: 'A' as const, ttl: 5, address });
    for (const [upper, lower] of [['\u00c4', '\u00e4'], ['\u212a', 'k']]) {
      expect(() => dns.dns({ zone: 'cluster.local', records: [soa, a(`${upper}.cluster.local`, '198.18.9.1'), a(`${lower}.cluster.local`, '198.18.9.2'), a(`${upper}.cluster.local`, '198.18.9.3')] }), upper).not.toThrow();
    }
    // ASCII case still folds: K and k are one owner with both addresses.
    dns.dns({ zone: 'cluster.local', records: [soa, a('K.cluster.local', '198.18.9.1'), a('x.cluster.local', '198.18.9.9'), a('k.cluster.local', '198.18.9.2')] });
    const r = dns.process(udp(POD4, DNS4, query('k.cluster.local', 'A')), 1000);
    expect(decodeMessage(decodePacket(r.packet!).payload).answer.map((x) => x.data).sort()).toEqual(['198.18.9.1', '198.18.9.2']);
  });
});
