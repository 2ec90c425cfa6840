// `svcplane proxy --mode userspace` end to end, without root: the real command runs as an
// unprivileged user (uid 65534 through setpriv when the tests run as root), reads a manifests
// directory and listens per service port on 127.0.0.1; backends are servers on 127.0.0.2-4 started
// here. Everything is on loopback and free ephemeral ports: no namespace, device or route is made.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  unprivileged, startBackend, tcpAsk, udpAsk, UdpClient, LongConnection, freePort, spawnProxy, service, slices, eventually, NOBODY,
  type Backend, type ProxyProcess,
} from './userspace-support.js';

const run = unprivileged();
if (run.why) console.warn(`svcplane proxy --mode userspace end-to-end tests cannot run here: ${run.why}`);

interface Mapping { service: string; protocol: string; clusterIP: string; port: number; bind: string; listen?: string; listenPort?: number; error?: string }

const names = (lines: Array<string | undefined>): string[] => [...new Set(lines.map((l) => l?.split(' ')[0] ?? '?'))].sort();

describe.runIf(run.why === '')('svcplane proxy --mode userspace (unprivileged, loopback)', () => {
  let dir = '';
  let proxy: ProxyProcess | null = null;
  let backends: Backend[] = [];
  let metricsPort = 0;
  let healthzPort = 0;
  let webPort = 0;
  let emptyPort = 0;
  let echoPort = 0;
  let range: [number, number] = [0, 0];
  let deadPort = 0;
  let manifests: (omit?: { web?: string; echo?: string; twin?: boolean; late?: number }) => string = () => '';

  const write = (yaml: string): void => {
    const tmp = join(dir, '.cluster.yaml.tmp');
    writeFileSync(tmp, yaml, { mode: 0o644 });
    renameSync(tmp, join(dir, 'cluster.yaml'));
  };
  const services = async (): Promise<Mapping[]> => (await (await fetch(`http://127.0.0.1:${metricsPort}/services`)).json()) as Mapping[];
  const listenPort = async (svc: string, protocol = 'TCP'): Promise<number> => {
    const m = (await services()).find((x) => x.service === svc && x.protocol === protocol);
    if (!m?.listenPort) throw new Error(`${svc} ${protocol} not served: ${JSON.stringify(m)}`);
    return m.listenPort;
  };
  const inRange = (p: number): boolean => p >= range[0] && p <= range[1];

  beforeAll(async () => {
    backends = await Promise.all([['be1', '127.0.0.2'], ['be2', '127.0.0.3'], ['be3', '127.0.0.4']].map(([n, ip]) => startBackend(n!, ip!)));
    [webPort, emptyPort, echoPort, metricsPort, healthzPort, deadPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort('127.0.0.5')]);
    // A range of 40 ports inside the ephemeral range; ports some other process holds are skipped.
    const base = 40000 + 40 * Math.floor(Math.random() * 400);
    range = [base, base + 39];
    manifests = (o = {}) => [
      service('web', { clusterIP: '10.96.0.10', ports: [{ name: 'p', port: webPort, protocol: 'TCP' }] }),
      slices('web', 'TCP', backends.filter((b) => b.name !== o.web)),
      // The same port number as web: the second listener on 127.0.0.1 takes a port of the range.
      ...(o.twin === false ? [] : [service('www', { clusterIP: '10.96.0.11', ports: [{ name: 'p', port: webPort, protocol: 'TCP' }] }), slices('www', 'TCP', backends.slice(0, 1))]),
      service('sticky', { clusterIP: '10.96.0.12', sessionAffinity: 'ClientIP', ports: [{ name: 'p', port: 80, protocol: 'TCP' }] }),
      slices('sticky', 'TCP', backends),
      service('empty', { clusterIP: '10.96.0.13', ports: [{ name: 'p', port: emptyPort, protocol: 'TCP' }] }),
      service('echo', { clusterIP: '10.96.0.14', ports: [{ name: 'p', port: echoPort, protocol: 'UDP' }] }),
      slices('echo', 'UDP', backends.filter((b) => b.name !== o.echo)),
      // internalTrafficPolicy Local with endpoints on another node only: kube-proxy drops.
      service('local', { clusterIP: '10.96.0.15', internalTrafficPolicy: 'Local', ports: [{ name: 'p', port: 81, protocol: 'TCP' }] }),
      slices('local', 'TCP', backends, { nodeName: 'n2' }),
      // An endpoint nothing listens on (127.0.0.5, a port found free).
      service('dead', { clusterIP: '10.96.0.17', ports: [{ name: 'p', port: 82, protocol: 'TCP' }] }),
      slices('dead', 'TCP', [{ name: 'gone', ip: '127.0.0.5', tcpPort: deadPort, udpPort: deadPort, close: async () => {} }]),
      ...(o.late ? [service('late', { clusterIP: '10.96.0.16', ports: [{ name: 'p', port: o.late, protocol: 'TCP' }] }), slices('late', 'TCP', backends.slice(1, 2))] : []),
    ].join('');
    dir = mkdtempSync(join(tmpdir(), 'svp-userspace-'));
    chmodSync(dir, 0o755);
    write(manifests());
    proxy = spawnProxy(run.prefix, [
      '--manifests', dir, '--hostname-override', 'n1', '--node-ip', '127.0.0.1', '--service-cidr', '10.96.0.0/16',
      '--userspace-bind', '127.0.0.1', '--proxy-port-range', `${range[0]}-${range[1]}`,
      '--metrics-bind-address', `127.0.0.1:${metricsPort}`, '--healthz-bind-address', `127.0.0.1:${healthzPort}`,
    ]);
    const served = await eventually(() => services().catch(() => [] as Mapping[]), (m) => m.filter((x) => x.listenPort).length === 7, 15_000);
    if (served.filter((x) => x.listenPort).length !== 7) throw new Error(`proxy did not serve 7 ports:\n${proxy.out()}`);
  }, 30_000);

  afterAll(async () => {
    if (proxy && proxy.child.exitCode === null) {
      proxy.child.kill('SIGKILL');
      await proxy.exit;
    }
    await Promise.all(backends.map((b) => b.close()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('runs unprivileged and says where each service port is served', async () => {
    if (run.prefix.length > 0) expect(readFileSync(`/proc/${proxy!.child.pid}/status`, 'utf8')).toMatch(new RegExp(`\\nUid:\\s+${NOBODY}\\s`));
    const m = await services();
    const by = (s: string) => m.find((x) => x.service === s)!;
    expect(by('default/web:p')).toMatchObject({ protocol: 'TCP', clusterIP: '10.96.0.10', port: webPort, bind: '127.0.0.1', listen: `127.0.0.1:${webPort}` });
    expect(inRange(by('default/www:p').listenPort!)).toBe(true);
    // Port 80 only when this user may bind it (ip_unprivileged_port_start), else one of the range.
    const unprivStart = Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8'));
    const sticky = by('default/sticky:p').listenPort!;
    expect(sticky === 80 ? unprivStart <= 80 || run.prefix.length === 0 : inRange(sticky)).toBe(true);
    expect(by('default/echo:p')).toMatchObject({ protocol: 'UDP', listen: `127.0.0.1:${echoPort}` });
    expect(by('default/empty:p').listenPort).toBe(emptyPort);
    for (const x of m) expect(proxy!.out()).toContain(`${x.service} ${x.protocol} ${x.clusterIP}:${x.port} → listening on ${x.listen}`);
    expect((await fetch(`http://127.0.0.1:${healthzPort}/healthz`)).status).toBe(200);
  });

  it('reaches every endpoint, from the proxy\'s address (the client address is not preserved)', async () => {
    const r = await Promise.all(Array.from({ length: 30 }, () => tcpAsk(webPort, { from: '127.0.0.9' })));
    expect(r.filter((x) => x.error)).toEqual([]);
    expect(names(r.map((x) => x.line))).toEqual(['be1', 'be2', 'be3']);
    expect(new Set(r.map((x) => x.line!.split(' ')[1]))).not.toContain('127.0.0.9');
  });

  it('passes a half-close on and the endpoint\'s last words back', async () => {
    const c = await LongConnection.open(webPort);
    const first = await c.ask();
    const last = c.next();
    c.socket.end();
    expect(await last).toBe(`${first.split(' ')[0]} end`);
    await eventually(() => c.ended, (e) => e);
    expect(c.ended).toBe(true);
    c.close();
  });

  it('keeps a client address on one endpoint with ClientIP affinity', async () => {
    const port = await listenPort('default/sticky:p');
    for (const from of ['127.0.0.7', '127.0.0.8']) {
      const r = [];
      for (let i = 0; i < 8; i++) r.push(await tcpAsk(port, { from }));
      expect(r.filter((x) => x.error)).toEqual([]);
      expect(names(r.map((x) => x.line))).toHaveLength(1);
    }
  });

  it('resets a connection at once when the core has no endpoint for it', async () => {
    const t0 = Date.now();
    expect(await tcpAsk(emptyPort)).toEqual({ error: 'ECONNRESET' });
    // internalTrafficPolicy Local and no endpoint on this node: the core drops; the client is reset.
    expect(await tcpAsk(await listenPort('default/local:p'))).toEqual({ error: 'ECONNRESET' });
    expect(Date.now() - t0).toBeLessThan(1500);
  });

  it('resets the client when the endpoint the core chose refuses the connection', async () => {
    expect(await tcpAsk(await listenPort('default/dead:p'))).toEqual({ error: 'ECONNRESET' });
  });

  it('echoes UDP through every endpoint and closes idle sessions', async () => {
    const r = await Promise.all(Array.from({ length: 24 }, (_, i) => udpAsk(echoPort, `q${i}`)));
    expect(r.filter((x) => x === 'timeout')).toEqual([]);
    expect(names(r)).toEqual(['be1', 'be2', 'be3']);
    for (let i = 0; i < r.length; i++) expect(r[i]!.endsWith(` q${i}`)).toBe(true);
    // udpIdleTimeout (250 ms): no session stays open.
    const active = async (): Promise<string> => (await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()).match(/svcplane_userspace_active\{protocol="udp"\} (\d+)/)?.[1] ?? '?';
    expect(await eventually(active, (n) => n === '0', 3000)).toBe('0');
  });

  it('sends new connections away from a removed endpoint while an established one continues', async () => {
    const long = await LongConnection.open(webPort);
    const owner = (await long.ask()).split(' ')[0]!;
    write(manifests({ web: owner }));
    const others = await eventually(
      () => Promise.all(Array.from({ length: 12 }, () => tcpAsk(webPort))),
      (r) => r.every((x) => x.line && !x.line.startsWith(`${owner} `)),
      8000,
    );
    expect(others.filter((x) => x.error)).toEqual([]);
    expect(names(others.map((x) => x.line))).not.toContain(owner);
    expect(names(others.map((x) => x.line))).toHaveLength(2);
    expect((await long.ask()).split(' ')[0]).toBe(owner);
    long.close();
    write(manifests());
  });

  it('moves a live UDP session off an endpoint that left (its flow flushed, as kube-proxy does)', async () => {
    const client = new UdpClient();
    try {
      const owner = (await client.ask(echoPort, 'a')).split(' ')[0]!;
      expect(owner).toMatch(/^be\d$/);
      write(manifests({ echo: owner }));
      // Asking every 100 ms keeps the session from idling out: only the flush can move it.
      let reply = '';
      for (let i = 0; i < 80; i++) {
        reply = await client.ask(echoPort, `b${i}`);
        if (reply !== 'timeout' && !reply.startsWith(`${owner} `)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(reply).toMatch(/^be\d 127\.0\.0\.1 b\d+$/);
      expect(reply.startsWith(`${owner} `)).toBe(false);
    } finally {
      client.close();
      write(manifests());
    }
  });

  it('passes an endpoint\'s reset on to the client', async () => {
    const c = await LongConnection.open(webPort);
    await c.ask();
    c.socket.write('reset\n');
    await eventually(() => c.error, (e) => e !== '', 3000);
    expect(c.error).toBe('ECONNRESET');
    c.close();
  });

  it('opens and closes listeners as Services come and go', async () => {
    const twinPort = await listenPort('default/www:p');
    expect((await tcpAsk(twinPort)).line).toMatch(/^be1 /);
    const latePort = await freePort();
    write(manifests({ twin: false, late: latePort }));
    const m = await eventually(services, (x) => x.some((s) => s.service === 'default/late:p' && s.listenPort) && !x.some((s) => s.service === 'default/www:p'), 8000);
    expect(m.find((s) => s.service === 'default/late:p')?.listen).toBe(`127.0.0.1:${latePort}`);
    expect(m.some((s) => s.service === 'default/www:p')).toBe(false);
    expect((await tcpAsk(latePort)).line).toMatch(/^be2 /);
    expect(await tcpAsk(twinPort)).toEqual({ error: 'ECONNREFUSED' });
    expect(proxy!.out()).toContain(`default/www:p TCP closed 127.0.0.1:${twinPort}`);
  });

  it('counts what it did in /metrics', async () => {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const value = (re: RegExp): number => Number(text.match(re)?.[1] ?? NaN);
    expect(value(/svcplane_userspace_connections_total\{protocol="tcp",result="proxied"\} (\d+)/)).toBeGreaterThan(40);
    expect(value(/svcplane_userspace_connections_total\{protocol="udp",result="proxied"\} (\d+)/)).toBeGreaterThanOrEqual(24);
    expect(value(/svcplane_userspace_refused_total\{reason="reject"\} (\d+)/)).toBeGreaterThanOrEqual(1);
    expect(value(/svcplane_userspace_connections_total\{protocol="tcp",result="connect_failed"\} (\d+)/)).toBe(1);
    expect(value(/svcplane_conntrack_entries (\d+)/)).toBeGreaterThan(0);
    expect(text).toMatch(/kubeproxy_sync_proxy_rules_last_timestamp_seconds\{ip_family="IPv4"\} [1-9]/);
  });

  it('exits cleanly on SIGTERM and frees its ports', async () => {
    proxy!.child.kill('SIGTERM');
    expect(await proxy!.exit).toBe(0);
    expect(proxy!.out()).toContain('proxy: stopped (SIGTERM)');
    expect(await tcpAsk(webPort)).toEqual({ error: 'ECONNREFUSED' });
  });
});
