// Causal attention of one token's query heads over the KV cache, head by head, so that the
// compute threads can share the heads out (threads.ts, KIND_ATTN). Workers are separate
// instances with their own globals, so everything a head needs travels in a block of shared
// memory that forward.ts fills before each layer's attention (the A_* fields); each head has
// its own score row and prepared buffers there, and a head's result never depends on which
// thread computes it or how the heads are split.
import { alloc } from "./mem";
import { DT_F32, DT_F16 } from "./dtype";
import { prep_len, prep_x, prep_zero, unprep_y, dot, axpy } from "./kernels/matvec";
import { vdot, vaxpy_rows, softmax } from "./kernels/vec";
import { cut } from "./kernels/parts";

const A_Q: usize = 0;        // (nHeads*headDim,) f32 queries
const A_OUT: usize = 4;      // (nHeads*headDim,) f32 output
const A_ATT: usize = 8;      // (nHeads, maxSeq) f32 scores, a row per head
const A_PREP: usize = 12;    // (nHeads, 2, prep_len(headDim)) f32: per head its query and value accumulator, prepared (f16 KV)
const A_K: usize = 16;       // this layer's keys (maxSeq, kvDim) as kvDt
const A_V: usize = 20;       // this layer's values
const A_HEADS: usize = 24, A_KV: usize = 28, A_HEAD_DIM: usize = 32, A_MAX_SEQ: usize = 36, A_KV_DT: usize = 40;
const A_FIRST: usize = 44, A_POS: usize = 48;   // positions first..pos
const A_SCALE: usize = 52;   // f32, 1/sqrt(headDim)
const A_BYTES: usize = 64;

/** The block and per-head buffers for a model's shape (model_init; nothing allocated later). */
export function attention_init(q: usize, out: usize, nHeads: i32, nKv: i32, headDim: i32, maxSeq: i32, kvDt: i32): usize {
  const p = alloc(A_BYTES, 64);
  memory.fill(p, 0, A_BYTES);
  store<u32>(p + A_Q, <u32>q); store<u32>(p + A_OUT, <u32>out);
  store<u32>(p + A_ATT, <u32>alloc(<usize>(nHeads * maxSeq) << 2, 64));
  store<u32>(p + A_PREP, <u32>alloc(<usize>(nHeads * 2 * prep_len(headDim)) << 2, 64));
  store<i32>(p + A_HEADS, nHeads); store<i32>(p + A_KV, nKv); store<i32>(p + A_HEAD_DIM, headDim);
  store<i32>(p + A_MAX_SEQ, maxSeq); store<i32>(p + A_KV_DT, kvDt);
  store<f32>(p + A_SCALE, <f32>1.0 / Mathf.sqrt(<f32>headDim));
  return p;
}

/** Points block p at one layer's cache and one token's range of positions. */
export function attention_set(p: usize, layerK: usize, layerV: usize, first: i32, pos: i32): void {
  store<u32>(p + A_K, <u32>layerK); store<u32>(p + A_V, <u32>layerV);
  store<i32>(p + A_FIRST, first); store<i32>(p + A_POS, pos);
}

export function attention_heads(p: usize): i32 { return load<i32>(p + A_HEADS); }
/** Where block p's output goes: (nHeads*headDim,) f32. */
export function attention_out(p: usize): usize { return <usize>load<u32>(p + A_OUT); }

/** Multiply-adds the attention of block p takes (whether sharing it out pays). */
export function attention_work(p: usize): i64 {
  return <i64>load<i32>(p + A_HEADS) * <i64>(load<i32>(p + A_POS) + 1 - load<i32>(p + A_FIRST)) * <i64>(2 * load<i32>(p + A_HEAD_DIM));
}

/** Part `part` of `parts` of the query heads of block p. */
export function attention_part(p: usize, part: i32, parts: i32): void {
  const heads = load<i32>(p + A_HEADS);
  for (let h = cut(heads, part, parts), end = cut(heads, part + 1, parts); h < end; h++) head(p, h);
}

/** Query head h: softmax(q_h K^T * scale) V over positions first..pos; query heads share KV heads in groups (GQA). */
function head(p: usize, h: i32): void {
  const nHeads = load<i32>(p + A_HEADS), nKv = load<i32>(p + A_KV), headDim = load<i32>(p + A_HEAD_DIM);
  const first = load<i32>(p + A_FIRST), pos = load<i32>(p + A_POS), scale = load<f32>(p + A_SCALE);
  const kvDim = nKv * headDim, group = nHeads / nKv;
  const layerK = <usize>load<u32>(p + A_K), layerV = <usize>load<u32>(p + A_V);
  const att = <usize>load<u32>(p + A_ATT) + (<usize>(h * load<i32>(p + A_MAX_SEQ)) << 2);
  const qh = <usize>load<u32>(p + A_Q) + (<usize>(h * headDim) << 2);
  const oh = <usize>load<u32>(p + A_OUT) + (<usize>(h * headDim) << 2);
  if (load<i32>(p + A_KV_DT) == DT_F32) {
    const kvOff = <usize>((h / group) * headDim) << 2;
    for (let t = first; t <= pos; t++) {
      store<f32>(att + (<usize>t << 2), vdot(qh, layerK + (<usize>(t * kvDim) << 2) + kvOff, headDim) * scale);
    }
    softmax(att + (<usize>first << 2), pos + 1 - first);
    vaxpy_rows(att + (<usize>first << 2), layerV + (<usize>(first * kvDim) << 2) + kvOff, <usize>kvDim << 2, pos + 1 - first, oh, headDim);
    return;
  }
  // An f16 cache, through the weight kernels' prepared layout.
  const pl = <usize>prep_len(headDim) << 2;
  const qp = <usize>load<u32>(p + A_PREP) + <usize>(h * 2) * pl, vp = qp + pl;
  prep_x(DT_F16, qh, qp, headDim);
  const kvOff = <usize>((h / group) * headDim) << 1;
  for (let t = first; t <= pos; t++) {
    store<f32>(att + (<usize>t << 2), dot(DT_F16, layerK + (<usize>(t * kvDim) << 1) + kvOff, qp, headDim) * scale);
  }
  softmax(att + (<usize>first << 2), pos + 1 - first);
  prep_zero(DT_F16, vp, headDim);
  for (let t = first; t <= pos; t++) {
    axpy(DT_F16, load<f32>(att + (<usize>t << 2)), layerV + (<usize>(t * kvDim) << 1) + kvOff, vp, headDim);
  }
  memory.fill(oh, 0, <usize>headDim << 2);
  unprep_y(DT_F16, vp, oh, headDim);
}
