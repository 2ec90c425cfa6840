// Reply steering at scale: endpoints inside a pod CIDR share policy rules per protocol and run of
// target ports (the kernel scans rules linearly for every routed packet), others keep one each;
// and packets read from the device are told apart by destination — served (a Service address, a
// node or masquerade address, a routed VIP) or steered in only for un-NAT (TRACKED_ONLY).
import { describe, it, expect } from 'vitest';
import { ReplyRuleSet, replyRules, type AddrPort } from '../../../host-node/io/node-routes.js';
import { ServedDestinations } from '../../../host-node/io/served.js';
import { buildPacket } from '../../../host-node/core/packet.js';

describe('replyRules', () => {
  it('folds endpoints inside pod CIDRs into one rule per protocol and port run', () => {
    const eps = [];
    for (let i = 0; i < 5000; i++) eps.push({ ip: `198.18.${64 + (i >> 8)}.${i & 255}`, protocol: 'TCP' as const, port: 8080 + (i % 3) });
    eps.push({ ip: '198.18.70.1', protocol: 'UDP' as const, port: 53 });
    eps.push({ ip: '198.18.70.2', protocol: 'TCP' as const, port: 9090 });
    eps.push({ ip: 'fd00:44::5', protocol: 'TCP' as const, port: 8080 });
    eps.push({ ip: '198.18.0.7', protocol: 'TCP' as const, port: 10250 }); // host network: outside
    const rules = replyRules(eps, ['198.18.64.0/18', 'fd00:44::/64']);
    expect([...rules].sort()).toEqual([
      'from 198.18.0.7 ipproto tcp sport 10250',
      'from 198.18.64.0/18 ipproto tcp sport 8080-8082',
      'from 198.18.64.0/18 ipproto tcp sport 9090',
      'from 198.18.64.0/18 ipproto udp sport 53',
      'from fd00:44::/64 ipproto tcp sport 8080',
    ]);
  });

  it('keeps one rule per endpoint without pod CIDRs', () => {
    const rules = replyRules([
      { ip: '198.18.5.1', protocol: 'TCP', port: 8080 },
      { ip: '198.18.5.2', protocol: 'TCP', port: 8080 },
      { ip: '198.18.5.2', protocol: 'TCP', port: 8080 },
    ], []);
    expect([...rules].sort()).toEqual(['from 198.18.5.1 ipproto tcp sport 8080', 'from 198.18.5.2 ipproto tcp sport 8080']);
  });
});

describe('ReplyRuleSet', () => {
  it('kept up to date endpoint by endpoint, holds the rules of the whole list and reports each change once', () => {
    const cidrs = ['198.18.64.0/18', 'fd00:44::/64'];
    const set = new ReplyRuleSet(cidrs);
    const live = new Map<string, AddrPort>();
    let x = 17;
    const rnd = (n: number): number => { x = (x * 1103515245 + 12345) >>> 0; return (x >>> 8) % n; };
    for (let step = 0; step < 400; step++) {
      const add: AddrPort[] = [], remove: AddrPort[] = [];
      for (let k = rnd(6); k > 0; k--) {
        const i = rnd(40);
        const ep: AddrPort = {
          ip: i % 9 === 0 ? `198.18.0.${i}` : i % 5 === 0 ? `fd00:44::${i}` : `198.18.64.${i}`,
          protocol: i % 7 === 0 ? 'UDP' : 'TCP', port: 8080 + (i % 4) + (i % 11 === 0 ? 10 : 0),
        };
        const key = `${ep.ip}|${ep.protocol}|${ep.port}`;
        if (add.some((a) => `${a.ip}|${a.protocol}|${a.port}` === key) || remove.some((a) => `${a.ip}|${a.protocol}|${a.port}` === key)) continue;
        if (live.has(key)) { remove.push(ep); live.delete(key); } else { add.push(ep); live.set(key, ep); }
      }
      const before = new Set(set.rules);
      const { added, removed } = set.update(add, remove);
      const want = replyRules([...live.values()], cidrs);
      expect([...set.rules].sort()).toEqual([...want].sort());
      expect(added.sort()).toEqual([...want].filter((r) => !before.has(r)).sort());
      expect(removed.sort()).toEqual([...before].filter((r) => !want.has(r)).sort());
    }
  });
});

describe('ServedDestinations', () => {
  const served = new ServedDestinations(['198.19.0.0/16', 'fd00:96::/112'], ['198.18.0.1', '198.18.255.254', 'fd00:18::1']);
  const to = (dst: string, src = dst.includes(':') ? 'fd00:44::5' : '198.18.64.9') =>
    buildPacket({ src, dst, proto: 'tcp', sport: 8080, dport: 40000, flags: 'SA' });

  it('serves service CIDRs, node and masquerade addresses, and the VIPs set last', () => {
    for (const d of ['198.19.0.10', '198.19.255.255', '198.18.0.1', '198.18.255.254', 'fd00:96::a', 'fd00:18::1']) {
      expect(served.trackedOnly(to(d)), d).toBe(false);
    }
    expect(served.trackedOnly(to('198.18.9.9'))).toBe(true);
    served.setVips(['198.18.9.9', 'fd00:99::9']);
    expect(served.trackedOnly(to('198.18.9.9'))).toBe(false);
    expect(served.trackedOnly(to('fd00:99::9'))).toBe(false);
    served.setVips([]);
    expect(served.trackedOnly(to('198.18.9.9'))).toBe(true);
  });

  it('marks replies to clients (pods or outside) as steered for un-NAT only', () => {
    for (const d of ['198.18.4.9', '198.20.0.1', 'fd00:44::7', 'fd00:97::1']) expect(served.trackedOnly(to(d)), d).toBe(true);
    expect(served.trackedOnly(new Uint8Array([0x45, 0, 0]))).toBe(false); // too short: the core judges it
  });
});
