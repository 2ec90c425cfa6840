// records-from.ts — turns what a caller has (manifests text, decoded Kubernetes objects, or records
// already built) into the cluster DNS record set, with every manifest and record issue named, and
// loads it into a core: whole (loadDnsFrom) or per Service, re-deriving only what changed since the
// last load (DnsLoader, what Dataplane.dns() uses). Never reads files or sockets (the CLI reads) and
// never answers queries (the core does).
import { parseManifests, loadObjects, formatIssue, type ManifestSet } from '../kube/objects.js';
import { buildDnsRecords, type DnsOptions, type DnsRecord, type DnsRecordSet } from '../kube/dns-records.js';
import { loadDnsTable, type DnsCore } from './table.js';
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

/** The records for `input`, with issues as text. Manifest sets from several files may be merged first. */
export function dnsRecordsFrom(input: DnsInput | ManifestSet, opts: DnsOptions = {}, source?: string): DnsRecordSet & { messages: string[] } {
  if (isRecordSet(input as DnsInput)) {
    const rs = input as { zone: string; records: DnsRecord[] };
    return { zone: rs.zone, records: rs.records, issues: [], messages: [] };
  }
  const set: ManifestSet = typeof input === 'string' ? parseManifests(input, source)
    : Array.isArray(input) ? loadObjects(input, source) : (input as ManifestSet);
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
    const set: ManifestSet = typeof input === 'string' ? parseManifests(input, source)
      : Array.isArray(input) ? loadObjects(input, source) : (input as ManifestSet);
    const key = JSON.stringify([opts.zone ?? null, opts.ttl ?? null]);
    if (this.table?.key !== key) this.table = { inc: new IncrementalDnsTable(this.core, opts), key };
    const r = this.table.inc.sync(set.services, set.endpointSlices);
    const issues = [...set.issues.filter((i) => i.severity === 'error').map(formatIssue), ...r.issues];
    return { zone: r.zone, records: r.records, issues, changed: r.changed };
  }
}
