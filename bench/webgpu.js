// WebGPU vs the wasm CPU path (one thread, and every core), side by side in one run under Deno:
// ms per token for the dense model and for the sparse FFN (neuron cache of 25 % of each layer, window 5, the firing sets of
// src/synth.ts's ActivationModel in place of a predictor, the same sets for both devices), on a
// synthetic image of a real shape (default OPT-1.3B, f16: 2.6 GB). Writes
// bench/results/webgpu.json and webgpu.svg.
//
//   npm run bench:webgpu [-- --shape opt-1.3b --tokens 32 --cpu-tokens 4 --image PATH]
//   (Deno: deno run -A bench/webgpu.js ...; a hardware adapter is required, software ones are refused)
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Engine } from '../dist/src/index.js';
import { openGpu } from '../dist/src/gpu/webgpu.js';
import { ActivationModel, SHAPES, synthImage } from '../dist/src/node/synth-file.js';
import { barChart } from './plot.js';
import { machine } from './machine.js';

const argv = globalThis.Deno ? Deno.args : process.argv.slice(2);
const flag = (name, dflt) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1] : dflt; };
const shape = flag('shape', 'opt-1.3b');
const TOKENS = Number(flag('tokens', 32)), CPU_TOKENS = Number(flag('cpu-tokens', 4)), WARM = 2, CTX = 256;
const ROOT = new URL('..', import.meta.url).pathname;
const image = flag('image', join(process.env.FLASHNEURON_CACHE ?? join(ROOT, '.cache'), `synth-${shape}-f16.fnimg`));
const allowSoftware = argv.includes('--allow-software');
const IO = flag('io', 'wasi');
const CORES = Number(flag('cpu-threads', navigator.hardwareConcurrency ?? 1));   // sparse reads: 'wasi' = the wasm's fd_pread; 'async' = host-issued in parallel (slow under Deno)

const gpu = await openGpu({ allowFallback: allowSoftware });
if (!gpu) {
  console.error('bench:webgpu needs a hardware WebGPU adapter (run it under Deno on a machine with a GPU; --allow-software for a dry run)');
  process.exit(2);
}
const adapter = gpu.name + (gpu.f16 ? ' (shader-f16)' : '');
// The runtime's floor on a GPU -> CPU round trip: submit a 4 KiB copy, await mapAsync.
const readbackMs = await (async (dev) => {
  const src = dev.createBuffer({ size: 4096, usage: 0x80 | 0x04 }), dst = dev.createBuffer({ size: 4096, usage: 0x01 | 0x08 });
  const ts = [];
  for (let i = 0; i < 21; i++) {
    const e = dev.createCommandEncoder(); e.copyBufferToBuffer(src, 0, dst, 0, 4096); dev.queue.submit([e.finish()]);
    const t0 = performance.now(); await dst.mapAsync(1); ts.push(performance.now() - t0); dst.unmap();
  }
  return +ts.sort((a, b) => a - b)[10].toFixed(3);
})(gpu.device);
// The same floor without a mapping: the runtime's report that submitted work is done.
const doneMs = await (async (dev) => {
  const ts = [];
  for (let i = 0; i < 21; i++) {
    dev.queue.submit([dev.createCommandEncoder().finish()]);
    const t0 = performance.now(); await dev.queue.onSubmittedWorkDone(); ts.push(performance.now() - t0);
  }
  return +ts.sort((a, b) => a - b)[10].toFixed(3);
})(gpu.device);
console.error(`GPU -> CPU read-back round trip: ${readbackMs} ms, onSubmittedWorkDone ${doneMs} ms (medians)`);
gpu.device.destroy();

if (!existsSync(image)) {
  const t0 = performance.now();
  mkdirSync(join(image, '..'), { recursive: true });
  synthImage(shape, image, { dtype: 'f16' });
  console.error(`synthesised ${image} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
const cfg = SHAPES[shape];
const cacheRows = Math.round(cfg.ffn / 4);
const acts = new ActivationModel(cfg.nLayers, cfg.ffn, { seed: 11 });
const sets = Array.from({ length: WARM + TOKENS }, () => acts.next());

async function measure(device, mode, threads = 1) {
  const sparse = mode.startsWith('sparse');
  const engine = Engine.open(image, { mode: sparse ? 'sparse' : 'dense', contextLength: CTX, kvDtype: 'f32', threads, ...(sparse ? { cacheRows, window: 5, io: IO } : {}) });
  try {
    const used = await engine.setDevice(device);
    if (used !== device) throw new Error(`asked for ${device}, got ${used}`);
    // A trained predictor runs in the wasm on each layer's FFN input, which the GPU must then
    // hand back layer by layer: 'sparse-sync' pays that round trip, 'sparse' (sets known ahead) does not.
    if (mode === 'sparse-sync' && device === 'gpu') engine.backend.readInput = true;
    const n = device === 'cpu' ? CPU_TOKENS : TOKENS;
    if (mode === 'dense-chained') {
      // Greedy decoding chained on the GPU (argmax and embedding there; ids read back in batches).
      for (let t = 0; t < WARM; t++) await engine.forwardAsync(1000 + t, t, false);
      const t0 = performance.now();
      let got = 0;
      for await (const ids of engine.backend.greedy(WARM, n)) got += ids.length;
      const ms = (performance.now() - t0) / got;
      const r = { device: engine.backend.name, tokens: got, ms_per_token: +ms.toFixed(3) };
      console.error(shape, mode, device, JSON.stringify(r));
      return r;
    }
    let t0 = 0, ms = 0, logits;
    for (let t = 0; t < WARM + n; t++) {
      if (t === WARM) { engine.resetStats(); t0 = performance.now(); }
      if (sparse) sets[t].forEach((ids, l) => engine.predict(l, ids));
      await engine.forwardAsync(1000 + t, t);
      if (t === WARM + CPU_TOKENS - 1) logits = engine.logits().slice();   // compared across devices
    }
    ms = (performance.now() - t0) / n;
    const s = engine.stats();
    const r = { device: engine.backend.name, threads: engine.threads, tokens: n, ms_per_token: +ms.toFixed(3), bytes_read_per_token: Math.round(s.bytes_read / n),
      io_ms_per_token: +(s.io_ms / n).toFixed(3), mem_ms_per_token: +(s.mem_ms / n).toFixed(3) };
    console.error(shape, mode, device, JSON.stringify(r));
    Object.defineProperty(r, 'logits', { value: logits, enumerable: false });
    return r;
  } finally {
    engine.close();
  }
}

const results = {};
for (const mode of ['dense', 'dense-chained', 'sparse', 'sparse-sync']) {
  const shared = { 'dense-chained': 'dense', 'sparse-sync': 'sparse' }[mode];
  results[mode] = shared ? { cpu: results[shared].cpu, cpu_all_cores: results[shared].cpu_all_cores }
    : { cpu: await measure('cpu', mode), ...(CORES > 1 ? { cpu_all_cores: await measure('cpu', mode, CORES) } : {}) };
  const R = results[mode];
  // The GPU engine's wasm keeps deciding, reading and landing neurons (sparse): on every core.
  R.gpu = await measure('gpu', mode, CORES);
  R.gpu_speedup = +(R.cpu.ms_per_token / R.gpu.ms_per_token).toFixed(2);
  if (R.cpu_all_cores) R.gpu_speedup_all_cores = +(R.cpu_all_cores.ms_per_token / R.gpu.ms_per_token).toFixed(2);
  if (mode === 'dense-chained') continue;
  // The GPU's logits against the wasm's at the same token (same ids, same firing sets).
  const a = R.cpu.logits, b = R.gpu.logits;
  let worst = 0, scale = 0;
  for (let i = 0; i < a.length; i++) { worst = Math.max(worst, Math.abs(a[i] - b[i])); scale = Math.max(scale, Math.abs(a[i])); }
  const argmax = (x) => x.reduce((m, v, i) => (v > x[m] ? i : m), 0);
  R.logits_check = { position: WARM + CPU_TOKENS - 1, max_abs_diff: +worst.toPrecision(3), max_abs_logit: +scale.toPrecision(3), same_argmax: argmax(a) === argmax(b) };
}
const active = sets.slice(WARM).flat().reduce((a, s) => a + s.length, 0) / (TOKENS * cfg.nLayers * cfg.ffn);
const out = {
  date: new Date().toISOString(), machine: { ...machine(), runtime: globalThis.Deno ? `deno ${Deno.version.deno}` : `node ${process.version}`, gpu: adapter },
  shape, dtype: 'f16', image_bytes: statSync(image).size, context: CTX,
  sparse_setup: { cache_rows_per_layer: cacheRows, window: 5, active_share: +active.toFixed(4), firing: 'ActivationModel (src/synth.ts)', io: IO },
  readback_round_trip_ms: readbackMs, work_done_round_trip_ms: doneMs,
  goal_speedup: 20, results,
};
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
writeFileSync(join(ROOT, 'bench', 'results', 'webgpu.json'), JSON.stringify(out, null, 2) + '\n');
const svg = barChart({
  title: `WebGPU vs wasm CPU: ${shape} f16, ms per token (lower is better)`,
  subtitle: `${adapter} · ${out.machine.cpu} · ${out.date.slice(0, 10)} · speedup dense ${results.dense.gpu_speedup}× (${results['dense-chained'].gpu_speedup}× greedy chained), sparse ${results.sparse.gpu_speedup}× (${results['sparse-sync'].gpu_speedup}× synced per layer)`,
  unit: 'ms/token',
  groups: ['dense', 'dense-chained', 'sparse', 'sparse-sync'].map((m) => ({ label: m, bars: [
    { label: 'wasm cpu', value: results[m].cpu.ms_per_token },
    { label: 'webgpu', value: results[m].gpu.ms_per_token, text: `${results[m].gpu.ms_per_token} (${results[m].gpu_speedup}×)` },
  ] })),
});
writeFileSync(join(ROOT, 'bench', 'results', 'webgpu.svg'), svg);
console.log(JSON.stringify(results));
