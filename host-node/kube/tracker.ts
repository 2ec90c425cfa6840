// tracker.ts — change trackers between syncs, one pair per IP family, as kube-proxy keeps them
// (pkg/proxy/servicechangetracker.go, endpointschangetracker.go + endpointslicecache.go). For each
// Service (namespace/name) they remember the state before the first unsynced change and the latest
// state, so a burst of events coalesces, and add → update → delete nets out to nothing. take()
// hands the net changes to the model and forgets them. Never renders and never reads a clock.
import type { EndpointSlice, Service } from './objects.js';
import type { Family } from './ip.js';
import {
  deepEqual,
  sameObject,
  namespacedName,
  endpointsFromSlices,
  familyName,
  outOfScope,
  proxiedClusterIP,
  serviceToServicePorts,
  sliceServiceName,
  type EndpointInfo,
  type ModelOptions,
  type ProxyModel,
  type ServicePortInfo,
} from './model.js';

export interface ServiceChange {
  previous: Map<string, ServicePortInfo> | null;
  current: Map<string, ServicePortInfo> | null;
}

export interface EndpointsChange {
  previous: Map<string, EndpointInfo[]>;
  current: Map<string, EndpointInfo[]>;
}

export interface TakenChanges<C> {
  /** Services ("ns/name") whose state changed since the last take(). */
  services: Set<string>;
  /** Service ports ("ns/name:port", ServicePortName.String()) that appeared, changed or went away. */
  servicePorts: Set<string>;
  /** Every change by Service (built whole when first read). */
  changes: Map<string, C>;
  /**
   * Each change in the order they came, built one at a time and dropped after `fn` (a full sync
   * of 20,000 Services never holds 20,000 of them at once).
   */
  forEach(fn: (change: C, namespacedName: string) => void): void;
  /**
   * Applies every change to `model` (what forEach with the model's apply method does), a Service
   * new since the last sync straight into the model's maps.
   */
  applyTo(model: ProxyModel): void;
}

/** ServicePortName.String() of a service port id ("ns/name:port/TCP" → "ns/name:port", "ns/name:/TCP" → "ns/name"). */
function servicePortNameOfId(id: string): string {
  const s = id.slice(0, id.lastIndexOf('/'));
  return s.endsWith(':') ? s.slice(0, -1) : s;
}

/**
 * The changes of one take(), made by `each` when asked for; the name sets and the whole map are
 * built when first read (a full sync renders everything and never asks which Services changed).
 */
function taken<C>(
  keys: () => Iterable<string>,
  each: (fn: (change: C, nn: string) => void) => void,
  portNames: (change: C, add: (name: string) => void) => void,
  applyTo: (model: ProxyModel) => void,
): TakenChanges<C> {
  let services: Set<string> | null = null;
  let servicePorts: Set<string> | null = null;
  let changes: Map<string, C> | null = null;
  const forEach = (fn: (change: C, nn: string) => void): void => { if (changes) changes.forEach(fn); else each(fn); };
  return {
    get services() { return (services ??= new Set(keys())); },
    get servicePorts() {
      if (!servicePorts) {
        const set = (servicePorts = new Set<string>());
        const add = (name: string) => set.add(name);
        forEach((c) => portNames(c, add));
      }
      return servicePorts;
    },
    get changes() {
      if (!changes) {
        const m = new Map<string, C>();
        each((c, nn) => m.set(nn, c));
        changes = m;
      }
      return changes;
    },
    forEach,
    applyTo,
  };
}

const sortedKeys = (m: Map<string, unknown>): string[] => [...m.keys()].sort();

/**
 * A pending change, or — for a Service added since the last sync, the usual entry of a full
 * list — the Service itself: its ports are derived when taken, so a full list costs the tracker
 * no object per Service and its port maps are built right before the model takes them.
 */
type Pending = ServiceChange | Service;
const isAdd = (p: Pending): p is Service => (p as Service).kind === 'Service';

/** ServiceChangeTracker. */
export class ServiceChangeTracker {
  private items = new Map<string, Pending>();
  /**
   * A list of Services all added with nothing else pending (addAll), held as given until take()
   * or the next update(): a first full list costs the tracker no map of its own.
   */
  private bulk: ReadonlyMap<string, Service> | null = null;
  /** Set once the initial full list of Services has been delivered (OnServiceSynced). */
  synced = false;

  constructor(readonly family: Family, private readonly opts: ModelOptions = {}) {}

  /**
   * update(null, svc, nn) for every entry of `services` ("namespace/name" → Service, none of them
   * known before). With nothing pending, the map itself is kept until take(): the caller leaves it
   * unchanged until then.
   */
  addAll(services: ReadonlyMap<string, Service>): void {
    if (this.items.size > 0 || this.bulk !== null) services.forEach((svc, nn) => { this.update(null, svc, nn); });
    else if (services.size > 0) this.bulk = services;
  }

  /** The held list as single updates (something else is about to change). */
  private unbulk(): void {
    const bulk = this.bulk;
    this.bulk = null;
    bulk?.forEach((svc, nn) => { this.update(null, svc, nn); });
  }

  /**
   * Records previous → current for one Service (either may be null: add / delete). Returns true
   * when any change is pending, like ServiceChangeTracker.Update. `nn` is the Service's
   * "namespace/name" when the caller has it already.
   */
  update(previous: Service | null, current: Service | null, nn?: string): boolean {
    if (this.bulk !== null) this.unbulk();
    const svc = current ?? previous;
    if (!svc) return false;
    // An add is pending unless this family does not proxy it (null ports both sides); with nothing
    // pending at all, such an add needs no name (a full list hands every Service to both families).
    const proxied = previous !== null || proxiedClusterIP(svc, this.family, this.opts) !== null;
    if (!proxied && this.items.size === 0) return false;
    nn ??= namespacedName(svc.metadata);
    const pending = this.items.get(nn);
    if (pending === undefined && previous === null) {
      if (proxied) this.items.set(nn, svc);
      return this.items.size > 0;
    }
    let change: ServiceChange;
    if (pending === undefined) {
      change = { previous: serviceToServicePorts(previous, this.family, this.opts), current: null };
      this.items.set(nn, change);
    } else if (isAdd(pending)) {
      change = { previous: null, current: null };
      this.items.set(nn, change);
    } else {
      change = pending;
    }
    change.current = serviceToServicePorts(current, this.family, this.opts);
    // Back where it started since the last sync: nothing to do for this Service.
    if (deepEqual(change.previous, change.current)) this.items.delete(nn);
    return this.items.size > 0;
  }

  markSynced(): void { this.synced = true; }

  /** Services with a net pending change, sorted (PendingChanges). */
  pending(): string[] {
    if (this.bulk !== null) this.unbulk();
    return sortedKeys(this.items);
  }

  /** Hands over and clears the pending changes (an added Service's ports are derived when its change is read). */
  take(): TakenChanges<ServiceChange> {
    const bulk = this.bulk;
    if (bulk !== null) {
      this.bulk = null;
      return this.takeAdds(bulk);
    }
    const items = this.items;
    this.items = new Map();
    const changeOf = (p: Pending, nn: string): ServiceChange => (isAdd(p) ? { previous: null, current: serviceToServicePorts(p, this.family, this.opts, nn) } : p);
    return taken(
      () => items.keys(),
      (fn) => items.forEach((p, nn) => fn(changeOf(p, nn), nn)),
      (c, add) => {
        if (c.previous) for (const sp of c.previous.values()) add(sp.name);
        if (c.current) for (const sp of c.current.values()) add(sp.name);
      },
      (model) => items.forEach((p, nn) => {
        if (isAdd(p)) model.addService(p, this.opts, nn);
        else model.applyServiceChange(p.previous, p.current);
      }),
    );
  }

  /** take() of a held list: every Service an add, those this family does not proxy left out. */
  private takeAdds(bulk: ReadonlyMap<string, Service>): TakenChanges<ServiceChange> {
    const each = (fn: (change: ServiceChange, nn: string) => void): void => bulk.forEach((svc, nn) => {
      const current = serviceToServicePorts(svc, this.family, this.opts, nn);
      if (current !== null) fn({ previous: null, current }, nn);
    });
    return taken(
      () => {
        const names: string[] = [];
        bulk.forEach((svc, nn) => { if (proxiedClusterIP(svc, this.family, this.opts) !== null) names.push(nn); });
        return names;
      },
      each,
      (c, add) => { for (const sp of c.current!.values()) add(sp.name); },
      (model) => bulk.forEach((svc, nn) => model.addService(svc, this.opts, nn)),
    );
  }
}

/**
 * Slices by name: one slice as itself (the usual Service has one), more in a Map. A Service
 * without any is null. In a pending set a removal is a null value, always held in a Map.
 */
type Slices<V extends EndpointSlice | null> = EndpointSlice | Map<string, V> | null;

function slicesGet<V extends EndpointSlice | null>(m: Slices<V>, name: string): V | EndpointSlice | undefined {
  if (m === null) return undefined;
  if (m instanceof Map) return m.get(name);
  return m.metadata.name === name ? m : undefined;
}

function slicesHas<V extends EndpointSlice | null>(m: Slices<V>, name: string): boolean {
  return m instanceof Map ? m.has(name) : m !== null && m.metadata.name === name;
}

/** `m` with `name` set to `v` (a slice of that name, or null); may return a new holder. */
function slicesSet<V extends EndpointSlice | null>(m: Slices<V>, name: string, v: V): Slices<V> {
  if (m instanceof Map) return m.set(name, v);
  if (v !== null && (m === null || m.metadata.name === name)) return v;
  const map = new Map<string, V>();
  if (m !== null) map.set(m.metadata.name, m as V);
  return map.set(name, v);
}

function slicesDelete<V extends EndpointSlice | null>(m: Slices<V>, name: string): Slices<V> {
  if (m instanceof Map) {
    m.delete(name);
    return m.size === 0 ? null : m;
  }
  return m !== null && m.metadata.name === name ? null : m;
}

/** A Service's slices at one moment: one slice as itself (never changed), more as a list. */
type SliceSnapshot = EndpointSlice | EndpointSlice[] | null;

function snapshot(m: Slices<EndpointSlice>): SliceSnapshot {
  return m instanceof Map ? [...m.values()] : m;
}

function sameSlice(a: EndpointSlice | null | undefined, b: EndpointSlice | null | undefined): boolean {
  if (!a || !b) return !a && !b;
  return sameObject(a, b, true);
}

/**
 * Whether a slice's new version is filed apart from its old one: another address family (the API
 * server keeps addressType immutable, a manifests file need not) or other labels (the Service it
 * belongs to, kube-proxy's scope labels). Each family's tracker files a slice under its Service, so
 * such an update must take the old version out first, or it stays behind in its old place.
 */
export function sliceMoved(prev: EndpointSlice, cur: EndpointSlice): boolean {
  if (prev.addressType !== cur.addressType) return true;
  const a = prev.metadata.labels, b = cur.metadata.labels;
  if (a === b) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return true;
  for (const k of keys) if (a[k] !== b[k]) return true;
  return false;
}

/** The endpoints of a Service without slices (never written to). */
const NO_ENDPOINTS: Map<string, EndpointInfo[]> = new Map();

/** EndpointsChangeTracker with its EndpointSliceCache. */
export class EndpointsChangeTracker {
  /** Per Service, its slices as last applied. */
  private applied = new Map<string, Slices<EndpointSlice>>();
  /**
   * Per Service with pending slice changes (so a sync costs what changed, not every Service), in
   * the order they came: the slices added or updated, or null for a removal.
   */
  private pendingBy = new Map<string, Slices<EndpointSlice | null>>();
  /**
   * Slices all added with nothing applied or pending (addAll), held as given until take() or the
   * next update(): a first full list costs the tracker no pending map.
   */
  private bulk: ReadonlyMap<string, EndpointSlice> | null = null;
  /** Set once the initial full list of EndpointSlices has been delivered (OnEndpointSlicesSynced). */
  synced = false;

  constructor(readonly family: Family, readonly nodeName: string, private readonly opts: ModelOptions = {}) {}

  /**
   * update(slice, false) for every slice of `slices` (by "namespace/name"). With nothing applied
   * or pending, the map itself is kept until take(): the caller leaves it unchanged until then.
   */
  addAll(slices: ReadonlyMap<string, EndpointSlice>): void {
    if (this.bulk !== null || this.pendingBy.size > 0 || this.applied.size > 0) slices.forEach((slice) => { this.update(slice, false); });
    else if (slices.size > 0) this.bulk = slices;
  }

  /** The held slices as single updates (something else is about to change). */
  private unbulk(): void {
    const bulk = this.bulk;
    this.bulk = null;
    bulk?.forEach((slice) => { this.update(slice, false); });
  }

  /** The Service ("ns/name") of a slice this tracker takes: its family's, in scope, labelled; else null. */
  private serviceOf(slice: EndpointSlice): string | null {
    if (slice.addressType !== familyName(this.family)) return null;
    if (outOfScope(slice.metadata.labels, this.opts)) return null;
    return sliceServiceName(slice);
  }

  /**
   * Records an added/updated slice, or its removal. Returns true when this call changed what is
   * pending. Slices of the other family, FQDN slices, slices without a service-name label and
   * out-of-scope slices are ignored (false).
   */
  update(slice: EndpointSlice, remove: boolean): boolean {
    if (this.bulk !== null) this.unbulk();
    const nn = this.serviceOf(slice);
    if (nn === null) return false;
    const key = slice.metadata.name;
    const next = remove ? null : slice;
    const applied = slicesGet(this.applied.get(nn) ?? null, key);
    const pending = this.pendingBy.get(nn) ?? null;
    if (slicesHas(pending, key)) {
      if (sameSlice(slicesGet(pending, key), next)) return false;
      // Back to what was last applied (e.g. added then deleted before a sync): nothing pending.
      this.setPending(nn, sameSlice(applied, next) ? slicesDelete(pending, key) : slicesSet(pending, key, next));
      return true;
    }
    if (sameSlice(applied, next)) return false;
    this.setPending(nn, slicesSet(pending, key, next));
    return true;
  }

  private setPending(nn: string, pending: Slices<EndpointSlice | null>): void {
    if (pending === null) this.pendingBy.delete(nn);
    else this.pendingBy.set(nn, pending);
  }

  markSynced(): void { this.synced = true; }

  /** Services with pending slice changes, sorted. */
  pending(): string[] {
    if (this.bulk !== null) this.unbulk();
    return sortedKeys(this.pendingBy);
  }

  /**
   * checkoutChanges: applies pending slices and returns each Service's endpoints before/after,
   * computed from the slices as they were at this take() when each change is read.
   */
  take(): TakenChanges<EndpointsChange> {
    // Per Service in the order the changes came (a full list need not be sorted first): its
    // slices before and after, a single slice as itself (no list per Service).
    const names: string[] = [];
    const before: Array<SliceSnapshot> = [];
    const after: Array<SliceSnapshot> = [];
    const bulk = this.bulk;
    if (bulk !== null) {
      // Nothing applied before: each Service's slices are the ones held, in their order. Its first
      // slice is all it has unless another follows (then every Service's is looked up again).
      this.bulk = null;
      let more = false;
      bulk.forEach((slice) => {
        const nn = this.serviceOf(slice);
        if (nn === null) return;
        const had = this.applied.get(nn);
        if (had === undefined) names.push(nn), before.push(null), after.push(slice);
        else more = true;
        this.applied.set(nn, slicesSet(had ?? null, slice.metadata.name, slice));
      });
      if (more) for (let i = 0; i < names.length; i++) after[i] = snapshot(this.applied.get(names[i]!)!);
    }
    this.pendingBy.forEach((pending, nn) => {
      let slices = this.applied.get(nn) ?? null;
      names.push(nn);
      before.push(snapshot(slices));
      if (pending instanceof Map) pending.forEach((s, key) => { slices = s === null ? slicesDelete(slices, key) : slicesSet(slices, key, s); });
      else if (pending !== null) slices = slicesSet(slices, pending.metadata.name, pending);
      if (slices === null) this.applied.delete(nn);
      else this.applied.set(nn, slices);
      after.push(snapshot(slices));
    });
    this.pendingBy.clear();
    const endpointsOf = (nn: string, s: SliceSnapshot) => (s === null ? NO_ENDPOINTS : endpointsFromSlices(nn, s, this.nodeName));
    return taken(
      () => names,
      (fn) => {
        for (let i = 0; i < names.length; i++) {
          const nn = names[i]!;
          fn({ previous: endpointsOf(nn, before[i]!), current: endpointsOf(nn, after[i]!) }, nn);
        }
      },
      (c, add) => {
        for (const id of c.previous.keys()) add(servicePortNameOfId(id));
        for (const id of c.current.keys()) add(servicePortNameOfId(id));
      },
      (model) => {
        for (let i = 0; i < names.length; i++) {
          const nn = names[i]!, was = before[i]!, now = after[i]!;
          // No slices before: the model holds no endpoints of this Service.
          if (was === null) { if (now !== null) model.addEndpoints(nn, now, this.nodeName); }
          else model.replaceEndpoints(nn, was, endpointsOf(nn, now));
        }
      },
    );
  }
}
