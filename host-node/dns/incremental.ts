// dns/incremental.ts — the cluster DNS table kept per Service: each Service's records are derived
// (kube/dns-records.ts serviceRecords) and encoded once, and again only when the Service or one of
// its EndpointSlices changes; a sync then assembles the blob from the cached blocks straight into
// the core's staging buffer and swaps it in with one dnsLoad (the core still validates and indexes
// the whole table: packets never see a half-updated one). On any error the core and the cache keep
// the previous table. Platform-neutral; never reads files or answers queries.
import {
  apexRecords, serviceRecords, slicesByService, normalizeName, DEFAULT_ZONE,
  type DnsOptions, type DnsIssue,
} from '../kube/dns-records.js';
import type { Service, EndpointSlice } from '../kube/objects.js';
import { encodeRecord, blobHeader, DnsLoadError, DnsEncodeError, type DnsCore } from './table.js';

interface Entry {
  svc: Service;
  slices: EndpointSlice[];
  /** The Service and its slices as JSON: equal text, equal records. */
  fingerprint: string;
  /**
   * The records owned by names under the Service's own name (its A/AAAA, SRV, endpoint names):
   * no other Service can own those, so they are encoded once, grouped, as one block.
   */
  own: Uint8Array;
  ownCount: number;
  /** The rest (PTR under the reverse trees): two Services may share those, so they are merged per load. */
  shared: Array<{ owner: string; bytes: Uint8Array }>;
  issues: DnsIssue[];
}

export interface DnsSyncResult {
  zone: string;
  /** Records loaded (apex included, duplicates merged). */
  records: number;
  /** Size of the blob loaded. */
  bytes: number;
  /** "namespace/name" of every Service whose records were derived again (new or changed). */
  changed: string[];
  /** Services whose records left the table. */
  removed: string[];
  /** Record issues of every Service in the table ("dns: Service ns/name: message"). */
  issues: string[];
}

const key = (o: { metadata: { namespace: string; name: string } }) => `${o.metadata.namespace}/${o.metadata.name}`;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Adds a record to its owner's group unless an identical one is there. */
function addTo(groups: Map<string, Uint8Array[]>, owner: string, bytes: Uint8Array): void {
  const g = groups.get(owner);
  if (!g) groups.set(owner, [bytes]);
  else if (!g.some((b) => sameBytes(b, bytes))) g.push(bytes);
}

/** The groups' records back to back, and how many. */
function concat(groups: Map<string, Uint8Array[]>): [Uint8Array, number] {
  let n = 0;
  let len = 0;
  for (const g of groups.values()) for (const b of g) { n++; len += b.length; }
  const out = new Uint8Array(len);
  let at = 0;
  for (const g of groups.values()) for (const b of g) { out.set(b, at); at += b.length; }
  return [out, n];
}

export class IncrementalDnsTable {
  private entries = new Map<string, Entry>();
  private serial = 0;
  readonly zone: string;

  /** `opts.serial` is ignored: the SOA serial counts the loads. */
  constructor(private readonly core: DnsCore, private readonly opts: DnsOptions = {}) {
    this.zone = normalizeName(opts.zone ?? DEFAULT_ZONE);
  }

  /** Services in the table. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Makes the core's table hold exactly the records of `services` (with their EndpointSlices from
   * `slices`); only new or changed Services are derived and encoded again. Throws DnsLoadError when
   * the core refuses the table (then nothing changed).
   */
  sync(services: Service[], slices: EndpointSlice[]): DnsSyncResult {
    const slicesOf = slicesByService(slices);
    const next = new Map<string, Entry>();
    const changed: string[] = [];
    for (const svc of services) {
      const k = key(svc);
      const [entry, derived] = this.entry(k, svc, slicesOf.get(k) ?? []);
      if (derived) changed.push(k);
      next.set(k, entry);
    }
    const removed = [...this.entries.keys()].filter((k) => !next.has(k));
    return this.commit(next, changed, removed);
  }

  /** One Service added, changed (`svc` with all its EndpointSlices) or deleted (`svc` null). */
  update(namespacedName: string, svc: Service | null, slices: EndpointSlice[] = []): DnsSyncResult {
    const next = new Map(this.entries);
    if (svc === null) {
      const had = next.delete(namespacedName);
      return this.commit(next, [], had ? [namespacedName] : []);
    }
    const [entry, derived] = this.entry(namespacedName, svc, slices);
    next.set(namespacedName, entry);
    return this.commit(next, derived ? [namespacedName] : [], []);
  }

  /** The cached entry when the Service and its slices are unchanged, else a freshly derived one (true). */
  private entry(k: string, svc: Service, slices: EndpointSlice[]): [Entry, boolean] {
    const old = this.entries.get(k);
    if (old && old.svc === svc && old.slices.length === slices.length && old.slices.every((s, i) => s === slices[i])) return [old, false];
    const fingerprint = JSON.stringify([svc, slices]);
    if (old && old.fingerprint === fingerprint) return [{ ...old, svc, slices }, false];
    const derived = serviceRecords(svc, slices, this.opts);
    const issues = [...derived.issues];
    const base = normalizeName(`${svc.metadata.name}.${svc.metadata.namespace}.svc.${this.zone}`);
    const own = new Map<string, Uint8Array[]>();
    const shared: Entry['shared'] = [];
    try {
      for (const r of derived.records) {
        const owner = normalizeName(r.name);
        const bytes = encodeRecord(r);
        if (owner === base || owner.endsWith(`.${base}`)) addTo(own, owner, bytes);
        else shared.push({ owner, bytes });
      }
    } catch (e) {
      if (!(e instanceof DnsEncodeError)) throw e;
      // Like an invalid object: the Service is left out and named; the rest is served.
      issues.push({ object: `Service ${k}`, message: e.message });
      own.clear();
      shared.length = 0;
    }
    const [block, ownCount] = concat(own);
    return [{ svc, slices, fingerprint, own: block, ownCount, shared, issues }, true];
  }

  /** Assembles the blob in the core's staging buffer and loads it; adopts `next` only on success. */
  private commit(next: Map<string, Entry>, changed: string[], removed: string[]): DnsSyncResult {
    const serial = this.serial + 1;
    // Records of one owner must be consecutive: the shared ones are grouped here, identical ones
    // merged (two Services can name one address, e.g. the same pod behind two headless Services).
    const groups = new Map<string, Uint8Array[]>();
    for (const r of apexRecords({ ...this.opts, serial })) addTo(groups, normalizeName(r.name), encodeRecord(r));
    let count = 0;
    let total = 0;
    for (const e of next.values()) {
      count += e.ownCount;
      total += e.own.length;
      for (const r of e.shared) addTo(groups, r.owner, r.bytes);
    }
    for (const g of groups.values()) for (const b of g) { count++; total += b.length; }
    const head = blobHeader(this.zone, count);
    total += head.length;
    const ptr = this.core.dnsBuffer(total);
    const mem = new Uint8Array(this.core.memory.buffer);   // after dnsBuffer: it may grow memory
    mem.set(head, ptr);
    let at = ptr + head.length;
    for (const e of next.values()) { mem.set(e.own, at); at += e.own.length; }
    for (const g of groups.values()) for (const b of g) { mem.set(b, at); at += b.length; }
    const rc = this.core.dnsLoad(total);
    if (rc < 0) throw new DnsLoadError(rc);
    this.entries = next;
    this.serial = serial;
    const issues: string[] = [];
    for (const e of next.values()) for (const i of e.issues) issues.push(`dns: ${i.object}: ${i.message}`);
    return { zone: this.zone, records: count, bytes: total, changed, removed, issues };
  }
}
