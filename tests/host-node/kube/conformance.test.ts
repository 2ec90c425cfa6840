// Byte-identity of the iptables renderer against kube-proxy's own expected rulesets
// (/work/shared/conformance/kube-proxy-iptables). Each corpus file's Services and EndpointSlices
// were reconstructed from the Go test into fixtures/<base>.yaml; rendering them and putting the
// result in the order kube-proxy's tests compare in (sortIPTablesRules) must give the recorded
// ruleset exactly. TestTracePacket(s) hold hand-written full dumps (base chains included), so
// their KUBE-* chains are checked chain by chain against the rendering of the objects they were
// written from.
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CORPUS, FIXTURES, readFixture, renderFixture } from './fixture.js';
import { parseDump, sortRestoreText } from './sort-rules.js';

interface CorpusFile {
  name: string;
  ruleset: string;
  provenance: { commit: string; storedIn: string };
}

const files = readdirSync(CORPUS).filter((f) => f.endsWith('.json')).sort();
const HAND_WRITTEN = new Set(['TestTracePacket.iptables-tracer-v2', 'TestTracePackets.iptables-tracer-v1']);

describe('kube-proxy iptables corpus', () => {
  it('is present and every file is covered by a fixture or the hand-written check', () => {
    expect(files.length).toBe(27);
    for (const f of files) {
      const base = f.replace(/\.json$/, '');
      expect(HAND_WRITTEN.has(base) || existsSync(new URL(`${base}.yaml`, FIXTURES)), base).toBe(true);
    }
  });

  for (const f of files) {
    const base = f.replace(/\.json$/, '');
    if (HAND_WRITTEN.has(base)) continue;
    it(`${base} renders byte-identically`, () => {
      const corpus = JSON.parse(readFileSync(new URL(f, CORPUS), 'utf8')) as CorpusFile;
      const fixture = readFixture(`${base}.yaml`);
      // The fixture must say which kube-proxy era produced the expected text.
      expect(fixture.options.era).toBe(base.endsWith('-v2') ? 'current' : 'v1.28');
      expect(sortRestoreText(renderFixture(fixture))).toBe(corpus.ruleset);
    });
  }

  for (const base of HAND_WRITTEN) {
    it(`${base}: every KUBE-* chain equals the rendered TestOverallIPTablesRulesWithMultipleServices objects`, () => {
      const corpus = JSON.parse(readFileSync(new URL(`${base}.json`, CORPUS), 'utf8')) as CorpusFile;
      const ours = parseDump(sortRestoreText(renderFixture(readFixture('TestOverallIPTablesRulesWithMultipleServices.yaml'))));
      const theirs = parseDump(corpus.ruleset);
      for (const table of ['filter', 'nat']) {
        const mine = new Map(ours.find((t) => t.name === table)!.chains.map((c) => [c.name, c.rules]));
        const given = theirs.find((t) => t.name === table)!.chains.filter((c) => c.name.startsWith('KUBE-'));
        expect(given.map((c) => c.name).sort()).toEqual([...mine.keys()].sort());
        for (const c of given) expect(mine.get(c.name), `${table} ${c.name}`).toEqual(c.rules);
      }
    });
  }
});
