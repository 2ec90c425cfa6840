// index.ts — the core's whole ABI (placeholder while the pipeline lands).
export const ABI_VERSION: u32 = 1;
export function abiVersion(): u32 { return ABI_VERSION; }
