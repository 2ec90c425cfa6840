// trace.ts — explains one packet in iptables mode: the rules it visits (table, chain, rule text,
// matched or not, target) and every outcome it can have, each with its exact probability. The
// core traces a packet on a side path that changes no state (assembly/netfilter/trace.ts); each
// statistic-random match met is a decision point whose outcome the host may force. Outcomes are
// enumerated depth first: a run with decisions d1..dk forced and the rest taken covers one leaf,
// and every untaken alternative after the forced prefix is explored in turn, so each leaf costs
// one run. Recent lists, nth counters, limits and conntrack are read as they are at trace time.
// Probabilities are exact: a decision with threshold t (31 bits) is taken with t / 2^31.
// Never touches packet I/O or descriptors.

import { formatIP } from '../core/packet.js';
import { VERDICTS, REASONS, ctStateName, type CtState } from '../core/abi.js';
import { BUILTIN_IDS, HOOK_BY_INDEX, TABLE_BY_INDEX, T, type IptCompiler } from './compile.js';

/** The trace exports of the core (ABI and build/testing-netfilter.wasm alike). */
export interface TraceCore {
  memory: WebAssembly.Memory;
  iptTrace(len: number, cap: number, meta: number, nowMs: number): number;
  iptTracePacket(): number;
  iptTracePacketBytes(): number;
  iptTraceForced(): number;
  iptTraceMaxDecisions(): number;
  iptTraceSteps(): number;
  iptTraceDecisions(): number;
  iptTraceResult(): number;
}

export interface TraceStep {
  table: string;
  chain: string;
  hook: string;
  /** 0-based rule index; the chain's rule count for its end (policy or fall-through). */
  rule: number;
  /** `-A CHAIN …` as the restore text had it (absent for a chain's end). */
  text?: string;
  matched: boolean;
  /** ACCEPT, DROP, RETURN, REJECT, DNAT, …, `jump CHAIN`, `goto CHAIN`, `policy ACCEPT`, … */
  target?: string;
}

export interface TraceDecision {
  table: string;
  chain: string;
  rule: number;
  /** Probability the random test passes (threshold / 2^31). */
  probability: number;
  taken: boolean;
}

export interface TraceOutcome {
  verdict: (typeof VERDICTS)[number];
  reason: string;
  /** Where the packet goes after destination NAT, when that changed it ("ip:port", "[ip6]:port"). */
  to?: string;
  /** Source NAT (MASQUERADE / SNAT) changed the packet's source. */
  masq: boolean;
  /** The packet's conntrack state, as -m conntrack --ctstate sees it. */
  ctstate?: CtState;
  /**
   * The flow table already holds the packet's connection (a retransmitted SYN, a packet of an
   * open connection): that connection's NAT applies and the nat rules are not consulted, so
   * decidedBy names no NAT rule.
   */
  existing: boolean;
  mark: number;
  probability: number;
  /** The same probability as a fraction: numerator / 2^denominatorLog2. */
  exact: { numerator: bigint; denominatorLog2: number };
  /** The decision paths leading here (one per leaf merged into this outcome). */
  paths: TraceDecision[][];
  /**
   * The rules that made this outcome, in the order the packet met them (on its first path): every
   * NAT rule it matched (DNAT, SNAT, MASQUERADE, REDIRECT) and what stopped it (a DROP or REJECT
   * rule, a DROP policy, the jump depth). An outcome of several equally likely paths through one
   * Service names the endpoint chain of its own path, which `steps` (the first path only) does not.
   */
  decidedBy: TraceStep[];
}

/**
 * The IPVS step of a packet to a virtual service (ip_vs_in after filter INPUT / nat OUTPUT): which
 * service matched, its scheduler, and where a new connection goes — an existing entry or a
 * persistence template decides, or the scheduler's next pick (probability 1; its state is read,
 * not advanced), or for twos every destination with its probability. The rule steps and outcomes
 * follow the first destination with a chance through OUTPUT and POSTROUTING.
 */
export interface IpvsTraceStep {
  /** `TCP  10.96.0.80:80` as `ipvsadm -Ln` names it; absent when no service matched. */
  service?: string;
  scheduler?: string;
  /** Persistence timeout (s) of the service, when persistent. */
  persistent?: number;
  kind: 'none' | 'connection' | 'template' | 'scheduler' | 'odds' | 'no-destination';
  choices: { to: string; probability: number }[];
}

export interface TraceResult {
  /** The path with every random decision taken (the first leaf). */
  steps: TraceStep[];
  /** Set when IPVS is configured and the packet is TCP, UDP or SCTP. */
  ipvs?: IpvsTraceStep;
  outcomes: TraceOutcome[];
  /** More leaves than maxOutcomes, or more decisions than the core records: the list is partial. */
  truncated: boolean;
}

export interface TraceOptions {
  /** Descriptor meta bits (bit 0 = from this node, 8–15 ingress, 16–23 egress ifindex). */
  meta?: number;
  nowMs?: number;
  /** Room of the packet's slot (a REJECT reply may grow into it); default the packet length + 1280. */
  cap?: number;
  /** Leaves explored at most (default 4096). */
  maxOutcomes?: number;
}

interface Run {
  verdict: number;
  ctstate: number;
  /** The core's index of the packet's stored connection; CT_NONE for a new one. */
  ct: number;
  reason: number;
  mark: number;
  flags: number;
  src: Uint8Array;
  dst: Uint8Array;
  sport: number;
  dport: number;
  decisions: { chain: number; rule: number; prob: number; taken: boolean }[];
  steps: TraceStep[] | null;
  decidedBy: TraceStep[];
}

const FREE = 0xff;
/** assembly/conntrack/hash.ts CT_NONE: no stored connection. */
const CT_NONE = 0xffffffff;
const TR_DECISIONS_LOST = 16;
const TWO31 = 2 ** 31;

const TARGET_NAMES: Record<number, string> = {
  [T.ACCEPT]: 'ACCEPT', [T.DROP]: 'DROP', [T.RETURN]: 'RETURN', [T.REJECT]: 'REJECT', [T.DNAT]: 'DNAT',
  [T.SNAT]: 'SNAT', [T.MASQUERADE]: 'MASQUERADE', [T.MARK]: 'MARK', [T.CONNMARK]: 'CONNMARK', [T.LOG]: 'LOG',
  [T.NFLOG]: 'NFLOG', [T.NOTRACK]: 'NOTRACK', [T.REDIRECT]: 'REDIRECT', [T.POLICY_ACCEPT]: 'policy ACCEPT',
  [T.POLICY_DROP]: 'policy DROP', [T.END_RETURN]: 'return', [T.DEPTH_DROP]: 'DROP (jump depth exceeded)',
};

/** Targets that decide where a packet goes or that it goes nowhere (TraceOutcome.decidedBy). */
const DECISIVE = new Set<number>([
  T.DNAT, T.SNAT, T.MASQUERADE, T.REDIRECT, T.DROP, T.REJECT, T.POLICY_DROP, T.DEPTH_DROP,
]);
const STEP_BYTES = 16;

/**
 * The core's step records of the last trace run as steps: all of them, or (`decisive`) only the
 * matched ones whose target is in DECISIVE — a handful, whatever the rules walked past.
 */
function readSteps(core: TraceCore, c: IptCompiler, n: number, decisive = false): TraceStep[] {
  const dv = new DataView(core.memory.buffer);
  const base = core.iptTraceSteps();
  const out: TraceStep[] = [];
  for (let i = 0; i < n; i++) {
    const p = base + i * STEP_BYTES;
    const matched = dv.getUint8(p + 12) === 1, kind = dv.getUint8(p + 13);
    if (decisive && !(matched && DECISIVE.has(kind))) continue;
    const chain = dv.getUint32(p, true), from = dv.getUint32(p + 4, true), to = dv.getUint32(p + 8, true);
    const hook = HOOK_BY_INDEX[dv.getUint8(p + 14)] ?? '?';
    const info = c.chainInfo(chain);
    const { table, name } = chainName(c, chain);
    for (let r = from; r < to; r++) {
      const rule = info?.rules[r];
      const step: TraceStep = { table, chain: name, hook, rule: r, matched };
      if (rule) {
        // trimEnd() copies: only a text ending in blanks (or empty) needs it. A trace through a
        // 20,000-rule KUBE-SERVICES builds that many texts.
        const t = rule.text;
        const last = t.length === 0 ? 32 : t.charCodeAt(t.length - 1);
        step.text = last === 32 || last === 9 ? `-A ${name} ${t}`.trimEnd() : `-A ${name} ${t}`;
      }
      if (matched && kind !== 0) step.target = targetName(core, c, kind, rule);
      out.push(step);
    }
  }
  return out;
}

/** JSON.stringify's replacer for a trace: exact numerators as decimal strings, message bytes as hex. */
export function traceJSONValue(_key: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? [...v].map((b) => b.toString(16).padStart(2, '0')).join('') : v;
}

/** A step as a short label: `nat/KUBE-SEP-X #2 DNAT`, or `filter/FORWARD end policy DROP` for a chain's end. */
export function stepLabel(s: TraceStep): string {
  return `${s.table}/${s.chain} ${s.text === undefined ? 'end' : `#${s.rule + 1}`} ${s.target ?? ''}`.trimEnd();
}

/** A chain id's table and name; built-in chains the host never loaded are named from their id. */
function chainName(c: IptCompiler, id: number): { table: string; name: string } {
  const info = c.chainInfo(id);
  if (info) return { table: info.table, name: info.name };
  if (id < BUILTIN_IDS) return { table: TABLE_BY_INDEX[Math.floor((id % 20) / 5)] ?? '?', name: HOOK_BY_INDEX[id % 5] ?? '?' };
  return { table: '?', name: `#${id}` };
}

function targetName(_core: TraceCore, _c: IptCompiler, kind: number, rule: { target: unknown } | undefined): string {
  if (kind === T.JUMP || kind === T.GOTO) {
    const t = rule?.target as { chain?: string } | undefined;
    return `${kind === T.JUMP ? 'jump' : 'goto'} ${t?.chain ?? '?'}`;
  }
  return TARGET_NAMES[kind] ?? `target ${kind}`;
}

function runOnce(core: TraceCore, c: IptCompiler, pkt: Uint8Array, forced: readonly boolean[], opts: TraceOptions, withSteps: boolean): Run {
  const max = core.iptTraceMaxDecisions();
  const u8 = new Uint8Array(core.memory.buffer);
  const area = core.iptTracePacket();
  const cap = Math.min(opts.cap ?? pkt.length + 1280, core.iptTracePacketBytes());
  if (pkt.length > cap) throw new Error(`packet of ${pkt.length} bytes does not fit the trace area`);
  u8.set(pkt, area);
  const fp = core.iptTraceForced();
  u8.fill(FREE, fp, fp + max);
  forced.forEach((t, i) => { u8[fp + i] = t ? 1 : 0; });
  const n = core.iptTrace(pkt.length, cap, opts.meta ?? 0, opts.nowMs ?? 0);
  if (n < 0) throw new Error('the core refused the trace packet');
  const dv = new DataView(core.memory.buffer);
  const r = core.iptTraceResult();
  const family = (dv.getUint8(area) >> 4) === 6 ? 6 : 4;
  const words = (off: number) => {
    const b = new Uint8Array(family === 4 ? 4 : 16);
    for (let i = 0; i < b.length; i++) b[i] = dv.getUint8(r + off + i);
    return b;
  };
  const nd = dv.getUint32(r + 20, true);
  const dbase = core.iptTraceDecisions();
  const decisions: Run['decisions'] = [];
  for (let i = 0; i < Math.min(nd, max); i++) {
    const p = dbase + i * 16;
    decisions.push({ chain: dv.getUint32(p, true), rule: dv.getUint32(p + 4, true), prob: dv.getUint32(p + 8, true), taken: dv.getUint8(p + 12) === 1 });
  }
  return {
    verdict: dv.getUint8(r), ctstate: dv.getUint8(r + 1), reason: dv.getUint16(r + 2, true), mark: dv.getUint32(r + 4, true),
    flags: dv.getUint32(r + 12, true), ct: dv.getUint32(r + 24, true), src: words(28), dst: words(44),
    sport: dv.getUint16(r + 60, true), dport: dv.getUint16(r + 62, true),
    decisions, steps: withSteps ? readSteps(core, c, n) : null, decidedBy: readSteps(core, c, n, true),
  };
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The input packet's addresses and ports (enough to tell what NAT changed). */
function header(pkt: Uint8Array): { src: Uint8Array; dst: Uint8Array; sport: number; dport: number; ported: boolean } {
  const v6 = pkt[0]! >> 4 === 6;
  const src = pkt.slice(v6 ? 8 : 12, v6 ? 24 : 16), dst = pkt.slice(v6 ? 24 : 16, v6 ? 40 : 20);
  const l4 = v6 ? 40 : (pkt[0]! & 15) * 4;
  const proto = pkt[v6 ? 6 : 9];
  const ported = proto === 6 || proto === 17 || proto === 132;
  const port = (o: number) => (ported && pkt.length >= l4 + 4 ? (pkt[l4 + o]! << 8) | pkt[l4 + o + 1]! : 0);
  return { src, dst, sport: port(0), dport: port(2), ported };
}

/**
 * Traces `packet` (IP header first) through the core's iptables tables. `compiler` is the one
 * that loaded them (it names chains and rules). Throws if the packet does not fit the trace area.
 */
export function tracePacket(core: TraceCore, compiler: IptCompiler, packet: Uint8Array, opts: TraceOptions = {}): TraceResult {
  const maxLeaves = opts.maxOutcomes ?? 4096;
  const maxDecisions = core.iptTraceMaxDecisions();
  const input = header(packet);
  const v6 = packet[0]! >> 4 === 6;
  const outcomes = new Map<string, TraceOutcome>();
  let steps: TraceStep[] = [];
  let truncated = false;
  let leaves = 0;
  const stack: boolean[][] = [[]];
  while (stack.length > 0) {
    const prefix = stack.pop()!;
    if (leaves >= maxLeaves) { truncated = true; break; }
    const run = runOnce(core, compiler, packet, prefix, opts, leaves === 0);
    if (run.steps) steps = run.steps;
    leaves++;
    // A run past the core's last recorded decision took every later one: its leaf stands for the
    // whole unexplored rest of the tree, not for the outcome it reached, so it is left out (the
    // outcomes then add up to less than 1, and the result says it was cut short).
    const lost = (run.flags & TR_DECISIONS_LOST) !== 0;
    if (lost) truncated = true;
    // Every untaken alternative after the forced prefix is a subtree of its own.
    for (let j = run.decisions.length - 1; j >= prefix.length; j--) {
      if (run.decisions[j]!.prob >= TWO31 || j >= maxDecisions) continue;   // never not taken
      stack.push([...run.decisions.slice(0, j).map((d) => d.taken), false]);
    }
    let num = 1n;
    let prob = 1;
    for (const d of run.decisions) {
      const part = d.taken ? d.prob : TWO31 - d.prob;
      num *= BigInt(part);
      prob *= part / TWO31;
    }
    if (num === 0n || lost) continue;
    const changedDst = !equalBytes(run.dst, input.dst) || (input.ported && run.dport !== input.dport);
    const masq = !equalBytes(run.src, input.src) || (input.ported && run.sport !== input.sport);
    const verdict = VERDICTS[run.verdict] ?? 'DROP';
    const to = changedDst && verdict !== 'REPLY' ? (v6 ? `[${formatIP(run.dst)}]:${run.dport}` : `${formatIP(run.dst)}:${run.dport}`) : undefined;
    const key = `${verdict}|${run.reason}|${to ?? ''}|${masq}|${run.mark}`;
    const path: TraceDecision[] = run.decisions.map((d) => {
      const { table, name } = chainName(compiler, d.chain);
      return { table, chain: name, rule: d.rule, probability: d.prob / TWO31, taken: d.taken };
    });
    const denominatorLog2 = 31 * run.decisions.length;
    const o = outcomes.get(key);
    if (o) {
      // Sum two fractions over powers of two.
      const k = Math.max(o.exact.denominatorLog2, denominatorLog2);
      const n = (o.exact.numerator << BigInt(k - o.exact.denominatorLog2)) + (num << BigInt(k - denominatorLog2));
      o.exact = { numerator: n, denominatorLog2: k };
      o.probability += prob;
      o.paths.push(path);
    } else {
      const out: TraceOutcome = {
        verdict, reason: REASONS[run.reason] ?? String(run.reason), masq, existing: run.ct !== CT_NONE, mark: run.mark, probability: prob,
        exact: { numerator: num, denominatorLog2 }, paths: [path], decidedBy: run.decidedBy,
      };
      if (to !== undefined) out.to = to;
      const ctstate = ctStateName(run.ctstate);
      if (ctstate !== undefined) out.ctstate = ctstate;
      outcomes.set(key, out);
    }
  }
  if (stack.length > 0) truncated = true;
  return { steps, outcomes: [...outcomes.values()], truncated };
}
