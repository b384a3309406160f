// Sparse-input matrix products (TEAL: input entries with |x_j| under a cut count as zero, and
// the weight columns they meet are skipped). Weights are row-major (a row per output), so a
// column cannot be skipped as a block; two ways:
//
//   mask_inputs(x, n, t, xz)            xz <- x with |x_j| < t zeroed; returns the entries kept.
//                                       The ordinary matvec over xz then gives TEAL's product,
//                                       split over threads as any matvec (threads.ts), and at
//                                       t = 0 xz = x: the dense product bit for bit.
//   gather_inputs(x, n, t, idx, xs)     the kept entries as a compact list (indices ascending,
//                                       values); returns how many.
//   sparse_matvec(dt, w, stride, idx, xs, m, out, rows, cols)
//                                       out[r] = sum_k W[r, idx[k]] * xs[k]: only the kept columns
//                                       are read. One accumulator per row in index order, so it
//                                       equals sparse_matvec_ref bit for bit (f16 Inf/NaN weights
//                                       aside). Q8_0/Q4_0 rows go element by element (loadElem).
//   sparse_matvec_part(…, part, parts)  its rows split in runs of 4 as matvec_part splits them.
//
// Which pays is measured (bench/teal.js, README): the gathered loads are scalar, against SIMD
// rows in the dense kernels, so gathering wins only where few entries are kept; a Q8_0/Q4_0
// block of 32 is skipped whole only where all its entries are cut (mask_blocks_skippable()).
import { DT_F32, DT_F16, DT_BF16, loadElem } from "../dtype";
import { cut } from "./parts";

const F16_UP: f32 = 5.192296858534828e33; // 2^112: f16 bits placed in an f32 read as value * 2^-112

let skippable: i32 = 0;

/** xz <- x with entries |x_j| < t set to +0; returns how many are kept. Counts the blocks of 32 all cut (mask_blocks_skippable). */
export function mask_inputs(x: usize, n: i32, t: f32, xz: usize): i32 {
  let kept = 0, blocks = 0, j = 0;
  if (ASC_FEATURE_SIMD) {
    const tv = f32x4.splat(t), one = i32x4.splat(1);
    for (; j + 32 <= n; j += 32) {
      let c = i32x4.splat(0);
      for (let k = 0; k < 32; k += 4) {
        const o = <usize>(j + k) << 2, v = v128.load(x + o);
        const keep = f32x4.ge(f32x4.abs(v), tv);
        v128.store(xz + o, v128.and(v, keep));
        c = i32x4.add(c, v128.and(keep, one));
      }
      const s = i32x4.extract_lane(c, 0) + i32x4.extract_lane(c, 1) + i32x4.extract_lane(c, 2) + i32x4.extract_lane(c, 3);
      kept += s; blocks += <i32>(s == 0);
    }
  }
  for (; j < n; j++) {
    const v = load<f32>(x + (<usize>j << 2)), keep = Mathf.abs(v) >= t;
    store<f32>(xz + (<usize>j << 2), keep ? v : 0);
    kept += <i32>keep;
  }
  skippable = blocks;
  return kept;
}

/** Blocks of 32 whose entries the last mask_inputs (SIMD build) cut all: what a Q8_0/Q4_0 block skip would save. */
export function mask_blocks_skippable(): i32 { return skippable; }

/** idx <- the ascending j with |x_j| >= t, xs <- those x_j (both room for n); returns how many. */
export function gather_inputs(x: usize, n: i32, t: f32, idx: usize, xs: usize): i32 {
  let m = 0;
  for (let j = 0; j < n; j++) {
    const v = load<f32>(x + (<usize>j << 2));
    store<i32>(idx + (<usize>m << 2), j);
    store<f32>(xs + (<usize>m << 2), v);
    m += <i32>(Mathf.abs(v) >= t);   // written always, kept by advancing
  }
  return m;
}


export function sparse_matvec(dt: i32, w: usize, stride: usize, idx: usize, xs: usize, m: i32, out: usize, rows: i32, cols: i32): void {
  sparse_matvec_part(dt, w, stride, idx, xs, m, out, rows, cols, 0, 1);
}

/** The rows of sparse_matvec that part `part` of `parts` computes (runs of 4 rows; the last part takes the rest). */
export function sparse_matvec_part(dt: i32, w: usize, stride: usize, idx: usize, xs: usize, m: i32, out: usize, rows: i32, cols: i32, part: i32, parts: i32): void {
  const a = cut(rows >> 2, part, parts) << 2, b = part == parts - 1 ? rows : cut(rows >> 2, part + 1, parts) << 2;
  if (dt == DT_F32) sm_f32(w, stride, idx, xs, m, out, a, b);
  else if (dt == DT_BF16) sm_half(w, stride, idx, xs, m, out, a, b, false);
  else if (dt == DT_F16) sm_half(w, stride, idx, xs, m, out, a, b, true);
  else {
    for (let r = a; r < b; r++) {
      const row = w + <usize>r * stride;
      let s: f32 = 0;
      for (let k = 0; k < m; k++) s += loadElem(dt, row, load<i32>(idx + (<usize>k << 2))) * load<f32>(xs + (<usize>k << 2));
      store<f32>(out + (<usize>r << 2), s);
    }
  }
}

/** Rows [a, b) of f32 weights, four neighbouring rows per pass sharing each index and value. */
function sm_f32(w: usize, stride: usize, idx: usize, xs: usize, m: i32, out: usize, a: i32, b: i32): void {
  let r = a;
  const end = <usize>m << 2;
  for (; r + 4 <= b; r += 4) {
    const p0 = w + <usize>r * stride, p1 = p0 + stride, p2 = p1 + stride, p3 = p2 + stride;
    let s0: f32 = 0, s1: f32 = 0, s2: f32 = 0, s3: f32 = 0;
    for (let k: usize = 0; k < end; k += 4) {
      const o = <usize>load<i32>(idx + k) << 2, v = load<f32>(xs + k);
      s0 += load<f32>(p0 + o) * v; s1 += load<f32>(p1 + o) * v; s2 += load<f32>(p2 + o) * v; s3 += load<f32>(p3 + o) * v;
    }
    const q = out + (<usize>r << 2);
    store<f32>(q, s0); store<f32>(q, s1, 4); store<f32>(q, s2, 8); store<f32>(q, s3, 12);
  }
  for (; r < b; r++) {
    const p = w + <usize>r * stride;
    let s: f32 = 0;
    for (let k: usize = 0; k < end; k += 4) s += load<f32>(p + (<usize>load<i32>(idx + k) << 2)) * load<f32>(xs + k);
    store<f32>(out + (<usize>r << 2), s);
  }
}

/** A half as f32, exactly: bf16 by a shift, f16 through the bit trick and 2^112. */
@inline function half(h: u32, f16: bool): f32 {
  return f16 ? reinterpret<f32>(((h & 0x7FFF) << 13) | ((h & 0x8000) << 16)) * F16_UP : reinterpret<f32>(h << 16);
}

/** Rows [a, b) of f16 or bf16 weights, four rows per pass. */
function sm_half(w: usize, stride: usize, idx: usize, xs: usize, m: i32, out: usize, a: i32, b: i32, f16: bool): void {
  let r = a;
  const end = <usize>m << 2;
  for (; r + 4 <= b; r += 4) {
    const p0 = w + <usize>r * stride, p1 = p0 + stride, p2 = p1 + stride, p3 = p2 + stride;
    let s0: f32 = 0, s1: f32 = 0, s2: f32 = 0, s3: f32 = 0;
    for (let k: usize = 0; k < end; k += 4) {
      const o = <usize>load<i32>(idx + k) << 1, v = load<f32>(xs + k);
      s0 += half(<u32>load<u16>(p0 + o), f16) * v; s1 += half(<u32>load<u16>(p1 + o), f16) * v;
      s2 += half(<u32>load<u16>(p2 + o), f16) * v; s3 += half(<u32>load<u16>(p3 + o), f16) * v;
    }
    const q = out + (<usize>r << 2);
    store<f32>(q, s0); store<f32>(q, s1, 4); store<f32>(q, s2, 8); store<f32>(q, s3, 12);
  }
  for (; r < b; r++) {
    const p = w + <usize>r * stride;
    let s: f32 = 0;
    for (let k: usize = 0; k < end; k += 4) s += half(<u32>load<u16>(p + (<usize>load<i32>(idx + k) << 1)), f16) * load<f32>(xs + k);
    store<f32>(out + (<usize>r << 2), s);
  }
}

/** Reference: out[r] = sum over j ascending with |x_j| >= t of W[r, j] * x_j (natural x, f32 accumulation). */
export function sparse_matvec_ref(dt: i32, w: usize, stride: usize, x: usize, t: f32, out: usize, rows: i32, cols: i32): void {
  for (let r = 0; r < rows; r++) {
    const row = w + <usize>r * stride;
    let s: f32 = 0;
    for (let j = 0; j < cols; j++) {
      const v = load<f32>(x + (<usize>j << 2));
      if (Mathf.abs(v) >= t) s += loadElem(dt, row, j) * v;
    }
    store<f32>(out + (<usize>r << 2), s);
  }
}
