// `svcplane proxy` with TUN offloads (the default) against the same proxy with --no-tun-offload:
// a bulk TCP upload through a ClusterIP must arrive byte for byte (SHA-256 at both ends) with the
// receiving kernels verifying every checksum. The node's veths have transmit checksumming turned
// off (ethtool -K … tx off), so the kernel finishes each partial checksum in software from the
// pseudo-header sum the proxy left in the packet: a wrong NAT update of that sum shows up as
// TcpInCsumErrors at the receiver and a stalled transfer, which between veths with offloads on
// would be invisible (CHECKSUM_PARTIAL is trusted end to end). With offloads the device must also
// really carry super-packets (more bytes per packet than the MTU). Root, /dev/net/tun and ethtool.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { missingTools, netnsSupport } from '../support/netns.js';
import { E2ECluster, BACKENDS, TUN, type ProxyProcess } from './cluster.js';
import { scaleManifests, BULK } from './manifests.js';

const support = netnsSupport();
const tools = support.ok ? missingTools(['ethtool', 'nstat']) : [];
const why = !support.ok ? support.reason
  : !existsSync('/dev/net/tun') ? 'no /dev/net/tun (load the tun module)'
    : tools.length ? `missing tools: ${tools.join(', ')} (apt-get install ethtool iproute2)` : '';
if (why) console.warn(`svcplane proxy offload tests cannot run here: ${why}`);

interface Bulk { sent: number; sentSha256: string; received: number; receivedSha256: string; ms: number; failed?: string }

const BYTES = 48 << 20;

describe.runIf(why === '')('svcplane proxy with TUN offloads (namespaces)', () => {
  let c: E2ECluster;

  beforeAll(async () => {
    c = new E2ECluster('off');
    try {
      await c.build();
      c.writeManifests(scaleManifests(0));
      // Every node-side link finishes checksums in software (and so segments in software too).
      for (const dev of ['cli0', ...BACKENDS.map((b) => `${b.name}0`)]) c.nodeExec(['ethtool', '-K', dev, 'tx', 'off']);
    } catch (e) {
      await c.destroy();
      throw e;
    }
  }, 60_000);

  afterAll(async () => {
    await c?.destroy();
  });

  /** TcpInCsumErrors summed over the client and both backends (nstat -a: absolute counters). */
  function csumErrors(): number {
    let n = 0;
    for (const ns of [c.client, ...c.backends]) {
      const m = /TcpInCsumErrors\s+(\d+)/.exec(c.scope.must(ns, ['nstat', '-az', 'TcpInCsumErrors']));
      n += m ? Number(m[1]) : 0;
    }
    return n;
  }

  /** Packets and bytes the proxy's device took in, from the kernel's link statistics (its tx side). */
  function tunTx(): { packets: number; bytes: number } {
    const [link] = JSON.parse(c.nodeExec(['ip', '-s', '-j', 'link', 'show', TUN])) as { stats64: { tx: { packets: number; bytes: number } } }[];
    return link!.stats64.tx;
  }

  /** The proxy's svcplane_tun_offload_packets_total for `kind`. */
  function offloadMetric(kind: string): number {
    const m = c.nodeExec(['curl', '-sf', 'http://127.0.0.1:10249/metrics']);
    return Number(new RegExp(`^svcplane_tun_offload_packets_total\\{kind="${kind}"\\} (\\d+)`, 'm').exec(m)?.[1] ?? NaN);
  }

  async function upload(args: string[]): Promise<{ r: Bulk; perPacket: number; errors: number; gso: number; proxy: ProxyProcess }> {
    const proxy = await c.startProxy(args);
    try {
      const errors0 = csumErrors();
      const tx0 = tunTx();
      const r = await c.clientAgent.call<Bulk>({ op: 'bulk', host: BULK.vip, port: BULK.port, bytes: BYTES, timeoutMs: 30_000 });
      const tx = tunTx();
      const gso = offloadMetric('gso');
      return { r, perPacket: (tx.bytes - tx0.bytes) / Math.max(1, tx.packets - tx0.packets), errors: csumErrors() - errors0, gso, proxy };
    } finally {
      expect(await c.stopProxy()).toBe(0);
    }
  }

  it('delivers a bulk upload intact through a ClusterIP with offloads on, in super-packets', async () => {
    const { r, perPacket, errors, gso } = await upload([]);
    expect(r.failed).toBeUndefined();
    expect(r.received).toBe(BYTES);
    expect(r.receivedSha256).toBe(r.sentSha256);
    expect(errors).toBe(0);
    expect(perPacket).toBeGreaterThan(1500);
    expect(gso).toBeGreaterThan(0);
  }, 60_000);

  it('delivers the same upload intact with --no-tun-offload, one MTU-sized packet at a time', async () => {
    const { r, perPacket, errors, gso } = await upload(['--no-tun-offload']);
    expect(r.failed).toBeUndefined();
    expect(r.received).toBe(BYTES);
    expect(r.receivedSha256).toBe(r.sentSha256);
    expect(errors).toBe(0);
    expect(perPacket).toBeLessThanOrEqual(1500);
    expect(gso).toBe(0);
  }, 60_000);
});
