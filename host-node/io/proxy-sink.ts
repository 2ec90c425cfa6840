// proxy-sink.ts — what the node proxy's Source feeds: it keeps the current Services, EndpointSlices
// and this Node (as the Dataplane's apply() wants them: whole, in API form) and a ProxyState of its
// own from which the host-side needs are derived after every sync — the externalIP/LoadBalancer
// addresses and endpoint reply paths to route into the TUN, healthCheckNodePorts with their local
// endpoint counts, change counts and network-programming trigger times for metrics. Never programs
// the core or the kernel itself; pure bookkeeping over kube/.
import { ProxyState, namespacedName, servicePortId, type ProxySink, type EndpointSlice, type Node, type Protocol, type Service, type SyncPlan } from '../kube/index.js';
import type { AddrPort, DynamicRoutes, ReplyDelta } from './node-routes.js';

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
  /**
   * Objects changed since the last applied sync, as apply()'s delta names them ("Service ns/name",
   * "EndpointSlice ns/name", "Node"): a sync hands the core only these, so one changed slice costs
   * the same at 20,000 Services as at ten. `whole`: the next sync hands everything (the first one,
   * and after a refused one).
   */
  private readonly dirty = new Set<string>();
  private whole = true;
  /** Per Service, what it adds to the host view; and the view, kept up to date from those shares. */
  private readonly shares = new Map<string, ServiceShare>();
  private readonly vipCounts = new Map<string, { a: AddrPort; n: number }>();
  private readonly replyCounts = new Map<string, { a: AddrPort; n: number }>();
  private readonly hcPorts = new Map<string, number>();
  private readonly localCounts = new Map<string, number>();
  private readonly noLocal = { internal: 0, external: 0 };
  /** A view was handed out: later ones hand reply paths as changes. */
  private viewed = false;

  constructor(readonly nodeName: string) {
    this.state = new ProxyState({ nodeName });
  }

  onService(previous: Service | null, current: Service | null): boolean {
    const key = namespacedName((current ?? previous)!.metadata);
    if (current) this.services.set(key, current);
    else this.services.delete(key);
    this.dirty.add(`Service ${key}`);
    this.pending.services++;
    return this.state.onService(previous, current);
  }

  onEndpointSlice(slice: EndpointSlice, remove = false): boolean {
    const key = namespacedName(slice.metadata);
    if (remove) this.slices.delete(key);
    else this.slices.set(key, slice);
    this.dirty.add(`EndpointSlice ${key}`);
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
    // A delta can only name a Node that is there; one that went takes a whole sync.
    if (node === null && this.node !== null) this.whole = true;
    this.node = node;
    this.dirty.add('Node');
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

  /**
   * What Dataplane.apply() needs for the changes since the last applied sync: every object (with
   * `delta` undefined) for the first sync or after a refused one; else the changed objects and
   * the names of the removed ones. Report the outcome with applied().
   */
  applyInput(): { objects: unknown[]; delta?: { removed: string[] } } {
    if (this.whole) return { objects: this.rawObjects() };
    const objects: unknown[] = [];
    const removed: string[] = [];
    for (const key of this.dirty) {
      if (key === 'Node') {
        if (this.node) objects.push(rawNode(this.node));
        continue;
      }
      const space = key.indexOf(' ');
      const nn = key.slice(space + 1);
      if (key.startsWith('Service ')) {
        const s = this.services.get(nn);
        if (s) objects.push(rawService(s));
        else removed.push(key);
      } else {
        const e = this.slices.get(nn);
        if (e) objects.push(rawSlice(e));
        else removed.push(key);
      }
    }
    return { objects, delta: { removed } };
  }

  /** The sync of applyInput()'s objects took (true) or was refused (false: the next one hands everything). */
  applied(ok: boolean): void {
    this.dirty.clear();
    this.whole = !ok;
  }

  /** The objects in API form, for Dataplane.apply(). */
  rawObjects(): unknown[] {
    const out: unknown[] = [];
    for (const s of this.services.values()) out.push(rawService(s));
    for (const e of this.slices.values()) out.push(rawSlice(e));
    if (this.node) out.push(rawNode(this.node));
    return out;
  }

  /**
   * Applies the pending changes to this side's model and derives what the host must set up, for
   * the changed Services only (every one when the model resynced fully): each Service's share of
   * the addresses to route, reply paths, health check port and local endpoints is taken back and
   * made again. The first view lists every reply path; later ones only the change since the last.
   */
  view(): HostView {
    const plans = this.state.sync();
    let names: Set<string>;
    if (plans.some((p) => p.changedServices === null)) {
      names = new Set(this.shares.keys());
      for (const p of plans) p.model.services.forEach((sp) => names.add(sp.namespacedName));
    } else {
      names = new Set();
      for (const p of plans) for (const nn of p.changedServices!) names.add(nn);
    }
    const touched = new Map<string, { a: AddrPort; had: boolean }>();
    for (const nn of names) {
      const old = this.shares.get(nn);
      if (old) this.unshare(nn, old, touched);
      const share = this.shareOf(nn, plans);
      if (share) {
        this.shares.set(nn, share);
        this.take(nn, share, touched);
      } else {
        this.shares.delete(nn);
      }
    }
    let replies: AddrPort[] | ReplyDelta;
    if (!this.viewed) {
      this.viewed = true;
      replies = [...this.replyCounts.values()].map((c) => c.a);
    } else {
      const added: AddrPort[] = [];
      const removed: AddrPort[] = [];
      for (const [key, t] of touched) {
        const has = this.replyCounts.has(key);
        if (has && !t.had) added.push(t.a);
        else if (!has && t.had) removed.push(t.a);
      }
      replies = { added, removed };
    }
    return {
      vips: [...this.vipCounts.values()].map((c) => c.a), replies, healthCheckPorts: this.hcPorts,
      localEndpoints: this.localCounts, noLocalEndpoints: { ...this.noLocal },
    };
  }

  /** What Service `nn` adds to the host view, from every family's model; null when it has no proxied port. */
  private shareOf(nn: string, plans: SyncPlan[]): ServiceShare | null {
    const svc = this.services.get(nn);
    if (!svc) return null;
    const share: ServiceShare = { vips: [], replies: [], hc: 0, local: 0, noLocalInternal: 0, noLocalExternal: 0 };
    const localIps = new Set<string>();
    const seen: string[] = [];
    let any = false;
    for (const plan of plans) {
      for (const p of svc.spec.ports) {
        const sp = plan.model.services.get(servicePortId(nn, p.name, p.protocol));
        if (!sp || seen.includes(sp.id + plan.family)) continue;
        seen.push(sp.id + plan.family);
        any = true;
        for (const ip of sp.externalIPs) share.vips.push(ip, sp.protocol, String(sp.port));
        for (const ip of sp.loadBalancerVIPs) share.vips.push(ip, sp.protocol, String(sp.port));
        let localReady = 0;
        for (const ep of plan.model.endpoints.get(sp.id) ?? []) {
          if (ep.ready || ep.serving) share.replies.push(ep.ip, sp.protocol, String(ep.port));
          if (ep.isLocal && ep.ready) {
            localReady++;
            localIps.add(ep.ip);
          }
        }
        if (sp.externalPolicyLocal && sp.healthCheckNodePort !== 0) share.hc = sp.healthCheckNodePort;
        if (localReady === 0) {
          if (sp.internalPolicyLocal) share.noLocalInternal++;
          if (sp.externalPolicyLocal) share.noLocalExternal++;
        }
      }
    }
    share.local = localIps.size;
    return any ? share : null;
  }

  /** Adds a Service's share to the host view. */
  private take(nn: string, s: ServiceShare, touched: Map<string, { a: AddrPort; had: boolean }>): void {
    count(this.vipCounts, s.vips, 1, null);
    count(this.replyCounts, s.replies, 1, touched);
    if (s.hc !== 0) this.hcPorts.set(nn, s.hc);
    this.localCounts.set(nn, s.local);
    this.noLocal.internal += s.noLocalInternal;
    this.noLocal.external += s.noLocalExternal;
  }

  /** Takes a Service's share back out of the host view. */
  private unshare(nn: string, s: ServiceShare, touched: Map<string, { a: AddrPort; had: boolean }>): void {
    count(this.vipCounts, s.vips, -1, null);
    count(this.replyCounts, s.replies, -1, touched);
    this.hcPorts.delete(nn);
    this.localCounts.delete(nn);
    this.noLocal.internal -= s.noLocalInternal;
    this.noLocal.external -= s.noLocalExternal;
  }
}

/** One Service's part of the host view; address lists are flat (ip, protocol, port) triples. */
interface ServiceShare {
  vips: string[];
  replies: string[];
  hc: number;
  /** Distinct ready endpoint IPs on this node. */
  local: number;
  /** Its service ports with a Local policy and no ready local endpoint. */
  noLocalInternal: number;
  noLocalExternal: number;
}

/**
 * Adds (d = 1) or removes (d = -1) each (ip, protocol, port) triple of `flat` in a counted set.
 * `touched` records, the first time a key changes, whether it was there before.
 */
function count(m: Map<string, { a: AddrPort; n: number }>, flat: string[], d: 1 | -1, touched: Map<string, { a: AddrPort; had: boolean }> | null): void {
  for (let i = 0; i < flat.length; i += 3) {
    const key = `${flat[i]}|${flat[i + 1]}|${flat[i + 2]}`;
    const c = m.get(key);
    if (touched !== null && !touched.has(key)) {
      touched.set(key, { a: c?.a ?? { ip: flat[i]!, protocol: flat[i + 1] as Protocol, port: Number(flat[i + 2]) }, had: c !== undefined });
    }
    if (c === undefined) {
      if (d > 0) m.set(key, { a: { ip: flat[i]!, protocol: flat[i + 1] as Protocol, port: Number(flat[i + 2]) }, n: 1 });
    } else if ((c.n += d) <= 0) {
      m.delete(key);
    }
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
