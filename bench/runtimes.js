// Node, Deno, Bun and Chromium side by side: decode tokens/s and flash bytes per token for both
// models, dense and with the FFN on flash under a budget (OPFS in the browser). Writes
// bench/results/runtimes.json and runtimes.svg.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { barChart } from './plot.js';
import { machine } from './machine.js';
import { startServer } from '../web/server.js';

const run = promisify(execFile);
const ROOT = new URL('..', import.meta.url).pathname;
const BIN = join(ROOT, 'bin', 'flashneuron.js');
const CLIS = {
  node: [process.execPath, [BIN]],
  deno: [join(ROOT, 'node_modules', '.bin', 'deno'), ['run', '-A', BIN]],
  bun: [join(ROOT, 'node_modules', '.bin', 'bun'), [BIN]],
};
const MODELS = { 'opt-relu-mini': '60%', 'llama-relu-mini': '80%' };
const PROMPT = 'The meaning of the word';
const TOKENS = 128, RUNS = 3;
const median = (xs) => xs.slice().sort((a, b) => a - b)[xs.length >> 1];

async function cli(runtime, model, memory) {
  const [exe, pre] = CLIS[runtime];
  const out = [];
  for (let i = 0; i < RUNS; i++) {
    const args = [...pre, 'generate', '--model', join(ROOT, 'models', model), '--json', '--temperature', '0', '--max-tokens', String(TOKENS), '--no-stop',
      ...(memory ? ['--memory', memory, '--context', '192'] : []), PROMPT];
    out.push(JSON.parse((await run(exe, args, { maxBuffer: 1 << 24 })).stdout).stats);
  }
  return summary(out);
}

function summary(stats) {
  return { tokens_per_s: median(stats.map((s) => s.tokens_per_s)), ms_per_token: median(stats.map((s) => s.ms_per_token)),
    bytes_read_per_token: median(stats.map((s) => s.bytes_read_per_token ?? 0)), resident_bytes_peak: stats[0].resident_bytes_peak ?? stats[0].memory_bytes };
}

const results = {};
for (const [model, memory] of Object.entries(MODELS)) {
  results[model] = {};
  for (const rt of Object.keys(CLIS)) {
    results[model][rt] = { dense: await cli(rt, model, undefined), flash: await cli(rt, model, memory) };
    console.log(model, rt, JSON.stringify(results[model][rt]));
  }
}

const chrome = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find(existsSync);
if (chrome) {
  const dir = mkdtempSync(join(tmpdir(), 'fn-bench-'));
  const server = await startServer({ port: 0 });
  const ctx = await chromium.launchPersistentContext(dir, { executablePath: chrome, headless: true, args: ['--no-sandbox'] });
  const page = await ctx.newPage();
  await page.goto(server.url);
  for (const [model, memory] of Object.entries(MODELS)) {
    const row = {};
    for (const [k, mem, io] of [['dense', ''], ['flash', memory], ['flash_parallel_blob_reads', memory, 'async']]) {
      try {
        await page.evaluate(([m, b, i]) => window.flashneuron.load({ model: m, memory: b, io: i }), [model, mem, io]);
      } catch (e) {
        row[k] = { error: e.message.split('\n')[0] };
        continue;
      }
      const stats = [];
      for (let i = 0; i < RUNS; i++) {
        stats.push((await page.evaluate((p) => window.flashneuron.generate({ prompt: p, maxTokens: 128, temperature: 0, stopAtEos: false }), PROMPT)).stats);
      }
      row[k] = summary(stats);
    }
    results[model].chromium = row;
    console.log(model, 'chromium', JSON.stringify(row));
  }
  await ctx.close(); await server.close(); rmSync(dir, { recursive: true, force: true });
}

mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
const out = { machine: machine(), date: new Date().toISOString(), tokens: TOKENS, prompt: PROMPT, budgets: MODELS, results };
writeFileSync(join(ROOT, 'bench', 'results', 'runtimes.json'), JSON.stringify(out, null, 2) + '\n');
const groups = [];
for (const model of Object.keys(MODELS)) for (const k of ['dense', 'flash']) {
  groups.push({ label: `${model} ${k === 'dense' ? 'dense' : `flash ${MODELS[model]}`}`, bars: Object.entries(results[model]).map(([rt, r]) => ({ label: rt, value: r[k]?.tokens_per_s ?? 0 })) });
}
writeFileSync(join(ROOT, 'bench', 'results', 'runtimes.svg'), barChart({
  title: 'Decode tokens/s by runtime (same wasm, one thread)', subtitle: `${TOKENS} greedy tokens, median of ${RUNS}; flash = FFN read from the file (OPFS in Chromium) under the budget`,
  unit: 'tokens / s', groups, width: 900,
}));
console.log('wrote bench/results/runtimes.json and runtimes.svg');
