// One model, many callers: generate / complete / perplexity take turns through the model's FIFO
// queue, so concurrent requests give exactly their serial results (no timing assumptions).
import assert from 'node:assert/strict';
import { loadModel } from '../dist/src/index.js';

const PROMPTS = [
  'The meaning of the word', 'Once upon a time', 'The cat sat on', 'In the beginning',
  'My favourite food is', 'The capital of France', 'He opened the door and', 'Hello, world',
];
const OPTS = { temperature: 0, maxTokens: 12, stopAtEos: false };
const TEXT = 'The meaning of the word is not what you think it is. It is a thing that people say.';

async function serial(model, prompts = PROMPTS, opts = OPTS) {
  const out = [];
  for (const p of prompts) out.push(await model.complete(p, opts));
  return out;
}

for (const [label, loadOpts] of [['dense', {}], ["memory: '60%' (sparse, flash reads)", { memory: '60%' }]]) {
  describe(`concurrency: one model, many callers (${label})`, () => {
    let model, expected;
    before(async () => {
      model = await loadModel(undefined, loadOpts);
      if (loadOpts.memory) assert.equal(model.engine.mode, 'sparse');
      expected = await serial(model);
    });
    after(() => model?.close());

    it('8 concurrent complete() calls each equal their serial result', async () => {
      const got = await Promise.all(PROMPTS.map((p) => model.complete(p, OPTS)));
      got.forEach((c, i) => {
        assert.deepEqual(c.ids, expected[i].ids, PROMPTS[i]);
        assert.equal(c.text, expected[i].text, PROMPTS[i]);
      });
    });

    it('generate() iterators read round robin, one next() each, equal their serial results', async () => {
      const its = PROMPTS.map((p) => model.generate(p, OPTS));
      const ids = PROMPTS.map(() => []), texts = PROMPTS.map(() => ''), done = PROMPTS.map(() => undefined);
      while (done.some((d) => !d)) {
        // One next() per live iterator, issued in turn; each is awaited before the next is asked.
        for (let i = 0; i < its.length; i++) {
          if (done[i]) continue;
          const r = await its[i].next();
          if (r.done) { done[i] = r.value; continue; }
          if (r.value.id >= 0) ids[i].push(r.value.id);
          texts[i] += r.value.text;
        }
      }
      for (let i = 0; i < PROMPTS.length; i++) {
        assert.deepEqual(ids[i], expected[i].ids, PROMPTS[i]);
        assert.equal(texts[i], expected[i].text, PROMPTS[i]);
        assert.deepEqual(done[i].ids, expected[i].ids, PROMPTS[i]);
      }
    });

    it('round robin with every next() of a round in flight at once', async () => {
      const its = PROMPTS.map((p) => model.generate(p, OPTS));
      const ids = PROMPTS.map(() => []), done = PROMPTS.map(() => false);
      while (done.some((d) => !d)) {
        const rs = await Promise.all(its.map((it, i) => (done[i] ? null : it.next())));
        rs.forEach((r, i) => { if (!r) return; if (r.done) done[i] = true; else if (r.value.id >= 0) ids[i].push(r.value.id); });
      }
      ids.forEach((x, i) => assert.deepEqual(x, expected[i].ids, PROMPTS[i]));
    });

    it('perplexity alongside generation gives the serial perplexity', async () => {
      const alone = await model.perplexity(TEXT, { context: 16 });
      const [a, p, b] = await Promise.all([
        model.complete(PROMPTS[0], OPTS), model.perplexity(TEXT, { context: 16 }), model.complete(PROMPTS[1], OPTS),
      ]);
      assert.equal(p.nll, alone.nll);
      assert.equal(p.tokens, alone.tokens);
      assert.deepEqual(a.ids, expected[0].ids);
      assert.deepEqual(b.ids, expected[1].ids);
    });

    it('an abort of a queued request and of a running one; the model goes on working', async () => {
      // Queued: A holds the engine, B waits behind it and is aborted, C waits behind B.
      const queued = new AbortController();
      const a = model.complete(PROMPTS[2], OPTS);
      const b = model.complete(PROMPTS[3], { ...OPTS, signal: queued.signal });
      const ppl = model.perplexity(TEXT, { context: 16, signal: queued.signal });
      const c = model.complete(PROMPTS[4], OPTS);
      queued.abort();
      await assert.rejects(b, (e) => e.name === 'AbortError' && e.message === 'the request was aborted');
      await assert.rejects(ppl, { name: 'AbortError' });
      assert.deepEqual((await a).ids, expected[2].ids);
      assert.deepEqual((await c).ids, expected[4].ids);
      // An already-aborted signal rejects at once.
      await assert.rejects(model.complete(PROMPTS[6], { ...OPTS, signal: queued.signal }), { name: 'AbortError' });

      // Running: it stops at the next token; the text so far is its serial prefix.
      const running = new AbortController();
      const it = model.generate(PROMPTS[5], { ...OPTS, signal: running.signal });
      const first = await it.next();
      assert.equal(first.done, false);
      // A sync call while a request holds the engine refuses clearly.
      assert.throws(() => model.nextToken([2, 100]), /synchronous.*running a request/);
      running.abort();
      const r = await it.next();
      assert.equal(r.done, true);
      assert.deepEqual(r.value.ids, [first.value.id]);
      assert.equal(r.value.ids[0], expected[5].ids[0]);
      assert.deepEqual((await model.complete(PROMPTS[5], OPTS)).ids, expected[5].ids);
      assert.equal(typeof model.nextToken([2, 100]), 'number');
    });

    it('an error in one request leaves the model usable; a reader that stops early frees the engine', async () => {
      const bad = model.complete([2, model.config.vocab + 5], OPTS);     // an id outside the vocabulary
      const good = model.complete(PROMPTS[7], OPTS);
      await assert.rejects(bad, /token id \d+ at position 1 is not in the vocabulary/);
      assert.deepEqual((await good).ids, expected[7].ids);
      for await (const t of model.generate(PROMPTS[0], OPTS)) { assert.ok(t.id >= 0); break; }
      assert.deepEqual((await model.complete(PROMPTS[1], OPTS)).ids, expected[1].ids);
    });
  });
}
