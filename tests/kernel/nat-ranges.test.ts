// Kernel differential of NAT to address ranges: DNAT and SNAT to a range pick one address per
// connection by hashing it (nf_nat_core.c find_best_ips_proto(): jhash2 of the source, seeded by
// the destination), so each client lands on one fixed address. A range written backwards is
// taken too, and its choice wraps around the address space. The same rules go into the kernel's
// iptables-legacy inside a throwaway node (tests/support/kernel-node.ts) and into a Dataplane, the
// same SYNs from many clients go to both, and the addresses the kernel's conntrack table holds
// must be the ones svcplane wrote into each packet. IPv4 and IPv6 (where the kernel hashes all
// four words of the address).
// Every address the test uses is in 198.18.0.0/15 or fd00::/8. A backwards SNAT range may give a packet any
// source address, but that packet only goes on to the sink namespace, which drops every frame.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kernelSkip } from '../support/netns';
import { KernelNode, KERNEL_TOOLS, NODE_ADDRS, NODE_ADDRS6 } from '../support/kernel-node';
import { Dataplane } from '../../host-node/dataplane';
import { buildPacket, decodePacket } from '../../host-node/core/packet';

const skipWhy = kernelSkip('tests/kernel/nat-ranges', KERNEL_TOOLS);

const CLIENTS = 240;

/** The addresses of one family's run: the VIP, the DNAT and SNAT ranges, the client range. */
interface Addrs {
  family: 4 | 6;
  vip: string;
  /** `a-b` for --to-destination (IPv6: `[a-b]`, as a port follows). */
  dnat: (first: string) => string;
  dnatNet: string;
  snat: string;
  snatBack: string;
  client: (i: number) => string;
  /** --to-destination with the range moved by one, svcplane's side of the control test. */
  moved: [string, string];
}

const ADDRS: Record<4 | 6, Addrs> = {
  4: {
    family: 4, vip: '198.18.77.1', dnat: (first) => `${first}-198.18.60.250`, dnatNet: '198.18.60.0/24',
    snat: '198.18.70.1-198.18.70.99', snatBack: '198.18.70.99-198.18.70.1',
    client: (i) => `198.18.${100 + (i % 4)}.${1 + Math.floor(i / 4) * 4 + (i % 4)}`,
    moved: ['198.18.60.1-', '198.18.60.2-'],
  },
  6: {
    family: 6, vip: 'fd00:198:18:e::1', dnat: (first) => `[${first}-fd00:198:18:c::fa]`, dnatNet: 'fd00:198:18:c::/64',
    snat: 'fd00:198:18:d::1-fd00:198:18:d::63', snatBack: 'fd00:198:18:d::63-fd00:198:18:d::1',
    client: (i) => `fd00:198:18:${(0x100 + (i % 4)).toString(16)}::${(1 + Math.floor(i / 4) * 4 + (i % 4)).toString(16)}`,
    moved: ['[fd00:198:18:c::1-', '[fd00:198:18:c::2-'],
  },
};

/** SYNs to the VIP, port 80, from clients across the node's external client range. */
function syns(a: Addrs): Uint8Array[] {
  return Array.from({ length: CLIENTS }, (_, i) => buildPacket({
    src: a.client(i), dst: a.vip, proto: 'tcp', sport: 20000 + i, dport: 80, flags: 'S',
  }));
}

/** Where each connection went: "client:port" → "after DNAT · after SNAT" (ip:port each). */
type Choices = Map<string, string>;

for (const family of [4, 6] as const) {
  const A = ADDRS[family];
  const first = family === 6 ? 'fd00:198:18:c::1' : '198.18.60.1';
  describe.skipIf(skipWhy !== '')(`NAT address ranges, IPv${family}: svcplane vs the kernel's choice`, () => {
    let k: KernelNode;
    beforeAll(async () => { k = await KernelNode.start(`natr${family}`, family); });
    afterAll(() => k?.destroy());

    async function kernelChoices(rules: string, pkts: Uint8Array[]): Promise<Choices> {
      await k.restore(`*nat\n${rules}\nCOMMIT\n`);
      await k.flushConntrack();
      await k.inject(pkts, 30);
      const out: Choices = new Map();
      for (const c of await k.conntrack()) {
        if (c.orig.dst !== A.vip) continue;
        // The reply comes from the DNAT address to the SNAT address.
        out.set(`${c.orig.src}:${c.orig.sport}`, `${c.reply.src}:${c.reply.sport} · ${c.reply.dst}:${c.reply.dport}`);
      }
      return out;
    }

    async function svcplaneChoices(rules: string, pkts: Uint8Array[]): Promise<Choices> {
      const dp = await Dataplane.create({ nodeIPs: family === 6 ? NODE_ADDRS6 : NODE_ADDRS, seed: 1, conntrackCapacity: 1 << 12 });
      dp.iptablesRestore(`*nat\n${rules}\nCOMMIT\n`, { family });
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
      const pkts = syns(A);
      const kernel = await kernelChoices(rules, pkts);
      const mine = await svcplaneChoices(ours(rules), pkts);
      const diffs: string[] = [];
      for (const [client, theirs] of kernel) if (mine.get(client) !== theirs) diffs.push(`${client}: kernel ${theirs}, svcplane ${mine.get(client)}`);
      return { diffs, kernel };
    }

    // The address of "ip:port" / "[ip6]:port".
    const hostOf = (hp: string): string => hp.slice(0, hp.lastIndexOf(':')).replace(/^\[|\]$/g, '');
    const distinct = (c: Choices, part: 0 | 1) => new Set([...c.values()].map((v) => hostOf(v.split(' · ')[part]!))).size;
    const host = family === 6 ? 128 : 32;

    it('DNAT and SNAT to address ranges: every client gets the kernel\'s addresses', async () => {
      const { diffs, kernel } = await compare([
        `-A PREROUTING -d ${A.vip}/${host} -p tcp --dport 80 -j DNAT --to-destination ${A.dnat(first)}:8080`,
        `-A POSTROUTING -d ${A.dnatNet} -j SNAT --to-source ${A.snat}`,
      ].join('\n'));
      expect(diffs).toEqual([]);
      // Every connection reached the kernel's table, spread over both ranges.
      expect(kernel.size).toBe(CLIENTS);
      expect(distinct(kernel, 0)).toBeGreaterThan(50);
      expect(distinct(kernel, 1)).toBeGreaterThan(30);
    });

    it('--persistent hashes the client alone, and a destination port range is searched from its first port', async () => {
      const { diffs, kernel } = await compare([
        `-A PREROUTING -d ${A.vip}/${host} -p tcp --dport 80 -j DNAT --to-destination ${A.dnat(first)}:7000-7009 --persistent`,
        `-A POSTROUTING -d ${A.dnatNet} -j SNAT --to-source ${A.snat} --persistent`,
      ].join('\n'));
      expect(diffs).toEqual([]);
      expect(kernel.size).toBe(CLIENTS);
      expect(distinct(kernel, 0)).toBeGreaterThan(50);
    });

    it('an SNAT range written backwards: the kernel\'s wrapped-around choice, client by client', async () => {
      const { diffs, kernel } = await compare([
        `-A PREROUTING -d ${A.vip}/${host} -p tcp --dport 80 -j DNAT --to-destination ${family === 6 ? '[fd00:198:18:c::7]' : '198.18.60.7'}:8080`,
        `-A POSTROUTING -d ${A.dnatNet} -j SNAT --to-source ${A.snatBack}`,
      ].join('\n'));
      expect(diffs).toEqual([]);
      expect(kernel.size).toBe(CLIENTS);
      expect(distinct(kernel, 1)).toBeGreaterThan(CLIENTS / 2);
    });

    it('the comparison sees a difference: a range moved on svcplane\'s side only is caught', async () => {
      const rules = `-A PREROUTING -d ${A.vip}/${host} -p tcp --dport 80 -j DNAT --to-destination ${A.dnat(first)}:8080`;
      const { diffs, kernel } = await compare(rules, (t) => t.replace(A.moved[0], A.moved[1]));
      expect(kernel.size).toBe(CLIENTS);
      expect(diffs.length).toBeGreaterThan(CLIENTS / 2);
    });
  });
}
