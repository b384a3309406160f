// Builds the browser worker (web/worker.ts and the engine host it imports) into dist/web/worker.js.
// The host's Node-only modules (files, node:wasi) are never called in a browser; their imports
// resolve to stubs that throw if they ever are.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';

const NAMES = {
  fs: ['closeSync', 'constants', 'existsSync', 'fsyncSync', 'mkdirSync', 'openSync', 'readFileSync', 'statSync', 'unlinkSync',
    'writeFileSync', 'writeSync', 'fstatSync', 'read', 'readSync', 'renameSync', 'rmSync', 'readdirSync'],
  path: ['basename', 'join', 'resolve', 'dirname', 'isAbsolute', 'sep'],
  url: ['fileURLToPath'],
  os: ['homedir', 'tmpdir', 'cpus', 'totalmem'],
  wasi: ['WASI'],
  v8: ['setFlagsFromString'],
  'fs/promises': ['readFile', 'stat'],
  worker_threads: ['Worker', 'workerData'],
};

const nodeStubs = {
  name: 'node-stubs',
  setup(b) {
    b.onResolve({ filter: /^node:/ }, (a) => ({ path: a.path.slice(5), namespace: 'node-stub' }));
    b.onLoad({ filter: /.*/, namespace: 'node-stub' }, (a) => {
      const names = NAMES[a.path] ?? [];
      // Pure path helpers work on '/'-separated names (checkpoint file names in a picked folder).
      const PATH = {
        sep: "export const sep = '/';",
        isAbsolute: "export const isAbsolute = (p) => p.startsWith('/');",
        join: "export const join = (...a) => a.filter(Boolean).join('/').replace(/\\/+/g, '/');",
        basename: "export const basename = (p) => p.split('/').pop();",
        dirname: "export const dirname = (p) => p.split('/').slice(0, -1).join('/') || '.';",
      };
      const body = names.map((n) => n === 'constants' ? 'export const constants = {};'
        : a.path === 'path' && PATH[n] ? PATH[n]
        : n === 'fileURLToPath' ? 'export const fileURLToPath = (u) => String(u);'
        : `export function ${n}() { throw new Error('node:${a.path} ${n}() is not available in a browser'); }`).join('\n');
      return { contents: body, loader: 'js' };
    });
  },
};

mkdirSync('dist/web', { recursive: true });
await build({
  entryPoints: ['web/worker.ts'], bundle: true, format: 'esm', platform: 'browser', target: 'es2022',
  outfile: 'dist/web/worker.js', plugins: [nodeStubs], logLevel: 'warning', sourcemap: true,
});
for (const f of ['index.html', 'app.js']) copyFileSync(`web/${f}`, `dist/web/${f}`);
for (const f of ['flashneuron.simd.wasm', 'flashneuron.wasm']) copyFileSync(`build/${f}`, `dist/web/${f}`);
