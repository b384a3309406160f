// The FFN's down columns: y += c_k · row_k over a list of rows, and the same over one slice of
// y (compute threads take slices). Slices start at multiples of 32 elements — whole Q8_0/Q4_0
// blocks, whole 8-lane groups of the half types' prepared y — so every element sums the same
// terms in the same order with the same instructions however y is sliced: any thread count
// gives the bits of one. Rows whose coefficient is 0 add nothing and are skipped. Rows go four
// at a time through axpy4, which adds them to each element in list order: the bits of axpy row
// after row, with y read and written once per four rows instead of once per row. Q8_0 / Q4_0
// columns go eight at a time through q_axpy8 (quant-down.ts), which sums them in integers: their
// bits depend on which columns share a group (the list's order), not on the slicing.
import { rowBytes, DT_F32, DT_BF16, DT_Q8_0, bf16_to_f32 } from "../dtype";
import { axpy } from "./matvec";
import { q_axpy8, q_axpy8_scalar } from "./quant-down";
import { madd, K, F16_SCALE, bf16_even, bf16_odd, f16_even, f16_odd, f16_fast } from "./lanes";
import { cut } from "./parts";

/** y (n, prepared for dt) += Σ_k coefs[k] · rows[k] (count rows, u32 addresses; f32 coefficients). */
export function axpy_list(dt: i32, rows: usize, coefs: usize, count: i32, y: usize, n: i32): void {
  axpy_list_part(dt, rows, coefs, count, y, n, 0, 1);
}

/** axpy_list over slice `part` of `parts` of y. */
export function axpy_list_part(dt: i32, rows: usize, coefs: usize, count: i32, y: usize, n: i32, part: i32, parts: i32): void {
  const blocks = n >> 5;
  const a = cut(blocks, part, parts) << 5, b = part == parts - 1 ? n : cut(blocks, part + 1, parts) << 5;
  if (b <= a) return;
  const wOff = rowBytes(dt, a), yp = y + (<usize>a << 2), n_ = b - a;
  if (dt >= DT_Q8_0) { q_list(dt, rows, coefs, count, wOff, yp, n_, ASC_FEATURE_SIMD); return; }
  // The next four rows with a coefficient, gathered in order.
  let c0: f32 = 0, c1: f32 = 0, c2: f32 = 0, r0: usize = 0, r1: usize = 0, r2: usize = 0, held = 0;
  for (let k = 0; k < count; k++) {
    const c = load<f32>(coefs + (<usize>k << 2));
    if (c == 0) continue;
    const r = <usize>load<u32>(rows + (<usize>k << 2)) + wOff;
    if (held == 0) { c0 = c; r0 = r; held = 1; }
    else if (held == 1) { c1 = c; r1 = r; held = 2; }
    else if (held == 2) { c2 = c; r2 = r; held = 3; }
    else { axpy4(dt, c0, r0, c1, r1, c2, r2, c, r, yp, n_); held = 0; }
  }
  if (held > 0) axpy(dt, c0, r0, yp, n_);
  if (held > 1) axpy(dt, c1, r1, yp, n_);
  if (held > 2) axpy(dt, c2, r2, yp, n_);
}

/**
 * The quantized columns eight at a time in list order (those with a zero coefficient too: they
 * add nothing), through q_axpy8 (simd) or its scalar twin; the last group is padded with zero
 * coefficients on its first column.
 */
function q_list(dt: i32, rows: usize, coefs: usize, count: i32, wOff: usize, y: usize, n: i32, simd: bool): void {
  for (let k = 0; k < count; k += 8) {
    const left = count - k, pr = rows + (<usize>k << 2), pc = coefs + (<usize>k << 2);
    const r0 = <usize>load<u32>(pr) + wOff, c0 = load<f32>(pc);
    const r1 = left > 1 ? <usize>load<u32>(pr, 4) + wOff : r0, c1 = left > 1 ? load<f32>(pc, 4) : 0;
    const r2 = left > 2 ? <usize>load<u32>(pr, 8) + wOff : r0, c2 = left > 2 ? load<f32>(pc, 8) : 0;
    const r3 = left > 3 ? <usize>load<u32>(pr, 12) + wOff : r0, c3 = left > 3 ? load<f32>(pc, 12) : 0;
    const r4 = left > 4 ? <usize>load<u32>(pr, 16) + wOff : r0, c4 = left > 4 ? load<f32>(pc, 16) : 0;
    const r5 = left > 5 ? <usize>load<u32>(pr, 20) + wOff : r0, c5 = left > 5 ? load<f32>(pc, 20) : 0;
    const r6 = left > 6 ? <usize>load<u32>(pr, 24) + wOff : r0, c6 = left > 6 ? load<f32>(pc, 24) : 0;
    const r7 = left > 7 ? <usize>load<u32>(pr, 28) + wOff : r0, c7 = left > 7 ? load<f32>(pc, 28) : 0;
    if (simd) q_axpy8(dt, r0, r1, r2, r3, r4, r5, r6, r7, c0, c1, c2, c3, c4, c5, c6, c7, y, n);
    else q_axpy8_scalar(dt, r0, r1, r2, r3, r4, r5, r6, r7, c0, c1, c2, c3, c4, c5, c6, c7, y, n);
  }
}

/** y += a0 w0, then a1 w1, a2 w2, a3 w3, element by element: the bits of four axpy calls in that order. */
export function axpy4(dt: i32, a0: f32, w0: usize, a1: f32, w1: usize, a2: f32, w2: usize, a3: f32, w3: usize, yp: usize, n: i32): void {
  if (!ASC_FEATURE_SIMD) {
    axpy(dt, a0, w0, yp, n); axpy(dt, a1, w1, yp, n); axpy(dt, a2, w2, yp, n); axpy(dt, a3, w3, yp, n);
    return;
  }
  if (dt == DT_F32) {
    const v0 = f32x4.splat(a0), v1 = f32x4.splat(a1), v2 = f32x4.splat(a2), v3 = f32x4.splat(a3);
    const nb = <usize>n << 2;
    let i: usize = 0;
    for (; i + 16 <= nb; i += 16) {
      const y = madd(v128.load(w0 + i), v0, v128.load(yp + i));
      v128.store(yp + i, madd(v128.load(w3 + i), v3, madd(v128.load(w2 + i), v2, madd(v128.load(w1 + i), v1, y))));
    }
    for (; i < nb; i += 4) {
      let y = load<f32>(yp + i) + a0 * load<f32>(w0 + i);
      y = y + a1 * load<f32>(w1 + i); y = y + a2 * load<f32>(w2 + i);
      store<f32>(yp + i, y + a3 * load<f32>(w3 + i));
    }
    return;
  }
  const n8 = n & ~7;
  const bytes = <usize>n8 << 1;
  const m = v128.load(K, 16), mf = v128.load(K), ce = v128.load(K, 32), co = v128.load(K, 48);
  // f16: yp holds y * 2^-56, so each coefficient carries 2^56 (axpy's own scaling).
  const bf = dt == DT_BF16;
  const s0 = bf ? a0 : a0 * F16_SCALE, s1 = bf ? a1 : a1 * F16_SCALE, s2 = bf ? a2 : a2 * F16_SCALE, s3 = bf ? a3 : a3 * F16_SCALE;
  const v0 = f32x4.splat(s0), v1 = f32x4.splat(s1), v2 = f32x4.splat(s2), v3 = f32x4.splat(s3);
  let q = yp;
  if (bf) {
    for (let o: usize = 0; o < bytes; o += 16, q += 32) {
      const x0 = v128.load(w0 + o), x1 = v128.load(w1 + o), x2 = v128.load(w2 + o), x3 = v128.load(w3 + o);
      v128.store(q, madd(bf16_even(x3), v3, madd(bf16_even(x2), v2, madd(bf16_even(x1), v1, madd(bf16_even(x0), v0, v128.load(q))))));
      v128.store(q, madd(bf16_odd(x3, m), v3, madd(bf16_odd(x2, m), v2, madd(bf16_odd(x1, m), v1, madd(bf16_odd(x0, m), v0, v128.load(q, 16))))), 16);
    }
  } else {
    for (let o: usize = 0; o < bytes; o += 16, q += 32) {
      const x0 = v128.load(w0 + o), x1 = v128.load(w1 + o), x2 = v128.load(w2 + o), x3 = v128.load(w3 + o);
      v128.store(q, madd(f16_even(x3, mf, ce), v3, madd(f16_even(x2, mf, ce), v2, madd(f16_even(x1, mf, ce), v1, madd(f16_even(x0, mf, ce), v0, v128.load(q))))));
      v128.store(q, madd(f16_odd(x3, mf, co), v3, madd(f16_odd(x2, mf, co), v2, madd(f16_odd(x1, mf, co), v1, madd(f16_odd(x0, mf, co), v0, v128.load(q, 16))))), 16);
    }
  }
  for (let i = n8; i < n; i++) {
    const o = yp + (<usize>i << 2), e = <usize>i << 1;
    let y = load<f32>(o);
    if (bf) {
      y = y + s0 * bf16_to_f32(<u32>load<u16>(w0 + e)); y = y + s1 * bf16_to_f32(<u32>load<u16>(w1 + e));
      y = y + s2 * bf16_to_f32(<u32>load<u16>(w2 + e)); y = y + s3 * bf16_to_f32(<u32>load<u16>(w3 + e));
    } else {
      y = y + s0 * f16_fast(<u32>load<u16>(w0 + e)); y = y + s1 * f16_fast(<u32>load<u16>(w1 + e));
      y = y + s2 * f16_fast(<u32>load<u16>(w2 + e)); y = y + s3 * f16_fast(<u32>load<u16>(w3 + e));
    }
    store<f32>(o, y);
  }
}

/** The reference: one row at a time over the whole of y (quantized: q_axpy8's scalar twin, eight at a time). */
export function axpy_list_ref(dt: i32, rows: usize, coefs: usize, count: i32, y: usize, n: i32): void {
  if (dt >= DT_Q8_0) { q_list(dt, rows, coefs, count, 0, y, n, false); return; }
  for (let k = 0; k < count; k++) {
    const c = load<f32>(coefs + (<usize>k << 2));
    if (c != 0) axpy(dt, c, <usize>load<u32>(rows + (<usize>k << 2)), y, n);
  }
}
