// bench/netfilter-parse.ts — parse-time sanity check for the iptables text front end on a
// kube-proxy-shaped ruleset: 20 000 services with 2 endpoints each, every 10th also a NodePort.
// Prints milliseconds for the full restore and for a kube-proxy partial restore (--noflush,
// KUBE-SERVICES/KUBE-NODEPORTS rewritten whole, one service's chains replaced). No assertions:
// unit tests never time anything. Run: node dist/bench/netfilter-parse.js [services] [--full]
// With --full it also drives the whole Dataplane.iptablesRestore path (parse, compile, load into
// the core, each timed apart), a one-service partial add, and the heap cost per rule
// (node --expose-gc for the memory figure).

import { parseRestore, renderSave, type Ruleset } from '../host-node/netfilter/index.js';
import { loadRestore } from '../host-node/netfilter/compile.js';
import { Dataplane } from '../host-node/dataplane.js';

const ARGS = globalThis.process?.argv?.slice(2) ?? [];
const SERVICES = Number(ARGS.find((a) => /^[0-9]+$/.test(a)) ?? 20000);
const FULL = ARGS.includes('--full');

// Deterministic 16-character base32 names like kube-proxy's chain hashes.
let seed = 0x2545f491;
function hash(): string {
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let s = '';
  for (let i = 0; i < 16; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    s += abc[seed >>> 27];
  }
  return s;
}

interface Svc {
  name: string;
  ip: string;
  svc: string;
  ext: string | null;
  nodePort: number;
  eps: { ip: string; sep: string }[];
}

function services(n: number): Svc[] {
  const out: Svc[] = [];
  for (let i = 0; i < n; i++) {
    const ip = `172.30.${(i >> 8) & 255}.${i & 255}`;
    const eps = [0, 1].map((k) => ({ ip: `10.${(i >> 8) & 255}.${i & 255}.${k + 1}`, sep: 'KUBE-SEP-' + hash() }));
    const h = hash();
    out.push({ name: `ns${i % 50}/svc${i}:p80`, ip, svc: 'KUBE-SVC-' + h, ext: i % 10 === 0 ? 'KUBE-EXT-' + h : null, nodePort: 30000 + (i % 2768), eps });
  }
  return out;
}

function serviceChains(s: Svc): { decl: string[]; rules: string[] } {
  const decl = [`:${s.svc} - [0:0]`, ...s.eps.map((e) => `:${e.sep} - [0:0]`)];
  const rules: string[] = [];
  if (s.ext) {
    decl.push(`:${s.ext} - [0:0]`);
    rules.push(`-A ${s.ext} -m comment --comment "masquerade traffic for ${s.name} external destinations" -j KUBE-MARK-MASQ`);
    rules.push(`-A ${s.ext} -j ${s.svc}`);
  }
  rules.push(`-A ${s.svc} -m comment --comment "${s.name} cluster IP" -m tcp -p tcp -d ${s.ip} --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ`);
  rules.push(`-A ${s.svc} -m comment --comment "${s.name} -> ${s.eps[0].ip}:80" -m statistic --mode random --probability 0.5000000000 -j ${s.eps[0].sep}`);
  rules.push(`-A ${s.svc} -m comment --comment "${s.name} -> ${s.eps[1].ip}:80" -j ${s.eps[1].sep}`);
  for (const e of s.eps) {
    rules.push(`-A ${e.sep} -m comment --comment ${s.name} -s ${e.ip} -j KUBE-MARK-MASQ`);
    rules.push(`-A ${e.sep} -m comment --comment ${s.name} -m tcp -p tcp -j DNAT --to-destination ${e.ip}:80`);
  }
  return { decl, rules };
}

function filterTable(): string[] {
  return [
    '*filter',
    ':KUBE-NODEPORTS - [0:0]', ':KUBE-SERVICES - [0:0]', ':KUBE-EXTERNAL-SERVICES - [0:0]', ':KUBE-FORWARD - [0:0]',
    ':KUBE-PROXY-FIREWALL - [0:0]',
    '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP',
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    'COMMIT',
  ];
}

/** The nat table; `only` limits the per-service chains to those services (a partial sync). */
function natTable(all: Svc[], only: Svc[] | null): string[] {
  const decl = [':KUBE-NODEPORTS - [0:0]', ':KUBE-SERVICES - [0:0]', ':KUBE-MARK-MASQ - [0:0]', ':KUBE-POSTROUTING - [0:0]'];
  const nodeports: string[] = [];
  const svcRules: string[] = [];
  const chainRules: string[] = [];
  for (const s of all) {
    svcRules.push(`-A KUBE-SERVICES -m comment --comment "${s.name} cluster IP" -m tcp -p tcp -d ${s.ip} --dport 80 -j ${s.svc}`);
    if (s.ext) nodeports.push(`-A KUBE-NODEPORTS -m comment --comment ${s.name} -m tcp -p tcp --dport ${s.nodePort} -j ${s.ext}`);
  }
  for (const s of only ?? all) {
    const c = serviceChains(s);
    decl.push(...c.decl);
    chainRules.push(...c.rules);
  }
  return [
    '*nat', ...decl, ...nodeports, ...svcRules,
    '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
    '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
    '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
    '-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000',
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
    ...chainRules, 'COMMIT',
  ];
}

/**
 * The tables' lines as restore input, its last newline from a final empty line: one join gives a
 * flat string, as the renderer's text and a file's are. (`join() + '\n'` would make a rope that V8
 * flattens, copying 20 MB, on the parser's first read, inside the timing.)
 */
function restoreText(...tables: string[][]): string {
  return [...tables.flat(), ''].join('\n');
}

// Wall time, and CPU time of this process (GC threads included) where the runtime reports it:
// on a busy machine the CPU time is the steadier of the two.
var cpu = (globalThis as { process?: { cpuUsage?: (p?: unknown) => { user: number; system: number } } }).process?.cpuUsage;

function time<T>(label: string, lines: number, f: () => T): T {
  const c0 = cpu?.();
  const t0 = performance.now();
  const r = f();
  const ms = performance.now() - t0;
  const c = c0 && cpu!(c0);
  const cpuText = c ? `  cpu ${((c.user + c.system) / 1000).toFixed(1).padStart(8)} ms` : '';
  console.log(`${label.padEnd(44)} ${String(lines).padStart(7)} lines ${ms.toFixed(1).padStart(8)} ms${cpuText}`);
  return r;
}

/** The least any parser must do per line: find it, slice it, look it up once in a map. */
function baseline(text: string): number {
  const seen = new Map<string, number>();
  let pos = 0;
  let n = 0;
  while (pos < text.length) {
    let end = text.indexOf('\n', pos);
    if (end < 0) end = text.length;
    if (seen.get(text.slice(pos, end)) !== undefined) n++;
    pos = end + 1;
  }
  return n;
}

function must(r: ReturnType<typeof parseRestore>): { ruleset: Ruleset; touched: Set<string> } {
  if (!r.ok) throw new Error(r.error.message);
  return r;
}

const svcs = services(SERVICES);
if (FULL) {
  await fullPath();
  (globalThis as { process?: { exit(c: number): void } }).process?.exit(0);
}

const full = restoreText(filterTable(), natTable(svcs, null));
const fullLines = full.split('\n').length - 1;
console.log(`kube-proxy-shaped ruleset: ${SERVICES} services, 2 endpoints each, every 10th a NodePort`);
const first = time('full restore (cold)', fullLines, () => must(parseRestore(full)));
time('full restore again (parsed rules reused)', fullLines, () => must(parseRestore(full, { base: first.ruleset })));

// A partial sync: one service gets a new endpoint chain; everything else is rewritten unchanged.
const changed = svcs[SERVICES >> 1];
changed.eps[1] = { ip: '10.255.255.9', sep: 'KUBE-SEP-' + hash() };
const partial = restoreText(filterTable(), natTable(svcs, [changed]));
const partialLines = partial.split('\n').length - 1;
time('baseline (split, slice, 1 map get per line)', partialLines, () => baseline(partial));
let base = first.ruleset;
for (let i = 1; i <= 5; i++) {
  const r = time(`partial restore --noflush #${i}`, partialLines, () => must(parseRestore(partial, { base, noflush: true })));
  if (i === 1) console.log(`  touched: ${[...r.touched].sort().join(' ')}`);
  base = r.ruleset;
}
time('render iptables-save (source form)', fullLines, () => renderSave(base));

// ---- the whole Dataplane.iptablesRestore path ----

function heap(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return (globalThis as { process?: { memoryUsage(): { heapUsed: number } } }).process?.memoryUsage().heapUsed ?? 0;
}

async function fullPath(): Promise<void> {
  const dp = await Dataplane.create({ nodeIPs: ['192.168.49.2'], podCIDR: '10.244.0.0/16', seed: 4 });
  // The same steps as Dataplane.iptablesRestore(), timed apart.
  const inner = dp as unknown as { compiler: import('../host-node/netfilter/compile.js').IptCompiler; families: Record<4, { ruleset: Ruleset }> };
  const core = dp.core as unknown as Parameters<typeof loadRestore>[0] & { cfgBuffer(n: number): number };
  const step = (label: string, text: string, noflush: boolean): void => {
    const lines = text.split('\n').length - 1;
    const st = inner.families[4];
    const h0 = heap();
    const parsed = time(`${label}: parse`, lines, () => parseRestore(text, { family: 4, noflush, base: st.ruleset }));
    if (!parsed.ok) throw new Error(parsed.error.message);
    const compiled = time(`${label}: compile`, lines, () => inner.compiler.compile(parsed.ruleset, parsed.changed));
    time(`${label}: load`, lines, () => loadRestore(core, inner.compiler, compiled, (n) => core.cfgBuffer(n)));
    st.ruleset = parsed.ruleset;
    if ((globalThis as { gc?: unknown }).gc && !noflush) {
      let rules = 0;
      for (const t of parsed.ruleset.tables.values()) for (const c of t.chains()) rules += c.rules.length;
      console.log(`  heap after restore: ${((heap() - h0) / rules).toFixed(0)} bytes per rule (${rules} rules, compiler state and cache included)`);
    }
  };
  const text = restoreText(filterTable(), natTable(svcs, null));
  const t0 = performance.now();
  step('dataplane full restore', text, false);
  console.log(`  total ${(performance.now() - t0).toFixed(1)} ms`);
  // kube-proxy adding one service: KUBE-SERVICES/KUBE-NODEPORTS rewritten whole, the new service's chains.
  const adds = Number(ARGS.find((a) => a.startsWith('--adds='))?.slice(7) ?? 3);
  for (let k = 0; k < adds; k++) {
    const extra = services(1)[0];
    extra.ip = `172.31.${k >> 8}.${k & 255}`;
    svcs.push(extra);
    const t1 = performance.now();
    step(`dataplane partial add #${k + 1}`, restoreText(filterTable(), natTable(svcs, [extra])), true);
    console.log(`  total ${(performance.now() - t1).toFixed(1)} ms`);
  }
  svcs.length = SERVICES;
}
