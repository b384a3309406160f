// Predictor files on Node: where a model's predictor lives, and reading / writing .fnpred files
// (the byte format is src/predictor/format.ts).
import { closeSync, existsSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { decodePredictor, encodePredictor } from '../predictor/format.js';
import type { Predictor } from '../predictor/types.js';

export { decodePredictor, encodePredictor, modelFingerprint } from '../predictor/format.js';

/** Where a model's predictor lives: an HF folder → <folder>/flashneuron.fnpred; x.fnimg → x.fnpred. */
export function predictorPath(modelPath: string): string {
  if (/\.fnimg$/i.test(modelPath)) return modelPath.replace(/\.fnimg$/i, '.fnpred');
  if (existsSync(modelPath) && statSync(modelPath).isFile()) return modelPath.replace(/(\.[^./\\]*)?$/, '.fnpred');
  return join(modelPath, 'flashneuron.fnpred');
}

/** Writes p to path atomically (a temporary file, then rename), so a reader never sees half a predictor. Weights are stored as f16. */
export function savePredictor(path: string, p: Predictor): void {
  const bytes = encodePredictor(p); // validates p before anything touches the disk
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
