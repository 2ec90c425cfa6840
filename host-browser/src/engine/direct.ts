// direct.ts — the playground's direct mode: objects go through Dataplane.apply({ mode: 'direct' })
// (kube-proxy's change trackers and endpoint categorizing, each changed Service port compiled into
// one entry of the core's service table, no rule text). The table is shown as one line per fact
// of each entry (frontends, Cluster and Local endpoints, policies), rendered from the same model
// with render-direct.ts. A packet is explained by the core's own decision, step by step
// (kube/direct-explain.ts, as assembly/svc/decide.ts svcDecide makes it), with the client's
// ClientIP affinity stamp read from the core. Never touches the DOM or the worker.
import { renderDirectService } from '../../../host-node/kube/index.js';
import { DirectTable, chooseStep, directEntryLines as entryLines, masqueradedTo } from '../../../host-node/kube/direct-explain.js';
import type { DirectService } from '../../../host-node/core/svc-config.js';
import type { ConntrackEntry } from '../../../host-node/core/conntrack-record.js';
import { NODE } from '../presets.js';
import { hostPort, mergeOutcomes, outcomeKey, type Outcome, type WirePacket } from './outcomes.js';
import { applyInput, createDataplane, objectsOf, proxyPlan, Runner, type Loaded, type ObjectDelta, type ObjectsIn, type TraceView } from './modes.js';
import { FULL_VIEW_LINES, listChains, type RuleLine, type RulesView } from './rules-view.js';
import { diffLines, sampleDiff } from './line-diff.js';
import type { Dataplane } from '../../../host-node/dataplane.js';

const TITLE = 'direct service table';
/** Entries listed whole before a large table is cut to the packet's entry. */
const HEAD_ENTRIES = 40;

export class DirectRunner extends Runner {
  readonly mode = 'direct' as const;
  private table = new DirectTable([], [NODE.ip], [NODE.podCIDR]);
  private lines: string[] = [];
  /** The service port id of each entry of `table` (where the core's stamps are asked for). */
  private ids: string[] = [];

  static async create(seed?: number): Promise<DirectRunner> {
    return new DirectRunner(await createDataplane(seed));
  }

  constructor(dp: Dataplane) {
    super(dp);
  }

  load(input: ObjectsIn, onPhase: (phase: string) => void, delta?: ObjectDelta): Loaded {
    onPhase('direct sync: compile changed Service ports into the core\'s table');
    const [objects, how] = applyInput(input, delta);
    const r = this.dp.apply(objects, { mode: 'direct', nodeName: NODE.name, ...how });
    onPhase('direct table view');
    const { plan, topologyLabels } = proxyPlan(objectsOf(input));
    const opts = { nodeName: NODE.name, topologyLabels, nodeIPs: [NODE.ip] };
    const sps = [...plan.model.services.values()];
    const entries = sps.map((sp) => renderDirectService(sp, plan.model.endpoints.get(sp.id) ?? [], opts, 0));
    this.ids = sps.map((sp) => sp.id);
    const before = this.lines;
    this.table = new DirectTable(entries, [NODE.ip], [NODE.podCIDR]);
    this.lines = entries.flatMap(entryLines);
    const v4 = r.families.find((f) => f.family === 4);
    const diff = diffLines(before.join('\n'), this.lines.join('\n'));
    return {
      issues: r.issues,
      change: {
        full: v4?.full ?? true,
        changedServices: v4?.changedServices ?? [],
        rewrittenChains: v4?.direct ? [`${v4.direct.put} entr${v4.direct.put === 1 ? 'y' : 'ies'} written, ${v4.direct.removed} removed`] : [],
        diff: sampleDiff(diff),
        changedChains: listChains(new Set([...diff.added, ...diff.removed].map((l) => l.split(' ')[0]!))),
      },
    };
  }

  views(entry?: DirectService, chosen: string[] = [], list?: 'cluster' | 'local'): RulesView[] {
    const mark = (text: string): RuleLine => {
      if (!entry || !text.startsWith(`${entry.name} ${entry.protocol} `)) return { text };
      const rest = text.slice(entry.name.length + entry.protocol.length + 2);
      const used = rest.startsWith('frontends') || rest.startsWith('policy') || (list && rest.startsWith(list === 'cluster' ? 'endpoints(Cluster)' : 'endpoints(Local)') && chosen.length > 0);
      return { text, mark: used ? 'hit' : 'seen' };
    };
    if (this.lines.length <= FULL_VIEW_LINES) return [{ title: TITLE, lines: this.lines.map(mark), total: this.lines.length }];
    const head = this.lines.slice(0, HEAD_ENTRIES * 4).map(mark);
    const own = entry && this.table.entries.indexOf(entry) >= HEAD_ENTRIES ? entryLines(entry).map(mark) : [];
    const gap = (n: number): RuleLine => ({ text: `… ${n.toLocaleString('en-US')} lines`, mark: 'gap' });
    return [{ title: TITLE, lines: [...head, ...(own.length ? [gap(this.table.entries.indexOf(entry!) * 4 - head.length), ...own] : []), gap(this.lines.length - head.length - own.length)], total: this.lines.length }];
  }

  trace(p: WirePacket, nowMs: number, _onPhase?: (phase: string) => void, flows?: readonly ConntrackEntry[]): TraceView {
    const e = this.tracked(p, nowMs, flows);
    if (e) {
      const to = e.reply.src !== p.dst || e.reply.sport !== p.dport ? hostPort(e.reply.src, e.reply.sport) : undefined;
      const masq = e.reply.dst !== p.src;
      const o: Outcome = { key: outcomeKey('FORWARD', 'none', to, masq), verdict: 'FORWARD', reason: 'none', masq, probability: 1, ...(to ? { to } : {}) };
      return {
        steps: [{ where: 'conntrack', text: `existing connection → ${to ?? 'unchanged'}`, matched: true, target: 'NAT from the connection' }],
        outcomes: [o], truncated: false, existing: true, rules: this.views(),
      };
    }
    const d = this.table.decide(p);
    if (d.kind === 'none') {
      return { steps: d.steps, outcomes: [{ key: outcomeKey('PASS', 'none'), verdict: 'PASS', reason: 'none', masq: false, probability: 1 }], truncated: false, existing: false, rules: this.views() };
    }
    if (d.kind === 'verdict') {
      const outcome: Outcome = { key: outcomeKey(d.verdict, d.reason), verdict: d.verdict, reason: d.reason, masq: false, probability: 1 };
      return { steps: d.steps, outcomes: [outcome], truncated: false, existing: false, rules: this.views() };
    }
    const id = this.ids[this.table.entries.indexOf(d.entry)];
    const stamped = d.entry.affinityMs && id !== undefined ? this.dp.directAffinity(id, p.src, nowMs) : null;
    const { tos: choices, step } = chooseStep(d, p.src, stamped);
    d.steps.push(step);
    const outcomes = mergeOutcomes(choices.map((to) => {
      // KUBE-SEP: an endpoint reaching itself through the Service is masqueraded (hairpin).
      const masq = masqueradedTo(d, to, p.src);
      return { key: outcomeKey('FORWARD', 'none', to, masq), verdict: 'FORWARD', reason: 'none', to, masq, probability: 1 / choices.length };
    }));
    return { steps: d.steps, outcomes, truncated: false, existing: false, rules: this.views(d.entry, choices, d.list) };
  }
}
