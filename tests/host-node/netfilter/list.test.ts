// Listings with counters from a counter source (what the core will report), checked against what
// the real tool printed for the same counters, plus the errors listing can give.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChainLines, parseRestore, renderList, renderRules, type CounterSource, type Ruleset, type TableName } from '../../../host-node/netfilter/index.js';
import { sortByName } from '../../../host-node/netfilter/save.js';

const here = new URL('.', import.meta.url).pathname;
const goldens = JSON.parse(readFileSync(join(here, 'fixtures/goldens.json'), 'utf8')).cases as
  { name: string; table: string; Lnv: string; Lnvx: string; S: string }[];
const counted = goldens.find((g) => g.name === 'v4-counters')!;
const text = readFileSync(join(here, 'fixtures/inputs/v4-counters.rules'), 'utf8');

function parse(counters: boolean): Ruleset {
  const r = parseRestore(text, { counters });
  if (!r.ok) throw new Error(r.error.message);
  return r.ruleset;
}

describe('counters in listings', () => {
  const withCounters = parse(true);
  const zero = parse(false);
  // A source that serves the counters the kernel held, for a ruleset parsed without them.
  const source: CounterSource = (table, chain, index) => {
    const c = withCounters.table(table)!.chain(chain)!;
    return index < 0 ? c.counters : c.rules[index].counters;
  };

  it('takes counters from the source (K/M/G/T and exact forms)', () => {
    expect(renderList(zero, 'filter', undefined, { counters: source })).toBe(counted.Lnv);
    expect(renderList(zero, 'filter', undefined, { counters: source, exact: true, lineNumbers: true })).toBe(counted.Lnvx);
  });

  it('defaults to the model\'s counters, zero unless restored with counters', () => {
    expect(renderList(withCounters, 'filter')).toBe(counted.Lnv);
    expect(renderList(zero, 'filter')).not.toBe(counted.Lnv);
    expect(renderList(zero, 'filter')).toContain('Chain INPUT (policy ACCEPT 0 packets, 0 bytes)');
  });

  it('-S -v prints counters with -c', () => {
    const s = renderRules(zero, 'filter', 'INPUT', { counters: source });
    expect(s).toBe('-P INPUT ACCEPT -c 123 45678\n-A INPUT -c 5 300 -j KUBE-SERVICES\n-A INPUT -p tcp -m tcp --dport 22 -c 123456 987654321 -j ACCEPT\n');
  });

  it('lists a table the ruleset does not have as the kernel would (empty built-ins)', () => {
    expect(renderRules(zero, 'raw')).toBe('-P PREROUTING ACCEPT\n-P OUTPUT ACCEPT\n');
  });

  it('refuses a chain that does not exist', () => {
    expect(() => renderList(zero, 'filter', 'NOPE')).toThrow('No chain/target/match by that name.');
  });

  it('refuses a table that does not exist, with iptables -t\'s message, in -L and -S alike', () => {
    const bogus = 'bogus' as TableName;
    const msg = "iptables: can't initialize iptables table `bogus': Table does not exist (do you need to insmod?)";
    expect(() => renderList(zero, bogus)).toThrow(msg);
    expect(() => renderRules(zero, bogus, 'INPUT')).toThrow(msg);
  });
});

describe('chain lines read by index (ChainLines)', () => {
  const rs = parse(false);

  it('prints each rule as iptables -S does, in order, from either end', () => {
    const chain = rs.table('filter')!.chain('INPUT')!;
    const lines = new ChainLines(chain);
    const minusS = renderRules(rs, 'filter', 'INPUT').split('\n').filter((l) => l.startsWith('-A '));
    expect(lines.length).toBe(minusS.length);
    expect(Array.from({ length: lines.length }, (_, i) => lines.at(i))).toEqual(minusS);
    expect(lines.at(-1)).toBe(minusS.at(-1));
    expect(lines.at(lines.length)).toBeUndefined();
  });

  it('keeps the rules of the chain it was made from after a later restore replaces them', () => {
    const before = new ChainLines(rs.table('filter')!.chain('INPUT')!);
    const r = parseRestore('*filter\n-F INPUT\n-A INPUT -s 198.18.0.9/32 -j DROP\nCOMMIT\n', { base: rs, noflush: true });
    if (!r.ok) throw new Error(r.error.message);
    const after = new ChainLines(r.ruleset.table('filter')!.chain('INPUT')!);
    expect(after.length).toBe(1);
    expect(after.at(0)).toBe('-A INPUT -s 198.18.0.9/32 -j DROP');
    expect(before.at(0)).toBe('-A INPUT -j KUBE-SERVICES');
  });
});

describe('user chains in byte order of their names (iptables-save, -S, -L)', () => {
  // A small generator of names that share long prefixes (as kube-proxy's do), end at every
  // length, and reach past 8-bit characters (which take the plain sort).
  let seed = 0x9e3779b9;
  const rand = (m: number): number => {
    seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
    return (seed >>> 0) % m;
  };
  const PREFIXES = ['KUBE-SVC-', 'KUBE-SEP-', 'KUBE-', 'K', '', 'KUBE-SEP-AB', 'a', 'KUBE-SEP-ABCD'];
  const names = (count: number, alphabet: string, maxLen: number): string[] => {
    const set = new Set<string>();
    for (let tries = 0; tries < 20 * count && set.size < count; tries++) {
      let s = PREFIXES[rand(PREFIXES.length)]!;
      for (let k = rand(maxLen); k > 0; k--) s += alphabet[rand(alphabet.length)];
      set.add(s);
    }
    return [...set];
  };

  it('orders large sets exactly as a plain sort of the names does', () => {
    const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
    // Shared prefixes, a two-letter alphabet, very short, Latin-1 and non-Latin-1 names, names
    // up to 38 characters (past 31 the radix sort gives way to a compare sort).
    const cases = [names(45_000, B32, 16), names(6000, 'AB', 16), names(5000, B32 + '-_.', 3), names(5000, B32 + 'é\u2603', 8),
      names(5000, B32, 30), names(5000, B32 + '\u00fe', 16), names(5000, B32 + '\u00ff', 16), names(3000, 'AB', 16), names(100, B32, 10)];
    for (const list of cases) {
      const items = list.map((name, i) => ({ name, i }));
      const got = sortByName(items, (c) => c.name);
      expect(got.map((c) => c.name)).toEqual([...list].sort());
      expect(new Set(got.map((c) => c.i)).size).toBe(list.length);
    }
  });

  it('keeps every item of a name given twice, in their order', () => {
    const items = ['b', 'a', 'b', 'c', 'a'].map((name, i) => ({ name, i }));
    expect(sortByName(items, (c) => c.name).map((c) => c.i)).toEqual([1, 4, 0, 2, 3]);
    // Large sets of repeated names, in both sorts (Latin-1 names, and with one over 31 characters).
    for (const extra of [[], ['X'.repeat(40)]]) {
      const list = [...names(3000, 'ABC', 12), ...names(3000, 'ABC', 12), ...extra].map((name, i) => ({ name, i }));
      const want = list.map((c) => c).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.i - b.i));
      expect(sortByName(list, (c) => c.name).map((c) => c.i)).toEqual(want.map((c) => c.i));
    }
  });
});
