#!/usr/bin/env node
// npm run bench:browser7b [-- --tokens 64 --memory 2GiB --seed 1 --threads N --active 0.1 --shape llama-2-7b --dtype int4 --image PATH --port 47317] | --plot
//
// A Llama-2-7B-shaped int4 model (flashneuron synth, ≈ 3.6 GiB) in a real Chromium tab: the image
// is streamed into OPFS of a persistent profile (kept in the cache folder, so the copy happens
// once), loaded by the engine worker in sparse mode under a memory budget, its firing sets drawn
// by the synthetic ActivationModel (load option syntheticFiring: synthetic images have no
// predictor), and 64 tokens are generated greedily. The same run in Node beside it (same image,
// options and seed): ms/token split into I/O, cache and compute, bytes read per token, the wasm
// memory peak against the budget, and the ratio browser ÷ Node. Writes
// bench/results/browser7b.json and .svg. test/browser7b.test.js runs the same path on a tiny shape.
import { createServer } from 'node:http';
import { createReadStream, existsSync, mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { machine } from './machine.js';
import { barChart } from './plot.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const CHROMIUM = process.env.CHROMIUM_PATH ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find(existsSync);
const WEB = ['flashneuron.js', 'worker.js', 'compute-worker.js', 'flashneuron.simd.wasm', 'flashneuron.wasm', 'flashneuron.threads.wasm', 'flashneuron.relaxed.wasm', 'flashneuron.relaxed-threads.wasm'];
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.wasm': 'application/wasm' };

// The page: the package's WorkerModel over the engine worker (dist/web, npm run webbuild), and a
// run() that stores the image in OPFS (streamed: fetch → sync access handle, never whole in
// memory), loads it and generates, taking the engine's wasm memory after every token.
const PAGE = `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>flashneuron browser7b</title><script type="module">
import { WorkerModel } from './flashneuron.js';
const model = new WorkerModel(new Worker('./worker.js', { type: 'module' }));
// relaxed: offer the relaxed-SIMD builds (the worker runs them where Chromium has relaxed SIMD);
// without them it runs the SIMD build, as a runtime without relaxed SIMD does.
window.bench = async ({ name, keep, options, prompt, tokens, relaxed }) => {
  await model.init({ simd: 'flashneuron.simd.wasm', plain: 'flashneuron.wasm', threads: 'flashneuron.threads.wasm',
    ...(relaxed ? { relaxed: 'flashneuron.relaxed.wasm', relaxedThreads: 'flashneuron.relaxed-threads.wasm' } : {}) });
  // Older copies of this image (another size or date) go: each is gigabytes of the profile.
  const dir = await navigator.storage.getDirectory();
  for await (const k of dir.keys()) if (k.startsWith(keep) && k !== name) await dir.removeEntry(k);
  const stored = await dir.getFileHandle(name).then(() => true, () => false);
  let last = -1;
  const t0 = performance.now();
  const info = await model.load({ name, url: 'image' }, options, (phase, done, total) => {
    const pct = total ? Math.floor(10 * done / total) * 10 : 0;
    if (pct !== last) { last = pct; console.log('progress ' + phase + ' ' + pct + '%'); }
  });
  const loadMs = performance.now() - t0;
  let peak = info.memory.total;
  const c = await model.call({ op: 'generate', prompt, options: { maxTokens: tokens, temperature: 0, stopAtEos: false } },
    { token: (t, s) => { peak = Math.max(peak, s.memory_bytes); } });
  model.close();
  return { info, completion: c, memory_peak: Math.max(peak, c.stats.resident_bytes_peak), load_ms: loadMs, copied: !stored,
    isolated: crossOriginIsolated, cores: navigator.hardwareConcurrency, agent: navigator.userAgent };
};
</script>`;

/**
 * Serves the page, the engine's web build and `image` (as /image) with COOP/COEP (threads need
 * cross-origin isolation). OPFS belongs to the origin: a profile finds its copy again on the same port.
 */
export async function startBenchServer(image, port = 0) {
  for (const f of WEB.slice(0, 2)) if (!existsSync(join(ROOT, 'dist', 'web', f))) throw new Error(`dist/web/${f} is missing: run npm run webbuild`);
  const server = createServer((req, res) => {
    const p = new URL(req.url, 'http://x').pathname.slice(1);
    const headers = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp', 'Cache-Control': 'no-cache' };
    if (p === '' || p === 'index.html') { res.writeHead(200, { ...headers, 'Content-Type': TYPES['.html'] }).end(PAGE); return; }
    const path = p === 'image' ? image : WEB.includes(p) ? join(ROOT, 'dist', 'web', p) : undefined;
    if (!path || !existsSync(path)) { res.writeHead(404, headers).end('not found'); return; }
    res.writeHead(200, { ...headers, 'Content-Type': TYPES[extname(path)] ?? 'application/octet-stream', 'Content-Length': statSync(path).size });
    createReadStream(path, { highWaterMark: 1 << 20 }).pipe(res);
  });
  await new Promise((resolve, reject) => {
    server.once('error', (e) => reject(e.code === 'EADDRINUSE' ? new Error(`port ${port} is in use (--port N to choose another)`) : e));
    server.listen(port, '127.0.0.1', resolve);
  });
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }) };
}

/** The image's OPFS name: its file name, size and date, so a rewritten image is copied again. */
export function opfsName(image) {
  const st = statSync(image), base = image.split('/').pop().replace(/\.fnimg$/, '');
  return { keep: `${base}-`, name: `${base}-${st.size}-${Math.floor(st.mtimeMs)}.fnimg` };
}

/**
 * Runs the image in a Chromium tab of the persistent profile `profile`: stores it in OPFS (once),
 * loads it with `options` and generates `tokens` greedy tokens. `relaxed` false keeps the engine
 * on the SIMD build (Node 20's: the same arithmetic, bit for bit). `log` gets the page's progress.
 */
export async function runBrowser({ image, profile, port = 0, options, prompt, tokens, relaxed = true, log = () => {} }) {
  if (!CHROMIUM) throw new Error('no Chromium (apt-get install chromium, or set CHROMIUM_PATH)');
  const server = await startBenchServer(image, port);
  mkdirSync(profile, { recursive: true });
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  try {
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => log(m.text()));
    await page.goto(server.url);
    const r = await page.evaluate((a) => window.bench(a), { ...opfsName(image), options, prompt, tokens, relaxed });
    if (errors.length) throw new Error(`page error: ${errors[0]}`);
    return r;
  } finally {
    await context.close();
    await server.close();
  }
}

/** The same run in Node (the package's loadModel), the engine's memory taken after every token. */
export async function runNode({ image, options, prompt, tokens }) {
  const { loadModel } = await import('../dist/src/index.js');
  const t0 = performance.now();
  const model = await loadModel(image, options);
  const loadMs = performance.now() - t0;
  try {
    let peak = model.engine.memoryBytes;
    const it = model.generate(prompt, { maxTokens: tokens, temperature: 0, stopAtEos: false });
    for (;;) {
      const r = await it.next();
      peak = Math.max(peak, model.engine.memoryBytes);
      if (r.done) return { info: { mode: model.engine.mode, memory: model.engine.memory, options: model.options, device: model.engine.backend.name }, completion: r.value, memory_peak: peak, load_ms: loadMs };
    }
  } finally { model.close(); }
}

/** Writes the synthetic image once (to a temporary name, renamed when complete). */
export async function ensureImage(image, shape, dtype, log = () => {}) {
  if (existsSync(image)) return false;
  const { synthImage } = await import('../dist/src/node/synth-file.js');
  mkdirSync(join(image, '..'), { recursive: true });
  const tmp = `${image}.partial`;
  let last = -1;
  // int8 and int4 are GGUF's Q8_0 and Q4_0, as the CLI names them.
  synthImage(shape, tmp, { dtype: { int8: 'q8_0', int4: 'q4_0' }[dtype] ?? dtype, onProgress: (done, total) => {
    const pct = Math.floor((100 * done) / total);
    if (pct !== last && pct % 10 === 0) { last = pct; log(`synth ${shape} ${dtype}: ${pct}%`); }
  } });
  renameSync(tmp, image);
  return true;
}

/** The per-token figures of a run, rounded. */
function perToken(r) {
  const s = r.completion.stats;
  return {
    ms_per_token: s.ms_per_token, io_ms_per_token: s.io_ms_per_token, mem_ms_per_token: s.mem_ms_per_token, compute_ms_per_token: s.compute_ms_per_token,
    firing_ms_per_token: s.predictor_ms_per_token, bytes_read_per_token: s.bytes_read_per_token, reads_per_token: s.reads_per_token,
    ffn_read_fraction: s.ffn_read_fraction, ffn_cache_fraction: s.ffn_cache_fraction, tokens: s.tokens, prompt_ms: s.prompt_ms, threads: s.threads, device: s.device,
    memory_peak_bytes: r.memory_peak, memory_report: r.info.memory, load_ms: Math.round(r.load_ms),
  };
}

/** The figure: ms/token split into I/O, cache and compute, per host. */
function chart(out) {
  const { node: n, chromium: b, chromium_own_build: d } = out, mib = (v) => (v / 2 ** 20).toFixed(1);
  const bar = (r) => [
    { label: 'total', value: r.ms_per_token }, { label: 'I/O', value: r.io_ms_per_token },
    { label: 'cache', value: r.mem_ms_per_token }, { label: 'compute', value: r.compute_ms_per_token },
  ];
  return barChart({
    title: `${out.image.shape} ${out.image.dtype} under ${out.options.memory}, sparse (synthetic firing), ${out.tokens} tokens: ms per token`,
    subtitle: `Chromium ÷ Node, same wasm build: ${out.ratio_browser_over_node}×; ${mib(b.bytes_read_per_token)} MiB read/token; ` +
      `wasm memory peak ${mib(Math.max(n.memory_peak_bytes, b.memory_peak_bytes))} of ${mib(out.budget_bytes)} MiB`,
    unit: 'ms/token', width: 800,
    groups: [{ label: `Node ${n.version} (${n.device})`, bars: bar(n) }, { label: `Chromium, OPFS (${b.device})`, bars: bar(b) },
      ...(d ? [{ label: `Chromium, OPFS (${d.device})`, bars: bar(d) }] : [])],
  });
}

async function main() {
  const args = process.argv.slice(2);
  const flag = (name, dflt) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : dflt; };
  // --plot: the figure again from the last results, nothing run.
  if (args.includes('--plot')) {
    const { readFileSync } = await import('node:fs');
    writeFileSync(join(ROOT, 'bench', 'results', 'browser7b.svg'), chart(JSON.parse(readFileSync(join(ROOT, 'bench', 'results', 'browser7b.json'), 'utf8'))));
    return;
  }
  const shape = flag('shape', 'llama-2-7b'), dtype = flag('dtype', 'int4');
  const tokens = Number(flag('tokens', '64')), memory = flag('memory', '2GiB'), seed = Number(flag('seed', '1'));
  const threads = Number(flag('threads', String((await import('node:os')).availableParallelism())));
  for (const [k, v] of Object.entries({ tokens, seed, threads })) if (!Number.isInteger(v) || v < (k === 'seed' ? 0 : 1)) throw new Error(`--${k} must be an integer ≥ ${k === 'seed' ? 0 : 1} (got ${flag(k)})`);
  const activeShare = Number(flag('active', '0.1'));
  // A fixed origin: the profile's OPFS copy of the image is the origin's, found again next run.
  const port = Number(flag('port', '47317'));
  const cache = process.env.FLASHNEURON_CACHE ?? join(ROOT, '.cache');
  const image = flag('image', join(cache, `synth-${shape}-${dtype}.fnimg`));
  const log = (m) => process.stderr.write(`${m}\n`);

  const t0 = performance.now();
  if (await ensureImage(image, shape, dtype, log)) log(`synthesised ${image} in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  // One load option set for both hosts: sparse mode, firing drawn by the ActivationModel.
  const options = { memory, mode: 'sparse', syntheticFiring: { seed, activeShare }, threads };
  const { parseMemory } = await import('../dist/src/index.js');
  const budget = parseMemory(memory, statSync(image).size);
  const prompt = 'The meaning of the word';

  const os = await import('node:os');
  const loadBefore = os.loadavg().map((v) => +v.toFixed(2));
  log(`node: ${shape} ${dtype}, ${memory}, ${tokens} tokens, ${threads} threads`);
  const node = await runNode({ image, options, prompt, tokens });
  log(`node: ${node.completion.stats.ms_per_token} ms/token`);
  log(`chromium: ${CHROMIUM}`);
  const profile = join(cache, 'chromium-profile-browser7b');
  // First on Node's build (the same kernels: the ratio is the browser's own cost), then, where
  // Node ran without relaxed SIMD, on the build Chromium picks by itself.
  const nodeRelaxed = node.completion.stats.device.includes('relaxed');
  const browser = await runBrowser({ image, profile, port, options, prompt, tokens, relaxed: nodeRelaxed, log: (m) => log(`  page: ${m}`) });
  log(`chromium (${browser.completion.stats.device}): ${browser.completion.stats.ms_per_token} ms/token`);
  const own = nodeRelaxed ? undefined : await runBrowser({ image, profile, port, options, prompt, tokens, log: (m) => log(`  page: ${m}`) });
  if (own) log(`chromium (${own.completion.stats.device}): ${own.completion.stats.ms_per_token} ms/token`);

  const n = perToken(node), b = perToken(browser), d = own && perToken(own);
  const ratio = +(b.ms_per_token / n.ms_per_token).toFixed(3);
  for (const [host, r] of [['node', n], ['chromium', b], ['chromium (own build)', d]]) {
    if (!r) continue;
    if (r.memory_peak_bytes > budget) throw new Error(`${host}: wasm memory peak ${r.memory_peak_bytes} exceeds the budget ${budget}`);
    if (r.tokens !== tokens) throw new Error(`${host}: ${r.tokens} tokens generated, ${tokens} asked for`);
  }
  const out = {
    machine: machine(), date: new Date().toISOString(),
    // Other jobs share this machine: its 1/5/15-minute load averages before and after the runs.
    load_average: { before: loadBefore, after: os.loadavg().map((v) => +v.toFixed(2)) },
    command: `npm run bench:browser7b${args.length ? ` -- ${args.join(' ')}` : ''}`,
    image: { path: image, shape, dtype, bytes: statSync(image).size },
    options, budget_bytes: budget, tokens, prompt,
    chromium: { ...b, version: browser.agent, cross_origin_isolated: browser.isolated, hardware_concurrency: browser.cores, opfs_copied_this_run: browser.copied },
    node: { ...n, version: process.version },
    ratio_browser_over_node: ratio,
    ...(d ? { chromium_own_build: { ...d, ratio_over_node: +(d.ms_per_token / n.ms_per_token).toFixed(3), opfs_copied_this_run: own.copied, same_ids_as_node: JSON.stringify(own.completion.ids) === JSON.stringify(node.completion.ids) } } : {}),
    acceptance: { within_1_5x: ratio <= 1.5, memory_peak_within_budget: [n, b, d].every((r) => !r || r.memory_peak_bytes <= budget), tokens: [n, b, d].every((r) => !r || r.tokens === tokens) },
    same_ids: JSON.stringify(browser.completion.ids) === JSON.stringify(node.completion.ids),
    same_bytes_read: b.bytes_read_per_token === n.bytes_read_per_token,
    notes: [
      'chromium: the same wasm build as Node (ratio_browser_over_node); chromium_own_build: the build Chromium picks itself (relaxed SIMD, where Node ran without it): its fused multiply-adds round differently, so its greedy ids on these random weights may differ while the firing sets, hence the reads, are the same',
      'ms/token is the decode phase (prompt excluded); compute is the rest of the wall time after I/O waits and cache management, and includes drawing the synthetic firing sets (firing_ms_per_token)',
      'memory_peak_bytes: the engine\'s wasm memory (WebAssembly.Memory buffer) after loading and after every token, plus host staging; wasm memory never shrinks, so the last reading is the peak',
      'the image and its OPFS copy fit this machine\'s page cache: FFN reads are warm page-cache reads on both hosts',
      `one run; this machine has ${machine().cores} vCPUs and other jobs were running on it`,
    ],
  };
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'results', 'browser7b.json'), JSON.stringify(out, null, 2) + '\n');
  writeFileSync(join(ROOT, 'bench', 'results', 'browser7b.svg'), chart(out));
  console.log(JSON.stringify({ node: n.ms_per_token, chromium: b.ms_per_token, ratio, chromium_own_build: d?.ms_per_token, bytes_per_token: [n.bytes_read_per_token, b.bytes_read_per_token], peak: [n.memory_peak_bytes, b.memory_peak_bytes], budget }));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((e) => { console.error(`bench:browser7b: ${e.message}`); process.exit(1); });
}
