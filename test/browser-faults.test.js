// Injected read faults over OPFS in a real headless Chromium (the pattern of browser.test.js): the
// engine worker is started as worker.js?faults=SPEC, so its OPFS source fails the chosen FFN
// read; the request ends with one clear line naming the read, and the same worker model then
// answers the next request as a worker that never failed.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { golden, modelDir } from './helpers/models.js';
import { cleanupTmp, seeded, tmpDir } from './helpers/hostile.js';
import { startServer } from '../web/server.js';
import { loadModel } from '../dist/src/index.js';

after(cleanupTmp);

const CHROMIUM = process.env.CHROMIUM_PATH ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find(existsSync);
const NAME = 'opt-relu-mini';
const GREEDY = { maxTokens: 8, temperature: 0, stopAtEos: false };


/** FFN reads a request makes in Node through the same WASI shim, counted by a fault plan without rules. */
async function countReads(opts) {
  process.env.FLASHNEURON_FAULTS = 'scope=ffn';
  try {
    const m = await loadModel(modelDir(NAME), { ...opts, cacheDir: tmpDir('faultcount') });
    try {
      await m.complete(golden(NAME).prompts[0].text, GREEDY);
      return m.engine.source.plan.reads;
    } finally { m.close(); }
  } finally { delete process.env.FLASHNEURON_FAULTS; }
}

describe('browser: injected OPFS read faults', function () {
  let server, context, page;
  before(async function () {
    if (!CHROMIUM) {
      console.warn('    browser fault tests skipped: no Chromium (apt-get install chromium, or set CHROMIUM_PATH)');
      this.skip();
    }
    server = await startServer({ port: 0, cacheDir: tmpDir('webcache') });
    context = await chromium.launchPersistentContext(tmpDir('profile'), { executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    page = await context.newPage();
    page.on('pageerror', (e) => console.error('page error:', e.message));
    await page.goto(server.url);
  });
  after(async () => {
    await context?.close();
    await server?.close();
  });

  /** In the page: a worker with `faults` loads the model; two requests; their ids or error messages. */
  const run = (faults, options) => page.evaluate(async ({ faults, options, name, prompt, greedy }) => {
    const { WorkerModel } = await import('./flashneuron.js');
    const url = faults ? `./worker.js?faults=${encodeURIComponent(faults)}` : './worker.js';
    const model = new WorkerModel(new Worker(url, { type: 'module' }));
    try {
      await model.init({ simd: 'flashneuron.simd.wasm', plain: 'flashneuron.wasm' });
      await model.load({ name: `${name}.fnimg`, url: `model/${name}.fnimg`, predictorUrl: `model/${name}.fnpred` }, options);
      const out = [];
      for (let i = 0; i < 2; i++) {
        try { out.push({ ids: (await model.complete(prompt, greedy)).ids }); } catch (e) { out.push({ error: e.message }); }
      }
      return out;
    } finally { model.close(); model.worker.terminate(); }
  }, { faults, options, name: NAME, prompt: golden(NAME).prompts[0].text, greedy: GREEDY });

  // Per mode, what the EIO and the short-read case both start from (made once): the ids of a
  // worker without faults, and the FFN reads of a request in Node.
  const once = new Map();
  const memo = (key, fn) => { if (!once.has(key)) once.set(key, fn()); return once.get(key); };
  for (const mode of ['naive', 'sparse']) {
    for (const kind of ['eio', 'short']) {
      it(`${mode}: ${kind === 'eio' ? 'an EIO' : 'a short read'} at a seeded OPFS read is one clear line; the same worker model then gives the reference ids`, async () => {
        const [reference] = await memo(`ids ${mode}`, () => run('', { mode }));
        assert.ok(reference.ids, reference.error);
        if (mode === 'naive') assert.deepEqual(reference.ids, golden(NAME).prompts[0].greedy_ids.slice(0, GREEDY.maxTokens));
        const at = seeded(`opfs/${mode}/${kind}`, await memo(`reads ${mode}`, () => countReads({ mode, wasi: 'shim' })));
        const [failed, again] = await run(`${kind}@${at}`, { mode });
        assert.ok(failed.error, `read ${at} failed and the request still succeeded`);
        assert.deepEqual(again.ids, reference.ids, `after "${failed.error}" the worker model answers differently`);
        assert.ok(!failed.error.includes('\n'), failed.error);
        assert.match(failed.error, new RegExp(`${NAME}\\.fnimg`));
        assert.match(failed.error, /offset \d+/, `the offset is not named: ${failed.error}`);
        assert.match(failed.error, kind === 'eio' ? /EIO/ : /short read/);
      });
    }
  }

  it('sparse with parallel Blob reads (io async): an EIO is one clear line; the same worker model then gives the reference ids', async () => {
    const [reference] = await run('', { mode: 'sparse', io: 'async' });
    assert.ok(reference.ids, reference.error);
    const [failed, again] = await run(`eio@${seeded('opfs/async', 16)}`, { mode: 'sparse', io: 'async' });
    assert.ok(failed.error, 'the request succeeded');
    assert.match(failed.error, /^opt-relu-mini\.fnimg: read of \d+ bytes at offset \d+ failed \(EIO: injected i\/o error, read \d+\); the neuron cache was reset$/);
    assert.deepEqual(again.ids, reference.ids);
  });
});
