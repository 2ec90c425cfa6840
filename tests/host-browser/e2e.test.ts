// The built playground in a real browser: `vite build` into a temporary directory, served over
// node:http on 127.0.0.1 (random port), driven through Debian's Chromium by playwright-core. Loads
// presets, traces and sends packets and checks what the page shows, edits YAML into an error and
// sees the line, sends 10,000 packets and checks the chart, round-trips the share link, and loads
// the 20k scene while the page keeps answering. Screenshots go to dist-playground-screens/.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createServer as createViteServer, type ViteDevServer } from 'vite';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CHROMIUM, buildSite, haveChromium, idle, serveDir } from '../support/playground-site.js';
import { stateToHash } from '../../host-browser/src/share.js';
import { PRESETS } from '../../host-browser/src/presets.js';

const ROOT = resolve(import.meta.dirname, '../..');
const SHOTS = join(ROOT, 'dist-playground-screens');
if (!haveChromium) console.warn(`[host-browser e2e] skipped: ${CHROMIUM} is missing (apt-get install chromium)`);

async function outcomeTexts(page: Page): Promise<string[]> {
  return page.$$eval('#outcomes tbody tr[data-key]', (rows) => rows.map((r) => (r as HTMLElement).dataset.key ?? ''));
}

describe.skipIf(!haveChromium)('playground in Chromium', () => {
  let dir = '';
  let server: Server | undefined;
  let browser: Browser | undefined;
  let base = '';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'svp-playground-'));
    await buildSite(ROOT, dir);
    ({ server, base } = await serveDir(dir));
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], headless: true });
    mkdirSync(SHOTS, { recursive: true });
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((ok) => (server ? server.close(ok) : ok(undefined)));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function open(hash = ''): Promise<Page> {
    const page = await browser!.newPage({ viewport: { width: 1600, height: 1100 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(base + hash);
    await idle(page);
    expect(errors).toEqual([]);
    return page;
  }

  it('loads the first scene, traces, sends a packet and 10,000, and highlights the rules', async () => {
    const page = await open();
    expect(await outcomeTexts(page)).toEqual(expect.arrayContaining(['FORWARD → 10.244.1.11:8080', 'FORWARD → 10.244.2.12:8080', 'FORWARD → 10.244.1.13:8080']));
    expect(await page.$$eval('#outcomes tbody td.num', (t) => t.map((x) => x.textContent))).toEqual(['33.33%', '33.33%', '33.33%']);
    expect(await page.locator('#rules .rl.hit').count()).toBeGreaterThan(3);
    await page.click('#send-one');
    await idle(page);
    await expect.poll(() => page.textContent('#verdict')).toContain('FORWARD');
    expect(await page.textContent('#delivered')).toMatch(/→ 10\.244\.\d+\.\d+:8080/);
    expect(await page.locator('#conntrack tbody tr').count()).toBe(1);
    await page.click('#send-many');
    await idle(page);
    const bars = await page.$$eval('#chart rect.chart-measured[data-key]', (rs) => rs.map((r) => Number(r.getAttribute('data-count'))));
    expect(bars).toHaveLength(3);
    expect(bars.reduce((a, b) => a + b, 0)).toBe(10_000);
    for (const n of bars) expect(n).toBeGreaterThan(3000);   // 1/3 each: 3,333 ± a few dozen
    // Expected next to measured: a new connection has a third for each pod.
    const values = await page.$$eval('#chart .chart-value', (t) => t.map((x) => x.textContent ?? ''));
    expect(values.every((v) => v.includes('(exp 33.3%)'))).toBe(true);
    // A new connection (another source port): the nat path to a pod is highlighted again.
    await page.fill('#pk-sport', '40001');
    await page.dispatchEvent('#pk-sport', 'change');
    await idle(page);
    expect(await outcomeTexts(page)).toHaveLength(3);
    expect(await page.locator('#rules .rl.hit', { hasText: '-j DNAT --to-destination' }).count()).toBe(1);
    await page.screenshot({ path: join(SHOTS, 'clusterip.png'), fullPage: true });
    // Between the calls above the worker warmed its engine on smaller 20k-shaped scenes (engine/warm.ts).
    await page.waitForFunction(() => document.body.dataset.warm !== undefined, undefined, { timeout: 60_000 });
    expect(await page.evaluate(() => document.body.dataset.warm)).toBe('done');
    await page.close();
  });

  it('shows REJECT for a Service without endpoints and masquerade-free ETP=Local', async () => {
    const page = await open();
    await page.selectOption('#preset', 'no-endpoints');
    await idle(page);
    expect(await outcomeTexts(page)).toEqual([expect.stringMatching(/^REPLY/)]);
    // Under the outcome, the rule that rejected it, its text on hover.
    const decided = () => page.$$eval('#outcomes tr.decided span', (ss) => ss.map((x) => [x.textContent, (x as HTMLElement).title]));
    expect(await decided()).toEqual([[expect.stringMatching(/^filter\/KUBE-SERVICES #\d+ REJECT$/), expect.stringContaining('has no endpoints')]]);
    await page.selectOption('#preset', 'nodeport-local');
    await idle(page);
    expect(await outcomeTexts(page)).toEqual(['FORWARD → 10.244.1.21:8080']);
    expect(await decided()).toEqual([[expect.stringMatching(/^nat\/KUBE-SEP-\w+ #2 DNAT$/), expect.stringContaining('--to-destination 10.244.1.21:8080')]]);
    await page.close();
  });

  it('every editable preset: outcomes shown, a packet sent with the verdict the trace predicted', async () => {
    const page = await open();
    const ids = await page.$$eval('#preset option', (os) => os.map((o) => (o as HTMLOptionElement).value).filter((v) => v !== '' && v !== 'scale-20k'));
    expect(ids.length).toBeGreaterThanOrEqual(7);
    for (const id of ids) {
      await page.selectOption('#preset', id);
      await idle(page);
      const keys = await outcomeTexts(page);
      expect(keys.length, id).toBeGreaterThan(0);
      await page.click('#send-one');
      await idle(page);
      const verdict = (await page.textContent('#verdict'))!.replace(/^Sent: /, '').split(' ')[0]!;
      expect(keys.map((k) => k.split(' ')[0]), id).toContain(verdict);
    }
    await page.close();
  });

  it('keeps session affinity until the virtual clock passes its timeout', async () => {
    const page = await open();
    await page.selectOption('#preset', 'affinity');
    await idle(page);
    expect(await outcomeTexts(page)).toHaveLength(3);
    await page.click('#send-many');
    await idle(page);
    const counts = await page.$$eval('#chart rect.chart-measured[data-key]', (rs) => rs.map((r) => Number(r.getAttribute('data-count'))));
    expect(counts.sort((a, b) => b - a)).toEqual([10_000, 0, 0]);                       // all to one pod, though a new client expected thirds
    expect(await outcomeTexts(page)).toHaveLength(1);                                    // the recent list pins the client
    await page.click('[data-advance="61000"]');
    await idle(page);
    expect(await page.textContent('#clock')).toBe('t = 1 min 1 s');
    expect(await outcomeTexts(page)).toHaveLength(3);                                    // affinity expired
    expect(await page.locator('#conntrack tbody tr').count()).toBeGreaterThan(0);        // the flows themselves live 120 s
    await page.close();
  });

  it('the form edits the YAML and the YAML redraws the form', async () => {
    const page = await open();
    expect(await page.inputValue('#fm-service')).toBe('default/web');
    // Toggle one pod terminating in the form: the YAML says so, and the trace leaves that pod out.
    await page.check('#objects-form tr[data-address="10.244.2.12"] .fm-terminating');
    await idle(page);
    const yaml = await page.inputValue('#yaml');
    expect(yaml).toContain('conditions: {ready: false, serving: true, terminating: true}');
    expect((await outcomeTexts(page)).sort()).toEqual(['FORWARD → 10.244.1.11:8080', 'FORWARD → 10.244.1.13:8080']);
    expect(await page.isChecked('#objects-form tr[data-address="10.244.2.12"] .fm-ready')).toBe(false);
    // Only the boxes changed: the one clicked keeps the focus (the form was not redrawn under it).
    expect(await page.evaluate(() => (document.activeElement as HTMLElement | null)?.className)).toBe('fm-terminating');
    // Session affinity typed into the YAML: the form shows it.
    await page.fill('#yaml', yaml.replace('  type: ClusterIP\n', '  type: ClusterIP\n  sessionAffinity: ClientIP\n'));
    await page.dispatchEvent('#yaml', 'input');
    await expect.poll(() => page.inputValue('#fm-affinity')).toBe('ClientIP');
    await idle(page);
    expect(await page.isDisabled('#fm-affinity-timeout')).toBe(false);
    expect(await page.inputValue('#fm-affinity-timeout')).toBe('10800');
    // Add a Service in the form: the builder offers it and a packet to it reaches its two pods.
    await page.click('#fm-add-service');
    await idle(page);
    expect(await page.inputValue('#fm-service')).toBe('default/app-1');
    expect(await page.inputValue('#yaml')).toContain('name: app-1');
    await page.selectOption('#pk-service', 'default/app-1:http');
    await idle(page);
    expect(await page.inputValue('#pk-dst')).toBe('10.96.0.140');
    expect(await outcomeTexts(page)).toHaveLength(2);
    // Its type NodePort with externalTrafficPolicy Local, from outside to the node port: node-a's pod only.
    await page.selectOption('#fm-type', 'NodePort');
    await idle(page);
    await page.selectOption('#fm-etp', 'Local');
    await idle(page);
    expect(await page.inputValue('#yaml')).toMatch(/externalTrafficPolicy: Local/);
    const nodePort = await page.inputValue('#objects-form .fm-port-nodePort');
    expect(Number(nodePort)).toBeGreaterThanOrEqual(30000);
    await page.selectOption('#pk-from', 'outside');
    await page.selectOption('#pk-to', 'nodeport');
    await idle(page);
    expect(await page.inputValue('#pk-dport')).toBe(nodePort);
    const pods = await page.$$eval('#objects-form .fm-endpoints tbody tr', (rows) => rows.map((r) => [(r as HTMLElement).dataset.address, r.querySelector('select')!.value]));
    const local = pods.filter(([, n]) => n === 'node-a').map(([a]) => `FORWARD → ${a}:8080`);
    expect(await outcomeTexts(page)).toEqual(local);
    await page.screenshot({ path: join(SHOTS, 'form.png'), fullPage: true });
    await page.close();
  });

  it('direct mode: the core\'s service table, its entry marked, affinity explained', async () => {
    const page = await open();
    await page.selectOption('#preset', 'affinity');
    await idle(page);
    await page.selectOption('#mode', 'direct');
    await idle(page);
    expect(await page.isDisabled('#scheduler')).toBe(true);
    expect(await page.textContent('#rules .rules-view h3')).toContain('direct service table');
    expect(await page.$$eval('#rules .rl.hit', (l) => l.map((x) => x.textContent))).toEqual([
      'default/cart:http TCP frontends cluster 10.96.0.100:80',
      'default/cart:http TCP endpoints(Cluster) 10.244.1.11:8080 10.244.1.13:8080 10.244.2.12:8080',
      'default/cart:http TCP policy internal=Cluster external=Cluster affinity=ClientIP 60s',
    ]);
    expect(await outcomeTexts(page)).toHaveLength(3);
    await page.click('#send-one');
    await idle(page);
    const to = (await page.textContent('#delivered'))!.match(/→ (10\.244\.\d+\.\d+:8080)/)![1];
    await page.fill('#pk-sport', '40001');
    await page.dispatchEvent('#pk-sport', 'change');
    await idle(page);
    expect(await outcomeTexts(page)).toEqual([`FORWARD → ${to}`]);
    expect(await page.textContent('#steps')).toContain('ClientIP affinity');
    await page.click('[data-advance="61000"]');
    await idle(page);
    expect(await outcomeTexts(page)).toHaveLength(3);
    await page.screenshot({ path: join(SHOTS, 'direct.png'), fullPage: true });
    await page.close();
  });

  it('sends to a Service DNS name: name → VIP → endpoint, with a pod\'s search path', async () => {
    const page = await open();
    await page.selectOption('#pk-to', 'name');
    await idle(page);
    expect(await page.inputValue('#pk-dst')).toBe('web.default.svc.cluster.local');
    expect(await page.textContent('#dns-resolution')).toContain('→ 10.96.0.80:80');
    expect(await outcomeTexts(page)).toHaveLength(3);
    await page.fill('#pk-dst', 'web');
    await page.dispatchEvent('#pk-dst', 'change');
    await idle(page);
    expect(await page.textContent('#dns-resolution')).toBe('web → web.default.svc.cluster.local → 10.96.0.80:80');
    const steps = await page.$$eval('#steps li', (l) => l.map((x) => x.textContent ?? ''));
    expect(steps[0]).toContain('web.default.svc.cluster.local A? → NOERROR 10.96.0.80');
    expect(steps.some((t) => t.includes('KUBE-SERVICES'))).toBe(true);
    expect(await outcomeTexts(page)).toHaveLength(3);
    await page.click('#send-many');
    await idle(page);
    const bars = await page.$$eval('#chart rect.chart-measured[data-key]', (rs) => rs.map((r) => Number(r.getAttribute('data-count'))));
    expect(bars.reduce((a, b) => a + b, 0)).toBe(10_000);
    expect(bars).toHaveLength(3);
    await page.screenshot({ path: join(SHOTS, 'dns-name.png'), fullPage: true });
    // The link keeps the name; opened again it resolves the same way.
    await page.click('#share');
    await page.waitForFunction(() => (document.getElementById('share-url') as HTMLInputElement).value !== '', undefined, { timeout: 30_000 });
    const copy = await open((await page.inputValue('#share-url')).slice(base.length));
    expect(await copy.inputValue('#pk-to')).toBe('name');
    expect(await copy.textContent('#dns-resolution')).toBe('web → web.default.svc.cluster.local → 10.96.0.80:80');
    await copy.close();
    // From outside there is no search path: the short name does not resolve.
    await page.selectOption('#pk-from', 'outside');
    await idle(page);
    expect(await page.textContent('#dns-resolution')).toContain('web does not resolve');
    expect(await outcomeTexts(page)).toEqual([expect.stringMatching(/^no address/)]);
    await page.close();
  });

  it('points a YAML error at its line', async () => {
    const page = await open();
    const yaml = await page.inputValue('#yaml');
    await page.fill('#yaml', yaml.replace('port: 80,', 'port: 99999,'));
    await page.dispatchEvent('#yaml', 'input');
    await page.waitForSelector('#issues .issue');
    await idle(page);
    const line = yaml.split('\n').findIndex((l) => l.includes('port: 80,')) + 1;
    expect(await page.textContent('#issues .issue')).toContain(`line ${line}`);
    expect(await page.textContent('#issues .issue')).toContain('spec.ports[0].port');
    expect(await page.textContent('#gutter .bad')).toBe(String(line));
    await page.screenshot({ path: join(SHOTS, 'yaml-error.png') });
    await page.close();
  });

  it('round-trips the whole state through the share link', async () => {
    const page = await open();
    await page.selectOption('#preset', 'ipvs-schedulers');
    await idle(page);
    await page.selectOption('#scheduler', 'sh');
    await idle(page);
    await page.fill('#pk-sport', '43210');
    await page.dispatchEvent('#pk-sport', 'change');
    await idle(page);
    await page.click('[data-advance="61000"]');
    await idle(page);
    await page.click('#share');
    // The link is encoded asynchronously (msgpack + compression) after the click: wait for it.
    await page.waitForFunction(() => (document.getElementById('share-url') as HTMLInputElement).value !== '', undefined, { timeout: 30_000 });
    const url = await page.inputValue('#share-url');
    expect(url).toMatch(/#s=[A-Za-z0-9_-]+$/);
    const outcomes = await outcomeTexts(page);
    const copy = await open(url.slice(base.length));
    expect(await copy.inputValue('#mode')).toBe('ipvs');
    expect(await copy.inputValue('#scheduler')).toBe('sh');
    expect(await copy.inputValue('#pk-sport')).toBe('43210');
    expect(await copy.textContent('#clock')).toBe('t = 1 min 1 s');
    expect(await copy.inputValue('#preset')).toBe('ipvs-schedulers');
    expect(await outcomeTexts(copy)).toEqual(outcomes);
    expect(await copy.textContent('#rules')).toContain('10.96.0.80:80 sh');
    await copy.click('#compare-run');
    await idle(copy);
    expect(await copy.$$eval('#compare-out th', (t) => t.map((x) => x.textContent))).toEqual(['outcome', 'iptables', 'direct', 'ipvs rr', 'ipvs sh', 'ipvs mh']);
    // sh hashes the one client to one pod; rr takes turns over all four; direct draws uniformly as iptables does.
    const column = (i: number) => copy.$$eval('#compare-out tbody tr', (rows, i) => rows.map((r) => r.children[i]!.firstChild!.textContent), i);
    const sh = await column(4);
    expect(sh.filter((x) => x === '100.0%')).toHaveLength(1);
    expect(await column(3)).toEqual(['25.0%', '25.0%', '25.0%', '25.0%']);
    for (const x of await column(2)) expect(Math.abs(parseFloat(x!) - 25)).toBeLessThan(6);
    // The differences are marked: sh's column and its cells, not direct's.
    expect(await copy.textContent('#compare-summary')).toMatch(/Differs from iptables: .*ipvs sh/);
    expect(await copy.textContent('#compare-summary')).toMatch(/Same as iptables: direct/);
    expect(await copy.$$eval('#compare-out th.col-differs', (t) => t.map((x) => x.textContent))).toContain('ipvs sh');
    expect(await copy.$$eval('#compare-out tbody tr', (rows) => rows.map((r) => r.children[4]!.classList.contains('cell-differs')))).toEqual([true, true, true, true]);
    expect(await copy.$$eval('#compare-out tbody tr', (rows) => rows.filter((r) => r.children[2]!.classList.contains('cell-differs')).length)).toBe(0);
    await copy.screenshot({ path: join(SHOTS, 'ipvs-compare.png'), fullPage: true });
    // The same state as a downloaded file, opened in a fresh page.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    const fresh = await open();
    await fresh.setInputFiles('#open-file', (await download.path())!);
    await fresh.waitForFunction(() => (document.getElementById('scheduler') as HTMLSelectElement).value === 'sh');
    await idle(fresh);
    expect(await fresh.inputValue('#pk-sport')).toBe('43210');
    expect(await fresh.textContent('#clock')).toBe('t = 1 min 1 s');
    expect(await outcomeTexts(fresh)).toEqual(outcomes);
    await page.close();
    await copy.close();
    await fresh.close();
  });

  it('a link it cannot read: the reason over the first scene, or over the scene already shown', async () => {
    const first = PRESETS[0]!;
    const unknown = await stateToHash({ objects: { preset: 'nope' }, mode: 'ipvs', scheduler: 'rr', packet: first.packet, clockMs: 0 });
    const page = await open(unknown);
    await expect.poll(() => page.textContent('#status')).toBe('shared state: unknown preset "nope"');
    expect(await page.inputValue('#preset')).toBe(first.id);
    expect(await page.inputValue('#mode')).toBe(first.mode);
    expect(await outcomeTexts(page)).toHaveLength(3);
    // Pasted over a scene, a damaged link leaves that scene as it was.
    await page.selectOption('#preset', 'no-endpoints');
    await idle(page);
    const outcomes = await outcomeTexts(page);
    await page.evaluate(() => { location.hash = '#s=AAAA'; });
    await expect.poll(() => page.textContent('#status')).toBe('not a svcplane playground state');
    expect(await page.inputValue('#preset')).toBe('no-endpoints');
    expect(await outcomeTexts(page)).toEqual(outcomes);
    await page.close();
  });

  it('loads 20,000 Services in the worker while the page stays responsive, then traces one', async () => {
    const page = await open();
    await page.selectOption('#preset', 'scale-20k');
    // While the worker loads, the page still runs script: the status clock advances.
    await page.waitForSelector('#status progress');
    const ticks: string[] = [];
    for (let i = 0; i < 3; i++) {
      ticks.push(await page.evaluate(() => document.getElementById('status')!.textContent ?? ''));
      await page.waitForTimeout(400);
    }
    expect(new Set(ticks).size).toBeGreaterThan(1);
    await idle(page, 240_000);
    expect(await page.textContent('#summary')).toContain('20,000 Service(s)');
    expect(await outcomeTexts(page)).toHaveLength(2);
    expect(await page.locator('#rules .rl.hit').count()).toBeGreaterThan(3);
    // The rules the first-match walk only checked are counted, not shipped to the page.
    expect(await page.locator('#rules .rl').count()).toBeLessThan(1000);
    expect(await page.textContent('#rules')).toMatch(/checked by the packet, none matched/);
    await page.screenshot({ path: join(SHOTS, 'scale-20k.png') });
    // One Service of the scene in the editor and the form: a pod turned terminating syncs that
    // Service alone, and the trace leaves the pod out.
    expect(await page.inputValue('#yaml')).toContain('name: svc-12345');
    expect(await page.inputValue('#fm-service')).toBe('default/svc-12345');
    const pods = await page.$$eval('#objects-form .fm-endpoints tbody tr', (rows) => rows.map((r) => (r as HTMLElement).dataset.address!));
    expect(pods).toHaveLength(2);
    await page.check(`#objects-form tr[data-address="${pods[0]}"] .fm-terminating`);
    await idle(page, 240_000);
    expect(await page.inputValue('#yaml')).toContain('terminating: true');
    expect(await outcomeTexts(page)).toEqual([`FORWARD → ${pods[1]}:8080`]);
    expect(await page.textContent('#summary')).toContain('20,000 Service(s)');
    expect(await page.textContent('#changes')).toContain('default/svc-12345');
    // Another Service joins the editor; the first edit stays.
    await page.fill('#scene-index', '7');
    await page.click('#scene-show');
    await idle(page, 240_000);
    expect(await page.inputValue('#fm-service')).toBe('default/svc-7');
    expect(await page.inputValue('#yaml')).toContain('terminating: true');
    expect(await outcomeTexts(page)).toEqual([`FORWARD → ${pods[1]}:8080`]);
    await page.close();
  }, 400_000);
});

// `npm run playground` is the Vite dev server on the same config: the page, its worker and the
// core load from source through it, and the first scene answers as the built site does.
describe.skipIf(!haveChromium)('playground under the dev server (npm run playground)', () => {
  let vite: ViteDevServer | undefined;
  let browser: Browser | undefined;

  afterAll(async () => {
    await browser?.close();
    await vite?.close();
  });

  it('serves the page, its worker and the core; the first scene traces', async () => {
    vite = await createViteServer({ configFile: join(ROOT, 'host-browser/vite.config.ts'), logLevel: 'warn', server: { host: '127.0.0.1', port: 0 } });
    await vite.listen();
    const port = (vite.httpServer!.address() as AddressInfo).port;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], headless: true });
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${port}/`);
    await idle(page, 120_000);
    expect(errors).toEqual([]);
    expect(await outcomeTexts(page)).toEqual(expect.arrayContaining(['FORWARD → 10.244.1.11:8080', 'FORWARD → 10.244.2.12:8080', 'FORWARD → 10.244.1.13:8080']));
    await page.close();
  }, 180_000);
});
