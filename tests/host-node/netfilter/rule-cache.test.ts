// The parsed-rule cache (ruleset.ts RuleCache): rule texts a restore reads again come back as the
// same Rule, and texts no restore reads any more leave it — a proxy whose endpoints keep moving
// writes new KUBE-SVC/KUBE-SEP lines at every sync, which must not pile up for the life of the process.
import { describe, expect, it } from 'vitest';
import { parseRestore, type Ruleset } from '../../../host-node/netfilter/index.js';
import { RuleCache } from '../../../host-node/netfilter/ruleset.js';
import type { Rule } from '../../../host-node/netfilter/model.js';

function ok(text: string, base?: Ruleset): Ruleset {
  const r = parseRestore(text, { noflush: true, ...(base ? { base } : {}) });
  if (!r.ok) throw new Error(r.error.message);
  return r.ruleset;
}

const FIXED = 10;
const fixedRule = (k: number): string => `-m comment --comment "ns/web:http -> 198.19.0.${k}:8080" -m statistic --mode random --probability 0.1 -j KUBE-SEP-${k}`;
const movingRule = (g: number): string => `-m comment --comment ns/web:http -s 198.19.${g >> 8}.${g & 255}/32 -j KUBE-MARK-MASQ`;

/** KUBE-SVC-WEB rewritten (flushed by its declaration) with the fixed rules, in reverse order every
 *  other time (so most lines are not where the chain had them and come from the cache), and one
 *  rule whose text is new at every sync. */
function sync(g: number): string {
  const fixed = Array.from({ length: FIXED }, (_, k) => fixedRule(k));
  if (g % 2 === 1) fixed.reverse();
  const lines = ['*nat', ':KUBE-SVC-WEB - [0:0]', ':KUBE-MARK-MASQ - [0:0]'];
  for (let k = 0; k < FIXED; k++) lines.push(`:KUBE-SEP-${k} - [0:0]`);
  lines.push(...[movingRule(g), ...fixed].map((r) => `-A KUBE-SVC-WEB ${r}`), 'COMMIT', '');
  return lines.join('\n');
}

const rulesOf = (rs: Ruleset): readonly Rule[] => rs.table('nat')!.chain('KUBE-SVC-WEB')!.rules;

describe('parsed-rule cache', () => {
  it('keeps what restores read again and lets go of what they no longer read', () => {
    const cache = new RuleCache(1 << 10, 4);
    const a = {} as Rule, b = {} as Rule;
    cache.set('a', a);
    cache.set('b', b);
    for (let k = 0; k < 12; k++) {
      cache.restoring();
      expect(cache.get('b')).toBe(b);
    }
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('b')).toBe(b);
    // The size bound still turns generations over within one restore.
    const small = new RuleCache(2, 1000);
    small.set('x', a);
    small.set('y', b);
    small.set('z', a);
    small.set('w', b);
    expect(small.get('x')).toBe(a); // in the old generation, now back in the current one
    small.set('v', b);
    small.set('u', a);
    expect(small.get('y')).toBeUndefined();
    expect(small.get('x')).toBe(a);
  });

  it('stays bounded over thousands of syncs that each bring a new rule text, reusing the rules that stay', () => {
    // A chain new to the block is not cached; its first rewrites, out of order, fill the cache
    // (a line the chain had near the same place is taken from the chain itself instead).
    let rs = ok(sync(0));
    const first = new Map<string, Rule>();
    for (let g = 1; g <= 3; g++) {
      rs = ok(sync(g), rs);
      if (g >= 2) for (const r of rulesOf(rs).slice(1)) if (!first.has(r.text)) first.set(r.text, r);
    }
    const cache = rs.cache;
    let most = 0;
    for (let g = 4; g <= 3000; g++) {
      rs = ok(sync(g), rs);
      most = Math.max(most, cache.size);
      const rules = rulesOf(rs);
      expect(rules[0]!.text).toBe(movingRule(g));
    }
    // One generation holds at most one span's new texts and the fixed ones; two generations twice that.
    expect(most).toBeLessThanOrEqual(2 * (cache.span + FIXED + 1));
    // The fixed rules came from the cache all along: the very objects the first sync parsed.
    for (const r of rulesOf(rs).slice(1)) expect(r).toBe(first.get(r.text));
  });
});
