// The one opener of a checkpoint folder's weights, whatever their format, in the order
// transformers looks for them: model.safetensors, model.safetensors.index.json (+ shards), then
// PyTorch's pytorch_model.bin, pytorch_model.bin.index.json (+ shards). Both kinds come back as a
// SafetensorsCheckpoint (absolute byte ranges per tensor), so nothing downstream knows which it was.

import {
  CheckpointError,
  INDEX_FILE,
  SINGLE_FILE,
  openSafetensorsCheckpoint,
  openSharded,
  type CheckpointFS,
  type SafetensorsCheckpoint,
} from './safetensors.js';
import { TorchBinFile } from './torch.js';

export const TORCH_SINGLE_FILE = 'pytorch_model.bin';
export const TORCH_INDEX_FILE = 'pytorch_model.bin.index.json';

/** Opens the weights of a checkpoint folder: safetensors when present, else PyTorch .bin files. */
export function openWeights(fs: CheckpointFS): SafetensorsCheckpoint {
  if (exists(fs, SINGLE_FILE) || fs.readText(INDEX_FILE) !== undefined) return openSafetensorsCheckpoint(fs);
  if (exists(fs, TORCH_SINGLE_FILE) || fs.readText(TORCH_INDEX_FILE) !== undefined) return openTorchCheckpoint(fs);
  const looked = [SINGLE_FILE, INDEX_FILE, TORCH_SINGLE_FILE, TORCH_INDEX_FILE].map((n) => fs.label(n));
  throw new CheckpointError(`no weights found: none of ${looked.join(', ')} exists`, { file: fs.label(INDEX_FILE) });
}

function exists(fs: CheckpointFS, name: string): boolean {
  const h = fs.open(name);
  h?.close?.();
  return h !== undefined;
}

/**
 * Opens PyTorch weights: `pytorch_model.bin` when present, else `pytorch_model.bin.index.json`
 * and its shards, validated as the safetensors index is.
 */
export function openTorchCheckpoint(fs: CheckpointFS): SafetensorsCheckpoint {
  return openSharded(fs, { single: TORCH_SINGLE_FILE, index: TORCH_INDEX_FILE }, (label, h) => new TorchBinFile(label, h));
}
