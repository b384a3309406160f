// Predictors that ship with a model rather than being trained here: PowerInfer GGUF files
// (blk.N.fc1 / fc2) and TurboSparse / Bamboo checkpoints (model.layers.N.mlp.predictor.fc1 / fc2).
// Both compute PowerInfer's ReluMLP, z = fc2 · relu(fc1 · x) (no biases; convert-hf-to-powerinfer-gguf.py),
// and a neuron is wanted when z passes powerinfer.sparse_threshold (default 0) — the engine's
// predictor with b1 = b2 = 0 and that threshold. Every layer must have one, of one rank, shaped
// for the model and finite.
import type { Predictor } from './types.js';

export interface ShippedLayer { w1: Float32Array; w2: Float32Array; b1?: Float32Array; b2?: Float32Array }

/** The Predictor of shipped per-layer weights (w1: rank × hidden, w2: ffn × rank, row-major). */
export function shippedPredictor(layers: ShippedLayer[], dims: { rank: number; hidden: number; ffn: number }, threshold: number,
  fingerprint: string, where: string): Predictor {
  const { rank, hidden, ffn } = dims;
  const bad = (why: string): never => { throw new Error(`${where}: predictor tensors: ${why}`); };
  if (!Number.isFinite(threshold)) bad('the threshold is not a number');
  if (!(rank > 0)) bad('the rank is not positive');
  const out = layers.map((L, l) => {
    if (L.w1.length !== rank * hidden) bad(`layer ${l}: fc1 holds ${L.w1.length} values, expected ${rank} × ${hidden}`);
    if (L.w2.length !== ffn * rank) bad(`layer ${l}: fc2 holds ${L.w2.length} values, expected ${ffn} × ${rank}`);
    const b1 = L.b1 ?? new Float32Array(rank), b2 = L.b2 ?? new Float32Array(ffn);
    if (b1.length !== rank || b2.length !== ffn) bad(`layer ${l}: a bias has the wrong length`);
    for (const v of [L.w1, L.w2, b1, b2]) if (!v.every(Number.isFinite)) bad(`layer ${l} holds values that are not finite`);
    return { w1: L.w1, b1, w2: L.w2, b2, threshold, recall: 0, ratio: 0 };
  });
  // No measured recall or set sizes travel with the weights: the one rung says 0 (unknown).
  const rung = { rank, layers: out.map((L) => ({ threshold, recall: 0, ratio: 0, predicted_share: 0, true_share: 0, val_recall: 0, val_ratio: 0, b2: L.b2 })) };
  return {
    rank, hidden, ffn, nLayers: layers.length, fingerprint, layers: out, rungs: [rung],
    report: { rank, train_tokens: 0, heldout_tokens: 0, seconds: 0, layers: [] },
  };
}
