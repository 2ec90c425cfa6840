// proxy-loop.ts — the node proxy's packet loop on the libuv event loop: a uv_poll watcher
// (koffi.node.poll) on the TUN fd wakes the loop when packets are queued; each wake-up drains up
// to a few batches through TunPump, so other callbacks (config pushes, metrics) still get turns.
// A timer reaps expired flows in small slices. Time is a monotonic millisecond clock handed to
// the core. Never blocks the event loop on a read, never decides a packet's fate (the core does),
// never configures the device or routes.
import koffi from 'koffi';
import { performance } from 'node:perf_hooks';
import type { Dataplane } from '../core/dataplane.js';
import { TunDevice, TunPump, errnoName, type TunCounters } from './tun.js';

export interface ProxyLoopOptions {
  /** Packets per core.processBatch call (capped by the arena), default 64. */
  batchSize?: number;
  /** Batches drained per readiness wake-up before yielding to other callbacks, default 16. */
  batchesPerWake?: number;
  /** How often expired flows are reaped, default 1000 ms. */
  expireEveryMs?: number;
  /** Conntrack slots scanned per reap, default 4096 (bounded work per tick). */
  expireBudget?: number;
  /** Monotonic milliseconds; default performance.now(). */
  clock?: () => number;
  /**
   * Answers the cluster DNS queries the core hands to the host (reason dns_upstream, with
   * dnsForward on): each reply packet is written back to the device when it arrives
   * (host-node/dns/forward.ts DnsPacketForwarder).
   */
  dnsForwarder?: { reply(packet: Uint8Array): Promise<Uint8Array | null> };
  /**
   * Tells packets routed in only for un-NAT (endpoints' replies) from served ones; those go to the
   * core as TRACKED_ONLY (served.ts). Without it every packet is judged in full.
   */
  served?: { trackedOnly(b: Uint8Array, at: number, len: number): boolean };
  /**
   * Called once when the device can no longer be waited on (its readiness wait failed: the device
   * was deleted, or its descriptor closed under the loop). The loop has stopped by then; nothing
   * would read a packet again.
   */
  onFailure?: (reason: string) => void;
}

export interface ProxyLoopStats extends TunCounters {
  /** Readiness callbacks taken. */
  wakeups: number;
  /** Flows removed by the periodic reaper. */
  reaped: number;
  /** Readiness callbacks that reported an error instead. */
  pollErrors: number;
}

const WARM_BYTES = 1 << 18;
const WARM_EVERY_MS = 10;

/** One TUN device served by one Dataplane on the current event loop. */
export class ProxyLoop {
  private readonly pump: TunPump;
  private readonly batchesPerWake: number;
  private readonly clock: () => number;
  private readonly expireEveryMs: number;
  private readonly expireBudget: number;
  private poller: ReturnType<typeof koffi.node.poll> | null = null;
  private reaper: ReturnType<typeof setInterval> | null = null;
  private warmer: ReturnType<typeof setInterval> | null = null;
  private wakeups = 0;
  private reaped = 0;
  private pollErrors = 0;
  private readonly onFailure: ((reason: string) => void) | null;

  constructor(readonly dp: Dataplane, readonly tun: TunDevice, opts: ProxyLoopOptions = {}) {
    this.onFailure = opts.onFailure ?? null;
    this.pump = new TunPump(dp, tun, opts.batchSize ?? 64);
    this.pump.served = opts.served ?? null;
    this.batchesPerWake = Math.max(1, opts.batchesPerWake ?? 16);
    this.clock = opts.clock ?? (() => performance.now());
    this.expireEveryMs = opts.expireEveryMs ?? 1000;
    this.expireBudget = opts.expireBudget ?? 4096;
    const fwd = opts.dnsForwarder;
    if (fwd) {
      this.pump.onDnsUpstream = (packet) => {
        void fwd.reply(packet).then((r) => {
          if (!r || !this.tun.isOpen) return;
          if (this.tun.vnetHdr) this.tun.send(r);
          else this.tun.write(r, r.length);
        }, () => {});
      };
    }
  }

  get running(): boolean {
    return this.poller !== null;
  }

  /** Starts watching the device. Idempotent. */
  start(): void {
    if (this.poller || !this.tun.isOpen) return;
    // koffi calls back with (status, events) — its typings say (events) — and we only watch for
    // readable, so any successful call means "drain".
    // libuv reports an error (POLLERR: a TUN device gone from under its descriptor; its negative
    // errno) once, and stops the wait: the loop is over.
    const onPoll = (status: unknown): void => {
      if (status === 0) {
        this.onReadable();
        return;
      }
      this.pollErrors++;
      if (!this.poller) return;
      this.stop();
      this.onFailure?.(`waiting for packets on the device failed (${typeof status === 'number' ? errnoName(-status) : String(status)}): it was deleted or closed`);
    };
    this.poller = koffi.node.poll(this.tun.fd, { readable: true }, onPoll as unknown as Parameters<typeof koffi.node.poll>[1]);
    this.reaper = setInterval(() => {
      this.reaped += this.dp.expire(this.now(), this.expireBudget);
    }, this.expireEveryMs);
    this.reaper.unref();
    // The conntrack table's memory is only reserved at start: it is made resident in small steps
    // between wake-ups (a quarter MB, ~64 pages, per tick), so new connections do not each wait
    // for the system to supply the page their entry lands in.
    this.warmer = setInterval(() => {
      if (this.dp.warmConntrack(WARM_BYTES) === 0) this.stopWarming();
    }, WARM_EVERY_MS);
    this.warmer.unref();
    // Packets may already be queued (uv_poll is level-triggered, but start is not a wake-up).
    this.onReadable();
  }

  /** Stops watching; the device stays open (close it with stop(true) or tun.close()). */
  stop(closeDevice = false): void {
    if (this.poller) {
      this.poller.stop();
      this.poller.close();
      this.poller = null;
    }
    if (this.reaper) {
      clearInterval(this.reaper);
      this.reaper = null;
    }
    this.stopWarming();
    if (closeDevice) this.tun.close();
  }

  private stopWarming(): void {
    if (this.warmer) {
      clearInterval(this.warmer);
      this.warmer = null;
    }
  }

  /** Drains queued packets now (also what a wake-up does); returns packets read. */
  drain(maxBatches = this.batchesPerWake): number {
    const now = this.now();
    let total = 0;
    for (let b = 0; b < maxBatches; b++) {
      const n = this.pump.pumpOnce(now);
      total += n;
      if (n < this.pump.batchSize) break;
    }
    return total;
  }

  stats(): ProxyLoopStats {
    return { ...this.pump.counters, wakeups: this.wakeups, reaped: this.reaped, pollErrors: this.pollErrors };
  }

  private onReadable(): void {
    this.wakeups++;
    this.drain();
  }

  private now(): number {
    return Math.floor(this.clock());
  }
}
