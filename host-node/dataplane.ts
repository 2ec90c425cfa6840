// dataplane.ts — the full Dataplane every host uses: the core's packet API (core/dataplane.ts)
// plus the rule front ends on top of it — iptables-restore text in, iptables-save / -L / -S out,
// and the trace that explains a packet. This is the one place the layers meet (core knows no text
// format; the text front ends know no I/O). Never touches sockets, files or the clock.
import { checkNow, Dataplane as CoreDataplane, shown, type IpvsSaveSteps } from './core/dataplane.js';
import { IPVS_RECORD_BYTES, RecordBlock, type Crc32, type SavedAffinity } from './core/snapshot.js';
import { AffinityKeeper, type AffinityCore, type RecentEntry } from './kube/affinity-keeper.js';
import { buildPacket, parseIP } from './core/packet.js';
import { coreFault } from './core/loader.js';
import {
  parseRestore, saveLines, listLines, rulesLines, joinLines, kernelOrder, ChainLines, Ruleset, type Table, type RuleLines,
  type RestoreError, type TableName, type Family,
} from './netfilter/index.js';
import { IptCompiler, loadRestore, type IptCore } from './netfilter/compile.js';
import { LiveCounters, type CounterCore } from './netfilter/live-counters.js';
import { tracePacket, type TraceCore, type TraceResult } from './netfilter/trace.js';
import { IpsetTable, type IpsetCore } from './ipset/index.js';
import { IpvsProgram, type IpvsCore } from './ipvs/program.js';
import { Ipvsadm, type IpvsadmResult } from './ipvs/ipvsadm.js';
import {
  ProxyState, parseManifests, loadObjects, decodedSet, renderIptables, SHARED_NAT_CHAINS, jumpChains, jumpRestoreText, liveTable,
  joinHostPort, type SharedChains, type ManifestIssue, type ProxyModel, type Family as KubeFamily,
} from './kube/index.js';
import { IpvsApply, type IpvsApplied } from './kube/apply-ipvs.js';
import { DirectApply } from './kube/apply-direct.js';
import { affinityDest, type DirectCore } from './core/svc-config.js';
import { directTableLines, directTrace } from './kube/direct-explain.js';
import { UdpReconcile } from './kube/stale-udp.js';
import { feedAll, feedDelta, type AppliedObjects } from './kube/object-feed.js';
import type { DirectRenderOptions } from './kube/render-direct.js';

export type { IpvsApplied };
export { RestoreFailed, type RestoreApplied, type TraceQuery, type ApplyOptions, type ApplyFailure, type ApplyResult, type DecodedObjects } from './dataplane-api.js';
import { RestoreFailed, checkApply, compiledOrRefused, familyOf, readTraceQuery, type RestoreApplied, type TraceQuery, type ApplyOptions, type ApplyFailure, type ApplyResult, type DecodedObjects } from './dataplane-api.js';
import type { DnsOptions } from './kube/dns-records.js';
import type { DnsCore } from './dns/table.js';
import { DnsLoader, type DnsInput, type DnsLoadResult } from './dns/records-from.js';
import { traceDnsQuery, traceName, type DnsQueryTrace, type DnsTraceCore, type NameTrace } from './dns/trace.js';

interface FamilyState {
  ruleset: Ruleset;
  /** kube-proxy's base-chain jumps are in (apply installs them once per family). */
  jumps?: boolean;
  /** The shared chains apply() last installed, valid while the tables are still the ones it left. */
  live?: { shared: SharedChains; filter: Table | undefined; nat: Table | undefined };
}

type FullCore = IptCore & TraceCore & CounterCore & { iptModeSet(on: number): void };

/** Which iptables listing (Dataplane.iptablesLines): iptables-save, iptables -L, or iptables -S. */
export type IptablesListing =
  | { command: 'save'; family?: Family; counters?: boolean; table?: TableName }
  | { command: 'list'; family?: Family; table?: TableName; chain?: string; exact?: boolean; lineNumbers?: boolean; verbose?: boolean }
  | { command: 'rules'; family?: Family; table?: TableName; chain?: string; counters?: boolean };

export class Dataplane extends CoreDataplane {
  private readonly udpReconcile = new UdpReconcile();
  private readonly compiler = new IptCompiler();
  private readonly liveCounters = new LiveCounters(() => this.ipt, this.compiler, () => {
    this.refresh();
    return this.dv;
  });
  private readonly families: Record<Family, FamilyState> = { 4: { ruleset: Ruleset.empty(4) }, 6: { ruleset: Ruleset.empty(6) } };

  private kube?: AppliedObjects;

  private ipsetTable?: IpsetTable;
  private dnsLoader?: DnsLoader;
  private ipvsProgram?: IpvsProgram;
  private readonly ipvsApply = new IpvsApply(this);
  private readonly directApply = new DirectApply(() => this.core as unknown as DirectCore, () => this.refresh());
  /** IPVS connections of a restored snapshot waiting for the first ipvs-mode apply. */
  /** Each restore's IPVS connections waiting for the first ipvs-mode sync (template ids are per snapshot). */
  private ipvsPending: { records: Uint8Array[]; nowMs: number; templates: Map<number, number> }[] = [];

  /**
   * IPVS virtual services, destinations, schedulers and connections in the core; packets to a
   * virtual service (or of an IPVS connection) are scheduled and forwarded by IPVS. The tables
   * are reserved on first use (`init` sizes them; defaults otherwise).
   */
  /**
   * The `recent` lists the rules name (kube-proxy's ClientIP affinity: one per KUBE-SEP chain),
   * or one list's entries at `nowMs` (undefined when no rule names it): what /proc/net/xt_recent
   * shows of the kernel's.
   */
  recentLists(): string[] {
    return [...this.compiler.recentLists()].map(([name]) => name).sort();
  }

  recentEntries(name: string, nowMs = this.lastNowMs): RecentEntry[] | undefined {
    checkNow('recentEntries', nowMs);
    return this.affinity.recentEntries(name, nowMs);
  }

  /** Whether IPVS is set up in the core (ipvs() sets it up on first use). */
  get ipvsRunning(): boolean {
    return this.ipvsProgram !== undefined;
  }

  ipvs(init?: { connLog2?: number; services?: number; destinations?: number }): IpvsProgram {
    if (!this.ipvsProgram) {
      const program = new IpvsProgram(this.core as unknown as IpvsCore);
      const seed = Number(BigInt(this.options.seed ?? 0x5eed) & 0xffffffffn);
      // Kept only once it runs: a refused init leaves no half-made program behind.
      program.init({ ...init, seed });
      this.refresh();
      this.ipvsProgram = program;
    }
    return this.ipvsProgram;
  }

  protected override saveIpvsSteps(nowMs: number, crc: Crc32): IpvsSaveSteps {
    const p = this.ipvsProgram;
    if (!p) return super.saveIpvsSteps(nowMs, crc);
    const block = new RecordBlock(crc, IPVS_RECORD_BYTES);
    const step = p.saveConnectionSteps(nowMs, (rec) => block.append(rec));
    return { step, get pieces() { return block.pieces; } };
  }

  /**
   * A snapshot's IPVS connections load once their virtual services exist: now if an ipvs-mode
   * apply has run, else at the first one (what is still missing then is dropped). In another
   * mode their flows are handed to conntrack instead (adoptIpvsNat).
   */
  protected override loadIpvs(records: Uint8Array[], nowMs: number): number {
    if (records.length === 0) return 0;
    // Restored into another mode: the flows they translated go on as conntrack DNAT flows.
    if (this.applied !== undefined && this.applied !== 'ipvs') {
      this.adoptIpvsNat();
      return 0;
    }
    this.ipvsPending.push({ records, nowMs, templates: new Map() });
    return this.ipvsApply.synced ? this.loadPendingIpvs() : 0;
  }

  /**
   * IPVS is gone: the flows it translated keep their real server through conntrack's DNAT
   * (ABI.md conntrackAdoptIpvsNat), so leaving ipvs mode — at once, or by restarting in another
   * mode with a snapshot — drops no connection.
   */
  private adoptIpvsNat(): void {
    this.core.conntrackAdoptIpvsNat();
    this.refresh();
  }

  /** ClientIP affinity (recent lists, direct stamps) through a restart: kube/affinity-keeper.ts. */
  private readonly affinity = new AffinityKeeper(() => this.core as unknown as AffinityCore, {
    lists: () => this.compiler.recentLists(),
    listId: (name) => this.compiler.recentId(name),
    ports: (family) => this.directApply.ports(family),
    slot: (family, id) => this.directApply.slot(family, id),
  }, () => this.refresh());

  protected override saveAffinity(nowMs: number): SavedAffinity { return this.affinity.save(nowMs); }
  protected override loadAffinity(saved: SavedAffinity, nowMs: number): number { return this.affinity.load(saved, nowMs); }

  private loadPendingIpvs(): number {
    const all = this.ipvsPending;
    this.ipvsPending = [];
    return all.reduce((n, p) => n + this.ipvs().loadConnections(p.records, p.nowMs, p.templates).loaded, 0);
  }

  /** Runs an `ipvsadm` command line (ipvsadm 1.31's options and output) over `ipvs()`, at the packets' clock. */
  ipvsadm(argvOrLine: string | string[], stdin?: string): IpvsadmResult {
    this.edits++;
    return new Ipvsadm(this.ipvs()).run(argvOrLine, this.lastNowMs, stdin);
  }

  /**
   * `ipvsadm -L` / `-S` of the whole table in pieces, each virtual server's made when it is
   * pulled, with `current()` as iptablesLines() has it (false once an apply or ipvsadm command
   * may have changed the table); null for any other command line (ipvsadm() answers it).
   */
  ipvsadmListing(argv: readonly string[]): { pieces: Iterable<string>; current: () => boolean } | null {
    const pieces = new Ipvsadm(this.ipvs()).listing(argv);
    const at = this.edits;
    return pieces && { pieces, current: () => this.edits === at };
  }

  /**
   * The node's ipsets (`ipset restore` / commands / save / list), sharing set names with the
   * iptables rules' `-m set --match-set`. Element timeouts run on the clock of the packets.
   */
  get ipset(): IpsetTable {
    return (this.ipsetTable ??= new IpsetTable(this.core as unknown as IpsetCore, {
      setId: (name) => this.compiler.setId(name),
      references: (name) => this.setReferences(name),
      now: () => this.lastNowMs,
    }));
  }

  // Rules naming the set, over both families (what the kernel's set->ref counts).
  private setReferences(name: string): number {
    let n = 0;
    for (const { ruleset } of Object.values(this.families)) {
      for (const t of ruleset.tables.values()) {
        for (const c of t.chains()) for (const r of c.rules) n += r.matches.filter((m) => m.kind === 'set' && m.name === name).length;
      }
    }
    return n;
  }

  private get ipt(): FullCore {
    return this.core as unknown as FullCore;
  }

  /**
   * Loads iptables-restore text (ip6tables-restore with family 6) as the kernel would: validated
   * whole, compiled only for the chains it touches, and swapped in with one commit. On any error
   * nothing changes and a RestoreFailed names the line and word at fault. Switches the core to
   * iptables mode.
   */
  iptablesRestore(text: string, opts: { family?: Family; noflush?: boolean; counters?: boolean } = {}): RestoreApplied {
    const family = familyOf(opts);
    if (typeof text !== 'string') throw new Error(`${family === 4 ? 'iptables' : 'ip6tables'}-restore: the input is text, not ${text === null ? 'null' : typeof text}`);
    opts ??= {};
    const state = this.families[family];
    const parsed = parseRestore(text, { family, noflush: opts.noflush ?? false, base: state.ruleset, counters: opts.counters ?? false });
    if (!parsed.ok) {
      const e: RestoreError = parsed.error;
      throw new RestoreFailed(e.line, e.word, e.message);
    }
    const kept = this.liveCounters.kept(family, state.ruleset, parsed.ruleset, parsed.changed, parsed.resets);
    const compiled = compiledOrRefused(() => this.compiler.compile(parsed.ruleset, parsed.changed), text, parsed.ruleset, family);
    try {
      loadRestore(this.ipt, this.compiler, compiled, (n) => this.core.cfgBuffer(n));
    } catch (e) {
      throw new RestoreFailed(0, '', `${family === 4 ? 'iptables' : 'ip6tables'}-restore: ${coreFault(e)}`);
    } finally {
      this.refresh();
    }
    state.ruleset = parsed.ruleset;
    // Kept counters first: a reset (flush, -Z, a block setting policy counters) has the last word.
    this.liveCounters.restoreKept(family, kept);
    this.liveCounters.reset(family, parsed.ruleset, parsed.resets);
    this.ipt.iptModeSet(1);
    this.affinity.loadPending();
    // Sorted when first read: a full restore touches 60 000 chains and most callers never look.
    let sorted: string[] | null = null;
    return { get touched() { return (sorted ??= [...parsed.touched].sort()); } };
  }

  /** The live rules as `iptables-save [-c] [-t table]` prints them. */
  iptablesSave(opts: { family?: Family; counters?: boolean; table?: TableName } = {}): string {
    return joinLines(this.iptablesLines({ command: 'save', ...opts }).lines);
  }

  /** `iptables -L [chain] -n -v` for one table, with the core's counters (`verbose: false`: without -v). */
  iptablesList(table: TableName = 'filter', chain?: string, opts: { family?: Family; exact?: boolean; lineNumbers?: boolean; verbose?: boolean } = {}): string {
    return joinLines(this.iptablesLines({ command: 'list', table, ...(chain !== undefined ? { chain } : {}), ...opts }).lines);
  }

  /** `iptables -S [chain]` for one table (`counters`: -S -v, with the core's counters). */
  iptablesRules(table: TableName = 'filter', chain?: string, opts: { family?: Family; counters?: boolean } = {}): string {
    return joinLines(this.iptablesLines({ command: 'rules', table, ...(chain !== undefined ? { chain } : {}), ...opts }).lines);
  }

  /**
   * One of the three listings above as lines (without newlines), each made when it is pulled, over
   * the rules as they are at this call — so a host can list 200,000 rules a slice at a time with
   * packets going on between slices. `current()` turns false once a restore has replaced the rules:
   * the counters the remaining lines would read are then other rules', and the listing is to be
   * made again. An unknown table or chain throws here, before any line.
   */
  iptablesLines(listing: IptablesListing): { lines: Iterable<string>; current: () => boolean } {
    if (listing === null || typeof listing !== 'object') throw new Error('iptablesLines: a listing is { command: "save" | "rules" | "list", table?, chain?, … }');
    const family = familyOf(listing);
    const rs = this.families[family].ruleset;
    const live = this.liveCounters.source(family);
    const table = listing.table ?? 'filter';
    const lines = listing.command === 'save'
      ? saveLines(rs, { counters: listing.counters ?? false, live, ...(listing.table ? { tables: [listing.table] } : {}) })
      : listing.command === 'list'
        ? listLines(rs, table, listing.chain, { counters: live, exact: listing.exact ?? false, lineNumbers: listing.lineNumbers ?? false, verbose: listing.verbose ?? true })
        : rulesLines(rs, table, listing.chain, listing.counters ? { counters: live } : {});
    return { lines, current: () => this.families[family].ruleset === rs };
  }

  /**
   * The same as `iptablesRules(table)`, chain by chain and line by line: each chain in that order
   * with its policy (built-in chains; null for user chains) and its `-A` lines, each printed when
   * first read. A viewer of 200,000 rules reads the few it shows, never one text of megabytes.
   */
  iptablesChains(table: TableName = 'filter', opts: { family?: Family } = {}): Array<{ name: string; policy: string | null; rules: RuleLines }> {
    const t = this.families[familyOf(opts)].ruleset.table(table);
    if (!t) return [];
    return kernelOrder(t).map((c) => ({
      name: c.name,
      policy: c.builtin ? c.policy : null,
      rules: new ChainLines(c),
    }));
  }

  /** The nfacct objects the rules name, with what they counted (`nfacct list`; e.g. kube-proxy's ct_state_invalid_dropped_pkts). */
  nfacctList(): Array<{ name: string; packets: number; bytes: number }> { return this.liveCounters.nfacct(); }

  /**
   * User chains of `table` that hold rules but that no rule jumps or goes to (`iptables -L` shows
   * them with "0 references"): no packet ever reaches their rules. Kernel order.
   */
  iptablesUnreferenced(table: TableName = 'filter', opts: { family?: Family } = {}): string[] {
    const t = this.families[familyOf(opts)].ruleset.table(table);
    if (!t) return [];
    return kernelOrder(t).filter((c) => !c.builtin && c.rules.length > 0 && t.references(c.name) === 0).map((c) => c.name);
  }

  /**
   * Explains what the live iptables rules do with a packet: every rule visited and every possible
   * outcome with its exact probability. Changes no state (no counters, conntrack or recent lists).
   * With `query`, `dns` also shows the question, the records found and the answer the core's DNS
   * table gives (as the cluster DNS address answers it on the packet path).
   */
  trace(q: TraceQuery): TraceResult & { dns?: DnsQueryTrace } {
    const dnsQuery = readTraceQuery(q);
    const proto = q.proto ?? 'tcp';
    if (this.applied === 'direct' && (proto === 'tcp' || proto === 'udp' || proto === 'sctp')) return this.traceDirect(q, proto);
    const packet = buildPacket({
      src: q.src, dst: q.dst, proto,
      sport: q.sport ?? 40000, dport: q.dport ?? 0,
      ...(dnsQuery ? { payload: dnsQuery } : {}),
      ...(proto === 'tcp' ? { flags: q.flags ?? 'S' } : {}),
      ...(proto === 'icmp' || proto === 'icmpv6' ? { icmp: { type: proto === 'icmp' ? 8 : 128, code: 0, id: q.sport ?? 1, seq: 1 } } : {}),
    });
    const r = tracePacket(this.ipt, this.compiler, packet, {
      meta: q.from === 'local' ? 1 : 0,
      nowMs: q.nowMs ?? this.lastNowMs,
      ...(q.maxOutcomes !== undefined ? { maxOutcomes: q.maxOutcomes } : {}),
    });
    this.refresh();
    if (this.ipvsProgram && (proto === 'tcp' || proto === 'udp' || proto === 'sctp')) {
      const t = this.ipvsProgram.trace({ protocol: proto, src: q.src, sport: q.sport ?? 40000, dst: q.dst, dport: q.dport ?? 0 }, q.nowMs ?? this.lastNowMs);
      const svc = t.service !== undefined ? this.ipvsProgram.service(t.service) : undefined;
      r.ipvs = {
        kind: t.kind,
        ...(svc ? {
          service: `${(svc.protocol ?? 'fwm').toUpperCase()}  ${svc.fwmark ? svc.fwmark : joinHostPort(svc.address!, svc.port)}`,
          scheduler: svc.scheduler, ...(svc.persistent !== undefined ? { persistent: svc.persistent } : {}),
        } : {}),
        choices: t.choices.map((c) => ({ to: joinHostPort(c.address, c.port || (q.dport ?? 0)), probability: c.probability })),
      };
      this.refresh();
    }
    if (!dnsQuery) return r;
    const dns = traceDnsQuery(this.core as unknown as DnsTraceCore, dnsQuery, proto === 'tcp' ? 'tcp' : 'udp');
    this.refresh();
    return { ...r, dns };
  }

  /**
   * The direct service table as the last apply in direct mode wrote it, four lines per service
   * port (frontends, Cluster and Local endpoints, policies), IPv4 then IPv6; '' in other modes.
   */
  directList(): string {
    return joinLines(this.directLines().lines);
  }

  /**
   * directList()'s lines (without newlines), each made when it is pulled; `current()` turns false
   * once an apply may have changed the table (see iptablesLines()).
   */
  directLines(): { lines: Iterable<string>; current: () => boolean } {
    const at = this.edits;
    const current = () => this.edits === at;
    if (this.applied !== 'direct') return { lines: [], current };
    const families = this.kube?.state.families, opts = this.directOpts;
    return {
      lines: (function* () { for (const f of [4, 6] as const) yield* directTableLines(families?.get(f)?.model, opts); })(),
      current,
    };
  }

  /** trace() in direct mode: the decision of the core's direct service table (kube/direct-explain.ts). */
  private traceDirect(q: TraceQuery, proto: 'tcp' | 'udp' | 'sctp'): TraceResult {
    const family = q.dst.includes(':') ? 6 : 4;
    const pod = this.options.podCIDR, svc = this.options.serviceCIDR;
    const nowMs = q.nowMs ?? this.lastNowMs;
    return directTrace(this.kube?.state.families.get(family)?.model, { ...q, proto }, {
      nodeIPs: this.options.nodeIPs, podCIDRs: typeof pod === 'string' ? pod.split(',') : pod ?? [], render: this.directOpts,
      serviceCIDRs: typeof svc === 'string' ? svc.split(',') : svc ?? [],
      affinity: (id) => this.directAffinity(id, q.src, nowMs),
    });
  }

  /**
   * In direct mode, the endpoint ("ip:port") service port `id` ("ns/name:port/TCP", kube-proxy's
   * service port id) sends ClientIP-affinity client `src` back to at `nowMs`: the one its stamp in
   * the core names, while no older than the Service's timeout; else null. Reads only.
   */
  directAffinity(id: string, src: string, nowMs = this.lastNowMs): string | null {
    if (typeof id !== 'string' || typeof src !== 'string') throw new Error(`directAffinity: id is a service port id ("ns/name:port/TCP") and src an address, not ${shown(id)} and ${shown(src)}`);
    checkNow('directAffinity', nowMs);
    if (this.applied !== 'direct') return null;
    const slot = this.directApply.slot(src.includes(':') ? 6 : 4, id);
    if (slot === undefined) return null;
    const to = affinityDest(this.core as unknown as DirectCore, slot, src, nowMs);
    this.refresh();
    return to;
  }

  /**
   * Resolves `name` through the core's DNS records (SRV names to their targets and ports; else A,
   * or AAAA for an IPv6 `src`) and traces a packet from `src` to every address found, as trace().
   */
  traceName(name: string, q: Omit<TraceQuery, 'dst' | 'query'> & { type?: 'A' | 'AAAA' }): NameTrace<TraceResult> {
    if (typeof name !== 'string') throw new Error(`bad name ${String(name)}: a DNS name is text`);
    if (q === null || typeof q !== 'object') throw new Error('bad trace query: an object { src, proto?, sport?, from?, type? }');
    parseIP(q.src);
    const type = q.type ?? (q.src.includes(':') ? 'AAAA' : 'A');
    return traceName(this.core as unknown as DnsTraceCore, name, type, q.dport ?? 0, (dst, dport) => this.trace({ ...q, dst, dport }));
  }

  /**
   * Loads the cluster DNS records (Kubernetes DNS spec) built from manifests text, decoded objects,
   * or a ready record set; the core answers from them (dnsAnswer, and on the packet path at the
   * `clusterDNS` address). Manifests and objects are loaded per Service: only Services that
   * changed since the last call are derived again (`changed`). The previous table stays if the new
   * one is refused (throws).
   */
  dns(recordsOrManifests: DnsInput, opts: DnsOptions = {}): DnsLoadResult & { changed?: string[] } {
    opts ??= {};
    this.dnsLoader ??= new DnsLoader(this.core as unknown as DnsCore);
    const r = this.dnsLoader.load(recordsOrManifests, opts);
    this.refresh();
    return r;
  }

  /**
   * Makes the dataplane serve exactly these Services, EndpointSlices and Nodes (YAML/JSON text,
   * `kubectl get -o yaml` lists, objects in API form, or objects decoded already by kube/objects.ts,
   * which are kept as given and must never be changed afterwards): the difference to the previous call goes
   * through kube-proxy's change trackers and renderer, and only the changed Services' chains are
   * rewritten (a partial sync, as kube-proxy does). Invalid objects are reported and skipped; a
   * refused sync leaves the previous rules live and forces the next sync to be full.
   */
  apply(input: string | unknown[] | DecodedObjects, opts: ApplyOptions = {}): ApplyResult {
    opts ??= {};
    const renderKey = checkApply(input, opts, this.options.podCIDR);
    this.edits++;
    const decoded = typeof input === 'object' ? decodedSet(input) : null;
    const set = typeof input === 'string' ? parseManifests(input) : Array.isArray(input) ? loadObjects(input)
      : decoded ? { ...decoded, issues: [] as ManifestIssue[] } : loadObjects([input]);
    const mode = opts.mode ?? 'iptables';
    if (mode === 'ipvs') IpvsApply.check(opts.ipvs);
    if (this.applied !== undefined && this.applied !== mode) this.leaveMode(this.applied);
    // A snapshot's IPVS connections with no ipvs mode to load into: their flows go on as DNAT.
    if (mode !== 'ipvs' && this.ipvsPending.length > 0) {
      this.ipvsPending = [];
      this.adoptIpvsNat();
    }
    this.applied = mode;
    const nodeName = opts.nodeName ?? this.kube?.nodeName ?? 'node';
    if (!this.kube || this.kube.nodeName !== nodeName) {
      this.kube = { state: new ProxyState({ nodeName }), nodeName, services: new Map(), slices: new Map(), nodes: new Map() };
    }
    const k = this.kube;
    // The rendering options (and the pod CIDR they fall back on) shape every Service's rules: when
    // they change, every Service is rendered again, as a kube-proxy restarted with them would.
    if (this.renderKey !== undefined && this.renderKey !== renderKey) k.state.requestFullSync();
    this.renderKey = renderKey;
    const first = k.services.size === 0 && k.slices.size === 0 && !k.state.initialized;
    if (opts.delta) feedDelta(k, set, opts.delta.removed ?? []);
    else feedAll(k, set);
    if (first) {
      k.state.markServicesSynced();
      k.state.markEndpointSlicesSynced();
    }
    const result: ApplyResult = { issues: set.issues.filter((i) => i.severity === 'error'), families: [], flushed: 0 };
    const plans = k.state.sync();
    const podCIDR = typeof this.options.podCIDR === 'string' ? this.options.podCIDR : this.options.podCIDR?.join(',');
    if (mode === 'ipvs') {
      try {
        result.families.push(...this.ipvsApply.sync(plans, {
          nodeName, nodeIPs: this.options.nodeIPs, topologyLabels: k.state.topologyLabels, podCIDR, iptables: opts.iptables, ipvs: opts.ipvs,
        }, (nn) => k.services.get(nn)?.spec.ports, result.issues));
        this.loadPendingIpvs();
      } catch (e) {
        k.state.requestFullSync();
        throw e;
      }
    } else for (const plan of plans) {
      if (mode === 'direct') {
        this.ipt.iptModeSet(0);
        const ropts = { nodeName, topologyLabels: k.state.topologyLabels, nodeIPs: this.options.nodeIPs, ...opts.iptables };
        this.directOpts = ropts;
        result.families.push(this.directApply.apply(plan, (nn) => k.services.get(nn)?.spec.ports, ropts, result.issues));
        this.affinity.loadPending();
        continue;
      }
      const fam = this.families[plan.family];
      const nat = fam.ruleset.table('nat');
      // Nothing else restored since the last apply: its shared chains are what it left.
      const live = fam.live && fam.live.filter === fam.ruleset.table('filter') && fam.live.nat === nat ? fam.live.shared : undefined;
      fam.live = undefined;
      const render = renderIptables(plan.model, {
        nodeIPs: this.options.nodeIPs, nodeName, topologyLabels: k.state.topologyLabels,
        ...(podCIDR ? { podCIDR } : {}), ...opts.iptables,
      }, {
        changedServices: plan.changedServices,
        // Read lazily: large clusters skip the stale-chain pass in most syncs.
        existingNatChains: { *[Symbol.iterator]() { if (nat) for (const c of nat.chains()) yield c.name; } },
        cleanupStaleChains: opts.cleanupStaleChains ?? plan.changedServices === null,
        ...(live ? { previous: live } : {}),
      });
      try {
        // kube-proxy ensures its jumps from the built-in chains (EnsureChain/EnsureRule) before it
        // restores its payload, as here: the payload's chains are then reachable as they are read,
        // and the restore checks them once, rather than a second restore walking them all again.
        if (!fam.jumps) {
          const jumps = jumpChains();
          // The jumps live in built-in chains: only those are read back as text (a whole 20k-Service
          // table printed would be megabytes); whether their targets exist, the table itself says.
          const liveOf = (t: 'filter' | 'nat') => {
            const table = fam.ruleset.table(t);
            const srcs = new Set(jumps.filter((j) => j.table === t && table?.chain(j.src)).map((j) => j.src));
            const read = liveTable([...srcs].map((c) => this.iptablesRules(t, c, { family: plan.family })).join('\n'));
            for (const j of jumps) if (j.table === t && table?.chain(j.dst)) read.chains.add(j.dst);
            return read;
          };
          const text = jumpRestoreText(jumps, { filter: liveOf('filter'), nat: liveOf('nat') });
          if (text) this.iptablesRestore(text, { family: plan.family, noflush: true });
          fam.jumps = true;
        }
        const applied = this.iptablesRestore(render.liveText, { family: plan.family, noflush: true });
        // kube-proxy's own text declares, so flushes, the shared chains in every sync: their counters
        // start again from zero on the kernel even where liveText left the rules alone.
        const shared = [
          ...render.shared.filterChains.map((l) => ({ table: 'filter' as const, chain: l.slice(1, l.indexOf(' ')), rule: -1 })),
          ...SHARED_NAT_CHAINS.map((chain) => ({ table: 'nat' as const, chain, rule: -1 })),
        ];
        this.liveCounters.reset(plan.family, fam.ruleset, shared);
        fam.live = { shared: render.shared, filter: fam.ruleset.table('filter'), nat: fam.ruleset.table('nat') };
        result.families.push({
          family: plan.family, full: render.full, changedServices: [...(plan.changedServices ?? [])].sort(),
          filterRules: render.filterRules, natRules: render.natRules, natRulesWritten: render.natRulesWritten,
          // Sorted when first read: a full sync at 20,000 Services touches 45,000 chains.
          get touched() { return applied.touched; },
        });
      } catch (e) {
        k.state.requestFullSync();
        // kube-proxy counts these per family, partial ones apart (its restore-failure metrics).
        if (e !== null && typeof e === 'object') Object.assign(e, { restoreFamily: plan.family, partialRestore: !render.full } satisfies ApplyFailure);
        throw e;
      }
    }
    // One family at a time, timed as kube-proxy times CleanStaleEntries (its reconcile metrics).
    const portsOf = (nn: string) => k.services.get(nn)?.spec.ports;
    for (const plan of plans) {
      const t0 = performance.now();
      const guards = this.udpReconcile.guards([plan], portsOf);
      const f = result.families.find((x) => x.family === plan.family);
      if (!f) continue;
      f.flushed = guards.length === 0 ? 0 : this.reconcileUdp(guards);
      f.reconcileSeconds = (performance.now() - t0) / 1000;
      result.flushed += f.flushed;
    }
    return result;
  }

  /**
   * The service ports and endpoints per IP family as the last apply() left them (kube-proxy's
   * model, the one every mode renders from); empty before the first. Read-only.
   */
  kubeModels(): Array<{ family: KubeFamily; model: ProxyModel }> {
    return [...(this.kube?.state.families.values() ?? [])].map((f) => ({ family: f.family, model: f.model }));
  }

  /** The mode the last apply() used. */
  private applied?: 'iptables' | 'ipvs' | 'direct';
  /** apply() and ipvsadm() calls so far: a listing of the tables they write is current while this stays. */
  private edits = 0;
  /** The rendering options of the last apply (a change renders every Service again). */
  private renderKey?: string;
  /** The direct mode's render settings of the last apply (trace renders the entries it explains with them). */
  private directOpts: DirectRenderOptions = {};
  /** Clears what apply() installed in `mode` and makes the next sync full. */
  private leaveMode(mode: 'iptables' | 'ipvs' | 'direct'): void {
    if (mode === 'iptables' || mode === 'ipvs') {
      for (const family of [4, 6] as const) {
        this.iptablesRestore('*filter\nCOMMIT\n*nat\nCOMMIT\n', { family });
        this.families[family].jumps = false;
      }
      this.ipt.iptModeSet(0);
      if (mode === 'ipvs') {
        this.adoptIpvsNat();
        this.ipvsProgram?.dropConnections(this.lastNowMs);
        this.ipvsProgram?.flush();
        for (const name of this.ipset.names()) this.ipset.command(['destroy', name]);
        this.ipvsApply.reset();
        this.refresh();
      }
    } else {
      this.directApply.clear();
    }
    this.kube?.state.requestFullSync();
  }
}
