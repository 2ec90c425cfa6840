// Kernel differential, nftables: random kube-proxy-shaped clusters rendered as kube-proxy's
// nftables mode writes them (renderNftables: verdict maps, numgen load balancing, affinity sets,
// the no-endpoint and cluster-ips-check rules, service CIDR 198.18.0.0/20) and loaded with nft into
// a throwaway node namespace, against svcplane's direct mode given the same objects (dp.apply,
// mode 'direct', the same service CIDR). The same packet bytes go to both, as in the iptables
// differential (tests/support/differential.ts judges them): the kernel's outcome must be one
// svcplane gives a chance, exactly the one where svcplane has only one, and the kernel's numgen
// picks must follow svcplane's odds. Session affinity: svcplane's endpoint for a client's first
// connection is put into the kernel's affinity set of that endpoint, so both must send the client's
// next connection there. One difference between kube-proxy's own modes shows: a load-balancer IP
// with loadBalancerSourceRanges and no endpoints — nftables mode checks the ranges first
// (firewall-check, prerouting) and drops a client outside them; iptables mode, which the direct mode
// follows, has no firewall for a Service without endpoints and rejects it. Those flows must differ
// exactly so. IPv4 and IPv6. SVCPLANE_NFT_RULESETS (default 300 per family) and
// SVCPLANE_KERNEL_SEED (default 1) choose the run.
import { describe, it, expect } from 'vitest';
import { kernelSkip } from '../support/netns';
import { KernelNode, KERNEL_TOOLS } from '../support/kernel-node';
import { proxyStateFor, randomCluster, NODE_NAME, Rng, POD_CIDR, POD_CIDR6 } from '../support/kube-gen';
import { emptyTally, expectAgreement, expectCaught, flowsFor, judge, processOutcome, settledOutcomes, Sources, traceOutcomes, type Flow, type Tally } from '../support/differential';
import { Dataplane } from '../../host-node/dataplane';
import { buildPacket } from '../../host-node/core/packet';
import { categorizeEndpoints, cidrContains, nftEndpointBase, parseCIDR, parseIP, renderNftables, sameIP, type ProxyModel } from '../../host-node/kube/index';

const RULESETS = Number(process.env.SVCPLANE_NFT_RULESETS ?? 300);
const FIRST_SEED = Number(process.env.SVCPLANE_KERNEL_SEED ?? 1);
/** svcplane time advances this much per ruleset, so the previous ruleset's flows have all expired. */
const RULESET_MS = 600_000;
/** kube-gen's Service range (cluster, external and LB IPs), as kube-proxy's ServiceCIDRs. */
const SERVICE_CIDR = { 4: '198.18.0.0/20', 6: 'fd00:198:18::/60' } as const;

const skipWhy = kernelSkip('tests/kernel/nftables-differential', [...KERNEL_TOOLS, 'nft'], 'apt-get install nftables');

/** "ip:port" / "[ip6]:port" → its parts. */
function splitTo(to: string): { ip: string; port: number } {
  const at = to.lastIndexOf(':');
  return { ip: to.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(to.slice(at + 1)) };
}

/** The flow goes to a load-balancer IP of a service port without endpoints, from outside its loadBalancerSourceRanges. */
function firewallFirst(model: ProxyModel, f: Flow): boolean {
  const src = parseIP(f.key.src)!;
  for (const sp of model.services.values()) {
    if (sp.port !== f.key.dport || sp.protocol.toLowerCase() !== f.proto || !sp.loadBalancerVIPs.some((v) => sameIP(v, f.key.dst))) continue;
    if (sp.loadBalancerSourceRanges.length === 0) return false;
    if (categorizeEndpoints(model.endpoints.get(sp.id) ?? [], sp, NODE_NAME).hasAnyEndpoints) return false;
    return !sp.loadBalancerSourceRanges.some((r) => { const c = parseCIDR(r.trim()); return c !== null && cidrContains(c, src); });
  }
  return false;
}

/** Flows of the known difference, each checked on its own; the rest judged as usual. */
interface NftTally extends Tally { firewallFirst: number }
const nftTally = (): NftTally => ({ ...emptyTally(), firewallFirst: 0 });

async function runRulesets(k: KernelNode, dp: Dataplane, seeds: number[], tally: NftTally, mutate?: (text: string) => string): Promise<void> {
  const family = k.plan.family;
  const ipX = family === 6 ? 'ip6' : 'ip';
  const sources = new Sources(family);
  for (const [i, seed] of seeds.entries()) {
    const cluster = randomCluster(seed, { family });
    const model = proxyStateFor(cluster).sync()[0]!.model;
    const text = renderNftables(model, { nodeName: NODE_NAME, nodeIPs: [k.plan.node], podCIDR: family === 6 ? POD_CIDR6 : POD_CIDR, serviceCIDRs: [SERVICE_CIDR[family]] });
    const flows = flowsFor(model, sources, new Rng(seed ^ 0x5a5a5a5a), k.plan);
    for (const f of flows) f.bytes = buildPacket({ src: f.key.src, dst: f.key.dst, proto: f.proto, sport: f.key.sport, dport: f.key.dport });

    // svcplane first: its choice for each affinity pair's first packet seeds the kernel's set.
    const base = (i + 1) * RULESET_MS;
    dp.expire(base);
    const applied = dp.apply({ services: cluster.services, endpointSlices: cluster.slices, nodes: [] }, { mode: 'direct', nodeName: NODE_NAME });
    expect(applied.issues).toEqual([]);
    const seeds4kernel: string[] = [];
    const results = flows.map((f, n) => {
      const now = base + n;
      const outs = traceOutcomes(dp, f, now);
      const got = processOutcome(dp, f, now);
      if (f.seedFor && got.kind === 'accept') {
        const nn = f.seedFor.spName.split(':')[0]!;
        const ep = splitTo(got.to);
        const set = `affinity-${nftEndpointBase(nn, f.seedFor.spName.slice(nn.length + 1), f.seedFor.protocol, ep.ip, ep.port)}`;
        // (Only a control run, whose kernel rules were altered, lacks the set of svcplane's pick.)
        if (text.includes(`add set ${ipX} kube-proxy ${set} `)) seeds4kernel.push(`add element ${ipX} kube-proxy ${set} { ${f.key.src} }`);
      }
      return { outs, got };
    });

    // The table replaced whole in one transaction, as a fresh kube-proxy would find it.
    await k.nft(`add table ${ipX} kube-proxy\ndelete table ${ipX} kube-proxy\n${mutate ? mutate(text) : text}`);
    if (seeds4kernel.length) await k.nft(`${seeds4kernel.join('\n')}\n`);
    const received = await k.inject(flows.map((f) => f.bytes!));
    const kernAll = await settledOutcomes(k, flows, results.map((r) => r.outs), received);
    if (i % 10 === 9) await k.flushConntrack();
    flows.forEach((f, n) => {
      const { outs, got } = results[n]!;
      if (!firewallFirst(model, f)) return judge(tally, seed, n, f, outs, got, kernAll[n]!);
      tally.firewallFirst++;
      const svcplane = outs.map((o) => o.kind).join() === 'reject' && got.kind === 'reject';
      if (kernAll[n]!.kind !== 'drop' || !svcplane) {
        tally.mismatchCount++;
        tally.mismatches.push(`seed ${seed} flow #${n} (${f.what}, out of source ranges, no endpoints): kernel ${kernAll[n]!.kind}, svcplane ${outs.map((o) => o.kind).join(' | ')} / ${got.kind}; expected drop and reject`);
      }
    });
    tally.rulesets++;
  }
}

async function freshPair(tag: string, family: 4 | 6): Promise<{ k: KernelNode; dp: Dataplane }> {
  const k = await KernelNode.start(tag, family);
  try {
    const dp = await Dataplane.create({
      nodeIPs: [k.plan.node, k.plan.nodeLink], podCIDR: family === 6 ? POD_CIDR6 : POD_CIDR, serviceCIDR: SERVICE_CIDR[family],
      seed: 0x6e667462, conntrackCapacity: 1 << 15,
    });
    return { k, dp };
  } catch (e) {
    k.destroy();
    throw e;
  }
}

for (const family of [4, 6] as const) {
  describe.skipIf(skipWhy !== '')(`kernel differential: svcplane direct mode vs kube-proxy's nftables rules (IPv${family})`, () => {
    it('the comparison sees a difference: kernel rules altered on their own are caught', async () => {
      const { k, dp } = await freshPair(`knc${family}`, family);
      try {
        // Every DNAT target port moves by one: flows disagree one by one.
        const ports = nftTally();
        await runRulesets(k, dp, [FIRST_SEED, FIRST_SEED + 1], ports,
          (t) => t.replace(/dnat to (\S+):(\d+)$/gm, (_, ip: string, port: string) => `dnat to ${ip}:${(Number(port) % 65535) + 1}`));
        // Two-endpoint services split 1/10 : 9/10 in the kernel.
        const odds = nftTally();
        await runRulesets(k, dp, Array.from({ length: 40 }, (_, i) => FIRST_SEED + 100 + i), odds,
          (t) => t.replace(/numgen random mod 2 vmap \{ 0 : (goto \S+) , 1 : (goto \S+) \}/g, 'numgen random mod 10 vmap { 0 : $1 , 1-9 : $2 }'));
        expectCaught(ports, odds);
      } finally {
        k.destroy();
      }
    });

    it(`${RULESETS} random IPv${family} clusters: every kernel outcome is one svcplane gives a chance, exactly where certain`, async () => {
      const { k, dp } = await freshPair(`kn${family}`, family);
      const tally = nftTally();
      const t0 = Date.now();
      try {
        await runRulesets(k, dp, Array.from({ length: RULESETS }, (_, i) => FIRST_SEED + i), tally);
      } finally {
        k.destroy();
      }
      expectAgreement(tally, RULESETS, `nftables differential IPv${family}`, t0, `, ${tally.firewallFirst} dropped by the source ranges before the no-endpoint reject`);
      if (RULESETS >= 50) expect(tally.firewallFirst).toBeGreaterThan(0);
    }, 30 * 60_000);
  });
}
