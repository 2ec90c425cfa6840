// kube-proxy's health check tests (pkg/proxy/healthcheck/healthcheck_test.go, kubernetes/kubernetes
// @ 898b9f80, Apache-2.0) replayed through svcplane's health servers (host-node/io/health.ts): the
// data in kube-proxy-healthcheck/ (README.md there). TestServer and
// TestServerWithSelectiveListeningAddress drive ServiceHealthServers over a recording listener (as
// the Go test's fake listener: open addresses, each server's handler called directly);
// TestHealthzServer and TestLivezServer drive ProxyHealth on a manual clock with the Go test's
// Node updates, and compare every answer's status, JSON body and request counters.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { goTime, nodeEligible, ProxyHealth, ServiceHealthServers } from '../../host-node/io/health.js';
import { loadObjects, type Node } from '../../host-node/kube/index.js';

const DIR = join(import.meta.dirname, 'kube-proxy-healthcheck');
const fixture = <T>(name: string): T => JSON.parse(readFileSync(join(DIR, `${name}.json`), 'utf8')) as T;

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
interface Answer { status: number; headers: Record<string, string>; body: string }

/** A listener that opens nothing: it records the open addresses and calls a server's handler on request. */
function recordingNet() {
  const handlers = new Map<string, Handler>();
  const open = async (handler: Handler, host: string, port: number): Promise<Server> => {
    const at = `${host}:${port}`;
    if (handlers.has(at)) throw new Error(`listen ${at}: EADDRINUSE`);
    handlers.set(at, handler);
    return { closeAllConnections() {}, close(done?: () => void) { handlers.delete(at); done?.(); } } as unknown as Server;
  };
  const get = (at: string): Answer => {
    const h = handlers.get(at);
    if (!h) throw new Error(`nothing listens on ${at}`);
    const a: Answer = { status: 0, headers: {}, body: '' };
    const res = {
      writeHead(status: number, headers: Record<string, string>) { a.status = status; a.headers = headers; },
      end(body: string) { a.body = body; },
      destroy() { a.status = -1; },
    };
    h({ url: '/healthz', method: 'GET' } as IncomingMessage, res as unknown as ServerResponse);
    return a;
  };
  return { handlers, open, get };
}

// ---- service health servers ----

interface ServiceStep {
  op: 'syncServices' | 'syncEndpoints' | 'setProxyHealthy' | 'expectServices' | 'expectListening' | 'request';
  services?: Record<string, number> | null; endpoints?: Record<string, number> | null; healthy?: boolean;
  count?: number; includes?: string[]; service?: string; port?: number;
  expect?: { status: number; headers: Record<string, string>; body: object };
}
interface ServiceTest { setup: { listenIPs: string[]; proxyHealthy: boolean }; steps: ServiceStep[] }

async function runServiceTest(t: ServiceTest): Promise<void> {
  const net = recordingNet();
  const health = { healthy: t.setup.proxyHealthy };
  const hc = new ServiceHealthServers(health, t.setup.listenIPs, () => {}, net.open);
  const answers = (nsn: string): Answer[] => t.setup.listenIPs.map((ip) => net.get(`${ip}:${hc.ports().get(nsn)}`));
  for (const [k, s] of t.steps.entries()) {
    const at = `step ${k + 1} (${s.op})`;
    if (s.op === 'syncServices') await hc.sync(new Map(Object.entries(s.services ?? {})));
    else if (s.op === 'syncEndpoints') hc.setEndpoints(new Map(Object.entries(s.endpoints ?? {})));
    else if (s.op === 'setProxyHealthy') health.healthy = s.healthy!;
    else if (s.op === 'expectServices') {
      expect(hc.ports().size, at).toBe(s.count);
      // The count a Service's server holds, as its answers carry it.
      for (const [nsn, n] of Object.entries(s.endpoints ?? {})) {
        for (const a of answers(nsn)) expect((JSON.parse(a.body) as { localEndpoints: number }).localEndpoints, `${at}: ${nsn}`).toBe(n);
      }
    } else if (s.op === 'expectListening') {
      expect(net.handlers.size, at).toBe(s.count);
      for (const addr of s.includes ?? []) expect([...net.handlers.keys()], at).toContain(addr);
    } else {
      expect(hc.ports().get(s.service!), `${at}: ${s.service}'s port`).toBe(s.port);
      for (const a of answers(s.service!)) {
        expect(a.status, at).toBe(s.expect!.status);
        expect(a.headers, at).toEqual(s.expect!.headers);
        expect(JSON.parse(a.body), at).toEqual(s.expect!.body);
      }
    }
  }
  await hc.close();
  expect(net.handlers.size).toBe(0);
}

// ---- proxy health (/healthz, /livez) ----

/** Where the manual clock starts: the Go test's time.Now(); every time in the data is ms after it. */
const T0 = Date.UTC(2026, 0, 1);

interface Family { lastUpdated: number | null; healthy: boolean }
interface ProxyStep {
  op: 'request' | 'updated' | 'queuedUpdate' | 'advanceClock' | 'updateNode';
  clockMs?: number; family?: 'IPv4' | 'IPv6'; ms?: number; node?: object; path?: '/healthz' | '/livez';
  expect?: {
    status: number;
    body: { lastUpdated: number | null; currentTime: number; healthy: boolean; nodeEligible: boolean | null; status: Record<string, Family> };
    metrics: Record<string, { '200': number; '503': number }>;
  };
}
interface ProxyTest { setup: { healthTimeout: number; node: object; handler: '/healthz' | '/livez' }; steps: ProxyStep[] }

const at = (ms: number | null): string => goTime(ms === null ? 0 : T0 + ms);
const readNode = (raw: object): Node => {
  const set = loadObjects([raw]);
  expect(set.issues).toEqual([]);
  return set.nodes[0]!;
};

function runProxyTest(t: ProxyTest): void {
  let now = T0;
  let node = readNode(t.setup.node);
  const h = new ProxyHealth(t.setup.healthTimeout, () => now, () => nodeEligible(node, false));
  const fam = (f: string): number => (f === 'IPv4' ? 4 : 6);
  for (const [k, s] of t.steps.entries()) {
    const where = `step ${k + 1} (${s.op}${s.clockMs !== undefined ? ` at ${s.clockMs} ms` : ''})`;
    if (s.op === 'advanceClock') now += s.ms!;
    else if (s.op === 'updated') h.updated(fam(s.family!));
    else if (s.op === 'queuedUpdate') h.queuedUpdate(fam(s.family!));
    else if (s.op === 'updateNode') node = readNode(s.node!);
    if (s.clockMs !== undefined) expect(now - T0, `${where}: the clock`).toBe(s.clockMs);
    if (s.op !== 'request') continue;
    const e = s.expect!;
    const a = h.answer(s.path!);
    expect(a.status, where).toBe(e.status);
    const body = JSON.parse(a.body) as Record<string, unknown>;
    // Families answer once they have synced (kube-proxy's status map holds only those), each as expected.
    const status = Object.fromEntries(Object.entries(e.body.status).filter(([, f]) => f.lastUpdated !== null).map(([name, f]) => [name, { lastUpdated: at(f.lastUpdated), healthy: f.healthy }]));
    expect(body, where).toEqual({
      lastUpdated: at(e.body.lastUpdated), currentTime: at(e.body.currentTime),
      ...(e.body.nodeEligible === null ? {} : { nodeEligible: e.body.nodeEligible }),
      healthy: e.body.healthy,
      ...(Object.keys(status).length > 0 ? { status } : {}),
    });
    for (const [name, counts] of Object.entries(e.metrics)) {
      expect(h.served[name === 'kubeproxy_proxy_healthz_total' ? 'healthz' : 'livez'], `${where}: ${name}`).toEqual(counts);
    }
  }
}

describe('kube-proxy healthcheck_test.go', () => {
  for (const name of ['TestServer', 'TestServerWithSelectiveListeningAddress']) {
    it(name, () => runServiceTest(fixture<ServiceTest>(name)));
  }
  for (const name of ['TestHealthzServer', 'TestLivezServer']) {
    it(name, () => runProxyTest(fixture<ProxyTest>(name)));
  }
});
