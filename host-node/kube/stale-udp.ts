// stale-udp.ts — what kube-proxy's conntrack reconcile for UDP Services (pkg/proxy/conntrack/
// cleanup.go CleanStaleEntries) holds a sync to: every UDP service port's ClusterIP,
// load-balancer IPs and external IPs (with its port) and its NodePort, each guarded by the port's
// serving endpoints, address and port (terminating ones included; traffic policies and topology
// left aside, so a policy change never cuts a flow). A UDP flow to a guarded address or port whose
// reply comes from none of them is stale — pinned to a pod that left or to a port the pod no
// longer serves on, or never translated because it started before the Service had endpoints — and
// the core deletes it (Dataplane.reconcileUdp), so the next datagram is load-balanced afresh
// instead of going into the void until its entry times out. A port without serving endpoints is
// not guarded (kube-proxy: nothing to send its flows to instead).
//
// kube-proxy reconciles every UDP Service at every sync, a walk of the whole table each time.
// Here a full sync (the first after a start, when the table may come from a snapshot taken under
// other endpoints, and every resync) guards every UDP service port; a partial sync only the ports
// of the Services it changed where a flow can have become stale: an endpoint left, the port had no
// endpoints before (or did not exist), or it gained an address or NodePort. Any other port's flows
// were made by rules that are still live, to endpoints that still serve it; a sync with no such
// port walks nothing. Builds the guards only; never touches the core.
import type { UdpEndpoint, UdpGuard } from '../core/dataplane.js';
import { servicePortId, type ServicePortInfo } from './model.js';
import type { ServicePort } from './objects.js';
import type { SyncPlan } from './proxy-state.js';

/** A UDP service port as the last sync left it: its addresses, port and NodePort (0: none), and serving endpoints by "ip:port". */
interface UdpPort { ips: string[]; port: number; nodePort: number; endpoints: Map<string, UdpEndpoint> }

export class UdpReconcile {
  /** "family/id" → the port as last synced, and per "family/ns/name" the keys of its UDP ports. */
  private readonly ports = new Map<string, UdpPort>();
  private readonly byService = new Map<string, string[]>();

  /** The guards of one sync: every UDP service port on a full sync, else those where a flow can have become stale. */
  guards(plans: readonly SyncPlan[], portsOf: (nn: string) => readonly ServicePort[] | undefined): UdpGuard[] {
    const guards: UdpGuard[] = [];
    for (const plan of plans) {
      const { model, family } = plan;
      const prefix = `${family}/`;
      const visit = (nn: string, sps: ServicePortInfo[], full: boolean) => {
        const keys: string[] = [];
        for (const sp of sps) {
          const key = prefix + sp.id;
          const now = udpPort(sp, plan);
          const was = this.ports.get(key);
          this.ports.set(key, now);
          keys.push(key);
          if (now.endpoints.size > 0 && (full || mayBeStale(was, now))) guardsOf(now, family, guards);
        }
        for (const key of this.byService.get(prefix + nn) ?? []) if (!keys.includes(key)) this.ports.delete(key);
        if (keys.length > 0) this.byService.set(prefix + nn, keys);
        else this.byService.delete(prefix + nn);
      };
      if (plan.changedServices === null) {
        for (const key of [...this.ports.keys()]) if (key.startsWith(prefix)) this.ports.delete(key);
        for (const key of [...this.byService.keys()]) if (key.startsWith(prefix)) this.byService.delete(key);
        const byName = new Map<string, ServicePortInfo[]>();
        model.services.forEach((sp) => {
          if (sp.protocol !== 'UDP') return;
          const list = byName.get(sp.namespacedName);
          if (list) list.push(sp);
          else byName.set(sp.namespacedName, [sp]);
        });
        byName.forEach((sps, nn) => visit(nn, sps, true));
        continue;
      }
      for (const nn of plan.changedServices) {
        const sps: ServicePortInfo[] = [];
        for (const p of portsOf(nn) ?? []) {
          const sp = p.protocol === 'UDP' ? model.services.get(servicePortId(nn, p.name, p.protocol)) : undefined;
          if (sp) sps.push(sp);
        }
        visit(nn, sps, false);
      }
    }
    return guards;
  }
}

function udpPort(sp: ServicePortInfo, plan: SyncPlan): UdpPort {
  const endpoints = new Map<string, UdpEndpoint>();
  for (const e of plan.model.endpoints.get(sp.id) ?? []) if (e.serving) endpoints.set(e.endpoint, { ip: e.ip, port: e.port });
  return { ips: [sp.clusterIP, ...sp.loadBalancerVIPs, ...sp.externalIPs], port: sp.port, nodePort: sp.nodePort, endpoints };
}

/** Whether flows of the port as it `was` can be stale now. */
function mayBeStale(was: UdpPort | undefined, now: UdpPort): boolean {
  if (was === undefined || was.endpoints.size === 0) return true;
  for (const ep of was.endpoints.keys()) if (!now.endpoints.has(ep)) return true;
  // A new address, port or NodePort: flows to it may predate the rules.
  return now.port !== was.port || (now.nodePort !== 0 && now.nodePort !== was.nodePort) || now.ips.some((ip) => !was.ips.includes(ip));
}

function guardsOf(p: UdpPort, family: 4 | 6, out: UdpGuard[]): void {
  const endpoints = [...p.endpoints.values()];
  for (const ip of p.ips) out.push({ family, ip, port: p.port, endpoints });
  if (p.nodePort !== 0) out.push({ family, nodePort: p.nodePort, endpoints });
}
