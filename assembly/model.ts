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
import { dtypeSize, loadElem } from "./dtype";
import { prep_len, prep_x, prep_zero, unprep_y, dot, axpy, matvec } from "./kernels/matvec";
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
  bundleBytes = bytes; upOff = up; gateOff = gate; downOff = down; biasOff = bias;
}

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
let logits: usize = 0;  // (vocab,)
let kCache: usize = 0;  // (nLayers, maxSeq, nKv*headDim)
let vCache: usize = 0;  // (nLayers, maxSeq, nKv*headDim)
let ropeCos: usize = 0; // (maxSeq, headDim/2)
let ropeSin: usize = 0; // (maxSeq, headDim/2)
let xp: usize = 0;      // prepared activation (kernel layout), widest input
let yp: usize = 0;      // prepared FFN accumulator (d)
let captureLayer: i32 = -1;
let capture: usize = 0; // (d,) residual stream after layer captureLayer

/** Allocates the run state. Returns the bytes it took (the host counts them against the budget). */
export function model_init(): usize {
  const start = heap.alloc(0);
  gPtr = alloc(N_GLOBAL * 4, 16); gDt = alloc(N_GLOBAL * 4, 16);
  lPtr = alloc(<usize>(nLayers * N_LAYER) << 2, 16); lDt = alloc(<usize>(nLayers * N_LAYER) << 2, 16);
  memory.fill(gPtr, 0, N_GLOBAL * 4); memory.fill(lPtr, 0, <usize>(nLayers * N_LAYER) << 2);
  const qDim = nHeads * headDim, kvDim = nKv * headDim;
  x = f32s(d); xb = f32s(d); xb2 = f32s(d); capture = f32s(d);
  q = f32s(qDim); k = f32s(kvDim); v = f32s(kvDim); attOut = f32s(qDim);
  att = f32s(maxSeq); hAct = f32s(nLayers * ffn); logits = f32s(vocab);
  kCache = f32s(nLayers * maxSeq * kvDim); vCache = f32s(nLayers * maxSeq * kvDim);
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

export function logits_ptr(): usize { return logits; }
export function activations_ptr(): usize { return hAct; }
export function capture_ptr(): usize { return capture; }
export function set_capture_layer(l: i32): void { captureLayer = l; }

// ---- The forward pass ----

/** Runs token `token` at position `pos` (0-based; KV cache holds positions < pos). Fills logits. */
export function forward(token: i32, pos: i32): void {
  const kvDim = nKv * headDim;

  // Token embedding (+ learned position for OPT, whose position ids start at posOffset).
  embedRow(G(G_TOK_EMBED), GDT(G_TOK_EMBED), token, x);
  if (arch == ARCH_OPT) {
    embedRow(G(G_POS_EMBED), GDT(G_POS_EMBED), pos + posOffset, xb);
    vadd(xb, x, d);
  }

  for (let l = 0; l < nLayers; l++) {
    // Attention block. In PyTorch: x = x + o_proj(attn(norm1(x)))
    norm(x, W(l, L_LN1_W), W(l, L_LN1_B), xb);
    linear(l, L_Q, L_QB, xb, q, nHeads * headDim, d);
    linear(l, L_K, L_KB, xb, k, kvDim, d);
    linear(l, L_V, L_VB, xb, v, kvDim, d);
    if (ropeTheta > 0) { rope(q, nHeads, pos); rope(k, nKv, pos); }
    const layerK = kCache + (<usize>(l * maxSeq * kvDim) << 2);
    const layerV = vCache + (<usize>(l * maxSeq * kvDim) << 2);
    memory.copy(layerK + (<usize>(pos * kvDim) << 2), k, <usize>kvDim << 2);
    memory.copy(layerV + (<usize>(pos * kvDim) << 2), v, <usize>kvDim << 2);
    attention(layerK, layerV, pos);
    linear(l, L_O, L_OB, attOut, xb2, d, nHeads * headDim);
    vadd(xb2, x, d);

    // FFN block. In PyTorch (OPT): x = x + fc2(relu(fc1(norm2(x))))
    //            (Llama): x = x + down_proj(act(gate_proj(h)) * up_proj(h)), h = norm2(x)
    norm(x, W(l, L_LN2_W), W(l, L_LN2_B), xb);
    if (sparse) ffnSparse(l, xb, xb2); else ffnDense(l, xb, xb2);
    vadd(xb2, x, d);

    if (l == captureLayer) memory.copy(capture, x, <usize>d << 2);
  }

  norm(x, G(G_NORM_W), G(G_NORM_B), xb);
  matvec(GDT(G_LM_HEAD), G(G_LM_HEAD), <usize>d * dtypeSize(GDT(G_LM_HEAD)), xb, xp, logits, vocab, d);
}

/** out = row r of an embedding table, widened to f32. */
function embedRow(table: usize, dt: i32, r: i32, out: usize): void {
  const row = table + <usize>r * d * dtypeSize(dt);
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
  matvec(dt, W(l, slot), <usize>cols * dtypeSize(dt), src, xp, out, rows, cols);
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

/** Causal attention of q over cached positions 0..pos; query heads share KV heads in groups (GQA). */
function attention(layerK: usize, layerV: usize, pos: i32): void {
  const kvDim = nKv * headDim, group = nHeads / nKv;
  const scale: f32 = 1.0 / Mathf.sqrt(<f32>headDim);
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
  prep_x(dt, src, xp, d);
  prep_zero(dt, yp, d);
  for (let i = 0; i < ffn; i++) neuron(dt, base + <usize>i * bundleBytes, acts + (<usize>i << 2));
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

// ---- Sparse FFN: predicted neurons, windowed neuron cache, bundles read from flash ----
//
// Per layer the host (or the predictor) lists the neurons expected to fire, ascending, in
// predicted (nLayers, ffn) i32 with predCount (nLayers). Neurons used within the last `window`
// tokens stay cached; the others are evicted; missing ones are read, runs of consecutive ids in
// one read, straight into the rows they get in the cache.
let sparse = false;
let window: i32 = 5;
let flashFd: u32 = 0;
let flashOff: usize = 0;   // (nLayers,) u64 file offset of each layer's bundles
let caches = new Array<NeuronCache>(0);
let predicted: usize = 0;  // (nLayers, ffn) i32
let predCount: usize = 0;  // (nLayers,) i32
let missing: usize = 0;    // (ffn,) i32
let step: i32 = 0;         // tokens run since reset, for the window
let ioError: i32 = 0;      // errno of a failed read (negative: short read), 0 when fine
let bytesRead: f64 = 0;
let readCount: f64 = 0;
let droppedNeurons: f64 = 0;

/** Switches the FFN to flash: caches of `capacity` bundles per layer. Returns the bytes taken. */
export function sparse_init(capacity: i32, window_: i32): usize {
  const start = heap.alloc(0);
  sparse = true; window = window_;
  flashOff = alloc(<usize>nLayers << 3, 16);
  predicted = alloc(<usize>(nLayers * ffn) << 2, 16);
  predCount = alloc(<usize>nLayers << 2, 16);
  memory.fill(predCount, 0, <usize>nLayers << 2);
  missing = alloc(<usize>ffn << 2, 16);
  for (let l = 0; l < nLayers; l++) caches.push(new NeuronCache(capacity, bundleBytes, ffn));
  return heap.alloc(0) - start;
}

export function sparse_set_fd(fd: u32): void { flashFd = fd; }
export function set_ffn_flash(l: i32, offset: u64): void { store<u64>(flashOff + (<usize>l << 3), offset); }
export function predicted_ptr(l: i32): usize { return predicted + (<usize>(l * ffn) << 2); }
export function set_predicted_count(l: i32, n: i32): void { store<i32>(predCount + (<usize>l << 2), n); }
export function cache_rows(l: i32): i32 { return caches[l].count; }
export function io_error(): i32 { return ioError; }
export function stat_bytes_read(): f64 { return bytesRead; }
export function stat_reads(): f64 { return readCount; }
export function stat_dropped(): f64 { return droppedNeurons; }

/** Forgets the sequence: empty caches and window (after an error or for a new prompt). */
export function sparse_reset(): void {
  for (let l = 0; l < caches.length; l++) caches[l].clear();
  step = 0; ioError = 0;
}

/** Advances the window clock; the host calls it once per token before forward(). */
export function sparse_next_token(): void { step++; }

function ffnSparse(l: i32, src: usize, out: usize): void {
  const c = caches[l], dt = WDT(l, L_FFN);
  const list = predicted + (<usize>(l * ffn) << 2), n = load<i32>(predCount + (<usize>l << 2));
  const acts = hAct + (<usize>(l * ffn) << 2);
  const t = step;

  // Window: mark this token's neurons, evict those unused for `window` tokens.
  for (let i = 0; i < n; i++) store<i32>(c.lastUsed + (<usize>load<i32>(list + (<usize>i << 2)) << 2), t);
  for (let r = c.count - 1; r >= 0; r--) {
    const id = c.neuronAt(r);
    if (load<i32>(c.lastUsed + (<usize>id << 2)) <= t - window) c.remove(id);
  }

  // Load what is missing; consecutive ids land in consecutive rows, so one read serves a run.
  let m = 0;
  for (let i = 0; i < n; i++) {
    const id = load<i32>(list + (<usize>i << 2));
    if (c.slot(id) < 0) store<i32>(missing + (<usize>(m++) << 2), id);
  }
  if (c.count + m > c.capacity) { droppedNeurons += c.count + m - c.capacity; m = c.capacity - c.count; }
  const base = load<u64>(flashOff + (<usize>l << 3));
  let i = 0;
  while (i < m) {
    const first = load<i32>(missing + (<usize>i << 2));
    let j = i + 1;
    while (j < m && load<i32>(missing + (<usize>j << 2)) == first + (j - i)) j++;
    const row = c.insert(first);
    for (let k = i + 1; k < j; k++) c.insert(load<i32>(missing + (<usize>k << 2)));
    const len = <usize>(j - i) * bundleBytes;
    const got = flash_read(flashFd, c.rowPtr(row), len, base + <u64>first * <u64>bundleBytes);
    if (got != <i64>len) {
      ioError = got < 0 ? <i32>(-got) : -1;
      for (let k = i; k < j; k++) c.remove(load<i32>(missing + (<usize>k << 2)));
      return;
    }
    bytesRead += <f64>len; readCount += 1;
    i = j;
  }

  prep_x(dt, src, xp, d);
  prep_zero(dt, yp, d);
  memory.fill(acts, 0, <usize>ffn << 2);
  for (let i = 0; i < n; i++) {
    const id = load<i32>(list + (<usize>i << 2));
    const r = c.slot(id);
    if (r >= 0) neuron(dt, c.rowPtr(r), acts + (<usize>id << 2));
  }
  ffnOut(l, dt, out);
}
