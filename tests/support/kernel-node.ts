// kernel-node.ts — a Kubernetes node made of throwaway namespaces, for comparing svcplane with
// the kernel's own netfilter, for IPv4 or IPv6 (one family per node, each with its own address
// plan). The "node" forwards, has rp_filter off, ICMP errors not rate-limited, and its node IP
// (198.18.200.1 / fd00:198:18:200::1) on the link to the "sink", where everything routed to pods
// and Service ranges goes and is dropped. A "client" joins the node by a veth pair: packets
// are injected as exact bytes on its end (AF_PACKET), so the kernel sees the very bytes svcplane
// gets, and what comes back (ICMP errors, resets) is captured there. The node side loads rules
// with iptables-legacy-restore (ip6tables-legacy-restore) or nft, seeds xt_recent lists and reads
// /proc/net/nf_conntrack. Also kube-proxy's base-chain jumps, and the decoding of conntrack lines
// and captured replies into one Outcome shape shared with svcplane's results. Never changes
// anything outside its own namespaces.
import { NetnsScope, missingTools, type LineAgent, type Netns } from './netns.js';
import { decodePacket, PROTO } from '../../host-node/core/packet.js';
import { canonicalIP } from '../../host-node/kube/ip.js';

/** Where a node of one family puts its addresses and routes. */
export interface AddressPlan {
  family: 4 | 6;
  /** The node IP, on the link to the sink (what MASQUERADE picks). */
  node: string;
  /** The node's address on the client link, and the client's, with the link's prefix length. */
  nodeLink: string;
  clientLink: string;
  linkPrefix: number;
  /** The sink's next hop (a neighbour entry with a MAC nobody owns). */
  sinkGw: string;
  /** Routed to the sink: the Service ranges and the pods. */
  sinkRoutes: string[];
  /** Sources whose replies route back to the client (external clients and client pods). */
  externalClients: string;
  podClients: string;
  restoreTool: string;
}

export const PLAN4: AddressPlan = {
  family: 4, node: '198.18.200.1', nodeLink: '198.18.202.1', clientLink: '198.18.202.2', linkPrefix: 30,
  sinkGw: '198.18.203.2', sinkRoutes: ['198.18.0.0/17', '198.19.0.0/16'],
  externalClients: '198.18.100.0/22', podClients: '198.19.250.0/23', restoreTool: 'iptables-legacy-restore',
};

/** IPv6: the IPv4 plan's numbers as groups (Services fd00:198:18:0-f::, pods fd00:198:19:0-f9::). */
export const PLAN6: AddressPlan = {
  family: 6, node: 'fd00:198:18:200::1', nodeLink: 'fd00:198:18:202::1', clientLink: 'fd00:198:18:202::2', linkPrefix: 126,
  sinkGw: 'fd00:198:18:203::2', sinkRoutes: ['fd00:198:18::/60', 'fd00:198:19::/56'],
  externalClients: 'fd00:198:18:100::/62', podClients: 'fd00:198:19:fa::/63', restoreTool: 'ip6tables-legacy-restore',
};

export const planOf = (family: 4 | 6): AddressPlan => (family === 6 ? PLAN6 : PLAN4);

export const NODE_ADDR = PLAN4.node;
export const NODE_LINK_ADDR = PLAN4.nodeLink;
export const CLIENT_LINK_ADDR = PLAN4.clientLink;
/** Every address the node owns (addrtype LOCAL, apart from 127/8). */
export const NODE_ADDRS = [NODE_ADDR, NODE_LINK_ADDR];
export const NODE_ADDRS6 = [PLAN6.node, PLAN6.nodeLink];
export const EXTERNAL_CLIENTS = PLAN4.externalClients;
export const POD_CLIENTS = PLAN4.podClients;
const NODE_MAC = '02:53:56:50:00:01';
const CLIENT_MAC = '02:53:56:50:00:02';
const SINK_NODE_MAC = '02:53:56:50:00:03';
const SINK_MAC = '02:53:56:50:00:04';
/** A MAC no interface has: frames sent to it are dropped by the sink as not addressed to it. */
const NOBODY_MAC = '02:53:56:50:00:99';

/** Debian packages (and their tools) the kernel side needs. */
export const KERNEL_TOOLS = ['iptables-legacy-restore', 'ip6tables-legacy-restore', 'conntrack', 'nfacct', 'python3'];

// Node side: rule loading, conntrack, xt_recent, sysctls. One JSON request per line.
const NODE_AGENT = String.raw`
import sys, json, os, subprocess, time
def reply(o):
    sys.stdout.write(json.dumps(o) + "\n"); sys.stdout.flush()
for line in sys.stdin:
    try:
        m = json.loads(line); op = m["op"]
        if op == "restore":
            argv = [m.get("tool", "iptables-legacy-restore"), "-w", "30"] + (["--noflush"] if m.get("noflush") else [])
            t = time.perf_counter_ns()
            p = subprocess.run(argv, input=m["text"].encode(), capture_output=True)
            reply({"rc": p.returncode, "err": p.stderr.decode(errors="replace")[-2000:], "ns": time.perf_counter_ns() - t})
        elif op == "run":
            p = subprocess.run(m["argv"], input=m.get("input", "").encode(), capture_output=True)
            reply({"rc": p.returncode, "out": p.stdout.decode(errors="replace"), "err": p.stderr.decode(errors="replace")[-2000:]})
        elif op == "write":
            for path, value in m["files"]:
                with open(path, "w") as f: f.write(value)
            reply({"ok": True})
        elif op == "read":
            with open(m["path"]) as f: reply({"text": f.read()})
        elif op == "recent":
            for name, ip in m["entries"]:
                with open("/proc/net/xt_recent/" + name, "w") as f: f.write("+" + ip + "\n")
            reply({"ok": True})
        else:
            reply({"error": "unknown op " + op})
    except Exception as e:
        reply({"error": type(e).__name__ + ": " + str(e)})
`;

// Client side: injects packets of one family (ethertype argv[3]) on the veth and captures what
// the node sends back.
const CLIENT_AGENT = String.raw`
import sys, json, socket, select, time
ETH_P = int(sys.argv[3], 16)
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
s.setblocking(False)
ifname = sys.argv[1]; dst = bytes.fromhex(sys.argv[2].replace(":", ""))
s.bind((ifname, ETH_P))
addr = (ifname, ETH_P, 0, 0, dst)
def drain():
    got = []
    while True:
        try: data, a = s.recvfrom(65535)
        except BlockingIOError: return got
        if a[2] != socket.PACKET_OUTGOING: got.append(data.hex())
def send(p):
    while True:
        try: s.sendto(p, addr); return
        except BlockingIOError: select.select([], [s], [], 0.01)
def reply(o):
    sys.stdout.write(json.dumps(o) + "\n"); sys.stdout.flush()
for line in sys.stdin:
    try:
        m = json.loads(line); op = m["op"]
        if op == "inject":
            drain()
            for h in m["packets"]: send(bytes.fromhex(h))
            got = []; quiet = m.get("quietMs", 15) / 1000; end = time.monotonic() + quiet
            while time.monotonic() < end:
                r, _, _ = select.select([s], [], [], max(0, end - time.monotonic()))
                if r:
                    more = drain(); got += more
                    if more: end = time.monotonic() + quiet
            reply({"received": got})
        elif op == "collect":
            time.sleep(m.get("waitMs", 50) / 1000)
            reply({"received": drain()})
        elif op == "blast":
            pkts = [bytes.fromhex(h) for h in m["packets"]]
            t = time.perf_counter_ns()
            for p in pkts: send(p)
            reply({"ns": time.perf_counter_ns() - t})
        else:
            reply({"error": "unknown op " + op})
    except Exception as e:
        reply({"error": type(e).__name__ + ": " + str(e)})
`;

/** kube-proxy's jumps into its chains (pkg/proxy/iptables/proxier.go iptablesJumpChains, inserted with
 * Prepend, so the last listed comes first; KUBE-FIREWALL as kubelet / iptablesKubeletJumpChains adds it). */
export const KUBE_BASE_RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-FIREWALL - [0:0]
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A INPUT -j KUBE-FIREWALL
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -j KUBE-FIREWALL
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
COMMIT
`;

/** What became of one packet, in terms both sides can report. */
export type Outcome =
  /** Accepted; `to` is where it went after DNAT ("ip:port"), `from` its source after SNAT. */
  | { kind: 'accept'; to: string; masq: boolean; from?: string }
  | { kind: 'reject'; icmp?: { type: number; code: number } }
  | { kind: 'drop' };

export function outcomeText(o: Outcome): string {
  if (o.kind === 'accept') return `accept → ${o.to}${o.masq ? ` masq${o.from ? ` ${o.from}` : ''}` : ''}`;
  if (o.kind === 'reject') return `reject${o.icmp ? ` icmp ${o.icmp.type}/${o.icmp.code}` : ''}`;
  return 'drop';
}

export interface FlowKey {
  proto: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
}

export const flowKeyText = (k: FlowKey): string => `${k.proto} ${k.src}:${k.sport} > ${k.dst}:${k.dport}`;

export interface ConntrackLine {
  orig: FlowKey;
  reply: FlowKey;
  line: string;
}

/** "ip:port", "[ip6]:port". */
export const hostPort = (ip: string, port: number): string => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);

/** Parses /proc/net/nf_conntrack (port-carrying protocols; IPv6 addresses, printed in full there, made canonical). */
export function parseConntrack(text: string): ConntrackLine[] {
  const out: ConntrackLine[] = [];
  for (const line of text.split('\n')) {
    const m = /^ipv[46]\s+(?:2|10)\s+\S+\s+(\d+)\s/.exec(line);
    if (!m) continue;
    const proto = Number(m[1]);
    const kv = [...line.matchAll(/(src|dst|sport|dport)=(\S+)/g)].map((x) => [x[1]!, x[2]!] as const);
    if (kv.length < 8) continue;
    const addr = (a: string): string => canonicalIP(a) ?? a;
    const tuple = (part: ReadonlyArray<readonly [string, string]>): FlowKey => {
      const g = new Map(part);
      return { proto, src: addr(g.get('src')!), dst: addr(g.get('dst')!), sport: Number(g.get('sport')), dport: Number(g.get('dport')) };
    };
    out.push({ orig: tuple(kv.slice(0, 4)), reply: tuple(kv.slice(4, 8)), line });
  }
  return out;
}

/**
 * The kernel's outcome for a flow: a conntrack entry means accepted. Without one, an ICMP error
 * back means rejected — and a TCP reset from a node address means the packet was accepted and the
 * node's own TCP stack refused it (nf_conntrack_proto_tcp.c: a connection whose only reply is a
 * RST is deleted at once, so no entry is left to read; kube-proxy's rules never REJECT with
 * tcp-reset). Nothing at all means dropped.
 */
export function kernelOutcome(k: FlowKey, ct: Map<string, ConntrackLine>, rejects: Map<string, { type: number; code: number }>): Outcome {
  const e = ct.get(flowKeyText(k));
  if (e) {
    const masq = e.reply.dst !== k.src || e.reply.dport !== k.sport;
    return { kind: 'accept', to: hostPort(e.reply.src, e.reply.sport), masq, ...(masq ? { from: e.reply.dst } : {}) };
  }
  const r = rejects.get(flowKeyText(k));
  if (r && r.type === -1 && (NODE_ADDRS.includes(k.dst) || NODE_ADDRS6.includes(k.dst))) return { kind: 'accept', to: hostPort(k.dst, k.dport), masq: false };
  return r ? { kind: 'reject', icmp: r } : { kind: 'drop' };
}

/** ICMP / ICMPv6 errors (and TCP resets) in what the client captured, keyed by the flow they answer. */
export function repliesByFlow(received: string[]): Map<string, { type: number; code: number }> {
  const out = new Map<string, { type: number; code: number }>();
  for (const hex of received) {
    let p;
    try { p = decodePacket(Uint8Array.from(Buffer.from(hex, 'hex'))); } catch { continue; }
    // Destination unreachable and time exceeded: ICMP 3 and 11, ICMPv6 1 and 3.
    const error = p.family === 4 ? p.proto === PROTO.icmp && (p.icmp?.type === 3 || p.icmp?.type === 11)
      : p.proto === PROTO.icmpv6 && (p.icmp?.type === 1 || p.icmp?.type === 3);
    if (error && p.icmp?.inner) {
      const q = p.icmp.inner;
      out.set(flowKeyText({ proto: q.proto, src: q.src, dst: q.dst, sport: q.sport, dport: q.dport }), { type: p.icmp.type, code: p.icmp.code });
    } else if (p.proto === PROTO.tcp && p.flags?.includes('R')) {
      out.set(flowKeyText({ proto: PROTO.tcp, src: p.dst, dst: p.src, sport: p.dport, dport: p.sport }), { type: -1, code: -1 });
    }
  }
  return out;
}

/** The node, client and sink namespaces, with the node and client helpers running. */
export class KernelNode {
  readonly scope: NetnsScope;
  node!: Netns;
  client!: Netns;
  sink!: Netns;
  private nodeAgent!: LineAgent;
  private clientAgent!: LineAgent;

  private constructor(tag: string, readonly plan: AddressPlan) {
    this.scope = new NetnsScope(tag);
  }

  /** Builds the topology for one family; on any failure everything made so far is removed again. */
  static async start(tag: string, family: 4 | 6 = 4): Promise<KernelNode> {
    const missing = missingTools(KERNEL_TOOLS);
    if (missing.length) throw new Error(`missing tools: ${missing.join(', ')} (apt-get install iptables conntrack nfacct python3)`);
    const k = new KernelNode(tag, planOf(family));
    try {
      await k.setup();
      return k;
    } catch (e) {
      k.destroy();
      throw e;
    }
  }

  private async setup(): Promise<void> {
    const scope = this.scope;
    const plan = this.plan;
    const v6 = plan.family === 6;
    const node = (this.node = scope.create('node'));
    const client = (this.client = scope.create('cli'));
    this.sink = scope.create('sink');
    this.nodeAgent = scope.agent(node, ['python3', '-u', '-c', NODE_AGENT]);
    const conf = (dev: string, key: string, v: string): [string, string] => [`/proc/sys/net/ipv4/conf/${dev}/${key}`, v];
    const conf6 = (dev: string, key: string, v: string): [string, string] => [`/proc/sys/net/ipv6/conf/${dev}/${key}`, v];
    // Before any device exists, so new devices inherit rp_filter 0 (and IPv6 forwarding).
    await this.nodeAgent.call({ op: 'write', files: [
      ['/proc/sys/net/ipv4/ip_forward', '1'],
      conf('all', 'rp_filter', '0'), conf('default', 'rp_filter', '0'),
      // kube-proxy's REJECT answers must not be rate-limited away (icmp_ratemask: none limited).
      ['/proc/sys/net/ipv4/icmp_ratemask', '0'],
      ...(v6 ? [
        conf6('all', 'forwarding', '1'), conf6('default', 'forwarding', '1'),
        // icmpv6_xrlim_allow(): ratelimit 0 is no per-destination limit; an empty ratemask (a bare
        // newline: writing nothing leaves the default 0-1,3-127) exempts every type from the
        // global limit, whose burst of 50 would otherwise swallow REJECT answers.
        ['/proc/sys/net/ipv6/icmp/ratelimit', '0'], ['/proc/sys/net/ipv6/icmp/ratemask', '\n'],
      ] as Array<[string, string]> : []),
    ] });
    // The client and the sink need no IPv6 stack (frames are injected and captured raw, the node
    // reaches them by fixed neighbour entries): without one they send no neighbour discovery or
    // MLD reports, which the node's INPUT chain would count along with the test's packets.
    if (v6) for (const ns of [client, this.sink]) scope.must(ns, ['sh', '-c', 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6']);
    scope.veth(node, 'n-cli', client, 'cli0', { a: NODE_MAC, b: CLIENT_MAC });
    scope.veth(node, 'n-sink', this.sink, 's0', { a: SINK_NODE_MAC, b: SINK_MAC });
    const ip = (ns: Netns, args: string[]) => scope.ip(ns, v6 ? ['-6', ...args] : args);
    const host = v6 ? 128 : 32;
    // IPv6 addresses skip duplicate address detection (nodad): usable at once.
    // The node IP is the only address on the pod-facing link, so MASQUERADE picks it
    // (nf_nat_masquerade.c: inet_select_addr() on the egress device; ipv6_dev_get_saddr() for IPv6).
    ip(node, ['addr', 'add', `${plan.node}/${host}`, 'dev', 'n-sink', ...(v6 ? ['nodad'] : [])]);
    ip(node, ['addr', 'add', `${plan.nodeLink}/${plan.linkPrefix}`, 'dev', 'n-cli', ...(v6 ? ['nodad'] : [])]);
    if (!v6) ip(client, ['addr', 'add', `${plan.clientLink}/${plan.linkPrefix}`, 'dev', 'cli0']);
    // Service ranges and pods go to one next hop with a fixed MAC nobody owns: the sink namespace
    // drops those frames (not addressed to it) after the node's POSTROUTING has run. One
    // permanent neighbour entry, so no ARP (or neighbour discovery) for thousands of pod addresses.
    ip(node, ['neigh', 'replace', plan.sinkGw, 'lladdr', NOBODY_MAC, 'dev', 'n-sink', 'nud', 'permanent']);
    for (const r of plan.sinkRoutes) ip(node, ['route', 'add', r, 'via', plan.sinkGw, 'dev', 'n-sink', 'onlink']);
    // Clients route back over the client link (the client pods' range is inside the pods' route).
    ip(node, ['neigh', 'replace', plan.clientLink, 'lladdr', CLIENT_MAC, 'dev', 'n-cli', 'nud', 'permanent']);
    ip(node, ['route', 'add', plan.externalClients, 'via', plan.clientLink]);
    ip(node, ['route', 'add', plan.podClients, 'via', plan.clientLink]);
    await this.nodeAgent.call({ op: 'write', files: [conf('n-cli', 'rp_filter', '0'), conf('n-sink', 'rp_filter', '0'), conf('all', 'send_redirects', '0')] });
    // kube-proxy creates its nfacct counters before it writes rules that name them.
    for (const name of ['localhost_nps_accepted_pkts', 'ct_state_invalid_dropped_pkts']) {
      const r = await this.nodeAgent.call<{ rc: number; err: string }>({ op: 'run', argv: ['nfacct', 'add', name] });
      if (r.rc !== 0) throw new Error(`nfacct add ${name}: ${r.err}`);
    }
    this.clientAgent = scope.agent(client, ['python3', '-u', '-c', CLIENT_AGENT, 'cli0', NODE_MAC, v6 ? '86dd' : '0800']);
  }

  /** iptables-legacy-restore (ip6tables-) inside the node; returns its wall time (fork + exec + commit) in ms. */
  async restore(text: string, noflush = false): Promise<number> {
    const tool = this.plan.restoreTool;
    const r = await this.nodeAgent.call<{ rc: number; err: string; ns: number }>({ op: 'restore', tool, text, noflush });
    if (r.rc !== 0) throw new Error(`${tool}${noflush ? ' --noflush' : ''} failed (${r.rc}): ${r.err.trim()}`);
    return r.ns / 1e6;
  }

  /** `nft -f -` inside the node, `text` on its standard input (one transaction). */
  async nft(text: string): Promise<void> {
    const r = await this.nodeAgent.call<{ rc: number; err: string }>({ op: 'run', argv: ['nft', '-f', '-'], input: text });
    if (r.rc !== 0) throw new Error(`nft -f failed (${r.rc}): ${r.err.trim()}`);
  }

  /** Flushes the node's tables (filter, nat) and loads kube-proxy's base-chain jumps. */
  async resetRules(): Promise<void> {
    await this.restore(KUBE_BASE_RULES);
  }

  async flushConntrack(): Promise<void> {
    const r = await this.nodeAgent.call<{ rc: number; err: string }>({ op: 'run', argv: ['conntrack', '-F'] });
    // conntrack -F prints a count on stderr and exits 0; anything else is a real failure.
    if (r.rc !== 0) throw new Error(`conntrack -F: ${r.err}`);
  }

  async conntrack(): Promise<ConntrackLine[]> {
    return parseConntrack(await this.readProc('/proc/net/nf_conntrack'));
  }

  async conntrackCount(): Promise<number> {
    const r = await this.nodeAgent.call<{ text: string }>({ op: 'read', path: '/proc/sys/net/netfilter/nf_conntrack_count' });
    return Number(r.text.trim());
  }

  /** Writes /proc/sys files inside the node (sysctls), in order. */
  async sysctl(files: Array<[string, string]>): Promise<void> {
    await this.nodeAgent.call({ op: 'write', files });
  }

  /** A /proc file as the node reads it. */
  async readProc(path: string): Promise<string> {
    return (await this.nodeAgent.call<{ text: string }>({ op: 'read', path })).text;
  }

  /** Adds `ip` to xt_recent list `name` (as `echo +ip > /proc/net/xt_recent/name`). */
  async seedRecent(entries: Array<[string, string]>): Promise<void> {
    if (entries.length) await this.nodeAgent.call({ op: 'recent', entries });
  }

  /** Injects packets of the node's family at the client's veth end; returns what came back until `quietMs` of silence. */
  async inject(packets: Uint8Array[], quietMs = 15): Promise<string[]> {
    const r = await this.clientAgent.call<{ received: string[] }>({ op: 'inject', packets: packets.map((p) => Buffer.from(p).toString('hex')), quietMs });
    return r.received;
  }

  /** What came back since the last inject / collect, after waiting `waitMs` more. */
  async collect(waitMs = 50): Promise<string[]> {
    const r = await this.clientAgent.call<{ received: string[] }>({ op: 'collect', waitMs });
    return r.received;
  }

  /** Sends packets back to back; returns the time the sends took in ms (the node's softirq work runs inside them). */
  async blast(packets: Uint8Array[]): Promise<number> {
    const r = await this.clientAgent.call<{ ns: number }>({ op: 'blast', packets: packets.map((p) => Buffer.from(p).toString('hex')) });
    return r.ns / 1e6;
  }

  destroy(): void {
    this.scope.destroy();
  }
}

