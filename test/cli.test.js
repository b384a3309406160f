// The CLI contract other tools rely on, run as a user would: node bin/flashneuron.js ...
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, golden, modelDir } from './helpers/models.js';
import { cliRunner } from './helpers/cli.js';
import { cleanupTmp, tmpDir } from './helpers/hostile.js';
import { inParallel } from './helpers/parallel.js';

let cli;
before(() => { cli = cliRunner('clicache'); });
after(cleanupTmp);

describe('cli', () => {
  it('generate --json on the embedded default model reproduces the golden greedy ids', async () => {
    const p = golden('opt-relu-mini').prompts[0];
    const r = await cli('generate', '--json', '--temperature', '0', '--max-tokens', '24', '--no-stop', p.text);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const out = JSON.parse(r.stdout);
    assert.deepEqual(out.prompt_ids, p.ids);
    assert.deepEqual(out.ids, p.greedy_ids);
    assert.equal(out.text, p.greedy_text);
    assert.equal(out.stats.tokens, 24);
    assert.ok(out.stats.ms_per_token > 0);
  });

  it('generate streams the text to stdout and stats to stderr (llama model)', async () => {
    const p = golden('llama-relu-mini').prompts[1];
    const r = await cli('generate', '--model', modelDir('llama-relu-mini'), '--temperature=0', '--max-tokens', '24', '--no-stop', p.text);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, p.greedy_text + '\n');
    assert.match(r.stderr, /24 tokens, [\d.]+ ms\/token/);
  });

  it('tokenize prints ids as JSON, with and without special tokens', async () => {
    const t = golden('opt-relu-mini').tokenizer[2];
    assert.deepEqual(JSON.parse((await cli('tokenize', t.text)).stdout), t.ids);
    assert.deepEqual(JSON.parse((await cli('tokenize', '--no-special', t.text)).stdout), t.ids_no_special);
  });

  it('perplexity prints tokens, nll and ppl', async () => {
    const file = join(tmpDir('ppl'), 'text.txt');
    writeFileSync(file, golden('opt-relu-mini').activations[1].text.slice(0, 400));
    const r = await cli('perplexity', '--context', '64', file);
    assert.equal(r.code, 0, r.stderr);
    const o = JSON.parse(r.stdout);
    assert.ok(o.tokens > 50 && o.ppl > 1 && Math.abs(Math.exp(o.nll) - o.ppl) / o.ppl < 1e-4, r.stdout);
  });

  it('convert writes an image that --model accepts', async () => {
    const out = join(tmpDir('conv'), 'llama.fnimg');
    const c = await cli('convert', modelDir('llama-relu-mini'), out);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stderr, /LlamaForCausalLM, 6 layers/);
    const p = golden('llama-relu-mini').prompts[0];
    const r = JSON.parse((await cli('generate', '--json', '--model', out, '--temperature', '0', '--max-tokens', '8', p.text)).stdout);
    assert.deepEqual(r.ids, p.greedy_ids.slice(0, 8));
  });

  it('--help on every command; errors go to stderr with a non-zero exit', async () => {
    const commands = ['generate', 'tokenize', 'perplexity', 'convert'];
    const bad = [
      [['generate', '--model', '/no/such/model', 'x'], 1, /model not found/],
      [['generate'], 2, /needs a PROMPT/],
      [['generate', '--top-k', 'many', 'x'], 2, /--top-k must be an integer ≥ 0 \(got "many"\)/],
      [['frobnicate'], 2, /unknown command/],
      [['tokenize', '--model', join(ROOT, 'package.json'), 'x'], 1, /not a flashneuron image/],
    ];
    // Processes that stop before any model is converted or run: they run at once, one per core.
    const runs = await inParallel([...commands.map((c) => [c, '--help']), ['perplexity', '--help'], ...bad.map(([args]) => args)], (args) => cli(...args));
    commands.forEach((c, i) => {
      assert.equal(runs[i].code, 0);
      assert.match(runs[i].stdout, new RegExp(`Usage: flashneuron ${c}`));
    });
    assert.match(runs[commands.length].stdout, /windows of --context tokens/);
    for (const [i, [args, code, msg]] of bad.entries()) {
      const r = runs[commands.length + 1 + i];
      assert.equal(r.code, code, args.join(' '));
      assert.equal(r.stdout, '');
      assert.match(r.stderr, msg);
    }
  });
});
