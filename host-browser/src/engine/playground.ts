// playground.ts — the worker's state: the objects, the mode they are shown in (one runner), and
// the answers the page asks for — load/edit objects, explain and send a packet, send a burst,
// read conntrack at the virtual clock, and compare modes on throwaway dataplanes. Runs unchanged
// in the Web Worker and under Node (the tests compare it with the Node API). Never touches the DOM.
import { parseManifests, type ManifestIssue } from '../../../host-node/kube/index.js';
import { presetById, type Mode, type Preset } from '../presets.js';
import { IptablesRunner, IpvsRunner, type ObjectDelta, type Objects, type Runner, type SyncChange, type TraceView, type SendOne } from './modes.js';
import { DirectRunner } from './direct.js';
import { nameSteps, resolvePacketName, type ResolvedName } from './names.js';
import type { Distribution, Outcome, WirePacket } from './outcomes.js';
import type { RulesView } from './rules-view.js';
import type { ConntrackEntry } from '../../../host-node/core/conntrack-record.js';

export interface ModeConfig {
  mode: Mode;
  /** IPVS scheduler (ignored in the iptables and direct modes). */
  scheduler: string;
}

/**
 * The objects: YAML text, or a preset — for a generated scene optionally with `edits`, decoded
 * objects that replace the scene's object of the same kind, namespace and name (or join it).
 */
export type ObjectSource = { yaml: string } | { preset: string; edits?: unknown[] };

export interface LoadRequest extends ModeConfig {
  source: ObjectSource;
  /** Start from an empty dataplane (new scene) instead of syncing the difference (an edit). */
  fresh: boolean;
  /** A packet to explain once loaded (Playground.packet without sending): one call where the page would make two. */
  explain?: { packet: WirePacket; nowMs: number };
}

/** A Service port the packet builder offers as a destination. */
export interface ServiceEntry {
  /** "namespace/name:port-name" (":" + number when the port has no name). */
  id: string;
  clusterIP: string;
  port: number;
  protocol: string;
  nodePort: number;
}

export interface LoadResult {
  issues: ManifestIssue[];
  change: SyncChange;
  /** The rules views; with `explain`, those of its trace (packet.trace.rules) instead. */
  views: RulesView[];
  /** The explained packet, or why it could not be explained. */
  packet?: PacketResult;
  packetError?: string;
  /** The builder's Service list; absent when it is the one the last load returned (an edit of a generated scene). */
  services?: ServiceEntry[];
  /** Services in the scene (the builder's list may be shorter). */
  serviceCount: number;
  ms: number;
  /** Time spent in each phase, in order ("kube-proxy sync: …", "rules view", "diff", …). */
  phases: Phase[];
}

/** One phase of a call and its time (ms, to 0.1 ms). */
export interface Phase {
  phase: string;
  ms: number;
}

export interface ConntrackRow {
  proto: string;
  original: string;
  reply: string;
  state: string;
  /** Seconds left on the virtual clock. */
  expiresInS: number;
  nat: string;
}

export interface PacketResult {
  trace: TraceView;
  /** How the destination name resolved (name packets only). */
  dns?: ResolvedName;
  /** The packet processed for real (absent when only explaining). */
  sent?: SendOne;
  conntrack: ConntrackRow[];
  /** Time spent in each phase, in order ("core trace", "trace view", "rules digest", …). */
  phases: Phase[];
}

export interface CompareColumn {
  label: string;
  outcomes: Outcome[];
  measured: Distribution;
}

export type Progress = (phase: string, done?: number, total?: number) => void;

const now = (): number => performance.now();

/**
 * Times a call's phases: `progress(phase)` closes the running phase and opens `phase` (the same
 * phase again only reports progress), `end()` closes the last one and gives the list.
 */
function phaseClock(report: Progress = () => {}): { progress: Progress; end: () => Phase[] } {
  const phases: Phase[] = [];
  let at = now();
  const close = () => {
    const last = phases.at(-1);
    const t = now();
    if (last) last.ms += t - at;
    at = t;
  };
  return {
    progress: (phase, done, total) => {
      close();
      if (phases.at(-1)?.phase !== phase) phases.push({ phase, ms: 0 });
      report(phase, done, total);
    },
    end: () => {
      close();
      return phases.map((p) => ({ phase: p.phase, ms: Math.round(p.ms * 10) / 10 }));
    },
  };
}

/** The builder lists at most this many Services (a 20k scene still traces any address). */
const MAX_ENTRIES = 500;
/** Flows listed at most (the page shows a table, not a dump). */
const MAX_ROWS = 200;

/**
 * A generated scene: its objects, where each sits (by "kind/namespace/name", indexed on the first
 * edit: a first load of 20,000 Services never asks), its builder list once listed.
 */
export class Scene {
  private index: Map<string, number> | undefined;
  services?: ServiceList;
  /** `locate`: the preset's reading of its layout (Preset.locate); else the scene is indexed. */
  constructor(readonly id: string, readonly objects: unknown[], private readonly locate?: (key: string) => number | undefined) {}
  /** Where the object with this key sits, if the scene has it. */
  at(key: string): number | undefined {
    if (this.locate) {
      const at = this.locate(key);
      return at !== undefined && at < this.objects.length && objectKey(this.objects[at]) === key ? at : undefined;
    }
    this.index ??= new Map(this.objects.map((o, i) => [objectKey(o), i]));
    return this.index.get(key);
  }
}

export class Playground {
  /** `presetOf`: the scenes a source may name (the page's presets; the warm-up's own, warm.ts). */
  constructor(private readonly presetOf: (id: string) => Preset | undefined = presetById) {}

  private runner: Runner | undefined;
  private config: ModeConfig = { mode: 'iptables', scheduler: 'rr' };
  private source: ObjectSource | undefined;
  /** The objects of `source` (an edited generated scene is put together on first use). */
  private input: () => Objects = () => [];
  /** The runner whose core holds the DNS records of `dnsInput`. */
  private dnsLoaded: Runner | undefined;
  private dnsInput: (() => Objects) | undefined;

  /** The builder's list the last load returned (an edit that keeps it leaves it out). */
  private listed: { entries: ServiceEntry[]; count: number } | undefined;

  /** The last generated scene, kept so that an edit of it does not generate it again. */
  private generated: Scene | undefined;

  /** The objects as the dataplane takes them (YAML text or decoded objects). */
  private inputOf(source: ObjectSource, progress: Progress): () => Objects {
    if ('yaml' in source) return () => source.yaml;
    const preset = this.presetOf(source.preset);
    if (!preset) throw new Error(`unknown preset "${source.preset}"`);
    if (preset.yaml !== undefined) return () => preset.yaml!;
    if (this.generated?.id !== preset.id) {
      progress('generating objects', 0, preset.size);
      const objects = preset.generate!((done, total) => progress('generating objects', done, total));
      this.generated = new Scene(preset.id, objects, preset.locate);
    }
    const scene = this.generated;
    const objects = scene.objects;
    if (!source.edits?.length) return () => objects;
    let out: unknown[] | undefined;
    return () => {
      if (out) return out;
      out = objects.slice();
      for (const e of source.edits!) {
        const at = scene.at(objectKey(e));
        if (at === undefined) out.push(e);
        else out[at] = e;
      }
      return out;
    };
  }

  /** The builder's list: for an edited generated scene the scene's own, unless an edit changes a Service it shows. */
  private serviceList(source: ObjectSource, input: () => Objects): ServiceList {
    const scene = this.generated;
    if (!('preset' in source) || scene?.id !== source.preset) return serviceEntries(input());
    const base = (scene.services ??= serviceEntries(scene.objects));
    let count = base.count;
    for (const e of source.edits ?? []) {
      if ((e as { kind?: unknown } | null)?.kind !== 'Service') continue;
      const at = scene.at(objectKey(e));
      // The full list ends at `last`: a Service edited past it, or added (it goes last), is not listed.
      if (base.entries.length < MAX_ENTRIES || (at !== undefined && at <= base.last)) return serviceEntries(input());
      if (at === undefined) count++;
    }
    return { entries: base.entries, count, last: base.last };
  }

  private static async runner(c: ModeConfig): Promise<Runner> {
    if (c.mode === 'direct') return DirectRunner.create();
    return c.mode === 'ipvs' ? IpvsRunner.create(c.scheduler) : IptablesRunner.create();
  }

  async load(req: LoadRequest, report: Progress = () => {}): Promise<LoadResult> {
    const t0 = now();
    const { progress, end } = phaseClock(report);
    const sameMode = this.config.mode === req.mode && this.config.scheduler === req.scheduler;
    const sameSource = JSON.stringify(this.source) === JSON.stringify(req.source);
    const input = sameSource ? this.input : this.inputOf(req.source, progress);
    progress('starting the core');
    const reuse = this.runner && sameMode && !req.fresh;
    const runner = reuse ? this.runner! : await Playground.runner(req);
    const delta = reuse && this.source && !sameSource ? this.editDelta(this.source, req.source) : undefined;
    const { issues, change } = runner.load(input, (phase) => progress(phase), delta);
    this.runner = runner;
    this.config = { mode: req.mode, scheduler: req.scheduler };
    this.source = req.source;
    this.input = input;
    progress('listing services');
    const { entries, count } = this.serviceList(req.source, input);
    let packet: PacketResult | undefined;
    let packetError: string | undefined;
    if (req.explain) {
      progress('packet');
      try {
        packet = this.packet(req.explain.packet, req.explain.nowMs, false);
      } catch (e) {
        packetError = e instanceof Error ? e.message : String(e);
      }
    }
    let views: RulesView[];
    if (packet) views = packet.trace.rules;
    else {
      progress('rules digest');
      views = runner.views();
    }
    const phases = end();
    report('done');
    const same = !req.fresh && this.listed?.entries === entries && this.listed.count === count;
    this.listed = { entries, count };
    return {
      issues, change, views, serviceCount: count, ms: Math.round(now() - t0), phases,
      ...(same ? {} : { services: entries }), ...(packet ? { packet } : {}), ...(packetError !== undefined ? { packetError } : {}),
    };
  }

  /**
   * Between two edits of one generated scene, the objects that differ: replaced or added by either
   * edit set and not the same now (an object an edit no longer replaces is the scene's again; one
   * it no longer adds is removed). Undefined when the sources are not edits of the same scene.
   */
  private editDelta(prev: ObjectSource, next: ObjectSource): ObjectDelta | undefined {
    if (!('preset' in prev) || !('preset' in next) || prev.preset !== next.preset || this.generated?.id !== next.preset) return undefined;
    return sceneDelta(this.generated, prev.edits ?? [], next.edits ?? []);
  }

  private active(): Runner {
    if (!this.runner) throw new Error('no objects loaded yet');
    return this.runner;
  }

  /**
   * The packet with its destination name resolved to an address and port through the cluster DNS
   * records of the loaded objects (loaded into the core on the first name after a load).
   */
  private resolve(p: WirePacket): { wire: WirePacket; dns?: ResolvedName } {
    if (!p.name) return { wire: p };
    const r = this.active();
    if (this.dnsLoaded !== r || this.dnsInput !== this.input) {
      r.dp.dns(this.input());
      this.dnsLoaded = r;
      this.dnsInput = this.input;
    }
    const dns = resolvePacketName(r.dp, p, p.name, p.search ?? []);
    const { name: _name, search: _search, ...rest } = p;
    return { wire: { ...rest, dst: dns.address ?? '', dport: dns.port }, dns };
  }

  private resolved(p: WirePacket): WirePacket {
    const { wire, dns } = this.resolve(p);
    if (dns && !dns.address) throw new Error(`${dns.name} does not resolve (${dns.asked.map((a) => `${a.name}: ${a.rcode}`).join('; ')})`);
    return wire;
  }

  /**
   * Explains the packet (no state changes), then, with `send`, processes it for real. Expired flows
   * are reaped first; the conntrack table is listed once for the trace and the flows shown.
   */
  packet(p: WirePacket, nowMs: number, send: boolean): PacketResult {
    const r = this.active();
    const { progress, end } = phaseClock();
    if (p.name) progress('name lookup');
    const { wire, dns } = this.resolve(p);
    if (dns && !dns.address) {
      const rcode = dns.asked.at(-1)?.rcode ?? 'no answer';
      const outcome = { key: `no address (${rcode})`, verdict: rcode, reason: 'dns', masq: false, probability: 1 };
      progress('rules digest');
      const rules = r.views();
      progress('conntrack');
      const conntrack = this.conntrack(nowMs);
      return { trace: { steps: nameSteps(dns), outcomes: [outcome], truncated: false, existing: false, rules }, dns, conntrack, phases: end() };
    }
    progress('conntrack');
    this.expire(nowMs);
    const flows = r.dp.conntrack(nowMs);
    const trace = r.trace(wire, nowMs, progress, flows);
    if (dns) trace.steps = [...nameSteps(dns), ...trace.steps];
    const out: PacketResult = { trace, conntrack: [], ...(dns ? { dns } : {}), phases: [] };
    if (send) {
      progress('send');
      out.sent = r.sendOne(wire, nowMs);
    }
    progress('conntrack rows');
    out.conntrack = this.flowRows(nowMs, send ? r.dp.conntrack(nowMs) : flows);
    out.phases = end();
    return out;
  }

  /**
   * Sends `count` new connections (fresh source ports). The expected outcomes are the trace of
   * the burst's first packet before it is sent: a new connection, whatever the form's own
   * port has already opened.
   */
  send(named: WirePacket, count: number, nowMs: number, progress: Progress = () => {}): { trace: TraceView; measured: Distribution } {
    const r = this.active();
    const p = this.resolved(named);
    const ports = r.takePorts(count, p.sport);
    const trace = r.trace({ ...p, sport: ports[0] ?? p.sport }, nowMs);
    progress(`sending ${count.toLocaleString('en-US')} packets`);
    return { trace, measured: r.send(p, ports, nowMs) };
  }

  /** Live flows at the virtual clock (expired ones reaped first). */
  conntrack(nowMs: number): ConntrackRow[] {
    this.expire(nowMs);
    return this.flowRows(nowMs, this.active().dp.conntrack(nowMs));
  }

  /** Reaps the flows (and IPVS connections) expired at the virtual clock. */
  private expire(nowMs: number): void {
    const r = this.active();
    r.dp.expire(nowMs);
    if (r.mode === 'ipvs') r.dp.ipvs().expire(nowMs);
  }

  /** The rows shown for the IPVS connections and the conntrack entries `flows` (listed at `nowMs`). */
  private flowRows(nowMs: number, flows: readonly ConntrackEntry[]): ConntrackRow[] {
    const r = this.active();
    const ipvs: ConntrackRow[] = [];
    if (r.mode === 'ipvs') {
      for (const c of r.dp.ipvs().connections(nowMs).slice(0, MAX_ROWS)) {
        ipvs.push({
          proto: `ipvs ${c.protocol}`,
          original: `${c.client}:${c.clientPort} → ${c.virtual}:${c.virtualPort}`,
          reply: `${c.destination}:${c.destinationPort} → ${c.client}:${c.clientPort}`,
          state: c.template ? 'template (persistence)' : c.state,
          expiresInS: Math.max(0, Math.round(c.expireMs / 1000)),   // time left, as ipvsadm -Lc prints it
          nat: c.forwarding,
        });
      }
    }
    return ipvs.concat(flows.slice(0, MAX_ROWS - ipvs.length).map((e) => ({
      proto: e.proto,
      original: `${e.original.src}:${e.original.sport} → ${e.original.dst}:${e.original.dport}`,
      reply: `${e.reply.src}:${e.reply.sport} → ${e.reply.dst}:${e.reply.dport}`,
      state: e.state ?? (e.seenReply ? 'replied' : 'unreplied'),
      expiresInS: Math.max(0, Math.round((e.expiresMs - nowMs) / 1000)),
      nat: [e.nat.dnat ? 'dnat' : '', e.nat.snat ? 'snat' : ''].filter(Boolean).join('+') || '-',
    })));
  }

  /** The same objects and packet through each mode, each on a fresh dataplane (nothing here changes). */
  async compare(named: WirePacket, nowMs: number, columns: ModeConfig[], count: number, progress: Progress = () => {}): Promise<CompareColumn[]> {
    if (!this.source) throw new Error('no objects loaded yet');
    const p = this.resolved(named);
    const out: CompareColumn[] = [];
    for (const [i, c] of columns.entries()) {
      const label = c.mode === 'ipvs' ? `ipvs ${c.scheduler}` : c.mode;
      progress(`compare: ${label}`, i, columns.length);
      const r = await Playground.runner(c);
      r.load(this.input, () => {});
      const ports = r.takePorts(count, p.sport);
      const t = r.trace({ ...p, sport: ports[0] ?? p.sport }, nowMs);
      out.push({ label, outcomes: t.longRun ?? t.outcomes, measured: r.send(p, ports, nowMs) });
    }
    return out;
  }
}

/** The objects that differ between a scene with `prev` edits and with `next` edits (see Playground.editDelta). */
export function sceneDelta(scene: Scene, prev: unknown[], next: unknown[]): ObjectDelta {
  const before = new Map(prev.map((o) => [objectKey(o), o]));
  const after = new Map(next.map((o) => [objectKey(o), o]));
  const delta: ObjectDelta = { objects: [], removed: [] };
  for (const key of new Set([...before.keys(), ...after.keys()])) {
    const at = scene.at(key);
    const base = at === undefined ? undefined : scene.objects[at];
    const was = before.get(key) ?? base, now = after.get(key) ?? base;
    if (now === undefined) {
      const [kind, ns, name] = key.split('/');
      delta.removed.push(`${kind} ${ns}/${name}`);
    } else if (was === undefined || JSON.stringify(was) !== JSON.stringify(now)) {
      delta.objects.push(now);
    }
  }
  return delta;
}

/** "kind/namespace/name" of a decoded object. */
function objectKey(o: unknown): string {
  const x = o as { kind?: unknown; metadata?: { namespace?: unknown; name?: unknown } } | null;
  return `${String(x?.kind)}/${String(x?.metadata?.namespace ?? 'default')}/${String(x?.metadata?.name)}`;
}

/** The packet builder's Service ports, the Services counted, and the index of the last object listed (-1: none). */
export interface ServiceList {
  entries: ServiceEntry[];
  count: number;
  last: number;
}

/** Service ports for the builder: from YAML (parsed) or raw decoded objects (read directly, only as many as the list shows). */
export function serviceEntries(input: Objects): ServiceList {
  type Raw = { kind?: string; metadata?: { name?: string; namespace?: string }; spec?: { clusterIP?: string; ports?: Array<{ name?: string; port?: number; protocol?: string; nodePort?: number }> } };
  const entries: ServiceEntry[] = [];
  let last = -1;
  // Raw objects are read as they come (a shared link's edits may hold anything): a field of the
  // wrong kind counts as missing here, and apply() names it.
  const num = (v: unknown): number => (typeof v === 'number' ? v : 0);
  const add = (at: number, namespace: string, name: string, clusterIP: string, pt: { name?: string | null; port?: number; protocol?: string; nodePort?: number }) => {
    if (entries.length >= MAX_ENTRIES) return;
    last = at;
    entries.push({
      id: `${namespace}/${name}:${pt.name || pt.port}`,
      clusterIP: typeof clusterIP === 'string' ? clusterIP : '', port: num(pt.port),
      protocol: typeof pt.protocol === 'string' ? pt.protocol.toLowerCase() : 'tcp', nodePort: num(pt.nodePort),
    });
  };
  if (typeof input === 'string') {
    const services = parseManifests(input).services;
    services.forEach((s, i) => {
      for (const pt of s.spec.ports) add(i, s.metadata.namespace, s.metadata.name, s.spec.clusterIP, pt);
    });
    return { entries, count: services.length, last };
  }
  let count = 0;
  (input as Raw[]).forEach((o, i) => {
    if (o?.kind !== 'Service') return;
    count++;
    const ports: unknown = o.spec?.ports;
    if (entries.length >= MAX_ENTRIES || !Array.isArray(ports)) return;
    for (const pt of ports) if (pt !== null && typeof pt === 'object') add(i, o.metadata?.namespace ?? 'default', o.metadata?.name ?? '', o.spec?.clusterIP ?? '', pt);
  });
  return { entries, count, last };
}
