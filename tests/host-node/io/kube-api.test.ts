// The Kubernetes API source over real HTTP against tests/support/fake-apiserver.ts: kube-proxy's
// query parameters and credentials, BOOKMARK resume, 410 relists (in-stream ERROR and HTTP 410)
// applied as one diff, dropped streams, garbage lines, paging and server-side selectors.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KubeConfig } from '@kubernetes/client-node';
import { createKubeApiSource, LineSplitter, loadKubeConfig, readBody } from '../../../host-node/io/kube-api.js';
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { ProxyState, type SyncPlan } from '../../../host-node/kube/index.js';
import type { ListWatchSource, SourceClock } from '../../../host-node/kube/source.js';
import { apiNode, apiService, apiSlice, FakeApiServer } from '../../support/fake-apiserver.js';

/** Back-off sleeps are recorded and last 1 ms, or wait for release() while hold is set. */
class GateClock implements SourceClock {
  t = 0;
  readonly sleeps: number[] = [];
  hold = false;
  private gates: (() => void)[] = [];
  now(): number { return this.t; }
  sleep(ms: number, signal: AbortSignal): Promise<void> {
    this.sleeps.push(ms);
    this.t += ms;
    if (!this.hold) return new Promise((r) => setTimeout(r, 1));
    return new Promise((r) => {
      this.gates.push(r);
      signal.addEventListener('abort', () => r(), { once: true });
    });
  }
  release(): void {
    this.hold = false;
    for (const g of this.gates.splice(0)) g();
  }
}

async function until(pred: () => boolean, what: string, ms = 4000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function kubeConfigFor(url: string, token = 'test-token'): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: url, skipTLSVerify: true }],
    users: [{ name: 'proxy', token }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'proxy' }],
    currentContext: 'fake',
  });
  return kc;
}

/** A kubeconfig whose one cluster has `cluster` (YAML flow fields) and whose user has token file-token. */
const kubeconfigText = (cluster: string): string => `apiVersion: v1
kind: Config
clusters: [{name: fake, cluster: {${cluster}}}]
users: [{name: proxy, user: {token: file-token}}]
contexts: [{name: fake, context: {cluster: fake, user: proxy}}]
current-context: fake
`;

let server: FakeApiServer;
let source: ListWatchSource | null;
beforeEach(async () => {
  server = await FakeApiServer.start();
  source = null;
});
afterEach(async () => {
  await source?.stop();
  await server.stop();
});

function run(opts: { kubeConfig?: KubeConfig; pageSize?: number; watchNode?: boolean } = {}) {
  const state = new ProxyState({ nodeName: 'node-a', families: [4] });
  const clock = new GateClock();
  const logs: string[] = [];
  let onBatch: () => void = () => {};
  const src = createKubeApiSource({
    kubeConfig: opts.kubeConfig ?? kubeConfigFor(server.url),
    nodeName: 'node-a',
    pageSize: opts.pageSize,
    watchNode: opts.watchNode ?? false,
    clock,
    random: () => 0.25,
    log: (m) => logs.push(m),
  });
  source = src;
  src.start(state, () => onBatch());
  const services = (): string[] => {
    state.sync();
    return [...state.families.get(4)!.model.services.values()].map((s) => `${s.namespacedName}:${s.port}`).sort();
  };
  return { state, clock, logs, src, services, setOnBatch: (f: () => void) => { onBatch = f; } };
}

const svcRV = () => source!.reflector('Service')!.resourceVersion;

describe('KubeApiListWatcher over HTTP', () => {
  it("takes kube-proxy's --master over the kubeconfig's server, or alone with no credentials", async () => {
    server.apply('services', apiService('web', '10.96.0.10'));
    const dir = mkdtempSync(join(tmpdir(), 'svp-kubeconfig-'));
    try {
      const file = join(dir, 'config');
      // The kubeconfig names a server nothing answers on; --master names the one that does.
      writeFileSync(file, kubeconfigText('server: "https://127.0.0.1:9"'));
      for (const [kc, auth] of [[loadKubeConfig(file, server.url), 'Bearer file-token'], [loadKubeConfig(undefined, server.url), undefined]] as const) {
        expect(kc.getCurrentCluster()!.server).toBe(server.url);
        const t = run({ kubeConfig: kc, watchNode: false });
        await until(() => t.src.synced, `initial sync (${t.logs.join(' / ')})`);
        expect(t.services()).toEqual(['default/web:80']);
        expect(server.requests.at(-1)!.authorization).toBe(auth);
        await t.src.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("lists and watches with kube-proxy's parameters and the kubeconfig's credentials", async () => {
    server.apply('services', apiService('web', '10.96.0.10'));
    server.apply('services', apiService('alt', '10.96.0.20', 80, { 'service.kubernetes.io/service-proxy-name': 'other' }));
    server.apply('endpointslices', apiSlice('web-1', 'web', ['10.0.0.1']));
    server.apply('endpointslices', apiSlice('web-h', 'web', ['10.0.0.9'], { 'service.kubernetes.io/headless': '' }));
    server.apply('nodes', apiNode('node-a', 'z1'));
    server.apply('nodes', apiNode('node-b', 'z2'));
    const dir = mkdtempSync(join(tmpdir(), 'svp-kubeconfig-'));
    try {
      const file = join(dir, 'config');
      writeFileSync(file, kubeconfigText(`server: "${server.url}", insecure-skip-tls-verify: true`));
      const t = run({ kubeConfig: loadKubeConfig(file), watchNode: true });
      await until(() => t.src.synced && t.state.topologyLabels['topology.kubernetes.io/zone'] === 'z1', 'initial sync');
      expect(t.services()).toEqual(['default/web:80']);
      expect([...t.state.families.get(4)!.model.endpoints.values()].flat().map((e) => e.endpoint)).toEqual(['10.0.0.1:8080']);
      await server.waitForWatch('services');
      const [list] = server.requestsOf('services', false);
      const [watch] = server.requestsOf('services', true);
      const selector = '!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless';
      expect(list!.query).toEqual({ labelSelector: selector, resourceVersion: '0', limit: '500' });
      expect(watch!.query).toMatchObject({ labelSelector: selector, watch: 'true', allowWatchBookmarks: 'true', resourceVersion: server.resourceVersion });
      expect(Number(watch!.query.timeoutSeconds)).toBeGreaterThanOrEqual(300);
      expect(server.requestsOf('nodes', false)[0]!.query.fieldSelector).toBe('metadata.name=node-a');
      expect(server.requests.every((r) => r.authorization === 'Bearer file-token')).toBe(true);
      // Live events.
      server.apply('services', apiService('api', '10.96.0.11'));
      await until(() => t.services().includes('default/api:80'), 'ADDED over the stream');
      server.remove('services', 'web', 'default');
      await until(() => !t.services().includes('default/web:80'), 'DELETED over the stream');
      // Server-side selection: a Service that starts naming another proxy arrives as DELETED.
      server.apply('services', apiService('api', '10.96.0.11', 80, { 'service.kubernetes.io/service-proxy-name': 'other' }));
      await until(() => t.services().length === 0, 'selector-leaving object removed');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a BOOKMARK moves the version a reconnect asks for', async () => {
    const t = run();
    await until(() => t.src.synced, 'sync');
    await server.waitForWatch('services');
    server.apply('endpointslices', apiSlice('other-1', 'other', ['10.0.0.7']));
    server.apply('endpointslices', apiSlice('other-2', 'other', ['10.0.0.8']));
    server.bookmark('services');
    await until(() => svcRV() === server.resourceVersion, 'bookmark applied');
    const bookmarkRV = server.resourceVersion;
    server.dropWatches('services');
    await server.waitFor(() => server.requestsOf('services', true).length === 2, 5000, 'rewatch');
    expect(server.requestsOf('services', true)[1]!.query.resourceVersion).toBe(bookmarkRV);
    expect(server.requestsOf('services', false)).toHaveLength(1);
    // A watch that brought something ends with the dropped connection, as a clean end does
    // (streamwatcher.go): no back-off.
    expect(t.clock.sleeps).toHaveLength(0);
    expect(source!.stats().services).toMatchObject({ drops: 1, backoffs: 0 });
  });

  for (const mode of ['event', 'http'] as const) {
    it(`a 410 (${mode === 'event' ? 'ERROR event' : 'HTTP status'}) relists; vanished objects go in the same step`, async () => {
      server.apply('services', apiService('web', '10.96.0.10'));
      server.apply('services', apiService('api', '10.96.0.11'));
      server.expiredWatchAs = mode;
      const t = run();
      await until(() => t.src.synced, 'sync');
      await server.waitForWatch('services');
      expect(t.services()).toEqual(['default/api:80', 'default/web:80']);
      const lastRV = svcRV();
      // While the proxy is disconnected and backing off, history moves on and is compacted.
      t.clock.hold = true;
      server.dropWatches('services');
      await until(() => t.clock.sleeps.length === 1, 'back-off after the drop');
      server.remove('services', 'api', 'default');
      server.apply('services', apiService('web', '10.96.0.10', 81));
      server.apply('services', apiService('db', '10.96.0.12'));
      server.compact();
      const plans: SyncPlan[][] = [];
      t.setOnBatch(() => plans.push(t.state.sync()));
      t.clock.release();
      await server.waitFor(() => server.requestsOf('services', true).length === 3, 5000, 'watch after relist');
      // The relist asks for the last version seen (not older than it), as reflector.go does.
      expect(server.requestsOf('services', false).map((l) => l.query.resourceVersion)).toEqual(['0', lastRV]);
      expect(plans.filter((p) => p.length > 0 && p[0]!.changedServices!.size > 0)).toHaveLength(1);
      const plan = plans.find((p) => p[0]!.changedServices!.size > 0)![0]!;
      expect(plan.changedServices).toEqual(new Set(['default/api', 'default/db', 'default/web']));
      expect([...plan.model.services.values()].map((s) => `${s.namespacedName}:${s.port}`).sort()).toEqual(['default/db:80', 'default/web:81']);
      expect(source!.stats().services).toMatchObject({ relists: 1, expired: 1 });
    });
  }

  it('a list at an expired version falls back to a consistent, paged list', async () => {
    server.apply('services', apiService('web', '10.96.0.10'));
    server.expiredListAt = true;
    const t = run();
    await until(() => t.src.synced, 'sync');
    await server.waitForWatch('services');
    const firstRV = svcRV();
    t.clock.hold = true;
    server.dropWatches('services');
    await until(() => t.clock.sleeps.length === 1, 'back-off after the drop');
    server.apply('services', apiService('db', '10.96.0.12'));
    server.compact();
    t.clock.release();
    await until(() => t.services().includes('default/db:80'), 'relisted');
    const lists = server.requestsOf('services', false).map((r) => [r.status, r.query.resourceVersion ?? '', r.query.limit ?? '']);
    expect(lists).toEqual([[200, '0', '500'], [410, firstRV, ''], [200, '', '500']]);
  });

  it('a dropped stream resumes from the last version with nothing doubled or lost', async () => {
    const t = run();
    await until(() => t.src.synced, 'sync');
    await server.waitForWatch('services');
    for (let i = 0; i < 10; i++) server.apply('services', apiService(`s${i}`, `10.96.1.${i}`));
    await until(() => svcRV() === server.resourceVersion, 'first ten');
    const resumeAt = server.resourceVersion;
    server.dropWatches('services');
    // While the proxy is disconnected (it cannot rewatch before this test yields): changes.
    for (let i = 10; i < 15; i++) server.apply('services', apiService(`s${i}`, `10.96.1.${i}`));
    server.apply('services', apiService('s3', '10.96.1.3', 8443));
    server.remove('services', 's4', 'default');
    await until(() => svcRV() === server.resourceVersion, 'caught up');
    expect(server.requestsOf('services', true)[1]!.query.resourceVersion).toBe(resumeAt);
    expect(t.clock.sleeps).toEqual([]);
    const want = Array.from({ length: 15 }, (_, i) => `default/s${i}:${i === 3 ? 8443 : 80}`).filter((s) => !s.startsWith('default/s4:')).sort();
    expect(t.services()).toEqual(want);
    expect(source!.stats().services).toMatchObject({ adds: 15, updates: 1, deletes: 1, relists: 0, lists: 1 });
    expect(server.requestsOf('services', false)).toHaveLength(1);
  });

  it('split lines are joined; a line that is not a watch event ends the watch, and the relist brings back the change it carried', async () => {
    server.apply('services', apiService('web', '10.96.0.10'));
    server.apply('services', apiService('api', '10.96.0.11'));
    const t = run();
    await until(() => t.src.synced, 'sync');
    await server.waitForWatch('services');
    const ev = JSON.stringify({ type: 'MODIFIED', object: { ...apiService('api', '10.96.0.11', 82), metadata: { name: 'api', namespace: 'default', resourceVersion: server.resourceVersion } } });
    server.sendRaw('services', ev.slice(0, 25));
    await new Promise((r) => setTimeout(r, 20));
    server.sendRaw('services', `${ev.slice(25)}\n`);
    await until(() => t.services().includes('default/api:82'), 'the split line');
    // web is deleted, but its DELETED line arrives damaged: a relist (reflector.go, after a decode
    // error) is the only way the deletion reaches the proxy.
    server.garbleNext = true;
    server.remove('services', 'web', 'default');
    server.apply('services', apiService('after', '10.96.0.41'));
    await until(() => t.services().includes('default/after:80') && !t.services().includes('default/web:80'), 'the relist');
    expect(t.services()).toEqual(['default/after:80', 'default/api:80']);
    expect(source!.stats().services).toMatchObject({ garbageUnparseable: 1, relists: 1, backoffs: 1 });
    expect(server.requestsOf('services', false)).toHaveLength(2);
  });

  it('a DELETED event whose namespace is not a string, or of another kind, is garbage: it deletes nothing', async () => {
    server.apply('services', apiService('web', '10.96.0.50'));
    const t = run();
    await until(() => t.src.synced, 'sync');
    await server.waitForWatch('services');
    const deleted = (object: object) => `${JSON.stringify({ type: 'DELETED', object })}\n`;
    server.sendRaw('services', deleted({ kind: 'Service', metadata: { name: 'web', namespace: 7, resourceVersion: '6000' } }));
    server.sendRaw('services', deleted({ kind: 'Service', metadata: { name: 'web', namespace: ['default'], resourceVersion: '6001' } }));
    server.sendRaw('services', deleted({ kind: 'Pod', metadata: { name: 'web', namespace: 'default', resourceVersion: '6002' } }));
    server.apply('services', apiService('after', '10.96.0.51'));
    await until(() => t.services().includes('default/after:80'), 'the event after them');
    expect(t.services()).toEqual(['default/after:80', 'default/web:80']);
    expect(source!.stats().services).toMatchObject({ garbageInvalid: 3 });
    expect(t.logs.filter((l) => l.includes('DELETED'))).toHaveLength(3);
  });

  it('pages a list with limit/continue and falls back to one full list when a token expires', async () => {
    for (let i = 0; i < 5; i++) server.apply('services', apiService(`p${i}`, `10.96.2.${i}`));
    const t = run({ pageSize: 2 });
    await until(() => t.src.synced, 'sync');
    expect(t.services()).toHaveLength(5);
    expect(server.requestsOf('services', false).map((r) => r.query.continue ?? '-').length).toBe(3);
    await source!.stop();
    server.requests.length = 0;
    server.expireContinueTokens = true;
    const t2 = run({ pageSize: 2 });
    await until(() => t2.src.synced, 'sync after fallback');
    expect(t2.services()).toHaveLength(5);
    expect(server.requestsOf('services', false).map((r) => [r.status, r.query.limit ?? '', r.query.continue ? 'c' : ''])).toEqual([
      [200, '2', ''], [410, '2', 'c'], [200, '', ''],
    ]);
  });

  it('a list whose continue token comes back again, or that pages past maxListBytes, fails and is retried after a back-off', async () => {
    for (let i = 0; i < 3; i++) server.apply('services', apiService(`p${i}`, `10.96.2.${i}`));
    server.listMetadata = (m) => ({ ...m, continue: 'same-token' });
    const t = run();
    await until(() => t.logs.some((l) => l.includes('came back again')), 'the repeated token refused');
    expect(t.src.synced).toBe(false);
    expect(t.clock.sleeps.length).toBeGreaterThanOrEqual(1);
    // Each attempt asked once without a token and once with it: no list runs on without bound.
    const asked = server.requestsOf('services', false);
    expect(asked.filter((r) => r.query.continue === undefined).length).toBeGreaterThanOrEqual(asked.filter((r) => r.query.continue === 'same-token').length);
    server.listMetadata = null;
    await until(() => t.src.synced, 'sync once the server behaves');
    expect(t.services()).toHaveLength(3);
    await source!.stop();
    // Fresh tokens on every page, each page small: the list as a whole is held to maxListBytes.
    let n = 0;
    server.listMetadata = (m) => ({ ...m, continue: `t${n++}` });
    const state = new ProxyState({ nodeName: 'node-a', families: [4] });
    const logs: string[] = [];
    source = createKubeApiSource({ kubeConfig: kubeConfigFor(server.url), nodeName: 'node-a', watchNode: false, maxListBytes: 20_000, clock: new GateClock(), random: () => 0.25, log: (m) => logs.push(m) });
    source.start(state, () => {});
    await until(() => logs.some((l) => l.includes('larger than')), 'the list held to its size');
    expect(source.synced).toBe(false);
  });

  it('a list without metadata.resourceVersion is refused, so the watch never starts at "now" and misses what changed in between', async () => {
    server.apply('services', apiService('a', '10.96.2.1'));
    server.listMetadata = (m) => ({ ...m, resourceVersion: 15 });
    const t = run();
    await until(() => t.logs.some((l) => l.includes('no metadata.resourceVersion')), 'the list refused');
    expect(t.src.synced).toBe(false);
    expect(server.requestsOf('services', true)).toHaveLength(0);
    server.listMetadata = null;
    await until(() => t.src.synced, 'sync once the server behaves');
    await server.waitForWatch('services');
    expect(server.requestsOf('services', true)[0]!.query.resourceVersion).toBe(server.resourceVersion);
  });

  it('an HTTP 500 on the watch backs off and rewatches; stop() closes the streams', async () => {
    const t = run();
    await until(() => t.src.synced, 'sync');
    await server.waitForWatch('services');
    server.failNext('services', true, 500);
    server.closeWatches('services');
    await server.waitForWatch('services');
    const watches = server.requestsOf('services', true);
    expect(watches.map((w) => w.status)).toEqual([200, 500, 200]);
    expect(new Set(watches.map((w) => w.query.resourceVersion)).size).toBe(1);
    expect(t.clock.sleeps.length).toBeGreaterThanOrEqual(1);
    await source!.stop();
    await server.waitFor(() => server.openWatches('services') === 0 && server.openWatches('endpointslices') === 0, 2000, 'closed');
  });
});

describe('LineSplitter', () => {
  it('joins lines across chunks, keeps a final unterminated line and cuts oversized ones', () => {
    const lines: string[] = [];
    const s = new LineSplitter((l) => lines.push(l), 8);
    s.push('ab');
    s.push('c\nde');
    s.push('f\n0123456789abc');
    s.push('def\nok\nlast');
    s.end();
    expect(lines).toEqual(['abc', 'def', '01234567', 'ok', 'last']);
  });
});

describe('a response body too long for one string', () => {
  it('is a failed request, not an exception thrown from the stream\'s end event', async () => {
    // V8's longest string is about 512 MB: nine 64 MB chunks (one buffer, sent nine times) pass
    // the byte limit they are given and fail only as text.
    const res = Object.assign(new EventEmitter(), { complete: true, destroy() {} }) as unknown as IncomingMessage;
    const body = readBody(res, 1 << 30);
    const chunk = Buffer.alloc(64 << 20, 0x61);
    for (let i = 0; i < 9; i++) res.emit('data', chunk);
    res.emit('end');
    await expect(body).rejects.toThrow(/string/i);
  });
});
