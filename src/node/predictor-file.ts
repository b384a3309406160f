// Predictor files on Node: where a model's predictor lives, and reading / writing .fnpred files
// (the byte format is src/predictor/format.ts).
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { removeStaleTemps, trainedPredictorPath } from './cache.js';
import { decodePredictor, encodePredictor } from '../predictor/format.js';
import type { Predictor } from '../predictor/types.js';
import { decodeThresholds, encodeThresholds, type FfnThresholds } from '../predictor/thresholds.js';

export { decodePredictor, encodePredictor, modelFingerprint } from '../predictor/format.js';

export { trainedPredictorPath } from './cache.js';

/**
 * The predictor sparse mode loads for a model (a Hugging Face folder or an image): the one
 * train-predictor wrote into the conversion cache for it (trainedPredictorPath) when there is
 * one — it wins, so training takes effect without replacing what shipped — else the one beside
 * the model (sidecarPredictorPath). --predictor FILE (predictorPath in the load options) comes
 * before both; `flashneuron cache rm MODEL` removes the trained one.
 */
export function predictorPath(modelPath: string): string {
  const trained = trainedPredictorPath(modelPath);
  return existsSync(trained) ? trained : sidecarPredictorPath(modelPath);
}

/** The predictor beside a model, where one ships: an HF folder → <folder>/flashneuron.fnpred; x.fnimg → x.fnpred. */
export function sidecarPredictorPath(modelPath: string): string {
  if (/\.fnimg$/i.test(modelPath)) return modelPath.replace(/\.fnimg$/i, '.fnpred');
  if (existsSync(modelPath) && statSync(modelPath).isFile()) return modelPath.replace(/(\.[^./\\]*)?$/, '.fnpred');
  return join(modelPath, 'flashneuron.fnpred');
}

/** Writes p to path atomically (a temporary file, then rename), so a reader never sees half a predictor. Weights are stored as f16. */
export function savePredictor(path: string, p: Predictor): void {
  const bytes = encodePredictor(p); // validates p before anything touches the disk
  mkdirSync(dirname(path), { recursive: true });
  removeStaleTemps(dirname(path), { name: basename(path) });
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    let done = 0;
    while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done, done);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

/**
 * Reads a .fnpred file. Throws a clear Error for a missing file, a bad magic or version, truncation,
 * a CRC mismatch, tensors outside the data or of the wrong size, and (with expectFingerprint) a
 * predictor trained for another model.
 */
export function loadPredictor(path: string, expectFingerprint?: string): Predictor {
  if (!existsSync(path)) throw new Error(`predictor not found: ${path}`);
  return decodePredictor(new Uint8Array(readFileSync(path)), path, expectFingerprint);
}

/**
 * The thresholds file of a SiLU-gated model: the one calibrate wrote into the conversion cache
 * (NAME-KEY.fnthr beside the trained predictor) when there is one, else the one beside the model.
 */
export function thresholdsPath(modelPath: string): string {
  const calibrated = trainedPredictorPath(modelPath).replace(/\.trained\.fnpred$/, '.fnthr');
  return existsSync(calibrated) ? calibrated : sidecarPredictorPath(modelPath).replace(/\.fnpred$/, '.fnthr');
}

/** Where calibrate writes without --out: the conversion cache, beside the trained predictor. */
export function calibratedThresholdsPath(modelPath: string): string {
  return trainedPredictorPath(modelPath).replace(/\.trained\.fnpred$/, '.fnthr');
}

/** Reads a .fnthr file, checked (format, checksum, shape, and with expectFingerprint the model). */
export function loadThresholds(path: string, expectFingerprint?: string): FfnThresholds {
  if (!existsSync(path)) throw new Error(`thresholds file not found: ${path}`);
  return decodeThresholds(readFileSync(path, 'utf8'), path, expectFingerprint);
}

/** Writes thresholds atomically (a temporary file, then rename). */
export function saveThresholds(path: string, t: FfnThresholds): void {
  const text = encodeThresholds(t);
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try { writeSync(fd, text); } finally { closeSync(fd); }
  renameSync(tmp, path);
}
