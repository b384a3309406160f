// The peers bench:peers runs against (node-llama-cpp, wllama) are bench/package.json's own
// dependencies, installed into bench/node_modules on first use from bench/package-lock.json, so
// the package's `npm ci` never downloads them (llama.cpp's binaries alone are ~700 MB).
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH = fileURLToPath(new URL('.', import.meta.url));
export const PEERS = join(BENCH, 'node_modules');

/** Installs bench/package-lock.json's packages unless they are there and as recent as the lockfile. */
export function ensurePeers() {
  const installed = join(PEERS, '.package-lock.json');
  if (existsSync(installed) && statSync(installed).mtimeMs >= statSync(join(BENCH, 'package-lock.json')).mtimeMs) return;
  console.error('bench: installing the peers (bench/package.json) into bench/node_modules, once');
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: BENCH, stdio: 'inherit', shell: process.platform === 'win32' });
  if (r.status !== 0) throw new Error(`npm ci in ${BENCH} failed (exit ${r.status})`);
}
