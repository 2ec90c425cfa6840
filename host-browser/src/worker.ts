// worker.ts — the Web Worker that owns the core: one Playground (engine/playground.ts) answering
// the page's calls (protocol.ts), and between them, once the first scene is drawn, the engine's
// warm-up (engine/warm.ts). The page never blocks on a load, a trace or a burst of packets.
// Never touches the DOM.
import { Playground } from './engine/playground.js';
import { LARGEST_WARM_SCENE, Warmer } from './engine/warm.js';
import { serve, type Port } from './protocol.js';

const pg = new Playground();
/** Services in the largest scene the page has loaded (its load warms what the warm-up would). */
let largest = 0;

serve(self as unknown as Port, {
  load: async (p, progress) => {
    const r = await pg.load(p, (phase, done, total) => progress({ phase, ...(done !== undefined ? { done } : {}), ...(total !== undefined ? { total } : {}) }));
    largest = Math.max(largest, r.serviceCount);
    return r;
  },
  packet: (p) => pg.packet(p.packet, p.nowMs, p.send),
  send: (p, progress) => pg.send(p.packet, p.count, p.nowMs, (phase) => progress({ phase })),
  conntrack: (p) => pg.conntrack(p.nowMs),
  compare: (p, progress) => pg.compare(p.packet, p.nowMs, p.columns, p.count, (phase, done, total) => progress({ phase, ...(done !== undefined ? { done, total: total! } : {}) })),
}, new Warmer(() => largest >= LARGEST_WARM_SCENE));
