// The runtimes scenario in headless Chromium: tests/runtimes/scenario.mjs (the compiled dist/ host and
// the embedded core, unchanged) is bundled with Vite's build API, served from a throwaway HTTP server
// on 127.0.0.1 and run in the page; what it prints must be byte-identical to Node's output. Chromium
// is Debian's /usr/bin/chromium driven by playwright-core (CI installs it); a missing browser fails.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { AddressInfo } from 'node:net';
import { build } from 'vite';
import { chromium, type Browser } from 'playwright-core';

const ROOT = resolve(import.meta.dirname, '../..');
const CHROMIUM = '/usr/bin/chromium';
const PAGE = `<!doctype html><meta charset="utf-8"><title>svcplane scenario</title>
<script type="module">
  const out = [], err = [];
  console.log = (...a) => out.push(a.join(' '));
  console.error = (...a) => err.push(a.join(' '));
  try { await import('/scenario.js'); window.__result = { ok: true, out, err }; }
  catch (e) { window.__result = { ok: false, error: String(e && e.stack || e), out, err }; }
</script>`;

let dir: string;
let server: Server | undefined;
let browser: Browser | undefined;

beforeAll(async () => {
  if (!existsSync(join(ROOT, 'dist/host-node/core/dataplane.js'))) throw new Error('dist/ is not built: run `node scripts/build.mjs` first');
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (CI does)`);
  dir = mkdtempSync(join(tmpdir(), 'svp-browser-'));
  await build({
    configFile: false, logLevel: 'silent', root: ROOT,
    build: {
      outDir: dir, emptyOutDir: false, minify: false, target: 'esnext', write: true,
      lib: { entry: join(ROOT, 'tests/runtimes/scenario.mjs'), formats: ['es'], fileName: () => 'scenario.js' },
      rollupOptions: { output: { inlineDynamicImports: true } },
    },
  });
  server = createServer((req, res) => {
    if (req.url === '/') { res.writeHead(200, { 'content-type': 'text/html' }); res.end(PAGE); return; }
    if (req.url === '/scenario.js') { res.writeHead(200, { 'content-type': 'text/javascript' }); res.end(readFileSync(join(dir, 'scenario.js'))); return; }
    res.writeHead(404); res.end();
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], headless: true });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('scenario in headless Chromium', () => {
  it('prints a document byte-identical to Node\'s', async () => {
    const node = (await promisify(execFile)(process.execPath, ['tests/runtimes/scenario.mjs'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, maxBuffer: 64 << 20 })).stdout;
    const page = await browser!.newPage();
    try {
      await page.goto(`http://127.0.0.1:${(server!.address() as AddressInfo).port}/`);
      await page.waitForFunction(() => (window as unknown as { __result?: unknown }).__result !== undefined, undefined, { timeout: 90_000 });
      const r = await page.evaluate(() => (window as unknown as { __result: { ok: boolean; error?: string; out: string[]; err: string[] } }).__result);
      if (!r.ok) throw new Error(`the scenario failed in Chromium: ${r.error}`);
      const chrome = r.out.join('\n') + '\n';
      if (chrome !== node) {
        const a = node.split('\n'), b = chrome.split('\n');
        const line = a.findIndex((l, i) => l !== b[i]);
        throw new Error(`Chromium differs from Node first at line ${line + 1}:\nnode:     ${a[line]}\nchromium: ${b[line]}`);
      }
      expect(chrome).toBe(node);
      const doc = JSON.parse(chrome) as { svp: { matches: boolean }; packets: unknown[] };
      expect(doc.packets.length).toBeGreaterThanOrEqual(200);
      expect(doc.svp.matches).toBe(true);
      // the engine's own messages for the corrupted modules differ per runtime; they are on the error channel
      expect(r.err.length).toBeGreaterThan(0);
    } finally {
      await page.close();
    }
  }, 120_000);
});
