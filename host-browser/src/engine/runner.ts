// runner.ts — what every mode of the playground provides (load objects, rule views, trace, send)
// and the part they share: a Dataplane for this node, fresh source ports across bursts, one
// packet or a burst through processBatch counted by outcome, the connection a packet belongs to
// (conntrack and IPVS), and the compaction of long runs of skipped rules in a trace. Never
// touches the DOM or the worker.
import { Dataplane } from '../../../host-node/dataplane.js';
import type { ManifestIssue } from '../../../host-node/kube/index.js';
import { NODE } from '../presets.js';
import { delivered, freshPorts, measuredKey, tally, toBytes, type Delivered, type Distribution, type Outcome, type WirePacket } from './outcomes.js';
import type { LineDiff, RulesView } from './rules-view.js';

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

export interface Loaded {
  issues: ManifestIssue[];
  change: SyncChange;
}

export async function createDataplane(seed = 1): Promise<Dataplane> {
  return Dataplane.create({ nodeIPs: [NODE.ip], podCIDR: NODE.podCIDR, seed, conntrackCapacity: 1 << 18 });
}

/** Steps kept at each end of a run of non-matching rules in one chain. */
const RUN_KEEP = 2;

/** Collapses runs of more than 2·RUN_KEEP+1 non-matching steps of one chain into one summary step. */
export function compactSteps(steps: TraceStepView[], chainOf: (s: TraceStepView) => string): TraceStepView[] {
  const out: TraceStepView[] = [];
  let i = 0;
  while (i < steps.length) {
    let j = i;
    while (j < steps.length && !steps[j]!.matched && chainOf(steps[j]!) === chainOf(steps[i]!)) j++;
    if (j - i > 2 * RUN_KEEP + 1) {
      out.push(...steps.slice(i, i + RUN_KEEP));
      out.push({ where: chainOf(steps[i]!), text: `… ${(j - i - 2 * RUN_KEEP).toLocaleString('en-US')} rules that do not match`, matched: false });
      out.push(...steps.slice(j - RUN_KEEP, j));
      i = j;
    } else {
      out.push(...steps.slice(i, Math.max(j, i + 1)));
      i = Math.max(j, i + 1);
    }
  }
  return out;
}

export abstract class Runner {
  abstract readonly mode: 'iptables' | 'ipvs';
  private nextPort = 20000;

  constructor(readonly dp: Dataplane) {}

  abstract load(input: string | unknown[], onPhase: (phase: string) => void): Loaded;
  abstract views(): RulesView[];
  abstract trace(p: WirePacket, nowMs: number): TraceView;

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
      res.forEach((r, k) => keys.push(measuredKey({ ...p, sport: ports[i + k]! }, r)));
    }
    return tally(keys);
  }

  sendOne(p: WirePacket, nowMs: number): SendOne {
    const r = this.dp.process(toBytes(p), nowMs);
    return { delivered: delivered(r), key: measuredKey(p, r) };
  }

  /** The core tracks this packet's connection (either direction of a conntrack entry). */
  protected tracked(p: WirePacket, nowMs: number): boolean {
    return this.dp.conntrack(nowMs).some((e) =>
      (e.original.src === p.src && e.original.sport === p.sport && e.original.dst === p.dst && e.original.dport === p.dport && e.proto === p.proto));
  }
}
