// records-from.ts — turns what a caller has (manifests text, decoded Kubernetes objects, or records
// already built) into the cluster DNS record set, with every manifest and record issue named, and
// loads it into a core: whole (loadDnsFrom) or per Service, re-deriving only what changed since the
// last load (DnsLoader, what Dataplane.dns() uses). Never reads files or sockets (the CLI reads) and
// never answers queries (the core does).
import { parseManifests, loadObjects, decodedSet, formatIssue, type ManifestSet } from '../kube/objects.js';
import { buildDnsRecords, type DnsOptions, type DnsRecord, type DnsRecordSet } from '../kube/dns-records.js';
import { DnsEncodeError, loadDnsTable, type DnsCore } from './table.js';
import { IncrementalDnsTable } from './incremental.js';

/** Manifests text, decoded objects, or a record set (zone + records). */
export type DnsInput = string | unknown[] | { zone: string; records: DnsRecord[] };

export interface DnsLoadResult {
  zone: string;
  records: number;
  /** Manifest errors (file:line: object: field: message) and record issues; what remained was loaded. */
  issues: string[];
}

function isRecordSet(v: DnsInput): v is { zone: string; records: DnsRecord[] } {
  return typeof v === 'object' && !Array.isArray(v) && v !== null && typeof (v as { zone?: unknown }).zone === 'string';
}

// The fields each record type must carry: text, or whole numbers up to the bound (u16 or u32).
const U16 = 0xffff, U32 = 0xffffffff;
const RECORD_FIELDS: Record<DnsRecord['type'], Record<string, 'text' | 'texts' | number>> = {
  A: { address: 'text' }, AAAA: { address: 'text' },
  CNAME: { target: 'text' }, PTR: { target: 'text' }, NS: { target: 'text' },
  SRV: { priority: U16, weight: U16, port: U16, target: 'text' },
  TXT: { texts: 'texts' },
  SOA: { mname: 'text', rname: 'text', serial: U32, refresh: U32, retry: U32, expire: U32, minimum: U32 },
};

/**
 * A record set handed in as built (plain JavaScript may hand anything): every record an object of
 * a known type with the fields that type needs, so encoding meets no missing field. Throws a
 * DnsEncodeError naming the record and field; nothing is loaded then.
 */
function checkRecordSet(rs: { zone: string; records: unknown }): void {
  if (!Array.isArray(rs.records)) throw new DnsEncodeError('records: must be a list');
  const wholeUpTo = (v: unknown, max: number): boolean => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
  // Indexed, not forEach: a hole in a list built in JavaScript is a missing record, not skipped.
  const list: unknown[] = rs.records;
  for (let i = 0; i < list.length; i++) {
    const r = list[i];
    const at = `records[${i}]`;
    if (r === null || typeof r !== 'object') throw new DnsEncodeError(`${at}: must be an object`);
    const o = r as Record<string, unknown>;
    if (typeof o.name !== 'string') throw new DnsEncodeError(`${at}.name: must be text`);
    const fields = typeof o.type === 'string' && Object.hasOwn(RECORD_FIELDS, o.type) ? RECORD_FIELDS[o.type as DnsRecord['type']] : null;
    if (!fields) throw new DnsEncodeError(`${at}.type: must be one of ${Object.keys(RECORD_FIELDS).join(', ')}`);
    if (!wholeUpTo(o.ttl, U32)) throw new DnsEncodeError(`${at}.ttl: must be a whole number of seconds`);
    for (const [field, kind] of Object.entries(fields)) {
      const v = o[field];
      const ok = kind === 'text' ? typeof v === 'string'
        : kind === 'texts' ? Array.isArray(v) && !v.includes(undefined) && v.every((t) => typeof t === 'string') : wholeUpTo(v, kind);
      if (!ok) throw new DnsEncodeError(`${at}.${field}: must be ${kind === 'text' ? 'text' : kind === 'texts' ? 'a list of texts' : `a whole number up to ${kind}`}`);
    }
  }
}

/** Manifests text, objects in API form, a record set or a decoded manifest set; anything else is refused. */
function manifestSetOf(input: unknown, source?: string): ManifestSet {
  if (typeof input === 'string') return parseManifests(input, source);
  if (Array.isArray(input)) return loadObjects(input, source);
  const set = decodedSet(input);
  if (set) return set;
  throw new DnsEncodeError('dns input: expected manifests text, a list of objects, or { zone, records }');
}

/** The records for `input`, with issues as text. Manifest sets from several files may be merged first. */
export function dnsRecordsFrom(input: DnsInput | ManifestSet, opts: DnsOptions = {}, source?: string): DnsRecordSet & { messages: string[] } {
  if (isRecordSet(input as DnsInput)) {
    const rs = input as { zone: string; records: DnsRecord[] };
    checkRecordSet(rs);
    return { zone: rs.zone, records: rs.records, issues: [], messages: [] };
  }
  const set = manifestSetOf(input, source);
  const built = buildDnsRecords(set.services, set.endpointSlices, opts);
  const messages = [
    ...set.issues.filter((i) => i.severity === 'error').map(formatIssue),
    ...built.issues.map((i) => `dns: ${i.object}: ${i.message}`),
  ];
  return { ...built, messages };
}

/** Builds and loads the records into `core`; throws DnsEncodeError/DnsLoadError (old table stays). */
export function loadDnsFrom(core: DnsCore, input: DnsInput | ManifestSet, opts: DnsOptions = {}, source?: string): DnsLoadResult {
  const rs = dnsRecordsFrom(input, opts, source);
  loadDnsTable(core, rs.zone, rs.records);
  return { zone: rs.zone, records: rs.records.length, issues: rs.messages };
}

/**
 * Loads a core's records again and again: manifests and objects through an IncrementalDnsTable (only
 * Services that changed since the last load are derived again; the SOA serial counts the loads),
 * record sets whole. A new zone or TTL starts a fresh cache.
 */
export class DnsLoader {
  private table?: { inc: IncrementalDnsTable; key: string };

  constructor(private readonly core: DnsCore) {}

  /** Throws DnsLoadError when the core refuses the table (the previous one stays). */
  load(input: DnsInput | ManifestSet, opts: DnsOptions = {}, source?: string): DnsLoadResult & { changed?: string[] } {
    if (isRecordSet(input as DnsInput)) return loadDnsFrom(this.core, input, opts, source);
    const set = manifestSetOf(input, source);
    const key = JSON.stringify([opts.zone ?? null, opts.ttl ?? null]);
    if (this.table?.key !== key) this.table = { inc: new IncrementalDnsTable(this.core, opts), key };
    const r = this.table.inc.sync(set.services, set.endpointSlices);
    const issues = [...set.issues.filter((i) => i.severity === 'error').map(formatIssue), ...r.issues];
    return { zone: r.zone, records: r.records, issues, changed: r.changed };
  }
}
