import { describe, it, expect } from 'vitest';
import { Dataplane } from '../../../host-node/dataplane.js';
import { buildPacket, decodePacket } from '../../../host-node/core/packet.js';

const svc = (name: string, ip: string, port: number, extra = '') => `
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec:
  clusterIP: ${ip}
  ports: [{ name: http, port: ${port}, protocol: TCP, targetPort: 8080 }]
${extra}`;
const slice = (name: string, svcName: string, ips: string[]) => `
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}, namespace: default, labels: { kubernetes.io/service-name: ${svcName} } }
addressType: IPv4
ports: [{ name: http, port: 8080, protocol: TCP }]
endpoints:
${ips.map((ip) => `  - addresses: [${ip}]\n    conditions: { ready: true }`).join('\n')}
`;

describe('scratch', () => {
  it('works', async () => {
    const dp = await Dataplane.create({ nodeIPs: ['192.168.49.2'], podCIDR: '10.244.0.0/16', seed: 4 });
    const r = dp.apply([svc('web', '10.96.0.80', 80), slice('web-1', 'web', ['10.244.1.11', '10.244.2.12'])].join('\n---\n'), { mode: 'ipvs' });
    console.log(JSON.stringify(r));
    console.log(dp.ipvsadm('-Ln').stdout);
    console.log(dp.iptablesSave());
    const syn = dp.process(buildPacket({ src: '192.168.49.7', dst: '10.96.0.80', proto: 'tcp', sport: 4000, dport: 80, flags: 'S' }), 1);
    console.log(syn.verdict, syn.reason, syn.packet && decodePacket(syn.packet));
    const syn2 = dp.process(buildPacket({ src: '10.244.3.3', dst: '10.96.0.80', proto: 'tcp', sport: 4000, dport: 80, flags: 'S' }), 1);
    console.log(syn2.verdict, syn2.reason, syn2.packet && decodePacket(syn2.packet));
    console.log(dp.ipvsadm('-Lnc').stdout);
  });
});
