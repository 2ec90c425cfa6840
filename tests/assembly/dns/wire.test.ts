// DNS message handling in the core: name compression (reading with loop protection, writing),
// malformed queries (FORMERR, NOTIMP, counted drops), EDNS0 sizes and TC=1 truncation.
import { describe, expect, it } from 'vitest';
import { decode, dnsHarness, encodeName, fixtureRecords, query, RCODE } from './msg.js';

function be16(n: number): number[] { return [(n >> 8) & 0xff, n & 0xff]; }
function header(qd: number, an = 0, ns = 0, ar = 0, flags = 0x0100): number[] {
  return [0xab, 0xcd, ...be16(flags), ...be16(qd), ...be16(an), ...be16(ns), ...be16(ar)];
}

describe('reading compressed names', () => {
  const h = dnsHarness();
  const read = (bytes: number[], off: number): [number, string] => {
    const p = h.core.put(Uint8Array.from(bytes));
    const e = h.core.x.dnsReadName!(p, bytes.length, off);
    if (e < 0) return [e, ''];
    const name = h.core.get(h.core.x.dnsNamePtr!(), h.core.x.dnsNameLen!());
    const labels: string[] = [];
    for (let i = 0; name[i] !== 0; i += 1 + name[i]!) labels.push(Buffer.from(name.slice(i + 1, i + 1 + name[i]!)).toString('latin1'));
    return [e, labels.join('.')];
  };
  const base = [...header(1), ...encodeName('svc.cluster.local')]; // name at 12, 19 bytes

  it('follows a backward pointer and returns the end after the pointer', () => {
    const msg = [...base, 3, 0x61, 0x70, 0x69, 0xc0, 12];
    expect(read(msg, 31)).toEqual([37, 'api.svc.cluster.local']);
  });
  it('follows a pointer into the middle of a name', () => {
    expect(read([...base, 0xc0, 16], 31)).toEqual([33, 'cluster.local']);
  });
  it('lowercases while reading', () => {
    expect(read([...header(1), ...encodeName('KuBe.LOCAL')], 12)).toEqual([24, 'kube.local']);
  });
  it('rejects a pointer to itself (a loop)', () => {
    expect(read([...base, 0xc0, 31], 31)[0]).toBe(-1);
  });
  it('rejects forward pointers, so two pointers cannot form a loop', () => {
    // 31 → 33 → 31
    expect(read([...base, 0xc0, 33, 0xc0, 31], 31)[0]).toBe(-1);
  });
  it('rejects a pointer past the end and a cut pointer', () => {
    expect(read([...base, 0xc0, 0xff], 31)[0]).toBe(-1);
    expect(read([...base, 0xc0], 31)[0]).toBe(-1);
  });
  it('rejects reserved label types 0x40 and 0x80', () => {
    expect(read([...header(1), 0x41, 0x61, 0], 12)[0]).toBe(-1);
    expect(read([...header(1), 0x81, 0x61, 0], 12)[0]).toBe(-1);
  });
  it('rejects a label running past the end and a name with no root', () => {
    expect(read([...header(1), 5, 0x61, 0x62], 12)[0]).toBe(-1);
    expect(read([...header(1), 1, 0x61], 12)[0]).toBe(-1);
  });
  it('rejects a name over 255 octets built from chained pointers', () => {
    // Each step: a 63-octet label followed by a pointer back to the previous step.
    const msg = [...header(1), 63, ...Array(63).fill(0x61), 0];
    let prev = 12;
    for (let i = 0; i < 5; i++) {
      const at = msg.length;
      msg.push(63, ...Array(63).fill(0x62), 0xc0 | (prev >> 8), prev & 0xff);
      prev = at;
    }
    expect(read(msg, 12 + 65 + 66 * 1)[0]).toBeGreaterThan(0); // 3 labels: fits
    expect(read(msg, prev)[0]).toBe(-1); // 6 labels of 63: too long
  });
  it('rejects a chain of more than 64 pointer hops', () => {
    const msg = [...header(1), 0];
    let prev = 12;
    for (let i = 0; i < 70; i++) { const at = msg.length; msg.push(0xc0, prev); prev = at; }
    expect(read(msg, prev)[0]).toBe(-1);
    expect(read(msg, 13 + 2 * 10)[0]).toBeGreaterThan(0);
  });
});

describe('writing compressed answers', () => {
  const h = dnsHarness();
  it('answer owners point at the question, the SOA owner at a suffix of it', () => {
    const r = h.ask(query('nope.default.svc.cluster.local', 'A')) as Uint8Array;
    const m = decode(r);
    expect(m.rcode).toBe(RCODE.NXDOMAIN);
    // The SOA owner "cluster.local" is a pointer to offset 12 + 5 + 8 + 4 = 29.
    const qEnd = 12 + encodeName('nope.default.svc.cluster.local').length + 4;
    expect([...r.slice(qEnd, qEnd + 2)]).toEqual([0xc0, 29]);
    // mname and rname end in cluster.local too: both compressed.
    expect(m.pointers).toBe(3);
  });
  it('several records share one pointer to the question each', () => {
    const r = h.ask(query('headless.default.svc.cluster.local', 'A')) as Uint8Array;
    const qEnd = 12 + encodeName('headless.default.svc.cluster.local').length + 4;
    for (let i = 0; i < 3; i++) expect([...r.slice(qEnd + i * 16, qEnd + i * 16 + 2)]).toEqual([0xc0, 12]);
    expect(r.length).toBe(qEnd + 3 * 16);
  });
  it('an NS target is compressed against the question', () => {
    const r = h.ask(query('cluster.local', 'NS')) as Uint8Array;
    const qEnd = 12 + encodeName('cluster.local').length + 4;
    // owner C0 0C, type, class, ttl, rdlen 9: "\2ns\3dns" + pointer to 12.
    expect(r.length).toBe(qEnd + 12 + 9);
    expect([...r.slice(qEnd + 10, qEnd + 12)]).toEqual([0, 9]);
    expect([...r.slice(r.length - 2)]).toEqual([0xc0, 12]);
    expect(decode(r).answer[0]!.data).toBe('ns.dns.cluster.local.');
  });
  it('SRV targets are written whole (RFC 2782)', () => {
    const r = h.ask(query('_https._tcp.kubernetes.default.svc.cluster.local', 'SRV')) as Uint8Array;
    // SRV targets are written whole (RFC 2782), so the answer holds the full name once.
    expect(decode(r).answer[0]!.data).toBe('0 100 443 kubernetes.default.svc.cluster.local.');
    const full = Buffer.from(encodeName('kubernetes.default.svc.cluster.local'));
    expect(Buffer.from(r).indexOf(full)).toBeGreaterThan(12);
  });
});

describe('malformed queries', () => {
  const h = dnsHarness();
  const q = query('kubernetes.default.svc.cluster.local', 'A');
  const formerr = (bytes: number[] | Uint8Array) => {
    const m = h.answer(Uint8Array.from(bytes));
    expect(m.rcode).toBe(RCODE.FORMERR);
    expect(m.id).toBe(bytes[0]! * 256 + bytes[1]!);
    expect(m.question).toEqual([]);
    return m;
  };
  it('no question, two questions', () => {
    formerr(header(0));
    formerr([...header(2), ...q.slice(12), ...q.slice(12)]);
  });
  it('a name cut short, a missing type/class', () => {
    formerr(q.slice(0, 20));
    formerr(q.slice(0, q.length - 2));
  });
  it('a question name that is a pointer loop', () => {
    formerr([...header(1), 0xc0, 12, 0, 1, 0, 1]);
  });
  it('records claimed but missing, or cut inside rdata', () => {
    const withAr = Uint8Array.from([...header(1, 0, 0, 1), ...q.slice(12)]);
    formerr(withAr);
    const opt = query('kubernetes.default.svc.cluster.local', 'A', { edns: 1232 });
    const cut = Uint8Array.from(opt); cut[cut.length - 1] = 5; // rdlen 5, no rdata
    formerr(cut);
  });
  it('two OPT records, an OPT in the answer section, an OPT with an owner', () => {
    const opt = [0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0];
    formerr([...header(1, 0, 0, 2), ...q.slice(12), ...opt, ...opt]);
    formerr([...header(1, 1, 0, 0), ...q.slice(12), ...opt]);
    formerr([...header(1, 0, 0, 1), ...q.slice(12), 1, 0x61, ...opt]);
  });
  it('qtype OPT is FORMERR', () => {
    formerr(query('kubernetes.default.svc.cluster.local', 41));
  });
  it('opcodes other than QUERY get NOTIMP', () => {
    const m = h.answer(query('kubernetes.default.svc.cluster.local', 'A', { opcode: 2 }));
    expect(m.rcode).toBe(RCODE.NOTIMP);
    expect(m.opcode).toBe(2);
  });
  it('drops what cannot be answered, each with its counter', () => {
    const before = h.counters();
    expect(h.ask(q.slice(0, 11))).toBe(-1);
    const resp = Uint8Array.from(q); resp[2]! |= 0x80;
    expect(h.ask(resp)).toBe(-2);
    expect(h.ask(q, { cap: 20 })).toBe(-3);
    const after = h.counters();
    expect(after.drop_short - before.drop_short).toBe(1);
    expect(after.drop_response - before.drop_response).toBe(1);
    expect(after.drop_noroom - before.drop_noroom).toBe(1);
  });
  it('a class other than IN is REFUSED', () => {
    expect(h.answer(query('dns-version.cluster.local', 'TXT', { qclass: 3 })).rcode).toBe(RCODE.REFUSED);
  });
});

const BIG = `
---
apiVersion: v1
kind: Service
metadata: { name: big, namespace: default }
spec: { clusterIP: None, ports: [{ name: http, port: 80, protocol: TCP }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: big-1, namespace: default, labels: { kubernetes.io/service-name: big } }
addressType: IPv4
ports: [{ name: http, port: 8080, protocol: TCP }]
endpoints:
${Array.from({ length: 100 }, (_, i) => `  - { addresses: [10.4.${i >> 4}.${i & 15}], conditions: { ready: true } }`).join('\n')}
`;

describe('EDNS0 and truncation', () => {
  const h = dnsHarness(fixtureRecords(BIG));
  const name = 'big.default.svc.cluster.local';
  const qLen = 12 + encodeName(name).length + 4;

  it('echoes an OPT with our UDP size; none without EDNS', () => {
    const m = h.answer(query('kubernetes.default.svc.cluster.local', 'A', { edns: 4096 }), { maxUdp: 1400 });
    expect(m.additional).toEqual([{ name: '.', type: 'OPT', cls: 1400, ttl: 0, data: 'len=0' }]);
    expect(h.answer(query('kubernetes.default.svc.cluster.local', 'A')).additional).toEqual([]);
  });
  it('an unknown EDNS version gets BADVERS (extended rcode 1 in the OPT TTL)', () => {
    const m = h.answer(query('kubernetes.default.svc.cluster.local', 'A', { edns: 1232, ednsVersion: 1 }));
    expect(m.rcode).toBe(0);
    expect(m.answer).toEqual([]);
    expect(m.additional[0]!.ttl >>> 24).toBe(1);
  });
  it('plain UDP: 512 bytes at most, whole records, TC=1', () => {
    const r = h.ask(query(name, 'A')) as Uint8Array;
    expect(r.length).toBeLessThanOrEqual(512);
    const m = decode(r);
    expect(m.tc).toBe(true);
    expect(m.answer.length).toBe(Math.floor((512 - qLen) / 16));
  });
  it('EDNS raises the limit to the smaller of the client size and ours', () => {
    const all = h.answer(query(name, 'A', { edns: 4096 }), { maxUdp: 4096 });
    expect(all.tc).toBe(false);
    expect(all.answer.length).toBe(100);
    const r = h.ask(query(name, 'A', { edns: 4096 }), { maxUdp: 1232 }) as Uint8Array;
    expect(r.length).toBeLessThanOrEqual(1232);
    expect(decode(r).tc).toBe(true);
    expect(decode(r).answer.length).toBe(Math.floor((1232 - 11 - qLen) / 16));
    const small = h.ask(query(name, 'A', { edns: 1000 }), { maxUdp: 4096 }) as Uint8Array;
    expect(small.length).toBeLessThanOrEqual(1000);
    expect(decode(small).tc).toBe(true);
  });
  it('a client size under 512 counts as 512', () => {
    const r = h.ask(query(name, 'A', { edns: 100 })) as Uint8Array;
    expect(r.length).toBeGreaterThan(400);
    expect(r.length).toBeLessThanOrEqual(512);
    expect(decode(r).tc).toBe(true);
  });
  it('TCP is not truncated at UDP sizes; past the caller\'s buffer the records that fit go, with TC (as CoreDNS)', () => {
    const m = h.answer(query(name, 'A'), { tcp: true });
    expect(m.tc).toBe(false);
    expect(m.answer.length).toBe(100);
    const srv = h.answer(query(`_http._tcp.${name}`, 'SRV'), { tcp: true });
    expect(srv.answer.length).toBe(100);
    expect(new Set(srv.answer.map((a) => a.data.split(' ')[2])).size).toBe(1);
    const cut = h.ask(query(name, 'A'), { tcp: true, cap: 600 }) as Uint8Array;
    expect(cut.length).toBeLessThanOrEqual(600);
    const m2 = decode(cut);
    expect(m2.rcode).toBe(RCODE.NOERROR);
    expect(m2.tc).toBe(true);
    expect(m2.answer.length).toBeGreaterThan(30);
    expect(m2.answer.every((a) => m.answer.some((b) => b.data === a.data))).toBe(true);
  });
  it('truncation is counted', () => {
    const before = h.counters().truncated;
    h.ask(query(name, 'A'));
    expect(h.counters().truncated).toBe(before + 1);
  });
});
