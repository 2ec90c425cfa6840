// dataplane-api.ts — what callers hand a Dataplane and what it hands back: apply()'s options and
// result, a trace query and its checks, a refused restore. Types and input checks only; the
// Dataplane (dataplane.ts) does the work.

import { checkPorts, parseIP, said, type ProtoName } from './core/packet.js';
import { ruleLine, type Family, type Ruleset, type TableName } from './netfilter/index.js';
import { CompileError } from './netfilter/compile.js';
import type { IptablesOptions, ManifestIssue, Service, EndpointSlice, Node, IpvsRenderOptions } from './kube/index.js';
import type { IpvsApplied } from './kube/apply-ipvs.js';
import { queryBytes } from './dns/trace.js';

/** A restore the text front end or the core refused; nothing of it was applied. */
export class RestoreFailed extends Error {
  constructor(readonly line: number, readonly word: string, message: string) {
    super(message);
  }
}

/**
 * Refuses, before anything changes, apply() input or options a JavaScript caller got wrong (a
 * mode that is none of the three, a nodeName or removed list of the wrong kind, settings JSON
 * cannot hold); answers the rendering options' key (their JSON text), which apply() compares.
 */
export function checkApply(input: unknown, opts: ApplyOptions, podCIDR: unknown): string {
  // A document that is no object (null, 42) is one of the set, reported and skipped as in a YAML
  // stream; no input at all is the caller's slip, not an empty set that deletes every Service.
  if (input === undefined || typeof input === 'function' || typeof input === 'symbol' || typeof input === 'bigint') {
    throw new Error(`apply: the input is manifests text, a list of objects or decoded objects, not ${said(input)}`);
  }
  if (opts === null || typeof opts !== 'object') throw new Error(`apply: the options are an object, not ${said(opts)}`);
  if (opts.mode !== undefined && !APPLY_MODES.includes(opts.mode)) throw new Error(`apply: mode ${said(opts.mode)}: iptables, ipvs or direct`);
  if (opts.nodeName !== undefined && typeof opts.nodeName !== 'string') throw new Error(`apply: nodeName ${said(opts.nodeName)}: a node's name`);
  const removed = opts.delta?.removed;
  if (opts.delta !== undefined && (opts.delta === null || typeof opts.delta !== 'object' || (removed !== undefined && !(Array.isArray(removed) && removed.every((r) => typeof r === 'string'))))) {
    throw new Error('apply: delta is { removed?: ["Service ns/name", "EndpointSlice ns/name", …] }');
  }
  try {
    return JSON.stringify([opts.iptables ?? null, opts.ipvs ?? null, podCIDR ?? null]);
  } catch {
    throw new Error('apply: the iptables and ipvs settings hold a value of the wrong kind (a BigInt, a cycle)');
  }
}
const APPLY_MODES: readonly unknown[] = ['iptables', 'ipvs', 'direct'];

/**
 * `compile()`, with a CompileError (a rule the core cannot run: QUEUE, --tcp-option, the security
 * table) turned into a RestoreFailed that names the line of `text` that wrote the rule and the
 * word at fault, as the parser's refusals do.
 */
export function compiledOrRefused<T>(compile: () => T, text: string, ruleset: Ruleset, family: Family): T {
  try {
    return compile();
  } catch (e) {
    if (!(e instanceof CompileError)) throw e;
    const rule = ruleset.table(e.table as TableName)?.chain(e.chain)?.rules[Math.max(0, e.rule)];
    const line = rule ? ruleLine(text, e.table, e.chain, rule.text) : 0;
    const prog = family === 4 ? 'iptables-restore' : 'ip6tables-restore';
    throw new RestoreFailed(line, e.word, `${prog}: ${line > 0 ? `line ${line} failed` : 'failed'}: ${e.message}`);
  }
}

export interface RestoreApplied {
  /** "table/chain" of every chain the restore created, replaced, flushed or deleted, sorted. */
  readonly touched: string[];
}

export interface TraceQuery {
  src: string;
  dst: string;
  proto?: ProtoName;
  sport?: number;
  dport?: number;
  /** Arriving from outside the node (PREROUTING) or sent by the node itself (OUTPUT). */
  from?: 'external' | 'local';
  /** TCP flags of the traced packet (default a SYN: a new connection). */
  flags?: string;
  nowMs?: number;
  maxOutcomes?: number;
  /** A DNS query the traced UDP packet carries (question or message bytes): `dns` explains the core's answer. */
  query?: { name: string; type?: string } | Uint8Array;
}

/** The family `opts` names (default 4); throws for any other value (JavaScript callers). */
export function familyOf(opts: { family?: Family } | null | undefined): Family {
  const f = opts?.family ?? 4;
  if (f !== 4 && f !== 6) throw new Error(`bad family ${String(f)}: 4 (iptables) or 6 (ip6tables)`);
  return f;
}

/**
 * The DNS query bytes of `q`, if it carries one; throws a plain Error naming the field a caller in
 * JavaScript (types unchecked there) got wrong.
 */
export function readTraceQuery(q: TraceQuery): Uint8Array | undefined {
  if (q === null || typeof q !== 'object') throw new Error('bad trace query: an object { src, dst, proto?, sport?, dport?, from? }');
  parseIP(q.src);
  parseIP(q.dst);
  checkPorts(q);
  if (q.from !== undefined && q.from !== 'external' && q.from !== 'local') throw new Error(`bad from ${String(q.from)}: external or local`);
  const dnsQuery = q.query != null ? queryBytes(q.query) : undefined;
  if (q.flags !== undefined && typeof q.flags !== 'string') throw new Error(`bad flags ${String(q.flags)}: TCP flags are letters, e.g. S or SA`);
  for (const k of ['nowMs', 'maxOutcomes'] as const) {
    const v = q[k];
    if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v >= 0)) throw new Error(`bad ${k} ${String(v)}: a number ≥ 0`);
  }
  return dnsQuery;
}

export interface ApplyOptions {
  /**
   * How the Services reach the core: kube-proxy's iptables rules (default); its ipvs mode (ipsets,
   * IPVS virtual servers and the constant iptables rules, with IPVS inside the netfilter hooks); or
   * 'direct': each changed service port's compiled entry straight into the core's service table, no
   * rule text. Switching mode on a Dataplane clears the previous mode's service tables and makes the
   * next sync full; conntrack flows stay, with their NAT (leaving ipvs mode, the flows IPVS
   * translated become conntrack DNAT flows, on the same real servers).
   */
  mode?: 'iptables' | 'ipvs' | 'direct';
  /** This node's name (topology hints, local endpoints); default "node". */
  nodeName?: string;
  /**
   * Incremental input (e.g. from a watch): `input` holds only the objects added or changed since
   * the last apply, `removed` names the deleted ones as "Service ns/name" / "EndpointSlice
   * ns/name" (unknown names are ignored); every other object stays as last applied. Without it,
   * `input` is the whole set and anything missing from it is deleted.
   */
  delta?: { removed?: string[] };
  /**
   * kube-proxy settings (era, masqueradeAll, nodePortAddresses, …). The direct mode honours
   * masqueradeAll, nodePortAddresses, localhostNodePorts, hostAddresses and
   * preferSameTrafficDistribution; its local-traffic detector is the Dataplane's podCIDR.
   * IPVS mode reads the settings both kube-proxy modes share (nodePortAddresses, masqueradeAll, …) from here too.
   */
  iptables?: IptablesOptions;
  /** kube-proxy ipvs-mode settings (scheduler, masqueradeAll, nodePortAddresses, …). */
  ipvs?: IpvsRenderOptions;
  /**
   * iptables mode in a large cluster (over 1,000 endpoints): delete the chains of Services that
   * are gone in this sync. kube-proxy does it at most once per syncPeriod (proxier.go:
   * lastIPTablesCleanup); without this option it happens on full syncs only. Smaller clusters
   * delete them in every sync regardless.
   */
  cleanupStaleChains?: boolean;
}

/** What an error thrown by an iptables-mode apply also says: the family whose restore the core refused, and whether that restore was a partial one. */
export interface ApplyFailure { restoreFamily?: Family; partialRestore?: boolean }

export interface ApplyResult {
  /** Objects refused (with file, line, object and field); everything else was applied. */
  issues: ManifestIssue[];
  families: Array<{
    family: Family; full: boolean; changedServices: string[]; filterRules: number; natRules: number; touched: string[];
    /** iptables mode: the nat rules this sync wrote (natRules: all the table holds after it). */
    natRulesWritten?: number;
    /** Direct mode: service-port entries written (inserted or replaced) and removed. */
    direct?: { put: number; removed: number };
    /** IPVS mode: what the sync changed. */
    ipvs?: IpvsApplied;
    /** UDP flows of this family kube-proxy's conntrack reconcile deleted in this sync. */
    flushed?: number;
    /** Seconds this family's conntrack reconcile took in this sync (kube-proxy's CleanStaleEntries, run after every successful sync). */
    reconcileSeconds?: number;
  }>;
  /** UDP flows deleted because they no longer reply from a serving endpoint (kube-proxy's conntrack reconcile). */
  flushed: number;
}

/** Services, EndpointSlices and Nodes decoded by kube/objects.ts (loadObjects, parseManifests, a Source). */
export type DecodedObjects = { services: Service[]; endpointSlices: EndpointSlice[]; nodes: Node[] };
