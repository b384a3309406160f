// Low-rank sparsity predictors ("LLM in a flash" §3.1, Deja Vu): for FFN layer l, from the FFN
// input x (the normed residual, d floats), guess which of the ffn neurons will fire:
//
//   z = W2 · relu(W1 · x + b1) + b2        neuron i predicted active when z_i > threshold_l
//   W1 (rank, d)  b1 (rank)  W2 (ffn, rank)  b2 (ffn)
//
// "Active" is what the engine reports: ReLU output > 0 (OPT fc1), relu(gate_proj · x) > 0 (Llama).
// Trained here, in TypeScript + build/train.wasm (assembly/train.ts), per layer:
//   1. initialisation from the data-aware truncated SVD of the deciding weights W (fc1 / gate_proj):
//      the rank-r PCA of the pre-activations u = W x + b over the training inputs, with the relu
//      units offset into their linear range (pcaInit) — on these models this alone is the best
//      predictor we found at a given rank;
//   2. fine-tuning with positive-weighted BCE (pos_weight = negatives / positives), Adam, mini-batches;
//   3. both candidates are rounded to f16 (what the engine runs), their thresholds calibrated on a
//      validation split to the target recall, and the one predicting fewer neurons there is kept;
//   4. nested ranks ("one predictor, any budget"): the PCA components are ordered by singular value,
//      so the first r' of them are the best rank-r' predictor of the family; for each rung r' of a
//      ladder (16 … the full rank) the kept weights cut to r' components get a b2 that adds back the
//      dropped components' mean contribution over the training tokens and a threshold calibrated
//      like the full rank's. truncatePredictor() gives a budget-constrained engine a smaller predictor
//      from the same file. (The BCE candidate starts from the PCA and moves little in one short epoch,
//      so its components stay close to ordered; every rung's recall / ratio is measured, not assumed.)
// The report is measured on held-out text the training and calibration never saw.
//
// File format (.fnpred), little-endian:
//  1. magic "FNPRED01" (8 bytes)
//  2. header_len u32 (bytes of the JSON header)
//  3. header_crc32 u32 (CRC-32 of the JSON header bytes)
//  4. JSON header, UTF-8:
//       { format: 'flashneuron-predictor', version: 2, fingerprint, config: { nLayers, hidden, ffn, rank },
//         dtype: 'f16',
//         layers: [{ threshold, recall, ratio, w1: { offset, length }, b1: {…}, w2: {…}, b2: {…} }],
//         ranks: [{ rank, layers: [{ threshold, recall, ratio, predicted_share, true_share, val_recall, val_ratio,
//                                   b2: { offset, length } }] }],
//         data_crc32, report }
//     ranks: the nested-rank ladder (ascending, the last = config.rank, its thresholds = the layers'):
//     truncated to its first `rank` components the predictor runs with that rung's b2 (f32) and
//     threshold; recall / ratio / shares measured on held-out text, val_* on the validation split.
//     Version 1 files (no ranks) are rejected with a "retrain" message.
//     offsets and lengths in bytes, relative to the data start
//  5. zero padding up to a multiple of 64 bytes (the data start)
//  6. data: per layer W1 (rank, d) and W2 (ffn, rank) as IEEE f16, b1 and b2 as f32, then each rung's
//     per-layer b2 as f32; every tensor
//     starts on a 64-byte boundary; data_crc32 covers the whole data region (to the end of the file)
// The loader checks magic, version, sizes, both CRCs, every tensor's range and shape, and the
// fingerprint of the model it is loaded for (modelFingerprint) before it decodes anything.
import { closeSync, existsSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32, f16ToF32, f32ToF16, section, widenToF32 } from './image.js';
export { f32ToF16 };
import { readExact } from './flash.js';
import type { ImageHeader } from './image.js';
import type { Model } from './model.js';

export interface PredictorLayer {
  w1: Float32Array; // (rank, hidden), f16-representable values
  b1: Float32Array; // (rank)
  w2: Float32Array; // (ffn, rank), f16-representable values
  b2: Float32Array; // (ffn)
  threshold: number; // neuron i predicted active when z_i > threshold
  recall: number; // measured on the validation split at `threshold`
  ratio: number; // predicted-set size / true-set size on the validation split
}
/**
 * One rung of the nested-rank ladder: what the predictor truncated to its first `rank` components
 * (rows of W1 / b1, columns of W2) needs per layer. The engine computes
 *   z = W2[:, :rank] · relu(W1[:rank] · x + b1[:rank]) + b2     (b2 of the rung)
 * b2 = the full b2 + the dropped components' mean contribution over the training tokens; threshold
 * calibrated on the validation split like the full rank's; recall / ratio / shares measured on the
 * held-out split (the validation split's when there is none), val_recall / val_ratio on the validation split.
 */
export interface PredictorRungLayer { threshold: number; recall: number; ratio: number; predicted_share: number; true_share: number; val_recall: number; val_ratio: number; b2: Float32Array }
export interface PredictorRung { rank: number; layers: PredictorRungLayer[] }
export interface Predictor {
  rank: number; hidden: number; ffn: number; nLayers: number; fingerprint: string; layers: PredictorLayer[]; report: PredictorReport;
  /** Nested ranks the predictor can be truncated to (truncatePredictor), ascending; the last is `rank` itself. */
  rungs: PredictorRung[];
}
export interface PredictorLayerEval { layer: number; recall: number; ratio: number; true_share: number; predicted_share: number; threshold: number }
export interface PredictorReport {
  rank: number; train_tokens: number; heldout_tokens: number; seconds: number; layers: PredictorLayerEval[];
  /** Per layer, the candidate kept: 'pca' (the PCA initialisation) or 'bce' (it fine-tuned). */
  kept?: string[];
}
export interface TrainOptions {
  /** Hidden width of the predictor (default 192). */
  rank?: number;
  /** BCE fine-tuning passes over (at most 8192 of) the training tokens after the PCA initialisation (default 1; 0: PCA only). */
  epochs?: number;
  /** Adam learning rate of the fine-tuning (default 3e-4). */
  lr?: number;
  /** Cap on training tokens (default 16000); the validation and held-out splits use at most a quarter of it each. */
  maxTokens?: number;
  /** Share of the text, taken from its end, held out for the report (default 0.15). */
  heldOut?: number;
  /** Recall the per-layer threshold is calibrated to on the validation split (default 0.975). */
  targetRecall?: number;
  /** Where a layer reaches targetRecall with fewer predicted neurons than ratioBudget × active, its
   *  threshold is lowered to predict that many, for extra recall on text unlike the calibration text (default 1.8). */
  ratioBudget?: number;
  /** Ranks below `rank` the file gets rungs for (truncatePredictor); `rank` is always the last rung
   *  (default 16, 32, 48, 64, 96, 128, 160, 192, 224, those below `rank`). */
  rungs?: number[];
  seed?: number;
  onProgress?: (done: number, total: number, phase: string) => void;
  signal?: AbortSignal;
}

/**
 * FFN inputs and true activity of `n` token positions:
 *   x[l]      (n, hidden) f32     the FFN input of layer l
 *   active[l] (n, ceil(ffn/8))    bit j of byte k of row t = neuron 8k+j fired at t (golden.json's layout)
 */
export interface PredictorSamples { n: number; hidden: number; ffn: number; x: Float32Array[]; active: Uint8Array[] }

const MAGIC = 'FNPRED01';
const VERSION = 2; // 2: nested-rank rungs (`ranks`)
export const DEFAULT_RUNGS = [16, 32, 48, 64, 96, 128, 160, 192, 224];
const ALIGN = 64;
const WINDOW = 256; // tokens per collection window, BOS included
const BATCH = 256;
const TUNE_TOKENS = 8192; // training tokens the BCE fine-tuning pass sees per epoch

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;
const tick = () => new Promise<void>((r) => setImmediate(r));
const rowBytes = (ffn: number) => (ffn + 7) >> 3;

/** (rows, cols) → (cols, rows). */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const o = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) o[j * rows + i] = a[i * cols + j];
  return o;
}

// ---------------------------------------------------------------------------------------------
// Training kernels (build/train.wasm)

/** Exports of build/train.wasm (assembly/train.ts); pointers are byte offsets into memory. */
export interface TrainKernels {
  memory: WebAssembly.Memory;
  alloc(size: number, align: number): number;
  gather(src: number, idx: number, B: number, rowBytes: number, out: number): void;
  zero(p: number, n: number): void;
  linear_relu(X: number, B: number, d: number, W1: number, b1: number, r: number, H: number): void;
  linear_relu_ref(X: number, B: number, d: number, W1: number, b1: number, r: number, H: number): void;
  linear_out(H: number, B: number, r: number, W2T: number, b2: number, ffn: number, Z: number): void;
  linear_out_ref(H: number, B: number, r: number, W2T: number, b2: number, ffn: number, Z: number): void;
  bce_grad(Z: number, Y: number, B: number, ffn: number, yb: number, posWeight: number, scale: number): number;
  bce_grad_ref(Z: number, Y: number, B: number, ffn: number, yb: number, posWeight: number, scale: number): number;
  grad_out(H: number, G: number, B: number, r: number, ffn: number, dW2T: number, db2: number): void;
  grad_out_ref(H: number, G: number, B: number, r: number, ffn: number, dW2T: number, db2: number): void;
  grad_hidden(G: number, W2T: number, H: number, B: number, r: number, ffn: number, dA: number): void;
  grad_hidden_ref(G: number, W2T: number, H: number, B: number, r: number, ffn: number, dA: number): void;
  grad_in(X: number, dA: number, B: number, d: number, r: number, dW1: number, db1: number): void;
  grad_in_ref(X: number, dA: number, B: number, d: number, r: number, dW1: number, db1: number): void;
  adam(P: number, G: number, M: number, V: number, n: number, lr: number, b1: number, b2: number, eps: number, c1: number, c2: number): void;
  adam_ref(P: number, G: number, M: number, V: number, n: number, lr: number, b1: number, b2: number, eps: number, c1: number, c2: number): void;
}

let trainModule: WebAssembly.Module | undefined;
/** A fresh instance of build/train.wasm (its bump allocator never frees: one instance per job). */
export function trainKernels(): TrainKernels {
  trainModule ??= new WebAssembly.Module(readFileSync(new URL('../../build/train.wasm', import.meta.url)));
  const instance = new WebAssembly.Instance(trainModule, {
    env: { abort(_m: number, _f: number, line: number, col: number) { throw new Error(`train.wasm abort at ${line}:${col}`); } },
  });
  const e = instance.exports as unknown as TrainKernels & { _initialize(): void };
  e._initialize();
  return e;
}

/** Allocates f32 buffers in a kernels instance; views are made after all allocations (memory may grow). */
function allocF32(k: TrainKernels, n: number): number {
  const p = k.alloc(alignUp(Math.max(n, 1), 4) * 4, 64);
  if (!p) throw new Error(`predictor training: out of wasm memory (${n} floats)`);
  return p;
}

// ---------------------------------------------------------------------------------------------
// f16 rounding

/** Values of a rounded to f16 and back (what the engine computes with). */
export function roundF16(a: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f16ToF32(f32ToF16(a[i]));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Data: FFN inputs and activity bits from the engine

/** Runs the engine over each window (ids starting with BOS at position 0) and records every position. */
export async function collectSamples(model: Model, windows: number[][], opts: { onProgress?: TrainOptions['onProgress']; signal?: AbortSignal; done?: number; total?: number } = {}): Promise<PredictorSamples> {
  const { nLayers: L, hidden: d, ffn } = model.config;
  const n = windows.reduce((s, w) => s + w.length, 0);
  const yb = rowBytes(ffn);
  const x = Array.from({ length: L }, () => new Float32Array(n * d));
  const active = Array.from({ length: L }, () => new Uint8Array(n * yb));
  const e = model.engine;
  let t = 0;
  for (const w of windows) {
    if (w.length > e.contextLength) throw new Error(`window of ${w.length} tokens exceeds the context length ${e.contextLength}`);
    opts.signal?.throwIfAborted();
    e.reset();
    for (let p = 0; p < w.length; p++, t++) {
      e.forward(w[p], p);
      for (let l = 0; l < L; l++) {
        x[l].set(e.ffnInput(l), t * d);
        const a = e.activations(l), bits = active[l], o = t * yb;
        for (let i = 0; i < ffn; i++) if (a[i] !== 0) bits[o + (i >> 3)] |= 1 << (i & 7);
      }
    }
    opts.onProgress?.((opts.done ?? 0) + t, opts.total ?? n, 'collect');
    await tick();
  }
  return { n, hidden: d, ffn, x, active };
}

/** Cuts ids (BOS first) into windows of ≤ WINDOW tokens, each BOS + a consecutive slice of the text. */
function windowsOf(body: number[], bos: number, span: number): number[][] {
  const out: number[][] = [];
  for (let s = 0; s < body.length; s += span) out.push([bos, ...body.slice(s, s + span)]);
  return out.filter((w) => w.length > 1);
}

/** At most `cap` tokens of windows, evenly spread over the list. */
function spread(ws: number[][], cap: number): number[][] {
  const total = ws.reduce((s, w) => s + w.length, 0);
  if (total <= cap) return ws;
  const k = Math.max(1, Math.floor(cap / WINDOW));
  return Array.from({ length: k }, (_, i) => ws[Math.floor(((i + 0.5) * ws.length) / k)]);
}

// ---------------------------------------------------------------------------------------------
// Training

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function gauss(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

interface LayerWeights { w1: Float32Array; b1: Float32Array; w2: Float32Array; b2: Float32Array; losses: number[] }


/**
 * The weights that decide activity in layer l, read from the model image:
 * W (ffn, d) = fc1 (OPT) or gate_proj (Llama) rows, and the matching bias (zeros when absent).
 */
export function ffnGateWeights(model: Model, l: number): { w: Float32Array; bias: Float32Array } {
  const h = model.engine.header, f = h.ffn, { hidden: d, ffn } = model.config;
  const off = f.gate >= 0 ? f.gate : f.up;
  const es = f.dtype === 'f32' ? 4 : 2;
  const raw = new Uint8Array(ffn * f.bundle_bytes);
  readExact(model.engine.source, raw, section(h, `ffn.${l}`).offset, `ffn.${l}`);
  const w = new Float32Array(ffn * d), bias = new Float32Array(ffn);
  const bv = new DataView(raw.buffer);
  for (let i = 0; i < ffn; i++) {
    const o = i * f.bundle_bytes;
    w.set(widenToF32(raw.subarray(o + off, o + off + d * es), f.dtype), i * d);
    if (f.gate < 0 && f.bias >= 0) bias[i] = bv.getFloat32(o + f.bias, true);
  }
  return { w, bias };
}

/** Eigen-decomposition of a symmetric (n, n) matrix (cyclic Jacobi); eigenvalues descending, vectors as columns of V. */
function symEig(A: Float64Array, n: number): { values: Float64Array; V: Float64Array } {
  const a = A.slice(), V = new Float64Array(n * n);
  for (let i = 0; i < n; i++) V[i * n + i] = 1;
  for (let sweep = 0; sweep < 30; sweep++) {
    let off = 0, diag = 0;
    for (let i = 0; i < n; i++) { diag += a[i * n + i] ** 2; for (let j = i + 1; j < n; j++) off += a[i * n + j] ** 2; }
    if (off <= 1e-22 * diag) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < n; k++) { // columns p, q
          const akp = a[k * n + p], akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq; a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) { // rows p, q
          const apk = a[p * n + k], aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk; a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = V[k * n + p], vkq = V[k * n + q];
          V[k * n + p] = c * vkp - s * vkq; V[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => a[j * n + j] - a[i * n + i]);
  const values = Float64Array.from(order, (i) => a[i * n + i]);
  const Vs = new Float64Array(n * n);
  for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) Vs[r * n + c] = V[r * n + order[c]];
  return { values, V: Vs };
}


/**
 * Top-k eigenpairs of a symmetric positive semi-definite (n, n) matrix by subspace iteration and a
 * Rayleigh–Ritz step (cheaper than symEig when k ≪ n). Returns values (all n, zeros past k) and V (n, n).
 */
function topEig(A: Float64Array, n: number, k: number): { values: Float64Array; V: Float64Array } {
  const rand = rng(12345);
  let Q = new Float64Array(n * k).map(() => gauss(rand));
  const orth = (M: Float64Array) => { // Gram–Schmidt on the k columns of (n, k)
    for (let c = 0; c < k; c++) {
      for (let p = 0; p < c; p++) { let dot = 0; for (let i = 0; i < n; i++) dot += M[i * k + c] * M[i * k + p]; for (let i = 0; i < n; i++) M[i * k + c] -= dot * M[i * k + p]; }
      let nn = 0; for (let i = 0; i < n; i++) nn += M[i * k + c] ** 2;
      nn = Math.sqrt(nn) || 1; for (let i = 0; i < n; i++) M[i * k + c] /= nn;
    }
  };
  const mul = (M: Float64Array) => { // A M
    const o = new Float64Array(n * k);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) { const a = A[i * n + j]; if (a === 0) continue; for (let c = 0; c < k; c++) o[i * k + c] += a * M[j * k + c]; }
    return o;
  };
  orth(Q);
  for (let it = 0; it < 40; it++) { Q = mul(Q); orth(Q); }
  const AQ = mul(Q), T = new Float64Array(k * k);
  for (let a = 0; a < k; a++) for (let b = 0; b < k; b++) { let s = 0; for (let i = 0; i < n; i++) s += Q[i * k + a] * AQ[i * k + b]; T[a * k + b] = s; }
  const t = symEig(T, k);
  const values = new Float64Array(n), V = new Float64Array(n * n);
  for (let c = 0; c < k; c++) {
    values[c] = t.values[c];
    for (let i = 0; i < n; i++) { let s = 0; for (let j = 0; j < k; j++) s += Q[i * k + j] * t.V[j * k + c]; V[i * n + c] = s; }
  }
  return { values, V };
}

/**
 * Initial predictor weights from the rank-r PCA of the pre-activations u = W x + bias over the
 * training inputs X (n, d): u ≈ U Uᵀ W (x − μ) + W μ + bias with U the top-r eigenvectors of
 * cov(u) = W Σ Wᵀ (found through the Cholesky factor Σ = L Lᵀ: the SVD of W L). The relu units
 * start in their linear range (offset 3σ), so z = α · (the PCA approximation of u).
 */
export function pcaInit(W: Float32Array, bias: Float32Array, X: Float32Array, n: number, d: number, ffn: number, r: number): { w1: Float32Array; b1: Float32Array; w2t: Float32Array; b2: Float32Array } {
  const m = Math.min(n, 8192), stride = n / m;
  const mu = new Float64Array(d), S = new Float64Array(d * d);
  for (let s = 0; s < m; s++) { const o = Math.floor(s * stride) * d; for (let j = 0; j < d; j++) mu[j] += X[o + j] / m; }
  const xc = new Float64Array(d);
  for (let s = 0; s < m; s++) {
    const o = Math.floor(s * stride) * d;
    for (let j = 0; j < d; j++) xc[j] = X[o + j] - mu[j];
    for (let i = 0; i < d; i++) { const xi = xc[i] / m; if (xi === 0) continue; for (let j = 0; j <= i; j++) S[i * d + j] += xi * xc[j]; }
  }
  let tr = 0;
  for (let i = 0; i < d; i++) tr += S[i * d + i];
  const L = new Float64Array(d * d); // Cholesky of Σ + ridge (lower)
  for (let i = 0; i < d; i++) S[i * d + i] += 1e-6 * tr / d + 1e-12;
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let v = S[i * d + j];
      for (let k = 0; k < j; k++) v -= L[i * d + k] * L[j * d + k];
      L[i * d + j] = i === j ? Math.sqrt(Math.max(v, 1e-30)) : v / L[j * d + j];
    }
  }
  const M = new Float64Array(ffn * d); // W L
  for (let i = 0; i < ffn; i++) {
    for (let k = 0; k < d; k++) {
      const wk = W[i * d + k];
      if (wk === 0) continue;
      for (let j = 0; j <= k; j++) M[i * d + j] += wk * L[k * d + j];
    }
  }
  const G = new Float64Array(d * d); // Mᵀ M
  for (let i = 0; i < ffn; i++) {
    const o = i * d;
    for (let a = 0; a < d; a++) { const ma = M[o + a]; if (ma === 0) continue; for (let b = a; b < d; b++) G[a * d + b] += ma * M[o + b]; }
  }
  for (let a = 0; a < d; a++) for (let b = 0; b < a; b++) G[a * d + b] = G[b * d + a];
  const { values, V } = r * 8 <= d ? topEig(G, d, r) : symEig(G, d);
  const rr = Math.min(r, d);
  const U = new Float64Array(ffn * r); // left singular vectors (ffn, r); columns past d stay 0
  const sig = new Float64Array(r);
  for (let k = 0; k < rr; k++) {
    sig[k] = Math.sqrt(Math.max(values[k], 0));
    if (sig[k] <= 0) continue;
    for (let i = 0; i < ffn; i++) { let s = 0; for (let j = 0; j < d; j++) s += M[i * d + j] * V[j * d + k]; U[i * r + k] = s / sig[k]; }
  }
  let totalVar = 0;
  for (let k = 0; k < d; k++) totalVar += G[k * d + k]; // trace = total variance of u
  const alpha = 2 / Math.sqrt(Math.max(totalVar / ffn, 1e-30));
  const w1 = new Float32Array(r * d), b1 = new Float32Array(r), w2t = new Float32Array(r * ffn), b2 = new Float32Array(ffn);
  for (let k = 0; k < r; k++) {
    let wmu = 0;
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let i = 0; i < ffn; i++) s += U[i * r + k] * W[i * d + j];
      w1[k * d + j] = s;
      wmu += s * mu[j];
    }
    b1[k] = 3 * sig[k] - wmu;
  }
  for (let i = 0; i < ffn; i++) {
    let u0 = bias[i];
    for (let j = 0; j < d; j++) u0 += W[i * d + j] * mu[j];
    for (let k = 0; k < r; k++) { w2t[k * ffn + i] = alpha * U[i * r + k]; u0 -= U[i * r + k] * 3 * sig[k]; }
    b2[i] = alpha * u0;
  }
  return { w1, b1, w2t, b2 };
}

/**
 * Trains one layer's predictor on samples (n, d) → bits (n, ffn). Returns f32 weights (W2 as (ffn, r))
 * and the mean loss of every epoch.
 */
export async function trainLayer(
  X: Float32Array, Y: Uint8Array, n: number, d: number, ffn: number, rank: number,
  opts: { epochs?: number; seed?: number; lr?: number; init?: ReturnType<typeof pcaInit>; signal?: AbortSignal; onStep?: () => void } = {},
): Promise<LayerWeights> {
  const r = rank, yb = rowBytes(ffn), epochs = opts.epochs ?? 8;
  const k = trainKernels();
  // parameter block [W1 | b1 | W2T | b2], each segment 4-float aligned so one Adam call covers all
  const oW1 = 0, ob1 = alignUp(r * d, 4), oW2 = ob1 + alignUp(r, 4), ob2 = oW2 + alignUp(r * ffn, 4), nP = ob2 + alignUp(ffn, 4);
  const pX = k.alloc(n * d * 4, 64), pY = k.alloc(n * yb, 64);
  const pIdx = allocF32(k, BATCH), pXb = allocF32(k, BATCH * d), pYb = k.alloc(BATCH * yb + 16, 64);
  const pH = allocF32(k, BATCH * r), pZ = allocF32(k, BATCH * ffn), pdA = allocF32(k, BATCH * r);
  const pP = allocF32(k, nP), pG = allocF32(k, nP), pM = allocF32(k, nP), pV = allocF32(k, nP);
  if (!pX || !pY || !pYb) throw new Error('predictor training: out of wasm memory');
  const mem = k.memory.buffer;
  new Float32Array(mem, pX, n * d).set(X.subarray(0, n * d));
  new Uint8Array(mem, pY, n * yb).set(Y.subarray(0, n * yb));
  const P = new Float32Array(mem, pP, nP);
  const idx = new Int32Array(mem, pIdx, BATCH);

  // init: W1 ~ N(0, 1 / (d · E[x²])), b1 = 0.1, W2 ~ N(0, 1/r), b2 = logit of each neuron's rate
  const rand = rng(opts.seed ?? 1);
  let ss = 0;
  for (let i = 0; i < n * d; i++) ss += X[i] * X[i];
  const xs = 1 / Math.sqrt(Math.max(ss / Math.max(1, n), 1e-12));
  for (let i = 0; i < r * d; i++) P[oW1 + i] = gauss(rand) * xs;
  for (let i = 0; i < r; i++) P[ob1 + i] = 0.1;
  for (let i = 0; i < r * ffn; i++) P[oW2 + i] = gauss(rand) / Math.sqrt(r);
  const count = new Float64Array(ffn);
  let pos = 0;
  for (let t = 0; t < n; t++) for (let i = 0; i < ffn; i++) if ((Y[t * yb + (i >> 3)] >> (i & 7)) & 1) count[i]++;
  for (let i = 0; i < ffn; i++) pos += count[i];
  const posWeight = Math.min(100, Math.max(1, (n * ffn - pos) / Math.max(1, pos)));
  for (let i = 0; i < ffn; i++) {
    const p = (count[i] + 0.5) / (n + 1);
    P[ob2 + i] = Math.log((posWeight * p) / (1 - p));
  }
  if (opts.init) {
    P.set(opts.init.w1, oW1); P.set(opts.init.b1, ob1); P.set(opts.init.w2t, oW2); P.set(opts.init.b2, ob2);
  }

  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const steps = epochs * Math.ceil(n / BATCH);
  const lr0 = opts.lr ?? 3e-3, b1 = 0.9, b2 = 0.999;
  let step = 0;
  const losses: number[] = [];
  for (let ep = 0; ep < epochs; ep++) {
    for (let i = n - 1; i > 0; i--) { const j = Math.floor(rand() * (i + 1)); const t = order[i]; order[i] = order[j]; order[j] = t; }
    let lossSum = 0;
    for (let s = 0; s < n; s += BATCH) {
      const B = Math.min(BATCH, n - s);
      idx.set(order.subarray(s, s + B));
      k.gather(pX, pIdx, B, d * 4, pXb);
      k.gather(pY, pIdx, B, yb, pYb);
      k.linear_relu(pXb, B, d, pP + oW1 * 4, pP + ob1 * 4, r, pH);
      k.linear_out(pH, B, r, pP + oW2 * 4, pP + ob2 * 4, ffn, pZ);
      lossSum += k.bce_grad(pZ, pYb, B, ffn, yb, posWeight, 1 / (B * ffn));
      k.zero(pG, nP);
      k.grad_out(pH, pZ, B, r, ffn, pG + oW2 * 4, pG + ob2 * 4);
      k.grad_hidden(pZ, pP + oW2 * 4, pH, B, r, ffn, pdA);
      k.grad_in(pXb, pdA, B, d, r, pG + oW1 * 4, pG + ob1 * 4);
      step++;
      const lr = lr0 * 0.5 * (1 + Math.cos((Math.PI * step) / steps)); // cosine decay to 0
      k.adam(pP, pG, pM, pV, nP, lr, b1, b2, 1e-8, 1 - b1 ** step, 1 - b2 ** step);
      opts.onStep?.();
      if (step % 16 === 0) { opts.signal?.throwIfAborted(); await tick(); }
    }
    losses.push(lossSum / (n * ffn));
  }
  const w1 = P.slice(oW1, oW1 + r * d), bb1 = P.slice(ob1, ob1 + r), bb2 = P.slice(ob2, ob2 + ffn);
  const w2 = new Float32Array(ffn * r);
  for (let kk = 0; kk < r; kk++) for (let i = 0; i < ffn; i++) w2[i * r + kk] = P[oW2 + kk * ffn + i];
  return { w1, b1: bb1, w2, b2: bb2, losses };
}

/** Logits z (n, ffn) of one layer's predictor over samples, through the SIMD kernels. */
function layerLogits(k: TrainKernels, L: { w1: Float32Array; b1: Float32Array; w2: Float32Array; b2: Float32Array }, X: Float32Array, n: number, d: number, ffn: number, r: number, out: Float32Array): void {
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

/**
 * Threshold t from validation logits: the highest with share ≥ target of the active entries at z > t,
 * lowered further while the predicted set stays within budget × the active set.
 */
function calibrate(z: Float32Array, bits: Uint8Array, n: number, ffn: number, target: number, budget: number): number {
  const yb = rowBytes(ffn);
  const pos: number[] = [];
  for (let t = 0; t < n; t++) for (let i = 0; i < ffn; i++) if ((bits[t * yb + (i >> 3)] >> (i & 7)) & 1) pos.push(z[t * ffn + i]);
  if (!pos.length) return 0;
  const zs = Float64Array.from(pos).sort();
  const miss = Math.floor((1 - target) * zs.length); // positives allowed at or below the threshold
  const thr = miss === 0 ? zs[0] - 1e-3 : zs[miss] > zs[miss - 1] ? (zs[miss] + zs[miss - 1]) / 2 : zs[miss] - 1e-6 * Math.max(1, Math.abs(zs[miss]));
  // slack under the ratio budget buys recall: lower the threshold until ratio × |active| neurons are predicted
  const k = Math.floor(budget * zs.length);
  if (!(k < z.length)) return thr;
  const all = Float32Array.from(z).sort(); // ascending; the k-th largest sits at length - 1 - k
  return Math.min(thr, all[all.length - 1 - k]);
}

/** The token windows of trainPredictor's three splits of `text` (see trainPredictor). */
export function predictorSplits(model: Model, text: string, opts: Pick<TrainOptions, 'maxTokens' | 'heldOut'> = {}): { train: number[][]; val: number[][]; held: number[][] } {
  const maxTokens = opts.maxTokens ?? 16000, heldOut = opts.heldOut ?? 0.15;
  if (!(heldOut >= 0 && heldOut < 0.9)) throw new Error(`heldOut must be a share in [0, 0.9) (got ${heldOut})`);
  const bos = model.config.bosId;
  const all = model.tokenize(text);
  const body = all[0] === bos ? all.slice(1) : all;
  const span = Math.min(WINDOW, model.engine.contextLength) - 1;
  const hEnd = body.length, hStart = Math.floor(body.length * (1 - heldOut));
  const vStart = Math.floor(hStart * 0.9);
  const cap = Math.max(WINDOW, Math.floor(maxTokens / 4));
  const train = spread(windowsOf(body.slice(0, vStart), bos, span), maxTokens);
  const val = spread(windowsOf(body.slice(vStart, hStart), bos, span), cap);
  const held = spread(windowsOf(body.slice(hStart, hEnd), bos, span), cap);
  if (!train.length || !val.length) throw new Error(`the text is too short to train a predictor (${all.length} tokens)`);
  return { train, val, held };
}

/** The ladder of rungs for a predictor of rank `rank`: the requested ranks below it, ascending, then `rank`. */
function rungRanks(rank: number, req: number[] | undefined): number[] {
  const want = req ?? DEFAULT_RUNGS;
  for (const r of want) if (!(Number.isInteger(r) && r >= 1)) throw new Error(`rungs must be positive integers (got ${r})`);
  return [...new Set(want.filter((r) => r < rank))].sort((a, b) => a - b).concat(rank);
}

/** Mean over (at most 8192 evenly spread) samples of the relu hidden units h = relu(W1 x + b1), in f64. */
function hiddenMean(k: TrainKernels, w1: Float32Array, b1: Float32Array, X: Float32Array, n: number, d: number, r: number): Float64Array {
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

/** Layer L cut to its first r components: W1 / b1 rows, W2 columns (repacked to (ffn, r)); b2 and threshold as given. */
function sliceLayer(L: PredictorLayer, rank: number, r: number, d: number, ffn: number, b2: Float32Array, threshold: number, recall: number, ratio: number): PredictorLayer {
  const w2 = new Float32Array(ffn * r);
  for (let i = 0; i < ffn; i++) w2.set(L.w2.subarray(i * rank, i * rank + r), i * r);
  return { w1: L.w1.slice(0, r * d), b1: L.b1.slice(0, r), w2, b2, threshold, recall, ratio };
}

/**
 * Trains a predictor for every FFN layer of `model` on `text`: the text is tokenized once (with BOS),
 * its last `heldOut` share is kept for the report, the 10 % before that is the validation split
 * (thresholds), the rest is training data; each split is cut into windows of ≤ 256 tokens that
 * restart at position 0 with BOS (predictorSplits).
 *
 * Nested ranks: for every rung r' of the ladder (opts.rungs, then the full rank), per layer, the kept
 * candidate cut to its first r' components gets b2 + the dropped components' mean contribution over
 * the training tokens, a threshold calibrated on the validation split by the same rule, and its
 * recall / ratio measured on the held-out split with evaluatePredictor (the scalar reference).
 */
export async function trainPredictor(model: Model, text: string, opts: TrainOptions = {}): Promise<Predictor> {
  const t0 = performance.now();
  const { nLayers: L, hidden: d, ffn } = model.config;
  const rank = opts.rank ?? 192;
  const target = opts.targetRecall ?? 0.975, budget = opts.ratioBudget ?? 1.8, seed = opts.seed ?? 1, epochs = opts.epochs ?? 1;
  if (!(Number.isInteger(rank) && rank >= 1 && rank <= 4096)) throw new Error(`rank must be an integer in 1..4096 (got ${rank})`);
  const ladder = rungRanks(rank, opts.rungs);
  const { train: trainW, val: valW, held: heldW } = predictorSplits(model, text, opts);
  const count = (ws: number[][]) => ws.reduce((s, w) => s + w.length, 0);
  const nCollect = count(trainW) + count(valW) + count(heldW);

  const progress = opts.onProgress;
  const train = await collectSamples(model, trainW, { onProgress: progress, signal: opts.signal, done: 0, total: nCollect });
  const val = await collectSamples(model, valW, { onProgress: progress, signal: opts.signal, done: train.n, total: nCollect });
  const held = heldW.length ? await collectSamples(model, heldW, { onProgress: progress, signal: opts.signal, done: train.n + val.n, total: nCollect }) : undefined;

  const nTune = Math.min(train.n, TUNE_TOKENS);
  const stepsPerLayer = epochs * Math.ceil(nTune / BATCH);
  let done = 0;
  const layers: PredictorLayer[] = [], kept: string[] = [];
  // per rung, per layer: b2, threshold and validation measures
  const rungVal = ladder.map(() => [] as { b2: Float32Array; threshold: number; recall: number; ratio: number; pred: number; act: number }[]);
  for (let l = 0; l < L; l++) {
    opts.signal?.throwIfAborted();
    progress?.(l, L, 'init');
    const { w: W, bias } = ffnGateWeights(model, l);
    const init = pcaInit(W, bias, train.x[l], train.n, d, ffn, rank);
    await tick();
    // candidate 1: the PCA initialisation as it stands; candidate 2: it fine-tuned with weighted BCE + Adam
    const candidates: { name: string; w1: Float32Array; b1: Float32Array; w2: Float32Array; b2: Float32Array }[] = [
      { name: 'pca', w1: init.w1, b1: init.b1, w2: transpose(init.w2t, rank, ffn), b2: init.b2 },
    ];
    if (epochs > 0) {
      candidates.push({ name: 'bce', ...await trainLayer(train.x[l].subarray(0, nTune * d), train.active[l], nTune, d, ffn, rank, {
        epochs, seed: seed + 7919 * l, lr: opts.lr ?? 3e-4, init, signal: opts.signal,
        onStep: () => { if (++done % 8 === 0) progress?.(done, stepsPerLayer * L, 'train'); },
      }) });
    }
    // f16-rounded weights (what the engine runs) calibrated on the validation split; the smaller predicted set wins
    let best: PredictorLayer | undefined, bestName = '';
    const z = new Float32Array(val.n * ffn);
    for (const c of candidates) {
      const layer = { w1: roundF16(c.w1), b1: c.b1, w2: roundF16(c.w2), b2: c.b2, threshold: 0, recall: 0, ratio: 0 };
      layerLogits(trainKernels(), layer, val.x[l], val.n, d, ffn, rank, z);
      layer.threshold = calibrate(z, val.active[l], val.n, ffn, target, budget);
      const m = countLayer(z, val.active[l], val.n, ffn, layer.threshold);
      layer.recall = m.recall;
      layer.ratio = m.ratio;
      if (!best || layer.ratio < best.ratio) { best = layer; bestName = c.name; }
    }
    layers.push(best!);
    kept.push(bestName);
    // the rungs: b2 compensated for the dropped components' mean, threshold recalibrated
    progress?.(l, L, 'rungs');
    const mean = hiddenMean(trainKernels(), best!.w1, best!.b1, train.x[l], train.n, d, rank);
    for (const [ri, r] of ladder.entries()) {
      let b2 = best!.b2, S = best!;
      if (r < rank) {
        b2 = new Float32Array(ffn);
        for (let i = 0; i < ffn; i++) {
          let s = best!.b2[i];
          for (let kk = r, o = i * rank; kk < rank; kk++) s += best!.w2[o + kk] * mean[kk];
          b2[i] = s;
        }
        S = sliceLayer(best!, rank, r, d, ffn, b2, 0, 0, 0);
        layerLogits(trainKernels(), S, val.x[l], val.n, d, ffn, r, z);
        S.threshold = calibrate(z, val.active[l], val.n, ffn, target, budget);
      } else {
        layerLogits(trainKernels(), S, val.x[l], val.n, d, ffn, r, z);
      }
      const m = countLayer(z, val.active[l], val.n, ffn, S.threshold);
      rungVal[ri].push({ b2: b2.slice(), threshold: S.threshold, recall: m.recall, ratio: m.ratio, pred: m.pred, act: m.act });
      await tick();
    }
  }
  progress?.(stepsPerLayer * L, stepsPerLayer * L, 'train');
  const rungs: PredictorRung[] = ladder.map((r, ri) => ({
    rank: r,
    layers: rungVal[ri].map((v) => ({
      threshold: v.threshold, recall: v.recall, ratio: v.ratio, predicted_share: v.pred / Math.max(1, val.n * ffn), true_share: v.act / Math.max(1, val.n * ffn),
      val_recall: v.recall, val_ratio: v.ratio, b2: v.b2,
    })),
  }));
  const p: Predictor = {
    rank, hidden: d, ffn, nLayers: L, fingerprint: modelFingerprint(model.engine.header), layers,
    report: { rank, train_tokens: train.n, heldout_tokens: held?.n ?? 0, seconds: 0, layers: [], kept }, rungs,
  };
  if (held) {
    for (const [ri, rung] of rungs.entries()) {
      progress?.(ri, rungs.length, 'evaluate');
      const ev = evaluatePredictor(truncatePredictor(p, rung.rank), held);
      ev.forEach((e, l) => Object.assign(rung.layers[l], { recall: e.recall, ratio: e.ratio, predicted_share: e.predicted_share, true_share: e.true_share }));
      if (rung.rank === rank) p.report.layers = ev;
      await tick();
    }
    progress?.(rungs.length, rungs.length, 'evaluate');
  }
  p.report.seconds = Math.round((performance.now() - t0) / 100) / 10;
  return p;
}

function countLayer(z: Float32Array, bits: Uint8Array, n: number, ffn: number, thr: number): { recall: number; ratio: number; tp: number; pred: number; act: number } {
  const yb = rowBytes(ffn);
  let tp = 0, pred = 0, act = 0;
  for (let t = 0; t < n; t++) {
    for (let i = 0; i < ffn; i++) {
      const y = (bits[t * yb + (i >> 3)] >> (i & 7)) & 1, p = z[t * ffn + i] > thr;
      act += y; pred += +p; tp += +(p && y === 1);
    }
  }
  return { recall: act ? tp / act : 1, ratio: act ? pred / act : 0, tp, pred, act };
}

// ---------------------------------------------------------------------------------------------
// Inference reference and evaluation

/**
 * Scalar reference of the predictor's inference over samples; per layer: recall (share of truly
 * active neurons predicted, over all positions), ratio (predicted / truly active), the shares of
 * active and predicted neurons. `threshold`, when given, overrides every layer's own.
 */
export function evaluatePredictor(p: Predictor, samples: PredictorSamples, threshold?: number): PredictorLayerEval[] {
  const { hidden: d, ffn, rank: r } = p;
  if (samples.hidden !== d || samples.ffn !== ffn || samples.x.length < p.nLayers || samples.active.length < p.nLayers) {
    throw new Error(`samples (hidden ${samples.hidden}, ffn ${samples.ffn}, ${samples.x.length} layers) do not match the predictor (hidden ${d}, ffn ${ffn}, ${p.nLayers} layers)`);
  }
  const yb = rowBytes(ffn), h = new Float64Array(r);
  return p.layers.map((L, l) => {
    const thr = threshold ?? L.threshold;
    const X = samples.x[l], bits = samples.active[l];
    let tp = 0, pred = 0, act = 0;
    for (let t = 0; t < samples.n; t++) {
      const xo = t * d;
      for (let k = 0; k < r; k++) {
        let a = L.b1[k];
        for (let j = 0, wo = k * d; j < d; j++) a += L.w1[wo + j] * X[xo + j];
        h[k] = a > 0 ? a : 0;
      }
      for (let i = 0; i < ffn; i++) {
        let z = L.b2[i];
        for (let k = 0, wo = i * r; k < r; k++) z += L.w2[wo + k] * h[k];
        const y = (bits[t * yb + (i >> 3)] >> (i & 7)) & 1, pr = z > thr;
        act += y; pred += +pr; tp += +(pr && y === 1);
      }
    }
    const cells = Math.max(1, samples.n * ffn);
    return { layer: l, recall: act ? tp / act : 1, ratio: act ? pred / act : 0, true_share: act / cells, predicted_share: pred / cells, threshold: thr };
  });
}

/** Bytes the predictor takes in engine memory: f16 W1 and W2, f32 b1, b2 and a threshold per layer. */
export function predictorBytes(p: Predictor): number {
  return p.nLayers * (2 * (p.rank * p.hidden + p.ffn * p.rank) + 4 * (p.rank + p.ffn) + 4);
}

/** The largest rung of p at or below `rank` (throws when there is none). */
function rungAt(p: Predictor, rank: number): PredictorRung {
  if (!Array.isArray(p.rungs) || !p.rungs.length) throw new Error('this predictor has no nested-rank rungs; train it again');
  if (!(Number.isFinite(rank) && rank >= 1)) throw new Error(`rank must be a number ≥ 1 (got ${rank})`);
  let best: PredictorRung | undefined;
  for (const g of p.rungs) if (g.rank <= rank && (!best || g.rank > best.rank)) best = g;
  if (!best) throw new Error(`rank ${rank} is below the predictor's smallest rung (${p.rungs.map((g) => g.rank).join(', ')})`);
  return best;
}

/**
 * p truncated to the largest rung ≤ `rank`: per layer the first r' rows of W1 / b1 and columns of W2
 * (repacked to (ffn, r')), the rung's b2 and threshold; layers' recall / ratio are the rung's
 * validation measures, report.layers its held-out ones; rungs keeps those ≤ r' (the last is r').
 * The result's math is exactly what the engine runs: z = W2[:, :r'] · relu(W1[:r'] x + b1[:r']) + b2_r'.
 */
export function truncatePredictor(p: Predictor, rank: number): Predictor {
  const g = rungAt(p, rank), r = g.rank, { hidden: d, ffn } = p;
  if (g.layers.length !== p.nLayers) throw new Error(`rung ${r} has ${g.layers.length} layers, the predictor ${p.nLayers}`);
  const layers = p.layers.map((L, l) => {
    const G = g.layers[l];
    if (G.b2.length !== ffn) throw new Error(`rung ${r} layer ${l}: b2 has ${G.b2.length} values, expected ${ffn}`);
    return sliceLayer(L, p.rank, r, d, ffn, G.b2.slice(), G.threshold, G.val_recall, G.val_ratio);
  });
  const copyRung = (q: PredictorRung): PredictorRung => ({ rank: q.rank, layers: q.layers.map((G) => ({ ...G, b2: G.b2.slice() })) });
  return {
    rank: r, hidden: d, ffn, nLayers: p.nLayers, fingerprint: p.fingerprint, layers,
    report: {
      ...p.report, rank: r,
      layers: g.layers.map((G, l) => ({ layer: l, recall: G.recall, ratio: G.ratio, true_share: G.true_share, predicted_share: G.predicted_share, threshold: G.threshold })),
    },
    rungs: p.rungs.filter((q) => q.rank <= r).map(copyRung),
  };
}

/**
 * Engine bytes of p truncated to `rank` (the largest rung ≤ rank, as truncatePredictor picks):
 * predictorBytes' formula at that rank; with dtype 'q8_0' the weights as the engine holds them
 * by default (int8 blocks of 32, the rank padded to a multiple of 32).
 */
export function predictorBytesAt(p: Predictor, rank: number, dtype: 'f16' | 'q8_0' = 'f16'): number {
  let r = rungAt(p, rank).rank;
  if (dtype === 'f16' || p.hidden % 32) return p.nLayers * (2 * (r * p.hidden + p.ffn * r) + 4 * (r + p.ffn) + 4);
  r = Math.ceil(r / 32) * 32;
  return p.nLayers * ((34 / 32) * (r * p.hidden + p.ffn * r) + 4 * (r + p.ffn) + 4);
}

/** The largest rung rank of p whose engine bytes fit in `bytes`, or undefined when even the smallest does not. */
export function rankForBytes(p: Predictor, bytes: number): number | undefined {
  let best: number | undefined;
  for (const g of p.rungs ?? []) if (predictorBytesAt(p, g.rank) <= bytes && (best === undefined || g.rank > best)) best = g.rank;
  return best;
}

// ---------------------------------------------------------------------------------------------
// Identity and files

/** Identifies the model a predictor was trained for: CRC-32s of the resident and FFN sections and the config. */
export function modelFingerprint(header: ImageHeader): string {
  const c = header.config;
  const parts = [section(header, 'resident').crc32];
  // The bundled layout's checksums, so a split (--no-bundle) image of the same weights matches.
  for (let l = 0; l < c.nLayers; l++) parts.push(header.ffn.bundled_crc32?.[l] ?? section(header, `ffn.${l}`).crc32);
  const cfg = crc32(new TextEncoder().encode(JSON.stringify(c)));
  const sec = crc32(new TextEncoder().encode(parts.join(',')));
  const hex = (v: number) => (v >>> 0).toString(16).padStart(8, '0');
  return `${c.arch}-${c.nLayers}x${c.hidden}x${c.ffn}-${hex(sec)}${hex(cfg)}`;
}

/** Where a model's predictor lives: an HF folder → <folder>/flashneuron.fnpred; x.fnimg → x.fnpred. */
export function predictorPath(modelPath: string): string {
  if (/\.fnimg$/i.test(modelPath)) return modelPath.replace(/\.fnimg$/i, '.fnpred');
  if (existsSync(modelPath) && statSync(modelPath).isFile()) return modelPath.replace(/(\.[^./\\]*)?$/, '.fnpred');
  return join(modelPath, 'flashneuron.fnpred');
}

interface FileHeader {
  format: string; version: number; fingerprint: string;
  config: { nLayers: number; hidden: number; ffn: number; rank: number };
  dtype: string;
  layers: { threshold: number; recall: number; ratio: number; w1: Range; b1: Range; w2: Range; b2: Range }[];
  ranks: { rank: number; layers: (Omit<PredictorRungLayer, 'b2'> & { b2: Range })[] }[];
  data_crc32: number;
  report: PredictorReport;
}
interface Range { offset: number; length: number }

/** Writes p to path atomically (a temporary file, then rename). Weights are stored as f16. */
export function savePredictor(path: string, p: Predictor): void {
  const { rank: r, hidden: d, ffn } = p;
  let off = 0;
  const place = (bytes: number): Range => { const o = off; off = alignUp(off + bytes, ALIGN); return { offset: o, length: bytes }; };
  const ranges = p.layers.map((L) => {
    checkLayerShape(L, r, d, ffn, 'predictor');
    return { w1: place(r * d * 2), b1: place(r * 4), w2: place(ffn * r * 2), b2: place(ffn * 4) };
  });
  checkRungs(p.rungs, r, p.nLayers, ffn, 'predictor');
  p.rungs[p.rungs.length - 1].layers.forEach((G, l) => {
    if (G.threshold !== p.layers[l].threshold) throw new Error(`predictor: the full-rank rung's layer ${l} threshold ${G.threshold} differs from the layer's ${p.layers[l].threshold}`);
  });
  const rungRanges = p.rungs.map((g) => g.layers.map(() => place(ffn * 4)));
  const data = new Uint8Array(off);
  const dv = new DataView(data.buffer);
  p.layers.forEach((L, l) => {
    const g = ranges[l];
    L.w1.forEach((v, i) => dv.setUint16(g.w1.offset + 2 * i, f32ToF16(v), true));
    L.w2.forEach((v, i) => dv.setUint16(g.w2.offset + 2 * i, f32ToF16(v), true));
    L.b1.forEach((v, i) => dv.setFloat32(g.b1.offset + 4 * i, v, true));
    L.b2.forEach((v, i) => dv.setFloat32(g.b2.offset + 4 * i, v, true));
  });
  p.rungs.forEach((g, gi) => g.layers.forEach((G, l) => G.b2.forEach((v, i) => dv.setFloat32(rungRanges[gi][l].offset + 4 * i, v, true))));
  const header: FileHeader = {
    format: 'flashneuron-predictor', version: VERSION, fingerprint: p.fingerprint,
    config: { nLayers: p.nLayers, hidden: d, ffn, rank: r }, dtype: 'f16',
    layers: p.layers.map((L, l) => ({ threshold: L.threshold, recall: L.recall, ratio: L.ratio, ...ranges[l] })),
    ranks: p.rungs.map((g, gi) => ({
      rank: g.rank,
      layers: g.layers.map((G, l) => ({
        threshold: G.threshold, recall: G.recall, ratio: G.ratio, predicted_share: G.predicted_share, true_share: G.true_share,
        val_recall: G.val_recall, val_ratio: G.val_ratio, b2: rungRanges[gi][l],
      })),
    })),
    data_crc32: crc32(data), report: p.report,
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const dataStart = alignUp(16 + json.length, ALIGN);
  const head = new Uint8Array(dataStart);
  head.set(new TextEncoder().encode(MAGIC), 0);
  const hv = new DataView(head.buffer);
  hv.setUint32(8, json.length, true);
  hv.setUint32(12, crc32(json), true);
  head.set(json, 16);
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeAll(fd, head, 0);
    writeAll(fd, data, dataStart);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

function writeAll(fd: number, bytes: Uint8Array, pos: number): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done, pos + done);
}

/** Rungs must be ascending distinct integer ranks in 1..rank ending at rank, each with nLayers layers of ffn-long b2 and finite numbers. */
function checkRungs(rungs: PredictorRung[] | undefined, rank: number, nLayers: number, ffn: number, what: string): void {
  if (!Array.isArray(rungs) || !rungs.length) throw new Error(`${what}: no nested-rank rungs (train it again)`);
  rungs.forEach((g, gi) => {
    if (!Number.isInteger(g.rank) || g.rank < 1 || g.rank > rank) throw new Error(`${what}: rung ${gi} has rank ${g.rank}, not an integer in 1..${rank}`);
    if (gi > 0 && !(g.rank > rungs[gi - 1].rank)) throw new Error(`${what}: rung ranks are not ascending (${rungs.map((q) => q.rank).join(', ')})`);
    if (!Array.isArray(g.layers) || g.layers.length !== nLayers) throw new Error(`${what}: rung ${g.rank} lists ${g.layers?.length} layers, expected ${nLayers}`);
    g.layers.forEach((G, l) => {
      for (const k of ['threshold', 'recall', 'ratio', 'predicted_share', 'true_share', 'val_recall', 'val_ratio'] as const) {
        if (typeof G[k] !== 'number' || !Number.isFinite(G[k])) throw new Error(`${what}: rung ${g.rank} layer ${l} ${k} is ${G[k]}`);
      }
      if (G.b2 && G.b2.length !== ffn) throw new Error(`${what}: rung ${g.rank} layer ${l} b2 has ${G.b2.length} values, expected ${ffn}`);
    });
  });
  if (rungs[rungs.length - 1].rank !== rank) throw new Error(`${what}: the last rung has rank ${rungs[rungs.length - 1].rank}, not the full rank ${rank}`);
}

function checkLayerShape(L: PredictorLayer, r: number, d: number, ffn: number, what: string): void {
  if (L.w1.length !== r * d || L.b1.length !== r || L.w2.length !== ffn * r || L.b2.length !== ffn) {
    throw new Error(`${what}: layer tensors have shapes w1 ${L.w1.length}, b1 ${L.b1.length}, w2 ${L.w2.length}, b2 ${L.b2.length}; expected ${r * d}, ${r}, ${ffn * r}, ${ffn}`);
  }
}

/**
 * Reads a .fnpred file. Throws a clear Error for a bad magic or version, truncation, a CRC mismatch,
 * tensors outside the data or of the wrong size, and (with expectFingerprint) a predictor trained
 * for another model.
 */
export function loadPredictor(path: string, expectFingerprint?: string): Predictor {
  if (!existsSync(path)) throw new Error(`predictor not found: ${path}`);
  return decodePredictor(new Uint8Array(readFileSync(path)), path, expectFingerprint);
}

/** A predictor from the bytes of a .fnpred file (`path` names it in errors); same checks as loadPredictor. */
export function decodePredictor(buf: Uint8Array, path: string, expectFingerprint?: string): Predictor {
  const bad = (msg: string): never => { throw new Error(`${path}: ${msg}`); };
  if (buf.length < 16) bad(`not a flashneuron predictor (file is ${buf.length} bytes)`);
  const magic = new TextDecoder().decode(buf.subarray(0, 8));
  if (magic !== MAGIC) {
    if (magic.startsWith('FNPRED')) bad(`predictor format ${magic} is not supported (this build reads ${MAGIC}); train it again`);
    bad('not a flashneuron predictor (bad magic)');
  }
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
  const hlen = dv.getUint32(8, true), hcrc = dv.getUint32(12, true);
  if (hlen === 0 || 16 + hlen > buf.length) bad(`predictor file is truncated (header of ${hlen} bytes, file has ${buf.length})`);
  const json = buf.subarray(16, 16 + hlen);
  if (crc32(json) !== hcrc) bad('predictor header checksum mismatch (file is corrupted)');
  let h: FileHeader;
  try { h = JSON.parse(new TextDecoder().decode(json)); } catch { return bad('predictor header is not valid JSON'); }
  if (h.format !== 'flashneuron-predictor') bad(`not a flashneuron predictor (format ${h.format})`);
  if (h.version === 1) bad(`predictor version 1 has no nested-rank table (this build reads version ${VERSION}); retrain it (flashneuron train-predictor, or node bench/predictor.js for the shipped models)`);
  if (h.version !== VERSION) bad(`predictor version ${h.version} is not supported (this build reads ${VERSION}); retrain it`);
  if (h.dtype !== 'f16') bad(`predictor dtype ${h.dtype} is not supported (expected f16)`);
  const c = h.config ?? ({} as FileHeader['config']);
  for (const k of ['nLayers', 'hidden', 'ffn', 'rank'] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0 || c[k] > 1 << 20) bad(`invalid predictor: config.${k} = ${c[k]}`);
  }
  if (!Array.isArray(h.layers) || h.layers.length !== c.nLayers) bad(`invalid predictor: ${h.layers?.length} layers listed, config says ${c.nLayers}`);
  if (expectFingerprint !== undefined && h.fingerprint !== expectFingerprint) {
    bad(`this predictor belongs to another model (its fingerprint is ${h.fingerprint}, the loaded model's is ${expectFingerprint}); train one for this model`);
  }
  const dataStart = alignUp(16 + hlen, ALIGN);
  if (dataStart > buf.length) bad(`predictor file is truncated (data would start at ${dataStart}, file has ${buf.length} bytes)`);
  const data = buf.subarray(dataStart);
  const { rank: r, hidden: d, ffn } = c;
  const want = { w1: r * d * 2, b1: r * 4, w2: ffn * r * 2, b2: ffn * 4 };
  for (const [l, L] of h.layers.entries()) {
    for (const k of ['w1', 'b1', 'w2', 'b2'] as const) {
      const g = L[k];
      if (!g || !Number.isSafeInteger(g.offset) || !Number.isSafeInteger(g.length) || g.offset < 0) bad(`invalid predictor: layer ${l} ${k} has a bad range`);
      if (g.length !== want[k]) bad(`invalid predictor: layer ${l} ${k} holds ${g.length} bytes, its shape needs ${want[k]}`);
      if (g.offset % ALIGN) bad(`invalid predictor: layer ${l} ${k} is not ${ALIGN}-byte aligned`);
      if (g.offset + g.length > data.length) bad(`predictor file is truncated (layer ${l} ${k} ends at ${g.offset + g.length}, the data has ${data.length} bytes)`);
    }
    if (typeof L.threshold !== 'number' || !Number.isFinite(L.threshold)) bad(`invalid predictor: layer ${l} threshold ${L.threshold}`);
  }
  if (!Array.isArray(h.ranks)) bad('invalid predictor: no nested-rank table (ranks); retrain it');
  for (const g of h.ranks) {
    if (!g || typeof g !== 'object') bad('invalid predictor: a ranks entry is not an object');
    for (const [l, G] of (Array.isArray(g.layers) ? g.layers : []).entries()) {
      const b = G?.b2;
      if (!b || !Number.isSafeInteger(b.offset) || !Number.isSafeInteger(b.length) || b.offset < 0) bad(`invalid predictor: rung ${g.rank} layer ${l} b2 has a bad range`);
      if (b.length !== ffn * 4) bad(`invalid predictor: rung ${g.rank} layer ${l} b2 holds ${b.length} bytes, its shape needs ${ffn * 4}`);
      if (b.offset % ALIGN) bad(`invalid predictor: rung ${g.rank} layer ${l} b2 is not ${ALIGN}-byte aligned`);
      if (b.offset + b.length > data.length) bad(`predictor file is truncated (rung ${g.rank} layer ${l} b2 ends at ${b.offset + b.length}, the data has ${data.length} bytes)`);
    }
  }
  try {
    const heads = h.ranks.map((g) => ({ rank: g.rank, layers: Array.isArray(g.layers) ? g.layers.map(({ b2: _b2, ...G }) => G) : g.layers }));
    checkRungs(heads as unknown as PredictorRung[], r, c.nLayers, ffn, 'invalid predictor');
  } catch (e) { bad((e as Error).message); }
  const full = h.ranks[h.ranks.length - 1];
  full.layers.forEach((G, l) => { if (G.threshold !== h.layers[l].threshold) bad(`invalid predictor: the full-rank rung's layer ${l} threshold ${G.threshold} differs from the layer's ${h.layers[l].threshold}`); });
  if (crc32(data) !== h.data_crc32 >>> 0) bad('predictor data checksum mismatch (file is corrupted)');
  const ddv = new DataView(data.buffer, data.byteOffset, data.length);
  const f16s = (g: Range) => { const o = new Float32Array(g.length >> 1); for (let i = 0; i < o.length; i++) o[i] = f16ToF32(ddv.getUint16(g.offset + 2 * i, true)); return o; };
  const f32s = (g: Range) => { const o = new Float32Array(g.length >> 2); for (let i = 0; i < o.length; i++) o[i] = ddv.getFloat32(g.offset + 4 * i, true); return o; };
  return {
    rank: r, hidden: d, ffn, nLayers: c.nLayers, fingerprint: h.fingerprint,
    layers: h.layers.map((L) => ({ w1: f16s(L.w1), b1: f32s(L.b1), w2: f16s(L.w2), b2: f32s(L.b2), threshold: L.threshold, recall: L.recall, ratio: L.ratio })),
    report: h.report,
    rungs: h.ranks.map((g) => ({ rank: g.rank, layers: g.layers.map((G) => ({ ...G, b2: f32s(G.b2) })) })),
  };
}
