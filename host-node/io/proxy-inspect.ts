// proxy-inspect.ts — what a running proxy shows of its core on the metrics address, so a node's
// operator can see why a packet goes where it goes and which flows the node holds:
//   /trace      a packet (src, dst, dport, sport, proto, flags, from; by default a new
//               connection's SYN) traced through the live core — the rules, IPVS table or direct
//               table the last sync wrote, with the flow table, affinity stamps and recent lists
//               as they are at the proxy's clock — as the JSON document `svcplane trace --json`
//               prints, under the proxy's mode and node addresses (`svcplane trace --proxy`);
//   /conntrack  the flows, as /proc/net/nf_conntrack lists the kernel's (core/conntrack-list.ts),
//               selected as `conntrack -L` selects (family, proto, src, dst, reply-src, reply-dst,
//               sport, dport), a slice of the table at a time with packets between slices
//               (`svcplane conntrack --proxy` reads it); DELETE, from the node itself only,
//               deletes the flows so selected as `conntrack -D` does and lists them
//               (`svcplane conntrack -D --proxy`); `?events` streams their events as
//               `conntrack -E` does (conntrack-events.ts; `svcplane conntrack -E --proxy`).
//   /show       the listing commands of a kube-proxy node (iptables-save, iptables -L / -S, their
//               ip6tables forms, ipvsadm -L / -S) over the live rules and virtual servers, with
//               the core's counters (read-only-tools.ts; `svcplane show --proxy` runs them),
//               made a slice at a time with packets between slices, over one ruleset.
// Nothing else changes the core (a trace runs on its side path); a bad parameter is a 400 that
// names it, never an exception in the proxy.
import type { Dataplane, TraceQuery } from '../dataplane.js';
import type { ProtoName } from '../core/packet.js';
import type { ConntrackEntry } from '../core/conntrack-record.js';
import { conntrackFilter, conntrackMatches, procLine, type ConntrackFilter, type FilterField } from '../core/conntrack-list.js';
import { traceJSONValue, type TraceResult } from '../netfilter/trace.js';
import { RouteReply, type Route } from './metrics.js';
import type { ConntrackEventFeed } from './conntrack-events.js';
import { showTool, SHOW_TOOLS, ToolRefused, type ShowOutput, type ShowTool } from './read-only-tools.js';

/** The parameters /trace reads. */
export const TRACE_PARAMS = ['src', 'dst', 'dport', 'sport', 'proto', 'flags', 'from'] as const;
const PROTOS: readonly string[] = ['tcp', 'udp', 'sctp', 'icmp', 'icmpv6'];
/** Outcomes explored at most per request: a Service's endpoints, each one leaf. */
export const TRACE_MAX_OUTCOMES = 4096;

/** What /trace answers: the trace, and what it was traced against. */
export interface ProxyTrace {
  mode: string;
  nodeIPs: string[];
  /** The proxy's clock (ms) the trace read affinity and conntrack at. */
  nowMs: number;
  result: TraceResult;
}

/** A bad request: its message is the 400's body. */
class BadQuery extends Error {}

/** Plain text with its final newline. */
const text = (status: number, body: string): RouteReply =>
  new RouteReply(status, 'text/plain; charset=utf-8', body === '' || body.endsWith('\n') ? body : `${body}\n`);

/** Refuses a parameter not in `allowed` (a misspelt one would be ignored otherwise), or one given twice unless `repeatable`. */
function onlyParams(q: URLSearchParams, allowed: readonly string[], repeatable: readonly string[] = []): void {
  for (const k of new Set(q.keys())) {
    if (!allowed.includes(k)) throw new BadQuery(`unknown parameter ${JSON.stringify(k)} (${allowed.join(', ')})`);
    if (!repeatable.includes(k) && q.getAll(k).length > 1) throw new BadQuery(`${k} given twice`);
  }
}

/** `answer()`, or a 400 for the BadQuery (or, with `refused`, the other error kind) it throws. */
function orBadRequest(answer: () => unknown, refused?: new (...a: never[]) => Error): unknown {
  try {
    return answer();
  } catch (e) {
    if (e instanceof BadQuery || (refused && e instanceof refused)) return text(400, (e as Error).message);
    throw e;
  }
}

function port(q: URLSearchParams, name: 'dport' | 'sport'): number | undefined {
  const v = q.get(name);
  if (v === null) return undefined;
  if (!/^\d{1,5}$/.test(v) || Number(v) > 65535) throw new BadQuery(`${name}: not a port number: ${JSON.stringify(v)}`);
  return Number(v);
}

/** The trace query of `q`'s parameters; throws BadQuery naming the parameter at fault. */
export function traceQueryOf(q: URLSearchParams): TraceQuery {
  onlyParams(q, TRACE_PARAMS);
  const src = q.get('src'), dst = q.get('dst');
  if (!src) throw new BadQuery('src is required (the client address)');
  if (!dst) throw new BadQuery('dst is required (a Service address, or a node address for a NodePort)');
  const proto = (q.get('proto') ?? 'tcp').toLowerCase();
  if (!PROTOS.includes(proto)) throw new BadQuery(`proto: tcp, udp, sctp or icmp, not ${JSON.stringify(proto)}`);
  const v6 = dst.includes(':');
  const p = (proto === 'icmp' || proto === 'icmpv6' ? (v6 ? 'icmpv6' : 'icmp') : proto) as ProtoName;
  const from = q.get('from') ?? 'external';
  if (from !== 'external' && from !== 'local') throw new BadQuery(`from: external or local, not ${JSON.stringify(from)}`);
  const dport = port(q, 'dport'), sport = port(q, 'sport');
  if ((p === 'tcp' || p === 'udp' || p === 'sctp') && dport === undefined) throw new BadQuery(`dport is required for ${p}`);
  const flags = q.get('flags');
  if (flags !== null && (p !== 'tcp' || !/^[FSRPAUEC]+$/i.test(flags))) throw new BadQuery(`flags: TCP flags as letters of FSRPAUEC, with proto tcp, not ${JSON.stringify(flags)}`);
  return { src, dst, proto: p, from, ...(dport !== undefined ? { dport } : {}), sport: sport ?? 40000, ...(flags !== null ? { flags: flags.toUpperCase() } : {}) };
}

/** The /trace route of a proxy whose core is `dp`, read at `clock()`. */
export function traceRoute(dp: Dataplane, mode: string, nodeIPs: readonly string[], clock: () => number): Route {
  return (params) => orBadRequest(() => {
    const query = traceQueryOf(params);
    const nowMs = clock();
    let result: TraceResult;
    try {
      result = dp.trace({ ...query, nowMs, maxOutcomes: TRACE_MAX_OUTCOMES });
    } catch (e) {
      // dp.trace refuses what it cannot build a packet of (an address, mixed families): the caller's fault.
      throw new BadQuery((e as Error).message);
    }
    const body: ProxyTrace = { mode, nodeIPs: [...nodeIPs], nowMs, result };
    return new RouteReply(200, 'application/json', `${JSON.stringify(body, traceJSONValue, 2)}\n`);
  });
}

/** /conntrack's parameters: conntrack -L's long options without their dashes (orig-src as src). */
export const CONNTRACK_PARAMS: ReadonlyArray<readonly [string, FilterField]> = [
  ['family', 'family'], ['proto', 'proto'], ['src', 'src'], ['dst', 'dst'], ['reply-src', 'replySrc'], ['reply-dst', 'replyDst'],
  ['sport', 'sport'], ['dport', 'dport'],
];
/** Flows listed between two turns of the event loop (the packet loop runs between them). */
export const CONNTRACK_SLICE = 2048;

/** The conntrack -L filter of `q`'s parameters; throws BadQuery naming the parameter at fault. */
export function conntrackQueryOf(q: URLSearchParams): ConntrackFilter {
  onlyParams(q, CONNTRACK_PARAMS.map(([name]) => name));
  const values: Partial<Record<FilterField, string>> = {};
  for (const [name, field] of CONNTRACK_PARAMS) if (q.has(name)) values[field] = q.get(name)!;
  try {
    return conntrackFilter(values, (field) => CONNTRACK_PARAMS.find(([, f]) => f === field)![0]);
  } catch (e) {
    throw new BadQuery((e as Error).message);
  }
}

/**
 * /proc lines of the flows `step` gives, a slice of the table (CONNTRACK_SLICE slots) per turn of
 * the event loop. With `whole`, a client that goes away midway does not stop it: the rest of the
 * table is still gone through (a deletion is never left half done), then `done` hears how many
 * flows it gave.
 */
async function* flowLines(clock: () => number, step: (from: number, nowMs: number) => { flows: ConntrackEntry[]; next: number | null }, whole = false, done: (n: number) => void = () => {}): AsyncGenerator<string> {
  let from: number | null = 0, count = 0;
  const slice = (): string => {
    const nowMs = clock();
    const s = step(from!, nowMs);
    from = s.next;
    count += s.flows.length;
    let text = '';
    for (const e of s.flows) text += `${procLine(e, nowMs)}\n`;
    return text;
  };
  try {
    while (from !== null) {
      const text = slice();
      if (text) yield text;
      if (from !== null) await new Promise((r) => setImmediate(r));
    }
  } finally {
    while (whole && from !== null) {
      slice();
      if (from !== null) await new Promise((r) => setImmediate(r));
    }
    done(count);
  }
}

/**
 * The /conntrack route of a proxy whose core is `dp`, read at `clock()`: GET lists the flows,
 * DELETE deletes them (`conntrack -D`) and lists those it deleted — only for a request from the
 * node itself, as only the node's own administrator runs conntrack -D on a kube-proxy node; a
 * metrics address bound wider still lists, and answers a DELETE from elsewhere with 403.
 * `deleted` hears how many flows each deletion took, once it has gone through the table.
 */
export function conntrackRoute(dp: Dataplane, clock: () => number, deleted: (n: number) => void = () => {}, events?: ConntrackEventFeed): Route {
  return (params, request) => {
    if (request.method !== 'DELETE' && params.has('events')) {
      // `?events`: conntrack -E, the events of the flows the rest selects, until the client goes.
      return orBadRequest(() => {
        const q = new URLSearchParams(params);
        q.delete('events');
        if (params.getAll('events').some((v) => v !== '' && v !== '1')) throw new BadQuery('events: give it alone (events or events=1)');
        const filter = conntrackQueryOf(q);
        if (!events) throw new BadQuery('events: this proxy streams no events');
        return events.listen(filter);
      });
    }
    if (request.method !== 'DELETE') {
      return orBadRequest(() => {
        const f = conntrackQueryOf(params);
        return flowLines(clock, (from, nowMs) => {
          const s = dp.conntrackFrom(from, CONNTRACK_SLICE, nowMs);
          return { flows: s.flows.filter((e) => conntrackMatches(e, f)), next: s.next };
        });
      });
    }
    if (!request.loopback) return text(403, 'deleting flows: only from the node itself (a loopback address)');
    // The filter is the query string alone: a body (a filter the route would not read, or one cut
    // short) deletes nothing.
    if (request.body) return text(400, 'deleting flows: the filter goes in the query string; a request with a body deletes nothing');
    return orBadRequest(() => {
      const f = conntrackQueryOf(params);
      return flowLines(clock, (from, nowMs) => dp.conntrackDeleteFrom(from, CONNTRACK_SLICE, f, nowMs), true, deleted);
    });
  };
}

/** Work done on a listing between two turns of the event loop (ms of the proxy's thread). */
export const SHOW_SLICE_MS = 4;
/** Times a listing is begun again after a restore replaced its rules midway, before it is made at once. */
const SHOW_RESTARTS = 2;

/**
 * A listing made a slice at a time, packets going on between slices: 900 ms of `iptables -t nat
 * -nvL` at 20,000 Services in one piece would hold every packet that long (the TUN queue holds a
 * few hundred). It lists one ruleset, as the kernel's listing copies one table: when a restore
 * replaced the rules midway, it begins again, and after SHOW_RESTARTS it is made in one piece.
 * Resolves to the whole text (or the tool's refusal, if the restore removed what it lists).
 */
export async function pacedShow(first: ShowOutput, again: () => ShowOutput, now: () => number = () => performance.now()): Promise<RouteReply> {
  let out = first;
  for (let restarts = 0; ; restarts++) {
    // Each slice's pieces joined as it ends: 200,000 small strings kept to the end would all
    // reach the old generation, and a 20k-Service listing then cost a full collection of ~0.25 s.
    const slices: string[] = [];
    let slice: string[] = [];
    let since = now(), n = 0, live = true;
    for (const piece of out.pieces) {
      slice.push(piece);
      if (restarts < SHOW_RESTARTS && (++n & 31) === 0 && now() - since >= SHOW_SLICE_MS) {
        slices.push(slice.join(''));
        slice = [];
        await new Promise((r) => setImmediate(r));
        if (!out.current()) {
          live = false;
          break;
        }
        since = now();
      }
    }
    slices.push(slice.join(''));
    if (live) return text(200, slices.join(''));
    try {
      out = again();
    } catch (e) {
      if (e instanceof ToolRefused) return text(400, e.message);
      throw e;
    }
  }
}

/** The /show route: `?tool=iptables&arg=-t&arg=nat&arg=-nvL` runs that command line over `dp`. */
export function showRoute(dp: Dataplane): Route {
  return (params) => orBadRequest(() => {
    onlyParams(params, ['tool', 'arg'], ['arg']);
    const tool = params.get('tool');
    if (tool === null || !(SHOW_TOOLS as readonly string[]).includes(tool)) throw new BadQuery(`tool: one of ${SHOW_TOOLS.join(', ')}`);
    const args = params.getAll('arg');
    const make = (): ShowOutput => showTool(dp, tool as ShowTool, args);
    // A command line it refuses is a 400 at once; the listing is made over the next turns.
    return pacedShow(make(), make);
  }, ToolRefused);
}
