// Builds the browser side into dist/web/: the engine worker (src/web/worker.ts → worker.js) and
// the page's entry (src/web/index.ts → flashneuron.js, the WorkerModel client), both straight
// from the sources — the browser graph imports no Node module (a CI rule keeps it so) — plus
// the demo page and the wasm builds. The package ships worker.js, flashneuron.js and the wasm
// (flashneuron/dist/web/*) for pages that take them without a bundler.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';

mkdirSync('dist/web', { recursive: true });
await build({
  entryPoints: { worker: 'src/web/worker.ts', 'compute-worker': 'src/web/compute-worker.ts', flashneuron: 'src/web/index.ts' }, bundle: true, format: 'esm', platform: 'browser', target: 'es2022',
  outdir: 'dist/web', logLevel: 'warning', sourcemap: true,
});
for (const f of ['index.html', 'app.js']) copyFileSync(`web/${f}`, `dist/web/${f}`);
// Every engine build beside the worker (the page fetches the ones it runs); the training kernels stay in Node.
for (const f of readdirSync('build').filter((f) => /^flashneuron\b.*\.wasm$/.test(f) && !f.includes('.debug.'))) copyFileSync(`build/${f}`, `dist/web/${f}`);
