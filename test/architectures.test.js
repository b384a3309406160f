// The model families real ReLU checkpoints use (test/fixtures/replicas/README.md): ProSparse's
// FATReLU and TurboSparse's dReLU Llamas, Llama-3's layout, Falcon (fused grouped q/k/v, two
// LayerNorms, parallel blocks), Phi-2 (partial rotary, one LayerNorm for parallel blocks, lm_head
// bias), OPT and Llama from PyTorch .bin files. Each replica converts, runs dense at f32 to
// transformers' last logits (≤ 1e-3) and greedy ids, and from flash with an oracle (the dense
// pass's active neurons) to the same ids; the activations the engine reports are each family's
// own (FATReLU's threshold, dReLU's product), checked against the weights; sliding windows,
// llama3 rope scaling and the refusals are checked on patched copies.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Engine, convertHF, openHFCheckpoint, parseHFConfig } from '../dist/src/index.js';
import { widenToF32 } from '../dist/src/format/dtype.js';
import { gpuLacks } from '../dist/src/gpu/webgpu.js';
import { modelTensors, readSpec } from '../dist/src/format/hf.js';
import { ROOT, f32, maxAbsDiff } from './helpers/models.js';
import { cleanupTmp, copyModel, patchJson, readJson, tmpDir, writeSafetensors } from './helpers/hostile.js';

after(cleanupTmp);

const DIR = join(ROOT, 'test', 'fixtures', 'replicas');
/** Replica → the activation its config must map to. */
const REPLICAS = {
  'prosparse-tiny': 'fatrelu', 'turbosparse-mistral-tiny': 'drelu', 'llama3-relu-tiny': 'relu', 'phi2-relu-tiny': 'relu',
  'falcon-relu-tiny': 'relu', 'relullama-tiny': 'relu', 'opt-relu-bin-tiny': 'relu', 'spm-only-relu-tiny': 'relu',
};
const goldenOf = (dir) => JSON.parse(readFileSync(join(dir, 'golden.json'), 'utf8'));
const argmax = (v) => { let b = 0; for (let i = 1; i < v.length; i++) if (v[i] > v[b]) b = i; return b; };
const activeIds = (a) => { const ids = []; for (let i = 0; i < a.length; i++) if (a[i] !== 0) ids.push(i); return ids; };

let work;
const images = new Map();
/** The image of a replica folder (or a patched copy), converted once. */
async function imageOf(dir, opts) {
  const key = dir + JSON.stringify(opts ?? {});
  if (!images.has(key)) {
    work ??= tmpDir('arch');
    const out = join(work, `${images.size}.fnimg`);
    await convertHF(dir, out, undefined, opts);
    images.set(key, out);
  }
  return images.get(key);
}

/** Runs the prompt then `steps` greedy tokens; returns the logits after the prompt and the ids. */
function greedy(e, ids, steps, each) {
  ids.forEach((id, pos) => { each?.(pos); e.forward(id, pos); });
  const last = e.logits().slice(), out = [];
  for (let s = 0, pos = ids.length; s < steps; s++, pos++) {
    out.push(argmax(e.logits()));
    if (s + 1 < steps) { each?.(pos); e.forward(out[s], pos); }
  }
  return { last, ids: out };
}

describe('architectures: each replica against transformers (dense, f32)', function () {
  this.timeout(300000);
  for (const [name, act] of Object.entries(REPLICAS)) {
    it(`${name} (${act}): last logits ≤ 1e-3 and 16 greedy ids on every golden prompt`, async () => {
      const dir = join(DIR, name), g = goldenOf(dir);
      const e = Engine.open(await imageOf(dir));
      try {
        assert.equal(e.config.act, act);
        let worst = 0;
        for (const p of g.prompts) {
          const r = greedy(e, p.ids, p.greedy_ids.length);
          worst = Math.max(worst, maxAbsDiff(r.last, f32(p.last_logits_f32_b64)));
          assert.deepEqual(r.ids, p.greedy_ids, p.text);
        }
        assert.ok(worst <= 1e-3, `logits differ by ${worst}`);
      } finally {
        e.close();
      }
    });
  }
});

describe('architectures: sparse mode with an oracle gives the dense greedy ids', function () {
  this.timeout(300000);
  for (const name of Object.keys(REPLICAS)) {
    it(`${name}: the true active set of each layer, read from flash through the neuron cache`, async () => {
      const dir = join(DIR, name), g = goldenOf(dir), path = await imageOf(dir);
      const dense = Engine.open(path), sparse = Engine.open(path, { mode: 'sparse' });
      try {
        const L = dense.config.nLayers;
        for (const p of g.prompts.slice(0, 3)) {
          sparse.reset();
          let worst = 0, active = 0, steps = 0;
          // The dense shadow runs each token first; its nonzero activations are the oracle's set.
          const oracle = () => { for (let l = 0; l < L; l++) { const a = activeIds(dense.activations(l)); active += a.length; sparse.predict(l, a); } };
          const run = (id, pos) => { dense.forward(id, pos); oracle(); sparse.forward(id, pos); steps++; worst = Math.max(worst, maxAbsDiff(sparse.logits(), dense.logits())); };
          p.ids.forEach((id, pos) => run(id, pos));
          const ids = [];
          for (let s = 0, pos = p.ids.length; s < p.greedy_ids.length; s++, pos++) {
            ids.push(argmax(sparse.logits()));
            if (s + 1 < p.greedy_ids.length) run(ids[s], pos);
          }
          assert.deepEqual(ids, p.greedy_ids, p.text);
          assert.ok(worst < 1e-4, `${p.text}: sparse logits differ from dense by ${worst}`);
          assert.ok(active < steps * L * dense.config.ffn, 'every neuron active: the oracle tested nothing');
        }
      } finally {
        dense.close(); sparse.close();
      }
    });
  }

  for (const name of ['prosparse-tiny', 'turbosparse-mistral-tiny']) {
    it(`${name}: the unbundled layout with a small cache streams neurons (one by one) to the same logits`, async () => {
      const dir = join(DIR, name), g = goldenOf(dir);
      const dense = Engine.open(await imageOf(dir)), sparse = Engine.open(await imageOf(dir, { layout: 'split' }), { mode: 'sparse', cacheRows: 8 });
      try {
        const L = dense.config.nLayers;
        let worst = 0;
        g.prompts[2].ids.forEach((id, pos) => {
          dense.forward(id, pos);
          for (let l = 0; l < L; l++) sparse.predict(l, activeIds(dense.activations(l)));
          sparse.forward(id, pos);
          worst = Math.max(worst, maxAbsDiff(sparse.logits(), dense.logits()));
        });
        assert.ok(worst < 1e-4, `logits differ by ${worst}`);
      } finally {
        dense.close(); sparse.close();
      }
    });
  }
});

/** A checkpoint tensor as f32. */
function tensorF32(ck, name) {
  const t = ck.tensor(name);
  return widenToF32(ck.readTensor(name), t.dtype);
}
const dotRow = (w, row, x) => { let s = 0; for (let j = 0; j < x.length; j++) s += w[row * x.length + j] * x[j]; return s; };
const geluNew = (a) => 0.5 * a * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (a + 0.044715 * a ** 3)));

describe("architectures: activations(l) are each family's own, from the weights", function () {
  this.timeout(300000);
  // [replica, config patch, tensor names of layer l, the activation from pre-activations]
  const cases = [
    ['prosparse-tiny', null, (l) => [`model.layers.${l}.mlp.gate_proj.weight`, `model.layers.${l}.mlp.up_proj.weight`], (g, u) => (g >= 0.1 ? g : 0) * u],
    ['turbosparse-mistral-tiny', null, (l) => [`model.layers.${l}.mlp.gate_proj.weight`, `model.layers.${l}.mlp.up_proj.weight`], (g, u) => Math.max(g, 0) * Math.max(u, 0)],
    ['falcon-relu-tiny', null, (l) => [null, `transformer.h.${l}.mlp.dense_h_to_4h.weight`], (_, u) => Math.max(u, 0)],
    ['phi2-relu-tiny', { hidden_act: 'gelu_new' }, (l) => [null, `model.layers.${l}.mlp.fc1.weight`, `model.layers.${l}.mlp.fc1.bias`], (_, u) => geluNew(u)],
  ];
  for (const [name, patch, names, act] of cases) {
    it(`${name}${patch ? ` with ${JSON.stringify(patch)}` : ''}: every layer's activations from its FFN input`, async () => {
      let dir = join(DIR, name);
      if (patch) { dir = copyModel(dir); patchJson(join(dir, 'config.json'), (c) => ({ ...c, ...patch })); }
      const ck = await openHFCheckpoint(dir);
      const e = Engine.open(await imageOf(dir));
      try {
        const ids = goldenOf(join(DIR, name)).prompts[0].ids;
        ids.forEach((id, pos) => e.forward(id, pos));
        let worst = 0, zeros = 0;
        for (let l = 0; l < e.config.nLayers; l++) {
          const [gn, un, bn] = names(l), x = e.ffnInput(l), got = e.activations(l);
          const gw = gn && tensorF32(ck, gn), uw = tensorF32(ck, un), b = bn && tensorF32(ck, bn);
          for (let i = 0; i < e.config.ffn; i++) {
            const g = gw ? dotRow(gw, i, x) : 0, u = dotRow(uw, i, x) + (b ? b[i] : 0), want = act(g, u);
            // Active exactly where the family says (pre-activations at a threshold, within rounding, aside).
            const near = (v, at) => Math.abs(v - at) < 1e-4;
            if (!((gw && (near(g, 0) || near(g, 0.1))) || near(u, 0))) assert.equal(got[i] === 0, want === 0, `layer ${l} neuron ${i}: ${got[i]} vs ${want}`);
            if (want === 0) zeros++;
            worst = Math.max(worst, Math.abs(got[i] - want));
          }
        }
        assert.ok(worst < 1e-4, `activations differ by ${worst}`);
        if (!patch) assert.ok(zeros > 0, 'no inactive neuron');
      } finally {
        e.close(); ck.close();
      }
    });
  }

  it('phi-2 with gelu_new runs dense; sparse mode is refused by name', async () => {
    const dir = copyModel(join(DIR, 'phi2-relu-tiny'));
    patchJson(join(dir, 'config.json'), (c) => ({ ...c, hidden_act: 'gelu_new' }));
    const path = await imageOf(dir);
    assert.throws(() => Engine.open(path, { mode: 'sparse' }),
      /^Error: sparse mode needs a ReLU-family activation \(relu, fatrelu, drelu\); PhiForCausalLM uses gelu_tanh: use mode dense, naive or hybrid$/);
    for (const mode of ['naive', 'hybrid']) {
      const a = Engine.open(path), b = Engine.open(path, { mode });
      try {
        a.forward(5, 0); b.forward(5, 0);
        assert.ok(maxAbsDiff(a.logits(), b.logits()) < 1e-4, mode);
      } finally {
        a.close(); b.close();
      }
    }
  });
});

describe("architectures: Falcon-7B's layout (one input_layernorm, per-head fused q/k/v) computes what 40B's does", function () {
  this.timeout(300000);
  // The replica is 40B's layout. With ln_mlp set to ln_attn its function is also that of a
  // "RW" Falcon (new_decoder_architecture false, multi_query false: one norm for both, and
  // query_key_value as per head [q, k, v]) whose KV head h is the replica's KV head of h's
  // group: two checkpoints, two layouts, one function.
  it("query_key_value (and its bias) split as HF's _split_heads does, for all three layouts", () => {
    const base = readJson(join(DIR, 'falcon-relu-tiny', 'config.json'));
    for (const [patch, groups] of [[{}, 2], [{ new_decoder_architecture: false, multi_query: true }, 1], [{ new_decoder_architecture: false, multi_query: false }, 4]]) {
      const cfg = parseHFConfig({ ...base, ...patch, bias: true, num_hidden_layers: 1 });
      const L = modelTensors(cfg).layers[0], hd = cfg.headDim, d = cfg.hidden, heads = cfg.nHeads, per = heads / groups;
      const fusedRows = (heads + 2 * groups) * hd;
      // Fused row r holds the value r (a bias) or r in each of its d columns (the weight).
      const fake = { readTensor: (name) => new Uint8Array(Float32Array.from({ length: fusedRows * (name.endsWith('bias') ? 1 : d) }, (_, i) => (name.endsWith('bias') ? i : Math.floor(i / d))).buffer) };
      // HF: view(..., groups, per + 2, hd): query = [:, :-2], key = [-2], value = [-1]
      const rowsOf = (which) => Array.from({ length: which === 'q' ? heads : groups }, (_, j) => {
        const g = which === 'q' ? Math.floor(j / per) : j, slot = which === 'q' ? j % per : which === 'k' ? per : per + 1;
        return Array.from({ length: hd }, (_, i) => (g * (per + 2) + slot) * hd + i);
      }).flat();
      for (const which of ['q', 'k', 'v']) {
        const bias = new Float32Array(readSpec(fake, L[`${which}B`]).buffer);
        assert.deepEqual(Array.from(bias), rowsOf(which), `${JSON.stringify(patch)} ${which} bias`);
        const w = new Float32Array(readSpec(fake, L[which]).buffer);
        assert.deepEqual(Array.from({ length: w.length / d }, (_, r) => w[r * d]), rowsOf(which), `${JSON.stringify(patch)} ${which}`);
      }
    }
  });

  it('the same logits from both layouts', async () => {
    const src = join(DIR, 'falcon-relu-tiny'), ck = await openHFCheckpoint(src);
    const c = ck.config, hd = c.headDim, per = c.nHeads / c.nKvHeads, d = c.hidden;
    const raw = readJson(join(src, 'config.json'));
    const make = (config, rename) => {
      const dir = copyModel(src, { skip: ['pytorch_model.bin.index.json', 'pytorch_model-00001-of-00002.bin', 'pytorch_model-00002-of-00002.bin', 'config.json'] });
      const tensors = {};
      for (const name of Object.keys(readJson(join(src, 'pytorch_model.bin.index.json')).weight_map)) {
        const t = ck.tensor(name), out = rename(name, tensorF32(ck, name));
        for (const [n, data] of Object.entries(out)) tensors[n] = { dtype: 'F32', shape: data.length === t.shape.reduce((x, y) => x * y, 1) ? t.shape : [data.length / d, d], data };
      }
      writeSafetensors(join(dir, 'model.safetensors'), tensors);
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...raw, ...config }));
      return dir;
    };
    const lnAttn = (name) => name.replace('ln_mlp', 'ln_attn');
    const grouped = make({}, (name) => ({ [name]: /ln_mlp/.test(name) ? tensorF32(ck, lnAttn(name)) : tensorF32(ck, name) }));
    const rw = make({ new_decoder_architecture: false, multi_query: false, num_kv_heads: undefined }, (name, w) => {
      if (/ln_mlp/.test(name)) return {};
      if (/ln_attn/.test(name)) return { [name.replace('ln_attn', 'input_layernorm')]: w };
      if (!/query_key_value/.test(name)) return { [name]: w };
      const out = new Float32Array(3 * c.nHeads * hd * d), row = hd * d;
      for (let h = 0; h < c.nHeads; h++) {
        const g = Math.floor(h / per), base = g * (per + 2) * row;
        out.set(w.subarray(base + (h % per) * row, base + (h % per + 1) * row), (3 * h) * row);
        out.set(w.subarray(base + per * row, base + (per + 1) * row), (3 * h + 1) * row);
        out.set(w.subarray(base + (per + 1) * row, base + (per + 2) * row), (3 * h + 2) * row);
      }
      return { [name]: out };
    });
    ck.close();
    const a = Engine.open(await imageOf(grouped)), b = Engine.open(await imageOf(rw));
    try {
      assert.deepEqual([a.config.parallelAttn, a.config.nKvHeads], ['two-norms', 2]);
      assert.deepEqual([b.config.parallelAttn, b.config.nKvHeads], ['one-norm', 4]);
      let worst = 0;
      goldenOf(src).prompts[2].ids.forEach((id, pos) => { a.forward(id, pos); b.forward(id, pos); worst = Math.max(worst, maxAbsDiff(a.logits(), b.logits())); });
      assert.ok(worst < 1e-4, `logits differ by ${worst}`);
    } finally {
      a.close(); b.close();
    }
  });
});

describe('architectures: sliding window, llama3 rope scaling', function () {
  this.timeout(300000);
  it('a binding sliding window attends to the last W positions: logits depend on the last 2(W-1)+1 tokens only (2 layers)', async () => {
    const W = 3, dir = copyModel(join(DIR, 'turbosparse-mistral-tiny'));
    patchJson(join(dir, 'config.json'), (c) => ({ ...c, sliding_window: W }));
    const ids = goldenOf(join(DIR, 'turbosparse-mistral-tiny')).prompts[2].ids.slice(0, 12);
    assert.ok(ids.length === 12);
    const windowed = Engine.open(await imageOf(dir)), full = Engine.open(await imageOf(join(DIR, 'turbosparse-mistral-tiny')));
    try {
      assert.equal(windowed.config.slidingWindow, W);
      assert.equal(full.config.slidingWindow, 4096);   // below max_position_embeddings: kept, binds past 4096 tokens
      ids.forEach((id, pos) => { windowed.forward(id, pos); full.forward(id, pos); });
      const whole = windowed.logits().slice();
      assert.ok(maxAbsDiff(whole, full.logits()) > 1e-3, 'the window changed nothing');
      // Rotary attention depends on relative positions: the same last 5 tokens from position 0.
      const tail = ids.slice(ids.length - (2 * (W - 1) + 1));
      windowed.reset();
      tail.forEach((id, pos) => windowed.forward(id, pos));
      assert.ok(maxAbsDiff(windowed.logits(), whole) < 1e-4, `${maxAbsDiff(windowed.logits(), whole)}`);
      for (const kvDtype of ['f16']) {
        const h = Engine.open(await imageOf(dir), { kvDtype });
        try {
          ids.forEach((id, pos) => h.forward(id, pos));
          assert.ok(maxAbsDiff(h.logits(), whole) < 2e-2, `f16 KV cache: ${maxAbsDiff(h.logits(), whole)}`);
        } finally {
          h.close();
        }
      }
    } finally {
      windowed.close(); full.close();
    }
    assert.equal(parseHFConfig({ ...readJson(join(DIR, 'turbosparse-mistral-tiny', 'config.json')), sliding_window: 32768 }).slidingWindow, undefined);
  });

  it("llama3 rope scaling: the rotary tables are HF's _compute_llama3_parameters", async () => {
    const dir = copyModel(join(DIR, 'llama3-relu-tiny'));
    const scaling = { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
    patchJson(join(dir, 'config.json'), (c) => ({ ...c, rope_scaling: scaling }));
    const ctx = 512, e = Engine.open(await imageOf(dir), { contextLength: ctx }), plain = Engine.open(await imageOf(join(DIR, 'llama3-relu-tiny')), { contextLength: ctx });
    try {
      const c = e.config, half = c.headDim / 2;
      assert.deepEqual(c.ropeScaling, { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 });
      const bands = new Set();
      const inv = Array.from({ length: half }, (_, i) => {
        const f = 1 / c.ropeTheta ** ((2 * i) / c.headDim), wavelen = (2 * Math.PI) / f;
        if (wavelen < 8192 / 4) { bands.add('high'); return f; }
        if (wavelen > 8192 / 1) { bands.add('low'); return f / 32; }
        bands.add('mid');
        const s = (8192 / wavelen - 1) / (4 - 1);
        return (1 - s) * (f / 32) + s * f;
      });
      assert.equal(bands.size, 3, 'the head dims cover all three bands');
      const cos = new Float32Array(e.wasm.memory.buffer, e.wasm.rope_cos_ptr(), ctx * half);
      const cos0 = new Float32Array(plain.wasm.memory.buffer, plain.wasm.rope_cos_ptr(), ctx * half);
      let worst = 0, changed = 0;
      for (let p = 0; p < ctx; p++) {
        for (let i = 0; i < half; i++) {
          worst = Math.max(worst, Math.abs(cos[p * half + i] - Math.cos(Math.fround(p * Math.fround(inv[i])))));
          changed = Math.max(changed, Math.abs(cos[p * half + i] - cos0[p * half + i]));
        }
      }
      assert.ok(worst < 1e-4, `rope cos differs by ${worst}`);
      assert.ok(changed > 0.1, `scaling changed the tables by ${changed} only`);
    } finally {
      e.close(); plain.close();
    }
  });
});

describe('architectures: what is not computed is refused in one line naming the key and value', () => {
  const cfg = (name, patch) => ({ ...readJson(join(DIR, name, 'config.json')), ...patch });
  const refuses = (c, re) => assert.throws(() => parseHFConfig(c), (e) => { assert.match(e.message, re); assert.ok(!e.message.includes('\n')); return true; });
  it('rope scaling types and keys', () => {
    refuses(cfg('llama3-relu-tiny', { rope_scaling: { rope_type: 'yarn', factor: 4 } }), /^unsupported rope type "yarn" \(rope_scaling\) for LlamaForCausalLM \(supported: default, llama3\)$/);
    refuses(cfg('llama3-relu-tiny', { rope_scaling: { type: 'linear', factor: 2 } }), /unsupported rope type "linear"/);
    refuses(cfg('llama3-relu-tiny', { rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192, mscale: 1 } }),
      /^unsupported rope_scaling key "mscale" = 1 for LlamaForCausalLM \(rope type "llama3"\)$/);
    refuses(cfg('llama3-relu-tiny', { rope_scaling: { rope_type: 'llama3', factor: 8 } }), /"low_freq_factor" must be a positive number, got nothing/);
    refuses(cfg('phi2-relu-tiny', { rope_scaling: { type: 'dynamic', factor: 2 } }), /^unsupported rope type "dynamic" \(rope_scaling\) for PhiForCausalLM \(supported: default\)$/);
    refuses(cfg('falcon-relu-tiny', { rope_scaling: { type: 'linear', factor: 2 } }), /^unsupported rope type "linear" \(rope_scaling\) for FalconForCausalLM/);
  });
  it('Falcon: alibi, activations, post-LN residuals', () => {
    refuses(cfg('falcon-relu-tiny', { alibi: true }), /^unsupported alibi=true for FalconForCausalLM/);
    refuses(cfg('falcon-relu-tiny', { activation: 'gelu' }), /^unsupported activation "gelu" for FalconForCausalLM \(supported: relu\)$/);
    refuses(cfg('falcon-relu-tiny', { apply_residual_connection_post_layernorm: true }), /apply_residual_connection_post_layernorm=true/);
  });
  it('activations the custom classes do not compute', () => {
    refuses(cfg('turbosparse-mistral-tiny', { hidden_act: 'silu' }), /^unsupported activation "silu" for BambooForCausalLM \(supported: relu, i\.e\. dReLU/);
    refuses(cfg('prosparse-tiny', { hidden_act_param: undefined }), /"hidden_act_param" \(the FATReLU threshold\) must be a number, got nothing/);
    refuses(cfg('prosparse-tiny', { model_type: 'llama' }), /^unsupported model_type "llama" for SparseLlamaForCausalLM \(expected "sparsellama"\)$/);
    refuses(cfg('relullama-tiny', { hidden_act: 'fatrelu' }), /^unsupported activation "fatrelu" for LlamaForCausalLM/);
    refuses(cfg('phi2-relu-tiny', { hidden_act: 'gelu' }), /^unsupported activation "gelu" for PhiForCausalLM \(supported: relu, gelu_new, gelu_pytorch_tanh\)$/);
    refuses(cfg('phi2-relu-tiny', { qk_layernorm: true }), /qk_layernorm=true/);
  });
  it('what each family maps to, from its keys', () => {
    const falcon = parseHFConfig(readJson(join(DIR, 'falcon-relu-tiny', 'config.json')));
    assert.deepEqual([falcon.arch, falcon.nKvHeads, falcon.norm, falcon.parallelAttn, falcon.tieWordEmbeddings], ['falcon', 2, 'layer', 'two-norms', true]);
    const rw = parseHFConfig(cfg('falcon-relu-tiny', { new_decoder_architecture: false, multi_query: true, num_kv_heads: undefined }));
    assert.deepEqual([rw.nKvHeads, rw.parallelAttn], [1, 'one-norm']);
    const phi = parseHFConfig(readJson(join(DIR, 'phi2-relu-tiny', 'config.json')));
    assert.deepEqual([phi.rotaryDim, phi.headDim, phi.lmHeadBias, phi.vocab], [6, 16, true, 8320]);
    const pro = parseHFConfig(readJson(join(DIR, 'prosparse-tiny', 'config.json')));
    assert.deepEqual([pro.act, pro.actParam], ['fatrelu', 0.1]);
    const llama3 = parseHFConfig(readJson(join(DIR, 'llama3-relu-tiny', 'config.json')));
    assert.deepEqual([llama3.ropeTheta, llama3.headDim, llama3.tieWordEmbeddings, llama3.vocab, llama3.ropeScaling], [500000, 16, true, 128256, undefined]);
  });
  it('the WebGPU backend names what it does not run; --device auto then stays on the wasm', async () => {
    for (const [name, what] of [['falcon-relu-tiny', /falcon architecture/], ['phi2-relu-tiny', /phi architecture/], ['prosparse-tiny', /activation fatrelu/], ['turbosparse-mistral-tiny', /activation drelu/]]) {
      assert.match(gpuLacks(parseHFConfig(readJson(join(DIR, name, 'config.json'))), 2048), what);
    }
    assert.equal(gpuLacks(parseHFConfig(readJson(join(DIR, 'llama3-relu-tiny', 'config.json'))), 2048), undefined);
    const path = await imageOf(join(DIR, 'phi2-relu-tiny'));
    const fake = () => ({ name: 'fake adapter', fallback: false, f16: false,
      device: { pushErrorScope() {}, popErrorScope: async () => null, addEventListener() {}, destroy() { this.gone = true; } } });
    const e = Engine.open(path);
    try {
      const g = fake();
      assert.equal(await e.setDevice('auto', { gpu: g }), 'cpu');
      assert.ok(g.device.gone, 'the adapter was given back');
      e.forward(5, 0);
      await assert.rejects(e.setDevice('gpu', { gpu: fake() }), /^Error: the WebGPU backend does not run the phi architecture \(PhiForCausalLM\); use the wasm \(--device cpu\)$/);
    } finally {
      e.close();
    }
  });
});
