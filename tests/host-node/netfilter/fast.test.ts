// The fast path for kube-proxy-shaped rule texts (fast.ts) against the general parser: for every
// rule line of every fixture, and for thousands of mutations of them, the fast path either
// declines (null) or builds a Rule equal to parseRuleText()'s; it never accepts a text the
// general parser refuses. It must also take the shapes kube-proxy writes, or it would be useless.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fastRule } from '../../../host-node/netfilter/fast.js';
import { parseRuleText } from '../../../host-node/netfilter/rule.js';
import type { Family, Rule } from '../../../host-node/netfilter/model.js';

const root = join(new URL('.', import.meta.url).pathname, '..');

function files(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (/\.(ya?ml|txt|rules|ts)$/.test(e)) out.push(p);
  }
  return out;
}

const KUBE_SHAPES = [
  '-m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O',
  '-m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ',
  '-m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-SXIVWICOYRO3J4NJ',
  '-m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ',
  '-m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80',
  '-m comment --comment ns2/svc2:p53 -m udp -p udp -j DNAT --to-destination 10.180.0.2:53',
  '-m comment --comment ns1/svc1:p80 -m tcp -p tcp --dport 30001 -j KUBE-EXT-XPGD46QRK7WJZT7O',
  '-m comment --comment ns1/svc1:p80 -m tcp -p tcp -d 127.0.0.1 --dport 30001 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-XPGD46QRK7WJZT7O',
  '-p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O',
  '-j KUBE-SVC-XPGD46QRK7WJZT7O',
  '-j RETURN',
];

function corpus(): string[] {
  const lines = new Set<string>(KUBE_SHAPES);
  for (const f of files(root)) {
    for (const m of readFileSync(f, 'utf8').matchAll(/^\s*-A \S+ (.+)$/gm)) lines.add(m[1].trimEnd());
  }
  return [...lines];
}

function mutations(line: string): string[] {
  const w = line.split(' ');
  const out: string[] = [];
  for (let i = 0; i < w.length; i++) {
    out.push([...w.slice(0, i), ...w.slice(i + 1)].join(' '));
    out.push([...w.slice(0, i), w[i], ...w.slice(i)].join(' '));
    out.push([...w.slice(0, i), '!', ...w.slice(i)].join(' '));
    out.push([...w.slice(0, i), w[i].toUpperCase(), ...w.slice(i + 1)].join(' '));
    out.push([...w.slice(0, i), w[i] + '9', ...w.slice(i + 1)].join(' '));
    if (i + 1 < w.length) out.push([...w.slice(0, i), w[i + 1], w[i], ...w.slice(i + 2)].join(' '));
  }
  out.push(line + ' ', ' ' + line, line.replace(/ /g, '  '), line.replace(/ /, '\t'));
  return out;
}

function general(text: string, family: Family): Rule | Error {
  try {
    return parseRuleText(text, family);
  } catch (e) {
    return e as Error;
  }
}

// Text around a rule cut from a restore text, with every character a scan must not run on into.
const AROUND = ['-A X -j Y\n', '\n', ' "a\\b:c" ', ':'];

function agree(text: string, family: Family): 'fast' | 'general' {
  const fast = fastRule(text, family);
  const slow = general(text, family);
  // Read in place from the restore text it was cut from, the rule must come out the same.
  for (const before of AROUND) for (const after of AROUND) {
    expect(fastRule(text, family, undefined, before + text + after, before.length), `${JSON.stringify(before)} + ${text}`).toEqual(fast);
  }
  if (fast === null) return 'general';
  expect(slow, `general parser refuses what the fast path took: ${text}`).not.toBeInstanceOf(Error);
  expect(fast, text).toEqual(slow);
  return 'fast';
}

describe('fast path for kube-proxy rules', () => {
  const lines = corpus();

  it('takes every kube-proxy rule shape it was built for', () => {
    for (const text of KUBE_SHAPES) {
      expect(fastRule(text, 4), text).not.toBeNull();
      agree(text, 4);
    }
  });

  it('builds exactly the general parser\'s rule for every fixture line, or declines', () => {
    let fast = 0;
    for (const text of lines) for (const family of [4, 6] as const) if (agree(text, family) === 'fast') fast++;
    expect(lines.length).toBeGreaterThan(200);
    expect(fast).toBeGreaterThan(100);
  });

  it('never accepts a mutated line the general parser refuses, never builds a different rule', () => {
    let fast = 0;
    let n = 0;
    for (const line of lines) {
      for (const text of mutations(line)) {
        n++;
        if (agree(text, 4) === 'fast') fast++;
      }
    }
    expect(n).toBeGreaterThan(5000);
    expect(fast).toBeGreaterThan(500);
  });

  it('reads host addresses and DNAT destinations in every spelling as the general parser does', () => {
    const texts: string[] = [];
    for (const to of ['10.180.0.1:80', '10.180.0.1:080', '10.180.0.1:0', '10.180.0.1:65535', '10.180.0.1:65536', '10.180.0.1:8080-8081',
      '10.180.0.1', '10.180.0.1-10.180.0.2:80', ':80', '010.1.2.3:80', '10.180.0.1:http', '10.180.0.1:', '10.180.0.256:80', '10.180.0:80',
      '10.180.0.1:123456', '10.180.0.1:8a']) {
      for (const p of ['-p tcp -m tcp', '-p udp', '-p sctp', '']) texts.push(`-m comment --comment x ${p} -j DNAT --to-destination ${to}`);
    }
    for (const a of ['10.0.0.1', '10.0.0.1/32', '10.0.0.1/31', '10.0.0.01', '10.0.0.1/032', '10.0.0.1/', '10.0.0.1/3', '10.0.0', '0.0.0.0', '255.255.255.255']) {
      texts.push(`-s ${a} -j KUBE-MARK-MASQ`, `! -d ${a} -j RETURN`, `-d ${a} -s ${a} -j RETURN`);
    }
    let fast = 0;
    for (const t of texts) for (const family of [4, 6] as const) if (agree(t, family) === 'fast') fast++;
    expect(fast).toBeGreaterThan(40);
  });

  it('shares a host address between nearby rules, and with the DNAT rule after a KUBE-SEP -s rule', () => {
    const svc = fastRule('-m comment --comment "s cluster IP" -m tcp -p tcp -d 198.18.0.9 --dport 80 -j KUBE-SVC-A', 4)!;
    const masq = fastRule('-m comment --comment "s cluster IP" -m tcp -p tcp -d 198.18.0.9 --dport 80 ! -s 198.19.0.0/16 -j KUBE-MARK-MASQ', 4)!;
    expect(masq.dst).toBe(svc.dst);
    expect(masq.matches).toBe(svc.matches);
    const other = fastRule('-m comment --comment "s cluster IP" -m tcp -p tcp ! -d 198.18.0.9 --dport 80 -j KUBE-SVC-A', 4)!;
    expect(other.dst).not.toBe(svc.dst);
    expect(other.dst!.invert).toBe(true);
    const sep = fastRule('-m comment --comment s -s 198.19.0.7 -j KUBE-MARK-MASQ', 4)!;
    const dnat = fastRule('-m comment --comment s -m tcp -p tcp -j DNAT --to-destination 198.19.0.7:8080', 4)!;
    const to = (dnat.target as { to: { addrMin: unknown; addrMax: unknown } }).to;
    expect(to.addrMin).toBe(sep.src!.addr);
    expect(to.addrMax).toBe(to.addrMin);
    const far = fastRule('-m comment --comment s -m tcp -p tcp -j DNAT --to-destination 198.19.0.8:8080', 4)!;
    const farTo = (far.target as { to: { addrMin: readonly number[]; ports: unknown } }).to;
    expect(farTo.addrMin).toEqual([(198 << 24 | 19 << 16 | 8) >>> 0, 0, 0, 0]);
    expect(farTo.ports).toBe((to as { ports?: unknown }).ports);
    const port81 = fastRule('-m comment --comment s -m tcp -p tcp -j DNAT --to-destination 198.19.0.8:81', 4)!;
    expect((port81.target as { to: { ports: unknown } }).to.ports).toEqual({ lo: 81, hi: 81 });
  });

  it('reads a port text it read before as the general parser does, whatever the protocol and other options', () => {
    const lines = [
      '-m tcp -p tcp --dport 80 -j ACCEPT', '-m udp -p udp --dport 80 -j ACCEPT', '-m tcp -p tcp --dport 80 --sport 1000 -j ACCEPT',
      '-m tcp -p tcp --sport 80 -j ACCEPT', '-p tcp --dport 80:90 -j ACCEPT', '-m tcp -p tcp --dport 99999 -j ACCEPT',
      '-m tcp -p tcp -j ACCEPT', '-m udp -p udp -j ACCEPT', '-m tcp -p tcp --dport 80 -j DROP', '-p udp --dport 80 -j DROP',
    ];
    for (let pass = 0; pass < 2; pass++) {
      for (const l of lines) {
        if (l.includes('99999')) expect(fastRule(l, 4), l).toBeNull();
        else expect(agree(l, 4), l).toBe('fast');
      }
    }
    const tcp80 = fastRule(lines[0]!, 4)!.matches[0];
    expect(fastRule(lines[8]!, 4)!.matches[0]).toBe(tcp80);
    expect(fastRule(lines[1]!, 4)!.matches[0]).not.toBe(tcp80);
    expect(fastRule(lines[2]!, 4)!.matches[0]).toMatchObject({ kind: 'tcp', dport: { lo: 80, hi: 80 }, sport: { lo: 1000, hi: 1000 } });
  });

  it('names a jump target with the string the caller gives for that chain', () => {
    const asked: string[] = [];
    const r = fastRule('-m comment --comment x -j KUBE-SEP-NAMEDBYCALLER1', 4, (n) => (asked.push(n), n === 'KUBE-SEP-NAMEDBYCALLER1' ? 'KUBE-SEP-NAMEDBYCALLER1' : 'wrong'))!;
    expect(asked).toEqual(['KUBE-SEP-NAMEDBYCALLER1']);
    expect(r.target).toEqual({ kind: 'jump', chain: 'KUBE-SEP-NAMEDBYCALLER1', goto: false });
    expect(fastRule('-j KUBE-SEP-NAMEDBYCALLER2', 4, () => 'KUBE-SEP-OTHER')!.target).toMatchObject({ chain: 'KUBE-SEP-OTHER' });
  });

  it('shares the immutable parts of rules (interning) without mixing different values', () => {
    const a = fastRule('-m comment --comment "a b" -m tcp -p tcp ! -d 10.0.0.0/24 --dport 80 -j KUBE-MARK-MASQ', 4)!;
    const b = fastRule('-m comment --comment "a b" -m tcp -p tcp ! -d 10.0.0.0/24 --dport 80 -j KUBE-MARK-MASQ', 4)!;
    const c = fastRule('-m comment --comment "a c" -m tcp -p tcp -d 10.0.1.0/24 --dport 81 -j KUBE-MARK-DROP', 4)!;
    expect(a).not.toBe(b);
    expect(a.matches[0]).toBe(b.matches[0]);
    expect(a.matches[1]).toBe(b.matches[1]);
    expect(a.dst).toBe(b.dst);
    expect(a.target).toBe(b.target);
    expect(c.matches[0]).toEqual({ kind: 'comment', text: 'a c' });
    expect(c.matches[1]).toMatchObject({ kind: 'tcp', dport: { lo: 81, hi: 81 } });
    expect(c.dst).toMatchObject({ addr: [0x0a000100, 0, 0, 0], prefix: 24, invert: false });
    expect(a.dst).toMatchObject({ addr: [0x0a000000, 0, 0, 0], prefix: 24, invert: true });
    expect(c.target).toEqual({ kind: 'jump', chain: 'KUBE-MARK-DROP', goto: false });
  });
});
