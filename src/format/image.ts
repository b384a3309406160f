// The flashneuron image: one file holding a model the way the engine reads it.
//
//  1. Prefix, 32 bytes at offset 0 (little-endian):
//       magic "FLASHNRN" (8) | version u32 = 1 | header_len u32 | header_offset u64 | header_crc32 u32 | 0 u32
//  2. Sections, each starting on a 4096-byte boundary (so O_DIRECT can read them), in this order:
//       "tokenizer"   the model's tokenizer.json, verbatim
//       "resident"    everything kept in memory: token (+ position) embeddings, attention q/k/v/o,
//                     norms, biases, lm_head (+ its bias, Phi-2); each tensor 64-byte aligned.
//                     Matrices keep their stored dtype (f32/f16/bf16); vectors (norm weights,
//                     biases) are widened to f32.
//       "ffn.<L>"     for every layer L: its FFN as row–column bundles, one per neuron, contiguous:
//                       neuron i at i * bundle_bytes:
//                         +up    fc1 / up_proj row i      (d) dtype
//                         +gate  gate_proj row i          (d) dtype   (Llama family only)
//                         +down  fc2 / down_proj column i (d) dtype
//                         +bias  fc1 / up_proj bias i     f32         (when the model has one)
//                       padded to 16 bytes; one read of bundle_bytes fetches a whole neuron.
//                     With ffn.layout "split" (convert --no-bundle, the unbundled baseline of the
//                     paper's ablation) the section instead holds each part for all neurons in turn:
//                     part p of neuron i at parts[p].base + i * parts[p].len, landing at
//                     parts[p].row of the bundle the engine assembles in its neuron cache.
//  3. Header, UTF-8 JSON at header_offset (after the last section):
//       { format, version, config: ModelConfig (keys added later are optional: a header without
//         them means what it meant before, see config.ts), tokenizer_config, source,
//         sections: [{ name, offset, length, crc32 }],
//         tensors:  [{ role, layer, offset (in "resident"), dtype, shape }],
//         ffn:      { dtype, bundle_bytes, up, gate, down, bias, layout?, parts?, bundled_crc32? } }
//                   (gate/bias: -1 when absent; layout "bundled" when absent)
// Every section carries a CRC-32 (zlib's); the loader verifies each section it reads whole.
import type { ModelConfig } from './config.js';
import { DType, DTYPE_BYTES, QUANTIZED, rowBytes, tensorBytes } from './dtype.js';
import { type FlashSource, readExact } from '../io/source.js';
import { crc32 } from './crc32.js';
import { checkImageHeader, MAX_HEADER_BYTES } from './image-check.js';

export const MAGIC = 'FLASHNRN';
export const VERSION = 1;
export const PREFIX_BYTES = 32;
export const SECTION_ALIGN = 4096;

export interface Section { name: string; offset: number; length: number; crc32: number }
export interface TensorEntry { role: string; layer: number; offset: number; dtype: DType; shape: number[] }
export interface FfnPart { base: number; len: number; row: number }
export interface FfnLayout {
  dtype: DType; bundle_bytes: number; up: number; gate: number; down: number; bias: number;
  layout?: 'bundled' | 'split';
  /** split layout: where each part of a neuron lies in the section and in the assembled bundle */
  parts?: FfnPart[];
  /** split layout: CRC-32 of each layer's FFN in the bundled layout (the same weights' identity) */
  bundled_crc32?: number[];
  /** Only for a layout in engine memory (a dense FFN as matrices): bytes from one neuron's bias to the next. */
  bias_stride?: number;
}
export interface ImageHeader {
  format: 'flashneuron';
  version: number;
  config: ModelConfig;
  tokenizer_config?: Record<string, unknown>;
  source?: Record<string, unknown>;
  sections: Section[];
  tensors: TensorEntry[];
  ffn: FfnLayout;
}

export type Progress = (done: number, total: number, phase: string) => void;


// ---- reading ----

/** Reads and validates the header of an image. Throws a clear error for anything malformed. */
export function readImageHeader(src: FlashSource): ImageHeader {
  if (src.size < PREFIX_BYTES) throw new Error(`${src.name}: not a flashneuron image (file is ${src.size} bytes)`);
  const prefix = new Uint8Array(PREFIX_BYTES);
  readExact(src, prefix, 0, 'image prefix');
  const magic = new TextDecoder().decode(prefix.subarray(0, 8));
  if (magic !== MAGIC) throw new Error(`${src.name}: not a flashneuron image (bad magic)`);
  const dv = new DataView(prefix.buffer);
  const version = dv.getUint32(8, true);
  if (version !== VERSION) throw new Error(`${src.name}: image version ${version} is not supported (this build reads ${VERSION}); convert the model again`);
  const headerLen = dv.getUint32(12, true);
  const headerOff = Number(dv.getBigUint64(16, true));
  const headerCrc = dv.getUint32(24, true);
  if (headerOff + headerLen > src.size || headerLen === 0) {
    throw new Error(`${src.name}: image is truncated (header at ${headerOff}+${headerLen}, file has ${src.size} bytes)`);
  }
  if (headerLen > MAX_HEADER_BYTES) throw new Error(`${src.name}: invalid image: header of ${headerLen} bytes (at most ${MAX_HEADER_BYTES})`);
  if (headerOff < PREFIX_BYTES) throw new Error(`${src.name}: invalid image: header at ${headerOff}, inside the prefix (after the sections)`);
  const raw = new Uint8Array(headerLen);
  readExact(src, raw, headerOff, 'image header');
  if (crc32(raw) !== headerCrc) throw new Error(`${src.name}: image header checksum mismatch (file is corrupted)`);
  let parsed: unknown;
  try { parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw)); } catch { throw new Error(`${src.name}: image header is not valid JSON`); }
  // The CRC says the bytes are as written; checkImageHeader that what they say makes sense.
  checkImageHeader(parsed, headerOff, src.name);
  const h = parsed as ImageHeader;
  validateHeader(h, headerOff, src.name);
  return h;
}

function validateHeader(h: ImageHeader, dataEnd: number, name: string): void {
  const bad = (msg: string): never => { throw new Error(`${name}: invalid image: ${msg}`); };
  if (h.format !== 'flashneuron' || !h.config || !Array.isArray(h.sections) || !Array.isArray(h.tensors) || !h.ffn) bad('header lacks format/config/sections/tensors/ffn');
  const c = h.config;
  for (const k of ['nLayers', 'hidden', 'ffn', 'nHeads', 'nKvHeads', 'headDim', 'vocab', 'maxPositions'] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0 || c[k] > 1 << 24) bad(`config.${k} = ${c[k]}`);
  }
  if (c.nHeads % c.nKvHeads !== 0) bad(`nHeads ${c.nHeads} is not a multiple of nKvHeads ${c.nKvHeads}`);
  validateFeatures(c, h.tensors, bad);
  const sorted = [...h.sections].sort((a, b) => a.offset - b.offset);
  let end = PREFIX_BYTES;
  for (const s of sorted) {
    if (!Number.isSafeInteger(s.offset) || !Number.isSafeInteger(s.length) || s.length < 0) bad(`section ${s.name} has a bad range`);
    if (s.offset < end) bad(`section ${s.name} overlaps the previous one`);
    if (s.offset + s.length > dataEnd) bad(`section ${s.name} ends past the data region (${s.offset + s.length} > ${dataEnd})`);
    end = s.offset + s.length;
  }
  const resident = section(h, 'resident');
  for (const t of h.tensors) {
    if (!Object.hasOwn(DTYPE_BYTES, t.dtype)) bad(`tensor ${t.role} has unknown dtype ${t.dtype}`);
    if (QUANTIZED.has(t.dtype) && t.shape[t.shape.length - 1] % 32) bad(`tensor ${t.role} is ${t.dtype} with rows of ${t.shape[t.shape.length - 1]} elements (not a multiple of 32)`);
    const bytes = tensorBytes(t.dtype, t.shape);
    if (t.offset < 0 || t.offset + bytes > resident.length) bad(`tensor ${t.role}${t.layer >= 0 ? ` of layer ${t.layer}` : ''} lies outside the resident section`);
  }
  const f = h.ffn;
  if (!Object.hasOwn(DTYPE_BYTES, f.dtype) || (QUANTIZED.has(f.dtype) && c.hidden % 32)) bad(`ffn dtype ${f.dtype}`);
  const partBytes = rowBytes(f.dtype, c.hidden);
  for (const [k, off] of [['up', f.up], ['gate', f.gate], ['down', f.down]] as const) {
    if (off >= 0 && off + partBytes > f.bundle_bytes) bad(`ffn.${k} lies outside the bundle`);
  }
  if (f.bias >= 0 && f.bias + 4 > f.bundle_bytes) bad('ffn.bias lies outside the bundle');
  let perNeuron = f.bundle_bytes;
  if (f.layout === 'split') {
    if (!Array.isArray(f.parts) || f.parts.length < 2 || f.parts.length > 4) bad('split ffn layout needs 2 to 4 parts');
    perNeuron = 0;
    for (const p of f.parts!) {
      if (![p.base, p.len, p.row].every((v) => Number.isSafeInteger(v) && v >= 0) || p.row + p.len > f.bundle_bytes) bad('ffn part lies outside the bundle');
      if (p.base !== c.ffn * perNeuron) bad('ffn parts are not contiguous');
      perNeuron += p.len;
    }
  } else if (f.layout !== undefined && f.layout !== 'bundled') bad(`unknown ffn layout ${f.layout}`);
  for (let l = 0; l < c.nLayers; l++) {
    const s = section(h, `ffn.${l}`);
    if (s.length !== c.ffn * perNeuron) bad(`section ffn.${l} holds ${s.length} bytes, expected ${c.ffn} neurons of ${perNeuron}`);
  }
}

/**
 * The config keys added after the first images (absent in older headers: today's defaults, see
 * config.ts) and the tensors they imply: a bad value is an invalid image, not a wrong forward pass.
 */
function validateFeatures(c: ModelConfig, tensors: TensorEntry[], bad: (msg: string) => never): void {
  const num = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
  const posInt = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
  if (!['opt', 'llama', 'falcon', 'phi'].includes(c.arch)) bad(`config.arch = ${JSON.stringify(c.arch)}`);
  if (!['relu', 'silu', 'fatrelu', 'drelu', 'gelu_tanh'].includes(c.act)) bad(`config.act = ${JSON.stringify(c.act)}`);
  if (c.act === 'fatrelu' && !num(c.actParam)) bad(`config.actParam = ${JSON.stringify(c.actParam)} (fatrelu needs its threshold)`);
  if (c.actParam !== undefined && !num(c.actParam)) bad(`config.actParam = ${JSON.stringify(c.actParam)}`);
  if (c.norm !== undefined && c.norm !== 'layer' && c.norm !== 'rms') bad(`config.norm = ${JSON.stringify(c.norm)}`);
  if (c.parallelAttn !== undefined && c.parallelAttn !== 'one-norm' && c.parallelAttn !== 'two-norms') bad(`config.parallelAttn = ${JSON.stringify(c.parallelAttn)}`);
  if (c.rotaryDim !== undefined && !(posInt(c.rotaryDim) && c.rotaryDim % 2 === 0 && c.rotaryDim <= c.headDim)) {
    bad(`config.rotaryDim = ${JSON.stringify(c.rotaryDim)} (an even number of dims up to headDim ${c.headDim})`);
  }
  if (c.slidingWindow !== undefined && !posInt(c.slidingWindow)) bad(`config.slidingWindow = ${JSON.stringify(c.slidingWindow)}`);
  if (c.lmHeadBias !== undefined && typeof c.lmHeadBias !== 'boolean') bad(`config.lmHeadBias = ${JSON.stringify(c.lmHeadBias)}`);
  const r = c.ropeScaling;
  if (r !== undefined && (r === null || r.type !== 'llama3' || ![r.factor, r.lowFreqFactor, r.highFreqFactor, r.originalMaxPositions].every((v) => num(v) && v > 0))) {
    bad(`config.ropeScaling = ${JSON.stringify(r)}`);
  }
  // What the wasm reads through a weight slot must be there: the lm_head bias, each layer's FFN norm.
  const headB = tensors.find((t) => t.role === 'lm_head_b' && t.layer < 0);
  if (!!c.lmHeadBias !== !!headB) bad(c.lmHeadBias ? 'config.lmHeadBias without an lm_head_b tensor' : 'an lm_head_b tensor without config.lmHeadBias');
  if (headB && (headB.dtype !== 'f32' || headB.shape.length !== 1 || headB.shape[0] !== c.vocab)) bad(`tensor lm_head_b is ${headB.dtype} [${headB.shape}], expected f32 [${c.vocab}]`);
  const ln2 = new Set(tensors.filter((t) => t.role === 'ln2_w').map((t) => t.layer));
  for (let l = 0; l < c.nLayers; l++) {
    if (ln2.has(l) === (c.parallelAttn === 'one-norm')) bad(`layer ${l} ${ln2.has(l) ? 'has an ln2_w tensor though one norm feeds attention and the FFN' : 'has no ln2_w tensor (the FFN\'s norm)'}`);
  }
}

/** The tokenizer.json an image carries, its checksum verified. */
export function readTokenizerJson(src: FlashSource, h: ImageHeader): string {
  const s = section(h, 'tokenizer');
  const bytes = new Uint8Array(s.length);
  readExact(src, bytes, s.offset, 'tokenizer section');
  if (crc32(bytes) !== s.crc32) throw new Error(`${src.name}: checksum mismatch in section tokenizer (file is corrupted)`);
  return new TextDecoder().decode(bytes);
}

export function section(h: ImageHeader, name: string): Section {
  const s = h.sections.find((x) => x.name === name);
  if (!s) throw new Error(`invalid image: section ${name} is missing`);
  return s;
}
