// Kernel differential of the matches, IPv4 and IPv6: random counting rules (tests/support/iptables-gen.ts, no
// target, so every packet is tested by every rule) in raw and mangle PREROUTING (with MARK rules
// among them), filter INPUT and FORWARD, loaded both into the kernel's iptables-legacy inside a
// throwaway node (tests/support/kernel-node.ts) and into a Dataplane; the same packets (TCP with
// every flag mix, UDP, ICMP queries; to the node and routed through it) go to both, and every
// rule's packet counter must come out the same. Left out, with reason: -i/-o and addrtype's
// --limit-iface-in/out (the core knows interfaces through its own table, not this namespace's,
// nor which address sits on which); random statistic (chance) and limits that refill faster than
// one packet a minute (timing). recent is in, lists of 100 addresses, eviction, masks, hit counts
// and --seconds included: the run is far shorter than a second on both sides. Some UDP datagrams
// go in fragments: the kernel reassembles them before its rules, svcplane's rules see the first
// fragment and the rest follow it, and the packet counts agree. ICMP errors about earlier packets
// passing through are in, quotes cut short too (RELATED, or INVALID when the quote names nothing).
// ICMP queries carry code 0: conntrack's port criteria read an ICMP connection's code, which
// svcplane does not keep.
// SVCPLANE_MATCH_RULES (default 60 per chain), SVCPLANE_MATCH_PACKETS (default 400) and
// SVCPLANE_MATCH_SEED (default 1) choose the run.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kernelSkip } from '../support/netns';
import { KernelNode, KERNEL_TOOLS, NODE_ADDRS, NODE_ADDRS6 } from '../support/kernel-node';
import { Rng, addrOf } from '../support/kube-gen';
import { RuleGen, type TableName } from '../support/iptables-gen';
import { parseRestore } from '../../host-node/netfilter/index';
import { Dataplane } from '../../host-node/dataplane';
import { buildPacket, type PacketSpec } from '../../host-node/core/packet';
import { fragment } from '../support/fragments';

const PER_CHAIN = Number(process.env.SVCPLANE_MATCH_RULES ?? 60);
const PACKETS = Number(process.env.SVCPLANE_MATCH_PACKETS ?? 400);
const SEED = Number(process.env.SVCPLANE_MATCH_SEED ?? 1);

const skipWhy = kernelSkip('tests/kernel/match-differential', [...KERNEL_TOOLS, 'iptables-legacy', 'ip6tables-legacy']);

type Section = { table: TableName; chain: string; rules: string[] };

const LEFT_OUT = /(^|\s)(-i|-o|--in-interface|--out-interface)\s|--limit-iface|--mode random/;
/** A limit whose bucket refills within the run (faster than one packet a minute): its count would depend on timing. */
const refills = (text: string): boolean => /-m limit\b/.test(text) && !/--limit \d+\/(m|min|minute|h|hour|d|day)\b/.test(text);
const marks = (family: 4 | 6): string[] => ['-j MARK --set-xmark 0x4000/0x4000', '-p tcp -j MARK --set-xmark 0x1/0xff', `-s ${family === 6 ? 'fd00:198:18:100::/63' : '198.18.100.0/23'} -j MARK --or-mark 0x7`];
const toolOf = (family: 4 | 6): string => (family === 6 ? 'ip6tables-legacy' : 'iptables-legacy');

/** `n` counting rules for `chain` that both the kernel and svcplane take, from generated ones. */
function countingRules(k: KernelNode, gen: RuleGen, table: TableName, n: number): string[] {
  const out: string[] = [];
  for (let tries = 0; out.length < n && tries < n * 100; tries++) {
    const text = gen.rule().text.replace(/\s*(-j|--jump|-g)\s.*$/, '');
    if (LEFT_OUT.test(text) || refills(text)) continue;
    const block = `*${table}\n:SCRATCH - [0:0]\n-A SCRATCH ${text}\nCOMMIT\n`;
    if (!parseRestore(block).ok) continue;
    if (k.scope.exec(k.node, [k.plan.restoreTool, '--noflush'], { input: block }).code !== 0) continue;
    out.push(text);
  }
  return out;
}

function restoreText(sections: Section[]): string {
  let text = '';
  for (const table of ['raw', 'mangle', 'filter'] as const) {
    text += `*${table}\n`;
    for (const s of sections) if (s.table === table) for (const r of s.rules) text += `-A ${s.chain} ${r}\n`;
    // A conntrack match keeps the kernel tracking, and so reassembling fragments before the rules
    // (nf_defrag), as on every kube-proxy node; no test packet passes OUTPUT.
    if (table === 'filter') text += '-A OUTPUT -m conntrack --ctstate INVALID\n';
    text += 'COMMIT\n';
  }
  return text;
}

/**
 * Packets to the node and through it (to routed addresses only: svcplane has no routing table to
 * drop the rest). IPv6 ones also come from the generator's own addresses (fd00::x), which its
 * rules name.
 */
function packets(rng: Rng, n: number, family: 4 | 6 = 4): Uint8Array[] {
  const out: Uint8Array[] = [];
  const v6 = family === 6;
  const own = () => `fd00::${rng.int(0, 99).toString(16)}`;
  // Packets sent through the node so far, for the errors about them.
  const sent: Array<{ src: string; dst: string; bytes: Uint8Array }> = [];
  for (let i = 0; i < n; i++) {
    const proto = rng.pick(['tcp', 'tcp', 'udp', 'udp', v6 ? 'icmpv6' : 'icmp'] as const);
    const client = addrOf(family, 18, (v6 ? 0x100 : 100) + rng.int(0, 3), rng.int(1, 254));
    const through = [addrOf(family, 18, rng.int(0, v6 ? 15 : 127), rng.int(1, 254)), addrOf(family, 19, rng.int(0, v6 ? 249 : 255), rng.int(1, 254))];
    const spec: PacketSpec = {
      src: v6 && rng.chance(0.3) ? own() : client,
      dst: rng.pick([...(v6 ? NODE_ADDRS6 : NODE_ADDRS), ...through]),
      proto, sport: 1024 + i, dport: rng.pick([80, 443, 53, 22, 8080, rng.int(1, 65535), 1, 0]),
    };
    if (proto === 'tcp') spec.flags = rng.pick(['S', 'S', 'S', 'SA', 'A', 'F', 'R', 'FPU', '']);
    if (proto === 'icmp') spec.icmp = { type: rng.pick([8, 8, 0, 13]), code: 0, id: i, seq: 1 };
    if (proto === 'icmpv6') spec.icmp = { type: rng.pick([128, 128, 129, 130]), code: 0, id: i, seq: 1 };
    const about = sent.length > 0 && rng.chance(0.08) ? rng.pick(sent) : undefined;
    if (about) {
      // An ICMP error from a routed-to address about an earlier packet (RELATED when the kernel
      // tracked it), quoting 8 bytes past its IP header, more, or too little to name it (INVALID).
      const least = (v6 ? 40 : 20) + 8;
      const quote = about.bytes.slice(0, rng.pick([least, least + 12, rng.int(0, least - 1)]));
      const [type, code] = rng.pick(v6 ? [[1, 4], [3, 0]] : [[3, 3], [11, 0]]);
      out.push(buildPacket({ src: about.dst, dst: about.src, proto: v6 ? 'icmpv6' : 'icmp', icmp: { type: type!, code: code!, quote } }));
      continue;
    }
    if (proto === 'udp' && rng.chance(0.1)) {
      // A datagram larger than the link, in fragments: the kernel's rules see it reassembled,
      // svcplane's see its first fragment (the later ones follow it, assembly/frags.ts).
      spec.payload = new Uint8Array(3000);
      out.push(...fragment(buildPacket(spec), v6 ? 1232 : 1480, 0x4000 + i));
      continue;
    }
    const bytes = buildPacket(spec);
    out.push(bytes);
    // (An error goes back only to a routed client, never to a generator's own fd00::x.)
    if (spec.src === client && !(v6 ? NODE_ADDRS6 : NODE_ADDRS).includes(spec.dst)) sent.push({ src: spec.src, dst: spec.dst, bytes });
  }
  return out;
}

/** Packet counters of a chain's rules, in order, from `-L CHAIN -n -v -x` text. */
const counts = (list: string): number[] => list.split('\n').slice(2).filter(Boolean).map((l) => Number(l.trim().split(/\s+/)[0]));

/** Rules whose counters differ, described. */
function compare(k: KernelNode, dp: Dataplane, sections: Section[]): string[] {
  const diffs: string[] = [];
  const family = k.plan.family;
  for (const s of sections) {
    const want = counts(k.scope.must(k.node, [toolOf(family), '-t', s.table, '-L', s.chain, '-n', '-v', '-x']));
    const got = counts(dp.iptablesList(s.table, s.chain, { exact: true, family }));
    for (let i = 0; i < Math.max(want.length, got.length); i++) {
      if (want[i] !== got[i]) diffs.push(`${s.table} ${s.chain} rule ${i + 1} (${s.rules[i]}): kernel ${want[i]}, svcplane ${got[i]}`);
    }
  }
  return diffs;
}

for (const family of [4, 6] as const) {
  describe.skipIf(skipWhy !== '')(`matches, IPv${family}: svcplane vs the kernel's ${toolOf(family)}, rule by rule`, () => {
    let k: KernelNode;
    beforeAll(async () => { k = await KernelNode.start(`mdiff${family}`, family); });
    afterAll(() => k?.destroy());

    async function run(sections: Section[], ours: (text: string) => string, pkts: Uint8Array[]): Promise<string[]> {
      const text = restoreText(sections);
      await k.restore(text);
      await k.flushConntrack();
      // Room for every connection the run makes, in each family (a full table would drop some).
      const room = Math.max(1 << 14, 2 ** Math.ceil(Math.log2(8 * PACKETS)));
      const dp = await Dataplane.create({ nodeIPs: family === 6 ? NODE_ADDRS6 : NODE_ADDRS, seed: 1, conntrackCapacity: room, conntrackCapacity6: room });
      dp.iptablesRestore(ours(text), { family });
      await k.inject(pkts, 30);
      // About the pace of the kernel's injection (a few hundred packets a millisecond): recent's
      // --seconds and limit's buckets see the run as the kernel does, far shorter than a second.
      pkts.forEach((p, i) => dp.process(p, 1000 + Math.floor(i / 100)));
      return compare(k, dp, sections);
    }

    it('the comparison sees a difference: a rule read differently on svcplane\'s side only is caught', async () => {
      const sections: Section[] = [{ table: 'filter', chain: 'INPUT', rules: [family === 6 ? '-p icmpv6' : '-p icmp', '-p udp'] }];
      const pkts = packets(new Rng(5), 60, family);
      expect(await run(sections, (t) => t, pkts)).toEqual([]);
      const diffs = await run(sections, (t) => t.replace('-p udp', '-p tcp'), pkts);
      expect(diffs.length).toBe(1);
      expect(diffs[0]).toMatch(/rule 2 \(-p udp\)/);
    });

    it(`${PER_CHAIN} random counting rules in each of 4 chains, ${PACKETS} packets: every rule counts the same packets`, async () => {
      // Options in full: the filters above and below read them by name (abbreviations are the
      // restore differential's business).
      const gen = new RuleGen(new Rng(SEED * 31 + family), family, false);
      const sections: Section[] = [
        { table: 'raw', chain: 'PREROUTING', rules: countingRules(k, gen, 'raw', PER_CHAIN) },
        { table: 'mangle', chain: 'PREROUTING', rules: [...countingRules(k, gen, 'mangle', PER_CHAIN / 2), ...marks(family), ...countingRules(k, gen, 'mangle', PER_CHAIN / 2)] },
        { table: 'filter', chain: 'INPUT', rules: countingRules(k, gen, 'filter', PER_CHAIN) },
        { table: 'filter', chain: 'FORWARD', rules: countingRules(k, gen, 'filter', PER_CHAIN) },
      ];
      const diffs = await run(sections, (t) => t, packets(new Rng(SEED), PACKETS, family));
      const rules = sections.reduce((n, s) => n + s.rules.length, 0);
      const timed = sections.reduce((n, s) => n + s.rules.filter((r) => /-m (recent|limit)\b/.test(r)).length, 0);
      console.log(`match differential IPv${family}: ${rules} rules (${timed} recent or limit), ${PACKETS} packets, ${diffs.length} differences`);
      expect(diffs).toEqual([]);
      // Not a vacuous run: some rules matched some packets and not all of them.
      const c = counts(k.scope.must(k.node, [toolOf(family), '-t', 'filter', '-L', 'FORWARD', '-n', '-v', '-x']));
      expect(c.some((x) => x > 0 && x < Math.max(...c))).toBe(true);
      expect(rules).toBeGreaterThan(PER_CHAIN * 3);
    });
  });
}
