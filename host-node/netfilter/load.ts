// load.ts — hands a compiled restore (compile.ts) to the core: keeps the chain blobs a compile
// writes until they are loaded (BlobArena, Staged), stages every blob, deletion and policy,
// commits them as one transaction, and turns a refusal into an error naming the chain, rule and
// op (the numbers assembly/netfilter/format.ts encodes). On any refusal the core's stage is
// aborted and the compile rejected. Never encodes a rule and never parses text.

import type { ChainInfo, CompiledRestore, IptCompiler } from './compile.js';
import type { Family, TableName } from './model.js';
import type { Chain } from './ruleset.js';

export interface StagedChain {
  readonly id: number;
  readonly info: ChainInfo;
  /** Valid until the next compile() (the compiler reuses its memory); a view made when read. */
  readonly blob: Uint8Array;
  readonly recents: readonly string[];
  /** -1: the blob is the whole chain. Else a patch: the core keeps the first `head` and last
   *  `tail` rules of its live copy around the blob's rules (iptStagePatch). */
  readonly head: number;
  readonly tail: number;
}

/** A chain's blob as bytes at..at+bytes of an arena chunk: no typed array per chain is kept (a
 *  full restore stages 60 000 chains until the core has them all), and its ChainInfo is made
 *  when read. */
export class Staged implements StagedChain {
  constructor(
    readonly id: number,
    readonly family: Family,
    readonly table: TableName,
    readonly chain: Chain,
    readonly chunk: Uint8Array,
    readonly at: number,
    readonly bytes: number,
    readonly recents: readonly string[],
    readonly head = -1,
    readonly tail = 0,
  ) {}

  get blob(): Uint8Array {
    return this.chunk.subarray(this.at, this.at + this.bytes);
  }

  get info(): ChainInfo {
    return { family: this.family, table: this.table, name: this.chain.name, rules: this.chain.rules };
  }
}


/** Blobs are written to arena chunks of this size (a larger blob gets a larger chunk of its own). */
const ARENA_CHUNK = 1 << 20;

/**
 * Where one compile writes its blobs until loadRestore() copies them into the core: chunks kept
 * from one compile to the next. No garbage ArrayBuffer per chain, and a large restore fills chunks
 * of fixed size instead of growing one arena by doubling (fresh memory costs per page touched).
 */
export class BlobArena {
  private readonly chunks: Uint8Array[] = [new Uint8Array(ARENA_CHUNK)];
  private chunkAt = 0;
  private used = 0;
  /** The chunk reserve() last reserved in, with a word view of it. */
  chunk = this.chunks[0]!;
  a32 = new Uint32Array(this.chunk.buffer);

  /** Starts over at the first chunk (the previous compile's blobs are no longer valid). */
  reset(): void {
    this.use(0, 0);
  }

  /** Where `bytes` bytes (8-aligned) start in `chunk`, which may be a new one. */
  reserve(bytes: number): number {
    if (this.used + bytes > this.chunk.length) this.use(this.chunkAt + 1, bytes);
    const at = this.used;
    this.used += (bytes + 7) & ~7;
    return at;
  }

  private use(k: number, bytes: number): void {
    let c = this.chunks[k];
    // A blob larger than a chunk (a 20 000-rule KUBE-SERVICES) gets room to grow by a quarter, so
    // the next restores, a few rules longer, write to the same memory; 8-aligned, as every blob
    // is (and a word view needs a whole number of words).
    if (c === undefined || c.length < bytes) this.chunks[k] = c = new Uint8Array(Math.max(ARENA_CHUNK, (bytes + (bytes >> 2) + 7) & ~7));
    this.chunkAt = k;
    this.chunk = c;
    this.a32 = new Uint32Array(c.buffer);
    this.used = 0;
  }
}


/** Blobs copied into the core's config buffer at once, at most (but a larger blob alone). */
const RUN_BYTES = 1 << 16;

/** The core exports loading needs (the ABI's ipt* calls; build/testing-netfilter.wasm has them too). */
export interface IptCore {
  memory: WebAssembly.Memory;
  iptStageChain(id: number, ptr: number, len: number): number;
  iptStagePatch(id: number, ptr: number, len: number, head: number, tail: number): number;
  iptStageDelete(id: number): number;
  iptSetPolicy(id: number, policy: number): number;
  iptCommit(): number;
  iptAbort(): void;
  iptLastError(): number;
}

// format.ts E_* by number.
const ERROR_KINDS = [
  '', 'not a chain blob', 'unsupported blob version or flags', 'blob length mismatch', 'bad address family',
  'bad table', 'more rules than one chain holds (524,286), or rule offsets that do not tile the op stream', 'op length wrong for its kind',
  'unknown op kind or op in the wrong place', 'op argument out of range', '`!` on an op that has none',
  'target not allowed in this table', 'more chains than a table set holds (1,048,536 user chains), or a chain id whose family/table changed', '(not used)',
  'jump to a built-in chain', 'jump to a chain that does not exist', 'jump to a chain of another family or table',
  'chain still referenced', 'out of memory', 'built-in chains cannot be deleted', 'more than 64 matches and target in one rule', 'bad policy',
];

/** A core refusal, decoded: error kind, chain, rule and op (as format.ts encodes them). */
export class IptLoadError extends Error {
  constructor(readonly code: number, readonly kind: number, readonly chain: number, readonly rule: number,
    readonly op: number, readonly detail: number, where: string) {
    super(`core refused the ruleset: ${ERROR_KINDS[kind] ?? `error ${kind}`} (${where})`);
  }
}

function decodeError(core: IptCore, c: IptCompiler, code: number): IptLoadError {
  const dv = new DataView(core.memory.buffer);
  const p = core.iptLastError();
  const chain = dv.getUint32(p + 4, true), detail = dv.getUint32(p + 16, true);
  const neg = -code;
  const kind = neg & 63, op = (neg >>> 6) & 63, rule = (neg >>> 12) - 1;
  const info = c.chainInfo(chain);
  const name = info ? `${info.table}/${info.name}` : `chain ${chain}`;
  return new IptLoadError(code, kind, chain, rule, op, detail, `${name}${rule >= 0 ? ` rule ${rule + 1} op ${op}` : ''}${detail ? ` [${detail}]` : ''}`);
}

/**
 * Stages every chain of `compiled` in the core and commits them as one transaction. `buffer(n)`
 * returns the address of n writable bytes of core memory (the ABI's cfgBuffer; a test's scratch).
 * On any refusal the core's stage is aborted, the compile rejected, and an IptLoadError thrown:
 * the live tables are as they were. Anything else thrown on the way (no room for the config
 * buffer, a fault in the core) aborts and rejects the same, so the next restore starts clean.
 */
export function loadRestore(core: IptCore, c: IptCompiler, compiled: CompiledRestore, buffer: (n: number) => number): void {
  try {
    stageAndCommit(core, c, compiled, buffer);
  } catch (e) {
    if (!(e instanceof IptLoadError)) {
      try { core.iptAbort(); } finally { compiled.reject(); }
    }
    throw e;
  }
}

function stageAndCommit(core: IptCore, c: IptCompiler, compiled: CompiledRestore, buffer: (n: number) => number): void {
  const check = (code: number): void => {
    if (code >= 0) return;
    const err = decodeError(core, c, code);
    core.iptAbort();
    compiled.reject();
    throw err;
  };
  const memory = core.memory;
  let buf = memory.buffer;
  let mem = new Uint8Array(buf);
  const stage = compiled.stage;
  for (let k = 0; k < stage.length;) {
    // The blobs of a run of chains lie back to back in one arena chunk: they are copied into the
    // core at once (up to RUN_BYTES, or one larger blob), not with a view and a copy per chain.
    const first = stage[k]!, chunk = first.chunk, from = first.at;
    let end = k + 1, to = from + first.bytes;
    for (; end < stage.length; end++) {
      const s = stage[end]!;
      if (s.chunk !== chunk || s.at < to || s.at + s.bytes - from > RUN_BYTES) break;
      to = s.at + s.bytes;
    }
    const ptr = buffer(to - from);
    // Memory may have grown (the old buffer is then detached: length 0).
    if (buf.byteLength === 0 || ptr + (to - from) > buf.byteLength) {
      buf = memory.buffer;
      mem = new Uint8Array(buf);
    }
    mem.set(chunk.subarray(from, to), ptr);
    for (; k < end; k++) {
      const s = stage[k]!, at = ptr + (s.at - from);
      check(s.head < 0 ? core.iptStageChain(s.id, at, s.bytes) : core.iptStagePatch(s.id, at, s.bytes, s.head, s.tail));
    }
  }
  for (const d of compiled.deletes) check(core.iptStageDelete(d.id));
  for (const p of compiled.policies) check(core.iptSetPolicy(p.id, p.policy));
  check(core.iptCommit());
  compiled.accept();
}
