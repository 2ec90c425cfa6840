// proxy-sink.ts — what the node proxy's Source feeds: it keeps the current Services, EndpointSlices
// and this Node (as the Dataplane's apply() wants them: whole, in API form) and a ProxyState of its
// own from which the host-side needs are derived after every sync — the externalIP/LoadBalancer
// addresses and endpoint reply paths to route into the TUN, healthCheckNodePorts with their local
// endpoint counts, change counts and network-programming trigger times for metrics. Never programs
// the core or the kernel itself; pure bookkeeping over kube/.
import { ProxyState, namespacedName, type ProxySink, type EndpointSlice, type Node, type Service } from '../kube/index.js';
import type { AddrPort, DynamicRoutes } from './node-routes.js';

/** EndpointSlice annotation the endpoints controller sets (apis/core/v1: EndpointsLastChangeTriggerTime). */
const TRIGGER_TIME = 'endpoints.kubernetes.io/last-change-trigger-time';

/** What one sync means for the host side. */
/** healthCheckPorts: "namespace/name" → healthCheckNodePort (ETP=Local Services that have one). */
export interface HostView extends DynamicRoutes {
  /** "namespace/name" → ready endpoints on this node (distinct addresses). */
  localEndpoints: Map<string, number>;
  /** Services with a Local traffic policy and no local endpoints, by policy ("internal" / "external"). */
  noLocalEndpoints: { internal: number; external: number };
}

export class ProxyObjects implements ProxySink {
  readonly services = new Map<string, Service>();
  readonly slices = new Map<string, EndpointSlice>();
  node: Node | null = null;
  readonly state: ProxyState;
  /** Changes seen since the last take (kubeproxy_sync_proxy_rules_*_changes). */
  pending = { services: 0, endpoints: 0 };
  /** Trigger times (ms since epoch) of endpoint changes not yet synced. */
  private triggers: number[] = [];
  /** The node's deletion was seen (health: not eligible). */
  nodeDeleting = false;

  constructor(readonly nodeName: string) {
    this.state = new ProxyState({ nodeName });
  }

  onService(previous: Service | null, current: Service | null): boolean {
    const key = namespacedName((current ?? previous)!.metadata);
    if (current) this.services.set(key, current);
    else this.services.delete(key);
    this.pending.services++;
    return this.state.onService(previous, current);
  }

  onEndpointSlice(slice: EndpointSlice, remove = false): boolean {
    const key = namespacedName(slice.metadata);
    if (remove) this.slices.delete(key);
    else this.slices.set(key, slice);
    this.pending.endpoints++;
    const t = Date.parse(slice.metadata.annotations[TRIGGER_TIME] ?? '');
    if (Number.isFinite(t)) this.triggers.push(t);
    return this.state.onEndpointSlice(slice, remove);
  }

  onNode(node: Node | null): boolean {
    if (node && node.metadata.name !== this.nodeName) return false;
    // A Node that was there and is gone was deleted; never having seen one says nothing.
    if (node) this.nodeDeleting = false;
    else if (this.node) this.nodeDeleting = true;
    this.node = node;
    return this.state.onNode(node);
  }

  markServicesSynced(): void { this.state.markServicesSynced(); }
  markEndpointSlicesSynced(): void { this.state.markEndpointSlicesSynced(); }

  /** Takes (and clears) the pending change counts and trigger times. */
  takeChanges(): { services: number; endpoints: number; triggers: number[] } {
    const out = { ...this.pending, triggers: this.triggers };
    this.pending = { services: 0, endpoints: 0 };
    this.triggers = [];
    return out;
  }

  /** The objects in API form, for Dataplane.apply(). */
  rawObjects(): unknown[] {
    const out: unknown[] = [];
    for (const s of this.services.values()) out.push(rawService(s));
    for (const e of this.slices.values()) out.push(rawSlice(e));
    if (this.node) out.push(rawNode(this.node));
    return out;
  }

  /** Applies the pending changes to this side's model and derives what the host must set up. */
  view(): HostView {
    this.state.sync();
    const vips = new Map<string, AddrPort>();
    const replies = new Map<string, AddrPort>();
    const hc = new Map<string, number>();
    const local = new Map<string, Set<string>>();
    const noLocal = { internal: 0, external: 0 };
    const add = (m: Map<string, AddrPort>, a: AddrPort): void => { m.set(`${a.ip}|${a.protocol}|${a.port}`, a); };
    for (const fs of this.state.families.values()) {
      for (const [id, sp] of fs.model.services) {
        for (const ip of [...sp.externalIPs, ...sp.loadBalancerVIPs]) add(vips, { ip, protocol: sp.protocol, port: sp.port });
        const eps = fs.model.endpoints.get(id) ?? [];
        for (const ep of eps) if (ep.ready || ep.serving) add(replies, { ip: ep.ip, protocol: sp.protocol, port: ep.port });
        const localReady = eps.filter((e) => e.isLocal && e.ready);
        if (sp.externalPolicyLocal && sp.healthCheckNodePort !== 0) hc.set(sp.namespacedName, sp.healthCheckNodePort);
        const set = local.get(sp.namespacedName) ?? new Set<string>();
        for (const e of localReady) set.add(e.ip);
        local.set(sp.namespacedName, set);
        if (localReady.length === 0) {
          if (sp.internalPolicyLocal) noLocal.internal++;
          if (sp.externalPolicyLocal) noLocal.external++;
        }
      }
    }
    return {
      vips: [...vips.values()], replies: [...replies.values()], healthCheckPorts: hc,
      localEndpoints: new Map([...local].map(([k, v]) => [k, v.size])), noLocalEndpoints: noLocal,
    };
  }
}

// The decoded objects carry every field apply() reads; these put them back in API form.

function meta(m: Service['metadata']): Record<string, unknown> {
  return { name: m.name, ...(m.namespace ? { namespace: m.namespace } : {}), labels: m.labels, annotations: m.annotations };
}

function rawService(s: Service): unknown {
  const { sessionAffinityTimeoutSeconds, ...spec } = s.spec;
  return {
    apiVersion: 'v1', kind: 'Service', metadata: meta(s.metadata),
    spec: { ...spec, ...(spec.sessionAffinity === 'ClientIP' ? { sessionAffinityConfig: { clientIP: { timeoutSeconds: sessionAffinityTimeoutSeconds } } } : {}) },
    status: s.status,
  };
}

function rawSlice(e: EndpointSlice): unknown {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: meta(e.metadata), addressType: e.addressType, ports: e.ports,
    endpoints: e.endpoints.map((ep) => ({
      ...ep,
      hints: ep.hints === null ? null : { forZones: ep.hints.forZones.map((name) => ({ name })), forNodes: ep.hints.forNodes.map((name) => ({ name })) },
    })),
  };
}

function rawNode(n: Node): unknown {
  return { apiVersion: 'v1', kind: 'Node', metadata: meta(n.metadata), spec: n.spec, status: n.status };
}
