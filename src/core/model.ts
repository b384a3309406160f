// A loaded model: generate(), complete(), tokenize(), perplexity() over an Engine and its
// tokenizer. Hosts load it through openModel (load.ts): src/node's loadModel, the browser worker.
import type { ModelConfig } from '../format/config.js';
import type { Progress } from '../format/image.js';
import { Engine, type EngineOptions } from './engine.js';
import type { ResolvedOptions, RunOptions } from './options.js';
import { Sampler, SamplingOptions, argmax } from './sampler.js';
import type { Tokenizer } from './tokenizer.js';

export interface LoadOptions extends RunOptions, Omit<EngineOptions, 'onProgress' | 'memoryBytes' | 'predictor' | keyof RunOptions> {
  /** Called while converting a Hugging Face folder and while loading: (done, total, phase). */
  onProgress?: Progress;
  /** Sparse mode's predictor file (default: the one beside the model, see predictorPath()). */
  predictorPath?: string;
  /** SiLU-gated models: the calibrated thresholds file (default: the one calibrate wrote for the model, else beside it). */
  thresholdsPath?: string;
  /** SiLU-gated models: the target sparsity in [0, 1), taken from the calibration's per-layer quantiles (default: the file's). */
  sparsity?: number;
  /** Sparse mode without a predictor: the host supplies the wanted neurons (tests, oracles). */
  oracle?: boolean;
  /** The model's tokenizer when the caller already has it (from loadTokenizer), not parsed again. */
  tokenizer?: Tokenizer;
  /** FFN layout of the image made from a Hugging Face folder: 'split' is the unbundled ablation. */
  layout?: 'bundled' | 'split';
  /** WebGPU: use shader-f16 where the adapter has it (default true; false exercises the 32-bit-word path). */
  shaderF16?: boolean;
  /** WebGPU: largest storage binding to use (default: the adapter's limit; smaller splits matrices into row blocks). */
  gpuMaxBindingBytes?: number;
  /** Where converted images of Hugging Face folders are kept (default $FLASHNEURON_CACHE or ~/.cache/flashneuron). */
  cacheDir?: string;
  /** Tokens the job needs (a prompt plus the tokens asked for): under a budget the KV cache is sized to it. */
  jobTokens?: number;
}

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate at most (default 128). */
  maxTokens?: number;
  /** Stop at the end-of-sequence token (default true). */
  stopAtEos?: boolean;
  /** Generation ends before any of these strings would appear in the text; the text excludes it. */
  stop?: string | string[];
  /** Ends the request: a waiting one rejects with an AbortError, a running one stops at the next token. */
  signal?: AbortSignal;
}

/** A token's natural-log probability under the distribution it was chosen from (after penalties, before temperature). */
export interface TokenLogprob {
  id: number;
  /** The token's own text (decoded alone, special tokens included). */
  token: string;
  logprob: number;
}

export interface GeneratedToken {
  id: number;
  /** Text this token completes (may be empty while a UTF-8 character is still incomplete, or held back as the possible start of a stop string). */
  text: string;
  /** With `logprobs: k`: the chosen token's log-probability and the k most likely tokens' (`top`). */
  logprobs?: TokenLogprob & { top: TokenLogprob[] };
}

export interface GenerationStats extends FlashStats {
  prompt_tokens: number;
  /** Prompt tokens run through the model; the rest were in the KV cache from an earlier request with the same prefix. */
  prefill_tokens: number;
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
  /** Threads that computed: 1, or 1 + the compute workers running (threads option). */
  threads: number;
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
  /**
   * Why generation ended: `stop` (end-of-sequence token or a stop string), `length` (maxTokens),
   * `context` (the KV cache is full: fewer tokens than asked for), `abort` (signal or reader gone).
   */
  finish_reason: 'stop' | 'length' | 'context' | 'abort';
  /** With `logprobs: k`: one entry per generated id. */
  logprobs?: (TokenLogprob & { top: TokenLogprob[] })[];
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

  constructor(readonly engine: Engine, readonly tokenizer: Tokenizer, readonly path: string,
    /** The options the model was loaded with, as resolveOptions decided them. */
    readonly options?: ResolvedOptions) {}

  /**
   * Measures the predictor against the truth: a dense engine (outside the budget) runs every
   * token too, and predictorCheck() reports per layer recall and predicted ÷ true set size.
   */
  checkPredictor(): void {
    if (this.engine.mode !== 'sparse') throw new Error('--check-predictor needs sparse mode');
    this.assertIdle('checkPredictor');
    this.shadow ??= Engine.open((this.engine.source as { path?: string }).path ?? this.path);
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
  private step(id: number, pos: number): Promise<void> | undefined {
    // The wasm with no reads to wait for runs a pass synchronously: nothing to await.
    if (!this.shadow && this.engine.runsSync) { this.engine.forward(id, pos); return undefined; }
    return this.stepAsync(id, pos);
  }

  private async stepAsync(id: number, pos: number): Promise<void> {
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

  // One engine (one KV cache, one neuron cache): requests take turns through a FIFO queue.
  private busy = false;
  private readonly waiters: Waiter[] = [];
  /** Wakes the running generation when a request starts waiting (it then runs ahead of its reader). */
  private onWaiter: (() => void) | undefined;

  /** Resolves when the engine is this request's: every earlier one has ended or left the queue. */
  private acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortError());
    if (!this.busy) { this.busy = true; return Promise.resolve(); }
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        resolve, signal,
        abort: () => { const i = this.waiters.indexOf(w); if (i >= 0) this.waiters.splice(i, 1); reject(abortError()); },
      };
      signal?.addEventListener('abort', w.abort, { once: true });
      this.waiters.push(w);
      this.onWaiter?.();
    });
  }

  /** Hands the engine to the next waiting request, if any. */
  private release(): void {
    const w = this.waiters.shift();
    if (!w) { this.busy = false; return; }
    w.signal?.removeEventListener('abort', w.abort);
    w.resolve();
  }

  /** Sync calls cannot wait their turn: they refuse while a request holds the engine. */
  private assertIdle(what: string): void {
    if (this.busy) throw new Error(`${what}() is synchronous and the model is running a request (generate, complete or perplexity): await it first`);
  }

  tokenize(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    return this.tokenizer.encode(text, opts);
  }

  /**
   * Streams generated tokens; the prompt is encoded with the tokenizer's special tokens (BOS).
   * Requests on one model take turns (a FIFO queue): this one starts once the earlier ones end.
   */
  async *generate(prompt: string | number[], opts: GenerateOptions = {}): AsyncGenerator<GeneratedToken, Completion> {
    const stream = new TokenStream(false);
    this.request(prompt, opts, stream).then((c) => stream.end(c), (e) => stream.fail(e));
    try {
      for (;;) {
        const t = await stream.take();
        if (!t) return stream.result!;
        yield t;
      }
    } finally {
      stream.cancel();
    }
  }

  /** Runs a request to the end and returns ids, text and stats (as generate(), with no tokens streamed). */
  async complete(prompt: string | number[], opts: GenerateOptions = {}): Promise<Completion> {
    return this.request(prompt, opts, new TokenStream(true));
  }

  /** Checks a request and runs it in its turn, into `stream`. */
  private request(prompt: string | number[], opts: GenerateOptions, stream: TokenStream): Promise<Completion> {
    const ids = typeof prompt === 'string' ? this.tokenize(prompt) : checkIds(prompt, this.config.vocab);
    if (ids.length === 0) throw new Error('the prompt encodes to no tokens (the tokenizer adds no BOS): give some text');
    const room = this.engine.contextLength - ids.length;
    if (room <= 0) throw new Error(`the prompt has ${ids.length} tokens; the context holds ${this.engine.contextLength}`);
    const sampler = new Sampler(this.config.vocab, opts);
    const stops = stopStrings(opts.stop);
    const asked = opts.maxTokens ?? 128;
    if (!Number.isInteger(asked) || asked < 0) throw new Error(`maxTokens must be an integer ≥ 0 (got ${asked})`);
    return this.produce(stream, ids, Math.min(asked, room), asked > room, sampler, stops, opts);
  }

  /**
   * The engine loop of one generate() request, in its turn. It computes a token when the reader
   * asks for one, or runs ahead into the stream while another request waits for the engine.
   */
  private async produce(s: TokenStream, ids: number[], limit: number, capped: boolean, sampler: Sampler, stops: string[] | undefined, opts: GenerateOptions): Promise<Completion> {
    await this.acquire(opts.signal);
    const wake = () => s.kick();
    this.onWaiter = wake;
    opts.signal?.addEventListener('abort', wake);
    try {
      sampler.prime(ids);
      const decoder = this.tokenizer.decoder({ skipSpecialTokens: true });
      const eos = new Set(this.config.eosIds);
      const out: number[] = [];
      const lps: Completion['logprobs'] = sampler.logprobs > 0 ? [] : undefined;
      let text = '', held = '', hit = false, finish: Completion['finish_reason'] = 'abort';

      // Greedy on a GPU that can chain tokens: prompt logits stay on the GPU, and so does the loop.
      const b = this.engine.backend;
      const chain = sampler.plainGreedy && !this.shadow && b.canChain === true && b.greedy !== undefined;
      const t0 = now();
      // Positions an earlier request ran with the same tokens keep their keys and values (see
      // Engine.startAt); not with a shadow engine checking the predictor: it has no such history.
      if (this.shadow) this.engine.reset();
      const cached = this.shadow ? 0 : this.engine.startAt(ids);
      for (let p = cached; p < ids.length; p++) {
        if (chain) await this.engine.forwardAsync(ids[p], p, false);
        else await this.step(ids[p], p);
      }
      this.engine.resetStats();
      const t1 = now();
      // Next ids: chained on the GPU (in batches), or sampled here, each run through the model
      // only when the loop asks for one more (the last one never is).
      const chained = limit > 0 && chain ? flat(b.greedy!(ids.length, limit)) : undefined;
      let pos = ids.length;
      try {
        while (limit > 0) {
          let id: number;
          if (chained) {
            const r = await chained.next();
            if (r.done) break;
            id = r.value;
          } else {
            // plain greedy needs only the largest logit: the wasm finds it (the sampler would in JavaScript)
            id = sampler.plainGreedy ? this.engine.argmax() : sampler.sample(this.engine.logits());
          }
          if (opts.signal?.aborted || s.cancelled) { finish = 'abort'; break; }
          out.push(id);
          let piece = decoder.push(id);
          const lp = lps && this.logprobsOf(sampler, id);
          if (lp) lps!.push(lp);
          if ((opts.stopAtEos ?? true) && eos.has(id)) { text += piece; finish = 'stop'; break; }
          if (stops) {
            const t = held + piece, at = findStop(t, stops);
            hit = at >= 0;
            const keep = hit ? at : t.length - heldBack(t, stops);
            piece = t.slice(0, keep);
            held = hit ? '' : t.slice(keep);
          }
          text += piece;
          s.push(lp ? { id, text: piece, logprobs: lp } : { id, text: piece });
          if (hit) { finish = 'stop'; break; }
          if (out.length >= limit) { finish = capped ? 'context' : 'length'; break; }
          const room = s.room(this.waiters, opts.signal);
          if (!(typeof room === 'boolean' ? room : await room)) { finish = 'abort'; break; }
          if (chained) continue;
          // Await only what is pending: a microtask per token is a share of a small model's.
          const yielded = tick();
          if (yielded) await yielded;
          const ran = this.step(id, pos++);
          if (ran) await ran;
        }
      } finally {
        await chained?.return();   // the GPU's chain stops where the loop did
      }
      if (limit <= 0) finish = capped ? 'context' : 'length';
      let rest = hit ? '' : held + decoder.flush();
      if (stops && rest) { const at = findStop(rest, stops); if (at >= 0) rest = rest.slice(0, at); }
      text += rest;
      if (rest) s.push({ id: -1, text: rest });
      const t2 = now();
      const n = out.length;
      // The last sampled token is not run through the model: n - 1 forward passes since t1.
      const stats: GenerationStats = {
        prompt_tokens: ids.length,
        prefill_tokens: ids.length - cached,
        tokens: n,
        prompt_ms: round(t1 - t0),
        tokens_per_s: round(n ? (1000 * n) / (t2 - t1) : 0),
        memory_bytes: this.engine.memoryBytes,
        simd: this.engine.simd,
        ...this.flashStats(Math.max(1, n - 1), t2 - t1),
        ms_per_token: round(n ? (t2 - t1) / n : 0),
      };
      this.lastStats = stats;
      const c: Completion = { prompt_ids: ids, ids: out, text, stats, finish_reason: finish };
      if (lps) c.logprobs = lps;
      return c;
    } finally {
      opts.signal?.removeEventListener('abort', wake);
      this.onWaiter = undefined;
      this.release();
    }
  }

  /** The sampler's log-probabilities of the token it just chose, as objects. */
  private logprobsOf(s: Sampler, id: number): TokenLogprob & { top: TokenLogprob[] } {
    const tok = (i: number) => this.tokenizer.decode([i]);
    const top: TokenLogprob[] = [];
    for (let i = 0; i < s.logprobs; i++) top.push({ id: s.topIds[i], token: tok(s.topIds[i]), logprob: s.topLogprobs[i] });
    return { id, token: tok(id), logprob: s.logprob, top };
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
    if (body.length === 0) throw new Error('perplexity needs text: it encodes to no tokens to score');
    const window = Math.min(opts.context ?? this.engine.contextLength, this.engine.contextLength);
    if (!Number.isInteger(window) || window < 2) throw new Error(`context must be at least 2 tokens (got ${window})`);
    await this.acquire(opts.signal);
    try {
      return await this.score(body, window, opts);
    } finally {
      this.release();
    }
  }

  private async score(body: number[], window: number, opts: PerplexityOptions): Promise<{ tokens: number; nll: number; ppl: number; stats: FlashStats }> {
    const bos = this.config.bosId;
    this.engine.resetStats();
    const t0 = now();
    let passes = 0;
    const span = window - 1; // tokens of text per window after BOS
    if (opts.stride !== undefined && (!Number.isInteger(opts.stride) || opts.stride < 1)) throw new Error(`stride must be an integer ≥ 1 (got ${opts.stride})`);
    const stride = Math.min(opts.stride ?? Math.max(1, span >> 1), span);
    let nll = 0, scored = 0, start = 0, scoredUpTo = 0;
    for (;;) {
      if (opts.signal?.aborted) throw abortError();
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
      threads: e.threads,
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
    this.assertIdle('nextToken');
    this.engine.reset();
    ids.forEach((id, p) => this.engine.forward(id, p));
    return argmax(this.engine.logits());
  }

  close(): void { this.engine.close(); this.shadow?.close(); }
}

interface Waiter { resolve: () => void; signal: AbortSignal | undefined; abort: () => void }

/** Token ids from a caller: integers the vocabulary has, or a one-line error. */
function checkIds(ids: number[], vocab: number): number[] {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new Error(`token id ${id} at position ${i} is not in the vocabulary (integers 0..${vocab - 1})`);
  }
  return ids;
}

function abortError(): Error {
  const e = new Error('the request was aborted');
  e.name = 'AbortError';
  return e;
}

/**
 * A generation's tokens between its engine loop (writer) and its iterator (reader). The writer
 * computes the next token while the reader waits for one, or while another request waits.
 */
class TokenStream {
  /** `collect`: nobody reads the tokens (complete() takes the Completion): they are not kept, and the writer never waits. */
  constructor(private readonly collect: boolean) {}
  cancelled = false;
  result: Completion | undefined;
  private buf: GeneratedToken[] = [];
  private finished = false;
  private failed = false;
  private error: unknown;
  private reader: (() => void) | undefined;
  private writer: (() => void) | undefined;

  push(t: GeneratedToken): void { if (!this.collect) { this.buf.push(t); this.wakeReader(); } }
  end(c: Completion): void { this.result = c; this.finished = true; this.wakeReader(); }
  fail(e: unknown): void { this.error = e; this.failed = this.finished = true; this.wakeReader(); }
  /** The reader is gone: the writer stops at its next check. */
  cancel(): void { this.cancelled = true; this.kick(); }
  kick(): void { const w = this.writer; this.writer = undefined; w?.(); }
  private wakeReader(): void { const r = this.reader; this.reader = undefined; r?.(); }

  /** The next token, or undefined when the generation has ended (result holds it). */
  async take(): Promise<GeneratedToken | undefined> {
    for (;;) {
      if (this.buf.length) return this.buf.shift();
      if (this.finished) { if (this.failed) throw this.error; return undefined; }
      await new Promise<void>((r) => { this.reader = r; this.kick(); });
    }
  }

  /** Whether a token is wanted (false: the generation should end instead), once it is: at once where nothing need be waited for. */
  room(waiters: readonly unknown[], signal: AbortSignal | undefined): boolean | Promise<boolean> {
    if (this.collect || this.reader || waiters.length || this.cancelled || signal?.aborted) return !this.cancelled && !signal?.aborted;
    return this.waitRoom(waiters, signal);
  }

  private async waitRoom(waiters: readonly unknown[], signal: AbortSignal | undefined): Promise<boolean> {
    while (!this.reader && !waiters.length && !this.cancelled && !signal?.aborted) await new Promise<void>((r) => (this.writer = r));
    return !this.cancelled && !signal?.aborted;
  }
}

function stopStrings(stop: string | string[] | undefined): string[] | undefined {
  if (stop === undefined) return undefined;
  const list = typeof stop === 'string' ? [stop] : stop;
  if (!Array.isArray(list) || list.some((x) => typeof x !== 'string' || x.length === 0)) throw new Error('stop must be a non-empty string or an array of them');
  return list.length ? list : undefined;
}

/** Where the first stop string starts in t, or -1. */
function findStop(t: string, stops: string[]): number {
  let at = -1;
  for (const s of stops) { const i = t.indexOf(s); if (i >= 0 && (at < 0 || i < at)) at = i; }
  return at;
}

/** Length of the longest end of t that begins some stop string (held back until it is decided). */
function heldBack(t: string, stops: string[]): number {
  let hold = 0;
  for (const s of stops) {
    for (let k = Math.min(s.length - 1, t.length); k > hold; k--) {
      let j = 0;
      while (j < k && t.charCodeAt(t.length - k + j) === s.charCodeAt(j)) j++;
      if (j === k) { hold = k; break; }
    }
  }
  return hold;
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

// Between tokens the loop lets timers, I/O and abort signals run (a macrotask, without setTimeout's
// 1 ms clamp) once YIELD_MS have passed since it last did: one frame at 60 Hz, so a page or a
// server stays as responsive as a display. Each turn costs more than its 30–45 µs with compute
// workers running: yielding every 4 ms made a small model's tokens 2–4 % slower than every 16
// (Node 24 and Deno, one and two threads). A large model's tokens yield each.
const YIELD_MS = 16;
let lastYield = 0;

/** A macrotask turn when YIELD_MS have passed since the last one, else nothing to wait for. */
function tick(): Promise<void> | undefined {
  const t = now();
  if (t - lastYield < YIELD_MS) return undefined;
  lastYield = t;
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
