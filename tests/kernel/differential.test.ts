// Kernel differential: random kube-proxy-shaped clusters are rendered once (renderIptables, era
// 'current') and loaded both into the kernel (iptables-legacy-restore --noflush over kube-proxy's
// base-chain jumps, inside a throwaway node namespace) and into a Dataplane, one ruleset after the
// other over the same long-lived state (stale service chains deleted with -X, as kube-proxy's full
// syncs do). The same packet bytes then go to both: injected on the node's veth and pushed through
// dp.trace / dp.process. The kernel's answer is read from its conntrack table (DNAT destination,
// masquerade) or from what came back to the client (ICMP port unreachable for REJECT); silence is
// DROP. It must be one of svcplane's outcomes with non-zero probability — exactly the one when
// svcplane has only one (one endpoint, affinity hits, REJECT/DROP, no service) — and dp.process must
// pick one of trace's outcomes. Session affinity: after svcplane processed a client's first packet,
// the kernel's xt_recent list of the endpoint svcplane chose gets that client (/proc/net/xt_recent),
// so both must send the client's next connection there.
// The same again for IPv6 (ip6tables-legacy, a node of the IPv6 address plan, ICMPv6 answers).
// SVCPLANE_KERNEL_RULESETS (default 1000, per family) and SVCPLANE_KERNEL_SEED (default 1) choose the run.
import { describe, it, expect } from 'vitest';
import { kernelSkip } from '../support/netns';
import {
  KernelNode, KUBE_BASE_RULES, KERNEL_TOOLS, planOf, hostPort,
  kernelOutcome, repliesByFlow, flowKeyText, outcomeText, type AddressPlan, type FlowKey, type Outcome,
} from '../support/kernel-node';
import { proxyStateFor, randomCluster, renderSync, natChainsAfter, addrOf, Rng, POD_CIDR, POD_CIDR6 } from '../support/kube-gen';
import { Dataplane } from '../../host-node/dataplane';
import { buildPacket, decodePacket, PROTO, type ProtoName } from '../../host-node/core/packet';
import { servicePortEndpointChainName, type ProxyModel } from '../../host-node/kube/index';

const RULESETS = Number(process.env.SVCPLANE_KERNEL_RULESETS ?? 1000);
const FIRST_SEED = Number(process.env.SVCPLANE_KERNEL_SEED ?? 1);
/** svcplane time advances this much per ruleset, so the previous ruleset's flows have all expired. */
const RULESET_MS = 600_000;

const skipWhy = kernelSkip('tests/kernel/differential', KERNEL_TOOLS);

interface Flow {
  key: FlowKey;
  proto: ProtoName;
  what: string;
  /** An ICMP error to this source comes back to the client (hairpin sources route to pods). */
  routable: boolean;
  /** First packet of an affinity pair: the kernel's recent list is seeded with svcplane's choice. */
  seedFor?: { spName: string; protocol: string };
  bytes?: Uint8Array;
}

/** Unique (source, port) pairs across the whole run: a flow never meets another one's conntrack entry. */
class Sources {
  private n = 0;
  private pairs = 0;
  constructor(private readonly family: 4 | 6) {}
  /** From the external clients' range (198.18.100.0/22, fd00:198:18:100::/62). */
  external(): { src: string; sport: number } {
    const i = this.n++;
    const host = i % 1016;
    const first = this.family === 6 ? 0x100 : 100;
    return { src: addrOf(this.family, 18, first + Math.floor(host / 254), (host % 254) + 1), sport: 1024 + (Math.floor(i / 1016) % 50000) };
  }
  /** From the client pods' range (198.19.250.0/23, fd00:198:19:fa::/63). */
  pod(): { src: string; sport: number } {
    const i = this.n++;
    const host = i % 508;
    return { src: addrOf(this.family, 19, 250 + Math.floor(host / 254), (host % 254) + 1), sport: 1024 + (Math.floor(i / 508) % 50000) };
  }
  /** A second connection from `src` (ports 55000+ are used by nothing else). */
  again(src: string): { src: string; sport: number } {
    return { src, sport: 55000 + (this.pairs++ % 10000) };
  }
}

const PROTO_NAME: Record<string, ProtoName> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };

function flowsFor(model: ProxyModel, src: Sources, rng: Rng, plan: AddressPlan): Flow[] {
  const family = plan.family;
  const flows: Flow[] = [];
  const add = (what: string, s: { src: string; sport: number }, dst: string, dport: number, proto: ProtoName, routable = true): Flow => {
    const f: Flow = { key: { proto: PROTO[proto], src: s.src, dst, sport: s.sport, dport }, proto, what, routable };
    flows.push(f);
    return f;
  };
  for (const sp of model.sortedServices()) {
    const proto = PROTO_NAME[sp.protocol]!;
    const eps = model.endpoints.get(sp.id) ?? [];
    add('cluster IP from outside', src.external(), sp.clusterIP, sp.port, proto);
    add('cluster IP from a pod', src.pod(), sp.clusterIP, sp.port, proto);
    if (eps.length) add('hairpin', { src: rng.pick(eps).ip, sport: src.external().sport }, sp.clusterIP, sp.port, proto, false);
    if (sp.nodePort) {
      add('node port from outside', src.external(), plan.node, sp.nodePort, proto);
      add('node port (link address) from a pod', src.pod(), plan.nodeLink, sp.nodePort, proto);
    }
    for (const vip of [...sp.externalIPs, ...sp.loadBalancerVIPs]) {
      add('external/LB IP from outside', src.external(), vip, sp.port, proto);
      add('external/LB IP from outside', src.external(), vip, sp.port, proto);
      add('external/LB IP from a pod', src.pod(), vip, sp.port, proto);
    }
    if (sp.sessionAffinity === 'ClientIP') {
      const first = src.external();
      add('affinity, first connection', first, sp.clusterIP, sp.port, proto).seedFor = { spName: sp.name, protocol: sp.protocol.toLowerCase() };
      add('affinity, second connection', src.again(first.src), sp.clusterIP, sp.port, proto);
    }
  }
  const any = rng.pick(model.sortedServices());
  if (any) add('cluster IP, other port', src.external(), any.clusterIP, any.port === 65535 ? 1 : any.port + 1, PROTO_NAME[any.protocol]!);
  add('no service at this IP', src.external(), addrOf(family, 18, 13, rng.int(1, 254)), 80, 'tcp');
  const pod = [rng.int(0, 249), rng.int(1, 254)] as const;
  add('straight to a pod', src.external(), addrOf(family, 19, pod[0], pod[1]), 8080, 'udp');
  add('node address, no node port', src.external(), plan.node, rng.int(1, 29999), rng.pick(['tcp', 'udp'] as const));
  return flows;
}

type Chance = Outcome & { p: number };

/** svcplane's trace outcomes in the shared shape, with their probabilities (> 0 only). */
function traceOutcomes(dp: Dataplane, f: Flow, nowMs: number): Chance[] {
  const t = dp.trace({ src: f.key.src, dst: f.key.dst, proto: f.proto, sport: f.key.sport, dport: f.key.dport, nowMs });
  if (t.truncated) throw new Error(`trace truncated for ${flowKeyText(f.key)}`);
  return t.outcomes.filter((o) => o.exact.numerator > 0n).map((o): Chance => {
    const p = o.probability;
    if (o.verdict === 'PASS' || o.verdict === 'FORWARD') return { kind: 'accept', to: o.to ?? hostPort(f.key.dst, f.key.dport), masq: o.masq, p };
    if (o.verdict === 'REPLY') return { kind: 'reject', p };
    return { kind: 'drop', p };
  });
}

/** What dp.process did with the packet, in the shared shape. */
function processOutcome(dp: Dataplane, f: Flow, nowMs: number): Outcome {
  const r = dp.process(f.bytes!, nowMs);
  if (r.verdict === 'DROP') return { kind: 'drop' };
  const p = decodePacket(r.packet!);
  if (r.verdict === 'REPLY') return { kind: 'reject', ...(p.icmp ? { icmp: { type: p.icmp.type, code: p.icmp.code } } : { icmp: { type: -1, code: -1 } }) };
  const masq = p.src !== f.key.src || p.sport !== f.key.sport;
  return { kind: 'accept', to: hostPort(p.dst, p.dport), masq, ...(masq ? { from: p.src } : {}) };
}

/** Two outcomes are the same; `exact` also compares the masquerade source and the ICMP type/code. */
function same(a: Outcome, b: Outcome, exact: boolean): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === 'accept' && b.kind === 'accept') {
    if (a.to !== b.to || a.masq !== b.masq) return false;
    return !exact || !a.masq || a.from === undefined || b.from === undefined || a.from === b.from;
  }
  if (a.kind === 'reject' && b.kind === 'reject') return !exact || !a.icmp || !b.icmp || (a.icmp.type === b.icmp.type && a.icmp.code === b.icmp.code);
  return true;
}

/** The kernel's outcome `k` is svcplane's `o`. A REJECT's ICMP error to a hairpin source routes to the pods' side, unseen: silence then. */
function kernelIs(k: Outcome, o: Outcome, f: Flow, exact: boolean): boolean {
  return same(k, o, exact) || (k.kind === 'drop' && o.kind === 'reject' && !f.routable);
}

interface Tally {
  rulesets: number;
  flows: number;
  deterministic: number;
  random: number;
  seeded: number;
  /** Random flows grouped by svcplane's outcome probabilities: how often the kernel took each. */
  choices: Map<string, { expected: number[]; seen: number[] }>;
  kinds: Record<string, number>;
  mismatchCount: number;
  /** The first 20, in full. */
  mismatches: string[];
}

/** The kernel's outcome for every flow, from its conntrack table now and the replies captured so far. */
async function kernelOutcomes(k: KernelNode, flows: Flow[], received: string[]): Promise<Outcome[]> {
  const ct = new Map((await k.conntrack()).map((e) => [flowKeyText(e.orig), e]));
  const rejects = repliesByFlow(received);
  return flows.map((f) => kernelOutcome(f.key, ct, rejects));
}

async function runRulesets(k: KernelNode, dp: Dataplane, seeds: number[], tally: Tally, mutate?: (text: string) => string): Promise<void> {
  const family = k.plan.family;
  const sources = new Sources(family);
  let natChains = new Set<string>();
  for (const [i, seed] of seeds.entries()) {
    const cluster = randomCluster(seed, { family });
    const state = proxyStateFor(cluster);
    const { render, model } = renderSync(state, natChains);
    const text = render.text;
    natChains = natChainsAfter(natChains, text);
    const rng = new Rng(seed ^ 0x5a5a5a5a);
    const flows = flowsFor(model, sources, rng, k.plan);
    for (const f of flows) f.bytes = buildPacket({ src: f.key.src, dst: f.key.dst, proto: f.proto, sport: f.key.sport, dport: f.key.dport });

    // svcplane first: its choice for each affinity pair's first packet seeds the kernel.
    const base = (i + 1) * RULESET_MS;
    dp.expire(base);
    dp.iptablesRestore(mutate ? mutate(text) : text, { noflush: true, family });
    const seeds4kernel: Array<[string, string]> = [];
    const results = flows.map((f, n) => {
      const now = base + n;
      const outs = traceOutcomes(dp, f, now);
      const got = processOutcome(dp, f, now);
      if (f.seedFor && got.kind === 'accept') {
        const chain = servicePortEndpointChainName(f.seedFor.spName, f.seedFor.protocol, got.to);
        // (Only the control run, whose svcplane rules were altered, picks endpoints the kernel has no chain for.)
        if (render.activeNatChains.has(chain)) seeds4kernel.push([chain, f.key.src]);
      }
      return { outs, got };
    });

    await k.restore(text, true);
    await k.seedRecent(seeds4kernel);
    const received = await k.inject(flows.map((f) => f.bytes!));
    let kernAll = await kernelOutcomes(k, flows, received);
    // On a busy machine the node's softirq work can lag behind the injection: where the kernel
    // seems silent and svcplane gives silence no chance, wait a little longer for evidence (up to 0.5 s).
    const unexplained = (): boolean => flows.some((f, n) => kernAll[n]!.kind === 'drop' && !results[n]!.outs.some((o) => kernelIs(kernAll[n]!, o, f, false)));
    for (let tries = 0; tries < 10 && unexplained(); tries++) {
      received.push(...(await k.collect(50)));
      kernAll = await kernelOutcomes(k, flows, received);
    }
    if (i % 10 === 9) await k.flushConntrack();

    flows.forEach((f, n) => {
      const { outs, got } = results[n]!;
      const kern = kernAll[n]!;
      const deterministic = outs.length === 1;
      const seeded = f.seedFor !== undefined && got.kind === 'accept';
      tally.flows++;
      if (deterministic) tally.deterministic++;
      else if (!seeded) {
        tally.random++;
        const key = outs.map((o) => o.p.toFixed(6)).join(' ');
        let c = tally.choices.get(key);
        if (!c) tally.choices.set(key, (c = { expected: outs.map(() => 0), seen: outs.map(() => 0) }));
        outs.forEach((o, j) => { c!.expected[j]! += o.p; });
        const j = outs.findIndex((o) => kernelIs(kern, o, f, false));
        if (j >= 0) c.seen[j]!++;
      }
      if (seeded) tally.seeded++;
      const kind = kern.kind === 'accept' && kern.masq ? 'accept+masq' : kern.kind;
      tally.kinds[kind] = (tally.kinds[kind] ?? 0) + 1;
      const problems: string[] = [];
      if (!outs.some((o) => same(got, o, false))) problems.push(`dp.process gave ${outcomeText(got)}, not one of trace's outcomes`);
      if (!outs.some((o) => kernelIs(kern, o, f, false))) problems.push('the kernel did something svcplane gives no chance');
      // Where the result is certain (one outcome, or a seeded affinity choice) process must match exactly.
      if ((deterministic || seeded) && !kernelIs(kern, got, f, true)) problems.push(`dp.process gave ${outcomeText(got)}`);
      if (problems.length) tally.mismatchCount++;
      if (problems.length && tally.mismatches.length < 20) {
        tally.mismatches.push([
          `seed ${seed} flow #${n} (${f.what}) ${f.proto} ${f.key.src}:${f.key.sport} → ${f.key.dst}:${f.key.dport}`,
          `  kernel:   ${outcomeText(kern)}`,
          `  svcplane: ${outs.map(outcomeText).join(' | ')}`,
          ...problems.map((p) => `  ${p}`),
        ].join('\n'));
      }
    });
    tally.rulesets++;
  }
}

async function freshPair(tag: string, family: 4 | 6 = 4): Promise<{ k: KernelNode; dp: Dataplane }> {
  const k = await KernelNode.start(tag, family);
  try {
    await k.resetRules();
    const plan = planOf(family);
    const dp = await Dataplane.create({ nodeIPs: [plan.node, plan.nodeLink], podCIDR: family === 6 ? POD_CIDR6 : POD_CIDR, seed: 0x6b65726e, conntrackCapacity: 1 << 15 });
    dp.iptablesRestore(KUBE_BASE_RULES, { family });
    return { k, dp };
  } catch (e) {
    k.destroy();
    throw e;
  }
}

/**
 * Chi² value a fit of `df` degrees of freedom exceeds by chance once in a billion (z = 6), by the
 * Wilson–Hilferty cube-root approximation of the chi² quantile.
 */
function chiSquareLimit(df: number): number {
  const v = 2 / (9 * df);
  return df * (1 - v + 6 * Math.sqrt(v)) ** 3;
}

/** Pearson's chi² of the kernel's picks against svcplane's odds, over groups seen at least 30 times. */
function chiSquare(choices: Tally['choices']): { chi2: number; df: number } {
  let chi2 = 0;
  let df = 0;
  for (const { expected, seen } of choices.values()) {
    const n = seen.reduce((a, b) => a + b, 0);
    if (n < 30) continue;
    expected.forEach((e, j) => { chi2 += (seen[j]! - e) ** 2 / e; });
    df += expected.length - 1;
  }
  return { chi2, df };
}

const emptyTally = (): Tally => ({ rulesets: 0, flows: 0, deterministic: 0, random: 0, seeded: 0, choices: new Map(), kinds: {}, mismatchCount: 0, mismatches: [] });

for (const family of [4, 6] as const) {
  describe.skipIf(skipWhy !== '')(`kernel differential: svcplane iptables mode vs ${family === 6 ? 'ip6tables' : 'iptables'}-legacy`, () => {
    it('the comparison sees a difference: rules altered on svcplane\'s side only are caught', async () => {
      const { k, dp } = await freshPair(`kdc${family}`, family);
      try {
        // Every DNAT target port moves by one: flows disagree one by one.
        const ports = emptyTally();
        const shift = (text: string) => text.replace(/--to-destination (\S+):(\d+)/g, (_, ip: string, port: string) => `--to-destination ${ip}:${(Number(port) % 65535) + 1}`);
        await runRulesets(k, dp, [FIRST_SEED, FIRST_SEED + 1], ports, shift);
        expect(ports.flows).toBeGreaterThan(20);
        expect(ports.mismatchCount).toBeGreaterThan(0);
        // Two-endpoint services split 1/10 : 9/10 instead of 1/2 : 1/2: every single pick is still
        // possible, only the odds are off — the chi² test must see it.
        const odds = emptyTally();
        await runRulesets(k, dp, Array.from({ length: 40 }, (_, i) => FIRST_SEED + 100 + i), odds, (t) => t.replaceAll('--probability 0.5000000000', '--probability 0.1000000000'));
        expect(odds.mismatchCount).toBe(0);
        const fit = chiSquare(odds.choices);
        expect(fit.df).toBeGreaterThan(0);
        expect(fit.chi2).toBeGreaterThan(chiSquareLimit(fit.df));
      } finally {
        k.destroy();
      }
    });

    it(`${RULESETS} random IPv${family} rulesets: every kernel outcome is one svcplane gives a chance, exactly where certain`, async () => {
      const { k, dp } = await freshPair(`kd${family}`, family);
      const tally = emptyTally();
      const t0 = Date.now();
      try {
        await runRulesets(k, dp, Array.from({ length: RULESETS }, (_, i) => FIRST_SEED + i), tally);
      } finally {
        k.destroy();
      }
      const fit = chiSquare(tally.choices);
      console.log(`kernel differential IPv${family}: ${tally.rulesets} rulesets, ${tally.flows} flows (${tally.deterministic} certain, ${tally.random} random, ${tally.seeded} affinity-seeded), `
        + `kernel outcomes ${JSON.stringify(tally.kinds)}, ${tally.mismatchCount} mismatches, kernel picks vs svcplane odds chi² ${fit.chi2.toFixed(1)} on ${fit.df} df (limit ${chiSquareLimit(fit.df).toFixed(1)}), ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      expect(tally.mismatchCount, tally.mismatches.join('\n')).toBe(0);
      // The run exercised every kind of answer, so agreement is not vacuous.
      expect(tally.rulesets).toBe(RULESETS);
      if (RULESETS >= 50) {
        for (const kind of ['accept', 'accept+masq', 'reject', 'drop']) expect(tally.kinds[kind] ?? 0, kind).toBeGreaterThan(0);
        expect(tally.random).toBeGreaterThan(0);
        expect(tally.seeded).toBeGreaterThan(0);
        // The kernel's random picks follow svcplane's probabilities (a false alarm is a
        // one-in-a-billion event, while e.g. ½/¼/¼ against the kernel's ⅓/⅓/⅓ over a few hundred
        // three-way choices lands far outside).
        expect(fit.df).toBeGreaterThan(0);
        expect(fit.chi2).toBeLessThan(chiSquareLimit(fit.df));
      }
    }, 30 * 60_000);
  });
}
