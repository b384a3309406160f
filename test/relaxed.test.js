// The relaxed-SIMD builds (build/flashneuron.relaxed*.wasm). Node 20 has no standard relaxed
// SIMD (behind --experimental-wasm-relaxed-simd its V8 reads the dot's signed operand as
// unsigned), so the kernels and a model run in Deno, which picks the relaxed build by itself:
// its kernels against the scalar references (test/kernels.test.js, whose relaxed suite runs
// wherever the build is usable), and greedy ids against the golden ids and the SIMD build's.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadModel } from '../dist/src/index.js';
import { golden, imagePath, ROOT } from './helpers/models.js';

const DENO = join(ROOT, 'node_modules', '@deno', 'linux-x64-glibc', 'deno');
const GREEDY = { temperature: 0, maxTokens: 12, stopAtEos: false };

/** Runs `args` in Deno from the repository root. */
function deno(args, env = {}) {
  return spawnSync(DENO, args, { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', ...env }, timeout: 240_000, maxBuffer: 1 << 24 });
}

describe('relaxed SIMD build', function () {
  this.timeout(300_000);
  before(function () {
    if (!existsSync(DENO)) this.skip();   // the deno devDependency is not installed: no runtime here runs standard relaxed SIMD
  });

  it('Node 20 refuses it in one line when asked for (no standard relaxed SIMD), with or without the V8 flag', () => {
    const script = `import('${pathToFileURL(join(ROOT, 'dist/src/index.js')).href}').then((m) => { try { m.instantiateEngine({ build: 'relaxed' }); console.log('ran'); } catch (e) { console.log(e.message); } });`;
    for (const flags of [[], ['--experimental-wasm-relaxed-simd']]) {
      const r = spawnSync(process.execPath, [...flags, '--input-type=module', '-e', script], { encoding: 'utf8' });
      if (!process.version.startsWith('v20.')) return;   // newer Node runs it (its kernels.test.js suite covers it)
      assert.match(r.stdout.trim(), /^the relaxed SIMD wasm build was asked for \(FLASHNEURON_WASM=relaxed\) but this runtime rejects it/);
    }
  });

  it('in Deno: every kernel of the relaxed build against its scalar reference, and Q8_0/Q4_0 rows bitwise the SIMD build\'s', () => {
    const r = deno(['run', '-A', 'node_modules/mocha/lib/cli/cli.js', '--grep', 'relaxed build', 'test/kernels.test.js']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /kernels \(relaxed build\)/);
    const passing = Number(/(\d+) passing/.exec(r.stdout)?.[1]);
    assert.ok(passing >= 20, r.stdout);
    assert.doesNotMatch(r.stdout, /failing|pending/);
  });

  // Q8_0/Q4_0: the dots are the SIMD build's bit for bit; the down columns sum in i8 steps there
  // (assembly/kernels/quant-down.ts), so the runs part after a few tokens: held-out perplexity the same.
  it('in Deno the relaxed build runs by default: greedy ids equal the golden ids (f32); Q8_0, Q4_0 as the SIMD build\'s (first ids, perplexity)', async () => {
    const cases = [['opt-relu-mini'], ['llama-relu-mini'], ['llama-relu-mini', { dtype: 'q8_0' }], ['llama-relu-mini', { dtype: 'q4_0' }]];
    const jobs = [];
    const heldOut = readFileSync(join(ROOT, 'models', 'calibration.txt'), 'utf8').slice(-3000);
    for (const [name, convert] of cases) jobs.push({ name, convert, image: await imagePath(name, convert), prompt: golden(name).prompts[0].text });
    // deno eval from the root: the package's dependencies resolve as for bin/flashneuron.js
    const r = deno(['eval', `import { loadModel } from './dist/src/index.js';
const out = [];
for (const j of ${JSON.stringify(jobs)}) {
  const m = await loadModel(j.image, { threads: 1 });
  try {
    const c = await m.complete(j.prompt, ${JSON.stringify(GREEDY)});
    out.push({ device: c.stats.device, ids: c.ids, ppl: j.convert ? (await m.perplexity(${JSON.stringify(heldOut)}, { context: 128 })).ppl : null });
  } finally { m.close(); }
}
console.log(JSON.stringify(out));`]);
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout.trim().split('\n').pop());
    for (const [i, j] of jobs.entries()) {
      assert.equal(got[i].device, 'wasm relaxed simd', `${j.name}: ran on ${got[i].device}`);
      if (!j.convert) assert.deepEqual(got[i].ids, golden(j.name).prompts[0].greedy_ids.slice(0, GREEDY.maxTokens), j.name);
      else {
        const m = await loadModel(j.image, { threads: 1 });   // Node: the SIMD build
        try {
          const c = await m.complete(j.prompt, GREEDY);
          assert.equal(c.stats.device, 'wasm simd');
          assert.deepEqual(got[i].ids.slice(0, 4), c.ids.slice(0, 4), `${j.name} ${j.convert.dtype}: relaxed vs SIMD build`);
          const ppl = (await m.perplexity(heldOut, { context: 128 })).ppl;
          assert.ok(Math.abs(got[i].ppl / ppl - 1) <= 0.005, `${j.name} ${j.convert.dtype}: perplexity ${got[i].ppl} relaxed vs ${ppl} SIMD`);
        } finally { m.close(); }
      }
    }
  });

  it('FLASHNEURON_WASM=simd keeps Deno on the SIMD build; plain on the scalar one; anything else is refused in one line', () => {
    const script = `import { instantiateEngine } from './dist/src/index.js';
try { const r = instantiateEngine(); console.log(JSON.stringify({ simd: r.simd, relaxed: r.relaxed, level: r.exports.simd_level() })); } catch (e) { console.log(e.message); }`;
    const pick = (v) => deno(['eval', script], v === undefined ? {} : { FLASHNEURON_WASM: v }).stdout.trim();
    assert.deepEqual(JSON.parse(pick(undefined)), { simd: true, relaxed: true, level: 2 });
    assert.deepEqual(JSON.parse(pick('simd')), { simd: true, relaxed: false, level: 1 });
    assert.deepEqual(JSON.parse(pick('plain')), { simd: false, relaxed: false, level: 0 });
    assert.equal(pick('fast'), 'FLASHNEURON_WASM=fast: unknown wasm build (auto, relaxed, simd, plain)');
  });
});
