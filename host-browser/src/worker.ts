// worker.ts — the Web Worker that owns the core: one Playground (engine/playground.ts) answering
// the page's calls (protocol.ts), and between them, once the first scene is drawn, the engine's
// warm-up (engine/warm.ts). The page never blocks on a load, a trace or a burst of packets.
// Never touches the DOM.
import { Playground } from './engine/playground.js';
import { Warmer } from './engine/warm.js';
import { serve, type Port } from './protocol.js';

const pg = new Playground();

serve(self as unknown as Port, {
  load: (p, progress) => pg.load(p, (phase, done, total) => progress({ phase, ...(done !== undefined ? { done } : {}), ...(total !== undefined ? { total } : {}) })),
  packet: (p) => pg.packet(p.packet, p.nowMs, p.send),
  send: (p, progress) => pg.send(p.packet, p.count, p.nowMs, (phase) => progress({ phase })),
  conntrack: (p) => pg.conntrack(p.nowMs),
  compare: (p, progress) => pg.compare(p.packet, p.nowMs, p.columns, p.count, (phase, done, total) => progress({ phase, ...(done !== undefined ? { done, total: total! } : {}) })),
}, new Warmer());
