// GGUF files on disk: export an image, open a GGUF as a checkpoint, read its predictor.
import type { Progress } from '../format/image.js';
import type { HFCheckpoint } from '../format/hf.js';
import { openGGUFCheckpoint as openGGUF, readGGUFPredictor as readPredictor, GGUF_MAGIC } from '../format/gguf.js';
import { exportGGUF as exportImage } from '../format/gguf-export.js';
import type { Predictor } from '../predictor/types.js';
import { FileSource } from './file-source.js';
import { writeFileAtomically } from './image-file.js';

/** Writes the model of image file `imagePath` as GGUF file `out` (see format/gguf-export.ts). */
export function exportGGUF(imagePath: string, out: string, onProgress?: Progress,
  opts: { predictor?: Predictor; downTransposed?: boolean } = {}): { tensors: number; bytes: number } {
  const src = new FileSource(imagePath);
  try {
    return writeFileAtomically(out, (write) => exportImage(src, imagePath, write, onProgress, opts));
  } finally {
    src.close();
  }
}

/** The GGUF file at `path` as a checkpoint (closing it closes the file). */
export function openGGUFCheckpoint(path: string, activation?: 'relu' | 'silu'): HFCheckpoint {
  return openGGUF(new FileSource(path), path, activation);
}

/** The predictor a PowerInfer-style GGUF file carries, or undefined. */
export function readGGUFPredictor(path: string, fingerprint: string): Predictor | undefined {
  const src = new FileSource(path);
  try { return readPredictor(src, path, fingerprint); } finally { src.close(); }
}

/** Whether the file at `path` starts with GGUF's magic. */
export function isGGUF(path: string): boolean {
  const src = new FileSource(path);
  try {
    const b = new Uint8Array(4);
    return src.pread(b, 0) === 4 && new DataView(b.buffer).getUint32(0, true) === GGUF_MAGIC;
  } finally { src.close(); }
}
