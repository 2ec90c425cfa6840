// The listing commands of a kube-proxy node run over the live core: iptables-save, iptables -L / -S
// and ipvsadm -L read as the tools read their command lines (bundled short options, --opt=value),
// printing what the Dataplane's own listings print, with the counters packets left; and every
// command line that would change a table refused, so the metrics address never becomes a way in.
import { describe, it, expect } from 'vitest';
import { Dataplane } from '../../../host-node/dataplane.js';
import { buildPacket } from '../../../host-node/core/packet.js';
import { runShowTool, ToolRefused } from '../../../host-node/io/read-only-tools.js';
import { webManifests } from '../../support/userspace-proxy.js';

const MANIFESTS = webManifests(['198.18.100.2']);

async function node(mode: 'iptables' | 'ipvs' | 'direct'): Promise<Dataplane> {
  const dp = await Dataplane.create({ nodeIPs: ['198.18.200.1'], podCIDR: '198.18.100.0/22', seed: 1 });
  expect(dp.apply(MANIFESTS, { mode, nodeName: 'n1' }).issues).toEqual([]);
  dp.process(buildPacket({ src: '198.18.50.1', dst: '198.18.96.10', proto: 'tcp', sport: 40000, dport: 80, flags: 'S' }), 1000);
  return dp;
}

describe('runShowTool', () => {
  it('iptables-save [-c] [-t T], iptables / ip6tables -L and -S, as the Dataplane lists them, counters included', async () => {
    const dp = await node('iptables');
    expect(runShowTool(dp, 'iptables-save', [])).toBe(dp.iptablesSave());
    const nat = runShowTool(dp, 'iptables-save', ['-c', '--table=nat']);
    expect(nat).toBe(dp.iptablesSave({ counters: true, table: 'nat' }));
    expect(nat).toMatch(/^\*nat$/m);
    expect(nat).not.toMatch(/^\*filter$/m);
    expect(nat).toMatch(/^\[1:\d+\] -A KUBE-SERVICES .*-d 198\.18\.96\.10 .*-j KUBE-SVC-/m);   // the SYN above
    const list = runShowTool(dp, 'iptables', ['-tnat', '-nvL', 'KUBE-SERVICES']);
    expect(list).toBe(dp.iptablesList('nat', 'KUBE-SERVICES', { verbose: true }));
    expect(list).toMatch(/^Chain KUBE-SERVICES \(\d+ references\)$/m);
    expect(runShowTool(dp, 'iptables', ['-t', 'nat', '-L', '-x', '--line-numbers'])).toBe(dp.iptablesList('nat', undefined, { exact: true, lineNumbers: true, verbose: false }));
    expect(runShowTool(dp, 'iptables', ['-S', 'KUBE-SERVICES', '-t', 'nat'])).toBe(dp.iptablesRules('nat', 'KUBE-SERVICES'));
    expect(runShowTool(dp, 'iptables', ['-t', 'nat', '-v', '-S', 'KUBE-SERVICES'])).toMatch(/--dport 80 -c 1 \d+ -j KUBE-SVC-/);
    expect(runShowTool(dp, 'ip6tables', ['-L'])).toBe(dp.iptablesList('filter', undefined, { family: 6, verbose: false }));
  });

  it('ipvsadm -L / -S over the virtual servers', async () => {
    const dp = await node('ipvs');
    expect(runShowTool(dp, 'ipvsadm', ['-Ln'])).toBe(dp.ipvsadm(['-L', '-n']).stdout);
    expect(runShowTool(dp, 'ipvsadm', ['-Ln'])).toContain('TCP  198.18.96.10:80 rr');
    expect(runShowTool(dp, 'ipvsadm', ['-L', '-n', '--stats', '-t', '198.18.96.10:80'])).toContain('198.18.100.2:8080');
    expect(runShowTool(dp, 'ipvsadm', ['-Sn'])).toBe(dp.ipvsadm(['-S', '-n']).stdout);
  });

  it('ipset list / save / test over the ipvs mode\'s sets; nothing that changes them', async () => {
    const dp = await node('ipvs');
    expect(runShowTool(dp, 'ipset', ['list', '-n'])).toBe(dp.ipset.list(undefined, { names: true }));
    expect(runShowTool(dp, 'ipset', ['list', 'KUBE-CLUSTER-IP'])).toMatch(/^Name: KUBE-CLUSTER-IP\nType: hash:ip,port\n[\s\S]*Members:\n198\.18\.96\.10,tcp:80\n/);
    expect(runShowTool(dp, 'ipset', ['-o', 'save', 'list', 'KUBE-CLUSTER-IP'])).toBe(dp.ipset.save('KUBE-CLUSTER-IP'));
    expect(runShowTool(dp, 'ipset', ['test', 'KUBE-CLUSTER-IP', '198.18.96.10,tcp:80'])).toBe('198.18.96.10,tcp:80 is in set KUBE-CLUSTER-IP.\n');
    expect(runShowTool(dp, 'ipset', ['test', 'KUBE-CLUSTER-IP', '198.18.96.11,tcp:80'])).toBe('198.18.96.11,tcp:80 is NOT in set KUBE-CLUSTER-IP.\n');
    const before = dp.ipset.save();
    for (const argv of [['add', 'KUBE-CLUSTER-IP', '198.18.1.1,tcp:80'], ['del', 'KUBE-CLUSTER-IP', '198.18.96.10,tcp:80'], ['flush'], ['destroy'], ['-N', 'x', 'hash:ip'], ['swap', 'KUBE-LOOP-BACK', 'KUBE-CLUSTER-IP'], ['rename', 'KUBE-LOOP-BACK', 'y']]) {
      expect(() => runShowTool(dp, 'ipset', argv), argv.join(' ')).toThrow(/^ipset: \w+: only list, save, test and version are read here/);
    }
    expect(() => runShowTool(dp, 'ipset', ['list', 'NOPE'])).toThrow('The set with the given name does not exist');
    expect(dp.ipset.save()).toBe(before);
  });

  it('recent: the ClientIP affinity lists as /proc/net/xt_recent shows them (stamps in ms on the packets\' clock)', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['198.18.200.1'], podCIDR: '198.18.100.0/22', seed: 1 });
    const sticky = webManifests(['198.18.100.2', '198.18.100.3']).replace('spec: { clusterIP:', 'spec: { sessionAffinity: ClientIP, clusterIP:');
    expect(dp.apply(sticky, { mode: 'iptables', nodeName: 'n1' }).issues).toEqual([]);
    const lists = runShowTool(dp, 'recent', []).trim().split('\n');
    expect(lists).toHaveLength(2);
    for (const l of lists) expect(l).toMatch(/^KUBE-SEP-[A-Z0-9]{16}$/);
    // Two connections of one client: the second follows the first's endpoint, both stamped.
    const to = [1000, 3000].map((t, k) => dp.process(buildPacket({ src: '198.18.50.1', dst: '198.18.96.10', proto: 'tcp', sport: 40000 + k, dport: 80, flags: 'S' }), t).packet!);
    expect(to[1]!.slice(16, 20)).toEqual(to[0]!.slice(16, 20));
    const shown = lists.map((l) => runShowTool(dp, 'recent', [l]));
    expect(shown.sort()).toEqual(['', 'src=198.18.50.1 ttl: 64 last_seen: 3000 oldest_pkt: 2 1000, 3000\n']);
    expect(() => runShowTool(dp, 'recent', ['KUBE-SEP-NOPE'])).toThrow('cat: /proc/net/xt_recent/KUBE-SEP-NOPE: No such file or directory');
    expect(() => runShowTool(dp, 'recent', ['a', 'b'])).toThrow('one list at a time');
  });

  it('direct: the direct mode\'s service table, which no kernel tool shows (empty in other modes)', async () => {
    const dp = await node('direct');
    expect(runShowTool(dp, 'direct', [])).toBe([
      'default/web:http TCP frontends cluster 198.18.96.10:80',
      'default/web:http TCP endpoints(Cluster) 198.18.100.2:8080',
      'default/web:http TCP endpoints(Local) (none)',
      'default/web:http TCP policy internal=Cluster external=Cluster affinity=None',
      '',
    ].join('\n'));
    expect(() => runShowTool(dp, 'direct', ['-v'])).toThrow('the direct table is listed whole');
    expect(runShowTool(await node('iptables'), 'direct', [])).toBe('');
  });

  it('refuses every command line that would change a table, and says what the tool would', async () => {
    const dp = await node('iptables');
    const refused = (tool: Parameters<typeof runShowTool>[1], argv: string[]) => {
      try {
        runShowTool(dp, tool, argv);
      } catch (e) {
        expect(e).toBeInstanceOf(ToolRefused);
        return (e as Error).message;
      }
      throw new Error(`${tool} ${argv.join(' ')} was run`);
    };
    const before = dp.iptablesSave({ counters: true });
    for (const argv of [['-F'], ['-t', 'nat', '-F', 'KUBE-SERVICES'], ['-Z'], ['-nvLZ'], ['-A', 'INPUT', '-j', 'DROP'], ['-t', 'nat', '-D', 'KUBE-SERVICES', '1'], ['-X'], ['-P', 'FORWARD', 'DROP'], ['-N', 'X']]) {
      expect(refused('iptables', argv)).toMatch(/only -L \/ -S \[CHAIN\]/);
    }
    expect(refused('iptables-save', ['-f', '/etc/x'])).toMatch(/only -c and -t TABLE/);
    expect(refused('iptables', ['-t', 'nat'])).toBe('iptables v1.8.9 (legacy): no command specified');
    expect(refused('iptables', ['-L', '-S'])).toBe("iptables v1.8.9 (legacy): Can't use -S with -L");
    expect(refused('iptables', ['-t', 'bogus', '-L'])).toContain("can't initialize iptables table `bogus'");
    expect(refused('iptables', ['-t', 'nat', '-L', 'NOPE'])).toBe('iptables: No chain/target/match by that name.');
    for (const argv of [['-C'], ['-A', '-t', '198.18.96.10:80', '-s', 'rr'], ['-D', '-t', '198.18.96.10:80'], ['-Z'], ['--set', '1', '1', '1'], ['-R']]) {
      expect(refused('ipvsadm', argv)).toMatch(/^ipvsadm: /);
    }
    expect(refused('ipvsadm', ['-n'])).toBe('ipvsadm: give -L (or -S): the proxy lists its virtual servers, never changes them');
    // A core without IPVS is not given one by a listing.
    expect(refused('ipvsadm', ['-Ln'])).toBe('ipvsadm: this proxy runs no IPVS (its core is not in ipvs mode): no virtual servers to list');
    expect(dp.ipvsRunning).toBe(false);
    expect(dp.iptablesSave({ counters: true })).toBe(before);
  });
});
