// Checkpoints on a local disk: files as RandomAccess, a folder as a CheckpointFS, and opening a
// Hugging Face checkpoint folder by path.
import { closeSync, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import type { RandomAccess } from '../io/source.js';
import { CheckpointError, SafetensorsFile, type CheckpointFS } from '../format/safetensors.js';
import { readHFCheckpoint, type HFCheckpoint } from '../format/hf.js';

/** Opens a local file with Node's fs. */
export function openNodeFile(path: string): RandomAccess & { close(): void } {
  const fd = openSync(path, 'r');
  let closed = false;
  let size: number;
  try {
    size = fstatSync(fd).size;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  const CHUNK = 1 << 30; // fs.readSync accepts at most 2 GiB − 1 per call
  return {
    size,
    pread(dst, offset) {
      if (closed) throw new CheckpointError(`${path}: file is closed`, { file: path });
      const want = Math.min(dst.length, CHUNK);
      return readSync(fd, dst, 0, want, offset);
    },
    close() {
      if (!closed) {
        closed = true;
        closeSync(fd);
      }
    },
  };
}

/** Opens and validates a local .safetensors file. */
export function openSafetensors(path: string): SafetensorsFile {
  const h = openFileOrThrow(path);
  try {
    return new SafetensorsFile(path, h);
  } catch (e) {
    h.close();
    throw e;
  }
}

function openFileOrThrow(path: string): RandomAccess & { close(): void } {
  try {
    return openNodeFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new CheckpointError(`${path}: file not found`, { file: path });
    if (code === 'EISDIR') throw new CheckpointError(`${path}: is a directory, expected a safetensors file`, { file: path });
    throw new CheckpointError(`${path}: cannot open (${(e as Error).message})`, { file: path });
  }
}

/** CheckpointFS over a local directory. */
export function nodeCheckpointFS(dir: string): CheckpointFS {
  const root = resolve(dir);
  const full = (name: string) => {
    const p = resolve(root, name);
    if (p !== root && !p.startsWith(root + sep)) {
      throw new CheckpointError(`${join(dir, name)}: path escapes the checkpoint directory`, { file: name });
    }
    return p;
  };
  const isFile = (p: string) => {
    try {
      return statSync(p).isFile();
    } catch {
      return false;
    }
  };
  return {
    label: (name) => join(dir, name),
    readText(name) {
      const p = full(name);
      try {
        return readFileSync(p, 'utf8');
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return undefined;
        if (code === 'EISDIR') throw new CheckpointError(`${join(dir, name)}: is a directory, expected a file`, { file: join(dir, name) });
        throw new CheckpointError(`${join(dir, name)}: cannot read (${(e as Error).message})`, { file: join(dir, name) });
      }
    },
    open(name) {
      const p = full(name);
      if (!isFile(p)) return undefined;
      return openFileOrThrow(p);
    },
  };
}

/**
 * Opens a Hugging Face checkpoint folder (a local directory, or any CheckpointFS): see
 * readHFCheckpoint. Errors are CheckpointErrors that name the file / tensor / setting at fault.
 */
export async function openHFCheckpoint(folder: string | CheckpointFS): Promise<HFCheckpoint> {
  if (typeof folder !== 'string') return readHFCheckpoint(folder);
  let st;
  try {
    st = statSync(folder);
  } catch {
    throw new CheckpointError(`checkpoint directory ${folder} does not exist`, { file: folder });
  }
  if (!st.isDirectory()) throw new CheckpointError(`${folder} is not a directory (expected a Hugging Face checkpoint folder)`, { file: folder });
  return readHFCheckpoint(nodeCheckpointFS(folder), folder);
}
