// source.ts — where Services, EndpointSlices and this Node come from. `Source` is what every
// transport (API server, manifest files) offers the proxy; `ObjectMirror` holds what has been
// applied to the change trackers and turns a full list into one diff; `ListWatchReflector` keeps a
// mirror in step with a list + watch API the way client-go's Reflector does
// (staging/src/k8s.io/client-go/tools/cache/reflector.go). Platform neutral: the transport, the
// clock and the random source are injected. Never opens sockets or files, never parses YAML, and
// decides nothing about what gets proxied beyond kube-proxy's informer label selectors.
import { LABEL_HEADLESS, LABEL_SERVICE_PROXY_NAME, sameObject, type ModelOptions } from './model.js';
import { sliceMoved } from './tracker.js';
import { formatIssue, loadObjects, type EndpointSlice, type KubeObject, type Node, type Service } from './objects.js';

/** What a source drives; ProxyState implements it as is. Returns are "a sync is wanted". */
export interface ProxySink {
  onService(previous: Service | null, current: Service | null): boolean;
  onEndpointSlice(slice: EndpointSlice, remove?: boolean): boolean;
  onNode(node: Node | null): boolean;
  markServicesSynced(): void;
  markEndpointSlicesSynced(): void;
}

/**
 * Called once after each applied step (one watch event, one list or relist, one manifest reload),
 * after every change of that step has reached the sink. wantSync is true when the sink asked for
 * a sync or an initial list has just been marked synced.
 */
export type BatchListener = (wantSync: boolean) => void;

export interface Source {
  /** Begins delivering into sink. Throws only for unusable configuration. */
  start(sink: ProxySink, onBatch: BatchListener): void;
  /** Stops all I/O; nothing reaches the sink once the promise resolves. */
  stop(): Promise<void>;
  /** True once the initial Services and EndpointSlices lists have been applied and marked. */
  readonly synced: boolean;
  /** Counters per resource ("services", "endpointslices", "nodes"), for metrics and debugging. */
  stats(): Record<string, Record<string, number>>;
}

export interface SourceOptions extends ModelOptions {
  /** This node: only a Node of this name is applied (kube-proxy's metadata.name field selector). */
  nodeName: string;
  log?: (message: string) => void;
}

export type KindName = KubeObject['kind'];
type ObjectOf<K extends KindName> = Extract<KubeObject, { kind: K }>;

/** The resource name of a kind, as in the API path (and as stats() keys). */
export const RESOURCE_OF: Record<KindName, string> = { Service: 'services', EndpointSlice: 'endpointslices', Node: 'nodes' };

/**
 * The label selector kube-proxy puts on its Service and EndpointSlice informers (cmd/kube-proxy/app/
 * server.go: noProxyName + noHeadlessEndpoints); an alternative proxy selects the objects naming it.
 */
export function labelSelectorFor(opts: ModelOptions): string {
  const proxy = opts.proxyName ? `${LABEL_SERVICE_PROXY_NAME}=${opts.proxyName}` : `!${LABEL_SERVICE_PROXY_NAME}`;
  return `${proxy},!${LABEL_HEADLESS}`;
}

/** labelSelectorFor evaluated client-side: what the API server would have sent us. */
export function selectedByLabels(labels: Record<string, string>, opts: ModelOptions): boolean {
  if (LABEL_HEADLESS in labels) return false;
  const named = labels[LABEL_SERVICE_PROXY_NAME];
  return opts.proxyName ? named === opts.proxyName : named === undefined;
}

/** The field selector of kube-proxy's Node informer (one node: fields.OneTermEqualSelector). */
export function nodeFieldSelector(nodeName: string): string {
  return `metadata.name=${nodeName}`;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const metaOf = (raw: unknown): Record<string, unknown> => (isRecord(raw) && isRecord(raw.metadata) ? raw.metadata : {});

/** The store key of an object: "namespace/name" (namespace defaults as objects.ts does), or a Node's name. */
export function objectKey(kind: KindName, meta: { name: string; namespace: string }): string {
  return kind === 'Node' ? meta.name : `${meta.namespace || 'default'}/${meta.name}`;
}

/** The key of an undecoded object, or null without a usable name (or with a namespace that is not text). */
export function rawObjectKey(kind: KindName, raw: unknown): string | null {
  const m = metaOf(raw);
  if (typeof m.name !== 'string' || m.name === '') return null;
  if (m.namespace !== undefined && typeof m.namespace !== 'string') return null;
  return objectKey(kind, { name: m.name, namespace: m.namespace ?? '' });
}

/** metadata.resourceVersion of an undecoded object, or '' when absent. */
export function rawResourceVersion(raw: unknown): string {
  const rv = metaOf(raw).resourceVersion;
  return typeof rv === 'string' ? rv : '';
}

export type Decoded<K extends KindName> = { ok: true; object: ObjectOf<K> } | { ok: false; error: string };

/** Decodes one API object of an expected kind (typed lists leave `kind` off their items). */
export function decodeObject<K extends KindName>(kind: K, raw: unknown, source?: string): Decoded<K> {
  if (!isRecord(raw)) return { ok: false, error: 'object is not a mapping' };
  if (raw.kind !== undefined && raw.kind !== kind) return { ok: false, error: `expected kind ${kind}, got ${JSON.stringify(raw.kind)}` };
  const set = loadObjects([raw.kind === undefined ? { ...raw, kind } : raw], source);
  const found = [...set.services, ...set.endpointSlices, ...set.nodes][0];
  if (found && found.kind === kind) return { ok: true, object: found as ObjectOf<K> };
  const first = set.issues.find((i) => i.severity === 'error');
  return { ok: false, error: first ? formatIssue(first) : 'object was not loaded' };
}

/**
 * The objects of one kind that have been applied to the sink, keyed like client-go's store. Every
 * method applies its whole effect to the sink before returning and reports whether a sync is wanted.
 */
export class ObjectMirror<K extends KindName> {
  private readonly applied = new Map<string, ObjectOf<K>>();
  synced = false;
  readonly counters = { adds: 0, updates: 0, deletes: 0, filtered: 0 };

  constructor(readonly kind: K, private readonly sink: ProxySink, private readonly opts: SourceOptions) {}

  get size(): number { return this.applied.size; }
  get(key: string): ObjectOf<K> | undefined { return this.applied.get(key); }
  keys(): string[] { return [...this.applied.keys()].sort(); }

  /** The informer selectors, applied client-side too (manifests have no server to filter). */
  admits(obj: ObjectOf<K>): boolean {
    if (obj.kind === 'Node') return obj.metadata.name === this.opts.nodeName;
    return selectedByLabels(obj.metadata.labels, this.opts);
  }

  /** ADDED / MODIFIED. An object that left the selectors removes what was applied under its key. */
  put(obj: ObjectOf<K>): boolean {
    const key = objectKey(this.kind, obj.metadata);
    if (!this.admits(obj)) {
      this.counters.filtered++;
      return this.remove(key);
    }
    const prev = this.applied.get(key) ?? null;
    if (prev && sameObject(prev, obj, true)) return false;
    this.applied.set(key, obj);
    if (prev) this.counters.updates++;
    else this.counters.adds++;
    return this.apply(prev, obj);
  }

  /** DELETED. Unknown keys are a no-op. */
  remove(key: string): boolean {
    const prev = this.applied.get(key);
    if (!prev) return false;
    this.applied.delete(key);
    this.counters.deletes++;
    return this.apply(prev, null);
  }

  /**
   * A full list: applies the difference to what is applied, all before returning. Applied objects
   * missing from `objects` are deleted unless their key is in `keep` (an item that failed to decode:
   * what was applied for it stays). Order is by key so equal inputs give equal event sequences.
   */
  replace(objects: Iterable<ObjectOf<K>>, keep: ReadonlySet<string> = new Set()): boolean {
    const next = new Map<string, ObjectOf<K>>();
    for (const o of objects) next.set(objectKey(this.kind, o.metadata), o);
    let want = false;
    for (const key of this.keys()) if (!next.has(key) && !keep.has(key)) want = this.remove(key) || want;
    for (const key of [...next.keys()].sort()) want = this.put(next.get(key)!) || want;
    return want;
  }

  /** The initial list has been applied (OnServiceSynced / OnEndpointSlicesSynced). */
  markSynced(): void {
    if (this.synced) return;
    this.synced = true;
    if (this.kind === 'Service') this.sink.markServicesSynced();
    else if (this.kind === 'EndpointSlice') this.sink.markEndpointSlicesSynced();
  }

  private apply(prev: ObjectOf<K> | null, cur: ObjectOf<K> | null): boolean {
    const p = prev as KubeObject | null;
    const c = cur as KubeObject | null;
    if ((p ?? c)!.kind === 'Service') return this.sink.onService(p as Service | null, c as Service | null);
    if ((p ?? c)!.kind === 'Node') return this.sink.onNode(c as Node | null);
    let want = false;
    // The trackers file slices by family and Service: a slice filed elsewhere now leaves its old place first.
    if (p && (!c || sliceMoved(p as EndpointSlice, c as EndpointSlice))) {
      want = this.sink.onEndpointSlice(p as EndpointSlice, true);
    }
    if (c) want = this.sink.onEndpointSlice(c as EndpointSlice, false) || want;
    return want;
  }
}

// ---- The transport contract -------------------------------------------------------------------

export interface ListResult {
  items: unknown[];
  /** The list's metadata.resourceVersion: where the following watch starts. */
  resourceVersion: string;
}

export interface WatchOptions {
  resourceVersion: string;
  timeoutSeconds: number;
}

/** One resource's list + watch (e.g. GET /api/v1/services and ?watch=true). */
export interface ListWatcher {
  readonly resource: string;
  /** resourceVersion "" = consistent read, "0" = any, else not older than it. Rejects with ApiStatusError on an API error. */
  list(resourceVersion: string, signal: AbortSignal): Promise<ListResult>;
  /**
   * Streams newline-delimited watch events to onLine, one line per call, undecoded. Resolves when
   * the server ends the stream cleanly; rejects on an API error (ApiStatusError, e.g. 410), a
   * connection dropped once the stream had begun (WatchStreamDropped), any other failure or
   * abort. Nothing is delivered after it settles.
   */
  watch(opts: WatchOptions, onLine: (line: string) => void, signal: AbortSignal): Promise<void>;
}

/** An API server error: the HTTP status / metav1.Status code, its reason and message. */
export class ApiStatusError extends Error {
  constructor(readonly code: number, readonly reason: string, message: string) {
    super(message || `HTTP ${code}${reason ? ` ${reason}` : ''}`);
    this.name = 'ApiStatusError';
  }

  /** From a metav1.Status object (as carried by a watch ERROR event or an error response body). */
  static fromStatus(status: unknown, httpCode = 0): ApiStatusError {
    const s = isRecord(status) ? status : {};
    const code = typeof s.code === 'number' ? s.code : httpCode;
    return new ApiStatusError(code, typeof s.reason === 'string' ? s.reason : '', typeof s.message === 'string' ? s.message : '');
  }
}

/**
 * The watch's connection ended without the stream's proper end (a reset, a truncated chunked body)
 * after the server had answered 200. client-go takes that as the stream's end, not as an error
 * (apimachinery streamwatcher.go: an unexpected or probable EOF closes the result channel).
 */
export class WatchStreamDropped extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WatchStreamDropped';
  }
}

/**
 * The resource version is gone from the server's history: relist. reflector.go isExpiredError +
 * isTooLargeResourceVersionError (410 Gone / reason Expired, or a version the server has not reached).
 */
export function isExpiredError(e: unknown): boolean {
  if (!(e instanceof ApiStatusError)) return false;
  if (e.code === 410 || e.reason === 'Expired' || e.reason === 'Gone') return true;
  return /too old resource version|too large resource version/i.test(e.message);
}

// ---- Clock and back-off -----------------------------------------------------------------------

export interface SourceClock {
  now(): number;
  /** Resolves after ms, or at once when signal aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export const realClock: SourceClock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    }),
};

/**
 * client-go's reflector back-off (NewNamedReflector: NewExponentialBackoffManager(800ms, 30s, 2m,
 * 2.0, 1.0)): 800 ms doubling up to a 30 s cap, each delay plus up to 100 % random jitter (so it
 * settles in [30, 60) s), reset after two minutes without a back-off.
 */
export const BACKOFF = { initialMs: 800, capMs: 30_000, resetMs: 120_000, factor: 2, jitter: 1.0 } as const;

/** The delay of back-off step `step` (0-based) for one random draw in [0, 1). */
export function backoffDelay(step: number, random: number): number {
  const base = Math.min(BACKOFF.initialMs * BACKOFF.factor ** Math.min(step, 64), BACKOFF.capMs);
  return Math.round(base * (1 + BACKOFF.jitter * random));
}

/** reflector.go minWatchTimeout: each watch asks for a timeout in [5, 10) minutes to spread load. */
export const MIN_WATCH_TIMEOUT_S = 300;

// ---- The reflector ----------------------------------------------------------------------------

export interface ReflectorOptions {
  onBatch: BatchListener;
  clock?: SourceClock;
  random?: () => number;
  log?: (message: string) => void;
}

/** How a watch ended; 'relist': a line that could not be read (its change would be lost). */
type Outcome = 'closed' | 'failed' | 'expired' | 'relist' | 'stopped';
type LineResult = 'event' | 'garbage' | 'unreadable' | 'expired' | 'error' | 'blank';

export const newReflectorCounters = () => ({
  lists: 0, relists: 0, watches: 0, events: 0, bookmarks: 0, expired: 0, errors: 0, backoffs: 0, drops: 0,
  garbageUnparseable: 0, garbageMalformed: 0, garbageUnknownType: 0, garbageInvalid: 0,
});
export type ReflectorCounters = ReturnType<typeof newReflectorCounters>;

/**
 * ListAndWatch for one resource. Lists (initially at "0", after a watch expiry at the last version,
 * after a list expiry at "" — reflector.go relistResourceVersion), applies the list as one diff,
 * marks the mirror synced after the first, then watches from the list's version. BOOKMARKs move the
 * resume version; a clean end of the stream, or a connection dropped after a watch that lasted a
 * second or brought events, rewatches at once; a 410 relists; a line that is not a watch event
 * (not JSON, no type, an unknown type) ends the watch and relists after the back-off, as
 * client-go's decode error does; anything else backs off and rewatches from the last version.
 * Events whose objects are invalid are counted and skipped.
 */
export class ListWatchReflector {
  /** Where the next watch resumes: the last list, event or bookmark version. */
  resourceVersion = '';
  readonly counters = newReflectorCounters();
  private versionUnavailable = false;
  private needList = true;
  private step = 0;
  private lastBackoffAt = Number.NEGATIVE_INFINITY;
  private stopped = false;
  private abort = new AbortController();
  private running: Promise<void> | null = null;
  private readonly clock: SourceClock;
  private readonly random: () => number;

  constructor(readonly lw: ListWatcher, readonly mirror: ObjectMirror<KindName>, private readonly opts: ReflectorOptions) {
    this.clock = opts.clock ?? realClock;
    this.random = opts.random ?? Math.random;
  }

  start(): void {
    if (!this.running) this.running = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await this.running;
  }

  stats(): Record<string, number> {
    return { ...this.counters, ...this.mirror.counters, objects: this.mirror.size, synced: this.mirror.synced ? 1 : 0 };
  }

  private log(message: string): void {
    this.opts.log?.(`${this.lw.resource}: ${message}`);
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        if (this.needList && !(await this.list())) {
          await this.backoff();
          continue;
        }
        const outcome = await this.watchOnce();
        if (outcome === 'stopped') break;
        if (outcome === 'closed') continue;
        if (outcome === 'expired' || outcome === 'relist') this.needList = true;
        // reflector.go Run: every return of ListAndWatch goes through the back-off manager.
        await this.backoff();
      } catch (e) {
        // Only a throwing sink gets here; relist so the mirror and the sink agree again.
        this.counters.errors++;
        this.log(`unexpected error, relisting: ${(e as Error).message}`);
        this.needList = true;
        await this.backoff();
      }
    }
  }

  private async backoff(): Promise<void> {
    if (this.stopped) return;
    const now = this.clock.now();
    if (now - this.lastBackoffAt > BACKOFF.resetMs) this.step = 0;
    this.lastBackoffAt = now;
    const ms = backoffDelay(this.step++, this.random());
    this.counters.backoffs++;
    await this.clock.sleep(ms, this.abort.signal);
  }

  /** One list (with the 410 fallback to a consistent read); true when it was applied. */
  private async list(): Promise<boolean> {
    const rv = this.versionUnavailable ? '' : this.resourceVersion === '' ? '0' : this.resourceVersion;
    let res: ListResult;
    try {
      try {
        res = await this.lw.list(rv, this.abort.signal);
      } catch (e) {
        if (!isExpiredError(e) || rv === '') throw e;
        // reflector.go: the version to list at is unavailable; a consistent read always makes progress.
        this.counters.expired++;
        this.versionUnavailable = true;
        this.log(`list at resourceVersion ${rv} expired; listing at the latest`);
        res = await this.lw.list('', this.abort.signal);
      }
    } catch (e) {
      if (this.stopped) return false;
      if (isExpiredError(e)) this.versionUnavailable = true;
      this.counters.errors++;
      this.log(`list failed: ${(e as Error).message}`);
      return false;
    }
    if (this.stopped) return false;
    if (!isRecord(res) || !Array.isArray(res.items) || typeof res.resourceVersion !== 'string') {
      this.counters.errors++;
      this.log('list response has no items or resourceVersion');
      return false;
    }
    const kind = this.mirror.kind;
    const objects: KubeObject[] = [];
    const keep = new Set<string>();
    for (const item of res.items) {
      const d = decodeObject(kind, item, this.lw.resource);
      if (d.ok) {
        objects.push(d.object);
        continue;
      }
      this.counters.garbageInvalid++;
      this.log(`skipping invalid item: ${d.error}`);
      const key = rawObjectKey(kind, item);
      if (key !== null) keep.add(key);
    }
    const first = !this.mirror.synced;
    if (first) this.counters.lists++;
    else this.counters.relists++;
    let want = this.mirror.replace(objects as ObjectOf<KindName>[], keep);
    this.resourceVersion = res.resourceVersion;
    this.versionUnavailable = false;
    this.needList = false;
    if (first) {
      this.mirror.markSynced();
      want = true;
    }
    this.opts.onBatch(want);
    return true;
  }

  private async watchOnce(): Promise<Outcome> {
    if (this.stopped) return 'stopped';
    const ac = new AbortController();
    const stop = (): void => ac.abort();
    this.abort.signal.addEventListener('abort', stop, { once: true });
    const timeoutSeconds = Math.floor(MIN_WATCH_TIMEOUT_S * (1 + this.random()));
    const started = this.clock.now();
    let outcome: Outcome | null = null;
    let events = 0;
    this.counters.watches++;
    const onLine = (line: string): void => {
      if (outcome !== null || this.stopped) return;
      let r: LineResult;
      try {
        r = this.handleLine(line);
      } catch (e) {
        // Only a throwing sink gets here; relist so the mirror and the sink agree again.
        this.counters.errors++;
        this.log(`applying a watch event failed, relisting: ${(e as Error).message}`);
        r = 'expired';
      }
      if (r === 'event') events++;
      else if (r === 'expired' || r === 'error' || r === 'unreadable') {
        outcome = r === 'expired' ? 'expired' : r === 'error' ? 'failed' : 'relist';
        ac.abort();
      }
    };
    // reflector.go handleAnyWatch: "very short watch" — closed within a second having sent nothing.
    const ended = (): Outcome => {
      if (events === 0 && this.clock.now() - started < 1000) {
        this.log('very short watch: closed within a second with no events');
        return 'failed';
      }
      return 'closed';
    };
    try {
      await this.lw.watch({ resourceVersion: this.resourceVersion, timeoutSeconds }, onLine, ac.signal);
      if (this.stopped) return 'stopped';
      if (outcome !== null) return outcome;
      return ended();
    } catch (e) {
      if (this.stopped) return 'stopped';
      if (outcome !== null) return outcome;
      if (e instanceof WatchStreamDropped) {
        this.counters.drops++;
        this.log(`watch stream dropped: ${e.message}`);
        return ended();
      }
      if (isExpiredError(e)) {
        this.counters.expired++;
        this.log(`watch at resourceVersion ${this.resourceVersion} expired: ${(e as Error).message}`);
        return 'expired';
      }
      this.counters.errors++;
      this.log(`watch failed: ${(e as Error).message}`);
      return 'failed';
    } finally {
      this.abort.signal.removeEventListener('abort', stop);
    }
  }

  /**
   * A line that is not a watch event (Unparseable, Malformed, UnknownType) ends the watch: the
   * change it carried would be lost, and only a relist brings it back (client-go's decoder error).
   * An event whose object is Invalid is skipped: its key and version are known, the old object
   * stays (as kube-proxy keeps what it cannot convert).
   */
  private garbage(kind: 'Unparseable' | 'Malformed' | 'UnknownType' | 'Invalid', why: string, unreadable = kind !== 'Invalid'): LineResult {
    this.counters[`garbage${kind}`]++;
    this.log(`${unreadable ? 'unreadable watch line, relisting' : 'skipping watch event'}: ${why}`);
    return unreadable ? 'unreadable' : 'garbage';
  }

  /** One watch line; applies it (and notifies) unless it is garbage. */
  private handleLine(line: string): LineResult {
    const text = line.trim();
    if (text === '') return 'blank';
    let ev: unknown;
    try {
      ev = JSON.parse(text);
    } catch {
      return this.garbage('Unparseable', `not JSON: ${text.slice(0, 80)}`);
    }
    if (!isRecord(ev) || typeof ev.type !== 'string') return this.garbage('Malformed', 'no event type');
    const raw = ev.object;
    const kind = this.mirror.kind;
    switch (ev.type) {
      case 'ADDED':
      case 'MODIFIED': {
        const d = decodeObject(kind, raw, this.lw.resource);
        // The version still moves on: resuming before it would only replay the same bad object.
        const rv = rawResourceVersion(raw);
        if (!d.ok) {
          if (rv !== '') this.resourceVersion = rv;
          return this.garbage('Invalid', d.error);
        }
        const want = this.mirror.put(d.object);
        if (rv !== '') this.resourceVersion = rv;
        this.counters.events++;
        this.opts.onBatch(want);
        return 'event';
      }
      case 'DELETED': {
        const key = rawObjectKey(kind, raw);
        if (key === null) return this.garbage('Invalid', 'DELETED object has no name, or a namespace that is not a string');
        const said = isRecord(raw) ? raw.kind : undefined;
        if (said !== undefined && said !== kind) return this.garbage('Invalid', `DELETED object of kind ${JSON.stringify(said)} in a ${kind} watch`);
        const want = this.mirror.remove(key);
        const rv = rawResourceVersion(raw);
        if (rv !== '') this.resourceVersion = rv;
        this.counters.events++;
        this.opts.onBatch(want);
        return 'event';
      }
      case 'BOOKMARK': {
        const rv = rawResourceVersion(raw);
        // Nothing is lost by skipping it: it carries no change.
        if (rv === '') return this.garbage('Malformed', 'BOOKMARK without resourceVersion', false);
        this.resourceVersion = rv;
        this.counters.bookmarks++;
        return 'event';
      }
      case 'ERROR': {
        const err = ApiStatusError.fromStatus(raw);
        if (isExpiredError(err)) {
          this.counters.expired++;
          this.log(`watch expired: ${err.message}`);
          return 'expired';
        }
        this.counters.errors++;
        this.log(`watch error event: ${err.message}`);
        return 'error';
      }
      default:
        return this.garbage('UnknownType', `unknown event type ${JSON.stringify(ev.type).slice(0, 40)}`);
    }
  }
}

// ---- A Source over list + watch transports ----------------------------------------------------

export interface ListWatchSourceOptions extends SourceOptions {
  services: ListWatcher;
  endpointSlices: ListWatcher;
  /** This node's Node (topology labels); omit to run without. */
  node?: ListWatcher | null;
  clock?: SourceClock;
  random?: () => number;
}

/** One reflector per resource, all feeding one sink. */
export class ListWatchSource implements Source {
  private reflectors: ListWatchReflector[] = [];

  constructor(private readonly opts: ListWatchSourceOptions) {}

  start(sink: ProxySink, onBatch: BatchListener): void {
    if (this.reflectors.length > 0) throw new Error('source already started');
    const o = this.opts;
    const make = (kind: KindName, lw: ListWatcher): ListWatchReflector =>
      new ListWatchReflector(lw, new ObjectMirror(kind, sink, o), { onBatch, clock: o.clock, random: o.random, log: o.log });
    this.reflectors = [make('Service', o.services), make('EndpointSlice', o.endpointSlices)];
    if (o.node) this.reflectors.push(make('Node', o.node));
    for (const r of this.reflectors) r.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.reflectors.map((r) => r.stop()));
  }

  get synced(): boolean {
    const [s, e] = this.reflectors;
    return !!s && !!e && s.mirror.synced && e.mirror.synced;
  }

  /** The reflector of one kind, once started (for tests and debug endpoints). */
  reflector(kind: KindName): ListWatchReflector | undefined {
    return this.reflectors.find((r) => r.mirror.kind === kind);
  }

  stats(): Record<string, Record<string, number>> {
    return Object.fromEntries(this.reflectors.map((r) => [RESOURCE_OF[r.mirror.kind], r.stats()]));
  }
}
