// tracePacket(): the rules a packet visits and every outcome it can have with its exact
// probability — kube-proxy's 1/3, 1/2, rest endpoint chain gives three outcomes of 1/3 — forced
// decisions, session affinity read from the recent lists as they are, and a trace that changes
// no state (counters, recent lists, nth counters, limits, conntrack, the random stream).
import { describe, it, expect } from 'vitest';
import { Bench, tcp, udp, V } from '../../assembly/netfilter/harness';

const VIP = '198.19.0.10';
const EPS = ['198.18.1.1', '198.18.1.2', '198.18.1.3'];

function kubeProxy(affinity: boolean): string {
  const svc: string[] = [];
  const seps: string[] = [];
  const probs = ['0.33333333349', '0.50000000000'];
  EPS.forEach((ep, i) => {
    if (affinity) svc.push(`-A KUBE-SVC-WEB -m comment --comment "default/web:http -> ${ep}:8080" -m recent --name KUBE-SEP-${i} --rcheck --seconds 10800 --reap -j KUBE-SEP-${i}`);
  });
  EPS.forEach((ep, i) => {
    const stat = i < 2 ? ` -m statistic --mode random --probability ${probs[i]}` : '';
    svc.push(`-A KUBE-SVC-WEB -m comment --comment "default/web:http -> ${ep}:8080"${stat} -j KUBE-SEP-${i}`);
    seps.push(`-A KUBE-SEP-${i} -s ${ep}/32 -m comment --comment "default/web:http" -j KUBE-MARK-MASQ`);
    const rec = affinity ? ` -m recent --set --name KUBE-SEP-${i} --mask 255.255.255.255 --rsource` : '';
    seps.push(`-A KUBE-SEP-${i} -p tcp -m comment --comment "default/web:http"${rec} -m tcp -j DNAT --to-destination ${ep}:8080`);
  });
  return `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SVC-WEB - [0:0]
:KUBE-SEP-0 - [0:0]
:KUBE-SEP-1 - [0:0]
:KUBE-SEP-2 - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SERVICES -m comment --comment "default/web:http cluster IP" -d ${VIP}/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-WEB
-A KUBE-SVC-WEB ! -s 198.18.0.0/16 -d ${VIP}/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
${svc.join('\n')}
${seps.join('\n')}
COMMIT
`;
}

function bench(affinity = false): Bench {
  const b = new Bench();
  b.local('198.19.255.1');
  b.masq('198.19.255.1');
  b.restore(kubeProxy(affinity));
  return b;
}

describe('tracePacket', () => {
  it("kube-proxy's 1/3, 1/2, rest chain: three outcomes of 1/3 each, exactly summing to 1", () => {
    const b = bench();
    const t = b.trace(tcp('198.18.5.5', VIP, 40000, 80));
    expect(t.truncated).toBe(false);
    expect(t.outcomes.map((o) => o.to).sort()).toEqual(EPS.map((e) => `${e}:8080`));
    for (const o of t.outcomes) {
      expect(o.verdict).toBe('FORWARD');
      expect(o.masq).toBe(false);
      expect(o.probability).toBeCloseTo(1 / 3, 9);
    }
    // libxt_statistic: lround(0.33333333349 × 2^31) = 715827883; the first endpoint gets exactly that.
    const first = t.outcomes.find((o) => o.to === `${EPS[0]}:8080`)!;
    expect(first.exact).toEqual({ numerator: 715827883n, denominatorLog2: 31 });
    // Σ over outcomes of numerator / 2^k is exactly 1.
    const k = Math.max(...t.outcomes.map((o) => o.exact.denominatorLog2));
    const sum = t.outcomes.reduce((a, o) => a + (o.exact.numerator << BigInt(k - o.exact.denominatorLog2)), 0n);
    expect(sum).toBe(1n << BigInt(k));
    expect(t.outcomes.reduce((a, o) => a + o.probability, 0)).toBeCloseTo(1, 12);
  });

  it('lists the visited rules with their text, matches and targets', () => {
    const b = bench();
    const t = b.trace(tcp('198.18.5.5', VIP, 40000, 80));
    const svc = t.steps.find((s) => s.chain === 'KUBE-SERVICES' && s.matched)!;
    expect(svc.table).toBe('nat');
    expect(svc.hook).toBe('PREROUTING');
    expect(svc.target).toBe('jump KUBE-SVC-WEB');
    expect(svc.text).toContain('-A KUBE-SERVICES');
    expect(svc.text).toContain(`-d ${VIP}/32`);
    const masq = t.steps.find((s) => s.chain === 'KUBE-SVC-WEB' && s.rule === 0)!;
    expect(masq.matched).toBe(false);    // a pod source: not marked for masquerade
    const dnat = t.steps.find((s) => s.chain === 'KUBE-SEP-0' && s.matched)!;
    expect(dnat.target).toBe('DNAT');
    // The POSTROUTING side and the built-in chains' policies are there too.
    expect(t.steps.some((s) => s.chain === 'KUBE-POSTROUTING' && s.target === 'RETURN')).toBe(true);
    // filter FORWARD was never loaded: the empty built-in chain still decides, by its policy.
    expect(t.steps.some((s) => s.table === 'filter' && s.chain === 'FORWARD' && s.target === 'policy ACCEPT')).toBe(true);
    expect(t.steps.some((s) => s.chain === 'POSTROUTING' && s.hook === 'POSTROUTING')).toBe(true);
  });

  it('an outside client is masqueraded on every outcome', () => {
    const b = bench();
    const t = b.trace(tcp('198.19.99.1', VIP, 40000, 80));
    expect(t.outcomes).toHaveLength(3);
    for (const o of t.outcomes) expect(o.masq).toBe(true);
  });

  it('session affinity: with a recent entry the only outcome is that endpoint, probability 1', () => {
    const b = bench(true);
    const before = b.trace(tcp('198.18.5.5', VIP, 40000, 80));
    expect(before.outcomes).toHaveLength(3);
    // A real packet picks an endpoint and --set records the client.
    const r = b.send(tcp('198.18.5.5', VIP, 40001, 80), { now: 5000 });
    expect(r.verdict).toBe(V.FORWARD);
    const chosen = `${r.pkt.dst}:${r.pkt.dport}`;
    const after = b.trace(tcp('198.18.5.5', VIP, 40002, 80), { nowMs: 6000 });
    expect(after.outcomes).toHaveLength(1);
    expect(after.outcomes[0]!.to).toBe(chosen);
    expect(after.outcomes[0]!.probability).toBe(1);
    // Past --seconds the affinity is gone again.
    const later = b.trace(tcp('198.18.5.5', VIP, 40003, 80), { nowMs: 5000 + 10800 * 1000 + 1 });
    expect(later.outcomes).toHaveLength(3);
    // Another client is not affected.
    expect(b.trace(tcp('198.18.5.6', VIP, 40004, 80), { nowMs: 6000 }).outcomes).toHaveLength(3);
  });

  it('changes no state: counters, recent lists, conntrack, nth counters and the random stream', () => {
    const text = kubeProxy(true) + '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n' +
      '-A FORWARD -p udp -m statistic --mode nth --every 2 --packet 0 -j DROP\n' +
      '-A FORWARD -p udp -m limit --limit 1/hour --limit-burst 1 -j ACCEPT\nCOMMIT\n';
    const run = (withTraces: boolean) => {
      const b = new Bench({ seed: 3 });
      b.local('198.19.255.1');
      b.masq('198.19.255.1');
      b.restore(text);
      const seen: string[] = [];
      for (let i = 0; i < 30; i++) {
        if (withTraces) {
          b.trace(tcp(`198.18.6.${i % 5}`, VIP, 1000 + i, 80));
          b.trace(udp('198.18.6.1', '198.18.7.1', 9, 9));
        }
        const r = b.send(tcp(`198.18.6.${i % 5}`, VIP, 1000 + i, 80), { now: 1000 + i });
        const u = b.send(udp('198.18.6.1', '198.18.7.1', 9, 9), { now: 1000 + i });
        seen.push(`${r.pkt.dst}|${u.verdict}`);
      }
      const recent = [0, 1, 2].map((i) => b.x.iptRecentCount!(b.compiler.recentId(`KUBE-SEP-${i}`)!));
      return { seen, recent, ct: b.ctCount(), counters: b.counters(4, 'nat', 'KUBE-SVC-WEB'), stats: b.stat(0) };
    };
    const plain = run(false), traced = run(true);
    expect(traced.seen).toEqual(plain.seen);
    expect(traced.recent).toEqual(plain.recent);
    expect(traced.ct).toBe(plain.ct);
    expect(traced.counters).toEqual(plain.counters);
    expect(traced.stats).toBe(plain.stats);
  });

  it('forced decisions are honoured and the probability the core used is reported', () => {
    const b = bench();
    const t = b.trace(tcp('198.18.5.5', VIP, 40000, 80));
    const viaSecond = t.outcomes.find((o) => o.to === `${EPS[1]}:8080`)!;
    expect(viaSecond.paths).toHaveLength(1);
    const path = viaSecond.paths[0]!;
    expect(path.map((d) => d.taken)).toEqual([false, true]);
    expect(path[0]!.probability).toBeCloseTo(715827883 / 2 ** 31, 15);
    expect(path[1]!.probability).toBe(0.5);
    expect(path[0]!.chain).toBe('KUBE-SVC-WEB');
    expect(path[0]!.rule).toBe(1);
  });

  it('each outcome names the rules that made it: its own endpoint chain, the masquerade, what dropped it', () => {
    const b = bench();
    const where = (o: { decidedBy: { table: string; chain: string; rule: number; target?: string }[] }) =>
      o.decidedBy.map((s) => `${s.table}/${s.chain}#${s.rule} ${s.target}`);
    // From a pod: only the DNAT of the endpoint chain that outcome's path went through.
    const pod = b.trace(tcp('198.18.5.5', VIP, 40000, 80));
    expect(pod.outcomes).toHaveLength(3);
    for (const o of pod.outcomes) {
      const i = EPS.findIndex((e) => `${e}:8080` === o.to);
      expect(where(o)).toEqual([`nat/KUBE-SEP-${i}#1 DNAT`]);
      expect(o.decidedBy[0]!.text).toContain(`--to-destination ${EPS[i]}:8080`);
      expect(o.decidedBy[0]!.hook).toBe('PREROUTING');
    }
    // From outside: the DNAT, then KUBE-POSTROUTING's MASQUERADE.
    for (const o of b.trace(tcp('198.19.99.1', VIP, 40000, 80)).outcomes) {
      const i = EPS.findIndex((e) => `${e}:8080` === o.to);
      expect(where(o)).toEqual([`nat/KUBE-SEP-${i}#1 DNAT`, 'nat/KUBE-POSTROUTING#2 MASQUERADE']);
    }
    // A REJECT rule, a DROP rule and a DROP policy.
    const f = new Bench();
    f.local('198.18.0.2');
    f.restore('*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp --dport 22 -j REJECT --reject-with tcp-reset\n' +
      '-A INPUT -p tcp --dport 23 -m comment --comment "no telnet" -j DROP\n-A INPUT -p tcp --dport 80 -j ACCEPT\nCOMMIT\n');
    const one = (dport: number) => f.trace(tcp('198.18.0.1', '198.18.0.2', 1000, dport)).outcomes;
    expect(one(22).map(where)).toEqual([['filter/INPUT#0 REJECT']]);
    expect(one(23).map(where)).toEqual([['filter/INPUT#1 DROP']]);
    expect(one(23)[0]!.decidedBy[0]!.text).toBe('-A INPUT -p tcp --dport 23 -m comment --comment "no telnet" -j DROP');
    const policy = one(24)[0]!;
    expect(policy.verdict).toBe('DROP');
    expect(where(policy)).toEqual(['filter/INPUT#3 policy DROP']);
    expect(policy.decidedBy[0]!.text).toBeUndefined();
    // Accepted untouched: nothing decided where it goes.
    expect(one(80).map(where)).toEqual([[]]);
  });

  it('a packet of a connection the table holds: that connection\'s NAT, no nat rule consulted, and it says so', () => {
    const b = bench();
    const fresh = b.trace(tcp('198.18.5.5', VIP, 40000, 80), { nowMs: 1000 });
    expect(fresh.outcomes.map((o) => [o.existing, o.ctstate])).toEqual([[false, 'NEW'], [false, 'NEW'], [false, 'NEW']]);
    const sent = b.send(tcp('198.18.5.5', VIP, 40000, 80), { now: 1000 });
    const to = `${sent.pkt.dst}:${sent.pkt.dport}`;
    // The SYN again (a retransmission): still NEW, but the stored connection decides.
    const again = b.trace(tcp('198.18.5.5', VIP, 40000, 80), { nowMs: 1001 });
    expect(again.outcomes.map((o) => [o.to, o.existing, o.ctstate, o.decidedBy])).toEqual([[to, true, 'NEW', []]]);
    expect(again.steps.some((s) => s.table === 'nat')).toBe(false);
    // Once the endpoint has answered, the client's next segment is ESTABLISHED.
    b.send(tcp(sent.pkt.dst, '198.18.5.5', sent.pkt.dport, 40000, 'SA'), { now: 1002 });
    const est = b.trace(tcp('198.18.5.5', VIP, 40000, 80, 'A'), { nowMs: 1003 });
    expect(est.outcomes.map((o) => [o.to, o.existing, o.ctstate])).toEqual([[to, true, 'ESTABLISHED']]);
  });

  it('a verdict without randomness is one outcome of probability 1; REJECT is a REPLY', () => {
    const b = new Bench();
    b.local('198.18.0.2');
    b.restore('*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 22 -j REJECT --reject-with tcp-reset\nCOMMIT\n');
    const t = b.trace(tcp('198.18.0.1', '198.18.0.2', 1000, 22));
    expect(t.outcomes).toHaveLength(1);
    expect(t.outcomes[0]!.verdict).toBe('REPLY');
    expect(t.outcomes[0]!.probability).toBe(1);
    const pass = b.trace(tcp('198.18.0.1', '198.18.0.2', 1000, 23));
    expect(pass.outcomes[0]!.verdict).toBe('PASS');
    expect(pass.steps.at(-1)!.target).toBe('policy ACCEPT');
  });
});

describe('a Service with more endpoints than the trace records decisions', () => {
  it('lists the endpoints it explored at their share, leaves the unexplored rest out, and says it was cut short', async () => {
    const { Dataplane } = await import('../../../host-node/dataplane.js');
    const n = 300;
    const svc: string[] = [];
    const seps: string[] = [];
    for (let i = 0; i < n; i++) {
      const stat = i < n - 1 ? ` -m statistic --mode random --probability ${(1 / (n - i)).toFixed(11)}` : '';
      svc.push(`-A KUBE-SVC-BIG${stat} -j KUBE-SEP-${i}`);
      seps.push(`:KUBE-SEP-${i} - [0:0]`, `-A KUBE-SEP-${i} -p tcp -m tcp -j DNAT --to-destination 198.18.${2 + (i >> 8)}.${i & 255}:8080`);
    }
    const text = ['*nat', ':PREROUTING ACCEPT [0:0]', ':KUBE-SVC-BIG - [0:0]', ...seps.filter((l) => l.startsWith(':')),
      `-A PREROUTING -d ${VIP}/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-BIG`, ...svc, ...seps.filter((l) => l.startsWith('-A')), 'COMMIT', ''].join('\n');
    const dp = await Dataplane.create({ nodeIPs: ['198.18.0.1'], seed: 1 });
    dp.iptablesRestore(text);
    const t = dp.trace({ src: '198.18.50.1', dst: VIP, proto: 'tcp', sport: 1000, dport: 80 });
    expect(t.truncated).toBe(true);
    expect(t.outcomes.length).toBeGreaterThan(200);
    expect(t.outcomes.length).toBeLessThan(n);
    for (const o of t.outcomes) expect(o.probability).toBeCloseTo(1 / n, 6);
    expect(t.outcomes.reduce((s, o) => s + o.probability, 0)).toBeLessThan(1);
  });
});
