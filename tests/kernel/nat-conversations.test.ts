// Kernel differential of NAT over whole conversations, IPv4 and IPv6: each conversation's client
// talks to its own Service address, which nat PREROUTING DNATs to a server (port 80 → 8080, or
// the address alone for ICMP), and half the clients are masqueraded in POSTROUTING. The same
// random conversations (tests/support/conversations.ts: TCP with every flag mix, UDP, ICMP
// queries) go through a throwaway kernel node (tests/support/kernel-node.ts) and a Dataplane:
//   - the server answers wherever the kernel's conntrack says its reply goes;
//   - now and then it sends an ICMP error (unreachable, time exceeded) about the client's last
//     packet, echoes included, quoting 8 bytes past the IP header, the whole TCP header, or less
//     than 8 (too little to translate, or to name the connection at all);
//   - UDP datagrams larger than the link go in fragments both ways: the kernel reassembles, NATs
//     and fragments again; svcplane NATs every fragment as its first (assembly/frags.ts);
//   - now and then a packet's transport checksum fails: INVALID, neither tracked nor NATed;
//   - now and then a packet carries options: IPv4 header padding, TCP MSS and timestamps, IPv6
//     hop-by-hop or destination options headers.
// After every step each conversation's entry must agree — original and reply tuples, TCP state,
// ASSURED, UNREPLIED, timeout — and every packet the kernel delivers back to a client must be the
// one svcplane writes: un-NATed, checksums, quoted headers of ICMP errors, fragments and all (the
// kernel's lower TTL aside: svcplane leaves the forwarding to the host). SVCPLANE_NATC_FLOWS
// (default 240), SVCPLANE_NATC_STEPS (default 10) and SVCPLANE_NATC_SEED (default 1) choose the
// run. Every address is in 198.18.0.0/15 or fd00::/8.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kernelSkip } from '../support/netns';
import { KernelNode, KERNEL_TOOLS, NODE_ADDRS, NODE_ADDRS6 } from '../support/kernel-node';
import { Rng, addrOf } from '../support/kube-gen';
import { MOD, breakChecksum, nextPacket, type Conversation, type Extra, type Proto } from '../support/conversations';
import { canonicalIP } from '../../host-node/kube/ip';
import { Dataplane } from '../../host-node/dataplane';
import { buildPacket, checksumsValid, decodePacket } from '../../host-node/core/packet';
import { fragment } from '../support/fragments';

const FLOWS = Number(process.env.SVCPLANE_NATC_FLOWS ?? 240);

// TCP options: MSS 1460; MSS, then NOP NOP and a timestamp.
const TCP_MSS = Uint8Array.of(2, 4, 0x05, 0xb4);
const TCP_MSS_TS = Uint8Array.of(2, 4, 0x05, 0xb4, 1, 1, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0, 0);
const STEPS = Number(process.env.SVCPLANE_NATC_STEPS ?? 10);
/** nf_conntrack_proto_udp.c: a two-way flow is a stream 2 s after its first packet; the slack around that moment for the step timing. */
const STREAM_MS = 2000;
const RACE_MS = 300;
const SEED = Number(process.env.SVCPLANE_NATC_SEED ?? 1);

const skipWhy = kernelSkip('tests/kernel/nat-conversations', KERNEL_TOOLS);

/** One entry as both sides show it: tuples, state, flags, seconds left. */
interface Entry {
  reply: string;
  state: string;
  assured: boolean;
  unreplied: boolean;
  left: number;
}

const show = (e: Entry | undefined): string =>
  (e ? `[${e.reply}] ${e.state ? `${e.state} ` : ''}${e.assured ? 'ASSURED ' : ''}${e.unreplied ? 'UNREPLIED ' : ''}${e.left}s` : 'no entry');
const same = (a: Entry | undefined, b: Entry | undefined): boolean =>
  a === undefined ? b === undefined
    : b !== undefined && a.reply === b.reply && a.state === b.state && a.assured === b.assured && a.unreplied === b.unreplied && Math.abs(a.left - b.left) <= 2;

/** "src:port > dst:port" (an ICMP query's identifier as the port). */
const tupleText = (src: string, sport: number, dst: string, dport: number): string => `${src}:${sport} > ${dst}:${dport}`;

/** /proc/net/nf_conntrack's entries by original tuple. */
function kernelEntries(text: string): Map<string, Entry> {
  const out = new Map<string, Entry>();
  for (const line of text.split('\n')) {
    const m = /^ipv[46]\s+(?:2|10)\s+(tcp|udp|icmp|icmpv6)\s+\d+\s+(\d+)\s+(?:([A-Z_0-9]+)\s+)?/.exec(line);
    if (!m) continue;
    const icmp = m[1]!.startsWith('icmp');
    const kv = [...line.matchAll(/(src|dst|sport|dport|id)=(\S+)/g)].map((x) => x[2]!);
    const addr = (a: string): string => canonicalIP(a) ?? a;
    // tcp/udp: src dst sport dport ×2; icmp: src dst id ×2, each query type its own entry.
    const type = icmp ? ` type ${/type=(\d+)/.exec(line)![1]}` : '';
    const [o, r] = icmp
      ? [tupleText(addr(kv[0]!), Number(kv[2]), addr(kv[1]!), Number(kv[2])), tupleText(addr(kv[3]!), Number(kv[5]), addr(kv[4]!), Number(kv[5]))]
      : [tupleText(addr(kv[0]!), Number(kv[2]), addr(kv[1]!), Number(kv[3])), tupleText(addr(kv[4]!), Number(kv[6]), addr(kv[5]!), Number(kv[7]))];
    out.set(`${m[1]} ${o}${type}`, { reply: r, state: m[3] ?? '', assured: line.includes('[ASSURED]'), unreplied: line.includes('[UNREPLIED]'), left: Number(m[2]) });
  }
  return out;
}

/**
 * A packet that reached the client, as compared: TTL and (IPv4) header checksum left out, and an
 * IPv6 fragment's identification, which the kernel draws anew when it fragments a reassembled
 * datagram again (ipv6_select_ident()).
 */
function delivered(b: Uint8Array): string {
  const c = Buffer.from(b);
  if (c[0]! >> 4 === 6) {
    c[7] = 0;
    if (c[6] === 44) c.writeUInt32BE(0, 44);
  } else {
    c[8] = 0;
    c.writeUInt16BE(0, 10);
  }
  return c.toString('hex');
}

/** The mark a packet carries (nextPacket's, kept by forwarding). */
const markOf = (b: Uint8Array): number => (b[0]! >> 4 === 6 ? ((b[1]! & 0x0f) << 16) | (b[2]! << 8) | b[3]! : (b[4]! << 8) | b[5]!);

for (const family of [4, 6] as const) {
  describe.skipIf(skipWhy !== '')(`NAT conversations, IPv${family}: svcplane vs the kernel, packet by packet`, () => {
    let k: KernelNode;
    beforeAll(async () => {
      k = await KernelNode.start(`natc${family}`, family);
      await k.sysctl([['/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal', '1']]);
    });
    afterAll(() => k?.destroy());

    const host = family === 6 ? 128 : 32;
    const masqueraded = family === 6 ? 'fd00:198:18:100::/63' : '198.18.100.0/23';

    function conversations(rng: Rng): Conversation[] {
      const icmp: Proto = family === 6 ? 'icmpv6' : 'icmp';
      return Array.from({ length: FLOWS }, (_, i) => {
        const proto: Proto = i % 4 < 2 ? 'tcp' : i % 4 === 2 ? 'udp' : icmp;
        const client = addrOf(family, 18, (family === 6 ? 0x100 : 100) + (i % 4), 1 + (i >> 2) % 250);
        return {
          proto, client, sport: 20000 + i, server: addrOf(family, 19, i % 200, 10 + (i % 7)), port: proto.startsWith('icmp') ? 20000 + i : 8080,
          to: { addr: addrOf(family, 18, 10 + Math.floor(i / 250), 1 + (i % 250)), port: 80 },
          back: { addr: client, port: 20000 + i },
          isn: [rng.int(0, MOD - 1), rng.int(0, MOD - 1)], log: [],
        };
      });
    }

    function rulesFor(convs: Conversation[]): string {
      let text = '*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n';
      for (const c of convs) {
        const server = family === 6 ? `[${c.server}]` : c.server;
        text += c.proto.startsWith('icmp')
          ? `-A PREROUTING -d ${c.to!.addr}/${host} -p ${c.proto} -j DNAT --to-destination ${c.server}\n`
          : `-A PREROUTING -d ${c.to!.addr}/${host} -p ${c.proto} --dport 80 -j DNAT --to-destination ${server}:8080\n`;
      }
      text += `-A POSTROUTING -s ${masqueraded} -j MASQUERADE\nCOMMIT\n`;
      // A conntrack match keeps the kernel tracking whatever the nat table holds. What a server
      // sends to the masquerade address outside any connection reaches the node itself: dropped,
      // so the node's own TCP/IP stack (which svcplane does not have) never answers it.
      return text + '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -j DROP\n-A FORWARD -m conntrack --ctstate INVALID\nCOMMIT\n';
    }

    /** Runs `flows` conversations of `steps` packets; svcplane masquerades to `masqAt` when given. */
    async function run(rng: Rng, flows: number, steps: number, masqAt?: string): Promise<{ diffs: string[]; compared: number; back: number; errors: number; masq: number; frags: number }> {
      const convs = conversations(rng).slice(0, flows);
      const rules = rulesFor(convs);
      await k.restore(rules);
      await k.flushConntrack();
      const dp = await Dataplane.create({ nodeIPs: family === 6 ? NODE_ADDRS6 : NODE_ADDRS, seed: 1, conntrackCapacity: 1 << 12, conntrackCapacity6: 1 << 12, ...(masqAt ? { masqueradeIPs: [masqAt] } : {}) });
      dp.iptablesRestore(rules, { family });
      const t0 = performance.now();
      const clock = (): number => Math.round(performance.now() - t0) + 1000;
      const diffs: string[] = [];
      // The client's last packet as svcplane forwarded it: what an ICMP error from the server quotes.
      const lastOut = new Map<Conversation, Uint8Array>();
      let mark = 1, compared = 0, back = 0, errors = 0, masq = 0, frags = 0;
      // When the conversations began (step 0), by svcplane's clock.
      let born = 0;
      for (let step = 0; step < steps && diffs.length < 20; step++) {
        const sent: Array<{ c: Conversation; dir: 0 | 1; key: string; bytes: Uint8Array; corrupt?: boolean }> = [];
        for (const c of convs) {
          const m = (mark++ % 0xfff0) + 1;
          const dir: 0 | 1 = step === 0 ? 0 : rng.chance(0.5) ? 0 : 1;
          const quoted = lastOut.get(c);
          const tag = family === 6 ? { flowLabel: m } : { id: m };
          if (dir === 1 && quoted && rng.chance(0.15)) {
            // The server's ICMP error about the client's last packet: unreachable or time exceeded.
            const [type, code] = rng.pick(family === 6 ? [[1, 4], [1, 3], [3, 0]] : [[3, 3], [3, 1], [11, 0]]);
            // The quote: the IP header and 8 bytes (RFC 792's minimum), the whole TCP header, or cut
            // anywhere short of 8 bytes — too short to translate, or to name a connection at all.
            const least = (family === 6 ? 40 : 20) + 8;
            const icmp = { type: type!, code: code!, quote: quoted.slice(0, rng.pick([least, least + 12, rng.int(0, least - 1)])) };
            sent.push({ c, dir, key: `${m}/0`, bytes: buildPacket({ src: c.server, dst: c.back!.addr, proto: family === 6 ? 'icmpv6' : 'icmp', icmp, ...tag }) });
            c.log.push('<error');
            errors++;
          } else if (c.proto === 'udp' && step > 0 && rng.chance(0.15)) {
            // A datagram larger than the link, in fragments: the kernel reassembles, NATs and
            // fragments it again; svcplane NATs each fragment as its first.
            const [from, to] = dir === 0 ? [{ addr: c.client, port: c.sport }, c.to!] : [{ addr: c.server, port: c.port }, c.back!];
            const whole = buildPacket({ src: from.addr, dst: to.addr, proto: 'udp', sport: from.port, dport: to.port, payload: new Uint8Array(3000).map((_, j) => j & 0xff), ...tag });
            for (const f of fragment(whole, family === 6 ? 1232 : 1480, m)) sent.push({ c, dir, key: `${m}/${decodePacket(f).frag!.offset}`, bytes: f });
            c.log.push(`${dir === 0 ? '>' : '<'}fragments`);
            frags++;
          } else if (step > 0 && rng.chance(0.05)) {
            // A transport checksum that does not verify (never 0, which UDP reads as none): the
            // kernel's conntrack leaves it INVALID, so it is neither tracked nor NATed.
            const b = nextPacket(rng, c, dir, { mark: m });
            breakChecksum(rng, b);
            sent.push({ c, dir, key: `${m}/0`, bytes: b, corrupt: true });
            c.log.push(`${dir === 0 ? '>' : '<'}corrupt`);
          } else {
            // Now and then options: IPv6 hop-by-hop or destination options before the transport
            // header, IPv4 header padding, TCP MSS and timestamps (none a forwarding node
            // rewrites, or the window tracker reads).
            const extra: Extra = {};
            if (family === 6 && rng.chance(0.15)) extra.ext = rng.pick([[{ type: 0 }], [{ type: 60 }], [{ type: 0 }, { type: 60 }]]);
            if (family === 4 && rng.chance(0.1)) extra.ipOptions = Uint8Array.of(1, 1, 1, 0);
            if (c.proto === 'tcp' && rng.chance(0.2)) extra.tcpOptions = rng.pick([TCP_MSS, TCP_MSS_TS]);
            sent.push({ c, dir, key: `${m}/0`, bytes: nextPacket(rng, c, dir, { mark: m, opening: step === 0, extra }) });
          }
        }
        const at = clock();
        if (step === 0) born = at;
        const captured = await k.inject(sent.map((s) => s.bytes), 15);
        const results = dp.processBatch(sent.map((s) => s.bytes), at);
        const read = clock();
        // A two-way UDP flow becomes a stream (ASSURED, 120 s) once it outlives 2 s from its first
        // packet (nf_conntrack_proto_udp.c stream_ts). svcplane takes a step's packets at `at`, the
        // kernel some milliseconds later — the first step's IPv6 packets some 60 ms later, once
        // the clients' neighbour discovery lets them out — so the two flows are born apart and
        // may turn into streams in different steps: in the steps around that moment only, an
        // entry that differs in that alone is not a difference.
        const streamRace = at - born < STREAM_MS + RACE_MS && read - born > STREAM_MS - RACE_MS;
        // What reached the clients from the kernel, by mark and fragment offset.
        const theirs = new Map<string, string>();
        for (const hex of captured) {
          const b = Buffer.from(hex, 'hex');
          theirs.set(`${markOf(b)}/${decodePacket(b).frag?.offset ?? 0}`, delivered(b));
        }
        const clients = new Set(convs.map((c) => c.client));
        for (const [i, s] of sent.entries()) {
          const r = results[i]!;
          if (s.dir === 0) {
            if (r.packet && r.verdict !== 'DROP' && !decodePacket(r.packet).frag) lastOut.set(s.c, r.packet);
            continue;
          }
          const out = r.packet && r.verdict !== 'DROP' && r.verdict !== 'REPLY' ? r.packet : undefined;
          const reaches = out !== undefined && clients.has(decodePacket(out).dst);
          // A fragment's transport checksum covers the whole datagram: not checkable alone.
          if (out && reaches && !s.corrupt && !decodePacket(out).frag && !checksumsValid(out)) diffs.push(`step ${step} ${s.c.proto} ${s.c.client}:${s.c.sport}: svcplane's packet to the client has a wrong checksum`);
          const want = theirs.get(s.key);
          const got = reaches ? delivered(out!) : undefined;
          if (want !== got) diffs.push(`step ${step} ${s.c.proto} ${s.c.client}:${s.c.sport} (${s.c.log.at(-1)} ${s.key}): kernel delivered ${want ?? 'nothing'}\n    svcplane ${got ?? `nothing (${r.verdict})`} — after ${s.c.log.join(', ')}`);
          if (want) back++;
        }
        // Both conntrack tables, entry by entry; the server answers where the kernel's reply tuple says.
        const kernel = kernelEntries(await k.readProc('/proc/net/nf_conntrack'));
        const ours = new Map<string, Entry>();
        for (const e of dp.conntrack(read)) {
          const icmp = e.proto.startsWith('icmp');
          const o = tupleText(e.original.src, e.original.sport, e.original.dst, icmp ? e.original.sport : e.original.dport);
          const rt = tupleText(e.reply.src, e.reply.sport, e.reply.dst, icmp ? e.reply.sport : e.reply.dport);
          ours.set(`${e.proto} ${o}${icmp ? ` type ${e.original.icmpType}` : ''}`, { reply: rt, state: e.state ?? '', assured: e.assured, unreplied: !e.seenReply, left: (e.expiresMs - read) / 1000 });
        }
        for (const c of convs) {
          const icmp = c.proto.startsWith('icmp');
          const base = `${c.proto} ${tupleText(c.client, c.sport, c.to!.addr, icmp ? c.sport : 80)}`;
          // ICMP: echo and the other queries of one client are entries of their own.
          const keys = icmp ? (family === 6 ? [128, 139] : [8, 13, 15]).map((t) => `${base} type ${t}`) : [base];
          for (const key of keys) {
            const a = kernel.get(key), b = ours.get(key);
            compared++;
            const onlyStream = c.proto === 'udp' && a !== undefined && b !== undefined && a.reply === b.reply && a.unreplied === b.unreplied && a.assured !== b.assured;
            if (!same(a, b) && !(streamRace && onlyStream)) diffs.push(`step ${step} ${key}: kernel ${show(a)}, svcplane ${show(b)} — after ${c.log.join(', ')}`);
          }
          const a = kernel.get(keys[0]!);
          if (a) {
            const m = /> (.*):(\d+)$/.exec(a.reply)!;
            c.back = { addr: m[1]!, port: Number(m[2]) };
            if (m[1] !== c.client) masq++;
          }
        }
      }
      return { diffs, compared, back, errors, masq, frags };
    }

    it(`${FLOWS} TCP, UDP and ICMP conversations of ${STEPS} packets through DNAT and masquerade (seed ${SEED})`, async () => {
      const r = await run(new Rng(SEED * 2971 + family), FLOWS, STEPS);
      console.log(`nat conversations IPv${family} (seed ${SEED}): ${r.compared} entries compared, ${r.back} packets delivered back (${r.errors} ICMP errors sent, ${r.frags} datagrams in fragments), ${r.masq} masqueraded entries seen, ${r.diffs.length} differences`);
      expect(r.diffs).toEqual([]);
      expect(r.back).toBeGreaterThan(FLOWS);
      expect(r.masq).toBeGreaterThan(0);
    }, 120_000);

    it('control: svcplane masquerading to its other address differs, in the masqueraded entries', async () => {
      const r = await run(new Rng(SEED * 2971 + family), 40, 3, family === 6 ? NODE_ADDRS6[1] : NODE_ADDRS[1]);
      expect(r.diffs.length).toBeGreaterThan(0);
      for (const d of r.diffs.filter((x) => x.includes('kernel ['))) expect(d).toContain(`> ${family === 6 ? NODE_ADDRS6[0] : NODE_ADDRS[0]}:`);
    }, 120_000);
  });
}
