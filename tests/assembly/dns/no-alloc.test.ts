// dnsAnswer never allocates: a static check over the debug build's text (as tests/assembly/
// no-alloc.test.ts does for processBatch). Every function reachable from the dnsAnswer export must
// stay clear of the runtime's allocator and collector, and make no indirect calls.
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const wat = readFileSync(fileURLToPath(new URL('../../../build/core.debug.wat', import.meta.url)), 'utf8');
const ALLOCATORS = /^\$~lib\/rt\/(tlsf\/__alloc|tlsf\/__realloc|tlsf\/allocateBlock|tlsf\/growMemory|itcms\/__new|itcms\/__renew|itcms\/step|itcms\/__collect)|^\$~lib\/memory\/heap\.alloc/;

function graphOf(text: string): Map<string, { calls: Set<string>; indirect: boolean }> {
  const g = new Map<string, { calls: Set<string>; indirect: boolean }>();
  let cur: { calls: Set<string>; indirect: boolean } | null = null;
  for (const line of text.split('\n')) {
    const def = /^ \(func (\$[^\s()]+)/.exec(line);
    if (def) { cur = { calls: new Set(), indirect: false }; g.set(def[1]!, cur); continue; }
    if (!cur) continue;
    for (const m of line.matchAll(/\bcall (\$[^\s()]+)/g)) cur.calls.add(m[1]!);
    if (line.includes('call_indirect') || line.includes('call_ref')) cur.indirect = true;
  }
  return g;
}

function reach(g: ReturnType<typeof graphOf>, root: string): Set<string> {
  const seen = new Set([root]);
  const stack = [root];
  while (stack.length) for (const c of g.get(stack.pop()!)?.calls ?? []) if (!seen.has(c)) { seen.add(c); stack.push(c); }
  return seen;
}

describe('dnsAnswer allocation', () => {
  const g = graphOf(wat);
  const exported = /\(export "dnsAnswer" \(func (\$[^\s()]+)\)\)/.exec(wat)?.[1];

  it('is exported, and the walk sees the allocation of a control call (dnsLoad)', () => {
    expect(exported).toBeDefined();
    const load = /\(export "dnsLoad" \(func (\$[^\s()]+)\)\)/.exec(wat)![1]!;
    expect([...reach(g, load)].some((f) => ALLOCATORS.test(f))).toBe(true);
  });

  it('reaches no allocator, collector or indirect call', () => {
    const seen = reach(g, exported!);
    expect(seen.size).toBeGreaterThan(8);
    expect([...seen].filter((f) => ALLOCATORS.test(f))).toEqual([]);
    expect([...seen].filter((f) => g.get(f)?.indirect)).toEqual([]);
  });
});
