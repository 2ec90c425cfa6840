// What a running proxy shows of its core on its metrics port. GET /trace traces a new connection
// through the live core (the rules of its last sync, its conntrack table and affinity as they are)
// and answers with the trace as `svcplane trace --json` prints it, under the proxy's mode and node
// addresses; `svcplane trace --proxy HOST:PORT` prints it. GET /conntrack lists the flows as
// /proc/net/nf_conntrack lists the kernel's, selected as `conntrack -L` selects, streamed a slice
// at a time; `svcplane conntrack --proxy HOST:PORT` prints it. A bad parameter is a 400 naming it;
// nothing in the core changes. A proxy in userspace mode (no root, no TUN, loopback only).
import { connect } from 'node:net';
import { describe, it, expect, afterAll, beforeAll } from 'vitest';
import type { NodeProxy } from '../../../host-node/io/node-proxy.js';
import { startUserspaceProxy, freePort, webManifests, type UserspaceProxy } from '../../support/userspace-proxy.js';
import { traceQueryOf, conntrackQueryOf, conntrackRoute, pacedShow, CONNTRACK_SLICE, SHOW_SLICE_MS, type ProxyTrace } from '../../../host-node/io/proxy-inspect.js';
import { runShowTool, showTool } from '../../../host-node/io/read-only-tools.js';
import { Dataplane } from '../../../host-node/dataplane.js';
import { isLoopback, RouteReply } from '../../../host-node/io/metrics.js';
import { runTrace } from '../../../host-node/cli/trace.js';
import { runConntrack, runShow } from '../../../host-node/cli/inspect.js';
import { buildPacket } from '../../../host-node/core/packet.js';
import { decodeSnapshot } from '../../../host-node/core/snapshot.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const VIP = '198.18.96.10';
const EPS = ['198.18.100.2', '198.18.100.3'];
const CLIENT = '198.18.50.1';
const MANIFESTS = webManifests(EPS, VIP);

/** Sends `text` as it is to 127.0.0.1:port and resolves with everything read back. */
function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1', () => sock.write(text));
    let got = '';
    sock.on('data', (b) => { got += b.toString(); });
    sock.on('end', () => resolve(got));
    sock.on('error', reject);
    sock.setTimeout(2000, () => { sock.destroy(); resolve(got); });
  });
}

describe('traceQueryOf', () => {
  const q = (s: string) => traceQueryOf(new URLSearchParams(s));
  it('reads a new connection, tcp from outside by default', () => {
    expect(q(`src=${CLIENT}&dst=${VIP}&dport=80`)).toEqual({ src: CLIENT, dst: VIP, proto: 'tcp', from: 'external', dport: 80, sport: 40000 });
    expect(q(`src=${CLIENT}&dst=${VIP}&dport=53&sport=5000&proto=UDP&from=local`)).toEqual({ src: CLIENT, dst: VIP, proto: 'udp', from: 'local', dport: 53, sport: 5000 });
    expect(q('src=fd00::1&dst=fd00::2&proto=icmp')).toMatchObject({ proto: 'icmpv6' });
  });
  it('refuses what it cannot read, naming the parameter', () => {
    expect(() => q(`dst=${VIP}&dport=80`)).toThrow(/^src is required/);
    expect(() => q(`src=${CLIENT}&dport=80`)).toThrow(/^dst is required/);
    expect(() => q(`src=${CLIENT}&dst=${VIP}`)).toThrow('dport is required for tcp');
    expect(() => q(`src=${CLIENT}&dst=${VIP}&dport=65536`)).toThrow('dport: not a port number: "65536"');
    expect(() => q(`src=${CLIENT}&dst=${VIP}&dport=80&sport=x`)).toThrow('sport: not a port number');
    expect(() => q(`src=${CLIENT}&dst=${VIP}&dport=80&proto=gre`)).toThrow('proto: tcp, udp, sctp or icmp, not "gre"');
    expect(() => q(`src=${CLIENT}&dst=${VIP}&dport=80&from=pod`)).toThrow('from: external or local, not "pod"');
    expect(() => q(`src=${CLIENT}&dst=${VIP}&dport=80&dprot=81`)).toThrow('unknown parameter "dprot"');
    expect(() => q(`src=${CLIENT}&dst=${VIP}&dport=80&dport=81`)).toThrow('dport given twice');
    expect(q(`src=${CLIENT}&dst=${VIP}&dport=80&flags=fa`)).toMatchObject({ flags: 'FA' });
    expect(() => q(`src=${CLIENT}&dst=${VIP}&dport=80&flags=SX`)).toThrow('flags: TCP flags as letters of FSRPAUEC');
    expect(() => q(`src=${CLIENT}&dst=${VIP}&dport=53&proto=udp&flags=S`)).toThrow('with proto tcp');
  });
});

describe('conntrackQueryOf', () => {
  it('reads conntrack -L\'s selection from the query, refusing what it cannot read by its parameter name', () => {
    expect(conntrackQueryOf(new URLSearchParams(`family=ipv4&proto=tcp&dst=${VIP}&reply-src=${EPS[0]}&dport=80`)))
      .toEqual({ family: 4, proto: 'tcp', dst: VIP, replySrc: EPS[0], dport: 80 });
    expect(() => conntrackQueryOf(new URLSearchParams('reply-src=x'))).toThrow('reply-src: not an IP address: "x"');
    expect(() => conntrackQueryOf(new URLSearchParams('dport=80'))).toThrow('dport needs proto');
    expect(() => conntrackQueryOf(new URLSearchParams('orig-dst=1.2.3.4'))).toThrow('unknown parameter "orig-dst"');
  });
});

/**
 * A userspace proxy serving MANIFESTS with its metrics address on a free loopback port, started
 * before the describe block's tests and stopped after them; `proxy` and `port` once started.
 */
function inspectedProxy(tmpPrefix: string): { proxy: NodeProxy; port: number } {
  const served = { proxy: undefined as unknown as NodeProxy, port: 0 };
  let running: UserspaceProxy | undefined;
  beforeAll(async () => {
    served.port = await freePort();
    running = await startUserspaceProxy({ 'web.yaml': MANIFESTS }, ['--node-ip', '198.18.200.1', '--metrics-bind-address', `127.0.0.1:${served.port}`], { tmpPrefix });
    served.proxy = running.proxy;
  });
  afterAll(() => running?.stop());
  return served;
}

describe('a running proxy\'s /trace and /conntrack', () => {
  const served = inspectedProxy('svp-trace-');
  const get = (query: string) => fetch(`http://127.0.0.1:${served.port}/trace?${query}`);

  it('traces through the live core: both endpoints, each with the rule that chose it; the core unchanged', async () => {
    // A real connection first, so the table is not empty.
    // On the proxy's clock, so the flow is live when traced.
    served.proxy.dp.process(buildPacket({ src: '198.18.50.9', dst: VIP, proto: 'tcp', sport: 1234, dport: 80, flags: 'S' }), served.proxy.clock());
    const before = { flows: served.proxy.dp.conntrack().length, stats: served.proxy.dp.stats(), save: served.proxy.dp.iptablesSave({ counters: true }) };
    const r = await get(`src=${CLIENT}&dst=${VIP}&dport=80`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/json');
    const body = await r.json() as ProxyTrace & { result: { outcomes: { exact: { numerator: string; denominatorLog2: number } }[] } };
    expect(body.mode).toBe('userspace');
    expect(body.nodeIPs).toEqual(['198.18.200.1']);
    expect(body.result.outcomes.map((o) => o.to).sort()).toEqual(EPS.map((e) => `${e}:8080`));
    for (const o of body.result.outcomes) {
      expect(o.exact).toEqual({ numerator: '1073741824', denominatorLog2: 31 });   // 1/2, the numerator as a decimal string
      expect(o.decidedBy.at(-1)!.text).toContain(`--to-destination ${o.to}`);
    }
    expect(body.result.steps.some((s) => s.chain === 'KUBE-SERVICES' && s.matched)).toBe(true);
    expect(served.proxy.dp.conntrack().length).toBe(before.flows);
    expect(served.proxy.dp.stats()).toEqual(before.stats);
    expect(served.proxy.dp.iptablesSave({ counters: true })).toBe(before.save);
  });

  it('answers 400 naming the parameter, for a query it cannot trace', async () => {
    for (const [query, message] of [
      [`dst=${VIP}&dport=80`, 'src is required'],
      [`src=${CLIENT}&dst=${VIP}&dport=http`, 'dport: not a port number: "http"'],
      [`src=nowhere&dst=${VIP}&dport=80`, 'nowhere'],
      [`src=fd00::1&dst=${VIP}&dport=80`, 'source and destination are of different families'],
    ] as const) {
      const r = await get(query);
      expect(r.status, query).toBe(400);
      expect(await r.text(), query).toContain(message);
    }
  });

  it('/show runs the listing commands over the live rules; svcplane show --proxy prints them; anything that changes a table is refused', async () => {
    const show = async (...args: string[]) => {
      const q = new URLSearchParams({ tool: args[0]! });
      for (const a of args.slice(1)) q.append('arg', a);
      const r = await fetch(`http://127.0.0.1:${served.port}/show?${q}`);
      return [r.status, await r.text()] as const;
    };
    expect(await show('iptables', '-t', 'nat', '-nvL', 'KUBE-SERVICES')).toEqual([200, served.proxy.dp.iptablesList('nat', 'KUBE-SERVICES', { verbose: true })]);
    expect(await show('iptables-save', '-c')).toEqual([200, served.proxy.dp.iptablesSave({ counters: true })]);
    expect(await show('iptables', '-F')).toEqual([400, expect.stringContaining('iptables: "-F": only -L / -S [CHAIN]')]);
    expect(await show('bash', '-c', 'id')).toEqual([400, 'tool: one of iptables-save, ip6tables-save, iptables, ip6tables, ipvsadm, ipset, recent, direct\n']);
    let out = '', err = '';
    expect(await runShow(['--proxy', `127.0.0.1:${served.port}`, 'iptables-save', '-t', 'nat'], (s) => { out += s; }, (s) => { err += s; })).toBe(0);
    expect(out).toBe(served.proxy.dp.iptablesSave({ table: 'nat' }));
    expect(err).toBe('');
    expect(await runShow(['--proxy', `127.0.0.1:${served.port}`, 'iptables', '-t', 'nat', '-D', 'KUBE-SERVICES', '1'], () => {}, (s) => { err += s; })).toBe(1);
    expect(err).toContain(`svcplane show: http://127.0.0.1:${served.port}: 400: iptables: "-D": only -L / -S`);
    expect(await runShow(['iptables', '-L'], () => {}, (s) => { err += s; })).toBe(2);
    expect(await runShow(['--proxy', `127.0.0.1:${served.port}`, 'nft', 'list', 'ruleset'], () => {}, (s) => { err += s; })).toBe(2);
  });

  it('random queries to /trace, /conntrack (GET and DELETE) and /show: each a 200 or a 400, never a 500, and the proxy serves on', async () => {
    let seed = 7;
    const rnd = (n: number) => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed % n; };
    const words = ['src', 'dst', 'dport', 'sport', 'proto', 'from', 'tool', 'arg', 'family', 'reply-src', 'x', '', '%zz', '-L', '-nvL', '-t', 'nat',
      'iptables', 'ipvsadm', 'iptables-save', 'ip6tables', '198.18.96.10', 'fd00::1', '80', '-1', '99999', 'tcp', 'udp', 'icmp', 'local', '-F', '-Ln', '-c',
      'KUBE-SERVICES', 'ipv6', '\u0000', 'a'.repeat(300)];
    const statuses = new Set<number>();
    for (let i = 0; i < 300; i++) {
      const path = ['/trace', '/conntrack', '/show'][rnd(3)]!;
      const parts = Array.from({ length: rnd(6) }, () => `${encodeURIComponent(words[rnd(words.length)]!)}=${rnd(4) === 0 ? words[rnd(words.length)] : encodeURIComponent(words[rnd(words.length)]!)}`);
      // A DELETE of /conntrack too (of a client no flow has: the later tests trace the flows here).
      const method = path === '/conntrack' && rnd(3) === 0 ? 'DELETE' : 'GET';
      if (method === 'DELETE') parts.push('src=198.18.255.254');
      const r = await fetch(`http://127.0.0.1:${served.port}${path}?${parts.join('&')}`, { method });
      await r.text();
      expect([200, 400], `${path}?${parts.join('&')}`).toContain(r.status);
      statuses.add(r.status);
    }
    expect([...statuses].sort()).toEqual([200, 400]);
    expect((await fetch(`http://127.0.0.1:${served.port}/healthz`)).status).toBe(200);
  });

  it('svcplane trace --proxy prints it as a local trace; --json as the proxy sent it', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l) };
    expect(await runTrace(['--proxy', `127.0.0.1:${served.port}`, '--src', CLIENT, '--dst', VIP, '--dport', '80'], io)).toBe(0);
    expect(err).toEqual([]);
    const text = out.join('\n');
    expect(out[1]).toBe(`rules: the running proxy at http://127.0.0.1:${served.port} (mode userspace), node addresses 198.18.200.1`);
    expect([...text.matchAll(/destination NAT: (\S+)/g)].map((m) => m[1]).sort()).toEqual(EPS.map((e) => `${e}:8080`));
    expect(text).toContain('probability 50% = 1/2^1');
    expect(text.match(/decided by:/g)).toHaveLength(2);
    expect(text).not.toContain('conntrack: an existing connection');
    // A connection the proxy holds (opened in the first test): its own NAT, said so.
    out.length = 0;
    expect(await runTrace(['--proxy', `127.0.0.1:${served.port}`, '--src', '198.18.50.9', '--sport', '1234', '--dst', VIP, '--dport', '80'], io)).toBe(0);
    expect(out.join('\n')).toMatch(/outcomes \(1\):[\s\S]*conntrack: an existing connection \(ctstate NEW\): its NAT applies, the nat rules are not consulted/);
    // --flags reaches the proxy: a lone RST can open no connection (tcp_new()), so it is INVALID.
    out.length = 0;
    expect(await runTrace(['--proxy', `127.0.0.1:${served.port}`, '--src', '198.18.50.9', '--sport', '1299', '--dst', VIP, '--dport', '80', '--flags', 'r', '--json'], io)).toBe(0);
    expect((JSON.parse(out.join('\n')) as ProxyTrace).result.outcomes.map((o) => o.ctstate)).toEqual(['INVALID']);
    out.length = 0;
    expect(await runTrace(['--proxy', `http://127.0.0.1:${served.port}`, '--src', CLIENT, '--dst', VIP, '--dport', '80', '--json'], io)).toBe(0);
    expect((JSON.parse(out.join('\n')) as ProxyTrace).result.outcomes).toHaveLength(2);
  });

  it('svcplane trace --proxy: what the proxy refuses, and no proxy there, exit 1; other sources with it, exit 2', async () => {
    const err: string[] = [];
    const io = { out: () => {}, err: (l: string) => err.push(l) };
    expect(await runTrace(['--proxy', `127.0.0.1:${served.port}`, '--src', CLIENT, '--dst', '198.18.96.11', '--dport', '80', '--proto', 'udp', '--from', 'local'], io)).toBe(0);
    const closed = await freePort();
    expect(await runTrace(['--proxy', `127.0.0.1:${closed}`, '--src', CLIENT, '--dst', VIP, '--dport', '80'], io)).toBe(1);
    expect(err.at(-1)).toBe(`svcplane trace: http://127.0.0.1:${closed}: ECONNREFUSED`);
    expect(await runTrace(['--proxy', `127.0.0.1:${served.port}`, '--rules', 'x', '--src', CLIENT, '--dst', VIP, '--dport', '80'], io)).toBe(2);
    expect(err.some((l) => l.includes('--proxy and --rules'))).toBe(true);
    expect(await runTrace(['--proxy', `127.0.0.1:${served.port}/metrics`, '--src', CLIENT, '--dst', VIP, '--dport', '80'], io)).toBe(2);
  });
});

describe('a running proxy\'s /conntrack over a large table', () => {
  const served = inspectedProxy('svp-ct-list-');

  it('lists every flow, the Service\'s and the rest, over many slices; selects as conntrack -L; the table unchanged', async () => {
    // Three slices' worth of connections to the Service from distinct client ports, and a UDP flow elsewhere.
    const n = 2 * CONNTRACK_SLICE + 100;
    const now = served.proxy.clock();
    for (let i = 0; i < n; i += 256) {
      served.proxy.dp.processBatch(Array.from({ length: Math.min(256, n - i) }, (_, k) =>
        buildPacket({ src: CLIENT, dst: VIP, proto: 'tcp', sport: 10000 + i + k, dport: 80, flags: 'S' })), now);
    }
    served.proxy.dp.process(buildPacket({ src: CLIENT, dst: '198.18.7.7', proto: 'udp', sport: 5353, dport: 53 }), now);
    const before = served.proxy.dp.conntrack(now).length;
    const all = await (await fetch(`http://127.0.0.1:${served.port}/conntrack`)).text();
    const lines = all.trimEnd().split('\n');
    expect(lines).toHaveLength(before);
    expect(new Set(lines.map((l) => /sport=(\d+) dport=80 /.exec(l)?.[1]).filter(Boolean)).size).toBe(n);
    for (const l of lines) expect(l).toMatch(/^ipv4     2 (tcp      6 (119|120) SYN_SENT|udp      17 (29|30)) src=198\.18\.50\.1 dst=\S+ sport=\d+ dport=\d+ \[UNREPLIED\] src=\S+ dst=198\.18\.50\.1 sport=\d+ dport=\d+ mark=\d+ zone=0 use=1$/);
    // To one endpoint, by reply source; the UDP flow alone; nothing for another client.
    const to = async (q: string) => (await (await fetch(`http://127.0.0.1:${served.port}/conntrack?${q}`)).text()).split('\n').filter(Boolean);
    const toFirst = await to(`reply-src=${EPS[0]}&proto=tcp&dport=80`);
    expect(toFirst.length).toBeGreaterThan(0);
    expect(toFirst.length).toBeLessThan(n);
    for (const l of toFirst) expect(l).toContain(`src=${EPS[0]} dst=${CLIENT} sport=8080`);
    expect(await to('proto=udp')).toEqual([expect.stringContaining('dst=198.18.7.7 sport=5353 dport=53')]);
    expect(await to('src=198.18.50.2')).toEqual([]);
    const bad = await fetch(`http://127.0.0.1:${served.port}/conntrack?proto=gre`);
    expect([bad.status, await bad.text()]).toEqual([400, 'proto: tcp, udp, sctp, icmp or icmpv6, not "gre"\n']);
    expect(served.proxy.dp.conntrack(now).length).toBe(before);

    // svcplane conntrack --proxy: the same lines, the count on stderr, conntrack -L's options.
    let out = '', err = '';
    const code = await runConntrack(['--proxy', `127.0.0.1:${served.port}`, '-L', '-p', 'tcp', '-r', EPS[0]!, '--dport', '80'], (s) => { out += s; }, (s) => { err += s; });
    expect(code).toBe(0);
    // The same flows (their seconds left may have ticked between the two listings).
    const untimed = (ls: string[]) => ls.map((l) => l.replace(/^(ipv4 +2 tcp +6 )\d+ /, '$1_ ')).sort();
    expect(untimed(out.split('\n').filter(Boolean))).toEqual(untimed(toFirst));
    expect(err).toBe(`svcplane conntrack: ${toFirst.length} flow entries have been shown.\n`);
    out = err = '';
    expect(await runConntrack(['--proxy', `127.0.0.1:${served.port}`, '-d', '198.18.7.7', '-f', 'ipv4'], (s) => { out += s; }, (s) => { err += s; })).toBe(0);
    expect(out.split('\n').filter(Boolean)).toHaveLength(1);
    // conntrack's other names: --dst for --orig-dst, --orig-port-dst for --dport.
    const oneLine = out;
    out = '';
    expect(await runConntrack(['--proxy', `127.0.0.1:${served.port}`, '--dst', '198.18.7.7'], (s) => { out += s; }, () => {})).toBe(0);
    expect(out).toBe(oneLine);
    out = '';
    expect(await runConntrack(['--proxy', `127.0.0.1:${served.port}`, '-p', 'tcp', '-r', EPS[0]!, '--orig-port-dst', '80'], (s) => { out += s; }, () => {})).toBe(0);
    expect(untimed(out.split('\n').filter(Boolean))).toEqual(untimed(toFirst));
    err = '';
    expect(await runConntrack(['--proxy', `127.0.0.1:${served.port}`, '-d', '198.18.7.7', '-f', 'ipv6'], () => {}, (s) => { err += s; })).toBe(2);
    expect(err).toContain('svcplane conntrack: --orig-dst 198.18.7.7: mismatched address family');
    err = '';
    expect(await runConntrack(['--proxy', `127.0.0.1:${served.port}`, '--dport', '80'], () => {}, (s) => { err += s; })).toBe(2);
    expect(err).toContain('svcplane conntrack: --dport needs --proto');
    err = '';
    expect(await runConntrack(['-s', CLIENT], () => {}, (s) => { err += s; })).toBe(2);
    expect(err).toContain('--proxy is required');
  });

  it('deletes as conntrack -D, over many slices, only for the node itself; svcplane conntrack -D and -F', async () => {
    const dp = served.proxy.dp;
    const now = served.proxy.clock();
    const n = 2 * CONNTRACK_SLICE + 100;
    for (let i = 0; i < n; i += 256) {
      dp.processBatch(Array.from({ length: Math.min(256, n - i) }, (_, k) =>
        buildPacket({ src: '198.18.50.3', dst: VIP, proto: 'tcp', sport: 10000 + i + k, dport: 80, flags: 'S' })), now);
    }
    dp.process(buildPacket({ src: CLIENT, dst: '198.18.7.7', proto: 'udp', sport: 5353, dport: 53 }), now);
    const count = () => dp.conntrack(served.proxy.clock()).length;
    const before = count();
    const proxy = ['--proxy', `127.0.0.1:${served.port}`];
    // Another address may list, not delete; a selection it cannot read deletes nothing.
    const route = conntrackRoute(dp, served.proxy.clock);
    const refused = route(new URLSearchParams('proto=udp'), { method: 'DELETE', loopback: false, body: false }) as RouteReply;
    expect([refused.status, refused.body]).toEqual([403, 'deleting flows: only from the node itself (a loopback address)\n']);
    expect(route(new URLSearchParams('proto=udp'), { method: 'GET', loopback: false, body: false })).not.toBeInstanceOf(RouteReply);
    const bad = await fetch(`http://127.0.0.1:${served.port}/conntrack?proto=gre`, { method: 'DELETE' });
    expect([bad.status, await bad.text()]).toEqual([400, 'proto: tcp, udp, sctp, icmp or icmpv6, not "gre"\n']);
    expect(count()).toBe(before);
    // A body (a filter this route would not read, or one cut short) deletes nothing.
    for (const body of ['{"proto":"tcp"}', 'x']) {
      const r = await fetch(`http://127.0.0.1:${served.port}/conntrack?proto=tcp`, { method: 'DELETE', body });
      expect([r.status, await r.text()]).toEqual([400, 'deleting flows: the filter goes in the query string; a request with a body deletes nothing\n']);
    }
    const chunked = await rawRequest(served.port, 'DELETE /conntrack HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n');
    expect(chunked).toMatch(/^HTTP\/1\.1 400 /);
    expect(count()).toBe(before);

    // The flows to one endpoint: each listed as it went, the count on stderr, the rest kept.
    const toFirst = dp.conntrack(now).filter((e) => e.proto === 'tcp' && e.reply.src === EPS[0]).length;
    expect(toFirst).toBeGreaterThan(CONNTRACK_SLICE);
    let out = '', err = '';
    expect(await runConntrack([...proxy, '-D', '-p', 'tcp', '-r', EPS[0]!], (s) => { out += s; }, (s) => { err += s; })).toBe(0);
    const lines = out.split('\n').filter(Boolean);
    expect(lines).toHaveLength(toFirst);
    for (const l of lines) expect(l).toMatch(new RegExp(`^ipv4     2 tcp      6 \\d+ SYN_SENT src=198\\.18\\.50\\.[13] dst=${VIP.replace(/\./g, '\\.')} sport=\\d+ dport=80 \\[UNREPLIED\\] src=${EPS[0]!.replace(/\./g, '\\.')} `));
    expect(err).toBe(`svcplane conntrack: ${toFirst} flow entries have been deleted.\n`);
    expect(count()).toBe(before - toFirst);
    expect(dp.conntrack(now).some((e) => e.reply.src === EPS[0])).toBe(false);
    // Nothing left to delete: conntrack's exit status 1.
    out = err = '';
    expect(await runConntrack([...proxy, '--delete', '-r', EPS[0]!], (s) => { out += s; }, (s) => { err += s; })).toBe(1);
    expect([out, err]).toEqual(['', 'svcplane conntrack: 0 flow entries have been deleted.\n']);

    // A client gone after the first slice's lines: the deletion still goes through the table.
    const remaining = dp.conntrack(now).filter((e) => e.proto === 'tcp').length;
    expect(remaining).toBeGreaterThan(CONNTRACK_SLICE);
    const deleting = route(new URLSearchParams('proto=tcp'), { method: 'DELETE', loopback: true, body: false }) as AsyncGenerator<string>;
    const first = await deleting.next();
    expect((first.value as string).split('\n').filter(Boolean).length).toBeLessThan(remaining);
    await deleting.return(undefined);
    expect(dp.conntrack(now).filter((e) => e.proto === 'tcp')).toEqual([]);
    expect(count()).toBe(1);

    // -F: every flow, nothing listed.
    expect(await runConntrack([...proxy, '-F'], (s) => { out += s; }, (s) => { err += s; })).toBe(0);
    expect(out).toBe('');
    expect(err).toContain('svcplane conntrack: connection tracking table has been emptied.\n');
    expect(count()).toBe(0);
    err = '';
    expect(await runConntrack([...proxy, '-F', '-p', 'udp'], () => {}, (s) => { err += s; })).toBe(2);
    expect(err).toContain('-F takes no selection');
    expect(await runConntrack([...proxy, '-L', '-D'], () => {}, (s) => { err += s; })).toBe(2);
    expect(err).toContain('one of -L, -D, -F and -E');
    // As conntrack: one command once ("Invalid commands combination"), and a port option only after -p.
    err = '';
    expect(await runConntrack([...proxy, '-L', '-L'], () => {}, (s) => { err += s; })).toBe(2);
    expect(err).toContain('one of -L, -D, -F and -E, once');
    err = '';
    expect(await runConntrack([...proxy, '-L', '--dport', '80', '-p', 'tcp'], () => {}, (s) => { err += s; })).toBe(2);
    expect(err).toContain('--dport before -p: conntrack knows the port options only after it');
    expect(await runConntrack([...proxy, '-L', '-p', 'tcp', '--dport', '80'], () => {}, () => {})).toBe(0);
  });
});

describe('flows deleted on request, in the conntrack state file at once', () => {
  it('a checkpoint follows the deletion (not the next period\'s), and the log says it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'svp-ct-delete-'));
    const file = join(dir, 'ct.state');
    const logs: string[] = [];
    const port = await freePort();
    const running = await startUserspaceProxy({ 'web.yaml': MANIFESTS }, ['--node-ip', '198.18.200.1', '--metrics-bind-address', `127.0.0.1:${port}`,
      '--conntrack-state', file, '--conntrack-checkpoint-period', '1h'], { tmpPrefix: 'svp-ct-delete-', log: (l) => logs.push(l) });
    try {
      const { proxy } = running;
      const now = proxy.clock();
      for (let i = 0; i < 3; i++) proxy.dp.process(buildPacket({ src: CLIENT, dst: '198.18.7.7', proto: 'udp', sport: 5000 + i, dport: 53 }), now);
      await proxy.checkpoints!.checkpoint();
      const flows = () => decodeSnapshot(readFileSync(file)).records.length;
      expect(flows()).toBe(3);
      const written = proxy.checkpoints!.written;
      let out = '';
      expect(await runConntrack(['--proxy', `127.0.0.1:${port}`, '-D', '-p', 'udp', '--sport', '5001'], (t) => { out += t; }, () => {})).toBe(0);
      expect(out).toContain('sport=5001 dport=53');
      for (const until = Date.now() + 5000; proxy.checkpoints!.written === written && Date.now() < until;) await new Promise((r) => setTimeout(r, 10));
      expect(flows()).toBe(2);
      expect(logs).toContain('proxy: 1 flows deleted on request (conntrack -D)');
      // Nothing deleted: nothing said, no checkpoint.
      expect(await runConntrack(['--proxy', `127.0.0.1:${port}`, '-D', '-p', 'udp', '--sport', '5001'], () => {}, () => {})).toBe(1);
      expect(logs.filter((l) => l.includes('deleted on request'))).toHaveLength(1);
    } finally {
      await running.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a running proxy\'s flow events (conntrack -E)', () => {
  const served = inspectedProxy('svp-ct-events-');

  it('/conntrack?events streams each listener its selection as conntrack -E prints it; svcplane conntrack -E until stopped', async () => {
    const { proxy } = { proxy: served.proxy };
    const base = `http://127.0.0.1:${served.port}`;
    // A listener of UDP flows, reading its stream line by line.
    const abort = new AbortController();
    const res = await fetch(`${base}/conntrack?events&proto=udp`, { signal: abort.signal });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let got = '';
    const until = async (re: RegExp) => {
      for (const end = Date.now() + 5000; !re.test(got) && Date.now() < end;) {
        const r = await Promise.race([reader.read(), new Promise<null>((ok) => setTimeout(() => ok(null), 200))]);
        if (r && !r.done) got += decoder.decode(r.value, { stream: true });
      }
      return got;
    };
    // And svcplane conntrack -E of everything, until stopped.
    const stop = new AbortController();
    let out = '', err = '';
    const cli = runConntrack(['--proxy', `127.0.0.1:${served.port}`, '-E'], (t) => { out += t; }, (t) => { err += t; }, stop.signal);
    // Both listening before the flows come (the CLI's request is on its way).
    for (const end = Date.now() + 5000; !(await listeners(2)) && Date.now() < end;) await new Promise((r) => setTimeout(r, 20));
    const now = proxy.clock();
    proxy.dp.process(buildPacket({ src: CLIENT, dst: '198.18.7.7', proto: 'udp', sport: 6000, dport: 53 }), now);
    proxy.dp.process(buildPacket({ src: CLIENT, dst: VIP, proto: 'tcp', sport: 6001, dport: 80, flags: 'S' }), now);
    await until(/\[NEW\] udp/);
    expect(got).toMatch(/^ {4}\[NEW\] udp {6}17 (29|30) src=198\.18\.50\.1 dst=198\.18\.7\.7 sport=6000 dport=53 \[UNREPLIED\] src=198\.18\.7\.7 dst=198\.18\.50\.1 sport=53 dport=6000\n$/);
    expect(proxy.dp.conntrackDelete({ proto: 'udp', sport: 6000 }, proxy.clock())).toHaveLength(1);
    await until(/\[DESTROY\] udp/);
    expect(got.split('\n').filter(Boolean).map((l) => l.trim().split(' ')[0])).toEqual(['[NEW]', '[DESTROY]']);
    for (const end = Date.now() + 5000; !out.includes('[DESTROY] udp') && Date.now() < end;) await new Promise((r) => setTimeout(r, 20));
    stop.abort();
    expect(await cli).toBe(0);
    expect(out).toMatch(/^ {4}\[NEW\] udp .*sport=6000[^\n]*\n {4}\[NEW\] tcp {6}6 (119|120) SYN_SENT src=198\.18\.50\.1 dst=198\.18\.96\.10 sport=6001 dport=80 \[UNREPLIED\] src=198\.18\.100\.[23] dst=198\.18\.50\.1 sport=8080 dport=6001\n\[DESTROY\] udp .*sport=6000[^\n]*\n$/);
    expect(err).toBe('svcplane conntrack: 3 flow events have been shown.\n');
    // The listener gone, the core stops recording (checked: nothing for the test to take).
    abort.abort();
    for (const end = Date.now() + 5000; !(await listeners(0)) && Date.now() < end;) await new Promise((r) => setTimeout(r, 20));
    expect(await listeners(0)).toBe(true);
    proxy.dp.process(buildPacket({ src: CLIENT, dst: '198.18.7.7', proto: 'udp', sport: 6002, dport: 53 }), proxy.clock());
    expect(proxy.dp.conntrackEventsTake(proxy.clock()).events).toEqual([]);
    // A selection it cannot read, and events= with a value: 400s.
    const bad = await fetch(`${base}/conntrack?events&proto=gre`);
    expect([bad.status, await bad.text()]).toEqual([400, 'proto: tcp, udp, sctp, icmp or icmpv6, not "gre"\n']);
    expect((await fetch(`${base}/conntrack?events=yes`)).status).toBe(400);
  });

  /** Whether the proxy has exactly `n` event listeners now. */
  async function listeners(n: number): Promise<boolean> {
    return (served.proxy as unknown as { ctEvents: { size: number } }).ctEvents.size === n;
  }
});

describe('isLoopback', () => {
  it('is the node itself: 127.0.0.0/8, ::1, and IPv4 loopback on an IPv6 socket; nothing else', () => {
    for (const a of ['127.0.0.1', '127.3.2.1', '::1', '::ffff:127.0.0.1']) expect(isLoopback(a), a).toBe(true);
    for (const a of [undefined, '', '198.18.0.1', '::ffff:198.18.0.1', 'fd00::1', '::', '0.0.0.0', '1270.0.0.1']) expect(isLoopback(a), String(a)).toBe(false);
  });
});

describe('pacedShow: /show a slice at a time, over one ruleset', () => {
  // A KUBE-SERVICES of `n` rules, each its own counter; `mark` tells two rulesets apart.
  const rules = (n: number, mark: string) => ['*nat', ':KUBE-SERVICES - [0:0]',
    ...Array.from({ length: n }, (_, i) => `-A KUBE-SERVICES -d 198.18.${i >> 8}.${i & 255}/32 -p tcp -m comment --comment "${mark}" -m tcp --dport 80 -j ACCEPT`),
    '-A PREROUTING -j KUBE-SERVICES', 'COMMIT', ''].join('\n');
  async function node(): Promise<Dataplane> {
    const dp = await Dataplane.create({ nodeIPs: ['198.18.200.1'], seed: 1 });
    dp.iptablesRestore(rules(3000, 'first'));
    dp.process(buildPacket({ src: '198.18.50.1', dst: '198.18.0.7', proto: 'tcp', sport: 40000, dport: 80, flags: 'S' }), 1000);
    return dp;
  }
  // A clock that moves a slice's worth per reading: a turn of the event loop every 256 lines.
  const ticking = () => { let t = 0; return () => (t += SHOW_SLICE_MS); };
  const ARGS = ['-t', 'nat', '-nvL', 'KUBE-SERVICES'];
  const make = (dp: Dataplane) => () => showTool(dp, 'iptables', ARGS);
  /** Counts the event loop's turns until `p` settles. */
  async function turnsWhile<T>(p: Promise<T>): Promise<{ value: T; turns: number }> {
    let turns = 0, done = false;
    const spin = () => { if (!done) { turns++; setImmediate(spin); } };
    setImmediate(spin);
    const value = await p;
    done = true;
    return { value, turns };
  }

  it('gives the text the tool gives at once, over many turns of the event loop', async () => {
    const dp = await node();
    const whole = runShowTool(dp, 'iptables', ARGS);
    expect(whole).toMatch(/^ {4}1 +\d+ ACCEPT +6 +-- +\* +\* +0\.0\.0\.0\/0 +198\.18\.0\.7 /m);   // the SYN's counter
    const { value, turns } = await turnsWhile(pacedShow(make(dp)(), make(dp), ticking()));
    expect([value.status, value.body]).toEqual([200, whole]);
    expect(turns).toBeGreaterThanOrEqual(8);   // 3,002 lines, 256 a turn
    // With the real clock too (however many turns this machine takes).
    expect((await pacedShow(make(dp)(), make(dp))).body).toBe(whole);
  });

  it('a restore midway: made again over the new rules, never a mix of two rulesets', async () => {
    const dp = await node();
    const paced = pacedShow(make(dp)(), make(dp), ticking());
    setImmediate(() => dp.iptablesRestore(rules(3000, 'second')));
    const { value } = await turnsWhile(paced);
    expect(value.body).toBe(runShowTool(dp, 'iptables', ARGS));
    expect(value.body).toContain('/* second */');
    expect(value.body).not.toContain('/* first */');
  });

  it('restores at every turn: after two restarts it is made in one piece, of the rules then live', async () => {
    const dp = await node();
    let k = 0;
    let stop = false;
    const churn = () => { if (!stop) { dp.iptablesRestore(rules(3000, `r${++k}`)); setImmediate(churn); } };
    const paced = pacedShow(make(dp)(), make(dp), ticking());
    setImmediate(churn);
    const value = await paced;
    stop = true;
    const marks = new Set([...value.body.matchAll(/\/\* (r\d+|first) \*\//g)].map((m) => m[1]));
    expect(marks.size).toBe(1);
    expect([...marks][0]).toMatch(/^r[23]$/);
  });

  /** 600 Services of one port each, and their slices of one endpoint. */
  const objects = (port: number) => Array.from({ length: 600 }, (_, i) => [
      { apiVersion: 'v1', kind: 'Service', metadata: { name: `s${i}`, namespace: 'p' }, spec: { clusterIP: `198.18.${96 + (i >> 8)}.${i & 255}`, ports: [{ port, protocol: 'TCP', targetPort: 8080 }] } },
      { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: `s${i}-a`, namespace: 'p', labels: { 'kubernetes.io/service-name': `s${i}` } },
        addressType: 'IPv4', ports: [{ port: 8080, protocol: 'TCP' }], endpoints: [{ addresses: [`198.19.${i >> 8}.${i & 255}`], conditions: { ready: true } }] },
    ]).flat();

  it('the direct table too: an apply midway makes it again, over the table the apply left', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['198.18.200.1'], seed: 1 });
    expect(dp.apply(objects(80), { mode: 'direct' }).issues).toEqual([]);
    const make = () => showTool(dp, 'direct', []);
    const { value, turns } = await turnsWhile(pacedShow(make(), make, ticking()));
    expect(value.body).toBe(dp.directList());
    expect(value.body.split('\n')).toHaveLength(4 * 600 + 1);
    expect(value.body).toMatch(/ frontends cluster 198\.18\.96\.0:80$/m);
    expect(turns).toBeGreaterThanOrEqual(5);
    const paced = pacedShow(make(), make, ticking());
    setImmediate(() => dp.apply(objects(81), { mode: 'direct' }));
    const after = (await paced).body;
    expect(after).toBe(dp.directList());
    expect(after).toMatch(/ frontends cluster 198\.18\.96\.0:81$/m);
    expect(after).not.toMatch(/:80$/m);
  });

  it('ipvsadm -Ln and -S too, in ipvsadm\'s order; an apply midway makes it again', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['198.18.200.1'], seed: 1 });
    expect(dp.apply(objects(80), { mode: 'ipvs' }).issues).toEqual([]);
    for (const args of [['-Ln'], ['-S', '-n'], ['-L', '-n', '--stats']]) {
      const make = () => showTool(dp, 'ipvsadm', args);
      const { value, turns } = await turnsWhile(pacedShow(make(), make, ticking()));
      expect(value.body).toBe(dp.ipvsadm(args).stdout);
      expect(turns, args.join(' ')).toBeGreaterThanOrEqual(1);
    }
    const list = dp.ipvsadm(['-Ln']).stdout;
    // Sorted by address as ipvsadm sorts (198.18.96.0:80 first, 198.18.98.87:80 last), not in the order applied.
    const vips = [...list.matchAll(/^TCP {2}(\S+) rr$/gm)].map((m) => m[1]);
    expect(vips).toHaveLength(600);
    expect([vips[0], vips[1], vips[599]]).toEqual(['198.18.96.0:80', '198.18.96.1:80', '198.18.98.87:80']);
    const make = () => showTool(dp, 'ipvsadm', ['-Ln']);
    const paced = pacedShow(make(), make, ticking());
    setImmediate(() => dp.apply(objects(81), { mode: 'ipvs' }));
    const after = (await paced).body;
    expect(after).toBe(dp.ipvsadm(['-Ln']).stdout);
    expect(after).toMatch(/^TCP {2}198\.18\.96\.0:81 rr$/m);
    expect(after).not.toMatch(/:80 rr$/m);
  });

  it('a restore that removed the listed chain: the tool\'s own refusal, as a 400', async () => {
    const dp = await node();
    const paced = pacedShow(make(dp)(), make(dp), ticking());
    setImmediate(() => dp.iptablesRestore('*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n'));
    const value = await paced;
    expect([value.status, value.body]).toEqual([400, 'iptables: No chain/target/match by that name.\n']);
  });
});
