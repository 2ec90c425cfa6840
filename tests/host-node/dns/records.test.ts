// buildDnsRecords: Services + EndpointSlices → the records of the Kubernetes DNS spec.
import { describe, expect, it } from 'vitest';
import { parseManifests } from '../../../host-node/kube/objects.js';
import {
  buildDnsRecords, derivedHostname, reverseName, TOLERATE_UNREADY, type DnsRecord,
} from '../../../host-node/kube/dns-records.js';
import { FIXTURE, fixtureRecords } from '../../assembly/dns/msg.js';

const text = (r: DnsRecord): string => {
  switch (r.type) {
    case 'A': case 'AAAA': return `${r.name} ${r.type} ${r.address}`;
    case 'SRV': return `${r.name} SRV ${r.priority} ${r.weight} ${r.port} ${r.target}`;
    case 'TXT': return `${r.name} TXT ${r.texts.join(',')}`;
    case 'SOA': return `${r.name} SOA ${r.mname} ${r.rname} ${r.serial} ${r.minimum}`;
    default: return `${r.name} ${r.type} ${r.target}`;
  }
};
const of = (rs: DnsRecord[], name: string) => rs.filter((r) => r.name === name).map(text);

describe('buildDnsRecords', () => {
  const { records } = fixtureRecords();
  const all = records.map(text);

  it('the zone apex and the schema version', () => {
    expect(of(records, 'cluster.local')).toEqual([
      'cluster.local SOA ns.dns.cluster.local hostmaster.cluster.local 1 5',
      'cluster.local NS ns.dns.cluster.local',
    ]);
    expect(of(records, 'dns-version.cluster.local')).toEqual(['dns-version.cluster.local TXT 1.1.0']);
  });

  it('a ClusterIP service: A, PTR, SRV per named port', () => {
    expect(of(records, 'kubernetes.default.svc.cluster.local')).toEqual(['kubernetes.default.svc.cluster.local A 10.3.0.1']);
    expect(of(records, '1.0.3.10.in-addr.arpa')).toEqual(['1.0.3.10.in-addr.arpa PTR kubernetes.default.svc.cluster.local']);
    expect(of(records, '_https._tcp.kubernetes.default.svc.cluster.local')).toEqual([
      '_https._tcp.kubernetes.default.svc.cluster.local SRV 0 100 443 kubernetes.default.svc.cluster.local',
    ]);
  });

  it('dual-stack: A and AAAA, PTR in in-addr.arpa and nibble ip6.arpa', () => {
    expect(of(records, 'dual.prod.svc.cluster.local')).toEqual([
      'dual.prod.svc.cluster.local A 10.3.0.20', 'dual.prod.svc.cluster.local AAAA fd00::20',
    ]);
    const v6 = `0.2.${'0.'.repeat(28)}d.f.ip6.arpa`;
    expect(of(records, v6)).toEqual([`${v6} PTR dual.prod.svc.cluster.local`]);
    expect(of(records, '_dns._udp.dual.prod.svc.cluster.local')).toHaveLength(1);
  });

  it('a headless service: per ready endpoint A, hostname A, PTR and SRV; unready and unnamed ports left out', () => {
    const base = 'headless.default.svc.cluster.local';
    expect(of(records, base)).toEqual(['10.3.0.100', '10.3.0.101', '10.3.0.102'].map((a) => `${base} A ${a}`));
    expect(of(records, `my-pet.${base}`)).toEqual([`my-pet.${base} A 10.3.0.100`]);
    expect(of(records, `my-pet-2.${base}`)).toEqual([`my-pet-2.${base} A 10.3.0.101`]);
    expect(of(records, `10-3-0-102.${base}`)).toEqual([`10-3-0-102.${base} A 10.3.0.102`]);
    expect(of(records, '101.0.3.10.in-addr.arpa')).toEqual([`101.0.3.10.in-addr.arpa PTR my-pet-2.${base}`]);
    expect(of(records, `_https._tcp.${base}`)).toEqual(
      ['my-pet', 'my-pet-2', '10-3-0-102'].map((h) => `_https._tcp.${base} SRV 0 100 8443 ${h}.${base}`));
    expect(all.some((r) => r.includes('10.3.0.103') || r.startsWith('103.0.3.10'))).toBe(false);
    expect(all.some((r) => r.includes('9999'))).toBe(false);
  });

  it('a headless service with no ready endpoints has no records (NXDOMAIN)', () => {
    expect(all.some((r) => r.includes('empty.default'))).toBe(false);
  });

  it('ExternalName becomes a CNAME', () => {
    expect(of(records, 'foo.default.svc.cluster.local')).toEqual(['foo.default.svc.cluster.local CNAME www.example.com']);
  });

  it('records of one owner are consecutive and nothing repeats', () => {
    const names = records.map((r) => r.name);
    const closed = new Set<string>();
    names.forEach((n, i) => {
      expect(closed.has(n)).toBe(false);
      if (names[i + 1] !== n) closed.add(n);
    });
    expect(new Set(all).size).toBe(all.length);
  });

  it('the tolerate-unready annotation publishes unready endpoints', () => {
    const yaml = FIXTURE.replace('metadata: { name: headless, namespace: default }',
      `metadata: { name: headless, namespace: default, annotations: { ${TOLERATE_UNREADY}: "true" } }`);
    const set = parseManifests(yaml);
    const rs = buildDnsRecords(set.services, set.endpointSlices).records.map(text);
    expect(rs).toContain('headless.default.svc.cluster.local A 10.3.0.103');
  });

  it('IPv6 endpoints get AAAA and a dashed derived name; duplicates across slices collapse', () => {
    const slice = (n: string) => `
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${n}, namespace: ns6, labels: { kubernetes.io/service-name: db } }
addressType: IPv6
ports: [{ name: pg, port: 5432, protocol: TCP }]
endpoints: [{ addresses: ["fd00::5"] }]`;
    const set = parseManifests(`
apiVersion: v1
kind: Service
metadata: { name: db, namespace: ns6 }
spec: { clusterIP: None, ipFamilies: [IPv6], ports: [{ name: pg, port: 5432 }] }
${slice('a')}${slice('b')}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: other, namespace: elsewhere, labels: { kubernetes.io/service-name: db } }
addressType: IPv4
endpoints: [{ addresses: [10.9.9.9] }]`);
    const rs = buildDnsRecords(set.services, set.endpointSlices).records;
    expect(of(rs, 'db.ns6.svc.cluster.local')).toEqual(['db.ns6.svc.cluster.local AAAA fd00::5']);
    expect(of(rs, 'fd00--5.db.ns6.svc.cluster.local')).toEqual(['fd00--5.db.ns6.svc.cluster.local AAAA fd00::5']);
    expect(of(rs, '_pg._tcp.db.ns6.svc.cluster.local')).toEqual(['_pg._tcp.db.ns6.svc.cluster.local SRV 0 100 5432 fd00--5.db.ns6.svc.cluster.local']);
    expect(rs.some((r) => text(r).includes('10.9.9.9'))).toBe(false);
  });

  it('zone, TTL and serial options', () => {
    const set = parseManifests(FIXTURE);
    const rs = buildDnsRecords(set.services, set.endpointSlices, { zone: 'Corp.Example.', ttl: 30, serial: 7 });
    expect(rs.zone).toBe('corp.example');
    expect(of(rs.records, 'kubernetes.default.svc.corp.example')).toEqual(['kubernetes.default.svc.corp.example A 10.3.0.1']);
    expect(rs.records.every((r) => r.ttl === 30)).toBe(true);
    expect(of(rs.records, 'corp.example')[0]).toBe('corp.example SOA ns.dns.corp.example hostmaster.corp.example 7 30');
  });

  it('an ExternalName that is not a DNS name is an issue, not a record', () => {
    const set = parseManifests(`
apiVersion: v1
kind: Service
metadata: { name: bad, namespace: default }
spec: { type: ExternalName, externalName: "a..b" }`);
    const rs = buildDnsRecords(set.services, set.endpointSlices);
    expect(rs.issues).toEqual([{ object: 'Service default/bad', message: 'externalName "a..b" is not a valid DNS name' }]);
    expect(rs.records.some((r) => r.name.startsWith('bad.'))).toBe(false);
  });
});

describe('reverse names and derived hostnames', () => {
  it('in-addr.arpa and ip6.arpa (RFC 3596 §2.5)', () => {
    expect(reverseName('10.3.0.1')).toBe('1.0.3.10.in-addr.arpa');
    expect(reverseName('2001:db8::567:89ab')).toBe('b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa');
    expect(reverseName('nope')).toBeNull();
  });
  it('derived names are the canonical address with dashes', () => {
    expect(derivedHostname('10.3.0.102')).toBe('10-3-0-102');
    expect(derivedHostname('FD00:0::1')).toBe('fd00--1');
    // An address ending in "::" would leave a trailing dash: a 0 closes it, as CoreDNS writes it.
    expect(derivedHostname('fd00:1::')).toBe('fd00-1--0');
    expect(derivedHostname('::')).toBe('--0');
  });
});
