// conntrack-keys.ts — the keys the core's flow deletions take (assembly/conntrack/reap.ts
// FLUSH_KEY): kube-proxy's stale-UDP flushes (by endpoint or by Service address) and its UDP
// reconcile records (a guarded address and port or NodePort, then the endpoints it allows), each
// checked as it is read, so a bad one throws, naming itself, before the core is asked anything.
// Builds and writes keys; never deletes a flow itself.
import { PROTO } from './packet.js';
import { tryParseIP } from './words.js';
import { shown } from './dataplane.js';

export type FlushProtocol = 'UDP' | 'TCP' | 'SCTP';
/** Flows to delete: those whose chosen endpoint (reply source) or Service address (original destination) is `ip`; port 0 = any. */
export interface FlowFlush { by: 'endpoint' | 'service'; ip: string; port?: number; protocol?: FlushProtocol }
/**
 * A Service address and port (ClusterIP, load-balancer or external IP) or a NodePort whose UDP
 * flows must get their replies from one of `endpoints` (address and port): kube-proxy's conntrack
 * reconcile.
 */
export type UdpGuard =
  | { family: 4 | 6; ip: string; port: number; endpoints: readonly UdpEndpoint[] }
  | { family: 4 | 6; nodePort: number; endpoints: readonly UdpEndpoint[] };
export interface UdpEndpoint { ip: string; port: number }
/** A flush key or reconcile record as the config buffer takes it (see writeKeys). */
export interface ConntrackKey { tag: number; family: 4 | 6; proto: number; port: number; a: Uint8Array | null }
/** A key's size in the core's config buffer. */
export const FLUSH_KEY_BYTES = 24;

/** The keys of `flushes` (tag 1: by endpoint, 0: by Service address); throws for a bad one. */
export function flushKeys(flushes: readonly FlowFlush[]): ConntrackKey[] {
  if (!Array.isArray(flushes)) throw new Error('flushMany: flushes is a list of { by, ip, port?, protocol? }');
  return flushes.map((f) => {
    if (f === null || typeof f !== 'object' || (f.by !== 'endpoint' && f.by !== 'service')) throw new Error(`bad flush ${shown(f)}: { by: 'endpoint' | 'service', ip, port?, protocol? }`);
    const a = typeof f.ip === 'string' ? tryParseIP(f.ip) : null;
    if (!a) throw new Error(`not an IP address: ${shown(f.ip)}`);
    const port = f.port ?? 0;
    if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new Error(`bad port ${shown(port)}`);
    // An unknown name must not become the core's 0, which is every protocol.
    const protocol = f.protocol ?? 'UDP';
    const proto = typeof protocol === 'string' && /^(udp|tcp|sctp)$/i.test(protocol) ? PROTO[protocol.toLowerCase() as 'udp' | 'tcp' | 'sctp'] : undefined;
    if (proto === undefined) throw new Error(`bad protocol ${shown(protocol)}: UDP, TCP or SCTP`);
    return { tag: f.by === 'endpoint' ? 1 : 0, family: a.length === 4 ? 4 : 6, proto, port, a };
  });
}

/** The reconcile records of `guards` (tag 0: address and port, 1: NodePort, 2: an endpoint it allows); throws for a bad one. */
export function reconcileKeys(guards: readonly UdpGuard[]): ConntrackKey[] {
  if (!Array.isArray(guards)) throw new Error('reconcileUdp: guards is a list of { family, ip, port, endpoints } or { family, nodePort, endpoints }');
  for (const g of guards) {
    if (g === null || typeof g !== 'object' || (g.family !== 4 && g.family !== 6) || !Array.isArray(g.endpoints) || !g.endpoints.every((ep: unknown) => ep !== null && typeof ep === 'object')) {
      throw new Error(`bad UDP guard ${shown(g)}: { family: 4 | 6, ip, port, endpoints: [{ ip, port }] } or { family, nodePort, endpoints }`);
    }
  }
  const recs: ConntrackKey[] = [];
  const addr = (ip: string, family: 4 | 6): Uint8Array => {
    const a = typeof ip === 'string' ? tryParseIP(ip) : null;
    if (!a || (a.length === 4 ? 4 : 6) !== family) throw new Error(`not an IPv${family} address: ${shown(ip)}`);
    return a;
  };
  const port = (p: unknown): number => {
    if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 0xffff) throw new Error(`a UDP guard or endpoint needs a port of 1-65535: ${shown(p)}`);
    return p;
  };
  for (const g of guards) {
    if ('ip' in g) recs.push({ tag: 0, family: g.family, proto: 0, port: port(g.port), a: addr(g.ip, g.family) });
    else recs.push({ tag: 1, family: g.family, proto: 0, port: port(g.nodePort), a: null });
    for (const ep of g.endpoints) recs.push({ tag: 2, family: g.family, proto: 0, port: port(ep.port), a: addr(ep.ip, g.family) });
  }
  return recs;
}

/**
 * Writes `keys` at `at` in the layout flushes and reconcile records share (FLUSH_KEY): u8 tag,
 * u8 family, u8 protocol, u8 0, u16 port, u16 0, then the address bytes.
 */
export function writeKeys(u8: Uint8Array, dv: DataView, at: number, keys: readonly ConntrackKey[]): void {
  u8.fill(0, at, at + keys.length * FLUSH_KEY_BYTES);
  keys.forEach((k, i) => {
    const p = at + i * FLUSH_KEY_BYTES;
    u8[p] = k.tag;
    u8[p + 1] = k.family;
    u8[p + 2] = k.proto;
    dv.setUint16(p + 4, k.port, true);
    if (k.a) u8.set(k.a, p + 8);
  });
}
