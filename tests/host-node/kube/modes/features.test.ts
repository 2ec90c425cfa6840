// Per-feature packet-flow tables run in every apply() mode: each case's outcome set must equal
// the expected one in every mode (so the modes agree). The expectations are kube-proxy's iptables
// behaviour (pkg/proxy/iptables/proxier.go), e.g. masquerade marks, REJECT/DROP filter rules,
// externalTrafficPolicy Local's pod/host short-circuit. Known differences between kube-proxy's
// own modes are listed in differences.test.ts.
import { describe, it, expect } from 'vitest';
import {
  MODES, runTable, service, slice, docs, node, NODE_IP, NODE_IP6, OUTSIDE, OUTSIDE6, type FeatureTable,
} from './harness.js';

const EP1 = '198.19.1.11';
const EP2 = '198.19.2.12';   // on another node
const EP3 = '198.19.1.13';
const POD = '198.19.3.3';    // a client pod
const http = [{ name: 'http', port: 80, targetPort: 8080 }];
const two = [{ ip: EP1 }, { ip: EP2, node: 'node-b' }];

const tables: FeatureTable[] = [
  {
    name: 'ClusterIP',
    manifests: docs(service('web', { clusterIP: '198.18.0.80', ports: [{ name: 'http', port: 80, targetPort: 8080 }] }), slice('web', two, http)),
    cases: [
      { name: 'pod client: every endpoint, source kept', src: POD, dst: '198.18.0.80', dport: 80, expect: [`${EP1}:8080`, `${EP2}:8080`] },
      { name: 'off-cluster client: masqueraded', src: OUTSIDE, dst: '198.18.0.80', dport: 80, expect: [`${EP1}:8080 masq`, `${EP2}:8080 masq`] },
      { name: 'node itself: masqueraded', src: NODE_IP, dst: '198.18.0.80', dport: 80, local: true, expect: [`${EP1}:8080 masq`, `${EP2}:8080 masq`] },
      { name: 'hairpin: an endpoint reaching itself is masqueraded', src: EP1, dst: '198.18.0.80', dport: 80, expect: [`${EP1}:8080 masq`, `${EP2}:8080`] },
      // ipvs: KUBE-IPVS-FILTER rejects unknown ports of a VIP bound to kube-ipvs0 (kubernetes#72236);
      // direct: as kube-proxy's nftables mode rejects them (cluster-ips-check).
      { name: 'other port: not a service', src: POD, dst: '198.18.0.80', dport: 81, expect: ['PASS'], differs: { ipvs: ['REJECT'], direct: ['REJECT'] } },
      { name: 'other protocol: not a service', src: POD, dst: '198.18.0.80', dport: 80, proto: 'udp', expect: ['PASS'], differs: { ipvs: ['REJECT'], direct: ['REJECT'] } },
    ],
  },
  {
    name: 'no endpoints',
    manifests: docs(
      service('empty', { clusterIP: '198.18.0.81', type: 'NodePort', externalIPs: ['198.18.15.1'], ports: [{ name: 'http', port: 80, nodePort: 30081 }, { name: 'dns', port: 53, protocol: 'UDP', nodePort: 30053 }] }),
    ),
    cases: [
      { name: 'TCP cluster IP: REJECT', src: POD, dst: '198.18.0.81', dport: 80, expect: ['REJECT'] },
      { name: 'UDP cluster IP: REJECT', src: POD, dst: '198.18.0.81', dport: 53, proto: 'udp', expect: ['REJECT'] },
      { name: 'external IP: REJECT', src: OUTSIDE, dst: '198.18.15.1', dport: 80, expect: ['REJECT'] },
      // Its REJECT is in KUBE-EXTERNAL-SERVICES (INPUT, FORWARD): the node's own packet, not for
      // one of its addresses, meets none and goes out as it is.
      { name: 'external IP from the node itself: passed on', src: NODE_IP, dst: '198.18.15.1', dport: 80, local: true, expect: ['PASS'], differs: { ipvs: ['REJECT'] } /* ipvs: the address is bound to kube-ipvs0, and its virtual server without real servers answers (ip_vs_leave) */ },
      { name: 'cluster IP from the node itself: REJECT (filter OUTPUT)', src: NODE_IP, dst: '198.18.0.81', dport: 80, local: true, expect: ['REJECT'] },
      { name: 'node port: REJECT', src: OUTSIDE, dst: NODE_IP, dport: 30081, expect: ['REJECT'] },
    ],
  },
  {
    name: 'NodePort',
    manifests: docs(service('np', { clusterIP: '198.18.0.82', type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30082, targetPort: 8080 }] }), slice('np', two, http)),
    cases: [
      { name: 'external client on the node IP: masqueraded', src: OUTSIDE, dst: NODE_IP, dport: 30082, expect: [`${EP1}:8080 masq`, `${EP2}:8080 masq`] },
      { name: 'pod client on the node IP: masqueraded too (external traffic)', src: POD, dst: NODE_IP, dport: 30082, expect: [`${EP1}:8080 masq`, `${EP2}:8080 masq`] },
      { name: 'localhost node port from the node', src: '127.0.0.1', dst: '127.0.0.1', dport: 30082, local: true, expect: [`${EP1}:8080 masq`, `${EP2}:8080 masq`], differs: { ipvs: ['PASS'] } /* ipvs: no NodePort virtual servers on 127.0.0.1 (only the iptables mode has localhost node ports) */ },
      { name: 'not a node address: not captured', src: OUTSIDE, dst: '198.18.99.1', dport: 30082, expect: ['PASS'] },
      { name: 'cluster IP still served', src: POD, dst: '198.18.0.82', dport: 80, expect: [`${EP1}:8080`, `${EP2}:8080`] },
    ],
  },
  {
    name: 'NodePort with --nodeport-addresses',
    dataplane: { nodeIPs: [NODE_IP, '198.18.201.1', NODE_IP6] },
    apply: { iptables: { nodePortAddresses: [`${NODE_IP}/32`] } },
    manifests: docs(
      service('np', { clusterIP: '198.18.0.83', type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30083, targetPort: 8080 }] }), slice('np', two, http),
      service('npe', { clusterIP: '198.18.0.84', type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30084 }] }),
    ),
    cases: [
      { name: 'listed address: captured', src: OUTSIDE, dst: NODE_IP, dport: 30083, expect: [`${EP1}:8080 masq`, `${EP2}:8080 masq`] },
      { name: 'other node address: not captured', src: OUTSIDE, dst: '198.18.201.1', dport: 30083, expect: ['PASS'] },
      { name: 'no endpoints, other node address: still REJECTed (filter rule matches any LOCAL address)', src: OUTSIDE, dst: '198.18.201.1', dport: 30084, expect: ['REJECT'], differs: { ipvs: ['PASS'] } /* ipvs: no virtual server on addresses outside --nodeport-addresses, so no ip_vs_leave ICMP there */ },
    ],
  },
  {
    name: 'externalIPs',
    manifests: docs(service('ext', { clusterIP: '198.18.0.85', externalIPs: ['198.18.15.5'], ports: [{ name: 'http', port: 80, targetPort: 8080 }] }), slice('ext', two, http)),
    cases: [
      { name: 'external client: masqueraded', src: OUTSIDE, dst: '198.18.15.5', dport: 80, expect: [`${EP1}:8080 masq`, `${EP2}:8080 masq`] },
      { name: 'pod client: masqueraded (external destination, policy Cluster)', src: POD, dst: '198.18.15.5', dport: 80, expect: [`${EP1}:8080 masq`, `${EP2}:8080 masq`] },
    ],
  },
  {
    name: 'LoadBalancer with loadBalancerSourceRanges and ipMode',
    manifests: docs(
      service('lb', {
        clusterIP: '198.18.0.86', type: 'LoadBalancer', loadBalancerSourceRanges: ['203.0.113.0/28', `${NODE_IP}/32`],
        ports: [{ name: 'http', port: 80, nodePort: 30086, targetPort: 8080 }],
      }, { loadBalancer: { ingress: [{ ip: '198.18.14.6' }, { ip: '198.18.14.7', ipMode: 'Proxy' }] } }),
      slice('lb', two, http),
    ),
    cases: [
      { name: 'allowed source: masqueraded to every endpoint', src: OUTSIDE, dst: '198.18.14.6', dport: 80, expect: [`${EP1}:8080 masq`, `${EP2}:8080 masq`] },
      { name: 'source outside the ranges: DROP', src: '203.0.113.99', dst: '198.18.14.6', dport: 80, expect: ['DROP'] },
      { name: 'the VIP itself as source (node covered by a range)', src: '198.18.14.6', dst: '198.18.14.6', dport: 80, expect: [`${EP1}:8080 masq`, `${EP2}:8080 masq`] },
      { name: 'ipMode Proxy: not captured', src: OUTSIDE, dst: '198.18.14.7', dport: 80, expect: ['PASS'] },
      { name: 'node port ignores the source ranges', src: '203.0.113.99', dst: NODE_IP, dport: 30086, expect: [`${EP1}:8080 masq`, `${EP2}:8080 masq`] },
    ],
  },
  {
    // Service addresses the API server once let through with leading zeros: kube-proxy parses them
    // (netutils.ParseIPSloppy, decimal) and current kube-proxy writes the parsed address.
    name: 'addresses written with leading zeros',
    manifests: docs(
      service('old', {
        clusterIP: '198.018.000.087', type: 'LoadBalancer', externalIPs: ['198.018.015.007'], loadBalancerSourceRanges: ['203.000.113.000/28', `${NODE_IP}/32`],
        ports: [{ name: 'http', port: 80, nodePort: 30087, targetPort: 8080 }],
      }, { loadBalancer: { ingress: [{ ip: '198.018.014.008' }] } }),
      slice('old', two, http),
    ),
    cases: [
      { name: 'cluster IP', src: POD, dst: '198.18.0.87', dport: 80, expect: [`${EP1}:8080`, `${EP2}:8080`] },
      { name: 'external IP', src: OUTSIDE, dst: '198.18.15.7', dport: 80, expect: [`${EP1}:8080 masq`, `${EP2}:8080 masq`] },
      { name: 'load-balancer IP from an allowed source', src: OUTSIDE, dst: '198.18.14.8', dport: 80, expect: [`${EP1}:8080 masq`, `${EP2}:8080 masq`] },
      { name: 'load-balancer IP from outside the ranges: DROP', src: '203.0.113.99', dst: '198.18.14.8', dport: 80, expect: ['DROP'] },
      { name: 'the VIP itself as source (node covered by a range)', src: '198.18.14.8', dst: '198.18.14.8', dport: 80, expect: [`${EP1}:8080 masq`, `${EP2}:8080 masq`] },
    ],
  },
  {
    name: 'externalTrafficPolicy Local',
    manifests: docs(
      service('etp', {
        clusterIP: '198.18.0.87', type: 'LoadBalancer', externalTrafficPolicy: 'Local', externalIPs: ['198.18.15.7'],
        ports: [{ name: 'http', port: 80, nodePort: 30087, targetPort: 8080 }],
      }, { loadBalancer: { ingress: [{ ip: '198.18.14.8' }] } }),
      slice('etp', [{ ip: EP1 }, { ip: EP3 }, { ip: EP2, node: 'node-b' }], http),
      service('etp0', { clusterIP: '198.18.0.88', type: 'NodePort', externalTrafficPolicy: 'Local', externalIPs: ['198.18.15.8'], ports: [{ name: 'http', port: 80, nodePort: 30088, targetPort: 8080 }] }),
      slice('etp0', [{ ip: EP2, node: 'node-b' }], http),
    ),
    cases: [
      { name: 'external client on the node port: local endpoints, source kept', src: OUTSIDE, dst: NODE_IP, dport: 30087, expect: [`${EP1}:8080`, `${EP3}:8080`] },
      { name: 'external client on the LB IP: local endpoints, source kept', src: OUTSIDE, dst: '198.18.14.8', dport: 80, expect: [`${EP1}:8080`, `${EP3}:8080`] },
      { name: 'external client on the external IP: local endpoints', src: OUTSIDE, dst: '198.18.15.7', dport: 80, expect: [`${EP1}:8080`, `${EP3}:8080`] },
      { name: 'pod client on the external IP counts as internal: every endpoint, no masquerade', src: POD, dst: '198.18.15.7', dport: 80, expect: [`${EP1}:8080`, `${EP2}:8080`, `${EP3}:8080`], differs: { ipvs: [`${EP1}:8080`, `${EP3}:8080`] } /* ipvs: the external IP's virtual server holds only local endpoints; no cluster short-circuit for pods */ },
      { name: 'the node itself on the LB IP: every endpoint, masqueraded', src: NODE_IP, dst: '198.18.14.8', dport: 80, local: true, expect: [`${EP1}:8080 masq`, `${EP2}:8080 masq`, `${EP3}:8080 masq`], differs: { ipvs: [`${EP1}:8080`, `${EP3}:8080`] } /* ipvs: the LB IP's virtual server holds only local endpoints, and KUBE-LOAD-BALANCER-LOCAL returns before the masquerade mark */ },
      { name: 'cluster IP keeps policy Cluster', src: POD, dst: '198.18.0.87', dport: 80, expect: [`${EP1}:8080`, `${EP2}:8080`, `${EP3}:8080`] },
      { name: 'no local endpoint: external client DROPped', src: OUTSIDE, dst: NODE_IP, dport: 30088, expect: ['DROP'], differs: { ipvs: [`${EP2}:8080`] } /* ipvs: no local endpoint falls back to the cluster ones (kubernetes PR 97081); the unmasqueraded reply is lost on a real node */ },
      { name: 'no local endpoint: external IP DROPped', src: OUTSIDE, dst: '198.18.15.8', dport: 80, expect: ['DROP'], differs: { ipvs: [`${EP2}:8080`] } /* ipvs: as above (kubernetes PR 97081) */ },
      { name: 'no local endpoint: a pod still reaches the remote one', src: POD, dst: '198.18.15.8', dport: 80, expect: [`${EP2}:8080`] },
    ],
  },
  {
    name: 'internalTrafficPolicy Local',
    manifests: docs(
      service('itp', { clusterIP: '198.18.0.89', internalTrafficPolicy: 'Local', ports: http }), slice('itp', [{ ip: EP1 }, { ip: EP2, node: 'node-b' }], http),
      service('itp0', { clusterIP: '198.18.0.90', internalTrafficPolicy: 'Local', ports: http }), slice('itp0', [{ ip: EP2, node: 'node-b' }], http),
    ),
    cases: [
      { name: 'local endpoints only', src: POD, dst: '198.18.0.89', dport: 80, expect: [`${EP1}:8080`] },
      { name: 'none local: DROP', src: POD, dst: '198.18.0.90', dport: 80, expect: ['DROP'], differs: { ipvs: ['REJECT'] } /* ipvs: a virtual server without real servers answers ICMP port unreachable (ip_vs_leave) */ },
    ],
  },
  {
    name: 'serving-terminating fallback',
    manifests: docs(
      service('term', { clusterIP: '198.18.0.91', ports: http }),
      slice('term', [{ ip: EP1, ready: false, serving: true, terminating: true }, { ip: EP2, node: 'node-b', ready: false, serving: false, terminating: true }, { ip: EP3, ready: false, serving: false }], http),
      service('mixed', { clusterIP: '198.18.0.92', ports: http }),
      slice('mixed', [{ ip: EP1, ready: false, serving: true, terminating: true }, { ip: EP3 }], http),
    ),
    cases: [
      { name: 'no ready endpoint: the serving terminating ones', src: POD, dst: '198.18.0.91', dport: 80, expect: [`${EP1}:8080`] },
      { name: 'a ready endpoint wins over terminating ones', src: POD, dst: '198.18.0.92', dport: 80, expect: [`${EP3}:8080`] },
    ],
  },
  {
    name: 'topology hints',
    manifests: docs(
      node('node-a', 'z1'),
      service('topo', { clusterIP: '198.18.0.95', ports: http }),
      slice('topo', [{ ip: EP1, zones: ['z1'] }, { ip: EP2, node: 'node-b', zones: ['z2'] }, { ip: EP3, zones: ['z1'] }], http),
      service('partial', { clusterIP: '198.18.0.96', ports: http }),
      slice('partial', [{ ip: EP1, zones: ['z1'] }, { ip: EP2, node: 'node-b' }], http),
    ),
    cases: [
      { name: 'every endpoint hinted: this zone\'s only', src: POD, dst: '198.18.0.95', dport: 80, expect: [`${EP1}:8080`, `${EP3}:8080`] },
      { name: 'one endpoint without hints: all of them', src: POD, dst: '198.18.0.96', dport: 80, expect: [`${EP1}:8080`, `${EP2}:8080`] },
    ],
  },
  {
    name: '--masquerade-all',
    apply: { iptables: { masqueradeAll: true } },
    manifests: docs(service('web', { clusterIP: '198.18.0.93', ports: http }), slice('web', two, http)),
    cases: [
      { name: 'pod client masqueraded', src: POD, dst: '198.18.0.93', dport: 80, expect: [`${EP1}:8080 masq`, `${EP2}:8080 masq`] },
    ],
  },
  {
    name: 'UDP and SCTP',
    manifests: docs(
      service('dns', { clusterIP: '198.18.0.10', ports: [{ name: 'dns', port: 53, protocol: 'UDP', targetPort: 5353 }, { name: 'sctp', port: 7, protocol: 'SCTP', targetPort: 7007 }] }),
      slice('dns', two, [{ name: 'dns', port: 53, protocol: 'UDP', targetPort: 5353 }, { name: 'sctp', port: 7, protocol: 'SCTP', targetPort: 7007 }]),
    ),
    cases: [
      { name: 'UDP', src: POD, dst: '198.18.0.10', dport: 53, proto: 'udp', expect: [`${EP1}:5353`, `${EP2}:5353`] },
      { name: 'SCTP', src: POD, dst: '198.18.0.10', dport: 7, proto: 'sctp', expect: [`${EP1}:7007`, `${EP2}:7007`] },
      { name: 'TCP on the UDP port: not a service', src: POD, dst: '198.18.0.10', dport: 53, proto: 'tcp', expect: ['PASS'], differs: { ipvs: ['REJECT'], direct: ['REJECT'] } /* ipvs: KUBE-IPVS-FILTER (kubernetes#72236); direct: nftables mode's cluster-ips-check */ },
    ],
  },
  {
    name: 'dual-stack',
    manifests: docs(
      service('ds', {
        clusterIP: '198.18.0.94', clusterIPs: ['198.18.0.94', 'fd00:18::94'], ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'RequireDualStack',
        type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30094, targetPort: 8080 }],
      }),
      slice('ds', two, http),
      slice('ds', [{ ip: 'fd00:19::11' }, { ip: 'fd00:19::12', node: 'node-b' }], http, { family: 6 }),
    ),
    cases: [
      { name: 'IPv4 cluster IP', src: POD, dst: '198.18.0.94', dport: 80, expect: [`${EP1}:8080`, `${EP2}:8080`] },
      { name: 'IPv6 cluster IP from a pod', src: 'fd00:19::3', dst: 'fd00:18::94', dport: 80, expect: ['[fd00:19::11]:8080', '[fd00:19::12]:8080'] },
      { name: 'IPv6 cluster IP from outside: masqueraded', src: OUTSIDE6, dst: 'fd00:18::94', dport: 80, expect: ['[fd00:19::11]:8080 masq', '[fd00:19::12]:8080 masq'] },
      { name: 'IPv6 node port', src: OUTSIDE6, dst: NODE_IP6, dport: 30094, expect: ['[fd00:19::11]:8080 masq', '[fd00:19::12]:8080 masq'] },
      { name: 'IPv6 localhost is no node port', src: '::1', dst: '::1', dport: 30094, local: true, expect: ['PASS'] },
    ],
  },
];

describe.each(tables)('flow table: $name', (table) => {
  it.each(MODES)('%s mode gives the expected outcome sets', async (mode) => {
    const got = await runTable(table, mode);
    for (const c of table.cases) expect({ case: c.name, outcomes: got.get(c.name) }).toEqual({ case: c.name, outcomes: [...(c.differs?.[mode] ?? c.expect)].sort() });
  });
});
