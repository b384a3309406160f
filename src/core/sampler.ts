// Next-token choice from logits: greedy, or temperature with top-k / top-p, from a seeded RNG.
// Buffers are allocated once per sampler; sample() allocates nothing.

export interface SamplingOptions {
  /** 0 = greedy (argmax). Default 0.8. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 = off). Default 40. */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p (1 = off). Default 0.95. */
  topP?: number;
  /** RNG seed; random when absent. */
  seed?: number;
}

export class Sampler {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  private state: number;
  private probs: Float32Array;
  private order: Uint32Array;

  constructor(vocab: number, opts: SamplingOptions = {}) {
    this.temperature = opts.temperature ?? 0.8;
    this.topK = Math.max(0, Math.floor(opts.topK ?? 40));
    this.topP = opts.topP ?? 0.95;
    if (!(this.temperature >= 0)) throw new Error(`temperature must be ≥ 0 (got ${opts.temperature})`);
    if (!(this.topP > 0 && this.topP <= 1)) throw new Error(`top-p must be in (0, 1] (got ${opts.topP})`);
    this.state = (opts.seed ?? Math.floor(Math.random() * 2 ** 32)) >>> 0;
    this.probs = new Float32Array(vocab);
    this.order = new Uint32Array(vocab);
  }

  /** Uniform in [0, 1) — mulberry32. */
  random(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  sample(logits: Float32Array): number {
    if (this.temperature === 0) return argmax(logits);
    const n = logits.length, p = this.probs;
    let m = -Infinity;
    for (let i = 0; i < n; i++) if (logits[i] > m) m = logits[i];
    let sum = 0;
    for (let i = 0; i < n; i++) { p[i] = Math.exp((logits[i] - m) / this.temperature); sum += p[i]; }

    // Candidates in descending probability: only as many as top-k needs, else all with mass.
    let count = 0;
    for (let i = 0; i < n; i++) if (p[i] > 0) this.order[count++] = i;
    const cand = this.order.subarray(0, count);
    const k = this.topK > 0 ? Math.min(this.topK, count) : count;
    partialSortDesc(cand, p, k);

    let kept = 0, mass = 0;
    while (kept < k) { mass += p[cand[kept++]]; if (mass >= this.topP * sum) break; }
    let r = this.random() * mass;
    for (let i = 0; i < kept; i++) { r -= p[cand[i]]; if (r < 0) return cand[i]; }
    return cand[kept - 1];
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
