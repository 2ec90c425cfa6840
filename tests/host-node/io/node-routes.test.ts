// The node proxy's static routes and policy rules (NodeRoutes.setup): each family's steps go to
// `ip` in one batch; a step that fails stops the batch, is named in the error, and everything set
// up before it is undone, so a failed start leaves the node's routing as it was; remove() after a
// good start does the same. Runs NodeRoutes in a namespace of its own (root only), with a veth
// standing in for the TUN device and 198.18.0.0/15 addresses only.
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { netnsSupport, NetnsScope, type Netns } from '../../support/netns.js';

const support = netnsSupport();
if (!support.ok) console.warn(`node routes tests cannot run here: ${support.reason}`);

const MODULE = join(import.meta.dirname, '../../../dist/host-node/io/node-routes.js');
const NODE_IP = '198.18.20.1';

/** Runs setup() (and remove() after a good one when `remove`) inside `ns`; prints "ok" or "error <message>". */
function run(scope: NetnsScope, ns: Netns, nodePortRange: [number, number], remove: boolean): string {
  const opts = {
    tun: 'svp0', table: 3999, serviceCIDRs: ['198.18.96.0/24'], masqueradeAddresses: ['198.18.97.1'],
    nodePortRange, nodePortAddresses: [NODE_IP],
  };
  const script = `
    const { NodeRoutes } = await import(${JSON.stringify(MODULE)});
    const r = new NodeRoutes(${JSON.stringify(opts)}, [${JSON.stringify(NODE_IP)}]);
    try { r.setup(); console.log('ok'); ${remove ? 'const failed = r.remove(); if (failed.length) console.log("remove failed " + failed.join("; "));' : ''} }
    catch (e) { console.log('error ' + e.message); }`;
  return scope.must(ns, [process.execPath, '--input-type=module', '-e', script]).trim();
}

describe.runIf(support.ok)('node routes', () => {
  const scope = support.ok ? new NetnsScope('nroutes') : undefined;
  afterAll(() => scope?.destroy());

  // The service CIDR's unreachable fallback stays when the proxy stops (until --cleanup): apart.
  const routes = (text: string) => text.split('\n').filter((l) => !l.startsWith('unreachable ')).join('\n');
  const state = (ns: Netns) => ({
    rules: scope!.must(ns, ['ip', '-4', 'rule', 'show']),
    main: routes(scope!.must(ns, ['ip', '-4', 'route', 'show'])),
    table: routes(scope!.must(ns, ['ip', '-4', 'route', 'show', 'table', 'all'])),
  });
  const fallbacks = (ns: Netns) => scope!.must(ns, ['ip', '-4', 'route', 'show', 'type', 'unreachable']);

  it('sets up every route and rule, and remove() puts the node back as it was', () => {
    const ns = scope!.create('good');
    scope!.must(ns, ['ip', 'link', 'add', 'svp0', 'type', 'veth', 'peer', 'name', 'svp0p']);
    scope!.must(ns, ['ip', 'addr', 'add', `${NODE_IP}/24`, 'dev', 'lo']);
    scope!.must(ns, ['ip', 'link', 'set', 'lo', 'up']);
    const before = state(ns);
    // A fallback an earlier run left for a service CIDR no longer served goes; another's route stays.
    scope!.must(ns, ['ip', 'route', 'add', 'unreachable', '198.18.99.0/24', 'metric', '4294967295']);
    scope!.must(ns, ['ip', 'route', 'add', 'unreachable', '198.18.98.0/24', 'metric', '7']);
    expect(run(scope!, ns, [30000, 32767], false)).toBe('ok');
    const up = state(ns);
    expect(up.main).toContain('198.18.96.0/24 dev svp0');
    expect(fallbacks(ns)).toBe('unreachable 198.18.96.0/24 metric 4294967295 \nunreachable 198.18.98.0/24 metric 7 \n');
    expect(up.main).toContain('198.18.97.1 dev svp0');
    expect(up.table).toContain('default dev svp0 table 3999');
    for (const proto of ['tcp', 'udp', 'sctp']) expect(up.rules).toContain(`to ${NODE_IP} ipproto ${proto} dport 30000-32767 lookup 3999`);
    expect(up.rules).toMatch(/^250:\s+from all lookup local/m);
    expect(up.rules).not.toMatch(/^0:/m);
    // A second proxy start finds the rules of this one and clears them first (a crashed run).
    expect(run(scope!, ns, [30000, 32767], true)).toBe('ok');
    expect(state(ns)).toEqual(before);
    expect(fallbacks(ns)).toBe('unreachable 198.18.96.0/24 metric 4294967295 \nunreachable 198.18.98.0/24 metric 7 \n');
  });

  it('stops at a failing step, names it, and undoes the steps before it', () => {
    const ns = scope!.create('bad');
    scope!.must(ns, ['ip', 'link', 'add', 'svp0', 'type', 'veth', 'peer', 'name', 'svp0p']);
    scope!.must(ns, ['ip', 'link', 'set', 'lo', 'up']);
    const before = state(ns);
    // The NodePort rules come last in the batch: a range ip refuses makes every step before them undone.
    const out = run(scope!, ns, [32767, 30000], false);
    expect(out).toMatch(/^error ip -4 rule add pref \d+ to 198\.18\.20\.1 ipproto tcp dport 32767-30000 lookup 3999: /);
    expect(state(ns)).toEqual(before);
  });
});
