// Models on disk for Node, Deno and Bun: a flashneuron image, a Hugging Face folder or a GGUF
// file (converted once into the cache directory), loaded through the one load path (core/load.ts).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readImageHeader, readTokenizerJson, type ImageHeader } from '../format/image.js';
import { writeImage } from '../format/image-writer.js';
import { checkpointPredictor } from '../format/hf-predictor.js';
import { MemorySource } from '../io/source.js';
import { openModel } from '../core/load.js';
import type { LoadOptions, Model } from '../core/model.js';
import { Tokenizer, type TokenizerConfig } from '../core/tokenizer.js';
import { modelFingerprint } from '../predictor/format.js';
import type { Predictor } from '../predictor/types.js';
import { FileSource } from './file-source.js';
import { openHFCheckpoint } from './checkpoint-fs.js';
import { convertHF, readImageHeaderFile, writeImageFile } from './image-file.js';
import { isGGUF, openGGUFCheckpoint, readGGUFPredictor } from './gguf-file.js';
import { loadPredictor, loadThresholds, predictorPath, savePredictor, sidecarPredictorPath, thresholdsPath } from './predictor-file.js';
import type { FfnThresholds } from '../predictor/thresholds.js';
import { loadProfile } from './probe.js';
import { cachedConversion, fileStamp, folderStamp, resolveModelPath } from './cache.js';
import './engine-host.js';
export { cacheDir } from './cache.js';

/** The model shipped inside the package. */
export const DEFAULT_MODEL = fileURLToPath(new URL('../../../models/opt-relu-mini', import.meta.url));

/**
 * Loads a model: a flashneuron image file, or a Hugging Face folder (converted once into the
 * cache dir, keyed by its files' sizes and dates). Without a path: the embedded default model.
 */
export async function loadModel(path: string = DEFAULT_MODEL, opts: LoadOptions = {}): Promise<Model> {
  const full = resolveModelPath(path);
  const found = await imageOf(full, opts);
  const file = typeof found === 'string' ? found : undefined;
  const header = file !== undefined ? readImageHeaderFile(file) : (found as InMemoryImage).header;
  if (opts.layout === 'split' && !statSync(full).isDirectory() && header.ffn.layout !== 'split') {
    throw new Error(`${path} has bundled FFNs; for the unbundled ablation give the Hugging Face folder or an image converted with --no-bundle`);
  }
  // The predictor, where sparse mode may run: asked for, or beside the model.
  let predictor: Predictor | undefined;
  let thresholds: FfnThresholds | undefined;
  const mayBeSparse = opts.mode === 'sparse' || (opts.mode === undefined && opts.memory !== undefined);
  // SiLU-gated models run sparse by calibrated magnitude cuts (flashneuron calibrate), not a predictor.
  const siluGated = header.config.act === 'silu' && header.config.hasGate;
  if ((mayBeSparse || (opts.teal !== undefined && opts.teal !== false)) && siluGated && !opts.oracle && !opts.ffnThresholds) {
    const p = opts.thresholdsPath ?? thresholdsPath(file === undefined || statSync(full).isDirectory() ? full : file);
    if (opts.thresholdsPath !== undefined || existsSync(p)) thresholds = loadThresholds(p, modelFingerprint(header));
  } else if (opts.thresholdsPath !== undefined && !siluGated) {
    throw new Error(`thresholds are for SiLU-gated models; ${path} uses ${header.config.act}`);
  }
  if (mayBeSparse && !opts.oracle && !opts.syntheticFiring && !siluGated) {
    // Asked for; else trained beside the model; else shipped with it (PowerInfer GGUF, TurboSparse: the image's sidecar).
    const beside = predictorPath(file === undefined || statSync(full).isDirectory() ? full : file);
    const p = opts.predictorPath ?? (existsSync(beside) || file === undefined ? beside : predictorPath(file));
    if (existsSync(p)) predictor = loadPredictor(p, modelFingerprint(header));
    else if (file === undefined && opts.predictorPath === undefined && (found as InMemoryImage).predictor) predictor = (found as InMemoryImage).predictor;
    else if (opts.mode === 'sparse' || opts.predictorPath !== undefined) {
      throw new Error(`sparse mode needs a sparsity predictor for this model and there is none at ${p}: ` +
        `train one with "flashneuron train-predictor --model ${path} TEXT_FILE", or use --mode naive or hybrid`);
    }
  }
  // Host-issued reads are planned from the device profile (flashneuron probe), or this machine class's defaults.
  const profile = opts.io === 'async' || opts.direct ? loadProfile() : undefined;
  const image = file ?? (found as InMemoryImage).src;
  const size = file !== undefined ? statSync(file).size : (found as InMemoryImage).src.size;
  return openModel({ image, header, size, label: full, predictor, thresholds, profile }, opts);
}

/** The tokenizer of a model (image or Hugging Face folder) without loading its weights. */
export async function loadTokenizer(path: string = DEFAULT_MODEL, opts: LoadOptions = {}): Promise<Tokenizer> {
  const found = await imageOf(resolveModelPath(path), opts);
  const src = typeof found === 'string' ? new FileSource(found) : found.src;
  try {
    const h = readImageHeader(src);
    return Tokenizer.fromJSON(readTokenizerJson(src, h), h.tokenizer_config as TokenizerConfig | undefined, { vocab: h.config.vocab });
  } finally { src.close(); }
}

/**
 * The image to run for `path`: an image as it is; a Hugging Face folder or a llama GGUF file
 * converted once into the cache (and reused while its files are unchanged).
 */
export async function resolveImage(path: string, opts: LoadOptions = {}): Promise<string> {
  if (statSync(path).isDirectory()) return cachedImage(path, opts);
  if (!isGGUF(path)) return path;
  return cachedConversion(path, 'gguf', 'bundled', fileStamp(path), opts, (out) => {
    const ckpt = openGGUFCheckpoint(path);
    try { writeImageFile(ckpt, out, opts.onProgress); } finally { ckpt.close(); }
    // A PowerInfer-style file's predictor becomes the image's sidecar, where sparse mode finds it.
    const predictor = readGGUFPredictor(path, modelFingerprint(readImageHeaderFile(out)));
    if (predictor) savePredictor(sidecarPredictorPath(out), predictor);
  });
}

/** Image path for a Hugging Face folder, converting it when no current image exists. */
export async function cachedImage(dir: string, opts: LoadOptions = {}): Promise<string> {
  if (!existsSync(join(dir, 'config.json'))) throw new Error(`${dir}: not a Hugging Face model folder (no config.json)`);
  const layout = opts.layout ?? 'bundled';
  return cachedConversion(dir, 'hf', layout, folderStamp(dir), opts, (out) => convertHF(dir, out, opts.onProgress, { layout }).then(() => {}));
}

/** A Hugging Face folder converted in memory, where the conversion cache cannot be written. */
interface InMemoryImage { src: MemorySource; header: ImageHeader; predictor?: Predictor }

/** Folders up to this many bytes are converted in memory when the cache is not writable. */
const IN_MEMORY_MAX = 1 << 30;

/**
 * The image of `full` (resolveImage), or, where the conversion cache cannot be written — Deno
 * without --allow-write, a read-only home — a small folder's conversion held in memory, so
 * reading a model needs read permission only.
 */
async function imageOf(full: string, opts: LoadOptions): Promise<string | InMemoryImage> {
  try {
    return await resolveImage(full, opts);
  } catch (e) {
    const denied = (e as Error).name === 'NotCapable' || ['EACCES', 'EPERM', 'EROFS'].includes((e as NodeJS.ErrnoException).code ?? '');
    if (!denied || !statSync(full).isDirectory() || folderBytes(full) > IN_MEMORY_MAX) throw e;
  }
  const ckpt = await openHFCheckpoint(full);
  try {
    let bytes = new Uint8Array(folderBytes(full)), end = 0;
    const header = writeImage(ckpt, (chunk, pos) => {
      if (pos + chunk.length > bytes.length) {
        const grown = new Uint8Array(Math.max(pos + chunk.length, 2 * bytes.length));
        grown.set(bytes.subarray(0, end));
        bytes = grown;
      }
      bytes.set(chunk, pos);
      end = Math.max(end, pos + chunk.length);
    }, opts.onProgress, { layout: opts.layout ?? 'bundled' });
    return { src: new MemorySource(full, bytes.subarray(0, end)), header, predictor: checkpointPredictor(ckpt, modelFingerprint(header)) };
  } finally {
    ckpt.close();
  }
}

function folderBytes(dir: string): number {
  return readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

