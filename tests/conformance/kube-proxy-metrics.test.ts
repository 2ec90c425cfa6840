// kube-proxy's metric tests of its iptables mode (pkg/proxy/iptables/proxier_test.go,
// kairosci/kubernetes @ 235e4894, Apache-2.0; kube-proxy-metrics/README.md): the objects of each
// test through the node proxy's own sync path (ProxyObjects.sync over a Dataplane in iptables mode,
// with the Go fake proxier's node, addresses and detector), and the figures the proxy exports read
// off what that sync returns: kubeproxy_sync_proxy_rules_iptables_total and _last{table} from each
// family's rule counts, kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy} from the host
// view, kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total from a refused sync's
// error, and whether each sync was full or partial as kube-proxy's was.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Dataplane, type ApplyFailure, type ApplyOptions } from '../../host-node/index.js';
import { ProxyObjects } from '../../host-node/io/proxy-sink.js';
import { loadObjects, namespacedName, type EndpointSlice, type Service } from '../../host-node/kube/index.js';

const DIR = join(import.meta.dirname, 'kube-proxy-metrics');
const read = <T>(name: string): T => JSON.parse(readFileSync(join(DIR, `${name}.json`), 'utf8')) as T;

// NewFakeProxier: its node, the addresses on its interfaces, its pod CIDR detector and mark.
const NODE = 'test-node';
const HOST_ADDRS = ['127.0.0.1', '192.168.0.2', '192.168.1.2', '192.168.99.11', '2001:db8::1', '2001:db8:1::2'];
const OPTS: ApplyOptions = {
  mode: 'iptables', nodeName: NODE,
  iptables: {
    era: 'current', nodeName: NODE, nodeIPs: ['192.168.0.2'], hostAddresses: HOST_ADDRS,
    localDetector: { mode: 'cidr', cidr: '10.0.0.0/8' }, masqueradeMark: '0x4000',
  },
};

type Expect = Record<string, number>;
interface Step { op: 'add' | 'update' | 'delete' | 'sync' | 'injectRule'; objects?: object[]; fullSync?: boolean; expect?: Expect; expectSyncFailure?: boolean; table?: string; chain?: string; rule?: string }

/** The proxy's sink after both initial lists (empty), as a started kube-proxy holds them. */
async function proxy(): Promise<{ o: ProxyObjects; dp: Dataplane }> {
  const dp = await Dataplane.create({ nodeIPs: HOST_ADDRS, seed: 7, conntrackCapacity: 256 });
  const o = new ProxyObjects(NODE);
  o.markServicesSynced();
  o.markEndpointSlicesSynced();
  return { o, dp };
}

/** Hands `raw` objects to the sink as informer events (the previous object of each as it was last given). */
function feed(o: ProxyObjects, op: 'add' | 'update' | 'delete', raw: object[]): void {
  const set = loadObjects(raw);
  expect(set.issues.filter((i) => i.severity === 'error')).toEqual([]);
  for (const s of set.services) {
    const was: Service | null = o.services.get(namespacedName(s.metadata)) ?? null;
    o.onService(was, op === 'delete' ? null : s);
  }
  for (const e of set.endpointSlices as EndpointSlice[]) o.onEndpointSlice(e, op === 'delete');
}

/** The metric values a sync's figures give, under kube-proxy's names and labels (IPv4 only here). */
function figures(f: { natRules: number; filterRules: number; natRulesWritten?: number }, noLocal?: { internal: number; external: number }): Expect {
  const out: Expect = {
    'kubeproxy_sync_proxy_rules_iptables_total{ip_family="IPv4",table="nat"}': f.natRules,
    'kubeproxy_sync_proxy_rules_iptables_total{ip_family="IPv4",table="filter"}': f.filterRules,
    'kubeproxy_sync_proxy_rules_iptables_last{ip_family="IPv4",table="nat"}': f.natRulesWritten!,
    'kubeproxy_sync_proxy_rules_iptables_last{ip_family="IPv4",table="filter"}': f.filterRules,
  };
  if (noLocal) {
    out['kubeproxy_sync_proxy_rules_no_local_endpoints_total{ip_family="IPv4",traffic_policy="internal"}'] = noLocal.internal;
    out['kubeproxy_sync_proxy_rules_no_local_endpoints_total{ip_family="IPv4",traffic_policy="external"}'] = noLocal.external;
  }
  return out;
}

const pick = (got: Expect, want: Expect): Expect => Object.fromEntries(Object.keys(want).map((k) => [k, got[k]]));

const PARTIAL_FAILURES = 'kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total{ip_family="IPv4"}';

async function runSteps(steps: Step[]): Promise<void> {
  const { o, dp } = await proxy();
  // What the proxy counts from a refused sync's error (node-proxy.ts): restores, partial ones apart.
  let partialFailures = 0;
  for (const [k, s] of steps.entries()) {
    const at = `step ${k + 1} (${s.op})`;
    if (s.op === 'add' || s.op === 'update' || s.op === 'delete') { feed(o, s.op, s.objects ?? []); continue; }
    if (s.op === 'injectRule') {
      // Another program's rule in one of the proxy's chains (the Go test writes it into the fake).
      dp.iptablesRestore(`*${s.table}\n-A ${s.chain} ${s.rule}\nCOMMIT\n`, { noflush: true });
      continue;
    }
    if (s.expectSyncFailure) {
      let failed: ApplyFailure | undefined;
      try { o.sync(dp, OPTS); } catch (e) { failed = e as ApplyFailure; }
      expect(failed, `${at}: the sync is refused`).toBeDefined();
      expect({ family: failed!.restoreFamily, partial: failed!.partialRestore }, at).toEqual({ family: 4, partial: true });
      partialFailures++;
      expect(pick({ [PARTIAL_FAILURES]: partialFailures }, s.expect ?? {}), at).toEqual(s.expect);
      continue;
    }
    const { result } = o.sync(dp, OPTS);
    expect(result.issues, at).toEqual([]);
    const f = result.families.find((x) => x.family === 4)!;
    if (s.fullSync !== undefined) expect(f.full, `${at}: a full sync`).toBe(s.fullSync);
    const want = s.expect ?? {};
    expect(pick({ ...figures(f), [PARTIAL_FAILURES]: partialFailures }, want), at).toEqual(want);
  }
}

describe('kube-proxy iptables proxier metric tests', () => {
  for (const test of ['TestProxierMetricsIPTablesTotalRules', 'TestOverallIPTablesRules', 'TestSyncProxyRulesRepeated']) {
    it(test, () => runSteps(read<{ steps: Step[] }>(test).steps));
  }

  const noEndpoints = read<{ cases: Array<Step & { name: string }> }>('TestNoEndpointsMetric');
  for (const c of noEndpoints.cases) {
    it(`TestNoEndpointsMetric: ${c.name}`, async () => {
      const { o, dp } = await proxy();
      o.sync(dp, OPTS);
      feed(o, 'add', c.objects ?? []);
      const { result, view } = o.sync(dp, OPTS);
      expect(result.issues).toEqual([]);
      const want = c.expect ?? {};
      expect(pick(figures(result.families.find((x) => x.family === 4)!, view.noLocalEndpoints.IPv4), want)).toEqual(want);
    });
  }
});
