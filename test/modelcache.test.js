// Models as users have them on disk: a repository id found in the local Hugging Face cache, and
// the conversion cache kept to one image per source and managed with `flashneuron cache`.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ROOT, golden, modelDir } from './helpers/models.js';
import { cleanupTmp, tmpDir } from './helpers/hostile.js';

after(cleanupTmp);
const run = promisify(execFile);

describe('models from the Hugging Face cache, and the conversion cache', function () {
  let env, snapshot;
  const cli = async (...args) => {
    try { return { code: 0, ...(await run(process.execPath, [join(ROOT, 'bin', 'flashneuron.js'), ...args], { env, maxBuffer: 1 << 24 })) }; }
    catch (e) { return { code: e.code, stdout: e.stdout, stderr: e.stderr }; }
  };
  before(() => {
    const home = tmpDir('hfhome');
    env = { ...process.env, HF_HOME: home, FLASHNEURON_CACHE: tmpDir('convcache') };
    delete env.HF_HUB_CACHE;
    // huggingface_hub's layout: refs/main names the snapshot that holds the files.
    const repo = join(home, 'hub', 'models--acme--tiny-opt');
    snapshot = join(repo, 'snapshots', '0123abcd');
    mkdirSync(snapshot, { recursive: true });
    mkdirSync(join(repo, 'refs'), { recursive: true });
    writeFileSync(join(repo, 'refs', 'main'), '0123abcd');
    for (const f of readdirSync(modelDir('opt-relu-mini'))) if (!f.endsWith('.fnpred') && f !== 'golden.json') copyFileSync(join(modelDir('opt-relu-mini'), f), join(snapshot, f));
  });

  it('--model org/name runs the snapshot refs/main names, with the golden greedy ids', async () => {
    const p = golden('opt-relu-mini').prompts[0];
    const r = await cli('generate', '--model', 'acme/tiny-opt', '--json', '--temperature', '0', '--no-stop', '--max-tokens', '8', p.text);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).ids, p.greedy_ids.slice(0, 8));
  });

  it('a repository id not in the cache says how to download it', async () => {
    const r = await cli('generate', '--model', 'acme/not-here', 'x');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /acme\/not-here is not a path.*huggingface-cli download acme\/not-here/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });

  it('one image per source: reused while unchanged, replaced when the files change; ls, rm, clear', async () => {
    const ls = async () => JSON.parse((await cli('cache', 'ls', '--json')).stdout).images;
    assert.equal((await cli('tokenize', '--model', 'acme/tiny-opt', 'Hello')).code, 0);
    const first = await ls();
    assert.equal(first.length, 1);
    assert.equal(first[0].record.source, snapshot);
    assert.equal(first[0].record.kind, 'hf');
    // A changed file converts again, in place of the old image.
    const t = new Date(Date.now() + 5000);
    utimesSync(join(snapshot, 'config.json'), t, t);
    assert.equal((await cli('tokenize', '--model', 'acme/tiny-opt', 'Hello')).code, 0);
    const second = await ls();
    assert.equal(second.length, 1);
    assert.notEqual(second[0].record.stamp, first[0].record.stamp);
    // A second source is a second image; rm by source takes only its own.
    assert.equal((await cli('tokenize', '--model', modelDir('llama-relu-mini'), 'Hello')).code, 0);
    assert.equal((await ls()).length, 2);
    const rm = await cli('cache', 'rm', snapshot);
    assert.equal(rm.code, 0, rm.stderr);
    assert.deepEqual((await ls()).map((e) => e.record.source), [modelDir('llama-relu-mini')]);
    assert.equal((await cli('cache', 'rm', snapshot)).code, 1);
    assert.equal((await cli('cache', 'clear')).code, 0);
    assert.deepEqual(await ls(), []);
    assert.equal((await cli('cache', 'frobnicate')).code, 2);
  });
});
