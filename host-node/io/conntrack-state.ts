// conntrack-state.ts — the proxy's conntrack state file: read at start (the flows and the clock
// they continue on), written at exit, and written as a checkpoint every period while the proxy
// runs, so a proxy that is killed (SIGKILL, the OOM killer) or crashes comes back with the
// connections it had at its last checkpoint instead of none. A checkpoint reads the table a slice
// at a time between packet batches and writes the file from the thread pool: forwarding never waits
// for a whole table's save or for the disk. Every write is atomic (a reader sees the old file or the
// new one). Never decides packets and never changes the table.
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, readFileSync, renameSync, statSync, writeSync, unlinkSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import type { Dataplane } from '../dataplane.js';
import { decodeSnapshot } from '../core/snapshot.js';

/** Flows read per slice of a checkpoint: a millisecond or two of the loop's time, then packets again. */
const CHECKPOINT_SLICE = 2048;

/** Thrown inside a checkpoint's write when the proxy stopped meanwhile (not a failure). */
const STOPPED = new Error('stopped');

const tmpName = (file: string, kind: string): string => join(dirname(file), `.${basename(file)}.${process.pid}.${kind}.tmp`);

/** Writes `bytes` to `file` so that a reader sees the old or the new content, never a torn one. */
export function writeFileAtomic(file: string, bytes: Uint8Array): void {
  const tmp = tmpName(file, 'exit');
  const fd = openSync(tmp, 'w', 0o600);
  try {
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, file);
  } catch (e) {
    try { unlinkSync(tmp); } catch { /* already gone */ }
    throw e;
  }
}

/** A state file read at start: its snapshot, and where the core's clock continues from. */
export interface SavedState {
  snapshot: Uint8Array | null;
  /**
   * Added to `now()` this gives the core's clock: the snapshot's time plus the wall time since it
   * was written, so every flow's lifetime counts the time the proxy was away.
   */
  clockOffset: number;
}

/**
 * Reads `file` when there is one; a file that cannot be used costs the flows (said in `log`), never
 * the start. Temporary files an earlier run left beside it (killed while writing) are removed: a
 * proxy in a crash loop would otherwise leave one the size of its table each time.
 */
export function readConntrackState(file: string | undefined, now: () => number, log: (line: string) => void): SavedState {
  const fresh = { snapshot: null, clockOffset: -now() };
  if (!file) return fresh;
  removeTemporaries(file, log);
  if (!existsSync(file)) return fresh;
  try {
    const bytes = readFileSync(file);
    const saved = decodeSnapshot(bytes).savedAtMs;
    return { snapshot: bytes, clockOffset: -now() + saved + Math.max(0, Date.now() - statSync(file).mtimeMs) };
  } catch (e) {
    log(`proxy: conntrack state ${file} ignored: ${(e as Error).message}`);
    return fresh;
  }
}

function removeTemporaries(file: string, log: (line: string) => void): void {
  const dir = dirname(file);
  const prefix = `.${basename(file)}.`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;   // no directory yet: nothing left in it
  }
  for (const name of names) {
    if (!name.startsWith(prefix) || !/^\d+\.(checkpoint|exit)\.tmp$/.test(name.slice(prefix.length))) continue;
    try {
      unlinkSync(join(dir, name));
      log(`proxy: removed ${join(dir, name)}, left by a run killed while writing its conntrack state`);
    } catch { /* gone meanwhile, or not ours to remove */ }
  }
}

/** Checkpoints of the flows into the state file every `periodMs` (0: none), until stop(). */
export class ConntrackCheckpoints {
  private timer: ReturnType<typeof setInterval> | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private lastError = '';
  /** Checkpoints written, and failed. */
  written = 0;
  failed = 0;
  /** Wall time (ms) the last checkpoint written was taken at; 0 before the first. */
  lastWrittenMs = 0;

  constructor(
    private readonly dp: Dataplane, private readonly file: string, private readonly periodMs: number,
    private readonly clock: () => number, private readonly log: (line: string) => void,
  ) {}

  start(): void {
    if (this.periodMs <= 0 || this.timer || this.stopped) return;
    this.timer = setInterval(() => { void this.checkpoint(); }, this.periodMs);
    this.timer.unref();
  }

  /** Takes and writes one checkpoint now, unless one is under way (then that one's promise). Never rejects. */
  checkpoint(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.running ??= this.write().then((takenAt) => {
      if (takenAt === null) return;
      if (this.lastError) this.log(`proxy: conntrack checkpoint to ${this.file} written again`);
      this.lastError = '';
      this.written++;
      this.lastWrittenMs = takenAt;
    }, (e: Error) => {
      this.failed++;
      // Said once per distinct failure (a full disk fails every period the same way).
      if (e.message !== this.lastError) this.log(`proxy: conntrack checkpoint to ${this.file} failed (the last one written stays): ${e.message}`);
      this.lastError = e.message;
    }).finally(() => { this.running = null; });
    return this.running;
  }

  /**
   * A checkpoint taken after this call: the one under way may have read the table before a change
   * that must reach the file (flows deleted on request), so it is followed by another. Never rejects.
   */
  checkpointAfter(): Promise<void> {
    return (this.running ?? Promise.resolve()).then(() => this.checkpoint());
  }

  /** No more checkpoints; resolves once one under way has finished or given up, so the exit save comes last. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One checkpoint; the wall time it was taken at, or null when the proxy stopped before it was written. */
  private async write(): Promise<number | null> {
    // The snapshot's time, and the wall time that goes with it: the file's modification time is set
    // to it, so a start reading this file counts the time since then (readConntrackState).
    const at = Math.floor(this.clock());
    const wallAt = Date.now();
    const steps = this.dp.snapshotSteps(at);
    while (!steps.step(CHECKPOINT_SLICE)) {
      await new Promise((r) => setImmediate(r));
      if (this.stopped) return null;
    }
    const chunks = steps.finish();
    const tmp = tmpName(this.file, 'checkpoint');
    try {
      const fh = await open(tmp, 'w', 0o600);
      try {
        for (const chunk of chunks) {
          for (let off = 0; off < chunk.length;) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
        }
        await fh.sync();
        await fh.utimes(wallAt / 1000, wallAt / 1000);
      } finally {
        await fh.close();
      }
      // Stopped meanwhile: the exit save is about to write the file; this older one must not land after it.
      if (this.stopped) throw STOPPED;
      await rename(tmp, this.file);
      return wallAt;
    } catch (e) {
      await unlink(tmp).catch(() => {});
      if (e === STOPPED) return null;
      throw e;
    }
  }
}
