// kube-proxy's conntrack cleanup tests (pkg/proxy/conntrack/cleanup_test.go, kubernetes/kubernetes,
// the newest version the public source store holds — the one whose endpoints serve on port 9090
// and whose table has flows to an old endpoint port 8080; Apache-2.0) replayed through svcplane.
// TestCleanStaleEntries: the test's Service (TCP, UDP and SCTP ports 8000, the UDP and SCTP ones
// on NodePort 32000, a ClusterIP, an external IP and a load-balancer IP) with one serving and one
// non-serving endpoint, and its table of flows — translated to the serving endpoint, to the
// non-serving one and to one that no longer exists, for every protocol, to each Service address on
// the service port and on a port no Service uses, and to the NodePort; translated to the serving
// endpoint's old port; and untranslated flows to each address and port. TestServiceWithoutEndpoints:
// a UDP Service with no endpoints keeps its flows. Where the Go test writes the flows into a fake
// table, here each group of them is made by real packets through svcplane's iptables mode under a
// Service state that sends them there, and the groups are put together in one dataplane through
// conntrack snapshots, as a proxy restarting over its saved table gets them. The first sync of the
// test's Service — in each of svcplane's modes, whose reconcile is the same — must then leave
// exactly the flows the Go test expects after cleanup: UDP flows on the service port or NodePort
// whose replies come from anything but the serving endpoint (address and port) go; every other
// flow stays.
import { describe, expect, it } from 'vitest';
import { Dataplane } from '../../host-node/index.js';
import { buildPacket, decodePacket, type ProtoName } from '../../host-node/core/packet.js';

const CLUSTER_IP = '172.30.1.1';
const EXTERNAL_IP = '192.168.99.100';
const LB_IP = '1.2.3.4';
const SERVING = '10.240.0.4';
const NON_SERVING = '10.240.1.5';
const DELETED = '10.240.2.6';
const SERVICE_PORT = 8000;
const ENDPOINT_PORT = 9090;
const OLD_ENDPOINT_PORT = 8080;
const NODE_PORT = 32000;
const NON_SERVICE_PORT = 3000;
const NODE_IP = '192.168.0.10';
const PROTOS = ['TCP', 'UDP', 'SCTP'] as const;

/** The test's Service; `extraPorts` adds ports on 3000 so flows there are translated too. */
function service(extraPorts: boolean): object {
  const ports: object[] = PROTOS.map((p) => ({
    name: `test-${p.toLowerCase()}`, port: SERVICE_PORT, protocol: p, ...(p === 'TCP' ? {} : { nodePort: NODE_PORT }),
  }));
  if (extraPorts) for (const p of PROTOS) ports.push({ name: `other-${p.toLowerCase()}`, port: NON_SERVICE_PORT, protocol: p });
  return {
    apiVersion: 'v1', kind: 'Service', metadata: { name: 'cleanup-test', namespace: 'test' },
    spec: { type: 'LoadBalancer', clusterIP: CLUSTER_IP, externalIPs: [EXTERNAL_IP], ports },
    status: { loadBalancer: { ingress: [{ ip: LB_IP }] } },
  };
}

function slice(endpoints: Array<{ ip: string; serving: boolean }>, extraPorts: boolean, port = ENDPOINT_PORT, service = 'cleanup-test'): object {
  const ports: object[] = PROTOS.map((p) => ({ name: `test-${p.toLowerCase()}`, port, protocol: p }));
  if (extraPorts) for (const p of PROTOS) ports.push({ name: `other-${p.toLowerCase()}`, port, protocol: p });
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
    metadata: { name: 'cleanup-test-0', namespace: 'test', labels: { 'kubernetes.io/service-name': service } },
    endpoints: endpoints.map((e) => ({ addresses: [e.ip], conditions: { ready: e.serving, serving: e.serving } })), ports,
  };
}

/** One flow of the Go test's table, as made here: its class and whether the test expects it after cleanup. */
interface Made { label: string; proto: string; dst: string; dport: number; client: string; kept: boolean }

const create = () => Dataplane.create({ nodeIPs: [NODE_IP], podCIDR: '10.0.0.0/8', seed: 5 });

function open(dp: Dataplane, made: Made[], m: Omit<Made, 'client'>, client: string, to: string, toPort: number): void {
  const proto = m.proto.toLowerCase() as ProtoName;
  const r = dp.process(buildPacket({ src: client, dst: m.dst, proto, sport: 40000, dport: m.dport, ...(proto === 'tcp' ? { flags: 'S' } : {}), payload: 'x' }), 1);
  expect(r.packet, `${m.label}: forwarded`).toBeDefined();
  const out = decodePacket(r.packet!);
  expect(`${out.dst}:${out.dport}`, m.label).toBe(`${to}:${toPort}`);
  made.push({ ...m, client });
}

/** A dataplane whose Service sends every flow to `ip`:`port`, and the flows `each` opens through it, as a snapshot. */
async function flowsTo(ip: string, port: number, each: (dp: Dataplane) => void): Promise<Uint8Array> {
  const dp = await create();
  expect(dp.apply([service(true), slice([{ ip, serving: true }], true, port)], { mode: 'iptables' }).issues).toEqual([]);
  each(dp);
  return dp.snapshot();
}

const flowKey = (e: { proto: string; original: { src: string; dst: string; dport: number } }) => `${e.proto} ${e.original.src} ${e.original.dst}:${e.original.dport}`;
const madeKey = (m: Made) => `${m.proto.toLowerCase()} ${m.client} ${m.dst}:${m.dport}`;

describe('kube-proxy conntrack cleanup', () => {
  it.each(['iptables', 'ipvs', 'direct'] as const)('TestCleanStaleEntries: the first %s-mode sync over a restored table leaves exactly the flows kube-proxy\'s cleanup leaves', async (mode) => {
    const made: Made[] = [];
    const snapshots: Uint8Array[] = [];
    let host = 1;
    // Flows to the serving endpoint's old port: all three go.
    snapshots.push(await flowsTo(SERVING, OLD_ENDPOINT_PORT, (dp) => {
      for (const dst of [CLUSTER_IP, LB_IP, EXTERNAL_IP]) {
        open(dp, made, { label: `UDP ${dst}:${SERVICE_PORT} → old port`, proto: 'UDP', dst, dport: SERVICE_PORT, kept: false }, `198.18.1.${host++}`, SERVING, OLD_ENDPOINT_PORT);
      }
    }));
    // Flows translated to each endpoint in turn.
    for (const dnat of [SERVING, NON_SERVING, DELETED]) {
      snapshots.push(await flowsTo(dnat, ENDPOINT_PORT, (dp) => {
        for (const proto of PROTOS) {
          for (const dst of [CLUSTER_IP, LB_IP, EXTERNAL_IP]) {
            for (const dport of [SERVICE_PORT, NON_SERVICE_PORT]) {
              const kept = !(proto === 'UDP' && dport === SERVICE_PORT && dnat !== SERVING);
              open(dp, made, { label: `${proto} ${dst}:${dport} → ${dnat}`, proto, dst, dport, kept }, `198.18.1.${host++}`, dnat, ENDPOINT_PORT);
            }
          }
          // The NodePort (TCP has none: its flow there is not translated, and TCP is never cleaned).
          const kept = !(proto === 'UDP' && dnat !== SERVING);
          const label = `${proto} node port → ${dnat}`;
          if (proto === 'TCP') open(dp, made, { label, proto, dst: NODE_IP, dport: NODE_PORT, kept }, `198.18.1.${host++}`, NODE_IP, NODE_PORT);
          else open(dp, made, { label, proto, dst: NODE_IP, dport: NODE_PORT, kept }, `198.18.1.${host++}`, dnat, ENDPOINT_PORT);
        }
      }));
    }
    // Flows that were never translated (no rule for the Service yet): the ones on the service port go.
    const bare = await create();
    expect(bare.apply([], { mode: 'iptables' }).issues).toEqual([]);
    for (const dst of [CLUSTER_IP, LB_IP, EXTERNAL_IP]) {
      for (const dport of [SERVICE_PORT, NON_SERVICE_PORT]) {
        open(bare, made, { label: `UDP ${dst}:${dport} untranslated`, proto: 'UDP', dst, dport, kept: dport !== SERVICE_PORT }, `198.18.1.${host++}`, dst, dport);
      }
    }
    snapshots.push(bare.snapshot());
    expect(made).toHaveLength(3 + 63 + 6);

    const dp = await create();
    for (const s of snapshots) dp.restore(s);
    expect(dp.conntrack().map(flowKey).sort()).toEqual(made.map(madeKey).sort());
    const r = dp.apply([service(false), slice([{ ip: SERVING, serving: true }, { ip: NON_SERVING, serving: false }], false)], { mode });
    expect(r.issues).toEqual([]);
    const kept = made.filter((m) => m.kept);
    expect(r.flushed).toBe(made.length - kept.length);
    expect(dp.conntrack().map(flowKey).sort()).toEqual(kept.map(madeKey).sort());
  });

  it('TestServiceWithoutEndpoints: a UDP Service without endpoints keeps its flows', async () => {
    const made: Made[] = [];
    const snapshots = [SERVING, DELETED].map((ip, k) => flowsTo(ip, ENDPOINT_PORT, (dp) => {
      open(dp, made, { label: `UDP external IP → ${ip}`, proto: 'UDP', dst: EXTERNAL_IP, dport: SERVICE_PORT, kept: true }, `198.18.2.${k + 1}`, ip, ENDPOINT_PORT);
    }));
    const dp = await create();
    for (const s of await Promise.all(snapshots)) dp.restore(s);
    // The slice belongs to another Service: this one has no endpoints.
    const r = dp.apply([service(false), slice([{ ip: SERVING, serving: true }, { ip: NON_SERVING, serving: false }], false, ENDPOINT_PORT, 'non-existing-service')], { mode: 'iptables' });
    expect(r.issues).toEqual([]);
    expect(r.flushed).toBe(0);
    expect(dp.conntrack().map(flowKey).sort()).toEqual(made.map(madeKey).sort());
  });
});
