// f32 vector kernels for the activations (attention, norms, residuals).
// Each SIMD kernel has a scalar *_ref beside it; tests compare them at awkward lengths.

/** a . b over n f32. */
export function vdot(a: usize, b: usize, n: i32): f32 {
  let s: f32 = 0;
  for (let i = 0; i < n; i++) s += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return s;
}

/** y += a * x over n f32. */
export function vaxpy(a: f32, x: usize, y: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const p = y + (<usize>i << 2);
    store<f32>(p, load<f32>(p) + a * load<f32>(x + (<usize>i << 2)));
  }
}

/** y += x over n f32. */
export function vadd(x: usize, y: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const p = y + (<usize>i << 2);
    store<f32>(p, load<f32>(p) + load<f32>(x + (<usize>i << 2)));
  }
}

/** x *= a over n f32. */
export function vscale(x: usize, a: f32, n: i32): void {
  for (let i = 0; i < n; i++) store<f32>(x + (<usize>i << 2), load<f32>(x + (<usize>i << 2)) * a);
}

/** out = (x - mean) / sqrt(var + eps) * w + b.  In PyTorch: nn.LayerNorm(n, eps). */
export function layernorm(x: usize, w: usize, b: usize, out: usize, n: i32, eps: f32): void {
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

/** out = x / sqrt(mean(x^2) + eps) * w.  In PyTorch: LlamaRMSNorm. */
export function rmsnorm(x: usize, w: usize, out: usize, n: i32, eps: f32): void {
  let ss: f32 = 0;
  for (let i = 0; i < n; i++) { const v = load<f32>(x + (<usize>i << 2)); ss += v * v; }
  const inv: f32 = 1.0 / Mathf.sqrt(ss / <f32>n + eps);
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, load<f32>(x + o) * inv * load<f32>(w + o));
  }
}

/** In-place softmax over n f32. */
export function softmax(x: usize, n: i32): void {
  let m: f32 = -Infinity;
  for (let i = 0; i < n; i++) m = max(m, load<f32>(x + (<usize>i << 2)));
  let s: f32 = 0;
  for (let i = 0; i < n; i++) { const e = Mathf.exp(load<f32>(x + (<usize>i << 2)) - m); store<f32>(x + (<usize>i << 2), e); s += e; }
  const inv: f32 = 1.0 / s;
  for (let i = 0; i < n; i++) store<f32>(x + (<usize>i << 2), load<f32>(x + (<usize>i << 2)) * inv);
}
