// When the node proxy syncs (kube-proxy's runner): at once when the last sync ended a
// min-sync-period ago, else once the period is up, with every request in between folded into that
// one sync; never two at once; min-sync-period 0 syncs on every request. A hand-driven clock.
import { describe, expect, it } from 'vitest';
import { SyncRunner, type RunnerTimers } from '../../../host-node/io/sync-runner.js';

/** Timers on a clock the test moves; due callbacks run when it moves past them. */
class Clock implements RunnerTimers {
  t = 0;
  private due: Array<{ at: number; fn: () => void; id: number }> = [];
  private ids = 0;
  now(): number { return this.t; }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.ids;
    this.due.push({ at: this.t + ms, fn, id });
    return id;
  }
  clearTimeout(h: unknown): void { this.due = this.due.filter((d) => d.id !== h); }
  /** Moves the clock to `t`, running what falls due on the way (and what that starts). */
  async to(t: number): Promise<void> {
    for (;;) {
      await settle();
      const next = this.due.filter((d) => d.at <= t).sort((a, b) => a.at - b.at)[0];
      if (!next) break;
      this.t = Math.max(this.t, next.at);
      this.due = this.due.filter((d) => d !== next);
      next.fn();
    }
    this.t = t;
    await settle();
  }
}
const settle = async (): Promise<void> => { for (let i = 0; i < 10; i++) await Promise.resolve(); };

/** A runner whose syncs take `takes` ms of the clock and record when they started. */
function runner(min: number, takes = 0) {
  const clock = new Clock();
  const starts: number[] = [];
  const r = new SyncRunner(async () => {
    starts.push(clock.t);
    if (takes > 0) await new Promise<void>((done) => clock.setTimeout(done, takes));
  }, min, clock);
  return { clock, starts, r };
}

describe('SyncRunner', () => {
  it('syncs at once after a quiet period, and folds a burst into one sync a period after the last ended', async () => {
    const { clock, starts, r } = runner(1000);
    r.request();
    await clock.to(0);
    expect(starts).toEqual([0]);
    for (const t of [100, 400, 999]) {
      await clock.to(t);
      r.request();
    }
    await clock.to(999);
    expect(starts).toEqual([0]);
    await clock.to(1000);
    expect(starts).toEqual([0, 1000]);
    await clock.to(5000);
    r.request();
    await clock.to(5000);
    expect(starts).toEqual([0, 1000, 5000]);
  });

  it('counts the period from the end of a sync, and owes one sync to requests made while one ran', async () => {
    const { clock, starts, r } = runner(1000, 300);
    r.request();
    await clock.to(100);
    r.request();
    r.request();
    await clock.to(1299);
    expect(starts).toEqual([0]);
    await clock.to(1300);
    expect(starts).toEqual([0, 1300]);
    await clock.to(10_000);
    expect(starts).toEqual([0, 1300]);
  });

  it('syncs on every request with a period of 0, one at a time', async () => {
    const { clock, starts, r } = runner(0, 10);
    r.request();
    await clock.to(0);
    r.request();
    r.request();
    await clock.to(10);
    expect(starts).toEqual([0, 10]);
    await clock.to(100);
    expect(starts).toEqual([0, 10]);
  });

  it('now() syncs without waiting for the period; stop() ends every sync to come', async () => {
    const { clock, starts, r } = runner(1000);
    await r.now();
    r.request();
    await clock.to(10);
    expect(starts).toEqual([0]);
    await clock.to(20);
    await r.now();
    expect(starts).toEqual([0, 20]);
    r.request();
    await r.stop();
    await clock.to(10_000);
    r.request();
    await clock.to(20_000);
    expect(starts).toEqual([0, 20]);
    expect(r.runs).toBe(2);
  });
});
