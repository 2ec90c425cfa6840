// The Dataplane API end to end on the real core: NAT both ways, masquerade, hairpin, conntrack
// listing, counters, atomic service loads, snapshot/restore.
import { describe, it, expect, beforeEach } from 'vitest';
import { Dataplane } from '../../../host-node/core/dataplane.js';
import { buildPacket, decodePacket, checksumsValid } from '../../../host-node/core/packet.js';
import { VERDICTS, REASONS, COUNTERS_AFTER_REASONS } from '../../../host-node/core/abi.js';
import { Packr } from 'msgpackr';
import { Crc32, IPVS_RECORD_BYTES, concatBytes, crc32, savedAtBytes, snapshotChunks } from '../../../host-node/core/snapshot.js';

const WEB = { name: 'default/web:http', vip: '10.96.0.80', port: 80, protocol: 'TCP' as const, endpoints: ['10.244.1.11:8080', '10.244.2.12:8080'] };
const DNS = { name: 'kube-system/dns', vip: '10.96.0.10', port: 53, protocol: 'UDP' as const, endpoints: ['10.244.1.21:53'] };
const V6 = { name: 'default/web6', vip: 'fd00:96::80', port: 80, protocol: 'TCP' as const, endpoints: ['[fd00:244::11]:8080'] };

async function make(extra: Partial<Parameters<typeof Dataplane.create>[0]> = {}) {
  const dp = await Dataplane.create({ nodeIPs: ['192.168.49.2', 'fd00:49::2'], podCIDR: ['10.244.0.0/16', 'fd00:244::/64'], seed: 3, ...extra });
  dp.setServices([WEB, DNS, V6]);
  return dp;
}

describe('Dataplane', () => {
  let dp: Dataplane;
  beforeEach(async () => { dp = await make(); });

  it('names every verdict, reason and counter the core has', () => {
    expect(dp.core.verdictCount()).toBe(VERDICTS.length);
    expect(dp.core.reasonCount()).toBe(REASONS.length);
    expect(dp.core.statsCount()).toBe(VERDICTS.length + REASONS.length + COUNTERS_AFTER_REASONS.length);
  });

  it('refuses creation options no table or node could have, naming the option', async () => {
    const base = { nodeIPs: ['198.18.0.1'] };
    const cases: Array<[unknown, string]> = [
      // (3,000,000,000, which used to loop for ever, is tried in a process of its own: cli/main.test.ts.)
      [{ ...base, conntrackCapacity: 2 ** 24 + 1 }, 'conntrackCapacity 16777217: a whole number of flows from 1 to 16777216'],
      [{ ...base, conntrackCapacity: -1 }, 'conntrackCapacity -1: a whole'],
      [{ ...base, conntrackCapacity: 'x' }, 'conntrackCapacity x: a whole'],
      [{ ...base, conntrackCapacity6: 2 ** 31 }, 'conntrackCapacity6 2147483648: a whole'],
      [{ ...base, conntrackCapacity: 2 ** 24, conntrackCapacity6: 2 ** 23 }, 'conntrackCapacity6 8388608: at most 4194304 (2^22) IPv6 flows'],
      [{ ...base, seed: 'x' }, 'seed x: an integer'],
      [{ ...base, clusterDNS: 5 }, 'clusterDNS: not an address or address:port: 5'],
      [{ podCIDR: '198.19.0.0/16' }, 'nodeIPs: the list of the node\'s addresses'],
      [{ ...base, nodeIPs: ['198.18.0.1', {}] }, 'nodeIPs: not an IP address: {}'],
      [{ ...base, podCIDR: [5] }, 'podCIDR: not a CIDR: 5'],
      [{ ...base, masqueradeIPs: '198.18.0.9' }, 'masqueradeIPs: a list of addresses'],
      [null, 'Dataplane.create: options { nodeIPs'],
    ];
    for (const [opts, message] of cases) await expect(Dataplane.create(opts as never), JSON.stringify(opts)).rejects.toThrow(message);
    // Small capacities still round up to the core's least table, as before.
    expect((await Dataplane.create({ ...base, conntrackCapacity: 5 })).stats().conntrack_capacity).toBe(16);
  });

  it('refuses a batch a JavaScript caller got wrong before any packet of it runs', () => {
    const syn = buildPacket({ src: '10.244.1.5', dst: '10.96.0.80', proto: 'tcp', sport: 40001, dport: 80, flags: 'S' });
    const before = dp.stats();
    expect(() => dp.processBatch([syn, 'x' as never], 1000)).toThrow('process: packet 1 is no Uint8Array');
    expect(() => dp.processBatch([syn, { bytes: [1, 2] } as never], 1000)).toThrow('packet 1 is no Uint8Array');
    expect(() => dp.process(syn, undefined as never)).toThrow('process: bad nowMs undefined');
    expect(() => dp.process(syn, Number.NaN)).toThrow('bad nowMs NaN');
    expect(() => dp.processBatch(null as never, 1000)).toThrow('packets is a list');
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(() => dp.processBatch([syn], deep as never)).toThrow('process: bad nowMs of the wrong kind');
    expect(() => dp.snapshot('soon' as never)).toThrow('snapshot: bad nowMs soon: the time in milliseconds');
    expect(() => dp.snapshot(deep as never)).toThrow('snapshot: bad nowMs of the wrong kind');
    // The good first packet of the refused batches never ran.
    expect(dp.stats()).toEqual(before);
    expect(dp.process(syn, 1000).ctstate).toBe('NEW');
  });

  it('names a conntrack timeout of the wrong kind instead of failing to convert it', () => {
    expect(() => dp.setConntrackTimeout(0, 5n as never)).toThrow('bad conntrack timeout kind 0 or value 5');
    expect(() => dp.setConntrackTimeout(Symbol('k') as never, 1000)).toThrow('bad conntrack timeout kind Symbol(k) or value 1000');
    expect(() => dp.setConntrackTimeout({} as never, 1000)).toThrow('bad conntrack timeout kind [object Object]');
  });

  it('names every other argument a JavaScript caller got wrong, and changes nothing then', async () => {
    const d = await Dataplane.create({ nodeIPs: ['198.18.0.2'], podCIDR: '198.19.0.0/16' });
    d.setServices([{ vip: '198.18.96.1', port: 80, protocol: 'TCP', endpoints: ['198.19.1.1:8080'] }]);
    d.process(buildPacket({ src: '198.19.2.2', dst: '198.18.96.1', proto: 'tcp', sport: 1000, dport: 80, flags: 'S' }), 1000);
    // A protocol it does not know used to become the core's "any": a typo flushed TCP flows.
    expect(() => d.flushEndpoint('198.19.1.1', 0, 'UDPLITE' as never)).toThrow('bad protocol UDPLITE: UDP, TCP or SCTP');
    expect(() => d.flushService('198.18.96.1', 0, 7 as never)).toThrow('bad protocol 7');
    expect(() => d.flushMany([{ by: 'vip', ip: '198.18.96.1' } as never])).toThrow("bad flush of the wrong kind: { by: 'endpoint' | 'service'");
    expect(() => d.flushMany('198.18.96.1' as never)).toThrow('flushMany: flushes is a list');
    expect(() => d.flushEndpoint(Symbol('ip') as never)).toThrow('not an IP address: Symbol(ip)');
    expect(d.conntrack()).toHaveLength(1);
    expect(() => d.reconcileUdp('198.18.96.1' as never)).toThrow('reconcileUdp: guards is a list');
    expect(() => d.reconcileUdp([{ family: 4, ip: '198.18.96.1', port: 80 }] as never)).toThrow('bad UDP guard of the wrong kind');
    expect(() => d.reconcileUdp([{ family: 4, nodePort: 30080, endpoints: ['198.19.1.1:53'] }] as never)).toThrow('bad UDP guard');
    expect(() => d.setServices('web' as never)).toThrow('setServices: specs is a list of services { vip, port, endpoints, … }, not web');
    expect(() => d.setServices(undefined as never)).toThrow('not undefined');
    // The table set before still serves a new connection.
    expect(d.process(buildPacket({ src: '198.19.2.3', dst: '198.18.96.1', proto: 'tcp', sport: 1001, dport: 80, flags: 'S' }), 1000).verdict).toBe('FORWARD');
    // A clock that is no number would have become the clock of every later call.
    expect(() => d.expire('soon' as never)).toThrow('expire: bad nowMs soon: the time in milliseconds');
    expect(() => d.expire(5n as never)).toThrow('expire: bad nowMs 5');
    expect(() => d.expire(2000, 'all' as never)).toThrow('expire: bad budget all');
    expect(() => d.conntrack(Symbol('t') as never)).toThrow('conntrack: bad nowMs Symbol(t)');
    expect(() => d.warmConntrack(10n as never)).toThrow('warmConntrack: bad maxBytes 10');
    const flows = d.conntrack();
    expect(flows).toHaveLength(2);
    for (const f of flows) expect(f.expiresMs).toBeGreaterThan(2000);
    expect(d.process(buildPacket({ src: '198.19.2.2', dst: '198.18.96.1', proto: 'tcp', sport: 1000, dport: 80, flags: 'A' }), 1001).ctstate).not.toBe('NEW');
  });

  it('DNATs a pod connection to an endpoint and un-NATs the reply', () => {
    const r = dp.process(buildPacket({ src: '10.244.1.5', dst: '10.96.0.80', proto: 'tcp', sport: 40000, dport: 80, flags: 'S' }), 1000);
    expect(r.verdict).toBe('FORWARD');
    expect(r.ctstate).toBe('NEW');
    const out = decodePacket(r.packet!)!;
    expect(['10.244.1.11', '10.244.2.12']).toContain(out.dst);
    expect(out.dport).toBe(8080);
    expect(out.src).toBe('10.244.1.5'); // from a pod: not masqueraded
    expect(out.sport).toBe(40000);
    expect(checksumsValid(r.packet!)).toBe(true);

    const reply = dp.process(buildPacket({ src: out.dst, dst: '10.244.1.5', proto: 'tcp', sport: 8080, dport: 40000, flags: 'SA' }), 1001);
    expect(reply.verdict).toBe('FORWARD');
    const back = decodePacket(reply.packet!)!;
    expect([back.src, back.sport, back.dst, back.dport]).toEqual(['10.96.0.80', 80, '10.244.1.5', 40000]);
    expect(checksumsValid(reply.packet!)).toBe(true);

    const ack = dp.process(buildPacket({ src: '10.244.1.5', dst: '10.96.0.80', proto: 'tcp', sport: 40000, dport: 80, flags: 'A' }), 1002);
    expect(decodePacket(ack.packet!)!.dst).toBe(out.dst); // same flow, same endpoint
    expect(ack.ctstate).toBe('ESTABLISHED');
  });

  it('masquerades a client outside the pod network to the node address', () => {
    const r = dp.process(buildPacket({ src: '203.0.113.7', dst: '10.96.0.80', proto: 'tcp', sport: 51000, dport: 80, flags: 'S' }), 1000);
    const out = decodePacket(r.packet!)!;
    expect(out.src).toBe('192.168.49.2');
    expect(out.sport).toBe(51000); // the client's port is kept when free
    const reply = dp.process(buildPacket({ src: out.dst, dst: '192.168.49.2', proto: 'tcp', sport: out.dport!, dport: 51000, flags: 'SA' }), 1001);
    const back = decodePacket(reply.packet!)!;
    expect([back.src, back.sport, back.dst, back.dport]).toEqual(['10.96.0.80', 80, '203.0.113.7', 51000]);
  });

  it('picks another masquerade port when two clients collide on one', () => {
    const a = decodePacket(dp.process(buildPacket({ src: '203.0.113.7', dst: '10.96.0.10', proto: 'udp', sport: 5000, dport: 53 }), 1)!.packet!)!;
    const b = decodePacket(dp.process(buildPacket({ src: '203.0.113.8', dst: '10.96.0.10', proto: 'udp', sport: 5000, dport: 53 }), 2)!.packet!)!;
    expect(a.src).toBe(b.src);
    expect(a.dst).toBe(b.dst); // one endpoint
    expect(a.sport).toBe(5000);
    expect(b.sport).not.toBe(5000);
    expect(b.sport).toBeGreaterThanOrEqual(1024);
  });

  it('masquerades hairpin traffic (a pod reaching itself through its Service)', async () => {
    const one = await Dataplane.create({ nodeIPs: ['192.168.49.2'], podCIDR: '10.244.0.0/16', seed: 1 });
    one.setServices([{ vip: '10.96.0.80', port: 80, endpoints: ['10.244.1.11:8080'] }]);
    const out = decodePacket(one.process(buildPacket({ src: '10.244.1.11', dst: '10.96.0.80', proto: 'tcp', sport: 42000, dport: 80, flags: 'S' }), 1).packet!)!;
    expect(out.dst).toBe('10.244.1.11');
    expect(out.src).toBe('192.168.49.2');
  });

  it('translates an ICMP error about a NATed flow, outside and in the quoted header', () => {
    const fwd = dp.process(buildPacket({ src: '203.0.113.7', dst: '10.96.0.10', proto: 'udp', sport: 5353, dport: 53, payload: 'q' }), 1);
    const out = decodePacket(fwd.packet!);
    expect([out.src, out.dst]).toEqual(['192.168.49.2', '10.244.1.21']);
    // The endpoint's host answers "port unreachable", quoting what it received.
    const err = buildPacket({ src: '10.244.1.21', dst: '192.168.49.2', proto: 'icmp', icmp: { type: 3, code: 3, quote: fwd.packet! } });
    const r = dp.process(err, 2);
    expect(r.verdict).toBe('FORWARD');
    expect(r.ctstate).toBe('RELATED');
    const back = decodePacket(r.packet!);
    expect([back.src, back.dst]).toEqual(['10.96.0.10', '203.0.113.7']);
    const q = back.icmp!.inner!;
    expect([q.src, q.sport, q.dst, q.dport]).toEqual(['203.0.113.7', 5353, '10.96.0.10', 53]);
    expect(checksumsValid(r.packet!)).toBe(true);
  });

  it('an ICMP error quoting too little: dropped when it must be translated, passed when it names no flow', () => {
    const fwd = dp.process(buildPacket({ src: '203.0.113.9', dst: '10.96.0.10', proto: 'udp', sport: 5354, dport: 53, payload: 'q' }), 1);
    const error = (bytes: number) => buildPacket({ src: '10.244.1.21', dst: '192.168.49.2', proto: 'icmp', icmp: { type: 3, code: 3, quote: fwd.packet!.slice(0, 20 + bytes) } });
    // Ports present (4–7 bytes): the flow is found, but nf_nat translates only 8 bytes or more.
    for (const n of [4, 7]) expect(dp.process(error(n), 2), `${n} bytes`).toMatchObject({ verdict: 'DROP', reason: 'truncated', ctstate: 'RELATED' });
    // No ports: no tuple, no flow; the error goes on untouched (conntrack: INVALID).
    for (const n of [0, 3]) {
      const r = dp.process(error(n), 2);
      expect(r.verdict, `${n} bytes`).toBe('PASS');
      expect(r.ctstate).not.toBe('RELATED');
    }
    expect(dp.process(error(8), 2)).toMatchObject({ verdict: 'FORWARD', ctstate: 'RELATED' });
  });

  it('a packet whose checksum fails opens, moves and un-NATs nothing (nf_conntrack_checksum), unless the host verified it', async () => {
    const d = await Dataplane.create({ nodeIPs: ['192.168.49.2'], podCIDR: '10.244.0.0/16', seed: 1 });
    d.setServices([{ vip: '10.96.0.80', port: 80, endpoints: ['10.244.1.11:8080'] }, { vip: '10.96.0.80', port: 53, protocol: 'UDP', endpoints: ['10.244.1.11:5353'] }]);
    const bad = (spec: Parameters<typeof buildPacket>[0]): Uint8Array => {
      const b = buildPacket(spec);
      const l3 = 20 + (spec.proto === 'tcp' ? 16 : 6);
      b[l3] ^= 0x40;
      return b;
    };
    const syn = { src: '10.244.2.5', dst: '10.96.0.80', proto: 'tcp' as const, sport: 41000, dport: 80, flags: 'S' as const };
    expect(d.process(bad(syn), 1)).toMatchObject({ verdict: 'DROP', reason: 'conntrack_invalid' });
    expect(d.conntrack(1)).toHaveLength(0);
    // The same bytes, verified by the host (or sent by the node itself), are taken as they are.
    expect(d.process({ bytes: bad(syn), checksumVerified: true }, 2).verdict).toBe('FORWARD');
    expect(d.conntrack(2)).toHaveLength(1);
    // A reset that does not verify leaves the connection as it was; a good one closes it.
    const rst = { ...syn, flags: 'R' as const };
    expect(d.process(bad(rst), 3)).toMatchObject({ verdict: 'DROP', reason: 'conntrack_invalid' });
    expect(d.conntrack(3)[0]!.state).toBe('SYN_SENT');
    d.process(buildPacket(rst), 4);
    expect(d.conntrack(4)[0]?.state ?? 'gone').not.toBe('SYN_SENT');
    // An IPv4 header whose checksum fails never reaches a hook (ip_rcv); the node's own is trusted.
    const head = buildPacket({ ...syn, sport: 41002 });
    head[10] ^= 0x01;
    expect(d.process(head, 5)).toMatchObject({ verdict: 'DROP', reason: 'bad_header' });
    expect(d.process({ bytes: head, local: true }, 5).verdict).not.toBe('DROP');
    // An IPv4 datagram sent without a checksum has none to fail.
    const udp = buildPacket({ src: '10.244.2.5', dst: '10.96.0.80', proto: 'udp', sport: 41001, dport: 53 });
    udp[26] = 0; udp[27] = 0;
    expect(d.process(udp, 5).verdict).toBe('FORWARD');
  });

  it('handles IPv6 services', () => {
    const r = dp.process(buildPacket({ src: 'fd00:244::5', dst: 'fd00:96::80', proto: 'tcp', sport: 40000, dport: 80, flags: 'S' }), 1);
    const out = decodePacket(r.packet!)!;
    expect(out.dst).toBe('fd00:244::11');
    expect(out.dport).toBe(8080);
    expect(checksumsValid(r.packet!)).toBe(true);
  });

  it('answers a Service without endpoints with ICMP port unreachable (TCP too, as kube-proxy)', async () => {
    const d = await Dataplane.create({ nodeIPs: ['192.168.49.2'], seed: 1 });
    d.setServices([{ vip: '10.96.0.99', port: 80, endpoints: [] }, { vip: '10.96.0.98', port: 80, endpoints: [], whenEmpty: 'drop' }]);
    const syn = buildPacket({ src: '10.244.1.5', dst: '10.96.0.99', proto: 'tcp', sport: 40001, dport: 80, flags: 'S' });
    const r = d.process(syn, 1);
    expect(r.verdict).toBe('REPLY');
    expect(r.reason).toBe('no_endpoints');
    const icmp = decodePacket(r.packet!);
    // From the node's address, as icmp_send picks it for a forwarded (non-local) destination.
    expect([icmp.src, icmp.dst, icmp.icmp!.type, icmp.icmp!.code]).toEqual(['192.168.49.2', '10.244.1.5', 3, 3]);
    expect(icmp.icmp!.inner!.dport).toBe(80);
    expect(checksumsValid(r.packet!)).toBe(true);
    const dropped = d.process(buildPacket({ src: '10.244.1.5', dst: '10.96.0.98', proto: 'tcp', sport: 40001, dport: 80, flags: 'S' }), 1);
    expect([dropped.verdict, dropped.reason]).toEqual(['DROP', 'no_endpoints']);
    expect(d.stats().drop_no_endpoints).toBe(1);
    expect(d.stats().verdict_reply).toBe(1);
  });

  it('drops new flows to an unallocated address of the service CIDR (never routes them on)', async () => {
    const d = await Dataplane.create({ nodeIPs: ['192.168.49.2'], serviceCIDR: '10.96.0.0/16', seed: 1 });
    d.setServices([WEB]);
    const lost = d.process(buildPacket({ src: '10.244.1.5', dst: '10.96.7.7', proto: 'udp', sport: 1, dport: 53 }), 1);
    expect([lost.verdict, lost.reason]).toEqual(['DROP', 'no_service']);
    expect(d.process(buildPacket({ src: '10.244.1.5', dst: '10.97.0.1', proto: 'udp', sport: 1, dport: 53 }), 1).verdict).toBe('PASS');
    expect(d.stats().drop_no_service).toBe(1);
  });

  it('rejects a cluster IP\'s port or protocol no Service has (nftables mode\'s cluster-ips-check), with or without a service CIDR', async () => {
    for (const serviceCIDR of ['10.96.0.0/16', undefined]) {
      const d = await Dataplane.create({ nodeIPs: ['192.168.49.2'], seed: 1, ...(serviceCIDR ? { serviceCIDR } : {}) });
      const api = { ...WEB, name: 'default/web:api', port: 443 };
      d.setServices([WEB, api]);
      const to = (dport: number, proto: 'tcp' | 'udp' = 'tcp', flags = 'S', sport = 40000 + dport) =>
        d.process(buildPacket({ src: '10.244.1.5', dst: '10.96.0.80', proto, sport, dport, ...(proto === 'tcp' ? { flags } : {}) }), 1);
      for (const r of [to(81), to(80, 'udp')]) {
        expect([r.verdict, r.reason], String(serviceCIDR)).toEqual(['REPLY', 'no_service']);
        const icmp = decodePacket(r.packet!);
        expect([icmp.dst, icmp.icmp!.type, icmp.icmp!.code]).toEqual(['10.244.1.5', 3, 3]);
      }
      // Only what could open a connection is answered (a lone RST is INVALID).
      const rst = to(82, 'tcp', 'R');
      expect([rst.verdict, rst.reason]).toEqual(['DROP', 'conntrack_invalid']);
      expect(to(80).verdict).toBe('FORWARD');
      // The address stays a cluster IP while any of its service ports stays.
      d.setServices([api]);
      expect(to(80, 'tcp', 'S', 50000).verdict).toBe('REPLY');
      d.setServices([]);
      expect(to(80, 'tcp', 'S', 50001).verdict).toBe(serviceCIDR ? 'DROP' : 'PASS');
    }
  });

  it('passes traffic that is not for a Service, untracked', () => {
    const r = dp.process(buildPacket({ src: '10.244.1.5', dst: '10.244.2.12', proto: 'tcp', sport: 1, dport: 2, flags: 'S' }), 1);
    expect(r.verdict).toBe('PASS');
    expect(dp.conntrack()).toHaveLength(0);
  });

  it('counts every malformed packet as a drop with its reason', () => {
    const good = buildPacket({ src: '10.244.1.5', dst: '10.96.0.80', proto: 'tcp', sport: 40000, dport: 80, flags: 'S' });
    const results = dp.processBatch([good.slice(0, 10), good.slice(0, 30), new Uint8Array([0x75, 0, 0, 0]), new Uint8Array(0)], 1);
    for (const r of results) expect(r.verdict).toBe('DROP');
    expect(results[0]!.reason).toBe('truncated');
    const s = dp.stats();
    expect(s.verdict_drop).toBe(4);
    expect(s.drop_truncated + s.drop_bad_version + s.drop_bad_header).toBe(4);
  });

  it('lists conntrack entries with NAT and expiry on the caller clock', () => {
    dp.process(buildPacket({ src: '10.244.1.5', dst: '10.96.0.10', proto: 'udp', sport: 7000, dport: 53 }), 5000);
    const [e] = dp.conntrack();
    expect(e!.proto).toBe('udp');
    expect(e!.original).toMatchObject({ src: '10.244.1.5', dst: '10.96.0.10', sport: 7000, dport: 53 });
    expect(e!.reply).toMatchObject({ src: '10.244.1.21', dst: '10.244.1.5', sport: 53, dport: 7000 });
    expect(e!.nat.dnat).toBe(true);
    expect(e!.nat.snat).toBe(false);
    expect(e!.expiresMs).toBe(5000 + 30_000); // nf_conntrack_udp_timeout
  });

  it('leaves a connection a reset killed out of the listing (its slot is not reaped yet)', () => {
    dp.process(buildPacket({ src: '10.244.1.5', dst: '10.96.0.10', proto: 'udp', sport: 7000, dport: 53 }), 5000);
    const syn = dp.process(buildPacket({ src: '10.244.1.6', dst: '10.96.0.80', proto: 'tcp', sport: 41000, dport: 80, flags: 'S' }), 5001);
    expect(dp.conntrack(5001).map((e) => e.proto).sort()).toEqual(['tcp', 'udp']);
    // The endpoint answers with a reset alone: nf_conntrack_proto_tcp.c deletes the connection at once.
    const to = decodePacket(syn.packet!);
    dp.process(buildPacket({ src: to.dst, dst: '10.244.1.6', proto: 'tcp', sport: to.dport!, dport: 41000, flags: 'R' }), 5002);
    expect(dp.core.conntrackCount()).toBe(2); // killed, still holding its slot
    const listed = dp.conntrack(5002);
    expect(listed.map((e) => e.proto)).toEqual(['udp']);
    expect(listed[0]!.original.sport).toBe(7000);
  });

  it('rejects a bad service table and keeps the old one live', () => {
    expect(() => dp.setServices([{ vip: 'not-an-ip', port: 80, endpoints: [] }])).toThrow(/vip/);
    expect(() => dp.setServices([WEB, WEB])).toThrow(/duplicate/);
    expect(() => dp.setServices([{ ...WEB, endpoints: ['10.0.0.1:99999'] }])).toThrow(/endpoints\[0\]/);
    const r = dp.process(buildPacket({ src: '10.244.1.5', dst: '10.96.0.80', proto: 'tcp', sport: 1234, dport: 80, flags: 'S' }), 1);
    expect(r.verdict).toBe('FORWARD');
  });

  it('is deterministic for a seed', async () => {
    const pick = async (seed: number) => {
      const d = await make({ seed });
      return Array.from({ length: 20 }, (_, i) =>
        decodePacket(d.process(buildPacket({ src: '10.244.1.5', dst: '10.96.0.80', proto: 'tcp', sport: 2000 + i, dport: 80, flags: 'S' }), i).packet!)!.dst).join();
    };
    expect(await pick(9)).toBe(await pick(9));
    expect(await pick(9)).not.toBe(await pick(10));
  });

  it('snapshots and restores flows so a new core keeps established connections', async () => {
    const syn = dp.process(buildPacket({ src: '203.0.113.7', dst: '10.96.0.80', proto: 'tcp', sport: 51000, dport: 80, flags: 'S' }), 1000);
    const out = decodePacket(syn.packet!)!;
    dp.process(buildPacket({ src: out.dst, dst: out.src, proto: 'tcp', sport: out.dport!, dport: out.sport!, flags: 'SA' }), 1001);
    dp.process(buildPacket({ src: '203.0.113.7', dst: '10.96.0.80', proto: 'tcp', sport: 51000, dport: 80, flags: 'A' }), 1002);
    const snap = dp.snapshot();

    const fresh = await make({ seed: 99 });
    expect(fresh.restore(snap)).toBe(1);
    expect(fresh.conntrack()[0]).toMatchObject({ state: 'ESTABLISHED', original: dp.conntrack()[0]!.original, reply: dp.conntrack()[0]!.reply });
    const data = fresh.process(buildPacket({ src: '203.0.113.7', dst: '10.96.0.80', proto: 'tcp', sport: 51000, dport: 80, flags: 'A' }), 60_000);
    expect(data.ctstate).toBe('ESTABLISHED');
    expect(decodePacket(data.packet!)!.dst).toBe(out.dst);
  });

  it('a snapshot of thousands of flows, some of them expired, restores every live one as it was', async () => {
    // UDP flows from 2,000 clients at t=1000, then 1,000 more at t=40000: at t=45000 the first
    // ones are past the 30 s unreplied UDP timeout and left out.
    for (let i = 0; i < 3000; i++) {
      const src = `10.244.${1 + (i >> 8)}.${i & 0xff}`;
      dp.process(buildPacket({ src, dst: '10.96.0.10', proto: 'udp', sport: 7000 + (i % 50), dport: 53 }), i < 2000 ? 1000 : 40_000);
    }
    const snap = dp.snapshot(45_000);
    const fresh = await make();
    expect(fresh.restore(snap)).toBe(1000);
    const key = (e: { original: unknown; reply: unknown }) => JSON.stringify([e.original, e.reply]);
    const live = dp.conntrack().filter((e) => e.expiresMs > 45_000).map(key).sort();
    expect(live).toHaveLength(1000);
    expect(fresh.conntrack().map(key).sort()).toEqual(live);
  });

  it('a snapshot taken in slices while flows come and go keeps every flow alive throughout, each with its own expiry', async () => {
    const udp = (i: number, t: number) =>
      dp.process(buildPacket({ src: `10.244.${1 + (i >> 8)}.${i & 0xff}`, dst: '10.96.0.10', proto: 'udp', sport: 7000, dport: 53 }), t);
    for (let i = 0; i < 1500; i++) udp(i, 1000);
    const key = (e: { original: unknown; reply: unknown }) => JSON.stringify([e.original, e.reply]);
    const alive = dp.conntrack().map(key);
    expect(alive).toHaveLength(1500);
    const steps = dp.snapshotSteps(2000);
    let slices = 0;
    while (!steps.step(100)) {
      slices++;
      // Between slices: 20 new flows, and two of the first ones refreshed (a later expiry).
      for (let k = 0; k < 20; k++) udp(1500 + slices * 20 + k, 2000 + slices);
      udp(slices, 2000 + slices);
      udp(1499 - slices, 2000 + slices);
    }
    expect(slices).toBeGreaterThanOrEqual(14);
    const fresh = await make();
    const loaded = fresh.restore(concatBytes(steps.finish()));
    const now = new Map(dp.conntrack().map((e) => [key(e), e.expiresMs]));
    const restored = new Map(fresh.conntrack().map((e) => [key(e), e.expiresMs]));
    expect(restored.size).toBe(loaded);
    // Every flow that lived from the first slice to the last is there, each one as its slice found
    // it: the first expiry (30 s after t=1000) or, read after its refresh, the refreshed one.
    for (const k of alive) expect(restored.has(k)).toBe(true);
    for (const [k, exp] of restored) {
      expect(now.has(k)).toBe(true);
      expect([31_000, now.get(k)]).toContain(exp);
    }
    expect(loaded).toBeLessThanOrEqual(now.size);

    // Without changes between slices the stepped snapshot restores exactly what one taken at once does.
    const quiet = await make();
    for (let i = 0; i < 1500; i++) quiet.process(buildPacket({ src: `10.244.${1 + (i >> 8)}.${i & 0xff}`, dst: '10.96.0.10', proto: 'udp', sport: 7000, dport: 53 }), 1000 + (i % 7) * 1000);
    const s = quiet.snapshotSteps(9000);
    let n = 0;
    while (!s.step(64)) n++;
    expect(n).toBeGreaterThan(20);
    const a = await make(), b = await make();
    expect(a.restore(concatBytes(s.finish()))).toBe(1500);
    expect(b.restore(quiet.snapshot(9000))).toBe(1500);
    const full = (d: Dataplane) => d.conntrack().map((e) => JSON.stringify(e)).sort();
    expect(full(a)).toEqual(full(b));
    // Each flow kept its own lifetime (seven different ones).
    expect(new Set(a.conntrack().map((e) => e.expiresMs)).size).toBe(7);
  });

  it('writes a snapshot as msgpack itself would, whatever its size (records given in pieces, never copied)', () => {
    const packr = new Packr({ useRecords: false });
    const utf8 = new TextEncoder();
    // 1 list and 1 port, or 17 of each (a fixarray, or an array 16); a port's stamps in two pieces.
    for (const lists of [1, 17]) {
      const recent = Array.from({ length: lists }, (_, k) => ({ name: `KUBE-SEP-${k}`, entries: [new Uint8Array(100).fill(k)] }));
      const direct = Array.from({ length: lists }, (_, k) => ({ family: 4 as const, port: `ns/a:p${k}/TCP`, entries: [new Uint8Array(44).fill(k), new Uint8Array(88).fill(k + 1)] }));
      // 0, 2, 500 and 1,000 records: no bytes, a bin 8, a bin 16 and a bin 32.
      for (const n of [0, 2, 500, 1000]) {
        const records = new Uint8Array(n * 88).map((_, i) => (i * 31) & 0xff);
        const ipvs = n > 0 ? [new Uint8Array(104).fill(3), new Uint8Array(104).fill(4)] : [];
        const ipvsBytes = concatBytes(ipvs);
        const pieces = [records.subarray(0, 88), records.subarray(88)];
        const chunks = snapshotChunks(pieces, ipvs, new Crc32().update(records).update(ipvsBytes), 12345, { recent, direct });
        for (const p of [...pieces, ...ipvs, ...direct.flatMap((d) => d.entries)]) expect(chunks).toContain(p);
        const whole = packr.pack({
          format: 'svcplane-conntrack', version: 4, recordBytes: 88, savedAtMs: 12345, count: n, records,
          ipvsRecordBytes: 104, ipvsCount: ipvs.length, ipvs: ipvsBytes, recentEntryBytes: 100,
          recent: recent.map((l) => ({ name: l.name, entries: l.entries[0] })), directAffinityBytes: 44,
          direct: direct.map((d) => ({ family: 4, port: d.port, entries: concatBytes(d.entries) })),
          crc: crc32([records, ...ipvs, ...recent.flatMap((l) => [utf8.encode(l.name), ...l.entries]), ...direct.flatMap((d) => [utf8.encode(`4 ${d.port}`), ...d.entries]), savedAtBytes(12345)]),
        });
        expect(Buffer.from(concatBytes(chunks)).equals(Buffer.from(whole))).toBe(true);
      }
    }
  });

  it('checksums a snapshot with CRC-32 as IEEE defines it, however its bytes are split', () => {
    const table = Array.from({ length: 256 }, (_, n) => {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      return c >>> 0;
    });
    const bytewise = (b: Uint8Array): number => {
      let c = 0xffffffff;
      for (const x of b) c = table[(c ^ x) & 0xff]! ^ (c >>> 8);
      return (c ^ 0xffffffff) >>> 0;
    };
    expect(crc32([new TextEncoder().encode('123456789')])).toBe(0xcbf43926);
    expect(crc32([])).toBe(0);
    let seed = 7;
    const next = (n: number): number => { seed = (seed * 1103515245 + 12345) >>> 0; return seed % n; };
    for (let t = 0; t < 300; t++) {
      const whole = Uint8Array.from({ length: next(200) }, () => next(256));
      const chunks: Uint8Array[] = [];
      for (let at = 0; at < whole.length;) {
        const n = 1 + next(20);
        chunks.push(whole.subarray(at, at + n));
        at += n;
      }
      expect(crc32([whole])).toBe(bytewise(whole));
      expect(crc32(chunks)).toBe(bytewise(whole));
    }
  });

  it('rejects corrupt and foreign snapshots without loading anything', async () => {
    dp.process(buildPacket({ src: '10.244.1.5', dst: '10.96.0.10', proto: 'udp', sport: 7000, dport: 53 }), 5000);
    const snap = dp.snapshot();
    const fresh = await make();
    const bad = snap.slice();
    bad[bad.length - 10] ^= 0xff;
    expect(() => fresh.restore(bad)).toThrow(/corrupt/);
    expect(() => fresh.restore(new Uint8Array([1, 2, 3]))).toThrow(/corrupt|not a svcplane/);
    expect(() => fresh.restore(new TextEncoder().encode('{"format":"x"}'))).toThrow();
    for (const notBytes of [undefined, null, 'x', [1, 2]]) {
      expect(() => fresh.restore(notBytes as never)).toThrow('not a svcplane conntrack snapshot: a snapshot is bytes (a Uint8Array)');
    }
    expect(fresh.conntrack()).toHaveLength(0);
  });

  it('rejects a snapshot whose record count is not whole, even with its checksum made good', async () => {
    const packr = new Packr({ useRecords: false });
    const o = packr.unpack(dp.snapshot(0)) as Record<string, unknown> & { recordBytes: number; ipvs: Uint8Array };
    o.records = new Uint8Array(o.recordBytes / 2).fill(0xab);
    o.count = 0.5;   // half a record: its length still equals count × record size
    o.crc = crc32([o.records as Uint8Array, o.ipvs]);
    expect(() => dp.restore(new Uint8Array(packr.pack(o)))).toThrow('conntrack snapshot is corrupt: record block does not match its count');
  });

  it('covers savedAtMs with the checksum (version 4), refuses one that is not a finite number, and still loads version 3', async () => {
    const packr = new Packr({ useRecords: false });
    dp.process(buildPacket({ src: '10.244.1.5', dst: '10.96.0.10', proto: 'udp', sport: 7000, dport: 53 }), 5000);
    const o = packr.unpack(dp.snapshot(6000)) as Record<string, unknown> & { records: Uint8Array; ipvs: Uint8Array; crc: number };
    expect(o.version).toBe(4);
    const fresh = await make();
    // Every lifetime counts from savedAtMs: a changed one is a checksum mismatch.
    expect(() => fresh.restore(new Uint8Array(packr.pack({ ...o, savedAtMs: 6000 + 2 ** 30 })))).toThrow('conntrack snapshot is corrupt: checksum mismatch');
    // Not a time at all, even with the checksum made good over it: refused.
    for (const t of [Infinity, -Infinity, NaN]) {
      const crc = crc32([o.records, o.ipvs, savedAtBytes(t)]);
      expect(() => fresh.restore(new Uint8Array(packr.pack({ ...o, savedAtMs: t, crc })))).toThrow(`conntrack snapshot is corrupt: savedAtMs ${t} is not a time`);
    }
    expect(fresh.conntrack()).toHaveLength(0);
    // Version 3 (no time under the checksum) loads.
    expect(fresh.restore(new Uint8Array(packr.pack({ ...o, version: 3, crc: crc32([o.records, o.ipvs]) })))).toBe(1);
    expect(fresh.conntrack()).toHaveLength(1);
  });

  it('loads a snapshot whole or not at all: one malformed flow or IPVS record, checksum made good, and nothing loads', async () => {
    const packr = new Packr({ useRecords: false });
    for (let p = 0; p < 4; p++) dp.process(buildPacket({ src: `10.244.1.${5 + p}`, dst: '10.96.0.10', proto: 'udp', sport: 7000, dport: 53 }), 5000);
    const o = packr.unpack(dp.snapshot(6000)) as Record<string, unknown> & { records: Uint8Array; ipvs: Uint8Array; recordBytes: number; savedAtMs: number };
    const reseal = (records: Uint8Array, ipvs: Uint8Array, ipvsCount: number) =>
      new Uint8Array(packr.pack({ ...o, records, ipvs, ipvsCount, crc: crc32([records, ipvs, savedAtBytes(o.savedAtMs)]) }));
    const fresh = await make();
    fresh.process(buildPacket({ src: '10.244.1.99', dst: '10.96.0.10', proto: 'udp', sport: 7000, dport: 53 }), 5500);
    const before = fresh.conntrack(5500);
    // The third flow record of a version no core writes.
    const records = o.records.slice();
    records[2 * o.recordBytes] = 99;
    expect(() => fresh.restore(reseal(records, o.ipvs, 0))).toThrow('conntrack snapshot is corrupt: flow record 2 is malformed');
    // An IPVS connection record of no known family.
    const ipvs = new Uint8Array(IPVS_RECORD_BYTES);
    ipvs[0] = 1;
    ipvs[1] = 5;
    expect(() => fresh.restore(reseal(o.records, ipvs, 1))).toThrow('conntrack snapshot is corrupt: IPVS connection record 0 is malformed');
    expect(fresh.conntrack(5500)).toEqual(before);
    expect(fresh.restore(reseal(o.records, o.ipvs, 0))).toBe(4);
  });

  it('flushes UDP flows of a removed endpoint', () => {
    dp.process(buildPacket({ src: '10.244.1.5', dst: '10.96.0.10', proto: 'udp', sport: 7000, dport: 53 }), 1);
    dp.process(buildPacket({ src: '10.244.1.6', dst: '10.96.0.10', proto: 'udp', sport: 7000, dport: 53 }), 1);
    expect(dp.flushEndpoint('10.244.1.21', 53, 'UDP')).toBe(2);
    expect(dp.conntrack()).toHaveLength(0);
  });

  it('flushes many endpoints and Service addresses in one call, or none when one is not an address', () => {
    for (let p = 0; p < 6; p++) dp.process(buildPacket({ src: `10.244.1.${5 + p}`, dst: '10.96.0.10', proto: 'udp', sport: 7000, dport: 53 }), 1);
    dp.process(buildPacket({ src: '10.244.1.5', dst: '10.96.0.80', proto: 'tcp', sport: 7001, dport: 80, flags: 'S' }), 1);
    expect(dp.conntrack()).toHaveLength(7);
    const bad = [{ by: 'endpoint' as const, ip: '10.244.1.21', port: 53 }, { by: 'service' as const, ip: 'nope' }];
    expect(() => dp.flushMany(bad)).toThrow('not an IP address: nope');
    expect(() => dp.flushMany([{ by: 'service', ip: '10.96.0.10', port: 70000 }])).toThrow('bad port 70000');
    expect(dp.conntrack()).toHaveLength(7);
    // The UDP flows all went to the one endpoint: named twice, and by their Service address, each goes once.
    expect(dp.flushMany([
      { by: 'endpoint', ip: '10.244.1.21', port: 53 }, { by: 'service', ip: '10.96.0.10', port: 53 },
      { by: 'endpoint', ip: '10.244.1.21' }, { by: 'service', ip: '10.96.0.80', port: 80, protocol: 'UDP' },
    ])).toBe(6);
    expect(dp.conntrack().map((f) => f.proto)).toEqual(['tcp']);
    expect(dp.flushMany([])).toBe(0);
  });

  it('reconciles UDP flows against guarded Service IPs and NodePorts, as kube-proxy\'s conntrack cleanup does', () => {
    for (let p = 0; p < 6; p++) dp.process(buildPacket({ src: `10.244.1.${5 + p}`, dst: '10.96.0.10', proto: 'udp', sport: 7000, dport: 53 }), 1);
    dp.process(buildPacket({ src: '10.244.1.5', dst: '10.96.0.80', proto: 'tcp', sport: 7001, dport: 80, flags: 'S' }), 1);
    expect(dp.conntrack()).toHaveLength(7);
    // The endpoint's address on another port is not the endpoint (kube-proxy matches --reply-port-src too).
    expect(dp.reconcileUdp([{ family: 4, ip: '10.96.0.10', port: 53, endpoints: [{ ip: '10.244.1.21', port: 5353 }] }])).toBe(6);
    for (let p = 0; p < 6; p++) dp.process(buildPacket({ src: `10.244.1.${5 + p}`, dst: '10.96.0.10', proto: 'udp', sport: 7000, dport: 53 }), 1);
    // Replies from an allowed endpoint: nothing is stale; a guard named twice allows what either allows.
    expect(dp.reconcileUdp([{ family: 4, ip: '10.96.0.10', port: 53, endpoints: [{ ip: '10.244.1.21', port: 53 }] }])).toBe(0);
    expect(dp.reconcileUdp([{ family: 4, ip: '10.96.0.10', port: 53, endpoints: [] }, { family: 4, ip: '10.96.0.10', port: 53, endpoints: [{ ip: '10.244.1.21', port: 53 }] }])).toBe(0);
    // Other guards leave these flows alone: another address, another port of the same address, the
    // other family, a NodePort nobody uses.
    expect(dp.reconcileUdp([
      { family: 4, ip: '10.96.0.11', port: 53, endpoints: [] }, { family: 4, ip: '10.96.0.10', port: 54, endpoints: [] },
      { family: 6, ip: 'fd00::10', port: 53, endpoints: [] }, { family: 4, nodePort: 30053, endpoints: [] },
    ])).toBe(0);
    // Bad guards are refused before anything is deleted.
    expect(() => dp.reconcileUdp([{ family: 4, ip: 'nope', port: 53, endpoints: [] }])).toThrow('not an IPv4 address: nope');
    expect(() => dp.reconcileUdp([{ family: 6, ip: '10.96.0.10', port: 53, endpoints: [] }])).toThrow('not an IPv6 address: 10.96.0.10');
    expect(() => dp.reconcileUdp([{ family: 4, nodePort: 70000, endpoints: [] }])).toThrow('a UDP guard or endpoint needs a port of 1-65535: 70000');
    expect(() => dp.reconcileUdp([{ family: 4, ip: '10.96.0.10', port: 0, endpoints: [] }])).toThrow('a UDP guard or endpoint needs a port of 1-65535: 0');
    expect(dp.conntrack()).toHaveLength(7);
    // A NodePort guard matches the destination port on any address: the six UDP flows reply from
    // an endpoint it does not allow and go; the TCP flow stays.
    expect(dp.reconcileUdp([{ family: 4, nodePort: 53, endpoints: [{ ip: '10.244.1.99', port: 53 }] }])).toBe(6);
    expect(dp.conntrack().map((f) => f.proto)).toEqual(['tcp']);
    expect(dp.reconcileUdp([])).toBe(0);
  });

  it('expires flows by their timeouts', () => {
    dp.process(buildPacket({ src: '10.244.1.5', dst: '10.96.0.10', proto: 'udp', sport: 7000, dport: 53 }), 1000);
    expect(dp.expire(30_999)).toBe(0);
    expect(dp.expire(31_001)).toBe(1);
    expect(dp.conntrack()).toHaveLength(0);
  });
});
