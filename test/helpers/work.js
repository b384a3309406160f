// The worker-thread side of ./worker.js: the work it runs, by name. Run as a worker's script it
// runs workerData.fn(...workerData.args) and posts back { result } or { error }.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { convertHF, loadModel } from '../../dist/src/index.js';
import { trainPredictor } from '../../dist/src/predictor/train.js';
import { ffnGateWeights } from '../../dist/src/predictor/samples.js';
import { evaluatePredictor } from '../../dist/src/predictor/evaluate.js';
import { modelFingerprint } from '../../dist/src/predictor/format.js';
import { truncatePredictor } from '../../dist/src/predictor/ladder.js';
import { calibrateThresholds } from '../../dist/src/predictor/thresholds.js';
import { CALIBRATION_TEXT } from './silu.js';

const WORK = {
  /** convertHF(src, out, opts): the image's header. */
  convert(src, out, opts) {
    return convertHF(src, out, undefined, opts);
  },

  /** predictor.test.js: a predictor trained on `text` (rank 16, PCA only) for the image at `path`;
   *  with what the test checks it against. */
  async trainOnImage(path, text) {
    const model = await loadModel(path);
    try {
      const gate = ffnGateWeights(model, 3).w;
      const p = await trainPredictor(model, text, { rank: 16, epochs: 0 });
      return { gate, predictor: p, fingerprint: modelFingerprint(model.engine.header), nLayers: model.config.nLayers };
    } finally { model.close(); }
  },

  /** silu.test.js: calibrateThresholds(opts) over models/calibration.txt on the dense image at `image`. */
  async calibrate(image, opts) {
    const dense = await loadModel(image, { device: 'cpu' });
    try { return await calibrateThresholds(dense, CALIBRATION_TEXT, modelFingerprint(dense.engine.header), opts); } finally { dense.close(); }
  },

  /** predictor.test.js: evaluatePredictor over `samples`, of `p` truncated to `rank` where given. */
  evaluate(p, samples, threshold, rank) {
    return evaluatePredictor(rank === undefined ? p : truncatePredictor(p, rank), samples, threshold);
  },
};

if (!isMainThread && workerData?.fn) {
  try {
    parentPort.postMessage({ result: await WORK[workerData.fn](...workerData.args) });
  } catch (error) {
    parentPort.postMessage({ error });
  }
}
