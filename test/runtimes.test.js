// The same CLI under Deno and Bun (both from npm devDependencies): greedy ids equal Node's, dense
// and with the FFN on flash under a budget, and dense equals the golden continuation.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT, golden, modelDir } from './helpers/models.js';
import { cleanupTmp, tmpDir } from './helpers/hostile.js';

const run = promisify(execFile);
const BIN = join(ROOT, 'bin', 'flashneuron.js');
const RUNTIMES = {
  node: [process.execPath, [BIN]],
  deno: [join(ROOT, 'node_modules', '.bin', 'deno'), ['run', '-A', BIN]],
  bun: [join(ROOT, 'node_modules', '.bin', 'bun'), [BIN]],
};
const BUDGET = { 'opt-relu-mini': '60%', 'llama-relu-mini': '80%' };

let env;
before(() => { env = { ...process.env, FLASHNEURON_CACHE: tmpDir('rtcache'), NO_COLOR: '1' }; });
after(cleanupTmp);

async function generate(runtime, name, flash, extraEnv = {}) {
  const [exe, pre] = RUNTIMES[runtime];
  const p = golden(name).prompts[0];
  const args = [...pre, 'generate', '--model', modelDir(name), '--json', '--temperature', '0', '--max-tokens', '16', '--no-stop',
    ...(flash ? ['--memory', BUDGET[name]] : []), p.text];
  const r = await run(exe, args, { env: { ...env, ...extraEnv }, maxBuffer: 1 << 24 });
  return JSON.parse(r.stdout);
}

for (const name of ['opt-relu-mini', 'llama-relu-mini']) {
  describe(`runtimes: ${name}`, () => {
    const node = {};
    before(async () => {
      node.dense = await generate('node', name, false);
      node.flash = await generate('node', name, true);
      assert.deepEqual(node.dense.ids, golden(name).prompts[0].greedy_ids.slice(0, 16));
    });
    for (const runtime of ['deno', 'bun']) {
      it(`${runtime}: the same greedy ids as Node, dense and from flash`, async function () {
        if (!existsSync(RUNTIMES[runtime][0])) this.skip();
        const dense = await generate(runtime, name, false);
        assert.deepEqual(dense.ids, node.dense.ids);
        // Deno and Bun run the relaxed-SIMD build (fused f32 products): the dense ids above match,
        // but the bytes read follow each activation's last bits; the SIMD build reads Node's.
        const flash = await generate(runtime, name, true, { FLASHNEURON_WASM: 'simd' });
        assert.deepEqual(flash.ids, node.flash.ids);
        assert.equal(flash.stats.mode, 'sparse');
        assert.equal(flash.stats.bytes_read_per_token, node.flash.stats.bytes_read_per_token);
        assert.ok(flash.stats.resident_bytes_peak <= parseFloat(BUDGET[name]) / 100 * flash.stats.model_bytes);
      });
    }
  });
}
