// f32 vector kernels for the activations (attention, norms, residuals).
// Each SIMD kernel has a scalar *_ref beside it; tests compare them at awkward lengths.
// The SIMD versions sum in 4-16 lanes, so results differ from the refs by rounding only.
import { exp4 } from "./exp";
import { hsum, madd } from "./lanes";

/** Lane sums of a[i] * b[i] over bytes [0, nb & ~15): 16 floats per step, then 4. */
@inline function dot_body(a: usize, b: usize, nb: usize): v128 {
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  let i: usize = 0;
  for (; i + 64 <= nb; i += 64) {
    a0 = madd(v128.load(a + i), v128.load(b + i), a0);
    a1 = madd(v128.load(a + i, 16), v128.load(b + i, 16), a1);
    a2 = madd(v128.load(a + i, 32), v128.load(b + i, 32), a2);
    a3 = madd(v128.load(a + i, 48), v128.load(b + i, 48), a3);
  }
  for (; i + 16 <= nb; i += 16) a0 = madd(v128.load(a + i), v128.load(b + i), a0);
  return f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3));
}

/** a . b over n f32. */
export function vdot(a: usize, b: usize, n: i32): f32 {
  if (!ASC_FEATURE_SIMD) return vdot_ref(a, b, n);
  const nb = <usize>n << 2;
  let s = hsum(dot_body(a, b, nb));
  for (let i = nb & ~15; i < nb; i += 4) s += load<f32>(a + i) * load<f32>(b + i);
  return s;
}

/** y += a * x over n f32. */
export function vaxpy(a: f32, x: usize, y: usize, n: i32): void {
  const nb = <usize>n << 2;
  let i: usize = 0;
  if (ASC_FEATURE_SIMD) {
    const av = f32x4.splat(a);
    for (; i + 32 <= nb; i += 32) {
      v128.store(y + i, madd(v128.load(x + i), av, v128.load(y + i)));
      v128.store(y + i, madd(v128.load(x + i, 16), av, v128.load(y + i, 16)), 16);
    }
    for (; i + 16 <= nb; i += 16) v128.store(y + i, madd(v128.load(x + i), av, v128.load(y + i)));
  }
  for (; i < nb; i += 4) store<f32>(y + i, load<f32>(y + i) + a * load<f32>(x + i));
}

/**
 * y = Σ_t a[t] · row_t over count rows of n f32 `stride` bytes apart from x (attention's values):
 * the bits of zeroing y and vaxpy row after row, with y's lanes held in registers across the rows
 * (16 at a time) instead of loaded and stored for every row.
 */
export function vaxpy_rows(a: usize, x: usize, stride: usize, count: i32, y: usize, n: i32): void {
  const nb = <usize>n << 2;
  let i: usize = 0;
  if (ASC_FEATURE_SIMD) {
    for (; i + 64 <= nb; i += 64) {
      let y0 = f32x4.splat(0), y1 = y0, y2 = y0, y3 = y0;
      for (let t = 0, r = x + i; t < count; t++, r += stride) {
        const w = f32x4.splat(load<f32>(a + (<usize>t << 2)));
        y0 = madd(v128.load(r), w, y0); y1 = madd(v128.load(r, 16), w, y1);
        y2 = madd(v128.load(r, 32), w, y2); y3 = madd(v128.load(r, 48), w, y3);
      }
      v128.store(y + i, y0); v128.store(y + i, y1, 16); v128.store(y + i, y2, 32); v128.store(y + i, y3, 48);
    }
    for (; i + 16 <= nb; i += 16) {
      let y0 = f32x4.splat(0);
      for (let t = 0, r = x + i; t < count; t++, r += stride) y0 = madd(v128.load(r), f32x4.splat(load<f32>(a + (<usize>t << 2))), y0);
      v128.store(y + i, y0);
    }
  }
  for (; i < nb; i += 4) {
    let s: f32 = 0;
    for (let t = 0, r = x + i; t < count; t++, r += stride) s = s + load<f32>(a + (<usize>t << 2)) * load<f32>(r);
    store<f32>(y + i, s);
  }
}

/** y += x over n f32. */
export function vadd(x: usize, y: usize, n: i32): void {
  const nb = <usize>n << 2;
  let i: usize = 0;
  if (ASC_FEATURE_SIMD) {
    for (; i + 32 <= nb; i += 32) {
      v128.store(y + i, f32x4.add(v128.load(y + i), v128.load(x + i)));
      v128.store(y + i, f32x4.add(v128.load(y + i, 16), v128.load(x + i, 16)), 16);
    }
    for (; i + 16 <= nb; i += 16) v128.store(y + i, f32x4.add(v128.load(y + i), v128.load(x + i)));
  }
  for (; i < nb; i += 4) store<f32>(y + i, load<f32>(y + i) + load<f32>(x + i));
}

/**
 * The first index of the largest of n f32 at x (0 when none is larger than -Infinity; NaN never
 * counts): greedy decoding's choice over a vocabulary's logits, four lanes at a time (JavaScript's
 * loop took ≈ 3 % of a small model's token).
 */
export function vargmax(x: usize, n: i32): i32 {
  if (!ASC_FEATURE_SIMD) return vargmax_ref(x, n);
  // per lane: the largest so far and its first index (strict >: a later equal value loses)
  let best = f32x4.splat(-Infinity), at = i32x4.splat(0), cur = i32x4(0, 1, 2, 3);
  const four = i32x4.splat(4);
  let i = 0;
  for (; i + 4 <= n; i += 4, cur = i32x4.add(cur, four)) {
    const v = v128.load(x + (<usize>i << 2)), gt = f32x4.gt(v, best);
    best = v128.bitselect(v, best, gt); at = v128.bitselect(cur, at, gt);
  }
  // the lanes' largest and, among lanes holding it, the smallest index; then the tail in order
  let m = f32x4.extract_lane(best, 0), k = i32x4.extract_lane(at, 0);
  const m1 = f32x4.extract_lane(best, 1), k1 = i32x4.extract_lane(at, 1);
  const m2 = f32x4.extract_lane(best, 2), k2 = i32x4.extract_lane(at, 2);
  const m3 = f32x4.extract_lane(best, 3), k3 = i32x4.extract_lane(at, 3);
  if (m1 > m || (m1 == m && k1 < k)) { m = m1; k = k1; }
  if (m2 > m || (m2 == m && k2 < k)) { m = m2; k = k2; }
  if (m3 > m || (m3 == m && k3 < k)) { m = m3; k = k3; }
  for (; i < n; i++) { const v = load<f32>(x + (<usize>i << 2)); if (v > m) { m = v; k = i; } }
  return k;
}

/** x *= a over n f32. */
export function vscale(x: usize, a: f32, n: i32): void {
  const nb = <usize>n << 2;
  let i: usize = 0;
  if (ASC_FEATURE_SIMD) {
    const av = f32x4.splat(a);
    for (; i + 16 <= nb; i += 16) v128.store(x + i, f32x4.mul(v128.load(x + i), av));
  }
  for (; i < nb; i += 4) store<f32>(x + i, load<f32>(x + i) * a);
}

/** Sum of x[i] over n f32. */
@inline function vsum(x: usize, n: i32): f32 {
  const nb = <usize>n << 2;
  let i: usize = 0;
  let s: f32 = 0;
  if (ASC_FEATURE_SIMD) {
    let a0 = f32x4.splat(0), a1 = a0;
    for (; i + 32 <= nb; i += 32) { a0 = f32x4.add(a0, v128.load(x + i)); a1 = f32x4.add(a1, v128.load(x + i, 16)); }
    for (; i + 16 <= nb; i += 16) a0 = f32x4.add(a0, v128.load(x + i));
    s = hsum(f32x4.add(a0, a1));
  }
  for (; i < nb; i += 4) s += load<f32>(x + i);
  return s;
}

/** out = (x - mean) / sqrt(var + eps) * w + b.  In PyTorch: nn.LayerNorm(n, eps). */
export function layernorm(x: usize, w: usize, b: usize, out: usize, n: i32, eps: f32): void {
  if (!ASC_FEATURE_SIMD) { layernorm_ref(x, w, b, out, n, eps); return; }
  const nb = <usize>n << 2;
  const mean = vsum(x, n) / <f32>n;
  // Two-pass variance: sum (x - mean)^2 stays accurate when |mean| >> std.
  const mv = f32x4.splat(mean);
  let v0 = f32x4.splat(0), v1 = v0;
  let i: usize = 0;
  for (; i + 32 <= nb; i += 32) {
    const d0 = f32x4.sub(v128.load(x + i), mv), d1 = f32x4.sub(v128.load(x + i, 16), mv);
    v0 = f32x4.add(v0, f32x4.mul(d0, d0)); v1 = f32x4.add(v1, f32x4.mul(d1, d1));
  }
  for (; i + 16 <= nb; i += 16) { const d = f32x4.sub(v128.load(x + i), mv); v0 = f32x4.add(v0, f32x4.mul(d, d)); }
  let v = hsum(f32x4.add(v0, v1));
  for (; i < nb; i += 4) { const d = load<f32>(x + i) - mean; v += d * d; }
  const inv: f32 = 1.0 / Mathf.sqrt(v / <f32>n + eps);
  const iv = f32x4.splat(inv);
  for (i = 0; i + 16 <= nb; i += 16) {
    v128.store(out + i, f32x4.add(f32x4.mul(f32x4.mul(f32x4.sub(v128.load(x + i), mv), iv), v128.load(w + i)), v128.load(b + i)));
  }
  for (; i < nb; i += 4) store<f32>(out + i, (load<f32>(x + i) - mean) * inv * load<f32>(w + i) + load<f32>(b + i));
}

/** out = x / sqrt(mean(x^2) + eps) * w.  In PyTorch: LlamaRMSNorm. */
export function rmsnorm(x: usize, w: usize, out: usize, n: i32, eps: f32): void {
  if (!ASC_FEATURE_SIMD) { rmsnorm_ref(x, w, out, n, eps); return; }
  const nb = <usize>n << 2;
  let ss = hsum(dot_body(x, x, nb));
  let i = nb & ~15;
  for (; i < nb; i += 4) { const v = load<f32>(x + i); ss += v * v; }
  const inv: f32 = 1.0 / Mathf.sqrt(ss / <f32>n + eps);
  const iv = f32x4.splat(inv);
  for (i = 0; i + 16 <= nb; i += 16) v128.store(out + i, f32x4.mul(f32x4.mul(v128.load(x + i), iv), v128.load(w + i)));
  for (; i < nb; i += 4) store<f32>(out + i, load<f32>(x + i) * inv * load<f32>(w + i));
}


/** In-place softmax over n f32. */
export function softmax(x: usize, n: i32): void {
  if (!ASC_FEATURE_SIMD) { softmax_ref(x, n); return; }
  const nb = <usize>n << 2;
  let i: usize = 0;
  let m: f32 = -Infinity;
  if (nb >= 16) {
    let mv = v128.load(x);
    for (i = 16; i + 16 <= nb; i += 16) mv = f32x4.max(mv, v128.load(x + i));
    m = max(max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
  }
  for (; i < nb; i += 4) m = max(m, load<f32>(x + i));
  const mv = f32x4.splat(m);
  let s0 = f32x4.splat(0);
  for (i = 0; i + 16 <= nb; i += 16) {
    const e = exp4(f32x4.sub(v128.load(x + i), mv));
    v128.store(x + i, e);
    s0 = f32x4.add(s0, e);
  }
  let s = hsum(s0);
  for (; i < nb; i += 4) {
    // Same approximation as the vector lanes, so a row's values agree with each other.
    const e = f32x4.extract_lane(exp4(f32x4.splat(load<f32>(x + i) - m)), 0);
    store<f32>(x + i, e);
    s += e;
  }
  const inv: f32 = 1.0 / s;
  vscale(x, inv, n);
}

// ---- scalar references ----

/** a . b over n f32. */
export function vdot_ref(a: usize, b: usize, n: i32): f32 {
  let s: f32 = 0;
  for (let i = 0; i < n; i++) s += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return s;
}

/** y += a * x over n f32. */
export function vaxpy_ref(a: f32, x: usize, y: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const p = y + (<usize>i << 2);
    store<f32>(p, load<f32>(p) + a * load<f32>(x + (<usize>i << 2)));
  }
}

/** y += x over n f32. */
export function vadd_ref(x: usize, y: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const p = y + (<usize>i << 2);
    store<f32>(p, load<f32>(p) + load<f32>(x + (<usize>i << 2)));
  }
}

/** The first index of the largest of n f32 at x (0 when none is larger than -Infinity), one by one. */
export function vargmax_ref(x: usize, n: i32): i32 {
  let m: f32 = -Infinity, k = 0;
  for (let i = 0; i < n; i++) { const v = load<f32>(x + (<usize>i << 2)); if (v > m) { m = v; k = i; } }
  return k;
}

/** x *= a over n f32. */
export function vscale_ref(x: usize, a: f32, n: i32): void {
  for (let i = 0; i < n; i++) store<f32>(x + (<usize>i << 2), load<f32>(x + (<usize>i << 2)) * a);
}

/** out = (x - mean) / sqrt(var + eps) * w + b. */
export function layernorm_ref(x: usize, w: usize, b: usize, out: usize, n: i32, eps: f32): void {
  let mean: f32 = 0;
  for (let i = 0; i < n; i++) mean += load<f32>(x + (<usize>i << 2));
  mean /= <f32>n;
  let v: f32 = 0;
  for (let i = 0; i < n; i++) { const d = load<f32>(x + (<usize>i << 2)) - mean; v += d * d; }
  const inv: f32 = 1.0 / Mathf.sqrt(v / <f32>n + eps);
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, (load<f32>(x + o) - mean) * inv * load<f32>(w + o) + load<f32>(b + o));
  }
}

/** out = x / sqrt(mean(x^2) + eps) * w. */
export function rmsnorm_ref(x: usize, w: usize, out: usize, n: i32, eps: f32): void {
  let ss: f32 = 0;
  for (let i = 0; i < n; i++) { const v = load<f32>(x + (<usize>i << 2)); ss += v * v; }
  const inv: f32 = 1.0 / Mathf.sqrt(ss / <f32>n + eps);
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, load<f32>(x + o) * inv * load<f32>(w + o));
  }
}

/** In-place softmax over n f32. */
export function softmax_ref(x: usize, n: i32): void {
  let m: f32 = -Infinity;
  for (let i = 0; i < n; i++) m = max(m, load<f32>(x + (<usize>i << 2)));
  let s: f32 = 0;
  for (let i = 0; i < n; i++) { const e = Mathf.exp(load<f32>(x + (<usize>i << 2)) - m); store<f32>(x + (<usize>i << 2), e); s += e; }
  const inv: f32 = 1.0 / s;
  for (let i = 0; i < n; i++) store<f32>(x + (<usize>i << 2), load<f32>(x + (<usize>i << 2)) * inv);
}
