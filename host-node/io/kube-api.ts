// kube-api.ts — the Kubernetes API transport: one ListWatcher per resource kube-proxy reads
// (/api/v1/services, /apis/discovery.k8s.io/v1/endpointslices, and this node through /api/v1/nodes
// with a metadata.name field selector, as kube-proxy's node informer does), over HTTP(S) with the
// credentials and TLS settings of a kubeconfig or the in-cluster service account, taken from
// @kubernetes/client-node's KubeConfig on every request (so rotated tokens are picked up). It reads
// the chunked watch stream itself: client-node's Watch drops unparseable lines without a trace and
// reports HTTP errors without their Status, and the reflector needs both. Never interprets events:
// lines go undecoded to kube/source.ts, which owns every list/watch rule.
import http from 'node:http';
import https from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import {
  ApiStatusError,
  isExpiredError,
  labelSelectorFor,
  ListWatchSource,
  WatchStreamDropped,
  nodeFieldSelector,
  type ListResult,
  type ListWatcher,
  type SourceClock,
  type SourceOptions,
  type WatchOptions,
} from '../kube/source.js';

export const API_PATHS = {
  services: '/api/v1/services',
  endpointslices: '/apis/discovery.k8s.io/v1/endpointslices',
  nodes: '/api/v1/nodes',
} as const;

const USER_AGENT = 'svcplane';

export interface KubeApiOptions {
  kubeConfig: KubeConfig;
  /** Items per list page for consistent ("") and any ("0") reads; 0 = no paging (client-go pager.PageSize: 500). */
  pageSize?: number;
  /** A watch still open this long after its timeoutSeconds is abandoned (a server that never closes). */
  watchGraceMs?: number;
  /** A list or error response that sends nothing for this long is abandoned. */
  idleTimeoutMs?: number;
  /** Largest list accepted (all its pages together), in bytes. */
  maxListBytes?: number;
}

export interface Selectors {
  labelSelector?: string;
  fieldSelector?: string;
}

/**
 * A decoded text stream split into lines. A line longer than maxChars is delivered cut to
 * maxChars (so it fails to parse and the reflector counts it) and the rest of it is dropped.
 */
export class LineSplitter {
  private buf = '';
  private skipping = false;

  constructor(private readonly onLine: (line: string) => void, private readonly maxChars = 16 << 20) {}

  push(chunk: string): void {
    let start = 0;
    for (let nl = chunk.indexOf('\n'); nl >= 0; nl = chunk.indexOf('\n', start)) {
      const part = chunk.slice(start, nl);
      start = nl + 1;
      if (this.skipping) {
        this.skipping = false;
        continue;
      }
      const line = this.buf + part;
      this.buf = '';
      this.onLine(line.length > this.maxChars ? line.slice(0, this.maxChars) : line);
    }
    if (this.skipping) return;
    this.buf += chunk.slice(start);
    if (this.buf.length > this.maxChars) {
      this.onLine(this.buf.slice(0, this.maxChars));
      this.buf = '';
      this.skipping = true;
    }
  }

  /** End of stream: a last line without a newline still counts. */
  end(): void {
    if (!this.skipping && this.buf !== '') this.onLine(this.buf);
    this.buf = '';
    this.skipping = false;
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The body of `res` as text (UTF-8); rejects past `maxBytes`, when cut off, or when too long for a string. */
export function readBody(res: http.IncomingMessage, maxBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) {
        res.destroy(new Error(`response larger than ${maxBytes} bytes`));
        return;
      }
      chunks.push(c);
    });
    res.on('end', () => {
      // A body past V8's longest string (about 512 MB) throws here, not in the caller.
      try {
        resolve(Buffer.concat(chunks).toString('utf8'));
      } catch (e) {
        reject(e);
      }
    });
    res.on('error', reject);
    res.on('close', () => { if (!res.complete) reject(new Error('response cut off')); });
  });
}

/** A non-200 response as an ApiStatusError, from its metav1.Status body when it has one. */
async function statusError(res: http.IncomingMessage): Promise<ApiStatusError> {
  const code = res.statusCode ?? 0;
  let text = '';
  try {
    text = await readBody(res, 1 << 20);
  } catch {
    // The status code alone still classifies the error.
  }
  try {
    const body: unknown = JSON.parse(text);
    if (isRecord(body) && body.kind === 'Status') return ApiStatusError.fromStatus(body, code);
  } catch {
    // Not JSON: keep the text.
  }
  return new ApiStatusError(code, http.STATUS_CODES[code] ?? '', `HTTP ${code}: ${text.slice(0, 200)}`);
}

/** list + watch of one resource path over the API server. */
export class KubeApiListWatcher implements ListWatcher {
  private readonly pageSize: number;

  constructor(
    readonly resource: string,
    private readonly path: string,
    private readonly selectors: Selectors,
    private readonly opts: KubeApiOptions,
  ) {
    this.pageSize = opts.pageSize ?? 500;
  }

  private url(params: Record<string, string | undefined>): URL {
    const cluster = this.opts.kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    const url = new URL(cluster.server.replace(/\/+$/, '') + this.path);
    for (const [k, v] of Object.entries({ ...this.selectors, ...params })) if (v !== undefined && v !== '') url.searchParams.set(k, v);
    return url;
  }

  private async request(url: URL, signal: AbortSignal, idleMs: number): Promise<http.IncomingMessage> {
    const options: https.RequestOptions = { method: 'GET', headers: { Accept: 'application/json', 'User-Agent': USER_AGENT } };
    // Credentials, CA and client certificates; re-read each time so token files may rotate.
    await this.opts.kubeConfig.applyToHTTPSOptions(options);
    signal.throwIfAborted();
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(url, { ...options, signal }, resolve);
      req.on('error', reject);
      if (idleMs > 0) req.setTimeout(idleMs, () => req.destroy(new Error(`no data from the API server for ${idleMs} ms`)));
      req.end();
    });
  }

  /** One list response of at most `maxBytes`, parsed, and its size. */
  private async getJSON(params: Record<string, string | undefined>, signal: AbortSignal, maxBytes: number): Promise<{ body: unknown; bytes: number }> {
    const res = await this.request(this.url(params), signal, this.opts.idleTimeoutMs ?? 60_000);
    if (res.statusCode !== 200) throw await statusError(res);
    const text = await readBody(res, maxBytes);
    try {
      return { body: JSON.parse(text), bytes: Buffer.byteLength(text) };
    } catch {
      throw new Error(`${this.resource}: list response is not JSON`);
    }
  }

  async list(resourceVersion: string, signal: AbortSignal): Promise<ListResult> {
    // reflector.go: page only consistent ("") and any ("0") reads; a list at a specific version is
    // asked whole so the watch cache can answer it.
    const paged = this.pageSize > 0 && (resourceVersion === '' || resourceVersion === '0');
    return this.listPages(resourceVersion, paged ? this.pageSize : 0, signal);
  }

  private async listPages(resourceVersion: string, limit: number, signal: AbortSignal): Promise<ListResult> {
    const items: unknown[] = [];
    let cont = '';
    let version = '';
    // A server that hands back a token it gave before, or pages past the size limit, would keep
    // this list (and the proxy's view of the cluster) going forever: it fails, and is retried
    // after the reflector's back-off.
    const seen = new Set<string>();
    let left = this.opts.maxListBytes ?? 1 << 30;
    do {
      let body: unknown;
      try {
        const page = await this.getJSON(
          // A continue token carries its own version; the server rejects both together.
          { limit: limit > 0 ? String(limit) : undefined, continue: cont || undefined, resourceVersion: cont ? undefined : resourceVersion },
          signal, left,
        );
        body = page.body;
        left -= page.bytes;
      } catch (e) {
        // pager.go (FullListIfExpired): an expired continue token falls back to one unpaged list.
        if (cont !== '' && isExpiredError(e)) return this.listPages(resourceVersion, 0, signal);
        throw e;
      }
      if (!isRecord(body) || !Array.isArray(body.items)) throw new Error(`${this.resource}: list response has no items`);
      for (const item of body.items) items.push(item);
      const meta = isRecord(body.metadata) ? body.metadata : {};
      version = typeof meta.resourceVersion === 'string' ? meta.resourceVersion : '';
      cont = typeof meta.continue === 'string' ? meta.continue : '';
      if (cont !== '' && seen.has(cont)) throw new Error(`${this.resource}: list continue token ${JSON.stringify(cont.slice(0, 64))} came back again`);
      seen.add(cont);
    } while (cont !== '');
    // Without its version the watch after it would start at "now", missing what changed between.
    if (version === '') throw new Error(`${this.resource}: list response has no metadata.resourceVersion`);
    return { items, resourceVersion: version };
  }

  async watch(o: WatchOptions, onLine: (line: string) => void, signal: AbortSignal): Promise<void> {
    const url = this.url({
      watch: 'true',
      allowWatchBookmarks: 'true',
      resourceVersion: o.resourceVersion,
      timeoutSeconds: String(o.timeoutSeconds),
    });
    const ac = new AbortController();
    const stop = (): void => ac.abort();
    signal.addEventListener('abort', stop, { once: true });
    if (signal.aborted) ac.abort();
    const deadline = setTimeout(stop, o.timeoutSeconds * 1000 + (this.opts.watchGraceMs ?? 30_000));
    try {
      const res = await this.request(url, ac.signal, 0);
      if (res.statusCode !== 200) throw await statusError(res);
      res.socket?.setKeepAlive(true, 30_000);
      res.setEncoding('utf8');
      await new Promise<void>((resolve, reject) => {
        const split = new LineSplitter(onLine);
        let settled = false;
        const finish = (err?: Error): void => {
          if (settled) return;
          settled = true;
          if (err) reject(err);
          else resolve();
        };
        res.on('data', (chunk: string) => {
          if (!settled) split.push(chunk);
        });
        res.on('end', () => {
          if (settled) return;
          split.end();
          finish();
        });
        res.on('error', (e) => finish(new WatchStreamDropped(e.message)));
        res.on('close', () => finish(new WatchStreamDropped('the connection closed before the stream ended')));
      });
    } finally {
      clearTimeout(deadline);
      signal.removeEventListener('abort', stop);
    }
  }
}

/**
 * A kubeconfig: the given file, else client-node's default search ($KUBECONFIG, ~/.kube/config,
 * then the in-cluster service account).
 */
/**
 * The kubeconfig `file` (none: in-cluster or the default one), with kube-proxy's --master: the API
 * server's address in place of the current cluster's, or alone (no credentials) without a file,
 * as client-go's BuildConfigFromFlags(master, kubeconfig) makes it.
 */
export function loadKubeConfig(file?: string, master?: string): KubeConfig {
  const kc = new KubeConfig();
  // client-node refuses an http:// server unless told TLS is not checked (there is none to check).
  const plain = master?.startsWith('http:') ?? false;
  if (file) kc.loadFromFile(file);
  else if (master) {
    kc.loadFromOptions({
      clusters: [{ name: 'master', server: master, skipTLSVerify: plain }], users: [{ name: 'master' }],
      contexts: [{ name: 'master', cluster: 'master', user: 'master' }], currentContext: 'master',
    });
  } else kc.loadFromDefault();
  const current = kc.getCurrentCluster();
  if (!current) throw new Error(`${file ?? 'kubeconfig'}: no current cluster`);
  if (master && file) {
    kc.loadFromOptions({
      clusters: kc.clusters.map((c) => (c.name === current.name ? { ...c, server: master, skipTLSVerify: c.skipTLSVerify || plain } : c)),
      users: kc.users, contexts: kc.contexts, currentContext: kc.getCurrentContext(),
    });
  }
  return kc;
}

export interface KubeApiSourceOptions extends SourceOptions, KubeApiOptions {
  /** Watch this node's Node for its topology labels (default true). */
  watchNode?: boolean;
  clock?: SourceClock;
  random?: () => number;
}

/** The three ListWatchers with kube-proxy's selectors. */
export function kubeApiListWatchers(opts: KubeApiSourceOptions): { services: ListWatcher; endpointSlices: ListWatcher; node: ListWatcher | null } {
  const labels = { labelSelector: labelSelectorFor(opts) };
  return {
    services: new KubeApiListWatcher('services', API_PATHS.services, labels, opts),
    endpointSlices: new KubeApiListWatcher('endpointslices', API_PATHS.endpointslices, labels, opts),
    node: opts.watchNode === false ? null : new KubeApiListWatcher('nodes', API_PATHS.nodes, { fieldSelector: nodeFieldSelector(opts.nodeName) }, opts),
  };
}

/** A Source reading the API server: `createKubeApiSource({kubeConfig, nodeName}).start(state, onBatch)`. */
export function createKubeApiSource(opts: KubeApiSourceOptions): ListWatchSource {
  return new ListWatchSource({ ...opts, ...kubeApiListWatchers(opts) });
}
