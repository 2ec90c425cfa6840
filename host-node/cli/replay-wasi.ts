// replay-wasi.ts — runs build/svcplane-replay.wasm once under this runtime's node:wasi (Node or Bun)
// and exits with its exit code: `node replay-wasi.js <tool arguments>`. The tool gets its arguments
// unchanged, this process's stdio, and only the directories of the files it names. Node's WASI keeps
// a view of the module's memory and misbehaves (stale writes, SIGSEGV in node) once that memory has
// grown, even before `start` (nodejs/node#51303 and reports like it; seen here on Node 20), and when
// several WASI instances live and die in one process. So each replay gets a fresh process, and the
// module starts with all the memory it will use: `withInitialMemory` rewrites its memory section
// (WebAssembly core spec §5.5.8, limits §5.3.8) to the minimum `replayMemoryPages` estimates; the
// AssemblyScript allocator takes the whole initial memory as its heap and never grows it.
import { WASI } from 'node:wasi';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
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

/** build/svcplane-replay.wasm, from the source tree (host-node/cli) or from dist/host-node/cli. */
export function replayWasmPath(): string {
  for (const rel of ['../../build/svcplane-replay.wasm', '../../../build/svcplane-replay.wasm']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error('build/svcplane-replay.wasm is missing: run `node scripts/build.mjs`');
}

const FILE_OPTIONS = new Set(['--config', '-o', '--json', '--summary']);

async function main(args: string[]): Promise<number> {
  const files: string[] = [];
  let config: string | undefined;
  for (let i = 0; i < args.length; i++) {
    if (FILE_OPTIONS.has(args[i]!) && i + 1 < args.length) {
      if (args[i] === '--config') config = args[i + 1];
      files.push(args[++i]!);
    } else if (!args[i]!.startsWith('-')) {
      files.push(args[i]!);
    }
  }
  const preopens: Record<string, string> = {};
  for (const f of files) {
    const dir = dirname(resolve(f));
    // node:wasi throws for a directory that does not exist: named here as the tool names a file.
    if (!isDirectory(dir)) {
      process.stderr.write(`svcplane-replay: ${f}: no such directory\n`);
      return 1;
    }
    preopens[dir] = dir;
  }
  const abs = args.map((a) => (a.startsWith('-') ? a : resolve(a)));   // every other argument is a path
  let pages = 1024;
  try {
    pages = replayMemoryPages(readFileSync(config ?? ''));
  } catch {
    // the tool names the unreadable file
  }
  const wasi = new WASI({ version: 'preview1', args: ['svcplane-replay.wasm', ...abs], env: {}, preopens, returnOnExit: true });
  // The module starts with all the memory it will use (see the top of this file).
  const module = await WebAssembly.compile(withInitialMemory(readFileSync(replayWasmPath()), pages) as BufferSource);
  const instance = await WebAssembly.instantiate(module, { wasi_snapshot_preview1: wasi.wasiImport } as WebAssembly.Imports);
  return wasi.start(instance) ?? 0;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.removeAllListeners('warning');   // node:wasi's ExperimentalWarning is not the user's business
  process.exitCode = await main(process.argv.slice(2));
  // For benchmarks on a shared machine: this process's CPU time, which other load does not inflate.
  if (process.env.SVCPLANE_REPLAY_CPU === '1') {
    const u = process.cpuUsage();
    process.stderr.write(`svcplane-replay-cpu ${JSON.stringify({ userMs: u.user / 1000, systemMs: u.system / 1000 })}\n`);
  }
}
