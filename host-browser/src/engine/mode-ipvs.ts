// mode-ipvs.ts — the playground in IPVS mode: objects go through kube-proxy's trackers into one
// model per family, render-ipvs writes what kube-proxy's IPVS mode would install (ipvsadm rules,
// ipsets, a small iptables set), and the ipvsadm and ipset text is loaded into the core with
// `ipvsadm -C; ipvsadm -R` and `ipset restore`. Packets are scheduled by the core's IPVS; the
// trace is IPVS's own (virtual service, scheduler, each real server's odds). The iptables part is
// shown but not loaded: the core stops consulting IPVS once iptables rules are live
// (assembly/pipeline.ts). Never touches the DOM or the worker.
import type { Dataplane } from '../../../host-node/dataplane.js';
import { ProxyState, parseManifests, loadObjects, renderIpvs, type IpvsRender } from '../../../host-node/kube/index.js';
import { IPVS_SCHEDULERS, NODE } from '../presets.js';
import { Runner, createDataplane, type Loaded, type TraceView } from './runner.js';
import { hostPort, mergeOutcomes, outcomeKey, type Outcome, type WirePacket } from './outcomes.js';
import { chainsIn, diffLines, markContaining, type RulesView } from './rules-view.js';


/** Schedulers whose new connections spread in proportion to weight (ip_vs_rr.c, ip_vs_wrr.c; the
 * least-connection family with connections that stay open, ip_vs_lc.c, ip_vs_wlc.c, ip_vs_sed.c, ip_vs_nq.c). */
const WEIGHT_SPREAD = new Set(['rr', 'wrr', 'lc', 'wlc', 'sed', 'nq']);

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

  load(input: string | unknown[], onPhase: (phase: string) => void): Loaded {
    const set = typeof input === 'string' ? parseManifests(input) : loadObjects(input);
    onPhase('kube-proxy ipvs sync: render virtual servers and ipsets');
    const state = new ProxyState({ nodeName: NODE.name, families: [4] });
    for (const s of set.services) state.onService(null, s);
    for (const s of set.endpointSlices) state.onEndpointSlice(s);
    state.onNode(set.nodes.find((n) => n.metadata.name === NODE.name) ?? null);
    state.markServicesSynced();
    state.markEndpointSlicesSynced();
    const plan = state.sync()[0];
    const before = this.render;
    this.render = renderIpvs(plan!.model, { nodeName: NODE.name, nodeIPs: [NODE.ip], podCIDR: NODE.podCIDR, scheduler: this.scheduler });
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
        diff, changedChains: chainsIn(diffLines(before?.iptables ?? '', this.render.iptables)),
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
      steps.push({ where: 'IPVS schedule', text: 'no real server available', matched: false, target: 'no destination' });
      outcomes = [{ key: outcomeKey('DROP', 'ipvs_no_dest'), verdict: 'DROP', reason: 'ipvs_no_dest', masq: false, probability: 1 }];
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
    if (t.kind === 'scheduler' && t.service !== undefined && WEIGHT_SPREAD.has(this.scheduler)) {
      const dests = ipvs.service(t.service).destinations.filter((d) => d.weight > 0 && d.available);
      const sum = dests.reduce((a, d) => a + d.weight, 0);
      longRun = mergeOutcomes(dests.map((d) => {
        const to = hostPort(d.address, d.port);
        return { key: outcomeKey('FORWARD', 'none', to), verdict: 'FORWARD', reason: 'none', to, masq: false, probability: d.weight / sum };
      }));
    }
    const hits = t.choices.filter((c) => c.probability > 0).map((c) => `-> ${hostPort(c.address, c.port)}`);
    return { steps, outcomes, ...(longRun ? { longRun } : {}), truncated: false, existing: t.kind === 'connection' || t.kind === 'template', rules: this.views(t.kind === 'none' ? [] : [vs, ...hits], []) };
  }
}
