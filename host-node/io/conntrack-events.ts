// conntrack-events.ts — `conntrack -E` for a running proxy: the flow table's events (NEW when a
// connection is stored, UPDATE when it changes, DESTROY when it goes) streamed to every listener
// of /conntrack?events,
// each selected as conntrack -L selects and printed as conntrack -E prints the kernel's
// (core/conntrack-list.ts eventLine). The core records events only while someone listens; one
// taker drains them every PERIOD_MS for all listeners. Events the core could not hold, and lines
// a listener too slow to read could not take, are said in conntrack's own warning, never
// silently skipped. Never changes a flow.
import type { Dataplane } from '../dataplane.js';
import { conntrackMatches, eventLine, type ConntrackFilter } from '../core/conntrack-list.js';

/** How often the core's events are taken while someone listens (ms). */
export const EVENT_PERIOD_MS = 100;
/** Events the core holds between two takes: 160,000 a second before any is lost. */
export const EVENT_SLOTS = 16384;
/** Lines kept for one listener that has not read them; past it, the oldest are dropped. */
export const LISTENER_BACKLOG = 65536;

/** conntrack(8)'s words when the kernel's socket buffer overflows (conntrack.c). */
export const LOSING_EVENTS = 'WARNING: We have hit ENOBUFS! We are losing events.';

interface Listener {
  filter: ConntrackFilter;
  lines: string[];
  wake: (() => void) | null;
  done: boolean;
}

export class ConntrackEventFeed {
  private readonly listeners = new Set<Listener>();
  private timer: ReturnType<typeof setInterval> | null = null;
  private lost = 0;
  private closed = false;

  constructor(private readonly dp: Dataplane, private readonly clock: () => number, private readonly periodMs = EVENT_PERIOD_MS) {}

  /** Listeners now. */
  get size(): number {
    return this.listeners.size;
  }

  /**
   * The events `filter` selects, as text chunks of whole lines, until the caller's return() (the
   * HTTP server calls it when the client goes away, even while nothing is coming) or close().
   */
  listen(filter: ConntrackFilter): AsyncIterableIterator<string> {
    const l: Listener = { filter, lines: [], wake: null, done: this.closed };
    if (!l.done) {
      this.listeners.add(l);
      if (this.listeners.size === 1) this.start();
    }
    const end = (): IteratorResult<string> => {
      l.done = true;
      if (this.listeners.delete(l) && this.listeners.size === 0) this.stop();
      l.wake?.();
      return { value: undefined, done: true };
    };
    return {
      next: async (): Promise<IteratorResult<string>> => {
        for (;;) {
          // What was said before the end is still delivered (a fault's warning).
          if (l.lines.length > 0) {
            const value = l.lines.join('');
            l.lines = [];
            return { value, done: false };
          }
          if (l.done || this.closed) return end();
          await new Promise<void>((r) => { l.wake = r; });
          l.wake = null;
        }
      },
      return: async (): Promise<IteratorResult<string>> => end(),
      [Symbol.asyncIterator]() { return this; },
    };
  }

  /** Ends every listener's stream and records nothing more. */
  close(): void {
    this.closed = true;
    for (const l of this.listeners) l.wake?.();
    this.stop();
  }

  /** Takes the core's events now and hands them out (the timer's work; tests call it directly). */
  take(): void {
    const nowMs = this.clock();
    const { events, lost } = this.dp.conntrackEventsTake(nowMs);
    const newlyLost = lost - this.lost;
    this.lost = lost;
    for (const l of this.listeners) {
      if (newlyLost > 0) l.lines.push(`${LOSING_EVENTS} (${newlyLost} the proxy's core could not hold)\n`);
      for (const ev of events) if (conntrackMatches(ev.flow, l.filter)) l.lines.push(`${eventLine(ev.kind, ev.flow, nowMs, ev.stateChanged)}\n`);
      if (l.lines.length > LISTENER_BACKLOG) {
        const over = l.lines.length - LISTENER_BACKLOG;
        l.lines.splice(0, over);
        l.lines.unshift(`${LOSING_EVENTS} (${over} not read in time)\n`);
      }
      if (l.lines.length > 0) l.wake?.();
    }
  }

  private start(): void {
    this.dp.conntrackEvents(EVENT_SLOTS);
    this.lost = 0;
    this.timer = setInterval(() => {
      // The proxy's thread: a fault here ends the listeners' streams, never the proxy.
      try {
        this.take();
      } catch (e) {
        for (const l of this.listeners) {
          l.lines.push(`WARNING: events stopped: ${(e as Error).message}\n`);
          l.done = true;
          l.wake?.();
        }
      }
    }, this.periodMs);
    this.timer.unref();
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.dp.conntrackEvents(0);
  }
}
