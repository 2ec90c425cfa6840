// scratch.ts — a 1 MiB buffer unit-test builds write packets into. Not used by the shipped core.
const SCRATCH_BYTES: usize = 1 << 20;
const scratchBuf: usize = heap.alloc(SCRATCH_BYTES);
export function scratch(): usize { return scratchBuf; }
export function scratchBytes(): usize { return SCRATCH_BYTES; }
