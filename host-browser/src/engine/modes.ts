// modes.ts — the playground's modes, each a Runner over its own Dataplane: load objects, show
// the rules, explain a packet, send one or a burst. Shared: a Dataplane for this node, fresh
// source ports across bursts, packets through processBatch counted by outcome, the connection a
// packet belongs to, collapsed runs of skipped rules in a trace.
// iptables: objects go through Dataplane.apply (kube-proxy's trackers and iptables renderer,
// partial syncs after the first); rules are the live iptables-save text; Dataplane.trace
// explains a packet (every rule, every outcome with its exact probability).
// ipvs: objects go through kube-proxy's trackers into the model, render-ipvs writes what kube-
// proxy's IPVS mode would install (ipvsadm rules, ipsets, a small iptables set), and the ipvsadm
// and ipset text is loaded with `ipvsadm -C; ipvsadm -R` and `ipset restore`. Packets are
// scheduled by the core's IPVS; the trace is IPVS's own (virtual service, scheduler, each real
// server's odds). The iptables part is shown but not loaded: the core stops consulting IPVS once
// iptables rules are live (assembly/pipeline.ts).
// Never touches the DOM or the worker.
import { Dataplane } from '../../../host-node/dataplane.js';
import { ProxyState, parseManifests, loadObjects, renderIpvs, type IpvsRender, type ManifestIssue, type SyncPlan } from '../../../host-node/kube/index.js';
import type { Family, TableName } from '../../../host-node/netfilter/index.js';
import { stepLabel, type TraceStep } from '../../../host-node/netfilter/trace.js';
import { IPVS_SCHEDULERS, NODE } from '../presets.js';
import type { ProcessResult } from '../../../host-node/core/dataplane.js';
import type { ConntrackEntry } from '../../../host-node/core/conntrack-record.js';
import {
  delivered, freshPorts, hostPort, measuredKey, mergeOutcomes, outcomeKey, tally, toBytes,
  type Delivered, type Distribution, type Outcome, type WirePacket,
} from './outcomes.js';
import { markContaining, SaveIndex, type ChainList, type RulesView } from './rules-view.js';
import type { TraceMarks } from './trace-marks.js';
import { chainsIn, diffLines, isIptablesRule, sampleDiff, type DiffSample, type LineDiff } from './line-diff.js';

/** What a sync changed, for the diff pane. */
export interface SyncChange {
  /** First sync of these objects: everything is new. */
  full: boolean;
  /** Services kube-proxy's change tracker marked changed ("namespace/name"). */
  changedServices: string[];
  /** Chains a partial sync's iptables-restore payload wrote (each rewritten whole); empty after a full sync, which writes them all. */
  rewrittenChains: string[];
  /** Rule lines that actually differ before/after (a sample, with the counts), and the chains holding them. */
  diff: DiffSample;
  changedChains: ChainList;
}

export interface TraceStepView {
  where: string;
  text: string;
  matched: boolean;
  target?: string;
}

export interface TraceView {
  /** Each rule visited, in order; long runs of non-matching rules of one chain are summarized. */
  steps: TraceStepView[];
  outcomes: Outcome[];
  /**
   * Where many new connections end up, when that differs from the next connection's odds
   * (IPVS rr takes turns: the next one is certain, the spread is by weight).
   */
  longRun?: Outcome[];
  truncated: boolean;
  /** The packet belongs to a connection the core already tracks: its NAT comes from that entry. */
  existing: boolean;
  /** The rule views with the visited rules marked. */
  rules: RulesView[];
}

export interface SendOne {
  delivered: Delivered;
  key: string;
}

/** The objects changed (added or replaced) and removed ("Kind namespace/name") since the last load. */
export interface ObjectDelta {
  objects: unknown[];
  removed: string[];
}

/** The objects (YAML text or decoded objects). */
export type Objects = string | unknown[];
/** The objects, or a function giving them that a runner calls only when it needs all of them (an edit with a delta may not). */
export type ObjectsIn = Objects | (() => Objects);

export const objectsOf = (input: ObjectsIn): Objects => (typeof input === 'function' ? input() : input);

/** dp.apply's input and options for a load, whole or as a delta. */
export function applyInput(input: ObjectsIn, delta: ObjectDelta | undefined): [Objects, { delta?: { removed: string[] } }] {
  return delta ? [delta.objects, { delta: { removed: delta.removed } }] : [objectsOf(input), {}];
}

export interface Loaded {
  issues: ManifestIssue[];
  change: SyncChange;
}

/** kube-proxy's model of these objects for this node's IPv4 family (change trackers, one full sync). */
export function proxyPlan(input: string | unknown[]): { set: ReturnType<typeof parseManifests>; plan: SyncPlan; topologyLabels: Record<string, string> } {
  const set = typeof input === 'string' ? parseManifests(input) : loadObjects(input);
  const state = new ProxyState({ nodeName: NODE.name, families: [4] });
  for (const s of set.services) state.onService(null, s);
  for (const s of set.endpointSlices) state.onEndpointSlice(s);
  state.onNode(set.nodes.find((n) => n.metadata.name === NODE.name) ?? null);
  state.markServicesSynced();
  state.markEndpointSlicesSynced();
  return { set, plan: state.sync()[0]!, topologyLabels: state.topologyLabels };
}

export async function createDataplane(seed = 1): Promise<Dataplane> {
  return Dataplane.create({ nodeIPs: [NODE.ip], podCIDR: NODE.podCIDR, seed, conntrackCapacity: 1 << 18 });
}

/** The tables a view shows, in iptables-save's order (those holding rules or chains). */
const TABLES: TableName[] = ['raw', 'mangle', 'filter', 'nat'];

/** Steps kept at each end of a run of non-matching rules in one chain. */
const RUN_KEEP = 2;

/**
 * Collapses runs of more than 2·RUN_KEEP+1 non-matching steps of one chain into one summary step.
 * Only the steps kept are turned into views (`view`), so a walk of 20,000 rules costs a compare
 * per step, not 20,000 views.
 */
export function compactSteps<S extends { matched: boolean }>(
  steps: readonly S[], sameChain: (a: S, b: S) => boolean, view: (s: S) => TraceStepView, chainOf: (s: S) => string,
): TraceStepView[] {
  const out: TraceStepView[] = [];
  let i = 0;
  while (i < steps.length) {
    let j = i;
    while (j < steps.length && !steps[j]!.matched && sameChain(steps[j]!, steps[i]!)) j++;
    if (j - i > 2 * RUN_KEEP + 1) {
      for (let k = i; k < i + RUN_KEEP; k++) out.push(view(steps[k]!));
      out.push({ where: chainOf(steps[i]!), text: `… ${(j - i - 2 * RUN_KEEP).toLocaleString('en-US')} rules that do not match`, matched: false });
      for (let k = j - RUN_KEEP; k < j; k++) out.push(view(steps[k]!));
      i = j;
    } else {
      const end = Math.max(j, i + 1);
      for (let k = i; k < end; k++) out.push(view(steps[k]!));
      i = end;
    }
  }
  return out;
}

export abstract class Runner {
  abstract readonly mode: 'iptables' | 'ipvs' | 'direct';
  private nextPort = 20000;

  constructor(readonly dp: Dataplane) {}

  /**
   * Makes the dataplane serve `input`. With `delta`, the caller knows what changed since the last
   * load: only those objects go to the control plane (dp.apply's incremental input).
   */
  abstract load(input: ObjectsIn, onPhase: (phase: string) => void, delta?: ObjectDelta): Loaded;
  abstract views(): RulesView[];
  /**
   * Explains the packet; `onPhase` names each part as it starts (for the timings); `flows` is the
   * conntrack table listed at `nowMs` when the caller has it (else the runner lists it if needed).
   */
  abstract trace(p: WirePacket, nowMs: number, onPhase?: (phase: string) => void, flows?: readonly ConntrackEntry[]): TraceView;

  /** Source ports for `count` new connections; they continue across bursts. */
  takePorts(count: number, avoid: number): number[] {
    const f = freshPorts(count, this.nextPort, avoid);
    this.nextPort = f.next;
    return f.ports;
  }

  /** Sends one new connection per port through the core in batches and counts outcomes. */
  send(p: WirePacket, ports: number[], nowMs: number): Distribution {
    const keys: string[] = [];
    const BATCH = 1000;
    for (let i = 0; i < ports.length; i += BATCH) {
      const batch = ports.slice(i, i + BATCH).map((sport) => toBytes(p, sport));
      const res = this.dp.processBatch(batch, nowMs);
      res.forEach((r, k) => {
        const sent = { ...p, sport: ports[i + k]! };
        this.observe(sent, r, nowMs);
        keys.push(measuredKey(sent, r));
      });
    }
    return tally(keys);
  }

  sendOne(p: WirePacket, nowMs: number): SendOne {
    const r = this.dp.process(toBytes(p), nowMs);
    this.observe(p, r, nowMs);
    return { delivered: delivered(r), key: measuredKey(p, r) };
  }

  /** Sees every packet the runner processed (a mode that mirrors core state the trace needs). */
  protected observe(_p: WirePacket, _r: ProcessResult, _nowMs: number): void {}

  /**
   * The conntrack entry of this packet's connection (its tuple is the entry's original direction),
   * looked up in `flows` when the caller has listed them at `nowMs` already.
   */
  protected tracked(p: WirePacket, nowMs: number, flows: readonly ConntrackEntry[] = this.dp.conntrack(nowMs)): ConntrackEntry | undefined {
    return flows.find((e) =>
      (e.original.src === p.src && e.original.sport === p.sport && e.original.dst === p.dst && e.original.dport === p.dport && e.proto === p.proto));
  }
}

// ---- iptables ----

export class IptablesRunner extends Runner {
  readonly mode = 'iptables' as const;
  private index = new SaveIndex('');
  private loaded = false;

  static async create(seed?: number): Promise<IptablesRunner> {
    return new IptablesRunner(await createDataplane(seed));
  }

  /** The live rules as the kernel's iptables-save prints them (every table with rules or chains). */
  private readAll(): SaveIndex {
    const tables: Parameters<typeof SaveIndex.fromChains>[0] = [];
    for (const table of TABLES) {
      const chains = this.dp.iptablesChains(table);
      if (chains.some((c) => c.policy === null || c.rules.length > 0)) tables.push({ table, chains });
    }
    return SaveIndex.fromChains(tables);
  }

  /** A chain's `iptables -S` text, or null when the sync deleted it. */
  private readChain(table: TableName, chain: string): string | null {
    try {
      return this.dp.iptablesRules(table, chain);
    } catch {
      return null;
    }
  }

  load(input: ObjectsIn, onPhase: (phase: string) => void, delta?: ObjectDelta): Loaded {
    onPhase('kube-proxy sync: render rules, compile, swap');
    const [objects, opts] = applyInput(input, delta);
    const r = this.dp.apply(objects, { nodeName: NODE.name, ...opts });
    const v4 = r.families.find((f) => f.family === (4 as Family));
    onPhase('rules view');
    let diff: LineDiff | undefined;
    let first: ReturnType<SaveIndex['addedAll']> | undefined;
    if (v4?.full === false) {
      // A partial sync rewrote only the chains it names ("table/chain"): only those are read back
      // and compared (a large scene's 200,000 lines are never re-read for one Service).
      const chains = v4.touched.map((tc) => ({ table: tc.slice(0, tc.indexOf('/')) as TableName, chain: tc.slice(tc.indexOf('/') + 1) }));
      const pick = () => chains.flatMap((c) => this.index.chainLines(c.table, c.chain)).join('\n');
      const before = pick();
      for (const c of chains) this.index.setChain(c.table, c.chain, this.readChain(c.table, c.chain));
      onPhase('diff');
      diff = diffLines(before, pick(), isIptablesRule);
    } else {
      const before = this.loaded ? this.index.text().join('\n') : '';
      this.index = this.readAll();
      onPhase('diff');
      if (before === '') first = this.index.addedAll();
      else diff = diffLines(before, this.index.text().join('\n'), isIptablesRule);
    }
    this.loaded = true;
    return {
      issues: r.issues,
      change: {
        full: v4?.full ?? true,
        changedServices: v4?.changedServices ?? [],
        rewrittenChains: v4 && !v4.full ? v4.touched : [],
        diff: first ? first.diff : sampleDiff(diff!), changedChains: first ? first.chains : chainsIn(diff!),
      },
    };
  }

  views(marks?: TraceMarks): RulesView[] {
    return [{ title: 'iptables-save', lines: this.index.view(marks), total: this.index.total }];
  }

  trace(p: WirePacket, nowMs: number, onPhase: (phase: string) => void = () => {}, flows?: readonly ConntrackEntry[]): TraceView {
    onPhase('core trace');
    const t = this.dp.trace({ src: p.src, dst: p.dst, proto: p.proto, sport: p.sport, dport: p.dport, from: p.local ? 'local' : 'external', nowMs });
    onPhase('trace view');
    const outcomes = mergeOutcomes(t.outcomes.map((o) => {
      const out: Outcome = { key: outcomeKey(o.verdict, o.reason, o.to, o.masq), verdict: o.verdict, reason: o.reason, masq: o.masq, probability: o.probability };
      if (o.to) out.to = o.to;
      if (o.decidedBy.length > 0) out.by = o.decidedBy.map((s) => (s.text === undefined ? { label: stepLabel(s) } : { label: stepLabel(s), text: s.text }));
      return out;
    }));
    const chainOf = (s: TraceStep) => `${s.hook} ${s.table} ${s.chain}`;
    const steps = compactSteps(t.steps, (a, b) => a.chain === b.chain && a.table === b.table && a.hook === b.hook, (s) => ({
      where: `${chainOf(s)} #${s.rule}`,
      text: s.text ?? '(end of chain)',
      matched: s.matched,
      ...(s.target ? { target: s.target } : {}),
    }), chainOf);
    const marks = this.index.marks(t.steps);
    onPhase('rules digest');
    const rules = this.views(marks);
    onPhase('conntrack lookup');
    return { steps, outcomes, truncated: t.truncated, existing: this.tracked(p, nowMs, flows) !== undefined, rules };
  }
}

// ---- ipvs ----

/**
 * Schedulers whose new connections spread in proportion to weight: ip_vs_rr.c, ip_vs_wrr.c, the
 * least-connection family while connections stay open (ip_vs_lc.c, ip_vs_wlc.c, ip_vs_sed.c,
 * ip_vs_nq.c), and the hashing ones when they hash the source port too (ip_vs_sh.c / ip_vs_mh.c
 * with sh-port / mh-port, which kube-proxy sets for mh): fresh ports land on each server in
 * proportion to its share of the hash table, which ip_vs_mh.c fills by weight.
 */
const WEIGHT_SPREAD = new Set(['rr', 'wrr', 'lc', 'wlc', 'sed', 'nq']);
const PORT_HASHED = new Set(['sh-port', 'mh-port']);

export class IpvsRunner extends Runner {
  readonly mode = 'ipvs' as const;
  private render: IpvsRender | undefined;
  private ipvsList = '';

  constructor(dp: Dataplane, readonly scheduler: string) {
    super(dp);
    if (!(IPVS_SCHEDULERS as readonly string[]).includes(scheduler)) throw new Error(`unknown IPVS scheduler "${scheduler}"`);
  }

  static async create(scheduler: string, seed?: number): Promise<IpvsRunner> {
    return new IpvsRunner(await createDataplane(seed), scheduler);
  }

  load(input: ObjectsIn, onPhase: (phase: string) => void): Loaded {
    onPhase('kube-proxy ipvs sync: render virtual servers and ipsets');
    const { set, plan } = proxyPlan(objectsOf(input));
    const before = this.render;
    this.render = renderIpvs(plan.model, { nodeName: NODE.name, nodeIPs: [NODE.ip], podCIDR: NODE.podCIDR, scheduler: this.scheduler });
    onPhase('ipset restore, ipvsadm -R');
    this.dp.ipset.restore(this.render.ipset);
    this.ipvsadm(['-C']);
    this.ipvsadm(['-R'], this.render.ipvsadm);
    const was = this.ipvsList;
    this.ipvsList = this.ipvsadm(['-L', '-n']);
    const diff = diffLines(before?.ipvsadm ?? '', this.render.ipvsadm);
    return {
      issues: set.issues.filter((i) => i.severity === 'error'),
      change: {
        full: before === undefined,
        changedServices: [],
        rewrittenChains: was === '' ? [] : ['ipvsadm -C; ipvsadm -R (the whole table)'],
        diff: sampleDiff(diff), changedChains: chainsIn(diffLines(before?.iptables ?? '', this.render.iptables)),
      },
    };
  }

  private ipvsadm(argv: string[], stdin?: string): string {
    const r = this.dp.ipvsadm(argv, stdin);
    if (r.code !== 0) throw new Error(`ipvsadm ${argv.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  views(hits: string[] = [], seen: string[] = []): RulesView[] {
    const r = this.render;
    const list = this.ipvsList;
    const ipset = this.dp.ipset.save();
    const cap = (title: string, text: string, h: string[], s: string[]): RulesView => {
      const lines = markContaining(text, h, s);
      return { title, lines: lines.length > 4000 ? lines.slice(0, 4000).concat({ text: `… ${lines.length - 4000} lines`, mark: 'gap' }) : lines, total: lines.length };
    };
    return [
      cap('ipvsadm -Ln', list, hits, seen),
      cap('ipset save', ipset, [], []),
      cap('iptables (ipvs mode, shown only)', r?.iptables ?? '', [], []),
    ];
  }

  trace(p: WirePacket, nowMs: number): TraceView {
    const ipvs = this.dp.ipvs();
    const t = ipvs.trace({ protocol: p.proto, src: p.src, sport: p.sport, dst: p.dst, dport: p.dport }, nowMs);
    const vs = `${p.proto.toUpperCase()}  ${hostPort(p.dst, p.dport)}`;
    const steps: TraceView['steps'] = [{
      where: 'IPVS lookup', text: `${p.proto} ${hostPort(p.dst, p.dport)} from ${hostPort(p.src, p.sport)}`,
      matched: t.kind !== 'none', target: t.kind === 'none' ? 'no virtual service: not IPVS traffic' : `virtual service (${this.scheduler})`,
    }];
    let outcomes: Outcome[];
    if (t.kind === 'none') {
      outcomes = [{ key: outcomeKey('PASS', 'none'), verdict: 'PASS', reason: 'none', masq: false, probability: 1 }];
    } else if (t.kind === 'no-destination' || t.choices.length === 0) {
      // ip_vs_leave() (assembly/ipvs/core.ts leave): ICMP port unreachable back to the client.
      steps.push({ where: 'IPVS schedule', text: 'no real server available', matched: true, target: 'ICMP port unreachable' });
      outcomes = [{ key: outcomeKey('REPLY', 'no_endpoints'), verdict: 'REPLY', reason: 'no_endpoints', masq: false, probability: 1 }];
    } else {
      const how = t.kind === 'connection' ? 'existing connection' : t.kind === 'template' ? 'persistence template (affinity)' : `scheduler ${this.scheduler}`;
      for (const c of t.choices) {
        steps.push({ where: `IPVS ${how}`, text: `→ ${hostPort(c.address, c.port)}  p=${c.probability.toFixed(4)}`, matched: c.probability > 0, target: 'masq' });
      }
      outcomes = mergeOutcomes(t.choices.filter((c) => c.probability > 0).map((c) => {
        const to = hostPort(c.address, c.port);
        return { key: outcomeKey('FORWARD', 'none', to), verdict: 'FORWARD', reason: 'none', to, masq: false, probability: c.probability };
      }));
    }
    let longRun: Outcome[] | undefined;
    const svc = t.service !== undefined ? ipvs.service(t.service) : undefined;
    if (t.kind === 'scheduler' && svc && (WEIGHT_SPREAD.has(this.scheduler) || svc.schedFlags.some((f) => PORT_HASHED.has(f)))) {
      const dests = svc.destinations.filter((d) => d.weight > 0 && d.available);
      const sum = dests.reduce((a, d) => a + d.weight, 0);
      longRun = mergeOutcomes(dests.map((d) => {
        const to = hostPort(d.address, d.port);
        return { key: outcomeKey('FORWARD', 'none', to), verdict: 'FORWARD', reason: 'none', to, masq: false, probability: d.weight / sum };
      }));
    }
    const hits = t.choices.filter((c) => c.probability > 0).map((c) => `-> ${hostPort(c.address, c.port)}`);
    return { steps, outcomes, ...(longRun ? { longRun } : {}), truncated: false, existing: t.kind === 'connection', rules: this.views(t.kind === 'none' ? [] : [vs, ...hits], []) };
  }
}
