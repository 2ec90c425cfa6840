// record.ts — records and replays the control calls that configure a core. `recordConfig` wraps a
// freshly instantiated core's control exports (the .svp op table) so that every call is logged with
// its arguments, the bytes it reads from core memory and its result; the packet path and every read
// are left untouched, so recording costs nothing per packet. `applySvp` replays a decoded .svp into a
// fresh core: blobs go into the buffer each call reads, pointer arguments are renewed, and every
// result must equal the recorded one. Never parses rule text and never touches files.
import type { CoreExports } from '../core/abi.js';
import { BufferKind, SVP_OP_BY_NAME, SVP_OPS, SvpError, encodeSvp, opSpec, type OpSpec, type Svp, type SvpOp } from './svp.js';

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
      // the length is the last argument; a size-0 request returns the current buffer unchanged
      const len = args[args.length - 1]! >>> 0;
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

export { SVP_OP_BY_NAME };
