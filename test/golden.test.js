// End to end against Hugging Face transformers: logits, the hidden state after layer 0 and greedy
// continuations of every golden prompt, for both reference models, both wasm builds and both
// ways the wasm reaches the file (node:wasi and the built-in WASI shim).
import assert from 'node:assert/strict';
import { Engine, loadModel, Tokenizer } from '../dist/src/index.js';
import { MODELS, golden, f32, maxAbsDiff, imagePath } from './helpers/models.js';
import { cleanupTmp } from './helpers/hostile.js';

after(cleanupTmp);

for (const name of MODELS) {
  describe(`golden: ${name}`, () => {
    const g = golden(name);
    for (const simd of [true, false]) {
      for (const wasi of simd ? ['node', 'shim'] : ['shim']) {
        it(`logits ≤ 1e-3 and layer-0 hidden ≤ 1e-4 on every prompt (${simd ? 'SIMD' : 'scalar'} build, ${wasi} WASI)`, async () => {
          const e = Engine.open(await imagePath(name), { simd, wasi });
          try {
            assert.equal(e.simd, simd);
            for (const p of g.prompts) {
              const hidden = e.captureLayer(0);
              p.ids.forEach((id, pos) => e.forward(id, pos));
              const dl = maxAbsDiff(e.logits(), f32(p.last_logits_f32_b64));
              const dh = maxAbsDiff(hidden(), f32(p.first_layer_hidden_last_f32_b64));
              assert.ok(dl <= 1e-3, `${p.text}: logits differ by ${dl}`);
              assert.ok(dh <= 1e-4, `${p.text}: hidden differs by ${dh}`);
            }
          } finally {
            e.close();
          }
        });
      }
    }

    it('greedy 24-token continuations equal greedy_ids exactly', async () => {
      const model = await loadModel(await imagePath(name));
      try {
        for (const p of g.prompts) {
          assert.deepEqual(model.tokenize(p.text), p.ids);
          const c = await model.complete(p.text, { temperature: 0, maxTokens: p.greedy_ids.length, stopAtEos: false });
          assert.deepEqual(c.ids, p.greedy_ids, p.text);
          assert.equal(c.text, model.tokenizer.decode(p.greedy_ids, { skipSpecialTokens: true }));
        }
      } finally {
        model.close();
      }
    });

    it('streams valid text: the pieces join to the decoded ids', async () => {
      const model = await loadModel(await imagePath(name));
      try {
        const p = g.prompts[0];
        let text = '';
        const ids = [];
        for await (const t of model.generate(p.text, { temperature: 0, maxTokens: 12 })) {
          assert.ok(!t.text.includes('\uFFFD'));
          text += t.text;
          if (t.id >= 0) ids.push(t.id);
        }
        assert.deepEqual(ids, p.greedy_ids.slice(0, 12));
        assert.equal(text, model.tokenizer.decode(ids, { skipSpecialTokens: true }));
      } finally {
        model.close();
      }
    });

    it('the image carries the tokenizer: ids equal golden with and without special tokens', async () => {
      const e = Engine.open(await imagePath(name));
      try {
        const tok = Tokenizer.fromJSON(e.tokenizerJson, e.header.tokenizer_config);
        for (const t of g.tokenizer) {
          assert.deepEqual(tok.encode(t.text), t.ids);
          assert.deepEqual(tok.encode(t.text, { addSpecialTokens: false }), t.ids_no_special);
        }
      } finally {
        e.close();
      }
    });
  });
}

describe('generation options', () => {
  it('seeded sampling is reproducible; stops at maxTokens; abort stops early', async () => {
    const model = await loadModel(await imagePath('opt-relu-mini'));
    try {
      const opts = { temperature: 0.9, topK: 20, topP: 0.9, seed: 42, maxTokens: 16, stopAtEos: false };
      const a = await model.complete('The meaning of the word', opts);
      const b = await model.complete('The meaning of the word', opts);
      assert.deepEqual(a.ids, b.ids);
      assert.equal(a.ids.length, 16);
      const c = await model.complete('The meaning of the word', { ...opts, seed: 7 });
      assert.notDeepEqual(a.ids, c.ids);
      const ac = new AbortController();
      let n = 0;
      for await (const _ of model.generate('The meaning of the word', { ...opts, maxTokens: 100, signal: ac.signal })) {
        if (++n === 3) ac.abort();
      }
      assert.equal(n, 3);
    } finally {
      model.close();
    }
  });

  it('perplexity equals the mean NLL computed token by token; windows score every token once', async () => {
    const model = await loadModel(await imagePath('llama-relu-mini'));
    try {
      const text = golden('llama-relu-mini').activations[0].text.slice(0, 500);
      const ids = model.tokenize(text);
      let nll = 0;
      for (let p = 0; p + 1 < ids.length; p++) {
        model.engine.forward(ids[p], p);
        const l = model.engine.logits();
        let m = -Infinity, s = 0;
        for (const v of l) m = Math.max(m, v);
        for (const v of l) s += Math.exp(v - m);
        nll -= l[ids[p + 1]] - m - Math.log(s);
      }
      const whole = await model.perplexity(text);
      assert.equal(whole.tokens, ids.length - 1);
      assert.ok(Math.abs(whole.nll - nll / whole.tokens) < 1e-9, `${whole.nll} vs ${nll / whole.tokens}`);
      const windowed = await model.perplexity(text, { context: 64, stride: 32 });
      assert.equal(windowed.tokens, whole.tokens);
      assert.ok(Number.isFinite(windowed.ppl) && Math.abs(Math.log(windowed.ppl / whole.ppl)) < 0.5, `${windowed.ppl} vs ${whole.ppl}`);
    } finally {
      model.close();
    }
  });
});
