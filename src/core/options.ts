// What a memory budget and a user's options imply, decided in one place for every host: the
// CLI, the Node API and the browser worker all call resolveOptions() with what the user asked
// for and the facts about the model and the machine, and pass the result to the engine. The
// bytes themselves (which resident dtype fits, how many neurons each cache holds, which
// predictor rank) are planned from the image and the wasm's sizes in plan.ts.
import type { ModelConfig } from '../format/config.js';
import { defaultProfile, plannerCosts, type DeviceProfile } from '../io/profile.js';
import type { Progress } from '../format/image.js';
import type { EnginePredictor } from '../predictor/types.js';

export type FfnMode = 'dense' | 'naive' | 'hybrid' | 'sparse';
/** Where the arithmetic runs: the wasm (cpu), a WebGPU adapter (gpu), or the GPU when a hardware one is present (auto). */
export type Device = 'cpu' | 'gpu' | 'auto';
export type ResidentDtype = 'q8_0' | 'stored' | 'auto';
export type Io = 'wasi' | 'async' | 'thread';

export const MODES: readonly FfnMode[] = ['dense', 'naive', 'hybrid', 'sparse'];

/** KV cache length under a budget when neither the user nor the job says (perplexity windows, chat). */
export const BUDGET_CONTEXT = 128;
/**
 * The longest KV cache a model gets without being asked (its own context when shorter): a
 * 128k-token context's KV cache alone outgrows wasm32's 4 GiB, as llama.cpp likewise defaults
 * to a few thousand tokens.
 */
export const DEFAULT_CONTEXT_CAP = 8192;

/**
 * What the engine takes (Engine.open): every mechanism explicit, with neutral defaults (dense,
 * f32 KV cache, the model's context). Hosts get them from resolveOptions, below.
 */
export interface EngineOptions {
  /** Use the SIMD build when the runtime supports it (default true). */
  simd?: boolean;
  /** KV cache length; defaults to the model's max positions. */
  contextLength?: number;
  /** Leave the token embeddings on flash, one row read per token (untied models; default: under a memory budget). */
  embeddingsOnFlash?: boolean;
  /** KV cache element type (default f32; f16 halves it, as llama.cpp does by default). */
  kvDtype?: 'f32' | 'f16';
  onProgress?: Progress;
  /** How the wasm reaches a file: the runtime's own WASI (default for files, where the host has one) or the built-in shim. */
  wasi?: 'node' | 'shim';
  /**
   * Where the FFN lives. dense: in memory. naive: read whole from flash every token.
   * hybrid: a share of neurons kept, the rest read every token. sparse: only the neurons the
   * predictor (or an oracle through predict()) wants, through the windowed neuron cache.
   */
  mode?: FfnMode;
  /**
   * Sparse: tokens a neuron stays cached after it was last wanted (0 = no reuse; the paper's
   * window is 5), or 'lru' (default): it stays while the cache has room, and when the cache is
   * full the least recently used neurons make way (the window grows to what the budget holds).
   */
  window?: number | 'lru';
  /** Cap on the bytes of wasm memory the engine may hold (weights, predictor, caches, KV, buffers). */
  memoryBytes?: number;
  /** Neuron-cache rows per layer (default: sized from memoryBytes, else the whole FFN). */
  cacheRows?: number | number[];
  /** How the budget's neuron-cache rows are shared by layers (default: the predictor's expected set sizes, else evenly). */
  cacheWeights?: number[];
  /** Hybrid: share of each layer's neurons kept in memory (default: what the budget allows). */
  hybridShare?: number;
  /**
   * Sparse: the predictor, or a function giving the one to use for the bytes left after the
   * resident part (the caller picks a rank that fits: pickRank); without one the host supplies
   * the wanted neurons with predict() (oracle).
   */
  predictor?: EnginePredictor | ((roomBytes: number, bytesPerCacheRow: number) => EnginePredictor);
  /**
   * Sparse mode on a SiLU-gated model (no predictor, no retraining): per layer the cut on
   * |silu(gate·x)·up·x| (flashneuron calibrate). Gate and up stay resident (Q8_0 under a budget
   * unless residentDtype is 'stored'); the neurons under the cut are dropped and only the down
   * columns of the rest are read from flash, through the neuron caches. All zeros: the dense FFN.
   */
  ffnThresholds?: number[];
  /**
   * What ffnThresholds cut: 'product' (default) |silu(gate·x)·up·x|, or 'gate' |silu(gate·x)|
   * (CATS: only gate resident, up rows and down columns read). The product judges better: at
   * equal sparsity it costs far less perplexity.
   */
  siluRule?: 'product' | 'gate';
  /** Sparse: the predictor's weights as 'q8_0' (default: half the bytes and time of f16; the rank padded to a multiple of 32) or 'f16' (as trained). */
  predictorDtype?: 'q8_0' | 'f16';
  /**
   * Hold the resident matrices (attention, embeddings, lm_head) as Q8_0, quantized while loading:
   * about half their bytes, left to the neuron caches under a budget. 'auto' (default): Q8_0 in
   * sparse and hybrid mode when the budget, with them as stored, leaves the predictor and the
   * neuron caches less room than the FFN's bytes; else as stored.
   */
  residentDtype?: 'q8_0' | 'stored' | 'auto';
  /** Sparse: probability above which the predictor marks a neuron (default: its calibrated per-layer thresholds). */
  threshold?: number;
  /**
   * Checks of FFN bundles read from flash against the image's per-neuron CRC-32s: 'first'
   * (default) the first time each neuron is read, 'always' every read (faulty transfers too),
   * 'off'. Images made before these checksums load unverified, with a note.
   */
  verify?: 'first' | 'always' | 'off';
  /** Check each layer's output for NaN/Inf (the logits are checked every token regardless). */
  check?: boolean;
  /**
   * Threads computing (default: one per core): above one, the threads build runs on shared
   * memory and the host's compute workers take parts of each large matrix product, and of the
   * FFN's reads and landing. Where shared memory is missing (a browser page without cross-origin
   * isolation) it runs on one.
   */
  threads?: number;
  /** Staging buffer for reads (sparse: 128 KiB with io wasi, 256 KiB with the read thread, 512 KiB with io async; 1 MiB for naive/hybrid). */
  stagingBytes?: number;
  /** Planner costs: µs per read operation and per byte, and the merge gap in bytes. */
  planner?: { opUs: number; byteUs: number; gapBytes: number };
  /** Reads issued per round at most. */
  maxOps?: number;
  /** Longest single read with io 'async' (default 256 KiB: long extents become parallel reads). */
  maxReadBytes?: number;
  /**
   * FFN reads: 'wasi' (default) — the wasm reads through WASI fd_pread, one at a time;
   * 'async' — the source's parallel reads (readBatch: queueDepth in flight) while the wasm
   * computes the cached neurons. `direct` opens the file with O_DIRECT (cold reads: no page
   * cache), where the filesystem allows it. 'thread' — a worker thread reads each round while
   * the wasm computes the cached neurons (a file path and a host with threads: src/node); its
   * staging copy counts in the budget.
   */
  io?: 'wasi' | 'async' | 'thread';
  direct?: boolean;
  queueDepth?: number;
  /**
   * Load only the FFN-on-flash machinery (no resident weights, no arithmetic): forwardAsync then
   * replays a token's flash traffic — window, evictions, planned reads, cache inserts — exactly
   * as a real run issues it. For measuring I/O where the resident part exceeds wasm32's 4 GiB
   * (an f16 7B model; bench:table2). Flash modes only; the wanted neurons come from predict().
   */
  ioOnly?: boolean;
  /** Sparse mode on a synthetic image: each pass's firing sets come from an ActivationModel (format/synth.ts), not a predictor. */
  syntheticFiring?: SyntheticFiring;
  /**
   * TEAL input sparsity: per layer the cuts [q/k/v input, o input, gate/up input] under which an
   * input entry of those resident matrices counts as zero (flashneuron calibrate --teal). The wasm only.
   */
  tealThresholds?: number[][];
  /** Keep each layer's q/k/v and o inputs of the last token (Engine.tealInputs: TEAL calibration). */
  tealRecord?: boolean;
}

/**
 * Synthetic images (flashneuron synth) have random weights and no predictor: in sparse mode the
 * neurons wanted each token are drawn by an ActivationModel (power-law firing rates, sticky
 * across tokens) seeded by `seed`; `activeShare` is the mean share of each layer firing
 * (default 0.1, as the paper measured on OPT-6.7B). The same seed gives the same sets on every host.
 */
export interface SyntheticFiring { seed: number; activeShare?: number }

/** Memory the engine holds, by part (bytes). */
export interface MemoryReport {
  total: number; resident: number; resident_dtype: 'stored' | 'q8_0'; predictor: number; predictor_rank: number; neuron_cache: number; kv_cache: number; buffers: number;
  cache_rows: number[];
}

/** What a user may ask for (CLI flags, Node API load options, the browser worker's load message). */
export interface RunOptions {
  /** Cap on the memory the engine holds: bytes (a number, "300MB", "1.5GiB") or a share of the model's bytes ("60%"). */
  memory?: number | string;
  mode?: FfnMode;
  /** Sparse: tokens a neuron stays cached after it was last wanted, or 'lru' (default). */
  window?: number | 'lru';
  /** Sparse: the predictor's probability cut (default: its calibrated per-layer thresholds). */
  threshold?: number;
  predictorRank?: number;
  predictorDtype?: 'q8_0' | 'f16';
  residentDtype?: ResidentDtype;
  /** Hybrid: the share of each layer's neurons kept in memory. */
  hybridShare?: number;
  contextLength?: number;
  kvDtype?: 'f32' | 'f16';
  io?: Io;
  direct?: boolean;
  queueDepth?: number;
  device?: Device;
  /** Checks of FFN bundles read from flash: 'first' (default), 'always' or 'off' (EngineOptions.verify). */
  verify?: 'first' | 'always' | 'off';
  /** Threads computing (default: the cores the host reports). */
  threads?: number;
  /** Synthetic images only: sparse mode with firing sets drawn by an ActivationModel in place of a predictor. */
  syntheticFiring?: SyntheticFiring;
  /** SiLU-gated models: TEAL input sparsity of q/k/v, o, gate/up by calibrated cuts — true: the calibrated target; a number: that share from the calibration's quantiles. */
  teal?: boolean | number;
}

/** What the options depend on besides the user. */
export interface RunFacts {
  config: ModelConfig;
  /** Bytes of the model image. */
  modelBytes: number;
  /** Whether a sparsity predictor is available for the model. */
  hasPredictor: boolean;
  /** Whether calibrated |silu(gate)·up| thresholds are available (SiLU-gated models: sparse mode without a predictor). */
  hasThresholds?: boolean;
  /** The WebGPU adapter the runtime offers (probed only when the device is not cpu). */
  gpu: 'none' | 'software' | 'hardware';
  /** Whether the WebGPU backend can run the image's weights (f32, f16, bf16). */
  gpuWeights: boolean;
  /** Tokens the job needs when known (a prompt plus the tokens asked for): the KV cache is sized to it under a budget. */
  jobTokens?: number;
  /** The flash device's profile, for planning host-issued reads (default: the built-in one). */
  profile?: DeviceProfile;
  /** Whether the image carries per-neuron checksums of its FFN (images made before them do not). */
  bundleChecksums?: boolean;
  /** Cores the host offers (os.availableParallelism(), navigator.hardwareConcurrency); default 1. */
  cores?: number;
  /** Whether the image is synthetic (flashneuron synth: random weights). */
  synthetic?: boolean;
  /** Whether calibrated TEAL cuts (inputs of q/k/v, o, gate/up) are available. */
  hasTeal?: boolean;
}

/** Every decision the engine needs, made. */
export interface ResolvedOptions {
  memoryBytes: number | undefined;
  mode: FfnMode;
  contextLength: number;
  kvDtype: 'f32' | 'f16';
  /** 'auto': Q8_0 when the budget leaves the FFN little room (the plan decides, plan.ts). */
  residentDtype: ResidentDtype;
  window: number | 'lru';
  threshold: number | undefined;
  predictorRank: number | undefined;
  predictorDtype: 'q8_0' | 'f16';
  hybridShare: number | undefined;
  io: Io;
  direct: boolean;
  queueDepth: number;
  /** Read-planner costs (host-issued reads), from the device profile. */
  planner: { opUs: number; byteUs: number; gapBytes: number } | undefined;
  device: 'cpu' | 'gpu';
  verify: 'first' | 'always' | 'off';
  /** Threads computing: the user's, else one per core (the WebGPU device: 1). */
  threads: number;
  /** Sparse mode by calibrated |silu(gate)·up| thresholds (a SiLU-gated model) instead of a predictor. */
  siluSparse: boolean;
  /** Sparse mode's firing sets drawn by an ActivationModel (synthetic images), when asked for. */
  syntheticFiring?: Required<SyntheticFiring>;
  /** TEAL input sparsity: off, the calibrated target (true), or another target share. */
  teal: boolean | number;
  /** Things the user should know about the choices made (printed by the CLI). */
  notes: string[];
}

/** A numeric option's accepted values: whole or not, inclusive (min, max) or exclusive (above, below) bounds. */
export interface Range { int?: boolean; min?: number; max?: number; above?: number; below?: number }

/**
 * The accepted values of the numeric run options. The CLI checks its flags against the same
 * ranges (src/node/args.ts), so both refuse a value with the same words.
 */
export const RANGES = {
  /** Tokens; 0 = no reuse across tokens. */
  window: { int: true, min: 0, max: 2 ** 24 - 1 },
  threshold: { above: 0, below: 1 },
  predictorRank: { int: true, min: 1, max: 4096 },
  hybridShare: { min: 0, max: 1 },
  contextLength: { int: true, min: 1 },
  /** The parallel reader's limit (src/node/reader.ts). */
  queueDepth: { int: true, min: 1, max: 4096 },
  threads: { int: true, min: 1, max: 256 },
  /** SiLU-gated models: the share of down_proj inputs dropped (calibrate, and a run's target). */
  sparsity: { min: 0, below: 1 },
  /** syntheticFiring: the seed and the mean share of each layer firing. */
  firingSeed: { int: true, min: 0, max: 2 ** 32 - 1 },
  activeShare: { above: 0, max: 0.9 },
} satisfies Record<string, Range>;

export function inRange(v: number, r: Range): boolean {
  return Number.isFinite(v) && (!r.int || Number.isInteger(v)) && !(r.min !== undefined && v < r.min) && !(r.max !== undefined && v > r.max) &&
    !(r.above !== undefined && v <= r.above) && !(r.below !== undefined && v >= r.below);
}

/** "an integer ≥ 1", "a number from 0 to 1", "a number > 0 and < 1". */
export function describeRange(r: Range): string {
  const what = r.int ? 'an integer' : 'a number';
  if (r.min !== undefined && r.max !== undefined) return `${what} from ${r.min} to ${r.max}`;
  const parts = [r.min !== undefined && `≥ ${r.min}`, r.above !== undefined && `> ${r.above}`, r.max !== undefined && `≤ ${r.max}`, r.below !== undefined && `< ${r.below}`];
  const b = parts.filter((x): x is string => typeof x === 'string');
  return b.length ? `${what} ${b.join(' and ')}` : what;
}

function checkRange(name: string, v: unknown, r: Range): void {
  if (v !== undefined && !(typeof v === 'number' && inRange(v, r))) throw new Error(`${name} must be ${describeRange(r)} (got ${v})`);
}

/** Resolves what the user asked for into the engine's options. Throws a one-line error for anything invalid. */
export function resolveOptions(o: RunOptions, facts: RunFacts): ResolvedOptions {
  const cfg = facts.config, notes: string[] = [];
  const memoryBytes = o.memory === undefined ? undefined : parseMemory(o.memory, facts.modelBytes);
  oneOf('mode', o.mode, MODES);
  // Under a budget the FFN stays on flash: sparse with a predictor; without one a share of the
  // neurons stays in memory and the rest is read every token (hybrid).
  // SiLU-gated models have no natural sparsity: calibrated |silu(gate)·up| cuts take the
  // predictor's place (gate and up resident, down columns read: assembly/silu.ts).
  const siluGated = cfg.act === 'silu' && cfg.hasGate;
  const thresholds = siluGated && !!facts.hasThresholds;
  const firing = syntheticFiring(o, facts);
  const mode: FfnMode = o.mode ?? (firing ? 'sparse' : memoryBytes === undefined ? 'dense' : facts.hasPredictor || thresholds ? 'sparse' : 'hybrid');
  if (o.mode === undefined && mode === 'hybrid') {
    notes.push(siluGated ? 'no calibrated thresholds for this SiLU model: the FFN runs in hybrid mode (run flashneuron calibrate for sparse mode)'
      : 'no sparsity predictor for this model: the FFN runs in hybrid mode (train one with train-predictor for sparse mode)');
  }
  if (firing && mode !== 'sparse') throw new Error(`syntheticFiring draws sparse mode's firing sets: use mode sparse (got ${mode})`);
  if (mode === 'sparse' && !facts.hasPredictor && !thresholds && !firing) {
    throw new Error(siluGated ? 'sparse mode on a SiLU model needs calibrated thresholds: run "flashneuron calibrate --sparsity 0.5 TEXT_FILE" for it, or use mode naive or hybrid'
      : 'sparse mode needs a sparsity predictor for this model: train one with "flashneuron train-predictor", or use mode naive or hybrid');
  }
  const siluSparse = mode === 'sparse' && thresholds && !firing;
  const teal = tealOption(o, facts, mode, siluSparse);

  checkRange('contextLength', o.contextLength, RANGES.contextLength);
  const contextLength = Math.min(cfg.maxPositions, o.contextLength ?? (memoryBytes === undefined ? DEFAULT_CONTEXT_CAP : facts.jobTokens ?? BUDGET_CONTEXT));
  if (o.contextLength === undefined && memoryBytes === undefined && cfg.maxPositions > DEFAULT_CONTEXT_CAP) {
    notes.push(`the KV cache holds ${DEFAULT_CONTEXT_CAP} tokens of the model's ${cfg.maxPositions} (--context N for more)`);
  }
  oneOf('kvDtype', o.kvDtype, ['f32', 'f16']);
  oneOf('residentDtype', o.residentDtype, ['q8_0', 'stored', 'auto']);
  oneOf('predictorDtype', o.predictorDtype, ['q8_0', 'f16']);
  oneOf('io', o.io, ['wasi', 'async', 'thread']);
  oneOf('device', o.device, ['cpu', 'gpu', 'auto']);
  const window = o.window ?? 'lru';
  if (window !== 'lru' && !(typeof window === 'number' && inRange(window, RANGES.window))) throw new Error(`window must be ${describeRange(RANGES.window)} or 'lru' (got ${o.window})`);
  checkRange('threshold', o.threshold, RANGES.threshold);
  checkRange('hybridShare', o.hybridShare, RANGES.hybridShare);
  checkRange('predictorRank', o.predictorRank, RANGES.predictorRank);
  checkRange('queueDepth', o.queueDepth, RANGES.queueDepth);
  oneOf('verify', o.verify, ['first', 'always', 'off']);
  checkRange('threads', o.threads, RANGES.threads);
  if (mode !== 'dense' && facts.bundleChecksums === false && o.verify !== 'off') {
    notes.push('this image has no per-neuron checksums (made by an older flashneuron): FFN bundles read from flash are not verified; convert it again to have them');
  }
  const queueDepth = o.queueDepth ?? 32;

  // WebGPU where asked for, or ('auto') where a hardware adapter is present and runs these weights.
  const wanted = o.device ?? 'auto';
  if (teal !== false && wanted === 'gpu') throw new Error('teal (input sparsity) runs on the wasm: use --device cpu or auto');
  if (siluSparse && wanted === 'gpu') throw new Error('sparse mode on a SiLU model (calibrated thresholds) runs on the wasm: use --device cpu or auto');
  if (wanted === 'gpu' && facts.gpu === 'none') throw new Error('no WebGPU adapter here (navigator.gpu is missing or offers none); use --device cpu or auto');
  const device = !siluSparse && teal === false && (wanted === 'gpu' || (wanted === 'auto' && facts.gpu === 'hardware' && facts.gpuWeights)) ? 'gpu' : 'cpu';
  // The WebGPU backend takes the weights as stored; on the wasm a tight budget quantizes them.
  const residentDtype = o.residentDtype ?? (device === 'gpu' ? 'stored' : 'auto');

  const direct = o.direct ?? false;
  const io = o.io ?? (direct ? 'async' : 'wasi');
  // Host-issued reads are planned from the device's measured costs; WASI reads of unknown cache
  // state minimise bytes instead (the wasm's default).
  const planner = io === 'async' || direct ? plannerCosts(facts.profile ?? defaultProfileLazy(), queueDepth) : undefined;

  return {
    memoryBytes, mode, contextLength, kvDtype: o.kvDtype ?? (memoryBytes === undefined ? 'f32' : 'f16'), residentDtype, window,
    threshold: o.threshold, predictorRank: o.predictorRank, predictorDtype: o.predictorDtype ?? 'q8_0', hybridShare: o.hybridShare,
    io, direct, queueDepth, planner, device, verify: o.verify ?? 'first', siluSparse, teal, ...(firing ? { syntheticFiring: firing } : {}),
    // One per core on the GPU too: the wasm keeps the reads, landing and checks of the FFN's bundles.
    threads: o.threads ?? Math.max(1, Math.min(RANGES.threads.max, facts.cores ?? 1)),
    notes,
  };
}

/** The synthetic firing asked for, checked: refused on a real image (it has weights whose own firing a predictor learns). */
function syntheticFiring(o: RunOptions, facts: RunFacts): Required<SyntheticFiring> | undefined {
  const f = o.syntheticFiring;
  if (f === undefined) return undefined;
  if (typeof f !== 'object' || f === null) throw new Error(`syntheticFiring must be { seed, activeShare? } (got ${f})`);
  if (!facts.synthetic) throw new Error('syntheticFiring is for synthetic images (flashneuron synth) only: a real model fires as its weights say; use its predictor (train-predictor) for sparse mode');
  checkRange('syntheticFiring.seed', f.seed, RANGES.firingSeed);
  if (f.seed === undefined) throw new Error('syntheticFiring needs a seed (an integer from 0 to 4294967295)');
  checkRange('syntheticFiring.activeShare', f.activeShare, RANGES.activeShare);
  return { seed: f.seed, activeShare: f.activeShare ?? 0.1 };
}

/** TEAL asked for, checked: calibrated cuts, dense mode or sparse mode on a SiLU model. */
function tealOption(o: RunOptions, facts: RunFacts, mode: FfnMode, siluSparse: boolean): boolean | number {
  const t = o.teal;
  if (t === undefined || t === false) return false;
  if (t !== true) checkRange('teal', t, RANGES.sparsity);
  if (!facts.hasTeal) throw new Error('teal needs calibrated TEAL cuts for this model: run "flashneuron calibrate --sparsity 0.5 --teal 0.4 TEXT_FILE" for it');
  if (mode !== 'dense' && !siluSparse) throw new Error(`teal runs in dense mode or in sparse mode on a SiLU model with calibrated thresholds (got mode ${mode})`);
  return t;
}

function oneOf<T>(name: string, v: T | undefined, allowed: readonly T[]): void {
  if (v !== undefined && !allowed.includes(v)) throw new Error(`${name} must be ${allowed.slice(0, -1).join(', ')} or ${allowed[allowed.length - 1]} (got ${v})`);
}

let builtIn: DeviceProfile | undefined;
const defaultProfileLazy = () => (builtIn ??= defaultProfile());

/** The message of a budget string without a unit (a bare number is ambiguous: bytes, MB or a share?). */
const UNITS = 'a share of the model (60%) or bytes with a unit (600MB, 2GiB)';

/**
 * A memory budget in bytes: a number of bytes, or a string — a share of the model's bytes
 * ("60%") or bytes with a unit ("300MB", "1.5GiB", "4096B"; K, M, G are powers of 1024). A
 * string without a unit is refused: "60" has been meant as 60% and as 60 MB, never as 60 bytes.
 */
export function parseMemory(v: number | string, modelBytes: number): number {
  if (typeof v === 'number') {
    if (!(Number.isFinite(v) && v >= 1)) throw new Error(`memory budget must be a positive number of bytes (got ${v})`);
    return Math.floor(v);
  }
  if (typeof v !== 'string') throw new Error(`memory budget must be a number of bytes or a string such as 60% or 600MB (got ${typeof v})`);
  if (/^\s*[0-9]*\.?[0-9]+\s*$/.test(v)) throw new Error(`memory budget "${v}" has no unit: give ${UNITS}`);
  const m = /^\s*([0-9]*\.?[0-9]+)\s*(%|[kmg]i?b?|b)\s*$/i.exec(v);
  if (!m) throw new Error(`memory budget "${v}" is neither bytes (e.g. 300MB, 1.5GiB) nor a share of the model (e.g. 60%)`);
  const x = Number(m[1]), unit = m[2].toLowerCase();
  if (unit === '%') {
    if (!(x > 0 && x <= 100)) throw new Error(`memory budget "${v}" must be a share over 0% and at most 100%`);
    return Math.max(1, Math.floor(modelBytes * x / 100));
  }
  const scale = unit.startsWith('k') ? 1 << 10 : unit.startsWith('m') ? 1 << 20 : unit.startsWith('g') ? 1 << 30 : 1;
  const bytes = Math.floor(x * scale);
  if (!(bytes >= 1)) throw new Error(`memory budget "${v}" must be at least 1 byte`);
  return bytes;
}
