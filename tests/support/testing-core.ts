// Loads build/testing-<area>.wasm (one core area with its internals exported) for unit tests.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const modules = new Map<string, WebAssembly.Module>();
function moduleFor(area: string): WebAssembly.Module {
  let m = modules.get(area);
  if (!m) {
    const url = new URL(`../../build/testing-${area}.wasm`, import.meta.url);
    m = new WebAssembly.Module(readFileSync(fileURLToPath(url)));
    modules.set(area, m);
  }
  return m;
}

export interface TestingCore {
  // Every export of assembly/testing.ts, as raw numbers in and out.
  x: Record<string, (...args: number[]) => number>;
  memory: WebAssembly.Memory;
  /** A fresh view of memory (views detach when memory grows). */
  u8(): Uint8Array;
  dv(): DataView;
  scratch: number;
  /** Copies bytes into the scratch buffer and returns their address. */
  put(bytes: Uint8Array, at?: number): number;
  /** Reads `len` bytes at `ptr`. */
  get(ptr: number, len: number): Uint8Array;
}

/** A fresh instance of `area`'s test build: every call gets its own memory and state. */
export function loadTestingCore(area: string): TestingCore {
  const instance = new WebAssembly.Instance(moduleFor(area), {
    env: {
      abort(_msg: number, _file: number, line: number, col: number) {
        throw new Error(`core abort at ${line}:${col}`);
      },
      seed: () => 0x5eed,
    },
  });
  const x = instance.exports as unknown as Record<string, (...a: number[]) => number> & { memory: WebAssembly.Memory };
  const memory = x.memory as unknown as WebAssembly.Memory;
  const core: TestingCore = {
    x,
    memory,
    u8: () => new Uint8Array(memory.buffer),
    dv: () => new DataView(memory.buffer),
    scratch: x.scratch(),
    put(bytes, at = core.scratch) {
      new Uint8Array(memory.buffer).set(bytes, at);
      return at;
    },
    get(ptr, len) {
      return new Uint8Array(memory.buffer).slice(ptr, ptr + len);
    },
  };
  return core;
}
