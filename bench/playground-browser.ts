// bench/playground-browser.ts — the 20,000-Service load in the playground itself: the site built
// by vite, served on 127.0.0.1, opened in Debian's Chromium (playwright-core, headless), the
// "20,000 Services" preset picked, and the time, taken in the page, from that pick until it has
// drawn the rules, the first trace and the summary (its busy flag drops). Each load runs in a
// fresh browser context (no cached code). Two moments of picking, interleaved load by load:
// at once, the moment the page's first scene is drawn (the worker's warm-up, engine/warm.ts, has
// just begun: the pick waits for its current step and meets code still cold), and after the
// warm-up (the page's data-warm flag), as for a user who has looked at the page for a moment.
// After each load picked after the warm-up, EDITS single-Service edits through the page's form
// (one pod of the shown Service turned not ready, then ready again), each timed in the page from the
// checkbox's change until the busy flag has dropped and the page holds the new trace: the form's
// YAML, the sync of that Service, the rules view and diff, the trace, and the page's DOM
// updated (the browser's layout and paint come after; they are not in the figure).
// PLAYGROUND_BROWSER_LOADS loads of each (default 5). The notes give the worker's own figure
// ("loaded in … ms", the load without the page drawing), the warm-up's time, and the phases the
// page shows for the last load. bench/playground.ts times the same engine under Node. Without
// /usr/bin/chromium the rows say so instead of timing.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { CHROMIUM, buildSite, haveChromium, idle, serveDir } from '../tests/support/playground-site.js';
import type { BenchRow } from './core.js';

const ROOT = resolve(import.meta.dirname, '../..');
const NAME = 'playground load 20k services in Chromium (iptables) p50';
const MOMENTS = [
  { name: `${NAME}, picked after the warm-up`, warm: true },
  { name: `${NAME}, picked as the first scene is drawn`, warm: false },
];

const EDITS = 4;
const EDIT_NAME = 'playground 20k: edit one Service in Chromium (form → rules and trace drawn) p50';

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** What the page is given to time a step: `check` is tried on every change to the page. */
type Timed = { startAt: number; doneAt: number; check: (() => boolean) | null };

/**
 * Watches the page: after every change to its content or busy flag, the first time `check`
 * holds, its time is `doneAt`. Installed once per page.
 */
async function watch(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = window as unknown as Timed;
    w.check = null;
    new MutationObserver(() => {
      if (w.check?.()) {
        w.doneAt = performance.now();
        w.check = null;
      }
    }).observe(document.body, { attributes: true, attributeFilter: ['data-busy'], childList: true, subtree: true, characterData: true });
  });
}

/** When a timed step is done: the 20k scene's summary shown (drawn with its trace), or the trace showing `n` outcomes. */
type Done = { loaded: true } | { outcomes: number };

/**
 * Starts timing at the next `event` on `target` (capture phase), until the busy flag has dropped
 * and `done` holds; the function returned waits for that and gives the ms.
 */
async function timeFrom(page: Page, target: string, event: string, done: Done): Promise<() => Promise<number>> {
  await page.evaluate(([target, event, done]) => {
    const w = window as unknown as Timed;
    w.startAt = 0;
    w.doneAt = 0;
    const holds = 'loaded' in done
      ? () => /20,000 Service/.test(document.getElementById('summary')?.textContent ?? '')
      : () => document.querySelectorAll('#outcomes tbody tr[data-key]').length === done.outcomes;
    w.check = () => w.startAt !== 0 && document.body.dataset.busy === '0' && holds();
    document.getElementById(target)!.addEventListener(event, () => { w.startAt = performance.now(); }, { capture: true, once: true });
  }, [target, event, done] as const);
  return async () => {
    await page.waitForFunction(() => (window as unknown as Timed).doneAt !== 0, undefined, { timeout: 120_000 });
    return page.evaluate(() => { const w = window as unknown as Timed; return w.doneAt - w.startAt; });
  };
}

/** Times EDITS form edits of the shown Service (see the header); ms each. */
async function timeEdits(page: Page): Promise<number[]> {
  const pods = await page.$$eval('#objects-form .fm-endpoints tbody tr', (rows) => rows.map((r) => (r as HTMLElement).dataset.address!));
  if (pods.length !== 2) throw new Error(`bench playground browser: the form shows ${pods.length} pods`);
  const ms: number[] = [];
  for (let e = 0; e < EDITS; e++) {
    const ready = e % 2 === 1;
    const done = await timeFrom(page, 'objects-form', 'change', { outcomes: ready ? 2 : 1 });
    await page.setChecked(`#objects-form tr[data-address="${pods[0]}"] .fm-ready`, ready);
    ms.push(await done());
  }
  return ms;
}

export async function benchPlaygroundBrowser(): Promise<BenchRow[]> {
  if (!haveChromium) return [...MOMENTS.map((m) => m.name), EDIT_NAME].map((name) => ({ name, value: 0, unit: 'ms', note: `not measured: ${CHROMIUM} is missing (apt-get install chromium)` }));
  const loads = Math.max(1, Number(process.env.PLAYGROUND_BROWSER_LOADS) || 5);
  const dir = mkdtempSync(join(tmpdir(), 'svp-playground-bench-'));
  const { server, base } = await (async () => {
    await buildSite(ROOT, dir);
    return serveDir(dir);
  })().catch((e) => { rmSync(dir, { recursive: true, force: true }); throw e; });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], headless: true });
  const seen = MOMENTS.map(() => ({ wall: [] as number[], worker: [] as number[], warmMs: [] as number[], phases: '' }));
  const edits: number[] = [];
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
          // Timed in the page, from the pick's change event to the busy flag dropped with the 20k
          // summary and its trace drawn: what the user waits for, without the automation's round trips.
          await watch(page);
          const loaded = await timeFrom(page, 'preset', 'change', { loaded: true });
          await page.selectOption('#preset', 'scale-20k');
          const got = seen[m]!;
          got.wall.push(await loaded());
          const summary = (await page.textContent('#summary')) ?? '';
          const own = /loaded in (\d+) ms/.exec(summary);
          if (!own) throw new Error(`bench playground browser: no load time in the summary: ${summary}`);
          got.worker.push(Number(own[1]));
          got.phases = (await page.$$eval('#changes p.small', (ps) => ps.map((p) => p.textContent ?? ''))).join(' ');
          const warmMs = await page.evaluate(() => document.body.dataset.warmMs);
          if (warmMs) got.warmMs.push(Number(warmMs));
          if (MOMENTS[m]!.warm) edits.push(...(await timeEdits(page)));
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
  const rows: BenchRow[] = MOMENTS.map((m, i) => {
    const got = seen[i]!;
    const warm = got.warmMs.length ? `; warm-up ${Math.round(median(got.warmMs))} ms of worker time` : '';
    return {
      name: m.name, value: Math.round(median(got.wall)), unit: 'ms', target: '≤2000',
      note: `${loads} loads, pick → page drawn: ${got.wall.map(Math.round).join(', ')} ms; the worker's own figure p50 ${median(got.worker)} ms${warm}; last load's phases: ${got.phases}`,
    };
  });
  const sorted = [...edits].sort((a, b) => a - b);
  rows.push({
    name: EDIT_NAME, value: Math.round(median(edits)), unit: 'ms', target: '≤50',
    note: `${edits.length} edits (${EDITS} after each load picked after the warm-up, the first of each right after its load); max ${Math.round(sorted.at(-1)!)} ms; in order: ${edits.map(Math.round).join(', ')} ms`,
  });
  return rows;
}
