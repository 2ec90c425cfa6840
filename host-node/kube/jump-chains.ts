// jump-chains.ts — the jumps from the kernel's built-in chains into kube-proxy's chains, which
// kube-proxy installs outside its restore payload (pkg/proxy/iptables/proxier.go iptablesJumpChains,
// each ensured with `iptables -I`, so every built-in chain ends up holding them in reverse list
// order). Rendered as restore text for `--noflush`, into empty built-in chains. Pure.
import type { Family } from './ip.js';

interface Jump {
  table: 'filter' | 'nat';
  to: string;
  from: string;
  comment: string;
  extra: string;
}

const NEW = '-m conntrack --ctstate NEW ';

// iptablesJumpChains, in kube-proxy's order.
const JUMPS: Jump[] = [
  { table: 'filter', to: 'KUBE-EXTERNAL-SERVICES', from: 'INPUT', comment: 'kubernetes externally-visible service portals', extra: NEW },
  { table: 'filter', to: 'KUBE-EXTERNAL-SERVICES', from: 'FORWARD', comment: 'kubernetes externally-visible service portals', extra: NEW },
  { table: 'filter', to: 'KUBE-NODEPORTS', from: 'INPUT', comment: 'kubernetes health check service ports', extra: '' },
  { table: 'filter', to: 'KUBE-SERVICES', from: 'FORWARD', comment: 'kubernetes service portals', extra: NEW },
  { table: 'filter', to: 'KUBE-SERVICES', from: 'OUTPUT', comment: 'kubernetes service portals', extra: NEW },
  { table: 'filter', to: 'KUBE-FORWARD', from: 'FORWARD', comment: 'kubernetes forwarding rules', extra: '' },
  { table: 'filter', to: 'KUBE-PROXY-FIREWALL', from: 'INPUT', comment: 'kubernetes load balancer firewall', extra: NEW },
  { table: 'filter', to: 'KUBE-PROXY-FIREWALL', from: 'OUTPUT', comment: 'kubernetes load balancer firewall', extra: NEW },
  { table: 'filter', to: 'KUBE-PROXY-FIREWALL', from: 'FORWARD', comment: 'kubernetes load balancer firewall', extra: NEW },
  { table: 'nat', to: 'KUBE-SERVICES', from: 'OUTPUT', comment: 'kubernetes service portals', extra: '' },
  { table: 'nat', to: 'KUBE-SERVICES', from: 'PREROUTING', comment: 'kubernetes service portals', extra: '' },
  { table: 'nat', to: 'KUBE-POSTROUTING', from: 'POSTROUTING', comment: 'kubernetes postrouting rules', extra: '' },
];

/**
 * Restore text (load with --noflush) adding kube-proxy's base-chain jumps. `localhostFirewall`
 * adds iptablesKubeletJumpChains (INPUT/OUTPUT → KUBE-FIREWALL, IPv4 with localhost NodePorts),
 * which kube-proxy ensures after the list above, so they end up first (a kubelet that created them
 * earlier would have appended them instead).
 */
export function renderJumpChains(family: Family, opts: { localhostFirewall?: boolean } = {}): string {
  const out: string[] = [];
  for (const table of ['filter', 'nat'] as const) {
    out.push(`*${table}`);
    const byChain = new Map<string, string[]>();
    for (const j of JUMPS) {
      if (j.table !== table) continue;
      const rules = byChain.get(j.from) ?? [];
      // -I prepends: the last ensured rule ends up first.
      rules.unshift(`-A ${j.from} ${j.extra}-m comment --comment "${j.comment}" -j ${j.to}`);
      byChain.set(j.from, rules);
    }
    if (table === 'filter' && family === 4 && opts.localhostFirewall) {
      for (const c of ['INPUT', 'OUTPUT']) byChain.get(c)?.unshift(`-A ${c} -j KUBE-FIREWALL`);
    }
    for (const rules of byChain.values()) out.push(...rules);
    out.push('COMMIT');
  }
  return out.join('\n') + '\n';
}
