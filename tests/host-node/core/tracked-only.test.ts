// Packets the node proxy steers into the core only for un-NAT (an endpoint's replies, routed to the
// device by source): a reply of a connection the core made is un-NATed as usual, and so is an ICMP
// error about one; anything else — a pod answering a client that reached it directly, without a
// Service — comes back untouched and untracked in every mode, instead of meeting KUBE-FORWARD's
// INVALID drop (a SYN-ACK the core never saw the SYN of) or creating conntrack state.
import { describe, it, expect } from 'vitest';
import { Dataplane } from '../../../host-node/dataplane.js';
import { buildPacket, decodePacket } from '../../../host-node/core/packet.js';
import { webManifests } from '../../support/kube-gen.js';

const VIP = '198.19.0.10';
const POD = '198.18.5.1';
const CLIENT = '198.18.4.9';
const YAML = webManifests({ vip: VIP, endpoints: [POD] });
const MODES = ['iptables', 'ipvs', 'direct'] as const;

async function node(mode: (typeof MODES)[number]): Promise<Dataplane> {
  const dp = await Dataplane.create({ nodeIPs: ['198.18.0.1'], seed: 1 });
  dp.apply(YAML, { mode, iptables: { clusterCIDR: '198.18.4.0/22' } });
  return dp;
}
const fromPod = (dport: number, flags: string) => buildPacket({ src: POD, dst: CLIENT, proto: 'tcp', sport: 8080, dport, flags });

describe.each(MODES)('steered replies (%s mode)', (mode) => {
  it('leave untouched and untracked when they belong to no connection of the core', async () => {
    const dp = await node(mode);
    const before = dp.conntrack(5).length;
    for (const flags of ['SA', 'A', 'FA', 'R']) {
      const bytes = fromPod(41000, flags);
      const r = dp.process({ bytes, trackedOnly: true }, 5);
      expect(r.verdict, flags).toBe('PASS');
      expect(r.packet ?? bytes).toEqual(bytes);
    }
    expect(dp.conntrack(6)).toHaveLength(before);
    // The same SYN-ACK without the flag is judged as the rules say (iptables: INVALID → DROP).
    if (mode === 'iptables') expect(dp.process(fromPod(41000, 'SA'), 7).verdict).toBe('DROP');
  });

  it('are un-NATed when they answer a Service connection, ICMP errors included', async () => {
    const dp = await node(mode);
    const syn = dp.process(buildPacket({ src: CLIENT, dst: VIP, proto: 'tcp', sport: 42000, dport: 80, flags: 'S' }), 10);
    expect(decodePacket(syn.packet!).dst).toBe(POD);
    const r = dp.process({ bytes: fromPod(42000, 'SA'), trackedOnly: true }, 11);
    expect(r.verdict).toBe('FORWARD');
    const back = decodePacket(r.packet!);
    expect([back.src, back.sport, back.dst, back.dport]).toEqual([VIP, 80, CLIENT, 42000]);

    // The pod's host refuses a segment of the connection (port unreachable), quoting it as received.
    const quote = buildPacket({ src: CLIENT, dst: POD, proto: 'tcp', sport: 42000, dport: 8080, flags: 'A' });
    const err = buildPacket({ src: POD, dst: CLIENT, proto: 'icmp', icmp: { type: 3, code: 3, quote } });
    const e = dp.process({ bytes: err, trackedOnly: true }, 12);
    expect(e.verdict).toBe('FORWARD');
    const out = decodePacket(e.packet!);
    expect(out.src).toBe(VIP);
    expect([out.icmp!.inner!.dst, out.icmp!.inner!.dport]).toEqual([VIP, 80]);
    // An ICMP error about nothing the core knows leaves untouched.
    const strayQuote = buildPacket({ src: CLIENT, dst: POD, proto: 'tcp', sport: 43000, dport: 8080, flags: 'A' });
    const stray = buildPacket({ src: POD, dst: CLIENT, proto: 'icmp', icmp: { type: 3, code: 3, quote: strayQuote } });
    expect(dp.process({ bytes: stray, trackedOnly: true }, 13).verdict).toBe('PASS');
  });
});
