// TEAL input sparsity on llama-silu-mini (bf16), one compute thread:
//   - per target share (0, 25, 40, 50 %): held-out perplexity (the last 12 000 characters of
//     models/calibration.txt, context 128), decode ms/token (64 greedy tokens after a 32-token
//     held-out prompt; medians of --rounds interleaved rounds), the input sparsity measured on the
//     held-out text and the share of the q/k/v/o/gate/up multiply-adds whose weight column meets a
//     cut input (and of all the token's matrix work: down and lm_head included);
//   - the kernels on the model's shapes (bf16 384×384 and 1024×384): the dense matvec, the masked
//     input through it (what the engine runs), and the gathered kernel that reads only the kept
//     columns, at kept shares 1 to 0.1 (medians of interleaved rounds).
// Writes bench/results/teal.json and teal.svg.
// Usage: node bench/teal.js [--rounds N] [--max-tokens N]
const { mkdirSync, readFileSync, writeFileSync, rmSync } = await import('node:fs');
const { join } = await import('node:path');
const { tmpdir } = await import('node:os');
const { fileURLToPath } = await import('node:url');
const { machine } = await import('./machine.js');
const { barChart } = await import('./plot.js');
const { convertHF, loadModel, instantiateEngine } = await import('../dist/src/index.js');
const { calibrateThresholds, encodeThresholds } = await import('../dist/src/predictor/thresholds.js');
const { modelFingerprint } = await import('../dist/src/predictor/format.js');

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const args = process.argv.slice(2);
const arg = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const ROUNDS = Number(arg('--rounds') ?? 7), MAX_TOKENS = Number(arg('--max-tokens') ?? 16000);
const SHARES = [0, 0.25, 0.4, 0.5], TOKENS = 64, PROMPT = 32, CONTEXT = 128;
const r3 = (x) => Math.round(x * 1000) / 1000;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const dir = join(ROOT, 'test/fixtures/llama-silu-mini');
const work = join(tmpdir(), `flashneuron-teal-bench-${process.pid}`);
mkdirSync(work, { recursive: true });
const image = join(work, 'llama-silu-mini.fnimg'), thr = join(work, 'llama-silu-mini.fnthr');
await convertHF(dir, image);
const calib = readFileSync(join(ROOT, 'models/calibration.txt'), 'utf8');
const held = calib.slice(-12000);

const rec = await loadModel(image, { device: 'cpu', threads: 1, tealRecord: true });
const t0 = Date.now();
const cal = await calibrateThresholds(rec, calib, modelFingerprint(rec.engine.header), { sparsity: 0.5, teal: 0.4, maxTokens: MAX_TOKENS });
const calibrateSeconds = (Date.now() - t0) / 1000;
const promptIds = rec.tokenize(held).slice(0, PROMPT), cfg = rec.config;
rec.close();
writeFileSync(thr, encodeThresholds(cal));

const qDim = cfg.nHeads * cfg.headDim, kvDim = cfg.nKvHeads * cfg.headDim, d = cfg.hidden;
// Multiply-adds per layer of each input's matrices: q/k/v, o, gate/up; then down and lm_head.
const MACS = [(qDim + 2 * kvDim) * d, d * qDim, 2 * cfg.ffn * d];
const allMacs = cfg.nLayers * (MACS[0] + MACS[1] + MACS[2] + d * cfg.ffn) + cfg.vocab * d;

const BASE = { device: 'cpu', threads: 1, contextLength: CONTEXT, thresholdsPath: thr };
const rows = {};
for (const s of SHARES) {
  const m = await loadModel(image, { ...BASE, teal: s });
  m.engine.resetStats();
  const ppl = r3((await m.perplexity(held, { context: CONTEXT })).ppl);
  const counts = m.engine.tealCounts();
  const share = [0, 1, 2].map((g) => counts.reduce((a, c) => a + c[g].cut, 0) / counts.reduce((a, c) => a + c[g].seen, 0));
  const skipped = counts.reduce((a, c) => a + c.reduce((b, x, g) => b + x.cut / Math.max(1, x.seen) * MACS[g], 0), 0) / counts.length;
  const ids = (await m.complete(promptIds, { maxTokens: TOKENS, temperature: 0, stopAtEos: false })).ids;
  rows[s] = { m, ppl, ids, input_sparsity: { qkv: r3(share[0]), o: r3(share[1]), gate_up: r3(share[2]) },
    macs_skipped_share: r3(skipped / (MACS[0] + MACS[1] + MACS[2])), macs_skipped_share_of_all: r3(skipped * cfg.nLayers / allMacs), ms: [] };
  process.stderr.write(`teal ${s}: ppl ${ppl}, input sparsity ${JSON.stringify(rows[s].input_sparsity)}\n`);
}
// Also SiLU sparse mode (FFN on flash at 70 %) with and without TEAL 40 %.
const sparseRows = {};
for (const s of [undefined, 0.4]) {
  const m = await loadModel(image, { ...BASE, memory: '70%', mode: 'sparse', teal: s });
  sparseRows[s === undefined ? 'sparse_50' : 'sparse_50_teal_40'] = { ppl: r3((await m.perplexity(held, { context: CONTEXT })).ppl) };
  m.close();
}
for (let r = 0; r < ROUNDS; r++) {
  for (const s of SHARES) {
    const c = await rows[s].m.complete(promptIds, { maxTokens: TOKENS, temperature: 0, stopAtEos: false });
    if (r > 0) rows[s].ms.push(c.stats.ms_per_token);   // round 0 warms up
  }
}
const sweep = SHARES.map((s) => {
  const x = rows[s]; x.m.close();
  return { teal: s, ppl: x.ppl, ppl_vs_dense: r3(x.ppl / rows[0].ppl - 1), ms_per_token: r3(median(x.ms)), ms_per_token_runs: x.ms.map(r3),
    input_sparsity: x.input_sparsity, macs_skipped_share: x.macs_skipped_share, macs_skipped_share_of_all: x.macs_skipped_share_of_all,
    ids_match_dense: JSON.stringify(x.ids) === JSON.stringify(rows[0].ids) };
});

// ---- kernels on the model's shapes (bf16) ----
const { exports: e } = instantiateEngine({});
e._initialize();
const F = new Float32Array(1), U = new Uint32Array(F.buffer);
const KEEP = [1, 0.75, 0.6, 0.5, 0.3, 0.1];
const kernels = [];
for (const [nr, nc] of [[384, 384], [1024, 384]]) {
  const w = e.alloc(nr * nc * 2, 64), x = e.alloc(nc * 4, 64), xz = e.alloc(nc * 4, 64), xp = e.alloc(e.prep_len(nc) * 4, 64);
  const out = e.alloc(nr * 4, 64), idx = e.alloc(nc * 4, 64), xs = e.alloc(nc * 4, 64);
  const wv = new Uint16Array(e.memory.buffer, w, nr * nc);
  for (let i = 0; i < wv.length; i++) { F[0] = Math.sin(i * 0.37) * 0.05 + 0.001; wv[i] = U[0] >>> 16; }
  const xv = Float32Array.from({ length: nc }, (_, i) => Math.sin(i * 1.7) * 2);
  new Float32Array(e.memory.buffer, x, nc).set(xv);
  const abs = Array.from(xv, Math.abs).sort((a, b) => a - b);
  const reps = Math.ceil(2e7 / (nr * nc));
  const time = (f) => { const t = performance.now(); for (let i = 0; i < reps; i++) f(); return (performance.now() - t) / reps * 1000; };
  const runs = KEEP.map(() => ({ dense: [], masked: [], gathered: [] }));
  for (let r = 0; r < ROUNDS; r++) {
    KEEP.forEach((k, i) => {
      const t = k === 1 ? 0 : abs[Math.floor((1 - k) * nc)];
      runs[i].dense.push(time(() => e.matvec(2, w, nc * 2, x, xp, out, nr, nc)));
      runs[i].masked.push(time(() => { e.mask_inputs(x, nc, t, xz); e.matvec(2, w, nc * 2, xz, xp, out, nr, nc); }));
      runs[i].gathered.push(time(() => { const m = e.gather_inputs(x, nc, t, idx, xs); e.sparse_matvec(2, w, nc * 2, idx, xs, m, out, nr, nc); }));
    });
  }
  KEEP.forEach((k, i) => kernels.push({ shape: `${nr}x${nc}`, kept_share: k, dense_us: r3(median(runs[i].dense)), masked_us: r3(median(runs[i].masked)), gathered_us: r3(median(runs[i].gathered)) }));
}

const out = {
  machine: machine(), date: new Date().toISOString(),
  setup: { threads: 1, model: 'test/fixtures/llama-silu-mini (bf16), dense mode', heldout: 'last 12 000 characters of models/calibration.txt, context 128',
    calibration: `first 85 % of models/calibration.txt's tokens (${cal.tokens} tokens, ${r3(calibrateSeconds)} s), target 40 %; other shares from the calibrated quantiles`,
    decode: `${TOKENS} greedy tokens after a ${PROMPT}-token held-out prompt, median of ${ROUNDS - 1} interleaved rounds after a warm-up round`,
    engine_path: 'masked input through the ordinary matvec (the gathered kernel is slower at these shares: see kernels)', teal_cuts_40: cal.teal.cuts },
  sweep, sparse_mode: sparseRows, kernels,
};
mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
writeFileSync(join(ROOT, 'bench/results/teal.json'), JSON.stringify(out, null, 2) + '\n');
writeFileSync(join(ROOT, 'bench/results/teal.svg'), barChart({
  title: 'TEAL input sparsity on llama-silu-mini (bf16, dense, one thread)',
  subtitle: `held-out perplexity, ms/token, and the kernels at 384×384 (µs ÷ 10)`, unit: '',
  groups: [
    ...sweep.map((c) => ({ label: `TEAL ${Math.round(c.teal * 100)}%`, bars: [{ label: 'ppl', value: c.ppl }, { label: 'ms/token ×10', value: c.ms_per_token * 10 }, { label: 'q/k/v/o/gate/up MACs skipped %', value: 100 * c.macs_skipped_share }] })),
    ...kernels.filter((k) => k.shape === '384x384' && k.kept_share < 1).map((k) => ({ label: `keep ${k.kept_share}`, bars: [{ label: 'dense µs ÷ 10', value: k.dense_us / 10 }, { label: 'masked µs ÷ 10', value: k.masked_us / 10 }, { label: 'gathered µs ÷ 10', value: k.gathered_us / 10 }] })),
  ],
  refLine: { value: sweep[0].ppl, label: 'dense ppl' },
}));
console.log(JSON.stringify({ sweep, sparse_mode: sparseRows, kernels }, null, 1));
rmSync(work, { recursive: true, force: true });
