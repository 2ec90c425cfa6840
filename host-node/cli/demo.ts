// demo.ts — `svcplane demo`: a built-in sample node with four Services, a handful of packets
// (new connections, replies, a hairpin, a Service with no endpoints, a malformed packet), and what
// the core did with each, then the conntrack table and the counters. Needs no root and no cluster.
import { Dataplane } from '../core/dataplane.js';
import { buildPacket, decodePacket, PROTO } from '../core/packet.js';

const PROTO_NAMES: Record<number, string> = Object.fromEntries(Object.entries(PROTO).map(([k, v]) => [v, k]));
import type { ServiceSpec } from '../core/svc-config.js';

export const DEMO_NODE = { nodeIPs: ['192.168.49.2'], podCIDR: '10.244.0.0/16', seed: 42 };

export const DEMO_SERVICES: ServiceSpec[] = [
  { name: 'default/web:http', vip: '10.96.0.80', port: 80, protocol: 'TCP', endpoints: ['10.244.1.11:8080', '10.244.2.12:8080', '10.244.3.13:8080'] },
  { name: 'kube-system/kube-dns:dns', vip: '10.96.0.10', port: 53, protocol: 'UDP', endpoints: ['10.244.1.21:53', '10.244.2.22:53'] },
  { name: 'default/solo:http', vip: '10.96.0.81', port: 80, protocol: 'TCP', endpoints: ['10.244.1.31:8080'] },
  { name: 'default/empty:http', vip: '10.96.0.99', port: 80, protocol: 'TCP', endpoints: [] },
];

function describe(bytes: Uint8Array): string {
  let p;
  try {
    p = decodePacket(bytes);
  } catch {
    return `${bytes.length} bytes (unparseable)`;
  }
  const ports = p.proto === PROTO.tcp || p.proto === PROTO.udp || p.proto === PROTO.sctp;
  const a = ports ? `${p.src}:${p.sport}` : p.src;
  const b = ports ? `${p.dst}:${p.dport}` : p.dst;
  const icmp = p.icmp ? ` type ${p.icmp.type} code ${p.icmp.code}` : '';
  return `${(PROTO_NAMES[p.proto] ?? String(p.proto)).toUpperCase()} ${a} → ${b}${p.flags ? ` [${p.flags}]` : ''}${icmp}`;
}

export const DEMO_HELP = `usage: svcplane demo
  loads a built-in node (four Services) and pushes sample packets through the core: new
  connections, replies, a client outside the pod network, UDP, hairpin, a Service without
  endpoints, a malformed packet; prints each verdict, the conntrack table and the counters.
  Takes no options; needs no root and no cluster.
`;

export async function runDemo(out: (line: string) => void = console.log): Promise<number> {
  const dp = await Dataplane.create(DEMO_NODE);
  dp.setServices(DEMO_SERVICES);
  out('svcplane demo — node 192.168.49.2, pod CIDR 10.244.0.0/16');
  out('Services:');
  for (const s of DEMO_SERVICES) {
    out(`  ${s.name!.padEnd(26)} ${s.protocol} ${s.vip}:${s.port} → ${s.endpoints.length ? s.endpoints.join(', ') : '(no endpoints)'}`);
  }
  out('');
  let now = 1_000;
  const send = (label: string, bytes: Uint8Array) => {
    const r = dp.process(bytes, now);
    now += 10;
    const after = r.packet && r.verdict !== 'PASS' ? `  ⇒ ${describe(r.packet)}` : '';
    out(`${label}`);
    out(`  in:  ${describe(bytes)}`);
    out(`  ${r.verdict}${r.reason ? ` (${r.reason})` : ''}${r.ctstate ? ` ct=${r.ctstate}` : ''}${after}`);
    return r;
  };

  const syn = send('1. pod 10.244.1.5 opens a connection to web', buildPacket({ src: '10.244.1.5', dst: '10.96.0.80', proto: 'tcp', sport: 40000, dport: 80, flags: 'S' }));
  const backend = syn.packet ? decodePacket(syn.packet) : null;
  if (backend) {
    send('2. the chosen pod answers; the reply is un-NATed back to the VIP',
      buildPacket({ src: backend.dst, dst: backend.src, proto: 'tcp', sport: backend.dport, dport: backend.sport, flags: 'SA' }));
    send('3. the client completes the handshake on the same flow',
      buildPacket({ src: '10.244.1.5', dst: '10.96.0.80', proto: 'tcp', sport: 40000, dport: 80, flags: 'A' }));
  }
  send('4. a client outside the pod network reaches web: masqueraded to the node IP',
    buildPacket({ src: '203.0.113.7', dst: '10.96.0.80', proto: 'tcp', sport: 51000, dport: 80, flags: 'S' }));
  send('5. a DNS query over UDP', buildPacket({ src: '10.244.3.9', dst: '10.96.0.10', proto: 'udp', sport: 33333, dport: 53, payload: 'query' }));
  send('6. hairpin: a pod reaching itself through its Service is masqueraded', buildPacket({ src: '10.244.1.31', dst: '10.96.0.81', proto: 'tcp', sport: 42000, dport: 80, flags: 'S' }));
  send('7. a Service with no endpoints', buildPacket({ src: '10.244.1.5', dst: '10.96.0.99', proto: 'tcp', sport: 40001, dport: 80, flags: 'S' }));
  send('8. traffic that is not for a Service passes untouched', buildPacket({ src: '10.244.1.5', dst: '10.244.2.12', proto: 'tcp', sport: 40002, dport: 8080, flags: 'S' }));
  send('9. a truncated packet', buildPacket({ src: '10.244.1.5', dst: '10.96.0.80', proto: 'tcp', sport: 40003, dport: 80, flags: 'S' }).slice(0, 30));

  out('');
  out('conntrack:');
  for (const e of dp.conntrack()) {
    const o = e.original, r = e.reply;
    out(`  ${e.proto.padEnd(4)} ${(e.state ?? '').padEnd(12)} ${o.src}:${o.sport} → ${o.dst}:${o.dport}  reply ${r.src}:${r.sport} → ${r.dst}:${r.dport}` +
      `${e.nat.dnat ? ' DNAT' : ''}${e.nat.snat ? ' SNAT' : ''}  expires in ${Math.round((e.expiresMs - now) / 1000)} s`);
  }
  out('');
  const s = dp.stats();
  out('counters: ' + Object.entries(s).filter(([, v]) => v > 0).map(([k, v]) => `${k}=${v}`).join(' '));
  return 0;
}
