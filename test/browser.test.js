// The demo page in a real headless Chromium (Debian's, driven by playwright-core): the model is
// written into OPFS, the engine runs in a Web Worker reading it from there, greedy ids equal the
// golden ones, and with a budget the FFN is read from OPFS within it.
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { ROOT, golden, modelDir } from './helpers/models.js';
import { cleanupTmp, tmpDir } from './helpers/hostile.js';
import { startServer } from '../web/server.js';
import { loadModel } from '../dist/src/index.js';

after(cleanupTmp);

const CHROMIUM = process.env.CHROMIUM_PATH ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find(existsSync);

describe('browser: Chromium, Web Worker, OPFS', function () {
  let server, context, page;
  before(async function () {
    if (!CHROMIUM) {
      console.warn('    browser tests skipped: no Chromium (apt-get install chromium, or set CHROMIUM_PATH)');
      this.skip();
    }
    server = await startServer({ port: 0, cacheDir: tmpDir('webcache') });
    // A persistent context: OPFS in a throwaway one is far slower.
    context = await chromium.launchPersistentContext(tmpDir('profile'), {
      // WebGPU: headless Chromium offers SwiftShader, a software (fallback) adapter.
      executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--enable-unsafe-webgpu'],
    });
    page = await context.newPage();
    page.on('pageerror', (e) => console.error('page error:', e.message));
    await page.goto(server.url);
  });
  after(async () => {
    await context?.close();
    await server?.close();
  });

  for (const name of ['opt-relu-mini', 'llama-relu-mini']) {
    it(`${name}: dense greedy ids equal golden`, async () => {
      const p = golden(name).prompts[0];
      const info = await page.evaluate((model) => window.flashneuron.load({ model, memory: '' }), name);
      assert.equal(info.mode, 'dense');
      const c = await page.evaluate((prompt) => window.flashneuron.generate({ prompt, maxTokens: 24, temperature: 0, stopAtEos: false }), p.text);
      assert.deepEqual(c.prompt_ids, p.ids);
      assert.deepEqual(c.ids, p.greedy_ids);
    });
  }

  it('compute threads in the tab (the page is cross-origin isolated): every core computes, golden ids', async () => {
    const cores = await page.evaluate(() => navigator.hardwareConcurrency);
    assert.equal(await page.evaluate(() => crossOriginIsolated), true);
    const p = golden('llama-relu-mini').prompts[0];
    const info = await page.evaluate(() => window.flashneuron.load({ model: 'llama-relu-mini', memory: '' }));
    assert.equal(info.options.threads, cores);
    if (cores < 2) return;
    // The nested workers start in the background: generate until they have all joined.
    let c;
    do c = await page.evaluate((prompt) => window.flashneuron.generate({ prompt, maxTokens: 24, temperature: 0, stopAtEos: false }), p.text);
    while (c.stats.threads < cores);
    assert.deepEqual(c.ids, p.greedy_ids);
  });

  it('the worker decides nothing of its own: the same inputs resolve to the same options as the Node API', async () => {
    for (const [name, opts] of [['opt-relu-mini', { memory: '60%' }], ['llama-relu-mini', { memory: '80%', window: 5 }], ['opt-relu-mini', { memory: '70%', mode: 'hybrid' }], ['opt-relu-mini', {}]]) {
      const info = await page.evaluate(({ name, opts }) => window.flashneuron.load({ model: name, memory: '', ...opts }), { name, opts });
      const model = await loadModel(modelDir(name), { ...opts, cacheDir: tmpDir('apicache') });
      try {
        assert.deepEqual(JSON.parse(JSON.stringify(info.options)), JSON.parse(JSON.stringify(model.options)), `${name} ${JSON.stringify(opts)}`);
      } finally { model.close(); }
    }
  });

  it('a chat session in the worker answers as ChatSession does in Node, turn after turn', async () => {
    const template = '{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}';
    const greedy = { temperature: 0, maxTokens: 8, stopAtEos: false };
    await page.evaluate(() => window.flashneuron.load({ model: 'opt-relu-mini', memory: '' }));
    const inPage = await page.evaluate(async ({ template, greedy }) => {
      const s = await window.flashneuron.session({ system: 'Be brief.', template });
      const a = await s.reply('The meaning of the word', greedy);
      const f = await s.fork();
      const b = await f.reply('And then', greedy);
      return { a: a.ids, b: b.ids, n: (await s.messages()).length, nf: (await f.messages()).length };
    }, { template, greedy });
    const { ChatSession } = await import('../dist/src/index.js');
    const node = await loadModel(modelDir('opt-relu-mini'), { cacheDir: tmpDir('chatcache') });
    try {
      const s = new ChatSession(node, { system: 'Be brief.', template });
      assert.deepEqual(inPage.a, (await s.reply('The meaning of the word', greedy)).ids);
      assert.deepEqual(inPage.b, (await s.reply('And then', greedy)).ids);
      assert.deepEqual([inPage.n, inPage.nf], [3, 5]);
    } finally { node.close(); }
  });

  it('the demo in chat mode: typed turns stream into the log, each equal to ChatSession in Node', async () => {
    await page.evaluate(() => window.flashneuron.load({ model: 'opt-relu-mini', memory: '' }));
    await page.check('#task-chat');
    assert.equal(await page.textContent('#go'), 'Send');
    await page.fill('#system', 'Be brief.');
    await page.fill('#max', '8');
    await page.fill('#temp', '0');
    await page.fill('#msg', 'The meaning of the word');
    await page.press('#msg', 'Enter');
    await page.waitForFunction(() => document.querySelectorAll('#log .turn-stats').length === 1);
    await page.fill('#msg', 'And then');
    await page.click('#go');
    await page.waitForFunction(() => document.querySelectorAll('#log .turn-stats').length === 2);
    const turns = await page.$$eval('#log .turn', (ns) => ns.map((n) => [n.className.replace(/ ?live/, ''), n.textContent]));
    const stats = await page.$$eval('#log .turn-stats', (ns) => ns.map((n) => n.textContent));
    assert.match(await page.textContent('#chat-note'), /no chat template.*ChatML/);
    const template = await page.evaluate(() => window.flashneuron.CHATML);
    const { ChatSession } = await import('../dist/src/index.js');
    const node = await loadModel(modelDir('opt-relu-mini'), { cacheDir: tmpDir('chatcache') });
    try {
      const s = new ChatSession(node, { system: 'Be brief.', template });
      const greedy = { temperature: 0, maxTokens: 8 };
      const a = await s.reply('The meaning of the word', greedy), b = await s.reply('And then', greedy);
      assert.deepEqual(turns, [['turn user', 'The meaning of the word'], ['turn assistant', a.text], ['turn user', 'And then'], ['turn assistant', b.text]]);
      // The second turn ran only what the first had not (dense: the KV cache kept the rest).
      const [, prompt, ran] = stats[1].match(/prompt (\d+) tokens, (\d+) run/);
      assert.equal(Number(prompt), b.stats.prompt_tokens);
      assert.ok(Number(ran) < Number(prompt) / 2, stats[1]);
    } finally { node.close(); }
    await page.check('#task-complete');
  });

  it('WebGPU in the worker (SwiftShader): device auto stays on the wasm, gpu gives the golden ids, dense and sparse', async function () {
    const hasGpu = await page.evaluate(async () => Boolean(await navigator.gpu?.requestAdapter()));
    if (!hasGpu) this.skip();
    const auto = await page.evaluate(() => window.flashneuron.load({ model: 'opt-relu-mini', memory: '' }));
    assert.match(auto.device, /^wasm/);
    const p = golden('opt-relu-mini').prompts[0];
    const info = await page.evaluate(() => window.flashneuron.load({ model: 'opt-relu-mini', memory: '', device: 'gpu' }));
    assert.doesNotMatch(info.device, /^wasm/);
    const c = await page.evaluate((prompt) => window.flashneuron.generate({ prompt, maxTokens: 24, temperature: 0, stopAtEos: false }), p.text);
    assert.deepEqual(c.ids, p.greedy_ids);
    const l = golden('llama-relu-mini').prompts[0];
    const sparse = await page.evaluate(() => window.flashneuron.load({ model: 'llama-relu-mini', memory: '80%', device: 'gpu' }));
    assert.equal(sparse.mode, 'sparse');
    assert.doesNotMatch(sparse.device, /^wasm/);
    const s = await page.evaluate((prompt) => window.flashneuron.generate({ prompt, maxTokens: 12, temperature: 0, stopAtEos: false }), l.text);
    assert.ok(s.stats.bytes_read_per_token > 0);
    assert.ok(s.ids.filter((id, i) => id === l.greedy_ids[i]).length >= 6);
  });

  it('a Hugging Face folder picked in the page is converted into OPFS and runs, with its predictor', async () => {
    await page.setInputFiles('#folder', modelDir('llama-relu-mini'));
    const p = golden('llama-relu-mini').prompts[1];
    const dense = await page.evaluate(() => window.flashneuron.load({ files: [...document.getElementById('folder').files], memory: '' }));
    assert.equal(dense.name, 'llama-relu-mini.fnimg');
    const c = await page.evaluate((prompt) => window.flashneuron.generate({ prompt, maxTokens: 24, temperature: 0, stopAtEos: false }), p.text);
    assert.deepEqual(c.ids, p.greedy_ids);
    const sparse = await page.evaluate(() => window.flashneuron.load({ files: [...document.getElementById('folder').files], memory: '80%' }));
    assert.equal(sparse.mode, 'sparse');
  });

  it('sparse under a budget reads the FFN from OPFS and stays within the budget', async () => {
    const p = golden('llama-relu-mini').prompts[0];
    const info = await page.evaluate(() => window.flashneuron.load({ model: 'llama-relu-mini', memory: '80%' }));
    assert.equal(info.mode, 'sparse');
    assert.ok(info.memory.total <= 0.8 * info.model_bytes, `${info.memory.total} > 80% of ${info.model_bytes}`);
    const c = await page.evaluate((prompt) => window.flashneuron.generate({ prompt, maxTokens: 24, temperature: 0, stopAtEos: false }), p.text);
    assert.ok(c.stats.bytes_read_per_token > 0);
    assert.ok(c.stats.resident_bytes_peak <= 0.8 * c.stats.model_bytes);
    const same = c.ids.filter((id, i) => id === p.greedy_ids[i]).length;
    assert.ok(same >= 12, `only ${same} of 24 greedy ids equal the dense model's`);
    // The same through parallel async Blob reads of the OPFS file (a larger staging buffer leaves
    // a little less cache, so the bytes differ a little).
    const ai = await page.evaluate(() => window.flashneuron.load({ model: 'llama-relu-mini', memory: '80%', io: 'async' }));
    assert.ok(ai.memory.total <= 0.8 * ai.model_bytes);
    const a = await page.evaluate((prompt) => window.flashneuron.generate({ prompt, maxTokens: 24, temperature: 0, stopAtEos: false }), p.text);
    assert.ok(a.stats.bytes_read_per_token > 0);
    assert.ok(a.ids.filter((id, i) => id === p.greedy_ids[i]).length >= 12);
    // The README's picture of the demo: refreshed only when asked (a test run leaves the tree as it was).
    if (process.env.FLASHNEURON_DEMO_PNG) writeFileSync(process.env.FLASHNEURON_DEMO_PNG, await page.screenshot({ fullPage: true }));
  });

  it('the demo default (opt-relu-mini at 60%) loads within its budget and generates', async () => {
    const info = await page.evaluate(() => window.flashneuron.load({ model: 'opt-relu-mini', memory: '60%' }));
    assert.equal(info.mode, 'sparse');
    assert.ok(info.memory.total <= 0.6 * info.model_bytes);
    const c = await page.evaluate(() => window.flashneuron.generate({ prompt: 'The meaning of the word', maxTokens: 128, temperature: 0 }));
    assert.ok(c.ids.length > 0 && c.stats.bytes_read_per_token > 0);
  });

  /** Loads a File made in the page (from `text`, or the first `share` of a served image) and
   *  returns the error message, the one shown on the page, and the names left in OPFS. */
  const loadBadFile = (spec) => page.evaluate(async ({ name, text, url, share }) => {
    const bytes = text !== undefined ? new TextEncoder().encode(text) : await (await fetch(url)).arrayBuffer();
    const file = new File([share ? bytes.slice(0, Math.floor(bytes.byteLength * share)) : bytes], name);
    let message = '';
    try { await window.flashneuron.load({ file }); } catch (e) { message = e.message; }
    const names = [];
    for await (const k of (await navigator.storage.getDirectory()).keys()) names.push(k);
    return { message, names, shown: document.getElementById('error').textContent };
  }, spec);
  const nothingLeft = (r, name) => assert.ok(!r.names.includes(name) && !r.names.includes(`${name}.partial`), r.names.join(','));

  it('a file that is not a model is a clear error and leaves nothing behind in OPFS', async () => {
    const r = await loadBadFile({ name: 'bad.fnimg', text: '{"not": "a model"}' });
    assert.match(r.message, /not a flashneuron image/);
    assert.equal(r.shown, r.message);
    nothingLeft(r, 'bad.fnimg');
  });

  it('a storage quota too small for the model is a clear error and leaves nothing behind', async () => {
    const cdp = await context.newCDPSession(page);
    const origin = new URL(server.url).origin;
    await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: 4 << 20 });
    try {
      const r = await loadBadFile({ name: 'big.fnimg', url: 'model/llama-relu-mini.fnimg' });
      assert.match(r.message, /not enough browser storage for big\.fnimg/);
      nothingLeft(r, 'big.fnimg');
    } finally {
      await cdp.send('Storage.overrideQuotaForOrigin', { origin });
    }
  });

  it('a truncated image is refused the same way', async () => {
    const r = await loadBadFile({ name: 'cut.fnimg', url: 'model/opt-relu-mini.fnimg', share: 0.5 });
    assert.match(r.message, /truncated/);
    nothingLeft(r, 'cut.fnimg');
  });
});
