// mode-iptables.ts — the playground in iptables mode: objects go through Dataplane.apply (kube-
// proxy's trackers and iptables renderer, partial syncs after the first), the rules are the live
// iptables-save text, a packet is explained by Dataplane.trace (every rule, every outcome with its
// exact probability) and sent through Dataplane.processBatch. Never touches the DOM or the worker.
import { Dataplane } from '../../../host-node/dataplane.js';
import type { ManifestIssue } from '../../../host-node/kube/index.js';
import type { Family } from '../../../host-node/netfilter/index.js';
import { NODE } from '../presets.js';
import {
  delivered, freshPorts, measuredKey, mergeOutcomes, outcomeKey, tally, toBytes,
  type Delivered, type Distribution, type Outcome, type WirePacket,
} from './outcomes.js';
import { chainsIn, diffLines, digest, isIptablesRule, markSave, type LineDiff, type RuleLine, type RulesView } from './rules-view.js';

/** What a sync changed, for the diff pane. */
export interface SyncChange {
  /** First sync of these objects: everything is new. */
  full: boolean;
  /** Services kube-proxy's change tracker marked changed ("namespace/name"). */
  changedServices: string[];
  /** Chains kube-proxy's iptables-restore payload wrote (each rewritten whole). */
  rewrittenChains: string[];
  /** Rule lines that actually differ before/after, and the chains holding them. */
  diff: LineDiff;
  changedChains: string[];
}

export interface TraceView {
  /** Each rule visited, in order ("hook table chain #n: text → target"). */
  steps: Array<{ where: string; text: string; matched: boolean; target?: string }>;
  outcomes: Outcome[];
  /**
   * Where many new connections end up, when that differs from the next connection's odds
   * (IPVS rr takes turns: the next one is certain, the spread is by weight).
   */
  longRun?: Outcome[];
  truncated: boolean;
  /** The rule views with the visited rules marked. */
  rules: RulesView[];
}

export interface SendOne {
  delivered: Delivered;
  key: string;
}

export interface Runner {
  readonly mode: 'iptables' | 'ipvs';
  readonly dp: Dataplane;
  load(input: string | unknown[], onPhase: (phase: string) => void): { issues: ManifestIssue[]; change: SyncChange };
  views(): RulesView[];
  trace(p: WirePacket, nowMs: number): TraceView;
  send(p: WirePacket, count: number, nowMs: number): Distribution;
  sendOne(p: WirePacket, nowMs: number): SendOne;
}

export async function createDataplane(seed = 1): Promise<Dataplane> {
  return Dataplane.create({ nodeIPs: [NODE.ip], podCIDR: NODE.podCIDR, seed, conntrackCapacity: 1 << 18 });
}

export class IptablesRunner implements Runner {
  readonly mode = 'iptables' as const;
  private save = '';
  private nextPort = 20000;

  constructor(readonly dp: Dataplane) {}

  static async create(seed?: number): Promise<IptablesRunner> {
    return new IptablesRunner(await createDataplane(seed));
  }

  load(input: string | unknown[], onPhase: (phase: string) => void): { issues: ManifestIssue[]; change: SyncChange } {
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
    const steps = t.steps.map((s) => ({
      where: `${s.hook} ${s.table} ${s.chain} #${s.rule}`,
      text: s.text ?? '(end of chain)',
      matched: s.matched,
      ...(s.target ? { target: s.target } : {}),
    }));
    const marked = markSave(this.save, t.steps.filter((s) => s.text !== undefined));
    return { steps, outcomes, truncated: t.truncated, rules: this.views(marked) };
  }

  send(p: WirePacket, count: number, nowMs: number): Distribution {
    return sendMany(this.dp, p, count, nowMs, this);
  }

  sendOne(p: WirePacket, nowMs: number): SendOne {
    const r = this.dp.process(toBytes(p), nowMs);
    return { delivered: delivered(r), key: measuredKey(p, r) };
  }

  /** Source ports continue across sends so every packet of a burst opens a new connection. */
  takePorts(count: number, avoid: number): number[] {
    const f = freshPorts(count, this.nextPort, avoid);
    this.nextPort = f.next;
    return f.ports;
  }
}

/** Sends `count` new connections (fresh source ports) through the core in batches and counts outcomes. */
export function sendMany(dp: Dataplane, p: WirePacket, count: number, nowMs: number, ports: { takePorts(n: number, avoid: number): number[] }): Distribution {
  const list = ports.takePorts(count, p.sport);
  const keys: string[] = [];
  const BATCH = 1000;
  for (let i = 0; i < list.length; i += BATCH) {
    const batch = list.slice(i, i + BATCH).map((sport) => toBytes(p, sport));
    const res = dp.processBatch(batch, nowMs);
    res.forEach((r, k) => keys.push(measuredKey({ ...p, sport: list[i + k]! }, r)));
  }
  return tally(keys);
}
