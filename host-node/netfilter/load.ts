// load.ts — hands a compiled restore (compile.ts) to the core: stages every chain blob,
// deletion and policy, commits them as one transaction, and turns a refusal into an error naming
// the chain, rule and op (the numbers assembly/netfilter/format.ts encodes). On any refusal the
// core's stage is aborted and the compile rejected. Never encodes a rule and never parses text.

import type { CompiledRestore, IptCompiler } from './compile.js';


/** The core exports loading needs (the ABI's ipt* calls; build/testing-netfilter.wasm has them too). */
export interface IptCore {
  memory: WebAssembly.Memory;
  iptStageChain(id: number, ptr: number, len: number): number;
  iptStageDelete(id: number): number;
  iptSetPolicy(id: number, policy: number): number;
  iptCommit(): number;
  iptAbort(): void;
  iptLastError(): number;
}

// format.ts E_* by number.
const ERROR_KINDS = [
  '', 'not a chain blob', 'unsupported blob version or flags', 'blob length mismatch', 'bad address family',
  'bad table', 'rule offsets do not tile the op stream', 'op length wrong for its kind',
  'unknown op kind or op in the wrong place', 'op argument out of range', '`!` on an op that has none',
  'target not allowed in this table', 'bad chain id, or family/table changed', 'chain jumps to itself',
  'jump to a built-in chain', 'jump to a chain that does not exist', 'jump to a chain of another family or table',
  'chain still referenced', 'out of memory', 'built-in chains cannot be deleted', 'too many ops in one rule', 'bad policy',
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
 * the live tables are as they were.
 */
export function loadRestore(core: IptCore, c: IptCompiler, compiled: CompiledRestore, buffer: (n: number) => number): void {
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
  for (const s of compiled.stage) {
    const blob = s.blob;
    const ptr = buffer(blob.length);
    // Memory may have grown (the old buffer is then detached: length 0).
    if (buf.byteLength === 0 || ptr + blob.length > buf.byteLength) {
      buf = memory.buffer;
      mem = new Uint8Array(buf);
    }
    mem.set(blob, ptr);
    check(core.iptStageChain(s.id, ptr, blob.length));
  }
  for (const d of compiled.deletes) check(core.iptStageDelete(d.id));
  for (const p of compiled.policies) check(core.iptSetPolicy(p.id, p.policy));
  check(core.iptCommit());
  compiled.accept();
}
