// The predictor's initialisation: the data-aware truncated SVD of the deciding FFN weights (the
// rank-r PCA of the pre-activations over the training inputs), and the small eigen-solvers it uses.
import { gauss, rng } from './util.js';

/** Eigen-decomposition of a symmetric (n, n) matrix (cyclic Jacobi); eigenvalues descending, vectors as columns of V. */
function symEig(A: Float64Array, n: number): { values: Float64Array; V: Float64Array } {
  const a = A.slice(), V = new Float64Array(n * n);
  for (let i = 0; i < n; i++) V[i * n + i] = 1;
  for (let sweep = 0; sweep < 30; sweep++) {
    let off = 0, diag = 0;
    for (let i = 0; i < n; i++) { diag += a[i * n + i] ** 2; for (let j = i + 1; j < n; j++) off += a[i * n + j] ** 2; }
    if (off <= 1e-22 * diag) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < n; k++) { // columns p, q
          const akp = a[k * n + p], akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq; a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) { // rows p, q
          const apk = a[p * n + k], aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk; a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = V[k * n + p], vkq = V[k * n + q];
          V[k * n + p] = c * vkp - s * vkq; V[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => a[j * n + j] - a[i * n + i]);
  const values = Float64Array.from(order, (i) => a[i * n + i]);
  const Vs = new Float64Array(n * n);
  for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) Vs[r * n + c] = V[r * n + order[c]];
  return { values, V: Vs };
}

/**
 * Top-k eigenpairs of a symmetric positive semi-definite (n, n) matrix by subspace iteration and a
 * Rayleigh–Ritz step (cheaper than symEig when k ≪ n). Returns values (all n, zeros past k) and V (n, n).
 */
function topEig(A: Float64Array, n: number, k: number): { values: Float64Array; V: Float64Array } {
  const rand = rng(12345);
  let Q = new Float64Array(n * k).map(() => gauss(rand));
  const orth = (M: Float64Array) => { // Gram–Schmidt on the k columns of (n, k)
    for (let c = 0; c < k; c++) {
      for (let p = 0; p < c; p++) { let dot = 0; for (let i = 0; i < n; i++) dot += M[i * k + c] * M[i * k + p]; for (let i = 0; i < n; i++) M[i * k + c] -= dot * M[i * k + p]; }
      let nn = 0; for (let i = 0; i < n; i++) nn += M[i * k + c] ** 2;
      nn = Math.sqrt(nn) || 1; for (let i = 0; i < n; i++) M[i * k + c] /= nn;
    }
  };
  const mul = (M: Float64Array) => { // A M
    const o = new Float64Array(n * k);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) { const a = A[i * n + j]; if (a === 0) continue; for (let c = 0; c < k; c++) o[i * k + c] += a * M[j * k + c]; }
    return o;
  };
  orth(Q);
  for (let it = 0; it < 40; it++) { Q = mul(Q); orth(Q); }
  const AQ = mul(Q), T = new Float64Array(k * k);
  for (let a = 0; a < k; a++) for (let b = 0; b < k; b++) { let s = 0; for (let i = 0; i < n; i++) s += Q[i * k + a] * AQ[i * k + b]; T[a * k + b] = s; }
  const t = symEig(T, k);
  const values = new Float64Array(n), V = new Float64Array(n * n);
  for (let c = 0; c < k; c++) {
    values[c] = t.values[c];
    for (let i = 0; i < n; i++) { let s = 0; for (let j = 0; j < k; j++) s += Q[i * k + j] * t.V[j * k + c]; V[i * n + c] = s; }
  }
  return { values, V };
}

/**
 * Initial predictor weights from the rank-r PCA of the pre-activations u = W x + bias over the
 * training inputs X (n, d): u ≈ U Uᵀ W (x − μ) + W μ + bias with U the top-r eigenvectors of
 * cov(u) = W Σ Wᵀ (found through the Cholesky factor Σ = L Lᵀ: the SVD of W L). The relu units
 * start in their linear range (offset 3σ), so z = α · (the PCA approximation of u).
 */
export function pcaInit(W: Float32Array, bias: Float32Array, X: Float32Array, n: number, d: number, ffn: number, r: number): { w1: Float32Array; b1: Float32Array; w2t: Float32Array; b2: Float32Array } {
  const m = Math.min(n, 8192), stride = n / m;
  const mu = new Float64Array(d), S = new Float64Array(d * d);
  for (let s = 0; s < m; s++) { const o = Math.floor(s * stride) * d; for (let j = 0; j < d; j++) mu[j] += X[o + j] / m; }
  const xc = new Float64Array(d);
  for (let s = 0; s < m; s++) {
    const o = Math.floor(s * stride) * d;
    for (let j = 0; j < d; j++) xc[j] = X[o + j] - mu[j];
    for (let i = 0; i < d; i++) { const xi = xc[i] / m; if (xi === 0) continue; for (let j = 0; j <= i; j++) S[i * d + j] += xi * xc[j]; }
  }
  let tr = 0;
  for (let i = 0; i < d; i++) tr += S[i * d + i];
  const L = new Float64Array(d * d); // Cholesky of Σ + ridge (lower)
  for (let i = 0; i < d; i++) S[i * d + i] += 1e-6 * tr / d + 1e-12;
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let v = S[i * d + j];
      for (let k = 0; k < j; k++) v -= L[i * d + k] * L[j * d + k];
      L[i * d + j] = i === j ? Math.sqrt(Math.max(v, 1e-30)) : v / L[j * d + j];
    }
  }
  const M = new Float64Array(ffn * d); // W L
  for (let i = 0; i < ffn; i++) {
    for (let k = 0; k < d; k++) {
      const wk = W[i * d + k];
      if (wk === 0) continue;
      for (let j = 0; j <= k; j++) M[i * d + j] += wk * L[k * d + j];
    }
  }
  const G = new Float64Array(d * d); // Mᵀ M
  for (let i = 0; i < ffn; i++) {
    const o = i * d;
    for (let a = 0; a < d; a++) { const ma = M[o + a]; if (ma === 0) continue; for (let b = a; b < d; b++) G[a * d + b] += ma * M[o + b]; }
  }
  for (let a = 0; a < d; a++) for (let b = 0; b < a; b++) G[a * d + b] = G[b * d + a];
  const { values, V } = r * 8 <= d ? topEig(G, d, r) : symEig(G, d);
  const rr = Math.min(r, d);
  const U = new Float64Array(ffn * r); // left singular vectors (ffn, r); columns past d stay 0
  const sig = new Float64Array(r);
  for (let k = 0; k < rr; k++) {
    sig[k] = Math.sqrt(Math.max(values[k], 0));
    if (sig[k] <= 0) continue;
    for (let i = 0; i < ffn; i++) { let s = 0; for (let j = 0; j < d; j++) s += M[i * d + j] * V[j * d + k]; U[i * r + k] = s / sig[k]; }
  }
  let totalVar = 0;
  for (let k = 0; k < d; k++) totalVar += G[k * d + k]; // trace = total variance of u
  const alpha = 2 / Math.sqrt(Math.max(totalVar / ffn, 1e-30));
  const w1 = new Float32Array(r * d), b1 = new Float32Array(r), w2t = new Float32Array(r * ffn), b2 = new Float32Array(ffn);
  for (let k = 0; k < r; k++) {
    let wmu = 0;
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let i = 0; i < ffn; i++) s += U[i * r + k] * W[i * d + j];
      w1[k * d + j] = s;
      wmu += s * mu[j];
    }
    b1[k] = 3 * sig[k] - wmu;
  }
  for (let i = 0; i < ffn; i++) {
    let u0 = bias[i];
    for (let j = 0; j < d; j++) u0 += W[i * d + j] * mu[j];
    for (let k = 0; k < r; k++) { w2t[k * ffn + i] = alpha * U[i * r + k]; u0 -= U[i * r + k] * 3 * sig[k]; }
    b2[i] = alpha * u0;
  }
  return { w1, b1, w2t, b2 };
}
