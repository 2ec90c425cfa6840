// Fragmented datagrams through the core (assembly/frags.ts): the first fragment is classified and
// NATed, the later ones leave with the addresses it left with — to a Service and back, IPv4 and
// IPv6, in the direct and the iptables mode — and put back together they are the datagram the
// kernel would have sent on (checksums verified over the whole). Later fragments whose first was
// answered, dropped or never seen are dropped, counted as fragments.
import { describe, it, expect } from 'vitest';
import { Dataplane } from '../../../host-node/core/dataplane.js';
import { Dataplane as FullDataplane } from '../../../host-node/dataplane.js';
import { buildPacket, checksumsValid, decodePacket } from '../../../host-node/core/packet.js';
import { fragment, reassemble } from '../../support/fragments.js';

const DNS = { name: 'kube-system/dns', vip: '10.96.0.10', port: 53, protocol: 'UDP' as const, endpoints: ['10.244.1.21:53'] };
const V6 = { name: 'default/web6', vip: 'fd00:96::80', port: 80, protocol: 'TCP' as const, endpoints: ['[fd00:244::11]:8080'] };
const EMPTY = { name: 'default/none', vip: '10.96.0.99', port: 53, protocol: 'UDP' as const, endpoints: [] as string[] };

async function direct(): Promise<Dataplane> {
  const dp = await Dataplane.create({ nodeIPs: ['192.168.49.2', 'fd00:49::2'], podCIDR: ['10.244.0.0/16', 'fd00:244::/64'], seed: 3 });
  dp.setServices([DNS, V6, EMPTY]);
  return dp;
}

const big = (n: number) => new Uint8Array(n).map((_, i) => (i * 7) & 0xff);

describe('fragments', () => {
  it('a fragmented datagram to a Service and its fragmented answer: every fragment NATed alike (direct mode, IPv4)', async () => {
    const dp = await direct();
    const q = buildPacket({ src: '10.244.3.3', dst: '10.96.0.10', proto: 'udp', sport: 4000, dport: 53, payload: big(3000) });
    const out = fragment(q, 1480, 0x1234).map((f, i) => dp.process(f, 1000 + i));
    expect(out.map((r) => r.verdict)).toEqual(['FORWARD', 'FORWARD', 'FORWARD']);
    const sent = reassemble(out.map((r) => r.packet!));
    expect(checksumsValid(sent)).toBe(true);
    expect(decodePacket(sent)).toMatchObject({ src: '10.244.3.3', dst: '10.244.1.21', sport: 4000, dport: 53 });
    // The answer comes back in fragments too, from the endpoint: each one leaves from the VIP.
    const a = buildPacket({ src: '10.244.1.21', dst: '10.244.3.3', proto: 'udp', sport: 53, dport: 4000, payload: big(2000) });
    const back = fragment(a, 1200, 0x99).map((f, i) => dp.process(f, 2000 + i));
    expect(back.map((r) => r.verdict)).toEqual(['FORWARD', 'FORWARD']);
    for (const r of back) expect(decodePacket(r.packet!).src).toBe('10.96.0.10');
    const got = reassemble(back.map((r) => r.packet!));
    expect(checksumsValid(got)).toBe(true);
    expect(decodePacket(got)).toMatchObject({ src: '10.96.0.10', dst: '10.244.3.3', sport: 53, dport: 4000 });
  });

  it('IPv6: a TCP segment cut in fragments reaches the endpoint whole', async () => {
    const dp = await direct();
    const p = buildPacket({ src: 'fd00:244::5', dst: 'fd00:96::80', proto: 'tcp', sport: 5555, dport: 80, flags: 'S', payload: big(2500) });
    const out = fragment(p, 1232, 0xabcdef).map((f, i) => dp.process(f, 1000 + i));
    expect(out.every((r) => r.verdict === 'FORWARD')).toBe(true);
    for (const r of out) expect(decodePacket(r.packet!).dst).toBe('fd00:244::11');
    const sent = reassemble(out.map((r) => r.packet!));
    expect(checksumsValid(sent)).toBe(true);
    expect(decodePacket(sent)).toMatchObject({ dst: 'fd00:244::11', dport: 8080 });
  });

  it('later fragments with nothing to follow are dropped: out of order, of another datagram, after a REJECT', async () => {
    const dp = await direct();
    const q = buildPacket({ src: '10.244.3.3', dst: '10.96.0.10', proto: 'udp', sport: 4001, dport: 53, payload: big(3000) });
    const [f0, f1, f2] = fragment(q, 1480, 7);
    expect(dp.process(f1!, 1000)).toMatchObject({ verdict: 'DROP', reason: 'fragment' });
    expect(dp.process(f0!, 1001).verdict).toBe('FORWARD');
    // Another datagram's fragment (another identification) follows nothing.
    const other = fragment(q, 1480, 8)[2]!;
    expect(dp.process(other, 1002)).toMatchObject({ verdict: 'DROP', reason: 'fragment' });
    expect(dp.process(f2!, 1003).verdict).toBe('FORWARD');
    // A Service without endpoints answers the first fragment; the rest goes nowhere.
    const r = buildPacket({ src: '10.244.3.3', dst: '10.96.0.99', proto: 'udp', sport: 4002, dport: 53, payload: big(3000) });
    const rf = fragment(r, 1480, 9).map((f, i) => dp.process(f, 1100 + i));
    expect(rf.map((x) => x.verdict)).toEqual(['REPLY', 'DROP', 'DROP']);
    // ipfrag_time: 30 s after the first, its datagram's later fragments are no longer followed.
    const late = fragment(buildPacket({ src: '10.244.3.4', dst: '10.96.0.10', proto: 'udp', sport: 4003, dport: 53, payload: big(3000) }), 1480, 10);
    expect(dp.process(late[0]!, 5000).verdict).toBe('FORWARD');
    expect(dp.process(late[1]!, 34_999).verdict).toBe('FORWARD');
    expect(dp.process(late[2]!, 35_001)).toMatchObject({ verdict: 'DROP', reason: 'fragment' });
  });

  it('iptables mode: the DNAT and masquerade the rules gave the first fragment apply to the rest', async () => {
    const dp = await FullDataplane.create({ nodeIPs: ['198.18.200.1'], seed: 1 });
    dp.iptablesRestore([
      '*nat', '-A PREROUTING -d 198.18.10.1/32 -p udp --dport 80 -j DNAT --to-destination 198.19.3.3:8080',
      '-A POSTROUTING -s 198.18.100.0/24 -j MASQUERADE', 'COMMIT', '',
    ].join('\n'));
    const q = buildPacket({ src: '198.18.100.5', dst: '198.18.10.1', proto: 'udp', sport: 5000, dport: 80, payload: big(4000) });
    const out = fragment(q, 1480, 0x4242).map((f, i) => dp.process(f, 1000 + i));
    expect(out.map((r) => r.verdict)).toEqual(['FORWARD', 'FORWARD', 'FORWARD']);
    for (const r of out) expect(decodePacket(r.packet!)).toMatchObject({ src: '198.18.200.1', dst: '198.19.3.3' });
    const sent = reassemble(out.map((r) => r.packet!));
    expect(checksumsValid(sent)).toBe(true);
    expect(decodePacket(sent)).toMatchObject({ dport: 8080 });
  });
});
