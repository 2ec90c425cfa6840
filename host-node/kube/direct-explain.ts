// direct-explain.ts — what the core's direct service table (assembly/svc/decide.ts svcDecide)
// does with a new connection's first packet, step by step, from the entries render-direct.ts
// makes: frontend lookup, node port reach, REJECT without endpoints, traffic policy (which endpoint
// list), masquerade, hairpin, ClientIP affinity, and the share of the core's random draws each
// endpoint gets. Also the table's entries as lines of text (what `svcplane show direct` and the
// playground list). Used by Dataplane.trace in direct mode and by the playground. Pure: a client's
// affinity stamp, kept in the core, is asked of the caller.
import { canonicalIP, cidrContains, formatCIDR, joinHostPort, parseCIDR, parseIP, sameIP, type CIDR } from './ip.js';
import type { DirectService, NodePortReach } from '../core/svc-config.js';
import type { TraceResult } from '../netfilter/trace.js';
import type { ProxyModel } from './model.js';
import { nodePortReach, renderDirectService, type DirectRenderOptions } from './render-direct.js';

/** One step of the explanation: what was looked at, and what it decided. */
export interface DirectStep { where: string; text: string; matched: boolean; target?: string }

export type DirectDecision =
  | { kind: 'none'; steps: DirectStep[] }
  | { kind: 'verdict'; steps: DirectStep[]; verdict: 'REPLY' | 'DROP'; reason: string }
  | { kind: 'choose'; steps: DirectStep[]; entry: DirectService; list: 'cluster' | 'local'; masq: boolean };

/** The packet as the explanation needs it; `local`: the node itself sent it (OUTPUT). */
export interface DirectPacket { src: string; dst: string; proto: string; dport: number; local?: boolean }


/** An index of the table's entries by frontend, for the explanation. */
export class DirectTable {
  private readonly byAddr = new Map<string, DirectService>();
  private readonly byNodePort = new Map<string, DirectService>();

  private readonly podCIDRs: CIDR[];
  private readonly serviceCIDRs: CIDR[];
  /** Canonical cluster IPs: an unserved port of one is rejected (pipeline.ts newFlow). */
  private readonly clusterIPs: Set<string>;

  /**
   * `podCIDRs`: the core's local-traffic detector, per family (none: no masquerade by source, as
   * kube-proxy without one). `reach`: where each family's node ports answer (render-direct.ts
   * nodePortReach; a family not given: every node address, and IPv4 loopback). `serviceCIDRs`: the
   * core's service CIDRs (none: no no_service drop); `clusterIPs`: the cluster IPs of the core's
   * entries `entries` leaves out (when they are only some of them).
   */
  constructor(readonly entries: DirectService[], private readonly nodeIPs: readonly string[], podCIDRs: readonly string[],
    private readonly reach: readonly NodePortReach[] = [], more: { serviceCIDRs?: readonly string[]; clusterIPs?: Iterable<string> } = {}) {
    this.podCIDRs = podCIDRs.map(parseCIDR).filter((c): c is CIDR => c !== null);
    this.serviceCIDRs = (more.serviceCIDRs ?? []).map(parseCIDR).filter((c): c is CIDR => c !== null);
    this.clusterIPs = new Set();
    for (const s of entries) {
      for (const f of s.frontends) {
        if (f.kind === 'nodePort') this.byNodePort.set(`${s.protocol}/${f.port}`, s);
        else this.byAddr.set(`${s.protocol}/${canonicalIP(f.ip!) ?? f.ip}/${f.port}`, s);
        if (f.kind === 'cluster') this.clusterIPs.add(canonicalIP(f.ip!) ?? f.ip!);
      }
    }
    for (const ip of more.clusterIPs ?? []) this.clusterIPs.add(canonicalIP(ip) ?? ip);
  }

  /**
   * Nothing serves the packet (svcDecide's SD_NONE): pipeline.ts newFlow rejects it at a cluster IP
   * (kube-proxy's nftables mode: cluster-ips-check), drops it elsewhere in the service CIDR (no
   * Service there), and passes it on otherwise.
   */
  private unserved(p: DirectPacket, steps: DirectStep[]): DirectDecision {
    const ip = parseIP(p.dst);
    if (this.clusterIPs.has(canonicalIP(p.dst) ?? p.dst)) {
      steps.push({ where: 'cluster IP', text: `${p.dst} is a cluster IP, and no Service has ${p.proto.toUpperCase()} port ${p.dport} on it`, matched: true, target: 'REJECT (ICMP port unreachable)' });
      return { kind: 'verdict', steps, verdict: 'REPLY', reason: 'no_service' };
    }
    const cidr = ip ? this.serviceCIDRs.find((c) => cidrContains(c, ip)) : undefined;
    if (cidr) {
      steps.push({ where: 'service CIDR', text: `${p.dst} is in the service CIDR ${formatCIDR(cidr)}, and no Service holds it`, matched: true, target: 'DROP (no_service)' });
      return { kind: 'verdict', steps, verdict: 'DROP', reason: 'no_service' };
    }
    return { kind: 'none', steps };
  }

  private local(ip: string): boolean {
    // addrtype LOCAL as the core knows it: the node's addresses and loopback.
    return this.nodeIPs.some((n) => sameIP(n, ip)) || /^127\./.test(ip) || ip === '::1';
  }

  /** The core's decide.ts nodePortAddress: whether node ports answer on `ip` (a LOCAL address). */
  private reached(ip: string): boolean {
    const a = parseIP(ip);
    if (!a) return false;
    const r = this.reach.find((x) => x.family === a.family) ?? { all: true, loopback: a.family === 4, addresses: [] };
    if (r.all) return /^127\./.test(ip) || ip === '::1' ? r.loopback : this.nodeIPs.some((n) => sameIP(n, ip));
    return r.addresses.some((x) => sameIP(x, ip));
  }

  /** The core's node.ts havePodCIDR: a pod CIDR of the address's family is set. */
  private detects(ip: string): boolean {
    const a = parseIP(ip);
    return !!a && this.podCIDRs.some((c) => c.family === a.family);
  }

  private fromPod(ip: string): boolean {
    const a = parseIP(ip);
    return !!a && this.podCIDRs.some((c) => cidrContains(c, a));
  }

  /** What svcDecide does with a new connection's first packet (assembly/svc/decide.ts). */
  decide(p: DirectPacket): DirectDecision {
    const proto = p.proto.toUpperCase();
    const steps: DirectStep[] = [];
    const where = 'direct lookup';
    let entry = this.byAddr.get(`${proto}/${canonicalIP(p.dst) ?? p.dst}/${p.dport}`);
    let kind: DirectService['frontends'][number]['kind'] = 'cluster';
    if (entry) {
      kind = entry.frontends.find((f) => f.kind !== 'nodePort' && sameIP(f.ip!, p.dst) && f.port === p.dport)!.kind;
      steps.push({ where, text: `${proto} ${joinHostPort(p.dst, p.dport)} → ${entry.name} (${kind} frontend)`, matched: true, target: entry.name });
    } else if (this.local(p.dst) && (entry = this.byNodePort.get(`${proto}/${p.dport}`))) {
      // Node ports are reached on every LOCAL address (kube-proxy's KUBE-NODEPORTS with --nodeport-addresses unset).
      kind = 'nodePort';
      if (!this.reached(p.dst)) {
        // Not captured by nat KUBE-NODEPORTS (--nodeport-addresses); filter KUBE-EXTERNAL-SERVICES still sees it.
        steps.push({ where, text: `${proto} ${joinHostPort(p.dst, p.dport)}: node port ${p.dport} of ${entry.name} is not served on this address`, matched: false });
        if (!entry.hasEndpoints) {
          steps.push({ where: 'direct entry', text: 'no usable endpoint anywhere', matched: true, target: 'REJECT (ICMP port unreachable)' });
          return { kind: 'verdict', steps, verdict: 'REPLY', reason: 'no_endpoints' };
        }
        if (entry.externalLocal && entry.local.length === 0) {
          steps.push({ where: 'direct entry', text: 'externalTrafficPolicy Local, no endpoint on this node', matched: true, target: 'DROP (no_endpoints)' });
          return { kind: 'verdict', steps, verdict: 'DROP', reason: 'no_endpoints' };
        }
        return this.unserved(p, steps);
      }
      steps.push({ where, text: `${proto} ${joinHostPort(p.dst, p.dport)} is this node: node port ${p.dport} → ${entry.name}`, matched: true, target: entry.name });
    } else {
      const step: DirectStep = { where, text: `${proto} ${joinHostPort(p.dst, p.dport)}: no Service frontend`, matched: false };
      steps.push(step);
      const d = this.unserved(p, steps);
      if (d.kind === 'none') step.target = 'not a Service: passed on';
      return d;
    }
    const s = entry;
    if (!s.hasEndpoints) {
      if (p.local && (kind === 'external' || kind === 'loadBalancer') && !this.local(p.dst)) {
        // KUBE-EXTERNAL-SERVICES is reached from INPUT and FORWARD only.
        steps.push({ where: 'direct entry', text: 'no usable endpoint anywhere; the node\'s own packet to an address not its own meets no REJECT (KUBE-EXTERNAL-SERVICES: INPUT and FORWARD)', matched: false, target: 'passed on' });
        return this.unserved(p, steps);
      }
      // kube-proxy: filter KUBE-SERVICES / KUBE-EXTERNAL-SERVICES `-j REJECT`.
      steps.push({ where: 'direct entry', text: 'no usable endpoint anywhere', matched: true, target: 'REJECT (ICMP port unreachable)' });
      return { kind: 'verdict', steps, verdict: 'REPLY', reason: 'no_endpoints' };
    }
    const drop = (text: string, reason: string): DirectDecision => {
      steps.push({ where: 'direct entry', text, matched: true, target: `DROP (${reason})` });
      return { kind: 'verdict', steps, verdict: 'DROP', reason };
    };
    let list: 'cluster' | 'local' = 'cluster';
    let masq = false;
    let why = '';
    if (kind === 'cluster') {
      // KUBE-SVC / KUBE-SVL, with the cluster IP's masquerade rule (off-pod source or --masquerade-all).
      if (s.internalLocal) {
        if (s.local.length === 0) return drop('internalTrafficPolicy Local, no endpoint on this node', 'no_endpoints');
        list = 'local';
        why = 'internalTrafficPolicy Local: this node\'s endpoints';
      } else why = 'internalTrafficPolicy Cluster: every endpoint';
      masq = s.masqueradeAll || (this.detects(p.src) && !this.fromPod(p.src));
      if (masq) why += s.masqueradeAll ? '; masquerade all' : '; source outside the pod CIDR: masquerade';
    } else {
      // KUBE-FW source ranges, then KUBE-EXT.
      if (kind === 'loadBalancer' && s.firewall && !s.sourceRanges.some((r) => {
        const c = parseCIDR(r.includes('/') ? r : `${r}/${r.includes(':') ? 128 : 32}`), a = parseIP(p.src);
        return !!c && !!a && cidrContains(c, a);
      })) return drop('source outside loadBalancerSourceRanges', 'policy');
      if (!s.externalLocal) {
        masq = true;
        why = 'externalTrafficPolicy Cluster: every endpoint, masquerade';
      } else if (this.fromPod(p.src)) {
        why = 'from a pod: the external policy is skipped, every endpoint';
      } else if (this.local(p.src)) {
        masq = true;
        why = 'from this node: every endpoint, masquerade';
      } else {
        if (s.local.length === 0) return drop('externalTrafficPolicy Local, no endpoint on this node', 'no_endpoints');
        list = 'local';
        why = 'externalTrafficPolicy Local: this node\'s endpoints, client address kept';
      }
    }
    steps.push({ where: 'direct entry', text: why, matched: true, target: `${list === 'local' ? 'Local' : 'Cluster'} endpoints` });
    return { kind: 'choose', steps, entry: s, list, masq };
  }
}

/**
 * The draws of the core's random source that pick endpoint `i` of `n` (rand.ts randBelow: the top
 * 32 bits of a draw times n, shifted down 32): the endpoint's exact probability is this / 2^32.
 */
export function choiceShare(i: number, n: number): bigint {
  const edge = (k: number): bigint => ((BigInt(k) << 32n) + BigInt(n) - 1n) / BigInt(n);   // ceil(k·2^32 / n)
  return edge(i + 1) - edge(i);
}

/** Whether the endpoint chosen, `to` ("ip:port"), is masqueraded: the entry's rule, or a pod reaching itself (hairpin). */
export function masqueradedTo(d: Extract<DirectDecision, { kind: 'choose' }>, to: string, src: string): boolean {
  return d.masq || sameIP(to.slice(0, to.lastIndexOf(':')).replace(/^\[|\]$/g, ''), src);
}

/**
 * svc/decide.ts choose(): where a new connection of decision `d` from `src` can go ("ip:port") —
 * to the endpoint the client's fresh ClientIP affinity stamp names (`stamped`) while it is still in
 * the chosen list, else to any endpoint of the list — and the step that says which.
 */
export function chooseStep(d: Extract<DirectDecision, { kind: 'choose' }>, src: string, stamped: string | null): { tos: string[]; step: DirectStep } {
  const tos = d.entry[d.list].map((e) => joinHostPort(e.ip, e.port));
  if (stamped !== null && tos.includes(stamped)) {
    return { tos: [stamped], step: { where: 'direct affinity', text: `ClientIP affinity: ${src} was sent to ${stamped} within the last ${d.entry.affinityMs / 1000} s`, matched: true, target: 'DNAT' } };
  }
  return { tos, step: { where: 'direct choose', text: `uniform over ${tos.length} endpoint(s): ${tos.join(' ')}`, matched: true, target: 'DNAT' } };
}

/**
 * A trace of a new connection through the direct service table of `model`'s family, in the form
 * Dataplane.trace gives: the entries for the service ports the destination can reach are rendered
 * with the settings of the last apply (`render`) and the table decides; each endpoint of the chosen
 * list is an outcome with its exact share of the core's draws.
 */
export function directTrace(
  model: ProxyModel | undefined,
  q: { src: string; dst: string; proto: 'tcp' | 'udp' | 'sctp'; dport?: number; from?: 'external' | 'local' },
  node: {
    nodeIPs: readonly string[]; podCIDRs: readonly string[]; render: DirectRenderOptions;
    /** The core's service CIDRs (its no_service drop); none: not set. */
    serviceCIDRs?: readonly string[];
    /** The endpoint ("ip:port") service port `id`'s affinity stamp sends this client back to, if any. */
    affinity?: (id: string) => string | null;
  },
): TraceResult {
  const family = q.dst.includes(':') ? 6 : 4;
  const dport = q.dport ?? 0;
  // The entries the table could pick for this destination; whether it is this node's, decide() says.
  const entries: DirectService[] = [];
  const ids: string[] = [];
  const clusterIPs: string[] = [];
  model?.services.forEach((sp) => {
    clusterIPs.push(sp.clusterIP);
    if (sp.protocol !== q.proto.toUpperCase()) return;
    const byAddr = sp.port === dport && [sp.clusterIP, ...sp.externalIPs, ...sp.loadBalancerVIPs].some((a) => sameIP(a, q.dst));
    if (!byAddr && sp.nodePort !== dport) return;
    entries.push(renderDirectService(sp, model.endpoints.get(sp.id) ?? [], node.render, 0));
    ids.push(sp.id);
  });
  const table = new DirectTable(entries, node.nodeIPs, node.podCIDRs, [nodePortReach(family, node.render)], { serviceCIDRs: node.serviceCIDRs ?? [], clusterIPs });
  const d = table.decide({ src: q.src, dst: q.dst, proto: q.proto, dport, local: q.from === 'local' });
  const hook = q.from === 'local' ? 'OUTPUT' : 'PREROUTING';
  const steps = d.steps.map((st, rule) => ({ table: 'direct', chain: st.where, hook, rule, text: st.text, matched: st.matched, ...(st.target ? { target: st.target } : {}) }));
  // What decided: the steps that matched with a target (the entry's verdict, the endpoint choice).
  const decided = (): TraceResult['steps'] => steps.filter((st) => st.matched && st.target !== undefined);
  const one = { probability: 1, exact: { numerator: 1n, denominatorLog2: 0 }, paths: [], mark: 0, masq: false, existing: false };
  if (d.kind === 'none') return { steps, outcomes: [{ ...one, verdict: 'PASS', reason: 'none', decidedBy: [] }], truncated: false };
  if (d.kind === 'verdict') return { steps, outcomes: [{ ...one, verdict: d.verdict, reason: d.reason, decidedBy: decided() }], truncated: false };
  const stamped = d.entry.affinityMs ? node.affinity?.(ids[entries.indexOf(d.entry)]!) ?? null : null;
  const { tos, step } = chooseStep(d, q.src, stamped);
  steps.push({ table: 'direct', chain: step.where, hook, rule: steps.length, text: step.text, matched: true, target: step.target! });
  const decidedBy = decided();
  const outcomes = tos.map((to, i) => {
    const share = choiceShare(i, tos.length);
    return {
      verdict: 'FORWARD' as const, reason: 'none', to, masq: masqueradedTo(d, to, q.src), existing: false, mark: 0,
      probability: Number(share) / 2 ** 32, exact: { numerator: share, denominatorLog2: 32 }, paths: [], decidedBy,
    };
  });
  return { steps, outcomes, truncated: false };
}

/** The lines that describe one entry, each self-contained (it names its Service port) so that syncs diff line by line. */
export function directEntryLines(s: DirectService): string[] {
  const id = `${s.name} ${s.protocol}`;
  const fe = s.frontends.map((f) => f.kind === 'nodePort' ? `nodePort ${f.port}` : `${f.kind} ${joinHostPort(f.ip!, f.port)}`).join(', ');
  const eps = (list: DirectService['cluster']) => list.length ? list.map((e) => joinHostPort(e.ip, e.port)).join(' ') : '(none)';
  const policy = [
    `internal=${s.internalLocal ? 'Local' : 'Cluster'}`, `external=${s.externalLocal ? 'Local' : 'Cluster'}`,
    `affinity=${s.affinityMs ? `ClientIP ${s.affinityMs / 1000}s` : 'None'}`,
    ...(s.masqueradeAll ? ['masqueradeAll'] : []),
    ...(s.firewall ? [`sourceRanges=${s.sourceRanges.join(',')}`] : []),
    ...(s.hasEndpoints ? [] : ['no endpoints: REJECT']),
  ].join(' ');
  return [`${id} frontends ${fe}`, `${id} endpoints(Cluster) ${eps(s.cluster)}`, `${id} endpoints(Local) ${eps(s.local)}`, `${id} policy ${policy}`];
}

/** Every entry of `model`'s direct table, as directEntryLines gives them, in the model's order. */
export function* directTableLines(model: ProxyModel | undefined, opts: DirectRenderOptions): Generator<string> {
  if (!model) return;
  for (const sp of model.services.values()) yield* directEntryLines(renderDirectService(sp, model.endpoints.get(sp.id) ?? [], opts, 0));
}
