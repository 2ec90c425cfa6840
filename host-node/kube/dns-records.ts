// dns-records.ts — the cluster DNS records the Kubernetes DNS-Based Service Discovery specification
// (kubernetes/dns docs/specification.md, schema 1.1.0) requires, derived from Services and
// EndpointSlices: A/AAAA for ClusterIPs, SRV for named ports, headless A/AAAA/SRV per ready
// endpoint and per endpoint hostname, PTR for ClusterIPs and headless endpoints (in-addr.arpa and
// nibble ip6.arpa), CNAME for ExternalName, the dns-version TXT, and the zone apex SOA and NS.
// Pure and platform-neutral: never touches the core (host-node/dns/table.ts encodes and loads) and
// never answers queries.
import { LABEL_SERVICE_NAME, type EndpointSlice, type Endpoint, type Service } from './objects.js';
import { formatIP, parseIP } from './ip.js';

export const DNS_SCHEMA_VERSION = '1.1.0';
export const DEFAULT_ZONE = 'cluster.local';
export const DEFAULT_TTL = 5;
// The spec predates EndpointSlice: its "ready" includes endpoints of Services carrying this annotation.
export const TOLERATE_UNREADY = 'service.alpha.kubernetes.io/tolerate-unready-endpoints';

export type DnsRecord =
  | { name: string; type: 'A' | 'AAAA'; ttl: number; address: string }
  | { name: string; type: 'CNAME' | 'PTR' | 'NS'; ttl: number; target: string }
  | { name: string; type: 'SRV'; ttl: number; priority: number; weight: number; port: number; target: string }
  | { name: string; type: 'TXT'; ttl: number; texts: string[] }
  | {
      name: string; type: 'SOA'; ttl: number; mname: string; rname: string;
      serial: number; refresh: number; retry: number; expire: number; minimum: number;
    };

export interface DnsIssue { object: string; message: string }

export interface DnsOptions {
  /** Cluster domain, default cluster.local. */
  zone?: string;
  /** TTL of every record, default 5 s. */
  ttl?: number;
  /** SOA serial, default 1; bump it when the records change. */
  serial?: number;
}

export interface DnsRecordSet {
  zone: string;
  records: DnsRecord[];
  issues: DnsIssue[];
}

type SliceEndpoint = Endpoint;

/** A–Z as a–z and nothing else: DNS names compare case-insensitively in ASCII only (RFC 4343), as the core compares them. */
export function asciiLower(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

/** Lowercase (ASCII), no trailing dot. */
export function normalizeName(s: string): string {
  return asciiLower(s.replace(/\.$/, ''));
}

/** Whether `s` (no trailing dot) fits DNS: labels 1–63 octets, at most 253 characters. */
export function validName(s: string): boolean {
  if (s.length === 0 || s.length > 253) return false;
  return s.split('.').every((l) => l.length >= 1 && l.length <= 63 && /^[\x21-\x7e]+$/.test(l));
}

/** The reverse-lookup name of an address: d.c.b.a.in-addr.arpa or 32 nibbles + ip6.arpa (RFC 3596 §2.5). */
export function reverseName(address: string): string | null {
  const ip = parseIP(address);
  if (!ip) return null;
  if (ip.family === 4) return `${[...ip.bytes].reverse().join('.')}.in-addr.arpa`;
  const nibbles: string[] = [];
  for (let i = 15; i >= 0; i--) {
    const b = ip.bytes[i]!;
    nibbles.push((b & 0xf).toString(16), (b >> 4).toString(16));
  }
  return `${nibbles.join('.')}.ip6.arpa`;
}

/**
 * The spec leaves an endpoint without `hostname` a "unique, system-assigned identifier"; we use
 * the address with its separators turned into dashes (10-3-0-1, fd00--1), as CoreDNS does, so the
 * name is stable for as long as the address is. An IPv6 address ending in "::" gets a closing 0
 * (fd00-1--0), as CoreDNS's endpointHostname adds one: a name never ends in a dash.
 */
export function derivedHostname(address: string): string {
  const ip = parseIP(address);
  const text = ip ? formatIP(ip) : address;
  const name = text.replace(/[.:]/g, '-');
  return name.endsWith('-') ? `${name}0` : name;
}

function isReady(e: Endpoint, tolerateUnready: boolean): boolean {
  // discovery.k8s.io/v1: a nil `ready` means ready.
  return tolerateUnready || e.conditions.ready !== false;
}

/** The zone apex SOA and NS and the schema's dns-version TXT. */
export function apexRecords(opts: DnsOptions = {}): DnsRecord[] {
  const zone = normalizeName(opts.zone ?? DEFAULT_ZONE);
  const ttl = opts.ttl ?? DEFAULT_TTL;
  const ns = `ns.dns.${zone}`;
  return [
    {
      name: zone, type: 'SOA', ttl, mname: ns, rname: `hostmaster.${zone}`, serial: opts.serial ?? 1,
      // CoreDNS's kubernetes plugin defaults; MINIMUM is the negative-caching TTL (RFC 2308 §4).
      refresh: 7200, retry: 1800, expire: 86400, minimum: ttl,
    },
    { name: zone, type: 'NS', ttl, target: ns },
    { name: `dns-version.${zone}`, type: 'TXT', ttl, texts: [DNS_SCHEMA_VERSION] },
  ];
}

/** The EndpointSlices of each Service, by "namespace/name". */
export function slicesByService(slices: EndpointSlice[]): Map<string, EndpointSlice[]> {
  const slicesOf = new Map<string, EndpointSlice[]>();
  for (const s of slices) {
    const svc = s.metadata.labels[LABEL_SERVICE_NAME];
    if (!svc) continue;
    const key = `${s.metadata.namespace}/${svc}`;
    (slicesOf.get(key) ?? slicesOf.set(key, []).get(key)!).push(s);
  }
  return slicesOf;
}

/** The records of one Service (ungrouped, possibly with duplicates), given its EndpointSlices. */
export function serviceRecords(svc: Service, slices: EndpointSlice[], opts: DnsOptions = {}): { records: DnsRecord[]; issues: DnsIssue[] } {
  const zone = normalizeName(opts.zone ?? DEFAULT_ZONE);
  const ttl = opts.ttl ?? DEFAULT_TTL;
  const out: DnsRecord[] = [];
  const issues: DnsIssue[] = [];
  const id = `Service ${svc.metadata.namespace}/${svc.metadata.name}`;
  const base = normalizeName(`${svc.metadata.name}.${svc.metadata.namespace}.svc.${zone}`);
  if (!validName(base)) return { records: out, issues: [{ object: id, message: `name ${base} is not a valid DNS name` }] };
  if (svc.spec.type === 'ExternalName') {
    const target = normalizeName(svc.spec.externalName);
    if (!validName(target)) return { records: out, issues: [{ object: id, message: `externalName ${JSON.stringify(svc.spec.externalName)} is not a valid DNS name` }] };
    out.push({ name: base, type: 'CNAME', ttl, target });
    return { records: out, issues };
  }
  const named = svc.spec.ports.filter((p) => p.name !== '');
  const headless = svc.spec.clusterIP === 'None';
  if (!headless) {
    const ips = svc.spec.clusterIPs.length > 0 ? svc.spec.clusterIPs : [svc.spec.clusterIP];
    for (const a of ips) {
      const ip = parseIP(a);
      if (!ip) continue;
      const address = formatIP(ip);
      out.push({ name: base, type: ip.family === 4 ? 'A' : 'AAAA', ttl, address });
      out.push({ name: reverseName(address)!, type: 'PTR', ttl, target: base });
    }
    for (const p of named) {
      out.push({ name: `_${p.name}._${p.protocol.toLowerCase()}.${base}`.toLowerCase(), type: 'SRV', ttl, priority: 0, weight: 100, port: p.port, target: base });
    }
    return { records: out, issues };
  }
  // Headless: one record set per ready endpoint address.
  const tolerate = svc.metadata.annotations[TOLERATE_UNREADY] === 'true';
  const seen = new Set<string>();
  for (const slice of slices) {
    if (slice.addressType === 'FQDN') continue;
    for (const e of slice.endpoints as SliceEndpoint[]) {
      if (!isReady(e, tolerate)) continue;
      for (const a of e.addresses) {
        const ip = parseIP(a);
        if (!ip) continue;
        const address = formatIP(ip);
        const host = normalizeName(e.hostname || derivedHostname(address));
        const hostName = `${host}.${base}`;
        if (seen.has(hostName + ' ' + address)) continue;
        seen.add(hostName + ' ' + address);
        if (!validName(hostName)) { issues.push({ object: id, message: `endpoint name ${hostName} is not a valid DNS name` }); continue; }
        const type = ip.family === 4 ? 'A' : 'AAAA';
        out.push({ name: base, type, ttl, address });
        out.push({ name: hostName, type, ttl, address });
        out.push({ name: reverseName(address)!, type: 'PTR', ttl, target: hostName });
        for (const p of named) {
          // Traffic to a headless Service goes straight to the pod: the SRV carries the endpoint's
          // port of the same name when the slice has one.
          const ep = slice.ports.find((sp) => sp.name === p.name && sp.port !== null);
          out.push({ name: `_${p.name}._${p.protocol.toLowerCase()}.${base}`.toLowerCase(), type: 'SRV', ttl, priority: 0, weight: 100, port: ep?.port ?? p.port, target: hostName });
        }
      }
    }
  }
  return { records: out, issues };
}

/** The records for these Services and EndpointSlices, grouped by owner name, duplicates removed. */
export function buildDnsRecords(services: Service[], slices: EndpointSlice[], opts: DnsOptions = {}): DnsRecordSet {
  const zone = normalizeName(opts.zone ?? DEFAULT_ZONE);
  const out: DnsRecord[] = apexRecords(opts);
  const issues: DnsIssue[] = [];
  const slicesOf = slicesByService(slices);
  for (const svc of services) {
    const r = serviceRecords(svc, slicesOf.get(`${svc.metadata.namespace}/${svc.metadata.name}`) ?? [], opts);
    for (const rec of r.records) out.push(rec);
    for (const i of r.issues) issues.push(i);
  }
  return { zone, records: groupByName(dedupe(out)), issues };
}

function recordKey(r: DnsRecord): string {
  return JSON.stringify(r);
}

function dedupe(rs: DnsRecord[]): DnsRecord[] {
  const seen = new Set<string>();
  return rs.filter((r) => { const k = recordKey(r); if (seen.has(k)) return false; seen.add(k); return true; });
}

/** Stable grouping: records of one owner become consecutive, in first-seen order. */
export function groupByName(rs: DnsRecord[]): DnsRecord[] {
  const groups = new Map<string, DnsRecord[]>();
  for (const r of rs) {
    const k = asciiLower(r.name);
    (groups.get(k) ?? groups.set(k, []).get(k)!).push(r);
  }
  return [...groups.values()].flat();
}
