// The one load path every host takes once it has an image: Node's loadModel (src/node/load.ts)
// after finding or converting the file, the browser worker (src/web/worker.ts) over OPFS. It
// gathers the facts (the image's header, the predictor, the WebGPU adapter), lets
// resolveOptions decide, opens the engine and moves it to the chosen device.
import type { ImageHeader } from '../format/image.js';
import type { FlashSource } from '../io/source.js';
import type { DeviceProfile } from '../io/profile.js';
import type { Predictor } from '../predictor/types.js';
import { tealCutsAt, thresholdsAt, type FfnThresholds } from '../predictor/thresholds.js';
import { pickRank } from '../predictor/ladder.js';
import { gpuLacks, openGpu, type Gpu } from '../gpu/webgpu.js';
import { Engine, hostCores } from './engine.js';
import { Model, type LoadOptions } from './model.js';
import { resolveOptions, type ResolvedOptions } from './options.js';
import { Tokenizer, type TokenizerConfig } from './tokenizer.js';

export interface ImageInfo {
  /** The image: a path the engine host opens, or an open source (the model takes ownership). */
  image: string | FlashSource;
  header: ImageHeader;
  /** Bytes of the image. */
  size: number;
  /** What the model is called in messages (its path, or an OPFS name). */
  label: string;
  /** The model's sparsity predictor, when there is one. */
  predictor?: Predictor;
  /** Calibrated |silu(gate)·up| cuts (SiLU-gated models), when there are some. */
  thresholds?: FfnThresholds;
  /** The flash device's measured profile (default: the built-in one). */
  profile?: DeviceProfile;
}

/** Loads the model of an image with the user's options (see resolveOptions). */
export async function openModel(info: ImageInfo, opts: LoadOptions = {}): Promise<Model> {
  const { header } = info;
  const device = opts.device ?? 'auto';
  // Whether a hardware adapter is present decides where the arithmetic runs and how the weights
  // are held, so it is asked before anything is loaded.
  let gpu: Gpu | null = null;
  if (device !== 'cpu') {
    try {
      gpu = await openGpu({ allowFallback: device === 'gpu', shaderF16: opts.shaderF16 });
    } catch (e) {
      if (device === 'gpu') throw new Error(`WebGPU device request failed: ${(e as Error).message}`);
    }
  }
  let resolved: ResolvedOptions;
  try {
    resolved = resolveOptions(opts, {
      config: header.config, modelBytes: info.size, hasPredictor: !!info.predictor || !!opts.oracle, hasThresholds: !!info.thresholds || !!opts.ffnThresholds,
      hasTeal: !!info.thresholds?.teal || !!opts.tealThresholds,
      gpu: gpu ? (gpu.fallback ? 'software' : 'hardware') : 'none',
      // What the WebGPU backend runs: f32/f16/bf16 weights of the families its kernels cover.
      gpuWeights: ['f32', 'f16', 'bf16'].includes(header.ffn.dtype) && !gpuLacks(header.config, header.config.maxPositions),
      jobTokens: opts.jobTokens, profile: info.profile, bundleChecksums: header.sections.some((s) => s.name === 'ffn.crc'),
      cores: hostCores(), synthetic: String(header.source?.converted_from ?? '').startsWith('synthetic '),
    });
  } catch (e) {
    gpu?.device.destroy();
    throw e;
  }
  const r = resolved;
  const predictor = r.mode === 'sparse' && !r.siluSparse && !opts.oracle && !r.syntheticFiring && info.predictor ? pickRank(info.predictor, r.predictorRank, r.predictorDtype) : undefined;
  // The file's cuts, or those of another target sparsity from the same calibration.
  const ffnThresholds = !r.siluSparse ? undefined : opts.ffnThresholds ?? (opts.sparsity !== undefined ? thresholdsAt(info.thresholds!, opts.sparsity) : info.thresholds!.thresholds);
  let engine: Engine;
  try {
    engine = Engine.open(info.image, {
      ...opts, mode: r.mode, memoryBytes: r.memoryBytes, contextLength: r.contextLength, kvDtype: r.kvDtype, residentDtype: r.residentDtype,
      window: r.window, threshold: r.threshold, predictorDtype: r.predictorDtype, hybridShare: r.hybridShare, io: r.io, direct: r.direct,
      queueDepth: r.queueDepth, planner: opts.planner ?? r.planner, predictor, verify: r.verify, threads: r.threads, ffnThresholds,
      syntheticFiring: r.syntheticFiring,
      tealThresholds: r.teal === false ? undefined : opts.tealThresholds ?? tealCutsAt(info.thresholds!.teal!, r.teal === true ? undefined : r.teal),
      siluRule: opts.siluRule ?? (info.thresholds?.statistic === 'abs_silu_gate' ? 'gate' : undefined),
    });
  } catch (e) {
    gpu?.device.destroy();
    throw e;
  }
  try {
    if (r.device === 'gpu') await engine.setDevice(device === 'gpu' ? 'gpu' : 'auto', { gpu: gpu ?? undefined, shaderF16: opts.shaderF16, maxBindingBytes: opts.gpuMaxBindingBytes });
    else gpu?.device.destroy();
    if (r.threads > 1 && !engine.threaded) r.notes.push('computing on one thread: this runtime has no shared wasm memory (a browser page needs cross-origin isolation: COOP/COEP headers)');
    const tokenizer = opts.tokenizer ?? Tokenizer.fromJSON(engine.tokenizerJson, engine.header.tokenizer_config as TokenizerConfig | undefined, { vocab: engine.header.config.vocab });
    return new Model(engine, tokenizer, info.label, r);
  } catch (e) {
    engine.close();
    throw e;
  }
}
