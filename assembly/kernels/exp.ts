// e^x on four f32 lanes, shared by softmax (kernels/vec.ts) and predictor training (train.ts).

/**
 * e^d for 4 lanes with d <= 0 (softmax after subtracting the max); ~2 ulp.
 * Cephes expf: d = k ln2 + r, |r| <= ln2/2, e^r by a degree-7 polynomial, 2^k via the exponent bits.
 * Lanes below -87.3 (where e^d leaves the normal range) and -Inf give 0; NaN gives 0.
 */
@inline export function exp4(d: v128): v128 {
  const live = f32x4.ge(d, f32x4.splat(-87.3));
  d = f32x4.max(f32x4.min(d, f32x4.splat(88.0)), f32x4.splat(-87.3));
  const k = f32x4.nearest(f32x4.mul(d, f32x4.splat(1.44269504088896341)));
  let r = f32x4.sub(d, f32x4.mul(k, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(k, f32x4.splat(-2.12194440e-4)));
  let p = f32x4.splat(1.9875691500e-4);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.3981999507e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(8.3334519073e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(4.1665795894e-2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.6666665459e-1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(5.0000001201e-1));
  p = f32x4.add(f32x4.add(f32x4.mul(f32x4.mul(p, r), r), r), f32x4.splat(1.0));
  const e = i32x4.add(p, i32x4.shl(i32x4.trunc_sat_f32x4_s(k), 23));
  return v128.and(e, live);
}
