// `svcplane proxy` applies kube-proxy's settings to the core as kube-proxy applies them to the
// kernel. The conntrack section, as kube-proxy writes the kernel's sysctls: by default idle
// established TCP flows live 24 h and CLOSE_WAIT ones 1 h (not Linux's 5 days and 60 s); the flags
// change or (0) leave them; the UDP timeouts apply when given; tcpBeLiberal takes the INVALID drop
// rule out; maxPerCore / min size the table. In ipvs mode, kube-proxy's IPVS timeouts; the
// masquerade bit in the rules; --detect-local-mode NodeCIDR; and kube-proxy's /proxyMode, /healthz
// and /configz beside /metrics, which show them. A proxy in userspace mode (no root, no TUN, loopback only) with
// flows pushed through its core.
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NodeProxy } from '../../../host-node/io/node-proxy.js';
import { startUserspaceProxy, freePort, type UserspaceProxy } from '../../support/userspace-proxy.js';
import { buildPacket, decodePacket } from '../../../host-node/core/packet.js';

const VIP = '198.18.96.10';
const EP = '198.18.100.2';
const CLIENT = '198.18.50.1';
const MANIFESTS = `apiVersion: v1
kind: Service
metadata: { name: web, namespace: default }
spec: { clusterIP: ${VIP}, ports: [{ name: http, port: 80, targetPort: 8080 }, { name: dns, port: 53, protocol: UDP, targetPort: 5353 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-1, namespace: default, labels: { kubernetes.io/service-name: web } }
addressType: IPv4
ports: [{ name: http, port: 8080 }, { name: dns, port: 5353, protocol: UDP }]
endpoints: [{ addresses: [${EP}] }]
`;

let running: UserspaceProxy | null = null;
let dir = '';
const logs: string[] = [];
afterEach(async () => {
  await running?.stop();
  running = null;
  dir = '';
  logs.length = 0;
});

async function start(extra: string[], node = '', ready?: (p: NodeProxy) => boolean): Promise<NodeProxy> {
  running = await startUserspaceProxy({ 'web.yaml': MANIFESTS, ...(node ? { 'node.yaml': node } : {}) }, extra, {
    log: (m) => logs.push(m), tmpPrefix: 'svp-ct-settings-', ...(ready ? { ready } : {}),
  });
  dir = running.dir;
  return running.proxy;
}

// Far from the proxy's own clock, so nothing it does reaps these flows meanwhile.
const T = 1e9;

/** Remaining lifetime (ms) of the TCP flow after: handshake, then (closeWait) the server's FIN and the client's ACK. */
function tcpFlow(p: NodeProxy, closeWait = false, client = CLIENT): { state: string | undefined; left: number } {
  const send = (from: 'client' | 'server', flags: string, at: number): void => {
    const pkt = from === 'client'
      ? buildPacket({ src: client, dst: VIP, proto: 'tcp', sport: 40000, dport: 80, flags })
      : buildPacket({ src: EP, dst: client, proto: 'tcp', sport: 8080, dport: 40000, flags });
    const r = p.dp.process(pkt, at);
    expect(r.verdict, `${from} ${flags}`).toBe('FORWARD');
  };
  send('client', 'S', T);
  send('server', 'SA', T + 1);
  send('client', 'A', T + 2);
  if (closeWait) {
    send('server', 'FA', T + 3);
    send('client', 'A', T + 4);
  }
  const at = T + 10;
  const e = p.dp.conntrack(at).find((x) => x.proto === 'tcp' && x.original.src === client);
  return { state: e?.state, left: (e?.expiresMs ?? 0) - at };
}

/** Remaining lifetime (ms) of a UDP flow from client port `sport`: one packet, or (replied) a stream. */
function udpFlow(p: NodeProxy, replied: boolean): number {
  const at = T;
  const sport = replied ? 41001 : 41000;
  expect(p.dp.process(buildPacket({ src: CLIENT, dst: VIP, proto: 'udp', sport, dport: 53 }), at).verdict).toBe('FORWARD');
  if (replied) {
    expect(p.dp.process(buildPacket({ src: EP, dst: CLIENT, proto: 'udp', sport: 5353, dport: sport }), at + 1).verdict).toBe('FORWARD');
    // Still two-way after the kernel's 2 s stream delay: a stream.
    expect(p.dp.process(buildPacket({ src: CLIENT, dst: VIP, proto: 'udp', sport, dport: 53 }), at + 2500).verdict).toBe('FORWARD');
  }
  const now = at + 3000;
  const e = p.dp.conntrack(now).find((x) => x.proto === 'udp' && x.original.sport === sport);
  return (e?.expiresMs ?? 0) - now;
}

const H = 3_600_000;

describe('svcplane proxy: kube-proxy\'s conntrack, IPVS and masquerade settings', () => {
  it('by default keeps idle established TCP flows 24 h and CLOSE_WAIT ones 1 h, as kube-proxy sets them', async () => {
    const p = await start([]);
    expect(tcpFlow(p)).toEqual({ state: 'ESTABLISHED', left: 24 * H - 8 });
    expect(logs).toContain(`proxy: conntrack: ${p.dp.stats().conntrack_capacity} flows, tcp established 86400s, tcp close-wait 3600s`);
  });

  it('CLOSE_WAIT: 1 h by default', async () => {
    const p = await start([]);
    expect(tcpFlow(p, true)).toEqual({ state: 'CLOSE_WAIT', left: H - 6 });
  });

  it('the flags change them, and 0 leaves Linux\'s defaults (5 days, 60 s)', async () => {
    let p = await start(['--conntrack-tcp-timeout-established', '2h30m', '--conntrack-tcp-timeout-close-wait', '90s']);
    expect(tcpFlow(p)).toEqual({ state: 'ESTABLISHED', left: 2.5 * H - 8 });
    await running!.stop();
    running = null;
    p = await start(['--conntrack-tcp-timeout-close-wait', '90s']);
    expect(tcpFlow(p, true)).toEqual({ state: 'CLOSE_WAIT', left: 90_000 - 6 });
    await running!.stop();
    running = null;
    p = await start(['--conntrack-tcp-timeout-established', '0', '--conntrack-tcp-timeout-close-wait', '0']);
    expect(tcpFlow(p)).toEqual({ state: 'ESTABLISHED', left: 5 * 24 * H - 8 });
    expect(logs).toContain(`proxy: conntrack: ${p.dp.stats().conntrack_capacity} flows`);
  });

  it('the UDP timeouts apply only when given (kube-proxy leaves Linux\'s 30 s and 120 s otherwise)', async () => {
    let p = await start([]);
    expect(udpFlow(p, false)).toBe(30_000 - 3000);
    expect(udpFlow(p, true)).toBe(120_000 - 500);
    await running!.stop();
    running = null;
    p = await start(['--conntrack-udp-timeout', '10s', '--conntrack-udp-timeout-stream', '5m']);
    expect(udpFlow(p, false)).toBe(10_000 - 3000);
    expect(udpFlow(p, true)).toBe(300_000 - 500);
  });

  it('tcpBeLiberal takes kube-proxy\'s rule dropping conntrack-INVALID packets out', async () => {
    const invalid = /-A KUBE-FORWARD -m conntrack --ctstate INVALID .*-j DROP/;
    let p = await start([]);
    expect(p.dp.iptablesSave()).toMatch(invalid);
    await running!.stop();
    running = null;
    p = await start(['--conntrack-tcp-be-liberal']);
    expect(p.dp.iptablesSave()).not.toMatch(invalid);
    expect(logs.some((l) => l.includes('tcp be-liberal'))).toBe(true);
  });

  it('maxPerCore and min size the table (max(maxPerCore × CPUs, min), rounded up to a power of two)', async () => {
    const n = cpus().length;
    let p = await start(['--conntrack-max-per-core', '16384', '--conntrack-min', '1024']);
    const want = 2 ** Math.ceil(Math.log2(16384 * n));
    expect(p.dp.stats().conntrack_capacity).toBe(want);
    await running!.stop();
    running = null;
    p = await start(['--conntrack-max-per-core', '16', '--conntrack-min', '5000']);
    expect(p.dp.stats().conntrack_capacity).toBe(16 * n > 5000 ? 2 ** Math.ceil(Math.log2(16 * n)) : 8192);
  });

  it('ipvs mode: kube-proxy\'s IPVS timeouts as `ipvsadm --set` takes them, 0 leaving IPVS\'s own', async () => {
    let p = await start(['--userspace-core', 'ipvs']);
    expect(p.dp.ipvsadm(['-L', '--timeout']).stdout).toContain('Timeout (tcp tcpfin udp): 900 120 300');
    expect(logs.some((l) => l.startsWith('proxy: ipvs timeouts'))).toBe(false);
    await running!.stop();
    running = null;
    p = await start(['--userspace-core', 'ipvs', '--ipvs-tcp-timeout', '15m30s', '--ipvs-udp-timeout', '20s']);
    expect(p.dp.ipvsadm(['-L', '--timeout']).stdout).toContain('Timeout (tcp tcpfin udp): 930 120 20');
    expect(logs).toContain('proxy: ipvs timeouts: tcp 930s, tcpfin 120s, udp 20s');
    await running!.stop();
    running = null;
    // Other modes have no IPVS to set.
    logs.length = 0;
    p = await start(['--ipvs-tcpfin-timeout', '30s']);
    expect(logs.some((l) => l.startsWith('proxy: conntrack:'))).toBe(true);
    expect(logs.some((l) => l.startsWith('proxy: ipvs timeouts'))).toBe(false);
  });

  it('--iptables-masquerade-bit: the rules mark and match that bit, and traffic from outside is still masqueraded', async () => {
    for (const [flags, mark] of [[[], '0x00004000'], [['--iptables-masquerade-bit', '15'], '0x00008000']] as const) {
      const p = await start(['--cluster-cidr', '198.19.0.0/16', ...flags]);
      const rules = p.dp.iptablesSave();
      expect(rules).toContain(`-A KUBE-MARK-MASQ -j MARK --or-mark ${mark}`);
      expect(rules).toContain(`-A KUBE-POSTROUTING -m mark ! --mark ${mark}/${mark} -j RETURN`);
      expect(p.dp.process(buildPacket({ src: CLIENT, dst: VIP, proto: 'tcp', sport: 40000, dport: 80, flags: 'S' }), T).verdict).toBe('FORWARD');
      const e = p.dp.conntrack(T).find((x) => x.proto === 'tcp' && x.original.src === CLIENT);
      expect(e?.reply.src).toBe(EP);
      expect(e?.reply.dst).not.toBe(CLIENT);
      await running!.stop();
      running = null;
    }
  });

  it('--detect-local-mode NodeCIDR: nothing syncs before the Node has pod CIDRs; then they tell pods from outside, and follow a change', async () => {
    const nodeYaml = (cidr: string): string => `apiVersion: v1\nkind: Node\nmetadata: { name: n1 }\nspec: { podCIDRs: [${cidr}] }\n`;
    for (const core of ['iptables', 'direct'] as const) {
      // Nothing to wait for: nothing syncs before the Node has pod CIDRs.
      const p = await start(['--userspace-core', core, '--detect-local-mode', 'NodeCIDR', '--cluster-cidr', '198.19.0.0/16'],
        'apiVersion: v1\nkind: Node\nmetadata: { name: n1 }\n', () => true);
      const until = async (what: string, ok: () => boolean): Promise<void> => {
        const end = Date.now() + 5000;
        while (!ok()) {
          if (Date.now() > end) throw new Error(`${core}: ${what} after 5 s (${logs.join(' | ')})`);
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      await until('no wait logged', () => logs.some((l) => l.startsWith('proxy: waiting for Node n1 to have spec.podCIDRs')));
      await new Promise((r) => setTimeout(r, 200));
      expect(p.syncs, core).toBe(0);
      expect(p.dp.process(buildPacket({ src: CLIENT, dst: VIP, proto: 'tcp', sport: 40000, dport: 80, flags: 'S' }), T).verdict).not.toBe('FORWARD');

      // Source address a SYN from `src` leaves with (masqueraded or not).
      let sport = 41000;
      const sourceFrom = (src: string): string => {
        const r = p.dp.process(buildPacket({ src, dst: VIP, proto: 'tcp', sport: sport++, dport: 80, flags: 'S' }), T);
        expect(r.verdict, `${core} ${src}`).toBe('FORWARD');
        return decodePacket(r.packet!).src;
      };
      writeFileSync(join(dir, 'node.yaml'), nodeYaml('198.19.5.0/24'));
      await until('no sync', () => p.syncs > 0);
      expect(logs).toContain('proxy: local traffic (NodeCIDR): from Node n1\'s pod CIDRs 198.19.5.0/24');
      if (core === 'iptables') expect(p.dp.iptablesSave()).toMatch(/! -s 198\.19\.5\.0\/24 -j KUBE-MARK-MASQ/);
      expect(sourceFrom('198.19.5.7')).toBe('198.19.5.7');
      // In the cluster CIDR but not on this node: not this node's pod.
      expect(sourceFrom('198.19.9.9')).not.toBe('198.19.9.9');

      writeFileSync(join(dir, 'node.yaml'), nodeYaml('198.19.9.0/24'));
      await until('no resync for the new pod CIDRs', () => logs.some((l) => l.includes('(were 198.19.5.0/24)')));
      await until('rules not rendered again', () => p.dp.options.podCIDR?.[0] === '198.19.9.0/24' && p.lastSyncError === '' && sourceFromQuiet(p, '198.19.9.10') === '198.19.9.10');
      expect(sourceFrom('198.19.5.8')).not.toBe('198.19.5.8');
      await running!.stop();
      running = null;
      logs.length = 0;
    }
  });

  it('/healthz turns 503 once changes have waited twice the sync period for a first sync that never comes, as kube-proxy\'s does', async () => {
    // NodeCIDR with a Node that has no pod CIDRs: no sync can run. kube-proxy stamps its health
    // as its sync loop starts (proxier.go SyncLoop), so the queued Services make it unhealthy.
    const port = await freePort();
    await start(['--healthz-bind-address', `127.0.0.1:${port}`, '--sync-period', '100ms', '--detect-local-mode', 'NodeCIDR',
      '--cluster-cidr', '198.19.0.0/16'], 'apiVersion: v1\nkind: Node\nmetadata: { name: n1 }\n', () => true);
    const healthz = async (): Promise<{ status: number; body: { healthy: boolean; status?: Record<string, { healthy: boolean }> } }> => {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`);
      return { status: r.status, body: await r.json() as { healthy: boolean } };
    };
    const end = Date.now() + 5000;
    let h = await healthz();
    while (h.status === 200 && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 50));
      h = await healthz();
    }
    expect(h.status).toBe(503);
    expect(h.body.healthy).toBe(false);
    expect(h.body.status?.IPv4?.healthy).toBe(false);
    expect((await fetch(`http://127.0.0.1:${port}/livez`)).status).toBe(503);
  });

  it('a sync that fails still counts the Service changes it took (kube-proxy counts each as it arrives) and its time', async () => {
    const p = await start([]);
    const metric = async (re: RegExp): Promise<number> => Number(re.exec(await p.metrics.text())?.[1] ?? NaN);
    const changes = (): Promise<number> => metric(/^kubeproxy_sync_proxy_rules_service_changes_total (\S+)$/m);
    const syncs = (): Promise<number> => metric(/^kubeproxy_sync_proxy_rules_duration_seconds_count\{ip_family="IPv4"\} (\S+)$/m);
    const before = await changes();
    const synced = await syncs();
    expect(before).toBeGreaterThan(0);
    expect(synced).toBeGreaterThan(0);
    // The next sync fails (a fault injected where the core is programmed).
    (p.objects as { sync: unknown }).sync = () => { throw new Error('injected sync failure'); };
    writeFileSync(join(dir, 'api.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: { name: api, namespace: default }\nspec: { clusterIP: 198.18.96.11, ports: [{ port: 80 }] }\n');
    const end = Date.now() + 5000;
    while (p.lastSyncError === '' && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(p.lastSyncError).toBe('injected sync failure');
    expect(await changes()).toBeGreaterThan(before);
    // proxier.go observes every sync's latency, failed ones too.
    expect(await syncs()).toBeGreaterThan(synced);
  });

  it('the metrics server answers kube-proxy\'s /proxyMode, /healthz and /configz (the settings in effect)', async () => {
    const port = await freePort();
    const p = await start(['--metrics-bind-address', `127.0.0.1:${port}`, '--conntrack-tcp-timeout-close-wait', '90s', '--iptables-masquerade-bit', '12']);
    const get = async (path: string): Promise<{ type: string | null; body: string }> => {
      const r = await fetch(`http://127.0.0.1:${port}${path}`);
      expect(r.status, path).toBe(200);
      return { type: r.headers.get('content-type'), body: await r.text() };
    };
    expect(await get('/proxyMode')).toEqual({ type: 'text/plain; charset=utf-8', body: 'userspace' });
    expect((await get('/healthz')).body).toBe('ok');
    const z = JSON.parse((await get('/configz')).body) as Record<string, Record<string, unknown>>;
    expect(z['kubeproxy.config.k8s.io']).toMatchObject({
      kind: 'KubeProxyConfiguration', mode: 'userspace', hostnameOverride: 'n1', oomScoreAdj: -999,
      conntrack: { tcpEstablishedTimeout: '24h0m0s', tcpCloseWaitTimeout: '1m30s', udpTimeout: '0s', maxPerCore: null },
      iptables: { masqueradeAll: false, masqueradeBit: 12, minSyncPeriod: '0s', syncPeriod: '30s' },
    });
    expect(z.svcplane).toMatchObject({ conntrackMax: p.dp.stats().conntrack_capacity, userspaceCore: 'iptables', conntrackCheckpointPeriod: '10s' });
    expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${port}/nothing`)).status).toBe(404);
  });

  it('runs from a kube-proxy ConfigMap as kubeadm writes it (kube-proxy\'s defaults), the manifests on the command line', async () => {
    const cm = join(mkdtempSync(join(tmpdir(), 'svp-ct-cm-')), 'config.conf');
    writeFileSync(cm, readFileSync(join(import.meta.dirname, '..', '..', 'support', 'kubeadm-kube-proxy.yaml'), 'utf8'));
    try {
      // --healthz-bind-address "": the test binds nothing outside loopback.
      const p = await start(['--config', cm]);
      // A pod of the ConfigMap's clusterCIDR keeps its address, and its flow kube-proxy's 24 h.
      expect(tcpFlow(p, false, '10.244.1.5')).toEqual({ state: 'ESTABLISHED', left: 24 * H - 8 });
      const r = p.dp.process(buildPacket({ src: CLIENT, dst: VIP, proto: 'tcp', sport: 40001, dport: 80, flags: 'S' }), T);
      expect(decodePacket(r.packet!).src).not.toBe(CLIENT);
      expect(p.cfg).toMatchObject({ clusterCIDRs: ['10.244.0.0/16'], minSyncPeriodMs: 0, manifests: dir });
      expect(p.cfg.kubeconfig).toBeUndefined();
      expect(p.dp.iptablesSave()).toMatch(/! -s 10\.244\.0\.0\/16 -j KUBE-MARK-MASQ/);
    } finally {
      rmSync(join(cm, '..'), { recursive: true, force: true });
    }
  });
});

let quietPort = 50000;
/** The source a SYN from `src` leaves with, or '' when it is not forwarded (no assertion). */
function sourceFromQuiet(p: NodeProxy, src: string): string {
  const r = p.dp.process(buildPacket({ src, dst: VIP, proto: 'tcp', sport: quietPort++, dport: 80, flags: 'S' }), T);
  return r.verdict === 'FORWARD' ? decodePacket(r.packet!).src : '';
}
