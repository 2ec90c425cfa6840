// dp.apply({ mode: 'direct' }): incremental per-service changes, refused changes that leave the old
// entries live, stale UDP conntrack cleanup, and switching modes on one Dataplane.
import { describe, it, expect } from 'vitest';
import { buildPacket, decodePacket } from '../../../../host-node/core/packet.js';
import { dataplaneFor, applyIn, runCase, service, slice, docs, MODES } from './harness.js';

const http = [{ name: 'http', port: 80, targetPort: 8080 }];
const web = (name: string, ip: string, eps: string[], spec: Record<string, unknown> = {}) =>
  docs(service(name, { clusterIP: ip, ports: http, ...spec }), slice(name, eps.map((e) => ({ ip: e })), http));
const to = (ip: string, sport = 40000) => ({ name: ip, src: '198.19.3.3', dst: ip, dport: 80, flows: 12, expect: [] });

describe('direct mode: incremental sync', () => {
  it('writes only the changed service and leaves the others as they are', async () => {
    const dp = await dataplaneFor({});
    const a = web('a', '198.18.0.1', ['198.19.1.1']);
    const b = (eps: string[]) => web('b', '198.18.0.2', eps);
    const c = web('c', '198.18.0.3', ['198.19.3.1']);
    const r1 = applyIn(dp, 'direct', docs(a, b(['198.19.2.1']), c));
    expect(r1.issues).toEqual([]);
    expect(r1.families.find((f) => f.family === 4)).toMatchObject({ full: true, direct: { put: 3, removed: 0 } });
    expect(dp.core.serviceCount()).toBe(3);

    const r2 = applyIn(dp, 'direct', docs(a, b(['198.19.2.1', '198.19.2.2']), c));
    expect(r2.families.find((f) => f.family === 4)).toMatchObject({ full: false, changedServices: ['default/b'], direct: { put: 1, removed: 0 } });
    expect(runCase(dp, to('198.18.0.2'), 30000)).toEqual(['198.19.2.1:8080', '198.19.2.2:8080']);
    expect(runCase(dp, to('198.18.0.1'), 31000)).toEqual(['198.19.1.1:8080']);

    const r3 = applyIn(dp, 'direct', docs(a, c));
    expect(r3.families.find((f) => f.family === 4)).toMatchObject({ changedServices: ['default/b'], direct: { put: 0, removed: 1 } });
    expect(dp.core.serviceCount()).toBe(2);
    expect(runCase(dp, to('198.18.0.2'), 32000)).toEqual(['PASS']);
    expect(runCase(dp, to('198.18.0.3'), 33000)).toEqual(['198.19.3.1:8080']);

    // A port removed from a Service goes; the other port stays, and with it the cluster IP: the
    // removed port is refused now (nftables mode's cluster-ips-check).
    const two = docs(
      service('m', { clusterIP: '198.18.0.9', ports: [...http, { name: 'alt', port: 81, targetPort: 8081 }] }),
      slice('m', [{ ip: '198.19.9.1' }], [...http, { name: 'alt', port: 81, targetPort: 8081 }]),
    );
    applyIn(dp, 'direct', docs(a, c, two));
    expect(dp.core.serviceCount()).toBe(4);
    const r4 = applyIn(dp, 'direct', docs(a, c, web('m', '198.18.0.9', ['198.19.9.1'])));
    expect(r4.families.find((f) => f.family === 4)!.direct).toEqual({ put: 1, removed: 1 });
    expect(runCase(dp, { ...to('198.18.0.9'), dport: 81 }, 34000)).toEqual(['REJECT']);
    expect(runCase(dp, to('198.18.0.9'), 35000)).toEqual(['198.19.9.1:8080']);
    // The Service gone, its address is nobody's: any port passes (no service CIDR set here).
    applyIn(dp, 'direct', docs(a, c));
    expect(runCase(dp, { ...to('198.18.0.9'), dport: 81 }, 36000)).toEqual(['PASS']);
    expect(runCase(dp, to('198.18.0.9'), 37000)).toEqual(['PASS']);
  });

  it('refuses a change that takes another service\'s address, keeping the old entries live', async () => {
    const dp = await dataplaneFor({});
    const b = web('b', '198.18.0.2', ['198.19.2.1']);
    applyIn(dp, 'direct', docs(web('a', '198.18.0.1', ['198.19.1.1']), b));
    // a now also claims b's cluster IP as an external IP (same port) and moves to new endpoints.
    const r = applyIn(dp, 'direct', docs(web('a', '198.18.0.1', ['198.19.1.7'], { externalIPs: ['198.18.0.2'] }), b));
    expect(r.issues).toHaveLength(1);
    expect(r.issues[0]).toMatchObject({ object: 'Service default/a' });
    expect(r.issues[0]!.message).toMatch(/already taken/);
    expect(runCase(dp, to('198.18.0.1'), 30000)).toEqual(['198.19.1.1:8080']);
    expect(runCase(dp, to('198.18.0.2'), 31000)).toEqual(['198.19.2.1:8080']);
  });

  it('puts a refused service again in later syncs: once the address is free it lands, its object unchanged', async () => {
    const dp = await dataplaneFor({});
    const a = web('a', '198.18.0.1', ['198.19.1.1']);
    applyIn(dp, 'direct', docs(a, web('b', '198.18.0.2', ['198.19.2.1'])));
    const moved = web('b', '198.18.0.1', ['198.19.2.1']);
    expect(applyIn(dp, 'direct', docs(a, moved)).issues[0]!.message).toMatch(/already taken/);
    // Still refused while a holds the address: reported again, b's old entry live.
    const c = web('c', '198.18.0.3', ['198.19.3.1']);
    expect(applyIn(dp, 'direct', docs(a, moved, c)).issues[0]!.message).toMatch(/already taken/);
    expect(runCase(dp, to('198.18.0.2'), 30000)).toEqual(['198.19.2.1:8080']);
    // a goes: b's unchanged object now lands on the freed address, as in a fresh dataplane.
    expect(applyIn(dp, 'direct', docs(moved, c)).issues).toEqual([]);
    expect(runCase(dp, to('198.18.0.1'), 31000)).toEqual(['198.19.2.1:8080']);
    expect(runCase(dp, to('198.18.0.2'), 32000)).toEqual(['PASS']);
    expect(applyIn(dp, 'direct', docs(moved, c)).families.find((f) => f.family === 4)!.direct).toEqual({ put: 0, removed: 0 });
  });

  it('lets a service take an address another one gives up in the same sync', async () => {
    const dp = await dataplaneFor({});
    applyIn(dp, 'direct', docs(web('a', '198.18.0.1', ['198.19.1.1'], { externalIPs: ['198.18.15.1'] }), web('b', '198.18.0.2', ['198.19.2.1'])));
    const r = applyIn(dp, 'direct', docs(web('a', '198.18.0.1', ['198.19.1.1']), web('b', '198.18.0.2', ['198.19.2.1'], { externalIPs: ['198.18.15.1'] })));
    expect(r.issues).toEqual([]);
    expect(runCase(dp, { ...to('198.18.15.1'), src: '203.0.113.9' }, 30000)).toEqual(['198.19.2.1:8080 masq']);
  });
});

describe('direct mode: stale UDP conntrack', () => {
  const dns = (eps: string[]) => docs(
    service('dns', { clusterIP: '198.18.0.10', ports: [{ name: 'dns', port: 53, protocol: 'UDP', targetPort: 53 }] }),
    slice('dns', eps.map((ip) => ({ ip })), [{ name: 'dns', port: 53, protocol: 'UDP', targetPort: 53 }]),
  );
  const query = (sport: number) => buildPacket({ src: '198.19.3.3', dst: '198.18.0.10', proto: 'udp', sport, dport: 53, payload: 'q' });

  it('deletes flows to an endpoint that left', async () => {
    const dp = await dataplaneFor({});
    applyIn(dp, 'direct', dns(['198.19.1.53']));
    expect(decodePacket(dp.process(query(5000), 1).packet!).dst).toBe('198.19.1.53');
    expect(dp.conntrack()).toHaveLength(1);
    const r = applyIn(dp, 'direct', dns(['198.19.2.53']));
    expect(r.flushed).toBe(1);
    expect(dp.conntrack()).toHaveLength(0);
    expect(decodePacket(dp.process(query(5000), 2).packet!).dst).toBe('198.19.2.53');

    applyIn(dp, 'direct', dns([]));
    expect(dp.process(query(5001), 3).verdict).toBe('REPLY');
    applyIn(dp, 'direct', dns(['198.19.3.53']));
    expect(decodePacket(dp.process(query(5001), 4).packet!).dst).toBe('198.19.3.53');
  });
});

describe('switching modes on one Dataplane', () => {
  it('clears the previous mode\'s service tables, keeps connections and their NAT', async () => {
    const dp = await dataplaneFor({});
    const objs = web('a', '198.18.0.1', ['198.19.1.1']);
    applyIn(dp, 'iptables', objs);
    expect(dp.iptablesSave()).toMatch(/KUBE-SERVICES/);
    // A connection opened in iptables mode.
    const syn = dp.process(buildPacket({ src: '198.19.3.3', dst: '198.18.0.1', proto: 'tcp', sport: 41000, dport: 80, flags: 'S' }), 1);
    expect(decodePacket(syn.packet!).dst).toBe('198.19.1.1');

    const r = applyIn(dp, 'direct', objs);
    expect(r.families.find((f) => f.family === 4)).toMatchObject({ full: true, direct: { put: 1 } });
    expect(dp.iptablesSave()).not.toMatch(/KUBE-/);
    expect(dp.core.serviceCount()).toBe(1);
    // Its reply is still translated back to the service address.
    const reply = dp.process(buildPacket({ src: '198.19.1.1', dst: '198.19.3.3', proto: 'tcp', sport: 8080, dport: 41000, flags: 'SA' }), 2);
    expect(decodePacket(reply.packet!)).toMatchObject({ src: '198.18.0.1', sport: 80 });
    expect(runCase(dp, to('198.18.0.1'), 30000)).toEqual(['198.19.1.1:8080']);

    const back = applyIn(dp, 'iptables', objs);
    expect(back.families.find((f) => f.family === 4)!.full).toBe(true);
    expect(dp.core.serviceCount()).toBe(0);
    expect(runCase(dp, to('198.18.0.1'), 31000)).toEqual(['198.19.1.1:8080']);
  });

  it.each(MODES)('%s mode: the same objects applied twice change nothing', async (mode) => {
    const dp = await dataplaneFor({});
    const objs = web('a', '198.18.0.1', ['198.19.1.1']);
    applyIn(dp, mode, objs);
    const again = applyIn(dp, mode, objs);
    expect(again.families.find((f) => f.family === 4)!.changedServices).toEqual([]);
  });
});

describe.each(MODES)('incremental input (%s mode)', (mode) => {
  it('applies only the objects handed in, and the named removals', async () => {
    const dp = await dataplaneFor({});
    applyIn(dp, mode, docs(web('a', '198.18.0.1', ['198.19.1.1']), web('b', '198.18.0.2', ['198.19.2.1'])));
    const add = dp.apply(web('c', '198.18.0.3', ['198.19.3.1']), { mode, nodeName: 'node-a', delta: {} });
    expect(add.families.find((f) => f.family === 4)).toMatchObject({ full: false, changedServices: ['default/c'] });
    expect(runCase(dp, to('198.18.0.3'), 30000)).toEqual(['198.19.3.1:8080']);
    expect(runCase(dp, to('198.18.0.1'), 31000)).toEqual(['198.19.1.1:8080']);   // a and b stay

    const upd = dp.apply(slice('b', [{ ip: '198.19.2.9' }], http), { mode, nodeName: 'node-a', delta: {} });
    expect(upd.families.find((f) => f.family === 4)!.changedServices).toEqual(['default/b']);
    expect(runCase(dp, to('198.18.0.2'), 32000)).toEqual(['198.19.2.9:8080']);

    const del = dp.apply([], { mode, nodeName: 'node-a', delta: { removed: ['Service default/a', 'EndpointSlice default/a-v4', 'Service default/nope'] } });
    expect(del.families.find((f) => f.family === 4)!.changedServices).toEqual(['default/a']);
    expect(runCase(dp, to('198.18.0.1'), 33000)).toEqual(['PASS']);
    expect(runCase(dp, to('198.18.0.3'), 34000)).toEqual(['198.19.3.1:8080']);
  });

  it('flushes stale UDP flows of a changed Service only', async () => {
    const dns = (name: string, ip: string, ep: string) => docs(
      service(name, { clusterIP: ip, ports: [{ name: 'dns', port: 53, protocol: 'UDP', targetPort: 53 }] }),
      slice(name, [{ ip: ep }], [{ name: 'dns', port: 53, protocol: 'UDP', targetPort: 53 }]),
    );
    const dp = await dataplaneFor({});
    applyIn(dp, mode, docs(dns('d1', '198.18.0.10', '198.19.1.53'), dns('d2', '198.18.0.11', '198.19.2.53')));
    for (const [dst, sport] of [['198.18.0.10', 5000], ['198.18.0.11', 5001]] as const) {
      dp.process(buildPacket({ src: '198.19.3.3', dst, proto: 'udp', sport, dport: 53, payload: 'q' }), 1);
    }
    expect(dp.conntrack()).toHaveLength(2);
    const r = dp.apply(slice('d1', [{ ip: '198.19.1.54' }], [{ name: 'dns', port: 53, protocol: 'UDP', targetPort: 53 }]), { mode, nodeName: 'node-a', delta: {} });
    expect(r.flushed).toBe(1);
    expect(dp.conntrack().map((e) => e.original.dst)).toEqual(['198.18.0.11']);
  });
});
