// bench/run.ts — `npm run bench`: runs every benchmark, prints a table and the same rows as JSON.
import { benchCore, type BenchRow } from './core.js';
import { benchKernelIptables } from './kernel-iptables.js';

const rows: BenchRow[] = [];
rows.push(...(await benchCore()));
rows.push(...(await benchKernelIptables()));
rows.push(...(await (await import('./ipvs.js')).benchIpvs()));
rows.push(...(await (await import('./replay.js')).benchReplay()));
rows.push(...(await (await import('./sync.js')).benchSync()));
rows.push(...(await (await import('./churn.js')).benchChurn()));
rows.push(...(await (await import('./show.js')).benchShow()));
rows.push(...(await (await import('./kube-ipvs.js')).benchKubeIpvs()));
rows.push(...(await (await import('./dns.js')).benchDns(rows)));
rows.push(...(await (await import('./playground.js')).benchPlaygroundIsolated()));
rows.push(...(await (await import('./playground-browser.js')).benchPlaygroundBrowser()));

const w = Math.max(...rows.map((r) => r.name.length));
console.log(`${'benchmark'.padEnd(w)}  ${'value'.padStart(12)}  unit          target   note`);
for (const r of rows) {
  console.log(`${r.name.padEnd(w)}  ${String(r.value).padStart(12)}  ${r.unit.padEnd(12)}  ${(r.target ?? '').padEnd(7)}  ${r.note ?? ''}`);
}
console.log(JSON.stringify({ date: new Date().toISOString(), node: process.version, rows }, null, 2));
