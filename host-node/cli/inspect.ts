// inspect.ts — the commands that read a running `svcplane proxy` over its metrics address, as an
// operator reads a kube-proxy node with the kernel's tools:
//   svcplane conntrack --proxy HOST:PORT [-L|-D|-F|-E] [-f -p -s -d -r -q --sport --dport]
//       the flows, listed as `conntrack -L` lists the kernel's (one /proc/net/nf_conntrack line per
//       flow, then the count on stderr) — the kernel's own table does not hold them — deleted
//       as `conntrack -D` / `-F` delete them, or their events as `conntrack -E` prints them;
//   svcplane show --proxy HOST:PORT iptables-save|iptables|ip6tables-save|ip6tables|ipvsadm ARGS
//       that listing command over the proxy's live rules and virtual servers, with its counters
//       (`ipset list|save|test` for the ipvs mode's sets, `recent [LIST]` for the affinity lists as
//       /proc/net/xt_recent shows them, `direct` for the direct mode's table).
// (`svcplane trace --proxy` is trace.ts.) Read the proxy's /conntrack and /show
// (io/proxy-inspect.ts) as they stream; change nothing in it but the flows -D and -F delete.
import { parseArgs } from 'node:util';
import { conntrackFilter, FILTER_OPTIONS, type FilterField } from '../core/conntrack-list.js';
import { SHOW_TOOLS } from '../io/read-only-tools.js';
import { CONNTRACK_PARAMS } from '../io/proxy-inspect.js';

export const CONNTRACK_HELP = `usage: svcplane conntrack --proxy HOST:PORT [-L|-D|-E] [-f ipv4|ipv6] [-p PROTO] [-s ADDR] [-d ADDR]
                          [-r ADDR] [-q ADDR] [--sport N] [--dport N]
       svcplane conntrack --proxy HOST:PORT -F

Lists the flows of a running \`svcplane proxy\` (HOST:PORT: its --metrics-bind-address, e.g.
127.0.0.1:10249) as conntrack -L lists the kernel's: one /proc/net/nf_conntrack line per flow
(protocol, seconds left, TCP state, the original and reply tuples, [UNREPLIED], [ASSURED], mark),
then "N flow entries have been shown." on stderr. The kernel's own table holds none of them.
  -L, --dump        list (the default)
  -D, --delete      delete the flows selected, as conntrack -D: each is listed, then "N flow
                    entries have been deleted." on stderr; exit 1 when none was. The next packet
                    of a deleted flow is a new connection (its endpoint chosen again). Only from
                    the node itself: the proxy refuses a deletion from another address.
  -F, --flush       delete every flow, as conntrack -F
  -E, --event       print the selected flows' events as they happen, as conntrack -E: [NEW] when
                    a connection is stored, [UPDATE] when it changes (a reply, assured, a TCP
                    state), [DESTROY] when it goes; until interrupted, then "N flow events have
                    been shown." on stderr
  -f, --family      ipv4 or ipv6 (an address sets it too; two that differ are refused)
  -p, --proto       tcp, udp, sctp, icmp or icmpv6 (or its number; ipv6-icmp)
  -s, --orig-src    original source (the client); also --src
  -d, --orig-dst    original destination (a Service address, or the node's for a NodePort); also --dst
  -r, --reply-src   reply source (the endpoint the flow was sent to)
  -q, --reply-dst   reply destination (the client, or the masquerade address)
  --sport, --dport  original ports (with -p tcp, udp or sctp); also --orig-port-src, --orig-port-dst
`;

/** How long a proxy has to start answering. */
const TIMEOUT_MS = 10_000;

/** conntrack's other names for the same selections (conntrack.c's option table): alias → the long option. */
const FILTER_ALIASES: Record<string, string> = { src: '--orig-src', dst: '--orig-dst', 'orig-port-src': '--sport', 'orig-port-dst': '--dport' };

/** `host:port`, `[v6]:port` or an http(s) URL as the base URL of a proxy's metrics server. */
export function proxyURL(text: string): string {
  const withScheme = /^https?:\/\//.test(text) ? text : `http://${text}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw new Error(`--proxy: not an address: ${JSON.stringify(text)} (host:port of the proxy's --metrics-bind-address)`);
  }
  if (u.pathname !== '/' || u.search || u.hash) throw new Error(`--proxy: give host:port only, not ${JSON.stringify(text)}`);
  return u.origin;
}

/**
 * GETs `path` of the proxy at `base` and hands its body to `chunk` as it arrives; throws an Error
 * saying what went wrong (the connection's error code, or the proxy's refusal). The timeout is
 * for the answer to start: a large table then streams as long as it takes.
 */
export async function fromProxy(base: string, path: string, chunk: (text: string) => void, method: 'GET' | 'DELETE' = 'GET', stop?: AbortSignal): Promise<void> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new Error(`no answer in ${TIMEOUT_MS / 1000} s`)), TIMEOUT_MS);
  // `stop` ends a stream that would go on (conntrack -E) as its reader's choice, not a failure.
  const onStop = (): void => abort.abort(new Error('stopped'));
  stop?.addEventListener('abort', onStop);
  try {
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, { signal: abort.signal, method });
    } catch (e) {
      if (stop?.aborted) return;
      const x = e as Error & { cause?: { code?: string } };
      throw new Error(x.cause?.code ?? x.message);
    } finally {
      clearTimeout(timer);
    }
    if (res.status === 404) throw new Error(`no ${path.split('?')[0]} here (is this a svcplane proxy's --metrics-bind-address?)`);
    if (!res.ok || !res.body) throw new Error(`${res.status}: ${(await res.text()).trim()}`);
    const decoder = new TextDecoder();
    try {
      for await (const c of res.body) chunk(decoder.decode(c as Uint8Array, { stream: true }));
    } catch (e) {
      if (!stop?.aborted) throw e;
    }
    const rest = decoder.decode();
    if (rest) chunk(rest);
  } finally {
    stop?.removeEventListener('abort', onStop);
  }
}

/**
 * Runs `svcplane conntrack ARGS`; returns the exit code: 0 listed (or deleted some, or flushed,
 * or listened until `stop`), 1 the proxy failed or refused (or -D deleted nothing, as conntrack
 * exits), 2 usage. `stop` ends -E (the CLI aborts it on SIGINT and SIGTERM).
 */
export async function runConntrack(argv: readonly string[], out: (s: string) => void, err: (s: string) => void, stop?: AbortSignal): Promise<number> {
  const options: Record<string, { type: 'string'; short?: string }> = Object.fromEntries([
    ...FILTER_OPTIONS.map(([, long, short]) => [long.slice(2), { type: 'string' as const, ...(short ? { short: short.slice(1) } : {}) }]),
    ...Object.keys(FILTER_ALIASES).map((alias) => [alias, { type: 'string' as const }]),
  ]);
  const { values, tokens } = parseArgs({
    args: [...argv], strict: true, allowPositionals: false, tokens: true,
    options: {
      ...options, proxy: { type: 'string' }, dump: { type: 'boolean', short: 'L' }, delete: { type: 'boolean', short: 'D' },
      flush: { type: 'boolean', short: 'F' }, event: { type: 'boolean', short: 'E' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    out(CONNTRACK_HELP);
    return 0;
  }
  const usage = (message: string): number => {
    err(`svcplane conntrack: ${message}\n${CONNTRACK_HELP}`);
    return 2;
  };
  if (typeof values.proxy !== 'string') return usage('--proxy is required (the proxy\'s --metrics-bind-address)');
  const command = values.flush ? 'flush' : values.delete ? 'delete' : values.event ? 'event' : 'dump';
  // conntrack.c takes one command, once ("Invalid commands combination"), and knows the port
  // options only once -p has named a protocol that has them (its extension adds them).
  const named = (names: readonly string[]) => tokens.flatMap((t) => (t.kind === 'option' && names.includes(t.name) ? [t] : []));
  if (named(['dump', 'delete', 'flush', 'event']).length > 1) return usage('one of -L, -D, -F and -E, once');
  const firstPort = named(['sport', 'dport', 'orig-port-src', 'orig-port-dst'])[0];
  const firstProto = named(['proto'])[0];
  if (firstPort && firstProto && firstPort.index < firstProto.index) return usage(`${firstPort.rawName} before -p: conntrack knows the port options only after it`);
  let base: string;
  const given: Partial<Record<FilterField, string>> = {};
  try {
    base = proxyURL(values.proxy);
    for (const [field, long] of FILTER_OPTIONS) {
      const v = (values as Record<string, unknown>)[long.slice(2)];
      if (typeof v === 'string') given[field] = v;
    }
    for (const [alias, long] of Object.entries(FILTER_ALIASES)) {
      const v = (values as Record<string, unknown>)[alias];
      if (typeof v !== 'string') continue;
      const field = FILTER_OPTIONS.find(([, l]) => l === long)![0];
      if (given[field] !== undefined) throw new Error(`--${alias} and ${long} name the same selection`);
      given[field] = v;
    }
    conntrackFilter(given);
  } catch (e) {
    return usage((e as Error).message);
  }
  if (command === 'flush' && Object.keys(given).length > 0) return usage('-F takes no selection (-D deletes a selection)');
  const q = new URLSearchParams();
  for (const [name, field] of CONNTRACK_PARAMS) if (given[field] !== undefined) q.set(name, given[field]);
  if (command === 'event') q.set('events', '1');
  let lines = 0;
  try {
    await fromProxy(base, `/conntrack${q.size > 0 ? `?${q}` : ''}`, (text) => {
      if (command === 'event') {
        // The proxy's warnings (events lost) go where conntrack writes its own: stderr.
        for (const line of text.split(/(?<=\n)/)) {
          if (line.startsWith('WARNING:')) err(line);
          else if (line) { lines++; out(line); }
        }
        return;
      }
      for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lines++;
      if (command !== 'flush') out(text);
    }, command === 'dump' || command === 'event' ? 'GET' : 'DELETE', stop);
  } catch (e) {
    err(`svcplane conntrack: ${base}: ${(e as Error).message}\n`);
    return 1;
  }
  // conntrack's own closing words (conntrack.c), and its exit status: -D that deleted nothing fails.
  if (command === 'flush') err('svcplane conntrack: connection tracking table has been emptied.\n');
  else if (command === 'event') err(`svcplane conntrack: ${lines} flow events have been shown.\n`);
  else err(`svcplane conntrack: ${lines} flow entries have been ${command === 'dump' ? 'shown' : 'deleted'}.\n`);
  return command === 'delete' && lines === 0 ? 1 : 0;
}

export const SHOW_HELP = `usage: svcplane show --proxy HOST:PORT iptables-save [-c] [-t TABLE]
       svcplane show --proxy HOST:PORT iptables [-t TABLE] -L|-S [CHAIN] [-n] [-v] [-x] [--line-numbers]
       svcplane show --proxy HOST:PORT ipvsadm -L|-S [-n] [--stats|--rate|--exact|-c] [-t|-u|-f SERVICE]
       svcplane show --proxy HOST:PORT ipset list|save [SET] | test SET ENTRY
       svcplane show --proxy HOST:PORT recent [LIST]      (/proc/net/xt_recent: ClientIP affinity)
       svcplane show --proxy HOST:PORT direct
       (ip6tables-save and ip6tables for IPv6)

Runs the listing command over the live rules and virtual servers of a running \`svcplane proxy\`
(HOST:PORT: its --metrics-bind-address, e.g. 127.0.0.1:10249), with the core's counters — what
the command shows on a node running kube-proxy. The kernel's own tables hold none of it. Only
listings: a command line that would change a table is refused.
`;

/** Runs `svcplane show ARGS`; returns the exit code (0 shown, 1 the proxy refused or failed, 2 usage). */
export async function runShow(argv: readonly string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const usage = (message: string): number => {
    err(`svcplane show: ${message}\n${SHOW_HELP}`);
    return 2;
  };
  if (argv[0] === '--help' || argv[0] === '-h') {
    out(SHOW_HELP);
    return 0;
  }
  let rest = [...argv];
  let proxy: string | undefined;
  if (rest[0] === '--proxy') { proxy = rest[1]; rest = rest.slice(2); } else if (rest[0]?.startsWith('--proxy=')) { proxy = rest[0].slice(8); rest = rest.slice(1); }
  if (proxy === undefined) return usage('--proxy HOST:PORT comes first (the proxy\'s --metrics-bind-address)');
  const [tool, ...args] = rest;
  if (tool === undefined || !SHOW_TOOLS.includes(tool as (typeof SHOW_TOOLS)[number])) return usage(`which listing: ${SHOW_TOOLS.join(', ')}`);
  let base: string;
  try {
    base = proxyURL(proxy);
  } catch (e) {
    return usage((e as Error).message);
  }
  const q = new URLSearchParams({ tool });
  for (const a of args) q.append('arg', a);
  try {
    await fromProxy(base, `/show?${q}`, out);
  } catch (e) {
    err(`svcplane show: ${base}: ${(e as Error).message}\n`);
    return 1;
  }
  return 0;
}
