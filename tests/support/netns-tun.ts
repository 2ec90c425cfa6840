// netns-tun.ts — a small cluster of throwaway namespaces for driving the TUN proxy end to end: a
// "client", a "node" that routes a Service range and a masquerade address into a TUN device, and
// two "backend" pods, each joined to the node by a veth pair. Backends run a TCP and a UDP server
// that answer with their own name; the client runs a helper that makes connections, sends
// datagrams and generates bounded load, one JSON request per line (LineAgent). Forwarding is on
// inside the node namespace only. Never touches the root namespace (links are made with `ip -n`),
// and everything goes with the scope's destroy().
import { NetnsScope, type LineAgent, type Netns } from './netns.js';

/** Agent source: answers {op:"ready"} once `pending` reaches 0 (the backend agents' listeners). */
export const READY_LOOP = String.raw`
readline.createInterface({ input: process.stdin }).on('line', (l) => {
  const m = JSON.parse(l);
  const answer = () => process.stdout.write(JSON.stringify({ ok: true }) + '\n');
  if (m.op === 'ready') { if (pending === 0) answer(); else waiters.push(answer); }
  else process.stdout.write(JSON.stringify({ error: 'unknown op ' + m.op }) + '\n');
});
`;

/** Agent source: one TCP request/reply exchange with a timeout (shared by the client agents). */
export const TCP_ONCE = String.raw`
function once(host, port, payload, timeoutMs, localPort) {
  return new Promise((resolve) => {
    const s = net.connect(localPort ? { host, port, localPort } : { host, port });
    let buf = '', done = false;
    const finish = (v) => { if (!done) { done = true; clearTimeout(t); s.destroy(); resolve(v); } };
    const t = setTimeout(() => finish({ error: 'timeout' }), timeoutMs);
    s.on('connect', () => s.write(payload + '\n'));
    s.on('data', (d) => { buf += d; });
    s.on('end', () => finish({ reply: buf.trim() }));
    s.on('error', (e) => finish({ error: e.code || e.message }));
  });
}
`;

export const SVC_CIDR = '198.18.96.0/24';
export const VIP = '198.18.96.10';
/** Routed into the TUN, never assigned to an interface (the masquerade recipe). */
export const MASQ_CIDR = '198.18.97.0/24';
export const MASQ_IP = '198.18.97.1';
export const CLIENT_IP = '198.18.110.2';
export const NODE_IP = '198.18.110.1';
export const BACKENDS = [
  { name: 'be1', ip: '198.18.111.2', gw: '198.18.111.1' },
  { name: 'be2', ip: '198.18.112.2', gw: '198.18.112.1' },
] as const;
export const TCP_PORT = 8080;
export const UDP_PORT = 5353;
export const TUN_NAME = 'svtun0';

// Backend: TCP — read one line, answer "<name> <peer address> <line>" and close; UDP — answer
// each datagram with "<name> <peer address> <payload>". Requests: {op:"ready"}.
const BACKEND_AGENT = String.raw`
const net = require('net'), dgram = require('dgram'), readline = require('readline');
const [name, tcpPort, udpPort] = process.argv.slice(1);
let pending = 2;
const waiters = [];
const ready = () => { if (--pending === 0) waiters.splice(0).forEach((f) => f()); };
net.createServer((s) => {
  let buf = '';
  s.on('data', (d) => {
    buf += d;
    const nl = buf.indexOf('\n');
    if (nl >= 0) s.end(name + ' ' + s.remoteAddress + ' ' + buf.slice(0, nl) + '\n');
  });
  s.on('error', () => {});
}).listen(Number(tcpPort), '0.0.0.0', 1024, ready);
const u = dgram.createSocket('udp4');
u.on('message', (m, r) => u.send(name + ' ' + r.address + ' ' + m, r.port, r.address));
u.bind(Number(udpPort), '0.0.0.0', ready);
${READY_LOOP}
`;

// Client: {op:"tcp", host, port, count, concurrency} → {replies, errors};
// {op:"udp", host, port, count} → {replies, errors} (one socket, so one source port, per datagram);
// {op:"load", host, port, ms, concurrency} → {ok, errors, ms}.
const CLIENT_AGENT = String.raw`
const net = require('net'), dgram = require('dgram'), readline = require('readline');
${TCP_ONCE}
async function pool(n, concurrency, job) {
  let next = 0;
  const worker = async () => { while (next < n) await job(next++); };
  await Promise.all(Array.from({ length: Math.min(n, concurrency) }, worker));
}
function udpOnce(host, port, payload, timeoutMs) {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const t = setTimeout(() => { s.close(); resolve({ error: 'timeout' }); }, timeoutMs);
    s.on('message', (m) => { clearTimeout(t); s.close(); resolve({ reply: String(m) }); });
    s.on('error', (e) => { clearTimeout(t); s.close(); resolve({ error: e.code || e.message }); });
    s.send(payload, port, host);
  });
}
const ops = {
  async tcp(m) {
    const replies = [], errors = [];
    await pool(m.count, m.concurrency || 1, async (i) => {
      const r = await once(m.host, m.port, 'req-' + i, 3000);
      if (r.error) errors.push(r.error); else replies.push(r.reply);
    });
    return { replies, errors };
  },
  async udp(m) {
    const replies = [], errors = [];
    for (let i = 0; i < m.count; i++) {
      const r = await udpOnce(m.host, m.port, 'dgram-' + i, 2000);
      if (r.error) errors.push(r.error); else replies.push(r.reply);
    }
    return { replies, errors };
  },
  async load(m) {
    const start = Date.now();
    let ok = 0; const errors = {};
    const worker = async () => {
      while (Date.now() - start < m.ms) {
        const r = await once(m.host, m.port, 'load', 3000);
        if (r.error) errors[r.error] = (errors[r.error] || 0) + 1; else ok++;
      }
    };
    await Promise.all(Array.from({ length: m.concurrency }, worker));
    return { ok, errors, ms: Date.now() - start };
  },
};
let chain = Promise.resolve();
readline.createInterface({ input: process.stdin }).on('line', (l) => {
  chain = chain.then(async () => {
    let out;
    try { const m = JSON.parse(l); out = ops[m.op] ? await ops[m.op](m) : { error: 'unknown op ' + m.op }; }
    catch (e) { out = { error: String(e && e.stack || e) }; }
    process.stdout.write(JSON.stringify(out) + '\n');
  });
});
`;

export interface TunCluster {
  scope: NetnsScope;
  client: Netns;
  node: Netns;
  backends: Netns[];
  /** Where the node namespace can be opened (for TunDevice.open's netnsPath). */
  nodeNetnsPath: string;
  clientAgent: LineAgent;
  backendAgents: LineAgent[];
}

/** Another load-generating client process in the client namespace (load spreads over processes). */
export function addClientAgent(c: TunCluster): LineAgent {
  return c.scope.agent(c.client, ['node', '-e', CLIENT_AGENT]);
}

function sysctl(scope: NetnsScope, ns: Netns, settings: string[]): void {
  scope.must(ns, ['sysctl', '-q', '-w', ...settings]);
}

/**
 * Builds the namespaces, links, addresses, routes and servers. The TUN device is created persistent
 * in the node namespace (IPv6 off, no address, up); the caller attaches to it by name. On any
 * failure the scope is destroyed before the error propagates.
 */
export async function buildTunCluster(tag = 'tun'): Promise<TunCluster> {
  const scope = new NetnsScope(tag);
  try {
    const client = scope.create('client');
    const node = scope.create('node');
    const backends = BACKENDS.map((b) => scope.create(b.name));

    scope.veth(client, 'eth0', node, 'cli0');
    scope.ip(client, ['addr', 'add', `${CLIENT_IP}/24`, 'dev', 'eth0']);
    scope.ip(node, ['addr', 'add', `${NODE_IP}/24`, 'dev', 'cli0']);
    scope.ip(client, ['route', 'add', 'default', 'via', NODE_IP]);
    sysctl(scope, client, ['net.ipv4.tcp_tw_reuse=1', 'net.ipv4.ip_local_port_range=20000 60999']);

    BACKENDS.forEach((b, i) => {
      const ns = backends[i]!;
      scope.veth(ns, 'eth0', node, `${b.name}0`);
      scope.ip(ns, ['addr', 'add', `${b.ip}/24`, 'dev', 'eth0']);
      scope.ip(node, ['addr', 'add', `${b.gw}/24`, 'dev', `${b.name}0`]);
      scope.ip(ns, ['route', 'add', 'default', 'via', b.gw]);
    });

    // notes/tun-forwarding.md, masquerade recipe: ip_forward in the node namespace only, the
    // Service range and the masquerade address routed into an address-less TUN with IPv6 off.
    sysctl(scope, node, ['net.ipv4.ip_forward=1']);
    scope.ip(node, ['tuntap', 'add', 'dev', TUN_NAME, 'mode', 'tun']);
    sysctl(scope, node, [`net.ipv6.conf.${TUN_NAME}.disable_ipv6=1`, `net.ipv4.conf.${TUN_NAME}.rp_filter=0`]);
    scope.ip(node, ['link', 'set', TUN_NAME, 'up']);
    scope.ip(node, ['route', 'add', SVC_CIDR, 'dev', TUN_NAME]);
    scope.ip(node, ['route', 'add', MASQ_CIDR, 'dev', TUN_NAME]);

    const backendAgents = BACKENDS.map((b, i) =>
      scope.agent(backends[i]!, ['node', '-e', BACKEND_AGENT, b.name, String(TCP_PORT), String(UDP_PORT)]));
    for (const a of backendAgents) await a.call({ op: 'ready' });
    const clientAgent = scope.agent(client, ['node', '-e', CLIENT_AGENT]);

    return { scope, client, node, backends, nodeNetnsPath: `/run/netns/${node.name}`, clientAgent, backendAgents };
  } catch (e) {
    scope.destroy();
    throw e;
  }
}
