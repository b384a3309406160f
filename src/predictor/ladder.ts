// The nested-rank ladder ("one predictor, any budget"): a predictor trained at rank R carries rungs
// r' < R (types.ts, PredictorRung); truncated to its first r' components with the rung's b2 and
// threshold it is the rank-r' predictor. Here: truncation, the engine bytes at a rank, and the
// choice of the rank to run under a memory budget.
import { rowBytes } from '../format/dtype.js';
import { predictorBytes } from './format.js';
import type { EnginePredictor, Predictor, PredictorLayer, PredictorRung } from './types.js';

/** Ranks trainPredictor gives rungs for by default (those below the full rank, which is always the last). */
export const DEFAULT_RUNGS = [16, 32, 48, 64, 96, 128, 160, 192, 224];

/** Layer L cut to its first r components: W1 / b1 rows, W2 columns (repacked to (ffn, r)); b2 and threshold as given. */
export function sliceLayer(L: PredictorLayer, rank: number, r: number, d: number, ffn: number, b2: Float32Array, threshold: number, recall: number, ratio: number): PredictorLayer {
  const w2 = new Float32Array(ffn * r);
  for (let i = 0; i < ffn; i++) w2.set(L.w2.subarray(i * rank, i * rank + r), i * r);
  return { w1: L.w1.slice(0, r * d), b1: L.b1.slice(0, r), w2, b2, threshold, recall, ratio };
}

/** The largest rung of p at or below `rank` (throws when there is none). */
export function rungAt(p: Predictor, rank: number): PredictorRung {
  if (!Array.isArray(p.rungs) || !p.rungs.length) throw new Error('this predictor has no nested-rank rungs; train it again');
  if (!(Number.isFinite(rank) && rank >= 1)) throw new Error(`rank must be a number ≥ 1 (got ${rank})`);
  let best: PredictorRung | undefined;
  for (const g of p.rungs) if (g.rank <= rank && (!best || g.rank > best.rank)) best = g;
  if (!best) throw new Error(`rank ${rank} is below the predictor's smallest rung (${p.rungs.map((g) => g.rank).join(', ')})`);
  return best;
}

/**
 * p truncated to the largest rung ≤ `rank`: per layer the first r' rows of W1 / b1 and columns of W2
 * (repacked to (ffn, r')), the rung's b2 and threshold; layers' recall / ratio are the rung's
 * validation measures, report.layers its held-out ones; rungs keeps those ≤ r' (the last is r').
 * The result's math is exactly what the engine runs: z = W2[:, :r'] · relu(W1[:r'] x + b1[:r']) + b2_r'.
 */
export function truncatePredictor(p: Predictor, rank: number): Predictor {
  const g = rungAt(p, rank), r = g.rank, { hidden: d, ffn } = p;
  if (g.layers.length !== p.nLayers) throw new Error(`rung ${r} has ${g.layers.length} layers, the predictor ${p.nLayers}`);
  const layers = p.layers.map((L, l) => {
    const G = g.layers[l];
    if (G.b2.length !== ffn) throw new Error(`rung ${r} layer ${l}: b2 has ${G.b2.length} values, expected ${ffn}`);
    return sliceLayer(L, p.rank, r, d, ffn, G.b2.slice(), G.threshold, G.val_recall, G.val_ratio);
  });
  const copyRung = (q: PredictorRung): PredictorRung => ({ rank: q.rank, layers: q.layers.map((G) => ({ ...G, b2: G.b2.slice() })) });
  return {
    rank: r, hidden: d, ffn, nLayers: p.nLayers, fingerprint: p.fingerprint, layers,
    report: {
      ...p.report, rank: r,
      layers: g.layers.map((G, l) => ({ layer: l, recall: G.recall, ratio: G.ratio, true_share: G.true_share, predicted_share: G.predicted_share, threshold: G.threshold })),
    },
    rungs: p.rungs.filter((q) => q.rank <= r).map(copyRung),
  };
}

/**
 * Engine bytes of p truncated to `rank` (the largest rung ≤ rank, as truncatePredictor picks):
 * predictorBytes' formula at that rank; with dtype 'q8_0' the weights as the engine holds them
 * by default (int8 blocks of 32, the rank padded to a multiple of 32; W1 quantized along hidden,
 * W2 along the rank — f16 when hidden is not a multiple of 32, as the engine falls back).
 */
export function predictorBytesAt(p: Predictor, rank: number, dtype: 'f16' | 'q8_0' = 'f16'): number {
  let r = rungAt(p, rank).rank;
  if (dtype === 'f16' || p.hidden % 32) return predictorBytes({ ...p, rank: r });
  r = Math.ceil(r / 32) * 32;
  return p.nLayers * (r * rowBytes('q8_0', p.hidden) + p.ffn * rowBytes('q8_0', r) + 4 * (r + p.ffn) + 4);
}

/** The largest rung rank of p whose engine bytes fit in `bytes`, or undefined when even the smallest does not. */
export function rankForBytes(p: Predictor, bytes: number): number | undefined {
  let best: number | undefined;
  for (const g of p.rungs ?? []) if (predictorBytesAt(p, g.rank) <= bytes && (best === undefined || g.rank > best)) best = g.rank;
  return best;
}

/**
 * The predictor at the rank to run: the one asked for, else under a budget the rung expected to
 * read least. A smaller rank predicts more neurons (its predicted_share, measured on held-out
 * text) but leaves more rows for the neuron caches; each cached row saves about (1 - FRESH) of a
 * read per token, FRESH being the share of a token's neurons a window does not hold.
 * Returns what the engine calls with its room (bytes left for the predictor and the neuron caches)
 * and the bytes of one cached neuron row.
 */
export function pickRank(p: Predictor, rank?: number, dtype: 'f16' | 'q8_0' = 'q8_0'): (roomBytes: number, bytesPerCacheRow: number) => EnginePredictor {
  const FRESH = 0.3;
  return (room, rowBytes) => {
    if (rank !== undefined) return enginePredictor(truncatePredictor(p, rank));
    if (!Number.isFinite(room) || !p.rungs?.length) return enginePredictor(p);
    let best = p.rungs[0].rank, bestReads = Infinity;
    for (const r of p.rungs) {
      const rows = (room - predictorBytesAt(p, r.rank, dtype)) / rowBytes;
      if (rows < 16 * p.nLayers) continue;
      const wanted = r.layers.reduce((a, L) => a + L.predicted_share * p.ffn, 0);
      const reads = wanted - Math.min(rows, wanted) * (1 - FRESH);
      if (reads < bestReads) { best = r.rank; bestReads = reads; }
    }
    return enginePredictor(truncatePredictor(p, best));
  };
}

/** The engine's view of a trained predictor: per-layer weights, thresholds and expected set sizes. */
export function enginePredictor(p: Predictor): EnginePredictor {
  return {
    rank: p.rank,
    layers: p.layers.map((L, l) => ({ ...L, predicted_share: p.report?.layers?.[l]?.predicted_share })),
  };
}
