// replay-wasi.ts — runs build/svcplane-replay.wasm once under this runtime's node:wasi (Node or Bun)
// and exits with its exit code: `node replay-wasi.js <tool arguments>`. The tool gets its arguments
// unchanged, this process's stdio, and only the directories of the files it names. A fresh process per
// replay: node:wasi misbehaves when several WASI instances live and die in one process (see
// replay/wasm-memory.ts), and Bun's WASI ends the process on proc_exit anyway.
import { WASI } from 'node:wasi';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { replayMemoryPages, withInitialMemory } from '../replay/wasm-memory.js';

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
  for (const f of files) preopens[dirname(resolve(f))] = dirname(resolve(f));
  const abs = args.map((a) => (a.startsWith('-') ? a : resolve(a)));   // every other argument is a path
  let pages = 1024;
  try {
    pages = replayMemoryPages(readFileSync(config ?? ''));
  } catch {
    // the tool names the unreadable file
  }
  const wasi = new WASI({ version: 'preview1', args: ['svcplane-replay.wasm', ...abs], env: {}, preopens, returnOnExit: true });
  // The module starts with all the memory it will use (replay/wasm-memory.ts says why).
  const module = await WebAssembly.compile(withInitialMemory(readFileSync(replayWasmPath()), pages) as BufferSource);
  const instance = await WebAssembly.instantiate(module, { wasi_snapshot_preview1: wasi.wasiImport } as WebAssembly.Imports);
  return wasi.start(instance) ?? 0;
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
