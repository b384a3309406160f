// The sparsity predictor: training (train.ts), the nested-rank ladder (ladder.ts), the .fnpred byte
// format (format.ts). No file system here: files are src/node/predictor-file.ts's.
export type {
  ActivationSource, EnginePredictor, Predictor, PredictorLayer, PredictorLayerEval, PredictorReport, PredictorRung, PredictorRungLayer,
  PredictorSamples, TrainOptions,
} from './types.js';
export { decodePredictor, encodePredictor, modelFingerprint, predictorBytes, roundF16 } from './format.js';
export { DEFAULT_RUNGS, enginePredictor, pickRank, predictorBytesAt, rankForBytes, rungAt, truncatePredictor } from './ladder.js';
export { trainKernels } from './kernels.js';
export type { TrainKernels } from './kernels.js';
export { collectSamples, ffnGateWeights, predictorSplits } from './samples.js';
export { pcaInit } from './pca.js';
export { trainLayer, trainPredictor } from './train.js';
export { evaluatePredictor } from './evaluate.js';
export { calibrateThresholds, checkSparsity, decodeThresholds, encodeThresholds, MagnitudeHistogram, thresholdsAt, withSparsity, THRESHOLDS_FORMAT } from './thresholds.js';
export type { FfnThresholds } from './thresholds.js';
