// What leaves the core where the kernel's receive path defines it, in every mode: link-layer
// padding past the IP length trimmed (ip_rcv_core / ip6_rcv_core), malformed IPv4 options dropped
// with no connection left (ip_rcv_options → ip_options_compile), a REJECT's quote of a packet with
// TTL 0 that still adds up, and IPVS leaving an SCTP packet's CRC32c as it came when the port stays
// (ip_vs_proto_sctp.c), recomputing it when the port changes.
import { describe, it, expect } from 'vitest';
import { Dataplane } from '../../host-node/dataplane.js';
import { buildPacket, checksumsValid, decodePacket, type PacketSpec } from '../../host-node/core/packet.js';

type Mode = 'iptables' | 'ipvs' | 'direct';
const MODES: Mode[] = ['iptables', 'ipvs', 'direct'];

const service = (name: string, ip: string, port: number, targetPort: number, protocol: string, endpoints: string[]) => [
  `apiVersion: v1\nkind: Service\nmetadata: { name: ${name}, namespace: default }\n` +
  `spec: { clusterIP: "${ip}", ports: [{ name: p, port: ${port}, protocol: ${protocol}, targetPort: ${targetPort} }] }`,
  `apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: { name: ${name}-1, namespace: default, labels: { kubernetes.io/service-name: ${name} } }\n` +
  `addressType: ${ip.includes(':') ? 'IPv6' : 'IPv4'}\nports: [{ name: p, port: ${targetPort}, protocol: ${protocol} }]\n` +
  `endpoints: [${endpoints.map((a) => `{ addresses: ["${a}"], conditions: { ready: true } }`).join(', ')}]`,
];
const OBJECTS = [
  ...service('web', '198.18.96.80', 80, 8080, 'TCP', ['198.19.1.10']),
  ...service('web6', 'fd00:96::80', 80, 8080, 'TCP', ['fd00:19::10']),
  ...service('empty', '198.18.96.81', 80, 8080, 'TCP', []),
  ...service('sctp-same', '198.18.96.82', 9000, 9000, 'SCTP', ['198.19.1.12']),
  ...service('sctp-moved', '198.18.96.83', 9000, 9100, 'SCTP', ['198.19.1.13']),
].join('\n---\n');

async function node(mode: Mode): Promise<Dataplane> {
  const dp = await Dataplane.create({ nodeIPs: ['198.18.0.2', 'fd00::2'], podCIDR: '198.19.0.0/16', seed: 3 });
  const r = dp.apply(OBJECTS, { mode, nodeName: 'node-a' });
  expect(r.issues).toEqual([]);
  return dp;
}

const padded = (spec: PacketSpec, extra: number): Uint8Array => {
  const p = buildPacket(spec);
  const out = new Uint8Array(p.length + extra).fill(0xa5);
  out.set(p);
  return out;
};

describe('bytes past the IP length', () => {
  for (const mode of MODES) {
    it(`${mode} mode: a Service packet, a packet passing by, a later fragment and a packet steered back untracked leave without the padding they came with`, async () => {
      const dp = await node(mode);
      const cases: Array<[PacketSpec, string]> = [
        [{ src: '198.19.0.9', dst: '198.18.96.80', proto: 'tcp', sport: 40000, dport: 80, flags: 'S' }, 'FORWARD'],
        [{ src: 'fd00:19::9', dst: 'fd00:96::80', proto: 'tcp', sport: 40000, dport: 80, flags: 'S' }, 'FORWARD'],
        [{ src: '198.19.0.9', dst: '198.18.200.7', proto: 'udp', sport: 40000, dport: 53, payload: 'x' }, 'PASS'],
      ];
      for (const [spec, verdict] of cases) {
        const ipLength = buildPacket(spec).length;
        const r = dp.process(padded(spec, 6), 1000);
        expect(r.verdict).toBe(verdict);
        expect(r.packet!.length).toBe(ipLength);
        expect(decodePacket(r.packet!).length).toBe(ipLength);
        expect(checksumsValid(r.packet!)).toBe(true);
      }
      // A datagram in two fragments: the later one follows the first, without its padding.
      const frag = { src: '198.19.0.9', dst: '198.18.96.80', proto: 'tcp' as const, sport: 40001, dport: 80, flags: 'S' };
      const first = dp.process(buildPacket({ ...frag, payload: new Uint8Array(16), frag: { offset: 0, more: true, id: 77 } }), 1000);
      const laterSpec: PacketSpec = { ...frag, payload: new Uint8Array(8), frag: { offset: 24, more: false, id: 77 } };
      const later = dp.process(padded(laterSpec, 6), 1000);
      expect(first.verdict).toBe('FORWARD');
      expect(later.verdict).toBe('FORWARD');
      expect(later.packet!.length).toBe(buildPacket(laterSpec).length);
      // Steered here only for un-NAT, of no connection: back untouched, without the padding.
      const steered = { src: '198.19.1.10', dst: '198.19.0.77', proto: 'tcp' as const, sport: 8080, dport: 41000, flags: 'SA' };
      const back = dp.process({ bytes: padded(steered, 6), trackedOnly: true }, 1000);
      expect(back.verdict).toBe('PASS');
      expect(back.packet!.length).toBe(buildPacket(steered).length);
    });
  }
});

describe('IPv4 options', () => {
  const BAD: Record<string, number[]> = {
    'timestamp of length 1': [0x44, 0x01, 0x00, 0x00],
    'record route running past the header': [0x07, 0xff, 0x04, 0x00],
    'an option of length 0': [0x82, 0x00, 0x00, 0x00],
    'a record-route pointer before its first slot': [0x07, 0x07, 0x03, 0, 0, 0, 0, 0x00],
    'two timestamps': [0x44, 0x04, 0x05, 0x00, 0x44, 0x04, 0x05, 0x00],
    'a timestamp whose overflow count is full': [0x44, 0x04, 0x05, 0xf0],
    'a short router alert': [0x94, 0x02, 0x00, 0x00],
    'CIPSO': [0x86, 0x08, 0, 0, 0, 1, 0, 0],
  };
  const GOOD: Record<string, number[]> = {
    'no-ops': [0x01, 0x01, 0x01, 0x00],
    'router alert': [0x94, 0x04, 0x00, 0x00],
    'record route with a free slot': [0x07, 0x07, 0x04, 0, 0, 0, 0, 0x00],
    'a full record route': [0x07, 0x07, 0x08, 10, 0, 0, 1, 0x00],
    'an unknown option': [0x9e, 0x04, 0xaa, 0xbb],
  };
  for (const mode of MODES) {
    it(`${mode} mode: the options the kernel refuses drop the packet with no connection left; well-formed ones pass`, async () => {
      const dp = await node(mode);
      let sport = 41000;
      const send = (opts: number[]) => dp.process(buildPacket({ src: '198.19.0.9', dst: '198.18.96.80', proto: 'tcp', sport: sport++, dport: 80, flags: 'S', ipOptions: Uint8Array.from(opts) }), 1000);
      for (const [name, opts] of Object.entries(BAD)) {
        const r = send(opts);
        expect([r.verdict, r.reason], name).toEqual(['DROP', 'bad_header']);
      }
      expect(dp.conntrack(1000)).toHaveLength(0);
      for (const [name, opts] of Object.entries(GOOD)) expect(send(opts).verdict, name).toBe('FORWARD');
      expect(dp.conntrack(1000)).toHaveLength(Object.keys(GOOD).length);
    });
  }
});

describe("a REJECT's quote", () => {
  for (const mode of ['iptables', 'direct'] as const) {
    it(`${mode} mode: a packet with TTL 0 to a Service without endpoints is quoted with a header checksum that adds up; TTL 5 as the forward left it`, async () => {
      const dp = await node(mode);
      for (const [ttl, quoted] of [[0, 0], [5, 4]] as const) {
        const r = dp.process(buildPacket({ src: '198.19.0.9', dst: '198.18.96.81', proto: 'tcp', sport: 40000, dport: 80, flags: 'S', ttl }), 1000);
        expect(r.verdict).toBe('REPLY');
        const icmp = decodePacket(r.packet!);
        expect([icmp.icmp?.type, icmp.icmp?.code]).toEqual([3, 3]);
        expect(icmp.icmp!.inner!.ttl).toBe(quoted);
        expect(checksumsValid(r.packet!)).toBe(true);
      }
    });
  }
});

describe('IPVS and the SCTP CRC32c', () => {
  const crcOf = (p: Uint8Array) => new DataView(p.buffer, p.byteOffset).getUint32(20 + 8, true);
  const init = (dst: string) => {
    const p = buildPacket({ src: '198.19.0.9', dst, proto: 'sctp', sport: 40000, dport: 9000 });
    p[p.length - 1]! ^= 1;   // the last INIT byte: the CRC no longer matches
    return p;
  };

  it('ipvs mode: the port kept, a bad CRC leaves as it came (the receiver drops it); the port changed, it is computed afresh', async () => {
    const dp = await node('ipvs');
    const same = init('198.18.96.82');
    const r = dp.process(same, 1000);
    expect(r.verdict).toBe('FORWARD');
    expect(decodePacket(r.packet!).dst).toBe('198.19.1.12');
    expect(crcOf(r.packet!)).toBe(crcOf(same));
    expect(checksumsValid(r.packet!)).toBe(false);
    const moved = dp.process(init('198.18.96.83'), 1000);
    expect(moved.verdict).toBe('FORWARD');
    expect(decodePacket(moved.packet!).dport).toBe(9100);
    expect(checksumsValid(moved.packet!)).toBe(true);
    // A good CRC with the port kept stays good.
    const good = dp.process(buildPacket({ src: '198.19.0.10', dst: '198.18.96.82', proto: 'sctp', sport: 40001, dport: 9000 }), 1000);
    expect(checksumsValid(good.packet!)).toBe(true);
  });

  for (const mode of ['iptables', 'direct'] as const) {
    it(`${mode} mode: conntrack finds the bad CRC and the packet goes nowhere`, async () => {
      const dp = await node(mode);
      expect(dp.process(init('198.18.96.82'), 1000).verdict).toBe('DROP');
    });
  }
});
