// dp.apply: Kubernetes objects → kube-proxy's iptables rules → the live core, incrementally.
import { describe, it, expect } from 'vitest';
import { Dataplane, type TraceQuery } from '../../host-node/dataplane.js';
import { buildPacket, decodePacket } from '../../host-node/core/packet.js';
import { parseManifests } from '../../host-node/kube/objects.js';
import YAML from 'yaml';

const svc = (name: string, ip: string, port: number, extra = '') => `
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec:
  clusterIP: ${ip}
  ports: [{ name: http, port: ${port}, protocol: TCP, targetPort: 8080 }]
${extra}`;
const slice = (name: string, svcName: string, ips: string[]) => `
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}, namespace: default, labels: { kubernetes.io/service-name: ${svcName} } }
addressType: IPv4
ports: [{ name: http, port: 8080, protocol: TCP }]
endpoints:
${ips.map((ip) => `  - addresses: [${ip}]\n    conditions: { ready: true }`).join('\n')}
`;

async function make() {
  return Dataplane.create({ nodeIPs: ['192.168.49.2'], podCIDR: '10.244.0.0/16', seed: 4 });
}

describe('Dataplane.apply (iptables mode)', () => {
  it('renders every Service again when the rendering options or the pod CIDR change, in every mode', async () => {
    const objs = [svc('web', '10.96.0.80', 80), slice('web-1', 'web', ['10.244.1.11']), svc('db', '10.96.0.81', 81), slice('db-1', 'db', ['10.244.2.12'])].join('\n---\n');
    for (const mode of ['iptables', 'ipvs', 'direct'] as const) {
      const dp = await make();
      const full = (r: ReturnType<Dataplane['apply']>): boolean | undefined => r.families.find((f) => f.family === 4)?.full;
      expect(full(dp.apply(objs, { mode }))).toBe(true);
      expect(full(dp.apply(objs, { mode }))).toBe(false);
      // From outside the pod CIDR: masqueraded once --masquerade-all or a narrower pod CIDR says so.
      const outside = (sport: number): string => {
        const r = dp.process(buildPacket({ src: '10.244.9.9', dst: '10.96.0.81', proto: 'tcp', sport, dport: 81, flags: 'S' }), 1);
        expect(r.verdict, mode).toBe('FORWARD');
        return decodePacket(r.packet!).src;
      };
      expect(outside(5000), mode).toBe('10.244.9.9');
      expect(full(dp.apply(objs, { mode, iptables: { masqueradeAll: true } })), mode).toBe(true);
      expect(outside(5001), mode).toBe('192.168.49.2');
      expect(full(dp.apply(objs, { mode, iptables: { masqueradeAll: true } })), mode).toBe(false);
      expect(full(dp.apply(objs, { mode })), mode).toBe(true);
      expect(outside(5002), mode).toBe('10.244.9.9');
      dp.setPodCIDR(['10.244.1.0/24']);
      expect(dp.options.podCIDR).toEqual(['10.244.1.0/24']);
      expect(full(dp.apply(objs, { mode })), mode).toBe(true);
      expect(outside(5003), mode).toBe('192.168.49.2');
      expect(() => dp.setPodCIDR(['10.244.1.0/33'])).toThrow('podCIDR: not a CIDR: "10.244.1.0/33"');
      expect(dp.options.podCIDR).toEqual(['10.244.1.0/24']);
    }
  });

  it('serves a Service from manifests and follows endpoint changes with partial syncs', async () => {
    const dp = await make();
    const r1 = dp.apply([svc('web', '10.96.0.80', 80), slice('web-1', 'web', ['10.244.1.11', '10.244.2.12'])].join('\n---\n'));
    expect(r1.issues).toEqual([]);
    expect(r1.families.find((f) => f.family === 4)!.full).toBe(true);

    const t1 = dp.trace({ src: '10.244.3.3', dst: '10.96.0.80', proto: 'tcp', dport: 80 });
    expect(t1.outcomes.map((o) => o.to).sort()).toEqual(['10.244.1.11:8080', '10.244.2.12:8080']);
    expect(t1.outcomes.every((o) => Math.abs(o.probability - 0.5) < 1e-9)).toBe(true);

    const syn = dp.process(buildPacket({ src: '10.244.3.3', dst: '10.96.0.80', proto: 'tcp', sport: 4000, dport: 80, flags: 'S' }), 1);
    expect(syn.verdict).toBe('FORWARD');
    expect(['10.244.1.11', '10.244.2.12']).toContain(decodePacket(syn.packet!).dst);

    const r2 = dp.apply([svc('web', '10.96.0.80', 80), slice('web-1', 'web', ['10.244.2.12'])].join('\n---\n'));
    const v4 = r2.families.find((f) => f.family === 4)!;
    expect(v4.full).toBe(false);
    expect(v4.changedServices).toEqual(['default/web']);
    const t2 = dp.trace({ src: '10.244.3.3', dst: '10.96.0.80', proto: 'tcp', dport: 80, sport: 4001 });
    expect(t2.outcomes.map((o) => o.to)).toEqual(['10.244.2.12:8080']);

    // The same objects again: nothing to sync for the Service.
    const r3 = dp.apply([svc('web', '10.96.0.80', 80), slice('web-1', 'web', ['10.244.2.12'])].join('\n---\n'));
    expect(r3.families.find((f) => f.family === 4)!.changedServices).toEqual([]);

    // Removing every endpoint: kube-proxy REJECTs new connections.
    dp.apply(svc('web', '10.96.0.80', 80));
    const t4 = dp.trace({ src: '10.244.3.3', dst: '10.96.0.80', proto: 'tcp', dport: 80, sport: 4002 });
    expect(t4.outcomes.map((o) => o.verdict)).toEqual(['REPLY']);
  });

  it('counts as the kernel does under kube-proxy\'s syncs: the shared chains start again at each sync, untouched Services keep theirs', async () => {
    const dp = await make();
    const objects = (webIps: string[]) => [svc('web', '10.96.0.80', 80), slice('web-1', 'web', webIps), svc('api', '10.96.0.90', 80), slice('api-1', 'api', ['10.244.1.21'])].join('\n---\n');
    dp.apply(objects(['10.244.1.11']));
    for (const [dst, sport] of [['10.96.0.80', 5000], ['10.96.0.90', 5001]] as const) {
      dp.process(buildPacket({ src: '10.244.3.3', dst, proto: 'tcp', sport, dport: 80, flags: 'S' }), 1);
    }
    const svcChain = (ip: string) => / -j (KUBE-SVC-\S+)/.exec(dp.iptablesRules('nat', 'KUBE-SERVICES').split('\n').find((l) => l.includes(`-d ${ip}/32`))!)![1]!;
    const packets = (chain: string) => dp.iptablesList('nat', chain, { exact: true }).trim().split('\n').slice(2).map((l) => Number(l.trim().split(/\s+/)[0]));
    const api = svcChain('10.96.0.90');
    expect(packets('KUBE-SERVICES').filter((n) => n > 0)).toEqual([1, 1]);
    expect(packets(api).at(-1)).toBe(1);   // its jump to the endpoint

    // A partial sync for web: kube-proxy's text declares (flushes) KUBE-SERVICES and web's chains,
    // never api's, so iptables-legacy would show zero for those and 1 for api's.
    const r = dp.apply(objects(['10.244.2.12']));
    expect(r.families.find((f) => f.family === 4)!.full).toBe(false);
    expect(packets('KUBE-SERVICES').every((n) => n === 0)).toBe(true);
    expect(packets(svcChain('10.96.0.80')).every((n) => n === 0)).toBe(true);
    expect(packets(api).at(-1)).toBe(1);
  });

  it('installs kube-proxy\'s jumps from the built-in chains once, keeping ones already there', async () => {
    const dp = await make();
    // One jump already in place (as an earlier kube-proxy left it), with an unrelated rule.
    dp.iptablesRestore('*nat\n:KUBE-SERVICES - [0:0]\n-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\n-A PREROUTING -s 10.9.9.9/32 -j ACCEPT\nCOMMIT\n');
    dp.apply([svc('web', '10.96.0.80', 80), slice('web-1', 'web', ['10.244.1.11'])].join('\n---\n'));
    expect(dp.iptablesRules('nat', 'PREROUTING').split('\n').filter((l) => l.startsWith('-A '))).toEqual([
      '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      '-A PREROUTING -s 10.9.9.9/32 -j ACCEPT',
    ]);
    expect(dp.iptablesRules('nat', 'POSTROUTING')).toContain('-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING');
    // EnsureRule(Prepend) walks the list in order, so the last one ensured is first.
    expect(dp.iptablesRules('filter', 'INPUT').split('\n').filter((l) => l.startsWith('-A '))).toEqual([
      '-A INPUT -j KUBE-FIREWALL',
      '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
      '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
      '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
    ]);
    dp.apply([svc('web', '10.96.0.80', 80), slice('web-1', 'web', ['10.244.1.12'])].join('\n---\n'));
    expect(dp.iptablesRules('nat', 'OUTPUT').match(/-j KUBE-SERVICES/g)).toHaveLength(1);
  });

  it('rewrites the shared chains as kube-proxy does after someone else restored rules into them', async () => {
    const dp = await make();
    const objects = (ips: string[]) => [svc('web', '10.96.0.80', 80), slice('web-1', 'web', ips)].join('\n---\n');
    dp.apply(objects(['10.244.1.11']));
    dp.apply(objects(['10.244.1.12']));
    const kubeServices = () => dp.iptablesRules('nat', 'KUBE-SERVICES');
    const before = kubeServices();
    // An endpoint-only sync leaves KUBE-SERVICES alone: nothing restored it since the last sync.
    expect(dp.apply(objects(['10.244.1.13'])).families[0]!.touched).not.toContain('nat/KUBE-SERVICES');
    dp.iptablesRestore('*nat\n-A KUBE-SERVICES -d 10.96.9.9/32 -j KUBE-MARK-MASQ\nCOMMIT\n', { noflush: true });
    expect(kubeServices()).toContain('10.96.9.9');
    // Now it is rewritten whole, as kube-proxy's own partial sync does.
    expect(dp.apply(objects(['10.244.1.14'])).families[0]!.touched).toContain('nat/KUBE-SERVICES');
    expect(kubeServices()).toBe(before);
    expect(dp.trace({ src: '10.244.3.3', dst: '10.96.0.80', proto: 'tcp', dport: 80 }).outcomes.map((o) => o.to)).toEqual(['10.244.1.14:8080']);
  });

  it('in a large cluster deletes a gone Service\'s chains only when told (kube-proxy: once per syncPeriod)', async () => {
    const dp = await make();
    // 1,100 endpoints: kube-proxy's largeClusterMode (over 1,000), also after one Service goes.
    const docs: string[] = [];
    for (let i = 0; i < 100; i++) docs.push(svc(`s${i}`, `10.96.1.${i}`, 80), slice(`s${i}-1`, `s${i}`, Array.from({ length: 11 }, (_, k) => `10.244.${i}.${k + 1}`)));
    dp.apply(docs.join('\n---\n'));
    const sepCount = () => dp.iptablesSave().split('\n').filter((l) => l.startsWith(':KUBE-SEP-')).length;
    expect(sepCount()).toBe(100 * 11);
    const fewer = docs.slice(2).join('\n---\n'); // s0 gone
    dp.apply(fewer);
    expect(sepCount()).toBe(100 * 11); // stale, unreferenced, left for the periodic cleanup
    const services = () => dp.iptablesSave().split('\n').filter((l) => l.startsWith('-A KUBE-SERVICES '));
    expect(services().filter((l) => l.includes('-d 10.96.1.0 '))).toEqual([]); // no longer reachable
    expect(services().filter((l) => l.includes('-d 10.96.1.1 '))).toHaveLength(1);
    dp.apply(fewer, { cleanupStaleChains: true });
    expect(sepCount()).toBe(99 * 11);
  });

  it('takes objects decoded already as they are: the same rules as from text, the objects left unchanged', async () => {
    const text = [svc('web', '10.96.0.80', 80), slice('web-1', 'web', ['10.244.1.11', '10.244.2.12'])].join('\n---\n');
    const fromText = await make();
    fromText.apply(text);
    const decoded = parseManifests(text);
    const before = JSON.stringify(decoded);
    const fromObjects = await make();
    expect(fromObjects.apply({ services: decoded.services, endpointSlices: decoded.endpointSlices, nodes: [] }).issues).toEqual([]);
    expect(fromObjects.iptablesSave()).toBe(fromText.iptablesSave());
    expect(JSON.stringify(decoded)).toBe(before);
    // A later change handed the same way, as a delta, ends where the whole set does.
    const next = parseManifests(slice('web-1', 'web', ['10.244.1.11']));
    fromObjects.apply({ services: [], endpointSlices: next.endpointSlices, nodes: [] }, { delta: {} });
    fromText.apply([svc('web', '10.96.0.80', 80), slice('web-1', 'web', ['10.244.1.11'])].join('\n---\n'));
    expect(fromObjects.iptablesSave()).toBe(fromText.iptablesSave());
  });

  it('takes one object in API form (a kind: List) as it takes the list, and reports one that is no object', async () => {
    const text = [svc('web', '10.96.0.80', 80), slice('web-1', 'web', ['10.244.1.11', '10.244.2.12'])].join('\n---\n');
    const fromText = await make();
    fromText.apply(text);
    const items = text.split('\n---\n').map((t) => YAML.parse(t) as unknown);
    const fromList = await make();
    expect(fromList.apply({ apiVersion: 'v1', kind: 'List', items } as never).issues).toEqual([]);
    expect(fromList.iptablesSave()).toBe(fromText.iptablesSave());
    for (const bad of [{ services: [] }, 42]) {
      const r = fromList.apply(bad as never);
      expect(r.issues.length).toBeGreaterThan(0);
    }
    // null is an empty document, as in a YAML stream: nothing to serve.
    expect(fromList.apply(null as never).issues).toEqual([]);
  });

  it('a Service whose cluster IP is of the other family than its ipFamilies says is reported in every mode; the sync is not refused', async () => {
    const text = [svc('good', '10.96.0.81', 81), slice('good-1', 'good', ['10.244.1.5']),
      svc('bad', '10.96.0.82', 82, '  ipFamilies: [IPv6, IPv4]'), slice('bad-1', 'bad', ['10.244.1.6'])].join('\n---\n');
    for (const mode of ['iptables', 'ipvs', 'direct'] as const) {
      const dp = await Dataplane.create({ nodeIPs: ['192.168.49.2', 'fd00:49::2'], podCIDR: '10.244.0.0/16', seed: 4 });
      const r = dp.apply(text, { mode });
      expect(r.issues.map((i) => `${i.object} ${i.path}`)).toEqual(['Service default/bad spec.clusterIPs[0]']);
      const out = dp.process(buildPacket({ src: '10.244.3.3', dst: '10.96.0.81', proto: 'tcp', sport: 40000, dport: 81, flags: 'S' }), 1000);
      expect(out.packet && decodePacket(out.packet).dst, mode).toBe('10.244.1.5');
    }
  });

  it('a slice that changes family or Service leaves its old place, whole input or delta, in every mode', async () => {
    const web = svc('web', '10.96.0.80', 80), api = svc('api', '10.96.0.81', 81);
    const v4 = slice('s1', 'web', ['10.244.1.11']);
    const v6 = v4.replace('addressType: IPv4', 'addressType: IPv6').replace('10.244.1.11', 'fd00:244::11');
    const moved = v4.replace('kubernetes.io/service-name: web', 'kubernetes.io/service-name: api');
    // Each probe is a new connection (its own source port): a reused tuple would meet the
    // connection an earlier probe left in conntrack and keep that one's endpoint.
    let sport = 40000;
    const dnat = (dp: Dataplane, vip: string, port: number) => {
      const r = dp.process(buildPacket({ src: '10.244.3.3', dst: vip, proto: 'tcp', sport: sport++, dport: port, flags: 'S' }), 1000);
      return r.verdict === 'FORWARD' && r.packet ? decodePacket(r.packet).dst : r.verdict;
    };
    for (const mode of ['iptables', 'ipvs', 'direct'] as const) {
      for (const delta of [false, true]) {
        for (const [next, webTo, apiTo] of [[v6, 'REPLY', 'REPLY'], [moved, 'REPLY', '10.244.1.11']] as const) {
          const dp = await Dataplane.create({ nodeIPs: ['192.168.49.2', 'fd00:49::2'], podCIDR: '10.244.0.0/16', seed: 4 });
          dp.apply([web, api, v4].join('\n---\n'), { mode });
          expect(dnat(dp, '10.96.0.80', 80), `${mode} before`).toBe('10.244.1.11');
          if (delta) dp.apply(next, { mode, delta: {} });
          else dp.apply([web, api, next].join('\n---\n'), { mode });
          const where = `${mode} ${delta ? 'delta' : 'whole'} ${next === v6 ? 'to IPv6' : 'to api'}`;
          expect(dnat(dp, '10.96.0.80', 80), where).toBe(webTo);
          expect(dnat(dp, '10.96.0.81', 81), where).toBe(apiTo);
        }
      }
    }
  });

  it('reports a bad object with its field and line and applies the rest', async () => {
    const dp = await make();
    const r = dp.apply([svc('good', '10.96.0.81', 81), svc('bad', '10.96.0.82', 99999), slice('good-1', 'good', ['10.244.1.5'])].join('\n---\n'));
    expect(r.issues).toHaveLength(1);
    expect(r.issues[0]!.object).toBe('Service default/bad');
    expect(r.issues[0]!.path).toMatch(/ports\[0\]\.port/);
    expect(r.issues[0]!.line).toBeGreaterThan(10);
    expect(dp.trace({ src: '10.244.3.3', dst: '10.96.0.81', proto: 'tcp', dport: 81 }).outcomes.map((o) => o.to)).toEqual(['10.244.1.5:8080']);
    expect(dp.iptablesSave()).toMatch(/-A KUBE-SERVICES .*default\/good:http cluster IP.* -d 10\.96\.0\.81(\/32)? .*--dport 81 -j KUBE-SVC-/);
  });

  it('a trace refuses a port out of range in every mode (65617 would otherwise trace port 81)', async () => {
    for (const mode of ['iptables', 'ipvs', 'direct'] as const) {
      const dp = await make();
      dp.apply([svc('good', '10.96.0.81', 81), slice('good-1', 'good', ['10.244.1.5'])].join('\n---\n'), { mode });
      const q = { src: '10.244.3.3', dst: '10.96.0.81', proto: 'tcp' as const };
      expect(dp.trace({ ...q, dport: 81 }).outcomes.map((o) => o.to), mode).toEqual(['10.244.1.5:8080']);
      expect(() => dp.trace({ ...q, dport: 65536 + 81 }), mode).toThrow('bad dport 65617: a port is an integer from 0 to 65535');
      expect(() => dp.trace({ ...q, dport: 81, sport: -1 }), mode).toThrow(/bad sport -1/);
    }
  });

  it('a family other than 4 or 6, a restore input that is no text, or null options (from JavaScript) are named, never a TypeError', async () => {
    const dp = await make();
    const save = dp.iptablesSave();
    expect(() => dp.iptablesRestore('*nat\nCOMMIT\n', { family: '6' as never })).toThrow('bad family 6: 4 (iptables) or 6 (ip6tables)');
    expect(() => dp.iptablesRestore(null as never)).toThrow('iptables-restore: the input is text, not null');
    expect(() => dp.iptablesRestore(['*nat'] as never, { family: 6 })).toThrow('ip6tables-restore: the input is text, not object');
    for (const f of [() => dp.iptablesSave({ family: 5 as never }), () => dp.iptablesList('nat', undefined, { family: 0 as never }),
      () => dp.iptablesRules('nat', undefined, { family: [] as never }), () => dp.iptablesChains('nat', { family: 'x' as never }),
      () => dp.iptablesUnreferenced('nat', { family: 44 as never })]) expect(f).toThrow(/^bad family .*: 4 \(iptables\) or 6 \(ip6tables\)$/);
    // null options are no options.
    expect(dp.iptablesSave(null as never)).toBe(save);
    dp.iptablesRestore('*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n', null as never);
    expect(dp.apply([svc('good', '10.96.0.81', 81)].join('\n---\n'), null as never).issues).toEqual([]);
    expect(() => dp.traceName(7 as never, { src: '10.244.3.3' })).toThrow('bad name 7: a DNS name is text');
    expect(() => dp.traceName('a.b', null as never)).toThrow('bad trace query');
  });

  it('a trace query with a field of the wrong kind (from JavaScript) is refused by name in every mode, never a TypeError', async () => {
    for (const mode of ['iptables', 'ipvs', 'direct'] as const) {
      const dp = await make();
      dp.apply([svc('good', '10.96.0.81', 81), slice('good-1', 'good', ['10.244.1.5'])].join('\n---\n'), { mode });
      const q = { src: '10.244.3.3', dst: '10.96.0.81', proto: 'tcp' as const, dport: 81 };
      const bad = (extra: Record<string, unknown>) => () => dp.trace({ ...q, ...extra } as unknown as TraceQuery);
      expect(bad({ dst: null }), mode).toThrow('bad IP address null: an address is text');
      expect(bad({ src: 7 }), mode).toThrow('bad IP address 7: an address is text');
      expect(bad({ src: undefined }), mode).toThrow('bad IP address undefined');
      expect(bad({ from: 'pod' }), mode).toThrow('bad from pod: external or local');
      expect(bad({ nowMs: Number.NaN }), mode).toThrow('bad nowMs NaN');
      expect(bad({ flags: 2 }), mode).toThrow('bad flags 2');
      expect(bad({ proto: 'udp', query: 'web' }), mode).toThrow('bad query: a DNS query is { name, type? }');
      expect(() => dp.trace(null as unknown as TraceQuery), mode).toThrow('bad trace query');
      expect(() => dp.directAffinity(7 as never, '10.244.3.3'), mode).toThrow('directAffinity: id is a service port id ("ns/name:port/TCP") and src an address, not 7 and 10.244.3.3');
      expect(() => dp.directAffinity('default/good:81/TCP', '10.244.3.3', 'now' as never), mode).toThrow('directAffinity: bad nowMs now');
      const thrown = (f: () => unknown): string => { try { f(); return 'nothing'; } catch (e) { return (e as Error).constructor.name; } };
      expect([bad({ dst: null }), bad({ src: 7 }), bad({ proto: 'udp', query: 'web' })].map(thrown), mode).toEqual(['Error', 'Error', 'Error']);
      // The dataplane still answers afterwards.
      expect(dp.trace(q).outcomes.map((o) => o.to), mode).toEqual(['10.244.1.5:8080']);
    }
  });
});

describe('Dataplane.nfacctList', () => {
  it('counts the packets kube-proxy\'s nfacct rules see: a localhost NodePort accepted', async () => {
    const dp = await make();
    dp.apply(svc('web', '10.96.0.80', 80, '  type: NodePort\n').replace('targetPort: 8080 }', 'targetPort: 8080, nodePort: 30080 }') + '---\n' + slice('web-1', 'web', ['10.244.1.11']));
    const before = dp.nfacctList();
    expect(before.map((c) => c.name)).toEqual(['ct_state_invalid_dropped_pkts', 'localhost_nps_accepted_pkts']);
    expect(before.every((c) => c.packets === 0 && c.bytes === 0)).toBe(true);
    const bytes = buildPacket({ src: '127.0.0.1', dst: '127.0.0.1', proto: 'tcp', sport: 40000, dport: 30080, flags: 'S' });
    const r = dp.process({ bytes, local: true }, 1);
    expect(decodePacket(r.packet!).dst).toBe('10.244.1.11');
    const after = new Map(dp.nfacctList().map((c) => [c.name, c]));
    expect(after.get('localhost_nps_accepted_pkts')).toEqual({ name: 'localhost_nps_accepted_pkts', packets: 1, bytes: bytes.length });
    expect(after.get('ct_state_invalid_dropped_pkts')!.packets).toBe(0);
  });
});

describe('Dataplane.apply: stale UDP conntrack', () => {
  const udpSvc = `apiVersion: v1
kind: Service
metadata: { name: dns, namespace: kube-system }
spec:
  clusterIP: 10.96.0.10
  ports: [{ name: dns, port: 53, protocol: UDP, targetPort: 53 }]
`;
  const udpSlice = (ips: string[]) => `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: dns-1, namespace: kube-system, labels: { kubernetes.io/service-name: dns } }
addressType: IPv4
ports: [{ name: dns, port: 53, protocol: UDP }]
endpoints:
${ips.map((ip) => `  - addresses: [${ip}]\n    conditions: { ready: true }`).join('\n')}
`;
  const send = (dp: Dataplane, dst: string, dport: number, n: number, sport = 20000, src = '10.244.3.3') => {
    const to = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const r = dp.process(buildPacket({ src, dst, proto: 'udp', sport: sport + i, dport, payload: 'q' }), 1);
      expect(r.packet).toBeDefined();
      const d = decodePacket(r.packet!).dst;
      to.set(d, (to.get(d) ?? 0) + 1);
    }
    return to;
  };

  it('deletes the UDP flows of an endpoint that left, and only those', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['192.168.49.2'], podCIDR: '10.244.0.0/16', seed: 6 });
    dp.apply([udpSvc, udpSlice(['10.244.1.21', '10.244.2.22'])].join('\n---\n'));
    const picked = send(dp, '10.96.0.10', 53, 40);
    expect(picked.size).toBe(2);
    const r = dp.apply([udpSvc, udpSlice(['10.244.2.22'])].join('\n---\n'));
    expect(r.flushed).toBe(picked.get('10.244.1.21'));
    expect(dp.conntrack().every((e) => e.reply.src === '10.244.2.22')).toBe(true);
    expect(dp.conntrack()).toHaveLength(picked.get('10.244.2.22')!);
  });

  it('after a restart from a snapshot, the first sync deletes the flows of endpoints that left while the proxy was down', async () => {
    const before = await Dataplane.create({ nodeIPs: ['192.168.49.2'], podCIDR: '10.244.0.0/16', seed: 6 });
    before.apply([udpSvc, udpSlice(['10.244.1.21', '10.244.2.22'])].join('\n---\n'));
    const picked = send(before, '10.96.0.10', 53, 40);
    expect(picked.size).toBe(2);
    const after = await Dataplane.create({ nodeIPs: ['192.168.49.2'], podCIDR: '10.244.0.0/16', seed: 7 });
    expect(after.restore(before.snapshot())).toBe(40);
    const r = after.apply([udpSvc, udpSlice(['10.244.2.22'])].join('\n---\n'));
    expect(r.flushed).toBe(picked.get('10.244.1.21'));
    expect(after.conntrack().map((e) => e.reply.src)).toEqual(Array(picked.get('10.244.2.22')).fill('10.244.2.22'));
    // The same clients go on to the endpoint that is left.
    expect([...send(after, '10.96.0.10', 53, 40).keys()]).toEqual(['10.244.2.22']);
  });

  it('flows that started before their Service had rules are deleted once it has endpoints: ClusterIP, load-balancer IP and NodePort', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['192.168.49.2'], podCIDR: '10.244.0.0/16', seed: 6 });
    // kube-proxy's rules, but no Service yet: the datagrams go where they are addressed,
    // untranslated (to the node itself for the NodePort).
    expect(dp.apply('').issues).toEqual([]);
    expect([...send(dp, '10.96.0.10', 53, 3).keys()]).toEqual(['10.96.0.10']);
    expect([...send(dp, '198.18.7.7', 53, 3, 21000).keys()]).toEqual(['198.18.7.7']);
    expect([...send(dp, '192.168.49.2', 30053, 3, 22000).keys()]).toEqual(['192.168.49.2']);
    expect(dp.conntrack()).toHaveLength(9);
    const lb = udpSvc.replace('spec:\n', 'spec:\n  type: LoadBalancer\n').replace('targetPort: 53 }', 'targetPort: 53, nodePort: 30053 }')
      + 'status: { loadBalancer: { ingress: [{ ip: 198.18.7.7 }] } }\n';
    const r = dp.apply([lb, udpSlice(['10.244.1.21'])].join('\n---\n'));
    expect(r.issues).toEqual([]);
    expect(r.flushed).toBe(9);
    expect([...send(dp, '10.96.0.10', 53, 3).keys()]).toEqual(['10.244.1.21']);
    expect([...send(dp, '198.18.7.7', 53, 3, 21000).keys()]).toEqual(['10.244.1.21']);
    expect([...send(dp, '192.168.49.2', 30053, 3, 22000).keys()]).toEqual(['10.244.1.21']);
  });

  it('an endpoint leaving one UDP Service keeps its flows through another Service it still serves', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['192.168.49.2'], podCIDR: '10.244.0.0/16', seed: 6 });
    const other = udpSvc.replace('name: dns,', 'name: dns2,').replace('10.96.0.10', '10.96.0.11');
    const otherSlice = (ips: string[]) => udpSlice(ips).replace('name: dns-1', 'name: dns2-1').replace('service-name: dns }', 'service-name: dns2 }');
    dp.apply([udpSvc, udpSlice(['10.244.1.21', '10.244.2.22']), other, otherSlice(['10.244.1.21'])].join('\n---\n'));
    const picked = send(dp, '10.96.0.10', 53, 30);
    expect(send(dp, '10.96.0.11', 53, 10, 21000)).toEqual(new Map([['10.244.1.21', 10]]));
    const r = dp.apply([udpSvc, udpSlice(['10.244.2.22']), other, otherSlice(['10.244.1.21'])].join('\n---\n'));
    expect(r.flushed).toBe(picked.get('10.244.1.21'));
    const left = dp.conntrack().filter((e) => e.reply.src === '10.244.1.21');
    expect(left).toHaveLength(10);
    expect(left.every((e) => e.original.dst === '10.96.0.11')).toBe(true);
  });

  it('a UDP Service that gains an external IP deletes the flows that went to that address untranslated', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['192.168.49.2'], podCIDR: '10.244.0.0/16', seed: 6 });
    dp.apply([udpSvc, udpSlice(['10.244.1.21'])].join('\n---\n'));
    expect([...send(dp, '198.18.9.9', 53, 4).keys()]).toEqual(['198.18.9.9']);
    expect([...send(dp, '10.96.0.10', 53, 4, 21000).keys()]).toEqual(['10.244.1.21']);
    const r = dp.apply([`${udpSvc}  externalIPs: [198.18.9.9]\n`, udpSlice(['10.244.1.21'])].join('\n---\n'));
    expect(r.flushed).toBe(4);
    expect(dp.conntrack().every((e) => e.reply.src === '10.244.1.21')).toBe(true);
    expect([...send(dp, '198.18.9.9', 53, 4).keys()]).toEqual(['10.244.1.21']);
  });

  it('two UDP ports of one address with different endpoints keep each other\'s flows through a full sync', async () => {
    const two = udpSvc.replace('ports: [{ name: dns, port: 53, protocol: UDP, targetPort: 53 }]',
      'ports: [{ name: dns, port: 53, protocol: UDP, targetPort: 53 }, { name: mdns, port: 5353, protocol: UDP, targetPort: 5353 }]');
    const mdns = `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: dns-2, namespace: kube-system, labels: { kubernetes.io/service-name: dns } }
addressType: IPv4
ports: [{ name: mdns, port: 5353, protocol: UDP }]
endpoints: [{ addresses: [10.244.2.22], conditions: { ready: true } }]
`;
    const objects = [two, udpSlice(['10.244.1.21']), mdns].join('\n---\n');
    const before = await Dataplane.create({ nodeIPs: ['192.168.49.2'], podCIDR: '10.244.0.0/16', seed: 6 });
    before.apply(objects);
    expect([...send(before, '10.96.0.10', 53, 5).keys()]).toEqual(['10.244.1.21']);
    expect([...send(before, '10.96.0.10', 5353, 5, 21000).keys()]).toEqual(['10.244.2.22']);
    const after = await Dataplane.create({ nodeIPs: ['192.168.49.2'], podCIDR: '10.244.0.0/16', seed: 7 });
    after.restore(before.snapshot());
    expect(after.apply(objects).flushed).toBe(0);
    expect(after.conntrack()).toHaveLength(10);
  });

  it('an endpoint that moves to another port loses the flows pinned to its old port', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['192.168.49.2'], podCIDR: '10.244.0.0/16', seed: 6 });
    dp.apply([udpSvc, udpSlice(['10.244.1.21'])].join('\n---\n'));
    send(dp, '10.96.0.10', 53, 5);
    const r = dp.apply([udpSvc, udpSlice(['10.244.1.21']).replace('port: 53, protocol: UDP', 'port: 5353, protocol: UDP')].join('\n---\n'));
    expect(r.flushed).toBe(5);
    const again = dp.process(buildPacket({ src: '10.244.3.3', dst: '10.96.0.10', proto: 'udp', sport: 20000, dport: 53, payload: 'q' }), 1);
    expect(decodePacket(again.packet!).dport).toBe(5353);
  });

  it('every sync, in every mode, reports each family\'s reconcile and its time (kube-proxy observes CleanStaleEntries after each sync)', async () => {
    for (const mode of ['iptables', 'ipvs', 'direct'] as const) {
      const dp = await Dataplane.create({ nodeIPs: ['192.168.49.2'], podCIDR: '10.244.0.0/16', seed: 6 });
      const first = dp.apply([udpSvc, udpSlice(['10.244.1.21', '10.244.2.22'])].join('\n---\n'), { mode });
      const picked = send(dp, '10.96.0.10', 53, 40);
      // A sync that changes nothing still reconciles (and is timed); one that drops an endpoint deletes its flows.
      const idle = dp.apply([udpSvc, udpSlice(['10.244.1.21', '10.244.2.22'])].join('\n---\n'), { mode });
      const gone = dp.apply([udpSvc, udpSlice(['10.244.2.22'])].join('\n---\n'), { mode });
      for (const r of [first, idle, gone]) {
        expect(r.families.map((f) => f.family), mode).toEqual([4, 6]);
        for (const f of r.families) {
          expect(typeof f.reconcileSeconds, mode).toBe('number');
          expect(f.reconcileSeconds!, mode).toBeGreaterThanOrEqual(0);
          expect(f.reconcileSeconds!, mode).toBeLessThan(5);
        }
      }
      expect(idle.families.map((f) => f.flushed), mode).toEqual([0, 0]);
      expect(gone.families.map((f) => f.flushed), mode).toEqual([picked.get('10.244.1.21'), 0]);
    }
  });

  it('reconciles IPv6 Services the same way', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['fd00:49::2'], podCIDR: 'fd00:244::/64', seed: 6 });
    const v6 = udpSvc.replace('10.96.0.10', 'fd00:96::10');
    const v6Slice = (ips: string[]) => udpSlice(ips).replace('IPv4', 'IPv6');
    dp.apply([v6, v6Slice(['fd00:244::21', 'fd00:244::22'])].join('\n---\n'));
    const picked = send(dp, 'fd00:96::10', 53, 40, 20000, 'fd00:244::3');
    expect(picked.size).toBe(2);
    const r = dp.apply([v6, v6Slice(['fd00:244::22'])].join('\n---\n'));
    expect(r.flushed).toBe(picked.get('fd00:244::21'));
    expect(r.families.map((f) => [f.family, f.flushed])).toEqual([[4, 0], [6, picked.get('fd00:244::21')]]);
    expect(dp.conntrack().every((e) => e.reply.src === 'fd00:244::22')).toBe(true);
  });
});
