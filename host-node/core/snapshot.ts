// snapshot.ts — the conntrack snapshot file: msgpack of { format, version, savedAtMs, records,
// crc } where records are the core's fixed-size flow records (conntrack-record.ts); version 2 adds
// the IPVS connection table (`ipvs`, records of assembly/ipvs/snapshot.ts), version 3 ClientIP
// affinity: the iptables `recent` lists (`recent`: each list's name and its entries, as ABI.md
// iptRecentSave writes them) and the direct table's stamps (`direct`: per IP family and service
// port id, as svcAffinitySave writes them), all covered by the same crc; version 4 the same, its crc
// also covering savedAtMs (a flipped bit there moved every lifetime). Versions 1 to 3 still load. Rejects anything foreign, of another version, or whose checksum does not match, before a
// single flow is loaded. Never talks to the core.
import { Packr } from 'msgpackr';
import { RECORD_BYTES } from './conntrack-record.js';

export const SNAPSHOT_FORMAT = 'svcplane-conntrack';
export const SNAPSHOT_VERSION = 4;
/** Bytes of one IPVS connection record (assembly/ipvs/snapshot.ts IPVS_RECORD_BYTES). */
export const IPVS_RECORD_BYTES = 104;
/** Bytes of one saved `recent` entry (ABI.md iptRecentSave). */
export const RECENT_ENTRY_BYTES = 100;

/** Bytes of one saved direct-table affinity stamp (ABI.md svcAffinitySave; its slot word is the saving core's). */
export const DIRECT_AFFINITY_BYTES = 44;

/** A `recent` list by name, its entries (RECENT_ENTRY_BYTES each, one or more to an element) oldest first. */
export interface SavedRecentList { name: string; entries: Uint8Array[] }
/** A direct-table service port's affinity stamps (DIRECT_AFFINITY_BYTES each, one or more to an element), by family and id ("ns/name:port/TCP"). */
export interface SavedDirectAffinity { family: 4 | 6; port: string; entries: Uint8Array[] }
/** ClientIP affinity as a snapshot keeps it. */
export interface SavedAffinity { recent: SavedRecentList[]; direct: SavedDirectAffinity[] }
export interface Snapshot { savedAtMs: number; records: Uint8Array[]; ipvs: Uint8Array[]; affinity: SavedAffinity }

const packr = new Packr({ useRecords: false });

export class SnapshotError extends Error {}

// CRC-32 (IEEE) over the concatenated records, eight bytes a step ("slicing-by-8": TABLES[k] is
// the table of a byte k positions further on); a snapshot holds megabytes, and a byte a step was
// a quarter of the time a proxy took to save its flows.
const TABLES = (() => {
  const t = Array.from({ length: 8 }, () => new Uint32Array(256));
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[0]![n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) for (let k = 1; k < 8; k++) t[k]![n] = (t[k - 1]![n]! >>> 8) ^ t[0]![t[k - 1]![n]! & 0xff]!;
  return t;
})();

/** CRC-32 (IEEE) of bytes given a chunk at a time. */
export class Crc32 {
  private c = 0xffffffff;

  update(b: Uint8Array): this {
    const [t0, t1, t2, t3, t4, t5, t6, t7] = TABLES as [Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array];
    let c = this.c;
    const n = b.length;
    let i = 0;
    for (; i + 8 <= n; i += 8) {
      const lo = c ^ (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24));
      c = t7[lo & 0xff]! ^ t6[(lo >>> 8) & 0xff]! ^ t5[(lo >>> 16) & 0xff]! ^ t4[lo >>> 24]! ^
        t3[b[i + 4]!]! ^ t2[b[i + 5]!]! ^ t1[b[i + 6]!]! ^ t0[b[i + 7]!]!;
    }
    for (; i < n; i++) c = t0[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
    this.c = c;
    return this;
  }

  get value(): number {
    return (this.c ^ 0xffffffff) >>> 0;
  }
}

export function crc32(chunks: Uint8Array[]): number {
  const c = new Crc32();
  for (const b of chunks) c.update(b);
  return c.value;
}

/** The chunks one after another in one array. */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * Records appended one after another, each also fed to a running CRC, kept in pieces of 256 KB:
 * no piece is ever copied to grow, and no allocation is large enough to stall the loop.
 */
export class RecordBlock {
  private static readonly PIECE = 256 * 1024;
  private readonly done: Uint8Array[] = [];
  private piece: Uint8Array;
  private used = 0;

  constructor(private readonly crc: Crc32, private readonly recordBytes: number) {
    this.piece = new Uint8Array(this.pieceBytes());
  }

  /** Copies `rec` (one record) in; it may be a view of memory that changes next. */
  append(rec: Uint8Array): void {
    if (this.used + rec.length > this.piece.length) {
      this.done.push(this.piece.subarray(0, this.used));
      this.piece = new Uint8Array(this.pieceBytes());
      this.used = 0;
    }
    this.piece.set(rec, this.used);
    this.used += rec.length;
    this.crc.update(rec);
  }

  /** The records so far, in order, in pieces. */
  get pieces(): Uint8Array[] {
    return this.used > 0 ? [...this.done, this.piece.subarray(0, this.used)] : [...this.done];
  }

  private pieceBytes(): number {
    return RecordBlock.PIECE - (RecordBlock.PIECE % this.recordBytes);
  }
}

/** Bytes in pieces (whole records, in order), written as one msgpack bin. */
class Pieces {
  constructor(readonly pieces: readonly Uint8Array[]) {}
  get length(): number { return this.pieces.reduce((n, p) => n + p.length, 0); }
}

/**
 * A snapshot's bytes (a msgpack map, byte for byte as msgpackr writes the object) as chunks,
 * written one after another: the flow records, the IPVS records and the affinity entries are
 * chunks as they are (pieces of whole records, in order), never copied, which a save of a large
 * table would otherwise spend most of its time on. `crc` has been fed `records`, then `ipvs`.
 */
export function snapshotChunks(records: readonly Uint8Array[], ipvs: readonly Uint8Array[], crc: Crc32, savedAtMs: number, affinity: SavedAffinity = { recent: [], direct: [] }): Uint8Array[] {
  const lists = affinity.recent.map((l) => ({ name: l.name, entries: new Pieces(l.entries) }));
  const direct = affinity.direct.map((d) => ({ family: d.family, port: d.port, entries: new Pieces(d.entries) }));
  for (const b of affinityBytes(affinity.recent, affinity.direct)) crc.update(b);
  crc.update(savedAtBytes(savedAtMs));
  const recs = new Pieces(records), conns = new Pieces(ipvs);
  const chunks: Uint8Array[] = [];
  encodeInto(chunks, {
    format: SNAPSHOT_FORMAT, version: SNAPSHOT_VERSION, recordBytes: RECORD_BYTES, savedAtMs,
    count: recs.length / RECORD_BYTES, records: recs, ipvsRecordBytes: IPVS_RECORD_BYTES, ipvsCount: conns.length / IPVS_RECORD_BYTES,
    ipvs: conns, recentEntryBytes: RECENT_ENTRY_BYTES, recent: lists, directAffinityBytes: DIRECT_AFFINITY_BYTES, direct,
    crc: crc.value,
  });
  return chunks;
}

/**
 * `value` in msgpack as msgpackr (useRecords off) writes it: an object as a map 16, an array with
 * the smallest header, Pieces as one bin (its header, then the pieces themselves); anything else
 * packed by msgpackr and copied (it reuses its buffer).
 */
function encodeInto(chunks: Uint8Array[], value: unknown): void {
  if (value instanceof Pieces) {
    chunks.push(binHeader(value.length), ...value.pieces);
  } else if (Array.isArray(value)) {
    const n = value.length;
    chunks.push(n < 16 ? Uint8Array.of(0x90 | n) : n < 0x10000 ? Uint8Array.of(0xdc, n >>> 8, n & 0xff)
      : Uint8Array.of(0xdd, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff));
    for (const v of value) encodeInto(chunks, v);
  } else if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) {
    const entries = Object.entries(value);
    chunks.push(Uint8Array.of(0xde, entries.length >>> 8, entries.length & 0xff));
    for (const [k, v] of entries) {
      chunks.push(new Uint8Array(packr.pack(k)));
      encodeInto(chunks, v);
    }
  } else {
    chunks.push(new Uint8Array(packr.pack(value)));
  }
}

/** msgpack's bin 8, 16 or 32 header for `n` bytes (the smallest that holds n, as msgpackr writes it). */
function binHeader(n: number): Uint8Array {
  if (n < 0x100) return Uint8Array.of(0xc4, n);
  if (n < 0x10000) return Uint8Array.of(0xc5, n >>> 8, n & 0xff);
  return Uint8Array.of(0xc6, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

/** savedAtMs as the crc of version 4 covers it: the float64, little-endian. */
export function savedAtBytes(savedAtMs: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, savedAtMs, true);
  return b;
}

const split = (all: Uint8Array, count: number, size: number): Uint8Array[] =>
  Array.from({ length: count }, (_, i) => all.subarray(i * size, (i + 1) * size));

const isCount = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;

export function decodeSnapshot(bytes: Uint8Array): Snapshot {
  if (!(bytes instanceof Uint8Array)) throw new SnapshotError('not a svcplane conntrack snapshot: a snapshot is bytes (a Uint8Array)');
  let obj: unknown;
  try {
    obj = packr.unpack(bytes);
  } catch (e) {
    throw new SnapshotError(`conntrack snapshot is corrupt: ${(e as Error).message}`);
  }
  const o = obj as Record<string, unknown> | null;
  if (!o || typeof o !== 'object' || o.format !== SNAPSHOT_FORMAT) {
    throw new SnapshotError('not a svcplane conntrack snapshot');
  }
  const affine = o.version === 3 || o.version === 4;
  if ((o.version !== 1 && o.version !== 2 && !affine) || o.recordBytes !== RECORD_BYTES ||
      (o.version !== 1 && o.ipvsRecordBytes !== IPVS_RECORD_BYTES) || (affine && (o.recentEntryBytes !== RECENT_ENTRY_BYTES || o.directAffinityBytes !== DIRECT_AFFINITY_BYTES))) {
    throw new SnapshotError(`conntrack snapshot version ${String(o.version)} (record ${String(o.recordBytes)} B) is not supported; expected ${SNAPSHOT_VERSION} (${RECORD_BYTES} B)`);
  }
  const all = o.records, count = o.count;
  const conns = o.version === 1 ? new Uint8Array(0) : o.ipvs, ipvsCount = o.version === 1 ? 0 : o.ipvsCount;
  // Counts are whole and not negative: half a record (count 0.5) also matches its length.
  if (typeof o.savedAtMs !== 'number' || !Number.isFinite(o.savedAtMs)) throw new SnapshotError(`conntrack snapshot is corrupt: savedAtMs ${String(o.savedAtMs)} is not a time`);
  if (!(all instanceof Uint8Array) || !isCount(count) || all.length !== count * RECORD_BYTES ||
      !(conns instanceof Uint8Array) || !isCount(ipvsCount) || conns.length !== ipvsCount * IPVS_RECORD_BYTES) {
    throw new SnapshotError('conntrack snapshot is corrupt: record block does not match its count');
  }
  const lists = affine ? o.recent : [], direct = affine ? o.direct : [];
  const entries = (x: unknown, size: number): boolean => x instanceof Uint8Array && x.length % size === 0;
  if (!Array.isArray(lists) || !lists.every((l) => l !== null && typeof l === 'object' && typeof l.name === 'string' && entries(l.entries, RECENT_ENTRY_BYTES)) ||
      !Array.isArray(direct) || !direct.every((d) => d !== null && typeof d === 'object' && (d.family === 4 || d.family === 6) &&
        typeof d.port === 'string' && entries(d.entries, DIRECT_AFFINITY_BYTES))) {
    throw new SnapshotError('conntrack snapshot is corrupt: its affinity is not lists of entries');
  }
  const pieces = <T extends { entries: Uint8Array }>(xs: T[]) => xs.map((x) => ({ ...x, entries: [x.entries] }));
  const covered = o.version === 1 ? [all] : [all, conns, ...affinityBytes(pieces(lists), pieces(direct))];
  if (o.version === 4) covered.push(savedAtBytes(o.savedAtMs));
  if (crc32(covered) !== o.crc) throw new SnapshotError('conntrack snapshot is corrupt: checksum mismatch');
  const cut = (x: Uint8Array, size: number) => split(x, x.length / size, size);
  return {
    savedAtMs: o.savedAtMs, records: split(all, count, RECORD_BYTES), ipvs: split(conns, ipvsCount, IPVS_RECORD_BYTES),
    affinity: {
      recent: lists.map((l: { name: string; entries: Uint8Array }) => ({ name: l.name, entries: cut(l.entries, RECENT_ENTRY_BYTES) })),
      direct: direct.map((d: { family: 4 | 6; port: string; entries: Uint8Array }) => ({ family: d.family, port: d.port, entries: cut(d.entries, DIRECT_AFFINITY_BYTES) })),
    },
  };
}

/** What the crc covers of the affinity: each list's name and each port's family and id as UTF-8, then its entries. */
function affinityBytes(lists: readonly { name: string; entries: readonly Uint8Array[] }[], direct: readonly { family: number; port: string; entries: readonly Uint8Array[] }[]): Uint8Array[] {
  const utf8 = new TextEncoder();
  return [...lists.flatMap((l) => [utf8.encode(l.name), ...l.entries]), ...direct.flatMap((d) => [utf8.encode(`${d.family} ${d.port}`), ...d.entries])];
}
