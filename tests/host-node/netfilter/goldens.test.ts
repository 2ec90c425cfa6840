// Goldens from the real tools: every input ruleset was loaded into iptables-legacy 1.8.9 inside a
// network namespace (fixtures/capture-goldens.sh) and what iptables-save, `iptables -S` and
// `iptables -L -n …` printed is compared with our renderers, byte for byte.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRestore, renderList, renderRules, renderSave, type Ruleset, type TableName } from '../../../host-node/netfilter/index.js';

const here = new URL('.', import.meta.url).pathname;
const conformance = '/work/shared/conformance/kube-proxy-iptables';

interface Golden {
  name: string;
  family: 4 | 6;
  counters: boolean;
  input: string | null;
  table: TableName;
  save: string;
  S: string;
  Lnvx: string;
  Lnv?: string;
  Ln?: string;
  chain: string | null;
  Lchain: string;
  Schain: string;
}

const goldens: { tool: string; cases: Golden[] } = JSON.parse(readFileSync(join(here, 'fixtures/goldens.json'), 'utf8'));

function inputText(g: Golden): string {
  if (g.input) return readFileSync(join(here, 'fixtures/inputs', g.input), 'utf8');
  const file = g.name.slice('kube:'.length) + '.json';
  return JSON.parse(readFileSync(join(conformance, file), 'utf8')).ruleset;
}

const parsed = new Map<string, Ruleset>();
function rulesetOf(g: Golden): Ruleset {
  let rs = parsed.get(g.name);
  if (!rs) {
    const r = parseRestore(inputText(g), { family: g.family, counters: g.counters });
    if (!r.ok) throw new Error(r.error.message);
    rs = r.ruleset;
    parsed.set(g.name, rs);
  }
  return rs;
}

describe(`goldens from ${goldens.tool}`, () => {
  it('covers the hand-written inputs and every conformance ruleset', () => {
    const inputs = new Set(goldens.cases.map((g) => g.input).filter(Boolean));
    expect([...inputs].sort()).toEqual(readdirSync(join(here, 'fixtures/inputs')).filter((f) => f.endsWith('.rules')).sort());
    expect(new Set(goldens.cases.filter((g) => g.name.startsWith('kube:')).map((g) => g.name)).size).toBe(
      readdirSync(conformance).filter((f) => f.endsWith('.json')).length,
    );
  });
  for (const g of goldens.cases) {
    describe(`${g.name} ${g.table}`, () => {
      it('iptables-save (kernel form)', () => {
        expect(renderSave(rulesetOf(g), { form: 'kernel', tables: [g.table] })).toBe(g.save);
      });
      it('-S', () => {
        expect(renderRules(rulesetOf(g), g.table)).toBe(g.S);
      });
      it('-L -n -v -x --line-numbers', () => {
        expect(renderList(rulesetOf(g), g.table, undefined, { exact: true, lineNumbers: true })).toBe(g.Lnvx);
      });
      if (g.Lnv !== undefined) {
        it('-L -n -v', () => {
          expect(renderList(rulesetOf(g), g.table)).toBe(g.Lnv);
        });
      }
      if (g.Ln !== undefined) {
        it('-L -n', () => {
          expect(renderList(rulesetOf(g), g.table, undefined, { verbose: false })).toBe(g.Ln);
        });
      }
      if (g.chain) {
        it(`-L ${g.chain} / -S ${g.chain}`, () => {
          expect(renderList(rulesetOf(g), g.table, g.chain!)).toBe(g.Lchain);
          expect(renderRules(rulesetOf(g), g.table, g.chain!)).toBe(g.Schain);
        });
      }
    });
  }
});
