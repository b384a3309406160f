// Flash-offloaded decode ("LLM in a flash", Table 2 style): per-token cost of every FFN mode —
// dense (all in memory), naive (the whole FFN read every token), hybrid (a share kept, the rest
// read), sparse (predicted neurons through the windowed neuron cache; plus window ablations) —
// for both reference models, cold (O_DIRECT, parallel host reads) and warm (WASI reads through
// the page cache), split into I/O, cache management and compute. Beside every cold cell: the
// device profile's estimate of the I/O time its reads need at the queue depth used.
// Then, per model, the warm configs once more, interleaved round by round (--rounds, default 7),
// for the sparse ÷ dense ratios.
// Usage: node bench/flash.js [--runs N] [--rounds N] [--tokens N] [--models NAME,...] [--memory NAME=BUDGET ...] [--predictor NAME=FILE ...]
//                            [--baseline REV [--only ROWS]]
// (default predictor: models/NAME/flashneuron.fnpred; without one the sparse rows are skipped;
// --models: only these models, default opt-relu-mini,llama-relu-mini and any named by --memory)
// Writes bench/results/flash.json and bench/results/flash.svg.
//
// --baseline REV: compares REV (built in a temporary git worktree, see bench/baseline.js) with
// this checkout (its dist/ as built) in one run, each tree in its own process through its own
// dist/src/index.js. Every row (model × cold/warm × mode, as above, at the budget both trees
// accept) opens in both trees, runs one warm-up in each, then --rounds rounds (default 7) of
// --tokens tokens, the two trees alternating which goes first. Per side: medians over the rounds
// of ms, io, mem and compute ms per token, bytes and reads per token. Per row: new ÷ old of those,
// and whether bytes read per token (every round) and the generated ids are identical — they must
// be for a pure refactor (exit code 1 when any differ). --only ROWS restricts the rows, a comma
// list of: cold, warm, interleaved (the warm rows of the interleaved section: dense, sparse,
// sparse_thread, sparse_stored, dense_rq8, sparse_rq8, sparse_rq8_thread), a mode row name
// (e.g. sparse_rq8, both settings) or SETTING:NAME (e.g. warm:sparse). --runs is not used.
// Prints a table and writes bench/results/flash-baseline.json (flash.json is left alone):
//   { machine, date, setup: {…, models: {NAME: budget}}, baseline: { old: {rev, commit},
//     new: {tree, commit, dirty}, rows: { "MODEL/SETTING/ROW": { old: {ms_per_token, io_ms_per_token,
//     mem_ms_per_token, compute_ms_per_token, bytes_read_per_token, reads_per_token, resident_dtype,
//     ms_per_token_runs}, new: {…}, ratio_ms_per_token, ratio_io_ms_per_token, ratio_mem_ms_per_token,
//     ratio_compute_ms_per_token, bytes_read_identical, ids_equal } | { error } } } }
// A ~5 minute comparison: --baseline REV --only interleaved --rounds 5 (both models).
import { spawnSync } from 'node:child_process';

// Cold reads run on the libuv pool; it is sized at first use, which Node's ES-module loader has
// already made before this line runs: re-run this script with the variable set instead.
if (!process.env.UV_THREADPOOL_SIZE) {
  const r = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, UV_THREADPOOL_SIZE: '64' } });
  process.exit(r.status ?? 1);
}

const { existsSync, mkdirSync, readFileSync, writeFileSync } = await import('node:fs');
const { homedir } = await import('node:os');
const { join } = await import('node:path');
const { fileURLToPath } = await import('node:url');
const { machine } = await import('./machine.js');
const { barChart } = await import('./plot.js');
const { median: bmedian, order, prepareTrees, ratio, ratioTable, startChildren, treesInfo } = await import('./baseline.js');
const BASELINE = process.argv.includes('--baseline');
// With --baseline this process loads no engine code: each tree runs in its own child.
const { loadModel, loadProfile, estimateUs } = BASELINE ? {} : await import('../dist/src/index.js');
/** Where loadProfile() looks by default (the engine's device.json, as src's profilePath()). */
const profilePath = () => join(process.env.FLASHNEURON_CACHE || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'flashneuron'), 'device.json');

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const args = process.argv.slice(2);
const arg = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const RUNS = Number(arg('--runs') ?? 3), ROUNDS = Number(arg('--rounds') ?? 7), TOKENS = Number(arg('--tokens') ?? 64), PROMPT = 32, CONTEXT = 128;
const QD = 32;
const MODELS = { 'opt-relu-mini': '60%', 'llama-relu-mini': '80%' };
const PREDICTORS = {};
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--memory') { const [n, v] = args[++i].split('='); MODELS[n] = v; }
  if (args[i] === '--predictor') { const [n, v] = args[++i].split('='); PREDICTORS[n] = v; }
}
if (arg('--models') !== undefined) {
  const keep = arg('--models').split(',');
  for (const n of keep) if (!(n in MODELS)) throw new Error(`--models: no budget for ${n} (known: ${Object.keys(MODELS).join(', ')}; add one with --memory ${n}=BUDGET)`);
  for (const n of Object.keys(MODELS)) if (!keep.includes(n)) delete MODELS[n];
}
if (arg('--only') !== undefined && !BASELINE) throw new Error('--only works with --baseline');

// Modes in table order; the sparse rows differ only in the neuron-cache window (default lru; the paper's is 5).
const MODES = [
  { name: 'dense', mode: 'dense' },
  { name: 'naive', mode: 'naive' },
  { name: 'hybrid', mode: 'hybrid' },
  { name: 'sparse', mode: 'sparse' },
  { name: 'sparse_w0', mode: 'sparse', window: 0 },
  { name: 'sparse_w5', mode: 'sparse', window: 5 },
  { name: 'sparse_w10', mode: 'sparse', window: 10 },
  // warm only: a worker thread shares the page-cache reads while cached neurons compute
  { name: 'sparse_thread', mode: 'sparse', io: 'thread', warmOnly: true },
  // The resident matrices: every row above holds them as 'auto' picks (Q8_0 when the budget
  // leaves the FFN little room: opt-relu-mini at 60%); sparse_stored as stored, sparse_rq8 as
  // Q8_0 always, dense_rq8 the dense run with Q8_0 resident weights, for a like-for-like ratio.
  { name: 'sparse_stored', mode: 'sparse', residentDtype: 'stored' },
  { name: 'dense_rq8', mode: 'dense', residentDtype: 'q8_0' },
  { name: 'sparse_rq8', mode: 'sparse', residentDtype: 'q8_0' },
  { name: 'sparse_rq8_thread', mode: 'sparse', residentDtype: 'q8_0', io: 'thread', warmOnly: true },
  // What checking bundles against their CRC-32s costs: every row above runs the default (each
  // neuron checked the first time it is read); these check never or at every read.
  { name: 'sparse_verify_off', mode: 'sparse', verify: 'off', warmOnly: true },
  { name: 'sparse_verify_always', mode: 'sparse', verify: 'always', warmOnly: true },
  { name: 'naive_verify_off', mode: 'naive', verify: 'off', warmOnly: true },
  { name: 'naive_verify_always', mode: 'naive', verify: 'always', warmOnly: true },
];
const SETTINGS = {
  warm: { io: 'wasi' },
  cold: { io: 'async', direct: true, queueDepth: QD },
};
const KEYS = ['resident_dtype', 'ms_per_token', 'io_ms_per_token', 'mem_ms_per_token', 'compute_ms_per_token', 'predictor_ms_per_token', 'bytes_read_per_token',
  'reads_per_token', 'ffn_read_fraction', 'ffn_cache_fraction', 'resident_bytes_peak'];

// Device cost model for the I/O bound: the saved profile the engine's planner uses (or its
// built-in default), and this machine's probe (bench/results/probe.json) when there is one.
const profile = BASELINE ? undefined : loadProfile();
const probeFile = join(ROOT, 'bench/results/probe.json');
const probe = existsSync(probeFile) ? JSON.parse(readFileSync(probeFile, 'utf8')) : undefined;
const r3 = (v) => +v.toFixed(3);
const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];

// Held-out prompt: the predictor trains on the first 85 % of calibration.txt's tokens, so take
// text from its last 5 %, starting at a paragraph.
const calib = readFileSync(join(ROOT, 'models/calibration.txt'), 'utf8');
const from = calib.indexOf('\n\n', Math.floor(calib.length * 0.95)) + 2;
const promptText = calib.slice(from, from + 4000);

/** Loads a model, turning a failure into {error}. */
/** Load options of a MODES row in a setting (cold / warm) under a budget. */
function modeOptions(m, setting, memory, predictor) {
  return {
    mode: m.mode, ...SETTINGS[setting], ...(m.io ? { io: m.io } : {}), ...(m.residentDtype ? { residentDtype: m.residentDtype } : {}),
    ...(m.mode === 'dense' ? {} : { memory }), ...(m.window !== undefined ? { window: m.window } : {}), ...(m.verify ? { verify: m.verify } : {}), ...(m.mode === 'sparse' ? { predictorPath: predictor } : {}),
  };
}

async function open(dir, opts) {
  try { return { model: await loadModel(dir, { contextLength: CONTEXT, ...opts }) }; }
  catch (e) { return { error: e.message }; }
}

/** Opens and closes a model here: null, or the error message. */
async function tryOpenHere(dir, opts) {
  const r = await open(dir, opts);
  if (r.model) { r.model.close(); return null; }
  return r.error;
}

/**
 * The budget all flash modes run with: the requested one, or, when a mode cannot hold its
 * resident part within it, the smallest whole percentage of the model every mode accepts.
 */
async function pickBudget(dir, requested, flashModes, predictor, tryOpen = tryOpenHere) {
  let memory = requested, note;
  for (let attempt = 0; attempt < 8; attempt++) {
    let need = 0, first;
    for (const m of flashModes) {
      const error = await tryOpen(dir, { mode: m.mode, memory, window: m.window, predictorPath: predictor });
      if (error === null) continue;
      const pct = /\(([0-9.]+)% of the model\)/.exec(error);
      if (!/too small/.test(error) || !pct || !memory.endsWith('%')) return { memory, note };
      first ??= `${m.name} at ${memory}: ${error}`;
      need = Math.max(need, Math.ceil(Number(pct[1]) + 0.5));
    }
    if (!first) return { memory, note };
    note = note ? `${note}; ${first}` : first;
    memory = `${Math.max(need, parseFloat(memory) + 1)}%`;
  }
  return { memory, note };
}

/** One cell: a warm-up run (warm: fills the page cache; cold: JIT only), then RUNS measured runs;
 *  reports the run with the median ms/token. */
async function measure(model, ids, setting, denseIds) {
  await model.complete(ids, { maxTokens: setting === 'warm' ? TOKENS : 4, temperature: 0, stopAtEos: false });
  const runs = [];
  for (let r = 0; r < RUNS; r++) runs.push(await model.complete(ids, { maxTokens: TOKENS, temperature: 0, stopAtEos: false }));
  const ms = runs.map((c) => c.stats.ms_per_token);
  const c = runs.find((x) => x.stats.ms_per_token === median(ms));
  const cell = Object.fromEntries(KEYS.map((k) => [k, c.stats[k]]));
  cell.ms_per_token_runs = ms;
  cell.tokens_per_s = r3(1000 / cell.ms_per_token);
  if (denseIds) cell.ids_match_dense = JSON.stringify(c.ids) === JSON.stringify(denseIds);
  if (setting === 'cold' && cell.reads_per_token > 0) {
    cell.io_bound_ms_per_token = r3(estimateUs(profile, cell.reads_per_token, cell.bytes_read_per_token, QD) / 1000);
    if (probe) cell.io_bound_probe_ms_per_token = r3(estimateUs(probe, cell.reads_per_token, cell.bytes_read_per_token, QD) / 1000);
  }
  return { cell, ids: c.ids };
}

const t0 = Date.now(), load0 = (await import('node:os')).loadavg();
if (BASELINE) {
  await compare();
  process.exit();
}
const results = {}, ratios = {};
for (const [name, requested] of Object.entries(MODELS)) {
  const dir = join(ROOT, 'models', name);
  const predictor = PREDICTORS[name] ?? join(dir, 'flashneuron.fnpred');
  const hasPredictor = existsSync(predictor);
  const flashModes = MODES.filter((m) => m.mode !== 'dense' && (m.mode !== 'sparse' || hasPredictor));
  const { memory, note } = await pickBudget(dir, requested, flashModes, predictor);
  const res = results[name] = { memory, ...(memory !== requested ? { memory_requested: requested, memory_note: note } : {}), predictor: hasPredictor ? (predictor.startsWith(ROOT) ? predictor.slice(ROOT.length) : predictor) : null };
  let ids;
  for (const setting of ['cold', 'warm']) {
    const out = res[setting] = {};
    let denseIds;
    for (const m of MODES) {
      if (m.warmOnly && setting !== 'warm') continue;
      if (m.mode === 'sparse' && !hasPredictor) { out[m.name] = { skipped: 'no predictor' }; continue; }
      const opts = modeOptions(m, setting, memory, predictor);
      const r = await open(dir, opts);
      if (r.error) { out[m.name] = { error: r.error }; console.log(`${name} ${setting} ${m.name}: ${r.error}`); continue; }
      ids ??= r.model.tokenize(promptText).slice(0, PROMPT);
      try {
        const { cell, ids: got } = await measure(r.model, ids, setting, denseIds);
        if (m.name === 'dense') denseIds = got;
        if (m.window !== undefined) cell.window = m.window;
        out[m.name] = cell;
        console.log(`${name} ${setting} ${m.name.padEnd(10)} ${cell.ms_per_token.toFixed(2).padStart(7)} ms/token (io ${cell.io_ms_per_token}, mem ${cell.mem_ms_per_token}, compute ${cell.compute_ms_per_token}), ` +
          `${(cell.bytes_read_per_token / 1024).toFixed(0)} KiB in ${cell.reads_per_token} reads/token` +
          (cell.io_bound_ms_per_token !== undefined ? `, io bound ${cell.io_bound_ms_per_token} ms` : ''));
      } catch (e) {
        out[m.name] = { error: e.message };
        console.log(`${name} ${setting} ${m.name}: ${e.message}`);
      } finally {
        r.model.close();
      }
    }
  }
  // Warm ratios, interleaved: the cells above are minutes apart, and this VM drifts by ±20 %
  // over minutes; here every config runs once per round, rounds alternate, medians compared.
  const INTER = ['dense', 'sparse', 'sparse_thread', 'sparse_stored', 'dense_rq8', 'sparse_rq8', 'sparse_rq8_thread',
    'naive', 'sparse_verify_off', 'sparse_verify_always', 'naive_verify_off', 'naive_verify_always'];
  if (hasPredictor) {
    const open2 = [];
    for (const n of INTER) {
      const m = MODES.find((x) => x.name === n);
      const r = await open(dir, modeOptions(m, 'warm', memory, predictor));
      if (r.model) open2.push([n, r.model]);
    }
    const ids = open2[0][1].tokenize(promptText).slice(0, PROMPT);
    const ms = Object.fromEntries(open2.map(([n]) => [n, []]));
    for (const [, m] of open2) await m.complete(ids, { maxTokens: TOKENS, temperature: 0, stopAtEos: false });
    for (let round = 0; round < ROUNDS; round++) {
      for (const [n, m] of round % 2 ? [...open2].reverse() : open2) {
        ms[n].push((await m.complete(ids, { maxTokens: TOKENS, temperature: 0, stopAtEos: false })).stats.ms_per_token);
      }
    }
    for (const [, m] of open2) m.close();
    const med = Object.fromEntries(Object.entries(ms).map(([n, a]) => [n, median(a)]));
    res.warm_interleaved = {
      rounds: ROUNDS, ms_per_token_median: med, ms_per_token_runs: ms,
      over_dense: Object.fromEntries(Object.keys(med).filter((n) => n !== 'dense').map((n) => [n, r3(med[n] / med.dense)])),
      // Bundle checks: the default ('first') and 'always' over none, same mode.
      verify_cost: Object.fromEntries(['sparse', 'naive'].flatMap((b) => [[`${b}_first`, med[b] / med[`${b}_verify_off`]], [`${b}_always`, med[`${b}_verify_always`] / med[`${b}_verify_off`]]])
        .filter(([, v]) => Number.isFinite(v)).map(([k, v]) => [k, r3(v)])),
      ...(med.dense_rq8 ? { over_dense_rq8: Object.fromEntries(['sparse_rq8', 'sparse_rq8_thread'].filter((n) => med[n]).map((n) => [n, r3(med[n] / med.dense_rq8)])) } : {}),
    };
    console.log(`${name} warm interleaved (${ROUNDS} rounds), ÷ dense:`, JSON.stringify(res.warm_interleaved.over_dense), '÷ dense_rq8:', JSON.stringify(res.warm_interleaved.over_dense_rq8),
      'bundle checks ÷ none:', JSON.stringify(res.warm_interleaved.verify_cost));
  }
  const ok = (c) => c && c.ms_per_token !== undefined;
  const { warm, cold } = res;
  ratios[name] = {
    warm_interleaved_over_dense: res.warm_interleaved?.over_dense ?? null,
    warm_interleaved_over_dense_rq8: res.warm_interleaved?.over_dense_rq8 ?? null,
    warm_sparse_over_dense_ms: ok(warm.sparse) && ok(warm.dense) ? r3(warm.sparse.ms_per_token / warm.dense.ms_per_token) : null,
    warm_sparse_thread_over_dense_ms: ok(warm.sparse_thread) && ok(warm.dense) ? r3(warm.sparse_thread.ms_per_token / warm.dense.ms_per_token) : null,
    warm_sparse_rq8_over_dense_ms: ok(warm.sparse_rq8) && ok(warm.dense) ? r3(warm.sparse_rq8.ms_per_token / warm.dense.ms_per_token) : null,
    warm_sparse_rq8_thread_over_dense_ms: ok(warm.sparse_rq8_thread) && ok(warm.dense) ? r3(warm.sparse_rq8_thread.ms_per_token / warm.dense.ms_per_token) : null,
    warm_sparse_rq8_over_dense_rq8_ms: ok(warm.sparse_rq8) && ok(warm.dense_rq8) ? r3(warm.sparse_rq8.ms_per_token / warm.dense_rq8.ms_per_token) : null,
    warm_sparse_rq8_thread_over_dense_rq8_ms: ok(warm.sparse_rq8_thread) && ok(warm.dense_rq8) ? r3(warm.sparse_rq8_thread.ms_per_token / warm.dense_rq8.ms_per_token) : null,
    cold_naive_over_sparse_rq8_speedup: ok(cold.naive) && ok(cold.sparse_rq8) ? r3(cold.naive.ms_per_token / cold.sparse_rq8.ms_per_token) : null,
    cold_naive_over_sparse_rq8_io_bound: ok(cold.naive) && ok(cold.sparse_rq8) && cold.sparse_rq8.io_bound_ms_per_token ? r3(cold.naive.io_bound_ms_per_token / cold.sparse_rq8.io_bound_ms_per_token) : null,
    warm_sparse_over_dense_goal: 1.3,
    cold_naive_over_sparse_speedup: ok(cold.naive) && ok(cold.sparse) ? r3(cold.naive.ms_per_token / cold.sparse.ms_per_token) : null,
    // What the device model says the reads alone allow: naive's I/O bound over sparse's.
    cold_naive_over_sparse_io_bound: ok(cold.naive) && ok(cold.sparse) && cold.sparse.io_bound_ms_per_token ? r3(cold.naive.io_bound_ms_per_token / cold.sparse.io_bound_ms_per_token) : null,
    // ... and with each mode's measured compute and cache time added (no overlap of I/O and compute).
    cold_naive_over_sparse_bound: ok(cold.naive) && ok(cold.sparse)
      ? r3((cold.naive.io_bound_ms_per_token + cold.naive.compute_ms_per_token + cold.naive.mem_ms_per_token) /
        ((cold.sparse.io_bound_ms_per_token ?? 0) + cold.sparse.compute_ms_per_token + cold.sparse.mem_ms_per_token))
      : null,
    cold_naive_over_hybrid_speedup: ok(cold.naive) && ok(cold.hybrid) ? r3(cold.naive.ms_per_token / cold.hybrid.ms_per_token) : null,
    ...(hasPredictor ? {} : { note: 'no predictor: sparse rows skipped' }),
  };
  console.log(name, JSON.stringify(ratios[name]));
}

const pinfo = (p, path) => ({ path, latency_us: p.latency_us, bytes_per_us: p.bytes_per_us, parallelism: p.parallelism, direct: p.direct, date: p.date, ...(p.note ? { note: p.note } : {}) });
const out = {
  machine: machine(), date: new Date().toISOString(),
  setup: {
    prompt_tokens: PROMPT, tokens: TOKENS, context_length: CONTEXT, runs: RUNS, rounds: ROUNDS, statistic: 'run with the median ms/token (a warm-up run first)', interleaved: 'warm_interleaved: every warm config once per round, rounds alternating in order, medians (ROUNDS rounds)',
    prompt: 'models/calibration.txt from the first paragraph after 95 % of its length (held out from predictor training)',
    warm: 'io wasi (fd_pread through the page cache), after one full warm-up run',
    cold: `io async, O_DIRECT, queue depth ${QD}, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE}`,
    io_bound: `estimateUs(profile, reads_per_token, bytes_read_per_token, ${QD}) / 1000 with loadProfile()`
      + (probe ? '; io_bound_probe_ms_per_token: the same with bench/results/probe.json' : ''),
    profile: pinfo(profile, existsSync(profilePath()) ? profilePath() : '(built-in default)'),
    ...(probe ? { probe: pinfo(probe, 'bench/results/probe.json') } : {}),
    seconds: Math.round((Date.now() - t0) / 1000),
    load_average_before: load0.map((v) => +v.toFixed(2)),
    load_average_after: (await import('node:os')).loadavg().map((v) => +v.toFixed(2)),
  },
  models: results, ratios,
};
mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
writeFileSync(join(ROOT, 'bench/results/flash.json'), JSON.stringify(out, null, 2) + '\n');
writeFileSync(join(ROOT, 'bench/results/flash.svg'), chart(out));
console.log(`wrote bench/results/flash.json and flash.svg (${out.setup.seconds} s)`);

/** One grouped bar chart per model × cold/warm (modes as groups; total, I/O (and its bound),
 *  cache management and compute as bars), laid out two by two in one SVG. */
function chart(o) {
  const W = 900, H = 400, panels = [];
  for (const [name, r] of Object.entries(o.models)) {
    for (const setting of ['cold', 'warm']) {
      const cells = Object.entries(r[setting]).filter(([, c]) => c.ms_per_token !== undefined);
      const missing = Object.entries(r[setting]).filter(([, c]) => c.ms_per_token === undefined);
      const why = [...new Set(missing.map(([, c]) => c.skipped ?? 'error'))];
      const skipped = why.map((w) => `${missing.filter(([, c]) => (c.skipped ?? 'error') === w).map(([k]) => k.replace('_', ' ')).join(', ')}: ${w}`);
      const dense = r[setting].dense?.ms_per_token;
      panels.push(barChart({
        title: `${name}, ${setting}: ms per token by FFN mode`,
        subtitle: `budget ${r.memory} of the model (dense: none) · ${setting === 'cold' ? `O_DIRECT, QD${QD}, reads overlap compute` : 'WASI reads, page cache warm'}` +
          (skipped.length ? ` · ${skipped.join(', ')}` : ''),
        unit: 'ms / token',
        width: W, height: H,
        groups: cells.map(([mode, c]) => ({
          label: mode.replace('_', ' '),
          bars: [
            { label: 'total', value: c.ms_per_token, text: `${c.ms_per_token.toFixed(1)}` },
            { label: 'I/O', value: c.io_ms_per_token },
            { label: 'cache mgmt', value: c.mem_ms_per_token },
            { label: 'compute', value: c.compute_ms_per_token },
            ...(setting === 'cold' ? [{ label: 'I/O bound (device model)', value: c.io_bound_ms_per_token ?? 0 }] : []),
          ].map((b) => (b.value === 0 ? { ...b, text: '' } : b)),
        })),
        ...(setting === 'warm' && dense ? { refLine: { label: 'goal 1.3× dense', value: 1.3 * dense } } : {}),
      }));
    }
  }
  const cols = 2, rows = Math.ceil(panels.length / cols);
  const svg = [`<svg xmlns="http://www.w3.org/2000/svg" width="${cols * W}" height="${rows * H}" viewBox="0 0 ${cols * W} ${rows * H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${cols * W}" height="${rows * H}" fill="#fff"/>`];
  panels.forEach((p, i) => svg.push(`<g transform="translate(${(i % cols) * W} ${Math.floor(i / cols) * H})">`, p.trim(), '</g>'));
  svg.push('</svg>');
  return svg.join('\n') + '\n';
}

/** --only: does the row (setting, MODES entry) run? */
function selected(setting, m) {
  const only = arg('--only');
  if (only === undefined) return true;
  const INTER = ['dense', 'sparse', 'sparse_thread', 'sparse_stored', 'dense_rq8', 'sparse_rq8', 'sparse_rq8_thread',
    'naive', 'sparse_verify_off', 'sparse_verify_always', 'naive_verify_off', 'naive_verify_always'];
  return only.split(',').some((t) => t === setting || t === m.name || t === `${setting}:${m.name}` || (t === 'interleaved' && setting === 'warm' && INTER.includes(m.name)));
}

/** --baseline REV: every selected row in the old and the new tree, interleaved round by round. */
async function compare() {
  const only = arg('--only');
  if (only !== undefined) {
    const names = MODES.map((m) => m.name), settings = Object.keys(SETTINGS);
    for (const t of only.split(',')) {
      const [a, b] = t.split(':');
      const ok = b === undefined ? [...settings, 'interleaved', ...names].includes(a) : settings.includes(a) && names.includes(b);
      if (!ok) throw new Error(`--only: unknown row ${t} (cold, warm, interleaved, ${names.join(', ')}, or SETTING:NAME)`);
    }
  }
  const trees = prepareTrees(args);
  let sides;
  const rows = {}, budgets = {};
  try {
    ({ sides } = await startChildren(trees));
    let seq = 0;
    /** Opens and closes a model in both trees: null, or the first error. */
    const tryBoth = async (dir, opts) => {
      for (const s of sides) {
        const key = `try${seq++}`;
        try { await s.call('open', { key, dir, opts: { contextLength: CONTEXT, ...opts } }); } catch (e) { return e.message; }
        await s.call('close', { key });
      }
      return null;
    };
    const complete = (s, key, ids, maxTokens) => s.call('complete', { key, input: ids, opts: { maxTokens, temperature: 0, stopAtEos: false } });
    const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
    const METRICS = ['ms_per_token', 'io_ms_per_token', 'mem_ms_per_token', 'compute_ms_per_token', 'bytes_read_per_token', 'reads_per_token'];

    for (const [name, requested] of Object.entries(MODELS)) {
      const dir = join(ROOT, 'models', name);
      const predictor = PREDICTORS[name] ?? join(dir, 'flashneuron.fnpred');
      const hasPredictor = existsSync(predictor);
      const flashModes = MODES.filter((m) => m.mode !== 'dense' && (m.mode !== 'sparse' || hasPredictor));
      const wanted = [];
      for (const setting of ['cold', 'warm']) {
        for (const m of MODES) if (!(m.warmOnly && setting !== 'warm') && selected(setting, m)) wanted.push([setting, m]);
      }
      if (!wanted.length) continue;
      const { memory, note } = await pickBudget(dir, requested, flashModes, predictor, tryBoth);
      budgets[name] = memory;
      if (note) console.log(`${name}: budget ${memory} (${note})`);
      let ids;
      for (const [setting, m] of wanted) {
        const key = `${name}/${setting}/${m.name}`;
        if (m.mode === 'sparse' && !hasPredictor) { rows[key] = { skipped: 'no predictor' }; continue; }
        const opts = { contextLength: CONTEXT, ...modeOptions(m, setting, memory, predictor) };
        const opened = [];
        try {
          for (const s of sides) { await s.call('open', { key, dir, opts }); opened.push(s); }
          if (!ids) {
            ids = (await sides[0].call('tokenize', { key, text: promptText })).slice(0, PROMPT);
            const other = (await sides[1].call('tokenize', { key, text: promptText })).slice(0, PROMPT);
            if (!same(ids, other)) console.log(`${name}: the trees tokenize the prompt differently; both run the old tree's ids`);
          }
          for (const s of sides) await complete(s, key, ids, setting === 'warm' ? TOKENS : 4);
          const runs = { old: [], new: [] };
          for (let r = 0; r < ROUNDS; r++) for (const s of order(r, sides)) runs[s.label].push(await complete(s, key, ids, TOKENS));
          const side = (rs) => ({
            ...Object.fromEntries(METRICS.map((k) => [k, bmedian(rs.map((c) => c.stats[k]))])),
            resident_dtype: rs[0].stats.resident_dtype,
            ms_per_token_runs: rs.map((c) => c.stats.ms_per_token),
          });
          const o = side(runs.old), n = side(runs.new);
          const row = rows[key] = {
            old: o, new: n,
            ...Object.fromEntries(['ms_per_token', 'io_ms_per_token', 'mem_ms_per_token', 'compute_ms_per_token'].map((k) => [`ratio_${k}`, ratio(n[k], o[k])])),
            bytes_read_identical: same(runs.old.map((c) => [c.stats.bytes_read_per_token, c.stats.reads_per_token]), runs.new.map((c) => [c.stats.bytes_read_per_token, c.stats.reads_per_token])),
            ids_equal: runs.old.every((c, i) => same(c.ids, runs.new[i].ids)),
          };
          console.log(`${key.padEnd(34)} ms/token old ${o.ms_per_token.toFixed(3)} new ${n.ms_per_token.toFixed(3)} new/old ${row.ratio_ms_per_token}` +
            ` (io ${row.ratio_io_ms_per_token}, compute ${row.ratio_compute_ms_per_token}), ${(o.bytes_read_per_token / 1024).toFixed(0)} KiB/token` +
            `${row.bytes_read_identical ? '' : ' BYTES DIFFER'}${row.ids_equal ? '' : ' IDS DIFFER'}`);
        } catch (e) {
          if (!e.remote) throw e;
          rows[key] = { error: e.message };
          console.log(`${key}: ${e.message}`);
        } finally {
          for (const s of opened) if (s.exited === null) await s.call('close', { key }).catch(() => {});
        }
      }
    }
    for (const s of sides) await s.close();
  } finally {
    for (const s of sides ?? []) s.kill();
    trees.remove();
  }

  const okRows = Object.entries(rows).filter(([, x]) => x.old);
  console.log(`\nnew (${treesInfo(trees).new.tree === '.' ? 'this checkout' : trees.new.dir}) ÷ old (${trees.old.rev} = ${trees.old.commit.slice(0, 12)}), medians of ${ROUNDS} interleaved rounds of ${TOKENS} tokens:`);
  const f3 = (v) => v.toFixed(3);
  ratioTable(Object.entries(rows).map(([row, x]) => (x.old ? {
    row, old_ms: x.old.ms_per_token, new_ms: x.new.ms_per_token, ratio: x.ratio_ms_per_token, io: x.ratio_io_ms_per_token,
    compute: x.ratio_compute_ms_per_token, kib: +(x.old.bytes_read_per_token / 1024).toFixed(1),
    bytes: x.bytes_read_identical ? 'same' : 'DIFFER', ids: x.ids_equal ? 'same' : 'DIFFER',
  } : { row, bytes: x.skipped ?? 'error' })), [
    { key: 'old_ms', title: 'old ms/tok', fmt: f3 }, { key: 'new_ms', title: 'new ms/tok', fmt: f3 }, { key: 'ratio', title: 'new/old', fmt: f3 },
    { key: 'io', title: 'io new/old', fmt: f3 }, { key: 'compute', title: 'compute new/old', fmt: f3 }, { key: 'kib', title: 'KiB/tok (old)' },
    { key: 'bytes', title: 'bytes/tok' }, { key: 'ids', title: 'ids' },
  ]);
  const out = {
    machine: machine(), date: new Date().toISOString(),
    setup: {
      prompt_tokens: PROMPT, tokens: TOKENS, context_length: CONTEXT, rounds: ROUNDS, only: arg('--only') ?? null, models: budgets,
      statistic: 'per side, the median over the rounds of each figure (one warm-up run first); the two trees alternate which runs first each round',
      prompt: 'models/calibration.txt from the first paragraph after 95 % of its length (held out from predictor training)',
      warm: SETTINGS.warm, cold: { ...SETTINGS.cold, UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE },
      seconds: Math.round((Date.now() - t0) / 1000),
    },
    baseline: { ...treesInfo(trees), rows },
  };
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench/results/flash-baseline.json'), JSON.stringify(out, null, 2) + '\n');
  console.log(`wrote bench/results/flash-baseline.json (${out.setup.seconds} s)`);
  const bad = okRows.filter(([, x]) => !x.bytes_read_identical || !x.ids_equal).map(([k]) => k);
  if (bad.length) { console.error(`bytes read or generated ids differ between the trees: ${bad.join(', ')}`); process.exitCode = 1; }
  if (Object.values(rows).some((x) => x.error)) process.exitCode = 1;
}
