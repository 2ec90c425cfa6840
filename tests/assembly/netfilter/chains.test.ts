// Chain semantics (jump, goto, return, policies, fall-through, counters, the jump-depth cap) and
// the staging protocol: validation codes naming rule and op, atomic multi-chain commit, reference
// counts on delete, policies, and the compiler's stable, reused chain ids.
import { describe, it, expect } from 'vitest';
import { Bench, filterWith, tcp, udp, V, IS, blob, stage, type RuleSpec } from './harness';
import { M, T, loadRestore, IptLoadError } from '../../../host-node/netfilter/compile';
import { parseRestore } from '../../../host-node/netfilter/restore';

const decode = (code: number) => ({ kind: -code & 63, op: (-code >>> 6) & 63, rule: (-code >>> 12) - 1 });
const FILTER = 3, NAT = 2;
const INPUT4 = 3 * 5 + 1;   // filter INPUT, IPv4

describe('jump, goto, return, policy', () => {
  const text = filterWith(
    '-A TEST -p udp --dport 1 -j RETURN\n-A TEST -p udp --dport 2 -j DROP\n-A TEST -p udp --dport 3 -g G\n' +
    '-A TEST -p udp --dport 4 -j H\n-A TEST -p udp --dport 4 -j ACCEPT\n-A TEST -p udp\n' +
    '-A G -p udp --dport 3 -j RETURN\n-A H -g G\n-A INPUT -p udp --dport 3 -j ACCEPT\n-A INPUT -p udp -j ACCEPT',
    'DROP', ':G - [0:0]\n:H - [0:0]\n',
  );
  const u = (port: number) => udp('198.18.0.1', '198.18.0.2', 9, port);

  it('RETURN and falling off a user chain resume after the jump; policy decides at the end', () => {
    const b = new Bench();
    b.local('198.18.0.2');
    b.restore(text);
    expect(b.send(u(1)).verdict).toBe(V.PASS);     // RETURN → INPUT rule "udp -j ACCEPT"
    expect(b.send(u(2)).verdict).toBe(V.DROP);
    expect(b.send(u(5)).verdict).toBe(V.PASS);     // falls off TEST
    expect(b.send(tcp('198.18.0.1', '198.18.0.2', 9, 9)).verdict).toBe(V.DROP);   // policy DROP
    const input = b.counters(4, 'filter', 'INPUT');
    expect(input[input.length - 1]![0]).toBe(1n);   // the policy counter
  });

  it('GOTO does not come back: RETURN from the goto target ends the calling chain', () => {
    const b = new Bench();
    b.local('198.18.0.2');
    b.restore(text);
    // dport 3: TEST -g G, G RETURNs → back to INPUT after "-j TEST" (not to TEST).
    expect(b.send(u(3)).verdict).toBe(V.PASS);
    const testC = b.counters(4, 'filter', 'TEST');
    expect(testC[5]![0]).toBe(0n);                // TEST's later rules never saw it
    expect(b.counters(4, 'filter', 'INPUT')[1]![0]).toBe(1n);   // "-A INPUT -p udp --dport 3 -j ACCEPT"
    // dport 4: TEST -j H, H -g G, G falls off → back into TEST after the jump to H.
    expect(b.send(u(4)).verdict).toBe(V.PASS);
    expect(b.counters(4, 'filter', 'TEST')[4]![0]).toBe(1n);
  });

  it('a rule without target counts and continues; counters hold bytes', () => {
    const b = new Bench();
    b.local('198.18.0.2');
    b.restore(text);
    const p = u(9);
    b.send(p);
    const c = b.counters(4, 'filter', 'TEST');
    expect(c[5]![0]).toBe(1n);
    expect(c[5]![1]).toBe(28n);
  });

  function depthRules(n: number): string {
    let chains = '', rules = '-A TEST -j C1\n';
    for (let i = 1; i <= n; i++) {
      chains += `:C${i} - [0:0]\n`;
      rules += i < n ? `-A C${i} -j C${i + 1}\n` : `-A C${i} -j DROP\n`;
    }
    return filterWith(rules, 'ACCEPT', chains);
  }

  it('256 nested jumps are fine (a loop-free table deeper than nf_tables\' 16, as iptables-legacy takes it); the 257th drops and is counted', () => {
    const b = new Bench();
    b.local('198.18.0.2');
    b.restore(depthRules(255));   // INPUT → TEST → C1 … C255: 256 jumps
    expect(b.send(u(1)).verdict).toBe(V.DROP);
    expect(b.stat(IS.DEPTH_DROPS)).toBe(0n);
    const c = new Bench();
    c.local('198.18.0.2');
    c.restore(depthRules(256));
    const r = c.send(u(1));
    expect(r.verdict).toBe(V.DROP);
    expect(c.stat(IS.DEPTH_DROPS)).toBe(1n);
  });

  it('a reversed udp or conntrack port range (accepted by the kernel) never matches; inverted, always', () => {
    const b = new Bench();
    b.local('198.18.0.2');
    b.restore(filterWith('-A TEST -p udp --dport 500:100 -j DROP\n-A TEST -m conntrack --ctorigdstport 500:100 -j DROP\n-A TEST -p udp ! --sport 65000:1 -j RETURN\n-A TEST -j DROP'));
    for (const port of [100, 300, 500]) expect(b.send(u(port)).verdict).toBe(V.PASS);
  });

  it('MARK sets the mark a later mark match reads', () => {
    const b = new Bench();
    b.local('198.18.0.2');
    b.restore(filterWith('-A TEST -j MARK --set-xmark 0x4000/0xffffffff\n-A TEST -m mark --mark 0x4000 -j DROP'));
    const r = b.send(u(1));
    expect(r.verdict).toBe(V.DROP);
    expect(r.mark).toBe(0x4000);
  });
});

describe('staging validation', () => {
  const ok: RuleSpec[] = [{ m: [[M.PROTO, 0, 17]], t: [T.DROP, 0] }];

  it('accepts a good blob and refuses bad ones with the rule and op at fault', () => {
    const b = new Bench();
    expect(stage(b, 40, blob(4, FILTER, ok))).toBe(0);
    b.x.iptAbort!();
    const bad = blob(4, FILTER, ok);
    bad[0] = 0;
    expect(decode(stage(b, 40, bad)).kind).toBe(1);
    expect(decode(stage(b, 40, blob(4, FILTER, ok).slice(0, 40))).kind).toBe(3);
    const unknown = decode(stage(b, 40, blob(4, FILTER, [{ t: [T.ACCEPT, 0] }, { m: [[M.PROTO, 0, 6], [55, 0]], t: [T.DROP, 0] }])));
    expect(unknown).toEqual({ kind: 8, op: 1, rule: 1 });
    expect(decode(stage(b, 40, blob(4, FILTER, [{ m: [[M.PROTO, 0, 300]] }])))).toEqual({ kind: 9, op: 0, rule: 0 });
    expect(decode(stage(b, 40, blob(4, FILTER, [{ m: [[M.LIMIT, 1, 100, 5, 0]] }]))).kind).toBe(10);
    expect(decode(stage(b, 40, blob(4, FILTER, [{ t: [T.DNAT, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0] }]))).kind).toBe(11);
    expect(decode(stage(b, 40, blob(4, FILTER, [{ t: [T.JUMP, 0, INPUT4] }]))).kind).toBe(14);
    // an address not clean for IPv4, two targets
    expect(decode(stage(b, 40, blob(4, FILTER, [{ m: [[M.SRC, 0, 1, 1, 0, 0, 0xffffffff, 0, 0, 0]] }]))).kind).toBe(9);
    expect(decode(stage(b, 40, blob(4, FILTER, [{ t: [T.ACCEPT, 0], t2: [T.DROP, 0] }])))).toEqual({ kind: 7, op: 1, rule: 0 });
    // a match in the target position
    expect(decode(stage(b, 40, blob(4, FILTER, [{ t: [M.PROTO, 0, 6] }]))).kind).toBe(8);
    // a built-in id with the wrong table
    expect(decode(stage(b, INPUT4, blob(4, NAT, ok))).kind).toBe(12);
    expect(b.x.iptRuleCount!(40)).toBe(-1);
  });

  it('never traps on random bytes', () => {
    const b = new Bench();
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    for (let i = 0; i < 300; i++) {
      const good = blob(4, FILTER, [{ m: [[M.PROTO, 0, 6], [M.DPORT, 0, 80 | (80 << 16)]], t: [T.ACCEPT, 0] }, { t: [T.JUMP, 0, 41] }]);
      for (let k = 0; k < 3; k++) good[rnd() % good.length] = rnd();
      const r = stage(b, 40, good);
      expect(r <= 0).toBe(true);
    }
    b.x.iptAbort!();
  });
});

describe('commit', () => {
  const drop: RuleSpec[] = [{ m: [[M.PROTO, 0, 17]], t: [T.DROP, 0] }];
  const toUser = (id: number): RuleSpec[] => [{ t: [T.JUMP, 0, id] }];

  it('a chain jumping to itself is staged (the host refuses the loops hooks reach); a packet that meets one ends at the depth cap, counted', () => {
    const b = new Bench();
    b.local('198.18.0.2');
    expect(stage(b, 40, blob(4, FILTER, [{ m: [[M.PROTO, 0, 17]], t: [T.JUMP, 0, 40] }]))).toBe(0);
    expect(b.x.iptCommit!()).toBe(0);
    expect(b.send(udp('198.18.0.1', '198.18.0.2', 1, 2)).verdict).toBe(V.PASS);
    expect(stage(b, INPUT4, blob(4, FILTER, toUser(40)))).toBe(0);
    expect(b.x.iptCommit!()).toBe(0);
    expect(b.send(udp('198.18.0.1', '198.18.0.2', 1, 2)).verdict).toBe(V.DROP);
    expect(b.stat(IS.DEPTH_DROPS)).toBe(1n);
  });

  it('a dangling jump fails the whole commit and leaves the live tables as they were', () => {
    const b = new Bench();
    b.local('198.18.0.2');
    expect(stage(b, 40, blob(4, FILTER, drop))).toBe(0);
    expect(stage(b, INPUT4, blob(4, FILTER, toUser(40)))).toBe(0);
    expect(b.x.iptCommit!()).toBe(0);
    expect(b.send(udp('198.18.0.1', '198.18.0.2', 1, 2)).verdict).toBe(V.DROP);
    // Stage a replacement of INPUT (accept all), a new chain 41, and chain 42 jumping to missing 43.
    expect(stage(b, INPUT4, blob(4, FILTER, [{ t: [T.ACCEPT, 0] }]))).toBe(0);
    expect(stage(b, 41, blob(4, FILTER, [{ t: [T.ACCEPT, 0] }]))).toBe(0);
    expect(stage(b, 42, blob(4, FILTER, [{ t: [T.ACCEPT, 0] }, { t: [T.JUMP, 0, 43] }]))).toBe(0);
    const code = b.x.iptCommit!();
    expect(decode(code)).toEqual({ kind: 15, op: 0, rule: 1 });
    const err = new DataView(b.core.memory.buffer, b.x.iptLastError!() >>> 0, 20);
    expect(err.getUint32(4, true)).toBe(42);
    expect(err.getUint32(16, true)).toBe(43);
    expect(b.x.iptRuleCount!(41)).toBe(-1);
    expect(b.send(udp('198.18.0.1', '198.18.0.2', 1, 2)).verdict).toBe(V.DROP);
    // The stage was discarded: committing now changes nothing.
    expect(b.x.iptCommit!()).toBe(0);
    expect(b.send(udp('198.18.0.1', '198.18.0.2', 1, 2)).verdict).toBe(V.DROP);
  });

  it('a jump into another table is refused at commit', () => {
    const b = new Bench();
    expect(stage(b, 40, blob(4, NAT, [{ t: [T.ACCEPT, 0] }]))).toBe(0);
    expect(stage(b, 41, blob(4, FILTER, toUser(40)))).toBe(0);
    expect(decode(b.x.iptCommit!()).kind).toBe(16);
  });

  it('reference counts: a referenced chain cannot go; it can in the commit that drops the reference', () => {
    const b = new Bench();
    b.local('198.18.0.2');
    expect(stage(b, 40, blob(4, FILTER, drop))).toBe(0);
    expect(stage(b, 41, blob(4, FILTER, [...toUser(40), ...toUser(40)]))).toBe(0);
    expect(stage(b, INPUT4, blob(4, FILTER, toUser(41)))).toBe(0);
    expect(b.x.iptCommit!()).toBe(0);
    expect(b.x.iptRefCount!(40)).toBe(2);
    expect(b.x.iptRefCount!(41)).toBe(1);
    expect(b.x.iptStageDelete!(40)).toBe(0);
    expect(decode(b.x.iptCommit!()).kind).toBe(17);
    expect(b.x.iptRuleCount!(40)).toBe(1);
    expect(b.send(udp('198.18.0.1', '198.18.0.2', 1, 2)).verdict).toBe(V.DROP);
    expect(stage(b, 41, blob(4, FILTER, [{ t: [T.RETURN, 0] }]))).toBe(0);
    expect(b.x.iptStageDelete!(40)).toBe(0);
    expect(b.x.iptCommit!()).toBe(0);
    expect(b.x.iptRuleCount!(40)).toBe(-1);
    expect(b.x.iptRefCount!(41)).toBe(1);
    expect(b.send(udp('198.18.0.1', '198.18.0.2', 1, 2)).verdict).toBe(V.PASS);
    expect(b.x.iptStageDelete!(INPUT4)).toBeLessThan(0);
  });

  it('policies are staged with the rest and applied by commit', () => {
    const b = new Bench();
    b.local('198.18.0.2');
    expect(b.x.iptSetPolicy!(INPUT4, 1)).toBe(0);
    expect(b.send(udp('198.18.0.1', '198.18.0.2', 1, 2)).verdict).toBe(V.PASS);
    expect(b.x.iptCommit!()).toBe(0);
    expect(b.x.iptPolicy!(INPUT4)).toBe(1);
    expect(b.send(udp('198.18.0.1', '198.18.0.2', 1, 2)).verdict).toBe(V.DROP);
    expect(b.x.iptSetPolicy!(40, 1)).toBeLessThan(0);
    expect(b.x.iptSetPolicy!(INPUT4, 7)).toBeLessThan(0);
  });
});

describe('compiler ids across restores', () => {
  it('keeps ids stable, reuses a deleted chain id, and deletes chains a restore dropped', () => {
    const b = new Bench();
    b.restore('*filter\n:INPUT ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n-A INPUT -j A\n-A A -j B\nCOMMIT\n');
    const a = b.compiler.chainId(4, 'filter', 'A')!;
    const bid = b.compiler.chainId(4, 'filter', 'B')!;
    expect(a).toBeGreaterThanOrEqual(40);
    b.restore('*filter\n:INPUT ACCEPT [0:0]\n:A - [0:0]\n-A INPUT -j A\nCOMMIT\n');
    expect(b.compiler.chainId(4, 'filter', 'A')).toBe(a);
    expect(b.compiler.chainId(4, 'filter', 'B')).toBeUndefined();
    expect(b.x.iptRuleCount!(bid)).toBe(-1);
    b.restore('*filter\n:C - [0:0]\n-A C -j ACCEPT\nCOMMIT\n', { noflush: true });
    expect(b.compiler.chainId(4, 'filter', 'C')).toBe(bid);
    expect(b.x.iptRuleCount!(bid)).toBe(1);
  });

  it('a restore the core refuses changes nothing: live rules, chain ids', () => {
    const b = new Bench();
    b.local('198.18.0.2');
    b.restore('*filter\n:INPUT ACCEPT [0:0]\n:A - [0:0]\n-A INPUT -j A\n-A A -p udp -j DROP\nCOMMIT\n');
    const r = parseRestore('*filter\n:INPUT ACCEPT [0:0]\n:Z - [0:0]\n-A INPUT -j Z\n-A Z -j ACCEPT\nCOMMIT\n', { base: b.rulesets[4] });
    if (!r.ok) throw new Error(r.error.message);
    const compiled = b.compiler.compile(r.ruleset, r.touched);
    const refusing = { ...b.ipt, iptCommit: () => -(15 | (1 << 12)) };
    expect(() => loadRestore(refusing, b.compiler, compiled, b.buffer)).toThrow(IptLoadError);
    expect(b.compiler.chainId(4, 'filter', 'Z')).toBeUndefined();
    expect(b.compiler.chainId(4, 'filter', 'A')).toBeDefined();
    expect(b.send(udp('198.18.0.1', '198.18.0.2', 1, 2)).verdict).toBe(V.DROP);
    // The compiler is free again and the next restore goes through.
    b.restore('*filter\n:INPUT ACCEPT [0:0]\n:Z - [0:0]\n-A INPUT -j Z\n-A Z -j ACCEPT\nCOMMIT\n');
    expect(b.send(udp('198.18.0.1', '198.18.0.2', 1, 2)).verdict).toBe(V.PASS);
  });
});
