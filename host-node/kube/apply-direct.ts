// apply-direct.ts — the direct mode's apply: each changed service port of a family's model (every
// one on a full sync) rendered as one entry of the core's direct service table (render-direct.ts)
// and put into it, or deleted when gone, all framed straight into the core's config buffer and run
// by the core in one svcApply call (each op atomic on its own). Remembers which slot holds which
// service port, and tells it.
// Never renders rule text, never parses Kubernetes objects, never reads a clock.
import type { Family } from './ip.js';
import type { ManifestIssue, ServicePort } from './objects.js';
import { servicePortId, type EndpointInfo, type ServicePortInfo } from './model.js';
import type { SyncPlan } from './proxy-state.js';
import { blankDirectService, directPutBound, nodePortReach, renderDirectService, type DirectRenderOptions } from './render-direct.js';
import { DirectOpBuffer, runDirectOps, setNodePortReach, DIRECT_ERRORS, type DirectCore } from '../core/svc-config.js';

/** Entries written (inserted or replaced) and removed by one family's sync. */
export interface DirectApplied { put: number; removed: number }

/** One family's sync as apply() reports it (no rules: the direct mode writes none). */
export interface DirectFamilyApplied {
  family: Family; full: boolean; changedServices: string[]; filterRules: number; natRules: number; touched: string[];
  direct: DirectApplied;
}

/** The Service of a service port id ("ns/name:port/TCP" → "ns/name"; names and ports hold no ':', objects.ts refuses such names). */
const serviceOf = (id: string): string => id.slice(0, id.indexOf(':'));

const E_DUPLICATE = -6;
/** New service ports in a full sync from which the core is asked to make room for all at once. */
const RESERVE_FROM = 256;
/** The most frame bytes (beyond a single bigger op) one svcApply call of a sync carries. */
const CHUNK_BYTES = 64 * 1024;
/** A delete op's frame: op, slot and a zero length. */
const DELETE_FRAME_BYTES = 12;
const NO_ENDPOINTS: readonly EndpointInfo[] = Object.freeze([]);

export class DirectApply {
  /**
   * Per family: Service ("ns/name") → the slots of its service ports in the core's table, chained
   * (one map for both questions, "which slot holds this id" and "which ids does this Service have").
   */
  private readonly byService: Record<Family, Map<string, SlotRef>> = { 4: new Map(), 6: new Map() };
  /**
   * Per family, the Services a port of which the core refused in the last sync (its address and
   * port held by another Service): each later sync puts them again, since the refusal may be gone
   * (the other Service moved or was deleted) while their objects, unchanged, would not be synced.
   */
  private readonly refused: Record<Family, Set<string>> = { 4: new Set(), 6: new Set() };
  private hostIds = 0;
  private readonly ops = new DirectOpBuffer();
  /** Each put is rendered into this one and encoded before the next. */
  private readonly scratch = blankDirectService();

  /** `core` returns the core's exports; `refresh` renews the Dataplane's memory views after a call. */
  constructor(private readonly core: () => DirectCore, private readonly refresh: () => void) {}

  /** The core's slot of service port `id` ("ns/name:port/TCP") of `family`, if it has one. */
  slot(family: Family, id: string): number | undefined {
    return slotOf(this.byService[family], serviceOf(id), id);
  }

  /** Every service port of `family` in the core's table, with its slot. */
  *ports(family: Family): IterableIterator<[string, number]> {
    for (const first of this.byService[family].values()) for (let ref: SlotRef | null = first; ref !== null; ref = ref.next) yield [ref.id, ref.slot];
  }

  /** Removes every entry from the core's table and forgets them. */
  clear(): void {
    this.ops.reset();
    this.ops.push({ op: 'clear' });
    runDirectOps(this.core(), this.ops.bytes());
    this.refresh();
    for (const f of [4, 6] as const) {
      this.byService[f].clear();
      this.refused[f].clear();
    }
  }

  /**
   * One family's sync: every service port of the changed Services (all of them on a full sync,
   * `plan.changedServices` null) is put into the core's table, or removed when gone. `portsOf`
   * gives a changed Service's ports as last applied. A service the core refuses keeps its old
   * entries, is reported in `issues` (object, field, message) and is put again in the next sync.
   */
  apply(plan: SyncPlan, portsOf: (nn: string) => readonly ServicePort[] | undefined, ropts: DirectRenderOptions, issues: ManifestIssue[]): DirectFamilyApplied {
    const core = this.core();
    const family = plan.family;
    setNodePortReach(core, nodePortReach(family, ropts));
    const byService = this.byService[family];
    const model = plan.model;
    // ops[i] removes (sp undefined) or puts service port ids[i].
    const ids: string[] = [];
    const sps: Array<ServicePortInfo | undefined> = [];
    // A full sync into a table holding nothing of this family (the first one) puts each service
    // port once, every one new: no slot to look up.
    const fresh = plan.changedServices === null && byService.size === 0;
    const retried = this.refused[family];
    const changed = plan.changedServices === null || retried.size === 0 ? plan.changedServices : new Set([...plan.changedServices, ...retried]);
    retried.clear();
    if (plan.changedServices === null) {
      byService.forEach((first) => {
        for (let ref: SlotRef | null = first; ref !== null; ref = ref.next) if (!model.services.has(ref.id)) ids.push(ref.id), sps.push(undefined);
      });
      let added = 0, frontends = 0;
      model.services.forEach((sp) => {
        ids.push(sp.id);
        sps.push(sp);
        if (!fresh && slotOf(byService, sp.namespacedName, sp.id) !== undefined) return;
        added++;
        frontends += 1 + sp.externalIPs.length + sp.loadBalancerVIPs.length + (sp.nodePort !== 0 ? 1 : 0);
      });
      // A first sync puts thousands: the table makes room for them at once instead of doubling
      // its way there. Only a hint: a put that finds no room still grows it (or is refused).
      if (added >= RESERVE_FROM) core.svcReserve(core.serviceCount() + added, core.svcFrontends() + frontends);
    } else {
      // Removals first: a put may reuse an address a removed service held.
      const puts: ServicePortInfo[] = [];
      for (const nn of changed!) {
        const before = puts.length;
        for (const p of portsOf(nn) ?? []) {
          const sp = model.services.get(servicePortId(nn, p.name, p.protocol));
          if (sp) puts.push(sp);
        }
        for (let ref = byService.get(nn) ?? null; ref !== null; ref = ref.next) {
          let kept = false;
          for (let k = before; k < puts.length && !kept; k++) kept = puts[k]!.id === ref.id;
          if (!kept) ids.push(ref.id), sps.push(undefined);
        }
      }
      for (const sp of puts) ids.push(sp.id), sps.push(sp);
    }
    const report = (i: number, path: string, message: string) => {
      issues.push({ severity: 'error', object: `Service ${serviceOf(ids[i]!)}`, path, message: `direct mode: ${ids[i]}: ${message}` });
    };
    const done = { put: 0, removed: 0 };
    const retry: number[] = [];
    // The endpoints of the chunk's op j at lists[j - from], looked up once for its bound and its put.
    const lists: Array<readonly EndpointInfo[]> = [];
    const settle = (batch: number[] | null, final: boolean) => {
      const count = batch === null ? ids.length : batch.length;
      for (let from = 0, to = 0; from < count; from = to) {
        // A chunk of ops that fits CHUNK_BYTES (one op at least): the core's config buffer stays
        // small, its memory touched once (a first sync would otherwise fill megabytes of pages
        // fresh from the kernel). The ops are independent, so chunks behave as one batch.
        let bound = 0;
        for (; to < count; to++) {
          const sp = sps[batch === null ? to : batch[to]!];
          const eps = sp === undefined ? NO_ENDPOINTS : model.endpoints.get(sp.id) ?? NO_ENDPOINTS;
          const b = sp === undefined ? DELETE_FRAME_BYTES : directPutBound(sp, eps.length);
          if (to > from && bound + b > CHUNK_BYTES) break;
          bound += b;
          lists[to - from] = eps;
        }
        chunk(batch, from, to, bound, final);
      }
    };
    /** Frames, runs and settles ops [from, to) of `batch` (all ops when null), whose frames take at most `bound` bytes. */
    const chunk = (batch: number[] | null, from: number, to: number, bound: number, final: boolean) => {
      const buf = this.ops;
      // The ops are written straight into the core's config buffer, sized for the most they can take.
      buf.resetInCore(core, bound);
      // sent[j] is the op index of the j-th framed op (bad services are left out).
      const sent: number[] = [];
      for (let j = from; j < to; j++) {
        const i = batch === null ? j : batch[j]!;
        const sp = sps[i];
        const slot = fresh ? undefined : slotOf(byService, sp === undefined ? serviceOf(ids[i]!) : sp.namespacedName, ids[i]!);
        let e = null;
        if (sp === undefined) buf.delete(slot!);
        else e = buf.put(slot ?? -1, renderDirectService(sp, lists[j - from]!, ropts, ++this.hostIds >>> 0, this.scratch));
        if (e) report(i, e.field, e.message);
        else sent.push(i);
      }
      const results = buf.run(core);
      this.refresh();
      for (let r = 0; r < sent.length; r++) {
        const i = sent[r]!;
        const rc = results[r]!;
        const id = ids[i]!;
        if (sps[i] === undefined) {
          forget(byService, serviceOf(id), id);
          done.removed++;
        } else if (rc >= 0) {
          remember(byService, sps[i]!.namespacedName, id, rc);
          done.put++;
        } else if (rc === E_DUPLICATE && !final) {
          retry.push(i);   // its address may be freed by a later op of this sync
        } else {
          report(i, 'spec', DIRECT_ERRORS[rc] ?? `error ${rc}`);
          retried.add(serviceOf(id));
        }
      }
    };
    settle(null, false);
    if (retry.length > 0) settle(retry.splice(0), true);
    return {
      family, full: plan.changedServices === null, changedServices: [...(plan.changedServices ?? [])].sort(),
      filterRules: 0, natRules: 0, touched: [], direct: done,
    };
  }
}

/** One service port's slot, and the next port of its Service. */
interface SlotRef { readonly id: string; slot: number; next: SlotRef | null }

function slotOf(byService: Map<string, SlotRef>, nn: string, id: string): number | undefined {
  for (let ref = byService.get(nn) ?? null; ref !== null; ref = ref.next) if (ref.id === id) return ref.slot;
  return undefined;
}

function remember(byService: Map<string, SlotRef>, nn: string, id: string, slot: number): void {
  const first = byService.get(nn);
  for (let ref = first ?? null; ref !== null; ref = ref.next) {
    if (ref.id === id) {
      ref.slot = slot;
      return;
    }
  }
  byService.set(nn, { id, slot, next: first ?? null });
}

function forget(byService: Map<string, SlotRef>, nn: string, id: string): void {
  let prev: SlotRef | null = null;
  for (let ref = byService.get(nn) ?? null; ref !== null; prev = ref, ref = ref.next) {
    if (ref.id !== id) continue;
    if (prev !== null) prev.next = ref.next;
    else if (ref.next !== null) byService.set(nn, ref.next);
    else byService.delete(nn);
    return;
  }
}
