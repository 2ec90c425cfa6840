// `svcplane proxy --kubeconfig`: the proxy lists and watches an API server (the in-process fake,
// reached through a forwarder whose listening socket sits in the node namespace) and follows
// endpoint changes on real traffic. Root only (namespaces, /dev/net/tun).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { netnsSupport } from '../support/netns.js';
import { FakeApiServer, apiService, apiSlice } from '../support/fake-apiserver.js';
import { withNetns } from '../../host-node/io/tun.js';
import { E2ECluster, eventually, BACKENDS } from './cluster.js';
import { VIP } from './manifests.js';

const support = netnsSupport();
const why = !support.ok ? support.reason : !existsSync('/dev/net/tun') ? 'no /dev/net/tun (load the tun module)' : '';
if (why) console.warn(`svcplane proxy --kubeconfig end-to-end tests cannot run here: ${why}`);

interface Replies { replies: string[]; errors: string[] }
const names = (r: Replies): string[] => [...new Set(r.replies.map((l) => l.split(' ')[0]!))].sort();

describe.runIf(why === '')('svcplane proxy --kubeconfig end to end (namespaces)', () => {
  let c: E2ECluster;
  let api: FakeApiServer | null = null;
  let forwarder: Server | null = null;

  beforeAll(async () => {
    c = new E2ECluster('kapi');
    try {
      await c.build();
      api = await FakeApiServer.start();
      // A forwarder listening inside the node namespace (a listen without a host binds at once, on
      // this thread's namespace) carries the proxy's connections to the fake in this one.
      const upstream = Number(new URL(api.url).port);
      forwarder = createServer((down) => {
        const up = connect(upstream, '127.0.0.1');
        down.pipe(up).pipe(down);
        down.on('error', () => up.destroy());
        up.on('error', () => down.destroy());
      });
      withNetns(`/run/netns/${c.node.name}`, () => forwarder!.listen(0));
      const port = (forwarder.address() as AddressInfo).port;
      api.apply('services', apiService('web', VIP.web, 80));
      api.apply('endpointslices', apiSlice('web-1', 'web', BACKENDS.map((b) => b.ip)));
      const kubeconfig = join(c.dir, 'kubeconfig');
      writeFileSync(kubeconfig, [
        'apiVersion: v1', 'kind: Config', 'current-context: t',
        `clusters: [{name: t, cluster: {server: "http://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]`,
        'users: [{name: t, user: {token: test-token}}]',
        'contexts: [{name: t, context: {cluster: t, user: t}}]',
      ].join('\n'));
      await c.startProxy(['--kubeconfig', kubeconfig], { manifests: false });
    } catch (e) {
      forwarder?.close();
      await api?.stop();
      await c.destroy();
      throw e;
    }
  }, 60_000);

  afterAll(async () => {
    forwarder?.close();
    await api?.stop();
    await c?.destroy();
  });

  it('serves the Services it watches and follows an endpoint leaving', async () => {
    const r = await eventually(async () => {
      const x = await c.clientAgent.call<Replies>({ op: 'tcp', host: VIP.web, port: 80, count: 20, concurrency: 2, timeoutMs: 1500 });
      return x.errors.length === 0 ? x : undefined;
    }, 15_000, 'the first sync');
    expect(names(r)).toEqual(BACKENDS.map((b) => b.name));
    expect(api!.requests.some((q) => q.resource === 'services' && q.watch && q.authorization === 'Bearer test-token')).toBe(true);
    api!.apply('endpointslices', apiSlice('web-1', 'web', [BACKENDS[0].ip]));
    await eventually(async () => {
      const x = await c.clientAgent.call<Replies>({ op: 'tcp', host: VIP.web, port: 80, count: 32, concurrency: 4 });
      return x.errors.length === 0 && names(x).join() === 'be1' ? x : undefined;
    }, 10_000, 'be2 gone');
    expect(await c.stopProxy()).toBe(0);
  }, 60_000);
});
