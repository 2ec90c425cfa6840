// protocol.ts — the typed messages between the page and the core's Web Worker: one request per
// call (id, method, params), any number of progress notes, then one ok or error reply. The page
// side (CoreClient) matches replies to calls; the worker side (serve) runs calls one at a time
// in arrival order, so an edit never overtakes the load before it, and between calls, once the
// first has been answered, steps of idle work (the engine's warm-up), one at a time, never while
// a call waits; a notice (id 0) tells the page when that work is done. Both sides take any
// MessagePort-like object, so the protocol is tested without a browser. Never touches the DOM.
import type { PacketResult, CompareColumn, LoadRequest, LoadResult, ModeConfig, ConntrackRow } from './engine/playground.js';
import type { Distribution, WirePacket } from './engine/outcomes.js';
import type { TraceView } from './engine/modes.js';

/** Every call the worker answers: params → result. */
export interface CoreApi {
  load: (p: LoadRequest) => LoadResult;
  packet: (p: { packet: WirePacket; nowMs: number; send: boolean }) => PacketResult;
  send: (p: { packet: WirePacket; nowMs: number; count: number }) => { trace: TraceView; measured: Distribution };
  conntrack: (p: { nowMs: number }) => ConntrackRow[];
  compare: (p: { packet: WirePacket; nowMs: number; columns: ModeConfig[]; count: number }) => CompareColumn[];
}

export type Method = keyof CoreApi;
export type Params<M extends Method> = Parameters<CoreApi[M]>[0];
export type Result<M extends Method> = ReturnType<CoreApi[M]>;

export interface Request<M extends Method = Method> {
  id: number;
  method: M;
  params: Params<M>;
}

export interface ProgressNote {
  phase: string;
  done?: number;
  total?: number;
}

export type Reply =
  | { id: number; kind: 'progress'; note: ProgressNote }
  | { id: number; kind: 'ok'; value: unknown }
  | { id: number; kind: 'error'; message: string };

/** What the worker says unasked (id 0): its idle work has finished, after `steps` steps taking `ms`. */
export interface Notice {
  id: 0;
  kind: 'idle-done';
  steps: number;
  ms: number;
  /** Why it stopped early, if a step failed. */
  error?: string;
}

/** The part of Worker / MessagePort / DedicatedWorkerGlobalScope both sides use. */
export interface Port {
  postMessage(message: unknown): void;
  onmessage: ((ev: { data: unknown }) => void) | null;
}

export function isRequest(x: unknown): x is Request {
  const r = x as Request | null;
  return typeof r === 'object' && r !== null && Number.isInteger(r.id) && typeof r.method === 'string' && 'params' in r;
}

export function isNotice(x: unknown): x is Notice {
  const n = x as Notice | null;
  return typeof n === 'object' && n !== null && n.id === 0 && n.kind === 'idle-done' && Number.isInteger(n.steps);
}

export function isReply(x: unknown): x is Reply {
  const r = x as Reply | null;
  return typeof r === 'object' && r !== null && Number.isInteger(r.id) && (r.kind === 'progress' || r.kind === 'ok' || r.kind === 'error');
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  onProgress?: (n: ProgressNote) => void;
}

/** The page's side: `await client.call('load', {...}, note => …)`. */
export class CoreClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly port: Port, private readonly onNotice?: (n: Notice) => void) {
    port.onmessage = (ev) => this.receive(ev.data);
  }

  /** Calls waiting for their reply. */
  get busy(): number {
    return this.pending.size;
  }

  call<M extends Method>(method: M, params: Params<M>, onProgress?: (n: ProgressNote) => void): Promise<Result<M>> {
    const id = this.nextId++;
    return new Promise<Result<M>>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, ...(onProgress ? { onProgress } : {}) });
      const req: Request<M> = { id, method, params };
      this.port.postMessage(req);
    });
  }

  private receive(data: unknown): void {
    if (isNotice(data)) {
      this.onNotice?.(data);
      return;
    }
    if (!isReply(data)) return;
    const p = this.pending.get(data.id);
    if (!p) return;
    if (data.kind === 'progress') {
      p.onProgress?.(data.note);
      return;
    }
    this.pending.delete(data.id);
    if (data.kind === 'ok') p.resolve(data.value);
    else p.reject(new Error(data.message));
  }
}

export type Handlers = {
  [M in Method]: (params: Params<M>, progress: (note: ProgressNote) => void) => Result<M> | Promise<Result<M>>;
};

/** Work the worker does while no call waits, a bounded step at a time. */
export interface IdleWork {
  /** Runs one step; false when none remain. */
  step(): boolean | Promise<boolean>;
  /** What the notice reports once the work is done. */
  readonly report: { steps: number; ms: number };
}

/**
 * The worker's side: answers requests in arrival order; a failing call replies with its message.
 * With `idle`, once the first call has been answered, takes idle steps while no call waits: a
 * call that arrives during a step runs after it, and the steps go on once the calls are answered.
 */
export function serve(port: Port, handlers: Handlers, idle?: IdleWork): void {
  let queue: Promise<void> = Promise.resolve();
  let waiting = 0;
  let answered = false;
  let idleDone = idle === undefined;
  let idleQueued = false;
  const finishIdle = (error?: string) => {
    idleDone = true;
    port.postMessage({ id: 0, kind: 'idle-done', ...idle!.report, ...(error ? { error } : {}) } satisfies Notice);
  };
  // A macrotask later, so a message that arrived meanwhile is queued before the step is.
  const scheduleIdle = () => {
    if (idleDone || idleQueued || !answered) return;
    idleQueued = true;
    setTimeout(() => {
      idleQueued = false;
      if (waiting !== 0 || idleDone) return;
      queue = queue.then(async () => {
        try {
          if (!(await idle!.step())) finishIdle();
        } catch (e) {
          finishIdle(e instanceof Error ? e.message : String(e));
        }
        if (waiting === 0) scheduleIdle();
      });
    }, 0);
  };
  port.onmessage = (ev) => {
    const req = ev.data;
    if (!isRequest(req)) return;
    waiting++;
    queue = queue.then(async () => {
      const progress = (note: ProgressNote) => port.postMessage({ id: req.id, kind: 'progress', note } satisfies Reply);
      try {
        const handler = handlers[req.method] as ((p: unknown, pr: typeof progress) => unknown) | undefined;
        if (!handler) throw new Error(`unknown method "${req.method}"`);
        const value = await handler(req.params, progress);
        port.postMessage({ id: req.id, kind: 'ok', value } satisfies Reply);
      } catch (e) {
        port.postMessage({ id: req.id, kind: 'error', message: e instanceof Error ? e.message : String(e) } satisfies Reply);
      }
      waiting--;
      answered = true;
      if (waiting === 0) scheduleIdle();
    });
  };
}
