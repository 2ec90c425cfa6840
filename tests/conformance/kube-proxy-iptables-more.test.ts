// The rest of kube-proxy's iptables proxier tests (pkg/proxy/iptables/proxier_test.go,
// kairosci/kubernetes @ 235e4894, Apache-2.0; kube-proxy-iptables-more/README.md says which of its
// tests run where). Here: the rules it writes for odd inputs and settings — leading-zero IPs
// (TestBadIPs, its whole restore text in kube-proxy's test order), the INVALID-drop rule with and
// without conntrack's TCP liberal mode and nfacct (TestDropInvalidRule), LoadBalancer ingress by
// ipMode (TestLoadBalancerIngressRouteTypeProxy) — and the proxier-level tracker tests
// (TestBuildServiceMap*, TestUpdateEndpointsMap) through svcplane's trackers and model.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Dataplane } from '../../host-node/index.js';
import {
  EndpointsChangeTracker, loadObjects, ProxyModel, ProxyState, renderIptables, ServiceChangeTracker,
  type EndpointSlice, type IptablesOptions, type Service, type SharedChains,
} from '../../host-node/kube/index.js';
import { parseDump, sortRestoreText } from '../host-node/kube/sort-rules.js';

const DIR = join(import.meta.dirname, 'kube-proxy-iptables-more');
const read = <C>(test: string): { cases: C[] } => JSON.parse(readFileSync(join(DIR, `${test}.json`), 'utf8')) as { cases: C[] };

// NewFakeProxier: node, addresses, pod-CIDR detector, mark (as the flows suite has them).
const NODE = 'test-node';
const BASE: IptablesOptions = {
  era: 'current', nodeName: NODE, nodeIPs: ['192.168.0.2', '192.168.1.2', '192.168.99.11', '2001:db8::1', '2001:db8:1::2'],
  hostAddresses: ['127.0.0.1', '::1', '192.168.0.2', '192.168.1.2', '192.168.99.11', '2001:db8::1', '2001:db8:1::2'],
  localDetector: { mode: 'cidr', cidr: '10.0.0.0/8' }, masqueradeMark: '0x4000', nfacct: true,
};

function objects(raw: object[]): { services: Service[]; slices: EndpointSlice[] } {
  const set = loadObjects(raw);
  expect(set.issues.filter((i) => i.severity === 'error')).toEqual([]);
  return { services: set.services, slices: set.endpointSlices };
}

/** One full sync's restore text for these objects. */
function render(raw: object[], opts: IptablesOptions): string {
  const { services, slices } = objects(raw);
  const state = new ProxyState({ nodeName: NODE, families: [4] });
  for (const s of services) state.onService(null, s);
  for (const s of slices) state.onEndpointSlice(s);
  state.markServicesSynced();
  state.markEndpointSlicesSynced();
  const [plan] = state.sync();
  return renderIptables(plan!.model, opts, { changedServices: plan!.changedServices }).text;
}

interface Sync { op: 'add' | 'sync'; objects?: object[]; expect?: Record<string, unknown> }
const added = (steps: Sync[]): object[] => steps.flatMap((s) => (s.op === 'add' ? s.objects ?? [] : []));
const syncOf = (steps: Sync[]): Sync => steps.find((s) => s.op === 'sync')!;

describe('kube-proxy iptables proxier: rules for odd inputs and settings', () => {
  for (const c of read<{ name: string; steps: Sync[] }>('TestBadIPs').cases) {
    it(`TestBadIPs: ${c.name}`, () => {
      const want = (syncOf(c.steps).expect as { restoreText: { text: string } }).restoreText.text;
      expect(sortRestoreText(render(added(c.steps), BASE))).toBe(want);
    });
  }

  type DropCase = { name: string; proxierOverrides: { conntrackTCPLiberal: boolean; nfAcctCounters: Record<string, boolean> }; steps: Sync[] };
  for (const c of read<DropCase>('TestDropInvalidRule').cases) {
    it(`TestDropInvalidRule: ${c.name}`, () => {
      const o = c.proxierOverrides;
      const text = render([], { ...BASE, conntrackTCPLiberal: o.conntrackTCPLiberal, nfacct: o.nfAcctCounters.ct_state_invalid_dropped_pkts === true });
      const want = syncOf(c.steps).expect!.chainRules as { table: string; chain: string; rules: string[] };
      const chain = parseDump(text).find((t) => t.name === want.table)!.chains.find((ch) => ch.name === want.chain)!;
      expect(chain.rules).toEqual(want.rules);
    });
  }

  type LbCase = { name: string; steps: Sync[] };
  for (const c of read<LbCase>('TestLoadBalancerIngressRouteTypeProxy').cases) {
    it(`TestLoadBalancerIngressRouteTypeProxy: ${c.name}`, async () => {
      // After the restore, in the live nat table (the Go test reads the fake's state, not the text).
      const dp = await Dataplane.create({ nodeIPs: BASE.hostAddresses!, seed: 1, conntrackCapacity: 256 });
      expect(dp.apply(added(c.steps), { mode: 'iptables', nodeName: NODE, iptables: BASE }).issues).toEqual([]);
      const want = syncOf(c.steps).expect!.natChainHasRuleWithDestination as { chain: string; destination: string; present: boolean };
      const save = dp.iptablesSave();
      const nat = save.slice(save.indexOf('*nat\n'), save.indexOf('COMMIT', save.indexOf('*nat\n')));
      const rules = nat.split('\n').filter((l) => l.startsWith(`-A ${want.chain} `));
      expect(rules.length).toBeGreaterThan(0);
      const dests = rules.map((r) => /\s-d (\S+?)(?:\/32)?(?:\s|$)/.exec(r)?.[1]);
      expect(dests.includes(want.destination), `${want.destination} in ${want.chain}`).toBe(want.present);
    });
  }
});

// ---- the proxier-level tracker tests ----

interface SvcStep { op: 'add' | 'update' | 'delete' | 'updateServiceMap'; objects?: object[]; previous?: object; object?: object; expect?: { serviceMapSize: number; healthCheckNodePortsCount: number; healthCheckNodePorts?: Record<string, number> } }

describe('kube-proxy iptables proxier: service and endpoints maps', () => {
  for (const test of ['TestBuildServiceMapAddRemove', 'TestBuildServiceMapServiceHeadless', 'TestBuildServiceMapServiceTypeExternalName', 'TestBuildServiceMapServiceUpdate']) {
    for (const c of read<{ name: string; steps: SvcStep[] }>(test).cases) {
      it(`${test}: ${c.name}`, () => {
        const tracker = new ServiceChangeTracker(4);
        const model = new ProxyModel(4);
        const one = (raw: object): Service => objects([raw]).services[0]!;
        for (const s of c.steps) {
          if (s.op === 'add') for (const svc of objects(s.objects!).services) tracker.update(null, svc);
          else if (s.op === 'delete') for (const svc of objects(s.objects!).services) tracker.update(svc, null);
          else if (s.op === 'update') tracker.update(one(s.previous!), one(s.object!));
          else {
            tracker.take().applyTo(model);
            const hc: Record<string, number> = {};
            for (const sp of model.services.values()) if (sp.healthCheckNodePort !== 0) hc[sp.namespacedName] = sp.healthCheckNodePort;
            expect(model.services.size).toBe(s.expect!.serviceMapSize);
            expect(Object.keys(hc)).toHaveLength(s.expect!.healthCheckNodePortsCount);
            if (s.expect!.healthCheckNodePorts) expect(hc).toEqual(s.expect!.healthCheckNodePorts);
          }
        }
      });
    }
  }

  type Ep = { endpoint: string; isLocal: boolean };
  interface EpCase { name: string; previous: Array<object | null>; current: Array<object | null>; expectOld: Record<string, Ep[]>; expectResult: Record<string, Ep[]> }
  const view = (m: ReadonlyMap<string, ReadonlyArray<{ endpoint: string; isLocal: boolean }>>): Record<string, Ep[]> =>
    Object.fromEntries([...m].map(([id, list]) => [id, list.map((e) => ({ endpoint: e.endpoint, isLocal: e.isLocal }))]));
  for (const c of read<EpCase>('TestUpdateEndpointsMap').cases) {
    it(`TestUpdateEndpointsMap: ${c.name}`, () => {
      const tracker = new EndpointsChangeTracker(4, NODE);
      const model = new ProxyModel(4);
      const slice = (raw: object): EndpointSlice => objects([raw]).slices[0]!;
      // A slice without an address type (the Go test's bare one) is one the IPv4 tracker ignores.
      const update = (raw: object | null | undefined, remove: boolean): void => { if (raw && 'addressType' in raw) tracker.update(slice(raw), remove); };
      for (const raw of c.previous) update(raw, false);
      tracker.take().applyTo(model);
      expect(view(model.endpoints), 'after the first update').toEqual(c.expectOld);
      c.previous.forEach((prev, i) => {
        const cur = c.current[i];
        if (cur) update(cur, false);
        else update(prev, true);
      });
      tracker.take().applyTo(model);
      expect(view(model.endpoints), 'after the second update').toEqual(c.expectResult);
    });
  }
});

// ---- TestSyncProxyRulesLargeClusterMode: above 1,000 endpoints, no comments on KUBE-SEP rules and
// stale chains deleted at most once per syncPeriod (a manual clock stands for the proxier's) ----

interface LargeStep {
  op: 'add' | 'delete' | 'sync' | 'forceSync' | 'setLastIPTablesCleanup';
  objects?: object[]; value?: 'now' | 'now - syncPeriod - 1ns'; fullSync?: boolean;
  expect?: {
    sepDnatLines: { match: string; count: number; commentedCount?: number; lastMatchingLine?: string };
    restoreTextContains?: string[]; restoreTextNotContains?: string[];
  };
}

describe('kube-proxy iptables proxier: TestSyncProxyRulesLargeClusterMode', () => {
  for (const c of read<{ name: string; proxierOverrides: { masqueradeAll: boolean }; steps: LargeStep[] }>('TestSyncProxyRulesLargeClusterMode').cases) {
    it(c.name, () => {
      const SYNC_PERIOD = 30_000;
      const now = 1_000_000;
      let lastCleanup = 0;
      const opts: IptablesOptions = { ...BASE, masqueradeAll: c.proxierOverrides.masqueradeAll };
      const state = new ProxyState({ nodeName: NODE, families: [4] });
      state.markServicesSynced();
      state.markEndpointSlicesSynced();
      const natChains = new Set<string>();
      let previous: SharedChains | undefined;
      for (const [k, s] of c.steps.entries()) {
        const at = `step ${k + 1} (${s.op})`;
        if (s.op === 'add' || s.op === 'delete') {
          const { services, slices } = objects(s.objects!);
          for (const svc of services) state.onService(s.op === 'add' ? null : svc, s.op === 'add' ? svc : null);
          for (const sl of slices) state.onEndpointSlice(sl, s.op === 'delete');
          continue;
        }
        if (s.op === 'setLastIPTablesCleanup') {
          lastCleanup = s.value === 'now' ? now : now - SYNC_PERIOD - 1;
          continue;
        }
        if (s.op === 'forceSync') state.requestFullSync();
        const [plan] = state.sync();
        const due = now - lastCleanup > SYNC_PERIOD;
        const r = renderIptables(plan!.model, opts, { changedServices: plan!.changedServices, existingNatChains: natChains, cleanupStaleChains: due, ...(previous ? { previous } : {}) });
        // kube-proxy stamps the cleanup when it ran the stale-chain pass (always outside large-cluster mode).
        if (!r.largeClusterMode || due) lastCleanup = now;
        previous = r.shared;
        const text = r.text;
        for (const t of parseDump(text).filter((x) => x.name === 'nat')) for (const ch of t.chains) (ch.deleted ? natChains.delete(ch.name) : natChains.add(ch.name));
        if (s.fullSync !== undefined) expect(r.full, `${at}: a full sync`).toBe(s.fullSync);
        const e = s.expect!;
        const seps = text.split('\n').filter((l) => l.startsWith('-A KUBE-SEP-') && l.includes('-j DNAT'));
        expect(seps.length, `${at}: KUBE-SEP DNAT rules`).toBe(e.sepDnatLines.count);
        if (e.sepDnatLines.commentedCount !== undefined) expect(seps.filter((l) => l.includes('--comment')).length, `${at}: commented`).toBe(e.sepDnatLines.commentedCount);
        if (e.sepDnatLines.lastMatchingLine !== undefined) expect(seps.filter((l) => l.includes(e.sepDnatLines.match)).at(-1) ?? '', at).toBe(e.sepDnatLines.lastMatchingLine);
        for (const t of e.restoreTextContains ?? []) expect(text, at).toContain(t);
        for (const t of e.restoreTextNotContains ?? []) expect(text, at).not.toContain(t);
      }
    });
  }
});
