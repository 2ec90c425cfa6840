// zeroed.ts — large zero-filled allocations that write only the bytes that can hold old data.
// WebAssembly memory that memory.grow adds is zero (the spec), so filling a table the allocator
// carved out of freshly grown memory would only fault in pages the table may never use: a
// 2^18-connection table is 12 MB, filled at every start of the proxy and of the playground. What
// the allocator reused (below the memory's size before the call) is filled, and so are the block's
// first and last words, where TLSF keeps a free block's list links and its back reference.
// Control time only; never on the packet path.

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
