// jump-chains.ts — the jumps from the kernel's built-in chains into kube-proxy's chains, which
// kube-proxy installs outside its iptables-restore payload (pkg/proxy/iptables/proxier.go:
// iptablesJumpChains + iptablesKubeletJumpChains, walked in order with EnsureChain and
// EnsureRule(Prepend) — `iptables -C`, then `iptables -I SRC 1` when missing — so the last one
// ensured ends up first). Renders that as --noflush restore text against the live state. Pure.
export interface JumpChain {
  table: 'filter' | 'nat';
  /** The kube-proxy chain jumped to. */
  dst: string;
  /** The built-in chain holding the jump. */
  src: string;
  comment: string;
  extra: string[];
}

/** kube-proxy eras that order the list differently (see render-iptables.ts Era). */
export type JumpEra = 'v1.28' | 'current';

const NEW = ['-m', 'conntrack', '--ctstate', 'NEW'];
const jump = (table: JumpChain['table'], dst: string, src: string, comment: string, extra: string[] = []): JumpChain =>
  ({ table, dst, src, comment, extra });

// iptablesJumpChains, identical in both eras for these entries.
const SHARED_JUMPS: JumpChain[] = [
  jump('filter', 'KUBE-EXTERNAL-SERVICES', 'INPUT', 'kubernetes externally-visible service portals', NEW),
  jump('filter', 'KUBE-EXTERNAL-SERVICES', 'FORWARD', 'kubernetes externally-visible service portals', NEW),
  jump('filter', 'KUBE-NODEPORTS', 'INPUT', 'kubernetes health check service ports'),
  jump('filter', 'KUBE-SERVICES', 'FORWARD', 'kubernetes service portals', NEW),
  jump('filter', 'KUBE-SERVICES', 'OUTPUT', 'kubernetes service portals', NEW),
  jump('filter', 'KUBE-FORWARD', 'FORWARD', 'kubernetes forwarding rules'),
  jump('filter', 'KUBE-PROXY-FIREWALL', 'INPUT', 'kubernetes load balancer firewall', NEW),
  jump('filter', 'KUBE-PROXY-FIREWALL', 'OUTPUT', 'kubernetes load balancer firewall', NEW),
  jump('filter', 'KUBE-PROXY-FIREWALL', 'FORWARD', 'kubernetes load balancer firewall', NEW),
  jump('nat', 'KUBE-SERVICES', 'OUTPUT', 'kubernetes service portals'),
  jump('nat', 'KUBE-SERVICES', 'PREROUTING', 'kubernetes service portals'),
];
const POSTROUTING_JUMP = jump('nat', 'KUBE-POSTROUTING', 'POSTROUTING', 'kubernetes postrouting rules');
// iptablesKubeletJumpChains: duplicates of kubelet's KUBE-FIREWALL jumps (no comment).
const KUBELET_FIREWALL = [jump('filter', 'KUBE-FIREWALL', 'INPUT', ''), jump('filter', 'KUBE-FIREWALL', 'OUTPUT', '')];

/** The jumps an era ensures, in the order syncProxyRules walks them. */
export function jumpChains(era: JumpEra = 'current'): JumpChain[] {
  // ≈v1.28 still kept the POSTROUTING jump in the kubelet list, after the KUBE-FIREWALL jumps.
  return era === 'v1.28'
    ? [...SHARED_JUMPS, ...KUBELET_FIREWALL, POSTROUTING_JUMP]
    : [...SHARED_JUMPS, POSTROUTING_JUMP, ...KUBELET_FIREWALL];
}

/** A jump's rule words after `-A SRC`, as iptables -S prints them. */
export function jumpRuleSpec(j: JumpChain): string {
  const words = [...j.extra];
  if (j.comment) words.push('-m', 'comment', '--comment', `"${j.comment}"`);
  words.push('-j', j.dst);
  return words.join(' ');
}

/** The chains and rules of one table, as read from `iptables -S` output. */
export interface LiveTable {
  chains: Set<string>;
  rules: Set<string>;
}

export function liveTable(rulesText: string): LiveTable {
  const chains = new Set<string>();
  const rules = new Set<string>();
  for (const line of rulesText.split('\n')) {
    const m = /^-[NP] (\S+)/.exec(line);
    if (m) chains.add(m[1]!);
    else if (line.startsWith('-A ')) rules.add(line);
  }
  return { chains, rules };
}

/**
 * The --noflush restore text doing what kube-proxy's EnsureChain / EnsureRule(Prepend) walk does
 * against the live state: missing chains declared (declaring an existing one would flush it),
 * missing jumps inserted at the top, in list order. Empty when nothing is missing.
 */
export function jumpRestoreText(jumps: JumpChain[], live: Record<'filter' | 'nat', LiveTable>): string {
  let out = '';
  for (const table of ['filter', 'nat'] as const) {
    const declare: string[] = [];
    const insert: string[] = [];
    for (const j of jumps.filter((x) => x.table === table)) {
      if (!live[table].chains.has(j.dst) && !declare.includes(j.dst)) declare.push(j.dst);
      const spec = jumpRuleSpec(j);
      if (live[table].rules.has(`-A ${j.src} ${spec}`)) continue;
      insert.push(`-I ${j.src} 1 ${spec}`);
    }
    if (declare.length + insert.length === 0) continue;
    out += `*${table}\n${declare.map((c) => `:${c} - [0:0]\n`).join('')}${insert.map((r) => r + '\n').join('')}COMMIT\n`;
  }
  return out;
}
