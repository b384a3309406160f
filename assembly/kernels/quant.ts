// Block-quantized weights, laid out as GGUF's Q8_0 and Q4_0 so such tensors map without
// re-quantizing. A row of n elements (n a multiple of 32) is n/32 blocks:
//
//   Q8_0  34 bytes: f16 scale d, then 32 × int8 q                value = d * q
//   Q4_0  18 bytes: f16 scale d, then 16 bytes of nibbles:       value = d * (nibble - 8)
//         byte j holds element j (low nibble) and element j + 16 (high nibble)
//
// dot() quantizes the activation vector once per call site (prep_x) to int8 blocks with an f32
// scale each, widened to i16, so a block's products sum with i32x4.dot_i16x8_s in integers;
// one f32 multiply per block applies both scales (as llama.cpp's Q8_0 × Q8_0 / Q4_0 × Q8_0).
// axpy() (y += a * w: the FFN's down columns) dequantizes in f32. The scalar build and the *_ref
// references use natural f32 x and dequantized weights.
//
// Prepared x (SIMD build), within prep_len(n) f32 slots:
//   bytes [0, 2n)          int16 q of every element, blocks of 32 in order
//   bytes [2n, 2n + n/8)   f32 scale of every block
import { DT_Q8_0, f16_to_f32, loadElem } from "../dtype";
import { hsum } from "./lanes";

/** A block's f16 scale as f32 through the bit trick (scales are normal or zero; 2^112 restores the exponent). */
@inline function scale(p: usize): f32 {
  const h = <u32>load<u16>(p);
  return reinterpret<f32>(((h & 0x7FFF) << 13) | ((h & 0x8000) << 16)) * reinterpret<f32>(0x77800000);
}

/** xp <- x quantized to int8 blocks (as int16) with an f32 scale per block (SIMD layout above). */
export function q_prep_x(x: usize, xp: usize, n: i32): void {
  const scales = xp + (<usize>n << 1);
  for (let b = 0; b < n >> 5; b++) {
    const src = x + (<usize>b << 7), dst = xp + (<usize>b << 6);
    let m = f32x4.abs(v128.load(src));
    for (let k: usize = 16; k < 128; k += 16) m = f32x4.max(m, f32x4.abs(v128.load(src + k)));
    const amax = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
    const d: f32 = amax / 127;
    const id = f32x4.splat(d > 0 ? 1 / d : 0);
    store<f32>(scales + (<usize>b << 2), d);
    for (let k: usize = 0; k < 4; k++) {
      const lo = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(src + (k << 5)), id)));
      const hi = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(src + (k << 5) + 16), id)));
      v128.store(dst + (k << 4), i16x8.narrow_i32x4_s(lo, hi));
    }
  }
}

/** Integer dot of a block's 32 weights (a: elements 0–15, b: 16–31, int8 lanes) with a prepared x block. */
@inline function dot32(a: v128, b: v128, q: usize): v128 {
  let s = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(a), v128.load(q));
  s = i32x4.add(s, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(a), v128.load(q, 16)));
  s = i32x4.add(s, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(b), v128.load(q, 32)));
  return i32x4.add(s, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(b), v128.load(q, 48)));
}

/** sum_i w[i] * x[i] over a quantized row against prepared x (one loop per type: the branch stays out of it). */
export function q_dot(dt: i32, w: usize, xp: usize, n: i32): f32 {
  const scales = xp + (<usize>n << 1), nb = n >> 5;
  let acc = f32x4.splat(0), p = w;
  if (dt == DT_Q8_0) {
    for (let b = 0; b < nb; b++, p += 34) {
      const s = dot32(v128.load(p + 2), v128.load(p + 18), xp + (<usize>b << 6));
      acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(s), f32x4.splat(scale(p) * load<f32>(scales + (<usize>b << 2)))));
    }
  } else {
    // Q4_0: low nibbles are elements 0–15, high nibbles 16–31, both stored + 8.
    const low = i8x16.splat(15), eight = i8x16.splat(8);
    for (let b = 0; b < nb; b++, p += 18) {
      const v = v128.load(p + 2);
      const s = dot32(i8x16.sub(v128.and(v, low), eight), i8x16.sub(i8x16.shr_u(v, 4), eight), xp + (<usize>b << 6));
      acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(s), f32x4.splat(scale(p) * load<f32>(scales + (<usize>b << 2)))));
    }
  }
  return hsum(acc);
}

/** dot32 with the prepared x block already in registers (shared by several rows). */
@inline function dot32x(a: v128, b: v128, x0: v128, x1: v128, x2: v128, x3: v128): v128 {
  let s = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(a), x0);
  s = i32x4.add(s, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(a), x1));
  s = i32x4.add(s, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(b), x2));
  return i32x4.add(s, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(b), x3));
}

/**
 * out[r] = row r . x for Q8_0 rows (stride bytes apart) against prepared x, four rows per pass:
 * each x block is loaded once for the four (short rows, such as a predictor's, are otherwise
 * dominated by per-row overhead). The same sums as q_dot, row by row.
 */
export function q8_matvec(w: usize, stride: usize, xp: usize, out: usize, rows: i32, n: i32): void {
  const scales = xp + (<usize>n << 1), nb = n >> 5;
  let r = 0;
  for (; r + 4 <= rows; r += 4) {
    let p0 = w + <usize>r * stride, p1 = p0 + stride, p2 = p1 + stride, p3 = p2 + stride;
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
    for (let b = 0; b < nb; b++, p0 += 34, p1 += 34, p2 += 34, p3 += 34) {
      const q = xp + (<usize>b << 6);
      const x0 = v128.load(q), x1 = v128.load(q, 16), x2 = v128.load(q, 32), x3 = v128.load(q, 48);
      const xs = load<f32>(scales + (<usize>b << 2));
      a0 = f32x4.add(a0, f32x4.mul(f32x4.convert_i32x4_s(dot32x(v128.load(p0 + 2), v128.load(p0 + 18), x0, x1, x2, x3)), f32x4.splat(scale(p0) * xs)));
      a1 = f32x4.add(a1, f32x4.mul(f32x4.convert_i32x4_s(dot32x(v128.load(p1 + 2), v128.load(p1 + 18), x0, x1, x2, x3)), f32x4.splat(scale(p1) * xs)));
      a2 = f32x4.add(a2, f32x4.mul(f32x4.convert_i32x4_s(dot32x(v128.load(p2 + 2), v128.load(p2 + 18), x0, x1, x2, x3)), f32x4.splat(scale(p2) * xs)));
      a3 = f32x4.add(a3, f32x4.mul(f32x4.convert_i32x4_s(dot32x(v128.load(p3 + 2), v128.load(p3 + 18), x0, x1, x2, x3)), f32x4.splat(scale(p3) * xs)));
    }
    const o = out + (<usize>r << 2);
    store<f32>(o, hsum(a0)); store<f32>(o, hsum(a1), 4); store<f32>(o, hsum(a2), 8); store<f32>(o, hsum(a3), 12);
  }
  for (; r < rows; r++) store<f32>(out + (<usize>r << 2), q_dot(DT_Q8_0, w + <usize>r * stride, xp, n));
}

/** y[0..16) += k * v (16 int8 lanes), y natural-order f32. */
@inline function axpy16(v: v128, k: v128, o: usize): void {
  const l = i16x8.extend_low_i8x16_s(v), u = i16x8.extend_high_i8x16_s(v);
  v128.store(o, f32x4.add(v128.load(o), f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(l)), k)));
  v128.store(o, f32x4.add(v128.load(o, 16), f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(l)), k)), 16);
  v128.store(o, f32x4.add(v128.load(o, 32), f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(u)), k)), 32);
  v128.store(o, f32x4.add(v128.load(o, 48), f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(u)), k)), 48);
}

/** y[i] += a * w[i] (y natural-order f32), dequantizing block by block. */
export function q_axpy(dt: i32, a: f32, w: usize, y: usize, n: i32): void {
  const nb = n >> 5;
  let p = w, q = y;
  if (dt == DT_Q8_0) {
    for (let b = 0; b < nb; b++, p += 34, q += 128) {
      const k = f32x4.splat(a * scale(p));
      axpy16(v128.load(p + 2), k, q);
      axpy16(v128.load(p + 18), k, q + 64);
    }
  } else {
    const low = i8x16.splat(15), eight = i8x16.splat(8);
    for (let b = 0; b < nb; b++, p += 18, q += 128) {
      const k = f32x4.splat(a * scale(p));
      const v = v128.load(p + 2);
      axpy16(i8x16.sub(v128.and(v, low), eight), k, q);
      axpy16(i8x16.sub(i8x16.shr_u(v, 4), eight), k, q + 64);
    }
  }
}

// ---- scalar (the no-SIMD build) and references: natural f32 x, dequantized weights ----

/** sum_i w[i] * x[i], x natural f32. */
export function q_dot_scalar(dt: i32, w: usize, x: usize, n: i32): f32 {
  const bs: usize = dt == DT_Q8_0 ? 34 : 18;
  let s: f32 = 0;
  for (let b = 0; b < n >> 5; b++) {
    const p = w + <usize>b * bs, xb = x + (<usize>b << 7);
    let t: f32 = 0;
    if (dt == DT_Q8_0) {
      for (let j = 0; j < 32; j++) t += <f32>load<i8>(p + 2 + <usize>j) * load<f32>(xb + (<usize>j << 2));
    } else {
      for (let j = 0; j < 16; j++) {
        const byte = <i32>load<u8>(p + 2 + <usize>j);
        t += <f32>((byte & 15) - 8) * load<f32>(xb + (<usize>j << 2)) + <f32>((byte >> 4) - 8) * load<f32>(xb + (<usize>(j + 16) << 2));
      }
    }
    s += t * f16_to_f32(<u32>load<u16>(p));
  }
  return s;
}

export function q_axpy_scalar(dt: i32, a: f32, w: usize, y: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const o = y + (<usize>i << 2);
    store<f32>(o, load<f32>(o) + a * loadElem(dt, w, i));
  }
}

