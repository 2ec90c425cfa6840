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
import { describe, it } from 'vitest';
import { kernelSkip } from '../support/netns';
import { KernelNode, KUBE_BASE_RULES, KERNEL_TOOLS, planOf } from '../support/kernel-node';
import { proxyStateFor, randomCluster, renderSync, natChainsAfter, Rng, POD_CIDR, POD_CIDR6 } from '../support/kube-gen';
import { emptyTally, expectAgreement, expectCaught, flowsFor, judge, processOutcome, settledOutcomes, Sources, traceOutcomes, type Tally } from '../support/differential';
import { Dataplane } from '../../host-node/dataplane';
import { buildPacket } from '../../host-node/core/packet';
import { servicePortEndpointChainName } from '../../host-node/kube/index';

const RULESETS = Number(process.env.SVCPLANE_KERNEL_RULESETS ?? 1000);
const FIRST_SEED = Number(process.env.SVCPLANE_KERNEL_SEED ?? 1);
/** svcplane time advances this much per ruleset, so the previous ruleset's flows have all expired. */
const RULESET_MS = 600_000;

const skipWhy = kernelSkip('tests/kernel/differential', KERNEL_TOOLS);

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
    const kernAll = await settledOutcomes(k, flows, results.map((r) => r.outs), received);
    if (i % 10 === 9) await k.flushConntrack();
    flows.forEach((f, n) => judge(tally, seed, n, f, results[n]!.outs, results[n]!.got, kernAll[n]!));
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


for (const family of [4, 6] as const) {
  describe.skipIf(skipWhy !== '')(`kernel differential: svcplane iptables mode vs ${family === 6 ? 'ip6tables' : 'iptables'}-legacy`, () => {
    it('the comparison sees a difference: rules altered on svcplane\'s side only are caught', async () => {
      const { k, dp } = await freshPair(`kdc${family}`, family);
      try {
        // Every DNAT target port moves by one: flows disagree one by one.
        const ports = emptyTally();
        const shift = (text: string) => text.replace(/--to-destination (\S+):(\d+)/g, (_, ip: string, port: string) => `--to-destination ${ip}:${(Number(port) % 65535) + 1}`);
        await runRulesets(k, dp, [FIRST_SEED, FIRST_SEED + 1], ports, shift);
        // Two-endpoint services split 1/10 : 9/10 instead of 1/2 : 1/2.
        const odds = emptyTally();
        await runRulesets(k, dp, Array.from({ length: 40 }, (_, i) => FIRST_SEED + 100 + i), odds, (t) => t.replaceAll('--probability 0.5000000000', '--probability 0.1000000000'));
        expectCaught(ports, odds);
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
      expectAgreement(tally, RULESETS, `kernel differential IPv${family}`, t0);
    }, 30 * 60_000);
  });
}
