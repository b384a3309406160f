// The public API: loadModel() → Model with generate(), tokenize(), perplexity().
import { existsSync, mkdirSync, statSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ModelConfig } from './config.js';
import { Engine, EngineOptions } from './engine.js';
import { convertHF, crc32, Progress, VERSION } from './image.js';
import { Sampler, SamplingOptions, argmax } from './sampler.js';
import { Tokenizer } from './tokenizer.js';

/** The model shipped inside the package. */
export const DEFAULT_MODEL = fileURLToPath(new URL('../../models/opt-relu-mini', import.meta.url));

export interface LoadOptions extends Omit<EngineOptions, 'onProgress'> {
  /** Called while converting a Hugging Face folder and while loading: (done, total, phase). */
  onProgress?: Progress;
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

export interface GenerationStats {
  prompt_tokens: number;
  tokens: number;
  prompt_ms: number;
  ms_per_token: number;
  tokens_per_s: number;
  memory_bytes: number;
  simd: boolean;
}

export interface Completion {
  prompt_ids: number[];
  ids: number[];
  text: string;
  stats: GenerationStats;
}

export interface PerplexityOptions {
  /** Tokens per window including the BOS that starts it (default: the context length). */
  window?: number;
  /** Tokens scored per window after the first (default window/2); the rest is context. */
  stride?: number;
  onProgress?: Progress;
  signal?: AbortSignal;
}

export class Model {
  /** Stats of the last generate() run. */
  lastStats: GenerationStats | undefined;

  constructor(readonly engine: Engine, readonly tokenizer: Tokenizer, readonly path: string) {}

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

    const t0 = now();
    this.engine.reset();
    for (let p = 0; p < ids.length; p++) this.engine.forward(ids[p], p);
    const t1 = now();
    let pos = ids.length;
    while (out.length < Math.min(maxTokens, room)) {
      if (opts.signal?.aborted) break;
      const id = sampler.sample(this.engine.logits());
      out.push(id);
      const piece = decoder.push(id);
      text += piece;
      if ((opts.stopAtEos ?? true) && eos.has(id)) break;
      yield { id, text: piece };
      await tick();
      if (out.length < Math.min(maxTokens, room)) this.engine.forward(id, pos++);
    }
    const rest = decoder.flush();
    text += rest;
    if (rest) yield { id: -1, text: rest };
    const t2 = now();
    const n = out.length;
    const stats: GenerationStats = {
      prompt_tokens: ids.length,
      tokens: n,
      prompt_ms: round(t1 - t0),
      ms_per_token: round(n ? (t2 - t1) / n : 0),
      tokens_per_s: round(n ? (1000 * n) / (t2 - t1) : 0),
      memory_bytes: this.engine.memoryBytes,
      simd: this.engine.simd,
    };
    this.lastStats = stats;
    return { prompt_ids: ids, ids: out, text, stats };
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
  async perplexity(text: string, opts: PerplexityOptions = {}): Promise<{ tokens: number; nll: number; ppl: number }> {
    const all = this.tokenize(text);
    const bos = this.config.bosId;
    const body = all[0] === bos ? all.slice(1) : all;
    const window = Math.min(opts.window ?? this.engine.contextLength, this.engine.contextLength);
    if (window < 2) throw new Error(`window must be at least 2 tokens (got ${window})`);
    const span = window - 1; // tokens of text per window after BOS
    const stride = Math.min(opts.stride ?? Math.max(1, span >> 1), span);
    let nll = 0, scored = 0, start = 0, scoredUpTo = 0;
    for (;;) {
      if (opts.signal?.aborted) throw new Error('aborted');
      const end = Math.min(start + span, body.length);
      this.engine.reset();
      let prev = bos;
      for (let i = start; i < end; i++) {
        this.engine.forward(prev, i - start);
        if (i >= scoredUpTo) { nll -= logSoftmaxAt(this.engine.logits(), body[i]); scored++; }
        prev = body[i];
      }
      scoredUpTo = end;
      opts.onProgress?.(end, body.length, 'perplexity');
      if (end >= body.length) break;
      start = end - (span - stride);
      await tick();
    }
    return { tokens: scored, nll: scored ? nll / scored : 0, ppl: scored ? Math.exp(nll / scored) : NaN };
  }

  /** Greedy next token after `ids` (a fresh sequence). */
  nextToken(ids: number[]): number {
    this.engine.reset();
    ids.forEach((id, p) => this.engine.forward(id, p));
    return argmax(this.engine.logits());
  }

  close(): void { this.engine.close(); }
}

/**
 * Loads a model: a flashneuron image file, or a Hugging Face folder (converted once into the
 * cache dir, keyed by its files' sizes and dates). Without a path: the embedded default model.
 */
export async function loadModel(path: string = DEFAULT_MODEL, opts: LoadOptions = {}): Promise<Model> {
  const full = resolve(path);
  if (!existsSync(full)) throw new Error(`model not found: ${path}`);
  const image = statSync(full).isDirectory() ? await cachedImage(full, opts) : full;
  const engine = Engine.open(image, opts);
  try {
    const tokenizer = Tokenizer.fromJSON(engine.tokenizerJson, engine.header.tokenizer_config as any);
    return new Model(engine, tokenizer, full);
  } catch (e) {
    engine.close();
    throw e;
  }
}

export function cacheDir(opts: { cacheDir?: string } = {}): string {
  return opts.cacheDir ?? process.env.FLASHNEURON_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'flashneuron');
}

/** Image path for a Hugging Face folder, converting it when no current image exists. */
export async function cachedImage(dir: string, opts: LoadOptions = {}): Promise<string> {
  if (!existsSync(join(dir, 'config.json'))) throw new Error(`${dir}: not a Hugging Face model folder (no config.json)`);
  const stamp = readdirSync(dir).sort()
    .filter((f) => /\.(json|safetensors)$/.test(f))
    .map((f) => { const s = statSync(join(dir, f)); return `${f}:${s.size}:${s.mtimeMs}`; }).join('|');
  const key = crc32(new TextEncoder().encode(`${VERSION}|${resolve(dir)}|${stamp}`)).toString(16).padStart(8, '0');
  const out = join(cacheDir(opts), `${basename(dir)}-${key}.fnimg`);
  if (!existsSync(out)) {
    mkdirSync(cacheDir(opts), { recursive: true });
    await convertHF(dir, out, opts.onProgress);
  }
  return out;
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
  return typeof setImmediate === 'function' ? new Promise((r) => setImmediate(r)) : new Promise((r) => setTimeout(r, 0));
}
