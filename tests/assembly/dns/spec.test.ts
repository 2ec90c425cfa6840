// The Kubernetes DNS specification's examples (kubernetes/dns docs/specification.md, schema 1.1.0)
// as a table: query → answer section, rcode, AA/TC flags and authority, answered by the WASM core
// from records built out of Services and EndpointSlices.
import { beforeAll, describe, expect, it } from 'vitest';
import { decode, dnsHarness, query, RCODE, TYPES, type RR } from './msg.js';

const Z = 'cluster.local.';
const SOA = `ns.dns.${Z} hostmaster.${Z} 1 7200 1800 86400 5`;
const fmt = (r: RR) => `${r.name} ${r.type} ${r.data}`;

interface Case {
  what: string;
  q: [string, string];
  rcode: number;
  aa: boolean;
  answer: string[];
  /** The authority section, formatted; [] when none. */
  authority?: string[];
}

const cases: Case[] = [
  // §2.2 schema version
  { what: 'schema version TXT', q: ['dns-version.cluster.local', 'TXT'], rcode: 0, aa: true, answer: [`dns-version.${Z} TXT "1.1.0"`] },
  // §2.3 ClusterIP services
  { what: 'ClusterIP A', q: ['kubernetes.default.svc.cluster.local', 'A'], rcode: 0, aa: true, answer: [`kubernetes.default.svc.${Z} A 10.3.0.1`] },
  { what: 'named port SRV', q: ['_https._tcp.kubernetes.default.svc.cluster.local', 'SRV'], rcode: 0, aa: true, answer: [`_https._tcp.kubernetes.default.svc.${Z} SRV 0 100 443 kubernetes.default.svc.${Z}`] },
  { what: 'ClusterIP PTR', q: ['1.0.3.10.in-addr.arpa', 'PTR'], rcode: 0, aa: true, answer: [`1.0.3.10.in-addr.arpa. PTR kubernetes.default.svc.${Z}`] },
  { what: 'dual-stack A', q: ['dual.prod.svc.cluster.local', 'A'], rcode: 0, aa: true, answer: [`dual.prod.svc.${Z} A 10.3.0.20`] },
  { what: 'dual-stack AAAA', q: ['dual.prod.svc.cluster.local', 'AAAA'], rcode: 0, aa: true, answer: [`dual.prod.svc.${Z} AAAA fd00::20`] },
  { what: 'UDP port SRV', q: ['_dns._udp.dual.prod.svc.cluster.local', 'SRV'], rcode: 0, aa: true, answer: [`_dns._udp.dual.prod.svc.${Z} SRV 0 100 53 dual.prod.svc.${Z}`] },
  {
    what: 'IPv6 ClusterIP PTR (nibbles)', q: [`0.2.${'0.'.repeat(28)}d.f.ip6.arpa`, 'PTR'], rcode: 0, aa: true,
    answer: [`0.2.${'0.'.repeat(28)}d.f.ip6.arpa. PTR dual.prod.svc.${Z}`],
  },
  // §2.4 headless services
  {
    what: 'headless A: every ready endpoint', q: ['headless.default.svc.cluster.local', 'A'], rcode: 0, aa: true,
    answer: ['10.3.0.100', '10.3.0.101', '10.3.0.102'].map((a) => `headless.default.svc.${Z} A ${a}`),
  },
  { what: 'endpoint hostname A', q: ['my-pet.headless.default.svc.cluster.local', 'A'], rcode: 0, aa: true, answer: [`my-pet.headless.default.svc.${Z} A 10.3.0.100`] },
  { what: 'derived endpoint name A', q: ['10-3-0-102.headless.default.svc.cluster.local', 'A'], rcode: 0, aa: true, answer: [`10-3-0-102.headless.default.svc.${Z} A 10.3.0.102`] },
  {
    what: 'headless SRV: named port × ready endpoint', q: ['_https._tcp.headless.default.svc.cluster.local', 'SRV'], rcode: 0, aa: true,
    answer: ['my-pet', 'my-pet-2', '10-3-0-102'].map((h) => `_https._tcp.headless.default.svc.${Z} SRV 0 100 8443 ${h}.headless.default.svc.${Z}`),
  },
  { what: 'headless endpoint PTR', q: ['100.0.3.10.in-addr.arpa', 'PTR'], rcode: 0, aa: true, answer: [`100.0.3.10.in-addr.arpa. PTR my-pet.headless.default.svc.${Z}`] },
  { what: 'unready endpoint has no PTR (not ours: REFUSED)', q: ['103.0.3.10.in-addr.arpa', 'PTR'], rcode: RCODE.REFUSED, aa: false, answer: [], authority: [] },
  { what: 'headless without ready endpoints: NXDOMAIN', q: ['empty.default.svc.cluster.local', 'A'], rcode: RCODE.NXDOMAIN, aa: true, answer: [], authority: [`${Z} SOA ${SOA}`] },
  // §2.5 ExternalName
  { what: 'ExternalName: A query gets the CNAME', q: ['foo.default.svc.cluster.local', 'A'], rcode: 0, aa: true, answer: [`foo.default.svc.${Z} CNAME www.example.com.`] },
  { what: 'ExternalName: CNAME query', q: ['foo.default.svc.cluster.local', 'CNAME'], rcode: 0, aa: true, answer: [`foo.default.svc.${Z} CNAME www.example.com.`] },
  // The deprecated pod records (kube-dns, CoreDNS "pods insecure"; not in schema 1.1.0), synthesized from the name
  { what: 'pod A record', q: ['10-244-1-5.default.pod.cluster.local', 'A'], rcode: 0, aa: true, answer: [`10-244-1-5.default.pod.${Z} A 10.244.1.5`] },
  { what: 'pod name, other type: NODATA', q: ['10-244-1-5.default.pod.cluster.local', 'AAAA'], rcode: 0, aa: true, answer: [], authority: [`${Z} SOA ${SOA}`] },
  { what: 'pod name with an octet over 255: NXDOMAIN', q: ['10-244-1-256.default.pod.cluster.local', 'A'], rcode: RCODE.NXDOMAIN, aa: true, answer: [], authority: [`${Z} SOA ${SOA}`] },
  { what: 'pod name with three parts: NXDOMAIN', q: ['10-244-1.default.pod.cluster.local', 'A'], rcode: RCODE.NXDOMAIN, aa: true, answer: [] },
  { what: 'pod name with an extra label: NXDOMAIN', q: ['x.10-244-1-5.default.pod.cluster.local', 'A'], rcode: RCODE.NXDOMAIN, aa: true, answer: [] },
  { what: 'pod name with a letter: NXDOMAIN', q: ['10-244-1-5a.default.pod.cluster.local', 'A'], rcode: RCODE.NXDOMAIN, aa: true, answer: [] },
  // zone apex, negative answers, names outside the zone
  { what: 'apex NS', q: ['cluster.local', 'NS'], rcode: 0, aa: true, answer: [`${Z} NS ns.dns.${Z}`] },
  { what: 'apex SOA', q: ['cluster.local', 'SOA'], rcode: 0, aa: true, answer: [`${Z} SOA ${SOA}`] },
  { what: 'NXDOMAIN carries the SOA', q: ['nope.default.svc.cluster.local', 'A'], rcode: RCODE.NXDOMAIN, aa: true, answer: [], authority: [`${Z} SOA ${SOA}`] },
  { what: 'NODATA (no AAAA) carries the SOA', q: ['kubernetes.default.svc.cluster.local', 'AAAA'], rcode: 0, aa: true, answer: [], authority: [`${Z} SOA ${SOA}`] },
  { what: 'empty non-terminal is NODATA', q: ['default.svc.cluster.local', 'A'], rcode: 0, aa: true, answer: [], authority: [`${Z} SOA ${SOA}`] },
  { what: 'unnamed port: _tcp is only a non-terminal', q: ['_tcp.headless.default.svc.cluster.local', 'SRV'], rcode: 0, aa: true, answer: [], authority: [`${Z} SOA ${SOA}`] },
  { what: 'outside the zone: REFUSED', q: ['www.example.com', 'A'], rcode: RCODE.REFUSED, aa: false, answer: [], authority: [] },
  { what: 'a sibling zone is outside', q: ['xcluster.local', 'A'], rcode: RCODE.REFUSED, aa: false, answer: [], authority: [] },
  { what: 'ANY returns every record at the name', q: ['kubernetes.default.svc.cluster.local', 'ANY'], rcode: 0, aa: true, answer: [`kubernetes.default.svc.${Z} A 10.3.0.1`] },
  { what: 'AXFR is refused', q: ['cluster.local', 'AXFR'], rcode: RCODE.REFUSED, aa: false, answer: [], authority: [] },
];

describe('Kubernetes DNS spec examples', () => {
  const h = dnsHarness();
  for (const c of cases) {
    it(c.what, () => {
      const m = h.answer(query(c.q[0], c.q[1], { id: 0xbeef }));
      expect(m.id).toBe(0xbeef);
      expect(m.qr).toBe(true);
      expect(m.rd).toBe(true);
      expect(m.rcode).toBe(c.rcode);
      expect(m.aa).toBe(c.aa);
      expect(m.tc).toBe(false);
      expect(m.question).toEqual([{ name: c.q[0] + '.', type: TYPES[c.q[1]], cls: 1 }]);
      expect(m.answer.map(fmt).sort()).toEqual([...c.answer].sort());
      for (const r of m.answer) expect(r.ttl).toBe(5);
      if (c.authority) expect(m.authority.map(fmt)).toEqual(c.authority);
    });
  }

  it('names are case-insensitive and the question keeps the client case (0x20)', () => {
    const m = h.answer(query('KuBeRnEtEs.DEFAULT.Svc.Cluster.LOCAL', 'A'));
    expect(m.rcode).toBe(0);
    expect(m.question[0]!.name).toBe('KuBeRnEtEs.DEFAULT.Svc.Cluster.LOCAL.');
    // The owner is a pointer to the question, so it carries the client's case too.
    expect(m.answer.map(fmt)).toEqual(['KuBeRnEtEs.DEFAULT.Svc.Cluster.LOCAL. A 10.3.0.1']);
    expect(h.answer(query('DNS-VERSION.CLUSTER.LOCAL', 'TXT')).answer[0]!.data).toBe('"1.1.0"');
    expect(h.answer(query('_HTTPS._TCP.MY-PET.headless.default.svc.cluster.local', 'SRV')).rcode).toBe(RCODE.NXDOMAIN);
  });

  it('another zone: records and apex follow the configured domain', async () => {
    const { fixtureRecords } = await import('./msg.js');
    const z = dnsHarness(fixtureRecords('', 'corp.example'));
    expect(z.answer(query('kubernetes.default.svc.corp.example', 'A')).answer.map((r) => r.data)).toEqual(['10.3.0.1']);
    expect(z.answer(query('kubernetes.default.svc.cluster.local', 'A')).rcode).toBe(RCODE.REFUSED);
    expect(z.answer(query('dns-version.corp.example', 'TXT')).answer[0]!.data).toBe('"1.1.0"');
  });

  it('pod.<zone> and <ns>.pod.<zone> are empty non-terminals: NODATA, not NXDOMAIN (RFC 8020)', () => {
    for (const name of ['pod.cluster.local', 'default.pod.cluster.local', 'any-ns.pod.cluster.local']) {
      const m = h.answer(query(name, 'A'));
      expect([name, m.rcode, m.answer.length, m.authority.map(fmt)]).toEqual([name, RCODE.NOERROR, 0, [`${Z} SOA ${SOA}`]]);
    }
    // A name below a pod name is none.
    expect(h.answer(query('x.10-244-1-5.default.pod.cluster.local', 'A')).rcode).toBe(RCODE.NXDOMAIN);
  });

  it('IPv6 pod names: the address with its colons as dashes, AAAA (CoreDNS findPods)', () => {
    const aaaa = (name: string) => h.answer(query(name, 'AAAA'));
    expect(aaaa('fd00--5.default.pod.cluster.local').answer.map(fmt)).toEqual([`fd00--5.default.pod.${Z} AAAA fd00::5`]);
    expect(aaaa('2001-db8-0-0-0-0-0-1.ns.pod.cluster.local').answer.map((r) => r.data)).toEqual(['2001:db8::1']);
    expect(aaaa('fd00-1--.ns.pod.cluster.local').answer.map((r) => r.data)).toEqual(['fd00:1::']);
    expect(aaaa('--1.ns.pod.cluster.local').answer.map((r) => r.data)).toEqual(['::1']);
    // The other type: NODATA; not an address: NXDOMAIN (two gaps, five hex digits, a stray letter, one leading dash).
    const a = h.answer(query('fd00--5.default.pod.cluster.local', 'A'));
    expect([a.rcode, a.answer.length, a.authority.map(fmt)]).toEqual([RCODE.NOERROR, 0, [`${Z} SOA ${SOA}`]]);
    for (const bad of ['fd00--1--2', 'fd000a--1', 'fd00--5g', '-fd00--5', 'fd00-1']) {
      expect([bad, h.answer(query(`${bad}.ns.pod.cluster.local`, 'AAAA')).rcode]).toEqual([bad, RCODE.NXDOMAIN]);
    }
    // IPv4 as Go's ParseIP takes it: a part with a leading zero is none.
    expect(h.answer(query('10-244-01-5.default.pod.cluster.local', 'A')).rcode).toBe(RCODE.NXDOMAIN);
    expect(h.answer(query('10-244-0-5.default.pod.cluster.local', 'A')).answer.map((r) => r.data)).toEqual(['10.244.0.5']);
  });

  it('no table loaded: REFUSED, never a trap', () => {
    const empty = dnsHarness(null);
    const m = empty.answer(query('kubernetes.default.svc.cluster.local', 'A'));
    expect(m.rcode).toBe(RCODE.REFUSED);
    expect(empty.counters().refused).toBe(1);
  });
});

// ExternalName Services naming names the table answers: the chain is followed to the records, as a
// recursive resolver gives them (pods' stub resolvers never follow a CNAME themselves).
const externalName = (name: string, target: string) => `
---
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec: { type: ExternalName, externalName: ${target} }`;
const CHAINS = [
  externalName('alias', 'kubernetes.default.svc.cluster.local'),
  externalName('alias2', 'alias.default.svc.cluster.local.'),
  externalName('dangling', 'nope.default.svc.cluster.local'),
  externalName('loop-a', 'loop-b.default.svc.cluster.local'),
  externalName('loop-b', 'loop-a.default.svc.cluster.local'),
  externalName('to-pod', '10-244-1-5.default.pod.cluster.local'),
].join('');

describe('CNAME chains through the table (RFC 1034 §4.3.2)', () => {
  let h: ReturnType<typeof dnsHarness>;
  beforeAll(async () => {
    const { fixtureRecords } = await import('./msg.js');
    h = dnsHarness(fixtureRecords(CHAINS));
  });
  const names = (m: { answer: RR[] }) => m.answer.map(fmt);

  it('an ExternalName naming a Service: the CNAME, then its address', () => {
    const m = h.answer(query('alias.default.svc.cluster.local', 'A'));
    expect([m.rcode, m.aa]).toEqual([RCODE.NOERROR, true]);
    expect(names(m)).toEqual([`alias.default.svc.${Z} CNAME kubernetes.default.svc.${Z}`, `kubernetes.default.svc.${Z} A 10.3.0.1`]);
    // Two links, then a name without AAAA: NODATA with the zone's SOA, the chain kept.
    const two = h.answer(query('alias2.default.svc.cluster.local', 'AAAA'));
    expect([two.rcode, names(two), two.authority.map(fmt)]).toEqual([RCODE.NOERROR,
      [`alias2.default.svc.${Z} CNAME alias.default.svc.${Z}`, `alias.default.svc.${Z} CNAME kubernetes.default.svc.${Z}`], [`${Z} SOA ${SOA}`]]);
    // The CNAME itself, asked for, ends there; ANY gives what the name holds.
    expect(names(h.answer(query('alias.default.svc.cluster.local', 'CNAME')))).toEqual([`alias.default.svc.${Z} CNAME kubernetes.default.svc.${Z}`]);
    expect(names(h.answer(query('alias.default.svc.cluster.local', 'ANY')))).toEqual([`alias.default.svc.${Z} CNAME kubernetes.default.svc.${Z}`]);
  });

  it('a target in the zone that does not exist: NXDOMAIN, the rcode of the last name (RFC 6604)', () => {
    const m = h.answer(query('dangling.default.svc.cluster.local', 'A'));
    expect([m.rcode, names(m), m.authority.map(fmt)]).toEqual([RCODE.NXDOMAIN, [`dangling.default.svc.${Z} CNAME nope.default.svc.${Z}`], [`${Z} SOA ${SOA}`]]);
  });

  it('a loop ends after eight links with what was written', () => {
    const m = h.answer(query('loop-a.default.svc.cluster.local', 'A'));
    expect(m.rcode).toBe(RCODE.NOERROR);
    expect(m.answer.length).toBe(9);
    expect(m.answer.every((r) => r.type === 'CNAME')).toBe(true);
  });

  it('a pod name as the target: its synthesized address', () => {
    const m = h.answer(query('to-pod.default.svc.cluster.local', 'A'));
    expect(names(m)).toEqual([`to-pod.default.svc.${Z} CNAME 10-244-1-5.default.pod.${Z}`, `10-244-1-5.default.pod.${Z} A 10.244.1.5`]);
  });

  it('a target outside the zone: the CNAME alone without forwarding; with it, handed to the host, whose local answer is the chain', () => {
    const off = h.answer(query('foo.default.svc.cluster.local', 'A'));
    expect([off.rcode, names(off)]).toEqual([RCODE.NOERROR, [`foo.default.svc.${Z} CNAME www.example.com.`]]);
    const x = h.core.x as unknown as { dnsForward(on: number): void; dnsAnswerLocal(q: number, len: number, out: number, cap: number, maxUdp: number, tcp: number): number };
    x.dnsForward(1);
    try {
      const before = h.counters();
      const q = query('foo.default.svc.cluster.local', 'A', { id: 0x1234 });
      expect(h.ask(q)).toBe(-4);
      expect(h.counters().upstream).toBe(before.upstream! + 1);
      // In the zone, answered by the table alone: still answered, chains included.
      expect(names(h.answer(query('alias.default.svc.cluster.local', 'A')))).toHaveLength(2);
      const counted = h.counters();
      h.core.put(q, h.core.scratch);
      const n = x.dnsAnswerLocal(h.core.scratch, q.length, h.core.scratch + 0x20000, 0x10000, 1232, 0);
      const local = decode(h.core.get(h.core.scratch + 0x20000, n));
      expect([local.id, local.rcode, names(local)]).toEqual([0x1234, RCODE.NOERROR, [`foo.default.svc.${Z} CNAME www.example.com.`]]);
      expect(h.counters()).toEqual(counted);   // the local answer counts nothing
    } finally {
      x.dnsForward(0);
    }
  });
});
