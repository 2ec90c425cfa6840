// differential.ts — what the kernel differentials share: the flows a ruleset is probed with
// (every Service address and port from outside, from a pod, hairpin, NodePorts, external and LB
// IPs, affinity pairs, and addresses no Service holds), svcplane's answer for each (trace's
// outcomes with their odds, and what dp.process did), the kernel's (its conntrack table and what
// came back), and the verdict on each flow, tallied: the kernel's outcome must be one svcplane
// gives a chance, exactly the one where svcplane's is certain, and the kernel's random picks must
// follow svcplane's odds (chi²). Bookkeeping over both sides' answers; the tests drive the kernel.
import { expect } from 'vitest';
import { kernelOutcome, repliesByFlow, flowKeyText, hostPort, outcomeText, type AddressPlan, type FlowKey, type KernelNode, type Outcome } from './kernel-node.js';
import { addrOf, type Rng } from './kube-gen.js';
import type { Dataplane } from '../../host-node/dataplane.js';
import { decodePacket, PROTO, type ProtoName } from '../../host-node/core/packet.js';
import type { ProxyModel } from '../../host-node/kube/index.js';

export interface Flow {
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
export class Sources {
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

export const PROTO_NAME: Record<string, ProtoName> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };

export function flowsFor(model: ProxyModel, src: Sources, rng: Rng, plan: AddressPlan): Flow[] {
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

export type Chance = Outcome & { p: number };

/** svcplane's trace outcomes in the shared shape, with their probabilities (> 0 only). */
export function traceOutcomes(dp: Dataplane, f: Flow, nowMs: number): Chance[] {
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
export function processOutcome(dp: Dataplane, f: Flow, nowMs: number): Outcome {
  const r = dp.process(f.bytes!, nowMs);
  if (r.verdict === 'DROP') return { kind: 'drop' };
  const p = decodePacket(r.packet!);
  if (r.verdict === 'REPLY') return { kind: 'reject', ...(p.icmp ? { icmp: { type: p.icmp.type, code: p.icmp.code } } : { icmp: { type: -1, code: -1 } }) };
  const masq = p.src !== f.key.src || p.sport !== f.key.sport;
  return { kind: 'accept', to: hostPort(p.dst, p.dport), masq, ...(masq ? { from: p.src } : {}) };
}

/** Two outcomes are the same; `exact` also compares the masquerade source and the ICMP type/code. */
export function same(a: Outcome, b: Outcome, exact: boolean): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === 'accept' && b.kind === 'accept') {
    if (a.to !== b.to || a.masq !== b.masq) return false;
    return !exact || !a.masq || a.from === undefined || b.from === undefined || a.from === b.from;
  }
  if (a.kind === 'reject' && b.kind === 'reject') return !exact || !a.icmp || !b.icmp || (a.icmp.type === b.icmp.type && a.icmp.code === b.icmp.code);
  return true;
}

/** The kernel's outcome `k` is svcplane's `o`. A REJECT's ICMP error to a hairpin source routes to the pods' side, unseen: silence then. */
export function kernelIs(k: Outcome, o: Outcome, f: Flow, exact: boolean): boolean {
  return same(k, o, exact) || (k.kind === 'drop' && o.kind === 'reject' && !f.routable);
}

export interface Tally {
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
export async function kernelOutcomes(k: KernelNode, flows: Flow[], received: string[]): Promise<Outcome[]> {
  const ct = new Map((await k.conntrack()).map((e) => [flowKeyText(e.orig), e]));
  const rejects = repliesByFlow(received);
  return flows.map((f) => kernelOutcome(f.key, ct, rejects));
}

/**
 * Chi² value a fit of `df` degrees of freedom exceeds by chance once in a billion (z = 6), by the
 * Wilson–Hilferty cube-root approximation of the chi² quantile.
 */
export function chiSquareLimit(df: number): number {
  const v = 2 / (9 * df);
  return df * (1 - v + 6 * Math.sqrt(v)) ** 3;
}

/** Pearson's chi² of the kernel's picks against svcplane's odds, over groups seen at least 30 times. */
export function chiSquare(choices: Tally['choices']): { chi2: number; df: number } {
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

export const emptyTally = (): Tally => ({ rulesets: 0, flows: 0, deterministic: 0, random: 0, seeded: 0, choices: new Map(), kinds: {}, mismatchCount: 0, mismatches: [] });

/**
 * The kernel's outcome of every flow. On a busy machine the node's softirq work can lag behind the
 * injection: where the kernel seems silent and svcplane gives silence no chance, this waits a
 * little longer for evidence (up to 0.5 s).
 */
export async function settledOutcomes(k: KernelNode, flows: Flow[], outs: Chance[][], received: string[]): Promise<Outcome[]> {
  let kernAll = await kernelOutcomes(k, flows, received);
  const unexplained = (): boolean => flows.some((f, n) => kernAll[n]!.kind === 'drop' && !outs[n]!.some((o) => kernelIs(kernAll[n]!, o, f, false)));
  for (let tries = 0; tries < 10 && unexplained(); tries++) {
    received.push(...(await k.collect(50)));
    kernAll = await kernelOutcomes(k, flows, received);
  }
  return kernAll;
}

/** Tallies flow `n` of ruleset `seed`: svcplane's outcomes `outs`, what dp.process did (`got`), the kernel's `kern`. */
export function judge(tally: Tally, seed: number, n: number, f: Flow, outs: Chance[], got: Outcome, kern: Outcome): void {
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
}

/**
 * The control runs saw what they were made to show: DNAT ports moved on one side (`ports`) disagree
 * flow by flow; odds skewed on one side (`odds`) leave every pick possible but fail the chi² test.
 */
export function expectCaught(ports: Tally, odds: Tally): void {
  expect(ports.flows).toBeGreaterThan(20);
  expect(ports.mismatchCount).toBeGreaterThan(0);
  expect(odds.mismatchCount, odds.mismatches.join('\n')).toBe(0);
  const fit = chiSquare(odds.choices);
  expect(fit.df).toBeGreaterThan(0);
  expect(fit.chi2).toBeGreaterThan(chiSquareLimit(fit.df));
}

/**
 * A full run agreed: no mismatch, every ruleset run, and (from 50 rulesets) every kind of answer
 * seen, random and affinity-seeded choices made, the kernel's picks following svcplane's odds.
 * Prints the tally under `label` (`extra` added to its flow counts).
 */
export function expectAgreement(tally: Tally, rulesets: number, label: string, startedMs: number, extra = ''): void {
  const fit = chiSquare(tally.choices);
  console.log(`${label}: ${tally.rulesets} rulesets, ${tally.flows} flows (${tally.deterministic} certain, ${tally.random} random, ${tally.seeded} affinity-seeded${extra}), `
    + `kernel outcomes ${JSON.stringify(tally.kinds)}, ${tally.mismatchCount} mismatches, kernel picks vs svcplane odds chi² ${fit.chi2.toFixed(1)} on ${fit.df} df (limit ${chiSquareLimit(fit.df).toFixed(1)}), ${((Date.now() - startedMs) / 1000).toFixed(1)} s`);
  expect(tally.mismatchCount, tally.mismatches.join('\n')).toBe(0);
  expect(tally.rulesets).toBe(rulesets);
  if (rulesets < 50) return;
  for (const kind of ['accept', 'accept+masq', 'reject', 'drop']) expect(tally.kinds[kind] ?? 0, kind).toBeGreaterThan(0);
  expect(tally.random).toBeGreaterThan(0);
  expect(tally.seeded).toBeGreaterThan(0);
  // The kernel's random picks follow svcplane's probabilities (a false alarm is a one-in-a-billion
  // event, while e.g. ½/¼/¼ against the kernel's ⅓/⅓/⅓ over a few hundred three-way choices lands
  // far outside).
  expect(fit.df).toBeGreaterThan(0);
  expect(fit.chi2).toBeLessThan(chiSquareLimit(fit.df));
}
