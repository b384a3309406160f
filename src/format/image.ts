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
//     "ffn.crc"   (after the FFN sections) the CRC-32 of every neuron's bundle as the neuron cache
//                 holds it, u32 little-endian, layer by layer: checked as bundles land from flash.
//                 Images made before it have none and load unverified, with a note.
// Every section carries a CRC-32 (zlib's); the loader verifies each section it reads whole, and
// image-check.ts that the header's numbers describe a model that fits the file.
import type { ModelConfig } from './config.js';
import type { DType } from './dtype.js';
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
  return h;
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
