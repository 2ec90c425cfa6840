// `svcplane proxy` end to end: the real command runs in a node namespace, reads a manifests
// directory, creates its TUN device, routes and rules, and serves Services to a client outside the
// node and to a pod; backends report the address they see. Root only (namespaces, /dev/net/tun).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { netnsSupport } from '../support/netns.js';
import { E2ECluster, eventually, CLI, BACKENDS, CLIENT_IP, MASQ_IP, NODE_IP, NODE_NAME, TUN, SERVICE_CIDR, SERVICE_CIDR6, CLUSTER_CIDR6, MASQ_IP6 } from './cluster.js';
import { clusterManifests, VIP, VIP6, EXTERNAL_IP, LB_IP, RANGED_LB_IP, NODE_PORT, HEALTH_CHECK_PORT } from './manifests.js';

const support = netnsSupport();
const why = !support.ok ? support.reason : !existsSync('/dev/net/tun') ? 'no /dev/net/tun (load the tun module)' : '';
if (why) console.warn(`svcplane proxy end-to-end tests cannot run here: ${why}`);

interface Replies { replies: string[]; errors: string[] }
const names = (r: Replies): string[] => [...new Set(r.replies.map((l) => l.split(' ')[0]!))].sort();
const peers = (r: Replies): string[] => [...new Set(r.replies.map((l) => l.split(' ')[1]!))].sort();
const ALL = BACKENDS.map((b) => b.name);

describe.runIf(why === '')('svcplane proxy end to end (namespaces)', () => {
  let c: E2ECluster;
  let prefix = '';
  const state = (): string => join(c.dir, 'conntrack.state');
  const PROXY_ARGS = (): string[] => ['--conntrack-state', state(), '--service-cidr', SERVICE_CIDR6, '--cluster-cidr', CLUSTER_CIDR6];

  beforeAll(async () => {
    c = new E2ECluster('proxy');
    prefix = c.scope.prefix;
    await c.up(clusterManifests({ ipv6: true }), PROXY_ARGS(), { ipv6: true });
  }, 60_000);

  afterAll(async () => {
    await c?.destroy();
    if (prefix) {
      const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith(prefix));
      expect(left).toEqual([]);
    }
  });

  it('reaches both backends through a ClusterIP, masqueraded for a client outside the cluster CIDR', async () => {
    const r = await c.clientAgent.call<Replies>({ op: 'tcp', host: VIP.web, port: 80, count: 30, concurrency: 3 });
    expect(r.errors).toEqual([]);
    expect(r.replies).toHaveLength(30);
    expect(names(r)).toEqual(ALL);
    expect(peers(r)).toEqual([MASQ_IP]);
  });

  it('keeps a pod\'s own address toward other pods (replies steered back through the device)', async () => {
    const r = await c.podAgent.call<Replies>({ op: 'tcp', host: VIP.web, port: 80, count: 30, concurrency: 3 });
    expect(r.errors).toEqual([]);
    // be1 reaching itself is hairpin traffic, which kube-proxy masquerades; be2 sees be1's address.
    const fromBe2 = r.replies.filter((l) => l.startsWith('be2 '));
    expect(fromBe2.length).toBeGreaterThan(0);
    expect(new Set(fromBe2.map((l) => l.split(' ')[1]))).toEqual(new Set([BACKENDS[0].ip]));
    // Hairpin: be1 reaching itself through its Service is masqueraded, as kube-proxy does.
    const hairpin = r.replies.filter((l) => l.startsWith('be1 '));
    expect(hairpin.length).toBeGreaterThan(0);
    expect(new Set(hairpin.map((l) => l.split(' ')[1]))).toEqual(new Set([MASQ_IP]));
  });

  it('lets a client reach a pod directly: the pod\'s replies, steered in for un-NAT, come back untouched', async () => {
    // be1's replies from :8080 are routed into the device (client-IP preservation for the web
    // Service); this connection never went through the core, which hands them back as they are.
    const r = await c.clientAgent.call<Replies>({ op: 'tcp', host: BACKENDS[0].ip, port: 8080, count: 6, concurrency: 2 });
    expect(r.errors).toEqual([]);
    expect(names(r)).toEqual(['be1']);
    expect(peers(r)).toEqual([CLIENT_IP]);
    // One policy rule for the pod CIDR and port, not one per endpoint.
    const rules = c.nodeExec(['ip', 'rule', 'show', 'pref', '130']);
    expect(rules).toContain('from 198.18.100.0/22 ipproto tcp sport 8080');
    expect(rules).not.toContain(`from ${BACKENDS[0].ip} `);
  });

  it('lets only loadBalancerSourceRanges reach a LoadBalancer IP', async () => {
    const pod = await c.podAgent.call<Replies>({ op: 'tcp', host: RANGED_LB_IP, port: 80, count: 6, concurrency: 2 });
    expect(pod.errors).toEqual([]);
    expect(pod.replies).toHaveLength(6);
    const outside = await c.clientAgent.call<Replies>({ op: 'tcp', host: RANGED_LB_IP, port: 80, count: 2, concurrency: 2, timeoutMs: 1500 });
    expect(outside.replies).toEqual([]);
    expect(outside.errors).toEqual(['timeout', 'timeout']);
  });

  it('explains what it did through its live core: svcplane trace --proxy and svcplane conntrack --proxy against the metrics address', async () => {
    const trace = (dst: string, dport: number): string => c.nodeExec([process.execPath, CLI, 'trace', '--proxy', '127.0.0.1:10249',
      '--src', CLIENT_IP, '--dst', dst, '--dport', String(dport)]);
    // The source-range firewall that timed the client out above, named.
    const fw = trace(RANGED_LB_IP, 80);
    expect(fw).toContain('rules: the running proxy at http://127.0.0.1:10249 (mode iptables)');
    expect(fw).toMatch(/outcomes \(1\):\n {2}1\. DROP/);
    expect(fw).toMatch(/decided by:\n {7}\S+\/KUBE-(FW|PROXY-FIREWALL)\S* #\d+ DROP {2}-A /);
    // ETP=Local: both endpoints are this node's, the client's address kept.
    const local = trace(NODE_IP, NODE_PORT.local);
    expect([...local.matchAll(/destination NAT: (\S+)/g)].map((m) => m[1]!.split(':')[0]).sort()).toEqual(BACKENDS.map((b) => b.ip));
    expect(local.match(/masquerade: no/g)).toHaveLength(2);
    expect(local.match(/decided by:\n {7}nat\/KUBE-SEP-\w+ #\d+ DNAT/g)).toHaveLength(2);
    // And the flows of such connections, as conntrack -L would list the kernel's: to both
    // backends, replying to the client itself (not masqueraded).
    const r = await c.clientAgent.call<Replies>({ op: 'tcp', host: NODE_IP, port: NODE_PORT.local, count: 20, concurrency: 2 });
    expect(r.errors).toEqual([]);
    const flows = c.nodeExec([process.execPath, CLI, 'conntrack', '--proxy', '127.0.0.1:10249', '-p', 'tcp', '-s', CLIENT_IP,
      '-d', NODE_IP, '--dport', String(NODE_PORT.local)]).trim().split('\n');
    expect(flows.length).toBeGreaterThan(0);
    for (const l of flows) expect(l).toMatch(new RegExp(`^ipv4     2 tcp      6 \\d+ [A-Z_]+ src=${CLIENT_IP} dst=${NODE_IP} sport=\\d+ dport=${NODE_PORT.local} src=198\\.18\\.10[01]\\.2 dst=${CLIENT_IP} `));
    expect(new Set(flows.map((l) => /dport=\d+ src=(\S+)/.exec(l)![1]))).toEqual(new Set(BACKENDS.map((b) => b.ip)));
    // The rules as iptables -nvL shows them on a kube-proxy node, the core's counters in them.
    const nodePorts = c.nodeExec([process.execPath, CLI, 'show', '--proxy', '127.0.0.1:10249', 'iptables', '-t', 'nat', '-nvxL', 'KUBE-NODEPORTS']);
    const rule = nodePorts.split('\n').find((l) => l.includes(`dpt:${NODE_PORT.local}`) && l.includes('KUBE-EXT-') && !l.includes('127.0.0.0/8'));
    expect(rule, nodePorts).toBeDefined();
    expect(Number(rule!.trim().split(/\s+/)[0])).toBeGreaterThanOrEqual(8);
  });

  it('echoes UDP through a ClusterIP from both backends', async () => {
    const r = await c.clientAgent.call<Replies>({ op: 'udp', host: VIP.echo, port: 53, count: 20 });
    expect(r.errors).toEqual([]);
    expect(r.replies).toHaveLength(20);
    expect(names(r)).toEqual(ALL);
  });

  it('serves a NodePort on the node address to a client outside the node', async () => {
    const r = await c.clientAgent.call<Replies>({ op: 'tcp', host: NODE_IP, port: NODE_PORT.web, count: 20, concurrency: 2 });
    expect(r.errors).toEqual([]);
    expect(names(r)).toEqual(ALL);
    expect(peers(r)).toEqual([MASQ_IP]);
  });

  it('serves an externalIP', async () => {
    const r = await c.clientAgent.call<Replies>({ op: 'tcp', host: EXTERNAL_IP, port: 80, count: 20, concurrency: 2 });
    expect(r.errors).toEqual([]);
    expect(names(r)).toEqual(ALL);
  });

  it('keeps the client address with externalTrafficPolicy Local (NodePort and LoadBalancer IP)', async () => {
    for (const [host, port] of [[NODE_IP, NODE_PORT.local], [LB_IP, 80]] as const) {
      const r = await c.clientAgent.call<Replies>({ op: 'tcp', host, port, count: 16, concurrency: 2 });
      expect(r.errors).toEqual([]);
      expect(peers(r)).toEqual([CLIENT_IP]);
      expect(names(r)).toEqual(ALL);
    }
  });

  it('answers the health check node port with the local endpoint count, and /healthz, /livez, /metrics', async () => {
    const hc = await c.clientAgent.call<{ status: number; body: string }>({ op: 'http', host: NODE_IP, port: HEALTH_CHECK_PORT, path: '/' });
    expect(hc.status).toBe(200);
    expect(JSON.parse(hc.body)).toEqual({ service: { namespace: 'default', name: 'local' }, localEndpoints: 2, serviceProxyHealthy: true });
    const hz = await c.clientAgent.call<{ status: number; body: string }>({ op: 'http', host: NODE_IP, port: 10256, path: '/healthz' });
    expect(hz.status).toBe(200);
    const h = JSON.parse(hz.body) as { lastUpdated: string; currentTime: string; nodeEligible: boolean; healthy: boolean; status: Record<string, unknown> };
    expect(h.nodeEligible).toBe(true);
    expect(h.healthy).toBe(true);
    expect(h.currentTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    expect(Object.keys(h.status)).toContain('IPv4');
    const lz = await c.clientAgent.call<{ status: number; body: string }>({ op: 'http', host: NODE_IP, port: 10256, path: '/livez' });
    expect(lz.status).toBe(200);
    expect(Object.keys(JSON.parse(lz.body))).toEqual(['lastUpdated', 'currentTime', 'healthy', 'status']);
    const m = c.nodeExec(['curl', '-sf', 'http://127.0.0.1:10249/metrics']);
    expect(m).toMatch(/^kubeproxy_sync_proxy_rules_duration_seconds_count\{ip_family="IPv4"\} [1-9]/m);
    expect(m).toMatch(/^kubeproxy_sync_proxy_rules_last_timestamp_seconds\{ip_family="IPv4"\} \d/m);
    expect(m).toMatch(/^kubeproxy_conntrack_reconciler_sync_duration_seconds_count\{ip_family="IPv4"\} [1-9]/m);
    expect(m).toMatch(/^kubeproxy_conntrack_reconciler_deleted_entries_total\{ip_family="IPv4"\} \d+/m);
    expect(m).toMatch(/^kubeproxy_proxy_healthz_total\{code="200"\} [1-9]/m);
    expect(m).toMatch(/^svcplane_verdicts_total\{verdict="FORWARD"\} [1-9]/m);
    expect(m).toMatch(/^svcplane_conntrack_entries \d+/m);
    expect(m).toMatch(/^svcplane_tun_packets_total\{direction="in"\} [1-9]/m);
  });

  it('protects itself from the OOM killer as kube-proxy does (oom_score_adj -999) and logs its conntrack settings', () => {
    const pid = c.proxy!.child.pid!;
    const adj = readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8').trim();
    // Lowering it takes CAP_SYS_RESOURCE (bit 24); without it the proxy says so and goes on.
    const capEff = BigInt(`0x${/^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]}`);
    if ((capEff >> 24n) & 1n) expect(adj).toBe('-999');
    else {
      expect(c.proxy!.output()).toContain('proxy: oom_score_adj left as it is, -999 refused (EACCES)');
      expect(adj).toBe(readFileSync('/proc/self/oom_score_adj', 'utf8').trim());
    }
    expect(c.proxy!.output()).toMatch(/^proxy: conntrack: \d+ flows, tcp established 86400s, tcp close-wait 3600s$/m);
  });

  it('serves an IPv6 ClusterIP: masqueraded from outside the cluster, a pod keeps its address', async () => {
    const r = await c.clientAgent.call<Replies>({ op: 'tcp', host: VIP6.web, port: 80, count: 20, concurrency: 2 });
    expect(r.errors).toEqual([]);
    expect(names(r)).toEqual(ALL);
    expect(peers(r)).toEqual([MASQ_IP6]);
    const p = await c.podAgent.call<Replies>({ op: 'tcp', host: VIP6.web, port: 80, count: 20, concurrency: 2 });
    expect(p.errors).toEqual([]);
    const fromBe2 = p.replies.filter((l) => l.startsWith('be2 '));
    expect(fromBe2.length).toBeGreaterThan(0);
    expect(new Set(fromBe2.map((l) => l.split(' ')[1]))).toEqual(new Set([BACKENDS[0].ip6]));
  });

  it('serves a client on the node itself', async () => {
    const script = `const net = require('net'); let n = 0; const seen = new Set(); const go = () => {
      const s = net.connect(80, '${VIP.web}', () => s.write('local\\n')); let b = '';
      s.on('data', (d) => { b += d; }); s.on('end', () => { seen.add(b.split(' ')[0]); if (++n < 16) go(); else console.log([...seen].sort().join()); });
      s.on('error', (e) => { console.log('error ' + e.code); process.exit(1); }); }; go();`;
    const out = c.scope.must(c.node, ['node', '-e', script], { timeoutMs: 15_000 });
    expect(out.trim()).toBe(ALL.join());
  });

  it('sticks a client to one backend with ClientIP session affinity', async () => {
    const r = await c.clientAgent.call<Replies>({ op: 'tcp', host: VIP.sticky, port: 80, count: 12, concurrency: 1 });
    expect(r.errors).toEqual([]);
    expect(r.replies).toHaveLength(12);
    expect(names(r)).toHaveLength(1);
  });

  it('refuses connections to a Service without endpoints', async () => {
    const r = await c.clientAgent.call<Replies>({ op: 'tcp', host: VIP.empty, port: 80, count: 2 });
    expect(r.errors).toEqual(['ECONNREFUSED', 'ECONNREFUSED']);
  });

  it('stops using a removed endpoint for new connections and clears its UDP flows', async () => {
    // A UDP "session" (one source port) pinned to be2 by conntrack.
    const pin = await eventually(async () => {
      const r = await c.clientAgent.call<Replies>({ op: 'udp', host: VIP.echo, port: 53, count: 1, keep: 'pin', fresh: true });
      return r.replies[0]?.startsWith('be2 ') ? r : undefined;
    }, 10_000, 'a UDP flow to be2');
    expect(pin.replies).toHaveLength(1);
    const still = await c.clientAgent.call<Replies>({ op: 'udp', host: VIP.echo, port: 53, count: 2, keep: 'pin' });
    expect(names(still)).toEqual(['be2']);
    c.writeManifests(clusterManifests({ web: [BACKENDS[0]], echo: [BACKENDS[0]], ipv6: true }));
    // 32 connections: while the proxy still has both backends, all 32 reach be1 with odds of 2^-32
    // (with 8, a poll or two before the sync could pass by chance).
    await eventually(async () => {
      const r = await c.clientAgent.call<Replies>({ op: 'tcp', host: VIP.web, port: 80, count: 32, concurrency: 4 });
      return r.errors.length === 0 && names(r).join() === 'be1' ? r : undefined;
    }, 10_000, 'web served by be1 only');
    const after = await c.clientAgent.call<Replies>({ op: 'tcp', host: VIP.web, port: 80, count: 20, concurrency: 2 });
    expect(after.errors).toEqual([]);
    expect(names(after)).toEqual(['be1']);
    // The same UDP socket now reaches be1: its flow to be2 was deleted when be2 left.
    const u = await c.clientAgent.call<Replies>({ op: 'udp', host: VIP.echo, port: 53, count: 3, keep: 'pin' });
    expect(u.errors).toEqual([]);
    expect(names(u)).toEqual(['be1']);
    c.writeManifests(clusterManifests({ ipv6: true }));
    await eventually(async () => {
      const r = await c.clientAgent.call<Replies>({ op: 'tcp', host: VIP.web, port: 80, count: 12, concurrency: 2 });
      return names(r).length === 2 ? r : undefined;
    }, 10_000, 'be2 back');
  }, 40_000);

  /** A connection through a ClusterIP, opened and answered once (through the masquerade address). */
  const openStream = async (): Promise<{ id: number; backend: string }> => {
    const conn = await c.clientAgent.call<{ id: number }>({ op: 'open', host: VIP.stream, port: 81 });
    const first = await c.clientAgent.call<{ reply: string }>({ op: 'send', id: conn.id, line: 'before' });
    const [backend, peer, text] = first.reply.split(' ');
    expect(text).toBe('before');
    expect(peer).toBe(MASQ_IP);
    return { id: conn.id, backend: backend! };
  };
  /** The restarted proxy restored flows; the connection goes on to its backend, and new ones are served. */
  const carriedOver = async (p: { output(): string }, conn: { id: number; backend: string }): Promise<void> => {
    expect(p.output()).toMatch(/restored [1-9]\d* flows/);
    const second = await c.clientAgent.call<{ reply: string }>({ op: 'send', id: conn.id, line: 'after' });
    expect(second.reply).toBe(`${conn.backend} ${MASQ_IP} after`);
    await c.clientAgent.call({ op: 'close', id: conn.id });
    const r = await c.clientAgent.call<Replies>({ op: 'tcp', host: VIP.web, port: 80, count: 10, concurrency: 2 });
    expect(r.errors).toEqual([]);
  };

  it('--detect-local-mode NodeCIDR: the Node\'s pod CIDRs tell this node\'s pods (left alone) from the rest (masqueraded), and a change of them is followed', async () => {
    const node = (cidr: string): string => `---\napiVersion: v1\nkind: Node\nmetadata: {name: ${NODE_NAME}}\nspec: {podCIDRs: ["${cidr}"]}\n`;
    // The sources be2 sees for be1's connections to the web Service.
    const be2Sees = async (): Promise<string[]> => {
      const r = await c.podAgent.call<Replies>({ op: 'tcp', host: VIP.web, port: 80, count: 20, concurrency: 2 });
      expect(r.errors).toEqual([]);
      return [...new Set(r.replies.filter((l) => l.startsWith('be2 ')).map((l) => l.split(' ')[1]!))];
    };
    await c.stopProxy();
    c.writeManifests(clusterManifests({ ipv6: true }) + node('198.18.101.0/24'));
    try {
      await c.startProxy([...PROXY_ARGS(), '--detect-local-mode', 'NodeCIDR']);
      // be1 (198.18.100.2) is in the cluster CIDR but not in this node's pod CIDR: masqueraded.
      expect(await be2Sees()).toEqual([MASQ_IP]);
      c.writeManifests(clusterManifests({ ipv6: true }) + node('198.18.100.0/24'));
      await eventually(async () => ((await be2Sees()).join() === BACKENDS[0].ip ? true : undefined), 10_000, 'be1 kept its address');
      expect(c.proxy!.output()).toContain(`proxy: local traffic (NodeCIDR): from Node ${NODE_NAME}'s pod CIDRs 198.18.100.0/24 (were 198.18.101.0/24)`);
    } finally {
      await c.stopProxy();
      c.writeManifests(clusterManifests({ ipv6: true }));
      await c.startProxy(PROXY_ARGS());
    }
  });

  it.each(['ipvs', 'direct'] as const)('--mode %s serves the same Services through the device, and shows its own table', async (mode) => {
    await c.stopProxy();
    try {
      await c.startProxy([...PROXY_ARGS(), '--mode', mode]);
      // A ClusterIP from outside the cluster: both backends, masqueraded.
      const web = await c.clientAgent.call<Replies>({ op: 'tcp', host: VIP.web, port: 80, count: 20, concurrency: 2 });
      expect(web.errors).toEqual([]);
      expect(names(web)).toEqual(ALL);
      expect(peers(web)).toEqual([MASQ_IP]);
      // An ETP=Local NodePort: the client's own address kept.
      const local = await c.clientAgent.call<Replies>({ op: 'tcp', host: NODE_IP, port: NODE_PORT.local, count: 8, concurrency: 2 });
      expect(local.errors).toEqual([]);
      expect(peers(local)).toEqual([CLIENT_IP]);
      // No endpoints: refused, not left to time out.
      const empty = await c.clientAgent.call<Replies>({ op: 'tcp', host: VIP.empty, port: 80, count: 2 });
      expect(empty.errors).toEqual(['ECONNREFUSED', 'ECONNREFUSED']);
      // A port of a ClusterIP no Service has: refused too (ipvs: KUBE-IPVS-FILTER; direct: as
      // kube-proxy's nftables mode, cluster-ips-check).
      const other = await c.clientAgent.call<Replies>({ op: 'tcp', host: VIP.web, port: 81, count: 2 });
      expect(other.errors).toEqual(['ECONNREFUSED', 'ECONNREFUSED']);
      // What the mode keeps, as the operator lists it.
      const show = (...args: string[]): string => c.nodeExec([process.execPath, CLI, 'show', '--proxy', '127.0.0.1:10249', ...args]);
      if (mode === 'ipvs') expect(show('ipvsadm', '-Ln')).toMatch(new RegExp(`TCP  ${VIP.web.replace(/\./g, '\\.')}:80 rr\n(  -> \\S+ +Masq +1 .*\n){2}`));
      else expect(show('direct')).toMatch(new RegExp(`^default/web:\\S+ TCP frontends cluster ${VIP.web.replace(/\./g, '\\.')}:80`, 'm'));
    } finally {
      await c.stopProxy();
      await c.startProxy(PROXY_ARGS());
    }
  }, 60_000);

  it('keeps an established TCP connection through a proxy restart (conntrack state file)', async () => {
    const conn = await openStream();
    expect(await c.stopProxy()).toBe(0);
    expect(existsSync(state())).toBe(true);
    await carriedOver(await c.startProxy(PROXY_ARGS()), conn);
  }, 40_000);

  it('keeps an established TCP connection when the proxy is killed (SIGKILL) and started again: its last checkpoint', async () => {
    await c.stopProxy();
    await c.startProxy([...PROXY_ARGS(), '--conntrack-checkpoint-period', '300ms']);
    const conn = await openStream();
    // A checkpoint begun after the connection was up (the file's time is its checkpoint's).
    const up = Date.now();
    await eventually(() => (statSync(state()).mtimeMs > up + 10 ? true : undefined), 5000, 'a checkpoint after the connection');
    const killed = c.proxy!;
    killed.child.kill('SIGKILL');
    expect(await killed.exited).toBe(null);
    expect(killed.output()).not.toMatch(/saved \d+ flows/);
    await carriedOver(await c.startProxy(PROXY_ARGS()), conn);
  }, 40_000);

  it('puts back the routes and rules something else removed, within its sync period', async () => {
    await c.stopProxy();
    await c.startProxy([...PROXY_ARGS(), '--sync-period', '500ms']);
    const rules = (): string => c.nodeExec(['ip', 'rule', 'show']);
    const routes = (): string => c.nodeExec(['ip', 'route', 'show', 'dev', TUN]);
    const fallbacks = (): string => c.nodeExec(['ip', 'route', 'show', 'type', 'unreachable']);
    const before = { rules: rules(), routes: routes(), fallbacks: fallbacks() };
    expect(before.fallbacks).toBe(`unreachable ${SERVICE_CIDR} metric 4294967295 \n`);
    expect(before.rules).toMatch(/^110:/m);
    // A network manager's clean-up: foreign rules and routes deleted, the default local rule back.
    c.nodeExec(['ip', 'rule', 'del', 'pref', '110']);
    c.nodeExec(['ip', 'rule', 'del', 'pref', '100']);
    c.nodeExec(['ip', 'rule', 'add', 'pref', '0', 'lookup', 'local']);
    c.nodeExec(['ip', 'route', 'flush', 'dev', TUN]);
    c.nodeExec(['ip', 'route', 'del', 'unreachable', SERVICE_CIDR, 'metric', '4294967295']);
    expect(rules()).not.toEqual(before.rules);
    await eventually(() => {
      expect(rules()).toEqual(before.rules);
      expect(routes()).toEqual(before.routes);
      expect(fallbacks()).toEqual(before.fallbacks);
      return true;
    }, 5000, 'the removed routes and rules back');
    // Said in its log (read as the pipe delivers it).
    const said = /proxy: put back what something else removed: .*IPv4 rules at priority 100 \(0 there, 1 wanted\)/;
    await eventually(() => (said.test(c.proxy!.output()) ? true : undefined), 5000, 'the repair logged');
    // Enough connections that both backends are seen (six left one out once in 32 runs).
    const r = await c.clientAgent.call<Replies>({ op: 'tcp', host: VIP.web, port: 80, count: 20, concurrency: 2 });
    expect(r.errors).toEqual([]);
    expect(names(r)).toEqual(ALL);
  }, 40_000);

  it('reports 503 once a change has waited twice its sync period (kube-proxy\'s health timeout)', async () => {
    await c.stopProxy();
    // A change right after the first sync waits out --min-sync-period: far longer than 2 × 1 s.
    await c.startProxy([...PROXY_ARGS(), '--sync-period', '1s', '--min-sync-period', '30s']);
    const healthz = () => c.clientAgent.call<{ status: number; body: string }>({ op: 'http', host: NODE_IP, port: 10256, path: '/healthz' });
    expect((await healthz()).status).toBe(200);
    c.writeManifests(clusterManifests({ web: [BACKENDS[0]], echo: [BACKENDS[0]], ipv6: true }));
    const late = await eventually(async () => {
      const h = await healthz();
      return h.status === 503 ? h : undefined;
    }, 8000, '/healthz 503');
    expect(JSON.parse(late.body)).toMatchObject({ healthy: false });
    c.writeManifests(clusterManifests({ ipv6: true }));
    await c.stopProxy();
    await c.startProxy([...PROXY_ARGS(), '--sync-period', '500ms']);
    expect((await healthz()).status).toBe(200);
  }, 40_000);

  it('removes its device, routes and rules on SIGTERM', async () => {
    const rulesDuring = c.nodeExec(['ip', 'rule', 'show']);
    expect(rulesDuring).toMatch(new RegExp(`iif ${TUN}`));
    expect(await c.stopProxy()).toBe(0);
    expect(c.nodeExec(['ip', 'rule', 'show']).trim().split('\n')).toEqual([
      '0:\tfrom all lookup local', '32766:\tfrom all lookup main', '32767:\tfrom all lookup default',
    ]);
    expect(c.nodeExec(['ip', '-6', 'rule', 'show']).trim().split('\n')).toEqual(['0:\tfrom all lookup local', '32766:\tfrom all lookup main']);
    expect(c.nodeExec(['ip', 'link', 'show'])).not.toMatch(new RegExp(`\\b${TUN}\\b`));
    // Only the service CIDRs' unreachable fallbacks stay (until a proxy runs again, or --cleanup).
    const unreachable = (l: string) => l.startsWith('unreachable ');
    const v4 = c.nodeExec(['ip', '-4', 'route', 'show', 'table', 'all']).split('\n');
    expect(v4.filter((l) => !unreachable(l)).join('\n')).not.toMatch(/198\.18\.9[67]\.|198\.18\.12[01]\.|table 2325/);
    expect(v4.filter(unreachable)).toEqual([`unreachable ${SERVICE_CIDR} metric 4294967295 `]);
    const v6 = c.nodeExec(['ip', '-6', 'route', 'show', 'table', 'all']).split('\n');
    expect(v6.filter((l) => !unreachable(l)).join('\n')).not.toMatch(/fd00:96|table 2325/);
    expect(v6.filter(unreachable).map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual([`unreachable ${SERVICE_CIDR6}`]);
  }, 20_000);

  it('removes what it set up when it cannot start (a port in use), and exits 1', async () => {
    const rulesBefore = c.nodeExec(['ip', 'rule', 'show']);
    await expect(c.startProxy(['--metrics-bind-address', '127.0.0.1:10256', '--healthz-bind-address', '127.0.0.1:10256'])).rejects.toThrow(/EADDRINUSE/);
    expect(await c.proxy!.exited).toBe(1);
    c.proxy = null;
    expect(c.nodeExec(['ip', 'rule', 'show'])).toBe(rulesBefore);
    expect(c.nodeExec(['ip', 'link', 'show'])).not.toMatch(new RegExp(`\\b${TUN}\\b`));
  }, 30_000);

  it('stops when its device is deleted under it: says so, saves its flows, removes its rules, and exits 1', async () => {
    const rulesBefore = c.nodeExec(['ip', 'rule', 'show']);
    await c.startProxy(PROXY_ARGS());
    const r = await c.clientAgent.call<Replies>({ op: 'tcp', host: VIP.web, port: 80, count: 4, concurrency: 2 });
    expect(r.errors).toEqual([]);
    c.nodeExec(['ip', 'link', 'del', TUN]);
    const p = c.proxy!;
    const code = await Promise.race([p.exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 10_000))]);
    c.proxy = null;
    expect(code, p.output()).toBe(1);
    expect(p.output()).toContain(`svcplane proxy: ${TUN}: waiting for packets on the device failed (EBADF): it was deleted or closed; stopping so it can be started again`);
    expect(p.output()).toMatch(/proxy: saved [1-9]\d* flows to /);
    // The routes went with the device; their removal failing is not a cleanup failure.
    expect(p.output()).not.toContain('cleanup:');
    expect(c.nodeExec(['ip', 'rule', 'show'])).toBe(rulesBefore);
  }, 40_000);

  it('killed, it leaves Service traffic unroutable (not sent out by the default route); svcplane proxy --cleanup removes what it left (kube-proxy\'s --cleanup)', async () => {
    const rulesBefore = { v4: c.nodeExec(['ip', 'rule', 'show']), v6: c.nodeExec(['ip', '-6', 'rule', 'show']) };
    // A default route out of the node, as real nodes have: where Service traffic would leak.
    c.nodeExec(['ip', 'route', 'add', 'default', 'via', CLIENT_IP]);
    try {
      await c.startProxy(PROXY_ARGS());
      const killed = c.proxy!;
      killed.child.kill('SIGKILL');
      await killed.exited;
      c.proxy = null;
      // The device and the routes through it went with the process; its rules and fallbacks stay.
      expect(c.nodeExec(['ip', 'rule', 'show'])).toMatch(/^100:/m);
      expect(c.nodeExec(['ip', 'rule', 'show'])).not.toMatch(/^0:/m);
      const route = c.scope.exec(c.node, ['ip', 'route', 'get', VIP.web]);
      expect(route.code, route.stdout).not.toBe(0);
      expect(route.stderr).toMatch(/No route to host/);
      const route6 = c.scope.exec(c.node, ['ip', '-6', 'route', 'get', VIP6.web]);
      expect(route6.stderr).toMatch(/No route to host|Network is unreachable/);
      const r = await c.podAgent.call<Replies>({ op: 'tcp', host: VIP.web, port: 80, count: 1, concurrency: 1 });
      expect(r.replies).toEqual([]);
      expect(r.errors.join()).toMatch(/EHOSTUNREACH/);

      const said = c.nodeExec([process.execPath, CLI, 'proxy', '--cleanup']);
      expect(said).toMatch(/^proxy: cleanup: IPv4: removed [1-9]\d* rules and 1 routes$/m);
      expect(said).toMatch(/^proxy: cleanup: IPv6: removed [1-9]\d* rules and 1 routes$/m);
      expect(c.nodeExec(['ip', 'rule', 'show'])).toBe(rulesBefore.v4);
      expect(c.nodeExec(['ip', '-6', 'rule', 'show'])).toBe(rulesBefore.v6);
      expect(c.nodeExec(['ip', 'route', 'show', 'type', 'unreachable'])).toBe('');
      expect(c.nodeExec(['ip', '-6', 'route', 'show', 'type', 'unreachable'])).toBe('');
      // Nothing left: a second run removes nothing.
      expect(c.nodeExec([process.execPath, CLI, 'proxy', '--cleanup'])).toMatch(/^proxy: cleanup: IPv4: removed 0 rules and 0 routes\nproxy: cleanup: IPv6: removed 0 rules and 0 routes\nproxy: cleanup: nothing of kube-proxy's found\n/);
    } finally {
      c.nodeExec(['ip', 'route', 'del', 'default', 'via', CLIENT_IP]);
    }
  }, 30_000);
});
