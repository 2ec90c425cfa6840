// kube-proxy's pkg/proxy/util tests (nodeport_addresses_test.go and utils_test.go,
// kubernetes/kubernetes, Apache-2.0; commits in kube-proxy-util/README.md) replayed through
// svcplane's counterparts: --nodeport-addresses per family (NewNodePortAddresses, MatchAll,
// ContainsIPv4Loopback, GetNodeIPs over the test's fake interfaces), which Services are proxied
// (ShouldSkipService) and a Service's cluster IP per family (GetClusterIPByFamily).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { clusterIPForFamily, loadObjects, nodeIPs, nodePortAddresses, proxiedClusterIP, type Family, type Service } from '../../host-node/kube/index.js';

const DIR = join(import.meta.dirname, 'kube-proxy-util');
interface Case<I, E> { name: string; input: I; expect: E }
const cases = <I, E>(test: string): Array<Case<I, E>> => (JSON.parse(readFileSync(join(DIR, `${test}.json`), 'utf8')) as { cases: Array<Case<I, E>> }).cases;

/**
 * The Service as svcplane reads it. GetClusterIPByFamily's Go Services have no metadata, which
 * the reader needs (a name): the harness names them; the function under test never reads it.
 */
function service(raw: { metadata?: object }): Service {
  const set = loadObjects([{ ...raw, metadata: raw.metadata ?? { name: 'unnamed', namespace: 'default' } }]);
  expect(set.issues.filter((i) => i.severity === 'error')).toEqual([]);
  return set.services[0]!;
}

describe('kube-proxy nodeport_addresses_test.go', () => {
  type In = { family: Family; cidrs: string[]; interfaces?: Array<{ addrs: string[] }> };
  for (const c of cases<In, { matchAll: boolean; nodeIPs: string[]; error: boolean }>('TestGetNodeIPs')) {
    it(`TestGetNodeIPs: ${c.name}`, () => {
      const npa = nodePortAddresses(c.input.cidrs, c.input.family, null);
      expect(npa.matchAll).toBe(c.expect.matchAll);
      const host = c.input.interfaces!.flatMap((i) => i.addrs.map((a) => a.split('/')[0]!));
      expect(nodeIPs(npa, host).sort()).toEqual([...c.expect.nodeIPs].sort());
    });
  }
  for (const c of cases<In, { containsIPv4Loopback: boolean }>('TestContainsIPv4Loopback')) {
    it(`TestContainsIPv4Loopback: ${c.name}`, () => {
      expect(nodePortAddresses(c.input.cidrs, c.input.family, null).containsIPv4Loopback).toBe(c.expect.containsIPv4Loopback);
    });
  }
});

describe('kube-proxy utils_test.go', () => {
  for (const c of cases<{ service: { metadata?: object } }, { skip: boolean }>('TestShouldSkipService')) {
    it(`TestShouldSkipService: ${c.name}`, () => {
      const svc = service(c.input.service);
      // Skipped = proxied in neither family (the cluster IP's own family decides the other).
      const proxied = proxiedClusterIP(svc, 4) !== null || proxiedClusterIP(svc, 6) !== null;
      expect(!proxied).toBe(c.expect.skip);
    });
  }
  for (const c of cases<{ family: Family; service: { metadata?: object } }, { clusterIP: string }>('TestGetClusterIPByFamily')) {
    it(`TestGetClusterIPByFamily: ${c.name}`, () => {
      expect(clusterIPForFamily(service(c.input.service), c.input.family)).toBe(c.expect.clusterIP);
    });
  }
});
