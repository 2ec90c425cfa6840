// Object and port names checked as the API server checks them (a Service's name a DNS-1035
// label, a namespace and a port name RFC 1123 labels, slice and node names RFC 1123 subdomains,
// the service-name label a label value): a name with a character that could break rule text or
// svcplane's keys (space, quote, newline, ':', '/') is an error and its object is left out; one
// the API server would refuse for its letters alone (capitals, as kube-proxy's own tests use) is
// a warning and loads. And through dp.apply: such a name neither breaks the iptables restore nor
// leaves a direct-mode entry behind that no later sync can remove.
import { describe, it, expect } from 'vitest';
import { loadObjects } from '../../../host-node/kube/objects.js';
import { isValidName, type NameKind } from '../../../host-node/kube/object-reader.js';
import { Rng } from '../../support/kube-gen.js';
import { Dataplane } from '../../../host-node/dataplane.js';
import { buildPacket, decodePacket } from '../../../host-node/core/packet.js';

const service = (name: string, ip: string, over: { namespace?: string; ports?: object[] } = {}) => ({
  apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: over.namespace ?? 'ns' },
  spec: { clusterIP: ip, ports: over.ports ?? [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }] },
});
const slice = (service: string, name = `${service}-a`, endpoint: object = {}, ports?: object[]) => ({
  apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
  metadata: { name, namespace: 'ns', labels: { 'kubernetes.io/service-name': service } },
  endpoints: [{ addresses: ['198.19.0.5'], conditions: { ready: true }, ...endpoint }],
  ports: ports ?? [{ name: 'http', port: 8080, protocol: 'TCP' }],
});

/** The issues of loading `obj` alone, as "severity path", and whether it loaded. */
function check(obj: object): { issues: string[]; loaded: boolean } {
  const set = loadObjects([obj]);
  return {
    issues: set.issues.map((i) => `${i.severity} ${i.path}`),
    loaded: set.services.length + set.endpointSlices.length + set.nodes.length === 1,
  };
}

const refused = (path: string) => ({ issues: [`error ${path}`], loaded: false });
const warned = (path: string) => ({ issues: [`warning ${path}`], loaded: true });
const clean = { issues: [], loaded: true };

// k8s.io/apimachinery/pkg/util/validation's rules written out from their definitions, apart from
// the patterns svcplane matches them with: a label is letters a-z, digits and '-', starting and
// ending with a letter or digit (a DNS-1035 label starting with a letter), at most 63; a subdomain
// is labels joined by '.' (no length of their own), at most 253; a label value is empty or letters
// of either case, digits, '-', '_' and '.', starting and ending with a letter or digit, at most 63.
const lower = (c: string) => c >= 'a' && c <= 'z';
const alnum = (c: string) => lower(c) || (c >= '0' && c <= '9');
const anyAlnum = (c: string) => alnum(c) || (c >= 'A' && c <= 'Z');
const part = (x: string, first: (c: string) => boolean) =>
  x.length > 0 && first(x[0]!) && alnum(x[x.length - 1]!) && [...x].every((c) => alnum(c) || c === '-');
function apiTakes(s: string, kind: NameKind): boolean {
  switch (kind) {
    case 'label': return s.length <= 63 && part(s, alnum);
    case 'dns1035': return s.length <= 63 && part(s, lower);
    case 'subdomain': return s.length <= 253 && s.split('.').every((p) => part(p, alnum));
    case 'labelValue': return s === '' || (s.length <= 63 && anyAlnum(s[0]!) && anyAlnum(s[s.length - 1]!) && [...s].every((c) => anyAlnum(c) || '-_.'.includes(c)));
  }
}
const KINDS: NameKind[] = ['label', 'subdomain', 'dns1035', 'labelValue'];

describe('object names as the API server has them', () => {
  it('the check takes exactly the names the API server\'s rules take', () => {
    const rng = new Rng(5);
    const chars = 'az09AZ-._:/ "';
    const samples = ['', 'a'.repeat(63), 'a'.repeat(64), `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`, `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(62)}`];
    for (let k = 0; k < 20_000; k++) samples.push(Array.from({ length: rng.int(1, 7) }, () => chars[rng.int(0, chars.length - 1)]).join(''));
    let taken = 0;
    for (const kind of KINDS) {
      for (const s of samples) {
        const want = apiTakes(s, kind);
        expect(isValidName(s, kind), `${kind} ${JSON.stringify(s)}`).toBe(want);
        if (want) taken++;
      }
    }
    expect(taken).toBeGreaterThan(1000);
  });

  it('a Service name is a DNS-1035 label', () => {
    expect(check(service('web-1', '198.18.0.1'))).toEqual(clean);
    for (const bad of ['a b', 'x:y', 'a/b', 'web\n', 'q"uote', 'fd00::1']) expect(check(service(bad, '198.18.0.1')), bad).toEqual(refused('metadata.name'));
    // Letters the API server refuses but text carries: kube-proxy's tests name Services so.
    for (const odd of ['validIPv4', '1abc', 'a_b', 'a.b']) expect(check(service(odd, '198.18.0.1')), odd).toEqual(warned('metadata.name'));
    expect(check(service('a'.repeat(63), '198.18.0.1'))).toEqual(clean);
    expect(check(service('a'.repeat(64), '198.18.0.1'))).toEqual(refused('metadata.name'));
  });

  it('a namespace is an RFC 1123 label; the message is the API server\'s', () => {
    expect(check(service('web', '198.18.0.1', { namespace: 'team a' }))).toEqual(refused('metadata.namespace'));
    expect(check(service('web', '198.18.0.1', { namespace: 'Team' }))).toEqual(warned('metadata.namespace'));
    const set = loadObjects([service('web', '198.18.0.1', { namespace: 'a:b' })]);
    expect(set.issues[0]!.message).toBe(
      "invalid value \"a:b\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
    );
  });

  it('port names are RFC 1123 labels', () => {
    const ports = (...names: Array<string | undefined>) => names.map((name, i) => ({ ...(name === undefined ? {} : { name }), port: 80 + i, protocol: 'TCP' }));
    expect(check(service('web', '198.18.0.1', { ports: ports('web"x') }))).toEqual(refused('spec.ports[0].name'));
    expect(check(service('web', '198.18.0.1', { ports: ports(undefined) }))).toEqual(clean);
    // The API server wants every port of a multi-port Service named; kube-proxy takes one unnamed.
    expect(check(service('web', '198.18.0.1', { ports: ports('http', undefined) }))).toEqual(clean);
    expect(check(service('web', '198.18.0.1', { ports: ports('testPort') }))).toEqual(warned('spec.ports[0].name'));
    expect(check(slice('web', 'web-a', {}, [{ name: 'h:1', port: 8080 }]))).toEqual(refused('ports[0].name'));
    expect(check(slice('web', 'web-a', {}, [{ name: '', port: 8080 }]))).toEqual(clean);
  });

  it('slice and node names are RFC 1123 subdomains; the service-name label a label value; node and host names of endpoints too', () => {
    expect(check(slice('web', 'web-a.b'))).toEqual(clean);
    expect(check(slice('web', 'web a'))).toEqual(refused('metadata.name'));
    expect(check(slice('web:80'))).toEqual({ issues: ['error metadata.name', 'error metadata.labels.kubernetes.io/service-name'], loaded: false });
    expect(check(slice('web', 'web-a', { nodeName: 'node a' }))).toEqual(refused('endpoints[0].nodeName'));
    expect(check(slice('web', 'web-a', { nodeName: 'node-a.zone' }))).toEqual(clean);
    expect(check(slice('web', 'web-a', { hostname: 'pod\n1' }))).toEqual(refused('endpoints[0].hostname'));
    expect(check({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node/1' } })).toEqual(refused('metadata.name'));
  });
});

describe('dp.apply given a name that would break its text or keys', () => {
  it('iptables mode: the Service is refused by name and field, the restore goes through with the rest', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['198.18.200.1'], podCIDR: '198.19.0.0/16', seed: 1 });
    const r = dp.apply([service('web\n', '198.18.0.1'), slice('web\n', 'web-a'), service('ok', '198.18.0.2'), slice('ok')], { mode: 'iptables' });
    expect(r.issues.map((i) => `${i.object} ${i.path}`)).toEqual(['Service ns/web\n metadata.name', 'EndpointSlice ns/web-a metadata.labels.kubernetes.io/service-name']);
    expect(dp.iptablesSave()).toContain('-A KUBE-SERVICES -m comment --comment "ns/ok:http cluster IP" -m tcp -p tcp -d 198.18.0.2 --dport 80 -j KUBE-SVC-');
  });

  it('direct mode: a Service renamed to a name with ":" and back leaves nothing behind', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['198.18.200.1'], podCIDR: '198.19.0.0/16', seed: 1 });
    const good = [service('s0', '198.18.0.1'), slice('s0'), service('s1', '198.18.0.2'), slice('s1')];
    expect(dp.apply(good, { mode: 'direct' }).issues).toEqual([]);
    const renamed = dp.apply([service('s0', '198.18.0.1'), slice('s0'), service('fd00::1', '198.18.0.2'), slice('s1')], { mode: 'direct' });
    expect(renamed.issues.map((i) => `${i.object} ${i.path}`)).toEqual(['Service ns/fd00::1 metadata.name']);
    expect(dp.apply(good, { mode: 'direct' }).issues).toEqual([]);
    const r = dp.process(buildPacket({ src: '198.19.9.9', dst: '198.18.0.2', proto: 'tcp', sport: 40000, dport: 80, flags: 'S' }), 1);
    expect(r.packet && decodePacket(r.packet).dst).toBe('198.19.0.5');
  });
});
