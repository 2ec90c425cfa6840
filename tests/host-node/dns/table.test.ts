// The record blob: its layout as documented in host-node/dns/table.ts, the core's load checks (each
// error code), atomic swap (a rejected blob leaves the old table answering), and a blob fuzz that
// never traps the core.
import { describe, expect, it } from 'vitest';
import {
  DnsEncodeError, DnsLoadError, DNS_BLOB_MAGIC, encodeDnsTable, loadDnsBlob, readDnsCounters, wireName, type DnsCore,
} from '../../../host-node/dns/table.js';
import type { DnsRecord } from '../../../host-node/kube/dns-records.js';
import { dnsHarness, fixtureRecords, query, RCODE, decode } from '../../assembly/dns/msg.js';

const soa: DnsRecord = {
  name: 'cluster.local', type: 'SOA', ttl: 5, mname: 'ns.dns.cluster.local', rname: 'hostmaster.cluster.local',
  serial: 1, refresh: 7200, retry: 1800, expire: 86400, minimum: 5,
};
const a = (name: string, address: string): DnsRecord => ({ name, type: 'A', ttl: 5, address });

/** One record in the documented layout, written independently of the encoder. */
function rawRecord(type: number, ttl: number, owner: string, rdata: number[]): number[] {
  const o = [...wireName(owner)];
  return [type & 0xff, type >> 8, rdata.length & 0xff, rdata.length >> 8, ttl & 0xff, (ttl >> 8) & 0xff, 0, 0, o.length, ...o, ...rdata];
}
function rawBlob(zone: string, records: number[][]): Uint8Array {
  const z = [...wireName(zone)];
  return Uint8Array.from([0x44, 0x4e, 0x53, 0x31, records.length, 0, 0, 0, z.length, ...z, ...records.flat()]);
}
const soaRaw = rawRecord(6, 5, 'cluster.local', [...wireName('ns.dns.cluster.local'), ...wireName('h.cluster.local'), ...Array(20).fill(0)]);

function coreOf(h: ReturnType<typeof dnsHarness>): DnsCore {
  return { ...(h.core.x as unknown as DnsCore), memory: h.core.memory };
}

describe('blob layout', () => {
  it('matches the documented format byte for byte', () => {
    const blob = encodeDnsTable('cluster.local', [soa, a('x.cluster.local', '10.0.0.1')]);
    const expected = rawBlob('cluster.local', [
      rawRecord(6, 5, 'cluster.local', [
        ...wireName('ns.dns.cluster.local'), ...wireName('hostmaster.cluster.local'),
        0, 0, 0, 1, 0, 0, 0x1c, 0x20, 0, 0, 0x07, 0x08, 0, 1, 0x51, 0x80, 0, 0, 0, 5,
      ]),
      rawRecord(1, 5, 'x.cluster.local', [10, 0, 0, 1]),
    ]);
    expect([...blob]).toEqual([...expected]);
    expect(new DataView(blob.buffer).getUint32(0, true)).toBe(DNS_BLOB_MAGIC);
  });
  it('groups records by owner whatever the input order', () => {
    const blob = encodeDnsTable('cluster.local', [a('x.cluster.local', '10.0.0.1'), soa, a('x.cluster.local', '10.0.0.2')]);
    const h = dnsHarness(null);
    loadDnsBlob(coreOf(h), blob);
    expect(h.answer(query('x.cluster.local', 'A')).answer.map((r) => r.data)).toEqual(['10.0.0.1', '10.0.0.2']);
  });
  it('rejects names DNS cannot carry', () => {
    expect(() => wireName(`${'a'.repeat(64)}.local`)).toThrow(DnsEncodeError);
    expect(() => wireName(Array(130).fill('ab').join('.'))).toThrow(DnsEncodeError);
    expect(() => encodeDnsTable('cluster.local', [{ name: 'x.cluster.local', type: 'A', ttl: 5, address: 'fd00::1' }])).toThrow(DnsEncodeError);
  });
});

describe('loading into the core', () => {
  const cases: [string, Uint8Array, number][] = [
    ['too short', Uint8Array.from([0x44, 0x4e]), -1],
    ['bad magic', Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 1, 0]), -2],
    ['a record cut short', rawBlob('cluster.local', [soaRaw, rawRecord(1, 5, 'x.cluster.local', [10, 0, 0, 1]).slice(0, 12)]), -1],
    ['a bad owner name', rawBlob('cluster.local', [soaRaw, [1, 0, 4, 0, 5, 0, 0, 0, 3, 70, 0x61, 0, 10, 0, 0, 1]]), -3],
    ['A rdata of 5 bytes', rawBlob('cluster.local', [soaRaw, rawRecord(1, 5, 'x.cluster.local', [10, 0, 0, 1, 2])]), -4],
    ['owner outside the zone', rawBlob('cluster.local', [soaRaw, rawRecord(1, 5, 'example.com', [10, 0, 0, 1])]), -5],
    ['owner records not consecutive', rawBlob('cluster.local', [
      soaRaw, rawRecord(1, 5, 'x.cluster.local', [10, 0, 0, 1]), rawRecord(1, 5, 'y.cluster.local', [10, 0, 0, 2]),
      rawRecord(1, 5, 'x.cluster.local', [10, 0, 0, 3]),
    ]), -6],
    ['no SOA at the apex', rawBlob('cluster.local', [rawRecord(1, 5, 'x.cluster.local', [10, 0, 0, 1])]), -7],
    ['two SOAs at the apex', rawBlob('cluster.local', [soaRaw, soaRaw]), -7],
    ['an unsupported type', rawBlob('cluster.local', [soaRaw, rawRecord(15, 5, 'x.cluster.local', [0, 1, 0])]), -8],
    ['trailing bytes', Uint8Array.from([...rawBlob('cluster.local', [soaRaw]), 0]), -9],
  ];
  for (const [what, blob, code] of cases) {
    it(`${what}: error ${code}, and the previous table keeps answering`, () => {
      const h = dnsHarness();
      const core = coreOf(h);
      let err: unknown;
      try { loadDnsBlob(core, blob); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(DnsLoadError);
      expect((err as DnsLoadError).code).toBe(code);
      expect(h.answer(query('kubernetes.default.svc.cluster.local', 'A')).answer.map((r) => r.data)).toEqual(['10.3.0.1']);
    });
  }

  it('a new table replaces the old one whole', () => {
    const h = dnsHarness();
    const core = coreOf(h);
    loadDnsBlob(core, encodeDnsTable('cluster.local', [soa, a('new.default.svc.cluster.local', '10.9.0.1')]));
    expect(h.answer(query('new.default.svc.cluster.local', 'A')).answer.map((r) => r.data)).toEqual(['10.9.0.1']);
    expect(h.answer(query('kubernetes.default.svc.cluster.local', 'A')).rcode).toBe(RCODE.NXDOMAIN);
    expect(h.core.x.dnsRecordCount!()).toBe(2);
    // new.default.svc.cluster.local plus its ancestors default.svc / svc / the apex.
    expect(h.core.x.dnsNameCount!()).toBe(4);
  });

  it('counters are read by name', () => {
    const h = dnsHarness();
    h.ask(query('kubernetes.default.svc.cluster.local', 'A'));
    h.ask(query('nope.default.svc.cluster.local', 'A'));
    h.ask(Uint8Array.from([1, 2, 3]));
    const c = readDnsCounters(coreOf(h));
    expect(c).toMatchObject({ queries: 3, noerror: 1, nxdomain: 1, drop_short: 1, formerr: 0 });
  });

  it('5,000 mutated blobs never trap the core; rejected ones leave the table answering', () => {
    const h = dnsHarness();
    const core = coreOf(h);
    const { zone, records } = fixtureRecords();
    const good = encodeDnsTable(zone, records);
    let s = 12345;
    const r = () => { s = (s * 1103515245 + 12345) >>> 0; return s / 0x100000000; };
    let rejected = 0;
    for (let i = 0; i < 5000; i++) {
      const b = Uint8Array.from(good);
      const flips = 1 + Math.floor(r() * 3);
      for (let k = 0; k < flips; k++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
      const blob = i % 5 === 0 ? b.slice(0, Math.floor(r() * b.length)) : b;
      try {
        loadDnsBlob(core, blob);
      } catch (e) {
        expect(e).toBeInstanceOf(DnsLoadError);
        rejected++;
      }
      const out = h.ask(query('kubernetes.default.svc.cluster.local', 'A'));
      expect(typeof out).not.toBe('number');
      decode(out as Uint8Array);
      if (i % 50 === 0) loadDnsBlob(core, good);
    }
    expect(rejected).toBeGreaterThan(1000);
  });
});
