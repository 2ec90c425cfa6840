// compile.ts — `svcplane compile`: configures a recording dataplane from iptables-restore text,
// Kubernetes manifests (rendered in iptables, ipvs or direct mode) or ipvsadm rules with ipsets,
// and writes the control calls it made as a .svp file that any host (Dataplane.load, the WASI
// replay tool, a plain-JS host written from ABI.md) loads without parsing text. Reads its input
// files and writes the one output file; touches no interface, kernel table or clock.
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Dataplane, RestoreFailed } from '../dataplane.js';
import type { Family } from '../kube/index.js';
import { manifestFiles } from '../io/manifests.js';

export const COMPILE_HELP = `usage: svcplane compile (--rules FILE [--family 4|6]
                        | --manifests PATH [--mode iptables|ipvs|direct]
                        | --ipvsadm FILE [--ipset FILE]) -o config.svp
                        [--node-ip IP]... [--pod-cidr CIDR]... [--service-cidr CIDR]...
                        [--masquerade-ip IP]... [--node-name NAME] [--seed N] [--conntrack-capacity N]

Writes the exact tables the core loads (versioned, checksummed) for Dataplane.load(),
\`svcplane replay\` and any host driving the core through ABI.md.
  --rules      iptables-restore text (ip6tables-restore with --family 6)
  --manifests  Services, EndpointSlices and Nodes (a YAML/JSON file or a directory of them)
               iptables: kube-proxy's iptables rules; ipvs: its virtual servers, ipsets and
               iptables rules; direct: the core's own service table
  --ipvsadm    \`ipvsadm -S -n\` rules (as \`ipvsadm -R\` reads them), --ipset its sets
`;

class UsageError extends Error {}

/** A manifests file, or the manifest files of a directory in name order, as one text. */
function readManifests(path: string): string {
  return manifestFiles(path).map((f) => readFileSync(f, 'utf8')).join('\n---\n');
}

export async function runCompile(argv: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        rules: { type: 'string' }, manifests: { type: 'string' }, ipvsadm: { type: 'string' }, ipset: { type: 'string' },
        family: { type: 'string', default: '4' }, mode: { type: 'string', default: 'iptables' },
        output: { type: 'string', short: 'o' },
        'node-ip': { type: 'string', multiple: true, default: [] },
        'pod-cidr': { type: 'string', multiple: true, default: [] },
        'service-cidr': { type: 'string', multiple: true, default: [] },
        'masquerade-ip': { type: 'string', multiple: true, default: [] },
        'node-name': { type: 'string', default: 'node' },
        'masquerade-all': { type: 'boolean', default: false },
        seed: { type: 'string', default: '1' },
        'conntrack-capacity': { type: 'string', default: '65536' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }));
    if (values.help) { out(COMPILE_HELP); return 0; }
    const sources = [values.rules, values.manifests, values.ipvsadm].filter((v) => v !== undefined);
    if (sources.length !== 1) throw new UsageError('give exactly one of --rules, --manifests, --ipvsadm');
    if (!values.output) throw new UsageError('-o FILE is required');
    if (values.ipset !== undefined && values.ipvsadm === undefined) throw new UsageError('--ipset goes with --ipvsadm');
    if (!['iptables', 'ipvs', 'direct'].includes(values.mode!)) throw new UsageError(`--mode: iptables, ipvs or direct, not ${JSON.stringify(values.mode)}`);
    if (values.family !== '4' && values.family !== '6') throw new UsageError(`--family: 4 or 6, not ${JSON.stringify(values.family)}`);
    if (!/^(0x[0-9a-f]+|\d+)$/i.test(values.seed!)) throw new UsageError(`--seed: not an integer: ${JSON.stringify(values.seed)}`);
    if (!/^\d+$/.test(values['conntrack-capacity']!)) throw new UsageError('--conntrack-capacity: not an integer');
  } catch (e) {
    err(`svcplane compile: ${(e as Error).message}\n${COMPILE_HELP}`);
    return 2;
  }
  const nodeIPs = values['node-ip']!.length > 0 ? values['node-ip']! : ['192.168.49.2'];
  let dp: Dataplane;
  try {
    dp = await Dataplane.create({
      nodeIPs, seed: BigInt(values.seed!), conntrackCapacity: Number(values['conntrack-capacity']), record: true,
      ...(values['pod-cidr']!.length ? { podCIDR: values['pod-cidr']! } : {}),
      ...(values['service-cidr']!.length ? { serviceCIDR: values['service-cidr']! } : {}),
      ...(values['masquerade-ip']!.length ? { masqueradeIPs: values['masquerade-ip']! } : {}),
    });
  } catch (e) {
    // The node's options as the core takes them (an address, a CIDR, a table size it cannot hold).
    err(`svcplane compile: ${(e as Error).message}\n${COMPILE_HELP}`);
    return 2;
  }
  const nodeName = values['node-name']!;
  let source: Record<string, unknown> = {};
  let input = values.rules ?? values.ipvsadm ?? values.manifests!;
  try {
    if (values.rules !== undefined) {
      const family = Number(values.family) as Family;
      dp.iptablesRestore(readFileSync(values.rules, 'utf8'), { family });
      source = { rules: values.rules, family };
    } else if (values.ipvsadm !== undefined) {
      if (values.ipset !== undefined) {
        input = values.ipset;
        dp.ipset.restore(readFileSync(values.ipset, 'utf8'));
        input = values.ipvsadm;
      }
      ipvsRestore(dp, readFileSync(values.ipvsadm, 'utf8'));
      source = { ipvsadm: values.ipvsadm, ...(values.ipset ? { ipset: values.ipset } : {}) };
    } else {
      const text = readManifests(values.manifests!);
      source = { manifests: values.manifests, mode: values.mode };
      const r = dp.apply(text, { nodeName, mode: values.mode as 'iptables' | 'ipvs' | 'direct', iptables: { masqueradeAll: values['masquerade-all']! } });
      for (const i of r.issues) err(`svcplane compile: ${i.message}\n`);
    }
  } catch (e) {
    if (typeof (e as NodeJS.ErrnoException).path === 'string') throw e;   // a file it could not read: main.ts names it
    const where = e instanceof RestoreFailed && !/\bline \d+/.test(e.message) && e.line > 0 ? `line ${e.line}: ` : '';
    err(`svcplane compile: ${input}: ${where}${(e as Error).message}\n`);
    return 1;
  }
  const svp = dp.compiled({ compiledBy: 'svcplane compile', source });
  writeFileSync(values.output!, svp);
  out(`${values.output}: ${svp.length} bytes, ${dp.configLog!.ops.length} core calls\n`);
  return 0;
}

function ipvsRestore(dp: Dataplane, text: string): void {
  const r = dp.ipvsadm(['-R'], text);
  if (r.code !== 0) throw new Error(`ipvsadm -R: ${r.stderr.trim() || `exit ${r.code}`}`);
}
