// `svcplane proxy --ipvs-scheduler` reaches the core: a proxy started (userspace mode: no root, no
// TUN, loopback only) with the ipvs core and a scheduler serves its Services through IPVS virtual
// servers of that scheduler, and one without the flag through rr, kube-proxy's default.
import { describe, it, expect, afterEach } from 'vitest';
import { startUserspaceProxy, webManifests, type UserspaceProxy } from '../../support/userspace-proxy.js';
import type { NodeProxy } from '../../../host-node/io/node-proxy.js';

let running: UserspaceProxy | null = null;
afterEach(async () => {
  await running?.stop();
  running = null;
});

async function start(extra: string[]): Promise<NodeProxy> {
  running = await startUserspaceProxy({ 'web.yaml': webManifests(['198.18.100.2', '198.18.100.3']) }, ['--userspace-core', 'ipvs', ...extra], { tmpPrefix: 'svp-ipvs-sched-' });
  return running.proxy;
}

describe('svcplane proxy: the ipvs scheduler', () => {
  it('--ipvs-scheduler sh: the virtual servers use sh', async () => {
    const p = await start(['--ipvs-scheduler', 'sh']);
    expect(p.dp.ipvsadm(['-Ln']).stdout).toMatch(/TCP {2}198\.18\.96\.10:80 sh\b/);
  });

  it('without it: rr, as kube-proxy defaults', async () => {
    const p = await start([]);
    expect(p.dp.ipvsadm(['-Ln']).stdout).toMatch(/TCP {2}198\.18\.96\.10:80 rr\b/);
  });
});
