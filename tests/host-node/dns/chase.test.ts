// An ExternalName Service naming a host outside the cluster, answered as a recursive resolver does:
// the core's CNAME and the upstream's records for the target (pods' stub resolvers never follow a
// CNAME themselves). The upstream here is in memory and answers as real servers do — compressed
// names, a CNAME chain of its own, NXDOMAIN with its zone's SOA, REFUSED, a large answer — and the
// merged answer is checked record by record: rcode, flags, ID, EDNS, truncation, and what the
// upstream was asked. Also through the packet path's DnsPacketForwarder.
import { describe, it, expect, beforeAll } from 'vitest';
import { Dataplane } from '../../../host-node/dataplane.js';
import { DnsForwarder, DnsPacketForwarder, type UpstreamExchange, type Upstream } from '../../../host-node/dns/forward.js';
import { coreLocalAnswer, resolveUpstream, type LocalCore } from '../../../host-node/dns/chase.js';
import { setDnsForward } from '../../../host-node/core/cluster-dns.js';
import { buildPacket, decodePacket } from '../../../host-node/core/packet.js';
import { FIXTURE, query, decode, encodeName, RCODE, type RR } from '../../assembly/dns/msg.js';

const be16 = (n: number): number[] => [(n >> 8) & 0xff, n & 0xff];
const be32 = (n: number): number[] => [...be16(n >>> 16), ...be16(n & 0xffff)];

/** The question's name, lowercase, and type. */
function question(q: Uint8Array): [string, number] {
  const labels: string[] = [];
  let p = 12;
  for (; q[p]! !== 0; p += 1 + q[p]!) labels.push(Buffer.from(q.subarray(p + 1, p + 1 + q[p]!)).toString('latin1'));
  return [labels.join('.').toLowerCase(), (q[p + 1]! << 8) | q[p + 2]!];
}

/**
 * An upstream's answer to `q` as a real server writes it: the question echoed, then `answer`,
 * each owner a pointer to the question (0xc00c) or to the last CNAME's target, rdata names
 * compressed the same way.
 */
function upstreamAnswer(q: Uint8Array, rcode: number, answer: Array<{ owner: 'q' | 'prev'; type: number; rdata: number[] }>, soa = false): Uint8Array {
  let qEnd = 12;
  while (q[qEnd]! !== 0) qEnd += 1 + q[qEnd]!;
  qEnd += 5;
  const out = [...q.subarray(0, 2), ...be16(0x8180 | rcode), ...be16(1), ...be16(answer.length), ...be16(soa ? 1 : 0), 0, 0, ...q.subarray(12, qEnd)];
  let target = 12;
  for (const r of answer) {
    out.push(...be16(0xc000 | (r.owner === 'q' ? 12 : target)), ...be16(r.type), 0, 1, ...be32(300));
    out.push(...be16(r.rdata.length));
    if (r.type === 5) target = out.length;
    out.push(...r.rdata);
  }
  // The SOA of the question's parent (example.com): its names pointers to the question's tail.
  const tail = 12 + 1 + q[12]!;
  if (soa) out.push(...be16(0xc000 | tail), 0, 6, 0, 1, ...be32(900), ...be16(2 + 2 + 20), 0xc0, tail, 0xc0, tail, ...be32(1), ...be32(7200), ...be32(900), ...be32(86400), ...be32(60));
  return Uint8Array.from(out);
}

/** What the in-memory upstream answers, by asked name. */
function respond(q: Uint8Array): Uint8Array {
  const [name] = question(q);
  if (name === 'www.example.com') {
    // A CNAME of its own (target compressed against itself: "edge" + pointer to "example.com"), then two A records owned by the target.
    return upstreamAnswer(q, 0, [
      { owner: 'q', type: 5, rdata: [4, ...Buffer.from('edge'), 0xc0, 12 + 4] },
      { owner: 'prev', type: 1, rdata: [198, 18, 9, 1] },
      { owner: 'prev', type: 1, rdata: [198, 18, 9, 2] },
    ]);
  }
  if (name === 'gone.example.com') return upstreamAnswer(q, RCODE.NXDOMAIN, [], true);
  if (name === 'refused.example.com') return upstreamAnswer(q, RCODE.REFUSED, []);
  if (name === 'many.example.com') return upstreamAnswer(q, 0, Array.from({ length: 100 }, (_, i) => ({ owner: 'q' as const, type: 1, rdata: [198, 18, 10, i + 1] })));
  return upstreamAnswer(q, 0, [{ owner: 'q', type: 1, rdata: [198, 18, 7, 1] }]);
}

/** Remembers what it was asked (name, type, RD, transport) and answers from respond(). */
function memoryExchange(asked: Array<{ name: string; type: number; rd: boolean; via: string }>): UpstreamExchange {
  const note = (msg: Uint8Array, via: string) => { const [name, type] = question(msg); asked.push({ name, type, rd: (msg[2]! & 1) === 1, via }); };
  return {
    async udp(_to: Upstream, msg: Uint8Array, _t: number, accept: (a: Uint8Array) => boolean) {
      note(msg, 'udp');
      const a = respond(msg);
      return accept(a) ? a : null;
    },
    async tcp(_to: Upstream, msg: Uint8Array) {
      note(msg, 'tcp');
      return respond(msg);
    },
  };
}

const EXTERNAL = ['www', 'gone', 'refused', 'many'].map((h) => `
---
apiVersion: v1
kind: Service
metadata: { name: ext-${h}, namespace: default }
spec: { type: ExternalName, externalName: ${h}.example.com }`).join('');

const fmt = (r: RR): string => `${r.name} ${r.type} ${r.data}`;

describe('ExternalName to an outside host: the CNAME and the upstream records for its target', () => {
  let dp: Dataplane;
  let asked: Array<{ name: string; type: number; rd: boolean; via: string }>;
  let forwarder: DnsForwarder;
  let local: ReturnType<typeof coreLocalAnswer>;
  beforeAll(async () => {
    dp = await Dataplane.create({ nodeIPs: ['198.18.0.1'], clusterDNS: '198.18.96.10', seed: 3 });
    dp.dns(FIXTURE + EXTERNAL);
    setDnsForward(dp.core, true);
    local = coreLocalAnswer(dp.core as unknown as LocalCore);
  });
  const ask = async (name: string, type: string, o: { id?: number; edns?: number; via?: 'udp' | 'tcp' } = {}) => {
    asked = [];
    forwarder = new DnsForwarder([{ host: '198.18.96.53', port: 53 }], memoryExchange(asked), { nextId: () => 0x4242 });
    return decode(await resolveUpstream(forwarder, query(name, type, { id: o.id ?? 0xbeef, ...(o.edns ? { edns: o.edns } : {}) }), o.via ?? 'udp', local));
  };

  it('the upstream is asked for the target, and its CNAME chain and addresses follow ours, names written out whole', async () => {
    const m = await ask('ext-www.default.svc.cluster.local', 'A');
    expect(asked).toEqual([{ name: 'www.example.com', type: 1, rd: true, via: 'udp' }]);
    expect([m.id, m.qr, m.rcode, m.aa, m.rd, m.tc]).toEqual([0xbeef, true, RCODE.NOERROR, true, true, false]);
    expect(m.question).toEqual([{ name: 'ext-www.default.svc.cluster.local.', type: 1, cls: 1 }]);
    expect(m.answer.map(fmt)).toEqual([
      'ext-www.default.svc.cluster.local. CNAME www.example.com.',
      'www.example.com. CNAME edge.example.com.',
      'edge.example.com. A 198.18.9.1',
      'edge.example.com. A 198.18.9.2',
    ]);
    expect(m.answer.map((r) => r.ttl)).toEqual([5, 300, 300, 300]);
    expect(m.authority).toEqual([]);
    expect(m.additional).toEqual([]);   // no OPT: the client sent none
  });

  it('an NXDOMAIN target: NXDOMAIN after the CNAME, with the upstream zone SOA for negative caching', async () => {
    const m = await ask('ext-gone.default.svc.cluster.local', 'A', { edns: 4096 });
    expect(m.rcode).toBe(RCODE.NXDOMAIN);
    expect(m.answer.map(fmt)).toEqual(['ext-gone.default.svc.cluster.local. CNAME gone.example.com.']);
    expect(m.authority.map(fmt)).toEqual(['example.com. SOA example.com. example.com. 1 7200 900 86400 60']);
    // The client asked with EDNS: the answer carries an OPT (RFC 6891 §7), with our 1232-byte size.
    expect(m.additional.map((r) => [r.type, r.cls])).toEqual([['OPT', 1232]]);
  });

  it('an upstream that refuses: SERVFAIL, the CNAME kept', async () => {
    const m = await ask('ext-refused.default.svc.cluster.local', 'A');
    expect([m.rcode, m.answer.map(fmt)]).toEqual([RCODE.SERVFAIL, ['ext-refused.default.svc.cluster.local. CNAME refused.example.com.']]);
  });

  it('over UDP an answer past the client size keeps what fits, TC set; over TCP it is whole', async () => {
    const udp = await ask('ext-many.default.svc.cluster.local', 'A');
    expect(udp.tc).toBe(true);
    expect(udp.answer[0]!.type).toBe('CNAME');
    expect(udp.answer.length).toBeGreaterThan(10);
    expect(udp.answer.length).toBeLessThan(101);
    const tcp = await ask('ext-many.default.svc.cluster.local', 'A', { via: 'tcp' });
    expect([tcp.tc, tcp.answer.length]).toEqual([false, 101]);
    expect(asked.map((a) => a.via)).toEqual(['tcp']);
  });

  it('names outside the zone are forwarded as asked; other types than the chain asks follow it too', async () => {
    const m = await ask('www.example.org', 'A');
    expect(asked.map((a) => a.name)).toEqual(['www.example.org']);
    expect(m.answer.map(fmt)).toEqual(['www.example.org. A 198.18.7.1']);
    await ask('ext-www.default.svc.cluster.local', 'AAAA');
    expect(asked.map((a) => [a.name, a.type])).toEqual([['www.example.com', 28]]);
  });

  it('the packet path: the reply packet holds the chain and the addresses', async () => {
    asked = [];
    const fwd = new DnsPacketForwarder(new DnsForwarder([{ host: '198.18.96.53', port: 53 }], memoryExchange(asked)), local);
    const pkt = buildPacket({ src: '198.19.1.5', dst: '198.18.96.10', proto: 'udp', sport: 40000, dport: 53, payload: query('ext-www.default.svc.cluster.local', 'A', { id: 7 }) });
    const r = dp.process(pkt, 1000);
    expect([r.verdict, r.reason]).toEqual(['DROP', 'dns_upstream']);
    const p = decodePacket((await fwd.reply(pkt))!);
    const m = decode(p.payload);
    expect([p.src, p.dst, m.id, m.answer.length, m.answer.at(-1)!.data]).toEqual(['198.18.96.10', '198.19.1.5', 7, 4, '198.18.9.2']);
    expect(asked.map((a) => a.name)).toEqual(['www.example.com']);
  });

  it('the in-memory upstream writes the names it answers with compressed (what the merge must undo)', () => {
    const a = respond(query('www.example.com', 'A'));
    expect(Buffer.from(a).includes(Buffer.from(encodeName('edge.example.com')))).toBe(false);
    expect(decode(a).answer.map(fmt)).toContain('edge.example.com. A 198.18.9.1');
  });
});
