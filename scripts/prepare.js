// `prepare`: npm runs it after `npm ci` / `npm install` in a clone, and again each time npx links
// the clone into its own cache to run the CLI (`npx flashneuron …`). Building there every time
// cost the first `npx flashneuron` some 20 silent seconds, so each stage is built only when an
// output is missing or older than one of its inputs; otherwise this is a few stat calls.
// Installs from the registry tarball never run it: dist/ and the wasm ship built (`prepack`).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const at = (p) => join(ROOT, p);

/** Newest modification time under `paths` (files or folders, recursively); 0 where none exist. */
function newest(paths) {
  let t = 0;
  for (const p of paths) {
    if (!existsSync(at(p))) continue;
    const s = statSync(at(p));
    if (!s.isDirectory()) { t = Math.max(t, s.mtimeMs); continue; }
    for (const e of readdirSync(at(p), { recursive: true, withFileTypes: true })) {
      if (e.isFile()) t = Math.max(t, statSync(join(e.parentPath ?? e.path, e.name)).mtimeMs);
    }
  }
  return t;
}

/** Oldest modification time of `files`; -Infinity when one is missing (the stage must run). */
function oldest(files) {
  let t = Infinity;
  for (const f of files) t = existsSync(at(f)) ? Math.min(t, statSync(at(f)).mtimeMs) : -Infinity;
  return t;
}

// The wasm files the asbuild script makes: its --target names, looked up in asconfig.json.
const targets = JSON.parse(readFileSync(at('asconfig.json'), 'utf8')).targets;
const asbuild = JSON.parse(readFileSync(at('package.json'), 'utf8')).scripts.asbuild;
const wasm = [...asbuild.matchAll(/--target\s+(\S+)/g)].map((m) => targets[m[1]]?.outFile).filter(Boolean);
const stages = [
  // The asbuild script lives in package.json: a change there may change the wasm.
  { script: 'asbuild', inputs: ['assembly', 'asconfig.json', 'package.json'], outputs: wasm },
  // The TypeScript host; scripts/abi.js reads asc's bindings, so the wasm counts as an input.
  { script: 'tsbuild', inputs: ['src', 'scripts/wgsl.js', 'scripts/abi.js', 'tsconfig.json', ...wasm], outputs: ['dist/src/index.js', 'dist/src/node/cli.js', 'dist/src/web/index.js'] },
  { script: 'webbuild', inputs: ['src', 'web/build.js', 'web/app.js', 'web/index.html', ...wasm], outputs: ['dist/web/worker.js', 'dist/web/flashneuron.js', 'dist/web/index.html', 'dist/web/app.js'] },
];

// A stage runs when it is stale, and every stage after it too (each reads what the one before wrote).
const first = stages.findIndex((s) => newest(s.inputs) > oldest(s.outputs));
if (first >= 0) {
  process.stderr.write(`flashneuron: building (${stages.slice(first).map((s) => s.script).join(', ')})\n`);
  for (const s of stages.slice(first)) {
    const r = spawnSync('npm', ['run', '--silent', s.script], { cwd: ROOT, stdio: 'inherit', shell: process.platform === 'win32' });
    if (r.status !== 0) process.exit(r.status ?? 1);
  }
}
