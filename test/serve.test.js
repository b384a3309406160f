// flashneuron serve: the OpenAI-compatible HTTP server, driven by the official openai client
// (and raw fetch where the client would not send what is tested), in-process via startServer,
// and once through the CLI as a user would start it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import OpenAI from 'openai';
import { chatPrompt, loadModel } from '../dist/src/index.js';
import { startServer } from '../dist/src/node/serve.js';
import { ROOT } from './helpers/models.js';
import { cleanupTmp, tmpDir } from './helpers/hostile.js';

after(cleanupTmp);
const CHATML = join(ROOT, 'test', 'fixtures', 'replicas', 'turbosparse-mistral-tiny');
const KEY = 'sk-test-key';
const messages = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Tell me about flash memory.' }];

/** An error body as OpenAI shapes it. */
function assertErrorShape(body, code) {
  assert.deepEqual(Object.keys(body), ['error'], JSON.stringify(body));
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 0);
  if (code !== undefined) assert.equal(body.error.code, code);
}

describe('serve (OpenAI-compatible HTTP)', function () {
  let model, server, client, id;
  before(async () => {
    model = await loadModel(CHATML, { cacheDir: tmpDir('servecache') });
    server = await startServer(model, { port: 0, apiKey: KEY, maxBody: 64 * 1024 });
    client = new OpenAI({ apiKey: KEY, baseURL: `${server.url}/v1`, maxRetries: 0 });
    id = server.modelId;
  });
  after(async () => { await server?.close(); model?.close(); });

  it('lists the one model, and /health answers without a key', async () => {
    const list = await client.models.list();
    assert.deepEqual(list.data.map((m) => m.id), [id]);
    assert.equal(id, 'turbosparse-mistral-tiny');
    assert.equal((await client.models.retrieve(id)).id, id);
    const h = await fetch(`${server.url}/health`);
    assert.equal(h.status, 200);
    assert.deepEqual(await h.json(), { status: 'ok' });
  });

  it('a whole chat completion equals model.complete over the chat prompt', async () => {
    const want = await model.complete(chatPrompt(model, messages), { temperature: 0, maxTokens: 16 });
    const r = await client.chat.completions.create({ model: id, messages, temperature: 0, max_tokens: 16 });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.model, id);
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(r.choices[0].message.content, want.text);
    assert.equal(r.choices[0].finish_reason, want.ids.length < 16 ? 'stop' : 'length');
    assert.deepEqual(
      { p: r.usage.prompt_tokens, c: r.usage.completion_tokens, t: r.usage.total_tokens },
      { p: want.stats.prompt_tokens, c: want.ids.length, t: want.stats.prompt_tokens + want.ids.length });
    // max_completion_tokens is max_tokens' newer name; "default" names the served model.
    const r2 = await client.chat.completions.create({ model: 'default', messages, temperature: 0, max_completion_tokens: 16 });
    assert.equal(r2.choices[0].message.content, want.text);
  });

  it('a streamed chat completion: role first, deltas that add up to the whole text, finish_reason, usage, [DONE]', async () => {
    const whole = await client.chat.completions.create({ model: id, messages, temperature: 0, max_tokens: 20 });
    const stream = await client.chat.completions.create({ model: id, messages, temperature: 0, max_tokens: 20, stream: true, stream_options: { include_usage: true } });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id));
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    assert.equal(text, whole.choices[0].message.content);
    const fin = chunks.filter((c) => c.choices[0]?.finish_reason);
    assert.equal(fin.length, 1);
    assert.equal(fin[0].choices[0].finish_reason, whole.choices[0].finish_reason);
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens']) assert.equal(last.usage[k], whole.usage[k], k);
    assert.ok(chunks.slice(0, -1).every((c) => c.usage === null));

    // The raw stream ends with data: [DONE].
    const raw = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: id, messages, temperature: 0, max_tokens: 4, stream: true }),
    });
    assert.equal(raw.status, 200);
    assert.match(raw.headers.get('content-type'), /^text\/event-stream/);
    const events = (await raw.text()).split('\n\n').filter(Boolean);
    assert.ok(events.every((e) => e.startsWith('data: ')));
    assert.equal(events.at(-1), 'data: [DONE]');
  });

  it('stop, logprobs (OpenAI shape) and a seeded sample', async () => {
    const r = await client.chat.completions.create({ model: id, messages, temperature: 0, max_tokens: 6, logprobs: true, top_logprobs: 3 });
    const lp = r.choices[0].logprobs.content;
    assert.equal(lp.length, r.usage.completion_tokens);
    for (const t of lp) {
      assert.equal(typeof t.token, 'string');
      assert.ok(t.logprob <= 0);
      assert.ok(Array.isArray(t.bytes));
      assert.equal(t.top_logprobs.length, 3);
      assert.equal(t.top_logprobs[0].logprob, t.logprob); // greedy: the chosen token is the most likely
    }
    const whole = r.choices[0].message.content;
    assert.ok(whole.length > 2, JSON.stringify(whole));
    const stop = whole.slice(1, 3);
    const s = await client.chat.completions.create({ model: id, messages, temperature: 0, max_tokens: 6, stop: [stop] });
    assert.equal(s.choices[0].message.content, whole.slice(0, whole.indexOf(stop)));
    assert.equal(s.choices[0].finish_reason, 'stop');
    const a = await client.chat.completions.create({ model: id, messages, temperature: 1, seed: 7, max_tokens: 8 });
    const b = await client.chat.completions.create({ model: id, messages, temperature: 1, seed: 7, max_tokens: 8, frequency_penalty: 0, presence_penalty: 0, top_p: 1 });
    assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  });

  it('a text completion, whole and streamed, with legacy logprobs', async () => {
    const prompt = 'The meaning of the word';
    const want = await model.complete(prompt, { temperature: 0, maxTokens: 12 });
    const r = await client.completions.create({ model: id, prompt, temperature: 0, max_tokens: 12, logprobs: 2 });
    assert.equal(r.object, 'text_completion');
    assert.equal(r.choices[0].text, want.text);
    assert.equal(r.usage.completion_tokens, want.ids.length);
    const lp = r.choices[0].logprobs;
    assert.equal(lp.tokens.length, want.ids.length);
    assert.equal(lp.token_logprobs.length, want.ids.length);
    assert.ok(lp.top_logprobs.every((t) => Object.keys(t).length <= 2));
    assert.equal(lp.text_offset[0], prompt.length);
    const stream = await client.completions.create({ model: id, prompt, temperature: 0, max_tokens: 12, stream: true });
    let text = '', finish;
    for await (const c of stream) { text += c.choices[0]?.text ?? ''; finish ??= c.choices[0]?.finish_reason ?? undefined; }
    assert.equal(text, want.text);
    assert.ok(finish === 'stop' || finish === 'length');
  });

  it('a client that aborts mid-stream aborts the generation; the next request is answered', async () => {
    // The generation is held after its second token with text until the server aborts it, so what
    // happens does not depend on how fast tokens come or how soon the disconnect is noticed.
    let aborted, finished;
    const ended = new Promise((r) => { finished = r; });
    const generate = model.generate;
    model.generate = function (prompt, opts) {
      aborted = opts.signal;
      const inner = generate.call(this, prompt, opts);
      const abort = new Promise((r) => (opts.signal.aborted ? r() : opts.signal.addEventListener('abort', r, { once: true })));
      return (async function* () {
        let shown = 0;
        try {
          for (;;) {
            const r = await inner.next();
            if (r.done) return r.value;
            yield r.value;
            if (r.value.text && ++shown >= 2) await abort;
          }
        } finally { await inner.return?.(); finished(); }
      })();
    };
    try {
      const ac = new AbortController();
      const stream = await client.chat.completions.create(
        { model: id, messages, temperature: 1, seed: 3, max_tokens: 400, stream: true }, { signal: ac.signal });
      let n = 0, after = 0;
      // The client's stream ends quietly when its signal aborts (openai-node swallows the AbortError).
      try {
        for await (const c of stream) {
          if (ac.signal.aborted) after++;
          else if (c.choices[0]?.delta.content && ++n === 2) ac.abort();
        }
      } catch (e) { if (!(e instanceof OpenAI.APIUserAbortError || e.name === 'AbortError')) throw e; }
      assert.equal(n, 2);
      assert.equal(after, 0, `${after} chunks after the abort`);
      await ended;
      assert.ok(aborted.aborted, 'the server aborted the generation');
      // It ended at the next token, far short of the 400 asked for, and freed the model.
      assert.ok(model.lastStats.tokens < 50, `${model.lastStats.tokens} tokens`);
    } finally { model.generate = generate; }
    const r = await client.chat.completions.create({ model: id, messages, temperature: 0, max_tokens: 4 });
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.ok(model.lastStats.tokens <= 4);
  });

  it('errors: 401 wrong key, 400 malformed JSON and bad fields, 404 unknown model and route, 405, 413', async () => {
    const bad = new OpenAI({ apiKey: 'wrong', baseURL: `${server.url}/v1`, maxRetries: 0 });
    await assert.rejects(bad.models.list(), (e) => {
      assert.ok(e instanceof OpenAI.AuthenticationError);
      assert.equal(e.status, 401);
      assert.equal(e.code, 'invalid_api_key');
      return true;
    });
    const post = (path, body, headers = {}) => fetch(`${server.url}${path}`, {
      method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', ...headers }, body,
    });
    const noKey = await fetch(`${server.url}/v1/models`);
    assert.equal(noKey.status, 401);
    assertErrorShape(await noKey.json(), 'invalid_api_key');

    const malformed = await post('/v1/chat/completions', '{"model": "default", "messages": [');
    assert.equal(malformed.status, 400);
    assertErrorShape(await malformed.json());

    await assert.rejects(client.chat.completions.create({ model: id, messages, n: 2 }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError);
      assert.equal(e.param, 'n');
      return true;
    });
    await assert.rejects(client.chat.completions.create({ model: id, messages: [], max_tokens: 4 }), OpenAI.BadRequestError);
    await assert.rejects(client.chat.completions.create({ model: id, messages, temperature: 'hot' }), OpenAI.BadRequestError);

    await assert.rejects(client.chat.completions.create({ model: 'gpt-4o', messages, max_tokens: 2 }), (e) => {
      assert.ok(e instanceof OpenAI.NotFoundError);
      assert.equal(e.code, 'model_not_found');
      return true;
    });
    await assert.rejects(client.completions.create({ model: 'nope', prompt: 'x', max_tokens: 2 }), OpenAI.NotFoundError);

    const route = await post('/v1/embeddings', '{}');
    assert.equal(route.status, 404);
    assertErrorShape(await route.json(), 'unknown_url');
    const method = await fetch(`${server.url}/v1/chat/completions`, { headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(method.status, 405);
    assertErrorShape(await method.json());

    const big = await post('/v1/chat/completions', JSON.stringify({ model: id, messages: [{ role: 'user', content: 'x'.repeat(100 * 1024) }] }));
    assert.equal(big.status, 413);
    assertErrorShape(await big.json());

    // After all that, the server still answers.
    const r = await client.chat.completions.create({ model: id, messages, temperature: 0, max_tokens: 2 });
    assert.ok(r.choices[0].finish_reason);
  });
});

describe('flashneuron serve (CLI)', function () {
  it('prints the listening line with the real port, answers a request, and exits on SIGTERM', async () => {
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'flashneuron.js'), 'serve', '--port', '0', '--model', CHATML, '--model-id', 'tiny'], {
      env: { ...process.env, FLASHNEURON_CACHE: tmpDir('servecli') }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    try {
      const url = await new Promise((resolve, reject) => {
        child.stderr.on('data', (d) => {
          stderr += d;
          const m = /listening on (http:\/\/\S+) \(model tiny\)/.exec(stderr);
          if (m) resolve(m[1]);
        });
        child.on('exit', () => reject(new Error(`serve exited: ${stderr}`)));
      });
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.notEqual(url, 'http://127.0.0.1:0');
      const client = new OpenAI({ apiKey: 'none', baseURL: `${url}/v1`, maxRetries: 0 });
      const r = await client.chat.completions.create({ model: 'tiny', messages, temperature: 0, max_tokens: 4 });
      assert.equal(r.model, 'tiny');
      assert.equal(typeof r.choices[0].message.content, 'string');
    } finally {
      child.kill('SIGTERM');
    }
    const { code } = await exited;
    assert.equal(code, 0, stderr);
  });
});
