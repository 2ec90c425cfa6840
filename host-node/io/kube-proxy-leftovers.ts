// kube-proxy-leftovers.ts — what a kube-proxy that ran on this node left in the kernel, which takes
// Service traffic before it reaches the proxy's device: its iptables chains (nat PREROUTING and
// OUTPUT jump to KUBE-SERVICES, which DNATs a ClusterIP before routing), in the legacy and the
// nf_tables backend and both families; the kube-ipvs0 device of its ipvs mode (every Service
// address on it is a local one, so the kernel keeps such packets); the KUBE-* ipsets of that mode;
// the `kube-proxy` nftables tables of its nftables mode. find() lists them (read only) for the
// warning at start; remove() does what `kube-proxy --cleanup` does to them (CleanupLeftovers in
// pkg/proxy/{iptables,ipvs,nftables}), for `svcplane proxy --cleanup`. Kubelet's chains
// (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-MARK-DROP) and every other rule stay. Runs the
// iptables-save/-restore, ip, ipset and nft found on PATH; a missing tool is a table it cannot
// see (said in the result). IPVS virtual servers are not touched (no ipvsadm): without kube-ipvs0
// their addresses are no longer local, and NodePorts are steered into the device before them.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';

// kube-proxy's own chains per table (iptables and ipvs proxiers), and its per-Service chain
// prefixes (isServiceChainName, and KUBE-XLB- of older releases).
const CHAINS: Record<string, readonly string[]> = {
  nat: ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ', 'KUBE-PROXY-CANARY', 'KUBE-NODE-PORT', 'KUBE-LOAD-BALANCER'],
  filter: ['KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES', 'KUBE-FORWARD', 'KUBE-NODEPORTS', 'KUBE-PROXY-FIREWALL', 'KUBE-PROXY-CANARY',
    'KUBE-NODE-PORT', 'KUBE-SOURCE-RANGES-FIREWALL', 'KUBE-IPVS-FILTER', 'KUBE-IPVS-OUT-FILTER'],
  mangle: ['KUBE-PROXY-CANARY'],
};
const SERVICE_CHAIN = /^KUBE-(SVC|SVL|EXT|FW|SEP|XLB)-/;
const BACKENDS = ['iptables-legacy', 'iptables-nft', 'ip6tables-legacy', 'ip6tables-nft'] as const;

/** One kind of leftover: where, and what (chains, a device, sets, tables). */
export interface Leftover {
  where: string;
  what: string[];
}

export interface LeftoversReport {
  found: Leftover[];
  /** Tools not on PATH or that could not read their tables: what they would have shown is not known. */
  unseen: string[];
  /** remove(): what failed, by where. */
  errors: string[];
}

const onPath = (tool: string): boolean =>
  (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').some((d) => d !== '' && existsSync(`${d}/${tool}`));

// Asynchronous: a node's leftover ruleset can be tens of megabytes, and the proxy serves meanwhile.
const run = (tool: string, args: string[], input?: string): Promise<string> => new Promise((resolve, reject) => {
  const child = execFile(tool, args, { encoding: 'utf8', maxBuffer: 1 << 30 }, (e, stdout, stderr) => (e ? reject(Object.assign(e, { stderr })) : resolve(stdout)));
  // A tool that exits before reading its input (EPIPE) answers through the callback.
  child.stdin?.on('error', () => {});
  child.stdin?.end(input);
});

const why = (e: unknown): string => ((e as { stderr?: string }).stderr?.trim() || (e as Error).message).split('\n')[0]!;

interface TablePlan { table: string; chains: string[]; unlink: string[] }

/**
 * kube-proxy's chains in one backend's save text, per table, and the rules of other chains that
 * jump or go to them (they must go first, or the chains cannot be deleted).
 */
export function planIptables(saved: string): TablePlan[] {
  const plans: TablePlan[] = [];
  let cur: TablePlan | null = null;
  let ours = new Set<string>();
  const rules: string[] = [];
  const finish = (): void => {
    if (cur && cur.chains.length > 0) {
      for (const r of rules) {
        const m = /^-A (\S+)(?: .*)? -[jg] (\S+)(?: .*)?$/.exec(r);
        if (m && !ours.has(m[1]!) && ours.has(m[2]!)) cur.unlink.push(`-D ${r.slice(3)}`);
      }
      plans.push(cur);
    }
    cur = null;
    rules.length = 0;
  };
  for (const line of saved.split('\n')) {
    if (line.startsWith('*')) {
      finish();
      const table = line.slice(1).trim();
      cur = { table, chains: [], unlink: [] };
      ours = new Set();
    } else if (cur && line.startsWith(':')) {
      const name = line.slice(1).split(' ')[0]!;
      if ((CHAINS[cur.table] ?? []).includes(name) || ((cur.table === 'nat') && SERVICE_CHAIN.test(name))) {
        cur.chains.push(name);
        ours.add(name);
      }
    } else if (cur && line.startsWith('-A ')) rules.push(line);
    else if (line.startsWith('COMMIT')) finish();
  }
  finish();
  return plans;
}

/** The restore text that unlinks, flushes and deletes a table's kube-proxy chains (kube-proxy's order). */
export function removalText(p: TablePlan): string {
  return [`*${p.table}`, ...p.chains.map((c) => `:${c} - [0:0]`), ...p.unlink, ...p.chains.map((c) => `-X ${c}`), 'COMMIT', ''].join('\n');
}

function summary(chains: string[]): string[] {
  const named = chains.filter((c) => !SERVICE_CHAIN.test(c));
  const perService = chains.length - named.length;
  return perService > 0 ? [...named, `${perService} Service chains`] : named;
}

async function sweep(remove: boolean): Promise<LeftoversReport> {
  const r: LeftoversReport = { found: [], unseen: [], errors: [] };
  for (const tool of BACKENDS) {
    if (!onPath(`${tool}-save`)) { r.unseen.push(`${tool}-save`); continue; }
    let saved: string;
    try {
      saved = await run(`${tool}-save`, []);
    } catch (e) {
      // A backend this kernel does not offer (no module, no family) cannot hold kube-proxy's rules
      // either; what it said goes with the tools not looked at.
      r.unseen.push(`${tool}-save (${why(e)})`);
      continue;
    }
    for (const p of planIptables(saved)) {
      const where = `${tool} ${p.table}`;
      r.found.push({ where, what: summary(p.chains) });
      if (!remove) continue;
      try {
        await run(`${tool}-restore`, ['--noflush'], removalText(p));
      } catch (e) {
        r.errors.push(`${where}: ${why(e)}`);
      }
    }
  }
  if (onPath('ip')) {
    let addrs = -1;
    try { addrs = (await run('ip', ['-o', 'addr', 'show', 'dev', 'kube-ipvs0'])).split('\n').filter((l) => l.trim() !== '').length; } catch { /* no such device */ }
    if (addrs >= 0) {
      r.found.push({ where: 'device kube-ipvs0', what: [`${addrs} addresses`] });
      if (remove) try { await run('ip', ['link', 'del', 'kube-ipvs0']); } catch (e) { r.errors.push(`device kube-ipvs0: ${why(e)}`); }
    }
  } else r.unseen.push('ip');
  if (onPath('ipset')) {
    let sets: string[] = [];
    try { sets = (await run('ipset', ['list', '-n'])).split('\n').filter((n) => n.startsWith('KUBE-')); } catch { /* no ip_set module */ }
    if (sets.length > 0) {
      r.found.push({ where: 'ipset', what: sets });
      if (remove) for (const s of sets) try { await run('ipset', ['destroy', s]); } catch (e) { r.errors.push(`ipset ${s}: ${why(e)}`); }
    }
  } else r.unseen.push('ipset');
  if (onPath('nft')) {
    let tables: string[] = [];
    try { tables = (await run('nft', ['list', 'tables'])).split('\n').map((l) => l.trim()).filter((l) => /^table (ip|ip6) kube-proxy$/.test(l)); } catch { /* no nf_tables */ }
    for (const t of tables) {
      r.found.push({ where: 'nftables', what: [t] });
      if (remove) try { await run('nft', ['delete', ...t.split(' ')]); } catch (e) { r.errors.push(`nftables ${t}: ${why(e)}`); }
    }
  } else r.unseen.push('nft');
  return r;
}

/** What kube-proxy left in this network namespace's kernel (reads only). */
export function findKubeProxyLeftovers(): Promise<LeftoversReport> {
  return sweep(false);
}

/** kube-proxy's CleanupLeftovers: removes what findKubeProxyLeftovers() finds; returns what it removed and what failed. */
export function removeKubeProxyLeftovers(): Promise<LeftoversReport> {
  return sweep(true);
}

/**
 * Whether any of `found` takes Service traffic before routing: kube-proxy's nat dispatch chains,
 * kube-ipvs0, its nftables tables. (An old kubelet's KUBE-MARK-MASQ and KUBE-POSTROUTING, or filter
 * chains alone, do not.)
 */
export function intercepts(found: Leftover[]): boolean {
  return found.some((f) => f.where === 'device kube-ipvs0' || f.where === 'nftables'
    || (f.where.endsWith(' nat') && f.what.some((w) => w === 'KUBE-SERVICES' || w === 'KUBE-NODEPORTS' || w.endsWith(' Service chains'))));
}

/** "iptables-legacy nat: KUBE-SERVICES, …, 40 Service chains; device kube-ipvs0: 12 addresses". */
export function describeLeftovers(found: Leftover[]): string {
  return found.map((f) => `${f.where}: ${f.what.join(', ')}`).join('; ');
}
