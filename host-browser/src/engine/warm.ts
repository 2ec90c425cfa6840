// warm.ts — readies the engine's code for a large scene while the page sits idle. A first load of
// 20,000 Services in a fresh page runs much of the control plane, the restore parser, the rule
// compiler and the rules view before V8 has optimized them: about a third of its time (Chromium
// on this machine, p50 of seven loads: 2.4 s picked at once, 1.5 s after this). So once the
// page's first scene is drawn, the worker takes smaller scenes of the same shape (scaleObjects)
// through a throwaway Playground as the page would — load, trace, edit one Service, trace, and in
// the last steps two edits as the page's form sends them — one scene per step, between the page's
// own calls (protocol.ts serve()'s idle work). It ends early once the page itself has loaded a
// scene as large as its last (that load warmed the same code). Never touches the page's
// Playground: each step's engine and core are dropped when it ends.

import { presetById, scaleObjects, scaleService, scaleVip, type Preset } from '../presets.js';
import { Playground } from './playground.js';
import type { WirePacket } from './outcomes.js';

/**
 * Services in each scene, in order. They grow as the code warms, so a step stays short: a call
 * that arrives meanwhile waits for one step only, about 0.1 s in the first steps and up to ~0.4 s
 * in the last. From the sixth on they are over kube-proxy's large-cluster threshold (1,000
 * endpoints at two each), so their rules take the 20,000-Service scene's shape (no comments).
 * The large last scenes take that scene's code to V8's optimizing compiler (TurboFan). With
 * scenes of at most 600 Services it stayed at the middle tier (Maglev), and the 20k load itself
 * then spent ~2.4 s compiling on background threads, on a machine of two vCPUs, while it and the
 * first edits ran. Chromium, interleaved runs, six loads each, picked after the warm-up:
 * - scenes of at most 600 Services: load p50 2.10 s, edits 17–36 ms, warm-up ~1.3 s of worker time;
 * - these scenes: load p50 1.67 s, edits 8–22 ms, warm-up ~2.1 s;
 * - 1,000-Service scenes in place of the large last ones: load p50 1.92 s.
 */
export const WARM_SCENES: readonly number[] = [50, 100, 200, 300, 400, 600, 600, 1000, 1500, 2000, 3000, 4000];

/** Services in the largest scene: a load of as many has warmed the code as the steps would. */
export const LARGEST_WARM_SCENE = Math.max(...WARM_SCENES);

/** The last steps that also make edits as the page's form does. */
const FORM_EDIT_STEPS = 3;

/** The 20,000-Service preset at `services` Services. */
const warmScene = (services: number): Preset => ({
  ...presetById('scale-20k')!, id: 'warm-up', generate: () => scaleObjects(services), size: services, shown: 0,
});

export class Warmer {
  private done = 0;
  private spent = 0;

  /** `warmed`: true once the page has loaded a scene of at least `LARGEST_WARM_SCENE` Services. */
  constructor(private readonly warmed: () => boolean = () => false) {}

  /** True while steps remain. */
  get more(): boolean {
    return this.done < WARM_SCENES.length && !this.warmed();
  }

  /** Steps taken, and their time (ms) without the page's calls between them. */
  get report(): { steps: number; ms: number } {
    return { steps: this.done, ms: Math.round(this.spent) };
  }

  /** One scene: loaded, traced, one Service's endpoints moved, traced again (then two form edits in the last steps). False once the last step has run, or the page's own load made the rest moot. */
  async step(): Promise<boolean> {
    if (!this.more) return false;
    const t0 = performance.now();
    const services = WARM_SCENES[this.done]!;
    const preset = warmScene(services);
    const pg = new Playground((id) => (id === preset.id ? preset : undefined));
    const i = (this.done * 7919) % services;
    const packet: WirePacket = { src: '10.244.1.5', dst: scaleVip(i), proto: 'tcp', sport: 40000 + i, dport: 80, local: false };
    const base = { mode: 'iptables' as const, scheduler: 'rr' };
    const loaded = await pg.load({ source: { preset: preset.id }, fresh: true, ...base });
    if (loaded.issues.length) throw new Error(`warm-up scene: ${loaded.issues[0]!.message}`);
    pg.packet(packet, 0, false);
    const [, slice] = scaleService(i) as [unknown, { endpoints: { addresses: string[] }[] }];
    slice.endpoints[0]!.addresses = ['10.250.0.1'];
    await pg.load({ source: { preset: preset.id, edits: [slice] }, fresh: false, ...base });
    const after = pg.packet(packet, 0, false);
    if (!after.trace.outcomes.some((o) => o.to === '10.250.0.1:8080')) throw new Error('warm-up scene: the edit did not reach the trace');
    // In the last steps, then, edits as the page's form sends them: the Service and its slice as a
    // structured clone of the YAML's objects, one pod turned not ready and back, the packet
    // explained in the same call. The edits of a large scene then find their code optimized for
    // these objects, not for the generated ones alone (a first edit otherwise spends milliseconds
    // deoptimizing). Not in the first steps: a scene picked at once waits for the step under way.
    for (const ready of this.done >= WARM_SCENES.length - FORM_EDIT_STEPS ? [false, true] : []) {
      const [svc, sl] = structuredClone(scaleService(i)) as [unknown, { endpoints: { conditions: object }[] }];
      sl.endpoints[0]!.conditions = ready ? { ready: true } : { ready: false, serving: false, terminating: false };
      const r = await pg.load({ source: { preset: preset.id, edits: [svc, sl] }, fresh: false, explain: { packet, nowMs: 0 }, ...base });
      if (r.packet?.trace.outcomes.length !== (ready ? 2 : 1)) throw new Error('warm-up scene: the form edit did not reach the trace');
    }
    this.done++;
    this.spent += performance.now() - t0;
    return this.more;
  }
}
