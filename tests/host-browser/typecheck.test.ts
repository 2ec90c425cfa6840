// The playground's sources (and the shared modules they import) type-check under the browser's
// libraries only — no Node types — so a Node API creeping into the bundle fails here first.
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');

describe('host-browser types', () => {
  it('tsc -p host-browser/tsconfig.json reports no errors', () => {
    const r = spawnSync(resolve(ROOT, 'node_modules/.bin/tsc'), ['-p', 'host-browser/tsconfig.json'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  }, 150_000);
});
