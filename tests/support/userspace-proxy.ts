// userspace-proxy.ts — a `svcplane proxy` in userspace mode inside the test process (no root, no
// TUN, loopback only) serving manifests from a temporary directory: started, waited for until its
// first sync has reached the core, and stopped with the directory removed. Also the one-Service
// manifests most proxy tests serve and a free loopback port for its servers. Touches nothing but
// its own directory and loopback sockets.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseProxyArgs } from '../../host-node/io/proxy-config.js';
import { NodeProxy } from '../../host-node/io/node-proxy.js';

export const WEB_VIP = '198.18.96.10';

/** Service default/web, WEB_VIP:80 → port 8080 of each endpoint address (one slice). */
export function webManifests(endpoints: readonly string[], vip = WEB_VIP): string {
  return `apiVersion: v1
kind: Service
metadata: { name: web, namespace: default }
spec: { clusterIP: ${vip}, ports: [{ name: http, port: 80, targetPort: 8080 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-1, namespace: default, labels: { kubernetes.io/service-name: web } }
addressType: IPv4
ports: [{ name: http, port: 8080 }]
endpoints: [${endpoints.map((a) => `{ addresses: [${a}] }`).join(', ')}]
`;
}

/** A loopback TCP port nothing listens on now. */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => { const a = srv.address() as { port: number }; srv.close(() => resolve(a.port)); });
  });
}

export interface UserspaceProxy {
  proxy: NodeProxy;
  dir: string;
  /** Stops the proxy and removes its directory (safe to call twice). */
  stop(): Promise<void>;
}

/**
 * Starts a userspace-mode proxy over `files` (name → manifest text) with `args` after the
 * defaults (servers off, node n1, no minimum sync period: later flags win), and waits up to 5 s
 * for `ready` — by default WEB_VIP:80's rules, or its virtual server when `args` name ipvs.
 */
export async function startUserspaceProxy(
  files: Record<string, string>, args: readonly string[] = [],
  opts: { ready?: (p: NodeProxy) => boolean; log?: (m: string) => void; tmpPrefix?: string } = {},
): Promise<UserspaceProxy> {
  const dir = mkdtempSync(join(tmpdir(), opts.tmpPrefix ?? 'svp-userspace-'));
  let proxy: NodeProxy | undefined;
  const stop = async (): Promise<void> => {
    await proxy?.stop();
    proxy = undefined;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    const cfg = parseProxyArgs([
      '--manifests', dir, '--mode', 'userspace', '--userspace-ports', 'range', '--hostname-override', 'n1',
      '--metrics-bind-address', '', '--healthz-bind-address', '', '--min-sync-period', '0', ...args,
    ]);
    const p = proxy = await NodeProxy.start(cfg, opts.log ? { log: opts.log } : {});
    // (Asking a core that runs no IPVS for its virtual servers would set IPVS up in it.)
    const ready = opts.ready ?? (args.includes('ipvs')
      ? (x: NodeProxy) => x.dp.ipvsadm(['-Ln']).stdout.includes(`${WEB_VIP}:80`)
      : (x: NodeProxy) => x.dp.iptablesSave().includes(`-d ${WEB_VIP} --dport 80 -j KUBE-SVC-`));
    const until = Date.now() + 5000;
    while (!ready(p)) {
      if (Date.now() > until) throw new Error(`no Service in the core after 5 s: ${p.lastSyncError}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return { proxy: p, dir, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
