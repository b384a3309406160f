// The public API: loadModel() → Model with generate(), tokenize(), perplexity().
import { existsSync, mkdirSync, statSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ModelConfig } from './config.js';
import { Device, Engine, EngineOptions, EnginePredictor } from './engine.js';
import { FileSource } from './flash.js';
import { convertHF, crc32, Progress, readImageHeader, readImageHeaderFile, readTokenizerJson, VERSION, writeImageFile } from './image.js';
import { GGUF_MAGIC, openGGUFCheckpoint, readGGUFPredictor } from './gguf.js';
import { Predictor, loadPredictor, modelFingerprint, predictorBytesAt, predictorPath, savePredictor, truncatePredictor } from './predictor.js';
import { estimateUs, loadProfile, mergeGapBytes } from './probe.js';
import { Sampler, SamplingOptions, argmax } from './sampler.js';
import { Tokenizer } from './tokenizer.js';

/** The model shipped inside the package. */
export const DEFAULT_MODEL = fileURLToPath(new URL('../../models/opt-relu-mini', import.meta.url));

export interface LoadOptions extends Omit<EngineOptions, 'onProgress' | 'memoryBytes' | 'predictor'> {
  /** Called while converting a Hugging Face folder and while loading: (done, total, phase). */
  onProgress?: Progress;
  /**
   * Cap on the memory the engine holds: bytes (a number, or "300MB", "1.5GiB") or a share of the
   * model's bytes on flash ("60%"). With a cap the FFN stays on flash (default mode sparse).
   */
  memory?: number | string;
  /** Sparse mode's predictor file (default: the one beside the model, see predictorPath()). */
  predictorPath?: string;
  /** Run the predictor at this rank (a rung of its file; default: the largest the budget affords). */
  predictorRank?: number;
  /** Sparse mode without a predictor: the host supplies the wanted neurons (tests, oracles). */
  oracle?: boolean;
  /** The model's tokenizer when the caller already has it (from loadTokenizer), not parsed again. */
  tokenizer?: Tokenizer;
  /** FFN layout of the image made from a Hugging Face folder: 'split' is the unbundled ablation. */
  layout?: 'bundled' | 'split';
  /** Where the arithmetic runs (default cpu): 'gpu' needs a WebGPU adapter; 'auto' takes a hardware one when present. */
  device?: Device;
  /** WebGPU: use shader-f16 where the adapter has it (default true; false exercises the 32-bit-word path). */
  shaderF16?: boolean;
  /** WebGPU: largest storage binding to use (default: the adapter's limit; smaller splits matrices into row blocks). */
  gpuMaxBindingBytes?: number;
  /** Where converted images of Hugging Face folders are kept (default $FLASHNEURON_CACHE or ~/.cache/flashneuron). */
  cacheDir?: string;
}

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate at most (default 128). */
  maxTokens?: number;
  /** Stop at the end-of-sequence token (default true). */
  stopAtEos?: boolean;
  signal?: AbortSignal;
}

export interface GeneratedToken {
  id: number;
  /** Text this token completes (may be empty while a UTF-8 character is still incomplete). */
  text: string;
}

export interface GenerationStats extends FlashStats {
  prompt_tokens: number;
  tokens: number;
  prompt_ms: number;
  tokens_per_s: number;
  memory_bytes: number;
  simd: boolean;
}

/** Per-token cost as in the paper: flash I/O, neuron-cache management, compute (decode phase). */
export interface FlashStats {
  mode: string;
  /** What ran the arithmetic: "wasm simd", or the WebGPU adapter. */
  device: string;
  ms_per_token: number;
  bytes_read_per_token: number;
  reads_per_token: number;
  io_ms_per_token: number;
  mem_ms_per_token: number;
  compute_ms_per_token: number;
  /** The predictor's share of compute_ms_per_token (sparse mode). */
  predictor_ms_per_token: number;
  ffn_bytes_total: number;
  model_bytes: number;
  resident_bytes_peak: number;
  /** How the resident matrices are held: as stored in the image, or quantized to Q8_0 at load. */
  resident_dtype: 'stored' | 'q8_0';
  /** Share of the FFN the neuron caches can hold (1 in dense mode). */
  ffn_cache_fraction: number;
  /** Share of the FFN read per token. */
  ffn_read_fraction: number;
}

export interface Completion {
  prompt_ids: number[];
  ids: number[];
  text: string;
  stats: GenerationStats;
}

export interface PerplexityOptions {
  /** Tokens per window including the BOS that starts it (default: the context length). */
  context?: number;
  /** Tokens scored per window after the first (default window/2); the rest is context. */
  stride?: number;
  onProgress?: Progress;
  signal?: AbortSignal;
}

export class Model {
  /** Stats of the last generate() run. */
  lastStats: GenerationStats | undefined;

  /** With checkPredictor: a dense engine run alongside, and per-layer predictor tallies. */
  private shadow: Engine | undefined;
  private tally: { truth: number; predicted: number; hit: number }[] = [];

  constructor(readonly engine: Engine, readonly tokenizer: Tokenizer, readonly path: string) {}

  /**
   * Measures the predictor against the truth: a dense engine (outside the budget) runs every
   * token too, and predictorCheck() reports per layer recall and predicted ÷ true set size.
   */
  checkPredictor(): void {
    if (this.engine.mode !== 'sparse') throw new Error('--check-predictor needs sparse mode');
    this.shadow ??= Engine.open(new FileSource((this.engine.source as FileSource).path ?? this.path));
    this.tally = Array.from({ length: this.config.nLayers }, () => ({ truth: 0, predicted: 0, hit: 0 }));
  }

  predictorCheck(): { layer: number; recall: number; over_prediction: number; true_share: number; predicted_share: number }[] | undefined {
    if (!this.shadow) return undefined;
    const ffn = this.config.ffn;
    return this.tally.map((t, l) => ({
      layer: l, recall: round(t.truth ? t.hit / t.truth : 1), over_prediction: round(t.truth ? t.predicted / t.truth : 0),
      true_share: round(t.truth / this.checked / ffn), predicted_share: round(t.predicted / this.checked / ffn),
    }));
  }

  private checked = 0;

  /** One forward pass (plus the dense shadow's, when checking the predictor). */
  private async step(id: number, pos: number): Promise<void> {
    await this.engine.forwardAsync(id, pos);
    if (!this.shadow) return;
    this.shadow.forward(id, pos);
    this.checked++;
    for (let l = 0; l < this.config.nLayers; l++) {
      const acts = this.shadow.activations(l), pred = this.engine.predicted(l), t = this.tally[l];
      for (let i = 0; i < acts.length; i++) if (acts[i] !== 0) t.truth++;
      t.predicted += pred.length;
      for (let i = 0; i < pred.length; i++) if (acts[pred[i]] !== 0) t.hit++;
    }
  }

  get config(): ModelConfig { return this.engine.config; }

  tokenize(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    return this.tokenizer.encode(text, opts);
  }

  /** Streams generated tokens; the prompt is encoded with the tokenizer's special tokens (BOS). */
  async *generate(prompt: string | number[], opts: GenerateOptions = {}): AsyncGenerator<GeneratedToken, Completion> {
    const ids = typeof prompt === 'string' ? this.tokenize(prompt) : prompt;
    if (ids.length === 0) throw new Error('the prompt encodes to no tokens (the tokenizer adds no BOS): give some text');
    const maxTokens = opts.maxTokens ?? 128;
    const room = this.engine.contextLength - ids.length;
    if (room <= 0) throw new Error(`the prompt has ${ids.length} tokens; the context holds ${this.engine.contextLength}`);
    const sampler = new Sampler(this.config.vocab, opts);
    const decoder = this.tokenizer.decoder({ skipSpecialTokens: true });
    const eos = new Set(this.config.eosIds);
    const out: number[] = [];
    let text = '';

    // Greedy on a GPU that can chain tokens: prompt logits stay on the GPU, and so does the loop.
    const b = this.engine.backend;
    const chain = sampler.temperature === 0 && !this.shadow && b.canChain === true && b.greedy !== undefined;
    const t0 = now();
    this.engine.reset();
    for (let p = 0; p < ids.length; p++) {
      if (chain) await this.engine.forwardAsync(ids[p], p, false);
      else await this.step(ids[p], p);
    }
    this.engine.resetStats();
    const t1 = now();
    const limit = Math.min(maxTokens, room);
    // Next ids: chained on the GPU (in batches), or sampled here, each run through the model
    // only when the loop asks for one more (the last one never is).
    const next = limit <= 0 ? [] : chain ? flat(b.greedy!(ids.length, limit)) : this.sampled(sampler, ids.length);
    for await (const id of next) {
      if (opts.signal?.aborted) break;
      out.push(id);
      const piece = decoder.push(id);
      text += piece;
      if ((opts.stopAtEos ?? true) && eos.has(id)) break;
      yield { id, text: piece };
      if (out.length >= limit) break;
    }
    const rest = decoder.flush();
    text += rest;
    if (rest) yield { id: -1, text: rest };
    const t2 = now();
    const n = out.length;
    // The last sampled token is not run through the model: n - 1 forward passes since t1.
    const stats: GenerationStats = {
      prompt_tokens: ids.length,
      tokens: n,
      prompt_ms: round(t1 - t0),
      tokens_per_s: round(n ? (1000 * n) / (t2 - t1) : 0),
      memory_bytes: this.engine.memoryBytes,
      simd: this.engine.simd,
      ...this.flashStats(Math.max(1, n - 1), t2 - t1),
      ms_per_token: round(n ? (t2 - t1) / n : 0),
    };
    this.lastStats = stats;
    return { prompt_ids: ids, ids: out, text, stats };
  }

  /** Ids sampled from the logits, each run through the model before the next is sampled. */
  private async *sampled(sampler: Sampler, pos: number): AsyncGenerator<number, void> {
    for (;;) {
      const id = sampler.sample(this.engine.logits());
      yield id;
      await tick();
      await this.step(id, pos++);
    }
  }

  /** Runs generate() to the end and returns ids, text and stats. */
  async complete(prompt: string | number[], opts: GenerateOptions = {}): Promise<Completion> {
    const it = this.generate(prompt, opts);
    for (;;) {
      const r = await it.next();
      if (r.done) return r.value;
    }
  }

  /**
   * Perplexity of `text`: the text is encoded once (with BOS), then cut into windows of `window`
   * tokens. Each window restarts the KV cache with BOS followed by its slice; the first window
   * scores every token, later ones overlap the previous by window - stride tokens and score only
   * their last `stride` tokens, so every token is scored once with at least that much context.
   */
  async perplexity(text: string, opts: PerplexityOptions = {}): Promise<{ tokens: number; nll: number; ppl: number; stats: FlashStats }> {
    const all = this.tokenize(text);
    const bos = this.config.bosId;
    const body = all[0] === bos ? all.slice(1) : all;
    const window = Math.min(opts.context ?? this.engine.contextLength, this.engine.contextLength);
    if (window < 2) throw new Error(`context must be at least 2 tokens (got ${window})`);
    this.engine.resetStats();
    const t0 = now();
    let passes = 0;
    const span = window - 1; // tokens of text per window after BOS
    const stride = Math.min(opts.stride ?? Math.max(1, span >> 1), span);
    let nll = 0, scored = 0, start = 0, scoredUpTo = 0;
    for (;;) {
      if (opts.signal?.aborted) throw new Error('aborted');
      const end = Math.min(start + span, body.length);
      this.engine.reset();
      let prev = bos;
      for (let i = start; i < end; i++) {
        await this.step(prev, i - start);
        passes++;
        if (i >= scoredUpTo) { nll -= logSoftmaxAt(this.engine.logits(), body[i]); scored++; }
        prev = body[i];
      }
      scoredUpTo = end;
      opts.onProgress?.(end, body.length, 'perplexity');
      if (end >= body.length) break;
      start = end - (span - stride);
      await tick();
    }
    const stats = this.flashStats(passes, now() - t0);
    return { tokens: scored, nll: scored ? nll / scored : 0, ppl: scored ? Math.exp(nll / scored) : NaN, stats };
  }

  /** Engine counters since resetStats(), per token over `tokens` forward passes taking `ms`. */
  flashStats(tokens: number, ms: number): FlashStats {
    const e = this.engine, s = e.stats(), t = Math.max(1, tokens);
    const cfg = e.config;
    const cached = e.flash ? e.memory.cache_rows.reduce((a, b) => a + b, 0) / (cfg.ffn * cfg.nLayers) : 1;
    return {
      mode: e.mode,
      device: e.backend.name,
      ms_per_token: round(ms / t),
      bytes_read_per_token: Math.round(s.bytes_read / t),
      reads_per_token: round(s.reads / t),
      io_ms_per_token: round(s.io_ms / t),
      mem_ms_per_token: round(s.mem_ms / t),
      compute_ms_per_token: round(Math.max(0, ms - s.io_ms - s.mem_ms) / t),
      predictor_ms_per_token: round(s.predict_ms / t),
      ffn_bytes_total: e.ffnBytes,
      model_bytes: e.source.size,
      resident_bytes_peak: e.memoryBytes,
      resident_dtype: e.memory.resident_dtype,
      ffn_cache_fraction: round(cached),
      ffn_read_fraction: round(s.bytes_read / t / e.ffnBytes),
    };
  }

  /** Greedy next token after `ids` (a fresh sequence). */
  nextToken(ids: number[]): number {
    this.engine.reset();
    ids.forEach((id, p) => this.engine.forward(id, p));
    return argmax(this.engine.logits());
  }

  close(): void { this.engine.close(); this.shadow?.close(); }
}

/**
 * Loads a model: a flashneuron image file, or a Hugging Face folder (converted once into the
 * cache dir, keyed by its files' sizes and dates). Without a path: the embedded default model.
 */
export async function loadModel(path: string = DEFAULT_MODEL, opts: LoadOptions = {}): Promise<Model> {
  const full = resolve(path);
  if (!existsSync(full)) throw new Error(`model not found: ${path}`);
  const image = await resolveImage(full, opts);
  const size = statSync(image).size;
  if (opts.layout === 'split' && !statSync(full).isDirectory() && readImageHeaderFile(image).ffn.layout !== 'split') {
    throw new Error(`${path} has bundled FFNs; for the unbundled ablation give the Hugging Face folder or an image converted with --no-bundle`);
  }
  const memoryBytes = opts.memory === undefined ? undefined : parseMemory(opts.memory, size);
  const mode = opts.mode ?? (memoryBytes !== undefined ? 'sparse' : 'dense');
  let predictor: Predictor | undefined;
  if (mode === 'sparse' && !opts.oracle) {
    const p = opts.predictorPath ?? predictorPath(statSync(full).isDirectory() ? full : image);
    if (!existsSync(p)) {
      throw new Error(`sparse mode needs a sparsity predictor for this model and there is none at ${p}: ` +
        `train one with "flashneuron train-predictor --model ${path} TEXT_FILE", or use --mode naive or hybrid`);
    }
    predictor = loadPredictor(p, modelFingerprint(readImageHeaderFile(image)));
  }
  // Host-issued reads are planned from the device profile (flashneuron probe), or this machine
  // class's defaults; WASI reads of unknown cache state minimise bytes instead.
  let planner = opts.planner;
  if (!planner && (opts.io === 'async' || opts.direct)) {
    const prof = loadProfile();
    const qd = opts.queueDepth ?? 32;
    // Marginal costs in a batch: one more read, one more byte.
    const base = estimateUs(prof, 1, 0, qd);
    planner = {
      opUs: (estimateUs(prof, 1001, 0, qd) - base) / 1000,
      byteUs: (estimateUs(prof, 1, 1 << 20, qd) - base) / (1 << 20),
      gapBytes: mergeGapBytes(prof, qd),
    };
  }
  // The WebGPU backend takes f32/f16/bf16 weights: asked for, it gets them as stored. (With
  // device 'auto' the choice does not depend on the runtime; Q8_0 weights keep it on the wasm.)
  const residentDtype = opts.residentDtype ?? (opts.device === 'gpu' ? 'stored' : 'auto');
  const engine = Engine.open(image, {
    ...opts, mode, memoryBytes, planner, residentDtype, predictor: predictor && pickRank(predictor, opts.predictorRank, opts.predictorDtype),
    kvDtype: opts.kvDtype ?? (memoryBytes !== undefined ? 'f16' : 'f32'),
  });
  try {
    if (opts.device && opts.device !== 'cpu') await engine.setDevice(opts.device, { shaderF16: opts.shaderF16, maxBindingBytes: opts.gpuMaxBindingBytes });
    const tokenizer = opts.tokenizer ?? Tokenizer.fromJSON(engine.tokenizerJson, engine.header.tokenizer_config as any);
    return new Model(engine, tokenizer, full);
  } catch (e) {
    engine.close();
    throw e;
  }
}

/** The tokenizer of a model (image or Hugging Face folder) without loading its weights. */
export async function loadTokenizer(path: string = DEFAULT_MODEL, opts: LoadOptions = {}): Promise<Tokenizer> {
  const full = resolve(path);
  if (!existsSync(full)) throw new Error(`model not found: ${path}`);
  const image = await resolveImage(full, opts);
  const src = new FileSource(image);
  try {
    const h = readImageHeader(src);
    return Tokenizer.fromJSON(readTokenizerJson(src, h), h.tokenizer_config as any);
  } finally { src.close(); }
}

/**
 * The predictor at the rank to run: the one asked for, else under a budget the rung expected to
 * read least. A smaller rank predicts more neurons (its predicted_share, measured on held-out
 * text) but leaves more rows for the neuron caches; each cached row saves about (1 - FRESH) of a
 * read per token, FRESH being the share of a token's neurons a window does not hold.
 */
export function pickRank(p: Predictor, rank: number | undefined, dtype: 'f16' | 'q8_0' = 'q8_0'): (room: number, rowBytes: number) => EnginePredictor {
  const FRESH = 0.3;
  return (room, rowBytes) => {
    if (rank !== undefined) return enginePredictor(truncatePredictor(p, rank));
    if (!Number.isFinite(room) || !p.rungs?.length) return enginePredictor(p);
    let best = p.rungs[0].rank, bestReads = Infinity;
    for (const r of p.rungs) {
      const rows = (room - predictorBytesAt(p, r.rank, dtype)) / rowBytes;
      if (rows < 16 * p.nLayers) continue;
      const wanted = r.layers.reduce((a, L) => a + L.predicted_share * p.ffn, 0);
      const reads = wanted - Math.min(rows, wanted) * (1 - FRESH);
      if (reads < bestReads) { best = r.rank; bestReads = reads; }
    }
    return enginePredictor(truncatePredictor(p, best));
  };
}

/** The engine's view of a trained predictor: per-layer weights, thresholds and expected set sizes. */
function enginePredictor(p: Predictor): EnginePredictor {
  return {
    rank: p.rank,
    layers: p.layers.map((L, l) => ({ ...L, predicted_share: p.report?.layers?.[l]?.predicted_share })),
  };
}

/** "60%" of the model's bytes, "300MB", "1.5GiB", "123456" or a number of bytes. */
export function parseMemory(v: number | string, modelBytes: number): number {
  if (typeof v === 'number') {
    if (!(v > 0)) throw new Error(`memory budget must be positive (got ${v})`);
    return Math.floor(v);
  }
  const m = /^\s*([0-9]*\.?[0-9]+)\s*(%|[kmg]i?b?|b)?\s*$/i.exec(v);
  if (!m) throw new Error(`memory budget "${v}" is neither bytes (e.g. 300MB, 1.5GiB) nor a share of the model (e.g. 60%)`);
  const x = Number(m[1]), unit = (m[2] ?? 'b').toLowerCase();
  if (unit === '%') {
    if (!(x > 0 && x <= 100)) throw new Error(`memory budget ${v} must be a share between 0 and 100%`);
    return Math.floor(modelBytes * x / 100);
  }
  const scale = unit.startsWith('k') ? 1 << 10 : unit.startsWith('m') ? 1 << 20 : unit.startsWith('g') ? 1 << 30 : 1;
  const bytes = Math.floor(x * scale);
  if (!(bytes > 0)) throw new Error(`memory budget must be positive (got ${v})`);
  return bytes;
}

export function cacheDir(opts: { cacheDir?: string } = {}): string {
  return opts.cacheDir ?? process.env.FLASHNEURON_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'flashneuron');
}

/**
 * The image to run for `path`: an image as it is; a Hugging Face folder or a llama GGUF file
 * converted once into the cache (and reused while its files are unchanged).
 */
export async function resolveImage(path: string, opts: LoadOptions = {}): Promise<string> {
  if (statSync(path).isDirectory()) return cachedImage(path, opts);
  if (!isGGUF(path)) return path;
  const s = statSync(path);
  const key = crc32(new TextEncoder().encode(`${VERSION}|gguf|${resolve(path)}|${s.size}|${s.mtimeMs}`)).toString(16).padStart(8, '0');
  const out = join(cacheDir(opts), `${basename(path).replace(/\.gguf$/i, '')}-${key}.fnimg`);
  if (!existsSync(out)) {
    mkdirSync(cacheDir(opts), { recursive: true });
    const ckpt = openGGUFCheckpoint(path);
    try { writeImageFile(ckpt, out, opts.onProgress); } finally { ckpt.close(); }
  }
  // A PowerInfer-style file's predictor becomes the image's sidecar, where sparse mode finds it.
  const sidecar = predictorPath(out);
  if (!existsSync(sidecar)) {
    const predictor = readGGUFPredictor(path, modelFingerprint(readImageHeaderFile(out)));
    if (predictor) savePredictor(sidecar, predictor);
  }
  return out;
}

function isGGUF(path: string): boolean {
  const src = new FileSource(path);
  try {
    const b = new Uint8Array(4);
    return src.pread(b, 0) === 4 && new DataView(b.buffer).getUint32(0, true) === GGUF_MAGIC;
  } finally { src.close(); }
}

/** Image path for a Hugging Face folder, converting it when no current image exists. */
export async function cachedImage(dir: string, opts: LoadOptions = {}): Promise<string> {
  if (!existsSync(join(dir, 'config.json'))) throw new Error(`${dir}: not a Hugging Face model folder (no config.json)`);
  const stamp = readdirSync(dir).sort()
    .filter((f) => /\.(json|safetensors)$/.test(f))
    .map((f) => { const s = statSync(join(dir, f)); return `${f}:${s.size}:${s.mtimeMs}`; }).join('|');
  const layout = opts.layout ?? 'bundled';
  const key = crc32(new TextEncoder().encode(`${VERSION}|${resolve(dir)}|${stamp}`)).toString(16).padStart(8, '0');
  const out = join(cacheDir(opts), `${basename(dir)}-${key}${layout === 'split' ? '-split' : ''}.fnimg`);
  if (!existsSync(out)) {
    mkdirSync(cacheDir(opts), { recursive: true });
    await convertHF(dir, out, opts.onProgress, { layout });
  }
  return out;
}

async function* flat<T>(batches: AsyncIterable<T[]>): AsyncGenerator<T, void> {
  for await (const batch of batches) yield* batch;
}

function logSoftmaxAt(logits: Float32Array, id: number): number {
  let m = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > m) m = logits[i];
  let s = 0;
  for (let i = 0; i < logits.length; i++) s += Math.exp(logits[i] - m);
  return logits[id] - m - Math.log(s);
}

const now = () => performance.now();
const round = (x: number) => Math.round(x * 1000) / 1000;

/** Lets timers and abort signals run between tokens without the 1 ms clamp of setTimeout. */
function tick(): Promise<void> {
  if (typeof setImmediate === 'function') return new Promise((r) => setImmediate(r));
  // Browsers: a message to ourselves is a macrotask without setTimeout's 1–4 ms clamp.
  return new Promise((r) => { waiting.push(r); channel().postMessage(0); });
}

const waiting: (() => void)[] = [];
let ch: MessagePort | undefined;
function channel(): MessagePort {
  if (!ch) {
    const c = new MessageChannel();
    c.port1.onmessage = () => waiting.shift()?.();
    ch = c.port2;
  }
  return ch;
}
