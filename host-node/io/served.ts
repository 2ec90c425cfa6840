// served.ts — which packets read from the proxy's device were routed there for a Service and which
// only for un-NAT. node-routes.ts steers by destination (service CIDRs, the masquerade address,
// NodePorts and local VIPs on node addresses, routed externalIPs/LoadBalancer IPs) and, for
// client-IP preservation, by source (endpoints' replies). A packet whose destination is none of
// the former came in by a reply rule: the core gets it as TRACKED_ONLY, so a pod answering a
// client that reached it directly leaves untouched instead of being judged by rules that never saw
// its connection open. Pure: reads packet bytes, never the network.
import { cidrHasBytes, parseCIDR, parseIP, type CIDR } from '../kube/ip.js';

/** IPv4 destination as a number (bytes 16–19), for the set of served addresses. */
const v4 = (b: Uint8Array, at: number): number => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
const v6 = (b: Uint8Array, at: number): string => {
  let s = '';
  for (let i = at; i < at + 16; i++) s += (b[i]! | 0x100).toString(16).slice(1);
  return s;
};

export class ServedDestinations {
  private readonly cidrs: CIDR[];
  private readonly fixed4 = new Set<number>();
  private readonly fixed6 = new Set<string>();
  private vips4 = new Set<number>();
  private vips6 = new Set<string>();

  /**
   * `serviceCIDRs` are routed to the device whole; `addresses` are the node's and the masquerade
   * addresses (NodePorts, local VIPs, masqueraded replies).
   */
  constructor(serviceCIDRs: string[], addresses: string[]) {
    this.cidrs = serviceCIDRs.map((c) => parseCIDR(c)).filter((c): c is CIDR => c !== null);
    this.add(addresses, this.fixed4, this.fixed6);
  }

  /** The externalIPs and LoadBalancer IPs routed to the device now (replaces the previous set). */
  setVips(ips: string[]): void {
    this.vips4 = new Set();
    this.vips6 = new Set();
    this.add(ips, this.vips4, this.vips6);
  }

  /**
   * True when the IP packet at `at` (`len` bytes) in `b` is addressed to nothing the proxy serves:
   * a steered reply. Reads the bytes in place (the packet loop calls it for every packet).
   */
  trackedOnly(b: Uint8Array, at = 0, len = b.length - at): boolean {
    const version = b[at]! >> 4;
    if (version === 4 && len >= 20) {
      const d = v4(b, at + 16);
      if (this.fixed4.has(d) || this.vips4.has(d)) return false;
      return !this.inCidr(4, b, at + 16);
    }
    if (version === 6 && len >= 40) {
      const d = v6(b, at + 24);
      if (this.fixed6.has(d) || this.vips6.has(d)) return false;
      return !this.inCidr(6, b, at + 24);
    }
    return false; // not IP: the core counts it
  }

  private inCidr(family: 4 | 6, b: Uint8Array, at: number): boolean {
    for (const c of this.cidrs) if (c.family === family && cidrHasBytes(c, b, at)) return true;
    return false;
  }

  private add(ips: string[], s4: Set<number>, s6: Set<string>): void {
    for (const text of ips) {
      const ip = parseIP(text);
      if (!ip) continue;
      if (ip.family === 4) s4.add(v4(ip.bytes, 0));
      else s6.add(v6(ip.bytes, 0));
    }
  }
}
