// Low-rank sparsity predictors ("LLM in a flash" §3.1, Deja Vu): for FFN layer l, from the FFN
// input x (the normed residual, d floats), guess which of the ffn neurons will fire:
//
//   z = W2 · relu(W1 · x + b1) + b2        neuron i predicted active when z_i > threshold_l
//   W1 (rank, d)  b1 (rank)  W2 (ffn, rank)  b2 (ffn)
//
// "Active" is what the engine reports: ReLU output > 0 (OPT fc1), relu(gate_proj · x) > 0 (Llama).
// Trained here, in TypeScript + build/train.wasm (assembly/train/), per layer:
//   1. initialisation from the data-aware truncated SVD of the deciding weights W (fc1 / gate_proj):
//      the rank-r PCA of the pre-activations u = W x + b over the training inputs, with the relu
//      units offset into their linear range (pcaInit) — on these models this alone is the best
//      predictor we found at a given rank;
//   2. fine-tuning with positive-weighted BCE (pos_weight = negatives / positives), Adam, mini-batches;
//   3. both candidates are rounded to f16 (what the engine runs), their thresholds calibrated on a
//      validation split to the target recall, and the one predicting fewer neurons there is kept;
//   4. nested ranks ("one predictor, any budget"): the PCA components are ordered by singular value,
//      so the first r' of them are the best rank-r' predictor of the family; for each rung r' of a
//      ladder (16 … the full rank) the kept weights cut to r' components get a b2 that adds back the
//      dropped components' mean contribution over the training tokens and a threshold calibrated
//      like the full rank's. truncatePredictor() gives a budget-constrained engine a smaller predictor
//      from the same file. (The BCE candidate starts from the PCA and moves little in one short epoch,
//      so its components stay close to ordered; every rung's recall / ratio is measured, not assumed.)
// The report is measured on held-out text the training and calibration never saw.
// The file format is in format.ts. Training reads a model through ActivationSource (types.ts), not
// the core's Model class, so this module runs wherever the engine does (Node, browsers, workers).
import { calibrate, countLayer, evaluatePredictor } from './evaluate.js';
import { modelFingerprint, roundF16 } from './format.js';
import { BATCH, allocF32, hiddenMean, layerLogits, trainKernels } from './kernels.js';
import { DEFAULT_RUNGS, sliceLayer, truncatePredictor } from './ladder.js';
import { pcaInit } from './pca.js';
import { collectSamples, ffnGateWeights, predictorSplits } from './samples.js';
import type { ActivationSource, Predictor, PredictorLayer, PredictorRung, TrainOptions } from './types.js';
import { alignUp, bitRowBytes, gauss, rng, tick, transpose } from './util.js';

const TUNE_TOKENS = 8192; // training tokens the BCE fine-tuning pass sees per epoch

interface LayerWeights { w1: Float32Array; b1: Float32Array; w2: Float32Array; b2: Float32Array; losses: number[] }

/**
 * Trains one layer's predictor on samples (n, d) → bits (n, ffn). Returns f32 weights (W2 as (ffn, r))
 * and the mean loss of every epoch.
 */
export async function trainLayer(
  X: Float32Array, Y: Uint8Array, n: number, d: number, ffn: number, rank: number,
  opts: { epochs?: number; seed?: number; lr?: number; init?: ReturnType<typeof pcaInit>; signal?: AbortSignal; onStep?: () => void } = {},
): Promise<LayerWeights> {
  const r = rank, yb = bitRowBytes(ffn), epochs = opts.epochs ?? 8;
  const k = trainKernels();
  // parameter block [W1 | b1 | W2T | b2], each segment 4-float aligned so one Adam call covers all
  const oW1 = 0, ob1 = alignUp(r * d, 4), oW2 = ob1 + alignUp(r, 4), ob2 = oW2 + alignUp(r * ffn, 4), nP = ob2 + alignUp(ffn, 4);
  const pX = k.alloc(n * d * 4, 64), pY = k.alloc(n * yb, 64);
  const pIdx = allocF32(k, BATCH), pXb = allocF32(k, BATCH * d), pYb = k.alloc(BATCH * yb + 16, 64);
  const pH = allocF32(k, BATCH * r), pZ = allocF32(k, BATCH * ffn), pdA = allocF32(k, BATCH * r);
  const pP = allocF32(k, nP), pG = allocF32(k, nP), pM = allocF32(k, nP), pV = allocF32(k, nP);
  if (!pX || !pY || !pYb) throw new Error('predictor training: out of wasm memory');
  const mem = k.memory.buffer;
  new Float32Array(mem, pX, n * d).set(X.subarray(0, n * d));
  new Uint8Array(mem, pY, n * yb).set(Y.subarray(0, n * yb));
  const P = new Float32Array(mem, pP, nP);
  const idx = new Int32Array(mem, pIdx, BATCH);

  // init: W1 ~ N(0, 1 / (d · E[x²])), b1 = 0.1, W2 ~ N(0, 1/r), b2 = logit of each neuron's rate
  const rand = rng(opts.seed ?? 1);
  let ss = 0;
  for (let i = 0; i < n * d; i++) ss += X[i] * X[i];
  const xs = 1 / Math.sqrt(Math.max(ss / Math.max(1, n), 1e-12));
  for (let i = 0; i < r * d; i++) P[oW1 + i] = gauss(rand) * xs;
  for (let i = 0; i < r; i++) P[ob1 + i] = 0.1;
  for (let i = 0; i < r * ffn; i++) P[oW2 + i] = gauss(rand) / Math.sqrt(r);
  const count = new Float64Array(ffn);
  let pos = 0;
  for (let t = 0; t < n; t++) for (let i = 0; i < ffn; i++) if ((Y[t * yb + (i >> 3)] >> (i & 7)) & 1) count[i]++;
  for (let i = 0; i < ffn; i++) pos += count[i];
  const posWeight = Math.min(100, Math.max(1, (n * ffn - pos) / Math.max(1, pos)));
  for (let i = 0; i < ffn; i++) {
    const p = (count[i] + 0.5) / (n + 1);
    P[ob2 + i] = Math.log((posWeight * p) / (1 - p));
  }
  if (opts.init) {
    P.set(opts.init.w1, oW1); P.set(opts.init.b1, ob1); P.set(opts.init.w2t, oW2); P.set(opts.init.b2, ob2);
  }

  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const steps = epochs * Math.ceil(n / BATCH);
  const lr0 = opts.lr ?? 3e-3, b1 = 0.9, b2 = 0.999;
  let step = 0;
  const losses: number[] = [];
  for (let ep = 0; ep < epochs; ep++) {
    for (let i = n - 1; i > 0; i--) { const j = Math.floor(rand() * (i + 1)); const t = order[i]; order[i] = order[j]; order[j] = t; }
    let lossSum = 0;
    for (let s = 0; s < n; s += BATCH) {
      const B = Math.min(BATCH, n - s);
      idx.set(order.subarray(s, s + B));
      k.gather(pX, pIdx, B, d * 4, pXb);
      k.gather(pY, pIdx, B, yb, pYb);
      k.linear_relu(pXb, B, d, pP + oW1 * 4, pP + ob1 * 4, r, pH);
      k.linear_out(pH, B, r, pP + oW2 * 4, pP + ob2 * 4, ffn, pZ);
      lossSum += k.bce_grad(pZ, pYb, B, ffn, yb, posWeight, 1 / (B * ffn));
      k.zero(pG, nP);
      k.grad_out(pH, pZ, B, r, ffn, pG + oW2 * 4, pG + ob2 * 4);
      k.grad_hidden(pZ, pP + oW2 * 4, pH, B, r, ffn, pdA);
      k.grad_in(pXb, pdA, B, d, r, pG + oW1 * 4, pG + ob1 * 4);
      step++;
      const lr = lr0 * 0.5 * (1 + Math.cos((Math.PI * step) / steps)); // cosine decay to 0
      k.adam(pP, pG, pM, pV, nP, lr, b1, b2, 1e-8, 1 - b1 ** step, 1 - b2 ** step);
      opts.onStep?.();
      if (step % 16 === 0) { opts.signal?.throwIfAborted(); await tick(); }
    }
    losses.push(lossSum / (n * ffn));
  }
  const w1 = P.slice(oW1, oW1 + r * d), bb1 = P.slice(ob1, ob1 + r), bb2 = P.slice(ob2, ob2 + ffn);
  const w2 = new Float32Array(ffn * r);
  for (let kk = 0; kk < r; kk++) for (let i = 0; i < ffn; i++) w2[i * r + kk] = P[oW2 + kk * ffn + i];
  return { w1, b1: bb1, w2, b2: bb2, losses };
}

/** The ladder of rungs for a predictor of rank `rank`: the requested ranks below it, ascending, then `rank`. */
function rungRanks(rank: number, req: number[] | undefined): number[] {
  const want = req ?? DEFAULT_RUNGS;
  for (const r of want) if (!(Number.isInteger(r) && r >= 1)) throw new Error(`rungs must be positive integers (got ${r})`);
  return [...new Set(want.filter((r) => r < rank))].sort((a, b) => a - b).concat(rank);
}

/**
 * Trains a predictor for every FFN layer of `model` (a loaded Model, or any ActivationSource) on
 * `text`: the text is tokenized once (with BOS), its last `heldOut` share is kept for the report, the
 * 10 % before that is the validation split (thresholds), the rest is training data; each split is
 * cut into windows of ≤ 256 tokens that restart at position 0 with BOS (predictorSplits).
 *
 * Nested ranks: for every rung r' of the ladder (opts.rungs, then the full rank), per layer, the kept
 * candidate cut to its first r' components gets b2 + the dropped components' mean contribution over
 * the training tokens, a threshold calibrated on the validation split by the same rule, and its
 * recall / ratio measured on the held-out split with evaluatePredictor (the scalar reference).
 */
export async function trainPredictor(model: ActivationSource, text: string, opts: TrainOptions = {}): Promise<Predictor> {
  const t0 = performance.now();
  const { nLayers: L, hidden: d, ffn } = model.config;
  const rank = opts.rank ?? 192;
  const target = opts.targetRecall ?? 0.975, budget = opts.ratioBudget ?? 1.8, seed = opts.seed ?? 1, epochs = opts.epochs ?? 1;
  if (!(Number.isInteger(rank) && rank >= 1 && rank <= 4096)) throw new Error(`rank must be an integer in 1..4096 (got ${rank})`);
  const ladder = rungRanks(rank, opts.rungs);
  const { train: trainW, val: valW, held: heldW } = predictorSplits(model, text, opts);
  const count = (ws: number[][]) => ws.reduce((s, w) => s + w.length, 0);
  const nCollect = count(trainW) + count(valW) + count(heldW);

  const progress = opts.onProgress;
  const train = await collectSamples(model, trainW, { onProgress: progress, signal: opts.signal, done: 0, total: nCollect });
  const val = await collectSamples(model, valW, { onProgress: progress, signal: opts.signal, done: train.n, total: nCollect });
  const held = heldW.length ? await collectSamples(model, heldW, { onProgress: progress, signal: opts.signal, done: train.n + val.n, total: nCollect }) : undefined;

  const nTune = Math.min(train.n, TUNE_TOKENS);
  const stepsPerLayer = epochs * Math.ceil(nTune / BATCH);
  let done = 0;
  const layers: PredictorLayer[] = [], kept: string[] = [];
  // per rung, per layer: b2, threshold and validation measures
  const rungVal = ladder.map(() => [] as { b2: Float32Array; threshold: number; recall: number; ratio: number; pred: number; act: number }[]);
  for (let l = 0; l < L; l++) {
    opts.signal?.throwIfAborted();
    progress?.(l, L, 'init');
    const { w: W, bias } = ffnGateWeights(model, l);
    const init = pcaInit(W, bias, train.x[l], train.n, d, ffn, rank);
    await tick();
    // candidate 1: the PCA initialisation as it stands; candidate 2: it fine-tuned with weighted BCE + Adam
    const candidates: { name: string; w1: Float32Array; b1: Float32Array; w2: Float32Array; b2: Float32Array }[] = [
      { name: 'pca', w1: init.w1, b1: init.b1, w2: transpose(init.w2t, rank, ffn), b2: init.b2 },
    ];
    if (epochs > 0) {
      candidates.push({ name: 'bce', ...await trainLayer(train.x[l].subarray(0, nTune * d), train.active[l], nTune, d, ffn, rank, {
        epochs, seed: seed + 7919 * l, lr: opts.lr ?? 3e-4, init, signal: opts.signal,
        onStep: () => { if (++done % 8 === 0) progress?.(done, stepsPerLayer * L, 'train'); },
      }) });
    }
    // f16-rounded weights (what the engine runs) calibrated on the validation split; the smaller predicted set wins
    let best: PredictorLayer | undefined, bestName = '';
    const z = new Float32Array(val.n * ffn);
    for (const c of candidates) {
      const layer = { w1: roundF16(c.w1), b1: c.b1, w2: roundF16(c.w2), b2: c.b2, threshold: 0, recall: 0, ratio: 0 };
      layerLogits(trainKernels(), layer, val.x[l], val.n, d, ffn, rank, z);
      layer.threshold = calibrate(z, val.active[l], val.n, ffn, target, budget);
      const m = countLayer(z, val.active[l], val.n, ffn, layer.threshold);
      layer.recall = m.recall;
      layer.ratio = m.ratio;
      if (!best || layer.ratio < best.ratio) { best = layer; bestName = c.name; }
    }
    layers.push(best!);
    kept.push(bestName);
    // the rungs: b2 compensated for the dropped components' mean, threshold recalibrated
    progress?.(l, L, 'rungs');
    const mean = hiddenMean(trainKernels(), best!.w1, best!.b1, train.x[l], train.n, d, rank);
    for (const [ri, r] of ladder.entries()) {
      let b2 = best!.b2, S = best!;
      if (r < rank) {
        b2 = new Float32Array(ffn);
        for (let i = 0; i < ffn; i++) {
          let s = best!.b2[i];
          for (let kk = r, o = i * rank; kk < rank; kk++) s += best!.w2[o + kk] * mean[kk];
          b2[i] = s;
        }
        S = sliceLayer(best!, rank, r, d, ffn, b2, 0, 0, 0);
        layerLogits(trainKernels(), S, val.x[l], val.n, d, ffn, r, z);
        S.threshold = calibrate(z, val.active[l], val.n, ffn, target, budget);
      } else {
        layerLogits(trainKernels(), S, val.x[l], val.n, d, ffn, r, z);
      }
      const m = countLayer(z, val.active[l], val.n, ffn, S.threshold);
      rungVal[ri].push({ b2: b2.slice(), threshold: S.threshold, recall: m.recall, ratio: m.ratio, pred: m.pred, act: m.act });
      await tick();
    }
  }
  progress?.(stepsPerLayer * L, stepsPerLayer * L, 'train');
  const rungs: PredictorRung[] = ladder.map((r, ri) => ({
    rank: r,
    layers: rungVal[ri].map((v) => ({
      threshold: v.threshold, recall: v.recall, ratio: v.ratio, predicted_share: v.pred / Math.max(1, val.n * ffn), true_share: v.act / Math.max(1, val.n * ffn),
      val_recall: v.recall, val_ratio: v.ratio, b2: v.b2,
    })),
  }));
  const p: Predictor = {
    rank, hidden: d, ffn, nLayers: L, fingerprint: modelFingerprint(model.engine.header), layers,
    report: { rank, train_tokens: train.n, heldout_tokens: held?.n ?? 0, seconds: 0, layers: [], kept }, rungs,
  };
  if (held) {
    for (const [ri, rung] of rungs.entries()) {
      progress?.(ri, rungs.length, 'evaluate');
      const ev = evaluatePredictor(truncatePredictor(p, rung.rank), held);
      ev.forEach((e, l) => Object.assign(rung.layers[l], { recall: e.recall, ratio: e.ratio, predicted_share: e.predicted_share, true_share: e.true_share }));
      if (rung.rank === rank) p.report.layers = ev;
      await tick();
    }
    progress?.(rungs.length, rungs.length, 'evaluate');
  }
  p.report.seconds = Math.round((performance.now() - t0) / 100) / 10;
  return p;
}
