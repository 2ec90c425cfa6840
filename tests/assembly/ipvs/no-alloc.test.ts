// The IPVS packet path never allocates and makes no indirect calls: a static check over the debug
// build's text, from the IPVS batch entry (which reaches ipvsProcess and every scheduler).
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const wat = readFileSync(fileURLToPath(new URL('../../../build/core.debug.wat', import.meta.url)), 'utf8');
const ALLOCATORS = /^\$~lib\/rt\/(tlsf\/__alloc|tlsf\/__realloc|tlsf\/allocateBlock|tlsf\/growMemory|itcms\/__new|itcms\/__renew|itcms\/step|itcms\/__collect)|^\$~lib\/memory\/heap\.alloc/;

function reach(root: string): { seen: Set<string>; graph: Map<string, { calls: Set<string>; indirect: boolean }> } {
  const graph = new Map<string, { calls: Set<string>; indirect: boolean }>();
  let cur: { calls: Set<string>; indirect: boolean } | null = null;
  for (const line of wat.split('\n')) {
    const def = /^ \(func (\$[^\s()]+)/.exec(line);
    if (def) { cur = { calls: new Set(), indirect: false }; graph.set(def[1]!, cur); continue; }
    if (!cur) continue;
    for (const m of line.matchAll(/\bcall (\$[^\s()]+)/g)) cur.calls.add(m[1]!);
    if (line.includes('call_indirect') || line.includes('call_ref')) cur.indirect = true;
  }
  const seen = new Set([root]);
  const stack = [root];
  while (stack.length) for (const c of graph.get(stack.pop()!)?.calls ?? []) if (!seen.has(c)) { seen.add(c); stack.push(c); }
  return { seen, graph };
}

describe('IPVS packet path', () => {
  it('reaches ipvsProcess and the schedulers but no allocator, collector or indirect call', () => {
    const { seen, graph } = reach('$assembly/ipvs/api/ipvsProcessBatch');
    expect(graph.has('$assembly/ipvs/api/ipvsProcessBatch')).toBe(true);
    expect(seen.has('$assembly/ipvs/core/ipvsProcess')).toBe(true);
    for (const s of ['rr', 'wrr', 'mh', 'lblcr', 'twos']) expect([...seen].some((f) => f.startsWith(`$assembly/ipvs/sched/${s}/`))).toBe(true);
    expect([...seen].filter((f) => ALLOCATORS.test(f))).toEqual([]);
    expect([...seen].filter((f) => graph.get(f)?.indirect)).toEqual([]);
    // The check means something: a control call that allocates is seen allocating.
    expect([...reach('$assembly/ipvs/api/ipvsAddService').seen].some((f) => ALLOCATORS.test(f))).toBe(true);
  });
});
