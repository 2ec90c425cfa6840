// conntrack.ts — `svcplane conntrack --proxy HOST:PORT`: the flows a running proxy holds, listed as
// `conntrack -L` lists the kernel's on a node running kube-proxy — with its selection options
// (-f, -p, -s, -d, -r, -q, --sport, --dport) — one /proc/net/nf_conntrack line per flow, then the
// count on stderr. The kernel's table does not hold the flows svcplane serves, so this is where
// an operator looks for them. Reads the proxy's /conntrack (io/proxy-inspect.ts) as it streams;
// never changes a flow.
import { parseArgs } from 'node:util';
import { conntrackFilter, FILTER_OPTIONS, type FilterField } from '../core/conntrack-list.js';
import { proxyURL } from './trace.js';

export const CONNTRACK_HELP = `usage: svcplane conntrack --proxy HOST:PORT [-L] [-f ipv4|ipv6] [-p PROTO] [-s ADDR] [-d ADDR]
                          [-r ADDR] [-q ADDR] [--sport N] [--dport N]

Lists the flows of a running \`svcplane proxy\` (HOST:PORT: its --metrics-bind-address, e.g.
127.0.0.1:10249) as conntrack -L lists the kernel's: one /proc/net/nf_conntrack line per flow
(protocol, seconds left, TCP state, the original and reply tuples, [UNREPLIED], [ASSURED], mark),
then "N flow entries have been shown." on stderr. The kernel's own table holds none of them.
  -f, --family      ipv4 or ipv6
  -p, --proto       tcp, udp, sctp, icmp or icmpv6
  -s, --orig-src    original source (the client)
  -d, --orig-dst    original destination (a Service address, or the node's for a NodePort)
  -r, --reply-src   reply source (the endpoint the flow was sent to)
  -q, --reply-dst   reply destination (the client, or the masquerade address)
  --sport, --dport  original ports (with -p)
`;

/** How long a proxy has to start answering. */
const TIMEOUT_MS = 10_000;

/** The query parameter of each filter field (io/proxy-inspect.ts CONNTRACK_PARAMS). */
const PARAM: Record<FilterField, string> = {
  family: 'family', proto: 'proto', src: 'src', dst: 'dst', replySrc: 'reply-src', replyDst: 'reply-dst', sport: 'sport', dport: 'dport',
};

/** Runs `svcplane conntrack ARGS`; returns the exit code (0 listed, 1 the proxy failed, 2 usage). */
export async function runConntrack(argv: readonly string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const options = Object.fromEntries(FILTER_OPTIONS.map(([, long, short]) => [long.slice(2), { type: 'string' as const, ...(short ? { short: short.slice(1) } : {}) }]));
  const { values } = parseArgs({
    args: [...argv], strict: true, allowPositionals: false,
    options: { ...options, proxy: { type: 'string' }, dump: { type: 'boolean', short: 'L' }, help: { type: 'boolean', short: 'h' } },
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
  let base: string;
  const given: Partial<Record<FilterField, string>> = {};
  try {
    base = proxyURL(values.proxy);
    for (const [field, long] of FILTER_OPTIONS) {
      const v = (values as Record<string, unknown>)[long.slice(2)];
      if (typeof v === 'string') given[field] = v;
    }
    conntrackFilter(given);
  } catch (e) {
    return usage((e as Error).message);
  }
  const q = new URLSearchParams();
  for (const [field, v] of Object.entries(given)) q.set(PARAM[field as FilterField], v);
  const url = `${base}/conntrack${q.size > 0 ? `?${q}` : ''}`;
  let lines = 0;
  try {
    // The timeout is for the answer to start: a large table then streams as long as it takes.
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error(`no answer in ${TIMEOUT_MS / 1000} s`)), TIMEOUT_MS);
    const res = await fetch(url, { signal: abort.signal }).finally(() => clearTimeout(timer));
    if (res.status === 404) throw new Error('no /conntrack here (is this a svcplane proxy\'s --metrics-bind-address?)');
    if (!res.ok || !res.body) throw new Error(`${res.status}: ${(await res.text()).trim()}`);
    const decoder = new TextDecoder();
    for await (const chunk of res.body) {
      const text = decoder.decode(chunk as Uint8Array, { stream: true });
      for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lines++;
      out(text);
    }
    out(decoder.decode());
  } catch (e) {
    const x = e as Error & { cause?: { code?: string } };
    err(`svcplane conntrack: ${base}: ${x.cause?.code ?? x.message}\n`);
    return 1;
  }
  err(`svcplane conntrack: ${lines} flow entries have been shown.\n`);
  return 0;
}
