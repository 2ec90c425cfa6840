// manifests.test.ts — the benchmark's grown cluster: exactly N Services, each with a slice of both
// backends, distinct ClusterIPs inside FILL_CIDR for the fillers, the test cluster's own Services
// and the bulk Service among them. Pure: no namespaces, no root.
import { describe, expect, it } from 'vitest';
import { scaleManifests, clusterManifests, BULK, VIP } from './manifests.js';
import { BACKENDS } from './cluster.js';

const count = (yaml: string, re: RegExp): number => (yaml.match(re) ?? []).length;

describe('scaleManifests', () => {
  it('grows the test cluster to exactly N Services, each with a slice on both backends', () => {
    const yaml = scaleManifests(10_000);
    expect(count(yaml, /^kind: Service$/gm)).toBe(10_000);
    expect(count(yaml, /^kind: EndpointSlice$/gm)).toBe(10_000);
    expect(yaml.startsWith(clusterManifests())).toBe(true);
    expect(yaml).toContain(`"clusterIP":"${BULK.vip}"`);
    expect(yaml).toContain(`"clusterIP":"${VIP.web}"`);
    const fill = [...yaml.matchAll(/name: fill-\d+, namespace: default\}\nspec: \{"clusterIP":"([\d.]+)"/g)].map((m) => m[1]!);
    expect(fill.length).toBeGreaterThan(9_980);
    expect(new Set(fill).size).toBe(fill.length);
    for (const ip of fill) expect(ip).toMatch(/^198\.19\.([0-9]|[1-5][0-9]|6[0-3])\.\d+$/);
    const last = yaml.slice(yaml.lastIndexOf('kind: EndpointSlice'));
    for (const b of BACKENDS) expect(last).toContain(`"${b.ip}"`);
  });

  it('adds no fillers when the cluster already has N Services, and refuses more than FILL_CIDR holds', () => {
    const small = scaleManifests(1);
    expect(count(small, /name: fill-/g)).toBe(0);
    expect(() => scaleManifests(20_000)).toThrow(/do not fit/);
  });
});
