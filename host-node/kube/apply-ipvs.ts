// apply-ipvs.ts — the ipvs mode's apply: each family's model rendered as kube-proxy's ipvs mode
// (render-ipvs.ts) and brought into the core by difference, as proxier.go syncProxyRules does —
// ipset members added/removed, IPVS virtual and real servers added/edited/deleted, the iptables
// rules reloaded only when their text changed. Keeps what it last applied per family; never
// parses Kubernetes objects and never reads a clock (the Dataplane hands it the core's pieces).
import type { Family } from './ip.js';
import type { SyncPlan } from './proxy-state.js';
import { renderIpvs, type IpvsRenderOptions, type IpvsServer } from './render-ipvs.js';
import type { IptablesOptions } from './render-iptables.js';
import type { IpvsProgram, DesiredService, Scheduler, SchedFlag, ServiceInfo } from '../ipvs/program.js';
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

  constructor(private readonly target: IpvsTarget) {}

  /** Forgets what was applied (the core's IPVS tables and sets were flushed). */
  reset(): void { this.state.clear(); }

  /** A sync has brought Services into the core (and none has been forgotten since). */
  get synced(): boolean { return this.state.size > 0; }

  /**
   * One ipvs-mode sync (pkg/proxy/ipvs/proxier.go syncProxyRules): the render of each family's
   * model is brought into the core by difference — set members added/removed (the sets exist before
   * any rule names them), virtual servers and real servers added/edited/deleted, and the iptables
   * rules reloaded only when their text changed. A family's first sync, and a full plan, read every
   * virtual server back (IpvsProgram.apply, which leaves unchanged ones and their connections alone);
   * the syncs in between compare each rendered virtual server with the one last applied and hand
   * only those new, changed or gone to IpvsProgram.applyChanges, so a change to one Service costs
   * that Service's work (a virtual server edited behind the sync's back, e.g. with ipvsadm, is put
   * right at the next full sync). A TCP real server that leaves is kept at weight 0 while it still
   * has connections (graceful_termination.go: UDP/SCTP ones go at once, expire_nodest_conn drops
   * their flows); the virtual servers holding one are read back every sync until it is deleted. The sysctls kube-proxy sets (proxier.go NewProxier): conntrack,
   * expire_nodest_conn and expire_quiescent_template = 1. A refused step throws, after forgetting
   * what was applied (the caller makes the next sync full).
   */
  sync(plans: SyncPlan[], input: IpvsSyncInput): IpvsFamilyApplied[] {
    const renders = plans.map((plan) => renderIpvs(plan.model, {
      nodeName: input.nodeName, nodeIPs: input.nodeIPs, topologyLabels: input.topologyLabels,
      ...(input.podCIDR ? { clusterCIDR: input.podCIDR } : {}), ...sharedIpvsOptions(input.iptables), ...input.ipvs,
    }));
    // The core's pools are fixed when IPVS is first set up: room for twice the first sync's
    // virtual and real servers (and the defaults at least), so a cluster of any size starts.
    const servers0 = renders.reduce((n, r) => n + r.servers.length, 0);
    const dests0 = renders.reduce((n, r) => n + r.servers.reduce((m, vs) => m + vs.dests.length, 0), 0);
    const program = this.target.ipvs({ services: Math.max(4096, 2 * servers0), destinations: Math.max(65536, 2 * dests0) });
    const state = this.state;
    const out: IpvsFamilyApplied[] = [];
    if (state.size === 0) for (const s of ['conntrack', 'expire_nodest_conn', 'expire_quiescent_template', 'persist_strict'] as const) program.setSysctl(s, 1);
    try {
      for (const [i, plan] of plans.entries()) {
        const r = renders[i]!;
        const prev: Applied = state.get(plan.family) ?? { servers: new Map(), rendered: new Map(), draining: new Set(), ipset: '', sets: new Map(), iptables: '' };
        const applied: IpvsApplied = { added: 0, edited: 0, deleted: 0, terminating: 0, setAdds: 0, setDels: 0, iptables: false };
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
        if (lines.length) this.target.ipset.restore(lines.join('\n') + '\n', { exist: true });
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
          if (vs.protocol === 'tcp') {
            const id = program.findService(want);
            if (id !== undefined && keepDraining(program.service(id), want, applied)) draining.add(key);
          }
          servers.set(key, want);
          upserts.push(want);
        }
        if (full) {
          const others = [...state].filter(([f]) => f !== plan.family).flatMap(([, s]) => [...s.servers.values()]);
          Object.assign(applied, program.apply([...others, ...servers.values()]));
        } else {
          const removed = [...prev.servers.values()].filter((d) => !servers.has(serverKey(d)));
          Object.assign(applied, program.applyChanges(upserts, removed));
        }
        if (r.iptables !== prev.iptables) {
          this.target.iptablesRestore(r.iptables, { family: plan.family });
          applied.iptables = true;
        }
        state.set(plan.family, { servers, rendered, draining, ipset: r.ipset, sets, iptables: r.iptables });
        out.push({
          family: plan.family, full: plan.changedServices === null, changedServices: [...(plan.changedServices ?? [])].sort(),
          filterRules: ruleCount(r.iptables, '*filter'), natRules: ruleCount(r.iptables, '*nat'), touched: [], ipvs: applied,
        });
      }
    } catch (e) {
      state.clear();
      throw e;
    }
    return out;
  }
}
