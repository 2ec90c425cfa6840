// cluster-dns.ts — the node's cluster DNS address(es) given to the core (ABI nodeDnsAddress): the
// address a pod's resolv.conf names (kubelet --cluster-dns), optionally with a port (default 53),
// at most one per family. The core then answers UDP queries to it in direct mode
// (assembly/dns/serve.ts); setDnsForward hands the ones outside the zone to the host. Never loads
// records (host-node/dns/table.ts does) and never opens sockets.
import { ipWords, tryParseIP } from './words.js';

/** The one ABI call this needs. */
export interface ClusterDnsCore {
  nodeDnsAddress(family: number, a0: number, a1: number, a2: number, a3: number, port: number): number;
}

export interface ClusterDnsAddress {
  family: 4 | 6;
  ip: Uint8Array;
  port: number;
}

/** "10.96.0.10", "10.96.0.10:53", "fd00::a" or "[fd00::a]:53". Throws on anything else. */
export function parseClusterDns(text: string): ClusterDnsAddress {
  if (typeof text !== 'string') throw new Error(`clusterDNS: not an address or address:port: ${String(text)}`);
  let host = text.trim();
  let port = 53;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(host);
  const v4port = /^([0-9.]+):(\d+)$/.exec(host);
  if (bracket) { host = bracket[1]!; if (bracket[2] !== undefined) port = Number(bracket[2]); }
  else if (v4port) { host = v4port[1]!; port = Number(v4port[2]); }
  const ip = tryParseIP(host);
  if (!ip || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`clusterDNS: not an address or address:port: ${JSON.stringify(text)}`);
  }
  return { family: ip.length === 4 ? 4 : 6, ip, port };
}

/**
 * Sets the cluster DNS addresses (replacing earlier ones; families not given are unset). Throws on
 * a malformed address or two addresses of one family.
 */
export function setClusterDns(core: ClusterDnsCore, value: string | string[] | undefined): ClusterDnsAddress[] {
  const list = (value === undefined ? [] : Array.isArray(value) ? value : [value]).map(parseClusterDns);
  const seen = new Set<number>();
  for (const a of list) {
    if (seen.has(a.family)) throw new Error(`clusterDNS: more than one IPv${a.family} address`);
    seen.add(a.family);
  }
  // A core built before cluster DNS existed can still run without it.
  if (list.length === 0 && typeof core.nodeDnsAddress !== 'function') return list;
  for (const family of [4, 6]) if (!seen.has(family)) core.nodeDnsAddress(family, 0, 0, 0, 0, 0);
  for (const a of list) {
    if (core.nodeDnsAddress(a.family, ...ipWords(a.ip), a.port) !== 0) throw new Error(`clusterDNS: the core refused IPv${a.family}`);
  }
  return list;
}

/**
 * Upstream forwarding on the packet path (ABI dnsForward): on, a query to the cluster DNS address
 * for a name outside the zone is dropped with reason `dns_upstream`, its slot untouched, for the
 * host's DnsPacketForwarder (host-node/dns/forward.ts) to answer; off (the default), it gets
 * REFUSED. Turn it on only with an upstream to forward to.
 */
export function setDnsForward(core: unknown, on: boolean): void {
  (core as { dnsForward(on: number): void }).dnsForward(on ? 1 : 0);
}
