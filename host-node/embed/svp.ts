// svp.ts — the compiled config artefact (`.svp`): the exact control calls a host made into the core
// while it was configured (node facts, service blobs, iptables chains and commits, ipsets, IPVS
// services and destinations, DNS records), each with its arguments, the bytes it read from core
// memory and the result it returned. Encodes and decodes the file and validates every byte of it
// (magic, format and ABI version, checksum, op ids, argument counts, blob sizes) before a host
// applies a single call; records a core's control calls (`recordConfig` wraps a freshly instantiated
// core's control exports, leaving the packet path and every read untouched, so recording costs nothing
// per packet) and replays a decoded file into a fresh core (`applySvp`: blobs into the buffer each call
// reads, pointer arguments renewed, every result equal to the recorded one). Layout: ABI.md §13.
// Never parses rule text and never touches files.
import { ABI_VERSION, type CoreExports } from '../core/abi.js';
import { crc32 } from '../core/snapshot.js';

export const SVP_MAGIC = 0x31505653; // "SVP1"
export const SVP_VERSION = 1;
export const SVP_HEADER_BYTES = 32;
export const SVP_OP_HEADER_BYTES = 16;

/** Where an op's blob goes before the call: nowhere, the config buffer, the ipset element buffer, the DNS stage. */
export const BufferKind = { None: 0, Cfg: 1, IpsetElem: 2, Dns: 3 } as const;
export type BufferKind = (typeof BufferKind)[keyof typeof BufferKind];

export interface OpSpec {
  id: number;
  name: string;
  argc: number;
  buffer: BufferKind;
  /** The argument replaced by the buffer's address on replay (-1: the call reads the buffer implicitly). */
  ptrArg: number;
  /** Exact blob size, when the buffer has one. */
  blobBytes?: number;
}

const op = (id: number, name: string, argc: number, buffer: BufferKind = BufferKind.None, ptrArg = -1, blobBytes?: number): OpSpec =>
  ({ id, name, argc, buffer, ptrArg, ...(blobBytes !== undefined ? { blobBytes } : {}) });

/** Every control export a .svp may call, by op id (ABI.md §13 lists the same table). */
export const SVP_OPS: readonly OpSpec[] = [
  op(1, 'init', 4),
  op(2, 'nodeClear', 0),
  op(3, 'nodeLocal', 5),
  op(4, 'nodePodCIDR', 6),
  op(5, 'nodeServiceCIDR', 6),
  op(6, 'nodeMasquerade', 5),
  op(7, 'nodeDnsAddress', 6),
  op(8, 'loadServices', 1, BufferKind.Cfg),
  op(9, 'conntrackTimeout', 2),
  op(10, 'iptStageChain', 3, BufferKind.Cfg, 1),
  op(11, 'iptStageDelete', 1),
  op(12, 'iptSetPolicy', 2),
  op(13, 'iptCommit', 0),
  op(14, 'iptAbort', 0),
  op(15, 'iptSetIfName', 3, BufferKind.Cfg, 1),
  op(16, 'iptModeSet', 1),
  op(17, 'ipsetCreate', 9),
  op(18, 'ipsetDestroy', 1),
  op(19, 'ipsetFlush', 1),
  op(20, 'ipsetSwap', 2),
  op(21, 'ipsetRename', 2),
  op(22, 'ipsetAdd', 3, BufferKind.IpsetElem, -1, 64),
  op(23, 'ipsetDel', 3, BufferKind.IpsetElem, -1, 64),
  op(24, 'ipsetBegin', 0),
  op(25, 'ipsetCommit', 0),
  op(26, 'ipsetAbort', 0),
  op(27, 'ipvsInit', 4),
  op(28, 'ipvsAddService', 13),
  op(29, 'ipvsEditService', 6),
  op(30, 'ipvsDeleteService', 1),
  op(31, 'ipvsFlush', 0),
  op(32, 'ipvsAddDest', 11),
  op(33, 'ipvsEditDest', 6),
  op(34, 'ipvsDeleteDest', 2),
  op(35, 'ipvsSetTimeouts', 3),
  op(36, 'ipvsSetSysctl', 2),
  op(37, 'ipvsSetTunnelSource', 5),
  op(38, 'dnsLoad', 1, BufferKind.Dns),
  op(39, 'svcApply', 1, BufferKind.Cfg),
  op(40, 'svcNodePorts', 3),
  op(41, 'svcNodePortAddr', 5),
  op(42, 'ipvsSetDestTunnel', 4),
  op(43, 'dnsForward', 1),
  op(44, 'iptStagePatch', 5, BufferKind.Cfg, 1),
];

export const SVP_OP_BY_NAME: ReadonlyMap<string, OpSpec> = new Map(SVP_OPS.map((o) => [o.name, o]));
const OP_BY_ID: ReadonlyMap<number, OpSpec> = new Map(SVP_OPS.map((o) => [o.id, o]));

/** Largest blob one op may carry (a chain or service table): 256 MiB. */
const MAX_BLOB = 1 << 28;

export interface SvpOp {
  id: number;
  args: number[];
  blob?: Uint8Array;
  /** What the call returned when it was recorded (void calls: 0). */
  result: number;
}

export interface Svp {
  /** Free-form description (what it was compiled from, the node options); never read by the core. */
  meta: Record<string, unknown>;
  abiVersion: number;
  ops: SvpOp[];
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const isText = (v: unknown): boolean => typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string'));

/**
 * The Dataplane options a .svp file's meta recorded (`compiled()` writes them, the seed as
 * decimal text), each checked for its kind: a file made by hand or damaged under a good checksum
 * fails here with an SvpError naming the option, never later inside the Dataplane.
 */
export function savedOptions(meta: Record<string, unknown>): { nodeIPs: string[]; seed?: bigint } & Record<string, unknown> {
  const saved = meta.options ?? {};
  if (!isObject(saved)) throw new SvpError('meta.options is not an object');
  const out: { nodeIPs: string[]; seed?: bigint } & Record<string, unknown> = { nodeIPs: [] };
  for (const [key, v] of Object.entries(saved)) {
    const ok = key === 'seed' ? (typeof v === 'string' && /^-?\d{1,20}$/.test(v)) || Number.isSafeInteger(v)
      : key === 'nodeIPs' || key === 'masqueradeIPs' ? Array.isArray(v) && isText(v)
        : key === 'podCIDR' || key === 'serviceCIDR' || key === 'clusterDNS' ? isText(v)
          : key === 'conntrackCapacity' || key === 'conntrackCapacity6' ? Number.isSafeInteger(v) : true;
    if (!ok) throw new SvpError(`meta.options.${key} is not ${key === 'seed' ? 'an integer' : 'of its kind'}`);
    if (key === 'seed') out.seed = BigInt(v as string | number);
    else if (SAVED_OPTIONS.has(key)) out[key] = v;
  }
  return out;
}
const SAVED_OPTIONS = new Set(['nodeIPs', 'masqueradeIPs', 'podCIDR', 'serviceCIDR', 'clusterDNS', 'conntrackCapacity', 'conntrackCapacity6']);

/** A .svp that is not one, is damaged, or was made for another format or ABI version. */
export class SvpError extends Error {
  constructor(message: string) {
    super(`config.svp rejected: ${message}`);
    this.name = 'SvpError';
  }
}

const pad8 = (n: number) => (n + 7) & ~7;

export function opSpec(id: number): OpSpec | undefined {
  return OP_BY_ID.get(id);
}

export function encodeSvp(ops: readonly SvpOp[], meta: Record<string, unknown> = {}): Uint8Array {
  const metaBytes = new TextEncoder().encode(JSON.stringify(meta));
  let body = pad8(metaBytes.length);
  for (const o of ops) body += SVP_OP_HEADER_BYTES + 8 * o.args.length + pad8(o.blob?.length ?? 0);
  const out = new Uint8Array(SVP_HEADER_BYTES + body);
  const dv = new DataView(out.buffer);
  out.set(metaBytes, SVP_HEADER_BYTES);
  let at = SVP_HEADER_BYTES + pad8(metaBytes.length);
  for (const o of ops) {
    const spec = OP_BY_ID.get(o.id);
    if (!spec || spec.argc !== o.args.length) throw new Error(`encodeSvp: op ${o.id} with ${o.args.length} arguments is not in the op table`);
    dv.setUint16(at, o.id, true);
    dv.setUint8(at + 2, o.args.length);
    dv.setUint8(at + 3, spec.buffer);
    dv.setUint32(at + 4, o.blob?.length ?? 0, true);
    dv.setInt32(at + 8, o.result | 0, true);
    at += SVP_OP_HEADER_BYTES;
    for (const a of o.args) { dv.setFloat64(at, a, true); at += 8; }
    if (o.blob) { out.set(o.blob, at); at += pad8(o.blob.length); }
  }
  dv.setUint32(0, SVP_MAGIC, true);
  dv.setUint16(4, SVP_VERSION, true);
  dv.setUint16(6, ABI_VERSION, true);
  dv.setUint32(8, ops.length, true);
  dv.setUint32(12, body, true);
  dv.setUint32(16, crc32([out.subarray(SVP_HEADER_BYTES)]), true);
  dv.setUint32(20, metaBytes.length, true);
  return out;
}

/** Decodes and validates a whole .svp; throws SvpError naming the first fault. Applies nothing. */
export function decodeSvp(bytes: Uint8Array): Svp {
  if (!(bytes instanceof Uint8Array)) throw new SvpError('not a byte array');
  if (bytes.length < SVP_HEADER_BYTES) throw new SvpError(`truncated: ${bytes.length} bytes, the header alone is ${SVP_HEADER_BYTES}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = dv.getUint32(0, true);
  if (magic !== SVP_MAGIC) throw new SvpError(`not a svcplane config (magic 0x${magic.toString(16).padStart(8, '0')}, expected 0x${SVP_MAGIC.toString(16)})`);
  const version = dv.getUint16(4, true);
  if (version !== SVP_VERSION) throw new SvpError(`format version ${version}, this host reads version ${SVP_VERSION}`);
  const abiVersion = dv.getUint16(6, true);
  if (abiVersion !== ABI_VERSION) throw new SvpError(`compiled for core ABI version ${abiVersion}, this host drives ABI version ${ABI_VERSION}`);
  const count = dv.getUint32(8, true);
  const body = dv.getUint32(12, true);
  if (bytes.length !== SVP_HEADER_BYTES + body) {
    throw new SvpError(`${bytes.length < SVP_HEADER_BYTES + body ? 'truncated' : 'trailing bytes'}: ${bytes.length} bytes, the header says ${SVP_HEADER_BYTES + body}`);
  }
  const crc = crc32([bytes.subarray(SVP_HEADER_BYTES)]);
  if (crc !== dv.getUint32(16, true)) throw new SvpError(`checksum mismatch (CRC-32 0x${crc.toString(16)}, header 0x${dv.getUint32(16, true).toString(16)}): the file is damaged`);
  const metaLen = dv.getUint32(20, true);
  if (pad8(metaLen) > body) throw new SvpError(`meta length ${metaLen} exceeds the body`);
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(SVP_HEADER_BYTES, SVP_HEADER_BYTES + metaLen)));
  } catch {
    throw new SvpError('meta block is not JSON');
  }
  if (!isObject(meta)) throw new SvpError('meta block is not a JSON object');
  const ops: SvpOp[] = [];
  let at = SVP_HEADER_BYTES + pad8(metaLen);
  for (let k = 0; k < count; k++) {
    const where = `op #${k} at byte ${at}`;
    if (at + SVP_OP_HEADER_BYTES > bytes.length) throw new SvpError(`${where}: ops end before the op count (${count}) is reached`);
    const id = dv.getUint16(at, true);
    const spec = OP_BY_ID.get(id);
    if (!spec) throw new SvpError(`${where}: unknown op id ${id}`);
    const argc = dv.getUint8(at + 2);
    const kind = dv.getUint8(at + 3);
    const blobLen = dv.getUint32(at + 4, true);
    if (argc !== spec.argc) throw new SvpError(`${where}: ${spec.name} takes ${spec.argc} arguments, not ${argc}`);
    if (kind !== spec.buffer) throw new SvpError(`${where}: ${spec.name} reads buffer kind ${spec.buffer}, not ${kind}`);
    if (spec.buffer === BufferKind.None ? blobLen !== 0 : blobLen > MAX_BLOB || (spec.blobBytes !== undefined && blobLen !== spec.blobBytes)) {
      throw new SvpError(`${where}: ${spec.name} with a blob of ${blobLen} bytes`);
    }
    const result = dv.getInt32(at + 8, true);
    at += SVP_OP_HEADER_BYTES;
    if (at + 8 * argc + pad8(blobLen) > bytes.length) throw new SvpError(`${where}: ${spec.name} runs past the end of the file`);
    const args: number[] = [];
    for (let i = 0; i < argc; i++) {
      const a = dv.getFloat64(at, true);
      if (!Number.isFinite(a)) throw new SvpError(`${where}: ${spec.name} argument ${i} is not a finite number`);
      args.push(a);
      at += 8;
    }
    const o: SvpOp = { id, args, result };
    if (spec.buffer !== BufferKind.None) {
      o.blob = bytes.slice(at, at + blobLen);
      at += pad8(blobLen);
    }
    ops.push(o);
  }
  if (at !== bytes.length) throw new SvpError(`${bytes.length - at} bytes after the last op`);
  if (ops[0]?.id !== 1) throw new SvpError('the first op must be init');
  return { meta, abiVersion, ops };
}

// ---- recording and replaying

type Fn = (...args: number[]) => number | void;
type Exports = Record<string, unknown>;

/** The recording of one core's configuration. */
export class ConfigLog {
  readonly ops: SvpOp[] = [];

  /** The recording as a .svp file. */
  encode(meta: Record<string, unknown> = {}): Uint8Array {
    return encodeSvp(this.ops, meta);
  }
}

// Bytes the call is about to read, copied out of core memory.
function blobOf(x: Exports, spec: OpSpec, args: number[]): Uint8Array | undefined {
  const mem = new Uint8Array((x.memory as WebAssembly.Memory).buffer);
  const call = (name: string, ...a: number[]) => ((x[name] as Fn)(...a) as number) >>> 0;
  switch (spec.buffer) {
    case BufferKind.None:
      return undefined;
    case BufferKind.IpsetElem: {
      const p = call('ipsetElem');
      return mem.slice(p, p + 64);
    }
    case BufferKind.Dns:
    case BufferKind.Cfg: {
      // the length follows the pointer (iptStagePatch has head and tail after it), or is the only
      // or last argument; a size-0 request returns the current buffer unchanged
      const len = args[spec.ptrArg >= 0 ? spec.ptrArg + 1 : args.length - 1]! >>> 0;
      const p = spec.ptrArg >= 0 ? args[spec.ptrArg]! >>> 0 : call(spec.buffer === BufferKind.Dns ? 'dnsBuffer' : 'cfgBuffer', 0);
      return mem.slice(p, Math.min(p + len, mem.length));
    }
  }
}

/** Returns `core` with its control exports logging into `log`; everything else is the original. */
export function recordConfig<T extends CoreExports>(core: T, log: ConfigLog): T {
  const x = core as unknown as Exports;
  const out: Exports = Object.create(null);
  for (const key of Object.keys(x)) out[key] = x[key];
  for (const spec of SVP_OPS) {
    const fn = x[spec.name] as Fn | undefined;
    if (typeof fn !== 'function') continue;
    out[spec.name] = (...args: number[]) => {
      const blob = blobOf(x, spec, args);
      const r = fn(...args);
      log.ops.push({ id: spec.id, args: args.map(Number), ...(blob ? { blob } : {}), result: typeof r === 'number' ? r | 0 : 0 });
      return r;
    };
  }
  return out as unknown as T;
}

/**
 * Replays a decoded .svp into a core that has not been initialised. Throws SvpError if the core lacks
 * an export the file calls, or if a call returns something other than what it returned when recorded
 * (a core that would end up configured differently).
 */
export function applySvp(core: CoreExports, svp: Svp): void {
  const x = core as unknown as Exports;
  for (const o of svp.ops) {
    const spec = opSpec(o.id)!;
    if (typeof x[spec.name] !== 'function') throw new SvpError(`this core has no export ${spec.name}`);
  }
  svp.ops.forEach((o, k) => {
    const spec = opSpec(o.id)!;
    const args = o.args.slice();
    if (o.blob) {
      const len = o.blob.length;
      const p = spec.buffer === BufferKind.IpsetElem ? (x.ipsetElem as Fn)() as number
        : (x[spec.buffer === BufferKind.Dns ? 'dnsBuffer' : 'cfgBuffer'] as Fn)(len) as number;
      new Uint8Array(core.memory.buffer).set(o.blob, p >>> 0);
      if (spec.ptrArg >= 0) args[spec.ptrArg] = p >>> 0;
    }
    const r = (x[spec.name] as Fn)(...args);
    const got = typeof r === 'number' ? r | 0 : 0;
    if (got !== o.result) throw new SvpError(`op #${k} ${spec.name} returned ${got}, it returned ${o.result} when the config was compiled`);
  });
}

