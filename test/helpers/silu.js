// llama-silu-mini (test/fixtures), the SiLU model of the SiLU sparse mode tests: converted once
// per test run, and its magnitude cuts calibrated once (sparsity 0.5 on up to 4000 tokens of
// models/calibration.txt). Tests only read the image, and write no thresholds file beside it
// (silu.fnthr there would be found by loading).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { convertHF, loadModel } from '../../dist/src/index.js';
import { calibrateThresholds } from '../../dist/src/predictor/thresholds.js';
import { modelFingerprint } from '../../dist/src/predictor/format.js';
import { ROOT } from './models.js';
import { tmpDir } from './hostile.js';

export const SILU_MINI = join(ROOT, 'test/fixtures/llama-silu-mini');
export const CALIBRATION_TEXT = readFileSync(join(ROOT, 'models/calibration.txt'), 'utf8');

let image, calibrated;

/** Path of the image converted from SILU_MINI as it stands. */
export function siluImage() {
  image ??= (async () => {
    const out = join(tmpDir('silu'), 'silu.fnimg');
    await convertHF(SILU_MINI, out);
    return out;
  })();
  return image;
}

/** calibrateThresholds' answer on the dense image (a copy: callers may change it). */
export async function siluCalibrated() {
  calibrated ??= (async () => {
    const dense = await loadModel(await siluImage(), { device: 'cpu' });
    try {
      return await calibrateThresholds(dense, CALIBRATION_TEXT, modelFingerprint(dense.engine.header), { sparsity: 0.5, maxTokens: 4000 });
    } finally { dense.close(); }
  })();
  return structuredClone(await calibrated);
}
