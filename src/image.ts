// The flashneuron image: one file holding a model the way the engine reads it.
//
//  1. Prefix, 32 bytes at offset 0 (little-endian):
//       magic "FLASHNRN" (8) | version u32 = 1 | header_len u32 | header_offset u64 | header_crc32 u32 | 0 u32
//  2. Sections, each starting on a 4096-byte boundary (so O_DIRECT can read them), in this order:
//       "tokenizer"   the model's tokenizer.json, verbatim
//       "resident"    everything kept in memory: token (+ position) embeddings, attention q/k/v/o,
//                     norms, biases, lm_head; each tensor 64-byte aligned. Matrices keep their stored
//                     dtype (f32/f16/bf16); vectors (norm weights, biases) are widened to f32.
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
//       { format, version, config: ModelConfig, tokenizer_config, source,
//         sections: [{ name, offset, length, crc32 }],
//         tensors:  [{ role, layer, offset (in "resident"), dtype, shape }],
//         ffn:      { dtype, bundle_bytes, up, gate, down, bias, layout?, parts?, bundled_crc32? } }
//                   (gate/bias: -1 when absent; layout "bundled" when absent)
// Every section carries a CRC-32 (zlib's); the loader verifies each section it reads whole.
import { closeSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ModelConfig, DType } from './config.js';
import { DTYPE_BYTES, QUANTIZED, rowBytes, tensorBytes } from './config.js';
import { dequantize, quantize } from './quant.js';
import { FileSource, FlashSource, readExact } from './flash.js';
import { openHFCheckpoint, modelTensors, HFCheckpoint } from './hf.js';
import { instantiateEngine } from './wasm.js';

export const MAGIC = 'FLASHNRN';
export const VERSION = 1;
export const PREFIX_BYTES = 32;
export const SECTION_ALIGN = 4096;
const TENSOR_ALIGN = 64;
const BUNDLE_ALIGN = 16;

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

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

// ---- reading ----

/** Reads and validates the header of an image. Throws a clear error for anything malformed. */
/** The header of the image file at `path` (opened and closed here). */
export function readImageHeaderFile(path: string): ImageHeader {
  const src = new FileSource(path);
  try { return readImageHeader(src); } finally { src.close(); }
}

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
  const raw = new Uint8Array(headerLen);
  readExact(src, raw, headerOff, 'image header');
  if (crc32(raw) !== headerCrc) throw new Error(`${src.name}: image header checksum mismatch (file is corrupted)`);
  let h: ImageHeader;
  try { h = JSON.parse(new TextDecoder().decode(raw)); } catch { throw new Error(`${src.name}: image header is not valid JSON`); }
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

// ---- writing ----

/**
 * Converts a Hugging Face checkpoint folder to an image at `out`. Writes a temporary file and
 * renames it when complete, so an interrupted conversion never leaves a valid-looking image.
 */
export interface ConvertOptions {
  /** 'bundled' (default): one read fetches a neuron. 'split': up, gate, down and bias stored apart (ablation). */
  layout?: 'bundled' | 'split';
  /** Store every matrix in this type (default: as the checkpoint stores it; f16 and bf16 round to nearest even). */
  dtype?: DType;
}

export async function convertHF(dir: string, out: string, onProgress?: Progress, opts: ConvertOptions = {}): Promise<ImageHeader> {
  const ckpt = await openHFCheckpoint(dir);
  try {
    return writeImageFile(ckpt, out, onProgress, opts);
  } finally {
    ckpt.close();
  }
}

/** Writes the image of an opened checkpoint to file `out` (through a temporary file, renamed when complete). */
export function writeImageFile(ckpt: HFCheckpoint, out: string, onProgress?: Progress, opts: ConvertOptions = {}): ImageHeader {
  return writeFileAtomically(out, (write) => writeImage(ckpt, write, onProgress, opts));
}

/**
 * Runs `fill` with a positional writer into a temporary file beside `out`, renamed to `out`
 * when fill returns: an interrupted or failed write never leaves a complete-looking file.
 */
export function writeFileAtomically<T>(out: string, fill: (write: (bytes: Uint8Array, pos: number) => void) => T): T {
  mkdirSync(dirname(out), { recursive: true });
  const tmp = `${out}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    const r = fill((bytes, pos) => writeAll(fd, bytes, pos));
    closeSync(fd);
    renameSync(tmp, out);
    return r;
  } catch (e) {
    try { closeSync(fd); } catch { /* already closed */ }
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Writes the image of an opened checkpoint through `write(bytes, position)` (a file, OPFS, ...). */
export function writeImage(ckpt: HFCheckpoint, write: (bytes: Uint8Array, pos: number) => void, onProgress?: Progress, opts: ConvertOptions = {}): ImageHeader {
  const cfg = ckpt.config;
  const spec = modelTensors(cfg);
  {
    const d = cfg.hidden;
    // FFN bundle layout: dtype of the up/fc1 matrix (all three widened to f32 if they differ).
    const L0 = spec.layers[0];
    const ffnDtypes = [L0.up, L0.gate, L0.down].filter((t) => t).map((t) => ckpt.tensor(t!.name).dtype);
    if (opts.dtype !== undefined && !Object.hasOwn(DTYPE_BYTES, opts.dtype)) throw new Error(`unknown dtype ${opts.dtype} (f32, f16, bf16, q8_0 or q4_0)`);
    if (opts.dtype && QUANTIZED.has(opts.dtype) && d % 32) throw new Error(`${opts.dtype} needs a model width that is a multiple of 32 (got ${d})`);
    const ffnDtype: DType = opts.dtype ?? (ffnDtypes.every((t) => t === ffnDtypes[0]) ? ffnDtypes[0] : 'f32');
    const part = rowBytes(ffnDtype, d);
    const ffn: FfnLayout = { dtype: ffnDtype, bundle_bytes: 0, up: 0, gate: -1, down: 0, bias: -1 };
    let o = part;
    if (cfg.hasGate) { ffn.gate = o; o += part; }
    ffn.down = o; o += part;
    if (L0.upB) { ffn.bias = o; o += 4; }
    ffn.bundle_bytes = alignUp(o, BUNDLE_ALIGN);
    const split = opts.layout === 'split';
    if (split) {
      ffn.layout = 'split';
      ffn.parts = [];
      let base = 0;
      for (const [row, len] of [[ffn.up, part], [ffn.gate, part], [ffn.down, part], [ffn.bias, 4]]) {
        if (row < 0) continue;
        ffn.parts.push({ base, len, row });
        base += cfg.ffn * len;
      }
    } else if (opts.layout !== undefined && opts.layout !== 'bundled') throw new Error(`unknown ffn layout ${opts.layout} (bundled or split)`);

    // Resident tensors in order: globals, then per layer.
    type Item = { role: string; layer: number; name: string; vector: boolean };
    const items: Item[] = [];
    const g = spec.globals;
    const addG = (role: string, t: { name: string } | undefined, vector: boolean) => { if (t) items.push({ role, layer: -1, name: t.name, vector }); };
    addG('tok_embed', g.tokEmbed, false);
    addG('pos_embed', g.posEmbed, false);
    addG('norm_w', g.normW, true);
    addG('norm_b', g.normB, true);
    addG('lm_head', g.lmHead, false);
    spec.layers.forEach((L, l) => {
      const add = (role: string, t: { name: string } | undefined, vector: boolean) => { if (t) items.push({ role, layer: l, name: t.name, vector }); };
      add('ln1_w', L.ln1W, true); add('ln1_b', L.ln1B, true);
      add('q', L.q, false); add('k', L.k, false); add('v', L.v, false); add('o', L.o, false);
      add('q_b', L.qB, true); add('k_b', L.kB, true); add('v_b', L.vB, true); add('o_b', L.oB, true);
      add('ln2_w', L.ln2W, true); add('ln2_b', L.ln2B, true);
      add('down_b', L.downB, true);
    });

    const tensors: TensorEntry[] = [];
    let residentLen = 0;
    for (const it of items) {
      const info = ckpt.tensor(it.name);
      // int4 keeps the embeddings and the lm_head at int8, as llama.cpp's Q4_0 files keep output.weight finer.
      const embedding = it.role === 'tok_embed' || it.role === 'pos_embed' || it.role === 'lm_head';
      const dtype: DType = it.vector ? 'f32' : opts.dtype === 'q4_0' && embedding ? 'q8_0' : opts.dtype ?? info.dtype;
      residentLen = alignUp(residentLen, TENSOR_ALIGN);
      tensors.push({ role: it.role, layer: it.layer, offset: residentLen, dtype, shape: info.shape });
      residentLen += tensorBytes(dtype, info.shape);
    }
    const tokBytes = new TextEncoder().encode(ckpt.tokenizerJson);
    const ffnLen = cfg.ffn * (split ? ffn.parts!.reduce((a, p) => a + p.len, 0) : ffn.bundle_bytes);
    const total = tokBytes.length + residentLen + cfg.nLayers * ffnLen;
    let done = 0;
    const progress = (n: number, phase: string) => { done += n; onProgress?.(done, total, phase); };

    const sections: Section[] = [];
    let pos = SECTION_ALIGN;
    const writeSection = (name: string, bytes: Uint8Array) => {
      write(bytes, pos);
      sections.push({ name, offset: pos, length: bytes.length, crc32: crc32(bytes) });
      pos = alignUp(pos + bytes.length, SECTION_ALIGN);
      progress(bytes.length, name);
    };
    writeSection('tokenizer', tokBytes);

    // The resident section, tensor by tensor (a 7B model's is larger than one typed array may be).
    {
      let at = 0, crc = 0;
      const put = (bytes: Uint8Array) => { write(bytes, pos + at); crc = crc32(bytes, crc); at += bytes.length; progress(bytes.length, 'resident'); };
      items.forEach((it, i) => {
        const t = tensors[i];
        if (t.offset > at) put(new Uint8Array(t.offset - at));
        put(asDtype(ckpt.readTensor(it.name), ckpt.tensor(it.name).dtype, t.dtype, t.shape[t.shape.length - 1]));
      });
      sections.push({ name: 'resident', offset: pos, length: at, crc32: crc });
      pos = alignUp(pos + at, SECTION_ALIGN);
    }

    for (let l = 0; l < cfg.nLayers; l++) {
      const L = spec.layers[l];
      // Quantized bundles quantize each part per neuron (the down column too): from f32.
      const q = QUANTIZED.has(ffnDtype), to = q ? 'f32' : ffnDtype;
      const up = asDtype(ckpt.readTensor(L.up.name), ckpt.tensor(L.up.name).dtype, to, d);
      const gate = L.gate ? asDtype(ckpt.readTensor(L.gate.name), ckpt.tensor(L.gate.name).dtype, to, d) : undefined;
      const down = asDtype(ckpt.readTensor(L.down.name), ckpt.tensor(L.down.name).dtype, to, cfg.ffn);
      const bias = L.upB ? widenToF32(ckpt.readTensor(L.upB.name), ckpt.tensor(L.upB.name).dtype) : undefined;
      const b = bundle(cfg, ffn, q ? 4 : DTYPE_BYTES[ffnDtype], up, gate, down, bias);
      if (split) (ffn.bundled_crc32 ??= []).push(crc32(b));
      writeSection(`ffn.${l}`, split ? unbundle(b, ffn, cfg.ffn) : b);
    }

    const header: ImageHeader = {
      format: 'flashneuron', version: VERSION, config: cfg,
      tokenizer_config: ckpt.tokenizerConfig as Record<string, unknown> | undefined,
      source: { architecture: cfg.architecture, converted_from: ckpt.origin ?? 'huggingface' },
      sections, tensors, ffn,
    };
    const hb = new TextEncoder().encode(JSON.stringify(header));
    write(hb, pos);
    const prefix = new Uint8Array(PREFIX_BYTES);
    prefix.set(new TextEncoder().encode(MAGIC));
    const dv = new DataView(prefix.buffer);
    dv.setUint32(8, VERSION, true);
    dv.setUint32(12, hb.length, true);
    dv.setBigUint64(16, BigInt(pos), true);
    dv.setUint32(24, crc32(hb), true);
    write(prefix, 0);
    return header;
  }
}

/** Interleaves one layer's FFN matrices into per-neuron bundles (see the format above). */
function bundle(cfg: ModelConfig, f: FfnLayout, es: number, up: Uint8Array, gate: Uint8Array | undefined,
  down: Uint8Array, bias: Float32Array | undefined): Uint8Array {
  const d = cfg.hidden, n = cfg.ffn, row = d * es;
  const out = new Uint8Array(n * f.bundle_bytes);
  const outF = new DataView(out.buffer);
  if (QUANTIZED.has(f.dtype)) {
    // f32 inputs; each neuron's up, gate and down column quantized along d, in place.
    const dt = f.dtype as 'q8_0' | 'q4_0', upF = new Float32Array(up.buffer, up.byteOffset, n * d);
    const gateF = gate && new Float32Array(gate.buffer, gate.byteOffset, n * d), downF = new Float32Array(down.buffer, down.byteOffset, n * d);
    const col = new Float32Array(d), pb = rowBytes(dt, d);
    for (let i = 0; i < n; i++) {
      const b = i * f.bundle_bytes;
      quantize(dt, upF.subarray(i * d, (i + 1) * d), d, out.subarray(b + f.up, b + f.up + pb));
      if (gateF) quantize(dt, gateF.subarray(i * d, (i + 1) * d), d, out.subarray(b + f.gate, b + f.gate + pb));
      for (let r = 0; r < d; r++) col[r] = downF[r * n + i];
      quantize(dt, col, d, out.subarray(b + f.down, b + f.down + pb));
      if (bias) outF.setFloat32(b + f.bias, bias[i], true);
    }
    return out;
  }
  for (let i = 0; i < n; i++) {
    const b = i * f.bundle_bytes;
    out.set(up.subarray(i * row, (i + 1) * row), b + f.up);
    if (gate) out.set(gate.subarray(i * row, (i + 1) * row), b + f.gate);
    // down is (d, n) row-major: column i is every n-th element.
    for (let r = 0; r < d; r++) {
      const s = (r * n + i) * es, t = b + f.down + r * es;
      for (let k = 0; k < es; k++) out[t + k] = down[s + k];
    }
    if (bias) outF.setFloat32(b + f.bias, bias[i], true);
  }
  return out;
}

/** The split layout of a layer's bundles: each part for all neurons in turn. */
function unbundle(bundles: Uint8Array, f: FfnLayout, n: number): Uint8Array {
  const parts = f.parts!;
  const out = new Uint8Array(n * parts.reduce((a, p) => a + p.len, 0));
  for (const p of parts) {
    for (let i = 0; i < n; i++) out.set(bundles.subarray(i * f.bundle_bytes + p.row, i * f.bundle_bytes + p.row + p.len), p.base + i * p.len);
  }
  return out;
}

function writeAll(fd: number, bytes: Uint8Array, pos: number): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done, pos + done);
}

// ---- dtype helpers ----

const cvt = new Float32Array(1);
const cvtU = new Uint32Array(cvt.buffer);

/** IEEE binary16 bits of v (round to nearest even; overflow to ±Inf). */
export function f32ToF16(v: number): number {
  cvt[0] = v;
  const x = cvtU[0];
  const sign = (x >>> 16) & 0x8000;
  const e = (x >>> 23) & 0xff;
  let m = x & 0x7fffff;
  if (e === 0xff) return sign | 0x7c00 | (m ? 0x200 : 0);
  const he = e - 127 + 15;
  if (he >= 31) return sign | 0x7c00;
  if (he <= 0) {
    if (he < -10) return sign;
    m |= 0x800000;
    const shift = 14 - he;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (he << 10) | (m >>> 13);
  const rem = m & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++; // carries into the exponent correctly
  return sign | h;
}

export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Raw little-endian tensor bytes of dtype `dt` as f32 values. */
export function widenToF32(raw: Uint8Array, dt: DType): Float32Array {
  if (dt === 'f32') return new Float32Array(raw.slice().buffer);
  if (QUANTIZED.has(dt)) return dequantize(dt, raw, (raw.length / (dt === 'q8_0' ? 34 : 18)) * 32);
  const n = raw.length >> 1, out = new Float32Array(n);
  const u16 = new Uint16Array(raw.slice().buffer);
  if (dt === 'bf16') new Uint32Array(out.buffer).set(Array.from(u16, (h) => h << 16));
  else for (let i = 0; i < n; i++) out[i] = f16ToF32(u16[i]);
  return out;
}

/** Raw tensor bytes of dtype `from` as dtype `to` (rows of `n` elements, for quantized types). */
function asDtype(raw: Uint8Array, from: DType, to: DType, n: number): Uint8Array {
  if (from === to) return raw;
  const f = widenToF32(raw, from);
  if (to === 'f32') return new Uint8Array(f.buffer);
  if (to === 'q8_0' || to === 'q4_0') return quantize(to, f, n);
  const out = new Uint16Array(f.length), bits = new Uint32Array(f.buffer);
  if (to === 'f16') for (let i = 0; i < f.length; i++) out[i] = f32ToF16(f[i]);
  else for (let i = 0; i < f.length; i++) { const b = bits[i]; out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16; }  // bf16, nearest even
  return new Uint8Array(out.buffer);
}

// ---- CRC-32 through the engine's own wasm kernel (the loader verifies with the same code) ----

class Crc32Engine {
  private e = instantiateEngine().exports;
  private buf = 0;
  private cap = 8 << 20;
  constructor() {
    this.e._initialize();
    this.buf = this.e.alloc(this.cap, 16);
  }
  of(bytes: Uint8Array, c = 0): number {
    for (let off = 0; off < bytes.length; off += this.cap) {
      const chunk = bytes.subarray(off, Math.min(bytes.length, off + this.cap));
      new Uint8Array(this.e.memory.buffer, this.buf, chunk.length).set(chunk);
      c = this.e.crc32(c, this.buf, chunk.length) >>> 0;
    }
    return c;
  }
}

let sharedCrc: Crc32Engine | undefined;
/** CRC-32 of bytes (zlib's polynomial), continuing `crc` of the bytes before them (0 to start). */
export function crc32(bytes: Uint8Array, crc = 0): number {
  sharedCrc ??= new Crc32Engine();
  return sharedCrc.of(bytes, crc);
}
