// The engine's plan, made before any weight is read (as llama.cpp's model loader decides
// tensors, types and buffers from the header and the options first): where each part of the
// model lives and how many bytes it takes under the budget. Pure functions of the image header,
// the engine options and the sizes the wasm reports for its own state; Engine.load (engine.ts)
// then allocates and reads exactly this.
import type { ModelConfig } from '../format/config.js';
import { rowBytes, tensorBytes, type DType } from '../format/dtype.js';
import { section, type FfnLayout, type ImageHeader, type TensorEntry } from '../format/image.js';
import type { EnginePredictor } from '../predictor/types.js';
import { ABI } from './abi.js';
import type { EngineOptions, FfnMode } from './options.js';

/** Bytes of the scratch buffer sections pass through when they are not read in place. */
export const SCRATCH = 64 << 10;

/** Decisions that need no sizes: the layout in memory, the flash machinery's buffers. */
export interface EngineLayout {
  mode: FfnMode;
  flash: boolean;
  ioOnly: boolean;
  contextLength: number;
  kvDtype: 'f32' | 'f16';
  /** How each layer's FFN lies in wasm memory: dense bundled images as matrices (up rows, gate rows, down columns as rows, biases), else bundles. */
  ffnInMemory: FfnLayout;
  matrix: boolean;
  /** Flash modes: staging bytes and reads per round, who says which neurons are wanted, the window (wasm codes), read alignment. */
  staging: number;
  maxOps: number;
  want: number;
  window: number;
  align: number;
  /** Sparse by calibrated |silu(gate)·up| cuts (ffnThresholds): gate and up resident, cache rows and reads the down column alone. */
  silu: boolean;
  /** Bytes of a neuron-cache row: the bundle, or (silu) one down column (CATS: up row | down column). */
  rowBytes: number;
  /** SiLU mode's rule: |silu(gate)·up| (gate and up resident) or |silu(gate)| (CATS: gate resident). */
  siluGate: boolean;
}

/** `batched`: a PlanReader carries out the rounds (with `align`ed reads); else the wasm reads through WASI. */
export function planLayout(header: ImageHeader, opts: EngineOptions, batched: boolean, align: number): EngineLayout {
  const cfg = header.config, f = header.ffn;
  const mode: FfnMode = opts.mode ?? 'dense';
  if (!['dense', 'naive', 'hybrid', 'sparse'].includes(mode)) throw new Error(`unknown mode ${mode} (dense, naive, hybrid or sparse)`);
  const flash = mode !== 'dense';
  const ioOnly = opts.ioOnly ?? false;
  if (ioOnly && !flash) throw new Error('an I/O replay (ioOnly) needs a flash mode: naive, hybrid or sparse');
  if (ioOnly && opts.predictor) throw new Error('an I/O replay (ioOnly) takes the wanted neurons from predict(), not a predictor');
  if (f.layout === 'split' && !flash) throw new Error(`this image has the unbundled (split) FFN layout of the ablation; it runs in the flash modes (naive, hybrid, sparse), not dense`);
  const kvDtype = opts.kvDtype ?? 'f32';
  if (kvDtype !== 'f32' && kvDtype !== 'f16') throw new Error(`kvDtype must be f32 or f16 (got ${kvDtype})`);
  const contextLength = Math.min(cfg.maxPositions, opts.contextLength ?? cfg.maxPositions);
  if (!(Number.isInteger(contextLength) && contextLength >= 1)) throw new Error(`contextLength must be a whole number of tokens ≥ 1 (got ${opts.contextLength})`);

  const part = (f.gate >= 0 ? f.gate : f.down) - f.up;
  const matrix = !flash && (f.layout ?? 'bundled') === 'bundled';
  const nParts = f.gate >= 0 ? 3 : 2;
  const ffnInMemory: FfnLayout = matrix
    ? { dtype: f.dtype, bundle_bytes: part, up: 0, gate: f.gate >= 0 ? cfg.ffn * part : -1, down: (nParts - 1) * cfg.ffn * part,
        bias: f.bias >= 0 ? nParts * cfg.ffn * part : -1, ...(f.bias >= 0 ? { bias_stride: 4 } : {}) }
    : f;

  const io = opts.io ?? 'wasi';
  // Parallel reads want a staging buffer that holds many reads in flight; WASI reads one at a
  // time; the read thread wants a layer's misses in one round (a second cannot overlap compute).
  const staging = opts.stagingBytes ?? (mode === 'sparse' ? (io === 'thread' ? 256 << 10 : batched ? 512 << 10 : 128 << 10) : 1 << 20);
  const maxOps = opts.maxOps ?? Math.max(io === 'thread' ? 256 : 64, opts.queueDepth ?? 0);
  const silu = mode === 'sparse' && opts.ffnThresholds !== undefined;
  if (silu) {
    const t = opts.ffnThresholds!;
    if (cfg.act !== 'silu' || !cfg.hasGate) throw new Error(`thresholds on |silu(gate)·up| are for SiLU-gated models; this one uses ${cfg.act}`);
    if (!Array.isArray(t) || t.length !== cfg.nLayers || !t.every((v) => typeof v === 'number' && Number.isFinite(v) && v >= 0)) throw new Error(`ffnThresholds must be ${cfg.nLayers} finite numbers ≥ 0 (one per layer)`);
    if ((f.layout ?? 'bundled') !== 'bundled') throw new Error('sparse mode on a SiLU model reads down columns out of bundles: it needs a bundled image');
    if (ioOnly) throw new Error('an I/O replay (ioOnly) takes the wanted neurons from predict(), not thresholds');
    if (opts.predictor) throw new Error('sparse mode takes a predictor or thresholds, not both');
    if (opts.siluRule !== undefined && !['product', 'gate'].includes(opts.siluRule)) throw new Error(`siluRule must be product or gate (got ${opts.siluRule})`);
  }
  const siluGate = silu && opts.siluRule === 'gate';
  const want = mode === 'sparse' ? (silu ? ABI.WANT_SILU : opts.predictor ? ABI.WANT_PREDICTOR : ABI.WANT_HOST) : ABI.WANT_ALL;
  const w = opts.window ?? 'lru';
  const window = mode === 'hybrid' ? ABI.WINDOW_FOREVER : mode === 'naive' ? 0 : w === 'lru' ? ABI.WINDOW_LRU : w;
  if (!(Number.isInteger(window) && window >= 0 && window < 1 << 24) && window !== ABI.WINDOW_LRU && window !== ABI.WINDOW_FOREVER) {
    throw new Error(`window must be a whole number of tokens ≥ 0 or 'lru' (got ${opts.window})`);
  }
  return { mode, flash, ioOnly, contextLength, kvDtype, ffnInMemory, matrix, staging, maxOps, want, window, align: batched && io !== 'thread' ? align : 1,
    silu, siluGate, rowBytes: silu ? (siluGate ? 2 : 1) * rowBytes(f.dtype, cfg.hidden) : f.bundle_bytes };
}

/** Sizes the wasm reports for what it allocates (assembly/mem.ts, cache.ts, sparse.ts). */
export interface WasmSizes {
  /** Bytes taken so far: module data, the run state and KV cache (model_init), the flash state (flash_init). */
  state: number;
  /** Of which the flash state. */
  flashState: number;
  /** Bytes alloc(size, align) takes from the heap. */
  alloc(size: number, align: number): number;
  /** Bytes a neuron cache of `rows` rows takes. */
  cache(rows: number): number;
  /** Bytes the predictor's state takes at rank `rank` (its weights aside). */
  predictorState(rank: number): number;
}

export interface MemoryPlan {
  /** Token embeddings left on flash (untied models under a budget): one row read per token. */
  embedOnFlash: TensorEntry | undefined;
  residentDtype: 'stored' | 'q8_0';
  /** Resident bytes held (embeddings left on flash excluded) and, quantized, where each tensor goes. */
  residentBytes: number;
  placed: Map<TensorEntry, number>;
  /** Tensors quantized to Q8_0 while loading. */
  quantized: Set<TensorEntry>;
  scratch: boolean;
  /** The predictor to run, its rank padded for Q8_0 rows and its weights' dtype. */
  predictor: { p: EnginePredictor; rank: number; dtype: 'q8_0' | 'f16' } | undefined;
  /** SiLU mode: each layer's resident [gate; up] (2·ffn rows of d; CATS: gate alone) and its dtype. */
  silu: { dtype: DType; layerBytes: number } | undefined;
  cacheRows: number[];
}

/**
 * Plans the bytes: which resident dtype (the 'auto' rule), which predictor rank, how many
 * neurons each layer's cache holds. Throws a one-line error when the budget cannot hold the
 * resident part, saying how much it needs.
 */
export function planMemory(header: ImageHeader, opts: EngineOptions, layout: EngineLayout, sizes: WasmSizes, hostBytes: number, sourceSize: number): MemoryPlan {
  const cfg = header.config, f = header.ffn, budget = opts.memoryBytes, { mode, flash, ioOnly } = layout;
  const resSec = section(header, 'resident');
  // Token embeddings of untied models can stay on flash: a token needs one row (one read).
  const embT = header.tensors.find((t) => t.role === 'tok_embed');
  if (!embT) throw new Error('invalid image: no tok_embed tensor');
  const embOnFlash = !ioOnly && (opts.embeddingsOnFlash ?? (budget !== undefined && !cfg.tieWordEmbeddings));
  if (embOnFlash && cfg.tieWordEmbeddings) throw new Error('token embeddings cannot stay on flash when the lm_head shares them (tied)');
  const embBytes = tensorBytes(embT.dtype, embT.shape);

  // residentDtype 'q8_0': matrices of the resident part (attention, embeddings, lm_head) are
  // quantized as they load, each at its own offset in a packed layout; the rest stays as stored.
  // 'auto' (the default) does so in the modes with neuron caches (sparse, hybrid) when, with
  // the weights as stored, the budget would leave the predictor and the caches less room than
  // the FFN's bytes: Q8_0 costs ≈ 0.05% perplexity, and the room it frees saves reads.
  const rd = opts.residentDtype ?? 'auto';
  if (!['q8_0', 'stored', 'auto'].includes(rd)) throw new Error(`residentDtype must be q8_0, stored or auto (got ${opts.residentDtype})`);
  const quantizable = (t: TensorEntry) => !(embOnFlash && t === embT) && t.shape.length === 2 && t.shape[1] % 32 === 0 && ['f32', 'f16', 'bf16'].includes(t.dtype);
  const placed = new Map<TensorEntry, number>();
  const storedBytes = resSec.length - (embOnFlash ? embBytes : 0);
  let q8Bytes = 0;
  for (const t of [...header.tensors].sort((a, b) => a.offset - b.offset)) {
    if (embOnFlash && t === embT) continue;
    q8Bytes = Math.ceil(q8Bytes / 64) * 64;
    placed.set(t, q8Bytes);
    q8Bytes += quantizable(t) ? t.shape[0] * rowBytes('q8_0', t.shape[1]) : tensorBytes(t.dtype, t.shape);
  }
  const ffnTotal = f.bundle_bytes * cfg.ffn * cfg.nLayers;
  const before = sizes.state - sizes.flashState;
  const q8 = !ioOnly && q8Bytes < storedBytes && (rd === 'q8_0' ||
    (rd === 'auto' && (mode === 'sparse' || mode === 'hybrid') && budget !== undefined && budget - before - storedBytes < ffnTotal));
  const quantized = new Set(q8 ? header.tensors.filter(quantizable) : []);
  const residentBytes = ioOnly ? 0 : q8 ? q8Bytes : storedBytes;

  // What the resident part takes, in the order the engine allocates it.
  let top = sizes.state + hostBytes;
  if (!ioOnly) top += sizes.alloc(residentBytes, 4096);
  // SiLU mode: gate and up resident, Q8_0 under a budget unless asked to keep them as stored.
  const siluDt: DType | undefined = !layout.silu ? undefined : budget !== undefined && rd !== 'stored' && cfg.hidden % 32 === 0 && ['f32', 'f16', 'bf16'].includes(f.dtype) ? 'q8_0' : f.dtype;
  const siluLayer = siluDt ? (layout.siluGate ? 1 : 2) * cfg.ffn * rowBytes(siluDt, cfg.hidden) : 0;
  const scratch = embOnFlash || q8 || layout.silu;
  if (scratch) top += sizes.alloc(SCRATCH, 4096);
  if (embOnFlash) top += sizes.alloc(rowBytes(embT.dtype, cfg.hidden), 64);
  if (!flash) top += cfg.nLayers * sizes.alloc(section(header, 'ffn.0').length, 4096);

  const plan: MemoryPlan = {
    embedOnFlash: embOnFlash ? embT : undefined, residentDtype: q8 ? 'q8_0' : 'stored', residentBytes,
    placed: q8 ? placed : new Map(), quantized, scratch, predictor: undefined, silu: siluDt ? { dtype: siluDt, layerBytes: siluLayer } : undefined, cacheRows: [],
  };
  if (!flash) return plan;

  // Bytes the neuron caches may fill once memory up to `top` is taken: each layer's cache holds
  // its rows (bundle + neuron id) and a fixed part (neuron → row map, last-use clock, slack);
  // page rounding and the allocator's slack take a few pages.
  const perRow = layout.rowBytes + 4, perLayer = sizes.cache(0) + 32;
  const cacheRoom = (t: number) => budget! - t - cfg.nLayers * perLayer - 3 * 65536;
  // The predictor: a rank that fits the room the resident part leaves (the caller's choice, pickRank).
  if (siluDt) top += cfg.nLayers * sizes.alloc(siluLayer, 64);
  let pred = mode === 'sparse' && !layout.silu ? opts.predictor : undefined;
  if (typeof pred === 'function') pred = pred(budget === undefined ? Infinity : cacheRoom(top), perRow);
  if (pred) {
    checkPredictor(pred, cfg);
    const dtype = (opts.predictorDtype ?? 'q8_0') === 'q8_0' && cfg.hidden % 32 === 0 ? 'q8_0' : 'f16';
    if (opts.predictorDtype !== undefined && !['q8_0', 'f16'].includes(opts.predictorDtype)) throw new Error(`predictorDtype must be q8_0 or f16 (got ${opts.predictorDtype})`);
    // Q8_0 rows are whole blocks of 32: the rank is padded with zero components (relu(0) = 0).
    const rank = dtype === 'q8_0' ? Math.ceil(pred.rank / 32) * 32 : pred.rank;
    plan.predictor = { p: pred, rank, dtype };
    top += sizes.predictorState(rank) + cfg.nLayers * predictorLayerBytes(cfg, rank, dtype, sizes);
  }

  // Neuron caches: what the budget leaves, shared by layers in proportion to their wanted sets.
  let rows: number[];
  if (opts.cacheRows !== undefined) {
    rows = Array.isArray(opts.cacheRows) ? opts.cacheRows.slice() : new Array(cfg.nLayers).fill(opts.cacheRows);
  } else if (mode === 'naive') {
    rows = new Array(cfg.nLayers).fill(0);
  } else {
    const full = cfg.ffn * cfg.nLayers;
    let total: number;
    if (budget === undefined) total = mode === 'hybrid' ? Math.round(full * (opts.hybridShare ?? 0.5)) : full;
    else {
      total = Math.min(full, Math.floor(cacheRoom(top) / perRow));
      if (mode === 'hybrid' && opts.hybridShare !== undefined) total = Math.min(total, Math.round(full * opts.hybridShare));
    }
    const weights = opts.cacheWeights ?? (mode === 'sparse' && pred ? pred.layers.map((L) => Math.max(L.predicted_share ?? 1, 1e-3)) : new Array(cfg.nLayers).fill(1));
    if (weights.length !== cfg.nLayers || weights.some((w) => !(w > 0))) throw new Error(`cacheWeights needs ${cfg.nLayers} positive numbers`);
    rows = shareRows(Math.max(0, total), weights, cfg.ffn, 16);
  }
  if (budget !== undefined && mode !== 'naive' && rows.some((r) => r < 16)) {
    const minimum = top + cfg.nLayers * (perLayer + 16 * perRow) + 65536;
    throw new Error(`memory budget ${fmtBytes(budget)} is too small for ${mode} mode: the resident part (weights, ` +
      `KV cache for ${layout.contextLength} tokens, ${layout.silu ? 'gate and up' : 'predictor'}, buffers) needs ${fmtBytes(top)}; give at least ${fmtBytes(minimum)} ` +
      `(${(100 * minimum / sourceSize).toFixed(1)}% of the model)`);
  }
  plan.cacheRows = rows.map((r) => Math.max(0, Math.min(cfg.ffn, Math.floor(r))));
  return plan;
}

/** Bytes of one layer's predictor weights as the engine holds them (w1, b1, w2, b2). */
function predictorLayerBytes(cfg: ModelConfig, rank: number, dtype: 'q8_0' | 'f16', sizes: WasmSizes): number {
  const w = (rows: number, cols: number) => sizes.alloc(dtype === 'q8_0' ? rows * rowBytes('q8_0', cols) : rows * cols * 2, 64);
  return w(rank, cfg.hidden) + sizes.alloc(rank * 4, 64) + w(cfg.ffn, rank) + sizes.alloc(cfg.ffn * 4, 64);
}

function checkPredictor(p: EnginePredictor, cfg: ModelConfig): void {
  if (p.layers.length !== cfg.nLayers) throw new Error(`predictor has ${p.layers.length} layers, the model ${cfg.nLayers}`);
  p.layers.forEach((L, l) => {
    if (L.w1.length !== p.rank * cfg.hidden || L.b1.length !== p.rank || L.w2.length !== cfg.ffn * p.rank || L.b2.length !== cfg.ffn) {
      throw new Error(`predictor layer ${l} does not fit this model (rank ${p.rank}, d ${cfg.hidden}, ffn ${cfg.ffn})`);
    }
  });
}

/** Splits `total` rows over layers in proportion to `weights`, none above `cap`. */
export function shareRows(total: number, weights: number[], cap: number, floor = 0): number[] {
  // Every layer gets `floor` rows first (when the total allows), the rest in proportion.
  const base = Math.min(floor, cap, Math.floor(total / weights.length));
  const rows = new Array(weights.length).fill(base);
  let left = total - base * weights.length, open = weights.map((_, i) => i).filter((i) => rows[i] < cap);
  while (left > 0 && open.length) {
    const sum = open.reduce((a, i) => a + weights[i], 0);
    let given = 0;
    for (const i of open) {
      const add = Math.min(cap - rows[i], Math.max(1, Math.floor(left * weights[i] / sum)));
      rows[i] += add; given += add;
      if (given >= left) break;
    }
    left -= given;
    open = open.filter((i) => rows[i] < cap);
    if (given === 0) break;
  }
  return rows;
}

export function fmtBytes(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : n >= 10240 ? `${(n / 1024).toFixed(0)} KiB` : `${n} bytes`;
}

