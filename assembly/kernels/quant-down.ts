// The FFN's down columns stored as Q8_0 / Q4_0 (y += Σ_j c_j · w_j over the neurons that fire),
// summed in integers eight columns at a time, as llama.cpp sums a quantized row against int8
// activations: widening every int8 weight to f32 (q_axpy) costs about twice the instructions.
//
// Per block b of 32 outputs and a group of eight columns j (in list order):
//   e_j = c_j · d_jb           the column's coefficient times its block scale (f32)
//   E   = max_j |e_j| / 32767  one scale for the group's block
//   ê_j = nearest(e_j · 32767 / max_j |e_j|), an i16
//   y_i += f32(Σ_j ê_j · q_ji) · E       the sum exact in i32 (|Σ| ≤ 8 · 32767 · 128 < 2^31)
// so each term carries a relative error of at most 2^-16 of the group's largest, far below the
// weights' own rounding (the relaxed build: 2^-8, below). The SIMD form pairs two columns per i32
// lane (bytes interleaved, widened to i16, i32x4.dot_i16x8_s against (ê_j, ê_j+1)), eight
// accumulators of four outputs each. The
// scalar form below computes the same integers and the same two f32 roundings per element, so
// every build and any slicing of y give the same bits. A group's block whose coefficients are all
// zero adds nothing (y keeps its bits); a NaN coefficient or scale makes that block's y NaN.
import { DT_Q8_0 } from "../dtype";
import { scale, halves } from "./quant";

// Coefficient steps of each group's largest (the relaxed build's: RSTEPS, below).
const STEPS: f32 = 32767;

const QD = memory.data<u32>([
  0x0F0F0F0F, 0x0F0F0F0F, 0x0F0F0F0F, 0x0F0F0F0F, //  0: low nibbles
  0x08080808, 0x08080808, 0x08080808, 0x08080808, // 16: Q4_0's offset
], 16);

/** The eight coefficients e0 (columns 0–3), e1 (4–7) times inv, rounded to integers as i16 lanes. */
@inline function steps8(e0: v128, e1: v128, inv: v128): v128 {
  return i16x8.narrow_i32x4_s(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(e0, inv))),
                              i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(e1, inv))));
}

/** y[q, q + 32) += the block's eight accumulators of four outputs each, times E. */
@inline function addY(q: usize, E: v128, a0: v128, a1: v128, a2: v128, a3: v128, a4: v128, a5: v128, a6: v128, a7: v128): void {
  v128.store(q, f32x4.add(v128.load(q), f32x4.mul(f32x4.convert_i32x4_s(a0), E)));
  v128.store(q, f32x4.add(v128.load(q, 16), f32x4.mul(f32x4.convert_i32x4_s(a1), E)), 16);
  v128.store(q, f32x4.add(v128.load(q, 32), f32x4.mul(f32x4.convert_i32x4_s(a2), E)), 32);
  v128.store(q, f32x4.add(v128.load(q, 48), f32x4.mul(f32x4.convert_i32x4_s(a3), E)), 48);
  v128.store(q, f32x4.add(v128.load(q, 64), f32x4.mul(f32x4.convert_i32x4_s(a4), E)), 64);
  v128.store(q, f32x4.add(v128.load(q, 80), f32x4.mul(f32x4.convert_i32x4_s(a5), E)), 80);
  v128.store(q, f32x4.add(v128.load(q, 96), f32x4.mul(f32x4.convert_i32x4_s(a6), E)), 96);
  v128.store(q, f32x4.add(v128.load(q, 112), f32x4.mul(f32x4.convert_i32x4_s(a7), E)), 112);
}

// Two columns' 16 signed bytes a, b (the same 16 outputs) interleaved: ilo outputs 0–7, ihi 8–15,
// byte pairs (a_i, b_i); widened to i16, one i32x4.dot_i16x8_s with (ê_a, ê_b) gives a_i ê_a + b_i ê_b.
@inline function ilo(a: v128, b: v128): v128 { return v128.shuffle<i8>(a, b, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23); }
@inline function ihi(a: v128, b: v128): v128 { return v128.shuffle<i8>(a, b, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31); }
@inline function dl(acc: v128, i: v128, p: v128): v128 { return i32x4.add(acc, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(i), p)); }
@inline function dh(acc: v128, i: v128, p: v128): v128 { return i32x4.add(acc, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(i), p)); }

/**
 * y[0, n) (natural f32; n a multiple of 32) += Σ_j c_j · w_j for eight quantized columns w_j at
 * r_j (padding columns: c = 0 and any valid address), as the header describes.
 */
export function q_axpy8(dt: i32, r0: usize, r1: usize, r2: usize, r3: usize, r4: usize, r5: usize, r6: usize, r7: usize,
  c0: f32, c1: f32, c2: f32, c3: f32, c4: f32, c5: f32, c6: f32, c7: f32, y: usize, n: i32): void {
  if (!ASC_FEATURE_SIMD) q_axpy8_scalar(dt, r0, r1, r2, r3, r4, r5, r6, r7, c0, c1, c2, c3, c4, c5, c6, c7, y, n);
  else if (dt == DT_Q8_0) axpy8<i8>(r0, r1, r2, r3, r4, r5, r6, r7, c0, c1, c2, c3, c4, c5, c6, c7, y, n);
  else axpy8<u8>(r0, r1, r2, r3, r4, r5, r6, r7, c0, c1, c2, c3, c4, c5, c6, c7, y, n);
}

/** A column's 16 weights of the block at p as signed bytes: elements 0–15 (hi: 16–31). T = i8: Q8_0, u8: Q4_0. */
@inline function wlo<T>(p: usize, low: v128, eight: v128): v128 {
  if (isSigned<T>()) return v128.load(p, 2);
  return i8x16.sub(v128.and(v128.load(p, 2), low), eight);
}
@inline function whi<T>(p: usize, low: v128, eight: v128): v128 {
  if (isSigned<T>()) return v128.load(p, 18);
  return i8x16.sub(v128.and(i16x8.shr_u(v128.load(p, 2), 4), low), eight);
}

// @ts-ignore: decorator
@inline function axpy8<T>(r0: usize, r1: usize, r2: usize, r3: usize, r4: usize, r5: usize, r6: usize, r7: usize,
  c0: f32, c1: f32, c2: f32, c3: f32, c4: f32, c5: f32, c6: f32, c7: f32, y: usize, n: i32): void {
  const bs: usize = isSigned<T>() ? 34 : 18, nb = n >> 5;
  let lo = f32x4.splat(c0), hi = f32x4.splat(c4);
  lo = f32x4.replace_lane(lo, 1, c1); lo = f32x4.replace_lane(lo, 2, c2); lo = f32x4.replace_lane(lo, 3, c3);
  hi = f32x4.replace_lane(hi, 1, c5); hi = f32x4.replace_lane(hi, 2, c6); hi = f32x4.replace_lane(hi, 3, c7);
  const low = v128.load(QD), eight = v128.load(QD, 16);
  for (let b = 0, o: usize = 0, q = y; b < nb; b++, o += bs, q += 128) {
    let h = i16x8.splat(0);
    h = v128.load16_lane(r0 + o, h, 0); h = v128.load16_lane(r1 + o, h, 1);
    h = v128.load16_lane(r2 + o, h, 2); h = v128.load16_lane(r3 + o, h, 3);
    h = v128.load16_lane(r4 + o, h, 4); h = v128.load16_lane(r5 + o, h, 5);
    h = v128.load16_lane(r6 + o, h, 6); h = v128.load16_lane(r7 + o, h, 7);
    const e0 = f32x4.mul(halves(i32x4.extend_low_i16x8_s(h)), lo), e1 = f32x4.mul(halves(i32x4.extend_high_i16x8_s(h)), hi);
    let m = f32x4.max(f32x4.abs(e0), f32x4.abs(e1));
    m = f32x4.max(m, v128.shuffle<f32>(m, m, 2, 3, 0, 1));
    const amax = max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1));
    if (amax == 0) continue;
    if (ASC_FEATURE_RELAXED_SIMD) { block7<T>(r0 + o, r1 + o, r2 + o, r3 + o, r4 + o, r5 + o, r6 + o, r7 + o, e0, e1, amax, q, low); continue; }
    const e = steps8(e0, e1, f32x4.splat(STEPS / amax));
    const z = i32x4.splat(0);
    let a0 = z, a1 = z, a2 = z, a3 = z, a4 = z, a5 = z, a6 = z, a7 = z, i: v128;
    // columns (0, 1), (2, 3), (4, 5), (6, 7): outputs 0–15 from wlo, 16–31 from whi
    let p = v128.shuffle<i32>(e, e, 0, 0, 0, 0);
    let a = wlo<T>(r0 + o, low, eight), c = wlo<T>(r1 + o, low, eight);
    i = ilo(a, c); a0 = dl(a0, i, p); a1 = dh(a1, i, p); i = ihi(a, c); a2 = dl(a2, i, p); a3 = dh(a3, i, p);
    a = whi<T>(r0 + o, low, eight); c = whi<T>(r1 + o, low, eight);
    i = ilo(a, c); a4 = dl(a4, i, p); a5 = dh(a5, i, p); i = ihi(a, c); a6 = dl(a6, i, p); a7 = dh(a7, i, p);
    p = v128.shuffle<i32>(e, e, 1, 1, 1, 1);
    a = wlo<T>(r2 + o, low, eight); c = wlo<T>(r3 + o, low, eight);
    i = ilo(a, c); a0 = dl(a0, i, p); a1 = dh(a1, i, p); i = ihi(a, c); a2 = dl(a2, i, p); a3 = dh(a3, i, p);
    a = whi<T>(r2 + o, low, eight); c = whi<T>(r3 + o, low, eight);
    i = ilo(a, c); a4 = dl(a4, i, p); a5 = dh(a5, i, p); i = ihi(a, c); a6 = dl(a6, i, p); a7 = dh(a7, i, p);
    p = v128.shuffle<i32>(e, e, 2, 2, 2, 2);
    a = wlo<T>(r4 + o, low, eight); c = wlo<T>(r5 + o, low, eight);
    i = ilo(a, c); a0 = dl(a0, i, p); a1 = dh(a1, i, p); i = ihi(a, c); a2 = dl(a2, i, p); a3 = dh(a3, i, p);
    a = whi<T>(r4 + o, low, eight); c = whi<T>(r5 + o, low, eight);
    i = ilo(a, c); a4 = dl(a4, i, p); a5 = dh(a5, i, p); i = ihi(a, c); a6 = dl(a6, i, p); a7 = dh(a7, i, p);
    p = v128.shuffle<i32>(e, e, 3, 3, 3, 3);
    a = wlo<T>(r6 + o, low, eight); c = wlo<T>(r7 + o, low, eight);
    i = ilo(a, c); a0 = dl(a0, i, p); a1 = dh(a1, i, p); i = ihi(a, c); a2 = dl(a2, i, p); a3 = dh(a3, i, p);
    a = whi<T>(r6 + o, low, eight); c = whi<T>(r7 + o, low, eight);
    i = ilo(a, c); a4 = dl(a4, i, p); a5 = dh(a5, i, p); i = ihi(a, c); a6 = dl(a6, i, p); a7 = dh(a7, i, p);
    addY(q, f32x4.splat(amax / STEPS), a0, a1, a2, a3, a4, a5, a6, a7);
  }
}

// The relaxed build sums in steps of max / 127 instead (RSTEPS): the coefficients as i8, four
// columns' bytes per i32 lane (a 4×4 byte transpose: two rounds of interleaving) and one
// i32x4.relaxed_dot_i8x16_i7x16_add_s per four outputs of four columns, whose unsigned operand
// (in [0, 127], so that the result is the same everywhere) is Q4_0's nibbles, or for Q8_0's
// signed weights the coefficients' magnitudes: positive and negative coefficients in two dots.
// A term then carries up to 2^-8 of its group's largest (as llama.cpp's int8 activations do),
// and the relaxed build's sums differ from the other builds' in their last bits. (Splitting each
// i16 coefficient into two bytes kept the bits but doubled the dots: no faster than the i16 path.)
const RSTEPS: f32 = 127;
@inline function ilo16(a: v128, b: v128): v128 { return v128.shuffle<i16>(a, b, 0, 8, 1, 9, 2, 10, 3, 11); }
@inline function ihi16(a: v128, b: v128): v128 { return v128.shuffle<i16>(a, b, 4, 12, 5, 13, 6, 14, 7, 15); }
/** The weights of 16 outputs of the column block at p (relaxed: Q4_0 as nibbles 0..15, the offset taken off at the end). */
@inline function nlo<T>(p: usize, low: v128): v128 { return isSigned<T>() ? v128.load(p, 2) : v128.and(v128.load(p, 2), low); }
@inline function nhi<T>(p: usize, low: v128): v128 { return isSigned<T>() ? v128.load(p, 18) : v128.and(i16x8.shr_u(v128.load(p, 2), 4), low); }
/** acc + the dot of transposed weights t (i32 lane: one output, four columns) with the coefficients: Q4_0 one dot, Q8_0 two. */
@inline function rdot<T>(t: v128, pos: v128, neg: v128, acc: v128): v128 {
  if (isSigned<T>()) return i32x4.relaxed_dot_i8x16_i7x16_add_s(t, pos, i32x4.sub(acc, i32x4.relaxed_dot_i8x16_i7x16_add_s(t, neg, i32x4.splat(0))));
  return i32x4.relaxed_dot_i8x16_i7x16_add_s(pos, t, acc);
}

/** One block of the eight columns at p0..p7 (relaxed build): y[q, q + 32) += their sum in steps of amax / 127. */
// @ts-ignore: decorator
@inline function block7<T>(p0: usize, p1: usize, p2: usize, p3: usize, p4: usize, p5: usize, p6: usize, p7: usize,
                           e0: v128, e1: v128, amax: f32, q: usize, low: v128): void {
  const w = steps8(e0, e1, f32x4.splat(RSTEPS / amax));
  const k = i8x16.narrow_i16x8_s(w, w);   // bytes 0-7: the eight coefficients (|k| <= 127)
  const z = i8x16.splat(0);
  const pos = isSigned<T>() ? i8x16.max_s(k, z) : k, neg = isSigned<T>() ? i8x16.max_s(i8x16.neg(k), z) : z;
  const pa = v128.shuffle<i32>(pos, pos, 0, 0, 0, 0), pb = v128.shuffle<i32>(pos, pos, 1, 1, 1, 1);
  const na = v128.shuffle<i32>(neg, neg, 0, 0, 0, 0), nb = v128.shuffle<i32>(neg, neg, 1, 1, 1, 1);
  let a0 = i32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  // four columns' 16 bytes → byte pairs of outputs 0–7 (ilo) or 8–15 (ihi), then words: i32 lanes of four outputs
  let u = ilo(nlo<T>(p0, low), nlo<T>(p1, low)), v = ilo(nlo<T>(p2, low), nlo<T>(p3, low));
  a0 = rdot<T>(ilo16(u, v), pa, na, a0); a1 = rdot<T>(ihi16(u, v), pa, na, a1);
  u = ihi(nlo<T>(p0, low), nlo<T>(p1, low)); v = ihi(nlo<T>(p2, low), nlo<T>(p3, low));
  a2 = rdot<T>(ilo16(u, v), pa, na, a2); a3 = rdot<T>(ihi16(u, v), pa, na, a3);
  u = ilo(nlo<T>(p4, low), nlo<T>(p5, low)); v = ilo(nlo<T>(p6, low), nlo<T>(p7, low));
  a0 = rdot<T>(ilo16(u, v), pb, nb, a0); a1 = rdot<T>(ihi16(u, v), pb, nb, a1);
  u = ihi(nlo<T>(p4, low), nlo<T>(p5, low)); v = ihi(nlo<T>(p6, low), nlo<T>(p7, low));
  a2 = rdot<T>(ilo16(u, v), pb, nb, a2); a3 = rdot<T>(ihi16(u, v), pb, nb, a3);
  u = ilo(nhi<T>(p0, low), nhi<T>(p1, low)); v = ilo(nhi<T>(p2, low), nhi<T>(p3, low));
  a4 = rdot<T>(ilo16(u, v), pa, na, a4); a5 = rdot<T>(ihi16(u, v), pa, na, a5);
  u = ihi(nhi<T>(p0, low), nhi<T>(p1, low)); v = ihi(nhi<T>(p2, low), nhi<T>(p3, low));
  a6 = rdot<T>(ilo16(u, v), pa, na, a6); a7 = rdot<T>(ihi16(u, v), pa, na, a7);
  u = ilo(nhi<T>(p4, low), nhi<T>(p5, low)); v = ilo(nhi<T>(p6, low), nhi<T>(p7, low));
  a4 = rdot<T>(ilo16(u, v), pb, nb, a4); a5 = rdot<T>(ihi16(u, v), pb, nb, a5);
  u = ihi(nhi<T>(p4, low), nhi<T>(p5, low)); v = ihi(nhi<T>(p6, low), nhi<T>(p7, low));
  a6 = rdot<T>(ilo16(u, v), pb, nb, a6); a7 = rdot<T>(ihi16(u, v), pb, nb, a7);
  if (!isSigned<T>()) {
    // the nibbles' offset: Σ_j k_j (n - 8) = Σ_j k_j n - 8 Σ_j k_j
    const s = i32x4.dot_i16x8_s(w, i16x8.splat(8));
    const t = i32x4.add(s, v128.shuffle<i32>(s, s, 2, 3, 0, 1));
    const off = i32x4.add(t, v128.shuffle<i32>(t, t, 1, 0, 3, 2));
    a0 = i32x4.sub(a0, off); a1 = i32x4.sub(a1, off); a2 = i32x4.sub(a2, off); a3 = i32x4.sub(a3, off);
    a4 = i32x4.sub(a4, off); a5 = i32x4.sub(a5, off); a6 = i32x4.sub(a6, off); a7 = i32x4.sub(a7, off);
  }
  addY(q, f32x4.splat(amax / RSTEPS), a0, a1, a2, a3, a4, a5, a6, a7);
}

/** Column j's weight at element i of the block at p, as an integer. */
@inline function qAt(q4: bool, p: usize, i: i32): i32 {
  if (!q4) return <i32>load<i8>(p + 2 + <usize>i);
  const byte = <i32>load<u8>(p + 2 + <usize>(i & 15));
  return (i < 16 ? byte & 15 : byte >> 4) - 8;
}

/** q_axpy8 one element at a time: the same integers, the same f32 roundings (the reference and the scalar build). */
export function q_axpy8_scalar(dt: i32, r0: usize, r1: usize, r2: usize, r3: usize, r4: usize, r5: usize, r6: usize, r7: usize,
  c0: f32, c1: f32, c2: f32, c3: f32, c4: f32, c5: f32, c6: f32, c7: f32, y: usize, n: i32): void {
  const q4 = dt != DT_Q8_0, bs: usize = q4 ? 18 : 34;
  for (let b = 0; b < n >> 5; b++) {
    const o = <usize>b * bs;
    const p0 = r0 + o, p1 = r1 + o, p2 = r2 + o, p3 = r3 + o, p4 = r4 + o, p5 = r5 + o, p6 = r6 + o, p7 = r7 + o;
    const e0 = c0 * scale(p0), e1 = c1 * scale(p1), e2 = c2 * scale(p2), e3 = c3 * scale(p3);
    const e4 = c4 * scale(p4), e5 = c5 * scale(p5), e6 = c6 * scale(p6), e7 = c7 * scale(p7);
    const amax = max(max(max(abs(e0), abs(e1)), max(abs(e2), abs(e3))), max(max(abs(e4), abs(e5)), max(abs(e6), abs(e7))));
    if (amax == 0) continue;
    const steps = ASC_FEATURE_RELAXED_SIMD ? RSTEPS : STEPS, inv = steps / amax, E = amax / steps;
    const k0 = iq(e0, inv), k1 = iq(e1, inv), k2 = iq(e2, inv), k3 = iq(e3, inv);
    const k4 = iq(e4, inv), k5 = iq(e5, inv), k6 = iq(e6, inv), k7 = iq(e7, inv);
    for (let i = 0; i < 32; i++) {
      const s = k0 * qAt(q4, p0, i) + k1 * qAt(q4, p1, i) + k2 * qAt(q4, p2, i) + k3 * qAt(q4, p3, i)
              + k4 * qAt(q4, p4, i) + k5 * qAt(q4, p5, i) + k6 * qAt(q4, p6, i) + k7 * qAt(q4, p7, i);
      const a = y + (<usize>((b << 5) + i) << 2);
      store<f32>(a, load<f32>(a) + <f32>s * E);
    }
  }
}

/** nearest(e · inv) as an i16 (saturated as i16x8.narrow_i32x4_s does; NaN → 0 as trunc_sat). */
@inline function iq(e: f32, inv: f32): i32 {
  const v = nearest(e * inv);
  return v != v ? 0 : <i32>min<f32>(max<f32>(v, -32768), 32767);
}
