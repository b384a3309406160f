// TEAL input sparsity (assembly/teal.ts, kernels/sparse-input.ts): the sparse-input kernel
// against its scalar reference for every weight dtype; a cut of 0 is the dense product bit for
// bit and the dense model's greedy ids; cuts calibrated on the first 85 % of the calibration text
// give the target input sparsity on the held-out rest; --teal without calibrated cuts is refused
// in one line; thread counts give the same ids; the thresholds file keeps loading version 1.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { instantiateEngine, loadModel } from '../dist/src/index.js';
import { quantize } from '../dist/src/format/dtype.js';
import { crc32 } from '../dist/src/format/crc32.js';
import { calibrateThresholds, decodeThresholds, encodeThresholds } from '../dist/src/predictor/thresholds.js';
import { predictorSplits } from '../dist/src/predictor/samples.js';
import { modelFingerprint } from '../dist/src/predictor/format.js';
import { resolveOptions } from '../dist/src/core/options.js';
import { measuredTeal } from '../dist/src/node/calibrate.js';
import { ROOT } from './helpers/models.js';
import { cleanupTmp, tmpDir } from './helpers/hostile.js';
import { siluImage } from './helpers/silu.js';
import { rng } from '../dist/src/predictor/util.js';   // deterministic (mulberry32): failures reproduce

after(cleanupTmp);

const text = readFileSync(join(ROOT, 'models/calibration.txt'), 'utf8');

const F = new Float32Array(1), U = new Uint32Array(F.buffer);
function half(v, bf) {
  F[0] = v;
  if (bf) return U[0] >>> 16;
  const s = (U[0] >>> 16) & 0x8000, a = Math.abs(v);
  if (a < 2 ** -24) return s;
  const e = Math.floor(Math.log2(a));
  if (e < -14) return s | Math.round(a / 2 ** -24);
  let m = Math.round((a / 2 ** e - 1) * 1024), ee = e;
  if (m === 1024) { m = 0; ee++; }
  return s | ((ee + 15) << 10) | m;
}

const DTYPES = [['f32', 0], ['f16', 1], ['bf16', 2], ['q8_0', 3], ['q4_0', 4]];

describe('sparse-input kernel (TEAL)', () => {
  for (const build of ['simd', 'plain']) {
    const { exports: e } = instantiateEngine(build === 'plain' ? { simd: false } : {});
    e._initialize();
    for (const [name, code] of DTYPES) {
      it(`${build}, ${name}: gathered = scalar reference bit for bit; mask at cut 0 = matvec bit for bit; parts = whole`, () => {
        const rand = rng(7 + code);
        for (const [rows, cols] of [[13, 64], [40, 384], [7, 96]]) {
          const vals = Float32Array.from({ length: rows * cols }, () => (rand() * 2 - 1) * 0.1);
          let bytes;
          if (name === 'f32') bytes = new Uint8Array(vals.buffer);
          else if (name === 'q8_0' || name === 'q4_0') bytes = quantize(name, vals, cols);
          else bytes = new Uint8Array(Uint16Array.from(vals, (v) => half(v, name === 'bf16')).buffer);
          const stride = bytes.length / rows;
          const w = e.alloc(bytes.length, 64), x = e.alloc(cols * 4, 64), xz = e.alloc(cols * 4, 64), xp = e.alloc(e.prep_len(cols) * 4 * 2, 64);
          const idx = e.alloc(cols * 4, 64), xs = e.alloc(cols * 4, 64), o1 = e.alloc(rows * 4, 64), o2 = e.alloc(rows * 4, 64), o3 = e.alloc(rows * 4, 64);
          new Uint8Array(e.memory.buffer, w, bytes.length).set(bytes);
          const xv = Float32Array.from({ length: cols }, () => (rand() * 2 - 1) * 2);
          new Float32Array(e.memory.buffer, x, cols).set(xv);
          const view = (p) => new Float32Array(e.memory.buffer, p, rows).slice();
          const abs = Array.from(xv, Math.abs).sort((a, b) => a - b);
          for (const share of [0, 0.25, 0.5, 0.9]) {
            const t = share === 0 ? 0 : abs[Math.floor(share * cols)];
            const m = e.gather_inputs(x, cols, t, idx, xs);
            assert.equal(m, xv.filter((v) => Math.abs(v) >= t).length);
            e.sparse_matvec(code, w, stride, idx, xs, m, o1, rows, cols);
            e.sparse_matvec_ref(code, w, stride, x, t, o2, rows, cols);
            assert.deepEqual(view(o1), view(o2), `gathered vs reference, ${rows}x${cols}, cut ${t}`);
            for (const parts of [2, 3]) {
              for (let p = 0; p < parts; p++) e.sparse_matvec_part(code, w, stride, idx, xs, m, o3, rows, cols, p, parts);
              assert.deepEqual(view(o3), view(o1), `${parts} parts`);
            }
            // Masked input through the ordinary matvec: at cut 0 the dense product itself.
            assert.equal(e.mask_inputs(x, cols, t, xz), m);
            e.matvec(code, w, stride, xz, xp, o3, rows, cols);
            e.matvec(code, w, stride, x, xp, o1, rows, cols);
            if (share === 0) assert.deepEqual(view(o3), view(o1), 'cut 0 = matvec');
            else { // the same sum up to the order of additions
              const r = view(o2), g = view(o3);
              for (let i = 0; i < rows; i++) assert.ok(Math.abs(r[i] - g[i]) <= 2e-2 * (1 + Math.abs(r[i])), `masked ${name} row ${i}: ${g[i]} vs ${r[i]}`);
            }
          }
        }
      });
    }
  }
});

describe('TEAL on llama-silu-mini', function () {
  let image, dense, cal, thr, held;
  before(async () => {
    image = await siluImage();   // converted once per run (test/helpers/silu.js)
    const rec = await loadModel(image, { device: 'cpu', tealRecord: true });
    try {
      cal = await calibrateThresholds(rec, text, modelFingerprint(rec.engine.header), { sparsity: 0.5, teal: 0.4, maxTokens: 4000 });
      held = predictorSplits(rec, text).held;
    } finally { rec.close(); }
    thr = join(tmpDir('teal'), 'silu.fnthr');
    writeFileSync(thr, encodeThresholds(cal));
    dense = await loadModel(image, { device: 'cpu', threads: 1 });
  });
  after(() => { dense?.close(); });

  const greedy = async (m, prompt = 'The meaning of the word') => (await m.complete(prompt, { temperature: 0, maxTokens: 24, stopAtEos: false })).ids;

  it('at cut 0 (dense and SiLU sparse mode) gives the same logits and greedy ids as without it', async () => {
    const zero = await loadModel(image, { device: 'cpu', threads: 1, thresholdsPath: thr, teal: 0 });
    try {
      assert.deepEqual(await greedy(zero), await greedy(dense));
      dense.engine.reset(); zero.engine.reset();
      dense.engine.forward(5, 0); zero.engine.forward(5, 0);
      assert.deepEqual(zero.engine.logits().slice(), dense.engine.logits().slice());
    } finally { zero.close(); }
    const sparse = await loadModel(image, { device: 'cpu', threads: 1, mode: 'sparse', thresholdsPath: thr });
    const sparse0 = await loadModel(image, { device: 'cpu', threads: 1, mode: 'sparse', thresholdsPath: thr, teal: 0 });
    try { assert.deepEqual(await greedy(sparse0), await greedy(sparse)); } finally { sparse.close(); sparse0.close(); }
  });

  it('calibrated cuts give the target input sparsity within ±3 points on held-out text', async () => {
    const m = await loadModel(image, { device: 'cpu', threads: 1, thresholdsPath: thr, teal: true });
    try {
      const got = measuredTeal(m, held.slice(0, 6));
      for (const [l, g] of got.entries()) for (const [k, s] of g.entries()) assert.ok(Math.abs(s - 0.4) <= 0.03, `layer ${l} input ${k}: ${s}`);
    } finally { m.close(); }
  });

  it('runs in SiLU sparse mode, and thread counts give identical ids', async () => {
    const ids = [];
    for (const [threads, mode] of [[1, 'dense'], [3, 'dense'], [1, 'sparse'], [3, 'sparse']]) {
      const m = await loadModel(image, { device: 'cpu', threads, mode, thresholdsPath: thr, teal: true });
      try { ids.push(await greedy(m)); } finally { m.close(); }
    }
    assert.deepEqual(ids[1], ids[0]);
    assert.deepEqual(ids[3], ids[2]);
  });

  it('without calibrated TEAL cuts --teal is refused in one line (API and CLI)', async () => {
    const plain = join(tmpDir('teal'), 'plain.fnthr');
    writeFileSync(plain, encodeThresholds({ ...cal, teal: undefined }));
    await assert.rejects(loadModel(image, { device: 'cpu', thresholdsPath: plain, teal: true }), (e) => /calibrate .*--teal/.test(e.message) && !e.message.includes('\n'));
    await assert.rejects(loadModel(image, { device: 'cpu', teal: true }), (e) => /calibrate .*--teal/.test(e.message) && !e.message.includes('\n'));
    const r = spawnSync(process.execPath, [join(ROOT, 'bin/flashneuron.js'), 'generate', '--model', image, '--teal', '-n', '2', 'Hi'], { encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /calibrate .*--teal/);
    const facts = { config: dense.config, modelBytes: 1e6, hasPredictor: false, hasThresholds: true, hasTeal: true, gpu: 'hardware', gpuWeights: true };
    assert.throws(() => resolveOptions({ teal: true, device: 'gpu' }, facts), /teal .*wasm/);
    assert.equal(resolveOptions({ teal: true }, facts).device, 'cpu');
    assert.throws(() => resolveOptions({ teal: true, mode: 'naive' }, facts), /teal runs in dense mode/);
  });

  it('the thresholds file keeps TEAL cuts and still loads version 1', () => {
    const fp = cal.fingerprint, again = decodeThresholds(encodeThresholds(cal), 'x', fp);
    assert.deepEqual(again.teal, cal.teal);
    const { teal, ...v1 } = cal;
    const body = { format: 'flashneuron-thresholds', version: 1, fingerprint: fp, statistic: v1.statistic, nLayers: v1.nLayers, ffn: v1.ffn, sparsity: v1.sparsity, thresholds: v1.thresholds, quantiles: v1.quantiles, tokens: v1.tokens };
    const old = decodeThresholds(JSON.stringify({ ...body, crc32: crc32(new TextEncoder().encode(JSON.stringify(body))) }), 'old', fp);
    assert.equal(old.teal, undefined);
    assert.deepEqual(old.thresholds, cal.thresholds);
    const bad = JSON.parse(encodeThresholds(cal));
    bad.teal.cuts = bad.teal.cuts.slice(1);
    const { crc32: _, ...rest } = bad;
    assert.throws(() => decodeThresholds(JSON.stringify({ ...rest, crc32: crc32(new TextEncoder().encode(JSON.stringify(rest))) }), 'bad', fp), /malformed teal cuts/);
  });
});
