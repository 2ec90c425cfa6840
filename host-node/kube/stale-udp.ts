// stale-udp.ts — kube-proxy's stale UDP conntrack cleanup (pkg/proxy/conntrack/cleanup.go), kept
// by change: after each sync, the UDP service ports of the Services it touched are compared with
// what they were, and flows to an endpoint that left are deleted at once (a UDP client would
// otherwise keep sending into the void until its entry timed out), as are flows to a service IP
// that had no endpoints and now has some (so the next packet is load-balanced afresh). Deletes
// nothing itself: the caller's flush callback does, once per sync. Work in proportion to the
// changed Services.
import { splitHostPort } from '../core/svc-config.js';
import type { FlowFlush } from '../core/dataplane.js';
import { servicePortId } from './model.js';
import type { ServicePort } from './objects.js';
import type { SyncPlan } from './proxy-state.js';

type UdpPort = { ips: string[]; port: number; endpoints: Set<string> };

export class StaleUdp {
  /** UDP service ports as of the last sync ("family/id" → service IPs, port, serving endpoints), and per "family/ns/name" their keys. */
  private readonly udpSeen = new Map<string, UdpPort>();
  private readonly udpByService = new Map<string, Set<string>>();

  /** Forgets every service port (a new node name: the next sync starts afresh). */
  clear(): void {
    this.udpSeen.clear();
    this.udpByService.clear();
  }

  /**
   * Updates the UDP view for the Services the sync `plans` touched (all of them on a full sync)
   * and flushes the flows that became stale, all in one call of `flush` (UDP flows only); `portsOf`
   * gives a Service's ports. Returns the flows removed.
   */
  sync(plans: readonly SyncPlan[], portsOf: (nn: string) => readonly ServicePort[] | undefined, flush: (stale: FlowFlush[]) => number): number {
    const before = new Map<string, UdpPort>();
    const after = new Map<string, UdpPort>();
    for (const plan of plans) {
      const prefix = `${plan.family}/`;
      let names: Iterable<string> | null = plan.changedServices;
      if (names === null) {
        const all = new Set<string>();
        plan.model.services.forEach((sp) => { if (sp.protocol === 'UDP') all.add(sp.namespacedName); });
        for (const key of this.udpByService.keys()) if (key.startsWith(prefix)) all.add(key.slice(prefix.length));
        names = all;
      }
      for (const nn of names) {
        const sk = prefix + nn;
        for (const key of this.udpByService.get(sk) ?? []) {
          before.set(key, this.udpSeen.get(key)!);
          this.udpSeen.delete(key);
        }
        this.udpByService.delete(sk);
        for (const p of portsOf(nn) ?? []) {
          if (p.protocol !== 'UDP') continue;
          const sp = plan.model.services.get(servicePortId(nn, p.name, p.protocol));
          if (!sp) continue;
          const eps = (plan.model.endpoints.get(sp.id) ?? []).filter((e) => e.ready || e.serving);
          const key = prefix + sp.id;
          const entry = { ips: [sp.clusterIP, ...sp.externalIPs], port: sp.port, endpoints: new Set(eps.map((e) => e.endpoint)) };
          after.set(key, entry);
          this.udpSeen.set(key, entry);
          let set = this.udpByService.get(sk);
          if (!set) this.udpByService.set(sk, (set = new Set()));
          set.add(key);
        }
      }
    }
    return flushStale(before, after, flush);
  }
}

/** The flows that `before` → `after` made stale, flushed in one call. */
function flushStale(before: Map<string, UdpPort>, after: Map<string, UdpPort>, flush: (stale: FlowFlush[]) => number): number {
  const stale: FlowFlush[] = [];
  for (const [key, was] of before) {
    const now = after.get(key);
    for (const ep of was.endpoints) {
      if (now?.endpoints.has(ep)) continue;
      const hp = splitHostPort(ep);
      if (hp) stale.push({ by: 'endpoint', ip: hp.host, port: hp.port });
    }
  }
  for (const [key, now] of after) {
    if (now.endpoints.size === 0 || (before.get(key)?.endpoints.size ?? 0) > 0) continue;
    for (const ip of now.ips) stale.push({ by: 'service', ip, port: now.port });
  }
  return stale.length === 0 ? 0 : flush(stale);
}
