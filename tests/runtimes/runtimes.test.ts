// The same core gives the same answers everywhere: runs tests/runtimes/scenario.mjs (the compiled
// dist/ host and the embedded core) under Node, Deno and Bun and requires byte-identical output, plus
// clear errors for a corrupted module and a wrong ABI version on each. Deno and Bun come from the
// exact-pinned devDependencies `deno` and `bun` (npm ci installs their per-platform binary packages
// @deno/<platform> and @oven/bun-<platform>); a missing runtime fails the test, it is never skipped.
import { describe, it, expect, beforeAll } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const SCENARIO = 'tests/runtimes/scenario.mjs';
const BIN = join(ROOT, 'node_modules/.bin');

interface Runtime {
  name: 'node' | 'deno' | 'bun';
  /** Where an install without the packages' postinstall scripts leaves the real binary. */
  fallbacks: () => string[];
  args: string[];
}

const inPlatformPackages = (scope: string, rel: string) => () => {
  const dir = join(ROOT, 'node_modules', scope);
  return existsSync(dir) ? readdirSync(dir).map((p) => join(dir, p, rel)) : [];
};

const RUNTIMES: Runtime[] = [
  { name: 'node', fallbacks: () => [], args: [SCENARIO] },
  {
    name: 'deno',
    fallbacks: inPlatformPackages('@deno', 'deno'),
    // msgpackr (snapshots) reads this one variable when it loads; nothing else is granted.
    args: ['run', '--allow-read', '--allow-env=MSGPACKR_NATIVE_ACCELERATION_DISABLED', '--no-lock', SCENARIO],
  },
  { name: 'bun', fallbacks: inPlatformPackages('@oven', 'bin/bun'), args: [SCENARIO] },
];

/** The first candidate that answers `--version`, else a message saying how to get one. */
function locate(rt: Runtime): { path: string; version: string } | { missing: string } {
  const candidates = rt.name === 'node' ? [process.execPath] : [join(BIN, rt.name), ...rt.fallbacks()];
  for (const path of candidates) {
    if (!existsSync(path)) continue;
    try {
      const version = execFileSync(path, ['--version'], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, NO_COLOR: '1' } });
      return { path, version: version.trim().split('\n')[0]! };
    } catch {
      // a placeholder left by a skipped postinstall, or a binary for another CPU: try the next
    }
  }
  return {
    missing: `${rt.name} is not installed (looked in ${candidates.join(', ') || 'nowhere'}): run \`npm ci\`; ` +
      `the exact-pinned devDependency "${rt.name}" brings the binary for this platform`,
  };
}

interface Outcome { stdout: string; stderr: string; version: string; ms: number }

const outcomes = new Map<string, Outcome | Error>();

beforeAll(async () => {
  if (!existsSync(join(ROOT, 'dist/host-node/core/dataplane.js'))) {
    throw new Error('dist/ is not built: run `node scripts/build.mjs` first (npm test does)');
  }
  await Promise.all(RUNTIMES.map(async (rt) => {
    const found = locate(rt);
    if ('missing' in found) { outcomes.set(rt.name, new Error(found.missing)); return; }
    const t0 = performance.now();
    try {
      const { stdout, stderr } = await run(found.path, rt.args, {
        cwd: ROOT, encoding: 'utf8', timeout: 60_000, maxBuffer: 64 << 20, env: { ...process.env, NO_COLOR: '1' },
      });
      outcomes.set(rt.name, { stdout, stderr, version: found.version, ms: performance.now() - t0 });
    } catch (e) {
      const err = e as Error & { stderr?: string };
      outcomes.set(rt.name, new Error(`${rt.name} (${found.version}) failed to run the scenario: ${err.message}\n${err.stderr ?? ''}`));
    }
  }));
}, 120_000);

function outcome(name: string): Outcome {
  const o = outcomes.get(name);
  if (!o) throw new Error(`${name}: no outcome recorded`);
  if (o instanceof Error) throw o;
  return o;
}

interface ScenarioDoc {
  packets: Array<{ verdict: string; reason: string | null; ctstate: string | null; out: string | null; phase: string }>;
  conntrack: unknown[];
  stats: Record<string, number>;
  snapshot: { bytes: number; sha256: string; restored: number };
  svp: { bytes: number; sha256: string; calls: number; matches: boolean; failures: Record<string, { name: string; message: string }> };
  failures: Record<string, { name: string; message?: string; ours?: boolean }>;
}

describe.each(RUNTIMES.map((r) => r.name))('scenario on %s', (name) => {
  it('runs to completion and prints a non-trivial document', () => {
    const o = outcome(name);
    const doc = JSON.parse(o.stdout) as ScenarioDoc;
    const forwards = doc.packets.filter((p) => p.verdict === 'FORWARD');
    expect(doc.packets.length).toBeGreaterThanOrEqual(200);
    expect(forwards.length).toBeGreaterThanOrEqual(50);
    expect(forwards.every((p) => p.out !== null && p.out.length >= 40)).toBe(true);
    expect(new Set(doc.packets.map((p) => p.verdict))).toEqual(new Set(['FORWARD', 'DROP', 'PASS', 'REPLY']));
    expect(doc.packets.some((p) => p.ctstate === 'RELATED')).toBe(true);
    expect(doc.packets.filter((p) => p.phase === 'malformed').every((p) => p.verdict === 'DROP')).toBe(true);
    expect(doc.stats.packets).toBe(doc.packets.length);
    expect(doc.stats.conntrack_reaped).toBeGreaterThan(0);
    expect(doc.conntrack.length).toBe(doc.stats.conntrack_entries);
    expect(doc.snapshot.restored).toBe(doc.conntrack.length);
    expect(doc.snapshot.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('rejects a corrupted core with a compile error', () => {
    const doc = JSON.parse(outcome(name).stdout) as ScenarioDoc;
    expect(doc.failures.corruptMagic).toEqual({ name: 'Error', ours: true });
    expect(doc.failures.corruptTypeSection).toEqual({ name: 'Error', ours: true });
    // the engine's own wording, which differs per runtime, is on stderr
    const messages = JSON.parse(outcome(name).stderr.trim().split('\n').at(-1)!) as { corruptMessages: Record<string, string> };
    expect(messages.corruptMessages.magic).toMatch(/magic|asm/i);
    expect(messages.corruptMessages.typeSection.length).toBeGreaterThan(10);
  });

  it('rejects a core of another ABI version with the loader\'s message, and accepts a re-patched v1', () => {
    const doc = JSON.parse(outcome(name).stdout) as ScenarioDoc;
    expect(doc.failures.abiVersion2).toEqual({ name: 'Error', message: 'svcplane core ABI version 2 does not match this host (expects 1)' });
    expect(doc.failures.abiVersion1Patched).toEqual({ name: 'none', message: '' });
  });
});

describe.each(RUNTIMES.map((r) => r.name))('compiled config (.svp) on %s', (name) => {
  it('a core loaded from the .svp answers every call of the scenario exactly like the one that recorded it', () => {
    const doc = JSON.parse(outcome(name).stdout) as ScenarioDoc;
    expect(doc.svp.bytes).toBeGreaterThan(200);
    expect(doc.svp.calls).toBeGreaterThan(20);
    expect(doc.svp.matches).toBe(true);
  });

  it('refuses a damaged, truncated, wrong-version or foreign .svp before applying anything', () => {
    const f = (JSON.parse(outcome(name).stdout) as ScenarioDoc).svp.failures;
    expect(f.flipped!.name).toBe('SvpError');
    expect(f.flipped!.message).toMatch(/^config\.svp rejected: checksum mismatch/);
    expect(f.truncated!.message).toMatch(/^config\.svp rejected: truncated/);
    expect(f.version2!.message).toBe('config.svp rejected: format version 2, this host reads version 1');
    expect(f.notSvp!.message).toMatch(/^config\.svp rejected: not a svcplane config/);
  });
});

describe('across runtimes', () => {
  it('Node, Deno and Bun print byte-identical documents', () => {
    const node = outcome('node');
    for (const name of ['deno', 'bun']) {
      const other = outcome(name);
      if (other.stdout !== node.stdout) {
        const a = node.stdout.split('\n');
        const b = other.stdout.split('\n');
        const line = a.findIndex((l, i) => l !== b[i]);
        throw new Error(`${name} (${other.version}) differs from node (${node.version}) first at line ${line + 1}:\n` +
          `node: ${a[line]}\n${name}: ${b[line]}`);
      }
      expect(other.stdout).toBe(node.stdout);
    }
    console.log(`runtimes: ${RUNTIMES.map((r) => `${r.name} ${outcome(r.name).version} ${outcome(r.name).ms.toFixed(0)} ms`).join('; ')}`);
  });
});
