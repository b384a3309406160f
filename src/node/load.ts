// Models on disk for Node, Deno and Bun: a flashneuron image, a Hugging Face folder or a GGUF
// file (converted once into the cache directory), loaded through the one load path (core/load.ts).
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readImageHeader, readTokenizerJson } from '../format/image.js';
import { openModel } from '../core/load.js';
import type { LoadOptions, Model } from '../core/model.js';
import { Tokenizer, type TokenizerConfig } from '../core/tokenizer.js';
import { modelFingerprint } from '../predictor/format.js';
import type { Predictor } from '../predictor/types.js';
import { FileSource } from './file-source.js';
import { convertHF, readImageHeaderFile, writeImageFile } from './image-file.js';
import { isGGUF, openGGUFCheckpoint, readGGUFPredictor } from './gguf-file.js';
import { loadPredictor, predictorPath, savePredictor, sidecarPredictorPath } from './predictor-file.js';
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
  const image = await resolveImage(full, opts);
  const header = readImageHeaderFile(image);
  if (opts.layout === 'split' && !statSync(full).isDirectory() && header.ffn.layout !== 'split') {
    throw new Error(`${path} has bundled FFNs; for the unbundled ablation give the Hugging Face folder or an image converted with --no-bundle`);
  }
  // The predictor, where sparse mode may run: asked for, or beside the model.
  let predictor: Predictor | undefined;
  const mayBeSparse = opts.mode === 'sparse' || (opts.mode === undefined && opts.memory !== undefined);
  if (mayBeSparse && !opts.oracle) {
    // Asked for; else trained beside the model; else shipped with it (PowerInfer GGUF, TurboSparse: the image's sidecar).
    const beside = predictorPath(statSync(full).isDirectory() ? full : image);
    const p = opts.predictorPath ?? (existsSync(beside) ? beside : predictorPath(image));
    if (existsSync(p)) predictor = loadPredictor(p, modelFingerprint(header));
    else if (opts.mode === 'sparse' || opts.predictorPath !== undefined) {
      throw new Error(`sparse mode needs a sparsity predictor for this model and there is none at ${p}: ` +
        `train one with "flashneuron train-predictor --model ${path} TEXT_FILE", or use --mode naive or hybrid`);
    }
  }
  // Host-issued reads are planned from the device profile (flashneuron probe), or this machine class's defaults.
  const profile = opts.io === 'async' || opts.direct ? loadProfile() : undefined;
  return openModel({ image, header, size: statSync(image).size, label: full, predictor, profile }, opts);
}

/** The tokenizer of a model (image or Hugging Face folder) without loading its weights. */
export async function loadTokenizer(path: string = DEFAULT_MODEL, opts: LoadOptions = {}): Promise<Tokenizer> {
  const image = await resolveImage(resolveModelPath(path), opts);
  const src = new FileSource(image);
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
