// The training kernels (build/train.wasm, assembly/train/) and the batched passes built on them.
// The binary comes through src/core/wasm.ts (wasmBinary('train'): read from build/ under Node,
// supplied by the host elsewhere); nothing here reads files.
import { instantiateTrain, type TrainExports } from '../core/wasm.js';
import { alignUp } from './util.js';

/** Samples per kernel call (mini-batch of the fine-tuning, batch of the inference passes). */
export const BATCH = 256;

/** Exports of build/train.wasm (assembly/train/); pointers are byte offsets into memory. */
export type TrainKernels = TrainExports;

/** A fresh instance of build/train.wasm (its bump allocator never frees: one instance per job). */
export function trainKernels(): TrainKernels {
  return instantiateTrain();
}

/** Allocates f32 buffers in a kernels instance; views are made after all allocations (memory may grow). */
export function allocF32(k: TrainKernels, n: number): number {
  const p = k.alloc(alignUp(Math.max(n, 1), 4) * 4, 64);
  if (!p) throw new Error(`predictor training: out of wasm memory (${n} floats)`);
  return p;
}

/** Logits z (n, ffn) of one layer's predictor over samples, through the SIMD kernels. */
export function layerLogits(k: TrainKernels, L: { w1: Float32Array; b1: Float32Array; w2: Float32Array; b2: Float32Array }, X: Float32Array, n: number, d: number, ffn: number, r: number, out: Float32Array): void {
  const pW1 = allocF32(k, r * d), pb1 = allocF32(k, r), pW2 = allocF32(k, r * ffn), pb2 = allocF32(k, ffn);
  const pX = allocF32(k, BATCH * d), pH = allocF32(k, BATCH * r), pZ = allocF32(k, BATCH * ffn);
  const mem = k.memory.buffer;
  new Float32Array(mem, pW1, r * d).set(L.w1);
  new Float32Array(mem, pb1, r).set(L.b1);
  const w2t = new Float32Array(mem, pW2, r * ffn);
  for (let i = 0; i < ffn; i++) for (let kk = 0; kk < r; kk++) w2t[kk * ffn + i] = L.w2[i * r + kk];
  new Float32Array(mem, pb2, ffn).set(L.b2);
  const xb = new Float32Array(mem, pX, BATCH * d), zb = new Float32Array(mem, pZ, BATCH * ffn);
  for (let s = 0; s < n; s += BATCH) {
    const B = Math.min(BATCH, n - s);
    xb.set(X.subarray(s * d, (s + B) * d));
    k.linear_relu(pX, B, d, pW1, pb1, r, pH);
    k.linear_out(pH, B, r, pW2, pb2, ffn, pZ);
    out.set(zb.subarray(0, B * ffn), s * ffn);
  }
}

/** Mean over (at most 8192 evenly spread) samples of the relu hidden units h = relu(W1 x + b1), in f64. */
export function hiddenMean(k: TrainKernels, w1: Float32Array, b1: Float32Array, X: Float32Array, n: number, d: number, r: number): Float64Array {
  const m = Math.min(n, 8192), stride = n / m;
  const pW1 = allocF32(k, r * d), pb1 = allocF32(k, r), pX = allocF32(k, BATCH * d), pH = allocF32(k, BATCH * r);
  const mem = k.memory.buffer;
  new Float32Array(mem, pW1, r * d).set(w1);
  new Float32Array(mem, pb1, r).set(b1);
  const xb = new Float32Array(mem, pX, BATCH * d), hb = new Float32Array(mem, pH, BATCH * r);
  const mean = new Float64Array(r);
  for (let s = 0; s < m; s += BATCH) {
    const B = Math.min(BATCH, m - s);
    for (let b = 0; b < B; b++) { const o = Math.floor((s + b) * stride) * d; xb.set(X.subarray(o, o + d), b * d); }
    k.linear_relu(pX, B, d, pW1, pb1, r, pH);
    for (let b = 0; b < B; b++) for (let j = 0; j < r; j++) mean[j] += hb[b * r + j];
  }
  for (let j = 0; j < r; j++) mean[j] /= m;
  return mean;
}
