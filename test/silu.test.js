// Sparse mode on a SiLU-gated model (llama-silu-mini) by calibrated |silu(gate·x)·up·x| cuts:
// at a cut of 0 it is the dense model (golden greedy ids, every io path, the cache streaming);
// cuts calibrated on the first 85 % of the calibration text give the target sparsity on the
// held-out rest (both rules: the product, and CATS' |silu(gate·x)|); the thresholds file is
// checked like the other formats.
import assert from 'node:assert/strict';
import { closeSync, copyFileSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel, readImageHeaderFile, section } from '../dist/src/index.js';
import { decodeThresholds, encodeThresholds, withSparsity } from '../dist/src/predictor/thresholds.js';
import { predictorSplits } from '../dist/src/predictor/samples.js';
import { ROOT } from './helpers/models.js';
import { cleanupTmp, tmpDir } from './helpers/hostile.js';
import { siluCalibrated, siluImage } from './helpers/silu.js';
import { inWorker } from './helpers/worker.js';

after(cleanupTmp);

const DIR = join(ROOT, 'test/fixtures/llama-silu-mini');
const golden = JSON.parse(readFileSync(join(DIR, 'golden.json'), 'utf8'));
const text = readFileSync(join(ROOT, 'models/calibration.txt'), 'utf8');
const ZERO = new Array(6).fill(0);

describe('SiLU sparse mode (calibrated magnitude thresholds): llama-silu-mini', function () {
  let image, dense, calibrated;
  before(async () => {
    // The image and its cuts (sparsity 0.5, 4000 tokens) are browser-silu.test.js's too: made once.
    image = await siluImage();
    calibrated = await siluCalibrated();
    dense = await loadModel(image, { device: 'cpu' });
  });
  after(() => { dense?.close(); });

  it('dense gives the golden greedy ids', async () => {
    for (const p of golden.prompts) {
      const c = await dense.complete(p.text, { temperature: 0, maxTokens: p.greedy_ids.length, stopAtEos: false });
      assert.deepEqual(c.ids, p.greedy_ids, p.text);
    }
  });

  for (const [name, opts] of [
    ['wasi reads, caches holding the FFN', {}],
    ['wasi reads, 48-row caches (LRU evictions, streamed neurons)', { cacheRows: 48 }],
    ['parallel host reads (io async), 48-row caches', { io: 'async', cacheRows: 48 }],
    ['a read thread (io thread), 48-row caches', { io: 'thread', cacheRows: 48 }],
    ['checked on every read (verify always)', { verify: 'always', cacheRows: 48 }],
    ['the CATS rule (gate resident; up rows and down columns read), 48-row caches', { siluRule: 'gate', verify: 'always', cacheRows: 48 }],
    ['the CATS rule, io async', { siluRule: 'gate', io: 'async', cacheRows: 48 }],
  ]) {
    it(`sparsity 0 gives exactly the dense greedy ids: ${name}`, async () => {
      const m = await loadModel(image, { device: 'cpu', mode: 'sparse', ffnThresholds: ZERO, ...opts });
      try {
        assert.equal(m.options.siluSparse, true);
        for (const p of golden.prompts.slice(0, opts.cacheRows ? 3 : undefined)) {
          const c = await m.complete(p.text, { temperature: 0, maxTokens: p.greedy_ids.length, stopAtEos: false });
          assert.deepEqual(c.ids, p.greedy_ids, p.text);
          // Only down columns are read (a third of each bundle) where reads minimise bytes; host
          // reads planned from the device profile may read through gaps, never past the layer.
          const cap = opts.io === 'async' ? dense.engine.ffnBytes : dense.engine.ffnBytes * (opts.siluRule === 'gate' ? 2 : 1) / 3;
          assert.ok(c.stats.bytes_read_per_token <= cap + 4096, `${c.stats.bytes_read_per_token}`);
        }
      } finally { m.close(); }
    });
  }

  it('calibrated cuts match the reference (transformers) within 12 % and give the target sparsity ±3 points on held-out text', async () => {
    const ref = Object.values(golden.magnitude_by_layer).map((L) => L.thr_sparsity_50);
    calibrated.thresholds.forEach((t, l) => assert.ok(Math.abs(t / ref[l] - 1) < 0.12, `layer ${l}: ${t} vs ${ref[l]}`));
    // CATS' cuts (its |silu(gate·x)| is plain JS over every gate row) are calibrated on the dense
    // image in a worker thread while this one measures the product rule's.
    const cats = inWorker('calibrate', image, { sparsity: 0.5, statistic: 'abs_silu_gate', maxTokens: 2000 });
    cats.catch(() => {});   // awaited in the loop
    for (const [s, cuts, rule] of [[0.5, calibrated], [0.7, calibrated], [0.5, cats, 'gate']]) {
      const t = await cuts;
      const m = await loadModel(image, { device: 'cpu', mode: 'sparse', memory: '70%', siluRule: rule, ffnThresholds: withSparsity(t, s).thresholds });
      try {
        const held = predictorSplits(m, text).held.slice(0, 4);
        const L = m.config.nLayers, ffn = m.config.ffn, dropped = new Array(L).fill(0);
        let n = 0;
        for (const w of held) {
          m.engine.reset();
          for (let p = 0; p < w.length; p++) {
            m.engine.forward(w[p], p);
            if (p === 0) continue;
            n++;
            for (let l = 0; l < L; l++) dropped[l] += 1 - m.engine.predicted(l).length / ffn;
          }
        }
        for (let l = 0; l < L; l++) assert.ok(Math.abs(dropped[l] / n - s) <= 0.03, `${rule ?? 'product'} sparsity ${s}, layer ${l}: measured ${(dropped[l] / n).toFixed(3)}`);
        assert.ok(n >= 500);
      } finally { m.close(); }
    }
  });

  it('a down column changed on flash after loading fails its checksum when read (one line; the caches are reset)', async () => {
    const copy = join(tmpDir('silu-bad'), 'bad.fnimg');
    copyFileSync(image, copy);
    const h = readImageHeaderFile(copy), at = section(h, 'ffn.3').offset + 7 * h.ffn.bundle_bytes + h.ffn.down + 5;
    const m = await loadModel(copy, { device: 'cpu', mode: 'sparse', ffnThresholds: ZERO });
    try {
      const fd = openSync(copy, 'r+');
      writeSync(fd, Buffer.from([readFileSync(copy)[at] ^ 0x40]), 0, 1, at);
      closeSync(fd);
      await assert.rejects(m.complete('The meaning of the word', { temperature: 0, maxTokens: 2 }),
        (e) => /FFN bundle of layer 3, neuron 7 read from flash fails its checksum/.test(e.message) && !e.message.includes('\n'));
    } finally { m.close(); }
  });

  it('thresholds files: round trip, checksum, model fingerprint, sparsity range — one clear line each', async () => {
    const text1 = encodeThresholds(calibrated);
    assert.deepEqual(decodeThresholds(text1, 'x.fnthr', calibrated.fingerprint), calibrated);
    assert.throws(() => decodeThresholds(text1.replace('"sparsity":0.5', '"sparsity":0.6'), 'x.fnthr'), /x\.fnthr: thresholds file checksum mismatch/);
    assert.throws(() => decodeThresholds('{}', 'x.fnthr'), /not a thresholds file/);
    assert.throws(() => decodeThresholds(text1, 'x.fnthr', 'llama-6x384x1024-0000000000000000'), /calibrated for another model/);
    assert.throws(() => encodeThresholds({ ...calibrated, sparsity: 1 }), /sparsity must be ≥ 0 and < 1/);
    assert.throws(() => withSparsity(calibrated, -0.1), /sparsity must be a number ≥ 0 and < 1/);
    const other = join(tmpDir('silu-other'), 'other.fnthr');
    writeFileSync(other, encodeThresholds({ ...calibrated, fingerprint: 'llama-6x384x1024-0123456789abcdef' }));
    await assert.rejects(loadModel(image, { device: 'cpu', memory: '70%', thresholdsPath: other }), (e) => /calibrated for another model/.test(e.message) && !e.message.includes('\n'));
    await assert.rejects(loadModel(image, { device: 'cpu', mode: 'sparse' }), /needs calibrated thresholds: run "flashneuron calibrate/);
    const good = join(tmpDir('silu-good'), 'good.fnthr');
    writeFileSync(good, text1);
    await assert.rejects(loadModel(image, { device: 'cpu', memory: '70%', thresholdsPath: good, sparsity: 1 }), /sparsity must be a number ≥ 0 and < 1 \(got 1\)/);
    // Under a budget a thresholds file makes sparse the default mode.
    const m = await loadModel(image, { device: 'cpu', memory: '70%', thresholdsPath: good });
    try { assert.equal(m.options.mode, 'sparse'); assert.equal(m.options.siluSparse, true); } finally { m.close(); }
  });
});
