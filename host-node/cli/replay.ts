// replay.ts — `svcplane replay`: runs build/svcplane-replay.wasm (the WASI replay command) under the
// runtime's node:wasi (Node, Bun) over a capture with a compiled config: translated packets as pcap,
// one JSON line per packet, a summary; with --compare B.svp it replays the capture under both configs
// and reports, per flow, where they send the traffic differently (host-node/replay/compare.ts). Grants
// the module only the directories of the files named; reads and writes nothing else.
import { WASI } from 'node:wasi';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { compareReplays, parseReplayLines, renderComparison } from '../replay/compare.js';

export const REPLAY_HELP = `usage: svcplane replay --config A.svp CAPTURE [-o out.pcap] [--json out.jsonl]
       svcplane replay --config A.svp --compare B.svp CAPTURE [--json diff.json]

Runs every packet of CAPTURE (pcap or pcapng; Ethernet, raw IP or Linux cooked) through the core
configured by A.svp (\`svcplane compile\`), on the capture's own timestamps. -o writes the packets
that leave (forwarded, passed, replies) as a raw-IP pcap; --json one line per captured packet:
verdict, reason, conntrack state, tuple in and out, service / IPVS destination / mark.
--compare replays the capture under both configs and lists every flow they send differently
(--json then writes that comparison as JSON).
`;

export interface ReplayRun {
  /** The tool's summary line: packets, skipped (not IP), frames written, count per verdict. */
  summary: { packets: number; skipped: number; frames: number; pass: number; forward: number; drop: number; reply: number };
}

/** build/svcplane-replay.wasm, from the source tree (host-node/cli) or from dist/host-node/cli. */
export function replayWasmPath(): string {
  for (const rel of ['../../build/svcplane-replay.wasm', '../../../build/svcplane-replay.wasm']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error('build/svcplane-replay.wasm is missing: run `node scripts/build.mjs`');
}

let compiled: WebAssembly.Module | undefined;

/** Runs the WASI replay command once. Throws with the tool's own message when it exits non-zero. */
export async function runReplayWasm(opts: { config: string; capture: string; pcapOut?: string; jsonOut?: string }): Promise<ReplayRun> {
  const io = mkdtempSync(join(tmpdir(), 'svcplane-replay-'));
  const summary = join(io, 'summary.json');
  const files = [opts.config, opts.capture, opts.pcapOut, opts.jsonOut, summary].filter((f): f is string => !!f).map((f) => resolve(f));
  const preopens: Record<string, string> = {};
  for (const f of files) preopens[dirname(f)] = dirname(f);
  const args = ['svcplane-replay.wasm', '--config', resolve(opts.config), '--summary', summary];
  if (opts.pcapOut) args.push('-o', resolve(opts.pcapOut));
  if (opts.jsonOut) args.push('--json', resolve(opts.jsonOut));
  args.push(resolve(opts.capture));
  const outFd = openSync(join(io, 'stdout'), 'w');
  const errFd = openSync(join(io, 'stderr'), 'w');
  try {
    // Bun's WASI ends the whole process on proc_exit (returnOnExit is not honoured there), so the tool's
    // error message goes straight to our stderr under Bun; Node returns the code and we rethrow it.
    const bun = (process.versions as Record<string, string | undefined>).bun !== undefined;
    const wasi = new WASI({ version: 'preview1', args, env: {}, preopens, stdout: outFd, stderr: bun ? 2 : errFd, returnOnExit: true });
    compiled ??= await WebAssembly.compile(readFileSync(replayWasmPath()));
    const instance = await WebAssembly.instantiate(compiled, { wasi_snapshot_preview1: wasi.wasiImport } as WebAssembly.Imports);
    const code = wasi.start(instance) ?? 0;
    closeSync(outFd);
    closeSync(errFd);
    const stderr = readFileSync(join(io, 'stderr'), 'utf8').trim();
    if (code !== 0) throw new Error(stderr.replace(/^svcplane-replay: /, '') || `svcplane-replay exited with ${code}`);
    return { summary: JSON.parse(readFileSync(summary, 'utf8')) as ReplayRun['summary'] };
  } finally {
    rmSync(io, { recursive: true, force: true });
  }
}

export async function runReplay(argv: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  let values, positionals;
  try {
    ({ values, positionals } = parseArgs({
      args: argv, allowPositionals: true, strict: true,
      options: {
        config: { type: 'string' }, compare: { type: 'string' }, output: { type: 'string', short: 'o' },
        json: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (e) {
    err(`svcplane replay: ${(e as Error).message}\n${REPLAY_HELP}`);
    return 2;
  }
  if (values.help) { out(REPLAY_HELP); return 0; }
  if (!values.config || positionals.length !== 1) {
    err(`svcplane replay: --config and one capture file are required\n${REPLAY_HELP}`);
    return 2;
  }
  if (values.compare && values.output) {
    err(`svcplane replay: -o is for a single replay, not --compare\n${REPLAY_HELP}`);
    return 2;
  }
  const capture = positionals[0]!;
  if (!values.compare) {
    const r = await runReplayWasm({
      config: values.config, capture,
      ...(values.output ? { pcapOut: values.output } : {}), ...(values.json ? { jsonOut: values.json } : {}),
    });
    out(`${JSON.stringify(r.summary)}\n`);
    return 0;
  }
  const work = mkdtempSync(join(tmpdir(), 'svcplane-compare-'));
  try {
    const lines = async (config: string, name: string) => {
      const json = join(work, `${name}.jsonl`);
      await runReplayWasm({ config, capture, jsonOut: json });
      return parseReplayLines(readFileSync(json, 'utf8'), `${config} replay`);
    };
    const c = compareReplays(await lines(values.config, 'a'), await lines(values.compare, 'b'));
    if (values.json) writeFileSync(values.json, JSON.stringify({ a: values.config, b: values.compare, capture, ...c }, null, 1) + '\n');
    out(renderComparison(c, { a: values.config, b: values.compare }));
    return 0;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
