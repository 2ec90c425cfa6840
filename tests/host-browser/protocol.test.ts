// The worker protocol without a browser: calls matched to replies by id, progress routed to the
// right call, errors carried back as rejections, calls answered one at a time in order, and
// anything that is not a message of the protocol ignored.
import { describe, it, expect } from 'vitest';
import { CoreClient, serve, isNotice, isReply, isRequest, type Handlers, type IdleWork, type Notice, type Port } from '../../host-browser/src/protocol.js';
import { LARGEST_WARM_SCENE, Warmer, WARM_SCENES } from '../../host-browser/src/engine/warm.js';

/** Two ports joined like a Worker and its global scope: posts arrive asynchronously, cloned. */
function channel(): [Port, Port] {
  const a: Port = { onmessage: null, postMessage: (m) => queueMicrotask(() => b.onmessage?.({ data: structuredClone(m) })) };
  const b: Port = { onmessage: null, postMessage: (m) => queueMicrotask(() => a.onmessage?.({ data: structuredClone(m) })) };
  return [a, b];
}

const emptyTrace = { steps: [], outcomes: [], truncated: false, existing: false, rules: [] };

function handlers(log: string[]): Handlers {
  return {
    load: async (p, progress) => {
      progress({ phase: 'generating objects', done: 1, total: 2 });
      await new Promise((r) => setTimeout(r, 20));
      progress({ phase: 'generating objects', done: 2, total: 2 });
      log.push(`load ${p.mode}`);
      return { issues: [], change: { full: true, changedServices: [], rewrittenChains: [], diff: { added: [], removed: [], addedTotal: 0, removedTotal: 0 }, changedChains: { names: [], count: 0 } }, views: [], services: [], serviceCount: 0, ms: 1, phases: [] };
    },
    packet: (p) => {
      log.push(`packet ${p.packet.dport}`);
      return { trace: emptyTrace, conntrack: [] };
    },
    send: () => { throw new Error('no objects loaded yet'); },
    conntrack: (p) => [{ proto: 'tcp', original: 'a', reply: 'b', state: 'SYN_SENT', expiresInS: p.nowMs, nat: '-' }],
    compare: () => [],
  };
}

const packet = { src: '10.244.1.5', dst: '10.96.0.80', proto: 'tcp' as const, sport: 1, dport: 80, local: false };

describe('worker protocol', () => {
  it('matches replies to calls and routes progress to its own call', async () => {
    const [page, worker] = channel();
    const log: string[] = [];
    serve(worker, handlers(log));
    const client = new CoreClient(page);
    const notes: string[] = [];
    const load = client.call('load', { source: { preset: 'clusterip' }, mode: 'iptables', scheduler: 'rr', fresh: true }, (n) => notes.push(`${n.phase} ${n.done}/${n.total}`));
    const ct = client.call('conntrack', { nowMs: 7 });
    expect(client.busy).toBe(2);
    const [l, c] = await Promise.all([load, ct]);
    expect(l.serviceCount).toBe(0);
    expect(c[0]!.expiresInS).toBe(7);
    expect(notes).toEqual(['generating objects 1/2', 'generating objects 2/2']);
    expect(client.busy).toBe(0);
  });

  it('answers in arrival order even when an earlier call takes longer', async () => {
    const [page, worker] = channel();
    const log: string[] = [];
    serve(worker, handlers(log));
    const client = new CoreClient(page);
    await Promise.all([
      client.call('load', { source: { preset: 'clusterip' }, mode: 'ipvs', scheduler: 'rr', fresh: true }),
      client.call('packet', { packet, nowMs: 0, send: false }),
    ]);
    expect(log).toEqual(['load ipvs', 'packet 80']);
  });

  it('turns a failing call into a rejection with its message and keeps serving', async () => {
    const [page, worker] = channel();
    serve(worker, handlers([]));
    const client = new CoreClient(page);
    await expect(client.call('send', { packet, nowMs: 0, count: 10 })).rejects.toThrow('no objects loaded yet');
    await expect(client.call('conntrack', { nowMs: 3 })).resolves.toHaveLength(1);
  });

  it('rejects an unknown method and ignores foreign messages', async () => {
    const [page, worker] = channel();
    serve(worker, handlers([]));
    const client = new CoreClient(page);
    await expect(client.call('nope' as 'conntrack', { nowMs: 0 })).rejects.toThrow('unknown method "nope"');
    worker.postMessage({ hello: 'world' });              // not a reply: the client ignores it
    worker.postMessage({ id: 999, kind: 'ok', value: 1 }); // a reply to no call
    page.postMessage('garbage');                          // not a request: the worker ignores it
    await expect(client.call('conntrack', { nowMs: 1 })).resolves.toHaveLength(1);
    expect(isRequest({ id: 1.5, method: 'load', params: {} })).toBe(false);
    expect(isReply({ id: 1, kind: 'done' })).toBe(false);
  });

  /** Idle work of `steps` steps that logs each one (and fails at step `failAt`). */
  function idleLog(log: string[], steps: number, failAt = -1): IdleWork {
    let n = 0;
    return {
      step: async () => {
        await new Promise((r) => setTimeout(r, 5));
        if (n === failAt) throw new Error('step broke');
        log.push(`idle ${++n}`);
        return n < steps;
      },
      get report() { return { steps: n, ms: 5 * n }; },
    };
  }
  const until = async (ok: () => boolean) => { for (let k = 0; k < 400 && !ok(); k++) await new Promise((r) => setTimeout(r, 5)); };

  it('takes idle steps only after the first call and between calls, then gives notice', async () => {
    const [page, worker] = channel();
    const log: string[] = [];
    serve(worker, handlers(log), idleLog(log, 3));
    const notices: Notice[] = [];
    const client = new CoreClient(page, (n) => notices.push(n));
    await new Promise((r) => setTimeout(r, 30));
    expect(log).toEqual([]);                                   // nothing before the first call
    await client.call('packet', { packet, nowMs: 0, send: false });
    await until(() => log.includes('idle 1'));
    // A call made during the idle work runs after the current step, before the next.
    await client.call('packet', { packet: { ...packet, dport: 81 }, nowMs: 0, send: false });
    await until(() => notices.length > 0);
    const calls = log.indexOf('packet 81');
    expect(log.filter((l) => l.startsWith('idle'))).toEqual(['idle 1', 'idle 2', 'idle 3']);
    expect(calls).toBeGreaterThan(log.indexOf('idle 1'));
    expect(notices).toEqual([{ id: 0, kind: 'idle-done', steps: 3, ms: 15 }]);
    // Done means done: later calls bring no more steps.
    await client.call('packet', { packet: { ...packet, dport: 82 }, nowMs: 0, send: false });
    await new Promise((r) => setTimeout(r, 30));
    expect(log.filter((l) => l.startsWith('idle'))).toHaveLength(3);
  });

  it('never starts a step while a call waits, nor a call during a step', async () => {
    const [page, worker] = channel();
    let sent = 0, started = 0, inStep = false, steps = 0;
    const clash: string[] = [];
    const h = handlers([]);
    const packetCall = h.packet;
    h.packet = (p, progress) => {
      started++;
      if (inStep) clash.push(`call ${p.packet.dport} during a step`);
      return packetCall(p, progress);
    };
    serve(worker, h, {
      step: async () => {
        if (sent !== started) clash.push(`step with ${sent - started} calls waiting`);
        inStep = true;
        await new Promise((r) => setTimeout(r, 3));
        inStep = false;
        return ++steps < 40;
      },
      get report() { return { steps, ms: 0 }; },
    });
    const client = new CoreClient(page);
    const call = (dport: number) => { sent++; return client.call('packet', { packet: { ...packet, dport }, nowMs: 0, send: false }); };
    await call(1);
    for (let k = 0; k < 20; k++) {
      await new Promise((r) => setTimeout(r, k % 4));
      await Promise.all([call(100 + k), call(200 + k)]);
    }
    await until(() => steps === 40);
    expect(clash).toEqual([]);
    expect(steps).toBe(40);
  });

  it('ends the idle work with the error of a failing step and keeps serving', async () => {
    const [page, worker] = channel();
    const log: string[] = [];
    serve(worker, handlers(log), idleLog(log, 5, 2));
    const notices: Notice[] = [];
    const client = new CoreClient(page, (n) => notices.push(n));
    await client.call('packet', { packet, nowMs: 0, send: false });
    await until(() => notices.length > 0);
    expect(notices[0]).toMatchObject({ steps: 2, error: 'step broke' });
    await expect(client.call('conntrack', { nowMs: 2 })).resolves.toHaveLength(1);
    expect(isNotice({ id: 0, kind: 'idle-done', steps: 1, ms: 1 })).toBe(true);
    expect(isNotice({ id: 1, kind: 'idle-done', steps: 1, ms: 1 })).toBe(false);
  });
});

describe('engine warm-up', () => {
  it('loads, views and traces its scenes, then stops', async () => {
    const w = new Warmer();
    let steps = 0;
    while (await w.step()) steps++;
    expect(steps + 1).toBe(WARM_SCENES.length);
    expect(w.report.steps).toBe(WARM_SCENES.length);
    expect(w.report.ms).toBeGreaterThan(0);
    expect(await w.step()).toBe(false);
    expect(w.report.steps).toBe(WARM_SCENES.length);
  });

  it('ends early once the page has loaded a scene as large as its largest', async () => {
    let largest = 0;
    const w = new Warmer(() => largest >= LARGEST_WARM_SCENE);
    expect(await w.step()).toBe(true);
    expect(w.report.steps).toBe(1);
    largest = LARGEST_WARM_SCENE - 1;
    expect(await w.step()).toBe(true);
    largest = LARGEST_WARM_SCENE;
    expect(await w.step()).toBe(false);
    expect(w.report.steps).toBe(2);
  });
});
