// apply-ipvs.ts — the ipvs mode's apply: each family's model brought into the core as kube-proxy's
// ipvs mode would install it (render-ipvs.ts), by difference as proxier.go syncProxyRules does —
// ipset members added/removed, IPVS virtual and real servers added/edited/deleted, the iptables
// rules reloaded only when their text changed — and, between full syncs, from the changed
// Services' own shares alone (what each service port puts in, kept per port). Keeps what it last
// applied per family; never parses Kubernetes objects and never reads a clock (the Dataplane hands
// it the core's pieces).
import type { Family } from './ip.js';
import type { SyncPlan } from './proxy-state.js';
import {
  ipvsContext, ipvsIptables, ipvsPortShare, ipvsSetName, renderIpvs,
  type IpvsRender, type IpvsRenderOptions, type IpvsServer, type PortServer, type PortShare,
} from './render-ipvs.js';
import { servicePortId, type ProxyModel } from './model.js';
import type { ManifestIssue, ServicePort } from './objects.js';
import type { IptablesOptions } from './render-iptables.js';
import { SCHEDULERS, isScheduler, type IpvsProgram, type DesiredService, type Scheduler, type SchedFlag, type ServiceInfo, type RefusedDest } from '../ipvs/program.js';
import type { IpsetTable } from '../ipset/index.js';
import { splitHostPort } from '../core/svc-config.js';

/** What an ipvs-mode sync changed in the core, per family. */
export interface IpvsApplied {
  /** IPVS calls: services/destinations added, edited (weight 0 for a leaving one included), deleted. */
  added: number; edited: number; deleted: number;
  /** Leaving TCP destinations kept at weight 0 while they still have connections. */
  terminating: number;
  /** ipset members added and removed. */
  setAdds: number; setDels: number;
  /** The iptables rules were reloaded (their text changed). */
  iptables: boolean;
}

/** One family's sync as apply() reports it. */
export interface IpvsFamilyApplied {
  family: Family; full: boolean; changedServices: string[]; filterRules: number; natRules: number; touched: string[];
  ipvs: IpvsApplied;
}

/** The Dataplane pieces an ipvs-mode sync drives. */
export interface IpvsTarget {
  /** The IPVS tables, reserved at the first call with `init`'s sizes (later calls ignore it). */
  ipvs(init?: { services?: number; destinations?: number }): IpvsProgram;
  readonly ipset: IpsetTable;
  iptablesRestore(text: string, opts: { family: Family }): unknown;
}

/** What the renderer needs besides the model. */
export interface IpvsSyncInput {
  nodeName: string;
  nodeIPs: string[];
  topologyLabels: Record<string, string>;
  podCIDR: string | undefined;
  iptables: IptablesOptions | undefined;
  ipvs: IpvsRenderOptions | undefined;
}

/** `-A` lines of one table in iptables-restore text. */
export function ruleCount(text: string, table: string): number {
  const at = text.indexOf(table + '\n');
  if (at < 0) return 0;
  const end = text.indexOf('\nCOMMIT', at);
  return text.slice(at, end < 0 ? undefined : end).split('\n').filter((l) => l.startsWith('-A ')).length;
}

/** The kube-proxy settings both proxiers read (its --nodeport-addresses, --masquerade-all, …), given once in `iptables`. */
function sharedIpvsOptions(o: IptablesOptions | undefined): IpvsRenderOptions {
  if (!o) return {};
  const keys = ['hostAddresses', 'nodePortAddresses', 'masqueradeAll', 'masqueradeBit', 'masqueradeMark', 'localDetector', 'clusterCIDR', 'podCIDR', 'randomFully'] as const;
  const out: Record<string, unknown> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out as IpvsRenderOptions;
}

/**
 * One family's last sync: its virtual servers as applied (weight-0 draining real servers included)
 * and as rendered, by serverKey; the keys of those still draining; the ipset text and members; the
 * rules text.
 */
type Applied = {
  servers: Map<string, DesiredService>; rendered: Map<string, IpvsServer>; draining: Set<string>;
  ipset: string; sets: Map<string, Set<string>>; iptables: string;
  /** What each service port put in (see Shares); null until a sync made them. */
  shares: Shares | null;
};

/**
 * The last sync's state by service port, so the next can take back a changed port's share and
 * put its new one in: set members counted over the ports naming them, and each virtual server's
 * ports (several ports may name one).
 */
type Shares = {
  /** The render options it was made under (a sync under others starts over). */
  optsKey: string;
  /** Service port id → its share. */
  byPort: Map<string, PortShare>;
  /** Service "ns/name" → the ids of its ports that have a share. */
  idsOf: Map<string, string[]>;
  /** "set entry" (IPv4 set name) → ports naming it. */
  members: Map<string, number>;
  /** Virtual server key → port id → that port's part of it. */
  serverParts: Map<string, Map<string, PortServer>>;
  /** Port id → the LB VIPs it keeps the node from (only ports that have some). */
  blocked: Map<string, PortShare['noNodeAccess']>;
};

/** The key of a virtual server as rendered (its addresses are already canonical). */
const serverKey = (d: { protocol?: string; address?: string; port?: number }): string => `${d.protocol} ${d.address} ${d.port}`;

/** A rendered virtual server as IpvsProgram takes it: masquerading real servers of weight 1. */
function desiredOf(vs: IpvsServer): DesiredService {
  const dests = vs.dests.map((d) => { const h = splitHostPort(d)!; return { address: h.host, port: h.port, forwarding: 'masq' as const, weight: 1 }; });
  return {
    protocol: vs.protocol, address: vs.address, port: vs.port, scheduler: vs.scheduler as Scheduler,
    ...(vs.persistence !== null ? { persistent: vs.persistence } : {}), schedFlags: vs.schedFlags as SchedFlag[], destinations: dests,
  };
}

/** The same scheduler, flags, persistence and real servers (in order; all weight 1, masquerading). */
function sameServer(a: IpvsServer, b: IpvsServer): boolean {
  if (a.scheduler !== b.scheduler || a.persistence !== b.persistence) return false;
  const fa = a.schedFlags, fb = b.schedFlags, da = a.dests, db = b.dests;
  if (fa.length !== fb.length || da.length !== db.length) return false;
  for (let i = 0; i < fa.length; i++) if (fa[i] !== fb[i]) return false;
  for (let i = 0; i < da.length; i++) if (da[i] !== db[i]) return false;
  return true;
}

/**
 * Appends to `want` (a TCP service) at weight 0 each live real server it no longer has that still
 * has connections (graceful_termination.go); true when there is one.
 */
function keepDraining(live: ServiceInfo, want: DesiredService, applied: IpvsApplied): boolean {
  const keep = new Set(want.destinations.map((d) => `${d.address}:${d.port}`));
  let any = false;
  for (const d of live.destinations) {
    if (keep.has(`${d.address}:${d.port}`) || d.activeConns + d.inactConns === 0) continue;
    want.destinations.push({ address: d.address, port: d.port, forwarding: 'masq', weight: 0 });
    applied.terminating++;
    any = true;
  }
  return any;
}

export class IpvsApply {
  /** Per family, the virtual servers, set members and rules text last applied (see Applied). */
  private readonly state = new Map<Family, Applied>();

  /** Where the sync in progress reports ipset members it could not add, and whether it did. */
  private issues: ManifestIssue[] = [];
  private refused = false;

  constructor(private readonly target: IpvsTarget) {}

  /**
   * One ipset member added, as kube-proxy's syncIPSetEntries() adds each: a set that refuses it
   * (full at its maxelem) is reported and the sync goes on with the virtual servers. False then.
   */
  private addMember(name: string, entry: string): boolean {
    try {
      this.target.ipset.command(['add', name, ...entry.split(' '), '-exist']);
      return true;
    } catch (e) {
      this.issues.push({ severity: 'error', object: `ipset ${name}`, path: entry, message: `ipvs mode: ipset ${name}: ${entry}: ${(e as Error).message}` });
      this.refused = true;
      return false;
    }
  }

  /** Forgets what was applied (the core's IPVS tables and sets were flushed). */
  reset(): void { this.state.clear(); }

  /** A sync has brought Services into the core (and none has been forgotten since). */
  get synced(): boolean { return this.state.size > 0; }

  /**
   * One ipvs-mode sync (pkg/proxy/ipvs/proxier.go syncProxyRules), brought into the core by
   * difference: set members added/removed (the sets exist before any rule names them), virtual
   * and real servers added/edited/deleted, and the iptables rules reloaded only when their text
   * changed. A family's first sync, and a full plan, render the whole model and read every virtual
   * server back (IpvsProgram.apply, which leaves unchanged ones and their connections alone). The
   * syncs in between take back the share of each port of a changed Service and put its new one in
   * (portsOf: a Service's ports as last applied), so a change to one Service costs that Service's
   * work whatever the cluster's size — where kube-proxy renders everything every time; a virtual
   * server edited behind the sync's back (ipvsadm) is put right at the next full sync. A TCP real
   * server that leaves is kept at weight 0 while it still has connections (graceful_termination.go:
   * UDP/SCTP ones go at once, expire_nodest_conn drops their flows); the virtual servers holding
   * one are read back every sync until it is deleted. The sysctls kube-proxy sets (proxier.go
   * NewProxier): conntrack, expire_nodest_conn and expire_quiescent_template = 1. A refused step
   * throws, after forgetting what was applied (the caller makes the next sync full).
   */
  /** Refuses settings no sync could apply, before anything changes (kube-proxy refuses them at start-up). */
  static check(ipvs: IpvsRenderOptions | undefined): void {
    const s = ipvs?.scheduler;
    if (s && !isScheduler(s)) {
      throw new Error(`ipvs.scheduler: unknown scheduler ${JSON.stringify(s)} (one of ${SCHEDULERS.join(', ')})`);
    }
  }

  sync(plans: SyncPlan[], input: IpvsSyncInput, portsOf: (nn: string) => readonly ServicePort[] | undefined = () => undefined, issues: ManifestIssue[] = []): IpvsFamilyApplied[] {
    this.issues = issues;
    this.refused = false;
    const opts: IpvsRenderOptions = {
      nodeName: input.nodeName, nodeIPs: input.nodeIPs, topologyLabels: input.topologyLabels,
      ...(input.podCIDR ? { clusterCIDR: input.podCIDR } : {}), ...sharedIpvsOptions(input.iptables), ...input.ipvs,
    };
    const optsKey = JSON.stringify(opts);
    const state = this.state;
    // A family whose last sync left its shares under the same options takes the changes alone.
    const byChange = (plan: SyncPlan): boolean => plan.changedServices !== null && state.get(plan.family)?.shares?.optsKey === optsKey;
    const wholes = plans.map((plan) => (byChange(plan) ? null : renderWhole(plan.model, opts, optsKey)));
    // The core's pools are first sized when IPVS is set up: room for twice the first sync's
    // virtual and real servers (the defaults at least); they double when full after that.
    const servers0 = wholes.reduce((n, w) => n + (w?.render.servers.length ?? 0), 0);
    const dests0 = wholes.reduce((n, w) => n + (w?.render.servers.reduce((m, vs) => m + vs.dests.length, 0) ?? 0), 0);
    const program = this.target.ipvs({ services: Math.max(4096, 2 * servers0), destinations: Math.max(65536, 2 * dests0) });
    const out: IpvsFamilyApplied[] = [];
    if (state.size === 0) for (const s of ['conntrack', 'expire_nodest_conn', 'expire_quiescent_template', 'persist_strict'] as const) program.setSysctl(s, 1);
    try {
      for (const [i, plan] of plans.entries()) {
        const whole = wholes[i];
        const applied: IpvsApplied = { added: 0, edited: 0, deleted: 0, terminating: 0, setAdds: 0, setDels: 0, iptables: false };
        let next = whole ? this.syncWhole(plan, whole, program, applied) : this.syncChanges(plan, opts, portsOf, program, applied);
        // A member a set refused: the next sync renders every set whole and adds what is missing
        // (kube-proxy compares every set with the kernel's at each sync).
        if (this.refused) next = { ...next, ipset: '', shares: null };
        state.set(plan.family, next);
        out.push({
          family: plan.family, full: plan.changedServices === null, changedServices: [...(plan.changedServices ?? [])].sort(),
          filterRules: ruleCount(next.iptables, '*filter'), natRules: ruleCount(next.iptables, '*nat'), touched: [], ipvs: applied,
        });
      }
    } catch (e) {
      state.clear();
      throw e;
    }
    return out;
  }

  /** A sync from the whole render: every member, virtual server and rule compared with the last. */
  private syncWhole(plan: SyncPlan, whole: Whole, program: IpvsProgram, applied: IpvsApplied): Applied {
    const state = this.state;
    const r = whole.render;
    const prev: Applied = state.get(plan.family) ?? { servers: new Map(), rendered: new Map(), draining: new Set(), ipset: '', sets: new Map(), iptables: '', shares: null };
    // ipsets: create what is new, then add and delete members (none when the text is the same).
    const sameSets = state.has(plan.family) && r.ipset === prev.ipset;
    const sets = sameSets ? prev.sets : new Map<string, Set<string>>();
    const lines: string[] = [];
    if (!sameSets) for (const line of r.ipset.split('\n')) {
      const w = line.split(' ');
      if (w[0] === 'create') { sets.set(w[1]!, new Set()); if (!prev.sets.has(w[1]!)) lines.push(line, `flush ${w[1]}`); }
      else if (w[0] === 'add') sets.get(w[1]!)!.add(w.slice(2).join(' '));
    }
    if (!sameSets) for (const [name, want] of sets) {
      const had = prev.sets.get(name) ?? new Set<string>();
      for (const e of want) if (!had.has(e)) lines.push(`add ${name} ${e}`), applied.setAdds++;
      for (const e of had) if (!want.has(e)) lines.push(`del ${name} ${e}`), applied.setDels++;
    }
    if (lines.length) {
      try {
        this.target.ipset.restore(lines.join('\n') + '\n', { exist: true });
      } catch {
        // Taken whole or not at all: then line by line, leaving out (and reporting) each member a
        // set refuses, so that the next sync tries it again.
        for (const line of lines) {
          const w = line.split(' ');
          if (w[0] === 'add') {
            if (!this.addMember(w[1]!, w.slice(2).join(' '))) { sets.get(w[1]!)!.delete(w.slice(2).join(' ')); applied.setAdds--; }
          } else {
            this.target.ipset.restore(line + '\n', { exist: true });
          }
        }
      }
    }
    // Virtual servers: the other family's stay as they are; leaving TCP real servers drain.
    const full = !state.has(plan.family) || plan.changedServices === null;
    const servers = new Map<string, DesiredService>();
    const draining = new Set<string>();
    const upserts: DesiredService[] = [];
    const rendered = new Map<string, IpvsServer>();
    for (const vs of r.servers) {
      const key = serverKey(vs);
      rendered.set(key, vs);
      const had = prev.servers.get(key), was = prev.rendered.get(key);
      // Unchanged and not draining: nothing to read back or call.
      if (!full && had && was && !prev.draining.has(key) && sameServer(was, vs)) { servers.set(key, had); continue; }
      const want = desiredOf(vs);
      if (vs.protocol === 'tcp' && drains(program, want, applied)) draining.add(key);
      servers.set(key, want);
      upserts.push(want);
    }
    // A real server the core refuses (not a unicast address) is reported; the rest applies.
    const refusedDest: RefusedDest = (vs, dest, e) => {
      this.issues.push({ severity: 'error', object: `IPVS ${vs.protocol ?? 'fwmark'} ${vs.address ?? vs.fwmark}:${vs.port ?? 0}`, path: `${dest.address}:${dest.port}`, message: `ipvs mode: real server ${dest.address}:${dest.port} refused: ${e.message}` });
    };
    if (full) {
      Object.assign(applied, program.apply([...servers.values()], plan.family, refusedDest));
    } else {
      const removed = [...prev.servers.values()].filter((d) => !servers.has(serverKey(d)));
      Object.assign(applied, program.applyChanges(upserts, removed, refusedDest));
    }
    if (r.iptables !== prev.iptables) {
      this.target.iptablesRestore(r.iptables, { family: plan.family });
      applied.iptables = true;
    }
    return { servers, rendered, draining, ipset: r.ipset, sets, iptables: r.iptables, shares: whole.shares };
  }

  /**
   * A sync of the changed Services alone: each port of theirs takes its old share back out and
   * puts its new one in; the members, virtual servers and rules that moved are applied.
   */
  private syncChanges(plan: SyncPlan, opts: IpvsRenderOptions, portsOf: (nn: string) => readonly ServicePort[] | undefined, program: IpvsProgram, applied: IpvsApplied): Applied {
    const prev = this.state.get(plan.family)!;
    const sh = prev.shares!;
    const family = plan.family, model = plan.model;
    const ctx = ipvsContext(family, opts);
    const moved: Moved = { members: new Map(), keys: new Set(prev.draining) };
    for (const nn of plan.changedServices!) {
      for (const id of sh.idsOf.get(nn) ?? []) {
        countShare(sh, id, sh.byPort.get(id)!, -1, moved);
        sh.byPort.delete(id);
      }
      const ids: string[] = [];
      for (const p of portsOf(nn) ?? []) {
        const id = servicePortId(nn, p.name, p.protocol);
        const sp = model.services.get(id);
        if (!sp || ids.includes(id)) continue;
        ids.push(id);
        const share = ipvsPortShare(ctx, sp, model.endpoints.get(id) ?? []);
        sh.byPort.set(id, share);
        countShare(sh, id, share, 1, moved);
      }
      if (ids.length > 0) sh.idsOf.set(nn, ids);
      else sh.idsOf.delete(nn);
    }
    // ipset members that came or went, one command each as kube-proxy's syncIPSetEntries adds and
    // deletes them (a restore would copy each set it touches; the sets stay, made by the first sync).
    for (const [m, had] of moved.members) {
      const has = sh.members.has(m);
      if (has === had) continue;
      const space = m.indexOf(' ');
      const name = ipvsSetName(m.slice(0, space), family), entry = m.slice(space + 1);
      const set = prev.sets.get(name)!;
      if (has) {
        if (this.addMember(name, entry)) set.add(entry), applied.setAdds++;
      } else {
        this.target.ipset.command(['del', name, ...entry.split(' '), '-exist']);
        set.delete(entry), applied.setDels++;
      }
    }
    // Virtual servers of the changed ports, and those still draining.
    const scheduler = opts.scheduler || 'rr';
    const servers = prev.servers, rendered = prev.rendered;
    const draining = new Set<string>();
    const upserts: DesiredService[] = [];
    const removed: DesiredService[] = [];
    for (const key of moved.keys) {
      const parts = sh.serverParts.get(key);
      if (!parts) {
        const had = servers.get(key);
        if (had) removed.push(had), servers.delete(key), rendered.delete(key);
        continue;
      }
      const vs = mergedServer(parts, scheduler);
      const had = servers.get(key), was = rendered.get(key);
      if (had && was && !prev.draining.has(key) && sameServer(was, vs)) continue;
      const want = desiredOf(vs);
      if (vs.protocol === 'tcp' && drains(program, want, applied)) draining.add(key);
      servers.set(key, want);
      rendered.set(key, vs);
      upserts.push(want);
    }
    Object.assign(applied, program.applyChanges(upserts, removed));
    // The rules: fixed but for which sets have members and the LB VIPs the node must not reach.
    const blocked = [...sh.blocked.keys()].sort(byId).flatMap((id) => sh.blocked.get(id)!);
    const iptables = ipvsIptables(family, opts, (set) => prev.sets.get(ipvsSetName(set, family))!.size > 0, blocked);
    if (iptables !== prev.iptables) {
      this.target.iptablesRestore(iptables, { family });
      applied.iptables = true;
    }
    // The ipset text is no longer what the sets hold: the next whole sync diffs by member.
    return { servers, rendered, draining, ipset: '', sets: prev.sets, iptables, shares: sh };
  }
}

/** Ids in the order renders walk service ports (ProxyModel.sortedServices). */
const byId = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** A whole render, made from the shares of every service port (kept for the syncs after it). */
type Whole = { render: IpvsRender; shares: Shares };

function renderWhole(model: ProxyModel, opts: IpvsRenderOptions, optsKey: string): Whole {
  const shares: Shares = { optsKey, byPort: new Map(), idsOf: new Map(), members: new Map(), serverParts: new Map(), blocked: new Map() };
  const render = renderIpvs(model, opts, (sp, share) => {
    shares.byPort.set(sp.id, share);
    const ids = shares.idsOf.get(sp.namespacedName);
    if (ids) ids.push(sp.id);
    else shares.idsOf.set(sp.namespacedName, [sp.id]);
    countShare(shares, sp.id, share, 1, null);
  });
  return { render, shares };
}

/** What a sync moved: members touched (→ whether each was there before), virtual servers to look at again. */
type Moved = { members: Map<string, boolean>; keys: Set<string> };

/** Counts a port's share in (d = 1) or out (d = -1) of `sh`, noting in `moved` what it touched. */
function countShare(sh: Shares, id: string, share: PortShare, d: 1 | -1, moved: Moved | null): void {
  for (let k = 0; k < share.entries.length; k += 2) {
    const m = `${share.entries[k]} ${share.entries[k + 1]}`;
    const n = sh.members.get(m) ?? 0;
    if (moved !== null && !moved.members.has(m)) moved.members.set(m, n > 0);
    if (n + d > 0) sh.members.set(m, n + d);
    else sh.members.delete(m);
  }
  for (const ps of share.servers) {
    moved?.keys.add(ps.key);
    let parts = sh.serverParts.get(ps.key);
    if (d > 0) {
      if (!parts) sh.serverParts.set(ps.key, (parts = new Map()));
      parts.set(id, ps);
    } else if (parts) {
      parts.delete(id);
      if (parts.size === 0) sh.serverParts.delete(ps.key);
    }
  }
  if (share.noNodeAccess.length > 0) {
    if (d > 0) sh.blocked.set(id, share.noNodeAccess);
    else sh.blocked.delete(id);
  }
}

/** A virtual server from its ports' parts, as a whole render makes it (persistence of the last port by id). */
function mergedServer(parts: Map<string, PortServer>, scheduler: string): IpvsServer {
  let last: PortServer | null = null, lastId = '';
  const dests = new Set<string>();
  for (const [id, ps] of parts) {
    if (last === null || id > lastId) last = ps, lastId = id;
    for (const d of ps.dests) dests.add(d);
  }
  return {
    protocol: last!.protocol, address: last!.address, port: last!.port, scheduler, persistence: last!.persistence,
    schedFlags: scheduler === 'mh' ? ['mh-port'] : [], dests: [...dests].sort(),
  };
}

/** keepDraining for a TCP virtual server the core holds: true when one of its real servers drains. */
function drains(program: IpvsProgram, want: DesiredService, applied: IpvsApplied): boolean {
  const id = program.findService(want);
  return id !== undefined && keepDraining(program.service(id), want, applied);
}
