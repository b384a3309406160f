// Weight kernels: a row of stored weights (f32/f16/bf16) against an f32 activation vector.
//
// The SIMD kernels may keep activations in a "prepared" layout (reordered and scaled so that
// half-precision rows widen with a few integer ops). Callers treat prepared buffers as opaque:
//   prep_x(dt, x, xp, n)          xp <- x in the layout dot() reads           (xp: prep_len(n) f32)
//   dot(dt, w, xp, n)       -> f32  sum_i w[i] * x[i]
//   prep_zero(dt, yp, n)          yp <- 0 in the layout axpy() accumulates    (yp: prep_len(n) f32)
//   axpy(dt, a, w, yp, n)         y += a * w
//   unprep_y(dt, yp, y, n)        y[i] += value of yp at i (natural order, f32)
//   matvec(dt, w, stride, x, xp, out, rows, cols)   out[r] = W[r,:] . x, rows `stride` bytes apart
// Each has a scalar *_ref beside it working on natural-order f32 vectors.
import { DT_F32, dtypeSize, loadElem } from "../dtype";

/** f32 slots a prepared vector of n elements needs. */
export function prep_len(n: i32): i32 {
  return (n + 15) & ~15;
}

export function prep_x(dt: i32, x: usize, xp: usize, n: i32): void {
  memory.copy(xp, x, <usize>n << 2);
}

export function prep_zero(dt: i32, yp: usize, n: i32): void {
  memory.fill(yp, 0, <usize>prep_len(n) << 2);
}

export function unprep_y(dt: i32, yp: usize, y: usize, n: i32): void {
  for (let i = 0; i < n; i++) store<f32>(y + (<usize>i << 2), load<f32>(y + (<usize>i << 2)) + load<f32>(yp + (<usize>i << 2)));
}

export function dot(dt: i32, w: usize, xp: usize, n: i32): f32 {
  return dot_ref(dt, w, xp, n);
}

export function axpy(dt: i32, a: f32, w: usize, yp: usize, n: i32): void {
  axpy_ref(dt, a, w, yp, n);
}

export function matvec(dt: i32, w: usize, stride: usize, x: usize, xp: usize, out: usize, rows: i32, cols: i32): void {
  prep_x(dt, x, xp, cols);
  for (let r = 0; r < rows; r++) store<f32>(out + (<usize>r << 2), dot(dt, w + <usize>r * stride, xp, cols));
}

// ---- scalar references (natural order, f32 accumulation) ----

/** sum_i w[i] * x[i], w of type dt, x f32. */
export function dot_ref(dt: i32, w: usize, x: usize, n: i32): f32 {
  let s: f32 = 0;
  for (let i = 0; i < n; i++) s += loadElem(dt, w, i) * load<f32>(x + (<usize>i << 2));
  return s;
}

/** y[i] += a * w[i], w of type dt, y f32. */
export function axpy_ref(dt: i32, a: f32, w: usize, y: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const p = y + (<usize>i << 2);
    store<f32>(p, load<f32>(p) + a * loadElem(dt, w, i));
  }
}

/** out[r] = W[r,:] . x with rows `stride` bytes apart. */
export function matvec_ref(dt: i32, w: usize, stride: usize, x: usize, out: usize, rows: i32, cols: i32): void {
  for (let r = 0; r < rows; r++) store<f32>(out + (<usize>r << 2), dot_ref(dt, w + <usize>r * stride, x, cols));
}

// keep the import used in every build
export const F32_SIZE: i32 = dtypeSize(DT_F32);
