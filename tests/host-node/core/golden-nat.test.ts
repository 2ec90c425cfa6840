// Golden NAT packets: what leaves the core must equal, byte for byte, the packet built from
// scratch with the translated addresses and ports (so every checksum is recomputed independently).
import { describe, it, expect } from 'vitest';
import { Dataplane } from '../../../host-node/core/dataplane.js';
import { buildPacket, type PacketSpec } from '../../../host-node/core/packet.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

async function make() {
  const dp = await Dataplane.create({ nodeIPs: ['192.168.49.2', 'fd00:49::2'], podCIDR: ['10.244.0.0/16', 'fd00:244::/64'], seed: 5 });
  dp.setServices([
    { vip: '10.96.0.80', port: 80, protocol: 'TCP', endpoints: ['10.244.1.11:8080'] },
    { vip: '10.96.0.10', port: 53, protocol: 'UDP', endpoints: ['10.244.1.21:5353'] },
    { vip: '10.96.0.7', port: 7, protocol: 'SCTP', endpoints: ['10.244.1.7:7007'] },
    { vip: 'fd00:96::80', port: 80, protocol: 'TCP', endpoints: ['[fd00:244::11]:8080'] },
    { vip: 'fd00:96::10', port: 53, protocol: 'UDP', endpoints: ['[fd00:244::21]:5353'] },
    { vip: '10.96.0.1', port: 1, protocol: 'ICMP', endpoints: ['10.244.1.1:1'] },
  ]);
  return dp;
}

const cases: Array<{ name: string; in: PacketSpec; out: Partial<PacketSpec>; back?: { in: Partial<PacketSpec>; out: Partial<PacketSpec> } }> = [
  {
    name: 'TCP DNAT from a pod, and the reply',
    in: { src: '10.244.3.3', dst: '10.96.0.80', proto: 'tcp', sport: 40000, dport: 80, flags: 'S', seq: 7, payload: 'hello' },
    out: { dst: '10.244.1.11', dport: 8080 },
    back: { in: { src: '10.244.1.11', dst: '10.244.3.3', sport: 8080, dport: 40000, flags: 'SA' }, out: { src: '10.96.0.80', sport: 80 } },
  },
  {
    name: 'UDP DNAT + masquerade for an off-cluster client, and the reply',
    in: { src: '203.0.113.9', dst: '10.96.0.10', proto: 'udp', sport: 33000, dport: 53, payload: 'query' },
    out: { src: '192.168.49.2', dst: '10.244.1.21', dport: 5353 },
    back: { in: { src: '10.244.1.21', dst: '192.168.49.2', sport: 5353, dport: 33000 }, out: { src: '10.96.0.10', sport: 53, dst: '203.0.113.9' } },
  },
  {
    name: 'UDP over IPv4 without checksum stays without',
    in: { src: '10.244.3.3', dst: '10.96.0.10', proto: 'udp', sport: 33001, dport: 53, payload: 'q', udpZeroChecksum: true },
    out: { dst: '10.244.1.21', dport: 5353 },
  },
  {
    name: 'SCTP DNAT recomputes the CRC32c',
    in: { src: '10.244.3.3', dst: '10.96.0.7', proto: 'sctp', sport: 7, dport: 7 },
    out: { dst: '10.244.1.7', dport: 7007 },
  },
  {
    name: 'IPv6 TCP DNAT, and the reply',
    in: { src: 'fd00:244::5', dst: 'fd00:96::80', proto: 'tcp', sport: 40000, dport: 80, flags: 'S' },
    out: { dst: 'fd00:244::11', dport: 8080 },
    back: { in: { src: 'fd00:244::11', dst: 'fd00:244::5', sport: 8080, dport: 40000, flags: 'SA' }, out: { src: 'fd00:96::80', sport: 80 } },
  },
  {
    name: 'IPv6 UDP DNAT + masquerade',
    in: { src: 'fd00:abcd::9', dst: 'fd00:96::10', proto: 'udp', sport: 33000, dport: 53, payload: 'q6' },
    out: { src: 'fd00:49::2', dst: 'fd00:244::21', dport: 5353 },
  },
];

describe('golden NAT packets', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const dp = await make();
      const r = dp.process(buildPacket(c.in), 1);
      expect(r.verdict).toBe('FORWARD');
      expect(hex(r.packet!)).toBe(hex(buildPacket({ ...c.in, ...c.out })));
      if (c.back) {
        const spec = { ...c.in, ...c.back.in } as PacketSpec;
        const b = dp.process(buildPacket(spec), 2);
        expect(b.verdict).toBe('FORWARD');
        expect(hex(b.packet!)).toBe(hex(buildPacket({ ...spec, ...c.back.out })));
      }
    });
  }
});
