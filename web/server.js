#!/usr/bin/env node
// npm run demo [-- --port N]: serves the demo page on 127.0.0.1 with the shipped models as images
// (converted once into the cache) and their predictors. COOP/COEP headers make the page
// cross-origin isolated, which threaded builds would need.
import { createServer } from 'node:http';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cachedImage } from '../dist/src/index.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.map': 'application/json', '.wasm': 'application/wasm' };
const MODELS = ['opt-relu-mini', 'llama-relu-mini'];

/** Starts the server; resolves to { url, close() }. */
export async function startServer({ port = 8080, host = '127.0.0.1', cacheDir } = {}) {
  const files = new Map();
  for (const f of ['index.html', 'app.js', 'worker.js', 'worker.js.map', 'flashneuron.js', 'flashneuron.js.map', 'flashneuron.simd.wasm', 'flashneuron.wasm', 'flashneuron.threads.wasm', 'flashneuron.relaxed.wasm', 'flashneuron.relaxed-threads.wasm', 'compute-worker.js', 'compute-worker.js.map']) files.set(`/${f}`, join(ROOT, 'dist', 'web', f));
  files.set('/', join(ROOT, 'dist', 'web', 'index.html'));
  for (const m of MODELS) {
    files.set(`/model/${m}.fnimg`, await cachedImage(join(ROOT, 'models', m), { cacheDir }));
    files.set(`/model/${m}.fnpred`, join(ROOT, 'models', m, 'flashneuron.fnpred'));
  }
  const server = createServer((req, res) => {
    const path = files.get(new URL(req.url, 'http://x').pathname);
    const headers = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp', 'Cache-Control': 'no-cache' };
    if (!path || !existsSync(path)) { res.writeHead(404, headers).end('not found'); return; }
    res.writeHead(200, { ...headers, 'Content-Type': TYPES[extname(path)] ?? 'application/octet-stream', 'Content-Length': statSync(path).size });
    createReadStream(path).pipe(res);
  });
  await new Promise((resolve, reject) => {
    server.once('error', (e) => reject(e.code === 'EADDRINUSE' ? Object.assign(new Error(`port ${port} is in use (--port N to choose another)`), { code: e.code }) : e));
    server.listen(port, host, resolve);
  });
  const { port: actual } = server.address();
  return { url: `http://${host}:${actual}/`, close: () => new Promise((r) => server.close(r)) };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const i = process.argv.indexOf('--port');
  const v = i > 0 ? process.argv[i + 1] : '8080';
  const port = /^\d+$/.test(v ?? '') ? Number(v) : NaN;
  if (!(port <= 65535)) { console.error(`--port must be an integer from 0 to 65535 (got ${v === undefined ? 'nothing' : `"${v}"`})`); process.exit(2); }
  try {
    const { url } = await startServer({ port });
    console.log(`flashneuron demo at ${url}`);
  } catch (e) {
    // One line, no stack: a busy port or a model that does not convert is the user's to fix.
    console.error(`flashneuron demo: ${e.message}`);
    process.exit(1);
  }
}
