// `svcplane proxy --ipvs-scheduler` reaches the core: a proxy started (userspace mode: no root, no
// TUN, loopback only) with the ipvs core and a scheduler serves its Services through IPVS virtual
// servers of that scheduler, and one without the flag through rr, kube-proxy's default.
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseProxyArgs } from '../../../host-node/io/proxy-config.js';
import { NodeProxy } from '../../../host-node/io/node-proxy.js';

const MANIFESTS = `apiVersion: v1
kind: Service
metadata: { name: web, namespace: default }
spec: { clusterIP: 198.18.96.10, ports: [{ name: http, port: 80, targetPort: 8080 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-1, namespace: default, labels: { kubernetes.io/service-name: web } }
addressType: IPv4
ports: [{ name: http, port: 8080 }]
endpoints: [{ addresses: [198.18.100.2] }, { addresses: [198.18.100.3] }]
`;

let dir = '';
let proxy: NodeProxy | null = null;
afterEach(async () => {
  await proxy?.stop();
  proxy = null;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = '';
});

async function start(extra: string[]): Promise<NodeProxy> {
  dir = mkdtempSync(join(tmpdir(), 'svp-ipvs-sched-'));
  writeFileSync(join(dir, 'web.yaml'), MANIFESTS);
  const cfg = parseProxyArgs([
    '--manifests', dir, '--mode', 'userspace', '--userspace-core', 'ipvs', '--userspace-ports', 'range', '--hostname-override', 'n1',
    '--metrics-bind-address', '', '--healthz-bind-address', '', '--min-sync-period', '0', ...extra,
  ]);
  proxy = await NodeProxy.start(cfg);
  const until = Date.now() + 5000;
  while (!proxy.dp.ipvsadm(['-Ln']).stdout.includes('198.18.96.10:80')) {
    if (Date.now() > until) throw new Error(`no virtual server after 5 s: ${proxy.lastSyncError}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return proxy;
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
