// A resolver asks for A and AAAA at once from one UDP socket (glibc does by default): two
// datagrams with one 5-tuple, microseconds apart. In the kernel both can be NEW before either is
// confirmed; each walks the rules, may pick another endpoint, and the second then loses the
// conntrack insert and is dropped — the 5-second DNS timeouts of kubernetes/kubernetes#56903. In
// every mode of svcplane the first datagram's connection is in the table before the second is
// looked up, even inside one batch: the pair takes one connection and one endpoint, nothing is
// dropped, and both answers come back from the Service address.
import { describe, expect, it } from 'vitest';
import { buildPacket, decodePacket } from '../../../../host-node/core/packet.js';
import { MODES, applyIn, dataplaneFor, docs, service, slice } from './harness.js';

const DNS_VIP = '198.18.0.10';
const EPS = ['198.19.1.1', '198.19.1.2', '198.19.1.3'];
const CLIENTS = 120;
const client = (i: number): string => `198.19.${100 + (i >> 8)}.${(i & 255) + 1}`;
const SPORT = 53000;

/** A DNS query for `name` of `type` (1 = A, 28 = AAAA) with id `id`. */
function query(id: number, name: string, type: number): Uint8Array {
  const labels = name.split('.').flatMap((l) => [l.length, ...new TextEncoder().encode(l)]);
  return new Uint8Array([id >> 8, id & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, ...labels, 0, 0, type, 0, 1]);
}

const manifests = docs(
  service('kube-dns', { clusterIP: DNS_VIP, ports: [{ name: 'dns', port: 53, targetPort: 53, protocol: 'UDP' }] }),
  slice('kube-dns', EPS.map((ip) => ({ ip })), [{ name: 'dns', port: 53, targetPort: 53, protocol: 'UDP' }]),
);

describe.each(MODES)('A and AAAA from one socket in one batch (%s mode)', (mode) => {
  it('one connection and one endpoint per socket, no datagram dropped, both answers from the Service', async () => {
    const dp = await dataplaneFor({});
    expect(applyIn(dp, mode, manifests).issues).toEqual([]);
    const ask = (i: number, type: number) =>
      buildPacket({ src: client(i), dst: DNS_VIP, proto: 'udp', sport: SPORT + (i % 7), dport: 53, payload: query(i, 'web.default.svc.cluster.local', type) });
    // Each client's two queries back to back, and (for the rest) all A queries, then all AAAA.
    const order: [number, number][] = [];
    for (let i = 0; i < CLIENTS / 2; i++) order.push([i, 1], [i, 28]);
    for (let i = CLIENTS / 2; i < CLIENTS; i++) order.push([i, 1]);
    for (let i = CLIENTS / 2; i < CLIENTS; i++) order.push([i, 28]);
    const before = dp.stats();
    const results = dp.processBatch(order.map(([i, t]) => ask(i, t)), 1000);

    const endpointOf = new Map<number, string[]>();
    results.forEach((r, k) => {
      const [i] = order[k]!;
      expect(r.verdict, `client ${i}`).toBe('FORWARD');
      const out = decodePacket(r.packet!);
      expect([out.src, out.sport, out.dport]).toEqual([client(i), SPORT + (i % 7), 53]);
      endpointOf.set(i, [...(endpointOf.get(i) ?? []), out.dst]);
    });
    for (const [i, eps] of endpointOf) expect(eps, `client ${i}`).toEqual([eps[0], eps[0]]);
    // The choice is still random across sockets: every endpoint gets some.
    expect(new Set([...endpointOf.values()].map((e) => e[0]))).toEqual(new Set(EPS));
    const after = dp.stats();
    expect(after.verdict_drop).toBe(before.verdict_drop);
    expect(after.conntrack_new! - before.conntrack_new!).toBe(CLIENTS);
    expect(after.conntrack_hit! - before.conntrack_hit!).toBe(CLIENTS);
    const flows = dp.conntrack().filter((c) => c.proto === 'udp' && c.original.dst === DNS_VIP);
    expect(flows).toHaveLength(CLIENTS);

    // Both answers of each socket are un-NATed back to the Service address.
    const answers = [...endpointOf].flatMap(([i, eps]) => eps.map((ep) =>
      buildPacket({ src: ep, dst: client(i), proto: 'udp', sport: 53, dport: SPORT + (i % 7), payload: new Uint8Array(12) })));
    for (const r of dp.processBatch(answers, 1001)) {
      expect(r.verdict).toBe('FORWARD');
      const back = decodePacket(r.packet!);
      expect([back.src, back.sport]).toEqual([DNS_VIP, 53]);
    }
  });
});
