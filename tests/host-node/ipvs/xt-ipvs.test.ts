// `-m ipvs` (libxt_ipvs / xt_ipvs) and `-m physdev` end to end: parse → iptables-save / -L text →
// the core's rule engine, with IPVS running inside the netfilter hooks (ipvsadm + iptables-restore
// on one Dataplane, as on an LVS director). Synthetic packets only.
import { describe, it, expect } from 'vitest';
import { Dataplane, RestoreFailed } from '../../../host-node/dataplane.js';
import { buildPacket, decodePacket } from '../../../host-node/core/packet.js';
import { parseRestore, Ruleset } from '../../../host-node/netfilter/index.js';
import { saveMatch } from '../../../host-node/netfilter/save.js';

// What iptables-save prints after `-m NAME` for each match of the chain's rules (the match's own
// save function, not the rule's source text).
function savedMatches(text: string, table: string, chain: string): string[] {
  const p = parseRestore(text, { family: 4, noflush: false, base: Ruleset.empty(4), counters: false });
  if (!p.ok) throw new Error(p.error.message);
  const c = [...p.ruleset.table(table as 'nat')!.chains()].find((x) => x.name === chain)!;
  return c.rules.map((r) => r.matches.map((m) => `-m ${m.kind}${saveMatch(m, 4)}`).join(' '));
}

const VIP = '198.18.0.100';
const RS = ['198.18.1.1', '198.18.1.2'];

async function director(rules: string) {
  const dp = await Dataplane.create({ nodeIPs: ['198.18.0.254'], seed: 5 });
  dp.ipvsadm(['-A', '-t', `${VIP}:80`, '-s', 'rr']);
  for (const r of RS) dp.ipvsadm(['-a', '-t', `${VIP}:80`, '-r', `${r}:8080`, '-m']);
  dp.ipvsadm(['-A', '-u', `${VIP}:53`, '-s', 'rr']);
  dp.ipvsadm(['-a', '-u', `${VIP}:53`, '-r', `${RS[0]}:53`, '-m']);
  dp.ipvs().setSysctl('conntrack', 1);
  dp.iptablesRestore(rules);
  return dp;
}

const syn = (dp: Dataplane, sport: number, dport = 80, proto: 'tcp' | 'udp' = 'tcp') =>
  dp.process(buildPacket({ src: '198.19.0.7', dst: VIP, proto, sport, dport, ...(proto === 'tcp' ? { flags: 'S' } : {}) }), 100 + sport);

describe('-m ipvs', () => {
  it('saves and lists as libxt_ipvs prints it, and restores to the same rule', async () => {
    const dp = await director([
      '*nat', ':POSTROUTING ACCEPT [0:0]',
      `-A POSTROUTING -m ipvs --vaddr ${VIP}/32 --vport 80 --vdir ORIGINAL --vmethod MASQ -j SNAT --to-source 198.18.0.250`,
      '-A POSTROUTING -m ipvs ! --ipvs -j RETURN',
      '-A POSTROUTING -m ipvs --vproto udp ! --vport 80 -j RETURN',
      'COMMIT', '',
    ].join('\n'));
    const saved = dp.iptablesSave();
    // ipvs_mt_dump(): --ipvs only when alone; the protocol as a number; a host mask not printed.
    expect(savedMatches(saved, 'nat', 'POSTROUTING')).toEqual([
      `-m ipvs --vaddr ${VIP} --vport 80 --vdir ORIGINAL --vmethod MASQ`,
      '-m ipvs ! --ipvs',
      '-m ipvs --vproto 17 ! --vport 80',
    ]);
    const list = dp.iptablesList('nat', 'POSTROUTING');
    expect(list).toContain(`vaddr ${VIP} vport 80 vdir ORIGINAL vmethod MASQ`);
    expect(list).toContain('! ipvs');
    expect(list).toContain('proto 17 ! vport 80');
    // The saved text loads back unchanged.
    const dp2 = await director(saved);
    expect(dp2.iptablesSave()).toBe(saved);
  });

  it('refuses what libxt_ipvs refuses', async () => {
    const bad = (rule: string) => () => director(`*filter\n:INPUT ACCEPT [0:0]\n-A INPUT ${rule} -j ACCEPT\nCOMMIT\n`);
    await expect(bad('-m ipvs')()).rejects.toThrow(/At least one option/);
    await expect(bad('-m ipvs ! --ipvs --vport 80')()).rejects.toThrow(/cannot be together/);
    await expect(bad('-m ipvs --vdir SIDEWAYS')()).rejects.toThrow(RestoreFailed);
    await expect(bad('-m ipvs --vmethod FAST')()).rejects.toThrow(RestoreFailed);
  });

  it('matches a request IPVS forwarded, by virtual address and port (full-NAT SNAT in POSTROUTING)', async () => {
    const dp = await director([
      '*nat', ':POSTROUTING ACCEPT [0:0]',
      `-A POSTROUTING -m ipvs --vaddr ${VIP}/32 --vport 80 -j SNAT --to-source 198.18.0.250`,
      'COMMIT', '',
    ].join('\n'));
    const web = syn(dp, 1000);
    expect(web.verdict).toBe('FORWARD');
    const o = decodePacket(web.packet!);
    expect(RS).toContain(o.dst);
    expect(o.src).toBe('198.18.0.250');
    // The UDP service's VIP port is 53: --vport 80 does not hold, the source stays.
    const dns = decodePacket(syn(dp, 1001, 53, 'udp').packet!);
    expect([dns.dst, dns.src]).toEqual([RS[0], '198.19.0.7']);
    // The SNAT reply comes back through conntrack and IPVS to the client, from the VIP.
    const back = dp.process(buildPacket({ src: o.dst, dst: '198.18.0.250', proto: 'tcp', sport: 8080, dport: o.sport, flags: 'SA' }), 2000);
    const b = decodePacket(back.packet!);
    expect([b.src, b.sport, b.dst, b.dport]).toEqual([VIP, 80, '198.19.0.7', 1000]);
  });

  it('--ipvs is the ipvs_property: set after IPVS handled the packet, not before', async () => {
    const dp = await director([
      '*mangle', ':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]',
      '-A PREROUTING -m ipvs --ipvs -j MARK --set-xmark 0x1/0x1',
      '-A INPUT -m ipvs --ipvs -j MARK --set-xmark 0x2/0x2',
      '-A POSTROUTING -m ipvs --ipvs -j MARK --set-xmark 0x4/0x4',
      '-A POSTROUTING -m ipvs --vmethod GATE -j MARK --set-xmark 0x8/0x8',
      'COMMIT', '',
    ].join('\n'));
    const r = syn(dp, 1002);
    expect(r.verdict).toBe('FORWARD');
    // Only POSTROUTING (after IPVS at LOCAL_IN) saw it; the entry is masqueraded, not GATE.
    expect(dp.iptablesList('mangle', 'PREROUTING')).toMatch(/^\s+0\s+0 MARK/m);
    expect(dp.iptablesList('mangle', 'INPUT')).toMatch(/^\s+0\s+0 MARK/m);
    expect(dp.iptablesList('mangle', 'POSTROUTING')).toMatch(/^\s+1\s+\d+ MARK .*ipvs\s/m);
    expect(dp.iptablesList('mangle', 'POSTROUTING')).toMatch(/^\s+0\s+0 MARK .*vmethod GATE/m);
  });

  it('filter INPUT runs before IPVS (kernel priority): a DROP there keeps the packet from IPVS', async () => {
    const dp = await director(`*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 80 -s 198.19.0.7 -j DROP\nCOMMIT\n`);
    expect(syn(dp, 1003).verdict).toBe('DROP');
    expect(dp.ipvs().connections(2000)).toHaveLength(0);
    expect(syn(dp, 1004, 53, 'udp').verdict).toBe('FORWARD');
  });
});

describe('-m physdev (no bridge: xt_physdev without bridge information)', () => {
  it('parses, saves, and holds only when every option is negated', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['198.18.0.254'], seed: 5 });
    dp.iptablesRestore([
      '*filter', ':INPUT ACCEPT [0:0]',
      '-A INPUT -p tcp --dport 1 -m physdev --physdev-is-in -j DROP',
      '-A INPUT -p tcp --dport 1 -m physdev ! --physdev-is-in ! --physdev-in veth+ -j REJECT',
      '-A INPUT -p tcp --dport 2 -m physdev --physdev-is-bridged -j REJECT',
      'COMMIT', '',
    ].join('\n'));
    expect(savedMatches(dp.iptablesSave(), 'filter', 'INPUT')[1]).toBe('-m tcp --dport 1 -m physdev ! --physdev-is-in ! --physdev-in veth+');
    expect(dp.iptablesList('filter', 'INPUT')).toContain('PHYSDEV match ! --physdev-is-in ! --physdev-in veth+');
    const send = (dport: number) => dp.process(buildPacket({ src: '198.19.0.7', dst: '198.18.0.254', proto: 'tcp', sport: 9, dport, flags: 'S' }), 1).verdict;
    expect(send(1)).toBe('REPLY');   // the negated rule held, the plain one did not
    expect(send(2)).toBe('PASS');    // never bridged
  });
});

describe('virtual addresses are local (kube-ipvs0)', () => {
  it('while at least one address:port service has them, counted per address', async () => {
    const dp = await director('*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 81 -m addrtype --dst-type LOCAL -j REJECT\nCOMMIT\n');
    const probe = () => dp.process(buildPacket({ src: '198.19.0.7', dst: VIP, proto: 'tcp', sport: 7, dport: 81, flags: 'S' }), 3000).verdict;
    expect(probe()).toBe('REPLY');                 // routed to INPUT, addrtype LOCAL
    dp.ipvsadm(['-D', '-t', `${VIP}:80`]);
    expect(probe()).toBe('REPLY');                 // the UDP service still holds the address
    dp.ipvsadm(['-D', '-u', `${VIP}:53`]);
    expect(probe()).toBe('PASS');                  // forwarded: no longer an address of the node
    dp.ipvsadm(['-A', '-f', '7', '-s', 'rr']);
    expect(probe()).toBe('PASS');                  // a fwmark service has no address
  });
});
