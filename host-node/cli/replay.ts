// replay.ts — `svcplane replay`: runs build/svcplane-replay.wasm (the WASI replay command) under the
// runtime's node:wasi (Node, Bun) over a capture with a compiled config: translated packets as pcap,
// one JSON line per packet, a summary; with --compare B.svp it replays the capture under both configs
// and reports, per flow, where they send the traffic differently (host-node/replay/compare.ts). Grants
// the module only the directories of the files named; reads and writes nothing else.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

/** dist/host-node/cli/replay-wasi.js, the one-replay runner (from the source tree or from dist). */
function runnerPath(): string {
  for (const rel of ['./replay-wasi.js', '../../dist/host-node/cli/replay-wasi.js']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error('dist/host-node/cli/replay-wasi.js is missing: run `node scripts/build.mjs`');
}

/**
 * Runs the WASI replay command once, in a child process of this same runtime (Node or Bun). Throws
 * with the tool's own message when it fails.
 */
export async function runReplayWasm(opts: { config: string; capture: string; pcapOut?: string; jsonOut?: string }): Promise<ReplayRun> {
  const args = ['--config', opts.config];
  if (opts.pcapOut) args.push('-o', opts.pcapOut);
  if (opts.jsonOut) args.push('--json', opts.jsonOut);
  args.push(opts.capture);
  const r = await new Promise<{ code: number; stdout: string; stderr: string }>((res, rej) => {
    execFile(process.execPath, [...(process.versions.bun === undefined ? ['--no-warnings'] : []), runnerPath(), ...args], { encoding: 'utf8', maxBuffer: 64 << 20 }, (e, stdout, stderr) => {
      if (e && typeof (e as { code?: unknown }).code !== 'number') rej(e);
      else res({ code: e ? (e as { code: number }).code : 0, stdout, stderr });
    });
  });
  const message = r.stderr.split('\n').find((l) => l.startsWith('svcplane-replay: '));
  if (r.code !== 0) throw new Error(message?.slice('svcplane-replay: '.length) ?? `svcplane-replay exited with ${r.code}: ${r.stderr.trim()}`);
  return { summary: JSON.parse(r.stdout.trim().split('\n').at(-1)!) as ReplayRun['summary'] };
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
