// mode-iptables.ts — the playground in iptables mode: objects go through Dataplane.apply (kube-
// proxy's trackers and iptables renderer, partial syncs after the first), the rules are the live
// iptables-save text, a packet is explained by Dataplane.trace (every rule, every outcome with its
// exact probability) and sent through Dataplane.processBatch. Never touches the DOM or the worker.
import type { Family } from '../../../host-node/netfilter/index.js';
import { NODE } from '../presets.js';
import { mergeOutcomes, outcomeKey, type Outcome, type WirePacket } from './outcomes.js';
import { chainsIn, diffLines, digest, isIptablesRule, markSave, type RuleLine, type RulesView } from './rules-view.js';
import { Runner, createDataplane, compactSteps, type Loaded, type TraceView } from './runner.js';

export class IptablesRunner extends Runner {
  readonly mode = 'iptables' as const;
  private save = '';

  static async create(seed?: number): Promise<IptablesRunner> {
    return new IptablesRunner(await createDataplane(seed));
  }

  load(input: string | unknown[], onPhase: (phase: string) => void): Loaded {
    const before = this.save;
    onPhase('kube-proxy sync: render rules, compile, swap');
    const r = this.dp.apply(input, { nodeName: NODE.name });
    onPhase('iptables-save');
    this.save = this.dp.iptablesSave();
    const v4 = r.families.find((f) => f.family === (4 as Family));
    const diff = diffLines(before, this.save, isIptablesRule);
    return {
      issues: r.issues,
      change: {
        full: v4?.full ?? true,
        changedServices: v4?.changedServices ?? [],
        rewrittenChains: v4?.touched ?? [],
        diff, changedChains: chainsIn(diff),
      },
    };
  }

  views(marked?: RuleLine[]): RulesView[] {
    const lines = marked ?? this.save.split('\n').map((text) => ({ text }));
    return [{ title: 'iptables-save', lines: digest(lines), total: lines.length }];
  }

  trace(p: WirePacket, nowMs: number): TraceView {
    const t = this.dp.trace({ src: p.src, dst: p.dst, proto: p.proto, sport: p.sport, dport: p.dport, from: p.local ? 'local' : 'external', nowMs });
    const outcomes = mergeOutcomes(t.outcomes.map((o) => {
      const out: Outcome = { key: outcomeKey(o.verdict, o.reason, o.to), verdict: o.verdict, reason: o.reason, masq: o.masq, probability: o.probability };
      if (o.to) out.to = o.to;
      return out;
    }));
    const steps = compactSteps(t.steps.map((s) => ({
      where: `${s.hook} ${s.table} ${s.chain} #${s.rule}`,
      text: s.text ?? '(end of chain)',
      matched: s.matched,
      ...(s.target ? { target: s.target } : {}),
    })), (s) => s.where.replace(/ #\d+$/, ''));
    const marked = markSave(this.save, t.steps.filter((s) => s.text !== undefined));
    return { steps, outcomes, truncated: t.truncated, existing: this.tracked(p, nowMs), rules: this.views(marked) };
  }
}
