// Memory the host asks for: everything is allocated once, at load time, never freed
// (the stub runtime is a bump allocator; a model owns its whole wasm instance).

/** Allocate `size` bytes aligned to `align` (a power of two, ≥ 16). Returns 0 if memory is exhausted. */
export function alloc(size: usize, align: usize): usize {
  const p = heap.alloc(size + align);
  return (p + align - 1) & ~(align - 1);
}

/** Bytes of linear memory currently reserved. */
export function memory_bytes(): usize {
  return <usize>memory.size() << 16;
}
