// The worker protocol without a browser: calls matched to replies by id, progress routed to the
// right call, errors carried back as rejections, calls answered one at a time in order, and
// anything that is not a message of the protocol ignored.
import { describe, it, expect } from 'vitest';
import { CoreClient, serve, isReply, isRequest, type Handlers, type Port } from '../../host-browser/src/protocol.js';

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
});
