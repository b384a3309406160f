// A bounded loopback load test of `flashneuron serve`: one model under a memory budget behind
// startServer on 127.0.0.1, 16 concurrent clients (the official openai client, streaming,
// temperature 0, stream_options.include_usage), each holding its own 4-turn conversation (its
// own user texts; every turn appends the assistant's answer). The clients run in a worker thread
// of this process, so reading the streams never waits behind the engine's event loop.
//
// Correctness: every streamed answer must equal a serial greedy reference. (1) The server's
// schedule (the prompts in the order the model's FIFO queue ran them) replayed serially
// in-process from the same KV state: text, token count and cached prompt tokens must be equal,
// and the prompt each client's own history renders to must be one the server ran (nothing lost
// or mixed). (2) Each client's conversation run serially beforehand, turn by turn, with
// model.complete(chatPrompt(model, messages, { template }), same options): must be equal in
// dense mode (or with --strict); in sparse mode differences are counted and reported, since there
// an answer depends on which KV prefix its request reused (see checks.notes in the JSON). Every
// stream must end with a finish_reason and a usage chunk and carry one completion id of its own.
// A failure, the engine's memory over the budget or growing, or the hard timeout exits non-zero.
//
// Writes bench/results/serve.json ({ machine, date, settings, reference, results, memory, checks })
// and bench/results/serve.svg.
//
// Usage: node bench/serve.js [--model DIR] [--memory 60%] [--clients 16] [--turns 4]
//                            [--max-tokens 24] [--context 512] [--timeout-s 300] [--strict]
// (--memory none: dense, no budget; --strict: a difference from the per-client reference is fatal
// in sparse mode too, see checks.notes in the JSON)
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { machine } from './machine.js';
import { barChart } from './plot.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

/** ChatML, given explicitly (the reference models ship no chat template); BOS first, as they were trained. */
const CHATML = "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}" +
  '{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}';
const SYSTEM = 'You are a helpful assistant. You answer in short, plain sentences.';
const TOPICS = ['an old lighthouse', 'a small bakery', 'the winter market', 'a lost dog', 'the river town', 'a train at night',
  'a garden of roses', 'the mountain school', 'a broken clock', 'the summer fair', 'a ship in a storm', 'the quiet library',
  'a fox in the forest', 'the first snow', 'a band of musicians', 'the old bridge'];
/** Turn t's user text for a client's topic: different for every client and every turn. */
const TURNS = [
  (t) => `Tell me a short story about ${t}.`,
  (t) => `What happened next with ${t}?`,
  (t) => `Who else lived near ${t}?`,
  (t) => `How does the story of ${t} end?`,
];

function argOf(args, name) {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const i = (s.length - 1) * q, lo = Math.floor(i), hi = Math.ceil(i);
  return s[lo] + (s[hi] - s[lo]) * (i - lo);
};
const r1 = (x) => Math.round(x * 10) / 10;
const r2 = (x) => Math.round(x * 100) / 100;
const MiB = (b) => r2(b / 2 ** 20);

async function main() {
  const args = process.argv.slice(2);
  const modelDir = argOf(args, '--model') ?? join(ROOT, 'models/opt-relu-mini');
  const memory = argOf(args, '--memory') ?? '60%';
  const CLIENTS = Number(argOf(args, '--clients') ?? 16), TURN_N = Number(argOf(args, '--turns') ?? 4);
  const MAX_TOKENS = Number(argOf(args, '--max-tokens') ?? 24), CONTEXT = Number(argOf(args, '--context') ?? 512);
  const TIMEOUT_S = Number(argOf(args, '--timeout-s') ?? 300), STRICT = args.includes('--strict');
  if (!(CLIENTS >= 1 && CLIENTS <= TOPICS.length)) throw new Error(`--clients must be 1 to ${TOPICS.length}`);
  if (!(TURN_N >= 1 && TURN_N <= TURNS.length)) throw new Error(`--turns must be 1 to ${TURNS.length}`);

  // The hard bound: past it everything is abandoned and the process exits with an error.
  const deadline = setTimeout(() => {
    console.error(`bench:serve: timed out after ${TIMEOUT_S} s; aborting`);
    process.exit(2);
  }, TIMEOUT_S * 1000);
  deadline.unref();
  const t00 = performance.now();

  const { loadModel, chatPrompt } = await import('../dist/src/index.js');
  const { startServer } = await import('../dist/src/node/serve.js');
  const model = await loadModel(modelDir, { memory: memory === 'none' ? undefined : memory, contextLength: CONTEXT });
  const budget = model.options?.memoryBytes;
  const wasmBytes = () => model.engine.wasm.memory.buffer.byteLength;
  const wasm0 = wasmBytes();
  const gen = { temperature: 0, maxTokens: MAX_TOKENS };

  // Serial greedy references: each client's conversation, turn by turn, in-process.
  const plan = [], reference = [];
  const tRef = performance.now();
  let refTokens = 0, refPrompt = 0, refPrefill = 0;
  for (let c = 0; c < CLIENTS; c++) {
    const messages = [{ role: 'system', content: SYSTEM }];
    const users = [], answers = [];
    for (let t = 0; t < TURN_N; t++) {
      const user = TURNS[t](TOPICS[c]);
      users.push(user);
      messages.push({ role: 'user', content: user });
      const ids = chatPrompt(model, messages, { template: CHATML });
      const r = await model.complete(ids, gen);
      answers.push({ text: r.text, tokens: r.ids.length, prompt_tokens: ids.length });
      refTokens += r.ids.length; refPrompt += ids.length; refPrefill += r.stats.prefill_tokens;
      messages.push({ role: 'assistant', content: r.text });
    }
    plan.push({ client: c, users });
    reference.push(answers);
  }
  const refMs = performance.now() - tRef;
  const mode = model.engine.mode, stats = model.lastStats;

  // A fixed KV state before the server's first request (and again before the replay below).
  const primer = chatPrompt(model, [{ role: 'system', content: SYSTEM }, { role: 'user', content: 'Hello.' }], { template: CHATML });
  await model.complete(primer, gen);
  // The server's schedule: the prompts in the order they reach the model's FIFO queue (serve
  // calls model.generate as it takes each request; the queue runs them in that order).
  const schedule = [];
  const generate = model.generate;
  model.generate = function (prompt, opts) { schedule.push([...prompt]); return generate.call(this, prompt, opts); };

  const server = await startServer(model, { host: '127.0.0.1', port: 0, chatTemplate: CHATML, modelId: 'bench' });
  if (!/^http:\/\/127\.0\.0\.1:/.test(server.url)) throw new Error(`not on loopback: ${server.url}`);

  // Peak of the engine's wasm memory while the clients run (it should never move).
  let wasmPeak = wasm0;
  const sampler = setInterval(() => { wasmPeak = Math.max(wasmPeak, wasmBytes()); }, 20);

  let out;
  try {
    out = await new Promise((resolve, reject) => {
      const w = new Worker(fileURLToPath(import.meta.url), {
        workerData: { url: server.url, modelId: server.modelId, plan, maxTokens: MAX_TOKENS, timeoutMs: TIMEOUT_S * 1000 - (performance.now() - t00) },
      });
      w.once('message', resolve);
      w.once('error', reject);
      w.once('exit', (code) => reject(new Error(`client worker exited (${code}) before reporting`)));
    });
  } finally {
    clearInterval(sampler);
    wasmPeak = Math.max(wasmPeak, wasmBytes());
    await server.close();
    delete model.generate;
  }

  // Replay: the server's schedule run serially in-process from the same KV state, so every
  // request reuses the same cached prefix as it did in the server (the sparse FFN's sums depend
  // on the neuron caches, which a request fills from where its prefill starts).
  await model.complete(primer, gen);
  const replay = new Map();
  for (const ids of schedule) {
    const r = await model.complete(ids, gen);
    replay.set(ids.join(','), { text: r.text, tokens: r.ids.length, cached: r.stats.prompt_tokens - r.stats.prefill_tokens });
  }

  // Checks: every answer against its reference; streams whole and unmixed.
  const problems = [...out.errors], perClient = [];
  const ids = new Set();
  if (schedule.length !== out.requests.length) problems.push(`the model ran ${schedule.length} requests; the clients got ${out.requests.length} answers`);
  for (const q of out.requests) {
    const ref = reference[q.client][q.turn];
    const where = `client ${q.client} turn ${q.turn + 1}`;
    // The prompt the client's own history renders to must be one the server ran (nothing mixed).
    const prompt = chatPrompt(model, q.messages, { template: CHATML });
    const rep = replay.get(prompt.join(','));
    if (!rep) problems.push(`${where}: the server never ran this client's prompt`);
    else {
      if (q.text !== rep.text) problems.push(`${where}: answer differs from the serial replay: ${JSON.stringify(q.text)} vs ${JSON.stringify(rep.text)}`);
      if (q.completion_tokens !== rep.tokens) problems.push(`${where}: ${q.completion_tokens} completion tokens, replay ${rep.tokens}`);
      if (q.cached_tokens !== rep.cached) problems.push(`${where}: ${q.cached_tokens} cached prompt tokens, replay ${rep.cached}`);
    }
    if (q.prompt_tokens !== prompt.length) problems.push(`${where}: ${q.prompt_tokens} prompt tokens, the client's messages render to ${prompt.length}`);
    // The per-client conversation run serially beforehand (its turns reuse the previous turn's KV).
    if (q.text !== ref.text || q.prompt_tokens !== ref.prompt_tokens) perClient.push(`${where}: ${JSON.stringify(q.text)} vs ${JSON.stringify(ref.text)}`);
    if (!q.finish_reason) problems.push(`${where}: no finish_reason`);
    if (q.ids.length !== 1) problems.push(`${where}: chunks carry ${q.ids.length} completion ids`);
    for (const id of q.ids) { if (ids.has(id)) problems.push(`${where}: completion id ${id} seen in another stream`); ids.add(id); }
  }
  // Dense sums do not depend on the neuron caches: there the per-client reference must hold exactly.
  const strict = STRICT || mode === 'dense';
  if (strict) problems.push(...perClient.map((p) => `differs from the per-client reference: ${p}`));
  if (out.requests.length !== CLIENTS * TURN_N) problems.push(`${out.requests.length} answers for ${CLIENTS * TURN_N} requests`);
  const rss = process.resourceUsage().maxRSS * 1024;

  const reqs = out.requests;
  const ttft = reqs.map((q) => q.ttft_ms), lat = reqs.map((q) => q.total_ms);
  const decode = reqs.filter((q) => q.completion_tokens > 1 && q.total_ms > q.ttft_ms)
    .map((q) => (q.completion_tokens - 1) / ((q.total_ms - q.ttft_ms) / 1000));
  const e2e = reqs.map((q) => q.completion_tokens / (q.total_ms / 1000));
  const tokens = reqs.reduce((s, q) => s + q.completion_tokens, 0);
  const prompt = reqs.reduce((s, q) => s + q.prompt_tokens, 0);
  const cached = reqs.reduce((s, q) => s + q.cached_tokens, 0);
  const results = {
    requests: reqs.length,
    completion_tokens: tokens,
    wall_s: r2(out.wall_ms / 1000),
    aggregate_tokens_per_s: r1(tokens / (out.wall_ms / 1000)),
    ttft_ms: { p50: r1(quantile(ttft, 0.5)), p95: r1(quantile(ttft, 0.95)), max: r1(Math.max(...ttft)) },
    latency_ms: { p50: r1(quantile(lat, 0.5)), p95: r1(quantile(lat, 0.95)), max: r1(Math.max(...lat)) },
    per_request_decode_tokens_per_s: { p50: r1(quantile(decode, 0.5)), p5: r1(quantile(decode, 0.05)) },
    per_request_end_to_end_tokens_per_s: { p50: r1(quantile(e2e, 0.5)), p5: r1(quantile(e2e, 0.05)) },
    prompt_tokens: prompt,
    cached_tokens: cached,
    prefill_tokens: prompt - cached,
    finish_reasons: Object.fromEntries([...new Set(reqs.map((q) => q.finish_reason))].map((f) => [f, reqs.filter((q) => q.finish_reason === f).length])),
  };
  const report = {
    machine: machine(), date: new Date().toISOString(),
    settings: {
      model: modelDir.replace(ROOT, ''), model_note: 'a reference model without a chat template of its own: ChatML given explicitly (startServer chatTemplate, the same template for the references); its markers are plain text to this tokenizer',
      chat_template: CHATML, system: SYSTEM,
      memory, budget_bytes: budget, mode, resident_dtype: stats?.resident_dtype, context_length: model.engine.contextLength,
      clients: CLIENTS, turns: TURN_N, requests: CLIENTS * TURN_N, max_tokens: MAX_TOKENS, temperature: 0, stream: true, include_usage: true,
      client: 'openai (npm), in a worker thread of this process', host: '127.0.0.1', timeout_s: TIMEOUT_S,
      notes: 'ttft: request sent → first content delta (the server writes its first chunk once the first token exists, queue wait included); ' +
        'decode tok/s: (completion tokens − 1) ÷ (last chunk − first content); end-to-end tok/s: completion tokens ÷ request time; ' +
        'aggregate: all completion tokens ÷ wall time from the first request to the last answer; cached_tokens: usage.prompt_tokens_details',
    },
    reference: { serial_s: r2(refMs / 1000), completion_tokens: refTokens, tokens_per_s: r1(refTokens / (refMs / 1000)), prompt_tokens: refPrompt, prefill_tokens: refPrefill },
    results,
    memory: {
      budget_bytes: budget, engine_memory_bytes: model.engine.memoryBytes, within_budget: budget === undefined || model.engine.memoryBytes <= budget,
      wasm_bytes_before: wasm0, wasm_bytes_peak_during: wasmPeak, grew: wasmPeak !== wasm0,
      process_max_rss_bytes: rss, rss_note: 'the whole Node process (V8, both threads, the openai client, the tokenizer), outside the engine budget',
      parts: model.engine.memory,
    },
    checks: {
      passed: problems.length === 0,
      answers_equal_schedule_replay: !problems.some((p) => p.includes('replay') || p.includes('never ran')),
      answers_equal_per_client_reference: perClient.length === 0, per_client_differences: perClient.length, per_client_fatal: strict,
      per_client_examples: perClient.slice(0, 5),
      problems: problems.slice(0, 20),
      notes: 'schedule replay: the prompts in the order the server ran them, serially in-process from the same KV state; must be equal (text, tokens, cached tokens). ' +
        'per-client reference: each conversation run serially turn by turn beforehand; fatal in dense mode or with --strict. In sparse mode an answer may differ from it ' +
        'when the server ran its prompt after a different request: the neuron caches are emptied at each request and filled from where its prefill starts (after the reused KV prefix), ' +
        'and the FFN sums cached neurons before newly read ones, so the float sums (and a near-tie greedy choice) depend on the reused prefix.',
    },
  };
  model.close();

  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench/results/serve.json'), JSON.stringify(report, null, 2) + '\n');
  writeFileSync(join(ROOT, 'bench/results/serve.svg'), chart(report));
  const m = report.memory;
  console.log(`${reqs.length} streamed requests (${CLIENTS} clients × ${TURN_N} turns, max_tokens ${MAX_TOKENS}) in ${results.wall_s} s: ` +
    `${results.aggregate_tokens_per_s} tok/s aggregate (serial reference ${report.reference.tokens_per_s} tok/s in ${report.reference.serial_s} s)`);
  console.log(`TTFT p50 ${results.ttft_ms.p50} ms, p95 ${results.ttft_ms.p95} ms; per-request decode p50 ${results.per_request_decode_tokens_per_s.p50} tok/s; ` +
    `prefill ${results.prefill_tokens} of ${prompt} prompt tokens (${cached} cached)`);
  console.log(`engine memory ${MiB(m.engine_memory_bytes)} MiB of a ${MiB(budget)} MiB budget (${memory}), wasm grew: ${m.grew}; process max RSS ${MiB(rss)} MiB`);
  console.log(`wrote bench/results/serve.json and serve.svg (${r1((performance.now() - t00) / 1000)} s)`);
  console.log(`checks: ${reqs.length - problems.filter((p) => p.includes('replay')).length}/${reqs.length} equal the serial replay of the server's schedule; ` +
    `${reqs.length - perClient.length}/${reqs.length} equal the per-client serial reference${strict ? '' : ` (${mode} mode: reported, not fatal; --strict makes it fatal)`}`);
  if (problems.length || !m.within_budget || m.grew) {
    for (const p of problems.slice(0, 20)) console.error(`  ${p}`);
    if (!m.within_budget) console.error(`  engine memory ${m.engine_memory_bytes} B exceeds the budget ${budget} B`);
    if (m.grew) console.error('  the engine\'s wasm memory grew while serving');
    process.exitCode = 1;
  }
  clearTimeout(deadline);
}

/** The worker: CLIENTS conversations at once over the openai client; posts every request's record. */
async function clients({ url, modelId, plan, maxTokens, timeoutMs }) {
  const { default: OpenAI } = await import('openai');
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error('timeout')), Math.max(1000, timeoutMs));
  const client = new OpenAI({ apiKey: 'bench', baseURL: `${url}/v1`, maxRetries: 0, timeout: Math.max(1000, timeoutMs) });
  const requests = [], errors = [];
  const t0 = performance.now();

  async function conversation({ client: c, users }) {
    const messages = [{ role: 'system', content: SYSTEM }];
    for (let turn = 0; turn < users.length; turn++) {
      messages.push({ role: 'user', content: users[turn] });
      const start = performance.now();
      const stream = await client.chat.completions.create({
        model: modelId, messages, temperature: 0, max_tokens: maxTokens, stream: true, stream_options: { include_usage: true },
      }, { signal: ac.signal });
      let text = '', first, finish = null, usage = null;
      const ids = new Set();
      for await (const ch of stream) {
        ids.add(ch.id);
        const choice = ch.choices[0];
        if (choice?.delta?.content) { first ??= performance.now(); text += choice.delta.content; }
        if (choice?.finish_reason) finish = choice.finish_reason;
        if (ch.usage) usage = ch.usage;
      }
      const end = performance.now();
      if (ac.signal.aborted) throw new Error(`client ${c} turn ${turn + 1}: aborted (timeout)`);
      if (!usage) throw new Error(`client ${c} turn ${turn + 1}: the stream ended without a usage chunk`);
      requests.push({
        client: c, turn, text, messages: structuredClone(messages), ids: [...ids], finish_reason: finish,
        ttft_ms: (first ?? end) - start, total_ms: end - start,
        prompt_tokens: usage.prompt_tokens, completion_tokens: usage.completion_tokens,
        cached_tokens: usage.prompt_tokens_details?.cached_tokens ?? 0,
      });
      messages.push({ role: 'assistant', content: text });
    }
  }

  const settled = await Promise.allSettled(plan.map(conversation));
  for (const s of settled) if (s.status === 'rejected') errors.push(String(s.reason?.message ?? s.reason));
  clearTimeout(timer);
  parentPort.postMessage({ requests, errors, wall_ms: performance.now() - t0 });
}

/** TTFT and request latency (ms) beside throughput (tokens/s): two panels in one SVG. */
function chart(o) {
  const W = 560, H = 380, r = o.results, s = o.settings;
  const sub = `${s.model.split('/').pop()}, ${s.memory} budget (${s.mode}) · ${s.clients} clients × ${s.turns} turns, max_tokens ${s.max_tokens}, streamed`;
  const panels = [
    barChart({
      title: 'serve: time to first token and request time', subtitle: sub, unit: 'ms', width: W, height: H,
      groups: [
        { label: 'time to first token', bars: [{ label: 'p50', value: r.ttft_ms.p50 }, { label: 'p95', value: r.ttft_ms.p95 }] },
        { label: 'request time', bars: [{ label: 'p50', value: r.latency_ms.p50 }, { label: 'p95', value: r.latency_ms.p95 }] },
      ],
    }),
    barChart({
      title: 'serve: tokens per second', subtitle: `wall ${r.wall_s} s for ${r.requests} requests · prefill ${r.prefill_tokens} of ${r.prompt_tokens} prompt tokens`,
      unit: 'tokens / s', width: W, height: H,
      groups: [
        { label: 'per request (decode, p50)', bars: [{ label: 'tok/s', value: r.per_request_decode_tokens_per_s.p50 }] },
        { label: `aggregate, ${s.clients} clients`, bars: [{ label: 'tok/s', value: r.aggregate_tokens_per_s }] },
        { label: 'serial reference', bars: [{ label: 'tok/s', value: o.reference.tokens_per_s }] },
      ],
    }),
  ];
  const svg = [`<svg xmlns="http://www.w3.org/2000/svg" width="${2 * W}" height="${H}" viewBox="0 0 ${2 * W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${2 * W}" height="${H}" fill="#fff"/>`];
  panels.forEach((p, i) => svg.push(`<g transform="translate(${i * W} 0)">`, p.trim(), '</g>'));
  svg.push('</svg>');
  return svg.join('\n') + '\n';
}

// Last, once every const above is initialised.
if (isMainThread) await main();
else await clients(workerData);
