// The neuron predictor some checkpoints carry beside their weights: TurboSparse / Bamboo store
// model.layers.N.mlp.predictor.fc1.weight (rank × hidden) and fc2.weight (ffn × rank), PowerInfer's
// ReluMLP (predictor/shipped.ts). Converted, it becomes the image's predictor, so sparse mode
// runs with no training.
import { widenToF32 } from './dtype.js';
import type { HFCheckpoint } from './hf.js';
import type { Predictor } from '../predictor/types.js';
import { shippedPredictor } from '../predictor/shipped.js';
import { LIMITS } from './check.js';

/** The checkpoint's shipped predictor, or undefined when it has none. */
export function checkpointPredictor(ckpt: HFCheckpoint, fingerprint: string): Predictor | undefined {
  const cfg = ckpt.config, where = ckpt.dir;
  const names = ckpt.tensors.layers.map((L) => L.up.name.replace(/up_proj\.weight$/, 'predictor.'));
  const has = (name: string) => { try { ckpt.tensor(name); return true; } catch { return false; } };
  if (!ckpt.tensors.layers[0].up.name.endsWith('up_proj.weight') || !has(`${names[0]}fc1.weight`)) return undefined;
  let rank = 0;
  const layers = names.map((base, l) => {
    for (const part of ['fc1', 'fc2']) if (!has(`${base}${part}.weight`)) throw new Error(`${where}: layer ${l} has no ${base}${part}.weight (a shipped predictor needs fc1 and fc2 in every layer)`);
    const fc1 = ckpt.tensor(`${base}fc1.weight`), fc2 = ckpt.tensor(`${base}fc2.weight`);
    rank ||= fc1.shape[0];
    if (!(rank >= 1 && rank <= LIMITS.dim)) throw new Error(`${where}: ${base}fc1.weight has shape [${fc1.shape}]: a predictor rank from 1 to ${LIMITS.dim} is expected`);
    const shape = (t: { shape: number[] }, want: number[], n: string) => {
      if (t.shape.length !== 2 || t.shape[0] !== want[0] || t.shape[1] !== want[1]) throw new Error(`${where}: ${n} has shape [${t.shape}], expected [${want}]`);
    };
    shape(fc1, [rank, cfg.hidden], `${base}fc1.weight`);
    shape(fc2, [cfg.ffn, rank], `${base}fc2.weight`);
    return { w1: widenToF32(ckpt.readTensor(fc1.name), fc1.dtype), w2: widenToF32(ckpt.readTensor(fc2.name), fc2.dtype) };
  });
  return shippedPredictor(layers, { rank, hidden: cfg.hidden, ffn: cfg.ffn }, 0, fingerprint, where);
}
