// proxy-state.ts — what one kube-proxy process holds between syncs: per IP family a service
// tracker, an endpoints tracker and the model they feed (dual-stack = two of each, as
// NewDualStackProxier builds two proxiers behind a metaproxier), plus this node's topology labels
// and the "initial lists seen" gate. sync() applies the pending changes and says what to render;
// it renders nothing itself and never reads a clock (periodic full syncs are the caller's timer).
import type { EndpointSlice, Node, Service } from './objects.js';
import type { Family } from './ip.js';
import { LABEL_TOPOLOGY_ZONE, ProxyModel, type ModelOptions } from './model.js';
import { EndpointsChangeTracker, ServiceChangeTracker } from './tracker.js';

export interface ProxyStateOptions extends ModelOptions {
  nodeName: string;
  /** Families to proxy; default both. */
  families?: Family[];
}

export interface FamilyState {
  family: Family;
  services: ServiceChangeTracker;
  endpoints: EndpointsChangeTracker;
  model: ProxyModel;
  needFullSync: boolean;
}

export interface SyncPlan {
  family: Family;
  model: ProxyModel;
  /** null = render everything (first sync, topology change, after a failure); else changed Services. */
  changedServices: Set<string> | null;
  /** Service ports ("ns/name:port") that changed in this sync. */
  changedServicePorts: Set<string>;
}

export class ProxyState {
  readonly families = new Map<Family, FamilyState>();
  /** The same states as a list: every object of a full list walks it (no Map iterator each time). */
  private readonly each: FamilyState[] = [];
  /** Only the labels CategorizeEndpoints reads (the zone), like NodeTopologyConfig passes on. */
  topologyLabels: Record<string, string> = {};

  constructor(readonly opts: ProxyStateOptions) {
    for (const f of opts.families ?? [4, 6]) {
      this.families.set(f, {
        family: f,
        services: new ServiceChangeTracker(f, opts),
        endpoints: new EndpointsChangeTracker(f, opts.nodeName, opts),
        model: new ProxyModel(f),
        needFullSync: true,
      });
    }
    this.each.push(...this.families.values());
  }

  /**
   * OnServiceAdd/Update/Delete. True when a sync is wanted (something pending and initialized).
   * `nn` is the Service's "namespace/name" when the caller has it already.
   */
  onService(previous: Service | null, current: Service | null, nn?: string): boolean {
    let pending = false;
    for (let i = 0; i < this.each.length; i++) pending = this.each[i]!.services.update(previous, current, nn) || pending;
    return pending && this.initialized;
  }

  /**
   * onService(null, svc, nn) for each entry of a list of Services none of which was known before
   * (a first full list); the map is read until the next sync and must stay unchanged until then.
   */
  onServicesAdded(services: ReadonlyMap<string, Service>): void {
    for (let i = 0; i < this.each.length; i++) this.each[i]!.services.addAll(services);
  }

  /** onEndpointSlice(slice) for each slice of a list none of which was known before (as onServicesAdded). */
  onEndpointSlicesAdded(slices: ReadonlyMap<string, EndpointSlice>): void {
    for (let i = 0; i < this.each.length; i++) this.each[i]!.endpoints.addAll(slices);
  }

  /** OnEndpointSliceAdd/Update (remove=false) and Delete (remove=true). */
  onEndpointSlice(slice: EndpointSlice, remove = false): boolean {
    let changed = false;
    for (let i = 0; i < this.each.length; i++) changed = this.each[i]!.endpoints.update(slice, remove) || changed;
    return changed && this.initialized;
  }

  /** OnNodeAdd/Update for this node: a zone change forces a full resync. */
  onNode(node: Node | null): boolean {
    if (node && node.metadata.name !== this.opts.nodeName) return false;
    const zone = node?.metadata.labels[LABEL_TOPOLOGY_ZONE];
    const next: Record<string, string> = zone === undefined ? {} : { [LABEL_TOPOLOGY_ZONE]: zone };
    if (this.topologyLabels[LABEL_TOPOLOGY_ZONE] === next[LABEL_TOPOLOGY_ZONE]) return false;
    this.topologyLabels = next;
    for (const fs of this.families.values()) fs.needFullSync = true;
    return this.initialized;
  }

  markServicesSynced(): void { for (const fs of this.families.values()) fs.services.markSynced(); }
  markEndpointSlicesSynced(): void { for (const fs of this.families.values()) fs.endpoints.markSynced(); }

  /** No sync before both initial lists have been seen (syncProxyRules: "Not syncing ... until ..."). */
  get initialized(): boolean {
    for (const fs of this.families.values()) if (!fs.services.synced || !fs.endpoints.synced) return false;
    return true;
  }

  /** Forces the next sync of every family to be full (e.g. after a failed restore). */
  requestFullSync(): void { for (const fs of this.families.values()) fs.needFullSync = true; }

  /** Applies pending changes to each family's model; empty when not yet initialized. */
  sync(): SyncPlan[] {
    if (!this.initialized) return [];
    const plans: SyncPlan[] = [];
    for (const fs of this.families.values()) {
      const svc = fs.services.take();
      const eps = fs.endpoints.take();
      svc.applyTo(fs.model);
      eps.applyTo(fs.model);
      let ports: Set<string> | null = null;
      plans.push({
        family: fs.family,
        model: fs.model,
        changedServices: fs.needFullSync ? null : new Set([...svc.services, ...eps.services]),
        // Built when first read: a full sync never needs it.
        get changedServicePorts() { return (ports ??= new Set([...svc.servicePorts, ...eps.servicePorts])); },
      });
      fs.needFullSync = false;
    }
    return plans;
  }
}
