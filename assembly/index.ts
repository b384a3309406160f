// Exports of the flashneuron wasm module: memory helpers, kernels, the forward pass.
export { alloc, memory_bytes } from "./mem";
export * from "./kernels/matvec";
export * from "./kernels/vec";
