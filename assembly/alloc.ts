// alloc.ts — allocation and host-given ranges, checked and zeroed. Large zero-filled allocations
// write only the bytes that can hold old data: WebAssembly memory that memory.grow adds is zero
// (the spec), so filling a table the allocator carved out of freshly grown memory would only fault
// in pages the table may never use (a 2^18-connection table is 12 MB, filled at every start of the
// proxy and of the playground); what the allocator reused (below the memory's size before the call)
// is filled, and so are the block's first and last words, where TLSF keeps a free block's list
// links and its back reference. And what the core checks before it trusts a number a host handed
// it: that a range of bytes lies inside the memory (a pointer past the end would trap), and that a
// block of a host-chosen size can be allocated at all (the allocator aborts on a block over its
// limit, and memory cannot grow past wasm32's 65,536 pages); each export that reads or writes at
// a host's pointer, or allocates a host-chosen size, asks first and refuses with its own error
// code. Control time only; never on the packet path, never reads the clock.

/** Words at each end of a block the allocator may have written while the block was free. */
const END_BYTES: usize = 64;

/** heap.alloc(bytes) with every byte zero. */
export function allocZeroed(bytes: usize): usize {
  const fresh = <usize>memory.size() << 16;   // at and above this, memory is grown by this call
  const p = heap.alloc(bytes);
  const end = p + bytes;
  if (end <= fresh || bytes <= 2 * END_BYTES) {
    memory.fill(p, 0, bytes);
    return p;
  }
  if (p < fresh) memory.fill(p, 0, fresh - p);
  memory.fill(p, 0, END_BYTES);
  memory.fill(end - END_BYTES, 0, END_BYTES);
  return p;
}

/** A block of `bytes` holding the `oldBytes` of `p` (freed) and zero after them: a pool grown in place of its ids. */
export function regrow(p: usize, oldBytes: usize, bytes: usize): usize {
  const q = allocZeroed(bytes);
  memory.copy(q, p, oldBytes);
  heap.free(p);
  return q;
}

/**
 * A block of `bytes` in place of `old` (0: none), its contents not kept: the new block is taken
 * before the old one is given back, so should the allocator fail the caller still holds `old`,
 * never a pointer to freed memory.
 */
export function replaceBlock(old: usize, bytes: usize): usize {
  const grown = heap.alloc(bytes);
  if (old != 0) heap.free(old);
  return grown;
}

/** The largest block AssemblyScript's TLSF allocator hands out (its BLOCK_MAXSIZE is 2^30 less
 *  its block header; a little more is kept back here). */
const ALLOC_MAX: u64 = (<u64>1 << 30) - 64;

/** Pages of a wasm32 memory. */
const MAX_PAGES: u64 = 65536;

/** Whether bytes [ptr, ptr + len) all lie in the memory as it is now. */
// @ts-ignore: decorator
@inline export function inMemory(ptr: usize, len: u64): bool {
  return <u64>ptr + len <= (<u64>memory.size() << 16);
}

/**
 * Whether `bytes` more can come from the memory as it can still grow (what the free list cannot
 * serve comes from new pages; three pages of slack for the allocator's own headers).
 */
export function memoryFits(bytes: u64): bool {
  return <u64>memory.size() + ((bytes + 0xFFFF) >> 16) + 3 <= MAX_PAGES;
}

/** Whether one block of `bytes` can be allocated: under the allocator's block limit, and in memory. */
export function allocFits(bytes: u64): bool {
  return bytes <= ALLOC_MAX && memoryFits(bytes);
}
