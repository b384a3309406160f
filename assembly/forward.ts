// The transformer forward pass, one token at a time, top to bottom (OPT, Llama, Falcon and Phi
// families), with its dense FFN (one job per layer in parts: ffn-part.ts). With the FFN on flash
// each layer's FFN is instead the wanted set of sparse.ts (predicted, cached, read in rounds that
// planner.ts lays out); what that computes goes through neuron lists (neuronList) into the
// accumulator yp, computed as the dense parts compute each neuron (ffn-part.ts: fire, coefs).
//
// The host (src/core/engine.ts, loader.ts) calls, once per model:
//   model_config(...)            the blueprint
//   model_features(...)          what sets the families apart (norm, parallel blocks, rotary dims,
//                                sliding window, the activation's parameter); model_rope_llama3
//   model_init()                 allocates every activation buffer and the KV cache
//   set_global / set_layer       pointers to the weights it placed in memory
//   ffn_layout(...)              where up/gate/down/bias sit inside one FFN bundle
// and then per token forward(token, pos), after which logits_ptr() holds the vocab scores.
// Nothing here allocates after model_init.
import { alloc } from "./mem";
import { flash_read } from "./flash";
import { DT_F32, dtypeSize, rowBytes, loadElem } from "./dtype";
import { prep_len, prep_x, prep_zero, unprep_y, dot, axpy } from "./kernels/matvec";
import { pmatvec, pdot_list, paxpy_list, pattention } from "./threads";
import { vadd, layernorm, rmsnorm } from "./kernels/vec";
import { attention_init, attention_set } from "./attention";
import { flash, flashFd, flashNextToken, ffn_begin, ffn_hits, round_done } from "./sparse";
import { plan_round, exec_plan_sync } from "./planner";
import { now, ioError, set_io_failure, add_io, computeSince } from "./stats";
import { tealIn, tealMatvec, tealMatvec3, tealGathered, tealKeepsAttention, TEAL_QKV, TEAL_O, TEAL_FFN } from "./teal";
import { attn_part_init, attn_part_fits, attn_part_layer, attn_part_pos, attn_part_sum, rope_head, kv_store } from "./attn-part";
import { ACT_DRELU, activation, fire, coefs, ffn_part_init, ffn_part_layout, ffn_part_layer, ffn_sum } from "./ffn-part";
export { ACT_RELU, ACT_SILU, ACT_FATRELU, ACT_DRELU, ACT_GELU_TANH } from "./ffn-part";
import { pffn, pattn_block } from "./threads";

export const ARCH_OPT: i32 = 0;     // learned positions (OPT)
export const ARCH_LLAMA: i32 = 1;   // rotary positions (Llama, Mistral, Falcon, Phi)
export const NORM_LAYER: i32 = 0;
export const NORM_RMS: i32 = 1;

// ---- Config: the blueprint ----
let arch: i32 = 0;
let nLayers: i32 = 0;
let d: i32 = 0;          // model width
let ffn: i32 = 0;        // neurons per FFN
let nHeads: i32 = 0;
let nKv: i32 = 0;
let headDim: i32 = 0;
let vocab: i32 = 0;
let maxSeq: i32 = 0;     // KV cache length
let eps: f32 = 1e-5;
let act: i32 = 0;
let ropeTheta: f64 = 0;
let posOffset: i32 = 0;
let hasGate: bool = false;
let normKind: i32 = NORM_LAYER;
let parallel: bool = false; // attention and FFN side by side on the block's input (Falcon, Phi)
let rotaryDim: i32 = 0;     // rotary on each head's first rotaryDim dims (Phi: fewer than headDim)
let slidingWindow: i32 = 0; // attention over the last slidingWindow positions (0: all)
let actParam: f32 = 0;      // FATReLU's threshold
let ropeFactor: f64 = 0;    // llama3 rope scaling (0: none): factor, band factors, original context
let ropeLowFF: f64 = 0;
let ropeHighFF: f64 = 0;
let ropeOldCtx: f64 = 0;

export function model_config(arch_: i32, nLayers_: i32, d_: i32, ffn_: i32, nHeads_: i32, nKv_: i32,
  headDim_: i32, vocab_: i32, maxSeq_: i32, eps_: f32, act_: i32, ropeTheta_: f64, posOffset_: i32,
  hasGate_: i32): void {
  arch = arch_; nLayers = nLayers_; d = d_; ffn = ffn_; nHeads = nHeads_; nKv = nKv_; headDim = headDim_;
  vocab = vocab_; maxSeq = maxSeq_; eps = eps_; act = act_; ropeTheta = ropeTheta_; posOffset = posOffset_;
  hasGate = hasGate_ != 0;
  normKind = arch == ARCH_OPT ? NORM_LAYER : NORM_RMS; parallel = false; rotaryDim = headDim; slidingWindow = 0;
  actParam = 0; ropeFactor = 0;
}

/** After model_config, before model_init: the features that differ from the OPT/Llama defaults. */
export function model_features(norm_: i32, parallel_: i32, rotaryDim_: i32, slidingWindow_: i32, actParam_: f32): void {
  normKind = norm_; parallel = parallel_ != 0; rotaryDim = rotaryDim_; slidingWindow = slidingWindow_; actParam = actParam_;
}

/** After model_config, before model_init: HF's llama3 rope scaling of the inverse frequencies. */
export function model_rope_llama3(factor: f64, lowFreqFactor: f64, highFreqFactor: f64, originalMaxPositions: f64): void {
  ropeFactor = factor; ropeLowFF = lowFreqFactor; ropeHighFF = highFreqFactor; ropeOldCtx = originalMaxPositions;
}

// What sparse.ts and planner.ts read of the model (only this module writes it).
export { nLayers, d, ffn, hasGate, bundleBytes, xb, xp, yp, hAct, listRows, listIds, listDots };

// ---- Weights: (pointer, dtype) per slot; vectors (norms, biases) are always f32 ----
export const G_TOK_EMBED: i32 = 0;   // (vocab, d)
export const G_POS_EMBED: i32 = 1;   // (maxPos + posOffset, d), OPT only
export const G_NORM_W: i32 = 2;      // (d,) f32
export const G_NORM_B: i32 = 3;      // (d,) f32, OPT only
export const G_LM_HEAD: i32 = 4;     // (vocab, d); the token embedding when tied
export const G_LM_HEAD_B: i32 = 5;   // (vocab,) f32, Phi-2 only
const N_GLOBAL: i32 = 6;

export const L_LN1_W: i32 = 0;  // (d,)   self_attn_layer_norm / input_layernorm
export const L_LN1_B: i32 = 1;  // (d,)
export const L_Q: i32 = 2;      // (nHeads*headDim, d)
export const L_K: i32 = 3;      // (nKv*headDim, d)
export const L_V: i32 = 4;      // (nKv*headDim, d)
export const L_O: i32 = 5;      // (d, nHeads*headDim)
export const L_QB: i32 = 6;
export const L_KB: i32 = 7;
export const L_VB: i32 = 8;
export const L_OB: i32 = 9;
export const L_LN2_W: i32 = 10; // (d,)   final_layer_norm / post_attention_layernorm / ln_mlp (absent: one norm feeds both)
export const L_LN2_B: i32 = 11;
export const L_FFN: i32 = 12;   // (ffn, bundleBytes) bundles, see ffn_layout
export const L_DOWN_B: i32 = 13; // (d,)  fc2 / down_proj bias
const N_LAYER: i32 = 14;

let gPtr: usize = 0;   // (N_GLOBAL) pointers
let gDt: usize = 0;    // (N_GLOBAL) dtypes
let lPtr: usize = 0;   // (nLayers, N_LAYER)
let lDt: usize = 0;    // (nLayers, N_LAYER)

export function set_global(slot: i32, ptr: usize, dt: i32): void {
  store<usize>(gPtr + (<usize>slot << 2), ptr);
  store<i32>(gDt + (<usize>slot << 2), dt);
}

export function set_layer(l: i32, slot: i32, ptr: usize, dt: i32): void {
  const i = <usize>(l * N_LAYER + slot) << 2;
  store<usize>(lPtr + i, ptr);
  store<i32>(lDt + i, dt);
}

@inline function G(slot: i32): usize { return load<usize>(gPtr + (<usize>slot << 2)); }
@inline function GDT(slot: i32): i32 { return load<i32>(gDt + (<usize>slot << 2)); }
@inline function W(l: i32, slot: i32): usize { return load<usize>(lPtr + (<usize>(l * N_LAYER + slot) << 2)); }
@inline export function WDT(l: i32, slot: i32): i32 { return load<i32>(lDt + (<usize>(l * N_LAYER + slot) << 2)); }

// FFN bundle: neuron i of a layer is `bundleBytes` at base + i*bundleBytes:
//   +upOff   up/fc1 row i    (d) dtype
//   +gateOff gate row i      (d) dtype, Llama only
//   +downOff down/fc2 col i  (d) dtype
//   +biasOff fc1/up bias i   f32, when the model has one (else -1)
let bundleBytes: usize = 0;
let upOff: usize = 0;
let gateOff: usize = 0;
let downOff: usize = 0;
let biasOff: i32 = -1;

export function ffn_layout(bytes: usize, up: usize, gate: usize, down: usize, bias: i32): void {
  bundleBytes = bytes; upOff = up; gateOff = gate; downOff = down; biasOff = bias; biasStride = 0;
  partLayout();
}

/** Dense FFN laid out as matrices: neuron i's bias at biasOff + i * stride (0: inside its bundle). */
export function ffn_bias_stride(stride: usize): void { biasStride = stride; partLayout(); }

/** The layout as the dense FFN's parts read it (ffn-part.ts). */
function partLayout(): void { ffn_part_layout(ffnBlock, bundleBytes, hasGate ? gateOff : upOff, upOff, downOff, biasOff, biasStride); }
let biasStride: usize = 0;

// ---- RunState: every activation buffer, allocated once ----
let x: usize = 0;       // (d,) residual stream
let xb: usize = 0;      // (d,) normed input of a block
let xb2: usize = 0;     // (d,) block output
let q: usize = 0;       // (nHeads*headDim,)
let k: usize = 0;       // (nKv*headDim,)
let v: usize = 0;       // (nKv*headDim,)
let attOut: usize = 0;  // (nHeads*headDim,)
let attn: usize = 0;    // attention.ts's block: per head its scores and prepared buffers
let hAct: usize = 0;    // (nLayers, ffn) FFN activations of the last token
let ffnIn: usize = 0;   // (nLayers, d) FFN input (normed) of the last token: what predictors see
let logits: usize = 0;  // (vocab,)
let kCache: usize = 0;  // (nLayers, maxSeq, nKv*headDim) kvDt
let vCache: usize = 0;  // (nLayers, maxSeq, nKv*headDim) kvDt
let kvDt: i32 = DT_F32; // f16 halves the KV cache (the host chooses, before model_init)
let ropeCos: usize = 0; // (maxSeq, rotaryDim/2)
let ropeSin: usize = 0; // (maxSeq, rotaryDim/2)
let xp: usize = 0;      // prepared activation (kernel layout), widest input
let yp: usize = 0;      // prepared FFN accumulator (d)
let captureLayer: i32 = -1;
let capture: usize = 0; // (d,) residual stream after layer captureLayer
let listRows: usize = 0; // (ffn,) u32 row addresses of a list of neurons (dot_list)
let listIds: usize = 0;  // (ffn,) i32 their neuron ids
let listDots: usize = 0; // (ffn,) f32 their dots
let ffnBlock: usize = 0; // ffn-part.ts's block: the dense FFN in parts
let attnBlock: usize = 0; // attn-part.ts's block: the attention block in parts

/** Allocates the run state. Returns the bytes it took (the host counts them against the budget). */
export function model_init(): usize {
  const start = heap.alloc(0);
  gPtr = alloc(N_GLOBAL * 4, 16); gDt = alloc(N_GLOBAL * 4, 16);
  lPtr = alloc(<usize>(nLayers * N_LAYER) << 2, 16); lDt = alloc(<usize>(nLayers * N_LAYER) << 2, 16);
  memory.fill(gPtr, 0, N_GLOBAL * 4); memory.fill(lPtr, 0, <usize>(nLayers * N_LAYER) << 2);
  const qDim = nHeads * headDim, kvDim = nKv * headDim;
  x = f32s(d); xb = f32s(d); xb2 = f32s(d); capture = f32s(d);
  q = f32s(qDim); k = f32s(kvDim); v = f32s(kvDim); attOut = f32s(qDim);
  hAct = f32s(nLayers * ffn); ffnIn = f32s(nLayers * d); logits = f32s(vocab);
  listRows = f32s(ffn); listIds = f32s(ffn); listDots = f32s(ffn);
  const kvElems = nLayers * maxSeq * kvDim, kvHalves = kvDt == DT_F32 ? 1 : 0;
  kCache = f32s(kvHalves ? kvElems : (kvElems + 1) >> 1); vCache = f32s(kvHalves ? kvElems : (kvElems + 1) >> 1);
  attn = attention_init(q, attOut, nHeads, nKv, headDim, maxSeq, kvDt);
  attnBlock = attn_part_init(nHeads, nKv, headDim, d, kvDt, attn, q, k, v);
  const widest = max(max(d, ffn), qDim);
  xp = f32s(prep_len(widest)); yp = f32s(prep_len(d));
  ffnBlock = ffn_part_init(ffn, d, hasGate, act, actParam, xp, listRows, listIds, listDots);
  if (ropeTheta > 0) {
    const half = rotaryDim >> 1;
    ropeCos = f32s(maxSeq * half); ropeSin = f32s(maxSeq * half);
    // In PyTorch: inv_freq = 1 / theta ** (arange(0, dim, 2) / dim); angle = pos * inv_freq
    for (let i = 0; i < half; i++) {
      let invFreq = <f32>(1.0 / Math.pow(ropeTheta, <f64>(2 * i) / <f64>rotaryDim));
      if (ropeFactor > 0) invFreq = llama3InvFreq(invFreq);
      for (let p = 0; p < maxSeq; p++) {
        const a = <f64>(<f32>p * invFreq);
        store<f32>(ropeCos + (<usize>(p * half + i) << 2), <f32>Math.cos(a));
        store<f32>(ropeSin + (<usize>(p * half + i) << 2), <f32>Math.sin(a));
      }
    }
  }
  return heap.alloc(0) - start;
}

/**
 * HF's _compute_llama3_parameters for one inverse frequency: wavelengths longer than
 * oldCtx/lowFF are divided by factor, shorter than oldCtx/highFF kept, those between blended.
 */
function llama3InvFreq(inv: f32): f32 {
  const wavelen = <f32>(2 * Math.PI) / inv;
  if (<f64>wavelen > ropeOldCtx / ropeLowFF) return <f32>(<f64>inv / ropeFactor);
  if (<f64>wavelen < ropeOldCtx / ropeHighFF) return inv;
  const smooth = (ropeOldCtx / <f64>wavelen - ropeLowFF) / (ropeHighFF - ropeLowFF);
  return <f32>((1 - smooth) * <f64>inv / ropeFactor + smooth * <f64>inv);
}

function f32s(n: i32): usize {
  const p = alloc(<usize>n << 2, 64);
  memory.fill(p, 0, <usize>n << 2);
  return p;
}

export function set_kv_dtype(dt: i32): void { kvDt = dt; }
// What a host-side backend (src/gpu/) mirrors: weights, buffers and RoPE tables.
export function global_ptr(slot: i32): usize { return G(slot); }
export function global_dt(slot: i32): i32 { return GDT(slot); }
export function layer_ptr(l: i32, slot: i32): usize { return W(l, slot); }
export function layer_dt(l: i32, slot: i32): i32 { return WDT(l, slot); }
export function x_ptr(): usize { return x; }
export function xb_ptr(): usize { return xb; }
export function rope_cos_ptr(): usize { return ropeCos; }
export function rope_sin_ptr(): usize { return ropeSin; }
export function logits_ptr(): usize { return logits; }
export function activations_ptr(): usize { return hAct; }
export function ffn_input_ptr(): usize { return ffnIn; }
export function capture_ptr(): usize { return capture; }
export function set_capture_layer(l: i32): void { captureLayer = l; }

// ---- The forward pass ----
//
// forward() runs one token. With the FFN on flash the host may instead drive the same steps
// itself (forward_begin, then per layer layer_attention / ffn_begin / ffn_hits / plan_round →
// its own parallel reads → round_done ... / layer_end, then forward_end) so that reads run
// asynchronously, many in flight, while the cached neurons are computed. ffn_begin, ffn_hits
// and round_done are sparse.ts's; plan_round and exec_plan_sync planner.ts's.

/** Runs token `token` at position `pos` (0-based; KV cache holds positions < pos). Fills logits. */
export function forward(token: i32, pos: i32): void {
  forward_begin(token, pos);
  for (let l = 0; l < nLayers; l++) {
    layer_attention(l, pos);
    if (!flash) ffnDense(l, tealIn(l, TEAL_FFN, xb, d), xb2);
    else {
      ffn_begin(l);
      ffn_hits(l);
      for (let n = plan_round(l); n > 0; n = plan_round(l)) {
        if (!exec_plan_sync(n)) return;   // io_error() says why; the host resets the caches
        round_done(l);
        if (ioError) return;              // a bundle failed its checksum
      }
    }
    layer_end(l);
  }
  forward_end();
}

// The compute share of the stats' time split (io / mem / compute) matters with the FFN on flash;
// a dense token's time is all compute, and the host times it whole: no clock calls (each is a
// call out of the wasm, ≈ 0.4 µs, some 30 a token).
@inline function clock(): f64 { return flash ? now() : 0; }
@inline function spent(t0: f64): void { if (flash) computeSince(t0); }

let embedOff: u64 = 0;       // file offset of the token embeddings when they stay on flash
let embedRowBytes: usize = 0;
let embedBuf: usize = 0;

/** Leaves the token embeddings on flash at file `offset`: each token reads its row. */
export function embed_on_flash(offset: u64, rowBytes: usize): void {
  embedOff = offset; embedRowBytes = rowBytes; embedBuf = alloc(rowBytes, 64);
}

/** Token embedding (+ learned position for OPT, whose position ids start at posOffset). */
export function forward_begin(token: i32, pos: i32): void {
  const t0 = embedRowBytes ? now() : clock();
  nonFinite = -1;
  if (embedRowBytes) {
    // Token embeddings left on flash: read this token's row.
    const got = flash_read(flashFd, embedBuf, embedRowBytes, embedOff + <u64>token * <u64>embedRowBytes);
    if (got != <i64>embedRowBytes && !ioError) set_io_failure(got < 0 ? <i32>(-got) : -1, embedOff + <u64>token * <u64>embedRowBytes, embedRowBytes, got);
    add_io(<f64>embedRowBytes, 1, now() - t0);
    embedRow(embedBuf, GDT(G_TOK_EMBED), 0, x);
  } else embedRow(G(G_TOK_EMBED), GDT(G_TOK_EMBED), token, x);
  if (arch == ARCH_OPT) {
    embedRow(G(G_POS_EMBED), GDT(G_POS_EMBED), pos + posOffset, xb);
    vadd(xb, x, d);
  }
  if (flash) flashNextToken();
  spent(t0);
}

/** Attention block of layer l, then the FFN's normed input in xb.
 *  In PyTorch: x = x + o_proj(attn(norm1(x))); h = norm2(x)
 *  Side by side (Falcon, Phi-2): h = norm2(x) or norm1(x) (one norm); x = x + o_proj(attn(norm1(x))) */
export function layer_attention(l: i32, pos: i32): void {
  const t0 = clock();
  const kvDim = nKv * headDim;
  norm(x, W(l, L_LN1_W), W(l, L_LN1_B), xb);                  // xb (d,)
  const es = <usize>dtypeSize(kvDt);
  const layerK = kCache + <usize>(l * maxSeq * kvDim) * es;
  const layerV = vCache + <usize>(l * maxSeq * kvDim) * es;
  const first = slidingWindow > 0 && pos >= slidingWindow ? pos - slidingWindow + 1 : 0;
  const dq = WDT(l, L_Q), dto = WDT(l, L_O);
  if (tealKeepsAttention(l) && attn_part_fits(nHeads, nKv, headDim, dq, WDT(l, L_K), WDT(l, L_V), dto)) {
    // One job in parts, a KV group each (attn-part.ts): q/k/v, rotary, the KV cache, attention, o.
    prep_x(dq, tealIn(l, TEAL_QKV, xb, d), xp, d);            // xb as it is (tealIn counts it)
    attn_part_layer(attnBlock, dq, W(l, L_Q), W(l, L_K), W(l, L_V), W(l, L_QB), W(l, L_KB), W(l, L_VB), xp, dto, W(l, L_O), W(l, L_OB));
    const half = <usize>(rotaryDim >> 1), at = (<usize>pos * half) << 2;
    attn_part_pos(attnBlock, ropeTheta > 0 ? ropeCos + at : 0, ropeTheta > 0 ? ropeSin + at : 0, rotaryDim,
                  layerK + <usize>(pos * kvDim) * es, layerV + <usize>(pos * kvDim) * es);
    attention_set(attn, layerK, layerV, first, pos);
    pattn_block(attnBlock, <i64>(nHeads * headDim * 2 + kvDim * 2) * <i64>d);
    attn_part_sum(attnBlock, xb2);                            // xb2 (d,)
    tealIn(l, TEAL_O, attOut, nHeads * headDim);              // counted as the products' input
  } else {
    const xa = tealIn(l, TEAL_QKV, xb, d);                    // xb, or its small entries zeroed (teal.ts)
    if (dq == WDT(l, L_K) && dq == WDT(l, L_V)) {
      tealMatvec3(dq, rowBytes(dq, d), xa, xp, d, W(l, L_Q), q, nHeads * headDim, W(l, L_K), k, kvDim, W(l, L_V), v, kvDim);
      addBias(l, L_QB, q, nHeads * headDim); addBias(l, L_KB, k, kvDim); addBias(l, L_VB, v, kvDim);
    } else {
      linear(l, L_Q, L_QB, xa, q, nHeads * headDim, d);
      linear(l, L_K, L_KB, xa, k, kvDim, d);
      linear(l, L_V, L_VB, xa, v, kvDim, d);
    }
    if (ropeTheta > 0) { rope(q, nHeads, pos); rope(k, nKv, pos); }
    kv_store(layerK + <usize>(pos * kvDim) * es, k, kvDim, kvDt);
    kv_store(layerV + <usize>(pos * kvDim) * es, v, kvDim, kvDt);
    attention_set(attn, layerK, layerV, first, pos);
    pattention(attn);                                         // attOut (nHeads*headDim,)
    linear(l, L_O, L_OB, tealIn(l, TEAL_O, attOut, nHeads * headDim), xb2, d, nHeads * headDim);  // xb2 (d,)
  }
  if (!parallel) {
    vadd(xb2, x, d);                                          // x += attention
    norm(x, W(l, L_LN2_W), W(l, L_LN2_B), xb);                // xb (d,) the FFN's input
  } else {
    // The FFN reads the block's input: through its own norm (ln_mlp), else xb still holds norm1(x).
    if (W(l, L_LN2_W)) norm(x, W(l, L_LN2_W), W(l, L_LN2_B), xb);
    vadd(xb2, x, d);                                          // x += attention; layer_end adds the FFN
  }
  memory.copy(ffnIn + (<usize>(l * d) << 2), xb, <usize>d << 2);
  spent(t0);
}

/** Adds the FFN output (xb2) to the residual stream.
 *  In PyTorch (OPT): x = x + fc2(relu(fc1(h)));  (Llama): x = x + down_proj(act(gate_proj(h)) * up_proj(h)) */
export function layer_end(l: i32): void {
  const t0 = clock();
  if (flash) ffnOut(l, WDT(l, L_FFN), xb2);
  vadd(xb2, x, d);
  if (l == captureLayer) memory.copy(capture, x, <usize>d << 2);
  if (checkLayers && nonFinite < 0 && !allFinite(x, d)) nonFinite = l;
  spent(t0);
}

// Non-finite values (NaN, ±Inf: a corrupted or overflowing weight) never pass silently: the
// logits are checked every token, the hidden state after each layer when checkLayers is on.
// non_finite() = the first layer whose output was not finite, nLayers for the logits, -1 if fine.
let checkLayers = false;
let nonFinite: i32 = -1;
export function set_check_layers(on: bool): void { checkLayers = on; }
export function non_finite(): i32 { return nonFinite; }

/** Whether n f32 at p are all finite: x * 0 is NaN exactly for NaN and ±Inf. */
function allFinite(p: usize, n: i32): bool {
  let a: f32 = 0, b: f32 = 0, c: f32 = 0, e: f32 = 0, i = 0;
  if (ASC_FEATURE_SIMD) {
    // Four lanes at a time (the logits: a vocabulary's worth every token).
    const z = f32x4.splat(0);
    let s0 = z, s1 = z;
    for (; i + 8 <= n; i += 8) {
      const q = p + (<usize>i << 2);
      s0 = f32x4.add(s0, f32x4.mul(v128.load(q), z));
      s1 = f32x4.add(s1, f32x4.mul(v128.load(q, 16), z));
    }
    const s = f32x4.add(s0, s1);
    a = f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1) + f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3);
  }
  for (; i + 4 <= n; i += 4) {
    const q = p + (<usize>i << 2);
    a += load<f32>(q) * 0; b += load<f32>(q, 4) * 0; c += load<f32>(q, 8) * 0; e += load<f32>(q, 12) * 0;
  }
  for (; i < n; i++) a += load<f32>(p + (<usize>i << 2)) * 0;
  const s = a + b + c + e;
  return s == s;
}

/** Layer l's FFN over its resident bundles (the dense mode of forward()). */
export function ffn_dense(l: i32): void {
  const t0 = clock();
  ffnDense(l, tealIn(l, TEAL_FFN, xb, d), xb2);
  spent(t0);
}

/** Final norm and lm_head. */
export function forward_end(): void {
  const t0 = clock();
  norm(x, G(G_NORM_W), G(G_NORM_B), xb);
  pmatvec(GDT(G_LM_HEAD), G(G_LM_HEAD), rowBytes(GDT(G_LM_HEAD), d), xb, xp, logits, vocab, d);
  const headB = G(G_LM_HEAD_B);
  if (headB) vadd(headB, logits, vocab);
  if (nonFinite < 0 && !allFinite(logits, vocab)) nonFinite = nLayers;
  spent(t0);
}

/** out = row r of an embedding table, widened to f32. */
function embedRow(table: usize, dt: i32, r: i32, out: usize): void {
  const row = table + <usize>r * rowBytes(dt, d);
  for (let i = 0; i < d; i++) store<f32>(out + (<usize>i << 2), loadElem(dt, row, i));
}

/** LayerNorm (OPT, Falcon, Phi: weight and bias) or RMSNorm (Llama, weight only). */
function norm(src: usize, w: usize, b: usize, out: usize): void {
  if (normKind == NORM_LAYER) layernorm(src, w, b, out, d, eps);
  else rmsnorm(src, w, out, d, eps);
}

/** out (rows) = W (rows, cols) @ in (cols) + bias, for weight slot `slot` of layer l. */
function linear(l: i32, slot: i32, biasSlot: i32, src: usize, out: usize, rows: i32, cols: i32): void {
  const dt = WDT(l, slot);
  tealMatvec(dt, W(l, slot), rowBytes(dt, cols), src, xp, out, rows, cols);
  addBias(l, biasSlot, out, rows);
}

/** out += layer l's bias in `slot`, where the model has one. */
function addBias(l: i32, slot: i32, out: usize, rows: i32): void {
  const b = W(l, slot);
  if (b) vadd(b, out, rows);
}

/** Rotates pairs (i, i + rotaryDim/2) of every head by the position's angles (HF rotate_half);
 *  dims from rotaryDim on pass through (Phi's partial rotary). */
function rope(vec: usize, heads: i32, pos: i32): void {
  const at = (<usize>pos * <usize>(rotaryDim >> 1)) << 2;
  for (let h = 0; h < heads; h++) rope_head(vec + (<usize>(h * headDim) << 2), ropeCos + at, ropeSin + at, rotaryDim);
}

// ---- The FFN: dense over resident bundles, and the neuron lists the sparse path shares ----

@inline function activate(a: f32): f32 { return activation(act, actParam, a); }

/**
 * Every neuron of layer l from its bundle: h_i = act(gate_i . x) * (up_i . x) (Llama; dReLU
 * takes relu of the up product too) or act(up_i . x + b_i) (OPT, Falcon, Phi), then out =
 * sum_i h_i * down_i + down bias. Neurons whose activation is exactly 0 (the ReLU family) skip
 * the rest of their bundle.
 */
function ffnDense(l: i32, src: usize, out: usize): void {
  const dt = WDT(l, L_FFN), base = W(l, L_FFN);
  const acts = hAct + (<usize>(l * ffn) << 2);
  if (!tealGathered(dt)) {
    // In parts, one job (ffn-part.ts): each part's neurons whole, the parts' y added in order.
    prep_x(dt, src, xp, d);
    ffn_part_layer(ffnBlock, dt, base, acts);
    pffn(ffnBlock, <i64>ffn * <i64>d);
    ffn_sum(ffnBlock, yp);
    ffnOut(l, dt, out);
    return;
  }
  // The first product of every neuron (gate, or up for OPT) as one product over the neurons'
  // rows (stride bundleBytes), from the input's kept entries (teal.ts), then the neuron list.
  tealMatvec(dt, base + <usize>(hasGate ? gateOff : upOff), bundleBytes, src, xp, listDots, ffn, d);
  prep_zero(dt, yp, d);
  if (!hasGate && biasOff >= 0) {
    const bStride = biasStride ? biasStride : bundleBytes;
    for (let i = 0; i < ffn; i++) {
      const z = listDots + (<usize>i << 2);
      store<f32>(z, load<f32>(z) + load<f32>(base + <usize>biasOff + <usize>i * bStride));
    }
  }
  fireList(dt, ffn, acts, base);
  ffnOut(l, dt, out);
}

/** One neuron from its bundle: h = act(gate . x) * (up . x) or act(up . x + b); y += h * down. */
@inline export function neuron(dt: i32, bundle: usize, actOut: usize): void {
  let h: f32;
  if (hasGate) {
    h = activate(dot(dt, bundle + gateOff, xp, d));
    if (h != 0) {
      let u = dot(dt, bundle + upOff, xp, d);
      if (act == ACT_DRELU) u = max<f32>(u, 0);
      h *= u;
    }
  } else {
    let a = dot(dt, bundle + upOff, xp, d);
    if (biasOff >= 0) a += load<f32>(bundle + <usize>biasOff);
    h = activate(a);
  }
  store<f32>(actOut, h);
  if (h != 0) axpy(dt, h, bundle + downOff, yp, d);
}

/**
 * The neurons whose bundles lie at listRows[0, n) (neuron ids in listIds), as neuron() computes
 * them one by one: the first products (gate, or up) of all in one dot_list, the up products of
 * those that fire in another, then their down columns into yp. Reuses the lists.
 */
export function neuronList(dt: i32, n: i32, acts: usize): void {
  const first = hasGate ? gateOff : upOff;
  for (let k = 0; k < n; k++) { const a = listRows + (<usize>k << 2); store<u32>(a, load<u32>(a) + <u32>first); }
  pdot_list(dt, listRows, n, xp, d, listDots);
  for (let k = 0; k < n; k++) {
    const a = listRows + (<usize>k << 2), bundle = <usize>load<u32>(a) - first;
    store<u32>(a, <u32>bundle);
    if (!hasGate && biasOff >= 0) { const z = listDots + (<usize>k << 2); store<f32>(z, load<f32>(z) + load<f32>(bundle + <usize>biasOff)); }
  }
  fireList(dt, n, acts);
}

/**
 * Given listDots[k], the first product (gate, or up + bias) of the neuron whose parts are
 * addressed from listRows[k] (id listIds[k]), or with `dense` the layer's bundles from there (k
 * the id, listRows and listIds unread): its activation into acts; for those that fire, the up
 * products in one dot_list (Llama) and the down columns into yp. Reuses the lists.
 */
function fireList(dt: i32, n: i32, acts: usize, dense: usize = 0): void {
  const m = fire(act, actParam, hasGate, n, listRows, listIds, listDots, acts, dense, bundleBytes, 0, upOff);
  if (hasGate) pdot_list(dt, listRows, m, xp, d, listDots);
  // Each firing neuron's coefficient and down column, then all the columns into yp at once
  // (sliced over the compute threads; the same sums in the same order on any number).
  coefs(act, hasGate, m, listRows, listIds, listDots, acts, upOff, downOff);
  paxpy_list(dt, listRows, listDots, m, yp, d);
}

/** out = accumulated y + down bias. */
function ffnOut(l: i32, dt: i32, out: usize): void {
  const b = W(l, L_DOWN_B);
  if (b) memory.copy(out, b, <usize>d << 2);
  else memory.fill(out, 0, <usize>d << 2);
  unprep_y(dt, yp, out, d);
}
