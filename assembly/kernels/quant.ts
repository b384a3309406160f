// Block-quantized weights, laid out as GGUF's Q8_0 and Q4_0 so such tensors map without
// re-quantizing. A row of n elements (n a multiple of 32) is n/32 blocks:
//
//   Q8_0  34 bytes: f16 scale d, then 32 × int8 q                value = d * q
//   Q4_0  18 bytes: f16 scale d, then 16 bytes of nibbles:       value = d * (nibble - 8)
//         byte j holds element j (low nibble) and element j + 16 (high nibble)
//
// dot() quantizes the activation vector once per call site (prep_x) to int8 blocks with an f32
// scale each, so a block's products sum exactly in integers and one f32 multiply per block
// applies both scales (as llama.cpp's Q8_0 × Q8_0 / Q4_0 × Q8_0). The float work is shared:
// four integer block sums are reduced into one vector and their four weight scales widened from
// f16 together (matvec: the same block of four rows; dot: four blocks of one row). axpy() (y += a * w)
// dequantizes in f32; lists of down columns sum in integers instead (quant-down.ts). The scalar
// build and the *_ref references use natural f32 x and dequantized weights.
//
// Integer products: the SIMD build widens weights to i16 (Q4_0 in place: each i16 lane of the
// stored bytes holds four elements, which shifts and a mask separate, no shuffles) against x
// prepared as i16 in the matching order, and sums with i32x4.dot_i16x8_s. The relaxed-SIMD
// build uses i32x4.relaxed_dot_i8x16_i7x16_add_s (one
// instruction with AVX-VNNI or Arm's sdot), whose second operand must lie in [0, 127] for the
// result to be the same everywhere: Q4_0 passes its stored nibbles (0..15) there and x as the
// signed operand; Q8_0 weights are signed, so x is split into max(x, 0) and max(-x, 0) and the
// two dots subtract. Both forms give every block the exact integer sum, so both builds return
// the same bits. Q4_0's "- 8" moves out of the loop: sum (n - 8) x = sum n x - 8 sum x, with
// 8 sum x per block prepared with x.
//
// Prepared x (SIMD builds), within prep_len(n) f32 slots:
//   bytes [0, 2n)            64 bytes per block of 32:
//                              SIMD build, Q8_0: int16 q of its 32 elements
//                              SIMD build, Q4_0: the same in the order q4_block widens
//                                weights: even 0–14, odd 1–15, even 16–30, odd 17–31
//                              relaxed, Q8_0: int8 max(q, 0) of the 32, then int8 max(-q, 0)
//                              relaxed, Q4_0: int8 q of the 32 (the other 32 bytes unused)
//   bytes [2n, 2n + n/8)     f32 scale of every block
//   bytes [2n + n/8, 2n + n/4)  Q4_0: i32 8 * sum q of every block
import { DT_Q8_0, f16_to_f32, loadElem } from "../dtype";
import { hsum, madd } from "./lanes";

// Vector constants live in memory: V8 re-materialises v128.const inside loops.
const QK = memory.data<u32>([
  0x8FFFE000, 0x8FFFE000, 0x8FFFE000, 0x8FFFE000, //  0: f16 sign|exponent|mantissa after << 13
  0x77800000, 0x77800000, 0x77800000, 0x77800000, // 16: 2^112 (f32): restores the f16 exponent
  0x0F0F0F0F, 0x0F0F0F0F, 0x0F0F0F0F, 0x0F0F0F0F, // 32: low nibbles (relaxed: of each byte)
  0x000F000F, 0x000F000F, 0x000F000F, 0x000F000F, // 48: low nibbles of each i16 (SIMD)
], 16);
/** Q4_0's nibble mask as q4_block takes it. */
const LOW: usize = ASC_FEATURE_RELAXED_SIMD ? 32 : 48;

/** A block's f16 scale as f32 through the bit trick (scales are normal or zero; 2^112 restores the exponent). */
@inline export function scale(p: usize): f32 {
  const h = <u32>load<u16>(p);
  return reinterpret<f32>(((h & 0x7FFF) << 13) | ((h & 0x8000) << 16)) * reinterpret<f32>(0x77800000);
}

/** The f16 scales of four blocks `bs` bytes apart from p, as f32 lanes (scale() for each). */
@inline function scales4(p: usize, bs: usize): v128 {
  return scalesAt(p, p + bs, p + 2 * bs, p + 3 * bs);
}

/** The f16 scales of the blocks at p0..p3, as f32 lanes (scale() for each). */
@inline function scalesAt(p0: usize, p1: usize, p2: usize, p3: usize): v128 {
  let h = i16x8.splat(0);
  h = v128.load16_lane(p0, h, 0);
  h = v128.load16_lane(p1, h, 1);
  h = v128.load16_lane(p2, h, 2);
  h = v128.load16_lane(p3, h, 3);
  return halves(i32x4.extend_low_i16x8_s(h));
}

/** Lanes of f16 scale bits (sign-extended to i32) as f32, by scale()'s bit trick. */
@inline export function halves(h: v128): v128 {
  // << 13: sign at bit 31, exponent and mantissa at 13..27; the mask clears 28..30
  return f32x4.mul(v128.and(i32x4.shl(h, 13), v128.load(QK)), v128.load(QK, 16));
}

/** The sum of the four i32 lanes. */
@inline function isum(s: v128): i32 {
  return i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1) + i32x4.extract_lane(s, 2) + i32x4.extract_lane(s, 3);
}

/** Lane k = the sum of the lanes of s_k. */
@inline function sum4(s0: v128, s1: v128, s2: v128, s3: v128): v128 {
  const t0 = i32x4.add(v128.shuffle<i32>(s0, s1, 0, 4, 1, 5), v128.shuffle<i32>(s0, s1, 2, 6, 3, 7));
  const t1 = i32x4.add(v128.shuffle<i32>(s2, s3, 0, 4, 1, 5), v128.shuffle<i32>(s2, s3, 2, 6, 3, 7));
  return i32x4.add(v128.shuffle<i32>(t0, t1, 0, 1, 4, 5), v128.shuffle<i32>(t0, t1, 2, 3, 6, 7));
}

/** xp <- x quantized to int8 blocks with an f32 scale per block (the layout above, per build and dt). */
export function q_prep_x(dt: i32, x: usize, xp: usize, n: i32): void {
  const scales = xp + (<usize>n << 1), sums = scales + (<usize>n >> 3);
  for (let b = 0; b < n >> 5; b++) {
    const src = x + (<usize>b << 7), dst = xp + (<usize>b << 6);
    let m = f32x4.abs(v128.load(src));
    for (let k: usize = 16; k < 128; k += 16) m = f32x4.max(m, f32x4.abs(v128.load(src + k)));
    const amax = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
    const d: f32 = amax / 127;
    const id = f32x4.splat(d > 0 ? 1 / d : 0);
    store<f32>(scales + (<usize>b << 2), d);
    let sum = i32x4.splat(0);
    for (let k: usize = 0; k < 4; k += 2) {
      // two groups of 8: 16 elements as i16, in order
      const a = i16x8.narrow_i32x4_s(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(src + (k << 5)), id))),
                                     i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(src + (k << 5) + 16), id))));
      const c = i16x8.narrow_i32x4_s(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(src + (k << 5) + 32), id))),
                                     i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(src + (k << 5) + 48), id))));
      sum = i32x4.add(sum, i32x4.add(i32x4.extadd_pairwise_i16x8_s(a), i32x4.extadd_pairwise_i16x8_s(c)));
      if (!ASC_FEATURE_RELAXED_SIMD) {
        if (dt == DT_Q8_0) {
          v128.store(dst + (k << 4), a);
          v128.store(dst + (k << 4), c, 16);
        } else {
          // the order q4_block widens weights in: even elements, then odd
          v128.store(dst + (k << 4), v128.shuffle<i16>(a, c, 0, 2, 4, 6, 8, 10, 12, 14));
          v128.store(dst + (k << 4), v128.shuffle<i16>(a, c, 1, 3, 5, 7, 9, 11, 13, 15), 16);
        }
      } else {
        const q = i8x16.narrow_i16x8_s(a, c); // |q| <= 127
        if (dt == DT_Q8_0) {
          const z = i8x16.splat(0);
          v128.store(dst + (k << 3), i8x16.max_s(q, z));
          v128.store(dst + (k << 3), i8x16.max_s(i8x16.neg(q), z), 32);
        } else {
          v128.store(dst + (k << 3), q);
        }
      }
    }
    if (dt != DT_Q8_0) store<i32>(sums + (<usize>b << 2), (i32x4.extract_lane(sum, 0) + i32x4.extract_lane(sum, 1) + i32x4.extract_lane(sum, 2) + i32x4.extract_lane(sum, 3)) << 3);
  }
}

/** Integer dot of a Q8_0 block's 32 weights (a: elements 0–15, b: 16–31) with its prepared x block: lanes sum to it. */
@inline function q8_block(a: v128, b: v128, q: usize): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    const z = i32x4.splat(0);
    const pos = i32x4.relaxed_dot_i8x16_i7x16_add_s(b, v128.load(q, 16), i32x4.relaxed_dot_i8x16_i7x16_add_s(a, v128.load(q), z));
    const neg = i32x4.relaxed_dot_i8x16_i7x16_add_s(b, v128.load(q, 48), i32x4.relaxed_dot_i8x16_i7x16_add_s(a, v128.load(q, 32), z));
    return i32x4.sub(pos, neg);
  }
  // (widening each i16 lane's two bytes in place with shifts measured 4 % slower here)
  let s = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(a), v128.load(q));
  s = i32x4.add(s, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(a), v128.load(q, 16)));
  s = i32x4.add(s, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(b), v128.load(q, 32)));
  return i32x4.add(s, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(b), v128.load(q, 48)));
}

/** Integer dot of a Q4_0 block's stored nibbles (v: byte j = element j | element j+16 << 4) with x: lanes sum to sum nibble * q. */
@inline function q4_block(v: v128, q: usize, low: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    const lo = v128.and(v, low), hi = v128.and(i16x8.shr_u(v, 4), low);
    return i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(q, 16), hi, i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(q), lo, i32x4.splat(0)));
  }
  // i16 lane m holds elements 2m (bits 0-3), 2m + 16 (4-7), 2m + 1 (8-11), 2m + 17 (12-15):
  // shifts and one mask widen each in place, no shuffles
  let s = i32x4.dot_i16x8_s(v128.and(v, low), v128.load(q));
  s = i32x4.add(s, i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(v, 8), low), v128.load(q, 16)));
  s = i32x4.add(s, i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(v, 4), low), v128.load(q, 32)));
  return i32x4.add(s, i32x4.dot_i16x8_s(i16x8.shr_u(v, 12), v128.load(q, 48)));
}

/**
 * sum_i w[i] * x[i] over a quantized row against prepared x. Four blocks per step: their integer
 * sums (exact) into one vector, times the four weight scales times the four x scales, added into
 * one accumulator (lane k: blocks 4j + k); the blocks past a multiple of 4 go one by one (each
 * block's integer sum whole: the builds split it into lanes differently). One
 * loop per type keeps the branch out of it. The row's bits never depend on its neighbours.
 */
export function q_dot(dt: i32, w: usize, xp: usize, n: i32): f32 {
  const scales = xp + (<usize>n << 1), nb = n >> 5, nb4 = nb & ~3;
  let acc = f32x4.splat(0), p = w;
  let tail: f32 = 0, b = 0;
  if (dt == DT_Q8_0) {
    for (; b < nb4; b += 4, p += 136) {
      const q = xp + (<usize>b << 6);
      const s = sum4(q8_block(v128.load(p, 2), v128.load(p, 18), q), q8_block(v128.load(p, 36), v128.load(p, 52), q + 64),
                     q8_block(v128.load(p, 70), v128.load(p, 86), q + 128), q8_block(v128.load(p, 104), v128.load(p, 120), q + 192));
      acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(s), f32x4.mul(scales4(p, 34), v128.load(scales + (<usize>b << 2)))));
    }
    for (; b < nb; b++, p += 34) {
      tail += <f32>isum(q8_block(v128.load(p, 2), v128.load(p, 18), xp + (<usize>b << 6))) * (scale(p) * load<f32>(scales + (<usize>b << 2)));
    }
  } else {
    const low = v128.load(QK, LOW), sums = scales + (<usize>n >> 3);
    for (; b < nb4; b += 4, p += 72) {
      const q = xp + (<usize>b << 6);
      const s = sum4(q4_block(v128.load(p, 2), q, low), q4_block(v128.load(p, 20), q + 64, low),
                     q4_block(v128.load(p, 38), q + 128, low), q4_block(v128.load(p, 56), q + 192, low));
      const t = i32x4.sub(s, v128.load(sums + (<usize>b << 2)));
      acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(t), f32x4.mul(scales4(p, 18), v128.load(scales + (<usize>b << 2)))));
    }
    for (; b < nb; b++, p += 18) {
      const s = isum(q4_block(v128.load(p, 2), xp + (<usize>b << 6), low)) - load<i32>(sums + (<usize>b << 2));
      tail += <f32>s * (scale(p) * load<f32>(scales + (<usize>b << 2)));
    }
  }
  return hsum(acc) + tail;
}

/**
 * out[r] = row r . x for quantized rows `stride` bytes apart against prepared x. Four rows per
 * pass share each x block: their four block sums reduce into one vector (lane k: row r + k),
 * scaled by the four rows' scales of that block, into one accumulator, so the float work is
 * per block for four rows. Rows past a multiple of 4 go through q_dot. A row's bits depend
 * only on whether it is in a run of four (the parts of matvec_part split whole runs).
 */
export function q_matvec(dt: i32, w: usize, stride: usize, xp: usize, out: usize, rows: i32, n: i32): void {
  const scales = xp + (<usize>n << 1), nb = n >> 5;
  let r = 0;
  if (dt == DT_Q8_0) {
    for (; r + 4 <= rows; r += 4) {
      let p0 = w + <usize>r * stride, q = xp, xs = scales;
      let acc = f32x4.splat(0);
      for (let b = 0; b < nb; b++, p0 += 34, q += 64, xs += 4) {
        const p1 = p0 + stride, p2 = p1 + stride, p3 = p2 + stride;
        const s = sum4(q8_block(v128.load(p0, 2), v128.load(p0, 18), q), q8_block(v128.load(p1, 2), v128.load(p1, 18), q),
                       q8_block(v128.load(p2, 2), v128.load(p2, 18), q), q8_block(v128.load(p3, 2), v128.load(p3, 18), q));
        acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(s), f32x4.mul(scales4(p0, stride), f32x4.splat(load<f32>(xs)))));
      }
      v128.store(out + (<usize>r << 2), acc);
    }
  } else {
    const low = v128.load(QK, LOW), sums = scales + (<usize>n >> 3);
    for (; r + 4 <= rows; r += 4) {
      let p0 = w + <usize>r * stride, q = xp, xs = scales, cs = sums;
      let acc = f32x4.splat(0);
      for (let b = 0; b < nb; b++, p0 += 18, q += 64, xs += 4, cs += 4) {
        const p1 = p0 + stride, p2 = p1 + stride, p3 = p2 + stride;
        const s = sum4(q4_block(v128.load(p0, 2), q, low), q4_block(v128.load(p1, 2), q, low),
                       q4_block(v128.load(p2, 2), q, low), q4_block(v128.load(p3, 2), q, low));
        const t = i32x4.sub(s, i32x4.splat(load<i32>(cs)));
        acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(t), f32x4.mul(scales4(p0, stride), f32x4.splat(load<f32>(xs)))));
      }
      v128.store(out + (<usize>r << 2), acc);
    }
  }
  for (; r < rows; r++) store<f32>(out + (<usize>r << 2), q_dot(dt, w + <usize>r * stride, xp, n));
}

/**
 * out[0..4) = the rows at r0..r3 (anywhere: the neurons of a list) . x, each exactly as q_matvec
 * computes a row of a run of four: the four block sums of a block reduce into one vector, times
 * the four rows' scales of that block, into one accumulator. Four rows share each x block.
 */
export function q_dot4(dt: i32, r0: usize, r1: usize, r2: usize, r3: usize, xp: usize, n: i32, out: usize): void {
  const scales = xp + (<usize>n << 1), nb = n >> 5;
  let q = xp, xs = scales, acc = f32x4.splat(0);
  if (dt == DT_Q8_0) {
    for (let b = 0; b < nb; b++, r0 += 34, r1 += 34, r2 += 34, r3 += 34, q += 64, xs += 4) {
      const s = sum4(q8_block(v128.load(r0, 2), v128.load(r0, 18), q), q8_block(v128.load(r1, 2), v128.load(r1, 18), q),
                     q8_block(v128.load(r2, 2), v128.load(r2, 18), q), q8_block(v128.load(r3, 2), v128.load(r3, 18), q));
      acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(s), f32x4.mul(scalesAt(r0, r1, r2, r3), f32x4.splat(load<f32>(xs)))));
    }
  } else {
    const low = v128.load(QK, LOW);
    let cs = scales + (<usize>n >> 3);
    for (let b = 0; b < nb; b++, r0 += 18, r1 += 18, r2 += 18, r3 += 18, q += 64, xs += 4, cs += 4) {
      const s = sum4(q4_block(v128.load(r0, 2), q, low), q4_block(v128.load(r1, 2), q, low),
                     q4_block(v128.load(r2, 2), q, low), q4_block(v128.load(r3, 2), q, low));
      const t = i32x4.sub(s, i32x4.splat(load<i32>(cs)));
      acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(t), f32x4.mul(scalesAt(r0, r1, r2, r3), f32x4.splat(load<f32>(xs)))));
    }
  }
  v128.store(out, acc);
}

/** y[0..16) += k * v (16 int8 lanes), y natural-order f32. */
@inline function axpy16(v: v128, k: v128, o: usize): void {
  const l = i16x8.extend_low_i8x16_s(v), u = i16x8.extend_high_i8x16_s(v);
  v128.store(o, madd(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(l)), k, v128.load(o)));
  v128.store(o, madd(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(l)), k, v128.load(o, 16)), 16);
  v128.store(o, madd(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(u)), k, v128.load(o, 32)), 32);
  v128.store(o, madd(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(u)), k, v128.load(o, 48)), 48);
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

