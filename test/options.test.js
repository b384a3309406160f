// What a budget implies is decided in one place (resolveOptions, src/core/options.ts): the rules
// themselves, and the same inputs giving the same decisions from the CLI and the Node API (the
// browser worker's side is in test/browser.test.js).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel, readImageHeaderFile, resolveOptions, cachedImage, DEFAULT_MODEL } from '../dist/src/index.js';
import { cliRunner } from './helpers/cli.js';
import { cleanupTmp, tmpDir } from './helpers/hostile.js';

after(cleanupTmp);

describe('resolveOptions: the one place a budget is resolved', function () {
  let config, size;
  before(async () => {
    const image = await cachedImage(DEFAULT_MODEL, { cacheDir: tmpDir('optcache') });
    config = readImageHeaderFile(image).config;
    size = 1e6;
  });
  const facts = (over = {}) => ({ config, modelBytes: size, hasPredictor: true, gpu: 'none', gpuWeights: true, ...over });

  it('without a budget: dense, the model\'s context, f32 KV, as stored', () => {
    const r = resolveOptions({}, facts());
    assert.equal(r.mode, 'dense');
    assert.equal(r.contextLength, config.maxPositions);
    assert.equal(r.kvDtype, 'f32');
    assert.equal(r.memoryBytes, undefined);
    assert.equal(r.device, 'cpu');
    assert.equal(r.window, 'lru');
  });

  it('a budget: sparse with a predictor, hybrid (with a note) without, f16 KV, a context sized to the job', () => {
    const r = resolveOptions({ memory: '60%' }, facts());
    assert.deepEqual([r.mode, r.memoryBytes, r.kvDtype, r.contextLength, r.residentDtype, r.notes], ['sparse', 600000, 'f16', 128, 'auto', []]);
    const h = resolveOptions({ memory: '60%' }, facts({ hasPredictor: false }));
    assert.equal(h.mode, 'hybrid');
    assert.match(h.notes[0], /no sparsity predictor/);
    assert.equal(resolveOptions({ memory: '60%' }, facts({ jobTokens: 40 })).contextLength, 40);
    assert.throws(() => resolveOptions({ memory: '60%', mode: 'sparse' }, facts({ hasPredictor: false })), /sparse mode needs a sparsity predictor/);
  });

  it('WebGPU: auto takes a hardware adapter for weights it runs, and then keeps the weights as stored', () => {
    const g = resolveOptions({ memory: '60%' }, facts({ gpu: 'hardware' }));
    assert.deepEqual([g.device, g.residentDtype], ['gpu', 'stored']);
    assert.equal(resolveOptions({}, facts({ gpu: 'software' })).device, 'cpu');
    assert.equal(resolveOptions({}, facts({ gpu: 'hardware', gpuWeights: false })).device, 'cpu');
    assert.equal(resolveOptions({ device: 'gpu' }, facts({ gpu: 'software' })).device, 'gpu');
    assert.throws(() => resolveOptions({ device: 'gpu' }, facts()), /no WebGPU adapter/);
  });

  it('host-issued reads get planner costs from the device profile', () => {
    assert.equal(resolveOptions({}, facts()).planner, undefined);
    const p = resolveOptions({ direct: true }, facts()).planner;
    assert.equal(resolveOptions({ direct: true }, facts()).io, 'async');
    assert.ok(p.opUs > 0 && p.byteUs > 0 && p.gapBytes > 0);
  });

  it('refuses what it cannot do, in one line', () => {
    for (const [o, re] of [[{ mode: 'turbo' }, /mode must be/], [{ window: -1 }, /window must be/], [{ window: 1.5 }, /window must be/],
      [{ kvDtype: 'f8' }, /kvDtype must be/], [{ threshold: 2 }, /threshold must be/], [{ hybridShare: 2 }, /hybridShare must be/],
      [{ memory: '0%' }, /memory budget/], [{ memory: 'lots' }, /neither bytes/], [{ contextLength: 3.7 }, /contextLength must be an integer ≥ 1/],
      [{ queueDepth: 0 }, /queueDepth/], [{ io: 'mmap' }, /io must be/], [{ device: 'tpu' }, /device must be/]]) {
      assert.throws(() => resolveOptions(o, facts()), re, JSON.stringify(o));
    }
  });

  it('the CLI and the API resolve the same inputs to the same options', async () => {
    const cli = cliRunner('optcli');
    const text = join(tmpDir('opttext'), 't.txt');
    writeFileSync(text, 'The meaning of the word is what it says.');
    const cases = [
      [['--memory', '60%'], { memory: '60%' }],
      [['--memory', '90%', '--window', '5', '--kv', 'f32', '--predictor-rank', '32', '--resident-dtype', 'stored'],
        { memory: '90%', window: 5, kvDtype: 'f32', predictorRank: 32, residentDtype: 'stored' }],
      [['--memory', '70%', '--mode', 'hybrid', '--context', '64'], { memory: '70%', mode: 'hybrid', contextLength: 64 }],
      [[], {}],
    ];
    // The CLI runs go one after another (the first converts the model into their cache) while
    // this process loads the same inputs through the API.
    let chain = Promise.resolve();
    const runs = cases.map(([flags]) => (chain = chain.then(() => cli('perplexity', '--json', ...flags, text))));
    for (const [i, [flags, opts]] of cases.entries()) {
      const model = await loadModel(undefined, opts);
      let fromApi;
      try { fromApi = JSON.parse(JSON.stringify(model.options)); } finally { model.close(); }
      const r = await runs[i];
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout).options, fromApi, flags.join(' '));
    }
  });
});
