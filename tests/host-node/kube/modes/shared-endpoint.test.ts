// One client port, two Services, one endpoint behind both: the second connection's tuple after
// DNAT (client:port → endpoint) is the first one's. The kernel keeps both: at POSTROUTING the
// connection without a source NAT rule gets nf_nat_alloc_null_binding(), whose get_unique_tuple()
// moves the source port when the tuple is taken (nf_nat_core.c), so the endpoint sees the client
// from another port and its replies are told apart. A UDP client (a resolver asking two DNS
// Services backed by the same pod from one socket) meets this every time. In ipvs mode the
// connections get through the same way, but IPVS matches a reply to its connection by client and
// real server alone (ip_vs_conn_out_get(), newest connection first): once the second exists, the
// replies of both come back from its virtual address, in the kernel as here.
import { describe, expect, it } from 'vitest';
import { buildPacket, decodePacket } from '../../../../host-node/core/packet.js';
import { MODES, applyIn, dataplaneFor, docs, service, slice } from './harness.js';

const EP = '198.19.1.1';
const CLIENT = '198.19.9.9';
const VIPS = ['198.18.0.80', '198.18.0.81'];
const PORT = 40000;

const manifests = (proto: 'TCP' | 'UDP'): string => {
  const ports = [{ name: 'p', port: 53, targetPort: 8053, protocol: proto }];
  return docs(...VIPS.flatMap((vip, i) => [
    service(`s${i}`, { clusterIP: vip, ports }),
    slice(`s${i}`, [{ ip: EP }], ports),
  ]));
};

describe.each(MODES)('two Services, one endpoint, one client port (%s mode)', (mode) => {
  it.each(['TCP', 'UDP'] as const)('%s: both connections reach the endpoint and each reply returns through its own Service', async (proto) => {
    const dp = await dataplaneFor({});
    expect(applyIn(dp, mode, manifests(proto)).issues).toEqual([]);
    const p = proto === 'TCP' ? 'tcp' : 'udp';
    const sent = VIPS.map((vip, i) => {
      const r = dp.process(buildPacket({ src: CLIENT, dst: vip, proto: p, sport: PORT, dport: 53, ...(p === 'tcp' ? { flags: 'S' } : {}) }), 1000 + i);
      expect(r.verdict, `connection to ${vip}`).not.toBe('DROP');
      const out = decodePacket(r.packet!);
      expect([out.dst, out.dport, out.src]).toEqual([EP, 8053, CLIENT]);
      return out.sport;
    });
    // The first keeps its port; the second, whose tuple the first holds, is moved off it.
    expect(sent[0]).toBe(PORT);
    expect(sent[1]).not.toBe(PORT);
    const from = (i: number): string => (mode === 'ipvs' ? VIPS[1]! : VIPS[i]!);
    sent.forEach((sport, i) => {
      const r = dp.process(buildPacket({ src: EP, dst: CLIENT, proto: p, sport: 8053, dport: sport, ...(p === 'tcp' ? { flags: 'SA' } : {}) }), 1100 + i);
      expect(r.verdict).not.toBe('DROP');
      const back = decodePacket(r.packet!);
      expect([back.src, back.sport, back.dst, back.dport]).toEqual([from(i), 53, CLIENT, PORT]);
    });
  });
});

describe('the trace of the second connection (iptables mode)', () => {
  it('gives the endpoint with the source port moved, the first connection stored', async () => {
    const dp = await dataplaneFor({});
    applyIn(dp, 'iptables', manifests('UDP'));
    const q = { src: CLIENT, proto: 'udp' as const, sport: PORT, dport: 53 };
    const before = dp.trace({ ...q, dst: VIPS[1]!, nowMs: 900 });
    expect(before.outcomes.map((o) => [o.to, o.masq])).toEqual([[`${EP}:8053`, false]]);
    dp.process(buildPacket({ src: CLIENT, dst: VIPS[0]!, proto: 'udp', sport: PORT, dport: 53 }), 1000);
    const after = dp.trace({ ...q, dst: VIPS[1]!, nowMs: 1001 });
    expect(after.outcomes.map((o) => [o.verdict, o.to, o.masq])).toEqual([[before.outcomes[0]!.verdict, `${EP}:8053`, true]]);
  });
});
