// Next-token choice from logits: greedy, or temperature with top-k / top-p / min-p, from a seeded
// RNG; HF's repetition penalty and OpenAI's frequency / presence penalties; log-probabilities.
// Buffers are allocated once per sampler, sized to the vocabulary; sample() allocates nothing.

export interface SamplingOptions {
  /** 0 = greedy (argmax). Default 0.8. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 = off). Default 40. */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p (1 = off). Default 0.95. */
  topP?: number;
  /** Keep only tokens whose probability (after temperature) is at least minP × the most likely one's (0 = off, the default). */
  minP?: number;
  /** Hugging Face's: a logit of a token in the prompt or the output becomes logit / r if > 0, else logit × r (1 = off, the default). */
  repetitionPenalty?: number;
  /** OpenAI's: logit − count × f, count = times the token was generated (0 = off, the default). */
  frequencyPenalty?: number;
  /** OpenAI's: logit − p for every token generated at least once (0 = off, the default). */
  presencePenalty?: number;
  /** Report each chosen token's log-probability and the k most likely alternatives' (0 = off, the default). */
  logprobs?: number;
  /** RNG seed; random when absent. */
  seed?: number;
}

export class Sampler {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly minP: number;
  readonly repetitionPenalty: number;
  readonly frequencyPenalty: number;
  readonly presencePenalty: number;
  /** Alternatives reported per token (0 = no log-probabilities). */
  readonly logprobs: number;
  /** After sample() with logprobs: the chosen token's log-probability ... */
  logprob = NaN;
  /** ... and the `logprobs` most likely tokens with theirs, most likely first. */
  readonly topIds: Uint32Array;
  readonly topLogprobs: Float64Array;
  private state: number;
  private probs: Float32Array;
  private order: Uint32Array;
  /** Penalties: the logits after them, times each token was generated, tokens seen (prompt + output), seen ids. */
  private adj: Float32Array | undefined;
  private counts: Uint32Array | undefined;
  private seen: Uint8Array | undefined;
  private touched: Uint32Array | undefined;
  private nTouched = 0;

  constructor(vocab: number, opts: SamplingOptions = {}) {
    this.temperature = opts.temperature ?? 0.8;
    this.topK = Math.max(0, Math.floor(opts.topK ?? 40));
    this.topP = opts.topP ?? 0.95;
    this.minP = opts.minP ?? 0;
    this.repetitionPenalty = opts.repetitionPenalty ?? 1;
    this.frequencyPenalty = opts.frequencyPenalty ?? 0;
    this.presencePenalty = opts.presencePenalty ?? 0;
    this.logprobs = Math.min(vocab, Math.max(0, Math.floor(opts.logprobs ?? 0)));
    if (!(this.temperature >= 0)) throw new Error(`temperature must be ≥ 0 (got ${opts.temperature})`);
    if (!(this.topP > 0 && this.topP <= 1)) throw new Error(`top-p must be in (0, 1] (got ${opts.topP})`);
    if (!(this.minP >= 0 && this.minP <= 1)) throw new Error(`min-p must be in [0, 1] (got ${opts.minP})`);
    if (!(this.repetitionPenalty > 0 && Number.isFinite(this.repetitionPenalty))) throw new Error(`repetition penalty must be > 0 (got ${opts.repetitionPenalty})`);
    if (!Number.isFinite(this.frequencyPenalty)) throw new Error(`frequency penalty must be a number (got ${opts.frequencyPenalty})`);
    if (!Number.isFinite(this.presencePenalty)) throw new Error(`presence penalty must be a number (got ${opts.presencePenalty})`);
    if (!(this.logprobs >= 0)) throw new Error(`logprobs must be ≥ 0 (got ${opts.logprobs})`);
    this.state = (opts.seed ?? Math.floor(Math.random() * 2 ** 32)) >>> 0;
    this.probs = new Float32Array(vocab);
    this.order = new Uint32Array(vocab);
    this.topIds = new Uint32Array(this.logprobs);
    this.topLogprobs = new Float64Array(this.logprobs);
    if (this.penalized) {
      this.adj = new Float32Array(vocab);
      this.counts = new Uint32Array(vocab);
      this.seen = new Uint8Array(vocab);
      this.touched = new Uint32Array(vocab);
    }
  }

  /** Whether any penalty is on (then the logits are copied and adjusted before choosing). */
  get penalized(): boolean {
    return this.repetitionPenalty !== 1 || this.frequencyPenalty !== 0 || this.presencePenalty !== 0;
  }

  /** Greedy with nothing that needs the logits here: a backend may choose the tokens itself. */
  get plainGreedy(): boolean {
    return this.temperature === 0 && !this.penalized && this.logprobs === 0;
  }

  /** Marks the prompt's tokens as seen (the repetition penalty covers prompt and output). */
  prime(ids: ArrayLike<number>): void {
    if (!this.seen) return;
    for (let i = 0; i < ids.length; i++) this.see(ids[i]);
  }

  /** Uniform in [0, 1) — mulberry32. */
  random(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Chooses the next token and records it as generated (for the penalties). */
  sample(logits: Float32Array): number {
    const l = this.penalize(logits);
    const id = this.temperature === 0 ? argmax(l) : this.draw(l);
    if (this.logprobs > 0) this.report(l, id);
    if (this.counts) { this.see(id); this.counts[id]++; }
    return id;
  }

  /** The logits after the penalties (the input itself when there are none; it is never written). */
  penalize(logits: Float32Array): Float32Array {
    const a = this.adj;
    if (!a) return logits;
    a.set(logits);
    const r = this.repetitionPenalty, f = this.frequencyPenalty, pr = this.presencePenalty;
    const counts = this.counts!, touched = this.touched!;
    for (let j = 0; j < this.nTouched; j++) {
      const id = touched[j];
      let v = a[id];
      if (r !== 1) v = v > 0 ? v / r : v * r;
      const c = counts[id];
      if (c > 0) v -= c * f + pr;
      a[id] = v;
    }
    return a;
  }

  private see(id: number): void {
    if (this.seen![id]) return;
    this.seen![id] = 1;
    this.touched![this.nTouched++] = id;
  }

  /** Temperature, top-k, top-p, then min-p (Hugging Face's order), and a draw from what is left. */
  private draw(logits: Float32Array): number {
    const n = logits.length, p = this.probs;
    let m = -Infinity;
    for (let i = 0; i < n; i++) if (logits[i] > m) m = logits[i];
    let sum = 0;
    for (let i = 0; i < n; i++) { p[i] = Math.exp((logits[i] - m) / this.temperature); sum += p[i]; }

    // Candidates in descending probability: only as many as top-k needs, else all with mass.
    // The most likely token has p = 1, so min-p keeps p ≥ minP; dropping the others before the
    // sort keeps exactly what top-p followed by min-p would.
    const floor = this.minP;
    let count = 0;
    for (let i = 0; i < n; i++) if (p[i] > 0 && p[i] >= floor) this.order[count++] = i;
    const cand = this.order.subarray(0, count);
    const k = this.topK > 0 ? Math.min(this.topK, count) : count;
    partialSortDesc(cand, p, k);

    let kept = 0, mass = 0;
    while (kept < k) { mass += p[cand[kept++]]; if (mass >= this.topP * sum) break; }
    let r = this.random() * mass;
    for (let i = 0; i < kept; i++) { r -= p[cand[i]]; if (r < 0) return cand[i]; }
    return cand[kept - 1];
  }

  /** Log-softmax of the (penalized, untempered) logits at the chosen id and at the k most likely. */
  private report(logits: Float32Array, id: number): void {
    const n = logits.length;
    let m = -Infinity;
    for (let i = 0; i < n; i++) if (logits[i] > m) m = logits[i];
    let s = 0;
    for (let i = 0; i < n; i++) s += Math.exp(logits[i] - m);
    const lse = m + Math.log(s);
    this.logprob = logits[id] - lse;
    const ids = this.order;
    for (let i = 0; i < n; i++) ids[i] = i;
    const k = this.logprobs;
    partialSortDesc(ids, logits, k);
    for (let i = 0; i < k; i++) { this.topIds[i] = ids[i]; this.topLogprobs[i] = logits[ids[i]] - lse; }
  }
}

export function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** Puts the k largest (by score) ids first, in descending order: a size-k min-heap, then a sort of k. */
function partialSortDesc(ids: Uint32Array, score: Float32Array, k: number): void {
  if (k < ids.length) {
    const less = (a: number, b: number) => score[ids[a]] < score[ids[b]];
    const down = (i: number) => {
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < k && less(l, m)) m = l;
        if (r < k && less(r, m)) m = r;
        if (m === i) return;
        const t = ids[i]; ids[i] = ids[m]; ids[m] = t;
        i = m;
      }
    };
    for (let i = (k >> 1) - 1; i >= 0; i--) down(i);
    for (let j = k; j < ids.length; j++) {
      if (score[ids[j]] > score[ids[0]]) { const t = ids[0]; ids[0] = ids[j]; ids[j] = t; down(0); }
    }
  }
  ids.subarray(0, k).sort((a, b) => score[b] - score[a]);
}
