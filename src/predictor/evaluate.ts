// Measuring a predictor: the scalar reference of its inference (evaluatePredictor), and the
// threshold calibration and counts that training runs on kernel logits.
import type { Predictor, PredictorLayerEval, PredictorSamples } from './types.js';
import { bitRowBytes } from './util.js';

/**
 * Threshold t from validation logits: the highest with share ≥ target of the active entries at z > t,
 * lowered further while the predicted set stays within budget × the active set.
 */
export function calibrate(z: Float32Array, bits: Uint8Array, n: number, ffn: number, target: number, budget: number): number {
  const yb = bitRowBytes(ffn);
  const pos: number[] = [];
  for (let t = 0; t < n; t++) for (let i = 0; i < ffn; i++) if ((bits[t * yb + (i >> 3)] >> (i & 7)) & 1) pos.push(z[t * ffn + i]);
  if (!pos.length) return 0;
  const zs = Float64Array.from(pos).sort();
  const miss = Math.floor((1 - target) * zs.length); // positives allowed at or below the threshold
  const thr = miss === 0 ? zs[0] - 1e-3 : zs[miss] > zs[miss - 1] ? (zs[miss] + zs[miss - 1]) / 2 : zs[miss] - 1e-6 * Math.max(1, Math.abs(zs[miss]));
  // slack under the ratio budget buys recall: lower the threshold until ratio × |active| neurons are predicted
  const k = Math.floor(budget * zs.length);
  if (!(k < z.length)) return thr;
  const all = Float32Array.from(z).sort(); // ascending; the k-th largest sits at length - 1 - k
  return Math.min(thr, all[all.length - 1 - k]);
}

/** Recall, ratio and counts of the logits z (n, ffn) at threshold thr against the activity bits. */
export function countLayer(z: Float32Array, bits: Uint8Array, n: number, ffn: number, thr: number): { recall: number; ratio: number; tp: number; pred: number; act: number } {
  const yb = bitRowBytes(ffn);
  let tp = 0, pred = 0, act = 0;
  for (let t = 0; t < n; t++) {
    for (let i = 0; i < ffn; i++) {
      const y = (bits[t * yb + (i >> 3)] >> (i & 7)) & 1, p = z[t * ffn + i] > thr;
      act += y; pred += +p; tp += +(p && y === 1);
    }
  }
  return { recall: act ? tp / act : 1, ratio: act ? pred / act : 0, tp, pred, act };
}

/**
 * Scalar reference of the predictor's inference over samples; per layer: recall (share of truly
 * active neurons predicted, over all positions), ratio (predicted / truly active), the shares of
 * active and predicted neurons. `threshold`, when given, overrides every layer's own.
 */
export function evaluatePredictor(p: Predictor, samples: PredictorSamples, threshold?: number): PredictorLayerEval[] {
  const { hidden: d, ffn, rank: r } = p;
  if (samples.hidden !== d || samples.ffn !== ffn || samples.x.length < p.nLayers || samples.active.length < p.nLayers) {
    throw new Error(`samples (hidden ${samples.hidden}, ffn ${samples.ffn}, ${samples.x.length} layers) do not match the predictor (hidden ${d}, ffn ${ffn}, ${p.nLayers} layers)`);
  }
  const yb = bitRowBytes(ffn), h = new Float64Array(r);
  return p.layers.map((L, l) => {
    const thr = threshold ?? L.threshold;
    const X = samples.x[l], bits = samples.active[l];
    let tp = 0, pred = 0, act = 0;
    for (let t = 0; t < samples.n; t++) {
      const xo = t * d;
      for (let k = 0; k < r; k++) {
        let a = L.b1[k];
        for (let j = 0, wo = k * d; j < d; j++) a += L.w1[wo + j] * X[xo + j];
        h[k] = a > 0 ? a : 0;
      }
      for (let i = 0; i < ffn; i++) {
        let z = L.b2[i];
        for (let k = 0, wo = i * r; k < r; k++) z += L.w2[wo + k] * h[k];
        const y = (bits[t * yb + (i >> 3)] >> (i & 7)) & 1, pr = z > thr;
        act += y; pred += +pr; tp += +(pr && y === 1);
      }
    }
    const cells = Math.max(1, samples.n * ffn);
    return { layer: l, recall: act ? tp / act : 1, ratio: act ? pred / act : 0, true_share: act / cells, predicted_share: pred / cells, threshold: thr };
  });
}
