// The per-packet path never allocates: a static check over the debug build's text. Every function
// reachable from processBatch (direct calls; no indirect calls allowed) must stay clear of the
// runtime's allocator and collector.
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const wat = readFileSync(fileURLToPath(new URL('../../build/core.debug.wat', import.meta.url)), 'utf8');

function callGraph(text: string): Map<string, { calls: Set<string>; indirect: boolean }> {
  const graph = new Map<string, { calls: Set<string>; indirect: boolean }>();
  let current: { calls: Set<string>; indirect: boolean } | null = null;
  for (const line of text.split('\n')) {
    const def = /^ \(func (\$[^\s()]+)/.exec(line);
    if (def) {
      current = { calls: new Set(), indirect: false };
      graph.set(def[1]!, current);
      continue;
    }
    if (!current) continue;
    for (const m of line.matchAll(/\bcall (\$[^\s()]+)/g)) current.calls.add(m[1]!);
    if (line.includes('call_indirect') || line.includes('call_ref')) current.indirect = true;
  }
  return graph;
}

function reachable(graph: ReturnType<typeof callGraph>, root: string): Set<string> {
  const seen = new Set<string>([root]);
  const stack = [root];
  while (stack.length) {
    const f = graph.get(stack.pop()!);
    for (const c of f?.calls ?? []) if (!seen.has(c)) { seen.add(c); stack.push(c); }
  }
  return seen;
}

const ALLOCATORS = /^\$~lib\/rt\/(tlsf\/__alloc|tlsf\/__realloc|tlsf\/allocateBlock|tlsf\/growMemory|itcms\/__new|itcms\/__renew|itcms\/step|itcms\/__collect)|^\$~lib\/memory\/heap\.alloc/;

describe('per-packet path', () => {
  const graph = callGraph(wat);

  it('finds the entry point and the allocator in the build (so the check below means something)', () => {
    expect(graph.has('$assembly/index/processBatch')).toBe(true);
    expect([...graph.keys()].some((f) => ALLOCATORS.test(f))).toBe(true);
    // A control call that allocates is seen as allocating by the same walk.
    const load = reachable(graph, '$assembly/index/cfgBuffer');
    expect([...load].some((f) => ALLOCATORS.test(f))).toBe(true);
  });

  it('reaches no allocator, collector or indirect call from processBatch', () => {
    const seen = reachable(graph, '$assembly/index/processBatch');
    expect(seen.size).toBeGreaterThan(20);
    const bad = [...seen].filter((f) => ALLOCATORS.test(f));
    expect(bad).toEqual([]);
    const indirect = [...seen].filter((f) => graph.get(f)?.indirect);
    expect(indirect).toEqual([]);
  });
});
