// Synthetic models of real shapes (OPT-1.3B, OPT-6.7B, Llama-2-7B, ...) with seeded random
// weights: images for benchmarks at sizes no test fixture has. The weights are random, so the
// text is noise; what is real is every byte's size and place, hence every read and every FLOP.
// They carry opt-relu-mini's tokenizer (its ids lie within every shape's vocabulary).
import type { ModelConfig } from './config.js';
import { DType, DTYPE_BYTES, tensorBytes } from './dtype.js';
import type { HFCheckpoint } from './hf.js';
import { modelTensors, requiredTensors } from './hf.js';

const OPT = { architecture: 'OPTForCausalLM', arch: 'opt', ropeTheta: 0, posOffset: 2, tieWordEmbeddings: true, attnBias: true, mlpBias: true,
  hasGate: false, act: 'relu', normEps: 1e-5, bosId: 2, eosIds: [2], padId: 1, vocab: 50272, maxPositions: 2048 } as const;
const LLAMA = { architecture: 'LlamaForCausalLM', arch: 'llama', ropeTheta: 10000, posOffset: 0, tieWordEmbeddings: false, attnBias: false, mlpBias: false,
  hasGate: true, act: 'relu', normEps: 1e-5, bosId: 1, eosIds: [2], padId: 0, vocab: 32000, maxPositions: 4096 } as const;

/** Shapes by name: the published configs (Llama with ReLU, as ReluLLaMA). */
export const SHAPES: Record<string, ModelConfig> = {
  'opt-125m': { ...OPT, eosIds: [2], nLayers: 12, hidden: 768, ffn: 3072, nHeads: 12, nKvHeads: 12, headDim: 64 },
  'opt-1.3b': { ...OPT, eosIds: [2], nLayers: 24, hidden: 2048, ffn: 8192, nHeads: 32, nKvHeads: 32, headDim: 64 },
  'opt-6.7b': { ...OPT, eosIds: [2], nLayers: 32, hidden: 4096, ffn: 16384, nHeads: 32, nKvHeads: 32, headDim: 128 },
  'llama-2-7b': { ...LLAMA, eosIds: [2], nLayers: 32, hidden: 4096, ffn: 11008, nHeads: 32, nKvHeads: 32, headDim: 128 },
  /** Not a published model: Llama-2-7B's layout at a size for tests (≈ 20 MB in int4). */
  'tiny-llama': { ...LLAMA, eosIds: [2], nLayers: 4, hidden: 256, ffn: 1024, nHeads: 4, nKvHeads: 4, headDim: 64, maxPositions: 512 },
};

/**
 * A checkpoint of `shape` whose tensors are generated on demand: matrices uniform with std
 * ≈ 0.5/√fan_in in f16/bf16/f32 (a stable residual stream), norm weights 1, biases small.
 */
export function synthCheckpoint(shape: string, tokenizer: { json: string; config?: Record<string, unknown> }, dtype: DType = 'f16', seed = 1): HFCheckpoint {
  const cfg = SHAPES[shape];
  if (!cfg) throw new Error(`unknown shape ${shape} (one of ${Object.keys(SHAPES).join(', ')})`);
  const config: ModelConfig = { ...cfg, eosIds: [...cfg.eosIds] };
  const tensors = modelTensors(config);
  const specs = new Map(requiredTensors(tensors).map((t) => [t.name, t]));
  const info = (name: string) => {
    const t = specs.get(name);
    if (!t) throw new Error(`synthetic checkpoint has no tensor ${name}`);
    const vector = t.shape.length === 1;
    return { t, vector, dtype: (vector ? 'f32' : dtype) as DType };
  };
  return {
    dir: `synthetic:${shape}`,
    origin: `synthetic ${shape} ${dtype} seed ${seed}`,
    config,
    rawConfig: {},
    tensors,
    tokenizerJson: tokenizer.json,
    tokenizerConfig: tokenizer.config,
    tensor(name) {
      const { t, dtype: dt } = info(name);
      return { name, stDtype: dt.toUpperCase(), dtype: dt, shape: t.shape, file: 'synthetic', offset: 0, length: tensorBytes(dt, t.shape) } as ReturnType<HFCheckpoint['tensor']>;
    },
    readTensor(name, dst) {
      const { t, vector, dtype: dt } = info(name);
      const n = t.shape.reduce((a, b) => a * b, 1);
      const bytes = n * DTYPE_BYTES[dt];
      const out = dst && dst.length >= bytes ? dst.subarray(0, bytes) : new Uint8Array(bytes);
      let s = (hash(name) ^ seed) >>> 0 || 1;
      if (vector) {
        const f = new Float32Array(out.buffer, out.byteOffset, n);
        const isWeight = /norm|layernorm|ln/i.test(name) && name.endsWith('weight');
        for (let i = 0; i < n; i++) { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; f[i] = isWeight ? 1 : ((s >>> 0) / 2 ** 32 - 0.5) * 0.02; }
        return out;
      }
      const fanIn = t.shape[t.shape.length - 1];
      // Uniform on ±a has std a/√3: a = 0.87/√fan_in gives std ≈ 0.5/√fan_in.
      const a = 0.87 / Math.sqrt(fanIn);
      if (dt === 'f32') {
        const f = new Float32Array(out.buffer, out.byteOffset, n);
        for (let i = 0; i < n; i++) { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; f[i] = ((s >>> 0) / 2 ** 32 * 2 - 1) * a; }
        return out;
      }
      // Halves straight from bits: a random sign and mantissa, exponents spread over [a/16, a).
      const u16 = new Uint16Array(out.buffer, out.byteOffset, n);
      const top = Math.floor(Math.log2(a));
      const bias = dt === 'f16' ? 15 : 127, mbits = dt === 'f16' ? 10 : 7;
      for (let i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
        const r = s >>> 0;
        const e = top - (r & 3) + bias;
        u16[i] = ((r >>> 31) << 15) | (e << mbits) | ((r >>> 2) & ((1 << mbits) - 1));
      }
      return out;
    },
    close() {},
  };
}


function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/**
 * Which neurons fire, token after token, in place of a trained predictor on random weights:
 * neuron i of a layer fires with long-run probability p_i drawn from a power law (a few hot
 * neurons, a long cold tail; mean `active`) and tends to keep its state across tokens (a
 * two-state Markov chain that stays on with probability max(stay, p_i)), as the paper observed
 * for OPT-6.7B (§3.1: ≈ 10 % of the FFN active per token, most of it shared with recent tokens).
 */
export class ActivationModel {
  private readonly p: Float32Array[] = [];
  private readonly on: Uint8Array[] = [];
  /** Per neuron: the chance to stay on, and to turn on (the chain's two transitions). */
  private readonly stayOn: Float64Array[] = [];
  private readonly turnOn: Float64Array[] = [];
  private s: number;
  /** The state after construction, for reset(). */
  private readonly start: { s: number; on: Uint8Array[] };

  constructor(readonly nLayers: number, readonly ffn: number, readonly opts: { active?: number; stay?: number; alpha?: number; seed?: number } = {}) {
    const active = opts.active ?? 0.1, alpha = opts.alpha ?? 0.6, stay = opts.stay ?? 0.7;
    this.s = (opts.seed ?? 7) >>> 0 || 1;
    for (let l = 0; l < nLayers; l++) {
      const w = new Float32Array(ffn);
      for (let i = 0; i < ffn; i++) w[i] = (i + 1) ** -alpha;
      // Shuffle which neuron is hot, then scale to the mean share (capped below 1).
      for (let i = ffn - 1; i > 0; i--) { const j = Math.floor(this.rand() * (i + 1)); const t = w[i]; w[i] = w[j]; w[j] = t; }
      let scale = active * ffn / w.reduce((a, b) => a + b, 0);
      for (let it = 0; it < 8; it++) {
        const mean = w.reduce((a, b) => a + Math.min(0.95, b * scale), 0) / ffn;
        scale *= active / mean;
      }
      const p = w.map((v) => Math.min(0.95, v * scale));
      const on = new Uint8Array(ffn), a = new Float64Array(ffn), b = new Float64Array(ffn);
      for (let i = 0; i < ffn; i++) {
        on[i] = this.rand() < p[i] ? 1 : 0;
        a[i] = Math.max(stay, p[i]); b[i] = p[i] * (1 - a[i]) / (1 - p[i]);   // stationary share p_i
      }
      this.p.push(p); this.on.push(on); this.stayOn.push(a); this.turnOn.push(b);
    }
    this.start = { s: this.s, on: this.on.map((o) => o.slice()) };
  }

  /** The next token's firing neurons of every layer (ascending ids). */
  next(): Int32Array[] {
    const buf = new Int32Array(this.ffn);
    return this.p.map((_, l) => buf.slice(0, this.fill(l, buf, 0)));
  }

  /**
   * Moves layer `l` on by one token (layers in order, as next() does) and writes its firing
   * neurons' ids, ascending, into `out` from `at`; returns how many. Allocates nothing.
   */
  fill(l: number, out: Int32Array, at: number): number {
    const on = this.on[l], a = this.stayOn[l], b = this.turnOn[l];
    let n = 0;
    for (let i = 0; i < this.ffn; i++) {
      const v = this.rand() < (on[i] ? a[i] : b[i]) ? 1 : 0;
      on[i] = v;
      if (v) out[at + n++] = i;
    }
    return n;
  }

  /** Back to the state after construction: the same sets again, token after token. */
  reset(): void {
    this.s = this.start.s;
    this.start.on.forEach((o, l) => this.on[l].set(o));
  }

  private rand(): number {
    let s = this.s;
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    this.s = s >>> 0;
    return this.s / 2 ** 32;
  }
}
