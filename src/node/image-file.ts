// Images as files: reading a header by path, converting a Hugging Face folder, writing atomically.
import { closeSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { readImageHeader, type ImageHeader, type Progress } from '../format/image.js';
import { writeImage, type ConvertOptions } from '../format/image-writer.js';
import type { HFCheckpoint } from '../format/hf.js';
import { openHFCheckpoint } from './checkpoint-fs.js';
import { FileSource } from './file-source.js';
import { checkpointPredictor } from '../format/hf-predictor.js';
import { modelFingerprint } from '../predictor/format.js';
import { sidecarPredictorPath, savePredictor } from './predictor-file.js';
import { removeStaleTemps } from './cache.js';

/** The header of the image file at `path` (opened and closed here). */
export function readImageHeaderFile(path: string): ImageHeader {
  const src = new FileSource(path);
  try { return readImageHeader(src); } finally { src.close(); }
}

/**
 * Converts a Hugging Face checkpoint folder to an image at `out`. Writes a temporary file and
 * renames it when complete, so an interrupted conversion never leaves a valid-looking image.
 * A predictor the checkpoint ships (TurboSparse's mlp.predictor) becomes the image's sidecar.
 */
export async function convertHF(dir: string, out: string, onProgress?: Progress, opts: ConvertOptions = {}): Promise<ImageHeader> {
  const ckpt = await openHFCheckpoint(dir);
  try {
    const header = writeImageFile(ckpt, out, onProgress, opts);
    const predictor = checkpointPredictor(ckpt, modelFingerprint(header));
    if (predictor) savePredictor(sidecarPredictorPath(out), predictor);
    return header;
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
  // A write killed mid-way (Ctrl-C, OOM) left its temporary behind: clear those of gone writers.
  removeStaleTemps(dirname(out), { name: basename(out) });
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

function writeAll(fd: number, bytes: Uint8Array, pos: number): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done, pos + done);
}
