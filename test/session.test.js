// Conversations: a session's next turn prefills only what is new (the KV cache keeps the
// positions an earlier request ran with the same tokens), and its answers equal a from-scratch
// run over the whole conversation; sessions sharing a model never mix.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ChatSession, chatPrompt, loadModel } from '../dist/src/index.js';
import { ROOT } from './helpers/models.js';
import { cleanupTmp, tmpDir } from './helpers/hostile.js';

after(cleanupTmp);
const CHATML = join(ROOT, 'test', 'fixtures', 'replicas', 'turbosparse-mistral-tiny');
const greedy = { temperature: 0, maxTokens: 12, stopAtEos: false };

// Dense, and the FFN on flash: sparse (the model's shipped predictor, LRU neuron caches under a
// budget) and naive. On flash a turn continues only from neuron caches that hold exactly what a
// fresh run would at that point, so its answer still equals the from-scratch one.
for (const [label, flash] of [['dense', {}], ['sparse, 60% budget', { memory: '60%', mode: 'sparse' }], ['naive', { mode: 'naive' }]]) describe(`chat sessions (${label})`, function () {
  let model, fresh, cache;
  before(async () => {
    cache = tmpDir('sessioncache');
    model = await loadModel(CHATML, { cacheDir: cache, ...flash });
    fresh = await loadModel(CHATML, { cacheDir: cache, ...flash });
    assert.equal(model.options.mode, flash.mode ?? 'dense');
  });
  after(() => { model?.close(); fresh?.close(); });

  /** A from-scratch answer: another model instance, its KV cache emptied by an unrelated request first. */
  async function scratch(messages) {
    await fresh.complete([1, 2, 3], { ...greedy, maxTokens: 1 });
    return fresh.complete(chatPrompt(fresh, messages), greedy);
  }

  it('the second turn prefills only the new tokens, and answers as a from-scratch run does', async () => {
    const s = new ChatSession(model, { system: 'You are terse.' });
    const a1 = await s.reply('Hello there', greedy);
    assert.equal(a1.stats.prefill_tokens, a1.stats.prompt_tokens);
    const a2 = await s.reply('And then?', greedy);
    // On flash the prefix is kept only when the answer re-tokenizes to the ids that ran (this
    // tiny model's cut-off gibberish does not); the request-level test below covers that case.
    if (!flash.mode) assert.ok(a2.stats.prefill_tokens < a2.stats.prompt_tokens / 2, JSON.stringify(a2.stats));
    assert.deepEqual(s.messages.map((m) => m.role), ['system', 'user', 'assistant', 'user', 'assistant']);
    assert.deepEqual(a2.ids, (await scratch(s.messages.slice(0, 4))).ids);
    if (flash.mode) assert.ok(a2.stats.bytes_read_per_token > 0, 'the FFN was read from flash');
  });

  it('a request that extends the ids the last one ran prefills only the new ones, and equals a fresh run', async () => {
    const prompt = chatPrompt(model, [{ role: 'user', content: 'Hello there' }]);
    const r1 = await model.complete(prompt, greedy);
    const more = [...prompt, ...r1.ids, ...chatPrompt(model, [{ role: 'user', content: 'Go on' }]).slice(1)];
    const r2 = await model.complete(more, greedy);
    assert.equal(r2.stats.prefill_tokens, more.length - (prompt.length + r1.ids.length - 1), JSON.stringify(r2.stats));
    await fresh.complete([1, 2, 3], { ...greedy, maxTokens: 1 });
    const ref = await fresh.complete(more, greedy);
    assert.equal(ref.stats.prefill_tokens, more.length);
    assert.deepEqual(r2.ids, ref.ids);
    // Anything else ran since: a flash model starts over, a dense one keeps the common prefix.
    await model.complete(prompt.slice(0, 5), { ...greedy, maxTokens: 2 });
    const r3 = await model.complete(more, greedy);
    assert.equal(r3.stats.prefill_tokens, flash.mode ? more.length : more.length - 5);
    assert.deepEqual(r3.ids, ref.ids);
  });

  it('sessions taking turns on one model keep their own conversations', async () => {
    const a = new ChatSession(model), b = new ChatSession(model, { system: 'Be kind.' });
    const [a1, b1] = await Promise.all([a.reply('Tell me a story', greedy), b.reply('What is a neuron?', greedy)]);
    const [a2, b2] = await Promise.all([a.reply('Go on', greedy), b.reply('Why?', greedy)]);
    for (const [s, r1, r2] of [[a, a1, a2], [b, b1, b2]]) {
      assert.deepEqual(r1.ids, (await scratch(s.messages.slice(0, s.messages.length - 3))).ids);
      assert.deepEqual(r2.ids, (await scratch(s.messages.slice(0, s.messages.length - 1))).ids);
    }
  });

  it('fork continues on its own; reset keeps the system prompt; toJSON restores', async () => {
    const s = new ChatSession(model, { system: 'S' });
    await s.reply('one', greedy);
    const f = s.fork();
    await f.reply('two', greedy);
    assert.equal(s.messages.length, 3);
    assert.equal(f.messages.length, 5);
    const back = new ChatSession(model, { messages: f.toJSON().messages });
    assert.deepEqual(back.messages, f.messages);
    f.reset();
    assert.deepEqual(f.messages, [{ role: 'system', content: 'S' }]);
  });

  it('an aborted turn leaves the conversation as it was', async () => {
    const s = new ChatSession(model);
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(s.reply('hi', { ...greedy, signal: ac.signal }), /aborted/);
    assert.deepEqual(s.messages, []);
  });

  it('a model with no chat template is a clear error', async () => {
    const opt = await loadModel(undefined, { cacheDir: cache });
    try {
      assert.throws(() => new ChatSession(opt), /no chat template.*--chat-template/);
      const s = new ChatSession(opt, { template: '{% for m in messages %}{{ m.content }}\n{% endfor %}' });
      const r = await s.reply('The meaning of the word', greedy);
      assert.equal(r.ids.length, 12);
    } finally { opt.close(); }
  });
});
