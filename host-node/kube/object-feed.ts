// object-feed.ts — what Dataplane.apply() hands kube-proxy's change trackers (proxy-state.ts):
// the objects of an apply set against the last applied ones, Service by Service and slice by
// slice — the whole list (every difference: adds, changes, removals) or a watch's delta (the
// objects that changed and the removals it names). Keeps the last applied objects by name for the
// next comparison; never syncs, never renders.
import { ProxyState } from './proxy-state.js';
import { namespacedName, sameObject } from './model.js';
import { sliceMoved } from './tracker.js';
import type { EndpointSlice, Node, Service } from './objects.js';

/** The objects of one apply (Dataplane's DecodedObjects). */
type ObjectSet = { readonly services: readonly Service[]; readonly endpointSlices: readonly EndpointSlice[]; readonly nodes: readonly Node[] };

/** The trackers of a Dataplane and the objects last applied to them, by namespaced name. */
export interface AppliedObjects {
  state: ProxyState;
  nodeName: string;
  services: Map<string, Service>;
  slices: Map<string, EndpointSlice>;
  nodes: Map<string, Node>;
}

/** Feeds added or changed objects and the named removals (`Service ns/name`, `EndpointSlice ns/name`) to the trackers; the rest stays. */
export function feedDelta(k: AppliedObjects, next: ObjectSet, removed: readonly string[]): void {
  for (const cur of next.services) {
    const key = namespacedName(cur.metadata);
    k.state.onService(k.services.get(key) ?? null, cur, key);
    k.services.set(key, cur);
  }
  for (const cur of next.endpointSlices) {
    const key = namespacedName(cur.metadata);
    const old = k.slices.get(key);
    if (old && sliceMoved(old, cur)) k.state.onEndpointSlice(old, true);
    k.state.onEndpointSlice(cur);
    k.slices.set(key, cur);
  }
  for (const name of removed) {
    const m = /^(Service|EndpointSlice) (\S+)$/.exec(name);
    if (m?.[1] === 'Service') {
      const old = k.services.get(m[2]!);
      if (old) k.state.onService(old, null);
      k.services.delete(m[2]!);
    } else if (m?.[1] === 'EndpointSlice') {
      const old = k.slices.get(m[2]!);
      if (old) k.state.onEndpointSlice(old, true);
      k.slices.delete(m[2]!);
    }
  }
  const me = next.nodes.find((n) => n.metadata.name === k.nodeName);
  if (me) k.state.onNode(me);
  for (const n of next.nodes) k.nodes.set(n.metadata.name, n);
}

/** Feeds the difference between the last applied objects and `next`, the whole list, to the trackers. */
export function feedAll(k: AppliedObjects, next: ObjectSet): void {
  const svcs = new Map<string, Service>();
  next.services.forEach((o) => svcs.set(namespacedName(o.metadata), o));
  const slices = new Map<string, EndpointSlice>();
  next.endpointSlices.forEach((o) => slices.set(namespacedName(o.metadata), o));
  if (k.services.size === 0 && k.slices.size === 0) {
    // Nothing known yet: every object is an add, handed over as one list (kept as k.services /
    // k.slices, unchanged until the sync right after this reads them).
    k.state.onServicesAdded(svcs);
    k.state.onEndpointSlicesAdded(slices);
  } else {
    k.services.forEach((old, key) => { if (!svcs.has(key)) k.state.onService(old, null, key); });
    svcs.forEach((cur, key) => {
      const old = k.services.get(key) ?? null;
      if (old === null || !sameObject(old, cur)) k.state.onService(old, cur, key);
    });
    k.slices.forEach((old, key) => { if (!slices.has(key)) k.state.onEndpointSlice(old, true); });
    slices.forEach((cur, key) => {
      const old = k.slices.get(key);
      if (old && sameObject(old, cur)) return;
      if (old && sliceMoved(old, cur)) k.state.onEndpointSlice(old, true);
      k.state.onEndpointSlice(cur);
    });
  }
  const me = next.nodes.find((n) => n.metadata.name === k.nodeName) ?? null;
  k.state.onNode(me);
  k.services = svcs;
  k.slices = slices;
  k.nodes = new Map(next.nodes.map((n) => [n.metadata.name, n]));
}
