// render.ts — `svcplane render`: prints the rules kube-proxy would install for a manifests file or
// directory, so users can diff them against their nodes: in iptables mode its iptables-restore
// text; in ipvs mode its virtual servers (`ipvsadm -S -n`), its ipsets (`ipset restore` input) and its
// iptables-restore text; in nftables mode its `kube-proxy` tables as `nft -f` input. Reads files
// only; touches no dataplane and no kernel.
import { parseArgs } from 'node:util';
import { ProxyState, renderIptables, renderIpvs, renderNftables, jumpChains, jumpRestoreText, type Family } from '../kube/index.js';
import { parseCIDR, parseIP } from '../kube/ip.js';
import { ManifestSource } from '../io/manifests.js';
import { SCHEDULERS, isScheduler } from '../ipvs/program.js';

export const RENDER_HELP = `usage: svcplane render --manifests PATH [--mode iptables|ipvs|nftables] [--node-name NAME] [--node-ip IP]...
                       [--cluster-cidr CIDR] [--masquerade-all] [--family 4|6] [--with-jumps]
                       [--nodeport-addresses CIDRS] [--service-cidr CIDR]... [--ipvs-scheduler rr|wrr|lc|…]
`;

const MODES = ['iptables', 'ipvs', 'nftables'];

/** Values of a repeatable option, each also a comma list, as one list. */
const commaList = (values: readonly string[]): string[] => values.flatMap((v) => v.split(',')).map((s) => s.trim()).filter((s) => s !== '');

/** The first address option value that is no IP address or CIDR, worded as the refusal; null when all are. */
function badAddress(nodeIPs: readonly string[], clusterCIDRs: readonly string[], serviceCIDRs: readonly string[], nodePortAddresses: readonly string[]): string | null {
  for (const ip of nodeIPs) if (!parseIP(ip)) return `--node-ip: not an IP address: ${JSON.stringify(ip)}`;
  for (const [opt, list] of [['--cluster-cidr', clusterCIDRs], ['--service-cidr', serviceCIDRs], ['--nodeport-addresses', nodePortAddresses]] as const) {
    for (const c of list) if (!parseCIDR(c) && !(opt === '--nodeport-addresses' && c === 'primary')) return `${opt}: not a CIDR: ${JSON.stringify(c)}`;
  }
  return null;
}

export async function runRender(argv: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      manifests: { type: 'string' },
      mode: { type: 'string', default: 'iptables' },
      'node-name': { type: 'string', default: 'node' },
      'node-ip': { type: 'string', multiple: true, default: [] },
      'cluster-cidr': { type: 'string' },
      'masquerade-all': { type: 'boolean', default: false },
      family: { type: 'string' },
      'with-jumps': { type: 'boolean', default: false },
      'ipvs-scheduler': { type: 'string', default: 'rr' },
      'nodeport-addresses': { type: 'string' },
      'service-cidr': { type: 'string', multiple: true, default: [] },
    },
    strict: true,
  });
  if (!values.manifests) {
    err(`svcplane render: --manifests is required\n${RENDER_HELP}`);
    return 2;
  }
  if (!MODES.includes(values.mode!)) {
    err(`svcplane render: unknown mode ${JSON.stringify(values.mode)} (${MODES.join(', ')})\n${RENDER_HELP}`);
    return 2;
  }
  if (values.family !== undefined && values.family !== '4' && values.family !== '6') {
    err(`svcplane render: --family must be 4 or 6, not ${JSON.stringify(values.family)}\n${RENDER_HELP}`);
    return 2;
  }
  if (values.mode === 'ipvs' && !isScheduler(values['ipvs-scheduler']!)) {
    err(`svcplane render: unknown --ipvs-scheduler ${JSON.stringify(values['ipvs-scheduler'])} (one of ${SCHEDULERS.join(', ')})\n`);
    return 2;
  }
  const nodePortAddresses = values['nodeport-addresses'] === undefined ? undefined : commaList([values['nodeport-addresses']]);
  const serviceCIDRs = commaList(values['service-cidr']!);
  const bad = badAddress(values['node-ip']!, commaList(values['cluster-cidr'] ? [values['cluster-cidr']] : []), serviceCIDRs, nodePortAddresses ?? []);
  if (bad !== null) {
    err(`svcplane render: ${bad}\n${RENDER_HELP}`);
    return 2;
  }
  const nodeName = values['node-name']!;
  const state = new ProxyState({ nodeName });
  let errors = 0;
  const source = new ManifestSource({
    path: values.manifests, nodeName, watch: false,
    log: (m) => { errors++; err(`${m}\n`); },
  });
  source.start(state, () => {});
  await source.stop();
  const families: Family[] = values.family === '4' ? [4] : values.family === '6' ? [6] : [4, 6];
  const common = {
    nodeName, nodeIPs: values['node-ip']!, masqueradeAll: values['masquerade-all']!,
    ...(values['cluster-cidr'] ? { clusterCIDR: values['cluster-cidr'] } : {}),
    ...(nodePortAddresses ? { nodePortAddresses } : {}),
  };
  for (const plan of state.sync()) {
    if (!families.includes(plan.family)) continue;
    if (plan.model.services.size === 0 && families.length > 1) continue;
    if (values.mode === 'nftables') {
      out(`# IPv${plan.family} (nft -f, into a node without the table)\n${renderNftables(plan.model, { ...common, serviceCIDRs })}`);
      continue;
    }
    if (values.mode === 'ipvs') {
      const v = renderIpvs(plan.model, { ...common, scheduler: values['ipvs-scheduler']! });
      out(`# IPv${plan.family} ipvsadm -S -n\n${v.ipvsadm}# IPv${plan.family} ipset restore\n${v.ipset}`);
      out(`# IPv${plan.family} (${plan.family === 4 ? 'iptables' : 'ip6tables'}-restore --noflush)\n${v.iptables}`);
      continue;
    }
    const r = renderIptables(plan.model, common);
    if (families.length > 1) out(`# IPv${plan.family} (${plan.family === 4 ? 'iptables' : 'ip6tables'}-restore --noflush)\n`);
    out(r.text);
    if (values['with-jumps']) {
      // The payload above declares kube-proxy's chains; the jumps must not declare them again.
      const declared = new Set([...r.text.matchAll(/^:(\S+) /gm)].map((m) => m[1]!));
      const live = { chains: declared, rules: new Set<string>() };
      out(jumpRestoreText(jumpChains(), { filter: live, nat: live }));
    }
  }
  return errors > 0 ? 1 : 0;
}
