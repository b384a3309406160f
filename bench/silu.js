// SiLU models from flash without retraining: llama-silu-mini (the SiLU twin of llama-relu-mini)
// in sparse mode by calibrated |silu(gate·x)·up·x| cuts (gate and up resident as Q8_0, only the
// down columns of the neurons over the cut read from flash), swept over target sparsity 0–80 %,
// beside dense (all in memory) and naive (the whole FFN read every token), and beside the CATS
// rule (cut on |silu(gate·x)| alone: gate resident, up rows and down columns read), one run:
//   - held-out perplexity (the last 12 000 characters of models/calibration.txt, context 128;
//     the cuts are calibrated on the first 85 % of its tokens),
//   - FFN bytes read per token and ms/token of a warm decode (64 greedy tokens after a 32-token
//     held-out prompt, context 128, WASI reads through the page cache, median of --runs),
//   - cold decode (O_DIRECT reads, 32 in flight) for dense, naive and the default sparsity,
//   - warm dense vs sparse once more, interleaved over --rounds rounds, for the ratio.
// Usage: node bench/silu.js [--memory 70%] [--runs 3] [--rounds 5] [--max-tokens 16000]
// Writes bench/results/silu.json and bench/results/silu.svg.
import { spawnSync } from 'node:child_process';

// Cold reads run on the libuv pool, sized at first use: re-run with it set (as bench/flash.js).
if (!process.env.UV_THREADPOOL_SIZE) {
  const r = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, UV_THREADPOOL_SIZE: '64' } });
  process.exit(r.status ?? 1);
}

const { mkdirSync, readFileSync, writeFileSync, existsSync } = await import('node:fs');
const { join } = await import('node:path');
const { tmpdir } = await import('node:os');
const { fileURLToPath } = await import('node:url');
const { machine } = await import('./machine.js');
const { barChart } = await import('./plot.js');
const { convertHF, loadModel } = await import('../dist/src/index.js');
const { calibrateThresholds, withSparsity } = await import('../dist/src/predictor/thresholds.js');
const { modelFingerprint } = await import('../dist/src/predictor/format.js');

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const args = process.argv.slice(2);
const arg = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const MEMORY = arg('--memory') ?? '70%', RUNS = Number(arg('--runs') ?? 3), ROUNDS = Number(arg('--rounds') ?? 5);
const MAX_TOKENS = Number(arg('--max-tokens') ?? 16000), TOKENS = 64, PROMPT = 32, CONTEXT = 128, QD = 32;
const SPARSITIES = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];
const DEFAULT_SPARSITY = 0.5;
const r3 = (x) => Math.round(x * 1000) / 1000;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const dir = join(ROOT, 'test/fixtures/llama-silu-mini');
const work = join(tmpdir(), `flashneuron-silu-bench-${process.pid}`);
mkdirSync(work, { recursive: true });
const image = join(work, 'llama-silu-mini.fnimg');
await convertHF(dir, image);
const golden = JSON.parse(readFileSync(join(dir, 'golden.json'), 'utf8'));
const calib = readFileSync(join(ROOT, 'models/calibration.txt'), 'utf8');
const held = calib.slice(-12000);

// Reference first: the dense model gives the golden greedy ids.
const dense = await loadModel(image, { device: 'cpu' });
for (const p of golden.prompts) {
  const c = await dense.complete(p.text, { temperature: 0, maxTokens: p.greedy_ids.length, stopAtEos: false });
  if (JSON.stringify(c.ids) !== JSON.stringify(p.greedy_ids)) throw new Error(`dense ids differ from golden for "${p.text}"`);
}
const t0 = Date.now();
const cal = await calibrateThresholds(dense, calib, modelFingerprint(dense.engine.header), { sparsity: DEFAULT_SPARSITY, maxTokens: MAX_TOKENS });
const calibrateSeconds = (Date.now() - t0) / 1000;
const catsCal = await calibrateThresholds(dense, calib, modelFingerprint(dense.engine.header), { sparsity: DEFAULT_SPARSITY, statistic: 'abs_silu_gate', maxTokens: MAX_TOKENS });
const CATS = [0.3, 0.5, 0.7];
const heldIds = dense.tokenize(held);
const promptIds = heldIds.slice(0, PROMPT);
dense.close();

const ffnBytes = (m) => m.engine.ffnBytes;
/** Warm-up, then RUNS decodes; the median run's figures. Embedding rows read per token are not FFN bytes. */
async function decode(m) {
  await m.complete(promptIds, { maxTokens: TOKENS, temperature: 0, stopAtEos: false });
  const runs = [];
  for (let r = 0; r < RUNS; r++) runs.push(await m.complete(promptIds, { maxTokens: TOKENS, temperature: 0, stopAtEos: false }));
  const ms = runs.map((c) => c.stats.ms_per_token), c = runs.find((x) => x.stats.ms_per_token === median(ms));
  const emb = m.engine.header.config.hidden * 2 * (m.options.memoryBytes !== undefined ? 1 : 0);   // one bf16 embedding row per token under a budget
  return { ids: c.ids, ms_per_token: c.stats.ms_per_token, ms_per_token_runs: ms, io_ms_per_token: c.stats.io_ms_per_token,
    compute_ms_per_token: c.stats.compute_ms_per_token, gate_up_ms_per_token: c.stats.predictor_ms_per_token,
    bytes_read_per_token: c.stats.bytes_read_per_token, ffn_bytes_read_per_token: Math.max(0, c.stats.bytes_read_per_token - emb),
    reads_per_token: c.stats.reads_per_token, resident_bytes_peak: c.stats.resident_bytes_peak, ffn_bytes_total: ffnBytes(m) };
}

// One compute thread everywhere: several models are open at once in the interleaved section.
const BASE = { device: 'cpu', contextLength: CONTEXT, threads: 1 };

/** FFN bytes per decoded token with 16-row neuron caches (next to no reuse): what a token's kept set costs to read. */
async function bytesNoReuse(opts) {
  const m = await loadModel(image, { ...BASE, ...opts, cacheRows: 16 });
  try {
    const c = await m.complete(promptIds, { maxTokens: TOKENS, temperature: 0, stopAtEos: false });
    return Math.max(0, c.stats.bytes_read_per_token - m.engine.header.config.hidden * 2);
  } finally { m.close(); }
}

async function row(name, opts, withPpl = true) {
  const m = await loadModel(image, { ...BASE, ...opts });
  try {
    const out = { options: { mode: m.options.mode, memory: opts.memory ?? null, resident_dtype: m.engine.memory.resident_dtype, io: m.options.io, direct: m.options.direct } };
    if (withPpl) out.ppl = r3((await m.perplexity(held, { context: CONTEXT })).ppl);
    Object.assign(out, await decode(m));
    out.memory_bytes = m.engine.memoryBytes;
    if (opts.mode !== undefined && opts.mode !== 'dense' && !opts.direct) out.ffn_bytes_read_per_token_no_reuse = await bytesNoReuse(opts);
    process.stderr.write(`${name}: ${JSON.stringify({ ppl: out.ppl, ms: out.ms_per_token, ffn_bytes: out.ffn_bytes_read_per_token })}\n`);
    return out;
  } finally { m.close(); }
}

const warm = {}, cold = {};
warm.dense = await row('dense', {});
warm.dense_rq8 = await row('dense_rq8', { residentDtype: 'q8_0' }, false);
warm.naive = await row('naive', { mode: 'naive', memory: MEMORY });
for (const s of SPARSITIES) warm[`sparse_${Math.round(s * 100)}`] = await row(`sparse ${s}`, { mode: 'sparse', memory: MEMORY, ffnThresholds: withSparsity(cal, s).thresholds });
for (const s of CATS) warm[`cats_${Math.round(s * 100)}`] = await row(`cats ${s}`, { mode: 'sparse', memory: MEMORY, siluRule: 'gate', ffnThresholds: withSparsity(catsCal, s).thresholds });
const def = withSparsity(cal, DEFAULT_SPARSITY).thresholds;
const COLD = { io: 'async', direct: true, queueDepth: QD };
cold.dense = await row('cold dense', { ...COLD }, false);
cold.naive = await row('cold naive', { mode: 'naive', memory: MEMORY, ...COLD }, false);
cold.sparse_50 = await row('cold sparse 0.5', { mode: 'sparse', memory: MEMORY, ffnThresholds: def, ...COLD }, false);
cold.sparse_50_nocache = await row('cold sparse 0.5, 16-row caches', { mode: 'sparse', memory: MEMORY, ffnThresholds: def, cacheRows: 16, ...COLD }, false);

// Warm dense vs sparse, alternating, for the ratio (this VM drifts by ±20 % over minutes).
const inter = { dense: [], dense_rq8: [], sparse_50: [] };
const models = {
  dense: await loadModel(image, { ...BASE }),
  dense_rq8: await loadModel(image, { ...BASE, residentDtype: 'q8_0' }),
  sparse_50: await loadModel(image, { ...BASE, mode: 'sparse', memory: MEMORY, ffnThresholds: def }),
};
for (let r = 0; r < ROUNDS; r++) for (const [k, m] of Object.entries(models)) inter[k].push((await decode(m)).ms_per_token);
for (const m of Object.values(models)) m.close();
const interleaved = Object.fromEntries(Object.entries(inter).map(([k, v]) => [k, { runs: v, median: median(v) }]));

const naiveFfn = warm.naive.ffn_bytes_read_per_token, s50 = warm.sparse_50;
const acceptance = {
  default_sparsity: DEFAULT_SPARSITY,
  ppl_dense: warm.dense.ppl, ppl_default: s50.ppl, ppl_increase: r3(s50.ppl / warm.dense.ppl - 1), ppl_goal: '≤ +3 %',
  ffn_bytes_vs_naive: r3(s50.ffn_bytes_read_per_token / naiveFfn), ffn_bytes_goal: '≤ 0.35 at a budget of 70 % of the model',
  ffn_bytes_vs_naive_no_reuse: r3(s50.ffn_bytes_read_per_token_no_reuse / naiveFfn),
  warm_ratio_vs_dense: r3(interleaved.sparse_50.median / interleaved.dense.median), warm_ratio_vs_dense_rq8: r3(interleaved.sparse_50.median / interleaved.dense_rq8.median), warm_goal: '≤ 1.3',
  cold_speedup_vs_naive: r3(cold.naive.ms_per_token / cold.sparse_50.ms_per_token), cold_goal: '≥ 2',
  cold_speedup_vs_naive_16_row_caches: r3(cold.naive.ms_per_token / cold.sparse_50_nocache.ms_per_token),
};
const sweep = SPARSITIES.map((s) => { const c = warm[`sparse_${Math.round(s * 100)}`]; return { sparsity: s, ppl: c.ppl, ffn_bytes_read_per_token: c.ffn_bytes_read_per_token, ffn_bytes_read_per_token_no_reuse: c.ffn_bytes_read_per_token_no_reuse, ms_per_token: c.ms_per_token, ids_match_dense: JSON.stringify(c.ids) === JSON.stringify(warm.dense.ids) }; });
const cats = CATS.map((s) => { const c = warm[`cats_${Math.round(s * 100)}`]; return { sparsity: s, ppl: c.ppl, ffn_bytes_read_per_token: c.ffn_bytes_read_per_token, ffn_bytes_read_per_token_no_reuse: c.ffn_bytes_read_per_token_no_reuse, ms_per_token: c.ms_per_token }; });
const out = {
  machine: machine(), date: new Date().toISOString(),
  setup: { threads: 1, model: 'test/fixtures/llama-silu-mini (bf16)', memory: MEMORY, heldout: 'last 12 000 characters of models/calibration.txt, context 128', calibration: `first 85 % of models/calibration.txt's tokens, ${cal.tokens} tokens, ${r3(calibrateSeconds)} s`, decode: `${TOKENS} greedy tokens after a ${PROMPT}-token held-out prompt, median of ${RUNS}`, cold: `O_DIRECT, io async, ${QD} in flight`, thresholds: cal.thresholds, quantiles_note: 'per-layer cuts per sparsity from one calibration (withSparsity)' },
  acceptance, sweep, cats, cats_thresholds: catsCal.thresholds, warm: Object.fromEntries(Object.entries(warm).map(([k, v]) => [k, { ...v, ids: undefined }])),
  cold: Object.fromEntries(Object.entries(cold).map(([k, v]) => [k, { ...v, ids: undefined }])), warm_interleaved: interleaved,
};
mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
writeFileSync(join(ROOT, 'bench/results/silu.json'), JSON.stringify(out, null, 2) + '\n');
const svg = barChart({
  title: `llama-silu-mini from flash (--memory ${MEMORY}): perplexity and FFN KiB read per token`,
  subtitle: `dense ppl ${warm.dense.ppl}; naive reads ${(naiveFfn / 1024).toFixed(0)} KiB/token`, unit: '',
  groups: [
    { label: 'naive', bars: [{ label: 'ppl', value: warm.naive.ppl }, { label: 'FFN KiB/token ÷ 100 (16-row caches)', value: naiveFfn / 102400 }, { label: 'ms/token ×10', value: warm.naive.ms_per_token * 10 }] },
    ...sweep.map((c) => ({ label: `${Math.round(c.sparsity * 100)}%`, bars: [{ label: 'ppl', value: c.ppl }, { label: 'FFN KiB/token ÷ 100 (16-row caches)', value: c.ffn_bytes_read_per_token_no_reuse / 102400 }, { label: 'ms/token ×10', value: c.ms_per_token * 10 }] })),
    ...cats.map((c) => ({ label: `CATS ${Math.round(c.sparsity * 100)}%`, bars: [{ label: 'ppl', value: c.ppl }, { label: 'FFN KiB/token ÷ 100 (16-row caches)', value: c.ffn_bytes_read_per_token_no_reuse / 102400 }, { label: 'ms/token ×10', value: c.ms_per_token * 10 }] })),
  ],
  refLine: { value: warm.dense.ppl, label: 'dense ppl' },
});
writeFileSync(join(ROOT, 'bench/results/silu.svg'), svg);
console.log(JSON.stringify({ acceptance, sweep, cats }, null, 1));
if (existsSync(image)) (await import('node:fs')).rmSync(work, { recursive: true, force: true });
