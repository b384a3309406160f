// Sampler features against references computed here by hand: min-p, repetition / frequency /
// presence penalties, log-probabilities; and through the model: stop strings and logprobs.
import assert from 'node:assert/strict';
import { loadModel, Sampler } from '../dist/src/index.js';

const softmax = (l, t = 1) => { const m = Math.max(...l); const e = l.map((x) => Math.exp((x - m) / t)); const s = e.reduce((a, b) => a + b, 0); return e.map((x) => x / s); };
const logSoftmax = (l) => { let m = -Infinity; for (const x of l) if (x > m) m = x; let s = 0; for (const x of l) s += Math.exp(x - m); return Array.from(l, (x) => x - m - Math.log(s)); };
const argmax = (l) => { let b = 0; for (let i = 1; i < l.length; i++) if (l[i] > l[b]) b = i; return b; };
/** HF repetition penalty over `seen`, then OpenAI frequency / presence over `counts` (generated). */
function penalize(logits, seen, counts, { repetitionPenalty: r = 1, frequencyPenalty: f = 0, presencePenalty: p = 0 }) {
  const l = Array.from(logits);
  for (const id of seen) l[id] = l[id] > 0 ? l[id] / r : l[id] * r;
  for (const [id, c] of counts) if (c > 0) l[id] -= c * f + p;
  return l;
}
function draws(sampler, logits, n) {
  const hist = new Array(logits.length).fill(0);
  for (let i = 0; i < n; i++) hist[sampler.sample(logits)]++;
  return hist;
}

describe('sampler: by hand', () => {
  const L = new Float32Array([3.0, 2.6, 2.0, 1.0, 0.2, -1.5]);

  it('min-p keeps exactly the tokens with p ≥ minP · p_max (after temperature), in proportion', () => {
    for (const [minP, temperature] of [[0.5, 1], [0.2, 1], [0.2, 0.5], [0.05, 2]]) {
      const p = softmax(Array.from(L), temperature), pmax = Math.max(...p);
      const keep = p.map((x) => x >= minP * pmax);
      const mass = p.reduce((a, x, i) => a + (keep[i] ? x : 0), 0);
      const n = 40000;
      const hist = draws(new Sampler(L.length, { temperature, topK: 0, topP: 1, minP, seed: 7 }), L, n);
      hist.forEach((h, i) => {
        if (!keep[i]) assert.equal(h, 0, `token ${i} is below min-p ${minP} (T ${temperature}) yet drawn`);
        else assert.ok(Math.abs(h / n - p[i] / mass) < 0.015, `token ${i}: ${h / n} vs ${p[i] / mass}`);
      });
    }
    // minP 1 keeps only the most likely token; minP 0 is today's sampler exactly.
    assert.deepEqual(draws(new Sampler(L.length, { temperature: 1, topK: 0, topP: 1, minP: 1, seed: 3 }), L, 200), [200, 0, 0, 0, 0, 0]);
    const a = new Sampler(L.length, { seed: 11 }), b = new Sampler(L.length, { seed: 11, minP: 0 });
    for (let i = 0; i < 500; i++) assert.equal(a.sample(L), b.sample(L));
    assert.throws(() => new Sampler(4, { minP: 1.5 }), /min-p/);
  });

  it('repetition penalty (HF): divides positive, multiplies negative logits of prompt and output tokens', () => {
    const l = new Float32Array([2.0, 1.9, -1.0, 0.5]);
    const s = new Sampler(4, { temperature: 0, repetitionPenalty: 1.2 });
    s.prime([0, 2, 0]);
    assert.deepEqual(Array.from(s.penalize(l)), Array.from(new Float32Array(penalize(l, [0, 2], [], { repetitionPenalty: 1.2 }))));
    assert.equal(s.sample(l), 1, '2.0 / 1.2 < 1.9: the seen token loses');        // 1 is now generated, so seen
    assert.equal(s.sample(l), 0, 'not cumulative: 2 / 1.2 = 1.67 beats 1.9 / 1.2 = 1.58');
    assert.equal(new Sampler(4, { temperature: 0 }).sample(l), 0, 'without the penalty the argmax');
    // Not applied twice for a token seen many times; the logits passed in are never written.
    assert.deepEqual(Array.from(l), Array.from(new Float32Array([2.0, 1.9, -1.0, 0.5])));
  });

  it('frequency and presence penalties (OpenAI): over generated tokens only, by count and by presence', () => {
    const l = new Float32Array([1.0, 0.55, 0.23, -0.31]);
    for (const opts of [{ frequencyPenalty: 0.3 }, { presencePenalty: 0.6 }, { frequencyPenalty: 0.2, presencePenalty: 0.1 }, { frequencyPenalty: -0.1 }, { repetitionPenalty: 1.3, frequencyPenalty: 0.25, presencePenalty: 0.05 }]) {
      const s = new Sampler(4, { temperature: 0, ...opts });
      const prompt = [0, 3];
      s.prime(prompt);
      const counts = new Map(), seen = new Set(prompt), got = [], want = [];
      for (let t = 0; t < 12; t++) {
        const id = argmax(penalize(l, seen, counts, opts).map(Math.fround));   // the sampler holds f32 logits
        want.push(id); counts.set(id, (counts.get(id) ?? 0) + 1); seen.add(id);
        got.push(s.sample(l));
      }
      assert.deepEqual(got, want, JSON.stringify(opts));
    }
    // The prompt does not count for them: a prompt full of token 0 leaves 0 the first choice.
    const s = new Sampler(4, { temperature: 0, frequencyPenalty: 5, presencePenalty: 5 });
    s.prime([0, 0, 0, 0]);
    assert.equal(s.sample(l), 0);
    assert.equal(s.sample(l), 1, 'once generated, 0 is penalized');
  });

  it('logprobs: log softmax of the penalized, untempered logits; top-k sorted; their probabilities sum ≤ 1', () => {
    const s = new Sampler(L.length, { temperature: 0.7, topK: 3, logprobs: 3, repetitionPenalty: 1.5, seed: 5 });
    s.prime([0]);
    const seen = new Set([0]);
    for (let t = 0; t < 20; t++) {
      const ref = logSoftmax(penalize(L, seen, [], { repetitionPenalty: 1.5 }).map(Math.fround));
      const id = s.sample(L);
      seen.add(id);
      assert.ok(Math.abs(s.logprob - ref[id]) < 1e-6, `${s.logprob} vs ${ref[id]}`);
      const order = ref.map((x, i) => [x, i]).sort((a, b) => b[0] - a[0]).slice(0, 3);
      assert.deepEqual(Array.from(s.topIds), order.map((o) => o[1]));
      s.topLogprobs.forEach((x, i) => assert.ok(Math.abs(x - order[i][0]) < 1e-6));
      const mass = Array.from(s.topLogprobs).reduce((a, x) => a + Math.exp(x), 0);
      assert.ok(mass <= 1 + 1e-9 && mass > 0.5, `mass ${mass}`);
    }
  });
});

describe('sampler: through the model', () => {
  let model;
  const PROMPT = 'The meaning of the word';
  before(async () => { model = await loadModel(); });
  after(() => model?.close());

  /** Logits after prompt + generated ids, straight from the engine. */
  function logitsAfter(ids) {
    model.engine.reset();
    ids.forEach((id, p) => model.engine.forward(id, p));
    return Float64Array.from(model.engine.logits());
  }

  it('greedy with all three penalties equals a by-hand decode over the engine logits', async () => {
    const opts = { repetitionPenalty: 1.3, frequencyPenalty: 0.4, presencePenalty: 0.3 };
    const c = await model.complete(PROMPT, { temperature: 0, maxTokens: 10, stopAtEos: false, ...opts });
    const prompt = model.tokenize(PROMPT), seen = new Set(prompt), counts = new Map(), ids = [];
    for (let t = 0; t < 10; t++) {
      const id = argmax(penalize(logitsAfter([...prompt, ...ids]).map(Math.fround), seen, counts, opts));
      ids.push(id); seen.add(id); counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    assert.deepEqual(c.ids, ids);
    const plain = await model.complete(PROMPT, { temperature: 0, maxTokens: 10, stopAtEos: false });
    assert.notDeepEqual(plain.ids, c.ids, 'the penalties changed the text');
  });

  it('logprobs: the chosen token\'s equals log softmax at its id; top alternatives sum ≤ 1', async () => {
    for (const opts of [{ temperature: 0 }, { temperature: 0.9, seed: 4, topK: 0, topP: 1 }]) {
      const c = await model.complete(PROMPT, { maxTokens: 6, stopAtEos: false, logprobs: 5, ...opts });
      assert.equal(c.logprobs.length, c.ids.length);
      const prompt = model.tokenize(PROMPT);
      c.logprobs.forEach((lp, t) => {
        const ref = logSoftmax(logitsAfter([...prompt, ...c.ids.slice(0, t)]));
        assert.equal(lp.id, c.ids[t]);
        assert.equal(lp.token, model.tokenizer.decode([lp.id]));
        assert.ok(Math.abs(lp.logprob - ref[lp.id]) < 1e-4, `${lp.logprob} vs ${ref[lp.id]}`);
        assert.equal(lp.top.length, 5);
        for (let i = 1; i < 5; i++) assert.ok(lp.top[i - 1].logprob >= lp.top[i].logprob);
        lp.top.forEach((a) => assert.ok(Math.abs(a.logprob - ref[a.id]) < 1e-4));
        assert.ok(lp.top.reduce((a, x) => a + Math.exp(x.logprob), 0) <= 1 + 1e-6);
        if (opts.temperature === 0) assert.equal(lp.top[0].id, lp.id);
      });
      // The stream carries the same entries.
      const streamed = [];
      for await (const t of model.generate(PROMPT, { maxTokens: 6, stopAtEos: false, logprobs: 5, ...opts })) if (t.id >= 0) streamed.push(t.logprobs);
      assert.deepEqual(streamed, c.logprobs);
    }
  });

  it('stop strings: one spanning a token boundary ends the text right before it; the stream holds back', async () => {
    const N = 24, base = { temperature: 0, maxTokens: N, stopAtEos: false };
    const pieces = [];
    for await (const t of model.generate(PROMPT, base)) pieces.push(t);
    const full = pieces.map((t) => t.text).join('');
    // A boundary between two tokens with at least two characters each side, after the first few.
    let cut = -1, pos = 0, stop;
    for (let i = 0; i + 1 < pieces.length; i++) {
      pos += pieces[i].text.length;
      if (i >= 2 && pieces[i].text.trim().length >= 2 && pieces[i + 1].text.trim().length >= 2) { cut = pos; break; }
    }
    assert.ok(cut > 0, `no boundary found in ${JSON.stringify(full)}`);
    stop = full.slice(cut - 2, cut + 2);
    const expected = full.slice(0, full.indexOf(stop));
    const streamed = [];
    for await (const t of model.generate(PROMPT, { ...base, stop })) streamed.push(t);
    const c = await model.complete(PROMPT, { ...base, stop: ['never appears ☃', stop] });
    assert.equal(c.text, expected, `stop ${JSON.stringify(stop)} in ${JSON.stringify(full)}`);
    assert.equal(streamed.map((t) => t.text).join(''), expected);
    assert.ok(c.ids.length < N);
    assert.deepEqual(c.ids, pieces.slice(0, c.ids.length).map((t) => t.id), 'the ids are the unstopped ones up to the token that completed the stop');
    assert.ok(model.tokenizer.decode(c.ids, { skipSpecialTokens: true }).includes(stop));
    // Every piece streamed before the end is decided text: nothing that could begin the stop string was let out early.
    let sofar = '';
    for (const t of streamed) { sofar += t.text; assert.ok(expected.startsWith(sofar)); }

    // A stop string that only begins at the very end is held back, then released when generation ends.
    const tail = full.slice(-3) + '\u0000never';
    const held = [];
    for await (const t of model.generate(PROMPT, { ...base, stop: tail })) held.push(t);
    assert.equal(held.map((t) => t.text).join(''), full);
    assert.equal(held.at(-1).id, -1, 'the held-back text comes last');
    assert.ok(full.endsWith(held.at(-1).text) && held.at(-1).text.length >= 3);
    assert.equal((await model.complete(PROMPT, { ...base, stop: tail })).text, full);

    // A stop string at the very start gives empty text; bad stop values are refused.
    assert.equal((await model.complete(PROMPT, { ...base, stop: full.slice(0, 3) })).text, '');
    await assert.rejects(model.complete(PROMPT, { ...base, stop: '' }), /stop/);
  });

  it('default options leave sampled output unchanged from a plain seeded run', async () => {
    const a = await model.complete(PROMPT, { maxTokens: 16, seed: 9 });
    const b = await model.complete(PROMPT, { maxTokens: 16, seed: 9, minP: 0, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0, logprobs: 0, stop: [] });
    assert.deepEqual(b.ids, a.ids);
    assert.equal(b.text, a.text);
    assert.equal(b.logprobs, undefined);
  });
});
