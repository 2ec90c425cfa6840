// The core's DNS over TCP framing (dnsAnswerTcp, RFC 1035 §4.2.2) and upstream marking (dnsForward):
// a framed query gets a framed answer with no UDP truncation, an incomplete frame asks for more
// bytes, and with forwarding on only names the table cannot speak for come back as -4.
import { describe, it, expect } from 'vitest';
import { dnsHarness, fixtureRecords, manyEndpoints, query, decode, RCODE } from './msg.js';

const framed = (m: Uint8Array) => Uint8Array.from([m.length >> 8, m.length & 0xff, ...m]);

function tcpAsk(h: ReturnType<typeof dnsHarness>, frame: Uint8Array, cap = 0x10000): Uint8Array | number {
  const qAt = h.core.scratch;
  const outAt = h.core.scratch + 0x20000;
  h.core.put(frame, qAt);
  const n = h.core.x.dnsAnswerTcp!(qAt, frame.length, outAt, cap);
  return n < 0 ? n : h.core.get(outAt, n);
}

describe('dnsAnswerTcp', () => {
  it('answers a frame with a framed answer, never truncated for UDP', () => {
    const h = dnsHarness(fixtureRecords(manyEndpoints(300)));
    const q = query('many.default.svc.cluster.local', 'A', { id: 9 });
    const udp = h.answer(q);
    expect(udp.tc).toBe(true);
    const r = tcpAsk(h, framed(q));
    if (typeof r === 'number') throw new Error(`dropped ${r}`);
    const len = (r[0]! << 8) | r[1]!;
    expect(len).toBe(r.length - 2);
    expect(len).toBeGreaterThan(1232);
    const m = decode(r.subarray(2));
    expect([m.id, m.tc, m.rcode, m.answer.length]).toEqual([9, false, RCODE.NOERROR, 300]);
  });

  it('asks for more bytes while the frame is incomplete, and answers the frame once whole', () => {
    const h = dnsHarness();
    const f = framed(query('kubernetes.default.svc.cluster.local', 'A'));
    for (const cut of [0, 1, 2, f.length - 1]) expect(tcpAsk(h, f.subarray(0, cut))).toBe(-5);
    expect(h.counters().partial).toBe(4);
    // Bytes after the frame (the next query) are left alone.
    const two = Uint8Array.from([...f, ...f.subarray(0, 5)]);
    const r = tcpAsk(h, two);
    expect(typeof r).not.toBe('number');
    expect(decode((r as Uint8Array).subarray(2)).answer.map((a) => a.data)).toEqual(['10.3.0.1']);
  });

  it('the records that fit, with TC, when the caller\'s buffer or 65535 bytes cannot hold the answer; drops pass through', () => {
    const h = dnsHarness(fixtureRecords(manyEndpoints(300)));
    const r = tcpAsk(h, framed(query('many.default.svc.cluster.local', 'A')), 600) as Uint8Array;
    const part = decode(r.subarray(2));
    expect([part.rcode, part.tc, r.length <= 600, part.answer.length > 30]).toEqual([RCODE.NOERROR, true, true, true]);
    // 5,000 A records (16 bytes each, 80 KB) do not fit one TCP message: CoreDNS sends the 4,000-odd
    // that fit, with TC (request.go Scrub); an answer of none would tell the client there are none.
    const big = dnsHarness(fixtureRecords(manyEndpoints(5000)));
    const full = tcpAsk(big, framed(query('many.default.svc.cluster.local', 'A')), 70_000) as Uint8Array;
    expect((full[0]! << 8) | full[1]!).toBe(full.length - 2);
    expect(full.length - 2).toBeLessThanOrEqual(65535);
    const m = decode(full.subarray(2));
    expect([m.rcode, m.tc]).toEqual([RCODE.NOERROR, true]);
    expect(m.answer.length).toBeGreaterThan(4000);
    expect(m.answer.length).toBeLessThan(5000);
    expect(tcpAsk(h, framed(Uint8Array.of(1, 2, 3)))).toBe(-1);
    expect(tcpAsk(h, framed(query('x.cluster.local', 'A')), 8)).toBe(-3);
  });
});

describe('dnsForward', () => {
  it('marks only names outside the zone (and reverse names without records) for the upstream', () => {
    const h = dnsHarness();
    const ask = (name: string, type: string) => h.ask(query(name, type));
    expect(decode(ask('example.org', 'A') as Uint8Array).rcode).toBe(RCODE.REFUSED);
    h.core.x.dnsForward!(1);
    expect(ask('example.org', 'A')).toBe(-4);
    expect(ask('8.8.8.8.in-addr.arpa', 'PTR')).toBe(-4);
    expect(tcpAsk(h, framed(query('example.org', 'AAAA')))).toBe(-4);
    expect(decode(ask('1.0.3.10.in-addr.arpa', 'PTR') as Uint8Array).answer.map((a) => a.data)).toEqual(['kubernetes.default.svc.cluster.local.']);
    expect(decode(ask('nope.default.svc.cluster.local', 'A') as Uint8Array).rcode).toBe(RCODE.NXDOMAIN);
    expect(decode(ask('kubernetes.default.svc.cluster.local', 'A') as Uint8Array).rcode).toBe(RCODE.NOERROR);
    expect(h.counters().upstream).toBe(3);
    h.core.x.dnsForward!(0);
    expect(decode(ask('example.org', 'A') as Uint8Array).rcode).toBe(RCODE.REFUSED);
  });
});
