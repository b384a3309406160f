// The package as people install it: `npm pack`, installed offline into a new project, then the CLI
// (npx flashneuron), the Node API and a page bundled by esbuild from flashneuron/web, generating
// in Chromium — all from the installed copy. Correctness only; bench/install.js times it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { extname, join } from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import { ROOT, golden, imagePath } from './helpers/models.js';
import { cleanupTmp, tmpDir } from './helpers/hostile.js';
import { installOffline, pack } from './helpers/pack.js';

after(cleanupTmp);

const run = promisify(execFile);
const CHROMIUM = process.env.CHROMIUM_PATH ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find(existsSync);
const G = golden('opt-relu-mini').prompts[0];

describe('the package as installed (npm pack → npm install → npx flashneuron, API, flashneuron/web)', function () {
  this.timeout(300_000);
  let tarball, project, env;
  before(() => {
    tarball = pack(tmpDir('pack'));
    project = tmpDir('project');
    installOffline(tarball.file, project);
    // A cache of its own (the first run converts the embedded model), and no npm notices on stderr.
    env = { ...process.env, FLASHNEURON_CACHE: tmpDir('cache'), npm_config_update_notifier: 'false' };
  });

  it('holds what runs: dist, the wasm builds, the default model without golden data, LICENSE — and stays small', () => {
    const f = new Set(tarball.files);
    for (const p of ['package.json', 'LICENSE', 'README.md', 'bin/flashneuron.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/node/cli.js',
      'dist/src/web/index.js', 'dist/src/web/index.d.ts', 'dist/src/web/worker.js', 'dist/web/worker.js', 'dist/web/flashneuron.js',
      'build/flashneuron.simd.wasm', 'build/flashneuron.wasm', 'build/train.wasm', 'models/opt-relu-mini/config.json',
      'models/opt-relu-mini/tokenizer.json', 'models/opt-relu-mini/flashneuron.fnpred']) assert.ok(f.has(p), `${p} missing`);
    const extra = tarball.files.filter((p) => /^(models\/(llama-relu-mini|calibration)|test\/|bench\/|scripts\/|assembly\/|src\/|web\/|docs\/)|golden\.json$|\.map$/.test(p));
    assert.deepEqual(extra, []);
    assert.ok(tarball.size <= 35e6, `${tarball.size} bytes packed`);
    assert.match(readFileSync(join(project, 'node_modules', 'flashneuron', 'LICENSE'), 'utf8'), /^MIT License[\s\S]*flashneuron contributors/);
    // What the exports promise resolves to files that are there.
    const req = createRequire(join(project, 'package.json'));
    for (const spec of ['flashneuron', 'flashneuron/web', 'flashneuron/worker', 'flashneuron/dist/web/worker.js', 'flashneuron/dist/web/flashneuron.simd.wasm',
      'flashneuron/build/flashneuron.simd.wasm', 'flashneuron/build/train.wasm', 'flashneuron/wasm/flashneuron.wasm', 'flashneuron/package.json']) {
      assert.ok(existsSync(req.resolve(spec)), spec);
    }
  });

  it('npx flashneuron generate runs the installed copy: golden greedy ids, stderr only the stats line', async () => {
    const args = ['--no-install', 'flashneuron', 'generate', '--temperature', '0', '--no-stop', '--max-tokens', String(G.greedy_ids.length)];
    const json = await run('npx', [...args, '--json', G.text], { cwd: project, env });
    const out = JSON.parse(json.stdout);
    assert.deepEqual([out.prompt_ids, out.ids], [G.ids, G.greedy_ids]);
    assert.equal(json.stderr, '');
    const plain = await run('npx', [...args, G.text], { cwd: project, env });
    assert.equal(plain.stdout, `${G.greedy_text}\n`);
    assert.match(plain.stderr, /^\[24 tokens, [^\n]*, SIMD wasm[^\n]*\]\n$/);
  });

  it('the Node API from the installed copy: golden ids, no warning on stderr', async () => {
    const script = `import { loadModel } from 'flashneuron';
      const m = await loadModel();
      const c = await m.complete(${JSON.stringify(G.text)}, { temperature: 0, maxTokens: ${G.greedy_ids.length}, stopAtEos: false });
      m.close();
      console.log(JSON.stringify({ from: import.meta.resolve('flashneuron'), ids: c.ids }));`;
    const r = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: project, env });
    const { from, ids } = JSON.parse(r.stdout);
    assert.equal(realpathSync(new URL(from)), realpathSync(join(project, 'node_modules', 'flashneuron', 'dist', 'src', 'index.js')));
    assert.deepEqual(ids, G.greedy_ids);
    assert.equal(r.stderr, '');
  });

  it('Deno runs the installed CLI with --allow-read --allow-env alone: golden text, stderr only the stats line', async function () {
    const deno = join(ROOT, 'node_modules', '.bin', 'deno');
    if (!existsSync(deno)) this.skip();
    // No XDG_RUNTIME_DIR (as on a server), and a cache Deno may not write: converted in memory.
    const { XDG_RUNTIME_DIR: _unset, ...rest } = env;
    const r = await run(deno, ['run', '--allow-read', '--allow-env', 'node_modules/flashneuron/bin/flashneuron.js', 'generate', '--temperature', '0', '--no-stop',
      '--max-tokens', String(G.greedy_ids.length), G.text], { cwd: project, env: { ...rest, FLASHNEURON_CACHE: tmpDir('deno-cache') } });
    assert.equal(r.stdout, `${G.greedy_text}\n`);
    assert.match(r.stderr, /^\[24 tokens, [^\n]*, ((relaxed )?SIMD wasm|WebGPU \()[^\n]*\]\n$/);
  });

  it("a bundler takes 'flashneuron' for the browser as the web entry: loadModel is named as missing, no Node module is asked for", async () => {
    writeFileSync(join(project, 'node-api.js'), "import { loadModel } from 'flashneuron';\nloadModel();\n");
    const r = await build({ entryPoints: [join(project, 'node-api.js')], bundle: true, write: false, platform: 'browser', format: 'esm', logLevel: 'silent', absWorkingDir: project }).catch((e) => e);
    assert.match(r.errors?.map((e) => e.text).join('\n') ?? String(r), /No matching export .* for import "loadModel"/);
  });

  it('a page bundled from flashneuron/web and flashneuron/worker generates the golden ids in Chromium', async function () {
    if (!CHROMIUM) {
      console.warn('    skipped: no Chromium (apt-get install chromium, or set CHROMIUM_PATH)');
      this.skip();
    }
    const www = join(project, 'www');
    mkdirSync(www, { recursive: true });
    writeFileSync(join(project, 'page.js'), `import { WorkerModel, probeStorage } from 'flashneuron/web';
      window.run = async ({ prompt, maxTokens }) => {
        const model = new WorkerModel(new Worker('./worker.js', { type: 'module' }));
        await model.init({ simd: './flashneuron.simd.wasm', plain: './flashneuron.wasm' });
        const info = await model.load({ name: 'opt-relu-mini.fnimg', url: './opt-relu-mini.fnimg' }, {});
        const c = await model.complete(prompt, { temperature: 0, maxTokens, stopAtEos: false });
        model.close();
        return { mode: info.mode, prompt_ids: c.prompt_ids, ids: c.ids, storage: await probeStorage() };
      };\n`);
    writeFileSync(join(project, 'worker.js'), "import 'flashneuron/worker';\n");
    const b = await build({ entryPoints: { page: join(project, 'page.js'), worker: join(project, 'worker.js') }, bundle: true, format: 'esm', platform: 'browser',
      outdir: www, logLevel: 'silent', absWorkingDir: project });
    assert.deepEqual(b.errors, []);
    for (const f of ['page.js', 'worker.js']) assert.doesNotMatch(readFileSync(join(www, f), 'utf8'), /from ["']node:|require\(["'](node:)?(fs|path|os|wasi|worker_threads)["']\)/);
    // The wasm builds through the package's exports (build/*.wasm), as a bundler's asset step would.
    const req = createRequire(join(project, 'package.json'));
    for (const f of ['flashneuron.simd.wasm', 'flashneuron.wasm']) copyFileSync(req.resolve(`flashneuron/build/${f}`), join(www, f));
    copyFileSync(await imagePath('opt-relu-mini'), join(www, 'opt-relu-mini.fnimg'));
    writeFileSync(join(www, 'index.html'), '<!doctype html><meta charset="utf-8"><title>uses flashneuron</title><script type="module" src="./page.js"></script>\n');

    const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };
    const server = createServer((req, res) => {
      const path = join(www, new URL(req.url, 'http://x').pathname.replace(/^\/$/, '/index.html'));
      if (!path.startsWith(www) || !existsSync(path)) { res.writeHead(404).end(); return; }
      res.writeHead(200, { 'Content-Type': types[extname(path)] ?? 'application/octet-stream' }).end(readFileSync(path));
    }).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    // A persistent profile: a throwaway one keeps OPFS in a far slower store.
    const context = await chromium.launchPersistentContext(tmpDir('profile'), { executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    try {
      const page = await context.newPage();
      page.on('pageerror', (e) => console.error('page error:', e.message));
      await page.goto(`http://127.0.0.1:${server.address().port}/`);
      await page.waitForFunction(() => typeof window.run === 'function');
      const r = await page.evaluate((a) => window.run(a), { prompt: G.text, maxTokens: G.greedy_ids.length });
      assert.equal(r.mode, 'dense');
      assert.deepEqual([r.prompt_ids, r.ids], [G.ids, G.greedy_ids]);
      assert.equal(typeof r.storage.readUs, 'number');
      assert.equal(typeof r.storage.slow, 'boolean');
    } finally {
      await context.close();
      server.close();
    }
  });
});
