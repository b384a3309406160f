// Helpers the SIMD kernels share (not exported from the module: they take v128).

/** The sum of a vector's four lanes, in pairs (every kernel reduces its lanes this way). */
@inline export function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}
