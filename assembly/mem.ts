// Memory the host asks for: everything is allocated once, at load time, never freed
// (the stub runtime is a bump allocator; a model owns its whole wasm instance).
import { BLOCK_OVERHEAD, AL_MASK } from "rt/common";

// The stub runtime grows memory by doubling when it runs out; under a memory budget that would
// waste up to half of it. alloc() grows first, to exactly what is needed plus one page of room
// for the runtime's own small objects, so the runtime never has to grow on its own.
const SLACK: usize = 65536;

/** Allocate `size` bytes aligned to `align` (a power of two, ≥ 16). Returns 0 if memory is exhausted. */
export function alloc(size: usize, align: usize): usize {
  const top = heap.alloc(0);
  const need = top + size + align + SLACK;
  const have = <usize>memory.size() << 16;
  if (need > have && memory.grow(<i32>((need - have + 65535) >> 16)) < 0) return 0;
  const want = size + align;
  if (want <= CHUNK) return (heap.alloc(want) + align - 1) & ~(align - 1);
  // The stub runtime refuses blocks of 1 GiB or more. Its bump allocator places consecutive
  // blocks back to back (a small header between), and nothing is ever freed, so chunks taken in
  // a row form one region; the headers are overwritten by the caller's data, never read again.
  const first = heap.alloc(CHUNK);
  let end = first + CHUNK;
  while (end < first + want) {
    const n = min<usize>(CHUNK, first + want - end);
    const q = heap.alloc(n);
    if (q < end || q - end > 64) return 0;   // not contiguous: refuse rather than overlap
    end = q + n;
  }
  return (first + align - 1) & ~(align - 1);
}

const CHUNK: usize = 1 << 29;

/** Heap bytes alloc(size, align) takes, slack included: alloc()'s blocks replayed on the stub
 *  runtime, which puts a BLOCK_OVERHEAD header before each block and rounds it to 16 bytes.
 *  The heap.alloc(0) that finds the top is a block too. */
export function allocBytes(size: usize, align: usize): usize {
  const want = size + align, probe = blockBytes(0);
  if (want <= CHUNK) return probe + blockBytes(want);
  // Offsets from the first chunk's header: the chunks alloc() takes back to back.
  const first = BLOCK_OVERHEAD;
  let top = blockBytes(CHUNK), end = first + CHUNK;
  while (end < first + want) {
    const n = min<usize>(CHUNK, first + want - end);
    const q = top + BLOCK_OVERHEAD;
    top += blockBytes(n);
    end = q + n;
  }
  return probe + top;
}

/** Heap bytes one stub-runtime block of `size` takes (as rt/stub.ts's __alloc). */
@inline export function blockBytes(size: usize): usize {
  return (size + BLOCK_OVERHEAD + AL_MASK) & ~AL_MASK;
}

/** The host plans memory from the wasm's own figures: the heap bytes alloc(size, align) takes. */
export function alloc_bytes(size: usize, align: usize): usize {
  return allocBytes(size, align);
}

/** Bytes of linear memory currently reserved. */
export function memory_bytes(): usize {
  return <usize>memory.size() << 16;
}
