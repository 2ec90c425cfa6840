// ipvs mode's partial syncs (IpvsApply keeping what it applied per virtual server): a sequence of
// delta applies leaves the core's IPVS tables as one full sync of the same objects would (apart
// from a real server still draining), touches only the Services that changed, keeps the
// connections of the others, and deletes a draining TCP real server once its connections are gone
// even when its Service did not change again. Synthetic packets only (no network).
import { describe, it, expect } from 'vitest';
import { Dataplane } from '../../../host-node/dataplane.js';
import { buildPacket, decodePacket } from '../../../host-node/core/packet.js';

const NODE = '192.168.49.2';
const OPTS = { mode: 'ipvs' as const, nodeName: 'node-a' };

type Svc = { name: string; ip: string; port?: number; protocol?: 'TCP' | 'UDP'; affinity?: number };

function service(s: Svc) {
  return {
    apiVersion: 'v1', kind: 'Service',
    metadata: { name: s.name, namespace: 'default' },
    spec: {
      clusterIP: s.ip, ports: [{ name: 'p', port: s.port ?? 80, targetPort: 8080, protocol: s.protocol ?? 'TCP' }],
      ...(s.affinity ? { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: s.affinity } } } : {}),
    },
  };
}

function slice(svc: string, ips: string[], protocol = 'TCP') {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name: `${svc}-1`, namespace: 'default', labels: { 'kubernetes.io/service-name': svc } },
    addressType: 'IPv4', ports: [{ name: 'p', port: 8080, protocol }],
    endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
  };
}

async function dataplane() {
  return Dataplane.create({ nodeIPs: [NODE], podCIDR: '10.244.0.0/16', seed: 7 });
}

/** `ipvsadm -Ln` without the connection counters (a fresh core has none). */
function table(dp: Dataplane): string {
  return dp.ipvsadm('-Ln').stdout.split('\n').map((l) => l.replace(/(\s+\d+){2}\s*$/, '')).join('\n');
}

function syn(dp: Dataplane, dst: string, sport: number, now: number, flags = 'S') {
  const r = dp.process(buildPacket({ src: '10.244.3.3', dst, proto: 'tcp', sport, dport: 80, flags }), now);
  return decodePacket(r.packet!).dst;
}

const ipvs4 = (r: ReturnType<Dataplane['apply']>) => r.families.find((f) => f.family === 4)!.ipvs!;

describe('ipvs mode: partial syncs', () => {
  it('a sequence of delta syncs ends where one full sync of the same objects does, and spares unchanged Services', async () => {
    const svcs: Svc[] = Array.from({ length: 6 }, (_, i) => ({ name: `s${i}`, ip: `10.96.0.${10 + i}` }));
    svcs.push({ name: 'dns', ip: '10.96.0.53', port: 53, protocol: 'UDP' });
    const eps = (i: number) => [`10.244.1.${10 + i}`, `10.244.2.${10 + i}`];
    const objects = new Map<string, object>();
    for (const [i, s] of svcs.entries()) {
      objects.set(`svc/${s.name}`, service(s));
      objects.set(`eps/${s.name}`, slice(s.name, eps(i), s.protocol));
    }
    const dp = await dataplane();
    expect(dp.apply([...objects.values()], OPTS).issues).toEqual([]);

    // A connection to s5 that nothing below changes; its entry and real server must survive.
    const kept = syn(dp, '10.96.0.15', 50000, 1000);
    const keptDest = dp.ipvs().findDest(dp.ipvs().findService({ protocol: 'tcp', address: '10.96.0.15', port: 80 })!, kept, 8080);
    expect(keptDest).toBeDefined();

    let scheduler = 'rr';
    const delta = (...objs: object[]) => dp.apply(objs, { ...OPTS, ipvs: { scheduler }, delta: { removed: [] } });
    // An endpoint added.
    const s0 = [...eps(0), '10.244.3.10'];
    objects.set('eps/s0', slice('s0', s0));
    expect(ipvs4(delta(objects.get('eps/s0')!))).toMatchObject({ added: 1, edited: 0, deleted: 0 });
    // An endpoint removed (no connections: it goes at once).
    objects.set('eps/s1', slice('s1', eps(1).slice(0, 1)));
    expect(ipvs4(delta(objects.get('eps/s1')!))).toMatchObject({ added: 0, edited: 0, deleted: 1, terminating: 0 });
    // An endpoint replaced by another (as many real servers as before).
    objects.set('eps/s0', slice('s0', [s0[0]!, s0[1]!, '10.244.3.99']));
    expect(ipvs4(delta(objects.get('eps/s0')!))).toMatchObject({ added: 1, edited: 0, deleted: 1 });
    // The scheduler (--ipvs-scheduler) changed: every virtual server edited, no real server touched.
    scheduler = 'wrr';
    expect(ipvs4(delta())).toMatchObject({ added: 0, edited: 7, deleted: 0 });
    // Session affinity on.
    objects.set('svc/s3', service({ ...svcs[3]!, affinity: 120 }));
    expect(ipvs4(delta(objects.get('svc/s3')!))).toMatchObject({ added: 0, edited: 1, deleted: 0 });
    // A Service removed (with its slice): its virtual server goes.
    objects.delete('svc/s4'); objects.delete('eps/s4');
    const gone = dp.apply([], { ...OPTS, ipvs: { scheduler }, delta: { removed: ['Service default/s4', 'EndpointSlice default/s4-1'] } });
    expect(ipvs4(gone)).toMatchObject({ added: 0, edited: 0, deleted: 1 });

    const fresh = await dataplane();
    expect(fresh.apply([...objects.values()], { ...OPTS, ipvs: { scheduler } }).issues).toEqual([]);
    expect(table(dp)).toBe(table(fresh));
    expect(table(dp)).toMatch(/TCP  10\.96\.0\.12:80 wrr\n/);
    expect(table(dp)).toMatch(/TCP  10\.96\.0\.13:80 wrr persistent 120/);
    expect(table(dp)).toMatch(/UDP  10\.96\.0\.53:53 wrr/);
    expect(table(dp)).not.toContain('10.96.0.14:80');

    // s5's real server kept its id, and its connection still goes there.
    const svc5 = dp.ipvs().findService({ protocol: 'tcp', address: '10.96.0.15', port: 80 })!;
    expect(dp.ipvs().findDest(svc5, kept, 8080)).toBe(keptDest);
    expect(syn(dp, '10.96.0.15', 50000, 1500, 'A')).toBe(kept);
    expect(dp.ipvsadm('-Lnc').stdout).toMatch(/10\.96\.0\.15:80/);
  });

  it('after each change of a random sequence, equals a first sync of the same objects: servers, sets and rules', async () => {
    let x = 23;
    const rnd = (n: number): number => { x = (x * 1103515245 + 12345) >>> 0; return (x >>> 8) % n; };
    // Services of every kind the ipvs mode renders differently: NodePort (TCP, UDP, SCTP), ETP
    // Local, externalIPs (two Services sharing one address and port), LoadBalancer with source
    // ranges that leave the node out, affinity; slices with local and remote endpoints.
    const svcObj = (i: number, v: number) => {
      const kind = v % 6;
      const protocol = (['TCP', 'UDP', 'SCTP'] as const)[v % 3]!;
      return {
        apiVersion: 'v1', kind: 'Service', metadata: { name: `r${i}`, namespace: 'default' },
        spec: {
          type: kind === 1 ? 'NodePort' : kind === 2 ? 'LoadBalancer' : 'ClusterIP', clusterIP: `10.96.1.${i + 1}`,
          ...(kind === 1 || kind === 2 ? { externalTrafficPolicy: v % 4 === 0 ? 'Local' : 'Cluster' } : {}),
          ...(kind === 2 && v % 4 === 0 ? { healthCheckNodePort: 32100 + i } : {}),
          ...(kind === 3 ? { externalIPs: ['203.0.113.7'] } : {}),
          ...(kind === 2 && v % 5 < 3 ? { loadBalancerSourceRanges: v % 5 === 0 ? ['198.51.100.0/24'] : ['192.168.49.0/24'] } : {}),
          ...(kind === 4 ? { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 + v % 7 } } } : {}),
          ports: [{ name: 'p', port: 80, targetPort: 8080, protocol, ...(kind === 1 || kind === 2 ? { nodePort: 30100 + i } : {}) }],
        },
        ...(kind === 2 ? { status: { loadBalancer: { ingress: [{ ip: `203.0.113.${20 + i}` }] } } } : {}),
      };
    };
    const sliceObj = (i: number, v: number, protocol: string) => ({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: `r${i}-1`, namespace: 'default', labels: { 'kubernetes.io/service-name': `r${i}` } },
      addressType: 'IPv4', ports: [{ name: 'p', port: 8080, protocol }],
      endpoints: Array.from({ length: v % 4 }, (_, k) => ({
        addresses: [`10.244.${k}.${(i * 5 + v) % 250}`], nodeName: (v + k) % 2 === 0 ? 'node-a' : 'node-b',
        conditions: { ready: (v + k) % 5 !== 4, serving: true, terminating: (v + k) % 5 === 4 },
      })),
    });
    const objects = new Map<string, { o: object; protocol?: string }>();
    const dp = await dataplane();
    dp.apply([], OPTS);
    for (let step = 0; step < 80; step++) {
      const i = rnd(10), v = rnd(1000), what = rnd(8);
      let r;
      if (what === 0 && objects.has(`svc/${i}`)) {
        objects.delete(`svc/${i}`);
        r = dp.apply([], { ...OPTS, delta: { removed: [`Service default/r${i}`] } });
      } else if (what === 1 && objects.has(`eps/${i}`)) {
        objects.delete(`eps/${i}`);
        r = dp.apply([], { ...OPTS, delta: { removed: [`EndpointSlice default/r${i}-1`] } });
      } else if (what < 4) {
        const o = svcObj(i, v);
        objects.set(`svc/${i}`, { o, protocol: o.spec.ports[0]!.protocol });
        r = dp.apply([o], { ...OPTS, delta: {} });
      } else {
        const o = sliceObj(i, v, objects.get(`svc/${i}`)?.protocol ?? 'TCP');
        objects.set(`eps/${i}`, { o });
        r = dp.apply([o], { ...OPTS, delta: {} });
      }
      expect(r.issues).toEqual([]);
      const fresh = await dataplane();
      fresh.apply([...objects.values()].map((e) => e.o), OPTS);
      expect(table(dp), `step ${step}`).toBe(table(fresh));
      expect(dp.ipset.save(), `step ${step}`).toBe(fresh.ipset.save());
      // The same rules in every chain (the order chains are listed in follows the restores made).
      for (const t of ['nat', 'filter'] as const) {
        const chains = fresh.iptablesChains(t).map((c) => c.name).sort();
        expect(dp.iptablesChains(t).map((c) => c.name).sort(), `step ${step} ${t}`).toEqual(chains);
        for (const c of chains) expect(dp.iptablesRules(t, c), `step ${step} ${t} ${c}`).toBe(fresh.iptablesRules(t, c));
      }
    }
  });

  it('an unchanged Service with a draining real server is re-checked every sync and loses it once drained', async () => {
    const web = { name: 'web', ip: '10.96.0.80' }, other = { name: 'other', ip: '10.96.0.81' };
    const EPS = ['10.244.1.11', '10.244.2.12'];
    const dp = await dataplane();
    dp.apply([service(web), slice('web', EPS), service(other), slice('other', ['10.244.1.20'])], OPTS);
    const a = syn(dp, '10.96.0.80', 45000, 1000);
    const stay = EPS.find((x) => x !== a)!;
    const delta = (...objs: object[]) => dp.apply(objs, { ...OPTS, delta: { removed: [] } });

    const leave = delta(slice('web', [stay]));
    expect(ipvs4(leave)).toMatchObject({ terminating: 1, edited: 1, deleted: 0 });
    expect(dp.ipvsadm('-Ln').stdout).toMatch(new RegExp(`-> ${a.replace(/\./g, '\\.')}:8080\\s+Masq\\s+0\\s`));
    // A sync about another Service: web is re-checked, its real server still has a connection.
    expect(ipvs4(delta(slice('other', ['10.244.1.20', '10.244.1.21'])))).toMatchObject({ terminating: 1, added: 1, deleted: 0 });
    expect(syn(dp, '10.96.0.80', 45000, 1001, 'A')).toBe(a);
    expect(syn(dp, '10.96.0.80', 45001, 1002)).toBe(stay);

    // Connections gone: the next sync, about another Service again, deletes the drained one.
    dp.ipvs().expire(1000 + 20 * 60_000);
    expect(ipvs4(delta(slice('other', ['10.244.1.20'])))).toMatchObject({ terminating: 0, deleted: 2 });
    expect(dp.ipvsadm('-Ln').stdout).not.toContain(`${a}:8080`);
    // Nothing draining any more: a sync about other leaves web alone.
    expect(ipvs4(delta(slice('other', ['10.244.1.20'])))).toMatchObject({ added: 0, edited: 0, deleted: 0, terminating: 0 });

    const fresh = await dataplane();
    fresh.apply([service(web), slice('web', [stay]), service(other), slice('other', ['10.244.1.20'])], OPTS);
    expect(table(dp)).toBe(table(fresh));
  });

  it('a sync of one family leaves the virtual servers of the other as they are', async () => {
    const dp = await Dataplane.create({ nodeIPs: [NODE, 'fd00:49::2'], podCIDR: ['10.244.0.0/16', 'fd00:244::/64'], seed: 7 });
    const web6 = { ...service({ name: 'web6', ip: 'fd00:96::80' }), spec: { ...service({ name: 'web6', ip: 'fd00:96::80' }).spec, ipFamilies: ['IPv6'] } };
    const slice6 = { ...slice('web6', ['fd00:244::11']), addressType: 'IPv6' };
    const web = service({ name: 'web', ip: '10.96.0.80' });
    expect(dp.apply([web6, slice6, web, slice('web', ['10.244.1.11'])], OPTS).issues).toEqual([]);
    const p = dp.ipvs();
    const id6 = p.findService({ protocol: 'tcp', address: 'fd00:96::80', port: 80 })!;
    const dest6 = p.findDest(id6, 'fd00:244::11', 8080);
    const r = dp.apply([slice('web', ['10.244.1.11', '10.244.1.12'])], { ...OPTS, delta: { removed: [] } });
    expect(ipvs4(r)).toMatchObject({ added: 1, edited: 0, deleted: 0 });
    expect(p.findService({ protocol: 'tcp', address: 'fd00:96::80', port: 80 })).toBe(id6);
    expect(p.findDest(id6, 'fd00:244::11', 8080)).toBe(dest6);
    expect(dp.ipvsadm('-Ln').stdout).toMatch(/TCP  \[fd00:96::80\]:80 rr\n  -> \[fd00:244::11\]:8080/);
  });

  it('after a mode switch (state cleared) the next ipvs sync is full and rebuilds every virtual server', async () => {
    const web = { name: 'web', ip: '10.96.0.80' };
    const dp = await dataplane();
    const objs = [service(web), slice('web', ['10.244.1.11'])];
    dp.apply(objs, OPTS);
    dp.apply(objs, { nodeName: 'node-a', mode: 'iptables' });
    expect(dp.ipvs().services()).toHaveLength(0);
    const r = dp.apply(objs, OPTS);
    expect(ipvs4(r).added).toBe(2);
    expect(dp.ipvsadm('-Ln').stdout).toMatch(/TCP  10\.96\.0\.80:80 rr\n  -> 10\.244\.1\.11:8080/);
  });
});
