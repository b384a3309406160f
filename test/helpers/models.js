// Shared fixtures: the two reference models shipped in models/, their golden data from
// Hugging Face transformers, and one converted image of each (converted once per test run).
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { convertHF } from '../../dist/src/index.js';
import { tmpDir } from './hostile.js';
import { limited } from './parallel.js';
import { inWorker } from './worker.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const MODELS = ['opt-relu-mini', 'llama-relu-mini'];
export const modelDir = (name) => join(ROOT, 'models', name);

const goldens = new Map();
export function golden(name) {
  if (!goldens.has(name)) goldens.set(name, JSON.parse(readFileSync(join(modelDir(name), 'golden.json'), 'utf8')));
  return goldens.get(name);
}

export function f32(b64) {
  const b = Buffer.from(b64, 'base64');
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
}

export function maxAbsDiff(a, b) {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const images = new Map(), converting = limited(availableParallelism());
let imageDir;
/**
 * { path, header } of a converted image of model `name` (converted on first use, in a temp dir,
 * shared by every test that asks for it: they only read it); header is what convertHF returned.
 * Images in another dtype are converted in worker threads (plain JS, seconds; one per core at a
 * time): a test may ask early and take the answer later.
 */
export function image(name, convertOpts) {
  const key = convertOpts ? `${name}-${Object.values(convertOpts).join('-')}` : name;
  if (!images.has(key)) {
    imageDir ??= tmpDir('images');
    const out = join(imageDir, `${key}.fnimg`);
    const header = convertOpts?.dtype ? converting(() => inWorker('convert', modelDir(name), out, convertOpts)) : convertHF(modelDir(name), out, undefined, convertOpts);
    const done = header.then((h) => ({ path: out, header: h }));
    done.catch(() => {});   // reported to whoever awaits it
    images.set(key, done);
  }
  return images.get(key);
}

/** Path of a converted image of model `name` (image(name, convertOpts).path). */
export async function imagePath(name, convertOpts) {
  return (await image(name, convertOpts)).path;
}
