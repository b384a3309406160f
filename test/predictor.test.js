// Sparsity predictors: the training kernels (SIMD against their scalar references), a short training
// run, the .fnpred format (round trip and hostile files), training on images of every stored dtype
// and FFN layout, and the shipped predictors measured with the real engine against Hugging Face's
// activations on golden text (not in calibration.txt).
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../dist/src/index.js';
import { trainKernels } from '../dist/src/predictor/kernels.js';
import { trainLayer, trainPredictor } from '../dist/src/predictor/train.js';
import { collectSamples, ffnGateWeights, predictorSplits } from '../dist/src/predictor/samples.js';
import { evaluatePredictor } from '../dist/src/predictor/evaluate.js';
import { predictorBytes, modelFingerprint, roundF16 } from '../dist/src/predictor/format.js';
import { truncatePredictor, predictorBytesAt, rankForBytes } from '../dist/src/predictor/ladder.js';
import { savePredictor, loadPredictor, sidecarPredictorPath } from '../dist/src/node/predictor-file.js';
import { f16ToF32, f32ToF16 } from '../dist/src/format/dtype.js';
import { crc32 } from '../dist/src/format/crc32.js';
import { MODELS, ROOT, golden, image, imagePath, modelDir } from './helpers/models.js';
import { tmpDir, cleanupTmp } from './helpers/hostile.js';
import { inWorker } from './helpers/worker.js';
import { limited } from './helpers/parallel.js';

after(cleanupTmp);

function lcg(seed) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
}

describe('predictor training kernels: SIMD vs scalar reference', () => {
  const k = trainKernels();
  const r = lcg(7);
  const put = (n, gen = r) => { const p = k.alloc(Math.max(4, n) * 4 + 64, 64); new Float32Array(k.memory.buffer, p, n).forEach((_, i, a) => { a[i] = gen(); }); return p; };
  const get = (p, n) => new Float32Array(k.memory.buffer, p, n).slice();
  const copy = (p, n) => { const q = k.alloc(Math.max(4, n) * 4 + 64, 64); new Float32Array(k.memory.buffer, q, n).set(get(p, n)); return q; };
  const close = (a, b, tol, what) => {
    for (let i = 0; i < a.length; i++) {
      const e = Math.abs(a[i] - b[i]), lim = tol * (1 + Math.abs(b[i]));
      if (!(e <= lim)) assert.fail(`${what}: element ${i} is ${a[i]}, reference ${b[i]} (|diff| ${e} > ${lim})`);
    }
  };
  const SIZES = [[1, 1, 1, 1], [3, 5, 7, 3], [5, 17, 15, 33], [7, 33, 31, 17], [17, 15, 5, 9], [2, 384, 16, 1536]]; // [B, d, r, ffn]

  for (const [B, d, R, ffn] of SIZES) {
    it(`forward, loss, backward and Adam agree at B=${B} d=${d} r=${R} ffn=${ffn}`, () => {
      const X = put(B * d), W1 = put(R * d), b1 = put(R), W2T = put(R * ffn), b2 = put(ffn);
      const yb = (ffn + 7) >> 3, Y = k.alloc(B * yb + 16, 16);
      new Uint8Array(k.memory.buffer, Y, B * yb).forEach((_, i, a) => { a[i] = Math.floor((r() + 1) * 128); });
      const H = put(B * R), Hr = put(B * R);
      k.linear_relu(X, B, d, W1, b1, R, H); k.linear_relu_ref(X, B, d, W1, b1, R, Hr);
      close(get(H, B * R), get(Hr, B * R), 1e-5, 'linear_relu');
      const Z = put(B * ffn), Zr = put(B * ffn);
      k.linear_out(H, B, R, W2T, b2, ffn, Z); k.linear_out_ref(H, B, R, W2T, b2, ffn, Zr);
      close(get(Z, B * ffn), get(Zr, B * ffn), 1e-5, 'linear_out');
      // spread logits over ±12 so exp/log1p see their whole range
      new Float32Array(k.memory.buffer, Z, B * ffn).forEach((v, i, a) => { a[i] = v * 3; });
      const Zr2 = copy(Z, B * ffn);
      const loss = k.bce_grad(Z, Y, B, ffn, yb, 3.5, 0.25), lossRef = k.bce_grad_ref(Zr2, Y, B, ffn, yb, 3.5, 0.25);
      close([loss], [lossRef], 1e-5, 'bce_grad loss');
      close(get(Z, B * ffn), get(Zr2, B * ffn), 1e-5, 'bce_grad gradient');
      const dW2 = put(R * ffn), db2 = put(ffn), dW2r = copy(dW2, R * ffn), db2r = copy(db2, ffn);
      k.grad_out(H, Z, B, R, ffn, dW2, db2); k.grad_out_ref(H, Z, B, R, ffn, dW2r, db2r);
      close(get(dW2, R * ffn), get(dW2r, R * ffn), 1e-5, 'grad_out dW2');
      close(get(db2, ffn), get(db2r, ffn), 1e-5, 'grad_out db2');
      const dA = put(B * R), dAr = put(B * R);
      k.grad_hidden(Z, W2T, H, B, R, ffn, dA); k.grad_hidden_ref(Z, W2T, H, B, R, ffn, dAr);
      close(get(dA, B * R), get(dAr, B * R), 1e-5, 'grad_hidden');
      const dW1 = put(R * d), db1 = put(R), dW1r = copy(dW1, R * d), db1r = copy(db1, R);
      k.grad_in(X, dA, B, d, R, dW1, db1); k.grad_in_ref(X, dA, B, d, R, dW1r, db1r);
      close(get(dW1, R * d), get(dW1r, R * d), 1e-5, 'grad_in dW1');
      close(get(db1, R), get(db1r, R), 1e-5, 'grad_in db1');
      const n = R * d, P = put(n), G = put(n), M = put(n), V = put(n, () => Math.abs(r()));
      const Pr = copy(P, n), Mr = copy(M, n), Vr = copy(V, n);
      k.adam(P, G, M, V, n, 1e-2, 0.9, 0.999, 1e-8, 0.19, 0.002); k.adam_ref(Pr, G, Mr, Vr, n, 1e-2, 0.9, 0.999, 1e-8, 0.19, 0.002);
      close(get(P, n), get(Pr, n), 1e-6, 'adam P');
      close(get(M, n), get(Mr, n), 1e-6, 'adam m');
      close(get(V, n), get(Vr, n), 1e-6, 'adam v');
    });
  }

  it('f32 → f16 rounds to nearest even, saturates and keeps subnormals', () => {
    for (const h of [0, 1, 0x3ff, 0x400, 0x3c00, 0x3c01, 0x7bff, 0x8001, 0xbc00, 0xfbff]) assert.equal(f32ToF16(f16ToF32(h)), h);
    assert.equal(f32ToF16(1 + 2 ** -11), 0x3c00); // tie → even
    assert.equal(f32ToF16(1 + 3 * 2 ** -11), 0x3c02);
    assert.equal(f32ToF16(1e6), 0x7c00);
    assert.equal(f32ToF16(-1e6), 0xfc00);
  });
});

// llama-relu-mini converted to each dtype (helpers/models.js: image) and a predictor trained on it
// (rank 16, PCA only), for 'training on images of every dtype' below. Each is independent, mostly
// the PCA's plain JS on one thread: they run in worker threads, one per core at a time, from the
// start of this file's single-threaded training tests on; the tests take their results in order.
const DTYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0'];
let dtypeRuns;
function dtypeTrainings() {
  if (!dtypeRuns) {
    // ~590 tokens: ~490 train, ~100 held out; PCA only at rank 16, so each training takes seconds
    const text = readFileSync(join(ROOT, 'models/calibration.txt'), 'utf8').slice(0, 2000);
    const run = limited(availableParallelism());
    dtypeRuns = Object.fromEntries(DTYPES.map((dtype) => {
      const trained = run(async () => {
        const { path, header } = await image('llama-relu-mini', { dtype });
        return { header, ...await inWorker('trainOnImage', path, text) };
      });
      trained.catch(() => {});   // its test reports a failure
      return [dtype, trained];
    }));
  }
  return dtypeRuns;
}

describe('predictor: short training run and the file format', () => {
  const name = 'opt-relu-mini';
  let model, text, small;
  before(async () => {
    dtypeTrainings();
    model = await loadModel(modelDir(name));
    text = readFileSync(join(ROOT, 'models/calibration.txt'), 'utf8').slice(0, 6000);
  });
  after(() => model?.close());

  it('the BCE loss falls over a short run (rank 8, 300 tokens)', async () => {
    const ids = model.tokenize(text).slice(0, 150);
    const s = await collectSamples(model, [ids, [ids[0], ...ids.slice(150, 299)]]);
    const { hidden: d, ffn } = model.config;
    const w = await trainLayer(s.x[1], s.active[1], s.n, d, ffn, 8, { epochs: 4, lr: 1e-2 });
    assert.equal(w.losses.length, 4);
    for (let e = 1; e < 4; e++) assert.ok(w.losses[e] < w.losses[e - 1], `loss ${w.losses.join(' → ')} did not fall every epoch`);
    assert.ok(w.losses[3] < w.losses[0] * 0.9, `loss ${w.losses.join(' → ')} fell by less than 10 %`);
  });

  it('trains (rank 24, rungs 8 and 16, 1 epoch), reports progress, and round-trips through save/load exactly', async () => {
    const phases = new Set();
    small = await trainPredictor(model, text, { rank: 24, rungs: [16, 8, 64], epochs: 1, maxTokens: 512, onProgress: (d, t, phase) => phases.add(phase) });
    for (const ph of ['collect', 'init', 'train', 'rungs', 'evaluate']) assert.ok(phases.has(ph), `no ${ph} progress`);
    assert.equal(small.layers.length, model.config.nLayers);
    assert.equal(small.fingerprint, modelFingerprint(model.engine.header));
    for (const l of small.layers) {
      assert.deepEqual(l.w1, roundF16(l.w1), 'weights are f16-rounded');
      assert.ok(l.recall >= 0.975, `validation recall ${l.recall}`);
    }
    const path = join(tmpDir('pred'), 'p.fnpred');
    savePredictor(path, small);
    const back = loadPredictor(path, small.fingerprint);
    assert.equal(back.rank, 24);
    assert.deepEqual(back.report, small.report);
    small.layers.forEach((l, i) => {
      const b = back.layers[i];
      assert.deepEqual(b.w1, l.w1); assert.deepEqual(b.b1, l.b1); assert.deepEqual(b.w2, l.w2); assert.deepEqual(b.b2, l.b2);
      assert.equal(b.threshold, l.threshold);
    });
    assert.deepEqual(back.rungs, small.rungs);
    assert.equal(predictorBytes(back), 6 * (2 * (24 * 384 + 1536 * 24) + 4 * (24 + 1536) + 4));
  });

  describe('nested ranks', () => {
    let held;
    before(async () => { held = await collectSamples(model, predictorSplits(model, text, { maxTokens: 512 }).held); });

    it('has the ladder 8, 16, 24 (ranks above the full one dropped), the full rung matching the layers', () => {
      assert.deepEqual(small.rungs.map((g) => g.rank), [8, 16, 24]);
      const full = small.rungs.at(-1);
      full.layers.forEach((G, l) => {
        assert.equal(G.threshold, small.layers[l].threshold);
        assert.deepEqual(G.b2, small.layers[l].b2);
      });
      for (const g of small.rungs) for (const G of g.layers) assert.ok(G.val_recall >= 0.975, `rung ${g.rank}: validation recall ${G.val_recall}`);
    });

    it("truncation is exactly the engine's math on the full weights' first r' components + the rung's b2", () => {
      const { hidden: d, ffn } = small, R = small.rank, yb = (ffn + 7) >> 3;
      for (const g of small.rungs) {
        const t = truncatePredictor(small, g.rank), r = g.rank;
        assert.equal(t.rank, r);
        assert.deepEqual(t.rungs.map((q) => q.rank), small.rungs.filter((q) => q.rank <= r).map((q) => q.rank));
        const ev = evaluatePredictor(t, held);
        ev.forEach((e, l) => {
          const L = small.layers[l], G = g.layers[l];
          assert.equal(t.layers[l].w2.length, ffn * r);
          // scalar recomputation from the full tensors: W1 rows k < r, W2 (ffn, R) columns k < r, the rung's b2
          const h = new Float64Array(r);
          let tp = 0, pred = 0, act = 0;
          for (let s = 0; s < held.n; s++) {
            for (let k = 0; k < r; k++) {
              let a = L.b1[k];
              for (let j = 0; j < d; j++) a += L.w1[k * d + j] * held.x[l][s * d + j];
              h[k] = a > 0 ? a : 0;
            }
            for (let i = 0; i < ffn; i++) {
              let z = G.b2[i];
              for (let k = 0; k < r; k++) z += L.w2[i * R + k] * h[k];
              const y = (held.active[l][s * yb + (i >> 3)] >> (i & 7)) & 1, p = z > G.threshold;
              act += y; pred += +p; tp += +(p && y === 1);
            }
          }
          assert.equal(e.recall, tp / act, `rung ${r} layer ${l} recall`);
          assert.equal(e.ratio, pred / act, `rung ${r} layer ${l} ratio`);
          // and the stored held-out measures are these
          assert.equal(G.recall, e.recall, `rung ${r} layer ${l}: stored recall ${G.recall}, measured ${e.recall}`);
          assert.equal(G.ratio, e.ratio);
          assert.equal(G.predicted_share, e.predicted_share);
          assert.deepEqual(t.report.layers[l], { layer: l, recall: G.recall, ratio: G.ratio, true_share: G.true_share, predicted_share: G.predicted_share, threshold: G.threshold });
        });
      }
      assert.deepEqual(small.report.layers, evaluatePredictor(small, held), 'the report is the full-rank held-out measure');
    });

    it('picks the largest rung ≤ the rank asked for; bytes at a rank; the largest rung within a byte budget', () => {
      assert.equal(truncatePredictor(small, 15).rank, 8);
      assert.equal(truncatePredictor(small, 16).rank, 16);
      assert.equal(truncatePredictor(small, 1000).rank, 24);
      assert.throws(() => truncatePredictor(small, 7), /below the predictor's smallest rung/);
      for (const r of [8, 20, 24]) assert.equal(predictorBytesAt(small, r), predictorBytes(truncatePredictor(small, r)));
      assert.equal(predictorBytesAt(small, 24), predictorBytes(small));
      assert.equal(rankForBytes(small, predictorBytesAt(small, 16)), 16);
      assert.equal(rankForBytes(small, predictorBytesAt(small, 16) - 1), 8);
      assert.equal(rankForBytes(small, 1000), undefined);
      // a truncated predictor saves and loads like any other (its ladder ends at its rank)
      const path = join(tmpDir('pred'), 't.fnpred');
      const t = truncatePredictor(small, 16);
      savePredictor(path, t);
      const back = loadPredictor(path);
      assert.equal(back.rank, 16);
      assert.deepEqual(back.layers.map((L) => L.threshold), small.rungs[1].layers.map((G) => G.threshold));
      assert.throws(() => savePredictor(path, { ...small, rungs: [] }), /no nested-rank rungs/);
      assert.throws(() => savePredictor(path, { ...small, rungs: [small.rungs[1], small.rungs[0], small.rungs[2]] }), /not ascending/);
    });
  });

  it('aborts through the signal', async () => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(trainPredictor(model, text, { rank: 4, maxTokens: 300, signal: ac.signal }), /abort/i);
  });

  describe('hostile files', () => {
    let good, bytes;
    before(() => {
      good = join(tmpDir('pred'), 'good.fnpred');
      savePredictor(good, small);
      bytes = readFileSync(good);
    });
    const variant = (mut) => { const b = Buffer.from(bytes); const out = join(tmpDir('pred'), 'bad.fnpred'); writeFileSync(out, mut(b) ?? b); return out; };
    it('truncated', () => {
      assert.throws(() => loadPredictor(variant((b) => b.subarray(0, 10))), /not a flashneuron predictor|truncated/);
      assert.throws(() => loadPredictor(variant((b) => b.subarray(0, 200))), /truncated/);
      assert.throws(() => loadPredictor(variant((b) => b.subarray(0, b.length - 100))), /truncated/);
    });
    it('bad magic and unsupported version', () => {
      assert.throws(() => loadPredictor(variant((b) => { b.write('GGUFxxxx', 0); })), /bad magic/);
      assert.throws(() => loadPredictor(variant((b) => { b.write('FNPRED02', 0); })), /not supported/);
    });
    it('checksum mismatches', () => {
      assert.throws(() => loadPredictor(variant((b) => { b[20] ^= 1; })), /header checksum mismatch/);
      assert.throws(() => loadPredictor(variant((b) => { b[b.length - 3] ^= 0x40; })), /data checksum mismatch/);
    });
    it("another model's predictor", async () => {
      const other = await loadModel(modelDir('llama-relu-mini'));
      try {
        assert.throws(() => loadPredictor(good, modelFingerprint(other.engine.header)), /belongs to another model/);
      } finally { other.close(); }
    });
    it('missing file', () => assert.throws(() => loadPredictor(join(tmpDir('pred'), 'none.fnpred')), /not found/));

    // rewrites the JSON header (valid CRC, data moved to the new aligned start)
    const withHeader = (fn) => variant((b) => {
      const hlen = b.readUInt32LE(8), start = Math.ceil((16 + hlen) / 64) * 64;
      const h = JSON.parse(b.subarray(16, 16 + hlen).toString('utf8'));
      fn(h);
      const json = Buffer.from(JSON.stringify(h)), nstart = Math.ceil((16 + json.length) / 64) * 64;
      const out = Buffer.alloc(nstart + b.length - start);
      b.copy(out, 0, 0, 8); out.writeUInt32LE(json.length, 8); out.writeUInt32LE(crc32(json), 12); json.copy(out, 16); b.copy(out, nstart, start);
      return out;
    });
    it('version 1 (no rank ladder) asks for a retrain', () => {
      assert.throws(() => loadPredictor(withHeader((h) => { h.version = 1; delete h.ranks; })), /version 1 has no nested-rank table.*retrain/);
      assert.throws(() => loadPredictor(withHeader((h) => { h.version = 3; })), /version 3 is not supported.*retrain/);
    });
    it('malformed rank ladders', () => {
      const bad = (fn, re) => assert.throws(() => loadPredictor(withHeader(fn)), re);
      bad((h) => { delete h.ranks; }, /no nested-rank table/);
      bad((h) => { h.ranks = []; }, /no nested-rank rungs/);
      bad((h) => { h.ranks.reverse(); }, /not ascending|last rung/);
      bad((h) => { h.ranks.pop(); }, /not the full rank 24/);
      bad((h) => { h.ranks[0].rank = 30; }, /not an integer in 1\.\.24/);
      bad((h) => { h.ranks[0].rank = 2.5; }, /not an integer/);
      bad((h) => { h.ranks[1].layers.pop(); }, /lists 5 layers, expected 6/);
      bad((h) => { h.ranks[0].layers[2].threshold = null; }, /layer 2 threshold is null/);
      bad((h) => { h.ranks[0].layers[0].b2.length -= 4; }, /b2 holds 6140 bytes/);
      bad((h) => { h.ranks[0].layers[0].b2.offset += 4; }, /not 64-byte aligned/);
      bad((h) => { h.ranks[2].layers[0].b2.offset = 1 << 30; }, /truncated/);
      bad((h) => { h.ranks[2].layers[1].threshold += 1; }, /full-rank rung's layer 1 threshold/);
    });
    it('rung data is CRC-covered', () => {
      // the last rung's b2 of the last layer ends the data region
      assert.throws(() => loadPredictor(variant((b) => { b[b.length - 1] ^= 0x01; })), /data checksum mismatch/);
    });
  });

  it('sidecarPredictorPath', () => {
    assert.equal(sidecarPredictorPath('/m/opt'), join('/m/opt', 'flashneuron.fnpred'));
    assert.equal(sidecarPredictorPath('/c/opt-1234.fnimg'), '/c/opt-1234.fnpred');
  });
});

// train-predictor reads the deciding FFN weights (gate_proj / fc1 rows) from the image as stored:
// rows of every dtype (a quantized row is blocks of 32, not d × an element size) and both layouts.
describe('predictor: training on images of every dtype and FFN layout', function () {
  this.timeout(300000);
  const mean = (a) => a.reduce((s, v) => s + v, 0) / a.length;
  let trained;
  const gate = {}, recall = {};
  before(() => { trained = dtypeTrainings(); });

  for (const dtype of DTYPES) {
    it(`llama-relu-mini as ${dtype}: trains (rank 16, PCA only) to held-out recall ≥ 0.8`, async () => {
      const { header: h, gate: g, predictor: p, fingerprint, nLayers } = await trained[dtype];
      assert.equal(h.ffn.dtype, dtype);
      gate[dtype] = g;
      assert.equal(p.fingerprint, fingerprint);
      assert.equal(p.layers.length, nLayers);
      assert.ok(p.report.heldout_tokens >= 50, `only ${p.report.heldout_tokens} held-out tokens`);
      for (const l of p.report.layers) {
        assert.ok(l.recall >= 0.7, `layer ${l.layer}: held-out recall ${l.recall}`);
        assert.ok(Number.isFinite(l.ratio) && l.ratio > 0, `layer ${l.layer}: ratio ${l.ratio}`);
      }
      recall[dtype] = p.report.layers.map((l) => l.recall);
      assert.ok(mean(recall[dtype]) >= 0.8, `mean held-out recall ${mean(recall[dtype])}`);
      console.log(`      ${dtype}: held-out recall ` + recall[dtype].map((r) => r.toFixed(3)).join(' '));
    });
  }

  it('the deciding weights read from each image match the f32 image within the dtype\'s rounding', function () {
    for (const dt of DTYPES) if (!gate[dt]) this.skip();
    const relErr = (a, b) => { let e = 0, n = 0; for (let i = 0; i < b.length; i++) { e += (a[i] - b[i]) ** 2; n += b[i] ** 2; } return Math.sqrt(e / n); };
    // the checkpoint is bf16: f16 and bf16 hold its values exactly; Q8_0 / Q4_0 round per block of 32
    const tol = { f16: 1e-6, bf16: 1e-6, q8_0: 0.01, q4_0: 0.12 };
    for (const [dt, t] of Object.entries(tol)) {
      assert.equal(gate[dt].length, gate.f32.length);
      const e = relErr(gate[dt], gate.f32);
      assert.ok(e <= t, `${dt}: relative error ${e} > ${t}`);
    }
  });

  it('the int8 (q8_0) predictor recalls like the f16 one', function () {
    if (!recall.q8_0 || !recall.f16) this.skip();
    const d = Math.abs(mean(recall.q8_0) - mean(recall.f16));
    assert.ok(d <= 0.01, `mean held-out recall q8_0 ${mean(recall.q8_0)} vs f16 ${mean(recall.f16)}`);
    recall.q8_0.forEach((r, l) => assert.ok(Math.abs(r - recall.f16[l]) <= 0.02, `layer ${l}: q8_0 ${r} vs f16 ${recall.f16[l]}`));
  });

  for (const name of MODELS) {
    it(`${name}: a split (--no-bundle) image gives the bundled image's deciding weights and fingerprint`, async () => {
      const a = await imagePath(name), b = await imagePath(name, { layout: 'split' });
      const ma = await loadModel(a), mb = await loadModel(b, { mode: 'naive' });
      try {
        assert.equal(mb.engine.header.ffn.layout, 'split');
        for (let l = 0; l < ma.config.nLayers; l++) {
          const A = ffnGateWeights(ma, l), B = ffnGateWeights(mb, l);
          assert.deepEqual(B.w, A.w, `layer ${l} weights`);
          assert.deepEqual(B.bias, A.bias, `layer ${l} bias`);
        }
        assert.equal(modelFingerprint(mb.engine.header), modelFingerprint(ma.engine.header));
      } finally { ma.close(); mb.close(); }
    });
  }
});

// The shipped predictors, measured with the real engine on golden text (not in calibration.txt):
// FFN inputs from our engine, truth = Hugging Face's activity bits from golden.json.
for (const name of MODELS) {
  describe(`shipped predictor: ${name}`, () => {
    it('loads for its model and reaches recall ≥ 0.97 at ratio ≤ 2.0 on every layer of golden text', async function () {
      const path = sidecarPredictorPath(modelDir(name));
      assert.ok(existsSync(path), `${path} is missing: run node bench/predictor.js`);
      const model = await loadModel(modelDir(name));
      try {
        const p = loadPredictor(path, modelFingerprint(model.engine.header));
        const g = golden(name);
        const s = await collectSamples(model, g.activations.map((a) => a.ids));
        const yb = (p.ffn + 7) >> 3;
        s.active = s.active.map((_, l) => {
          const bits = new Uint8Array(s.n * yb);
          let t = 0;
          for (const a of g.activations) { const m = Buffer.from(a.layers[l], 'base64'); assert.equal(m.length, a.ids.length * yb); bits.set(m, t * yb); t += a.ids.length; }
          return bits;
        });
        // Three independent scalar passes over the same samples (the predictor's own thresholds,
        // a lower one, rank 64): two run in worker threads while this thread computes the first.
        const others = Promise.all([inWorker('evaluate', p, s, Math.min(...p.layers.map((l) => l.threshold)) - 1), inWorker('evaluate', p, s, undefined, 64)]);
        others.catch(() => {});   // awaited below, after the first pass
        const ev = evaluatePredictor(p, s);
        const [loose, evm] = await others;
        for (const l of ev) {
          assert.ok(l.recall >= 0.97, `layer ${l.layer}: recall ${l.recall.toFixed(4)} < 0.97`);
          assert.ok(l.ratio <= 2.0, `layer ${l.layer}: predicted/true ratio ${l.ratio.toFixed(3)} > 2.0`);
        }
        // the global knob: a lower threshold predicts more and never loses recall
        loose.forEach((l, i) => assert.ok(l.recall >= ev[i].recall && l.ratio >= ev[i].ratio));
        console.log(`      ${name} rank ${p.rank}, ${s.n} golden tokens: ` + ev.map((l) => `L${l.layer} ${l.recall.toFixed(3)}/${l.ratio.toFixed(2)}`).join(' '));
        // the nested-rank ladder: 16 … full, held-out calibration-text measures stored per rung
        assert.equal(p.rungs.at(-1).rank, p.rank);
        assert.ok(p.rungs.length >= 6 && p.rungs[0].rank === 16, `ladder ${p.rungs.map((g) => g.rank)}`);
        p.rungs.at(-1).layers.forEach((G, l) => {
          assert.ok(G.recall >= 0.97 && G.ratio <= 2.0, `full rank layer ${l}: held-out recall ${G.recall} ratio ${G.ratio}`);
          assert.equal(G.threshold, p.layers[l].threshold);
        });
        for (const g of p.rungs) for (const [l, G] of g.layers.entries()) {
          assert.ok(G.val_recall >= 0.975, `rung ${g.rank} layer ${l}: validation recall ${G.val_recall}`);
          assert.ok(G.recall >= 0.96, `rung ${g.rank} layer ${l}: held-out recall ${G.recall} (calibrated to 0.975)`);
        }
        // a mid rung on golden text: truncation keeps recall near its calibration
        evm.forEach((l) => assert.ok(l.recall >= 0.955, `rank 64 layer ${l.layer}: golden recall ${l.recall.toFixed(4)}`));
        console.log(`      ${name} rank 64 (${(predictorBytesAt(p, 64) / 2 ** 20).toFixed(2)} MiB of ${(predictorBytes(p) / 2 ** 20).toFixed(2)}): ` + evm.map((l) => `L${l.layer} ${l.recall.toFixed(3)}/${l.ratio.toFixed(2)}`).join(' '));
      } finally {
        model.close();
      }
    });
  });
}
