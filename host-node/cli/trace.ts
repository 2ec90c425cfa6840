// trace.ts — `svcplane trace`: loads an iptables-restore file into a fresh dataplane and explains
// what it does with one new connection: every rule the packet visits (table, chain, rule number,
// rule text, matched or not, target) and every outcome it can have, with its exact probability,
// destination NAT and masquerade; or the trace as JSON. Reads only the rules file; never touches
// an interface, the kernel's tables or the clock.
import { readFileSync } from 'node:fs';
import { Dataplane, RestoreFailed } from '../dataplane.js';
import { tryParseIP } from '../core/words.js';
import type { ProtoName } from '../core/packet.js';
import type { TraceResult, TraceOutcome, TraceStep } from '../netfilter/trace.js';

export const TRACE_USAGE = `usage: svcplane trace --rules FILE --node-ip IP [--node-ip IP6] --src A --dst B --dport N
                      [--sport N] [--proto tcp|udp|sctp|icmp] [--from external|local] [--family 4|6] [--json]

Loads FILE as iptables-restore input (ip6tables-restore with --family 6), sends one new
connection from A to B:N through it and shows every rule visited and every possible outcome with
its exact probability. --from local sends it from the node itself (OUTPUT) instead of from
outside (PREROUTING). --node-ip names the node's addresses (addrtype LOCAL, masquerade source).
`;

export interface TraceIO {
  out(line: string): void;
  err(line: string): void;
}

const stdio: TraceIO = {
  out: (line) => process.stdout.write(line + '\n'),
  err: (line) => process.stderr.write(line + '\n'),
};

export interface TraceArgs {
  rules: string;
  nodeIPs: string[];
  src: string;
  dst: string;
  dport: number;
  sport: number;
  proto: ProtoName;
  from: 'external' | 'local';
  family: 4 | 6;
  json: boolean;
}

class UsageError extends Error {}

function port(opt: string, text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535) throw new UsageError(`${opt}: not a port number: ${JSON.stringify(text)}`);
  return n;
}

function address(opt: string, text: string): { text: string; family: 4 | 6 } {
  const ip = tryParseIP(text);
  if (!ip) throw new UsageError(`${opt}: not an IP address: ${JSON.stringify(text)}`);
  return { text, family: ip.length === 4 ? 4 : 6 };
}

/** Parses the command's arguments; throws UsageError (exit code 2) on anything wrong. */
export function parseTraceArgs(argv: readonly string[]): TraceArgs {
  const v: Partial<Record<string, string>> = {};
  const nodeIPs: string[] = [];
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const opt = argv[i]!;
    if (opt === '--json') { json = true; continue; }
    if (!['--rules', '--node-ip', '--src', '--dst', '--dport', '--sport', '--proto', '--from', '--family'].includes(opt)) {
      throw new UsageError(`unknown option ${JSON.stringify(opt)}`);
    }
    const val = argv[++i];
    if (val === undefined) throw new UsageError(`${opt} needs a value`);
    if (opt === '--node-ip') nodeIPs.push(address(opt, val).text);
    else v[opt] = val;
  }
  for (const need of ['--rules', '--src', '--dst']) if (v[need] === undefined) throw new UsageError(`${need} is required`);
  if (nodeIPs.length === 0) throw new UsageError('--node-ip is required (the node\'s own addresses)');
  const src = address('--src', v['--src']!);
  const dst = address('--dst', v['--dst']!);
  if (src.family !== dst.family) throw new UsageError('--src and --dst are of different IP families');
  const family = v['--family'] === undefined ? dst.family : v['--family'] === '4' ? 4 : v['--family'] === '6' ? 6 : 0;
  if (family === 0) throw new UsageError(`--family: 4 or 6, not ${JSON.stringify(v['--family'])}`);
  if (family !== dst.family) throw new UsageError(`--family ${family} but the addresses are IPv${dst.family}`);
  const protoText = (v['--proto'] ?? 'tcp').toLowerCase();
  if (!['tcp', 'udp', 'sctp', 'icmp', 'icmpv6'].includes(protoText)) throw new UsageError(`--proto: tcp, udp, sctp or icmp, not ${JSON.stringify(protoText)}`);
  const proto = (protoText === 'icmp' || protoText === 'icmpv6' ? (family === 6 ? 'icmpv6' : 'icmp') : protoText) as ProtoName;
  const from = v['--from'] ?? 'external';
  if (from !== 'external' && from !== 'local') throw new UsageError(`--from: external or local, not ${JSON.stringify(from)}`);
  const ported = proto === 'tcp' || proto === 'udp' || proto === 'sctp';
  if (ported && v['--dport'] === undefined) throw new UsageError(`--dport is required for ${proto}`);
  return {
    rules: v['--rules']!, nodeIPs, src: src.text, dst: dst.text,
    dport: v['--dport'] === undefined ? 0 : port('--dport', v['--dport']),
    sport: v['--sport'] === undefined ? 40000 : port('--sport', v['--sport']),
    proto, from, family, json,
  };
}

/** `n / 2^k` with common factors of two taken out ("1" when certain). */
export function exactFraction(e: TraceOutcome['exact']): string {
  let n = e.numerator;
  let k = e.denominatorLog2;
  while (k > 0 && n > 0n && (n & 1n) === 0n) { n >>= 1n; k--; }
  return k === 0 ? n.toString() : `${n}/2^${k}`;
}

export function percent(p: number): string {
  return `${(p * 100).toFixed(6).replace(/\.?0+$/, '')}%`;
}

function stepLine(s: TraceStep, width: number): string {
  const where = `${s.table}/${s.chain}`.padEnd(width);
  if (s.text === undefined) return `    ${where} end   ${s.target ?? ''}`.trimEnd();
  const num = `#${s.rule + 1}`.padEnd(5);
  const mark = s.matched ? 'match' : '  -  ';
  const target = s.matched ? `  → ${s.target ?? '(no target)'}` : '';
  return `    ${where} ${num} ${mark}  ${s.text}${target}`;
}

function outcomeLines(o: TraceOutcome, i: number): string[] {
  const what = o.verdict === 'REPLY' ? 'REPLY (rejected: a reply goes back to the sender)' :
    o.verdict === 'PASS' ? 'PASS (accepted unchanged)' : o.verdict === 'FORWARD' ? 'FORWARD (accepted, rewritten)' : o.verdict;
  const lines = [
    `  ${i + 1}. ${what}${o.reason !== 'none' ? ` reason ${o.reason}` : ''}`,
    `     probability ${percent(o.probability)} = ${exactFraction(o.exact)}`,
    `     destination NAT: ${o.to ?? 'none'}`,
    `     masquerade: ${o.masq ? 'yes (source rewritten)' : 'no'}    mark: 0x${o.mark.toString(16)}`,
  ];
  const path = o.paths[0] ?? [];
  if (path.length > 0) {
    const ds = path.map((d) => `${d.table}/${d.chain} #${d.rule + 1} ${d.taken ? 'taken' : 'not taken'} (p ${d.probability.toFixed(6)})`);
    lines.push(`     random decisions: ${ds.join(', ')}${o.paths.length > 1 ? ` (+${o.paths.length - 1} more paths)` : ''}`);
  }
  return lines;
}

/** The readable explanation of a trace. */
export function formatTrace(a: TraceArgs, r: TraceResult): string[] {
  const ported = a.proto === 'tcp' || a.proto === 'udp' || a.proto === 'sctp';
  const ep = (ip: string, p: number) => (ported ? (a.family === 6 ? `[${ip}]:${p}` : `${ip}:${p}`) : ip);
  const out = [
    `${a.proto.toUpperCase()} ${ep(a.src, a.sport)} → ${ep(a.dst, a.dport)}, a new connection from ${a.from === 'local' ? 'the node itself' : 'outside'}`,
    `rules: ${a.rules} (IPv${a.family}), node addresses ${a.nodeIPs.join(', ')}`,
    '',
    `rules visited${r.outcomes.length > 1 ? ' (first path: every random branch taken)' : ''}:`,
  ];
  const width = Math.max(0, ...r.steps.map((s) => s.table.length + s.chain.length + 1));
  let hook = '';
  for (const s of r.steps) {
    if (s.hook !== hook) {
      hook = s.hook;
      out.push(`  ${hook}`);
    }
    out.push(stepLine(s, width));
  }
  out.push('', `outcomes (${r.outcomes.length}${r.truncated ? ', list truncated' : ''}):`);
  r.outcomes.forEach((o, i) => out.push(...outcomeLines(o, i)));
  return out;
}

/** The trace as JSON (exact numerators as decimal strings). */
export function traceJSON(r: TraceResult): string {
  return JSON.stringify(r, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2);
}

/** Runs `svcplane trace ARGS`; returns the exit code (0 ok, 1 rules or trace failed, 2 usage). */
export async function runTrace(argv: readonly string[], io: TraceIO = stdio): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(TRACE_USAGE.trimEnd());
    return 0;
  }
  let a: TraceArgs;
  try {
    a = parseTraceArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`svcplane trace: ${e.message}`);
    io.err(TRACE_USAGE.trimEnd());
    return 2;
  }
  let text: string;
  try {
    text = readFileSync(a.rules, 'utf8');
  } catch (e) {
    io.err(`${a.rules}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    return 1;
  }
  const dp = await Dataplane.create({ nodeIPs: a.nodeIPs, conntrackCapacity: 256 });
  try {
    dp.iptablesRestore(text, { family: a.family });
  } catch (e) {
    if (!(e instanceof RestoreFailed)) throw e;
    io.err(e.line > 0 ? `${a.rules}:${e.line}: ${e.message}` : `${a.rules}: ${e.message}`);
    return 1;
  }
  const r = dp.trace({ src: a.src, dst: a.dst, proto: a.proto, sport: a.sport, dport: a.dport, from: a.from });
  if (a.json) io.out(traceJSON(r));
  else for (const line of formatTrace(a, r)) io.out(line);
  return 0;
}
