// dataplane.ts — the one API every host uses: create a core, give it the node and its services,
// push packets (one or a batch) with the time, read conntrack and counters, snapshot and restore
// flows. Wraps the numeric ABI (abi.ts); owns the only views of the core's memory and renews them
// when memory grows. Never parses rule text or Kubernetes objects, never touches sockets or files.
import { instantiateCore, type WasmSource } from './loader.js';
import {
  type CoreExports, type Verdict, type Reason, VERDICTS, REASONS, COUNTERS_AFTER_REASONS, type CtState, ctStateName,
  DESC, META_LOCAL, META_TRACKED_ONLY, META_CSUM_VALID, SVC_ERRORS, CT_NONE,
} from './abi.js';
import { formatIP, said } from './packet.js';
import { ipWords, tryParseIP } from './words.js';
import { encodeServices, type ServiceSpec } from './svc-config.js';
import { decodeRecord, RECORD_BYTES, type ConntrackEntry } from './conntrack-record.js';
import { checkedFilter, conntrackMatches, type ConntrackFilter } from './conntrack-list.js';
import { FLUSH_KEY_BYTES, flushKeys, reconcileKeys, writeKeys, type ConntrackKey, type FlowFlush, type FlushProtocol, type UdpGuard } from './conntrack-keys.js';
export type { FlowFlush, UdpGuard, UdpEndpoint } from './conntrack-keys.js';

/** A flow table event (Dataplane.conntrackEventsTake): the flow as it was then. */
export interface ConntrackEvent {
  kind: 'NEW' | 'UPDATE' | 'DESTROY';
  /** For an UPDATE, whether its TCP state changed (the kernel sends the state only then); true otherwise. */
  stateChanged: boolean;
  flow: ConntrackEntry;
}
/** The core's event kinds (assembly/conntrack/events.ts CT_EVENT_*). */
const EVENT_KINDS: Record<number, ConntrackEvent['kind']> = { 1: 'NEW', 2: 'DESTROY', 3: 'UPDATE' };
/** An event's bytes as the core hands them out (assembly/conntrack/events.ts CT_EVENT_SLOT). */
const EVENT_SLOT = 8 + RECORD_BYTES;
import { Crc32, IPVS_RECORD_BYTES, RecordBlock, SnapshotError, concatBytes, decodeSnapshot, snapshotChunks, type SavedAffinity } from './snapshot.js';
import { setClusterDns, type ClusterDnsCore } from './cluster-dns.js';
import { ConfigLog, recordConfig, applySvp, decodeSvp, savedOptions } from '../embed/svp.js';

/** IPVS's part of a snapshot being taken: `step` reads up to `max` more entries (true once all are read) into `pieces`. */
export interface IpvsSaveSteps { step(max: number): boolean; readonly pieces: Uint8Array[] }
/** A snapshot being taken (Dataplane.snapshotSteps). */
export interface SnapshotSteps {
  /** Reads up to `max` more entries (the flows, then IPVS's connections); true once all have been read. */
  step(max: number): boolean;
  /**
   * The snapshot of what the steps read, with IPVS's connections and ClientIP affinity as they are
   * now: its bytes in chunks, written one after another (the flows' block is one, not copied).
   */
  finish(): Uint8Array[];
}
export interface DataplaneOptions {
  /** The node's own addresses (addrtype LOCAL); the first of each family is the default masquerade source. */
  nodeIPs: string[];
  /** Pod CIDR(s): sources outside them are masqueraded on the way to a Service (kube-proxy's local detector). */
  podCIDR?: string | string[];
  /** Service CIDR(s): a new flow to an address there that no Service holds is dropped (direct mode). */
  serviceCIDR?: string | string[];
  /** Masquerade source per family, when it should not be the node IP (e.g. an address routed to the TUN). */
  masqueradeIPs?: string[];
  /** Seed for flow hashing and every random choice; the same seed gives the same choices everywhere. */
  seed?: number | bigint;
  /** Conntrack capacity (rounded up to a power of two), default 65536. */
  conntrackCapacity?: number;
  /** How many of those slots may hold IPv6 flows (power of two ≤ capacity), default capacity / 16. */
  conntrackCapacity6?: number;
  /**
   * Cluster DNS address(es), one per family, optional port (default 53): "10.96.0.10", "[fd00::a]:53".
   * In direct mode UDP queries to it are answered by the core from the records Dataplane.dns() loaded.
   */
  clusterDNS?: string | string[];
  /** The core module or its bytes; default: the embedded release build. */
  wasm?: WasmSource;
  /** Record every control call so that `compiled()` can write the configuration as a .svp file. */
  record?: boolean;
}

export interface ProcessResult {
  verdict: Verdict;
  /** The packet as it leaves the core (rewritten, or the generated reply); absent on DROP. */
  packet?: Uint8Array;
  reason?: Reason;
  ctstate?: CtState;
}

export interface PacketIn {
  bytes: Uint8Array;
  /** Originated on this node (OUTPUT path) rather than arriving from outside. */
  local?: boolean;
  /**
   * Routed here only so a connection the core tracks can be un-NATed (an endpoint's reply steered
   * by policy routing): if it belongs to none, it comes back untouched (PASS), untracked.
   */
  trackedOnly?: boolean;
  /**
   * The transport checksum is known good (the host verified it, as a NIC or TUN reports): it is not
   * verified again. Otherwise an incoming packet whose checksum fails tracks nothing (conntrack's
   * nf_conntrack_checksum): INVALID in iptables mode, dropped in direct mode.
   */
  checksumVerified?: boolean;
}

/** Room for a reply a packet may be turned into (ICMP errors quote up to this much). */
const REPLY_ROOM = 1280 + 64;

/** The core holds at most 2^24 flows (assembly/index.ts init()). */
const CT_MAX_LOG2 = 24;

/** A flow count option as the exponent of the power of two that holds it; throws for what no table could hold. */
/** Each CIDR of a podCIDR / serviceCIDR option as family, address words and prefix; throws on the first that is not one. */
function eachCIDR(field: 'podCIDR' | 'serviceCIDR', v: string | string[] | undefined, set: (family: 4 | 6, words: number[], bits: number) => void): void {
  for (const cidr of v === undefined ? [] : Array.isArray(v) ? v : [v]) {
    const [addr, len] = typeof cidr === 'string' ? cidr.split('/') : [];
    const ip = addr ? tryParseIP(addr) : null;
    const bits = Number(len);
    if (!ip || !Number.isInteger(bits) || bits < 0 || bits > ip.length * 8) throw new Error(`${field}: not a CIDR: ${said(cidr)}`);
    set(ip.length === 4 ? 4 : 6, ipWords(ip), bits);
  }
}

function capacityLog2(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 2 ** CT_MAX_LOG2) {
    throw new Error(`${name} ${String(v)}: a whole number of flows from 1 to ${2 ** CT_MAX_LOG2}`);
  }
  let k = 0;
  while (2 ** k < v) k++;
  return k;
}

/** A count the core takes as a u32: a whole number 0 … 2^32 - 1 (larger ones would wrap). */
const isCount = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 0 && (n as number) <= 0xffffffff;

/** A value a JavaScript caller passed, for a message: objects only by kind (never read). */
export function shown(v: unknown): string {
  return v !== null && typeof v === 'object' ? 'of the wrong kind' : String(v);
}

/** Refuses a clock that is no finite number (a JavaScript caller's mistake) in `what`. */
export function checkNow(what: string, nowMs: unknown): void {
  if (typeof nowMs === 'number' && Number.isFinite(nowMs)) return;
  throw new Error(`${what}: bad nowMs ${shown(nowMs)}: the time in milliseconds`);
}

/**
 * Refuses, before any packet runs, a batch a JavaScript caller got wrong: not a list, a packet
 * that is no Uint8Array (or { bytes }), or a clock that is no finite number. A batch that failed
 * half-way would lose the results of the packets already run.
 */
function checkBatch(packets: Array<Uint8Array | PacketIn>, nowMs: number, arenaBytes: number): void {
  if (!Array.isArray(packets)) throw new Error('processBatch: packets is a list of Uint8Array or { bytes, ... }');
  checkNow('process', nowMs);
  for (let i = 0; i < packets.length; i++) {
    const p = packets[i];
    if (!(p instanceof Uint8Array) && !(p !== null && typeof p === 'object' && p.bytes instanceof Uint8Array)) {
      throw new Error(`process: packet ${i} is no Uint8Array (nor { bytes: Uint8Array })`);
    }
    const bytes = p instanceof Uint8Array ? p : p.bytes;
    if (bytes.length > arenaBytes) throw new Error(`process: packet ${i} of ${bytes.length} bytes exceeds the I/O arena (${arenaBytes})`);
    // A view of a detached buffer reads as empty and throws once copied (Node 20 has no `detached`).
    if (bytes.length === 0) {
      try {
        NO_BYTES.set(bytes);
      } catch {
        throw new Error(`process: packet ${i}'s buffer is detached`);
      }
    }
  }
}
const NO_BYTES = new Uint8Array(0);

export class Dataplane {
  protected u8!: Uint8Array;
  protected dv!: DataView;
  private readonly descBase: number;
  private readonly dataBase: number;
  private readonly dataBytes: number;
  private readonly maxBatch: number;
  protected lastNowMs = 0;
  /** The control calls made so far, when created with `record: true`. */
  configLog?: ConfigLog;

  /** Wraps an initialised core; hosts call Dataplane.create() instead. */
  constructor(readonly core: CoreExports, readonly options: DataplaneOptions) {
    this.descBase = core.ioDescPtr();
    this.dataBase = core.ioDataPtr();
    this.dataBytes = core.ioDataBytes();
    this.maxBatch = core.ioMaxBatch();
    this.refresh();
  }

  static async create<T extends Dataplane>(this: new (core: CoreExports, options: DataplaneOptions) => T, options: DataplaneOptions): Promise<T> {
    if (options === null || typeof options !== 'object') throw new Error('Dataplane.create: options { nodeIPs, podCIDR?, conntrackCapacity?, ... }');
    const log = options.record ? new ConfigLog() : undefined;
    const raw = await instantiateCore(options.wasm);
    const core = log ? recordConfig(raw, log) : raw;
    const cap = Math.max(4, capacityLog2('conntrackCapacity', options.conntrackCapacity ?? 65536));
    const cap6 = options.conntrackCapacity6 !== undefined ? capacityLog2('conntrackCapacity6', options.conntrackCapacity6) : Math.max(0, cap - 4);
    const s = options.seed ?? 0x5eed;
    if (typeof s !== 'bigint' && !(typeof s === 'number' && Number.isSafeInteger(s))) throw new Error(`seed ${String(s)}: an integer`);
    const seed = BigInt(s);
    // assembly/conntrack: IPv6 flows take side slots, at most 2^22 of them.
    if (Math.min(cap6, cap) > 22) throw new Error(`conntrackCapacity6 ${options.conntrackCapacity6 ?? 2 ** (cap - 4)}: at most 4194304 (2^22) IPv6 flows`);
    const rc = core.init(cap, Math.min(cap6, cap), Number(seed & 0xffffffffn), Number((seed >> 32n) & 0xffffffffn));
    if (rc !== 0) throw new Error(`svcplane core init failed (${rc}): capacity 2^${cap} could not be reserved`);
    const dp = new this(core, options);
    dp.configLog = log;
    dp.setNode(options);
    return dp;
  }

  /**
   * A dataplane configured from a .svp file (`compiled()`, `svcplane compile`): the recorded control
   * calls replayed into a fresh core, no text parsed. A damaged, truncated or foreign file is rejected
   * with an SvpError before any call is made. Rule text, trace and apply() state is not in the file.
   */
  static async load<T extends Dataplane>(this: new (core: CoreExports, options: DataplaneOptions) => T, bytes: Uint8Array, opts: { wasm?: WasmSource } = {}): Promise<T> {
    const svp = decodeSvp(bytes);
    const options: DataplaneOptions = { ...(savedOptions(svp.meta) as DataplaneOptions), ...opts };
    const core = await instantiateCore(opts.wasm);
    applySvp(core, svp);
    return new this(core, options);
  }

  /** The configuration so far as a .svp file (needs `record: true`); `meta` is stored alongside. */
  compiled(meta: Record<string, unknown> = {}): Uint8Array {
    if (!this.configLog) throw new Error('compiled(): this dataplane was not created with { record: true }');
    const { wasm: _wasm, record: _record, ...options } = this.options;
    return this.configLog.encode({ ...meta, options: { ...options, ...(options.seed !== undefined ? { seed: String(options.seed) } : {}) } });
  }

  /**
   * Replaces the pod CIDR(s), the local-traffic detector of direct mode and of rules rendered
   * without one of their own: for a node whose pod CIDRs are known only once its Node object is
   * (kube-proxy's --detect-local-mode NodeCIDR). A family left out has none. Checked whole before
   * anything changes; `options.podCIDR` says the new value.
   */
  setPodCIDR(podCIDR: string[]): void {
    eachCIDR('podCIDR', podCIDR, () => {});
    this.setNode({ ...this.options, podCIDR });
    this.options.podCIDR = podCIDR;
  }

  private setNode(o: DataplaneOptions): void {
    const c = this.core;
    c.nodeClear();
    const masq = new Map<number, Uint8Array>();
    if (!Array.isArray(o.nodeIPs)) throw new Error('nodeIPs: the list of the node\'s addresses, e.g. ["198.18.0.1"]');
    for (const text of o.nodeIPs) {
      const ip = typeof text === 'string' ? tryParseIP(text) : null;
      if (!ip) throw new Error(`nodeIPs: not an IP address: ${said(text)}`);
      const w = ipWords(ip);
      if (c.nodeLocal(ip.length === 4 ? 4 : 6, ...w) !== 0) throw new Error('nodeIPs: too many addresses (64 at most)');
      if (!masq.has(ip.length)) masq.set(ip.length, ip);
    }
    if (o.masqueradeIPs !== undefined && !Array.isArray(o.masqueradeIPs)) throw new Error('masqueradeIPs: a list of addresses');
    for (const text of o.masqueradeIPs ?? []) {
      const ip = typeof text === 'string' ? tryParseIP(text) : null;
      if (!ip) throw new Error(`masqueradeIPs: not an IP address: ${said(text)}`);
      masq.set(ip.length, ip);
    }
    for (const ip of masq.values()) c.nodeMasquerade(ip.length === 4 ? 4 : 6, ...ipWords(ip));
    eachCIDR('podCIDR', o.podCIDR, (f, w, bits) => c.nodePodCIDR(f, w[0]!, w[1]!, w[2]!, w[3]!, bits));
    eachCIDR('serviceCIDR', o.serviceCIDR, (f, w, bits) => c.nodeServiceCIDR(f, w[0]!, w[1]!, w[2]!, w[3]!, bits));
    setClusterDns(c as unknown as ClusterDnsCore, o.clusterDNS);
  }

  /** Views of core memory; renewed whenever memory has grown (old views detach). */
  protected refresh(): void {
    const buf = this.core.memory.buffer;
    if (!this.u8 || this.u8.buffer !== buf) {
      this.u8 = new Uint8Array(buf);
      this.dv = new DataView(buf);
    }
  }

  /** Replaces the direct service table atomically; on error the old table stays live. */
  setServices(specs: ServiceSpec[]): number {
    if (!Array.isArray(specs)) throw new Error(`setServices: specs is a list of services { vip, port, endpoints, … }, not ${shown(specs)}`);
    const blob = encodeServices(specs);
    const ptr = this.core.cfgBuffer(blob.length);
    this.refresh();
    this.u8.set(blob, ptr);
    const rc = this.core.loadServices(blob.length);
    this.refresh();
    if (rc < 0) throw new Error(`service table rejected: ${SVC_ERRORS[rc] ?? `error ${rc}`}`);
    return rc;
  }

  process(packet: Uint8Array | PacketIn, nowMs: number): ProcessResult {
    return this.processBatch([packet], nowMs)[0]!;
  }

  processBatch(packets: Array<Uint8Array | PacketIn>, nowMs: number): ProcessResult[] {
    checkBatch(packets, nowMs, this.dataBytes);
    const out: ProcessResult[] = [];
    let i = 0;
    while (i < packets.length) {
      this.refresh();
      let n = 0;
      let off = 0;
      while (i < packets.length && n < this.maxBatch) {
        const p = packets[i]!;
        const bytes = p instanceof Uint8Array ? p : p.bytes;
        const cap = Math.max(bytes.length, REPLY_ROOM);
        if (off + cap > this.dataBytes) break;
        this.u8.set(bytes, this.dataBase + off);
        const d = this.descBase + n * DESC.bytes;
        this.dv.setUint32(d + DESC.off, off, true);
        this.dv.setUint32(d + DESC.len, bytes.length, true);
        this.dv.setUint32(d + DESC.cap, cap, true);
        this.dv.setUint32(d + DESC.meta, p instanceof Uint8Array ? 0 : (p.local ? META_LOCAL : 0) | (p.trackedOnly ? META_TRACKED_ONLY : 0) | (p.checksumVerified ? META_CSUM_VALID : 0), true);
        off += (cap + 7) & ~7;
        n++;
        i++;
      }
      this.core.processBatch(n, nowMs);
      this.lastNowMs = nowMs;
      this.refresh();
      for (let k = 0; k < n; k++) {
        const d = this.descBase + k * DESC.bytes;
        const verdict = VERDICTS[this.dv.getUint8(d + DESC.verdict)] ?? 'DROP';
        const reason = REASONS[this.dv.getUint16(d + DESC.reason, true)] ?? 'none';
        const r: ProcessResult = { verdict };
        if (reason !== 'none') r.reason = reason;
        const st = this.dv.getUint8(d + DESC.ctstate);
        const name = ctStateName(st);
        if (name) r.ctstate = name;
        if (verdict !== 'DROP') {
          const o = this.dataBase + this.dv.getUint32(d + DESC.off, true);
          r.packet = this.u8.slice(o, o + this.dv.getUint32(d + DESC.len, true));
        }
        out.push(r);
      }
    }
    return out;
  }

  /** Removes expired flows, scanning at most `budget` slots. */
  expire(nowMs: number, budget = 1 << 30): number {
    checkNow('expire', nowMs);
    if (!isCount(budget)) throw new Error(`expire: bad budget ${shown(budget)}: a number of table slots`);
    this.lastNowMs = nowMs;
    return this.core.expire(nowMs, budget);
  }

  /**
   * Makes up to `maxBytes` more of the conntrack table's unused storage resident (its memory is
   * only reserved at start, and fetched from the system page by page as connections first reach
   * it); returns the bytes still to go, 0 when all are. Changes no connection. A host calls it
   * while idle after start, so new connections then never wait for a page fault.
   */
  warmConntrack(maxBytes = 1 << 20): number {
    if (!isCount(maxBytes)) throw new Error(`warmConntrack: bad maxBytes ${shown(maxBytes)}: a number of bytes`);
    return this.core.conntrackWarm(maxBytes) >>> 0;
  }

  /** Every live flow, with absolute expiry times on the caller's clock (that of the last call). */
  conntrack(nowMs = this.lastNowMs): ConntrackEntry[] {
    return this.conntrackFrom(0, Infinity, nowMs).flows;
  }

  /**
   * Up to `max` live flows from table slot `from` on, and the slot to go on from
   * (null at the end): a host lists a large table a slice at a time, with packets between slices
   * (a flow that comes or goes meanwhile may be listed or not, as in the kernel's own listing).
   */
  conntrackFrom(from: number, max: number, nowMs = this.lastNowMs): { flows: ConntrackEntry[]; next: number | null } {
    checkNow('conntrack', nowMs);
    return this.walkFlows('conntrackFrom', from, max, nowMs, () => true);
  }

  /**
   * The live flows from slot `from` on (up to `max` slots that hold one), decoded at `nowMs`,
   * those `keep` takes, and the slot to go on from (null at the end). A connection whose time is
   * up but not yet reaped (killed by a reset, say) is skipped: it is gone for every packet.
   */
  private walkFlows(what: string, from: number, max: number, nowMs: number, keep: (e: ConntrackEntry, slot: number) => boolean): { flows: ConntrackEntry[]; next: number | null } {
    if (!Number.isInteger(from) || from < 0 || typeof max !== 'number' || !(max > 0)) throw new Error(`${what}: bad slot ${shown(from)} or count ${shown(max)}`);
    const flows: ConntrackEntry[] = [];
    // Past the table's last slot there is nothing (the core's u32 slot would wrap back to slot 0).
    if (from > 0xffffffff) return { flows, next: null };
    const buf = this.core.cfgBuffer(RECORD_BYTES);
    let i = this.core.conntrackNext(from) >>> 0;
    for (let seen = 0; i !== CT_NONE && seen < max; i = this.core.conntrackNext(i + 1) >>> 0, seen++) {
      if (this.core.conntrackExport(i, buf, nowMs) >>> 0 === 0) continue;
      this.refresh();
      const e = decodeRecord(this.dv, buf, nowMs);
      if (keep(e, i)) flows.push(e);
    }
    return { flows, next: i === CT_NONE ? null : i };
  }

  /**
   * Deletes the flows `filter` selects — conntrack -L's selection (family, proto, src, dst,
   * replySrc, replyDst, sport, dport; every field given must hold, `{}` selects every flow) — as
   * `conntrack -D` deletes the kernel's, and returns them as they were. The next packet of a
   * deleted flow is a new connection: the rules or the scheduler choose its endpoint again, which
   * is how an operator moves a long-lived UDP flow off an endpoint by hand. A filter it cannot
   * read throws, naming the field, before anything is deleted.
   */
  conntrackDelete(filter: ConntrackFilter = {}, nowMs = this.lastNowMs): ConntrackEntry[] {
    return this.conntrackDeleteFrom(0, Infinity, filter, nowMs).flows;
  }

  /**
   * conntrackDelete() over up to `max` flows from table slot `from` on (the slice a host deletes
   * between packet batches), with the slot to go on from (null at the end).
   */
  conntrackDeleteFrom(from: number, max: number, filter: ConntrackFilter, nowMs = this.lastNowMs): { flows: ConntrackEntry[]; next: number | null } {
    checkNow('conntrackDelete', nowMs);
    const f = checkedFilter(filter);
    return this.walkFlows('conntrackDeleteFrom', from, max, nowMs, (e, slot) => conntrackMatches(e, f) && this.core.conntrackDelete(slot) === 1);
  }

  /**
   * Starts (`slots` 1 … 65536: the events the core holds until they are taken) or stops (0)
   * recording the flow table's events, as `conntrack -E` listens to the kernel's: NEW when a
   * connection is stored (its first packet accepted), UPDATE when a stored one changes (its
   * first reply seen, assured, a new TCP state), DESTROY when one goes (its time up, deleted,
   * flushed, dropped early). Starting empties what was held.
   */
  conntrackEvents(slots: number): void {
    if (!Number.isInteger(slots) || slots < 0 || slots > 65536) throw new Error(`conntrackEvents: bad slots ${shown(slots)}: 0 (stop) to 65536`);
    if (this.core.conntrackEvents(slots) < 0) throw new Error(`conntrackEvents: no room for a ring of ${slots} events; recording goes on as it was`);
  }

  /**
   * The events recorded since the last take, oldest first — each flow as it was at its event,
   * its lifetime counted from then (decoded at `nowMs`: a line printed at `nowMs` shows the
   * seconds it had left at the event) — and how many the core could not hold since recording
   * started (it holds `slots`; a taker that comes too seldom loses the newest).
   */
  conntrackEventsTake(nowMs = this.lastNowMs): { events: ConntrackEvent[]; lost: number } {
    checkNow('conntrackEventsTake', nowMs);
    const events: ConntrackEvent[] = [];
    const max = 256;
    const buf = this.core.cfgBuffer(max * EVENT_SLOT);
    for (;;) {
      const n = this.core.conntrackEventsRead(max);
      if (n <= 0) break;
      this.refresh();
      for (let i = 0; i < n; i++) {
        const at = buf + i * EVENT_SLOT;
        events.push({ kind: EVENT_KINDS[this.dv.getUint8(at)] ?? 'UPDATE', stateChanged: (this.dv.getUint8(at + 1) & 1) !== 0, flow: decodeRecord(this.dv, at + 8, nowMs) });
      }
      if (n < max) break;
    }
    return { events, lost: this.core.conntrackEventsLost() >>> 0 };
  }

  /** Every counter by name: verdicts, each drop reason, conntrack events. */
  stats(): Record<string, number> {
    this.refresh();
    const base = this.core.statsPtr();
    const read = (i: number) => Number(this.dv.getBigUint64(base + i * 8, true));
    const s: Record<string, number> = {};
    VERDICTS.forEach((v, i) => (s[`verdict_${v.toLowerCase()}`] = read(i)));
    REASONS.forEach((r, i) => { if (i > 0) s[`drop_${r}`] = read(VERDICTS.length + i); });
    COUNTERS_AFTER_REASONS.forEach((c, i) => (s[c] = read(VERDICTS.length + REASONS.length + i)));
    s.conntrack_entries = this.core.conntrackCount();
    s.conntrack_capacity = this.core.conntrackCapacity();
    return s;
  }

  /** All flows (conntrack, and IPVS's connections where IPVS is in use) as a versioned, checksummed snapshot (msgpack). */
  snapshot(nowMs = this.lastNowMs): Uint8Array {
    const steps = this.snapshotSteps(nowMs);
    steps.step(Infinity);
    return concatBytes(steps.finish());
  }

  /**
   * The same snapshot taken a slice of the table at a time, so a host can save a large table while
   * it keeps forwarding between slices. Every flow alive from the first step to the last is in it;
   * one opened or closed meanwhile may or may not be. Lifetimes count from `nowMs` (the snapshot's
   * time), whenever their slice is read, so each flow keeps its own expiry.
   */
  snapshotSteps(nowMs = this.lastNowMs): SnapshotSteps {
    checkNow('snapshot', nowMs);
    const crc = new Crc32();
    // The flows, then IPVS's connections, each straight into blocks of records: a copy of its own
    // per flow was most of a large table's save, in allocation and collection.
    const records = new RecordBlock(crc, RECORD_BYTES);
    let next = this.core.conntrackNext(0) >>> 0;
    let ipvs: IpvsSaveSteps | null = null;
    return {
      step: (max: number): boolean => {
        if (next !== CT_NONE) {
          const buf = this.core.cfgBuffer(RECORD_BYTES);
          for (let k = 0; next !== CT_NONE && k < max; k++, next = this.core.conntrackNext(next + 1) >>> 0) {
            if (this.core.conntrackExport(next, buf, nowMs) >>> 0 !== RECORD_BYTES) continue;
            this.refresh();
            records.append(this.u8.subarray(buf, buf + RECORD_BYTES));
          }
          if (next !== CT_NONE) return false;
        }
        ipvs ??= this.saveIpvsSteps(nowMs, crc);
        return ipvs.step(max);
      },
      finish: (): Uint8Array[] => snapshotChunks(records.pieces, ipvs?.pieces ?? [], crc, nowMs, this.saveAffinity(nowMs)),
    };
  }

  /**
   * Loads flows from a snapshot. Lifetimes continue from the time the snapshot was taken, on the
   * same clock as `nowMs`. Throws on a corrupt or foreign snapshot without loading anything.
   * Returns the conntrack entries and IPVS connections loaded (and ClientIP affinity entries,
   * where their lists and service ports exist).
   */
  restore(bytes: Uint8Array): number {
    const snap = decodeSnapshot(bytes);
    // Every record is checked before the first is loaded: a snapshot loads whole or not at all
    // (a clash with a flow already here, or a full table, still leaves that one out).
    this.checkRecords(snap.records, RECORD_BYTES, 'conntrackCheck', 'flow');
    this.checkRecords(snap.ipvs, IPVS_RECORD_BYTES, 'ipvsConnCheck', 'IPVS connection');
    const buf = this.core.cfgBuffer(RECORD_BYTES);
    let n = 0;
    for (const rec of snap.records) {
      this.refresh();
      this.u8.set(rec, buf);
      if (this.core.conntrackImport(buf, snap.savedAtMs) === 0) n++;
    }
    return n + this.loadIpvs(snap.ipvs, snap.savedAtMs) + this.loadAffinity(snap.affinity, snap.savedAtMs);
  }

  private checkRecords(records: readonly Uint8Array[], size: number, check: 'conntrackCheck' | 'ipvsConnCheck', what: string): void {
    const buf = this.core.cfgBuffer(size);
    records.forEach((rec, i) => {
      this.refresh();
      this.u8.set(rec, buf);
      if (this.core[check](buf) !== 1) throw new SnapshotError(`conntrack snapshot is corrupt: ${what} record ${i} is malformed`);
    });
  }

  /**
   * IPVS connection records for a snapshot, read a slice per step as snapshotSteps reads flows, into
   * a block (each record fed to `crc`); none here (the Service dataplane adds IPVS).
   */
  protected saveIpvsSteps(_nowMs: number, _crc: Crc32): IpvsSaveSteps { return { step: () => true, pieces: [] }; }
  /** Loads a snapshot's IPVS connection records; returns how many. */
  protected loadIpvs(_records: Uint8Array[], _nowMs: number): number { return 0; }
  /** ClientIP affinity for a snapshot; none here (the Service dataplane adds it). */
  protected saveAffinity(_nowMs: number): SavedAffinity { return { recent: [], direct: [] }; }
  /** Loads a snapshot's ClientIP affinity; returns the entries loaded. */
  protected loadAffinity(_saved: SavedAffinity, _nowMs: number): number { return 0; }

  /** Sets a conntrack timeout (kind codes in conntrack-record.ts TIMEOUTS). */
  setConntrackTimeout(kind: number, ms: number): void {
    // Numbers only: the core's i32 arguments would throw on a BigInt and read any object as 0.
    if (typeof kind !== 'number' || typeof ms !== 'number' || this.core.conntrackTimeout(kind, ms) !== 0) {
      throw new Error(`bad conntrack timeout kind ${String(kind)} or value ${String(ms)}`);
    }
  }

  /** kube-proxy's stale-UDP cleanup: removes flows whose chosen endpoint is `ip` (and `port`, 0 = any). */
  flushEndpoint(ip: string, port = 0, protocol: FlushProtocol = 'UDP'): number {
    return this.flushMany([{ by: 'endpoint', ip, port, protocol }]);
  }

  /** Removes flows addressed to a Service VIP (and `port`, 0 = any). */
  flushService(vip: string, port = 0, protocol: FlushProtocol = 'UDP'): number {
    return this.flushMany([{ by: 'service', ip: vip, port, protocol }]);
  }

  /**
   * Removes every flow that any of `flushes` names (each as flushEndpoint or flushService would)
   * in one walk of the table, where each single flush walks all of it: a sync in which thousands
   * of UDP endpoints left costs one walk. Returns how many flows went.
   */
  flushMany(flushes: readonly FlowFlush[]): number {
    const keys = flushKeys(flushes);
    if (keys.length === 0) return 0;
    this.stageKeys(keys);
    const n = this.core.conntrackFlushMany(keys.length);
    if (n < 0) throw new Error(`conntrack flush refused (${n})`);
    return n;
  }

  /**
   * kube-proxy's conntrack reconcile for UDP Services (pkg/proxy/conntrack/cleanup.go): in one walk
   * of the table, removes every UDP flow whose original destination is a guarded address and port,
   * or whose original destination port is a guarded NodePort (on any address), and whose reply
   * source (address and port) is none of that guard's endpoints. A guard given twice allows the
   * endpoints of both. Returns how many flows went.
   */
  reconcileUdp(guards: readonly UdpGuard[]): number {
    const recs = reconcileKeys(guards);
    if (recs.length === 0) return 0;
    this.stageKeys(recs);
    const n = this.core.conntrackReconcileUdp(recs.length);
    if (n < 0) throw new Error(`conntrack reconcile refused (${n})`);
    return n;
  }

  /** Writes conntrack keys into the core's config buffer (conntrack-keys.ts writeKeys). */
  private stageKeys(keys: readonly ConntrackKey[]): void {
    const at = this.core.cfgBuffer(keys.length * FLUSH_KEY_BYTES);
    this.refresh();
    writeKeys(this.u8, this.dv, at, keys);
  }

  /** Formats an address the core reported. */
  static formatIP(ip: Uint8Array): string {
    return formatIP(ip);
  }
}
