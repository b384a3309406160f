// The path of bench:browser7b (a Llama-2-7B-shaped int4 image in a Chromium tab from OPFS) on the
// tiny-llama shape: sparse mode whose firing sets the synthetic ActivationModel draws (load
// option syntheticFiring: synthetic images have no predictor), the image streamed into OPFS of a
// persistent profile, a budget under which the neuron caches hold only part of the FFN. The
// tab runs to N tokens within the budget and reads what Node reads, id for id.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ActivationModel, synthImage } from '../dist/src/node/synth-file.js';
import { loadModel, parseMemory, resolveOptions } from '../dist/src/index.js';
import { CHROMIUM, runBrowser, runNode } from '../bench/browser7b.js';
import { imagePath } from './helpers/models.js';
import { cleanupTmp, tmpDir } from './helpers/hostile.js';

after(cleanupTmp);

const TOKENS = 24;
const MEMORY = '11MiB';
const OPTIONS = { memory: MEMORY, mode: 'sparse', syntheticFiring: { seed: 9 }, threads: 2 };
const PROMPT = 'The meaning of the word';

describe('synthetic firing (ActivationModel in place of a predictor)', () => {
  it('fill() draws next()\'s sets without allocating, and reset() draws them again', () => {
    const a = new ActivationModel(3, 500, { seed: 4 }), b = new ActivationModel(3, 500, { seed: 4 });
    const buf = new Int32Array(500);
    const first = [];
    for (let t = 0; t < 4; t++) {
      const sets = a.next();
      first.push(sets);
      sets.forEach((s, l) => assert.deepEqual(buf.slice(0, b.fill(l, buf, 0)), s));
    }
    a.reset();
    for (const sets of first) assert.deepEqual(a.next(), sets);
  });

  it('is refused in one line for a real image, and for a mode other than sparse', async () => {
    const facts = { config: { act: 'relu', hasGate: false, maxPositions: 2048 }, modelBytes: 1e6, hasPredictor: false, gpu: 'none', gpuWeights: false };
    assert.throws(() => resolveOptions({ memory: '50%', syntheticFiring: { seed: 1 } }, facts), /^Error: syntheticFiring is for synthetic images \(flashneuron synth\) only: [^\n]*$/);
    assert.throws(() => resolveOptions({ mode: 'hybrid', syntheticFiring: { seed: 1 } }, { ...facts, synthetic: true }), /use mode sparse/);
    assert.throws(() => resolveOptions({ syntheticFiring: { seed: -1 } }, { ...facts, synthetic: true }), /syntheticFiring.seed must be an integer/);
    assert.throws(() => resolveOptions({ syntheticFiring: { seed: 1, activeShare: 1 } }, { ...facts, synthetic: true }), /syntheticFiring.activeShare must be/);
    const r = resolveOptions({ memory: '50%', syntheticFiring: { seed: 1 } }, { ...facts, synthetic: true });
    assert.deepEqual([r.mode, r.syntheticFiring], ['sparse', { seed: 1, activeShare: 0.1 }]);
    await assert.rejects(loadModel(await imagePath('opt-relu-mini'), { memory: '60%', syntheticFiring: { seed: 1 } }), /syntheticFiring is for synthetic images/);
  });
});

describe('browser7b path on a tiny shape: Chromium, OPFS, sparse under a budget, synthetic firing', function () {
  this.timeout(300000);
  let image, node, browser;
  before(async function () {
    if (!CHROMIUM) {
      console.warn('    browser7b tests skipped: no Chromium (apt-get install chromium, or set CHROMIUM_PATH)');
      this.skip();
    }
    image = join(tmpDir('b7img'), 'synth-tiny-llama-int4.fnimg');
    synthImage('tiny-llama', image, { dtype: 'q4_0' });
    node = await runNode({ image, options: OPTIONS, prompt: PROMPT, tokens: TOKENS });
    // On Node's build (relaxed SIMD or not): the same arithmetic, so the same greedy ids.
    const relaxed = node.completion.stats.device.includes('relaxed');
    browser = await runBrowser({ image, profile: tmpDir('b7profile'), options: OPTIONS, prompt: PROMPT, tokens: TOKENS, relaxed });
  });

  it('runs to N tokens in the tab from OPFS, sparse, with part of the FFN cached and the rest read', () => {
    const s = browser.completion.stats;
    assert.equal(browser.isolated, true);
    assert.equal(browser.copied, true);
    assert.equal(browser.info.mode, 'sparse');
    assert.deepEqual(browser.info.options.syntheticFiring, { seed: 9, activeShare: 0.1 });
    assert.equal(browser.completion.ids.length, TOKENS);
    assert.equal(s.tokens, TOKENS);
    assert.ok(s.ffn_cache_fraction < 1, `the budget holds the whole FFN (${s.ffn_cache_fraction})`);
    assert.ok(s.bytes_read_per_token > 0);
  });

  it('the wasm memory peak stays within the budget, in the tab and in Node', () => {
    const budget = parseMemory(MEMORY, 0);
    for (const r of [browser, node]) {
      assert.ok(r.memory_peak > 0 && r.memory_peak <= budget, `${r.memory_peak} > ${budget}`);
      assert.ok(r.info.memory.total <= budget);
    }
  });

  it('reads and generates what Node does with the same options: ids, bytes and reads', () => {
    const b = browser.completion.stats, n = node.completion.stats;
    assert.equal(browser.completion.stats.device, node.completion.stats.device);
    assert.deepEqual(browser.completion.ids, node.completion.ids);
    assert.deepEqual(JSON.parse(JSON.stringify(browser.info.options)), JSON.parse(JSON.stringify(node.info.options)));
    assert.equal(b.bytes_read_per_token, n.bytes_read_per_token);
    assert.equal(b.reads_per_token, n.reads_per_token);
    assert.equal(browser.memory_peak, node.memory_peak);
  });
});
