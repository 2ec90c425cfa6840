// Mangled input never throws: every mutation of real rulesets either parses or comes back as a
// located error, and renders of what parses parse again. Deterministic (seeded) mutations.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRestore, renderList, renderRules, renderSave } from '../../../host-node/netfilter/index.js';

const here = new URL('.', import.meta.url).pathname;
const conformance = '/work/shared/conformance/kube-proxy-iptables';
const sources: { text: string; family: 4 | 6 }[] = [
  ...readdirSync(join(here, 'fixtures/inputs')).map((f) => ({
    text: readFileSync(join(here, 'fixtures/inputs', f), 'utf8'), family: (f.startsWith('v6') ? 6 : 4) as 4 | 6,
  })),
  ...['TestOverallIPTablesRules.iptables-tracer-v2.json', 'TestLoadBalancer.iptables-tracer-v1.json'].map((f) => ({
    text: JSON.parse(readFileSync(join(conformance, f), 'utf8')).ruleset as string, family: 4 as const,
  })),
];

let seed = 0x9e3779b9;
function rnd(n: number): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) % n;
}

const NOISE = ['!', '"', '\\', '-', '--', ':', '/', ',', '[', ']', '*', '#', ' ', '\t', '0', '65536', '::', '-j', '-m', '-X', 'COMMIT', '\n'];

function mutate(text: string): string {
  const words = text.split(/( +|\n)/);
  for (let k = 0, n = 1 + rnd(4); k < n; k++) {
    const i = rnd(words.length);
    switch (rnd(5)) {
      case 0: words.splice(i, 1); break;
      case 1: words.splice(i, 0, words[rnd(words.length)]); break;
      case 2: words[i] = NOISE[rnd(NOISE.length)]; break;
      case 3: words[i] = (words[i] ?? '') + NOISE[rnd(NOISE.length)]; break;
      default: {
        const s = words[i] ?? '';
        const p = rnd(s.length + 1);
        words[i] = s.slice(0, p) + String.fromCharCode(32 + rnd(95)) + s.slice(p + 1);
      }
    }
  }
  return words.join('');
}

describe('fuzzed restores', () => {
  it('never throw, and what parses renders and re-parses', () => {
    let accepted = 0;
    let rejected = 0;
    for (let iter = 0; iter < 1500; iter++) {
      const src = sources[iter % sources.length];
      const text = mutate(src.text);
      const r = parseRestore(text, { family: src.family, noflush: iter % 3 === 0 });
      if (!r.ok) {
        rejected++;
        expect(r.error.line).toBeGreaterThanOrEqual(1);
        expect(r.error.message.length).toBeGreaterThan(0);
        continue;
      }
      accepted++;
      for (const t of r.ruleset.tables.keys()) {
        renderList(r.ruleset, t);
        renderRules(r.ruleset, t);
      }
      const again = parseRestore(renderSave(r.ruleset, { form: 'kernel' }), { family: src.family });
      if (!again.ok) throw new Error(`kernel form did not re-parse: ${again.error.message}\n${text}`);
      expect(renderSave(again.ruleset, { form: 'kernel' })).toBe(renderSave(r.ruleset, { form: 'kernel' }));
    }
    // Both outcomes must actually occur for the test to mean anything.
    expect(accepted).toBeGreaterThan(50);
    expect(rejected).toBeGreaterThan(50);
  });
});
