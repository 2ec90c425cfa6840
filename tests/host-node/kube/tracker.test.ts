// Change trackers (servicechangetracker.go / endpointschangetracker.go semantics), the slice →
// endpoints conversion and ProxyState's sync gating.
import { describe, expect, it } from 'vitest';
import {
  EndpointsChangeTracker,
  endpointsFromSlices,
  canonicalIP,
  hostPortBefore,
  joinHostPort,
  parseManifests,
  ProxyState,
  ProxyModel,
  ServiceChangeTracker,
  deepEqual,
  sameObject,
  type EndpointSlice,
  type Service,
} from '../../../host-node/kube/index.js';

function svc(yamlSpec: string, meta = '{name: web, namespace: default}'): Service {
  const set = parseManifests(`kind: Service\nmetadata: ${meta}\nspec: ${yamlSpec}`);
  expect(set.issues).toEqual([]);
  return set.services[0]!;
}
const web = (ip: string, port = 80, extra = ''): Service => svc(`{clusterIP: ${ip}, ports: [{name: http, port: ${port}}]${extra}}`);

function slice(name: string, endpoints: string, addressType = 'IPv4', ports = '[{name: http, port: 8080}]'): EndpointSlice {
  const set = parseManifests(`kind: EndpointSlice
metadata: {name: ${name}, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: ${addressType}
endpoints: ${endpoints}
ports: ${ports}`);
  expect(set.issues).toEqual([]);
  return set.endpointSlices[0]!;
}

describe('ServiceChangeTracker', () => {
  it('add → update → delete before a sync nets out to nothing', () => {
    const t = new ServiceChangeTracker(4);
    const v1 = web('10.96.0.1');
    const v2 = web('10.96.0.1', 81);
    expect(t.update(null, v1)).toBe(true);
    expect(t.update(v1, v2)).toBe(true);
    expect(t.update(v2, null)).toBe(false);
    expect(t.pending()).toEqual([]);
    const taken = t.take();
    expect(taken.services.size).toBe(0);
    expect(taken.changes.size).toBe(0);
  });

  it('update → update keeps the first previous and the latest current', () => {
    const t = new ServiceChangeTracker(4);
    const v1 = web('10.96.0.1', 80);
    t.update(null, v1);
    t.take();
    const v2 = web('10.96.0.1', 81);
    const v3 = web('10.96.0.1', 82);
    t.update(v1, v2);
    t.update(v2, v3);
    expect(t.pending()).toEqual(['default/web']);
    const { changes, servicePorts } = t.take();
    const c = changes.get('default/web')!;
    expect([...c.previous!.values()].map((p) => p.port)).toEqual([80]);
    expect([...c.current!.values()].map((p) => p.port)).toEqual([82]);
    expect(servicePorts).toEqual(new Set(['default/web:http']));
    expect(t.pending()).toEqual([]);
  });

  it('an update back to the synced state is no change', () => {
    const t = new ServiceChangeTracker(4);
    const v1 = web('10.96.0.1');
    t.update(null, v1);
    t.take();
    const v2 = web('10.96.0.1', 81);
    expect(t.update(v1, v2)).toBe(true);
    expect(t.update(v2, web('10.96.0.1'))).toBe(false);
    expect(t.take().changes.size).toBe(0);
  });

  it('ignores what kube-proxy does not proxy: headless, ExternalName, other family, other proxies', () => {
    const t4 = new ServiceChangeTracker(4);
    expect(t4.update(null, svc('{clusterIP: None, ports: [{name: a, port: 1}]}'))).toBe(false);
    expect(t4.update(null, svc('{type: ExternalName, externalName: example.com, clusterIP: 10.96.0.9, ports: [{name: a, port: 1}]}'))).toBe(false);
    expect(t4.update(null, svc('{clusterIP: "fd00::1", ports: [{name: a, port: 1}]}'))).toBe(false);
    const other = '{name: x, namespace: default, labels: {service.kubernetes.io/service-proxy-name: other}}';
    expect(t4.update(null, svc('{clusterIP: 10.96.0.9, ports: [{name: a, port: 1}]}', other))).toBe(false);
    const headless = '{name: h, namespace: default, labels: {service.kubernetes.io/headless: ""}}';
    expect(t4.update(null, svc('{clusterIP: 10.96.0.8, ports: [{name: a, port: 1}]}', headless))).toBe(false);
    const ours = new ServiceChangeTracker(4, { proxyName: 'svcplane' });
    const named = '{name: y, namespace: default, labels: {service.kubernetes.io/service-proxy-name: svcplane}}';
    expect(ours.update(null, svc('{clusterIP: 10.96.0.7, ports: [{name: a, port: 1}]}', named))).toBe(true);
    expect(t4.update(null, svc('{clusterIP: 10.96.0.7, ports: [{name: a, port: 1}]}', named))).toBe(false);
  });

  it('builds one ServicePortInfo per port with kube-proxy defaults', () => {
    const t = new ServiceChangeTracker(4);
    t.update(null, svc(`{type: LoadBalancer, clusterIP: 10.96.0.5, externalTrafficPolicy: Local, healthCheckNodePort: 32000,
      sessionAffinity: ClientIP, externalIPs: [198.18.0.1, "fd00::9"], loadBalancerSourceRanges: [" 198.18.0.0/16 ", "fd00::/8"],
      ports: [{name: a, port: 80, nodePort: 30080}, {name: a, port: 80, protocol: UDP, nodePort: 30081}]}`));
    const ports = [...t.take().changes.get('default/web')!.current!.values()];
    expect(ports.map((p) => p.id)).toEqual(['default/web:a/TCP', 'default/web:a/UDP']);
    const p = ports[0]!;
    expect(p.name).toBe('default/web:a');
    expect(p.externalIPs).toEqual(['198.18.0.1']);
    expect(p.loadBalancerSourceRanges).toEqual(['198.18.0.0/16']);
    expect(p.stickyMaxAgeSeconds).toBe(10800);
    expect(p.externalPolicyLocal).toBe(true);
    expect(p.healthCheckNodePort).toBe(32000);
  });
});

describe('EndpointsChangeTracker', () => {
  it('add → delete before a sync nets out to nothing', () => {
    const t = new EndpointsChangeTracker(4, 'node-a');
    const s = slice('web-1', '[{addresses: [10.0.0.1]}]');
    expect(t.update(s, false)).toBe(true);
    expect(t.pending()).toEqual(['default/web']);
    expect(t.update(s, true)).toBe(true);
    expect(t.pending()).toEqual([]);
    expect(t.take().changes.size).toBe(0);
    expect(t.update(s, true)).toBe(false); // removing what was never applied
  });

  it('update → update keeps the applied endpoints as previous', () => {
    const t = new EndpointsChangeTracker(4, 'node-a');
    t.update(slice('web-1', '[{addresses: [10.0.0.1]}]'), false);
    t.take();
    t.update(slice('web-1', '[{addresses: [10.0.0.2]}]'), false);
    t.update(slice('web-1', '[{addresses: [10.0.0.3]}]'), false);
    const { changes, servicePorts } = t.take();
    const c = changes.get('default/web')!;
    expect(c.previous.get('default/web:http/TCP')!.map((e) => e.endpoint)).toEqual(['10.0.0.1:8080']);
    expect(c.current.get('default/web:http/TCP')!.map((e) => e.endpoint)).toEqual(['10.0.0.3:8080']);
    expect(servicePorts).toEqual(new Set(['default/web:http']));
  });

  it('a Service whose slices come and go one by one: each sync sees every slice it still has', () => {
    const t = new EndpointsChangeTracker(4, 'node-a');
    const eps = (c: Map<string, { endpoint: string }[]>) => (c.get('default/web:http/TCP') ?? []).map((e) => e.endpoint);
    const step = () => t.take().changes.get('default/web');
    t.update(slice('web-a', '[{addresses: [10.0.0.1]}]'), false);
    expect(eps(step()!.current)).toEqual(['10.0.0.1:8080']);
    // A second slice, then a third pending together with a change to the first.
    t.update(slice('web-b', '[{addresses: [10.0.0.2]}]'), false);
    expect(eps(step()!.current)).toEqual(['10.0.0.1:8080', '10.0.0.2:8080']);
    t.update(slice('web-c', '[{addresses: [10.0.0.3]}]'), false);
    t.update(slice('web-a', '[{addresses: [10.0.0.4]}]'), false);
    let c = step()!;
    expect(eps(c.previous)).toEqual(['10.0.0.1:8080', '10.0.0.2:8080']);
    expect(eps(c.current)).toEqual(['10.0.0.2:8080', '10.0.0.3:8080', '10.0.0.4:8080']);
    // Removals down to one slice, then none.
    t.update(slice('web-a', '[]'), true);
    t.update(slice('web-c', '[]'), true);
    expect(eps(step()!.current)).toEqual(['10.0.0.2:8080']);
    t.update(slice('web-b', '[]'), true);
    c = step()!;
    expect(eps(c.previous)).toEqual(['10.0.0.2:8080']);
    expect(c.current.size).toBe(0);
    expect(t.pending()).toEqual([]);
    // Gone entirely: removing again is no change, adding starts afresh.
    expect(t.update(slice('web-b', '[]'), true)).toBe(false);
    t.update(slice('web-z', '[{addresses: [10.0.0.9]}]'), false);
    c = step()!;
    expect(c.previous.size).toBe(0);
    expect(eps(c.current)).toEqual(['10.0.0.9:8080']);
  });

  it('two pending slices of one Service net out one at a time; an update of a pending removal is pending again', () => {
    const t = new EndpointsChangeTracker(4, 'node-a');
    const a = slice('web-a', '[{addresses: [10.0.0.1]}]');
    const b = slice('web-b', '[{addresses: [10.0.0.2]}]');
    t.update(a, false);
    t.update(b, false);
    expect(t.update(a, true)).toBe(true);
    expect(t.pending()).toEqual(['default/web']);
    expect(t.update(b, true)).toBe(true);
    expect(t.pending()).toEqual([]);
    t.update(a, false);
    t.take();
    expect(t.update(a, true)).toBe(true);
    expect(t.update(slice('web-a', '[{addresses: [10.0.0.5]}]'), false)).toBe(true);
    expect(t.update(a, false)).toBe(true);   // back to what is applied
    expect(t.pending()).toEqual([]);
  });

  it('an identical update is no change; the other family and FQDN slices are ignored', () => {
    const t = new EndpointsChangeTracker(4, 'node-a');
    const s = slice('web-1', '[{addresses: [10.0.0.1]}]');
    t.update(s, false);
    t.take();
    expect(t.update(slice('web-1', '[{addresses: [10.0.0.1]}]'), false)).toBe(false);
    expect(t.update(slice('web-6', '[{addresses: ["fd00::1"]}]', 'IPv6'), false)).toBe(false);
    expect(t.update(slice('web-f', '[{addresses: [db.example.com]}]', 'FQDN'), false)).toBe(false);
  });

  it('endpoints: sorted by "ip:port" text, deduplicated, non-terminating wins, nameless ports skipped', () => {
    const a = slice('web-a', `[{addresses: [10.0.0.9], nodeName: node-a, conditions: {ready: false, serving: true, terminating: true}},
      {addresses: [10.0.0.10], zone: z1, hints: {forZones: [{name: z1}], forNodes: [{name: node-b}]}}]`);
    const b = slice('web-b', '[{addresses: [10.0.0.9]}]');
    const noName = parseManifests(`kind: EndpointSlice
metadata: {name: web-c, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [10.0.0.77]}]
ports: [{port: 9}]`);
    expect(noName.issues.map((i) => i.severity)).toEqual(['warning']);
    const m = endpointsFromSlices('default/web', [b, a, noName.endpointSlices[0]!], 'node-a');
    expect([...m.keys()]).toEqual(['default/web:http/TCP']);
    const eps = m.get('default/web:http/TCP')!;
    expect(eps.map((e) => e.endpoint)).toEqual(['10.0.0.10:8080', '10.0.0.9:8080']);
    expect(eps[1]!.terminating).toBe(false); // the non-terminating copy from web-b
    expect(eps[0]!).toMatchObject({ ready: true, serving: true, isLocal: false, zoneHints: ['z1'], nodeHints: ['node-b'], zone: 'z1' });
  });

  it('endpoints: a terminating duplicate never replaces one already seen; of non-terminating duplicates the last slice wins', () => {
    const a = slice('web-a', '[{addresses: [10.0.0.9], nodeName: node-a}, {addresses: [10.0.0.8], nodeName: node-a}]');
    const b = slice('web-b', `[{addresses: [10.0.0.9], nodeName: node-b, conditions: {ready: false, serving: true, terminating: true}},
      {addresses: [10.0.0.8], nodeName: node-b}]`);
    const c = slice('web-c', '[{addresses: [10.0.0.8], nodeName: node-c, conditions: {ready: false, serving: true, terminating: true}}]');
    const eps = endpointsFromSlices('default/web', [c, b, a], 'node-a').get('default/web:http/TCP')!;
    expect(eps.map((e) => [e.endpoint, e.nodeName, e.terminating])).toEqual([
      ['10.0.0.8:8080', 'node-b', false],
      ['10.0.0.9:8080', 'node-a', false],
    ]);
  });

  it('IPv6 endpoints are canonical and bracketed', () => {
    const m = endpointsFromSlices('default/web', [slice('w6', '[{addresses: ["FD00:0:0::5"], nodeName: node-a}]', 'IPv6')], 'node-a');
    expect(m.get('default/web:http/TCP')![0]).toMatchObject({ ip: 'fd00::5', endpoint: '[fd00::5]:8080', isLocal: true });
  });
});

describe('endpoint order without "ip:port" text', () => {
  it('hostPortBefore orders exactly as the joined strings do (prefix hosts, IPv6 brackets, ports as text)', () => {
    const v4 = ['10.0.0.1', '10.0.0.10', '10.0.0.100', '10.0.0.2', '10.0.1.1', '9.9.9.9', '10.0.0.19', '1.2.3.4', '100.0.0.1'];
    const v6 = ['fd00::1', 'fd00::10', 'fd00::1:0', 'fd00::a', 'fd00::1a', 'fd00::', 'fd00:1::1', 'fd0::1', '::1'];
    const ports = [1, 8, 80, 443, 8080, 9, 65535, 10];
    let seed = 7;
    const pick = <T>(xs: T[]): T => xs[(seed = (seed * 1103515245 + 12345) % 2147483648) % xs.length]!;
    for (let n = 0; n < 4000; n++) {
      const hosts = n % 3 === 0 ? v6 : n % 3 === 1 ? v4 : [...v4, ...v6];
      const a = { ip: pick(hosts), port: pick(ports) };
      const b = n % 5 === 0 ? { ip: a.ip, port: pick(ports) } : { ip: pick(hosts), port: pick(ports) };
      expect([a, b, hostPortBefore(a, b)]).toEqual([a, b, joinHostPort(a.ip, a.port) < joinHostPort(b.ip, b.port)]);
    }
  });

  it('canonical endpoint addresses: as Go prints them, leading zeros read as decimal, anything else refused', () => {
    const cases: Array<[string, string | null]> = [
      ['198.19.0.1', '198.19.0.1'], ['0.0.0.0', '0.0.0.0'], ['255.255.255.255', '255.255.255.255'], ['198.019.0.01', '198.19.0.1'],
      ['00.1.2.3', '0.1.2.3'], ['1.2.3.256', null], ['1.2.3', null], ['1.2.3.4.', null], ['1..2.3', null], ['1.2.3.0010', null],
      ['.1.2.3', null], ['1.2.3.4 ', null], ['FD00::5', 'fd00::5'], ['::ffff:198.19.0.1', '198.19.0.1'],
    ];
    expect(cases.map(([text]) => [text, canonicalIP(text)])).toEqual(cases);
  });

  it('endpoints are sorted by their text; a duplicate IP:port is one endpoint', () => {
    const s = slice('web-a', `[{addresses: [10.0.0.100]}, {addresses: [10.0.0.1]}, {addresses: [10.0.0.10]}, {addresses: [9.0.0.1]},
      {addresses: [10.0.0.1], conditions: {ready: false, serving: true, terminating: true}}, {addresses: [10.0.0.2]}]`);
    const eps = endpointsFromSlices('default/web', s, 'node-a').get('default/web:http/TCP')!;
    expect(eps.map((e) => e.endpoint)).toEqual(['10.0.0.100:8080', '10.0.0.10:8080', '10.0.0.1:8080', '10.0.0.2:8080', '9.0.0.1:8080']);
    expect(eps[2]!.terminating).toBe(false);
  });
});

describe('take() builds changes when read', () => {
  it('streamed changes equal the whole map; endpoints are those of the slices at take(), whatever came later', () => {
    const t = new EndpointsChangeTracker(4, 'node-a');
    t.update(slice('web-a', '[{addresses: [10.0.0.1]}]'), false);
    t.update(slice('web-b', '[{addresses: [10.0.0.2]}]'), false);
    const first = t.take();
    // Later changes to the same Service's slices must not leak into the first take's answer.
    t.update(slice('web-a', '[{addresses: [10.0.0.3]}]'), false);
    t.update(slice('web-b', '[]'), true);
    const second = t.take();
    const eps = (m: Map<string, { endpoint: string }[]>) => (m.get('default/web:http/TCP') ?? []).map((e) => e.endpoint);
    const streamed: string[][] = [];
    first.forEach((c, nn) => { expect(nn).toBe('default/web'); streamed.push(eps(c.previous), eps(c.current)); });
    expect(streamed).toEqual([[], ['10.0.0.1:8080', '10.0.0.2:8080']]);
    const c1 = first.changes.get('default/web')!;
    expect([eps(c1.previous), eps(c1.current)]).toEqual([[], ['10.0.0.1:8080', '10.0.0.2:8080']]);
    const c2 = second.changes.get('default/web')!;
    expect([eps(c2.previous), eps(c2.current)]).toEqual([['10.0.0.1:8080', '10.0.0.2:8080'], ['10.0.0.3:8080']]);
    expect(second.services).toEqual(new Set(['default/web']));
  });

  it('an added Service streams the same ports the map holds', () => {
    const t = new ServiceChangeTracker(4);
    t.update(null, svc('{clusterIP: 10.96.0.5, ports: [{name: a, port: 80}, {name: b, port: 53, protocol: UDP}]}'));
    const taken = t.take();
    const streamed: string[] = [];
    taken.forEach((c) => { for (const sp of c.current!.values()) streamed.push(`${sp.id} ${sp.namespacedName} ${sp.name}`); });
    expect(streamed).toEqual(['default/web:a/TCP default/web default/web:a', 'default/web:b/UDP default/web default/web:b']);
    expect([...taken.changes.get('default/web')!.current!.keys()]).toEqual(['default/web:a/TCP', 'default/web:b/UDP']);
    expect(taken.servicePorts).toEqual(new Set(['default/web:a', 'default/web:b']));
  });
});

describe('ProxyState', () => {
  it('never syncs before both initial lists, then fans out to both families', () => {
    const st = new ProxyState({ nodeName: 'node-a' });
    expect(st.onService(null, svc('{clusterIPs: [10.96.0.1, "fd00::1"], ipFamilies: [IPv4, IPv6], ports: [{name: http, port: 80}]}'))).toBe(false);
    expect(st.sync()).toEqual([]);
    st.markServicesSynced();
    expect(st.initialized).toBe(false);
    st.markEndpointSlicesSynced();
    const plans = st.sync();
    expect(plans.map((p) => [p.family, p.changedServices, p.model.services.size])).toEqual([[4, null, 1], [6, null, 1]]);
    expect(st.onEndpointSlice(slice('web-1', '[{addresses: [10.0.0.1]}]'))).toBe(true);
    const [v4, v6] = st.sync();
    expect(v4!.changedServices).toEqual(new Set(['default/web']));
    expect(v6!.changedServices).toEqual(new Set());
  });

  it('a zone change on this node forces a full sync; other nodes are ignored', () => {
    const st = new ProxyState({ nodeName: 'node-a', families: [4] });
    st.markServicesSynced();
    st.markEndpointSlicesSynced();
    st.sync();
    const node = (name: string, zone: string) => parseManifests(`kind: Node\nmetadata: {name: ${name}, labels: {topology.kubernetes.io/zone: ${zone}}}`).nodes[0]!;
    expect(st.onNode(node('node-b', 'z9'))).toBe(false);
    expect(st.onNode(node('node-a', 'z1'))).toBe(true);
    expect(st.topologyLabels).toEqual({ 'topology.kubernetes.io/zone': 'z1' });
    expect(st.sync()[0]!.changedServices).toBeNull();
    expect(st.onNode(node('node-a', 'z1'))).toBe(false);
    expect(st.sync()[0]!.changedServices).toEqual(new Set());
  });
});

describe('a first full list handed over whole (addAll)', () => {
  const many = parseManifests(`kind: List
items:
- {kind: Service, metadata: {name: a, namespace: default}, spec: {clusterIP: 10.96.0.1, ports: [{name: http, port: 80}, {name: dns, port: 53, protocol: UDP}]}}
- {kind: Service, metadata: {name: b, namespace: default}, spec: {clusterIPs: [10.96.0.2, "fd00::2"], ipFamilies: [IPv4, IPv6], ports: [{port: 81}]}}
- {kind: Service, metadata: {name: six, namespace: default}, spec: {clusterIP: "fd00::6", ports: [{port: 86}]}}
- {kind: Service, metadata: {name: headless, namespace: default}, spec: {clusterIP: None, ports: [{port: 87}]}}
- {kind: Service, metadata: {name: ext, namespace: default}, spec: {type: ExternalName, externalName: example.com}}
- {kind: Service, metadata: {name: other, namespace: default, labels: {service.kubernetes.io/service-proxy-name: x}}, spec: {clusterIP: 10.96.0.9, ports: [{port: 88}]}}
- {kind: EndpointSlice, metadata: {name: a-2, namespace: default, labels: {kubernetes.io/service-name: a}}, addressType: IPv4, ports: [{name: http, port: 8080}], endpoints: [{addresses: [10.0.0.3]}]}
- {kind: EndpointSlice, metadata: {name: b-1, namespace: default, labels: {kubernetes.io/service-name: b}}, addressType: IPv4, ports: [{name: "", port: 8081}], endpoints: [{addresses: [10.0.1.1]}]}
- {kind: EndpointSlice, metadata: {name: a-1, namespace: default, labels: {kubernetes.io/service-name: a}}, addressType: IPv4, ports: [{name: http, port: 8080}, {name: dns, port: 5353, protocol: UDP}], endpoints: [{addresses: [10.0.0.1]}, {addresses: [10.0.0.2], conditions: {ready: false}}]}
- {kind: EndpointSlice, metadata: {name: b-6, namespace: default, labels: {kubernetes.io/service-name: b}}, addressType: IPv6, ports: [{name: "", port: 8081}], endpoints: [{addresses: ["fd00::11"]}]}
- {kind: EndpointSlice, metadata: {name: c-1, namespace: default, labels: {kubernetes.io/service-name: c, service.kubernetes.io/headless: ""}}, addressType: IPv4, ports: [{name: x, port: 1}], endpoints: [{addresses: [10.0.2.1]}]}
`);
  const services = new Map(many.services.map((s) => [`${s.metadata.namespace}/${s.metadata.name}`, s]));
  const slices = new Map(many.endpointSlices.map((s) => [`${s.metadata.namespace}/${s.metadata.name}`, s]));

  /** The same list fed one update per object, and handed over whole. */
  function pair(proxyName?: string): [one: ProxyState, whole: ProxyState] {
    const opts = { nodeName: 'node-a', ...(proxyName ? { proxyName } : {}) };
    const one = new ProxyState(opts);
    services.forEach((s, nn) => one.onService(null, s, nn));
    slices.forEach((s) => one.onEndpointSlice(s));
    const whole = new ProxyState(opts);
    whole.onServicesAdded(services);
    whole.onEndpointSlicesAdded(slices);
    return [one, whole];
  }

  /** What a sync of these trackers puts into a fresh model, and what take() reports. */
  function syncOf(st: ProxyState) {
    st.markServicesSynced();
    st.markEndpointSlicesSynced();
    return st.sync().map((p) => ({
      family: p.family,
      services: [...p.model.services.entries()],
      endpoints: [...p.model.endpoints.entries()].map(([id, eps]) => [id, eps.map((e) => `${e.endpoint} ${e.ready}`)]),
      changed: p.changedServicePorts,
    }));
  }

  it('syncs exactly what one update per object syncs, in both families, as the default proxy or a named one', () => {
    expect(many.issues).toEqual([]);
    const states = (proxyName?: string) => pair(proxyName).map(syncOf);
    const [named, namedWhole] = states('x');
    expect(namedWhole).toEqual(named);
    expect(named!.find((f) => f.family === 4)!.services.map(([id]) => id)).toEqual(['default/other:/TCP']);
    const [want, whole] = states();
    expect(whole).toEqual(want);
    // Both Services' slices are in, sorted and merged; nothing of the headless slice or the other proxy.
    const v4 = want.find((f) => f.family === 4)!;
    expect(v4.services.map(([id]) => id).sort()).toEqual(['default/a:dns/UDP', 'default/a:http/TCP', 'default/b:/TCP']);
    expect(v4.endpoints).toEqual([
      ['default/a:http/TCP', ['10.0.0.1:8080 true', '10.0.0.2:8080 false', '10.0.0.3:8080 true']],
      ['default/a:dns/UDP', ['10.0.0.1:5353 true', '10.0.0.2:5353 false']],
      ['default/b:/TCP', ['10.0.1.1:8081 true']],
    ]);
    expect(want.find((f) => f.family === 6)!.endpoints).toEqual([['default/b:/TCP', ['[fd00::11]:8081 true']]]);
  });

  it('a change after the list, before the sync, nets out as it does one by one', () => {
    const slice = (name: string, ip: string) => parseManifests(`kind: EndpointSlice
metadata: {name: ${name}, namespace: default, labels: {kubernetes.io/service-name: a}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [${ip}]}]`).endpointSlices[0]!;
    const changed = web('10.96.0.7');
    const then = (st: ProxyState) => {
      expect(st.onService(services.get('default/b')!, null, 'default/b')).toBe(false);
      st.onService(null, changed);
      st.onEndpointSlice(slices.get('default/a-2')!, true);
      st.onEndpointSlice(slice('a-3', '10.0.0.9'));
      return st;
    };
    const [one, whole] = pair();
    const want = syncOf(then(one));
    expect(syncOf(then(whole))).toEqual(want);
    expect(want.find((f) => f.family === 4)!.endpoints[0]).toEqual(['default/a:http/TCP', ['10.0.0.1:8080 true', '10.0.0.2:8080 false', '10.0.0.9:8080 true']]);
  });

  it('pending() lists what one update per object leaves pending', () => {
    const [one, whole] = pair();
    const pending = (st: ProxyState) => [...st.families.values()].map((f) => [f.services.pending(), f.endpoints.pending()]);
    expect(pending(whole)).toEqual(pending(one));
    expect(pending(one)).toEqual([[['default/a', 'default/b'], ['default/a', 'default/b']], [['default/b', 'default/six'], ['default/b']]]);
  });

  it('a list handed over while something is pending or applied goes in one by one', () => {
    const t = new ServiceChangeTracker(4);
    t.update(null, web('10.96.0.7'));
    t.addAll(services);
    expect(t.pending()).toEqual(['default/a', 'default/b', 'default/web']);
    const e = new EndpointsChangeTracker(4, 'node-a');
    e.addAll(new Map([...slices].slice(0, 1)));
    e.take();
    e.addAll(slices);
    // a-2 was applied already: only the others are pending.
    const taken = e.take();
    expect([...taken.services].sort()).toEqual(['default/a', 'default/b']);
    expect([...taken.changes.get('default/a')!.previous.values()].map((eps) => eps.map((x) => x.endpoint))).toEqual([['10.0.0.3:8080']]);
  });
});

describe('sameObject: decoded objects compared field by field', () => {
  // Objects with every field the decoder fills set to something of its own, then each leaf (and
  // each list's length) changed in a copy, one at a time: sameObject must see every change
  // deepEqual sees (a field the decoder gains and sameObject does not read fails here), and
  // nothing else.
  const text = [
    'kind: Service',
    'metadata: {name: web, namespace: shop, labels: {app: web, tier: front}, annotations: {note: x}}',
    'spec: {type: LoadBalancer, clusterIP: 198.18.0.10, clusterIPs: [198.18.0.10, "fd00::10"], ipFamilies: [IPv4, IPv6],',
    '  ipFamilyPolicy: PreferDualStack, ports: [{name: http, port: 80, targetPort: web, nodePort: 30080, protocol: TCP},',
    '  {name: dns, port: 53, targetPort: 5353, nodePort: 30053, protocol: UDP}], externalIPs: [198.18.1.1],',
    '  loadBalancerSourceRanges: [198.18.0.0/16], externalTrafficPolicy: Local, internalTrafficPolicy: Local,',
    '  healthCheckNodePort: 32000, sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}},',
    '  trafficDistribution: PreferClose}',
    'status: {loadBalancer: {ingress: [{ip: 198.18.2.2, ipMode: Proxy}, {hostname: lb.example}]}}',
    '---',
    'kind: EndpointSlice',
    'apiVersion: discovery.k8s.io/v1',
    'metadata: {name: web-a, namespace: shop, labels: {kubernetes.io/service-name: web}, annotations: {note: y}}',
    'addressType: IPv4',
    'ports: [{name: http, port: 8080, protocol: TCP}, {name: dns, port: 5353, protocol: UDP}]',
    'endpoints:',
    '- {addresses: [198.19.0.1], conditions: {ready: true, serving: true, terminating: false}, nodeName: node-a, zone: z1,',
    '   hostname: web-0, hints: {forZones: [{name: z1}], forNodes: [{name: node-a}]}}',
    '- {addresses: [198.19.0.2], conditions: {ready: false}, nodeName: node-b, zone: z2}',
  ].join('\n');
  const load = () => {
    const set = parseManifests(text, 'shop.yaml');
    expect(set.issues.filter((i) => i.severity === 'error')).toEqual([]);
    return [set.services[0]!, set.endpointSlices[0]!] as const;
  };
  /** Every path to a leaf or a list of `v`. */
  function paths(v: unknown, at: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
    if (v === null || typeof v !== 'object') { out.push(at); return out; }
    if (Array.isArray(v)) out.push(at);
    for (const [k, x] of Object.entries(v)) paths(x, [...at, Array.isArray(v) ? Number(k) : k], out);
    return out;
  }
  function changed<T>(o: T, path: (string | number)[]): T {
    const c = structuredClone(o);
    let p: any = c;
    for (const k of path.slice(0, -1)) p = p[k];
    const last = path.at(-1);
    if (last === undefined) return c;
    const v = p[last];
    if (Array.isArray(v)) v.push(typeof v[0] === 'object' && v[0] !== null ? structuredClone(v[0]) : 'extra');
    else p[last] = typeof v === 'string' ? `${v}-changed` : typeof v === 'number' ? v + 1 : typeof v === 'boolean' ? !v : v === null ? 'set' : 'changed';
    return c;
  }

  it('sees a change in every field, and none in an equal copy', () => {
    for (const o of load()) {
      expect(sameObject(o, structuredClone(o))).toBe(true);
      const [again] = o.kind === 'Service' ? load() : [load()[1]];
      expect(sameObject(o, again as typeof o)).toBe(true);
      const all = paths(o).filter((p) => p[0] !== 'origin');
      expect(all.length).toBeGreaterThan(o.kind === 'Service' ? 30 : 20);
      for (const path of all) {
        const c = changed(o, path);
        expect(deepEqual(o, c), path.join('.')).toBe(false);
        expect(sameObject(o, c), path.join('.')).toBe(false);
      }
    }
  });

  it('tells objects from other places apart unless told to ignore where they came from', () => {
    const [s, e] = load();
    const s2 = parseManifests(text, 'other.yaml').services[0]!;
    expect(sameObject(s, s2)).toBe(false);
    expect(sameObject(s, s2, true)).toBe(true);
    expect(sameObject(e, parseManifests(`\n${text}`, 'shop.yaml').endpointSlices[0]!)).toBe(false);
    expect(sameObject(s, e as never)).toBe(false);
    const node = (src: string, zone = 'z1') => parseManifests(`kind: Node\nmetadata: {name: n1, labels: {topology.kubernetes.io/zone: ${zone}}}`, src).nodes[0]!;
    expect(sameObject(node('a.yaml'), node('b.yaml'))).toBe(false);
    expect(sameObject(node('a.yaml'), node('b.yaml'), true)).toBe(true);
    expect(sameObject(node('a.yaml'), node('a.yaml', 'z2'), true)).toBe(false);
  });
});

describe('ProxyModel.replaceEndpoints', () => {
  it('leaves what applyEndpointsChange leaves, for random slices before and after', () => {
    // Slices with random ports (some unnamed or without a number, some with no endpoints); the
    // model starts from the slices before, as a sync leaves it.
    let seed = 11;
    const rnd = (n: number) => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return (seed >>> 16) % n; };
    const slice = (name: string): EndpointSlice => {
      const ports = Array.from({ length: rnd(4) }, () => `{name: ${rnd(5) === 0 ? 'null' : `p${rnd(4)}`}, ${rnd(5) === 0 ? '' : `port: ${8000 + rnd(3)}, `}protocol: ${rnd(2) ? 'TCP' : 'UDP'}}`);
      const eps = Array.from({ length: rnd(4) }, () => `{addresses: [198.19.0.${rnd(9) + 1}], conditions: {ready: ${rnd(3) > 0}}}`);
      const set = parseManifests(['apiVersion: discovery.k8s.io/v1', 'kind: EndpointSlice', `metadata: {name: ${name}, namespace: ns, labels: {kubernetes.io/service-name: web}}`,
        'addressType: IPv4', `ports: [${ports.join(', ')}]`, `endpoints: [${eps.join(', ')}]`].join('\n'));
      return set.endpointSlices[0]!;
    };
    const slices = () => { const n = 1 + rnd(3); return n === 1 ? slice('a') : Array.from({ length: n }, (_, k) => slice(`s${k}`)); };
    let compared = 0;
    for (let round = 0; round < 300; round++) {
      const was = slices(), now = slices();
      const a = new ProxyModel(4), b = new ProxyModel(4);
      for (const m of [a, b]) m.addEndpoints('ns/web', was, 'node-a');
      a.endpoints.set('ns/other:x/TCP', []);
      b.endpoints.set('ns/other:x/TCP', []);
      a.applyEndpointsChange(endpointsFromSlices('ns/web', was, 'node-a'), endpointsFromSlices('ns/web', now, 'node-a'));
      b.replaceEndpoints('ns/web', was, endpointsFromSlices('ns/web', now, 'node-a'));
      const view = (m: ProxyModel) => [...m.endpoints].map(([id, eps]) => `${id}=${eps.map((e) => e.endpoint).join(',')}`).sort();
      expect(view(b)).toEqual(view(a));
      if (a.endpoints.size > 1) compared++;
    }
    expect(compared).toBeGreaterThan(100);
  });
});
