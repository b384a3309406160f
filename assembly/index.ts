// Exports of the flashneuron wasm module: memory helpers, flash access, kernels, the forward pass.
export { alloc, memory_bytes } from "./mem";
export { flash_open, flash_close, flash_read, crc32 } from "./flash";
export * from "./kernels/matvec";
export * from "./kernels/vec";
export * from "./model";
export { cache_new, cache_insert, cache_remove, cache_count, cache_slot, cache_row_ptr, cache_pointers, cache_clear } from "./cache";
