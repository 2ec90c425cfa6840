// The direct mode's op buffer written in place in the core's config buffer: the same results and
// live table as ops framed in a buffer of its own, also when the ops outgrow the room reserved
// (the batch moves to its own buffer), with a bad service left out either way.
import { describe, it, expect } from 'vitest';
import { Dataplane } from '../../host-node/dataplane.js';
import { DirectOpBuffer, putFrameBound, runDirectOps, type DirectCore, type DirectOp, type DirectService } from '../../host-node/core/svc-config.js';
import { buildPacket, decodePacket } from '../../host-node/core/packet.js';

/** A one-endpoint service at `vip`:80, TCP, Cluster policy (fields as `over` says otherwise). */
const PLAIN = { family: 4, protocol: 'TCP', hostId: 1, local: [], sourceRanges: [], hasEndpoints: true, masqueradeAll: false } as const;
const svc = (name: string, vip: string, over: Partial<DirectService> = {}): DirectService => ({
  ...PLAIN, name, frontends: [{ kind: 'cluster', ip: vip, port: 80 }], cluster: [{ ip: '198.19.1.1', port: 8080 }], local: [], sourceRanges: [],
  internalLocal: false, externalLocal: false, firewall: false, affinityMs: 0, ...over,
});

async function core(): Promise<{ dp: Dataplane; c: DirectCore }> {
  const dp = await Dataplane.create({ nodeIPs: ['198.18.200.1'], podCIDR: '198.19.0.0/16', seed: 3 });
  return { dp, c: (dp as unknown as { core: DirectCore }).core };
}

/** Where a new flow to `vip`:80 goes. */
function dnat(dp: Dataplane, vip: string, sport: number): string {
  const r = dp.process(buildPacket({ src: '198.19.9.9', dst: vip, proto: 'tcp', sport, dport: 80, flags: 'S' }), 1);
  return r.packet ? decodePacket(r.packet).dst : r.verdict;
}

const ops = (n: number): DirectOp[] => {
  const out: DirectOp[] = [];
  for (let i = 1; i <= n; i++) out.push({ op: 'put', slot: -1, svc: svc(`s${i}`, `198.18.1.${i}`, { cluster: [{ ip: `198.19.1.${i}`, port: 8080 }] }) });
  // Not an address: left out and named, the others still go in.
  out.splice(3, 0, { op: 'put', slot: -1, svc: svc('bad', '198.18.2.1', { cluster: [{ ip: 'nope', port: 80 }] }) });
  return out;
};

describe('DirectOpBuffer in the core', () => {
  for (const [what, room] of [['with room for every op', putFrameBound(1, 1, 0) * 41], ['spilling past the room reserved', 100]] as const) {
    it(`${what}: the same results and table as a buffer of its own`, async () => {
      const a = await core();
      const own = new DirectOpBuffer(64);
      const ownErrors = ops(40).map((op) => own.push(op)?.message ?? null);
      const expected = runDirectOps(a.c, own.bytes());

      const b = await core();
      const buf = new DirectOpBuffer(64);
      buf.resetInCore(b.c, room);
      const errors = ops(40).map((op) => buf.push(op)?.message ?? null);
      const results = buf.run(b.c);
      expect(errors).toEqual(ownErrors);
      expect(errors.filter((e) => e !== null)).toEqual(['service bad: cluster[0]: not an IP address: "nope"']);
      expect(results).toEqual(expected);
      expect(results).toHaveLength(40);
      expect(b.c.serviceCount()).toBe(40);
      for (const i of [1, 17, 40]) expect(dnat(b.dp, `198.18.1.${i}`, 1000 + i)).toBe(`198.19.1.${i}`);

      // The next batch in place again: a delete by slot and a replace.
      buf.resetInCore(b.c, room);
      expect(buf.push({ op: 'delete', slot: results[0]! })).toBeNull();
      expect(buf.push({ op: 'put', slot: results[1]!, svc: svc('s2', '198.18.1.2', { cluster: [{ ip: '198.19.7.7', port: 8080 }] }) })).toBeNull();
      expect(buf.run(b.c)).toEqual([0, results[1]]);
      expect(b.c.serviceCount()).toBe(39);
      expect(dnat(b.dp, '198.18.1.2', 2000)).toBe('198.19.7.7');
    });
  }
});

// ---- a whole list at once (the first sync) against the same objects applied a few at a time

import { applyIn, dataplaneFor, runCase, service, slice, node, NODE, NODE_IP, OUTSIDE, type EndpointSpec, type PortSpec } from './kube/modes/harness.js';
import type { Dataplane as FullDataplane } from '../../host-node/dataplane.js';

/** A mixed cluster as decoded objects (an API list gives these), with bad objects among them. */
function cluster(): Array<Record<string, unknown>> {
  const objs: Array<Record<string, unknown>> = [];
  const add = (text: string) => objs.push(JSON.parse(text) as Record<string, unknown>);
  for (let i = 1; i <= 36; i++) {
    const ip = `198.18.3.${i}`;
    const ports: PortSpec[] = i % 6 === 1 ? [{ name: 'dns', port: 53, protocol: 'UDP', targetPort: 5353 }, { name: 'tcp', port: 53, targetPort: 5353 }]
      : [{ name: 'http', port: 80, targetPort: 8080, ...(i % 5 === 0 ? { nodePort: 30100 + i } : {}) }];
    const spec: Record<string, unknown> = { clusterIP: ip, ports, ...(i % 5 === 0 ? { type: 'NodePort' } : {}) };
    if (i % 7 === 0) spec.externalIPs = [`198.18.9.${i}`];
    if (i % 8 === 0) { spec.type = 'NodePort'; spec.externalTrafficPolicy = 'Local'; spec.ports = [{ ...ports[0], nodePort: 31000 + i }]; }
    if (i % 9 === 0) spec.internalTrafficPolicy = 'Local';
    if (i % 11 === 0) { spec.sessionAffinity = 'ClientIP'; }
    const eps: EndpointSpec[] = [];
    for (let e = 0; e < (i % 4); e++) eps.push({ ip: `198.19.${i}.${e + 1}`, node: e % 2 === 0 ? NODE : 'node-b', ...(i % 10 === 3 && e === 0 ? { ready: false, serving: true, terminating: true } : {}) });
    const withPorts = spec.ports as PortSpec[];
    // Slices before their Service for some; a second slice for others.
    if (i % 3 === 0) add(slice(`s${i}`, eps, withPorts));
    add(service(`s${i}`, spec));
    if (i % 3 !== 0) add(slice(`s${i}`, eps, withPorts));
    if (i % 4 === 2) add(slice(`s${i}`, [{ ip: `198.19.${i}.9`, node: 'node-c' }], withPorts, { suffix: 'extra' }));
  }
  add(service('bad-ip', { clusterIP: '198.18.3.999', ports: [{ name: 'http', port: 80 }] }));
  add(service('bad-port', { clusterIP: '198.18.4.1', ports: [{ name: 'http', port: 70000 }] }));
  add(slice('bad-ep', [{ ip: 'not-an-ip' }], [{ name: 'http', port: 80 }]));
  add(node(NODE, 'z1'));
  return objs;
}

/** Where new connections to every frontend of the cluster go. */
function answers(dp: FullDataplane): string[] {
  const out: string[] = [];
  let port = 20000;
  for (let i = 1; i <= 36; i++) {
    for (const [dst, dport] of [[`198.18.3.${i}`, i % 6 === 1 ? 53 : 80], [`198.18.9.${i}`, 80], [NODE_IP, 30100 + i], [NODE_IP, 31000 + i]] as const) {
      for (const proto of i % 6 === 1 ? (['udp', 'tcp'] as const) : (['tcp'] as const)) {
        const c = { name: '', src: OUTSIDE, dst, dport, proto, flows: 40, expect: [] };
        out.push(`${proto} ${dst}:${dport} → ${runCase(dp, c, port).join(' ')}`);
        out.push(`${proto} ${dst}:${dport} from a pod → ${runCase(dp, { ...c, src: '198.19.200.7' }, port).join(' ')}`);
        port += 40;
      }
    }
  }
  return out;
}

describe('direct mode: a whole list at once', () => {
  it('gives the same table and answers as the same objects applied a few at a time; bad objects named either way', async () => {
    const objs = cluster();
    const all = await dataplaneFor({});
    const r = all.apply(objs, { mode: 'direct', nodeName: NODE });
    const named = (issues: typeof r.issues) => issues.map((i) => `${i.object} ${i.path}`).sort();
    expect(named(r.issues)).toEqual(['EndpointSlice default/bad-ep-v4 endpoints[0].addresses[0]', 'Service default/bad-ip spec.clusterIP', 'Service default/bad-port spec.ports[0].port']);

    const steps = await dataplaneFor({});
    // The first few as a full list, then the rest as watch events (in another order), with one
    // Service changed and changed back on the way.
    const first = objs.slice(0, 10);
    let issues = steps.apply(first, { mode: 'direct', nodeName: NODE }).issues;
    const rest = objs.slice(10).reverse();
    for (let k = 0; k < rest.length; k += 5) {
      const chunk = rest.slice(k, k + 5);
      issues = [...issues, ...steps.apply(chunk, { mode: 'direct', nodeName: NODE, delta: {} }).issues];
      if (k === 10) {
        const changed = JSON.parse(JSON.stringify(objs[0])) as { spec: { ports: Array<{ port: number }> } };
        changed.spec.ports[0]!.port = 81;
        steps.apply([changed], { mode: 'direct', nodeName: NODE, delta: {} });
        steps.apply([objs[0]!], { mode: 'direct', nodeName: NODE, delta: {} });
      }
    }
    expect(named(issues)).toEqual(named(r.issues));
    expect(all.core.serviceCount()).toBe(steps.core.serviceCount());
    expect(all.core.serviceCount()).toBeGreaterThan(36);
    const a = answers(all);
    expect(a).toEqual(answers(steps));
    // The answers are not all alike: endpoints, REJECTs and node ports are all in there.
    expect(a.some((x) => x.endsWith('→ REJECT'))).toBe(true);
    expect(a.some((x) => /198\.19\.\d+\.9:8080/.test(x))).toBe(true);
    expect(a.some((x) => x.startsWith(`tcp ${NODE_IP}:3`) && /198\.19\./.test(x))).toBe(true);
  });

  it('a full list over a live table replaces it exactly (the same answers as a fresh Dataplane)', async () => {
    const objs = cluster();
    const fresh = await dataplaneFor({});
    fresh.apply(objs, { mode: 'direct', nodeName: NODE });
    const reused = await dataplaneFor({});
    reused.apply(objs.slice(0, 30).map((o) => ({ ...o })), { mode: 'direct', nodeName: NODE });
    reused.apply(objs, { mode: 'direct', nodeName: NODE });
    expect(reused.core.serviceCount()).toBe(fresh.core.serviceCount());
    expect(answers(reused)).toEqual(answers(fresh));
  });
});

describe('direct mode: a sync bigger than one core call', () => {
  const svcObj = (i: number, ip: string) => ({
    apiVersion: 'v1', kind: 'Service', metadata: { name: `s${i}`, namespace: 'big' }, spec: { clusterIP: ip, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
  });
  const sliceObj = (i: number) => ({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
    metadata: { name: `s${i}-a`, namespace: 'big', labels: { 'kubernetes.io/service-name': `s${i}` } },
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: [{ addresses: [`198.19.${i >> 8}.${i & 255}`], conditions: { ready: true } }],
  });
  const ipOf = (i: number) => `198.18.${10 + (i >> 8)}.${i & 255}`;
  const N = 1200;

  it('puts every Service; a put whose address a later chunk frees is retried and lands', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['198.18.200.1'], podCIDR: '198.19.0.0/16', seed: 5 });
    const objs: object[] = [];
    for (let i = 0; i < N; i++) objs.push(svcObj(i, ipOf(i)), sliceObj(i));
    const r = dp.apply(objs, { mode: 'direct', nodeName: 'node-a' });
    expect(r.issues).toEqual([]);
    expect(r.families.find((f) => f.family === 4)!.direct).toEqual({ put: N, removed: 0 });
    expect(dp.core.serviceCount()).toBe(N);
    for (const i of [0, 1, 599, 1199]) expect(dnat(dp, ipOf(i), 30000 + i)).toBe(`198.19.${i >> 8}.${i & 255}`);
    // With a zone change (a full resync, every put in model order over several core calls), s3
    // takes s1150's address and s1150 moves to a new one: s3's put comes chunks before s1150's,
    // finds the address still held, and is retried once s1150 has moved.
    const zone = { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a', labels: { 'topology.kubernetes.io/zone': 'z' } } };
    const moved = objs.slice();
    moved[2 * 3] = svcObj(3, ipOf(1150));
    moved[2 * 1150] = svcObj(1150, ipOf(N + 5));
    const r2 = dp.apply([...moved, zone], { mode: 'direct', nodeName: 'node-a' });
    expect(r2.issues).toEqual([]);
    expect(r2.families.find((f) => f.family === 4)).toMatchObject({ full: true, direct: { put: N, removed: 0 } });
    expect(dp.core.serviceCount()).toBe(N);
    expect(dnat(dp, ipOf(1150), 31000)).toBe('198.19.0.3');
    expect(dnat(dp, ipOf(N + 5), 31001)).toBe(`198.19.${1150 >> 8}.${1150 & 255}`);
    // Nothing serves s3's old address any more: the packet goes on as it is.
    expect(dnat(dp, ipOf(3), 31002)).toBe(ipOf(3));
    expect(dnat(dp, ipOf(599), 31003)).toBe(`198.19.${599 >> 8}.${599 & 255}`);
  });
});
