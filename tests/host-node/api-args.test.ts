// A JavaScript caller's mistakes are refused with an Error naming the argument, before anything
// changes: no hang on an oversized packet, no batch half processed, no apply() that leaves its
// mode's tables flushed, no ipset restore left open, no IPVS program left half made, no number
// wrapped into another on its way into the core.
import { describe, it, expect } from 'vitest';
import { Dataplane } from '../../host-node/dataplane.js';
import { buildPacket } from '../../host-node/core/packet.js';

const NODE = { nodeIPs: ['198.18.200.1'], podCIDR: '198.19.0.0/16', conntrackCapacity: 1 << 12, seed: 1 };
const SVC = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { clusterIP: '198.18.0.10', ports: [{ name: 'http', port: 80, targetPort: 8080 }] } };
const SLICE = {
  apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'web-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } },
  addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }], endpoints: [{ addresses: ['198.19.1.1'], conditions: { ready: true } }],
};
let sport = 30000;
const syn = () => buildPacket({ src: '198.19.9.9', dst: '198.18.0.10', proto: 'tcp', sport: sport++, dport: 80, flags: 'S' });
const served = (dp: Dataplane) => dp.process(syn(), 1000).verdict;

describe('packets a caller got wrong', () => {
  it('a packet larger than the I/O arena is refused before any packet of the batch runs (it looped forever)', async () => {
    const dp = await Dataplane.create(NODE);
    dp.apply([SVC, SLICE], { mode: 'direct' });
    expect(() => dp.processBatch([syn(), new Uint8Array((8 << 20) + 1)], 1000)).toThrow(/packet 1 of 8388609 bytes exceeds the I\/O arena/);
    expect(dp.conntrack(1000)).toHaveLength(0);
    const b = new ArrayBuffer(64);
    const detached = new Uint8Array(b);
    structuredClone(b, { transfer: [b] });
    expect(() => dp.processBatch([syn(), detached], 1000)).toThrow("process: packet 1's buffer is detached");
    expect(dp.conntrack(1000)).toHaveLength(0);
    expect(served(dp)).toBe('FORWARD');
  });
});

describe('apply() input and options a caller got wrong', () => {
  it('are refused before the previous mode\'s tables are touched', async () => {
    const dp = await Dataplane.create(NODE);
    dp.apply([SVC, SLICE], { mode: 'iptables' });
    const save = dp.iptablesSave();
    const refused: [unknown, unknown, RegExp][] = [
      [undefined, {}, /the input is manifests text, a list of objects or decoded objects, not undefined/],
      [[SVC, SLICE], { mode: 'ipvz' }, /mode "ipvz": iptables, ipvs or direct/],
      [[SVC, SLICE], { mode: 'direct', nodeName: 7 }, /nodeName 7: a node's name/],
      [[SVC, SLICE], { mode: 'direct', delta: { removed: 5 } }, /delta is \{ removed/],
      [[SVC, SLICE], { mode: 'direct', iptables: { masqueradeAll: 1n } }, /settings hold a value of the wrong kind/],
    ];
    for (const [input, opts, why] of refused) {
      expect(() => dp.apply(input as never, opts as never)).toThrow(why);
      expect(dp.iptablesSave()).toBe(save);
      expect(served(dp)).toBe('FORWARD');
    }
  });
});

describe('ipset and IPVS calls a caller got wrong', () => {
  it('ipset restore of no text leaves no restore open: the next one works', async () => {
    const dp = await Dataplane.create(NODE);
    expect(() => dp.ipset.restore(undefined as never)).toThrow('restore: the input is text, not undefined');
    dp.ipset.restore('create S hash:ip\nadd S 198.18.0.1\n');
    expect(dp.ipset.test('S', '198.18.0.1')).toBe(true);
  });

  it('an IPVS init refused leaves no program behind; a later one starts', async () => {
    const dp = await Dataplane.create(NODE);
    expect(() => dp.ipvs({ connLog2: 99 })).toThrow();
    expect(dp.ipvsRunning).toBe(false);
    dp.apply([SVC, SLICE], { mode: 'ipvs' });
    expect(served(dp)).toBe('FORWARD');
  });

  it('IPVS numbers and names that would wrap or read as 0 are refused; a destination with a bad tunnel is not left added', async () => {
    const dp = await Dataplane.create(NODE);
    const p = dp.ipvs();
    const id = p.addService({ protocol: 'tcp', address: '198.18.0.20', port: 80, scheduler: 'rr' });
    expect(() => p.deleteService('x' as never)).toThrow('delete service: a string where a 32-bit integer goes');
    expect(() => p.addService({ fwmark: 2 ** 32 + 1 })).toThrow('add service: 4294967297 where a 32-bit integer goes');
    expect(() => p.addService({ protocol: 'tcp', address: '198.18.0.21', port: 1.5 })).toThrow('1.5 where a 32-bit integer goes');
    expect(() => p.addService({ protocol: 'gre' as never, address: '198.18.0.21', port: 80 })).toThrow('unknown protocol "gre" (tcp, udp, sctp)');
    expect(() => p.addDest(id, { address: '198.19.1.1', port: 8080, forwarding: 'bogus' as never })).toThrow('unknown forwarding "bogus"');
    expect(() => p.addDest(id, { address: '198.19.1.1', port: 8080, forwarding: 'tunnel', tunnel: { type: 'gue', port: 0 } })).toThrow();
    expect(() => p.addDest(id, { address: '198.19.1.2', port: 8080, forwarding: 'tunnel', tunnel: { type: 'vxlan' as never } })).toThrow('unknown tunnel type vxlan');
    expect(p.service(id)!.destinations).toEqual([]);
    expect(() => p.setSysctl('nope' as never, 1)).toThrow('unknown sysctl "nope"');
    expect(dp.ipvsadm(['-S', '-n']).stdout).toBe('-A -t 198.18.0.20:80 -s rr\n');
  });
});

describe('counts the core takes as 32-bit numbers', () => {
  it('are whole and in range; a listing from past the table ends, never wraps to slot 0', async () => {
    const dp = await Dataplane.create(NODE);
    dp.apply([SVC, SLICE], { mode: 'direct' });
    served(dp);
    expect(dp.conntrackFrom(0, 10, 1000).flows).toHaveLength(1);
    expect(dp.conntrackFrom(2 ** 32, 10, 1000)).toEqual({ flows: [], next: null });
    for (const bad of [2 ** 32, NaN, -1, 1.5]) {
      expect(() => dp.expire(1000, bad)).toThrow('expire: bad budget');
      expect(() => dp.warmConntrack(bad)).toThrow('warmConntrack: bad maxBytes');
    }
    expect(() => dp.conntrackFrom(0, '5' as never, 1000)).toThrow('bad slot 0 or count 5');
    expect(dp.conntrack(1000)).toHaveLength(1);
  });
});

describe('arguments of the wrong kind are named, not met by a TypeError from deep inside', () => {
  it('in the service table, ipset, listings and packet checks', async () => {
    const dp = await Dataplane.create(NODE);
    expect(() => dp.setServices([null as never])).toThrow('service #0: spec: a service is { vip, port, endpoints, … }, not null');
    expect(() => dp.setServices([{ vip: 1n as never, port: 80, endpoints: [] }])).toThrow('not an IP address: 1');
    expect(() => dp.setPodCIDR([1n as never])).toThrow('not a CIDR: 1');
    // A name every object has is no protocol (the `in` test saw Object.prototype's).
    expect(() => dp.setServices([{ vip: '198.18.0.5', port: 80, protocol: 'constructor' as never, endpoints: [] }])).toThrow('protocol: unknown protocol "constructor"');
    expect(() => dp.ipset.command(null as never)).toThrow('a command is a line of text or a list of words');
    expect(() => dp.ipset.command(['create', 's', 5 as never])).toThrow('a command is a line of text or a list of words');
    expect(() => dp.ipset.test('s', 5 as never)).toThrow('test: a set name and an entry, as text');
    expect(() => dp.iptablesLines(undefined as never)).toThrow('iptablesLines: a listing is');
    expect(() => dp.trace({ src: '198.19.9.9', dst: '198.18.0.10', dport: Symbol('p') as never })).toThrow('bad dport a symbol');
    expect(served(dp)).toBe('PASS');
  });
});

describe('an IPVS desired state with a service or destination the calls would refuse', () => {
  it('is refused before the first change, so apply() never stops part way for it', async () => {
    const dp = await Dataplane.create(NODE);
    const p = dp.ipvs();
    const web = { protocol: 'tcp' as const, address: '198.18.0.20', port: 80, scheduler: 'rr' as const, destinations: [{ address: '198.19.1.1', port: 8080, forwarding: 'masq' as const }] };
    p.apply([web, { ...web, address: '198.18.0.21' }]);
    const before = dp.ipvsadm(['-S', '-n']).stdout;
    const bad: [unknown[], RegExp][] = [
      [[web, { ...web, address: 'not-an-ip' }], /not-an-ip/],
      [[{ ...web, address: '198.18.0.22' }, { ...web, destinations: [{ address: '198.19.1.2', port: 70000 }] }], /port 70000: an integer 0-65535/],
      [[{ ...web, address: '198.18.0.22' }, { ...web, destinations: [{ address: '198.19.1.2', port: 80, forwarding: 'bogus' }] }], /unknown forwarding "bogus"/],
      [[{ ...web, address: '198.18.0.22' }, { ...web, scheduler: 'fastest' }], /unknown scheduler fastest/],
      [[{ ...web, address: '198.18.0.22' }, null], /service #1/],
    ];
    for (const [desired, why] of bad) {
      expect(() => p.apply(desired as never)).toThrow(why);
      expect(dp.ipvsadm(['-S', '-n']).stdout).toBe(before);
    }
    expect(() => p.applyChanges([{ ...web, port: 1.5 }], [])).toThrow(/port 1.5/);
    expect(dp.ipvsadm(['-S', '-n']).stdout).toBe(before);
  });
});
