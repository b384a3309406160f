// Predictor training kernels (a separate wasm module: build/train.wasm).
//
// The sparsity predictor of one FFN layer (src/predictor/train.ts drives the training):
//   a = W1 · x + b1      h = relu(a)      z = W2 · h + b2      neuron i predicted active when z_i > t
// trained with positive-weighted binary cross-entropy on z against the true activity bits, Adam.
//
// Shapes, all f32, row-major, one mini-batch of B tokens:
//   X   (B, d)       FFN inputs of the batch (gathered rows)
//   W1  (r, d)       b1 (r)
//   H   (B, r)       relu(a); H > 0 doubles as the relu mask in the backward pass
//   W2T (r, ffn)     W2 transposed, so every inner loop runs along ffn (contiguous)
//   b2  (ffn)
//   Z   (B, ffn)     logits; bce_grad overwrites them with dL/dz (G)
//   Y   (B, yb)      activity bits: row of yb = ceil(ffn/8) bytes, bit j of byte k = neuron 8k+j
//
// Every SIMD kernel has a scalar *_ref beside it with the same contract; test/predictor.test.js
// checks each pair at awkward sizes. Pointers are byte offsets; no kernel allocates.
import { alloc, memory_bytes } from "../mem";
import { exp4 } from "../kernels/exp";
import { hsum } from "../kernels/lanes";
export { alloc, memory_bytes };

/** dot(a, b) over n f32 (SIMD, two accumulators, scalar tail). */
@inline function vdot(a: usize, b: usize, n: i32): f32 {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0);
  let j = 0;
  for (; j + 8 <= n; j += 8) {
    const o = <usize>j << 2;
    s0 = f32x4.add(s0, f32x4.mul(v128.load(a + o), v128.load(b + o)));
    s1 = f32x4.add(s1, f32x4.mul(v128.load(a + o, 16), v128.load(b + o, 16)));
  }
  for (; j + 4 <= n; j += 4) {
    const o = <usize>j << 2;
    s0 = f32x4.add(s0, f32x4.mul(v128.load(a + o), v128.load(b + o)));
  }
  let s = hsum(f32x4.add(s0, s1));
  for (; j < n; j++) s += load<f32>(a + (<usize>j << 2)) * load<f32>(b + (<usize>j << 2));
  return s;
}

/** y[0..n) += c * x[0..n) (SIMD, scalar tail). */
@inline function vaxpy(y: usize, c: f32, x: usize, n: i32): void {
  const cv = f32x4.splat(c);
  let j = 0;
  for (; j + 8 <= n; j += 8) {
    const o = <usize>j << 2;
    v128.store(y + o, f32x4.add(v128.load(y + o), f32x4.mul(cv, v128.load(x + o))));
    v128.store(y + o, f32x4.add(v128.load(y + o, 16), f32x4.mul(cv, v128.load(x + o, 16))), 16);
  }
  for (; j + 4 <= n; j += 4) {
    const o = <usize>j << 2;
    v128.store(y + o, f32x4.add(v128.load(y + o), f32x4.mul(cv, v128.load(x + o))));
  }
  for (; j < n; j++) {
    const o = <usize>j << 2;
    store<f32>(y + o, load<f32>(y + o) + c * load<f32>(x + o));
  }
}

// ---- data movement ----

/** out row b <- src row idx[b] (rows of `rowBytes` bytes), b < B. */
export function gather(src: usize, idx: usize, B: i32, rowBytes: i32, out: usize): void {
  for (let b = 0; b < B; b++) {
    const i = load<i32>(idx + (<usize>b << 2));
    memory.copy(out + <usize>b * rowBytes, src + <usize>i * rowBytes, rowBytes);
  }
}

/** n f32 at p <- 0. */
export function zero(p: usize, n: i32): void {
  memory.fill(p, 0, <usize>n << 2);
}

// ---- forward ----

/** H (B, r) = relu(X (B, d) · W1ᵀ + b1). */
export function linear_relu(X: usize, B: i32, d: i32, W1: usize, b1: usize, r: i32, H: usize): void {
  for (let b = 0; b < B; b++) {
    const x = X + (<usize>b * d << 2), h = H + (<usize>b * r << 2);
    for (let k = 0; k < r; k++) {
      const a = load<f32>(b1 + (<usize>k << 2)) + vdot(W1 + (<usize>k * d << 2), x, d);
      store<f32>(h + (<usize>k << 2), max<f32>(a, 0));
    }
  }
}

export function linear_relu_ref(X: usize, B: i32, d: i32, W1: usize, b1: usize, r: i32, H: usize): void {
  for (let b = 0; b < B; b++) {
    for (let k = 0; k < r; k++) {
      let a = load<f32>(b1 + (<usize>k << 2));
      for (let j = 0; j < d; j++) a += load<f32>(W1 + ((<usize>k * d + j) << 2)) * load<f32>(X + ((<usize>b * d + j) << 2));
      store<f32>(H + ((<usize>b * r + k) << 2), a > 0 ? a : 0);
    }
  }
}

/** Z (B, ffn) = H (B, r) · W2T (r, ffn) + b2. */
export function linear_out(H: usize, B: i32, r: i32, W2T: usize, b2: usize, ffn: i32, Z: usize): void {
  for (let b = 0; b < B; b++) {
    const z = Z + (<usize>b * ffn << 2), h = H + (<usize>b * r << 2);
    memory.copy(z, b2, <usize>ffn << 2);
    for (let k = 0; k < r; k++) {
      const hk = load<f32>(h + (<usize>k << 2));
      if (hk != 0) vaxpy(z, hk, W2T + (<usize>k * ffn << 2), ffn);
    }
  }
}

export function linear_out_ref(H: usize, B: i32, r: i32, W2T: usize, b2: usize, ffn: i32, Z: usize): void {
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < ffn; i++) {
      let z = load<f32>(b2 + (<usize>i << 2));
      for (let k = 0; k < r; k++) z += load<f32>(H + ((<usize>b * r + k) << 2)) * load<f32>(W2T + ((<usize>k * ffn + i) << 2));
      store<f32>(Z + ((<usize>b * ffn + i) << 2), z);
    }
  }
}

// ---- loss ----
//
// Weighted BCE on logits, w = pos_weight, y in {0, 1}, σ = sigmoid:
//   L(z, y)  = w·y·softplus(-z) + (1-y)·softplus(z),   softplus(u) = max(u, 0) + log1p(exp(-|u|))
//   dL/dz    = w·y·(σ(z) - 1) + (1-y)·σ(z)
// bce_grad writes scale · dL/dz over Z and returns Σ L (unscaled).


// log1p(t) for t in [0, 1]: 2·atanh(s), s = t / (2 + t) ≤ 1/3, odd series to s^11 (|err| < 2e-7).
@inline function vlog1p01(t: v128): v128 {
  const s = f32x4.div(t, f32x4.add(t, f32x4.splat(2.0)));
  const s2 = f32x4.mul(s, s);
  let p = f32x4.splat(<f32>(1.0 / 11.0));
  p = f32x4.add(f32x4.mul(p, s2), f32x4.splat(<f32>(1.0 / 9.0)));
  p = f32x4.add(f32x4.mul(p, s2), f32x4.splat(<f32>(1.0 / 7.0)));
  p = f32x4.add(f32x4.mul(p, s2), f32x4.splat(<f32>(1.0 / 5.0)));
  p = f32x4.add(f32x4.mul(p, s2), f32x4.splat(<f32>(1.0 / 3.0)));
  p = f32x4.add(f32x4.mul(p, s2), f32x4.splat(1.0));
  return f32x4.mul(f32x4.mul(p, s), f32x4.splat(2.0));
}

const BITS = memory.data<u32>([1, 2, 4, 8], 16);

/** Z (B, ffn) <- scale · dL/dz against bits Y (B, yb); returns Σ L over the batch. */
export function bce_grad(Z: usize, Y: usize, B: i32, ffn: i32, yb: i32, posWeight: f32, scale: f32): f32 {
  const wv = f32x4.splat(posWeight), sv = f32x4.splat(scale), one = f32x4.splat(1.0), zv0 = f32x4.splat(0);
  const bitv = v128.load(BITS);
  let lossv = f32x4.splat(0);
  let loss: f32 = 0;
  for (let b = 0; b < B; b++) {
    const z = Z + (<usize>b * ffn << 2), y = Y + <usize>b * yb;
    let i = 0;
    for (; i + 4 <= ffn; i += 4) {
      const nib = (<u32>load<u8>(y + (<usize>i >> 3)) >> (<u32>i & 4)) & 15;
      const ym = i32x4.ne(v128.and(i32x4.splat(nib), bitv), i32x4.splat(0)); // lanes all-ones where active
      const zz = v128.load(z + (<usize>i << 2));
      const t = exp4(f32x4.neg(f32x4.abs(zz)));                            // exp(-|z|)
      const inv = f32x4.div(one, f32x4.add(one, t));
      const sig = v128.bitselect(inv, f32x4.mul(t, inv), f32x4.ge(zz, zv0)); // σ(z)
      const l1p = vlog1p01(t);
      // softplus(z) = max(z,0) + l1p, softplus(-z) = max(-z,0) + l1p
      const spPos = f32x4.add(f32x4.max(zz, zv0), l1p);
      const spNeg = f32x4.add(f32x4.max(f32x4.neg(zz), zv0), l1p);
      lossv = f32x4.add(lossv, v128.bitselect(f32x4.mul(wv, spNeg), spPos, ym));
      const g = v128.bitselect(f32x4.mul(wv, f32x4.sub(sig, one)), sig, ym);
      v128.store(z + (<usize>i << 2), f32x4.mul(g, sv));
    }
    for (; i < ffn; i++) {
      const yi = (<u32>load<u8>(y + (<usize>i >> 3)) >> (<u32>i & 7)) & 1;
      const p = z + (<usize>i << 2);
      const zz = load<f32>(p);
      const t = Mathf.exp(-Mathf.abs(zz));
      const sig: f32 = zz >= 0 ? 1 / (1 + t) : t / (1 + t);
      const l1p = Mathf.log1p(t);
      if (yi) { loss += posWeight * (max<f32>(-zz, 0) + l1p); store<f32>(p, scale * posWeight * (sig - 1)); }
      else { loss += max<f32>(zz, 0) + l1p; store<f32>(p, scale * sig); }
    }
  }
  return loss + hsum(lossv);
}

function softplus(u: f64): f64 { return max<f64>(u, 0) + Math.log1p(Math.exp(-Math.abs(u))); }

export function bce_grad_ref(Z: usize, Y: usize, B: i32, ffn: i32, yb: i32, posWeight: f32, scale: f32): f32 {
  let loss: f64 = 0;
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < ffn; i++) {
      const yi = (<u32>load<u8>(Y + <usize>b * yb + (<usize>i >> 3)) >> (<u32>i & 7)) & 1;
      const p = Z + ((<usize>b * ffn + i) << 2);
      const zz = <f64>load<f32>(p);
      const sig = 1 / (1 + Math.exp(-zz));
      if (yi) { loss += posWeight * softplus(-zz); store<f32>(p, <f32>(scale * posWeight * (sig - 1))); }
      else { loss += softplus(zz); store<f32>(p, <f32>(scale * sig)); }
    }
  }
  return <f32>loss;
}

// ---- backward (gradients accumulate: the caller zeroes them per batch) ----

/** dW2T (r, ffn) += Hᵀ · G;  db2 (ffn) += Σ_b G[b]. */
export function grad_out(H: usize, G: usize, B: i32, r: i32, ffn: i32, dW2T: usize, db2: usize): void {
  for (let b = 0; b < B; b++) {
    const g = G + (<usize>b * ffn << 2), h = H + (<usize>b * r << 2);
    vaxpy(db2, 1, g, ffn);
    for (let k = 0; k < r; k++) {
      const hk = load<f32>(h + (<usize>k << 2));
      if (hk != 0) vaxpy(dW2T + (<usize>k * ffn << 2), hk, g, ffn);
    }
  }
}

export function grad_out_ref(H: usize, G: usize, B: i32, r: i32, ffn: i32, dW2T: usize, db2: usize): void {
  for (let i = 0; i < ffn; i++) {
    let sb: f32 = 0;
    for (let b = 0; b < B; b++) sb += load<f32>(G + ((<usize>b * ffn + i) << 2));
    store<f32>(db2 + (<usize>i << 2), load<f32>(db2 + (<usize>i << 2)) + sb);
    for (let k = 0; k < r; k++) {
      let s: f32 = 0;
      for (let b = 0; b < B; b++) s += load<f32>(H + ((<usize>b * r + k) << 2)) * load<f32>(G + ((<usize>b * ffn + i) << 2));
      const p = dW2T + ((<usize>k * ffn + i) << 2);
      store<f32>(p, load<f32>(p) + s);
    }
  }
}

/** dA (B, r) = (G · W2) ⊙ [H > 0]  (the gradient at the relu input). */
export function grad_hidden(G: usize, W2T: usize, H: usize, B: i32, r: i32, ffn: i32, dA: usize): void {
  for (let b = 0; b < B; b++) {
    const g = G + (<usize>b * ffn << 2);
    for (let k = 0; k < r; k++) {
      const o = (<usize>b * r + k) << 2;
      store<f32>(dA + o, load<f32>(H + o) > 0 ? vdot(g, W2T + (<usize>k * ffn << 2), ffn) : 0);
    }
  }
}

export function grad_hidden_ref(G: usize, W2T: usize, H: usize, B: i32, r: i32, ffn: i32, dA: usize): void {
  for (let b = 0; b < B; b++) {
    for (let k = 0; k < r; k++) {
      let s: f32 = 0;
      for (let i = 0; i < ffn; i++) s += load<f32>(G + ((<usize>b * ffn + i) << 2)) * load<f32>(W2T + ((<usize>k * ffn + i) << 2));
      const o = (<usize>b * r + k) << 2;
      store<f32>(dA + o, load<f32>(H + o) > 0 ? s : 0);
    }
  }
}

/** dW1 (r, d) += dAᵀ · X;  db1 (r) += Σ_b dA[b]. */
export function grad_in(X: usize, dA: usize, B: i32, d: i32, r: i32, dW1: usize, db1: usize): void {
  for (let b = 0; b < B; b++) {
    const x = X + (<usize>b * d << 2);
    for (let k = 0; k < r; k++) {
      const a = load<f32>(dA + ((<usize>b * r + k) << 2));
      if (a == 0) continue;
      store<f32>(db1 + (<usize>k << 2), load<f32>(db1 + (<usize>k << 2)) + a);
      vaxpy(dW1 + (<usize>k * d << 2), a, x, d);
    }
  }
}

export function grad_in_ref(X: usize, dA: usize, B: i32, d: i32, r: i32, dW1: usize, db1: usize): void {
  for (let k = 0; k < r; k++) {
    let sb: f32 = 0;
    for (let b = 0; b < B; b++) sb += load<f32>(dA + ((<usize>b * r + k) << 2));
    store<f32>(db1 + (<usize>k << 2), load<f32>(db1 + (<usize>k << 2)) + sb);
    for (let j = 0; j < d; j++) {
      let s: f32 = 0;
      for (let b = 0; b < B; b++) s += load<f32>(dA + ((<usize>b * r + k) << 2)) * load<f32>(X + ((<usize>b * d + j) << 2));
      const p = dW1 + ((<usize>k * d + j) << 2);
      store<f32>(p, load<f32>(p) + s);
    }
  }
}

// ---- Adam ----

/**
 * Adam step on n parameters P with gradients Gr and moments M, V:
 *   m = β1 m + (1-β1) g;  v = β2 v + (1-β2) g²;  p -= lr · (m / c1) / (sqrt(v / c2) + eps)
 * where c1 = 1 - β1^t, c2 = 1 - β2^t (bias corrections, from the caller).
 */
export function adam(P: usize, Gr: usize, M: usize, V: usize, n: i32, lr: f32, b1: f32, b2: f32, eps: f32, c1: f32, c2: f32): void {
  const b1v = f32x4.splat(b1), b2v = f32x4.splat(b2), a1 = f32x4.splat(1 - b1), a2 = f32x4.splat(1 - b2);
  const stepv = f32x4.splat(lr / c1), ic2 = f32x4.splat(1 / c2), epsv = f32x4.splat(eps);
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const o = <usize>j << 2;
    const g = v128.load(Gr + o);
    const m = f32x4.add(f32x4.mul(b1v, v128.load(M + o)), f32x4.mul(a1, g));
    const v = f32x4.add(f32x4.mul(b2v, v128.load(V + o)), f32x4.mul(a2, f32x4.mul(g, g)));
    v128.store(M + o, m);
    v128.store(V + o, v);
    const den = f32x4.add(f32x4.sqrt(f32x4.mul(v, ic2)), epsv);
    v128.store(P + o, f32x4.sub(v128.load(P + o), f32x4.div(f32x4.mul(stepv, m), den)));
  }
  for (; j < n; j++) adam_one(P, Gr, M, V, j, lr, b1, b2, eps, c1, c2);
}

@inline function adam_one(P: usize, Gr: usize, M: usize, V: usize, j: i32, lr: f32, b1: f32, b2: f32, eps: f32, c1: f32, c2: f32): void {
  const o = <usize>j << 2;
  const g = load<f32>(Gr + o);
  const m = b1 * load<f32>(M + o) + (1 - b1) * g;
  const v = b2 * load<f32>(V + o) + (1 - b2) * g * g;
  store<f32>(M + o, m);
  store<f32>(V + o, v);
  store<f32>(P + o, load<f32>(P + o) - (lr / c1) * m / (Mathf.sqrt(v * (1 / c2)) + eps));
}

export function adam_ref(P: usize, Gr: usize, M: usize, V: usize, n: i32, lr: f32, b1: f32, b2: f32, eps: f32, c1: f32, c2: f32): void {
  for (let j = 0; j < n; j++) adam_one(P, Gr, M, V, j, lr, b1, b2, eps, c1, c2);
}
