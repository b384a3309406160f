// The one opener of a checkpoint folder's weights, whatever their format, in the order
// transformers looks for them: model.safetensors, model.safetensors.index.json (+ shards), then
// PyTorch's pytorch_model.bin, pytorch_model.bin.index.json (+ shards). Both kinds come back as a
// SafetensorsCheckpoint (absolute byte ranges per tensor), so nothing downstream knows which it was.

import {
  CheckpointError,
  INDEX_FILE,
  SINGLE_FILE,
  checkShardName,
  openSafetensorsCheckpoint,
  readTensorBytes,
  requireSupported,
  type CheckpointFS,
  type SafetensorsCheckpoint,
  type SafetensorsEntry,
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

const describe = (v: unknown) => (Array.isArray(v) ? 'an array' : v === null ? 'null' : typeof v);

/**
 * Opens PyTorch weights: `pytorch_model.bin` when present, else `pytorch_model.bin.index.json`
 * and its shards, validated as the safetensors index is (shard names, every listed tensor in the
 * shard the index names).
 */
export function openTorchCheckpoint(fs: CheckpointFS): SafetensorsCheckpoint {
  const opened = new Map<string, TorchBinFile>();
  const closeAll = () => {
    for (const f of opened.values()) {
      try {
        f.close();
      } catch {
        /* closing is best effort */
      }
    }
    opened.clear();
  };
  const openShard = (name: string, referencedBy?: string): TorchBinFile => {
    const had = opened.get(name);
    if (had) return had;
    const h = fs.open(name);
    if (!h) {
      throw new CheckpointError(
        referencedBy
          ? `missing shard file ${fs.label(name)} (listed in ${fs.label(TORCH_INDEX_FILE)} for tensor "${referencedBy}")`
          : `missing file ${fs.label(name)}`,
        { file: fs.label(name), tensor: referencedBy },
      );
    }
    let f: TorchBinFile;
    try {
      f = new TorchBinFile(fs.label(name), h);
    } catch (e) {
      h.close?.();
      throw e;
    }
    opened.set(name, f);
    return f;
  };
  try {
    const tensors = new Map<string, SafetensorsEntry>();
    const fileOf = new Map<string, TorchBinFile>();
    let metadata: Record<string, unknown> = {};
    if (exists(fs, TORCH_SINGLE_FILE)) {
      const f = openShard(TORCH_SINGLE_FILE);
      for (const [k, v] of f.tensors) {
        tensors.set(k, v);
        fileOf.set(k, f);
      }
      metadata = f.metadata;
    } else {
      const idxLabel = fs.label(TORCH_INDEX_FILE);
      const text = fs.readText(TORCH_INDEX_FILE);
      if (text === undefined) throw new CheckpointError(`no weights found: neither ${fs.label(TORCH_SINGLE_FILE)} nor ${idxLabel} exists`, { file: idxLabel });
      let idx: any;
      try {
        idx = JSON.parse(text);
      } catch (e) {
        throw new CheckpointError(`${idxLabel}: not valid JSON (${(e as Error).message})`, { file: idxLabel });
      }
      if (idx === null || typeof idx !== 'object' || Array.isArray(idx)) throw new CheckpointError(`${idxLabel}: must be a JSON object`, { file: idxLabel });
      const wm = idx.weight_map;
      if (wm === null || typeof wm !== 'object' || Array.isArray(wm)) {
        throw new CheckpointError(`${idxLabel}: "weight_map" must be an object mapping tensor names to shard files, got ${describe(wm)}`, { file: idxLabel });
      }
      const entries = Object.entries(wm as Record<string, unknown>);
      if (entries.length === 0) throw new CheckpointError(`${idxLabel}: "weight_map" is empty`, { file: idxLabel });
      // Every name is checked before any file is opened.
      for (const [tensor, shard] of entries) checkShardName(shard, tensor, idxLabel);
      for (const [tensor, shard] of entries) {
        const f = openShard(shard as string, tensor);
        const e = f.entry(tensor);
        if (!e) {
          throw new CheckpointError(`tensor "${tensor}" is listed in ${idxLabel} as stored in ${shard as string}, but that shard does not contain it`, {
            file: f.name,
            tensor,
          });
        }
        tensors.set(tensor, e);
        fileOf.set(tensor, f);
      }
      if (idx.metadata && typeof idx.metadata === 'object' && !Array.isArray(idx.metadata)) metadata = idx.metadata;
    }
    let closed = false;
    const ck: SafetensorsCheckpoint = {
      files: [...opened.keys()],
      tensors,
      metadata,
      entry: (name) => tensors.get(name),
      tensor(name) {
        const e = tensors.get(name);
        if (!e) throw new CheckpointError(`tensor "${name}" not found in the checkpoint`, { tensor: name });
        return requireSupported(e);
      },
      readTensor(name, dst) {
        if (closed) throw new CheckpointError(`checkpoint is closed (reading tensor "${name}")`, { tensor: name });
        return readTensorBytes(fileOf.get(name)!.handle, ck.tensor(name), dst);
      },
      close() {
        closed = true;
        closeAll();
      },
    };
    return ck;
  } catch (e) {
    closeAll();
    throw e;
  }
}
