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
  /** A snapshot's affinity not yet written back (its lists or ports do not exist yet), with the clock it was saved on. */
  private pending?: { saved: SavedAffinity; nowMs: number };

  /** `refresh` renews the Dataplane's memory views after a core call that may grow memory. */
  constructor(private readonly core: () => AffinityCore, private readonly places: AffinityPlaces, private readonly refresh: () => void) {}

  /** Every list entry and every direct stamp still in force at `nowMs`. */
  save(nowMs: number): SavedAffinity {
    const core = this.core();
    const recent: SavedRecentList[] = [];
    const listBytes = core.iptRecentSavedBytes();
    for (const [name, id] of this.places.lists()) {
      const count = core.iptRecentCount(id);
      if (count === 0) continue;
      const at = core.cfgBuffer(count * listBytes);
      recent.push({ name, entries: this.read(at, core.iptRecentSave(id, at, count, nowMs), listBytes) });
    }
    // The direct stamps come by slot, in one walk of the affinity table; saved by port.
    const bySlot = new Map<number, SavedDirectAffinity>();
    for (const family of [4, 6] as const) for (const [port, slot] of this.places.ports(family)) bySlot.set(slot, { family, port, entries: [] });
    if (bySlot.size > 0) {
      const stampBytes = core.svcAffinitySavedBytes(), max = core.svcAffinityCapacity();
      const at = core.cfgBuffer(max * stampBytes);
      for (const s of this.read(at, core.svcAffinitySave(at, max, nowMs), stampBytes)) {
        bySlot.get(new DataView(s.buffer, s.byteOffset).getUint32(0, true))?.entries.push(s);
      }
    }
    this.refresh();
    return { recent, direct: [...bySlot.values()].filter((d) => d.entries.length > 0) };
  }

  /** Writes `saved` back where its lists and ports exist now, and keeps the rest for after the next sync. Returns the entries written. */
  load(saved: SavedAffinity, nowMs: number): number {
    if (saved.recent.length === 0 && saved.direct.length === 0) return 0;
    this.pending = { saved, nowMs };
    return this.loadPending();
  }

  /** After a sync: writes back what of the snapshot's affinity now has its list or port. Returns the entries written. */
  loadPending(): number {
    const p = this.pending;
    if (!p) return 0;
    const core = this.core();
    let loaded = 0;
    const recent = p.saved.recent.filter((list) => {
      const id = this.places.listId(list.name);
      if (id === undefined) return true;
      for (const e of list.entries) if (core.iptRecentLoad(id, this.write(e), p.nowMs) === 0) loaded++;
      return false;
    });
    const direct = p.saved.direct.filter((d) => {
      const slot = this.places.slot(d.family, d.port);
      if (slot === undefined) return true;
      for (const e of d.entries) if (core.svcAffinityLoad(slot, this.write(e), p.nowMs) === 0) loaded++;
      return false;
    });
    this.pending = recent.length + direct.length > 0 ? { saved: { recent, direct }, nowMs: p.nowMs } : undefined;
    this.refresh();
    return loaded;
  }

  private read(at: number, n: number, size: number): Uint8Array[] {
    const u8 = new Uint8Array(this.core().memory.buffer);
    return Array.from({ length: n }, (_, i) => u8.slice(at + i * size, at + (i + 1) * size));
  }

  private write(entry: Uint8Array): number {
    const core = this.core();
    const at = core.cfgBuffer(entry.length);
    new Uint8Array(core.memory.buffer).set(entry, at);
    return at;
  }
}
