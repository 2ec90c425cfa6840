// The O(1) dispatch: random chains with indexable runs (exact protocol / destination / port rules)
// mixed with rules that are not, jumps that come back into the middle of a run, and packets that
// hit, miss and hit late — verdicts, marks, counters and trace steps must be identical with the
// index on and off. And the cost of finding a service must not grow with the number of services.
import { describe, it, expect } from 'vitest';
import { buildPacket, type PacketSpec } from '../../../host-node/core/packet';
import { Bench, V, blob, stage, type RuleSpec } from './harness';
import { M, T } from '../../../host-node/netfilter/compile';

// A small deterministic generator (xorshift32).
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return (n: number) => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s % n;
  };
}

interface Gen { text: string; packets: PacketSpec[] }

// `allDst`: every indexable rule names its destination (the index is then probed once per packet);
// `longTargets`: targets of more than two op words (MARK) among them, which the index cannot hold
// in its slot.
function generate(seed: number, opts: { allDst?: boolean; longTargets?: boolean } = {}): Gen {
  const r = rng(seed);
  const protos = ['tcp', 'udp', 'sctp'] as const;
  const keys: { proto: (typeof protos)[number]; dst: string | null; port: number }[] = [];
  const lines: string[] = [];
  const chains = ['M1', 'M2', 'M3'];
  const n = 20 + r(60);
  for (let i = 0; i < n; i++) {
    const kind = r(10);
    const proto = protos[r(3)]!;
    const port = 1 + r(12);
    const dst = r(3) === 0 && !opts.allDst ? null : `198.19.0.${1 + r(6)}`;
    const targets = ['-j ACCEPT', '-j DROP', '-j RETURN', `-j ${chains[r(3)]}`, '', '-j M1', '-j M2'];
    if (opts.longTargets) targets.push('-j MARK --set-xmark 0x2/0x2', '-j MARK --set-xmark 0x1/0x1');
    const target = targets[r(targets.length)]!;
    if (kind < 7) {
      keys.push({ proto, dst, port });
      lines.push(`-A SVC ${dst ? `-d ${dst}/32 ` : ''}-p ${proto} -m ${proto} --dport ${port} -m comment --comment "svc ${i}" ${target}`);
    } else if (kind === 7) {
      lines.push(`-A SVC -s 198.18.${r(2)}.0/24 -p ${proto} -m ${proto} --dport ${port} ${target}`);
    } else if (kind === 8) {
      lines.push(`-A SVC -p ${proto} -m ${proto} --dport ${port}:${port + r(3)} ${target}`);
    } else {
      lines.push(`-A SVC ! -d 198.19.0.${1 + r(6)}/32 -p ${proto} -m ${proto} --dport ${port} ${target}`);
    }
  }
  const text = `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:SVC - [0:0]\n:M1 - [0:0]\n:M2 - [0:0]\n:M3 - [0:0]\n` +
    `-A FORWARD -j SVC\n-A FORWARD -m mark --mark 0x2/0x2 -j ACCEPT\n${lines.join('\n')}\n` +
    `-A M1 -j MARK --set-xmark 0x1/0x1\n-A M2 -j MARK --set-xmark 0x2/0x2\n-A M2 -j RETURN\n-A M3 -p udp -j DROP\nCOMMIT\n`;
  const packets: PacketSpec[] = [];
  for (let k = 0; k < 40; k++) {
    const key = keys[r(keys.length)];
    const proto = key && r(4) !== 0 ? key.proto : protos[r(3)]!;
    const dport = key && r(4) !== 0 ? key.port : 1 + r(14);
    const dst = key?.dst && r(3) !== 0 ? key.dst : `198.19.0.${1 + r(7)}`;
    packets.push({ src: `198.18.${r(3)}.${1 + r(9)}`, dst, proto, sport: 1000 + k, dport, flags: 'S' });
  }
  return { text, packets };
}

describe('dispatch index equivalence', () => {
  const variants: [string, { allDst?: boolean; longTargets?: boolean }][] = [
    ['mixed keys', {}],
    ['every key with a destination, MARK targets', { allDst: true, longTargets: true }],
    ['mixed keys, MARK targets', { longTargets: true }],
  ];
  it.each(variants)('random rulesets (%s): identical verdicts, marks, counters and trace steps with the index on and off', (_name, opts) => {
    for (let seed = 1; seed <= 25; seed++) {
      const g = generate(seed, opts);
      const on = new Bench(), off = new Bench();
      on.restore(g.text, { compile: { dispatch: true } });
      off.restore(g.text, { compile: { dispatch: false } });
      for (const p of g.packets) {
        const a = on.trace(p), b = off.trace(p);
        expect(a.steps).toEqual(b.steps);
        expect(a.outcomes.map((o) => [o.verdict, o.mark])).toEqual(b.outcomes.map((o) => [o.verdict, o.mark]));
        const x = on.send(p), y = off.send(p);
        expect([x.verdict, x.mark, x.reason]).toEqual([y.verdict, y.mark, y.reason]);
      }
      expect(on.counters(4, 'filter', 'SVC')).toEqual(off.counters(4, 'filter', 'SVC'));
    }
  });

  it('the index really is used: a rule outside any run still stops the walk in order', () => {
    const text = '*filter\n:FORWARD ACCEPT [0:0]\n:S - [0:0]\n-A FORWARD -j S\n' +
      '-A S -d 198.19.0.1/32 -p tcp --dport 80 -j ACCEPT\n-A S -d 198.19.0.2/32 -p tcp --dport 80 -j ACCEPT\n' +
      '-A S -p tcp --dport 81 -j ACCEPT\n-A S -d 198.19.0.3/32 -p tcp --dport 80 -j ACCEPT\n' +
      '-A S -p tcp --dport 80:81 -j DROP\n-A S -d 198.19.0.9/32 -p tcp --dport 80 -j REJECT --reject-with tcp-reset\nCOMMIT\n';
    const b = new Bench();
    b.restore(text);
    const t = b.trace({ src: '198.18.0.1', dst: '198.19.0.9', proto: 'tcp', sport: 1, dport: 80 });
    const s = t.steps.filter((x) => x.chain === 'S');
    expect(s.map((x) => [x.rule, x.matched])).toEqual([[0, false], [1, false], [2, false], [3, false], [4, true]]);
    expect(s[4]!.target).toBe('DROP');
  });
});

describe('dispatch cost', () => {
  const FORWARD4 = 3 * 5 + 2;
  const vipWord = (i: number) => (198 | (19 << 8) | (((i >> 8) & 255) << 16) | ((i & 255) << 24)) >>> 0;

  // KUBE-SERVICES as kube-proxy writes it: one exact (destination, tcp, port) rule per service,
  // then the nodeport catch-all. Staged as blobs directly (the text parser is not under test here).
  function services(n: number, index = true): Bench {
    const b = new Bench();
    const rules: RuleSpec[] = [];
    for (let i = 0; i < n; i++) {
      rules.push({ m: [[M.DST, 0, vipWord(i), 0, 0, 0, 0xffffffff, 0, 0, 0], [M.PROTO, 0, 6], [M.DPORT, 0, 80 | (80 << 16)]], t: [T.ACCEPT, 0] });
    }
    rules.push({ m: [[M.ADDRTYPE, 0, 4 << 16, 0]], t: [T.ACCEPT, 0] });
    expect(stage(b, 40, blob(4, 3, rules, index ? 1 : 0))).toBe(0);
    expect(stage(b, FORWARD4, blob(4, 3, [{ t: [T.JUMP, 0, 40] }]))).toBe(0);
    expect(b.x.iptSetPolicy!(FORWARD4, 1)).toBe(0);
    expect(b.x.iptCommit!()).toBe(0);
    return b;
  }

  function nsPerPacket(b: Bench, p: Uint8Array, packets = 4000, rounds = 5): number {
    const at = b.core.scratch;
    const run = b.x.run!;
    const best: number[] = [];
    b.core.put(p, at);
    for (let round = 0; round < rounds; round++) {
      const t0 = performance.now();
      for (let i = 0; i < packets; i++) run(at, p.length, 256, 0, 1000 + i);
      best.push(((performance.now() - t0) * 1e6) / packets);
    }
    return Math.min(...best);
  }

  const last = (n: number) => buildPacket({ src: '198.18.0.1', dst: `198.19.${((n - 1) >> 8) & 255}.${(n - 1) & 255}`, proto: 'tcp', sport: 5, dport: 80, flags: 'A' });

  it('is flat from 1 to 30,000 services (packets to the last one)', () => {
    const small = services(1), big = services(30000);
    expect(big.send(last(30000)).verdict).toBe(V.PASS);
    const id = 40;
    const dv = big.core.dv();
    expect(dv.getBigUint64((big.x.iptCounters!(id) >>> 0) + 29999 * 16, true)).toBe(1n);
    expect(big.send(buildPacket({ src: '198.18.0.1', dst: '198.19.200.200', proto: 'tcp', sport: 5, dport: 80, flags: 'A' })).verdict).toBe(V.DROP);
    const a = nsPerPacket(small, last(1));
    const b = nsPerPacket(big, last(30000));
    expect(b).toBeLessThan(a * 3 + 500);
  });

  it('(without the index the same lookup walks every rule: the index is what makes it flat)', () => {
    const linear = services(30000, false), indexed = services(30000, true);
    const p = last(30000);
    expect(linear.send(p).verdict).toBe(V.PASS);
    const slow = nsPerPacket(linear, p, 100, 2), fast = nsPerPacket(indexed, p);
    expect(slow).toBeGreaterThan(fast * 5);
  });
});
