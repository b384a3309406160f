// SiLU sparse mode (calibrated |silu(gate·x)·up·x| cuts) across the families and image dtypes
// that stock SiLU checkpoints come in: Qwen2 (q/k/v biases, tied embeddings: the qwen2-silu-tiny
// replica, whose golden.json is scripts/reference/qwen2.py's), Mistral (llama-silu-mini's weights
// under a MistralForCausalLM config, through `flashneuron calibrate`), and llama-silu-mini
// converted to Q8_0 and Q4_0. At a cut of 0 each gives its own dense greedy ids (the quantized
// images: its dense logits within the noise of their int8 activations); at the
// calibrated default it reads less than naive mode. The config keys that would change Qwen2's
// attention are read as transformers reads them or refused in one line, and WebGPU refuses the
// mode in one line (no adapter needed to see it).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { convertHF, loadModel, parseHFConfig, readImageHeaderFile } from '../dist/src/index.js';
import { calibrateThresholds, decodeThresholds } from '../dist/src/predictor/thresholds.js';
import { modelFingerprint } from '../dist/src/predictor/format.js';
import { resolveOptions } from '../dist/src/core/options.js';
import { ROOT } from './helpers/models.js';
import { cleanupTmp, tmpDir } from './helpers/hostile.js';
import { inWorker } from './helpers/worker.js';

after(cleanupTmp);

const SILU_MINI = join(ROOT, 'test/fixtures/llama-silu-mini');
const QWEN2 = join(ROOT, 'test/fixtures/replicas/qwen2-silu-tiny');
const CLI = join(ROOT, 'bin/flashneuron.js');
const execFileAsync = promisify(execFile);
const text = readFileSync(join(ROOT, 'models/calibration.txt'), 'utf8');
const goldenOf = (dir) => JSON.parse(readFileSync(join(dir, 'golden.json'), 'utf8'));
const greedyOpts = (n) => ({ temperature: 0, maxTokens: n, stopAtEos: false });

/** Greedy ids of each prompt (ids given) on a loaded model. */
async function greedyIds(m, prompts, n) {
  const out = [];
  for (const p of prompts) out.push((await m.complete(p.ids, greedyOpts(n ?? p.greedy_ids.length))).ids);
  return out;
}

/** The logits at every position of `seq`, run token by token from position 0. */
async function logitsAlong(m, seq) {
  m.engine.reset();
  const out = [];
  for (let i = 0; i < seq.length; i++) { await m.engine.forwardAsync(seq[i], i); out.push(m.engine.logits().slice()); }
  return out;
}

/** A copy of `dir` whose config.json is patched (the other files linked). */
function patchedFolder(dir, patch, name) {
  const out = tmpDir(name);
  for (const f of readdirSync(dir)) if (f !== 'config.json') symlinkSync(join(dir, f), join(out, f));
  writeFileSync(join(out, 'config.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), ...patch }, null, 2));
  return out;
}

/**
 * At a cut of 0, SiLU sparse mode gives the image's dense greedy ids, with small neuron caches
 * (down columns evicted and read again) and, where `budget`, under a memory budget with the KV
 * cache and resident weights as dense holds them (a budget otherwise makes the KV cache f16 and
 * may hold gate and up as Q8_0, which moves the logits a little). At the calibrated 50 % it reads
 * less per token than naive mode (which reads the whole FFN). Returns the dense ids.
 * Quantized images (`noisy`) sum the dense FFN's down columns in parts (assembly/ffn-part.ts) and
 * the sparse mode's in the order they come: the last bits differ, and the int8 activations of the
 * next products round some entries the other way, which moves their logits by up to ~1 %. Those
 * are compared along the dense runs instead: within 3 % of the largest logit, the first id the same.
 */
async function siluChecks(image, prompts, n, calibration, budget, noisy = false) {
  const dense = await loadModel(image, { device: 'cpu' });
  let ids, t, along;
  try {
    ids = await greedyIds(dense, prompts, n);
    t = calibration ?? await calibrateThresholds(dense, text, modelFingerprint(dense.engine.header), { sparsity: 0.5, maxTokens: 1500 });
    if (noisy) { along = []; for (const [i, p] of prompts.entries()) along.push(await logitsAlong(dense, [...p.ids, ...ids[i]])); }
  } finally { dense.close(); }
  const zero = new Array(t.thresholds.length).fill(0);
  for (const opts of [{}, ...(budget ? [{ memory: budget, kvDtype: 'f32', residentDtype: 'stored' }] : [])]) {
    const sparse0 = await loadModel(image, { device: 'cpu', mode: 'sparse', cacheRows: 24, ffnThresholds: zero, ...opts });
    try {
      assert.equal(sparse0.options.siluSparse, true);
      if (!noisy) assert.deepEqual(await greedyIds(sparse0, prompts, n), ids, `sparsity 0 against dense ${JSON.stringify(opts)}`);
      else {
        for (const [i, p] of prompts.entries()) {
          const got = await logitsAlong(sparse0, [...p.ids, ...ids[i]]);
          let worst = 0, scale = 0;
          got.forEach((row, j) => row.forEach((v, k) => { worst = Math.max(worst, Math.abs(v - along[i][j][k])); scale = Math.max(scale, Math.abs(along[i][j][k])); }));
          assert.ok(worst <= 0.03 * scale, `prompt ${i}: logits differ by ${worst} (largest ${scale}) ${JSON.stringify(opts)}`);
        }
        const first = await greedyIds(sparse0, prompts, 1);
        assert.deepEqual(first.map((x) => x[0]), ids.map((x) => x[0]), `first ids at sparsity 0 ${JSON.stringify(opts)}`);
      }
    } finally { sparse0.close(); }
  }
  const bytes = {};
  for (const [mode, extra] of [['naive', {}], ['sparse', { ffnThresholds: t.thresholds, cacheRows: 24, ...(budget ? { memory: budget } : {}) }]]) {
    const m = await loadModel(image, { device: 'cpu', mode, ...extra });
    try {
      const c = await m.complete(prompts[0].ids, greedyOpts(12));
      assert.equal(c.ids.length, 12);
      bytes[mode] = c.stats.bytes_read_per_token;
    } finally { m.close(); }
  }
  assert.ok(bytes.sparse > 0 && bytes.sparse < bytes.naive, `bytes read per token: sparse ${bytes.sparse}, naive ${bytes.naive}`);
  return { ids, thresholds: t, bytes };
}

describe('SiLU sparse mode across families and image dtypes', function () {
  this.timeout(300000);
  // llama-silu-mini as Q8_0 and Q4_0 (plain JS, one thread): converted in worker threads while
  // the tests before theirs run.
  const quantized = {};
  before(() => {
    for (const dtype of ['q8_0', 'q4_0']) {
      const image = join(tmpDir(`silu-${dtype}`), `silu-${dtype}.fnimg`);
      quantized[dtype] = inWorker('convert', SILU_MINI, image, { dtype }).then(() => image);
      quantized[dtype].catch(() => {});   // its test reports a failure
    }
  });

  it('Qwen2ForCausalLM: q/k/v biases without an o_proj bias, tied head, no window unless use_sliding_window', () => {
    const cfg = JSON.parse(readFileSync(join(QWEN2, 'config.json'), 'utf8'));
    const c = parseHFConfig(cfg);
    assert.equal(c.architecture, 'Qwen2ForCausalLM');
    assert.equal(c.act, 'silu');
    assert.deepEqual([c.attnBias, c.attnOutBias, c.mlpBias, c.tieWordEmbeddings, c.ropeTheta, c.normEps], [true, false, false, true, 1e6, 1e-6]);
    assert.equal(c.slidingWindow, undefined);
    // attention_bias is Llama's key: Qwen2's biases do not follow it.
    assert.equal(parseHFConfig({ ...cfg, attention_bias: false }).attnBias, true);
    const { architectures, ...bare } = cfg;
    assert.equal(parseHFConfig(bare).architecture, 'Qwen2ForCausalLM', 'model_type qwen2');
    // use_sliding_window: the window binds on layers from max_window_layers on (or as layer_types says).
    const win = { ...cfg, use_sliding_window: true, sliding_window: 64 };
    assert.equal(parseHFConfig({ ...win, max_window_layers: 2 }).slidingWindow, undefined, 'no layer past max_window_layers');
    assert.equal(parseHFConfig({ ...win, max_window_layers: 0 }).slidingWindow, 64);
    assert.equal(parseHFConfig({ ...win, layer_types: ['sliding_attention', 'sliding_attention'] }).slidingWindow, 64);
    assert.equal(parseHFConfig({ ...win, sliding_window: null, max_window_layers: 0 }).slidingWindow, undefined);
    assert.equal(parseHFConfig({ ...cfg, use_sliding_window: false, sliding_window: 64, max_window_layers: 0 }).slidingWindow, undefined);
    for (const [patch, re] of [
      [{ ...win, max_window_layers: 1 }, /^unsupported use_sliding_window=true for Qwen2ForCausalLM: a 64-token window on some layers only \(layer 1 on\); supported: on every layer or none$/],
      [{ ...win, layer_types: ['full_attention', 'sliding_attention'] }, /a 64-token window on some layers only \(layer 1 on\)/],
      [{ ...win, layer_types: ['full_attention'] }, /"layer_types" must list "full_attention" or "sliding_attention" for each of the 2 layers/],
      [{ ...cfg, use_sliding_window: 'yes' }, /"use_sliding_window" must be true or false/],
      [{ ...cfg, use_mrope: true }, /unsupported use_mrope=true for Qwen2ForCausalLM/],
      [{ ...cfg, rope_scaling: { type: 'yarn', factor: 4 } }, /unsupported rope type "yarn"/],
    ]) {
      assert.throws(() => parseHFConfig(patch), (e) => re.test(e.message) && !e.message.includes('\n'), JSON.stringify(patch).slice(0, 80));
    }
  });

  it('qwen2-silu-tiny: the image holds q/k/v biases and no o_proj bias; calibrated SiLU sparse mode equals dense at 0 and reads less than naive', async () => {
    const image = join(tmpDir('silu-qwen2'), 'qwen2.fnimg');
    await convertHF(QWEN2, image);
    const h = readImageHeaderFile(image), roles = new Set(h.tensors.map((t) => t.role));
    for (const r of ['q_b', 'k_b', 'v_b']) assert.ok(roles.has(r), r);
    assert.ok(!roles.has('o_b') && !roles.has('lm_head'), 'no o_proj bias, tied head');
    const g = goldenOf(QWEN2);
    const { ids, bytes } = await siluChecks(image, g.prompts, 16);
    assert.deepEqual(ids, g.prompts.map((p) => p.greedy_ids), 'dense against the reference');
    assert.ok(bytes.sparse < 0.75 * bytes.naive, JSON.stringify(bytes));
  });

  it('MistralForCausalLM over llama-silu-mini\'s weights (no window binding): flashneuron calibrate, then the Llama config\'s cuts and ids', async () => {
    const g = goldenOf(SILU_MINI), prompts = g.prompts.slice(0, 3);
    const mistral = patchedFolder(SILU_MINI, { architectures: ['MistralForCausalLM'], model_type: 'mistral', sliding_window: 4096 }, 'silu-mistral');
    assert.equal(parseHFConfig(JSON.parse(readFileSync(join(mistral, 'config.json'), 'utf8'))).slidingWindow, undefined);
    const cache = tmpDir('silu-mistral-cache'), env = { ...process.env, FLASHNEURON_CACHE: cache };
    const results = {}, folders = [['llama', SILU_MINI], ['mistral', mistral]];
    const calibrate = ([name, dir]) => {
      const p = execFileAsync(process.execPath, [CLI, 'calibrate', '--sparsity', '0.5', '--model', dir, '--out', join(cache, `${name}.fnthr`), '--max-tokens', '1500', '--threads', '1', '--json',
        join(ROOT, 'models/calibration.txt')], { env, encoding: 'utf8' });
      p.child.stdin.end();
      return p;
    };
    // Mistral's calibration (its own folder, image in the cache and output) runs while Llama's
    // image is checked here.
    let next = calibrate(folders[0]);
    for (const [i, [name, dir]] of folders.entries()) {
      const out = join(cache, `${name}.fnthr`);
      const r = JSON.parse((await next).stdout);
      if (i + 1 < folders.length) { next = calibrate(folders[i + 1]); next.catch(() => {}); }
      assert.equal(r.path, out);
      r.heldout_sparsity.forEach((s, l) => assert.ok(Math.abs(s - 0.5) <= 0.05, `${name} layer ${l}: held-out sparsity ${s}`));
      const image = readdirSync(cache).filter((f) => f.endsWith('.fnimg')).map((f) => join(cache, f))
        .find((f) => readImageHeaderFile(f).config.architecture === (name === 'llama' ? 'LlamaForCausalLM' : 'MistralForCausalLM'));
      const t = decodeThresholds(readFileSync(out, 'utf8'), out);
      results[name] = { ...await siluChecks(image, prompts, undefined, t, '100%'), t };
      assert.deepEqual(results[name].ids, prompts.map((p) => p.greedy_ids), `${name} dense against transformers`);
      // The file found beside the model by loading: sparse becomes the default mode under a budget.
      const m = await loadModel(dir, { cacheDir: cache, device: 'cpu', memory: '70%', thresholdsPath: out });
      try { assert.equal(m.options.siluSparse, true); } finally { m.close(); }
    }
    assert.deepEqual(results.mistral.t.thresholds, results.llama.t.thresholds, 'the same weights give the same cuts');
    assert.deepEqual(results.mistral.ids, results.llama.ids);
    assert.equal(results.mistral.bytes.sparse, results.llama.bytes.sparse);
  });

  for (const dtype of ['q8_0', 'q4_0']) {
    it(`llama-silu-mini as ${dtype}: at a cut of 0 the image's dense logits (within its int8 noise), at the calibrated 50 % fewer bytes than naive`, async () => {
      const image = await quantized[dtype];
      assert.equal(readImageHeaderFile(image).ffn.dtype, dtype);
      const g = goldenOf(SILU_MINI);
      const { ids } = await siluChecks(image, g.prompts.slice(0, 3), undefined, undefined, '100%', true);
      // Quantized weights move the logits a little: most of the golden run survives.
      const agree = ids.flat().filter((id, i) => id === g.prompts.slice(0, 3).flatMap((p) => p.greedy_ids)[i]).length;
      if (dtype === 'q8_0') assert.ok(agree >= 0.5 * ids.flat().length, `${agree} of ${ids.flat().length} ids as bf16's`);
    });
  }

  it('--device gpu refuses SiLU sparse mode in one line; auto stays on the wasm', async () => {
    const config = parseHFConfig(JSON.parse(readFileSync(join(SILU_MINI, 'config.json'), 'utf8')));
    const facts = (gpu) => ({ config, modelBytes: 32 << 20, hasPredictor: false, hasThresholds: true, gpu, gpuWeights: true, cores: 2 });
    for (const gpu of ['hardware', 'software', 'none']) {
      assert.throws(() => resolveOptions({ memory: '70%', device: 'gpu' }, facts(gpu)),
        (e) => /^sparse mode on a SiLU model \(calibrated thresholds\) runs on the wasm: use --device cpu or auto/.test(e.message) && !e.message.includes('\n'), gpu);
    }
    const auto = resolveOptions({ memory: '70%' }, facts('hardware'));
    assert.deepEqual([auto.mode, auto.siluSparse, auto.device], ['sparse', true, 'cpu']);
    // Dense (no budget) still goes to a hardware adapter, and naive/hybrid may run there.
    assert.equal(resolveOptions({ device: 'auto' }, facts('hardware')).device, 'gpu');
    assert.equal(resolveOptions({ memory: '70%', mode: 'hybrid', device: 'gpu' }, facts('hardware')).device, 'gpu');
    // Through loading and the command line, whether or not this machine has an adapter.
    const cache = tmpDir('silu-gpu');
    await assert.rejects(loadModel(SILU_MINI, { cacheDir: cache, device: 'gpu', mode: 'sparse', ffnThresholds: new Array(6).fill(0) }),
      (e) => /^sparse mode on a SiLU model \(calibrated thresholds\) runs on the wasm/.test(e.message) && !e.message.includes('\n'));
  });
});
