// Bounds-checked safetensors reader.
//
// Format: 8-byte little-endian u64 header length N, N bytes of UTF-8 JSON header
//   { name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__": { ... } }
// then the data region; data_offsets are relative to its start (8 + N).
//
// All parsing runs over RandomAccess (src/io/source.ts): local files (src/node/checkpoint-fs.ts),
// the File objects of a folder picked in a browser (src/web/opfs.ts), bytes in memory.

import type { DType } from './dtype.js';
import { readFully, type RandomAccess } from '../io/source.js';
import { duplicateKey } from './check.js';

/** Errors from the importer; `file` / `tensor` name what was being read when it failed. */
export class CheckpointError extends Error {
  readonly file?: string;
  readonly tensor?: string;
  constructor(message: string, opts: { file?: string; tensor?: string } = {}) {
    super(message);
    this.name = 'CheckpointError';
    this.file = opts.file;
    this.tensor = opts.tensor;
  }
}

/** Largest header accepted (same limit as the reference Rust implementation). */
export const MAX_HEADER_BYTES = 100_000_000;

/** Dtypes the engine reads, keyed by their safetensors spelling. */
export const SUPPORTED_DTYPES: Record<string, DType> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };
export const SUPPORTED_DTYPE_LIST = 'F32, F16, BF16';

/** Bits per element of every dtype the safetensors format defines (needed to validate byte lengths). */
const DTYPE_BITS: Record<string, number> = {
  BOOL: 8, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8,
  I16: 16, U16: 16, F16: 16, BF16: 16,
  I32: 32, U32: 32, F32: 32,
  I64: 64, U64: 64, F64: 64, C64: 64,
  F4: 4, F6_E2M3: 6, F6_E3M2: 6,
};

/** One tensor as described by a header; `dtype` is null when its dtype is valid safetensors but unsupported here. */
export interface SafetensorsEntry {
  name: string;
  /** dtype as spelled in the file, e.g. "BF16", "I8". */
  stDtype: string;
  dtype: DType | null;
  shape: number[];
  /** Path (or label) of the file that holds the bytes. */
  file: string;
  /** Absolute byte offset of the tensor in `file`. */
  offset: number;
  /** Byte length. */
  length: number;
}

/** A tensor the engine can read. */
export interface TensorInfo extends SafetensorsEntry {
  dtype: DType;
}

export interface SafetensorsHeader {
  file: string;
  /** N, the JSON header length. */
  headerLength: number;
  /** Absolute offset of the data region (8 + N). */
  dataStart: number;
  /** Bytes in the data region (file size − dataStart). */
  dataLength: number;
  metadata: Record<string, unknown>;
  /** Tensors in header order. */
  tensors: Map<string, SafetensorsEntry>;
}

const fmtShape = (s: readonly number[]) => `[${s.join(',')}]`;

const describe = (v: unknown) => {
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 60 ? s.slice(0, 57) + '...' : s;
  } catch {
    return String(v);
  }
};

/** Reads exactly `dst.length` bytes at `offset` or throws. */
export function readRange(f: RandomAccess, dst: Uint8Array, offset: number, fileName: string, what = 'data'): void {
  if (offset < 0 || offset + dst.length > f.size) {
    throw new CheckpointError(
      `${fileName}: cannot read ${dst.length} bytes of ${what} at offset ${offset}: file is only ${f.size} bytes`,
      { file: fileName },
    );
  }
  const done = readFully(f, dst, offset);
  if (done !== dst.length) {
    throw new CheckpointError(
      `${fileName}: unexpected end of file reading ${what} (got ${done} of ${dst.length} bytes at offset ${offset}); the file changed or is incomplete`,
      { file: fileName },
    );
  }
}

/** Element size in bits for a safetensors dtype, or undefined when the format does not define it. */
export function dtypeBits(stDtype: string): number | undefined {
  return Object.prototype.hasOwnProperty.call(DTYPE_BITS, stDtype) ? DTYPE_BITS[stDtype] : undefined;
}

/**
 * Parses and validates a safetensors header: header length, JSON, every entry's dtype, shape and
 * offsets (within the data region, length = numel × dtype size, no overlaps). Pure over `f`.
 */
export function parseSafetensorsHeader(f: RandomAccess, fileName: string): SafetensorsHeader {
  const fail = (msg: string, tensor?: string): never => {
    throw new CheckpointError(`${fileName}: ${msg}`, { file: fileName, tensor });
  };
  const size = f.size;
  if (!Number.isSafeInteger(size) || size < 8) {
    fail(`file is too small to be a safetensors file (${size} bytes; the 8-byte header length alone is missing)`);
  }
  const lenBytes = new Uint8Array(8);
  readRange(f, lenBytes, 0, fileName, 'header length');
  const n64 = new DataView(lenBytes.buffer).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) {
    fail(`header length ${n64} is absurd (limit ${MAX_HEADER_BYTES} bytes); not a safetensors file or corrupted`);
  }
  const n = Number(n64);
  if (8 + n > size) {
    fail(`header length ${n} runs past the end of the file (file is ${size} bytes); the file is truncated or corrupted`);
  }
  if (n < 2) fail(`header length ${n} is too small to hold a JSON header`);
  const headerBytes = new Uint8Array(n);
  readRange(f, headerBytes, 8, fileName, 'header');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    return fail('header is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    fail(`header must be a JSON object, got ${Array.isArray(json) ? 'an array' : json === null ? 'null' : typeof json}`);
  }
  // The format puts "{" first and allows only trailing spaces as padding.
  if (text.charCodeAt(0) !== 0x7b) fail(`header must begin with "{" (it begins with ${describe(text.slice(0, 1))})`);
  // JSON.parse keeps the last of two equal keys: one tensor would silently hide another.
  const dup = duplicateKey(text);
  if (dup !== undefined) fail(`header has the key ${dup} twice (each key once)`);
  const dataStart = 8 + n;
  const dataLength = size - dataStart;
  let metadata: Record<string, unknown> = {};
  const tensors = new Map<string, SafetensorsEntry>();
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null) continue;
      if (typeof raw !== 'object' || Array.isArray(raw)) fail(`"__metadata__" must be an object, got ${describe(raw)}`);
      for (const [k, v] of Object.entries(raw as object)) {
        if (typeof v !== 'string') fail(`"__metadata__" entry "${k}" is ${describe(v)} (the format maps strings to strings)`);
      }
      metadata = raw as Record<string, unknown>;
      continue;
    }
    const t = `tensor "${name}"`;
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail(`${t}: entry must be an object, got ${describe(raw)}`, name);
    const e = raw as Record<string, unknown>;
    const stDtype = e.dtype;
    if (typeof stDtype !== 'string') fail(`${t}: "dtype" must be a string, got ${describe(stDtype)}`, name);
    const bits = dtypeBits(stDtype as string);
    if (bits === undefined) fail(`unsupported dtype ${describe(stDtype)} for tensor "${name}" (unknown to the safetensors format)`, name);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`${t}: "shape" must be an array of non-negative integers, got ${describe(shape)}`, name);
    }
    const off = e.data_offsets;
    if (
      !Array.isArray(off) || off.length !== 2 ||
      !off.every((x) => Number.isSafeInteger(x) && x >= 0) || off[0] > off[1]
    ) {
      fail(`${t}: "data_offsets" must be two non-negative integers [begin, end] with begin <= end, got ${describe(off)}`, name);
    }
    const [begin, end] = off as [number, number];
    if (end > dataLength) {
      fail(
        `tensor "${name}": tensor data is not within the file bounds, model is corrupted or incomplete ` +
          `(data_offsets [${begin},${end}] but the data region holds ${dataLength} bytes)`,
        name,
      );
    }
    let numel = 1;
    for (const d of shape as number[]) numel *= d;
    const totalBits = numel * (bits as number);
    const length = end - begin;
    if (!Number.isSafeInteger(totalBits) || totalBits % 8 !== 0 || totalBits / 8 !== length) {
      fail(
        `${t}: byte length ${length} does not match shape ${fmtShape(shape as number[])} × ${stDtype} ` +
          `(${numel} elements × ${(bits as number) / 8} bytes = ${totalBits / 8})`,
        name,
      );
    }
    tensors.set(name, {
      name,
      stDtype: stDtype as string,
      dtype: SUPPORTED_DTYPES[stDtype as string] ?? null,
      shape: (shape as number[]).slice(),
      file: fileName,
      offset: dataStart + begin,
      length,
    });
  }
  // Overlaps: sort non-empty tensors by start and compare with the furthest end seen so far.
  const spans = [...tensors.values()].filter((t) => t.length > 0).sort((a, b) => a.offset - b.offset);
  let prev: SafetensorsEntry | undefined;
  const at = (t: SafetensorsEntry) => `[${t.offset - dataStart},${t.offset - dataStart + t.length}]`;
  for (const s of spans) {
    if (prev && s.offset < prev.offset + prev.length) {
      fail(`tensors "${prev.name}" and "${s.name}" overlap (data_offsets ${at(prev)} and ${at(s)}); model is corrupted`, s.name);
    }
    if (!prev || s.offset + s.length > prev.offset + prev.length) prev = s;
  }
  // As the format requires, the tensors tile the data region: no gap, nothing after the last. A
  // header length off by a few bytes (JSON padded with spaces still parses) shifts every tensor;
  // only this catches it.
  let end = 0;
  const all = [...tensors.values()].sort((a, b) => a.offset - b.offset || a.length - b.length);
  for (const s of all) {
    const begin = s.offset - dataStart;
    if (begin < end) fail(`tensor "${s.name}" (data_offsets ${at(s)}) lies inside another tensor's bytes; model is corrupted`, s.name);
    if (begin > end) {
      fail(`bytes [${end},${begin}) of the data region belong to no tensor ("${s.name}" begins at ${begin}); tensors must tile the data region`, s.name);
    }
    end = begin + s.length;
  }
  if (end !== dataLength) {
    fail(
      `the tensors end at byte ${end} of the data region, which holds ${dataLength} bytes (header length ${n}: ` +
        `${end < dataLength ? 'wrong, or bytes follow the last tensor' : 'wrong'}); tensors must tile the data region`,
    );
  }
  return { file: fileName, headerLength: n, dataStart, dataLength, metadata, tensors };
}

/** Narrows an entry to a readable tensor or throws "unsupported dtype X for tensor Y". */
export function requireSupported(e: SafetensorsEntry): TensorInfo {
  if (e.dtype === null) {
    throw new CheckpointError(
      `${e.file}: unsupported dtype ${e.stDtype} for tensor "${e.name}" (supported: ${SUPPORTED_DTYPE_LIST})`,
      { file: e.file, tensor: e.name },
    );
  }
  return e as TensorInfo;
}

/** Reads a tensor's bytes into `dst` (at least `length` bytes; returns the filled prefix) or a new array. */
export function readTensorBytes(f: RandomAccess, info: SafetensorsEntry, dst?: Uint8Array): Uint8Array {
  const t = requireSupported(info);
  let out: Uint8Array;
  if (dst) {
    if (dst.length < t.length) {
      throw new CheckpointError(
        `${t.file}: destination of ${dst.length} bytes is too small for tensor "${t.name}" (${t.length} bytes)`,
        { file: t.file, tensor: t.name },
      );
    }
    out = dst.subarray(0, t.length);
  } else {
    out = new Uint8Array(t.length);
  }
  readRange(f, out, t.offset, t.file, `tensor "${t.name}"`);
  return out;
}

/** A RandomAccess over bytes already in memory. */
export function bytesFile(bytes: Uint8Array): RandomAccess {
  return {
    size: bytes.length,
    pread(dst, offset) {
      if (offset >= bytes.length) return 0;
      const n = Math.min(dst.length, bytes.length - offset);
      dst.set(bytes.subarray(offset, offset + n));
      return n;
    },
  };
}

/** One parsed safetensors file. */
/** One weights file of a checkpoint: its tensors as byte ranges of `handle` (safetensors, torch.save). */
export abstract class WeightsFile {
  abstract readonly tensors: Map<string, SafetensorsEntry>;
  abstract readonly metadata: Record<string, unknown>;
  constructor(readonly name: string, readonly handle: RandomAccess) {}
  /** The entry for `name` (any dtype), or undefined. */
  entry(name: string): SafetensorsEntry | undefined {
    return this.tensors.get(name);
  }
  /** The readable tensor `name`; throws when absent or of an unsupported dtype. */
  tensor(name: string): TensorInfo {
    const e = this.entry(name);
    if (!e) throw new CheckpointError(`${this.name}: tensor "${name}" not found`, { file: this.name, tensor: name });
    return requireSupported(e);
  }
  readTensor(name: string, dst?: Uint8Array): Uint8Array {
    return readTensorBytes(this.handle, this.tensor(name), dst);
  }
  close(): void {
    this.handle.close?.();
  }
}

export class SafetensorsFile extends WeightsFile {
  readonly header: SafetensorsHeader;
  constructor(name: string, handle: RandomAccess) {
    super(name, handle);
    this.header = parseSafetensorsHeader(handle, name);
  }
  get tensors(): Map<string, SafetensorsEntry> {
    return this.header.tensors;
  }
  get metadata(): Record<string, unknown> {
    return this.header.metadata;
  }
}

// ---------------------------------------------------------------------------------------------
// Checkpoint folders: a single model.safetensors or a sharded model.safetensors.index.json.

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

/** The folder operations the checkpoint reader needs; names are relative to the folder. */
export interface CheckpointFS {
  /** Human-readable path for messages. */
  label(name: string): string;
  /** Text of the file, or undefined when it does not exist. */
  readText(name: string): string | undefined;
  /** Opened file, or undefined when it does not exist. */
  open(name: string): RandomAccess | undefined;
}

/** Checks a shard file name from an index: relative, no "..", no NUL. */
export function checkShardName(shard: unknown, tensor: string, indexLabel: string): string {
  if (typeof shard !== 'string' || shard.length === 0) {
    throw new CheckpointError(`${indexLabel}: weight_map entry for tensor "${tensor}" must be a non-empty file name, got ${describe(shard)}`, {
      file: indexLabel,
      tensor,
    });
  }
  const parts = shard.split(/[\\/]/);
  if (
    shard.includes('\0') || shard.startsWith('/') || /^[A-Za-z]:/.test(shard) || shard.startsWith('\\') ||
    parts.includes('..')
  ) {
    throw new CheckpointError(
      `${indexLabel}: shard file name ${describe(shard)} for tensor "${tensor}" is not a plain relative path inside the checkpoint (path traversal rejected)`,
      { file: indexLabel, tensor },
    );
  }
  return shard;
}

/** All tensors of a checkpoint folder, across shards. */
export interface SafetensorsCheckpoint {
  /** Shard files that were opened (relative names), in first-use order. */
  readonly files: string[];
  /** Every tensor of the checkpoint (index-listed ones for a sharded checkpoint). */
  readonly tensors: Map<string, SafetensorsEntry>;
  /** Metadata of the index ("metadata") or of the single file ("__metadata__"). */
  readonly metadata: Record<string, unknown>;
  entry(name: string): SafetensorsEntry | undefined;
  /** The readable tensor `name`; throws when absent or of an unsupported dtype. */
  tensor(name: string): TensorInfo;
  readTensor(name: string, dst?: Uint8Array): Uint8Array;
  close(): void;
}

/**
 * Opens the safetensors weights of a checkpoint folder: `model.safetensors` when present (as
 * transformers does), else `model.safetensors.index.json` and its shards.
 */
export function openSafetensorsCheckpoint(fs: CheckpointFS): SafetensorsCheckpoint {
  return openSharded(fs, { single: SINGLE_FILE, index: INDEX_FILE }, (label, h) => new SafetensorsFile(label, h));
}

/**
 * Hugging Face's two layouts of a checkpoint's weights, for any file format: one file `single`
 * when present, else an `index` ({"weight_map": tensor → shard}) and its shards. Every shard name
 * is checked before any file is opened, every referenced shard is parsed by `open`, and every
 * index entry must exist in the shard it names.
 */
export function openSharded(fs: CheckpointFS, names: { single: string; index: string }, open: (label: string, handle: RandomAccess) => WeightsFile): SafetensorsCheckpoint {
  const opened = new Map<string, WeightsFile>();
  const closeAll = () => {
    for (const f of opened.values()) {
      try {
        f.close();
      } catch {
        /* ignore */
      }
    }
    opened.clear();
  };
  const openShard = (name: string, referencedBy?: string): WeightsFile => {
    let f = opened.get(name);
    if (f) return f;
    const h = fs.open(name);
    if (!h) {
      throw new CheckpointError(
        referencedBy
          ? `missing shard file ${fs.label(name)} (listed in ${fs.label(names.index)} for tensor "${referencedBy}")`
          : `missing file ${fs.label(name)}`,
        { file: fs.label(name), tensor: referencedBy },
      );
    }
    try {
      f = open(fs.label(name), h);
    } catch (e) {
      h.close?.();
      throw e;
    }
    opened.set(name, f);
    return f;
  };
  try {
    const tensors = new Map<string, SafetensorsEntry>();
    const fileOf = new Map<string, WeightsFile>();
    let metadata: Record<string, unknown> = {};
    const single = fs.open(names.single);
    if (single) {
      let f: WeightsFile;
      try {
        f = open(fs.label(names.single), single);
      } catch (e) {
        single.close?.();
        throw e;
      }
      opened.set(names.single, f);
      for (const [k, v] of f.tensors) {
        tensors.set(k, v);
        fileOf.set(k, f);
      }
      metadata = f.metadata;
    } else {
      const text = fs.readText(names.index);
      const idxLabel = fs.label(names.index);
      if (text === undefined) {
        throw new CheckpointError(`no weights found: neither ${fs.label(names.single)} nor ${idxLabel} exists`, { file: idxLabel });
      }
      let idx: any;
      try {
        idx = JSON.parse(text);
      } catch (e) {
        throw new CheckpointError(`${idxLabel}: not valid JSON (${(e as Error).message})`, { file: idxLabel });
      }
      if (idx === null || typeof idx !== 'object' || Array.isArray(idx)) {
        throw new CheckpointError(`${idxLabel}: must be a JSON object`, { file: idxLabel });
      }
      const dup = duplicateKey(text);
      if (dup !== undefined) throw new CheckpointError(`${idxLabel}: the key ${dup} appears twice (each key once)`, { file: idxLabel });
      const wm = idx.weight_map;
      if (wm === null || typeof wm !== 'object' || Array.isArray(wm)) {
        throw new CheckpointError(`${idxLabel}: "weight_map" must be an object mapping tensor names to shard files, got ${describe(wm)}`, {
          file: idxLabel,
        });
      }
      const entries = Object.entries(wm as Record<string, unknown>);
      if (entries.length === 0) throw new CheckpointError(`${idxLabel}: "weight_map" is empty`, { file: idxLabel });
      // Validate every name before touching the file system.
      for (const [tensor, shard] of entries) checkShardName(shard, tensor, idxLabel);
      for (const [tensor, shard] of entries) {
        const f = openShard(shard as string, tensor);
        const e = f.entry(tensor);
        if (!e) {
          throw new CheckpointError(
            `tensor "${tensor}" is listed in ${idxLabel} as stored in ${shard as string}, but that shard does not contain it`,
            { file: f.name, tensor },
          );
        }
        tensors.set(tensor, e);
        fileOf.set(tensor, f);
      }
      // A tensor in two shards: which one a loader takes is arbitrary, so neither is.
      const holder = new Map<string, string>();
      for (const [shard, f] of opened) {
        for (const t of f.tensors.keys()) {
          const other = holder.get(t);
          if (other !== undefined) {
            throw new CheckpointError(`tensor "${t}" is stored in two shards, ${fs.label(other)} and ${fs.label(shard)} (each tensor in one)`, { file: f.name, tensor: t });
          }
          holder.set(t, shard);
        }
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
        ck.tensor(name);   // present and of a supported dtype, or the checkpoint-level error
        return fileOf.get(name)!.readTensor(name, dst);   // the file's own checks (torch: storage CRC-32s)
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
