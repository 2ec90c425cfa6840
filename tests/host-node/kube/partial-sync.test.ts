// Partial sync, replayed from kube-proxy's TestSyncProxyRulesRepeated (v1.28 era): the same
// Service/EndpointSlice events go through ProxyState and the renderer, and each payload must equal
// the one kube-proxy's test expects (fixtures/partial/TestSyncProxyRulesRepeated.txt). The nat
// table's chains are tracked across restores (--noflush) so stale chains get "-X" as they do there.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseManifests, ProxyState, renderIptables, type EndpointSlice, type IptablesOptions, type Service, type SharedChains } from '../../../host-node/kube/index.js';
import { parseRestore, renderSave, Ruleset } from '../../../host-node/netfilter/index.js';
import { FIXTURES } from './fixture.js';
import { parseDump, sortRestoreText } from './sort-rules.js';

const OPTS: IptablesOptions = {
  era: 'v1.28',
  nodeName: 'test-hostname',
  nodeIPs: ['192.168.0.2'],
  localDetector: { mode: 'cidr', cidr: '10.0.0.0/8' },
  masqueradeMark: '0x4000',
};

function svc(ns: string, name: string, ip: string, portName: string, port: number): Service {
  const set = parseManifests(`kind: Service
metadata: {name: ${name}, namespace: ${ns}}
spec: {type: ClusterIP, clusterIP: ${ip}, ports: [{name: ${portName}, port: ${port}, protocol: TCP}]}`);
  return set.services[0]!;
}

function slice(ns: string, name: string, ips: string[], portName: string, port: number): EndpointSlice {
  const set = parseManifests(`kind: EndpointSlice
metadata: {name: ${name}-1, namespace: ${ns}, labels: {kubernetes.io/service-name: ${name}}}
addressType: IPv4
endpoints: [${ips.map((ip) => `{addresses: [${ip}]}`).join(', ')}]
ports: [{name: ${portName}, port: ${port}, protocol: TCP}]`);
  return set.endpointSlices[0]!;
}

const expected = readFileSync(new URL('partial/TestSyncProxyRulesRepeated.txt', FIXTURES), 'utf8')
  .split(/^### .*\n/m)
  .slice(1);

describe('partial sync (TestSyncProxyRulesRepeated)', () => {
  it('writes only changed services and deletes stale chains, step by step', () => {
    const state = new ProxyState({ nodeName: 'test-hostname', families: [4] });
    const natChains = new Set<string>();
    const sync = (): string => {
      const [plan] = state.sync();
      const r = renderIptables(plan!.model, OPTS, { changedServices: plan!.changedServices, existingNatChains: natChains });
      // iptables-restore --noflush: declared chains exist afterwards, -X ones are gone.
      const nat = parseDump(r.text).find((t) => t.name === 'nat')!;
      for (const c of nat.chains) (c.deleted ? natChains.delete(c.name) : natChains.add(c.name));
      return sortRestoreText(r.text);
    };
    expect(expected).toHaveLength(8);

    const svc2 = svc('ns2', 'svc2', '172.30.0.42', 'p8080', 8080);
    state.onService(null, svc('ns1', 'svc1', '172.30.0.41', 'p80', 80));
    state.onService(null, svc2);
    state.onEndpointSlice(slice('ns1', 'svc1', ['10.0.1.1'], 'p80', 80));
    state.onEndpointSlice(slice('ns2', 'svc2', ['10.0.2.1'], 'p8080', 8080));
    // No sync before both initial lists have been seen.
    expect(state.sync()).toEqual([]);
    state.markServicesSynced();
    state.markEndpointSlicesSynced();
    expect(sync()).toBe(expected[0]);

    state.onService(null, svc('ns3', 'svc3', '172.30.0.43', 'p80', 80));
    const eps3 = slice('ns3', 'svc3', ['10.0.3.1'], 'p80', 80);
    expect(state.onEndpointSlice(eps3)).toBe(true);
    expect(sync()).toBe(expected[1]);

    state.onService(svc2, null);
    expect(sync()).toBe(expected[2]);

    const svc4 = svc('ns4', 'svc4', '172.30.0.44', 'p80', 80);
    state.onService(null, svc4);
    expect(sync()).toBe(expected[3]);

    state.onEndpointSlice(slice('ns4', 'svc4', ['10.0.4.1'], 'p80', 80));
    expect(sync()).toBe(expected[4]);

    const eps3update = slice('ns3', 'svc3', ['10.0.3.2'], 'p80', 80);
    state.onEndpointSlice(eps3update);
    expect(sync()).toBe(expected[5]);

    state.onEndpointSlice(slice('ns3', 'svc3', ['10.0.3.2', '10.0.3.3'], 'p80', 80));
    expect(sync()).toBe(expected[6]);

    expect(sync()).toBe(expected[7]);
  });

  it('a forced full resync rewrites every service chain', () => {
    const state = new ProxyState({ nodeName: 'test-hostname', families: [4] });
    state.markServicesSynced();
    state.markEndpointSlicesSynced();
    state.onService(null, svc('ns1', 'svc1', '172.30.0.41', 'p80', 80));
    state.onEndpointSlice(slice('ns1', 'svc1', ['10.0.1.1'], 'p80', 80));
    expect(state.sync()[0]!.changedServices).toBeNull(); // first sync is full
    const quiet = state.sync()[0]!;
    expect(quiet.changedServices).toEqual(new Set());
    expect(renderIptables(quiet.model, OPTS, { changedServices: quiet.changedServices }).text).not.toContain('KUBE-SEP-');
    state.requestFullSync();
    const again = state.sync()[0]!;
    expect(again.changedServices).toBeNull();
    expect(renderIptables(again.model, OPTS, { changedServices: again.changedServices }).text).toContain(':KUBE-SEP-SNQ3ZNILQDEJNDQO - [0:0]');
  });

  it('writes an unchanged Service\'s shared-chain lines exactly as a full render does, whatever the options', () => {
    const state = new ProxyState({ nodeName: 'a', families: [4] });
    state.markServicesSynced();
    state.markEndpointSlicesSynced();
    const objects = parseManifests(`kind: Service
metadata: {name: loc, namespace: ns1}
spec: {type: NodePort, clusterIP: 172.30.0.50, internalTrafficPolicy: Local, externalTrafficPolicy: Local, ports: [{name: p80, port: 80, protocol: TCP, nodePort: 30050}]}
---
kind: EndpointSlice
metadata: {name: loc-1, namespace: ns1, labels: {kubernetes.io/service-name: loc}}
addressType: IPv4
endpoints: [{addresses: [10.0.1.5], nodeName: a, zone: z1, hints: {forZones: [{name: z1}]}}, {addresses: [10.0.2.5], nodeName: b, zone: z2, hints: {forZones: [{name: z2}]}}]
ports: [{name: p80, port: 80, protocol: TCP}]`);
    state.onService(null, objects.services[0]!);
    state.onEndpointSlice(objects.endpointSlices[0]!);
    state.onService(null, svc('ns1', 'other', '172.30.0.51', 'p80', 80));
    state.onEndpointSlice(slice('ns1', 'other', ['10.0.1.9'], 'p80', 80));
    const shared = (text: string) => text.split('\n').filter((l) => /^-A KUBE-(SERVICES|NODEPORTS|EXTERNAL-SERVICES|PROXY-FIREWALL) /.test(l));
    const first = state.sync()[0]!;
    renderIptables(first.model, OPTS, { changedServices: first.changedServices });
    const variants: IptablesOptions[] = [
      OPTS, { ...OPTS, nodeName: 'b' }, { ...OPTS, era: 'current' }, { ...OPTS, topologyLabels: { 'topology.kubernetes.io/zone': 'z2' } },
      { ...OPTS, era: 'current', nodePortAddresses: ['127.0.0.0/8', '192.168.0.0/16'] }, OPTS,
    ];
    const seen = new Set<string>();
    for (const o of variants) {
      const quiet = state.sync()[0]!;
      expect(quiet.changedServices).toEqual(new Set());
      const partial = shared(renderIptables(quiet.model, o, { changedServices: quiet.changedServices }).text);
      expect(partial).toEqual(shared(renderIptables(quiet.model, o, { changedServices: null }).text));
      seen.add(partial.join('\n'));
    }
    expect(seen.size).toBeGreaterThan(2); // the options really change these lines
  });

  it('liveText leaves out unchanged shared chains and gives the same rules as kube-proxy\'s text', () => {
    const state = new ProxyState({ nodeName: 'a', families: [4] });
    state.markServicesSynced();
    state.markEndpointSlicesSynced();
    const restore = (base: Ruleset, text: string): Ruleset => {
      const r = parseRestore(text, { base, noflush: true });
      if (!r.ok) throw new Error(r.error.message);
      return r.ruleset;
    };
    let viaText = Ruleset.empty(4);
    let viaLive = Ruleset.empty(4);
    let previous: SharedChains | undefined;
    const natChains = new Set<string>();
    const sizes: Array<[number, number]> = [];
    const step = (o: IptablesOptions = OPTS): string => {
      const [plan] = state.sync();
      const r = renderIptables(plan!.model, o, {
        changedServices: plan!.changedServices, existingNatChains: natChains, cleanupStaleChains: true, ...(previous ? { previous } : {}),
      });
      viaText = restore(viaText, r.text);
      viaLive = restore(viaLive, r.liveText);
      expect(renderSave(viaLive)).toBe(renderSave(viaText));
      previous = r.shared;
      natChains.clear();
      for (const c of viaText.table('nat')!.chains()) natChains.add(c.name);
      sizes.push([r.text.length, r.liveText.length]);
      return r.liveText;
    };
    const svc3 = svc('ns3', 'svc3', '172.30.0.43', 'p80', 80);
    for (let i = 1; i <= 3; i++) state.onService(null, svc(`ns${i}`, `svc${i}`, `172.30.0.4${i}`, 'p80', 80));
    state.onEndpointSlice(slice('ns1', 'svc1', ['10.0.1.1'], 'p80', 80));
    state.onEndpointSlice(slice('ns2', 'svc2', ['10.0.2.1', '10.0.2.2'], 'p80', 80));
    expect(step()).toContain('-A KUBE-SERVICES'); // full: kube-proxy's text
    // Endpoints move: KUBE-SERVICES and the filter table stay as they are.
    state.onEndpointSlice(slice('ns2', 'svc2', ['10.0.2.1', '10.0.2.3'], 'p80', 80));
    let live = step();
    expect(live).not.toContain('KUBE-SERVICES');
    expect(live).not.toContain('*filter');
    expect(live).toContain('10.0.2.3:80');
    // svc3 gets endpoints: its REJECT in filter goes, its KUBE-SERVICES jump comes.
    state.onEndpointSlice(slice('ns3', 'svc3', ['10.0.3.1'], 'p80', 80));
    live = step();
    expect(live).toContain('*filter');
    expect(live).toContain('-A KUBE-SERVICES -m comment --comment "ns3/svc3:p80 cluster IP"');
    // A Service goes: its chains are deleted, the shared chains rewritten.
    state.onService(svc3, null);
    expect(step()).toContain('-X KUBE-SEP-');
    // Nothing changed; then options that change only shared lines: the filter table's, the nat table's.
    expect(step()).toBe('');
    const current: IptablesOptions = { ...OPTS, era: 'current' };
    live = step(current);
    expect(live).toContain('*filter');
    expect(live).not.toContain('*nat');
    live = step({ ...current, masqueradeMark: '0x8000' });
    expect(live).toContain('-A KUBE-MARK-MASQ -j MARK --or-mark 0x8000');
    expect(live).toContain('-A KUBE-SERVICES');
    state.onEndpointSlice(slice('ns1', 'svc1', ['10.0.1.7'], 'p80', 80));
    live = step({ ...current, masqueradeMark: '0x8000' });
    expect(live).not.toContain('KUBE-SERVICES');
    expect(sizes.at(-1)![1]).toBeLessThan(sizes.at(-1)![0]);
  });

  it('in large-cluster mode renders only the changed Services when the shared chains stay, with the same results', () => {
    const state = new ProxyState({ nodeName: 'a', families: [4] });
    state.markServicesSynced();
    state.markEndpointSlicesSynced();
    const N = 50;
    for (let i = 0; i < N; i++) {
      state.onService(null, svc('ns', `s${i}`, `172.30.1.${i}`, 'p80', 80));
      state.onEndpointSlice(slice('ns', `s${i}`, [`10.1.${i}.1`, `10.1.${i}.2`], 'p80', 80));
    }
    const large: IptablesOptions = { ...OPTS, era: 'current', largeClusterEndpointsThreshold: 10 };
    let viaText = Ruleset.empty(4);
    let viaLive = Ruleset.empty(4);
    let previous: SharedChains | undefined;
    const step = (): { live: string; reads: number } => {
      const [plan] = state.sync();
      // Count the model's endpoint lookups: a render of every Service reads each one at least once.
      const eps = plan!.model.endpoints;
      let reads = 0;
      const get = eps.get.bind(eps);
      eps.get = (k) => { reads++; return get(k); };
      const r = renderIptables(plan!.model, large, { changedServices: plan!.changedServices, ...(previous ? { previous } : {}) });
      const live = r.liveText;
      const n = reads;
      eps.get = get;
      const whole = renderIptables(plan!.model, large, { changedServices: plan!.changedServices });
      expect(r.text).toBe(whole.text);
      expect([r.natRules, r.filterRules, r.largeClusterMode]).toEqual([whole.natRules, whole.filterRules, whole.largeClusterMode]);
      expect([...r.activeNatChains].sort()).toEqual([...whole.activeNatChains].sort());
      const restore = (base: Ruleset, text: string): Ruleset => {
        const res = parseRestore(text, { base, noflush: true });
        if (!res.ok) throw new Error(res.error.message);
        return res.ruleset;
      };
      viaText = restore(viaText, r.text);
      viaLive = restore(viaLive, live);
      expect(renderSave(viaLive)).toBe(renderSave(viaText));
      previous = r.shared;
      return { live, reads: n };
    };
    expect(step().reads).toBeGreaterThanOrEqual(N);   // full
    // One Service's endpoints move: only it is rendered.
    state.onEndpointSlice(slice('ns', 's7', ['10.1.7.1', '10.1.7.9'], 'p80', 80));
    let r = step();
    expect(r.reads).toBeLessThan(N / 5);
    expect(r.live).toContain('10.1.7.9:80');
    expect(r.live).not.toContain('KUBE-SERVICES');
    // Two more, then one losing every endpoint (its KUBE-SERVICES line goes: every Service again).
    state.onEndpointSlice(slice('ns', 's3', ['10.1.3.5'], 'p80', 80));
    state.onEndpointSlice(slice('ns', 's4', ['10.1.4.5', '10.1.4.6', '10.1.4.7'], 'p80', 80));
    expect(step().reads).toBeLessThan(N / 5);
    state.onEndpointSlice(slice('ns', 's5', [], 'p80', 80));
    r = step();
    expect(r.reads).toBeGreaterThanOrEqual(N);
    expect(r.live).toContain('*filter');
    // Endpoints back: the REJECT goes again.
    state.onEndpointSlice(slice('ns', 's5', ['10.1.5.1'], 'p80', 80));
    expect(step().live).toContain('-A KUBE-SERVICES');
    state.onEndpointSlice(slice('ns', 's5', ['10.1.5.2'], 'p80', 80));
    expect(step().reads).toBeLessThan(N / 5);
  });
});
