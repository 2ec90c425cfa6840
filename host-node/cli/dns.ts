// dns.ts — `svcplane dns`: a standalone cluster DNS server. Reads Services and EndpointSlices from
// a manifests file or directory, builds the Kubernetes DNS records (kube/dns-records.ts), loads
// them into a core and answers over UDP (dnsAnswer) and TCP (dnsAnswerTcp, RFC 1035 §4.2.2 framing,
// RFC 7766) on the same address through the ABI buffers; queries outside the cluster zone go to the
// --dns-upstream resolvers (dns/forward.ts) or get REFUSED when none is set. Reloads when the
// manifests change, printing errors with file and line. Never touches the dataplane.
import { createSocket, type Socket, type RemoteInfo } from 'node:dgram';
import { createServer, type Server, type Socket as TcpSocket } from 'node:net';
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { parseArgs } from 'node:util';
import { instantiateCore } from '../core/loader.js';
import { parseManifests, type ManifestSet } from '../kube/objects.js';
import { splitHostPort } from '../kube/ip.js';
import { DEFAULT_TTL, DEFAULT_ZONE } from '../kube/dns-records.js';
import { DnsLoader } from '../dns/records-from.js';
import { readDnsCounters, type DnsCore } from '../dns/table.js';
import { DnsForwarder, parseUpstream, type ForwarderStats } from '../dns/forward.js';
import { nodeUpstreamExchange } from '../io/dns-upstream.js';
import { coreLocalAnswer, resolveUpstream, type LocalCore } from '../dns/chase.js';
import { manifestFiles } from '../io/manifests.js';

export const DNS_HELP = `usage: svcplane dns --manifests PATH [--listen ADDR:PORT] [--cluster-domain DOMAIN] [--ttl SECONDS]
                    [--dns-upstream ADDR[:PORT]]...
  --listen          UDP and TCP address to answer on (default 127.0.0.1:5353; [::1]:5353 for IPv6)
  --manifests       a manifests file or directory (*.yaml, *.yml, *.json); reloaded on change
  --cluster-domain  the cluster zone (default ${DEFAULT_ZONE})
  --ttl             TTL of every record in seconds (default ${DEFAULT_TTL})
  --dns-upstream    resolver for names outside the zone, tried in the order given (port 53 by
                    default; repeatable); without one such names get REFUSED
`;

// RFC 7766 §6.2.3: a server closes idle TCP connections after a while; some seconds is the norm.
const TCP_IDLE_MS = 10_000;

// Our EDNS UDP buffer size: DNS Flag Day 2020's 1232 bytes (the core never answers larger).
const MAX_UDP = 1232;

/** The core exports this server uses. */
type ServeCore = DnsCore & LocalCore & {
  dnsAnswer(q: number, len: number, out: number, cap: number, maxUdp: number, tcp: number): number;
  dnsAnswerTcp(frame: number, len: number, out: number, cap: number): number;
  dnsForward(on: number): void;
  dnsRecordCount(): number;
};

// dnsAnswer / dnsAnswerTcp results (ABI.md §12).
const UPSTREAM = -4;

export interface DnsServerOptions {
  /** "127.0.0.1:5353", "[::1]:0" (0: an ephemeral port). */
  listen: string;
  manifests: string;
  zone?: string;
  ttl?: number;
  /** Error and status lines (default: none). */
  log?: (line: string) => void;
  /** Follow manifest changes (default true). */
  watch?: boolean;
  /** Poll interval for changes fs.watch misses, ms (default 1000). */
  pollMs?: number;
  /** Upstream resolvers ("ADDR" or "ADDR:PORT") for names outside the zone; none: REFUSED. */
  upstreams?: string[];
  /** Per upstream try, ms (default 2000). */
  upstreamTimeoutMs?: number;
}

export interface DnsServer {
  /** The bound address and port. */
  readonly address: { address: string; port: number; family: string };
  /** Re-reads the manifests now; returns how many records are served and the errors found. */
  reload(): { records: number; errors: string[] };
  /** Loads since start (the first included) that swapped in a new table. */
  readonly loads: number;
  counters(): Record<string, number>;
  /** The upstream forwarder's counters (all zero without upstreams). */
  forwarded(): ForwarderStats;
  close(): Promise<void>;
}

/** "host:port" with IPv6 in brackets. */
export function parseListen(text: string): { host: string; port: number; type: 'udp4' | 'udp6' } {
  const hp = splitHostPort(text);
  if (!hp || hp.host === '') throw new Error(`--listen: expected ADDR:PORT, got ${JSON.stringify(text)}`);
  return { host: hp.host, port: hp.port, type: hp.host.includes(':') ? 'udp6' : 'udp4' };
}

/** A DNS name as kubelet's clusterDomain must be one (RFC 1123 labels; one trailing dot allowed). */
function isDomainName(text: string): boolean {
  const name = text.endsWith('.') ? text.slice(0, -1) : text;
  return name.length > 0 && name.length <= 253 && name.split('.').every((l) => /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(l));
}

/** Size and mtime of every file: a change in any of them means a reload. */
function signature(path: string): string {
  try {
    return manifestFiles(path).map((f) => { const s = statSync(f); return `${f}:${s.size}:${s.mtimeMs}`; }).join('|');
  } catch (e) {
    return `error:${(e as Error).message}`;
  }
}

/** Every manifest file of `path` parsed and merged; issues carry file and line. */
export function readManifestSet(path: string): ManifestSet {
  const set: ManifestSet = { services: [], endpointSlices: [], nodes: [], issues: [], skipped: 0 };
  for (const file of manifestFiles(path)) {
    const one = parseManifests(readFileSync(file, 'utf8'), file);
    for (const s of one.services) set.services.push(s);
    for (const s of one.endpointSlices) set.endpointSlices.push(s);
    for (const n of one.nodes) set.nodes.push(n);
    for (const i of one.issues) set.issues.push(i);
    set.skipped += one.skipped;
  }
  return set;
}

export async function startDnsServer(o: DnsServerOptions): Promise<DnsServer> {
  const listen = parseListen(o.listen);
  const log = o.log ?? (() => {});
  const upstreams = (o.upstreams ?? []).map(parseUpstream);
  const forwarder = new DnsForwarder(upstreams, nodeUpstreamExchange, { ...(o.upstreamTimeoutMs !== undefined ? { timeoutMs: o.upstreamTimeoutMs } : {}) });
  const core = (await instantiateCore()) as unknown as ServeCore;
  core.dnsForward(upstreams.length > 0 ? 1 : 0);
  const qPtr = core.dnsQueryPtr();
  const aPtr = core.dnsAnswerPtr();
  const ioBytes = core.dnsIoBytes();
  const local = coreLocalAnswer(core);
  let mem = new Uint8Array(core.memory.buffer);
  const view = (): Uint8Array => (mem.buffer === core.memory.buffer ? mem : (mem = new Uint8Array(core.memory.buffer)));
  let loads = 0;
  let sig = '';
  const loader = new DnsLoader(core);

  const reload = (): { records: number; errors: string[] } => {
    sig = signature(o.manifests);
    let set: ManifestSet;
    try {
      set = readManifestSet(o.manifests);
    } catch (e) {
      const msg = `error: ${o.manifests}: ${(e as Error).message}`;
      log(msg);
      return { records: core.dnsRecordCount(), errors: [msg] };
    }
    try {
      // Only Services that changed since the last load are derived and encoded again; the SOA
      // serial moves with every load so caches can tell tables apart.
      const r = loader.load(set, { zone: o.zone ?? DEFAULT_ZONE, ttl: o.ttl ?? DEFAULT_TTL });
      for (const m of r.issues) log(m);
      loads++;
      log(`dns: serving ${r.records} records for ${r.zone}`);
      return { records: r.records, errors: r.issues };
    } catch (e) {
      // The core keeps answering from the previous table.
      const msg = `error: ${o.manifests}: ${(e as Error).message}`;
      log(msg);
      return { records: core.dnsRecordCount(), errors: [msg] };
    }
  };
  reload();

  const socket: Socket = createSocket({ type: listen.type, reuseAddr: false });
  socket.on('message', (msg: Buffer, from: RemoteInfo) => {
    if (msg.length > ioBytes) return;
    view().set(msg, qPtr);
    const n = core.dnsAnswer(qPtr, msg.length, aPtr, ioBytes, MAX_UDP, 0);
    if (n === UPSTREAM) {
      const q = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength).slice();
      void resolveUpstream(forwarder, q, 'udp', local).then((a) => socket.send(a, from.port, from.address), (e: Error) => log(`error: dns upstream: ${e.message}`));
      return;
    }
    if (n <= 0) return;   // dropped (short, a response, no room): counted by the core
    socket.send(view().slice(aPtr, aPtr + n), from.port, from.address);
  });
  socket.on('error', (e) => log(`error: dns socket: ${e.message}`));
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(listen.port, listen.host, () => { socket.off('error', reject); resolve(); });
  });

  // TCP on the same address and port: one stream of length-prefixed queries per connection.
  const conns = new Set<TcpSocket>();
  const answerFrame = (frame: Uint8Array, conn: TcpSocket): void => {
    view().set(frame, qPtr);
    const n = core.dnsAnswerTcp(qPtr, frame.length, aPtr, ioBytes);
    if (n === UPSTREAM) {
      // RFC 7766 §7: answers on one connection may go out of order; the client matches them by ID.
      void resolveUpstream(forwarder, frame.slice(2), 'tcp', local).then((a) => {
        if (conn.destroyed) return;
        const out = new Uint8Array(2 + a.length);
        out[0] = a.length >> 8;
        out[1] = a.length & 0xff;
        out.set(a, 2);
        conn.write(out);
      }, (e: Error) => log(`error: dns upstream: ${e.message}`));
    } else if (n > 0) {
      conn.write(view().slice(aPtr, aPtr + n));
    }
  };
  const tcp: Server = createServer((conn) => {
    conns.add(conn);
    let buf = new Uint8Array(0);
    conn.setTimeout(TCP_IDLE_MS, () => conn.destroy());
    conn.on('close', () => conns.delete(conn));
    conn.on('error', () => conn.destroy());
    conn.on('data', (d: Buffer) => {
      const next = new Uint8Array(buf.length + d.length);
      next.set(buf);
      next.set(d, buf.length);
      buf = next;
      while (buf.length >= 2) {
        const frameLen = 2 + ((buf[0]! << 8) | buf[1]!);
        // A frame larger than the core's query buffer cannot be a query we answer: close.
        if (frameLen > ioBytes) { conn.destroy(); return; }
        if (buf.length < frameLen) break;
        answerFrame(buf.subarray(0, frameLen), conn);
        buf = buf.slice(frameLen);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(socket.address().port, listen.host, () => { tcp.off('error', reject); resolve(); });
  });
  tcp.on('error', (e) => log(`error: dns tcp: ${e.message}`));

  let watcher: FSWatcher | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let poller: ReturnType<typeof setInterval> | null = null;
  const changed = () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => { timer = null; if (signature(o.manifests) !== sig) reload(); }, 50);
  };
  if (o.watch !== false) {
    try {
      watcher = watch(o.manifests, changed);
      watcher.on('error', () => { watcher?.close(); watcher = null; });
    } catch {
      watcher = null;   // polling below still notices changes
    }
    poller = setInterval(() => { if (signature(o.manifests) !== sig) changed(); }, o.pollMs ?? 1000);
    poller.unref();
  }

  const a = socket.address();
  return {
    address: { address: a.address, port: a.port, family: a.family },
    reload,
    get loads() { return loads; },
    counters: () => readDnsCounters(core),
    forwarded: () => ({ ...forwarder.stats }),
    close: async () => {
      watcher?.close();
      if (timer) clearTimeout(timer);
      if (poller) clearInterval(poller);
      for (const c of conns) c.destroy();
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}

/** `svcplane dns …`: runs until SIGINT or SIGTERM. */
export async function runDns(argv: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      listen: { type: 'string', default: '127.0.0.1:5353' },
      manifests: { type: 'string' },
      'cluster-domain': { type: 'string', default: DEFAULT_ZONE },
      ttl: { type: 'string', default: String(DEFAULT_TTL) },
      'dns-upstream': { type: 'string', multiple: true },
    },
    strict: true,
  });
  if (!values.manifests) {
    err(`svcplane dns: --manifests is required\n${DNS_HELP}`);
    return 2;
  }
  const ttl = Number(values.ttl);
  if (!/^\d+$/.test(values.ttl!) || ttl > 0x7fffffff) {
    err(`svcplane dns: --ttl: expected whole seconds, got ${JSON.stringify(values.ttl)}\n`);
    return 2;
  }
  const zone = values['cluster-domain']!;
  if (!isDomainName(zone)) {
    err(`svcplane dns: --cluster-domain: expected a DNS name (labels of 1-63 letters, digits or "-", at most 253 characters), got ${JSON.stringify(zone)}\n`);
    return 2;
  }
  const upstreams = values['dns-upstream'] ?? [];
  try {
    parseListen(values.listen!);
    upstreams.forEach(parseUpstream);
  } catch (e) {
    err(`svcplane dns: ${(e as Error).message}\n`);
    return 2;
  }
  const server = await startDnsServer({
    listen: values.listen!, manifests: values.manifests, zone: values['cluster-domain']!, ttl, upstreams,
    log: (line) => (line.startsWith('dns: ') ? out : err)(`${line}\n`),
  });
  out(`dns: listening on ${server.address.family === 'IPv6' ? `[${server.address.address}]` : server.address.address}:${server.address.port} (udp, tcp)${upstreams.length ? `, forwarding to ${upstreams.join(', ')}` : ''}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => { process.off('SIGINT', stop); process.off('SIGTERM', stop); resolve(); };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await server.close();
  return 0;
}
