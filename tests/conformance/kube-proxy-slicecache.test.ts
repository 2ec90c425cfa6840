// kube-proxy's EndpointSliceCache tests (pkg/proxy/endpointslicecache_test.go, kubernetes/kubernetes
// @ 05e14799, Apache-2.0) replayed through svcplane's EndpointsChangeTracker, which holds the
// slices as kube-proxy's cache does: the data in kube-proxy-slicecache/ (README.md there). Slices
// go in by name in the test's order; the endpoints a Service's slices give are read off the
// tracker's change for it, and "esDataChanged" is whether the tracker takes an update as a change.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EndpointsChangeTracker, loadObjects, type EndpointInfo, type EndpointSlice } from '../../host-node/kube/index.js';

const DIR = join(import.meta.dirname, 'kube-proxy-slicecache');

interface Step { op: 'update' | 'checkout'; slice?: Record<string, unknown> }
interface Case {
  name: string; hostname: string; namespacedName: string; steps: Step[];
  query?: { op: 'esDataChanged'; remove: boolean; slice: Record<string, unknown> };
  expect?: Record<string, Array<Record<string, unknown>>>;
  expectChanged?: boolean;
  expectSlicesUnmutated?: boolean;
}
const cases = (test: string): Case[] => (JSON.parse(readFileSync(join(DIR, `${test}.json`), 'utf8')) as { cases: Case[] }).cases;

/**
 * The slice as svcplane reads it. TestEsDataChanged's Go slices leave addressType empty, which the
 * API (and svcplane's reader) refuses; the cache under test there is IPv4, so they are read as IPv4.
 */
function slice(raw: Record<string, unknown>): EndpointSlice {
  const set = loadObjects([{ addressType: 'IPv4', ...raw }]);
  expect(set.issues.filter((i) => i.severity === 'error')).toEqual([]);
  return set.endpointSlices[0]!;
}

/** Runs the steps; returns the tracker with the case's last updates pending. */
function feed(c: Case): EndpointsChangeTracker {
  const tracker = new EndpointsChangeTracker(4, c.hostname);
  for (const s of c.steps) {
    if (s.op === 'checkout') tracker.take();
    else tracker.update(slice(s.slice!), false);
  }
  return tracker;
}

const fields = (e: EndpointInfo, keys: string[]): Record<string, unknown> => Object.fromEntries(keys.map((k) => [k, e[k as keyof EndpointInfo]]));

function checkUnmutated(c: Case, run: () => void): void {
  const before = structuredClone(c);
  run();
  if (c.expectSlicesUnmutated) expect(c).toEqual(before);
}

describe('kube-proxy endpointslicecache_test.go', () => {
  for (const c of cases('TestEndpointsMapFromESC')) {
    it(`TestEndpointsMapFromESC: ${c.name}`, () => checkUnmutated(c, () => {
      const change = feed(c).take().changes.get(c.namespacedName);
      const got: Record<string, Array<Record<string, unknown>>> = {};
      for (const [id, list] of change?.current ?? []) got[id] = list.map((e) => fields(e, ['endpoint', 'isLocal', 'ready', 'serving', 'terminating']));
      expect(got).toEqual(c.expect);
    }));
  }

  for (const c of cases('TestEndpointInfoByServicePort')) {
    it(`TestEndpointInfoByServicePort: ${c.name}`, () => {
      const change = feed(c).take().changes.get(c.namespacedName);
      const byKey = (list: Array<Record<string, unknown>>) => Object.fromEntries(list.map((e) => [e.endpoint as string, e]));
      const got: Record<string, Record<string, unknown>> = {};
      for (const [id, list] of change?.current ?? []) {
        got[id] = byKey(list.map((e) => fields(e, ['ip', 'port', 'endpoint', 'isLocal', 'ready', 'serving', 'terminating', 'zoneHints', 'nodeHints'])));
      }
      expect(got).toEqual(Object.fromEntries(Object.entries(c.expect!).map(([id, list]) => [id, byKey(list)])));
    });
  }

  for (const c of cases('TestEsDataChanged')) {
    it(`TestEsDataChanged: ${c.name}`, () => checkUnmutated(c, () => {
      const tracker = feed(c);
      expect(tracker.update(slice(c.query!.slice), c.query!.remove)).toBe(c.expectChanged);
    }));
  }
});
