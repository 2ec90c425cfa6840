// End to end through a real TUN device: a client namespace talks to a Service VIP routed into the
// TUN of a "node" namespace; this test process attaches to that TUN (TunDevice.open with the node's
// netns path), runs the WebAssembly core over every batch and writes the rewritten packets back
// for the kernel to route to two backend namespaces. Root only (namespaces, /dev/net/tun).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { netnsSupport } from '../../support/netns.js';
import {
  buildTunCluster, type TunCluster, VIP, MASQ_IP, NODE_IP, BACKENDS, TCP_PORT, UDP_PORT, TUN_NAME,
} from '../../support/netns-tun.js';
import { Dataplane } from '../../../host-node/core/dataplane.js';
import { TunDevice, TunError } from '../../../host-node/io/tun.js';
import { ProxyLoop } from '../../../host-node/io/proxy-loop.js';

const support = netnsSupport();
const why = !support.ok ? support.reason : !existsSync('/dev/net/tun') ? 'no /dev/net/tun (load the tun module)' : '';
if (why) console.warn(`tun end-to-end tests cannot run here: ${why}`);

interface Replies { replies: string[]; errors: string[] }

// Once as a plain device, once with checksum/segmentation offloads (virtio header on every packet).
for (const offload of [false, true]) describe.runIf(why === '')(`TUN proxy end to end (namespaces${offload ? ', offloads' : ''})`, () => {
  let cluster: TunCluster;
  let dp: Dataplane;
  let tun: TunDevice;
  let loop: ProxyLoop;
  let prefix = '';
  let homeNetns = '';

  beforeAll(async () => {
    homeNetns = readlinkSync('/proc/thread-self/ns/net');
    cluster = await buildTunCluster(offload ? 'tunoff' : 'tun');
    prefix = cluster.scope.prefix;
    dp = await Dataplane.create({ nodeIPs: [NODE_IP], masqueradeIPs: [MASQ_IP], seed: 7 });
    const endpoints = BACKENDS.map((b) => `${b.ip}:${TCP_PORT}`);
    dp.setServices([
      { name: 'default/web:http', vip: VIP, port: 80, endpoints, masqueradeAll: true },
      { name: 'default/empty:http', vip: VIP, port: 81, endpoints: [] },
      { name: 'default/echo:udp', vip: VIP, port: 53, protocol: 'UDP', endpoints: BACKENDS.map((b) => `${b.ip}:${UDP_PORT}`), masqueradeAll: true },
    ]);
    tun = TunDevice.open({ name: TUN_NAME, netnsPath: cluster.nodeNetnsPath, offload });
    expect(tun.vnetHdr).toBe(offload ? 12 : 0);
    loop = new ProxyLoop(dp, tun, { batchSize: 64 });
    loop.start();
  });

  afterAll(() => {
    // The fd holds the node namespace alive: close it before the namespaces go.
    loop?.stop(true);
    cluster?.scope.destroy();
    if (prefix) {
      const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith(prefix));
      expect(left).toEqual([]);
    }
  });

  it('attaches to the device in the node namespace and leaves this thread in its own', () => {
    // Carrier (LOWER_UP) comes on only while a file descriptor is attached to the device.
    expect(cluster.scope.ip(cluster.node, ['link', 'show', TUN_NAME])).toMatch(/LOWER_UP/);
    expect(readlinkSync('/proc/thread-self/ns/net')).toBe(homeNetns);
    expect(() => TunDevice.open({ name: 'svp-probe', netnsPath: '/run/netns/svp-no-such-namespace' })).toThrow(TunError);
    expect(readlinkSync('/proc/thread-self/ns/net')).toBe(homeNetns);
    expect(() => TunDevice.open({ name: 'x'.repeat(16) })).toThrow(/1-15 bytes/);
    expect(() => TunDevice.open({ name: '' })).toThrow(/1-15 bytes/);
  });

  it('makes the conntrack table resident in small steps after start (no page fault waits on new connections)', async () => {
    const deadline = Date.now() + 5000;
    while (dp.warmConntrack(0) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(dp.warmConntrack(0)).toBe(0);
  });

  it('spreads TCP connections to the VIP over both backends, masqueraded, with correct replies', async () => {
    const r = await cluster.clientAgent.call<Replies>({ op: 'tcp', host: VIP, port: 80, count: 40, concurrency: 4 });
    expect(r.errors).toEqual([]);
    expect(r.replies).toHaveLength(40);
    const seen = new Map<string, number>();
    for (const line of r.replies) {
      const [name, peer, payload] = line.split(' ');
      expect(peer).toBe(MASQ_IP);
      expect(payload).toMatch(/^req-\d+$/);
      seen.set(name!, (seen.get(name!) ?? 0) + 1);
    }
    expect([...seen.keys()].sort()).toEqual(BACKENDS.map((b) => b.name));
    const s = dp.stats();
    expect(s.dnat).toBeGreaterThanOrEqual(40);
    expect(loop.stats().writeErrors).toBe(0);
  });

  it('echoes UDP through the VIP from both backends', async () => {
    const r = await cluster.clientAgent.call<Replies>({ op: 'udp', host: VIP, port: 53, count: 24 });
    expect(r.errors).toEqual([]);
    expect(r.replies).toHaveLength(24);
    const names = new Set<string>();
    r.replies.forEach((line, i) => {
      const [name, peer, payload] = line.split(' ');
      expect(peer).toBe(MASQ_IP);
      expect(payload).toBe(`dgram-${i}`);
      names.add(name!);
    });
    expect([...names].sort()).toEqual(BACKENDS.map((b) => b.name));
  });

  it('answers a Service without endpoints with a reject the kernel routes back to the client', async () => {
    const before = dp.stats().verdict_reply;
    const r = await cluster.clientAgent.call<Replies>({ op: 'tcp', host: VIP, port: 81, count: 3, concurrency: 1 });
    expect(r.replies).toEqual([]);
    expect(r.errors).toEqual(['ECONNREFUSED', 'ECONNREFUSED', 'ECONNREFUSED']);
    expect(dp.stats().verdict_reply - before).toBeGreaterThanOrEqual(3);
  });

  it('refuses a port of the VIP that no Service has (as kube-proxy\'s nftables mode does), rather than looping it', async () => {
    const before = dp.stats().verdict_reply;
    const r = await cluster.clientAgent.call<Replies>({ op: 'tcp', host: VIP, port: 9999, count: 2, concurrency: 1 });
    expect(r.errors).toEqual(['ECONNREFUSED', 'ECONNREFUSED']);
    expect(dp.stats().verdict_reply - before).toBeGreaterThanOrEqual(2);
  });

  it('hands a packet the core passes back to the kernel, which ends a route loop by TTL', async () => {
    // No Service at this address of the routed range (and no service CIDR told to the core, which
    // would drop it): the core says PASS, the proxy writes the packet back unchanged, and the route
    // sends it into the TUN again with its TTL one lower — until the kernel drops it. Bounded
    // (≤ 64 passes for Linux's default TTL), never an endless loop.
    const b = loop.stats();
    const passBefore = dp.stats().verdict_pass;
    const r = await cluster.clientAgent.call<Replies>({ op: 'udp', host: '198.18.96.11', port: 9999, count: 1 });
    const a = loop.stats();
    expect(r.errors).toEqual(['timeout']);
    const passes = a.packetsIn - b.packetsIn;
    expect(passes).toBeGreaterThanOrEqual(1);
    expect(passes).toBeLessThanOrEqual(64);
    expect(a.packetsOut - b.packetsOut).toBe(passes);
    expect(dp.stats().verdict_pass - passBefore).toBe(passes);
  });

  it('carries a few seconds of connection churn without errors', async () => {
    const before = loop.stats();
    const cpu0 = process.cpuUsage();
    const r = await cluster.clientAgent.call<{ ok: number; errors: Record<string, number>; ms: number }>(
      { op: 'load', host: VIP, port: 80, ms: 3000, concurrency: 16 });
    const after = loop.stats();
    const cpu = process.cpuUsage(cpu0);
    const rate = Math.round((r.ok * 1000) / r.ms);
    const pkts = after.packetsIn - before.packetsIn;
    console.log(`tun proxy${offload ? ' (offloads)' : ''}: ${rate} conn/s over ${r.ms} ms (${r.ok} ok, errors ${JSON.stringify(r.errors)}); ` +
      `${pkts} packets in ${after.batches - before.batches} batches, ${after.wakeups - before.wakeups} wake-ups, ` +
      `${after.writeErrors} write errors, ${after.dropped - before.dropped} dropped; proxy CPU ${Math.round((cpu.user + cpu.system) / 1000)} ms ` +
      `(${((cpu.user + cpu.system) / Math.max(1, pkts)).toFixed(1)} µs/packet, mostly the TUN write running the kernel's forwarding path)`);
    expect(r.ok).toBeGreaterThan(100);
    expect(Object.values(r.errors).reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(r.ok / 100);
    // At least 5 packets per connection (SYN, ACK/request, FIN, ACK… both ways) passed the core.
    expect(pkts).toBeGreaterThanOrEqual(r.ok * 5);
    // With offloads the kernel hands over TCP with partial checksums, which the backends accepted.
    if (offload) expect(after.csumPartial - before.csumPartial).toBeGreaterThan(r.ok);
    else expect(after.csumPartial).toBe(0);
  }, 30_000);
});
