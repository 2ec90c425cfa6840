// render-settings.ts — the kube-proxy settings every renderer (iptables, ipvs, direct) reads the
// same way: the masquerade mark, the local-traffic detector, --nodeport-addresses and the host
// addresses they select, and Go's "%0.10f" of the statistic probabilities. Pure values from
// options; never renders a rule.
import { cidrContains, formatIP, isLoopback, parseCIDR, parseIP, type Family, type IP } from './ip.js';
import type { IptablesOptions } from './render-iptables.js';

/** pkg/proxy/util/localdetector.go: how "from a local pod" is matched. */
export type LocalDetector =
  | { mode: 'none' }
  /** ClusterCIDR / NodeCIDR modes; a comma list may hold one CIDR per family. */
  | { mode: 'cidr'; cidr: string }
  | { mode: 'bridge'; interface: string }
  | { mode: 'interfacePrefix'; prefix: string };

/**
 * Whether a service port's source ranges let every source in: one of them has a zero prefix
 * (kubernetes PR 132722, v1.34, serviceport.go: "zero-masked cidr means allow any"), so the
 * Service gets no source firewall at all.
 */
export function allowsAnySource(ranges: readonly string[]): boolean {
  return ranges.some((r) => parseCIDR(r.trim())?.prefix === 0);
}

/** kube-proxy's masquerade mark text (both modes). */
export function masqueradeMark(opts: Pick<IptablesOptions, 'masqueradeMark' | 'masqueradeBit'>): string {
  if (opts.masqueradeMark) return opts.masqueradeMark;
  // Go's "%#08x": zero-padded to 8 hex digits after the 0x. kube-proxy accepts bits 0-31 only.
  const bit = opts.masqueradeBit ?? 14;
  const v = 2 ** (Number.isInteger(bit) && bit >= 0 && bit <= 31 ? bit : 14);
  return `0x${v.toString(16).padStart(8, '0')}`;
}

interface Detector { ifLocal: string[]; ifNotLocal: string[] }

/** The local-traffic detector the options give for one family (a CIDR mode narrowed to that family's CIDR), or null when none applies. */
export function localDetectorOf(opts: Pick<IptablesOptions, 'localDetector' | 'clusterCIDR' | 'podCIDR'>, family: Family): Exclude<LocalDetector, { mode: 'none' }> | null {
  const d: LocalDetector = opts.localDetector
    ?? (opts.clusterCIDR ? { mode: 'cidr', cidr: opts.clusterCIDR } : opts.podCIDR ? { mode: 'cidr', cidr: opts.podCIDR } : { mode: 'none' });
  if (d.mode === 'none') return null;
  if (d.mode !== 'cidr') return d;
  const cidr = d.cidr.split(',').map((s) => s.trim()).find((s) => parseCIDR(s)?.family === family);
  return cidr ? { mode: 'cidr', cidr } : null;
}

/** The local-traffic detector's iptables words for one family (iptables and ipvs modes), or null when none applies. */
export function detectorFor(opts: Pick<IptablesOptions, 'localDetector' | 'clusterCIDR' | 'podCIDR'>, family: Family): Detector | null {
  const d = localDetectorOf(opts, family);
  if (d === null) return null;
  switch (d.mode) {
    case 'cidr': return { ifLocal: ['-s', d.cidr], ifNotLocal: ['!', '-s', d.cidr] };
    case 'bridge': return { ifLocal: ['-i', d.interface], ifNotLocal: ['!', '-i', d.interface] };
    case 'interfacePrefix': return { ifLocal: ['-i', `${d.prefix}+`], ifNotLocal: ['!', '-i', `${d.prefix}+`] };
  }
}

export interface NodePortAddresses { matchAll: boolean; cidrs: ReturnType<typeof parseCIDR>[]; containsIPv4Loopback: boolean }

/** proxyutil.NewNodePortAddresses for one family. */
export function nodePortAddresses(strings: string[], family: Family, nodeIP: IP | null): NodePortAddresses {
  const texts: string[] = [];
  for (const s of strings) {
    if (s === 'primary') {
      if (nodeIP && nodeIP.family === family) texts.push(`${formatIP(nodeIP)}/${family === 4 ? 32 : 128}`);
    } else if (parseCIDR(s)?.family === family) texts.push(s);
  }
  if (texts.length === 0) texts.push(family === 4 ? '0.0.0.0/0' : '::/0');
  const out: NodePortAddresses = { matchAll: false, cidrs: [], containsIPv4Loopback: false };
  const loop = parseIP('127.0.0.0')!;
  for (const t of texts) {
    const c = parseCIDR(t)!;
    if (c.family === 4 && (c.bytes[0] === 127 || cidrContains(c, loop))) out.containsIPv4Loopback = true;
    if (c.prefix === 0) {
      out.cidrs = [c];
      out.matchAll = true;
      break;
    }
    out.cidrs.push(c);
  }
  return out;
}

/** GetNodeIPs: the host's addresses inside `npa`'s CIDRs (so of its family), each once, CIDR by CIDR. */
export function nodeIPs(npa: NodePortAddresses, hostAddresses: readonly string[]): string[] {
  const out: string[] = [];
  for (const c of npa.cidrs) {
    for (const a of hostAddresses) {
      const ip = parseIP(a);
      if (!ip || !c || !cidrContains(c, ip)) continue;
      const text = formatIP(ip);
      if (!out.includes(text)) out.push(text);
    }
  }
  return out;
}

/**
 * With --nodeport-addresses set: the node IPs of `npa` (GetNodeIPs), loopback only for IPv4
 * localhost NodePorts — one `-d` jump to KUBE-NODEPORTS per address.
 */
export function nodePortHostAddresses(npa: NodePortAddresses, opts: Pick<IptablesOptions, 'hostAddresses' | 'nodeIPs'>, family: Family, localhostNodePorts: boolean): string[] {
  return nodeIPs(npa, opts.hostAddresses ?? [...(opts.nodeIPs ?? []), '127.0.0.1', '::1'])
    .filter((text) => !isLoopback(parseIP(text)!) || (family === 4 && localhostNodePorts));
}

/**
 * Go's "%0.{digits}f" of a non-negative double: the exact binary value, rounded half to even
 * (strconv ftoa shouldRoundUp). JS toFixed rounds exact ties up instead (1/2048 differs).
 */
export function formatFixed(x: number, digits: number): string {
  const dv = new DataView(new ArrayBuffer(8));
  dv.setFloat64(0, x);
  const hi = dv.getUint32(0);
  const lo = dv.getUint32(4);
  const expBits = (hi >>> 20) & 0x7ff;
  let mant = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let exp = expBits - 1075;
  if (expBits === 0) exp = -1074;
  else mant |= 1n << 52n;
  // value = mant * 2^exp; scaled = value * 10^digits = num / den exactly.
  let num = mant * 10n ** BigInt(digits);
  let den = 1n;
  if (exp >= 0) num <<= BigInt(exp);
  else den <<= BigInt(-exp);
  let q = num / den;
  const r2 = (num % den) * 2n;
  if (r2 > den || (r2 === den && q % 2n === 1n)) q += 1n;
  const s = q.toString().padStart(digits + 1, '0');
  return digits === 0 ? s : `${s.slice(0, -digits)}.${s.slice(-digits)}`;
}

const probabilityCache: string[] = [];
/** computeProbability: fmt.Sprintf("%0.10f", 1.0/float64(n)). */
export function probability(n: number): string {
  return (probabilityCache[n] ??= formatFixed(1 / n, 10));
}
