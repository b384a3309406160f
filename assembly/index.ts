// Exports of the flashneuron wasm module: memory helpers, flash access, kernels, the forward pass.
export { alloc, memory_bytes } from "./mem";
export { flash_open, flash_close, flash_read, crc32 } from "./flash";
export * from "./kernels/matvec";
export * from "./kernels/vec";
export * from "./model";
