// The predictor's data types: a trained predictor, its nested-rank ladder, the training options and
// samples, the engine's view of a predictor, and the activation source training runs on.
import type { ModelConfig } from '../format/config.js';
import type { ImageHeader } from '../format/image.js';
import type { FlashSource } from '../io/source.js';

export interface PredictorLayer {
  w1: Float32Array; // (rank, hidden), f16-representable values
  b1: Float32Array; // (rank)
  w2: Float32Array; // (ffn, rank), f16-representable values
  b2: Float32Array; // (ffn)
  threshold: number; // neuron i predicted active when z_i > threshold
  recall: number; // measured on the validation split at `threshold`
  ratio: number; // predicted-set size / true-set size on the validation split
}
/**
 * One rung of the nested-rank ladder: what the predictor truncated to its first `rank` components
 * (rows of W1 / b1, columns of W2) needs per layer. The engine computes
 *   z = W2[:, :rank] · relu(W1[:rank] · x + b1[:rank]) + b2     (b2 of the rung)
 * b2 = the full b2 + the dropped components' mean contribution over the training tokens; threshold
 * calibrated on the validation split like the full rank's; recall / ratio / shares measured on the
 * held-out split (the validation split's when there is none), val_recall / val_ratio on the validation split.
 */
export interface PredictorRungLayer { threshold: number; recall: number; ratio: number; predicted_share: number; true_share: number; val_recall: number; val_ratio: number; b2: Float32Array }
export interface PredictorRung { rank: number; layers: PredictorRungLayer[] }
export interface Predictor {
  rank: number; hidden: number; ffn: number; nLayers: number; fingerprint: string; layers: PredictorLayer[]; report: PredictorReport;
  /** Nested ranks the predictor can be truncated to (truncatePredictor), ascending; the last is `rank` itself. */
  rungs: PredictorRung[];
}
export interface PredictorLayerEval { layer: number; recall: number; ratio: number; true_share: number; predicted_share: number; threshold: number }
export interface PredictorReport {
  rank: number; train_tokens: number; heldout_tokens: number; seconds: number; layers: PredictorLayerEval[];
  /** Per layer, the candidate kept: 'pca' (the PCA initialisation) or 'bce' (it fine-tuned). */
  kept?: string[];
}

/** The engine's view of a trained predictor: per-layer weights, thresholds and expected set sizes. */
export interface EnginePredictor {
  rank: number;
  layers: { w1: Float32Array; b1: Float32Array; w2: Float32Array; b2: Float32Array; threshold: number; predicted_share?: number }[];
}

export interface TrainOptions {
  /** Hidden width of the predictor (default 192). */
  rank?: number;
  /** BCE fine-tuning passes over (at most 8192 of) the training tokens after the PCA initialisation (default 1; 0: PCA only). */
  epochs?: number;
  /** Adam learning rate of the fine-tuning (default 3e-4). */
  lr?: number;
  /** Cap on training tokens (default 16000); the validation and held-out splits use at most a quarter of it each. */
  maxTokens?: number;
  /** Share of the text, taken from its end, held out for the report (default 0.15). */
  heldOut?: number;
  /** Recall the per-layer threshold is calibrated to on the validation split (default 0.975). */
  targetRecall?: number;
  /** Where a layer reaches targetRecall with fewer predicted neurons than ratioBudget × active, its
   *  threshold is lowered to predict that many, for extra recall on text unlike the calibration text (default 1.8). */
  ratioBudget?: number;
  /** Ranks below `rank` the file gets rungs for (truncatePredictor); `rank` is always the last rung
   *  (default 16, 32, 48, 64, 96, 128, 160, 192, 224, those below `rank`). */
  rungs?: number[];
  seed?: number;
  onProgress?: (done: number, total: number, phase: string) => void;
  signal?: AbortSignal;
}

/**
 * FFN inputs and true activity of `n` token positions:
 *   x[l]      (n, hidden) f32     the FFN input of layer l
 *   active[l] (n, ceil(ffn/8))    bit j of byte k of row t = neuron 8k+j fired at t (golden.json's layout)
 */
export interface PredictorSamples { n: number; hidden: number; ffn: number; x: Float32Array[]; active: Uint8Array[] }

/**
 * What training needs of a model: its config and tokenizer, and an engine that runs tokens and
 * exposes each layer's FFN input and activations, plus the image it reads (the deciding FFN
 * weights, the fingerprint). A loaded Model is one; declared structurally so the predictor does not
 * depend on the core that runs it.
 */
export interface ActivationSource {
  readonly config: ModelConfig;
  tokenize(text: string): number[];
  readonly engine: {
    readonly header: ImageHeader;
    readonly source: FlashSource;
    readonly contextLength: number;
    reset(): void;
    forward(token: number, pos: number): void;
    /** The FFN input of layer l at the last position run (hidden floats). */
    ffnInput(l: number): Float32Array;
    /** The activations of layer l's FFN neurons at the last position run (ffn floats; 0 = inactive). */
    activations(l: number): Float32Array;
  };
}
