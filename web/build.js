// Builds the browser side into dist/web/: the engine worker (src/web/worker.ts → worker.js) and
// the page's entry (src/web/index.ts → flashneuron.js, the WorkerModel client), both straight
// from the sources — the browser graph imports no Node module (a CI rule keeps it so) — plus
// the demo page and the wasm builds.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';

mkdirSync('dist/web', { recursive: true });
await build({
  entryPoints: { worker: 'src/web/worker.ts', flashneuron: 'src/web/index.ts' }, bundle: true, format: 'esm', platform: 'browser', target: 'es2022',
  outdir: 'dist/web', logLevel: 'warning', sourcemap: true,
});
for (const f of ['index.html', 'app.js']) copyFileSync(`web/${f}`, `dist/web/${f}`);
for (const f of ['flashneuron.simd.wasm', 'flashneuron.wasm']) copyFileSync(`build/${f}`, `dist/web/${f}`);
