// trace.ts — `svcplane trace`: loads an iptables-restore file, or the rules kube-proxy would write
// for a manifests file or directory, into a fresh dataplane and explains what it does with one new
// connection: every rule the packet visits (table, chain, rule number, rule text, matched or not,
// target) and every outcome it can have, with its exact probability, destination NAT and
// masquerade; or the trace as JSON. With --name it first resolves the name through the cluster DNS
// records of the manifests (the question, the records found) and traces a packet to every address
// it gave. With --proxy it asks a running proxy's /trace (io/proxy-inspect.ts) instead. Reads only
// the given files or that one URL; never touches an interface, the kernel's tables or the clock.
import { readFileSync } from 'node:fs';
import { Dataplane, RestoreFailed } from '../dataplane.js';
import { tryParseIP } from '../core/words.js';
import type { ProtoName } from '../core/packet.js';
import { stepLabel, traceJSONValue, type TraceResult, type TraceOutcome, type TraceStep, type IpvsTraceStep } from '../netfilter/trace.js';
import type { TableName } from '../netfilter/index.js';
import type { NameTrace, DnsQueryTrace } from '../dns/trace.js';
import { formatIssue } from '../kube/objects.js';
import { readManifestSet } from './dns.js';
import type { ProxyTrace } from '../io/proxy-inspect.js';
import { fromProxy, proxyURL } from './inspect.js';
import { SCHEDULERS, isScheduler } from '../ipvs/program.js';

export const TRACE_USAGE = `usage: svcplane trace --rules FILE [--noflush] --node-ip IP [--node-ip IP6] --src A --dst B --dport N
                      [--sport N] [--proto tcp|udp|sctp|icmp] [--flags S] [--from external|local] [--family 4|6] [--json]
       svcplane trace --manifests PATH [--mode iptables|ipvs|direct] [--ipvs-scheduler S] [--service-cidr CIDR]...
                      --node-ip IP --src A (--dst B | --name NAME) [--dport N] [...]
       svcplane trace --proxy HOST:PORT --src A --dst B --dport N [--sport N] [--proto P] [--from F] [--json]

Loads FILE as iptables-restore input (ip6tables-restore with --family 6; with --noflush as
iptables-restore --noflush reads it, as \`svcplane render --with-jumps\` output wants), or the
rules kube-proxy would write for the Services and EndpointSlices in PATH (a file or directory),
sends one new connection from A to B:N through it and shows every rule visited and every possible
outcome with its exact probability (--flags: the TCP flags, letters of FSRPAUEC; default S, a new
connection). --from local sends it from the node itself (OUTPUT) instead
of from outside (PREROUTING). --node-ip names the node's addresses (addrtype LOCAL, masquerade
source).
--name resolves NAME through PATH's cluster DNS records (A, AAAA for an IPv6 --src, or SRV for a
_port._proto. name, whose port replaces --dport) and traces a connection to every address found.
--mode ipvs traces kube-proxy's ipvs mode instead (its ipsets, virtual servers and iptables rules;
scheduler rr unless --ipvs-scheduler names another); --mode direct the core's direct service table
(with --service-cidr, as a proxy given the same range: a new flow to an address of it that no
Service holds is dropped).
--proxy asks a running \`svcplane proxy\` (its --metrics-bind-address, e.g. 127.0.0.1:10249) to
trace the connection through its live core: the rules, IPVS or direct table of its last sync,
with its conntrack table, affinity and recent lists as they are now. Nothing in the proxy changes.
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
  /** An iptables-restore file, or "" with manifests. */
  rules: string;
  /** A manifests file or directory (kube-proxy's rules and the DNS records), or "". */
  manifests: string;
  /** A running proxy's metrics address ("http://host:port") to trace through, or "". */
  proxy: string;
  /** A name to resolve first (dst is then each address found), or "". */
  name: string;
  nodeIPs: string[];
  src: string;
  dst: string;
  dport: number;
  sport: number;
  proto: ProtoName;
  /** TCP flags as letters (buildPacket's), 'S' unless given. */
  flags: string;
  from: 'external' | 'local';
  family: 4 | 6;
  json: boolean;
  /** Read the rules file as iptables-restore --noflush does (a table's blocks edit it in turn). */
  noflush: boolean;
  /** With manifests: which of kube-proxy's modes to trace, and the ipvs scheduler. */
  mode: 'iptables' | 'ipvs' | 'direct';
  scheduler: string;
  /** The direct mode's service CIDRs (svcplane proxy --service-cidr). */
  serviceCIDRs: string[];
}

class UsageError extends Error {}

/** The tables a trace walks, in hook priority order. */
const TABLES: readonly TableName[] = ['raw', 'mangle', 'nat', 'filter'];

function port(opt: string, text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535) throw new UsageError(`${opt}: not a port number: ${JSON.stringify(text)}`);
  return n;
}

function cidr(opt: string, text: string): string {
  const slash = text.indexOf('/');
  const ip = slash > 0 ? tryParseIP(text.slice(0, slash)) : null;
  const bits = Number(text.slice(slash + 1));
  if (!ip || !/^\d{1,3}$/.test(text.slice(slash + 1)) || bits > ip.length * 8) throw new UsageError(`${opt}: not a CIDR: ${JSON.stringify(text)}`);
  return text;
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
  const serviceCIDRs: string[] = [];
  let json = false;
  let noflush = false;
  for (let i = 0; i < argv.length; i++) {
    const opt = argv[i]!;
    if (opt === '--json') { json = true; continue; }
    if (opt === '--noflush') { noflush = true; continue; }
    if (!['--rules', '--manifests', '--proxy', '--name', '--node-ip', '--src', '--dst', '--dport', '--sport', '--proto', '--flags', '--from', '--family', '--mode', '--ipvs-scheduler', '--service-cidr'].includes(opt)) {
      throw new UsageError(`unknown option ${JSON.stringify(opt)}`);
    }
    const val = argv[++i];
    if (val === undefined) throw new UsageError(`${opt} needs a value`);
    if (opt === '--node-ip') nodeIPs.push(address(opt, val).text);
    else if (opt === '--service-cidr') serviceCIDRs.push(...val.split(',').map((c) => cidr(opt, c.trim())));
    else if (v[opt] !== undefined) throw new UsageError(`${opt} given twice`);
    else v[opt] = val;
  }
  let proxy = '';
  try {
    if (v['--proxy'] !== undefined) proxy = proxyURL(v['--proxy']);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (proxy) {
    // The proxy knows its rules, mode and node addresses.
    const other = ['--rules', '--manifests', '--name', '--mode', '--ipvs-scheduler', '--family'].find((o) => v[o] !== undefined)
      ?? (nodeIPs.length > 0 ? '--node-ip' : noflush ? '--noflush' : undefined);
    if (other) throw new UsageError(`--proxy and ${other}: the proxy traces with its own rules and addresses`);
  }
  if (v['--rules'] === undefined && v['--manifests'] === undefined && !proxy) throw new UsageError('--rules is required (or --manifests for the rules kube-proxy would write, or --proxy for a running proxy)');
  if (v['--rules'] !== undefined && v['--manifests'] !== undefined) throw new UsageError('--rules and --manifests: give one of them');
  if (v['--dst'] === undefined && v['--name'] === undefined) throw new UsageError('--dst is required (or --name to resolve)');
  if (v['--dst'] !== undefined && v['--name'] !== undefined) throw new UsageError('--dst and --name: give one of them');
  if (v['--name'] !== undefined && v['--manifests'] === undefined) throw new UsageError('--name needs --manifests (the cluster DNS records)');
  if (noflush && v['--rules'] === undefined) throw new UsageError('--noflush needs --rules (it says how to read the rules file)');
  const mode = v['--mode'] ?? 'iptables';
  if (mode !== 'iptables' && mode !== 'ipvs' && mode !== 'direct') throw new UsageError(`--mode: iptables, ipvs or direct, not ${JSON.stringify(mode)}`);
  if (v['--mode'] !== undefined && v['--manifests'] === undefined) throw new UsageError('--mode needs --manifests (--rules are iptables rules already)');
  const scheduler = v['--ipvs-scheduler'] ?? 'rr';
  if (v['--ipvs-scheduler'] !== undefined && mode !== 'ipvs') throw new UsageError('--ipvs-scheduler needs --mode ipvs');
  if (!isScheduler(scheduler)) throw new UsageError(`--ipvs-scheduler: one of ${SCHEDULERS.join(', ')}, not ${JSON.stringify(scheduler)}`);
  if (serviceCIDRs.length > 0 && mode !== 'direct') throw new UsageError('--service-cidr needs --mode direct (kube-proxy\'s iptables and ipvs rules name no service range)');
  if (v['--src'] === undefined) throw new UsageError('--src is required');
  if (nodeIPs.length === 0 && !proxy) throw new UsageError('--node-ip is required (the node\'s own addresses)');
  const src = address('--src', v['--src']!);
  // With --name the destinations come from DNS, in --src's family.
  const dst = v['--dst'] !== undefined ? address('--dst', v['--dst']) : { text: '', family: src.family };
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
  const flags = (v['--flags'] ?? 'S').toUpperCase();
  if (v['--flags'] !== undefined && proto !== 'tcp') throw new UsageError('--flags needs --proto tcp');
  if (!/^[FSRPAUEC]+$/.test(flags)) throw new UsageError(`--flags: TCP flags as letters of FSRPAUEC (SA for SYN+ACK), not ${JSON.stringify(v['--flags'])}`);
  const srvName = /^_[^.]+\._[^.]+\./.test(v['--name'] ?? '');
  if (ported && v['--dport'] === undefined && !srvName) throw new UsageError(`--dport is required for ${proto}`);
  return {
    rules: v['--rules'] ?? '', manifests: v['--manifests'] ?? '', proxy, name: v['--name'] ?? '', nodeIPs, src: src.text, dst: dst.text,
    dport: v['--dport'] === undefined ? 0 : port('--dport', v['--dport']),
    sport: v['--sport'] === undefined ? 40000 : port('--sport', v['--sport']),
    proto, flags, from, family, json, noflush, mode, scheduler, serviceCIDRs,
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
  if (o.existing) {
    lines.push(`     conntrack: an existing connection (ctstate ${o.ctstate ?? '?'}): its NAT applies, the nat rules are not consulted`);
  }
  if (o.decidedBy.length > 0) lines.push('     decided by:', ...o.decidedBy.map((s) => `       ${decidedLine(s)}`));
  return lines;
}

/** `nat/KUBE-SEP-X #2 DNAT  -A KUBE-SEP-X …`, or `filter/FORWARD end policy DROP`. */
function decidedLine(s: TraceStep): string {
  return s.text === undefined ? stepLabel(s) : `${stepLabel(s)}  ${s.text}`;
}

function ipvsLines(v: IpvsTraceStep): string[] {
  if (v.service === undefined) return ['  IPVS: no virtual service for this destination'];
  const how = v.kind === 'connection' ? 'an existing connection decides'
    : v.kind === 'template' ? 'a persistence template decides'
      : v.kind === 'no-destination' ? 'no destination available'
        : `scheduler ${v.scheduler} picks`;
  const lines = [`  IPVS ${v.service}${v.persistent !== undefined ? ` (persistent ${v.persistent}s)` : ''}: ${how}`];
  for (const c of v.choices) lines.push(`    → ${c.to}  (p ${c.probability.toFixed(6)})`);
  return lines;
}

/** Unreferenced chains a note names before it gives their count. */
const UNREFERENCED_SHOWN = 4;

/**
 * The note for user chains no rule jumps to (`table/chain`): their rules never see a packet. The
 * common cause is kube-proxy's restore payload read alone: kube-proxy adds the jumps from the
 * built-in chains apart from it, and `svcplane render` prints them only with --with-jumps.
 */
function unreferencedNote(chains: readonly string[]): string[] {
  if (chains.length === 0) return [];
  const shown = chains.slice(0, UNREFERENCED_SHOWN).join(', ');
  const more = chains.length > UNREFERENCED_SHOWN ? ` (+${chains.length - UNREFERENCED_SHOWN} more)` : '';
  const lines = [`note: no rule jumps to ${shown}${more}, so no packet reaches their rules`];
  if (chains.some((c) => c.includes('/KUBE-'))) {
    lines.push('      (kube-proxy adds its jumps from the built-in chains apart from its restore text;',
      '      `svcplane render --with-jumps` prints them too: trace that with --noflush)');
  }
  return lines;
}

/**
 * The readable explanation of a trace; `unreferenced`: user chains no rule jumps to
 * (`table/chain`); `rulesLine`: what was traced through, when not the arguments' rules or manifests.
 */
export function formatTrace(a: TraceArgs, r: TraceResult, unreferenced: readonly string[] = [], rulesLine?: string): string[] {
  const ported = a.proto === 'tcp' || a.proto === 'udp' || a.proto === 'sctp';
  const ep = (ip: string, p: number) => (ported ? (a.family === 6 ? `[${ip}]:${p}` : `${ip}:${p}`) : ip);
  const out = [
    `${a.proto.toUpperCase()} ${ep(a.src, a.sport)} → ${ep(a.dst, a.dport)}, a new connection from ${a.from === 'local' ? 'the node itself' : 'outside'}`,
    rulesLine ?? `rules: ${a.rules || (a.mode === 'direct' ? `the direct service table for ${a.manifests}` : `kube-proxy's${a.mode === 'ipvs' ? ` ipvs mode (${a.scheduler})` : ''} for ${a.manifests}`)} (IPv${a.family}), node addresses ${a.nodeIPs.join(', ')}`,
    ...unreferencedNote(unreferenced),
    '',
    `rules visited${r.outcomes.length > 1 ? ' (first path: every random branch taken)' : ''}:`,
  ];
  const width = Math.max(0, ...r.steps.map((s) => s.table.length + s.chain.length + 1));
  // IPVS takes the packet at the end of the hook it runs in: INPUT from outside, OUTPUT from the node.
  const ipvsHook = a.from === 'local' ? 'OUTPUT' : 'INPUT';
  let ipvs = r.ipvs ? ipvsLines(r.ipvs) : [];
  let hook = '';
  for (const s of r.steps) {
    if (s.hook !== hook) {
      if (hook === ipvsHook) {
        out.push(...ipvs);
        ipvs = [];
      }
      hook = s.hook;
      out.push(`  ${hook}`);
    }
    out.push(stepLine(s, width));
  }
  out.push(...ipvs);
  out.push('', `outcomes (${r.outcomes.length}${r.truncated ? ', list truncated' : ''}):`);
  r.outcomes.forEach((o, i) => out.push(...outcomeLines(o, i)));
  return out;
}

/** The trace as JSON (exact numerators as decimal strings, message bytes as hex). */
export function traceJSON(r: TraceResult | NameTrace<TraceResult>): string {
  return JSON.stringify(r, traceJSONValue, 2);
}

function queryLines(q: DnsQueryTrace): string[] {
  const head = `  ${q.question.type} ${q.question.name} → `;
  if (q.outcome !== 'answered') return [`${head}${q.outcome === 'upstream' ? 'not the cluster zone: forwarded upstream' : `dropped (${q.drop})`}`];
  const flags = [q.aa ? 'aa' : '', q.tc ? 'tc' : ''].filter((f) => f).join(' ');
  const lines = [`${head}${q.rcode}${flags ? ` (${flags})` : ''}, ${q.records.length} record${q.records.length === 1 ? '' : 's'} found`];
  for (const r of q.records) lines.push(`      ${r.name} ${r.ttl} ${r.type} ${r.data}`);
  for (const r of q.authority) lines.push(`      authority: ${r.name} ${r.ttl} ${r.type} ${r.data}`);
  return lines;
}

/** The readable explanation of a name resolved and then traced. */
export function formatNameTrace(a: TraceArgs, t: NameTrace<TraceResult>, unreferenced: readonly string[] = []): string[] {
  const out = [`resolve ${t.name} through the cluster DNS records of ${a.manifests}:`];
  for (const q of t.resolution.queries) out.push(...queryLines(q));
  const to = t.resolution.targets.map((x) => (x.port !== undefined ? `${x.address} port ${x.port} (${x.via})` : x.address));
  out.push(`→ ${to.length === 0 ? 'no address: nothing to send to' : `${to.length} address${to.length === 1 ? '' : 'es'}: ${to.join(', ')}`}`);
  t.traces.forEach((x, i) => {
    out.push('', `[${i + 1}/${t.traces.length}] to ${x.to}`);
    out.push(...formatTrace({ ...a, dst: x.to, dport: x.dport }, x.result, unreferenced));
  });
  return out;
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
  if (a.proxy) return traceProxy(a, io);
  const dp = await Dataplane.create({ nodeIPs: a.nodeIPs, conntrackCapacity: 256, ...(a.serviceCIDRs.length ? { serviceCIDR: a.serviceCIDRs } : {}) });
  const file = a.rules || a.manifests;
  try {
    if (a.rules) {
      dp.iptablesRestore(readFileSync(a.rules, 'utf8'), { family: a.family, noflush: a.noflush });
    } else {
      const set = readManifestSet(a.manifests);
      for (const i of set.issues.filter((x) => x.severity === 'error')) io.err(formatIssue(i));
      const objects = [...set.services, ...set.endpointSlices, ...set.nodes];
      dp.apply(objects, { mode: a.mode, ipvs: { scheduler: a.scheduler } });
      for (const m of dp.dns(objects).issues) io.err(m);
    }
  } catch (e) {
    if (e instanceof RestoreFailed) io.err(e.line > 0 ? `${file}:${e.line}: ${e.message}` : `${file}: ${e.message}`);
    else io.err(`${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    return 1;
  }
  const q = { src: a.src, proto: a.proto, sport: a.sport, dport: a.dport, from: a.from, ...(a.proto === 'tcp' ? { flags: a.flags } : {}) };
  const unreferenced = TABLES.flatMap((t) => dp.iptablesUnreferenced(t, { family: a.family }).map((c) => `${t}/${c}`));
  if (a.name) {
    const t = dp.traceName(a.name, q);
    if (a.json) io.out(traceJSON(t));
    else for (const line of formatNameTrace(a, t, unreferenced)) io.out(line);
    return t.traces.length > 0 ? 0 : 1;
  }
  const r = dp.trace({ ...q, dst: a.dst });
  if (a.json) io.out(traceJSON(r));
  else for (const line of formatTrace(a, r, unreferenced)) io.out(line);
  return 0;
}

/** `svcplane trace --proxy`: the running proxy's /trace for this connection, printed as a local trace is. */
async function traceProxy(a: TraceArgs, io: TraceIO): Promise<number> {
  const q = new URLSearchParams({ src: a.src, dst: a.dst, proto: a.proto, sport: String(a.sport), from: a.from });
  if (a.proto === 'tcp') q.set('flags', a.flags);
  if (a.proto === 'tcp' || a.proto === 'udp' || a.proto === 'sctp') q.set('dport', String(a.dport));
  let text = '';
  try {
    await fromProxy(a.proxy, `/trace?${q}`, (chunk) => { text += chunk; });
  } catch (e) {
    io.err(`svcplane trace: ${a.proxy}: ${(e as Error).message}`);
    return 1;
  }
  if (a.json) {
    io.out(text.trimEnd());
    return 0;
  }
  let body: ProxyTrace;
  try {
    body = JSON.parse(text) as ProxyTrace;
    for (const o of body.result.outcomes) o.exact.numerator = BigInt(o.exact.numerator as unknown as string);
  } catch {
    io.err(`svcplane trace: ${a.proxy}: the answer is not a trace`);
    return 1;
  }
  const rulesLine = `rules: the running proxy at ${a.proxy} (mode ${body.mode}), node addresses ${body.nodeIPs.join(', ')}`;
  for (const line of formatTrace(a, body.result, [], rulesLine)) io.out(line);
  return 0;
}
