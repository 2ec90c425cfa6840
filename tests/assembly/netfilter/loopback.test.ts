// A packet the node sends to itself: after OUTPUT and POSTROUTING it is looped back through lo
// and meets raw/mangle PREROUTING and mangle/filter INPUT, as in a kernel (ip_output →
// loopback_xmit → ip_rcv → ip_local_deliver). Its connection is confirmed before INPUT and no nat
// chain runs a second time. A packet the node sends elsewhere never meets INPUT.
import { describe, it, expect } from 'vitest';
import { Bench, tcp, V, CT } from './harness';

const NODE = '198.19.255.1';
const POD = '198.18.2.5';

function bench(nat = ''): Bench {
  const b = new Bench();
  b.local(NODE);
  b.masq(NODE);
  b.restore(`*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:SEEN - [0:0]
-A PREROUTING -j SEEN
-A INPUT -j SEEN
${nat}
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp --dport 30000 -j DROP
-A INPUT -p tcp --dport 30001 -j ACCEPT
COMMIT
`);
  return b;
}

describe('locally generated packets addressed to the node', () => {
  it('meet filter INPUT: a DROP rule there drops them', () => {
    const b = bench();
    expect(b.send(tcp(NODE, NODE, 40000, 30000), { local: true }).verdict).toBe(V.DROP);
    expect(b.send(tcp(NODE, NODE, 40000, 30002), { local: true }).verdict).toBe(V.PASS);
    expect(b.send(tcp(NODE, '127.0.0.1', 40001, 30000), { local: true }).verdict).toBe(V.DROP);
    expect(b.counters(4, 'filter', 'INPUT')[0]![0]).toBe(2n);
  });

  it('do not when sent elsewhere', () => {
    const b = bench();
    expect(b.send(tcp(NODE, '198.19.7.7', 40000, 30000), { local: true }).verdict).toBe(V.PASS);
    expect(b.counters(4, 'filter', 'INPUT')[0]![0]).toBe(0n);
  });

  it('are judged in INPUT by their destination after nat OUTPUT', () => {
    // DNAT to the node itself: looped back; DNAT to a pod: routed away, INPUT never sees it.
    const b = bench(`:KUBE - [0:0]\n-A OUTPUT -j KUBE\n-A KUBE -p tcp --dport 80 -j DNAT --to-destination ${NODE}:30000\n` +
      `-A KUBE -p tcp --dport 81 -j DNAT --to-destination ${POD}:30000`);
    expect(b.send(tcp(NODE, '198.19.0.10', 40000, 80), { local: true }).verdict).toBe(V.DROP);
    const away = b.send(tcp(NODE, '198.19.0.10', 40001, 81), { local: true });
    expect(away.verdict).toBe(V.FORWARD);
    expect(away.pkt.dst).toBe(POD);
  });

  it('keep the connection confirmed in POSTROUTING even when INPUT drops them, and run no nat chain again', () => {
    const b = bench();
    expect(b.send(tcp(NODE, NODE, 40000, 30000), { local: true }).verdict).toBe(V.DROP);
    expect(b.ctCount()).toBe(1);                   // ipv4_confirm ran before the loop
    const seen = b.counters(4, 'nat', 'SEEN');
    expect(seen[seen.length - 1]![0]).toBe(0n);    // nat PREROUTING / INPUT chains never ran
    const ok = b.send(tcp(NODE, NODE, 40002, 30001), { local: true });
    expect(ok.verdict).toBe(V.PASS);
    expect(ok.ctstate).toBe(CT.NEW);
  });

  it('show the loop in a trace: filter INPUT after POSTROUTING, with the ACCEPT that decided', () => {
    const b = bench();
    const t = b.trace(tcp(NODE, NODE, 40000, 30001), { meta: 1 });
    const hooks = t.steps.map((s) => `${s.table}/${s.hook}`);
    expect(hooks.indexOf('filter/INPUT')).toBeGreaterThan(hooks.lastIndexOf('nat/POSTROUTING'));
    const accept = t.steps.find((s) => s.table === 'filter' && s.chain === 'INPUT' && s.matched);
    expect(accept?.target).toBe('ACCEPT');
    expect(accept?.rule).toBe(1);
  });
});
