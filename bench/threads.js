// Decode speed by thread count: each model and weight type at 1, 2, … threads (up to the
// cores), greedy, interleaved round by round so drift hits every count alike; medians.
//   node bench/threads.js [--rounds N] [--tokens N] [--threads 1,2,4] [--synth SHAPE:DTYPE,...] [--only-synth]
// (npm run bench:threads). --synth adds synthetic images of real shapes (flashneuron synth), e.g.
// opt-1.3b:f16, where the matrices are large enough for many threads to pay.
// Writes bench/results/threads.json and bench/results/threads.svg.
import os from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { convertHF, loadModel } from '../dist/src/index.js';
import { synthImage } from '../dist/src/node/synth-file.js';
import { barChart } from './plot.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const args = process.argv.slice(2);
const arg = (k) => { const i = args.indexOf(k); return i >= 0 ? args[i + 1] : undefined; };
const ROUNDS = Number(arg('--rounds') ?? 5), TOKENS = Number(arg('--tokens') ?? 128);
const cores = os.availableParallelism();
const COUNTS = (arg('--threads') ?? [...new Set([1, 2, cores])].filter((n) => n <= Math.max(2, cores)).join(',')).split(',').map(Number);
const CONFIGS = args.includes('--only-synth') ? [] : [
  ['opt-relu-mini', 'f32', {}], ['llama-relu-mini', 'bf16', {}], ['llama-relu-mini', 'q8_0', { dtype: 'q8_0' }], ['llama-relu-mini', 'q4_0', { dtype: 'q4_0' }],
];
for (const s of (arg('--synth') ?? '').split(',').filter(Boolean)) { const [shape, dtype] = s.split(':'); CONFIGS.push([shape, dtype ?? 'f16', { synth: true }]); }
const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
const dir = join(os.tmpdir(), 'flashneuron-bench-threads');
mkdirSync(dir, { recursive: true });

const results = [];
for (const [name, dtype, convert] of CONFIGS) {
  const image = join(dir, `${name}-${dtype}.fnimg`);
  if (convert.synth) synthImage(name, image, { dtype }); else await convertHF(join(ROOT, 'models', name), image, undefined, convert);
  const models = [];
  for (const n of COUNTS) {
    const m = await loadModel(image, { threads: n, contextLength: TOKENS + 16 });
    while (m.engine.threads < n) await new Promise((r) => setTimeout(r, 5));
    models.push([n, m]);
  }
  const prompt = convert.synth ? [1, 2, 3, 4, 5, 6] : 'The meaning of the word';
  const opts = { temperature: 0, maxTokens: TOKENS, stopAtEos: false };
  const ref = (await models[0][1].complete(prompt, opts)).ids;
  const tps = Object.fromEntries(COUNTS.map((n) => [n, []]));
  for (const [, m] of models) await m.complete(prompt, opts);   // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    for (const [n, m] of r % 2 ? [...models].reverse() : models) {
      const c = await m.complete(prompt, opts);
      if (c.ids.join() !== ref.join()) throw new Error(`${name} ${dtype}: ${n} threads answered differently from ${COUNTS[0]}`);
      tps[n].push(c.stats.tokens_per_s);
    }
  }
  for (const [, m] of models) m.close();
  const med = Object.fromEntries(COUNTS.map((n) => [n, median(tps[n])]));
  const row = { model: name, dtype, tokens_per_s: med, runs: tps, over_1_thread: Object.fromEntries(COUNTS.map((n) => [n, +(med[n] / med[COUNTS[0]]).toFixed(3)])) };
  results.push(row);
  console.log(`${name} ${dtype}: ${COUNTS.map((n) => `${n}T ${med[n].toFixed(0)} tok/s`).join(', ')}; ÷ 1T ${JSON.stringify(row.over_1_thread)}`);
}

const cpus = os.cpus();
const report = {
  machine: { cpu: cpus[0]?.model ?? 'unknown', cores, node: process.version, os: `${os.type()} ${os.release()} ${os.arch()}` },
  date: new Date().toISOString(), rounds: ROUNDS, tokens: TOKENS, threads: COUNTS, statistic: `median of ${ROUNDS} interleaved rounds (a warm-up first), dense greedy decode`,
  results,
};
const out = new URL('./results/', import.meta.url);
mkdirSync(out, { recursive: true });
writeFileSync(new URL('threads.json', out), JSON.stringify(report, null, 2) + '\n');
writeFileSync(new URL('threads.svg', out), barChart({
  title: 'Dense decode by compute threads (tokens/s, higher is better)',
  subtitle: `${report.machine.cpu}, ${cores} cores, node ${process.version}, ${report.date.slice(0, 10)}; ${TOKENS} tokens, median of ${ROUNDS}`,
  unit: 'tokens/s',
  groups: results.map((r) => ({ label: `${r.model} ${r.dtype}`, bars: COUNTS.map((n) => ({ label: `${n} thread${n > 1 ? 's' : ''}`, value: r.tokens_per_s[n] })) })),
}));
console.log('wrote bench/results/threads.json and threads.svg');
