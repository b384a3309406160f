// Training data from a running model: the FFN inputs and true activity bits of token windows, the
// train / validation / held-out splits of a text, and the deciding FFN weights read from the image.
import { rowBytes, widenToF32 } from '../format/dtype.js';
import { section } from '../format/image.js';
import { readExact } from '../io/source.js';
import type { ActivationSource, PredictorSamples, TrainOptions } from './types.js';
import { bitRowBytes, tick } from './util.js';

/** Tokens per collection window, BOS included. */
export const WINDOW = 256;

/** Runs the engine over each window (ids starting with BOS at position 0) and records every position. */
export async function collectSamples(model: ActivationSource, windows: number[][], opts: { onProgress?: TrainOptions['onProgress']; signal?: AbortSignal; done?: number; total?: number } = {}): Promise<PredictorSamples> {
  const { nLayers: L, hidden: d, ffn } = model.config;
  const n = windows.reduce((s, w) => s + w.length, 0);
  const yb = bitRowBytes(ffn);
  const x = Array.from({ length: L }, () => new Float32Array(n * d));
  const active = Array.from({ length: L }, () => new Uint8Array(n * yb));
  const e = model.engine;
  let t = 0;
  for (const w of windows) {
    if (w.length > e.contextLength) throw new Error(`window of ${w.length} tokens exceeds the context length ${e.contextLength}`);
    opts.signal?.throwIfAborted();
    e.reset();
    for (let p = 0; p < w.length; p++, t++) {
      e.forward(w[p], p);
      for (let l = 0; l < L; l++) {
        x[l].set(e.ffnInput(l), t * d);
        const a = e.activations(l), bits = active[l], o = t * yb;
        for (let i = 0; i < ffn; i++) if (a[i] !== 0) bits[o + (i >> 3)] |= 1 << (i & 7);
      }
    }
    opts.onProgress?.((opts.done ?? 0) + t, opts.total ?? n, 'collect');
    await tick();
  }
  return { n, hidden: d, ffn, x, active };
}

/** Cuts ids (BOS first) into windows of ≤ WINDOW tokens, each BOS + a consecutive slice of the text. */
function windowsOf(body: number[], bos: number, span: number): number[][] {
  const out: number[][] = [];
  for (let s = 0; s < body.length; s += span) out.push([bos, ...body.slice(s, s + span)]);
  return out.filter((w) => w.length > 1);
}

/** At most `cap` tokens of windows, evenly spread over the list. */
function spread(ws: number[][], cap: number): number[][] {
  const total = ws.reduce((s, w) => s + w.length, 0);
  if (total <= cap) return ws;
  const k = Math.max(1, Math.floor(cap / WINDOW));
  return Array.from({ length: k }, (_, i) => ws[Math.floor(((i + 0.5) * ws.length) / k)]);
}

/** The token windows of trainPredictor's three splits of `text` (see trainPredictor). */
export function predictorSplits(model: ActivationSource, text: string, opts: Pick<TrainOptions, 'maxTokens' | 'heldOut'> = {}): { train: number[][]; val: number[][]; held: number[][] } {
  const maxTokens = opts.maxTokens ?? 16000, heldOut = opts.heldOut ?? 0.15;
  if (!(heldOut >= 0 && heldOut < 0.9)) throw new Error(`heldOut must be a share in [0, 0.9) (got ${heldOut})`);
  const bos = model.config.bosId;
  const all = model.tokenize(text);
  const body = all[0] === bos ? all.slice(1) : all;
  const span = Math.min(WINDOW, model.engine.contextLength) - 1;
  const hEnd = body.length, hStart = Math.floor(body.length * (1 - heldOut));
  const vStart = Math.floor(hStart * 0.9);
  const cap = Math.max(WINDOW, Math.floor(maxTokens / 4));
  const train = spread(windowsOf(body.slice(0, vStart), bos, span), maxTokens);
  const val = spread(windowsOf(body.slice(vStart, hStart), bos, span), cap);
  const held = spread(windowsOf(body.slice(hStart, hEnd), bos, span), cap);
  if (!train.length || !val.length) throw new Error(`the text is too short to train a predictor (${all.length} tokens)`);
  return { train, val, held };
}

/**
 * The weights that decide activity in layer l, read from the model image:
 * W (ffn, d) = fc1 (OPT) or gate_proj (Llama) rows, and the matching bias (zeros when absent).
 * Rows are widened from the image's FFN dtype (f32, f16, bf16, Q8_0, Q4_0); their size is that
 * dtype's rowBytes (a quantized row is blocks of 32, not d × an element size). A split
 * (--no-bundle) image is reassembled into bundles first.
 */
export function ffnGateWeights(model: ActivationSource, l: number): { w: Float32Array; bias: Float32Array } {
  const h = model.engine.header, f = h.ffn, { hidden: d, ffn } = model.config;
  const off = f.gate >= 0 ? f.gate : f.up;
  const rb = rowBytes(f.dtype, d);
  const raw = readBundles(model, l);
  const w = new Float32Array(ffn * d), bias = new Float32Array(ffn);
  const bv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (let i = 0; i < ffn; i++) {
    const o = i * f.bundle_bytes;
    w.set(widenToF32(raw.subarray(o + off, o + off + rb), f.dtype), i * d);
    if (f.gate < 0 && f.bias >= 0) bias[i] = bv.getFloat32(o + f.bias, true);
  }
  return { w, bias };
}

/** Layer l's FFN as ffn bundles of bundle_bytes (the image's own bytes when bundled, reassembled when split). */
function readBundles(model: ActivationSource, l: number): Uint8Array {
  const h = model.engine.header, f = h.ffn, ffn = model.config.ffn, s = section(h, `ffn.${l}`);
  if (f.layout !== 'split') {
    const raw = new Uint8Array(ffn * f.bundle_bytes);
    readExact(model.engine.source, raw, s.offset, `ffn.${l}`);
    return raw;
  }
  const stored = new Uint8Array(s.length);
  readExact(model.engine.source, stored, s.offset, `ffn.${l}`);
  const raw = new Uint8Array(ffn * f.bundle_bytes);
  for (const p of f.parts ?? []) {
    for (let i = 0; i < ffn; i++) raw.set(stored.subarray(p.base + i * p.len, p.base + (i + 1) * p.len), i * f.bundle_bytes + p.row);
  }
  return raw;
}
