// Helpers and constants the SIMD kernels share (not exported from the module: they take v128).

/** The sum of a vector's four lanes, in pairs (every kernel reduces its lanes this way). */
@inline export function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/**
 * c + a * b in f32 lanes. The relaxed build fuses it (one rounding where the CPU has FMA); the
 * others compute exactly add(c, mul(a, b)), so their results do not change.
 */
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(c, f32x4.mul(a, b));
}

/** c + (a * b + d * e): two products into one accumulator (relaxed: two fused steps). */
@inline export function madd2(a: v128, b: v128, d: v128, e: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(d, e, f32x4.relaxed_madd(a, b, c));
  return f32x4.add(c, f32x4.add(f32x4.mul(a, b), f32x4.mul(d, e)));
}

// Vector constants live in memory: V8 re-materialises v128.const inside loops (3 instructions each).
export const K = memory.data<u32>([
  0x8FFFE000, 0x8FFFE000, 0x8FFFE000, 0x8FFFE000, //  0: f16 sign|exponent|mantissa mask
  0xFFFF0000, 0xFFFF0000, 0xFFFF0000, 0xFFFF0000, // 16: bf16 odd-half mask
  0x00002000, 0x00002000, 0x00002000, 0x00002000, // 32: i16 pairs (2^13, 0): even half << 13
  0x20000000, 0x20000000, 0x20000000, 0x20000000, // 48: i16 pairs (0, 2^13): odd half << 13
], 16);

export const F16_SCALE: f32 = 72057594037927936.0; // 2^56: half of the 2^112 the f16 bit trick loses

/** Scalar form of the SIMD f16 trick: bits of (h as f16) * 2^-112. */
@inline export function f16_fast(h: u32): f32 {
  return reinterpret<f32>(((h & 0x7FFF) << 13) | ((h & 0x8000) << 16));
}

// Widening of 8 halves (i32 lane k = element 2k | element 2k+1 << 16) into even / odd f32 lanes.
@inline export function bf16_even(v: v128): v128 { return i32x4.shl(v, 16); }
@inline export function bf16_odd(v: v128, m: v128): v128 { return v128.and(v, m); }
@inline export function f16_even(v: v128, m: v128, ce: v128): v128 { return v128.and(i32x4.dot_i16x8_s(v, ce), m); }
@inline export function f16_odd(v: v128, m: v128, co: v128): v128 { return v128.and(i32x4.dot_i16x8_s(v, co), m); }
