// bench/gc-pauses.ts — the garbage collector's pauses as the runtime reports them (PerformanceObserver
// 'gc' entries), summed over timed windows, so that a benchmark can say how much of a number was
// spent collecting garbage (its own or the code's under test). Never forces a collection.
import { PerformanceObserver } from 'node:perf_hooks';

export class GcPauses {
  /** (start, duration) in performance.now() milliseconds, in the order reported. */
  private readonly pauses: Array<[number, number]> = [];
  private readonly observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) this.pauses.push([e.startTime, e.duration]);
  });

  start(): this {
    this.observer.observe({ entryTypes: ['gc'] });
    return this;
  }

  stop(): void {
    this.observer.disconnect();
  }

  /** Milliseconds of GC pause between two performance.now() readings. */
  async between(from: number, to: number): Promise<number> {
    // Reports arrive on a timer after the pause, later still on a busy machine: wait (a second at
    // most) until one at or after `from` has arrived.
    const seen = () => this.pauses.some(([at]) => at >= from);
    for (let waited = 0; waited < 1000 && (waited === 0 || !seen()); waited += 50) await new Promise((r) => setTimeout(r, 50));
    let ms = 0;
    for (const [at, d] of this.pauses) if (at >= from && at < to) ms += d;
    return ms;
  }
}
