// The transformer forward pass, one token at a time, top to bottom (OPT and Llama families).
//
// The host (src/engine.ts) calls, once per model:
//   model_config(...)            the blueprint
//   model_init()                 allocates every activation buffer and the KV cache
//   set_global / set_layer       pointers to the weights it placed in memory
//   ffn_layout(...)              where up/gate/down/bias sit inside one FFN bundle
// and then per token forward(token, pos), after which logits_ptr() holds the vocab scores.
// Nothing here allocates after model_init.
import { alloc } from "./mem";
import { NeuronCache } from "./cache";
import { flash_read } from "./flash";
import { DT_F32, DT_F16, dtypeSize, rowBytes, loadElem, f32_to_f16 } from "./dtype";
import { prep_len, prep_x, prep_zero, unprep_y, dot, dot_list, axpy, matvec } from "./kernels/matvec";
import { vdot, vaxpy, vadd, layernorm, rmsnorm, softmax } from "./kernels/vec";

export const ARCH_OPT: i32 = 0;
export const ARCH_LLAMA: i32 = 1;
export const ACT_RELU: i32 = 0;
export const ACT_SILU: i32 = 1;

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

export function model_config(arch_: i32, nLayers_: i32, d_: i32, ffn_: i32, nHeads_: i32, nKv_: i32,
  headDim_: i32, vocab_: i32, maxSeq_: i32, eps_: f32, act_: i32, ropeTheta_: f64, posOffset_: i32,
  hasGate_: i32): void {
  arch = arch_; nLayers = nLayers_; d = d_; ffn = ffn_; nHeads = nHeads_; nKv = nKv_; headDim = headDim_;
  vocab = vocab_; maxSeq = maxSeq_; eps = eps_; act = act_; ropeTheta = ropeTheta_; posOffset = posOffset_;
  hasGate = hasGate_ != 0;
}

// ---- Weights: (pointer, dtype) per slot; vectors (norms, biases) are always f32 ----
export const G_TOK_EMBED: i32 = 0;   // (vocab, d)
export const G_POS_EMBED: i32 = 1;   // (maxPos + posOffset, d), OPT only
export const G_NORM_W: i32 = 2;      // (d,) f32
export const G_NORM_B: i32 = 3;      // (d,) f32, OPT only
export const G_LM_HEAD: i32 = 4;     // (vocab, d); the token embedding when tied
const N_GLOBAL: i32 = 5;

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
export const L_LN2_W: i32 = 10; // (d,)   final_layer_norm / post_attention_layernorm
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
@inline function WDT(l: i32, slot: i32): i32 { return load<i32>(lDt + (<usize>(l * N_LAYER + slot) << 2)); }

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
}

/** Dense FFN laid out as matrices: neuron i's bias at biasOff + i * stride (0: inside its bundle). */
export function ffn_bias_stride(stride: usize): void { biasStride = stride; }
let biasStride: usize = 0;

// ---- RunState: every activation buffer, allocated once ----
let x: usize = 0;       // (d,) residual stream
let xb: usize = 0;      // (d,) normed input of a block
let xb2: usize = 0;     // (d,) block output
let q: usize = 0;       // (nHeads*headDim,)
let k: usize = 0;       // (nKv*headDim,)
let v: usize = 0;       // (nKv*headDim,)
let attOut: usize = 0;  // (nHeads*headDim,)
let att: usize = 0;     // (maxSeq,) scores of one head
let hAct: usize = 0;    // (nLayers, ffn) FFN activations of the last token
let ffnIn: usize = 0;   // (nLayers, d) FFN input (normed) of the last token: what predictors see
let logits: usize = 0;  // (vocab,)
let kCache: usize = 0;  // (nLayers, maxSeq, nKv*headDim) kvDt
let vCache: usize = 0;  // (nLayers, maxSeq, nKv*headDim) kvDt
let kvDt: i32 = DT_F32; // f16 halves the KV cache (the host chooses, before model_init)
let qp: usize = 0;      // (prep_len(headDim),) one query head, prepared for an f16 KV cache
let vp: usize = 0;      // (prep_len(headDim),) one head's value accumulator, prepared
let ropeCos: usize = 0; // (maxSeq, headDim/2)
let ropeSin: usize = 0; // (maxSeq, headDim/2)
let xp: usize = 0;      // prepared activation (kernel layout), widest input
let yp: usize = 0;      // prepared FFN accumulator (d)
let captureLayer: i32 = -1;
let capture: usize = 0; // (d,) residual stream after layer captureLayer
let listRows: usize = 0; // (ffn,) u32 row addresses of a list of neurons (dot_list)
let listIds: usize = 0;  // (ffn,) i32 their neuron ids
let listDots: usize = 0; // (ffn,) f32 their dots

/** Allocates the run state. Returns the bytes it took (the host counts them against the budget). */
export function model_init(): usize {
  const start = heap.alloc(0);
  gPtr = alloc(N_GLOBAL * 4, 16); gDt = alloc(N_GLOBAL * 4, 16);
  lPtr = alloc(<usize>(nLayers * N_LAYER) << 2, 16); lDt = alloc(<usize>(nLayers * N_LAYER) << 2, 16);
  memory.fill(gPtr, 0, N_GLOBAL * 4); memory.fill(lPtr, 0, <usize>(nLayers * N_LAYER) << 2);
  const qDim = nHeads * headDim, kvDim = nKv * headDim;
  x = f32s(d); xb = f32s(d); xb2 = f32s(d); capture = f32s(d);
  q = f32s(qDim); k = f32s(kvDim); v = f32s(kvDim); attOut = f32s(qDim);
  att = f32s(maxSeq); hAct = f32s(nLayers * ffn); ffnIn = f32s(nLayers * d); logits = f32s(vocab);
  listRows = f32s(ffn); listIds = f32s(ffn); listDots = f32s(ffn);
  const kvElems = nLayers * maxSeq * kvDim, kvHalves = kvDt == DT_F32 ? 1 : 0;
  kCache = f32s(kvHalves ? kvElems : (kvElems + 1) >> 1); vCache = f32s(kvHalves ? kvElems : (kvElems + 1) >> 1);
  qp = f32s(prep_len(headDim)); vp = f32s(prep_len(headDim));
  const widest = max(max(d, ffn), qDim);
  xp = f32s(prep_len(widest)); yp = f32s(prep_len(d));
  if (ropeTheta > 0) {
    const half = headDim >> 1;
    ropeCos = f32s(maxSeq * half); ropeSin = f32s(maxSeq * half);
    // In PyTorch: inv_freq = 1 / theta ** (arange(0, dim, 2) / dim); angle = pos * inv_freq
    for (let i = 0; i < half; i++) {
      const invFreq = <f32>(1.0 / Math.pow(ropeTheta, <f64>(2 * i) / <f64>headDim));
      for (let p = 0; p < maxSeq; p++) {
        const a = <f64>(<f32>p * invFreq);
        store<f32>(ropeCos + (<usize>(p * half + i) << 2), <f32>Math.cos(a));
        store<f32>(ropeSin + (<usize>(p * half + i) << 2), <f32>Math.sin(a));
      }
    }
  }
  return heap.alloc(0) - start;
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
// asynchronously, many in flight, while the cached neurons are computed.

/** Runs token `token` at position `pos` (0-based; KV cache holds positions < pos). Fills logits. */
export function forward(token: i32, pos: i32): void {
  forward_begin(token, pos);
  for (let l = 0; l < nLayers; l++) {
    layer_attention(l, pos);
    if (!flash) ffnDense(l, xb, xb2);
    else {
      ffn_begin(l);
      ffn_hits(l);
      for (let n = plan_round(l); n > 0; n = plan_round(l)) {
        if (!exec_plan_sync(n)) return;   // io_error() says why; the host resets the caches
        round_done(l);
      }
    }
    layer_end(l);
  }
  forward_end();
}

let embedOff: u64 = 0;       // file offset of the token embeddings when they stay on flash
let embedRowBytes: usize = 0;
let embedBuf: usize = 0;

/** Leaves the token embeddings on flash at file `offset`: each token reads its row. */
export function embed_on_flash(offset: u64, rowBytes: usize): void {
  embedOff = offset; embedRowBytes = rowBytes; embedBuf = alloc(rowBytes, 64);
}

/** Token embedding (+ learned position for OPT, whose position ids start at posOffset). */
export function forward_begin(token: i32, pos: i32): void {
  const t0 = now();
  if (embedRowBytes) {
    // Token embeddings left on flash: read this token's row.
    const got = flash_read(flashFd, embedBuf, embedRowBytes, embedOff + <u64>token * <u64>embedRowBytes);
    if (got != <i64>embedRowBytes && !ioError) ioError = got < 0 ? <i32>(-got) : -1;
    add_io(<f64>embedRowBytes, 1, now() - t0);
    embedRow(embedBuf, GDT(G_TOK_EMBED), 0, x);
  } else embedRow(G(G_TOK_EMBED), GDT(G_TOK_EMBED), token, x);
  if (arch == ARCH_OPT) {
    embedRow(G(G_POS_EMBED), GDT(G_POS_EMBED), pos + posOffset, xb);
    vadd(xb, x, d);
  }
  if (flash) flashNextToken();
  tCompute += now() - t0;
}

/** Attention block of layer l, then the FFN's normed input in xb.
 *  In PyTorch: x = x + o_proj(attn(norm1(x))); h = norm2(x) */
export function layer_attention(l: i32, pos: i32): void {
  const t0 = now();
  const kvDim = nKv * headDim;
  norm(x, W(l, L_LN1_W), W(l, L_LN1_B), xb);
  linear(l, L_Q, L_QB, xb, q, nHeads * headDim, d);
  linear(l, L_K, L_KB, xb, k, kvDim, d);
  linear(l, L_V, L_VB, xb, v, kvDim, d);
  if (ropeTheta > 0) { rope(q, nHeads, pos); rope(k, nKv, pos); }
  const es = <usize>dtypeSize(kvDt);
  const layerK = kCache + <usize>(l * maxSeq * kvDim) * es;
  const layerV = vCache + <usize>(l * maxSeq * kvDim) * es;
  kvStore(layerK + <usize>(pos * kvDim) * es, k, kvDim);
  kvStore(layerV + <usize>(pos * kvDim) * es, v, kvDim);
  attention(layerK, layerV, pos);
  linear(l, L_O, L_OB, attOut, xb2, d, nHeads * headDim);
  vadd(xb2, x, d);
  norm(x, W(l, L_LN2_W), W(l, L_LN2_B), xb);
  memory.copy(ffnIn + (<usize>(l * d) << 2), xb, <usize>d << 2);
  tCompute += now() - t0;
}

/** Adds the FFN output (xb2) to the residual stream.
 *  In PyTorch (OPT): x = x + fc2(relu(fc1(h)));  (Llama): x = x + down_proj(act(gate_proj(h)) * up_proj(h)) */
export function layer_end(l: i32): void {
  const t0 = now();
  if (flash) ffnOut(l, WDT(l, L_FFN), xb2);
  vadd(xb2, x, d);
  if (l == captureLayer) memory.copy(capture, x, <usize>d << 2);
  tCompute += now() - t0;
}

/** Layer l's FFN over its resident bundles (the dense mode of forward()). */
export function ffn_dense(l: i32): void {
  const t0 = now();
  ffnDense(l, xb, xb2);
  tCompute += now() - t0;
}

/** Final norm and lm_head. */
export function forward_end(): void {
  const t0 = now();
  norm(x, G(G_NORM_W), G(G_NORM_B), xb);
  matvec(GDT(G_LM_HEAD), G(G_LM_HEAD), rowBytes(GDT(G_LM_HEAD), d), xb, xp, logits, vocab, d);
  tCompute += now() - t0;
}

/** out = row r of an embedding table, widened to f32. */
function embedRow(table: usize, dt: i32, r: i32, out: usize): void {
  const row = table + <usize>r * rowBytes(dt, d);
  for (let i = 0; i < d; i++) store<f32>(out + (<usize>i << 2), loadElem(dt, row, i));
}

/** LayerNorm (OPT, weight and bias) or RMSNorm (Llama, weight only). */
function norm(src: usize, w: usize, b: usize, out: usize): void {
  if (arch == ARCH_OPT) layernorm(src, w, b, out, d, eps);
  else rmsnorm(src, w, out, d, eps);
}

/** out (rows) = W (rows, cols) @ in (cols) + bias, for weight slot `slot` of layer l. */
function linear(l: i32, slot: i32, biasSlot: i32, src: usize, out: usize, rows: i32, cols: i32): void {
  const dt = WDT(l, slot);
  matvec(dt, W(l, slot), rowBytes(dt, cols), src, xp, out, rows, cols);
  const b = W(l, biasSlot);
  if (b) vadd(b, out, rows);
}

/** Rotates pairs (i, i + headDim/2) of every head by the position's angles (HF rotate_half). */
function rope(vec: usize, heads: i32, pos: i32): void {
  const half = headDim >> 1;
  const c = ropeCos + (<usize>(pos * half) << 2), s = ropeSin + (<usize>(pos * half) << 2);
  for (let h = 0; h < heads; h++) {
    const base = vec + (<usize>(h * headDim) << 2);
    for (let i = 0; i < half; i++) {
      const p0 = base + (<usize>i << 2), p1 = base + (<usize>(i + half) << 2);
      const a = load<f32>(p0), b = load<f32>(p1);
      const ci = load<f32>(c + (<usize>i << 2)), si = load<f32>(s + (<usize>i << 2));
      store<f32>(p0, a * ci - b * si);
      store<f32>(p1, b * ci + a * si);
    }
  }
}

/** Appends one position's keys or values to the KV cache, as kvDt. */
function kvStore(dst: usize, src: usize, n: i32): void {
  if (kvDt == DT_F32) { memory.copy(dst, src, <usize>n << 2); return; }
  for (let i = 0; i < n; i++) store<u16>(dst + (<usize>i << 1), f32_to_f16(load<f32>(src + (<usize>i << 2))));
}

/** Causal attention of q over cached positions 0..pos; query heads share KV heads in groups (GQA). */
function attention(layerK: usize, layerV: usize, pos: i32): void {
  const kvDim = nKv * headDim, group = nHeads / nKv;
  const scale: f32 = 1.0 / Mathf.sqrt(<f32>headDim);
  if (kvDt != DT_F32) { attentionHalf(layerK, layerV, pos, scale); return; }
  for (let h = 0; h < nHeads; h++) {
    const qh = q + (<usize>(h * headDim) << 2);
    const kvOff = <usize>((h / group) * headDim) << 2;
    for (let t = 0; t <= pos; t++) {
      const kt = layerK + (<usize>(t * kvDim) << 2) + kvOff;
      store<f32>(att + (<usize>t << 2), vdot(qh, kt, headDim) * scale);
    }
    softmax(att, pos + 1);
    const oh = attOut + (<usize>(h * headDim) << 2);
    memory.fill(oh, 0, <usize>headDim << 2);
    for (let t = 0; t <= pos; t++) {
      vaxpy(load<f32>(att + (<usize>t << 2)), layerV + (<usize>(t * kvDim) << 2) + kvOff, oh, headDim);
    }
  }
}

/** attention() over an f16 KV cache, through the weight kernels' prepared layout. */
function attentionHalf(layerK: usize, layerV: usize, pos: i32, scale: f32): void {
  const kvDim = nKv * headDim, group = nHeads / nKv;
  for (let h = 0; h < nHeads; h++) {
    prep_x(DT_F16, q + (<usize>(h * headDim) << 2), qp, headDim);
    const kvOff = <usize>((h / group) * headDim) << 1;
    for (let t = 0; t <= pos; t++) {
      store<f32>(att + (<usize>t << 2), dot(DT_F16, layerK + (<usize>(t * kvDim) << 1) + kvOff, qp, headDim) * scale);
    }
    softmax(att, pos + 1);
    prep_zero(DT_F16, vp, headDim);
    for (let t = 0; t <= pos; t++) {
      axpy(DT_F16, load<f32>(att + (<usize>t << 2)), layerV + (<usize>(t * kvDim) << 1) + kvOff, vp, headDim);
    }
    const oh = attOut + (<usize>(h * headDim) << 2);
    memory.fill(oh, 0, <usize>headDim << 2);
    unprep_y(DT_F16, vp, oh, headDim);
  }
}

@inline function activate(a: f32): f32 {
  return act == ACT_RELU ? max<f32>(a, 0) : a / (1 + Mathf.exp(-a));
}

/**
 * Every neuron of layer l from its bundle: h_i = act(gate_i . x) * (up_i . x) (Llama) or
 * act(up_i . x + b_i) (OPT), then out = sum_i h_i * down_i + down bias. Neurons whose
 * activation is exactly 0 (ReLU) skip the rest of their bundle.
 */
function ffnDense(l: i32, src: usize, out: usize): void {
  const dt = WDT(l, L_FFN), base = W(l, L_FFN);
  const acts = hAct + (<usize>(l * ffn) << 2);
  // The first product of every neuron (gate, or up for OPT) as one matvec over the neurons'
  // rows (stride bundleBytes): its multi-row kernels share each x load among the rows.
  matvec(dt, base + <usize>(hasGate ? gateOff : upOff), bundleBytes, src, xp, listDots, ffn, d);
  prep_zero(dt, yp, d);
  const bStride = biasStride ? biasStride : bundleBytes;
  for (let i = 0; i < ffn; i++) {
    store<u32>(listRows + (<usize>i << 2), <u32>(base + <usize>i * bundleBytes));
    store<i32>(listIds + (<usize>i << 2), i);
    if (!hasGate && biasOff >= 0) {
      const z = listDots + (<usize>i << 2);
      store<f32>(z, load<f32>(z) + load<f32>(base + <usize>biasOff + <usize>i * bStride));
    }
  }
  fireList(dt, ffn, acts);
  ffnOut(l, dt, out);
}

/** One neuron from its bundle: h = act(gate . x) * (up . x) or act(up . x + b); y += h * down. */
@inline function neuron(dt: i32, bundle: usize, actOut: usize): void {
  let h: f32;
  if (hasGate) {
    h = activate(dot(dt, bundle + gateOff, xp, d));
    if (h != 0) h *= dot(dt, bundle + upOff, xp, d);
  } else {
    let a = dot(dt, bundle + upOff, xp, d);
    if (biasOff >= 0) a += load<f32>(bundle + <usize>biasOff);
    h = activate(a);
  }
  store<f32>(actOut, h);
  if (h != 0) axpy(dt, h, bundle + downOff, yp, d);
}

/** out = accumulated y + down bias. */
function ffnOut(l: i32, dt: i32, out: usize): void {
  const b = W(l, L_DOWN_B);
  if (b) memory.copy(out, b, <usize>d << 2);
  else memory.fill(out, 0, <usize>d << 2);
  unprep_y(dt, yp, out, d);
}

// ---- FFN on flash: predictor, windowed neuron cache, planned reads ("LLM in a flash" §3) ----
//
// Per token and layer the wanted neurons come from the low-rank predictor, from the host (an
// oracle list, tests) or are all of them (naive / hybrid modes). Cached rows unused for `window`
// tokens are evicted (swap-delete), then, if room is still short, the least recently used rows
// not wanted now. Missing neurons are read in rounds: plan_round() lists up to maxOps reads of
// whole extents (neighbouring misses merged when the gap is cheaper to read through than a
// second operation) into the staging buffer; round_done() copies each bundle into a cache row
// by appending — or, when the cache is full, computes it straight from staging (streamed).
// Staging offsets and read extents honour `align` (4096 for O_DIRECT).

@external("env", "now")
declare function now(): f64;

export const WANT_HOST: i32 = 0;       // the host fills predicted_ptr(l) (oracle, tests)
export const WANT_PREDICTOR: i32 = 1;  // the low-rank predictor
export const WANT_ALL: i32 = 2;        // every neuron (naive, hybrid)
export const WINDOW_FOREVER: i32 = 0x3fffffff;  // hybrid: what is cached stays
export const WINDOW_LRU: i32 = 0x3ffffffe;      // sparse: neurons stay while the cache has room; when
                                                // it is full the least recently used go first

let flash = false;
let wantMode: i32 = WANT_HOST;
let window: i32 = 5;
let flashFd: u32 = 0;
let flashOff: usize = 0;   // (nLayers,) u64 file offset of each layer's FFN section
let caches = new Array<NeuronCache>(0);
let predicted: usize = 0;  // (nLayers, ffn) i32 wanted neuron ids of the token, ascending
let predCount: usize = 0;  // (nLayers,) i32
let missing: usize = 0;    // (ffn,) i32 wanted, not cached
let missCount: i32 = 0;
let missCursor: i32 = 0;
let missCached: i32 = 0;   // misses of this layer that get a cache row (the rest stream)
let hitRows: usize = 0;    // (ffn,) i32 cache rows of wanted neurons already cached
let hitCount: i32 = 0;
let step: i32 = 0;         // tokens run since reset, for the window

// Layout of a neuron in the file: nParts extents (1 = bundled; split layouts have up/gate/down/bias
// apart) at partBase[p] + id * partLen[p] within the layer's section, landing at partRow[p] of a row.
let nParts: i32 = 1;
const partBase = memory.data(4 * 8, 16);
const partLen = memory.data(4 * 8, 16);
const partRow = memory.data(4 * 8, 16);
@inline function PB(p: i32): u64 { return load<u64>(partBase + (<usize>p << 3)); }
@inline function PL(p: i32): usize { return <usize>load<u64>(partLen + (<usize>p << 3)); }
@inline function PR(p: i32): usize { return <usize>load<u64>(partRow + (<usize>p << 3)); }

let align: u64 = 1;        // read alignment: offsets, lengths and staging addresses
let staging: usize = 0;
let stagingBytes: usize = 0;
let plan: usize = 0;       // (maxOps, 3) f64: file offset, length, destination address
let maxOps: i32 = 0;
let items: i32 = 0;        // neurons landed by the current round
let itemId: usize = 0;     // (ffn,) i32
let itemPtr: usize = 0;    // (ffn, 4) staging address of each part
let scratchRow: usize = 0; // one bundle, for streamed neurons of split layouts
// Planner: cost of one more read operation vs bytes read through (host-measured, see src/probe.ts).
let opUs: f64 = 0;          // default: minimise bytes (buffered reads of unknown cache state)
let byteUs: f64 = 1;
let gapNeurons: i32 = 0;   // merge misses closer than this many neurons
let wholeLayerUs: f64 = 0;

// Predictor per layer: z = W2 · relu(W1 · x + b1) + b2; neuron i wanted when z_i > threshold.
let rank: i32 = 0;
let predW: usize = 0;      // (nLayers, 5) pointers: w1, b1, w2, b2 and threshold (f32 bits)
let predDt: i32 = 0;
let predH: usize = 0;      // (rank,)
let predZ: usize = 0;      // (ffn,)

// Host compute (a GPU backend): the wasm keeps deciding, caching and reading neurons but leaves
// their arithmetic to the host, which mirrors the cache from these lists.
let hostCompute = false;
let moved: usize = 0;      // (ffn,) i32 rows that received another row's bundle (swap-delete) this layer
let movedCount: i32 = 0;
let landedFirst: i32 = 0;  // the last round: cache rows [landedFirst, +landedCached) were appended,
let landedCached: i32 = 0; // items [landedCached, landedItems) were streamed (staging addresses in itemPtr)
let landedItems: i32 = 0;

export function set_host_compute(on: bool): void { hostCompute = on; }
export function moved_ptr(): usize { return moved; }
export function moved_count(): i32 { return movedCount; }
export function hit_rows_ptr(): usize { return hitRows; }
export function hit_count(): i32 { return hitCount; }
export function landed_first(): i32 { return landedFirst; }
export function landed_cached(): i32 { return landedCached; }
export function landed_items(): i32 { return landedItems; }
export function item_ids_ptr(): usize { return itemId; }
export function item_ptrs_ptr(): usize { return itemPtr; }
export function cache_rows_ptr(l: i32): usize { return caches[l].rows; }
export function cache_pointers_ptr(l: i32): usize { return caches[l].pointers; }

let ioError: i32 = 0;      // errno of a failed read (negative: short read), 0 when fine
let bytesRead: f64 = 0;
let readCount: f64 = 0;
let tIo: f64 = 0;
let tMem: f64 = 0;
let tCompute: f64 = 0;
let tPredict: f64 = 0;     // the predictor's share of tCompute

/** Moves the FFN to flash. window: tokens a neuron stays cached after use (0 = no reuse). */
export function flash_init(wantMode_: i32, window_: i32, stagingBytes_: usize, maxOps_: i32, align_: u32): usize {
  const start = heap.alloc(0);
  flash = true; wantMode = wantMode_; window = window_; align = align_;
  flashOff = alloc(<usize>nLayers << 3, 16);
  predicted = alloc(<usize>(nLayers * ffn) << 2, 16);
  predCount = alloc(<usize>nLayers << 2, 16);
  memory.fill(predCount, 0, <usize>nLayers << 2);
  missing = alloc(<usize>ffn << 2, 16);
  hitRows = alloc(<usize>ffn << 2, 16);
  moved = alloc(<usize>ffn << 2, 16);
  itemId = alloc(<usize>ffn << 2, 16);
  itemPtr = alloc(<usize>ffn << 4, 16);
  scratchRow = alloc(bundleBytes, 64);
  stagingBytes = stagingBytes_;
  staging = alloc(stagingBytes, 4096);
  maxOps = maxOps_;
  plan = alloc(<usize>maxOps * 24, 16);
  nParts = 1;
  store<u64>(partBase, 0); store<u64>(partLen, <u64>bundleBytes); store<u64>(partRow, 0);
  return heap.alloc(0) - start;
}

/** Layer l's FFN section starts at `offset` in the file; its cache holds `capacity` neurons. */
export function flash_layer(l: i32, offset: u64, capacity: i32): void {
  store<u64>(flashOff + (<usize>l << 3), offset);
  const c = new NeuronCache(capacity, bundleBytes, ffn);
  if (l < caches.length) caches[l] = c; else caches.push(c);   // the host sets layers 0, 1, ... once
}

/** Split (unbundled) layout: part p of neuron id is at base + id*len in the section, row offset rowOff. */
export function flash_part(p: i32, base: u64, len: u32, rowOff: u32): void {
  store<u64>(partBase + (<usize>p << 3), base);
  store<u64>(partLen + (<usize>p << 3), <u64>len);
  store<u64>(partRow + (<usize>p << 3), <u64>rowOff);
  nParts = p + 1;
}

/** Read costs for the planner: per operation and per byte (µs), and the merge gap. */
export function planner_costs(opUs_: f64, byteUs_: f64, gapNeurons_: i32): void {
  opUs = opUs_; byteUs = byteUs_; gapNeurons = gapNeurons_;
}

export function flash_set_fd(fd: u32): void { flashFd = fd; }
export function predicted_ptr(l: i32): usize { return predicted + (<usize>(l * ffn) << 2); }
export function predicted_count(l: i32): i32 { return load<i32>(predCount + (<usize>l << 2)); }
export function set_predicted_count(l: i32, n: i32): void { store<i32>(predCount + (<usize>l << 2), n); }
export function plan_ptr(): usize { return plan; }
export function plan_capacity(): i32 { return maxOps; }
export function cache_rows(l: i32): i32 { return caches[l].count; }
export function cache_capacity(l: i32): i32 { return caches[l].capacity; }
export function io_error(): i32 { return ioError; }
export function set_io_error(e: i32): void { ioError = e; }
export function stat_bytes_read(): f64 { return bytesRead; }
export function stat_reads(): f64 { return readCount; }
export function stat_io_ms(): f64 { return tIo; }
export function stat_mem_ms(): f64 { return tMem; }
export function stat_compute_ms(): f64 { return tCompute; }
export function stat_predict_ms(): f64 { return tPredict; }
export function add_io(bytes: f64, ops: f64, ms: f64): void { bytesRead += bytes; readCount += ops; tIo += ms; }
export function stats_reset(): void { bytesRead = 0; readCount = 0; tIo = 0; tMem = 0; tCompute = 0; tPredict = 0; }

/** Predictor of rank r (weights dtype dt); per layer set with predictor_layer. */
export function predictor_init(r: i32, dt: i32): usize {
  const start = heap.alloc(0);
  rank = r; predDt = dt;
  predW = alloc(<usize>nLayers * 20, 16);
  predH = alloc(<usize>prep_len(r) << 2, 64);
  predZ = alloc(<usize>ffn << 2, 64);
  return heap.alloc(0) - start;
}

export function predictor_layer(l: i32, w1: usize, b1: usize, w2: usize, b2: usize, threshold: f32): void {
  const p = predW + <usize>l * 20;
  store<u32>(p, w1); store<u32>(p, b1, 4); store<u32>(p, w2, 8); store<u32>(p, b2, 12); store<f32>(p, threshold, 16);
}

/** Forgets the sequence: empty caches and window (a new prompt, or after a read error). */
export function flash_reset(): void {
  for (let l = 0; l < caches.length; l++) caches[l].clear();
  step = 0; ioError = 0; missCount = 0; missCursor = 0; items = 0;
}

/** Starts the next token's FFN traffic without the embedding (the host's I/O replay). */
export function flash_step(): void { if (flash) flashNextToken(); }

function flashNextToken(): void {
  step++;
  if (window == 0) for (let l = 0; l < caches.length; l++) caches[l].clear();
}

/** The wanted neurons of layer l for this token, from the predictor (ascending ids). */
function predictLayer(l: i32): void {
  const p = predW + <usize>l * 20;
  const w1 = <usize>load<u32>(p), b1 = <usize>load<u32>(p, 4), w2 = <usize>load<u32>(p, 8), b2 = <usize>load<u32>(p, 12);
  const thr = load<f32>(p, 16);
  matvec(predDt, w1, rowBytes(predDt, d), xb, xp, predH, rank, d);
  vadd(b1, predH, rank);
  for (let i = 0; i < rank; i++) { const a = predH + (<usize>i << 2); store<f32>(a, max<f32>(load<f32>(a), 0)); }
  matvec(predDt, w2, rowBytes(predDt, rank), predH, xp, predZ, ffn, rank);
  const list = predicted + (<usize>(l * ffn) << 2);
  let n = 0;
  for (let i = 0; i < ffn; i++) {
    if (load<f32>(predZ + (<usize>i << 2)) + load<f32>(b2 + (<usize>i << 2)) > thr) store<i32>(list + (<usize>(n++) << 2), i);
  }
  store<i32>(predCount + (<usize>l << 2), n);
}

/**
 * Starts layer l's FFN: decides the wanted neurons, updates the window, evicts, lists the
 * cached (hits) and the missing neurons, and decides how to read the misses.
 */
export function ffn_begin(l: i32): void {
  const t0 = now();
  if (wantMode == WANT_PREDICTOR) { predictLayer(l); tPredict += now() - t0; }
  else if (wantMode == WANT_ALL) {
    const list = predicted + (<usize>(l * ffn) << 2);
    for (let i = 0; i < ffn; i++) store<i32>(list + (<usize>i << 2), i);
    store<i32>(predCount + (<usize>l << 2), ffn);
  }
  const dt = WDT(l, L_FFN);
  prep_x(dt, xb, xp, d);
  prep_zero(dt, yp, d);
  memory.fill(hAct + (<usize>(l * ffn) << 2), 0, <usize>ffn << 2);
  const t1 = now();
  tCompute += t1 - t0;

  const c = caches[l], t = step;
  const list = predicted + (<usize>(l * ffn) << 2), n = load<i32>(predCount + (<usize>l << 2));
  // Window: mark this token's neurons, evict those unused for `window` tokens.
  for (let i = 0; i < n; i++) store<i32>(c.lastUsed + (<usize>load<i32>(list + (<usize>i << 2)) << 2), t);
  movedCount = 0;
  if (window != WINDOW_FOREVER && window != WINDOW_LRU) {
    for (let r = c.count - 1; r >= 0; r--) {
      const id = c.neuronAt(r);
      if (load<i32>(c.lastUsed + (<usize>id << 2)) <= t - window) evict(c, id);
    }
  }
  hitCount = 0; missCount = 0;
  for (let i = 0; i < n; i++) {
    const id = load<i32>(list + (<usize>i << 2));
    const r = c.slot(id);
    if (r >= 0) store<i32>(hitRows + (<usize>(hitCount++) << 2), r);
    else store<i32>(missing + (<usize>(missCount++) << 2), id);
  }
  // Room for the misses: evict the least recently used rows not wanted now, oldest first.
  if (c.count + missCount > c.capacity && window != WINDOW_FOREVER) {
    if (window == WINDOW_LRU) evictOldest(c, t, c.count + missCount - c.capacity);
    else {
      for (let age = t - window + 1; age < t && c.count + missCount > c.capacity; age++) {
        for (let r = c.count - 1; r >= 0 && c.count + missCount > c.capacity; r--) {
          const id = c.neuronAt(r);
          if (load<i32>(c.lastUsed + (<usize>id << 2)) == age) evict(c, id);
        }
      }
    }
    // Removing rows moved others: list the hit rows again.
    hitCount = 0;
    for (let i = 0; i < n; i++) {
      const r = c.slot(load<i32>(list + (<usize>i << 2)));
      if (r >= 0) store<i32>(hitRows + (<usize>(hitCount++) << 2), r);
    }
  }
  missCached = min(missCount, c.capacity - c.count);
  missCursor = 0;
  choosePlan();
  tMem += now() - t1;
}

// Ages (tokens since last use) the LRU eviction tells apart; older rows count as this old.
const AGE_BUCKETS: i32 = 256;
const ageCount = memory.data(AGE_BUCKETS << 2, 16);

/**
 * Evicts the `k` least recently used rows not wanted at token t (fewer if fewer are not wanted):
 * a count of rows by age finds the cut, then one pass from the last row evicts every row older
 * than the cut and rows at the cut until k are gone. O(rows), nothing allocated.
 */
function evictOldest(c: NeuronCache, t: i32, k: i32): void {
  memory.fill(ageCount, 0, <usize>AGE_BUCKETS << 2);
  for (let r = 0; r < c.count; r++) {
    const u = load<i32>(c.lastUsed + (<usize>c.neuronAt(r) << 2));
    if (u >= t) continue;
    const p = ageCount + (<usize>min(t - u, AGE_BUCKETS - 1) << 2);
    store<i32>(p, load<i32>(p) + 1);
  }
  let cut = AGE_BUCKETS - 1, older = 0;
  while (cut > 1 && older + load<i32>(ageCount + (<usize>cut << 2)) < k) older += load<i32>(ageCount + (<usize>(cut--) << 2));
  let atCut = k - older;
  for (let r = c.count - 1; r >= 0 && k > 0; r--) {
    const id = c.neuronAt(r), u = load<i32>(c.lastUsed + (<usize>id << 2));
    if (u >= t) continue;
    const a = min(t - u, AGE_BUCKETS - 1);
    if (a > cut || (a == cut && atCut > 0)) {
      if (a == cut) atCut--;
      evict(c, id);
      k--;
    }
  }
}

/** Swap-deletes neuron id, noting the row that received the last row's bundle. */
function evict(c: NeuronCache, id: i32): void {
  const r = c.slot(id);
  if (r != c.count - 1) store<i32>(moved + (<usize>(movedCount++) << 2), r);
  c.remove(id);
}

/** Computes the wanted neurons that were already cached (the host runs it while reads are in flight). */
export function ffn_hits(l: i32): void {
  if (hostCompute) return;
  const t0 = now();
  const c = caches[l], dt = WDT(l, L_FFN), acts = hAct + (<usize>(l * ffn) << 2);
  for (let i = 0; i < hitCount; i++) {
    const r = load<i32>(hitRows + (<usize>i << 2));
    store<u32>(listRows + (<usize>i << 2), <u32>c.rowPtr(r));
    store<i32>(listIds + (<usize>i << 2), c.neuronAt(r));
  }
  neuronList(dt, hitCount, acts);
  tCompute += now() - t0;
}

/**
 * The neurons whose bundles lie at listRows[0, n) (neuron ids in listIds), as neuron() computes
 * them one by one: the first products (gate, or up) of all in one dot_list, the up products of
 * those that fire in another, then their down columns into yp. Reuses the lists.
 */
function neuronList(dt: i32, n: i32, acts: usize): void {
  const first = hasGate ? gateOff : upOff;
  for (let k = 0; k < n; k++) { const a = listRows + (<usize>k << 2); store<u32>(a, load<u32>(a) + <u32>first); }
  dot_list(dt, listRows, n, xp, d, listDots);
  for (let k = 0; k < n; k++) {
    const a = listRows + (<usize>k << 2), bundle = <usize>load<u32>(a) - first;
    store<u32>(a, <u32>bundle);
    if (!hasGate && biasOff >= 0) { const z = listDots + (<usize>k << 2); store<f32>(z, load<f32>(z) + load<f32>(bundle + <usize>biasOff)); }
  }
  fireList(dt, n, acts);
}

/**
 * Given listDots[k], the first product (gate, or up + bias) of the neuron whose parts are
 * addressed from listRows[k] (id listIds[k]): its activation into acts; for those that fire, the
 * up products in one dot_list (Llama) and the down columns into yp. Reuses the lists.
 */
function fireList(dt: i32, n: i32, acts: usize): void {
  let m = 0;   // the firing ones, compacted in place: bundle addresses and ids
  for (let k = 0; k < n; k++) {
    const bundle = <usize>load<u32>(listRows + (<usize>k << 2)), id = load<i32>(listIds + (<usize>k << 2));
    const h = activate(load<f32>(listDots + (<usize>k << 2)));
    store<f32>(acts + (<usize>id << 2), h);
    if (h != 0) {
      store<u32>(listRows + (<usize>m << 2), <u32>(bundle + (hasGate ? upOff : 0)));
      store<i32>(listIds + (<usize>(m++) << 2), id);
    }
  }
  if (hasGate) dot_list(dt, listRows, m, xp, d, listDots);
  for (let k = 0; k < m; k++) {
    const id = load<i32>(listIds + (<usize>k << 2)), a = acts + (<usize>id << 2);
    let h = load<f32>(a);
    let bundle = <usize>load<u32>(listRows + (<usize>k << 2));
    if (hasGate) { h *= load<f32>(listDots + (<usize>k << 2)); store<f32>(a, h); bundle -= upOff; }
    if (h != 0) axpy(dt, h, bundle + downOff, yp, d);
  }
}

@inline function missAt(i: i32): i32 { return load<i32>(missing + (<usize>i << 2)); }

/** Estimated µs of reading misses [0, missCount) with merge gap `gap` (neurons). */
function planCost(gap: i32): f64 {
  if (missCount == 0) return 0;
  let ops: f64 = 0, bytes: f64 = 0;
  let i = 0;
  while (i < missCount) {
    let j = i;
    while (j + 1 < missCount && missAt(j + 1) - missAt(j) - 1 <= gap) j++;
    const span = <f64>(missAt(j) - missAt(i) + 1);
    for (let p = 0; p < nParts; p++) { ops += 1; bytes += span * <f64>PL(p); }
    i = j + 1;
  }
  return ops * opUs + bytes * byteUs;
}

let roundGap: i32 = 0;
let roundBytes: f64 = 0;         // bytes the last planned round reads

export function plan_bytes(): f64 { return roundBytes; }
let maxOpBytes: u64 = 1 << 30;   // longest single read (the host's parallel reads want several)

export function set_max_op_bytes(n: u32): void { maxOpBytes = max<u64>(<u64>n, align); }

/** Staging bytes the extent of neurons [first, last] takes (all parts, with alignment slack). */
function stagingNeed(first: i32, last: i32): usize {
  let need: usize = 0;
  for (let p = 0; p < nParts; p++) need += <usize>(last - first + 1) * PL(p) + <usize>(align << 1);
  return need;
}

/** Reads the extent of neurons [first, last] takes (all parts). */
function opsFor(first: i32, last: i32): i32 {
  let n = 0;
  for (let p = 0; p < nParts; p++) {
    const lo = (PB(p) + <u64>first * <u64>PL(p)) & ~(align - 1);
    const hi = (PB(p) + <u64>(last + 1) * <u64>PL(p) + align - 1) & ~(align - 1);
    n += <i32>((hi - lo + maxOpBytes - 1) / maxOpBytes);
  }
  return n;
}

/** Picks the merge gap: the profile's, unless reading each missing span through is cheaper;
 *  never worse than reading the layer's whole FFN front to back. */
function choosePlan(): void {
  roundGap = gapNeurons;
  if (missCount == 0) return;
  const planned = planCost(gapNeurons);
  const spanned = planCost(ffn);   // one extent from the first to the last miss (per staging round)
  const rounds = Math.ceil(<f64>(missAt(missCount - 1) - missAt(0) + 1) * <f64>bundleBytes / <f64>stagingBytes);
  if (spanned + (rounds - 1) * opUs * <f64>nParts < planned) roundGap = ffn;
}

/**
 * Plans the next round of reads for layer l into plan_ptr(): (file offset, length, address)
 * triples. Returns the number of reads, 0 when every miss has landed.
 */
export function plan_round(l: i32): i32 {
  if (missCursor >= missCount) return 0;
  const t0 = now();
  const base = load<u64>(flashOff + (<usize>l << 3));
  const c = caches[l];
  let ops = 0, used: usize = 0;
  roundBytes = 0;
  items = 0;
  while (missCursor < missCount) {
    // Extent of misses [i, j]: neighbours closer than the gap are read through.
    const i = missCursor;
    let j = i, full = false;
    while (j + 1 < missCount && missAt(j + 1) - missAt(j) - 1 <= roundGap) {
      // Stop growing when the extent would not fit the staging buffer.
      if (used + stagingNeed(missAt(i), missAt(j + 1)) > stagingBytes) { full = true; break; }
      j++;
    }
    if (used + stagingNeed(missAt(i), missAt(j)) > stagingBytes) {
      if (ops == 0) { ioError = -2; return 0; }  // staging too small for one neuron: a setup bug
      break;
    }
    const first = missAt(i), last = missAt(j);
    const nOps = opsFor(first, last);
    if (ops + nOps > maxOps) { if (ops == 0) { ioError = -2; return 0; } break; }
    // An extent of neighbouring bundles (no gaps read through) that all get cache rows is read
    // straight into the rows they are appended to (round_done then has nothing to copy); the
    // rest land in staging. Either way a round reads at most stagingBytes (host readers hold a copy).
    const inPlace = nParts == 1 && align == 1 && last - first == j - i && j < missCached;
    for (let p = 0; p < nParts; p++) {
      const lo = (base + PB(p) + <u64>first * <u64>PL(p)) & ~(align - 1);
      const end = base + PB(p) + <u64>(last + 1) * <u64>PL(p);
      const hi = (end + align - 1) & ~(align - 1);
      used = <usize>((<u64>used + align - 1) & ~(align - 1));
      const dst = inPlace ? c.rowPtr(c.count + items) : staging + used;
      // Long extents go out as several reads of at most maxOpBytes, in flight together.
      for (let at = lo; at < hi; at += maxOpBytes) {
        const len = min<u64>(maxOpBytes, hi - at);
        const e = plan + <usize>ops * 24;
        store<f64>(e, <f64>at); store<f64>(e, <f64>len, 8); store<f64>(e, <f64>(dst + <usize>(at - lo)), 16);
        roundBytes += <f64>len;
        ops++;
      }
      for (let k = i; k <= j; k++) {
        const id = missAt(k);
        if (p == 0) store<i32>(itemId + (<usize>(items + k - i) << 2), id);
        store<usize>(itemPtr + (<usize>(items + k - i) << 4) + (<usize>p << 2), dst + <usize>(base + PB(p) + <u64>id * <u64>PL(p) - lo));
      }
      used += <usize>(hi - lo);
    }
    items += j - i + 1;
    missCursor = j + 1;
    if (full) break;   // staging is full: a new extent would be one more, smaller read
  }
  tMem += now() - t0;
  return ops;
}

/** Reads the planned round through WASI fd_pread, one after another. False on a failed read. */
export function exec_plan_sync(n: i32): bool {
  const t0 = now();
  for (let i = 0; i < n; i++) {
    const e = plan + <usize>i * 24;
    const off = <u64>load<f64>(e), len = <usize>load<f64>(e, 8), dst = <usize>load<f64>(e, 16);
    const got = flash_read(flashFd, dst, len, off);
    if (got != <i64>len) { ioError = got < 0 ? <i32>(-got) : -1; tIo += now() - t0; return false; }
  }
  add_io(roundBytes, n, now() - t0);
  return true;
}

/** The round's reads have landed: append each neuron to the cache (or stream it) and compute it. */
export function round_done(l: i32): void {
  const t0 = now();
  const c = caches[l], dt = WDT(l, L_FFN), acts = hAct + (<usize>(l * ffn) << 2);
  const firstRow = c.count;
  let cachedNow = 0;
  const landedBefore = missCursor - items;
  for (let k = 0; k < items && landedBefore + k < missCached; k++) {
    const row = c.rowPtr(c.insert(load<i32>(itemId + (<usize>k << 2))));
    const ptrs = itemPtr + (<usize>k << 4);
    if (load<usize>(ptrs) == row) { cachedNow++; continue; }   // read in place
    for (let p = 0; p < nParts; p++) memory.copy(row + PR(p), load<usize>(ptrs + (<usize>p << 2)), PL(p));
    cachedNow++;
  }
  const t1 = now();
  tMem += t1 - t0;
  if (hostCompute) { landedFirst = firstRow; landedCached = cachedNow; landedItems = items; items = 0; return; }
  // The landed rows, and (bundled layout) the streamed ones straight from staging: no room in
  // the cache, computed and forgotten.
  let n = 0;
  for (let k = 0; k < cachedNow; k++) {
    const r = firstRow + k;
    store<u32>(listRows + (<usize>n << 2), <u32>c.rowPtr(r));
    store<i32>(listIds + (<usize>(n++) << 2), c.neuronAt(r));
  }
  if (nParts == 1) {
    for (let k = cachedNow; k < items; k++) {
      store<u32>(listRows + (<usize>n << 2), <u32>load<usize>(itemPtr + (<usize>k << 4)));
      store<i32>(listIds + (<usize>(n++) << 2), load<i32>(itemId + (<usize>k << 2)));
    }
  }
  neuronList(dt, n, acts);
  // Split layouts assemble each streamed neuron's parts into one bundle first.
  if (nParts > 1) {
    for (let k = cachedNow; k < items; k++) {
      const id = load<i32>(itemId + (<usize>k << 2)), ptrs = itemPtr + (<usize>k << 4);
      for (let p = 0; p < nParts; p++) memory.copy(scratchRow + PR(p), load<usize>(ptrs + (<usize>p << 2)), PL(p));
      neuron(dt, scratchRow, acts + (<usize>id << 2));
    }
  }
  items = 0;
  tCompute += now() - t1;
}
