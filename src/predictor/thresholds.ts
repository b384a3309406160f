// Calibrated magnitude thresholds for SiLU-gated models on flash (training-free activation
// sparsity, as TEAL): per layer the |h| = |silu(gate·x)·up·x| below which a target share of the
// FFN's down_proj inputs falls on calibration text. Sparse mode on such a model drops the neurons
// under the cut and reads only the down columns of the rest (assembly/silu.ts).
//
// File format (.fnthr): one line of JSON, UTF-8,
//   { format: 'flashneuron-thresholds', version: 2, fingerprint, statistic: 'abs_silu_gate_up' | 'abs_silu_gate',
//     (the product |silu(gate·x)·up·x|, or CATS' |silu(gate·x)| alone),
//     nLayers, ffn, sparsity, thresholds: [nLayers], quantiles: [nLayers][100], tokens,
//     teal?: { sparsity, cuts: [nLayers][3], quantiles: [nLayers][3][100] }, crc32 }
// teal (version 2, calibrate --teal): TEAL input sparsity of the resident matrices — per layer
// the cuts on |x| of the inputs of q/k/v (the attention norm's output), o (the attention output)
// and gate/up (the FFN norm's output), as thresholds/quantiles are for |h|. Version 1 files
// (no teal) still load.
// quantiles[l][k] is layer l's cut for sparsity k/100 (so a run may pick another sparsity without
// calibrating again); thresholds = the cuts at `sparsity`. crc32 is the CRC-32 of the JSON text of
// the same object without it (keys in this order). decodeThresholds checks all of it and the
// fingerprint of the model it is loaded for. Pure text in, text out: files are src/node's.
import { crc32 } from '../format/crc32.js';
import { f16ToF32, f32ToF16 } from '../format/dtype.js';
import type { ActivationSource } from './types.js';
import { ffnGateWeights, predictorSplits } from './samples.js';
import { tick } from './util.js';

export const THRESHOLDS_FORMAT = 'flashneuron-thresholds';
const VERSION = 2;
/** Versions that load: 1 has no teal part. */
const VERSIONS = [1, 2];
const STATISTICS = ['abs_silu_gate_up', 'abs_silu_gate'] as const;
export type ThresholdStatistic = typeof STATISTICS[number];
const STEPS = 100;

export interface FfnThresholds {
  fingerprint: string;
  /** What is cut: |silu(gate·x)·up·x| (the default rule) or |silu(gate·x)| (CATS). */
  statistic: ThresholdStatistic;
  nLayers: number;
  ffn: number;
  /** The share of down_proj inputs under the cut on calibration text, in [0, 1). */
  sparsity: number;
  /** Per layer: drop neurons with |h| under this. */
  thresholds: number[];
  /** Per layer, the cut for sparsity k/100, k = 0..99. */
  quantiles: number[][];
  /** Tokens the calibration saw. */
  tokens: number;
  /** TEAL input sparsity (calibrate --teal), when calibrated. */
  teal?: TealCuts;
}

/** Per layer the |x| cuts of the three inputs [q/k/v, o, gate/up] at a target share, and at every k/100. */
export interface TealCuts {
  sparsity: number;
  /** [nLayers][3]: entries under these count as zero. */
  cuts: number[][];
  /** [nLayers][3][100]: the cut for share k/100. */
  quantiles: number[][][];
}

/** TEAL cuts [nLayers][3] for another share (interpolated between the calibrated steps), or the calibrated target's. */
export function tealCutsAt(t: TealCuts, sparsity?: number): number[][] {
  if (sparsity === undefined) return t.cuts;
  checkSparsity(sparsity);
  const x = sparsity * STEPS, k = Math.floor(x), f = x - k;
  return t.quantiles.map((g) => g.map((q) => (k + 1 < q.length ? q[k] * (1 - f) + q[k + 1] * f : q[q.length - 1])));
}

/** Checks a sparsity is in [0, 1); a one-line error otherwise. */
export function checkSparsity(s: unknown): number {
  if (!(typeof s === 'number' && Number.isFinite(s) && s >= 0 && s < 1)) throw new Error(`sparsity must be a number ≥ 0 and < 1 (got ${s})`);
  return s;
}

/** Per-layer cuts for another sparsity, interpolated between the calibrated steps. */
export function thresholdsAt(t: FfnThresholds, sparsity: number): number[] {
  checkSparsity(sparsity);
  const x = sparsity * STEPS, k = Math.floor(x), f = x - k;
  return t.quantiles.map((q) => (k + 1 < q.length ? q[k] * (1 - f) + q[k + 1] * f : q[q.length - 1]));
}

/** The same calibration at another target sparsity. */
export function withSparsity(t: FfnThresholds, sparsity: number): FfnThresholds {
  return { ...t, sparsity, thresholds: thresholdsAt(t, sparsity) };
}

function body(t: FfnThresholds) {
  return { format: THRESHOLDS_FORMAT, version: VERSION, fingerprint: t.fingerprint, statistic: t.statistic, nLayers: t.nLayers, ffn: t.ffn,
    sparsity: t.sparsity, thresholds: t.thresholds, quantiles: t.quantiles, tokens: t.tokens, ...(t.teal ? { teal: t.teal } : {}) };
}

export function encodeThresholds(t: FfnThresholds): string {
  check(t, 'thresholds');
  const b = body(t);
  return JSON.stringify({ ...b, crc32: crc32(new TextEncoder().encode(JSON.stringify(b))) }) + '\n';
}

/** Reads a .fnthr text; `name` for messages; with expectFingerprint, refuses one calibrated for another model. */
export function decodeThresholds(text: string, name: string, expectFingerprint?: string): FfnThresholds {
  let o: Record<string, unknown>;
  try { o = JSON.parse(text); } catch { throw new Error(`${name}: not a thresholds file (not JSON)`); }
  if (!o || typeof o !== 'object' || o.format !== THRESHOLDS_FORMAT) throw new Error(`${name}: not a thresholds file (format is not ${THRESHOLDS_FORMAT})`);
  if (!VERSIONS.includes(o.version as number)) throw new Error(`${name}: thresholds file version ${o.version} is not supported (${VERSION}); calibrate again`);
  const { crc32: sum, ...rest } = o;
  if (sum !== crc32(new TextEncoder().encode(JSON.stringify(rest)))) throw new Error(`${name}: thresholds file checksum mismatch (file is corrupted or edited)`);
  if (!STATISTICS.includes(rest.statistic as ThresholdStatistic)) throw new Error(`${name}: unknown statistic ${JSON.stringify(rest.statistic)}`);
  const t = rest as unknown as FfnThresholds;
  check(t, name);
  if (expectFingerprint !== undefined && t.fingerprint !== expectFingerprint) {
    throw new Error(`${name}: thresholds were calibrated for another model (${t.fingerprint}, this model is ${expectFingerprint}); run flashneuron calibrate for it`);
  }
  return { fingerprint: t.fingerprint, statistic: t.statistic, nLayers: t.nLayers, ffn: t.ffn, sparsity: t.sparsity, thresholds: t.thresholds, quantiles: t.quantiles, tokens: t.tokens,
    ...(t.teal ? { teal: { sparsity: t.teal.sparsity, cuts: t.teal.cuts, quantiles: t.teal.quantiles } } : {}) };
}

function check(t: FfnThresholds, name: string): void {
  const cut = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
  if (!STATISTICS.includes(t.statistic)) throw new Error(`${name}: unknown statistic ${JSON.stringify(t.statistic)}`);
  if (typeof t.fingerprint !== 'string' || !(Number.isInteger(t.nLayers) && t.nLayers >= 1) || !(Number.isInteger(t.ffn) && t.ffn >= 1)) throw new Error(`${name}: malformed thresholds (fingerprint, nLayers, ffn)`);
  if (!(typeof t.sparsity === 'number' && t.sparsity >= 0 && t.sparsity < 1)) throw new Error(`${name}: sparsity must be ≥ 0 and < 1 (got ${t.sparsity})`);
  if (!Array.isArray(t.thresholds) || t.thresholds.length !== t.nLayers || !t.thresholds.every(cut)) throw new Error(`${name}: thresholds must be ${t.nLayers} finite numbers ≥ 0`);
  if (!Array.isArray(t.quantiles) || t.quantiles.length !== t.nLayers || !t.quantiles.every((q) => Array.isArray(q) && q.length === STEPS && q.every(cut))) {
    throw new Error(`${name}: quantiles must be ${t.nLayers} rows of ${STEPS} finite numbers ≥ 0`);
  }
  if (!(Number.isInteger(t.tokens) && t.tokens >= 0)) throw new Error(`${name}: malformed token count`);
  if (t.teal === undefined) return;
  const g = t.teal, three = (a: unknown, ok: (v: unknown) => boolean) => Array.isArray(a) && a.length === t.nLayers && a.every((r) => Array.isArray(r) && r.length === 3 && r.every(ok));
  if (!g || typeof g !== 'object' || !(typeof g.sparsity === 'number' && g.sparsity >= 0 && g.sparsity < 1) || !three(g.cuts, cut) ||
    !three(g.quantiles, (q) => Array.isArray(q) && q.length === STEPS && q.every(cut))) {
    throw new Error(`${name}: malformed teal cuts (sparsity, cuts [${t.nLayers}][3], quantiles [${t.nLayers}][3][${STEPS}])`);
  }
}

/**
 * Counts of |h| per layer over the f16 grid (bins by the f16 bit pattern of |h|, monotonic in
 * the value): quantiles to f16's relative resolution (≈ 0.05 %) from a fixed 128 KiB per layer.
 */
export class MagnitudeHistogram {
  readonly counts: Float64Array[];
  constructor(readonly nLayers: number) {
    this.counts = Array.from({ length: nLayers }, () => new Float64Array(0x8000));
  }

  add(l: number, h: ArrayLike<number>): void {
    const c = this.counts[l];
    for (let i = 0; i < h.length; i++) c[f32ToF16(Math.abs(h[i])) & 0x7fff]++;
  }

  /** Layer l's cut t for `sparsity`: the lower edge of the bin where the share below reaches it. */
  cut(l: number, sparsity: number): number {
    const c = this.counts[l], total = c.reduce((a, b) => a + b, 0), want = sparsity * total;
    if (want <= 0 || total === 0) return 0;
    let below = 0, b = 0;
    while (b < 0x7c00 && below + c[b] < want) below += c[b++];
    // Entries in bin b round to it from half a step either side: its lower edge, or its upper
    // when that brings the share below closer to the target.
    const lo = b === 0 ? 0 : (f16ToF32(b - 1) + f16ToF32(b)) / 2, hi = (f16ToF32(b) + f16ToF32(b + 1)) / 2;
    return want - below < below + c[b] - want ? lo : hi;
  }
}

/**
 * Calibrates per-layer cuts on the first 85 % of `text` (the part the ReLU predictors train on;
 * the last 15 % stays held out): the dense model runs over it and every |h| of every layer is
 * counted. `model` runs dense.
 */
export async function calibrateThresholds(model: TealSource, text: string, fingerprint: string,
  opts: { sparsity: number; teal?: number; statistic?: ThresholdStatistic; maxTokens?: number; onProgress?: (done: number, total: number, phase: string) => void; signal?: AbortSignal }): Promise<FfnThresholds> {
  const sparsity = checkSparsity(opts.sparsity);
  const { nLayers, ffn } = model.config;
  if (model.config.act !== 'silu' || !model.config.hasGate) throw new Error(`calibrate is for SiLU-gated models (gate, up, down with silu); this model uses ${model.config.act}${model.config.hasGate ? '' : ' without a gate'}`);
  const { train, val } = predictorSplits(model, text, { maxTokens: opts.maxTokens ?? 16000 });
  const windows = [...train, ...val];
  const statistic = opts.statistic ?? 'abs_silu_gate_up';
  if (!STATISTICS.includes(statistic)) throw new Error(`statistic must be ${STATISTICS.join(' or ')} (got ${statistic})`);
  const hist = new MagnitudeHistogram(nLayers), e = model.engine;
  // CATS: silu(gate·x) from the FFN input and the gate rows (the engine's activations hold the product).
  const gates = statistic === 'abs_silu_gate' ? Array.from({ length: nLayers }, (_, l) => ffnGateWeights(model, l).w) : [];
  const g = new Float32Array(ffn), d = model.config.hidden;
  // TEAL: |x| of the three inputs of every layer (the engine records those of q/k/v and o: tealRecord).
  if (opts.teal !== undefined) checkSparsity(opts.teal);
  const teal = opts.teal === undefined ? undefined : new MagnitudeHistogram(3 * nLayers), rec = e.tealInputs;
  if (teal && !rec) throw new Error('TEAL calibration needs the engine opened with tealRecord');
  const total = windows.reduce((a, w) => a + w.length, 0);
  let tokens = 0;
  for (const w of windows) {
    opts.signal?.throwIfAborted();
    e.reset();
    for (let p = 0; p < w.length; p++) {
      e.forward(w[p], p);
      // Position 0 is BOS, whose activations no real token shares.
      if (p > 0) for (let l = 0; l < nLayers; l++) hist.add(l, gates.length ? siluGate(gates[l], e.ffnInput(l), g, d) : e.activations(l));
      if (p > 0 && teal) for (let l = 0; l < nLayers; l++) { const x = rec!.call(e, l); teal.add(3 * l, x.qkv); teal.add(3 * l + 1, x.o); teal.add(3 * l + 2, e.ffnInput(l)); }
    }
    tokens += w.length - 1;
    opts.onProgress?.(tokens + windows.indexOf(w) + 1, total, 'calibrate');
    await tick();
  }
  const quantiles = Array.from({ length: nLayers }, (_, l) => Array.from({ length: STEPS }, (_, k) => hist.cut(l, k / STEPS)));
  const tealCuts = teal && {
    sparsity: opts.teal!, cuts: Array.from({ length: nLayers }, (_, l) => [0, 1, 2].map((k) => teal.cut(3 * l + k, opts.teal!))),
    quantiles: Array.from({ length: nLayers }, (_, l) => [0, 1, 2].map((k) => Array.from({ length: STEPS }, (_, s) => teal.cut(3 * l + k, s / STEPS)))),
  };
  return { fingerprint, statistic, nLayers, ffn, sparsity, thresholds: Array.from({ length: nLayers }, (_, l) => hist.cut(l, sparsity)), quantiles, tokens, ...(tealCuts ? { teal: tealCuts } : {}) };
}

/** What calibration runs: a model whose engine may record the q/k/v and o inputs (Engine.tealInputs, tealRecord). */
export type TealSource = ActivationSource & { readonly engine: { tealInputs?(l: number): { qkv: Float32Array; o: Float32Array } } };

/** out = silu(W x) for the gate rows W (out.length rows of d). */
function siluGate(w: Float32Array, x: Float32Array, out: Float32Array, d: number): Float32Array {
  for (let i = 0; i < out.length; i++) {
    let a = 0;
    for (let j = 0, o = i * d; j < d; j++) a += w[o + j] * x[j];
    out[i] = a / (1 + Math.exp(-a));
  }
  return out;
}
