// The WebGPU backend against the wasm reference, on a software adapter (Mesa lavapipe or
// llvmpipe under Deno's WebGPU): both models, dense and with the FFN on flash (sparse with the
// shipped predictor, naive, hybrid, the unbundled layout, host-issued reads), shader-f16 on
// and off. Tolerance: every logit within 1e-3 of the wasm's (as against Hugging Face), the
// same argmax at every position and the same flash reads. Also: --device auto never fails.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT, golden, imagePath, modelDir } from './helpers/models.js';
import { cleanupTmp, tmpDir } from './helpers/hostile.js';

const run = promisify(execFile);
const DENO = join(ROOT, 'node_modules', '.bin', 'deno');
const BIN = join(ROOT, 'bin', 'flashneuron.js');
const TOL = 1e-3;

let env;
before(() => {
  env = { ...process.env, FLASHNEURON_CACHE: tmpDir('gpucache'), NO_COLOR: '1', XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? tmpDir('xdg') };
});
after(cleanupTmp);

// Deno processes run at once: each waits on the software adapter much of the time, so up to
// two per core finish sooner (4 on 2 cores: 44 s, where one took 74 s).
const JOBS = Math.min(4, 2 * availableParallelism());

/** Runs test/webgpu/compare.js over `cases` shared out to JOBS Deno processes; the adapter line
 *  and each case's result by name, as one process over all of them prints them. */
async function compare(cases) {
  const groups = Array.from({ length: JOBS }, (_, g) => cases.filter((_, i) => i % JOBS === g)).filter((g) => g.length);
  const outs = await Promise.all(groups.map((g) => run(DENO, ['run', '-A', join(ROOT, 'test', 'webgpu', 'compare.js'), JSON.stringify(g)], { env, maxBuffer: 1 << 24 })));
  const lines = outs.map((r) => r.stdout.trim().split('\n').map((l) => JSON.parse(l)));
  return { head: lines[0][0], results: new Map(lines.flatMap((l) => l.slice(1)).map((l) => [l.name, l])) };
}

// Greedy generation chained on the GPU: run in the same Deno processes as the logits cases.
const GENERATE = ['opt-relu-mini', 'llama-relu-mini'];
const generateCases = () => GENERATE.map((model) => ({ name: model, model: modelDir(model), prompt: golden(model).prompts[0].text, maxTokens: 48, options: {} }));
let runs;

function sequence(name) {
  const p = golden(name).prompts[0];
  return [...p.ids, ...p.greedy_ids];
}

// The f16 predictor: the default Q8_0 one rounds its input to int8, where the last-bit differences
// of GPU and wasm FFN inputs can flip a neuron's prediction; these cases compare the arithmetic.
// Resident weights as stored: the wasm run is the reference for the GPU's (which takes no Q8_0).
const flash = (memory, more = {}) => ({ memory, contextLength: 64, kvDtype: 'f32', predictorDtype: 'f16', residentDtype: 'stored', ...more });
// [model, case, options, shaderF16, image dtype]: an image dtype converts the model first (f32 and bf16 weight kernels).
const CASES = [
  ['opt-relu-mini', 'dense', {}],
  ['opt-relu-mini', 'dense, no shader-f16', {}, false],
  ['opt-relu-mini', 'sparse 60%', flash('60%')],
  ['opt-relu-mini', 'sparse 60%, unbundled', flash('60%', { layout: 'split' })],
  ['opt-relu-mini', 'naive 60%', flash('60%', { mode: 'naive' })],
  ['opt-relu-mini', 'hybrid 80%', flash('80%', { mode: 'hybrid' })],
  ['llama-relu-mini', 'dense', {}],
  ['llama-relu-mini', 'sparse 80%', flash('80%')],
  ['llama-relu-mini', 'sparse 80%, host reads', flash('80%', { io: 'async' })],
  ['llama-relu-mini', "sparse 60%, window 'lru'", flash('60%', { window: 'lru' })],
  ['llama-relu-mini', 'sparse 60%, no shader-f16', flash('60%'), false],
  ['opt-relu-mini', 'f32 weights, dense', {}, undefined, 'f32'],
  ['opt-relu-mini', 'f32 weights, naive 60%', flash('60%', { mode: 'naive' }), undefined, 'f32'],
  ['llama-relu-mini', 'f32 weights, hybrid 80%', flash('80%', { mode: 'hybrid' }), undefined, 'f32'],
  ['opt-relu-mini', 'bf16 weights, dense', {}, undefined, 'bf16'],
  // Bindings capped at 4 MiB: the 6.3 MB lm_head runs in row blocks (small-limit adapters).
  ['opt-relu-mini', 'dense, lm_head in row blocks', { gpuMaxBindingBytes: 4 << 20 }],
  ['llama-relu-mini', 'sparse 80%, lm_head in row blocks', flash('80%', { gpuMaxBindingBytes: 4 << 20 })],
  // Two threads: the threads build's shared memory reaches the GPU through a bounce buffer; the
  // wasm's reads and landing run on both threads.
  ['opt-relu-mini', 'dense, 2 threads', { threads: 2 }],
  ['llama-relu-mini', 'sparse 80%, 2 threads', flash('80%', { threads: 2 })],
];

describe('webgpu: GPU logits equal the wasm reference (Deno, software adapter)', function () {
  this.timeout(900_000);
  const results = new Map();
  let adapter = null;
  before(async function () {
    if (!existsSync(DENO)) this.skip();
    const images = {};   // converted once per run (helpers/models.js), as image.test.js's
    for (const [model, , , , dtype] of CASES) if (dtype) images[`${model}.${dtype}`] ??= await imagePath(model, { dtype });
    const cases = CASES.map(([model, name, options, shaderF16, dtype]) => ({
      name: `${model}: ${name}`, model: dtype ? images[`${model}.${dtype}`] : modelDir(model), ids: sequence(model), options, shaderF16,
    }));
    runs = await compare([...generateCases(), ...cases]);
    adapter = runs.head.adapter;
    for (const c of cases) if (runs.results.has(c.name)) results.set(c.name, runs.results.get(c.name));
    if (adapter) console.log(`    ${adapter}${runs.head.shaderF16 ? ', shader-f16' : ''}; largest logit difference per case: ` +
      [...results.values()].map((r) => `${r.name} ${r.worst.toExponential(1)}`).join('; '));
    if (!adapter) console.warn('    (no WebGPU adapter under Deno here: install mesa-vulkan-drivers; the GPU cases are skipped)');
  });
  for (const [model, name] of CASES) {
    it(`${model}: ${name}`, function () {
      if (!adapter) this.skip();
      const r = results.get(`${model}: ${name}`);
      assert.ok(r, 'case did not run');
      assert.ok(r.worst <= TOL, `largest logit difference ${r.worst} > ${TOL}`);
      assert.equal(r.argmax_same, r.positions);
      assert.equal(r.bytes_read_gpu, r.bytes_read_cpu);
    });
  }
});

describe('webgpu: greedy generation chained on the GPU equals the wasm (Deno, software adapter)', function () {
  this.timeout(600_000);
  for (const model of GENERATE) {
    it(`${model}: stops at EOS, then runs again; sampled runs in between`, async function () {
      if (!existsSync(DENO)) this.skip();
      // Run by the logits suite's before() (again here where that suite was not run).
      runs ??= await compare(generateCases());
      if (!runs.head.adapter) this.skip();
      const res = runs.results.get(model);
      assert.ok(res, 'case did not run');
      assert.equal(res.gpu.chained, true);
      assert.deepEqual(res.gpu.first, res.cpu.first);
      assert.deepEqual(res.gpu.second, res.cpu.second);
      assert.deepEqual(res.gpu.second, golden(model).prompts[0].greedy_ids.slice(0, 12));
      assert.equal(res.gpu.sampled.length, 4);
    });
  }
});

describe('webgpu: --device', function () {
  this.timeout(120_000);
  const prompt = () => golden('opt-relu-mini').prompts[0];
  it('auto falls back to the wasm where there is no WebGPU (Node) and gives the same text', async () => {
    const r = await run(process.execPath, [BIN, 'generate', '--device', 'auto', '--json', '--temperature', '0', '--max-tokens', '8', '--no-stop', prompt().text], { env });
    const j = JSON.parse(r.stdout);
    assert.match(j.stats.device, /^wasm/);
    assert.deepEqual(j.ids, prompt().greedy_ids.slice(0, 8));
  });
  it('gpu where there is none is a clear error', async () => {
    await assert.rejects(run(process.execPath, [BIN, 'generate', '--device', 'gpu', '--max-tokens', '2', 'x'], { env }),
      (e) => /no WebGPU adapter/.test(e.stderr) && e.code !== 0);
  });
  it('auto passes over a software adapter (Deno) and gpu takes it, with the golden ids', async function () {
    if (!existsSync(DENO)) this.skip();
    const args = (device) => ['run', '-A', BIN, 'generate', '--device', device, '--json', '--temperature', '0', '--max-tokens', '8', '--no-stop', prompt().text];
    const auto = JSON.parse((await run(DENO, args('auto'), { env })).stdout);
    assert.deepEqual(auto.ids, prompt().greedy_ids.slice(0, 8));
    const gpu = JSON.parse((await run(DENO, args('gpu'), { env }).catch((e) => ({ stdout: 'null', e }))).stdout);
    if (gpu === null) this.skip();   // no adapter at all
    assert.doesNotMatch(gpu.stats.device, /^wasm/);
    assert.match(auto.stats.device, /^wasm/);   // the only adapter here is a software one
    assert.deepEqual(gpu.ids, prompt().greedy_ids.slice(0, 8));
  });
});
