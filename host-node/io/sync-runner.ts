// sync-runner.ts — when the node proxy syncs: kube-proxy's bounded-frequency runner
// (pkg/proxy/runner: at least minSyncPeriod from the end of one sync to the start of the next;
// requests in between are coalesced into one sync when the period is up; 0 = every request at
// once). A request while a sync runs makes one more sync after it; two never run at once. Knows
// nothing of what a sync does; the clock and timers are injectable so tests need no waiting.

/** The timer functions the runner uses (the real ones by default). */
export interface RunnerTimers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const REAL_TIMERS: RunnerTimers = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export class SyncRunner {
  private timer: unknown = null;
  private running: Promise<void> | null = null;
  private again = false;
  private lastEnd = -Infinity;
  private stopped = false;
  /** Syncs started so far. */
  runs = 0;

  constructor(
    private readonly fn: () => Promise<void>,
    private readonly minIntervalMs: number,
    private readonly timers: RunnerTimers = REAL_TIMERS,
  ) {}

  /** Asks for a sync: now if the last one ended minIntervalMs ago or more, else when it has. */
  request(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer !== null) return;
    const wait = Math.max(0, this.lastEnd + this.minIntervalMs - this.timers.now());
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      // A sync reports its own failures; nothing is left to catch here.
      this.start().catch(() => {});
    }, wait);
  }

  /** Runs a sync at once; while one runs, owes one more after it and waits for the running one. */
  async now(): Promise<void> {
    if (this.timer !== null) {
      this.timers.clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.running) {
      this.again = true;
      return this.running;
    }
    return this.start();
  }

  /** No sync starts after this; resolves once the running one has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
    await this.running?.catch(() => {});
  }

  private start(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.runs++;
    const run = this.fn().finally(() => {
      this.running = null;
      this.lastEnd = this.timers.now();
      if (this.again) {
        this.again = false;
        this.request();
      }
    });
    this.running = run;
    return run;
  }
}
