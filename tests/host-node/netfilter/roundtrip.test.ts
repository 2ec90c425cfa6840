// Round trip: every kube-proxy ruleset of the conformance corpus parses and renders back (source
// form) byte for byte, and so do the hand-written fixtures once their comment lines are dropped.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRestore, renderSave } from '../../../host-node/netfilter/index.js';

const conformance = '/work/shared/conformance/kube-proxy-iptables';
const inputs = join(new URL('.', import.meta.url).pathname, 'fixtures/inputs');

describe('kube-proxy conformance rulesets render back byte-identical', () => {
  const files = readdirSync(conformance).filter((f) => f.endsWith('.json')).sort();
  it('finds every iptables ruleset of the corpus (27; the 28th file is nftables text)', () => {
    expect(files.length).toBe(27);
  });
  for (const f of files) {
    it(f, () => {
      const text: string = JSON.parse(readFileSync(join(conformance, f), 'utf8')).ruleset;
      const r = parseRestore(text);
      if (!r.ok) throw new Error(r.error.message);
      expect(renderSave(r.ruleset)).toBe(text);
      // A second pass over the rendered text is stable too.
      const again = parseRestore(renderSave(r.ruleset));
      expect(again.ok && renderSave(again.ruleset)).toBe(text);
    });
  }
});

describe('hand-written fixtures survive a source-form round trip', () => {
  // Their rules are interleaved across chains on purpose; the source form groups each chain's
  // rules, so the text differs but re-parsing it gives the same kernel state.
  for (const f of readdirSync(inputs).filter((x) => x.endsWith('.rules'))) {
    it(f, () => {
      const opts = { family: (f.startsWith('v6') ? 6 : 4) as 4 | 6, counters: f.includes('counters') };
      const r = parseRestore(readFileSync(join(inputs, f), 'utf8'), opts);
      if (!r.ok) throw new Error(r.error.message);
      const text = renderSave(r.ruleset, { counters: opts.counters });
      const again = parseRestore(text, opts);
      if (!again.ok) throw new Error(again.error.message);
      expect(renderSave(again.ruleset, { form: 'kernel', counters: true })).toBe(renderSave(r.ruleset, { form: 'kernel', counters: true }));
      expect(renderSave(again.ruleset, { counters: opts.counters })).toBe(text);
    });
  }
});
