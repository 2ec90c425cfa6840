// proxy-sink.ts — what the node proxy's Source feeds: it keeps the current Services, EndpointSlices
// and this Node (decoded, as Dataplane.apply() takes them), remembers which changed since the last
// sync so a sync hands the core only those, and after every sync works out from the Dataplane's
// model what the host must set up for the Services that changed — the externalIP/LoadBalancer
// addresses and endpoint reply paths to route into the TUN, healthCheckNodePorts with their local
// endpoint counts — plus change counts and network-programming trigger times for metrics. Reaches
// the core only through Dataplane.apply(), never the kernel; keeps no model of its own.
import { LABEL_TOPOLOGY_ZONE, categorizeEndpoints, namespacedName, sameObject, servicePortId, sliceServiceName, type ProxySink, type EndpointSlice, type Family, type Node, type Protocol, type ProxyModel, type Service, type ServicePortInfo } from '../kube/index.js';
import type { ApplyOptions, ApplyResult, Dataplane, DecodedObjects } from '../dataplane.js';
import type { AddrPort, DynamicRoutes, ReplyDelta } from './node-routes.js';

/** EndpointSlice annotation the endpoints controller sets (apis/core/v1: EndpointsLastChangeTriggerTime). */
const TRIGGER_TIME = 'endpoints.kubernetes.io/last-change-trigger-time';

/**
 * What one sync means for the host side. healthCheckPorts: "namespace/name" → healthCheckNodePort
 * (ETP=Local Services that have one). The maps are the sink's own, kept up to date: read, never written.
 */
export interface HostView extends DynamicRoutes {
  /** "namespace/name" → ready endpoints on this node (distinct addresses). */
  localEndpoints: Map<string, number>;
  /** Service ports with a Local traffic policy and endpoints, none of them local, by family and policy. */
  noLocalEndpoints: NoLocalEndpoints;
}

export class ProxyObjects implements ProxySink {
  readonly services = new Map<string, Service>();
  readonly slices = new Map<string, EndpointSlice>();
  node: Node | null = null;
  /** Both initial lists were delivered (kube-proxy syncs nothing before). */
  private servicesSynced = false;
  private slicesSynced = false;
  /** Events since the last take (kubeproxy_sync_proxy_rules_{service,endpoint}_changes_total). */
  private events = { services: 0, endpoints: 0 };
  /** Per Service with a change not yet synced, the object it had at the last take (null: none). */
  private readonly serviceBase = new Map<string, Service | null>();
  /** EndpointSlice events since the last take that changed a slice (EndpointChangesPending). */
  private slicesPending = 0;
  /**
   * Per family and Service ("IPv4 ns/name"), the trigger times of its slices' changes since the
   * last take, when later than `startedAt` (an older one measures the proxy's start, not programming).
   */
  private triggers = new Map<string, number[]>();
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
  private readonly vipCounts = new Map<string, Counted>();
  private readonly replyCounts = new Map<string, Counted>();
  private readonly hcPorts = new Map<string, number>();
  private readonly localCounts = new Map<string, number>();
  private readonly noLocal: NoLocalEndpoints = { IPv4: { internal: 0, external: 0 }, IPv6: { internal: 0, external: 0 } };
  /** A view was handed out: later ones hand reply paths as changes. */
  private viewed = false;

  /** `startedAt`: when the proxy started (ms since epoch); older trigger times are not measured. */
  /**
   * `podCIDRsMatter`: the Node's spec.podCIDRs feed the rules (--detect-local-mode NodeCIDR), so a
   * change of them asks for a sync as a zone change does.
   */
  constructor(readonly nodeName: string, private readonly startedAt = Date.now(), private readonly podCIDRsMatter = false) {}

  /** Changes to sync (kube-proxy's *_changes_pending): Services whose object differs from the last take, slice changes. */
  get pending(): { services: number; endpoints: number } {
    return { services: this.serviceBase.size, endpoints: this.slicesPending };
  }

  get initialized(): boolean { return this.servicesSynced && this.slicesSynced; }

  onService(previous: Service | null, current: Service | null): boolean {
    const key = namespacedName((current ?? previous)!.metadata);
    // servicechangetracker.go: a change that nets out to the object of the last sync is none.
    const base = this.serviceBase.has(key) ? this.serviceBase.get(key)! : this.services.get(key) ?? null;
    if (current) this.services.set(key, current);
    else this.services.delete(key);
    if (base === current || (base !== null && current !== null && sameObject(base, current, true))) this.serviceBase.delete(key);
    else this.serviceBase.set(key, base);
    this.dirty.add(`Service ${key}`);
    this.events.services++;
    return this.initialized;
  }

  onEndpointSlice(slice: EndpointSlice, remove = false): boolean {
    const key = namespacedName(slice.metadata);
    const was = this.slices.get(key);
    if (remove) this.slices.delete(key);
    else this.slices.set(key, slice);
    this.dirty.add(`EndpointSlice ${key}`);
    // endpointschangetracker.go EndpointSliceUpdate: slices of a proxied family with a Service.
    const nn = sliceServiceName(slice);
    if (slice.addressType === 'FQDN' || nn === null) return this.initialized;
    this.events.endpoints++;
    if (remove ? was === undefined : was !== undefined && sameObject(was, slice, true)) return this.initialized;
    this.slicesPending++;
    const service = `${slice.addressType} ${nn}`;
    // A removal's annotation dates from the slice's last update, not from this change: the
    // Service's pending times go (kube-proxy ignores them the same way).
    if (remove) this.triggers.delete(service);
    else {
      const t = Date.parse(slice.metadata.annotations[TRIGGER_TIME] ?? '');
      if (Number.isFinite(t) && t > this.startedAt) {
        const times = this.triggers.get(service);
        if (times) times.push(t);
        else this.triggers.set(service, [t]);
      }
    }
    return this.initialized;
  }

  onNode(node: Node | null): boolean {
    if (node && node.metadata.name !== this.nodeName) return false;
    // A Node that was there and is gone was deleted; never having seen one says nothing.
    if (node) this.nodeDeleting = false;
    else if (this.node) this.nodeDeleting = true;
    // A delta can only name a Node that is there; one that went takes a whole sync.
    if (node === null && this.node !== null) this.whole = true;
    // Only the zone (topology) and, in NodeCIDR mode, the pod CIDRs matter to the rules: a sync is
    // asked for when they change (a Node gone keeps its last pod CIDRs, as kube-proxy does).
    const zone = (n: Node | null): string | undefined => n?.metadata.labels[LABEL_TOPOLOGY_ZONE];
    const cidrs = (n: Node | null): string => n?.spec.podCIDRs.join(',') ?? '';
    const moved = zone(node) !== zone(this.node) || (this.podCIDRsMatter && node !== null && cidrs(node) !== cidrs(this.node));
    this.node = node;
    this.dirty.add('Node');
    return moved && this.initialized;
  }

  markServicesSynced(): void { this.servicesSynced = true; }
  markEndpointSlicesSynced(): void { this.slicesSynced = true; }

  /**
   * Takes (and clears) the changes since the last take: the events counted, and the trigger times
   * of the slice changes by family (kube-proxy's LastChangeTriggerTimes, one latency each).
   */
  takeChanges(): { services: number; endpoints: number; triggers: Trigger[] } {
    const triggers: Trigger[] = [];
    this.triggers.forEach((times, key) => {
      const family = key.startsWith('IPv4 ') ? 'IPv4' : 'IPv6';
      const service = key.slice(5);
      for (const at of times) triggers.push({ at, family, service });
    });
    const out = { ...this.events, triggers };
    this.events = { services: 0, endpoints: 0 };
    this.serviceBase.clear();
    this.slicesPending = 0;
    this.triggers = new Map();
    return out;
  }

  /**
   * What Dataplane.apply() needs for the changes since the last applied sync: every object (with
   * `delta` undefined) for the first sync or after a refused one; else the changed objects and
   * the names of the removed ones. Report the outcome with applied().
   */
  applyInput(): { objects: DecodedObjects; delta?: { removed: string[] } } {
    if (this.whole) {
      return { objects: { services: [...this.services.values()], endpointSlices: [...this.slices.values()], nodes: this.node ? [this.node] : [] } };
    }
    const objects: DecodedObjects = { services: [], endpointSlices: [], nodes: [] };
    const removed: string[] = [];
    for (const key of this.dirty) {
      if (key === 'Node') {
        if (this.node) objects.nodes.push(this.node);
        continue;
      }
      const nn = key.slice(key.indexOf(' ') + 1);
      if (key.startsWith('Service ')) {
        const s = this.services.get(nn);
        if (s) objects.services.push(s);
        else removed.push(key);
      } else {
        const e = this.slices.get(nn);
        if (e) objects.endpointSlices.push(e);
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

  /**
   * One sync: the changes since the last one (everything, the first time or after a refusal) to
   * `dp`, then the host view of the Services that changed. A refused sync throws and leaves the
   * next one to hand everything.
   */
  sync(dp: Dataplane, opts: ApplyOptions): { result: ApplyResult; view: HostView } {
    const input = this.applyInput();
    let result: ApplyResult;
    try {
      result = dp.apply(input.objects, input.delta ? { ...opts, delta: input.delta } : opts);
    } catch (e) {
      this.applied(false);
      throw e;
    }
    this.applied(true);
    const full = result.families.some((f) => f.full);
    return { result, view: this.view(dp.kubeModels(), full ? null : new Set(result.families.flatMap((f) => f.changedServices))) };
  }

  /**
   * What the host must set up after a sync, from the Dataplane's model (`models`, its kubeModels())
   * for the Services the sync changed (`changed`; null: every one, as after a full sync): each
   * changed Service's share of the addresses to route, reply paths, health check port and local
   * endpoints is taken back and made again. The first view lists every reply path; later ones
   * only the change since the one before.
   */
  view(models: ReadonlyArray<{ family: Family; model: ProxyModel }>, changed: ReadonlySet<string> | null): HostView {
    let names: ReadonlySet<string>;
    if (changed === null) {
      const all = new Set(this.shares.keys());
      for (const m of models) m.model.services.forEach((sp) => all.add(sp.namespacedName));
      names = all;
    } else {
      names = changed;
    }
    // Which reply paths a change touched, and whether each was there before (not needed for the
    // first view, which lists them all).
    const touched = this.viewed ? new Map<string, Touched>() : null;
    for (const nn of names) {
      const old = this.shares.get(nn);
      // A full sync (a zone change, a refused sync) redoes every Service: one whose model entries
      // are the very objects its share was made from keeps that share.
      if (old && changed === null && sameInputs(old.inputs, this.services.get(nn), nn, models)) continue;
      if (old) this.unshare(nn, old, touched);
      const share = this.shareOf(nn, models, touched);
      if (share) {
        this.shares.set(nn, share);
        this.take(nn, share);
      } else {
        this.shares.delete(nn);
      }
    }
    let replies: AddrPort[] | ReplyDelta;
    if (touched === null) {
      this.viewed = true;
      replies = [...this.replyCounts.values()];
    } else {
      const added: AddrPort[] = [];
      const removed: AddrPort[] = [];
      touched.forEach((t, key) => {
        const now = this.replyCounts.get(key);
        if (now !== undefined && !t.had) added.push(now);
        else if (now === undefined && t.had) removed.push(t.was);
      });
      replies = { added, removed };
    }
    return {
      vips: [...this.vipCounts.values()], replies, healthCheckPorts: this.hcPorts,
      localEndpoints: this.localCounts, noLocalEndpoints: { IPv4: { ...this.noLocal.IPv4 }, IPv6: { ...this.noLocal.IPv6 } },
    };
  }

  /**
   * What Service `nn` adds to the host view, from every family's model, counted in as it is
   * found; null when it has no proxied port.
   */
  private shareOf(nn: string, models: ReadonlyArray<{ family: Family; model: ProxyModel }>, touched: Map<string, Touched> | null): ServiceShare | null {
    const svc = this.services.get(nn);
    if (!svc) return null;
    const share: ServiceShare = { vips: [], replies: [], hc: 0, local: 0, noLocal: [0, 0, 0, 0], inputs: [] };
    // A Service has a few ports and local endpoints: lists, not sets. Counted per family, as each
    // of kube-proxy's single-family proxiers counts (LocalReadyEndpoints): a dual-stack pod is one
    // local endpoint, not two.
    const localIps: [string[], string[]] = [[], []];
    const seen: ServicePortInfo[] = [];
    for (const { family, model } of models) {
      for (const p of svc.spec.ports) {
        const sp = model.services.get(servicePortId(nn, p.name, p.protocol));
        const list = sp ? model.endpoints.get(sp.id) : undefined;
        share.inputs.push(sp, list);
        if (!sp || seen.includes(sp)) continue;
        seen.push(sp);
        for (const ip of sp.externalIPs) share.vips.push(counted(this.vipCounts, ip, sp.protocol, sp.port, null));
        for (const ip of sp.loadBalancerVIPs) share.vips.push(counted(this.vipCounts, ip, sp.protocol, sp.port, null));
        const eps = list ?? [];
        for (let k = 0; k < eps.length; k++) {
          const ep = eps[k]!;
          if (ep.ready || ep.serving) share.replies.push(counted(this.replyCounts, ep.ip, sp.protocol, ep.port, touched));
          const own = localIps[family === 4 ? 0 : 1];
          if (ep.isLocal && ep.ready && !own.includes(ep.ip)) own.push(ep.ip);
        }
        if (sp.externalPolicyLocal && sp.healthCheckNodePort !== 0) share.hc = sp.healthCheckNodePort;
        // kube-proxy's no-local-endpoints count: a Local-policy port that has usable endpoints
        // (ready, else serving and terminating) but none of them on this node; a port without any
        // is not counted (its traffic is rejected, not dropped for want of a local one).
        if (sp.internalPolicyLocal || sp.externalPolicyLocal) {
          const cat = categorizeEndpoints(eps, sp, this.nodeName, NO_LABELS);
          if (cat.hasAnyEndpoints && (cat.localEndpoints?.length ?? 0) === 0) {
            const at = family === 4 ? 0 : 2;
            if (sp.internalPolicyLocal) share.noLocal[at]++;
            if (sp.externalPolicyLocal) share.noLocal[at + 1]++;
          }
        }
      }
    }
    share.local = Math.max(localIps[0].length, localIps[1].length);
    return seen.length > 0 ? share : null;
  }

  /** Adds a Service's share (its addresses counted in already) to the host view. */
  private take(nn: string, s: ServiceShare): void {
    if (s.hc !== 0) this.hcPorts.set(nn, s.hc);
    this.localCounts.set(nn, s.local);
    addNoLocal(this.noLocal, s.noLocal, 1);
  }

  /** Takes a Service's share back out of the host view. */
  private unshare(nn: string, s: ServiceShare, touched: Map<string, Touched> | null): void {
    uncount(this.vipCounts, s.vips, null);
    uncount(this.replyCounts, s.replies, touched);
    this.hcPorts.delete(nn);
    this.localCounts.delete(nn);
    addNoLocal(this.noLocal, s.noLocal, -1);
  }
}

/** When (ms since epoch) a change to a Service's endpoints was made, as its slice's annotation says. */
export interface Trigger { at: number; family: 'IPv4' | 'IPv6'; service: string }

/** Per family, the service ports with a Local traffic policy whose endpoints are all on other nodes. */
export type NoLocalEndpoints = Record<'IPv4' | 'IPv6', { internal: number; external: number }>;

const NO_LABELS: Record<string, string> = {};

function addNoLocal(to: NoLocalEndpoints, n: ServiceShare['noLocal'], sign: 1 | -1): void {
  to.IPv4.internal += sign * n[0];
  to.IPv4.external += sign * n[1];
  to.IPv6.internal += sign * n[2];
  to.IPv6.external += sign * n[3];
}

/** An address of the host view with the number of service ports that need it (read-only outside). */
interface Counted extends AddrPort { readonly key: string; n: number }
/** A reply path a view changed: whether it was there before its first change, and as what. */
interface Touched { had: boolean; was: AddrPort }

/** One Service's part of the host view: the counted addresses it holds a count on. */
interface ServiceShare {
  vips: Counted[];
  replies: Counted[];
  hc: number;
  /** Distinct ready endpoint IPs on this node. */
  local: number;
  /** Its service ports with a Local policy, usable endpoints and none of them local: IPv4 internal, external, IPv6 internal, external. */
  noLocal: [number, number, number, number];
  /** What it was made from: per family model and Service port, the model's entry and endpoint list. */
  inputs: unknown[];
}

/**
 * Whether Service `nn`'s entries in `models` are the very objects `inputs` lists, in the order
 * shareOf() reads them (the model replaces an entry or list, never changes one in place): its
 * share is then the same.
 */
function sameInputs(inputs: readonly unknown[], svc: Service | undefined, nn: string, models: ReadonlyArray<{ model: ProxyModel }>): boolean {
  if (!svc) return false;
  let k = 0;
  for (const { model } of models) {
    for (const p of svc.spec.ports) {
      if (k + 2 > inputs.length) return false;
      const sp = model.services.get(servicePortId(nn, p.name, p.protocol));
      if (sp !== inputs[k] || (sp ? model.endpoints.get(sp.id) : undefined) !== inputs[k + 1]) return false;
      k += 2;
    }
  }
  return k === inputs.length;
}

/** Counts (ip, protocol, port) in once more; `touched` notes the key's state before its first change. */
function counted(m: Map<string, Counted>, ip: string, protocol: Protocol, port: number, touched: Map<string, Touched> | null): Counted {
  const key = `${ip}|${protocol}|${port}`;
  let c = m.get(key);
  if (touched !== null && !touched.has(key)) touched.set(key, { had: c !== undefined, was: c ?? { ip, protocol, port } });
  if (c === undefined) m.set(key, (c = { ip, protocol, port, key, n: 0 }));
  c.n++;
  return c;
}

/** Counts each of `list` out once; one no longer needed leaves the map. */
function uncount(m: Map<string, Counted>, list: Counted[], touched: Map<string, Touched> | null): void {
  for (let i = 0; i < list.length; i++) {
    const c = list[i]!;
    if (touched !== null && !touched.has(c.key)) touched.set(c.key, { had: true, was: c });
    if (--c.n === 0) m.delete(c.key);
  }
}
