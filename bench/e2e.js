// End-to-end decode speed of both reference models: SIMD vs scalar wasm in Node, and the same
// CLI under Deno and Bun. Validates greedy ids against golden.json before timing anything.
// Writes bench/results/e2e.json.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel } from '../dist/src/index.js';
import { machine } from './machine.js';
import { barChart } from './plot.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const TOKENS = 128, RUNS = 5;
const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];

const results = {};
for (const name of ['opt-relu-mini', 'llama-relu-mini']) {
  const dir = join(ROOT, 'models', name);
  const g = JSON.parse(readFileSync(join(dir, 'golden.json'), 'utf8'));
  const p = g.prompts[0];
  results[name] = {};
  for (const simd of [true, false]) {
    const model = await loadModel(dir, { simd });
    const check = await model.complete(p.text, { temperature: 0, maxTokens: 24, stopAtEos: false });
    if (JSON.stringify(check.ids) !== JSON.stringify(p.greedy_ids)) throw new Error(`${name}: greedy ids differ from golden`);
    const ms = [], prompt = [];
    for (let r = 0; r < RUNS; r++) {
      const c = await model.complete(p.text, { temperature: 0, maxTokens: TOKENS, stopAtEos: false });
      ms.push(c.stats.ms_per_token);
      prompt.push(c.stats.prompt_ms / c.stats.prompt_tokens);
    }
    results[name][simd ? 'node_simd' : 'node_scalar'] = { ms_per_token: median(ms), tokens_per_s: +(1000 / median(ms)).toFixed(1), prompt_ms_per_token: +median(prompt).toFixed(3) };
    model.close();
  }
  for (const [rt, cmd] of [['deno', ['npx', 'deno', 'run', '-A']], ['bun', ['npx', 'bun']]]) {
    const ms = [];
    for (let r = 0; r < RUNS; r++) {
      const out = execFileSync(cmd[0], [...cmd.slice(1), join(ROOT, 'bin/flashneuron.js'), 'generate', '--json', '--model', dir,
        '--temperature', '0', '--no-stop', '--max-tokens', String(TOKENS), p.text], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      const j = JSON.parse(out);
      if (JSON.stringify(j.ids.slice(0, 24)) !== JSON.stringify(p.greedy_ids)) throw new Error(`${name} under ${rt}: greedy ids differ`);
      ms.push(j.stats.ms_per_token);
    }
    results[name][`${rt}_simd`] = { ms_per_token: median(ms), tokens_per_s: +(1000 / median(ms)).toFixed(1) };
  }
  const r = results[name];
  r.simd_speedup = +(r.node_scalar.ms_per_token / r.node_simd.ms_per_token).toFixed(2);
  console.log(name, JSON.stringify(r));
}

mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
const out = { machine: machine(), date: new Date().toISOString(), tokens: TOKENS, runs: RUNS, models: results };
writeFileSync(join(ROOT, 'bench/results/e2e.json'), JSON.stringify(out, null, 2) + '\n');
writeFileSync(join(ROOT, 'bench/results/e2e.svg'), barChart({
  title: `End-to-end decode, tokens/s (${out.date.slice(0, 10)}, ${out.machine.cpu}, 1 thread)`,
  unit: 'tokens/s',
  groups: Object.entries(results).map(([name, r]) => ({
    label: name,
    bars: ['node_simd', 'deno_simd', 'bun_simd', 'node_scalar'].map((k) => ({ label: k.replace('_', ' '), value: r[k].tokens_per_s })),
  })),
}));
console.log('wrote bench/results/e2e.json and e2e.svg');
