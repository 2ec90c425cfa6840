// bench/playground-browser.ts — the 20,000-Service load in the playground itself: the site built
// by vite, served on 127.0.0.1, opened in Debian's Chromium (playwright-core, headless), the
// "20,000 Services" preset picked, and the time, taken in the page, from that pick until it has
// drawn the rules, the first trace and the summary (its busy flag drops). Each load runs in a
// fresh browser context (no cached code). Two moments of picking, interleaved load by load:
// at once, the moment the page's first scene is drawn (the worker's warm-up, engine/warm.ts, has
// just begun: the pick waits for its current step and meets code still cold), and after the
// warm-up (the page's data-warm flag), as for a user who has looked at the page for a moment.
// PLAYGROUND_BROWSER_LOADS loads of each (default 5). The notes give the worker's own figure
// ("loaded in … ms", the load without the page drawing), the warm-up's time, and the phases the
// page shows for the last load. bench/playground.ts times the same engine under Node. Without
// /usr/bin/chromium the rows say so instead of timing.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM, buildSite, haveChromium, idle, serveDir } from '../tests/support/playground-site.js';
import type { BenchRow } from './core.js';

const ROOT = resolve(import.meta.dirname, '../..');
const NAME = 'playground load 20k services in Chromium (iptables) p50';
const MOMENTS = [
  { name: `${NAME}, picked after the warm-up`, warm: true },
  { name: `${NAME}, picked as the first scene is drawn`, warm: false },
];

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function benchPlaygroundBrowser(): Promise<BenchRow[]> {
  if (!haveChromium) return MOMENTS.map((m) => ({ name: m.name, value: 0, unit: 'ms', note: `not measured: ${CHROMIUM} is missing (apt-get install chromium)` }));
  const loads = Math.max(1, Number(process.env.PLAYGROUND_BROWSER_LOADS) || 5);
  const dir = mkdtempSync(join(tmpdir(), 'svp-playground-bench-'));
  const { server, base } = await (async () => {
    await buildSite(ROOT, dir);
    return serveDir(dir);
  })().catch((e) => { rmSync(dir, { recursive: true, force: true }); throw e; });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], headless: true });
  const seen = MOMENTS.map(() => ({ wall: [] as number[], worker: [] as number[], warmMs: [] as number[], phases: '' }));
  try {
    for (let k = 0; k < loads; k++) {
      for (let m = 0; m < MOMENTS.length; m++) {
        const context = await browser.newContext({ viewport: { width: 1600, height: 1100 } });
        try {
          const page = await context.newPage();
          await page.goto(base);
          await idle(page);
          if (MOMENTS[m]!.warm) {
            await page.waitForFunction(() => document.body.dataset.warm !== undefined, undefined, { timeout: 60_000 });
            const warm = await page.evaluate(() => document.body.dataset.warm);
            if (warm !== 'done') throw new Error(`bench playground browser: the warm-up ended "${warm}"`);
          }
          // Timed in the page, from the pick's change event to the busy flag dropping with the 20k
          // summary shown: what the user waits for, without the automation's round trips.
          await page.evaluate(() => {
            const w = window as unknown as { pickedAt: number; drawnAt: number };
            w.pickedAt = 0;
            w.drawnAt = 0;
            document.getElementById('preset')!.addEventListener('change', () => { w.pickedAt = performance.now(); }, { capture: true, once: true });
            new MutationObserver(() => {
              if (w.drawnAt === 0 && w.pickedAt !== 0 && document.body.dataset.busy === '0' &&
                /20,000 Service/.test(document.getElementById('summary')?.textContent ?? '')) w.drawnAt = performance.now();
            }).observe(document.body, { attributes: true, attributeFilter: ['data-busy'] });
          });
          await page.selectOption('#preset', 'scale-20k');
          await page.waitForFunction(() => (window as unknown as { drawnAt: number }).drawnAt !== 0, undefined, { timeout: 120_000 });
          const got = seen[m]!;
          got.wall.push(await page.evaluate(() => { const w = window as unknown as { pickedAt: number; drawnAt: number }; return w.drawnAt - w.pickedAt; }));
          const summary = (await page.textContent('#summary')) ?? '';
          const own = /loaded in (\d+) ms/.exec(summary);
          if (!own) throw new Error(`bench playground browser: no load time in the summary: ${summary}`);
          got.worker.push(Number(own[1]));
          got.phases = (await page.$$eval('#changes p.small', (ps) => ps.map((p) => p.textContent ?? ''))).join(' ');
          const warmMs = await page.evaluate(() => document.body.dataset.warmMs);
          if (warmMs) got.warmMs.push(Number(warmMs));
        } finally {
          await context.close();
        }
      }
    }
  } finally {
    await browser.close();
    await new Promise((ok) => server.close(ok));
    rmSync(dir, { recursive: true, force: true });
  }
  return MOMENTS.map((m, i) => {
    const got = seen[i]!;
    const warm = got.warmMs.length ? `; warm-up ${Math.round(median(got.warmMs))} ms of worker time` : '';
    return {
      name: m.name, value: Math.round(median(got.wall)), unit: 'ms', target: '≤2000',
      note: `${loads} loads, pick → page drawn: ${got.wall.map(Math.round).join(', ')} ms; the worker's own figure p50 ${median(got.worker)} ms${warm}; last load's phases: ${got.phases}`,
    };
  });
}
