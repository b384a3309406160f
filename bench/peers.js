// flashneuron against llama.cpp (node-llama-cpp 3.21.1) and wllama 3.8.1 (llama.cpp compiled to
// WebAssembly, in headless Chromium), both bench/package.json's own dependencies (installed into
// bench/node_modules on first use, never by the package's npm ci), on the same weights:
// llama-relu-mini as bf16 (as published), f16 and int8 (Q8_0), each exported to GGUF by
// `flashneuron export-gguf`; one thread each, everything resident, greedy decode of 128 tokens
// after the golden prompt, median of 3 runs. llama.cpp's llama graph applies SiLU where the
// model has ReLU: its text differs, its cost per token does not. Writes bench/results/peers.json
// and peers.svg.
//   npm run bench:peers
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { convertHF, exportGGUF, loadModel } from '../dist/src/index.js';
import { barChart } from './plot.js';
import { machine } from './machine.js';
import { ensurePeers, PEERS } from './peer-deps.js';

ensurePeers();
const { getLlama } = await import('node-llama-cpp');

const ROOT = new URL('..', import.meta.url).pathname;
const MODEL = join(ROOT, 'models', 'llama-relu-mini');
const golden = JSON.parse((await import('node:fs')).readFileSync(join(MODEL, 'golden.json'), 'utf8')).prompts[0];
const TOKENS = 128, RUNS = 3;
const median = (xs) => xs.slice().sort((a, b) => a - b)[xs.length >> 1];
const version = JSON.parse(readFileSync(join(PEERS, 'node-llama-cpp', 'package.json'), 'utf8')).version;
const dir = mkdtempSync(join(tmpdir(), 'flashneuron-peers-'));

async function flashneuron(image) {
  const m = await loadModel(image);
  try {
    const rates = [];
    for (let r = 0; r < RUNS; r++) {
      const c = await m.complete(golden.text, { temperature: 0, maxTokens: TOKENS, stopAtEos: false });
      rates.push(c.stats.tokens_per_s);
    }
    return median(rates);
  } finally { m.close(); }
}

const llama = await getLlama({ gpu: false, logLevel: 'error' });
async function llamaCpp(gguf) {
  const model = await llama.loadModel({ modelPath: gguf });
  const ids = model.tokenize(golden.text, false);
  const same = JSON.stringify([model.tokens.bos, ...ids]) === JSON.stringify(golden.ids);
  const rates = [];
  for (let r = 0; r < RUNS; r++) {
    const ctx = await model.createContext({ contextSize: 256, threads: 1 });
    const seq = ctx.getSequence();
    let n = 0, t1 = 0;
    // Decode rate as flashneuron counts it: from the first generated token to the last.
    for await (const _ of seq.evaluate([model.tokens.bos, ...ids], { temperature: 0 })) {
      if (n === 0) t1 = performance.now();
      if (++n >= TOKENS) break;
    }
    rates.push((n - 1) / ((performance.now() - t1) / 1000));
    await ctx.dispose();
  }
  await model.dispose();
  return { tok_per_s: median(rates), same_prompt_ids: same };
}

// wllama in Chromium: a page served here loads its ESM build, then our GGUF, single-threaded.
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find(existsSync);
const WLLAMA = join(PEERS, '@wllama', 'wllama', 'esm');
const wllamaVersion = JSON.parse(readFileSync(join(PEERS, '@wllama', 'wllama', 'package.json'), 'utf8')).version;
let servedModel = '';
const server = createServer((req, res) => {
  const p = new URL(req.url, 'http://x').pathname;
  const file = p === '/model.gguf' ? servedModel : p.startsWith('/wllama/') ? join(WLLAMA, p.slice(8)) : null;
  if (p === '/') { res.writeHead(200, { 'content-type': 'text/html' }); res.end('<!doctype html><title>peers</title>'); return; }
  try {
    const body = readFileSync(file);
    res.writeHead(200, { 'content-type': file.endsWith('.js') ? 'text/javascript' : file.endsWith('.wasm') ? 'application/wasm' : 'application/octet-stream' });
    res.end(body);
  } catch { res.writeHead(404); res.end(); }
}).listen(0, '127.0.0.1');
await new Promise((r) => server.once('listening', r));
const browser = CHROMIUM ? await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] }) : null;

async function wllama(gguf) {
  if (!browser) return null;
  servedModel = gguf;
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  const rates = await page.evaluate(async ({ prompt, tokens, runs }) => {
    const { Wllama } = await import('/wllama/index.js');
    const w = new Wllama({ default: '/wllama/wasm/wllama.wasm' }, { suppressNativeLog: true });
    await w.loadModelFromUrl('/model.gguf', { n_threads: 1, n_ctx: 256, useCache: false });
    const out = [];
    for (let r = 0; r < runs; r++) {
      const times = [];
      for await (const _ of await w.createCompletion({ prompt, max_tokens: tokens, temperature: 0, stream: true })) times.push(performance.now());
      out.push((times.length - 1) / ((times.at(-1) - times[0]) / 1000));
    }
    await w.exit();
    return out;
  }, { prompt: golden.text, tokens: TOKENS, runs: RUNS });
  await page.close();
  return median(rates);
}

const rows = [];
for (const dtype of ['bf16', 'f16', 'q8_0']) {
  const image = join(dir, `llama-relu-mini.${dtype}.fnimg`), gguf = join(dir, `llama-relu-mini.${dtype}.gguf`);
  await convertHF(MODEL, image, undefined, { dtype });
  exportGGUF(image, gguf);
  const ours = await flashneuron(image);
  const peer = await llamaCpp(gguf);
  const wasmPeer = await wllama(gguf);
  rows.push({ dtype, flashneuron_tok_per_s: +ours.toFixed(1), llama_cpp_tok_per_s: +peer.tok_per_s.toFixed(1), ratio: +(ours / peer.tok_per_s).toFixed(3), llama_cpp_prompt_ids_equal: peer.same_prompt_ids,
    wllama_tok_per_s: wasmPeer && +wasmPeer.toFixed(1), ratio_vs_wllama: wasmPeer && +(ours / wasmPeer).toFixed(2) });
  console.log(JSON.stringify(rows.at(-1)));
}
rmSync(dir, { recursive: true, force: true });
await browser?.close();
server.close();

const main = rows.find((r) => r.dtype === 'f16');
const out = {
  date: new Date().toISOString(), machine: machine(), model: 'llama-relu-mini', tokens: TOKENS, threads: 1,
  note: "llama.cpp's llama graph applies SiLU where the model has ReLU: same cost per token, different text",
  flashneuron_tok_per_s: main.flashneuron_tok_per_s,
  peers: [{ name: 'node-llama-cpp (llama.cpp)', version, tok_per_s: main.llama_cpp_tok_per_s },
    ...(main.wllama_tok_per_s ? [{ name: 'wllama (llama.cpp in WebAssembly, Chromium)', version: wllamaVersion, tok_per_s: main.wllama_tok_per_s }] : [])],
  goal_ratio_vs_llama_cpp: 0.8, ratio_vs_llama_cpp: main.ratio, goal_ratio_vs_wasm_peers: 1.5, ratio_vs_wllama: main.ratio_vs_wllama,
  by_dtype: rows,
};
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
writeFileSync(join(ROOT, 'bench', 'results', 'peers.json'), JSON.stringify(out, null, 2) + '\n');
writeFileSync(join(ROOT, 'bench', 'results', 'peers.svg'), barChart({
  title: 'llama-relu-mini decode, tokens/s, one thread (higher is better)',
  subtitle: `${out.machine.cpu} · ${out.date.slice(0, 10)} · node-llama-cpp ${version} and wllama ${wllamaVersion} on our GGUF export`,
  unit: 'tokens/s',
  groups: rows.map((r) => ({ label: r.dtype, bars: [
    { label: 'flashneuron (wasm)', value: r.flashneuron_tok_per_s, text: `${r.flashneuron_tok_per_s} (${r.ratio}×)` },
    { label: 'llama.cpp (native)', value: r.llama_cpp_tok_per_s },
    ...(r.wllama_tok_per_s ? [{ label: 'wllama (wasm)', value: r.wllama_tok_per_s }] : []),
  ] })),
}));
console.log(JSON.stringify({ flashneuron_tok_per_s: out.flashneuron_tok_per_s, peers: out.peers }));
