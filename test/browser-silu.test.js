// SiLU sparse mode in a real headless Chromium (the demo page, its Web Worker, OPFS): a SiLU model
// with the thresholds `flashneuron calibrate` writes, given by URL, then found in OPFS beside the
// image on the next load; greedy ids and resolved options equal Node's for the same image and
// thresholds, at the calibrated sparsity and at 0 (the dense ids); thresholds of another model
// are refused in one line.
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { ROOT } from './helpers/models.js';
import { cleanupTmp, tmpDir } from './helpers/hostile.js';
import { siluCalibrated, siluImage } from './helpers/silu.js';
import { startServer } from '../web/server.js';
import { loadModel } from '../dist/src/index.js';
import { encodeThresholds } from '../dist/src/predictor/thresholds.js';

after(cleanupTmp);

const CHROMIUM = process.env.CHROMIUM_PATH ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find(existsSync);
const PROMPT = 'The meaning of the word';
const greedy = { temperature: 0, maxTokens: 16, stopAtEos: false };

describe('browser: SiLU sparse mode with calibrated thresholds (Chromium, Web Worker, OPFS)', function () {
  this.timeout(300000);
  let server, context, page, image, thr, other, node;
  before(async function () {
    if (!CHROMIUM) {
      console.warn('    browser tests skipped: no Chromium (apt-get install chromium, or set CHROMIUM_PATH)');
      this.skip();
    }
    // Chromium starts while the model work below runs.
    server = await startServer({ port: 0, cacheDir: tmpDir('webcache-silu') });
    const launching = chromium.launchPersistentContext(tmpDir('profile-silu'), { executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    try {
      // The image and its calibrated cuts are silu.test.js's (made once); the files go elsewhere.
      const work = tmpDir('browser-silu');
      image = await siluImage();
      const t = await siluCalibrated();
      thr = join(work, 'silu.fnthr');
      writeFileSync(thr, encodeThresholds(t));
      other = join(work, 'other.fnthr');
      writeFileSync(other, encodeThresholds({ ...t, fingerprint: 'llama-6x384x1024-0123456789abcdef' }));
      // Node's answers for the same image and thresholds.
      node = {};
      for (const [key, opts] of [['sparse', { memory: '70%' }], ['zero', { memory: '70%', sparsity: 0 }], ['dense', {}]]) {
        const m = await loadModel(image, { device: 'cpu', threads: 1, thresholdsPath: thr, ...opts });
        try { node[key] = { ids: (await m.complete(PROMPT, greedy)).ids, options: JSON.parse(JSON.stringify(m.options)) }; } finally { m.close(); }
      }
    } finally { context = await launching; }
    page = await context.newPage();
    page.on('pageerror', (e) => console.error('page error:', e.message));
    const files = { 'silu.fnimg': image, 'silu.fnthr': thr, 'other.fnthr': other };
    await page.route('**/silu/*', (route) => {
      const f = files[new URL(route.request().url()).pathname.split('/').pop()];
      return f ? route.fulfill({ path: f, headers: { 'Cross-Origin-Resource-Policy': 'same-origin' } }) : route.fulfill({ status: 404, body: 'not found' });
    });
    // Node 20 has no relaxed SIMD: the page gets the SIMD builds under the relaxed builds' names,
    // so that both sides compute with the same arithmetic (relaxed SIMD fuses multiply-adds).
    for (const [relaxed, plain] of [['flashneuron.relaxed.wasm', 'flashneuron.simd.wasm'], ['flashneuron.relaxed-threads.wasm', 'flashneuron.threads.wasm']]) {
      await page.route(`**/${relaxed}`, (route) => route.fulfill({ path: join(ROOT, 'dist/web', plain), contentType: 'application/wasm' }));
    }
    await page.goto(server.url);
  });
  after(async () => {
    await context?.close();
    await server?.close();
  });

  /** Loads silu.fnimg (as a picked file) in the page's worker with `opts`, then generates greedily. */
  const run = (opts) => page.evaluate(async ({ opts, prompt, greedy }) => {
    const bytes = await (await fetch('silu/silu.fnimg')).arrayBuffer();
    try {
      const info = await window.flashneuron.load({ file: new File([bytes], 'silu.fnimg'), memory: '', threads: 1, ...opts });
      const c = await window.flashneuron.generate({ prompt, ...greedy });
      return { mode: info.mode, options: info.options, ids: c.ids, bytes: c.stats.bytes_read_per_token };
    } catch (e) { return { error: e.message }; }
  }, { opts, prompt: PROMPT, greedy });

  it('thresholds by URL: sparse mode under a budget, the ids and options Node gives', async () => {
    const r = await run({ memory: '70%', thresholdsUrl: 'silu/silu.fnthr' });
    assert.equal(r.error, undefined, r.error);
    assert.equal(r.mode, 'sparse');
    assert.equal(r.options.siluSparse, true);
    assert.deepEqual(r.ids, node.sparse.ids);
    const { threads: _a, ...inPage } = r.options, { threads: _b, ...inNode } = node.sparse.options;
    assert.deepEqual(JSON.parse(JSON.stringify(inPage)), inNode);
    assert.ok(r.bytes > 0, 'nothing read from OPFS');
  });

  it('the thresholds kept in OPFS beside the image are found on the next load; sparsity 0 gives the dense ids', async () => {
    const r = await run({ memory: '70%' });
    assert.equal(r.error, undefined, r.error);
    assert.equal(r.options.siluSparse, true, 'silu.fnthr in OPFS');
    assert.deepEqual(r.ids, node.sparse.ids);
    const z = await run({ memory: '70%', sparsity: 0 });
    assert.deepEqual(z.ids, node.zero.ids);
    assert.deepEqual(z.ids, node.dense.ids);
  });

  it('thresholds calibrated for another model are refused in one line', async () => {
    const r = await run({ memory: '70%', thresholdsUrl: 'silu/other.fnthr' });
    assert.match(r.error ?? '', /^silu\/other\.fnthr: thresholds were calibrated for another model/);
    assert.ok(!r.error.includes('\n'));
    const missing = await run({ memory: '70%', thresholdsUrl: 'silu/none.fnthr' });
    assert.match(missing.error ?? '', /cannot fetch silu\/none\.fnthr: HTTP 404/);
  });
});
