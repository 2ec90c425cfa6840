// wasm-memory.ts — sizes the replay tool's memory before it runs. Node's WASI keeps a view of the
// module's memory and misbehaves (stale writes, SIGSEGV in node) once that memory has been grown,
// even when it grew before `start` (nodejs/node#51303 and reports like it; seen here on Node 20). So
// the tool must start with all the memory it will use: `withInitialMemory` rewrites the module's
// memory section (WebAssembly core spec §5.5.8, limits §5.3.8) to a larger minimum, and
// `replayMemoryPages` estimates what a config and capture need. The AssemblyScript allocator takes
// the whole initial memory as its heap, so it never grows it. Pure: bytes in, bytes out.
import { decodeSvp, SVP_OP_BY_NAME } from '../embed/svp.js';

function readLeb(b: Uint8Array, at: number): [number, number] {
  let v = 0, shift = 0, byte: number;
  do {
    if (at >= b.length) throw new Error('module truncated inside a LEB128 number');
    byte = b[at++]!;
    v += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  return [v, at];
}

function leb(v: number): number[] {
  const out: number[] = [];
  do {
    let byte = v % 128;
    v = Math.floor(v / 128);
    if (v > 0) byte |= 0x80;
    out.push(byte);
  } while (v > 0);
  return out;
}

/** The module with its one memory's minimum raised to `pages` (never lowered; the maximum kept). */
export function withInitialMemory(module: Uint8Array, pages: number): Uint8Array {
  let at = 8;
  while (at < module.length) {
    const id = module[at]!;
    const [size, start] = readLeb(module, at + 1);
    const end = start + size;
    if (id === 5) {
      let [count, p] = readLeb(module, start);
      if (count !== 1) throw new Error(`module declares ${count} memories, expected 1`);
      const flags = module[p++]!;
      let min: number, max: number | undefined;
      [min, p] = readLeb(module, p);
      if (flags & 1) [max, p] = readLeb(module, p);
      if (pages <= min) return module;
      const newMin = max !== undefined ? Math.min(pages, max) : pages;
      const body = [...leb(1), flags, ...leb(newMin), ...(max !== undefined ? leb(max) : []), ...module.subarray(p, end)];
      const section = [5, ...leb(body.length), ...body];
      const out = new Uint8Array(at + section.length + (module.length - end));
      out.set(module.subarray(0, at));
      out.set(section, at);
      out.set(module.subarray(end), at + section.length);
      return out;
    }
    at = end;
  }
  throw new Error('module has no memory section');
}

/**
 * Pages the tool needs for this config, with room to spare: the I/O arena, the capture window and
 * output buffers, the config held whole, conntrack and IPVS tables as the config's init calls size them.
 * An unreadable config gets the base size (the tool itself reports what is wrong with it).
 */
export function replayMemoryPages(config: Uint8Array): number {
  let bytes = 48 * 2 ** 20 + 4 * config.length;
  try {
    for (const op of decodeSvp(config).ops) {
      if (op.id === SVP_OP_BY_NAME.get('init')!.id) bytes += 256 * 2 ** (op.args[0] ?? 16);
      if (op.id === SVP_OP_BY_NAME.get('ipvsInit')!.id) bytes += 256 * 2 ** (op.args[0] ?? 16) + 512 * ((op.args[1] ?? 0) + (op.args[2] ?? 0));
    }
  } catch {
    // left to the tool
  }
  return Math.min(65536, Math.ceil(bytes / 65536));
}
