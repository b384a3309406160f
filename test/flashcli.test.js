// The flash engine from the command line: budgets, modes, stats, the predictor check, errors.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, golden, modelDir } from './helpers/models.js';
import { cliRunner } from './helpers/cli.js';
import { cleanupTmp, tmpDir, copyModel } from './helpers/hostile.js';
import { inParallel } from './helpers/parallel.js';

let cli;
before(() => { cli = cliRunner('flashcache'); });
after(cleanupTmp);

const STATS = ['bytes_read_per_token', 'reads_per_token', 'io_ms_per_token', 'mem_ms_per_token', 'compute_ms_per_token',
  'ms_per_token', 'ffn_bytes_total', 'model_bytes', 'resident_bytes_peak', 'ffn_cache_fraction'];

describe('flash engine from the CLI', () => {
  it('generate --memory 60% runs the FFN from flash within the budget and reports the cost split', async () => {
    const p = golden('opt-relu-mini').prompts[0];
    const r = await cli('generate', '--memory', '60%', '--json', '--temperature', '0', '--max-tokens', '16', '--no-stop', p.text);
    assert.equal(r.code, 0, r.stderr);
    const { stats, ids } = JSON.parse(r.stdout);
    for (const k of STATS) assert.ok(Number.isFinite(stats[k]), `${k} = ${stats[k]}`);
    assert.equal(stats.mode, 'sparse');
    assert.ok(stats.resident_bytes_peak <= 0.6 * stats.model_bytes, `${stats.resident_bytes_peak} > 60% of ${stats.model_bytes}`);
    assert.ok(stats.bytes_read_per_token > 0 && stats.bytes_read_per_token < stats.ffn_bytes_total);
    // the predictor misses a few neurons; greedy text stays close to the dense model's
    const same = ids.filter((id, i) => id === p.greedy_ids[i]).length;
    assert.ok(same >= 8, `only ${same} of 16 greedy ids equal the dense model's`);
  });

  it('every mode, the ablations and the predictor check run from the CLI (llama, 80%)', async () => {
    const model = modelDir('llama-relu-mini');
    const p = golden('llama-relu-mini').prompts[0];
    const out = {};
    const variants = [['--mode', 'naive'], ['--mode', 'hybrid'], ['--mode', 'sparse'], ['--no-window'], ['--no-bundle'], ['--io', 'async'], ['--io', 'thread'], ['--window', 'lru'], ['--resident-dtype', 'q8_0']];
    const gen = (args) => cli('generate', '--model', model, '--memory', '80%', ...args, '--json', '--temperature', '0', '--max-tokens', '8', p.text);
    // The first converts the model into the cache; the others (which only read it, --no-bundle
    // converting its own image) run at once, one per core.
    const runs = [await gen(variants[0]), ...await inParallel(variants.slice(1), gen)];
    for (const [i, args] of variants.entries()) {
      const r = runs[i];
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      out[args.join(' ')] = JSON.parse(r.stdout).stats;
    }
    const ffn = out['--mode naive'].ffn_bytes_total;
    assert.ok(out['--mode naive'].bytes_read_per_token >= ffn * 0.99, 'naive reads the whole FFN');
    assert.ok(out['--mode hybrid'].bytes_read_per_token < out['--mode naive'].bytes_read_per_token);
    assert.ok(out['--mode sparse'].bytes_read_per_token < 0.3 * ffn);
    assert.ok(out['--no-window'].bytes_read_per_token > out['--mode sparse'].bytes_read_per_token, 'the window saves reads');
    assert.ok(out['--no-bundle'].reads_per_token > out['--mode sparse'].reads_per_token, 'unbundled parts take more reads');
    assert.ok(out['--window lru'].bytes_read_per_token <= out['--mode sparse'].bytes_read_per_token, 'lru reads no more than a window of 5');

    const text = join(tmpDir('text'), 'golden.txt');
    writeFileSync(text, golden('llama-relu-mini').activations.slice(0, 2).map((a) => a.text).join('\n'));
    const r = await cli('perplexity', '--model', model, '--memory', '80%', '--check-predictor', '--json', '--context', '64', text);
    assert.equal(r.code, 0, r.stderr);
    const check = JSON.parse(r.stdout).predictor_check;
    assert.equal(check.length, 6);
    for (const c of check) assert.ok(c.recall > 0.9 && c.over_prediction > 1 && c.over_prediction < 6, JSON.stringify(c));
  });

  it('bad flash options and budgets are clear errors', async () => {
    const bad = [
      [['generate', '--memory', '10%', 'x'], 1, /memory budget .* is too small.*give at least/],
      [['generate', '--memory', 'lots', 'x'], 1, /memory budget "lots"/],
      [['generate', '--mode', 'turbo', 'x'], 2, /--mode must be dense, naive, hybrid or sparse/],
      [['generate', '--window', '3', '--no-window', 'x'], 2, /exclude each other/],
      [['generate', '--io', 'fast', 'x'], 2, /--io must be wasi, async or thread/],
      [['generate', '--window', 'recent', 'x'], 2, /--window must be a number of tokens or lru/],
      [['generate', '--resident-dtype', 'q4_0', 'x'], 2, /--resident-dtype must be q8_0, stored or auto/],
      [['generate', '--predictor-dtype', 'f32', 'x'], 2, /--predictor-dtype must be q8_0 or f16/],
      [['export-gguf', '--predictor', 'x.fnpred', 'out.gguf'], 2, /--predictor goes with --powerinfer/],
      [['generate', '--mode', 'sparse', '--predictor', '/no/such.fnpred', 'x'], 1, /no such file|not found|none at/i],
    ];
    for (const [args, code, msg] of bad) {
      const r = await cli(...args);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, msg);
    }
    // a model folder without a predictor: sparse says how to get one
    const dir = copyModel(modelDir('opt-relu-mini'), { skip: ['flashneuron.fnpred', 'golden.json'] });
    const r = await cli('generate', '--model', dir, '--mode', 'sparse', 'x');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /train-predictor/);
  });
});
