// bench/show.ts — how long a running proxy's /show holds its thread (and so every packet: the
// core runs on it) while it lists 20,000 Services: the listing made in one piece, as before
// /show was paced, and paced (io/proxy-inspect.ts pacedShow: a slice of ~4 ms per turn of the
// event loop), its longest hold measured as the longest gap between two turns of a probe that
// asks for the next turn at once — what a packet batch arriving meanwhile would wait at most.
// Per listing: `iptables -t nat -nvL` and `iptables-save -c` (iptables mode), `ipvsadm -Ln`
// (ipvs mode), `direct` (direct mode), over bench/sync.ts's cluster (2 endpoints per Service,
// every 10th a NodePort). The median of RUNS. Never touches the network.
import { Dataplane } from '../host-node/dataplane.js';
import { pacedShow } from '../host-node/io/proxy-inspect.js';
import { runShowTool, showTool, type ShowTool } from '../host-node/io/read-only-tools.js';
import type { BenchRow } from './core.js';
import { sliceObject, svcObject } from './sync.js';

const SERVICES = 20_000;
const RUNS = 3;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const LISTINGS: ReadonlyArray<{ mode: 'iptables' | 'ipvs' | 'direct'; tool: ShowTool; args: string[] }> = [
  { mode: 'iptables', tool: 'iptables', args: ['-t', 'nat', '-nvL'] },
  { mode: 'iptables', tool: 'iptables-save', args: ['-c'] },
  { mode: 'ipvs', tool: 'ipvsadm', args: ['-Ln'] },
  { mode: 'direct', tool: 'direct', args: [] },
];

/** The longest gap (ms) between turns of the event loop while `p` settles. */
async function longestHold(p: () => Promise<unknown>): Promise<number> {
  let last = performance.now(), longest = 0, done = false;
  const probe = (): void => {
    const t = performance.now();
    longest = Math.max(longest, t - last);
    last = t;
    if (!done) setImmediate(probe);
  };
  setImmediate(probe);
  await p();
  done = true;
  return Math.max(longest, performance.now() - last);
}

export async function benchShow(): Promise<BenchRow[]> {
  const objects: object[] = [];
  for (let i = 0; i < SERVICES; i++) objects.push(svcObject(i), sliceObject(i, 2));
  const rows: BenchRow[] = [];
  const nodes = new Map<string, Dataplane>();
  for (const { mode, tool, args } of LISTINGS) {
    let dp = nodes.get(mode);
    if (!dp) {
      dp = await Dataplane.create({ nodeIPs: ['198.18.200.1'], podCIDR: '198.19.0.0/16', seed: 1 });
      dp.apply(objects, { mode, nodeName: 'node-a' });
      nodes.set(mode, dp);
    }
    const node = dp;
    const whole: number[] = [], paced: number[] = [];
    let bytes = 0;
    // Paced first: the garbage of a listing made in one piece is not left for its collections.
    const make = () => showTool(node, tool, args);
    for (let r = 0; r < RUNS; r++) paced.push(await longestHold(() => pacedShow(make(), make)));
    for (let r = 0; r < RUNS; r++) whole.push(await longestHold(async () => { bytes = runShowTool(node, tool, args).length; }));
    const name = `/show ${tool} ${args.join(' ')}`.trimEnd();
    rows.push({
      name: `${name} at 20k svc (${mode}): longest hold of the proxy thread`, value: Math.round(median(paced) * 10) / 10, unit: 'ms',
      note: `median of ${RUNS}; paced a slice at a time (${(bytes / 1e6).toFixed(1)} MB); made in one piece it holds the thread ${Math.round(median(whole))} ms`,
    });
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchShow()) console.log(`${r.name.padEnd(72)} ${String(r.value).padStart(8)} ${r.unit}  ${r.note}`);
}
