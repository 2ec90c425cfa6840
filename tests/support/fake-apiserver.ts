// fake-apiserver.ts — an in-process Kubernetes API server for tests, on 127.0.0.1 with an
// ephemeral port, speaking the list/watch wire protocol of /api/v1/services,
// /apis/discovery.k8s.io/v1/endpointslices and /api/v1/nodes: list responses with
// metadata.resourceVersion (and limit/continue paging), ?watch=true chunked streams of
// newline-delimited {"type","object"} events replayed from a history after the requested version,
// BOOKMARKs, label and metadata.name field selectors (an object leaving the selector is sent as
// DELETED, as the watch cache does), 410 Gone for compacted versions (an HTTP 410 Status, or an
// ERROR event in the stream), dropped connections and raw garbage lines. The test script drives it;
// nothing happens on its own except honouring timeoutSeconds.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type ResourceName = 'services' | 'endpointslices' | 'nodes';

const RESOURCES: Record<string, { name: ResourceName; kind: string; apiVersion: string }> = {
  '/api/v1/services': { name: 'services', kind: 'Service', apiVersion: 'v1' },
  '/apis/discovery.k8s.io/v1/endpointslices': { name: 'endpointslices', kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1' },
  '/api/v1/nodes': { name: 'nodes', kind: 'Node', apiVersion: 'v1' },
};
const byName = (r: ResourceName) => Object.values(RESOURCES).find((x) => x.name === r)!;

type Obj = Record<string, any>;

interface HistoryEntry {
  rv: number;
  resource: ResourceName;
  previous: Obj | null;
  current: Obj | null;
}

export interface RequestRecord {
  resource: ResourceName | null;
  watch: boolean;
  query: Record<string, string>;
  authorization: string | undefined;
  status: number;
}

interface OpenWatch {
  resource: ResourceName;
  res: http.ServerResponse;
  matches: (o: Obj) => boolean;
  timer: ReturnType<typeof setTimeout> | null;
}

/** labelSelector terms: `k`, `!k`, `k=v`, `k==v`, `k!=v` (what kube-proxy sends). */
function labelMatcher(sel: string | undefined): (o: Obj) => boolean {
  if (!sel) return () => true;
  const terms = sel.split(',').map((t) => t.trim()).filter(Boolean).map((t) => {
    let m: RegExpMatchArray | null;
    if ((m = t.match(/^!(.+)$/))) return (l: Obj) => !(m![1]! in l);
    if ((m = t.match(/^(.+?)!=(.*)$/))) return (l: Obj) => l[m![1]!] !== m![2];
    if ((m = t.match(/^(.+?)==?(.*)$/))) return (l: Obj) => l[m![1]!] === m![2];
    return (l: Obj) => t in l;
  });
  return (o) => terms.every((f) => f(o.metadata?.labels ?? {}));
}

function fieldMatcher(sel: string | undefined): (o: Obj) => boolean {
  if (!sel) return () => true;
  const m = sel.match(/^metadata\.name=(.*)$/);
  if (!m) throw new Error(`fake apiserver: unsupported fieldSelector ${sel}`);
  return (o) => o.metadata?.name === m[1];
}

const keyOf = (o: Obj): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;

export class FakeApiServer {
  readonly requests: RequestRecord[] = [];
  /** How a watch from a compacted version is refused: an HTTP 410, or a 200 whose first event is a 410 ERROR. */
  expiredWatchAs: 'http' | 'event' = 'http';
  /** Whether a list at a specific compacted version is refused with 410 (an etcd-served exact read). */
  expiredListAt = false;
  /** Whether every continue token is refused with 410, as after a compaction between pages. */
  expireContinueTokens = false;
  /** Rewrites each list page's metadata before it is sent (a misbehaving server or proxy in front). */
  listMetadata: ((metadata: Obj) => Obj) | null = null;
  private rv = 100;
  private compactedRV = 0;
  private readonly objects = new Map<ResourceName, Map<string, Obj>>([['services', new Map()], ['endpointslices', new Map()], ['nodes', new Map()]]);
  private readonly history: HistoryEntry[] = [];
  private readonly open = new Set<OpenWatch>();
  private readonly failures: { resource: ResourceName; watch: boolean; status: number; body: Obj }[] = [];
  private waiters: { pred: () => boolean; resolve: () => void }[] = [];

  private constructor(private readonly server: http.Server, readonly url: string) {}

  static async start(): Promise<FakeApiServer> {
    const server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const fake = new FakeApiServer(server, `http://127.0.0.1:${port}`);
    server.on('request', (req, res) => fake.handle(req, res));
    return fake;
  }

  async stop(): Promise<void> {
    for (const w of this.open) w.res.destroy();
    this.open.clear();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  get resourceVersion(): string { return String(this.rv); }

  // ---- script: state changes (each gets the next resourceVersion and reaches open watches) ----

  /** Creates or replaces an object (ADDED / MODIFIED); returns the stored copy. */
  apply(resource: ResourceName, object: Obj): Obj {
    const store = this.objects.get(resource)!;
    const obj: Obj = JSON.parse(JSON.stringify(object));
    delete obj.kind;
    delete obj.apiVersion;
    obj.metadata = { ...obj.metadata, resourceVersion: String(++this.rv) };
    const previous = store.get(keyOf(obj)) ?? null;
    store.set(keyOf(obj), obj);
    this.record({ rv: this.rv, resource, previous, current: obj });
    return obj;
  }

  remove(resource: ResourceName, name: string, namespace?: string): void {
    const store = this.objects.get(resource)!;
    const key = `${namespace ?? ''}/${name}`;
    const previous = store.get(key);
    if (!previous) throw new Error(`fake apiserver: no ${resource} ${key}`);
    store.delete(key);
    this.record({ rv: ++this.rv, resource, previous, current: null });
  }

  /** Forgets history up to now: older versions get 410 Gone. */
  compact(): void {
    this.compactedRV = this.rv;
    this.history.length = 0;
  }

  // ---- script: stream events ----

  /** Sends a BOOKMARK at the current version to the open watches of a resource. */
  bookmark(resource: ResourceName): void {
    const { kind, apiVersion } = byName(resource);
    this.send(resource, { type: 'BOOKMARK', object: { kind, apiVersion, metadata: { resourceVersion: this.resourceVersion } } });
  }

  /** Compacts, then ends open watches with an in-stream 410 ERROR event. */
  expireWatches(resource: ResourceName): void {
    this.compact();
    this.send(resource, { type: 'ERROR', object: this.status(410, 'Expired', 'too old resource version') });
    for (const w of this.watchesOf(resource)) this.closeWatch(w, false);
  }

  /** The next state change's watch event reaches the open watches damaged (not JSON). */
  garbleNext = false;

  /** Writes text as is (garbage lines, partial lines) to the open watches of a resource. */
  sendRaw(resource: ResourceName, text: string): void {
    for (const w of this.watchesOf(resource)) w.res.write(text);
  }

  /** Kills the open watch connections of a resource mid-stream (no clean chunked end). */
  dropWatches(resource: ResourceName): void {
    for (const w of this.watchesOf(resource)) this.closeWatch(w, true);
  }

  /** Ends the open watches cleanly, as the server does at timeoutSeconds. */
  closeWatches(resource: ResourceName): void {
    for (const w of this.watchesOf(resource)) this.closeWatch(w, false);
  }

  /** The next list (watch=false) or watch request of a resource answers with this status. */
  failNext(resource: ResourceName, watch: boolean, status: number, reason = 'InternalError'): void {
    this.failures.push({ resource, watch, status, body: this.status(status, reason, `injected ${status}`) });
  }

  openWatches(resource: ResourceName): number {
    return this.watchesOf(resource).length;
  }

  /** Requests of a resource, optionally only watches or lists. */
  requestsOf(resource: ResourceName, watch?: boolean): RequestRecord[] {
    return this.requests.filter((r) => r.resource === resource && (watch === undefined || r.watch === watch));
  }

  /** Resolves once pred() holds (checked on every request and watch change); rejects after ms. */
  waitFor(pred: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`fake apiserver: timed out waiting for ${what}`));
      }, ms);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.waiters.push({ pred, resolve: done });
    });
  }

  /** Resolves when `count` watches of a resource are open. */
  waitForWatch(resource: ResourceName, count = 1): Promise<void> {
    return this.waitFor(() => this.openWatches(resource) >= count, 5000, `${count} open ${resource} watch(es)`);
  }

  // ---- protocol ----

  private status(code: number, reason: string, message: string): Obj {
    return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
  }

  private wake(): void {
    const ready = this.waiters.filter((w) => w.pred());
    this.waiters = this.waiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve();
  }

  private watchesOf(resource: ResourceName): OpenWatch[] {
    return [...this.open].filter((w) => w.resource === resource);
  }

  private closeWatch(w: OpenWatch, drop: boolean): void {
    if (w.timer) clearTimeout(w.timer);
    this.open.delete(w);
    if (drop) w.res.socket?.destroy();
    else w.res.end();
    this.wake();
  }

  private send(resource: ResourceName, event: Obj): void {
    for (const w of this.watchesOf(resource)) w.res.write(`${JSON.stringify(event)}\n`);
  }

  /** The event a watcher with `matches` sees for one history entry, if any. */
  private eventFor(e: HistoryEntry, matches: (o: Obj) => boolean): Obj | null {
    const { kind, apiVersion } = byName(e.resource);
    const was = e.previous !== null && matches(e.previous);
    const is = e.current !== null && matches(e.current);
    const withKind = (o: Obj): Obj => ({ kind, apiVersion, ...o });
    if (e.current === null) return was ? { type: 'DELETED', object: withKind({ ...e.previous, metadata: { ...e.previous!.metadata, resourceVersion: String(e.rv) } }) } : null;
    if (is) return { type: was ? 'MODIFIED' : 'ADDED', object: withKind(e.current) };
    return was ? { type: 'DELETED', object: withKind(e.current) } : null;
  }

  private record(e: HistoryEntry): void {
    this.history.push(e);
    const garbled = this.garbleNext;
    this.garbleNext = false;
    for (const w of this.watchesOf(e.resource)) {
      const ev = this.eventFor(e, w.matches);
      // A damaged line: cut short, with bytes no JSON has (the change happened all the same).
      if (ev) w.res.write(garbled ? `${JSON.stringify(ev).slice(0, 40)}\u0000garbled\n` : `${JSON.stringify(ev)}\n`);
    }
  }

  private reply(res: http.ServerResponse, rec: RequestRecord, status: number, body: Obj): void {
    rec.status = status;
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    const meta = RESOURCES[url.pathname];
    const query = Object.fromEntries(url.searchParams);
    const watch = query.watch === 'true' || query.watch === '1';
    const rec: RequestRecord = { resource: meta?.name ?? null, watch, query, authorization: req.headers.authorization, status: 0 };
    this.requests.push(rec);
    try {
      if (!meta || req.method !== 'GET') return this.reply(res, rec, 404, this.status(404, 'NotFound', `no route ${req.method} ${url.pathname}`));
      const fail = this.failures.findIndex((f) => f.resource === meta.name && f.watch === watch);
      if (fail >= 0) {
        const f = this.failures.splice(fail, 1)[0]!;
        return this.reply(res, rec, f.status, f.body);
      }
      const matches = ((l, f) => (o: Obj) => l(o) && f(o))(labelMatcher(query.labelSelector), fieldMatcher(query.fieldSelector));
      if (watch) this.serveWatch(meta.name, query, matches, res, rec);
      else this.serveList(meta.name, query, matches, res, rec);
    } finally {
      this.wake();
    }
  }

  private serveList(resource: ResourceName, q: Record<string, string>, matches: (o: Obj) => boolean, res: http.ServerResponse, rec: RequestRecord): void {
    const { kind } = byName(resource);
    const rv = q.resourceVersion ?? '';
    if (this.expiredListAt && rv !== '' && rv !== '0' && Number(rv) < this.compactedRV) {
      return this.reply(res, rec, 410, this.status(410, 'Expired', `too old resource version: ${rv} (${this.compactedRV})`));
    }
    const all = [...this.objects.get(resource)!.values()].filter(matches).sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : 1));
    let offset = 0;
    let snapshot = this.rv;
    if (q.continue) {
      const [snap, off] = q.continue.split(':').map(Number);
      if (snap! < this.compactedRV || this.expireContinueTokens) return this.reply(res, rec, 410, this.status(410, 'Expired', 'The provided continue parameter is too old'));
      snapshot = snap!;
      offset = off!;
    }
    const limit = q.limit ? Number(q.limit) : 0;
    const page = limit > 0 ? all.slice(offset, offset + limit) : all.slice(offset);
    const more = limit > 0 && offset + limit < all.length;
    const metadata: Obj = { resourceVersion: String(snapshot) };
    if (more) metadata.continue = `${snapshot}:${offset + limit}`;
    this.reply(res, rec, 200, { kind: `${kind}List`, apiVersion: byName(resource).apiVersion, metadata: this.listMetadata?.(metadata) ?? metadata, items: page });
  }

  private serveWatch(resource: ResourceName, q: Record<string, string>, matches: (o: Obj) => boolean, res: http.ServerResponse, rec: RequestRecord): void {
    const rv = q.resourceVersion ?? '';
    const from = rv === '' || rv === '0' ? null : Number(rv);
    if (from !== null && from < this.compactedRV && this.expiredWatchAs === 'http') {
      return this.reply(res, rec, 410, this.status(410, 'Expired', `too old resource version: ${rv} (${this.compactedRV})`));
    }
    rec.status = 200;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    if (from !== null && from < this.compactedRV) {
      res.end(`${JSON.stringify({ type: 'ERROR', object: this.status(410, 'Expired', `too old resource version: ${rv} (${this.compactedRV})`) })}\n`);
      return;
    }
    const w: OpenWatch = { resource, res, matches, timer: null };
    if (from === null) {
      // "Start at most recent": a synthetic ADDED for every current object.
      const { kind, apiVersion } = byName(resource);
      for (const o of this.objects.get(resource)!.values()) if (matches(o)) res.write(`${JSON.stringify({ type: 'ADDED', object: { kind, apiVersion, ...o } })}\n`);
    } else {
      for (const e of this.history) {
        if (e.resource !== resource || e.rv <= from) continue;
        const ev = this.eventFor(e, matches);
        if (ev) res.write(`${JSON.stringify(ev)}\n`);
      }
    }
    const timeout = Number(q.timeoutSeconds ?? 0);
    if (timeout > 0) w.timer = setTimeout(() => this.closeWatch(w, false), timeout * 1000);
    res.on('close', () => {
      if (w.timer) clearTimeout(w.timer);
      if (this.open.delete(w)) this.wake();
    });
    this.open.add(w);
  }
}

// ---- API objects as the server stores them (raw JSON, not yet decoded) ----

export function apiService(name: string, clusterIP: string, port = 80, labels: Record<string, string> = {}): Obj {
  return {
    kind: 'Service',
    apiVersion: 'v1',
    metadata: { name, namespace: 'default', labels },
    spec: { type: 'ClusterIP', clusterIP, clusterIPs: [clusterIP], ipFamilies: ['IPv4'], ports: [{ name: 'http', protocol: 'TCP', port, targetPort: 8080 }] },
  };
}

export function apiSlice(name: string, service: string, addresses: string[], labels: Record<string, string> = {}): Obj {
  return {
    kind: 'EndpointSlice',
    apiVersion: 'discovery.k8s.io/v1',
    metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': service, ...labels } },
    addressType: 'IPv4',
    endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true, serving: true, terminating: false } })),
    ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
  };
}

export function apiNode(name: string, zone?: string): Obj {
  return { kind: 'Node', apiVersion: 'v1', metadata: { name, labels: zone ? { 'topology.kubernetes.io/zone': zone } : {} }, spec: {}, status: {} };
}
