// kube-proxy-harness.ts — what the kube-proxy conformance suite needs around the public
// Dataplane API: reading the corpus (../shared/conformance, or $SVCPLANE_CONFORMANCE), the
// base-chain jumps kube-proxy installs outside its iptables-restore payload, the protocol a
// tracer-v1 flow is sent with, and the mapping of a real-kernel trace onto the answer of
// kube-proxy's simplified test tracer. Every place where that tracer and the kernel disagree is
// mapped here with the README rule it follows; nothing of it belongs in the product.
// Never re-implements the tracer: the verdicts come from the engine's trace, only their reading
// is adapted.
import { jumpChains, type JumpChain } from '../../host-node/kube/jump-chains.js';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TraceResult } from '../../host-node/index.js';

// ---------------------------------------------------------------------------------------------
// The corpus
// ---------------------------------------------------------------------------------------------

export interface CorpusFlow {
  name: string;
  sourceIP: string;
  destIP: string;
  destPort: number;
  protocol: 'tcp' | 'udp' | 'sctp' | null;
  output: string;
  masq: boolean;
}

export interface CorpusFile {
  file: string;
  name: string;
  provenance: { commit: string; upstreamRepo: string; path: string };
  tracer: {
    variant: string;
    startChains: { nat: string[]; filter: string[] };
    localIPs: string[];
    matchProtocol: boolean;
  };
  implicitRules: { table: string; chain: string; rule: string }[];
  masqueradeMark: string;
  ruleset: string;
  flows: CorpusFlow[];
}

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The corpus root: $SVCPLANE_CONFORMANCE, else ../shared/conformance beside the repository. */
export function corpusRoot(): string {
  return process.env.SVCPLANE_CONFORMANCE ?? path.resolve(REPO_ROOT, '../shared/conformance');
}

/** Every iptables corpus file, sorted by name; [] when the folder is missing (the suite fails on that). */
export function loadIptablesCorpus(root = corpusRoot()): CorpusFile[] {
  const dir = path.join(root, 'kube-proxy-iptables');
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((n) => n.endsWith('.json')).sort().map((file) => ({
    file,
    ...(JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as Omit<CorpusFile, 'file'>),
  }));
}

export const isLoopback = (ip: string): boolean => ip.startsWith('127.') || ip === '::1';

// ---------------------------------------------------------------------------------------------
// Base-chain jumps: the product's own (host-node/kube/jump-chains.ts), by the commit the corpus names.
// ---------------------------------------------------------------------------------------------

export { jumpRestoreText, liveTable } from '../../host-node/kube/jump-chains.js';
export const JUMP_CHAINS_BY_COMMIT: Record<string, JumpChain[]> = {
  // sanposhiho/kubernetes@059ce4e8 (≈v1.28): the POSTROUTING jump still sits in the kubelet list.
  '059ce4e8a1d958959595b970acaf846259348518': jumpChains('v1.28'),
  // kairosci/kubernetes@235e4894 (≈v1.33): POSTROUTING is in iptablesJumpChains.
  '235e48943bb6ddc80e073456e5916a05f69f0be6': jumpChains('current'),
};

// ---------------------------------------------------------------------------------------------
// Flow → packet
// ---------------------------------------------------------------------------------------------

/**
 * README "Tracer v1 differences", v1-a: the v1 tracer never compared `-p`, so its flows carry no
 * protocol. A kernel does compare it; following the README's advice each such flow is sent with
 * the protocol of the Service it addresses, read from the ruleset: the `-p` of every rule that
 * names the flow's destination port and either names its destination address or none. No such
 * rule (traffic that is not for a Service) gives tcp, the Go tracer's default; two different
 * protocols would make the choice ambiguous and throw.
 */
export function serviceProtocol(ruleset: string, flow: CorpusFlow): 'tcp' | 'udp' | 'sctp' {
  const found = new Set<string>();
  for (const line of ruleset.split('\n')) {
    if (!line.startsWith('-A ')) continue;
    const dport = /\s--dport (\d+)(\s|$)/.exec(line)?.[1];
    const proto = /\s-p (\w+)/.exec(line)?.[1];
    if (dport !== String(flow.destPort) || !proto) continue;
    const d = /\s-d (\S+)/.exec(line)?.[1];
    if (d !== undefined && d !== flow.destIP && d !== `${flow.destIP}/32`) continue;
    found.add(proto);
  }
  if (found.size > 1) throw new Error(`flow ${flow.name}: the ruleset serves port ${flow.destPort} as ${[...found].join(' and ')}`);
  const p = [...found][0] ?? 'tcp';
  if (p !== 'tcp' && p !== 'udp' && p !== 'sctp') throw new Error(`flow ${flow.name}: unexpected protocol ${p}`);
  return p;
}

// ---------------------------------------------------------------------------------------------
// Trace → the simplified tracer's answer
// ---------------------------------------------------------------------------------------------

export interface TracerAnswer {
  output: string;
  masq: boolean;
}

const WORDS = new Set(['ACCEPT', 'DROP', 'REJECT']);

/**
 * The chains each step of the (first-leaf) trace was called through, base chain first: the call
 * stack rebuilt from the step sequence (a matched `jump X` enters X, `goto X` replaces the
 * current chain, a step in a chain lower on the stack means the chains above it returned; a new
 * table or hook starts a new base chain).
 */
export function callPaths(steps: TraceResult['steps']): string[][] {
  const out: string[][] = [];
  let at = '';
  let stack: string[] = [];
  for (const s of steps) {
    const here = `${s.table}/${s.hook}`;
    if (here !== at) {
      at = here;
      stack = [s.chain];
    } else {
      const i = stack.lastIndexOf(s.chain);
      stack = i >= 0 ? stack.slice(0, i + 1) : [s.chain];
    }
    out.push([...stack]);
    const t = s.matched ? s.target ?? '' : '';
    if (t.startsWith('jump ')) stack.push(t.slice(5));
    else if (t.startsWith('goto ')) stack[stack.length - 1] = t.slice(5);
  }
  return out;
}

/**
 * Maps a kernel trace onto kube-proxy's test tracer answer.
 *
 * output: the DNAT destinations of all outcomes, in the order the outcomes were enumerated
 * (depth first with every random branch taken first, which is rule order of the KUBE-SVC-*
 * chain: README rule 9), each once; then the word of every explicit ACCEPT / DROP / REJECT rule
 * that decided the packet in a chain the tracer runs. README rule 12: the tracer runs only
 * filter KUBE-SERVICES, KUBE-EXTERNAL-SERVICES, KUBE-NODEPORTS and KUBE-PROXY-FIREWALL (and what
 * they call), never KUBE-FORWARD or KUBE-FIREWALL, so a verdict a kernel reaches in those (for
 * instance KUBE-FORWARD accepting a masquerade-marked packet) is not reported; rule 13: a packet
 * no rule decided (a chain policy accepted it) is "".
 * masq: README rule 13 reports the KUBE-MARK-MASQ mark, not the masquerade. In a kernel the mark
 * is either still on the packet (`mark`, when it never reached KUBE-POSTROUTING: delivered
 * locally, dropped, rejected) or KUBE-POSTROUTING cleared it and MASQUERADE rewrote the source
 * (`masq`; exact because the suite gives the dataplane a masquerade address no flow uses as its
 * source).
 */
export function tracerAnswer(r: TraceResult, o: { masqueradeMark: number; startChains: { nat: string[]; filter: string[] } }): TracerAnswer {
  const dnat: string[] = [];
  for (const out of r.outcomes) if (out.to !== undefined && !dnat.includes(out.to)) dnat.push(out.to);
  const words: string[] = [];
  const paths = callPaths(r.steps);
  r.steps.forEach((s, i) => {
    if (!s.matched || !s.target || !WORDS.has(s.target)) return;
    const chains = paths[i]!;
    // Locally sent packets enter nat at OUTPUT, which kube-proxy jumps to the same KUBE-SERVICES
    // the tracer reaches from PREROUTING (README rule 10).
    const traced = s.table === 'filter'
      ? chains.some((c) => o.startChains.filter.includes(c))
      : s.table === 'nat' && (o.startChains.nat.includes(chains[0]!) || chains[0] === 'OUTPUT');
    if (traced) words.push(s.target);
  });
  // The steps are the first leaf's only; a verdict decided on another leaf could not be named.
  const refused = r.outcomes.filter((x) => x.verdict === 'DROP' || x.verdict === 'REPLY');
  if (r.outcomes.length > 1 && refused.length > 0) {
    throw new Error('a random branch other than the first was dropped or rejected: its deciding rule is not in the steps');
  }
  const masq = r.outcomes.some((x) => x.masq || (x.mark & o.masqueradeMark) !== 0);
  return { output: [...dnat, ...words].join(', '), masq };
}
