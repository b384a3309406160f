// The FFN's down columns: y += c_k · row_k over a list of rows, and the same over one slice of
// y (compute threads take slices). Slices start at multiples of 32 elements — whole Q8_0/Q4_0
// blocks, whole 8-lane groups of the half types' prepared y — so every element sums the same
// terms in the same order with the same instructions however y is sliced: any thread count
// gives the bits of one. Rows whose coefficient is 0 add nothing and are skipped.
import { rowBytes } from "../dtype";
import { axpy } from "./matvec";
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
  const wOff = rowBytes(dt, a), yOff = <usize>a << 2;
  for (let k = 0; k < count; k++) {
    const c = load<f32>(coefs + (<usize>k << 2));
    if (c != 0) axpy(dt, c, <usize>load<u32>(rows + (<usize>k << 2)) + wOff, y + yOff, b - a);
  }
}

/** The reference: one row at a time over the whole of y. */
export function axpy_list_ref(dt: i32, rows: usize, coefs: usize, count: i32, y: usize, n: i32): void {
  for (let k = 0; k < count; k++) {
    const c = load<f32>(coefs + (<usize>k << 2));
    if (c != 0) axpy(dt, c, <usize>load<u32>(rows + (<usize>k << 2)), y, n);
  }
}
