// compile.ts: the blob layout the core reads (assembly/netfilter/format.ts), the encoding of
// matches and targets, compiling only what a restore touched, deletions, refusals of what the core
// cannot run, and speed on a kube-proxy-sized KUBE-SERVICES chain.
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { parseRestore } from '../../../host-node/netfilter/restore';
import { IptCompiler, CompileError, M, T, builtinChainId, loadRestore, type CompiledRestore } from '../../../host-node/netfilter/compile';
import type { Ruleset } from '../../../host-node/netfilter/ruleset';
import { Bench } from '../../assembly/netfilter/harness';

function parse(text: string, opts: { family?: 4 | 6; base?: Ruleset; noflush?: boolean } = {}) {
  const r = parseRestore(text, opts);
  if (!r.ok) throw new Error(r.error.message);
  return r;
}

interface Decoded { family: number; table: number; flags: number; rules: { matches: number[][]; target: number[] | null }[] }

function decode(blob: Uint8Array): Decoded {
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.length);
  expect(dv.getUint32(0, true)).toBe(0x43545049);
  expect(dv.getUint16(4, true)).toBe(1);
  const n = dv.getUint32(12, true), w = dv.getUint32(16, true);
  expect(blob.length).toBe(32 + 12 * n + 4 * w);
  const word = (i: number) => dv.getUint32(32 + 12 * n + 4 * i, true);
  const rules: Decoded['rules'] = [];
  let expectAt = 0;
  for (let r = 0; r < n; r++) {
    const mo = dv.getUint32(32 + 12 * r, true), to = dv.getUint32(36 + 12 * r, true), eo = dv.getUint32(40 + 12 * r, true);
    expect(mo).toBe(expectAt);
    expectAt = eo;
    const ops = (a: number, b: number) => {
      const out: number[][] = [];
      for (let i = a; i < b;) {
        const h = word(i), len = h >>> 16;
        out.push([h & 0xff, (h >> 8) & 0xff, ...Array.from({ length: len - 1 }, (_, k) => word(i + 1 + k))]);
        i += len;
      }
      return out;
    };
    const t = ops(to, eo);
    rules.push({ matches: ops(mo, to), target: t[0] ?? null });
  }
  expect(expectAt).toBe(w);
  return { family: dv.getUint8(6), table: dv.getUint8(7), flags: dv.getUint32(8, true), rules };
}

function chainOf(c: CompiledRestore, name: string, table?: string): Decoded {
  const s = c.stage.find((x) => x.info.name === name && (table === undefined || x.info.table === table));
  if (!s) throw new Error(`chain ${name} not compiled`);
  return decode(s.blob);
}

const le = (a: number, b: number, c: number, d: number) => (a | (b << 8) | (c << 16) | (d << 24)) >>> 0;

describe('blob layout and encoding', () => {
  it("kube-proxy's service rule is [DST, PROTO, DPORT] + JUMP (the dispatch index's shape)", () => {
    const c = new IptCompiler();
    const r = parse('*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-X - [0:0]\n' +
      '-A KUBE-SERVICES -m comment --comment "ns/x:http cluster IP" -d 198.19.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-X\nCOMMIT\n');
    const out = c.compile(r.ruleset, r.touched);
    const d = chainOf(out, 'KUBE-SERVICES');
    expect([d.family, d.table, d.flags]).toEqual([4, 2, 1]);
    expect(d.rules[0]!.matches).toEqual([
      [M.DST, 0, le(198, 19, 0, 10), 0, 0, 0, 0xffffffff, 0, 0, 0],
      [M.PROTO, 0, 6],
      [M.DPORT, 0, 80 | (80 << 16)],
    ]);
    expect(d.rules[0]!.target).toEqual([T.JUMP, 0, c.chainId(4, 'nat', 'KUBE-SVC-X')]);
    expect(c.chainId(4, 'nat', 'KUBE-SVC-X')).toBeGreaterThanOrEqual(40);
    expect(out.stage.find((s) => s.info.name === 'PREROUTING')!.id).toBe(builtinChainId(4, 'nat', 'PREROUTING'));
    out.accept();
  });

  it('matches: inversions, interface masks, conntrack, statistic, recent, multiport, icmp', () => {
    const c = new IptCompiler();
    const r = parse('*filter\n:FORWARD ACCEPT [0:0]\n' +
      '-A FORWARD ! -s 198.18.0.0/16 -i veth+ -o eth0 -p udp ! --dport 53\n' +
      '-A FORWARD -m conntrack --ctstate NEW,DNAT --ctorigdst 198.19.0.0/16 --ctorigdstport 80\n' +
      '-A FORWARD -m conntrack --ctorigsrc 198.18.0.1\n' +
      '-A FORWARD -m statistic --mode random --probability 0.33333333349\n' +
      '-A FORWARD -m statistic --mode nth --every 3 --packet 1\n' +
      '-A FORWARD -m recent --name A --rcheck --seconds 10 --reap --rdest\n' +
      '-A FORWARD -p tcp -m multiport --dports 80,8000:8080\n' +
      '-A FORWARD -p icmp --icmp-type 3/4\n' +
      '-A FORWARD -m addrtype --dst-type LOCAL,MULTICAST\n' +
      '-A FORWARD -m mark --mark 0x4000/0x4000 -m limit --limit 5/sec --limit-burst 7\nCOMMIT\n');
    const out = c.compile(r.ruleset, r.touched);
    const rules = chainOf(out, 'FORWARD').rules.map((x) => x.matches);
    expect(rules[0]).toEqual([
      [M.SRC, 1, le(198, 18, 0, 0), 0, 0, 0, le(255, 255, 0, 0), 0, 0, 0],
      [M.IIF, 0, le(0x76, 0x65, 0x74, 0x68), 0, 0, 0, 0xffffffff, 0, 0, 0],
      [M.OIF, 0, le(0x65, 0x74, 0x68, 0x30), 0, 0, 0, 0xffffffff, 0xff, 0, 0],
      [M.PROTO, 0, 17],
      [M.DPORT, 1, 53 | (53 << 16)],
    ]);
    expect(rules[1]).toEqual([
      [M.CTSTATE, 0, 8 | 64],
      [M.CT_ADDR, 2, 1, le(198, 19, 0, 0), 0, 0, 0, le(255, 255, 0, 0), 0, 0, 0],
      [M.CT_PORT, 2, 1, 80 | (80 << 16)],
    ]);
    expect(rules[2]![0]![1]).toBe(0);   // no state test: no pass without a connection
    expect(rules[3]).toEqual([[M.RANDOM, 0, 715827883]]);
    expect(rules[4]).toEqual([[M.NTH, 0, 2, 1, 0]]);
    expect(rules[5]).toEqual([[M.RECENT, 0, c.recentId('A'), 1 | 32 | 64, 10, 0, 0xffffffff, 0, 0, 0]]);
    expect(rules[6]).toEqual([[M.PROTO, 0, 6], [M.MULTIPORT, 0, 2, 2, 80 | (80 << 16), 8000 | (8080 << 16)]]);
    expect(rules[7]).toEqual([[M.PROTO, 0, 1], [M.ICMP, 0, 3 | (4 << 8) | (4 << 16), 1]]);
    expect(rules[8]).toEqual([[M.ADDRTYPE, 0, ((1 << 2) | (1 << 5)) << 16, 0]]);
    expect(rules[9]).toEqual([[M.MARK, 0, 0x4000, 0x4000], [M.LIMIT, 0, 2000, 7, 0]]);
    out.accept();
  });

  it('targets: REJECT codes, NAT ranges and flags, MARK, CONNMARK, NOTRACK', () => {
    const c = new IptCompiler();
    const r = parse('*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n' +
      '-A PREROUTING -p udp -j DNAT --to-destination 198.18.0.1-198.18.0.5:53-54 --random --persistent\n' +
      '-A PREROUTING -j MARK --or-mark 0x4000\n' +
      '-A POSTROUTING -p tcp -j MASQUERADE --to-ports 30000-40000 --random-fully\n' +
      '-A POSTROUTING -j SNAT --to-source 198.19.0.1\nCOMMIT\n' +
      '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j REJECT --reject-with icmp-host-prohibited\n-A INPUT -p tcp -j REJECT --reject-with tcp-reset\n' +
      '-A INPUT -j CONNMARK --save-mark --nfmask 0xf0 --ctmask 0xf\n-A INPUT -j CONNMARK --set-xmark 0x1/0xf\nCOMMIT\n' +
      '*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p udp -j CT --notrack\nCOMMIT\n');
    const out = c.compile(r.ruleset, r.touched);
    const pre = chainOf(out, 'PREROUTING', 'nat');
    expect(pre.rules[0]!.target).toEqual([T.DNAT, 0, 1 | 2 | 4 | 8, le(198, 18, 0, 1), 0, 0, 0, le(198, 18, 0, 5), 0, 0, 0, 53 | (54 << 16)]);
    expect(pre.rules[1]!.target).toEqual([T.MARK, 0, 0x4000, 0x4000]);
    const post = chainOf(out, 'POSTROUTING', 'nat');
    expect(post.rules[0]!.target).toEqual([T.MASQUERADE, 0, 2 | 16, (30000 | (40000 << 16)) >>> 0]);
    expect(post.rules[1]!.target).toEqual([T.SNAT, 0, 1, le(198, 19, 0, 1), 0, 0, 0, le(198, 19, 0, 1), 0, 0, 0, 0]);
    const input = chainOf(out, 'INPUT', 'filter');
    expect(input.rules.map((x) => x.target)).toEqual([
      [T.REJECT, 0, 10], [T.REJECT, 0, 0xffff], [T.CONNMARK, 0, 1, 0, 0xf, 0xf0], [T.CONNMARK, 0, 0, 1, 0xf, 0],
    ]);
    const raw = out.stage.find((s) => s.id === builtinChainId(4, 'raw', 'PREROUTING'))!;
    expect(decode(raw.blob).rules[0]!.target).toEqual([T.NOTRACK, 0]);
    out.accept();
  });

  it('refuses what the core cannot run, naming the rule, and reserves nothing', () => {
    const c = new IptCompiler();
    const bad = parse('*filter\n:INPUT ACCEPT [0:0]\n:N - [0:0]\n-A INPUT -j N\n-A INPUT -p tcp -m tcp --tcp-option 2 -j ACCEPT\nCOMMIT\n');
    expect(() => c.compile(bad.ruleset, bad.touched)).toThrow(CompileError);
    try { c.compile(bad.ruleset, bad.touched); } catch (e) { expect((e as CompileError).rule).toBe(1); }
    expect(c.chainId(4, 'filter', 'N')).toBeUndefined();
    const q = parse(readFileSync(new URL('./fixtures/inputs/v4-targets.rules', import.meta.url), 'utf8'));
    expect(() => c.compile(q.ruleset, q.touched)).toThrow(/QUEUE/);
  });
});

describe('what a restore touched', () => {
  it('compiles only touched chains, deletes removed ones, stages policies of built-ins', () => {
    const c = new IptCompiler();
    const first = parse('*filter\n:INPUT DROP [0:0]\n:A - [0:0]\n:B - [0:0]\n-A INPUT -j A\n-A A -j B\n-A B -j ACCEPT\nCOMMIT\n');
    const out1 = c.compile(first.ruleset, first.touched);
    expect(out1.policies).toContainEqual({ id: builtinChainId(4, 'filter', 'INPUT'), policy: 1 });
    out1.accept();
    const bid = c.chainId(4, 'filter', 'B')!;
    const second = parse('*filter\n:A - [0:0]\n-A A -j ACCEPT\n-F B\n-X B\nCOMMIT\n', { base: first.ruleset, noflush: true });
    const out2 = c.compile(second.ruleset, second.touched);
    expect(out2.stage.map((s) => s.info.name)).toEqual(['A']);
    expect(out2.deletes.map((d) => d.id)).toEqual([bid]);
    out2.accept();
    expect(c.chainId(4, 'filter', 'B')).toBeUndefined();
    const all = c.compile(second.ruleset, null);
    expect(all.stage.map((s) => s.info.name).sort()).toEqual(['A', 'FORWARD', 'INPUT', 'OUTPUT']);
    all.reject();
  });

  it('a restore hands the compiler the chains it changed, each as the new table holds it; a table given twice hands names only', () => {
    const once = parse('*filter\n:INPUT DROP [0:0]\n:A - [0:0]\n:B - [0:0]\n-A INPUT -j A\n-A A -j B\n-A B -j ACCEPT\nCOMMIT\n' +
      '*nat\n:C - [0:0]\n-A C -j RETURN\nCOMMIT\n');
    const objs = once.changed.chainObjs!;
    expect(objs.length).toBe(once.changed.chains.length);
    once.changed.chains.forEach((name, k) => expect(objs[k], name).toBe(once.ruleset.table(once.changed.tables[k]!)!.chain(name) ?? null));
    // The second filter block changes A again: its first block's A is stale, so none are handed over.
    const twice = parse('*filter\n:A - [0:0]\n:B - [0:0]\n-A A -j B\nCOMMIT\n*filter\n-A A -j DROP\nCOMMIT\n', { noflush: true });
    expect(twice.changed.chainObjs).toBeUndefined();
    const c = new IptCompiler();
    const out = c.compile(twice.ruleset, twice.changed);
    expect(chainOf(out, 'A').rules.map((r) => r.target![0])).toEqual([T.JUMP, T.DROP]);
    expect(chainOf(out, 'B').rules).toEqual([]);
    out.reject();
    // With the chains handed over, the compiler stages what it stages from the names.
    const a = new IptCompiler().compile(once.ruleset, once.changed);
    const b = new IptCompiler().compile(once.ruleset, { tables: once.changed.tables, chains: once.changed.chains });
    expect(a.stage.map((s) => [s.info.name, [...s.blob]])).toEqual(b.stage.map((s) => [s.info.name, [...s.blob]]));
    a.reject();
    b.reject();
  });

  it('loads every supported fixture into the core', () => {
    for (const [file, family] of [['v6.rules', 6], ['v4-counters.rules', 4]] as const) {
      const b = new Bench();
      b.restore(readFileSync(new URL(`./fixtures/inputs/${file}`, import.meta.url), 'utf8'), { family });
      expect(b.x.iptRuleCount!(builtinChainId(family, 'filter', 'INPUT'))).toBeGreaterThan(0);
    }
  });
});

describe('chain memo', () => {
  // Speed is measured by bench/netfilter-parse.ts; here: a patched chain equals a fresh load.
  it('a 22k-rule KUBE-SERVICES chain with one rule changed is sent as a one-rule patch, and the core then holds what a fresh load builds', () => {
    const lines = ['*nat', ':PREROUTING ACCEPT [0:0]', ':KUBE-SERVICES - [0:0]', '-A PREROUTING -j KUBE-SERVICES'];
    for (let i = 0; i < 200; i++) lines.push(`:KUBE-SVC-${i} - [0:0]`);
    for (let i = 0; i < 22000; i++) {
      lines.push(`-A KUBE-SERVICES -m comment --comment "ns/svc-${i}:http cluster IP" -d 198.19.${(i >> 8) & 255}.${i & 255}/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-${i % 200}`);
    }
    lines.push('COMMIT', '');
    const b = new Bench();
    b.restore(lines.join('\n'));
    // One rule changed in the middle: only it is encoded and sent.
    const partial = lines.filter((l) => !l.includes('PREROUTING') && !l.startsWith(':KUBE-SVC-')).join('\n')
      .replace('"ns/svc-11000:http cluster IP" -d 198.19.42.248/32', '"ns/svc-11000:http cluster IP" -d 198.19.99.99/32');
    const edited = parse(partial, { noflush: true, base: b.rulesets[4] });
    expect([...edited.touched]).toEqual(['nat/KUBE-SERVICES']);
    const again = b.compiler.compile(edited.ruleset, edited.touched);
    expect(again.stage).toHaveLength(1);
    expect(again.stage[0]).toMatchObject({ head: 11000, tail: 10999 });
    expect(decode(again.stage[0]!.blob).rules).toHaveLength(1);
    loadRestore(b.ipt, b.compiler, again, b.buffer);
    const fresh = new Bench();
    fresh.restore(lines.join('\n').replace('-d 198.19.42.248/32', '-d 198.19.99.99/32'));
    const chain = (x: Bench) => {
      const id = x.compiler.chainId(4, 'nat', 'KUBE-SERVICES')!;
      const n = x.x.iptRuleCount!(id), mem = Buffer.from(x.core.memory.buffer);
      const recs = x.x.chainRules!(id) >>> 0, ops = x.x.chainOps!(id) >>> 0;
      return Buffer.concat([mem.subarray(recs, recs + 16 * n), mem.subarray(ops, ops + 4 * x.x.chainOpWords!(id))]);
    };
    expect(b.x.iptRuleCount!(b.compiler.chainId(4, 'nat', 'KUBE-SERVICES')!)).toBe(22000);
    expect(chain(b).equals(chain(fresh))).toBe(true);
  });
});
