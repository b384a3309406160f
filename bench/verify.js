// What checking FFN bundles against their CRC-32s costs per token: sparse and naive, warm (page
// cache), with --verify off / first (the default) / always, interleaved round by round; medians.
// The same rows run inside bench:flash's interleaved section; this is the quick form.
//   node bench/verify.js [--rounds N] [--tokens N]      (npm run bench:verify)
// Writes bench/results/verify.json.
import os from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { convertHF, loadModel } from '../dist/src/index.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const args = process.argv.slice(2);
const arg = (k) => { const i = args.indexOf(k); return i >= 0 ? args[i + 1] : undefined; };
const ROUNDS = Number(arg('--rounds') ?? 7), TOKENS = Number(arg('--tokens') ?? 64);
const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
const dir = join(os.tmpdir(), 'flashneuron-bench-verify');
mkdirSync(dir, { recursive: true });
const prompt = 'The meaning of the word';
const opts = { temperature: 0, maxTokens: TOKENS, stopAtEos: false };

const results = [];
for (const [name, memory] of [['opt-relu-mini', '60%'], ['llama-relu-mini', '80%']]) {
  const image = join(dir, `${name}.fnimg`);
  await convertHF(join(ROOT, 'models', name), image);
  const predictorPath = join(ROOT, 'models', name, 'flashneuron.fnpred');
  for (const mode of ['sparse', 'naive']) {
    const models = [];
    for (const verify of ['off', 'first', 'always']) models.push([verify, await loadModel(image, { mode, memory, verify, threads: 1, predictorPath, contextLength: TOKENS + 16 })]);
    const ms = { off: [], first: [], always: [] };
    let ref;
    for (const [, m] of models) ref ??= (await m.complete(prompt, opts)).ids;   // warm-up (and the reference)
    for (let r = 0; r < ROUNDS; r++) {
      for (const [v, m] of r % 2 ? [...models].reverse() : models) {
        const c = await m.complete(prompt, opts);
        if (c.ids.join() !== ref.join()) throw new Error(`${name} ${mode} verify ${v}: other ids`);
        ms[v].push(c.stats.ms_per_token);
      }
    }
    for (const [, m] of models) m.close();
    const med = Object.fromEntries(Object.entries(ms).map(([k, a]) => [k, +median(a).toFixed(3)]));
    const row = { model: name, memory, mode, ms_per_token: med, first_over_off: +(med.first / med.off).toFixed(3), always_over_off: +(med.always / med.off).toFixed(3) };
    results.push(row);
    console.log(`${name} ${memory} ${mode}: ms/token off ${med.off}, first ${med.first} (×${row.first_over_off}), always ${med.always} (×${row.always_over_off})`);
  }
}
const cpus = os.cpus();
const report = {
  machine: { cpu: cpus[0]?.model ?? 'unknown', cores: cpus.length, node: process.version, os: `${os.type()} ${os.release()} ${os.arch()}`, load: os.loadavg() },
  date: new Date().toISOString(), rounds: ROUNDS, tokens: TOKENS, statistic: `median ms/token of ${ROUNDS} interleaved rounds after a warm-up, one thread, warm (page cache)`,
  results,
};
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(new URL('./results/verify.json', import.meta.url), JSON.stringify(report, null, 2) + '\n');
console.log('wrote bench/results/verify.json');
