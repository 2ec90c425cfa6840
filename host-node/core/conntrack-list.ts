// conntrack-list.ts — flows as the kernel lists its own: one /proc/net/nf_conntrack line per flow
// (nf_conntrack_standalone.c ct_seq_show(): family and protocol names and numbers, seconds left,
// the TCP state, both tuples with [UNREPLIED] between them until a reply was seen, [ASSURED],
// mark, zone, use), and the selection `conntrack -L` makes with -f, -p, -s, -d, -r, -q, --sport
// and --dport. So the tools and habits of a node running kube-proxy (grep the table for a Service
// address, count a pod's flows) work on the flows svcplane keeps. Pure: formats and filters
// entries it is given; never reads the core.
import { tryParseIP } from './words.js';
import { said } from './packet.js';
import type { ConntrackEntry, TupleView } from './conntrack-record.js';

/** What `conntrack -L` selects by (every field optional; all given must hold). */
export interface ConntrackFilter {
  family?: 4 | 6;
  proto?: string;
  /** Original direction's source and destination (-s, -d), reply direction's (-r, -q). */
  src?: string;
  dst?: string;
  replySrc?: string;
  replyDst?: string;
  /** Original direction's ports (--sport, --dport). */
  sport?: number;
  dport?: number;
}

/** The filter's fields in `conntrack -L` option order, with their long and short names. */
export const FILTER_OPTIONS = [
  ['family', '--family', '-f'], ['proto', '--proto', '-p'], ['src', '--orig-src', '-s'], ['dst', '--orig-dst', '-d'],
  ['replySrc', '--reply-src', '-r'], ['replyDst', '--reply-dst', '-q'], ['sport', '--sport', ''], ['dport', '--dport', ''],
] as const;

const PROTO_NUMBERS: Record<string, number> = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58, sctp: 132 };
/** -p as a number, or by the other name /etc/protocols gives ICMPv6 (conntrack looks names up there). */
const PROTO_ALIASES: Record<string, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6', 132: 'sctp', 'ipv6-icmp': 'icmpv6' };

export type FilterField = (typeof FILTER_OPTIONS)[number][0];

/**
 * A filter from option values by field name (`family` as ipv4/ipv6, ports and protocol as
 * written); throws an Error naming the field (as `named` calls it: conntrack -L's long option by
 * default) for a value conntrack -L would refuse.
 */
export function conntrackFilter(values: Partial<Record<FilterField, string>>, named: (field: FilterField) => string = longOption): ConntrackFilter {
  const f: ConntrackFilter = {};
  for (const [field] of FILTER_OPTIONS) {
    const v = values[field];
    const long = named(field);
    if (v === undefined) continue;
    if (field === 'family') {
      if (v !== 'ipv4' && v !== 'ipv6') throw new Error(`${long}: ipv4 or ipv6, not ${JSON.stringify(v)}`);
      f.family = v === 'ipv4' ? 4 : 6;
    } else if (field === 'proto') {
      const lower = v.toLowerCase();
      const p = Object.hasOwn(PROTO_ALIASES, lower) ? PROTO_ALIASES[lower]! : lower;
      if (!Object.hasOwn(PROTO_NUMBERS, p)) throw new Error(`${long}: tcp, udp, sctp, icmp or icmpv6, not ${JSON.stringify(v)}`);
      f.proto = p;
    } else if (field === 'sport' || field === 'dport') {
      if (!/^\d{1,5}$/.test(v) || Number(v) > 65535) throw new Error(`${long}: not a port number: ${JSON.stringify(v)}`);
      f[field] = Number(v);
    } else {
      const b = tryParseIP(v);
      if (!b) throw new Error(`${long}: not an IP address: ${JSON.stringify(v)}`);
      // Every address sets the family, as -f does (an IPv4-mapped address is IPv6); conntrack.c
      // refuses a second, different one.
      const family = b.length === 4 ? 4 : 6;
      if (f.family !== undefined && f.family !== family) throw new Error(`${long} ${v}: mismatched address family`);
      f.family = family;
      f[field] = v;
    }
  }
  if ((f.sport !== undefined || f.dport !== undefined) && f.proto === undefined) {
    throw new Error(`${named(f.sport !== undefined ? 'sport' : 'dport')} needs ${named('proto')} (as conntrack -L)`);
  }
  // Ports are options of the tcp, udp and sctp extensions only: with ICMP conntrack knows none.
  if ((f.sport !== undefined || f.dport !== undefined) && (f.proto === 'icmp' || f.proto === 'icmpv6')) {
    throw new Error(`unknown option ${named(f.sport !== undefined ? 'sport' : 'dport')} with ${named('proto')} ${f.proto} (as conntrack -L)`);
  }
  return f;
}

/** Whether two addresses are the same, written either way, in the same family (no IPv4-mapped folding). */
function sameAddress(a: string, b: string): boolean {
  const x = tryParseIP(a), y = tryParseIP(b);
  if (!x || !y || x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

const longOption = (field: FilterField): string => FILTER_OPTIONS.find(([f]) => f === field)![1];

/**
 * A filter handed to the API as an object, checked as conntrackFilter() checks option values:
 * throws an Error naming the field for a field it does not know (a misspelt one would otherwise
 * select more flows than meant — every flow, with nothing else given) or a value of the wrong kind.
 */
export function checkedFilter(given: unknown): ConntrackFilter {
  if (given === null || typeof given !== 'object' || Array.isArray(given)) throw new Error(`a conntrack filter is an object of ${FILTER_OPTIONS.map(([f]) => f).join(', ')}`);
  const values: Partial<Record<FilterField, string>> = {};
  for (const [key, v] of Object.entries(given)) {
    if (!FILTER_OPTIONS.some(([f]) => f === key)) throw new Error(`unknown field ${JSON.stringify(key)} (${FILTER_OPTIONS.map(([f]) => f).join(', ')})`);
    if (v === undefined) continue;
    const field = key as FilterField;
    if (field === 'family') {
      if (v !== 4 && v !== 6) throw new Error(`family: 4 or 6, not ${said(v)}`);
      values.family = `ipv${v}`;
    } else if (field === 'sport' || field === 'dport') {
      if (typeof v !== 'number' || !Number.isInteger(v)) throw new Error(`${field}: not a port number: ${said(v)}`);
      values[field] = String(v);
    } else {
      if (typeof v !== 'string') throw new Error(`${field}: not a string: ${said(v)}`);
      values[field] = v;
    }
  }
  return conntrackFilter(values, (field) => field);
}

/** Whether `e` is one of the flows `f` selects. */
export function conntrackMatches(e: ConntrackEntry, f: ConntrackFilter): boolean {
  return (f.family === undefined || e.family === f.family)
    && (f.proto === undefined || e.proto === f.proto)
    && (f.src === undefined || sameAddress(e.original.src, f.src))
    && (f.dst === undefined || sameAddress(e.original.dst, f.dst))
    && (f.replySrc === undefined || sameAddress(e.reply.src, f.replySrc))
    && (f.replyDst === undefined || sameAddress(e.reply.dst, f.replyDst))
    && (f.sport === undefined || (e.original.icmpType === undefined && e.original.sport === f.sport))
    && (f.dport === undefined || (e.original.icmpType === undefined && e.original.dport === f.dport));
}

/** An address as the kernel's %pI4 / %pI6 print it (IPv6 in eight groups of four digits). */
export function procAddress(ip: string): string {
  const b = tryParseIP(ip);
  if (b === null || b.length === 4) return ip;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16).padStart(4, '0'));
  return groups.join(':');
}

/**
 * print_tuple(): addresses (as `address` prints them), then ports (or ICMP type, code, id: the
 * core keeps no code, 0).
 */
function tuple(t: TupleView, address: (ip: string) => string = procAddress): string {
  const ports = t.icmpType !== undefined ? `type=${t.icmpType} code=0 id=${t.sport}` : `sport=${t.sport} dport=${t.dport}`;
  return `src=${address(t.src)} dst=${address(t.dst)} ${ports} `;
}

/** The protocol, the seconds left, the TCP state, both tuples and their flags (after `[UNREPLIED]`, `[ASSURED]` a space). */
function flowText(e: ConntrackEntry, nowMs: number, address?: (ip: string) => string, state = true): string {
  const left = Math.max(0, Math.floor((e.expiresMs - nowMs) / 1000));
  return `${e.proto.padEnd(8)} ${PROTO_NUMBERS[e.proto] ?? 0} ${left} ${state && e.state !== undefined ? `${e.state} ` : ''}`
    + `${tuple(e.original, address)}${e.seenReply ? '' : '[UNREPLIED] '}${tuple(e.reply, address)}${e.assured ? '[ASSURED] ' : ''}`;
}

/**
 * An event as `conntrack -E` prints the kernel's (conntrack-tools, libnetfilter_conntrack's
 * default output; checked against conntrack v1.4.7, and against the kernel's own events in
 * tests/kernel/conntrack-differential.test.ts): the kind right-aligned in nine columns, then the
 * flow as at its event, addresses as inet_ntop writes them, the TCP state unless an UPDATE left it
 * as it was (`stateChanged` false: ctnetlink then sends no protocol info), and the connmark only
 * when it is not zero (ctnetlink sends it then).
 */
export function eventLine(kind: 'NEW' | 'UPDATE' | 'DESTROY', e: ConntrackEntry, nowMs: number, stateChanged = true): string {
  const text = flowText(e, nowMs, (ip) => ip, stateChanged) + (e.mark ? `mark=${e.mark >>> 0}` : '');
  return `${`[${kind}]`.padStart(9)} ${text.trimEnd()}`;
}

/**
 * `e` as its /proc/net/nf_conntrack line at `nowMs` (no newline). The kernel prints SCTP's state
 * after the seconds; the core tracks SCTP as a plain stream and has none to print. `use` is 1:
 * the core counts no references.
 */
export function procLine(e: ConntrackEntry, nowMs: number): string {
  const l3 = e.family === 4 ? 'ipv4     2' : 'ipv6     10';
  return `${l3} ${flowText(e, nowMs)}mark=${e.mark >>> 0} zone=0 use=1`;
}
