// Kernel differential of `-m set`, IPv4 and IPv6: random sets of every type svcplane implements (hash:ip,
// hash:ip,port, hash:ip,port,ip, hash:ip,port,net and hash:net with `nomatch` entries, bitmap:port;
// the types kube-proxy's IPVS mode uses), loaded with `ipset restore` into the kernel of a
// throwaway node (tests/support/kernel-node.ts) and into a Dataplane's ipset table, and random
// counting rules `-m set [!] --match-set NAME dirs [--return-nomatch]` in filter INPUT and FORWARD
// over them. The same packets (TCP, UDP, ICMP echo; addresses and ports drawn mostly from the
// sets' own elements, so that elements match) go to both, and every rule's packet counter must
// come out the same. Then elements are added and deleted, in both, and the same packets sent
// again: rules see set changes without being reloaded.
// SVCPLANE_SET_RULES (default 80 per chain), SVCPLANE_SET_PACKETS (default 600) and
// SVCPLANE_SET_SEED (default 1) choose the run.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kernelSkip } from '../support/netns';
import { KernelNode, KERNEL_TOOLS, NODE_ADDRS, NODE_ADDRS6 } from '../support/kernel-node';
import { Rng, addrOf } from '../support/kube-gen';
import { parseCIDR, formatCIDR, cidrContains, parseIP } from '../../host-node/kube/ip';
import { Dataplane } from '../../host-node/dataplane';
import { buildPacket, type PacketSpec } from '../../host-node/core/packet';

const PER_CHAIN = Number(process.env.SVCPLANE_SET_RULES ?? 80);
const PACKETS = Number(process.env.SVCPLANE_SET_PACKETS ?? 600);
const SEED = Number(process.env.SVCPLANE_SET_SEED ?? 1);

const skipWhy = kernelSkip('tests/kernel/set-differential', [...KERNEL_TOOLS, 'iptables-legacy', 'ip6tables-legacy', 'ipset'], 'apt-get install ipset');

const CHAINS = ['INPUT', 'FORWARD'] as const;

/** The address and port pools packets and elements both draw from, in one family's address plan. */
class Pools {
  readonly sources: string[] = [];
  readonly dests: string[] = [];
  readonly ports = [22, 53, 80, 443, 8080, 30080, 1, 65535];
  constructor(private readonly rng: Rng, readonly family: 4 | 6) {
    for (let i = 0; i < 24; i++) this.sources.push(this.source());
    for (let i = 0; i < 24; i++) this.dests.push(this.dest());
    this.dests.push(...(family === 6 ? NODE_ADDRS6 : NODE_ADDRS));
  }
  /** An address of the external clients' range (replies route back to the client). */
  source(): string {
    return addrOf(this.family, 18, (this.family === 6 ? 0x100 : 100) + this.rng.int(0, 3), this.rng.int(1, 254));
  }
  /** A Service or pod address. */
  dest(): string {
    const r = this.rng;
    return r.chance(0.5) ? addrOf(this.family, 18, r.int(0, 15), r.int(1, 254)) : addrOf(this.family, 19, r.int(0, 249), r.int(1, 254));
  }
  addr(): string {
    return this.rng.chance(0.5) ? this.rng.pick(this.sources) : this.rng.pick(this.dests);
  }
  port(): number {
    return this.rng.chance(0.8) ? this.rng.pick(this.ports) : this.rng.int(1, 65535);
  }
  /** A network holding `addr`, of a random prefix length. */
  net(addr: string): string {
    const len = this.rng.pick(this.family === 6 ? [16, 32, 48, 56, 64, 100, 120, 127, 128] : [8, 15, 16, 22, 23, 24, 26, 30, 31, 32]);
    return formatCIDR(parseCIDR(`${addr}/${len}`)!);
  }
  protoPort(): string {
    const p = this.rng.pick(['tcp', 'tcp', 'udp', 'udp', 'icmp'] as const);
    return p !== 'icmp' ? `${p}:${this.port()}` : this.family === 6 ? 'icmpv6:echo-request' : 'icmp:echo-request';
  }
}

interface SetSpec {
  name: string;
  type: string;
  dims: number;
  elements: string[];
}

/** One set of each type, with random elements (nets with some `nomatch` ones inside them). */
function makeSets(pools: Pools, rng: Rng): SetSpec[] {
  const many = (n: number, f: () => string): string[] => [...new Set(Array.from({ length: n }, f))];
  // nomatch elements: new ones only (an element is there once, plain or nomatch).
  const nomatch = (nets: string[], f: () => string): string[] => nets.concat(many(6, f).filter((e) => !nets.includes(e)).map((e) => `${e} nomatch`));
  const sets: SetSpec[] = [
    { name: 'S-IP', type: 'hash:ip', dims: 1, elements: many(30, () => pools.addr()) },
    { name: 'S-IPP', type: 'hash:ip,port', dims: 2, elements: many(40, () => `${pools.addr()},${pools.protoPort()}`) },
    { name: 'S-IPPI', type: 'hash:ip,port,ip', dims: 3, elements: many(40, () => `${pools.addr()},${pools.protoPort()},${pools.addr()}`) },
    { name: 'S-IPPN', type: 'hash:ip,port,net', dims: 3, elements: [] },
    { name: 'S-NET', type: 'hash:net', dims: 1, elements: [] },
    { name: 'S-PORT', type: 'bitmap:port', dims: 1, elements: many(12, () => String(pools.port())) },
  ];
  // Each nomatch element lies inside a matching one: the same ip,port and a longer prefix of its network.
  const ippn = many(30, () => `${pools.addr()},${pools.protoPort()},${pools.net(pools.addr())}`);
  sets[3]!.elements = nomatch(ippn, () => {
    const [ip, pp, net] = rng.pick(ippn).split(',');
    return `${ip},${pp},${inside(net!, pools, rng)}`;
  });
  const nets = many(30, () => pools.net(pools.addr()));
  sets[4]!.elements = nomatch(nets, () => inside(rng.pick(nets), pools, rng));
  return sets;
}

/** A network inside `net`, 1–8 bits longer (at most a host): around one of the pools' addresses in it, if any. */
function inside(net: string, pools: Pools, rng: Rng): string {
  const c = parseCIDR(net)!;
  const host = pools.family === 6 ? 128 : 32;
  const len = Math.min(host, c.prefix + rng.int(1, 8));
  const within = [...pools.sources, ...pools.dests].filter((a) => cidrContains(c, parseIP(a)!));
  const at = within.length ? rng.pick(within) : net.split('/')[0]!;
  return formatCIDR(parseCIDR(`${at}/${len}`)!);
}

function ipsetText(sets: SetSpec[], family: 4 | 6): string {
  let out = '';
  for (const s of sets) {
    out += s.type === 'bitmap:port' ? `create ${s.name} bitmap:port range 0-65535\n` : `create ${s.name} ${s.type} family inet${family === 6 ? '6' : ''} hashsize 64 maxelem 65536\n`;
    for (const e of s.elements) out += `add ${s.name} ${e}\n`;
  }
  return out;
}

/** A random `-m set` counting rule over one of the sets (directions as many as, or more than, its dimensions). */
function setRule(sets: SetSpec[], rng: Rng, family: 4 | 6): string {
  const s = rng.pick(sets);
  const n = rng.chance(0.9) ? s.dims : rng.int(1, 3);
  const dirs = Array.from({ length: n }, () => rng.pick(['src', 'dst'])).join(',');
  const proto = rng.chance(0.3) ? `-p ${rng.pick(['tcp', 'udp', family === 6 ? 'icmpv6' : 'icmp'])} ` : '';
  const not = rng.chance(0.2) ? '! ' : '';
  const nomatch = (s.type === 'hash:net' || s.type === 'hash:ip,port,net') && !not && rng.chance(0.3) ? ' --return-nomatch' : '';
  return `${proto}-m set ${not}--match-set ${s.name} ${dirs}${nomatch}`;
}

function packets(pools: Pools, rng: Rng, n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  const v6 = pools.family === 6;
  for (let i = 0; i < n; i++) {
    const proto = rng.pick(['tcp', 'tcp', 'udp', 'udp', v6 ? 'icmpv6' : 'icmp'] as const);
    // Sources from the client ranges (routed back), destinations anywhere: the pools hold both.
    const src = rng.chance(0.7) ? rng.pick(pools.sources) : pools.source();
    const dst = rng.chance(0.7) ? rng.pick(pools.dests) : pools.dest();
    const spec: PacketSpec = { src, dst, proto, sport: rng.chance(0.3) ? pools.port() : 1024 + i, dport: pools.port() };
    if (proto === 'tcp') spec.flags = 'S';
    if (proto !== 'tcp' && proto !== 'udp') spec.icmp = { type: v6 ? 128 : 8, code: 0, id: i, seq: 1 };
    out.push(buildPacket(spec));
  }
  return out;
}

/** Packet counters of a chain's rules, in order, from `-L CHAIN -n -v -x` text. */
const counts = (list: string): number[] => list.split('\n').slice(2).filter(Boolean).map((l) => Number(l.trim().split(/\s+/)[0]));

for (const family of [4, 6] as const) {
  describe.skipIf(skipWhy !== '')(`-m set, IPv${family}: svcplane vs the kernel's ipset and ${family === 6 ? 'ip6tables' : 'iptables'}-legacy, rule by rule`, () => {
    const tool = family === 6 ? 'ip6tables-legacy' : 'iptables-legacy';
    const nodeIPs = family === 6 ? NODE_ADDRS6 : NODE_ADDRS;
    let k: KernelNode;
    beforeAll(async () => { k = await KernelNode.start(`sdiff${family}`, family); });
    afterAll(() => k?.destroy());

    const ipset = (args: string[], input?: string): void => { k.scope.must(k.node, ['ipset', ...args], input === undefined ? {} : { input }); };

    /** Sends `pkts` through both (conntrack flushed, counters zeroed) and lists the rules whose counters differ. */
    async function compare(dp: Dataplane, rules: Record<string, string[]>, pkts: Uint8Array[], now: number): Promise<string[]> {
      await k.flushConntrack();
      k.scope.must(k.node, [tool, '-Z']);
      dp.iptablesRestore('*filter\n' + CHAINS.map((c) => `-Z ${c}\n`).join('') + 'COMMIT\n', { noflush: true, family });
      dp.expire(now - 1);
      await k.inject(pkts, 30);
      for (const p of pkts) dp.process(p, (now += 1));
      const diffs: string[] = [];
      for (const c of CHAINS) {
        const want = counts(k.scope.must(k.node, [tool, '-L', c, '-n', '-v', '-x']));
        const got = counts(dp.iptablesList('filter', c, { exact: true, family }));
        for (let i = 0; i < Math.max(want.length, got.length); i++) {
          if (want[i] !== got[i]) diffs.push(`${c} rule ${i + 1} (${rules[c]![i]}): kernel ${want[i]}, svcplane ${got[i]}`);
        }
      }
      return diffs;
    }

    async function load(sets: SetSpec[], rules: Record<string, string[]>): Promise<Dataplane> {
      k.scope.must(k.node, [tool, '-F']);
      ipset(['destroy']);
      const text = ipsetText(sets, family);
      ipset(['restore'], text);
      const restore = '*filter\n' + CHAINS.map((c) => rules[c]!.map((r) => `-A ${c} ${r}\n`).join('')).join('') + 'COMMIT\n';
      await k.restore(restore);
      const dp = await Dataplane.create({ nodeIPs, seed: 1, conntrackCapacity: 1 << 14 });
      dp.ipset.restore(text);
      dp.iptablesRestore(restore, { family });
      return dp;
    }

    it('the comparison sees a difference: an element only svcplane has is caught', async () => {
      const [a, b] = [addrOf(family, 18, family === 6 ? 0x100 : 100, 7), addrOf(family, 18, family === 6 ? 0x100 : 100, 8)];
      const sets: SetSpec[] = [{ name: 'S-IP', type: 'hash:ip', dims: 1, elements: [a] }];
      const rules = { INPUT: ['-m set --match-set S-IP src'], FORWARD: ['-m set --match-set S-IP src'] };
      const dp = await load(sets, rules);
      const pkts = [buildPacket({ src: a, dst: nodeIPs[0]!, proto: 'udp', sport: 5000, dport: 53 }), buildPacket({ src: b, dst: nodeIPs[0]!, proto: 'udp', sport: 5001, dport: 53 })];
      expect(await compare(dp, rules, pkts, 1000)).toEqual([]);
      dp.ipset.command(['add', 'S-IP', b]);
      const diffs = await compare(dp, rules, pkts, 2000);
      expect(diffs).toEqual(['INPUT rule 1 (-m set --match-set S-IP src): kernel 1, svcplane 2']);
    });

    it(`${PER_CHAIN} random set rules in each of 2 chains over 6 random sets, ${PACKETS} packets: every rule counts the same packets, before and after set edits`, async () => {
      const rng = new Rng(SEED * 7919 + 3);
      const pools = new Pools(rng, family);
      const sets = makeSets(pools, rng);
      const rules = Object.fromEntries(CHAINS.map((c) => [c, Array.from({ length: PER_CHAIN }, () => setRule(sets, rng, family))])) as Record<string, string[]>;
      const dp = await load(sets, rules);
      const pkts = packets(pools, rng, PACKETS);
      const before = await compare(dp, rules, pkts, 1000);
      // Set edits, in both: a third of each set's elements deleted, as many new ones added.
      let edits = 0;
      for (const s of sets) {
        const fresh = makeSets(pools, rng).find((x) => x.name === s.name)!.elements.filter((e) => !s.elements.includes(e));
        for (const e of s.elements.filter((_, i) => i % 3 === 0)) {
          const elem = e.replace(/ nomatch$/, '');   // del names the element alone
          ipset(['del', s.name, elem]);
          dp.ipset.command(['del', s.name, elem]);
          edits++;
        }
        for (const e of fresh.slice(0, Math.ceil(s.elements.length / 3))) {
          if (k.scope.exec(k.node, ['ipset', 'add', s.name, ...e.split(' ')]).code !== 0) continue;   // e.g. clashes with a nomatch entry
          dp.ipset.command(['add', s.name, ...e.split(' ')]);
          edits++;
        }
      }
      const after = await compare(dp, rules, pkts, 100_000);
      const c = counts(k.scope.must(k.node, [tool, '-L', 'FORWARD', '-n', '-v', '-x']));
      console.log(`set differential IPv${family}: ${2 * PER_CHAIN} rules, ${sets.reduce((n, s) => n + s.elements.length, 0)} elements, ${edits} edits, ${PACKETS} packets, ${before.length} + ${after.length} differences`);
      expect(before).toEqual([]);
      expect(after).toEqual([]);
      // Not a vacuous run: rules matched some packets and not all of them.
      expect(c.some((x) => x > 0 && x < PACKETS)).toBe(true);
      expect(c.filter((x) => x > 0).length).toBeGreaterThan(PER_CHAIN / 4);
    });
  });
}
