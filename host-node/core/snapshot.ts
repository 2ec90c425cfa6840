// snapshot.ts — the conntrack snapshot file: msgpack of { format, version, savedAtMs, records,
// crc }, where records are the core's fixed-size flow records (conntrack-record.ts). Rejects
// anything foreign, of another version, or whose checksum does not match, before a single flow is
// loaded. Never talks to the core.
import { Packr } from 'msgpackr';
import { RECORD_BYTES } from './conntrack-record.js';

export const SNAPSHOT_FORMAT = 'svcplane-conntrack';
export const SNAPSHOT_VERSION = 1;

const packr = new Packr({ useRecords: false });

export class SnapshotError extends Error {}

// CRC-32 (IEEE) over the concatenated records.
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(chunks: Uint8Array[]): number {
  let c = 0xffffffff;
  for (const b of chunks) for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function encodeSnapshot(records: Uint8Array[], savedAtMs: number): Uint8Array {
  const all = new Uint8Array(records.length * RECORD_BYTES);
  records.forEach((r, i) => all.set(r, i * RECORD_BYTES));
  return packr.pack({
    format: SNAPSHOT_FORMAT,
    version: SNAPSHOT_VERSION,
    recordBytes: RECORD_BYTES,
    savedAtMs,
    count: records.length,
    records: all,
    crc: crc32([all]),
  });
}

export function decodeSnapshot(bytes: Uint8Array): { savedAtMs: number; records: Uint8Array[] } {
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
  if (o.version !== SNAPSHOT_VERSION || o.recordBytes !== RECORD_BYTES) {
    throw new SnapshotError(`conntrack snapshot version ${String(o.version)} (record ${String(o.recordBytes)} B) is not supported; expected ${SNAPSHOT_VERSION} (${RECORD_BYTES} B)`);
  }
  const all = o.records;
  const count = o.count;
  if (!(all instanceof Uint8Array) || typeof count !== 'number' || all.length !== count * RECORD_BYTES || typeof o.savedAtMs !== 'number') {
    throw new SnapshotError('conntrack snapshot is corrupt: record block does not match its count');
  }
  if (crc32([all]) !== o.crc) throw new SnapshotError('conntrack snapshot is corrupt: checksum mismatch');
  const records: Uint8Array[] = [];
  for (let i = 0; i < count; i++) records.push(all.subarray(i * RECORD_BYTES, (i + 1) * RECORD_BYTES));
  return { savedAtMs: o.savedAtMs, records };
}
