// Runs the CLI as a user would (node bin/flashneuron.js ...) with its own model cache dir.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './models.js';
import { tmpDir } from './hostile.js';

const run = promisify(execFile);
const BIN = join(ROOT, 'bin', 'flashneuron.js');

/** A cli(...args) → {code, stdout, stderr} runner; call inside before() (it makes a temp cache). */
export function cliRunner(tag = 'clicache') {
  const env = { ...process.env, FLASHNEURON_CACHE: tmpDir(tag) };
  return async (...args) => {
    try {
      const r = await run(process.execPath, [BIN, ...args], { env, maxBuffer: 1 << 24 });
      return { code: 0, ...r };
    } catch (e) {
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };
}
