// Helpers the SIMD kernels share (not exported from the module: they take v128).

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
