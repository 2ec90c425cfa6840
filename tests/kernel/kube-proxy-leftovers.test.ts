// What a kube-proxy that ran on the node left in the kernel, found and removed as `kube-proxy
// --cleanup` removes it (host-node/io/kube-proxy-leftovers.ts), in a throwaway namespace: its
// iptables-mode rules (kube-proxy's own base rules and a rendered cluster) in the legacy and the
// nf_tables backend and in ip6tables, an ipvs-mode ipset a rule of its refers to, its kube-ipvs0
// device holding a Service address, its nftables mode's `kube-proxy` tables. Kubelet's chains, a user's chain and rules and a user's ipset
// stay. `svcplane proxy` warns about them at start; `svcplane proxy --cleanup` removes them, and a
// second run finds nothing. Every address is in 198.18.0.0/15.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kernelSkip, NetnsScope, type Netns } from '../support/netns';
import { KUBE_BASE_RULES } from '../support/kernel-node';
import { benchCluster, proxyStateFor, renderSync } from '../support/kube-gen';
import { CLI, startProxyProcess } from '../support/proxy-process';
import { findKubeProxyLeftovers, intercepts, planIptables, removalText } from '../../host-node/io/kube-proxy-leftovers';

const TOOLS = ['iptables-legacy-save', 'iptables-legacy-restore', 'iptables-nft-save', 'iptables-nft-restore', 'ip6tables-legacy-restore', 'ipset', 'nfacct', 'nft'];
const skipWhy = kernelSkip('tests/kernel/kube-proxy-leftovers', TOOLS, 'apt-get install iptables ipset nfacct nftables');

// A user's own rules and set, and kubelet's chains: none of them kube-proxy's.
const USER_RULES = `*filter
:MY-CHAIN - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
-A INPUT -s 198.18.9.9/32 -j DROP
-A FORWARD -j MY-CHAIN
-A MY-CHAIN -d 198.18.9.8/32 -j ACCEPT
COMMIT
*mangle
:KUBE-KUBELET-CANARY - [0:0]
:KUBE-PROXY-CANARY - [0:0]
COMMIT
`;
// ipvs mode's: a set its rules name, so the set can only go after the rules.
const IPVS_RULES = `*nat
:KUBE-LOAD-BALANCER - [0:0]
-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j KUBE-LOAD-BALANCER
COMMIT
`;

describe("kube-proxy's leftovers: which take Service traffic", () => {
  it('its nat dispatch chains, kube-ipvs0 and its nftables tables do; an old kubelet\'s nat chains and filter chains alone do not', () => {
    expect(intercepts([{ where: 'iptables-legacy nat', what: ['KUBE-MARK-MASQ', 'KUBE-POSTROUTING'] }, { where: 'iptables-nft filter', what: ['KUBE-FORWARD'] }, { where: 'ipset', what: ['KUBE-CLUSTER-IP'] }])).toBe(false);
    expect(intercepts([{ where: 'iptables-nft nat', what: ['KUBE-MARK-MASQ', 'KUBE-SERVICES'] }])).toBe(true);
    expect(intercepts([{ where: 'ip6tables-legacy nat', what: ['3 Service chains'] }])).toBe(true);
    expect(intercepts([{ where: 'device kube-ipvs0', what: ['0 addresses'] }])).toBe(true);
    expect(intercepts([{ where: 'nftables', what: ['table ip kube-proxy'] }])).toBe(true);
  });
});

describe("kube-proxy's leftovers: reading a backend's rules", () => {
  it('unlinks every jump to its chains (with or without matches), flushes them, then deletes them', () => {
    const saved = [
      '*nat', ':PREROUTING ACCEPT [0:0]', ':MINE - [0:0]', ':KUBE-SERVICES - [0:0]', ':KUBE-SVC-ABC - [0:0]', ':KUBE-MARK-DROP - [0:0]',
      '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES', '-A MINE -j KUBE-SERVICES',
      '-A MINE -j MARK --set-xmark 0x1/0x1', '-A KUBE-SERVICES -d 198.18.96.10/32 -j KUBE-SVC-ABC', 'COMMIT',
      '*filter', ':INPUT ACCEPT [0:0]', ':KUBE-FIREWALL - [0:0]', '-A INPUT -j KUBE-FIREWALL', 'COMMIT', '',
    ].join('\n');
    const plans = planIptables(saved);
    expect(plans).toEqual([{
      table: 'nat', chains: ['KUBE-SERVICES', 'KUBE-SVC-ABC'],
      unlink: ['-D PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES', '-D MINE -j KUBE-SERVICES'],
    }]);
    expect(removalText(plans[0]!)).toBe([
      '*nat', ':KUBE-SERVICES - [0:0]', ':KUBE-SVC-ABC - [0:0]', '-D PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      '-D MINE -j KUBE-SERVICES', '-X KUBE-SERVICES', '-X KUBE-SVC-ABC', 'COMMIT', '',
    ].join('\n'));
  });

  it('counts a backend whose save fails, and tools not installed, as not looked at', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'svp-kpbin-'));
    const tool = (name: string, body: string): void => { writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`); chmodSync(join(dir, name), 0o755); };
    tool('iptables-legacy-save', 'echo "can\'t initialize iptables table nat: Table does not exist" >&2; exit 1');
    tool('iptables-nft-save', "printf '*nat\\n:KUBE-SERVICES - [0:0]\\nCOMMIT\\n'");
    const path = process.env.PATH;
    process.env.PATH = dir;
    try {
      const r = await findKubeProxyLeftovers();
      expect(r.found).toEqual([{ where: 'iptables-nft nat', what: ['KUBE-SERVICES'] }]);
      expect(r.unseen).toEqual([
        "iptables-legacy-save (can't initialize iptables table nat: Table does not exist)", 'ip6tables-legacy-save', 'ip6tables-nft-save', 'ip', 'ipset', 'nft',
      ]);
      expect(r.errors).toEqual([]);
    } finally {
      process.env.PATH = path;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.runIf(skipWhy === '')("kube-proxy's leftovers in the kernel", () => {
  let scope: NetnsScope;
  let node: Netns;
  const save = (tool: string): string => scope.must(node, [`${tool}-save`]);

  beforeAll(() => {
    scope = new NetnsScope('kpleft');
    node = scope.create('node');
    const cluster = renderSync(proxyStateFor(benchCluster(20))).render.text;
    // kube-proxy makes the nfacct counters its rules name before it writes them.
    for (const name of ['ct_state_invalid_dropped_pkts', 'localhost_nps_accepted_pkts']) scope.must(node, ['nfacct', 'add', name]);
    scope.must(node, ['iptables-legacy-restore', '--noflush'], { input: KUBE_BASE_RULES });
    scope.must(node, ['iptables-legacy-restore', '--noflush'], { input: cluster });
    scope.must(node, ['iptables-legacy-restore', '--noflush'], { input: USER_RULES });
    scope.must(node, ['ipset', 'create', 'KUBE-CLUSTER-IP', 'hash:ip,port']);
    scope.must(node, ['ipset', 'create', 'my-set', 'hash:ip']);
    scope.must(node, ['iptables-legacy-restore', '--noflush'], { input: IPVS_RULES });
    scope.must(node, ['iptables-nft-restore', '--noflush'], { input: KUBE_BASE_RULES });
    scope.must(node, ['ip6tables-legacy-restore', '--noflush'], { input: KUBE_BASE_RULES });
    // kube-ipvs0 is a dummy device; this kernel has no dummy driver, a veth carries the name.
    scope.ip(node, ['link', 'add', 'kube-ipvs0', 'type', 'veth', 'peer', 'name', 'kipvs-peer']);
    scope.ip(node, ['addr', 'add', '198.18.96.10/32', 'dev', 'kube-ipvs0']);
    // nftables mode's tables (a DNAT hook like kube-proxy's), and a user's table that stays.
    scope.must(node, ['nft', '-f', '-'], {
      input: `table ip kube-proxy {\n chain nat-prerouting {\n  type nat hook prerouting priority -100; policy accept;\n }\n}\n`
        + 'table ip6 kube-proxy {\n}\ntable inet mine {\n}\n',
    });
    scope.ip(node, ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0-peer']);
    scope.ip(node, ['addr', 'add', '198.18.110.1/24', 'dev', 'eth0']);
    scope.ip(node, ['link', 'set', 'eth0', 'up']);
  }, 60_000);

  afterAll(() => scope?.destroy());

  it('are named by a proxy starting over them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'svp-kpleft-'));
    writeFileSync(join(dir, 'empty.yaml'), '');
    const p = await startProxyProcess(['--manifests', dir, '--hostname-override', 'n1', '--node-ip', '198.18.110.1', '--service-cidr', '198.18.96.0/24',
      '--tun', 'svc0', '--metrics-bind-address', '', '--healthz-bind-address', ''], { prefix: ['ip', 'netns', 'exec', node.name] })
      .catch((e) => { rmSync(dir, { recursive: true, force: true }); throw e; });
    try {
      // Said once it has looked, which it does while it serves.
      const said = (): string => p.out().split('\n').find((l) => l.startsWith("proxy: kube-proxy's rules are still in this node's kernel")) ?? '';
      for (const end = Date.now() + 10_000; said() === '' && Date.now() < end;) await new Promise((r) => setTimeout(r, 50));
      const warning = said();
      expect(warning).toContain('take Service traffic before it reaches svc0: ');
      // Per backend and table, as its save lists them (chains in name order).
      expect(warning).toMatch(/; iptables-legacy nat: KUBE-LOAD-BALANCER, KUBE-MARK-MASQ, KUBE-NODEPORTS, KUBE-POSTROUTING, KUBE-SERVICES, [1-9]\d* Service chains;/);
      expect(warning).toContain('iptables-legacy filter: KUBE-EXTERNAL-SERVICES, KUBE-FORWARD, KUBE-NODEPORTS, KUBE-PROXY-FIREWALL, KUBE-SERVICES;');
      expect(warning).toContain('iptables-legacy mangle: KUBE-PROXY-CANARY;');
      expect(warning).toContain('iptables-nft nat: KUBE-MARK-MASQ, KUBE-NODEPORTS, KUBE-POSTROUTING, KUBE-SERVICES;');
      expect(warning).toContain('ip6tables-legacy filter: KUBE-EXTERNAL-SERVICES, KUBE-FORWARD, KUBE-NODEPORTS, KUBE-PROXY-FIREWALL, KUBE-SERVICES;');
      expect(warning).toContain('device kube-ipvs0: 1 addresses; ipset: KUBE-CLUSTER-IP; nftables: table ip kube-proxy; nftables: table ip6 kube-proxy;');
      // Kubelet's chains are not kube-proxy's.
      expect(warning).not.toMatch(/KUBE-FIREWALL|KUBELET/);
      expect(warning).toMatch(/stop kube-proxy and run `svcplane proxy --cleanup`$/);
    } finally {
      await p.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 40_000);

  it('are removed by svcplane proxy --cleanup, and nothing else is', () => {
    const before = save('iptables-legacy');
    expect(before).toMatch(/^:KUBE-SVC-/m);
    const r = scope.exec(node, [process.execPath, CLI, 'proxy', '--cleanup']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^proxy: cleanup: kube-proxy's iptables-legacy nat: removed KUBE-LOAD-BALANCER, .*, [1-9]\d* Service chains$/m);
    expect(r.stdout).toMatch(/^proxy: cleanup: kube-proxy's iptables-nft filter: removed KUBE-EXTERNAL-SERVICES, /m);
    expect(r.stdout).toContain("proxy: cleanup: kube-proxy's ipset: removed KUBE-CLUSTER-IP\n");
    expect(r.stdout).toContain("proxy: cleanup: kube-proxy's device kube-ipvs0: removed 1 addresses\n");
    for (const tool of ['iptables-legacy', 'iptables-nft', 'ip6tables-legacy']) {
      const after = save(tool);
      expect(after, tool).not.toMatch(/KUBE-(SERVICES|NODEPORTS|POSTROUTING|MARK-MASQ|FORWARD|EXTERNAL-SERVICES|PROXY-FIREWALL|PROXY-CANARY|LOAD-BALANCER|SVC-|SEP-|EXT-|FW-)/);
      // Kubelet's firewall chain and its jumps stay.
      expect(after, tool).toMatch(/^:KUBE-FIREWALL - /m);
      expect(after, tool).toContain('-A INPUT -j KUBE-FIREWALL');
    }
    const legacy = save('iptables-legacy');
    expect(legacy).toContain('-A INPUT -s 198.18.9.9/32 -j DROP');
    expect(legacy).toContain('-A FORWARD -j MY-CHAIN');
    expect(legacy).toContain('-A MY-CHAIN -d 198.18.9.8/32 -j ACCEPT');
    expect(legacy.match(/^:KUBE-KUBELET-CANARY - /gm)).toHaveLength(2);
    expect(scope.must(node, ['ipset', 'list', '-n']).split('\n').filter(Boolean)).toEqual(['my-set']);
    expect(scope.ip(node, ['-o', 'link', 'show'])).not.toContain('kube-ipvs0');
    expect(r.stdout).toContain("proxy: cleanup: kube-proxy's nftables: removed table ip kube-proxy\n");
    expect(scope.must(node, ['nft', 'list', 'tables'])).not.toContain('kube-proxy');
    expect(scope.must(node, ['nft', 'list', 'tables'])).toContain('table inet mine');
    // Nothing left: a second run finds nothing.
    const again = scope.exec(node, [process.execPath, CLI, 'proxy', '--cleanup']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("proxy: cleanup: nothing of kube-proxy's found\n");
  }, 60_000);
});
