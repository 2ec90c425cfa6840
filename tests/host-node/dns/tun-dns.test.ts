// Cluster DNS through a real TUN device (namespaces): the real `dig` in a client namespace asks the
// cluster DNS address, which the node namespace routes into the TUN this process serves with the
// core. UDP queries are answered by the core in the slot; a headless answer too big for UDP comes
// back truncated and dig's TCP retry reaches `svcplane dns` listening in the node namespace through
// the node proxy's Service for address:53/TCP (DNAT + masquerade by the core). Root only.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { netnsSupport, missingTools } from '../../support/netns.js';
import { buildTunCluster, type TunCluster, MASQ_IP, NODE_IP, TUN_NAME, SVC_CIDR } from '../../support/netns-tun.js';
import { Dataplane } from '../../../host-node/dataplane.js';
import { TunDevice } from '../../../host-node/io/tun.js';
import { ProxyLoop } from '../../../host-node/io/proxy-loop.js';
import { readDnsCounters, type DnsCore } from '../../../host-node/dns/table.js';
import { FIXTURE, manyEndpoints } from '../../assembly/dns/msg.js';

const run = promisify(execFile);
// The cluster DNS address, inside the Service range the node routes into the TUN.
const DNS = SVC_CIDR.replace(/0\/24$/, '53');
const LISTEN_PORT = 5300;

const support = netnsSupport();
const why = !support.ok ? support.reason : !existsSync('/dev/net/tun') ? 'no /dev/net/tun (load the tun module)'
  : missingTools(['dig']).length ? 'dig is not installed (Debian dnsutils)' : '';
if (why) console.warn(`cluster DNS TUN tests cannot run here: ${why}`);

describe.runIf(why === '')('cluster DNS through the TUN proxy (namespaces)', () => {
  let cluster: TunCluster;
  let dp: Dataplane;
  let tun: TunDevice;
  let loop: ProxyLoop;
  let listener: ChildProcess | null = null;
  let dir = '';
  const counters = () => readDnsCounters({ ...(dp.core as unknown as DnsCore), memory: dp.core.memory });

  beforeAll(async () => {
    cluster = await buildTunCluster('dns');
    dir = mkdtempSync(join(tmpdir(), 'svp-dns-tun-'));
    const manifests = FIXTURE + manyEndpoints(120);
    writeFileSync(join(dir, 'cluster.yaml'), manifests);
    // The node's DNS listener, in the node namespace, answering from the same manifests.
    listener = spawn('ip', ['netns', 'exec', cluster.node.name, process.execPath, 'bin/svcplane.js', 'dns',
      '--listen', `${NODE_IP}:${LISTEN_PORT}`, '--manifests', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('svcplane dns did not start')), 30_000);
      listener!.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('listening on')) { clearTimeout(t); resolve(); } });
      listener!.on('exit', (code) => { clearTimeout(t); reject(new Error(`svcplane dns exited ${code}`)); });
    });
    dp = await Dataplane.create({ nodeIPs: [NODE_IP], masqueradeIPs: [MASQ_IP], clusterDNS: DNS, seed: 7 });
    expect(dp.dns(manifests).issues).toEqual([]);
    // DNS over TCP: the cluster DNS address's TCP port is a Service to the node's listener.
    dp.setServices([{ name: 'kube-system/kube-dns:dns-tcp', vip: DNS, port: 53, protocol: 'TCP', endpoints: [`${NODE_IP}:${LISTEN_PORT}`], masqueradeAll: true }]);
    tun = TunDevice.open({ name: TUN_NAME, netnsPath: cluster.nodeNetnsPath });
    loop = new ProxyLoop(dp, tun, { batchSize: 64 });
    loop.start();
  });

  afterAll(() => {
    loop?.stop(true);
    listener?.kill('SIGTERM');
    cluster?.scope.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function dig(...args: string[]): Promise<string> {
    const { stdout } = await run('ip', ['netns', 'exec', cluster.client.name, 'dig', `@${DNS}`, '+tries=1', '+time=5', ...args]);
    return stdout;
  }

  it('answers dig over UDP in the core', async () => {
    const before = dp.stats().verdict_reply;
    const out = await dig('kubernetes.default.svc.cluster.local', 'A');
    expect(out).toMatch(/status: NOERROR/);
    expect(out).toMatch(/^kubernetes\.default\.svc\.cluster\.local\.\s+5\s+IN\s+A\s+10\.3\.0\.1$/m);
    expect(out).toMatch(/SERVER: 198\.18\.96\.53#53\(198\.18\.96\.53\) \(UDP\)/);
    expect(dp.stats().verdict_reply).toBeGreaterThan(before);
    expect((await dig('nope.default.svc.cluster.local')).match(/status: (\w+)/)![1]).toBe('NXDOMAIN');
  });

  it('a truncated answer is retried over TCP and reaches the node listener through the core', async () => {
    const tcpBefore = counters().tcp_passed!;
    const out = await dig('many.default.svc.cluster.local', 'A');
    expect(out).toMatch(/Truncated, retrying in TCP mode/);
    expect(out).toMatch(/\(TCP\)/);
    expect([...out.matchAll(/^many\.default\.svc\.cluster\.local\.\s+5\s+IN\s+A\s+10\.4\.0\.\d+$/gm)].length).toBe(120);
    expect(counters().tcp_passed!).toBeGreaterThan(tcpBefore);
    expect(dp.stats().dnat).toBeGreaterThan(0);
    expect(loop.stats().writeErrors).toBe(0);
  });
});
