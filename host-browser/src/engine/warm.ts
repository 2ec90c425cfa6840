// warm.ts — readies the engine's code for a large scene while the page sits idle. A first load of
// 20,000 Services in a fresh page runs much of the control plane, the restore parser, the rule
// compiler and the rules view before V8 has optimized them: about a fifth of its time (Chromium,
// this machine: p50 1.9–2.3 s cold, 1.6–1.8 s after this). So once the page's first scene is
// drawn, the worker takes small scenes of the same shape (scaleObjects) through a throwaway
// Playground as the page would — load, trace, edit one Service, trace — one scene per step,
// between the page's own calls (protocol.ts serve()'s idle work). Never touches the page's
// Playground: each step's engine and core are dropped when it ends.

import { scaleLocate, scaleObjects, scaleService, scaleVip, type Preset } from '../presets.js';
import { Playground } from './playground.js';
import type { WirePacket } from './outcomes.js';

/**
 * Services per scene: over kube-proxy's large-cluster threshold (1,000 endpoints at two each),
 * so its rules take the 20,000-Service scene's shape (no comments), and small enough that a call
 * arriving meanwhile waits for one step only (about 0.1 s cold).
 */
export const WARM_SERVICES = 600;
/** Scenes in all: about a second of the worker's time. Fewer left the 20k load measurably colder. */
export const WARM_STEPS = 10;

const SCENE: Preset = {
  id: 'warm-up', title: 'warm-up', lesson: '', mode: 'iptables', scheduler: 'rr',
  packet: { from: 'pod', src: '10.244.1.5', to: 'vip', service: '', dst: scaleVip(0), dport: 80, proto: 'tcp', sport: 40000 },
  generate: () => scaleObjects(WARM_SERVICES), size: WARM_SERVICES, serviceObjects: scaleService, locate: scaleLocate, shown: 0,
};

export interface WarmReport {
  steps: number;
  /** Time spent in steps (ms), not counting the page's calls between them. */
  ms: number;
}

export class Warmer {
  private done = 0;
  private spent = 0;

  /** True while steps remain. */
  get more(): boolean {
    return this.done < WARM_STEPS;
  }

  get report(): WarmReport {
    return { steps: this.done, ms: Math.round(this.spent) };
  }

  /** One scene: loaded, traced, one Service's endpoints moved, traced again. False once the last step has run. */
  async step(): Promise<boolean> {
    if (!this.more) return false;
    const t0 = performance.now();
    const pg = new Playground((id) => (id === SCENE.id ? SCENE : undefined));
    const i = (this.done * 7919) % WARM_SERVICES;
    const packet: WirePacket = { src: '10.244.1.5', dst: scaleVip(i), proto: 'tcp', sport: 40000 + i, dport: 80, local: false };
    const base = { mode: 'iptables' as const, scheduler: 'rr' };
    const loaded = await pg.load({ source: { preset: SCENE.id }, fresh: true, ...base });
    if (loaded.issues.length) throw new Error(`warm-up scene: ${loaded.issues[0]!.message}`);
    pg.packet(packet, 0, false);
    const [, slice] = scaleService(i) as [unknown, { endpoints: { addresses: string[] }[] }];
    slice.endpoints[0]!.addresses = ['10.250.0.1'];
    await pg.load({ source: { preset: SCENE.id, edits: [slice] }, fresh: false, ...base });
    const after = pg.packet(packet, 0, false);
    if (!after.trace.outcomes.some((o) => o.to === '10.250.0.1:8080')) throw new Error('warm-up scene: the edit did not reach the trace');
    this.done++;
    this.spent += performance.now() - t0;
    return this.more;
  }
}
