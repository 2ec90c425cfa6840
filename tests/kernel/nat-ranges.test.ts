// Kernel differential of NAT to address ranges: DNAT and SNAT to a range pick one address per
// connection by hashing it (nf_nat_core.c find_best_ips_proto(): jhash2 of the source, seeded by
// the destination), so each client lands on one fixed address. A range written backwards is
// taken too, and its choice wraps around the address space. The same rules go into the kernel's
// iptables-legacy inside a throwaway node (tests/support/kernel-node.ts) and into a Dataplane, the
// same SYNs from many clients go to both, and the addresses the kernel's conntrack table holds
// must be the ones svcplane wrote into each packet.
// Every address the test uses is in 198.18.0.0/15. A backwards SNAT range may give a packet any
// source address, but that packet only goes on to the sink namespace, which drops every frame.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { netnsSupport, missingTools } from '../support/netns';
import { KernelNode, KERNEL_TOOLS, NODE_ADDRS } from '../support/kernel-node';
import { Dataplane } from '../../host-node/dataplane';
import { buildPacket, decodePacket } from '../../host-node/core/packet';

const support = netnsSupport();
const missing = support.ok ? missingTools(KERNEL_TOOLS) : [];
const skipWhy = !support.ok ? support.reason : missing.length ? `missing tools: ${missing.join(', ')}` : '';
if (skipWhy) console.warn(`tests/kernel/nat-ranges: SKIPPED — ${skipWhy}`);

const VIP = '198.18.77.1';
const CLIENTS = 240;

/** SYNs to VIP:80 from clients across the node's external client range (198.18.100.0/22). */
function syns(): Uint8Array[] {
  return Array.from({ length: CLIENTS }, (_, i) => buildPacket({
    src: `198.18.${100 + (i % 4)}.${1 + Math.floor(i / 4) * 4 + (i % 4)}`, dst: VIP, proto: 'tcp', sport: 20000 + i, dport: 80, flags: 'S',
  }));
}

/** Where each connection went: "client:port" → "after DNAT · after SNAT" (ip:port each). */
type Choices = Map<string, string>;

describe.skipIf(skipWhy !== '')('NAT address ranges: svcplane vs the kernel\'s choice', () => {
  let k: KernelNode;
  beforeAll(async () => { k = await KernelNode.start('natr'); });
  afterAll(() => k?.destroy());

  async function kernelChoices(rules: string, pkts: Uint8Array[]): Promise<Choices> {
    await k.restore(`*nat\n${rules}\nCOMMIT\n`);
    await k.flushConntrack();
    await k.inject(pkts, 30);
    const out: Choices = new Map();
    for (const c of await k.conntrack()) {
      if (c.orig.dst !== VIP) continue;
      // The reply comes from the DNAT address to the SNAT address.
      out.set(`${c.orig.src}:${c.orig.sport}`, `${c.reply.src}:${c.reply.sport} · ${c.reply.dst}:${c.reply.dport}`);
    }
    return out;
  }

  async function svcplaneChoices(rules: string, pkts: Uint8Array[]): Promise<Choices> {
    const dp = await Dataplane.create({ nodeIPs: NODE_ADDRS, seed: 1, conntrackCapacity: 1 << 12 });
    dp.iptablesRestore(`*nat\n${rules}\nCOMMIT\n`);
    const out: Choices = new Map();
    let now = 1000;
    for (const p of pkts) {
      const before = decodePacket(p);
      const r = dp.process(p, (now += 1));
      if (!r.packet) continue;
      const after = decodePacket(r.packet);
      out.set(`${before.src}:${before.sport}`, `${after.dst}:${after.dport} · ${after.src}:${after.sport}`);
    }
    return out;
  }

  /** The kernel's choices against svcplane's, with `ours` applied to the rules svcplane gets. */
  async function compare(rules: string, ours: (text: string) => string = (t) => t): Promise<{ diffs: string[]; kernel: Choices }> {
    const pkts = syns();
    const kernel = await kernelChoices(rules, pkts);
    const mine = await svcplaneChoices(ours(rules), pkts);
    const diffs: string[] = [];
    for (const [client, theirs] of kernel) if (mine.get(client) !== theirs) diffs.push(`${client}: kernel ${theirs}, svcplane ${mine.get(client)}`);
    return { diffs, kernel };
  }

  const distinct = (c: Choices, part: 0 | 1) => new Set([...c.values()].map((v) => v.split(' · ')[part]!.split(':')[0])).size;

  it('DNAT and SNAT to address ranges: every client gets the kernel\'s addresses', async () => {
    const { diffs, kernel } = await compare([
      `-A PREROUTING -d ${VIP}/32 -p tcp --dport 80 -j DNAT --to-destination 198.18.60.1-198.18.60.250:8080`,
      '-A POSTROUTING -d 198.18.60.0/24 -j SNAT --to-source 198.18.70.1-198.18.70.99',
    ].join('\n'));
    expect(diffs).toEqual([]);
    // Every connection reached the kernel's table, spread over both ranges.
    expect(kernel.size).toBe(CLIENTS);
    expect(distinct(kernel, 0)).toBeGreaterThan(50);
    expect(distinct(kernel, 1)).toBeGreaterThan(30);
  });

  it('--persistent hashes the client alone, and a destination port range is searched from its first port', async () => {
    const { diffs, kernel } = await compare([
      `-A PREROUTING -d ${VIP}/32 -p tcp --dport 80 -j DNAT --to-destination 198.18.60.1-198.18.60.250:7000-7009 --persistent`,
      '-A POSTROUTING -d 198.18.60.0/24 -j SNAT --to-source 198.18.70.1-198.18.70.99 --persistent',
    ].join('\n'));
    expect(diffs).toEqual([]);
    expect(kernel.size).toBe(CLIENTS);
    expect(distinct(kernel, 0)).toBeGreaterThan(50);
  });

  it('an SNAT range written backwards: the kernel\'s wrapped-around choice, client by client', async () => {
    const { diffs, kernel } = await compare([
      `-A PREROUTING -d ${VIP}/32 -p tcp --dport 80 -j DNAT --to-destination 198.18.60.7:8080`,
      '-A POSTROUTING -d 198.18.60.0/24 -j SNAT --to-source 198.18.70.99-198.18.70.1',
    ].join('\n'));
    expect(diffs).toEqual([]);
    expect(kernel.size).toBe(CLIENTS);
    expect(distinct(kernel, 1)).toBeGreaterThan(CLIENTS / 2);
  });

  it('the comparison sees a difference: a range moved on svcplane\'s side only is caught', async () => {
    const rules = `-A PREROUTING -d ${VIP}/32 -p tcp --dport 80 -j DNAT --to-destination 198.18.60.1-198.18.60.250:8080`;
    const { diffs, kernel } = await compare(rules, (t) => t.replace('198.18.60.1-', '198.18.60.2-'));
    expect(kernel.size).toBe(CLIENTS);
    expect(diffs.length).toBeGreaterThan(CLIENTS / 2);
  });
});

