// Synthetic images of real model shapes (format/synth.ts) written to files, with the embedded
// model's tokenizer.
import { readFileSync } from 'node:fs';
import { DType, QUANTIZED } from '../format/dtype.js';
import type { ImageHeader, Progress } from '../format/image.js';
import { synthCheckpoint } from '../format/synth.js';
import { writeImageFile } from './image-file.js';
export { SHAPES, ActivationModel, synthCheckpoint } from '../format/synth.js';

const TOKENIZER_MODEL = new URL('../../../models/opt-relu-mini/', import.meta.url);

/** Writes the synthetic image of `shape` to `out`. */
export function synthImage(shape: string, out: string, opts: { dtype?: DType; seed?: number; layout?: 'bundled' | 'split'; onProgress?: Progress } = {}): ImageHeader {
  const dt = opts.dtype ?? 'f16', q = QUANTIZED.has(dt);
  // Quantized images quantize f16 weights as convert --dtype does.
  return writeImageFile(synthCheckpoint(shape, tokenizer(), q ? 'f16' : dt, opts.seed), out, opts.onProgress, { layout: opts.layout, ...(q ? { dtype: dt } : {}) });
}

function tokenizer(): { json: string; config: Record<string, unknown> } {
  return {
    json: readFileSync(new URL('tokenizer.json', TOKENIZER_MODEL), 'utf8'),
    config: JSON.parse(readFileSync(new URL('tokenizer_config.json', TOKENIZER_MODEL), 'utf8')),
  };
}
