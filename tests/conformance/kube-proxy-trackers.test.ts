// kube-proxy's change-tracker tests (pkg/proxy/servicechangetracker_test.go and
// endpointschangetracker_test.go, kubernetes/kubernetes @ f2963eff, Apache-2.0) replayed through
// svcplane's trackers and model: the data in kube-proxy-trackers/ (README.md there), every step
// of every case, each asserting what the Go test asserts. Services and EndpointSlices go through
// loadObjects as any object does; "sync" is the tracker's take() applied to one model that lasts
// the whole case, as ServicePortMap.Update / EndpointsMap.Update apply the trackers to one map.
import { readdirSync, readFileSync } from 'node:fs';
import { ProxyObjects } from '../../host-node/io/proxy-sink.js';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  canonicalIP,
  EndpointsChangeTracker,
  formatCIDR,
  loadObjects,
  parseCIDR,
  ProxyModel,
  serviceToServicePorts,
  ServiceChangeTracker,
  type EndpointInfo,
  type EndpointSlice,
  type Family,
  type Service,
  type ServicePortInfo,
} from '../../host-node/kube/index.js';

const DIR = join(import.meta.dirname, 'kube-proxy-trackers');

interface Fixture<C> { test: string; compared: string; cases: C[] }
const fixture = <C>(name: string): Fixture<C> => JSON.parse(readFileSync(join(DIR, `${name}.json`), 'utf8')) as Fixture<C>;

/** The object as svcplane reads it; the Go data holds no object the reader refuses. */
function read<T>(raw: object, kind: 'services' | 'endpointSlices'): T {
  const set = loadObjects([raw]);
  expect(set.issues.filter((i) => i.severity === 'error')).toEqual([]);
  expect(set[kind]).toHaveLength(1);
  return set[kind][0] as T;
}

const ip = (s: string): string => canonicalIP(s) ?? `bad ${s}`;
const cidr = (s: string): string => { const c = parseCIDR(s.trim()); return c ? formatCIDR(c) : `bad ${s}`; };

// ---- servicechangetracker_test.go ----

interface ExpectedPort {
  servicePortName: string; clusterIP: string; port: number; protocol: string; healthCheckNodePort: number;
  externalIPs: string[]; loadBalancerVIPs: string[]; loadBalancerSourceRanges: string[];
}
interface ServiceExpect {
  servicePorts?: ExpectedPort[];
  serviceMapSize?: number;
  updatedServicesCount?: number;
  updatedServices?: string[];
  healthCheckNodePortsCount?: number;
  healthCheckNodePorts?: Record<string, number>;
  pendingChanges?: number;
}
interface ServiceStep { op: 'serviceToServiceMap' | 'add' | 'update' | 'delete' | 'sync'; previous?: object | null; service?: object | null; expect?: ServiceExpect }
interface ServiceCase { name: string; family: Family; featureGates?: Record<string, boolean>; steps: ServiceStep[] }

/** What the Go test compares of a service port, with addresses and ranges in one canonical text. */
function portView(sp: ServicePortInfo): ExpectedPort {
  return {
    servicePortName: sp.id, clusterIP: ip(sp.clusterIP), port: sp.port, protocol: sp.protocol, healthCheckNodePort: sp.healthCheckNodePort,
    externalIPs: sp.externalIPs.map(ip), loadBalancerVIPs: sp.loadBalancerVIPs.map(ip), loadBalancerSourceRanges: sp.loadBalancerSourceRanges.map(cidr),
  };
}
const expectedView = (e: ExpectedPort): ExpectedPort => ({
  ...e, clusterIP: ip(e.clusterIP), externalIPs: e.externalIPs.map(ip), loadBalancerVIPs: e.loadBalancerVIPs.map(ip), loadBalancerSourceRanges: e.loadBalancerSourceRanges.map(cidr),
});
const byName = (a: ExpectedPort, b: ExpectedPort): number => a.servicePortName.localeCompare(b.servicePortName);

/**
 * Cases whose expectation holds only with the LoadBalancerIPMode gate off (kube-proxy before 1.32):
 * an ingress with ipMode Proxy still counted as a VIP. svcplane follows the gate's GA behaviour,
 * which the same test's gate-on case asserts.
 */
const GATE_OFF_ONLY = new Set(['load balancer service ipMode Proxy feature gate disable']);

function gatedOff(c: ServiceCase): boolean {
  if (c.featureGates?.LoadBalancerIPMode !== false) return false;
  const svc = c.steps[0]?.service as { status?: { loadBalancer?: { ingress?: Array<{ ipMode?: string }> } } } | null | undefined;
  return (svc?.status?.loadBalancer?.ingress ?? []).some((i) => i.ipMode === 'Proxy');
}

/** HealthCheckNodePorts(): "ns/name" → port, for the service ports that have one. */
function healthCheckNodePorts(model: ProxyModel): Record<string, number> {
  const out: Record<string, number> = {};
  for (const sp of model.services.values()) if (sp.healthCheckNodePort !== 0) out[sp.namespacedName] = sp.healthCheckNodePort;
  return out;
}

function runServiceCase(c: ServiceCase): void {
  const tracker = new ServiceChangeTracker(c.family);
  const model = new ProxyModel(c.family);
  const svc = (raw: object | null | undefined): Service | null => (raw ? read<Service>(raw, 'services') : null);
  for (const [k, step] of c.steps.entries()) {
    const at = `${c.name}, step ${k + 1} (${step.op})`;
    const e = step.expect ?? {};
    if (step.op === 'serviceToServiceMap') {
      const ports = serviceToServicePorts(svc(step.service), c.family);
      const got = [...(ports?.values() ?? [])].map(portView).sort(byName);
      expect(got, at).toEqual((e.servicePorts ?? []).map(expectedView).sort(byName));
      continue;
    }
    if (step.op === 'sync') {
      const taken = tracker.take();
      const updated = [...taken.services].sort();
      taken.applyTo(model);
      if (e.serviceMapSize !== undefined) expect(model.services.size, `${at}: service map size`).toBe(e.serviceMapSize);
      if (e.updatedServicesCount !== undefined) expect(updated, `${at}: updated services`).toHaveLength(e.updatedServicesCount);
      if (e.updatedServices) expect(updated, `${at}: updated services`).toEqual([...e.updatedServices].sort());
      const hc = healthCheckNodePorts(model);
      if (e.healthCheckNodePortsCount !== undefined) expect(Object.keys(hc), `${at}: health check node ports`).toHaveLength(e.healthCheckNodePortsCount);
      if (e.healthCheckNodePorts) expect(hc, `${at}: health check node ports`).toEqual(e.healthCheckNodePorts);
      continue;
    }
    const previous = step.op === 'add' ? null : svc(step.previous);
    const current = step.op === 'delete' ? null : svc(step.service);
    tracker.update(previous, current);
    if (e.pendingChanges !== undefined) expect(tracker.pending(), `${at}: pending changes`).toHaveLength(e.pendingChanges);
  }
}

const SERVICE_TESTS = ['TestServiceToServiceMap', 'TestServiceMapUpdateHeadless', 'TestUpdateServiceTypeExternalName', 'TestBuildServiceMapAddRemove', 'TestBuildServiceMapServiceUpdate', 'TestServiceCacheLeaks'];

describe('kube-proxy servicechangetracker_test.go', () => {
  it('the fixtures are the ones this suite runs', () => {
    const files = readdirSync(DIR).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5));
    for (const t of SERVICE_TESTS) expect(files).toContain(t);
  });

  it('only the gate-off ipMode Proxy case is left out (svcplane follows the GA gate)', () => {
    const left = fixture<ServiceCase>('TestServiceToServiceMap').cases.filter(gatedOff).map((c) => c.name);
    expect(new Set(left)).toEqual(GATE_OFF_ONLY);
  });

  for (const test of SERVICE_TESTS) {
    const f = fixture<ServiceCase>(test);
    describe(test, () => {
      for (const c of f.cases) {
        if (gatedOff(c)) continue;
        it(c.name, () => runServiceCase(c));
      }
    });
  }
});

// ---- endpointschangetracker_test.go ----

interface ExpectedEndpoint { endpoint: string; ip: string; port: number; isLocal: boolean; ready: boolean; serving: boolean; terminating: boolean }
type EndpointsMap = Record<string, ExpectedEndpoint[]>;

/** What the Go tests compare of an endpoints map: per service port id, the endpoints in order. */
function endpointsView(m: ReadonlyMap<string, readonly EndpointInfo[]>): EndpointsMap {
  const out: EndpointsMap = {};
  for (const [id, list] of m) {
    out[id] = list.map((e) => ({ endpoint: e.endpoint, ip: e.ip, port: e.port, isLocal: e.isLocal, ready: e.ready, serving: e.serving, terminating: e.terminating }));
  }
  return out;
}
/** The expected map with its addresses as svcplane writes them (the Go data holds plain IPv4 text). */
const expectedEndpoints = (m: EndpointsMap): EndpointsMap => Object.fromEntries(Object.entries(m).map(([id, list]) => [id, list.map((e) => ({ ...e, ip: ip(e.ip) }))]));

const slice = (raw: object): EndpointSlice => read<EndpointSlice>(raw, 'endpointSlices');

interface UpdateCase {
  name: string; previousSlices: Array<object | null>; currentSlices: Array<object | null>;
  expectPrevious: EndpointsMap; expectCurrent: EndpointsMap; expectChangedServices: string[];
}
interface SliceUpdateCase {
  name: string; serviceName: string; startingSlices: object[]; slice: object; remove: boolean;
  expectReturn: boolean; expectChanges: boolean; expectCurrent?: EndpointsMap;
}
interface CheckoutCase {
  name: string; appliedSlices: object[]; pendingSlices: object[];
  expectChanges: Array<{ service: string; previous: EndpointsMap; current: EndpointsMap }>;
}

describe('kube-proxy endpointschangetracker_test.go', () => {
  const updates = fixture<UpdateCase>('TestUpdateEndpointsMap') as Fixture<UpdateCase> & { hostname: string };
  describe('TestUpdateEndpointsMap', () => {
    for (const c of updates.cases) {
      it(c.name, () => {
        const tracker = new EndpointsChangeTracker(4, updates.hostname);
        const model = new ProxyModel(4);
        for (const raw of c.previousSlices) if (raw) tracker.update(slice(raw), false);
        tracker.take().applyTo(model);
        expect(endpointsView(model.endpoints), 'after the first sync').toEqual(expectedEndpoints(c.expectPrevious));
        c.previousSlices.forEach((prev, i) => {
          const cur = c.currentSlices[i];
          if (cur) tracker.update(slice(cur), false);
          else if (prev) tracker.update(slice(prev), true);
        });
        const taken = tracker.take();
        const changed = [...taken.services].sort();
        taken.applyTo(model);
        expect(endpointsView(model.endpoints), 'after the second sync').toEqual(expectedEndpoints(c.expectCurrent));
        expect(changed, 'updated services').toEqual([...c.expectChangedServices].sort());
      });
    }
  });

  const sliceUpdates = fixture<SliceUpdateCase>('TestEndpointSliceUpdate') as Fixture<SliceUpdateCase> & { hostname: string };
  describe('TestEndpointSliceUpdate', () => {
    for (const c of sliceUpdates.cases) {
      it(c.name, () => {
        const tracker = new EndpointsChangeTracker(4, sliceUpdates.hostname);
        for (const raw of c.startingSlices) tracker.update(slice(raw), false);
        tracker.take();
        expect(tracker.update(slice(c.slice), c.remove), 'update returns').toBe(c.expectReturn);
        const changes = tracker.take().changes;
        if (!c.expectChanges) {
          expect([...changes.keys()]).toEqual([]);
          return;
        }
        const change = changes.get(c.serviceName);
        expect(change, `a change for ${c.serviceName}`).toBeDefined();
        expect(endpointsView(change!.current)).toEqual(expectedEndpoints(c.expectCurrent!));
      });
    }
  });

  const checkouts = fixture<CheckoutCase>('TestCheckoutChanges') as Fixture<CheckoutCase> & { hostname: string };
  describe('TestCheckoutChanges', () => {
    for (const c of checkouts.cases) {
      it(c.name, () => {
        const tracker = new EndpointsChangeTracker(4, checkouts.hostname);
        for (const raw of c.appliedSlices) tracker.update(slice(raw), false);
        tracker.take();
        for (const raw of c.pendingSlices) tracker.update(slice(raw), false);
        const changes = tracker.take().changes;
        expect([...changes.keys()]).toEqual(c.expectChanges.map((x) => x.service));
        for (const x of c.expectChanges) {
          const change = changes.get(x.service)!;
          expect(endpointsView(change.previous), `${x.service} previous`).toEqual(expectedEndpoints(x.previous));
          expect(endpointsView(change.current), `${x.service} current`).toEqual(expectedEndpoints(x.current));
          for (const list of change.current.values()) for (const e of list) expect([e.zoneHints, e.nodeHints]).toEqual([null, null]);
        }
      });
    }
  });
});

// ---- TestLastChangeTriggerTime: the network programming latency's start times ----
// svcplane keeps them where the node proxy takes its changes (ProxyObjects), per family and Service.

interface TriggerCase { name: string; steps: Array<{ op: 'add' | 'update' | 'delete'; slice: object }>; expect: Record<string, string[]> }

describe('kube-proxy endpointschangetracker_test.go: TestLastChangeTriggerTime', () => {
  const f = fixture<TriggerCase>('TestLastChangeTriggerTime') as Fixture<TriggerCase> & { hostname: string; times: Record<string, number | string> };
  const start = Date.parse(f.times.startText as string);
  const nameOf = (at: number): string => Object.keys(f.times).find((k) => k !== 'startText' && (f.times[k] as number) === at - start) ?? `${at}`;
  for (const c of f.cases) {
    it(c.name, () => {
      const o = new ProxyObjects(f.hostname, start);
      for (const s of c.steps) o.onEndpointSlice(slice(s.slice), s.op === 'delete');
      const got: Record<string, string[]> = {};
      for (const t of o.takeChanges().triggers) (got[t.service] ??= []).push(nameOf(t.at));
      expect(got).toEqual(c.expect);
    });
  }
});
