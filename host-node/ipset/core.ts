// ipset/core.ts — the bridge from the model to the WebAssembly core's ipset ABI
// (assembly/ipset/api.ts): set ids from names, the 64-byte element buffer (assembly/ipset/format.ts
// layout), create flags, and the core's error codes turned into ipset's messages. A Sink the model
// hands accepted changes to; it never decides whether a change is allowed (the model does), so a
// refusal here means a core limit (memory, storage) and is reported as the kernel would.
import { ipWords } from '../core/words.js';
import { type Element } from './element.js';
import { type IpSet, type Sink, type AddExt } from './model.js';
import { CF_TIMEOUT, CF_COUNTERS, CF_COMMENT } from './types.js';
import { IpsetError, kernel, MSG } from './errors.js';

/** The core exports this module uses (index.ts ipset section, or the ipset testing build). */
export interface IpsetCore {
  memory: WebAssembly.Memory;
  ipsetElem(): number;
  ipsetCreate(id: number, type: number, family: number, flags: number, maxelem: number, timeout: number, seed: number, first: number, last: number): number;
  ipsetDestroy(id: number): number;
  ipsetFlush(id: number): number;
  ipsetSwap(a: number, b: number): number;
  ipsetRename(from: number, to: number): number;
  ipsetAdd(id: number, exist: number, nowMs: number): number;
  ipsetDel(id: number, exist: number, nowMs: number): number;
  ipsetTest(id: number, nowMs: number): number;
  ipsetGet(id: number, nowMs: number): number;
  ipsetBegin(): number;
  ipsetCommit(): number;
  ipsetAbort(): number;
  ipsetReap(nowMs: number, budget: number): number;
}

// assembly/ipset/format.ts.
const EF_NOMATCH = 1, EF_TIMEOUT = 2, EF_PACKETS = 4, EF_BYTES = 8;
const TEST_PRESENT = 1, TEST_NOMATCH = 2;
const CORE_ERRORS: Record<number, string> = {
  1: MSG.noSet, 2: MSG.setExists, 3: MSG.exist, 4: MSG.notExist, 5: MSG.full, 6: MSG.range, 7: MSG.cidr,
  8: MSG.swapType, 11: MSG.nullElem, 12: MSG.noTimeout, 13: MSG.noCounters, 15: MSG.invalidProto,
};

export function coreError(code: number, word = ''): IpsetError {
  const msg = CORE_ERRORS[-code];
  return kernel(msg ?? `Kernel error received: svcplane core refused the operation (code ${code})`, word);
}

export class CoreSink implements Sink {
  now = 0;

  constructor(private readonly core: IpsetCore, private readonly id: (name: string) => number) {}

  private check(rc: number, word: string): number {
    if (rc < 0) throw coreError(rc, word);
    return rc;
  }

  private view: DataView | null = null;

  // The element buffer (a fresh view when memory has grown: old views detach).
  private elemView(): DataView {
    if (!this.view || this.view.buffer !== this.core.memory.buffer) {
      this.view = new DataView(this.core.memory.buffer, this.core.ipsetElem(), 64);
    }
    return this.view;
  }

  /** Writes `el` (and the extension fields) into the core's element buffer. */
  put(el: Element, flags = 0, timeout = 0, packets = 0n, bytes = 0n): void {
    const dv = this.elemView();
    for (let i = 0; i < 64; i += 4) dv.setUint32(i, 0, true);
    if (el.a.length > 0) ipWords(el.a).forEach((w, i) => dv.setUint32(i * 4, w, true));
    if (el.b) ipWords(el.b).forEach((w, i) => dv.setUint32(16 + i * 4, w, true));
    dv.setUint16(32, el.port, true);
    dv.setUint8(34, el.proto);
    dv.setUint8(35, el.cidr);
    dv.setUint8(36, flags);
    dv.setUint32(40, timeout, true);
    dv.setBigUint64(48, packets, true);
    dv.setBigUint64(56, bytes, true);
  }

  create(s: IpSet): void {
    const flags = (s.timeout !== null ? CF_TIMEOUT : 0) | (s.counters ? CF_COUNTERS : 0) | (s.comment ? CF_COMMENT : 0);
    const [first, last] = s.range ?? [0, 0];
    this.check(this.core.ipsetCreate(this.id(s.name), s.def.coreId, s.def.hash ? s.family : 0, flags,
      s.maxelem >>> 0, s.timeout ?? 0, s.initval >>> 0, first, last), s.name);
  }

  destroy(s: IpSet): void { this.check(this.core.ipsetDestroy(this.id(s.name)), s.name); }
  flush(s: IpSet): void { this.check(this.core.ipsetFlush(this.id(s.name)), s.name); }
  rename(s: IpSet, to: string): void { this.check(this.core.ipsetRename(this.id(s.name), this.id(to)), to); }
  swap(a: IpSet, b: IpSet): void { this.check(this.core.ipsetSwap(this.id(a.name), this.id(b.name)), b.name); }

  add(s: IpSet, el: Element, x: AddExt, exist: boolean): void {
    const flags = (x.nomatch ? EF_NOMATCH : 0) | (x.timeout !== null ? EF_TIMEOUT : 0) |
      (x.packets !== null ? EF_PACKETS : 0) | (x.bytes !== null ? EF_BYTES : 0);
    this.put(el, flags, x.timeout ?? 0, x.packets ?? 0n, x.bytes ?? 0n);
    this.check(this.core.ipsetAdd(this.id(s.name), exist ? 1 : 0, this.now), s.name);
  }

  del(s: IpSet, el: Element, exist: boolean): void {
    this.put(el);
    this.check(this.core.ipsetDel(this.id(s.name), exist ? 1 : 0, this.now), s.name);
  }

  test(s: IpSet, el: Element, nomatch: boolean): boolean {
    this.put(el);
    const r = this.check(this.core.ipsetTest(this.id(s.name), this.now), s.name);
    return nomatch ? r === TEST_NOMATCH : r === TEST_PRESENT;
  }

  /** The element's packet and byte counters as the core holds them ([0, 0] when absent). */
  counters(s: IpSet, el: Element): [bigint, bigint] {
    this.put(el);
    if (this.core.ipsetGet(this.id(s.name), this.now) !== TEST_PRESENT) return [0n, 0n];
    const dv = this.elemView();
    return [dv.getBigUint64(48, true), dv.getBigUint64(56, true)];
  }
}
