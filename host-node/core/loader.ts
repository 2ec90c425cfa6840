// loader.ts — instantiates the core .wasm. The release build is embedded as base64 (build/core-wasm.js)
// so Node, browsers, Deno and Bun load it the same way with no file or fetch access; a host may pass
// its own bytes or compiled module instead. Checks the ABI version. Never touches packets.
import wasmBase64 from '../../build/core-wasm.js';
import { ABI_VERSION, type CoreExports } from './abi.js';

let cached: WebAssembly.Module | undefined;

function decodeBase64(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * What a fault thrown by a core call means. The release core has no `unreachable` of its own: the
 * allocator executes one when the memory cannot grow any more (wasm32 stops at 4 GiB, or the
 * runtime refused), which is the one fault a large enough configuration can cause.
 */
export function coreFault(e: unknown): string {
  if (e instanceof WebAssembly.RuntimeError && /unreachable/.test(e.message)) {
    return 'the core ran out of memory (its WebAssembly memory could not grow any further)';
  }
  return e instanceof Error ? e.message : String(e);
}

export type WasmSource = WebAssembly.Module | ArrayBuffer | Uint8Array;

export async function instantiateCore(source?: WasmSource): Promise<CoreExports> {
  let module: WebAssembly.Module;
  try {
    if (source instanceof WebAssembly.Module) module = source;
    else if (source) module = await WebAssembly.compile(source as BufferSource);
    else module = cached ??= await WebAssembly.compile(decodeBase64(wasmBase64) as BufferSource);
  } catch (e) {
    throw new Error(`svcplane core module is invalid: ${(e as Error).message}`);
  }
  const instance = await WebAssembly.instantiate(module, {
    env: {
      abort(_msg: number, _file: number, line: number, col: number) {
        throw new Error(`svcplane core aborted at ${line}:${col}`);
      },
    },
  });
  const raw = instance.exports as unknown as CoreExports;
  const version = raw.abiVersion();
  if (version !== ABI_VERSION) {
    throw new Error(`svcplane core ABI version ${version} does not match this host (expects ${ABI_VERSION})`);
  }
  // The staging buffers answer 0 when no block of the size can be had (ABI.md): every caller
  // writes at the offset it gets, so a refusal becomes an error here, before offset 0 is written,
  // and the offset is made unsigned once for all of them.
  const staging = (name: 'cfgBuffer' | 'dnsBuffer') => (size: number): number => {
    // An offset past 2 GiB comes back as a negative i32 (ABI.md: read usize results as `>>> 0`).
    const at = (raw as unknown as Record<typeof name, (n: number) => number>)[name](size) >>> 0;
    if (at === 0 && size > 0) throw new Error(`the core is out of memory: no room for a ${size}-byte ${name === 'dnsBuffer' ? 'DNS record' : 'config'} buffer`);
    return at;
  };
  return { ...raw, cfgBuffer: staging('cfgBuffer'), dnsBuffer: staging('dnsBuffer') } as CoreExports;
}
