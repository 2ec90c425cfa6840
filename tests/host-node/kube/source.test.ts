// ListWatchReflector / ListWatchSource against a scripted in-memory ListWatcher: list → synced,
// watch events, BOOKMARK resume versions, 410 relists applied as one diff, back-off with an
// injected clock, garbage lines, kube-proxy's label selectors and the Node field selector.
import { describe, expect, it } from 'vitest';
import { ProxyState, type SyncPlan } from '../../../host-node/kube/index.js';
import {
  ApiStatusError,
  backoffDelay,
  labelSelectorFor,
  ListWatchSource,
  nodeFieldSelector,
  WatchStreamDropped,
  type ListResult,
  type ListWatcher,
  type SourceClock,
  type WatchOptions,
} from '../../../host-node/kube/source.js';
import { apiNode, apiService, apiSlice } from '../../support/fake-apiserver.js';

type ListCall = { kind: 'list'; rv: string; signal: AbortSignal; resolve(r: ListResult): void; reject(e: unknown): void };
type WatchCall = {
  kind: 'watch';
  rv: string;
  timeoutSeconds: number;
  signal: AbortSignal;
  send(ev: string | object): void;
  end(): void;
  fail(e: unknown): void;
};
type Call = ListCall | WatchCall;

/** A ListWatcher whose every list and watch call the test answers by hand. */
class ScriptedListWatcher implements ListWatcher {
  readonly calls: Call[] = [];
  private queued: Call[] = [];
  private waiting: ((c: Call) => void)[] = [];

  constructor(readonly resource: string) {}

  private push(c: Call): void {
    this.calls.push(c);
    const w = this.waiting.shift();
    if (w) w(c);
    else this.queued.push(c);
  }

  get unanswered(): number { return this.queued.length; }

  next(): Promise<Call> {
    const c = this.queued.shift();
    if (c) return Promise.resolve(c);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.resource}: no further list/watch call`)), 2000);
      this.waiting.push((call) => { clearTimeout(t); resolve(call); });
    });
  }

  async nextList(rv: string): Promise<ListCall> {
    const c = await this.next();
    expect([c.kind, c.rv]).toEqual(['list', rv]);
    return c as ListCall;
  }

  async nextWatch(rv: string): Promise<WatchCall> {
    const c = await this.next();
    expect([c.kind, c.rv]).toEqual(['watch', rv]);
    return c as WatchCall;
  }

  list(rv: string, signal: AbortSignal): Promise<ListResult> {
    return new Promise((resolve, reject) => {
      signal.addEventListener('abort', () => reject(new Error('aborted')));
      this.push({ kind: 'list', rv, signal, resolve, reject });
    });
  }

  watch(o: WatchOptions, onLine: (line: string) => void, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      let done = false;
      const settle = (f: () => void): void => { if (!done) { done = true; f(); } };
      signal.addEventListener('abort', () => settle(() => reject(new Error('aborted'))));
      this.push({
        kind: 'watch',
        rv: o.resourceVersion,
        timeoutSeconds: o.timeoutSeconds,
        signal,
        send: (ev) => { if (!done) onLine(typeof ev === 'string' ? ev : JSON.stringify(ev)); },
        end: () => settle(resolve),
        fail: (e) => settle(() => reject(e)),
      });
    });
  }
}

/** Sleeps are recorded and return at once; time moves only by what was slept (or by hand). */
class FakeClock implements SourceClock {
  t = 1_000_000;
  readonly sleeps: number[] = [];
  now(): number { return this.t; }
  async sleep(ms: number): Promise<void> {
    this.sleeps.push(ms);
    this.t += ms;
  }
}

const rv = <T extends Record<string, any>>(o: T, version: number): T => ({ ...o, metadata: { ...o.metadata, resourceVersion: String(version) } });
const list = (items: object[], version: number): ListResult => ({ items, resourceVersion: String(version) });
const status410 = { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410, message: 'too old resource version: 5 (90)' };

function setup(opts: { proxyName?: string; node?: boolean; random?: number } = {}) {
  const state = new ProxyState({ nodeName: 'node-a', families: [4], proxyName: opts.proxyName });
  const svcs = new ScriptedListWatcher('services');
  const eps = new ScriptedListWatcher('endpointslices');
  const nodes = new ScriptedListWatcher('nodes');
  const clock = new FakeClock();
  const logs: string[] = [];
  const batches: boolean[] = [];
  const source = new ListWatchSource({
    nodeName: 'node-a',
    proxyName: opts.proxyName,
    services: svcs,
    endpointSlices: eps,
    node: opts.node ? nodes : null,
    clock,
    random: () => opts.random ?? 0.5,
    log: (m) => logs.push(m),
  });
  let onBatch: (want: boolean) => void = () => {};
  source.start(state, (want) => { batches.push(want); onBatch(want); });
  /** Applies pending changes and returns family 4's model as plain data. */
  const view = () => {
    state.sync();
    const m = state.families.get(4)!.model;
    return {
      services: [...m.services.values()].map((s) => `${s.id}=${s.clusterIP}:${s.port}`).sort(),
      endpoints: Object.fromEntries([...m.endpoints].map(([id, e]) => [id, e.map((x) => x.endpoint)])),
    };
  };
  const setOnBatch = (f: (want: boolean) => void) => { onBatch = f; };
  return { state, svcs, eps, nodes, clock, logs, batches, source, view, setOnBatch };
}

/** Both initial lists answered; returns the open watches. */
async function synced(t: ReturnType<typeof setup>, services: object[] = [], slices: object[] = []) {
  (await t.svcs.nextList('0')).resolve(list(services, 10));
  (await t.eps.nextList('0')).resolve(list(slices, 20));
  return { svcWatch: await t.svcs.nextWatch('10'), epsWatch: await t.eps.nextWatch('20') };
}

const settle = () => new Promise((r) => setTimeout(r, 0));

describe('ListWatchReflector: lists, sync gating and watch events', () => {
  it('signals no sync before both initial lists, then the listed objects are in the model', async () => {
    const t = setup();
    (await t.svcs.nextList('0')).resolve(list([apiService('web', '10.96.0.10')], 10));
    await t.svcs.nextWatch('10');
    expect(t.state.initialized).toBe(false);
    expect(t.source.synced).toBe(false);
    expect(t.state.sync()).toEqual([]);
    (await t.eps.nextList('0')).resolve(list([apiSlice('web-1', 'web', ['10.0.0.1'])], 20));
    await t.eps.nextWatch('20');
    expect(t.source.synced).toBe(true);
    expect(t.state.initialized).toBe(true);
    expect(t.batches.at(-1)).toBe(true);
    expect(t.view()).toEqual({
      services: ['default/web:http/TCP=10.96.0.10:80'],
      endpoints: { 'default/web:http/TCP': ['10.0.0.1:8080'] },
    });
    await t.source.stop();
  });

  it('applies ADDED, MODIFIED and DELETED and resumes from the last event version', async () => {
    const t = setup();
    const { svcWatch } = await synced(t, [apiService('web', '10.96.0.10')]);
    t.view();
    svcWatch.send({ type: 'ADDED', object: rv(apiService('api', '10.96.0.11'), 11) });
    expect(t.view().services).toEqual(['default/api:http/TCP=10.96.0.11:80', 'default/web:http/TCP=10.96.0.10:80']);
    svcWatch.send({ type: 'MODIFIED', object: rv(apiService('web', '10.96.0.10', 81), 12) });
    expect(t.view().services).toEqual(['default/api:http/TCP=10.96.0.11:80', 'default/web:http/TCP=10.96.0.10:81']);
    svcWatch.send({ type: 'DELETED', object: rv(apiService('api', '10.96.0.11'), 13) });
    expect(t.view().services).toEqual(['default/web:http/TCP=10.96.0.10:81']);
    expect(t.source.reflector('Service')!.resourceVersion).toBe('13');
    expect(svcWatch.timeoutSeconds).toBeGreaterThanOrEqual(300);
    expect(svcWatch.timeoutSeconds).toBeLessThan(600);
    // A clean end after events: rewatch at once, from the last version, without back-off.
    svcWatch.end();
    await t.svcs.nextWatch('13');
    expect(t.clock.sleeps).toEqual([]);
    await t.source.stop();
  });

  it('a BOOKMARK moves the resume version: the reconnect asks for it', async () => {
    const t = setup();
    const { svcWatch } = await synced(t);
    svcWatch.send({ type: 'BOOKMARK', object: { kind: 'Service', apiVersion: 'v1', metadata: { resourceVersion: '57' } } });
    expect(t.source.reflector('Service')!.resourceVersion).toBe('57');
    svcWatch.fail(new Error('connection reset'));
    await t.svcs.nextWatch('57');
    expect(t.svcs.calls.filter((c) => c.kind === 'list')).toHaveLength(1);
    expect(t.source.stats().services!.bookmarks).toBe(1);
    await t.source.stop();
  });
});

describe('ListWatchReflector: 410 Gone and relists', () => {
  it('an ERROR 410 relists at the last version and applies the diff in one step', async () => {
    const t = setup();
    const { svcWatch, epsWatch } = await synced(
      t,
      [apiService('web', '10.96.0.10'), apiService('api', '10.96.0.11')],
      [apiSlice('web-1', 'web', ['10.0.0.1']), apiSlice('api-1', 'api', ['10.0.0.2'])],
    );
    t.view();
    svcWatch.send({ type: 'MODIFIED', object: rv(apiService('web', '10.96.0.10'), 15) });
    svcWatch.send({ type: 'ERROR', object: status410 });
    expect(svcWatch.signal.aborted).toBe(true);
    const relist = await t.svcs.nextList('15');
    // Until the relist arrives nothing is taken away.
    expect(t.view().services).toHaveLength(2);
    const seen: SyncPlan[][] = [];
    const before = t.batches.length;
    t.setOnBatch(() => seen.push(t.state.sync()));
    relist.resolve(list([rv(apiService('web', '10.96.0.10', 8080), 30), rv(apiService('db', '10.96.0.12'), 31)], 31));
    await t.svcs.nextWatch('31');
    // One notification, and by then every change of the relist was pending together.
    expect(t.batches.length - before).toBe(1);
    expect(seen).toHaveLength(1);
    expect(seen[0]![0]!.changedServices).toEqual(new Set(['default/api', 'default/db', 'default/web']));
    expect([...seen[0]![0]!.model.services.keys()].sort()).toEqual(['default/db:http/TCP', 'default/web:http/TCP']);
    expect(seen[0]![0]!.model.services.get('default/web:http/TCP')!.port).toBe(8080);
    // The same for slices: a relist without api-1 removes its endpoints.
    epsWatch.send({ type: 'ERROR', object: status410 });
    (await t.eps.nextList('20')).resolve(list([apiSlice('web-1', 'web', ['10.0.0.1'])], 40));
    await t.eps.nextWatch('40');
    expect(Object.keys(t.view().endpoints)).toEqual(['default/web:http/TCP']);
    expect(t.source.stats().services).toMatchObject({ relists: 1, expired: 1, deletes: 1, adds: 3 });
    await t.source.stop();
  });

  it('an HTTP 410 on the watch, then on the relist, falls back to a consistent read', async () => {
    const t = setup();
    const { svcWatch } = await synced(t, [apiService('web', '10.96.0.10')]);
    svcWatch.fail(new ApiStatusError(410, 'Expired', 'too old resource version: 10 (50)'));
    (await t.svcs.nextList('10')).reject(new ApiStatusError(410, 'Expired', 'too old resource version: 10 (50)'));
    (await t.svcs.nextList('')).resolve(list([], 60));
    await t.svcs.nextWatch('60');
    // One back-off for the watch; the consistent relist follows the expired one at once (reflector.go).
    expect(t.clock.sleeps).toHaveLength(1);
    expect(t.view().services).toEqual([]);
    expect(t.source.stats().services!.expired).toBe(2);
    await t.source.stop();
  });

  it('an invalid item in a relist keeps what was applied for it', async () => {
    const t = setup();
    const { svcWatch } = await synced(t, [apiService('web', '10.96.0.10'), apiService('api', '10.96.0.11')]);
    svcWatch.send({ type: 'ERROR', object: status410 });
    const broken = apiService('web', '10.96.0.10', 70000);
    (await t.svcs.nextList('10')).resolve(list([broken], 12));
    await t.svcs.nextWatch('12');
    expect(t.view().services).toEqual(['default/web:http/TCP=10.96.0.10:80']);
    expect(t.source.stats().services!.garbageInvalid).toBe(1);
    await t.source.stop();
  });
});

describe('ListWatchReflector: back-off and resume', () => {
  it('back-off doubles from 800 ms to a 30 s cap with up to 100 % jitter', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 9].map((s) => backoffDelay(s, 0))).toEqual([800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]);
    expect(backoffDelay(0, 0.5)).toBe(1200);
    expect(backoffDelay(20, 0.999)).toBeLessThan(60_000);
    expect(backoffDelay(20, 0.999)).toBeGreaterThan(59_000);
  });

  it('a connection dropped mid-stream after events rewatches at once from the last version; one dropped within a second with nothing backs off', async () => {
    const t = setup({ random: 0 });
    const { svcWatch } = await synced(t, [apiService('web', '10.96.0.10')]);
    svcWatch.send({ type: 'ADDED', object: rv(apiService('api', '10.96.0.11'), 11) });
    svcWatch.fail(new WatchStreamDropped('read ECONNRESET'));
    const w2 = await t.svcs.nextWatch('11');
    expect(t.clock.sleeps).toEqual([]);
    // Nothing came, and it lasted no second: reflector.go's very short watch.
    w2.fail(new WatchStreamDropped('socket hang up'));
    const w3 = await t.svcs.nextWatch('11');
    expect(t.clock.sleeps).toEqual([800]);
    // A quiet watch that lasted longer ends like a clean close.
    t.clock.t += 5000;
    w3.fail(new WatchStreamDropped('socket hang up'));
    await t.svcs.nextWatch('11');
    expect(t.clock.sleeps).toEqual([800]);
    expect(t.source.stats().services).toMatchObject({ drops: 3, lists: 1, relists: 0 });
    await t.source.stop();
  });

  it('a watch that fails backs off and resumes from the last version without duplicates or losses', async () => {
    const t = setup({ random: 0 });
    const { svcWatch } = await synced(t, [apiService('web', '10.96.0.10')]);
    svcWatch.send({ type: 'ADDED', object: rv(apiService('api', '10.96.0.11'), 11) });
    svcWatch.fail(new Error('socket hang up'));
    const w2 = await t.svcs.nextWatch('11');
    expect(t.clock.sleeps).toEqual([800]);
    // A server replaying the last event must not double anything; the next one must land.
    w2.send({ type: 'ADDED', object: rv(apiService('api', '10.96.0.11'), 11) });
    w2.send({ type: 'MODIFIED', object: rv(apiService('api', '10.96.0.11', 82), 12) });
    expect(t.view().services).toEqual(['default/api:http/TCP=10.96.0.11:82', 'default/web:http/TCP=10.96.0.10:80']);
    expect(t.source.stats().services).toMatchObject({ adds: 2, updates: 1, lists: 1, relists: 0 });
    // Consecutive failures grow the delay; two quiet minutes reset it.
    w2.fail(new Error('reset'));
    (await t.svcs.nextWatch('12')).fail(new Error('reset'));
    const w4 = await t.svcs.nextWatch('12');
    expect(t.clock.sleeps).toEqual([800, 1600, 3200]);
    t.clock.t += 121_000;
    w4.fail(new Error('reset'));
    await t.svcs.nextWatch('12');
    expect(t.clock.sleeps.at(-1)).toBe(800);
    await t.source.stop();
  });

  it('a non-410 ERROR event and a very short empty watch back off and rewatch, never relist', async () => {
    const t = setup({ random: 0 });
    const { svcWatch } = await synced(t);
    svcWatch.send({ type: 'ERROR', object: { kind: 'Status', code: 500, reason: 'InternalError', message: 'etcd unavailable' } });
    const w2 = await t.svcs.nextWatch('10');
    w2.end(); // closed at once with nothing sent
    await t.svcs.nextWatch('10');
    expect(t.clock.sleeps).toEqual([800, 1600]);
    expect(t.svcs.calls.filter((c) => c.kind === 'list')).toHaveLength(1);
    expect(t.logs.some((l) => l.includes('etcd unavailable'))).toBe(true);
    await t.source.stop();
  });

  it('a failed initial list backs off and retries; no sync is signalled meanwhile', async () => {
    const t = setup({ random: 0 });
    (await t.svcs.nextList('0')).reject(new ApiStatusError(503, 'ServiceUnavailable', 'apiserver starting'));
    (await t.eps.nextList('0')).resolve(list([], 20));
    expect(t.state.initialized).toBe(false);
    (await t.svcs.nextList('0')).resolve({ items: 'nope' } as unknown as ListResult);
    (await t.svcs.nextList('0')).resolve(list([], 10));
    await t.svcs.nextWatch('10');
    expect(t.clock.sleeps).toEqual([800, 1600]);
    expect(t.state.initialized).toBe(true);
    await t.source.stop();
  });

  it('stop() aborts the open watch and no call follows', async () => {
    const t = setup();
    const { svcWatch, epsWatch } = await synced(t);
    await t.source.stop();
    expect(svcWatch.signal.aborted && epsWatch.signal.aborted).toBe(true);
    await settle();
    expect(t.svcs.unanswered + t.eps.unanswered).toBe(0);
  });
});

describe('ListWatchReflector: garbage and selectors', () => {
  it('skips events whose objects are invalid and keeps the stream', async () => {
    const t = setup();
    const { svcWatch } = await synced(t, [apiService('web', '10.96.0.10')]);
    t.view();
    svcWatch.send({ type: 'MODIFIED', object: rv(apiService('web', '10.96.0.10', 70000), 14) });
    svcWatch.send({ type: 'ADDED', object: { kind: 'Pod', metadata: { name: 'p' } } });
    svcWatch.send({ type: 'DELETED', object: { metadata: {} } });
    svcWatch.send({ type: 'BOOKMARK', object: { kind: 'Service', metadata: {} } });
    svcWatch.send('');
    svcWatch.send({ type: 'ADDED', object: rv(apiService('api', '10.96.0.11'), 15) });
    expect(t.view().services).toEqual(['default/api:http/TCP=10.96.0.11:80', 'default/web:http/TCP=10.96.0.10:80']);
    expect(t.source.stats().services).toMatchObject({ garbageMalformed: 1, garbageInvalid: 3, events: 1, watches: 1, relists: 0 });
    expect(svcWatch.signal.aborted).toBe(false);
    expect(t.source.reflector('Service')!.resourceVersion).toBe('15');
    await t.source.stop();
  });

  for (const [what, line] of [['not JSON', '{"type": "ADDED", "object": {'], ['no event type', '[1, 2, 3]'], ['an unknown event type', { type: 'SHRUG', object: {} }]] as const) {
    it(`a line that is ${what} ends the watch; after the back-off a relist at the last version brings what it carried`, async () => {
      const t = setup({ random: 0 });
      const { svcWatch } = await synced(t, [apiService('web', '10.96.0.10'), apiService('api', '10.96.0.11')]);
      svcWatch.send({ type: 'MODIFIED', object: rv(apiService('api', '10.96.0.11', 82), 11) });
      svcWatch.send(line);
      expect(svcWatch.signal.aborted).toBe(true);
      (await t.svcs.nextList('11')).resolve(list([apiService('api', '10.96.0.11', 82)], 12));
      await t.svcs.nextWatch('12');
      expect(t.clock.sleeps).toEqual([800]);
      expect(t.view().services).toEqual(['default/api:http/TCP=10.96.0.11:82']);
      expect(t.source.stats().services).toMatchObject({ relists: 1, expired: 0 });
      await t.source.stop();
    });
  }

  it('skips Services naming another proxy and headless slices; an object gaining the label goes away', async () => {
    const t = setup();
    const other = { 'service.kubernetes.io/service-proxy-name': 'other' };
    const headless = { 'service.kubernetes.io/headless': '' };
    const { svcWatch, epsWatch } = await synced(
      t,
      [apiService('web', '10.96.0.10'), apiService('alt', '10.96.0.20', 80, other)],
      [apiSlice('web-1', 'web', ['10.0.0.1']), apiSlice('web-h', 'web', ['10.0.0.9'], headless)],
    );
    expect(t.view()).toEqual({ services: ['default/web:http/TCP=10.96.0.10:80'], endpoints: { 'default/web:http/TCP': ['10.0.0.1:8080'] } });
    epsWatch.send({ type: 'MODIFIED', object: rv(apiSlice('web-1', 'web', ['10.0.0.1'], headless), 21) });
    svcWatch.send({ type: 'MODIFIED', object: rv(apiService('web', '10.96.0.10', 80, other), 11) });
    expect(t.view()).toEqual({ services: [], endpoints: {} });
    expect(t.source.stats().services!.filtered).toBe(2);
    expect(labelSelectorFor({})).toBe('!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless');
    await t.source.stop();
  });

  it('with a proxy name, only the Services naming it are served', async () => {
    const t = setup({ proxyName: 'svcplane' });
    const mine = { 'service.kubernetes.io/service-proxy-name': 'svcplane' };
    await synced(t, [apiService('web', '10.96.0.10'), apiService('mine', '10.96.0.30', 80, mine)]);
    expect(t.view().services).toEqual(['default/mine:http/TCP=10.96.0.30:80']);
    expect(labelSelectorFor({ proxyName: 'svcplane' })).toBe('service.kubernetes.io/service-proxy-name=svcplane,!service.kubernetes.io/headless');
    await t.source.stop();
  });

  it('applies only this node; its zone label reaches ProxyState', async () => {
    const t = setup({ node: true });
    await synced(t);
    t.view();
    (await t.nodes.nextList('0')).resolve(list([apiNode('node-b', 'z9'), apiNode('node-a', 'z1')], 5));
    const w = await t.nodes.nextWatch('5');
    expect(t.state.topologyLabels).toEqual({ 'topology.kubernetes.io/zone': 'z1' });
    w.send({ type: 'MODIFIED', object: rv(apiNode('node-a', 'z2'), 6) });
    expect(t.state.topologyLabels).toEqual({ 'topology.kubernetes.io/zone': 'z2' });
    expect(t.state.sync()[0]!.changedServices).toBeNull();
    w.send({ type: 'DELETED', object: rv(apiNode('node-a', 'z2'), 7) });
    expect(t.state.topologyLabels).toEqual({});
    expect(nodeFieldSelector('node-a')).toBe('metadata.name=node-a');
    await t.source.stop();
  });
});
