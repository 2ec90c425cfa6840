// bench/kube-ipvs.ts — kube-proxy's ipvs mode through dp.apply({ mode: 'ipvs' }): a full sync of
// 1,000 Services × 2 endpoints (render + ipsets + IPVS + the constant iptables rules), a one-endpoint
// change at that size (by difference: one real server, one set member), and the cost per new
// connection with IPVS inside the netfilter hooks (PREROUTING → INPUT → IPVS → OUTPUT →
// POSTROUTING), measured through processBatch (JS staging included).
import { Dataplane } from '../host-node/dataplane.js';
import { buildPacket } from '../host-node/core/packet.js';
import type { BenchRow } from './core.js';

const hr = () => Number(process.hrtime.bigint()) / 1e6;
const vip = (s: number) => `10.96.${s >> 8}.${s & 255}`;

function objects(n: number, extra: number): string {
  const docs: string[] = [];
  for (let s = 0; s < n; s++) {
    docs.push(`apiVersion: v1\nkind: Service\nmetadata: { name: s${s}, namespace: default }\nspec:\n  clusterIP: ${vip(s)}\n  ports: [{ name: p, port: 80, protocol: TCP, targetPort: 8080 }]`);
    const eps = [0, 1, ...(s === 0 ? Array.from({ length: extra }, (_, i) => 2 + i) : [])]
      .map((k) => `  - addresses: [10.${200 + k}.${s >> 8}.${s & 255}]\n    conditions: { ready: true }`).join('\n');
    docs.push(`apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: { name: s${s}-1, namespace: default, labels: { kubernetes.io/service-name: s${s} } }\naddressType: IPv4\nports: [{ name: p, port: 8080, protocol: TCP }]\nendpoints:\n${eps}`);
  }
  return docs.join('\n---\n');
}

export async function benchKubeIpvs(): Promise<BenchRow[]> {
  const N = 1000;
  const dp = await Dataplane.create({ nodeIPs: ['192.168.49.2'], podCIDR: '10.244.0.0/16', seed: 1 });
  const text0 = objects(N, 0), text1 = objects(N, 1);
  let t0 = hr();
  const r0 = dp.apply(text0, { mode: 'ipvs' });
  const full = hr() - t0;
  if (r0.issues.length) throw new Error(`kube-ipvs bench: ${r0.issues[0]!.message}`);
  t0 = hr();
  dp.apply(text1, { mode: 'ipvs' });
  const one = hr() - t0;
  const pkts = Array.from({ length: 4096 }, (_, i) => buildPacket({ src: `192.168.${50 + (i >> 8)}.${i & 255}`, dst: vip(i % N), proto: 'tcp', sport: 30000, dport: 80, flags: 'S' }));
  dp.processBatch(pkts.slice(0, 1024), 1);   // warm-up
  t0 = hr();
  const out = dp.processBatch(pkts.slice(1024), 2);
  const per = ((hr() - t0) * 1e6) / out.length;
  if (out.some((r) => r.verdict !== 'FORWARD')) throw new Error('kube-ipvs bench: a SYN was not forwarded');
  return [
    { name: `kube ipvs mode: apply ${N} Services × 2 endpoints (full)`, value: +full.toFixed(1), unit: 'ms', note: 'parse + trackers + render + ipsets + IPVS + iptables-restore' },
    { name: `kube ipvs mode: one endpoint added at ${N} Services`, value: +one.toFixed(1), unit: 'ms', note: 'parse of all objects included; one real server and one set member applied' },
    { name: 'kube ipvs mode: new connection through the hooks + IPVS + MASQUERADE', value: +per.toFixed(0), unit: 'ns/packet', note: `${out.length} SYNs via processBatch, JS staging included` },
  ];
}
