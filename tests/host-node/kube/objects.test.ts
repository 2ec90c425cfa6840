// Manifest loading: multi-document YAML, JSON, Lists, defaults, and per-object errors that name
// the object, the field path and the line while the valid objects still load.
import { describe, expect, it } from 'vitest';
import { formatIssue, loadObjects, parseManifests } from '../../../host-node/kube/index.js';

const GOOD = `apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  clusterIP: 10.96.0.10
  ports:
  - name: http
    port: 80
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ignored}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc
  namespace: default
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints:
- addresses: [10.244.0.5]
  conditions: {ready: true}
  nodeName: node-a
ports:
- {name: http, port: 8080, protocol: TCP}
---
kind: Node
apiVersion: v1
metadata: {name: node-a, labels: {topology.kubernetes.io/zone: z1}}
spec: {podCIDR: 10.244.0.0/24}
status: {addresses: [{type: InternalIP, address: 198.18.0.2}]}
`;

describe('parseManifests', () => {
  it('loads Services, EndpointSlices and Nodes from multi-document YAML and skips other kinds', () => {
    const set = parseManifests(GOOD, 'good.yaml');
    expect(set.issues).toEqual([]);
    expect(set.skipped).toBe(1);
    const [s] = set.services;
    expect(s!.metadata).toEqual({ name: 'web', namespace: 'default', labels: {}, annotations: {} });
    expect(s!.spec).toMatchObject({
      type: 'ClusterIP', clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'], externalTrafficPolicy: 'Cluster',
      internalTrafficPolicy: 'Cluster', sessionAffinity: 'None', sessionAffinityTimeoutSeconds: 10800,
      ports: [{ name: 'http', protocol: 'TCP', port: 80, nodePort: 0, targetPort: null }],
    });
    expect(s!.origin).toEqual({ source: 'good.yaml', line: 1 });
    expect(set.endpointSlices[0]!.endpoints[0]).toEqual({
      addresses: ['10.244.0.5'], conditions: { ready: true, serving: null, terminating: null }, nodeName: 'node-a', zone: null, hints: null, hostname: null,
    });
    expect(set.endpointSlices[0]!.origin!.line).toBe(15);
    expect(set.nodes[0]!.spec.podCIDRs).toEqual(['10.244.0.0/24']);
  });

  it('reads kind: List (kubectl get -o yaml) and typed lists whose items omit kind', () => {
    const list = parseManifests(`apiVersion: v1
kind: List
items:
- kind: Service
  metadata: {name: a, namespace: n}
  spec: {clusterIP: 10.96.0.1, ports: [{name: p, port: 1}]}
- kind: Service
  metadata: {name: b, namespace: n}
  spec: {clusterIP: 10.96.0.2, ports: [{name: p, port: 70000}]}
`);
    expect(list.services.map((s) => s.metadata.name)).toEqual(['a']);
    expect(list.issues).toHaveLength(1);
    expect(list.issues[0]).toMatchObject({ object: 'Service n/b', path: 'spec.ports[0].port', line: 9, message: '70000 is out of range 1-65535' });
    const typed = parseManifests(JSON.stringify({
      kind: 'EndpointSliceList',
      items: [{ metadata: { name: 's', namespace: 'n', labels: { 'kubernetes.io/service-name': 'a' } }, addressType: 'IPv4', endpoints: [], ports: [] }],
    }));
    expect(typed.issues).toEqual([]);
    expect(typed.endpointSlices.map((s) => s.metadata.name)).toEqual(['s']);
  });

  it('reads JSON, with lines', () => {
    const json = `{
  "kind": "Service",
  "metadata": {"name": "j", "namespace": "x"},
  "spec": {"clusterIP": "10.96.0.3", "ports": [{"name": "p", "port": 53, "protocol": "UDP"}]}
}`;
    const set = parseManifests(json, 'svc.json');
    expect(set.issues).toEqual([]);
    expect(set.services[0]!.spec.ports[0]!.protocol).toBe('UDP');
    const bad = parseManifests(json.replace('"UDP"', '"ICMP"'), 'svc.json');
    expect(bad.services).toEqual([]);
    expect(bad.issues[0]).toMatchObject({ severity: 'error', source: 'svc.json', line: 4, object: 'Service x/j', path: 'spec.ports[0].protocol' });
    expect(bad.issues[0]!.message).toContain('ICMP');
  });

  it('names object, field and line for each error; valid neighbours still load', () => {
    const text = `kind: Service
metadata: {name: ok, namespace: a}
spec: {clusterIP: 10.96.0.1, ports: [{name: p, port: 1}]}
---
kind: Service
metadata: {namespace: a}
spec:
  clusterIP: 10.96.0.300
  externalIPs:
  - 198.18.0.1
  - not-an-ip
  loadBalancerSourceRanges: ["198.18.0.0/33"]
  externalTrafficPolicy: Sometimes
  ports:
  - {name: p, port: 0}
  - {name: p, port: 2}
---
kind: EndpointSlice
metadata: {name: s, namespace: a}
addressType: IPv6
endpoints:
- addresses: [10.0.0.1]
ports: [{name: p, port: 1}]
`;
    const set = parseManifests(text, 'mixed.yaml');
    expect(set.services.map((s) => s.metadata.name)).toEqual(['ok']);
    expect(set.endpointSlices).toEqual([]);
    const found = set.issues.map((i) => [i.object, i.path, i.line]);
    expect(found).toEqual([
      ['Service a/<unnamed>', 'metadata.name', 6],
      ['Service a/<unnamed>', 'spec.clusterIP', 8],
      ['Service a/<unnamed>', 'spec.ports[0].port', 15],
      ['Service a/<unnamed>', 'spec.ports[1].name', 16],
      ['Service a/<unnamed>', 'spec.loadBalancerSourceRanges[0]', 12],
      ['Service a/<unnamed>', 'spec.externalIPs[1]', 11],
      ['Service a/<unnamed>', 'spec.externalTrafficPolicy', 13],
      ['EndpointSlice a/s', 'metadata.labels', 19],
      ['EndpointSlice a/s', 'endpoints[0].addresses[0]', 22],
    ]);
    expect(formatIssue(set.issues[1]!)).toBe('error: mixed.yaml:8: Service a/<unnamed>: spec.clusterIP: invalid IP address "10.96.0.300"');
    expect(set.issues.every((i) => i.severity === 'error')).toBe(true);
  });

  it('reports YAML syntax errors with their line and keeps the other documents', () => {
    const set = parseManifests(`kind: Service
metadata: {name: a, namespace: n}
spec: {clusterIP: 10.96.0.1, ports: [{name: p, port: 1}]}
---
kind: Service
metadata: {name: b
---
kind: Node
metadata: {name: n1}
`);
    expect(set.services.map((s) => s.metadata.name)).toEqual(['a']);
    expect(set.nodes.map((n) => n.metadata.name)).toEqual(['n1']);
    expect(set.issues.length).toBeGreaterThan(0);
    expect(set.issues[0]!.line).toBeGreaterThanOrEqual(6);
  });

  it('fills clusterIP/clusterIPs from each other and keeps ipFamilies, ipMode, session affinity', () => {
    const set = parseManifests(`kind: Service
metadata: {name: d, namespace: n}
spec:
  type: LoadBalancer
  clusterIPs: [10.96.0.7, "fd00::7"]
  ipFamilies: [IPv4, IPv6]
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
  internalTrafficPolicy: Local
  trafficDistribution: PreferClose
  ports: [{name: p, port: 1, nodePort: 30001}]
status: {loadBalancer: {ingress: [{ip: 1.2.3.4, ipMode: Proxy}, {hostname: lb.example.com}]}}`);
    expect(set.issues).toEqual([]);
    expect(set.services[0]!.spec).toMatchObject({
      clusterIP: '10.96.0.7', ipFamilies: ['IPv4', 'IPv6'], sessionAffinityTimeoutSeconds: 60,
      internalTrafficPolicy: 'Local', trafficDistribution: 'PreferClose',
    });
    expect(set.services[0]!.status.loadBalancer.ingress).toEqual([
      { ip: '1.2.3.4', hostname: null, ipMode: 'Proxy' },
      { ip: null, hostname: 'lb.example.com', ipMode: null },
    ]);
  });

  it('refuses cluster IPs the API server would refuse: family against ipFamilies, two of one family, clusterIP apart from clusterIPs[0], the unspecified address', () => {
    const svc = (spec: Record<string, unknown>, status?: unknown) => ({ kind: 'Service', metadata: { name: 's', namespace: 'n' }, spec: { ports: [{ port: 80 }], ...spec }, ...(status ? { status } : {}) });
    const issues = (spec: Record<string, unknown>, status?: unknown) => loadObjects([svc(spec, status)]).issues.map((i) => `${i.path}: ${i.message}`);
    expect(issues({ clusterIP: '198.18.0.2', ipFamilies: ['IPv6', 'IPv4'] })).toEqual(['spec.clusterIPs[0]: 198.18.0.2: expected an IPv6 value as indicated by ipFamilies[0]']);
    expect(issues({ clusterIPs: ['fd00::6', 'fd00::3'], ipFamilies: ['IPv6', 'IPv4'] })).toEqual([
      'spec.clusterIPs: clusterIPs may hold no more than one address of each IP family',
      'spec.clusterIPs[1]: fd00::3: expected an IPv4 value as indicated by ipFamilies[1]',
    ]);
    expect(issues({ clusterIP: '198.18.0.2', clusterIPs: ['198.18.0.3'] })).toEqual(['spec.clusterIPs[0]: "198.18.0.3" must be the same as clusterIP "198.18.0.2"']);
    expect(issues({ clusterIP: '0.0.0.0' })).toEqual(['spec.clusterIP: 0.0.0.0 is the unspecified address, not a Service address']);
    expect(issues({ clusterIP: '198.18.0.2', externalIPs: ['::'] })).toEqual(['spec.externalIPs[0]: :: is the unspecified address, not a Service address']);
    expect(issues({ clusterIP: '198.18.0.2' }, { loadBalancer: { ingress: [{ ip: '0.0.0.0' }] } }))
      .toEqual(['status.loadBalancer.ingress[0].ip: 0.0.0.0 is the unspecified address, not a Service address']);
    // What the API server accepts stays accepted: dual-stack in either order, headless with families, no families at all.
    for (const ok of [
      { clusterIPs: ['fd00::6', '198.18.0.6'], ipFamilies: ['IPv6', 'IPv4'] },
      { clusterIP: '198.18.0.6', clusterIPs: ['198.18.0.6', 'fd00::6'], ipFamilies: ['IPv4'] },
      { clusterIP: 'None', clusterIPs: ['None'], ipFamilies: ['IPv6'] },
      { clusterIP: '198.18.0.6' },
      { clusterIP: '0.0.0.1', externalIPs: ['fd00::1'] },
    ]) expect(issues(ok)).toEqual([]);
  });

  it('refuses a port number given twice for one protocol, as the API server does (two service ports would claim one address)', () => {
    const set = loadObjects([{ kind: 'Service', metadata: { name: 's', namespace: 'n' }, spec: { clusterIP: '198.18.0.2', ports: [
      { name: 'a', port: 443 }, { name: 'b', port: 443, nodePort: 30021 }, { name: 'c', port: 443, protocol: 'UDP' },
    ] } }]);
    expect(set.issues.map((i) => `${i.path}: ${i.message}`)).toEqual(['spec.ports[1].port: duplicate port 443/TCP']);
  });

  it('never throws on garbage', () => {
    const junk = ['', '---\n---\n', '42', '[1, 2]', 'kind: [', '\u0000\u0001', 'kind: Service\nspec: 5', 'kind: List\nitems: 3',
      'kind: EndpointSlice\nendpoints: {a: 1}', '*alias', '{"kind": "Service", "metadata": []}'];
    for (const j of junk) {
      const set = parseManifests(j);
      expect(set.services.length + set.endpointSlices.length + set.nodes.length).toBe(0);
    }
    let seed = 7;
    for (let n = 0; n < 200; n++) {
      let s = '';
      for (let k = 0; k < 80; k++) {
        seed = (seed * 1103515245 + 12345) >>> 0;
        s += 'kind: Service\n metadata{}[]:,-"\' 0123\n'[seed % 41];
      }
      expect(() => parseManifests(s)).not.toThrow();
    }
    expect(loadObjects([null, 5, { kind: 'Node', metadata: { name: 'n' } }]).nodes).toHaveLength(1);
  });

  it('a kind named like an Object.prototype member is an unknown kind, passed over', () => {
    const set = loadObjects([{ kind: 'toString', metadata: { name: 'a' } }, { kind: 'constructor' }, { kind: '__proto__' }]);
    expect(set.skipped).toBe(3);
    expect(set.issues).toEqual([]);
    expect(parseManifests('kind: hasOwnProperty\nmetadata: {name: x}\n').skipped).toBe(1);
  });

  it('values of a decoded list are reported with their index; objects by their fields', () => {
    const set = loadObjects([7, { kind: 'Service', metadata: { name: 'a' }, spec: { clusterIP: 'x' } }]);
    expect(set.issues.map((i) => `${i.object ?? ''}|${i.path}|${i.message}`)).toEqual([
      '|[0]|document is not an object',
      'Service default/a|spec.clusterIP|invalid IP address "x"',
    ]);
  });

  it('decoded objects: every bad field is named by its full path, in reading order, and only that object is left out', () => {
    const set = loadObjects([
      {
        kind: 'EndpointSlice', addressType: 'IPv4',
        metadata: { name: 's', namespace: 'ns', labels: { 'kubernetes.io/service-name': 'web', bad: 7 } },
        ports: [{ name: 'http', port: 70000, protocol: 'TCP' }],
        endpoints: [
          { addresses: ['198.18.0.1'], conditions: { ready: 'yes' }, nodeName: 5 },
          { addresses: ['fd00::1', 'nope'], hints: { forZones: [{ name: 3 }] } },
          { addresses: [] },
        ],
      },
      {
        kind: 'Service', metadata: { name: 'web', namespace: 'ns' },
        spec: { clusterIP: '198.18.0.10', ports: [{ port: 80, protocol: 'ICMP' }], sessionAffinityConfig: { clientIP: { timeoutSeconds: 0 } } },
        status: { loadBalancer: { ingress: [{ ip: '1.2.3' }] } },
      },
      { kind: 'Service', metadata: { name: 'ok', namespace: 'ns' }, spec: { clusterIP: '198.18.0.11', ports: [{ port: 80 }] } },
    ]);
    expect(set.issues.map((i) => `${i.object} ${i.path}`)).toEqual([
      'EndpointSlice ns/s metadata.labels.bad',
      'EndpointSlice ns/s ports[0].port',
      'EndpointSlice ns/s endpoints[0].conditions.ready',
      'EndpointSlice ns/s endpoints[0].nodeName',
      'EndpointSlice ns/s endpoints[1].addresses[0]',
      'EndpointSlice ns/s endpoints[1].addresses[1]',
      'EndpointSlice ns/s endpoints[1].hints.forZones[0].name',
      'EndpointSlice ns/s endpoints[2].addresses',
      'Service ns/web spec.ports[0].protocol',
      'Service ns/web status.loadBalancer.ingress[0].ip',
      'Service ns/web spec.sessionAffinityConfig.clientIP.timeoutSeconds',
    ]);
    expect(set.issues.every((i) => i.severity === 'error')).toBe(true);
    expect(set.endpointSlices).toHaveLength(0);
    expect(set.services.map((x) => x.metadata.name)).toEqual(['ok']);
  });

  it('lists built in JavaScript with holes: a hole is an absent element, named like any other, never a crash', () => {
    const holes = <T>(...xs: T[]): T[] => { const a = [...xs]; delete a[0]; return a; };
    const set = loadObjects([
      { kind: 'Service', metadata: { name: 'a', namespace: 'ns' }, spec: { clusterIP: '198.18.0.10', ports: holes({ port: 1 }, { name: 'http', port: 80 }) } },
      { kind: 'Service', metadata: { name: 'b', namespace: 'ns' }, spec: { clusterIP: '198.18.0.11', ports: [{ port: 80 }] }, status: { loadBalancer: { ingress: holes({}) } } },
      {
        kind: 'EndpointSlice', addressType: 'IPv4', metadata: { name: 's', namespace: 'ns', labels: { 'kubernetes.io/service-name': 'b' } },
        endpoints: holes({}, { addresses: holes('', '198.18.1.1', '198.18.1.2') }), ports: [{ name: 'http', port: 8080 }],
      },
      { kind: 'Service', metadata: { name: 'ok', namespace: 'ns' }, spec: { clusterIP: '198.18.0.12', ports: [{ port: 80 }] } },
    ]);
    expect(set.issues.map((i) => `${i.object} ${i.path} ${i.message}`)).toEqual([
      'Service ns/a spec.ports[0].port missing port',
      'EndpointSlice ns/s endpoints[0].addresses endpoint has no addresses',
      'EndpointSlice ns/s endpoints[1].addresses[0] invalid IP address ""',
    ]);
    // An absent ingress entry is an empty one, as a YAML `- {}` is.
    expect(set.services.map((x) => x.metadata.name)).toEqual(['b', 'ok']);
  });
});

describe('decoded port lists shared within one load', () => {
  const svcOf = (name: string, ports: object[]) => ({ kind: 'Service', metadata: { name, namespace: 'default' }, spec: { clusterIP: '198.18.0.1', ports } });
  const sliceOf = (name: string, ports: object[]) => ({
    kind: 'EndpointSlice', metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': name } },
    addressType: 'IPv4', ports, endpoints: [{ addresses: ['198.19.0.1'] }],
  });

  it('equal lists are one frozen value; any difference (or a node port) keeps them apart; values are as decoded', () => {
    const http = { name: 'http', port: 80, targetPort: 8080 };
    const set = loadObjects([
      svcOf('a', [http]), svcOf('b', [{ ...http }]), svcOf('c', [{ ...http, targetPort: '8080' }]),
      svcOf('d', [{ ...http, nodePort: 30001 }]), svcOf('e', [{ ...http, nodePort: 30001 }]),
      // A target port text that spells another list's key must not be taken for it.
      svcOf('f', [{ ...http, targetPort: '1;3:webTCP,81,0,8080' }]), svcOf('g', [{ ...http, targetPort: 1 }, { name: 'web', port: 81, targetPort: 8080 }]),
      sliceOf('a', [{ name: 'http', port: 8080 }]), sliceOf('b', [{ name: 'http', port: 8080, protocol: 'TCP' }]), sliceOf('c', [{ name: 'http', port: 8081 }]),
    ]);
    expect(set.issues).toEqual([]);
    const [a, b, c, d, e, f, g] = set.services.map((s) => s.spec.ports);
    expect(b).toBe(a);
    expect(Object.isFrozen(a) && Object.isFrozen(a![0])).toBe(true);
    expect(a).toEqual([{ name: 'http', protocol: 'TCP', port: 80, nodePort: 0, targetPort: 8080 }]);
    expect(c).not.toBe(a);
    expect(c![0]!.targetPort).toBe('8080');
    expect(e).not.toBe(d);
    expect(f).not.toBe(g);
    expect(f!.map((p) => p.targetPort)).toEqual(['1;3:webTCP,81,0,8080']);
    expect(g!.map((p) => [p.port, p.targetPort])).toEqual([[80, 1], [81, 8080]]);
    const [sa, sb, sc] = set.endpointSlices.map((s) => s.ports);
    expect(sb).toBe(sa);
    expect(sc).not.toBe(sa);
    expect(sc).toEqual([{ name: 'http', port: 8081, protocol: 'TCP' }]);
  });

  it('a list equal to the one before is taken as it is; each field that differs, or is invalid, is decoded and named', () => {
    const http = { name: 'http', port: 80, targetPort: 8080 };
    const set = loadObjects([
      svcOf('a', [http]),
      // Spelled-out defaults decode to the same values.
      svcOf('b', [{ ...http, protocol: 'TCP', nodePort: 0 }]), svcOf('c', [{ ...http, nodePort: null, protocol: null }]),
      svcOf('d', [{ ...http, protocol: 'UDP' }]), svcOf('e', [{ ...http, port: 81 }]), svcOf('f', [{ ...http, name: 'web' }]),
      svcOf('g', [{ ...http, targetPort: 8081 }]), svcOf('h', [{ ...http, targetPort: undefined }]), svcOf('i', [http, http]),
      svcOf('j', [{ ...http, port: '80' }]), svcOf('k', ['http']),
      sliceOf('a', [{ name: 'http', port: 8080 }]), sliceOf('b', [{ name: 'http', port: 8080, protocol: null }]),
      sliceOf('c', [{ name: 'http', port: 8080, protocol: 'UDP' }]), sliceOf('d', [{ port: 8080 }]), sliceOf('e', [{ port: 8080 }]),
      sliceOf('f', [{ name: 'http' }]), sliceOf('g', [{ name: 'http' }]), sliceOf('h', [{ name: 'http', port: 0 }]),
    ]);
    const messages = set.issues.map((i) => `${i.object} ${i.path}: ${i.message}`);
    expect(messages).toEqual([
      'Service default/i spec.ports[1].name: duplicate port name "http" for TCP',
      'Service default/i spec.ports[1].port: duplicate port 80/TCP',
      'Service default/j spec.ports[0].port: must be an integer, got "80"',
      'Service default/k spec.ports[0]: must be a mapping',
      'Service default/k spec.ports[0].port: missing port',
      'EndpointSlice default/d ports[0].name: port has no name; kube-proxy ignores it',
      'EndpointSlice default/e ports[0].name: port has no name; kube-proxy ignores it',
      'EndpointSlice default/h ports[0].port: 0 is out of range 1-65535',
    ]);
    const ports = new Map(set.services.map((s) => [s.metadata.name, s.spec.ports]));
    expect(ports.get('b')).toBe(ports.get('a'));
    expect(ports.get('c')).toBe(ports.get('a'));
    expect(ports.get('d')).toEqual([{ name: 'http', protocol: 'UDP', port: 80, nodePort: 0, targetPort: 8080 }]);
    expect(ports.get('e')![0]!.port).toBe(81);
    expect(ports.get('f')![0]!.name).toBe('web');
    expect(ports.get('g')![0]!.targetPort).toBe(8081);
    expect(ports.get('h')![0]!.targetPort).toBe(null);
    expect([...ports.keys()]).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']);
    const slices = new Map(set.endpointSlices.map((s) => [s.metadata.name, s.ports]));
    expect(slices.get('b')).toBe(slices.get('a'));
    expect(slices.get('c')).toEqual([{ name: 'http', port: 8080, protocol: 'UDP' }]);
    expect(slices.get('e')).toEqual([{ name: null, port: 8080, protocol: 'TCP' }]);
    expect(slices.get('g')).toBe(slices.get('f'));
    expect(slices.get('g')).toEqual([{ name: 'http', port: null, protocol: 'TCP' }]);
    expect(slices.has('h')).toBe(false);
  });

  it('nothing is shared between loads', () => {
    const one = loadObjects([sliceOf('a', [{ name: 'http', port: 8080 }])]).endpointSlices[0]!.ports;
    const two = loadObjects([sliceOf('a', [{ name: 'http', port: 8080 }])]).endpointSlices[0]!.ports;
    expect(two).toEqual(one);
    expect(two).not.toBe(one);
  });
});

describe('wrong values quoted in issues', () => {
  it('quotes text and numbers, names lists, mappings and other kinds, cuts long text', () => {
    // A list or mapping nested past the stack (a JavaScript caller's, or a watch event's) used to
    // throw while its issue printed it whole; a BigInt could not be printed as JSON at all.
    let deep: unknown = 'x';
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const svc = (name: string, spec: object) => ({ kind: 'Service', metadata: { name, namespace: 'default' }, spec: { clusterIP: '198.18.0.1', ports: [{ port: 80 }], ...spec } });
    const set = loadObjects([
      svc('a', { clusterIP: deep }), svc('b', { type: { a: deep } }), svc('c', { ports: [{ port: 80n }] }),
      svc('d', { ports: [{ port: 'x'.repeat(300) }] }), svc('e', { ports: [{ port: 1.5 }] }),
      { kind: 'EndpointSlice', metadata: { name: 'f', namespace: 'default', labels: { 'kubernetes.io/service-name': 'f' } }, addressType: 'IPv4', endpoints: [{ addresses: ['198.19.0.1'], conditions: { ready: 'yes' } }] },
    ]);
    expect(set.issues.map((i) => `${i.object} ${i.path}: ${i.message}`)).toEqual([
      'Service default/a spec.clusterIP: must be a string, got a list',
      'Service default/b spec.type: must be a string, got a mapping',
      'Service default/c spec.ports[0].port: must be an integer, got bigint',
      `Service default/d spec.ports[0].port: must be an integer, got "${'x'.repeat(100)}…"`,
      'Service default/e spec.ports[0].port: must be an integer, got 1.5',
      'EndpointSlice default/f endpoints[0].conditions.ready: must be true or false, got "yes"',
    ]);
  });
});
