// `svcplane proxy` under overload and after a crash: with a tiny conntrack table, a burst of new
// connections fills it and the excess is dropped with a named reason, while an established
// connection keeps carrying data throughout; a proxy killed with SIGKILL leaves its rules behind,
// and the next one clears them, serves, and leaves the namespace as it found it. Root only.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { netnsSupport } from '../support/netns.js';
import { E2ECluster } from './cluster.js';
import { clusterManifests, VIP } from './manifests.js';

const support = netnsSupport();
const why = !support.ok ? support.reason : !existsSync('/dev/net/tun') ? 'no /dev/net/tun (load the tun module)' : '';
if (why) console.warn(`svcplane proxy overload tests cannot run here: ${why}`);

const metric = (text: string, name: string): number => {
  const m = new RegExp(`^${name.replace(/[{}"]/g, (ch) => `\\${ch}`)} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
};

describe.runIf(why === '')('svcplane proxy under overload (namespaces)', () => {
  let c: E2ECluster;

  beforeAll(async () => {
    c = new E2ECluster('ovl');
    await c.up(clusterManifests(), ['--conntrack-max', '64']);
  }, 60_000);

  afterAll(async () => {
    await c?.destroy();
  });

  it('keeps an established connection going while a burst of new ones overflows conntrack', async () => {
    const conn = await c.clientAgent.call<{ id: number }>({ op: 'open', host: VIP.stream, port: 81 });
    const first = await c.clientAgent.call<{ reply: string }>({ op: 'send', id: conn.id, line: 'one' });
    const backend = first.reply.split(' ')[0];
    const burst = await c.clientAgent.call<{ ok: number; errors: Record<string, number> }>({ op: 'load', host: VIP.web, port: 80, ms: 2000, concurrency: 32 });
    expect(burst.ok).toBeGreaterThan(0);
    const m = c.nodeExec(['curl', '-sf', 'http://127.0.0.1:10249/metrics']);
    expect(metric(m, 'svcplane_conntrack_capacity')).toBe(64);
    expect(metric(m, 'svcplane_conntrack_entries')).toBeLessThanOrEqual(64);
    // More connections were attempted than the table holds: the excess got a named drop.
    expect(metric(m, 'svcplane_drops_total{reason="conntrack_full"}')).toBeGreaterThan(0);
    for (const line of ['two', 'three']) {
      const r = await c.clientAgent.call<{ reply: string }>({ op: 'send', id: conn.id, line });
      expect(r.reply.split(' ')).toEqual([backend, expect.any(String), line]);
    }
    await c.clientAgent.call({ op: 'close', id: conn.id });
    expect(await c.stopProxy()).toBe(0);
  }, 40_000);

  it('recovers from a crashed run: stale rules are cleared, then everything is removed on exit', async () => {
    const pristine = c.nodeExec(['ip', 'rule', 'show']);
    const p = await c.startProxy();
    p.child.kill('SIGKILL');
    await p.exited;
    c.proxy = null;
    // The device went with its file descriptor; the policy rules stayed.
    expect(c.nodeExec(['ip', 'rule', 'show'])).toMatch(/lookup 2325/);
    // A torn or foreign state file costs the saved flows, not the start.
    const state = join(c.dir, 'garbage.state');
    writeFileSync(state, 'not a snapshot');
    const again = await c.startProxy(['--conntrack-state', state]);
    expect(again.output()).toMatch(/removed [1-9]\d* IPv4 rules and 0 routes a previous run left behind/);
    expect(again.output()).toMatch(/conntrack state .*garbage\.state ignored: .*snapshot/);
    const r = await c.clientAgent.call<{ replies: string[]; errors: string[] }>({ op: 'tcp', host: VIP.web, port: 80, count: 6, concurrency: 2 });
    expect(r.errors).toEqual([]);
    expect(c.nodeExec(['ip', 'rule', 'show']).match(/iif svc0/g)).toHaveLength(1);
    expect(await c.stopProxy()).toBe(0);
    expect(c.nodeExec(['ip', 'rule', 'show'])).toBe(pristine);
    // But the service CIDR's unreachable fallback, kept until a proxy runs again (or --cleanup).
    expect(c.nodeExec(['ip', 'route', 'show', 'type', 'unreachable'])).toMatch(/^unreachable \S+ metric 4294967295 *\n$/);
  }, 60_000);
});
