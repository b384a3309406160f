// One layer's attention block in parts, one threaded job per layer (threads.ts, KIND_ATTN_BLOCK)
// instead of three (q/k/v, attention, o) with the rotary positions and the KV cache's append
// between them on one thread. Part g of nKv takes KV group g whole: the q rows of its query heads
// and its k and v rows (with their biases), the rotary positions of those, its keys and values
// into the KV cache, attention of its query heads (attention.ts), and the o projection of those
// heads' outputs — o's columns of the group — into an o of its own; the engine then adds the
// groups' o in order (attn_part_sum). The parts come from the model's shape, never the thread
// count, so any number of threads gives the same bits; q, k and v get the bits pmatvec gives
// them (the groups' rows are whole runs of the kernels' row groups). Workers are separate
// instances with their own globals: all a part needs travels in a block that forward.ts fills.
import { alloc } from "./mem";
import { DT_F32, DT_Q8_0, rowBytes, f32_to_f16 } from "./dtype";
import { matvec_part, prep_x, prep_len } from "./kernels/matvec";
import { vadd } from "./kernels/vec";
import { attention_part, attention_out } from "./attention";

const P_DT: usize = 0;       // i32 q/k/v's dtype
const P_WQ: usize = 4, P_WK: usize = 8, P_WV: usize = 12;
const P_STRIDE: usize = 16;  // u32 their row bytes
const P_QB: usize = 20, P_KB: usize = 24, P_VB: usize = 28;   // biases (0: none)
const P_XP: usize = 32;      // the block's input, prepared for P_DT
const P_Q: usize = 36, P_K: usize = 40, P_V: usize = 44;      // f32 outputs
const P_DTO: usize = 48, P_WO: usize = 52, P_OSTRIDE: usize = 56, P_OB: usize = 60;
const P_ATT: usize = 64;     // attention.ts's block (q, its output, this layer's cache and positions)
const P_COS: usize = 68, P_SIN: usize = 72;                    // this position's rotary tables (0: none)
const P_ROT: usize = 76;     // i32 rotary dims of each head
const P_KC: usize = 80, P_VC: usize = 84;                      // where this position's keys and values go
const P_KVDT: usize = 88, P_HEADS: usize = 92, P_KV: usize = 96, P_HD: usize = 100, P_D: usize = 104;
const P_OUT: usize = 108;    // (nKv, d) f32: each group's o
const P_OXP: usize = 112;    // (nKv) prepared slices of the attention output, P_OXPLEN bytes each
const P_OXPLEN: usize = 116;
const BYTES: usize = 128;

/** The block and each group's o and prepared slice for a model's shape (model_init). */
export function attn_part_init(nHeads: i32, nKv: i32, headDim: i32, d: i32, kvDt: i32, att: usize, q: usize, k: usize, v: usize): usize {
  const b = alloc(BYTES, 64);
  memory.fill(b, 0, BYTES);
  const gw = nHeads / nKv * headDim, len = <usize>prep_len(gw) << 2;
  store<u32>(b + P_OUT, <u32>alloc(<usize>(nKv * d) << 2, 64));
  store<u32>(b + P_OXP, <u32>alloc(<usize>nKv * len, 64)); store<u32>(b + P_OXPLEN, <u32>len);
  store<i32>(b + P_KVDT, kvDt); store<i32>(b + P_HEADS, nHeads); store<i32>(b + P_KV, nKv); store<i32>(b + P_HD, headDim);
  store<i32>(b + P_D, d); store<u32>(b + P_ATT, <u32>att);
  store<u32>(b + P_Q, <u32>q); store<u32>(b + P_K, <u32>k); store<u32>(b + P_V, <u32>v);
  return b;
}

/** Whether a layer's block can go in parts: q/k/v of one dtype, two groups or more, o's group columns whole blocks of its kernels. */
export function attn_part_fits(nHeads: i32, nKv: i32, headDim: i32, dq: i32, dk: i32, dv: i32, dto: i32): bool {
  const gw = nHeads / nKv * headDim;
  return nKv >= 2 && dq == dk && dq == dv && (dto >= DT_Q8_0 ? (gw & 31) == 0 : (gw & 7) == 0) && (headDim & 7) == 0;
}

/** Points block b at layer l's weights (all but the prepared input, set by the caller's prep_x at P_XP). */
export function attn_part_layer(b: usize, dt: i32, wq: usize, wk: usize, wv: usize, qb: usize, kb: usize, vb: usize, xp: usize,
                                dto: i32, wo: usize, ob: usize): void {
  const d = load<i32>(b + P_D), qDim = load<i32>(b + P_HEADS) * load<i32>(b + P_HD);
  store<i32>(b + P_DT, dt); store<u32>(b + P_WQ, <u32>wq); store<u32>(b + P_WK, <u32>wk); store<u32>(b + P_WV, <u32>wv);
  store<u32>(b + P_STRIDE, <u32>rowBytes(dt, d));
  store<u32>(b + P_QB, <u32>qb); store<u32>(b + P_KB, <u32>kb); store<u32>(b + P_VB, <u32>vb); store<u32>(b + P_XP, <u32>xp);
  store<i32>(b + P_DTO, dto); store<u32>(b + P_WO, <u32>wo); store<u32>(b + P_OSTRIDE, <u32>rowBytes(dto, qDim)); store<u32>(b + P_OB, <u32>ob);
}

/** This token's rotary tables (0: no rotary), rotary dims, and where its keys and values go in the cache. */
export function attn_part_pos(b: usize, cos: usize, sin: usize, rot: i32, kc: usize, vc: usize): void {
  store<u32>(b + P_COS, <u32>cos); store<u32>(b + P_SIN, <u32>sin); store<i32>(b + P_ROT, rot);
  store<u32>(b + P_KC, <u32>kc); store<u32>(b + P_VC, <u32>vc);
}

export function attn_part_count(b: usize): i32 { return load<i32>(b + P_KV); }

/** Group g of the layer block b points at, as the header describes. */
export function attn_part(b: usize, g: i32): void {
  const nHeads = load<i32>(b + P_HEADS), nKv = load<i32>(b + P_KV), hd = load<i32>(b + P_HD), d = load<i32>(b + P_D);
  const group = nHeads / nKv, qRows = group * hd, gw = qRows;
  const dt = load<i32>(b + P_DT), stride = <usize>load<u32>(b + P_STRIDE), xp = <usize>load<u32>(b + P_XP);
  const q = <usize>load<u32>(b + P_Q) + (<usize>(g * qRows) << 2);
  const k = <usize>load<u32>(b + P_K) + (<usize>(g * hd) << 2), v = <usize>load<u32>(b + P_V) + (<usize>(g * hd) << 2);
  matvec_part(dt, <usize>load<u32>(b + P_WQ) + <usize>(g * qRows) * stride, stride, xp, q, qRows, d, 0, 1);
  matvec_part(dt, <usize>load<u32>(b + P_WK) + <usize>(g * hd) * stride, stride, xp, k, hd, d, 0, 1);
  matvec_part(dt, <usize>load<u32>(b + P_WV) + <usize>(g * hd) * stride, stride, xp, v, hd, d, 0, 1);
  const qb = <usize>load<u32>(b + P_QB), kb = <usize>load<u32>(b + P_KB), vb = <usize>load<u32>(b + P_VB);
  if (qb) vadd(qb + (<usize>(g * qRows) << 2), q, qRows);
  if (kb) vadd(kb + (<usize>(g * hd) << 2), k, hd);
  if (vb) vadd(vb + (<usize>(g * hd) << 2), v, hd);
  const cos = <usize>load<u32>(b + P_COS);
  if (cos) {
    const sin = <usize>load<u32>(b + P_SIN), rot = load<i32>(b + P_ROT);
    for (let h = 0; h < group; h++) rope_head(q + (<usize>(h * hd) << 2), cos, sin, rot);
    rope_head(k, cos, sin, rot);
  }
  const kvDt = load<i32>(b + P_KVDT), es: usize = kvDt == DT_F32 ? 4 : 2;
  kv_store(<usize>load<u32>(b + P_KC) + <usize>(g * hd) * es, k, hd, kvDt);
  kv_store(<usize>load<u32>(b + P_VC) + <usize>(g * hd) * es, v, hd, kvDt);
  const att = <usize>load<u32>(b + P_ATT);
  attention_part(att, g, nKv);   // query heads [g·group, (g + 1)·group): cut(nHeads, g, nKv)
  // o's columns of the group against the group's heads' output, into the group's own o
  const dto = load<i32>(b + P_DTO), oxp = <usize>load<u32>(b + P_OXP) + <usize>g * <usize>load<u32>(b + P_OXPLEN);
  prep_x(dto, attention_out(att) + (<usize>(g * gw) << 2), oxp, gw);
  matvec_part(dto, <usize>load<u32>(b + P_WO) + rowBytes(dto, g * gw), <usize>load<u32>(b + P_OSTRIDE), oxp,
              <usize>load<u32>(b + P_OUT) + (<usize>(g * d) << 2), d, gw, 0, 1);
}

/** out = the groups' o added in order, plus o's bias. */
export function attn_part_sum(b: usize, out: usize): void {
  const nKv = load<i32>(b + P_KV), d = load<i32>(b + P_D), o = <usize>load<u32>(b + P_OUT);
  memory.copy(out, o, <usize>d << 2);
  for (let g = 1; g < nKv; g++) vadd(o + (<usize>(g * d) << 2), out, d);
  const ob = <usize>load<u32>(b + P_OB);
  if (ob) vadd(ob, out, d);
}

/** Rotates pairs (i, i + rot/2) of one head by this position's angles (HF rotate_half); dims from rot on pass through. */
export function rope_head(base: usize, c: usize, s: usize, rot: i32): void {
  const half = rot >> 1;
  for (let i = 0; i < half; i++) {
    const p0 = base + (<usize>i << 2), p1 = base + (<usize>(i + half) << 2);
    const a = load<f32>(p0), b = load<f32>(p1);
    const ci = load<f32>(c + (<usize>i << 2)), si = load<f32>(s + (<usize>i << 2));
    store<f32>(p0, a * ci - b * si);
    store<f32>(p1, b * ci + a * si);
  }
}

/** Appends n keys or values to the KV cache at dst, as dt (f32 or f16). */
export function kv_store(dst: usize, src: usize, n: i32, dt: i32): void {
  if (dt == DT_F32) { memory.copy(dst, src, <usize>n << 2); return; }
  for (let i = 0; i < n; i++) store<u16>(dst + (<usize>i << 1), f32_to_f16(load<f32>(src + (<usize>i << 2))));
}
