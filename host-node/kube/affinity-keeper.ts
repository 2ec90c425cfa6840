// affinity-keeper.ts — ClientIP session affinity across a restart of the proxy. Under kube-proxy's
// iptables mode the affinity is the kernel's `recent` lists (one per KUBE-SEP chain), which outlive
// kube-proxy, so a client keeps its endpoint until its timeout whatever happens to the proxy.
// svcplane's lists live in the core, so they go into the conntrack snapshot (core/snapshot.ts,
// format version 3) with the direct table's affinity stamps: saved by list name and by IP family
// and service port id, their stamps as ages, and written back into the lists and service ports of
// those names once a sync has made them — the snapshot may be loaded before the first sync (as
// `svcplane proxy` does) or after it. ipvs mode keeps its persistence templates with its
// connections (loadConnections). Reads and writes only through the core's exports; never touches
// rules, objects or files.
import type { SavedAffinity, SavedDirectAffinity, SavedRecentList } from '../core/snapshot.js';
import { formatIP } from '../core/packet.js';
import { wordsIP } from '../core/words.js';

/** Each `size`-byte entry of blocks holding one or more. */
function* each(blocks: readonly Uint8Array[], size: number): Iterable<Uint8Array> {
  for (const b of blocks) for (let at = 0; at + size <= b.length; at += size) yield b.subarray(at, at + size);
}

/** One entry of a `recent` list (AffinityKeeper.recentEntries). */
export interface RecentEntry { family: 4 | 6; address: string; ttl: number; next: number; stamps: number[] }

/** The core's exports the keeper uses (ABI.md). */
export interface AffinityCore {
  memory: WebAssembly.Memory;
  cfgBuffer(size: number): number;
  iptRecentCount(id: number): number;
  iptRecentSave(id: number, out: number, max: number, nowMs: number): number;
  iptRecentLoad(id: number, at: number, nowMs: number): number;
  iptRecentSavedBytes(): number;
  svcAffinitySave(out: number, max: number, nowMs: number): number;
  svcAffinityLoad(slot: number, at: number, nowMs: number): number;
  svcAffinitySavedBytes(): number;
  svcAffinityCapacity(): number;
}

/** Where the keeper finds the lists and service ports by name. */
export interface AffinityPlaces {
  /** The `recent` lists committed rules name, with their ids. */
  lists(): Iterable<[string, number]>;
  listId(name: string): number | undefined;
  /** The direct table's service ports of `family`, with their slots. */
  ports(family: 4 | 6): Iterable<[string, number]>;
  slot(family: 4 | 6, id: string): number | undefined;
}

export class AffinityKeeper {
  /** Each restore's affinity not yet written back (its lists or ports do not exist yet), with the clock it was saved on; oldest restore first. */
  private pending: { saved: SavedAffinity; nowMs: number }[] = [];

  /** `refresh` renews the Dataplane's memory views after a core call that may grow memory. */
  constructor(private readonly core: () => AffinityCore, private readonly places: AffinityPlaces, private readonly refresh: () => void) {}

  /**
   * The entries of the `recent` list `name` at `nowMs`, oldest first: address, TTL, the stamp slot
   * written next (1-based, as xt_recent's oldest_pkt) and each stamp (ms on the packets' clock);
   * undefined when no committed rule names the list.
   */
  recentEntries(name: string, nowMs: number): RecentEntry[] | undefined {
    const id = this.places.listId(name);
    if (id === undefined) return undefined;
    const core = this.core();
    const count = core.iptRecentCount(id);
    if (count === 0) return [];
    const size = core.iptRecentSavedBytes();
    const at = core.cfgBuffer(count * size);
    const n = core.iptRecentSave(id, at, count, nowMs);
    this.refresh();
    const dv = new DataView(core.memory.buffer, at, n * size);
    const out: RecentEntry[] = [];
    for (let k = 0; k < n; k++) {
      const o = k * size;
      const family = dv.getUint8(o) === 6 ? 6 : 4;
      const held = dv.getUint8(o + 2);
      const words = [0, 1, 2, 3].map((w) => dv.getUint32(o + 4 + 4 * w, true));
      const stamps: number[] = [];
      for (let j = 0; j < held; j++) stamps.push(Math.round(nowMs - dv.getUint32(o + 20 + 4 * j, true)));
      out.push({ family, address: formatIP(wordsIP(family, words)), ttl: dv.getUint8(o + 1), next: dv.getUint8(o + 3), stamps });
    }
    return out;
  }

  /** Every list entry and every direct stamp still in force at `nowMs`. */
  save(nowMs: number): SavedAffinity {
    const core = this.core();
    const recent: SavedRecentList[] = [];
    const listBytes = core.iptRecentSavedBytes();
    // Each list's entries, and each port's stamps, as one block: tens of thousands of clients as an
    // object each made a save (every checkpoint of a running proxy) take 100 ms and more.
    for (const [name, id] of this.places.lists()) {
      const count = core.iptRecentCount(id);
      if (count === 0) continue;
      const at = core.cfgBuffer(count * listBytes);
      const n = core.iptRecentSave(id, at, count, nowMs);
      if (n > 0) recent.push({ name, entries: [new Uint8Array(core.memory.buffer, at, n * listBytes).slice()] });
    }
    // The direct stamps come by slot (a stamp's first word), in one walk of the affinity table; saved by port.
    const ports = new Map<number, { family: 4 | 6; port: string }>();
    for (const family of [4, 6] as const) for (const [port, slot] of this.places.ports(family)) ports.set(slot, { family, port });
    const direct: SavedDirectAffinity[] = [];
    if (ports.size > 0) {
      const size = core.svcAffinitySavedBytes(), max = core.svcAffinityCapacity();
      const at = core.cfgBuffer(max * size);
      const n = core.svcAffinitySave(at, max, nowMs);
      const all = new Uint8Array(core.memory.buffer, at, n * size);
      const slot = new DataView(all.buffer, all.byteOffset, all.length);
      const counts = new Map<number, number>();
      for (let i = 0; i < n; i++) {
        const s = slot.getUint32(i * size, true);
        counts.set(s, (counts.get(s) ?? 0) + 1);
      }
      const blocks = new Map<number, { bytes: Uint8Array; used: number }>();
      for (const [s, where] of ports) {
        const c = counts.get(s);
        if (!c) continue;
        const bytes = new Uint8Array(c * size);
        blocks.set(s, { bytes, used: 0 });
        direct.push({ ...where, entries: [bytes] });
      }
      for (let i = 0; i < n; i++) {
        const b = blocks.get(slot.getUint32(i * size, true));
        if (!b) continue;
        b.bytes.set(all.subarray(i * size, (i + 1) * size), b.used);
        b.used += size;
      }
    }
    this.refresh();
    return { recent, direct };
  }

  /** Writes `saved` back where its lists and ports exist now, and keeps the rest for after the next sync. Returns the entries written. */
  load(saved: SavedAffinity, nowMs: number): number {
    if (saved.recent.length === 0 && saved.direct.length === 0) return 0;
    this.pending.push({ saved, nowMs });
    return this.loadPending();
  }

  /** After a sync: writes back what of the snapshot's affinity now has its list or port. Returns the entries written. */
  loadPending(): number {
    if (this.pending.length === 0) return 0;
    let loaded = 0;
    this.pending = this.pending.filter((p) => {
      const r = this.loadOne(p);
      loaded += r.loaded;
      if (r.left) p.saved = r.left;
      return r.left !== null;
    });
    this.refresh();
    return loaded;
  }

  /** One restore's waiting affinity written where it can be; what still waits (or null). */
  private loadOne(p: { saved: SavedAffinity; nowMs: number }): { loaded: number; left: SavedAffinity | null } {
    const core = this.core();
    let loaded = 0;
    const recent = p.saved.recent.filter((list) => {
      const id = this.places.listId(list.name);
      if (id === undefined) return true;
      for (const e of each(list.entries, core.iptRecentSavedBytes())) if (core.iptRecentLoad(id, this.write(e), p.nowMs) === 0) loaded++;
      return false;
    });
    const direct = p.saved.direct.filter((d) => {
      const slot = this.places.slot(d.family, d.port);
      if (slot === undefined) return true;
      for (const e of each(d.entries, core.svcAffinitySavedBytes())) if (core.svcAffinityLoad(slot, this.write(e), p.nowMs) === 0) loaded++;
      return false;
    });
    return { loaded, left: recent.length + direct.length > 0 ? { recent, direct } : null };
  }

  private write(entry: Uint8Array): number {
    const core = this.core();
    const at = core.cfgBuffer(entry.length);
    new Uint8Array(core.memory.buffer).set(entry, at);
    return at;
  }
}
