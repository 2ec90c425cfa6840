// names.ts — a Service DNS name as the packet builder's destination: the names a client's resolver
// asks, in order (a pod's resolv.conf search path and ndots, as the kubelet writes it; the name
// as written for the node and outside clients), each resolved through the core's cluster DNS
// records with Dataplane.traceName, the first that gives addresses winning. The result is the
// address and port the packet then goes to, and the steps that explain it (name → VIP). Never
// touches the DOM or the worker.
import type { Dataplane } from '../../../host-node/dataplane.js';
import type { TraceStepView } from './modes.js';
import type { WirePacket } from './outcomes.js';

/** The cluster domain (the kubelet's --cluster-domain default). */
export const CLUSTER_DOMAIN = 'cluster.local';
/** The kubelet writes `options ndots:5` for ClusterFirst pods (pkg/kubelet/network/dns/dns.go). */
export const NDOTS = 5;

/** A pod's search list (pkg/kubelet/network/dns/dns.go generateSearchesForDNSClusterFirst). */
export function podSearchPath(namespace: string, domain = CLUSTER_DOMAIN): string[] {
  return [`${namespace}.svc.${domain}`, `svc.${domain}`, domain];
}

/**
 * The names a stub resolver asks for `name`, in order (resolv.conf(5), glibc res_search): a name
 * ending in a dot only as written; one with at least `ndots` dots as written first, then with each
 * search domain; a shorter one with each search domain first, then as written.
 */
export function candidateNames(name: string, search: readonly string[], ndots = NDOTS): string[] {
  const n = name.trim().toLowerCase();
  if (n.endsWith('.')) return [n.slice(0, -1)];
  const withSearch = search.map((d) => `${n}.${d}`);
  const dots = n.split('.').length - 1;
  return dots >= ndots ? [n, ...withSearch] : [...withSearch, n];
}

export interface NameAsked {
  name: string;
  /** NOERROR, NXDOMAIN, … or the way the query went when the core did not answer it. */
  rcode: string;
  addresses: string[];
}

export interface ResolvedName {
  name: string;
  /** Every name asked, in order, up to the one that answered. */
  asked: NameAsked[];
  /** The address the packet goes to (the first the answer gave), absent when nothing resolved. */
  address?: string;
  /** The port: the SRV record's for `_port._proto.` names, else the builder's. */
  port: number;
  /** Every address the answer gave. */
  addresses: string[];
}

/** The search path a client of this kind uses: a pod's resolv.conf; none for the node or outside. */
export function searchFor(from: 'pod' | 'node' | 'outside', namespace = 'default'): string[] {
  return from === 'pod' ? podSearchPath(namespace) : [];
}

/** Resolves the packet's name through the core's records (loaded by the caller with dp.dns). */
export function resolvePacketName(dp: Dataplane, p: WirePacket, name: string, search: readonly string[]): ResolvedName {
  const asked: NameAsked[] = [];
  const type = p.src.includes(':') ? 'AAAA' : 'A';
  for (const candidate of candidateNames(name, search)) {
    // Resolution only: the packet is traced by the mode's own runner afterwards.
    const t = dp.traceName(candidate, { src: p.src, proto: p.proto, sport: p.sport, dport: p.dport, from: p.local ? 'local' : 'external', type });
    const last = t.resolution.queries.at(-1);
    const addresses = t.resolution.targets.map((x) => x.address);
    asked.push({ name: candidate, rcode: last?.rcode ?? last?.outcome ?? 'no answer', addresses });
    if (addresses.length > 0) {
      const first = t.resolution.targets[0]!;
      return { name, asked, address: first.address, port: first.port ?? p.dport, addresses };
    }
  }
  return { name, asked, port: p.dport, addresses: [] };
}

/** The resolution as trace steps (each name asked, and where it led). */
export function nameSteps(r: ResolvedName): TraceStepView[] {
  return r.asked.map((a, i) => ({
    where: i === 0 ? 'DNS (cluster records)' : 'DNS (next search name)',
    text: `${a.name} A? → ${a.rcode}${a.addresses.length ? ` ${a.addresses.join(', ')}` : ''}`,
    matched: a.addresses.length > 0,
    ...(a.addresses.length > 0 ? { target: `${r.address}:${r.port}${a.addresses.length > 1 ? ` (first of ${a.addresses.length})` : ''}` } : {}),
  }));
}
